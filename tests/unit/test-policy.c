// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests for daemon/policy.c: one table per decision, each row worked
 * out by hand from the rule it names. Sizes in the tables are MiB, times
 * seconds, unless a column says pages.
 *
 * The policy is vmcgd's default ([daemon] in config/vmcgd.conf):
 *   reclaim_step 64M, hysteresis 32M, stats_max_age 10 s,
 *   guest_margin 32M, balloon_stuck 10 s, oom_deadline 5 s, min_guest 64M.
 * "now" is t = 100 s unless a row says otherwise.
 */
#include <glib.h>

#include "policy.h"

#define MIB(x) ((uint64_t)(x) << 20)
#define SEC(x) ((uint64_t)(x)*G_USEC_PER_SEC)
#define PAGES(mib) (MIB(mib) / VMCG_PAGE_SIZE)
#define NOW SEC(100)

#define NO_STATS (-1)
#define FLOOR_MAX UINT64_MAX /* the configured floor "max" */
#define UNLIMITED UINT64_MAX /* an ancestor without high or max */

static const VmcgPolicy P = {
	.reclaim_step = MIB(64),
	.hysteresis = MIB(32),
	.stats_interval_usec = SEC(2),
	.stats_max_age_usec = SEC(10),
	.guest_margin = MIB(32),
	.balloon_stuck_usec = SEC(10),
	.oom_deadline_usec = SEC(5),
	.vmpressure_hold_usec = SEC(10),
	.min_guest = MIB(64),
};

/* A row failed: say which, and go on with the others. */
#define CHECK_U64(row, what, got, want)                                  \
	do {                                                             \
		uint64_t got_ = (got), want_ = (want);                   \
		if (got_ != want_)                                       \
			g_test_fail_printf("%s: %s = %" G_GUINT64_FORMAT \
					   ", want %" G_GUINT64_FORMAT,  \
					   (row), (what), got_, want_);  \
	} while (0)

/*
 * A VM of a table. Stats, when the row has them, are stat-total-memory,
 * stat-available-memory, and the resident size and guest size (actual)
 * when they arrived; stats_age is how old they are at NOW.
 */
typedef struct GuestRow {
	uint64_t ram, actual, target, resident, floor; /* MiB; floor FLOOR_MAX = "max" */
	int64_t stats_age;			       /* s, NO_STATS: none */
	uint64_t total, avail, st_resident, st_actual; /* MiB */
} GuestRow;

static VmcgPolicyVm guest(const GuestRow *r, bool ready, uint64_t adopted_age_s,
			  uint64_t take_pages)
{
	return (VmcgPolicyVm){
		.ready = ready,
		.ram_size_bytes = MIB(r->ram),
		.actual_bytes = MIB(r->actual),
		.target_bytes = MIB(r->target),
		.resident_bytes = MIB(r->resident),
		.floor_bytes = r->floor == FLOOR_MAX ? UINT64_MAX : MIB(r->floor),
		.adopted_usec = NOW - SEC(adopted_age_s),
		.want_take_pages = take_pages,
		.has_stats = r->stats_age != NO_STATS,
		.stats_usec = r->stats_age == NO_STATS ? 0 : NOW - SEC(r->stats_age),
		.stats_total_bytes = MIB(r->total),
		.stats_available_bytes = MIB(r->avail),
		.stats_resident_bytes = MIB(r->st_resident),
		.stats_actual_bytes = MIB(r->st_actual),
	};
}

/*
 * The floor: max(floor, min_guest, used + margin), clamped to the RAM
 * size; "used" from fresh stats is stats_actual - available (or total -
 * available if that is all there is) plus what became resident since;
 * without fresh stats it is max(current target, resident + margin).
 */
