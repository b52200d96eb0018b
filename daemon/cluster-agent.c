// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * One host's grant of one cluster group, kept in etcd (cluster-agent.h).
 * The decisions are cluster-grant.c's; this file reads, builds the
 * transaction of docs/cluster.md and keeps what the caller enforces.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "cluster-agent.h"

/*
 * A request in flight points at its owner through this, not directly:
 * VmcgEtcd cannot cancel one request, so freeing the owner clears ->owner
 * and the callback, when it comes, only frees the token.
 */
typedef struct {
	gpointer owner;
} Token;

static Token *token_new(gpointer owner)
{
	Token *t = g_new0(Token, 1);

	t->owner = owner;
	return t;
}

/* The owner of @t (NULL when it was freed meanwhile); frees @t. */
static gpointer token_take(Token *t)
{
	gpointer owner = t->owner;

	g_free(t);
	return owner;
}

struct VmcgClusterAgent {
	VmcgEtcd *etcd;
	char *group, *node;
	char *prefix, *key; /* the group's grant prefix, the own key */
	VmcgGrantParams params;
	int64_t lease_id;

	/* The round in flight. */
	Token *pending;
	uint64_t demand_bytes;
	uint64_t new_grant_bytes; /* what the transaction in flight writes */
	VmcgClusterAgentDone done;
	gpointer done_data;

	/* The caller's usage, and how long a shrink may wait for it (set_usage()). */
	uint64_t usage_bytes;
	uint64_t shrink_wait_max_usec;
	int64_t shrink_since_usec; /* monotonic: a smaller grant waits since, 0 if none */
	uint64_t shrink_to_bytes;  /* ... this one */
	bool shrinking;		   /* the last round kept a smaller grant unpublished */

	/* The valid records of the last read, by name (host()); names in host_names. */
	GArray *hosts_read;
	GPtrArray *host_names;

	/* What info() reports. */
	uint64_t grant_bytes;
	bool has_grant;
	uint64_t quota_in_force;
	bool drift, partitioned;
	unsigned hosts;
	uint64_t pool_bytes;
	int64_t synced_usec;
	uint64_t writes, conflicts, bad_records;
	char *last_error;
	bool round_failed; /* the round in flight set last_error */
	VmcgGrantReason reason;
};

VmcgClusterAgent *vmcg_cluster_agent_new(VmcgEtcd *etcd, const char *group, const char *node,
					 const VmcgGrantParams *params, int64_t lease_id)
{
	g_autofree char *prefix = NULL;
	g_autofree char *key = NULL;
	VmcgClusterAgent *a;

	if (vmcg_grant_key_prefix(group, &prefix) < 0 || vmcg_grant_key(group, node, &key) < 0 ||
	    lease_id < 0)
		return NULL;
	a = g_new0(VmcgClusterAgent, 1);
	a->etcd = etcd;
	a->group = g_strdup(group);
	a->node = g_strdup(node);
	a->prefix = g_steal_pointer(&prefix);
	a->key = g_steal_pointer(&key);
	a->params = *params;
	a->lease_id = lease_id;
	a->hosts_read = g_array_new(FALSE, TRUE, sizeof(VmcgGrantHost));
	a->host_names = g_ptr_array_new_with_free_func(g_free);
	return a;
}

void vmcg_cluster_agent_free(VmcgClusterAgent *a)
{
	if (!a)
		return;
	if (a->pending)
		a->pending->owner = NULL;
	g_free(a->group);
	g_free(a->node);
	g_free(a->prefix);
	g_free(a->key);
	g_free(a->last_error);
	g_array_unref(a->hosts_read);
	g_ptr_array_unref(a->host_names);
	g_free(a);
}

void vmcg_cluster_agent_set_usage(VmcgClusterAgent *a, uint64_t usage_bytes, uint64_t wait_max_usec)
{
	a->usage_bytes = usage_bytes;
	a->shrink_wait_max_usec = wait_max_usec;
}

