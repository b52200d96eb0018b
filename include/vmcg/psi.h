/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * PSI-style memory stall accounting per group, computed as the kernel's
 * kernel/sched/psi.c does for one resource.
 *
 * The "tasks" are a group's vCPUs. A vCPU is stalled while it waits for a
 * charge (a refill held at memory.max in hook mode) or for a balloon that
 * reclaim is waiting on. As in the kernel:
 *   some: at least one non-idle vCPU of the group is stalled
 *   full: every non-idle vCPU of the group is stalled (and there is one)
 * Stall time accumulates into totals (usec) and, every 2 s period, into
 * running averages over 10 s, 60 s and 300 s with the kernel's fixed-point
 * decay (EXP_10s etc., FSHIFT 11).
 *
 * Time is passed in by the caller (monotonic usec); the engine never reads a
 * clock. Calls on one VmcgPsi are serialized by the caller.
 */
#ifndef VMCG_PSI_H
#define VMCG_PSI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 2 s: the kernel's PSI_FREQ averaging period. */
#define VMCG_PSI_PERIOD_USEC UINT64_C(2000000)

typedef enum VmcgPsiState {
	VMCG_PSI_SOME = 0,
	VMCG_PSI_FULL,
	_VMCG_PSI_STATE_COUNT,
} VmcgPsiState;

typedef struct VmcgPsi {
	/* private */
	uint32_t nr_active;  /* non-idle vCPUs */
	uint32_t nr_stalled; /* of those, stalled */
	uint64_t state_start_usec;
	uint64_t total_usec[_VMCG_PSI_STATE_COUNT];	/* all stall time */
	uint64_t avg_total_usec[_VMCG_PSI_STATE_COUNT]; /* folded into avg[] */
	uint64_t avg[_VMCG_PSI_STATE_COUNT][3];		/* fixed point, FSHIFT 11, percent */
	uint64_t avg_last_update_usec;
	uint64_t avg_next_update_usec;
	bool started;
} VmcgPsi;

/**
 * vmcg_psi_init() - all zero, with the first period starting at @now_usec.
 * A zero-filled VmcgPsi that was never initialized starts its clock at its
 * first vmcg_psi_change() or vmcg_psi_update() instead.
 */
void vmcg_psi_init(VmcgPsi *psi, uint64_t now_usec);

/**
 * vmcg_psi_change() - the task-state change of psi_group_change(): the
 * group's non-idle vCPUs change by @delta_active and stalled ones by
 * @delta_stalled at @now_usec. Time since the last change is first added to
 * the totals according to the old state. Returns -EINVAL (nothing changed)
 * if a count would go negative or stalled would exceed active, or if time
 * went backwards.
 */
int vmcg_psi_change(VmcgPsi *psi, uint64_t now_usec, int delta_active, int delta_stalled);

/**
 * vmcg_psi_add_stall() - for a caller that measured a stall itself: add
 * @some_usec and @full_usec (full <= some, else -EINVAL) to the totals.
 * Also -EINVAL, with nothing added, if a total would overflow.
 */
int vmcg_psi_add_stall(VmcgPsi *psi, uint64_t some_usec, uint64_t full_usec);

/**
 * vmcg_psi_update() - bring totals up to @now_usec (counting the ongoing
 * state) and fold every complete 2 s period into the averages, as
 * update_averages() does: missed periods decay with zero samples, a
 * period's sample is clamped to the period length. A @now_usec before the
 * last change or update is ignored.
 */
void vmcg_psi_update(VmcgPsi *psi, uint64_t now_usec);

/**
 * vmcg_psi_read() - averages as percent * 100 (e.g. 1234 = 12.34%) and the
 * total in usec for @state, as of the last vmcg_psi_update(). The total
 * also holds time recorded since by vmcg_psi_change() and
 * vmcg_psi_add_stall(), but not the still ongoing state.
 * @ret_avg: 3 values, avg10, avg60, avg300
 */
void vmcg_psi_read(const VmcgPsi *psi, VmcgPsiState state, uint32_t ret_avg[3],
		   uint64_t *ret_total_usec);

/**
 * vmcg_psi_format() - the two lines of a cgroup memory.pressure file,
 *   some avg10=0.00 avg60=0.00 avg300=0.00 total=0
 *   full avg10=0.00 avg60=0.00 avg300=0.00 total=0
 * into @buf. Returns the length written (excluding NUL), or -ENOSPC if
 * @size is too small (the buffer then holds a truncated, NUL-terminated
 * string). 160 bytes always suffice.
 */
int vmcg_psi_format(const VmcgPsi *psi, char *buf, size_t size);

#endif
