// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A VM as vmcgd manages it (VmcgDvm): its backend, its charge sources, its
 * state, its balloon and the guest's statistics.
 *
 * Owns: the VM's state (connecting, ready, paused, gone), its RAM size and
 * pid as the backend reported them, the balloon (target asked, actual,
 * progress, stuck), the guest statistics, the configured floor, and the
 * VM's backstop cgroup. Backends report here (backend.h); the control
 * loop reads VmcgDvm and calls vmcg_dvm_set_target() and
 * vmcg_dvm_oom_act(); nobody else writes these fields.
 */
#include <gio/gio.h>
#include <string.h>

#include "backend.h"
#include "charge.h"
#include "daemon-private.h"
#include "log.h"
#include "policy.h"

#define PAGE VMCG_PAGE_SIZE

static const char *const state_names[] = { "connecting", "ready", "paused", "gone" };

const char *vmcg_dvm_name(const VmcgDvm *vm)
{
	return vmcg_vm_name(vm->vm);
}

uint64_t vmcg_dvm_balloon_target(const VmcgDvm *vm)
{
	return vm->target;
}

uint64_t vmcg_dvm_ram_bytes(const VmcgDvm *vm)
{
	return vm->ram_size;
}

VmcgDaemon *vmcg_dvm_daemon(const VmcgDvm *vm)
{
	return vm->d;
}

uint64_t vmcg_dvm_resident(const VmcgDvm *vm)
{
	return vmcg_sampling_resident(vm->sampling);
}

static void set_state(VmcgDvm *vm, VmcgDvmState state)
{
	if (vm->state == state)
		return;
	g_info("VM %s: %s -> %s", vmcg_dvm_name(vm), state_names[vm->state], state_names[state]);
	vm->state = state;
}

VmcgDvm *vmcg_dvm_new(VmcgDaemon *d, VmcgVm *evm, const VmcgBackendOps *ops, const char *address)
{
	VmcgDvm *vm = g_new0(VmcgDvm, 1);

	vm->d = d;
	vm->vm = evm;
	vm->link.data = vm;
	vm->state = VMCG_DVM_CONNECTING;
	vmcg_vm_set_userdata(evm, vm);
	vmcg_vm_set_oom_eligible(evm, FALSE);
	vm->sampling = vmcg_sampling_new(vm);
	vm->ops = ops;
	vm->backend = ops->create(vm, address);
	return vm;
}

void vmcg_dvm_free(VmcgDvm *vm)
{
	if (!vm)
		return;
	/* Close the connections first: their callbacks must not see a half-freed VM. */
	if (vm->hooks)
		vmcg_hooks_conn_close(vm->hooks);
	vm->ops->free(vm->backend);
	vm->backend = NULL;
	vmcg_channel_free(vm->channel);
	vm->channel = NULL;
	/* Forgotten, maybe still running: back to the hierarchy's root. */
	vmcg_dvm_backstop_release(vm);
	vmcg_sampling_drop(vm->sampling);
	vmcg_sampling_free(vm->sampling);
	if (vm->d->poll_next == &vm->link)
		vm->d->poll_next = vm->link.next;
	g_queue_unlink(&vm->d->vms, &vm->link);
	g_hash_table_remove(vm->d->vm_names, vmcg_dvm_name(vm));
	vmcg_vm_free(vm->vm);
	g_free(vm);
}

void vmcg_dvm_connect(VmcgDvm *vm)
{
	vm->connected = TRUE;
	vm->ops->connect(vm->backend);
	if (vm->channel)
		vmcg_channel_start(vm->channel);
}

/* ---- the guest pressure channel (channel.h) ---- */

static uint32_t channel_interval_ms(const VmcgDvm *vm)
{
	return (uint32_t)(vm->d->policy.channel_report_interval_usec / 1000);
}

void vmcg_dvm_set_channel(VmcgDvm *vm, const char *path)
{
	if (vm->channel && path && strcmp(vmcg_channel_path(vm->channel), path) == 0)
		return;
	if (vm->channel) {
		g_info("VM %s: channel %s closed", vmcg_dvm_name(vm),
		       vmcg_channel_path(vm->channel));
		vmcg_channel_free(vm->channel);
		vm->channel = NULL;
	}
	vm->has_report = FALSE;
	if (!path)
		return;
	vm->channel = vmcg_channel_new(vm, path, channel_interval_ms(vm));
	if (vm->connected)
		vmcg_channel_start(vm->channel);
}

