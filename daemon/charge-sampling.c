// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The sampling charge source (charge.h): each tick, measure the guest RAM
 * resident in a QEMU process and charge or uncharge the difference; in
 * hook mode, audit the hooks' charge against it instead.
 *
 * Owns: what sampling charged, the last sample (resident, overhead), the
 * calibration of cheap samples against full ones, the audit state, and
 * the one read per VM that may be in flight on the sampler thread.
 * /proc is read by sampler.c; this file decides what a sample means.
 */
#include <gio/gio.h>

#include "charge.h"
#include "daemon-private.h"
#include "log.h"
#include "sampler.h"

#define PAGE VMCG_PAGE_SIZE

typedef struct Job Job;

struct VmcgSampling {
	VmcgDvm *vm;
	gboolean charging;  /* the VM's charge source (FALSE in hook mode) */
	uint64_t charged;   /* bytes charged by sampling */
	uint64_t resident;  /* last sample */
	uint64_t overhead;  /* the rest of the process's RSS */
	int64_t cal_usec;   /* last full (smaps) sample, 0 = none */
	uint64_t cal_guest; /* guest resident then */
	uint64_t cal_anon;  /* RssAnon then */
	gboolean spread;    /* the next full sample is the first of this QEMU */
	gboolean measured;  /* a sample of this QEMU was applied */
	gboolean audit_flagged;
	unsigned audit_strikes; /* full samples in a row over the hooks' charge */
	Job *job;		/* the read in flight on the sampler thread, or NULL */
	unsigned gen;		/* bumped when a read in flight no longer applies */
	/* whether the charge is known (vmcg_sampling_charge_state()) */
	VmcgChargeState state;
	uint64_t ok_usec;      /* last successful read of this QEMU, 0: none */
	unsigned failures;     /* reads failed in a row */
	uint64_t next_usec;    /* failing: no read before this (backoff) */
	uint64_t unknown_usec; /* UNKNOWN since */
	uint64_t ram_pages;    /* the VM's RAM as of the last tick */
	gboolean worst_case;   /* UNKNOWN and charged its whole RAM */
	char *reason;	       /* why the last read failed */
};

/*
 * A read in flight. It outlives its record if need be: vmcg_sampling_free()
 * only clears ->owner and cancels it, and job_done() frees it when the
 * sampler hands it back. ->owner and ->gen are read and written on the main
 * thread only; the sampler thread touches ->req alone.
 */
struct Job {
	VmcgSampleReq req;
	VmcgSampling *owner; /* NULL once the record is freed */
	unsigned gen;	     /* ->owner->gen when submitted */
	uint64_t now;	     /* the tick's time */
	gboolean hooked;     /* submitted in hook mode: audit, do not charge */
	VmcgSamplingAudit audit;
};

static uint64_t pages_of(uint64_t bytes)
{
	return bytes / PAGE;
}

/*
 * A full smaps sample at least this often, and whenever RssAnon moved by
 * more than CALIBRATE_DRIFT since the last one: in between, the guest's
 * resident RAM is the last full sample plus RssAnon's change. What else
 * moves RssAnon (QEMU's own heap) is small and slow, and each full sample
 * puts it right again.
 */
#define CALIBRATE_USEC (10 * G_USEC_PER_SEC)
#define CALIBRATE_DRIFT (256 << 20)

/*
 * /proc is read off the main loop (sampler.h says why). Two threads: at
 * 1000 VMs a full sample every 10 s each is 100 smaps walks a second, 0.3
 * to 1.3 s of reading on the machine of docs/performance.md, more than
 * one thread keeps up with in the worst case; more threads would only
 * compete with the guests for the host's CPUs.
 *
 * One sampler for the process, made by the first read and shared by every
 * record: /proc reads are the host's work, not a daemon's, so nothing
 * daemon-wide has to own it (main.c runs one daemon). Freed from an idle
 * once the last record is gone, never from inside its own delivery.
 */
#define SAMPLER_THREADS 2

static VmcgSampler *sampler;
static unsigned nr_records;
static guint sampler_free_id;
static gboolean threaded = TRUE;
static unsigned nr_in_flight;
/* Reads held for one submission (vmcg_sampling_batch_begin()), or NULL. */
static GPtrArray *batch;

static gboolean sampler_free_idle(gpointer userdata)
{
	(void)userdata;
	sampler_free_id = 0;
	if (!nr_records)
		g_clear_pointer(&sampler, vmcg_sampler_free);
	return G_SOURCE_REMOVE;
}

