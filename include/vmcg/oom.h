/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * OOM victim choice among VMs, after the kernel's oom_badness()
 * (mm/oom_kill.c): the VM with the most memory above its protection loses,
 * adjusted by a per-VM priority that plays the part of oom_score_adj.
 *
 *   points = max(usage - protection, 0) + priority * total_pages / 1000
 *
 * priority is in [-1000, 1000]; -1000 (OOM_SCORE_ADJ_MIN) makes a VM
 * unkillable, as it makes a task. total_pages is the size of the OOM domain
 * (the limit that was hit), as totalpages is for a memcg OOM. Ties go to the
 * larger usage, then to the lower index, so the choice is deterministic.
 *
 * The priority term is computed as written, (priority * total_pages) / 1000
 * in exact arithmetic, truncated toward zero; the kernel computes
 * adj * (totalpages / 1000), which drops up to 999 pages of total_pages
 * and is 0 below 1000. As in today's oom_badness(), points may be
 * negative and such a VM is still killable.
 *
 * memory.oom.group (kill the whole group) is a property of the tree and is
 * applied by vmcg_group_oom_select() in group.c on top of this choice.
 */
#ifndef VMCG_OOM_H
#define VMCG_OOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMCG_OOM_PRIORITY_MIN (-1000)
#define VMCG_OOM_PRIORITY_MAX 1000

typedef struct VmcgOomCandidate {
	uint64_t usage_pages;
	uint64_t protection_pages; /* effective protection, max(emin, elow) */
	int32_t priority;	   /* oom_score_adj analog */
	bool eligible;		   /* false: already paused/dying, skip it */
} VmcgOomCandidate;

/**
 * vmcg_oom_badness() - the points of one candidate; INT64_MIN if it is
 * unkillable (priority -1000 or not eligible, or @c is NULL). Priority
 * outside the range is clamped first, so anything below -1000 is
 * unkillable too. Points outside int64_t saturate at INT64_MAX and
 * INT64_MIN + 1, so a killable VM never reads as unkillable.
 */
int64_t vmcg_oom_badness(const VmcgOomCandidate *c, uint64_t total_pages);

/**
 * vmcg_oom_select() - pick the victim among @n candidates
 * Returns 0 and *@ret_index; -ESRCH if no candidate is killable (also for
 * @n == 0); -EINVAL if @n > 0 and @c is NULL, or @ret_index is NULL.
 * Points are compared exactly, before the saturation of vmcg_oom_badness().
 */
int vmcg_oom_select(const VmcgOomCandidate *c, size_t n, uint64_t total_pages, size_t *ret_index);

#endif
