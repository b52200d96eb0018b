// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * VMs: attach, detach, move, and the charge path from a VM up the tree.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "vmcg/oom.h"

/*
 * The gate keeps counter.parent stable under a charge walk. A walk is a
 * handful of atomic adds (depth <= VMCG_DEPTH_MAX + 1) and a move is rare,
 * so a spinning reader/writer flag is enough. Both sides use sequentially
 * consistent RMWs, so either the walker sees the mover's bit or the mover
 * sees the walker's count.
 *
 * Each stock has a gate of its own, on the stock's own cache line, for the
 * walks of its misses and drains; the VM's gate serves direct calls. A
 * vCPU's refill then writes no line that another vCPU's refill writes
 * except the counters themselves, and a mover closes them all.
 */
static void gate_enter(_Atomic uint32_t *gate)
{
	for (;;) {
		uint32_t v = atomic_fetch_add(gate, 2);

		if (!(v & 1))
			return;
		atomic_fetch_sub(gate, 2);
		while (atomic_load_explicit(gate, memory_order_relaxed) & 1)
			cpu_relax();
	}
}

static void gate_leave(_Atomic uint32_t *gate)
{
	atomic_fetch_sub_explicit(gate, 2, memory_order_release);
}

static void gate_close(_Atomic uint32_t *gate)
{
	atomic_fetch_or(gate, 1);
	while (atomic_load(gate) >> 1)
		cpu_relax();
}

void vmcg_vm_gate_close(VmcgVm *vm)
{
	gate_close(&vm->gate);
	for (VmcgStock *s = vm->stocks; s; s = s->next)
		gate_close(&s->gate);
}

void vmcg_vm_gate_open(VmcgVm *vm)
{
	for (VmcgStock *s = vm->stocks; s; s = s->next)
		atomic_fetch_and(&s->gate, ~1u);
	atomic_fetch_and(&vm->gate, ~1u);
}

int vmcg_vm_name_validate(const char *name)
{
	size_t len;

	if (!name || !*name)
		return -EINVAL;
	len = strnlen(name, VMCG_VM_NAME_MAX + 1);
	if (len > VMCG_VM_NAME_MAX)
		return -ENAMETOOLONG;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		/* Printable ASCII or UTF-8 bytes; no '/', so a name is a URL segment. */
		if (c < 0x20 || c == 0x7f || c == '/')
			return -EINVAL;
	}
	return 0;
}

int vmcg_vm_lookup(VmcgTree *tree, const char *name, VmcgVm **ret)
{
	if (!name)
		return -EINVAL;
	for (VmcgVm *vm = tree->vms_head; vm; vm = vm->tree_next) {
		if (strcmp(vm->name, name) == 0) {
			*ret = vm;
			return 0;
		}
	}
	return -ENOENT;
}