const VmcgGrantHost *vmcg_cluster_agent_host(VmcgClusterAgent *a, size_t i)
{
	g_return_val_if_fail(i < a->hosts_read->len, NULL);
	return &g_array_index(a->hosts_read, VmcgGrantHost, i);
}

static int host_cmp(gconstpointer x, gconstpointer y)
{
	return strcmp(((const VmcgGrantHost *)x)->name, ((const VmcgGrantHost *)y)->name);
}

/* Keeps a copy of @hosts (the last read's) for host(). */
static void keep_hosts(VmcgClusterAgent *a, const VmcgGrantHost *hosts, size_t n)
{
	g_array_set_size(a->hosts_read, 0);
	g_ptr_array_set_size(a->host_names, 0);
	for (size_t i = 0; i < n; i++) {
		VmcgGrantHost h = hosts[i];

		h.name = g_strdup(hosts[i].name);
		g_ptr_array_add(a->host_names, (char *)h.name);
		g_array_append_val(a->hosts_read, h);
	}
	g_array_sort(a->hosts_read, host_cmp);
}

void vmcg_cluster_agent_set_lease(VmcgClusterAgent *a, int64_t lease_id)
{
	g_return_if_fail(lease_id >= 0);
	a->lease_id = lease_id;
}

bool vmcg_cluster_agent_busy(const VmcgClusterAgent *a)
{
	return a->pending != NULL;
}