void vmcg_sampling_set_threaded(gboolean on)
{
	threaded = on;
}

unsigned vmcg_sampling_in_flight(void)
{
	return nr_in_flight;
}

static void (*drained_fn)(gpointer);
static gpointer drained_data;

void vmcg_sampling_set_drained_fn(void (*fn)(gpointer userdata), gpointer userdata)
{
	drained_fn = fn;
	drained_data = userdata;
}

VmcgSampling *vmcg_sampling_new(VmcgDvm *vm)
{
	VmcgSampling *s = g_new0(VmcgSampling, 1);

	s->vm = vm;
	s->charging = TRUE;
	s->spread = TRUE;
	nr_records++;
	/*
	 * The readers start with the first VM, not at its first read: that
	 * read comes in a tick, and starting threads (stacks, clone) there
	 * was 0.3 to 1 ms of the first tick's main-loop stall here.
	 */
	if (threaded && !sampler)
		sampler = vmcg_sampler_new(SAMPLER_THREADS);
	return s;
}

void vmcg_sampling_free(VmcgSampling *s)
{
	if (!s)
		return;
	g_warn_if_fail(s->charged == 0);
	if (s->job) {
		/* The sampler still holds it: job_done() frees it. */
		s->job->owner = NULL;
		g_atomic_int_set(&s->job->req.cancelled, 1);
	}
	g_free(s->reason);
	g_free(s);
	if (--nr_records == 0 && sampler && !sampler_free_id)
		sampler_free_id = g_idle_add(sampler_free_idle, NULL);
}

static const char *name_of(const VmcgSampling *s)
{
	return vmcg_vm_name(s->vm->vm);
}

/*
 * Hook mode: the hooks charge, sampling audits. Resident guest RAM above
 * the charge plus the slots' slack means pages were populated that were
 * never charged: a broken or lying QEMU. Only full (smaps) samples count:
 * in between, RssAnon's change also has QEMU's own growth in it (TCG's
 * code buffer, its heap). And only twice in a row: a discard that QEMU
 * already returned but has not finished yet can be resident one moment
 * longer than it is charged. A first strike asks for a full sample next
 * tick. Flagged once per episode.
 */
static void audit(VmcgSampling *s, uint64_t res_pages, gboolean full, const VmcgSamplingAudit *a)
{
	g_autoptr(json_object) data = NULL;

	if (res_pages <= a->charged_pages + a->slack_pages) {
		s->audit_strikes = 0;
		s->audit_flagged = FALSE;
		return;
	}
	s->cal_usec = 0; /* a full sample next tick */
	if (!full || ++s->audit_strikes < 2 || s->audit_flagged)
		return;
	g_warning("VM %s: %" G_GUINT64_FORMAT
		  " pages of guest RAM resident, only %" G_GUINT64_FORMAT
		  " charged (slack %" G_GUINT64_FORMAT ")",
		  name_of(s), res_pages, a->charged_pages, a->slack_pages);
	data = json_object_new_object();
	json_object_object_add(data, "vm", json_object_new_string(name_of(s)));
	json_object_object_add(data, "resident", json_object_new_uint64(res_pages * PAGE));
	json_object_object_add(data, "charged", json_object_new_uint64(a->charged_pages * PAGE));
	json_object_object_add(data, "slack", json_object_new_uint64(a->slack_pages * PAGE));
	vmcg_daemon_emit(s->vm->d, VMCG_EV_HOOKS_AUDIT, data);
	s->audit_flagged = TRUE;
}

/* What a read means: the calibration, the guest's resident RAM, the charge. */
static void update_state(VmcgSampling *s, uint64_t now);

/*
 * A read failed: back off (vmcg_sampling_backoff_usec()) and say so once
 * per episode, at warning level; the episode ends at the next success.
 */
static void read_failed(VmcgSampling *s, const GError *error, uint64_t now)
{
	s->failures = MIN(s->failures + 1, 1000u);
	s->next_usec = now + vmcg_sampling_backoff_usec(s->failures);
	g_free(s->reason);
	s->reason = g_strdup(error->message);
	if (s->failures == 1)
		g_warning("VM %s: cannot measure its memory: %s; its charge is unknown, "
			  "retried after 1 s to %d s (no more warnings until a read succeeds)",
			  name_of(s), error->message,
			  (int)(VMCG_SAMPLE_BACKOFF_MAX_USEC / G_USEC_PER_SEC));
	else
		vmcg_debug("VM %s: no sample (%u in a row): %s", name_of(s), s->failures,
			   error->message);
	update_state(s, now);
}