void vmcg_dvm_channel_pressure(VmcgDvm *vm, VmcgVmpressureLevel level, uint64_t reclaim_bytes,
			       uint64_t reclaim_within_ms)
{
	if (!vm->channel)
		return;
	/* The rate follows the setting (a reload may change it): a config message then. */
	vmcg_channel_set_interval(vm->channel, channel_interval_ms(vm));
	vmcg_channel_set_pressure(vm->channel, level, vmcg_group_path(vmcg_vm_group(vm->vm)),
				  reclaim_bytes, reclaim_within_ms);
}

void vmcg_dvm_channel_report(VmcgDvm *vm, const VmcgChannelReport *r)
{
	vm->report = *r;
	vm->report_usec = (int64_t)vmcg_daemon_now_usec(vm->d);
	vm->report_resident = vmcg_dvm_resident(vm);
	vm->report_actual = vm->actual;
	vm->has_report = TRUE;
}

void vmcg_dvm_channel_state(VmcgDvm *vm, VmcgChannelState state, const char *why)
{
	static const char *const events[] = {
		[VMCG_CHANNEL_DISCONNECTED] = VMCG_EV_CHANNEL_DISCONNECTED,
		[VMCG_CHANNEL_CONNECTED] = VMCG_EV_CHANNEL_CONNECTED,
		[VMCG_CHANNEL_STATE_MUTED] = VMCG_EV_CHANNEL_MUTED,
	};
	g_autoptr(json_object) data = json_object_new_object();

	if (state == VMCG_CHANNEL_CONNECTED)
		g_info("VM %s: channel %s up", vmcg_dvm_name(vm), vmcg_channel_path(vm->channel));
	/* Its reports stop with it: the policy goes back to the balloon's statistics. */
	if (state == VMCG_CHANNEL_DISCONNECTED)
		vm->has_report = FALSE;
	json_object_object_add(data, "vm", json_object_new_string(vmcg_dvm_name(vm)));
	json_object_object_add(data, "channel",
			       json_object_new_string(vmcg_channel_path(vm->channel)));
	if (why)
		json_object_object_add(data, "reason", json_object_new_string(why));
	vmcg_daemon_emit(vm->d, events[state], data);
}

/* ---- reports from the backend ---- */

void vmcg_dvm_backend_ready(VmcgDvm *vm, pid_t pid)
{
	vm->pid = pid;
	/*
	 * Unknown until this QEMU says (vmcg_dvm_backend_ram()): a restarted
	 * QEMU may have another size, and a hooks HELLO is bounded by it.
	 */
	vm->ram_size = 0;
	if (vm->hooks && vm->pid && vmcg_hooks_conn_pid(vm->hooks) != vm->pid) {
		/* Another process attached under this VM's name. */
		g_warning("VM %s: its hooks connection is pid %d, its QMP socket pid "
			  "%d: dropping the hooks connection",
			  vmcg_dvm_name(vm), (int)vmcg_hooks_conn_pid(vm->hooks), (int)vm->pid);
		vmcg_hooks_conn_close(vm->hooks);
	}
	set_state(vm, VMCG_DVM_READY);
	vmcg_vm_set_oom_eligible(vm->vm, TRUE);
	/* Adopt the balloon as it is: a restarted daemon moves nothing. */
	vm->adopted_usec = (int64_t)vmcg_daemon_now_usec(vm->d);
	vm->target = 0;
	vm->target_unsent = FALSE;
	vm->actual = 0;
	vm->stuck = FALSE;
	vm->external_hold = FALSE;
}

void vmcg_dvm_backend_no_balloon(VmcgDvm *vm, const char *reason)
{
	vm->no_balloon = reason;
	if (reason) {
		vm->target = 0;
		vm->target_unsent = FALSE;
		vm->stuck = FALSE;
	}
}

void vmcg_dvm_backend_balloon_external(VmcgDvm *vm)
{
	g_message("VM %s: its balloon was moved to %" G_GUINT64_FORMAT
		  " MiB by someone else; left there until its group needs reclaim",
		  vmcg_dvm_name(vm), vm->actual >> 20);
	vm->target = 0;
	vm->target_unsent = FALSE;
	vm->stuck = FALSE;
	vm->external_hold = TRUE;
}

