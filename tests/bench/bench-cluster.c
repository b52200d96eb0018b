// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * What cluster-wide quotas (docs/cluster.md, issue 12) cost and how fast
 * they move (docs/performance.md, "Cluster quotas (etcd)"): simulated hosts
 * in one process, each with its own lease (vmcg_cluster_lease) and agent
 * (daemon/cluster-agent.c) of one group, against a real etcd that this
 * program starts itself (one member, a private data directory under
 * $TMPDIR, free ports on 127.0.0.1; killed and removed at exit, also on a
 * failure or a signal, and it dies with this process: PR_SET_PDEATHSIG).
 *
 * A configuration is K hosts and a round interval. Every tick, every host
 * starts a round (vmcg_cluster_agent_round(): one range read, the decision,
 * a transaction when a write is due), in a random order, all in flight at
 * once, as cluster-check does; the next tick starts an interval after the
 * last one started (at once when a tick took longer: an overrun). After
 * every round that committed, and after every tick, a separate client
 * reads the whole prefix and checks sum(grants) <= Q.
 *
 * All rounds at once is the worst case for the transactions: every host
 * reads the same revision, so the first commit refuses the others (the
 * range guard). vmcgd's hosts tick on their own timers: --stagger gives
 * each host a random phase of the interval, fixed for the run, and starts
 * its round then; a tick still ends when the last round has.
 *
 *   join    every host creates its record (host 0 wants 0.7 Q, the others
 *           Q / 4K), until 2 ticks in a row write nothing (at most 3
 *           --settle-max seconds).
 *   move    the demand moves from host 0 to host K-1 (and back, M times):
 *           the new receiver wants 0.7 Q, every other host Q / 4K. Timed
 *           from the demand change (at a random moment of the wait between
 *           two ticks: the daemon's samples change when they change) until
 *           the receiver's own agent reports (vmcg_cluster_agent_info(),
 *           when its round ends) a grant within the hysteresis of the new
 *           demand, d <= grant <= d + h; also in rounds, and from the start
 *           of the first tick that saw the new demand. Between moves, ticks
 *           run until one writes nothing and the giver has shrunk. A move
 *           not done after --settle-max seconds is given up and counted
 *           with that time (its figures are then lower bounds).
 *   steady  a window of W seconds with constant demand after settling:
 *           "fit" right after the join (the demands fit in Q), before the
 *           moves; "over" after them, every host wanting Q (each then holds
 *           its fair share Q / K), once 2 ticks in a row wrote nothing (at
 *           most --settle-max seconds). Writes should be 0.
 *   churn   every N ticks (N = 1: every tick), every host's demand is
 *           drawn anew, uniformly in [0.4, 1.2] Q / K and more than the
 *           hysteresis away from its last one (so every change calls for
 *           a new grant); a window of W seconds. The demands add up to
 *           0.8 Q on average, above Q at times with few hosts.
 *
 * Writes are the agents' committed transactions (VmcgClusterAgentInfo
 * writes), conflicts their refused ones; "etcd revisions" is how far
 * etcd's store revision moved in the window (the prefix reads' header),
 * which counts every put etcd applied, whoever made it. Round figures:
 * "tick" from the first round's start to the last round's end (all hosts),
 * "round" one agent's round. CPU: etcd's and this process's, per second
 * of the window. Percentiles are nearest-rank: p99 of 20 samples is the
 * largest.
 *
 * Parameters, relative to the host count K so that a host's slice looks
 * the same at K = 3 and K = 100: Q = 1 TiB, hysteresis h = Q / 32K (3 % of
 * an even share), floor Q / 64K, no step cap, lease TTL 10 s.
 *
 * Configurations, run one after the other on the same etcd, each on a
 * group of its own:
 *  - --hosts K (3), an etcd client per host (one vmcgd each), at every
 *    interval of --interval-ms (100,1000; vmcgd would run rounds at its
 *    tick, 1 s by default): join, steady-fit, M moves and the first churn
 *    window; at the first interval also steady-over (after the moves) and
 *    every churn window of --churn-every (1,10). --all-windows: every
 *    window everywhere.
 *  - --big-hosts N (100) at --big-interval-ms (100), one client shared by
 *    all (--big-clients own: one each; the shared one is what one etcd
 *    sees from N hosts, libsoup's 2 connections, not 2N): join,
 *    steady-fit, --big-moves moves (3), the first churn window. At 100
 *    hosts a tick takes longer than 100 ms (each round reads all 100
 *    records): the ticks then run back to back.
 * Windows of W = 8 s (--window); a move or a settle is given up after
 * 15 s (--settle-max), the join after 3 times that: 4 - 5 minutes on 2
 * CPUs, most of it the 20 moves at 1000 ms and the 100 hosts' join.
 * --quick (what `meson test --suite bench` runs): K = 3 at 100 ms only, 3
 * moves, N = 40 with 1 move, windows of 2 s, settles of at most 10 s.
 *
 *   bench-cluster [--quick] [--json] [--hosts K] [--moves M]
 *                 [--interval-ms LIST] [--big-hosts N] [--big-moves M]
 *                 [--big-interval-ms LIST] [--big-clients shared|own]
 *                 [--window S] [--churn-every LIST] [--settle-max S]
 *                 [--stagger] [--all-windows] [--seed S] [--etcd PATH]
 *
 * $BENCH_CLUSTER_DEBUG prints a line per tick (hosts 0, 1, 2 and the last).
 * --json: the JSON {"results":[...]} alone on stdout, the human lines on
 * stderr. Exit status: 0; 1 if a check fails (a prefix read saw the grants
 * above Q, or a record vmcgd would not write); 2 on bad arguments or when
 * etcd cannot be used: no etcd binary (--etcd, $VMCG_ETCD or
 * /usr/bin/etcd), it does not start, or it dies during the run (its log's
 * tail is printed).
 */
#include <errno.h>
#include <ftw.h>
#include <glib-unix.h>
#include <glib.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "cluster-agent.h"
#include "loop-sleep.h"
#include "json-util.h"

#include "bench-util.h"

#define TIB (UINT64_C(1) << 40)
/* The cluster quota: 1 TiB, about 10 GiB a host at 100 hosts. */
#define QUOTA TIB
/*
 * 10 s: a dead host's grant is back within 10 s; vmcg_cluster_lease renews
 * every third of it. Only keepalives depend on it, and they are no writes.
 */
#define TTL_S 10
/* Ticks in a row without a write (or a conflict) that count as settled. */
#define QUIET_TICKS 2
/* The most round errors printed per configuration (they are all counted). */
#define ERRORS_PRINTED 5
#define WINDOWS_MAX 8

/* ---- etcd, started here ---- */

static struct {
	pid_t pid;
	char *dir;
	char *log;
	char *endpoint;
	char *version;
} server;

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 ? -1 : 0;
}

/* Kills etcd and removes its directory; at exit, whatever the path to it. */
static void server_stop(void)
{
	if (server.pid > 0) {
		kill(server.pid, SIGKILL);
		(void)waitpid(server.pid, NULL, 0);
		server.pid = 0;
	}
	if (server.dir) {
		(void)nftw(server.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
		g_clear_pointer(&server.dir, g_free);
	}
}

static void print_log_tail(void)
{
	g_autofree char *text = NULL;
	size_t len = 0;

	if (!server.log || !g_file_get_contents(server.log, &text, &len, NULL))
		return;
	fprintf(stderr, "bench-cluster: etcd's log, last lines:\n%s\n",
		len > 3000 ? text + len - 3000 : text);
}

G_GNUC_NORETURN G_GNUC_PRINTF(1, 2) static void die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "bench-cluster: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(2);
}

