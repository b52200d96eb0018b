// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests for lib/psi.c, checked against kernel/sched/psi.c:
 *  - some and full with several vCPUs: some when any non-idle vCPU is
 *    stalled, full only when all non-idle ones are; idle vCPUs do not hold
 *    full off; totals across state changes and updates, ongoing state
 *    included, nothing counted twice;
 *  - averages after one and several periods of a known stall, compared
 *    with the exact fixed-point values of the kernel's calc_load() chain
 *    (computed here from a copy of the kernel formula, and pinned as
 *    literals worked out independently), the period length of a late
 *    update, decay over missed periods via calc_load_n(), clamping of a
 *    sample to the period with the excess reported later;
 *  - -EINVAL cases: negative counts, stalled > active, time backwards,
 *    full > some, total overflow; each leaves the state untouched;
 *  - vmcg_psi_format() output exactly, -ENOSPC and truncation, and that
 *    vmcg_psi_read() agrees with the printed digits.
 */
#include <errno.h>
#include <glib.h>
#include <stdint.h>
#include <string.h>

#include "vmcg/psi.h"

#define SEC UINT64_C(1000000)
/* Any start that is not 0, so a bug that ignores it shows. */
#define T0 (UINT64_C(777) * SEC)

/* ---- the kernel's formulas, include/linux/sched/loadavg.h ---- */

#define REF_FSHIFT 11
#define REF_FIXED_1 (UINT64_C(1) << REF_FSHIFT)
static const uint64_t ref_exp[3] = { 1677, 1981, 2034 }; /* EXP_10s/60s/300s */

static uint64_t ref_calc_load(uint64_t load, uint64_t exp, uint64_t active)
{
	uint64_t newload = load * exp + active * (REF_FIXED_1 - exp);

	if (active >= load)
		newload += REF_FIXED_1 - 1;
	return newload / REF_FIXED_1;
}

/* kernel/sched/loadavg.c fixed_power_int(), then calc_load_n(). */
static uint64_t ref_calc_load_n(uint64_t load, uint64_t x, uint64_t active, unsigned int n)
{
	uint64_t result = REF_FIXED_1;

	if (n) {
		for (;;) {
			if (n & 1) {
				result = (result * x + (REF_FIXED_1 >> 1)) >> REF_FSHIFT;
			}
			n >>= 1;
			if (!n)
				break;
			x = (x * x + (REF_FIXED_1 >> 1)) >> REF_FSHIFT;
		}
	}
	return ref_calc_load(load, result, active);
}

/* One period sampled at @pct percent, as calc_avgs() feeds calc_load(). */
static void ref_sample(uint64_t avg[3], uint64_t pct)
{
	int w;

	for (w = 0; w < 3; w++)
		avg[w] = ref_calc_load(avg[w], ref_exp[w], pct * REF_FIXED_1);
}

/* LOAD_INT * 100 + LOAD_FRAC */
static uint32_t ref_pct100(uint64_t v)
{
	return (uint32_t)((v >> REF_FSHIFT) * 100 +
			  (((v & (REF_FIXED_1 - 1)) * 100) >> REF_FSHIFT));
}

static void assert_avg(const VmcgPsi *psi, VmcgPsiState s, const uint64_t expect[3])
{
	uint32_t got[3];
	uint64_t total;
	int w;

	vmcg_psi_read(psi, s, got, &total);
	for (w = 0; w < 3; w++) {
		g_assert_cmpuint(psi->avg[s][w], ==, expect[w]);
		g_assert_cmpuint(got[w], ==, ref_pct100(expect[w]));
	}
}

static void assert_read(const VmcgPsi *psi, VmcgPsiState s, uint32_t a10, uint32_t a60,
			uint32_t a300, uint64_t total)
{
	uint32_t got[3];
	uint64_t got_total;

	vmcg_psi_read(psi, s, got, &got_total);
	g_assert_cmpuint(got[0], ==, a10);
	g_assert_cmpuint(got[1], ==, a60);
	g_assert_cmpuint(got[2], ==, a300);
	g_assert_cmpuint(got_total, ==, total);
}

static uint64_t total_of(const VmcgPsi *psi, VmcgPsiState s)
{
	uint32_t avg[3];
	uint64_t total;

	vmcg_psi_read(psi, s, avg, &total);
	return total;
}

/* ---- state accounting ---- */