void vmcg_dvm_backend_ram(VmcgDvm *vm, uint64_t ram_bytes)
{
	vm->ram_size = ram_bytes;
}

void vmcg_dvm_backend_gone(VmcgDvm *vm, const char *why)
{
	/* The backend warns, rate-limited per peer (backend.h); this is the record. */
	if (vm->state != VMCG_DVM_GONE)
		g_info("VM %s: connection lost: %s; its charge leaves the tree", vmcg_dvm_name(vm),
		       why);
	/* Whatever was charged for this VM leaves the tree: QEMU is gone. */
	vmcg_sampling_drop(vm->sampling);
	/* QEMU is gone: its now empty backstop cgroup goes too. */
	vmcg_dvm_backstop_release(vm);
	vm->pid = 0;
	vm->has_stats = FALSE;
	set_state(vm, VMCG_DVM_GONE);
	vmcg_vm_set_oom_eligible(vm->vm, FALSE);
}

void vmcg_dvm_backend_balloon(VmcgDvm *vm, uint64_t actual_bytes)
{
	vm->actual = actual_bytes;
}

void vmcg_dvm_backend_stats(VmcgDvm *vm, const VmcgGuestStats *st)
{
	/* Stats are read against the resident RAM then: none before the first (async) sample. */
	if (!vmcg_sampling_measured(vm->sampling))
		return;
	vm->st_total = st->total;
	vm->st_available = st->available;
	vm->st_free = st->free;
	vm->st_cache = st->cache;
	vm->stats_usec = (int64_t)vmcg_daemon_now_usec(vm->d);
	vm->stats_resident = vmcg_dvm_resident(vm);
	vm->stats_actual = vm->actual;
	vm->has_stats = TRUE;
	vmcg_vm_set_stat(vm->vm, VMCG_STAT_GUEST_FREE, vm->st_free / PAGE);
	vmcg_vm_set_stat(vm->vm, VMCG_STAT_GUEST_CACHE, vm->st_cache / PAGE);
}

void vmcg_dvm_backend_paused(VmcgDvm *vm)
{
	if (vm->state == VMCG_DVM_READY)
		set_state(vm, VMCG_DVM_PAUSED);
}

void vmcg_dvm_backend_resumed(VmcgDvm *vm)
{
	if (vm->state != VMCG_DVM_PAUSED)
		return;
	set_state(vm, VMCG_DVM_READY);
	vmcg_vm_set_oom_eligible(vm->vm, TRUE);
}

/* ---- the control loop's calls ---- */

void vmcg_dvm_sample(VmcgDvm *vm, uint64_t now)
{
	VmcgSamplingAudit a;

	if (vm->state != VMCG_DVM_READY && vm->state != VMCG_DVM_PAUSED)
		return;
	if (vm->hooks) {
		a.charged_pages = vmcg_hooks_conn_charged(vm->hooks);
		a.slack_pages = vmcg_hooks_conn_slack(vm->hooks);
	}
	vmcg_sampling_tick(vm->sampling, vm->pid, vm->ram_size, now, vm->hooks ? &a : NULL);
}

void vmcg_dvm_set_target(VmcgDvm *vm, uint64_t bytes)
{
	/* Never 0 (QEMU refuses it, and it would mean "take everything"). */
	bytes = MAX(bytes, vm->d->policy.min_guest);
	bytes &= ~(uint64_t)(PAGE - 1);
	if (vm->ram_size)
		bytes = MIN(bytes, vm->ram_size);
	vm->external_hold = FALSE;
	if (bytes == vm->target)
		return;
	vmcg_debug("VM %s: balloon target %" G_GUINT64_FORMAT " MiB (actual %" G_GUINT64_FORMAT
		   " MiB)",
		   vmcg_dvm_name(vm), bytes >> 20, vm->actual >> 20);
	if (!vm->target || bytes < vm->target) {
		vm->progress_usec = (int64_t)vmcg_daemon_now_usec(vm->d);
		vm->progress_actual = vm->actual;
	}
	vm->target = bytes;
	vm->target_unsent = TRUE;
}

void vmcg_dvm_send_target(VmcgDvm *vm)
{
	if (!vm->target_unsent)
		return;
	vm->target_unsent = FALSE;
	vm->ops->set_balloon(vm->backend, vm->target);
}

