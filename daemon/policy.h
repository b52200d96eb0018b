/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The control loop's decisions (docs/daemon.md, "Enforcement"): balloon
 * floors from guest statistics, balloon targets and their step caps,
 * deflation with hysteresis, stuck balloons, the OOM deadline, and what a
 * tick means for vmpressure and PSI.
 *
 * Pure, as lib/ is (STYLE.md, "Boundaries"): plain input structs in, plain
 * results out; no main loop, no logging, no json, no GLib. Time ("now") is
 * an argument, on the daemon's monotonic clock in usec. control.c and
 * vm.c gather the inputs from the tree and the VMs and apply the results
 * (QMP balloon commands, events, OOM actions); tests/unit/test-policy.c
 * feeds tables. Nothing here keeps state between calls except what the
 * caller passes back in (VmcgPolicyBalloon, VmcgPolicyOom).
 *
 * Units are in the names. The engine's headers are included for constants
 * only (VMCG_PAGE_SIZE, VMCG_PAGES_MAX); nothing here calls the engine.
 */
#ifndef VMCG_POLICY_H
#define VMCG_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmcg/counter.h"

/* Enforcement tunables; the config's [daemon] section. Sizes in bytes. */
typedef struct VmcgPolicy {
	uint64_t reclaim_step;	       /* most a balloon moves per VM per tick */
	uint64_t hysteresis;	       /* deflate only this far under high/max */
	uint64_t stats_interval_usec;  /* guest balloon stats polling */
	uint64_t stats_max_age_usec;   /* older guest stats are stale */
	uint64_t guest_margin;	       /* headroom above what the guest uses */
	uint64_t balloon_stuck_usec;   /* no progress for this long: stuck */
	uint64_t oom_deadline_usec;    /* over max this long without progress: OOM */
	uint64_t vmpressure_hold_usec; /* a vmpressure level is shown this long */
	uint64_t min_guest;	       /* never balloon a guest below this */
	/* The guest pressure channel (docs/guest-channel.md). */
	uint64_t channel_report_interval_usec; /* the report rate asked of guests */
	uint64_t unknown_charge_grace_usec;    /* unknown-charge-grace (charge.h) */
	uint32_t guest_stall_pct;	       /* psi some avg10 at or above: stalled */
} VmcgPolicy;

/*
 * One VM as the balloon decisions see it. Sizes in bytes, 0 = not known
 * (or, for target_bytes, not set yet: the balloon is where QEMU says).
 */
typedef struct VmcgPolicyVm {
	bool ready;		  /* QMP ready: not connecting, paused or gone */
	uint64_t ram_size_bytes;  /* guest RAM (query-memdev) */
	uint64_t actual_bytes;	  /* guest size per QEMU (query-balloon) */
	uint64_t target_bytes;	  /* the balloon target we set */
	uint64_t resident_bytes;  /* last sample of resident guest RAM */
	uint64_t floor_bytes;	  /* configured floor; UINT64_MAX = "max" */
	uint64_t adopted_usec;	  /* when QMP became ready */
	uint64_t want_take_pages; /* the planner's share this tick, 0 = none */
	/* The guest's balloon statistics, if has_stats. */
	bool has_stats;
	uint64_t stats_usec;		/* when they arrived */
	uint64_t stats_total_bytes;	/* stat-total-memory */
	uint64_t stats_available_bytes; /* stat-available-memory */
	uint64_t stats_resident_bytes;	/* resident_bytes when they arrived */
	uint64_t stats_actual_bytes;	/* actual_bytes when they arrived */
	/*
	 * The guest's own report on its pressure channel, if has_report
	 * (docs/guest-channel.md): fresh for VMCG_POLICY_REPORT_FRESH report
	 * intervals (p->channel_report_interval_usec), it replaces the
	 * balloon's statistics in the floor.
	 */
	bool has_report;
	uint64_t report_usec;		 /* when it arrived */
	bool report_has_available;	 /* the guest gave MemAvailable */
	uint64_t report_available_bytes; /* MemAvailable */
	uint64_t report_resident_bytes;	 /* resident_bytes when it arrived */
	uint64_t report_actual_bytes;	 /* actual_bytes when it arrived */
	bool report_has_psi;
	uint32_t report_some_avg10_centi; /* PSI some avg10, hundredths of a percent */
	/* The backend cannot drive this balloon (libvirt: no device, VFIO, ...): never moved. */
	bool not_driven;
	/*
	 * Someone else moved it (vmcg_policy_balloon_external()): left where
	 * it is, no room given, no deflation, until its group needs reclaim.
	 */
	bool external_hold;
} VmcgPolicyVm;

