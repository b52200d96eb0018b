// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests for lib/oom.c: the points of oom_badness() and the victim
 * choice of select_bad_process(), with VMs for tasks.
 *
 *   points = max(usage - protection, 0) + priority * total_pages / 1000
 */
#include <errno.h>
#include <glib.h>

#include "vmcg/oom.h"

/* An eligible candidate: usage, protection, priority. */
static VmcgOomCandidate cand(uint64_t usage, uint64_t protection, int32_t priority)
{
	return (VmcgOomCandidate){
		.usage_pages = usage,
		.protection_pages = protection,
		.priority = priority,
		.eligible = true,
	};
}

static size_t select_ok(const VmcgOomCandidate *c, size_t n, uint64_t total)
{
	size_t idx = SIZE_MAX;

	g_assert_cmpint(vmcg_oom_select(c, n, total, &idx), ==, 0);
	g_assert_cmpuint(idx, <, n);
	return idx;
}

/*
 * Exact points.
 *   usage 500, protection 200, total 10000:
 *     priority    0 -> 300
 *     priority  100 -> 300 + 100 * 10000 / 1000 = 1300
 *   total 1000, priority -500 -> 300 - 500 = -200 (negative, still killable)
 *   usage 100 below protection 200 -> 0
 *   total 1999 (the kernel would use 1999 / 1000 = 1 per unit):
 *     priority  7 -> 300 + 13 (7 * 1999 / 1000 = 13.993, truncated)
 *     priority -7 -> 300 - 13 (truncated toward zero)
 *   total 999, priority 1 -> 300 + 0
 */
static void test_badness_points(void)
{
	const VmcgOomCandidate a = cand(500, 200, 0), b = cand(500, 200, 100);
	const VmcgOomCandidate neg = cand(500, 200, -500), under = cand(100, 200, 0);
	const VmcgOomCandidate p7 = cand(500, 200, 7), m7 = cand(500, 200, -7),
			       p1 = cand(500, 200, 1);

	g_assert_cmpint(vmcg_oom_badness(&a, 10000), ==, 300);
	g_assert_cmpint(vmcg_oom_badness(&b, 10000), ==, 1300);
	g_assert_cmpint(vmcg_oom_badness(&neg, 1000), ==, -200);
	g_assert_cmpint(vmcg_oom_badness(&under, 1000), ==, 0);
	g_assert_cmpint(vmcg_oom_badness(&p7, 1999), ==, 313);
	g_assert_cmpint(vmcg_oom_badness(&m7, 1999), ==, 287);
	g_assert_cmpint(vmcg_oom_badness(&p1, 999), ==, 300);
	g_assert_cmpint(vmcg_oom_badness(&a, 0), ==, 300);
}

/*
 *   VM  usage  protection  above
 *   A   1000     900        100
 *   B    600       0        600   <- victim
 *   C    800     500        300
 * The largest usage (A) is mostly protected; B has the most above it.
 */
static void test_basic_choice(void)
{
	const VmcgOomCandidate c[] = { cand(1000, 900, 0), cand(600, 0, 0), cand(800, 500, 0) };

	g_assert_cmpuint(select_ok(c, 3, 4096), ==, 1);
	g_assert_cmpuint(select_ok(c, 1, 4096), ==, 0);
}

/*
 * Priority moves the choice both ways. total 1000, so one unit of priority
 * is one page:
 *   A usage 400, B usage 300: A (400 vs 300)
 *   B priority  200: B (400 vs 500)
 *   A priority -150: B (250 vs 300)
 *   A priority  -50: A (350 vs 300)
 *   A priority -100: 300 vs 300, tie -> larger usage, A
 */
static void test_priority(void)
{
	VmcgOomCandidate c[] = { cand(400, 0, 0), cand(300, 0, 0) };

	g_assert_cmpuint(select_ok(c, 2, 1000), ==, 0);
	c[1].priority = 200;
	g_assert_cmpuint(select_ok(c, 2, 1000), ==, 1);
	c[1].priority = 0;
	c[0].priority = -150;
	g_assert_cmpuint(select_ok(c, 2, 1000), ==, 1);
	c[0].priority = -50;
	g_assert_cmpuint(select_ok(c, 2, 1000), ==, 0);
	c[0].priority = -100;
	g_assert_cmpint(vmcg_oom_badness(&c[0], 1000), ==, vmcg_oom_badness(&c[1], 1000));
	g_assert_cmpuint(select_ok(c, 2, 1000), ==, 0);
}

/*
 * -1000 makes a VM unkillable however large it is (OOM_SCORE_ADJ_MIN):
 *   A usage 9000 priority -1000 -> INT64_MIN, skipped
 *   B usage   10               -> victim
 */
static void test_unkillable(void)
{
	const VmcgOomCandidate c[] = { cand(9000, 0, VMCG_OOM_PRIORITY_MIN), cand(10, 0, 0) };

	g_assert_cmpint(vmcg_oom_badness(&c[0], 10000), ==, INT64_MIN);
	g_assert_cmpuint(select_ok(c, 2, 10000), ==, 1);
}

/* A paused or dying VM (not eligible) is skipped whatever its points. */
static void test_ineligible(void)
{
	VmcgOomCandidate c[] = { cand(100, 0, 0), cand(9000, 0, 1000), cand(200, 0, 0) };

	c[1].eligible = false;
	g_assert_cmpint(vmcg_oom_badness(&c[1], 10000), ==, INT64_MIN);
	g_assert_cmpuint(select_ok(c, 3, 10000), ==, 2);
}

