/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Cluster-wide quotas (docs/cluster.md, issue 12), the I/O half: one
 * host's grant of one cluster group, kept in etcd. A round reads the
 * group's grant prefix, lets cluster-grant.c decide, and writes the host's
 * record in the one transaction of docs/cluster.md ("The transaction").
 * Nothing is decided here; this module only reads, builds the compares and
 * writes.
 *
 * The lease (one per host, shared by all its groups' records) is the
 * caller's: vmcg_cluster_lease_new() grants one and keeps it alive, and
 * the caller hands its ID to each agent (vmcg_cluster_agent_set_lease())
 * whenever vmcg_cluster_lease_generation() moved. An agent whose record
 * is under another lease (or absent) rewrites it at its next round.
 *
 * Everything runs on the GMainContext of the VmcgEtcd client. Nothing
 * here applies the grant: the caller reads it (vmcg_cluster_agent_info())
 * when a round ends and enforces it as the group's memory.max.
 *
 * A smaller grant is enforced before it is published: the round that
 * decides to give back sets enforce_bytes to the new grant at once, and
 * writes it only when the caller's usage (vmcg_cluster_agent_set_usage())
 * is down to it, or after the shrink wait (vmcg_grant_shrink_ready()). So
 * another host grows only into bytes this one no longer uses.
 * Records are all taken as alive (VmcgGrantHost.alive): a dead host's
 * grant is freed by its lease's expiry only.
 */
#ifndef VMCG_DAEMON_CLUSTER_AGENT_H
#define VMCG_DAEMON_CLUSTER_AGENT_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "cluster-grant.h"
#include "etcd.h"

typedef struct VmcgClusterAgent VmcgClusterAgent;

typedef struct VmcgClusterAgentInfo {
	/*
	 * The grant to enforce: the own record's grant as last read or
	 * committed. After a transaction of unknown outcome (a timeout: etcd
	 * may have applied it), the smaller of the old and the new one.
	 */
	uint64_t grant_bytes;
	/*
	 * (A record that vanished with an expired lease: the last grant is
	 * held until a transaction puts the record back, or the smaller of
	 * the two after one that fails.)
	 */
	/*
	 * What to enforce as the group's memory.max: the grant, or a smaller
	 * one decided and not yet published (shrinking).
	 */
	uint64_t enforce_bytes;
	bool shrinking;		 /* a smaller grant waits for usage to come down */
	bool has_grant;		 /* the own record exists, as far as the agent knows */
	uint64_t quota_in_force; /* the smallest quota of the records last read */
	bool drift;		 /* the records' quotas differ */
	bool partitioned;	 /* the last range read failed: the grant is held, never raised */
	unsigned hosts;		 /* valid records last read, the own one included */
	uint64_t pool_bytes;	 /* quota in force minus the sum of the grants last read */
	int64_t synced_usec;  /* wall clock of the last round that read (and wrote) successfully */
	uint64_t writes;      /* transactions committed */
	uint64_t conflicts;   /* transactions refused by their compares */
	uint64_t bad_records; /* keys or records skipped as not what vmcgd writes */
	const char
		*last_error; /* the last finished round's error, NULL if none; owned by the agent */
	VmcgGrantReason reason; /* the last decision's */
} VmcgClusterAgentInfo;

/**
 * vmcg_cluster_agent_new() - an agent for @node's grant of @group.
 * @etcd: the client, borrowed: it must outlive the agent
 * @group: a group path, not "/" (vmcg_grant_key())
 * @node: this host's name (vmcg_grant_host_validate())
 * @params: hysteresis, floor, step; ->quota_bytes is this host's
 *	configured cluster.memory.max (the quota in force is the smallest of
 *	all records')
 * @lease_id: the host's lease (0: none yet; the agent then reads but
 *	never writes)
 *
 * Returns NULL when @group or @node is not valid.
 */
VmcgClusterAgent *vmcg_cluster_agent_new(VmcgEtcd *etcd, const char *group, const char *node,
					 const VmcgGrantParams *params, int64_t lease_id);

/* Frees @a; a round in flight is dropped and its done is never called. NULL is fine. */
void vmcg_cluster_agent_free(VmcgClusterAgent *a);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VmcgClusterAgent, vmcg_cluster_agent_free)

