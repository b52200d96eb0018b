// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmcgd's core: groups and VMs, applying API/config/state operations to the
 * engine's tree all-or-nothing, persisting them, and fanning out events.
 * The control loop is in control.c; a VM's own record in vm.c, its backend
 * (backend.h, backend-qmp.c) and charge sources (charge.h) beside it.
 */
#include <errno.h>
#include <gio/gio.h>
#include <string.h>

#include "daemon-private.h"
#include "settings.h"
#include "state.h"
#include "vmcg/oom.h"

static void state_change_free(gpointer p);

static VmcgPolicy default_policy(void)
{
	VmcgPolicy p = {
		/* Headroom left above what the guest says it uses. */
		.guest_margin = 32 << 20,
		.balloon_stuck_usec = 10 * G_USEC_PER_SEC,
		.oom_deadline_usec = 5 * G_USEC_PER_SEC,
		/* QEMU's balloon refuses 0; a guest below 64 MiB does not boot anyway. */
		.min_guest = 64 << 20,
	};

	/* What the config can set: reclaim-step, hysteresis, stats-*, vmpressure-hold. */
	vmcg_settings_policy_defaults(&p);
	return p;
}

static void on_engine_event(VmcgGroup *group, VmcgEvent event, void *userdata)
{
	VmcgDaemon *d = userdata;
	g_autoptr(json_object) data = json_object_new_object();

	json_object_object_add(data, "group", json_object_new_string(vmcg_group_path(group)));
	json_object_object_add(data, "count",
			       json_object_new_uint64(vmcg_group_events(group, event, false)));
	vmcg_daemon_emit(d, vmcg_event_to_string(event), data);
}

VmcgDaemon *vmcg_daemon_new(const VmcgTreeOptions *opts, const char *state_path)
{
	VmcgDaemon *d = g_new0(VmcgDaemon, 1);
	int r;

	r = vmcg_tree_new(opts, &d->tree);
	g_assert(r == 0); /* only -ENOMEM or a bad batch, which main.c validated */
	vmcg_tree_set_event_fn(d->tree, on_engine_event, d);
	d->state_path = g_strdup(state_path);
	vmcg_state_file_init(&d->sf, state_path);
	d->changes = g_ptr_array_new_with_free_func(state_change_free);
	g_queue_init(&d->save_waiters);
	d->save_ok = TRUE;
	d->policy = default_policy();
	g_queue_init(&d->vms);
	d->vm_names = g_hash_table_new(g_str_hash, g_str_equal);
	d->subs = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
	d->next_sub = 1;
	d->cluster = vmcg_cluster_new(d);
	return d;
}

void vmcg_daemon_free(VmcgDaemon *d)
{
	if (!d)
		return;
	/* Zeroed: forgetting the libvirt VMs below kicks, and a kick needs a tick_id. */
	if (d->tick_id) {
		vmcg_sampling_set_drained_fn(NULL, NULL);
		g_clear_handle_id(&d->tick_id, g_source_remove);
	}
	g_clear_handle_id(&d->kick_id, g_source_remove);
	g_clear_handle_id(&d->decide_id, g_source_remove);
	vmcg_control_stop(d);
	/* A pending change is written (or, failing that, its waiters told) before exit. */
	vmcg_daemon_flush(d, NULL);
	/* Before the VMs: a connection uncharges its VM as it closes. */
	vmcg_hooks_free(d->hooks);
	d->hooks = NULL;
	/* Its VMs go with it; its worker finishes the call it is in. */
	vmcg_libvirt_free(d->libvirt);
	d->libvirt = NULL;
	while (!g_queue_is_empty(&d->vms))
		vmcg_dvm_free(g_queue_peek_head(&d->vms));
	vmcg_cluster_free(d->cluster);
	d->cluster = NULL;
	for (VmcgGroup *g = vmcg_tree_root(d->tree); g;
	     g = vmcg_group_next_descendant(g, vmcg_tree_root(d->tree)))
		g_free(vmcg_group_get_userdata(g));
	g_hash_table_destroy(d->vm_names);
	vmcg_tree_free(d->tree);
	vmcg_backstop_free(d->backstop);
	g_hash_table_destroy(d->subs);
	g_free(d->state_path);
	vmcg_state_file_clear(&d->sf);
	g_ptr_array_unref(d->changes);
	g_free(d->save_error);
	g_free(d);
}

void vmcg_daemon_set_policy(VmcgDaemon *d, const VmcgPolicy *p)
{
	d->policy = *p;
}

const VmcgPolicy *vmcg_daemon_policy(VmcgDaemon *d)
{
	return &d->policy;
}

