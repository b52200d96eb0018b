// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * State persistence; see state.h. Format (version 1):
 *
 *   {"version": 1,
 *    "groups": [{"path": "/a", "memory.min": 0, "memory.low": 0,
 *                "memory.high": "max", "memory.max": 1073741824,
 *                "memory.oom.group": false, "oom-action": "notify",
 *                "overhead-in-max": false}, ...],   parents before children
 *    "vms": [{"name": "web1", "backend": "qmp", "address": "/run/...",
 *             "qmp": "/run/...", "group": "/a", "floor": 134217728,
 *             "oom-priority": 0}, ...]}
 *
 * A group entry is its path and the members of PUT /v1/groups/PATH, a VM
 * entry a POST /v1/vms body: they are read by the API's parsers
 * (vmcg_api_parse_group_entry(), vmcg_api_parse_vm_entry()), so a value is
 * accepted or refused as the API and the config file do (settings.h).
 * "qmp" is written for vmcgd before 0.2, which knew no other member for
 * the address; files of those read back as they are.
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
#define STATE_MAX_BYTES (16 << 20)

static json_object *bytes_json(uint64_t pages)
{
	if (pages >= VMCG_PAGES_MAX)
		return json_object_new_string("max");
	return json_object_new_uint64(pages * VMCG_PAGE_SIZE);
}

json_object *vmcg_state_to_json(VmcgDaemon *d)
{
	json_object *root = json_object_new_object(), *groups, *vms;
	VmcgGroup *top = vmcg_tree_root(d->tree);

	json_object_object_add(root, "version", json_object_new_int(STATE_VERSION));
	groups = json_object_new_array();
	for (VmcgGroup *g = vmcg_group_next_descendant(top, top); g;
	     g = vmcg_group_next_descendant(g, top)) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "path", json_object_new_string(vmcg_group_path(g)));
		json_object_object_add(o, "memory.min", bytes_json(vmcg_group_min(g)));
		json_object_object_add(o, "memory.low", bytes_json(vmcg_group_low(g)));
		json_object_object_add(o, "memory.high", bytes_json(vmcg_group_high(g)));
		json_object_object_add(o, "memory.max", bytes_json(vmcg_group_max(g)));
		json_object_object_add(o, "memory.oom.group",
				       json_object_new_boolean(vmcg_group_oom_group(g)));
		json_object_object_add(o, "oom-action",
				       json_object_new_string(vmcg_oom_action_to_string(
					       vmcg_group_oom_action(g))));
		json_object_object_add(o, "overhead-in-max",
				       json_object_new_boolean(vmcg_group_overhead_counted(g)));
		json_object_array_add(groups, o);
	}
	json_object_object_add(root, "groups", groups);

	vms = json_object_new_array();
	for (VmcgDvm *vm = vmcg_daemon_vm_first(d); vm; vm = vmcg_daemon_vm_next(vm)) {
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
		json_object_array_add(vms, o);
	}
	json_object_object_add(root, "vms", vms);
	return root;
}

gboolean vmcg_state_save(VmcgDaemon *d, const char *path, GError **error)
{
	g_autoptr(json_object) root = vmcg_state_to_json(d);
	g_autofree char *dir = g_path_get_dirname(path);
	g_autofree char *tmp = g_strdup_printf("%s.tmp.%d", path, (int)getpid());
	const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY);
	gsize len = strlen(text), off = 0;
	int fd, dfd;

	if (g_mkdir_with_parents(dir, 0755) < 0) {
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "mkdir %s: %s", dir,
			    g_strerror(errno));
		return FALSE;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		goto fail;
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			goto fail_unlink;
		}
		off += (gsize)w;
	}
	if (write(fd, "\n", 1) != 1 || fsync(fd) < 0) {
		close(fd);
		goto fail_unlink;
	}
	close(fd);
	if (rename(tmp, path) < 0)
		goto fail_unlink;
	/* The rename itself must survive a crash too. */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return TRUE;

fail_unlink : {
	int e = errno;

	unlink(tmp);
	errno = e;
}
fail:
	g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "%s: %s", tmp,
		    g_strerror(errno));
	return FALSE;
}

