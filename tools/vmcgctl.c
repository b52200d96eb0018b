// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmcgctl: the command-line client of vmcgd's API (docs/vmcgctl.1.md).
 *
 * HTTP/1.1 over the daemon's unix socket with libsoup (a SoupSession whose
 * "remote-connectable" is the socket). The daemon does all validation; this
 * only turns arguments into request bodies and responses into text, and
 * exits with a status scripts can rely on:
 *
 *   0 ok, 1 usage (or a request the API calls invalid), 2 not found,
 *   3 conflict or busy, 4 permission, 5 daemon unreachable, 6 other error.
 */
#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <json-c/json.h>
#include <libsoup/soup.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vmcg/size.h"

G_DEFINE_AUTOPTR_CLEANUP_FUNC(json_object, json_object_put)

enum {
	EXIT_OK = 0,
	EXIT_USAGE = 1,
	EXIT_NOT_FOUND = 2,
	EXIT_CONFLICT = 3,
	EXIT_PERMISSION = 4,
	EXIT_UNREACHABLE = 5,
	EXIT_OTHER = 6,
};

#define SOCKET_DEFAULT "/run/vmcg/vmcgd.sock"
/* 30 s: every API call is answered from memory at once; longer means a hung daemon. */
#define REQUEST_TIMEOUT_SEC 30

typedef struct Ctl {
	SoupSession *session;
	const char *socket;
	gboolean json;
	gboolean utf8; /* the terminal takes box-drawing characters */
} Ctl;

static char *opt_socket;
static gboolean opt_json;
static char *opt_qmp;
static char *opt_group;
static char *opt_floor;
static char *opt_oom_priority;

static const GOptionEntry entries[] = {
	{ "socket", 's', 0, G_OPTION_ARG_FILENAME, &opt_socket,
	  "The daemon's socket (default: $VMCG_SOCKET or " SOCKET_DEFAULT ")", "PATH" },
	{ "json", 'j', 0, G_OPTION_ARG_NONE, &opt_json, "Print the API's JSON", NULL },
	{ "qmp", 0, 0, G_OPTION_ARG_FILENAME, &opt_qmp, "add: the VM's QMP socket", "PATH" },
	{ "group", 'g', 0, G_OPTION_ARG_STRING, &opt_group, "add: the VM's group (default /)",
	  "GROUP" },
	{ "floor", 0, 0, G_OPTION_ARG_STRING, &opt_floor, "add: never balloon below this", "SIZE" },
	{ "oom-priority", 0, 0, G_OPTION_ARG_STRING, &opt_oom_priority,
	  "add: OOM priority, -1000 to 1000", "N" },
	{ NULL, 0, 0, G_OPTION_ARG_NONE, NULL, NULL, NULL },
};

static const char summary[] =
	"Commands:\n"
	"  tree                              the group tree with usage against limits\n"
	"  get PATH                          one group\n"
	"  create PATH [KNOB=VALUE...]       create a group (fails if it exists)\n"
	"  set PATH KNOB=VALUE...            change a group (fails if it does not exist)\n"
	"  rm PATH                           remove an empty group\n"
	"  reclaim PATH SIZE                 ask the group's VMs for SIZE now\n"
	"  vms                               the VMs\n"
	"  vm NAME                           one VM\n"
	"  add NAME --qmp PATH [--group G] [--floor SIZE] [--oom-priority N]\n"
	"                                    register a QEMU by its QMP socket\n"
	"  move NAME GROUP                   move a VM to another group\n"
	"  set-vm NAME KEY=VALUE...          floor=SIZE, oom-priority=N, group=GROUP\n"
	"  forget NAME                       stop managing a VM\n"
	"  watch                             follow the event stream\n"
	"  metrics                           the Prometheus metrics\n"
	"\n"
	"Knobs: memory.min memory.low memory.high memory.max (or min low high max)\n"
	"       as bytes, 512M, 1.5G or max; memory.oom.group and overhead-in-max as\n"
	"       true/false; oom-action as notify, pause or destroy; cluster.memory.max\n"
	"       (the group's quota across the cluster, docs/cluster.md) as a size or max.\n"
	"\n"
	"Exit status: 0 ok, 1 usage, 2 not found, 3 conflict or busy, 4 permission,\n"
	"5 daemon unreachable, 6 other error.";

static int G_GNUC_PRINTF(1, 2) usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("vmcgctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'vmcgctl --help'.\n", stderr);
	return EXIT_USAGE;
}

/* ---- requests ---- */

/* An API error code to an exit status. */
static int exit_for_code(const char *code, guint status)
{
	if (g_strcmp0(code, "not_found") == 0)
		return EXIT_NOT_FOUND;
	if (g_strcmp0(code, "exists") == 0 || g_strcmp0(code, "busy") == 0 ||
	    g_strcmp0(code, "no_space") == 0)
		return EXIT_CONFLICT;
	if (g_strcmp0(code, "permission_denied") == 0)
		return EXIT_PERMISSION;
	if (g_strcmp0(code, "invalid_argument") == 0 || g_strcmp0(code, "too_large") == 0)
		return EXIT_USAGE;
	if (status == SOUP_STATUS_NOT_FOUND)
		return EXIT_NOT_FOUND;
	if (status == SOUP_STATUS_CONFLICT)
		return EXIT_CONFLICT;
	if (status == SOUP_STATUS_FORBIDDEN)
		return EXIT_PERMISSION;
	return EXIT_OTHER;
}