/*
 * Ties:
 *   A usage 500 prot 200 (300), B usage 400 prot 100 (300): larger usage, A,
 *   in either order.
 *   [B usage 200 priority 100, A usage 300], total 1000: both 300, A (1).
 *   Same points and usage: the lower index, also when it is not index 0.
 */
static void test_ties(void)
{
	const VmcgOomCandidate ab[] = { cand(500, 200, 0), cand(400, 100, 0) };
	const VmcgOomCandidate ba[] = { cand(400, 100, 0), cand(500, 200, 0) };
	const VmcgOomCandidate prio[] = { cand(200, 0, 100), cand(300, 0, 0) };
	const VmcgOomCandidate same[] = { cand(100, 0, 0), cand(500, 200, 0), cand(500, 200, 0) };

	g_assert_cmpuint(select_ok(ab, 2, 1000), ==, 0);
	g_assert_cmpuint(select_ok(ba, 2, 1000), ==, 1);
	g_assert_cmpint(vmcg_oom_badness(&prio[0], 1000), ==, 300);
	g_assert_cmpuint(select_ok(prio, 2, 1000), ==, 1);
	g_assert_cmpuint(select_ok(same, 3, 1000), ==, 1);
}

/* Nothing killable: -ESRCH, and *ret_index untouched. */
static void test_esrch(void)
{
	VmcgOomCandidate c[] = { cand(100, 0, VMCG_OOM_PRIORITY_MIN), cand(200, 0, 0) };
	size_t idx = 42;

	c[1].eligible = false;
	g_assert_cmpint(vmcg_oom_select(c, 2, 1000, &idx), ==, -ESRCH);
	g_assert_cmpint(vmcg_oom_select(c, 0, 1000, &idx), ==, -ESRCH);
	g_assert_cmpint(vmcg_oom_select(NULL, 0, 1000, &idx), ==, -ESRCH);
	g_assert_cmpuint(idx, ==, 42);
}

static void test_einval(void)
{
	const VmcgOomCandidate c[] = { cand(100, 0, 0) };
	size_t idx = 42;

	g_assert_cmpint(vmcg_oom_select(NULL, 1, 1000, &idx), ==, -EINVAL);
	g_assert_cmpint(vmcg_oom_select(c, 1, 1000, NULL), ==, -EINVAL);
	g_assert_cmpuint(idx, ==, 42);
	g_assert_cmpint(vmcg_oom_badness(NULL, 1000), ==, INT64_MIN);
}

/*
 * Priority outside [-1000, 1000] is clamped before anything else:
 *   5000 and INT32_MAX score as 1000: 100 + 1000 = 1100 (total 1000)
 *   -1001 and INT32_MIN clamp to -1000: unkillable
 *   -999 is killable: 100 - 999 = -899, and the only choice
 */
static void test_clamp(void)
{
	const VmcgOomCandidate hi = cand(100, 0, 5000), max = cand(100, 0, INT32_MAX);
	const VmcgOomCandidate lo = cand(100, 0, -1001), min = cand(100, 0, INT32_MIN);
	const VmcgOomCandidate c[] = { cand(100, 0, -1001), cand(100, 0, -999) };

	g_assert_cmpint(vmcg_oom_badness(&hi, 1000), ==, 1100);
	g_assert_cmpint(vmcg_oom_badness(&max, 1000), ==, 1100);
	g_assert_cmpint(vmcg_oom_badness(&lo, 1000), ==, INT64_MIN);
	g_assert_cmpint(vmcg_oom_badness(&min, 1000), ==, INT64_MIN);
	g_assert_cmpint(vmcg_oom_badness(&c[1], 1000), ==, -899);
	g_assert_cmpuint(select_ok(c, 2, 1000), ==, 1);
}

/*
 * Extremes: points saturate in vmcg_oom_badness() but select compares
 * them exactly.
 *   A usage UINT64_MAX                         -> 2^64 - 1   (INT64_MAX)
 *   B usage UINT64_MAX - 10, priority 1000,
 *     total UINT64_MAX                         -> 2^65 - 12  (INT64_MAX)
 *   B wins although its usage is smaller: its points are larger.
 *   usage 0, priority -999, total UINT64_MAX   -> INT64_MIN + 1: killable
 */
static void test_extremes(void)
{
	const VmcgOomCandidate c[] = { cand(UINT64_MAX, 0, 0), cand(UINT64_MAX - 10, 0, 1000) };
	const VmcgOomCandidate low = cand(0, 0, -999);

	g_assert_cmpint(vmcg_oom_badness(&c[0], UINT64_MAX), ==, INT64_MAX);
	g_assert_cmpint(vmcg_oom_badness(&c[1], UINT64_MAX), ==, INT64_MAX);
	g_assert_cmpuint(select_ok(c, 2, UINT64_MAX), ==, 1);
	g_assert_cmpint(vmcg_oom_badness(&low, UINT64_MAX), ==, INT64_MIN + 1);
	g_assert_cmpuint(select_ok(&low, 1, UINT64_MAX), ==, 0);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);

	g_test_add_func("/oom/badness-points", test_badness_points);
	g_test_add_func("/oom/basic-choice", test_basic_choice);
	g_test_add_func("/oom/priority", test_priority);
	g_test_add_func("/oom/unkillable", test_unkillable);
	g_test_add_func("/oom/ineligible", test_ineligible);
	g_test_add_func("/oom/ties", test_ties);
	g_test_add_func("/oom/esrch", test_esrch);
	g_test_add_func("/oom/einval", test_einval);
	g_test_add_func("/oom/clamp", test_clamp);
	g_test_add_func("/oom/extremes", test_extremes);

	return g_test_run();
}