static void test_guest_floor(void)
{
	static const struct {
		const char *name;
		GuestRow vm;
		uint64_t want; /* MiB */
	} rows[] = {
		/*   ram  actual target res  floor  age  total avail st_res st_act */
		{ "missing stats: no further inflation",
		  { 1024, 800, 0, 300, 0, NO_STATS, 0, 0, 0, 0 },
		  800 },
		{ "missing stats: room for resident + margin",
		  { 1024, 800, 700, 750, 0, NO_STATS, 0, 0, 0, 0 },
		  782 },
		{ "stale stats (11 s) are not believed",
		  { 1024, 800, 0, 300, 0, 11, 1000, 700, 300, 800 },
		  800 },
		{ "stats exactly max-age old are still fresh",
		  { 1024, 800, 0, 300, 0, 10, 1000, 700, 300, 800 },
		  132 },
		{ "fresh: size when taken - available + margin",
		  { 1024, 1024, 0, 600, 0, 1, 1000, 500, 600, 1024 },
		  556 },
		{ "fresh: growth since the stats counts as used",
		  { 1024, 1024, 0, 700, 0, 1, 1000, 500, 600, 1024 },
		  656 },
		{ "fresh: a shrink since the stats does not lower it",
		  { 1024, 1024, 0, 500, 0, 1, 1000, 500, 600, 1024 },
		  556 },
		{ "fresh: total - available when the size is not above available",
		  { 1024, 1024, 0, 600, 0, 1, 1000, 500, 600, 400 },
		  532 },
		{ "min_guest wins over a nearly empty guest",
		  { 1024, 1024, 0, 600, 0, 1, 1000, 1020, 600, 1024 },
		  64 },
		{ "configured floor wins",
		  { 1024, 1024, 0, 600, 700, 1, 1000, 500, 600, 1024 },
		  700 },
		{ "configured floor max: the whole guest",
		  { 1024, 1024, 0, 600, FLOOR_MAX, 1, 1000, 500, 600, 1024 },
		  1024 },
		{ "clamped to the RAM size",
		  { 1024, 1024, 0, 900, 0, 1, 1000, 10, 600, 1024 },
		  1024 },
		{ "RAM size unknown: not clamped",
		  { 0, 1024, 0, 900, 0, 1, 1000, 10, 600, 1024 },
		  1346 },
		{ "stale, resident + margin above RAM: clamped",
		  { 1024, 1000, 0, 1010, 0, NO_STATS, 0, 0, 0, 0 },
		  1024 },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		VmcgPolicyVm vm = guest(&rows[i].vm, true, 100, 0);

		CHECK_U64(rows[i].name, "floor", vmcg_policy_guest_floor(&P, &vm, NOW),
			  MIB(rows[i].want));
	}
}

/*
 * Deflation room: ram - cur, at most a step, and for each limited
 * ancestor at most limit - hysteresis - usage (none if that is <= 0);
 * less than a page is none.
 */
static void test_deflate_room(void)
{
	static const struct {
		const char *name;
		uint64_t cur, ram;	     /* bytes */
		uint64_t usage[2], limit[2]; /* MiB; limit UNLIMITED: none */
		size_t n;
		uint64_t want; /* bytes */
	} rows[] = {
		{ "full size: none", MIB(1024), MIB(1024), { 0 }, { 0 }, 0, 0 },
		{ "above full size: none", MIB(1025), MIB(1024), { 0 }, { 0 }, 0, 0 },
		{ "no ancestors: a step", MIB(600), MIB(1024), { 0 }, { 0 }, 0, MIB(64) },
		{ "no ancestors: the rest of the guest",
		  MIB(1000),
		  MIB(1024),
		  { 0 },
		  { 0 },
		  0,
		  MIB(24) },
		{ "less than a page: none", MIB(1024) - 100, MIB(1024), { 0 }, { 0 }, 0, 0 },
		{ "unlimited ancestor is skipped",
		  MIB(600),
		  MIB(1024),
		  { 5000 },
		  { UNLIMITED },
		  1,
		  MIB(64) },
		{ "ancestor exactly hysteresis below its limit: none",
		  MIB(600),
		  MIB(1024),
		  { 1000 },
		  { 1032 },
		  1,
		  0 },
		{ "ancestor over its limit: none", MIB(600), MIB(1024), { 1100 }, { 1000 }, 1, 0 },
		{ "ancestor leaves 8M", MIB(600), MIB(1024), { 1000 }, { 1040 }, 1, MIB(8) },
		{ "the tighter of two ancestors",
		  MIB(600),
		  MIB(1024),
		  { 1000, 2000 },
		  { 1050, 2040 },
		  2,
		  MIB(8) },
		{ "an ancestor higher up blocks",
		  MIB(600),
		  MIB(1024),
		  { 100, 2000 },
		  { UNLIMITED, 2020 },
		  2,
		  0 },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		VmcgPolicyAncestor anc[2];

		for (size_t j = 0; j < rows[i].n; j++) {
			anc[j].usage_pages = PAGES(rows[i].usage[j]);
			anc[j].limit_pages = rows[i].limit[j] == UNLIMITED
						     ? VMCG_PAGES_MAX
						     : PAGES(rows[i].limit[j]);
		}
		CHECK_U64(rows[i].name, "room",
			  vmcg_policy_deflate_room(&P, rows[i].cur, rows[i].ram, anc, rows[i].n),
			  rows[i].want);
	}
}

/*
 * The tick's balloon decision. Stats in every fresh row: taken 1 s ago
 * with the guest at 1024M and 700M available, the resident size then the
 * same as now: the floor is 1024 - 700 + 32 = 356M.
 */
#define FRESH(res) 1, 1000, 700, res, 1024

/*
 * Hands off: a balloon the backend cannot drive is never moved; one that
 * someone else moved is left there unless the group needs reclaim.
 */