gboolean vmcg_daemon_enable_backstop(VmcgDaemon *d, const char *sysfs, uint64_t overhead_bytes,
				     GError **error)
{
	VmcgBackstop *b = vmcg_backstop_new(sysfs, error);

	if (!b)
		return FALSE;
	vmcg_backstop_free(d->backstop);
	d->backstop = b;
	d->backstop_overhead = overhead_bytes;
	g_info("backstop: memory cgroup %s under %s/vmcg", vmcg_backstop_version(b), sysfs);
	return TRUE;
}

VmcgTree *vmcg_daemon_tree(VmcgDaemon *d)
{
	return d->tree;
}

VmcgCluster *vmcg_daemon_cluster(VmcgDaemon *d)
{
	return d->cluster;
}

gboolean vmcg_daemon_enable_hooks(VmcgDaemon *d, const char *path, GError **error)
{
	g_return_val_if_fail(!d->hooks, FALSE);
	d->hooks = vmcg_hooks_new(d, path, error);
	return d->hooks != NULL;
}

uint64_t vmcg_daemon_now_usec(VmcgDaemon *d)
{
	(void)d;
	return (uint64_t)g_get_monotonic_time();
}

/* ---- events ---- */

typedef struct Sub {
	VmcgDaemonEventFn fn;
	gpointer userdata;
} Sub;

guint vmcg_daemon_subscribe(VmcgDaemon *d, VmcgDaemonEventFn fn, gpointer userdata)
{
	Sub *s = g_new(Sub, 1);
	guint id = d->next_sub++;

	s->fn = fn;
	s->userdata = userdata;
	g_hash_table_insert(d->subs, GUINT_TO_POINTER(id), s);
	return id;
}

void vmcg_daemon_unsubscribe(VmcgDaemon *d, guint id)
{
	g_hash_table_remove(d->subs, GUINT_TO_POINTER(id));
}

void vmcg_daemon_emit(VmcgDaemon *d, const char *type, json_object *data)
{
	g_autofree char *text = NULL;

	text = g_strdup(json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN));
	g_info("event %s %s", type, text);
	/*
	 * Subscribers may unsubscribe from their callback (a dead client):
	 * iterate over a snapshot of the ids.
	 */
	g_autoptr(GList) ids = g_hash_table_get_keys(d->subs);
	for (GList *l = ids; l; l = l->next) {
		Sub *s = g_hash_table_lookup(d->subs, l->data);

		if (s)
			s->fn(type, data, s->userdata);
	}
}

/* ---- persistence ---- */

/*
 * A change not yet saved: the records (state.h) of the group or VM before
 * and after it. "after" goes to the journal; "before", applied newest
 * first, undoes it if the save fails.
 */
typedef struct StateChange {
	json_object *before, *after;
} StateChange;

static void state_change_free(gpointer p)
{
	StateChange *c = p;

	json_object_put(c->before);
	json_object_put(c->after);
	g_free(c);
}

typedef struct SaveWaiter {
	VmcgDaemonSavedFn fn;
	gpointer userdata;
} SaveWaiter;

/*
 * 64 KiB: below this the journal is not compacted whatever the snapshot's
 * size, so that a small state does not rewrite its snapshot every few
 * changes. Above it, compaction when the journal is as large as the
 * snapshot: writing the snapshot then costs no more than the journal
 * writes it replaces, so each change is written O(1) times amortized.
 */
#define JOURNAL_MIN_COMPACT_BYTES (64 << 10)

static bool recording(VmcgDaemon *d)
{
	return d->sf.path && !d->loading;
}

static json_object *before_group(VmcgDaemon *d, const char *path)
{
	return recording(d) ? vmcg_state_group_record(d, path) : NULL;
}

static json_object *before_vm(VmcgDaemon *d, const char *name)
{
	return recording(d) ? vmcg_state_vm_record(d, name) : NULL;
}

static void schedule_save(VmcgDaemon *d);

/* The change is made: record it (taking @before) and have it saved. */
static void changed(VmcgDaemon *d, json_object *before, json_object *after)
{
	StateChange *c;

	if (!before || !recording(d)) {
		json_object_put(before);
		json_object_put(after);
		return;
	}
	c = g_new(StateChange, 1);
	c->before = before;
	c->after = after;
	g_ptr_array_add(d->changes, c);
	schedule_save(d);
}

static void group_changed(VmcgDaemon *d, json_object *before, const char *path)
{
	changed(d, before, before ? vmcg_state_group_record(d, path) : NULL);
}

