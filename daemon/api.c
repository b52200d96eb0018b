// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The control-plane API (docs/api.md): HTTP/1.1 over a unix socket, JSON
 * bodies named after the cgroup files, a Server-Sent Events stream and
 * Prometheus metrics.
 *
 * The first half of this file are the request-body parsers: pure functions
 * that take the raw bytes and either fill in a settings struct or say what
 * is wrong, so that every request is validated whole before the daemon
 * sees it (the daemon's calls are all-or-nothing too). The second half is
 * the server: routing, the write check on the peer's credentials, the
 * read-outs and the event stream. Everything runs on the daemon's one
 * main loop; nothing here blocks.
 */
#include <errno.h>
#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <libsoup/soup.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include "api.h"
#include "unixsock.h"
#include "vmcg/oom.h"
#include "vmcg/size.h"

G_DEFINE_AUTOPTR_CLEANUP_FUNC(json_object, json_object_put)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(json_tokener, json_tokener_free)

GQuark vmcg_api_error_quark(void)
{
	return g_quark_from_static_string("vmcg-api-error-quark");
}

/* ======================================================================
 * Request bodies
 * ====================================================================== */

/* A member name or value quoted in an error message: at most this many bytes. */
#define QUOTE_MAX 64

/* @s cut to QUOTE_MAX bytes at a character boundary (@s is valid UTF-8). */
static char *quote(const char *s)
{
	const char *end;

	if (strlen(s) <= QUOTE_MAX)
		return g_strdup(s);
	g_utf8_validate(s, QUOTE_MAX, &end);
	return g_strdup_printf("%.*s...", (int)(end - s), s);
}

static bool is_json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * json-c's strict mode still takes single-quoted strings, NaN and
 * Infinity, and it keeps an escaped NUL ("\u0000") inside strings and
 * keys, where C code would silently cut the name short. Refuse all of that
 * before json-c sees it: outside strings only what RFC 8259 has, inside
 * strings no \u0000.
 */
static gboolean check_lexemes(const char *body, gsize len, GError **error)
{
	static const char allowed[] = " \t\r\n{}[]:,-+.0123456789eE"
				      "truefalsn"; /* true false null */
	bool in_string = false;

	for (gsize i = 0; i < len; i++) {
		char c = body[i];

		if (in_string) {
			if (c == '"') {
				in_string = false;
			} else if (c == '\\' && i + 1 < len) {
				if (len - i >= 6 && memcmp(body + i + 1, "u0000", 5) == 0) {
					g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_VALUE,
						    "NUL characters (\\u0000) are not allowed "
						    "(byte %zu)",
						    (size_t)i);
					return FALSE;
				}
				i++; /* the escaped character; json-c checks the escape */
			}
			continue;
		}
		if (c == '"') {
			in_string = true;
			continue;
		}
		if (c == '\0' || !strchr(allowed, c)) {
			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_SYNTAX,
				    "invalid JSON: unexpected character at byte %zu", (size_t)i);
			return FALSE;
		}
	}
	return TRUE;
}

/* The body as a JSON object, or an error that says why not. */
static json_object *parse_object(const char *body, gsize len, GError **error)
{
	g_autoptr(json_tokener) tok = NULL;
	json_object *obj;
	enum json_tokener_error jerr;
	const char *bad;
	gsize i, end;

	if (len > VMCG_API_BODY_LIMIT_MAX) {
		g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_TOO_LARGE,
			    "request body of %zu bytes is over the limit of %d bytes", (size_t)len,
			    VMCG_API_BODY_LIMIT_MAX);
		return NULL;
	}
	if (len == 0)
		return json_object_new_object();
	bad = memchr(body, '\0', len);
	if (bad) {
		g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_SYNTAX,
			    "invalid JSON: NUL byte at byte %zu", (size_t)(bad - body));
		return NULL;
	}
	if (!g_utf8_validate_len(body, len, &bad)) {
		g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_UTF8,
			    "request body is not valid UTF-8 (byte %zu)", (size_t)(bad - body));
		return NULL;
	}
	if (!check_lexemes(body, len, error))
		return NULL;
	for (i = 0; i < len && is_json_space(body[i]); i++)
		;
	if (i == len) {
		g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_SYNTAX,
			    "invalid JSON: the body is only whitespace");
		return NULL;
	}
	if (body[i] != '{') {
		g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_TYPE,
			    "the request body must be a JSON object");
		return NULL;
	}

	tok = json_tokener_new_ex(VMCG_API_JSON_DEPTH);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, body, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	if (!obj) {
		if (jerr == json_tokener_error_depth)
			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_DEPTH,
				    "JSON nested deeper than %d levels", VMCG_API_JSON_DEPTH);
		else if (jerr == json_tokener_error_parse_utf8_string)
			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_UTF8,
				    "invalid UTF-8 in a JSON string");
		else if (jerr == json_tokener_continue)
			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_SYNTAX,
				    "invalid JSON: the body ends before the object does");
		else
			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_SYNTAX,
				    "invalid JSON: %s at byte %zu", json_tokener_error_desc(jerr),
				    (size_t)end);
		return NULL;
	}
	for (i = end; i < len && is_json_space(body[i]); i++)
		;
	if (i < len || !json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_SYNTAX,
			    "invalid JSON: data after the object at byte %zu", (size_t)i);
		return NULL;
	}
	return obj;
}

/*
 * One table per request type (STYLE.md: one schema per wire format): the
 * members, how each is read, and where it goes in the result.
 */
typedef enum FieldKind {
	FIELD_SIZE,	   /* bytes: integer or size string; "max" is VMCG_BYTES_MAX */
	FIELD_SIZE_NO_MAX, /* bytes, "max" refused */
	FIELD_BOOL,
	FIELD_OOM_ACTION, /* "notify" | "pause" | "destroy" */
	FIELD_PRIORITY,	  /* integer in [VMCG_OOM_PRIORITY_MIN, MAX] */
	FIELD_VM_NAME,
	FIELD_GROUP_PATH,
	FIELD_QMP_PATH, /* absolute path of a unix socket */
} FieldKind;

#define NO_HAS ((size_t)-1)

typedef struct Field {
	const char *name;
	FieldKind kind;
	bool required;
	size_t has_offset; /* bool set when present, or NO_HAS */
	size_t offset;	   /* uint64_t, bool, VmcgOomAction, int32_t or char * */
} Field;

typedef struct Schema {
	const Field *fields;
	size_t nr_fields;
	const char *const *read_only; /* members of the GET form that cannot be written */
} Schema;

#define GS(m) offsetof(VmcgGroupSettings, m)
static const Field group_fields[] = {
	{ "memory.min", FIELD_SIZE, false, GS(has_min), GS(min) },
	{ "memory.low", FIELD_SIZE, false, GS(has_low), GS(low) },
	{ "memory.high", FIELD_SIZE, false, GS(has_high), GS(high) },
	{ "memory.max", FIELD_SIZE, false, GS(has_max), GS(max) },
	{ "memory.oom.group", FIELD_BOOL, false, GS(has_oom_group), GS(oom_group) },
	{ "oom-action", FIELD_OOM_ACTION, false, GS(has_oom_action), GS(oom_action) },
	{ "overhead-in-max", FIELD_BOOL, false, GS(has_overhead_in_max), GS(overhead_in_max) },
};
#undef GS

static const char *const group_read_only[] = {
	"path",
	"memory.current",
	"memory.peak",
	"memory.events",
	"memory.events.local",
	"memory.pressure",
	"vmpressure",
	"memory.stat",
	"vms",
	"children",
	NULL,
};

static const Schema group_schema = { group_fields, G_N_ELEMENTS(group_fields), group_read_only };

