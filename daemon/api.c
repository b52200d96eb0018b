// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The control-plane API (docs/api.md): HTTP/1.1 over a unix socket. This
 * file is the server: the socket, connections, routing, the write check on
 * the peer's credentials, and the handlers that call the daemon core. The
 * layers are in their own files: request bodies (api-parse.c), JSON
 * read-outs (api-render.c), Prometheus metrics (api-metrics.c) and the
 * event stream (api-events.c). Everything runs on the daemon's one main
 * loop; nothing here blocks.
 */
#include <errno.h>
#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include "api-limits.h"
#include "backend-libvirt.h"
#include "api-private.h"
#include "cluster.h"
#include "unixsock.h"
#include "vmcg/size.h"

enum {
	M_GET = 1 << 0,
	M_HEAD = 1 << 1,
	M_PUT = 1 << 2,
	M_POST = 1 << 3,
	M_DELETE = 1 << 4,
};

typedef enum Route {
	ROUTE_GROUPS,  /* /v1/groups */
	ROUTE_GROUP,   /* /v1/groups/<path> */
	ROUTE_RECLAIM, /* POST /v1/groups/<path>/reclaim */
	ROUTE_VMS,     /* /v1/vms */
	ROUTE_VM,      /* /v1/vms/<name> */
	ROUTE_EVENTS,  /* /v1/events */
	ROUTE_METRICS, /* /metrics */
	ROUTE_STATUS,  /* /v1/status */
} Route;

/* A request on_early() accepted: where it goes, and its body under the limit. */
typedef struct Request {
	Route route;
	unsigned method; /* M_* */
	char *arg;	 /* group path or VM name, unescaped */
	GByteArray *body;
	gsize limit;
	bool too_large;
} Request;

static void request_free(gpointer p)
{
	Request *req = p;

	g_free(req->arg);
	g_byte_array_unref(req->body);
	g_free(req);
}

#define REQUEST_KEY "vmcg-api-request"

/* ---- responses ---- */

/*
 * A flag in the query string: "?pretty", "?pretty=1". soup_form_decode()
 * drops a key without '=', so the raw query is read.
 */
static gboolean query_has(SoupServerMessage *msg, const char *key)
{
	const char *query = g_uri_get_query(soup_server_message_get_uri(msg));
	g_auto(GStrv) pairs = NULL;
	size_t n = strlen(key);

	if (!query)
		return FALSE;
	pairs = g_strsplit(query, "&", -1);
	for (char **p = pairs; *p; p++)
		if (strncmp(*p, key, n) == 0 && ((*p)[n] == '\0' || (*p)[n] == '='))
			return TRUE;
	return FALSE;
}

static void reply_json(SoupServerMessage *msg, guint status, json_object *obj, gboolean pretty)
{
	int flags = JSON_C_TO_STRING_NOSLASHESCAPE |
		    (pretty ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED
			    : JSON_C_TO_STRING_PLAIN);
	char *text = g_strconcat(json_object_to_json_string_ext(obj, flags), "\n", NULL);

	soup_server_message_set_status(msg, status, NULL);
	soup_server_message_set_response(msg, "application/json", SOUP_MEMORY_TAKE, text,
					 strlen(text));
}

static void reply_error(SoupServerMessage *msg, guint status, const char *code, const char *message)
{
	g_autoptr(json_object) obj = json_object_new_object();
	json_object *err = json_object_new_object();
	/* Messages may quote a name from the URL, which need not be UTF-8: JSON must be. */
	g_autofree char *valid = g_utf8_make_valid(message, -1);

	json_object_object_add(err, "code", json_object_new_string(code));
	json_object_object_add(err, "message", json_object_new_string(valid));
	json_object_object_add(obj, "error", err);
	reply_json(msg, status, obj, FALSE);
	/* A refusal is the client's business (info); a 5xx is ours (warning). */
	g_log(G_LOG_DOMAIN, status >= 500 ? G_LOG_LEVEL_WARNING : G_LOG_LEVEL_INFO,
	      "api: %s %s: %u %s: %s", soup_server_message_get_method(msg),
	      g_uri_get_path(soup_server_message_get_uri(msg)), status, code, valid);
}

void vmcg_api_reply_errorf(SoupServerMessage *msg, guint status, const char *code, const char *fmt,
			   ...)
{
	g_autofree char *message = NULL;
	va_list ap;

	va_start(ap, fmt);
	message = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	reply_error(msg, status, code, message);
}

/* The one place where errors become HTTP statuses and wire codes. */
static void reply_gerror(SoupServerMessage *msg, const GError *error)
{
	guint status = SOUP_STATUS_INTERNAL_SERVER_ERROR;
	const char *code = "internal";

	if (error->domain == VMCG_API_ERROR) {
		if (error->code == VMCG_API_ERROR_TOO_LARGE) {
			status = SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE;
			code = "too_large";
		} else {
			status = SOUP_STATUS_BAD_REQUEST;
			code = "invalid_argument";
		}
	} else if (error->domain == G_IO_ERROR) {
		switch (error->code) {
		case G_IO_ERROR_INVALID_ARGUMENT:
			status = SOUP_STATUS_BAD_REQUEST;
			code = "invalid_argument";
			break;
		case G_IO_ERROR_NOT_FOUND:
			status = SOUP_STATUS_NOT_FOUND;
			code = "not_found";
			break;
		case G_IO_ERROR_EXISTS:
			status = SOUP_STATUS_CONFLICT;
			code = "exists";
			break;
		case G_IO_ERROR_BUSY:
			status = SOUP_STATUS_CONFLICT;
			code = "busy";
			break;
		case G_IO_ERROR_NO_SPACE:
			status = SOUP_STATUS_CONFLICT;
			code = "no_space";
			break;
		case G_IO_ERROR_PERMISSION_DENIED:
			status = SOUP_STATUS_FORBIDDEN;
			code = "permission_denied";
			break;
		default:
			break;
		}
	}
	reply_error(msg, status, code, error->message);
}

