/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The group tree: groups addressed by path ("/", "/tenants/acme/web"), VMs
 * attached to exactly one group, cgroup-v2 memory knobs and read-outs.
 *
 * Every group and every VM owns a VmcgCounter; a VM's counter is a leaf below
 * its group's, so a group's usage is everything charged to the VMs in its
 * subtree (and overhead, where counted). The VM counter is what makes moves
 * and group removal cheap: the VM's whole charge, stocks included, moves with
 * it by re-pointing one parent pointer and fixing the levels between the old
 * and the new group.
 *
 * Concurrency:
 * - Charging (vmcg_vm_*charge, stocks) and reading counters and events are
 *   lock-free and may run on any thread at any time.
 * - Everything that changes the shape of the tree or the knobs (create,
 *   remove, move, attach, detach, set_*) and walks over it (lookups,
 *   iteration, protection, planning, stats) is serialized by the caller:
 *   one thread, or the caller's lock. Such calls are safe against concurrent
 *   charging: a move or reparent waits until no charge is walking through
 *   the VMs it re-points (a per-VM gate), then re-points them.
 * - Readers that sum several counters and must not see a VM's charge in
 *   both or neither of two subtrees during a move use
 *   vmcg_tree_read_begin()/vmcg_tree_read_retry() (a seqcount).
 *
 * Errors are negative errno; each function lists its own.
 */
#ifndef VMCG_GROUP_H
#define VMCG_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmcg/counter.h"
#include "vmcg/psi.h"
#include "vmcg/reclaim.h"
#include "vmcg/vmpressure.h"

typedef struct VmcgTree VmcgTree;
typedef struct VmcgGroup VmcgGroup;
typedef struct VmcgVm VmcgVm;

/* Limits on names and paths: generous, but bounded because they come from
 * API requests, config files and XML. */
#define VMCG_NAME_MAX 64     /* one component, bytes, [A-Za-z0-9_.-], not "." or ".." */
#define VMCG_DEPTH_MAX 16    /* components below "/" */
#define VMCG_VM_NAME_MAX 128 /* libvirt domain names can be long */

/* memory.events keys, in the kernel's order. */
typedef enum VmcgEvent {
	VMCG_EVENT_LOW = 0,  /* reclaimed while under memory.low (low reclaim pass) */
	VMCG_EVENT_HIGH,     /* throttled/reclaimed for being over memory.high */
	VMCG_EVENT_MAX,	     /* a charge was about to exceed memory.max */
	VMCG_EVENT_OOM,	     /* at max and reclaim could not make room */
	VMCG_EVENT_OOM_KILL, /* a VM of this group was acted on by the OOM path */
	_VMCG_EVENT_COUNT,
} VmcgEvent;

/* What the OOM path does to its victims. The engine only records it. */
typedef enum VmcgOomAction {
	VMCG_OOM_NOTIFY = 0, /* count and tell; touch nothing */
	VMCG_OOM_PAUSE,	     /* stop the VM's vCPUs */
	VMCG_OOM_DESTROY,    /* kill the VM */
	_VMCG_OOM_ACTION_COUNT,
} VmcgOomAction;

/* memory.stat items, in pages. */
typedef enum VmcgStat {
	VMCG_STAT_GUEST = 0,	 /* guest RAM charged (excl. overhead and stock credit) */
	VMCG_STAT_OVERHEAD,	 /* VMM overhead (the kmem analog), counted or not */
	VMCG_STAT_STOCK,	 /* pre-charged credit held in per-vCPU stocks */
	VMCG_STAT_BALLOONED,	 /* set by the caller: balloon size */
	VMCG_STAT_REPORTED_FREE, /* set by the caller: freed via free-page reporting */
	VMCG_STAT_GUEST_FREE,	 /* set by the caller: guest's own free memory */
	VMCG_STAT_GUEST_CACHE,	 /* set by the caller: guest page cache */
	_VMCG_STAT_COUNT,
} VmcgStat;

/* The first item that the caller sets; those before it are derived. */
#define VMCG_STAT_FIRST_SETTABLE VMCG_STAT_BALLOONED

typedef struct VmcgTreeOptions {
	bool recursive_protection; /* memory_recursiveprot */
	uint32_t stock_batch;	   /* 0: VMCG_STOCK_BATCH_DEFAULT */
} VmcgTreeOptions;

/*
 * Called for every memory event, on the thread that caused it, after the
 * counters were updated. @group is where it happened (memory.events.local);
 * the hierarchical counts of its ancestors were bumped too.
 */