#define VR(m) offsetof(VmcgApiVmRequest, m)
static const Field vm_add_fields[] = {
	{ "name", FIELD_VM_NAME, true, NO_HAS, VR(name) },
	{ "qmp", FIELD_QMP_PATH, true, NO_HAS, VR(qmp) },
	{ "group", FIELD_GROUP_PATH, false, NO_HAS, VR(group) },
	{ "floor", FIELD_SIZE, false, VR(settings.has_floor), VR(settings.floor) },
	{ "oom-priority", FIELD_PRIORITY, false, VR(settings.has_oom_priority),
	  VR(settings.oom_priority) },
};

static const Field vm_update_fields[] = {
	{ "group", FIELD_GROUP_PATH, false, NO_HAS, VR(group) },
	{ "floor", FIELD_SIZE, false, VR(settings.has_floor), VR(settings.floor) },
	{ "oom-priority", FIELD_PRIORITY, false, VR(settings.has_oom_priority),
	  VR(settings.oom_priority) },
};
#undef VR

static const char *const vm_read_only[] = {
	"memory.current", "ram",   "resident", "overhead", "balloon", "stats",
	"mode",		  "state", "pid",      "hooks",	   NULL,
};

/* A VM's name and socket are its identity: forget it and add it again to change them. */
static const char *const vm_update_read_only[] = {
	"name",	 "qmp",	 "memory.current", "ram", "resident", "overhead", "balloon",
	"stats", "mode", "state",	   "pid", "hooks",    NULL,
};

static const Schema vm_add_schema = { vm_add_fields, G_N_ELEMENTS(vm_add_fields), vm_read_only };
static const Schema vm_update_schema = { vm_update_fields, G_N_ELEMENTS(vm_update_fields),
					 vm_update_read_only };

typedef struct ReclaimRequest {
	bool has_bytes;
	uint64_t bytes;
} ReclaimRequest;

static const Field reclaim_fields[] = {
	{ "bytes", FIELD_SIZE_NO_MAX, true, offsetof(ReclaimRequest, has_bytes),
	  offsetof(ReclaimRequest, bytes) },
};

static const Schema reclaim_schema = { reclaim_fields, G_N_ELEMENTS(reclaim_fields), NULL };

static gboolean type_error(const Field *f, const char *expected, GError **error)
{
	g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_TYPE, "%s: expected %s", f->name,
		    expected);
	return FALSE;
}

/* A JSON string as a C string: no NUL inside, valid UTF-8 after unescaping. */
static gboolean read_string(const Field *f, json_object *v, const char **ret, GError **error)
{
	const char *s;

	if (!json_object_is_type(v, json_type_string))
		return type_error(f, "a string", error);
	s = json_object_get_string(v);
	if (strlen(s) != (size_t)json_object_get_string_len(v)) {
		g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_VALUE,
			    "%s: NUL characters are not allowed", f->name);
		return FALSE;
	}
	if (!g_utf8_validate(s, -1, NULL)) {
		g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_UTF8, "%s: invalid UTF-8",
			    f->name);
		return FALSE;
	}
	*ret = s;
	return TRUE;
}

/*
 * Sizes: a non-negative integer of bytes, or a vmcg_size_parse() string
 * ("512M", "1.5G", "max"). Anything above VMCG_SIZE_LIMIT (VMCG_PAGES_MAX
 * pages) is a mistake rather than a limit: write "max". Integers are exact
 * JSON integers: 1e9 and 1.0 are refused, as json-c would read them as
 * doubles and doubles lose bytes above 2^53.
 */
static gboolean read_size(const Field *f, json_object *v, uint64_t *ret, GError **error)
{
	const char *s;
	uint64_t bytes;
	int r;

	if (json_object_is_type(v, json_type_int)) {
		/* json-c: above INT64_MAX is a uint64 (saturated), below INT64_MIN saturates. */
		if (json_object_get_int64(v) < 0) {
			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_VALUE,
				    "%s: a size cannot be negative", f->name);
			return FALSE;
		}
		bytes = json_object_get_uint64(v);
		if (bytes > VMCG_SIZE_LIMIT) {
			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_VALUE,
				    "%s: %" G_GUINT64_FORMAT " bytes is more than any memory "
				    "(at most %" G_GUINT64_FORMAT "; use \"max\" for no limit)",
				    f->name, bytes, (guint64)VMCG_SIZE_LIMIT);
			return FALSE;
		}
		*ret = bytes;
		return TRUE;
	}
	if (!json_object_is_type(v, json_type_string))
		return type_error(f, "a size: bytes as an integer, or a string such as \"512M\"",
				  error);
	if (!read_string(f, v, &s, error))
		return FALSE;
	r = vmcg_size_parse(s, &bytes);
	if (r == -ERANGE) {
		g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_VALUE,
			    "%s: more than any memory (at most %" G_GUINT64_FORMAT
			    " bytes; use \"max\" for no limit)",
			    f->name, (guint64)VMCG_SIZE_LIMIT);
		return FALSE;
	}
	if (r < 0) {
		g_autofree char *q = quote(s);

		g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_VALUE,
			    "%s: \"%s\" is not a size (bytes, or a number with K, M, G, T, P "
			    "or E: \"512M\", \"1.5G\"%s)",
			    f->name, q, f->kind == FIELD_SIZE ? ", or \"max\"" : "");
		return FALSE;
	}
	if (bytes == VMCG_SIZE_MAX && f->kind == FIELD_SIZE_NO_MAX) {
		g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_VALUE,
			    "%s: \"max\" is not allowed here", f->name);
		return FALSE;
	}
	*ret = bytes == VMCG_SIZE_MAX ? VMCG_BYTES_MAX : bytes;
	return TRUE;
}

static gboolean read_field(const Field *f, json_object *v, void *base, GError **error)
{
	void *dst = (char *)base + f->offset;
	const char *s;
	int64_t n;
	int r;

	switch (f->kind) {
	case FIELD_SIZE:
	case FIELD_SIZE_NO_MAX:
		if (!read_size(f, v, dst, error))
			return FALSE;
		break;
	case FIELD_BOOL:
		if (!json_object_is_type(v, json_type_boolean))
			return type_error(f, "true or false", error);
		*(bool *)dst = json_object_get_boolean(v);
		break;
	case FIELD_OOM_ACTION:
		if (!read_string(f, v, &s, error))
			return FALSE;
		if (vmcg_oom_action_from_string(s, dst) < 0) {
			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_VALUE,
				    "%s: must be \"notify\", \"pause\" or \"destroy\"", f->name);
			return FALSE;
		}
		break;
	case FIELD_PRIORITY:
		if (!json_object_is_type(v, json_type_int))
			return type_error(f, "an integer", error);
		n = json_object_get_int64(v); /* saturates: out of range stays out of range */
		if (n < VMCG_OOM_PRIORITY_MIN || n > VMCG_OOM_PRIORITY_MAX) {
			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_VALUE,
				    "%s: must be in [%d, %d]", f->name, VMCG_OOM_PRIORITY_MIN,
				    VMCG_OOM_PRIORITY_MAX);
			return FALSE;
		}
		*(int32_t *)dst = (int32_t)n;
		break;
	case FIELD_VM_NAME:
		if (!read_string(f, v, &s, error))
			return FALSE;
		r = vmcg_vm_name_validate(s);
		if (r < 0) {
			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_VALUE,
				    r == -ENAMETOOLONG ? "%s: longer than %d bytes"
						       : "%s: must be 1 to %d bytes, without "
							 "control characters or '/'",
				    f->name, VMCG_VM_NAME_MAX);
			return FALSE;
		}
		*(char **)dst = g_strdup(s);
		break;
	case FIELD_GROUP_PATH:
		if (!read_string(f, v, &s, error))
			return FALSE;
		r = vmcg_path_validate(s);
		if (r < 0) {
			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_VALUE,
				    r == -ENAMETOOLONG
					    ? "%s: deeper than %d levels or a name longer than %d "
					      "bytes"
					    : "%s: not a group path (\"/\", \"/a/b\": names of "
					      "[A-Za-z0-9_.-], not \".\" or \"..\")",
				    f->name, VMCG_DEPTH_MAX, VMCG_NAME_MAX);
			return FALSE;
		}
		*(char **)dst = g_strdup(s);
		break;
	case FIELD_QMP_PATH:
		if (!read_string(f, v, &s, error))
			return FALSE;
		/* sun_path is 108 bytes with its NUL: a longer path cannot be connected to. */
		if (s[0] != '/' || strlen(s) >= sizeof(((struct sockaddr_un *)NULL)->sun_path)) {
			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_VALUE,
				    "%s: must be the absolute path of a unix socket, under %zu "
				    "bytes",
				    f->name, sizeof(((struct sockaddr_un *)NULL)->sun_path));
			return FALSE;
		}
		*(char **)dst = g_strdup(s);
		break;
	}
	if (f->has_offset != NO_HAS)
		*(bool *)((char *)base + f->has_offset) = true;
	return TRUE;
}