static int transport_error(Ctl *c, const GError *error)
{
	fprintf(stderr, "vmcgctl: cannot reach vmcgd at %s: %s\n", c->socket, error->message);
	if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED))
		return EXIT_PERMISSION;
	return EXIT_UNREACHABLE;
}

static SoupMessage *new_message(const char *method, const char *path)
{
	g_autofree char *uri = g_strconcat("http://localhost", path, NULL);

	return soup_message_new(method, uri);
}

/*
 * Send a request; on success *@ret is the response's JSON (NULL for an
 * empty body). On failure the API's message is on stderr and the exit
 * status is returned. With --json the response body, error or not, is
 * printed as it came when @print is set.
 */
static int request(Ctl *c, const char *method, const char *path, json_object *body,
		   const char *header, const char *value, gboolean print, json_object **ret)
{
	g_autoptr(SoupMessage) msg = new_message(method, path);
	g_autoptr(GBytes) resp = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(json_object) obj = NULL;
	const char *data;
	gsize len;
	guint status;

	if (!msg) {
		fprintf(stderr, "vmcgctl: invalid request path %s\n", path);
		return EXIT_USAGE;
	}
	if (body) {
		const char *text = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);
		g_autoptr(GBytes) bytes = g_bytes_new(text, strlen(text));

		soup_message_set_request_body_from_bytes(msg, "application/json", bytes);
	}
	if (header)
		soup_message_headers_replace(soup_message_get_request_headers(msg), header, value);
	resp = soup_session_send_and_read(c->session, msg, NULL, &error);
	if (!resp)
		return transport_error(c, error);
	status = soup_message_get_status(msg);
	data = g_bytes_get_data(resp, &len);
	if (len > 0) {
		g_autofree char *text = g_strndup(data, len);

		obj = json_tokener_parse(text);
	}
	if (print && c->json && len > 0)
		fwrite(data, 1, len, stdout);

	if (!SOUP_STATUS_IS_SUCCESSFUL(status)) {
		json_object *err = NULL, *code = NULL, *message = NULL;

		if (obj && json_object_object_get_ex(obj, "error", &err)) {
			json_object_object_get_ex(err, "code", &code);
			json_object_object_get_ex(err, "message", &message);
		}
		fprintf(stderr, "vmcgctl: %s\n",
			message ? json_object_get_string(message)
				: soup_message_get_reason_phrase(msg));
		return exit_for_code(code ? json_object_get_string(code) : NULL, status);
	}
	if (len > 0 && !obj) {
		fprintf(stderr, "vmcgctl: the daemon's answer is not JSON\n");
		return EXIT_OTHER;
	}
	if (ret)
		*ret = g_steal_pointer(&obj);
	return EXIT_OK;
}

/* "/tenants/acme" to "/v1/groups/tenants/acme": each name escaped. */
static char *group_url(const char *path, const char *suffix)
{
	g_autofree char *escaped = NULL;

	if (path[0] != '/')
		return NULL;
	escaped = g_uri_escape_string(path + 1, "/", FALSE);
	return g_strconcat("/v1/groups/", escaped, suffix, NULL);
}

static char *vm_url(const char *name)
{
	g_autofree char *escaped = g_uri_escape_string(name, NULL, FALSE);

	return g_strconcat("/v1/vms/", escaped, NULL);
}

/* ---- formatting ---- */

static const char *get_str(json_object *obj, const char *key)
{
	json_object *v;

	if (!obj || !json_object_object_get_ex(obj, key, &v) || !v)
		return NULL;
	return json_object_get_string(v);
}

/* A size member: bytes, or "max" (UINT64_MAX); false if absent or null. */
static bool get_size(json_object *obj, const char *key, uint64_t *ret)
{
	json_object *v;

	if (!obj || !json_object_object_get_ex(obj, key, &v) || !v)
		return false;
	if (json_object_is_type(v, json_type_string)) {
		if (strcmp(json_object_get_string(v), "max") != 0)
			return false;
		*ret = VMCG_SIZE_MAX;
		return true;
	}
	*ret = json_object_get_uint64(v);
	return true;
}

static void human(uint64_t bytes, char buf[VMCG_SIZE_STRLEN])
{
	if (vmcg_size_format_human(bytes, buf, VMCG_SIZE_STRLEN) < 0)
		g_strlcpy(buf, "?", VMCG_SIZE_STRLEN);
}

static const char *size_str(json_object *obj, const char *key, char buf[VMCG_SIZE_STRLEN])
{
	uint64_t v;

	if (!get_size(obj, key, &v))
		return "-";
	human(v, buf);
	return buf;
}

/* Width on the terminal of a UTF-8 string of narrow characters. */
static int width(const char *s)
{
	return (int)g_utf8_strlen(s, -1);
}

static void print_padded(const char *s, int w)
{
	fputs(s, stdout);
	for (int i = width(s); i < w; i++)
		putchar(' ');
}

/* ---- tree ---- */

#define BAR_CELLS 10

typedef struct Row {
	char *label; /* indentation and name */
	json_object *group;
} Row;

