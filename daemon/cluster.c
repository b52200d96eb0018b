// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Cluster-wide quotas in the daemon; see cluster.h and docs/cluster.md.
 * The decisions are cluster-grant.c's, etcd is cluster-agent.c's: this
 * file keeps the quotas, starts rounds on the tick, and enforces what the
 * rounds bring back.
 */
#include <inttypes.h>
#include <string.h>

#include "cluster-agent.h"
#include "cluster.h"
#include "daemon-private.h"
#include "vmcg/counter.h"

#define PAGE VMCG_PAGE_SIZE

typedef struct ClusterGroup {
	VmcgCluster *c;
	VmcgGroup *g;
	uint64_t quota_bytes;
	VmcgClusterAgent *agent; /* NULL when not connected */
	uint64_t last_round_usec;
	uint64_t demand_bytes;
	/* What the last events told, to emit on change only. */
	uint64_t told_grant;
	bool told_drift, told_partitioned, told_any;
} ClusterGroup;

struct VmcgCluster {
	VmcgDaemon *d;
	GHashTable *groups; /* VmcgGroup * -> ClusterGroup (owned) */
	/* Connected: */
	VmcgEtcd *etcd;
	VmcgClusterLease *lease;
	unsigned lease_gen;
	char *node;
	char **endpoints;
	VmcgGrantParams params; /* quota_bytes per group */
	uint64_t lease_ttl_usec;
	uint64_t shrink_wait_usec;
};

const char *vmcg_cluster_state_to_string(VmcgClusterState s)
{
	static const char *const names[] = {
		[VMCG_CLUSTER_LOCAL] = "local",
		[VMCG_CLUSTER_CONNECTING] = "connecting",
		[VMCG_CLUSTER_SYNCED] = "synced",
		[VMCG_CLUSTER_PARTITIONED] = "partitioned",
	};

	return (unsigned)s < G_N_ELEMENTS(names) ? names[s] : "?";
}

static uint64_t pages_of(uint64_t bytes)
{
	return bytes == VMCG_BYTES_MAX ? VMCG_PAGES_MAX : MIN(bytes / PAGE, VMCG_PAGES_MAX);
}

static void cluster_group_free(gpointer p)
{
	ClusterGroup *cg = p;

	vmcg_cluster_agent_free(cg->agent);
	g_free(cg);
}

VmcgCluster *vmcg_cluster_new(VmcgDaemon *d)
{
	VmcgCluster *c = g_new0(VmcgCluster, 1);

	c->d = d;
	c->groups = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, cluster_group_free);
	return c;
}

void vmcg_cluster_free(VmcgCluster *c)
{
	if (!c)
		return;
	/*
	 * The records are not deleted and the lease is not revoked: the VMs
	 * keep running without vmcgd, and a restart within the TTL takes its
	 * grant back (docs/cluster.md, "Faults").
	 */
	g_hash_table_destroy(c->groups);
	vmcg_cluster_lease_free(c->lease);
	vmcg_etcd_free(c->etcd);
	g_free(c->node);
	g_strfreev(c->endpoints);
	g_free(c);
}

bool vmcg_cluster_connected(const VmcgCluster *c)
{
	return c->etcd != NULL;
}

static void on_round(VmcgClusterAgent *a, gpointer data);

static void agent_start(VmcgCluster *c, ClusterGroup *cg)
{
	VmcgGrantParams p = c->params;

	p.quota_bytes = cg->quota_bytes;
	cg->agent = vmcg_cluster_agent_new(c->etcd, vmcg_group_path(cg->g), c->node, &p,
					   vmcg_cluster_lease_id(c->lease));
	/* The path and node were validated: the root cannot have a quota (daemon.c). */
	g_assert(cg->agent);
	cg->last_round_usec = 0;
}