static void test_init(void)
{
	static const char zero[] = "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
				   "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
	VmcgPsi psi;
	char buf[160];

	memset(&psi, 0xa5, sizeof(psi));
	vmcg_psi_init(&psi, T0);
	assert_read(&psi, VMCG_PSI_SOME, 0, 0, 0, 0);
	assert_read(&psi, VMCG_PSI_FULL, 0, 0, 0, 0);
	g_assert_cmpuint(psi.avg_next_update_usec, ==, T0 + VMCG_PSI_PERIOD_USEC);
	g_assert_cmpint(vmcg_psi_format(&psi, buf, sizeof(buf)), ==, (int)strlen(zero));
	g_assert_cmpstr(buf, ==, zero);
}

static void test_some_vs_full(void)
{
	VmcgPsi psi;

	/*
	 * 4 vCPUs, all running.
	 *   t=1 s  one stalls          some
	 *   t=3 s  the other 3 stall   some + full
	 *   t=4 s  3 resume            some
	 *   t=6 s  the last resumes    -
	 * some = 2 + 1 + 2 = 5 s, full = 1 s.
	 */
	vmcg_psi_init(&psi, T0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0, 4, 0), ==, 0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0 + 1 * SEC, 0, 1), ==, 0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0 + 3 * SEC, 0, 3), ==, 0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0 + 4 * SEC, 0, -3), ==, 0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0 + 6 * SEC, 0, -1), ==, 0);
	g_assert_cmpuint(total_of(&psi, VMCG_PSI_SOME), ==, 5 * SEC);
	g_assert_cmpuint(total_of(&psi, VMCG_PSI_FULL), ==, 1 * SEC);
	g_assert_cmpuint(psi.nr_active, ==, 4);
	g_assert_cmpuint(psi.nr_stalled, ==, 0);
}

static void test_idle_vcpus_not_counted_for_full(void)
{
	VmcgPsi psi;

	/*
	 * 4 vCPUs, 2 of them idle (halted in the guest): the 2 non-idle ones
	 * both stalled is full, as in the kernel an idle CPU does not keep a
	 * group out of full.
	 *   t=0    4 run, then 2 go idle
	 *   t=1 s  both non-idle stall          some + full
	 *   t=3 s  an idle vCPU wakes and runs  some only
	 *   t=4 s  update
	 */
	vmcg_psi_init(&psi, T0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0, 4, 0), ==, 0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0, -2, 0), ==, 0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0 + 1 * SEC, 0, 2), ==, 0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0 + 3 * SEC, 1, 0), ==, 0);
	vmcg_psi_update(&psi, T0 + 4 * SEC);
	g_assert_cmpuint(total_of(&psi, VMCG_PSI_SOME), ==, 3 * SEC);
	g_assert_cmpuint(total_of(&psi, VMCG_PSI_FULL), ==, 2 * SEC);
}

static void test_no_stall_no_time(void)
{
	VmcgPsi psi;

	/* Running vCPUs, or none at all, are neither some nor full. */
	vmcg_psi_init(&psi, T0);
	vmcg_psi_update(&psi, T0 + 3 * SEC);
	g_assert_cmpint(vmcg_psi_change(&psi, T0 + 3 * SEC, 2, 0), ==, 0);
	vmcg_psi_update(&psi, T0 + 9 * SEC);
	assert_read(&psi, VMCG_PSI_SOME, 0, 0, 0, 0);
	assert_read(&psi, VMCG_PSI_FULL, 0, 0, 0, 0);
}