/* After an error: if etcd is gone, say how, with its log, and stop. */
static void server_check(void)
{
	int status;

	if (server.pid <= 0 || waitpid(server.pid, &status, WNOHANG) != server.pid)
		return;
	server.pid = 0;
	print_log_tail();
	if (WIFSIGNALED(status))
		die("etcd died of signal %d", WTERMSIG(status));
	die("etcd exited with status %d", WEXITSTATUS(status));
}

/* etcd's CPU time (user + system), seconds; 0 when it cannot be read. */
static double server_cpu_s(void)
{
	g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int)server.pid);
	g_autofree char *text = NULL;
	unsigned long utime, stime;
	const char *p;

	if (!g_file_get_contents(path, &text, NULL, NULL) || !(p = strrchr(text, ')')))
		return 0;
	/* After the comm: state, then fields 4..13, then utime (14) and stime (15). */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) <
	    2)
		return 0;
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static gboolean on_signal(gpointer data)
{
	fprintf(stderr, "bench-cluster: signal %d: stopping etcd\n", GPOINTER_TO_INT(data));
	exit(2); /* server_stop() runs at exit */
}

/* Two free TCP ports on 127.0.0.1, held open together while picked. */
static void free_ports(unsigned *client, unsigned *peer)
{
	int fds[2];

	for (int i = 0; i < 2; i++) {
		struct sockaddr_in sa = { .sin_family = AF_INET,
					  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t len = sizeof(sa);

		fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    getsockname(fds[i], (struct sockaddr *)&sa, &len) < 0)
			die("a free port: %s", g_strerror(errno));
		*(i ? peer : client) = ntohs(sa.sin_port);
	}
	close(fds[0]);
	close(fds[1]);
}

static pid_t spawn_etcd(const char *binary, unsigned client, unsigned peer)
{
	g_autofree char *data = g_build_filename(server.dir, "data", NULL);
	g_autofree char *curl = g_strdup_printf("http://127.0.0.1:%u", client);
	g_autofree char *purl = g_strdup_printf("http://127.0.0.1:%u", peer);
	g_autofree char *cluster = g_strdup_printf("m0=%s", purl);
	/* Flag and value, a pair a line. */
	const char *const flags[][2] = {
		{ "--name", "m0" },
		{ "--data-dir", data },
		{ "--listen-client-urls", curl },
		{ "--advertise-client-urls", curl },
		{ "--listen-peer-urls", purl },
		{ "--initial-advertise-peer-urls", purl },
		{ "--initial-cluster", cluster },
		{ "--initial-cluster-state", "new" },
		{ "--logger", "zap" },
		{ "--log-outputs", "stderr" },
	};
	const char *argv[2 * G_N_ELEMENTS(flags) + 2] = { binary };
	pid_t parent = getpid(), pid;
	int log;

	for (size_t i = 0; i < G_N_ELEMENTS(flags); i++) {
		argv[1 + 2 * i] = flags[i][0];
		argv[2 + 2 * i] = flags[i][1];
	}

	log = open(server.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (log < 0)
		die("%s: %s", server.log, g_strerror(errno));
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		die("fork: %s", g_strerror(errno));
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

		/* Die with the benchmark, whatever happens to it (SIGKILL too). */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		setsid();
		if (null >= 0)
			dup2(null, 0);
		dup2(log, 1);
		dup2(log, 2);
		execv(binary, (char **)argv);
		_exit(127);
	}
	close(log);
	g_free(server.endpoint);
	server.endpoint = g_steal_pointer(&curl);
	return pid;
}

typedef struct {
	bool done;
	char *version;
	uint64_t leader;
} StatusWait;

static void on_status(const VmcgEtcdResult *r, const GError *error, gpointer data)
{
	StatusWait *w = data;

	w->done = true;
	if (!error) {
		w->leader = r->leader;
		w->version = g_strdup(r->version);
	}
}

/* Until etcd answers a status with a leader (true), exits or 20 s pass. */
static bool server_wait_ready(void)
{
	const char *endpoints[] = { server.endpoint, NULL };
	g_autoptr(VmcgEtcd) etcd = NULL;
	g_autoptr(GError) error = NULL;
	int64_t deadline = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;

	etcd = vmcg_etcd_new(endpoints, NULL, &error);
	if (!etcd)
		die("%s", error->message);
	vmcg_etcd_set_timeout(etcd, 500);
	while (g_get_monotonic_time() < deadline) {
		StatusWait w = { 0 };

		if (waitpid(server.pid, NULL, WNOHANG) == server.pid) {
			server.pid = 0;
			return false;
		}
		vmcg_etcd_status(etcd, on_status, &w);
		while (!w.done)
			g_main_context_iteration(NULL, TRUE);
		if (w.leader) {
			server.version = w.version;
			return true;
		}
		g_free(w.version);
		g_usleep(50000);
	}
	return false;
}

/* One member on free ports, in a new directory; ports taken meanwhile: 3 tries. */
static void server_start(const char *binary)
{
	g_autoptr(GError) error = NULL;

	if (access(binary, X_OK) < 0)
		die("no etcd at %s (%s): install etcd-server (scripts/install-deps.sh), or "
		    "give its path with --etcd or $VMCG_ETCD",
		    binary, g_strerror(errno));
	server.dir = g_dir_make_tmp("vmcg-bench-etcd-XXXXXX", &error);
	if (!server.dir)
		die("%s", error->message);
	server.log = g_build_filename(server.dir, "etcd.log", NULL);
	for (int attempt = 0; attempt < 3; attempt++) {
		unsigned client, peer;

		g_autofree char *data = g_build_filename(server.dir, "data", NULL);

		/* A failed try's member directory holds its old peer URL. */
		(void)nftw(data, rm_one, 16, FTW_DEPTH | FTW_PHYS);
		free_ports(&client, &peer);
		server.pid = spawn_etcd(binary, client, peer);
		if (server_wait_ready())
			return;
		if (server.pid > 0) {
			kill(server.pid, SIGKILL);
			(void)waitpid(server.pid, NULL, 0);
			server.pid = 0;
		}
	}
	print_log_tail();
	die("etcd (%s) did not start with a leader in 3 tries", binary);
}

/* ---- figures ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentiles of a sample; n 0 when there is none. */
typedef struct Dist {
	double p50, p99, max;
	unsigned n;
} Dist;

static Dist dist_of(GArray *a, double scale)
{
	Dist d = { 0 };
	double *v = (double *)a->data;

	if (!a->len)
		return d;
	qsort(v, a->len, sizeof(double), cmp_double);
	d.n = a->len;
	d.p50 = v[(a->len * 50 + 99) / 100 - 1] * scale;
	d.p99 = v[(a->len * 99 + 99) / 100 - 1] * scale;
	d.max = v[a->len - 1] * scale;
	return d;
}

static void add_sample(GArray *a, double v)
{
	g_array_append_val(a, v);
}

typedef struct Window {
	char phase[16];	       /* steady-fit, steady-over, churn-N */
	unsigned settle_ticks; /* steady: the ticks it took to get there (writes or conflicts) */
	bool unsettled;	       /* steady: still writing when settling was given up */
	/* CPU seconds per second of the window: etcd's, this process's (the agents, the checks). */
	double etcd_cpu, bench_cpu;
	double seconds;
	unsigned ticks, overruns, every;
	uint64_t writes, conflicts, errors, changes;
	int64_t revisions;
	Dist tick_ms, round_ms;
} Window;

