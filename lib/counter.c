// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Lock-free hierarchical page counter, after the kernel's mm/page_counter.c.
 */
#include <errno.h>
#include <stddef.h>

#include "vmcg/counter.h"

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/*
 * Keep the parent's children_{min,low}_usage equal to the sum of its
 * children's protected usage, min(usage, setting). The exchange makes
 * concurrent updaters of one counter agree on the delta each of them adds,
 * so the parent's sum converges to the truth once charging quiesces, as in
 * the kernel. Counters without protection skip both atomics.
 */
static void propagate_protected_usage(VmcgCounter *c, int64_t usage)
{
	uint64_t u = usage > 0 ? (uint64_t)usage : 0;
	uint64_t setting;
	int64_t protected, old, delta;

	if (!c->parent)
		return;

	setting = atomic_load_explicit(&c->min, memory_order_relaxed);
	if (setting || atomic_load_explicit(&c->min_usage, memory_order_relaxed)) {
		protected = (int64_t)min_u64(u, setting);
		old = atomic_exchange(&c->min_usage, protected);
		delta = protected - old;
		if (delta)
			atomic_fetch_add(&c->parent->children_min_usage, delta);
	}

	setting = atomic_load_explicit(&c->low, memory_order_relaxed);
	if (setting || atomic_load_explicit(&c->low_usage, memory_order_relaxed)) {
		protected = (int64_t)min_u64(u, setting);
		old = atomic_exchange(&c->low_usage, protected);
		delta = protected - old;
		if (delta)
			atomic_fetch_add(&c->parent->children_low_usage, delta);
	}
}

/*
 * Racy by design, as the kernel's: two chargers may both see themselves as
 * the new peak and the smaller may win the store. The peak is a statistic;
 * a CAS loop on every charge would cost more than it is worth.
 */
static inline void update_watermark(VmcgCounter *c, int64_t usage)
{
	if (usage > 0 &&
	    (uint64_t)usage > atomic_load_explicit(&c->watermark, memory_order_relaxed))
		atomic_store_explicit(&c->watermark, (uint64_t)usage, memory_order_relaxed);
}

void vmcg_counter_init(VmcgCounter *counter, VmcgCounter *parent)
{
	atomic_init(&counter->usage, 0);
	atomic_init(&counter->emin, 0);
	atomic_init(&counter->min_usage, 0);
	atomic_init(&counter->children_min_usage, 0);
	atomic_init(&counter->elow, 0);
	atomic_init(&counter->low_usage, 0);
	atomic_init(&counter->children_low_usage, 0);
	atomic_init(&counter->watermark, 0);
	atomic_init(&counter->failcnt, 0);
	atomic_init(&counter->underflows, 0);
	atomic_init(&counter->min, 0);
	atomic_init(&counter->low, 0);
	atomic_init(&counter->high, VMCG_PAGES_MAX);
	atomic_init(&counter->max, VMCG_PAGES_MAX);
	counter->parent = parent;
}

void vmcg_counter_charge_until(VmcgCounter *counter, VmcgCounter *stop, uint64_t nr_pages)
{
	for (VmcgCounter *c = counter; c != stop; c = c->parent) {
		int64_t new = atomic_fetch_add(&c->usage, (int64_t)nr_pages) + (int64_t)nr_pages;

		propagate_protected_usage(c, new);
		update_watermark(c, new);
	}
}

void vmcg_counter_charge(VmcgCounter *counter, uint64_t nr_pages)
{
	vmcg_counter_charge_until(counter, NULL, nr_pages);
}

/*
 * Take @nr_pages out of one level. Only called for levels that were charged
 * before (rollback) or, by uncharge, for ancestors of a leaf that held the
 * pages: a shortfall here means the tree is inconsistent. It is clamped back
 * to zero by adding the deficit, not by storing 0, so that a concurrent
 * charge is not wiped out.
 */
static bool cancel_one(VmcgCounter *c, uint64_t nr_pages)
{
	int64_t new = atomic_fetch_sub(&c->usage, (int64_t)nr_pages) - (int64_t)nr_pages;
	bool ok = true;

	if (new < 0) {
		atomic_fetch_add(&c->usage, -new);
		atomic_fetch_add_explicit(&c->underflows, 1, memory_order_relaxed);
		new = 0;
		ok = false;
	}
	propagate_protected_usage(c, new);
	return ok;
}

