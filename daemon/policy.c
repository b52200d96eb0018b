// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The control loop's decisions, as pure functions (policy.h). Each rule
 * keeps its reason here; control.c and vm.c only gather and apply.
 */
#include "policy.h"

#define PAGE VMCG_PAGE_SIZE

/*
 * A balloon within max(1% of the guest, 8 MiB) of its target has arrived:
 * one that ends a few pages short is not stuck, and scaling with the
 * guest keeps that so for large guests.
 */
#define STUCK_TOLERANCE_MIN_BYTES (UINT64_C(8) << 20)

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* Where the balloon is going: our target, or where QEMU says it is. */
static uint64_t current_target(const VmcgPolicyVm *vm)
{
	return vm->target_bytes ? vm->target_bytes : vm->actual_bytes;
}

bool vmcg_policy_report_fresh(const VmcgPolicy *p, const VmcgPolicyVm *vm, uint64_t now_usec)
{
	return vm->has_report && now_usec >= vm->report_usec &&
	       now_usec - vm->report_usec <
		       VMCG_POLICY_REPORT_FRESH * p->channel_report_interval_usec;
}

bool vmcg_policy_guest_stalled(const VmcgPolicy *p, const VmcgPolicyVm *vm, uint64_t now_usec)
{
	return p->guest_stall_pct && vmcg_policy_report_fresh(p, vm, now_usec) &&
	       vm->report_has_psi && vm->report_some_avg10_centi >= p->guest_stall_pct * 100;
}

uint64_t vmcg_policy_spare_stalled(VmcgPolicyShare *s, size_t n)
{
	uint64_t room = 0, moved = 0, left;

	for (size_t i = 0; i < n; i++) {
		s[i].spared = false;
		if (!s[i].stalled && s[i].reclaimable_pages > s[i].take_pages)
			room += s[i].reclaimable_pages - s[i].take_pages;
	}
	/* Smallest shares first: spare as many stalled VMs as the room allows. */
	for (;;) {
		size_t best = SIZE_MAX;

		for (size_t i = 0; i < n; i++)
			if (s[i].stalled && !s[i].spared && s[i].take_pages &&
			    s[i].take_pages <= room - moved &&
			    (best == SIZE_MAX || s[i].take_pages < s[best].take_pages))
				best = i;
		if (best == SIZE_MAX)
			break;
		moved += s[best].take_pages;
		s[best].take_pages = 0;
		s[best].spared = true;
	}
	for (size_t i = 0; i < n; i++)
		if (s[i].stalled && !s[i].take_pages)
			s[i].spared = true; /* nothing asked of it: nothing to spare */
	if (!moved)
		return 0;
	/* Spread over the others by what each can still give; the rounding goes to the last. */
	left = moved;
	for (size_t i = 0; i < n; i++) {
		uint64_t can, give;

		if (s[i].stalled || s[i].reclaimable_pages <= s[i].take_pages)
			continue;
		can = s[i].reclaimable_pages - s[i].take_pages;
		/* can * moved / room, without overflow for page counts below 2^40 */
		give = (uint64_t)((unsigned __int128)can * moved / room);
		give = min_u64(give, left);
		s[i].take_pages += give;
		left -= give;
	}
	for (size_t i = 0; left && i < n; i++) {
		uint64_t can, give;

		if (s[i].stalled || s[i].reclaimable_pages <= s[i].take_pages)
			continue;
		can = s[i].reclaimable_pages - s[i].take_pages;
		give = min_u64(can, left);
		s[i].take_pages += give;
		left -= give;
	}
	return moved;
}

uint64_t vmcg_policy_guest_floor(const VmcgPolicy *p, const VmcgPolicyVm *vm, uint64_t now_usec)
{
	uint64_t floor = max_u64(vm->floor_bytes, p->min_guest);
	uint64_t cur = current_target(vm);
	uint64_t used, grown;

	if (vmcg_policy_report_fresh(p, vm, now_usec) && vm->report_has_available) {
		/*
		 * The guest's own report, younger than the balloon's statistics
		 * can be: the same reckoning (size then minus MemAvailable,
		 * plus whatever became resident since).
		 */
		uint64_t size =
			vm->report_actual_bytes ? vm->report_actual_bytes : vm->ram_size_bytes;

		used = size > vm->report_available_bytes ? size - vm->report_available_bytes : 0;
		grown = vm->resident_bytes > vm->report_resident_bytes
				? vm->resident_bytes - vm->report_resident_bytes
				: 0;
		floor = max_u64(floor, used + grown + p->guest_margin);
	} else if (!vm->has_stats || now_usec - vm->stats_usec > p->stats_max_age_usec) {
		/*
		 * Stale or missing: no further inflation, and room for what
		 * is resident now, which is the least the guest is using.
		 */
		floor = max_u64(floor, max_u64(cur, vm->resident_bytes + p->guest_margin));
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
		used = vm->stats_actual_bytes > vm->stats_available_bytes
			       ? vm->stats_actual_bytes - vm->stats_available_bytes
			       : vm->stats_total_bytes - vm->stats_available_bytes;
		grown = vm->resident_bytes > vm->stats_resident_bytes
				? vm->resident_bytes - vm->stats_resident_bytes
				: 0;
		floor = max_u64(floor, used + grown + p->guest_margin);
	}
	return vm->ram_size_bytes ? min_u64(floor, vm->ram_size_bytes) : floor;
}

