// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * K simulated hosts in one process against a real etcd (test_cluster.py):
 * each host has its own etcd client, its own lease (vmcg_cluster_lease)
 * and one agent (daemon/cluster-agent.c) of the group --group with quota
 * Q. Every tick (--interval-ms) every live host starts a round, in a
 * random order, all in flight at once; after every completed round a
 * separate client reads the whole prefix and checks sum(grants) <= Q.
 *
 *   phase 1  host 0 wants 0.8 Q, the others 0.01 Q        R rounds
 *   phase 2  host K-1 wants 0.8 Q, host 0 0.01 Q: the     R rounds
 *            slice moves from host 0 to host K-1
 *   phase 3  every host wants Q: Q/K each; the last R     2R rounds
 *            rounds are the steady window (writes per
 *            host per second)
 *   phase 3b (--revoke-host H) H's lease is revoked       until back,
 *            under it: its keepalive grants a new one,    at most TTL + 3 s
 *            its agent puts the record again
 *   phase 4  (--stop-host H) host H stops its rounds and  (TTL + 3 s)
 *            its keepalive at the phase's start (or at
 *            tick --at-round); its grant must come back
 *            to the others when its lease expires
 *
 *   cluster-check --endpoints E1,E2 [--hosts K] [--group /t] [--rounds R]
 *                 [--interval-ms 100] [--ttl 2] [--seed S]
 *                 [--revoke-host H] [--stop-host H [--at-round N]]
 *
 * Prints "# ..." diagnostics, one "violation ..." line per broken
 * invariant and "figure NAME=VALUE" lines for the figures; exits 1 on any
 * violation, 2 on bad arguments or when etcd cannot be used at all.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "cluster-agent.h"
#include "loop-sleep.h"

#define GIB (UINT64_C(1) << 30)

typedef struct {
	char name[16];
	VmcgEtcd *etcd;
	VmcgClusterLease *lease;
	VmcgClusterAgent *agent;
	unsigned lease_gen;
	uint64_t demand;
	bool stopped;
} Host;

static Host *hosts;
static int n_hosts = 3;
static uint64_t quota = GIB;
static char *group;
static char *prefix;
static VmcgEtcd *checker;
static unsigned outstanding; /* rounds and check reads in flight */
static unsigned violations;
static unsigned checks;
static int stop_host = -1;
static int at_round = -1;
static int revoke_host = -1;
static int64_t stopped_usec;
static uint64_t last_sum;	 /* of the grants, at the last check */
static uint64_t host0_record;	 /* host 0's grant in etcd, at the last check */
static bool stopped_key_present; /* the stopped host's key, at the last check */

static void on_check(const VmcgEtcdResult *r, const GError *error, gpointer data)
{
	uint64_t sum = 0;
	bool stopped_present = false;

	(void)data;
	outstanding--;
	if (error) {
		printf("# check read failed: %s\n", error->message);
		return;
	}
	checks++;
	for (size_t i = 0; i < r->n_kvs; i++) {
		g_autoptr(GError) err = NULL;
		g_autofree char *g = NULL;
		g_autofree char *h = NULL;
		VmcgGrantRecord rec;

		if (vmcg_grant_key_parse(r->kvs[i].key, r->kvs[i].key_len, &g, &h, &err) < 0 ||
		    vmcg_grant_record_parse(r->kvs[i].value, r->kvs[i].value_len, &rec, &err) < 0) {
			printf("violation bad record %s: %s\n", r->kvs[i].key, err->message);
			violations++;
			continue;
		}
		sum += rec.grant_bytes;
		if (!strcmp(h, hosts[0].name))
			host0_record = rec.grant_bytes;
		if (stop_host >= 0 && !strcmp(h, hosts[stop_host].name))
			stopped_present = true;
	}
	if (sum > quota) {
		printf("violation rev %" PRId64 ": sum of grants %" PRIu64 " > quota %" PRIu64 "\n",
		       r->revision, sum, quota);
		violations++;
	}
	last_sum = sum;
	stopped_key_present = stopped_present;
}

static void on_revoke(const VmcgEtcdResult *r, const GError *error, gpointer data)
{
	(void)r;
	outstanding--;
	if (error)
		printf("# revoke: %s\n", error->message);
	*(bool *)data = !error;
}

static void check(void)
{
	outstanding++;
	vmcg_etcd_range(checker, prefix, true, on_check, NULL);
}

