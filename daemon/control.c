// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The control loop: every interval, have each VM's charge source measure
 * it, then keep every group inside its limits by moving balloons
 * (DESIGN.md section 3). This file gathers inputs and applies outputs;
 * the decisions are policy.c's (pure), a VM's record is vm.c's.
 *
 * Per tick:
 * 1. Sample: the sampling source (charge-sampling.c) charges (forcibly: the
 *    pages are already resident) or uncharges the difference between what
 *    is resident and what it charged, or audits the hooks' charge in hook
 *    mode; VMM overhead is the rest of the process's RSS.
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
#include "log.h"

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

/* @vm as the balloon decisions see it (policy.h). */
static VmcgPolicyVm policy_vm(const VmcgDvm *vm)
{
	return (VmcgPolicyVm){
		.ready = vm->state == VMCG_DVM_READY,
		.ram_size_bytes = vm->ram_size,
		.actual_bytes = vm->actual,
		.target_bytes = vm->target,
		.resident_bytes = vmcg_dvm_resident(vm),
		.floor_bytes = vm->floor,
		.adopted_usec = (uint64_t)vm->adopted_usec,
		.want_take_pages = vm->want_take,
		.has_stats = vm->has_stats,
		.stats_usec = (uint64_t)vm->stats_usec,
		.stats_total_bytes = vm->st_total,
		.stats_available_bytes = vm->st_available,
		.stats_resident_bytes = vm->stats_resident,
		.stats_actual_bytes = vm->stats_actual,
		.has_report = vm->has_report,
		.report_usec = (uint64_t)vm->report_usec,
		.report_has_available = vm->report.has_available,
		.report_available_bytes = vm->report.available,
		.report_resident_bytes = vm->report_resident,
		.report_actual_bytes = vm->report_actual,
		.report_has_psi = vm->report.has_psi,
		.report_some_avg10_centi = vm->report.some_avg10_centi,
		.not_driven = vm->no_balloon != NULL,
		.external_hold = vm->external_hold,
	};
}

static bool stalled(const VmcgDvm *vm, uint64_t now)
{
	VmcgPolicyVm pv;

	if (!vm->has_report)
		return false;
	pv = policy_vm(vm);
	return vmcg_policy_guest_stalled(&vm->d->policy, &pv, now);
}

/*
 * The VM's level and reclaim hint to its guest (docs/guest-channel.md,
 * "pressure"): the chain's level as this tick computed it, and what the
 * planner takes from it, at most reclaim_step a tick: by then the balloon
 * has taken it anyway. The channel sends only what changed.
 */
static void push_pressure(VmcgDvm *vm)
{
	const VmcgPolicy *p = &vm->d->policy;
	uint64_t bytes = vm->want_take * PAGE, ticks;

	if (!vm->channel)
		return;
	ticks = p->reclaim_step ? (bytes + p->reclaim_step - 1) / p->reclaim_step : 1;
	vmcg_dvm_channel_pressure(vm, gstate(vmcg_vm_group(vm->vm))->chain_level, bytes,
				  ticks * vm->d->interval_usec / 1000);
}

/* The planner's take for @vm, or deflation, applied (vmcg_policy_balloon_target()). */
static void act(VmcgDvm *vm, uint64_t now, bool is_stalled)
{
	/* Its group and every ancestor: at most VMCG_DEPTH_MAX below "/". */
	VmcgPolicyAncestor anc[VMCG_DEPTH_MAX + 1];
	VmcgPolicyVm pv = policy_vm(vm);
	VmcgPolicyTarget t;
	size_t n = 0;

	for (VmcgGroup *g = vmcg_vm_group(vm->vm); g && n < G_N_ELEMENTS(anc);
	     g = vmcg_group_parent(g)) {
		anc[n].usage_pages = vmcg_group_current(g) + gstate(g)->promised_pages;
		anc[n].limit_pages = MIN(vmcg_group_high(g), vmcg_group_max_effective(g));
		n++;
	}
	t = vmcg_policy_balloon_target(&vm->d->policy, &pv, now, anc, n);
	if (t.action != VMCG_POLICY_HOLD)
		vmcg_dvm_set_target(vm, t.target_bytes);
	/*
	 * A stalled guest gets room first (it is acted on before the others):
	 * what it was given counts against the room of the VMs after it.
	 */
	if (is_stalled && t.action == VMCG_POLICY_DEFLATE && t.target_bytes > t.from_bytes)
		for (VmcgGroup *g = vmcg_vm_group(vm->vm); g; g = vmcg_group_parent(g))
			gstate(g)->promised_pages += pages_of(t.target_bytes - t.from_bytes);
}