static void test_totals_across_changes(void)
{
	VmcgPsi psi;

	/* One vCPU stalled from t=0 to t=2 s, read at several points. */
	vmcg_psi_init(&psi, T0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0, 1, 1), ==, 0);

	/* The ongoing state is counted by an update... */
	vmcg_psi_update(&psi, T0 + 1 * SEC);
	g_assert_cmpuint(total_of(&psi, VMCG_PSI_SOME), ==, 1 * SEC);
	g_assert_cmpuint(total_of(&psi, VMCG_PSI_FULL), ==, 1 * SEC);
	vmcg_psi_update(&psi, T0 + 1 * SEC + SEC / 2);
	g_assert_cmpuint(total_of(&psi, VMCG_PSI_SOME), ==, SEC + SEC / 2);

	/* ...and not again by the change that ends it. */
	g_assert_cmpint(vmcg_psi_change(&psi, T0 + 2 * SEC, 0, -1), ==, 0);
	g_assert_cmpuint(total_of(&psi, VMCG_PSI_SOME), ==, 2 * SEC);
	g_assert_cmpuint(total_of(&psi, VMCG_PSI_FULL), ==, 2 * SEC);

	vmcg_psi_update(&psi, T0 + 5 * SEC);
	g_assert_cmpuint(total_of(&psi, VMCG_PSI_SOME), ==, 2 * SEC);

	/* A second stall adds on top; the vCPU leaving while stalled ends it. */
	g_assert_cmpint(vmcg_psi_change(&psi, T0 + 6 * SEC, 0, 1), ==, 0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0 + 6 * SEC + 250000, -1, -1), ==, 0);
	vmcg_psi_update(&psi, T0 + 8 * SEC);
	g_assert_cmpuint(total_of(&psi, VMCG_PSI_SOME), ==, 2 * SEC + 250000);
	g_assert_cmpuint(total_of(&psi, VMCG_PSI_FULL), ==, 2 * SEC + 250000);
}

static void test_zero_filled_starts_lazily(void)
{
	VmcgPsi psi;
	uint64_t expect[3] = { 0, 0, 0 };

	/* Never initialized: the clock starts at the first change, not at 0. */
	memset(&psi, 0, sizeof(psi));
	g_assert_cmpint(vmcg_psi_change(&psi, T0, 1, 1), ==, 0);
	g_assert_cmpuint(psi.avg_next_update_usec, ==, T0 + VMCG_PSI_PERIOD_USEC);
	vmcg_psi_update(&psi, T0 + 2 * SEC);
	g_assert_cmpuint(total_of(&psi, VMCG_PSI_SOME), ==, 2 * SEC);
	ref_sample(expect, 100);
	assert_avg(&psi, VMCG_PSI_SOME, expect);
}

/* ---- averages ---- */

static void test_avg_one_period(void)
{
	static const uint64_t literal[3] = { 37100, 6700, 1400 };
	uint64_t expect[3] = { 0, 0, 0 };
	VmcgPsi psi;

	/*
	 * 100 % stall for exactly one period: avg10 = (0 * 1677 + 204800 *
	 * 371 + 2047) / 2048 = 37100, i.e. 18.11 %.
	 */
	vmcg_psi_init(&psi, T0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0, 1, 1), ==, 0);
	vmcg_psi_update(&psi, T0 + 2 * SEC);

	ref_sample(expect, 100);
	g_assert_cmpmem(expect, sizeof(expect), literal, sizeof(literal));
	assert_avg(&psi, VMCG_PSI_SOME, expect);
	assert_avg(&psi, VMCG_PSI_FULL, expect);
	assert_read(&psi, VMCG_PSI_SOME, 1811, 327, 68, 2 * SEC);
	g_assert_cmpuint(psi.avg_next_update_usec, ==, T0 + 4 * SEC);
	g_assert_cmpuint(psi.avg_last_update_usec, ==, T0 + 2 * SEC);
}

static void test_avg_several_periods(void)
{
	static const uint64_t literal[3] = { 129406, 31380, 6907 };
	uint64_t expect[3] = { 0, 0, 0 };
	VmcgPsi psi;
	int i;

	/*
	 * 100 % stall for 10 s, sampled every period: avg10 approaches
	 * 1 - 1/e = 63.21 %; the kernel's fixed point gives 129406 = 63.18 %.
	 */
	vmcg_psi_init(&psi, T0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0, 1, 1), ==, 0);
	for (i = 1; i <= 5; i++) {
		vmcg_psi_update(&psi, T0 + (uint64_t)i * VMCG_PSI_PERIOD_USEC);
		ref_sample(expect, 100);
		assert_avg(&psi, VMCG_PSI_SOME, expect);
	}
	g_assert_cmpmem(expect, sizeof(expect), literal, sizeof(literal));
	assert_read(&psi, VMCG_PSI_SOME, 6318, 1532, 337, 10 * SEC);
	assert_read(&psi, VMCG_PSI_FULL, 6318, 1532, 337, 10 * SEC);
}