typedef void (*VmcgEventFn)(VmcgGroup *group, VmcgEvent event, void *userdata);

/* ---- tree ---- */

/**
 * vmcg_tree_new() - a tree with only the root group "/"
 * @opts: NULL for defaults
 * Returns 0, -EINVAL (bad stock_batch), -ENOMEM.
 */
int vmcg_tree_new(const VmcgTreeOptions *opts, VmcgTree **ret);

/** vmcg_tree_free() - free every group, VM and stock. No charging may run. NULL ok. */
void vmcg_tree_free(VmcgTree *tree);

VmcgGroup *vmcg_tree_root(VmcgTree *tree);
bool vmcg_tree_recursive_protection(const VmcgTree *tree);
void vmcg_tree_set_recursive_protection(VmcgTree *tree, bool on);
uint32_t vmcg_tree_stock_batch(const VmcgTree *tree);
/** Applies to stocks created afterwards. -EINVAL outside 1..VMCG_STOCK_BATCH_MAX. */
int vmcg_tree_set_stock_batch(VmcgTree *tree, uint32_t batch);
void vmcg_tree_set_event_fn(VmcgTree *tree, VmcgEventFn fn, void *userdata);
size_t vmcg_tree_nr_groups(const VmcgTree *tree);
size_t vmcg_tree_nr_vms(const VmcgTree *tree);

/** Seqcount read side: retry a multi-counter read if a move or reparent ran. */
unsigned vmcg_tree_read_begin(const VmcgTree *tree);
bool vmcg_tree_read_retry(const VmcgTree *tree, unsigned seq);

/**
 * vmcg_tree_calculate_protection() - recompute emin/elow of every group and
 * VM below @root, top-down, as reclaim rooted at @root sees them. The VMs
 * of a group are the memory of that group: they share its protection in
 * proportion to their usage (the recursive formula, always: within one
 * cgroup the kernel protects every page alike).
 */
void vmcg_tree_calculate_protection(VmcgGroup *root);

/* ---- paths ---- */

/** vmcg_path_validate() - 0, -EINVAL (syntax), -ENAMETOOLONG (name or depth). */
int vmcg_path_validate(const char *path);

/* ---- groups ---- */

/** vmcg_group_lookup() - 0, -EINVAL, -ENAMETOOLONG, -ENOENT. */
int vmcg_group_lookup(VmcgTree *tree, const char *path, VmcgGroup **ret);

/**
 * vmcg_group_create() - mkdir: the parent must exist.
 * Returns 0, -EINVAL, -ENAMETOOLONG, -EEXIST, -ENOENT (no parent), -ENOMEM.
 */
int vmcg_group_create(VmcgTree *tree, const char *path, VmcgGroup **ret);

/* vmcg_group_remove() flags */
#define VMCG_REMOVE_REPARENT_VMS (1u << 0)

/**
 * vmcg_group_remove() - rmdir. @group is freed on success.
 *
 * A group with child groups is refused (-ENOTEMPTY), as rmdir is. A group
 * with VMs is refused (-EBUSY) unless VMCG_REMOVE_REPARENT_VMS: then its
 * VMs move to the parent with their charge, as memcg_reparent_objcgs()
 * hands a dying cgroup's charges to its parent: the parent's usage already
 * includes them, so nothing is charged or uncharged, nothing leaks and
 * nothing is counted twice. Its event counts are not carried over (the
 * parent's hierarchical counts already include them).
 * Returns 0, -EBUSY (root, or VMs without the flag), -ENOTEMPTY.
 */
int vmcg_group_remove(VmcgGroup *group, unsigned flags);

/* vmcg_group_move() and vmcg_vm_move() flags */
#define VMCG_MOVE_FORCE (1u << 0) /* charge the destination beyond its max */

/**
 * vmcg_group_move() - re-parent @group (and its subtree) under @new_parent,
 * keeping its name. Its charge leaves the old ancestors and enters the new
 * ones up to their common ancestor, atomically for seqcount readers.
 * Returns 0, -EBUSY (root), -ELOOP (@new_parent is in @group's subtree),
 * -EEXIST (name taken there), -ENAMETOOLONG (too deep), -EINVAL (other
 * tree), -ENOMEM (a new ancestor would exceed its max: *@ret_over is it,
 * nothing changed; VMCG_MOVE_FORCE charges anyway).
 */
int vmcg_group_move(VmcgGroup *group, VmcgGroup *new_parent, unsigned flags, VmcgGroup **ret_over);