/* ---- credentials ---- */

/*
 * The peer's supplementary groups as the kernel recorded them at connect()
 * (SO_PEERGROUPS, Linux 4.13): no race with the peer exiting or changing
 * its groups. Returns -errno; -ENOPROTOOPT on kernels without it.
 */
static int peer_groups(int fd, gid_t **ret, size_t *ret_n)
{
	g_autofree gid_t *groups = NULL;
	socklen_t len = 0;

	for (;;) {
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0)
			break;
		if (errno != ERANGE)
			return -errno;
		g_free(groups);
		groups = g_malloc(len ? len : sizeof(gid_t)); /* len is now what it needs */
	}
	*ret_n = len / sizeof(gid_t);
	*ret = g_steal_pointer(&groups);
	return 0;
}

/*
 * Fallback for kernels without SO_PEERGROUPS: "Groups:" of
 * /proc/<pid>/status. The pid is the one recorded at connect(); if that
 * process is gone and the pid reused, its "Uid:" (effective) will most
 * likely differ from the peer's, and we refuse.
 */
static bool proc_in_group(pid_t pid, uid_t uid, gid_t gid)
{
	g_autofree char *path = g_strdup_printf("/proc/%d/status", (int)pid);
	g_autofree char *text = NULL;
	g_auto(GStrv) lines = NULL;
	bool uid_ok = false, in_group = false;

	if (!g_file_get_contents(path, &text, NULL, NULL))
		return false;
	lines = g_strsplit(text, "\n", -1);
	for (char **l = lines; *l; l++) {
		if (g_str_has_prefix(*l, "Uid:")) {
			unsigned real, eff;

			uid_ok = sscanf(*l + 4, "%u %u", &real, &eff) == 2 && eff == uid;
		} else if (g_str_has_prefix(*l, "Groups:")) {
			g_auto(GStrv) ids = g_strsplit_set(*l + 7, " \t", -1);

			for (char **id = ids; *id; id++) {
				guint64 v;

				if (**id &&
				    g_ascii_string_to_unsigned(*id, 10, 0, G_MAXUINT32, &v, NULL) &&
				    v == gid)
					in_group = true;
			}
		}
	}
	return uid_ok && in_group;
}

/*
 * The write rule: the peer's effective uid at connect() is 0, or the
 * configured write group is its effective gid or one of its supplementary
 * groups. Credentials are the kernel's (SO_PEERCRED), never anything the
 * client says.
 */
gboolean vmcg_api_peer_may_write(VmcgApi *api, GSocket *sock, GError **error)
{
	g_autoptr(GCredentials) creds = NULL;
	g_autofree gid_t *groups = NULL;
	const struct ucred *uc;
	size_t n = 0;
	int r;

	if (!sock) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
			    "cannot tell who the peer is");
		return FALSE;
	}
	creds = g_socket_get_credentials(sock, error);
	if (!creds)
		return FALSE;
	uc = g_credentials_get_native(creds, G_CREDENTIALS_TYPE_LINUX_UCRED);
	if (!uc) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
			    "cannot tell who the peer is");
		return FALSE;
	}
	if (uc->uid == 0)
		return TRUE;
	if (api->write_gid >= 0) {
		gid_t gid = (gid_t)api->write_gid;

		if (uc->gid == gid)
			return TRUE;
		r = peer_groups(g_socket_get_fd(sock), &groups, &n);
		if (r == 0) {
			for (size_t i = 0; i < n; i++)
				if (groups[i] == gid)
					return TRUE;
		} else if (r == -ENOPROTOOPT && proc_in_group(uc->pid, uc->uid, gid)) {
			return TRUE;
		}
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
			    "writing needs uid 0 or group %" G_GINT64_FORMAT
			    " (this peer: uid %u, gid %u)",
			    api->write_gid, (unsigned)uc->uid, (unsigned)uc->gid);
		return FALSE;
	}
	g_set_error(error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
		    "writing needs uid 0 (this peer: uid %u)", (unsigned)uc->uid);
	return FALSE;
}

/* ---- routing ---- */