/* A report is fresh for 3 report intervals (docs/guest-channel.md, "Effect"). */
#define VMCG_POLICY_REPORT_FRESH 3

/** vmcg_policy_report_fresh() - @vm has a report younger than 3 report intervals. */
bool vmcg_policy_report_fresh(const VmcgPolicy *p, const VmcgPolicyVm *vm, uint64_t now_usec);

/**
 * vmcg_policy_guest_stalled() - a fresh report with PSI some avg10 at or
 * above p->guest_stall_pct (0 disables the rule): the guest is waiting for
 * memory, so it is spared from reclaim when its siblings can make up for it
 * (vmcg_policy_spare_stalled()) and gets memory back first.
 */
bool vmcg_policy_guest_stalled(const VmcgPolicy *p, const VmcgPolicyVm *vm, uint64_t now_usec);

/* One VM of a group's reclaim plan, for vmcg_policy_spare_stalled(). Pages. */
typedef struct VmcgPolicyShare {
	uint64_t take_pages;	    /* the planner's share; rewritten */
	uint64_t reclaimable_pages; /* usage above its effective protection: the most it may give */
	bool stalled;		    /* vmcg_policy_guest_stalled() */
	bool spared;		    /* out: the stalled VM gives nothing this round */
} VmcgPolicyShare;

/**
 * vmcg_policy_spare_stalled() - move the shares of stalled VMs onto the
 * others of the same plan, each at most to its reclaimable pages (so no
 * sibling is reclaimed below its protection, and the stalled VM keeps only
 * what it had: it gains nothing). A stalled VM is spared whole or not at
 * all, the smallest shares first: one whose share does not fit in what the
 * others can still give is reclaimed as if it had not reported. The moved
 * pages go to the others in proportion to what each can still give.
 *
 * Returns the pages moved; @s is updated in place (take_pages, spared).
 */
uint64_t vmcg_policy_spare_stalled(VmcgPolicyShare *s, size_t n);

/* Why a balloon target moves (or does not). */
typedef enum VmcgPolicyAction {
	VMCG_POLICY_HOLD = 0, /* leave the target where it is */
	VMCG_POLICY_GROW,     /* the guest grew into its balloon: room at once */
	VMCG_POLICY_RECLAIM,  /* inflate: a group above asks for pages */
	VMCG_POLICY_DEFLATE,  /* give memory back: every ancestor has room */
} VmcgPolicyAction;

typedef struct VmcgPolicyTarget {
	VmcgPolicyAction action;
	uint64_t target_bytes; /* the new target; 0 with VMCG_POLICY_HOLD */
	uint64_t from_bytes;   /* where the balloon was going: target, or actual */
} VmcgPolicyTarget;

/* A group above a VM, for deflation: the VM's own group first, then up. */
typedef struct VmcgPolicyAncestor {
	uint64_t usage_pages;
	uint64_t limit_pages; /* min(high, max); >= VMCG_PAGES_MAX: no limit */
} VmcgPolicyAncestor;

/**
 * vmcg_policy_guest_floor() - the lowest guest size @vm may be ballooned
 * to at @now_usec.
 *
 * Returns bytes: the largest of the configured floor, p->min_guest and
 * what the guest uses plus p->guest_margin, where "uses" is, with fresh
 * stats, its size when the stats were taken minus MemAvailable plus
 * whatever became resident since; with stale or missing stats, the
 * current target (or actual size), so that it is not inflated further,
 * and at least what is resident. Clamped to ram_size_bytes when known.
 */