typedef struct Config {
	unsigned hosts, interval_ms;
	bool shared;
	double setup_s;
	unsigned join_ticks; /* from no record to settled (one hot host) */
	double join_s;
	bool join_unsettled;
	Dist move_ms, move_rounds, move_tick_ms; /* move_tick_ms: from the first tick's start */
	unsigned moves_wanted;
	double settle_s;  /* the cap of a settle or a move */
	bool stagger;	  /* each host's round at its own phase of the interval */
	bool all_windows; /* steady-over and every churn; else steady-fit and the first churn */
	unsigned moves, moves_incomplete, moves_unsettled;
	GString *move_each; /* each move's rounds, in order */
	Window win[WINDOWS_MAX];
	unsigned n_win;
	unsigned checks, violations, errors_total;
	uint64_t max_sum;
} Config;

/* ---- the simulated hosts ---- */

typedef struct Cluster Cluster;

typedef struct Host {
	Cluster *c;
	char name[16];
	VmcgEtcd *etcd; /* its own, or c->shared */
	VmcgClusterLease *lease;
	VmcgClusterAgent *agent;
	unsigned lease_gen;
	uint64_t demand;
	int64_t round_start;
	uint64_t writes_before;
	uint64_t bad_records; /* as reported already */
	guint phase_ms;	      /* --stagger: when in the interval its round starts */
} Host;

struct Cluster {
	Config *cfg;
	Host *hosts;
	unsigned n;
	VmcgEtcd *shared;
	char *group, *prefix;
	VmcgGrantParams params;
	GRand *rand;
	int64_t next_tick; /* monotonic usec */
	unsigned rounds_out, checks_out;
	int64_t last_done;
	int64_t revision; /* etcd's store revision at the last check read */
	/* The window being measured, or NULL. */
	GArray *tick_usec, *round_usec;
	/* A move: the receiver, its target band, when its agent reached it. */
	int watch;
	uint64_t watch_lo, watch_hi;
	int64_t reached;
	/* Per tick. */
	uint64_t tick_writes, tick_conflicts, tick_errors;
};

static VmcgEtcd *checker; /* the separate client of the prefix reads */
static bool debug;	  /* $BENCH_CLUSTER_DEBUG: a line per tick */
static int64_t debug_t0;
static FILE *out; /* the human lines: stdout, or stderr with --json */

static void on_check(const VmcgEtcdResult *r, const GError *error, gpointer data)
{
	Cluster *c = data;
	uint64_t sum = 0;

	c->checks_out--;
	if (error) {
		server_check();
		fprintf(out, "# check read failed: %s\n", error->message);
		return;
	}
	c->cfg->checks++;
	c->revision = MAX(c->revision, r->revision);
	for (size_t i = 0; i < r->n_kvs; i++) {
		g_autoptr(GError) err = NULL;
		g_autofree char *g = NULL;
		g_autofree char *h = NULL;
		VmcgGrantRecord rec;

		if (vmcg_grant_key_parse(r->kvs[i].key, r->kvs[i].key_len, &g, &h, &err) < 0 ||
		    vmcg_grant_record_parse(r->kvs[i].value, r->kvs[i].value_len, &rec, &err) < 0) {
			fprintf(out, "violation bad record %s: %s\n", r->kvs[i].key, err->message);
			c->cfg->violations++;
			continue;
		}
		sum += rec.grant_bytes;
	}
	c->cfg->max_sum = MAX(c->cfg->max_sum, sum);
	if (sum > QUOTA) {
		fprintf(out,
			"violation rev %" PRId64 ": sum of grants %" PRIu64 " > quota %" PRIu64
			"\n",
			r->revision, sum, QUOTA);
		c->cfg->violations++;
	}
}

static void check(Cluster *c)
{
	c->checks_out++;
	vmcg_etcd_range(checker, c->prefix, true, on_check, c);
}

static void on_round(VmcgClusterAgent *a, gpointer data)
{
	Host *h = data;
	Cluster *c = h->c;
	VmcgClusterAgentInfo info;
	int64_t now = g_get_monotonic_time();

	vmcg_cluster_agent_info(a, &info);
	c->rounds_out--;
	c->last_done = now;
	if (c->round_usec)
		add_sample(c->round_usec, (double)(now - h->round_start));
	if (info.last_error) {
		if (c->cfg->errors_total++ < ERRORS_PRINTED)
			fprintf(out, "# %s: %s\n", h->name, info.last_error);
		c->tick_errors++;
	}
	if (info.bad_records > h->bad_records) {
		fprintf(out, "violation %s skipped %" PRIu64 " bad records\n", h->name,
			info.bad_records - h->bad_records);
		h->bad_records = info.bad_records;
		c->cfg->violations++;
	}
	if (c->watch >= 0 && h == &c->hosts[c->watch] && !c->reached &&
	    info.grant_bytes >= c->watch_lo && info.grant_bytes <= c->watch_hi)
		c->reached = now;
	if (info.writes > h->writes_before)
		check(c); /* the sum moved: read it */
}

static uint64_t sum_counter(Cluster *c, bool conflicts)
{
	uint64_t s = 0;

	for (unsigned i = 0; i < c->n; i++) {
		VmcgClusterAgentInfo info;

		vmcg_cluster_agent_info(c->hosts[i].agent, &info);
		s += conflicts ? info.conflicts : info.writes;
	}
	return s;
}

/* Starts @h's round now, on its lease as it is. */
static void start_round(Host *h)
{
	VmcgClusterAgentInfo info;

	if (vmcg_cluster_lease_generation(h->lease) != h->lease_gen) {
		h->lease_gen = vmcg_cluster_lease_generation(h->lease);
		vmcg_cluster_agent_set_lease(h->agent, vmcg_cluster_lease_id(h->lease));
	}
	vmcg_cluster_agent_info(h->agent, &info);
	h->writes_before = info.writes;
	h->round_start = g_get_monotonic_time();
	vmcg_cluster_agent_round(h->agent, h->demand, on_round, h);
}

static gboolean on_phase(gpointer data)
{
	start_round(data);
	return G_SOURCE_REMOVE;
}

/*
 * One tick, at c->next_tick: every host's round in random order, all in
 * flight at once (--stagger: each at its own phase of the interval, as
 * vmcgd's timers are on independent hosts); then the checks. Returns the
 * tick's start.
 */
