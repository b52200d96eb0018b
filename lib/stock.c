// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Per-vCPU stock slow paths: refill on a miss, drain of the surplus, drain
 * on request. The fast paths are inline in vmcg/stock.h.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

int vmcg_stock_new(VmcgVm *vm, uint32_t batch, VmcgStock **ret)
{
	VmcgStock *s;

	if (batch == 0)
		batch = vm->tree->stock_batch;
	if (batch > VMCG_STOCK_BATCH_MAX)
		return -EINVAL;
	s = vmcg_zalloc_aligned(sizeof(*s));
	if (!s)
		return -ENOMEM;
	atomic_init(&s->nr_pages, 0);
	atomic_init(&s->gate, 0);
	s->vm = vm;
	s->batch = batch;
	s->drain_gen = &vm->drain_gen;
	s->seen_gen = atomic_load(&vm->drain_gen);

	s->next = vm->stocks;
	if (vm->stocks)
		vm->stocks->prev = s;
	vm->stocks = s;
	vm->nr_stocks++;
	*ret = s;
	return 0;
}

/*
 * The stock would hold @nr > batch: give it all back, as refill_stock()
 * does. Draining to zero rather than to the batch is the hysteresis that
 * makes a run of uncharges walk the tree once per batch instead of once per
 * page; the charges that follow refill with a whole batch again.
 */
static int trim(VmcgStock *s, int64_t nr, int64_t credit_before)
{
	int r;

	atomic_store_explicit(&s->nr_pages, 0, memory_order_relaxed);
	r = vmcg_vm_uncharge_gated(s->vm, &s->gate, (uint64_t)nr);
	/*
	 * Refused at the VM's counter (a double uncharge by the caller):
	 * nothing was uncharged, so the stock keeps the credit it had and the
	 * refused pages are simply not taken, as a refused vmcg_vm_uncharge().
	 */
	if (r == -ERANGE)
		atomic_store_explicit(&s->nr_pages, credit_before, memory_order_relaxed);
	return r;
}

/* Give back everything cached. Owner, or anyone once the owner is gone. */
static int drain(VmcgStock *s)
{
	int64_t nr = atomic_load_explicit(&s->nr_pages, memory_order_relaxed);

	if (nr <= 0)
		return 0;
	return trim(s, nr, nr);
}

/* Act on a pending drain request, if any. */
static void drain_if_requested(VmcgStock *s)
{
	uint64_t gen = atomic_load_explicit(s->drain_gen, memory_order_acquire);

	if (gen != s->seen_gen) {
		(void)drain(s);
		s->seen_gen = gen;
	}
}

void vmcg_stock_free(VmcgStock *s)
{
	VmcgVm *vm;

	if (!s)
		return;
	vm = s->vm;
	(void)drain(s);
	if (s->prev)
		s->prev->next = s->next;
	else
		vm->stocks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	vm->nr_stocks--;
	free(s);
}

void vmcg_stock_drain(VmcgStock *s)
{
	(void)drain(s);
	s->seen_gen = atomic_load_explicit(s->drain_gen, memory_order_acquire);
}

int vmcg_stock_charge_slow(VmcgStock *s, uint32_t nr_pages, VmcgGroup **ret_over)
{
	uint64_t batch = s->batch > nr_pages ? s->batch : nr_pages;
	VmcgCounter *fail;
	int64_t nr;

	drain_if_requested(s);
	nr = atomic_load_explicit(&s->nr_pages, memory_order_relaxed);
	if (nr >= (int64_t)nr_pages) {
		atomic_store_explicit(&s->nr_pages, nr - (int64_t)nr_pages, memory_order_relaxed);
		return 0;
	}

	/*
	 * try_charge(): a whole batch, so that the next batch - nr_pages
	 * charges hit; if the batch would break a max, exactly what was asked
	 * (a VM near its limit must not be refused for credit it does not
	 * need). Only the second failure is a "max" event.
	 */
	s->refills++;
	if (batch > nr_pages) {
		if (vmcg_vm_try_charge_gated(s->vm, &s->gate, batch, &fail))
			goto charged;
		batch = nr_pages;
	}
	if (!vmcg_vm_try_charge_gated(s->vm, &s->gate, batch, &fail)) {
		/* As vmcg_vm_try_charge(): the event outside the gate. */
		vmcg_group_event(group_of_counter(fail), VMCG_EVENT_MAX);
		if (ret_over)
			*ret_over = group_of_counter(fail);
		return -ENOMEM;
	}
charged:
	nr = atomic_load_explicit(&s->nr_pages, memory_order_relaxed) + (int64_t)(batch - nr_pages);
	atomic_store_explicit(&s->nr_pages, nr, memory_order_relaxed);
	if (nr > (int64_t)s->batch)
		return trim(s, nr, nr);
	return 0;
}

int vmcg_stock_uncharge_slow(VmcgStock *s, uint32_t nr_pages)
{
	int64_t nr;

	drain_if_requested(s);
	nr = atomic_load_explicit(&s->nr_pages, memory_order_relaxed) + nr_pages;
	if (nr <= (int64_t)s->batch) {
		atomic_store_explicit(&s->nr_pages, nr, memory_order_relaxed);
		return 0;
	}
	return trim(s, nr, nr - nr_pages);
}