/*
 * Fills @base (zeroed by the caller) from @body by @schema. On failure
 * @base may hold strings already read: the caller clears it. A member that
 * appears twice counts once, with its last value (json-c keeps the last;
 * RFC 8259 leaves it open).
 */
static gboolean parse_schema(const Schema *schema, const char *body, gsize len, void *base,
			     GError **error)
{
	g_autoptr(json_object) obj = NULL;
	uint32_t seen = 0;

	G_STATIC_ASSERT(sizeof(seen) * 8 >= G_N_ELEMENTS(vm_add_fields));
	obj = parse_object(body, len, error);
	if (!obj)
		return FALSE;

	json_object_object_foreach(obj, key, val)
	{
		const Field *f = NULL;
		size_t i;

		for (i = 0; i < schema->nr_fields; i++) {
			if (strcmp(schema->fields[i].name, key) == 0) {
				f = &schema->fields[i];
				break;
			}
		}
		if (!f) {
			g_autofree char *q = quote(key);
			bool ro = schema->read_only && g_strv_contains(schema->read_only, key);

			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_UNKNOWN_FIELD,
				    ro ? "%s: read-only" : "unknown member \"%s\"", q);
			return FALSE;
		}
		if (!read_field(f, val, base, error))
			return FALSE;
		seen |= 1u << i;
	}
	for (size_t i = 0; i < schema->nr_fields; i++) {
		if (schema->fields[i].required && !(seen & (1u << i))) {
			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_MISSING_FIELD,
				    "%s: required", schema->fields[i].name);
			return FALSE;
		}
	}
	return TRUE;
}

gboolean vmcg_api_parse_group_settings(const char *body, gsize len, VmcgGroupSettings *ret,
				       GError **error)
{
	VmcgGroupSettings s = { 0 };

	if (!parse_schema(&group_schema, body, len, &s, error))
		return FALSE;
	*ret = s;
	return TRUE;
}

void vmcg_api_vm_request_clear(VmcgApiVmRequest *req)
{
	g_clear_pointer(&req->name, g_free);
	g_clear_pointer(&req->qmp, g_free);
	g_clear_pointer(&req->group, g_free);
	memset(&req->settings, 0, sizeof(req->settings));
}

static gboolean parse_vm(const Schema *schema, const char *body, gsize len, VmcgApiVmRequest *ret,
			 GError **error)
{
	g_auto(VmcgApiVmRequest) req = { 0 };

	if (!parse_schema(schema, body, len, &req, error))
		return FALSE;
	*ret = req;
	memset(&req, 0, sizeof(req)); /* moved */
	return TRUE;
}

gboolean vmcg_api_parse_vm_add(const char *body, gsize len, VmcgApiVmRequest *ret, GError **error)
{
	return parse_vm(&vm_add_schema, body, len, ret, error);
}

gboolean vmcg_api_parse_vm_update(const char *body, gsize len, VmcgApiVmRequest *ret,
				  GError **error)
{
	return parse_vm(&vm_update_schema, body, len, ret, error);
}

gboolean vmcg_api_parse_reclaim(const char *body, gsize len, uint64_t *ret_bytes, GError **error)
{
	ReclaimRequest req = { 0 };

	if (!parse_schema(&reclaim_schema, body, len, &req, error))
		return FALSE;
	*ret_bytes = req.bytes;
	return TRUE;
}

/* ======================================================================
 * Server
 * ====================================================================== */

/*
 * Event stream bounds. A subscriber that does not read holds at most
 * SSE_QUEUE_MAX bytes here (on top of what the kernel buffers for its
 * socket) before it is dropped with a final "overflow" event; then it has
 * SSE_DROP_GRACE_SEC to take that event before its connection is shut.
 * 256 KiB is over a thousand events: a live client that stalls for a
 * moment loses nothing, a dead one costs bounded memory.
 */
#define SSE_QUEUE_MAX (256 * 1024)
#define SSE_DROP_GRACE_SEC 5
/* 15 s: keeps proxies and clients with read timeouts from closing an idle stream. */
#define SSE_KEEPALIVE_SEC 15
/* At most this many streams: with SSE_QUEUE_MAX, 16 MiB in the worst case. */
#define SSE_SUBSCRIBERS_MAX 64

/*
 * Anyone who can open the socket can connect, so connections are bounded:
 * each holds a file descriptor, and a daemon out of descriptors cannot
 * reach its QEMUs. 128 is far more than operators and exporters need
 * (SSE_SUBSCRIBERS_MAX streams included), far below the usual 1024-fd
 * soft limit. A connection that makes no progress on a read or a write
 * for CONN_TIMEOUT_SEC (one that never sends its request, one that stopped
 * reading its answer) is closed; an event stream waiting for events is not
 * waiting on its socket, and its keep-alives are progress.
 */
#define CONNECTIONS_MAX 128
#define CONN_TIMEOUT_SEC 60

typedef struct Sub Sub;

struct VmcgApi {
	VmcgDaemon *d;
	SoupServer *server;
	char *socket_path;
	dev_t sock_dev; /* the socket file we made, to remove only that one */
	ino_t sock_ino;
	gint64 write_gid;
	gsize body_limit;
	uint64_t hold_usec;
	GQueue subs;	   /* Sub, in order of subscription */
	GHashTable *conns; /* GSocket (weak) of every open connection */
	guint64 conns_refused;
	bool drop_leaked_sockets; /* libsoup < 3.3: see sweep_conns() */
};

struct Sub {
	VmcgApi *api;
	SoupServerMessage *msg; /* a reference */
	guint daemon_id;	/* vmcg_daemon_subscribe() */
	guint keepalive_id;
	guint drop_id;
	gulong wrote_chunk_id;
	gulong finished_id;
	GQueue chunk_sizes; /* appended, not yet written: their sizes */
	gsize queued;	    /* sum of chunk_sizes */
	bool dropping;	    /* final event queued: take no more */
	GList link;
};

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

