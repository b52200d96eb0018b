// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests for lib/reclaim.c: scenario tables worked out by hand, then
 * invariants over pseudo-random inputs.
 *
 * In the drawings "weight" is what a VM's share is proportional to and
 * "cap" the most it can give in that pass:
 *   pass 1: weight = usage - max(emin, elow)
 *           cap    = usage - max(emin, elow, floor)
 *   pass 2: (on what pass 1 left) weight = left - emin
 *           cap    = left - max(emin, floor)
 */
#include <errno.h>
#include <glib.h>
#include <string.h>

#include "vmcg/counter.h"
#include "vmcg/reclaim.h"

/* One VM of a scenario table: usage, emin, elow, floor. */
static VmcgReclaimTarget vm(uint64_t usage, uint64_t emin, uint64_t elow, uint64_t floor_pages)
{
	return (VmcgReclaimTarget){
		.usage_pages = usage,
		.emin_pages = emin,
		.elow_pages = elow,
		.floor_pages = floor_pages,
	};
}

/* Plan, and check the summary against the results on every call. */
static VmcgReclaimSummary plan(const VmcgReclaimTarget *t, size_t n, uint64_t nr,
			       VmcgReclaimResult *ret)
{
	VmcgReclaimSummary s;
	uint64_t sum = 0;
	bool any_breach = false;
	size_t i;

	memset(&s, 0xa5, sizeof(s));
	g_assert_cmpint(vmcg_reclaim_plan(t, n, nr, ret, &s), ==, 0);
	for (i = 0; i < n; i++) {
		sum += ret[i].take_pages;
		any_breach |= ret[i].low_breached;
	}
	g_assert_cmpuint(s.planned_pages, ==, sum);
	g_assert_cmpuint(s.shortfall_pages, ==, nr - sum);
	g_assert_cmpint(s.low_reclaim, ==, any_breach);
	return s;
}

static void assert_takes(const VmcgReclaimResult *r, size_t n, const uint64_t *take,
			 const bool *breached)
{
	size_t i;

	for (i = 0; i < n; i++) {
		g_assert_cmpuint(r[i].take_pages, ==, take[i]);
		g_assert_cmpint(r[i].low_breached, ==, breached ? breached[i] : false);
	}
}

/*
 * Plain proportional split, nothing at or below its protection:
 *
 *   VM  usage  emin  elow  floor  weight = cap
 *   A   1000   200      0      0    800
 *   B    600     0    200      0    400
 *   C    300     0      0      0    300
 *                                  ----
 *                                  1500
 *
 * nr_to_reclaim = 300, lambda = 300 / 1500 = 1/5:
 *   A 160, B 80, C 60, no remainders, no pass 2, no shortfall.
 */
static void test_proportional(void)
{
	const VmcgReclaimTarget t[] = {
		vm(1000, 200, 0, 0),
		vm(600, 0, 200, 0),
		vm(300, 0, 0, 0),
	};
	const uint64_t take[] = { 160, 80, 60 };
	VmcgReclaimResult r[3];
	VmcgReclaimSummary s = plan(t, 3, 300, r);

	assert_takes(r, 3, take, NULL);
	g_assert_cmpuint(s.planned_pages, ==, 300);
	g_assert_cmpuint(s.shortfall_pages, ==, 0);
	g_assert_false(s.low_reclaim);
}

/*
 * A VM under its low is skipped while its siblings can pay:
 *
 *   VM  usage  emin  elow  floor  pass 1
 *   A    500     0    600      0  skipped (usage <= elow)
 *   B    400     0      0      0  weight = cap = 400
 *   C    200     0      0      0  weight = cap = 200
 *
 * nr = 300, lambda = 300 / 600 = 1/2: B 200, C 100, A 0. Pass 1 covers it,
 * so A's low holds and no low event is due.
 */
