// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * bench-control: what vmcgd's control loop costs per VM per tick, how much
 * memory the daemon holds with 1000 VMs, and what one sample of a 512 MiB
 * guest costs. docs/performance.md, "Control loop", says the same at length.
 *
 * 1. Control loop, synthetic fleets. For N VMs, a VmcgDaemon with a tenant
 *    tree and N VMs registered by vmcg_daemon_vm_add() on QMP paths where
 *    nothing listens; through daemon-private.h each VmcgDvm is then made to
 *    look like a READY guest with fresh balloon statistics. Between ticks,
 *    untimed, a model of the guests moves: balloons follow their targets,
 *    some guests fill their page cache, others report pages free, working
 *    sets change, statistics arrive. The charge update that sample() does
 *    after reading smaps (charge or uncharge the difference, overhead) is
 *    done by the benchmark, timed on its own: the VMs have pid 0, so the
 *    tick's sample() returns at once and the tick is measured without
 *    /proc I/O. Then vmcg_control_tick() is timed alone.
 *
 *      /                              mixed: tenants of four kinds in
 *      `-- tenants (high)             turn; every tick some are over high
 *          |-- t0 (high)              (or max) and plan over their VMs,
 *          |   |-- web  vm0..vm4      and on some ticks /tenants is over
 *          |   `-- db   vm5..vm9      high and plans over every VM. About
 *          |-- t1 (high, max)         one VM in six gets a new balloon
 *          |-- t2 (low; db low)       target per tick.
 *          |-- t3 (web high)
 *          |-- t4 (high)              lowprot: every tenant and leaf has
 *          `-- ...                    memory.low above its usage and
 *                                     /tenants is always over high: every
 *                                     tick plans over every VM, in the
 *                                     planner's second (low) pass.
 *
 *    QMP commands that the tick issues go to disconnected clients, which
 *    fail them from the main loop; the loop is run until idle after each
 *    tick, outside the timed region. So the figure includes building each
 *    command and queueing its failure, but no serialization, no socket
 *    write and no reply handling: part 4 measures those.
 *
 * 2. Memory. The RSS of the real vmcgd (--vmcgd PATH) before and after
 *    registering the mixed tree and 1000 VMs through its API, on QMP paths
 *    where nothing listens (they stay "connecting"); and the growth of this
 *    process while it builds and runs its synthetic fleet of 1000 READY VMs.
 *
 * 3. Sampling. vmcg_sample_read() (read and parse /proc/PID/smaps) on a
 *    real QEMU with a 512 MiB guest: idle (SeaBIOS, nothing to boot), and
 *    all of it resident (-mem-prealloc) in transparent huge pages and in
 *    4 KiB pages (PR_SET_THP_DISABLE before exec); the read and the parse
 *    are also timed apart, and the parse alone on the unit tests' smaps.
 *
 * 4. QMP traffic. What the fleets' disconnected clients leave out: N QMP
 *    clients connected to a peer thread that answers at once, each issuing
 *    what vmcg_dvm_poll() issues per tick, timed in vmcg_qmp_execute() and
 *    in the main loop until the replies are in; the same with disconnected
 *    clients; and an idle main-loop iteration with many pending deadlines.
 *    And the fleets of part 1 (mixed) again with their QMP clients
 *    connected to that peer: tick + charge + the main loop until every
 *    reply of the tick is handled, per VM (ns_per_vm_qmp).
 *
 * 5. The main loop with real /proc reads. Each connected fleet's VMs get
 *    the pid of a child that maps and touches 512 MiB as QEMU maps guest
 *    RAM, lose their samples (as after a daemon start) and run in the main
 *    loop for a few seconds, ticked from a timeout as vmcgd ticks: the
 *    longest iteration without its poll() (max_stall_ms), and the lateness
 *    of a probe a thread sends through a pipe every 2 ms (as an API
 *    request would come). Sampling on the sampler thread (vmcgd now), in
 *    the tick (before), and on the thread with the fleet disconnected.
 *
 * --json prints {"results":[{"vms","ns_per_vm","ns_per_vm_qmp",
 * "max_stall_ms"}]}; --json-full every figure.
 *
 * Exit status: 0 whatever the targets say (a benchmark, not a test); 1 if a
 * correctness check fails (a group's usage is not the sum of its VMs'
 * charges, a counter underflowed, a VM left READY, a sample of a
 * preallocated guest is not 512 MiB, the scenario did not plan); 2 on bad
 * arguments or setup failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <gio/gio.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib-unix.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend-qmp-priv.h"
#include "daemon-private.h"
#include "sampler.h"

#include "bench-util.h"

#define PAGE VMCG_PAGE_SIZE
#define MIB (UINT64_C(1) << 20)

/* The issue's guest: 512 MiB, the size every synthetic and real guest has. */
#define GUEST_RAM (512 * MIB)

/*
 * 10 VMs a tenant, 5 in each leaf: a small provider's tenant, and enough
 * tenants at 1000 VMs (100, 301 groups) that the tree walks are not free.
 */
#define VMS_PER_TENANT 10

/*
 * 10, 100 and 1000 VMs are the issue's; 2000 shows whether the growth stays
 * linear past the target. --quick: the issue's three.
 */
static const unsigned default_sizes[] = { 10, 100, 1000, 2000 };
#define N_SIZES_DEFAULT 4
#define N_SIZES_QUICK 3
#define MAX_SIZES 8
/* The sizes the issue's targets are stated at. */
#define TARGET_VMS 1000
#define BASE_VMS 10

/*
 * 99 measured ticks after 20 untimed ones: the warm-up lets the guests
 * reach the model's steady state (balloons near their targets, caches
 * filling), and the ticks of both scenarios take about 10 s on the machine
 * of docs/performance.md, whose speed drifts by 2x over seconds: fleets
 * take turns in blocks of 10 ticks (see run_fleets()) so that the drift
 * does not land on one. --quick: 18 after 5.
 */
#define TICKS_DEFAULT 99
#define WARMUP_DEFAULT 20
#define TICKS_QUICK 18
#define WARMUP_QUICK 5
#define BLOCK_TICKS 10
#define MAX_TICKS 10000

/* Samples of a real QEMU's smaps per variant (--quick: 20). */
#define SAMPLES_DEFAULT 200
#define SAMPLES_QUICK 20

/*
 * --quick registers 200 VMs with vmcgd, not 1000: its registration slows
 * down as VMs accumulate (every POST rewrites and fsyncs the state file),
 * and 1000 take about 5 s. The RSS target is then not judged.
 */
#define RSS_VMS_QUICK 200

/*
 * 3 s after the last registration before vmcgd's RSS is read: its 1 s
 * ticks and the first reconnect attempts (0.5 s, 1 s, 2 s backoff) have
 * run by then, so the figure includes the memory they allocate.
 */
#define SETTLE_MS_DEFAULT 3000
#define SETTLE_MS_QUICK 1000

/* ---- the targets ---- */

#define TARGET_NS_PER_VM 10000.0 /* 10 us per VM per tick at 1000 VMs */
#define TARGET_LINEAR 2.0	 /* ns/VM at 1000 within 2x of ns/VM at 10 */
#define TARGET_RSS_KIB (32 * 1024)
#define TARGET_STALL_MS 5.0  /* no main-loop stall over 5 ms ... */
#define TARGET_PROBE_MS 10.0 /* ... so the API answers within 10 ms at p99 */

typedef struct Options {
	bool quick;
	bool json;
	unsigned ticks, warmup;
	unsigned samples;
	unsigned settle_ms;
	unsigned rss_vms;
	const char *vmcgd; /* NULL: skip */
	const char *qemu;  /* NULL: skip */
	const char *smaps; /* NULL: skip */
	bool lowprot;	   /* run the second scenario */
	bool qmp;	   /* run the QMP traffic figures */
	bool verbose;	   /* let the daemon's warnings through */
	bool live;	   /* part 5: real /proc reads in the daemon's loop */
	unsigned live_ms;  /* per fleet and variant */
	bool json_full;	   /* the detailed JSON object, not the "results" one */
	unsigned sizes[MAX_SIZES];
	unsigned nr_sizes;
} Options;

static FILE *out; /* the human report: stdout, or stderr with --json */

static void G_GNUC_PRINTF(1, 2) die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bench-control: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(2);
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The @q quantile (0.5: median) of @v[0..@n), by nearest rank; sorts @v. */
static double quantile(double *v, size_t n, double q)
{
	size_t i;

	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	if (q == 0.5 && n % 2 == 0)
		return (v[n / 2 - 1] + v[n / 2]) / 2;
	i = (size_t)(q * (double)n + 0.999999);
	i = i ? i - 1 : 0;
	return v[MIN(i, n - 1)];
}

/* ---- log: the daemon's warnings about failed QMP commands ---- */

/*
 * Every balloon command of the synthetic fleet fails (nobody listens), and
 * qemu.c warns about each: thousands of lines per tick. They are counted
 * and dropped (--verbose prints them). A critical is a bug: counted, shown,
 * and it fails the run. Debug and info messages keep GLib's default
 * handler, as in vmcgd, so their cost in the tick is what vmcgd pays.
 */
static unsigned long nr_warnings, nr_criticals;

static void on_log(const gchar *domain, GLogLevelFlags level, const gchar *message,
		   gpointer userdata)
{
	const Options *o = userdata;

	if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR)) {
		nr_criticals++;
		fprintf(stderr, "bench-control: CRITICAL from %s: %s\n", domain ? domain : "vmcgd",
			message);
		return;
	}
	nr_warnings++;
	if (o->verbose)
		fprintf(stderr, "bench-control: warning from %s: %s\n", domain ? domain : "vmcgd",
			message);
}

static void log_setup(const Options *o)
{
	static const char *const domains[] = { NULL, "vmcg-qmp", "GLib", "GLib-GIO" };
	GLogLevelFlags levels = G_LOG_LEVEL_WARNING | G_LOG_LEVEL_CRITICAL | G_LOG_FLAG_FATAL |
				G_LOG_FLAG_RECURSION;

	for (size_t i = 0; i < G_N_ELEMENTS(domains); i++)
		g_log_set_handler(domains[i], levels, on_log, (gpointer)o);
}

/* ---- /proc ---- */

/* A "Key:   N kB" line of /proc/@pid/status (0: self), in KiB, or -1. */
static int64_t proc_status_kib(pid_t pid, const char *key)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	int64_t v = -1;
	FILE *f;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/status");
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			v = strtoll(line + klen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

static int64_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();

	return (int64_t)(mi.uordblks + mi.hblkhd);
}

/* ---- synthetic fleets ---- */

typedef enum Scenario {
	SC_MIXED,
	SC_LOWPROT,
	_SC_COUNT
} Scenario;

static const char *const scenario_names[_SC_COUNT] = { "mixed", "lowprot" };

/* One guest as the model sees it; ->vm is what the daemon sees. */
/*
 * Connected fleets: a guest's balloon moves as QEMU reports it, by a
 * BALLOON_CHANGE event the peer sends on that VM's connection (not a
 * direct call that would cost the main loop nothing). The main thread
 * queues (peer id, actual) and kicks the peer's eventfd; the peer knows
 * each connection's id from a "bench-hello" command the VM sent once.
 */
typedef struct PeerEvent {
	unsigned id;
	uint64_t actual;
} PeerEvent;

static GMutex peer_ev_lock;
static GArray *peer_ev_queue; /* PeerEvent, under peer_ev_lock */
static int peer_ev_fd = -1;
static unsigned peer_next_id = 1;

/*
 * What the peer answers for a VM, as a QEMU would: its balloon's size
 * (query-balloon) and the guest statistics of the model (qom-get
 * guest-stats), with a "last-update" that moves each time the model
 * reports new ones. Indexed by peer id, under peer_ev_lock; a connection
 * without an id (the QMP traffic part) gets a guest of 512 MiB.
 */
typedef struct PeerVm {
	uint64_t actual, total, available, free, cache;
	int64_t last_update;
} PeerVm;

static GArray *peer_vms; /* PeerVm by peer id, under peer_ev_lock */

static void peer_vm_update(unsigned id, const PeerVm *v)
{
	g_mutex_lock(&peer_ev_lock);
	if (!peer_vms)
		peer_vms = g_array_new(FALSE, TRUE, sizeof(PeerVm));
	if (id >= peer_vms->len)
		g_array_set_size(peer_vms, id + 1);
	g_array_index(peer_vms, PeerVm, id) = *v;
	g_mutex_unlock(&peer_ev_lock);
}

static void peer_queue_event(unsigned id, uint64_t actual)
{
	PeerEvent e = { id, actual };

	g_mutex_lock(&peer_ev_lock);
	g_array_append_val(peer_ev_queue, e);
	g_mutex_unlock(&peer_ev_lock);
}

static void peer_kick(void)
{
	uint64_t one = 1;

	if (write(peer_ev_fd, &one, sizeof(one)) != sizeof(one))
		die("cannot wake the QMP peer: %s", g_strerror(errno));
}

typedef struct SimGuest {
	VmcgDvm *vm;
	unsigned index;
	unsigned peer_id;    /* connected: its connection's id at the peer */
	uint64_t expect;     /* connected: the actual its last event reports, 0: none */
	uint64_t used;	     /* bytes the guest cannot give back */
	uint64_t cache_span; /* how far above ->used its page cache grows */
	uint64_t resident;   /* bytes of guest RAM resident on the host */
	uint64_t old_target;
	int64_t stats_seq; /* connected: the "last-update" of its last stats */
	uint32_t rng;
} SimGuest;

typedef struct Fleet {
	Scenario scenario;
	unsigned n;
	VmcgDaemon *d;
	SimGuest *guests;
	bool connected; /* QMP clients connected to the peer (part 5) */
	/* Connected: when a moving balloon is asked query-balloon. */
	VmcgQmpBalloonQuery balloon_query;
	uint64_t events; /* connected: BALLOON_CHANGE events over the measured ticks */
	unsigned ticks;	 /* run so far, warm-up included */
	unsigned measured;
	double *tick_ns, *charge_ns, *drain_ns; /* per measured tick */
	double *loop_ns, *loop_wall_ns;	  /* connected: main loop until replies, CPU and wall */
	uint64_t over_limit, cmds, moved; /* sums over the measured ticks */
	unsigned top_over;		  /* measured ticks with /tenants over high */
	int charge_errors;
	/* Growth of this process while the fleet was built and warmed up. */
	int64_t rss_kib, heap_bytes;
	/* Medians, set by fleet_summarize(). */
	double tick_med, tick_p90, charge_med, drain_med, loop_med, loop_wall_med;
	double qmp_med; /* connected: median of (tick + charge + loop) */
} Fleet;

static uint32_t rng_next(uint32_t *s)
{
	/* xorshift32: deterministic, so that every run models the same guests. */
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void put_group(VmcgDaemon *d, const char *path, const VmcgGroupSettings *s)
{
	g_autoptr(GError) error = NULL;

	if (!vmcg_daemon_group_put(d, path, s, NULL, &error))
		die("group %s: %s", path, error->message);
}

/* VMs of tenant @k in a fleet of @n, and of its web (first half) leaf. */
static unsigned tenant_vms(unsigned n, unsigned k)
{
	return MIN(VMS_PER_TENANT, n - k * VMS_PER_TENANT);
}

static unsigned web_vms(unsigned v)
{
	return (v + 1) / 2;
}

/*
 * The settings of the tree, in one place so that the synthetic fleet and
 * the real vmcgd get the same: @level 0 is /tenants (@k and @leaf unused);
 * @level 1 is tenant @k (@leaf 0), its web (@leaf 1) or its db (@leaf 2).
 *
 * mixed: a modelled guest keeps 96 to 320 MiB it cannot give back and a
 * page cache up to 192 MiB above that (guest_step()), so its usage
 * wanders around 300 MiB: limits of 256 to 320 MiB per VM are crossed
 * now and then, and /tenants at 288 MiB per VM on some ticks (top% in the
 * table). lowprot: memory.low of a full 512 MiB per VM protects every VM
 * whatever it uses, and /tenants at 192 MiB per VM is always over high.
 */
static VmcgGroupSettings tree_settings(Scenario sc, unsigned n, unsigned k, int level, int leaf)
{
	VmcgGroupSettings s = { 0 };
	unsigned v = level ? tenant_vms(n, k) : n;
	unsigned lv = leaf == 1 ? web_vms(v) : v - web_vms(v);

	if (sc == SC_LOWPROT) {
		if (level == 0) {
			s.has_high = true;
			s.high = n * 192 * MIB;
		} else if (leaf == 0) {
			s.has_low = true;
			s.low = v * GUEST_RAM;
		} else {
			s.has_low = true;
			s.low = lv * GUEST_RAM;
		}
		return s;
	}
	if (level == 0) {
		s.has_high = true;
		s.high = n * 288 * MIB;
		return s;
	}
	switch (leaf ? 4 : k % 4) {
	case 0:
		s.has_high = true;
		s.high = v * 288 * MIB;
		break;
	case 1:
		s.has_high = true;
		s.high = v * 320 * MIB;
		s.has_max = true;
		s.max = v * 384 * MIB;
		break;
	case 2:
		s.has_low = true;
		s.low = v * 192 * MIB;
		break;
	case 3:
		break;
	default: /* a leaf */
		if (k % 4 == 2 && leaf == 2) {
			s.has_low = true;
			s.low = lv * 192 * MIB;
		}
		if (k % 4 == 3 && leaf == 1) {
			s.has_high = true;
			s.high = lv * 256 * MIB;
		}
		if (k % 2 == 0 && leaf == 1) {
			s.has_overhead_in_max = true;
			s.overhead_in_max = true;
		}
		break;
	}
	return s;
}

static VmcgVmSettings vm_settings(unsigned i)
{
	/* Every fifth VM has a floor (its owner's minimum). */
	return (VmcgVmSettings){ .has_floor = i % 5 == 0, .floor = 160 * MIB };
}

static void vm_group_path(unsigned i, char *buf, size_t size)
{
	unsigned k = i / VMS_PER_TENANT, j = i % VMS_PER_TENANT;

	snprintf(buf, size, "/tenants/t%u/%s", k, j < web_vms(VMS_PER_TENANT) ? "web" : "db");
}

static void build_tree(VmcgDaemon *d, Scenario sc, unsigned n)
{
	unsigned tenants = (n + VMS_PER_TENANT - 1) / VMS_PER_TENANT;
	char path[64];
	VmcgGroupSettings s;

	s = tree_settings(sc, n, 0, 0, 0);
	put_group(d, "/tenants", &s);
	for (unsigned k = 0; k < tenants; k++) {
		snprintf(path, sizeof(path), "/tenants/t%u", k);
		s = tree_settings(sc, n, k, 1, 0);
		put_group(d, path, &s);
		snprintf(path, sizeof(path), "/tenants/t%u/web", k);
		s = tree_settings(sc, n, k, 1, 1);
		put_group(d, path, &s);
		snprintf(path, sizeof(path), "/tenants/t%u/db", k);
		s = tree_settings(sc, n, k, 1, 2);
		put_group(d, path, &s);
	}
}

/* The model's VMM overhead: 24 to 31 MiB, and 0 to 2 MiB that move. */
static uint64_t guest_overhead(const SimGuest *g, unsigned tick)
{
	return (24 + g->index % 8 + (tick + g->index) % 3) * MIB;
}

static void guest_new_working_set(SimGuest *g)
{
	g->used = (96 + rng_next(&g->rng) % 225) * MIB;
	g->cache_span = (64 + rng_next(&g->rng) % 129) * MIB;
}

/*
 * One tick of a guest, between two ticks of the daemon. The balloon
 * driver moves 64 MiB a tick toward the target (a guest that follows);
 * every 20 ticks the working set changes; 5 ticks in 15 the guest fills
 * its page cache by 8 MiB a tick; otherwise every 7th tick it reports 16
 * MiB free (free page reporting). What it uses is always resident, and
 * nothing the balloon holds is.
 */
static void guest_step(SimGuest *g, unsigned tick, bool connected)
{
	VmcgDvm *vm = g->vm;
	unsigned t = tick + g->index;
	const uint64_t speed = 64 * MIB;
	uint64_t actual = vm->actual;

	if (vm->target && vm->actual > vm->target)
		actual = vm->actual - MIN(vm->actual - vm->target, speed);
	else if (vm->target && vm->actual < vm->target)
		actual = vm->actual + MIN(vm->target - vm->actual, speed);
	if (actual != vm->actual) {
		if (connected) {
			peer_queue_event(g->peer_id, actual);
			g->expect = actual;
		} else {
			vmcg_dvm_backend_balloon(vm, actual);
		}
	}
	if (t % 20 == 0)
		guest_new_working_set(g);
	if (t / 5 % 3 == 0)
		g->resident = MIN(g->resident + 8 * MIB, g->used + g->cache_span);
	else if (t % 7 == 0 && g->resident > g->used + 16 * MIB)
		g->resident -= 16 * MIB;
	g->resident = MAX(g->resident, g->used);
	g->resident = MIN(g->resident, actual);
}

static int64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Connected: the events guest_step() queued, sent by the peer and handled
 * by the main loop (every VM's actual is what its event said). Returns the
 * main thread's CPU time for it, ns, and the number of events.
 */
static int64_t deliver_events(Fleet *f, unsigned *ret_events, int64_t *ret_wall)
{
	int64_t w0 = now_ns();

	int64_t c0 = thread_cpu_ns(), deadline = now_ns() + 20 * (int64_t)1000000000;
	unsigned events = 0;

	for (unsigned i = 0; i < f->n; i++)
		events += f->guests[i].expect != 0;
	*ret_events = events;
	*ret_wall = 0;
	if (!events)
		return 0;
	peer_kick();
	for (unsigned i = 0; i < f->n; i++) {
		SimGuest *g = &f->guests[i];

		while (g->expect && g->vm->actual != g->expect) {
			if (now_ns() > deadline)
				die("CORRECTNESS: vm%u: BALLOON_CHANGE to %" PRIu64
				    " not seen (actual %" PRIu64 ")",
				    i, g->expect, g->vm->actual);
			g_main_context_iteration(NULL, TRUE);
		}
		g->expect = 0;
	}
	*ret_wall = now_ns() - w0;
	return thread_cpu_ns() - c0;
}

/*
 * Fresh guest statistics, reported as the qmp backend reports them: the
 * guest's MemTotal is its size less 16 MiB of kernel, MemAvailable what it
 * does not use; the VM records them with its last sample.
 */
static void guest_stats(SimGuest *g, uint64_t now)
{
	VmcgDvm *vm = g->vm;
	VmcgGuestStats st;

	(void)now;
	st.total = vm->actual - 16 * MIB;
	st.available = st.total > g->used ? st.total - g->used : 0;
	st.cache = MIN(g->resident > g->used ? g->resident - g->used : 0, st.available);
	st.free = st.available - st.cache;
	vmcg_dvm_backend_stats(vm, &st);
	/* Connected: the peer answers qom-get guest-stats with the same. */
	if (g->peer_id)
		peer_vm_update(g->peer_id, &(PeerVm){ .actual = g->expect ? g->expect : vm->actual,
						      .total = st.total,
						      .available = st.available,
						      .free = st.free,
						      .cache = st.cache,
						      .last_update = ++g->stats_seq });
}

/*
 * What the sampling charge source does with a sample once it has read
 * smaps (vmcg_sampling_apply()): charge (forcibly) or uncharge the
 * difference, record the sample, set the overhead. Returns -ERANGE if an
 * uncharge underflowed the VM's counter.
 */
static int charge_update(SimGuest *g, uint64_t overhead)
{
	VmcgDvm *vm = g->vm;
	uint64_t under = atomic_load(&vmcg_vm_counter(vm->vm)->underflows);

	vmcg_sampling_apply(vm->sampling, g->resident, g->resident + overhead, TRUE, NULL);
	return atomic_load(&vmcg_vm_counter(vm->vm)->underflows) != under ? -ERANGE : 0;
}

/* Commands the QMP peer (part 4, part 5) answered: written by its thread. */
static gint peer_answered;

static void drain_main_loop(void)
{
	while (g_main_context_iteration(NULL, FALSE))
		;
}

/* Groups over high or max: the plans this tick will make. */
static unsigned count_over_limit(VmcgDaemon *d)
{
	VmcgGroup *root = vmcg_tree_root(vmcg_daemon_tree(d));
	unsigned n = 0;

	for (VmcgGroup *g = root; g; g = vmcg_group_next_descendant(g, root))
		n += vmcg_group_over_high(g) || vmcg_group_over_max(g);
	return n;
}

/*
 * Connected: the main loop until the peer has answered the @cmds commands
 * of this tick and every reply was handled (no query in flight). The
 * iterations block: the peer answers from the other CPU.
 */
static void wait_replies(Fleet *f, gint answered0, unsigned cmds)
{
	for (;;) {
		bool busy = g_atomic_int_get(&peer_answered) - answered0 < (gint)cmds;

		for (unsigned i = 0; !busy && i < f->n; i++)
			busy = vmcg_backend_qmp_in_flight(f->guests[i].vm->backend) != 0;
		if (!busy)
			return;
		g_main_context_iteration(NULL, TRUE);
	}
}

/*
 * One tick of the fleet: the guests move (untimed), the charge update
 * (timed), the daemon's tick (timed), the main loop until idle (timed
 * apart: the failures of the QMP commands the tick issued).
 */
static void fleet_tick(Fleet *f, bool record)
{
	uint64_t now = vmcg_daemon_now_usec(f->d);
	unsigned over, cmds = 0, moved = 0;
	bool top_over;
	int64_t t0, t1, t2, t3, t4, t5, c0 = 0, c1 = 0;
	unsigned long issued0;
	gint answered0 = g_atomic_int_get(&peer_answered);

	unsigned events = 0;
	int64_t events_ns, events_wall;

	if (f->connected)
		vmcg_backend_qmp_set_balloon_query(f->balloon_query);
	for (unsigned i = 0; i < f->n; i++)
		guest_step(&f->guests[i], f->ticks, f->connected);
	/* Timed apart, added to the loop below: the main loop's share. */
	events_ns = deliver_events(f, &events, &events_wall);
	for (unsigned i = 0; i < f->n; i++)
		guest_stats(&f->guests[i], now);

	t0 = now_ns();
	for (unsigned i = 0; i < f->n; i++) {
		SimGuest *g = &f->guests[i];

		if (charge_update(g, guest_overhead(g, f->ticks)) < 0)
			f->charge_errors++;
	}
	t1 = now_ns();

	for (unsigned i = 0; i < f->n; i++) {
		VmcgDvm *vm = f->guests[i].vm;

		f->guests[i].old_target = vm->target;
		/*
		 * Ticks here are microseconds apart, not an interval: ask for
		 * stats on every other tick, half the VMs each tick, as vmcgd
		 * at 1 s ticks and the default 2 s stats interval does (once
		 * per interval, at a random phase per VM).
		 */
		if ((i + f->ticks) % 2 == 0)
			vmcg_backend_qmp_stats_due(vm->backend);
		/* And the balloon's safety poll, every 10 s: a tenth a tick. */
		if ((i + f->ticks) % 10 == 0)
			vmcg_backend_qmp_balloon_due(vm->backend);
	}
	over = count_over_limit(f->d);
	top_over = vmcg_group_over_high(
		vmcg_group_first_child(vmcg_tree_root(vmcg_daemon_tree(f->d))));

	issued0 = vmcg_backend_qmp_issued();
	t2 = now_ns();
	vmcg_control_tick(f->d);
	t3 = now_ns();

	for (unsigned i = 0; i < f->n; i++) {
		VmcgDvm *vm = f->guests[i].vm;

		moved += vm->target != f->guests[i].old_target;
	}
	t4 = now_ns();
	c0 = thread_cpu_ns();
	/* The tick's polls go out in slices, one per main-loop iteration. */
	while (vmcg_control_polling(f->d))
		g_main_context_iteration(NULL, TRUE);
	cmds = (unsigned)(vmcg_backend_qmp_issued() - issued0);
	if (f->connected)
		wait_replies(f, answered0, cmds);
	drain_main_loop();
	c1 = thread_cpu_ns();
	t5 = now_ns();

	f->ticks++;
	if (!record)
		return;
	f->tick_ns[f->measured] = (double)(t3 - t2);
	f->charge_ns[f->measured] = (double)(t1 - t0);
	f->drain_ns[f->measured] = (double)(t5 - t4);
	f->loop_ns[f->measured] = (double)(c1 - c0 + events_ns);
	f->events += events;
	f->loop_wall_ns[f->measured] = (double)(t5 - t4 + events_wall);
	f->over_limit += over;
	f->cmds += cmds;
	f->moved += moved;
	f->top_over += top_over;
	f->measured++;
}

static gboolean keep_waking(gpointer userdata)
{
	(void)userdata;
	return G_SOURCE_CONTINUE;
}

static void on_hello(VmcgQmp *q, json_object *ret, const GError *error, gpointer userdata)
{
	unsigned *done = userdata;

	(void)q;
	(void)ret;
	if (error)
		die("bench-hello: %s", error->message);
	(*done)++;
}

/* Connected: each VM tells the peer its id, so that events reach it. */
static void fleet_hello(Fleet *f)
{
	unsigned done = 0;

	for (unsigned i = 0; i < f->n; i++) {
		json_object *args = json_object_new_object();

		f->guests[i].peer_id = peer_next_id++;
		peer_vm_update(f->guests[i].peer_id,
			       &(PeerVm){ .actual = f->guests[i].vm->actual,
					  .total = f->guests[i].vm->actual - 16 * MIB });
		json_object_object_add(args, "vm", json_object_new_int64(f->guests[i].peer_id));
		vmcg_qmp_execute(vmcg_backend_qmp_client(f->guests[i].vm->backend), "bench-hello",
				 args, on_hello, &done);
	}
	while (done < f->n)
		g_main_context_iteration(NULL, TRUE);
}

/*
 * Register @n VMs and make each look like a READY guest whose QMP answered
 * everything: RAM size, balloon at full size, a balloon device with stats
 * polling on, no pid (sample() then skips /proc).
 */
static Fleet *fleet_new(Scenario sc, unsigned n, const Options *o, const char *peer_path,
			VmcgQmpBalloonQuery balloon_query)
{
	Fleet *f = g_new0(Fleet, 1);
	int64_t rss0 = proc_status_kib(0, "VmRSS"), heap0 = heap_in_use();
	g_autofree char *nowhere = NULL;
	int64_t deadline;
	uint64_t now;
	bool pending;
	guint wake;

	f->scenario = sc;
	f->n = n;
	f->connected = peer_path != NULL;
	f->balloon_query = balloon_query;
	f->d = vmcg_daemon_new(NULL, NULL);
	f->guests = g_new0(SimGuest, n);
	f->tick_ns = g_new0(double, o->ticks);
	f->charge_ns = g_new0(double, o->ticks);
	f->drain_ns = g_new0(double, o->ticks);
	f->loop_ns = g_new0(double, o->ticks);
	f->loop_wall_ns = g_new0(double, o->ticks);
	build_tree(f->d, sc, n);

	/* A directory that does not exist: every connect() fails at once. */
	nowhere = g_strdup_printf("/nonexistent/bench-control-%d", (int)getpid());
	for (unsigned i = 0; i < n; i++) {
		g_autoptr(GError) error = NULL;
		char name[32], qmp[128], group[64];
		VmcgVmSettings s = vm_settings(i);
		SimGuest *g = &f->guests[i];

		snprintf(name, sizeof(name), "vm%u", i);
		if (peer_path)
			snprintf(qmp, sizeof(qmp), "%s", peer_path);
		else
			snprintf(qmp, sizeof(qmp), "%s/vm%u.sock", nowhere, i);
		vm_group_path(i, group, sizeof(group));
		if (!vmcg_daemon_vm_add(f->d, name, "qmp", qmp, group, &s, &error))
			die("vm %s: %s", name, error->message);
		g->vm = vmcg_daemon_vm_lookup(f->d, name);
		g->index = i;
		g->rng = 0x9e3779b9u ^ (i * 2654435761u + 1);
		/* No reconnects: a failed attempt would find the VM READY and drop it. */
		vmcg_qmp_set_reconnect(vmcg_backend_qmp_client(g->vm->backend), false, 0, 0);
	}
	/*
	 * Disconnected: let the first (and only) connection attempts fail,
	 * ENOENT, at once. Connected: until every client is READY and the
	 * backend's first queries are answered.
	 */
	deadline = now_ns() + 120 * (int64_t)1000000000;
	wake = g_timeout_add(100, keep_waking, NULL);
	do {
		if (peer_path)
			g_main_context_iteration(NULL, TRUE);
		drain_main_loop();
		pending = false;
		for (unsigned i = 0; i < n; i++) {
			VmcgDvm *vm = f->guests[i].vm;
			VmcgQmp *q = vmcg_backend_qmp_client(vm->backend);

			if (!peer_path) {
				pending |= vmcg_qmp_get_state(q) != VMCG_QMP_STATE_DISCONNECTED;
				continue;
			}
			/*
			 * Each READY reads /proc/net/unix on the main loop, so
			 * hundreds at once hold it up past other clients'
			 * greeting deadline: those try again.
			 */
			if (vm->state == VMCG_DVM_CONNECTING &&
			    vmcg_qmp_get_state(q) == VMCG_QMP_STATE_DISCONNECTED)
				vmcg_qmp_connect(q);
			pending |= vm->state != VMCG_DVM_READY ||
				   vmcg_backend_qmp_in_flight(vm->backend);
		}
		if (pending && now_ns() > deadline)
			die("the QMP clients of %u VMs did not %s within 60 s", n,
			    peer_path ? "connect" : "fail to connect");
	} while (pending);
	g_source_remove(wake);

	now = vmcg_daemon_now_usec(f->d);
	for (unsigned i = 0; i < n; i++) {
		SimGuest *g = &f->guests[i];
		VmcgDvm *vm = g->vm;

		if (!peer_path && vm->state != VMCG_DVM_CONNECTING)
			die("vm%u: state %d after a failed connect, want connecting", i,
			    (int)vm->state);
		vmcg_backend_qmp_fake_ready(vm->backend, GUEST_RAM, "/machine/peripheral/balloon0");
		vmcg_dvm_backend_balloon(vm, GUEST_RAM);
		guest_new_working_set(g);
		g->resident = MIN(g->used + g->cache_span / 2, GUEST_RAM);
		/* Charged first: vm.c takes no stats before the VM's first sample. */
		if (charge_update(g, guest_overhead(g, 0)) < 0)
			f->charge_errors++;
		guest_stats(g, now);
	}
	if (peer_path)
		fleet_hello(f);
	for (unsigned t = 0; t < o->warmup; t++)
		fleet_tick(f, false);
	malloc_trim(0);
	f->rss_kib = proc_status_kib(0, "VmRSS") - rss0;
	f->heap_bytes = heap_in_use() - heap0;
	return f;
}

static void fleet_free(Fleet *f)
{
	if (!f)
		return;
	vmcg_daemon_free(f->d);
	drain_main_loop();
	g_free(f->guests);
	g_free(f->tick_ns);
	g_free(f->charge_ns);
	g_free(f->drain_ns);
	g_free(f->loop_ns);
	g_free(f->loop_wall_ns);
	g_free(f);
}

static void fleet_summarize(Fleet *f)
{
	if (f->connected) {
		g_autofree double *sum = g_new0(double, f->measured);

		/* Per tick, then the median: the parts' medians need not add up. */
		for (unsigned i = 0; i < f->measured; i++)
			sum[i] = f->tick_ns[i] + f->charge_ns[i] + f->loop_ns[i];
		f->qmp_med = quantile(sum, f->measured, 0.5);
		f->loop_med = quantile(f->loop_ns, f->measured, 0.5);
		f->loop_wall_med = quantile(f->loop_wall_ns, f->measured, 0.5);
	}
	f->tick_p90 = quantile(f->tick_ns, f->measured, 0.9);
	f->tick_med = quantile(f->tick_ns, f->measured, 0.5);
	f->charge_med = quantile(f->charge_ns, f->measured, 0.5);
	f->drain_med = quantile(f->drain_ns, f->measured, 0.5);
}

/*
 * After the run: every group holds exactly the charges of the VMs in its
 * subtree, every VM's charge is its last sample plus its counted overhead,
 * nothing underflowed, every VM is still READY, every target is within
 * [min_guest, RAM], and the scenario did what it is for (plans, moves).
 */
static bool fleet_check(Fleet *f)
{
	const char *sc = scenario_names[f->scenario];
	VmcgGroup *root = vmcg_tree_root(vmcg_daemon_tree(f->d));
	const VmcgPolicy *p = vmcg_daemon_policy(f->d);
	bool ok = true;

	for (VmcgGroup *g = root; g; g = vmcg_group_next_descendant(g, root)) {
		uint64_t sum = 0;

		for (VmcgGroup *pos = g; pos; pos = vmcg_group_next_descendant(pos, g))
			for (VmcgVm *vm = vmcg_group_first_vm(pos); vm;
			     vm = vmcg_vm_next_in_group(vm))
				sum += vmcg_vm_current(vm);
		if (sum != vmcg_group_current(g)) {
			fprintf(stderr,
				"bench-control: CORRECTNESS: %s/%u: group %s holds %" PRIu64
				" pages, its VMs %" PRIu64 "\n",
				sc, f->n, vmcg_group_path(g), vmcg_group_current(g), sum);
			ok = false;
		}
		if (atomic_load(&vmcg_group_counter(g)->underflows)) {
			fprintf(stderr, "bench-control: CORRECTNESS: %s/%u: group %s underflowed\n",
				sc, f->n, vmcg_group_path(g));
			ok = false;
		}
	}
	for (unsigned i = 0; i < f->n; i++) {
		VmcgDvm *vm = f->guests[i].vm;
		uint64_t want = vmcg_sampling_charged(vm->sampling) / PAGE;

		if (vmcg_group_overhead_counted(vmcg_vm_group(vm->vm)))
			want += vmcg_sampling_overhead(vm->sampling) / PAGE;
		if (vmcg_vm_current(vm->vm) != want ||
		    atomic_load(&vmcg_vm_counter(vm->vm)->underflows)) {
			fprintf(stderr,
				"bench-control: CORRECTNESS: %s/%u: vm%u charged %" PRIu64
				" pages, want %" PRIu64 " (underflows %" PRIu64 ")\n",
				sc, f->n, i, vmcg_vm_current(vm->vm), want,
				(uint64_t)atomic_load(&vmcg_vm_counter(vm->vm)->underflows));
			ok = false;
		}
		if (vm->state != VMCG_DVM_READY) {
			fprintf(stderr, "bench-control: CORRECTNESS: %s/%u: vm%u left READY (%d)\n",
				sc, f->n, i, (int)vm->state);
			ok = false;
		}
		if (vm->target && (vm->target < p->min_guest || vm->target > vm->ram_size)) {
			fprintf(stderr,
				"bench-control: CORRECTNESS: %s/%u: vm%u target %" PRIu64
				" outside [%" PRIu64 ", %" PRIu64 "]\n",
				sc, f->n, i, vm->target, p->min_guest, vm->ram_size);
			ok = false;
		}
	}
	if (f->charge_errors) {
		fprintf(stderr, "bench-control: CORRECTNESS: %s/%u: %d uncharges refused\n", sc,
			f->n, f->charge_errors);
		ok = false;
	}
	if (!f->over_limit || !f->moved) {
		fprintf(stderr,
			"bench-control: SCENARIO: %s/%u: %" PRIu64
			" group-ticks over a limit, %" PRIu64
			" balloon targets moved: the planner was not exercised\n",
			sc, f->n, f->over_limit, f->moved);
		ok = false;
	}
	return ok;
}

/* ---- 5. the main loop with real /proc reads and connected QMP ---- */

/*
 * A connected fleet whose VMs all have a real pid: a child of this
 * benchmark that maps 512 MiB of anonymous memory as QEMU maps guest RAM
 * (MADV_DONTFORK, so smaps shows "dc") and touches all of it in 4 KiB
 * pages, the dearest smaps walk of part 3. The daemon's own loop runs it
 * for LIVE_MS: a tick every LIVE_INTERVAL_MS (vmcgd's default interval)
 * from a timeout, the QMP replies and the sample results as they come.
 * Every VM starts with no sample, as after a daemon start, so the first
 * tick asks for a full (smaps) sample of every VM. Measured: the longest
 * main-loop iteration without its poll() (a stall: a tick, a burst of
 * replies or of results), and how late a probe is handled: a thread
 * writes its clock to a pipe every PROBE_USEC, as a client would send an
 * API request, and the main loop reads it. Twice per fleet: sampling on
 * the sampler thread (vmcgd now) and in the tick (before).
 */
#define LIVE_MS 3000
#define LIVE_MS_QUICK 1200
#define LIVE_INTERVAL_MS 1000
#define PROBE_USEC 2000

enum {
	LIVE_TICK,
	LIVE_THREAD,
	LIVE_THREAD_DISC
};
static const char *const live_names[] = { "in tick", "thread", "thread, QMP disconnected" };

typedef struct LiveResult {
	bool ran;
	unsigned ticks;
	double max_stall_ns, max_tick_ns, max_other_ns;
	double max_tick_cpu_ns; /* the dearest tick's main-thread CPU time */
	/* The same in main-thread CPU time: the work, without preemption. */
	double max_stall_cpu_ns, max_other_cpu_ns;
	double probe_p50_ns, probe_p99_ns, probe_max_ns;
	unsigned probes;
	unsigned measured_in_run; /* VMs whose first sample was applied within the run */
	unsigned measured;	  /* ... once the reads in flight came back */
	unsigned gone;		  /* VMs whose QMP connection was lost meanwhile */
} LiveResult;

/*
 * The guest child: its own image (this binary again, "--guest-child"),
 * spawned with posix_spawn() (CLONE_VM | CLONE_VFORK), never forked from
 * the bench. A fork() after the fleets are built shared their heap copy
 * on write: every page the first ticks wrote took a fault and a TLB
 * shootdown across CPUs, a millisecond and more of the first tick's
 * stall that vmcgd, which forks nothing, never pays.
 */
static G_NORETURN void guest_child_main(void)
{
	void *m;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1) /* the bench died before that */
		_exit(1);
	prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
	m = mmap(NULL, GUEST_RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED || madvise(m, GUEST_RAM, MADV_DONTFORK) < 0)
		_exit(1);
	memset(m, 1, GUEST_RAM);
	if (write(STDOUT_FILENO, "x", 1) != 1)
		_exit(1);
	for (;;)
		pause();
}

static pid_t guest_child_start(void)
{
	char *argv[] = { (char *)"bench-control", (char *)"--guest-child", NULL };
	posix_spawn_file_actions_t fa;
	int p[2], err;
	char c;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		die("pipe: %s", g_strerror(errno));
	fflush(NULL);
	posix_spawn_file_actions_init(&fa);
	/* dup2() onto stdout clears FD_CLOEXEC there. */
	posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
	err = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (err)
		die("spawn the guest child: %s", g_strerror(err));
	close(p[1]);
	if (read(p[0], &c, 1) != 1)
		die("the guest child did not map its memory");
	close(p[0]);
	return pid;
}

typedef struct Live {
	VmcgDaemon *d;
	unsigned ticks;
	int64_t tick_in_iteration, max_tick, max_tick_cpu, tick_cpu_in_iteration;
	GArray *lat; /* double, ns */
	int probe_rd, probe_wr;
	gint stop;
} Live;

static int64_t poll_ns;

static gint timed_poll(GPollFD *fds, guint nfds, gint timeout)
{
	int64_t t = now_ns();
	gint r = g_poll(fds, nfds, timeout);

	poll_ns += now_ns() - t;
	return r;
}

static void live_samples_in(gpointer userdata)
{
	vmcg_control_samples_in(userdata);
}

static gboolean live_tick(gpointer userdata)
{
	Live *l = userdata;
	int64_t t = now_ns(), c = thread_cpu_ns();

	vmcg_control_tick(l->d);
	c = thread_cpu_ns() - c;
	l->max_tick_cpu = MAX(l->max_tick_cpu, c);
	l->tick_cpu_in_iteration += c;
	t = now_ns() - t;
	l->tick_in_iteration += t;
	l->max_tick = MAX(l->max_tick, t);
	l->ticks++;
	return G_SOURCE_CONTINUE;
}

static gboolean live_first_tick(gpointer userdata)
{
	live_tick(userdata);
	return G_SOURCE_REMOVE;
}

static gboolean on_probe(gint fd, GIOCondition cond, gpointer userdata)
{
	Live *l = userdata;
	int64_t stamp[64];
	ssize_t r;

	(void)cond;
	while ((r = read(fd, stamp, sizeof(stamp))) > 0) {
		int64_t now = now_ns();

		for (size_t i = 0; i < (size_t)r / sizeof(stamp[0]); i++) {
			double late = (double)(now - stamp[i]);

			g_array_append_val(l->lat, late);
		}
	}
	return G_SOURCE_CONTINUE;
}

static void *probe_main(void *arg)
{
	Live *l = arg;

	while (!g_atomic_int_get(&l->stop)) {
		int64_t t = now_ns();

		if (write(l->probe_wr, &t, sizeof(t)) != sizeof(t))
			break;
		g_usleep(PROBE_USEC);
	}
	return NULL;
}

static unsigned fleet_measured(const Fleet *f)
{
	unsigned n = 0;

	for (unsigned i = 0; i < f->n; i++)
		n += vmcg_sampling_resident(f->guests[i].vm->sampling) == GUEST_RAM;
	return n;
}

static void live_run(Fleet *f, pid_t child, bool threaded, unsigned ms, LiveResult *res)
{
	Live l = { .d = f->d, .lat = g_array_new(FALSE, FALSE, sizeof(double)) };
	int64_t end, deadline;
	guint tick_id, first_id, probe_id;
	pthread_t probe;
	int p[2];

	memset(res, 0, sizeof(*res));
	/* Reads of the other variant still out: let them come back first. */
	deadline = now_ns() + 60 * (int64_t)1000000000;
	while (vmcg_sampling_in_flight() && now_ns() < deadline)
		g_main_context_iteration(NULL, TRUE);
	vmcg_sampling_set_threaded(threaded);
	for (unsigned i = 0; i < f->n; i++) {
		VmcgDvm *vm = f->guests[i].vm;

		/* No sample yet, as after a daemon start: a full one first. */
		vmcg_sampling_drop(vm->sampling);
		vmcg_dvm_backend_ready(vm, child);
		vmcg_dvm_backend_ram(vm, GUEST_RAM);
		vmcg_dvm_backend_balloon(vm, GUEST_RAM);
	}
	drain_main_loop();
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		die("pipe: %s", g_strerror(errno));
	l.probe_rd = p[0];
	l.probe_wr = p[1];
	probe_id = g_unix_fd_add(l.probe_rd, G_IO_IN, on_probe, &l);
	g_main_context_set_poll_func(NULL, timed_poll);
	/* As vmcgd does (vmcg_daemon_start()): decisions run once the tick's samples are in. */
	vmcg_sampling_set_drained_fn(live_samples_in, l.d);
	tick_id = g_timeout_add(LIVE_INTERVAL_MS, live_tick, &l);
	first_id = g_idle_add(live_first_tick, &l);
	if (pthread_create(&probe, NULL, probe_main, &l) != 0)
		die("probe thread: %s", g_strerror(errno));
	end = now_ns() + (int64_t)ms * 1000000;
	while (now_ns() < end) {
		int64_t t = now_ns(), c = thread_cpu_ns(), busy;

		poll_ns = 0;
		l.tick_in_iteration = 0;
		l.tick_cpu_in_iteration = 0;
		g_main_context_iteration(NULL, TRUE);
		busy = now_ns() - t - poll_ns;
		c = thread_cpu_ns() - c;
		res->max_stall_cpu_ns = MAX(res->max_stall_cpu_ns, (double)c);
		res->max_other_cpu_ns =
			MAX(res->max_other_cpu_ns, (double)(c - l.tick_cpu_in_iteration));
		res->max_stall_ns = MAX(res->max_stall_ns, (double)busy);
		res->max_other_ns = MAX(res->max_other_ns, (double)(busy - l.tick_in_iteration));
	}
	g_atomic_int_set(&l.stop, 1);
	pthread_join(probe, NULL);
	/* Probes sent while the last iteration ran: as late as they are now. */
	(void)on_probe(l.probe_rd, G_IO_IN, &l);
	vmcg_sampling_set_drained_fn(NULL, NULL);
	g_source_remove(tick_id);
	if (l.ticks == 0)
		g_source_remove(first_id);
	g_source_remove(probe_id);
	g_main_context_set_poll_func(NULL, NULL);
	close(l.probe_rd);
	close(l.probe_wr);
	res->measured_in_run = fleet_measured(f);
	while (vmcg_sampling_in_flight() && now_ns() < deadline)
		g_main_context_iteration(NULL, TRUE);
	drain_main_loop();
	res->measured = fleet_measured(f);
	for (unsigned i = 0; i < f->n; i++)
		res->gone += f->guests[i].vm->state != VMCG_DVM_READY;
	vmcg_sampling_set_threaded(TRUE);

	res->ticks = l.ticks;
	res->max_tick_ns = (double)l.max_tick;
	res->max_tick_cpu_ns = (double)l.max_tick_cpu;
	res->probes = l.lat->len;
	res->probe_p50_ns = quantile((double *)l.lat->data, l.lat->len, 0.5);
	res->probe_p99_ns = quantile((double *)l.lat->data, l.lat->len, 0.99);
	res->probe_max_ns = quantile((double *)l.lat->data, l.lat->len, 1.0);
	res->ran = true;
	g_array_free(l.lat, TRUE);
}

/* ---- the real vmcgd ---- */

typedef struct VmcgdResult {
	bool ran;
	char why[256]; /* if not */
	unsigned vms, groups;
	int64_t rss_start_kib, rss_end_kib, hwm_kib;
	double register_s;
	/* Mean time of one POST /v1/vms among the first and the last 100. */
	double post_first_ms, post_last_ms;
	bool connecting; /* a VM checked after the settle time is "connecting" */
} VmcgdResult;

static void child_setup(const char *log_path, bool no_thp)
{
	int fd;

	/* Die with the benchmark, whatever happens to it. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (no_thp)
		prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		dup2(fd, 0);
	fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
}

static pid_t spawn(char *const argv[], const char *log_path, bool no_thp)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		die("fork: %s", g_strerror(errno));
	if (pid == 0) {
		child_setup(log_path, no_thp);
		execvp(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], g_strerror(errno));
		_exit(127);
	}
	return pid;
}

/* SIGTERM, up to 5 s, then SIGKILL. */
static void stop_child(pid_t pid, bool term)
{
	if (term)
		kill(pid, SIGTERM);
	for (int i = 0; i < 500; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		g_usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 ? -1 : 0;
}

static void rm_rf(const char *dir)
{
	if (dir)
		(void)nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int unix_connect(const char *path, unsigned timeout_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = timeout_ms % 1000 * 1000 };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

static bool write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t w = write(fd, buf, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		buf += w;
		len -= (size_t)w;
	}
	return true;
}

/*
 * One HTTP/1.1 request on a new connection (vmcgd serves one request per
 * connection and closes it). Returns the status, or -errno; *@ret_body, if
 * given, gets the response body.
 */
static int http(const char *sock, const char *method, const char *path, const char *body,
		char **ret_body)
{
	g_autofree char *req = NULL;
	g_autoptr(GString) resp = g_string_new(NULL);
	char buf[4096];
	const char *hdr_end;
	int fd, status;

	fd = unix_connect(sock, 10000);
	if (fd < 0)
		return fd;
	req = g_strdup_printf("%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
			      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
			      method, path, body ? strlen(body) : 0, body ? body : "");
	if (!write_all(fd, req, strlen(req))) {
		close(fd);
		return -EIO;
	}
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			close(fd);
			return -errno;
		}
		if (r == 0)
			break;
		g_string_append_len(resp, buf, r);
	}
	close(fd);
	if (sscanf(resp->str, "HTTP/1.%*d %d", &status) != 1)
		return -EPROTO;
	if (ret_body) {
		hdr_end = strstr(resp->str, "\r\n\r\n");
		*ret_body = g_strdup(hdr_end ? hdr_end + 4 : "");
	}
	return status;
}

static void json_size(GString *s, const char *key, bool has, uint64_t v)
{
	if (has)
		g_string_append_printf(s, "%s\"%s\":%" PRIu64, s->len > 1 ? "," : "", key, v);
}

static char *settings_json(const VmcgGroupSettings *gs)
{
	GString *s = g_string_new("{");

	json_size(s, "memory.min", gs->has_min, gs->min);
	json_size(s, "memory.low", gs->has_low, gs->low);
	json_size(s, "memory.high", gs->has_high, gs->high);
	json_size(s, "memory.max", gs->has_max, gs->max);
	if (gs->has_overhead_in_max)
		g_string_append_printf(s, "%s\"overhead-in-max\":%s", s->len > 1 ? "," : "",
				       gs->overhead_in_max ? "true" : "false");
	g_string_append_c(s, '}');
	return g_string_free(s, FALSE);
}

static bool vmcgd_put_group(const char *sock, const char *path, const VmcgGroupSettings *gs,
			    VmcgdResult *res)
{
	g_autofree char *url = g_strconcat("/v1/groups", path, NULL);
	g_autofree char *body = settings_json(gs);
	g_autofree char *reply = NULL;
	int st = http(sock, "PUT", url, body, &reply);

	if (st == 201 || st == 200)
		return true;
	snprintf(res->why, sizeof(res->why), "PUT %s: %d %s", url, st, reply ? reply : "");
	return false;
}

static void vmcgd_run(const Options *o, VmcgdResult *res)
{
	g_autofree char *tmp = NULL, *sock = NULL, *state = NULL, *log = NULL;
	unsigned n = o->rss_vms, tenants = (n + VMS_PER_TENANT - 1) / VMS_PER_TENANT;
	char path[64];
	int64_t t0;
	pid_t pid;
	int st = -1;

	memset(res, 0, sizeof(*res));
	if (!o->vmcgd) {
		snprintf(res->why, sizeof(res->why), "--no-vmcgd");
		return;
	}
	if (access(o->vmcgd, X_OK) < 0) {
		snprintf(res->why, sizeof(res->why), "%s: %s (build it, or --vmcgd PATH)", o->vmcgd,
			 g_strerror(errno));
		return;
	}
	if (geteuid() != 0) {
		snprintf(res->why, sizeof(res->why),
			 "not root: vmcgd refuses API writes from other users");
		return;
	}
	tmp = g_dir_make_tmp("bench-control-XXXXXX", NULL);
	if (!tmp)
		die("cannot make a temporary directory");
	sock = g_build_filename(tmp, "api.sock", NULL);
	state = g_build_filename(tmp, "state.json", NULL);
	log = g_build_filename(tmp, "vmcgd.log", NULL);
	{
		char *argv[] = { (char *)o->vmcgd, "--socket", sock, "--state", state,
				 "--interval",	   "1s",       NULL };

		pid = spawn(argv, log, false);
	}
	for (int i = 0; i < 500 && st != 200; i++) {
		st = http(sock, "GET", "/v1/groups/", NULL, NULL);
		if (st != 200)
			g_usleep(10000);
	}
	if (st != 200) {
		snprintf(res->why, sizeof(res->why), "vmcgd did not answer (GET: %d); see %s", st,
			 log);
		stop_child(pid, true);
		return;
	}
	g_usleep(300000);
	res->rss_start_kib = proc_status_kib(pid, "VmRSS");

	t0 = now_ns();
	{
		VmcgGroupSettings s = tree_settings(SC_MIXED, n, 0, 0, 0);

		if (!vmcgd_put_group(sock, "/tenants", &s, res))
			goto out;
		res->groups++;
	}
	for (unsigned k = 0; k < tenants; k++) {
		static const char *const leaves[] = { "", "/web", "/db" };

		for (int leaf = 0; leaf < 3; leaf++) {
			VmcgGroupSettings s = tree_settings(SC_MIXED, n, k, 1, leaf);

			snprintf(path, sizeof(path), "/tenants/t%u%s", k, leaves[leaf]);
			if (!vmcgd_put_group(sock, path, &s, res))
				goto out;
			res->groups++;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		g_autofree char *body = NULL, *reply = NULL;
		VmcgVmSettings vs = vm_settings(i);
		int64_t tp = now_ns();

		vm_group_path(i, path, sizeof(path));
		body = g_strdup_printf("{\"name\":\"vm%u\",\"qmp\":\"%s/qmp/vm%u.sock\","
				       "\"group\":\"%s\"%s}",
				       i, tmp, i, path, vs.has_floor ? ",\"floor\":\"160M\"" : "");
		st = http(sock, "POST", "/v1/vms", body, &reply);
		if (st != 201) {
			snprintf(res->why, sizeof(res->why), "POST /v1/vms vm%u: %d %s", i, st,
				 reply ? reply : "");
			goto out;
		}
		tp = now_ns() - tp;
		if (i < 100)
			res->post_first_ms += (double)tp / 1e6 / MIN(n, 100);
		if (i + 100 >= n)
			res->post_last_ms += (double)tp / 1e6 / MIN(n, 100);
		res->vms++;
	}
	res->register_s = (double)(now_ns() - t0) / 1e9;
	g_usleep(o->settle_ms * 1000);
	res->rss_end_kib = proc_status_kib(pid, "VmRSS");
	res->hwm_kib = proc_status_kib(pid, "VmHWM");
	{
		g_autofree char *reply = NULL;

		st = http(sock, "GET", "/v1/vms/vm0", NULL, &reply);
		res->connecting = st == 200 && strstr(reply, "\"connecting\"");
	}
	res->ran = res->rss_end_kib > 0;
	if (!res->ran)
		snprintf(res->why, sizeof(res->why), "vmcgd exited; see its log");
out:
	stop_child(pid, true);
	if (res->ran)
		rm_rf(tmp);
	else
		fprintf(stderr, "bench-control: vmcgd: %s (log kept in %s)\n", res->why, tmp);
}

/* ---- sampling a real QEMU ---- */

typedef struct SampleVariant {
	const char *name;
	bool prealloc;
	bool no_thp;
} SampleVariant;

static const SampleVariant sample_variants[] = {
	{ "idle", false, false },
	{ "prealloc-thp", true, false },
	{ "prealloc-4k", true, true },
};
#define N_VARIANTS G_N_ELEMENTS(sample_variants)

typedef struct SampleResult {
	const SampleVariant *v;
	bool ran;
	char why[256];
	unsigned n, vmas;
	uint64_t resident, total_rss;
	size_t smaps_bytes;
	double read_med, read_p99; /* vmcg_sample_read(), ns */
	double file_med;	   /* g_file_get_contents() of smaps alone */
	double parse_med;	   /* vmcg_sample_parse_smaps() of a copy */
	double status_med;	   /* /proc/PID/status (RssAnon): an O(1) read */
} SampleResult;

/* Read one line (QMP messages end with CRLF); false on timeout or EOF. */
static bool qmp_line(int fd, GString *line)
{
	char c;

	g_string_truncate(line, 0);
	for (;;) {
		ssize_t r = read(fd, &c, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		if (c == '\n')
			return true;
		g_string_append_c(line, c);
	}
}

/* Send @cmd and wait for its "return" (events in between are skipped). */
static bool qmp_command(int fd, const char *cmd)
{
	g_autoptr(GString) line = g_string_new(NULL);

	if (!write_all(fd, cmd, strlen(cmd)))
		return false;
	while (qmp_line(fd, line)) {
		if (strstr(line->str, "\"return\""))
			return true;
		if (strstr(line->str, "\"error\""))
			return false;
	}
	return false;
}

static void sample_run(const Options *o, const SampleVariant *v, SampleResult *res)
{
	g_autofree char *tmp = NULL, *qmp = NULL, *log = NULL, *qmp_arg = NULL, *smaps = NULL;
	g_autofree char *text = NULL, *bin = NULL;
	g_autofree double *read_ns = NULL, *file_ns = NULL, *parse_ns = NULL, *status_ns = NULL;
	g_autofree char *status = NULL, *stext = NULL;
	g_autoptr(GString) line = g_string_new(NULL);
	g_autoptr(GError) error = NULL;
	unsigned reps = o->samples;
	VmcgSample s;
	gsize len = 0;
	int fd = -1;
	pid_t pid;

	memset(res, 0, sizeof(*res));
	res->v = v;
	bin = g_find_program_in_path(o->qemu);
	if (!bin) {
		snprintf(res->why, sizeof(res->why), "%s not found (--qemu PATH)", o->qemu);
		return;
	}
	tmp = g_dir_make_tmp("bench-control-XXXXXX", NULL);
	if (!tmp)
		die("cannot make a temporary directory");
	qmp = g_build_filename(tmp, "qmp.sock", NULL);
	log = g_build_filename(tmp, "qemu.log", NULL);
	qmp_arg = g_strdup_printf("unix:%s,server=on,wait=off", qmp);
	{
		/*
		 * The issue's guest: TCG (no KVM needed), 512 MiB, no devices
		 * and nothing to boot, so SeaBIOS runs and waits.
		 */
		char *argv[] = {
			bin,
			"-machine",
			"pc",
			"-accel",
			"tcg",
			"-m",
			"512",
			"-nodefaults",
			"-no-user-config",
			"-display",
			"none",
			"-qmp",
			qmp_arg,
			v->prealloc ? "-mem-prealloc" : NULL,
			NULL,
		};

		pid = spawn(argv, log, v->no_thp);
	}
	/* Up to 20 s to listen; the greeting comes once -mem-prealloc is done. */
	for (int i = 0; i < 2000 && fd < 0; i++) {
		fd = unix_connect(qmp, 20000);
		if (fd < 0) {
			if (waitpid(pid, NULL, WNOHANG) == pid) {
				snprintf(res->why, sizeof(res->why), "QEMU exited; see %s", log);
				return;
			}
			g_usleep(10000);
		}
	}
	if (fd < 0 || !qmp_line(fd, line) || !strstr(line->str, "\"QMP\"") ||
	    !qmp_command(fd, "{\"execute\":\"qmp_capabilities\"}\r\n") ||
	    !qmp_command(fd, "{\"execute\":\"query-status\"}\r\n")) {
		snprintf(res->why, sizeof(res->why), "no QMP from QEMU; see %s", log);
		if (fd >= 0)
			close(fd);
		stop_child(pid, true);
		return;
	}
	/* SeaBIOS gets a moment to run (it touches some of the guest's RAM). */
	g_usleep(v->prealloc ? 100000 : 500000);

	if (!vmcg_sample_read(pid, GUEST_RAM, &s, &error)) {
		snprintf(res->why, sizeof(res->why), "CORRECTNESS: sample: %s", error->message);
		goto out;
	}
	if (s.guest_size != GUEST_RAM || (v->prealloc && s.guest_resident != GUEST_RAM)) {
		snprintf(res->why, sizeof(res->why),
			 "CORRECTNESS: guest RAM of %" PRIu64 " bytes, %" PRIu64 " resident",
			 s.guest_size, s.guest_resident);
		goto out;
	}
	res->resident = s.guest_resident;
	res->total_rss = s.total_rss;

	read_ns = g_new0(double, reps);
	file_ns = g_new0(double, reps);
	parse_ns = g_new0(double, reps);
	status_ns = g_new0(double, reps);
	smaps = g_strdup_printf("/proc/%d/smaps", (int)pid);
	status = g_strdup_printf("/proc/%d/status", (int)pid);
	/* Interleaved, so that a slow phase of the host hits all three alike. */
	for (unsigned i = 0; i < reps; i++) {
		int64_t t0, t1;

		t0 = now_ns();
		if (!vmcg_sample_read(pid, GUEST_RAM, &s, &error)) {
			snprintf(res->why, sizeof(res->why), "CORRECTNESS: sample: %s",
				 error->message);
			goto out;
		}
		t1 = now_ns();
		read_ns[i] = (double)(t1 - t0);

		g_clear_pointer(&text, g_free);
		t0 = now_ns();
		if (!g_file_get_contents(smaps, &text, &len, &error)) {
			snprintf(res->why, sizeof(res->why), "%s: %s", smaps, error->message);
			goto out;
		}
		t1 = now_ns();
		file_ns[i] = (double)(t1 - t0);

		t0 = now_ns();
		if (!vmcg_sample_parse_smaps(text, len, GUEST_RAM, &s, &error)) {
			snprintf(res->why, sizeof(res->why), "CORRECTNESS: parse: %s",
				 error->message);
			goto out;
		}
		t1 = now_ns();
		parse_ns[i] = (double)(t1 - t0);

		t0 = now_ns();
		if (!g_file_get_contents(status, &stext, NULL, &error)) {
			snprintf(res->why, sizeof(res->why), "%s: %s", status, error->message);
			goto out;
		}
		t1 = now_ns();
		status_ns[i] = (double)(t1 - t0);
		g_clear_pointer(&stext, g_free);
	}
	res->smaps_bytes = len;
	for (const char *p = text; (p = strstr(p, "\nVmFlags:")); p++)
		res->vmas++;
	res->n = reps;
	res->read_p99 = quantile(read_ns, reps, 0.99);
	res->read_med = quantile(read_ns, reps, 0.5);
	res->file_med = quantile(file_ns, reps, 0.5);
	res->parse_med = quantile(parse_ns, reps, 0.5);
	res->status_med = quantile(status_ns, reps, 0.5);
	res->ran = true;
out:
	if (!qmp_command(fd, "{\"execute\":\"quit\"}\r\n"))
		kill(pid, SIGTERM);
	close(fd);
	stop_child(pid, false);
	if (res->ran)
		rm_rf(tmp);
	else
		fprintf(stderr, "bench-control: QEMU %s: %s (files kept in %s)\n", v->name,
			res->why, tmp);
}

typedef struct FixtureResult {
	bool ran;
	char why[256];
	unsigned vmas;
	size_t bytes;
	double parse_med;
} FixtureResult;

/* The parse alone, on the unit tests' smaps of a QEMU 7.2 pc with 256 MiB. */
static void fixture_run(const Options *o, FixtureResult *res)
{
	g_autofree char *text = NULL;
	g_autofree double *ns = NULL;
	g_autoptr(GError) error = NULL;
	unsigned reps = o->quick ? 100 : 1000;
	VmcgSample s;
	gsize len;

	memset(res, 0, sizeof(*res));
	if (!o->smaps) {
		snprintf(res->why, sizeof(res->why), "--no-smaps");
		return;
	}
	if (!g_file_get_contents(o->smaps, &text, &len, &error)) {
		snprintf(res->why, sizeof(res->why), "%s (--smaps FILE)", error->message);
		return;
	}
	ns = g_new0(double, reps);
	for (unsigned i = 0; i < reps; i++) {
		int64_t t0 = now_ns();

		if (!vmcg_sample_parse_smaps(text, len, 256 * MIB, &s, &error)) {
			snprintf(res->why, sizeof(res->why), "CORRECTNESS: parse: %s",
				 error->message);
			return;
		}
		ns[i] = (double)(now_ns() - t0);
	}
	for (const char *p = text; (p = strstr(p, "\nVmFlags:")); p++)
		res->vmas++;
	res->bytes = len;
	res->parse_med = quantile(ns, reps, 0.5);
	res->ran = true;
}

/* ---- QMP: what the disconnected clients leave out ---- */

/*
 * A tick's QMP traffic, without the rest of the tick: N clients, each
 * issuing a query-balloon and a qom-get (what vmcg_dvm_poll() issues), once
 * connected to a peer that answers at once and once disconnected, as the
 * fleets' clients are; N = 100, 1000 and 2000 to see how it grows
 * (--quick: 1000). 5 rounds (--quick: 2), median. Then the cost of one
 * main-loop iteration with nothing to do but 0, 1000 or 3000 pending
 * command deadlines (1000 VMs with none, one or three commands in flight).
 */
static const unsigned qmp_clients[] = { 100, 1000, 2000 };
#define N_QMP G_N_ELEMENTS(qmp_clients)
#define QMP_ROUNDS 5
#define QMP_ROUNDS_QUICK 2
static const unsigned wake_timers[] = { 0, 1000, 3000 };
#define N_WAKE G_N_ELEMENTS(wake_timers)
#define WAKE_REPS 200

typedef struct QmpResult {
	bool ran;
	char why[256];
	unsigned clients;
	/* Per client per round (2 commands), main thread CPU time, ns. */
	double issue_conn_ns, loop_conn_ns, issue_disc_ns, loop_disc_ns;
	double iterations_conn; /* main-loop iterations until every reply was in */
	/*
	 * The floor: the same two commands per client on plain sockets to the
	 * same peer, written with write(2), replies read with epoll_wait(2) and
	 * read(2): no GLib, no JSON, no bookkeeping. What the kernel alone
	 * charges for the traffic on this machine.
	 */
	double issue_raw_ns, loop_raw_ns;
	int64_t heap_per_client; /* bytes, connected, before the first command */
} QmpResult;

/*
 * The peer: a QMP server on its own thread (the other CPU, so that the main
 * thread's CPU time is the clients' alone) that greets every connection and
 * answers every command at once with the command's id, as QEMU would
 * (peer_answer(): the balloon's size, the guest's statistics, or an empty
 * return).
 */
typedef struct Peer {
	int lfd;
	int stop_fd;
	pthread_t thread;
	GString **in; /* by fd */
	unsigned nr_in;
	GHashTable *fd_of_id; /* a VM's bench-hello id -> its connection's fd */
	unsigned *id_of_fd;   /* and back; 0: a connection without an id */
} Peer;

static const char peer_greeting[] = "{\"QMP\":{\"version\":{\"qemu\":{\"micro\":0,\"minor\":2,"
				    "\"major\":7},\"package\":\"\"},\"capabilities\":[]}}\r\n";

/*
 * The start of the answer to @line (up to the "id" member), as QEMU 7.2
 * words it: query-balloon's size, qom-get guest-stats's statistics
 * (balloon_stats_get_all(): "last-update", then "stats" in QEMU's order),
 * an empty return for the rest (balloon, qom-set, bench-hello).
 */
static void peer_answer(GString *reply, unsigned vid, const char *line)
{
	PeerVm v = { .actual = 512 * MIB,
		     .total = 496 * MIB,
		     .available = 300 * MIB,
		     .free = 100 * MIB,
		     .cache = 200 * MIB };

	if (!strstr(line, "\"query-balloon\"") && !strstr(line, "\"guest-stats\"")) {
		g_string_append(reply, "{\"return\":{}");
		return;
	}
	g_mutex_lock(&peer_ev_lock);
	if (vid && peer_vms && vid < peer_vms->len)
		v = g_array_index(peer_vms, PeerVm, vid);
	g_mutex_unlock(&peer_ev_lock);
	if (strstr(line, "\"query-balloon\"")) {
		g_string_append_printf(reply, "{\"return\":{\"actual\":%" PRIu64 "}", v.actual);
		return;
	}
	g_string_append_printf(reply,
			       "{\"return\":{\"last-update\":%" PRId64
			       ",\"stats\":{\"stat-swap-out\":0,\"stat-available-memory\":%" PRIu64
			       ",\"stat-free-memory\":%" PRIu64
			       ",\"stat-minor-faults\":1052731,\"stat-major-faults\":1011"
			       ",\"stat-total-memory\":%" PRIu64 ",\"stat-swap-in\":0"
			       ",\"stat-disk-caches\":%" PRIu64
			       ",\"stat-htlb-pgalloc\":0,\"stat-htlb-pgfail\":0}}",
			       1733400000 + v.last_update, v.available, v.free, v.total, v.cache);
}

static void peer_input(Peer *p, int fd, int ep)
{
	g_autoptr(GString) reply = g_string_new(NULL);
	GString *in = p->in[fd];
	char buf[65536], *line, *nl;
	ssize_t r = read(fd, buf, sizeof(buf));
	unsigned answered = 0;

	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (r <= 0) {
		epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
		close(fd);
		g_string_free(in, TRUE);
		p->in[fd] = NULL;
		p->id_of_fd[fd] = 0;
		return;
	}
	g_string_append_len(in, buf, r);
	line = in->str;
	while ((nl = strchr(line, '\n'))) {
		const char *id = strstr(line, "\"id\":\"");

		*nl = '\0';
		if (strstr(line, "\"execute\":\"bench-hello\"")) {
			const char *vm = strstr(line, "\"vm\":");

			if (vm) {
				unsigned vid = (unsigned)strtoul(vm + 5, NULL, 10);

				g_hash_table_insert(p->fd_of_id, GUINT_TO_POINTER(vid),
						    GINT_TO_POINTER(fd));
				p->id_of_fd[fd] = vid;
			}
		}
		if (id && id < nl) {
			id += 6;
			peer_answer(reply, p->id_of_fd[fd], line);
			g_string_append(reply, ",\"id\":\"");
			g_string_append_len(reply, id, (gssize)strcspn(id, "\""));
			g_string_append(reply, "\"}\r\n");
			answered++;
		}
		line = nl + 1;
	}
	g_string_erase(in, 0, line - in->str);
	if (reply->len)
		(void)write_all(fd, reply->str, reply->len);
	g_atomic_int_add(&peer_answered, (gint)answered);
}

/* What the main thread queued: one BALLOON_CHANGE each, as QEMU words it. */
static void peer_send_events(Peer *p)
{
	g_autoptr(GArray) q = NULL;
	uint64_t n;

	if (read(peer_ev_fd, &n, sizeof(n)) != sizeof(n))
		return;
	g_mutex_lock(&peer_ev_lock);
	q = peer_ev_queue;
	peer_ev_queue = g_array_new(FALSE, FALSE, sizeof(PeerEvent));
	g_mutex_unlock(&peer_ev_lock);
	for (guint i = 0; i < q->len; i++) {
		const PeerEvent *e = &g_array_index(q, PeerEvent, i);
		gpointer fd;
		char text[256];
		int len;

		if (!g_hash_table_lookup_extended(p->fd_of_id, GUINT_TO_POINTER(e->id), NULL, &fd))
			continue;
		len = snprintf(text, sizeof(text),
			       "{\"timestamp\":{\"seconds\":1733400000,\"microseconds\":1},"
			       "\"event\":\"BALLOON_CHANGE\",\"data\":{\"actual\":%" PRIu64
			       "}}\r\n",
			       e->actual);
		(void)write_all(GPOINTER_TO_INT(fd), text, (size_t)len);
		g_mutex_lock(&peer_ev_lock);
		if (peer_vms && e->id < peer_vms->len)
			g_array_index(peer_vms, PeerVm, e->id).actual = e->actual;
		g_mutex_unlock(&peer_ev_lock);
	}
}

static void *peer_main(void *arg)
{
	Peer *p = arg;
	struct epoll_event ev = { .events = EPOLLIN }, evs[64];
	int ep = epoll_create1(EPOLL_CLOEXEC);

	ev.data.fd = p->lfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, p->lfd, &ev);
	ev.data.fd = p->stop_fd;
	epoll_ctl(ep, EPOLL_CTL_ADD, p->stop_fd, &ev);
	ev.data.fd = peer_ev_fd;
	epoll_ctl(ep, EPOLL_CTL_ADD, peer_ev_fd, &ev);
	for (;;) {
		int n = epoll_wait(ep, evs, G_N_ELEMENTS(evs), -1);

		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == p->stop_fd)
				goto out;
			if (fd == peer_ev_fd) {
				peer_send_events(p);
				continue;
			}
			if (fd != p->lfd) {
				peer_input(p, fd, ep);
				continue;
			}
			while ((fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
				if ((unsigned)fd >= p->nr_in ||
				    !write_all(fd, peer_greeting, strlen(peer_greeting))) {
					close(fd);
					continue;
				}
				p->in[fd] = g_string_new(NULL);
				ev.data.fd = fd;
				epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
			}
		}
	}
out:
	for (unsigned fd = 0; fd < p->nr_in; fd++)
		if (p->in[fd]) {
			close((int)fd);
			g_string_free(p->in[fd], TRUE);
			p->in[fd] = NULL;
		}
	close(ep);
	return NULL;
}

static bool peer_start(Peer *p, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct rlimit rl;

	memset(p, 0, sizeof(*p));
	if (strlen(path) >= sizeof(sa.sun_path))
		return false;
	strcpy(sa.sun_path, path);
	p->nr_in = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (unsigned)MIN(rl.rlim_cur, 1 << 20) : 1024;
	p->in = g_new0(GString *, p->nr_in);
	p->fd_of_id = g_hash_table_new(g_direct_hash, g_direct_equal);
	p->id_of_fd = g_new0(unsigned, p->nr_in);
	if (peer_ev_fd < 0) {
		peer_ev_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		peer_ev_queue = g_array_new(FALSE, FALSE, sizeof(PeerEvent));
	}
	p->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	p->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (p->lfd < 0 || p->stop_fd < 0 || bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(p->lfd, 4096) < 0 || pthread_create(&p->thread, NULL, peer_main, p) != 0)
		die("QMP peer on %s: %s", path, g_strerror(errno));
	return true;
}

static void peer_stop(Peer *p)
{
	uint64_t one = 1;

	if (write(p->stop_fd, &one, sizeof(one)) != sizeof(one))
		die("cannot stop the QMP peer");
	pthread_join(p->thread, NULL);
	close(p->lfd);
	close(p->stop_fd);
	g_free(p->in);
	g_free(p->id_of_fd);
	g_hash_table_destroy(p->fd_of_id);
}

typedef struct Batch {
	unsigned done, failed, ready;
} Batch;

static void on_reply(VmcgQmp *q, json_object *ret, const GError *error, gpointer userdata)
{
	Batch *b = userdata;

	(void)q;
	(void)ret;
	b->done++;
	b->failed += error != NULL;
}

static void on_peer_state(VmcgQmp *q, VmcgQmpState state, const GError *error, gpointer userdata)
{
	Batch *b = userdata;

	(void)q;
	(void)error;
	b->ready += state == VMCG_QMP_STATE_READY;
}

/*
 * One round: each client issues what vmcg_dvm_poll() issues (timed: what
 * the tick pays), then the main loop runs until every callback has run
 * (timed: what the main loop pays). Main thread CPU time per client.
 * False if a command to the peer failed.
 */
static bool qmp_round(VmcgQmp **qs, unsigned n, bool connected, double *ret_issue, double *ret_loop,
		      double *ret_iterations)
{
	Batch b = { 0 };
	unsigned iterations = 0;
	int64_t t0, t1, t2;

	t0 = thread_cpu_ns();
	for (unsigned i = 0; i < n; i++) {
		json_object *args = json_object_new_object();

		vmcg_qmp_execute(qs[i], "query-balloon", NULL, on_reply, &b);
		json_object_object_add(args, "path",
				       json_object_new_string("/machine/peripheral/balloon0"));
		json_object_object_add(args, "property", json_object_new_string("guest-stats"));
		vmcg_qmp_execute(qs[i], "qom-get", args, on_reply, &b);
	}
	t1 = thread_cpu_ns();
	while (b.done < 2 * n) {
		g_main_context_iteration(NULL, TRUE);
		iterations++;
	}
	t2 = thread_cpu_ns();
	*ret_issue = (double)(t1 - t0) / n;
	*ret_loop = (double)(t2 - t1) / n;
	*ret_iterations = iterations;
	return !connected || !b.failed;
}

static bool qmp_rounds(VmcgQmp **qs, unsigned n, unsigned rounds, bool connected, double *ret_issue,
		       double *ret_loop, double *ret_iterations)
{
	double issue[QMP_ROUNDS], loop[QMP_ROUNDS], it[QMP_ROUNDS];

	for (unsigned r = 0; r < rounds; r++)
		if (!qmp_round(qs, n, connected, &issue[r], &loop[r], &it[r]))
			return false;
	*ret_issue = quantile(issue, rounds, 0.5);
	*ret_loop = quantile(loop, rounds, 0.5);
	*ret_iterations = quantile(it, rounds, 0.5);
	return true;
}

/* One main-loop iteration with nothing to do and @n deadlines pending. */
static double wake_cost(unsigned n)
{
	GSource **timers = g_new0(GSource *, n ? n : 1);
	double t[WAKE_REPS];

	for (unsigned i = 0; i < n; i++) {
		/* As a command's deadline: 10 s, never reached here. */
		timers[i] = g_timeout_source_new(10000);
		g_source_attach(timers[i], NULL);
	}
	for (unsigned i = 0; i < WAKE_REPS; i++) {
		int64_t t0 = now_ns();

		g_main_context_iteration(NULL, FALSE);
		t[i] = (double)(now_ns() - t0);
	}
	for (unsigned i = 0; i < n; i++) {
		g_source_destroy(timers[i]);
		g_source_unref(timers[i]);
	}
	g_free(timers);
	drain_main_loop();
	return quantile(t, WAKE_REPS, 0.5);
}

/*
 * The floor of a round (see QmpResult): @fds are plain sockets connected to
 * the peer, past its greeting, each in @ep. Returns false if the peer did
 * not answer every command within 20 s.
 */
static bool raw_round(const int *fds, unsigned n, int ep, double *ret_issue, double *ret_loop)
{
	static const char cmd1[] = "{\"execute\":\"query-balloon\",\"id\":\"r1\"}\r\n";
	static const char cmd2[] =
		"{\"execute\":\"qom-get\",\"arguments\":{\"path\":\"/machine/peripheral/"
		"balloon0\",\"property\":\"guest-stats\"},\"id\":\"r2\"}\r\n";
	struct epoll_event evs[64];
	unsigned replies = 0;
	int64_t t0, t1, t2, deadline = now_ns() + 20 * (int64_t)1000000000;
	char buf[4096];

	t0 = thread_cpu_ns();
	for (unsigned i = 0; i < n; i++)
		if (!write_all(fds[i], cmd1, sizeof(cmd1) - 1) ||
		    !write_all(fds[i], cmd2, sizeof(cmd2) - 1))
			return false;
	t1 = thread_cpu_ns();
	while (replies < 2 * n) {
		int k = epoll_wait(ep, evs, G_N_ELEMENTS(evs), 1000);

		for (int e = 0; e < k; e++) {
			ssize_t r = read(evs[e].data.fd, buf, sizeof(buf));

			for (ssize_t j = 0; j < r; j++)
				replies += buf[j] == '\n';
		}
		if (now_ns() > deadline)
			return false;
	}
	t2 = thread_cpu_ns();
	*ret_issue = (double)(t1 - t0) / n;
	*ret_loop = (double)(t2 - t1) / n;
	return true;
}

/* The floor's rounds, median; false with @why set if it could not run. */
static bool raw_run(const char *path, unsigned n, unsigned rounds, QmpResult *res)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	g_autofree int *fds = g_new(int, n);
	double issue[QMP_ROUNDS], loop[QMP_ROUNDS];
	unsigned opened = 0;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	bool ok = ep >= 0;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	for (; ok && opened < n; opened++) {
		struct epoll_event ev = { .events = EPOLLIN };
		char greeting[sizeof(peer_greeting)];
		size_t got = 0;

		fds[opened] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fds[opened] < 0) {
			ok = false;
			break;
		}
		ok = connect(fds[opened], (struct sockaddr *)&sa, sizeof(sa)) == 0;
		/* Blocking: the greeting, then the socket goes into the epoll set. */
		while (ok && got < strlen(peer_greeting)) {
			ssize_t r = read(fds[opened], greeting + got, strlen(peer_greeting) - got);

			ok = r > 0;
			got += ok ? (size_t)r : 0;
		}
		ev.data.fd = fds[opened];
		ok = ok && epoll_ctl(ep, EPOLL_CTL_ADD, fds[opened], &ev) == 0;
	}
	for (unsigned r = 0; ok && r < rounds; r++)
		ok = raw_round(fds, n, ep, &issue[r], &loop[r]);
	if (ok) {
		res->issue_raw_ns = quantile(issue, rounds, 0.5);
		res->loop_raw_ns = quantile(loop, rounds, 0.5);
	} else {
		snprintf(res->why, sizeof(res->why), "plain sockets to the peer: %s",
			 g_strerror(errno));
	}
	for (unsigned i = 0; i < opened; i++)
		close(fds[i]);
	if (ep >= 0)
		close(ep);
	return ok;
}

static void qmp_run(const Options *o, unsigned n, QmpResult *res)
{
	g_autofree char *tmp = NULL, *path = NULL;
	g_autofree VmcgQmp **qs = g_new0(VmcgQmp *, n);
	unsigned rounds = o->quick ? QMP_ROUNDS_QUICK : QMP_ROUNDS;
	Batch b = { 0 };
	int64_t deadline;
	Peer peer;
	bool ok = true;
	int64_t heap0;
	double it;

	memset(res, 0, sizeof(*res));
	res->clients = n;
	tmp = g_dir_make_tmp("bench-control-XXXXXX", NULL);
	if (!tmp)
		die("cannot make a temporary directory");
	path = g_build_filename(tmp, "qmp.sock", NULL);
	peer_start(&peer, path);
	heap0 = heap_in_use();
	for (unsigned i = 0; i < n; i++) {
		qs[i] = vmcg_qmp_new(path, NULL);
		vmcg_qmp_set_state_callback(qs[i], on_peer_state, &b);
		vmcg_qmp_connect(qs[i]);
	}
	deadline = now_ns() + 20 * (int64_t)1000000000;
	while (b.ready < n && now_ns() < deadline)
		g_main_context_iteration(NULL, TRUE);
	/* The peer's per-connection GString is in it too: about 100 bytes. */
	res->heap_per_client = (heap_in_use() - heap0) / n;
	if (b.ready < n) {
		snprintf(res->why, sizeof(res->why),
			 "%u of %u QMP clients got READY (file descriptors?)", b.ready, n);
		ok = false;
	} else if (!qmp_rounds(qs, n, rounds, true, &res->issue_conn_ns, &res->loop_conn_ns,
			       &res->iterations_conn)) {
		snprintf(res->why, sizeof(res->why), "CORRECTNESS: a command to the peer failed");
		ok = false;
	}
	for (unsigned i = 0; i < n; i++)
		vmcg_qmp_free(qs[i]);
	drain_main_loop();
	if (ok)
		ok = raw_run(path, n, rounds, res);
	peer_stop(&peer);
	rm_rf(tmp);
	if (!ok)
		return;

	for (unsigned i = 0; i < n; i++)
		qs[i] = vmcg_qmp_new("/nonexistent/bench-control/qmp.sock", NULL);
	qmp_rounds(qs, n, rounds, false, &res->issue_disc_ns, &res->loop_disc_ns, &it);
	for (unsigned i = 0; i < n; i++)
		vmcg_qmp_free(qs[i]);
	drain_main_loop();
	res->ran = true;
}

/* ---- output ---- */

typedef struct Results {
	Fleet *fleets[_SC_COUNT][MAX_SIZES];
	Fleet *qfleets[MAX_SIZES]; /* mixed, QMP connected to the peer */
	Fleet *qfleets_old
		[MAX_SIZES]; /* the same, query-balloon every tick while moving (before) */
	/* [LIVE_THREAD], [LIVE_TICK]: connected fleet; [LIVE_THREAD_DISC]: disconnected one */
	LiveResult live[MAX_SIZES][3];
	Peer peer;	/* answers the connected fleets */
	char *peer_tmp; /* its directory, NULL if none */
	unsigned nr_sizes;
	VmcgdResult vmcgd;
	SampleResult samples[N_VARIANTS];
	FixtureResult fixture;
	QmpResult qmp[N_QMP];
	double wake_ns[N_WAKE];
	double wall_s;
} Results;

/* Scenario @sc's fleet @i; then the connected ones, vmcgd's way and the alternative. */
static Fleet *fleet_at(const Results *r, int sc, unsigned i)
{
	if (sc < _SC_COUNT)
		return r->fleets[sc][i];
	return sc == _SC_COUNT ? r->qfleets[i] : r->qfleets_old[i];
}

static double per_vm(const Fleet *f)
{
	return (f->tick_med + f->charge_med) / f->n;
}

static const Fleet *find_fleet(const Results *r, Scenario sc, unsigned n)
{
	for (unsigned i = 0; i < r->nr_sizes; i++)
		if (r->fleets[sc][i] && r->fleets[sc][i]->n == n)
			return r->fleets[sc][i];
	return NULL;
}

static void print_fleets(const Results *r, const Options *o)
{
	fprintf(out,
		"\ncontrol loop: vmcg_control_tick() on synthetic READY VMs, median of %u "
		"ticks after %u untimed\n",
		o->ticks, o->warmup);
	fprintf(out, "  tick: the tick alone; charge: sample()'s charge update without the smaps "
		     "read; ns/VM = (tick + charge) / N\n");
	fprintf(out, "  QMP commands are built and fail at once (disconnected): no send, no reply "
		     "handling\n\n");
	fprintf(out, "%-8s %5s %6s  %9s %9s %9s  %7s %7s  %6s %5s %6s %7s  %9s\n", "scenario",
		"VMs", "groups", "tick us", "tick p90", "charge us", "ns/VM", "vs 10", "plans",
		"top%", "moved", "cmds/VM", "drain us");
	for (int sc = 0; sc < _SC_COUNT; sc++) {
		const Fleet *base = find_fleet(r, sc, BASE_VMS);

		for (unsigned i = 0; i < r->nr_sizes; i++) {
			const Fleet *f = r->fleets[sc][i];
			char vs[16] = "-";

			if (!f)
				continue;
			if (base)
				snprintf(vs, sizeof(vs), "%.2f", per_vm(f) / per_vm(base));
			fprintf(out,
				"%-8s %5u %6zu  %9.1f %9.1f %9.1f  %7.0f %7s  %6.1f %5.0f %6.1f "
				"%7.2f  "
				"%9.1f\n",
				scenario_names[sc], f->n,
				vmcg_tree_nr_groups(vmcg_daemon_tree(f->d)), f->tick_med / 1e3,
				f->tick_p90 / 1e3, f->charge_med / 1e3, per_vm(f), vs,
				(double)f->over_limit / f->measured,
				100.0 * f->top_over / f->measured, (double)f->moved / f->measured,
				(double)f->cmds / f->measured / f->n, f->drain_med / 1e3);
		}
	}
	fprintf(out,
		"\n  plans: groups over high or max per tick (each plans over its subtree); "
		"top%%: ticks with /tenants over\n  high (a plan over every VM); moved: balloon "
		"targets changed per tick; cmds/VM: QMP commands issued\n  per VM per tick; "
		"drain: main loop until idle after the tick (failing those commands), not in "
		"ns/VM\n");
}

static void print_memory(const Results *r)
{
	const VmcgdResult *v = &r->vmcgd;
	const Fleet *f = find_fleet(r, SC_MIXED, TARGET_VMS);

	fprintf(out, "\nmemory:\n");
	if (v->ran)
		fprintf(out,
			"  vmcgd, %u VMs connecting, %u groups: VmRSS %.1f MiB (%.1f MiB before "
			"registering, +%.1f KiB per VM), VmHWM %.1f MiB\n"
			"  registration through the API: %.2f s; one POST /v1/vms %.2f ms among "
			"the "
			"first 100, %.2f ms among the last 100; vm0 %s\n",
			v->vms, v->groups, v->rss_end_kib / 1024.0, v->rss_start_kib / 1024.0,
			(double)(v->rss_end_kib - v->rss_start_kib) / v->vms, v->hwm_kib / 1024.0,
			v->register_s, v->post_first_ms, v->post_last_ms,
			v->connecting ? "connecting" : "NOT connecting");
	else
		fprintf(out, "  vmcgd: skipped: %s\n", v->why);
	if (f)
		fprintf(out,
			"  in-process daemon, %u READY VMs (mixed), built and warmed up: +%.1f MiB "
			"RSS, +%.1f MiB heap in use (%.1f KiB per VM)\n",
			f->n, f->rss_kib / 1024.0, f->heap_bytes / 1048576.0,
			f->heap_bytes / 1024.0 / f->n);
}

static void print_samples(const Results *r, const Options *o)
{
	fprintf(out,
		"\nsampling a 512 MiB guest: vmcg_sample_read() on a real QEMU (%s), "
		"median of %u\n",
		o->qemu ? o->qemu : "skipped", o->samples);
	fprintf(out, "%-13s %5s %9s %10s  %9s %9s  %9s %9s  %9s  %11s\n", "guest", "VMAs",
		"smaps KiB", "resident", "sample us", "p99 us", "read us", "parse us", "status us",
		"x1000 in ms");
	for (size_t i = 0; i < N_VARIANTS; i++) {
		const SampleResult *s = &r->samples[i];

		if (!s->v)
			continue;
		if (!s->ran) {
			fprintf(out, "%-13s skipped: %s\n", s->v->name, s->why);
			continue;
		}
		fprintf(out, "%-13s %5u %9.0f %8.1f M  %9.1f %9.1f  %9.1f %9.1f  %9.1f  %11.0f\n",
			s->v->name, s->vmas, s->smaps_bytes / 1024.0, s->resident / 1048576.0,
			s->read_med / 1e3, s->read_p99 / 1e3, s->file_med / 1e3, s->parse_med / 1e3,
			s->status_med / 1e3, s->read_med * TARGET_VMS / 1e6);
	}
	if (r->fixture.ran)
		fprintf(out, "%-13s %5u %9.0f %10s  %9s %9s  %9s %9.1f\n", "fixture-256m",
			r->fixture.vmas, r->fixture.bytes / 1024.0, "-", "-", "-", "-",
			r->fixture.parse_med / 1e3);
	else
		fprintf(out, "fixture-256m  skipped: %s\n", r->fixture.why);
	fprintf(out, "  sample: vmcg_sample_read(); read: g_file_get_contents() of smaps alone; "
		     "parse: vmcg_sample_parse_smaps()\n  of that text; status: reading "
		     "/proc/PID/status; x1000: a tick's samples of 1000 such guests, in a row\n");
}

static void print_qmp(const Results *r)
{
	fprintf(out, "\nQMP traffic of one tick, alone: per VM a query-balloon and a qom-get, main "
		     "thread CPU time per VM, us\n");
	fprintf(out, "%5s  %16s %16s %10s  %9s %9s %6s  %16s %16s  %9s\n", "VMs", "connected issue",
		"connected loop", "iterations", "raw issue", "raw loop", "ratio", "disconn. issue",
		"disconn. loop", "KiB/conn");
	for (size_t i = 0; i < N_QMP; i++) {
		const QmpResult *q = &r->qmp[i];

		if (!q->clients)
			continue;
		if (!q->ran) {
			fprintf(out, "%5u  skipped: %s\n", q->clients, q->why);
			continue;
		}
		fprintf(out, "%5u  %16.2f %16.2f %10.0f  %9.2f %9.2f %6.2f  %16.2f %16.2f  %9.1f\n",
			q->clients, q->issue_conn_ns / 1e3, q->loop_conn_ns / 1e3,
			q->iterations_conn, q->issue_raw_ns / 1e3, q->loop_raw_ns / 1e3,
			(q->issue_conn_ns + q->loop_conn_ns) / (q->issue_raw_ns + q->loop_raw_ns),
			q->issue_disc_ns / 1e3, q->loop_disc_ns / 1e3, q->heap_per_client / 1024.0);
	}
	fprintf(out,
		"  issue: in vmcg_qmp_execute(), i.e. in the tick; loop: the main loop until "
		"every callback ran (send, receive,\n  parse, callback; or the failure "
		"callbacks); iterations: main-loop iterations that took, with a peer that\n"
		"  answers at once; raw: the floor, the same commands on plain sockets "
		"(write(2); epoll_wait(2) and read(2) until\n  every reply is in), no GLib, "
		"no JSON; ratio: (connected issue + loop) / (raw issue + loop); KiB/conn: heap "
		"of one\n  connected client\n");
	fprintf(out, "  one idle main-loop iteration with");
	for (size_t i = 0; i < N_WAKE; i++)
		fprintf(out, "%s %u pending deadlines: %.1f us", i ? "," : "", wake_timers[i],
			r->wake_ns[i] / 1e3);
	fprintf(out, "\n");
}

static const Fleet *find_qfleet(const Results *r, unsigned n)
{
	for (unsigned i = 0; i < r->nr_sizes; i++)
		if (r->qfleets[i] && r->qfleets[i]->n == n)
			return r->qfleets[i];
	return NULL;
}

static const LiveResult *find_live(const Results *r, unsigned n, int variant)
{
	for (unsigned i = 0; i < r->nr_sizes; i++)
		if (r->qfleets[i] && r->qfleets[i]->n == n && r->live[i][variant].ran)
			return &r->live[i][variant];
	return NULL;
}

static double per_vm_qmp(const Fleet *q)
{
	return q->qmp_med / q->n;
}

/*
 * The floor of one command on plain sockets (QmpResult: half a raw round)
 * measured with @n clients, or with the nearest count measured; 0 if none.
 */
static double raw_ns_per_cmd(const Results *r, unsigned n)
{
	const QmpResult *best = NULL;

	for (size_t i = 0; i < N_QMP; i++) {
		const QmpResult *q = &r->qmp[i];

		if (q->ran &&
		    (!best || abs((int)q->clients - (int)n) < abs((int)best->clients - (int)n)))
			best = q;
	}
	return best ? (best->issue_raw_ns + best->loop_raw_ns) / 2 : 0.0;
}

static void print_connected(const Results *r)
{
	bool any = false;

	for (unsigned i = 0; i < r->nr_sizes; i++)
		any |= r->qfleets[i] != NULL;
	if (!any)
		return;
	fprintf(out, "\ncontrol loop with connected QMP (mixed; the peer answers at once): tick + "
		     "charge as above,\n  then the main loop until every reply of the tick is "
		     "handled (main thread CPU; wall beside it)\n");
	fprintf(out, "  VMs  variant                tick us  charge us   loop us  loop wall us  "
		     "ns/VM disc.  ns/VM qmp  vs now  cmds/VM  events/VM  floor ns/VM  vs floor\n");
	for (unsigned i = 0; i < r->nr_sizes; i++)
		for (int v = 0; v < 2; v++) {
			const Fleet *q = v ? r->qfleets_old[i] : r->qfleets[i],
				    *now = r->qfleets[i],
				    *f = find_fleet(r, SC_MIXED, q ? q->n : 0);
			double cmds, floor_ns;

			if (!q)
				continue;
			cmds = (double)q->cmds / q->measured / q->n;
			/* An event costs a read: half a command's floor. */
			floor_ns = (cmds + 0.5 * q->events / q->measured / q->n) *
				   raw_ns_per_cmd(r, q->n);
			fprintf(out,
				"%5u  %-20s %7.1f %10.1f %9.1f %13.1f %12.0f %10.0f %7.2f %8.2f "
				"%10.2f %12.0f %9.2f\n",
				q->n, v ? "every tick (before)" : "with stats (vmcgd)",
				q->tick_med / 1e3, q->charge_med / 1e3, q->loop_med / 1e3,
				q->loop_wall_med / 1e3, f ? per_vm(f) : 0.0, per_vm_qmp(q),
				per_vm_qmp(q) / per_vm_qmp(now), cmds,
				(double)q->events / q->measured / q->n, floor_ns,
				floor_ns > 0 ? per_vm_qmp(q) / floor_ns : 0.0);
		}
	fprintf(out,
		"  variant: while a balloon moves, a query-balloon with each guest-stats poll "
		"(with stats, vmcgd) or every tick\n  (every tick, before); both with the 10 s "
		"safety poll (backend-qmp.c says why);\n  "
		"both get the events a QEMU sends (events/VM, one per moving balloon per tick, "
		"handled in the loop); vs now: ns/VM qmp\n  over vmcgd's row\n  floor ns/VM: "
		"(cmds/VM + events/VM "
		"/ 2) x the raw cost of one command (QMP traffic table, raw issue + loop,\n  "
		"per command): what the kernel alone charges for this tick's traffic on this "
		"machine; vs floor: ns/VM qmp over it\n");
}

static void print_live(const Results *r, const Options *o)
{
	bool any = false;

	for (unsigned i = 0; i < r->nr_sizes; i++)
		any |= r->live[i][LIVE_THREAD].ran;
	if (!any)
		return;
	fprintf(out,
		"\nmain loop with real /proc reads (a 512 MiB child, 4 KiB pages) and connected "
		"QMP,\n  %u ms per variant, a tick every %u ms, every VM unsampled at the start; "
		"probe every %u us\n",
		o->live_ms, LIVE_INTERVAL_MS, PROBE_USEC);
	fprintf(out,
		"  VMs  sampling                  ticks  max stall ms (CPU)  max tick ms (CPU)  "
		"max other ms (CPU)  probe p50 ms  p99 ms  max ms  sampled in run  QMP lost\n");
	for (unsigned i = 0; i < r->nr_sizes; i++)
		for (int t = LIVE_TICK; t <= LIVE_THREAD_DISC; t++) {
			const LiveResult *l = &r->live[i][t];

			if (!l->ran)
				continue;
			fprintf(out,
				"%5u  %-24s %6u %9.2f (%6.2f) %9.2f (%6.2f) %10.2f (%6.2f) %13.2f "
				"%7.2f "
				"%7.2f %8u/%u %9u\n",
				r->qfleets[i]->n, live_names[t], l->ticks, l->max_stall_ns / 1e6,
				l->max_stall_cpu_ns / 1e6, l->max_tick_ns / 1e6,
				l->max_tick_cpu_ns / 1e6, l->max_other_ns / 1e6,
				l->max_other_cpu_ns / 1e6, l->probe_p50_ns / 1e6,
				l->probe_p99_ns / 1e6, l->probe_max_ns / 1e6, l->measured_in_run,
				r->qfleets[i]->n, l->gone);
		}
}

#define N_TARGETS 6

typedef struct Target {
	bool known;
	bool pass;
	char text[160];
	double value;
	const char *bound;
} Target;

static void targets(const Results *r, Target t[N_TARGETS])
{
	const Fleet *f = find_fleet(r, SC_MIXED, TARGET_VMS);
	const Fleet *f10 = find_fleet(r, SC_MIXED, BASE_VMS);
	const Fleet *qf = find_qfleet(r, TARGET_VMS);
	const LiveResult *lv = find_live(r, TARGET_VMS, LIVE_THREAD);
	const VmcgdResult *v = &r->vmcgd;

	memset(t, 0, N_TARGETS * sizeof(*t));
	snprintf(t[0].text, sizeof(t[0].text), "tick + charge per VM at %u VMs (mixed), ns",
		 TARGET_VMS);
	t[0].bound = "<= 10000";
	if (f) {
		t[0].known = true;
		t[0].value = per_vm(f);
		t[0].pass = t[0].value <= TARGET_NS_PER_VM;
	}
	snprintf(t[1].text, sizeof(t[1].text), "linear: ns/VM at %u over ns/VM at %u (mixed)",
		 TARGET_VMS, BASE_VMS);
	t[1].bound = "<= 2";
	if (f && f10) {
		t[1].known = true;
		t[1].value = per_vm(f) / per_vm(f10);
		t[1].pass = t[1].value <= TARGET_LINEAR;
	}
	snprintf(t[2].text, sizeof(t[2].text), "vmcgd VmRSS with %u VMs, MiB", TARGET_VMS);
	t[2].bound = "< 32";
	if (v->ran && v->vms >= TARGET_VMS) {
		t[2].known = true;
		t[2].value = v->rss_end_kib / 1024.0;
		t[2].pass = v->rss_end_kib < TARGET_RSS_KIB;
	}
	/* The first target again, with the QMP clients connected: the figure it is about. */
	snprintf(t[3].text, sizeof(t[3].text),
		 "tick + charge + QMP main loop per VM at %u VMs, connected (mixed), ns",
		 TARGET_VMS);
	t[3].bound = "<= 10000";
	if (qf) {
		t[3].known = true;
		t[3].value = per_vm_qmp(qf);
		t[3].pass = t[3].value <= TARGET_NS_PER_VM;
	}
	snprintf(t[4].text, sizeof(t[4].text),
		 "longest main-loop stall at %u VMs, real /proc reads, ms", TARGET_VMS);
	t[4].bound = "<= 5";
	if (lv) {
		t[4].known = true;
		t[4].value = lv->max_stall_ns / 1e6;
		t[4].pass = t[4].value <= TARGET_STALL_MS;
	}
	snprintf(t[5].text, sizeof(t[5].text),
		 "API probe p99 at %u VMs during ticks, real /proc reads, ms", TARGET_VMS);
	t[5].bound = "<= 10";
	if (lv) {
		t[5].known = true;
		t[5].value = lv->probe_p99_ns / 1e6;
		t[5].pass = t[5].value <= TARGET_PROBE_MS;
	}
}

static void print_targets(const Results *r)
{
	Target t[N_TARGETS];

	targets(r, t);
	fprintf(out, "\ntargets:\n");
	for (int i = 0; i < N_TARGETS; i++) {
		if (t[i].known)
			fprintf(out, "  %s  %s = %.2f (want %s)\n", t[i].pass ? "PASS" : "FAIL",
				t[i].text, t[i].value, t[i].bound);
		else
			fprintf(out, "  SKIP  %s (not measured)\n", t[i].text);
	}
}

static void json_add_double(json_object *o, const char *key, double v)
{
	json_object_object_add(o, key, json_object_new_double(v));
}

static void json_add_int(json_object *o, const char *key, int64_t v)
{
	json_object_object_add(o, key, json_object_new_int64(v));
}

static json_object *fleet_json(const Fleet *f)
{
	json_object *j = json_object_new_object();

	json_object_object_add(j, "scenario", json_object_new_string(scenario_names[f->scenario]));
	json_add_int(j, "vms", f->n);
	json_add_int(j, "groups", (int64_t)vmcg_tree_nr_groups(vmcg_daemon_tree(f->d)));
	json_add_double(j, "tick_ns", f->tick_med);
	json_add_double(j, "tick_p90_ns", f->tick_p90);
	json_add_double(j, "charge_ns", f->charge_med);
	json_add_double(j, "ns_per_vm", per_vm(f));
	json_add_double(j, "plans_per_tick", (double)f->over_limit / f->measured);
	json_add_double(j, "top_over_high_fraction", (double)f->top_over / f->measured);
	json_add_double(j, "moved_per_tick", (double)f->moved / f->measured);
	json_add_double(j, "qmp_cmds_per_vm_per_tick", (double)f->cmds / f->measured / f->n);
	json_add_double(j, "drain_ns", f->drain_med);
	return j;
}

static json_object *memory_json(const Results *r)
{
	const Fleet *f = find_fleet(r, SC_MIXED, TARGET_VMS);
	const VmcgdResult *v = &r->vmcgd;
	json_object *j = json_object_new_object();

	if (v->ran) {
		json_add_int(j, "vmcgd_vms", v->vms);
		json_add_int(j, "vmcgd_groups", v->groups);
		json_add_int(j, "vmcgd_rss_start_kib", v->rss_start_kib);
		json_add_int(j, "vmcgd_rss_kib", v->rss_end_kib);
		json_add_int(j, "vmcgd_hwm_kib", v->hwm_kib);
		json_add_double(j, "vmcgd_register_s", v->register_s);
		json_add_double(j, "vmcgd_post_first_ms", v->post_first_ms);
		json_add_double(j, "vmcgd_post_last_ms", v->post_last_ms);
	}
	if (f) {
		json_add_int(j, "inprocess_vms", f->n);
		json_add_int(j, "inprocess_rss_kib", f->rss_kib);
		json_add_int(j, "inprocess_heap_bytes", f->heap_bytes);
	}
	return j;
}

static json_object *samples_json(const Results *r)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < N_VARIANTS; i++) {
		const SampleResult *s = &r->samples[i];
		json_object *j;

		if (!s->ran)
			continue;
		j = json_object_new_object();
		json_object_object_add(j, "guest", json_object_new_string(s->v->name));
		json_add_int(j, "vmas", s->vmas);
		json_add_int(j, "smaps_bytes", (int64_t)s->smaps_bytes);
		json_add_int(j, "resident_bytes", (int64_t)s->resident);
		json_add_double(j, "sample_ns", s->read_med);
		json_add_double(j, "sample_p99_ns", s->read_p99);
		json_add_double(j, "read_ns", s->file_med);
		json_add_double(j, "parse_ns", s->parse_med);
		json_add_double(j, "status_ns", s->status_med);
		json_object_array_add(a, j);
	}
	if (r->fixture.ran) {
		json_object *j = json_object_new_object();

		json_object_object_add(j, "guest", json_object_new_string("fixture-256m"));
		json_add_int(j, "vmas", r->fixture.vmas);
		json_add_int(j, "smaps_bytes", (int64_t)r->fixture.bytes);
		json_add_double(j, "parse_ns", r->fixture.parse_med);
		json_object_array_add(a, j);
	}
	return a;
}

static json_object *qmp_json(const Results *r)
{
	json_object *j = json_object_new_object(), *a = json_object_new_array();
	json_object *w = json_object_new_array();

	for (size_t i = 0; i < N_QMP; i++) {
		const QmpResult *q = &r->qmp[i];
		json_object *e;

		if (!q->ran)
			continue;
		e = json_object_new_object();
		json_add_int(e, "vms", q->clients);
		json_add_double(e, "issue_connected_ns_per_vm", q->issue_conn_ns);
		json_add_double(e, "loop_connected_ns_per_vm", q->loop_conn_ns);
		json_add_double(e, "loop_connected_iterations", q->iterations_conn);
		json_add_double(e, "issue_disconnected_ns_per_vm", q->issue_disc_ns);
		json_add_double(e, "loop_disconnected_ns_per_vm", q->loop_disc_ns);
		json_add_double(e, "issue_raw_ns_per_vm", q->issue_raw_ns);
		json_add_double(e, "loop_raw_ns_per_vm", q->loop_raw_ns);
		json_add_int(e, "heap_bytes_per_connection", q->heap_per_client);
		json_object_array_add(a, e);
	}
	json_object_object_add(j, "traffic", a);
	for (size_t i = 0; i < N_WAKE; i++) {
		json_object *e = json_object_new_object();

		json_add_int(e, "pending_deadlines", wake_timers[i]);
		json_add_double(e, "iteration_ns", r->wake_ns[i]);
		json_object_array_add(w, e);
	}
	json_object_object_add(j, "wakeup", w);
	return j;
}

static void print_json(const Results *r, const Options *o)
{
	g_autoptr(json_object) root = json_object_new_object();
	json_object *fleets = json_object_new_array(), *tg = json_object_new_array();
	Target t[N_TARGETS];

	json_add_int(root, "ticks", o->ticks);
	for (int sc = 0; sc < _SC_COUNT; sc++)
		for (unsigned i = 0; i < r->nr_sizes; i++)
			if (r->fleets[sc][i])
				json_object_array_add(fleets, fleet_json(r->fleets[sc][i]));
	json_object_object_add(root, "control", fleets);
	json_object_object_add(root, "memory", memory_json(r));
	json_object_object_add(root, "sample", samples_json(r));
	json_object_object_add(root, "qmp", qmp_json(r));

	targets(r, t);
	for (int i = 0; i < N_TARGETS; i++) {
		json_object *j = json_object_new_object();

		json_object_object_add(j, "target", json_object_new_string(t[i].text));
		json_object_object_add(j, "result",
				       json_object_new_string(!t[i].known ? "skip"
							      : t[i].pass ? "pass"
									  : "fail"));
		if (t[i].known)
			json_add_double(j, "value", t[i].value);
		json_object_array_add(tg, j);
	}
	json_object_object_add(root, "targets", tg);
	printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
}

/*
 * --json: per fleet size, ns_per_vm (tick + charge, mixed, disconnected),
 * ns_per_vm_qmp (the same connected, with the main loop until the replies
 * are handled) and max_stall_ms (the longest main-loop stall with real
 * /proc reads, sampling on the sampler thread); a figure not measured is
 * null.
 */
static void print_results_json(const Results *r)
{
	g_autoptr(json_object) root = json_object_new_object();
	json_object *a = json_object_new_array();

	for (unsigned i = 0; i < r->nr_sizes; i++) {
		const Fleet *f = r->fleets[SC_MIXED][i], *q = r->qfleets[i];
		const LiveResult *l = &r->live[i][LIVE_THREAD];
		json_object *j = json_object_new_object();

		json_add_int(j, "vms", f->n);
		json_add_double(j, "ns_per_vm", per_vm(f));
		json_object_object_add(j, "ns_per_vm_qmp",
				       q ? json_object_new_double(per_vm_qmp(q)) : NULL);
		json_object_object_add(j, "max_stall_ms",
				       l->ran ? json_object_new_double(l->max_stall_ns / 1e6)
					      : NULL);
		json_object_array_add(a, j);
	}
	json_object_object_add(root, "results", a);
	printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
}

/* ---- arguments ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench-control [--json] [--quick] [--ticks N] [--samples N] [--vms N]\n"
		"                     [--vmcgd PATH | --no-vmcgd] [--qemu PATH | --no-qemu]\n"
		"                     [--smaps FILE | --no-smaps] [--no-lowprot] [--sizes LIST]\n"
		"                     [--no-qmp] [--no-live] [--live-ms N] [--json-full] "
		"[--verbose]\n"
		"  --json       "
		"{\"results\":[{\"vms\",\"ns_per_vm\",\"ns_per_vm_qmp\",\"max_stall_ms\"}]}\n"
		"               on stdout; the report on stderr\n"
		"  --json-full  every figure as one JSON object on stdout instead\n"
		"  --no-live    no main-loop run with real /proc reads (max_stall_ms)\n"
		"  --live-ms N  that run's length per fleet and variant (default %u ms)\n"
		"  --quick      %u ticks, 10 to 1000 VMs, mixed only, one QEMU: a smoke run\n"
		"  --ticks N    measured ticks per fleet (default %u)\n"
		"  --samples N  smaps samples per QEMU (default %u)\n"
		"  --vms N      VMs registered with the real vmcgd (default %u)\n"
		"  --sizes LIST synthetic fleet sizes (default 10,100,1000,2000)\n"
		"  --vmcgd      the daemon whose RSS is measured (default build/daemon/vmcgd)\n"
		"  --qemu       QEMU for the sampling figures (default qemu-system-x86_64)\n"
		"  --smaps      the smaps fixture (default "
		"tests/unit/data/smaps-qemu72-pc-256m.txt)\n"
		"  --verbose    print the daemon's warnings (thousands: one per failed balloon "
		"command)\n",
		LIVE_MS, TICKS_QUICK, TICKS_DEFAULT, SAMPLES_DEFAULT, TARGET_VMS);
}

static bool parse_uint(const char *s, unsigned min, unsigned max, unsigned *ret)
{
	char *end;
	unsigned long v;

	if (!s || !*s || *s == '-')
		return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*ret = (unsigned)v;
	return true;
}

/* "10,100,1000": fleet sizes, 1 to 100000 VMs each. */
static bool parse_sizes(const char *s, Options *o)
{
	g_auto(GStrv) parts = s ? g_strsplit(s, ",", -1) : NULL;

	if (!parts || !parts[0])
		return false;
	o->nr_sizes = 0;
	for (guint i = 0; parts[i]; i++)
		if (o->nr_sizes == MAX_SIZES ||
		    !parse_uint(parts[i], 1, 100000, &o->sizes[o->nr_sizes++]))
			return false;
	return true;
}

static void parse_args(int argc, char **argv, Options *o)
{
	bool ticks_set = false, samples_set = false, vms_set = false, live_ms_set = false;

	*o = (Options){
		.vmcgd = "build/daemon/vmcgd",
		.qemu = "qemu-system-x86_64",
		.smaps = "tests/unit/data/smaps-qemu72-pc-256m.txt",
		.lowprot = true,
		.qmp = true,
		.live = true,
		.rss_vms = TARGET_VMS,
	};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--json") == 0) {
			o->json = true;
		} else if (strcmp(a, "--json-full") == 0) {
			o->json = true;
			o->json_full = true;
		} else if (strcmp(a, "--no-live") == 0) {
			o->live = false;
		} else if (strcmp(a, "--live-ms") == 0 && parse_uint(v, 100, 600000, &o->live_ms)) {
			live_ms_set = true;
			i++;
		} else if (strcmp(a, "--quick") == 0) {
			o->quick = true;
		} else if (strcmp(a, "--verbose") == 0) {
			o->verbose = true;
		} else if (strcmp(a, "--no-lowprot") == 0) {
			o->lowprot = false;
		} else if (strcmp(a, "--sizes") == 0 && parse_sizes(v, o)) {
			i++;
		} else if (strcmp(a, "--ticks") == 0 && parse_uint(v, 1, MAX_TICKS, &o->ticks)) {
			ticks_set = true;
			i++;
		} else if (strcmp(a, "--samples") == 0 && parse_uint(v, 1, 100000, &o->samples)) {
			samples_set = true;
			i++;
		} else if (strcmp(a, "--vms") == 0 && parse_uint(v, 1, 100000, &o->rss_vms)) {
			vms_set = true;
			i++;
		} else if (strcmp(a, "--vmcgd") == 0 && v) {
			o->vmcgd = v;
			i++;
		} else if (strcmp(a, "--qemu") == 0 && v) {
			o->qemu = v;
			i++;
		} else if (strcmp(a, "--smaps") == 0 && v) {
			o->smaps = v;
			i++;
		} else if (strcmp(a, "--no-vmcgd") == 0) {
			o->vmcgd = NULL;
		} else if (strcmp(a, "--no-qemu") == 0) {
			o->qemu = NULL;
		} else if (strcmp(a, "--no-smaps") == 0) {
			o->smaps = NULL;
		} else if (strcmp(a, "--no-qmp") == 0) {
			o->qmp = false;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			exit(0);
		} else {
			fprintf(stderr, "bench-control: bad argument '%s'\n", a);
			usage(stderr);
			exit(2);
		}
	}
	if (!o->nr_sizes) {
		o->nr_sizes = o->quick ? N_SIZES_QUICK : N_SIZES_DEFAULT;
		memcpy(o->sizes, default_sizes, o->nr_sizes * sizeof(o->sizes[0]));
	}
	if (!live_ms_set)
		o->live_ms = o->quick ? LIVE_MS_QUICK : LIVE_MS;
	if (!ticks_set)
		o->ticks = o->quick ? TICKS_QUICK : TICKS_DEFAULT;
	if (!samples_set)
		o->samples = o->quick ? SAMPLES_QUICK : SAMPLES_DEFAULT;
	o->warmup = o->quick ? WARMUP_QUICK : WARMUP_DEFAULT;
	o->settle_ms = o->quick ? SETTLE_MS_QUICK : SETTLE_MS_DEFAULT;
	if (o->quick) {
		o->lowprot = false;
		if (!vms_set)
			o->rss_vms = RSS_VMS_QUICK;
	}
}

/*
 * The fleets, built one after the other (each measured for memory while
 * it is built and warmed up alone), then ticked in rounds: every round runs
 * a block of BLOCK_TICKS ticks of every fleet in turn, and each fleet's
 * figure is the median over all its blocks, so that a slow phase of the
 * host does not land on one size. The first tick of a block is not
 * recorded: it finds the caches full of the previous fleet, and it pays
 * for that fleet's freed memory (glibc consolidates freed small chunks at
 * the next large allocation: in one run that made 100 VMs cost 4x per VM
 * what 1000 did, when ticks alternated between fleets one by one).
 */
static bool run_fleets(const Options *o, Results *r)
{
	g_autofree char *sock = NULL, *link = NULL;
	bool ok = true;

	r->nr_sizes = o->nr_sizes;
	for (int sc = 0; sc < _SC_COUNT; sc++) {
		if (sc == SC_LOWPROT && !o->lowprot)
			continue;
		for (unsigned i = 0; i < r->nr_sizes; i++)
			r->fleets[sc][i] = fleet_new(sc, o->sizes[i], o, NULL,
						     VMCG_QMP_BALLOON_QUERY_WITH_STATS);
	}
	if (o->qmp) {
		r->peer_tmp = g_dir_make_tmp("bench-control-XXXXXX", NULL);
		if (!r->peer_tmp)
			die("cannot make a temporary directory");
		sock = g_build_filename(r->peer_tmp, "qmp.sock", NULL);
		/*
		 * The VMs connect through a symlink: the backend then finds no
		 * listener of that path in /proc/net/unix and does not scan
		 * every process's fds to find its pid (this one), N times.
		 */
		link = g_build_filename(r->peer_tmp, "q", NULL);
		peer_start(&r->peer, sock);
		if (symlink(sock, link) < 0)
			die("symlink %s: %s", link, g_strerror(errno));
		for (unsigned i = 0; i < r->nr_sizes; i++) {
			r->qfleets[i] = fleet_new(SC_MIXED, o->sizes[i], o, link,
						  VMCG_QMP_BALLOON_QUERY_WITH_STATS);
			r->qfleets_old[i] = fleet_new(SC_MIXED, o->sizes[i], o, link,
						      VMCG_QMP_BALLOON_QUERY_EVERY_TICK);
		}
	}
	for (unsigned done = 0; done < o->ticks; done += BLOCK_TICKS - 1)
		for (int sc = 0; sc <= _SC_COUNT + 1; sc++)
			for (unsigned i = 0; i < r->nr_sizes; i++) {
				Fleet *f = fleet_at(r, sc, i);

				if (!f)
					continue;
				fleet_tick(f, false);
				for (unsigned t = 1; t < BLOCK_TICKS && f->measured < o->ticks; t++)
					fleet_tick(f, true);
			}
	for (int sc = 0; sc <= _SC_COUNT + 1; sc++)
		for (unsigned i = 0; i < r->nr_sizes; i++) {
			Fleet *f = fleet_at(r, sc, i);

			if (f) {
				ok &= fleet_check(f);
				fleet_summarize(f);
			}
		}
	if (!o->qmp)
		return ok;
	if (o->live && ok) {
		pid_t child = guest_child_start();

		for (unsigned i = 0; i < r->nr_sizes; i++)
			for (int v = LIVE_THREAD; v >= 0; v = v == LIVE_THREAD ? LIVE_TICK
							      : v == LIVE_TICK ? LIVE_THREAD_DISC
									       : -1) {
				LiveResult *lr = &r->live[i][v];
				Fleet *f = v == LIVE_THREAD_DISC ? r->fleets[SC_MIXED][i]
								 : r->qfleets[i];

				/* --quick: the old path's seconds-long ticks only up to 100 VMs. */
				if (v == LIVE_TICK && o->quick && f->n > 100)
					continue;
				live_run(f, child, v != LIVE_TICK, o->live_ms, lr);
				/*
				 * In the tick, a tick long enough loses QMP
				 * connections (their commands' 10 s deadline):
				 * a figure, not an error.
				 */
				if (v == LIVE_THREAD && (lr->measured != f->n || lr->gone)) {
					fprintf(stderr,
						"bench-control: CORRECTNESS: live/%u: %u VMs "
						"measured the guest's 512 MiB, %u lost\n",
						f->n, lr->measured, lr->gone);
					ok = false;
				}
			}
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	return ok;
}

/* The connected fleets first: their peer goes with them. */
static void free_fleets(Results *r)
{
	for (unsigned i = 0; i < r->nr_sizes; i++) {
		g_clear_pointer(&r->qfleets[i], fleet_free);
		g_clear_pointer(&r->qfleets_old[i], fleet_free);
	}
	drain_main_loop();
	if (r->peer_tmp) {
		peer_stop(&r->peer);
		rm_rf(r->peer_tmp);
		g_clear_pointer(&r->peer_tmp, g_free);
	}
	for (int sc = 0; sc < _SC_COUNT; sc++)
		for (unsigned i = 0; i < r->nr_sizes; i++)
			g_clear_pointer(&r->fleets[sc][i], fleet_free);
}

int main(int argc, char **argv)
{
	Results r = { 0 };
	struct rlimit rl;
	Options o;
	char model[128];
	int64_t t0 = now_ns();
	bool ok;

	if (argc == 2 && !strcmp(argv[1], "--guest-child"))
		guest_child_main();
	parse_args(argc, argv, &o);
	out = o.json ? stderr : stdout;
	/* 2000 QMP clients and their peer's ends: more than the usual 1024 fds. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	log_setup(&o);
	signal(SIGPIPE, SIG_IGN);

	ok = run_fleets(&o, &r);
	vmcgd_run(&o, &r.vmcgd);
	if (o.qemu) {
		for (size_t i = 0; i < N_VARIANTS; i++) {
			/* --quick: the most expensive guest only. */
			if (o.quick && !sample_variants[i].no_thp)
				continue;
			sample_run(&o, &sample_variants[i], &r.samples[i]);
			if (!r.samples[i].ran && g_str_has_prefix(r.samples[i].why, "CORRECTNESS"))
				ok = false;
		}
	}
	fixture_run(&o, &r.fixture);
	if (!r.fixture.ran && g_str_has_prefix(r.fixture.why, "CORRECTNESS"))
		ok = false;
	for (size_t i = 0; o.qmp && i < N_QMP; i++) {
		/* --quick: the target's size only. */
		if (o.quick && qmp_clients[i] != TARGET_VMS)
			continue;
		qmp_run(&o, qmp_clients[i], &r.qmp[i]);
		if (!r.qmp[i].ran && g_str_has_prefix(r.qmp[i].why, "CORRECTNESS"))
			ok = false;
	}
	for (size_t i = 0; i < N_WAKE; i++)
		r.wake_ns[i] = wake_cost(wake_timers[i]);
	r.wall_s = (double)(now_ns() - t0) / 1e9;
	ok &= nr_criticals == 0;

	cpu_model(model, sizeof(model));
	fprintf(out,
		"bench-control: %ld online CPUs (%s), %.1f s; %lu daemon warnings dropped "
		"(failed QMP commands)\n",
		sysconf(_SC_NPROCESSORS_ONLN), model, r.wall_s, nr_warnings);
	if (!ok) {
		fprintf(stderr, "bench-control: a correctness check failed; figures not printed\n");
		return 1;
	}
	print_fleets(&r, &o);
	print_memory(&r);
	print_samples(&r, &o);
	print_qmp(&r);
	print_connected(&r);
	print_live(&r, &o);
	print_targets(&r);
	if (o.json_full)
		print_json(&r, &o);
	else if (o.json)
		print_results_json(&r);
	free_fleets(&r);
	return 0;
}
