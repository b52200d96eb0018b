// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The control loop: every interval, sample each VM's resident guest RAM
 * and charge the difference, then keep every group inside its limits by
 * moving balloons (DESIGN.md section 3).
 *
 * Per tick:
 * 1. Sample: charge (forcibly: the pages are already resident) or uncharge
 *    the difference between what is resident and what was charged; VMM
 *    overhead is the rest of the process's RSS.
 * 2. Plan: every group over memory.high or memory.max asks the engine's
 *    planner for its excess; a VM under several such groups gives the
 *    largest of its shares (the plans overlap, they do not add up).
 * 3. Act: each VM's balloon target moves down by its share, at most
 *    reclaim_step a tick, never below its floor, below what fresh guest
 *    stats say it uses (plus a margin), or below min_guest. Without fresh
 *    stats a VM is not inflated further at all: stale or missing stats
 *    mean "be conservative", never "the guest uses nothing".
 * 4. Deflate: a VM that no group asks anything of gets memory back in
 *    steps, while every group above it stays hysteresis below high and max.
 * 5. Escalate: a group over max that does not come down for
 *    oom_deadline_usec runs its OOM action on the engine's victims.
 *
 * Events are counted per tick in which the condition holds: "high" for a
 * group over high that is being reclaimed, "max" for a group over max
 * (sampling mode has no charge attempt to refuse; the kernel counts each
 * refused charge).
 */
#include <gio/gio.h>

#include "daemon-private.h"

#define PAGE VMCG_PAGE_SIZE

static uint64_t pages_of(uint64_t bytes)
{
	return bytes / PAGE;
}

static VmcgGroupState *gstate(VmcgGroup *g)
{
	VmcgGroupState *gs = vmcg_group_get_userdata(g);

	if (!gs) {
		gs = g_new0(VmcgGroupState, 1);
		vmcg_group_set_userdata(g, gs);
	}
	return gs;
}

/* Fresh guest stats: the lowest guest size we may balloon to. */
static uint64_t guest_floor(VmcgDvm *vm, uint64_t now)
{
	const VmcgPolicy *p = &vm->d->policy;
	uint64_t floor = MAX(vm->floor, p->min_guest);
	uint64_t cur = vm->target ? vm->target : vm->actual;
	uint64_t used, grown;

	if (!vm->has_stats || now - (uint64_t)vm->stats_usec > p->stats_max_age_usec) {
		/*
		 * Stale or missing: no further inflation, and room for what
		 * is resident now, which is the least the guest is using.
		 */
		floor = MAX(floor, MAX(cur, vmcg_dvm_resident(vm) + p->guest_margin));
	} else {
		/*
		 * In balloon-target units (the guest's size), what the guest
		 * cannot give back is its size minus MemAvailable: MemTotal is
		 * smaller than the size by the kernel's own reserved memory,
		 * which the guest cannot give back either, so total - available
		 * would balloon a full guest into its OOM killer.
		 * The stats are a second or more old: whatever became resident
		 * since may be as unreclaimable, so it counts as used too
		 * (a guest filling tmpfs faster than its stats update must
		 * not be ballooned into its OOM killer).
		 */
		used = vm->stats_actual > vm->st_available ? vm->stats_actual - vm->st_available
							   : vm->st_total - vm->st_available;
		grown = vmcg_dvm_resident(vm) > vm->stats_resident
				? vmcg_dvm_resident(vm) - vm->stats_resident
				: 0;
		floor = MAX(floor, used + grown + p->guest_margin);
	}
	return vm->ram_size ? MIN(floor, vm->ram_size) : floor;
}