static const struct {
	unsigned methods;
	const char *allow;
} routes[] = {
	[ROUTE_GROUPS] = { M_GET | M_HEAD, "GET, HEAD" },
	[ROUTE_GROUP] = { M_GET | M_HEAD | M_PUT | M_DELETE, "GET, HEAD, PUT, DELETE" },
	[ROUTE_RECLAIM] = { M_POST, "POST" },
	[ROUTE_VMS] = { M_GET | M_HEAD | M_POST, "GET, HEAD, POST" },
	[ROUTE_VM] = { M_GET | M_HEAD | M_PUT | M_DELETE, "GET, HEAD, PUT, DELETE" },
	[ROUTE_EVENTS] = { M_GET | M_HEAD, "GET, HEAD" },
	[ROUTE_METRICS] = { M_GET | M_HEAD, "GET, HEAD" },
	[ROUTE_STATUS] = { M_GET | M_HEAD, "GET, HEAD" },
};

static unsigned method_bit(const char *method)
{
	if (strcmp(method, "GET") == 0)
		return M_GET;
	if (strcmp(method, "HEAD") == 0)
		return M_HEAD;
	if (strcmp(method, "PUT") == 0)
		return M_PUT;
	if (strcmp(method, "POST") == 0)
		return M_POST;
	if (strcmp(method, "DELETE") == 0)
		return M_DELETE;
	return 0;
}

/*
 * Map a raw (still percent-encoded) path to a route and its argument: a
 * group path ("/" for the root) or a VM name. "/v1/groups/a/reclaim" is
 * the reclaim action of /a for POST, and the group /a/reclaim for every
 * other method: no other method is allowed on the action, and POST on a
 * group is not allowed either, so neither hides the other.
 * Returns 0, or the HTTP status to refuse with (404, or 400 for a bad
 * escape).
 */
static guint route_match(const char *path, unsigned method, Route *ret, char **ret_arg)
{
	const char *rest;
	g_autofree char *arg = NULL;

	if (strcmp(path, "/metrics") == 0) {
		*ret = ROUTE_METRICS;
		return 0;
	}
	if (strcmp(path, "/v1/events") == 0) {
		*ret = ROUTE_EVENTS;
		return 0;
	}
	if (strcmp(path, "/v1/status") == 0) {
		*ret = ROUTE_STATUS;
		return 0;
	}
	if (strcmp(path, "/v1/vms") == 0) {
		*ret = ROUTE_VMS;
		return 0;
	}
	if (g_str_has_prefix(path, "/v1/vms/")) {
		rest = path + strlen("/v1/vms/");
		if (strchr(rest, '/'))
			return SOUP_STATUS_NOT_FOUND;
		arg = g_uri_unescape_string(rest, "/");
		if (!arg)
			return SOUP_STATUS_BAD_REQUEST;
		*ret = ROUTE_VM;
		*ret_arg = g_steal_pointer(&arg);
		return 0;
	}
	if (strcmp(path, "/v1/groups") == 0) {
		*ret = ROUTE_GROUPS;
		return 0;
	}
	if (g_str_has_prefix(path, "/v1/groups/")) {
		rest = path + strlen("/v1/groups");
		arg = g_uri_unescape_string(rest, "/");
		if (!arg)
			return SOUP_STATUS_BAD_REQUEST;
		*ret = ROUTE_GROUP;
		if (method == M_POST && g_str_has_suffix(arg, "/reclaim")) {
			arg[strlen(arg) - strlen("/reclaim")] = '\0';
			if (!arg[0]) {
				g_free(arg);
				arg = g_strdup("/");
			}
			*ret = ROUTE_RECLAIM;
		}
		*ret_arg = g_steal_pointer(&arg);
		return 0;
	}
	return SOUP_STATUS_NOT_FOUND;
}

/* ---- handlers ---- */

static VmcgGroup *lookup_group(VmcgApi *api, SoupServerMessage *msg, const char *path)
{
	VmcgGroup *g = NULL;
	int r = vmcg_group_lookup(vmcg_daemon_tree(api->d), path, &g);

	if (r == -ENOENT)
		vmcg_api_reply_errorf(msg, SOUP_STATUS_NOT_FOUND, "not_found", "no group %s", path);
	else if (r < 0)
		reply_error(msg, SOUP_STATUS_BAD_REQUEST, "invalid_argument",
			    "invalid group path: \"/\" or \"/a/b\", names of [A-Za-z0-9_.-], at "
			    "most 16 levels of 64 bytes");
	return r < 0 ? NULL : g;
}

static void handle_group_put(VmcgApi *api, SoupServerMessage *msg, const char *path,
			     const Request *req, gboolean pretty)
{
	SoupMessageHeaders *req_h = soup_server_message_get_request_headers(msg);
	const char *if_match = soup_message_headers_get_one(req_h, "If-Match");
	const char *if_none_match = soup_message_headers_get_one(req_h, "If-None-Match");
	g_autoptr(GError) error = NULL;
	VmcgGroupSettings s;
	gboolean created = FALSE;
	VmcgGroup *g = NULL;
	bool exists;

	if (!vmcg_api_parse_group_settings((const char *)req->body->data, req->body->len, &s,
					   &error)) {
		reply_gerror(msg, error);
		return;
	}
	/* create: If-None-Match: *; update only: If-Match: * (RFC 9110 13.1). */
	exists = vmcg_group_lookup(vmcg_daemon_tree(api->d), path, &g) == 0;
	if (if_none_match && strcmp(if_none_match, "*") == 0 && exists) {
		vmcg_api_reply_errorf(msg, SOUP_STATUS_PRECONDITION_FAILED, "exists",
				      "group %s exists", path);
		return;
	}
	if (if_match && strcmp(if_match, "*") == 0 && !exists) {
		vmcg_api_reply_errorf(msg, SOUP_STATUS_PRECONDITION_FAILED, "not_found",
				      "no group %s", path);
		return;
	}
	if (!vmcg_daemon_group_put(api->d, path, &s, &created, &error)) {
		reply_gerror(msg, error);
		return;
	}
	g = lookup_group(api, msg, path);
	if (!g)
		return;
	if (created) {
		g_autofree char *loc =
			g_strconcat("/v1/groups", strcmp(path, "/") ? path : "/", NULL);

		soup_message_headers_replace(soup_server_message_get_response_headers(msg),
					     "Location", loc);
	}
	{
		g_autoptr(json_object) obj = vmcg_api_group_to_json(api, g, false);

		reply_json(msg, created ? SOUP_STATUS_CREATED : SOUP_STATUS_OK, obj, pretty);
	}
}

