// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The API's read-outs: groups and VMs as JSON, named after the cgroup
 * files (docs/api.md). Sizes in bytes, limits "max" at VMCG_PAGES_MAX.
 */
#include <string.h>

#include "api-private.h"
#include "cluster.h"
#include "vmcg/oom.h"
#include "vmcg/size.h"

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

/*
 * The hold is the daemon's policy, vmpressure-hold, read live: 0 holds
 * nothing (a level shows only at the instant it is raised; the event
 * stream has every level).
 */
VmcgVmpressureLevel vmcg_api_group_vmpressure(VmcgApi *api, VmcgGroup *g)
{
	return vmcg_vmpressure_level(vmcg_group_vmpressure(g), vmcg_daemon_now_usec(api->d),
				     vmcg_daemon_policy(api->d)->vmpressure_hold_usec);
}

/* The group's cluster quota and grant (docs/cluster.md); NULL (null) when not cluster-wide. */
static json_object *cluster_json(VmcgApi *api, VmcgGroup *g)
{
	VmcgCluster *c = vmcg_daemon_cluster(api->d);
	VmcgClusterGroupInfo i;
	const VmcgGrantHost *h;
	json_object *o, *hosts;

	if (!vmcg_cluster_group_info(c, g, &i))
		return NULL;
	o = json_object_new_object();
	hosts = json_object_new_object();
	json_object_object_add(o, "memory.max", json_object_new_uint64(i.quota_bytes));
	json_object_object_add(o, "state",
			       json_object_new_string(vmcg_cluster_state_to_string(i.state)));
	json_object_object_add(o, "quota", json_object_new_uint64(i.quota_in_force));
	json_object_object_add(o, "drift", json_object_new_boolean(i.drift));
	json_object_object_add(o, "grant", json_object_new_uint64(i.grant_bytes));
	json_object_object_add(o, "enforced", json_object_new_uint64(i.enforce_bytes));
	json_object_object_add(o, "shrinking", json_object_new_boolean(i.shrinking));
	json_object_object_add(o, "demand", json_object_new_uint64(i.demand_bytes));
	for (size_t k = 0; (h = vmcg_cluster_group_host(c, g, k)); k++)
		json_object_object_add(hosts, h->name, json_object_new_uint64(h->grant_bytes));
	json_object_object_add(o, "hosts", hosts);
	json_object_object_add(o, "pool", json_object_new_uint64(i.pool_bytes));
	json_object_object_add(o, "synced-usec", json_object_new_int64(i.synced_usec));
	json_object_object_add(o, "reason", json_object_new_string(i.reason));
	json_object_object_add(o, "writes", json_object_new_uint64(i.writes));
	json_object_object_add(o, "conflicts", json_object_new_uint64(i.conflicts));
	json_object_object_add(o, "error",
			       i.last_error ? json_object_new_string(i.last_error) : NULL);
	return o;
}

/* Every member of @g's GET form but "children", which comes last. */
static json_object *group_fields(VmcgApi *api, VmcgGroup *g)
{
	json_object *obj = json_object_new_object();
	json_object *vms = json_object_new_array();

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
	json_object_object_add(obj, "vmpressure",
			       json_object_new_string(vmcg_vmpressure_level_to_string(
							      vmcg_api_group_vmpressure(api, g))
							      ?: "none"));
	json_object_object_add(obj, "memory.stat", json_stat(g));
	json_object_object_add(obj, "memory.oom.group",
			       json_object_new_boolean(vmcg_group_oom_group(g)));
	json_object_object_add(
		obj, "oom-action",
		json_object_new_string(vmcg_oom_action_to_string(vmcg_group_oom_action(g))));
	json_object_object_add(obj, "overhead-in-max",
			       json_object_new_boolean(vmcg_group_overhead_counted(g)));
	json_object_object_add(obj, "cluster", cluster_json(api, g));
	for (VmcgVm *vm = vmcg_group_first_vm(g); vm; vm = vmcg_vm_next_in_group(vm))
		json_object_array_add(vms, json_object_new_string(vmcg_vm_name(vm)));
	json_object_object_add(obj, "vms", vms);
	return obj;
}