static void G_GNUC_PRINTF(4, 5)
	reply_errorf(SoupServerMessage *msg, guint status, const char *code, const char *fmt, ...)
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
static gboolean peer_may_write(VmcgApi *api, SoupServerMessage *msg, GError **error)
{
	GSocket *sock = soup_server_message_get_socket(msg);
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

/* ---- read-outs ---- */

static json_object *json_pages(uint64_t pages)
{
	return json_object_new_uint64(pages * VMCG_PAGE_SIZE);
}

/* A limit in pages: "max" at or above VMCG_PAGES_MAX, else bytes. */
static json_object *json_limit(uint64_t pages)
{
	if (pages >= VMCG_PAGES_MAX)
		return json_object_new_string("max");
	return json_pages(pages);
}

static json_object *json_events(const VmcgGroup *g, bool local)
{
	json_object *obj = json_object_new_object();

	for (int e = 0; e < _VMCG_EVENT_COUNT; e++)
		json_object_object_add(obj, vmcg_event_to_string(e),
				       json_object_new_uint64(vmcg_group_events(g, e, local)));
	return obj;
}

/* avg as percent * 100, printed with two decimals as the PSI files do. */
static json_object *json_percent(uint32_t avg)
{
	char buf[32];

	g_snprintf(buf, sizeof(buf), "%u.%02u", avg / 100, avg % 100);
	return json_object_new_double_s(avg / 100.0, buf);
}

static json_object *json_pressure(VmcgGroup *g)
{
	static const char *const states[_VMCG_PSI_STATE_COUNT] = { "some", "full" };
	static const char *const windows[3] = { "avg10", "avg60", "avg300" };
	json_object *obj = json_object_new_object();
	char text[160];

	for (int s = 0; s < _VMCG_PSI_STATE_COUNT; s++) {
		json_object *o = json_object_new_object();
		uint32_t avg[3];
		uint64_t total;

		vmcg_psi_read(vmcg_group_psi(g), s, avg, &total);
		for (int w = 0; w < 3; w++)
			json_object_object_add(o, windows[w], json_percent(avg[w]));
		json_object_object_add(o, "total", json_object_new_uint64(total));
		json_object_object_add(obj, states[s], o);
	}
	if (vmcg_psi_format(vmcg_group_psi(g), text, sizeof(text)) >= 0)
		json_object_object_add(obj, "text", json_object_new_string(text));
	return obj;
}

static json_object *json_stat(const VmcgGroup *g)
{
	json_object *obj = json_object_new_object();

	for (int i = 0; i < _VMCG_STAT_COUNT; i++)
		json_object_object_add(obj, vmcg_stat_to_string(i),
				       json_pages(vmcg_group_stat(g, i)));
	return obj;
}

static const char *group_vmpressure(VmcgApi *api, VmcgGroup *g)
{
	VmcgVmpressureLevel level = vmcg_vmpressure_level(
		vmcg_group_vmpressure(g), vmcg_daemon_now_usec(api->d), api->hold_usec);

	return vmcg_vmpressure_level_to_string(level) ?: "none";
}

static json_object *group_to_json(VmcgApi *api, VmcgGroup *g, bool nested)
{
	json_object *obj = json_object_new_object();
	json_object *vms = json_object_new_array();
	json_object *children = json_object_new_array();

	json_object_object_add(obj, "path", json_object_new_string(vmcg_group_path(g)));
	json_object_object_add(obj, "memory.current", json_pages(vmcg_group_current(g)));
	json_object_object_add(obj, "memory.peak", json_pages(vmcg_group_peak(g)));
	json_object_object_add(obj, "memory.min", json_limit(vmcg_group_min(g)));
	json_object_object_add(obj, "memory.low", json_limit(vmcg_group_low(g)));
	json_object_object_add(obj, "memory.high", json_limit(vmcg_group_high(g)));
	json_object_object_add(obj, "memory.max", json_limit(vmcg_group_max(g)));
	json_object_object_add(obj, "memory.events", json_events(g, false));
	json_object_object_add(obj, "memory.events.local", json_events(g, true));
	json_object_object_add(obj, "memory.pressure", json_pressure(g));
	json_object_object_add(obj, "vmpressure", json_object_new_string(group_vmpressure(api, g)));
	json_object_object_add(obj, "memory.stat", json_stat(g));
	json_object_object_add(obj, "memory.oom.group",
			       json_object_new_boolean(vmcg_group_oom_group(g)));
	json_object_object_add(
		obj, "oom-action",
		json_object_new_string(vmcg_oom_action_to_string(vmcg_group_oom_action(g))));
	json_object_object_add(obj, "overhead-in-max",
			       json_object_new_boolean(vmcg_group_overhead_counted(g)));
	for (VmcgVm *vm = vmcg_group_first_vm(g); vm; vm = vmcg_vm_next_in_group(vm))
		json_object_array_add(vms, json_object_new_string(vmcg_vm_name(vm)));
	json_object_object_add(obj, "vms", vms);
	for (VmcgGroup *c = vmcg_group_first_child(g); c; c = vmcg_group_next_sibling(c))
		json_object_array_add(children,
				      nested ? group_to_json(api, c, true)
					     : json_object_new_string(vmcg_group_path(c)));
	json_object_object_add(obj, "children", children);
	return obj;
}

/* 0 means "not known" in VmcgDvmInfo for these. */
static json_object *json_known(uint64_t bytes)
{
	return bytes ? json_object_new_uint64(bytes) : NULL;
}

/* Hook mode: the credit slots, in bytes (pages x 4 KiB) where they are memory. */
static json_object *hooks_to_json(const VmcgDvmInfo *i)
{
	json_object *h = json_object_new_object();

	json_object_object_add(h, "slots", json_object_new_int64(i->hook_slots));
	json_object_object_add(h, "batch", json_object_new_int64(i->hook_batch));
	json_object_object_add(h, "refill-batch", json_object_new_int64(i->hook_refill_batch));
	json_object_object_add(h, "charged",
			       json_object_new_uint64(i->hook_charged * VMCG_PAGE_SIZE));
	json_object_object_add(h, "credit",
			       json_object_new_int64(i->hook_credit * (int64_t)VMCG_PAGE_SIZE));
	json_object_object_add(h, "populated",
			       json_object_new_uint64(i->hook_populated * VMCG_PAGE_SIZE));
	json_object_object_add(h, "unbacked",
			       json_object_new_uint64(i->hook_unbacked * VMCG_PAGE_SIZE));
	json_object_object_add(h, "slack", json_object_new_uint64(i->hook_slack * VMCG_PAGE_SIZE));
	json_object_object_add(h, "faults", json_object_new_uint64(i->hook_faults));
	json_object_object_add(h, "granted",
			       json_object_new_uint64(i->hook_grants * VMCG_PAGE_SIZE));
	json_object_object_add(h, "drained",
			       json_object_new_uint64(i->hook_drains * VMCG_PAGE_SIZE));
	json_object_object_add(h, "held", json_object_new_int64(i->hook_held));
	json_object_object_add(h, "stall-usec", json_object_new_uint64(i->hook_stall_usec));
	json_object_object_add(h, "audit-flagged", json_object_new_boolean(i->hook_audit_flagged));
	return h;
}

static json_object *vm_to_json(VmcgDvm *vm)
{
	json_object *obj = json_object_new_object();
	json_object *balloon = json_object_new_object();
	json_object *stats = NULL;
	VmcgDvmInfo i;

	vmcg_dvm_info(vm, &i);
	json_object_object_add(obj, "name", json_object_new_string(i.name));
	json_object_object_add(obj, "group", json_object_new_string(i.group));
	json_object_object_add(obj, "qmp", json_object_new_string(i.qmp ?: ""));
	json_object_object_add(obj, "mode", json_object_new_string(i.mode ?: "sampling"));
	json_object_object_add(obj, "state", json_object_new_string(i.state ?: "connecting"));
	json_object_object_add(obj, "pid", i.pid > 0 ? json_object_new_int64(i.pid) : NULL);
	json_object_object_add(obj, "memory.current", json_object_new_uint64(i.current));
	json_object_object_add(obj, "ram", json_known(i.ram));
	json_object_object_add(obj, "resident", json_object_new_uint64(i.resident));
	json_object_object_add(obj, "overhead", json_object_new_uint64(i.overhead));
	json_object_object_add(balloon, "target", json_known(i.balloon_target));
	json_object_object_add(balloon, "actual", json_known(i.balloon_actual));
	json_object_object_add(obj, "balloon", balloon);
	if (i.has_stats) {
		stats = json_object_new_object();
		json_object_object_add(stats, "total", json_object_new_uint64(i.stat_total));
		json_object_object_add(stats, "free", json_object_new_uint64(i.stat_free));
		json_object_object_add(stats, "available",
				       json_object_new_uint64(i.stat_available));
		json_object_object_add(stats, "cache", json_object_new_uint64(i.stat_cache));
		json_object_object_add(
			stats, "age-usec",
			i.stats_age_usec >= 0 ? json_object_new_int64(i.stats_age_usec) : NULL);
	}
	json_object_object_add(obj, "stats", stats);
	json_object_object_add(obj, "floor",
			       i.floor == VMCG_BYTES_MAX ? json_object_new_string("max")
							 : json_object_new_uint64(i.floor));
	json_object_object_add(obj, "oom-priority", json_object_new_int(i.oom_priority));
	json_object_object_add(obj, "hooks", i.hooked ? hooks_to_json(&i) : NULL);
	return obj;
}

/* ---- metrics ---- */

/* A Prometheus label value: backslash, double quote and newline escaped. */
static void append_label(GString *out, const char *value)
{
	for (const char *p = value; *p; p++) {
		if (*p == '\\')
			g_string_append(out, "\\\\");
		else if (*p == '"')
			g_string_append(out, "\\\"");
		else if (*p == '\n')
			g_string_append(out, "\\n");
		else
			g_string_append_c(out, *p);
	}
}

static void family(GString *out, const char *name, const char *type, const char *help)
{
	g_string_append_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample_begin(GString *out, const char *name, const char *label, const char *value)
{
	g_string_append_printf(out, "%s{%s=\"", name, label);
	append_label(out, value);
	g_string_append_c(out, '"');
}

static void sample_end_u64(GString *out, uint64_t v)
{
	g_string_append_printf(out, "} %" G_GUINT64_FORMAT "\n", v);
}

typedef struct GroupGauge {
	const char *name;
	const char *help;
	uint64_t (*pages)(const VmcgGroup *g);
	bool limit; /* +Inf at VMCG_PAGES_MAX */
} GroupGauge;

static const GroupGauge group_gauges[] = {
	{ "vmcg_group_memory_current_bytes", "Memory charged to the group (memory.current).",
	  vmcg_group_current, false },
	{ "vmcg_group_memory_peak_bytes", "Highest memory.current seen (memory.peak).",
	  vmcg_group_peak, false },
	{ "vmcg_group_memory_min_bytes", "Hard protection (memory.min).", vmcg_group_min, true },
	{ "vmcg_group_memory_low_bytes", "Best-effort protection (memory.low).", vmcg_group_low,
	  true },
	{ "vmcg_group_memory_high_bytes", "Throttle limit (memory.high); +Inf for max.",
	  vmcg_group_high, true },
	{ "vmcg_group_memory_max_bytes", "Hard limit (memory.max); +Inf for max.", vmcg_group_max,
	  true },
};

static VmcgGroup *next_group(VmcgGroup *g, VmcgGroup *root)
{
	return vmcg_group_next_descendant(g, root);
}

static void metrics_groups(VmcgApi *api, GString *out)
{
	static const char *const states[_VMCG_PSI_STATE_COUNT] = { "some", "full" };
	static const char *const windows[3] = { "10", "60", "300" };
	VmcgGroup *root = vmcg_tree_root(vmcg_daemon_tree(api->d));
	VmcgGroup *g;

	for (size_t i = 0; i < G_N_ELEMENTS(group_gauges); i++) {
		const GroupGauge *m = &group_gauges[i];

		family(out, m->name, "gauge", m->help);
		for (g = root; g; g = next_group(g, root)) {
			uint64_t pages = m->pages(g);

			sample_begin(out, m->name, "group", vmcg_group_path(g));
			if (m->limit && pages >= VMCG_PAGES_MAX)
				g_string_append(out, "} +Inf\n");
			else
				sample_end_u64(out, pages * VMCG_PAGE_SIZE);
		}
	}

	for (int local = 0; local < 2; local++) {
		const char *name = local ? "vmcg_group_memory_events_local_total"
					 : "vmcg_group_memory_events_total";

		family(out, name, "counter",
		       local ? "Memory events in the group itself (memory.events.local)."
			     : "Memory events in the group and below (memory.events).");
		for (g = root; g; g = next_group(g, root)) {
			for (int e = 0; e < _VMCG_EVENT_COUNT; e++) {
				sample_begin(out, name, "group", vmcg_group_path(g));
				g_string_append_printf(out, ",event=\"%s\"",
						       vmcg_event_to_string(e));
				sample_end_u64(out, vmcg_group_events(g, e, local));
			}
		}
	}

	family(out, "vmcg_group_memory_stat_bytes", "gauge",
	       "memory.stat items of the group's subtree.");
	for (g = root; g; g = next_group(g, root)) {
		for (int s = 0; s < _VMCG_STAT_COUNT; s++) {
			sample_begin(out, "vmcg_group_memory_stat_bytes", "group",
				     vmcg_group_path(g));
			g_string_append_printf(out, ",item=\"%s\"", vmcg_stat_to_string(s));
			sample_end_u64(out, vmcg_group_stat(g, s) * VMCG_PAGE_SIZE);
		}
	}

	family(out, "vmcg_group_memory_pressure_stall_seconds_total", "counter",
	       "Time some or all vCPUs of the group were stalled on memory (memory.pressure).");
	for (g = root; g; g = next_group(g, root)) {
		for (int s = 0; s < _VMCG_PSI_STATE_COUNT; s++) {
			uint32_t avg[3];
			uint64_t total;

			vmcg_psi_read(vmcg_group_psi(g), s, avg, &total);
			sample_begin(out, "vmcg_group_memory_pressure_stall_seconds_total", "group",
				     vmcg_group_path(g));
			g_string_append_printf(out, ",kind=\"%s\"} %" G_GUINT64_FORMAT ".%06u\n",
					       states[s], total / G_USEC_PER_SEC,
					       (unsigned)(total % G_USEC_PER_SEC));
		}
	}

	family(out, "vmcg_group_memory_pressure_ratio", "gauge",
	       "Share of time stalled, averaged over 10, 60 and 300 s (memory.pressure avg).");
	for (g = root; g; g = next_group(g, root)) {
		for (int s = 0; s < _VMCG_PSI_STATE_COUNT; s++) {
			uint32_t avg[3];
			uint64_t total;

			vmcg_psi_read(vmcg_group_psi(g), s, avg, &total);
			for (int w = 0; w < 3; w++) {
				sample_begin(out, "vmcg_group_memory_pressure_ratio", "group",
					     vmcg_group_path(g));
				g_string_append_printf(out, ",kind=\"%s\",window=\"%s\"} %u.%04u\n",
						       states[s], windows[w], avg[w] / 10000,
						       avg[w] % 10000);
			}
		}
	}

	family(out, "vmcg_group_vmpressure_level", "gauge",
	       "vmpressure level: 0 none, 1 low, 2 medium, 3 critical.");
	for (g = root; g; g = next_group(g, root)) {
		VmcgVmpressureLevel level;

		level = vmcg_vmpressure_level(vmcg_group_vmpressure(g),
					      vmcg_daemon_now_usec(api->d), api->hold_usec);
		sample_begin(out, "vmcg_group_vmpressure_level", "group", vmcg_group_path(g));
		sample_end_u64(out, (uint64_t)(level - VMCG_VMPRESSURE_NONE));
	}

	family(out, "vmcg_group_vms", "gauge", "VMs attached to the group itself.");
	for (g = root; g; g = next_group(g, root)) {
		sample_begin(out, "vmcg_group_vms", "group", vmcg_group_path(g));
		sample_end_u64(out, vmcg_group_nr_vms(g));
	}
}

static void vm_sample(GString *out, const char *name, const VmcgDvmInfo *i)
{
	sample_begin(out, name, "vm", i->name);
	g_string_append(out, ",group=\"");
	append_label(out, i->group);
	g_string_append_c(out, '"');
}

typedef enum VmValue {
	VM_CURRENT,
	VM_RAM,
	VM_RESIDENT,
	VM_OVERHEAD,
	VM_BALLOON_TARGET,
	VM_BALLOON_ACTUAL,
	VM_FLOOR,
	VM_OOM_PRIORITY,
	VM_STATS_AGE,
} VmValue;

static const struct {
	const char *name;
	const char *help;
	VmValue value;
} vm_gauges[] = {
	{ "vmcg_vm_memory_current_bytes", "Memory charged for the VM.", VM_CURRENT },
	{ "vmcg_vm_ram_bytes", "Guest RAM size, once known.", VM_RAM },
	{ "vmcg_vm_resident_bytes", "Last sample of resident guest RAM.", VM_RESIDENT },
	{ "vmcg_vm_overhead_bytes", "VMM overhead of the VM.", VM_OVERHEAD },
	{ "vmcg_vm_balloon_target_bytes", "Guest size the balloon aims at, once set.",
	  VM_BALLOON_TARGET },
	{ "vmcg_vm_balloon_actual_bytes", "Guest size as the balloon reports it, once known.",
	  VM_BALLOON_ACTUAL },
	{ "vmcg_vm_floor_bytes", "Never balloon below this; +Inf for max.", VM_FLOOR },
	{ "vmcg_vm_oom_priority", "OOM priority (the oom_score_adj analog).", VM_OOM_PRIORITY },
	{ "vmcg_vm_guest_stats_age_seconds", "Age of the guest's last memory statistics.",
	  VM_STATS_AGE },
};

static void metrics_vms(VmcgApi *api, GString *out)
{
	static const char *const vm_states[] = { "connecting", "ready", "paused", "gone" };
	VmcgDvm *vm;
	VmcgDvmInfo i;

	for (size_t k = 0; k < G_N_ELEMENTS(vm_gauges); k++) {
		family(out, vm_gauges[k].name, "gauge", vm_gauges[k].help);
		for (vm = vmcg_daemon_vm_first(api->d); vm; vm = vmcg_daemon_vm_next(vm)) {
			vmcg_dvm_info(vm, &i);
			switch (vm_gauges[k].value) {
			case VM_CURRENT:
				vm_sample(out, vm_gauges[k].name, &i);
				sample_end_u64(out, i.current);
				break;
			case VM_RAM:
			case VM_BALLOON_TARGET:
			case VM_BALLOON_ACTUAL: {
				uint64_t v = vm_gauges[k].value == VM_RAM ? i.ram
					     : vm_gauges[k].value == VM_BALLOON_TARGET
						     ? i.balloon_target
						     : i.balloon_actual;

				if (v) { /* 0 is "not known": no sample rather than a false 0 */
					vm_sample(out, vm_gauges[k].name, &i);
					sample_end_u64(out, v);
				}
				break;
			}
			case VM_RESIDENT:
				vm_sample(out, vm_gauges[k].name, &i);
				sample_end_u64(out, i.resident);
				break;
			case VM_OVERHEAD:
				vm_sample(out, vm_gauges[k].name, &i);
				sample_end_u64(out, i.overhead);
				break;
			case VM_FLOOR:
				vm_sample(out, vm_gauges[k].name, &i);
				if (i.floor == VMCG_BYTES_MAX)
					g_string_append(out, "} +Inf\n");
				else
					sample_end_u64(out, i.floor);
				break;
			case VM_OOM_PRIORITY:
				vm_sample(out, vm_gauges[k].name, &i);
				g_string_append_printf(out, "} %d\n", (int)i.oom_priority);
				break;
			case VM_STATS_AGE:
				if (i.has_stats && i.stats_age_usec >= 0) {
					vm_sample(out, vm_gauges[k].name, &i);
					g_string_append_printf(
						out, "} %" G_GINT64_FORMAT ".%06u\n",
						i.stats_age_usec / G_USEC_PER_SEC,
						(unsigned)(i.stats_age_usec % G_USEC_PER_SEC));
				}
				break;
			}
		}
	}

	family(out, "vmcg_vm_state", "gauge", "1 for the VM's current state.");
	for (vm = vmcg_daemon_vm_first(api->d); vm; vm = vmcg_daemon_vm_next(vm)) {
		vmcg_dvm_info(vm, &i);
		for (size_t s = 0; s < G_N_ELEMENTS(vm_states); s++) {
			vm_sample(out, "vmcg_vm_state", &i);
			g_string_append_printf(out, ",state=\"%s\"", vm_states[s]);
			sample_end_u64(out, i.state && strcmp(i.state, vm_states[s]) == 0);
		}
	}

	family(out, "vmcg_vm_guest_memory_bytes", "gauge",
	       "The guest's own memory statistics (hints, never trusted for safety).");
	for (vm = vmcg_daemon_vm_first(api->d); vm; vm = vmcg_daemon_vm_next(vm)) {
		const char *kinds[] = { "total", "free", "available", "cache" };
		uint64_t v[4];

		vmcg_dvm_info(vm, &i);
		if (!i.has_stats)
			continue;
		v[0] = i.stat_total;
		v[1] = i.stat_free;
		v[2] = i.stat_available;
		v[3] = i.stat_cache;
		for (int k = 0; k < 4; k++) {
			vm_sample(out, "vmcg_vm_guest_memory_bytes", &i);
			g_string_append_printf(out, ",kind=\"%s\"", kinds[k]);
			sample_end_u64(out, v[k]);
		}
	}
}

static void handle_metrics(VmcgApi *api, SoupServerMessage *msg)
{
	GString *out = g_string_sized_new(16384);
	VmcgTree *tree = vmcg_daemon_tree(api->d);
	gsize len;

	family(out, "vmcg_groups", "gauge", "Groups in the tree, the root included.");
	g_string_append_printf(out, "vmcg_groups %zu\n", vmcg_tree_nr_groups(tree));
	family(out, "vmcg_vms", "gauge", "VMs the daemon manages.");
	g_string_append_printf(out, "vmcg_vms %zu\n", vmcg_tree_nr_vms(tree));
	family(out, "vmcg_api_event_subscribers", "gauge", "Open event streams.");
	g_string_append_printf(out, "vmcg_api_event_subscribers %u\n", api->subs.length);
	family(out, "vmcg_api_connections", "gauge", "Open API connections.");
	g_string_append_printf(out, "vmcg_api_connections %u\n", g_hash_table_size(api->conns));
	metrics_groups(api, out);
	metrics_vms(api, out);

	len = out->len;
	soup_server_message_set_status(msg, SOUP_STATUS_OK, NULL);
	soup_server_message_set_response(msg, "text/plain; version=0.0.4; charset=utf-8",
					 SOUP_MEMORY_TAKE, g_string_free(out, FALSE), len);
}

/* ---- event stream ---- */

static void sub_free(Sub *s)
{
	VmcgApi *api = s->api;

	g_queue_unlink(&api->subs, &s->link);
	if (s->daemon_id)
		vmcg_daemon_unsubscribe(api->d, s->daemon_id);
	g_clear_handle_id(&s->keepalive_id, g_source_remove);
	g_clear_handle_id(&s->drop_id, g_source_remove);
	g_clear_signal_handler(&s->wrote_chunk_id, s->msg);
	g_clear_signal_handler(&s->finished_id, s->msg);
	g_queue_clear(&s->chunk_sizes);
	g_object_unref(s->msg);
	g_free(s);
}

/*
 * Queue @text (@len bytes). Nothing touches @s after the unpause: the
 * message may finish, and @s be freed, from inside it.
 */
static void sub_push(Sub *s, char *text, gsize len)
{
	SoupMessageBody *body = soup_server_message_get_response_body(s->msg);

	g_queue_push_tail(&s->chunk_sizes, GSIZE_TO_POINTER(len));
	s->queued += len;
	soup_message_body_append(body, SOUP_MEMORY_TAKE, text, len);
	soup_server_message_unpause(s->msg);
}

static gboolean sub_drop_timeout(gpointer userdata)
{
	Sub *s = userdata;
	GSocket *sock = soup_server_message_get_socket(s->msg);

	s->drop_id = 0;
	g_info("api: event subscriber did not take its last event in %d s: closing",
	       SSE_DROP_GRACE_SEC);
	/* The pending write fails, libsoup finishes the message, on_sub_finished frees @s. */
	if (sock)
		g_socket_shutdown(sock, TRUE, TRUE, NULL);
	return G_SOURCE_REMOVE;
}

/* The subscriber is behind by more than SSE_QUEUE_MAX: tell it, and end the stream. */
static void sub_drop(Sub *s, const char *reason)
{
	SoupMessageBody *body = soup_server_message_get_response_body(s->msg);
	g_autoptr(json_object) data = json_object_new_object();
	char *text;

	s->dropping = true;
	g_clear_handle_id(&s->keepalive_id, g_source_remove);
	json_object_object_add(data, "reason", json_object_new_string(reason));
	json_object_object_add(data, "queued", json_object_new_uint64(s->queued));
	text = g_strdup_printf("event: overflow\ndata: %s\n\n",
			       json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN));
	g_message("api: dropping a slow event subscriber (%zu bytes unread)", (size_t)s->queued);
	s->drop_id = g_timeout_add_seconds(SSE_DROP_GRACE_SEC, sub_drop_timeout, s);
	g_queue_push_tail(&s->chunk_sizes, GSIZE_TO_POINTER(strlen(text)));
	s->queued += strlen(text);
	soup_message_body_append(body, SOUP_MEMORY_TAKE, text, strlen(text));
	soup_message_body_complete(body);
	soup_server_message_unpause(s->msg);
}

static void sub_send(Sub *s, char *text)
{
	gsize len = strlen(text);

	if (s->dropping) {
		g_free(text);
		return;
	}
	if (s->queued + len > SSE_QUEUE_MAX) {
		g_free(text);
		sub_drop(s, "queue_overflow");
		return;
	}
	sub_push(s, text, len);
}

static void on_sub_event(const char *type, json_object *data, gpointer userdata)
{
	Sub *s = userdata;

	if (s->dropping)
		return;
	/* PLAIN JSON has no newline, so one data: line carries it (an SSE line cannot). */
	sub_send(s, g_strdup_printf("event: %s\ndata: %s\n\n", type,
				    data ? json_object_to_json_string_ext(
						   data, JSON_C_TO_STRING_PLAIN |
								 JSON_C_TO_STRING_NOSLASHESCAPE)
					 : "{}"));
}

static gboolean on_sub_keepalive(gpointer userdata)
{
	Sub *s = userdata;

	sub_send(s, g_strdup(": keep-alive\n\n"));
	return G_SOURCE_CONTINUE;
}

static void on_sub_wrote_chunk(SoupServerMessage *msg, gpointer userdata)
{
	Sub *s = userdata;

	(void)msg;
	if (!g_queue_is_empty(&s->chunk_sizes))
		s->queued -= GPOINTER_TO_SIZE(g_queue_pop_head(&s->chunk_sizes));
}

static void on_sub_finished(SoupServerMessage *msg, gpointer userdata)
{
	(void)msg;
	sub_free(userdata);
}

static void handle_events(VmcgApi *api, SoupServerMessage *msg, gboolean head)
{
	SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
	Sub *s;

	if (api->subs.length >= SSE_SUBSCRIBERS_MAX) {
		soup_message_headers_replace(h, "Retry-After", "10");
		reply_errorf(msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "busy",
			     "too many event subscribers (at most %d)", SSE_SUBSCRIBERS_MAX);
		return;
	}
	soup_server_message_set_status(msg, SOUP_STATUS_OK, NULL);
	soup_message_headers_replace(h, "Content-Type", "text/event-stream; charset=utf-8");
	soup_message_headers_replace(h, "Cache-Control", "no-cache");
	if (head)
		return;
	soup_message_headers_set_encoding(h,
					  soup_server_message_get_http_version(msg) == SOUP_HTTP_1_0
						  ? SOUP_ENCODING_EOF
						  : SOUP_ENCODING_CHUNKED);
	/* Written chunks are dropped, not kept for a body that never ends. */
	soup_message_body_set_accumulate(soup_server_message_get_response_body(msg), FALSE);

	s = g_new0(Sub, 1);
	s->api = api;
	s->msg = g_object_ref(msg);
	s->link.data = s;
	g_queue_init(&s->chunk_sizes);
	g_queue_push_tail_link(&api->subs, &s->link);
	s->wrote_chunk_id = g_signal_connect(msg, "wrote-chunk", G_CALLBACK(on_sub_wrote_chunk), s);
	s->finished_id = g_signal_connect(msg, "finished", G_CALLBACK(on_sub_finished), s);
	s->daemon_id = vmcg_daemon_subscribe(api->d, on_sub_event, s);
	s->keepalive_id = g_timeout_add_seconds(SSE_KEEPALIVE_SEC, on_sub_keepalive, s);
	/* A first comment, so the client sees the stream open at once. */
	sub_push(s, g_strdup(": vmcg events\n\n"), strlen(": vmcg events\n\n"));
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
		reply_errorf(msg, SOUP_STATUS_NOT_FOUND, "not_found", "no group %s", path);
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
		reply_errorf(msg, SOUP_STATUS_PRECONDITION_FAILED, "exists", "group %s exists",
			     path);
		return;
	}
	if (if_match && strcmp(if_match, "*") == 0 && !exists) {
		reply_errorf(msg, SOUP_STATUS_PRECONDITION_FAILED, "not_found", "no group %s",
			     path);
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
		g_autoptr(json_object) obj = group_to_json(api, g, false);

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
	g_autoptr(json_object) obj = vm_to_json(vm);

	reply_json(msg, status, obj, pretty);
}

static void handle_vm_add(VmcgApi *api, SoupServerMessage *msg, const Request *req, gboolean pretty)
{
	g_auto(VmcgApiVmRequest) vr = { 0 };
	g_autoptr(GError) error = NULL;
	g_autofree char *escaped = NULL, *loc = NULL;
	VmcgDvm *vm;

	if (!vmcg_api_parse_vm_add((const char *)req->body->data, req->body->len, &vr, &error) ||
	    !vmcg_daemon_vm_add(api->d, vr.name, "qmp", vr.qmp, vr.group ?: "/", &vr.settings,
				&error)) {
		reply_gerror(msg, error);
		return;
	}
	vm = vmcg_daemon_vm_lookup(api->d, vr.name);
	if (!vm) {
		reply_errorf(msg, SOUP_STATUS_NOT_FOUND, "not_found", "VM %s went away", vr.name);
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
		reply_errorf(msg, SOUP_STATUS_NOT_FOUND, "not_found", "no VM %s", name);
		return;
	}
	vmcg_dvm_info(vm, &info);
	old_group = g_strdup(info.group);
	if (vr.group && strcmp(vr.group, old_group) != 0 &&
	    !vmcg_daemon_vm_move(api->d, name, vr.group, &error)) {
		reply_gerror(msg, error);
		return;
	}
	if ((vr.settings.has_floor || vr.settings.has_oom_priority) &&
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
		reply_errorf(msg, SOUP_STATUS_NOT_FOUND, "not_found", "VM %s went away", name);
		return;
	}
	reply_vm(msg, vm, SOUP_STATUS_OK, pretty);
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
		obj = group_to_json(api, vmcg_tree_root(vmcg_daemon_tree(api->d)), true);
		reply_json(msg, SOUP_STATUS_OK, obj, pretty);
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
			obj = group_to_json(api, g, query_has(msg, "recursive"));
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
		obj = json_object_new_array();
		for (vm = vmcg_daemon_vm_first(api->d); vm; vm = vmcg_daemon_vm_next(vm))
			json_object_array_add(obj, vm_to_json(vm));
		reply_json(msg, SOUP_STATUS_OK, obj, pretty);
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
			g_autofree char *q = g_utf8_validate(arg, -1, NULL) ? quote(arg) : NULL;

			reply_errorf(msg, SOUP_STATUS_NOT_FOUND, "not_found", "no VM %s",
				     q ?: "by that name");
		}
		return;
	case ROUTE_EVENTS:
		handle_events(api, msg, method == M_HEAD);
		return;
	case ROUTE_METRICS:
		handle_metrics(api, msg);
		return;
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

/*
 * After the headers, before the body: everything that can be decided
 * without the body is, so that a refused request is not read (and a client
 * that sent "Expect: 100-continue" does not send it): the route, the
 * method, the peer's right to write and a declared length over the limit.
 * Then the body is collected here under the limit, so that a chunked one
 * that turns out too long costs no more than the limit (the rest is read
 * and dropped, then the request gets its 413).
 */
static void on_early(SoupServer *server, SoupServerMessage *msg, const char *path,
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
		reply_errorf(msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "method_not_allowed",
			     "%s is not allowed here (allowed: %s)", method_name,
			     routes[route].allow);
		return;
	}
	if ((method & (M_PUT | M_POST | M_DELETE)) && !peer_may_write(api, msg, &error)) {
		reply_error(msg, SOUP_STATUS_FORBIDDEN, "permission_denied", error->message);
		return;
	}
	if (soup_message_headers_get_encoding(h) == SOUP_ENCODING_CONTENT_LENGTH &&
	    soup_message_headers_get_content_length(h) > (goffset)api->body_limit) {
		reply_errorf(msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, "too_large",
			     "request body of %" G_GINT64_FORMAT " bytes is over the limit of "
			     "%zu bytes",
			     (gint64)soup_message_headers_get_content_length(h),
			     (size_t)api->body_limit);
		return;
	}
	req = g_new0(Request, 1);
	req->route = route;
	req->method = method;
	req->arg = g_steal_pointer(&arg);
	req->body = g_byte_array_new();
	req->limit = api->body_limit;
	g_object_set_data_full(G_OBJECT(msg), REQUEST_KEY, req, request_free);
	g_signal_connect(msg, "got-chunk", G_CALLBACK(on_got_chunk), req);
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
	if (!req) {
		reply_error(msg, SOUP_STATUS_INTERNAL_SERVER_ERROR, "internal",
			    "the request was not seen before its body");
		return;
	}
	if (req->too_large) {
		reply_errorf(msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, "too_large",
			     "request body is over the limit of %zu bytes",
			     (size_t)api->body_limit);
		return;
	}
	handle_route(api, msg, req);
}

