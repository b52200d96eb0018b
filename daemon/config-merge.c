// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Config file against API: the decisions; see config-merge.h and
 * docs/config.md. Pure: no I/O, no daemon, no logging.
 */
#include <inttypes.h>
#include <string.h>

#include "config-merge.h"
#include "vmcg/counter.h"

static const char *const group_keys[VMCG_MERGE_G_NKEYS] = {
	[VMCG_MERGE_G_MIN] = "memory.min",
	[VMCG_MERGE_G_LOW] = "memory.low",
	[VMCG_MERGE_G_HIGH] = "memory.high",
	[VMCG_MERGE_G_MAX] = "memory.max",
	[VMCG_MERGE_G_OOM_GROUP] = "memory.oom.group",
	[VMCG_MERGE_G_OOM_ACTION] = "oom-action",
	[VMCG_MERGE_G_OVERHEAD_IN_MAX] = "overhead-in-max",
	[VMCG_MERGE_G_CLUSTER_MAX] = "cluster.memory.max",
};

static const char *const vm_keys[VMCG_MERGE_V_NKEYS] = {
	[VMCG_MERGE_V_BACKEND] = "backend",
	[VMCG_MERGE_V_ADDRESS] = "address",
	[VMCG_MERGE_V_GROUP] = "group",
	[VMCG_MERGE_V_FLOOR] = "floor",
	[VMCG_MERGE_V_OOM_PRIORITY] = "oom-priority",
	[VMCG_MERGE_V_CHANNEL] = "channel",
};

unsigned vmcg_merge_nkeys(VmcgMergeKind kind)
{
	return kind == VMCG_MERGE_GROUP ? VMCG_MERGE_G_NKEYS : VMCG_MERGE_V_NKEYS;
}

const char *vmcg_merge_key_name(VmcgMergeKind kind, unsigned key)
{
	g_return_val_if_fail(key < vmcg_merge_nkeys(kind), NULL);
	return kind == VMCG_MERGE_GROUP ? group_keys[key] : vm_keys[key];
}

const char *vmcg_merge_kind_name(VmcgMergeKind kind)
{
	return kind == VMCG_MERGE_GROUP ? "group" : "vm";
}

VmcgMergeObject *vmcg_merge_object_new(VmcgMergeKind kind, const char *name)
{
	VmcgMergeObject *o = g_new0(VmcgMergeObject, 1);

	o->kind = kind;
	o->name = g_strdup(name);
	return o;
}

VmcgMergeObject *vmcg_merge_object_copy(const VmcgMergeObject *o)
{
	VmcgMergeObject *c = vmcg_merge_object_new(o->kind, o->name);

	for (unsigned k = 0; k < VMCG_MERGE_NKEYS_MAX; k++)
		c->values[k] = g_strdup(o->values[k]);
	return c;
}

void vmcg_merge_object_free(VmcgMergeObject *o)
{
	if (!o)
		return;
	for (unsigned k = 0; k < VMCG_MERGE_NKEYS_MAX; k++)
		g_free(o->values[k]);
	g_free(o->name);
	g_free(o);
}

GPtrArray *vmcg_merge_list_new(void)
{
	return g_ptr_array_new_with_free_func((GDestroyNotify)vmcg_merge_object_free);
}

/*
 * Rounded down to pages, as the tree keeps limits (daemon.c), so that
 * "1.5K" in the file and the tree's 4096 compare equal; the tree's "max"
 * is every size from VMCG_PAGES_MAX pages up.
 */
char *vmcg_merge_size_text(uint64_t bytes)
{
	if (bytes == VMCG_SIZE_MAX || bytes / VMCG_PAGE_SIZE >= VMCG_PAGES_MAX)
		return g_strdup("max");
	return g_strdup_printf("%" PRIu64, bytes / VMCG_PAGE_SIZE * VMCG_PAGE_SIZE);
}