static void test_avg_partial_some_not_full(void)
{
	uint64_t some[3] = { 0, 0, 0 };
	const uint64_t zero[3] = { 0, 0, 0 };
	VmcgPsi psi;
	int i;

	/* 4 vCPUs, one stalled for the first second of each period: 50 % some. */
	vmcg_psi_init(&psi, T0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0, 4, 0), ==, 0);
	for (i = 0; i < 3; i++) {
		uint64_t start = T0 + (uint64_t)i * VMCG_PSI_PERIOD_USEC;

		g_assert_cmpint(vmcg_psi_change(&psi, start, 0, 1), ==, 0);
		g_assert_cmpint(vmcg_psi_change(&psi, start + SEC, 0, -1), ==, 0);
		vmcg_psi_update(&psi, start + VMCG_PSI_PERIOD_USEC);
		ref_sample(some, 50);
	}
	assert_avg(&psi, VMCG_PSI_SOME, some);
	assert_avg(&psi, VMCG_PSI_FULL, zero);
	g_assert_cmpuint(total_of(&psi, VMCG_PSI_SOME), ==, 3 * SEC);
}

static void test_avg_before_period_end(void)
{
	uint64_t expect[3] = { 0, 0, 0 };
	VmcgPsi psi;

	/* An update inside the period folds nothing into the averages. */
	vmcg_psi_init(&psi, T0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0, 1, 1), ==, 0);
	vmcg_psi_update(&psi, T0 + 2 * SEC - 1);
	assert_avg(&psi, VMCG_PSI_SOME, expect);
	g_assert_cmpuint(total_of(&psi, VMCG_PSI_SOME), ==, 2 * SEC - 1);
	g_assert_cmpuint(psi.avg_next_update_usec, ==, T0 + 2 * SEC);
	g_assert_cmpuint(psi.avg_last_update_usec, ==, T0);

	/* The period boundary itself is due (now >= avg_next_update). */
	vmcg_psi_update(&psi, T0 + 2 * SEC);
	ref_sample(expect, 100);
	assert_avg(&psi, VMCG_PSI_SOME, expect);
}

static void test_avg_late_update_period_length(void)
{
	uint64_t expect[3] = { 0, 0, 0 };
	VmcgPsi psi;

	/*
	 * Stalled from 0 to 3.25 s, updates at 2.5 s and 4 s. The first is
	 * 0.5 s late: its period is 2.5 s, all stalled, 100 %. The schedule
	 * stays on the 2 s grid, so the next is due at 4 s and its period is
	 * 4 - 2.5 = 1.5 s, of which 0.75 s stalled: 50 % (a nominal 2 s
	 * period would say 37 %).
	 */
	vmcg_psi_init(&psi, T0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0, 1, 1), ==, 0);
	vmcg_psi_update(&psi, T0 + 2500000);
	ref_sample(expect, 100);
	assert_avg(&psi, VMCG_PSI_SOME, expect);
	g_assert_cmpuint(psi.avg_next_update_usec, ==, T0 + 4 * SEC);

	g_assert_cmpint(vmcg_psi_change(&psi, T0 + 3250000, 0, -1), ==, 0);
	vmcg_psi_update(&psi, T0 + 4 * SEC);
	ref_sample(expect, 50);
	assert_avg(&psi, VMCG_PSI_SOME, expect);
	assert_read(&psi, VMCG_PSI_SOME, 2389, 480, 102, 3250000);
}

static void test_avg_missed_periods_decay(void)
{
	static const uint64_t literal[3] = { 16672, 5863, 1361 };
	uint64_t expect[3] = { 0, 0, 0 };
	VmcgPsi psi;
	int w;

	/*
	 * One period of 100 % stall, then nothing and no update until 10.5 s.
	 * Due at 4 s, so (10.5 - 4) / 2 = 3 periods were missed: they decay
	 * in one calc_load_n() step, then the 2.5 s period since 8 s is
	 * sampled at 0. Next due on the grid at 12 s. calc_load_n() rounds
	 * differently from four calc_load() steps (avg10 16672, not 16678).
	 */
	vmcg_psi_init(&psi, T0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0, 1, 1), ==, 0);
	vmcg_psi_update(&psi, T0 + 2 * SEC);
	g_assert_cmpint(vmcg_psi_change(&psi, T0 + 2 * SEC, 0, -1), ==, 0);
	vmcg_psi_update(&psi, T0 + 10 * SEC + SEC / 2);

	ref_sample(expect, 100);
	for (w = 0; w < 3; w++)
		expect[w] =
			ref_calc_load(ref_calc_load_n(expect[w], ref_exp[w], 0, 3), ref_exp[w], 0);
	g_assert_cmpmem(expect, sizeof(expect), literal, sizeof(literal));
	assert_avg(&psi, VMCG_PSI_SOME, expect);
	assert_avg(&psi, VMCG_PSI_FULL, expect);
	g_assert_cmpuint(psi.avg_next_update_usec, ==, T0 + 12 * SEC);
	g_assert_cmpuint(total_of(&psi, VMCG_PSI_SOME), ==, 2 * SEC);
}

