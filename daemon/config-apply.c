// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Applying the config to the tree, and the record of what it said; see
 * config-apply.h. The decisions are config-merge.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config-apply.h"
#include "daemon-private.h"
#include "json-util.h"
#include "state.h"
#include "vmcg/oom.h"

#define SEEN_VERSION 1
/* A value is a size, a path (at most PATH_MAX) or a word: longer is not ours. */
#define SEEN_VALUE_MAX 4096

char *vmcg_config_seen_path(const char *state_path)
{
	return g_strconcat(state_path, ".config-seen", NULL);
}

/* ---- the record ---- */

G_GNUC_PRINTF(2, 3)
static gboolean bad(GError **error, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	g_propagate_error(error, g_error_new_valist(G_IO_ERROR, G_IO_ERROR_INVALID_DATA, fmt, ap));
	va_end(ap);
	return FALSE;
}

static int key_index(VmcgMergeKind kind, const char *name)
{
	for (unsigned k = 0; k < vmcg_merge_nkeys(kind); k++)
		if (strcmp(vmcg_merge_key_name(kind, k), name) == 0)
			return (int)k;
	return -1;
}

static gboolean parse_objects(json_object *o, VmcgMergeKind kind, GPtrArray *list, GError **error)
{
	const char *what = kind == VMCG_MERGE_GROUP ? "groups" : "vms";

	if (!json_object_is_type(o, json_type_object))
		return bad(error, "config record: %s must be an object", what);
	json_object_object_foreach(o, name, entry)
	{
		g_autoptr(VmcgMergeObject) obj = NULL;
		int r = kind == VMCG_MERGE_GROUP ? vmcg_path_validate(name)
						 : vmcg_vm_name_validate(name);

		if (r < 0 || (kind == VMCG_MERGE_GROUP && strcmp(name, "/") == 0))
			return bad(error, "config record: %s: invalid %s \"%.64s\"", what,
				   kind == VMCG_MERGE_GROUP ? "group path" : "VM name", name);
		if (!json_object_is_type(entry, json_type_object))
			return bad(error, "config record: %s %s: not an object", what, name);
		obj = vmcg_merge_object_new(kind, name);
		json_object_object_foreach(entry, key, value)
		{
			int k = key_index(kind, key);

			if (k < 0)
				return bad(error, "config record: %s %s: unknown setting \"%.64s\"",
					   what, name, key);
			if (!json_object_is_type(value, json_type_string) ||
			    json_object_get_string_len(value) > SEEN_VALUE_MAX)
				return bad(error,
					   "config record: %s %s: %s: not a string of at most %d "
					   "bytes",
					   what, name, key, SEEN_VALUE_MAX);
			obj->values[k] = g_strdup(json_object_get_string(value));
		}
		g_ptr_array_add(list, g_steal_pointer(&obj));
	}
	return TRUE;
}

gboolean vmcg_config_seen_parse(const char *text, gsize len, GPtrArray **ret, GError **error)
{
	g_autoptr(json_tokener) tok = json_tokener_new_ex(16);
	g_autoptr(json_object) root = NULL;
	g_autoptr(GPtrArray) list = vmcg_merge_list_new();
	json_object *v;

	if (len > VMCG_CONFIG_SEEN_MAX_BYTES)
		return bad(error, "config record: larger than %d MiB",
			   VMCG_CONFIG_SEEN_MAX_BYTES >> 20);
	if (len > INT_MAX || memchr(text, '\0', len))
		return bad(error, "config record: not JSON: %s", "a NUL byte");
	root = json_tokener_parse_ex(tok, text, (int)len);
	if (!root || json_tokener_get_error(tok) != json_tokener_success ||
	    (gsize)json_tokener_get_parse_end(tok) < len - (len && text[len - 1] == '\n'))
		return bad(error, "config record: not JSON: %s",
			   root ? "trailing data"
				: json_tokener_error_desc(json_tokener_get_error(tok)));
	if (!json_object_is_type(root, json_type_object))
		return bad(error, "config record: %s", "not a JSON object");
	json_object_object_foreach(root, k, val)
	{
		(void)val;
		if (strcmp(k, "version") && strcmp(k, "groups") && strcmp(k, "vms"))
			return bad(error, "config record: unknown field \"%.64s\"", k);
	}
	if (!json_object_object_get_ex(root, "version", &v) ||
	    !json_object_is_type(v, json_type_int) || json_object_get_int64(v) != SEEN_VERSION)
		return bad(error, "config record: version must be %d", SEEN_VERSION);
	if (json_object_object_get_ex(root, "groups", &v) &&
	    !parse_objects(v, VMCG_MERGE_GROUP, list, error))
		return FALSE;
	if (json_object_object_get_ex(root, "vms", &v) &&
	    !parse_objects(v, VMCG_MERGE_VM, list, error))
		return FALSE;
	*ret = g_steal_pointer(&list);
	return TRUE;
}