static void collect_rows(Ctl *c, json_object *g, const char *prefix, bool last, bool root,
			 GArray *rows)
{
	json_object *children = NULL;
	const char *path = get_str(g, "path");
	const char *name = path ? strrchr(path, '/') + 1 : "?";
	Row row;
	size_t n;

	if (root)
		row.label = g_strdup("/");
	else
		row.label = g_strconcat(prefix,
					c->utf8 ? (last ? "└─ " : "├─ ") : (last ? "`- " : "|- "),
					name, NULL);
	row.group = g;
	g_array_append_val(rows, row);

	if (!json_object_object_get_ex(g, "children", &children) ||
	    !json_object_is_type(children, json_type_array))
		return;
	n = json_object_array_length(children);
	for (size_t i = 0; i < n; i++) {
		g_autofree char *child_prefix =
			root ? g_strdup("")
			     : g_strconcat(prefix, last ? "   " : (c->utf8 ? "│  " : "|  "), NULL);

		collect_rows(c, json_object_array_get_idx(children, i), child_prefix, i + 1 == n,
			     false, rows);
	}
}

/* Usage against max, or against high when max is unlimited: "[####......]  42%". */
static void usage_bar(Ctl *c, json_object *g, char *buf, size_t size)
{
	uint64_t cur = 0, lim = VMCG_SIZE_MAX, max, high;
	GString *s;
	unsigned pct, fill;

	get_size(g, "memory.current", &cur);
	if (get_size(g, "memory.max", &max) && max != VMCG_SIZE_MAX)
		lim = max;
	else if (get_size(g, "memory.high", &high) && high != VMCG_SIZE_MAX)
		lim = high;
	if (lim == VMCG_SIZE_MAX || lim == 0) {
		g_strlcpy(buf, "", size);
		return;
	}
	pct = (unsigned)MIN((double)cur * 100.0 / (double)lim, 999.0);
	fill = MIN(pct, 100u) * BAR_CELLS / 100;
	s = g_string_new("[");
	for (unsigned i = 0; i < BAR_CELLS; i++)
		g_string_append(s, i < fill ? (c->utf8 ? "█" : "#") : (c->utf8 ? "░" : "."));
	g_string_append_printf(s, "] %3u%%", pct);
	g_strlcpy(buf, s->str, size);
	g_string_free(s, TRUE);
}

static int cmd_tree(Ctl *c)
{
	g_autoptr(json_object) root = NULL;
	g_autoptr(GArray) rows = g_array_new(FALSE, FALSE, sizeof(Row));
	int r, name_w = 5;

	r = request(c, "GET", "/v1/groups", NULL, NULL, NULL, TRUE, &root);
	if (r || c->json)
		return r;
	collect_rows(c, root, "", true, true, rows);
	for (guint i = 0; i < rows->len; i++)
		name_w = MAX(name_w, width(g_array_index(rows, Row, i).label));

	print_padded("GROUP", name_w);
	printf("  %7s %7s %7s %7s %7s  %-17s %4s  %s\n", "CURRENT", "MIN", "LOW", "HIGH", "MAX",
	       "USAGE", "VMS", "PRESSURE");
	for (guint i = 0; i < rows->len; i++) {
		Row *row = &g_array_index(rows, Row, i);
		json_object *vms = NULL;
		char cur[VMCG_SIZE_STRLEN], min[VMCG_SIZE_STRLEN], low[VMCG_SIZE_STRLEN];
		char high[VMCG_SIZE_STRLEN], max[VMCG_SIZE_STRLEN], bar[128];

		usage_bar(c, row->group, bar, sizeof(bar));
		json_object_object_get_ex(row->group, "vms", &vms);
		print_padded(row->label, name_w);
		printf("  %7s %7s %7s %7s %7s  ", size_str(row->group, "memory.current", cur),
		       size_str(row->group, "memory.min", min),
		       size_str(row->group, "memory.low", low),
		       size_str(row->group, "memory.high", high),
		       size_str(row->group, "memory.max", max));
		print_padded(bar, 17);
		printf(" %4zu  %s\n", vms ? json_object_array_length(vms) : 0,
		       get_str(row->group, "vmpressure") ?: "-");
		g_free(row->label);
	}
	return EXIT_OK;
}

/* ---- groups ---- */

static void print_kv(const char *key, const char *value)
{
	printf("%-20s %s\n", key, value);
}

static void print_size_kv(json_object *obj, const char *key)
{
	char buf[VMCG_SIZE_STRLEN];
	uint64_t v;

	if (get_size(obj, key, &v) && v != VMCG_SIZE_MAX && v >= 1024) {
		g_autofree char *s = NULL;

		human(v, buf);
		s = g_strdup_printf("%s (%" G_GUINT64_FORMAT ")", buf, (guint64)v);
		print_kv(key, s);
	} else {
		print_kv(key, size_str(obj, key, buf));
	}
}

/* {"a":1,"b":2} as "a 1  b 2", sizes human when @sizes. */
static void print_flat(const char *key, json_object *obj, bool sizes)
{
	g_autoptr(GString) s = g_string_new(NULL);

	if (!obj || !json_object_is_type(obj, json_type_object)) {
		print_kv(key, "-");
		return;
	}
	json_object_object_foreach(obj, k, v)
	{
		char buf[VMCG_SIZE_STRLEN];

		if (s->len)
			g_string_append(s, "  ");
		if (sizes) {
			human(json_object_get_uint64(v), buf);
			g_string_append_printf(s, "%s %s", k, buf);
		} else {
			g_string_append_printf(s, "%s %s", k, json_object_get_string(v));
		}
	}
	print_kv(key, s->str);
}

