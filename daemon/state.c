// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * State persistence; see state.h. Snapshot format (version 1):
 *
 *   {"version": 1, "journal": 7,
 *    "groups": [{"path": "/a", "memory.min": 0, "memory.low": 0,
 *                "memory.high": "max", "memory.max": 1073741824,
 *                "memory.oom.group": false, "oom-action": "notify",
 *                "overhead-in-max": false}, ...],   parents before children
 *    "vms": [{"name": "web1", "backend": "qmp", "address": "/run/...",
 *             "qmp": "/run/...", "group": "/a", "floor": 134217728,
 *             "oom-priority": 0}, ...]}
 *
 * written one entry a line. Journal (PATH.journal): {"journal": 7} on the
 * first line, then one record a line (state.h).
 *
 * A group entry is its path and the members of PUT /v1/groups/PATH, a VM
 * entry a POST /v1/vms body: they are read by the API's parsers
 * (vmcg_api_parse_group_entry(), vmcg_api_parse_vm_entry()), so a value is
 * accepted or refused as the API and the config file do (settings.h).
 * "qmp" is written for vmcgd before 0.2, which knew no other member for
 * the address; files of those read back as they are. "journal" is absent
 * from files of vmcgd before the journal: generation 0, no journal.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon-private.h"
#include "api.h"
#include "json-util.h"
#include "state.h"

#define STATE_VERSION 1
/*
 * 64 MiB: about 400,000 groups at ~160 bytes an entry (docs/performance.md
 * shows 100,000); a bound on what a corrupt or hostile file makes vmcgd
 * read into memory at start.
 */
#define STATE_MAX_BYTES (64u << 20)
/* The journal is compacted long before this; beyond it, it is not a journal of ours. */
#define JOURNAL_MAX_BYTES (2 * STATE_MAX_BYTES)

G_GNUC_PRINTF(2, 3)
static gboolean bad(GError **error, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	g_propagate_error(error, g_error_new_valist(G_IO_ERROR, G_IO_ERROR_INVALID_DATA, fmt, ap));
	va_end(ap);
	return FALSE;
}

static gboolean io_error(GError **error, int err, const char *what, const char *path)
{
	g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err), "%s %s: %s", what, path,
		    g_strerror(err));
	return FALSE;
}

/* A name from the file for a message: valid UTF-8, at most 64 characters. */
static char *quote(const char *s)
{
	g_autofree char *valid = g_utf8_make_valid(s, -1);
	g_autofree char *cut = NULL;

	if (g_utf8_strlen(valid, -1) <= 64)
		return g_steal_pointer(&valid);
	cut = g_utf8_substring(valid, 0, 64);
	return g_strconcat(cut, "...", NULL);
}

/* ---- entries ---- */

static json_object *bytes_json(uint64_t pages)
{
	if (pages >= VMCG_PAGES_MAX)
		return json_object_new_string("max");
	return json_object_new_uint64(pages * VMCG_PAGE_SIZE);
}

static json_object *group_entry(VmcgDaemon *d, VmcgGroup *g)
{
	uint64_t cluster_max = vmcg_cluster_group_quota(vmcg_daemon_cluster(d), g);

	json_object *o = json_object_new_object();

	json_object_object_add(o, "path", json_object_new_string(vmcg_group_path(g)));
	json_object_object_add(o, "memory.min", bytes_json(vmcg_group_min(g)));
	json_object_object_add(o, "memory.low", bytes_json(vmcg_group_low(g)));
	json_object_object_add(o, "memory.high", bytes_json(vmcg_group_high(g)));
	json_object_object_add(o, "memory.max", bytes_json(vmcg_group_max(g)));
	json_object_object_add(o, "memory.oom.group",
			       json_object_new_boolean(vmcg_group_oom_group(g)));
	json_object_object_add(
		o, "oom-action",
		json_object_new_string(vmcg_oom_action_to_string(vmcg_group_oom_action(g))));
	json_object_object_add(o, "overhead-in-max",
			       json_object_new_boolean(vmcg_group_overhead_counted(g)));
	/* Only when set: state files stay as they were for groups that are not cluster-wide. */
	if (cluster_max != VMCG_BYTES_MAX)
		json_object_object_add(o, "cluster.memory.max",
				       json_object_new_uint64(cluster_max));
	return o;
}