json_object *vmcg_config_seen_to_json(const GPtrArray *seen)
{
	json_object *root = json_object_new_object();
	json_object *groups = json_object_new_object(), *vms = json_object_new_object();

	json_object_object_add(root, "version", json_object_new_int(SEEN_VERSION));
	for (guint i = 0; seen && i < seen->len; i++) {
		const VmcgMergeObject *o = seen->pdata[i];
		json_object *e = json_object_new_object();

		for (unsigned k = 0; k < vmcg_merge_nkeys(o->kind); k++)
			if (o->values[k])
				json_object_object_add(e, vmcg_merge_key_name(o->kind, k),
						       json_object_new_string(o->values[k]));
		json_object_object_add(o->kind == VMCG_MERGE_GROUP ? groups : vms, o->name, e);
	}
	json_object_object_add(root, "groups", groups);
	json_object_object_add(root, "vms", vms);
	return root;
}

gboolean vmcg_config_seen_load(const char *path, GPtrArray **ret, GError **error)
{
	g_autofree char *text = NULL;
	g_autoptr(GError) local = NULL;
	gsize len;

	if (!g_file_get_contents(path, &text, &len, &local)) {
		if (g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
			*ret = NULL;
			return TRUE;
		}
		g_propagate_error(error, g_steal_pointer(&local));
		return FALSE;
	}
	if (!vmcg_config_seen_parse(text, len, ret, error)) {
		g_prefix_error(error, "%s: ", path);
		return FALSE;
	}
	return TRUE;
}

gboolean vmcg_config_seen_save(const char *path, const GPtrArray *seen, GError **error)
{
	g_autoptr(json_object) root = vmcg_config_seen_to_json(seen);
	g_autofree char *text =
		g_strconcat(json_object_to_json_string_ext(
				    root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE),
			    "\n", NULL);

	return vmcg_state_write_file(path, text, strlen(text), NULL, error);
}

/* ---- the tree's view ---- */

static char *pages_text(uint64_t pages)
{
	return pages >= VMCG_PAGES_MAX ? g_strdup("max")
				       : g_strdup_printf("%" PRIu64, pages * VMCG_PAGE_SIZE);
}

GPtrArray *vmcg_config_snapshot(VmcgDaemon *d)
{
	GPtrArray *list = vmcg_merge_list_new();
	VmcgGroup *top = vmcg_tree_root(d->tree);

	for (VmcgGroup *g = vmcg_group_next_descendant(top, top); g;
	     g = vmcg_group_next_descendant(g, top)) {
		VmcgMergeObject *o = vmcg_merge_object_new(VMCG_MERGE_GROUP, vmcg_group_path(g));

		o->values[VMCG_MERGE_G_MIN] = pages_text(vmcg_group_min(g));
		o->values[VMCG_MERGE_G_LOW] = pages_text(vmcg_group_low(g));
		o->values[VMCG_MERGE_G_HIGH] = pages_text(vmcg_group_high(g));
		o->values[VMCG_MERGE_G_MAX] = pages_text(vmcg_group_max(g));
		o->values[VMCG_MERGE_G_OOM_GROUP] = vmcg_merge_bool_text(vmcg_group_oom_group(g));
		o->values[VMCG_MERGE_G_OOM_ACTION] =
			g_strdup(vmcg_oom_action_to_string(vmcg_group_oom_action(g)));
		o->values[VMCG_MERGE_G_OVERHEAD_IN_MAX] =
			vmcg_merge_bool_text(vmcg_group_overhead_counted(g));
		o->values[VMCG_MERGE_G_CLUSTER_MAX] =
			vmcg_merge_size_text(vmcg_cluster_group_quota(d->cluster, g));
		g_ptr_array_add(list, o);
	}
	for (VmcgDvm *vm = vmcg_daemon_vm_first(d); vm; vm = vmcg_daemon_vm_next(vm)) {
		VmcgDvmInfo i;
		VmcgMergeObject *o;

		vmcg_dvm_info(vm, &i);
		/* Adopted from libvirt: configured in its domain XML, never in this file. */
		if (i.managed)
			continue;
		o = vmcg_merge_object_new(VMCG_MERGE_VM, i.name);
		o->values[VMCG_MERGE_V_BACKEND] = g_strdup(i.backend);
		o->values[VMCG_MERGE_V_ADDRESS] = g_strdup(i.address);
		o->values[VMCG_MERGE_V_GROUP] = g_strdup(i.group);
		o->values[VMCG_MERGE_V_FLOOR] = i.floor == VMCG_BYTES_MAX
							? g_strdup("max")
							: g_strdup_printf("%" PRIu64, i.floor);
		o->values[VMCG_MERGE_V_OOM_PRIORITY] = g_strdup_printf("%d", i.oom_priority);
		o->values[VMCG_MERGE_V_CHANNEL] = g_strdup(i.channel_path ? i.channel_path : "");
		g_ptr_array_add(list, o);
	}
	return list;
}