static void print_list(const char *key, json_object *obj)
{
	g_autoptr(GString) s = g_string_new(NULL);
	json_object *arr = NULL;

	if (obj && json_object_object_get_ex(obj, key, &arr) &&
	    json_object_is_type(arr, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(arr); i++) {
			if (s->len)
				g_string_append(s, ", ");
			g_string_append(s,
					json_object_get_string(json_object_array_get_idx(arr, i)));
		}
	}
	print_kv(key, s->len ? s->str : "-");
}

static int cmd_get(Ctl *c, const char *path)
{
	g_autoptr(json_object) g = NULL;
	g_autofree char *url = group_url(path, "");
	json_object *v = NULL, *pressure = NULL;
	int r;

	if (!url)
		return usage_error("a group path starts with '/': %s", path);
	r = request(c, "GET", url, NULL, NULL, NULL, TRUE, &g);
	if (r || c->json)
		return r;
	print_kv("path", get_str(g, "path") ?: path);
	print_size_kv(g, "memory.current");
	print_size_kv(g, "memory.peak");
	print_size_kv(g, "memory.min");
	print_size_kv(g, "memory.low");
	print_size_kv(g, "memory.high");
	print_size_kv(g, "memory.max");
	json_object_object_get_ex(g, "memory.events", &v);
	print_flat("memory.events", v, false);
	json_object_object_get_ex(g, "memory.events.local", &v);
	print_flat("memory.events.local", v, false);
	json_object_object_get_ex(g, "memory.stat", &v);
	print_flat("memory.stat", v, true);
	if (json_object_object_get_ex(g, "memory.pressure", &pressure)) {
		g_auto(GStrv) lines = g_strsplit(get_str(pressure, "text") ?: "", "\n", -1);

		for (char **l = lines; *l; l++)
			if (**l)
				print_kv(l == lines ? "memory.pressure" : "", *l);
	}
	print_kv("vmpressure", get_str(g, "vmpressure") ?: "-");
	print_kv("memory.oom.group", get_str(g, "memory.oom.group") ?: "-");
	print_kv("oom-action", get_str(g, "oom-action") ?: "-");
	print_kv("overhead-in-max", get_str(g, "overhead-in-max") ?: "-");
	if (json_object_object_get_ex(g, "cluster", &v) &&
	    json_object_is_type(v, json_type_object)) {
		json_object *hosts = NULL;
		char buf[VMCG_SIZE_STRLEN];
		uint64_t n;

		print_kv("cluster.memory.max", size_str(v, "memory.max", buf));
		print_kv("cluster.state", get_str(v, "state") ?: "-");
		print_kv("cluster.quota", size_str(v, "quota", buf));
		print_kv("cluster.grant", size_str(v, "grant", buf));
		print_kv("cluster.enforced", size_str(v, "enforced", buf));
		print_kv("cluster.pool", size_str(v, "pool", buf));
		print_kv("cluster.reason", get_str(v, "reason") ?: "-");
		if (get_str(v, "drift") && strcmp(get_str(v, "drift"), "true") == 0)
			print_kv("cluster.drift", "hosts disagree on cluster.memory.max");
		if (json_object_object_get_ex(v, "hosts", &hosts) &&
		    json_object_is_type(hosts, json_type_object)) {
			json_object_object_foreach(hosts, host, grant)
			{
				g_autofree char *k = g_strdup_printf("cluster.hosts.%s", host);

				n = (uint64_t)json_object_get_uint64(grant);
				human(n, buf);
				print_kv(k, buf);
			}
		}
		if (get_str(v, "error"))
			print_kv("cluster.error", get_str(v, "error"));
	}
	print_list("vms", g);
	print_list("children", g);
	return EXIT_OK;
}

static const struct {
	const char *alias;
	const char *knob;
} knob_aliases[] = {
	{ "min", "memory.min" },
	{ "low", "memory.low" },
	{ "high", "memory.high" },
	{ "max", "memory.max" },
	{ "oom.group", "memory.oom.group" },
	{ "oom-group", "memory.oom.group" },
};

static bool parse_bool(const char *s, bool *ret)
{
	static const char *const yes[] = { "true", "1", "yes", "on", NULL };
	static const char *const no[] = { "false", "0", "no", "off", NULL };

	if (g_strv_contains(yes, s))
		*ret = true;
	else if (g_strv_contains(no, s))
		*ret = false;
	else
		return false;
	return true;
}

/* A size as the API takes it: plain digits as an integer, the rest as a string. */
static json_object *size_value(const char *s)
{
	guint64 v;

	if (g_ascii_string_to_unsigned(s, 10, 0, G_MAXUINT64, &v, NULL) && g_ascii_isdigit(s[0]))
		return json_object_new_uint64(v);
	return json_object_new_string(s);
}