char *vmcg_merge_bool_text(bool b)
{
	return g_strdup(b ? "true" : "false");
}

GPtrArray *vmcg_merge_from_config(const VmcgConfig *c)
{
	GPtrArray *list = vmcg_merge_list_new();

	for (size_t i = 0; i < c->n_groups; i++) {
		const VmcgConfigGroup *cg = &c->groups[i];
		VmcgMergeObject *o = vmcg_merge_object_new(VMCG_MERGE_GROUP, cg->path);

		o->values[VMCG_MERGE_G_MIN] = vmcg_merge_size_text(cg->min_bytes);
		o->values[VMCG_MERGE_G_LOW] = vmcg_merge_size_text(cg->low_bytes);
		o->values[VMCG_MERGE_G_HIGH] = vmcg_merge_size_text(cg->high_bytes);
		o->values[VMCG_MERGE_G_MAX] = vmcg_merge_size_text(cg->max_bytes);
		o->values[VMCG_MERGE_G_OOM_GROUP] = vmcg_merge_bool_text(cg->oom_group);
		o->values[VMCG_MERGE_G_OOM_ACTION] =
			g_strdup(vmcg_oom_action_to_string(cg->oom_action));
		o->values[VMCG_MERGE_G_OVERHEAD_IN_MAX] = vmcg_merge_bool_text(cg->overhead_in_max);
		o->values[VMCG_MERGE_G_CLUSTER_MAX] = vmcg_merge_size_text(cg->cluster_max_bytes);
		g_ptr_array_add(list, o);
	}
	for (size_t i = 0; i < c->n_vms; i++) {
		const VmcgConfigVm *cv = &c->vms[i];
		VmcgMergeObject *o = vmcg_merge_object_new(VMCG_MERGE_VM, cv->name);

		o->values[VMCG_MERGE_V_BACKEND] = g_strdup(cv->backend ? cv->backend : "qmp");
		o->values[VMCG_MERGE_V_ADDRESS] = g_strdup(cv->address);
		o->values[VMCG_MERGE_V_GROUP] = g_strdup(cv->group_path ? cv->group_path : "/");
		/* A floor is kept in bytes as given (vm.c), not rounded. */
		o->values[VMCG_MERGE_V_FLOOR] =
			cv->floor_bytes == VMCG_SIZE_MAX
				? g_strdup("max")
				: g_strdup_printf("%" PRIu64, cv->floor_bytes);
		o->values[VMCG_MERGE_V_OOM_PRIORITY] = g_strdup_printf("%d", cv->oom_priority);
		o->values[VMCG_MERGE_V_CHANNEL] = g_strdup(cv->channel ? cv->channel : "");
		g_ptr_array_add(list, o);
	}
	return list;
}

/* ---- notes ---- */

void vmcg_merge_note_free(VmcgMergeNote *n)
{
	if (!n)
		return;
	g_free(n->name);
	g_free(n->config_value);
	g_free(n->seen_value);
	g_free(n->running_value);
	g_free(n);
}

bool vmcg_merge_note_is_warning(const VmcgMergeNote *n)
{
	return n->what >= VMCG_MERGE_NOTE_CONFLICT;
}

const char *vmcg_merge_note_kind_name(VmcgMergeNoteKind what)
{
	static const char *const names[] = {
		[VMCG_MERGE_NOTE_APPLIED] = "applied",
		[VMCG_MERGE_NOTE_ADOPTED] = "adopted",
		[VMCG_MERGE_NOTE_RECREATED] = "recreated",
		[VMCG_MERGE_NOTE_REMOVED] = "removed",
		[VMCG_MERGE_NOTE_CONFLICT] = "conflict",
		[VMCG_MERGE_NOTE_UNRECORDED] = "unrecorded",
		[VMCG_MERGE_NOTE_KEPT] = "kept",
		[VMCG_MERGE_NOTE_BUSY] = "busy",
	};

	return (unsigned)what < G_N_ELEMENTS(names) ? names[what] : "?";
}