/* ---- applying ---- */

/* The values come from the file or the tree (config-merge.h's text), never from the record. */
static uint64_t size_of(const char *v)
{
	return strcmp(v, "max") == 0 ? VMCG_BYTES_MAX : g_ascii_strtoull(v, NULL, 10);
}

static void group_settings(const VmcgMergeObject *o, unsigned keys, VmcgGroupSettings *s)
{
	char *const *v = o->values;

	*s = (VmcgGroupSettings){ 0 };
	if (keys & 1u << VMCG_MERGE_G_MIN)
		s->has_min = true, s->min = size_of(v[VMCG_MERGE_G_MIN]);
	if (keys & 1u << VMCG_MERGE_G_LOW)
		s->has_low = true, s->low = size_of(v[VMCG_MERGE_G_LOW]);
	if (keys & 1u << VMCG_MERGE_G_HIGH)
		s->has_high = true, s->high = size_of(v[VMCG_MERGE_G_HIGH]);
	if (keys & 1u << VMCG_MERGE_G_MAX)
		s->has_max = true, s->max = size_of(v[VMCG_MERGE_G_MAX]);
	if (keys & 1u << VMCG_MERGE_G_OOM_GROUP)
		s->has_oom_group = true,
		s->oom_group = strcmp(v[VMCG_MERGE_G_OOM_GROUP], "true") == 0;
	if (keys & 1u << VMCG_MERGE_G_OOM_ACTION)
		s->has_oom_action = vmcg_oom_action_from_string(v[VMCG_MERGE_G_OOM_ACTION],
								&s->oom_action) == 0;
	if (keys & 1u << VMCG_MERGE_G_OVERHEAD_IN_MAX)
		s->has_overhead_in_max = true,
		s->overhead_in_max = strcmp(v[VMCG_MERGE_G_OVERHEAD_IN_MAX], "true") == 0;
	if (keys & 1u << VMCG_MERGE_G_CLUSTER_MAX)
		s->has_cluster_max = true, s->cluster_max = size_of(v[VMCG_MERGE_G_CLUSTER_MAX]);
}

static void vm_settings(const VmcgMergeObject *o, unsigned keys, VmcgVmSettings *s)
{
	*s = (VmcgVmSettings){ 0 };
	if (keys & 1u << VMCG_MERGE_V_FLOOR)
		s->has_floor = true, s->floor = size_of(o->values[VMCG_MERGE_V_FLOOR]);
	if (keys & 1u << VMCG_MERGE_V_OOM_PRIORITY)
		s->has_oom_priority = true,
		s->oom_priority = (int32_t)strtol(o->values[VMCG_MERGE_V_OOM_PRIORITY], NULL, 10);
	/* Borrowed from @o: the daemon copies it. */
	if (keys & 1u << VMCG_MERGE_V_CHANNEL && o->values[VMCG_MERGE_V_CHANNEL])
		s->has_channel = true, s->channel = o->values[VMCG_MERGE_V_CHANNEL];
}

/* mkdir -p: undeclared ancestors get the defaults. */
static gboolean create_group(VmcgDaemon *d, const VmcgMergeObject *o, GError **error)
{
	g_auto(GStrv) parts = g_strsplit(o->name + 1, "/", -1);
	g_autoptr(GString) prefix = g_string_new("");
	VmcgGroupSettings s;

	for (guint k = 0; parts[k + 1]; k++) {
		VmcgGroup *g;

		g_string_append_printf(prefix, "/%s", parts[k]);
		if (vmcg_group_lookup(d->tree, prefix->str, &g) < 0 &&
		    !vmcg_daemon_group_put(d, prefix->str, &(VmcgGroupSettings){ 0 }, NULL, error))
			return FALSE;
	}
	group_settings(o, ~0u, &s);
	return vmcg_daemon_group_put(d, o->name, &s, NULL, error);
}

static gboolean add_vm(VmcgDaemon *d, const VmcgMergeObject *o, GError **error)
{
	VmcgVmSettings s;
	char *const *v = o->values;

	vm_settings(o, ~0u, &s);
	return vmcg_daemon_vm_add(d, o->name, v[VMCG_MERGE_V_BACKEND], v[VMCG_MERGE_V_ADDRESS],
				  v[VMCG_MERGE_V_GROUP], &s, error);
}