static void vm_changed(VmcgDaemon *d, json_object *before, const char *name)
{
	changed(d, before, before ? vmcg_state_vm_record(d, name) : NULL);
}

/* Undo @changes, newest first. */
static void roll_back(VmcgDaemon *d, GPtrArray *changes)
{
	d->loading = TRUE;
	d->rolling_back = TRUE;
	for (guint i = changes->len; i-- > 0;) {
		StateChange *c = g_ptr_array_index(changes, i);
		g_autoptr(GError) error = NULL;

		if (!vmcg_state_apply_record(d, c->before, &error))
			g_critical(
				"state: cannot undo a change that was not saved: %s (%s)",
				error->message,
				json_object_to_json_string_ext(c->before, JSON_C_TO_STRING_PLAIN));
	}
	d->rolling_back = FALSE;
	d->loading = FALSE;
}

/*
 * One save: what the main loop prepares (the text, from the daemon's
 * state), what a worker thread writes and fsyncs (with its own copy of
 * the files' record, so that nothing is shared while it runs), and the
 * changes and waiters it answers for.
 */
typedef struct SaveJob {
	VmcgStateFile sf; /* the thread's copy; paths borrowed from d->sf */
	gboolean compact;
	char *text;
	gsize len;
	GPtrArray *changes; /* StateChange */
	GQueue waiters;	    /* SaveWaiter */
} SaveJob;

static void save_job_free(SaveJob *job)
{
	g_free(job->text);
	g_ptr_array_unref(job->changes);
	g_free(job);
}

/* Take every pending change and waiter into a save. Main loop. */
static SaveJob *save_begin(VmcgDaemon *d)
{
	SaveJob *job = g_new0(SaveJob, 1);

	job->sf = d->sf;
	job->compact = d->compact_wanted || d->sf.journal_fd < 0 ||
		       d->sf.journal_bytes > MAX(d->sf.snapshot_bytes, JOURNAL_MIN_COMPACT_BYTES);
	job->changes = g_steal_pointer(&d->changes);
	d->changes = g_ptr_array_new_with_free_func(state_change_free);
	job->waiters = d->save_waiters;
	g_queue_init(&d->save_waiters);
	if (job->compact) {
		job->text = vmcg_state_snapshot_text(d, d->sf.gen + 1, &job->len);
	} else {
		GString *text = g_string_sized_new(256 * job->changes->len);

		for (guint i = 0; i < job->changes->len; i++) {
			StateChange *c = g_ptr_array_index(job->changes, i);

			g_string_append(text,
					json_object_to_json_string_ext(
						c->after, JSON_C_TO_STRING_PLAIN |
								  JSON_C_TO_STRING_NOSLASHESCAPE));
			g_string_append_c(text, '\n');
		}
		job->len = text->len;
		job->text = g_string_free(text, FALSE);
	}
	return job;
}

/* Write and fsync. Any thread: touches only @job. */
static gboolean save_run(SaveJob *job, GError **error)
{
	if (job->compact)
		return vmcg_state_compact_write(&job->sf, job->text, job->len, error);
	return vmcg_state_journal_append(&job->sf, job->text, job->len, error);
}

static void answer(GQueue *waiters, const GError *error)
{
	SaveWaiter *w;

	while ((w = g_queue_pop_head(waiters))) {
		w->fn(error, w->userdata);
		g_free(w);
	}
}

/*
 * The save is done: take the files' record back, and answer. If it
 * failed, its changes are undone, and so are those made while it ran
 * (they were made on top of them), whose writes are refused too. Main
 * loop.
 */
static void save_end(VmcgDaemon *d, SaveJob *job, gboolean ok, const GError *error)
{
	GQueue later = G_QUEUE_INIT;

	d->sf.journal_fd = job->sf.journal_fd;
	d->sf.gen = job->sf.gen;
	d->sf.snapshot_bytes = job->sf.snapshot_bytes;
	d->sf.journal_bytes = job->sf.journal_bytes;
	d->saves++;
	d->save_time_usec = g_get_real_time();
	g_clear_pointer(&d->save_error, g_free);
	d->save_ok = ok;
	if (ok) {
		d->save_ok_time_usec = d->save_time_usec;
		if (job->compact) {
			d->compactions++;
			d->compact_wanted = FALSE;
		}
		answer(&job->waiters, NULL);
		return;
	}
	d->save_failures++;
	d->save_error = g_strdup(error->message);
	if (job->changes->len + d->changes->len)
		g_warning("state: cannot save: %s; %u change%s undone and refused", error->message,
			  job->changes->len + d->changes->len,
			  job->changes->len + d->changes->len == 1 ? "" : "s");
	else
		g_warning("state: cannot save: %s; writes are refused until a save succeeds",
			  error->message);
	roll_back(d, d->changes);
	g_ptr_array_set_size(d->changes, 0);
	roll_back(d, job->changes);
	later = d->save_waiters;
	g_queue_init(&d->save_waiters);
	answer(&job->waiters, error);
	answer(&later, error);
}