static void plan_group(VmcgDaemon *d, VmcgGroup *g, uint64_t excess)
{
	g_autofree VmcgReclaimItem *items = NULL;
	VmcgReclaimSummary sum;
	size_t n;

	g_autofree VmcgPolicyShare *shares = NULL;
	uint64_t now = vmcg_daemon_now_usec(d);
	bool any_stalled = false;

	if (vmcg_group_plan_reclaim(g, excess, &items, &n, &sum) < 0)
		return;
	/*
	 * A guest that reported a stall is spared when its siblings in this
	 * plan can give its share above their own protection; else it gives
	 * as if it had not reported (vmcg_policy_spare_stalled()).
	 */
	shares = g_new0(VmcgPolicyShare, n);
	for (size_t i = 0; i < n; i++) {
		VmcgDvm *vm = vmcg_vm_get_userdata(items[i].vm);
		uint64_t cur = vmcg_vm_current(items[i].vm);
		uint64_t prot = MAX(vmcg_vm_emin(items[i].vm), vmcg_vm_elow(items[i].vm));

		shares[i].take_pages = items[i].take_pages;
		shares[i].reclaimable_pages = cur > prot ? cur - prot : 0;
		shares[i].stalled = vm && stalled(vm, now);
		any_stalled |= shares[i].stalled;
	}
	if (any_stalled && vmcg_policy_spare_stalled(shares, n))
		vmcg_debug("group %s: stalled guests spared this round", vmcg_group_path(g));
	for (size_t i = 0; i < n; i++) {
		VmcgDvm *vm = vmcg_vm_get_userdata(items[i].vm);

		if (vm)
			vm->want_take = MAX(vm->want_take, shares[i].take_pages);
	}
	gstate(g)->asked_pages = sum.planned_pages;
	gstate(g)->asked_at_usage = vmcg_group_current(g);
}

