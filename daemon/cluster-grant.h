/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Cluster-wide quotas (docs/cluster.md, issue 12), the pure half: what a
 * host's grant (its slice of a group's cluster.memory.max) should be, given
 * every host's grant record as read from etcd; the etcd keys; the record's
 * JSON. No I/O, no main loop, no logging: the etcd module reads all records
 * of a group in one range read, calls these, and writes one transaction
 * (docs/cluster.md, "The transaction"); tests/unit/test-cluster-grant.c
 * feeds tables and a simulated etcd.
 *
 * Sizes are bytes. Nothing here keeps state between calls: the etcd
 * records are the state.
 *
 * Everything read from etcd is untrusted (another host, or anyone with
 * write access to the prefix, wrote it): keys and records that are not
 * exactly what these functions build are errors with a reason, never an
 * assert.
 */
#ifndef VMCG_DAEMON_CLUSTER_GRANT_H
#define VMCG_DAEMON_CLUSTER_GRANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>

/*
 * One host's grant record of a group, as read (and, for the caller's own
 * host, with its fresh demand). A record exists only while its host's lease
 * lives: a dead host's record, and so its grant, goes when the lease
 * expires.
 */
typedef struct VmcgGrantHost {
	const char *name;      /* the host, unique in the group; ties are broken by it */
	uint64_t grant_bytes;  /* its slice: its local group's memory.max */
	uint64_t demand_bytes; /* what its group would use unconstrained (usage + wanted) */
	uint64_t quota_bytes;  /* the cluster.memory.max it is configured with */
	int64_t mod_revision;  /* etcd's, of its key: what the transaction compares */
	/*
	 * false: the caller believes the host gone (e.g. its record is far
	 * older than its lease's TTL). Its grant still counts in the sum (only
	 * the lease's expiry frees it) but it gets no fair share and starves
	 * nobody.
	 */
	bool alive;
} VmcgGrantHost;

typedef struct VmcgGrantParams {
	uint64_t quota_bytes;	   /* in force: vmcg_grant_quota() */
	uint64_t hysteresis_bytes; /* a grant may exceed demand by this before it is given back */
	uint64_t min_grant_bytes;  /* the floor each live host keeps, when the quota allows */
	uint64_t step_bytes;	   /* the most a grant moves per decision; 0 = no cap */
} VmcgGrantParams;

/* The most hosts one group may have: the group's range read is refused beyond. */
#define VMCG_GRANT_HOSTS_MAX 1024

/* The largest size a record may carry: 2^63, so that sums of a few stay far from 2^64. */
#define VMCG_GRANT_BYTES_MAX (UINT64_C(1) << 63)

/**
 * vmcg_grant_quota() - the quota in force over @hosts' configured quotas:
 * the smallest (configuration drift must never raise a quota).
 *
 * Returns bytes; 0 if @n is 0. *@ret_drift (if not NULL) is set to true
 * when two hosts' quotas differ, false otherwise: the caller reports it.
 */
uint64_t vmcg_grant_quota(const VmcgGrantHost *hosts, size_t n, bool *ret_drift);

/**
 * vmcg_grant_fair_shares() - the quota split over the live hosts, after
 * mm/memcontrol.c effective_protection(): each live host first gets the
 * floor f = min(p->min_grant_bytes, quota / live hosts); the rest,
 * R = quota - live * f, goes in proportion to each host's demand above the
 * floor, e_i = max(demand_i - f, 0):
 *
 *   share_i = f + e_i                        if sum(e) <= R
 *   share_i = f + floor(R * e_i / sum(e))    otherwise, the bytes lost to
 *                                            rounding then one each to the
 *                                            hosts by name order
 *
 * so a share is never above max(demand, f) and, when demand exceeds the
 * quota, the shares add up to the quota exactly. Hosts not alive get 0.
 * Deterministic: the same records give the same shares on every host,
 * whatever their order in @hosts.
 *
 * @ret_shares: @n entries, set for every host. The sum of the shares is
 * at most p->quota_bytes, always.
 */
void vmcg_grant_fair_shares(const VmcgGrantParams *p, const VmcgGrantHost *hosts, size_t n,
			    uint64_t *ret_shares);

/* Why a grant moves (or does not). */
typedef enum VmcgGrantReason {
	VMCG_GRANT_HOLD = 0,	   /* within [demand, demand + hysteresis]: leave it */
	VMCG_GRANT_GROW,	   /* under demand (or the floor): more from the free pool */
	VMCG_GRANT_WAIT_POOL,	   /* under demand, nothing free to take: others give back first */
	VMCG_GRANT_WAIT_PARTITION, /* under demand, but cut off from etcd: never grows */
	VMCG_GRANT_SHRINK_ROOM,	   /* more than hysteresis above demand: give back */
	VMCG_GRANT_SHRINK_FAIR,	   /* above its fair share while another host starves */
	VMCG_GRANT_SHRINK_QUOTA,   /* the grants exceed a lowered quota: back to its share */
} VmcgGrantReason;