static void test_balloon_hands_off(void)
{
	static const struct {
		const char *name;
		GuestRow vm;
		uint64_t take; /* pages */
		bool not_driven, external_hold;
		VmcgPolicyAction want;
	} rows[] = {
		/*   ram  actual target res floor stats */
		{ "driven: reclaim",
		  { 1024, 1024, 0, 800, 0, FRESH(800) },
		  1000,
		  false,
		  false,
		  VMCG_POLICY_RECLAIM },
		{ "not driven: hold, even asked to reclaim",
		  { 1024, 1024, 0, 800, 0, FRESH(800) },
		  1000,
		  true,
		  false,
		  VMCG_POLICY_HOLD },
		{ "not driven: hold, even grown into it",
		  { 1024, 500, 500, 500, 0, 1, 1000, 20, 450, 500 },
		  0,
		  true,
		  false,
		  VMCG_POLICY_HOLD },
		{ "external: reclaim when the group needs it",
		  { 1024, 1024, 0, 800, 0, FRESH(800) },
		  1000,
		  false,
		  true,
		  VMCG_POLICY_RECLAIM },
		{ "external: no room given",
		  { 1024, 500, 500, 500, 0, 1, 1000, 20, 450, 500 },
		  0,
		  false,
		  true,
		  VMCG_POLICY_HOLD },
		{ "driven: room given",
		  { 1024, 500, 500, 500, 0, 1, 1000, 20, 450, 500 },
		  0,
		  false,
		  false,
		  VMCG_POLICY_GROW },
		{ "external: no deflation",
		  { 1024, 600, 600, 600, 0, FRESH(600) },
		  0,
		  false,
		  true,
		  VMCG_POLICY_HOLD },
		{ "driven: deflation",
		  { 1024, 600, 600, 600, 0, FRESH(600) },
		  0,
		  false,
		  false,
		  VMCG_POLICY_DEFLATE },
	};
	VmcgPolicyAncestor roomy = { .usage_pages = PAGES(100), .limit_pages = VMCG_PAGES_MAX };

	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		VmcgPolicyVm vm = guest(&rows[i].vm, true, 100, rows[i].take);
		VmcgPolicyTarget t;

		g_test_message("%s", rows[i].name);
		vm.not_driven = rows[i].not_driven;
		vm.external_hold = rows[i].external_hold;
		t = vmcg_policy_balloon_target(&P, &vm, NOW, &roomy, 1);
		g_assert_cmpint(t.action, ==, rows[i].want);
		if (t.action == VMCG_POLICY_HOLD)
			g_assert_cmpuint(t.target_bytes, ==, 0);
	}
}