static void on_save_done(GObject *source, GAsyncResult *res, gpointer userdata)
{
	VmcgDaemon *d = userdata;
	SaveJob *job = g_task_get_task_data(G_TASK(res));
	g_autoptr(GError) error = NULL;
	gboolean ok = g_task_propagate_boolean(G_TASK(res), &error);

	(void)source;
	d->save_task = FALSE;
	save_end(d, job, ok, error);
	/* What came in meanwhile goes into the next save. */
	if (d->changes->len || !g_queue_is_empty(&d->save_waiters))
		schedule_save(d);
}

static void save_thread(GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
	GError *error = NULL;

	(void)source;
	(void)cancellable;
	if (save_run(data, &error))
		g_task_return_boolean(task, TRUE);
	else
		g_task_return_error(task, error);
}

static gboolean pending(VmcgDaemon *d)
{
	return d->changes->len || d->compact_wanted;
}

/* Start a save in a worker thread, unless one runs (its end starts the next). */
static void save_async(VmcgDaemon *d)
{
	g_autoptr(GTask) task = NULL;

	if (d->save_task || !pending(d))
		return;
	task = g_task_new(NULL, NULL, on_save_done, d);
	g_task_set_task_data(task, save_begin(d), (GDestroyNotify)save_job_free);
	d->save_task = TRUE;
	g_task_run_in_thread(task, save_thread);
}

gboolean vmcg_daemon_flush(VmcgDaemon *d, GError **error)
{
	g_autoptr(GError) local = NULL;
	SaveJob *job;
	gboolean ok;

	if (d->save_id) {
		g_source_remove(d->save_id);
		d->save_id = 0;
	}
	/* A save in a thread ends (and answers) on this loop. */
	while (d->save_task)
		g_main_context_iteration(NULL, TRUE);
	if (!d->sf.path)
		return TRUE;
	if (!pending(d)) {
		answer(&d->save_waiters, NULL); /* none: waiters wait for a change */
		return d->save_ok;
	}
	job = save_begin(d);
	ok = save_run(job, &local);
	save_end(d, job, ok, local);
	save_job_free(job);
	if (!ok)
		g_propagate_error(error, g_steal_pointer(&local));
	return ok;
}

static gboolean on_save(gpointer userdata)
{
	VmcgDaemon *d = userdata;

	d->save_id = 0;
	save_async(d);
	return G_SOURCE_REMOVE;
}

/*
 * At the next main-loop iteration: every request that was ready in this
 * one has been handled, so one save (one fsync) covers all their changes;
 * a lone change is saved at once, with no delay in front of it. At the
 * default priority, not the idle one: with many VMs the loop nearly always
 * has QMP or channel traffic ready, and an idle-priority save would wait
 * for a quiet moment that may not come (GLib dispatches every ready source
 * of the highest ready priority each iteration, so a default-priority one
 * is never starved by its peers); while one save runs, the changes that come in
 * wait for it and go together into the next (one fsync for them all). The write and
 * fsync run in a worker thread, so that the loop (ticks, QMP, hooks)
 * never waits for the disk; changes made meanwhile go into the next save.
 */
static void schedule_save(VmcgDaemon *d)
{
	if (!d->save_deferred) {
		/* No loop yet (start-up, tests): save at once, here. */
		vmcg_daemon_flush(d, NULL);
		return;
	}
	if (d->save_task)
		return; /* on_save_done() schedules the next */
	if (!d->save_id)
		d->save_id = g_idle_add_full(G_PRIORITY_DEFAULT, on_save, d, NULL);
}

void vmcg_daemon_save(VmcgDaemon *d)
{
	if (!d->sf.path || d->loading)
		return;
	d->compact_wanted = TRUE;
	schedule_save(d);
}

gboolean vmcg_daemon_when_saved(VmcgDaemon *d, VmcgDaemonSavedFn fn, gpointer userdata)
{
	SaveWaiter *w;

	if (!d->sf.path || (!d->changes->len && !d->compact_wanted))
		return FALSE;
	w = g_new(SaveWaiter, 1);
	w->fn = fn;
	w->userdata = userdata;
	g_queue_push_tail(&d->save_waiters, w);
	schedule_save(d);
	return TRUE;
}