/** vmcg_grant_reason_to_string() - "hold", "grow", ...; for logs and events. */
const char *vmcg_grant_reason_to_string(VmcgGrantReason reason);

/**
 * vmcg_grant_decide() - what the grant of @hosts[@self] should be now.
 * @hosts: every record of the group as read in one snapshot; @hosts[@self]
 *	carries the caller's own grant as read and its fresh demand, and is
 *	taken as alive
 * @can_grow: false when the caller is cut off from etcd (its lease may be
 *	gone): its grant is then never raised
 *
 * With s its fair share, lo = min(min_grant, s), d its demand, h the
 * hysteresis, G the sum of all grants and Q the quota; another live host
 * "starves" when its grant is under min(max(its demand, its lo), its
 * share):
 *  - shrink when the grant is above max(d + h, lo) (SHRINK_ROOM), or above
 *    s while another host starves (SHRINK_FAIR) or G > Q (SHRINK_QUOTA);
 *    it lands on max(d + h / 2, lo), or s if that is lower in the last two
 *    cases: the others then take what was given back, nobody takes from a
 *    host directly;
 *  - grow when the grant is under max(d, lo), to max(d + h / 2, lo), at
 *    most by the free pool Q - G (WAIT_POOL when that is empty) and, while
 *    another host starves, not past s;
 *  - every move is at most p->step_bytes.
 * Landing half a hysteresis above demand leaves a band of h / 2 on either
 * side, so a demand that wobbles less than that writes nothing.
 *
 * Returns the new grant (the current one when holding); *@ret_reason (if
 * not NULL) says why. The result always passes vmcg_grant_sum_ok().
 */
uint64_t vmcg_grant_decide(const VmcgGrantParams *p, const VmcgGrantHost *hosts, size_t n,
			   size_t self, bool can_grow, VmcgGrantReason *ret_reason);

/**
 * vmcg_grant_sum_ok() - the invariant, checked before every write: with
 * @hosts[@self]'s grant replaced by @new_grant_bytes, the grants add up to
 * at most p->quota_bytes, or @new_grant_bytes is no larger than the grant
 * it replaces (giving back is always allowed: it is how a sum above a
 * lowered quota comes down).
 */
bool vmcg_grant_sum_ok(const VmcgGrantParams *p, const VmcgGrantHost *hosts, size_t n, size_t self,
		       uint64_t new_grant_bytes);

/**
 * vmcg_grant_should_write() - whether the caller's record must be
 * rewritten: @published is its record as read, @new_grant_bytes what
 * vmcg_grant_decide() said, @demand_bytes and @quota_bytes its fresh
 * demand and configured quota. A new grant or quota always; a demand only
 * once it moved by at least half the hysteresis from the published one
 * (others' fair shares follow the published demand, and a wobble must not
 * cost a write per tick).
 */
bool vmcg_grant_should_write(const VmcgGrantParams *p, const VmcgGrantHost *published,
			     uint64_t new_grant_bytes, uint64_t demand_bytes, uint64_t quota_bytes);

/* What vmcg_grant_demand() reads of the host's group. Bytes. */
typedef struct VmcgGrantDemandInput {
	uint64_t usage_bytes; /* the group's charge now */
	uint64_t cap_bytes;   /* the memory.max in force: the grant, or the operator's if smaller */
	/*
	 * The most the group can be charged whatever it is granted: its VMs'
	 * RAM (and overhead, where counted), and the operator's own
	 * memory.max, whichever is smaller.
	 */
	uint64_t ceiling_bytes;
} VmcgGrantDemandInput;

/**
 * vmcg_grant_demand() - what the host's group would use unconstrained,
 * as far as one host can tell. A group well under its cap uses what it
 * wants: its demand is its usage. A group at its cap (usage within a
 * quarter of the hysteresis of it, or above) may want more than it gets:
 * its demand is its usage plus max(h, usage / 8), a probe that grows a
 * pressed group by at least one hysteresis per round and by an eighth
 * when it is large. Never above the ceiling.
 *
 * An idle group that happens to sit at its cap grows once and then gives
 * back to half a hysteresis above its usage (SHRINK_ROOM), where it is no
 * longer at its cap: at most two writes, then none.
 */
uint64_t vmcg_grant_demand(const VmcgGrantParams *p, const VmcgGrantDemandInput *in);