static void test_low_skipped(void)
{
	const VmcgReclaimTarget t[] = {
		vm(500, 0, 600, 0),
		vm(400, 0, 0, 0),
		vm(200, 0, 0, 0),
	};
	const uint64_t take[] = { 0, 200, 100 };
	VmcgReclaimResult r[3];
	VmcgReclaimSummary s = plan(t, 3, 300, r);

	assert_takes(r, 3, take, NULL);
	g_assert_cmpuint(s.shortfall_pages, ==, 0);
	g_assert_false(s.low_reclaim);
}

/*
 * Siblings cannot cover it: pass 2 breaks into low.
 *
 *   VM  usage  emin  elow  floor  pass 1 weight / cap
 *   A    500   100    600      0  skipped (usage <= elow, > emin)
 *   B    400     0    300      0  100 / 100
 *   C    200     0      0    150  200 / 50 (floor)
 *
 * nr = 400. Pass 1 capacity 150 < 400: B 100, C 50; 250 short, and A's low
 * kept 400 pages back (memcg_low_skipped), so pass 2 runs on what is left:
 *
 *   VM  left  weight = left - emin  cap = left - max(emin, floor)
 *   A    500  400                   400
 *   B    300  300                   300
 *   C    150  150                     0 (at its floor: out)
 *
 * need 250 over weight 700: A 250*400/700 = 142 6/7, B 250*300/700 =
 * 107 1/7. Floors 249, the 1 remainder page to the larger fraction, A.
 * Totals: A 143 (breached), B 100 + 107 = 207 (breached: it gave pages
 * below its elow of 300), C 50 (not breached, nothing in pass 2).
 */
static void test_low_reclaim(void)
{
	const VmcgReclaimTarget t[] = {
		vm(500, 100, 600, 0),
		vm(400, 0, 300, 0),
		vm(200, 0, 0, 150),
	};
	const uint64_t take[] = { 143, 207, 50 };
	const bool breached[] = { true, true, false };
	VmcgReclaimResult r[3];
	VmcgReclaimSummary s = plan(t, 3, 400, r);

	assert_takes(r, 3, take, breached);
	g_assert_cmpuint(s.planned_pages, ==, 400);
	g_assert_cmpuint(s.shortfall_pages, ==, 0);
	g_assert_true(s.low_reclaim);
}

/*
 * In pass 2 a floor still caps but does not weigh: the weight is what is
 * left above emin, as in pass 1 it is usage above max(emin, elow).
 *
 *   VM  usage  emin  elow  floor  pass 1   pass 2 weight / cap
 *   A    500     0    500    300  skipped  500 / 200
 *   B    500     0    500      0  skipped  500 / 500
 *
 * nr = 300: pass 1 has nothing; pass 2 lambda = 300 / 1000: A 150, B 150,
 * both breached. (Were A's weight left - floor = 200, it would give 85.)
 */
static void test_low_reclaim_floor(void)
{
	const VmcgReclaimTarget t[] = { vm(500, 0, 500, 300), vm(500, 0, 500, 0) };
	const uint64_t take[] = { 150, 150 };
	const bool breached[] = { true, true };
	VmcgReclaimResult r[2];
	VmcgReclaimSummary s = plan(t, 2, 300, r);

	assert_takes(r, 2, take, breached);
	g_assert_cmpuint(s.shortfall_pages, ==, 0);
	g_assert_true(s.low_reclaim);
}

/*
 * Low held pages back without anyone being skipped: the kernel's
 * reduced-force scan (get_scan_count(), low > min) also sets
 * memcg_low_skipped, so it retries rather than OOM.
 *
 *   VM  usage  emin  elow  floor  pass 1 weight / cap
 *   A    100     0     80      0  20 / 20
 *
 * nr = 50: pass 1 takes 20 and is 30 short; pass 2 on left 80, cap 80,
 * takes 30. A gives 50, breached, no shortfall.
 *
 * Same VM with floor 80: the floor, not low, holds those 80 pages, so
 * there is nothing for pass 2 and it does not run: 20 taken, 30 short,
 * no low event.
 */