void vmcg_daemon_state_health(VmcgDaemon *d, VmcgStateHealth *ret)
{
	*ret = (VmcgStateHealth){
		.path = d->sf.path,
		.ok = d->save_ok,
		.last_save_usec = d->save_time_usec,
		.last_ok_usec = d->save_ok_time_usec,
		.error = d->save_error,
		.saves = d->saves,
		.failures = d->save_failures,
		.compactions = d->compactions,
		.snapshot_bytes = d->sf.snapshot_bytes,
		.journal_bytes = d->sf.journal_bytes,
		.pending = d->changes->len,
	};
}

/* ---- groups ---- */

static uint64_t bytes_to_pages(uint64_t bytes)
{
	if (bytes == VMCG_BYTES_MAX || bytes / VMCG_PAGE_SIZE >= VMCG_PAGES_MAX)
		return VMCG_PAGES_MAX;
	/* Round limits down to whole pages: never promise more than asked. */
	return bytes / VMCG_PAGE_SIZE;
}

static gboolean check_bytes(const char *what, bool has, uint64_t bytes, GError **error)
{
	if (has && bytes != VMCG_BYTES_MAX && bytes > VMCG_PAGES_MAX * VMCG_PAGE_SIZE) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "%s: %" G_GUINT64_FORMAT " bytes is beyond any memory (use \"max\")",
			    what, bytes);
		return FALSE;
	}
	return TRUE;
}

static gboolean set_path_error(const char *path, int r, GError **error)
{
	if (r == -ENOENT)
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "no group %s", path);
	else if (r == -ENAMETOOLONG)
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "group path too long or too deep (at most %d levels of %d bytes): %s",
			    VMCG_DEPTH_MAX, VMCG_NAME_MAX, path);
	else
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "invalid group path \"%s\": absolute, components of [A-Za-z0-9_.-], "
			    "no empty, \".\" or \"..\" components",
			    path);
	return FALSE;
}

gboolean vmcg_daemon_group_put(VmcgDaemon *d, const char *path, const VmcgGroupSettings *s,
			       gboolean *ret_created, GError **error)
{
	VmcgGroup *g = NULL;
	gboolean created = FALSE;
	json_object *before = NULL;
	int r;

	r = vmcg_path_validate(path);
	if (r < 0)
		return set_path_error(path, r, error);
	if (!check_bytes("memory.min", s->has_min, s->min, error) ||
	    !check_bytes("memory.low", s->has_low, s->low, error) ||
	    !check_bytes("memory.high", s->has_high, s->high, error) ||
	    !check_bytes("memory.max", s->has_max, s->max, error) ||
	    !check_bytes("cluster.memory.max", s->has_cluster_max, s->cluster_max, error))
		return FALSE;
	if (s->has_oom_action && (unsigned)s->oom_action >= _VMCG_OOM_ACTION_COUNT) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "invalid oom-action");
		return FALSE;
	}
	if (strcmp(path, "/") == 0 &&
	    (s->has_min || s->has_low || s->has_high || s->has_max || s->has_oom_group ||
	     s->has_oom_action || s->has_overhead_in_max || s->has_cluster_max)) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
			    "the root group \"/\" is the host: it takes no limits");
		return FALSE;
	}

	r = vmcg_group_lookup(d->tree, path, &g);
	if (r == -ENOENT || r == 0)
		before = before_group(d, path);
	if (r == -ENOENT) {
		r = vmcg_group_create(d->tree, path, &g);
		if (r == -ENOENT) {
			g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
				    "cannot create %s: its parent group does not exist", path);
			json_object_put(before);
			return FALSE;
		}
		if (r < 0) {
			json_object_put(before);
			return set_path_error(path, r, error);
		}
		created = TRUE;
		vmcg_group_set_userdata(g, g_new0(VmcgGroupState, 1));
	} else if (r < 0) {
		return set_path_error(path, r, error);
	}

	/* Validated above: none of these can fail now. */
	if (s->has_min)
		vmcg_group_set_min(g, bytes_to_pages(s->min));
	if (s->has_low)
		vmcg_group_set_low(g, bytes_to_pages(s->low));
	if (s->has_high)
		vmcg_group_set_high(g, bytes_to_pages(s->high));
	if (s->has_max)
		vmcg_group_set_max(g, bytes_to_pages(s->max));
	if (s->has_oom_group)
		vmcg_group_set_oom_group(g, s->oom_group);
	if (s->has_oom_action)
		vmcg_group_set_oom_action(g, s->oom_action);
	if (s->has_overhead_in_max)
		vmcg_group_set_overhead_counted(g, s->overhead_in_max);
	if (s->has_cluster_max)
		vmcg_cluster_group_set(d->cluster, g, s->cluster_max);

	g_info("group %s %s", path, created ? "created" : "updated");
	if (ret_created)
		*ret_created = created;
	/*
	 * A lowered limit is enforced at the next tick; do not wait a full
	 * interval. A group that holds nothing has nothing to enforce: a tick
	 * walks the whole tree, and creating 100,000 groups must not walk it
	 * 100,000 times.
	 */
	if (vmcg_group_current(g))
		vmcg_daemon_kick(d);
	/* Last: without a loop, a save that fails undoes the change here (g may go). */
	group_changed(d, before, path);
	return TRUE;
}