static void handle_reclaim(VmcgApi *api, SoupServerMessage *msg, const char *path,
			   const Request *req, gboolean pretty)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(json_object) obj = NULL;
	uint64_t bytes, planned = 0;

	if (!vmcg_api_parse_reclaim((const char *)req->body->data, req->body->len, &bytes,
				    &error) ||
	    !vmcg_daemon_group_reclaim(api->d, path, bytes, &planned, &error)) {
		reply_gerror(msg, error);
		return;
	}
	obj = json_object_new_object();
	json_object_object_add(obj, "path", json_object_new_string(path));
	json_object_object_add(obj, "bytes", json_object_new_uint64(bytes));
	json_object_object_add(obj, "planned", json_object_new_uint64(planned));
	reply_json(msg, SOUP_STATUS_OK, obj, pretty);
}

static void reply_vm(SoupServerMessage *msg, VmcgDvm *vm, guint status, gboolean pretty)
{
	g_autoptr(json_object) obj = vmcg_api_vm_to_json(vm);

	reply_json(msg, status, obj, pretty);
}

static void handle_vm_add(VmcgApi *api, SoupServerMessage *msg, const Request *req, gboolean pretty)
{
	g_auto(VmcgApiVmRequest) vr = { 0 };
	g_autoptr(GError) error = NULL;
	g_autofree char *escaped = NULL, *loc = NULL;
	VmcgDvm *vm;

	if (!vmcg_api_parse_vm_add((const char *)req->body->data, req->body->len, &vr, &error) ||
	    !vmcg_daemon_vm_add(api->d, vr.name, vr.backend, vr.address, vr.group ?: "/",
				&vr.settings, &error)) {
		reply_gerror(msg, error);
		return;
	}
	vm = vmcg_daemon_vm_lookup(api->d, vr.name);
	if (!vm) {
		vmcg_api_reply_errorf(msg, SOUP_STATUS_NOT_FOUND, "not_found", "VM %s went away",
				      vr.name);
		return;
	}
	escaped = g_uri_escape_string(vr.name, NULL, FALSE);
	loc = g_strconcat("/v1/vms/", escaped, NULL);
	soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Location",
				     loc);
	reply_vm(msg, vm, SOUP_STATUS_CREATED, pretty);
}

/*
 * A move and new settings, as one change: the move first (it is what can
 * be refused, for lack of room), then the settings, which the parser has
 * already validated; should they still be refused, the VM goes back.
 */
static void handle_vm_update(VmcgApi *api, SoupServerMessage *msg, const char *name,
			     const Request *req, gboolean pretty)
{
	g_auto(VmcgApiVmRequest) vr = { 0 };
	g_autoptr(GError) error = NULL;
	g_autofree char *old_group = NULL;
	VmcgDvm *vm;
	VmcgDvmInfo info;

	if (!vmcg_api_parse_vm_update((const char *)req->body->data, req->body->len, &vr, &error)) {
		reply_gerror(msg, error);
		return;
	}
	vm = vmcg_daemon_vm_lookup(api->d, name);
	if (!vm) {
		vmcg_api_reply_errorf(msg, SOUP_STATUS_NOT_FOUND, "not_found", "no VM %s", name);
		return;
	}
	vmcg_dvm_info(vm, &info);
	old_group = g_strdup(info.group);
	if (vr.group && strcmp(vr.group, old_group) != 0 &&
	    !vmcg_daemon_vm_move(api->d, name, vr.group, &error)) {
		reply_gerror(msg, error);
		return;
	}
	if ((vr.settings.has_floor || vr.settings.has_oom_priority || vr.settings.has_channel) &&
	    !vmcg_daemon_vm_set(api->d, name, &vr.settings, &error)) {
		g_autoptr(GError) back_error = NULL;

		if (vr.group && strcmp(vr.group, old_group) != 0 &&
		    !vmcg_daemon_vm_move(api->d, name, old_group, &back_error))
			g_warning("api: VM %s stays in %s: moving it back to %s failed: %s", name,
				  vr.group, old_group, back_error->message);
		reply_gerror(msg, error);
		return;
	}
	vm = vmcg_daemon_vm_lookup(api->d, name);
	if (!vm) {
		vmcg_api_reply_errorf(msg, SOUP_STATUS_NOT_FOUND, "not_found", "VM %s went away",
				      name);
		return;
	}
	reply_vm(msg, vm, SOUP_STATUS_OK, pretty);
}