static json_object *vm_entry(VmcgDvm *vm)
{
	json_object *o = json_object_new_object();
	VmcgDvmInfo i;

	vmcg_dvm_info(vm, &i);
	json_object_object_add(o, "name", json_object_new_string(i.name));
	json_object_object_add(o, "backend", json_object_new_string(i.backend));
	json_object_object_add(o, "address", json_object_new_string(i.address));
	/* Read by vmcgd before 0.2: they know only the qmp backend. */
	if (i.qmp)
		json_object_object_add(o, "qmp", json_object_new_string(i.qmp));
	json_object_object_add(o, "group", json_object_new_string(i.group));
	json_object_object_add(o, "floor",
			       i.floor == VMCG_BYTES_MAX ? json_object_new_string("max")
							 : json_object_new_uint64(i.floor));
	json_object_object_add(o, "oom-priority", json_object_new_int(i.oom_priority));
	if (i.channel_path)
		json_object_object_add(o, "channel", json_object_new_string(i.channel_path));
	return o;
}

json_object *vmcg_state_to_json(VmcgDaemon *d)
{
	json_object *root = json_object_new_object(), *groups, *vms;
	VmcgGroup *top = vmcg_tree_root(d->tree);

	json_object_object_add(root, "version", json_object_new_int(STATE_VERSION));
	groups = json_object_new_array();
	for (VmcgGroup *g = vmcg_group_next_descendant(top, top); g;
	     g = vmcg_group_next_descendant(g, top))
		json_object_array_add(groups, group_entry(d, g));
	json_object_object_add(root, "groups", groups);

	vms = json_object_new_array();
	for (VmcgDvm *vm = vmcg_daemon_vm_first(d); vm; vm = vmcg_daemon_vm_next(vm))
		if (!vm->managed) /* its backend's own configuration (libvirt's XML) */
			json_object_array_add(vms, vm_entry(vm));
	json_object_object_add(root, "vms", vms);
	return root;
}

#define ENTRY_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static void append_entry(GString *out, json_object *o, bool first)
{
	if (!first)
		g_string_append(out, ",\n");
	g_string_append(out, json_object_to_json_string_ext(o, ENTRY_FLAGS));
	json_object_put(o);
}

/*
 * Entry by entry rather than one json-c tree of the whole state: at
 * 100,000 groups the tree would be ~100 MB of json-c objects.
 */
char *vmcg_state_snapshot_text(VmcgDaemon *d, uint64_t gen, gsize *ret_len)
{
	GString *out = g_string_sized_new(4096);
	VmcgGroup *top = vmcg_tree_root(d->tree);
	bool first = true;

	g_string_append_printf(out, "{\"version\":%d,\"journal\":%" G_GUINT64_FORMAT ",\n",
			       STATE_VERSION, gen);
	g_string_append(out, "\"groups\":[\n");
	for (VmcgGroup *g = vmcg_group_next_descendant(top, top); g;
	     g = vmcg_group_next_descendant(g, top), first = false)
		append_entry(out, group_entry(d, g), first);
	g_string_append(out, "],\n\"vms\":[\n");
	first = true;
	for (VmcgDvm *vm = vmcg_daemon_vm_first(d); vm; vm = vmcg_daemon_vm_next(vm)) {
		if (vm->managed) /* its backend's own configuration (libvirt's XML) */
			continue;
		append_entry(out, vm_entry(vm), first);
		first = false;
	}
	g_string_append(out, "]}\n");
	*ret_len = out->len;
	return g_string_free(out, FALSE);
}

/* ---- files ---- */

static gboolean write_all(int fd, const char *text, gsize len)
{
	gsize off = 0;

	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return FALSE;
		}
		off += (gsize)w;
	}
	return TRUE;
}

static void fsync_dir(const char *path)
{
	g_autofree char *dir = g_path_get_dirname(path);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	/* The rename itself must survive a crash too. */
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
}