int vmcg_vm_new(VmcgGroup *group, const char *name, VmcgVm **ret)
{
	VmcgTree *tree = group->tree;
	VmcgVm *vm, *existing;
	int r;

	r = vmcg_vm_name_validate(name);
	if (r < 0)
		return r;
	if (vmcg_vm_lookup(tree, name, &existing) == 0)
		return -EEXIST;

	vm = vmcg_zalloc_aligned(sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->name = strdup(name);
	if (!vm->name) {
		free(vm);
		return -ENOMEM;
	}
	vmcg_counter_init(&vm->counter, &group->counter);
	atomic_init(&vm->drain_gen, 0);
	atomic_init(&vm->gate, 0);
	for (int i = 0; i < _VMCG_STAT_COUNT; i++)
		atomic_init(&vm->stats[i], 0);
	vm->tree = tree;
	vm->oom_eligible = true;

	vmcg_group_link_vm(group, vm);
	vm->tree_prev = tree->vms_tail;
	if (tree->vms_tail)
		tree->vms_tail->tree_next = vm;
	else
		tree->vms_head = vm;
	tree->vms_tail = vm;
	tree->nr_vms++;
	if (ret)
		*ret = vm;
	return 0;
}

void vmcg_vm_free(VmcgVm *vm)
{
	VmcgTree *tree;
	uint64_t usage;

	if (!vm)
		return;
	tree = vm->tree;
	while (vm->stocks)
		vmcg_stock_free(vm->stocks);

	/*
	 * Whatever is left (guest pages, counted overhead) leaves every
	 * ancestor. Nothing else charges this VM any more (the caller's
	 * contract), so its usage is stable.
	 */
	usage = vmcg_counter_read(&vm->counter);
	if (usage)
		(void)vmcg_counter_uncharge(&vm->counter, usage);

	vmcg_group_unlink_vm(vm->group, vm);
	if (vm->tree_prev)
		vm->tree_prev->tree_next = vm->tree_next;
	else
		tree->vms_head = vm->tree_next;
	if (vm->tree_next)
		vm->tree_next->tree_prev = vm->tree_prev;
	else
		tree->vms_tail = vm->tree_prev;
	tree->nr_vms--;
	free(vm->name);
	free(vm);
}

VmcgVm *vmcg_tree_first_vm(VmcgTree *tree)
{
	return tree->vms_head;
}

VmcgVm *vmcg_vm_next(const VmcgVm *vm)
{
	return vm->tree_next;
}

VmcgVm *vmcg_vm_next_in_group(const VmcgVm *vm)
{
	return vm->group_next;
}

int vmcg_vm_move(VmcgVm *vm, VmcgGroup *to, unsigned flags, VmcgGroup **ret_over)
{
	VmcgGroup *from = vm->group, *ca;
	uint64_t usage;
	int r = 0;

	if (to->tree != vm->tree)
		return -EINVAL;
	if (to == from)
		return 0;

	vmcg_vm_gate_close(vm);
	ca = vmcg_group_common_ancestor(from, to);
	/* Stable: with the gate closed nothing walks through this counter. */
	usage = vmcg_counter_read(&vm->counter);

	vmcg_tree_write_begin(vm->tree);
	if (flags & VMCG_MOVE_FORCE) {
		vmcg_counter_charge_until(&to->counter, &ca->counter, usage);
	} else {
		VmcgCounter *fail;

		if (!vmcg_counter_try_charge_until(&to->counter, &ca->counter, usage, &fail)) {
			if (ret_over)
				*ret_over = group_of_counter(fail);
			r = -ENOMEM;
			goto out;
		}
	}
	(void)vmcg_counter_uncharge_until(&from->counter, &ca->counter, usage);
	vm->counter.parent = &to->counter;
	vmcg_group_unlink_vm(from, vm);
	vmcg_group_link_vm(to, vm);
out:
	vmcg_tree_write_end(vm->tree);
	vmcg_vm_gate_open(vm);
	/* The destination's overhead setting applies from now on. */
	if (r == 0)
		vmcg_vm_set_overhead(vm, vm->overhead_pages);
	return r;
}

const char *vmcg_vm_name(const VmcgVm *vm)
{
	return vm->name;
}

VmcgGroup *vmcg_vm_group(const VmcgVm *vm)
{
	return vm->group;
}

VmcgCounter *vmcg_vm_counter(VmcgVm *vm)
{
	return &vm->counter;
}

void vmcg_vm_set_userdata(VmcgVm *vm, void *userdata)
{
	vm->userdata = userdata;
}

void *vmcg_vm_get_userdata(const VmcgVm *vm)
{
	return vm->userdata;
}

bool vmcg_vm_try_charge_gated(VmcgVm *vm, _Atomic uint32_t *gate, uint64_t nr_pages,
			      VmcgCounter **ret_fail)
{
	bool ok;

	gate_enter(gate);
	ok = vmcg_counter_try_charge(&vm->counter, nr_pages, ret_fail);
	gate_leave(gate);
	return ok;
}

int vmcg_vm_uncharge_gated(VmcgVm *vm, _Atomic uint32_t *gate, uint64_t nr_pages)
{
	int r;

	if (!nr_pages)
		return 0;
	gate_enter(gate);
	r = vmcg_counter_uncharge(&vm->counter, nr_pages);
	gate_leave(gate);
	return r;
}

int vmcg_vm_try_charge(VmcgVm *vm, uint64_t nr_pages, VmcgGroup **ret_over)
{
	VmcgCounter *fail;

	if (!nr_pages || vmcg_vm_try_charge_gated(vm, &vm->gate, nr_pages, &fail))
		return 0;
	/*
	 * The VM's own counter has no limit, so the failing level is a
	 * group. The event is counted outside the gate: its callback may be
	 * slow and must not hold up a move.
	 */
	vmcg_group_event(group_of_counter(fail), VMCG_EVENT_MAX);
	if (ret_over)
		*ret_over = group_of_counter(fail);
	return -ENOMEM;
}

void vmcg_vm_charge(VmcgVm *vm, uint64_t nr_pages)
{
	if (!nr_pages)
		return;
	gate_enter(&vm->gate);
	vmcg_counter_charge(&vm->counter, nr_pages);
	gate_leave(&vm->gate);
}

int vmcg_vm_uncharge(VmcgVm *vm, uint64_t nr_pages)
{
	return vmcg_vm_uncharge_gated(vm, &vm->gate, nr_pages);
}

uint64_t vmcg_vm_current(const VmcgVm *vm)
{
	return vmcg_counter_read(&vm->counter);
}

uint64_t vmcg_vm_emin(const VmcgVm *vm)
{
	return atomic_load_explicit(&vm->counter.emin, memory_order_relaxed);
}

uint64_t vmcg_vm_elow(const VmcgVm *vm)
{
	return atomic_load_explicit(&vm->counter.elow, memory_order_relaxed);
}

VmcgGroup *vmcg_vm_over_high(const VmcgVm *vm)
{
	for (VmcgGroup *g = vm->group; g; g = g->parent)
		if (vmcg_group_over_high(g))
			return g;
	return NULL;
}

void vmcg_vm_set_floor(VmcgVm *vm, uint64_t nr_pages)
{
	vm->floor_pages = nr_pages;
}

uint64_t vmcg_vm_floor(const VmcgVm *vm)
{
	return vm->floor_pages;
}

int vmcg_vm_set_oom_priority(VmcgVm *vm, int32_t priority)
{
	if (priority < VMCG_OOM_PRIORITY_MIN || priority > VMCG_OOM_PRIORITY_MAX)
		return -EINVAL;
	vm->oom_priority = priority;
	return 0;
}

int32_t vmcg_vm_oom_priority(const VmcgVm *vm)
{
	return vm->oom_priority;
}

void vmcg_vm_set_oom_eligible(VmcgVm *vm, bool eligible)
{
	vm->oom_eligible = eligible;
}

bool vmcg_vm_oom_eligible(const VmcgVm *vm)
{
	return vm->oom_eligible;
}

void vmcg_vm_set_overhead(VmcgVm *vm, uint64_t nr_pages)
{
	bool count = vm->group->overhead_counted;
	uint64_t charged = vm->overhead_charged ? vm->overhead_pages : 0;
	uint64_t want = count ? nr_pages : 0;

	/*
	 * Overhead is the kmem analog: it is already allocated when we learn
	 * of it, so it is charged forcibly, as __memcg_kmem_charge() forces
	 * when the allocation cannot fail.
	 */
	if (want > charged)
		vmcg_vm_charge(vm, want - charged);
	else if (want < charged)
		(void)vmcg_vm_uncharge(vm, charged - want);
	vm->overhead_pages = nr_pages;
	vm->overhead_charged = count;
}

int vmcg_vm_set_stat(VmcgVm *vm, VmcgStat item, uint64_t nr_pages)
{
	if ((unsigned)item >= _VMCG_STAT_COUNT || item < VMCG_STAT_FIRST_SETTABLE)
		return -EINVAL;
	atomic_store_explicit(&vm->stats[item], nr_pages, memory_order_relaxed);
	return 0;
}

uint64_t vmcg_vm_stat(const VmcgVm *vm, VmcgStat item)
{
	uint64_t stock = 0, usage, other;

	switch (item) {
	case VMCG_STAT_GUEST:
		usage = vmcg_vm_current(vm);
		other = vmcg_vm_stat(vm, VMCG_STAT_STOCK) +
			(vm->overhead_charged ? vm->overhead_pages : 0);
		return usage > other ? usage - other : 0;
	case VMCG_STAT_OVERHEAD:
		return vm->overhead_pages;
	case VMCG_STAT_STOCK:
		stock = atomic_load_explicit(&vm->external_stock, memory_order_relaxed);
		for (VmcgStock *s = vm->stocks; s; s = s->next)
			stock += vmcg_stock_cached(s);
		return stock;
	default:
		if ((unsigned)item >= _VMCG_STAT_COUNT)
			return 0;
		return atomic_load_explicit(&vm->stats[item], memory_order_relaxed);
	}
}

void vmcg_vm_set_external_stock(VmcgVm *vm, uint64_t nr_pages)
{
	atomic_store_explicit(&vm->external_stock, nr_pages, memory_order_relaxed);
}

void vmcg_vm_drain_stocks(VmcgVm *vm)
{
	atomic_fetch_add_explicit(&vm->drain_gen, 1, memory_order_release);
}
