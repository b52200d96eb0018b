/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Private layout of the tree, groups and VMs, shared by group.c, vm.c,
 * stock.c and events.c. Not installed.
 */
#ifndef VMCG_INTERNAL_H
#define VMCG_INTERNAL_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmcg/counter.h"
#include "vmcg/group.h"
#include "vmcg/psi.h"
#include "vmcg/stock.h"
#include "vmcg/vmpressure.h"

struct VmcgTree {
	VmcgGroup *root;
	bool recursive_protection;
	uint32_t stock_batch;
	VmcgEventFn event_fn;
	void *event_userdata;
	/* All VMs, in attach order, for name lookup and iteration. */
	VmcgVm *vms_head;
	VmcgVm *vms_tail;
	size_t nr_vms;
	size_t nr_groups;
	/*
	 * Every group but the root, by (parent, name): finding a child is
	 * O(1) however many siblings it has (group.c, child_hash_*()).
	 * Chained through VmcgGroup.hash_next; a power of two of buckets,
	 * doubled when groups outnumber them.
	 */
	VmcgGroup **buckets;
	size_t nr_buckets;
	/* Odd while a move or reparent is re-pointing counters. */
	_Atomic unsigned seq;
};

struct VmcgGroup {
	VmcgCounter counter; /* first: cache-line aligned */
	VmcgTree *tree;
	VmcgGroup *parent;
	VmcgGroup *children;   /* first child */
	VmcgGroup *last_child; /* appending is O(1) */
	VmcgGroup *next_sibling;
	VmcgGroup *prev_sibling;
	VmcgGroup *hash_next; /* in tree->buckets */
	uint64_t name_hash;
	size_t name_len;
	size_t nr_children;
	VmcgVm *vms; /* first VM in this group */
	VmcgVm *vms_tail;
	size_t nr_vms;
	unsigned depth; /* 0 for the root */
	char *name;
	char *path;
	void *userdata;
	bool oom_group;
	bool overhead_counted;
	VmcgOomAction oom_action;
	/* memory.max as set, and a cap on it: the counter enforces the lower. */
	uint64_t max_setting;
	uint64_t max_cap;
	_Atomic uint64_t events[_VMCG_EVENT_COUNT];
	_Atomic uint64_t events_local[_VMCG_EVENT_COUNT];
	VmcgVmpressure vmpressure;
	VmcgPsi psi;
};

struct VmcgVm {
	VmcgCounter counter; /* first: cache-line aligned */

	/*
	 * Read by every stock hit of every vCPU of this VM and written only
	 * by drain requests: its own line, so it stays shared-clean in every
	 * vCPU's cache. The gate below is written by direct charges.
	 */
	alignas(VMCG_CACHELINE) _Atomic uint64_t drain_gen;

	/*
	 * Bit 0: a mover owns counter.parent. Bits 1..: charge walks in
	 * progress. See gate_enter() in vm.c.
	 */
	alignas(VMCG_CACHELINE) _Atomic uint32_t gate;

	alignas(VMCG_CACHELINE) VmcgTree *tree;
	VmcgGroup *group;
	VmcgVm *group_next; /* siblings in the group */
	VmcgVm *group_prev;
	VmcgVm *tree_next; /* all VMs */
	VmcgVm *tree_prev;
	VmcgStock *stocks;
	size_t nr_stocks;
	char *name;
	void *userdata;
	uint64_t floor_pages;
	int32_t oom_priority;
	bool oom_eligible;
	/* Overhead and whether it is in the counter right now. */
	uint64_t overhead_pages;
	bool overhead_charged;
	_Atomic uint64_t stats[_VMCG_STAT_COUNT];
	/* credit charged and cached outside the engine (vmcg_vm_set_external_stock()) */
	_Atomic uint64_t external_stock;
};

/* vm.c: charge walks that may cross a move. */
void vmcg_vm_gate_close(VmcgVm *vm);
void vmcg_vm_gate_open(VmcgVm *vm);
/* Charge walks through a given gate (the VM's or one of its stocks'); no event. */
bool vmcg_vm_try_charge_gated(VmcgVm *vm, _Atomic uint32_t *gate, uint64_t nr_pages,
			      VmcgCounter **ret_fail);
int vmcg_vm_uncharge_gated(VmcgVm *vm, _Atomic uint32_t *gate, uint64_t nr_pages);

/* group.c */
void *vmcg_zalloc_aligned(size_t size);
VmcgGroup *vmcg_group_common_ancestor(VmcgGroup *a, VmcgGroup *b);
void vmcg_tree_write_begin(VmcgTree *tree);
void vmcg_tree_write_end(VmcgTree *tree);
void vmcg_group_link_vm(VmcgGroup *group, VmcgVm *vm);
void vmcg_group_unlink_vm(VmcgGroup *group, VmcgVm *vm);

/* Counters of the group that owns a counter (groups and VMs embed them first). */
static inline VmcgGroup *group_of_counter(VmcgCounter *c)
{
	return (VmcgGroup *)((char *)c - offsetof(VmcgGroup, counter));
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

#endif