static void test_low_reduced_force(void)
{
	const VmcgReclaimTarget t[] = { vm(100, 0, 80, 0) };
	const VmcgReclaimTarget tf[] = { vm(100, 0, 80, 80) };
	const uint64_t take[] = { 50 }, take_f[] = { 20 };
	const bool breached[] = { true };
	VmcgReclaimResult r[1];
	VmcgReclaimSummary s;

	s = plan(t, 1, 50, r);
	assert_takes(r, 1, take, breached);
	g_assert_cmpuint(s.shortfall_pages, ==, 0);
	g_assert_true(s.low_reclaim);

	s = plan(tf, 1, 50, r);
	assert_takes(r, 1, take_f, NULL);
	g_assert_cmpuint(s.shortfall_pages, ==, 30);
	g_assert_false(s.low_reclaim);
}

/*
 * memory.min is never breached, not even in pass 2; what cannot be had is
 * a shortfall (the caller's OOM path).
 *
 *   VM  usage  emin  elow  floor  pass 1      pass 2
 *   A    300   200    250      0  cap 50      left 250, cap 50
 *   B    100   100      0      0  below min   below min
 *   C    150   200      0      0  emin > usage: nothing, ever
 *
 * nr = 500: pass 1 A 50; 450 short and A's low held 50 pages: pass 2
 * A 50 more. Planned 100, shortfall 400; A breached (low 250 -> 200).
 *
 * Without A's low (elow 0) the same 100 pages come out in pass 1 and
 * there is no pass 2 and no low event; still 400 short.
 */
static void test_min_never_breached(void)
{
	const VmcgReclaimTarget t[] = {
		vm(300, 200, 250, 0),
		vm(100, 100, 0, 0),
		vm(150, 200, 0, 0),
	};
	const VmcgReclaimTarget t0[] = {
		vm(300, 200, 0, 0),
		vm(100, 100, 0, 0),
		vm(150, 200, 0, 0),
	};
	const uint64_t take[] = { 100, 0, 0 };
	const bool breached[] = { true, false, false };
	VmcgReclaimResult r[3];
	VmcgReclaimSummary s;

	s = plan(t, 3, 500, r);
	assert_takes(r, 3, take, breached);
	g_assert_cmpuint(s.planned_pages, ==, 100);
	g_assert_cmpuint(s.shortfall_pages, ==, 400);
	g_assert_true(s.low_reclaim);

	s = plan(t0, 3, 500, r);
	assert_takes(r, 3, take, NULL);
	g_assert_cmpuint(s.shortfall_pages, ==, 400);
	g_assert_false(s.low_reclaim);
}

/*
 * A floor caps a VM's take but not its weight; the excess goes to the
 * others in proportion.
 *
 *   VM  usage  floor  weight  cap
 *   A   1000    900   1000    100
 *   B   1000      0   1000   1000
 *   C    500      0    500    500
 *
 * nr = 1000. lambda = 1000 / 2500 = 0.4 asks A for 400 > 100: A capped at
 * 100. The other 900 over weight 1500: lambda 0.6, B 600, C 300.
 * (Were the weight usage - floor, A would weigh 100 and B get 625.)
 */
static void test_floor_redistribution(void)
{
	const VmcgReclaimTarget t[] = {
		vm(1000, 0, 0, 900),
		vm(1000, 0, 0, 0),
		vm(500, 0, 0, 0),
	};
	const uint64_t take[] = { 100, 600, 300 };
	VmcgReclaimResult r[3];
	VmcgReclaimSummary s = plan(t, 3, 1000, r);

	assert_takes(r, 3, take, NULL);
	g_assert_cmpuint(s.shortfall_pages, ==, 0);
}

/*
 * Redistribution cascades: A's excess pushes C over its cap.
 *
 *   VM  usage  floor  weight  cap
 *   A   1000    900   1000    100
 *   B   1000      0   1000   1000
 *   C    500    250    500    250
 *
 * nr = 1100. lambda = 1100 / 2500 = 0.44: A 440 > 100, capped; C 220 fits.
 * 1000 left over weight 1500: lambda 2/3, C 333 > 250, capped.
 * 750 left over weight 1000: B 750.  A 100, B 750, C 250.
 */