#define V(s) ((s) ? (s) : "(none)")

char *vmcg_merge_note_format(const VmcgMergeNote *n)
{
	g_autofree char *where = NULL;

	if (n->key >= 0)
		where = g_strdup_printf("[%s %s] %s", vmcg_merge_kind_name(n->kind), n->name,
					vmcg_merge_key_name(n->kind, (unsigned)n->key));
	else
		where = g_strdup_printf("[%s %s]", vmcg_merge_kind_name(n->kind), n->name);

	switch (n->what) {
	case VMCG_MERGE_NOTE_APPLIED:
		return g_strdup_printf("%s: changed in the config from %s to %s: applied (was %s)",
				       where, V(n->seen_value), V(n->config_value),
				       V(n->running_value));
	case VMCG_MERGE_NOTE_ADOPTED:
		return g_strdup_printf("%s: new in the config: %s applied (was %s, set through "
				       "the API)",
				       where, V(n->config_value), V(n->running_value));
	case VMCG_MERGE_NOTE_RECREATED:
		return g_strdup_printf("%s: declared in the config but deleted through the API: "
				       "created again (remove the section to remove it for good)",
				       where);
	case VMCG_MERGE_NOTE_REMOVED:
		return g_strdup_printf("%s: its section was removed from the config: removed",
				       where);
	case VMCG_MERGE_NOTE_CONFLICT:
		return g_strdup_printf("%s: the config says %s, but it was set to %s through the "
				       "API: keeping %s (change the config's value to apply it)",
				       where, V(n->config_value), V(n->running_value),
				       V(n->running_value));
	case VMCG_MERGE_NOTE_UNRECORDED:
		return g_strdup_printf("%s: the config says %s, the saved state %s, and there is "
				       "no record of the config's earlier value: keeping %s (edit "
				       "the config's value to apply it)",
				       where, V(n->config_value), V(n->running_value),
				       V(n->running_value));
	case VMCG_MERGE_NOTE_KEPT:
		return g_strdup_printf(
			"%s: its section was removed from the config, but it was "
			"changed through the API (%s %s, not %s): it stays, the "
			"API's now",
			where, n->key >= 0 ? vmcg_merge_key_name(n->kind, (unsigned)n->key) : "",
			V(n->running_value), V(n->seen_value));
	case VMCG_MERGE_NOTE_BUSY:
		return g_strdup_printf("%s: its section was removed from the config, but groups or "
				       "VMs that stay are in it: it stays, the API's now",
				       where);
	}
	return g_strdup(where);
}

static void note(VmcgMergeResult *r, VmcgMergeNoteKind what, const VmcgMergeObject *o, int key,
		 const VmcgMergeObject *c, const VmcgMergeObject *s, const VmcgMergeObject *run)
{
	VmcgMergeNote *n = g_new0(VmcgMergeNote, 1);

	n->what = what;
	n->kind = o->kind;
	n->name = g_strdup(o->name);
	n->key = key;
	if (key >= 0) {
		n->config_value = c ? g_strdup(c->values[key]) : NULL;
		n->seen_value = s ? g_strdup(s->values[key]) : NULL;
		n->running_value = run ? g_strdup(run->values[key]) : NULL;
	}
	g_ptr_array_add(r->notes, n);
}

/* ---- the merge ---- */

static void action_clear(gpointer p)
{
	vmcg_merge_object_free(((VmcgMergeAction *)p)->object);
}

void vmcg_merge_result_clear(VmcgMergeResult *r)
{
	g_clear_pointer(&r->actions, g_array_unref);
	g_clear_pointer(&r->notes, g_ptr_array_unref);
}

static char *index_key(VmcgMergeKind kind, const char *name)
{
	return g_strdup_printf("%c%s", kind == VMCG_MERGE_GROUP ? 'g' : 'v', name);
}