static gboolean apply_action(VmcgDaemon *d, const VmcgMergeAction *a, GError **error)
{
	const VmcgMergeObject *o = a->object;

	if (o->kind == VMCG_MERGE_GROUP) {
		VmcgGroupSettings s;

		switch (a->op) {
		case VMCG_MERGE_CREATE:
			return create_group(d, o, error);
		case VMCG_MERGE_UPDATE:
			group_settings(o, a->keys, &s);
			return vmcg_daemon_group_put(d, o->name, &s, NULL, error);
		case VMCG_MERGE_REMOVE:
			return vmcg_daemon_group_delete(d, o->name, error);
		default:
			g_assert_not_reached();
		}
	}
	switch (a->op) {
	case VMCG_MERGE_CREATE:
		return add_vm(d, o, error);
	case VMCG_MERGE_REPLACE:
		return vmcg_daemon_vm_remove(d, o->name, error) && add_vm(d, o, error);
	case VMCG_MERGE_REMOVE:
		return vmcg_daemon_vm_remove(d, o->name, error);
	case VMCG_MERGE_UPDATE: {
		VmcgVmSettings s;

		vm_settings(o, a->keys, &s);
		if ((a->keys & 1u << VMCG_MERGE_V_GROUP) &&
		    !vmcg_daemon_vm_move(d, o->name, o->values[VMCG_MERGE_V_GROUP], error))
			return FALSE;
		return vmcg_daemon_vm_set(d, o->name, &s, error);
	}
	}
	g_assert_not_reached();
}

static void emit_note(VmcgDaemon *d, const VmcgMergeNote *n, const char *text)
{
	g_autoptr(json_object) data = json_object_new_object();

	json_object_object_add(data, "what",
			       json_object_new_string(vmcg_merge_note_kind_name(n->what)));
	json_object_object_add(data, vmcg_merge_kind_name(n->kind),
			       json_object_new_string(n->name));
	if (n->key >= 0)
		json_object_object_add(
			data, "key",
			json_object_new_string(vmcg_merge_key_name(n->kind, (unsigned)n->key)));
	if (n->config_value)
		json_object_object_add(data, "config", json_object_new_string(n->config_value));
	if (n->running_value)
		json_object_object_add(data, "running", json_object_new_string(n->running_value));
	json_object_object_add(data, "message", json_object_new_string(text));
	vmcg_daemon_emit(d, VMCG_EV_CONFIG_CONFLICT, data);
}

void vmcg_config_apply(VmcgDaemon *d, const VmcgConfig *config, GPtrArray **seen,
		       const char *seen_path, guint *ret_warnings)
{
	g_autoptr(GPtrArray) cfg = vmcg_merge_from_config(config);
	g_autoptr(GPtrArray) running = vmcg_config_snapshot(d);
	g_auto(VmcgMergeResult) r = { 0 };
	gboolean saved = TRUE;
	guint warnings = 0;

	vmcg_merge(cfg, *seen, running, &r);
	for (guint i = 0; i < r.notes->len; i++) {
		const VmcgMergeNote *n = r.notes->pdata[i];
		g_autofree char *text = vmcg_merge_note_format(n);

		if (vmcg_merge_note_is_warning(n)) {
			g_warning("config: %s", text);
			emit_note(d, n, text);
			warnings++;
		} else {
			g_message("config: %s", text);
		}
	}

	/* One save for the lot, below. */
	d->loading = TRUE;
	for (guint i = 0; i < r.actions->len; i++) {
		const VmcgMergeAction *a = &g_array_index(r.actions, VmcgMergeAction, i);
		g_autoptr(GError) error = NULL;

		if (!apply_action(d, a, &error))
			g_warning("config: [%s %s]: not applied: %s",
				  vmcg_merge_kind_name(a->object->kind), a->object->name,
				  error->message);
	}
	d->loading = FALSE;

	/*
	 * The state first, then the record: a crash between the two leaves a
	 * record older than the state, and the next start applies the
	 * file's changes again (which is idempotent) instead of taking the
	 * state's old values for the API's.
	 */
	if (d->state_path) {
		g_autoptr(GError) error = NULL;

		/*
		 * Through the state file (a new snapshot, the journal started
		 * over), as every save: health, generation and waiters stay
		 * right. Synchronous: the state is on disk before the record.
		 */
		vmcg_daemon_save(d);
		saved = vmcg_daemon_flush(d, &error);
		if (!saved)
			g_warning("cannot save state to %s: %s (the config is in effect but the "
				  "record of it is not updated)",
				  d->state_path, error->message);
	}
	if (saved && seen_path) {
		g_autoptr(GError) error = NULL;

		if (!vmcg_config_seen_save(seen_path, cfg, &error))
			g_warning("config: cannot save the record of the config: %s (the next "
				  "start compares the file with an older record)",
				  error->message);
	}
	if (*seen)
		g_ptr_array_unref(*seen);
	*seen = g_steal_pointer(&cfg);
	vmcg_daemon_kick(d);
	if (ret_warnings)
		*ret_warnings = warnings;
}