bool vmcg_counter_try_charge_until(VmcgCounter *counter, VmcgCounter *stop, uint64_t nr_pages,
				   VmcgCounter **ret_fail)
{
	VmcgCounter *c, *fail;

	for (c = counter; c != stop; c = c->parent) {
		/*
		 * Add first, then compare with max: the sequentially
		 * consistent add orders the update before the read of the
		 * limit, so a racing vmcg_counter_set_max() either is seen
		 * here or sees this usage (the kernel's argument for
		 * page_counter_try_charge()).
		 */
		int64_t new = atomic_fetch_add(&c->usage, (int64_t)nr_pages) + (int64_t)nr_pages;

		if ((uint64_t) new > atomic_load_explicit(&c->max, memory_order_relaxed)) {
			atomic_fetch_sub(&c->usage, (int64_t)nr_pages);
			atomic_fetch_add_explicit(&c->failcnt, 1, memory_order_relaxed);
			fail = c;
			goto failed;
		}
		propagate_protected_usage(c, new);
		update_watermark(c, new);
	}
	return true;

failed:
	for (c = counter; c != fail; c = c->parent)
		cancel_one(c, nr_pages);
	if (ret_fail)
		*ret_fail = fail;
	return false;
}

bool vmcg_counter_try_charge(VmcgCounter *counter, uint64_t nr_pages, VmcgCounter **ret_fail)
{
	return vmcg_counter_try_charge_until(counter, NULL, nr_pages, ret_fail);
}

int vmcg_counter_uncharge_until(VmcgCounter *counter, VmcgCounter *stop, uint64_t nr_pages)
{
	int64_t new;
	int r = 0;

	if (counter == stop || nr_pages == 0)
		return 0;

	/*
	 * The leaf decides: more uncharged than it holds is the caller's bug
	 * (a double uncharge), so refuse it whole instead of clamping, and
	 * leave the ancestors alone.
	 */
	new = atomic_fetch_sub(&counter->usage, (int64_t)nr_pages) - (int64_t)nr_pages;
	if (new < 0) {
		atomic_fetch_add(&counter->usage, (int64_t)nr_pages);
		atomic_fetch_add_explicit(&counter->underflows, 1, memory_order_relaxed);
		return -ERANGE;
	}
	propagate_protected_usage(counter, new);

	for (VmcgCounter *c = counter->parent; c != stop; c = c->parent)
		if (!cancel_one(c, nr_pages))
			r = -EUCLEAN;
	return r;
}

int vmcg_counter_uncharge(VmcgCounter *counter, uint64_t nr_pages)
{
	return vmcg_counter_uncharge_until(counter, NULL, nr_pages);
}

void vmcg_counter_set_max(VmcgCounter *counter, uint64_t nr_pages)
{
	atomic_store(&counter->max, min_u64(nr_pages, VMCG_PAGES_MAX));
}

void vmcg_counter_set_high(VmcgCounter *counter, uint64_t nr_pages)
{
	atomic_store(&counter->high, min_u64(nr_pages, VMCG_PAGES_MAX));
}

void vmcg_counter_set_min(VmcgCounter *counter, uint64_t nr_pages)
{
	atomic_store(&counter->min, min_u64(nr_pages, VMCG_PAGES_MAX));
	for (VmcgCounter *c = counter; c; c = c->parent)
		propagate_protected_usage(c, atomic_load(&c->usage));
}

void vmcg_counter_set_low(VmcgCounter *counter, uint64_t nr_pages)
{
	atomic_store(&counter->low, min_u64(nr_pages, VMCG_PAGES_MAX));
	for (VmcgCounter *c = counter; c; c = c->parent)
		propagate_protected_usage(c, atomic_load(&c->usage));
}

void vmcg_counter_reset_peak(VmcgCounter *counter)
{
	atomic_store_explicit(&counter->watermark, vmcg_counter_read(counter),
			      memory_order_relaxed);
}