G_GNUC_PRINTF(2, 3)
static gboolean bad(GError **error, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	g_propagate_error(error, g_error_new_valist(G_IO_ERROR, G_IO_ERROR_INVALID_DATA, fmt, ap));
	va_end(ap);
	return FALSE;
}

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
static gboolean bad_entry(GError **error, const char *array, size_t i, const GError *why)
{
	return bad(error, "state: %s[%zu]: %s", array, i, why->message);
}

typedef struct GroupEntry {
	char *path;
	VmcgGroupSettings s;
} GroupEntry;

static void group_entry_clear(gpointer p)
{
	g_free(((GroupEntry *)p)->path);
}

/*
 * Parse everything first, apply after: a malformed document changes
 * nothing. Application itself can still fail (e.g. a group path the
 * config does not allow); then the daemon refuses to start.
 */
gboolean vmcg_state_apply_text(VmcgDaemon *d, const char *text, gsize len, GError **error)
{
	static const char *const top_keys[] = { "version", "groups", "vms", NULL };
	g_autoptr(json_tokener) tok = json_tokener_new_ex(16);
	g_autoptr(json_object) root = NULL;
	json_object *groups = NULL, *vms = NULL, *v;
	gboolean ok = TRUE;

	if (len > STATE_MAX_BYTES)
		return bad(error, "state: %s is larger than 16 MiB", "the file");
	root = json_tokener_parse_ex(tok, text, (int)len);
	if (!root || json_tokener_get_error(tok) != json_tokener_success ||
	    (gsize)json_tokener_get_parse_end(tok) < len - (len && text[len - 1] == '\n')) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "state: not JSON: %s",
			    json_tokener_error_desc(json_tokener_get_error(tok)));
		return FALSE;
	}
	if (!json_object_is_type(root, json_type_object))
		return bad(error, "state: %s is not an object", "the document");
	if (!only_keys(root, top_keys, error))
		return FALSE;
	if (!json_object_object_get_ex(root, "version", &v) ||
	    !json_object_is_type(v, json_type_int) || json_object_get_int(v) != STATE_VERSION)
		return bad(error, "state: %s must be 1", "version");
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
		g_autoptr(GError) why = NULL;
		g_autofree char *parent = NULL;
		GroupEntry e = { 0 };
		VmcgGroup *g;

		if (!vmcg_api_parse_group_entry(json_object_array_get_idx(groups, i), &e.path, &e.s,
						&why))
			return bad_entry(error, "groups", i, why);
		g_array_append_val(gs, e);
		if (strcmp(e.path, "/") == 0)
			return bad(error, "state: groups[%zu]: the root group takes no settings",
				   i);
		parent = g_path_get_dirname(e.path);
		if (strcmp(parent, "/") != 0 && !g_hash_table_contains(paths, parent) &&
		    vmcg_group_lookup(d->tree, parent, &g) < 0)
			return bad(error, "state: group %s comes before its parent", e.path);
		g_hash_table_add(paths, e.path);
	}
	for (size_t i = 0; vms && i < json_object_array_length(vms); i++) {
		json_object *o = json_object_array_get_idx(vms, i);
		g_autoptr(GError) why = NULL;
		VmcgApiVmRequest r = { 0 };
		const char *group;
		VmcgGroup *g;

		upgrade_vm_entry(o);
		if (!vmcg_api_parse_vm_entry(o, &r, &why))
			return bad_entry(error, "vms", i, why);
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
	return ok;
}

gboolean vmcg_state_load(VmcgDaemon *d, const char *path, GError **error)
{
	g_autofree char *text = NULL;
	g_autoptr(GError) local = NULL;
	gsize len;

	if (!g_file_get_contents(path, &text, &len, &local)) {
		if (g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
			return TRUE;
		g_propagate_error(error, g_steal_pointer(&local));
		return FALSE;
	}
	if (!vmcg_state_apply_text(d, text, len, error)) {
		g_prefix_error(error, "%s: ", path);
		return FALSE;
	}
	return TRUE;
}