/* The planner's take for @vm, applied: the new target, clamped. */
static void act(VmcgDvm *vm, uint64_t now)
{
	const VmcgPolicy *p = &vm->d->policy;
	uint64_t cur, want, floor;

	if (vm->state != VMCG_DVM_READY || !vm->actual || !vm->ram_size)
		return;
	/*
	 * Just adopted (a new VM, or all of them after a restart): hold the
	 * balloon where it is until the guest's stats arrive, so that a
	 * restart moves nothing, rather than acting on the stale-stats rule.
	 */
	if (!vm->has_stats && now - (uint64_t)vm->adopted_usec < p->stats_max_age_usec)
		return;
	cur = vm->target ? vm->target : vm->actual;
	floor = guest_floor(vm, now);
	if (cur < floor) {
		/*
		 * The guest grew into its balloon: give it room at once,
		 * whatever the group's limits say. The group then stays over
		 * high and counts "high" events (and over max, goes the OOM
		 * path, which is vmcgd's decision, not the guest kernel's).
		 */
		vmcg_dvm_set_target(vm, floor);
		return;
	}
	if (vm->want_take) {
		uint64_t take = MIN(vm->want_take * PAGE, p->reclaim_step);

		/*
		 * From where the balloon is, not where it is going: the
		 * part of an earlier target not reached yet (actual - target)
		 * is reclaim in flight, which the usage that produced this
		 * take does not show yet. Lowering the target by the take on
		 * top of it would ask for the same pages twice, every tick,
		 * until the guest catches up: a balloon that overshoots.
		 */
		/*
		 * And from what is resident, not from the guest's size: the
		 * guest's free pages that it never touched (or that free page
		 * reporting gave back) are not resident, so inflating the
		 * balloon over them reclaims nothing. Below min(actual,
		 * resident) every page the balloon takes is a resident one.
		 */
		uint64_t base =
			vmcg_dvm_resident(vm) ? MIN(vm->actual, vmcg_dvm_resident(vm)) : vm->actual;

		want = base > take ? base - take : 0;
		want = MAX(want, floor);
		if (want < cur)
			vmcg_dvm_set_target(vm, want);
		return;
	}
	/* Deflate: give back a step while every ancestor stays clear of its limits. */
	if (cur >= vm->ram_size)
		return;
	uint64_t room = vm->ram_size - cur;

	for (VmcgGroup *g = vmcg_vm_group(vm->vm); g; g = vmcg_group_parent(g)) {
		uint64_t usage = vmcg_group_current(g) * PAGE, lim;

		lim = MIN(vmcg_group_high(g), vmcg_group_max(g));
		if (lim >= VMCG_PAGES_MAX)
			continue;
		lim *= PAGE;
		if (usage + p->hysteresis >= lim)
			return;
		room = MIN(room, lim - p->hysteresis - usage);
	}
	room = MIN(room, p->reclaim_step);
	if (room >= PAGE)
		vmcg_dvm_set_target(vm, MIN(vm->ram_size, cur + room));
}

static void plan_group(VmcgDaemon *d, VmcgGroup *g, uint64_t excess)
{
	g_autofree VmcgReclaimItem *items = NULL;
	VmcgReclaimSummary sum;
	size_t n;

	(void)d;
	if (vmcg_group_plan_reclaim(g, excess, &items, &n, &sum) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		VmcgDvm *vm = vmcg_vm_get_userdata(items[i].vm);

		if (vm)
			vm->want_take = MAX(vm->want_take, items[i].take_pages);
	}
	gstate(g)->asked_pages = sum.planned_pages;
	gstate(g)->asked_at_usage = vmcg_group_current(g);
}

/* vmpressure: pages asked last tick against pages that came back since. */
static void account_vmpressure(VmcgDaemon *d, VmcgGroup *g, uint64_t now)
{
	VmcgGroupState *gs = gstate(g);
	uint64_t usage = vmcg_group_current(g), reclaimed;
	VmcgVmpressureLevel level;

	if (!gs->asked_pages)
		return;
	reclaimed = gs->asked_at_usage > usage ? gs->asked_at_usage - usage : 0;
	reclaimed = MIN(reclaimed, gs->asked_pages);
	level = vmcg_vmpressure_account(vmcg_group_vmpressure(g), now, gs->asked_pages, reclaimed);
	gs->asked_pages = 0;
	if (level != VMCG_VMPRESSURE_NONE) {
		g_autoptr(json_object) data = json_object_new_object();

		json_object_object_add(data, "group", json_object_new_string(vmcg_group_path(g)));
		json_object_object_add(
			data, "level",
			json_object_new_string(vmcg_vmpressure_level_to_string(level)));
		vmcg_daemon_emit(d, VMCG_EV_VMPRESSURE, data);
	}
}