static void test_balloon_target(void)
{
	static const struct {
		const char *name;
		GuestRow vm;
		bool ready;
		uint64_t adopted_age;  /* s */
		uint64_t take;	       /* pages */
		uint64_t usage, limit; /* MiB, the VM's group; limit 0: no group */
		VmcgPolicyAction want;
		uint64_t want_target; /* bytes */
	} rows[] = {
		/*   ram  actual target res floor stats */
		{ "not ready: hold",
		  { 1024, 500, 500, 600, 0, NO_STATS, 0, 0, 0, 0 },
		  false,
		  100,
		  0,
		  0,
		  0,
		  VMCG_POLICY_HOLD,
		  0 },
		{ "actual unknown: hold",
		  { 1024, 0, 0, 600, 0, FRESH(600) },
		  true,
		  100,
		  0,
		  0,
		  0,
		  VMCG_POLICY_HOLD,
		  0 },
		{ "RAM size unknown: hold",
		  { 0, 800, 0, 600, 0, FRESH(600) },
		  true,
		  100,
		  0,
		  0,
		  0,
		  VMCG_POLICY_HOLD,
		  0 },
		{ "just adopted, no stats yet: hold, even grown into the balloon",
		  { 1024, 500, 0, 600, 0, NO_STATS, 0, 0, 0, 0 },
		  true,
		  5,
		  0,
		  0,
		  0,
		  VMCG_POLICY_HOLD,
		  0 },
		{ "adopted max-age ago, still no stats: the stale rule gives room",
		  { 1024, 500, 0, 600, 0, NO_STATS, 0, 0, 0, 0 },
		  true,
		  10,
		  0,
		  0,
		  0,
		  VMCG_POLICY_GROW,
		  MIB(632) },
		{ "grew into the balloon: room at once",
		  { 1024, 500, 500, 500, 0, 1, 1000, 20, 450, 500 },
		  true,
		  100,
		  0,
		  0,
		  0,
		  VMCG_POLICY_GROW,
		  MIB(562) },
		{ "grew into the balloon: room even when asked to reclaim",
		  { 1024, 500, 500, 500, 0, 1, 1000, 20, 450, 500 },
		  true,
		  100,
		  16384,
		  0,
		  0,
		  VMCG_POLICY_GROW,
		  MIB(562) },
		{ "reclaim from min(actual, resident)",
		  { 1024, 1024, 0, 800, 0, FRESH(800) },
		  true,
		  100,
		  1000,
		  0,
		  0,
		  VMCG_POLICY_RECLAIM,
		  MIB(800) - 1000 * VMCG_PAGE_SIZE },
		{ "reclaim at most a step",
		  { 1024, 1024, 0, 800, 0, FRESH(800) },
		  true,
		  100,
		  100000,
		  0,
		  0,
		  VMCG_POLICY_RECLAIM,
		  MIB(736) },
		{ "reclaim never below the floor",
		  { 1024, 1024, 0, 400, 0, FRESH(400) },
		  true,
		  100,
		  100000,
		  0,
		  0,
		  VMCG_POLICY_RECLAIM,
		  MIB(356) },
		{ "at the floor: hold",
		  { 1024, 356, 356, 356, 0, FRESH(356) },
		  true,
		  100,
		  100000,
		  0,
		  0,
		  VMCG_POLICY_HOLD,
		  0 },
		{ "reclaim in flight is not asked for twice",
		  { 1024, 1024, 800, 1024, 0, FRESH(1024) },
		  true,
		  100,
		  PAGES(64),
		  0,
		  0,
		  VMCG_POLICY_HOLD,
		  0 },
		{ "reclaim beyond what is in flight",
		  { 1024, 900, 850, 1000, 0, FRESH(1000) },
		  true,
		  100,
		  PAGES(64),
		  0,
		  0,
		  VMCG_POLICY_RECLAIM,
		  MIB(836) },
		{ "resident unknown: reclaim from actual",
		  { 1024, 1024, 0, 0, 0, FRESH(0) },
		  true,
		  100,
		  PAGES(64),
		  0,
		  0,
		  VMCG_POLICY_RECLAIM,
		  MIB(960) },
		{ "stale stats: never inflate further",
		  { 1024, 800, 800, 300, 0, 11, 1000, 700, 300, 1024 },
		  true,
		  100,
		  PAGES(64),
		  0,
		  0,
		  VMCG_POLICY_HOLD,
		  0 },
		{ "no stats after adoption: never inflate further",
		  { 1024, 800, 800, 300, 0, NO_STATS, 0, 0, 0, 0 },
		  true,
		  100,
		  PAGES(64),
		  0,
		  0,
		  VMCG_POLICY_HOLD,
		  0 },
		{ "nothing asked: deflate a step",
		  { 1024, 600, 600, 500, 0, FRESH(500) },
		  true,
		  100,
		  0,
		  0,
		  0,
		  VMCG_POLICY_DEFLATE,
		  MIB(664) },
		{ "nothing asked, stale stats: deflate all the same",
		  { 1024, 600, 600, 500, 0, NO_STATS, 0, 0, 0, 0 },
		  true,
		  100,
		  0,
		  0,
		  0,
		  VMCG_POLICY_DEFLATE,
		  MIB(664) },
		{ "deflate to full size",
		  { 1024, 1000, 1000, 500, 0, FRESH(500) },
		  true,
		  100,
		  0,
		  0,
		  0,
		  VMCG_POLICY_DEFLATE,
		  MIB(1024) },
		{ "deflate from the target, not actual",
		  { 1024, 500, 600, 500, 0, FRESH(500) },
		  true,
		  100,
		  0,
		  0,
		  0,
		  VMCG_POLICY_DEFLATE,
		  MIB(664) },
		{ "at full size: hold",
		  { 1024, 1024, 1024, 500, 0, FRESH(500) },
		  true,
		  100,
		  0,
		  0,
		  0,
		  VMCG_POLICY_HOLD,
		  0 },
		{ "group within hysteresis of its limit: hold",
		  { 1024, 600, 600, 500, 0, FRESH(500) },
		  true,
		  100,
		  0,
		  1000,
		  1020,
		  VMCG_POLICY_HOLD,
		  0 },
		{ "group leaves 8M: deflate 8M",
		  { 1024, 600, 600, 500, 0, FRESH(500) },
		  true,
		  100,
		  0,
		  1000,
		  1040,
		  VMCG_POLICY_DEFLATE,
		  MIB(608) },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		VmcgPolicyVm vm =
			guest(&rows[i].vm, rows[i].ready, rows[i].adopted_age, rows[i].take);
		VmcgPolicyAncestor anc = { PAGES(rows[i].usage), PAGES(rows[i].limit) };
		VmcgPolicyTarget t =
			vmcg_policy_balloon_target(&P, &vm, NOW, &anc, rows[i].limit ? 1 : 0);

		CHECK_U64(rows[i].name, "action", t.action, rows[i].want);
		CHECK_U64(rows[i].name, "target", t.target_bytes, rows[i].want_target);
		CHECK_U64(rows[i].name, "from", t.from_bytes,
			  vm.target_bytes ? vm.target_bytes : vm.actual_bytes);
	}
}