gboolean vmcg_daemon_group_delete(VmcgDaemon *d, const char *path, GError **error)
{
	VmcgGroup *g;
	VmcgGroupState *gs;
	json_object *before;
	int r;

	r = vmcg_group_lookup(d->tree, path, &g);
	if (r < 0)
		return set_path_error(path, r, error);
	if (!vmcg_group_parent(g)) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_BUSY, "the root group cannot be removed");
		return FALSE;
	}
	if (vmcg_group_first_child(g)) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_BUSY,
			    "%s has child groups: remove them first", path);
		return FALSE;
	}
	if (vmcg_group_first_vm(g)) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_BUSY,
			    "%s has VMs: move or forget them first", path);
		return FALSE;
	}
	before = before_group(d, path);
	gs = vmcg_group_get_userdata(g);
	vmcg_cluster_group_forget(d->cluster, g);
	r = vmcg_group_remove(g, 0);
	g_assert(r == 0);
	g_free(gs);
	g_info("group %s removed", path);
	group_changed(d, before, path);
	return TRUE;
}

gboolean vmcg_daemon_group_reclaim(VmcgDaemon *d, const char *path, uint64_t bytes,
				   uint64_t *ret_planned, GError **error)
{
	VmcgGroup *g;
	int r;

	r = vmcg_group_lookup(d->tree, path, &g);
	if (r < 0)
		return set_path_error(path, r, error);
	if (!check_bytes("bytes", true, bytes, error))
		return FALSE;
	*ret_planned = vmcg_control_reclaim(d, g, bytes_to_pages(bytes)) * VMCG_PAGE_SIZE;
	return TRUE;
}

/* ---- VMs ---- */

VmcgDvm *vmcg_daemon_vm_lookup(VmcgDaemon *d, const char *name)
{
	VmcgDvm *vm = name ? g_hash_table_lookup(d->vm_names, name) : NULL;

	/* A libvirt domain by its UUID too. */
	if (!vm && name && d->libvirt)
		vm = vmcg_libvirt_find(d->libvirt, name);
	return vm;
}

/* The API's and the config's changes to a VM that its backend manages are refused. */
static gboolean refuse_managed(VmcgDvm *vm, GError **error)
{
	if (!vm->managed)
		return TRUE;
	g_set_error(error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
		    "VM %s is a libvirt domain: its group and settings come from its domain XML "
		    "(<metadata> in namespace urn:vmcg:domain:1; see docs/libvirt.md), and it "
		    "leaves when the domain stops",
		    vmcg_dvm_name(vm));
	return FALSE;
}

VmcgDvm *vmcg_daemon_vm_first(VmcgDaemon *d)
{
	return g_queue_peek_head(&d->vms);
}

VmcgDvm *vmcg_daemon_vm_next(VmcgDvm *vm)
{
	return vm->link.next ? vm->link.next->data : NULL;
}

static gboolean check_vm_settings(const VmcgVmSettings *s, GError **error)
{
	if (s && s->has_oom_priority &&
	    (s->oom_priority < VMCG_OOM_PRIORITY_MIN || s->oom_priority > VMCG_OOM_PRIORITY_MAX)) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "oom-priority must be in [%d, %d]", VMCG_OOM_PRIORITY_MIN,
			    VMCG_OOM_PRIORITY_MAX);
		return FALSE;
	}
	if (s && s->has_floor && !check_bytes("floor", true, s->floor, error))
		return FALSE;
	return TRUE;
}

static void apply_vm_settings(VmcgDvm *vm, const VmcgVmSettings *s)
{
	if (!s)
		return;
	if (s->has_floor)
		vm->floor = s->floor == VMCG_BYTES_MAX ? UINT64_MAX : s->floor;
	if (s->has_oom_priority)
		vmcg_vm_set_oom_priority(vm->vm, s->oom_priority);
	if (s->has_channel)
		vmcg_dvm_set_channel(vm, s->channel && *s->channel ? s->channel : NULL);
}