/* KNOB=VALUE arguments into a group body. */
static int knobs_body(char **args, int n, json_object *body)
{
	for (int i = 0; i < n; i++) {
		const char *eq = strchr(args[i], '=');
		g_autofree char *key = NULL;
		const char *value;
		bool b;

		if (!eq || eq == args[i])
			return usage_error("expected KNOB=VALUE, got \"%s\"", args[i]);
		key = g_strndup(args[i], eq - args[i]);
		value = eq + 1;
		for (size_t k = 0; k < G_N_ELEMENTS(knob_aliases); k++) {
			if (strcmp(key, knob_aliases[k].alias) == 0) {
				g_free(key);
				key = g_strdup(knob_aliases[k].knob);
				break;
			}
		}
		if ((g_str_has_prefix(key, "memory.") && strcmp(key, "memory.oom.group") != 0) ||
		    strcmp(key, "cluster.memory.max") == 0) {
			json_object_object_add(body, key, size_value(value));
		} else if (strcmp(key, "memory.oom.group") == 0 ||
			   strcmp(key, "overhead-in-max") == 0) {
			if (!parse_bool(value, &b))
				return usage_error("%s takes true or false, not \"%s\"", key,
						   value);
			json_object_object_add(body, key, json_object_new_boolean(b));
		} else if (strcmp(key, "oom-action") == 0) {
			json_object_object_add(body, key, json_object_new_string(value));
		} else {
			return usage_error("unknown knob \"%s\" (memory.min, memory.low, "
					   "memory.high, memory.max, memory.oom.group, "
					   "oom-action, overhead-in-max, cluster.memory.max)",
					   key);
		}
	}
	return EXIT_OK;
}

/* create: If-None-Match: * so an existing group is refused; set: If-Match: *. */
static int cmd_put_group(Ctl *c, const char *path, char **args, int n, bool create)
{
	g_autoptr(json_object) body = json_object_new_object();
	g_autoptr(json_object) resp = NULL;
	g_autofree char *url = group_url(path, "");
	int r;

	if (!url)
		return usage_error("a group path starts with '/': %s", path);
	if (!create && n == 0)
		return usage_error("set needs at least one KNOB=VALUE");
	r = knobs_body(args, n, body);
	if (r)
		return r;
	r = request(c, "PUT", url, body, create ? "If-None-Match" : "If-Match", "*", TRUE, &resp);
	return r;
}

static int cmd_rm(Ctl *c, const char *path)
{
	g_autofree char *url = group_url(path, "");

	if (!url)
		return usage_error("a group path starts with '/': %s", path);
	return request(c, "DELETE", url, NULL, NULL, NULL, TRUE, NULL);
}

static int cmd_reclaim(Ctl *c, const char *path, const char *size)
{
	g_autoptr(json_object) body = json_object_new_object();
	g_autoptr(json_object) resp = NULL;
	g_autofree char *url = group_url(path, "/reclaim"); /* "/": /v1/groups//reclaim */
	char want[VMCG_SIZE_STRLEN], got[VMCG_SIZE_STRLEN];
	uint64_t bytes = 0, planned = 0;
	int r;

	if (!url)
		return usage_error("a group path starts with '/': %s", path);
	json_object_object_add(body, "bytes", size_value(size));
	r = request(c, "POST", url, body, NULL, NULL, TRUE, &resp);
	if (r || c->json)
		return r;
	get_size(resp, "bytes", &bytes);
	get_size(resp, "planned", &planned);
	human(bytes, want);
	human(planned, got);
	printf("%s: asked the balloons for %s of %s\n", path, got, want);
	return EXIT_OK;
}

/* ---- VMs ---- */

static int cmd_vms(Ctl *c)
{
	g_autoptr(json_object) vms = NULL;
	int r, name_w = 4, group_w = 5;
	size_t n;

	r = request(c, "GET", "/v1/vms", NULL, NULL, NULL, TRUE, &vms);
	if (r || c->json)
		return r;
	if (!json_object_is_type(vms, json_type_array)) {
		fprintf(stderr, "vmcgctl: unexpected answer\n");
		return EXIT_OTHER;
	}
	n = json_object_array_length(vms);
	for (size_t i = 0; i < n; i++) {
		json_object *vm = json_object_array_get_idx(vms, i);

		name_w = MAX(name_w, width(get_str(vm, "name") ?: ""));
		group_w = MAX(group_w, width(get_str(vm, "group") ?: ""));
	}
	print_padded("NAME", name_w);
	putchar(' ');
	print_padded("GROUP", group_w);
	printf(" %-10s %7s %7s %7s %7s %5s\n", "STATE", "CURRENT", "TARGET", "ACTUAL", "FLOOR",
	       "PRIO");
	for (size_t i = 0; i < n; i++) {
		json_object *vm = json_object_array_get_idx(vms, i), *balloon = NULL;
		char cur[VMCG_SIZE_STRLEN], target[VMCG_SIZE_STRLEN], actual[VMCG_SIZE_STRLEN];
		char floor[VMCG_SIZE_STRLEN];

		json_object_object_get_ex(vm, "balloon", &balloon);
		print_padded(get_str(vm, "name") ?: "?", name_w);
		putchar(' ');
		print_padded(get_str(vm, "group") ?: "?", group_w);
		printf(" %-10s %7s %7s %7s %7s %5s\n", get_str(vm, "state") ?: "?",
		       size_str(vm, "memory.current", cur), size_str(balloon, "target", target),
		       size_str(balloon, "actual", actual), size_str(vm, "floor", floor),
		       get_str(vm, "oom-priority") ?: "-");
	}
	return EXIT_OK;
}