/* memory.reclaim: from the current target, no step cap, not below the floor. */
static void test_reclaim_target(void)
{
	static const struct {
		const char *name;
		GuestRow vm;
		bool ready;
		uint64_t take; /* pages */
		VmcgPolicyAction want;
		uint64_t want_target; /* MiB */
	} rows[] = {
		{ "not ready: nothing",
		  { 1024, 800, 800, 800, 0, FRESH(800) },
		  false,
		  PAGES(100),
		  VMCG_POLICY_HOLD,
		  0 },
		{ "actual unknown: nothing",
		  { 1024, 0, 0, 800, 0, FRESH(800) },
		  true,
		  PAGES(100),
		  VMCG_POLICY_HOLD,
		  0 },
		{ "from the target",
		  { 1024, 1024, 800, 800, 0, FRESH(800) },
		  true,
		  PAGES(100),
		  VMCG_POLICY_RECLAIM,
		  700 },
		{ "from actual without a target",
		  { 1024, 1024, 0, 800, 0, FRESH(800) },
		  true,
		  PAGES(100),
		  VMCG_POLICY_RECLAIM,
		  924 },
		{ "no step cap",
		  { 1024, 1024, 0, 800, 0, FRESH(800) },
		  true,
		  PAGES(200),
		  VMCG_POLICY_RECLAIM,
		  824 },
		{ "not below the floor",
		  { 1024, 1024, 0, 800, 0, FRESH(800) },
		  true,
		  PAGES(1000),
		  VMCG_POLICY_RECLAIM,
		  356 },
		{ "at the floor: nothing",
		  { 1024, 356, 356, 356, 0, FRESH(356) },
		  true,
		  PAGES(100),
		  VMCG_POLICY_HOLD,
		  0 },
		{ "RAM size unknown: still",
		  { 0, 1024, 0, 800, 0, FRESH(800) },
		  true,
		  PAGES(100),
		  VMCG_POLICY_RECLAIM,
		  924 },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		VmcgPolicyVm vm = guest(&rows[i].vm, rows[i].ready, 100, 0);
		VmcgPolicyTarget t = vmcg_policy_reclaim_target(&P, &vm, NOW, rows[i].take);

		CHECK_U64(rows[i].name, "action", t.action, rows[i].want);
		CHECK_U64(rows[i].name, "target", t.target_bytes, MIB(rows[i].want_target));
	}
}

/*
 * Stuck balloons, as a sequence of ticks with the state carried over
 * (a "fresh" row starts a new one). The tolerance is max(1% of RAM, 8M):
 * 10.24M for the 1024M guest. Stuck after 10 s without a new low.
 */
static void test_balloon_progress(void)
{
	static const struct {
		const char *name;
		bool fresh;
		uint64_t ram, t;     /* MiB, s */
		uint64_t target;     /* MiB, 0: none */
		uint64_t actual_kib; /* KiB, for the tolerance's edges */
		VmcgPolicyBalloonState want;
		bool want_stuck;
	} rows[] = {
		{ "no target: settled", true, 1024, 0, 0, 1024 << 10, VMCG_BALLOON_SETTLED },
		{ "inflating: waiting", false, 1024, 1, 512, 1024 << 10, VMCG_BALLOON_WAITING },
		{ "a new low: progress", false, 1024, 2, 512, 900 << 10, VMCG_BALLOON_PROGRESS },
		{ "9 s without: waiting", false, 1024, 11, 512, 900 << 10, VMCG_BALLOON_WAITING },
		{ "bounced up: no progress", false, 1024, 11, 512, 950 << 10,
		  VMCG_BALLOON_WAITING },
		{ "10 s without: stuck now", false, 1024, 12, 512, 900 << 10,
		  VMCG_BALLOON_STUCK_NOW, true },
		{ "still stuck: reported once", false, 1024, 13, 512, 900 << 10, VMCG_BALLOON_STUCK,
		  true },
		{ "a new low while stuck: still stuck", false, 1024, 14, 512, 880 << 10,
		  VMCG_BALLOON_STUCK, true },
		{ "long after: still not reported again", false, 1024, 30, 512, 880 << 10,
		  VMCG_BALLOON_STUCK, true },
		{ "arrived within 1% of RAM: settled", false, 1024, 31, 512, (512 << 10) + 10485,
		  VMCG_BALLOON_SETTLED },
		{ "a lower target: waiting", false, 1024, 32, 400, (512 << 10) + 10485,
		  VMCG_BALLOON_WAITING },
		{ "9 s since it settled: waiting", false, 1024, 40, 400, (512 << 10) + 10485,
		  VMCG_BALLOON_WAITING },
		{ "10 s since it settled: stuck again", false, 1024, 41, 400, (512 << 10) + 10485,
		  VMCG_BALLOON_STUCK_NOW, true },
		{ "deflating, not there yet: settled", false, 1024, 42, 800, 400 << 10,
		  VMCG_BALLOON_SETTLED },
		{ "small guest: 8M over is arrived", true, 512, 0, 256, (256 + 8) << 10,
		  VMCG_BALLOON_SETTLED },
		{ "small guest: just beyond 8M is not", false, 512, 1, 256, ((256 + 8) << 10) + 1,
		  VMCG_BALLOON_WAITING },
		{ "big guest: 40M over is within 1%", true, 4096, 0, 1024, (1024 + 40) << 10,
		  VMCG_BALLOON_SETTLED },
		{ "big guest: 41M over is not", false, 4096, 1, 1024, (1024 + 41) << 10,
		  VMCG_BALLOON_WAITING },
	};
	VmcgPolicyBalloon b = { 0 };

	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		VmcgPolicyBalloonState s;

		if (rows[i].fresh)
			b = (VmcgPolicyBalloon){ 0 };
		s = vmcg_policy_balloon_progress(&P, MIB(rows[i].ram), MIB(rows[i].target),
						 rows[i].actual_kib << 10, SEC(rows[i].t), &b);
		CHECK_U64(rows[i].name, "state", s, rows[i].want);
		CHECK_U64(rows[i].name, "stuck", b.stuck, rows[i].want_stuck);
	}
}