gboolean vmcg_state_write_file(const char *path, const char *text, gsize len, int *ret_fd,
			       GError **error)
{
	g_autofree char *dir = g_path_get_dirname(path);
	g_autofree char *tmp = g_strdup_printf("%s.tmp.%d", path, (int)getpid());
	int fd, err;

	if (g_mkdir_with_parents(dir, 0755) < 0)
		return io_error(error, errno, "mkdir", dir);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | (ret_fd ? O_APPEND : 0), 0644);
	if (fd < 0)
		return io_error(error, errno, "create", tmp);
	if (!write_all(fd, text, len) || fsync(fd) < 0 || rename(tmp, path) < 0) {
		err = errno;
		close(fd);
		unlink(tmp);
		return io_error(error, err, "write", tmp);
	}
	fsync_dir(path);
	if (ret_fd)
		*ret_fd = fd;
	else
		close(fd);
	return TRUE;
}

gboolean vmcg_state_save(VmcgDaemon *d, const char *path, GError **error)
{
	gsize len;
	g_autofree char *text = vmcg_state_snapshot_text(d, 0, &len);

	return vmcg_state_write_file(path, text, len, NULL, error);
}

void vmcg_state_file_init(VmcgStateFile *sf, const char *path)
{
	*sf = (VmcgStateFile){ .journal_fd = -1 };
	if (path) {
		sf->path = g_strdup(path);
		sf->journal_path = g_strconcat(path, ".journal", NULL);
	}
}

void vmcg_state_file_clear(VmcgStateFile *sf)
{
	if (sf->journal_fd >= 0)
		close(sf->journal_fd);
	g_free(sf->path);
	g_free(sf->journal_path);
	*sf = (VmcgStateFile){ .journal_fd = -1 };
}

gboolean vmcg_state_compact_write(VmcgStateFile *sf, const char *text, gsize len, GError **error)
{
	g_autoptr(GError) local = NULL;
	g_autofree char *header = NULL;
	int fd;

	if (!vmcg_state_write_file(sf->path, text, len, NULL, error))
		return FALSE;
	/* Durable from here on: the old journal is of the old generation. */
	sf->gen++;
	sf->snapshot_bytes = len;
	if (sf->journal_fd >= 0)
		close(sf->journal_fd);
	sf->journal_fd = -1;
	sf->journal_bytes = 0;
	header = g_strdup_printf("{\"journal\":%" G_GUINT64_FORMAT "}\n", sf->gen);
	if (!vmcg_state_write_file(sf->journal_path, header, strlen(header), &fd, &local)) {
		g_warning("state: %s (the next change writes the whole state again)",
			  local->message);
		return TRUE;
	}
	sf->journal_fd = fd;
	sf->journal_bytes = strlen(header);
	return TRUE;
}

gboolean vmcg_state_compact(VmcgDaemon *d, VmcgStateFile *sf, GError **error)
{
	gsize len;
	g_autofree char *text = vmcg_state_snapshot_text(d, sf->gen + 1, &len);

	return vmcg_state_compact_write(sf, text, len, error);
}

gboolean vmcg_state_journal_append(VmcgStateFile *sf, const char *text, gsize len, GError **error)
{
	int err;

	g_return_val_if_fail(sf->journal_fd >= 0, FALSE);
	if (write_all(sf->journal_fd, text, len) && fdatasync(sf->journal_fd) == 0) {
		sf->journal_bytes += len;
		return TRUE;
	}
	err = errno;
	/*
	 * A record cut short, or whole but not known to be on disk: neither
	 * may be replayed, since the change is being refused. Shrinking needs
	 * no space; if it fails anyway, the journal is abandoned and the
	 * next save compacts, which makes it stale.
	 */
	if (ftruncate(sf->journal_fd, (off_t)sf->journal_bytes) < 0 ||
	    fdatasync(sf->journal_fd) < 0) {
		g_warning("state: cannot cut %s back after a failed write: %s", sf->journal_path,
			  g_strerror(errno));
		close(sf->journal_fd);
		sf->journal_fd = -1;
	}
	return io_error(error, err, "append to", sf->journal_path);
}

/* ---- checks ---- */

/*
 * Integer literals outside strings: -?[0-9]+ not followed by '.', 'e' or
 * 'E'. Digits appear nowhere else outside strings in JSON.
 */