static json_object *vm_event_data(VmcgDvm *vm)
{
	json_object *data = json_object_new_object();

	json_object_object_add(data, "vm", json_object_new_string(vmcg_vm_name(vm->vm)));
	json_object_object_add(data, "group",
			       json_object_new_string(vmcg_group_path(vmcg_vm_group(vm->vm))));
	return data;
}

/*
 * Checks and makes a VM, and starts its backend. @managed: adopted by a
 * backend that owns its life (libvirt): not saved, not the API's to change.
 */
static VmcgDvm *vm_create(VmcgDaemon *d, const char *name, const VmcgBackendOps *ops,
			  const char *address, const char *group, const VmcgVmSettings *s,
			  gboolean managed, GError **error)
{
	VmcgGroup *g;
	VmcgVm *evm;
	VmcgDvm *vm;
	int r;

	r = vmcg_vm_name_validate(name);
	if (r < 0) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "invalid VM name: 1 to %d bytes, no control characters or '/'",
			    VMCG_VM_NAME_MAX);
		return NULL;
	}
	if (!ops->check_address(address, error) || !check_vm_settings(s, error))
		return NULL;
	r = vmcg_group_lookup(d->tree, group ? group : "/", &g);
	if (r < 0) {
		set_path_error(group, r, error);
		return NULL;
	}
	if (vmcg_daemon_vm_lookup(d, name)) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_EXISTS, "a VM named %s exists", name);
		return NULL;
	}
	r = vmcg_vm_new(g, name, &evm);
	g_assert(r == 0); /* validated */

	vm = vmcg_dvm_new(d, evm, ops, address);
	vm->managed = managed;
	apply_vm_settings(vm, s);
	g_queue_push_tail_link(&d->vms, &vm->link);
	g_hash_table_insert(d->vm_names, (gpointer)vmcg_vm_name(evm), vm);
	g_info("VM %s %s (%s %s) in %s", name, managed ? "adopted" : "registered", ops->name,
	       address, vmcg_group_path(g));
	{
		g_autoptr(json_object) data = vm_event_data(vm);

		json_object_object_add(data, "backend", json_object_new_string(ops->name));
		json_object_object_add(data, "address", json_object_new_string(address));
		if (ops == &vmcg_backend_qmp)
			json_object_object_add(data, "qmp", json_object_new_string(address));
		vmcg_daemon_emit(d, VMCG_EV_VM_ATTACHED, data);
	}
	vmcg_dvm_connect(vm);
	return vm;
}

gboolean vmcg_daemon_vm_add(VmcgDaemon *d, const char *name, const char *backend,
			    const char *address, const char *group, const VmcgVmSettings *s,
			    GError **error)
{
	const VmcgBackendOps *ops = vmcg_backend_find(backend ? backend : "qmp");
	json_object *before;

	/* libvirt's VMs are adopted from libvirt (vmcg_daemon_vm_adopt()), never registered. */
	if (!ops || ops == &vmcg_backend_libvirt) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "unknown backend \"%s\" (known: qmp; libvirt domains are adopted "
			    "from libvirt)",
			    backend);
		return FALSE;
	}
	before = before_vm(d, name);
	if (!vm_create(d, name, ops, address, group, s, FALSE, error)) {
		json_object_put(before);
		return FALSE;
	}
	/* Last: without a loop, a save that fails undoes the change here (vm may go). */
	vm_changed(d, before, name);
	return TRUE;
}

gboolean vmcg_daemon_vm_move(VmcgDaemon *d, const char *name, const char *group, GError **error)
{
	VmcgDvm *vm = vmcg_daemon_vm_lookup(d, name);
	VmcgGroup *g, *over = NULL;
	json_object *before;
	int r;

	if (!vm) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "no VM named %s", name);
		return FALSE;
	}
	if (!refuse_managed(vm, error))
		return FALSE;
	r = vmcg_group_lookup(d->tree, group, &g);
	if (r < 0)
		return set_path_error(group, r, error);
	before = before_vm(d, name);
	/* Undoing an unsaved move: back where it was, which may be over max by now. */
	r = vmcg_vm_move(vm->vm, g, d->rolling_back ? VMCG_MOVE_FORCE : 0, &over);
	if (r == -ENOMEM) {
		json_object_put(before);
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
			    "moving %s into %s would put %s over its memory.max", name, group,
			    vmcg_group_path(over));
		return FALSE;
	}
	g_assert(r == 0);
	g_info("VM %s moved to %s", name, group);
	vm_changed(d, before, name);
	vmcg_daemon_kick(d);
	return TRUE;
}