/* The excess a group plans for: usage over high, or demand over max. */
static void test_group_excess(void)
{
	static const struct {
		const char *name;
		uint64_t usage, held, high, max, want; /* pages */
	} rows[] = {
		{ "within both", 900, 0, 1000, 2000, 0 },
		{ "at high", 1000, 0, 1000, 2000, 0 },
		{ "over high", 1100, 0, 1000, 2000, 100 },
		{ "held refills over max", 1900, 300, VMCG_PAGES_MAX, 2000, 200 },
		{ "held refills do not count against high", 900, 300, 1000, 2000, 0 },
		{ "over both: max's is larger", 2100, 0, 2050, 2000, 100 },
		{ "over both: high's is larger", 2100, 0, 1000, 2000, 1100 },
		{ "unlimited", 5000, 0, VMCG_PAGES_MAX, VMCG_PAGES_MAX, 0 },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++)
		CHECK_U64(rows[i].name, "excess",
			  vmcg_policy_group_excess(rows[i].usage, rows[i].held, rows[i].high,
						   rows[i].max),
			  rows[i].want);
}

/*
 * The OOM deadline (5 s), a sequence of ticks with the group's state
 * carried over. Sampling mode: over max with usage in pages; hook mode:
 * under max with refills held since held_since.
 */
static void test_oom_check(void)
{
	static const struct {
		const char *name;
		bool fresh;
		uint64_t t; /* s */
		bool over_max;
		uint64_t usage, held; /* pages */
		uint64_t held_since;  /* s */
		bool want_oom;
		uint64_t want_since; /* s, the deadline's start after the tick; 0: none */
	} rows[] = {
		{ "under max: nothing", true, 10, false, 900, 0, 0, false, 0 },
		{ "over max: the deadline starts", false, 11, true, 1000, 0, 0, false, 11 },
		{ "2 s over: nothing", false, 13, true, 1000, 0, 0, false, 11 },
		{ "a new low restarts it", false, 15, true, 990, 0, 0, false, 15 },
		{ "up again, 4 s: nothing", false, 19, true, 995, 0, 0, false, 15 },
		{ "5 s without a new low: OOM", false, 20, true, 995, 0, 0, true, 20 },
		{ "4 s after the action: nothing", false, 24, true, 995, 0, 0, false, 20 },
		{ "5 s after the action: OOM again", false, 25, true, 995, 0, 0, true, 25 },
		{ "back under max: the deadline stops", false, 26, false, 900, 0, 0, false, 0 },
		{ "over again, higher: starts afresh", false, 27, true, 1200, 0, 0, false, 27 },
		{ "hooks: held 2 s: nothing", true, 100, false, 1000, 10, 98, false, 0 },
		{ "hooks: held 5 s: OOM", false, 103, false, 1000, 10, 98, true, 103 },
		{ "hooks: 1 s after the action: nothing", false, 104, false, 1000, 10, 98, false,
		  103 },
		{ "hooks: 5 s after the action: OOM again", false, 108, false, 1000, 10, 98, true,
		  108 },
		{ "hooks: a newer held refill is not old enough", false, 109, false, 1000, 10, 107,
		  false, 108 },
		{ "hooks: nothing held: the deadline stops", false, 110, false, 1000, 0, 0, false,
		  0 },
		{ "over max with held refills: the sampling rule", true, 200, true, 1000, 5, 0,
		  false, 200 },
	};
	VmcgPolicyOom st = { 0 };

	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		VmcgPolicyOomInput in = {
			.over_max = rows[i].over_max,
			.usage_pages = rows[i].usage,
			.held_pages = rows[i].held,
			.held_since_usec = SEC(rows[i].held_since),
		};

		if (rows[i].fresh)
			st = (VmcgPolicyOom){ 0 };
		CHECK_U64(rows[i].name, "oom", vmcg_policy_oom_check(&P, &in, SEC(rows[i].t), &st),
			  rows[i].want_oom);
		CHECK_U64(rows[i].name, "since", st.over_max_since_usec, SEC(rows[i].want_since));
	}
}