static bool int_overflows(const char *digits, size_t n, bool negative)
{
	const char *limit = negative ? "9223372036854775808" : "18446744073709551615";
	size_t ln = strlen(limit);

	while (n > 1 && *digits == '0') {
		digits++;
		n--;
	}
	return n > ln || (n == ln && memcmp(digits, limit, n) > 0);
}

static void splice_in(GString **out, const char *text, gsize *copied, gsize upto,
		      const char *insert)
{
	if (!*out)
		*out = g_string_new(NULL);
	g_string_append_len(*out, text + *copied, (gssize)(upto - *copied));
	g_string_append(*out, insert);
	*copied = upto;
}

char *vmcg_state_mark_text(const char *text, gsize len, gsize *ret_len)
{
	GString *out = NULL;
	gsize i = 0, copied = 0;

	while (i < len) {
		char c = text[i];

		if (c == '"') {
			/* A string: where its \u0000 escapes are, and whether it is a key. */
			gsize nuls[8], n = 0, j;

			for (i++; i < len && text[i] != '"'; i++) {
				if (text[i] != '\\')
					continue;
				if (len - i >= 6 && memcmp(text + i + 1, "u0000", 5) == 0 &&
				    n < G_N_ELEMENTS(nuls))
					nuls[n++] = i;
				i++;
			}
			i++;
			for (j = i; j < len && g_ascii_isspace(text[j]); j++)
				;
			for (gsize k = 0; j < len && text[j] == ':' && k < n; k++)
				splice_in(&out, text, &copied, nuls[k], "\\");
			continue;
		}
		if (c == '-' || g_ascii_isdigit(c)) {
			gsize d0;
			bool negative = c == '-';

			if (negative)
				i++;
			d0 = i;
			while (i < len && g_ascii_isdigit(text[i]))
				i++;
			if (i < len && (text[i] == '.' || text[i] == 'e' || text[i] == 'E')) {
				while (i < len && (g_ascii_isalnum(text[i]) || text[i] == '.' ||
						   text[i] == '+' || text[i] == '-'))
					i++;
				continue;
			}
			if (i > d0 && int_overflows(text + d0, i - d0, negative))
				splice_in(&out, text, &copied, i, ".0");
			continue;
		}
		i++;
	}
	if (!out)
		return NULL;
	g_string_append_len(out, text + copied, (gssize)(len - copied));
	*ret_len = out->len;
	return g_string_free(out, FALSE);
}

gboolean vmcg_state_check_entry(json_object *entry, const char *where, GError **error)
{
	if (!json_object_is_type(entry, json_type_object))
		return TRUE; /* the entry parser says what it expected */
	json_object_object_foreach(entry, key, v)
	{
		g_autofree char *qkey = quote(key);

		if (json_object_is_type(v, json_type_string) &&
		    strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v)) {
			g_autofree char *valid = g_utf8_make_valid(json_object_get_string(v), -1);

			return bad(error,
				   "state: %s: %s: a NUL character (\\u0000) after \"%s\": "
				   "not allowed in names, paths or values",
				   where, qkey, valid);
		}
		if (json_object_is_type(v, json_type_double)) {
			g_autofree char *lit = g_strdup(json_object_to_json_string(v));

			if (g_str_has_suffix(lit, ".0") && !strchr(lit, 'e') && !strchr(lit, 'E') &&
			    strchr(lit, '.') == lit + strlen(lit) - 2)
				lit[strlen(lit) - 2] = '\0';
			return bad(
				error,
				"state: %s: %s: %s is not an integer in [-2^63, 2^64 - 1] (write "
				"\"max\" for no limit)",
				where, qkey, lit);
		}
	}
	return TRUE;
}

/* ---- reading ---- */

/* Before 0.2, a floor of "max" was written as the integer 2^64 - 1. */
static void upgrade_vm_entry(json_object *o)
{
	json_object *v;

	if (json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, "floor", &v) &&
	    json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0 &&
	    json_object_get_uint64(v) == UINT64_MAX)
		json_object_object_add(o, "floor", json_object_new_string("max"));
}

static gboolean only_keys(json_object *o, const char *const *keys, GError **error)
{
	json_object_object_foreach(o, k, v)
	{
		(void)v;
		if (!g_strv_contains(keys, k))
			return bad(error, "state: unknown field \"%s\"", k);
	}
	return TRUE;
}