static GHashTable *index_of(const GPtrArray *list)
{
	GHashTable *h = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

	for (guint i = 0; list && i < list->len; i++) {
		const VmcgMergeObject *o = list->pdata[i];

		g_hash_table_insert(h, index_key(o->kind, o->name), (gpointer)o);
	}
	return h;
}

static const VmcgMergeObject *lookup(GHashTable *h, const VmcgMergeObject *o)
{
	g_autofree char *k = index_key(o->kind, o->name);

	return g_hash_table_lookup(h, k);
}

static unsigned depth(const char *path)
{
	unsigned n = 0;

	for (; *path; path++)
		n += *path == '/';
	return n;
}

/* The order in which actions are applied; see VmcgMergeResult. */
static int phase(const VmcgMergeAction *a)
{
	if (a->object->kind == VMCG_MERGE_GROUP)
		return a->op == VMCG_MERGE_REMOVE ? 9 : a->op == VMCG_MERGE_CREATE ? 0 : 1;
	switch (a->op) {
	case VMCG_MERGE_REMOVE:
		return 2;
	case VMCG_MERGE_REPLACE:
		return 3;
	case VMCG_MERGE_CREATE:
		return 4;
	default:
		return 5;
	}
}

static gint action_cmp(gconstpointer pa, gconstpointer pb)
{
	const VmcgMergeAction *a = pa, *b = pb;
	int d = phase(a) - phase(b);

	if (d)
		return d;
	if (a->object->kind == VMCG_MERGE_GROUP) {
		int da = (int)depth(a->object->name), db = (int)depth(b->object->name);

		/* parents first, but children first when removing */
		return a->op == VMCG_MERGE_REMOVE ? db - da : da - db;
	}
	return 0;
}

static void add_action(VmcgMergeResult *r, VmcgMergeOp op, unsigned keys, VmcgMergeObject *o)
{
	VmcgMergeAction a = { .op = op, .keys = keys, .object = o };

	g_array_append_val(r->actions, a);
}

static bool same(const char *a, const char *b)
{
	return g_strcmp0(a, b) == 0;
}