/**
 * vmcg_grant_shrink_ready() - whether a smaller grant @new_grant_bytes
 * (than the @published_bytes in etcd) may be published now. The host
 * lowers its own memory.max to the new grant first and publishes only
 * once its usage is down to it, so that another host never grows into
 * bytes this one still holds; a group that cannot come down (its VMs'
 * floors, an OOM action of "notify") publishes after @wait_max_usec
 * anyway, so that others do not starve behind it. A grant that does not
 * shrink is always ready.
 */
bool vmcg_grant_shrink_ready(uint64_t published_bytes, uint64_t new_grant_bytes,
			     uint64_t usage_bytes, uint64_t waited_usec, uint64_t wait_max_usec);

/*
 * The domain of the keys' and records' errors; a record that is not JSON
 * keeps json-stream.h's (VMCG_JSON_STREAM_ERROR).
 */
#define VMCG_GRANT_ERROR vmcg_grant_error_quark()
GQuark vmcg_grant_error_quark(void);

typedef enum {
	VMCG_GRANT_ERROR_INVALID, /* not a key or record vmcgd would write */
} VmcgGrantError;

/* ---- etcd keys ---- */

/*
 * One key per host per group, under the host's lease:
 *
 *   /vmcg/cluster/v1/groups/<group>/grants/<host>
 *
 * <group> and <host> are escaped: bytes other than [A-Za-z0-9._-] become
 * %XX (upper-case hex), so neither holds a '/' and no path can forge a key
 * of another group or kind. Escaping is canonical: a parsed key must be
 * exactly what vmcg_grant_key() builds.
 */
#define VMCG_GRANT_KEY_ROOT "/vmcg/cluster/v1/groups/"

/* The most bytes of a host name: a DNS name's 253, with room. */
#define VMCG_GRANT_HOST_MAX 255

/**
 * vmcg_grant_host_validate() - 0 for a host name of 1..VMCG_GRANT_HOST_MAX
 * printable ASCII bytes other than space; -EINVAL otherwise.
 */
int vmcg_grant_host_validate(const char *host);

/**
 * vmcg_grant_key() - the grant key of @host in @group.
 * @group: a group path (vmcg_path_validate()), not "/"
 * @ret_key: the key, on success (g_free() it)
 *
 * Returns 0, or -EINVAL when @group or @host is not valid.
 */
int vmcg_grant_key(const char *group, const char *host, char **ret_key);

/**
 * vmcg_grant_key_prefix() - the prefix of all of @group's grant keys (the
 * range read, and the transaction's range compare: docs/cluster.md), with
 * its trailing '/'. No other group's key starts with it.
 *
 * Returns 0, or -EINVAL when @group is not valid.
 */
int vmcg_grant_key_prefix(const char *group, char **ret_prefix);

/**
 * vmcg_grant_key_parse() - a grant key back into its group and host.
 * @key, @len: the key as etcd returned it (not NUL-terminated, may hold NULs)
 * @ret_group, @ret_host: set on success (g_free() them)
 *
 * Returns 0, or -EINVAL with @error set: another prefix or kind, a missing
 * or extra segment, bad or non-canonical escapes, a NUL, an invalid group
 * path or host name.
 */
int vmcg_grant_key_parse(const char *key, size_t len, char **ret_group, char **ret_host,
			 GError **error);

/* ---- the record ---- */

/*
 * A grant key's value, one JSON object of exactly these members, each an
 * integer in [0, VMCG_GRANT_BYTES_MAX]:
 *   {"grant":N,"demand":N,"quota":N,"at":unix_usec}
 */
typedef struct VmcgGrantRecord {
	uint64_t grant_bytes;
	uint64_t demand_bytes;
	uint64_t quota_bytes;
	uint64_t at_usec; /* when it was written, wall clock: for "alive" and for people */
} VmcgGrantRecord;

/* The most bytes of a record: four 19-digit numbers and their names fit many times over. */
#define VMCG_GRANT_RECORD_MAX 512

/**
 * vmcg_grant_record_parse() - a record from etcd.
 *
 * Returns 0 and *@ret; or -EINVAL with @error set: not one JSON object of
 * at most VMCG_GRANT_RECORD_MAX bytes, a member missing or unknown, not an
 * integer, negative, or above VMCG_GRANT_BYTES_MAX; or not byte for byte
 * what vmcg_grant_record_build() makes of it (members repeated, reordered
 * or spaced: only vmcgd writes these, and json-c would keep the last of a
 * repeated member silently).
 */
int vmcg_grant_record_parse(const char *buf, size_t len, VmcgGrantRecord *ret, GError **error);

/**
 * vmcg_grant_record_build() - the JSON of @r, as parse reads it back.
 *
 * Returns a new string (g_free() it), members in a fixed order.
 */
char *vmcg_grant_record_build(const VmcgGrantRecord *r);

#endif
