// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The sampling charge source and its handover (charge.h), driven through
 * vmcg_sampling_apply() as the sampler thread's results are:
 *
 *   /t   vm: 100 pages resident -> charged 100; 40 -> 40; overhead 10 pages
 *        never in the guest charge; hooks attach -> sampling's charge gone,
 *        samples then audit; detach -> the next sample charges again;
 *        QEMU gone -> nothing left charged.
 *
 * And the audit: resident above the hooks' charge + slack on two full
 * samples in a row flags the VM once (a hooks_audit event); a cheap sample
 * never strikes; back under clears it.
 *
 * The sampler's reader threads start with the first VM (not in a tick)
 * and stop with the last.
 */
#include <gio/gio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "charge.h"
#include "daemon-private.h"
#include "test-util.h"

#define PAGE VMCG_PAGE_SIZE

typedef struct Fixture {
	VmcgDaemon *d;
	VmcgDvm *vm;
	VmcgGroup *t;
	unsigned audits;
} Fixture;

static void on_event(const char *type, json_object *data, gpointer userdata)
{
	Fixture *f = userdata;

	(void)data;
	if (g_str_equal(type, VMCG_EV_HOOKS_AUDIT))
		f->audits++;
}

static void setup(Fixture *f)
{
	g_autoptr(GError) error = NULL;

	f->d = vmcg_daemon_new(NULL, NULL);
	g_assert_true(vmcg_daemon_group_put(f->d, "/t", &(VmcgGroupSettings){ 0 }, NULL, &error));
	g_assert_true(
		vmcg_daemon_vm_add(f->d, "vm", "qmp", "/nonexistent/vm.qmp", "/t", NULL, &error));
	g_assert_no_error(error);
	f->vm = vmcg_daemon_vm_lookup(f->d, "vm");
	g_assert_cmpint(vmcg_group_lookup(vmcg_daemon_tree(f->d), "/t", &f->t), ==, 0);
	f->audits = 0;
	vmcg_daemon_subscribe(f->d, on_event, f);
}

static uint64_t guest_pages(Fixture *f)
{
	return vmcg_vm_stat(f->vm->vm, VMCG_STAT_GUEST);
}

static void test_charge_follows_samples(void)
{
	Fixture f;
	VmcgSampling *s;

	setup(&f);
	s = f.vm->sampling;
	g_assert_false(vmcg_sampling_measured(s));

	/* One row a sample: resident and process total (pages), what is charged after. */
	static const struct {
		uint64_t resident, total, charged, overhead;
	} rows[] = {
		{ 100, 110, 100, 10 }, { 40, 50, 40, 10 },    { 40, 40, 40, 0 },
		{ 0, 5, 0, 5 },	       { 300, 320, 300, 20 },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		vmcg_sampling_apply(s, rows[i].resident * PAGE, rows[i].total * PAGE, TRUE, NULL);
		g_assert_true(vmcg_sampling_measured(s));
		g_assert_cmpuint(vmcg_sampling_charged(s), ==, rows[i].charged * PAGE);
		g_assert_cmpuint(guest_pages(&f), ==, rows[i].charged);
		g_assert_cmpuint(vmcg_sampling_overhead(s), ==, rows[i].overhead * PAGE);
		g_assert_cmpuint(vmcg_vm_stat(f.vm->vm, VMCG_STAT_OVERHEAD), ==, rows[i].overhead);
		/* Overhead is not counted in the group's usage by default. */
		g_assert_cmpuint(vmcg_group_current(f.t), ==, rows[i].charged);
	}

	vmcg_sampling_drop(s);
	g_assert_false(vmcg_sampling_measured(s));
	g_assert_cmpuint(vmcg_group_current(f.t), ==, 0);
	g_assert_cmpuint(vmcg_sampling_resident(s), ==, 0);
	vmcg_daemon_free(f.d);
}