static void test_floor_cascade(void)
{
	const VmcgReclaimTarget t[] = {
		vm(1000, 0, 0, 900),
		vm(1000, 0, 0, 0),
		vm(500, 0, 0, 250),
	};
	const uint64_t take[] = { 100, 750, 250 };
	VmcgReclaimResult r[3];

	plan(t, 3, 1100, r);
	assert_takes(r, 3, take, NULL);
}

/*
 * Integer remainders: one page each to the largest fractional part, ties
 * to the lower index.
 *
 * 1) usage 10, 20, 40 (weights 1:2:4), nr 10: shares 10/7, 20/7, 40/7 =
 *    1 3/7, 2 6/7, 5 5/7. Floors 8, 2 pages left: to 6/7 and 5/7.
 *    Takes 1, 3, 6; the same VMs in reverse order give 6, 3, 1.
 * 2) usage 30, 10, 10, nr 2: shares 1.2, 0.4, 0.4. Floors 1, 1 page left:
 *    the fractions .4 tie, so the lower index wins. Takes 1, 1, 0: the
 *    largest VM does not get the extra page, its fraction is smallest.
 * 3) three equal VMs of 100, nr 2: 2/3 each, ties: 1, 1, 0; nr 1: 1, 0, 0.
 */
static void test_rounding(void)
{
	const VmcgReclaimTarget t1[] = { vm(10, 0, 0, 0), vm(20, 0, 0, 0), vm(40, 0, 0, 0) };
	const VmcgReclaimTarget t1r[] = { vm(40, 0, 0, 0), vm(20, 0, 0, 0), vm(10, 0, 0, 0) };
	const VmcgReclaimTarget t2[] = { vm(30, 0, 0, 0), vm(10, 0, 0, 0), vm(10, 0, 0, 0) };
	const VmcgReclaimTarget t3[] = { vm(100, 0, 0, 0), vm(100, 0, 0, 0), vm(100, 0, 0, 0) };
	const uint64_t take1[] = { 1, 3, 6 }, take1r[] = { 6, 3, 1 };
	const uint64_t take2[] = { 1, 1, 0 };
	const uint64_t take3a[] = { 1, 1, 0 }, take3b[] = { 1, 0, 0 };
	VmcgReclaimResult r[3], again[3];

	plan(t1, 3, 10, r);
	assert_takes(r, 3, take1, NULL);
	plan(t1, 3, 10, again);
	g_assert_cmpmem(r, sizeof(r), again, sizeof(again));
	plan(t1r, 3, 10, r);
	assert_takes(r, 3, take1r, NULL);

	plan(t2, 3, 2, r);
	assert_takes(r, 3, take2, NULL);

	plan(t3, 3, 2, r);
	assert_takes(r, 3, take3a, NULL);
	plan(t3, 3, 1, r);
	assert_takes(r, 3, take3b, NULL);
}

/*
 * Zero inputs.
 * - n = 0 (NULL arrays allowed): nothing planned, all of nr is shortfall.
 * - nr = 0: every take 0 and @ret zeroed even if it held garbage.
 * - every VM at zero usage: nothing to take, all shortfall.
 */
static void test_zero(void)
{
	const VmcgReclaimTarget t[] = { vm(100, 0, 0, 0), vm(50, 0, 60, 0) };
	const VmcgReclaimTarget z[] = { vm(0, 0, 0, 0), vm(0, 0, 10, 0) };
	const uint64_t none[] = { 0, 0 };
	VmcgReclaimResult r[2];
	VmcgReclaimSummary s;

	g_assert_cmpint(vmcg_reclaim_plan(NULL, 0, 77, NULL, &s), ==, 0);
	g_assert_cmpuint(s.planned_pages, ==, 0);
	g_assert_cmpuint(s.shortfall_pages, ==, 77);
	g_assert_false(s.low_reclaim);
	g_assert_cmpint(vmcg_reclaim_plan(NULL, 0, UINT64_MAX, NULL, NULL), ==, 0);

	memset(r, 0xff, sizeof(r));
	s = plan(t, 2, 0, r);
	assert_takes(r, 2, none, NULL);
	g_assert_cmpuint(s.shortfall_pages, ==, 0);
	g_assert_false(s.low_reclaim);

	s = plan(z, 2, 5, r);
	assert_takes(r, 2, none, NULL);
	g_assert_cmpuint(s.shortfall_pages, ==, 5);
	g_assert_false(s.low_reclaim);
}