gboolean vmcg_daemon_vm_set(VmcgDaemon *d, const char *name, const VmcgVmSettings *s,
			    GError **error)
{
	VmcgDvm *vm = vmcg_daemon_vm_lookup(d, name);
	json_object *before;

	if (!vm) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "no VM named %s", name);
		return FALSE;
	}
	if (!refuse_managed(vm, error) || !check_vm_settings(s, error))
		return FALSE;
	before = before_vm(d, name);
	apply_vm_settings(vm, s);
	vm_changed(d, before, name);
	return TRUE;
}

gboolean vmcg_daemon_vm_remove(VmcgDaemon *d, const char *name, GError **error)
{
	VmcgDvm *vm = vmcg_daemon_vm_lookup(d, name);
	g_autoptr(json_object) data = NULL;
	json_object *before;

	if (!vm) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "no VM named %s", name);
		return FALSE;
	}
	if (!refuse_managed(vm, error))
		return FALSE;
	data = vm_event_data(vm);
	before = before_vm(d, name);
	vmcg_dvm_free(vm);
	g_info("VM %s forgotten", name);
	vmcg_daemon_emit(d, VMCG_EV_VM_DETACHED, data);
	vm_changed(d, before, name);
	return TRUE;
}

/* ---- VMs that their backend manages (libvirt) ---- */

VmcgDvm *vmcg_daemon_vm_adopt(VmcgDaemon *d, const char *name, const VmcgBackendOps *ops,
			      const char *address, const char *group, const VmcgVmSettings *s,
			      GError **error)
{
	return vm_create(d, name, ops, address, group, s, TRUE, error);
}

gboolean vmcg_daemon_vm_managed_move(VmcgDaemon *d, VmcgDvm *vm, const char *group, GError **error)
{
	VmcgGroup *g, *over = NULL;
	int r;

	r = vmcg_group_lookup(d->tree, group, &g);
	if (r < 0)
		return set_path_error(group, r, error);
	r = vmcg_vm_move(vm->vm, g, 0, &over);
	if (r == -ENOMEM) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
			    "moving it into %s would put %s over its memory.max", group,
			    vmcg_group_path(over));
		return FALSE;
	}
	g_assert(r == 0);
	vmcg_daemon_kick(d);
	return TRUE;
}

void vmcg_daemon_vm_managed_set(VmcgDaemon *d, VmcgDvm *vm, const VmcgVmSettings *s)
{
	(void)d;
	if (check_vm_settings(s, NULL))
		apply_vm_settings(vm, s);
}

void vmcg_daemon_vm_forget(VmcgDaemon *d, VmcgDvm *vm)
{
	g_autoptr(json_object) data = vm_event_data(vm);

	vmcg_dvm_free(vm);
	vmcg_daemon_emit(d, VMCG_EV_VM_DETACHED, data);
	vmcg_daemon_kick(d);
}

void vmcg_daemon_enable_libvirt(VmcgDaemon *d, const char *uri, const char *default_group)
{
	if (!uri || !*uri || d->libvirt)
		return;
	d->libvirt = vmcg_libvirt_new(d, uri, default_group);
}

gboolean vmcg_daemon_libvirt_status(VmcgDaemon *d, VmcgLibvirtStatus *ret)
{
	if (!d->libvirt)
		return FALSE;
	vmcg_libvirt_status(d->libvirt, ret);
	return TRUE;
}

/* ---- the loop ---- */

static gboolean on_tick(gpointer userdata)
{
	vmcg_control_tick(userdata);
	return G_SOURCE_CONTINUE;
}

static gboolean on_kick(gpointer userdata)
{
	VmcgDaemon *d = userdata;

	d->kick_id = 0;
	vmcg_control_tick(d);
	return G_SOURCE_REMOVE;
}

static void on_samples_in(gpointer userdata)
{
	vmcg_control_samples_in(userdata);
}

void vmcg_daemon_start(VmcgDaemon *d, uint64_t interval_usec)
{
	vmcg_sampling_set_drained_fn(on_samples_in, d);
	d->save_deferred = TRUE;
	d->interval_usec = interval_usec;
	if (d->tick_id)
		g_source_remove(d->tick_id);
	d->tick_id = g_timeout_add((guint)(interval_usec / 1000), on_tick, d);
	if (d->libvirt)
		vmcg_libvirt_start(d->libvirt);
}

void vmcg_daemon_kick(VmcgDaemon *d)
{
	if (!d->tick_id || d->kick_id || d->loading)
		return;
	d->kick_id = g_idle_add(on_kick, d);
}