static int64_t tick(Cluster *c)
{
	g_autofree unsigned *order = g_new(unsigned, c->n);
	uint64_t writes = sum_counter(c, false), conflicts = sum_counter(c, true);
	int64_t start;

	loop_sleep_until(c->next_tick);
	start = g_get_monotonic_time();
	/* An interval after the last tick started; at once after an overrun. */
	c->next_tick = MAX(c->next_tick + (int64_t)c->cfg->interval_ms * 1000, start);
	for (unsigned i = 0; i < c->n; i++)
		order[i] = i;
	for (unsigned i = c->n - 1; i > 0; i--) {
		unsigned j = (unsigned)g_rand_int_range(c->rand, 0, (gint32)i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	c->tick_errors = 0;
	c->rounds_out = c->n;
	for (unsigned k = 0; k < c->n; k++) {
		Host *h = &c->hosts[order[k]];

		if (c->cfg->stagger)
			g_timeout_add(h->phase_ms, on_phase, h);
		else
			start_round(h);
	}
	while (c->rounds_out)
		g_main_context_iteration(NULL, TRUE);
	if (c->tick_usec)
		add_sample(c->tick_usec, (double)(c->last_done - start));
	check(c);
	while (c->checks_out)
		g_main_context_iteration(NULL, TRUE);
	c->tick_writes = sum_counter(c, false) - writes;
	c->tick_conflicts = sum_counter(c, true) - conflicts;
	if (c->tick_errors)
		server_check();
	if (debug) {
		fprintf(out, "# tick +%.1f ms, %.1f ms: writes %" PRIu64 " conflicts %" PRIu64,
			(double)(start - debug_t0) / 1000,
			(double)(g_get_monotonic_time() - start) / 1000, c->tick_writes,
			c->tick_conflicts);
		for (unsigned i = 0; i < MIN(c->n, 4u); i++) {
			unsigned k = i < 3 ? i : c->n - 1;
			VmcgClusterAgentInfo info;

			vmcg_cluster_agent_info(c->hosts[k].agent, &info);
			fprintf(out, "; %s d %.4f g %.4f %s pool %.4f n %u", c->hosts[k].name,
				(double)c->hosts[k].demand / QUOTA,
				(double)info.grant_bytes / QUOTA,
				vmcg_grant_reason_to_string(info.reason),
				(double)info.pool_bytes / QUOTA, info.hosts);
		}
		fprintf(out, "\n");
	}
	return start;
}

static uint64_t grant_of(Cluster *c, unsigned i)
{
	VmcgClusterAgentInfo info;

	vmcg_cluster_agent_info(c->hosts[i].agent, &info);
	return info.grant_bytes;
}

/*
 * Ticks until @quiet_ticks in a row commit and conflict nothing; false if
 * that did not come within @max_s seconds. *@ret_ticks: the ticks until
 * the last one that wrote or conflicted (0: it was settled already).
 */
static bool settle(Cluster *c, double max_s, unsigned quiet_ticks, unsigned *ret_ticks)
{
	int64_t end = g_get_monotonic_time() + (int64_t)(max_s * G_USEC_PER_SEC);
	unsigned quiet = 0, t = 0, busy = 0;

	for (; quiet < quiet_ticks && g_get_monotonic_time() < end; t++) {
		tick(c);
		if (c->tick_writes || c->tick_conflicts) {
			quiet = 0;
			busy = t + 1;
		} else {
			quiet++;
		}
	}
	*ret_ticks = busy;
	return quiet >= quiet_ticks;
}

static uint64_t hot_demand(void)
{
	return QUOTA / 10 * 7;
}

static uint64_t cold_demand(const Cluster *c)
{
	return QUOTA / 4 / c->n;
}

static void set_hot(Cluster *c, unsigned hot)
{
	for (unsigned i = 0; i < c->n; i++)
		c->hosts[i].demand = i == hot ? hot_demand() : cold_demand(c);
}

/*
 * @moves slice moves, each given up after @max_s seconds: an incomplete
 * move counts with the time it was given up at (its figures are then
 * lower bounds).
 */
static void run_moves(Cluster *c, unsigned moves, double max_s)
{
	g_autoptr(GArray) ms = g_array_new(FALSE, FALSE, sizeof(double));
	g_autoptr(GArray) rounds = g_array_new(FALSE, FALSE, sizeof(double));
	g_autoptr(GArray) tick_ms = g_array_new(FALSE, FALSE, sizeof(double));
	Config *cfg = c->cfg;

	for (unsigned m = 0; m < moves; m++) {
		unsigned to = m % 2 ? 0 : c->n - 1, from = m % 2 ? c->n - 1 : 0, r = 0, ticks;
		int64_t now = g_get_monotonic_time(), change, first = 0, end, given_up = -1;

		/* The change comes at a random moment of the wait before the next tick. */
		if (c->next_tick > now)
			loop_sleep_until(now + (int64_t)g_rand_double_range(
						       c->rand, 0, (double)(c->next_tick - now)));
		set_hot(c, to);
		change = g_get_monotonic_time();
		end = change + (int64_t)(max_s * G_USEC_PER_SEC);
		c->watch = (int)to;
		c->watch_lo = hot_demand();
		c->watch_hi = hot_demand() + c->params.hysteresis_bytes;
		c->reached = 0;
		while (!c->reached && g_get_monotonic_time() < end) {
			int64_t s = tick(c);

			if (!r)
				first = s;
			r++;
		}
		c->watch = -1;
		if (!c->reached) {
			fprintf(out,
				"# K=%u move %u: host %u holds %.4f Q after %u rounds (%.1f s), "
				"wants %.4f Q: given up\n",
				c->n, m, to, (double)grant_of(c, to) / QUOTA, r,
				(double)(g_get_monotonic_time() - change) / G_USEC_PER_SEC,
				(double)hot_demand() / QUOTA);
			cfg->moves_incomplete++;
			c->reached = given_up = g_get_monotonic_time();
		}
		add_sample(ms, (double)(c->reached - change) / 1000);
		add_sample(tick_ms, (double)(c->reached - first) / 1000);
		add_sample(rounds, r);
		/* In order, for the shape of the distribution; "+": given up. */
		g_string_append_printf(cfg->move_each, "%s%u%s", m ? " " : "", r,
				       c->reached == given_up ? "+" : "");
		/* Until settled: the giver has given back, and a tick writes nothing. */
		if (!settle(c, max_s, 1, &ticks) ||
		    grant_of(c, from) > cold_demand(c) + c->params.hysteresis_bytes)
			cfg->moves_unsettled++;
	}
	cfg->moves = ms->len;
	cfg->move_ms = dist_of(ms, 1);
	cfg->move_rounds = dist_of(rounds, 1);
	cfg->move_tick_ms = dist_of(tick_ms, 1);
}

/* A demand uniform in [0.4, 1.2] Q / K, more than the hysteresis from @old. */
static uint64_t churn_demand(Cluster *c, uint64_t old)
{
	uint64_t share = QUOTA / c->n, d = old;

	for (int i = 0; i < 100 && (d > old ? d - old : old - d) <= c->params.hysteresis_bytes; i++)
		d = share / 10 * 4 + (uint64_t)(g_rand_double(c->rand) * (double)(share / 10 * 8));
	return d;
}

/*
 * A window of @seconds: @every 0 keeps the demands as they are (steady),
 * otherwise every @every ticks every host's demand changes (churn).
 */
static Window *run_window(Cluster *c, const char *phase, unsigned every, double seconds)
{
	g_autoptr(GArray) ticks = g_array_new(FALSE, FALSE, sizeof(double));
	g_autoptr(GArray) rounds = g_array_new(FALSE, FALSE, sizeof(double));
	Config *cfg = c->cfg;
	Window *w;
	uint64_t writes = sum_counter(c, false), conflicts = sum_counter(c, true);
	int64_t rev, first = 0, end = 0, interval = (int64_t)cfg->interval_ms * 1000;
	double etcd_cpu, bench_cpu;

	g_return_val_if_fail(cfg->n_win < WINDOWS_MAX, NULL);
	w = &cfg->win[cfg->n_win++];
	g_strlcpy(w->phase, phase, sizeof(w->phase));
	w->every = every;
	rev = c->revision;
	etcd_cpu = server_cpu_s();
	bench_cpu = self_cpu_s();
	c->tick_usec = ticks;
	c->round_usec = rounds;
	do {
		int64_t start;

		if (every && w->ticks % every == 0) {
			for (unsigned i = 0; i < c->n; i++)
				c->hosts[i].demand = churn_demand(c, c->hosts[i].demand);
			w->changes += c->n;
		}
		start = tick(c);
		if (!w->ticks) {
			first = start;
			end = first + (int64_t)(seconds * G_USEC_PER_SEC);
		}
		if (g_get_monotonic_time() - start > interval)
			w->overruns++;
		w->errors += c->tick_errors;
		w->ticks++;
	} while (c->next_tick < end);
	c->tick_usec = NULL;
	c->round_usec = NULL;
	/* Until the next tick would start: an overrun makes the window longer. */
	w->seconds = (double)(MAX(c->next_tick, g_get_monotonic_time()) - first) / G_USEC_PER_SEC;
	w->writes = sum_counter(c, false) - writes;
	w->conflicts = sum_counter(c, true) - conflicts;
	w->revisions = c->revision - rev;
	w->etcd_cpu = (server_cpu_s() - etcd_cpu) / w->seconds;
	w->bench_cpu = (self_cpu_s() - bench_cpu) / w->seconds;
	w->tick_ms = dist_of(ticks, 1e-3);
	w->round_ms = dist_of(rounds, 1e-3);
	return w;
}

/* ---- a configuration: K hosts at one interval ---- */

typedef struct Revokes {
	unsigned out;
} Revokes;

static void on_revoke(const VmcgEtcdResult *r, const GError *error, gpointer data)
{
	Revokes *rv = data;

	(void)r;
	(void)error; /* gone already is as good: the keys went with it */
	rv->out--;
}

static Cluster *cluster_new(Config *cfg, const char *const *endpoints, guint32 seed)
{
	g_autoptr(GError) error = NULL;
	Cluster *c = g_new0(Cluster, 1);
	int64_t t0 = g_get_monotonic_time();

	c->cfg = cfg;
	c->n = cfg->hosts;
	c->watch = -1;
	c->rand = g_rand_new_with_seed(seed);
	/* A group of its own per configuration: no record of another is read. */
	c->group = g_strdup_printf("/bench/k%u-%ums-%s%s", cfg->hosts, cfg->interval_ms,
				   cfg->shared ? "shared" : "own", cfg->stagger ? "-stagger" : "");
	if (vmcg_grant_key_prefix(c->group, &c->prefix) < 0)
		die("bad group %s", c->group);
	c->params = (VmcgGrantParams){
		.quota_bytes = QUOTA,
		/* 1/32 of an even share: a wobble below it costs no write. */
		.hysteresis_bytes = QUOTA / 32 / c->n,
		.min_grant_bytes = QUOTA / 64 / c->n,
		.step_bytes = 0,
	};
	if (cfg->shared) {
		c->shared = vmcg_etcd_new(endpoints, NULL, &error);
		if (!c->shared)
			die("%s", error->message);
	}
	c->hosts = g_new0(Host, c->n);
	for (unsigned i = 0; i < c->n; i++) {
		Host *h = &c->hosts[i];

		h->c = c;
		g_snprintf(h->name, sizeof(h->name), "h%u", i);
		/* A daemon's timer starts when the daemon does: any phase. */
		h->phase_ms =
			cfg->stagger ? (guint)g_rand_int_range(c->rand, 0, (gint32)cfg->interval_ms)
				     : 0;
		if (c->shared) {
			h->etcd = c->shared;
		} else {
			h->etcd = vmcg_etcd_new(endpoints, NULL, &error);
			if (!h->etcd)
				die("%s", error->message);
		}
		h->lease = vmcg_cluster_lease_new(h->etcd, TTL_S);
		h->agent = vmcg_cluster_agent_new(h->etcd, c->group, h->name, &c->params, 0);
		if (!h->agent)
			die("no agent for %s in %s", h->name, c->group);
	}
	/* Every lease granted before the first round (at most 10 s). */
	for (unsigned i = 0; i < c->n; i++) {
		while (!vmcg_cluster_lease_id(c->hosts[i].lease)) {
			if (g_get_monotonic_time() - t0 > 10 * G_USEC_PER_SEC)
				die("K=%u: no lease granted within 10 s", c->n);
			g_main_context_iteration(NULL, TRUE);
		}
	}
	cfg->setup_s = (double)(g_get_monotonic_time() - t0) / G_USEC_PER_SEC;
	c->next_tick = g_get_monotonic_time();
	return c;
}

/* Revokes the leases (the records go with them) and frees everything. */
static void cluster_free(Cluster *c)
{
	Revokes rv = { 0 };

	for (unsigned i = 0; i < c->n; i++) {
		int64_t id = vmcg_cluster_lease_id(c->hosts[i].lease);

		if (!id)
			continue;
		rv.out++;
		vmcg_etcd_lease_revoke(checker, id, on_revoke, &rv);
	}
	while (rv.out)
		g_main_context_iteration(NULL, TRUE);
	for (unsigned i = 0; i < c->n; i++) {
		vmcg_cluster_agent_free(c->hosts[i].agent);
		vmcg_cluster_lease_free(c->hosts[i].lease);
		if (!c->shared)
			vmcg_etcd_free(c->hosts[i].etcd);
	}
	vmcg_etcd_free(c->shared);
	g_free(c->hosts);
	g_free(c->group);
	g_free(c->prefix);
	g_rand_free(c->rand);
	g_free(c);
}

typedef struct Options {
	gboolean quick, json, all_windows, stagger; /* GOption writes gboolean (int) */
	int hosts, big_hosts, moves, big_moves;
	double window_s, settle_s;
	char *big_clients, *intervals_arg, *big_intervals_arg, *churn_arg, *etcd;
	int seed;
	unsigned intervals[8], n_intervals;
	unsigned big_intervals[8], n_big_intervals;
	unsigned churn[8], n_churn;
} Options;

static void run_config(Config *cfg, const char *const *endpoints, const Options *o)
{
	Cluster *c = cluster_new(cfg, endpoints, (guint32)o->seed);
	unsigned ticks;
	bool unsettled;
	int64_t t0;
	Window *w;

	cfg->move_each = g_string_new(NULL);

	fprintf(out, "# K=%u, %s, rounds every %u ms%s: leases in %.2f s\n", cfg->hosts,
		cfg->shared ? "one shared client" : "a client per host", cfg->interval_ms,
		cfg->stagger ? ", staggered" : "", cfg->setup_s);
	/* Joining: every host creates its record; host 0 wants 0.7 Q. */
	t0 = g_get_monotonic_time();
	set_hot(c, 0);
	/* Every host must write once, and a tick commits about one: 3 times the cap. */
	cfg->join_unsettled = !settle(c, 3 * o->settle_s, QUIET_TICKS, &cfg->join_ticks);
	cfg->join_s = (double)(g_get_monotonic_time() - t0) / G_USEC_PER_SEC;

	/*
	 * Steady, the demands fit: right after the join, which settled (a
	 * move given up at many hosts may still be writing long after).
	 */
	w = run_window(c, "steady-fit", 0, o->window_s);
	w->settle_ticks = cfg->join_ticks;
	w->unsettled = cfg->join_unsettled;

	run_moves(c, cfg->moves_wanted, o->settle_s);

	/* Steady, every host wants Q: the fair shares, Q / K each. */
	if (cfg->all_windows) {
		for (unsigned i = 0; i < c->n; i++)
			c->hosts[i].demand = QUOTA;
		unsettled = !settle(c, o->settle_s, QUIET_TICKS, &ticks);
		w = run_window(c, "steady-over", 0, o->window_s);
		w->settle_ticks = ticks;
		w->unsettled = unsettled;
	}

	for (unsigned i = 0; i < (cfg->all_windows ? o->n_churn : MIN(o->n_churn, 1u)); i++) {
		char name[16];

		if (!o->churn[i])
			continue; /* --churn-every 0: none */
		g_snprintf(name, sizeof(name), "churn-%u", o->churn[i]);
		run_window(c, name, o->churn[i], o->window_s);
	}
	cluster_free(c);
}

/* ---- output ---- */

static const char *clients_name(const Config *cfg)
{
	return cfg->shared ? "shared" : "own";
}

static double per_s(double v, double s)
{
	return s > 0 ? v / s : 0;
}

static void print_config(const Config *cfg)
{
	fprintf(out, "\nK=%u hosts, %s client%s, rounds every %u ms%s\n", cfg->hosts,
		clients_name(cfg), cfg->shared ? "" : " each", cfg->interval_ms,
		cfg->stagger ? ", each host at its own phase (tick: the whole interval)" : "");
	fprintf(out, "  join: %s%u ticks with writes, %.1f s until settled (leases: %.2f s)\n",
		cfg->join_unsettled ? ">" : "", cfg->join_ticks, cfg->join_s, cfg->setup_s);
	if (cfg->moves) {
		fprintf(out, "  %-34s %9s %9s %9s %5s\n", "slice move", "p50", "p99", "max", "n");
		fprintf(out, "  %-34s %9.1f %9.1f %9.1f %5u\n", "ms, from the demand change",
			cfg->move_ms.p50, cfg->move_ms.p99, cfg->move_ms.max, cfg->move_ms.n);
		fprintf(out, "  %-34s %9.1f %9.1f %9.1f %5u\n", "ms, from the first round's start",
			cfg->move_tick_ms.p50, cfg->move_tick_ms.p99, cfg->move_tick_ms.max,
			cfg->move_tick_ms.n);
		fprintf(out, "  %-34s %9.0f %9.0f %9.0f %5u\n", "rounds", cfg->move_rounds.p50,
			cfg->move_rounds.p99, cfg->move_rounds.max, cfg->move_rounds.n);
		fprintf(out, "  rounds of each move, in order (+: given up): %s\n",
			cfg->move_each->str);
	}
	if (cfg->moves_incomplete)
		fprintf(out,
			"  %u of %u moves given up after %.0f s: counted with that time, the "
			"figures above are lower bounds\n",
			cfg->moves_incomplete, cfg->moves, cfg->settle_s);
	if (cfg->moves_unsettled)
		fprintf(out, "  %u moves still writing (or the giver not back) %.0f s after\n",
			cfg->moves_unsettled, cfg->settle_s);
	fprintf(out, "  %-12s %6s %5s %6s %6s %6s %6s %9s %8s %8s %6s\n", "etcd writes", "settle",
		"ticks", "s", "writes", "confl", "etcd+", "w/host/s", "w/s", "confl/s", "w/chg");
	for (unsigned i = 0; i < cfg->n_win; i++) {
		const Window *w = &cfg->win[i];
		char chg[16], settle[16];

		if (w->changes)
			g_snprintf(chg, sizeof(chg), "%.2f",
				   (double)w->writes / (double)w->changes);
		else
			g_strlcpy(chg, "-", sizeof(chg));
		if (w->every)
			g_strlcpy(settle, "-", sizeof(settle));
		else
			g_snprintf(settle, sizeof(settle), "%s%u", w->unsettled ? ">" : "",
				   w->settle_ticks);
		fprintf(out,
			"  %-12s %6s %5u %6.1f %6" PRIu64 " %6" PRIu64 " %6" PRId64
			" %9.3f %8.2f %8.2f %6s\n",
			w->phase, settle, w->ticks, w->seconds, w->writes, w->conflicts,
			w->revisions, per_s((double)w->writes, w->seconds) / cfg->hosts,
			per_s((double)w->writes, w->seconds),
			per_s((double)w->conflicts, w->seconds), chg);
	}
	fprintf(out, "  %-12s %8s %8s %8s %8s %8s %8s %5s %5s %5s %5s\n", "time (ms)", "tick p50",
		"p99", "max", "round 50", "p99", "max", "over", "err", "etcd", "bench");
	for (unsigned i = 0; i < cfg->n_win; i++) {
		const Window *w = &cfg->win[i];

		fprintf(out,
			"  %-12s %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %5u %5" PRIu64
			" %4.0f%% %4.0f%%\n",
			w->phase, w->tick_ms.p50, w->tick_ms.p99, w->tick_ms.max, w->round_ms.p50,
			w->round_ms.p99, w->round_ms.max, w->overruns, w->errors, 100 * w->etcd_cpu,
			100 * w->bench_cpu);
	}
	fprintf(out, "  sum of the grants: %u prefix reads, at most %.4f Q, %s\n", cfg->checks,
		(double)cfg->max_sum / (double)QUOTA,
		cfg->violations ? "CHECKS FAILED" : "never above Q");
}

static json_object *dist_json(const Dist *d)
{
	json_object *j = json_object_new_object();

	json_object_object_add(j, "p50", json_object_new_double(d->p50));
	json_object_object_add(j, "p99", json_object_new_double(d->p99));
	json_object_object_add(j, "max", json_object_new_double(d->max));
	json_object_object_add(j, "n", json_object_new_int64(d->n));
	return j;
}

static json_object *row(const Config *cfg, const char *phase)
{
	json_object *j = json_object_new_object();

	json_object_object_add(j, "hosts", json_object_new_int64(cfg->hosts));
	json_object_object_add(j, "interval_ms", json_object_new_int64(cfg->interval_ms));
	json_object_object_add(j, "clients", json_object_new_string(clients_name(cfg)));
	json_object_object_add(j, "stagger", json_object_new_boolean(cfg->stagger));
	json_object_object_add(j, "phase", json_object_new_string(phase));
	return j;
}

static void json_config(json_object *a, const Config *cfg)
{
	json_object *j;

	j = row(cfg, "join");
	json_object_object_add(j, "ticks", json_object_new_int64(cfg->join_ticks));
	json_object_object_add(j, "seconds", json_object_new_double(cfg->join_s));
	json_object_object_add(j, "settled", json_object_new_boolean(!cfg->join_unsettled));
	json_object_object_add(j, "lease_s", json_object_new_double(cfg->setup_s));
	json_object_array_add(a, j);
	if (cfg->moves) {
		j = row(cfg, "move");
		json_object_object_add(j, "move_ms", dist_json(&cfg->move_ms));
		json_object_object_add(j, "move_from_round_ms", dist_json(&cfg->move_tick_ms));
		json_object_object_add(j, "move_rounds", dist_json(&cfg->move_rounds));
		json_object_object_add(j, "move_rounds_each",
				       json_object_new_string(cfg->move_each->str));
		json_object_object_add(j, "incomplete",
				       json_object_new_int64(cfg->moves_incomplete));
		json_object_object_add(j, "unsettled", json_object_new_int64(cfg->moves_unsettled));
		json_object_array_add(a, j);
	}
	for (unsigned i = 0; i < cfg->n_win; i++) {
		const Window *w = &cfg->win[i];

		j = row(cfg, w->phase);
		json_object_object_add(j, "churn_every", json_object_new_int64(w->every));
		json_object_object_add(j, "settle_ticks",
				       w->every ? NULL : json_object_new_int64(w->settle_ticks));
		json_object_object_add(j, "settled", json_object_new_boolean(!w->unsettled));
		json_object_object_add(j, "etcd_cpu", json_object_new_double(w->etcd_cpu));
		json_object_object_add(j, "bench_cpu", json_object_new_double(w->bench_cpu));
		json_object_object_add(j, "seconds", json_object_new_double(w->seconds));
		json_object_object_add(j, "ticks", json_object_new_int64(w->ticks));
		json_object_object_add(j, "overruns", json_object_new_int64(w->overruns));
		json_object_object_add(j, "writes", json_object_new_int64((int64_t)w->writes));
		json_object_object_add(j, "conflicts",
				       json_object_new_int64((int64_t)w->conflicts));
		json_object_object_add(j, "etcd_revisions", json_object_new_int64(w->revisions));
		json_object_object_add(j, "demand_changes",
				       json_object_new_int64((int64_t)w->changes));
		json_object_object_add(
			j, "writes_per_host_s",
			json_object_new_double(per_s((double)w->writes, w->seconds) / cfg->hosts));
		json_object_object_add(
			j, "writes_per_s",
			json_object_new_double(per_s((double)w->writes, w->seconds)));
		json_object_object_add(
			j, "conflicts_per_s",
			json_object_new_double(per_s((double)w->conflicts, w->seconds)));
		json_object_object_add(
			j, "writes_per_change",
			w->changes ? json_object_new_double((double)w->writes / (double)w->changes)
				   : NULL);
		json_object_object_add(j, "tick_ms", dist_json(&w->tick_ms));
		json_object_object_add(j, "round_ms", dist_json(&w->round_ms));
		json_object_object_add(j, "errors", json_object_new_int64((int64_t)w->errors));
		json_object_array_add(a, j);
	}
	j = row(cfg, "sum");
	json_object_object_add(j, "checks", json_object_new_int64(cfg->checks));
	json_object_object_add(j, "max_sum_over_quota",
			       json_object_new_double((double)cfg->max_sum / (double)QUOTA));
	json_object_object_add(j, "violations", json_object_new_int64(cfg->violations));
	json_object_array_add(a, j);
}

static void ratio(json_object *a, const char *name, double num, double den)
{
	json_object *j;

	if (den <= 0 || num < 0)
		return;
	fprintf(out, "  %-58s %8.2f\n", name, num / den);
	j = json_object_new_object();
	json_object_object_add(j, "phase", json_object_new_string("ratio"));
	json_object_object_add(j, "name", json_object_new_string(name));
	json_object_object_add(j, "value", json_object_new_double(num / den));
	json_object_array_add(a, j);
}

static const Window *window(const Config *cfg, const char *phase)
{
	for (unsigned i = 0; i < cfg->n_win; i++)
		if (!strcmp(cfg->win[i].phase, phase))
			return &cfg->win[i];
	return NULL;
}

/* Small K against big K at one interval; one interval against the first at one K. */
static void print_ratios(json_object *a, const Config *cfgs, unsigned n)
{
	fprintf(out, "\nratios (p50s; writes/s of churn-1)\n");
	for (unsigned i = 0; i < n; i++) {
		for (unsigned k = 0; k < n; k++) {
			const Config *s = &cfgs[i], *b = &cfgs[k];
			const Window *ss, *bs, *sc, *bc;
			char name[96];

			if (s->interval_ms != b->interval_ms || s->hosts >= b->hosts)
				continue;
			ss = window(s, "steady-fit");
			bs = window(b, "steady-fit");
			sc = window(s, "churn-1");
			bc = window(b, "churn-1");
			g_snprintf(name, sizeof(name), "K=%u/K=%u at %u ms: tick, steady", b->hosts,
				   s->hosts, s->interval_ms);
			if (ss && bs)
				ratio(a, name, bs->tick_ms.p50, ss->tick_ms.p50);
			g_snprintf(name, sizeof(name), "K=%u/K=%u at %u ms: tick, churn-1",
				   b->hosts, s->hosts, s->interval_ms);
			if (sc && bc)
				ratio(a, name, bc->tick_ms.p50, sc->tick_ms.p50);
			g_snprintf(name, sizeof(name), "K=%u/K=%u at %u ms: one round, steady",
				   b->hosts, s->hosts, s->interval_ms);
			if (ss && bs)
				ratio(a, name, bs->round_ms.p50, ss->round_ms.p50);
			g_snprintf(name, sizeof(name), "K=%u/K=%u at %u ms: move from the change",
				   b->hosts, s->hosts, s->interval_ms);
			if (s->moves && b->moves)
				ratio(a, name, b->move_ms.p50, s->move_ms.p50);
			g_snprintf(name, sizeof(name), "K=%u/K=%u at %u ms: etcd writes/s, churn-1",
				   b->hosts, s->hosts, s->interval_ms);
			if (sc && bc && sc->writes)
				ratio(a, name, per_s((double)bc->writes, bc->seconds),
				      per_s((double)sc->writes, sc->seconds));
		}
	}
	for (unsigned i = 0; i < n; i++) {
		for (unsigned k = 0; k < n; k++) {
			const Config *f = &cfgs[i], *s = &cfgs[k];
			char name[96];

			if (f->hosts != s->hosts || f->shared != s->shared ||
			    f->interval_ms >= s->interval_ms || !f->moves || !s->moves)
				continue;
			g_snprintf(name, sizeof(name),
				   "K=%u: move at %u ms/at %u ms, from the change", f->hosts,
				   s->interval_ms, f->interval_ms);
			ratio(a, name, s->move_ms.p50, f->move_ms.p50);
			g_snprintf(name, sizeof(name), "K=%u: move at %u ms/at %u ms, rounds",
				   f->hosts, s->interval_ms, f->interval_ms);
			ratio(a, name, s->move_rounds.p50, f->move_rounds.p50);
		}
	}
}

/* ---- arguments ---- */

static bool parse_list(const char *arg, unsigned *ret, unsigned *ret_n, unsigned max_n, unsigned lo,
		       unsigned hi)
{
	g_auto(GStrv) parts = g_strsplit(arg, ",", -1);

	*ret_n = 0;
	for (unsigned i = 0; parts[i]; i++) {
		guint64 v;

		if (*ret_n >= max_n ||
		    !g_ascii_string_to_unsigned(g_strstrip(parts[i]), 10, lo, hi, &v, NULL))
			return false;
		ret[(*ret_n)++] = (unsigned)v;
	}
	return *ret_n > 0;
}

static void parse_args(int argc, char **argv, Options *o)
{
	g_autoptr(GOptionContext) ctx = NULL;
	g_autoptr(GError) error = NULL;
	GOptionEntry entries[] = {
		{ "quick", 0, 0, G_OPTION_ARG_NONE, &o->quick,
		  "3 moves, 2 s windows, big K at the first interval only", NULL },
		{ "json", 0, 0, G_OPTION_ARG_NONE, &o->json,
		  "{\"results\":[...]} on stdout, the human lines on stderr", NULL },
		{ "hosts", 0, 0, G_OPTION_ARG_INT, &o->hosts, "hosts, own client each (3)", "K" },
		{ "big-hosts", 0, 0, G_OPTION_ARG_INT, &o->big_hosts,
		  "hosts of the scaling run (100; quick 40; 0: none)", "N" },
		{ "big-clients", 0, 0, G_OPTION_ARG_STRING, &o->big_clients,
		  "the scaling run's clients: shared (default) or own", "shared|own" },
		{ "moves", 0, 0, G_OPTION_ARG_INT, &o->moves, "slice moves (20; quick 3)", "M" },
		{ "big-moves", 0, 0, G_OPTION_ARG_INT, &o->big_moves,
		  "slice moves of the scaling run (3; quick 1)", "M" },
		{ "interval-ms", 0, 0, G_OPTION_ARG_STRING, &o->intervals_arg,
		  "round intervals (100,1000; quick 100)", "MS,..." },
		{ "big-interval-ms", 0, 0, G_OPTION_ARG_STRING, &o->big_intervals_arg,
		  "the scaling run's intervals (100)", "MS,..." },
		{ "settle-max", 0, 0, G_OPTION_ARG_DOUBLE, &o->settle_s,
		  "seconds before a move or a settle is given up (15; quick 10)", "S" },
		{ "window", 0, 0, G_OPTION_ARG_DOUBLE, &o->window_s,
		  "seconds of each steady and churn window (8; quick 2)", "S" },
		{ "churn-every", 0, 0, G_OPTION_ARG_STRING, &o->churn_arg,
		  "churn: demands change every N ticks (1,10; quick 1)", "N,..." },
		{ "stagger", 0, 0, G_OPTION_ARG_NONE, &o->stagger,
		  "each host's rounds at its own phase of the interval", NULL },
		{ "all-windows", 0, 0, G_OPTION_ARG_NONE, &o->all_windows,
		  "every window in every configuration (default: in the first only)", NULL },
		{ "seed", 0, 0, G_OPTION_ARG_INT, &o->seed, "random seed (1)", "S" },
		{ "etcd", 0, 0, G_OPTION_ARG_FILENAME, &o->etcd,
		  "the etcd binary ($VMCG_ETCD, /usr/bin/etcd)", "PATH" },
		{ NULL, 0, 0, 0, NULL, NULL, NULL },
	};

	ctx = g_option_context_new("- cluster quotas against a real etcd");
	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &error) || argc > 1)
		goto bad;
	if (o->moves < 0)
		o->moves = o->quick ? 3 : 20;
	if (o->big_moves < 0)
		o->big_moves = o->quick ? 1 : 3;
	if (o->window_s < 0)
		o->window_s = o->quick ? 2 : 8;
	if (o->settle_s < 0)
		o->settle_s = o->quick ? 10 : 15;
	if (o->big_hosts < 0)
		o->big_hosts = o->quick ? 40 : 100;
	if (!parse_list(o->intervals_arg ? o->intervals_arg
			: o->quick	 ? "100"
					 : "100,1000",
			o->intervals, &o->n_intervals, G_N_ELEMENTS(o->intervals), 10, 60000) ||
	    !parse_list(o->big_intervals_arg ? o->big_intervals_arg : "100", o->big_intervals,
			&o->n_big_intervals, G_N_ELEMENTS(o->big_intervals), 10, 60000) ||
	    !parse_list(o->churn_arg ? o->churn_arg
			: o->quick   ? "1"
				     : "1,10",
			o->churn, &o->n_churn, G_N_ELEMENTS(o->churn), 0, 1000))
		goto bad;
	if (o->n_churn + 2 > WINDOWS_MAX || o->moves < 0 || o->big_moves < 0 ||
	    (o->hosts != 0 && (o->hosts < 2 || o->hosts >= VMCG_GRANT_HOSTS_MAX)) ||
	    (o->big_hosts != 0 && (o->big_hosts < 2 || o->big_hosts >= VMCG_GRANT_HOSTS_MAX)) ||
	    o->window_s <= 0 || o->window_s > 3600 || o->settle_s <= 0 || o->settle_s > 3600 ||
	    (o->big_clients && strcmp(o->big_clients, "shared") && strcmp(o->big_clients, "own")))
		goto bad;
	if (!o->etcd)
		o->etcd = g_strdup(g_getenv("VMCG_ETCD") ? g_getenv("VMCG_ETCD") : "/usr/bin/etcd");
	return;
bad:
	fprintf(stderr, "bench-cluster: bad arguments%s%s (--help)\n", error ? ": " : "",
		error ? error->message : "");
	exit(2);
}

