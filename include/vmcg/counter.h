/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Lock-free hierarchical page counter: the analog of the kernel's struct
 * page_counter (mm/page_counter.c, include/linux/page_counter.h).
 *
 * A counter counts pages charged to it and to all of its descendants; a
 * charge walks from a counter to the root, so every ancestor's usage includes
 * its subtree. Limits (min, low, high, max) are per counter.
 *
 * Concurrency: charge, uncharge and reads are lock-free and may run from any
 * number of threads. Setting limits, changing ->parent and freeing a counter
 * must be serialized by the caller against each other, and changing ->parent
 * additionally against charge walks (group.c does that with a per-VM gate).
 */
#ifndef VMCG_COUNTER_H
#define VMCG_COUNTER_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* The engine counts 4 KiB pages; the API speaks bytes. */
#define VMCG_PAGE_SHIFT 12
#define VMCG_PAGE_SIZE (UINT64_C(1) << VMCG_PAGE_SHIFT)

/*
 * "max": the largest page count whose byte size still fits in an int64_t, as
 * PAGE_COUNTER_MAX is LONG_MAX / PAGE_SIZE. Any limit at or above it means
 * unlimited.
 */
#define VMCG_PAGES_MAX ((uint64_t)INT64_MAX >> VMCG_PAGE_SHIFT)

/*
 * x86-64 line size. Used for the layout below and for per-vCPU stocks, which
 * must never share a line with each other.
 */
#define VMCG_CACHELINE 64

typedef struct VmcgCounter VmcgCounter;

struct VmcgCounter {
	/*
	 * Written by every charge and uncharge from every thread that charges
	 * this subtree: alone on its line, so that walkers reading ->parent and
	 * the limits of this counter do not bounce it, and it does not bounce
	 * them (the kernel's CACHELINE_PADDING(_pad1_) in struct page_counter).
	 * Signed so that an underflow is visible before it is repaired.
	 */
	alignas(VMCG_CACHELINE) _Atomic int64_t usage;

	/*
	 * Written on charge only when it matters: protected usage changes
	 * only while usage is below min/low, the watermark only on a new peak,
	 * failcnt and underflows only on failure.
	 */
	alignas(VMCG_CACHELINE) _Atomic uint64_t emin;
	_Atomic int64_t min_usage;
	_Atomic int64_t children_min_usage;
	_Atomic uint64_t elow;
	_Atomic int64_t low_usage;
	_Atomic int64_t children_low_usage;
	_Atomic uint64_t watermark;
	_Atomic uint64_t failcnt;
	_Atomic uint64_t underflows;

	/* Read-mostly: read by every walk, written by configuration only. */
	alignas(VMCG_CACHELINE) _Atomic uint64_t min;
	_Atomic uint64_t low;
	_Atomic uint64_t high;
	_Atomic uint64_t max;
	VmcgCounter *parent;
};

/**
 * vmcg_counter_init() - initialize a counter below @parent
 * @parent: the parent counter, or NULL for a root
 *
 * All limits start as the cgroup defaults: min = low = 0, high = max = max.
 */
void vmcg_counter_init(VmcgCounter *counter, VmcgCounter *parent);

/**
 * vmcg_counter_read() - current usage in pages
 *
 * Never negative: a transient underflow (which uncharge detects and repairs)
 * reads as 0.
 */
static inline uint64_t vmcg_counter_read(const VmcgCounter *counter)
{
	int64_t v = atomic_load_explicit(&counter->usage, memory_order_relaxed);

	return v > 0 ? (uint64_t)v : 0;
}

/**
 * vmcg_counter_charge() - charge @nr_pages to @counter and its ancestors,
 * ignoring limits (the kernel's page_counter_charge(), used for forced
 * charges such as moving a VM with VMCG_MOVE_FORCE).
 */
void vmcg_counter_charge(VmcgCounter *counter, uint64_t nr_pages);

/**
 * vmcg_counter_try_charge() - charge @nr_pages to @counter and every ancestor,
 * or to none of them
 * @ret_fail: set to the first counter on the way up whose max would be
 *            exceeded; its failcnt is incremented
 *
 * Returns true when all levels were charged. Returns false, with nothing
 * charged and *@ret_fail set, when a level would exceed its max.
 *
 * Like the kernel's it charges speculatively (add, then compare) instead of
 * a compare-and-swap per level: a large charge that fails may briefly lock
 * out a racing smaller one, an error bounded by the larger charge.
 */
bool vmcg_counter_try_charge(VmcgCounter *counter, uint64_t nr_pages, VmcgCounter **ret_fail);