gboolean vmcg_cluster_connect(VmcgCluster *c, const VmcgClusterConfig *cfg, GError **error)
{
	g_auto(GStrv) endpoints = NULL;
	g_autofree char *node = NULL;
	VmcgEtcdTls tls = { 0 };
	GHashTableIter it;
	gpointer v;

	if (!cfg->etcd || !*cfg->etcd || c->etcd)
		return TRUE;
	node = g_strdup(cfg->node && *cfg->node ? cfg->node : g_get_host_name());
	if (vmcg_grant_host_validate(node) < 0) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "[cluster] node: the host name \"%s\" cannot name this host in etcd: "
			    "set node = NAME",
			    node);
		return FALSE;
	}
	endpoints = vmcg_etcd_split_endpoints(cfg->etcd);
	tls.ca_file = cfg->ca_file && *cfg->ca_file ? cfg->ca_file : NULL;
	tls.cert_file = cfg->cert_file && *cfg->cert_file ? cfg->cert_file : NULL;
	tls.key_file = cfg->key_file && *cfg->key_file ? cfg->key_file : NULL;
	c->etcd = vmcg_etcd_new((const char *const *)endpoints, &tls, error);
	if (!c->etcd) {
		g_prefix_error(error, "[cluster]: ");
		return FALSE;
	}
	c->node = g_steal_pointer(&node);
	c->endpoints = g_steal_pointer(&endpoints);
	c->params = (VmcgGrantParams){ .hysteresis_bytes = cfg->hysteresis_bytes,
				       .min_grant_bytes = cfg->min_grant_bytes };
	c->lease_ttl_usec = cfg->lease_ttl_usec;
	c->shrink_wait_usec = cfg->shrink_wait_usec;
	c->lease = vmcg_cluster_lease_new(c->etcd, (int64_t)(cfg->lease_ttl_usec / G_USEC_PER_SEC));
	g_hash_table_iter_init(&it, c->groups);
	while (g_hash_table_iter_next(&it, NULL, &v))
		agent_start(c, v);
	g_info("cluster: node %s, etcd %s, lease TTL %" PRIu64 " s", c->node, cfg->etcd,
	       cfg->lease_ttl_usec / G_USEC_PER_SEC);
	return TRUE;
}

static void on_deleted(const VmcgEtcdResult *r, const GError *error, gpointer data)
{
	g_autofree char *key = data;

	(void)r;
	if (error)
		g_warning("cluster: could not delete %s (it goes with the lease): %s", key,
			  error->message);
}

/* Stops @cg's agent and deletes its record (the group left the cluster). */
static void leave(VmcgCluster *c, ClusterGroup *cg)
{
	char *key = NULL;

	if (!cg->agent)
		return;
	vmcg_cluster_agent_free(cg->agent);
	cg->agent = NULL;
	if (vmcg_grant_key(vmcg_group_path(cg->g), c->node, &key) == 0)
		vmcg_etcd_delete(c->etcd, key, false, on_deleted, key);
}

void vmcg_cluster_group_set(VmcgCluster *c, VmcgGroup *g, uint64_t quota_bytes)
{
	ClusterGroup *cg = g_hash_table_lookup(c->groups, g);
	uint64_t q = pages_of(quota_bytes) >= VMCG_PAGES_MAX ? VMCG_BYTES_MAX
							     : pages_of(quota_bytes) * PAGE;

	if (q == VMCG_BYTES_MAX) {
		if (!cg)
			return;
		leave(c, cg);
		g_hash_table_remove(c->groups, g);
		vmcg_group_set_max_cap(g, VMCG_PAGES_MAX);
		g_info("group %s: no longer cluster-wide", vmcg_group_path(g));
		return;
	}
	if (!cg) {
		cg = g_new0(ClusterGroup, 1);
		cg->c = c;
		cg->g = g;
		g_hash_table_insert(c->groups, g, cg);
		/* Until the first read: the quota itself, all a host can have (cluster.h). */
		vmcg_group_set_max_cap(g, pages_of(q));
	}
	if (cg->quota_bytes == q && (cg->agent || !c->etcd))
		return;
	cg->quota_bytes = q;
	if (!c->etcd) {
		vmcg_group_set_max_cap(g, pages_of(q));
		return;
	}
	/* A new quota: a new agent, whose next round writes it (the grant stays in etcd). */
	vmcg_cluster_agent_free(cg->agent);
	cg->agent = NULL;
	agent_start(c, cg);
}

uint64_t vmcg_cluster_group_quota(const VmcgCluster *c, const VmcgGroup *g)
{
	ClusterGroup *cg = g_hash_table_lookup(c->groups, g);

	return cg ? cg->quota_bytes : VMCG_BYTES_MAX;
}

void vmcg_cluster_group_forget(VmcgCluster *c, VmcgGroup *g)
{
	ClusterGroup *cg = g_hash_table_lookup(c->groups, g);

	if (!cg)
		return;
	leave(c, cg);
	g_hash_table_remove(c->groups, g);
}