static void test_avg_missed_periods_stall_deferred(void)
{
	uint64_t expect[3] = { 0, 0, 0 };
	VmcgPsi psi;
	int i;

	/*
	 * 100 % stall for 10 s with the first update only at 10 s: 4 missed
	 * periods decay (from 0), and the 10 s of stall count as one sample
	 * clamped to the 2 s period, 100 %. The other 8 s are not lost: they
	 * come out as four more 100 % periods after the stall has ended,
	 * then the average decays.
	 */
	vmcg_psi_init(&psi, T0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0, 1, 1), ==, 0);
	vmcg_psi_update(&psi, T0 + 10 * SEC);
	ref_sample(expect, 100);
	assert_avg(&psi, VMCG_PSI_SOME, expect);
	g_assert_cmpuint(psi.avg_total_usec[VMCG_PSI_SOME], ==, 2 * SEC);
	g_assert_cmpuint(total_of(&psi, VMCG_PSI_SOME), ==, 10 * SEC);

	g_assert_cmpint(vmcg_psi_change(&psi, T0 + 10 * SEC, 0, -1), ==, 0);
	for (i = 1; i <= 5; i++) {
		vmcg_psi_update(&psi, T0 + 10 * SEC + (uint64_t)i * VMCG_PSI_PERIOD_USEC);
		ref_sample(expect, i <= 4 ? 100 : 0);
		assert_avg(&psi, VMCG_PSI_SOME, expect);
	}
	g_assert_cmpuint(psi.avg_total_usec[VMCG_PSI_SOME], ==, 10 * SEC);
}

static void test_avg_sample_clamp(void)
{
	static const uint64_t literal[3] = { 73806, 16100, 3472 };
	uint64_t expect[3] = { 0, 0, 0 };
	VmcgPsi psi;

	/*
	 * A 5 s stall reported at once in the first period: 2 s, 2 s and 1 s
	 * of it land in three successive periods, 100 %, 100 %, 50 %.
	 */
	vmcg_psi_init(&psi, T0);
	g_assert_cmpint(vmcg_psi_add_stall(&psi, 5 * SEC, 5 * SEC), ==, 0);
	g_assert_cmpuint(total_of(&psi, VMCG_PSI_SOME), ==, 5 * SEC);

	vmcg_psi_update(&psi, T0 + 2 * SEC);
	ref_sample(expect, 100);
	assert_avg(&psi, VMCG_PSI_FULL, expect);
	assert_read(&psi, VMCG_PSI_SOME, 1811, 327, 68, 5 * SEC);

	vmcg_psi_update(&psi, T0 + 4 * SEC);
	ref_sample(expect, 100);
	assert_avg(&psi, VMCG_PSI_FULL, expect);

	vmcg_psi_update(&psi, T0 + 6 * SEC);
	ref_sample(expect, 50);
	g_assert_cmpmem(expect, sizeof(expect), literal, sizeof(literal));
	assert_avg(&psi, VMCG_PSI_SOME, expect);
	assert_avg(&psi, VMCG_PSI_FULL, expect);
	g_assert_cmpuint(psi.avg_total_usec[VMCG_PSI_SOME], ==, 5 * SEC);
}

static void test_avg_saturates_at_100(void)
{
	uint64_t expect[3] = { 0, 0, 0 };
	VmcgPsi psi;
	int i;

	/* calc_load() rounds up while rising: avg10 reaches 100.00 exactly. */
	vmcg_psi_init(&psi, T0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0, 2, 2), ==, 0);
	for (i = 1; i <= 100; i++) {
		uint32_t avg[3];
		uint64_t total;

		vmcg_psi_update(&psi, T0 + (uint64_t)i * VMCG_PSI_PERIOD_USEC);
		ref_sample(expect, 100);
		vmcg_psi_read(&psi, VMCG_PSI_FULL, avg, &total);
		g_assert_cmpuint(avg[0], <=, 10000);
	}
	assert_avg(&psi, VMCG_PSI_FULL, expect);
	assert_read(&psi, VMCG_PSI_FULL, 10000, 9641, 4965, 200 * SEC);
}