static json_object *time_json(int64_t usec)
{
	g_autoptr(GDateTime) sec = NULL, t = NULL;
	g_autofree char *text = NULL;

	if (!usec)
		return NULL;
	sec = g_date_time_new_from_unix_utc(usec / G_USEC_PER_SEC);
	t = g_date_time_add(sec, usec % G_USEC_PER_SEC);
	text = g_date_time_format_iso8601(t);
	return json_object_new_string(text);
}

/* GET /v1/status: the state file's health (docs/api.md). */
/* The libvirt connection (docs/libvirt.md), null without one. */
static json_object *libvirt_to_json(VmcgDaemon *d)
{
	json_object *lv;
	VmcgLibvirtStatus s;

	if (!vmcg_daemon_libvirt_status(d, &s))
		return NULL;
	lv = json_object_new_object();
	json_object_object_add(lv, "uri", json_object_new_string(s.uri));
	json_object_object_add(lv, "state", json_object_new_string(s.state));
	json_object_object_add(lv, "error", s.error ? json_object_new_string(s.error) : NULL);
	json_object_object_add(lv, "domains", json_object_new_uint64(s.domains));
	json_object_object_add(lv, "connects", json_object_new_uint64(s.opens));
	json_object_object_add(lv, "disconnects", json_object_new_uint64(s.closes));
	json_object_object_add(lv, "pending", json_object_new_uint64(s.pending));
	return lv;
}

static json_object *cluster_to_json(VmcgDaemon *d)
{
	json_object *o, *eps;
	VmcgClusterStatus s;

	vmcg_cluster_status(vmcg_daemon_cluster(d), &s);
	if (!s.connected)
		return NULL;
	o = json_object_new_object();
	eps = json_object_new_array();
	for (char *const *e = s.endpoints; *e; e++)
		json_object_array_add(eps, json_object_new_string(*e));
	json_object_object_add(o, "node", json_object_new_string(s.node));
	json_object_object_add(o, "etcd", eps);
	json_object_object_add(o, "endpoint",
			       json_object_new_string(s.endpoints[s.current_endpoint]));
	json_object_object_add(o, "lease", json_object_new_int64(s.lease_id));
	json_object_object_add(o, "lease-alive", json_object_new_boolean(s.lease_alive));
	json_object_object_add(o, "lease-ttl-usec", json_object_new_uint64(s.lease_ttl_usec));
	json_object_object_add(o, "leases", json_object_new_uint64(s.lease_generation));
	json_object_object_add(o, "groups", json_object_new_uint64(s.groups));
	return o;
}

static json_object *status_to_json(VmcgApi *api)
{
	json_object *obj = json_object_new_object(), *st = json_object_new_object();
	VmcgStateHealth h;

	vmcg_daemon_state_health(api->d, &h);
	json_object_object_add(st, "path", h.path ? json_object_new_string(h.path) : NULL);
	json_object_object_add(st, "ok", json_object_new_boolean(h.ok));
	json_object_object_add(st, "error", h.error ? json_object_new_string(h.error) : NULL);
	json_object_object_add(st, "last-save", time_json(h.last_save_usec));
	json_object_object_add(st, "last-success", time_json(h.last_ok_usec));
	json_object_object_add(st, "saves", json_object_new_uint64(h.saves));
	json_object_object_add(st, "failures", json_object_new_uint64(h.failures));
	json_object_object_add(st, "compactions", json_object_new_uint64(h.compactions));
	json_object_object_add(st, "snapshot-bytes", json_object_new_uint64(h.snapshot_bytes));
	json_object_object_add(st, "journal-bytes", json_object_new_uint64(h.journal_bytes));
	json_object_object_add(st, "pending", json_object_new_uint64(h.pending));
	json_object_object_add(obj, "state", st);
	json_object_object_add(obj, "libvirt", libvirt_to_json(api->d));
	json_object_object_add(obj, "cluster", cluster_to_json(api->d));
	return obj;
}

