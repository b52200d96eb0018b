// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * GET /metrics: the tree and the VMs in the Prometheus text exposition
 * format (version 0.0.4), computed on each scrape from the live tree.
 */
#include <string.h>

#include "api-private.h"
#include "backend-libvirt.h"
#include "cluster.h"
#include "vmcg/size.h"

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

/* ---- group families: one call writes one group's samples ---- */

typedef struct Section Section;
typedef void (*GroupFn)(VmcgApi *api, GString *out, VmcgGroup *g, const Section *sec);
typedef void (*VmFn)(GString *out, const VmcgDvmInfo *i, const Section *sec);

/*
 * One metric family: its header, then a sample or a few for each group
 * (group != NULL) or each VM (vm != NULL), in walk order; or, for the
 * first, the daemon-wide gauges (neither).
 */
struct Section {
	const char *name;
	const char *type;
	const char *help;
	GroupFn group;
	VmFn vm;
	int arg;
};

static void group_gauge(VmcgApi *api, GString *out, VmcgGroup *g, const Section *sec)
{
	const GroupGauge *m = &group_gauges[sec->arg];
	uint64_t pages = m->pages(g);

	(void)api;
	sample_begin(out, m->name, "group", vmcg_group_path(g));
	if (m->limit && pages >= VMCG_PAGES_MAX)
		g_string_append(out, "} +Inf\n");
	else
		sample_end_u64(out, pages * VMCG_PAGE_SIZE);
}

static void group_events(VmcgApi *api, GString *out, VmcgGroup *g, const Section *sec)
{
	(void)api;
	for (int e = 0; e < _VMCG_EVENT_COUNT; e++) {
		sample_begin(out, sec->name, "group", vmcg_group_path(g));
		g_string_append_printf(out, ",event=\"%s\"", vmcg_event_to_string(e));
		sample_end_u64(out, vmcg_group_events(g, e, sec->arg));
	}
}

static void group_stat(VmcgApi *api, GString *out, VmcgGroup *g, const Section *sec)
{
	(void)api;
	for (int s = 0; s < _VMCG_STAT_COUNT; s++) {
		sample_begin(out, sec->name, "group", vmcg_group_path(g));
		g_string_append_printf(out, ",item=\"%s\"", vmcg_stat_to_string(s));
		sample_end_u64(out, vmcg_group_stat(g, s) * VMCG_PAGE_SIZE);
	}
}

static const char *const psi_states[_VMCG_PSI_STATE_COUNT] = { "some", "full" };

static void group_stall(VmcgApi *api, GString *out, VmcgGroup *g, const Section *sec)
{
	(void)api;
	for (int s = 0; s < _VMCG_PSI_STATE_COUNT; s++) {
		uint32_t avg[3];
		uint64_t total;

		vmcg_psi_read(vmcg_group_psi(g), s, avg, &total);
		sample_begin(out, sec->name, "group", vmcg_group_path(g));
		g_string_append_printf(out, ",kind=\"%s\"} %" G_GUINT64_FORMAT ".%06u\n",
				       psi_states[s], total / G_USEC_PER_SEC,
				       (unsigned)(total % G_USEC_PER_SEC));
	}
}

static void group_ratio(VmcgApi *api, GString *out, VmcgGroup *g, const Section *sec)
{
	static const char *const windows[3] = { "10", "60", "300" };

	(void)api;
	for (int s = 0; s < _VMCG_PSI_STATE_COUNT; s++) {
		uint32_t avg[3];
		uint64_t total;

		vmcg_psi_read(vmcg_group_psi(g), s, avg, &total);
		for (int w = 0; w < 3; w++) {
			sample_begin(out, sec->name, "group", vmcg_group_path(g));
			g_string_append_printf(out, ",kind=\"%s\",window=\"%s\"} %u.%04u\n",
					       psi_states[s], windows[w], avg[w] / 10000,
					       avg[w] % 10000);
		}
	}
}

static void group_vmpressure(VmcgApi *api, GString *out, VmcgGroup *g, const Section *sec)
{
	VmcgVmpressureLevel level = vmcg_api_group_vmpressure(api, g);

	sample_begin(out, sec->name, "group", vmcg_group_path(g));
	sample_end_u64(out, (uint64_t)(level - VMCG_VMPRESSURE_NONE));
}