static int cmd_vm(Ctl *c, const char *name)
{
	g_autoptr(json_object) vm = NULL;
	g_autofree char *url = vm_url(name);
	json_object *balloon = NULL, *stats = NULL, *hooks = NULL;
	int r;

	r = request(c, "GET", url, NULL, NULL, NULL, TRUE, &vm);
	if (r || c->json)
		return r;
	print_kv("name", get_str(vm, "name") ?: name);
	print_kv("group", get_str(vm, "group") ?: "-");
	print_kv("state", get_str(vm, "state") ?: "-");
	print_kv("mode", get_str(vm, "mode") ?: "-");
	print_kv("backend", get_str(vm, "backend") ?: "qmp");
	print_kv("address", get_str(vm, "address") ?: get_str(vm, "qmp") ?: "-");
	if (get_str(vm, "domain")) {
		json_object *meta = NULL, *problems = NULL;

		print_kv("domain", get_str(vm, "domain"));
		print_kv("uuid", get_str(vm, "uuid") ?: "-");
		json_object_object_get_ex(vm, "metadata", &meta);
		if (meta)
			json_object_object_get_ex(meta, "problems", &problems);
		if (problems && json_object_is_type(problems, json_type_array) &&
		    json_object_array_length(problems)) {
			for (size_t k = 0; k < json_object_array_length(problems); k++)
				print_kv(k ? "" : "metadata",
					 json_object_get_string(
						 json_object_array_get_idx(problems, k)));
			print_kv("", get_str(meta, "fallback") ?: "");
		} else {
			print_kv("metadata", "valid");
		}
	}
	print_kv("pid", get_str(vm, "pid") ?: "-");
	print_size_kv(vm, "memory.current");
	print_size_kv(vm, "ram");
	print_size_kv(vm, "resident");
	print_size_kv(vm, "overhead");
	json_object_object_get_ex(vm, "balloon", &balloon);
	{
		char t[VMCG_SIZE_STRLEN], a[VMCG_SIZE_STRLEN];
		g_autofree char *s =
			g_strdup_printf("target %s  actual %s", size_str(balloon, "target", t),
					size_str(balloon, "actual", a));

		print_kv("balloon", s);
		if (balloon && json_object_object_get(balloon, "enforced") &&
		    !json_object_get_boolean(json_object_object_get(balloon, "enforced")))
			print_kv("", get_str(balloon, "reason") ?: "not enforced");
		else if (balloon &&
			 json_object_get_boolean(json_object_object_get(balloon, "external")))
			print_kv("", "moved by someone else: left there until its group needs "
				     "reclaim");
	}
	json_object_object_get_ex(vm, "stats", &stats);
	if (stats && json_object_is_type(stats, json_type_object)) {
		char b[4][VMCG_SIZE_STRLEN];
		uint64_t age = 0;
		bool has_age = get_size(stats, "age-usec", &age);
		g_autofree char *s = g_strdup_printf(
			"total %s  free %s  available %s  cache %s  (%s%.1f s old)",
			size_str(stats, "total", b[0]), size_str(stats, "free", b[1]),
			size_str(stats, "available", b[2]), size_str(stats, "cache", b[3]),
			has_age ? "" : "? ", has_age ? age / 1e6 : 0.0);

		print_kv("stats", s);
	} else {
		print_kv("stats", "-");
	}
	print_size_kv(vm, "floor");
	print_kv("oom-priority", get_str(vm, "oom-priority") ?: "-");
	json_object_object_get_ex(vm, "hooks", &hooks);
	if (hooks && json_object_is_type(hooks, json_type_object)) {
		char b[4][VMCG_SIZE_STRLEN];
		uint64_t stall = 0;
		g_autofree char *s = g_strdup_printf(
			"charged %s  populated %s  credit %s  slack %s",
			size_str(hooks, "charged", b[0]), size_str(hooks, "populated", b[1]),
			size_str(hooks, "credit", b[2]), size_str(hooks, "slack", b[3]));
		g_autofree char *t = NULL;

		(void)get_size(hooks, "stall-usec", &stall);
		t = g_strdup_printf(
			"%s slots, batch %s, %s faults, %s waiting, %.1f s stalled%s",
			get_str(hooks, "slots") ?: "?", get_str(hooks, "batch") ?: "?",
			get_str(hooks, "faults") ?: "?", get_str(hooks, "held") ?: "?", stall / 1e6,
			json_object_get_boolean(json_object_object_get(hooks, "audit-flagged"))
				? ", AUDIT FLAGGED"
				: "");
		print_kv("hooks", s);
		print_kv("hook slots", t);
	}
	return EXIT_OK;
}

static bool parse_priority(const char *s, int64_t *ret)
{
	return g_ascii_string_to_signed(s, 10, G_MININT32, G_MAXINT32, ret, NULL);
}

static int cmd_add(Ctl *c, const char *name)
{
	g_autoptr(json_object) body = json_object_new_object();
	g_autoptr(json_object) resp = NULL;
	int64_t prio;

	if (!opt_qmp)
		return usage_error("add needs --qmp PATH");
	json_object_object_add(body, "name", json_object_new_string(name));
	json_object_object_add(body, "qmp", json_object_new_string(opt_qmp));
	json_object_object_add(body, "group", json_object_new_string(opt_group ?: "/"));
	if (opt_floor)
		json_object_object_add(body, "floor", size_value(opt_floor));
	if (opt_oom_priority) {
		if (!parse_priority(opt_oom_priority, &prio))
			return usage_error("--oom-priority takes an integer, not \"%s\"",
					   opt_oom_priority);
		json_object_object_add(body, "oom-priority", json_object_new_int64(prio));
	}
	return request(c, "POST", "/v1/vms", body, NULL, NULL, TRUE, &resp);
}

static int cmd_put_vm(Ctl *c, const char *name, json_object *body)
{
	g_autoptr(json_object) resp = NULL;
	g_autofree char *url = vm_url(name);

	return request(c, "PUT", url, body, NULL, NULL, TRUE, &resp);
}