static void handle_route(VmcgApi *api, SoupServerMessage *msg, const Request *req)
{
	const char *arg = req->arg;
	unsigned method = req->method;
	gboolean pretty = query_has(msg, "pretty");
	g_autoptr(GError) error = NULL;
	g_autoptr(json_object) obj = NULL;
	VmcgGroup *g;
	VmcgDvm *vm;

	switch (req->route) {
	case ROUTE_GROUPS:
		/* The whole tree: streamed, a chunk at a time (api-stream.c). */
		vmcg_api_reply_stream(msg, "application/json", method == M_HEAD,
				      vmcg_api_groups_producer_new(api, "/", pretty));
		return;
	case ROUTE_GROUP:
		if (method == M_PUT) {
			handle_group_put(api, msg, arg, req, pretty);
		} else if (method == M_DELETE) {
			if (vmcg_daemon_group_delete(api->d, arg, &error))
				soup_server_message_set_status(msg, SOUP_STATUS_NO_CONTENT, NULL);
			else
				reply_gerror(msg, error);
		} else if ((g = lookup_group(api, msg, arg))) {
			if (query_has(msg, "recursive")) {
				vmcg_api_reply_stream(msg, "application/json", method == M_HEAD,
						      vmcg_api_groups_producer_new(
							      api, vmcg_group_path(g), pretty));
				return;
			}
			obj = vmcg_api_group_to_json(api, g, false);
			reply_json(msg, SOUP_STATUS_OK, obj, pretty);
		}
		return;
	case ROUTE_RECLAIM:
		handle_reclaim(api, msg, arg, req, pretty);
		return;
	case ROUTE_VMS:
		if (method == M_POST) {
			handle_vm_add(api, msg, req, pretty);
			return;
		}
		vmcg_api_reply_stream(msg, "application/json", method == M_HEAD,
				      vmcg_api_vms_producer_new(api, pretty));
		return;
	case ROUTE_VM:
		if (method == M_PUT) {
			handle_vm_update(api, msg, arg, req, pretty);
		} else if (method == M_DELETE) {
			if (vmcg_daemon_vm_remove(api->d, arg, &error))
				soup_server_message_set_status(msg, SOUP_STATUS_NO_CONTENT, NULL);
			else
				reply_gerror(msg, error);
		} else if ((vm = vmcg_daemon_vm_lookup(api->d, arg))) {
			reply_vm(msg, vm, SOUP_STATUS_OK, pretty);
		} else {
			g_autofree char *q =
				g_utf8_validate(arg, -1, NULL) ? vmcg_api_quote(arg) : NULL;

			vmcg_api_reply_errorf(msg, SOUP_STATUS_NOT_FOUND, "not_found", "no VM %s",
					      q ?: "by that name");
		}
		return;
	case ROUTE_EVENTS:
		vmcg_api_handle_events(api, msg, method == M_HEAD);
		return;
	case ROUTE_METRICS:
		vmcg_api_handle_metrics(api, msg, method == M_HEAD);
		return;
	case ROUTE_STATUS:
		obj = status_to_json(api);
		reply_json(msg, SOUP_STATUS_OK, obj, pretty);
		return;
	}
}

/*
 * Durable acknowledgement. A change is answered once the save that holds
 * it is on disk (vmcg_daemon_when_saved()): the answer the handler made
 * waits, paused, and goes out as it is; if the save failed, the change
 * has been undone and the answer becomes a 503 that says why.
 */
static bool persists(const Request *req)
{
	switch (req->route) {
	case ROUTE_GROUP:
	case ROUTE_VM:
		return req->method & (M_PUT | M_DELETE);
	case ROUTE_VMS:
		return req->method == M_POST;
	default:
		return false;
	}
}

static void on_saved(const GError *error, gpointer userdata)
{
	SoupServerMessage *msg = userdata;

	if (error) {
		soup_message_headers_remove(soup_server_message_get_response_headers(msg),
					    "Location");
		/* set_response() appends to a body that is there. */
		soup_message_body_truncate(soup_server_message_get_response_body(msg));
		vmcg_api_reply_errorf(msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "not_saved",
				      "the change could not be saved to the state file, and is "
				      "undone: %s",
				      error->message);
	}
	soup_server_message_unpause(msg);
	g_object_unref(msg);
}

static void answer_when_saved(VmcgApi *api, SoupServerMessage *msg, const Request *req)
{
	if (!persists(req) || !SOUP_STATUS_IS_SUCCESSFUL(soup_server_message_get_status(msg)))
		return;
	/* Paused before asking: a daemon without a loop calls back at once. */
	soup_server_message_pause(msg);
	if (!vmcg_daemon_when_saved(api->d, on_saved, g_object_ref(msg))) {
		soup_server_message_unpause(msg);
		g_object_unref(msg);
	}
}

static void on_got_chunk(SoupServerMessage *msg, GBytes *chunk, gpointer userdata)
{
	Request *req = userdata;
	gsize len;
	const guint8 *data = g_bytes_get_data(chunk, &len);

	(void)msg;
	if (req->too_large)
		return;
	if (len > req->limit - req->body->len) {
		req->too_large = true;
		g_byte_array_set_size(req->body, 0);
		return;
	}
	g_byte_array_append(req->body, data, (guint)len);
}

static void collect_content_length(const char *name, const char *value, gpointer userdata)
{
	if (g_ascii_strcasecmp(name, "Content-Length") == 0)
		g_ptr_array_add(userdata, (gpointer)value);
}

/*
 * The body's framing, from the headers as received: libsoup reads a
 * Content-Length with strtoull into a signed offset (2^63 became negative,
 * passed a "> limit" test and made GLib warn; 2^64 - 1 became -1, "read to
 * the end") and lets the last of several win. Refuses (and returns false)
 * a request whose length is not one plain number (400) or is over the
 * limit (413). libsoup reads the body of a refused request before it
 * answers: one it would frame wrong is answered here instead, and its
 * connection ended.
 */