/* An entry the API's parser refused: the same message, with where it is. */
static gboolean bad_entry(GError **error, const char *where, const GError *why)
{
	return bad(error, "state: %s: %s", where, why->message);
}

/* "groups[3] (/a/b)": where an entry is, and what it names if it says. */
static char *entry_where(const char *array, size_t i, json_object *o, const char *key)
{
	json_object *v;

	if (json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, key, &v) &&
	    json_object_is_type(v, json_type_string)) {
		g_autofree char *q = quote(json_object_get_string(v));

		return g_strdup_printf("%s[%zu] (%s)", array, i, q);
	}
	return g_strdup_printf("%s[%zu]", array, i);
}

/* A document json-c can read, overflowing integers marked (see state.h). */
static json_object *parse_doc(const char *text, gsize len, GError **error)
{
	g_autoptr(json_tokener) tok = json_tokener_new_ex(16);
	g_autofree char *marked = NULL;
	json_object *root;
	gsize mlen = 0;

	marked = vmcg_state_mark_text(text, len, &mlen);
	if (marked) {
		text = marked;
		len = mlen;
	}
	if (len > INT_MAX) {
		bad(error, "state: larger than %d bytes", INT_MAX);
		return NULL;
	}
	root = json_tokener_parse_ex(tok, text, (int)len);
	if (!root || json_tokener_get_error(tok) != json_tokener_success ||
	    (gsize)json_tokener_get_parse_end(tok) < len - (len && text[len - 1] == '\n')) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "state: not JSON: %s",
			    json_tokener_error_desc(json_tokener_get_error(tok)));
		json_object_put(root);
		return NULL;
	}
	return root;
}

typedef struct GroupEntry {
	char *path;
	VmcgGroupSettings s;
} GroupEntry;

static void group_entry_clear(gpointer p)
{
	g_free(((GroupEntry *)p)->path);
}

static gboolean parse_group(json_object *o, const char *where, GroupEntry *ret, GError **error)
{
	g_autoptr(GError) why = NULL;

	if (!vmcg_state_check_entry(o, where, error))
		return FALSE;
	if (!vmcg_api_parse_group_entry(o, &ret->path, &ret->s, &why))
		return bad_entry(error, where, why);
	if (strcmp(ret->path, "/") == 0)
		return bad(error, "state: %s: the root group takes no settings", where);
	return TRUE;
}

static gboolean parse_vm(json_object *o, const char *where, VmcgApiVmRequest *ret, GError **error)
{
	g_autoptr(GError) why = NULL;

	if (!vmcg_state_check_entry(o, where, error))
		return FALSE;
	upgrade_vm_entry(o);
	if (!vmcg_api_parse_vm_entry(o, ret, &why))
		return bad_entry(error, where, why);
	return TRUE;
}

/*
 * Parse everything first, apply after: a malformed document changes
 * nothing. Application itself can still fail (e.g. a group path the
 * config does not allow); then the daemon refuses to start.
 */