/*
 * Huge inputs: no overflow anywhere.
 * 1) A 3 * 2^49, B 2^49, nr 2^50: lambda 1/2, A 3 * 2^48, B 2^48.
 * 2) nr = UINT64_MAX:
 *      A usage 100, elow 50     pass 1 50, pass 2 50 -> 100, breached
 *      B usage UINT64_MAX       read as VMCG_PAGES_MAX, all of it
 *      C usage = emin = UINT64_MAX: nothing
 *    planned 100 + VMCG_PAGES_MAX, the rest shortfall.
 * 3) 1000 VMs at VMCG_PAGES_MAX, nr = 1000 * 2^40 + 7: 2^40 each, the 7
 *    remainder pages (all fractions tie) to VMs 0..6.
 */
static void test_huge(void)
{
	const uint64_t e49 = UINT64_C(1) << 49;
	const VmcgReclaimTarget t1[] = { vm(3 * e49, 0, 0, 0), vm(e49, 0, 0, 0) };
	const VmcgReclaimTarget t2[] = {
		vm(100, 0, 50, 0),
		vm(UINT64_MAX, 0, 0, 0),
		vm(UINT64_MAX, UINT64_MAX, 0, 0),
	};
	const uint64_t take1[] = { 3 * (e49 >> 1), e49 >> 1 };
	const uint64_t take2[] = { 100, VMCG_PAGES_MAX, 0 };
	const bool breached2[] = { true, false, false };
	g_autofree VmcgReclaimTarget *many = g_new0(VmcgReclaimTarget, 1000);
	g_autofree VmcgReclaimResult *rm = g_new0(VmcgReclaimResult, 1000);
	VmcgReclaimResult r[3];
	VmcgReclaimSummary s;
	size_t i;

	plan(t1, 2, UINT64_C(1) << 50, r);
	assert_takes(r, 2, take1, NULL);

	s = plan(t2, 3, UINT64_MAX, r);
	assert_takes(r, 3, take2, breached2);
	g_assert_cmpuint(s.planned_pages, ==, 100 + VMCG_PAGES_MAX);
	g_assert_cmpuint(s.shortfall_pages, ==, UINT64_MAX - 100 - VMCG_PAGES_MAX);
	g_assert_true(s.low_reclaim);

	for (i = 0; i < 1000; i++)
		many[i].usage_pages = VMCG_PAGES_MAX;
	s = plan(many, 1000, 1000 * (UINT64_C(1) << 40) + 7, rm);
	for (i = 0; i < 1000; i++)
		g_assert_cmpuint(rm[i].take_pages, ==, (UINT64_C(1) << 40) + (i < 7));
	g_assert_cmpuint(s.shortfall_pages, ==, 0);

	s = plan(many, 1000, UINT64_MAX, rm);
	for (i = 0; i < 1000; i++)
		g_assert_cmpuint(rm[i].take_pages, ==, VMCG_PAGES_MAX);
	g_assert_cmpuint(s.planned_pages, ==, 1000 * VMCG_PAGES_MAX);
}

/*
 * Odd but possible inputs (emin from a parent's stale usage, stats racing
 * a balloon):
 *
 *   VM  usage  emin  elow  floor
 *   A    100   150     50      0  emin > usage: nothing
 *   B    100    20     10    500  elow < emin, floor > usage: weight 80, cap 0
 *   C    100    20     10      0  elow < emin: weight = cap = 80
 *
 * nr = 1000: C 80, the rest short. No VM's low held anything above its
 * emin or floor, so no pass 2.
 */