static bool check_framing(VmcgApi *api, SoupServerMessage *msg, SoupMessageHeaders *h)
{
	g_autoptr(GPtrArray) values = g_ptr_array_new();
	g_autofree char *message = NULL;
	uint64_t len;
	int r;

	soup_message_headers_foreach(h, collect_content_length, values);
	r = vmcg_api_content_length((const char *const *)values->pdata, values->len,
				    soup_message_headers_get_one(h, "Transfer-Encoding") != NULL,
				    api->body_limit, &len);
	if (r == 0)
		return true;
	if (r == -ENOTSUP) {
		message = g_strdup("a request body must have a Content-Length: Transfer-Encoding "
				   "(chunked) is not accepted");
		g_info("api: %s %s: 411 length_required: %s", soup_server_message_get_method(msg),
		       g_uri_get_path(soup_server_message_get_uri(msg)), message);
		vmcg_api_msg_refuse_raw(msg, 411, "Length Required", "length_required", message);
		return false;
	}
	if (r == -EFBIG && soup_message_headers_get_content_length(h) > 0) {
		vmcg_api_reply_errorf(msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, "too_large",
				      "request body of %" G_GINT64_FORMAT
				      " bytes is over the limit of %zu bytes",
				      (gint64)soup_message_headers_get_content_length(h),
				      (size_t)api->body_limit);
		return false;
	}
	if (r == -EFBIG)
		message = g_strdup_printf("request body length is over the limit of %zu bytes",
					  (size_t)api->body_limit);
	else
		message = g_strdup(
			values->len > 1 ? "more than one Content-Length"
			: r == -EINVAL && soup_message_headers_get_one(h, "Transfer-Encoding")
				? "both Content-Length and Transfer-Encoding"
				: "Content-Length is not a decimal number");
	g_info("api: %s %s: %u %s: %s", soup_server_message_get_method(msg),
	       g_uri_get_path(soup_server_message_get_uri(msg)), r == -EFBIG ? 413 : 400,
	       r == -EFBIG ? "too_large" : "invalid_argument", message);
	vmcg_api_msg_refuse_raw(msg, r == -EFBIG ? 413 : 400,
				r == -EFBIG ? "Request Entity Too Large" : "Bad Request",
				r == -EFBIG ? "too_large" : "invalid_argument", message);
	return false;
}

/*
 * After the headers, before the body: everything that can be decided
 * without the body is, so that a refused request is not read (and a client
 * that sent "Expect: 100-continue" does not send it): the route, the
 * method, the peer's right to write and a declared length over the limit.
 * Then the body is collected here, never more than the limit (the rest
 * would be read and dropped, then the request gets its 413): a defence,
 * as check_framing() takes only a Content-Length within the limit.
 */
static void early_decide(SoupServer *server, SoupServerMessage *msg, const char *path,
			 GHashTable *query, gpointer userdata)
{
	VmcgApi *api = userdata;
	SoupMessageHeaders *h = soup_server_message_get_request_headers(msg);
	const char *method_name = soup_server_message_get_method(msg);
	unsigned method = method_bit(method_name);
	g_autoptr(GError) error = NULL;
	g_autofree char *arg = NULL;
	Request *req;
	Route route;
	guint status;

	(void)server;
	(void)query;
	soup_message_body_set_accumulate(soup_server_message_get_request_body(msg), FALSE);
	status = route_match(path, method, &route, &arg);
	if (status == SOUP_STATUS_NOT_FOUND) {
		reply_error(msg, status, "not_found", "no such endpoint (see docs/api.md)");
		return;
	}
	if (status) {
		reply_error(
			msg, status, "invalid_argument",
			"invalid percent-escape in the path (an escaped NUL, or '/' in a name)");
		return;
	}
	if (!(routes[route].methods & method)) {
		soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Allow",
					     routes[route].allow);
		vmcg_api_reply_errorf(msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "method_not_allowed",
				      "%s is not allowed here (allowed: %s)", method_name,
				      routes[route].allow);
		return;
	}
	if ((method & (M_PUT | M_POST | M_DELETE)) &&
	    !vmcg_api_peer_may_write(api, vmcg_api_msg_socket(msg), &error)) {
		reply_error(msg, SOUP_STATUS_FORBIDDEN, "permission_denied", error->message);
		return;
	}
	if (!check_framing(api, msg, h))
		return;
	req = g_new0(Request, 1);
	req->route = route;
	req->method = method;
	req->arg = g_steal_pointer(&arg);
	req->body = g_byte_array_new();
	req->limit = api->body_limit;
	g_object_set_data_full(G_OBJECT(msg), REQUEST_KEY, req, request_free);
	g_signal_connect(msg, "got-chunk", G_CALLBACK(on_got_chunk), req);
}

/*
 * The headers are in: the request's body is due by its deadline, unless
 * the request is refused here, which ends it (api-conn.c).
 */
static void on_early(SoupServer *server, SoupServerMessage *msg, const char *path,
		     GHashTable *query, gpointer userdata)
{
	vmcg_api_msg_got_headers(msg);
	early_decide(server, msg, path, query, userdata);
	/* Refused: no body is due. (One answered by vmcg_api_msg_refuse_raw() has no status.) */
	if (soup_server_message_get_status(msg) != 0)
		vmcg_api_msg_answering(msg);
}

/* With the whole body: the request was accepted by on_early(). */
static void on_request(SoupServer *server, SoupServerMessage *msg, const char *path,
		       GHashTable *query, gpointer userdata)
{
	VmcgApi *api = userdata;
	Request *req = g_object_get_data(G_OBJECT(msg), REQUEST_KEY);

	(void)server;
	(void)path;
	(void)query;
	vmcg_api_msg_answering(msg);
	if (!req) {
		reply_error(msg, SOUP_STATUS_INTERNAL_SERVER_ERROR, "internal",
			    "the request was not seen before its body");
		return;
	}
	if (req->too_large) {
		vmcg_api_reply_errorf(msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, "too_large",
				      "request body is over the limit of %zu bytes",
				      (size_t)api->body_limit);
		return;
	}
	handle_route(api, msg, req);
	answer_when_saved(api, msg, req);
}

