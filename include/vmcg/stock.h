/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Per-vCPU charge stock, after memcg's per-CPU stock (mm/memcontrol.c:
 * consume_stock(), refill_stock(), drain_stock(), drain_all_stock()).
 *
 * A stock belongs to one VM and is owned by one thread (a vCPU, or the
 * VM's device/IO thread). It caches pages already charged to the VM's
 * counter. A charge that the cache covers is a load and a store on the
 * stock's own cache line plus a load of the VM's read-mostly drain
 * generation: no atomic read-modify-write, no shared line written. A miss
 * charges max(batch, nr) pages up the hierarchy (retrying with exactly nr
 * if the batch would break a max, as try_charge() does) and keeps the
 * surplus. Uncharges go back into the stock; when it would exceed the
 * batch, the whole stock is uncharged at once, as refill_stock() does, so
 * that a run of uncharges walks the tree once per batch, not once per page.
 *
 * Bound on charge hidden in stocks: after every operation a stock holds at
 * most `batch` pages, so a VM's counter can exceed the pages its guest
 * really uses by at most (number of stocks) x batch, i.e. (vCPUs + 1) x
 * batch with one stock per vCPU plus the device slot. With the default
 * batch of 64 and 4 vCPUs that is 320 pages, 1.25 MiB. The kernel's bound
 * is the same shape: nr_cpus x MEMCG_CHARGE_BATCH per memcg.
 *
 * Draining from another thread is a request, as drain_all_stock() queues
 * work rather than touching other CPUs' stocks: the VM's drain generation
 * is bumped and each stock gives its credit back at its owner's next
 * operation. That keeps the hit path free of atomics, and is enough for
 * what draining is for here (limit changes). Moves and group removal need
 * no drain at all: stock credit is charged to the VM's own counter, which
 * moves with the VM. vmcg_stock_free() drains directly; it is called once
 * the owner is gone.
 */
#ifndef VMCG_STOCK_H
#define VMCG_STOCK_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

#include "vmcg/counter.h"
#include "vmcg/group.h"

/*
 * 64 pages: the kernel's MEMCG_CHARGE_BATCH. Large enough that the
 * hierarchy walk is paid once per 256 KiB of guest RAM, small enough that
 * the hidden charge above stays a rounding error next to a VM's size.
 */
#define VMCG_STOCK_BATCH_DEFAULT 64
/* 2 MiB x 256 = 512 MiB hidden per stock at most: beyond that a stock
 * would hide more than a small guest's whole RAM. */
#define VMCG_STOCK_BATCH_MAX (1u << 17)

typedef struct VmcgStock VmcgStock;

struct VmcgStock {
	/* Owner-written: one line per stock so that two vCPUs never share one. */
	alignas(VMCG_CACHELINE) _Atomic int64_t nr_pages; /* relaxed: others only read it */
	uint64_t seen_gen;				  /* drain generation last acted on */
	const _Atomic uint64_t *drain_gen;		  /* the VM's */
	VmcgVm *vm;
	uint32_t batch;
	uint64_t refills; /* misses that charged the hierarchy */
	/* private: this stock's charge-walk gate (see vm.c) */
	_Atomic uint32_t gate;
	/* private: the VM's list of stocks, changed under the caller's serialization */
	VmcgStock *next;
	VmcgStock *prev;
};

/**
 * vmcg_stock_new() - a stock for @vm with @batch pages (0: the tree's).
 * Created and freed under the tree's serialization (see group.h).
 * Returns 0, -EINVAL (batch too large), -ENOMEM.
 */
int vmcg_stock_new(VmcgVm *vm, uint32_t batch, VmcgStock **ret);

/** vmcg_stock_free() - drain and free; the owner must be done with it. NULL ok. */
void vmcg_stock_free(VmcgStock *stock);

int vmcg_stock_charge_slow(VmcgStock *stock, uint32_t nr_pages, VmcgGroup **ret_over);
int vmcg_stock_uncharge_slow(VmcgStock *stock, uint32_t nr_pages);

/**
 * vmcg_stock_charge() - charge @nr_pages to the stock's VM. Owner only.
 * Returns 0, or -ENOMEM with *@ret_over at its max (as vmcg_vm_try_charge()).
 */
static inline int vmcg_stock_charge(VmcgStock *stock, uint32_t nr_pages, VmcgGroup **ret_over)
{
	int64_t nr = atomic_load_explicit(&stock->nr_pages, memory_order_relaxed);

	if (__builtin_expect(nr >= (int64_t)nr_pages &&
				     atomic_load_explicit(stock->drain_gen, memory_order_relaxed) ==
					     stock->seen_gen,
			     1)) {
		atomic_store_explicit(&stock->nr_pages, nr - (int64_t)nr_pages,
				      memory_order_relaxed);
		return 0;
	}
	return vmcg_stock_charge_slow(stock, nr_pages, ret_over);
}

/**
 * vmcg_stock_uncharge() - give back @nr_pages charged through this VM.
 * Owner only. Returns 0, or -ERANGE if the stock had to give back more than
 * the VM has charged (a double uncharge; counted in its counter's
 * underflows): then nothing changes, the stock keeps its credit.
 */
static inline int vmcg_stock_uncharge(VmcgStock *stock, uint32_t nr_pages)
{
	int64_t nr = atomic_load_explicit(&stock->nr_pages, memory_order_relaxed) + nr_pages;

	if (__builtin_expect(nr <= (int64_t)stock->batch &&
				     atomic_load_explicit(stock->drain_gen, memory_order_relaxed) ==
					     stock->seen_gen,
			     1)) {
		atomic_store_explicit(&stock->nr_pages, nr, memory_order_relaxed);
		return 0;
	}
	return vmcg_stock_uncharge_slow(stock, nr_pages);
}

/** vmcg_stock_drain() - owner gives back all cached credit now. */
void vmcg_stock_drain(VmcgStock *stock);

/** vmcg_stock_cached() - credit cached now; any thread (a racy snapshot). */
static inline uint64_t vmcg_stock_cached(const VmcgStock *stock)
{
	int64_t v = atomic_load_explicit(&stock->nr_pages, memory_order_relaxed);

	return v > 0 ? (uint64_t)v : 0;
}

#endif