static void test_read_agrees_with_format(void)
{
	VmcgPsi psi;
	int i;

	/* Over a varying stall pattern, read's digits are the printed ones. */
	vmcg_psi_init(&psi, T0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0, 3, 0), ==, 0);
	for (i = 0; i < 200; i++) {
		uint64_t start = T0 + (uint64_t)i * VMCG_PSI_PERIOD_USEC;
		uint64_t stall = (uint64_t)((i * 7919) % 2000) * 1000;
		uint32_t s[3], f[3];
		uint64_t st, ft;
		char buf[160];
		g_autofree char *expect = NULL;

		g_assert_cmpint(vmcg_psi_change(&psi, start, 0, 3), ==, 0);
		g_assert_cmpint(vmcg_psi_change(&psi, start + stall / 2, 0, -1), ==, 0);
		g_assert_cmpint(vmcg_psi_change(&psi, start + stall, 0, -2), ==, 0);
		vmcg_psi_update(&psi, start + VMCG_PSI_PERIOD_USEC);

		vmcg_psi_read(&psi, VMCG_PSI_SOME, s, &st);
		vmcg_psi_read(&psi, VMCG_PSI_FULL, f, &ft);
		expect = g_strdup_printf("some avg10=%u.%02u avg60=%u.%02u avg300=%u.%02u "
					 "total=%" G_GUINT64_FORMAT "\n"
					 "full avg10=%u.%02u avg60=%u.%02u avg300=%u.%02u "
					 "total=%" G_GUINT64_FORMAT "\n",
					 s[0] / 100, s[0] % 100, s[1] / 100, s[1] % 100, s[2] / 100,
					 s[2] % 100, st, f[0] / 100, f[0] % 100, f[1] / 100,
					 f[1] % 100, f[2] / 100, f[2] % 100, ft);
		g_assert_cmpint(vmcg_psi_format(&psi, buf, sizeof(buf)), ==, (int)strlen(expect));
		g_assert_cmpstr(buf, ==, expect);
	}
	/* The pattern did move the averages away from 0. */
	g_assert_cmpuint(psi.avg[VMCG_PSI_SOME][0], >, 0);
	g_assert_cmpuint(psi.avg[VMCG_PSI_FULL][0], >, 0);
}

/* ---- errors ---- */

static void test_einval_negative_counts(void)
{
	VmcgPsi psi, before;

	vmcg_psi_init(&psi, T0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0, 2, 1), ==, 0);
	memcpy(&before, &psi, sizeof(psi));

	g_assert_cmpint(vmcg_psi_change(&psi, T0 + SEC, -3, -1), ==, -EINVAL);
	g_assert_cmpint(vmcg_psi_change(&psi, T0 + SEC, 0, -2), ==, -EINVAL);
	g_assert_cmpint(vmcg_psi_change(&psi, T0 + SEC, INT32_MIN, 0), ==, -EINVAL);
	/* Nothing changed, not even the time charged to the old state. */
	g_assert_cmpmem(&psi, sizeof(psi), &before, sizeof(before));
}

static void test_einval_stalled_exceeds_active(void)
{
	VmcgPsi psi, before;

	vmcg_psi_init(&psi, T0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0, 2, 1), ==, 0);
	memcpy(&before, &psi, sizeof(psi));

	g_assert_cmpint(vmcg_psi_change(&psi, T0 + SEC, 0, 2), ==, -EINVAL);
	/* A stalled vCPU cannot go idle without resuming first. */
	g_assert_cmpint(vmcg_psi_change(&psi, T0 + SEC, -2, 0), ==, -EINVAL);
	g_assert_cmpmem(&psi, sizeof(psi), &before, sizeof(before));

	/* Both at once is fine. */
	g_assert_cmpint(vmcg_psi_change(&psi, T0 + SEC, -1, -1), ==, 0);
	g_assert_cmpuint(psi.nr_active, ==, 1);
	g_assert_cmpuint(psi.nr_stalled, ==, 0);
}