gboolean vmcg_cluster_group_info(VmcgCluster *c, const VmcgGroup *g, VmcgClusterGroupInfo *ret)
{
	ClusterGroup *cg = g_hash_table_lookup(c->groups, g);
	VmcgClusterAgentInfo ai;

	if (!cg)
		return FALSE;
	*ret = (VmcgClusterGroupInfo){ .state = VMCG_CLUSTER_LOCAL,
				       .quota_bytes = cg->quota_bytes,
				       .quota_in_force = cg->quota_bytes,
				       .grant_bytes = cg->quota_bytes,
				       .enforce_bytes = cg->quota_bytes,
				       .demand_bytes = cg->demand_bytes,
				       .hosts = 1,
				       .reason = "local" };
	if (!cg->agent)
		return TRUE;
	vmcg_cluster_agent_info(cg->agent, &ai);
	ret->state = ai.partitioned	  ? VMCG_CLUSTER_PARTITIONED
		     : ai.synced_usec > 0 ? VMCG_CLUSTER_SYNCED
					  : VMCG_CLUSTER_CONNECTING;
	ret->quota_in_force = ai.synced_usec > 0 ? ai.quota_in_force : cg->quota_bytes;
	ret->drift = ai.drift;
	ret->grant_bytes = ai.synced_usec > 0 ? ai.grant_bytes : 0;
	ret->enforce_bytes = ai.synced_usec > 0 ? ai.enforce_bytes : cg->quota_bytes;
	ret->shrinking = ai.shrinking;
	ret->pool_bytes = ai.pool_bytes;
	ret->hosts = ai.hosts;
	ret->synced_usec = ai.synced_usec;
	ret->writes = ai.writes;
	ret->conflicts = ai.conflicts;
	ret->bad_records = ai.bad_records;
	ret->reason = vmcg_grant_reason_to_string(ai.reason);
	ret->last_error = ai.last_error;
	return TRUE;
}

const VmcgGrantHost *vmcg_cluster_group_host(VmcgCluster *c, const VmcgGroup *g, size_t i)
{
	ClusterGroup *cg = g_hash_table_lookup(c->groups, g);
	VmcgClusterAgentInfo ai;

	if (!cg || !cg->agent)
		return NULL;
	vmcg_cluster_agent_info(cg->agent, &ai);
	return i < ai.hosts ? vmcg_cluster_agent_host(cg->agent, i) : NULL;
}

void vmcg_cluster_foreach(VmcgCluster *c, void (*fn)(VmcgGroup *g, gpointer data), gpointer data)
{
	GHashTableIter it;
	gpointer k;

	g_hash_table_iter_init(&it, c->groups);
	while (g_hash_table_iter_next(&it, &k, NULL))
		fn(k, data);
}

void vmcg_cluster_status(VmcgCluster *c, VmcgClusterStatus *ret)
{
	*ret = (VmcgClusterStatus){ .connected = c->etcd != NULL,
				    .node = c->node,
				    .endpoints = c->endpoints,
				    .lease_ttl_usec = c->lease_ttl_usec,
				    .groups = g_hash_table_size(c->groups) };
	if (!c->etcd)
		return;
	ret->current_endpoint = vmcg_etcd_current_endpoint(c->etcd);
	ret->lease_id = vmcg_cluster_lease_id(c->lease);
	ret->lease_alive = vmcg_cluster_lease_alive(c->lease);
	ret->lease_generation = vmcg_cluster_lease_generation(c->lease);
}

/* ---- the tick ---- */

static bool under(VmcgGroup *g, VmcgGroup *top)
{
	for (; g; g = vmcg_group_parent(g))
		if (g == top)
			return true;
	return false;
}

/*
 * The most @g can be charged: its VMs' RAM (or their charge, if more:
 * overhead), and the operator's memory.max. A VM whose RAM is not known
 * yet leaves only memory.max.
 */
static uint64_t ceiling_of(VmcgCluster *c, VmcgGroup *g)
{
	uint64_t max =
		vmcg_group_max(g) >= VMCG_PAGES_MAX ? VMCG_BYTES_MAX : vmcg_group_max(g) * PAGE;
	uint64_t ram = 0;

	for (GList *l = c->d->vms.head; l; l = l->next) {
		VmcgDvm *vm = l->data;
		uint64_t r = vmcg_dvm_ram_bytes(vm);

		if (!under(vmcg_vm_group(vm->vm), g))
			continue;
		if (!r)
			return max;
		ram += MAX(r, vmcg_vm_current(vm->vm) * PAGE);
	}
	return MIN(ram, max);
}

static void emit_group(VmcgCluster *c, ClusterGroup *cg, const char *type,
		       const VmcgClusterGroupInfo *i)
{
	g_autoptr(json_object) data = json_object_new_object();

	json_object_object_add(data, "group", json_object_new_string(vmcg_group_path(cg->g)));
	json_object_object_add(data, "node", json_object_new_string(c->node));
	json_object_object_add(data, "grant", json_object_new_uint64(i->grant_bytes));
	json_object_object_add(data, "previous", json_object_new_uint64(cg->told_grant));
	json_object_object_add(data, "enforced", json_object_new_uint64(i->enforce_bytes));
	json_object_object_add(data, "demand", json_object_new_uint64(i->demand_bytes));
	json_object_object_add(data, "quota", json_object_new_uint64(i->quota_in_force));
	json_object_object_add(data, "pool", json_object_new_uint64(i->pool_bytes));
	json_object_object_add(data, "hosts", json_object_new_uint64(i->hosts));
	json_object_object_add(data, "reason", json_object_new_string(i->reason));
	if (i->last_error)
		json_object_object_add(data, "error", json_object_new_string(i->last_error));
	vmcg_daemon_emit(c->d, type, data);
}