static void finish(VmcgSampling *s, VmcgSampleReq *r, uint64_t now, const VmcgSamplingAudit *a)
{
	uint64_t guest, total;

	if (!r->ok) {
		read_failed(s, r->error, now);
		return;
	}
	if (s->failures)
		g_message("VM %s: measured again after %u failed reads", name_of(s), s->failures);
	s->failures = 0;
	s->ok_usec = MAX(now, 1);
	s->worst_case = FALSE;
	if (r->read_smaps) {
		s->cal_usec = (int64_t)now;
		/*
		 * The first full sample of a QEMU is dated back by up to a
		 * period: VMs added together (a daemon start) would otherwise
		 * want their full samples in the same tick every 10 s.
		 */
		if (s->spread) {
			s->cal_usec -= MIN(g_random_int_range(0, CALIBRATE_USEC), (int64_t)now - 1);
			s->spread = FALSE;
		}
		s->cal_guest = r->smp.guest_resident;
		s->cal_anon = r->st.rss_anon;
		guest = r->smp.guest_resident;
		total = r->smp.total_rss;
	} else {
		int64_t g =
			(int64_t)s->cal_guest + ((int64_t)r->st.rss_anon - (int64_t)s->cal_anon);

		guest = g < 0 ? 0 : MIN((uint64_t)g, r->ram_size);
		total = r->st.rss;
	}
	vmcg_sampling_apply(s, guest, total, r->read_smaps, a);
	update_state(s, now);
}

static void job_done(VmcgSampleReq *r, gpointer userdata)
{
	Job *job = userdata;
	VmcgSampling *s = job->owner;

	if (s) {
		s->job = NULL;
		/* Dropped, handed over or taken over meanwhile: the read is stale. */
		if (job->gen == s->gen) {
			/*
			 * The hooks' charge as it is now, not as it was when the
			 * read was asked for: the hooks charge a page before
			 * QEMU populates it, so the charge now is at least what
			 * was resident when /proc was read, and pages touched in
			 * between are no false strike.
			 */
			if (job->hooked && s->vm->hooks) {
				job->audit.charged_pages = vmcg_hooks_conn_charged(s->vm->hooks);
				job->audit.slack_pages = vmcg_hooks_conn_slack(s->vm->hooks);
			}
			finish(s, r, job->now, job->hooked ? &job->audit : NULL);
		}
	}
	g_clear_error(&r->error);
	g_free(job);
	if (--nr_in_flight == 0 && drained_fn)
		drained_fn(drained_data);
}

void vmcg_sampling_tick(VmcgSampling *s, pid_t pid, uint64_t ram_bytes, uint64_t now,
			const VmcgSamplingAudit *a)
{
	VmcgSampleReq req = {
		.pid = pid,
		.ram_size = ram_bytes,
		.full = !s->cal_usec || now - (uint64_t)s->cal_usec >= CALIBRATE_USEC,
		.cal_anon = s->cal_anon,
		.drift_bytes = CALIBRATE_DRIFT,
	};
	Job *job;

	if (!pid || !ram_bytes)
		return;
	s->ram_pages = pages_of(ram_bytes);
	update_state(s, now);
	/* At most one read in flight per VM: a VM whose last read is late skips a tick. */
	if (s->job)
		return;
	/* Failing: not before the backoff is up (read_failed()). */
	if (s->failures && now < s->next_usec)
		return;
	if (!threaded) {
		(void)vmcg_sample_req_read(&req);
		finish(s, &req, now, a);
		g_clear_error(&req.error);
		return;
	}
	if (!sampler)
		sampler = vmcg_sampler_new(SAMPLER_THREADS);
	job = g_new0(Job, 1);
	job->req = req;
	job->owner = s;
	job->gen = s->gen;
	job->now = now;
	job->hooked = a != NULL;
	if (a)
		job->audit = *a;
	s->job = job;
	nr_in_flight++;
	if (batch) {
		job->req.done = job_done;
		job->req.userdata = job;
		g_ptr_array_add(batch, &job->req);
		return;
	}
	vmcg_sampler_submit(sampler, &job->req, job_done, job);
}

void vmcg_sampling_batch_begin(void)
{
	if (!batch)
		batch = g_ptr_array_new();
}