static void test_handover(void)
{
	Fixture f;
	VmcgSampling *s;
	VmcgSamplingAudit a = { .charged_pages = 500, .slack_pages = 50 };

	setup(&f);
	s = f.vm->sampling;
	vmcg_sampling_apply(s, 200 * PAGE, 200 * PAGE, TRUE, NULL);
	g_assert_cmpuint(vmcg_group_current(f.t), ==, 200);

	/* Attach: sampling's charge leaves; the hooks charge what QEMU populated. */
	vmcg_sampling_hand_over(s);
	g_assert_cmpuint(vmcg_sampling_charged(s), ==, 0);
	g_assert_cmpuint(vmcg_group_current(f.t), ==, 0);
	vmcg_vm_charge(f.vm->vm, 500); /* as hooks.c does for HELLO's populated */

	/* Hook mode: samples measure and audit, they do not charge. */
	vmcg_sampling_apply(s, 450 * PAGE, 460 * PAGE, TRUE, &a);
	vmcg_sampling_apply(s, 700 * PAGE, 710 * PAGE, TRUE, NULL); /* not charging */
	g_assert_cmpuint(vmcg_sampling_charged(s), ==, 0);
	g_assert_cmpuint(vmcg_sampling_resident(s), ==, 700 * PAGE);
	g_assert_cmpuint(vmcg_group_current(f.t), ==, 500);

	/* Detach: the hooks uncharged theirs; the next sample charges again. */
	g_assert_cmpint(vmcg_vm_uncharge(f.vm->vm, 500), ==, 0);
	vmcg_sampling_take_over(s);
	vmcg_sampling_apply(s, 320 * PAGE, 330 * PAGE, TRUE, NULL);
	g_assert_cmpuint(vmcg_sampling_charged(s), ==, 320 * PAGE);
	g_assert_cmpuint(vmcg_group_current(f.t), ==, 320);
	g_assert_cmpuint(atomic_load(&vmcg_vm_counter(f.vm->vm)->underflows), ==, 0);
	vmcg_daemon_free(f.d);
}

static void test_audit(void)
{
	Fixture f;
	VmcgSampling *s;
	VmcgSamplingAudit a = { .charged_pages = 1000, .slack_pages = 100 };
	/* resident pages, full sample?, flagged after, audit events after */
	static const struct {
		uint64_t resident;
		gboolean full, flagged;
		unsigned events;
	} rows[] = {
		{ 1100, TRUE, FALSE, 0 },  /* at charge + slack: fine */
		{ 1101, TRUE, FALSE, 0 },  /* first strike */
		{ 1200, FALSE, FALSE, 0 }, /* a cheap sample never counts */
		{ 1200, TRUE, TRUE, 1 },   /* second full strike in a row: flagged */
		{ 1300, TRUE, TRUE, 1 },   /* once per episode */
		{ 900, TRUE, FALSE, 1 },   /* back under: cleared */
		{ 1150, TRUE, FALSE, 1 },  /* a new episode starts from one strike */
		{ 1150, TRUE, TRUE, 2 },
	};

	setup(&f);
	s = f.vm->sampling;
	vmcg_sampling_hand_over(s);
	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		/* A flag is logged once, as a warning. */
		if (rows[i].events > f.audits)
			g_test_expect_message(NULL, G_LOG_LEVEL_WARNING, "*only 1000 charged*");
		vmcg_sampling_apply(s, rows[i].resident * PAGE, rows[i].resident * PAGE,
				    rows[i].full, &a);
		g_test_assert_expected_messages();
		g_assert_cmpint(vmcg_sampling_audit_flagged(s), ==, rows[i].flagged);
		g_assert_cmpuint(f.audits, ==, rows[i].events);
	}
	/* Detach clears the flag: sampling charges again, there is nothing to audit. */
	vmcg_sampling_take_over(s);
	g_assert_false(vmcg_sampling_audit_flagged(s));
	vmcg_sampling_drop(s);
	vmcg_daemon_free(f.d);
}

/* The backoff of failed reads: none, 1 s, doubling, capped at 30 s. */
static void test_backoff_table(void)
{
	static const struct {
		unsigned failures;
		uint64_t usec;
	} t[] = {
		{ 0, 0 },
		{ 1, 1 * G_USEC_PER_SEC },
		{ 2, 2 * G_USEC_PER_SEC },
		{ 3, 4 * G_USEC_PER_SEC },
		{ 5, 16 * G_USEC_PER_SEC },
		{ 6, 30 * G_USEC_PER_SEC },
		{ 7, 30 * G_USEC_PER_SEC },
		{ 1000, 30 * G_USEC_PER_SEC },
		{ G_MAXUINT, 30 * G_USEC_PER_SEC },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(t); i++)
		g_assert_cmpuint(vmcg_sampling_backoff_usec(t[i].failures), ==, t[i].usec);
}