/* ---- connections ---- */

static void on_conn_gone(gpointer userdata, GObject *where_the_socket_was)
{
	VmcgApi *api = userdata;

	g_hash_table_remove(api->conns, where_the_socket_was);
}

static void untrack_conn(VmcgApi *api, GSocket *sock)
{
	g_object_weak_unref(G_OBJECT(sock), on_conn_gone, api);
}

/*
 * libsoup before 3.3 leaks the GSocket of every accepted connection: its
 * listener keeps the reference g_socket_accept() returned (Debian 12 has
 * 3.2.3). The descriptor is closed, but the object stays: megabytes a
 * month for a scraper every 15 s. We track every connection's socket
 * anyway, for the cap; one that is closed and has no reference left but
 * that one is released here. A libsoup without the leak frees the socket
 * when the connection ends, on_conn_gone() forgets it, and this never
 * sees it; the version check makes sure we never take a reference that
 * is not ours.
 */
static void sweep_conns(VmcgApi *api)
{
	GHashTableIter it;
	gpointer key;

	if (!api->drop_leaked_sockets)
		return;
	g_hash_table_iter_init(&it, api->conns);
	while (g_hash_table_iter_next(&it, &key, NULL)) {
		GSocket *sock = key;

		if (g_socket_is_closed(sock) && g_atomic_int_get(&G_OBJECT(sock)->ref_count) == 1) {
			g_hash_table_iter_remove(&it);
			untrack_conn(api, sock);
			g_object_unref(sock);
		}
	}
}