static int cmd_set_vm(Ctl *c, const char *name, char **args, int n)
{
	g_autoptr(json_object) body = json_object_new_object();

	if (n == 0)
		return usage_error("set-vm needs at least one KEY=VALUE");
	for (int i = 0; i < n; i++) {
		const char *eq = strchr(args[i], '=');
		g_autofree char *key = eq ? g_strndup(args[i], eq - args[i]) : NULL;
		int64_t prio;

		if (!eq)
			return usage_error("expected KEY=VALUE, got \"%s\"", args[i]);
		if (strcmp(key, "floor") == 0) {
			json_object_object_add(body, key, size_value(eq + 1));
		} else if (strcmp(key, "oom-priority") == 0) {
			if (!parse_priority(eq + 1, &prio))
				return usage_error("oom-priority takes an integer, not \"%s\"",
						   eq + 1);
			json_object_object_add(body, key, json_object_new_int64(prio));
		} else if (strcmp(key, "group") == 0) {
			json_object_object_add(body, key, json_object_new_string(eq + 1));
		} else {
			return usage_error("unknown VM setting \"%s\" (floor, oom-priority, group)",
					   key);
		}
	}
	return cmd_put_vm(c, name, body);
}

static int cmd_move(Ctl *c, const char *name, const char *group)
{
	g_autoptr(json_object) body = json_object_new_object();

	json_object_object_add(body, "group", json_object_new_string(group));
	return cmd_put_vm(c, name, body);
}

static int cmd_forget(Ctl *c, const char *name)
{
	g_autofree char *url = vm_url(name);

	return request(c, "DELETE", url, NULL, NULL, NULL, TRUE, NULL);
}

static int cmd_metrics(Ctl *c)
{
	g_autoptr(SoupMessage) msg = new_message("GET", "/metrics");
	g_autoptr(GBytes) resp = NULL;
	g_autoptr(GError) error = NULL;
	gsize len;
	const char *data;

	resp = soup_session_send_and_read(c->session, msg, NULL, &error);
	if (!resp)
		return transport_error(c, error);
	data = g_bytes_get_data(resp, &len);
	if (!SOUP_STATUS_IS_SUCCESSFUL(soup_message_get_status(msg))) {
		fprintf(stderr, "vmcgctl: %s\n", soup_message_get_reason_phrase(msg));
		return exit_for_code(NULL, soup_message_get_status(msg));
	}
	fwrite(data, 1, len, stdout);
	return EXIT_OK;
}

/* ---- watch ---- */

static void on_interrupt(int sig)
{
	(void)sig;
	_exit(EXIT_OK);
}

/* One event as one line: time, type, and the data's members as key=value. */
static void print_event(Ctl *c, const char *type, const char *data)
{
	g_autoptr(json_object) obj = json_tokener_parse(data);
	g_autoptr(GDateTime) now = g_date_time_new_now_local();
	g_autofree char *ts = g_date_time_format(now, "%Y-%m-%dT%H:%M:%S");

	if (c->json) {
		g_autoptr(json_object) line = json_object_new_object();

		json_object_object_add(line, "event", json_object_new_string(type));
		json_object_object_add(line, "data", obj ? json_object_get(obj) : NULL);
		puts(json_object_to_json_string_ext(line, JSON_C_TO_STRING_PLAIN |
								  JSON_C_TO_STRING_NOSLASHESCAPE));
	} else if (obj && json_object_is_type(obj, json_type_object)) {
		g_autoptr(GString) s = g_string_new(NULL);

		json_object_object_foreach(obj, k, v)
		{
			const char *text = v ? json_object_to_json_string_ext(
						       v, JSON_C_TO_STRING_PLAIN |
								  JSON_C_TO_STRING_NOSLASHESCAPE)
					     : "null";

			if (json_object_is_type(v, json_type_string) &&
			    !strpbrk(json_object_get_string(v), " \t\"="))
				text = json_object_get_string(v);
			g_string_append_printf(s, " %s=%s", k, text);
		}
		printf("%s %-14s%s\n", ts, type, s->str);
	} else {
		printf("%s %-14s %s\n", ts, type, data);
	}
	fflush(stdout);
}

static int cmd_watch(Ctl *c)
{
	g_autoptr(SoupMessage) msg = new_message("GET", "/v1/events");
	g_autoptr(GInputStream) stream = NULL;
	g_autoptr(GDataInputStream) lines = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *type = NULL;
	g_autoptr(GString) data = g_string_new(NULL);
	bool dropped = false;
	struct sigaction sa = { .sa_handler = on_interrupt };

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* Keep-alives come every 15 s; no read timeout on a stream that may be quiet. */
	g_object_set(c->session, "timeout", 0, NULL);
	stream = soup_session_send(c->session, msg, NULL, &error);
	if (!stream)
		return transport_error(c, error);
	if (!SOUP_STATUS_IS_SUCCESSFUL(soup_message_get_status(msg))) {
		fprintf(stderr, "vmcgctl: %s\n", soup_message_get_reason_phrase(msg));
		return exit_for_code(soup_message_get_status(msg) == 503 ? "busy" : NULL,
				     soup_message_get_status(msg));
	}
	lines = g_data_input_stream_new(stream);
	g_data_input_stream_set_newline_type(lines, G_DATA_STREAM_NEWLINE_TYPE_ANY);
	for (;;) {
		g_autofree char *line =
			g_data_input_stream_read_line_utf8(lines, NULL, NULL, &error);

		if (!line)
			break;
		if (line[0] == '\0') { /* end of one event */
			if (type && data->len) {
				print_event(c, type, data->str);
				dropped |= strcmp(type, "overflow") == 0;
			}
			g_clear_pointer(&type, g_free);
			g_string_truncate(data, 0);
		} else if (g_str_has_prefix(line, "event:")) {
			g_free(type);
			type = g_strdup(g_strchug(line + 6));
		} else if (g_str_has_prefix(line, "data:")) {
			if (data->len)
				g_string_append_c(data, '\n');
			g_string_append(data, line[5] == ' ' ? line + 6 : line + 5);
		} /* ":" comments (keep-alives) and other fields are ignored */
	}
	if (error) {
		fprintf(stderr, "vmcgctl: event stream: %s\n", error->message);
		return EXIT_UNREACHABLE;
	}
	if (dropped) {
		fprintf(stderr,
			"vmcgctl: the daemon dropped this stream: it was read too slowly\n");
		return EXIT_OTHER;
	}
	fprintf(stderr, "vmcgctl: the daemon closed the event stream\n");
	return EXIT_UNREACHABLE;
}