static void on_round(VmcgClusterAgent *a, gpointer data)
{
	ClusterGroup *cg = data;
	VmcgCluster *c = cg->c;
	VmcgClusterGroupInfo i;
	uint64_t cap, old_cap = vmcg_group_max_cap(cg->g);

	(void)a;
	vmcg_cluster_group_info(c, cg->g, &i);
	if (i.state == VMCG_CLUSTER_CONNECTING)
		return; /* no read yet: the quota stays the cap */
	cap = pages_of(i.enforce_bytes);
	if (cap != old_cap) {
		vmcg_group_set_max_cap(cg->g, cap);
		g_info("group %s: cluster grant %" PRIu64 " MiB, enforced %" PRIu64
		       " MiB (%s; %u hosts, pool %" PRIu64 " MiB)",
		       vmcg_group_path(cg->g), i.grant_bytes >> 20, i.enforce_bytes >> 20, i.reason,
		       i.hosts, i.pool_bytes >> 20);
		/* A lower cap is enforced now, not at the next tick. */
		if (cap < old_cap)
			vmcg_daemon_kick(c->d);
	}
	if (!cg->told_any || i.grant_bytes != cg->told_grant || cap != old_cap)
		emit_group(c, cg, VMCG_EV_CLUSTER_GRANT, &i);
	if (i.drift != cg->told_drift) {
		if (i.drift)
			g_warning("group %s: hosts disagree on cluster.memory.max: %" PRIu64
				  " MiB is in force (here %" PRIu64 " MiB)",
				  vmcg_group_path(cg->g), i.quota_in_force >> 20,
				  i.quota_bytes >> 20);
		emit_group(c, cg, VMCG_EV_CLUSTER_DRIFT, &i);
	}
	if ((i.state == VMCG_CLUSTER_PARTITIONED) != cg->told_partitioned) {
		if (i.state == VMCG_CLUSTER_PARTITIONED)
			g_warning("group %s: cut off from etcd (%s): holding the grant of %" PRIu64
				  " MiB",
				  vmcg_group_path(cg->g), i.last_error ? i.last_error : "?",
				  i.grant_bytes >> 20);
		else
			g_info("group %s: etcd reached again", vmcg_group_path(cg->g));
		emit_group(c, cg, VMCG_EV_CLUSTER_PARTITION, &i);
	}
	cg->told_any = true;
	cg->told_grant = i.grant_bytes;
	cg->told_drift = i.drift;
	cg->told_partitioned = i.state == VMCG_CLUSTER_PARTITIONED;
}

void vmcg_cluster_tick(VmcgCluster *c, uint64_t now_usec, uint64_t interval_usec)
{
	GHashTableIter it;
	gpointer v;
	unsigned gen;

	if (!c->etcd)
		return;
	gen = vmcg_cluster_lease_generation(c->lease);
	g_hash_table_iter_init(&it, c->groups);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		ClusterGroup *cg = v;
		uint64_t cap;
		VmcgGrantDemandInput in;

		if (gen != c->lease_gen)
			vmcg_cluster_agent_set_lease(cg->agent, vmcg_cluster_lease_id(c->lease));
		if (vmcg_cluster_agent_busy(cg->agent) ||
		    (cg->last_round_usec && now_usec - cg->last_round_usec < interval_usec))
			continue;
		/* Only for a round that starts: ceiling_of() walks the VMs. */
		cap = vmcg_group_max_effective(cg->g);
		in = (VmcgGrantDemandInput){
			.usage_bytes = vmcg_group_current(cg->g) * PAGE,
			.cap_bytes = cap >= VMCG_PAGES_MAX ? VMCG_BYTES_MAX : cap * PAGE,
			.ceiling_bytes = ceiling_of(c, cg->g),
		};
		cg->demand_bytes = vmcg_grant_demand(&c->params, &in);
		vmcg_cluster_agent_set_usage(cg->agent, in.usage_bytes, c->shrink_wait_usec);
		cg->last_round_usec = now_usec;
		vmcg_cluster_agent_round(cg->agent, cg->demand_bytes, on_round, cg);
	}
	c->lease_gen = gen;
}