bool vmcg_dvm_balloon_moving(const VmcgDvm *vm)
{
	return vm->state == VMCG_DVM_READY && vm->target && vm->actual != vm->target &&
	       !vm->stuck && !vm->no_balloon;
}

static void balloon_stuck(VmcgDvm *vm, uint64_t now)
{
	g_autoptr(json_object) data = json_object_new_object();
	VmcgGroup *g = vmcg_vm_group(vm->vm);

	g_warning("VM %s: balloon stuck at %" G_GUINT64_FORMAT " MiB, target %" G_GUINT64_FORMAT
		  " MiB",
		  vmcg_dvm_name(vm), vm->actual >> 20, vm->target >> 20);
	json_object_object_add(data, "vm", json_object_new_string(vmcg_dvm_name(vm)));
	json_object_object_add(data, "group", json_object_new_string(vmcg_group_path(g)));
	json_object_object_add(data, "target", json_object_new_uint64(vm->target));
	json_object_object_add(data, "actual", json_object_new_uint64(vm->actual));
	vmcg_daemon_emit(vm->d, VMCG_EV_BALLOON_STUCK, data);
	/* Escalate: reclaim cannot make progress here, as vmpressure_prio() says. */
	(void)vmcg_vmpressure_prio(vmcg_group_vmpressure(g), now, 0);
}

void vmcg_dvm_poll(VmcgDvm *vm, uint64_t now)
{
	const VmcgPolicy *p = &vm->d->policy;

	if (vm->state != VMCG_DVM_READY)
		return;
	vmcg_vm_set_stat(
		vm->vm, VMCG_STAT_BALLOONED,
		vm->actual && vm->ram_size > vm->actual ? (vm->ram_size - vm->actual) / PAGE : 0);

	if (vm->no_balloon)
		return;
	/* A balloon that does not follow its target: vmcg_policy_balloon_progress(). */
	VmcgPolicyBalloon b = { (uint64_t)vm->progress_usec, vm->progress_actual, vm->stuck };

	if (vmcg_policy_balloon_progress(p, vm->ram_size, vm->target, vm->actual, now, &b) ==
	    VMCG_BALLOON_STUCK_NOW)
		balloon_stuck(vm, now);
	vm->progress_usec = (int64_t)b.progress_usec;
	vm->progress_actual = b.progress_actual_bytes;
	vm->stuck = b.stuck;
}

void vmcg_dvm_poll_backend(VmcgDvm *vm, uint64_t now)
{
	vmcg_dvm_send_target(vm);
	if (vm->state == VMCG_DVM_READY)
		vm->ops->poll(vm->backend, now);
}

void vmcg_dvm_oom_act(VmcgDvm *vm, VmcgOomAction action)
{
	switch (action) {
	case VMCG_OOM_NOTIFY:
		break;
	case VMCG_OOM_PAUSE:
		/* Shown as paused once the backend has stopped it, not when asked. */
		vm->ops->pause(vm->backend);
		vmcg_vm_set_oom_eligible(vm->vm, FALSE);
		break;
	case VMCG_OOM_DESTROY:
		vm->ops->destroy(vm->backend);
		vmcg_vm_set_oom_eligible(vm->vm, FALSE);
		break;
	default:
		break;
	}
}

/* ---- hook mode: the charge handover ---- */

void vmcg_dvm_hooks_attach(VmcgDvm *vm, VmcgHooksConn *c, uint64_t populated_pages)
{
	/* Attach: sampling's charge is replaced by the hooks' own count. */
	vmcg_sampling_hand_over(vm->sampling);
	vmcg_vm_charge(vm->vm, populated_pages);
	vm->hooks = c;
}

void vmcg_dvm_hooks_detach(VmcgDvm *vm)
{
	vm->hooks = NULL;
	vm->tick_stall_usec = 0;
	vmcg_vm_set_external_stock(vm->vm, 0);
	vmcg_sampling_take_over(vm->sampling);
}

/* ---- backstop ---- */

/*
 * The backstop limit: the tightest memory.max above the VM plus the
 * allowance for VMM overhead; unlimited if no ancestor has a max.
 */