int main(int argc, char **argv)
{
	Options o = { .hosts = 3,
		      .big_hosts = -1,
		      .moves = -1,
		      .big_moves = -1,
		      .window_s = -1,
		      .settle_s = -1,
		      .seed = 1 };
	g_autoptr(json_object) root = json_object_new_object();
	g_autoptr(GError) error = NULL;
	g_autofree Config *cfgs = NULL;
	const char *endpoints[2] = { NULL, NULL };
	json_object *results = json_object_new_array();
	unsigned n = 0, violations = 0;
	char model[128];
	struct utsname uts;
	int64_t t0 = g_get_monotonic_time();

	parse_args(argc, argv, &o);
	debug = g_getenv("BENCH_CLUSTER_DEBUG") != NULL;
	debug_t0 = t0;
	out = o.json ? stderr : stdout;
	setvbuf(out, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	atexit(server_stop);
	g_unix_signal_add(SIGINT, on_signal, GINT_TO_POINTER(SIGINT));
	g_unix_signal_add(SIGTERM, on_signal, GINT_TO_POINTER(SIGTERM));
	g_unix_signal_add(SIGHUP, on_signal, GINT_TO_POINTER(SIGHUP));

	server_start(o.etcd);
	endpoints[0] = server.endpoint;
	checker = vmcg_etcd_new(endpoints, NULL, &error);
	if (!checker)
		die("%s", error->message);

	cpu_model(model, sizeof(model));
	uname(&uts);
	fprintf(out,
		"# bench-cluster: etcd %s (%s, one member, data in %s), %ld CPUs (%s), "
		"kernel %s\n",
		server.version, o.etcd, server.dir, sysconf(_SC_NPROCESSORS_ONLN), model,
		uts.release);
	fprintf(out,
		"# Q 1 TiB, hysteresis Q/32K, floor Q/64K, lease TTL %d s; moves %d, windows "
		"%.0f s, seed %d\n",
		TTL_S, o.moves, o.window_s, o.seed);

	cfgs = g_new0(Config, o.n_intervals + o.n_big_intervals);
	for (unsigned i = 0; o.hosts && i < o.n_intervals; i++)
		cfgs[n++] = (Config){ .hosts = (unsigned)o.hosts,
				      .interval_ms = o.intervals[i],
				      .moves_wanted = (unsigned)o.moves,
				      .settle_s = o.settle_s,
				      .stagger = o.stagger,
				      .all_windows = o.all_windows || i == 0 };
	for (unsigned i = 0; o.big_hosts && i < o.n_big_intervals; i++)
		cfgs[n++] =
			(Config){ .hosts = (unsigned)o.big_hosts,
				  .interval_ms = o.big_intervals[i],
				  .moves_wanted = (unsigned)o.big_moves,
				  .settle_s = o.settle_s,
				  .stagger = o.stagger,
				  .all_windows = o.all_windows,
				  .shared = !o.big_clients || !strcmp(o.big_clients, "shared") };
	for (unsigned i = 0; i < n; i++) {
		run_config(&cfgs[i], endpoints, &o);
		print_config(&cfgs[i]);
		json_config(results, &cfgs[i]);
		violations += cfgs[i].violations;
	}
	print_ratios(results, cfgs, n);
	fprintf(out, "\n# %.1f s in all; %u failed checks\n",
		(double)(g_get_monotonic_time() - t0) / G_USEC_PER_SEC, violations);

	json_object_object_add(root, "results", results);
	json_object_object_add(root, "etcd_version", json_object_new_string(server.version));
	json_object_object_add(root, "cpus", json_object_new_int64(sysconf(_SC_NPROCESSORS_ONLN)));
	json_object_object_add(root, "kernel", json_object_new_string(uts.release));
	json_object_object_add(root, "violations", json_object_new_int64(violations));
	if (o.json)
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));

	vmcg_etcd_free(checker);
	server_stop();
	g_free(server.log);
	g_free(server.endpoint);
	g_free(server.version);
	g_free(o.big_clients);
	g_free(o.intervals_arg);
	g_free(o.big_intervals_arg);
	g_free(o.churn_arg);
	g_free(o.etcd);
	for (unsigned i = 0; i < n; i++)
		g_string_free(cfgs[i].move_each, TRUE);
	return violations ? 1 : 0;
}
