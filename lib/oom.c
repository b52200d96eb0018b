// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * OOM victim choice among VMs, after mm/oom_kill.c: oom_badness() scores a
 * candidate, oom_evaluate_task()/select_bad_process() keep the highest.
 *
 * What differs from the kernel, and why:
 * - The baseline is usage above protection, not rss + swap + page tables:
 *   a VM within its memory.min/low is what the operator asked us to keep,
 *   so only what it uses beyond that makes it a candidate (DESIGN.md section 3).
 * - The priority term is exact, (priority * total_pages) / 1000, where the
 *   kernel truncates first (adj *= totalpages / 1000). For a memcg OOM the
 *   kernel's totalpages is the memcg's limit, so the two differ by less
 *   than one page per unit of priority.
 * - Ties are broken by larger usage, then lower index. The kernel keeps
 *   whichever task of equal points its iteration met first (modulo the
 *   thread group leader preference); a VM list has no such natural order,
 *   and an operator reading the log should be able to predict the choice.
 */
#include <errno.h>
#include <stddef.h>

#include "vmcg/oom.h"

/*
 * signed __int128 is a gcc/clang extension on 64-bit targets. A usage up to
 * 2^64 plus a priority term up to +-2^64 needs 66 bits; with it the
 * comparison in vmcg_oom_select() is exact for any input.
 */
#ifndef __SIZEOF_INT128__
#error "lib/oom.c needs __int128 (gcc or clang, 64-bit target)"
#endif
__extension__ typedef __int128 s128;

static int32_t clamp_priority(int32_t priority)
{
	if (priority < VMCG_OOM_PRIORITY_MIN)
		return VMCG_OOM_PRIORITY_MIN;
	if (priority > VMCG_OOM_PRIORITY_MAX)
		return VMCG_OOM_PRIORITY_MAX;
	return priority;
}

/*
 * oom_unkillable_task() and the OOM_SCORE_ADJ_MIN / MMF_OOM_SKIP checks of
 * oom_badness(): a VM that is already paused or dying (not eligible) would
 * free nothing more if chosen again, and -1000 opts out entirely.
 */
static bool killable(const VmcgOomCandidate *c)
{
	return c && c->eligible && clamp_priority(c->priority) != VMCG_OOM_PRIORITY_MIN;
}

/* oom_badness() for a killable candidate, in exact arithmetic. */
static s128 points_exact(const VmcgOomCandidate *c, uint64_t total_pages)
{
	s128 points = 0;

	if (c->usage_pages > c->protection_pages)
		points = (s128)(c->usage_pages - c->protection_pages);

	/*
	 * "Normalize to oom_score_adj units": priority 1000 adds the whole
	 * OOM domain, i.e. counts as if the VM used all of it. C division
	 * truncates toward zero, for negative priorities too.
	 */
	points += (s128)clamp_priority(c->priority) * (s128)total_pages / 1000;
	return points;
}

int64_t vmcg_oom_badness(const VmcgOomCandidate *c, uint64_t total_pages)
{
	s128 points;

	if (!killable(c))
		return INT64_MIN;

	/* INT64_MIN is reserved for "unkillable", as LONG_MIN is. */
	points = points_exact(c, total_pages);
	if (points > INT64_MAX)
		return INT64_MAX;
	if (points <= INT64_MIN)
		return INT64_MIN + 1;
	return (int64_t)points;
}

int vmcg_oom_select(const VmcgOomCandidate *c, size_t n, uint64_t total_pages, size_t *ret_index)
{
	s128 best_points = 0;
	size_t best = 0, i;
	bool found = false;

	if (!ret_index || (n > 0 && !c))
		return -EINVAL;

	for (i = 0; i < n; i++) {
		s128 points;

		if (!killable(&c[i]))
			continue;

		points = points_exact(&c[i], total_pages);
		/* Strictly better only: equal usage keeps the lower index. */
		if (found && (points < best_points ||
			      (points == best_points && c[i].usage_pages <= c[best].usage_pages)))
			continue;

		best = i;
		best_points = points;
		found = true;
	}

	if (!found)
		return -ESRCH;
	*ret_index = best;
	return 0;
}