static void test_odd_input(void)
{
	const VmcgReclaimTarget t[] = {
		vm(100, 150, 50, 0),
		vm(100, 20, 10, 500),
		vm(100, 20, 10, 0),
	};
	const uint64_t take[] = { 0, 0, 80 };
	VmcgReclaimResult r[3];
	VmcgReclaimSummary s = plan(t, 3, 1000, r);

	assert_takes(r, 3, take, NULL);
	g_assert_cmpuint(s.shortfall_pages, ==, 920);
	g_assert_false(s.low_reclaim);

	/* B's zero cap leaves the split to C alone: 40 of 80. */
	s = plan(t, 3, 40, r);
	g_assert_cmpuint(r[1].take_pages, ==, 0);
	g_assert_cmpuint(r[2].take_pages, ==, 40);
}

/* Errors leave @ret and the summary untouched. */
static void test_errors(void)
{
	const VmcgReclaimTarget t[] = { vm(100, 0, 0, 0) };
	VmcgReclaimResult r[1], sentinel[1];
	VmcgReclaimSummary s, s_sentinel;

	memset(r, 0x5a, sizeof(r));
	memcpy(sentinel, r, sizeof(r));
	memset(&s, 0x5a, sizeof(s));
	s_sentinel = s;

	g_assert_cmpint(vmcg_reclaim_plan(NULL, 1, 10, r, &s), ==, -EINVAL);
	g_assert_cmpint(vmcg_reclaim_plan(t, 1, 10, NULL, &s), ==, -EINVAL);
	/* Rejected on @n alone, before anything is read. */
	g_assert_cmpint(vmcg_reclaim_plan(t, ((size_t)1 << 26) + 1, 10, r, &s), ==, -E2BIG);
	g_assert_cmpmem(r, sizeof(r), sentinel, sizeof(sentinel));
	g_assert_cmpmem(&s, sizeof(s), &s_sentinel, sizeof(s_sentinel));

	/* The summary is optional. */
	g_assert_cmpint(vmcg_reclaim_plan(t, 1, 10, r, NULL), ==, 0);
	g_assert_cmpuint(r[0].take_pages, ==, 10);
}

/* xorshift64*: fixed seed, the same sequence on every host. */
static uint64_t rng_state = UINT64_C(0x9e3779b97f4a7c15);

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * UINT64_C(0x2545f4914f6cdd1d);
}

static uint64_t rnd_below(uint64_t bound)
{
	return bound ? rnd() % bound : 0;
}

