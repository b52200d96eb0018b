/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Cluster-wide quotas in the daemon (docs/cluster.md): which groups are
 * cluster-wide (cluster.memory.max), one cluster agent (cluster-agent.c)
 * per such group, the host's lease, and the grant enforced as the group's
 * memory.max cap (vmcg_group_set_max_cap(); the operator's memory.max
 * stays as set).
 *
 * This module owns the cluster quotas: the config, the API and the state
 * file set and read them through vmcg_cluster_group_set() and
 * vmcg_cluster_group_quota(), never elsewhere. It decides nothing itself:
 * demand and when a smaller grant may be published are cluster-grant.c's
 * (vmcg_grant_demand(), vmcg_grant_shrink_ready()), the grant is the
 * agent's.
 *
 * Without [cluster] etcd, a cluster quota is this host's alone: the group
 * is capped at the quota (a cluster of one host).
 */
#ifndef VMCG_DAEMON_CLUSTER_H
#define VMCG_DAEMON_CLUSTER_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "cluster-grant.h"
#include "daemon.h"

typedef struct VmcgCluster VmcgCluster;

/* The [cluster] section (config.h), strings borrowed. */
typedef struct VmcgClusterConfig {
	const char *etcd;			    /* endpoints; "" or NULL: no cluster */
	const char *node;			    /* "" or NULL: the host name */
	const char *ca_file, *cert_file, *key_file; /* "" or NULL: none */
	uint64_t lease_ttl_usec;
	uint64_t hysteresis_bytes;
	uint64_t min_grant_bytes;
	uint64_t shrink_wait_usec;
} VmcgClusterConfig;

/* Where a cluster group stands, for the API, events and metrics. */
typedef enum VmcgClusterState {
	VMCG_CLUSTER_LOCAL,	  /* no [cluster] etcd: capped at the quota */
	VMCG_CLUSTER_CONNECTING,  /* no read of etcd yet: capped at the quota */
	VMCG_CLUSTER_SYNCED,	  /* the last round read (and wrote) */
	VMCG_CLUSTER_PARTITIONED, /* the last read failed: the grant is held, never raised */
} VmcgClusterState;

const char *vmcg_cluster_state_to_string(VmcgClusterState s);

typedef struct VmcgClusterGroupInfo {
	VmcgClusterState state;
	uint64_t quota_bytes;	 /* cluster.memory.max as configured here */
	uint64_t quota_in_force; /* the smallest of all hosts' (drift: they differ) */
	bool drift;
	uint64_t grant_bytes;	/* this host's slice, as in etcd */
	uint64_t enforce_bytes; /* the cap in force: the grant, less while shrinking */
	bool shrinking;
	uint64_t demand_bytes; /* as this host last computed it */
	uint64_t pool_bytes;
	unsigned hosts;
	int64_t synced_usec; /* wall clock of the last good round, 0: never */
	uint64_t writes, conflicts, bad_records;
	const char *reason;	/* the last decision's (vmcg_grant_reason_to_string()) */
	const char *last_error; /* NULL if none; valid until the next round */
} VmcgClusterGroupInfo;

/* A daemon's cluster side, local (no etcd) until vmcg_cluster_connect(). */
VmcgCluster *vmcg_cluster_new(VmcgDaemon *d);
void vmcg_cluster_free(VmcgCluster *c);

/**
 * vmcg_cluster_connect() - join the cluster of @cfg (when cfg->etcd is
 * set): the etcd client, the lease, an agent for each cluster group.
 * Errors: bad endpoints, node name or TLS files. Nothing is contacted
 * before it returns.
 */
gboolean vmcg_cluster_connect(VmcgCluster *c, const VmcgClusterConfig *cfg, GError **error);

/* Whether vmcg_cluster_connect() joined a cluster. */
bool vmcg_cluster_connected(const VmcgCluster *c);

/*
 * Sets @g's cluster quota (bytes, rounded down to pages). VMCG_BYTES_MAX:
 * the group is not cluster-wide; its cap is lifted and its record deleted
 * from etcd at once.
 */
void vmcg_cluster_group_set(VmcgCluster *c, VmcgGroup *g, uint64_t quota_bytes);

/* @g's cluster quota in bytes, VMCG_BYTES_MAX if it is not cluster-wide. */
uint64_t vmcg_cluster_group_quota(const VmcgCluster *c, const VmcgGroup *g);

/* @g is going away: its agent stops and its record is deleted. */
void vmcg_cluster_group_forget(VmcgCluster *c, VmcgGroup *g);

/* Fills @ret and returns TRUE if @g is cluster-wide. */
gboolean vmcg_cluster_group_info(VmcgCluster *c, const VmcgGroup *g, VmcgClusterGroupInfo *ret);

/* @g's hosts as last read: the @i-th (sorted by name), NULL past the end. */
const VmcgGrantHost *vmcg_cluster_group_host(VmcgCluster *c, const VmcgGroup *g, size_t i);

/* Calls @fn for each cluster-wide group. */
void vmcg_cluster_foreach(VmcgCluster *c, void (*fn)(VmcgGroup *g, gpointer data), gpointer data);

/* The host's side, for GET /v1/status. */
typedef struct VmcgClusterStatus {
	bool connected;
	const char *node;
	char *const *endpoints;
	unsigned current_endpoint;
	int64_t lease_id;
	bool lease_alive;
	unsigned lease_generation;
	uint64_t lease_ttl_usec;
	unsigned groups;
} VmcgClusterStatus;

void vmcg_cluster_status(VmcgCluster *c, VmcgClusterStatus *ret);

/*
 * The tick (control.c, on fresh samples): each cluster group's demand,
 * and a round for each agent not busy whose last round began at least
 * @interval_usec ago. The grants come back on the main loop and are
 * enforced then.
 */
void vmcg_cluster_tick(VmcgCluster *c, uint64_t now_usec, uint64_t interval_usec);

#endif