uint64_t vmcg_policy_guest_floor(const VmcgPolicy *p, const VmcgPolicyVm *vm, uint64_t now_usec);

/**
 * vmcg_policy_deflate_room() - how far a balloon at @cur_bytes may
 * deflate this tick without bringing any of @anc (the VM's group and its
 * ancestors, @n of them) within p->hysteresis of its limit.
 *
 * Returns bytes, at most p->reclaim_step and ram_size_bytes - cur_bytes;
 * 0 if the guest is at full size, some ancestor is already within
 * hysteresis of its limit, or the room is less than a page.
 */
uint64_t vmcg_policy_deflate_room(const VmcgPolicy *p, uint64_t cur_bytes, uint64_t ram_size_bytes,
				  const VmcgPolicyAncestor *anc, size_t n);

/**
 * vmcg_policy_balloon_target() - the tick's decision for @vm's balloon:
 * grow into it, inflate by the planner's share (vm->want_take_pages),
 * deflate by vmcg_policy_deflate_room() over @anc, or hold.
 *
 * Returns the decision; target_bytes is before the balloon command's own
 * clamps (page alignment, min_guest, ram size: vmcg_dvm_set_target()).
 * Holds a VM that is not ready or whose sizes are unknown, and a VM
 * adopted less than p->stats_max_age_usec ago that has no stats yet; a
 * balloon that is not driven, always; one under an external hold, unless
 * the decision is to reclaim.
 */
VmcgPolicyTarget vmcg_policy_balloon_target(const VmcgPolicy *p, const VmcgPolicyVm *vm,
					    uint64_t now_usec, const VmcgPolicyAncestor *anc,
					    size_t n);

/**
 * vmcg_policy_reclaim_target() - memory.reclaim: @vm's balloon target
 * after taking @take_pages from its current target (or actual size) now,
 * not below vmcg_policy_guest_floor(). No step cap: the operator asked.
 *
 * Returns VMCG_POLICY_RECLAIM and the lower target, or VMCG_POLICY_HOLD
 * if the VM is not ready, its size is unknown, or nothing can be taken.
 */
VmcgPolicyTarget vmcg_policy_reclaim_target(const VmcgPolicy *p, const VmcgPolicyVm *vm,
					    uint64_t now_usec, uint64_t take_pages);

/*
 * Stuck-balloon detection, per VM, kept by the caller between ticks. The
 * caller also restarts the clock (progress_usec = now, progress_actual_bytes
 * = actual) whenever it sets a first or a lower target.
 */
typedef struct VmcgPolicyBalloon {
	uint64_t progress_usec;		/* last time actual moved toward target */
	uint64_t progress_actual_bytes; /* actual then: the lowest since */
	bool stuck;			/* reported; until it settles */
} VmcgPolicyBalloon;

typedef enum VmcgPolicyBalloonState {
	VMCG_BALLOON_SETTLED = 0, /* no target, or actual within tolerance of it */
	VMCG_BALLOON_PROGRESS,	  /* inflating, and actual reached a new low */
	VMCG_BALLOON_WAITING,	  /* inflating, no progress yet, not stuck */
	VMCG_BALLOON_STUCK_NOW,	  /* no progress for balloon_stuck_usec: report it */
	VMCG_BALLOON_STUCK,	  /* still stuck, already reported */
} VmcgPolicyBalloonState;

/**
 * vmcg_policy_balloon_progress() - one tick of stuck detection for a
 * balloon with target @target_bytes (0 = none), at @actual_bytes, of a
 * guest of @ram_size_bytes; updates @b.
 *
 * Returns the balloon's state. VMCG_BALLOON_STUCK_NOW is returned once
 * per episode: the caller raises balloon_stuck and a critical vmpressure.
 */