gboolean vmcg_state_apply_text_gen(VmcgDaemon *d, const char *text, gsize len, uint64_t *ret_gen,
				   GError **error)
{
	static const char *const top_keys[] = { "version", "journal", "groups", "vms", NULL };
	g_autoptr(json_object) root = NULL;
	json_object *groups = NULL, *vms = NULL, *v;
	uint64_t gen = 0;
	gboolean ok = TRUE;

	if (len > STATE_MAX_BYTES)
		return bad(error, "state: the file is larger than %u MiB", STATE_MAX_BYTES >> 20);
	root = parse_doc(text, len, error);
	if (!root)
		return FALSE;
	if (!json_object_is_type(root, json_type_object))
		return bad(error, "state: %s is not an object", "the document");
	if (!only_keys(root, top_keys, error))
		return FALSE;
	if (!vmcg_state_check_entry(root, "the document", error))
		return FALSE;
	if (!json_object_object_get_ex(root, "version", &v) ||
	    !json_object_is_type(v, json_type_int) || json_object_get_int(v) != STATE_VERSION)
		return bad(error, "state: %s must be 1", "version");
	if (json_object_object_get_ex(root, "journal", &v)) {
		if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
			return bad(error, "state: %s must be a generation number", "journal");
		gen = json_object_get_uint64(v);
	}
	if (json_object_object_get_ex(root, "groups", &groups) &&
	    !json_object_is_type(groups, json_type_array))
		return bad(error, "state: %s must be an array", "groups");
	if (json_object_object_get_ex(root, "vms", &vms) &&
	    !json_object_is_type(vms, json_type_array))
		return bad(error, "state: %s must be an array", "vms");

	/*
	 * Validate all entries before applying any, including what applying
	 * would check (parents, groups of VMs, names), so that applying
	 * cannot fail half-way.
	 */
	g_autoptr(GArray) gs = g_array_new(FALSE, TRUE, sizeof(GroupEntry));
	g_autoptr(GArray) vs = g_array_new(FALSE, TRUE, sizeof(VmcgApiVmRequest));
	g_autoptr(GHashTable) paths = g_hash_table_new(g_str_hash, g_str_equal);
	g_autoptr(GHashTable) names = g_hash_table_new(g_str_hash, g_str_equal);

	g_array_set_clear_func(gs, group_entry_clear);
	g_array_set_clear_func(vs, (GDestroyNotify)vmcg_api_vm_request_clear);
	for (size_t i = 0; groups && i < json_object_array_length(groups); i++) {
		json_object *o = json_object_array_get_idx(groups, i);
		g_autofree char *where = entry_where("groups", i, o, "path");
		g_autofree char *parent = NULL;
		GroupEntry e = { 0 };
		VmcgGroup *g;

		if (!parse_group(o, where, &e, error)) {
			group_entry_clear(&e);
			return FALSE;
		}
		g_array_append_val(gs, e);
		parent = g_path_get_dirname(e.path);
		if (strcmp(parent, "/") != 0 && !g_hash_table_contains(paths, parent) &&
		    vmcg_group_lookup(d->tree, parent, &g) < 0)
			return bad(error, "state: group %s comes before its parent", e.path);
		g_hash_table_add(paths, e.path);
	}
	for (size_t i = 0; vms && i < json_object_array_length(vms); i++) {
		json_object *o = json_object_array_get_idx(vms, i);
		g_autofree char *where = entry_where("vms", i, o, "name");
		VmcgApiVmRequest r = { 0 };
		const char *group;
		VmcgGroup *g;

		if (!parse_vm(o, where, &r, error)) {
			vmcg_api_vm_request_clear(&r);
			return FALSE;
		}
		g_array_append_val(vs, r);
		group = r.group ? r.group : "/";
		if (g_hash_table_contains(names, r.name))
			return bad(error, "state: VM %s is there twice", r.name);
		if (strcmp(group, "/") != 0 && !g_hash_table_contains(paths, group) &&
		    vmcg_group_lookup(d->tree, group, &g) < 0)
			return bad(error, "state: VM %s: no group %s", r.name, group);
		g_hash_table_add(names, r.name);
	}

	d->loading = TRUE;
	for (guint i = 0; ok && i < gs->len; i++) {
		const GroupEntry *e = &g_array_index(gs, GroupEntry, i);

		ok = vmcg_daemon_group_put(d, e->path, &e->s, NULL, error);
	}
	for (guint i = 0; ok && i < vs->len; i++) {
		const VmcgApiVmRequest *r = &g_array_index(vs, VmcgApiVmRequest, i);
		const char *group = r->group ? r->group : "/";

		if (vmcg_daemon_vm_lookup(d, r->name)) {
			/* Declared in the config too: the state's placement and settings win. */
			ok = vmcg_daemon_vm_move(d, r->name, group, error) &&
			     vmcg_daemon_vm_set(d, r->name, &r->settings, error);
		} else {
			ok = vmcg_daemon_vm_add(d, r->name, r->backend, r->address, group,
						&r->settings, error);
		}
	}
	d->loading = FALSE;
	if (!ok)
		g_prefix_error(error, "state: ");
	else if (ret_gen)
		*ret_gen = gen;
	return ok;
}

gboolean vmcg_state_apply_text(VmcgDaemon *d, const char *text, gsize len, GError **error)
{
	return vmcg_state_apply_text_gen(d, text, len, NULL, error);
}

/* ---- records ---- */

static json_object *record(const char *key, json_object *value)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, key, value);
	return o;
}

