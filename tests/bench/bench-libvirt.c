// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * What vmcgd's libvirt backend costs per domain (docs/performance.md,
 * "libvirt: adopting domains and a tick"), against libvirt's fake driver
 * test:///default. At N domains (10 and 200; --quick: 10 and 50), side by
 * side in one run:
 *
 *   adopt  a VmcgDaemon with vmcg_daemon_enable_libvirt("test:///default")
 *          from vmcg_daemon_start() until all N domains are VMs: the
 *          worker's open, list and one XML read per domain, and the main
 *          loop's parse and adoption of each. Process CPU (the worker, the
 *          main loop and the fake driver, which runs in this process) and,
 *          of it, the main loop's own (its thread's CPU). "settled": until
 *          the requests adoption queued are done too (one stats period per
 *          domain, virDomainSetMemoryStatsPeriod(), and the ticks' reads).
 *   tick   then one control tick, vmcg_control_tick(), until its libvirt
 *          work is done: the one virConnectGetAllDomainStats(STATE|BALLOON)
 *          for every domain has come back and been applied, and no request
 *          is left queued; and how many requests the tick made
 *          (backend-libvirt-priv.h). The daemon's timer is replaced once
 *          adopted: each timed tick is the benchmark's, an interval after
 *          the last one (lv_poll() reads at most once in 3/4 interval).
 *   raw    that one virConnectGetAllDomainStats() alone, on a plain
 *          connection: what the call costs without vmcgd around it.
 *   naive  the same domains read the naive way, on a plain connection: one
 *          virDomainGetXMLDesc() and one virDomainMemoryStats() per domain
 *          (2N calls a tick instead of one).
 *
 * Each repetition creates the N domains afresh (virDomainCreateXML(): 256
 * MiB, a virtio balloon, vmcg metadata naming /bench/gK, K = i % 10; the
 * groups are made first with vmcg_daemon_group_put()), adopts them, times
 * TICKS ticks, frees the daemon, then times raw and naive on the same
 * domains, and destroys them; median, min and max over the repetitions.
 *
 * test:///default is in-process and shared by every connection to it in
 * this process (checked at start: a domain created on one connection must
 * be listed on another), so vmcgd's worker sees the domains this program
 * creates. It has no QEMU and no pid file: the VMs have pid 0 and are
 * never sampled, and it reports no balloon statistics, so a tick applies
 * states only and issues no balloon command. Its calls are function calls,
 * not round trips to libvirtd: the figures are for scale (what grows with
 * N, how many calls), never for behaviour or for a real libvirtd's
 * latency (tests/integration/test_libvirt.py runs the real one).
 *
 *   bench-libvirt [--quick] [--reps N]
 *
 * Exit status: 0; 1 if a check fails (not every domain adopted, a tick
 * that did not read the statistics); 2 on bad arguments or setup failure;
 * 77 if test:///default cannot be opened or is not shared.
 */
#include <glib.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend-libvirt-priv.h"
#include "daemon-private.h"

#include "bench-util.h"

#define URI "test:///default"
/* vmcgd's default interval (config/vmcgd.conf): the stats read is at most one a tick. */
#define INTERVAL_USEC (250 * 1000)
#define GROUPS 10
/* Ticks timed per repetition: the first after adoption, and two more. */
#define TICKS 3

static double now_usec(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Wall, process CPU (every thread) and this thread's CPU (the main loop). */
typedef struct Stamp {
	double wall, cpu, main;
} Stamp;

static Stamp stamp(void)
{
	return (Stamp){ now_usec(CLOCK_MONOTONIC), now_usec(CLOCK_PROCESS_CPUTIME_ID),
			now_usec(CLOCK_THREAD_CPUTIME_ID) };
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* One figure over the repetitions. */
typedef struct Figure {
	double v[64];
	unsigned n;
} Figure;

static void add(Figure *f, double v)
{
	if (f->n < G_N_ELEMENTS(f->v))
		f->v[f->n++] = v;
}

/* Sorts. The median of an even count is the lower middle (a measured value). */
static double median(Figure *f)
{
	qsort(f->v, f->n, sizeof(double), cmp_double);
	return f->v[(f->n - 1) / 2];
}

static unsigned warnings;

/* Warnings and worse go to stderr and are counted; vmcgd's messages and debug do not. */
static GLogWriterOutput quiet_writer(GLogLevelFlags level, const GLogField *fields, gsize n,
				     gpointer userdata)
{
	if (!(level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING)))
		return G_LOG_WRITER_HANDLED;
	warnings++;
	return g_log_writer_default(level, fields, n, userdata);
}

static void die(int code, const char *what)
{
	fprintf(stderr, "bench-libvirt: %s: %s\n", what, virGetLastErrorMessage());
	exit(code);
}

static void domain_uuid(char *buf, size_t size, unsigned n, unsigned rep, unsigned i)
{
	snprintf(buf, size, "b0000000-%04x-4%03x-8000-%012x", n & 0xffff, rep & 0xfff, i);
}

/* A running type='test' domain as a small production one looks: 256 MiB, a virtio balloon. */
static char *domain_xml(unsigned n, unsigned rep, unsigned i)
{
	char uuid[VIR_UUID_STRING_BUFLEN];

	domain_uuid(uuid, sizeof(uuid), n, rep, i);
	return g_strdup_printf(
		"<domain type='test'>\n"
		"  <name>bench-%u-%u-%u</name>\n"
		"  <uuid>%s</uuid>\n"
		"  <metadata>\n"
		"    <vmcg:vm xmlns:vmcg='urn:vmcg:domain:1'>\n"
		"      <vmcg:group>/bench/g%u</vmcg:group>\n"
		"    </vmcg:vm>\n"
		"  </metadata>\n"
		"  <memory unit='MiB'>256</memory>\n"
		"  <currentMemory unit='MiB'>256</currentMemory>\n"
		"  <vcpu placement='static'>1</vcpu>\n"
		"  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>\n"
		"  <features><acpi/><apic/></features>\n"
		"  <on_poweroff>destroy</on_poweroff>\n"
		"  <on_reboot>restart</on_reboot>\n"
		"  <on_crash>destroy</on_crash>\n"
		"  <devices>\n"
		"    <disk type='file' device='disk'>\n"
		"      <driver name='qemu' type='qcow2'/>\n"
		"      <source file='/var/lib/libvirt/images/bench-%u.qcow2'/>\n"
		"      <target dev='vda' bus='virtio'/>\n"
		"    </disk>\n"
		"    <interface type='network'>\n"
		"      <source network='default'/>\n"
		"      <model type='virtio'/>\n"
		"    </interface>\n"
		"    <console type='pty'/>\n"
		"    <memballoon model='virtio'>\n"
		"      <stats period='1'/>\n"
		"    </memballoon>\n"
		"  </devices>\n"
		"</domain>\n",
		n, rep, i, uuid, i % GROUPS, i);
}

static void create_domains(virConnectPtr conn, unsigned n, unsigned rep)
{
	for (unsigned i = 0; i < n; i++) {
		g_autofree char *xml = domain_xml(n, rep, i);
		virDomainPtr dom = virDomainCreateXML(conn, xml, 0);

		if (!dom)
			die(2, "virDomainCreateXML");
		virDomainFree(dom);
	}
}

static void destroy_domains(virConnectPtr conn, unsigned n, unsigned rep)
{
	for (unsigned i = 0; i < n; i++) {
		char uuid[VIR_UUID_STRING_BUFLEN];
		virDomainPtr dom;

		domain_uuid(uuid, sizeof(uuid), n, rep, i);
		dom = virDomainLookupByUUIDString(conn, uuid);
		if (!dom || virDomainDestroy(dom) < 0)
			die(2, "virDomainDestroy");
		virDomainFree(dom);
	}
}

/*
 * test:///default must be one driver for the whole process, else vmcgd's
 * worker would open a domain list of its own: a domain made on one
 * connection must be listed on a second. Also destroys the driver's own
 * "test" domain, so that the N domains are all there is.
 */
static int check_shared(virConnectPtr a)
{
	virConnectPtr b = virConnectOpen(URI);
	virDomainPtr dom;
	g_autofree char *xml = domain_xml(0, 0xfff, 0);
	char uuid[VIR_UUID_STRING_BUFLEN];
	int found = 0;

	if (!b)
		return -1;
	domain_uuid(uuid, sizeof(uuid), 0, 0xfff, 0);
	dom = virDomainCreateXML(a, xml, 0);
	if (!dom)
		die(2, "virDomainCreateXML");
	virDomainFree(dom);
	dom = virDomainLookupByUUIDString(b, uuid);
	if (dom) {
		found = virDomainIsActive(dom) == 1;
		virDomainDestroy(dom);
		virDomainFree(dom);
	}
	virResetLastError();
	dom = virDomainLookupByName(a, "test");
	if (dom) {
		virDomainDestroy(dom);
		virDomainFree(dom);
	}
	virResetLastError();
	virConnectClose(b);
	return found ? 0 : -1;
}

static unsigned adopted(VmcgDaemon *d)
{
	unsigned n = 0;

	for (VmcgDvm *vm = vmcg_daemon_vm_first(d); vm; vm = vmcg_daemon_vm_next(vm))
		n++;
	return n;
}

static unsigned pending(VmcgDaemon *d)
{
	VmcgLibvirtStatus st;

	return vmcg_daemon_libvirt_status(d, &st) ? st.pending : 0;
}

/*
 * One turn of the loop while requests are counted pending. Not a blocking
 * one: the worker counts a request done just after it posts the result
 * (libvirt-conn.c's worker()), so the last result can be handled while the
 * count still says 1, and nothing would wake the loop again. Under
 * test:/// what is pending then is only that moment (no balloon command).
 */
static void step_pending(void)
{
	if (!g_main_context_iteration(NULL, FALSE))
		g_thread_yield();
}

static gboolean on_quit(gpointer userdata)
{
	*(gboolean *)userdata = TRUE;
	return G_SOURCE_REMOVE;
}

/* Run the main loop for @usec (results and events in the meantime are handled). */
static void run_for(uint64_t usec)
{
	gboolean done = FALSE;

	g_timeout_add((guint)(usec / 1000), on_quit, &done);
	while (!done)
		g_main_context_iteration(NULL, TRUE);
}

/* The timer's ticks, replaced by the benchmark's own (a source vmcgd can remove). */
static gboolean no_tick(gpointer userdata)
{
	(void)userdata;
	return G_SOURCE_CONTINUE;
}

typedef struct Row {
	Figure adopt_wall, adopt_cpu, adopt_main, settle_wall, adopt_requests;
	Figure tick_wall, tick_cpu, tick_requests;
	Figure raw_wall, raw_cpu;
	Figure naive_wall, naive_cpu;
} Row;

/* One repetition at @n domains: adopt, TICKS ticks; 0, or 1 if a check failed. */
static int run_vmcgd(unsigned n, Row *row)
{
	VmcgDaemon *d = vmcg_daemon_new(NULL, NULL);
	VmcgGroupSettings s = { 0 };
	unsigned long res0, stats0, res1, stats1;
	gboolean late = FALSE;
	guint guard;
	Stamp t0, t1;
	int ret = 0;

	g_assert_true(vmcg_daemon_group_put(d, "/bench", &s, NULL, NULL));
	for (unsigned k = 0; k < GROUPS; k++) {
		char path[32];

		snprintf(path, sizeof(path), "/bench/g%u", k);
		g_assert_true(vmcg_daemon_group_put(d, path, &s, NULL, NULL));
	}
	vmcg_daemon_enable_libvirt(d, URI, "/");

	vmcg_backend_libvirt_counts(&res0, &stats0);
	t0 = stamp();
	guard = g_timeout_add_seconds(60, on_quit, &late);
	vmcg_daemon_start(d, INTERVAL_USEC);
	while (adopted(d) < n && !late)
		g_main_context_iteration(NULL, TRUE);
	t1 = stamp();
	if (late) {
		fprintf(stderr, "bench-libvirt: CHECK: %u of %u domains adopted in 60 s\n",
			adopted(d), n);
		vmcg_daemon_free(d);
		return 1;
	}
	add(&row->adopt_wall, t1.wall - t0.wall);
	add(&row->adopt_cpu, t1.cpu - t0.cpu);
	add(&row->adopt_main, t1.main - t0.main);

	/* Settle: the stats periods adoption set, the kicked tick's read. Then no timer. */
	while ((pending(d) || vmcg_control_polling(d) || d->decide_pending) && !late)
		step_pending();
	if (late) {
		fprintf(stderr, "bench-libvirt: CHECK: %u requests still pending after 60 s\n",
			pending(d));
		vmcg_daemon_free(d);
		return 1;
	}
	add(&row->settle_wall, now_usec(CLOCK_MONOTONIC) - t0.wall);
	g_source_remove(guard);
	while (g_main_context_iteration(NULL, FALSE))
		;
	vmcg_backend_libvirt_counts(&res1, &stats1);
	add(&row->adopt_requests, (double)(res1 - res0));
	g_source_remove(d->tick_id);
	d->tick_id = g_timeout_add_seconds(3600, no_tick, NULL);

	for (unsigned t = 0; t < TICKS; t++) {
		/* The stats read is at most one per 3/4 interval (lv_poll()): wait that long. */
		run_for(INTERVAL_USEC);
		guard = g_timeout_add_seconds(10, on_quit, &late);
		vmcg_backend_libvirt_counts(&res0, &stats0);
		t0 = stamp();
		vmcg_control_tick(d);
		for (;;) {
			vmcg_backend_libvirt_counts(&res1, &stats1);
			if (stats1 > stats0 && !pending(d) && !vmcg_control_polling(d) &&
			    !d->decide_pending)
				break;
			if (late) {
				fprintf(stderr,
					"bench-libvirt: CHECK: a tick at %u domains read no "
					"statistics in 10 s\n",
					n);
				ret = 1;
				break;
			}
			if (stats1 > stats0 && !vmcg_control_polling(d) && !d->decide_pending)
				step_pending();
			else
				g_main_context_iteration(NULL, TRUE);
		}
		t1 = stamp();
		if (late)
			break;
		g_source_remove(guard);
		add(&row->tick_wall, t1.wall - t0.wall);
		add(&row->tick_cpu, t1.cpu - t0.cpu);
		add(&row->tick_requests, (double)(res1 - res0));
	}
	if (adopted(d) != n) {
		fprintf(stderr, "bench-libvirt: CHECK: %u VMs at the end, %u domains\n", adopted(d),
			n);
		ret = 1;
	}
	/* The metadata was read (its group, not the default) and the balloon is driven. */
	for (VmcgDvm *vm = vmcg_daemon_vm_first(d); vm; vm = vmcg_daemon_vm_next(vm)) {
		VmcgDvmInfo i;
		unsigned k;

		vmcg_dvm_info(vm, &i);
		k = (unsigned)g_ascii_strtoull(strrchr(i.name, '-') + 1, NULL, 10) % GROUPS;
		if (!g_str_has_prefix(i.group, "/bench/g") ||
		    g_ascii_strtoull(i.group + 8, NULL, 10) != k || i.no_balloon) {
			fprintf(stderr, "bench-libvirt: CHECK: VM %s in %s, balloon: %s\n", i.name,
				i.group, i.no_balloon ? i.no_balloon : "driven");
			ret = 1;
		}
	}
	vmcg_daemon_free(d);
	while (g_main_context_iteration(NULL, FALSE))
		;
	return ret;
}

/* The one call vmcgd makes a tick, alone on a plain connection. */
static void run_raw(virConnectPtr conn, unsigned n, Row *row)
{
	virDomainStatsRecordPtr *recs = NULL;
	Stamp t0 = stamp(), t1;
	int got =
		virConnectGetAllDomainStats(conn, VIR_DOMAIN_STATS_STATE | VIR_DOMAIN_STATS_BALLOON,
					    &recs, VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE);

	if (got < 0)
		die(2, "virConnectGetAllDomainStats");
	virDomainStatsRecordListFree(recs);
	t1 = stamp();
	if ((unsigned)got != n)
		fprintf(stderr, "bench-libvirt: warning: %d domains' stats, %u domains\n", got, n);
	add(&row->raw_wall, t1.wall - t0.wall);
	add(&row->raw_cpu, t1.cpu - t0.cpu);
}

/* Per domain, its XML and its memory statistics: two calls each (the list untimed). */
static void run_naive(virConnectPtr conn, Row *row)
{
	virDomainPtr *doms = NULL;
	int n = virConnectListAllDomains(conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
	Stamp t0, t1;

	if (n < 0)
		die(2, "virConnectListAllDomains");
	t0 = stamp();
	for (int i = 0; i < n; i++) {
		virDomainMemoryStatStruct st[VIR_DOMAIN_MEMORY_STAT_NR];
		char *xml = virDomainGetXMLDesc(doms[i], 0);

		if (!xml)
			die(2, "virDomainGetXMLDesc");
		free(xml);
		if (virDomainMemoryStats(doms[i], st, VIR_DOMAIN_MEMORY_STAT_NR, 0) < 0)
			die(2, "virDomainMemoryStats");
	}
	t1 = stamp();
	add(&row->naive_wall, t1.wall - t0.wall);
	add(&row->naive_cpu, t1.cpu - t0.cpu);
	for (int i = 0; i < n; i++)
		virDomainFree(doms[i]);
	free(doms);
}

/* One line: median, min, max (usec, or a count) and the median per domain. */
static void print_figure(unsigned n, const char *name, Figure *f, gboolean count)
{
	double med = median(f);

	if (count)
		printf("%5u  %-26s %10.0f %10.0f %10.0f %12.2f\n", n, name, med, f->v[0],
		       f->v[f->n - 1], med / n);
	else
		printf("%5u  %-26s %10.1f %10.1f %10.1f %12.2f\n", n, name, med, f->v[0],
		       f->v[f->n - 1], med / n);
}

int main(int argc, char **argv)
{
	static const unsigned full[] = { 10, 200 }, quick_sizes[] = { 10, 50 };
	gboolean quick = FALSE;
	unsigned reps = 3;
	unsigned long libvirt_version = 0;
	const unsigned *sizes;
	virConnectPtr conn;
	char cpu[128];
	int ret = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0)
			quick = TRUE;
		else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
			reps = (unsigned)atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: %s [--quick] [--reps N]\n", argv[0]);
			return 2;
		}
	}
	if (reps < 1 || reps * TICKS > G_N_ELEMENTS(((Figure *)NULL)->v)) {
		fprintf(stderr, "bench-libvirt: --reps: 1 to %zu\n",
			G_N_ELEMENTS(((Figure *)NULL)->v) / TICKS);
		return 2;
	}
	sizes = quick ? quick_sizes : full;
	g_log_set_writer_func(quiet_writer, NULL, NULL);
	conn = virConnectOpen(URI);
	if (!conn || check_shared(conn) < 0) {
		fprintf(stderr,
			"bench-libvirt: %s cannot be opened, or is not shared between "
			"connections: skipped\n",
			URI);
		return 77;
	}
	if (virConnectGetLibVersion(conn, &libvirt_version) < 0)
		libvirt_version = 0;
	cpu_model(cpu, sizeof(cpu));
	printf("# bench-libvirt: %s; libvirt %lu.%lu.%lu, %s (its fake driver, in this "
	       "process)%s\n",
	       cpu, libvirt_version / 1000000, libvirt_version / 1000 % 1000,
	       libvirt_version % 1000, URI, quick ? " (quick)" : "");
	printf("# %u reps (ticks: %u a rep); interval %u ms. Under test:/// the VMs have pid 0 "
	       "(no QEMU,\n# no pid file): nothing is sampled, and no balloon statistics: a tick "
	       "moves no balloon.\n",
	       reps, TICKS, INTERVAL_USEC / 1000);
	printf("# usec (requests: a count); per domain = median / N\n");
	printf("%5s  %-26s %10s %10s %10s %12s\n", "N", "figure", "median", "min", "max",
	       "per domain");

	for (unsigned si = 0; si < 2; si++) {
		unsigned n = sizes[si];
		Row row = { 0 };
		double tick, naive, raw;

		for (unsigned rep = 0; rep < reps; rep++) {
			create_domains(conn, n, rep);
			ret |= run_vmcgd(n, &row);
			run_raw(conn, n, &row);
			run_naive(conn, &row);
			destroy_domains(conn, n, rep);
		}
		print_figure(n, "adopt wall", &row.adopt_wall, FALSE);
		print_figure(n, "adopt cpu (process)", &row.adopt_cpu, FALSE);
		print_figure(n, "adopt cpu (main loop)", &row.adopt_main, FALSE);
		print_figure(n, "settled wall", &row.settle_wall, FALSE);
		print_figure(n, "adopt requests (settled)", &row.adopt_requests, TRUE);
		print_figure(n, "tick wall", &row.tick_wall, FALSE);
		print_figure(n, "tick cpu (process)", &row.tick_cpu, FALSE);
		print_figure(n, "tick requests", &row.tick_requests, TRUE);
		print_figure(n, "raw GetAllDomainStats wall", &row.raw_wall, FALSE);
		print_figure(n, "naive 2N calls wall", &row.naive_wall, FALSE);
		print_figure(n, "naive 2N calls cpu", &row.naive_cpu, FALSE);
		tick = median(&row.tick_wall);
		naive = median(&row.naive_wall);
		raw = median(&row.raw_wall);
		printf("%5u  ratios (wall, medians): naive/tick %.2f, naive/raw %.2f, tick/raw "
		       "%.2f; calls a tick: %.0f against %u\n",
		       n, naive / tick, naive / raw, tick / raw, median(&row.tick_requests), 2 * n);
		fflush(stdout);
	}
	virConnectClose(conn);
	if (warnings)
		fprintf(stderr, "bench-libvirt: %u warnings from vmcgd (above)\n", warnings);
	return ret;
}