/* ---- main ---- */

static int dispatch(Ctl *c, int argc, char **argv)
{
	const char *cmd = argv[0];
	int nargs = argc - 1;
	char **args = argv + 1;

	if ((opt_qmp || opt_group || opt_floor || opt_oom_priority) && strcmp(cmd, "add") != 0)
		return usage_error("--qmp, --group, --floor and --oom-priority are for add");

#define NEED(n)                                                                \
	do {                                                                   \
		if (nargs != (n))                                              \
			return usage_error("%s takes %d argument%s", cmd, (n), \
					   (n) == 1 ? "" : "s");               \
	} while (0)
#define AT_LEAST(n)                                                                     \
	do {                                                                            \
		if (nargs < (n))                                                        \
			return usage_error("%s takes at least %d argument%s", cmd, (n), \
					   (n) == 1 ? "" : "s");                        \
	} while (0)

	if (strcmp(cmd, "tree") == 0) {
		NEED(0);
		return cmd_tree(c);
	} else if (strcmp(cmd, "get") == 0) {
		NEED(1);
		return cmd_get(c, args[0]);
	} else if (strcmp(cmd, "set") == 0) {
		AT_LEAST(2);
		return cmd_put_group(c, args[0], args + 1, nargs - 1, false);
	} else if (strcmp(cmd, "create") == 0) {
		AT_LEAST(1);
		return cmd_put_group(c, args[0], args + 1, nargs - 1, true);
	} else if (strcmp(cmd, "rm") == 0) {
		NEED(1);
		return cmd_rm(c, args[0]);
	} else if (strcmp(cmd, "reclaim") == 0) {
		NEED(2);
		return cmd_reclaim(c, args[0], args[1]);
	} else if (strcmp(cmd, "vms") == 0) {
		NEED(0);
		return cmd_vms(c);
	} else if (strcmp(cmd, "vm") == 0) {
		NEED(1);
		return cmd_vm(c, args[0]);
	} else if (strcmp(cmd, "add") == 0) {
		NEED(1);
		return cmd_add(c, args[0]);
	} else if (strcmp(cmd, "move") == 0) {
		NEED(2);
		return cmd_move(c, args[0], args[1]);
	} else if (strcmp(cmd, "set-vm") == 0) {
		AT_LEAST(2);
		return cmd_set_vm(c, args[0], args + 1, nargs - 1);
	} else if (strcmp(cmd, "forget") == 0) {
		NEED(1);
		return cmd_forget(c, args[0]);
	} else if (strcmp(cmd, "watch") == 0) {
		NEED(0);
		return cmd_watch(c);
	} else if (strcmp(cmd, "metrics") == 0) {
		NEED(0);
		return cmd_metrics(c);
	}
#undef NEED
#undef AT_LEAST
	return usage_error("unknown command \"%s\"", cmd);
}

int main(int argc, char **argv)
{
	g_autoptr(GOptionContext) ctx = g_option_context_new("COMMAND [ARGS...]");
	g_autoptr(GError) error = NULL;
	g_autoptr(GSocketAddress) addr = NULL;
	Ctl c = { 0 };
	int r;

	setlocale(LC_ALL, "");
	g_option_context_add_main_entries(ctx, entries, NULL);
	g_option_context_set_summary(ctx, "Control vmcgd, the memory cgroup for VMs.");
	g_option_context_set_description(ctx, summary);
	if (!g_option_context_parse(ctx, &argc, &argv, &error))
		return usage_error("%s", error->message);
	if (argc < 2)
		return usage_error("no command given");

	c.socket = opt_socket ?: g_getenv("VMCG_SOCKET") ?: SOCKET_DEFAULT;
	c.json = opt_json;
	c.utf8 = g_get_charset(NULL) && isatty(STDOUT_FILENO);
	addr = g_unix_socket_address_new(c.socket);
	c.session =
		soup_session_new_with_options("remote-connectable", addr, "timeout",
					      REQUEST_TIMEOUT_SEC, "user-agent", "vmcgctl", NULL);
	r = dispatch(&c, argc - 1, argv + 1);
	g_object_unref(c.session);
	g_free(opt_socket);
	g_free(opt_qmp);
	g_free(opt_group);
	g_free(opt_floor);
	g_free(opt_oom_priority);
	return r;
}