json_object *vmcg_state_group_record(VmcgDaemon *d, const char *path)
{
	VmcgGroup *g;

	if (vmcg_group_lookup(d->tree, path, &g) == 0)
		return record("group", group_entry(d, g));
	return record("group-deleted", json_object_new_string(path));
}

json_object *vmcg_state_vm_record(VmcgDaemon *d, const char *name)
{
	VmcgDvm *vm = vmcg_daemon_vm_lookup(d, name);

	if (vm)
		return record("vm", vm_entry(vm));
	return record("vm-deleted", json_object_new_string(name));
}

static gboolean apply_vm(VmcgDaemon *d, json_object *o, GError **error)
{
	g_auto(VmcgApiVmRequest) r = { 0 };
	const char *group;
	VmcgDvm *vm;
	VmcgDvmInfo i;

	if (!parse_vm(o, "vm", &r, error))
		return FALSE;
	group = r.group ? r.group : "/";
	vm = vmcg_daemon_vm_lookup(d, r.name);
	if (vm) {
		vmcg_dvm_info(vm, &i);
		if (strcmp(i.backend, r.backend) == 0 && strcmp(i.address, r.address) == 0)
			return (strcmp(i.group, group) == 0 ||
				vmcg_daemon_vm_move(d, r.name, group, error)) &&
			       vmcg_daemon_vm_set(d, r.name, &r.settings, error);
		/* Another VM of that name: forgotten, then this one registered. */
		if (!vmcg_daemon_vm_remove(d, r.name, error))
			return FALSE;
	}
	return vmcg_daemon_vm_add(d, r.name, r.backend, r.address, group, &r.settings, error);
}

static const char *record_string(json_object *v, GError **error)
{
	if (!json_object_is_type(v, json_type_string) ||
	    strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v)) {
		bad(error, "state: a deletion record names a string without NUL characters");
		return NULL;
	}
	return json_object_get_string(v);
}

gboolean vmcg_state_apply_record(VmcgDaemon *d, json_object *rec, GError **error)
{
	json_object *v;
	const char *s;

	if (!json_object_is_type(rec, json_type_object) || json_object_object_length(rec) != 1)
		return bad(error, "state: a record is an object of one member");
	if (json_object_object_get_ex(rec, "group", &v)) {
		GroupEntry e = { 0 };
		gboolean ok = parse_group(v, "group", &e, error) &&
			      vmcg_daemon_group_put(d, e.path, &e.s, NULL, error);

		group_entry_clear(&e);
		return ok;
	}
	if (json_object_object_get_ex(rec, "group-deleted", &v)) {
		VmcgGroup *g;

		if (!(s = record_string(v, error)))
			return FALSE;
		return vmcg_group_lookup(d->tree, s, &g) < 0 ||
		       vmcg_daemon_group_delete(d, s, error);
	}
	if (json_object_object_get_ex(rec, "vm", &v))
		return apply_vm(d, v, error);
	if (json_object_object_get_ex(rec, "vm-deleted", &v)) {
		if (!(s = record_string(v, error)))
			return FALSE;
		return !vmcg_daemon_vm_lookup(d, s) || vmcg_daemon_vm_remove(d, s, error);
	}
	return bad(error, "state: unknown record");
}

/* ---- loading ---- */