/* vmpressure: pages asked last tick against pages that came back since. */
static void account_vmpressure(VmcgDaemon *d, VmcgGroup *g, uint64_t now)
{
	VmcgGroupState *gs = gstate(g);
	uint64_t reclaimed;
	VmcgVmpressureLevel level;

	if (!gs->asked_pages)
		return;
	reclaimed = vmcg_policy_vmpressure_reclaimed(gs->asked_pages, gs->asked_at_usage,
						     vmcg_group_current(g));
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

/* PSI: the tick's stall (vmcg_policy_psi_stall()) into the group's averages. */
static void account_psi(VmcgGroup *g, uint64_t now, uint64_t dt)
{
	VmcgGroupState *gs = gstate(g);
	VmcgPolicyPsiInput in = {
		.over_high = vmcg_group_over_high(g),
		.over_max = vmcg_group_over_max(g),
		.dt_usec = dt,
		.hook_some_usec = gs->stall_some,
		.hook_full_usec = gs->stall_full,
		.nr_vms = gs->nr_vms,
		.nr_stalled = gs->nr_stalled,
	};
	VmcgPolicyStall st = vmcg_policy_psi_stall(&in);

	if (st.some_usec)
		(void)vmcg_psi_add_stall(vmcg_group_psi(g), st.some_usec, st.full_usec);
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

/* The OOM deadline (vmcg_policy_oom_check()), and the "max" event. */
static void check_oom(VmcgDaemon *d, VmcgGroup *g, uint64_t now)
{
	VmcgGroupState *gs = gstate(g);
	VmcgPolicyOomInput in = {
		.over_max = vmcg_group_over_max(g),
		.usage_pages = vmcg_group_current(g),
		.held_pages = gs->held_pages,
		.held_since_usec = (uint64_t)gs->held_since,
	};
	VmcgPolicyOom st = {
		.over_max_since_usec = (uint64_t)gs->over_max_since,
		.over_max_best_pages = gs->over_max_best,
	};

	if (in.over_max) {
		vmcg_group_event(g, VMCG_EVENT_MAX);
		/* A lowered max: credit cached in hooked VMs' slots goes first. */
		if (vmcg_hooks_drain_group(d->hooks, g))
			in.usage_pages = vmcg_group_current(g);
	}
	if (vmcg_policy_oom_check(&d->policy, &in, now, &st))
		oom(g);
	gs->over_max_since = (int64_t)st.over_max_since_usec;
	gs->over_max_best = st.over_max_best_pages;
}

/*
 * The backends' polls (QMP queries: a query-balloon while a balloon
 * moves, guest stats once per stats-interval) and the tick's new balloon
 * targets go out in slices of
 * POLL_SLICE VMs, one slice per main-loop iteration, from an idle source:
 * sending them and handling their replies for 1000 VMs in one iteration
 * held the loop for tens of milliseconds (docs/performance.md), and an API
 * request waited behind it. At about 15 us of QMP work per VM here (issue,
 * write, read, parse, callback), 64 VMs are about 1 ms an iteration, and
 * 1000 VMs take 16 slices: well inside a tick. At G_PRIORITY_DEFAULT_IDLE
 * the next slice waits until the replies of the last one (and any API
 * request, at the default priority) have been handled, so the replies
 * never pile up into one iteration either. Nothing in the tick's decisions
 * waits for them: replies only update what the next tick reads.
 */
#define POLL_SLICE 64

static gboolean on_poll_slice(gpointer userdata)
{
	VmcgDaemon *d = userdata;
	uint64_t now = vmcg_daemon_now_usec(d);

	for (unsigned i = 0; i < POLL_SLICE && d->poll_next; i++) {
		VmcgDvm *vm = d->poll_next->data;

		d->poll_next = d->poll_next->next;
		vmcg_dvm_poll_backend(vm, now);
	}
	if (d->poll_next)
		return G_SOURCE_CONTINUE;
	d->poll_id = 0;
	return G_SOURCE_REMOVE;
}

bool vmcg_control_polling(const VmcgDaemon *d)
{
	return d->poll_id != 0;
}

void vmcg_control_stop(VmcgDaemon *d)
{
	if (d->poll_id)
		g_source_remove(d->poll_id);
	d->poll_id = 0;
	d->poll_next = NULL;
}

/* From the head again: a tick that comes before the last one's polls are out restarts them. */
static void start_polls(VmcgDaemon *d)
{
	d->poll_next = d->vms.head;
	if (!d->poll_id && d->poll_next)
		d->poll_id = g_idle_add(on_poll_slice, d);
}

/*
 * 100 ms: a tick's reads take a few ms each (smaps of a 512 MiB guest: 3 to
 * 13 ms, docs/performance.md), two threads; longer means a read is stuck
 * or the host is overloaded, and decisions go ahead on the last samples.
 */
#define DECIDE_WAIT_MAX_USEC (100 * 1000)

static void decide(VmcgDaemon *d);

static gboolean on_decide_timeout(gpointer userdata)
{
	VmcgDaemon *d = userdata;

	d->decide_id = 0;
	if (d->decide_pending)
		decide(d);
	return G_SOURCE_REMOVE;
}

/* The last read of the tick is in (charge.h): decide now. */
void vmcg_control_samples_in(VmcgDaemon *d)
{
	if (d->decide_pending)
		decide(d);
}

void vmcg_control_tick(VmcgDaemon *d)
{
	uint64_t now = vmcg_daemon_now_usec(d);
	uint64_t dt = d->last_tick_usec ? now - d->last_tick_usec : 0;

	/* The last tick's decisions still wait: make them before sampling again. */
	if (d->decide_pending)
		decide(d);
	d->last_tick_usec = now;
	/* Every VM's /proc read handed to the sampler threads at once. */
	vmcg_sampling_batch_begin();
	for (GList *l = d->vms.head; l; l = l->next) {
		VmcgDvm *vm = l->data;

		vmcg_dvm_sample(vm, now);
		vmcg_dvm_backstop_sync(vm);
		vmcg_dvm_poll(vm, now);
		vm->want_take = 0;
	}
	vmcg_sampling_batch_end();
	vmcg_hooks_tick(d->hooks, now - dt, now);
	gather_hooks(d);

	/*
	 * Decide on this tick's samples, not the last tick's: /proc is read on
	 * the sampler thread, and a decision one tick stale lets a guest that
	 * fills memory fast (tmpfs) outrun its floor. Wait for the reads, but
	 * never longer than DECIDE_WAIT_MAX_USEC (a /proc read that hangs must
	 * not stop enforcement): then decide on what is in.
	 */
	d->decide_dt = dt;
	if (vmcg_sampling_in_flight() == 0) {
		decide(d);
		return;
	}
	d->decide_pending = TRUE;
	if (!d->decide_id)
		d->decide_id = g_timeout_add(DECIDE_WAIT_MAX_USEC / 1000, on_decide_timeout, d);
}

/* The second half of a tick: plan, escalate, act (on fresh samples). */
static void decide(VmcgDaemon *d)
{
	uint64_t now = vmcg_daemon_now_usec(d), dt = d->decide_dt;
	VmcgGroup *root = vmcg_tree_root(d->tree), *g;

	d->decide_pending = FALSE;
	if (d->decide_id) {
		g_source_remove(d->decide_id);
		d->decide_id = 0;
	}
	/* Cluster grants: demand from these samples; the grants come back later. */
	vmcg_cluster_tick(d->cluster, now, d->interval_usec);
	for (g = root; g; g = vmcg_group_next_descendant(g, root)) {
		VmcgGroupState *gs = gstate(g);
		VmcgGroup *parent = vmcg_group_parent(g);
		uint64_t excess;

		account_vmpressure(d, g, now);
		/* Top down: the parent's chain is done (the guest channel's level). */
		gs->chain_level = vmcg_vmpressure_level(vmcg_group_vmpressure(g), now,
							d->policy.vmpressure_hold_usec);
		if (parent)
			gs->chain_level = MAX(gs->chain_level, gstate(parent)->chain_level);
		gs->promised_pages = 0;
		account_psi(g, now, dt);
		excess = vmcg_policy_group_excess(vmcg_group_current(g), gstate(g)->held_pages,
						  vmcg_group_high(g), vmcg_group_max_effective(g));
		if (!excess)
			continue;
		if (vmcg_group_over_high(g))
			vmcg_group_event(g, VMCG_EVENT_HIGH);
		plan_group(d, g, excess);
	}
	for (g = root; g; g = vmcg_group_next_descendant(g, root))
		check_oom(d, g, now);

	/* Stalled guests first: they get memory back before the others (docs/guest-channel.md). */
	for (GList *l = d->vms.head; l; l = l->next) {
		VmcgDvm *vm = l->data;

		if (stalled(vm, now))
			act(vm, now, true);
	}
	for (GList *l = d->vms.head; l; l = l->next) {
		VmcgDvm *vm = l->data;

		if (!stalled(vm, now))
			act(vm, now, false);
		push_pressure(vm);
	}
	start_polls(d);
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
		VmcgPolicyVm pv;
		VmcgPolicyTarget t;

		if (!vm)
			continue;
		pv = policy_vm(vm);
		t = vmcg_policy_reclaim_target(&d->policy, &pv, now, items[i].take_pages);
		if (t.action == VMCG_POLICY_HOLD)
			continue;
		planned += pages_of(pv.target_bytes ? pv.target_bytes - t.target_bytes
						    : pv.actual_bytes - t.target_bytes);
		vmcg_dvm_set_target(vm, t.target_bytes);
		/* Asked through the API: sent now, not with the next tick's polls. */
		vmcg_dvm_send_target(vm);
	}
	return planned;
}