json_object *vmcg_api_group_to_json(VmcgApi *api, VmcgGroup *g, bool nested)
{
	json_object *obj = group_fields(api, g);
	json_object *children = json_object_new_array();

	for (VmcgGroup *c = vmcg_group_first_child(g); c; c = vmcg_group_next_sibling(c))
		json_object_array_add(children,
				      nested ? vmcg_api_group_to_json(api, c, true)
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
/* avg10 in hundredths of a percent, as a JSON number with two decimals. */
static json_object *centi_json(uint32_t centi)
{
	char text[16];

	g_snprintf(text, sizeof(text), "%u.%02u", centi / 100, centi % 100);
	return json_object_new_double_s(centi / 100.0, text);
}

/* The guest pressure channel (docs/guest-channel.md, "State"). */
static json_object *channel_to_json(const VmcgDvmInfo *i)
{
	json_object *o = json_object_new_object(), *r = NULL, *psi;

	json_object_object_add(o, "path", json_object_new_string(i->channel_path));
	json_object_object_add(o, "state", json_object_new_string(i->channel_state));
	json_object_object_add(o, "version",
			       i->channel_version ? json_object_new_int64(i->channel_version)
						  : NULL);
	json_object_object_add(o, "agent",
			       i->channel_agent ? json_object_new_string(i->channel_agent) : NULL);
	json_object_object_add(o, "dropped", json_object_new_uint64(i->channel_dropped));
	if (i->has_report) {
		r = json_object_new_object();
		psi = NULL;
		if (i->report.has_psi) {
			psi = json_object_new_object();
			json_object_object_add(psi, "some-avg10",
					       centi_json(i->report.some_avg10_centi));
			json_object_object_add(psi, "full-avg10",
					       centi_json(i->report.full_avg10_centi));
			json_object_object_add(psi, "some-total-usec",
					       json_object_new_uint64(i->report.some_total_usec));
			json_object_object_add(psi, "full-total-usec",
					       json_object_new_uint64(i->report.full_total_usec));
		}
		json_object_object_add(r, "psi", psi);
		json_object_object_add(r, "available",
				       i->report.has_available
					       ? json_object_new_uint64(i->report.available)
					       : NULL);
		json_object_object_add(r, "file",
				       i->report.has_file ? json_object_new_uint64(i->report.file)
							  : NULL);
		json_object_object_add(r, "anon",
				       i->report.has_anon ? json_object_new_uint64(i->report.anon)
							  : NULL);
		json_object_object_add(r, "age-usec", json_object_new_int64(i->report_age_usec));
	}
	json_object_object_add(o, "report", r);
	return o;
}

static json_object *hooks_to_json(const VmcgDvmInfo *i)
{
	json_object *h = json_object_new_object();

	json_object_object_add(h, "slots", json_object_new_int64(i->hooks.nr_slots));
	json_object_object_add(h, "batch", json_object_new_int64(i->hooks.batch));
	json_object_object_add(h, "refill-batch", json_object_new_int64(i->hooks.refill_batch));
	json_object_object_add(h, "charged",
			       json_object_new_uint64(i->hooks.charged * VMCG_PAGE_SIZE));
	json_object_object_add(h, "credit",
			       json_object_new_int64(i->hooks.credit * (int64_t)VMCG_PAGE_SIZE));
	json_object_object_add(h, "populated",
			       json_object_new_uint64(i->hooks.populated * VMCG_PAGE_SIZE));
	json_object_object_add(h, "unbacked",
			       json_object_new_uint64(i->hooks.unbacked * VMCG_PAGE_SIZE));
	json_object_object_add(h, "slack", json_object_new_uint64(i->hooks.slack * VMCG_PAGE_SIZE));
	json_object_object_add(h, "faults", json_object_new_uint64(i->hooks.faults));
	json_object_object_add(h, "granted",
			       json_object_new_uint64(i->hooks.grants * VMCG_PAGE_SIZE));
	json_object_object_add(h, "drained",
			       json_object_new_uint64(i->hooks.drains * VMCG_PAGE_SIZE));
	json_object_object_add(h, "held", json_object_new_int64(i->hooks.held));
	json_object_object_add(h, "stall-usec", json_object_new_uint64(i->hooks.stall_usec));
	json_object_object_add(h, "audit-flagged", json_object_new_boolean(i->hook_audit_flagged));
	return h;
}

/*
 * Whether the charge is known: "pending" until the first read of a QEMU
 * is back, "known", or "unknown" with why, since when and whether the VM
 * is charged its whole RAM meanwhile (charge.h).
 */
static json_object *charge_to_json(const VmcgDvmInfo *i)
{
	json_object *c = json_object_new_object();
	bool unknown = i->charge_state && g_str_equal(i->charge_state, "unknown");

	json_object_object_add(c, "state", json_object_new_string(i->charge_state ?: "pending"));
	json_object_object_add(
		c, "reason",
		unknown && i->charge_reason ? json_object_new_string(i->charge_reason) : NULL);
	json_object_object_add(c, "unknown-usec",
			       unknown ? json_object_new_int64(i->charge_unknown_usec) : NULL);
	json_object_object_add(c, "failures", json_object_new_int64(i->charge_failures));
	json_object_object_add(c, "worst-case", json_object_new_boolean(i->charge_worst_case));
	json_object_object_add(c, "sample-age-usec",
			       i->sample_age_usec >= 0 ? json_object_new_int64(i->sample_age_usec)
						       : NULL);
	return c;
}

json_object *vmcg_api_vm_to_json(VmcgDvm *vm)
{
	json_object *obj = json_object_new_object();
	json_object *balloon = json_object_new_object();
	json_object *stats = NULL;
	VmcgDvmInfo i;

	vmcg_dvm_info(vm, &i);
	json_object_object_add(obj, "name", json_object_new_string(i.name));
	json_object_object_add(obj, "group", json_object_new_string(i.group));
	json_object_object_add(obj, "backend", json_object_new_string(i.backend ?: "qmp"));
	json_object_object_add(obj, "address", json_object_new_string(i.address ?: ""));
	/* The address again for the qmp backend, as before backends; null for others. */
	json_object_object_add(obj, "qmp", i.qmp ? json_object_new_string(i.qmp) : NULL);
	if (i.domain) {
		json_object *meta = json_object_new_object(), *problems = json_object_new_array();

		json_object_object_add(obj, "domain", json_object_new_string(i.domain));
		json_object_object_add(obj, "uuid", json_object_new_string(i.uuid ?: ""));
		for (guint k = 0; i.problems && k < i.problems->len; k++)
			json_object_array_add(
				problems, json_object_new_string(g_ptr_array_index(i.problems, k)));
		json_object_object_add(meta, "valid",
				       json_object_new_boolean(!i.problems || !i.problems->len));
		json_object_object_add(meta, "problems", problems);
		json_object_object_add(meta, "fallback",
				       i.fallback ? json_object_new_string(i.fallback) : NULL);
		json_object_object_add(obj, "metadata", meta);
	}
	json_object_object_add(obj, "mode", json_object_new_string(i.mode ?: "sampling"));
	json_object_object_add(obj, "state", json_object_new_string(i.state ?: "connecting"));
	json_object_object_add(obj, "pid", i.pid > 0 ? json_object_new_int64(i.pid) : NULL);
	json_object_object_add(obj, "memory.current", json_object_new_uint64(i.current));
	json_object_object_add(obj, "ram", json_known(i.ram));
	json_object_object_add(obj, "resident", json_object_new_uint64(i.resident));
	json_object_object_add(obj, "overhead", json_object_new_uint64(i.overhead));
	json_object_object_add(obj, "charge", charge_to_json(&i));
	json_object_object_add(balloon, "target", json_known(i.balloon_target));
	json_object_object_add(balloon, "actual", json_known(i.balloon_actual));
	/* Whether vmcgd drives it, and if not why (libvirt: no device, VFIO, hugepages). */
	json_object_object_add(balloon, "enforced", json_object_new_boolean(!i.no_balloon));
	json_object_object_add(balloon, "reason",
			       i.no_balloon ? json_object_new_string(i.no_balloon) : NULL);
	json_object_object_add(balloon, "migrating", json_object_new_boolean(i.migrating));
	json_object_object_add(balloon, "external", json_object_new_boolean(i.external_hold));
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
	json_object_object_add(obj, "channel", i.channel_path ? channel_to_json(&i) : NULL);
	return obj;
}

/* ---- streamed: JSON a chunk at a time ---- */

/*
 * A streamed JSON document is spliced from json-c's own text of each
 * object, so that it is byte for byte what json-c prints for the whole
 * (json_object.c, 0.16): with PRETTY | SPACED, a member or element at
 * level L is on its own line indented by 2 L spaces; an array at level L
 * is "[", then "\n" + indent(L + 1) + element, joined by ",", then "\n"
 * (after "[" itself if there is no element), indent(L) and "]"; an
 * object ends "\n" + indent(L) +
 * "}". Printed alone, an object is at level 0: at level L, every line
 * after its first gets 2 L more spaces. PLAIN has no blanks at all.
 * test-api-render.c checks the splice against json-c on trees.
 */
#define JSON_FLAGS_PLAIN (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define JSON_FLAGS_PRETTY \
	(JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE)

static void indent(GString *out, unsigned level)
{
	for (unsigned i = 0; i < level; i++)
		g_string_append(out, "  ");
}

/* @text, printed at level 0, as printed at @level. */
static void append_at_level(GString *out, const char *text, size_t len, unsigned level)
{
	for (size_t i = 0; i < len; i++) {
		g_string_append_c(out, text[i]);
		if (text[i] == '\n')
			indent(out, level);
	}
}

/* Before an element of an array at @level (pretty): its separator and indent. */
static void element_begin(GString *out, bool pretty, bool first, unsigned level)
{
	if (!first)
		g_string_append_c(out, ',');
	if (pretty) {
		g_string_append_c(out, '\n');
		indent(out, level + 1);
	}
}

/*
 * After the last element of an array at @level. Pretty, the newline is
 * the one after the last element, or for an empty array the one json-c
 * writes after "[" (nothing else stands between them).
 */
static void array_end(GString *out, bool pretty, unsigned level)
{
	if (pretty) {
		g_string_append_c(out, '\n');
		indent(out, level);
	}
	g_string_append_c(out, ']');
}

/*
 * Group objects nest two levels per tree level (object, its "children"
 * array), so a group d levels below the answer's root is at level 2 d.
 * The deepest: VMCG group paths have at most 16 levels below "/".
 */
#define GROUPS_DEPTH_MAX 17

typedef struct GroupsJson {
	VmcgApiProducer base;
	VmcgApi *api;
	char *root_path;
	unsigned root_depth; /* of root_path, "/" being 0 */
	bool pretty;
	VmcgApiCursor cursor;
	unsigned open; /* group objects open: their depths are 0 .. open - 1 */
	bool had_child[GROUPS_DEPTH_MAX + 1]; /* of each open group */
} GroupsJson;

static unsigned path_depth(const char *path)
{
	unsigned n = 0;

	if (strcmp(path, "/") == 0)
		return 0;
	for (const char *p = path; *p; p++)
		n += *p == '/';
	return n;
}

/* Close the innermost open group: its "children" array, then itself. */
static void groups_close_one(GroupsJson *j, GString *out)
{
	unsigned level = 2 * (j->open - 1);

	array_end(out, j->pretty, level + 1);
	if (j->pretty) {
		g_string_append_c(out, '\n');
		indent(out, level);
	}
	g_string_append_c(out, '}');
	j->open--;
}

/* Write @g, @depth below the root, up to its "children" array, left open. */
static void groups_open(GroupsJson *j, GString *out, VmcgGroup *g, unsigned depth)
{
	g_autoptr(json_object) obj = group_fields(j->api, g);
	const char *text, *bracket;

	json_object_object_add(obj, "children", json_object_new_array());
	text = json_object_to_json_string_ext(obj,
					      j->pretty ? JSON_FLAGS_PRETTY : JSON_FLAGS_PLAIN);
	/* "children" is the last member, and empty: its '[' is the text's last. */
	bracket = strrchr(text, '[');
	if (depth > 0) {
		element_begin(out, j->pretty, !j->had_child[depth - 1], 2 * (depth - 1) + 1);
		j->had_child[depth - 1] = true;
	}
	append_at_level(out, text, (size_t)(bracket - text) + 1, 2 * depth);
	j->had_child[depth] = false;
	j->open = depth + 1;
}

static bool groups_fill(VmcgApiProducer *p, GString *out, gsize want)
{
	GroupsJson *j = (GroupsJson *)p;
	VmcgApiGroupWalk walk;
	gpointer item = NULL, last = NULL;

	if (vmcg_api_group_walk_init(&walk, vmcg_daemon_tree(j->api->d), j->root_path))
		item = vmcg_api_cursor_resume(&j->cursor, &vmcg_api_group_walk_ops, &walk,
					      walk.root);
	/* else the root is gone, and so is its subtree: close what is open. */
	for (; item && out->len < want; item = vmcg_group_next_descendant(item, walk.root)) {
		unsigned depth = path_depth(vmcg_group_path(item)) - j->root_depth;

		/* Its parent is open (api-cursor.h): close what is below it. */
		if (depth > j->open || depth > GROUPS_DEPTH_MAX)
			continue; /* cannot happen: never a dangling '{' */
		while (j->open > depth)
			groups_close_one(j, out);
		groups_open(j, out, item, depth);
		last = item;
	}
	if (item) {
		vmcg_api_cursor_save(&j->cursor, &vmcg_api_group_walk_ops, &walk, last);
		return false;
	}
	while (j->open > 0)
		groups_close_one(j, out);
	g_string_append_c(out, '\n');
	return true;
}

static void groups_free(VmcgApiProducer *p)
{
	GroupsJson *j = (GroupsJson *)p;

	vmcg_api_cursor_clear(&j->cursor);
	g_free(j->root_path);
	g_free(j);
}

VmcgApiProducer *vmcg_api_groups_producer_new(VmcgApi *api, const char *path, bool pretty)
{
	GroupsJson *j = g_new0(GroupsJson, 1);

	j->base.fill = groups_fill;
	j->base.free = groups_free;
	j->api = api;
	j->root_path = g_strdup(path);
	j->root_depth = path_depth(path);
	j->pretty = pretty;
	return &j->base;
}

typedef struct VmsJson {
	VmcgApiProducer base;
	VmcgApi *api;
	bool pretty;
	bool opened;
	bool had_element;
	VmcgApiCursor cursor;
} VmsJson;

static bool vms_fill(VmcgApiProducer *p, GString *out, gsize want)
{
	VmsJson *v = (VmsJson *)p;
	VmcgDaemon *d = v->api->d;
	gpointer item, last = NULL;

	if (!v->opened) {
		g_string_append_c(out, '[');
		v->opened = true;
	}
	item = vmcg_api_cursor_resume(&v->cursor, &vmcg_api_vm_walk_ops, d,
				      vmcg_daemon_vm_first(d));
	for (; item && out->len < want; item = vmcg_daemon_vm_next(item)) {
		g_autoptr(json_object) obj = vmcg_api_vm_to_json(item);
		const char *text = json_object_to_json_string_ext(
			obj, v->pretty ? JSON_FLAGS_PRETTY : JSON_FLAGS_PLAIN);

		element_begin(out, v->pretty, !v->had_element, 0);
		v->had_element = true;
		append_at_level(out, text, strlen(text), 1);
		last = item;
	}
	if (item) {
		vmcg_api_cursor_save(&v->cursor, &vmcg_api_vm_walk_ops, d, last);
		return false;
	}
	array_end(out, v->pretty, 0);
	g_string_append_c(out, '\n');
	return true;
}

static void vms_free(VmcgApiProducer *p)
{
	VmsJson *v = (VmsJson *)p;

	vmcg_api_cursor_clear(&v->cursor);
	g_free(v);
}

VmcgApiProducer *vmcg_api_vms_producer_new(VmcgApi *api, bool pretty)
{
	VmsJson *v = g_new0(VmsJson, 1);

	v->base.fill = vms_fill;
	v->base.free = vms_free;
	v->api = api;
	v->pretty = pretty;
	return &v->base;
}