static void test_vmpressure_reclaimed(void)
{
	static const struct {
		const char *name;
		uint64_t asked, asked_at, usage, want; /* pages */
	} rows[] = {
		{ "half came back", 100, 1000, 950, 50 },
		{ "more fell than was asked: only the ask", 100, 1000, 800, 100 },
		{ "nothing came back", 100, 1000, 1000, 0 },
		{ "usage grew", 100, 1000, 1100, 0 },
		{ "nothing asked", 0, 1000, 900, 0 },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++)
		CHECK_U64(rows[i].name, "reclaimed",
			  vmcg_policy_vmpressure_reclaimed(rows[i].asked, rows[i].asked_at,
							   rows[i].usage),
			  rows[i].want);
}

static void test_psi_stall(void)
{
	static const struct {
		const char *name;
		VmcgPolicyPsiInput in; /* high, max, dt, hook some, hook full, vms, stalled */
		uint64_t some, full;
	} rows[] = {
		{ "within limits", { false, false, 1000, 0, 0, 0, 0 }, 0, 0 },
		{ "over high: some", { true, false, 1000, 0, 0, 0, 0 }, 1000, 0 },
		{ "over max: full", { false, true, 1000, 0, 0, 0, 0 }, 1000, 1000 },
		{ "over both", { true, true, 1000, 0, 0, 0, 0 }, 1000, 1000 },
		{ "first tick: no time", { true, true, 0, 0, 0, 0, 0 }, 0, 0 },
		{ "hooks: one of two VMs waited", { false, false, 1000, 300, 300, 2, 1 }, 300, 0 },
		{ "hooks: both waited, full the shorter",
		  { false, false, 1000, 300, 200, 2, 2 },
		  300,
		  200 },
		{ "hooks: waits beyond the tick are cut",
		  { false, false, 1000, 5000, 5000, 1, 1 },
		  1000,
		  1000 },
		{ "over high, and every VM waited",
		  { true, false, 1000, 400, 400, 1, 1 },
		  1000,
		  400 },
		{ "no VMs stalled: no full", { false, false, 1000, 0, 700, 0, 0 }, 0, 0 },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		VmcgPolicyStall s = vmcg_policy_psi_stall(&rows[i].in);

		CHECK_U64(rows[i].name, "some", s.some_usec, rows[i].some);
		CHECK_U64(rows[i].name, "full", s.full_usec, rows[i].full);
	}
}

/*
 * A lying or stalled guest can only hurt itself (docs/guest-channel.md,
 * "Effect"). One plan, pages; "R" is what a VM may give (usage above its
 * protection). A stalled VM's share moves to the others while they have
 * room, whole or not at all, smallest first.
 *
 *   plan: A takes 100 (stalled), B takes 100 of R 400, C takes 100 of R 200
 *   -> A spared; B +75, C +25 (by what each can still give, 300 : 100)
 */
