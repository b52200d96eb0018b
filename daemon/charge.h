/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Charge sources: where a VM's guest-RAM charge comes from.
 *
 * - sampling (charge-sampling.c): every tick, the guest RAM resident in
 *   the QEMU process (sampler.c reads /proc, on its own thread) is charged
 *   or uncharged by the difference, forcibly: the pages are already there.
 *   Any QEMU.
 * - hooks (hooks.c, hooks-proto.c): QEMU with the vmcg-hooks object
 *   charges on first touch through per-vCPU credit slots shared with
 *   vmcgd; refills are try_charge()d, so memory.max is hard.
 *
 * Exactly one source charges a VM's guest RAM at a time, and each owns
 * what it charged: no other module charges or uncharges guest pages.
 * Sampling measures every VM whatever the source (VMM overhead, the
 * resident figure the policy reads, and in hook mode an audit of the
 * hooks' charge). The handover is one call each way:
 *
 *   attach: vmcg_sampling_hand_over() - sampling uncharges what it
 *           charged and stops charging; the hooks connection then charges
 *           what QEMU says it populated (HELLO).
 *   detach: vmcg_sampling_take_over() - the connection has uncharged all
 *           it charged; sampling measures in full at its next tick and
 *           charges that.
 *
 * Stock: a hooked VM's slot credit is charged but not yet backing guest
 * pages; the hooks source reports it with vmcg_vm_set_external_stock(),
 * so memory.stat shows it as "stock", not "guest" (docs/engine.md says
 * why the shared slots are not lib/stock.c's VmcgStock).
 */
#ifndef VMCG_DAEMON_CHARGE_H
#define VMCG_DAEMON_CHARGE_H

#include <glib.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon.h"

typedef struct VmcgSampling VmcgSampling;

VmcgSampling *vmcg_sampling_new(VmcgDvm *vm);
/** Frees the record; what it charged must have been dropped (NULL ok). */
void vmcg_sampling_free(VmcgSampling *s);

/* What the hooks source tells the audit: pages it charged and its slack. */
typedef struct VmcgSamplingAudit {
	uint64_t charged_pages;
	uint64_t slack_pages;
} VmcgSamplingAudit;

/**
 * vmcg_sampling_tick() - measure @pid's guest RAM of @ram_bytes. With
 * @audit NULL, sampling is the VM's charge source and charges the
 * difference; otherwise it checks the hooks' charge against what is
 * resident (a hooks_audit event when it is short twice in a row).
 * Does nothing while @pid or @ram_bytes is 0.
 *
 * /proc is read on the sampler thread (sampler.h): the call only queues
 * the read, and the charge changes when its result comes back to the main
 * loop, normally within the tick's interval (the audit then uses the
 * hooks' charge of that moment). At most one read is in flight per VM: a
 * VM whose read is still out skips the tick. A read that comes back after
 * vmcg_sampling_drop(), _hand_over() or _take_over(), or after the record
 * was freed, is discarded.
 */
void vmcg_sampling_tick(VmcgSampling *s, pid_t pid, uint64_t ram_bytes, uint64_t now_usec,
			const VmcgSamplingAudit *audit);

/*
 * Between these two, the reads vmcg_sampling_tick() queues are held and
 * handed to the sampler threads at the end, all at once (one lock, one
 * wakeup): the tick wraps its walk over the VMs in them.
 */
void vmcg_sampling_batch_begin(void);
void vmcg_sampling_batch_end(void);

/**
 * vmcg_sampling_set_threaded() - process-wide: FALSE reads /proc inside
 * vmcg_sampling_tick() on the calling thread, as vmcgd did before the
 * sampler thread (the benchmark's "synchronous" variant). Default TRUE.
 */
void vmcg_sampling_set_threaded(gboolean on);

/** Reads queued or being read on the sampler thread, all VMs (a figure for benchmarks). */
unsigned vmcg_sampling_in_flight(void);

/**
 * vmcg_sampling_apply() - the second half of a tick, once /proc is read:
 * @guest_bytes of guest RAM resident, @total_bytes in the whole process,
 * @full if from smaps. Exposed for benchmarks and tests.
 */
void vmcg_sampling_apply(VmcgSampling *s, uint64_t guest_bytes, uint64_t total_bytes, gboolean full,
			 const VmcgSamplingAudit *audit);

/**
 * vmcg_sampling_set_drained_fn() - call @fn on the main loop each time the
 * last read in flight has been applied (the control loop's decisions wait
 * for this tick's samples). NULL unsets it. One for the process.
 */
void vmcg_sampling_set_drained_fn(void (*fn)(gpointer userdata), gpointer userdata);

/** The VM's QEMU is gone: uncharge everything sampling charged, forget the samples. */
void vmcg_sampling_drop(VmcgSampling *s);
/** Attach: uncharge what sampling charged and stop charging (the hooks take over). */
void vmcg_sampling_hand_over(VmcgSampling *s);
/** Detach: charge again from the next (full) sample; clears the audit flag. */
void vmcg_sampling_take_over(VmcgSampling *s);

/**
 * vmcg_sampling_measured() - a sample of the current QEMU was applied: until
 * then resident and overhead read 0 because nothing is known yet (the
 * first read is still on the sampler thread), not because nothing is there.
 */
gboolean vmcg_sampling_measured(const VmcgSampling *s);
/** Last sample: resident guest RAM and VMM overhead, bytes (0 before the first). */
uint64_t vmcg_sampling_resident(const VmcgSampling *s);
uint64_t vmcg_sampling_overhead(const VmcgSampling *s);
/** Bytes charged by sampling (0 in hook mode). */
uint64_t vmcg_sampling_charged(const VmcgSampling *s);
/** Hook mode: resident above the hooks' charge + slack, flagged this episode. */
gboolean vmcg_sampling_audit_flagged(const VmcgSampling *s);

/* ---- a charge that is not known (the decisions are pure: test-charge.c) ---- */

/*
 * PENDING: the first read of this QEMU is not back yet (normally within a
 * tick). KNOWN: the last read succeeded and is recent. UNKNOWN: the last
 * read failed (smaps unreadable, the process gone, no guest RAM in it), or
 * the last success is older than VMCG_SAMPLE_STALE_USEC (reads do not come
 * back). In hook mode the hooks count every page: KNOWN.
 */
typedef enum {
	VMCG_CHARGE_PENDING,
	VMCG_CHARGE_KNOWN,
	VMCG_CHARGE_UNKNOWN,
} VmcgChargeState;

/*
 * Failed reads back off: 1 s after the first (a tick: a read that raced
 * with QEMU's exit is not retried sooner than it would be anyway), then
 * doubling to 30 s. 30 s: an unreadable smaps costs its VM one failed
 * read per 30 s (400 such VMs: 13 reads a second instead of 400), and a
 * VM whose reads recover is measured again within 30 s.
 */
#define VMCG_SAMPLE_BACKOFF_MIN_USEC (1 * G_USEC_PER_SEC)
#define VMCG_SAMPLE_BACKOFF_MAX_USEC (30 * G_USEC_PER_SEC)
/* Twice the backoff cap: a VM measured at all is measured within it. */
#define VMCG_SAMPLE_STALE_USEC (60 * G_USEC_PER_SEC)

const char *vmcg_charge_state_to_string(VmcgChargeState state);

/** The wait before the next read after @failures failed reads in a row (0 for none). */
uint64_t vmcg_sampling_backoff_usec(unsigned failures);

/**
 * vmcg_sampling_charge_state() - whether a VM's charge is known at @now_usec
 * @ok_usec: the last successful read (0: none of this QEMU)
 * @failures: reads failed in a row since
 */
VmcgChargeState vmcg_sampling_charge_state(uint64_t ok_usec, unsigned failures, uint64_t now_usec);

/**
 * vmcg_sampling_unknown_charge() - what a VM whose charge is unknown is
 * charged, in pages: @charged_pages (the last known charge) for
 * @grace_usec (unknown-charge-grace, 10 s by default: rides out a transient
 * failure, a QEMU exiting whose QMP EOF comes within the tick, without an
 * OOM action, and bounds how long a VM whose reads fail can grow unseen),
 * then at least @ram_pages, its whole RAM,
 * the most guest RAM it can have resident. Never less than the last known
 * charge: making its own reads fail (e.g. a QEMU that unmaps, renames or
 * hides its RAM) must never let a VM escape its limits; the worst case is
 * charged, and its group's limits act on it (reclaim, then the OOM action).
 */
uint64_t vmcg_sampling_unknown_charge(uint64_t charged_pages, uint64_t ram_pages,
				      uint64_t unknown_usec, uint64_t grace_usec);

typedef struct VmcgChargeInfo {
	VmcgChargeState state;
	const char *reason;	 /* UNKNOWN: why (borrowed), else NULL */
	int64_t unknown_usec;	 /* UNKNOWN: for how long, else -1 */
	unsigned failures;	 /* reads failed in a row */
	gboolean worst_case;	 /* UNKNOWN: charged its whole RAM */
	int64_t sample_age_usec; /* age of the last successful read, -1: none */
} VmcgChargeInfo;

void vmcg_sampling_charge_info(const VmcgSampling *s, uint64_t now_usec, VmcgChargeInfo *ret);

#endif