uint64_t vmcg_policy_deflate_room(const VmcgPolicy *p, uint64_t cur_bytes, uint64_t ram_size_bytes,
				  const VmcgPolicyAncestor *anc, size_t n)
{
	uint64_t room;

	if (cur_bytes >= ram_size_bytes)
		return 0;
	room = ram_size_bytes - cur_bytes;
	/*
	 * Every group above keeps hysteresis below the tighter of its high
	 * and max: a deflation that brought one right up to its limit would
	 * be reclaimed again next tick, and the balloon would oscillate.
	 */
	for (size_t i = 0; i < n; i++) {
		uint64_t usage = anc[i].usage_pages * PAGE, lim = anc[i].limit_pages;

		if (lim >= VMCG_PAGES_MAX)
			continue;
		lim *= PAGE;
		if (usage + p->hysteresis >= lim)
			return 0;
		room = min_u64(room, lim - p->hysteresis - usage);
	}
	/*
	 * At most a step, as reclaim: a deflation that overshoots can only
	 * be taken back a step per tick.
	 */
	room = min_u64(room, p->reclaim_step);
	return room >= PAGE ? room : 0;
}

static VmcgPolicyTarget balloon_target(const VmcgPolicy *p, const VmcgPolicyVm *vm,
				       uint64_t now_usec, const VmcgPolicyAncestor *anc, size_t n)
{
	const uint64_t cur = current_target(vm);
	const VmcgPolicyTarget hold = { VMCG_POLICY_HOLD, 0, cur };
	uint64_t want, floor, room;

	if (!vm->ready || !vm->actual_bytes || !vm->ram_size_bytes)
		return hold;
	/*
	 * Just adopted (a new VM, or all of them after a restart): hold the
	 * balloon where it is until the guest's stats arrive, so that a
	 * restart moves nothing, rather than acting on the stale-stats rule.
	 */
	if (!vm->has_stats && !vmcg_policy_report_fresh(p, vm, now_usec) &&
	    now_usec - vm->adopted_usec < p->stats_max_age_usec)
		return hold;
	floor = vmcg_policy_guest_floor(p, vm, now_usec);
	if (cur < floor) {
		/*
		 * The guest grew into its balloon: give it room at once,
		 * whatever the group's limits say. The group then stays over
		 * high and counts "high" events (and over max, goes the OOM
		 * path, which is vmcgd's decision, not the guest kernel's).
		 */
		return (VmcgPolicyTarget){ VMCG_POLICY_GROW, floor, cur };
	}
	if (vm->want_take_pages) {
		uint64_t take = min_u64(vm->want_take_pages * PAGE, p->reclaim_step);
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
		uint64_t base = vm->resident_bytes ? min_u64(vm->actual_bytes, vm->resident_bytes)
						   : vm->actual_bytes;

		want = base > take ? base - take : 0;
		want = max_u64(want, floor);
		if (want < cur)
			return (VmcgPolicyTarget){ VMCG_POLICY_RECLAIM, want, cur };
		return hold;
	}
	/* Deflate: give back a step while every ancestor stays clear of its limits. */
	room = vmcg_policy_deflate_room(p, cur, vm->ram_size_bytes, anc, n);
	if (!room)
		return hold;
	return (VmcgPolicyTarget){ VMCG_POLICY_DEFLATE, min_u64(vm->ram_size_bytes, cur + room),
				   cur };
}

VmcgPolicyTarget vmcg_policy_balloon_target(const VmcgPolicy *p, const VmcgPolicyVm *vm,
					    uint64_t now_usec, const VmcgPolicyAncestor *anc,
					    size_t n)
{
	const VmcgPolicyTarget hold = { VMCG_POLICY_HOLD, 0, current_target(vm) };
	VmcgPolicyTarget t;

	if (vm->not_driven)
		return hold;
	t = balloon_target(p, vm, now_usec, anc, n);
	/* An operator's setmem is not fought: only the group's need overrides it. */
	if (vm->external_hold && t.action != VMCG_POLICY_RECLAIM)
		return hold;
	return t;
}

VmcgPolicyTarget vmcg_policy_reclaim_target(const VmcgPolicy *p, const VmcgPolicyVm *vm,
					    uint64_t now_usec, uint64_t take_pages)
{
	const uint64_t cur = current_target(vm);
	const VmcgPolicyTarget hold = { VMCG_POLICY_HOLD, 0, cur };
	uint64_t take, want;

	if (!vm->ready || !vm->actual_bytes)
		return hold;
	take = take_pages * PAGE;
	want = max_u64(cur > take ? cur - take : 0, vmcg_policy_guest_floor(p, vm, now_usec));
	if (want < cur)
		return (VmcgPolicyTarget){ VMCG_POLICY_RECLAIM, want, cur };
	return hold;
}