static void test_einval_time_backwards(void)
{
	VmcgPsi psi, before;

	vmcg_psi_init(&psi, T0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0 + 5 * SEC, 1, 1), ==, 0);
	memcpy(&before, &psi, sizeof(psi));
	g_assert_cmpint(vmcg_psi_change(&psi, T0 + 5 * SEC - 1, 0, -1), ==, -EINVAL);
	g_assert_cmpint(vmcg_psi_change(&psi, 0, 0, -1), ==, -EINVAL);
	g_assert_cmpmem(&psi, sizeof(psi), &before, sizeof(before));
	/* The same instant is not backwards. */
	g_assert_cmpint(vmcg_psi_change(&psi, T0 + 5 * SEC, 0, -1), ==, 0);
}

static void test_update_time_backwards_ignored(void)
{
	VmcgPsi psi, before;

	vmcg_psi_init(&psi, T0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0, 1, 1), ==, 0);
	vmcg_psi_update(&psi, T0 + 3 * SEC);
	memcpy(&before, &psi, sizeof(psi));
	vmcg_psi_update(&psi, T0 + 1 * SEC);
	vmcg_psi_update(&psi, 0);
	g_assert_cmpmem(&psi, sizeof(psi), &before, sizeof(before));
	vmcg_psi_update(&psi, T0 + 4 * SEC);
	g_assert_cmpuint(total_of(&psi, VMCG_PSI_SOME), ==, 4 * SEC);
}

static void test_einval_full_exceeds_some(void)
{
	VmcgPsi psi, before;

	vmcg_psi_init(&psi, T0);
	g_assert_cmpint(vmcg_psi_add_stall(&psi, 10, 10), ==, 0);
	memcpy(&before, &psi, sizeof(psi));
	g_assert_cmpint(vmcg_psi_add_stall(&psi, 10, 11), ==, -EINVAL);
	g_assert_cmpint(vmcg_psi_add_stall(&psi, 0, 1), ==, -EINVAL);
	/* Would wrap total[SOME]. */
	g_assert_cmpint(vmcg_psi_add_stall(&psi, UINT64_MAX - 9, 0), ==, -EINVAL);
	g_assert_cmpmem(&psi, sizeof(psi), &before, sizeof(before));

	g_assert_cmpint(vmcg_psi_add_stall(&psi, 7, 3), ==, 0);
	g_assert_cmpuint(total_of(&psi, VMCG_PSI_SOME), ==, 17);
	g_assert_cmpuint(total_of(&psi, VMCG_PSI_FULL), ==, 13);
	g_assert_cmpint(vmcg_psi_add_stall(&psi, UINT64_MAX - 17, 0), ==, 0);
}

/* ---- format ---- */

static void test_format_exact(void)
{
	static const char expect[] = "some avg10=18.11 avg60=3.27 avg300=0.68 total=2000000\n"
				     "full avg10=9.05 avg60=1.63 avg300=0.34 total=1000000\n";
	VmcgPsi psi;
	char buf[160];

	/*
	 * 2 vCPUs, both stalled for the first second, one for the second:
	 * some 100 % and full 50 % of the period. 50 %: avg10 = (102400 *
	 * 371 + 2047) / 2048 = 18550 = 9 + 118/2048, printed 9.05.
	 */
	vmcg_psi_init(&psi, T0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0, 2, 2), ==, 0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0 + SEC, 0, -1), ==, 0);
	g_assert_cmpint(vmcg_psi_change(&psi, T0 + 2 * SEC, 0, -1), ==, 0);
	vmcg_psi_update(&psi, T0 + 2 * SEC);

	g_assert_cmpint(vmcg_psi_format(&psi, buf, sizeof(buf)), ==, (int)strlen(expect));
	g_assert_cmpstr(buf, ==, expect);
	assert_read(&psi, VMCG_PSI_FULL, 905, 163, 34, SEC);
}