static gboolean journal_header(const char *line, gsize len, uint64_t *ret_gen)
{
	g_autoptr(json_object) o = NULL;
	json_object *v;
	GError *ignored = NULL;

	o = parse_doc(line, len, &ignored);
	g_clear_error(&ignored);
	if (!o || !json_object_is_type(o, json_type_object) || json_object_object_length(o) != 1 ||
	    !json_object_object_get_ex(o, "journal", &v) ||
	    !json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
		return FALSE;
	*ret_gen = json_object_get_uint64(v);
	return TRUE;
}

/*
 * Replay the journal after the snapshot of generation @sf->gen. Returns
 * the bytes of it that count (@ret_len): up to the last whole line.
 */
static gboolean replay_journal(VmcgDaemon *d, VmcgStateFile *sf, const char *text, gsize len,
			       gsize *ret_len, GError **error)
{
	const char *p = text, *end = text + len, *nl;
	uint64_t gen;
	unsigned line = 1;
	gboolean ok = TRUE;

	nl = memchr(p, '\n', len);
	if (!nl || !journal_header(p, (gsize)(nl - p), &gen))
		return bad(error, "%s: line 1: not a journal header ({\"journal\": N})",
			   sf->journal_path);
	if (gen != sf->gen) {
		/* A compaction wrote the snapshot and died before the new journal. */
		g_message("state: %s follows generation %" G_GUINT64_FORMAT
			  ", the snapshot is %" G_GUINT64_FORMAT ": already in it, ignored",
			  sf->journal_path, gen, sf->gen);
		*ret_len = 0;
		return TRUE;
	}
	p = nl + 1;
	d->loading = TRUE;
	while (ok && p < end && (nl = memchr(p, '\n', (gsize)(end - p)))) {
		g_autoptr(json_object) rec = NULL;

		line++;
		rec = parse_doc(p, (gsize)(nl - p), error);
		ok = rec && vmcg_state_apply_record(d, rec, error);
		if (!ok)
			g_prefix_error(error, "%s: line %u: ", sf->journal_path, line);
		p = nl + 1;
	}
	d->loading = FALSE;
	if (ok && p < end)
		g_warning("state: %s: the last line (%zu bytes) was cut short: a write that was "
			  "never acknowledged; dropped",
			  sf->journal_path, (gsize)(end - p));
	*ret_len = (gsize)(p - text);
	return ok;
}

static gboolean read_limited(const char *path, gsize limit, char **ret, gsize *ret_len,
			     gboolean *ret_missing, GError **error)
{
	g_autoptr(GError) local = NULL;
	struct stat st;

	*ret_missing = FALSE;
	if (g_stat(path, &st) < 0) {
		if (errno == ENOENT) {
			*ret_missing = TRUE;
			return TRUE;
		}
		return io_error(error, errno, "stat", path);
	}
	if ((guint64)st.st_size > limit)
		return bad(error, "%s: larger than %zu MiB", path, limit >> 20);
	if (!g_file_get_contents(path, ret, ret_len, &local)) {
		if (g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
			*ret_missing = TRUE;
			return TRUE;
		}
		g_propagate_error(error, g_steal_pointer(&local));
		return FALSE;
	}
	return TRUE;
}

static gboolean load_file(VmcgDaemon *d, VmcgStateFile *sf, GError **error)
{
	g_autofree char *text = NULL, *jtext = NULL;
	gsize len = 0, jlen = 0, keep = 0;
	gboolean missing;
	uint64_t gen = 0;
	int fd;

	if (!read_limited(sf->path, STATE_MAX_BYTES, &text, &len, &missing, error))
		return FALSE;
	if (!missing && !vmcg_state_apply_text_gen(d, text, len, &gen, error)) {
		g_prefix_error(error, "%s: ", sf->path);
		return FALSE;
	}
	sf->gen = gen;
	sf->snapshot_bytes = len;
	if (!read_limited(sf->journal_path, JOURNAL_MAX_BYTES, &jtext, &jlen, &missing, error))
		return FALSE;
	if (missing || !replay_journal(d, sf, jtext, jlen, &keep, error))
		return missing;
	if (!keep)
		return TRUE; /* stale: the first compaction replaces it */
	/* Append after the last whole line: a cut one goes. */
	fd = open(sf->journal_path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0 || (keep < jlen && ftruncate(fd, (off_t)keep) < 0)) {
		g_warning("state: cannot reopen %s: %s (the next change writes the whole state "
			  "again)",
			  sf->journal_path, g_strerror(errno));
		if (fd >= 0)
			close(fd);
		return TRUE;
	}
	sf->journal_fd = fd;
	sf->journal_bytes = keep;
	return TRUE;
}

gboolean vmcg_state_load(VmcgDaemon *d, const char *path, GError **error)
{
	VmcgStateFile other;
	gboolean ok;

	if (d->sf.path && strcmp(d->sf.path, path) == 0)
		return load_file(d, &d->sf, error);
	/* Not the daemon's own state (tests): read, keep nothing open. */
	vmcg_state_file_init(&other, path);
	ok = load_file(d, &other, error);
	vmcg_state_file_clear(&other);
	return ok;
}