void vmcg_sampling_batch_end(void)
{
	g_autoptr(GPtrArray) b = g_steal_pointer(&batch);

	/* Jobs are only added once the sampler exists (vmcg_sampling_tick()). */
	if (b && b->len)
		vmcg_sampler_submit_batch(sampler, (VmcgSampleReq **)b->pdata, b->len);
}

/* Charge or uncharge the difference to @pages: what sampling charged is then @pages. */
static void charge_to(VmcgSampling *s, uint64_t pages)
{
	uint64_t charged_pages = pages_of(s->charged);

	if (pages > charged_pages)
		vmcg_vm_charge(s->vm->vm, pages - charged_pages);
	else if (pages < charged_pages)
		(void)vmcg_vm_uncharge(s->vm->vm, charged_pages - pages);
	s->charged = pages * PAGE;
}

static void emit_state(VmcgSampling *s, const char *type, const char *why, uint64_t now)
{
	g_autoptr(json_object) data = json_object_new_object();

	json_object_object_add(data, "vm", json_object_new_string(name_of(s)));
	if (g_str_equal(type, VMCG_EV_CHARGE_UNKNOWN)) {
		json_object_object_add(data, "reason", json_object_new_string(why));
		json_object_object_add(data, "failures", json_object_new_int64(s->failures));
	} else {
		json_object_object_add(data, "why", json_object_new_string(why));
		json_object_object_add(data, "unknown-usec",
				       json_object_new_int64((int64_t)(now - s->unknown_usec)));
	}
	vmcg_daemon_emit(s->vm->d, type, data);
}

/* The state ends (a read succeeded, or the QEMU is gone or hooked): @why. */
static void set_state(VmcgSampling *s, VmcgChargeState state, const char *why, uint64_t now)
{
	g_autofree char *stale = NULL;

	if (state == s->state)
		return;
	if (state == VMCG_CHARGE_UNKNOWN) {
		s->unknown_usec = now;
		if (!s->failures)
			why = stale = g_strdup_printf("no sample for %" G_GUINT64_FORMAT
						      " s (reads do not come back)",
						      (now - s->ok_usec) / G_USEC_PER_SEC);
		emit_state(s, VMCG_EV_CHARGE_UNKNOWN, why, now);
		if (stale) {
			g_warning("VM %s: %s; its charge is unknown", name_of(s), stale);
			g_free(s->reason);
			s->reason = g_steal_pointer(&stale);
		}
	} else if (s->state == VMCG_CHARGE_UNKNOWN) {
		emit_state(s, VMCG_EV_CHARGE_KNOWN, why, now);
	}
	s->state = state;
}

/*
 * Whether the charge is known now, and what an unknown one is charged
 * (vmcg_sampling_unknown_charge()); on the main thread, at each tick and
 * each read that comes back.
 */
static void update_state(VmcgSampling *s, uint64_t now)
{
	VmcgChargeState st = s->charging ? vmcg_sampling_charge_state(s->ok_usec, s->failures, now)
					 : VMCG_CHARGE_KNOWN;
	uint64_t pages, grace;

	set_state(s, st, s->charging ? "measured" : "hooks", now);
	if (st != VMCG_CHARGE_UNKNOWN || !s->charging)
		return;
	grace = s->vm->d->policy.unknown_charge_grace_usec;
	pages = vmcg_sampling_unknown_charge(pages_of(s->charged), s->ram_pages,
					     now - s->unknown_usec, grace);
	if (pages == pages_of(s->charged))
		return;
	if (!s->worst_case)
		g_warning(
			"VM %s: charge unknown for %d s: charged its whole RAM (%" G_GUINT64_FORMAT
			" MiB) until a read succeeds",
			name_of(s), (int)(grace / G_USEC_PER_SEC), pages * PAGE >> 20);
	s->worst_case = TRUE;
	charge_to(s, pages);
}

/* The QEMU measured so far is gone or no longer sampling's: a new episode. */
static void forget_state(VmcgSampling *s, const char *why)
{
	uint64_t now = vmcg_daemon_now_usec(s->vm->d);

	set_state(s, VMCG_CHARGE_PENDING, why, now);
	s->ok_usec = 0;
	s->failures = 0;
	s->next_usec = 0;
	s->worst_case = FALSE;
	g_clear_pointer(&s->reason, g_free);
}

const char *vmcg_charge_state_to_string(VmcgChargeState state)
{
	static const char *const names[] = { "pending", "known", "unknown" };

	return (unsigned)state < G_N_ELEMENTS(names) ? names[state] : "unknown";
}