static uint64_t above(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

static uint64_t max3(uint64_t a, uint64_t b, uint64_t c)
{
	return MAX(a, MAX(b, c));
}

/* A protection: often none, else anywhere from 0 to a bit above usage. */
static uint64_t rnd_prot(uint64_t usage, uint64_t scale)
{
	switch (rnd_below(4)) {
	case 0:
	case 1:
		return 0;
	case 2:
		return MIN(rnd_below(usage + usage / 4 + 2), VMCG_PAGES_MAX);
	default:
		return rnd_below(scale + 1);
	}
}

/*
 * Within one pass, with t < cap meaning "not capped":
 * - no take above its cap;
 * - monotone: weight_a > weight_b and a uncapped -> t_a >= t_b (equal
 *   weights: within the one rounding page);
 * - proportional: every t_b < lambda * w_b + 1 and an uncapped
 *   t_a > lambda * w_a - 1, so (t_b - 1) * w_a < (t_a + 1) * w_b.
 */
static void check_pass(const uint64_t *w, const uint64_t *cap, const uint64_t *t, size_t n)
{
	size_t a, b;

	for (a = 0; a < n; a++)
		g_assert_cmpuint(t[a], <=, cap[a]);

	for (a = 0; a < n; a++) {
		if (t[a] >= cap[a])
			continue;
		for (b = 0; b < n; b++) {
			if (w[a] > w[b])
				g_assert_cmpuint(t[a], >=, t[b]);
			else if (w[a] == w[b])
				g_assert_cmpuint(t[a] + 1, >=, t[b]);
			if (t[b] > 0)
				g_assert_true((unsigned __int128)(t[b] - 1) * w[a] <
					      (unsigned __int128)(t[a] + 1) * w[b]);
		}
	}
}

/*
 * The header's water filling done the slow, obvious way, to compare with
 * the library's sort-and-select: cap everything at or over lambda, recompute
 * lambda over the rest, until nothing changes; then floors, and one page
 * each to the largest remainders (ties to the lower index), picked one at a
 * time.
 */
static void ref_fill(const uint64_t *w, const uint64_t *cap, size_t n, uint64_t need, uint64_t *out)
{
	g_autofree bool *capped = g_new0(bool, n);
	g_autofree bool *got = g_new0(bool, n);
	g_autofree unsigned __int128 *rem = g_new0(unsigned __int128, n);
	unsigned __int128 r, wsum;
	bool changed = true;
	uint64_t extra;
	size_t i, e;

	for (i = 0; i < n; i++)
		capped[i] = cap[i] == 0;

	while (changed) {
		changed = false;
		r = need;
		wsum = 0;
		for (i = 0; i < n; i++) {
			if (capped[i])
				r -= cap[i];
			else
				wsum += w[i];
		}
		for (i = 0; i < n; i++) {
			if (!capped[i] && cap[i] * wsum <= r * w[i]) {
				capped[i] = true;
				changed = true;
			}
		}
	}

	extra = (uint64_t)r;
	for (i = 0; i < n; i++) {
		if (capped[i]) {
			out[i] = cap[i];
			continue;
		}
		out[i] = (uint64_t)(r * w[i] / wsum);
		rem[i] = r * w[i] % wsum;
		extra -= out[i];
	}
	for (e = 0; e < extra; e++) {
		size_t best = n;

		for (i = 0; i < n; i++)
			if (!capped[i] && !got[i] && (best == n || rem[i] > rem[best]))
				best = i;
		g_assert_cmpuint(best, <, n);
		got[best] = true;
		out[best]++;
		g_assert_cmpuint(out[best], <=, cap[best]);
	}
}

/*
 * A few thousand random groups (fixed seed), each checked against the
 * model of the header: which passes run, how much each takes, caps,
 * monotonicity and proportionality within each pass, exactly the takes of
 * a slow reference water filling, never below emin or the floor, and the
 * same answer twice.
 */
static void test_random_invariants(void)
{
	enum {
		ITER = 4000,
		NMAX = 300
	};
	g_autofree VmcgReclaimTarget *t = g_new0(VmcgReclaimTarget, NMAX);
	g_autofree VmcgReclaimResult *r = g_new0(VmcgReclaimResult, NMAX);
	g_autofree VmcgReclaimResult *r2 = g_new0(VmcgReclaimResult, NMAX);
	g_autofree uint64_t *w = g_new0(uint64_t, NMAX);
	g_autofree uint64_t *cap = g_new0(uint64_t, NMAX);
	g_autofree uint64_t *tk = g_new0(uint64_t, NMAX);
	g_autofree uint64_t *ref = g_new0(uint64_t, NMAX);
	unsigned int runs_pass2 = 0, runs_split = 0, runs_short = 0;
	unsigned int iter;

	for (iter = 0; iter < ITER; iter++) {
		static const uint64_t scales[] = { 8, 1000, 1000000, VMCG_PAGES_MAX };
		uint64_t scale = scales[rnd_below(G_N_ELEMENTS(scales))];
		size_t n = rnd_below(10) ? rnd_below(41) : rnd_below(NMAX + 1);
		unsigned __int128 cap1_sum = 0, cap2_sum = 0, expect;
		bool low_held = false, pass2;
		VmcgReclaimSummary s;
		uint64_t nr;
		size_t i;

		for (i = 0; i < n; i++) {
			uint64_t u = rnd_below(scale + 1);

			t[i] = vm(u, rnd_prot(u, scale), rnd_prot(u, scale), rnd_prot(u, scale));
		}
		for (i = 0; i < n; i++) {
			uint64_t hard = MAX(t[i].emin_pages, t[i].floor_pages);
			uint64_t c1 = above(t[i].usage_pages, max3(t[i].emin_pages, t[i].elow_pages,
								   t[i].floor_pages));

			cap1_sum += c1;
			cap2_sum += above(t[i].usage_pages - c1, hard);
			low_held |= MIN(t[i].usage_pages, t[i].elow_pages) > hard;
		}

		switch (rnd_below(5)) {
		case 0:
			nr = rnd_below(scale + 1);
			break;
		case 1:
			nr = UINT64_MAX;
			break;
		case 2:
			nr = (uint64_t)(cap1_sum + cap2_sum / 2);
			break;
		default:
			nr = rnd_below((uint64_t)cap1_sum + 2);
			break;
		}

		s = plan(t, n, nr, r);
		g_assert_cmpint(vmcg_reclaim_plan(t, n, nr, r2, NULL), ==, 0);
		if (n)
			g_assert_cmpmem(r, n * sizeof(*r), r2, n * sizeof(*r2));

		pass2 = nr > cap1_sum && low_held;
		g_assert_cmpint(s.low_reclaim, ==, pass2);
		expect = MIN((unsigned __int128)nr, cap1_sum);
		if (pass2)
			expect += MIN(nr - (uint64_t)cap1_sum, cap2_sum);
		g_assert_true(s.planned_pages == expect);

		for (i = 0; i < n; i++) {
			uint64_t hard = MAX(t[i].emin_pages, t[i].floor_pages);
			uint64_t prot = MAX(t[i].emin_pages, t[i].elow_pages);

			/* Never below emin or the floor. */
			if (r[i].take_pages)
				g_assert_cmpuint(t[i].usage_pages - r[i].take_pages, >=, hard);

			w[i] = above(t[i].usage_pages, prot);
			cap[i] = above(t[i].usage_pages, MAX(prot, t[i].floor_pages));
			tk[i] = r[i].take_pages;
			if (!pass2) {
				g_assert_false(r[i].low_breached);
				continue;
			}
			/* Pass 1 exhausted every cap; the rest is pass 2. */
			g_assert_cmpuint(tk[i], >=, cap[i]);
			tk[i] -= cap[i];
			g_assert_cmpint(r[i].low_breached, ==, tk[i] > 0);
			w[i] = above(t[i].usage_pages - cap[i], t[i].emin_pages);
			cap[i] = above(t[i].usage_pages - cap[i], hard);
		}
		check_pass(w, cap, tk, n);

		/* Exactly the takes of the slow reference. */
		ref_fill(w, cap, n, pass2 ? s.planned_pages - (uint64_t)cap1_sum : s.planned_pages,
			 ref);
		for (i = 0; i < n; i++)
			g_assert_cmpuint(tk[i], ==, ref[i]);

		runs_pass2 += pass2;
		runs_split += s.planned_pages > 0 && s.planned_pages < cap1_sum + cap2_sum;
		runs_short += s.shortfall_pages > 0;
	}

	g_test_message("%u runs, %u with pass 2, %u split, %u short", ITER, runs_pass2, runs_split,
		       runs_short);
	/* The generator must reach every path, or this test proves little. */
	g_assert_cmpuint(runs_pass2, >, ITER / 20);
	g_assert_cmpuint(runs_split, >, ITER / 4);
	g_assert_cmpuint(runs_short, >, ITER / 20);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);

	g_test_add_func("/reclaim/proportional", test_proportional);
	g_test_add_func("/reclaim/low-skipped", test_low_skipped);
	g_test_add_func("/reclaim/low-reclaim", test_low_reclaim);
	g_test_add_func("/reclaim/low-reclaim-floor", test_low_reclaim_floor);
	g_test_add_func("/reclaim/low-reduced-force", test_low_reduced_force);
	g_test_add_func("/reclaim/min-never-breached", test_min_never_breached);
	g_test_add_func("/reclaim/floor-redistribution", test_floor_redistribution);
	g_test_add_func("/reclaim/floor-cascade", test_floor_cascade);
	g_test_add_func("/reclaim/rounding", test_rounding);
	g_test_add_func("/reclaim/zero", test_zero);
	g_test_add_func("/reclaim/huge", test_huge);
	g_test_add_func("/reclaim/odd-input", test_odd_input);
	g_test_add_func("/reclaim/errors", test_errors);
	g_test_add_func("/reclaim/random-invariants", test_random_invariants);

	return g_test_run();
}
