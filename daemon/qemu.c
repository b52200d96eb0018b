// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The QEMU side of a VM: QMP connection, RAM size, balloon target and
 * actual size, guest statistics, OOM actions. Everything QEMU tells us is
 * untrusted: values are range-checked and a VM that answers nonsense is
 * treated as one that does not answer.
 */
#include <gio/gio.h>
#include <string.h>

#include "daemon-private.h"
#include "sampler.h"

#define PAGE VMCG_PAGE_SIZE

static void set_state(VmcgDvm *vm, VmcgDvmState state)
{
	static const char *const names[] = { "connecting", "ready", "paused", "gone" };

	if (vm->state == state)
		return;
	g_info("VM %s: %s -> %s", vmcg_vm_name(vm->vm), names[vm->state], names[state]);
	vm->state = state;
}

/* Whatever was charged for this VM leaves the tree: QEMU is gone. */
static void drop_charge(VmcgDvm *vm)
{
	if (vm->charged)
		(void)vmcg_vm_uncharge(vm->vm, vm->charged / PAGE);
	vm->charged = 0;
	vm->resident = 0;
	vm->overhead = 0;
	vm->cal_usec = 0; /* a new QEMU is measured in full first */
	vmcg_vm_set_overhead(vm->vm, 0);
	/* QEMU is gone: its now empty backstop cgroup goes too. */
	vmcg_control_backstop_release(vm);
	vm->pid = 0;
	vm->in_query = vm->in_stats = FALSE;
	vm->has_stats = FALSE;
}

static json_object *ret_member(json_object *ret, const char *key, json_type type)
{
	json_object *v;

	if (!ret || !json_object_is_type(ret, json_type_object) ||
	    !json_object_object_get_ex(ret, key, &v) || !json_object_is_type(v, type))
		return NULL;
	return v;
}

/* A size QEMU reports: non-negative and within the guest's RAM (or 1 TiB before we know it). */
static gboolean sane_size(VmcgDvm *vm, int64_t v)
{
	uint64_t lim = vm->ram_size ? vm->ram_size : UINT64_C(1) << 40;

	return v > 0 && (uint64_t)v <= lim;
}

static void on_balloon(VmcgQmp *qmp, json_object *ret, const GError *error, gpointer userdata)
{
	VmcgDvm *vm = userdata;
	json_object *a;

	(void)qmp;
	vm->in_query = FALSE;
	if (error) {
		g_debug("VM %s: query-balloon: %s", vmcg_vm_name(vm->vm), error->message);
		return;
	}
	a = ret_member(ret, "actual", json_type_int);
	if (a && sane_size(vm, json_object_get_int64(a)))
		vm->actual = (uint64_t)json_object_get_int64(a);
}

static void on_stats(VmcgQmp *qmp, json_object *ret, const GError *error, gpointer userdata)
{
	VmcgDvm *vm = userdata;
	json_object *stats, *lu, *v;
	int64_t total = -1, avail = -1, freem = -1, cache = -1;

	(void)qmp;
	vm->in_stats = FALSE;
	if (error) {
		g_debug("VM %s: guest-stats: %s", vmcg_vm_name(vm->vm), error->message);
		return;
	}
	stats = ret_member(ret, "stats", json_type_object);
	lu = ret_member(ret, "last-update", json_type_int);
	if (!stats || !lu)
		return;
	if (json_object_object_get_ex(stats, "stat-total-memory", &v) &&
	    json_object_is_type(v, json_type_int))
		total = json_object_get_int64(v);
	if (json_object_object_get_ex(stats, "stat-available-memory", &v) &&
	    json_object_is_type(v, json_type_int))
		avail = json_object_get_int64(v);
	if (json_object_object_get_ex(stats, "stat-free-memory", &v) &&
	    json_object_is_type(v, json_type_int))
		freem = json_object_get_int64(v);
	if (json_object_object_get_ex(stats, "stat-disk-caches", &v) &&
	    json_object_is_type(v, json_type_int))
		cache = json_object_get_int64(v);
	/*
	 * Hints only, and checked: -1 means the guest did not say; values
	 * beyond the guest's RAM or available above total are nonsense. A
	 * "last-update" that does not move means the guest stopped updating:
	 * the stats then age out (stats_max_age_usec) instead of being
	 * trusted forever.
	 */
	if (!sane_size(vm, total) || avail < 0 || avail > total || freem > total || cache > total)
		return;
	if (json_object_get_int64(lu) == vm->stats_guest_ts && vm->has_stats)
		return;
	vm->stats_guest_ts = json_object_get_int64(lu);
	vm->st_total = (uint64_t)total;
	vm->st_available = (uint64_t)avail;
	vm->st_free = freem < 0 ? 0 : (uint64_t)freem;
	vm->st_cache = cache < 0 ? 0 : (uint64_t)cache;
	vm->stats_usec = (int64_t)vmcg_daemon_now_usec(vm->d);
	vm->stats_resident = vm->resident;
	vm->stats_actual = vm->actual;
	vm->has_stats = TRUE;
	vmcg_vm_set_stat(vm->vm, VMCG_STAT_GUEST_FREE, vm->st_free / PAGE);
	vmcg_vm_set_stat(vm->vm, VMCG_STAT_GUEST_CACHE, vm->st_cache / PAGE);
}