/**
 * vmcg_counter_try_charge_until() - vmcg_counter_try_charge() that stops
 * below @stop (exclusive); @stop == NULL walks to the root.
 *
 * Used to move a charge between subtrees: the levels at and above the common
 * ancestor keep their usage.
 */
bool vmcg_counter_try_charge_until(VmcgCounter *counter, VmcgCounter *stop, uint64_t nr_pages,
				   VmcgCounter **ret_fail);

/** vmcg_counter_charge_until() - vmcg_counter_charge() that stops below @stop. */
void vmcg_counter_charge_until(VmcgCounter *counter, VmcgCounter *stop, uint64_t nr_pages);

/**
 * vmcg_counter_uncharge() - take @nr_pages out of @counter and its ancestors
 *
 * Returns 0, or -ERANGE when @counter holds fewer than @nr_pages: then nothing
 * is uncharged at any level and counter->underflows is incremented. An
 * ancestor found short (an inconsistent tree, i.e. a bug elsewhere) is
 * clamped at zero, counted in its ->underflows, and -EUCLEAN ("structure
 * needs cleaning") is returned after the walk completes: the pages did
 * leave the leaf. The kernel WARNs and clamps; we refuse at the
 * leaf because the caller can then report exactly which uncharge was wrong.
 */
int vmcg_counter_uncharge(VmcgCounter *counter, uint64_t nr_pages);

/** vmcg_counter_uncharge_until() - vmcg_counter_uncharge() that stops below @stop. */
int vmcg_counter_uncharge_until(VmcgCounter *counter, VmcgCounter *stop, uint64_t nr_pages);

/**
 * vmcg_counter_set_max() - set the hard limit
 *
 * Unlike page_counter_set_max(), which returns -EBUSY when usage is above
 * the new limit, this always succeeds: memory.max accepts such writes (the
 * kernel's memory_max_write() then reclaims and OOM-kills in a loop), and
 * here that loop belongs to the caller, which sees usage > max and
 * reclaims. New charges fail from the moment the limit is visible.
 *
 * The caller serializes limit writes on one counter.
 */
void vmcg_counter_set_max(VmcgCounter *counter, uint64_t nr_pages);
void vmcg_counter_set_high(VmcgCounter *counter, uint64_t nr_pages);

/**
 * vmcg_counter_set_min() / vmcg_counter_set_low() - set protection and
 * re-propagate the protected usage of this counter and its ancestors, as
 * page_counter_set_min() does.
 */
void vmcg_counter_set_min(VmcgCounter *counter, uint64_t nr_pages);
void vmcg_counter_set_low(VmcgCounter *counter, uint64_t nr_pages);

static inline uint64_t vmcg_counter_max(const VmcgCounter *c)
{
	return atomic_load_explicit(&c->max, memory_order_relaxed);
}

static inline uint64_t vmcg_counter_high(const VmcgCounter *c)
{
	return atomic_load_explicit(&c->high, memory_order_relaxed);
}

static inline uint64_t vmcg_counter_min(const VmcgCounter *c)
{
	return atomic_load_explicit(&c->min, memory_order_relaxed);
}

static inline uint64_t vmcg_counter_low(const VmcgCounter *c)
{
	return atomic_load_explicit(&c->low, memory_order_relaxed);
}

/** vmcg_counter_peak() - highest usage since init or the last reset. */
static inline uint64_t vmcg_counter_peak(const VmcgCounter *c)
{
	return atomic_load_explicit(&c->watermark, memory_order_relaxed);
}

/** vmcg_counter_reset_peak() - restart the peak from the current usage. */
void vmcg_counter_reset_peak(VmcgCounter *counter);

/**
 * vmcg_counter_calculate_protection() - update counter->emin/elow
 * @root: the counter reclaim is working on; its own protection is ignored
 *        and its children get exactly their declared protection
 * @recursive: the memory_recursiveprot variant
 *
 * Like page_counter_calculate_protection(): not stateless, it reads the
 * parent's freshly computed emin/elow, so call it top-down over the subtree
 * of @root (vmcg_tree_calculate_protection() does).
 */
void vmcg_counter_calculate_protection(VmcgCounter *root, VmcgCounter *counter, bool recursive);

/**
 * vmcg_effective_protection() - the kernel's effective_protection(), exposed
 * for tests: the protection of a counter with @usage and declared @setting,
 * whose parent has @parent_usage and @parent_effective protection and whose
 * siblings (itself included) use @siblings_protected of their declared
 * protection.
 */
uint64_t vmcg_effective_protection(uint64_t usage, uint64_t parent_usage, uint64_t setting,
				   uint64_t parent_effective, uint64_t siblings_protected,
				   bool recursive);

#endif