static void on_round(VmcgClusterAgent *a, gpointer data)
{
	Host *h = data;
	VmcgClusterAgentInfo info;

	vmcg_cluster_agent_info(a, &info);
	if (info.last_error)
		printf("# %s: %s\n", h->name, info.last_error);
	outstanding--;
	check();
}

static void run_until_idle(void)
{
	while (outstanding)
		g_main_context_iteration(NULL, TRUE);
}

static void stop(int i)
{
	printf("# stopping host %s (rounds and keepalive)\n", hosts[i].name);
	hosts[i].stopped = true;
	g_clear_pointer(&hosts[i].lease, vmcg_cluster_lease_free);
	stopped_usec = g_get_monotonic_time();
}

/* One tick: every live host's round, in random order, all in flight together. */
static uint64_t tick(GRand *rand, int tick_no)
{
	g_autofree int *order = g_new(int, n_hosts);
	uint64_t writes_before = 0, writes_after = 0;

	if (tick_no == at_round && stop_host >= 0 && !hosts[stop_host].stopped)
		stop(stop_host);
	for (int i = 0; i < n_hosts; i++) {
		VmcgClusterAgentInfo info;

		order[i] = i;
		vmcg_cluster_agent_info(hosts[i].agent, &info);
		writes_before += info.writes;
	}
	for (int i = n_hosts - 1; i > 0; i--) {
		int j = g_rand_int_range(rand, 0, i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (int k = 0; k < n_hosts; k++) {
		Host *h = &hosts[order[k]];

		if (h->stopped)
			continue;
		if (vmcg_cluster_lease_generation(h->lease) != h->lease_gen) {
			h->lease_gen = vmcg_cluster_lease_generation(h->lease);
			vmcg_cluster_agent_set_lease(h->agent, vmcg_cluster_lease_id(h->lease));
		}
		outstanding++;
		vmcg_cluster_agent_round(h->agent, h->demand, on_round, h);
	}
	run_until_idle();
	for (int i = 0; i < n_hosts; i++) {
		VmcgClusterAgentInfo info;

		vmcg_cluster_agent_info(hosts[i].agent, &info);
		writes_after += info.writes;
	}
	return writes_after - writes_before;
}

static uint64_t grant_of(int i)
{
	VmcgClusterAgentInfo info;

	vmcg_cluster_agent_info(hosts[i].agent, &info);
	return info.grant_bytes;
}

static void set_demands(uint64_t hot, int hot_host, uint64_t cold)
{
	for (int i = 0; i < n_hosts; i++)
		hosts[i].demand = i == hot_host ? hot : cold;
}

int main(int argc, char **argv)
{
	g_autofree char *endpoints_arg = NULL;
	g_autofree char *group_arg = NULL;
	g_auto(GStrv) endpoints = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GOptionContext) ctx = NULL;
	g_autoptr(GRand) rand = NULL;
	int rounds = 30, interval_ms = 100, ttl_s = 2, seed = 1, t = 0, churn_rounds = 0;
	gboolean shrink_check = FALSE;
	int64_t t0, start;
	uint64_t writes = 0, conflicts = 0, steady_writes = 0;
	int last_write_tick = -1, steady_from;
	GOptionEntry entries[] = {
		{ "endpoints", 0, 0, G_OPTION_ARG_STRING, &endpoints_arg, "etcd endpoints",
		  "E,..." },
		{ "hosts", 0, 0, G_OPTION_ARG_INT, &n_hosts, "simulated hosts", "K" },
		{ "group", 0, 0, G_OPTION_ARG_STRING, &group_arg, "the group", "PATH" },
		{ "rounds", 0, 0, G_OPTION_ARG_INT, &rounds, "rounds per phase", "R" },
		{ "interval-ms", 0, 0, G_OPTION_ARG_INT, &interval_ms, "tick", "MS" },
		{ "ttl", 0, 0, G_OPTION_ARG_INT, &ttl_s, "lease TTL", "S" },
		{ "seed", 0, 0, G_OPTION_ARG_INT, &seed, "random order's seed", "S" },
		{ "stop-host", 0, 0, G_OPTION_ARG_INT, &stop_host, "host to stop", "H" },
		{ "at-round", 0, 0, G_OPTION_ARG_INT, &at_round, "tick to stop it at", "N" },
		{ "revoke-host", 0, 0, G_OPTION_ARG_INT, &revoke_host, "host whose lease to revoke",
		  "H" },
		{ "shrink-check", 0, 0, G_OPTION_ARG_NONE, &shrink_check,
		  "phase 3c: a host gives back only once its usage is down", NULL },
		{ "churn-rounds", 0, 0, G_OPTION_ARG_INT, &churn_rounds,
		  "phase 3d: rounds of random demand on every host", "N" },
		{ NULL, 0, 0, 0, NULL, NULL, NULL },
	};
	VmcgGrantParams params = {
		.quota_bytes = quota,
		.hysteresis_bytes = quota / 64, /* 1.6 %: a wobble below it costs no write */
		.min_grant_bytes = quota / 128,
		.step_bytes = 0,
	};

	vmcg_etcd_process_init();

	ctx = g_option_context_new("- simulated hosts sharing a cluster quota");
	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &error) || !endpoints_arg || n_hosts < 1 ||
	    n_hosts > 64 || rounds < 1 || interval_ms < 1 || ttl_s < 1 || stop_host >= n_hosts) {
		fprintf(stderr, "%s: bad arguments%s%s\n", argv[0], error ? ": " : "",
			error ? error->message : "");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	group = g_strdup(group_arg ? group_arg : "/t");
	if (vmcg_grant_key_prefix(group, &prefix) < 0) {
		fprintf(stderr, "bad group %s\n", group);
		return 2;
	}
	rand = g_rand_new_with_seed((guint32)seed);
	endpoints = vmcg_etcd_split_endpoints(endpoints_arg);
	checker = vmcg_etcd_new((const char *const *)endpoints, NULL, &error);
	if (!checker) {
		fprintf(stderr, "%s\n", error->message);
		return 2;
	}
	hosts = g_new0(Host, n_hosts);
	for (int i = 0; i < n_hosts; i++) {
		Host *h = &hosts[i];

		g_snprintf(h->name, sizeof(h->name), "h%d", i);
		h->etcd = vmcg_etcd_new((const char *const *)endpoints, NULL, &error);
		g_assert_no_error(error);
		h->lease = vmcg_cluster_lease_new(h->etcd, ttl_s);
		h->agent = vmcg_cluster_agent_new(h->etcd, group, h->name, &params, 0);
		g_assert(h->agent);
	}
	/* Every lease granted before the first round (at most 5 s). */
	start = g_get_monotonic_time();
	for (int i = 0; i < n_hosts; i++) {
		while (!vmcg_cluster_lease_id(hosts[i].lease)) {
			if (g_get_monotonic_time() - start > 5 * G_USEC_PER_SEC) {
				fprintf(stderr, "no lease granted within 5 s\n");
				return 2;
			}
			g_main_context_iteration(NULL, TRUE);
		}
	}
	printf("# %d hosts, group %s, quota %" PRIu64 ", tick %d ms, ttl %d s, seed %d\n", n_hosts,
	       group, quota, interval_ms, ttl_s, seed);

	/* Phase 1: host 0 hot. */
	set_demands(quota / 10 * 8, 0, quota / 100);
	for (int i = 0; i < rounds; i++, t++) {
		start = g_get_monotonic_time();
		tick(rand, t);
		loop_sleep_until(start + interval_ms * 1000);
	}
	printf("# phase 1: host 0 holds %" PRIu64 " of %" PRIu64 "\n", grant_of(0), quota);
	if (grant_of(0) < quota / 10 * 8) {
		printf("violation phase 1: host 0 got %" PRIu64 " < 0.8 Q\n", grant_of(0));
		violations++;
	}

	/* Phase 2: the slice moves to host K-1. */
	set_demands(quota / 10 * 8, n_hosts - 1, quota / 100);
	t0 = g_get_monotonic_time();
	{
		int moved = -1;
		int64_t moved_usec = 0;

		for (int i = 0; i < rounds; i++, t++) {
			start = g_get_monotonic_time();
			tick(rand, t);
			if (moved < 0 && grant_of(n_hosts - 1) >= quota / 10 * 8) {
				moved = i + 1;
				moved_usec = g_get_monotonic_time() - t0;
			}
			loop_sleep_until(start + interval_ms * 1000);
		}
		if (moved < 0) {
			printf("violation phase 2: host %d got only %" PRIu64 " in %d rounds\n",
			       n_hosts - 1, grant_of(n_hosts - 1), rounds);
			violations++;
		} else {
			printf("figure move_rounds=%d\n", moved);
			printf("figure move_ms=%" PRId64 "\n", moved_usec / 1000);
		}
	}

	/* Phase 3: everybody wants the whole quota; the last R rounds are steady. */
	for (int i = 0; i < n_hosts; i++)
		hosts[i].demand = quota;
	steady_from = t + rounds;
	for (int i = 0; i < 2 * rounds; i++, t++) {
		uint64_t w;

		start = g_get_monotonic_time();
		w = tick(rand, t);
		if (w)
			last_write_tick = i;
		if (t >= steady_from)
			steady_writes += w;
		loop_sleep_until(start + interval_ms * 1000);
	}
	printf("figure converge_rounds=%d\n", last_write_tick + 1);
	printf("figure steady_writes=%" PRIu64 "\n", steady_writes);
	printf("figure steady_writes_per_host_s=%.3f\n",
	       (double)steady_writes / n_hosts / (rounds * interval_ms / 1000.0));
	for (int i = 0; i < n_hosts; i++)
		printf("# phase 3: %s holds %" PRIu64 " (fair %" PRIu64 ")\n", hosts[i].name,
		       grant_of(i), quota / (uint64_t)n_hosts);

	/*
	 * Phase 3b (--revoke-host H): H's lease is revoked under it (as when
	 * it expired during a partition): its record goes, its keepalive
	 * hears NOT_FOUND and grants a new lease, and its agent must put the
	 * record again under the new one.
	 */
	if (revoke_host >= 0) {
		Host *h = &hosts[revoke_host];
		unsigned gen = vmcg_cluster_lease_generation(h->lease);
		int64_t rejoined_usec = -1;
		bool revoked = false;

		t0 = g_get_monotonic_time();
		outstanding++;
		vmcg_etcd_lease_revoke(checker, vmcg_cluster_lease_id(h->lease), on_revoke,
				       &revoked);
		run_until_idle();
		if (!revoked) {
			printf("violation the revoke of %s's lease failed\n", h->name);
			violations++;
		}
		for (int end = t + (ttl_s * 1000 + 3000) / interval_ms;
		     t < end && rejoined_usec < 0; t++) {
			VmcgClusterAgentInfo info;

			start = g_get_monotonic_time();
			tick(rand, t);
			vmcg_cluster_agent_info(h->agent, &info);
			if (vmcg_cluster_lease_generation(h->lease) != gen && info.has_grant &&
			    !info.last_error && info.grant_bytes > 0)
				rejoined_usec = g_get_monotonic_time() - t0;
			loop_sleep_until(start + interval_ms * 1000);
		}
		if (rejoined_usec < 0) {
			printf("violation %s did not put its record again under a new lease\n",
			       h->name);
			violations++;
		} else {
			printf("figure rejoin_ms=%" PRId64 "\n", rejoined_usec / 1000);
		}
	}

	/*
	 * Phase 3c (--shrink-check): host 0's demand drops while its usage
	 * stays (its guests cannot give back yet): it enforces the smaller
	 * grant at once but its record keeps the old one, so nobody grows
	 * into bytes it still uses; once its usage is down, it publishes and
	 * the others grow.
	 */
	if (shrink_check) {
		uint64_t held = grant_of(0), others0 = 0, others = 0;
		VmcgClusterAgentInfo info;
		int published = -1;

		for (int j = 1; j < n_hosts; j++)
			others0 += grant_of(j);
		hosts[0].demand = quota / 100;
		vmcg_cluster_agent_set_usage(hosts[0].agent, held, UINT64_C(3600) * G_USEC_PER_SEC);
		for (int i = 0; i < 10; i++, t++) {
			start = g_get_monotonic_time();
			tick(rand, t);
			vmcg_cluster_agent_info(hosts[0].agent, &info);
			if (!info.shrinking || info.enforce_bytes >= held || host0_record != held) {
				printf("violation phase 3c round %d: shrinking %d, enforced "
				       "%" PRIu64 ", record %" PRIu64 ", held %" PRIu64 "\n",
				       i, info.shrinking, info.enforce_bytes, host0_record, held);
				violations++;
				break;
			}
			loop_sleep_until(start + interval_ms * 1000);
		}
		for (int j = 1; j < n_hosts; j++)
			others += grant_of(j);
		if (others > others0) {
			printf("violation phase 3c: the others grew (%" PRIu64 " -> %" PRIu64
			       ") into bytes host 0 still uses\n",
			       others0, others);
			violations++;
		}
		printf("# phase 3c: host 0 enforces %" PRIu64 " and keeps %" PRIu64 " published\n",
		       info.enforce_bytes, host0_record);
		/*
		 * Its usage comes down, below its fair share (the others' demand
		 * puts that under its own demand): it publishes, the others grow.
		 */
		vmcg_cluster_agent_set_usage(hosts[0].agent, quota / 200,
					     UINT64_C(3600) * G_USEC_PER_SEC);
		for (int i = 0; i < rounds && published < 0; i++, t++) {
			start = g_get_monotonic_time();
			tick(rand, t);
			others = 0;
			for (int j = 1; j < n_hosts; j++)
				others += grant_of(j);
			if (host0_record < held && others > others0)
				published = i + 1;
			loop_sleep_until(start + interval_ms * 1000);
		}
		if (published < 0) {
			printf("violation phase 3c: host 0 never published its smaller grant "
			       "(record %" PRIu64 ")\n",
			       host0_record);
			violations++;
		} else {
			printf("figure shrink_publish_rounds=%d\n", published);
		}
		vmcg_cluster_agent_set_usage(hosts[0].agent, 0, 0);
	}

	/*
	 * Phase 3d (--churn-rounds N): every host's demand jumps at random
	 * every round, between 0 and the whole quota: the stress of
	 * concurrent grant requests. Every commit is checked (sum <= Q) by
	 * the reads after each round.
	 */
	if (churn_rounds > 0) {
		uint64_t w = 0;
		unsigned checks0 = checks;

		for (int i = 0; i < churn_rounds; i++, t++) {
			start = g_get_monotonic_time();
			for (int j = 0; j < n_hosts; j++)
				hosts[j].demand =
					quota / 1000 * (uint64_t)g_rand_int_range(rand, 0, 1001);
			w += tick(rand, t);
			loop_sleep_until(start + interval_ms * 1000);
		}
		printf("figure churn_writes=%" PRIu64 "\n", w);
		printf("figure churn_checks=%u\n", checks - checks0);
		printf("figure churn_writes_per_host_s=%.3f\n",
		       (double)w / n_hosts / (churn_rounds * interval_ms / 1000.0));
	}

	/* Phase 4: a host dies; its grant comes back when its lease expires. */
	if (stop_host >= 0) {
		int n = (ttl_s * 1000 + 3000) / interval_ms;
		int64_t gone_usec = -1, regrown_usec = -1;

		if (at_round < 0 || at_round < t)
			at_round = t;
		for (int end = at_round + n; t < end && regrown_usec < 0; t++) {
			start = g_get_monotonic_time();
			tick(rand, t);
			if (hosts[stop_host].stopped) {
				uint64_t others = 0;

				for (int j = 0; j < n_hosts; j++)
					if (j != stop_host)
						others += grant_of(j);
				if (gone_usec < 0 && !stopped_key_present)
					gone_usec = g_get_monotonic_time() - stopped_usec;
				if (!stopped_key_present && others >= quota - quota / 100)
					regrown_usec = g_get_monotonic_time() - stopped_usec;
			}
			loop_sleep_until(start + interval_ms * 1000);
		}
		if (gone_usec < 0 || regrown_usec < 0) {
			printf("violation phase 4: host %d's grant did not come back (key %s, "
			       "sum %" PRIu64 ")\n",
			       stop_host, stopped_key_present ? "present" : "gone", last_sum);
			violations++;
		} else {
			printf("figure stopped_key_gone_ms=%" PRId64 "\n", gone_usec / 1000);
			printf("figure regrown_ms=%" PRId64 "\n", regrown_usec / 1000);
		}
	}

	for (int i = 0; i < n_hosts; i++) {
		VmcgClusterAgentInfo info;

		vmcg_cluster_agent_info(hosts[i].agent, &info);
		writes += info.writes;
		conflicts += info.conflicts;
		if (info.bad_records) {
			printf("violation %s skipped %" PRIu64 " bad records\n", hosts[i].name,
			       info.bad_records);
			violations++;
		}
	}
	printf("figure ticks=%d\n", t);
	printf("figure checks=%u\n", checks);
	printf("figure writes=%" PRIu64 "\n", writes);
	printf("figure conflicts=%" PRIu64 "\n", conflicts);
	printf("figure violations=%u\n", violations);
	if (checks == 0) {
		printf("violation no check read succeeded\n");
		violations++;
	}

	for (int i = 0; i < n_hosts; i++) {
		vmcg_cluster_agent_free(hosts[i].agent);
		vmcg_cluster_lease_free(hosts[i].lease);
		vmcg_etcd_free(hosts[i].etcd);
	}
	g_free(hosts);
	vmcg_etcd_free(checker);
	g_free(group);
	g_free(prefix);
	return violations ? 1 : 0;
}