/* A new lease of the host (after the old one was lost): the next round re-puts the record. */
void vmcg_cluster_agent_set_lease(VmcgClusterAgent *a, int64_t lease_id);

typedef void (*VmcgClusterAgentDone)(VmcgClusterAgent *a, gpointer userdata);

/**
 * vmcg_cluster_agent_round() - one round, asynchronous: read the prefix,
 * decide with @demand_bytes (this host's fresh demand) and, when
 * vmcg_grant_should_write() says so (or the own record is missing or
 * under another lease), one transaction:
 *  - mod_revision == the one read, for every key read (bad ones too);
 *  - mod_revision < read revision + 1 over the whole prefix (the range
 *    guard: no key created or changed since the read);
 *  - create_revision == 0 for the own key when it was not read;
 *  - success: put the own record under the lease; failure: nothing.
 * A refused transaction is counted (conflicts) and not retried before the
 * next round. A failed read keeps the last grant and sets partitioned;
 * the grant is never raised without a read and a committed transaction.
 *
 * @done is called once when the round ends (never from inside this
 * call). At most one round may be in flight: starting another is a
 * programming error (g_return_if_fail).
 */
void vmcg_cluster_agent_round(VmcgClusterAgent *a, uint64_t demand_bytes, VmcgClusterAgentDone done,
			      gpointer userdata);

/*
 * The group's usage now, read by the rounds that follow: a smaller grant
 * is published only once usage is down to it, or after @wait_max_usec
 * (vmcg_grant_shrink_ready()). Never set: usage 0, shrinks publish at once.
 */
void vmcg_cluster_agent_set_usage(VmcgClusterAgent *a, uint64_t usage_bytes,
				  uint64_t wait_max_usec);

/*
 * The valid records of the last read, the own one included, sorted by
 * host name; @i < info's hosts. Names are the agent's, valid until the
 * next round ends.
 */
const VmcgGrantHost *vmcg_cluster_agent_host(VmcgClusterAgent *a, size_t i);

/* Whether a round is in flight. */
bool vmcg_cluster_agent_busy(const VmcgClusterAgent *a);

/* The agent's state after its last round; ret->last_error is valid until the next round ends. */
void vmcg_cluster_agent_info(VmcgClusterAgent *a, VmcgClusterAgentInfo *ret);

/* ---- the host's lease ---- */

typedef struct VmcgClusterLease VmcgClusterLease;

/**
 * vmcg_cluster_lease_new() - grants a lease of @ttl_s seconds (>= 1) at
 * once and keeps it alive every @ttl_s / 3 on the main loop (etcd's own
 * clients renew at a third of the TTL: two renewals may fail before the
 * lease expires). A lease that is gone (keepalive NOT_FOUND: it expired
 * while etcd could not be reached) is granted anew, and the generation
 * moves: the agents must take the new ID, their records went with the
 * old lease.
 */
VmcgClusterLease *vmcg_cluster_lease_new(VmcgEtcd *etcd, int64_t ttl_s);

/* Stops the keepalive (the lease then expires in its TTL; it is not revoked). NULL is fine. */
void vmcg_cluster_lease_free(VmcgClusterLease *l);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VmcgClusterLease, vmcg_cluster_lease_free)

/* The lease's ID; 0 until the first grant answered. */
int64_t vmcg_cluster_lease_id(const VmcgClusterLease *l);

/* Whether the lease was granted or renewed less than its TTL ago, by the local clock. */
bool vmcg_cluster_lease_alive(const VmcgClusterLease *l);

/* Moves each time a new lease is granted (the first one: 1). */
unsigned vmcg_cluster_lease_generation(const VmcgClusterLease *l);

#endif