static void group_nr_vms(VmcgApi *api, GString *out, VmcgGroup *g, const Section *sec)
{
	(void)api;
	sample_begin(out, sec->name, "group", vmcg_group_path(g));
	sample_end_u64(out, vmcg_group_nr_vms(g));
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

static void vm_gauge(GString *out, const VmcgDvmInfo *i, const Section *sec)
{
	switch (vm_gauges[sec->arg].value) {
	case VM_CURRENT:
		vm_sample(out, sec->name, i);
		sample_end_u64(out, i->current);
		break;
	case VM_RAM:
	case VM_BALLOON_TARGET:
	case VM_BALLOON_ACTUAL: {
		uint64_t v = vm_gauges[sec->arg].value == VM_RAM	      ? i->ram
			     : vm_gauges[sec->arg].value == VM_BALLOON_TARGET ? i->balloon_target
									      : i->balloon_actual;

		if (v) { /* 0 is "not known": no sample rather than a false 0 */
			vm_sample(out, sec->name, i);
			sample_end_u64(out, v);
		}
		break;
	}
	case VM_RESIDENT:
		vm_sample(out, sec->name, i);
		sample_end_u64(out, i->resident);
		break;
	case VM_OVERHEAD:
		vm_sample(out, sec->name, i);
		sample_end_u64(out, i->overhead);
		break;
	case VM_FLOOR:
		vm_sample(out, sec->name, i);
		if (i->floor == VMCG_BYTES_MAX)
			g_string_append(out, "} +Inf\n");
		else
			sample_end_u64(out, i->floor);
		break;
	case VM_OOM_PRIORITY:
		vm_sample(out, sec->name, i);
		g_string_append_printf(out, "} %d\n", (int)i->oom_priority);
		break;
	case VM_STATS_AGE:
		if (i->has_stats && i->stats_age_usec >= 0) {
			vm_sample(out, sec->name, i);
			g_string_append_printf(out, "} %" G_GINT64_FORMAT ".%06u\n",
					       i->stats_age_usec / G_USEC_PER_SEC,
					       (unsigned)(i->stats_age_usec % G_USEC_PER_SEC));
		}
		break;
	}
}

static void vm_state(GString *out, const VmcgDvmInfo *i, const Section *sec)
{
	static const char *const vm_states[] = { "connecting", "ready", "paused", "gone" };

	for (size_t s = 0; s < G_N_ELEMENTS(vm_states); s++) {
		vm_sample(out, sec->name, i);
		g_string_append_printf(out, ",state=\"%s\"", vm_states[s]);
		sample_end_u64(out, i->state && strcmp(i->state, vm_states[s]) == 0);
	}
}

/* The state file's health (GET /v1/status has the same, and the error's text). */
static void metrics_state(VmcgApi *api, GString *out)
{
	VmcgStateHealth h;

	vmcg_daemon_state_health(api->d, &h);
	if (!h.path)
		return;
	family(out, "vmcg_state_ok", "gauge",
	       "1 if the last save of the state file succeeded (writes are acknowledged), 0 if "
	       "it failed (writes are refused with 503).");
	g_string_append_printf(out, "vmcg_state_ok %d\n", h.ok ? 1 : 0);
	family(out, "vmcg_state_saves_total", "counter",
	       "Saves of the state file (each one fsync).");
	g_string_append_printf(out, "vmcg_state_saves_total %" G_GUINT64_FORMAT "\n", h.saves);
	family(out, "vmcg_state_save_failures_total", "counter",
	       "Saves that failed; their changes were undone and refused.");
	g_string_append_printf(out, "vmcg_state_save_failures_total %" G_GUINT64_FORMAT "\n",
			       h.failures);
	family(out, "vmcg_state_compactions_total", "counter",
	       "Whole snapshots written (start-up, and when the journal outgrew the snapshot).");
	g_string_append_printf(out, "vmcg_state_compactions_total %" G_GUINT64_FORMAT "\n",
			       h.compactions);
	family(out, "vmcg_state_last_save_timestamp_seconds", "gauge",
	       "When the last save was tried (0: never).");
	g_string_append_printf(out, "vmcg_state_last_save_timestamp_seconds %.3f\n",
			       h.last_save_usec / 1e6);
	family(out, "vmcg_state_last_success_timestamp_seconds", "gauge",
	       "When a save last succeeded (0: never).");
	g_string_append_printf(out, "vmcg_state_last_success_timestamp_seconds %.3f\n",
			       h.last_ok_usec / 1e6);
	family(out, "vmcg_state_journal_bytes", "gauge", "The journal's size, fsynced.");
	g_string_append_printf(out, "vmcg_state_journal_bytes %" G_GUINT64_FORMAT "\n",
			       h.journal_bytes);
	family(out, "vmcg_state_snapshot_bytes", "gauge", "The snapshot's size.");
	g_string_append_printf(out, "vmcg_state_snapshot_bytes %" G_GUINT64_FORMAT "\n",
			       h.snapshot_bytes);
}

/* The libvirt connection (docs/libvirt.md); nothing without one. */
static void metrics_libvirt(VmcgApi *api, GString *out)
{
	VmcgLibvirtStatus s;

	if (!vmcg_daemon_libvirt_status(api->d, &s))
		return;
	family(out, "vmcg_libvirt_connected", "gauge",
	       "1 while vmcgd is connected to libvirt ([libvirt] uri), else 0.");
	g_string_append_printf(out, "vmcg_libvirt_connected %d\n",
			       strcmp(s.state, "connected") == 0);
	family(out, "vmcg_libvirt_domains", "gauge", "Running libvirt domains adopted.");
	g_string_append_printf(out, "vmcg_libvirt_domains %u\n", s.domains);
	family(out, "vmcg_libvirt_connects_total", "counter", "Connections to libvirt made.");
	g_string_append_printf(out, "vmcg_libvirt_connects_total %" G_GUINT64_FORMAT "\n", s.opens);
	family(out, "vmcg_libvirt_disconnects_total", "counter",
	       "Connections to libvirt lost (libvirtd restarted or stopped answering).");
	g_string_append_printf(out, "vmcg_libvirt_disconnects_total %" G_GUINT64_FORMAT "\n",
			       s.closes);
	family(out, "vmcg_libvirt_pending", "gauge", "Requests queued for libvirtd.");
	g_string_append_printf(out, "vmcg_libvirt_pending %u\n", s.pending);
}

/* Cluster quotas (docs/cluster.md): one sample per cluster-wide group; few, so in one go. */
typedef struct ClusterGauge {
	const char *name, *type, *help;
	uint64_t (*value)(const VmcgClusterGroupInfo *i);
} ClusterGauge;

#define CG(field)                                                 \
	static uint64_t cg_##field(const VmcgClusterGroupInfo *i) \
	{                                                         \
		return (uint64_t)i->field;                        \
	}
CG(quota_bytes)
CG(quota_in_force)
CG(grant_bytes)
CG(enforce_bytes)
CG(demand_bytes)
CG(pool_bytes)
CG(hosts)
CG(drift)
CG(writes)
CG(conflicts)
CG(bad_records)
#undef CG

static uint64_t cg_partitioned(const VmcgClusterGroupInfo *i)
{
	return i->state == VMCG_CLUSTER_PARTITIONED;
}

static uint64_t cg_synced_seconds(const VmcgClusterGroupInfo *i)
{
	return i->synced_usec > 0 ? (uint64_t)i->synced_usec / G_USEC_PER_SEC : 0;
}

static const ClusterGauge cluster_gauges[] = {
	{ "vmcg_cluster_quota_bytes", "gauge", "cluster.memory.max as configured on this host.",
	  cg_quota_bytes },
	{ "vmcg_cluster_quota_in_force_bytes", "gauge",
	  "The smallest cluster.memory.max of all hosts: the one in force.", cg_quota_in_force },
	{ "vmcg_cluster_grant_bytes", "gauge", "This host's slice of the quota, as in etcd.",
	  cg_grant_bytes },
	{ "vmcg_cluster_enforced_bytes", "gauge",
	  "The cap enforced as the group's memory.max (less than the grant while giving back).",
	  cg_enforce_bytes },
	{ "vmcg_cluster_demand_bytes", "gauge", "This host's demand, as it last published it.",
	  cg_demand_bytes },
	{ "vmcg_cluster_pool_bytes", "gauge", "The quota in force not granted to any host.",
	  cg_pool_bytes },
	{ "vmcg_cluster_hosts", "gauge", "Hosts holding a grant of the group.", cg_hosts },
	{ "vmcg_cluster_drift", "gauge", "1 when hosts disagree on cluster.memory.max.", cg_drift },
	{ "vmcg_cluster_partitioned", "gauge",
	  "1 while this host cannot read etcd (its grant is held, never raised).", cg_partitioned },
	{ "vmcg_cluster_synced_timestamp_seconds", "gauge",
	  "Wall clock of the last round that read etcd (and wrote, if it had to); 0: never.",
	  cg_synced_seconds },
	{ "vmcg_cluster_writes_total", "counter", "Grant transactions committed.", cg_writes },
	{ "vmcg_cluster_conflicts_total", "counter",
	  "Grant transactions refused because another host wrote first.", cg_conflicts },
	{ "vmcg_cluster_bad_records_total", "counter",
	  "Keys or records under the group's prefix skipped as not what vmcgd writes.",
	  cg_bad_records },
};

typedef struct ClusterSample {
	VmcgApi *api;
	GString *out;
	const ClusterGauge *gauge;
} ClusterSample;

static void cluster_sample(VmcgGroup *g, gpointer data)
{
	ClusterSample *cs = data;
	VmcgClusterGroupInfo i;

	if (!vmcg_cluster_group_info(vmcg_daemon_cluster(cs->api->d), g, &i))
		return;
	sample_begin(cs->out, cs->gauge->name, "group", vmcg_group_path(g));
	sample_end_u64(cs->out, cs->gauge->value(&i));
}

static void metrics_cluster(VmcgApi *api, GString *out)
{
	VmcgCluster *c = vmcg_daemon_cluster(api->d);
	VmcgClusterStatus st;

	vmcg_cluster_status(c, &st);
	if (!st.groups && !st.connected)
		return;
	if (st.connected) {
		family(out, "vmcg_cluster_lease_alive", "gauge",
		       "1 while this host's etcd lease was renewed within its TTL.");
		g_string_append_printf(out, "vmcg_cluster_lease_alive %d\n", st.lease_alive);
		family(out, "vmcg_cluster_leases_total", "counter",
		       "Leases granted to this host (more than 1: one expired).");
		g_string_append_printf(out, "vmcg_cluster_leases_total %u\n", st.lease_generation);
	}
	for (size_t k = 0; k < G_N_ELEMENTS(cluster_gauges); k++) {
		ClusterSample cs = { api, out, &cluster_gauges[k] };

		family(out, cluster_gauges[k].name, cluster_gauges[k].type, cluster_gauges[k].help);
		vmcg_cluster_foreach(c, cluster_sample, &cs);
	}
}

static void vm_charge_unknown(GString *out, const VmcgDvmInfo *i, const Section *sec)
{
	vm_sample(out, sec->name, i);
	sample_end_u64(out, i->charge_state && strcmp(i->charge_state, "unknown") == 0);
}

static void vm_guest_memory(GString *out, const VmcgDvmInfo *i, const Section *sec)
{
	static const char *const kinds[] = { "total", "free", "available", "cache" };
	uint64_t v[4] = { i->stat_total, i->stat_free, i->stat_available, i->stat_cache };

	if (!i->has_stats)
		return;
	for (int k = 0; k < 4; k++) {
		vm_sample(out, sec->name, i);
		g_string_append_printf(out, ",kind=\"%s\"", kinds[k]);
		sample_end_u64(out, v[k]);
	}
}

/* The guest pressure channel: only VMs that have one get samples. */
static void vm_channel_connected(GString *out, const VmcgDvmInfo *i, const Section *sec)
{
	if (!i->channel_path)
		return;
	vm_sample(out, sec->name, i);
	sample_end_u64(out, strcmp(i->channel_state, "connected") == 0);
}

static void vm_channel_dropped(GString *out, const VmcgDvmInfo *i, const Section *sec)
{
	if (!i->channel_path)
		return;
	vm_sample(out, sec->name, i);
	sample_end_u64(out, i->channel_dropped);
}

static void vm_guest_psi(GString *out, const VmcgDvmInfo *i, const Section *sec)
{
	if (!i->has_report || !i->report.has_psi)
		return;
	vm_sample(out, sec->name, i);
	g_string_append_printf(out, ",kind=\"some\"} %u.%02u\n", i->report.some_avg10_centi / 100,
			       i->report.some_avg10_centi % 100);
	vm_sample(out, sec->name, i);
	g_string_append_printf(out, ",kind=\"full\"} %u.%02u\n", i->report.full_avg10_centi / 100,
			       i->report.full_avg10_centi % 100);
}

#define GROUP_GAUGE(k)                                    \
	{                                                 \
		NULL, "gauge", NULL, group_gauge, NULL, k \
	}
#define VM_GAUGE(k)                                    \
	{                                              \
		NULL, "gauge", NULL, NULL, vm_gauge, k \
	}

/* The families in the order of the text; names and helps of the gauges come from their tables. */
static const Section sections[] = {
	{ NULL, NULL, NULL, NULL, NULL, 0 }, /* vmcg_groups, vmcg_vms, ... */
	GROUP_GAUGE(0),
	GROUP_GAUGE(1),
	GROUP_GAUGE(2),
	GROUP_GAUGE(3),
	GROUP_GAUGE(4),
	GROUP_GAUGE(5),
	{ "vmcg_group_memory_events_total", "counter",
	  "Memory events in the group and below (memory.events).", group_events, NULL, false },
	{ "vmcg_group_memory_events_local_total", "counter",
	  "Memory events in the group itself (memory.events.local).", group_events, NULL, true },
	{ "vmcg_group_memory_stat_bytes", "gauge", "memory.stat items of the group's subtree.",
	  group_stat, NULL, 0 },
	{ "vmcg_group_memory_pressure_stall_seconds_total", "counter",
	  "Time some or all vCPUs of the group were stalled on memory (memory.pressure).",
	  group_stall, NULL, 0 },
	{ "vmcg_group_memory_pressure_ratio", "gauge",
	  "Share of time stalled, averaged over 10, 60 and 300 s (memory.pressure avg).",
	  group_ratio, NULL, 0 },
	{ "vmcg_group_vmpressure_level", "gauge",
	  "vmpressure level: 0 none, 1 low, 2 medium, 3 critical.", group_vmpressure, NULL, 0 },
	{ "vmcg_group_vms", "gauge", "VMs attached to the group itself.", group_nr_vms, NULL, 0 },
	VM_GAUGE(0),
	VM_GAUGE(1),
	VM_GAUGE(2),
	VM_GAUGE(3),
	VM_GAUGE(4),
	VM_GAUGE(5),
	VM_GAUGE(6),
	VM_GAUGE(7),
	VM_GAUGE(8),
	{ "vmcg_vm_state", "gauge", "1 for the VM's current state.", NULL, vm_state, 0 },
	{ "vmcg_vm_charge_unknown", "gauge",
	  "1 while the VM's charge is unknown (its memory cannot be measured).", NULL,
	  vm_charge_unknown, 0 },
	{ "vmcg_vm_guest_memory_bytes", "gauge",
	  "The guest's own memory statistics (hints, never trusted for safety).", NULL,
	  vm_guest_memory, 0 },
	{ "vmcg_vm_channel_connected", "gauge",
	  "1 while the VM's pressure channel is up (both hellos), 0 else; VMs with a channel.",
	  NULL, vm_channel_connected, 0 },
	{ "vmcg_vm_channel_dropped_total", "counter",
	  "Messages from the guest's pressure channel dropped (malformed, too fast, muted, ...).",
	  NULL, vm_channel_dropped, 0 },
	{ "vmcg_vm_guest_psi_avg10_percent", "gauge",
	  "The guest's own memory PSI avg10 (percent), from its last channel report.", NULL,
	  vm_guest_psi, 0 },
};

G_STATIC_ASSERT(G_N_ELEMENTS(vm_gauges) == 9);
G_STATIC_ASSERT(G_N_ELEMENTS(group_gauges) == 6);

/* ---- the answer, a chunk at a time ---- */

typedef struct Metrics {
	VmcgApiProducer base;
	VmcgApi *api;
	size_t section;	  /* in sections[] */
	bool header_done; /* the section's family header is written */
	VmcgApiCursor cursor;
} Metrics;

static void section_header(Metrics *m, GString *out, const Section *sec)
{
	VmcgApi *api = m->api;
	VmcgTree *tree = vmcg_daemon_tree(api->d);

	if (!sec->group && !sec->vm) {
		family(out, "vmcg_groups", "gauge", "Groups in the tree, the root included.");
		g_string_append_printf(out, "vmcg_groups %zu\n", vmcg_tree_nr_groups(tree));
		family(out, "vmcg_vms", "gauge", "VMs the daemon manages.");
		g_string_append_printf(out, "vmcg_vms %zu\n", vmcg_tree_nr_vms(tree));
		family(out, "vmcg_api_event_subscribers", "gauge", "Open event streams.");
		g_string_append_printf(out, "vmcg_api_event_subscribers %u\n", api->subs.length);
		family(out, "vmcg_api_connections", "gauge", "Open API connections.");
		g_string_append_printf(out, "vmcg_api_connections %u\n", vmcg_api_conn_count(api));
		metrics_state(api, out);
		metrics_libvirt(api, out);
		metrics_cluster(api, out);
	} else if (sec->group && !sec->name) {
		family(out, group_gauges[sec->arg].name, sec->type, group_gauges[sec->arg].help);
	} else if (sec->vm && !sec->name) {
		family(out, vm_gauges[sec->arg].name, sec->type, vm_gauges[sec->arg].help);
	} else {
		family(out, sec->name, sec->type, sec->help);
	}
}

/* The section's items from the cursor on, until @out holds @want bytes; true at its end. */
static bool section_items(Metrics *m, GString *out, gsize want, const Section *sec)
{
	Section named = *sec;
	VmcgApiGroupWalk walk;
	const VmcgApiWalkOps *ops;
	gpointer ctx, item, last = NULL;
	VmcgDvmInfo info;

	if (!named.name)
		named.name = sec->group ? group_gauges[sec->arg].name : vm_gauges[sec->arg].name;
	if (sec->group) {
		vmcg_api_group_walk_init(&walk, vmcg_daemon_tree(m->api->d), "/");
		ops = &vmcg_api_group_walk_ops;
		ctx = &walk;
		item = vmcg_api_cursor_resume(&m->cursor, ops, ctx, walk.root);
	} else {
		ops = &vmcg_api_vm_walk_ops;
		ctx = m->api->d;
		item = vmcg_api_cursor_resume(&m->cursor, ops, ctx,
					      vmcg_daemon_vm_first(m->api->d));
	}
	for (; item && out->len < want; item = ops->next(ctx, item)) {
		if (sec->group) {
			sec->group(m->api, out, item, &named);
		} else {
			vmcg_dvm_info(item, &info);
			sec->vm(out, &info, &named);
		}
		last = item;
	}
	if (!item)
		return true;
	vmcg_api_cursor_save(&m->cursor, ops, ctx, last);
	return false;
}

static bool metrics_fill(VmcgApiProducer *p, GString *out, gsize want)
{
	Metrics *m = (Metrics *)p;

	while (out->len < want && m->section < G_N_ELEMENTS(sections)) {
		const Section *sec = &sections[m->section];

		if (!m->header_done) {
			section_header(m, out, sec);
			m->header_done = true;
		}
		if ((sec->group || sec->vm) && !section_items(m, out, want, sec))
			break;
		vmcg_api_cursor_clear(&m->cursor);
		m->header_done = false;
		m->section++;
	}
	return m->section == G_N_ELEMENTS(sections);
}

static void metrics_free(VmcgApiProducer *p)
{
	Metrics *m = (Metrics *)p;

	vmcg_api_cursor_clear(&m->cursor);
	g_free(m);
}

VmcgApiProducer *vmcg_api_metrics_producer_new(VmcgApi *api)
{
	Metrics *m = g_new0(Metrics, 1);

	m->base.fill = metrics_fill;
	m->base.free = metrics_free;
	m->api = api;
	return &m->base;
}

void vmcg_api_handle_metrics(VmcgApi *api, SoupServerMessage *msg, gboolean head)
{
	vmcg_api_reply_stream(msg, "text/plain; version=0.0.4; charset=utf-8", head,
			      vmcg_api_metrics_producer_new(api));
}