/* When a charge is known: the last read, the failures since, its age. */
static void test_charge_state_table(void)
{
	static const struct {
		uint64_t ok_usec;
		unsigned failures;
		uint64_t now;
		VmcgChargeState want;
	} t[] = {
		{ 0, 0, 5 * G_USEC_PER_SEC, VMCG_CHARGE_PENDING }, /* first read not back */
		{ 0, 1, 5 * G_USEC_PER_SEC, VMCG_CHARGE_UNKNOWN }, /* never measured */
		{ 4 * G_USEC_PER_SEC, 0, 5 * G_USEC_PER_SEC, VMCG_CHARGE_KNOWN },
		{ 4 * G_USEC_PER_SEC, 1, 5 * G_USEC_PER_SEC,
		  VMCG_CHARGE_UNKNOWN },				   /* last failed */
		{ 1, 0, 1 + VMCG_SAMPLE_STALE_USEC, VMCG_CHARGE_KNOWN },   /* at the bound */
		{ 1, 0, 2 + VMCG_SAMPLE_STALE_USEC, VMCG_CHARGE_UNKNOWN }, /* stale */
		{ 10 * G_USEC_PER_SEC, 0, 5 * G_USEC_PER_SEC,
		  VMCG_CHARGE_KNOWN }, /* clock behind */
	};

	for (size_t i = 0; i < G_N_ELEMENTS(t); i++)
		g_assert_cmpint(vmcg_sampling_charge_state(t[i].ok_usec, t[i].failures, t[i].now),
				==, t[i].want);
	g_assert_cmpstr(vmcg_charge_state_to_string(VMCG_CHARGE_UNKNOWN), ==, "unknown");
	g_assert_cmpstr(vmcg_charge_state_to_string(VMCG_CHARGE_PENDING), ==, "pending");
}

/* An unknown charge: the last known one for the grace, then the whole RAM, never less. */
static void test_unknown_charge_table(void)
{
	const uint64_t G = 10 * G_USEC_PER_SEC;
	static const struct {
		uint64_t charged, ram, unknown_usec_of_grace_pct, want;
	} t[] = {
		{ 100, 1000, 0, 100 },	   /* just became unknown: keeps the last */
		{ 100, 1000, 99, 100 },	   /* within the grace */
		{ 100, 1000, 100, 1000 },  /* grace over: the whole RAM */
		{ 0, 1000, 500, 1000 },	   /* never measured */
		{ 1200, 1000, 500, 1200 }, /* more than its RAM (overshoot): never less */
	};

	for (size_t i = 0; i < G_N_ELEMENTS(t); i++)
		g_assert_cmpuint(
			vmcg_sampling_unknown_charge(t[i].charged, t[i].ram,
						     G * t[i].unknown_usec_of_grace_pct / 100, G),
			==, t[i].want);
}

/*
 * The sampler's reader threads start with the first VM, not inside a
 * tick (thread creation was up to a millisecond of the first tick's
 * stall), serve that VM's first read, and are gone once the last VM is.
 */
static void test_readers_start_with_first_vm(void)
{
	const size_t ram = 4 << 20;
	Fixture f;
	unsigned before, started;
	char *guest;

	/* This process stands in for QEMU: a guest RAM mapping as QEMU's, its /proc real. */
	guest = mmap(NULL, ram, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	g_assert_true(guest != MAP_FAILED);
	g_assert_cmpint(madvise(guest, ram, MADV_DONTFORK), ==, 0);
	memset(guest, 1, ram);
	while (g_main_context_iteration(NULL, FALSE))
		;
	before = test_dir_entries("/proc/self/task");
	setup(&f);
	started = test_dir_entries("/proc/self/task");
	g_assert_cmpuint(started, >, before);

	vmcg_sampling_tick(f.vm->sampling, getpid(), ram, g_get_monotonic_time(), NULL);
	g_assert_cmpuint(vmcg_sampling_in_flight(), ==, 1);
	g_assert_cmpuint(test_dir_entries("/proc/self/task"), ==, started);
	while (vmcg_sampling_in_flight())
		g_main_context_iteration(NULL, TRUE);
	g_assert_true(vmcg_sampling_measured(f.vm->sampling));
	g_assert_cmpuint(vmcg_sampling_resident(f.vm->sampling), ==, ram);
	g_assert_cmpuint(test_dir_entries("/proc/self/task"), ==, started);

	vmcg_daemon_free(f.d);
	while (g_main_context_iteration(NULL, FALSE))
		;
	g_assert_cmpuint(test_dir_entries("/proc/self/task"), ==, before);
	munmap(guest, ram);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/charge/sampling-follows-samples", test_charge_follows_samples);
	g_test_add_func("/charge/handover", test_handover);
	g_test_add_func("/charge/audit", test_audit);
	g_test_add_func("/charge/unknown/backoff", test_backoff_table);
	g_test_add_func("/charge/unknown/state", test_charge_state_table);
	g_test_add_func("/charge/unknown/charge", test_unknown_charge_table);
	g_test_add_func("/charge/readers-start-with-first-vm", test_readers_start_with_first_vm);
	return g_test_run();
}