const char *vmcg_group_path(const VmcgGroup *group);
const char *vmcg_group_name(const VmcgGroup *group);
VmcgTree *vmcg_group_tree(const VmcgGroup *group);
VmcgGroup *vmcg_group_parent(const VmcgGroup *group);
VmcgGroup *vmcg_group_first_child(const VmcgGroup *group);
VmcgGroup *vmcg_group_next_sibling(const VmcgGroup *group);
/** Pre-order successor of @pos within @root's subtree; NULL at the end. */
VmcgGroup *vmcg_group_next_descendant(const VmcgGroup *pos, const VmcgGroup *root);
VmcgVm *vmcg_group_first_vm(const VmcgGroup *group);
size_t vmcg_group_nr_vms(const VmcgGroup *group);
size_t vmcg_group_nr_children(const VmcgGroup *group);
void vmcg_group_set_userdata(VmcgGroup *group, void *userdata);
void *vmcg_group_get_userdata(const VmcgGroup *group);

VmcgCounter *vmcg_group_counter(VmcgGroup *group);
uint64_t vmcg_group_current(const VmcgGroup *group);
uint64_t vmcg_group_peak(const VmcgGroup *group);
void vmcg_group_reset_peak(VmcgGroup *group);
uint64_t vmcg_group_min(const VmcgGroup *group);
uint64_t vmcg_group_low(const VmcgGroup *group);
uint64_t vmcg_group_high(const VmcgGroup *group);
/* memory.max as set (what the API and the state show). */
uint64_t vmcg_group_max(const VmcgGroup *group);
/* The cap on it (vmcg_group_set_max_cap()); VMCG_PAGES_MAX when none. */
uint64_t vmcg_group_max_cap(const VmcgGroup *group);
/* What is enforced: the lower of the two. Charges, reclaim and OOM use this. */
uint64_t vmcg_group_max_effective(const VmcgGroup *group);
uint64_t vmcg_group_emin(const VmcgGroup *group);
uint64_t vmcg_group_elow(const VmcgGroup *group);

/*
 * Knob writers, in pages; VMCG_PAGES_MAX or more is "max". The root takes
 * no limits (-EPERM), as the root cgroup has no memory.max. Lowering max
 * or high below usage is accepted; the caller reclaims. Lowering max also
 * asks the subtree's stocks to drain (vmcg_group_drain_stocks()).
 */
int vmcg_group_set_min(VmcgGroup *group, uint64_t nr_pages);
int vmcg_group_set_low(VmcgGroup *group, uint64_t nr_pages);
int vmcg_group_set_high(VmcgGroup *group, uint64_t nr_pages);
int vmcg_group_set_max(VmcgGroup *group, uint64_t nr_pages);
/*
 * A cap on memory.max that the group's owner did not set: a cluster-wide
 * quota's grant for this host (docs/cluster.md). The group enforces the
 * lower of memory.max and the cap; memory.max as set is kept (and shown)
 * apart. VMCG_PAGES_MAX or more: no cap. -EPERM for the root.
 */
int vmcg_group_set_max_cap(VmcgGroup *group, uint64_t nr_pages);

bool vmcg_group_over_high(const VmcgGroup *group);
bool vmcg_group_over_max(const VmcgGroup *group);

void vmcg_group_set_oom_group(VmcgGroup *group, bool on);
bool vmcg_group_oom_group(const VmcgGroup *group);
/** -EINVAL for an unknown action. */
int vmcg_group_set_oom_action(VmcgGroup *group, VmcgOomAction action);
VmcgOomAction vmcg_group_oom_action(const VmcgGroup *group);

/**
 * vmcg_group_set_overhead_counted() - whether the VMM overhead of this
 * group's own VMs is charged to the counters (and so counts against max),
 * or only reported in memory.stat. Switching charges or uncharges the
 * current overhead of those VMs, forcibly.
 */
void vmcg_group_set_overhead_counted(VmcgGroup *group, bool on);
bool vmcg_group_overhead_counted(const VmcgGroup *group);

/**
 * vmcg_group_event() - count @event as memcg_memory_event() does: in
 * @group's .local counts, and in the hierarchical counts of @group and
 * every ancestor. Then the tree's event callback runs.
 */
void vmcg_group_event(VmcgGroup *group, VmcgEvent event);
/** memory.events (@local false) or memory.events.local (@local true). */
uint64_t vmcg_group_events(const VmcgGroup *group, VmcgEvent event, bool local);

VmcgVmpressure *vmcg_group_vmpressure(VmcgGroup *group);
VmcgGroup *vmcg_group_from_vmpressure(VmcgVmpressure *vmpr);
VmcgPsi *vmcg_group_psi(VmcgGroup *group);

