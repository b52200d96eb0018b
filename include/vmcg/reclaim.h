/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Reclaim planning: how many pages to ask of each VM when a group must shed
 * nr_to_reclaim pages. Pure arithmetic over caller-supplied inputs, so it is
 * deterministic and testable on scenario tables; group.c builds the inputs
 * from the tree (vmcg_group_plan_reclaim()).
 *
 * The policy is the kernel's proportional reclaim (mm/vmscan.c,
 * get_scan_count() and shrink_node_memcgs()) with a VM in place of a memcg:
 *
 * Pass 1: VMs at or below their effective protection max(emin, elow) are
 *   skipped. The others are asked in proportion to usage above that
 *   protection.
 * Pass 2, only if pass 1 fell short and memory.low held pages back from
 *   it (memcg_low_skipped): some VM has usage above max(emin, floor) that
 *   only its elow protected, whether pass 1 skipped it (usage <= elow) or
 *   stopped at its elow (the kernel's reduced-force scan, which sets the
 *   same flag). The rest is asked of every VM in proportion to usage above
 *   emin, out of what pass 1 left. Pass 1 fell short only after taking
 *   everything above elow, so every VM that gives pages in this pass is at
 *   or below its elow when it gives them, and is flagged low_breached (the
 *   caller counts a "low" event on its group, as memcg_memory_event(memcg,
 *   MEMCG_LOW)).
 * Never: below emin (memory.min is hard), below the VM's floor.
 *
 * Shares are computed in integers with 128-bit intermediates; remainders go
 * one page each to the largest fractional parts, ties to the lower index. A
 * VM whose share exceeds what it can give is capped and the excess is
 * redistributed among the others in the same proportion (water filling).
 * The floor caps a VM's take; it does not change its weight.
 *
 * Page counts at or above VMCG_PAGES_MAX are read as VMCG_PAGES_MAX ("max");
 * that can only lower what a VM is asked for.
 */
#ifndef VMCG_RECLAIM_H
#define VMCG_RECLAIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct VmcgReclaimTarget {
	uint64_t usage_pages; /* current charge */
	uint64_t emin_pages;  /* effective memory.min share */
	uint64_t elow_pages;  /* effective memory.low share */
	/*
	 * Never reclaim below this: the larger of the VM's safety floor and
	 * what (fresh) guest statistics say the guest is using. The caller
	 * makes it conservative when stats are stale or missing.
	 */
	uint64_t floor_pages;
} VmcgReclaimTarget;

typedef struct VmcgReclaimResult {
	uint64_t take_pages; /* ask this many pages of the VM */
	bool low_breached;   /* gives pages in pass 2 (then at or below elow) */
} VmcgReclaimResult;

typedef struct VmcgReclaimSummary {
	uint64_t planned_pages;	  /* sum of take_pages */
	uint64_t shortfall_pages; /* nr_to_reclaim - planned_pages */
	bool low_reclaim;	  /* pass 2 ran (and so took pages) */
} VmcgReclaimSummary;

/**
 * vmcg_reclaim_plan() - split @nr_to_reclaim over @n VMs
 * @targets: @n inputs
 * @ret: @n results, written in full (zeroed first) on success
 * @ret_summary: optional
 *
 * Returns 0; -EINVAL if @n > 0 and @targets or @ret is NULL; -E2BIG if @n
 * exceeds 2^26 (the bound that keeps the 128-bit arithmetic exact); -ENOMEM
 * if the O(n) scratch for a proportional split cannot be allocated. On error
 * @ret and @ret_summary are untouched. A shortfall is not an error: it means
 * the group cannot get under its limit by reclaim alone (for max: the OOM
 * path). With @n == 0, @targets and @ret may be NULL.
 */
int vmcg_reclaim_plan(const VmcgReclaimTarget *targets, size_t n, uint64_t nr_to_reclaim,
		      VmcgReclaimResult *ret, VmcgReclaimSummary *ret_summary);

#endif