uint64_t vmcg_sampling_backoff_usec(unsigned failures)
{
	uint64_t t = VMCG_SAMPLE_BACKOFF_MIN_USEC;

	if (!failures)
		return 0;
	for (unsigned i = 1; i < failures && t < VMCG_SAMPLE_BACKOFF_MAX_USEC; i++)
		t *= 2;
	return MIN(t, (uint64_t)VMCG_SAMPLE_BACKOFF_MAX_USEC);
}

VmcgChargeState vmcg_sampling_charge_state(uint64_t ok_usec, unsigned failures, uint64_t now_usec)
{
	if (failures)
		return VMCG_CHARGE_UNKNOWN;
	if (!ok_usec)
		return VMCG_CHARGE_PENDING;
	if (now_usec > ok_usec && now_usec - ok_usec > VMCG_SAMPLE_STALE_USEC)
		return VMCG_CHARGE_UNKNOWN;
	return VMCG_CHARGE_KNOWN;
}

uint64_t vmcg_sampling_unknown_charge(uint64_t charged_pages, uint64_t ram_pages,
				      uint64_t unknown_usec, uint64_t grace_usec)
{
	if (unknown_usec < grace_usec)
		return charged_pages;
	return MAX(charged_pages, ram_pages);
}

void vmcg_sampling_charge_info(const VmcgSampling *s, uint64_t now_usec, VmcgChargeInfo *ret)
{
	gboolean unknown = s->state == VMCG_CHARGE_UNKNOWN;

	*ret = (VmcgChargeInfo){
		.state = s->state,
		.reason = unknown ? s->reason : NULL,
		.unknown_usec = unknown ? (int64_t)(now_usec - s->unknown_usec) : -1,
		.failures = s->failures,
		.worst_case = unknown && s->worst_case,
		.sample_age_usec = s->ok_usec ? (int64_t)(now_usec - s->ok_usec) : -1,
	};
}

void vmcg_sampling_apply(VmcgSampling *s, uint64_t guest, uint64_t total, gboolean full,
			 const VmcgSamplingAudit *a)
{
	uint64_t res_pages;

	res_pages = pages_of(guest);
	s->measured = TRUE;
	s->resident = guest;
	s->overhead = total > guest ? total - guest : 0;
	vmcg_vm_set_overhead(s->vm->vm, pages_of(s->overhead));
	if (a) {
		audit(s, res_pages, full, a);
		return;
	}
	if (!s->charging)
		return;
	charge_to(s, res_pages);
}

void vmcg_sampling_drop(VmcgSampling *s)
{
	s->gen++; /* a read in flight measured the QEMU that is gone */
	if (s->charged)
		(void)vmcg_vm_uncharge(s->vm->vm, s->charged / PAGE);
	s->charged = 0;
	s->resident = 0;
	s->overhead = 0;
	s->cal_usec = 0; /* a new QEMU is measured in full first */
	s->spread = TRUE;
	s->measured = FALSE;
	vmcg_vm_set_overhead(s->vm->vm, 0);
	forget_state(s, "gone");
}

void vmcg_sampling_hand_over(VmcgSampling *s)
{
	s->gen++; /* a read in flight was asked for to charge */
	if (s->charged)
		(void)vmcg_vm_uncharge(s->vm->vm, s->charged / PAGE);
	s->charged = 0;
	s->charging = FALSE;
	/* The hooks count every page: known, whatever sampling could read. */
	set_state(s, VMCG_CHARGE_KNOWN, "hooks", vmcg_daemon_now_usec(s->vm->d));
}

void vmcg_sampling_take_over(VmcgSampling *s)
{
	s->gen++; /* a read in flight was asked for to audit */
	s->charging = TRUE;
	s->audit_flagged = FALSE;
	s->audit_strikes = 0;
	s->cal_usec = 0; /* measure in full first */
	forget_state(s, "detached");
}

gboolean vmcg_sampling_measured(const VmcgSampling *s)
{
	return s->measured;
}

uint64_t vmcg_sampling_resident(const VmcgSampling *s)
{
	return s->resident;
}

uint64_t vmcg_sampling_overhead(const VmcgSampling *s)
{
	return s->overhead;
}

uint64_t vmcg_sampling_charged(const VmcgSampling *s)
{
	return s->charged;
}

gboolean vmcg_sampling_audit_flagged(const VmcgSampling *s)
{
	return s->audit_flagged;
}