static void test_format_enospc(void)
{
	static const char expect[] = "some avg10=0.00 avg60=0.00 avg300=0.00 total=42\n"
				     "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
	const int len = (int)strlen(expect);
	VmcgPsi psi;
	char buf[160];

	vmcg_psi_init(&psi, T0);
	g_assert_cmpint(vmcg_psi_add_stall(&psi, 42, 0), ==, 0);

	/* Exactly enough for the NUL. */
	memset(buf, 'x', sizeof(buf));
	g_assert_cmpint(vmcg_psi_format(&psi, buf, (size_t)len + 1), ==, len);
	g_assert_cmpstr(buf, ==, expect);

	/* One short: truncated and terminated. */
	memset(buf, 'x', sizeof(buf));
	g_assert_cmpint(vmcg_psi_format(&psi, buf, (size_t)len), ==, -ENOSPC);
	g_assert_cmpuint(strlen(buf), ==, (size_t)len - 1);
	g_assert_cmpint(strncmp(buf, expect, (size_t)len - 1), ==, 0);

	/* Shorter than the first line. */
	memset(buf, 'x', sizeof(buf));
	g_assert_cmpint(vmcg_psi_format(&psi, buf, 10), ==, -ENOSPC);
	g_assert_cmpstr(buf, ==, "some avg1");

	memset(buf, 'x', sizeof(buf));
	g_assert_cmpint(vmcg_psi_format(&psi, buf, 1), ==, -ENOSPC);
	g_assert_cmpstr(buf, ==, "");

	/* Size 0: nothing may be written. */
	memset(buf, 'x', sizeof(buf));
	g_assert_cmpint(vmcg_psi_format(&psi, buf, 0), ==, -ENOSPC);
	g_assert_cmpint(buf[0], ==, 'x');
}

static void test_format_worst_case_fits_160(void)
{
	static const char expect[] =
		"some avg10=100.00 avg60=100.00 avg300=100.00 total=18446744073709551615\n"
		"full avg10=100.00 avg60=100.00 avg300=100.00 total=18446744073709551615\n";
	VmcgPsi psi;
	char buf[160];
	int s, w;

	/*
	 * The widest output: every average at 100 % (the most calc_load()
	 * can reach, see saturates-at-100) and totals at their maximum. Set
	 * directly, as reaching avg300 = 100.00 takes over 1000 periods.
	 */
	vmcg_psi_init(&psi, T0);
	g_assert_cmpint(vmcg_psi_add_stall(&psi, UINT64_MAX, UINT64_MAX), ==, 0);
	for (s = 0; s < _VMCG_PSI_STATE_COUNT; s++)
		for (w = 0; w < 3; w++)
			psi.avg[s][w] = 100 * REF_FIXED_1;

	g_assert_cmpint(vmcg_psi_format(&psi, buf, sizeof(buf)), ==, (int)strlen(expect));
	g_assert_cmpstr(buf, ==, expect);
	assert_read(&psi, VMCG_PSI_SOME, 10000, 10000, 10000, UINT64_MAX);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);

	g_test_add_func("/psi/init", test_init);
	g_test_add_func("/psi/state/some-vs-full", test_some_vs_full);
	g_test_add_func("/psi/state/idle-vcpus-not-counted-for-full",
			test_idle_vcpus_not_counted_for_full);
	g_test_add_func("/psi/state/no-stall-no-time", test_no_stall_no_time);
	g_test_add_func("/psi/state/totals-across-changes", test_totals_across_changes);
	g_test_add_func("/psi/state/zero-filled-starts-lazily", test_zero_filled_starts_lazily);

	g_test_add_func("/psi/avg/one-period", test_avg_one_period);
	g_test_add_func("/psi/avg/several-periods", test_avg_several_periods);
	g_test_add_func("/psi/avg/partial-some-not-full", test_avg_partial_some_not_full);
	g_test_add_func("/psi/avg/before-period-end", test_avg_before_period_end);
	g_test_add_func("/psi/avg/late-update-period-length", test_avg_late_update_period_length);
	g_test_add_func("/psi/avg/missed-periods-decay", test_avg_missed_periods_decay);
	g_test_add_func("/psi/avg/missed-periods-stall-deferred",
			test_avg_missed_periods_stall_deferred);
	g_test_add_func("/psi/avg/sample-clamp", test_avg_sample_clamp);
	g_test_add_func("/psi/avg/saturates-at-100", test_avg_saturates_at_100);
	g_test_add_func("/psi/avg/read-agrees-with-format", test_read_agrees_with_format);

	g_test_add_func("/psi/einval/negative-counts", test_einval_negative_counts);
	g_test_add_func("/psi/einval/stalled-exceeds-active", test_einval_stalled_exceeds_active);
	g_test_add_func("/psi/einval/time-backwards", test_einval_time_backwards);
	g_test_add_func("/psi/einval/full-exceeds-some", test_einval_full_exceeds_some);
	g_test_add_func("/psi/update/time-backwards-ignored", test_update_time_backwards_ignored);

	g_test_add_func("/psi/format/exact", test_format_exact);
	g_test_add_func("/psi/format/enospc", test_format_enospc);
	g_test_add_func("/psi/format/worst-case-fits-160", test_format_worst_case_fits_160);

	return g_test_run();
}