VmcgPolicyBalloonState vmcg_policy_balloon_progress(const VmcgPolicy *p, uint64_t ram_size_bytes,
						    uint64_t target_bytes, uint64_t actual_bytes,
						    uint64_t now_usec, VmcgPolicyBalloon *b);

/**
 * vmcg_policy_group_excess() - what a group must shed this tick: its
 * usage above high, or its demand (usage plus @held_pages, refills that
 * hook mode holds for want of room) above max, whichever is larger.
 *
 * Returns pages; 0 if the group is within both limits.
 */
uint64_t vmcg_policy_group_excess(uint64_t usage_pages, uint64_t held_pages, uint64_t high_pages,
				  uint64_t max_pages);

/* The OOM deadline, per group, kept by the caller between ticks. */
typedef struct VmcgPolicyOom {
	uint64_t over_max_since_usec; /* deadline runs from here; 0 = not running */
	uint64_t over_max_best_pages; /* lowest usage seen while over max */
} VmcgPolicyOom;

typedef struct VmcgPolicyOomInput {
	bool over_max;
	uint64_t usage_pages;	  /* after the slots' credit was drained */
	uint64_t held_pages;	  /* hook mode: refills held under the group */
	uint64_t held_since_usec; /* the oldest of them */
} VmcgPolicyOomInput;

/**
 * vmcg_policy_oom_check() - one tick of the OOM deadline for a group;
 * updates @st.
 *
 * Returns true when the group's OOM action must run now: over max for
 * p->oom_deadline_usec without a new low, or (hook mode, not over max)
 * a refill held that long. The deadline then restarts, so the action
 * repeats at most once per deadline while the condition lasts.
 */
bool vmcg_policy_oom_check(const VmcgPolicy *p, const VmcgPolicyOomInput *in, uint64_t now_usec,
			   VmcgPolicyOom *st);

/**
 * vmcg_policy_vmpressure_reclaimed() - of @asked_pages asked of balloons
 * last tick when the group's usage was @asked_at_usage_pages, how many
 * came back by @usage_pages.
 *
 * Returns pages, at most @asked_pages.
 */
uint64_t vmcg_policy_vmpressure_reclaimed(uint64_t asked_pages, uint64_t asked_at_usage_pages,
					  uint64_t usage_pages);

/* A group's tick, for PSI. */
typedef struct VmcgPolicyPsiInput {
	bool over_high, over_max;
	uint64_t dt_usec;	     /* since the last tick */
	uint64_t hook_some_usec;     /* longest wait of a hooked vCPU under it */
	uint64_t hook_full_usec;     /* shortest wait among the stalled VMs */
	uint32_t nr_vms, nr_stalled; /* VMs under it; those with a vCPU waiting */
} VmcgPolicyPsiInput;

typedef struct VmcgPolicyStall {
	uint64_t some_usec, full_usec; /* full <= some <= dt */
} VmcgPolicyStall;

/**
 * vmcg_policy_psi_stall() - the stall time a group's tick adds to its PSI.
 *
 * Returns some and full in usec: the tick while over high (some) or max
 * (both), or the hooked vCPUs' real waits if longer; full only when every
 * VM under the group had a vCPU waiting.
 */
VmcgPolicyStall vmcg_policy_psi_stall(const VmcgPolicyPsiInput *in);

/**
 * vmcg_policy_balloon_external() - whether a balloon now at @actual (guest
 * size, bytes) was moved by someone else. @ref_actual is the caller's
 * reference: the size closest to @target seen since vmcgd set @target (or,
 * with no target, @target 0, the size when vmcgd last looked). Someone
 * else's: with no target, it moved more than @slack from the reference;
 * with one, it is more than @slack further from the target than the
 * reference was. Moving toward the target, or past it, is vmcgd's own. A
 * reference or size of 0 (unknown): never.
 */
bool vmcg_policy_balloon_external(uint64_t ref_actual, uint64_t actual, uint64_t target,
				  uint64_t slack);

#endif
