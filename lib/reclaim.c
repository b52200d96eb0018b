// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Reclaim planning: split nr_to_reclaim over the VMs of a group the way
 * mm/vmscan.c splits scan pressure over the memcgs below the reclaim target.
 *
 * The kernel gets its proportions implicitly, by scanning every memcg's LRUs
 * at the same priority: in get_scan_count() a protected memcg's scan target
 * is lruvec_size - lruvec_size * protection / (cgroup_size + 1), i.e. its
 * pressure is proportional to its usage above protection. A balloon is not
 * an LRU we can scan a slice of; we must name a page count per VM up front.
 * So the same proportion is computed directly, as a water filling:
 *
 *	take_i = min(cap_i, lambda * weight_i), with sum take_i = need
 *
 * where weight_i is the usage above protection (the kernel's proportion) and
 * cap_i is what the VM can give without going below what must not be touched
 * (emin, in pass 1 also elow, and the floor the caller derives from the
 * VM's safety floor and guest statistics). The kernel has no such caps: it
 * simply fails to reclaim from a memcg that has nothing left, and the next
 * priority level scans the others harder. Water filling is the closed form
 * of that loop: the excess of a capped VM goes to the others in proportion.
 *
 * Two passes, as shrink_node_memcgs() + do_try_to_free_pages() do:
 *
 * Pass 1 protects max(emin, elow). A VM at or below it gives nothing
 * (mem_cgroup_below_min()/mem_cgroup_below_low() -> continue).
 *
 * Pass 2 runs when pass 1 fell short and memory.low held pages back from
 * it: some VM has pages between max(emin, floor) and elow that pass 1 did
 * not touch. That is sc->memcg_low_skipped, which the kernel sets both when
 * it passes over a memcg below low (shrink_node_memcgs()) and when it
 * scans one at low-reduced force (get_scan_count(), "low > min"): in both
 * cases untapped low-protected pages are left, and the kernel retries with
 * sc->memcg_low_reclaim = 1 ("Untapped cgroup reserves? Don't OOM, retry.")
 * instead of declaring OOM. In pass 2 protection is emin alone, and the
 * weight is usage above emin: "we reclaim them based on how much memory they
 * are using, reducing the scan pressure again by how much of the total
 * memory used is under hard protection" (get_scan_count()).
 *
 * Every VM that gives pages in pass 2 is at or below its elow when it gives
 * them (pass 1 already took everything above), so each is flagged
 * low_breached: memcg_memory_event(memcg, MEMCG_LOW) in shrink_node_memcgs().
 *
 * Exact integer arithmetic, no floating point: the plan must be the same on
 * every run and every host, so the tests can assert exact page counts.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmcg/counter.h"
#include "vmcg/reclaim.h"

/*
 * unsigned __int128 is a gcc/clang extension on 64-bit targets; the
 * products below need more than 64 bits (see RECLAIM_MAX_TARGETS), and
 * splitting them into 64-bit halves by hand would only hide the arithmetic.
 */
#ifndef __SIZEOF_INT128__
#error "lib/reclaim.c needs unsigned __int128 (gcc or clang, 64-bit target)"
#endif
__extension__ typedef unsigned __int128 u128;

/*
 * Every page count is clamped to VMCG_PAGES_MAX (< 2^51), which the counter
 * treats as "max" anyway. With at most 2^26 VMs a sum of weights is below
 * 2^77 and a cap times such a sum below 2^128: the largest product the
 * water filling forms. 2^26 (67 million VMs, 2 GiB of input) is far beyond
 * any host, so the limit costs nothing and keeps the arithmetic exact.
 */
#define RECLAIM_MAX_TARGETS ((size_t)1 << 26)

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static inline uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* Pages of @a above @b: the "usage above protection" of every formula. */
static inline uint64_t above(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

static inline uint64_t clamp_pages(uint64_t v)
{
	return min_u64(v, VMCG_PAGES_MAX);
}

/*
 * One VM's inputs, sanitized: a count at or above VMCG_PAGES_MAX reads as
 * VMCG_PAGES_MAX. Clamping can only shrink what a VM may give (usage drops
 * to the clamp while a protection at or below it stays put), never grow it,
 * so a caller's nonsense cannot make us reclaim below emin or the floor.
 */
struct vm_prot {
	uint64_t usage;
	uint64_t emin;
	/* Never reclaimed below, in any pass: max(emin, floor). */
	uint64_t hard;
	/* Pass 1: usage above max(emin, elow); the floor caps, not weighs. */
	uint64_t weight1;
	uint64_t cap1;
	/* elow held back pages that pass 2 could take (memcg_low_skipped). */
	bool low_held;
};

static void vm_prot_read(const VmcgReclaimTarget *t, struct vm_prot *p)
{
	uint64_t usage = clamp_pages(t->usage_pages);
	uint64_t emin = clamp_pages(t->emin_pages);
	uint64_t elow = clamp_pages(t->elow_pages);
	uint64_t floor_pages = clamp_pages(t->floor_pages);
	uint64_t prot = max_u64(emin, elow);

	p->usage = usage;
	p->emin = emin;
	p->hard = max_u64(emin, floor_pages);
	p->weight1 = above(usage, prot);
	p->cap1 = above(usage, max_u64(prot, floor_pages));
	/*
	 * Pages in (hard, min(usage, elow)] are what only memory.low keeps
	 * from pass 1. A VM whose floor already covers its elow has none:
	 * skipping it was not low's doing, and a retry could not take more.
	 */
	p->low_held = min_u64(usage, elow) > p->hard;
}

/* Pass 2 works on what pass 1 left: @left = usage - pass-1 take. */
static inline uint64_t weight2(const struct vm_prot *p, uint64_t left)
{
	return above(left, p->emin);
}

static inline uint64_t cap2(const struct vm_prot *p, uint64_t left)
{
	return above(left, p->hard);
}

/* Scratch for one VM in a proportional split. */
struct share {
	uint64_t weight;
	uint64_t cap; /* 0 < cap <= weight */
	uint64_t take;
	u128 rem;     /* (R * weight) mod W, the fractional part times W */
	size_t index; /* into targets[] and ret[] */
};

/*
 * Ascending cap/weight: the order in which VMs hit their caps as lambda
 * grows. Ties by index only to make the order total; the outcome does not
 * depend on it (VMs of equal ratio are capped together or not at all).
 * Products < 2^102: both factors are clamped page counts.
 */
static int share_cmp_ratio(const void *a, const void *b)
{
	const struct share *x = a, *y = b;
	u128 lx = (u128)x->cap * y->weight;
	u128 ly = (u128)y->cap * x->weight;

	if (lx != ly)
		return lx < ly ? -1 : 1;
	return (x->index > y->index) - (x->index < y->index);
}

/* Largest fractional part first, ties to the lower index. */
static int share_cmp_rem(const void *a, const void *b)
{
	const struct share *x = a, *y = b;

	if (x->rem != y->rem)
		return x->rem > y->rem ? -1 : 1;
	return (x->index > y->index) - (x->index < y->index);
}

static inline void share_swap(struct share *a, struct share *b)
{
	struct share t = *a;

	*a = *b;
	*b = t;
}

/*
 * Move the @k entries of @s[0..@m) that come first in share_cmp_rem()
 * order to @s[0..@k), in no particular order (quickselect). Only the set
 * matters, and share_cmp_rem() is a total order, so the set is the same
 * whatever the pivots. A full sort of 1000 entries costs about 4x the rest
 * of a plan; selection is linear on average. Pivots are the middle entry,
 * and a run of bad ones (more rounds than a halving search would need,
 * twice over) falls back to sorting what is left: O(m log m) at worst.
 */
static void share_select_rem(struct share *s, size_t m, size_t k)
{
	size_t lo = 0, hi = m, budget = 16, i, p;

	for (i = m; i; i >>= 1)
		budget += 2;

	/* s[0..lo) precede s[lo..hi), which precede s[hi..m); lo <= k < hi. */
	while (hi - lo > 1) {
		if (!budget--) {
			qsort(s + lo, hi - lo, sizeof(*s), share_cmp_rem);
			return;
		}

		share_swap(&s[lo + (hi - lo) / 2], &s[hi - 1]);
		for (p = lo, i = lo; i < hi - 1; i++)
			if (share_cmp_rem(&s[i], &s[hi - 1]) < 0)
				share_swap(&s[i], &s[p++]);
		share_swap(&s[p], &s[hi - 1]);

		if (p == k)
			return;
		if (p < k)
			lo = p + 1;
		else
			hi = p;
	}
}

/*
 * water_fill() - take exactly @need pages from @s[0..@m), each in
 * proportion to its weight, none above its cap
 *
 * The caller guarantees 0 < @need < sum of caps and 0 < cap <= weight for
 * every entry, so at least one entry stays below its cap and the
 * denominators below are never zero.
 *
 * lambda (pages per unit of weight) is R / W over the uncapped entries. An
 * entry whose cap/weight <= lambda is capped; capping it leaves lambda
 * unchanged or raises it, so walking the entries in ascending cap/weight
 * and capping while the test holds finds the fixed point in one pass after
 * an O(m log m) sort, with no restarts.
 */
static void water_fill(struct share *s, size_t m, uint64_t need)
{
	uint64_t r = need;
	u128 w = 0;
	uint64_t extra;
	size_t first, lo, i;

	for (i = 0; i < m; i++)
		w += s[i].weight;

	/*
	 * Common case first: if the entry with the smallest cap/weight is not
	 * capped at lambda = need / W, none is, and the sort can be skipped.
	 */
	lo = 0;
	for (i = 1; i < m; i++)
		if (share_cmp_ratio(&s[i], &s[lo]) < 0)
			lo = i;

	first = 0;
	if ((u128)s[lo].cap * w <= (u128)r * s[lo].weight) {
		qsort(s, m, sizeof(*s), share_cmp_ratio);
		/*
		 * cap * W < 2^128 and R * weight < 2^115 (RECLAIM_MAX_TARGETS).
		 * need < sum of caps stops this before m; the bound is belt
		 * and braces.
		 */
		while (first < m && (u128)s[first].cap * w <= (u128)r * s[first].weight) {
			s[first].take = s[first].cap;
			r -= s[first].cap;
			w -= s[first].weight;
			first++;
		}
	}

	/* Uncapped: floor(R * weight / W); the remainders get one page each. */
	extra = r;
	for (i = first; i < m; i++) {
		u128 num = (u128)r * s[i].weight;

		s[i].take = (uint64_t)(num / w);
		s[i].rem = num - (u128)s[i].take * w;
		extra -= s[i].take;
	}

	/*
	 * The fractional parts sum to @extra and each is < 1, so more than
	 * @extra entries have one: every +1 lands on a positive fraction, and
	 * an uncapped entry's cap exceeds its exact share, so it has room for
	 * the rounded-up page.
	 */
	if (extra) {
		share_select_rem(s + first, m - first, extra);
		for (i = first; i < first + extra; i++)
			s[i].take++;
	}
}

/**
 * vmcg_reclaim_plan() - see include/vmcg/reclaim.h
 *
 * No locking: it reads @targets and writes @ret and nothing else.
 */
int vmcg_reclaim_plan(const VmcgReclaimTarget *targets, size_t n, uint64_t nr_to_reclaim,
		      VmcgReclaimResult *ret, VmcgReclaimSummary *ret_summary)
{
	struct share *scratch = NULL;
	struct vm_prot p;
	u128 capacity1 = 0, capacity2 = 0;
	uint64_t need1, need2 = 0;
	bool low_skipped = false, pass2;
	size_t i, m;

	if (n > 0 && (!targets || !ret))
		return -EINVAL;
	if (n > RECLAIM_MAX_TARGETS)
		return -E2BIG;
	if (n == 0) {
		/* @ret may be NULL: nothing to write, everything is shortfall. */
		if (ret_summary)
			*ret_summary = (VmcgReclaimSummary){
				.shortfall_pages = nr_to_reclaim,
			};
		return 0;
	}

	/*
	 * Read-only first: work out both passes' needs and whether either
	 * needs a proportional split (and so scratch memory) before writing
	 * anything, so that -ENOMEM leaves @ret untouched.
	 */
	for (i = 0; i < n; i++) {
		vm_prot_read(&targets[i], &p);
		capacity1 += p.cap1;
		/*
		 * Pass 2 runs only after pass 1 exhausted every cap, so it sees
		 * usage - cap1 for every VM.
		 */
		capacity2 += cap2(&p, p.usage - p.cap1);
		low_skipped |= p.low_held;
	}
	need1 = capacity1 < nr_to_reclaim ? (uint64_t)capacity1 : nr_to_reclaim;

	pass2 = need1 < nr_to_reclaim && low_skipped;
	if (pass2)
		need2 = min_u64(nr_to_reclaim - need1,
				capacity2 < UINT64_MAX ? (uint64_t)capacity2 : UINT64_MAX);

	if ((need1 && need1 < capacity1) || (need2 && need2 < capacity2)) {
		scratch = malloc(n * sizeof(*scratch));
		if (!scratch)
			return -ENOMEM;
	}

	memset(ret, 0, n * sizeof(*ret));

	/* Pass 1: protection max(emin, elow). */
	if (need1 && need1 < capacity1) {
		m = 0;
		for (i = 0; i < n; i++) {
			vm_prot_read(&targets[i], &p);
			if (!p.cap1)
				continue;
			scratch[m++] = (struct share){
				.weight = p.weight1,
				.cap = p.cap1,
				.index = i,
			};
		}
		water_fill(scratch, m, need1);
		for (i = 0; i < m; i++)
			ret[scratch[i].index].take_pages = scratch[i].take;
	} else if (need1) {
		for (i = 0; i < n; i++) {
			vm_prot_read(&targets[i], &p);
			ret[i].take_pages = p.cap1;
		}
	}

	/* Pass 2 (memcg_low_reclaim): protection emin, and the floor. */
	if (need2 && need2 < capacity2) {
		m = 0;
		for (i = 0; i < n; i++) {
			uint64_t left;

			vm_prot_read(&targets[i], &p);
			left = p.usage - ret[i].take_pages;
			if (!cap2(&p, left))
				continue;
			scratch[m++] = (struct share){
				.weight = weight2(&p, left),
				.cap = cap2(&p, left),
				.index = i,
			};
		}
		water_fill(scratch, m, need2);
		for (i = 0; i < m; i++) {
			ret[scratch[i].index].take_pages += scratch[i].take;
			ret[scratch[i].index].low_breached = scratch[i].take > 0;
		}
	} else if (need2) {
		for (i = 0; i < n; i++) {
			uint64_t take;

			vm_prot_read(&targets[i], &p);
			take = cap2(&p, p.usage - ret[i].take_pages);
			ret[i].take_pages += take;
			ret[i].low_breached = take > 0;
		}
	}

	free(scratch);

	if (ret_summary) {
		ret_summary->planned_pages = need1 + need2;
		ret_summary->shortfall_pages = nr_to_reclaim - need1 - need2;
		ret_summary->low_reclaim = pass2;
	}
	return 0;
}