static void set_error(VmcgClusterAgent *a, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void set_error(VmcgClusterAgent *a, const char *fmt, ...)
{
	va_list ap;

	a->round_failed = true;
	g_free(a->last_error);
	va_start(ap, fmt);
	a->last_error = g_strdup_vprintf(fmt, ap);
	va_end(ap);
}

static void finish(VmcgClusterAgent *a)
{
	VmcgClusterAgentDone done = a->done;
	gpointer data = a->done_data;

	a->pending = NULL;
	a->done = NULL;
	a->done_data = NULL;
	if (!a->round_failed)
		g_clear_pointer(&a->last_error, g_free);
	if (done)
		done(a, data);
}

static void on_txn(const VmcgEtcdResult *r, const GError *error, gpointer data)
{
	VmcgClusterAgent *a = token_take(data);

	if (!a)
		return;
	if (error) {
		/*
		 * etcd may have applied it (etcd.h: a txn is not resent once
		 * sent): until the next read says, enforce whichever of the
		 * two grants is smaller; that one is safe either way.
		 */
		a->grant_bytes = MIN(a->grant_bytes, a->new_grant_bytes);
		set_error(a, "grant txn: %s", error->message);
	} else if (r->succeeded) {
		a->grant_bytes = a->new_grant_bytes;
		a->has_grant = true;
		a->shrink_since_usec = 0;
		for (guint i = 0; i < a->hosts_read->len; i++) {
			VmcgGrantHost *h = &g_array_index(a->hosts_read, VmcgGrantHost, i);

			if (!strcmp(h->name, a->node))
				h->grant_bytes = a->grant_bytes;
		}
		a->writes++;
		a->synced_usec = g_get_real_time();
	} else {
		/* Someone wrote under the prefix since the read: read again next round. */
		a->conflicts++;
	}
	finish(a);
}

/* The valid records of @r, the own one (or a new one) at *ret_self; names in @names. */
static VmcgGrantHost *collect(VmcgClusterAgent *a, const VmcgEtcdResult *r, GPtrArray *names,
			      size_t *ret_n, size_t *ret_self, const VmcgEtcdKv **ret_own,
			      VmcgGrantHost *ret_published)
{
	VmcgGrantHost *hosts = g_new0(VmcgGrantHost, r->n_kvs + 1);
	size_t n = 0, self = SIZE_MAX;

	*ret_own = NULL;
	for (size_t i = 0; i < r->n_kvs; i++) {
		const VmcgEtcdKv *kv = &r->kvs[i];
		g_autoptr(GError) err = NULL;
		g_autofree char *group = NULL;
		g_autofree char *host = NULL;
		VmcgGrantRecord rec;

		if (vmcg_grant_key_parse(kv->key, kv->key_len, &group, &host, &err) < 0 ||
		    strcmp(group, a->group) ||
		    vmcg_grant_record_parse(kv->value, kv->value_len, &rec, &err) < 0) {
			/* Not trusted, not counted: but its mod_revision is still compared. */
			a->bad_records++;
			if (kv->key_len == strlen(a->key) && !memcmp(kv->key, a->key, kv->key_len))
				*ret_own = kv; /* the own key, garbled: overwrite it */
			continue;
		}
		hosts[n] = (VmcgGrantHost){ .name = host,
					    .grant_bytes = rec.grant_bytes,
					    .demand_bytes = rec.demand_bytes,
					    .quota_bytes = rec.quota_bytes,
					    .mod_revision = kv->mod_revision,
					    .alive = true };
		if (!strcmp(host, a->node)) {
			self = n;
			*ret_own = kv;
		}
		g_ptr_array_add(names, g_steal_pointer(&host));
		n++;
	}
	if (self == SIZE_MAX) {
		/* Joining (or rejoining after the lease went): grant 0, nothing published. */
		hosts[n] = (VmcgGrantHost){ .name = a->node, .alive = true };
		self = n++;
	}
	*ret_published = hosts[self];
	hosts[self].demand_bytes = a->demand_bytes;
	hosts[self].quota_bytes = a->params.quota_bytes;
	hosts[self].alive = true;
	*ret_n = n;
	*ret_self = self;
	return hosts;
}

static void on_range(const VmcgEtcdResult *r, const GError *error, gpointer data)
{
	VmcgClusterAgent *a = token_take(data);
	g_autoptr(GPtrArray) names = NULL;
	g_autofree VmcgGrantHost *hosts = NULL;
	g_autofree VmcgEtcdCompare *cmp = NULL;
	g_autofree char *value = NULL;
	const VmcgEtcdKv *own;
	VmcgGrantHost published;
	VmcgGrantParams p;
	VmcgGrantRecord rec;
	VmcgEtcdOp put;
	uint64_t sum = 0, new_grant;
	size_t n, self, n_cmp = 0;
	bool own_valid, write;

	if (!a)
		return;
	if (error) {
		/* Cut off: hold the grant (it is in etcd, or its lease is going). */
		a->partitioned = true;
		set_error(a, "grant read: %s", error->message);
		finish(a);
		return;
	}
	if (r->more || r->n_kvs >= VMCG_GRANT_HOSTS_MAX) {
		set_error(a, "grant read: %zu keys under %s, above %d", r->n_kvs, a->prefix,
			  VMCG_GRANT_HOSTS_MAX);
		finish(a);
		return;
	}
	a->partitioned = false;
	a->shrinking = false;
	names = g_ptr_array_new_with_free_func(g_free);
	hosts = collect(a, r, names, &n, &self, &own, &published);
	own_valid = own && published.name != a->node;

	a->quota_in_force = vmcg_grant_quota(hosts, n, &a->drift);
	a->hosts = n;
	/*
	 * The own record gone while the agent held a grant: its lease
	 * expired (a partition longer than the TTL). Hold the last grant,
	 * as while cut off, until a transaction puts the record back;
	 * dropping to 0 would balloon the group's VMs down for a round.
	 */
	if (own_valid || !a->has_grant) {
		a->grant_bytes = published.grant_bytes;
		a->has_grant = own_valid;
	}
	for (size_t i = 0; i < n; i++)
		sum += hosts[i].grant_bytes;
	a->pool_bytes = a->quota_in_force > sum ? a->quota_in_force - sum : 0;

	p = a->params;
	p.quota_bytes = a->quota_in_force;
	new_grant = vmcg_grant_decide(&p, hosts, n, self, true, &a->reason);
	keep_hosts(a, hosts, n);
	/*
	 * A smaller grant is enforced at once (enforce_bytes) and published
	 * once usage is down to it: until then the record keeps the old one.
	 */
	if (own_valid && new_grant < published.grant_bytes) {
		int64_t now = g_get_monotonic_time();

		if (!a->shrink_since_usec)
			a->shrink_since_usec = now;
		a->shrink_to_bytes = new_grant;
		if (!vmcg_grant_shrink_ready(published.grant_bytes, new_grant, a->usage_bytes,
					     (uint64_t)(now - a->shrink_since_usec),
					     a->shrink_wait_max_usec)) {
			new_grant = published.grant_bytes;
			a->shrinking = true;
		}
	} else {
		a->shrink_since_usec = 0;
	}
	write = !own_valid || own->lease != a->lease_id ||
		vmcg_grant_should_write(&p, &published, new_grant, a->demand_bytes,
					a->params.quota_bytes);
	if (!write || !a->lease_id) {
		if (!a->lease_id)
			set_error(a, "no lease yet: the record is not written");
		/*
		 * Without a lease a joining host has no grant yet, not a grant
		 * of 0: it is not synced until its record is in etcd.
		 */
		if (a->lease_id || own_valid)
			a->synced_usec = g_get_real_time();
		finish(a);
		return;
	}
	if (!vmcg_grant_sum_ok(&p, hosts, n, self, new_grant)) {
		/* vmcg_grant_decide() promises this never happens. */
		set_error(a, "grant %" PRIu64 " would break the quota %" PRIu64 ": not written",
			  new_grant, p.quota_bytes);
		finish(a);
		return;
	}

	cmp = g_new0(VmcgEtcdCompare, r->n_kvs + 2);
	/*
	 * The range guard alone already proves what the per-key compares do
	 * (no key under the prefix changed since the read); the per-key ones
	 * are the contract's and are kept while they fit etcd's
	 * --max-txn-ops (128): beyond, the guard carries the proof alone.
	 */
	if (r->n_kvs + 2 <= VMCG_ETCD_TXN_OPS_MAX) {
		for (size_t i = 0; i < r->n_kvs; i++)
			cmp[n_cmp++] = (VmcgEtcdCompare){ .key = r->kvs[i].key,
							  .target = VMCG_ETCD_TARGET_MOD,
							  .result = VMCG_ETCD_CMP_EQUAL,
							  .number = r->kvs[i].mod_revision };
	}
	cmp[n_cmp++] = (VmcgEtcdCompare){ .key = a->prefix,
					  .prefix = true,
					  .target = VMCG_ETCD_TARGET_MOD,
					  .result = VMCG_ETCD_CMP_LESS,
					  .number = r->revision + 1 };
	if (!own)
		cmp[n_cmp++] = (VmcgEtcdCompare){ .key = a->key,
						  .target = VMCG_ETCD_TARGET_CREATE,
						  .result = VMCG_ETCD_CMP_EQUAL,
						  .number = 0 };
	rec = (VmcgGrantRecord){ .grant_bytes = new_grant,
				 .demand_bytes = a->demand_bytes,
				 .quota_bytes = a->params.quota_bytes,
				 .at_usec = (uint64_t)g_get_real_time() };
	value = vmcg_grant_record_build(&rec);
	put = (VmcgEtcdOp){ .kind = VMCG_ETCD_OP_PUT,
			    .key = a->key,
			    .value = value,
			    .value_len = strlen(value),
			    .lease = a->lease_id };
	a->new_grant_bytes = new_grant;
	a->pending = token_new(a);
	vmcg_etcd_txn(a->etcd, cmp, n_cmp, &put, 1, NULL, 0, on_txn, a->pending);
}

void vmcg_cluster_agent_round(VmcgClusterAgent *a, uint64_t demand_bytes, VmcgClusterAgentDone done,
			      gpointer userdata)
{
	g_return_if_fail(!a->pending);
	/* The last round's error stays readable while this one runs (finish() clears it). */
	a->round_failed = false;
	a->demand_bytes = MIN(demand_bytes, VMCG_GRANT_BYTES_MAX);
	a->done = done;
	a->done_data = userdata;
	a->pending = token_new(a);
	vmcg_etcd_range(a->etcd, a->prefix, true, on_range, a->pending);
}

void vmcg_cluster_agent_info(VmcgClusterAgent *a, VmcgClusterAgentInfo *ret)
{
	*ret = (VmcgClusterAgentInfo){ .grant_bytes = a->grant_bytes,
				       .enforce_bytes = a->shrinking ? MIN(a->grant_bytes,
									   a->shrink_to_bytes)
								     : a->grant_bytes,
				       .shrinking = a->shrinking,
				       .has_grant = a->has_grant,
				       .quota_in_force = a->quota_in_force,
				       .drift = a->drift,
				       .partitioned = a->partitioned,
				       .hosts = a->hosts,
				       .pool_bytes = a->pool_bytes,
				       .synced_usec = a->synced_usec,
				       .writes = a->writes,
				       .conflicts = a->conflicts,
				       .bad_records = a->bad_records,
				       .last_error = a->last_error,
				       .reason = a->reason };
}

/* ---- the host's lease ---- */

struct VmcgClusterLease {
	VmcgEtcd *etcd;
	int64_t ttl_s;
	int64_t id;
	unsigned generation;
	int64_t renewed_usec; /* monotonic, of the last grant or renewal */
	guint timer;
	Token *pending;
};

static void lease_request(VmcgClusterLease *l);

static void on_lease(const VmcgEtcdResult *r, const GError *error, gpointer data)
{
	VmcgClusterLease *l = token_take(data);

	if (!l)
		return;
	l->pending = NULL;
	if (error) {
		if (g_error_matches(error, VMCG_ETCD_ERROR, VMCG_ETCD_ERROR_NOT_FOUND) && l->id) {
			/* Gone, and the records with it: a new lease at once. */
			g_info("cluster lease %" PRId64 " is gone: %s", l->id, error->message);
			l->id = 0;
			lease_request(l);
		}
		/* Otherwise: the next tick tries again. */
		return;
	}
	if (r->call == VMCG_ETCD_CALL_LEASE_GRANT) {
		l->id = r->lease_id;
		l->generation++;
	}
	l->renewed_usec = g_get_monotonic_time();
}

static void lease_request(VmcgClusterLease *l)
{
	if (l->pending)
		return;
	l->pending = token_new(l);
	if (l->id)
		vmcg_etcd_lease_keepalive(l->etcd, l->id, on_lease, l->pending);
	else
		vmcg_etcd_lease_grant(l->etcd, l->ttl_s, on_lease, l->pending);
}

static gboolean lease_tick(gpointer data)
{
	lease_request(data);
	return G_SOURCE_CONTINUE;
}

VmcgClusterLease *vmcg_cluster_lease_new(VmcgEtcd *etcd, int64_t ttl_s)
{
	VmcgClusterLease *l;

	g_return_val_if_fail(ttl_s >= 1 && ttl_s <= VMCG_ETCD_TTL_MAX_S / 1000, NULL);
	l = g_new0(VmcgClusterLease, 1);
	l->etcd = etcd;
	l->ttl_s = ttl_s;
	l->timer = g_timeout_add((guint)MIN(ttl_s * 1000 / 3, G_MAXUINT), lease_tick, l);
	lease_request(l);
	return l;
}

void vmcg_cluster_lease_free(VmcgClusterLease *l)
{
	if (!l)
		return;
	if (l->pending)
		l->pending->owner = NULL;
	if (l->timer)
		g_source_remove(l->timer);
	g_free(l);
}

int64_t vmcg_cluster_lease_id(const VmcgClusterLease *l)
{
	return l->id;
}

bool vmcg_cluster_lease_alive(const VmcgClusterLease *l)
{
	return l->id && g_get_monotonic_time() - l->renewed_usec < l->ttl_s * G_USEC_PER_SEC;
}

unsigned vmcg_cluster_lease_generation(const VmcgClusterLease *l)
{
	return l->generation;
}
