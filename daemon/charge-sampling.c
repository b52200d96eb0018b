// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The sampling charge source (charge.h): each tick, measure the guest RAM
 * resident in a QEMU process and charge or uncharge the difference; in
 * hook mode, audit the hooks' charge against it instead.
 *
 * Owns: what sampling charged, the last sample (resident, overhead), the
 * calibration of cheap samples against full ones, and the audit state.
 * /proc is read by sampler.c; this file decides what a sample means.
 */
#include <gio/gio.h>

#include "charge.h"
#include "daemon-private.h"
#include "sampler.h"

#define PAGE VMCG_PAGE_SIZE

struct VmcgSampling {
	VmcgDvm *vm;
	gboolean charging;  /* the VM's charge source (FALSE in hook mode) */
	uint64_t charged;   /* bytes charged by sampling */
	uint64_t resident;  /* last sample */
	uint64_t overhead;  /* the rest of the process's RSS */
	int64_t cal_usec;   /* last full (smaps) sample, 0 = none */
	uint64_t cal_guest; /* guest resident then */
	uint64_t cal_anon;  /* RssAnon then */
	gboolean audit_flagged;
	unsigned audit_strikes; /* full samples in a row over the hooks' charge */
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

VmcgSampling *vmcg_sampling_new(VmcgDvm *vm)
{
	VmcgSampling *s = g_new0(VmcgSampling, 1);

	s->vm = vm;
	s->charging = TRUE;
	return s;
}

void vmcg_sampling_free(VmcgSampling *s)
{
	if (!s)
		return;
	g_warn_if_fail(s->charged == 0);
	g_free(s);
}

static const char *name_of(const VmcgSampling *s)
{
	return vmcg_vm_name(s->vm->vm);
}

static gboolean full_sample(VmcgSampling *s, pid_t pid, uint64_t ram_bytes, uint64_t now,
			    uint64_t *ret_guest, uint64_t *ret_total)
{
	g_autoptr(GError) error = NULL;
	VmcgStatusSample st;
	VmcgSample smp;

	if (!vmcg_sample_read(pid, ram_bytes, &smp, &error) ||
	    !vmcg_status_read(pid, &st, &error)) {
		g_debug("VM %s: no sample: %s", name_of(s), error->message);
		return FALSE;
	}
	s->cal_usec = (int64_t)now;
	s->cal_guest = smp.guest_resident;
	s->cal_anon = st.rss_anon;
	*ret_guest = smp.guest_resident;
	*ret_total = smp.total_rss;
	return TRUE;
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

void vmcg_sampling_tick(VmcgSampling *s, pid_t pid, uint64_t ram_bytes, uint64_t now,
			const VmcgSamplingAudit *a)
{
	g_autoptr(GError) error = NULL;
	uint64_t guest, total;
	VmcgStatusSample st;
	gboolean full = TRUE;

	if (!pid || !ram_bytes)
		return;
	if (!s->cal_usec || now - (uint64_t)s->cal_usec >= CALIBRATE_USEC) {
		if (!full_sample(s, pid, ram_bytes, now, &guest, &total))
			return;
	} else if (!vmcg_status_read(pid, &st, &error)) {
		g_debug("VM %s: no sample: %s", name_of(s), error->message);
		return;
	} else if (st.rss_anon > s->cal_anon + CALIBRATE_DRIFT ||
		   st.rss_anon + CALIBRATE_DRIFT < s->cal_anon) {
		if (!full_sample(s, pid, ram_bytes, now, &guest, &total))
			return;
	} else {
		int64_t g = (int64_t)s->cal_guest + ((int64_t)st.rss_anon - (int64_t)s->cal_anon);

		guest = g < 0 ? 0 : MIN((uint64_t)g, ram_bytes);
		total = st.rss;
		full = FALSE;
	}
	vmcg_sampling_apply(s, guest, total, full, a);
}

void vmcg_sampling_apply(VmcgSampling *s, uint64_t guest, uint64_t total, gboolean full,
			 const VmcgSamplingAudit *a)
{
	uint64_t res_pages, charged_pages;

	res_pages = pages_of(guest);
	s->resident = guest;
	s->overhead = total > guest ? total - guest : 0;
	vmcg_vm_set_overhead(s->vm->vm, pages_of(s->overhead));
	if (a) {
		audit(s, res_pages, full, a);
		return;
	}
	if (!s->charging)
		return;
	charged_pages = pages_of(s->charged);
	if (res_pages > charged_pages)
		vmcg_vm_charge(s->vm->vm, res_pages - charged_pages);
	else if (res_pages < charged_pages)
		(void)vmcg_vm_uncharge(s->vm->vm, charged_pages - res_pages);
	s->charged = res_pages * PAGE;
}

void vmcg_sampling_drop(VmcgSampling *s)
{
	if (s->charged)
		(void)vmcg_vm_uncharge(s->vm->vm, s->charged / PAGE);
	s->charged = 0;
	s->resident = 0;
	s->overhead = 0;
	s->cal_usec = 0; /* a new QEMU is measured in full first */
	vmcg_vm_set_overhead(s->vm->vm, 0);
}

void vmcg_sampling_hand_over(VmcgSampling *s)
{
	if (s->charged)
		(void)vmcg_vm_uncharge(s->vm->vm, s->charged / PAGE);
	s->charged = 0;
	s->charging = FALSE;
}

void vmcg_sampling_take_over(VmcgSampling *s)
{
	s->charging = TRUE;
	s->audit_flagged = FALSE;
	s->audit_strikes = 0;
	s->cal_usec = 0; /* measure in full first */
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