/*
 * PSI in sampling mode: no vCPU waits for a charge, so "stall" is the time
 * a group spends over a limit while reclaim works on it: some while over
 * high, full while over max (everything in it is being throttled by its
 * cap). Hook mode will feed real vCPU stalls.
 */
static void account_psi(VmcgGroup *g, uint64_t now, uint64_t dt)
{
	VmcgGroupState *gs = gstate(g);
	bool high = vmcg_group_over_high(g), max = vmcg_group_over_max(g);
	uint64_t some = high || max ? dt : 0, full = max ? dt : 0;

	/*
	 * Hook mode has the real thing: vCPUs that waited for a refill.
	 * Some: one of them waited; full: every VM under the group had one
	 * waiting (for the shortest of their waits).
	 */
	some = MIN(dt, MAX(some, gs->stall_some));
	full = MIN(some,
		   MAX(full, gs->nr_stalled && gs->nr_stalled == gs->nr_vms ? gs->stall_full : 0));
	if (some)
		(void)vmcg_psi_add_stall(vmcg_group_psi(g), some, full);
	vmcg_psi_update(vmcg_group_psi(g), now);
}

/* Hook mode: held refills and vCPU waits, summed up the tree. */
static void gather_hooks(VmcgDaemon *d)
{
	VmcgGroup *root = vmcg_tree_root(d->tree);
	gboolean stalled = FALSE;

	for (VmcgGroup *g = root; g; g = vmcg_group_next_descendant(g, root)) {
		VmcgGroupState *gs = gstate(g);

		gs->held_pages = 0;
		gs->held_since = 0;
		gs->stall_some = gs->stall_full = 0;
		gs->nr_vms = gs->nr_stalled = 0;
	}
	for (GList *l = d->vms.head; l; l = l->next) {
		VmcgDvm *vm = l->data;
		uint64_t held, stall;
		int64_t since = 0;

		if (!vm->hooks)
			continue;
		held = vmcg_hooks_conn_held(vm->hooks, &since);
		stall = vm->tick_stall_usec;
		stalled |= stall > 0;
		for (VmcgGroup *g = vmcg_vm_group(vm->vm); g && (held || stall);
		     g = vmcg_group_parent(g)) {
			VmcgGroupState *gs = gstate(g);

			if (held) {
				gs->held_pages += held;
				if (!gs->held_since || since < gs->held_since)
					gs->held_since = since;
			}
			if (stall) {
				gs->stall_full =
					gs->nr_stalled ? MIN(gs->stall_full, stall) : stall;
				gs->stall_some = MAX(gs->stall_some, stall);
				gs->nr_stalled++;
			}
		}
	}
	/* "full" needs every VM under a group: counted only when a vCPU waited. */
	for (GList *l = stalled ? d->vms.head : NULL; l; l = l->next) {
		VmcgDvm *vm = l->data;

		for (VmcgGroup *g = vmcg_vm_group(vm->vm); g; g = vmcg_group_parent(g))
			gstate(g)->nr_vms++;
	}
}

static void oom(VmcgGroup *g)
{
	g_autofree VmcgVm **victims = NULL;
	VmcgOomAction action = vmcg_group_oom_action(g);
	size_t n = 0;

	vmcg_group_event(g, VMCG_EVENT_OOM);
	if (vmcg_group_oom_select(g, &victims, &n) < 0) {
		g_warning("group %s: over memory.max and no VM can be acted on",
			  vmcg_group_path(g));
		return;
	}
	for (size_t i = 0; i < n; i++) {
		VmcgDvm *vm = vmcg_vm_get_userdata(victims[i]);

		g_warning("group %s: over memory.max for too long: %s VM %s", vmcg_group_path(g),
			  vmcg_oom_action_to_string(action), vmcg_vm_name(victims[i]));
		vmcg_group_event(vmcg_vm_group(victims[i]), VMCG_EVENT_OOM_KILL);
		if (vm)
			vmcg_dvm_oom_act(vm, action);
	}
}