void vmcg_dvm_backstop_sync(VmcgDvm *vm)
{
	VmcgDaemon *d = vm->d;
	g_autoptr(GError) error = NULL;
	uint64_t max = VMCG_PAGES_MAX, limit;

	if (!d->backstop || !vm->pid)
		return;
	for (VmcgGroup *g = vmcg_vm_group(vm->vm); g; g = vmcg_group_parent(g))
		max = MIN(max, vmcg_group_max_effective(g));
	limit = max >= VMCG_PAGES_MAX ? UINT64_MAX : max * PAGE + d->backstop_overhead;
	if (vm->backstop_pid == vm->pid && vm->backstop_limit == limit)
		return;
	if (!vmcg_backstop_apply(d->backstop, vmcg_dvm_name(vm), vm->pid, limit, &error)) {
		g_warning("VM %s: backstop: %s", vmcg_dvm_name(vm), error->message);
		/* Do not retry every tick: next when the limit or the process changes. */
	}
	vm->backstop_pid = vm->pid;
	vm->backstop_limit = limit;
}

void vmcg_dvm_backstop_release(VmcgDvm *vm)
{
	if (vm->d->backstop && vm->backstop_pid)
		vmcg_backstop_release(vm->d->backstop, vmcg_dvm_name(vm), vm->pid);
	vm->backstop_pid = 0;
	vm->backstop_limit = 0;
}

/* ---- read-outs ---- */

void vmcg_dvm_info(VmcgDvm *vm, VmcgDvmInfo *ret)
{
	int64_t now = (int64_t)vmcg_daemon_now_usec(vm->d);
	VmcgBackendInfo b = { 0 };
	VmcgChargeInfo c;

	vm->ops->describe(vm->backend, &b);
	vmcg_sampling_charge_info(vm->sampling, (uint64_t)now, &c);
	*ret = (VmcgDvmInfo){
		.name = vmcg_dvm_name(vm),
		.backend = vm->ops->name,
		.address = b.address,
		.qmp = b.qmp,
		.domain = b.domain,
		.uuid = b.uuid,
		.managed = vm->managed,
		.no_balloon = vm->no_balloon,
		.migrating = b.migrating,
		.external_hold = vm->external_hold,
		.problems = b.problems,
		.fallback = b.fallback,
		.group = vmcg_group_path(vmcg_vm_group(vm->vm)),
		.mode = "sampling",
		.state = state_names[vm->state],
		.current = vmcg_vm_current(vm->vm) * PAGE,
		.ram = vm->ram_size,
		.resident = vmcg_sampling_resident(vm->sampling),
		.overhead = vmcg_sampling_overhead(vm->sampling),
		.floor = vm->floor,
		.oom_priority = vmcg_vm_oom_priority(vm->vm),
		.balloon_target = vm->target ? vm->target : vm->actual,
		.balloon_actual = vm->actual,
		.has_stats = vm->has_stats,
		.stats_age_usec = vm->has_stats ? now - vm->stats_usec : -1,
		.stat_total = vm->st_total,
		.stat_free = vm->st_free,
		.stat_available = vm->st_available,
		.stat_cache = vm->st_cache,
		.pid = vm->pid,
		.charge_state = vmcg_charge_state_to_string(c.state),
		.charge_reason = c.reason,
		.charge_unknown_usec = c.unknown_usec,
		.charge_failures = c.failures,
		.charge_worst_case = c.worst_case,
		.sample_age_usec = c.sample_age_usec,
	};
	if (vm->channel) {
		VmcgChannelInfo ci;

		vmcg_channel_info(vm->channel, &ci);
		ret->channel_path = vmcg_channel_path(vm->channel);
		ret->channel_state = vmcg_channel_state_to_string(ci.state);
		ret->channel_version = ci.version;
		ret->channel_agent = ci.agent;
		ret->channel_dropped = ci.dropped;
	}
	if (vm->channel && vm->has_report) {
		ret->has_report = true;
		ret->report_age_usec = now - vm->report_usec;
		ret->report = vm->report;
	}
	if (vm->hooks) {
		vmcg_hooks_conn_info(vm->hooks, &ret->hooks);
		ret->mode = "hooks";
		ret->hooked = true;
		ret->hook_audit_flagged = vmcg_sampling_audit_flagged(vm->sampling);
		if (!ret->pid)
			ret->pid = ret->hooks.pid;
	}
}