/**
 * vmcg_group_psi_change() - vCPUs of a VM in @group became (in)active or
 * (un)stalled: vmcg_psi_change() on @group and every ancestor, as
 * psi_group_change() walks a task's cgroups, so a parent's "full" means all
 * vCPUs of its whole subtree are stalled. All levels or none: returns
 * -EINVAL, with nothing changed, if any level refuses the change.
 * The engine does not know which vCPUs belong to which VM: when a VM (or a
 * group) moves, the caller takes its vCPUs out at the old place (negative
 * deltas) and adds them at the new one, at the same instant.
 */
int vmcg_group_psi_change(VmcgGroup *group, uint64_t now_usec, int delta_active, int delta_stalled);

/** vmcg_group_psi_update() - vmcg_psi_update() on every group of the subtree. */
void vmcg_group_psi_update(VmcgGroup *group, uint64_t now_usec);

/** vmcg_group_stat() - @item summed over the VMs of @group's subtree. */
uint64_t vmcg_group_stat(const VmcgGroup *group, VmcgStat item);

/**
 * vmcg_group_drain_stocks() - ask every stock of every VM in the subtree to
 * give its credit back. Asynchronous, like the kernel's drain_all_stock():
 * each stock drains at its owner's next charge or uncharge; a stock whose
 * owner stays idle keeps at most its batch (see stock.h for the bound).
 */
void vmcg_group_drain_stocks(VmcgGroup *group);

typedef struct VmcgReclaimItem {
	VmcgVm *vm;
	uint64_t take_pages;
	bool low_breached;
} VmcgReclaimItem;

/**
 * vmcg_group_plan_reclaim() - how many pages to take from each VM in
 * @group's subtree to shed @nr_pages (vmcg_reclaim_plan() over the
 * subtree, with protection computed as reclaim rooted at @group sees it,
 * and each VM's floor). Counts a "low" event on every group one of whose
 * VMs is planned below its low protection, once per group per plan, as
 * shrink_node_memcgs() does when it reclaims.
 *
 * *@ret_items is an array of *@ret_n items (VMs with take_pages > 0 only),
 * to be released with free(); NULL when empty.
 * Returns 0 or -ENOMEM.
 */
int vmcg_group_plan_reclaim(VmcgGroup *group, uint64_t nr_pages, VmcgReclaimItem **ret_items,
			    size_t *ret_n, VmcgReclaimSummary *ret_summary);

/**
 * vmcg_group_oom_select() - victims of an OOM in the domain @group:
 * vmcg_oom_select() over the eligible VMs of the subtree; then, as
 * mem_cgroup_get_oom_group() does, if the victim's group or an ancestor up
 * to @group has memory.oom.group set, the highest such group is the victim
 * and all its eligible VMs are returned.
 * *@ret_vms: array of *@ret_n VMs to release with free().
 * Returns 0, -ESRCH (no killable VM), -ENOMEM. Counts no event: the caller
 * counts VMCG_EVENT_OOM on @group and VMCG_EVENT_OOM_KILL on each victim's
 * group as it acts.
 */
int vmcg_group_oom_select(VmcgGroup *group, VmcgVm ***ret_vms, size_t *ret_n);

/* ---- VMs ---- */

/** vmcg_vm_name_validate() - 0, -EINVAL (empty, control or '/' chars), -ENAMETOOLONG. */
int vmcg_vm_name_validate(const char *name);

/**
 * vmcg_vm_new() - attach a new, uncharged VM named @name to @group.
 * Names are unique in the tree. Returns 0, -EINVAL, -ENAMETOOLONG,
 * -EEXIST, -ENOMEM.
 */
int vmcg_vm_new(VmcgGroup *group, const char *name, VmcgVm **ret);

/**
 * vmcg_vm_free() - detach @vm: its whole charge (guest, overhead, stocks)
 * leaves the tree and its stocks are freed. No thread may be using its
 * stocks or charging it. NULL ok.
 */
void vmcg_vm_free(VmcgVm *vm);

/** vmcg_vm_lookup() - 0, -ENOENT. */
int vmcg_vm_lookup(VmcgTree *tree, const char *name, VmcgVm **ret);
VmcgVm *vmcg_tree_first_vm(VmcgTree *tree);
VmcgVm *vmcg_vm_next(const VmcgVm *vm);		 /* in the tree */
VmcgVm *vmcg_vm_next_in_group(const VmcgVm *vm); /* in its group */