static void on_ignore(VmcgQmp *qmp, json_object *ret, const GError *error, gpointer userdata)
{
	VmcgDvm *vm = userdata;

	(void)qmp;
	(void)ret;
	/* Cancelled: the VM is being forgotten or vmcgd is exiting. */
	if (error && !g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
		g_warning("VM %s: %s", vmcg_vm_name(vm->vm), error->message);
}

static void on_balloon_path(VmcgQmp *qmp, json_object *ret, const GError *error, gpointer userdata);

static void find_balloon(VmcgDvm *vm, const char *dir)
{
	json_object *args = json_object_new_object();

	json_object_object_add(args, "path", json_object_new_string(dir));
	vmcg_qmp_execute(vm->qmp, "qom-list", args, on_balloon_path, vm);
}

/* qom-list of /machine/peripheral(-anon): the child that is a virtio-balloon. */
static void on_balloon_path(VmcgQmp *qmp, json_object *ret, const GError *error, gpointer userdata)
{
	VmcgDvm *vm = userdata;

	(void)qmp;
	if (error || !json_object_is_type(ret, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(ret); i++) {
		json_object *e = json_object_array_get_idx(ret, i), *name, *type;
		const char *t;

		if (!json_object_is_type(e, json_type_object) ||
		    !json_object_object_get_ex(e, "name", &name) ||
		    !json_object_object_get_ex(e, "type", &type) ||
		    !json_object_is_type(name, json_type_string) ||
		    !json_object_is_type(type, json_type_string))
			continue;
		t = json_object_get_string(type);
		if (g_str_has_prefix(t, "child<virtio-balloon")) {
			json_object *args = json_object_new_object();
			/* The QOM path is that of the proxy (e.g. PCI) device's balloon child. */
			const char *base = vm->balloon_path ? NULL : json_object_get_string(name);

			if (!base)
				return;
			vm->balloon_path = g_strdup_printf(
				"/machine/peripheral%s/%s",
				g_str_has_prefix(base, "device[") ? "-anon" : "", base);
			json_object_object_add(args, "path",
					       json_object_new_string(vm->balloon_path));
			json_object_object_add(
				args, "property",
				json_object_new_string("guest-stats-polling-interval"));
			json_object_object_add(
				args, "value",
				json_object_new_int64(
					MAX(1, (int64_t)(vm->d->policy.stats_interval_usec /
							 G_USEC_PER_SEC))));
			vmcg_qmp_execute(vm->qmp, "qom-set", args, on_ignore, vm);
			vm->stats_enabled = TRUE;
			g_info("VM %s: balloon at %s, stats every %" G_GUINT64_FORMAT " s",
			       vmcg_vm_name(vm->vm), vm->balloon_path,
			       MAX(1, vm->d->policy.stats_interval_usec / G_USEC_PER_SEC));
			return;
		}
	}
}

static void on_memdev(VmcgQmp *qmp, json_object *ret, const GError *error, gpointer userdata)
{
	VmcgDvm *vm = userdata;
	uint64_t sum = 0;

	(void)qmp;
	if (error || !json_object_is_type(ret, json_type_array)) {
		g_warning("VM %s: query-memdev failed (%s): cannot find its guest RAM",
			  vmcg_vm_name(vm->vm), error ? error->message : "not an array");
		return;
	}
	/*
	 * All memdevs of the same size are counted by the sampler (NUMA
	 * nodes); a guest with unequal nodes uses the first size, which is
	 * documented as a limit of sampling mode.
	 */
	for (size_t i = 0; i < json_object_array_length(ret); i++) {
		json_object *e = json_object_array_get_idx(ret, i), *size;

		if (json_object_is_type(e, json_type_object) &&
		    json_object_object_get_ex(e, "size", &size) &&
		    json_object_is_type(size, json_type_int) && json_object_get_int64(size) > 0) {
			sum = (uint64_t)json_object_get_int64(size);
			break;
		}
	}
	if (!sum || sum > (UINT64_C(1) << 42)) {
		g_warning("VM %s: no usable memdev size", vmcg_vm_name(vm->vm));
		return;
	}
	vm->ram_size = sum;
}

static void on_qmp_event(VmcgQmp *qmp, const char *event, json_object *data, gint64 timestamp_usec,
			 gpointer userdata)
{
	VmcgDvm *vm = userdata;

	(void)qmp;
	(void)timestamp_usec;
	if (strcmp(event, "BALLOON_CHANGE") == 0) {
		json_object *a = ret_member(data, "actual", json_type_int);

		if (a && sane_size(vm, json_object_get_int64(a)))
			vm->actual = (uint64_t)json_object_get_int64(a);
	} else if (strcmp(event, "STOP") == 0 && vm->state == VMCG_DVM_READY) {
		/* Paused by someone: still charged, still measured. */
	} else if (strcmp(event, "RESUME") == 0 && vm->state == VMCG_DVM_PAUSED) {
		set_state(vm, VMCG_DVM_READY);
		vmcg_vm_set_oom_eligible(vm->vm, TRUE);
	}
}

static void on_qmp_state(VmcgQmp *qmp, VmcgQmpState state, const GError *error, gpointer userdata)
{
	VmcgDvm *vm = userdata;

	if (state == VMCG_QMP_STATE_READY) {
		vm->pid = vmcg_socket_owner_pid("/proc", vm->qmp_path);
		if (!vm->pid)
			g_warning("VM %s: cannot find the process behind %s: no sampling",
				  vmcg_vm_name(vm->vm), vm->qmp_path);
		if (vm->hooks && vm->pid && vmcg_hooks_conn_pid(vm->hooks) != vm->pid) {
			/* Another process attached under this VM's name. */
			g_warning("VM %s: its hooks connection is pid %d, its QMP socket pid "
				  "%d: dropping the hooks connection",
				  vmcg_vm_name(vm->vm), (int)vmcg_hooks_conn_pid(vm->hooks),
				  (int)vm->pid);
			vmcg_hooks_conn_close(vm->hooks);
		}
		set_state(vm, VMCG_DVM_READY);
		vmcg_vm_set_oom_eligible(vm->vm, TRUE);
		/* Adopt the balloon as it is: a restarted daemon moves nothing. */
		vm->adopted_usec = (int64_t)vmcg_daemon_now_usec(vm->d);
		vm->target = 0;
		vm->actual = 0;
		vm->stuck = FALSE;
		vmcg_qmp_execute(qmp, "query-memdev", NULL, on_memdev, vm);
		vm->in_query = TRUE;
		vmcg_qmp_execute(qmp, "query-balloon", NULL, on_balloon, vm);
		g_clear_pointer(&vm->balloon_path, g_free);
		find_balloon(vm, "/machine/peripheral");
		find_balloon(vm, "/machine/peripheral-anon");
	} else if (state == VMCG_QMP_STATE_DISCONNECTED) {
		/* Never connected yet: still "connecting" (QEMU may not have started). */
		if (vm->state == VMCG_DVM_CONNECTING)
			return;
		if (vm->state != VMCG_DVM_GONE)
			g_warning("VM %s: QMP connection lost: %s; its charge leaves the tree",
				  vmcg_vm_name(vm->vm), error ? error->message : "closed");
		drop_charge(vm);
		set_state(vm, VMCG_DVM_GONE);
		vmcg_vm_set_oom_eligible(vm->vm, FALSE);
	}
}

VmcgDvm *vmcg_dvm_new(VmcgDaemon *d, VmcgVm *evm, const char *qmp_path)
{
	VmcgDvm *vm = g_new0(VmcgDvm, 1);

	vm->d = d;
	vm->vm = evm;
	vm->qmp_path = g_strdup(qmp_path);
	vm->link.data = vm;
	vm->state = VMCG_DVM_CONNECTING;
	vmcg_vm_set_userdata(evm, vm);
	vmcg_vm_set_oom_eligible(evm, FALSE);
	vm->qmp = vmcg_qmp_new(qmp_path, NULL);
	vmcg_qmp_set_state_callback(vm->qmp, on_qmp_state, vm);
	vmcg_qmp_set_event_callback(vm->qmp, on_qmp_event, vm);
	/* 0.5 s to 10 s: a restarting QEMU comes back fast, a dead one costs little. */
	vmcg_qmp_set_reconnect(vm->qmp, TRUE, 500, 10000);
	return vm;
}

void vmcg_dvm_free(VmcgDvm *vm)
{
	if (!vm)
		return;
	/* Free the connections first: their callbacks must not see a half-freed VM. */
	if (vm->hooks)
		vmcg_hooks_conn_close(vm->hooks);
	vmcg_qmp_free(vm->qmp);
	/* Forgotten, maybe still running: back to the hierarchy's root. */
	vmcg_control_backstop_release(vm);
	g_queue_unlink(&vm->d->vms, &vm->link);
	vmcg_vm_free(vm->vm);
	g_free(vm->qmp_path);
	g_free(vm->balloon_path);
	g_free(vm);
}

void vmcg_dvm_connect(VmcgDvm *vm)
{
	vmcg_qmp_connect(vm->qmp);
}

void vmcg_dvm_set_target(VmcgDvm *vm, uint64_t bytes)
{
	json_object *args;

	/* Never 0 (QEMU refuses it, and it would mean "take everything"). */
	bytes = MAX(bytes, vm->d->policy.min_guest);
	bytes &= ~(uint64_t)(PAGE - 1);
	if (vm->ram_size)
		bytes = MIN(bytes, vm->ram_size);
	if (bytes == vm->target)
		return;
	g_debug("VM %s: balloon target %" G_GUINT64_FORMAT " MiB (actual %" G_GUINT64_FORMAT
		" MiB)",
		vmcg_vm_name(vm->vm), bytes >> 20, vm->actual >> 20);
	if (!vm->target || bytes < vm->target) {
		vm->progress_usec = (int64_t)vmcg_daemon_now_usec(vm->d);
		vm->progress_actual = vm->actual;
	}
	vm->target = bytes;
	args = json_object_new_object();
	json_object_object_add(args, "value", json_object_new_int64((int64_t)bytes));
	vmcg_qmp_execute(vm->qmp, "balloon", args, on_ignore, vm);
}

void vmcg_dvm_poll(VmcgDvm *vm, uint64_t now)
{
	const VmcgPolicy *p = &vm->d->policy;

	if (vm->state != VMCG_DVM_READY)
		return;
	if (!vm->in_query) {
		vm->in_query = TRUE;
		vmcg_qmp_execute(vm->qmp, "query-balloon", NULL, on_balloon, vm);
	}
	if (vm->stats_enabled && !vm->in_stats &&
	    now - (uint64_t)vm->stats_asked_usec >= p->stats_interval_usec / 2) {
		json_object *args = json_object_new_object();

		json_object_object_add(args, "path", json_object_new_string(vm->balloon_path));
		json_object_object_add(args, "property", json_object_new_string("guest-stats"));
		vm->in_stats = TRUE;
		vm->stats_asked_usec = (int64_t)now;
		vmcg_qmp_execute(vm->qmp, "qom-get", args, on_stats, vm);
	}
	vmcg_vm_set_stat(
		vm->vm, VMCG_STAT_BALLOONED,
		vm->actual && vm->ram_size > vm->actual ? (vm->ram_size - vm->actual) / PAGE : 0);

	/* A balloon that does not follow its target: vmcg_policy_balloon_progress(). */
	VmcgPolicyBalloon b = { (uint64_t)vm->progress_usec, vm->progress_actual, vm->stuck };

	if (vmcg_policy_balloon_progress(p, vm->ram_size, vm->target, vm->actual, now, &b) ==
	    VMCG_BALLOON_STUCK_NOW) {
		g_autoptr(json_object) data = json_object_new_object();
		VmcgGroup *g = vmcg_vm_group(vm->vm);

		g_warning("VM %s: balloon stuck at %" G_GUINT64_FORMAT
			  " MiB, target %" G_GUINT64_FORMAT " MiB",
			  vmcg_vm_name(vm->vm), vm->actual >> 20, vm->target >> 20);
		json_object_object_add(data, "vm", json_object_new_string(vmcg_vm_name(vm->vm)));
		json_object_object_add(data, "group", json_object_new_string(vmcg_group_path(g)));
		json_object_object_add(data, "target", json_object_new_uint64(vm->target));
		json_object_object_add(data, "actual", json_object_new_uint64(vm->actual));
		vmcg_daemon_emit(vm->d, VMCG_EV_BALLOON_STUCK, data);
		/* Escalate: reclaim cannot make progress here, as vmpressure_prio() says. */
		(void)vmcg_vmpressure_prio(vmcg_group_vmpressure(g), now, 0);
	}
	vm->progress_usec = (int64_t)b.progress_usec;
	vm->progress_actual = b.progress_actual_bytes;
	vm->stuck = b.stuck;
}

static void on_stopped(VmcgQmp *qmp, json_object *ret, const GError *error, gpointer userdata)
{
	VmcgDvm *vm = userdata;

	(void)qmp;
	(void)ret;
	if (error) {
		if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
			g_warning("VM %s: cannot pause it: %s", vmcg_vm_name(vm->vm),
				  error->message);
		return;
	}
	if (vm->state == VMCG_DVM_READY)
		set_state(vm, VMCG_DVM_PAUSED);
}

void vmcg_dvm_oom_act(VmcgDvm *vm, VmcgOomAction action)
{
	switch (action) {
	case VMCG_OOM_NOTIFY:
		break;
	case VMCG_OOM_PAUSE:
		/* Shown as paused once QEMU has stopped it, not when asked. */
		vmcg_qmp_execute(vm->qmp, "stop", NULL, on_stopped, vm);
		vmcg_vm_set_oom_eligible(vm->vm, FALSE);
		break;
	case VMCG_OOM_DESTROY:
		vmcg_qmp_execute(vm->qmp, "quit", NULL, on_ignore, vm);
		vmcg_vm_set_oom_eligible(vm->vm, FALSE);
		break;
	default:
		break;
	}
}

void vmcg_dvm_info(VmcgDvm *vm, VmcgDvmInfo *ret)
{
	static const char *const names[] = { "connecting", "ready", "paused", "gone" };
	int64_t now = (int64_t)vmcg_daemon_now_usec(vm->d);

	*ret = (VmcgDvmInfo){
		.name = vmcg_vm_name(vm->vm),
		.qmp = vm->qmp_path,
		.group = vmcg_group_path(vmcg_vm_group(vm->vm)),
		.mode = "sampling",
		.state = names[vm->state],
		.current = vmcg_vm_current(vm->vm) * PAGE,
		.ram = vm->ram_size,
		.resident = vm->resident,
		.overhead = vm->overhead,
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
	};
	if (vm->hooks) {
		VmcgHooksInfo h;

		vmcg_hooks_conn_info(vm->hooks, &h);
		ret->mode = "hooks";
		ret->hooked = true;
		ret->hook_slots = h.nr_slots;
		ret->hook_batch = h.batch;
		ret->hook_refill_batch = h.refill_batch;
		ret->hook_held = h.held;
		ret->hook_charged = h.charged;
		ret->hook_credit = h.credit;
		ret->hook_populated = h.populated;
		ret->hook_faults = h.faults;
		ret->hook_unbacked = h.unbacked;
		ret->hook_slack = h.slack;
		ret->hook_grants = h.grants;
		ret->hook_drains = h.drains;
		ret->hook_stall_usec = h.stall_usec;
		ret->hook_audit_flagged = h.audit_flagged;
		if (!ret->pid)
			ret->pid = h.pid;
	}
}
