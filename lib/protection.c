// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Effective memory.min/memory.low protection, after the kernel's
 * effective_protection() and page_counter_calculate_protection()
 * (mm/page_counter.c; mm/memcontrol.c before 6.10).
 *
 * The rules, quoted in short from the kernel:
 * 1. At the first level of reclaim, effective protection equals the declared
 *    memory.min/low.
 * 2. Further down it is capped to the parent's effective protection.
 * 3. If the children of a parent together claim and use more protection than
 *    the parent has, the parent's is split in proportion to their protected
 *    usage (work-conserving: unused claims go to siblings).
 * 4. If they claim less, a child's protection is its own setting.
 * 5. With recursive protection (memory_recursiveprot), the unclaimed rest of
 *    the parent's protection is split in proportion to each child's
 *    unprotected usage, which protects a subtree as a whole from its
 *    neighbours without per-child settings.
 */
#include "vmcg/counter.h"

/* Sums of racing propagations can be negative for a moment: read as 0. */
static uint64_t read_sum(const _Atomic int64_t *v)
{
	int64_t x = atomic_load_explicit(v, memory_order_relaxed);

	return x > 0 ? (uint64_t)x : 0;
}

uint64_t vmcg_effective_protection(uint64_t usage, uint64_t parent_usage, uint64_t setting,
				   uint64_t parent_effective, uint64_t siblings_protected,
				   bool recursive)
{
	uint64_t protected = usage < setting ? usage : setting;
	uint64_t ep;

	/*
	 * Overcommitted: split in proportion to use. 128-bit intermediate: a
	 * page count is below 2^51 and the product of two does not fit in 64
	 * bits (the kernel multiplies in unsigned long on 64-bit page counts
	 * that are smaller by the same factor, so it does not need this).
	 */
	if (siblings_protected > parent_effective)
		return (uint64_t)((unsigned __int128)protected * parent_effective /
				  siblings_protected);

	ep = protected;
	if (!recursive)
		return ep;

	/*
	 * Floating protection: checked on both usage and parent_usage because
	 * they are not read atomically together; keeps the division sane.
	 */
	if (parent_effective > siblings_protected && parent_usage > siblings_protected &&
	    usage > protected) {
		unsigned __int128 unclaimed = parent_effective - siblings_protected;

		unclaimed *= usage - protected;
		unclaimed /= parent_usage - siblings_protected;
		ep += (uint64_t)unclaimed;
	}
	return ep;
}

void vmcg_counter_calculate_protection(VmcgCounter *root, VmcgCounter *counter, bool recursive)
{
	VmcgCounter *parent = counter->parent;
	uint64_t usage, parent_usage;

	/*
	 * The reclaim root's own protection does not apply to itself:
	 * it is the one that is over its limit (mem_cgroup_protection()).
	 */
	if (counter == root)
		return;

	usage = vmcg_counter_read(counter);
	if (!usage) {
		/*
		 * The kernel returns early and leaves stale values, which its
		 * callers tolerate; ours read emin/elow for reporting, so a
		 * counter that uses nothing is shown as protecting nothing.
		 */
		atomic_store_explicit(&counter->emin, 0, memory_order_relaxed);
		atomic_store_explicit(&counter->elow, 0, memory_order_relaxed);
		return;
	}

	if (parent == root) {
		atomic_store_explicit(&counter->emin, vmcg_counter_min(counter),
				      memory_order_relaxed);
		atomic_store_explicit(&counter->elow, vmcg_counter_low(counter),
				      memory_order_relaxed);
		return;
	}

	parent_usage = vmcg_counter_read(parent);

	atomic_store_explicit(
		&counter->emin,
		vmcg_effective_protection(usage, parent_usage, vmcg_counter_min(counter),
					  atomic_load_explicit(&parent->emin, memory_order_relaxed),
					  read_sum(&parent->children_min_usage), recursive),
		memory_order_relaxed);

	atomic_store_explicit(
		&counter->elow,
		vmcg_effective_protection(usage, parent_usage, vmcg_counter_low(counter),
					  atomic_load_explicit(&parent->elow, memory_order_relaxed),
					  read_sum(&parent->children_low_usage), recursive),
		memory_order_relaxed);
}