/**
 * vmcg_vm_move() - move @vm and its whole charge to @to.
 * Returns 0, -EINVAL (other tree), -ENOMEM (a new ancestor would exceed
 * max; *@ret_over is it; nothing changed; VMCG_MOVE_FORCE overrides).
 */
int vmcg_vm_move(VmcgVm *vm, VmcgGroup *to, unsigned flags, VmcgGroup **ret_over);

const char *vmcg_vm_name(const VmcgVm *vm);
VmcgGroup *vmcg_vm_group(const VmcgVm *vm);
VmcgCounter *vmcg_vm_counter(VmcgVm *vm);
void vmcg_vm_set_userdata(VmcgVm *vm, void *userdata);
void *vmcg_vm_get_userdata(const VmcgVm *vm);

/**
 * vmcg_vm_try_charge() - charge guest pages, respecting every max on the
 * way up (all levels or none).
 * Returns 0, or -ENOMEM with *@ret_over the group at its max, whose "max"
 * event has been counted (try_charge()'s memcg_memory_event(MEMCG_MAX)).
 */
int vmcg_vm_try_charge(VmcgVm *vm, uint64_t nr_pages, VmcgGroup **ret_over);

/**
 * vmcg_vm_charge() - charge guest pages whatever the limits. For pages
 * that are already resident (sampling mode): the charge cannot be refused;
 * the caller sees the group over max and reclaims.
 */
void vmcg_vm_charge(VmcgVm *vm, uint64_t nr_pages);

/**
 * vmcg_vm_uncharge() - 0, -ERANGE (more than charged: nothing done, counted),
 * or -EUCLEAN (done, but an ancestor was short: the tree is inconsistent).
 */
int vmcg_vm_uncharge(VmcgVm *vm, uint64_t nr_pages);

/** Current charge: guest pages, stock credit and counted overhead. */
uint64_t vmcg_vm_current(const VmcgVm *vm);
uint64_t vmcg_vm_emin(const VmcgVm *vm);
uint64_t vmcg_vm_elow(const VmcgVm *vm);

/** The lowest group from @vm's up that is over its high, or NULL. */
VmcgGroup *vmcg_vm_over_high(const VmcgVm *vm);

/** Never balloon below this many pages (the combined safety floor). */
void vmcg_vm_set_floor(VmcgVm *vm, uint64_t nr_pages);
uint64_t vmcg_vm_floor(const VmcgVm *vm);

/** oom_score_adj analog: -EINVAL outside [VMCG_OOM_PRIORITY_MIN, MAX]. */
int vmcg_vm_set_oom_priority(VmcgVm *vm, int32_t priority);
int32_t vmcg_vm_oom_priority(const VmcgVm *vm);
/** Paused or dying VMs are not OOM candidates. */
void vmcg_vm_set_oom_eligible(VmcgVm *vm, bool eligible);
bool vmcg_vm_oom_eligible(const VmcgVm *vm);

/**
 * vmcg_vm_set_overhead() - the VM's VMM overhead in pages; charged (forcibly)
 * or uncharged by the difference if its group counts overhead.
 */
void vmcg_vm_set_overhead(VmcgVm *vm, uint64_t nr_pages);

/** vmcg_vm_set_stat() - set a caller-owned item; -EINVAL for derived ones. */
int vmcg_vm_set_stat(VmcgVm *vm, VmcgStat item, uint64_t nr_pages);
uint64_t vmcg_vm_stat(const VmcgVm *vm, VmcgStat item);

/**
 * vmcg_vm_set_external_stock() - @nr_pages of @vm's charge are credit
 * cached outside the engine's stocks (hook mode's shared per-vCPU slots,
 * which QEMU consumes): shown as VMCG_STAT_STOCK, not VMCG_STAT_GUEST.
 * The caller charged them; this only says how they are split.
 */
void vmcg_vm_set_external_stock(VmcgVm *vm, uint64_t nr_pages);

/** vmcg_vm_drain_stocks() - asynchronous drain request, as for a group. */
void vmcg_vm_drain_stocks(VmcgVm *vm);

/* ---- names ---- */

const char *vmcg_event_to_string(VmcgEvent event); /* "low" ... "oom_kill" */
int vmcg_event_from_string(const char *s, VmcgEvent *ret);
const char *vmcg_oom_action_to_string(VmcgOomAction action); /* "notify" "pause" "destroy" */
int vmcg_oom_action_from_string(const char *s, VmcgOomAction *ret);
const char *vmcg_stat_to_string(VmcgStat item); /* memory.stat keys */

#endif