static void test_spare_stalled(void)
{
	static const struct {
		const char *name;
		size_t n;
		struct {
			uint64_t take, reclaimable;
			bool stalled;
		} in[3];
		uint64_t want_take[3];
		bool want_spared[3];
		uint64_t want_moved;
	} rows[] = {
		{ "none stalled",
		  2,
		  { { 100, 400, false }, { 100, 200, false } },
		  { 100, 100 },
		  { false, false },
		  0 },
		{ "spared, split by room",
		  3,
		  { { 100, 400, true }, { 100, 400, false }, { 100, 200, false } },
		  { 0, 175, 125 },
		  { true, false, false },
		  100 },
		{ "siblings at protection: reclaimed as if it had not reported",
		  2,
		  { { 100, 400, true }, { 100, 100, false } },
		  { 100, 100 },
		  { false, false },
		  0 },
		{ "siblings short by a page: not spared at all",
		  2,
		  { { 100, 400, true }, { 100, 199, false } },
		  { 100, 100 },
		  { false, false },
		  0 },
		{ "two stalled, room for the smaller only",
		  3,
		  { { 150, 400, true }, { 50, 400, true }, { 100, 200, false } },
		  { 150, 0, 150 },
		  { false, true, false },
		  50 },
		{ "all stalled: nobody to take it",
		  2,
		  { { 100, 400, true }, { 100, 400, true } },
		  { 100, 100 },
		  { false, false },
		  0 },
		{ "stalled with nothing asked",
		  2,
		  { { 0, 400, true }, { 100, 400, false } },
		  { 0, 100 },
		  { true, false },
		  0 },
	};

	for (size_t r = 0; r < G_N_ELEMENTS(rows); r++) {
		VmcgPolicyShare s[3] = { 0 };
		uint64_t moved;

		for (size_t i = 0; i < rows[r].n; i++)
			s[i] = (VmcgPolicyShare){ .take_pages = rows[r].in[i].take,
						  .reclaimable_pages = rows[r].in[i].reclaimable,
						  .stalled = rows[r].in[i].stalled };
		moved = vmcg_policy_spare_stalled(s, rows[r].n);
		if (moved != rows[r].want_moved)
			g_error("%s: moved %" G_GUINT64_FORMAT, rows[r].name, moved);
		for (size_t i = 0; i < rows[r].n; i++) {
			if (s[i].take_pages != rows[r].want_take[i] ||
			    s[i].spared != rows[r].want_spared[i])
				g_error("%s: VM %zu takes %" G_GUINT64_FORMAT " spared %d",
					rows[r].name, i, s[i].take_pages, s[i].spared);
			/* Nobody is asked for more than it may give, unless the planner did. */
			if (!s[i].stalled && rows[r].in[i].take <= rows[r].in[i].reclaimable)
				g_assert_cmpuint(s[i].take_pages, <=, s[i].reclaimable_pages);
		}
	}
}

/* A fresh report (younger than 3 intervals of 1 s) replaces stale balloon stats in the floor. */
static void test_report_floor(void)
{
	VmcgPolicy p = P;
	VmcgPolicyVm vm = {
		.ready = true,
		.ram_size_bytes = MIB(1024),
		.actual_bytes = MIB(1024),
		.resident_bytes = MIB(600),
		.has_report = true,
		.report_usec = NOW - SEC(2),
		.report_has_available = true,
		.report_available_bytes = MIB(700),
		.report_resident_bytes = MIB(580),
		.report_actual_bytes = MIB(1024),
		.report_has_psi = true,
		.report_some_avg10_centi = 2500,
	};

	p.channel_report_interval_usec = SEC(1);
	p.guest_stall_pct = 20;
	/* used 1024 - 700 = 324, grown 20, margin 32: 376; stats missing would say >= 1024. */
	g_assert_cmpuint(vmcg_policy_guest_floor(&p, &vm, NOW), ==, MIB(376));
	g_assert_true(vmcg_policy_guest_stalled(&p, &vm, NOW));
	/* 3 intervals old: stale, back to the conservative floor. */
	g_assert_false(vmcg_policy_report_fresh(&p, &vm, NOW + SEC(1)));
	g_assert_cmpuint(vmcg_policy_guest_floor(&p, &vm, NOW + SEC(1)), ==, MIB(1024));
	g_assert_false(vmcg_policy_guest_stalled(&p, &vm, NOW + SEC(1)));
	/* Below the threshold, or the rule off. */
	vm.report_some_avg10_centi = 1999;
	g_assert_false(vmcg_policy_guest_stalled(&p, &vm, NOW));
	vm.report_some_avg10_centi = 10000;
	p.guest_stall_pct = 0;
	g_assert_false(vmcg_policy_guest_stalled(&p, &vm, NOW));
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);

	g_test_add_func("/policy/guest-floor", test_guest_floor);
	g_test_add_func("/policy/deflate-room", test_deflate_room);
	g_test_add_func("/policy/balloon-target", test_balloon_target);
	g_test_add_func("/policy/balloon-hands-off", test_balloon_hands_off);
	g_test_add_func("/policy/reclaim-target", test_reclaim_target);
	g_test_add_func("/policy/balloon-progress", test_balloon_progress);
	g_test_add_func("/policy/group-excess", test_group_excess);
	g_test_add_func("/policy/oom-check", test_oom_check);
	g_test_add_func("/policy/vmpressure-reclaimed", test_vmpressure_reclaimed);
	g_test_add_func("/policy/psi-stall", test_psi_stall);
	g_test_add_func("/policy/spare-stalled", test_spare_stalled);
	g_test_add_func("/policy/report-floor", test_report_floor);

	return g_test_run();
}