/* Whether @path is @group or under it. */
static bool in_group(const char *path, const char *group)
{
	size_t n = strlen(group);

	return strncmp(path, group, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

void vmcg_merge(const GPtrArray *config, const GPtrArray *seen, const GPtrArray *running,
		VmcgMergeResult *ret)
{
	g_autoptr(GHashTable) ci = index_of(config);
	g_autoptr(GHashTable) si = index_of(seen);
	g_autoptr(GHashTable) ri = index_of(running);
	/* what the tree will have: name -> merged object (VM) or non-NULL (group) */
	g_autoptr(GHashTable) stays = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	g_autoptr(GPtrArray) removals = g_ptr_array_new(); /* const VmcgMergeObject *, running */

	ret->actions = g_array_new(FALSE, TRUE, sizeof(VmcgMergeAction));
	g_array_set_clear_func(ret->actions, action_clear);
	ret->notes = g_ptr_array_new_with_free_func((GDestroyNotify)vmcg_merge_note_free);

	for (guint i = 0; i < config->len; i++) {
		const VmcgMergeObject *c = config->pdata[i];
		const VmcgMergeObject *r = lookup(ri, c);
		const VmcgMergeObject *s = seen ? lookup(si, c) : NULL;
		unsigned n = vmcg_merge_nkeys(c->kind), mask = 0;
		VmcgMergeObject *merged;

		if (!r) {
			if (s)
				note(ret, VMCG_MERGE_NOTE_RECREATED, c, -1, c, s, NULL);
			merged = vmcg_merge_object_copy(c);
			add_action(ret, VMCG_MERGE_CREATE, 0, merged);
			g_hash_table_insert(stays, index_key(c->kind, c->name), merged);
			continue;
		}
		merged = vmcg_merge_object_copy(r);
		for (unsigned k = 0; k < n; k++) {
			if (same(c->values[k], r->values[k]))
				continue;
			if (!seen) {
				note(ret, VMCG_MERGE_NOTE_UNRECORDED, c, (int)k, c, NULL, r);
			} else if (!s || !same(c->values[k], s->values[k])) {
				note(ret, s ? VMCG_MERGE_NOTE_APPLIED : VMCG_MERGE_NOTE_ADOPTED, c,
				     (int)k, c, s, r);
				mask |= 1u << k;
				g_free(merged->values[k]);
				merged->values[k] = g_strdup(c->values[k]);
			} else {
				note(ret, VMCG_MERGE_NOTE_CONFLICT, c, (int)k, c, s, r);
			}
		}
		if (!mask) {
			vmcg_merge_object_free(merged);
			g_hash_table_insert(stays, index_key(c->kind, c->name), (gpointer)r);
			continue;
		}
		/* the action owns it; stays only points at it */
		g_hash_table_insert(stays, index_key(c->kind, c->name), merged);
		if (c->kind == VMCG_MERGE_VM &&
		    (mask & (1u << VMCG_MERGE_V_BACKEND | 1u << VMCG_MERGE_V_ADDRESS)))
			add_action(ret, VMCG_MERGE_REPLACE, mask, merged);
		else
			add_action(ret, VMCG_MERGE_UPDATE, mask, merged);
	}

	/* Sections removed since the record: remove what the API left alone. */
	for (guint i = 0; seen && i < seen->len; i++) {
		const VmcgMergeObject *s = seen->pdata[i];
		const VmcgMergeObject *r = lookup(ri, s);
		int changed = -1;

		if (lookup(ci, s) || !r)
			continue;
		for (unsigned k = 0; changed < 0 && k < vmcg_merge_nkeys(s->kind); k++)
			if (!same(s->values[k], r->values[k]))
				changed = (int)k;
		if (changed >= 0) {
			note(ret, VMCG_MERGE_NOTE_KEPT, r, changed, NULL, s, r);
			continue;
		}
		g_ptr_array_add(removals, (gpointer)r);
	}
	/* Everything else running stays as it is. */
	for (guint i = 0; running && i < running->len; i++) {
		const VmcgMergeObject *r = running->pdata[i];
		g_autofree char *k = index_key(r->kind, r->name);

		if (!g_hash_table_contains(stays, k) && !g_ptr_array_find(removals, r, NULL))
			g_hash_table_insert(stays, g_steal_pointer(&k), (gpointer)r);
	}
	for (guint i = 0; i < removals->len; i++) {
		const VmcgMergeObject *r = removals->pdata[i];

		if (r->kind == VMCG_MERGE_VM) {
			note(ret, VMCG_MERGE_NOTE_REMOVED, r, -1, NULL, NULL, r);
			add_action(ret, VMCG_MERGE_REMOVE, 0, vmcg_merge_object_copy(r));
		}
	}
	/*
	 * A group goes only if nothing that stays is in it: children first, so
	 * that a child that stays keeps its parent too.
	 */
	{
		g_autoptr(GPtrArray) gr = g_ptr_array_new();

		for (guint i = 0; i < removals->len; i++)
			if (((VmcgMergeObject *)removals->pdata[i])->kind == VMCG_MERGE_GROUP)
				g_ptr_array_add(gr, removals->pdata[i]);
		for (guint i = 0; i < gr->len; i++)
			for (guint j = i + 1; j < gr->len; j++) {
				const VmcgMergeObject *a = gr->pdata[i], *b = gr->pdata[j];

				if (depth(b->name) > depth(a->name)) {
					gr->pdata[i] = (gpointer)b;
					gr->pdata[j] = (gpointer)a;
				}
			}
		for (guint i = 0; i < gr->len; i++) {
			const VmcgMergeObject *g = gr->pdata[i];
			bool busy = false;
			GHashTableIter it;
			gpointer key, value;

			g_hash_table_iter_init(&it, stays);
			while (!busy && g_hash_table_iter_next(&it, &key, &value)) {
				const VmcgMergeObject *o = value;

				if (o->kind == VMCG_MERGE_GROUP)
					busy = in_group(o->name, g->name);
				else
					busy = o->values[VMCG_MERGE_V_GROUP] &&
					       in_group(o->values[VMCG_MERGE_V_GROUP], g->name);
			}
			if (busy) {
				note(ret, VMCG_MERGE_NOTE_BUSY, g, -1, NULL, NULL, g);
				g_hash_table_insert(stays, index_key(g->kind, g->name),
						    (gpointer)g);
				continue;
			}
			note(ret, VMCG_MERGE_NOTE_REMOVED, g, -1, NULL, NULL, g);
			add_action(ret, VMCG_MERGE_REMOVE, 0, vmcg_merge_object_copy(g));
		}
	}
	g_array_sort(ret->actions, action_cmp);
}

/* ---- [daemon] on reload ---- */

static void restart_str(const char *key, char *const *running, char **next, GPtrArray *keys)
{
	if (g_strcmp0(*running, *next) == 0)
		return;
	g_ptr_array_add(keys, g_strdup(key));
	g_free(*next);
	*next = g_strdup(*running);
}

#define RESTART_VAL(key, field)                                           \
	do {                                                              \
		if (running->field != next->field) {                      \
			g_ptr_array_add(ret_restart_keys, g_strdup(key)); \
			next->field = running->field;                     \
		}                                                         \
	} while (0)

void vmcg_config_reload_daemon(const VmcgConfig *running, VmcgConfig *next,
			       GPtrArray *ret_restart_keys)
{
	restart_str("socket", &running->socket_path, &next->socket_path, ret_restart_keys);
	restart_str("state", &running->state_path, &next->state_path, ret_restart_keys);
	restart_str("hooks-socket", &running->hooks_socket_path, &next->hooks_socket_path,
		    ret_restart_keys);
	restart_str("write-group", &running->write_group, &next->write_group, ret_restart_keys);
	restart_str("[libvirt] uri", &running->libvirt_uri, &next->libvirt_uri, ret_restart_keys);
	restart_str("[libvirt] default-group", &running->libvirt_default_group,
		    &next->libvirt_default_group, ret_restart_keys);
	restart_str("[cluster] etcd", &running->cluster_etcd, &next->cluster_etcd,
		    ret_restart_keys);
	restart_str("[cluster] node", &running->cluster_node, &next->cluster_node,
		    ret_restart_keys);
	restart_str("[cluster] ca-file", &running->cluster_ca_file, &next->cluster_ca_file,
		    ret_restart_keys);
	restart_str("[cluster] cert-file", &running->cluster_cert_file, &next->cluster_cert_file,
		    ret_restart_keys);
	restart_str("[cluster] key-file", &running->cluster_key_file, &next->cluster_key_file,
		    ret_restart_keys);
	RESTART_VAL("[cluster] lease-ttl", cluster_lease_ttl_usec);
	RESTART_VAL("[cluster] hysteresis", cluster_hysteresis_bytes);
	RESTART_VAL("[cluster] min-grant", cluster_min_grant_bytes);
	RESTART_VAL("[cluster] shrink-wait", cluster_shrink_wait_usec);
	RESTART_VAL("recursive-protection", recursive_protection);
	RESTART_VAL("stock-batch", stock_batch);
	RESTART_VAL("backstop", backstop);
	RESTART_VAL("backstop-overhead", backstop_overhead_bytes);
	if (running->stats_interval_usec != next->stats_interval_usec) {
		RESTART_VAL("stats-interval", stats_interval_usec);
		RESTART_VAL("stats-max-age", stats_max_age_usec);
	}
}