VmcgPolicyBalloonState vmcg_policy_balloon_progress(const VmcgPolicy *p, uint64_t ram_size_bytes,
						    uint64_t target_bytes, uint64_t actual_bytes,
						    uint64_t now_usec, VmcgPolicyBalloon *b)
{
	uint64_t tolerance = max_u64(ram_size_bytes / 100, STUCK_TOLERANCE_MIN_BYTES);

	/*
	 * A balloon that does not follow: inflating toward a target that the
	 * guest does not reach, without progress for balloon_stuck_usec
	 * (driver missing, guest ignoring it, guest unable to free). Only
	 * inflation is watched: that is where reclaim waits on the guest.
	 */
	if (!target_bytes || actual_bytes <= target_bytes + tolerance) {
		b->stuck = false;
		b->progress_actual_bytes = actual_bytes;
		b->progress_usec = now_usec;
		return VMCG_BALLOON_SETTLED;
	}
	/* Progress is a new low, not just any movement. */
	if (actual_bytes < b->progress_actual_bytes) {
		b->progress_actual_bytes = actual_bytes;
		b->progress_usec = now_usec;
		return b->stuck ? VMCG_BALLOON_STUCK : VMCG_BALLOON_PROGRESS;
	}
	if (b->stuck)
		return VMCG_BALLOON_STUCK;
	if (now_usec - b->progress_usec < p->balloon_stuck_usec)
		return VMCG_BALLOON_WAITING;
	b->stuck = true;
	return VMCG_BALLOON_STUCK_NOW;
}

uint64_t vmcg_policy_group_excess(uint64_t usage_pages, uint64_t held_pages, uint64_t high_pages,
				  uint64_t max_pages)
{
	/* Held refills are demand the group has no room for yet. */
	uint64_t demand = usage_pages + held_pages, excess = 0;

	if (usage_pages > high_pages)
		excess = usage_pages - high_pages;
	if (demand > max_pages)
		excess = max_u64(excess, demand - max_pages);
	return excess;
}

bool vmcg_policy_oom_check(const VmcgPolicy *p, const VmcgPolicyOomInput *in, uint64_t now_usec,
			   VmcgPolicyOom *st)
{
	/*
	 * Hook mode never goes over max: the charge that would is held, and
	 * its vCPU waits (try_charge() already counted the max event). The
	 * deadline runs from the oldest held refill under the group.
	 */
	if (!in->over_max && in->held_pages) {
		if (now_usec - in->held_since_usec >= p->oom_deadline_usec &&
		    (!st->over_max_since_usec ||
		     now_usec - st->over_max_since_usec >= p->oom_deadline_usec)) {
			st->over_max_since_usec = now_usec;
			return true;
		}
		return false;
	}
	if (!in->over_max) {
		st->over_max_since_usec = 0;
		return false;
	}
	/* Progress (a new low) restarts the deadline: reclaim is working. */
	if (!st->over_max_since_usec || in->usage_pages < st->over_max_best_pages) {
		st->over_max_since_usec = now_usec;
		st->over_max_best_pages = in->usage_pages;
		return false;
	}
	if (now_usec - st->over_max_since_usec >= p->oom_deadline_usec) {
		st->over_max_since_usec = now_usec;
		return true;
	}
	return false;
}

uint64_t vmcg_policy_vmpressure_reclaimed(uint64_t asked_pages, uint64_t asked_at_usage_pages,
					  uint64_t usage_pages)
{
	/*
	 * What came back is how far usage fell since the ask, and no more
	 * than was asked: the rest fell for other reasons (a VM went away,
	 * free page reporting) and is not reclaim's efficiency.
	 */
	uint64_t reclaimed =
		asked_at_usage_pages > usage_pages ? asked_at_usage_pages - usage_pages : 0;

	return min_u64(reclaimed, asked_pages);
}

VmcgPolicyStall vmcg_policy_psi_stall(const VmcgPolicyPsiInput *in)
{
	/*
	 * Sampling mode: no vCPU waits for a charge, so "stall" is the time
	 * a group spends over a limit while reclaim works on it: some while
	 * over high, full while over max (everything in it is being
	 * throttled by its cap).
	 */
	uint64_t some = in->over_high || in->over_max ? in->dt_usec : 0;
	uint64_t full = in->over_max ? in->dt_usec : 0;

	/*
	 * Hook mode has the real thing: vCPUs that waited for a refill.
	 * Some: one of them waited; full: every VM under the group had one
	 * waiting (for the shortest of their waits).
	 */
	some = min_u64(in->dt_usec, max_u64(some, in->hook_some_usec));
	full = min_u64(some, max_u64(full, in->nr_stalled && in->nr_stalled == in->nr_vms
						   ? in->hook_full_usec
						   : 0));
	return (VmcgPolicyStall){ some, full };
}

static uint64_t distance(uint64_t a, uint64_t b)
{
	return a > b ? a - b : b - a;
}

bool vmcg_policy_balloon_external(uint64_t ref_actual, uint64_t actual, uint64_t target,
				  uint64_t slack)
{
	if (!ref_actual || !actual)
		return false;
	if (!target)
		return distance(ref_actual, actual) > slack;
	return distance(actual, target) > distance(ref_actual, target) + slack;
}