/*
 * libsoup starts a request on a connection as soon as it is accepted, so
 * this sees every connection before it sends anything.
 */
static void on_request_started(SoupServer *server, SoupServerMessage *msg, gpointer userdata)
{
	VmcgApi *api = userdata;
	GSocket *sock = soup_server_message_get_socket(msg);

	(void)server;
	/*
	 * One request per connection. libsoup 3.2 also never frees a
	 * kept-alive connection that the client closes while idle (fixed in
	 * 3.3, libsoup commit d20c6601): every curl would leak a descriptor.
	 * On a unix socket a new connection costs next to nothing.
	 */
	soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Connection",
				     "close");
	if (!sock || g_hash_table_contains(api->conns, sock))
		return;
	sweep_conns(api);
	g_hash_table_add(api->conns, sock);
	g_object_weak_ref(G_OBJECT(sock), on_conn_gone, api);
	g_socket_set_timeout(sock, CONN_TIMEOUT_SEC);
	if (g_hash_table_size(api->conns) > CONNECTIONS_MAX) {
		/* Logged once per 100 refusals: a flood must not flood the log. */
		if (api->conns_refused++ % 100 == 0)
			g_warning("api: more than %d connections: closing new ones "
				  "(%" G_GUINT64_FORMAT " so far)",
				  CONNECTIONS_MAX, api->conns_refused);
		g_socket_shutdown(sock, TRUE, TRUE, NULL);
	}
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
	api->hold_usec = opts->vmpressure_hold_usec ?: VMCG_API_VMPRESSURE_HOLD_DEFAULT_USEC;
	g_queue_init(&api->subs);
	api->conns = g_hash_table_new(g_direct_hash, g_direct_equal);
	api->drop_leaked_sockets = soup_get_major_version() == 3 && soup_get_minor_version() < 3;

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
	if (!soup_server_listen_socket(api->server, sock, 0, error))
		return NULL;
	g_info("api: listening on %s", api->socket_path);
	return g_steal_pointer(&api);
}

void vmcg_api_free(VmcgApi *api)
{
	if (!api)
		return;
	while (!g_queue_is_empty(&api->subs))
		sub_free(g_queue_peek_head(&api->subs));
	if (api->server) {
		soup_server_disconnect(api->server);
		g_object_unref(api->server);
	}
	if (api->conns) {
		GHashTableIter it;
		gpointer sock;

		sweep_conns(api);
		/* Sockets that outlive the server must not call back into a freed api. */
		g_hash_table_iter_init(&it, api->conns);
		while (g_hash_table_iter_next(&it, &sock, NULL))
			untrack_conn(api, sock);
		g_hash_table_destroy(api->conns);
	}
	unlink_socket(api);
	g_free(api->socket_path);
	g_free(api);
}