static void check_oom(VmcgDaemon *d, VmcgGroup *g, uint64_t now)
{
	VmcgGroupState *gs = gstate(g);
	uint64_t usage = vmcg_group_current(g);

	/*
	 * Hook mode never goes over max: the charge that would is held, and
	 * its vCPU waits (try_charge() already counted the max event). The
	 * deadline runs from the oldest held refill under the group.
	 */
	if (!vmcg_group_over_max(g) && gs->held_pages) {
		if (now - (uint64_t)gs->held_since >= d->policy.oom_deadline_usec &&
		    (!gs->over_max_since ||
		     now - (uint64_t)gs->over_max_since >= d->policy.oom_deadline_usec)) {
			oom(g);
			gs->over_max_since = (int64_t)now;
		}
		return;
	}
	if (!vmcg_group_over_max(g)) {
		gs->over_max_since = 0;
		return;
	}
	vmcg_group_event(g, VMCG_EVENT_MAX);
	/* A lowered max: credit cached in hooked VMs' slots goes first. */
	if (vmcg_hooks_drain_group(d->hooks, g))
		usage = vmcg_group_current(g);
	/* Progress (a new low) restarts the deadline: reclaim is working. */
	if (!gs->over_max_since || usage < gs->over_max_best) {
		gs->over_max_since = (int64_t)now;
		gs->over_max_best = usage;
		return;
	}
	if (now - (uint64_t)gs->over_max_since >= d->policy.oom_deadline_usec) {
		oom(g);
		gs->over_max_since = (int64_t)now;
	}
}

void vmcg_control_tick(VmcgDaemon *d)
{
	uint64_t now = vmcg_daemon_now_usec(d);
	uint64_t dt = d->last_tick_usec ? now - d->last_tick_usec : 0;
	VmcgGroup *root = vmcg_tree_root(d->tree), *g;

	d->last_tick_usec = now;
	for (GList *l = d->vms.head; l; l = l->next) {
		VmcgDvm *vm = l->data;

		vmcg_dvm_sample(vm, now);
		vmcg_dvm_backstop_sync(vm);
		vmcg_dvm_poll(vm, now);
		vm->want_take = 0;
	}
	vmcg_hooks_tick(d->hooks, now - dt, now);
	gather_hooks(d);

	for (g = root; g; g = vmcg_group_next_descendant(g, root)) {
		uint64_t usage = vmcg_group_current(g), excess = 0;
		/* Held refills are demand the group has no room for yet. */
		uint64_t demand = usage + gstate(g)->held_pages;

		account_vmpressure(d, g, now);
		account_psi(g, now, dt);
		if (usage > vmcg_group_high(g))
			excess = usage - vmcg_group_high(g);
		if (demand > vmcg_group_max(g))
			excess = MAX(excess, demand - vmcg_group_max(g));
		if (!excess)
			continue;
		if (vmcg_group_over_high(g))
			vmcg_group_event(g, VMCG_EVENT_HIGH);
		plan_group(d, g, excess);
	}
	for (g = root; g; g = vmcg_group_next_descendant(g, root))
		check_oom(d, g, now);

	for (GList *l = d->vms.head; l; l = l->next)
		act(l->data, now);
}

uint64_t vmcg_control_reclaim(VmcgDaemon *d, VmcgGroup *g, uint64_t nr_pages)
{
	g_autofree VmcgReclaimItem *items = NULL;
	uint64_t now = vmcg_daemon_now_usec(d), planned = 0;
	size_t n;

	if (vmcg_group_plan_reclaim(g, nr_pages, &items, &n, NULL) < 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		VmcgDvm *vm = vmcg_vm_get_userdata(items[i].vm);
		uint64_t cur, want;

		if (!vm || vm->state != VMCG_DVM_READY || !vm->actual)
			continue;
		cur = vm->target ? vm->target : vm->actual;
		want = MAX(cur > items[i].take_pages * PAGE ? cur - items[i].take_pages * PAGE : 0,
			   guest_floor(vm, now));
		if (want < cur) {
			planned += pages_of(cur - want);
			vmcg_dvm_set_target(vm, want);
		}
	}
	return planned;
}