/* ---- connections (admission and deadlines: api-conn.c) ---- */

/* Every request, the first as soon as its connection is accepted (api-conn.c). */
static void on_request_started(SoupServer *server, SoupServerMessage *msg, gpointer userdata)
{
	(void)server;
	(void)userdata;
	/*
	 * One request per connection. libsoup 3.2 also never frees a
	 * kept-alive connection that the client closes while idle (fixed in
	 * 3.3, libsoup commit d20c6601): every curl would leak a descriptor.
	 * On a unix socket a new connection costs next to nothing.
	 */
	soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Connection",
				     "close");
}

/* ---- socket ---- */

/*
 * Is something listening at @path? A connect() that is refused means a
 * socket file left by a daemon that died: safe to remove.
 */
static GSocket *bind_socket(VmcgApi *api, GError **error)
{
	g_autoptr(GSocket) sock = NULL;
	g_autoptr(GSocketAddress) addr = NULL;
	struct stat st;

	sock = g_socket_new(G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT,
			    error);
	if (!sock)
		return NULL;
	addr = g_unix_socket_address_new(api->socket_path);
	if (!g_socket_bind(sock, addr, FALSE, error))
		return NULL;
	/* Remember which file is ours before anything else can replace it. */
	if (stat(api->socket_path, &st) == 0) {
		api->sock_dev = st.st_dev;
		api->sock_ino = st.st_ino;
	}
	/* Reads for anyone who can reach the socket; writes are checked per request. */
	if (chmod(api->socket_path, 0666) < 0) {
		int err = errno;

		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err), "chmod %s: %s",
			    api->socket_path, g_strerror(err));
		return NULL;
	}
	/*
	 * 128 (SOMAXCONN before Linux 5.4) instead of GLib's 10: a burst of
	 * clients waits in the kernel, at no cost in descriptors, rather than
	 * being refused (EAGAIN) before vmcgd has had a turn to accept.
	 */
	g_socket_set_listen_backlog(sock, 128);
	if (!g_socket_listen(sock, error))
		return NULL;
	return g_steal_pointer(&sock);
}

/* Remove the socket file if it is still the one we bound. */
static void unlink_socket(VmcgApi *api)
{
	if (!api->sock_ino)
		return;
	vmcg_unix_socket_unlink_own(api->socket_path, api->sock_dev, api->sock_ino);
	api->sock_ino = 0;
}

VmcgApi *vmcg_api_new(VmcgDaemon *d, const VmcgApiOptions *opts, GError **error)
{
	static const VmcgApiOptions defaults = { .write_gid = -1 };
	g_autoptr(VmcgApi) api = g_new0(VmcgApi, 1);
	g_autoptr(GSocket) sock = NULL;

	if (!opts)
		opts = &defaults;
	api->d = d;
	api->socket_path = g_strdup(opts->socket_path ?: VMCG_API_SOCKET_DEFAULT);
	api->write_gid = opts->write_gid;
	api->body_limit = opts->body_limit ?: VMCG_API_BODY_LIMIT_DEFAULT;
	g_queue_init(&api->subs);
	g_queue_init(&api->conns);

	if (api->body_limit > VMCG_API_BODY_LIMIT_MAX) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "API body limit %zu is over %d bytes", (size_t)api->body_limit,
			    VMCG_API_BODY_LIMIT_MAX);
		return NULL;
	}
	if (!api->socket_path[0] ||
	    strlen(api->socket_path) >= sizeof(((struct sockaddr_un *)NULL)->sun_path)) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "socket path \"%s\" is empty or longer than %zu bytes",
			    api->socket_path, sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1);
		return NULL;
	}
	if (!vmcg_unix_socket_prepare(api->socket_path, G_SOCKET_TYPE_STREAM, error))
		return NULL;
	sock = bind_socket(api, error);
	if (!sock)
		return NULL; /* vmcg_api_free() removes what was bound */

	api->server = soup_server_new("server-header", "vmcgd", "raw-paths", TRUE, NULL);
	g_signal_connect(api->server, "request-started", G_CALLBACK(on_request_started), api);
	soup_server_add_early_handler(api->server, NULL, on_early, api, NULL);
	soup_server_add_handler(api->server, NULL, on_request, api, NULL);
	if (!vmcg_api_listen(api, sock, error))
		return NULL;
	g_info("api: listening on %s", api->socket_path);
	return g_steal_pointer(&api);
}

void vmcg_api_free(VmcgApi *api)
{
	if (!api)
		return;
	/* Writes waiting for a save are answered while their server is there. */
	vmcg_daemon_flush(api->d, NULL);
	vmcg_api_events_close_all(api);
	if (api->server) {
		soup_server_disconnect(api->server);
		g_object_unref(api->server);
	}
	vmcg_api_conns_close(api);
	unlink_socket(api);
	g_free(api->socket_path);
	g_free(api);
}
