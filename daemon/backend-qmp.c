// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The "qmp" VM backend (backend.h): a QEMU reached through its QMP socket.
 *
 * Owns the QMP connection and what only QMP needs: the balloon device's
 * QOM path, which queries are in flight, the guest's own timestamp of its
 * statistics. Reports RAM size (query-memdev), balloon actual
 * (query-balloon, BALLOON_CHANGE) and guest statistics (qom-get
 * guest-stats) to daemon/vm.c. Everything QEMU says is untrusted: values
 * are range-checked and a VM that answers nonsense is treated as one that
 * does not answer.
 */
#include <gio/gio.h>
#include <stdarg.h>
#include <string.h>

#include "backend-qmp-priv.h"
#include "daemon-private.h"
#include "log.h"
#include "qmp-reply.h"
#include "sampler.h"

/*
 * query-balloon is mostly redundant with BALLOON_CHANGE. QEMU sends that
 * event whenever the balloon's actual size changes
 * (virtio_balloon_set_config(), hw/virtio/virtio-balloon.c), throttled by
 * its monitor to one a second per QEMU (monitor_qapi_event_conf[],
 * monitor/monitor.c, QEMU 7.2: the first of a burst goes out at once, a
 * later one within the second replaces the one held, and the one held is
 * sent when the second is up). So the final size always arrives, at most
 * 1 s late, and vmcgd asks: on adoption (on_qmp_state()); every 10 s
 * (stats-max-age's default) as a safety poll; and, while a balloon it
 * moved has not arrived (vmcg_dvm_balloon_moving()), with each guest-stats
 * poll. That last one is not for the balloon's own sake: the floor reckons
 * what a guest uses as its size minus MemAvailable (policy.c), with its
 * size as vmcgd knows it when the statistics come in, and while a balloon
 * inflates an event up to a second old overstates it by what the balloon
 * took since. Without a query, test_daemon.py high-held-page-cache saw
 * floors, and so targets, rise while its group was over high (peaks of
 * 223-233 MiB against 193-195 with it). The query goes out right before
 * the qom-get, in the same write (qmp.c sends a client's commands of one
 * main-loop iteration together), and QEMU answers in order, so the size
 * arrives just before the statistics: as fresh as a query every tick made
 * it, for a query per stats interval instead of one per tick
 * (tests/bench/bench-control.c runs both ways side by side).
 */
#define BALLOON_SAFETY_POLL_USEC (10 * G_USEC_PER_SEC)

typedef struct QmpBackend {
	VmcgDvm *vm;
	char *path;
	VmcgQmp *qmp;
	uint64_t ram_size; /* bytes, from query-memdev; 0 until known */
	pid_t pid;
	gboolean ever_ready;
	gboolean up;	   /* READY since the last DISCONNECTED */
	gboolean in_query; /* a query-balloon is in flight */
	gboolean in_stats;
	int64_t balloon_asked_usec;
	int64_t stats_asked_usec;
	char *balloon_path; /* QOM path of the balloon device */
	char *stats_args;   /* qom-get's arguments for its guest-stats, printed once */
	gboolean stats_enabled;
	gboolean has_stats;
	int64_t stats_guest_ts;	   /* guest's last-update, to spot stale stats */
	VmcgQmpLogLimit log_limit; /* the warnings about this peer */
} QmpBackend;

/* Polls and balloon commands issued, for the benchmark (backend-qmp-priv.h). */
static unsigned long nr_issued;
/* When a moving balloon is asked (the benchmark's side by side). */
static VmcgQmpBalloonQuery balloon_query = VMCG_QMP_BALLOON_QUERY_WITH_STATS;

static QmpBackend *qb(VmcgBackend *b)
{
	return (QmpBackend *)b;
}

/* The balloon's QOM path (@path taken; NULL: none), and what is made from it. */
static void set_balloon_path(QmpBackend *q, char *path)
{
	g_free(q->balloon_path);
	q->balloon_path = path;
	g_clear_pointer(&q->stats_args, g_free);
}

static const char *name_of(const QmpBackend *q)
{
	return vmcg_dvm_name(q->vm);
}

static const VmcgPolicy *policy_of(const QmpBackend *q)
{
	return vmcg_daemon_policy(vmcg_dvm_daemon(q->vm));
}

/*
 * A warning about the peer (QEMU, or whatever listens on its socket): the
 * first is logged, then at most one per VMCG_QMP_LOG_PERIOD_USEC with the
 * count of those not logged (vmcg_qmp_log_limit()); the rest go to debug.
 * A peer that fails forever costs a line per 5 minutes.
 */
static void G_GNUC_PRINTF(2, 3) peer_warning(QmpBackend *q, const char *fmt, ...)
{
	g_autofree char *msg = NULL;
	va_list ap;
	guint n;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	if (!vmcg_qmp_log_limit(&q->log_limit, g_get_monotonic_time(), VMCG_QMP_LOG_PERIOD_USEC,
				&n)) {
		vmcg_debug("VM %s: %s", name_of(q), msg);
		return;
	}
	if (n)
		g_warning("VM %s: %s (%u more warnings about this VM's QMP peer in the last %d "
			  "minutes were not logged)",
			  name_of(q), msg, n,
			  (int)(VMCG_QMP_LOG_PERIOD_USEC / G_USEC_PER_SEC / 60));
	else
		g_warning("VM %s: %s (further warnings about this VM's QMP peer: one per %d "
			  "minutes until it is healthy)",
			  name_of(q), msg, (int)(VMCG_QMP_LOG_PERIOD_USEC / G_USEC_PER_SEC / 60));
}

/* The command failed because the connection did: teardown reported that already. */
static gboolean lost_with_connection(const GError *error)
{
	return g_error_matches(error, VMCG_QMP_ERROR, VMCG_QMP_ERROR_DISCONNECTED) ||
	       g_error_matches(error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED) ||
	       g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

static void on_balloon(VmcgQmp *qmp, json_object *ret, const GError *error, gpointer userdata)
{
	QmpBackend *q = userdata;
	g_autoptr(GError) perr = NULL;
	uint64_t actual;

	(void)qmp;
	q->in_query = FALSE;
	if (error) {
		vmcg_debug("VM %s: query-balloon: %s", name_of(q), error->message);
		return;
	}
	if (vmcg_qmp_parse_balloon(ret, q->ram_size, &actual, &perr))
		vmcg_dvm_backend_balloon(q->vm, actual);
	else
		vmcg_debug("VM %s: query-balloon: %s", name_of(q), perr->message);
}

/* The fast path of query-balloon's reply (qmp.h): what on_balloon() does with it. */
static bool on_balloon_fast(const VmcgJsonFlat *f, int ret, gpointer userdata)
{
	QmpBackend *q = userdata;
	uint64_t actual;

	if (!vmcg_qmp_fast_balloon(f, ret, q->ram_size, &actual))
		return false;
	q->in_query = FALSE;
	vmcg_dvm_backend_balloon(q->vm, actual);
	return true;
}

static void stats_apply(QmpBackend *q, const VmcgQmpGuestStats *gs);

static void on_stats(VmcgQmp *qmp, json_object *ret, const GError *error, gpointer userdata)
{
	QmpBackend *q = userdata;
	g_autoptr(GError) perr = NULL;
	VmcgQmpGuestStats gs;

	(void)qmp;
	q->in_stats = FALSE;
	if (error) {
		vmcg_debug("VM %s: guest-stats: %s", name_of(q), error->message);
		return;
	}
	/* Hints only, and checked (qmp-reply.h): a VM that answers nonsense says nothing. */
	if (!vmcg_qmp_parse_guest_stats(ret, q->ram_size, &gs, &perr)) {
		vmcg_debug("VM %s: guest-stats: %s", name_of(q), perr->message);
		return;
	}
	stats_apply(q, &gs);
}

static bool on_stats_fast(const VmcgJsonFlat *f, int ret, gpointer userdata)
{
	QmpBackend *q = userdata;
	VmcgQmpGuestStats gs;

	if (!vmcg_qmp_fast_guest_stats(f, ret, q->ram_size, &gs))
		return false;
	q->in_stats = FALSE;
	stats_apply(q, &gs);
	return true;
}

static void stats_apply(QmpBackend *q, const VmcgQmpGuestStats *gs)
{
	VmcgGuestStats st;

	/*
	 * A "last-update" that does not move means the guest stopped
	 * updating: the stats then age out (stats_max_age_usec) instead of
	 * being trusted forever.
	 */
	if (gs->last_update == q->stats_guest_ts && q->has_stats)
		return;
	q->stats_guest_ts = gs->last_update;
	q->has_stats = TRUE;
	st = (VmcgGuestStats){
		.total = gs->total_bytes,
		.available = gs->available_bytes,
		.free = gs->free_bytes < 0 ? 0 : (uint64_t)gs->free_bytes,
		.cache = gs->cache_bytes < 0 ? 0 : (uint64_t)gs->cache_bytes,
	};
	vmcg_dvm_backend_stats(q->vm, &st);
}

/* A return is all a balloon command answers: nothing to read, nothing to parse. */
static bool on_ignore_fast(const VmcgJsonFlat *f, int ret, gpointer userdata)
{
	(void)f;
	(void)ret;
	(void)userdata;
	return true;
}

static void on_ignore(VmcgQmp *qmp, json_object *ret, const GError *error, gpointer userdata)
{
	QmpBackend *q = userdata;

	(void)qmp;
	(void)ret;
	/* Cancelled: the VM is being forgotten or vmcgd is exiting. */
	if (error && !lost_with_connection(error))
		peer_warning(q, "%s", error->message);
}

static void on_balloon_path(VmcgQmp *qmp, json_object *ret, const GError *error, gpointer userdata);

static void find_balloon(QmpBackend *q, const char *dir)
{
	json_object *args = json_object_new_object();

	json_object_object_add(args, "path", json_object_new_string(dir));
	vmcg_qmp_execute(q->qmp, "qom-list", args, on_balloon_path, q);
}

/* qom-list of /machine/peripheral(-anon): the child that is a virtio-balloon. */
static void on_balloon_path(VmcgQmp *qmp, json_object *ret, const GError *error, gpointer userdata)
{
	QmpBackend *q = userdata;
	uint64_t interval = policy_of(q)->stats_interval_usec;
	g_autoptr(GError) perr = NULL;
	g_autofree char *path = NULL;
	json_object *args;

	(void)qmp;
	if (error || q->balloon_path || !vmcg_qmp_parse_balloon_child(ret, &path, &perr))
		return;
	set_balloon_path(q, g_steal_pointer(&path));
	/* stats-interval = 0: the operator does not want the guest polled. */
	if (!interval) {
		g_info("VM %s: balloon at %s, guest statistics off", name_of(q), q->balloon_path);
		return;
	}
	args = json_object_new_object();
	json_object_object_add(args, "path", json_object_new_string(q->balloon_path));
	json_object_object_add(args, "property",
			       json_object_new_string("guest-stats-polling-interval"));
	json_object_object_add(args, "value",
			       json_object_new_int64(MAX(1, (int64_t)(interval / G_USEC_PER_SEC))));
	vmcg_qmp_execute(q->qmp, "qom-set", args, on_ignore, q);
	q->stats_enabled = TRUE;
	g_info("VM %s: balloon at %s, stats every %" G_GUINT64_FORMAT " s", name_of(q),
	       q->balloon_path, MAX(1, interval / G_USEC_PER_SEC));
}

static void on_memdev(VmcgQmp *qmp, json_object *ret, const GError *error, gpointer userdata)
{
	QmpBackend *q = userdata;
	g_autoptr(GError) perr = NULL;
	uint64_t size;

	(void)qmp;
	if (error) {
		if (lost_with_connection(error))
			vmcg_debug("VM %s: query-memdev: %s", name_of(q), error->message);
		else
			peer_warning(q, "query-memdev failed (%s): cannot find its guest RAM",
				     error->message);
		return;
	}
	/*
	 * All memdevs of the same size are counted by the sampler (NUMA
	 * nodes); a guest with unequal nodes uses the first size, which is
	 * documented as a limit of sampling mode.
	 */
	if (!vmcg_qmp_parse_memdev(ret, &size, &perr)) {
		peer_warning(q, "no usable memdev size: %s", perr->message);
		return;
	}
	q->ram_size = size;
	vmcg_dvm_backend_ram(q->vm, size);
}

static void on_qmp_event(VmcgQmp *qmp, const char *event, json_object *data, gint64 timestamp_usec,
			 gpointer userdata)
{
	QmpBackend *q = userdata;

	(void)qmp;
	(void)timestamp_usec;
	uint64_t actual;

	switch (vmcg_qmp_event_kind(event)) {
	case VMCG_QMP_EVENT_BALLOON_CHANGE:
		if (vmcg_qmp_parse_balloon_change(data, q->ram_size, &actual, NULL))
			vmcg_dvm_backend_balloon(q->vm, actual);
		break;
	case VMCG_QMP_EVENT_RESUME:
		/* Paused by someone else (STOP): still charged, still measured. */
		vmcg_dvm_backend_resumed(q->vm);
		break;
	default:
		break;
	}
}

/* BALLOON_CHANGE read flat (qmp.h); every other event goes to on_qmp_event(). */
static bool on_qmp_event_fast(const char *event, const VmcgJsonFlat *f, int data,
			      gint64 timestamp_usec, gpointer userdata)
{
	QmpBackend *q = userdata;
	uint64_t actual;

	(void)timestamp_usec;
	if (vmcg_qmp_event_kind(event) != VMCG_QMP_EVENT_BALLOON_CHANGE ||
	    !vmcg_qmp_fast_balloon(f, data, q->ram_size, &actual))
		return false;
	vmcg_dvm_backend_balloon(q->vm, actual);
	return true;
}

static void on_qmp_state(VmcgQmp *qmp, VmcgQmpState state, const GError *error, gpointer userdata)
{
	QmpBackend *q = userdata;

	if (state == VMCG_QMP_STATE_READY) {
		/* From the kernel (SO_PEERCRED), never from the socket's path. */
		q->pid = vmcg_qmp_peer_pid(qmp);
		if (!q->pid)
			peer_warning(q, "cannot tell the process behind %s: no sampling", q->path);
		q->ever_ready = TRUE;
		q->up = TRUE;
		q->ram_size = 0;
		q->has_stats = FALSE;
		q->stats_enabled = FALSE;
		q->in_stats = FALSE;
		vmcg_dvm_backend_ready(q->vm, q->pid);
		vmcg_qmp_execute(qmp, "query-memdev", NULL, on_memdev, q);
		q->in_query = TRUE;
		vmcg_qmp_execute(qmp, "query-balloon", NULL, on_balloon, q);
		/*
		 * The safety polls and the stats of VMs adopted together (a
		 * daemon start) spread over their periods, not all in one tick.
		 */
		q->balloon_asked_usec =
			(int64_t)vmcg_daemon_now_usec(vmcg_dvm_daemon(q->vm)) -
			g_random_int_range(0, (gint32)(BALLOON_SAFETY_POLL_USEC / 1000)) * 1000;
		q->stats_asked_usec = 0;
		set_balloon_path(q, NULL);
		find_balloon(q, "/machine/peripheral");
		find_balloon(q, "/machine/peripheral-anon");
	} else if (state == VMCG_QMP_STATE_DISCONNECTED) {
		/* Never connected yet: still "connecting" (QEMU may not have started). */
		if (!q->ever_ready)
			return;
		q->pid = 0;
		q->in_query = q->in_stats = FALSE;
		q->has_stats = FALSE;
		/* vmcg_dvm_backend_gone() leaves the warning to us: rate-limited per peer. */
		if (q->up)
			peer_warning(q, "connection lost: %s; its charge leaves the tree",
				     error ? error->message : "closed");
		q->up = FALSE;
		vmcg_dvm_backend_gone(q->vm, error ? error->message : "closed");
	}
}

static gboolean qmp_check_address(const char *address, GError **error)
{
	if (!address || !g_path_is_absolute(address) || strlen(address) >= 108) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "qmp must be the absolute path of a unix socket (under 108 bytes)");
		return FALSE;
	}
	return TRUE;
}

static VmcgBackend *qmp_create(VmcgDvm *vm, const char *address)
{
	QmpBackend *q = g_new0(QmpBackend, 1);

	q->vm = vm;
	q->path = g_strdup(address);
	q->qmp = vmcg_qmp_new(address, NULL);
	vmcg_qmp_set_state_callback(q->qmp, on_qmp_state, q);
	vmcg_qmp_set_event_callback(q->qmp, on_qmp_event, q);
	vmcg_qmp_set_fast_event_callback(q->qmp, on_qmp_event_fast);
	/*
	 * 0.5 s to 30 s: a QEMU that restarts after running a while comes back
	 * within 0.5 s (vmcg_qmp_healthy() resets the schedule); one that is
	 * gone, or a peer that keeps failing after the handshake, costs one
	 * connection, a line of log per 5 minutes (peer_warning()) and no
	 * /proc scan (the pid is SO_PEERCRED) per 30 s.
	 */
	vmcg_qmp_set_reconnect(q->qmp, TRUE, 500, 30000);
	return (VmcgBackend *)q;
}

static void qmp_connect(VmcgBackend *b)
{
	vmcg_qmp_connect(qb(b)->qmp);
}

/*
 * Guest statistics once per stats-interval, which is also the guest's own
 * polling interval (guest-stats-polling-interval, set in
 * on_balloon_path()): QEMU's timer asks the guest every interval, so the
 * stats change no more often than that, and asking every interval/2 read
 * each one twice. The reply is at most an interval old plus a tick; when
 * the guest's period (its interval plus its answer's latency, as QEMU
 * re-arms the timer after the answer) drifts past ours, one read sees the
 * same "last-update" and the next a new one: at most two intervals and a
 * tick, under stats-max-age (five intervals by default). Half a tick of
 * slack, so that a tick that came a little early does not skip a whole
 * tick.
 */
static bool stats_due(const QmpBackend *q, uint64_t now, uint64_t interval)
{
	uint64_t tick = vmcg_dvm_daemon(q->vm)->interval_usec;
	uint64_t due = interval > tick / 2 ? interval - tick / 2 : interval;

	return now - (uint64_t)q->stats_asked_usec >= due;
}

static void qmp_poll(VmcgBackend *b, uint64_t now)
{
	QmpBackend *q = qb(b);
	uint64_t interval = policy_of(q)->stats_interval_usec;
	bool stats, query;

	/* Healthy again: its next warning is logged at once, with what was not. */
	if (q->log_limit.until_usec && vmcg_qmp_healthy(q->qmp)) {
		guint n = vmcg_qmp_log_limit_reset(&q->log_limit);

		if (n)
			g_message("VM %s: QMP healthy again (%u warnings about it were not logged)",
				  name_of(q), n);
	}
	stats = q->stats_enabled && interval && !q->in_stats && stats_due(q, now, interval);
	query = (stats || balloon_query == VMCG_QMP_BALLOON_QUERY_EVERY_TICK) &&
		vmcg_dvm_balloon_moving(q->vm);
	if (!q->in_query &&
	    (query || now - (uint64_t)q->balloon_asked_usec >= BALLOON_SAFETY_POLL_USEC)) {
		q->in_query = TRUE;
		q->balloon_asked_usec = (int64_t)now;
		nr_issued++;
		/* Before the qom-get: QEMU answers in order, the size comes first. */
		vmcg_qmp_execute_fast(q->qmp, "query-balloon", NULL, on_balloon_fast, on_balloon,
				      q);
	}
	if (stats) {
		if (!q->stats_args) {
			g_autoptr(json_object) args = json_object_new_object();

			json_object_object_add(args, "path",
					       json_object_new_string(q->balloon_path));
			json_object_object_add(args, "property",
					       json_object_new_string("guest-stats"));
			q->stats_args = g_strdup(
				json_object_to_json_string_ext(args, JSON_C_TO_STRING_PLAIN));
		}
		/* After the first, a random phase: VMs adopted together ask apart. */
		q->stats_asked_usec =
			q->stats_asked_usec
				? (int64_t)now
				: (int64_t)now -
					  g_random_int_range(0, (gint32)MAX(1, interval / 2000)) *
						  1000;
		q->in_stats = TRUE;
		nr_issued++;
		vmcg_qmp_execute_fast(q->qmp, "qom-get", q->stats_args, on_stats_fast, on_stats, q);
	}
}

static void qmp_set_balloon(VmcgBackend *b, uint64_t bytes)
{
	QmpBackend *q = qb(b);
	char args[40];

	/* A number only: printed, no json-c object (vmcg_qmp_execute_fast()). */
	g_snprintf(args, sizeof(args), "{\"value\":%" G_GINT64_FORMAT "}", (gint64)bytes);
	nr_issued++;
	vmcg_qmp_execute_fast(q->qmp, "balloon", args, on_ignore_fast, on_ignore, q);
}

static void on_stopped(VmcgQmp *qmp, json_object *ret, const GError *error, gpointer userdata)
{
	QmpBackend *q = userdata;

	(void)qmp;
	(void)ret;
	if (error) {
		if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
			peer_warning(q, "cannot pause it: %s", error->message);
		return;
	}
	vmcg_dvm_backend_paused(q->vm);
}

static void qmp_pause(VmcgBackend *b)
{
	vmcg_qmp_execute(qb(b)->qmp, "stop", NULL, on_stopped, b);
}

static void qmp_resume(VmcgBackend *b)
{
	vmcg_qmp_execute(qb(b)->qmp, "cont", NULL, on_ignore, b);
}

static void qmp_destroy(VmcgBackend *b)
{
	vmcg_qmp_execute(qb(b)->qmp, "quit", NULL, on_ignore, b);
}

static pid_t qmp_pid(VmcgBackend *b)
{
	return qb(b)->pid;
}

static void qmp_describe(VmcgBackend *b, VmcgBackendInfo *ret)
{
	ret->address = qb(b)->path;
	ret->qmp = qb(b)->path;
}

static void qmp_free(VmcgBackend *b)
{
	QmpBackend *q = qb(b);

	/* Pending commands fail with CANCELLED: their callbacks see a live q. */
	vmcg_qmp_free(q->qmp);
	g_free(q->path);
	set_balloon_path(q, NULL);
	g_free(q);
}

const VmcgBackendOps vmcg_backend_qmp = {
	.name = "qmp",
	.check_address = qmp_check_address,
	.create = qmp_create,
	.connect = qmp_connect,
	.poll = qmp_poll,
	.set_balloon = qmp_set_balloon,
	.pause = qmp_pause,
	.resume = qmp_resume,
	.destroy = qmp_destroy,
	.pid = qmp_pid,
	.describe = qmp_describe,
	.free = qmp_free,
};

const VmcgBackendOps *vmcg_backend_find(const char *name)
{
	static const VmcgBackendOps *const backends[] = { &vmcg_backend_qmp };

	for (size_t i = 0; i < G_N_ELEMENTS(backends); i++) {
		if (strcmp(backends[i]->name, name) == 0)
			return backends[i];
	}
	return NULL;
}

/* ---- test seams (backend-qmp-priv.h) ---- */

VmcgQmp *vmcg_backend_qmp_client(VmcgBackend *b)
{
	return qb(b)->qmp;
}

void vmcg_backend_qmp_fake_ready(VmcgBackend *b, uint64_t ram_bytes, const char *balloon_path)
{
	QmpBackend *q = qb(b);

	q->ever_ready = TRUE;
	q->pid = 0;
	vmcg_dvm_backend_ready(q->vm, 0);
	q->ram_size = ram_bytes;
	vmcg_dvm_backend_ram(q->vm, ram_bytes);
	set_balloon_path(q, g_strdup(balloon_path));
	q->stats_enabled = TRUE;
	q->balloon_asked_usec = (int64_t)vmcg_daemon_now_usec(vmcg_dvm_daemon(q->vm));
}

unsigned vmcg_backend_qmp_in_flight(VmcgBackend *b)
{
	return (unsigned)qb(b)->in_query + (unsigned)qb(b)->in_stats;
}

void vmcg_backend_qmp_stats_due(VmcgBackend *b)
{
	qb(b)->stats_asked_usec = 0;
}

unsigned long vmcg_backend_qmp_issued(void)
{
	return nr_issued;
}

void vmcg_backend_qmp_set_balloon_query(VmcgQmpBalloonQuery mode)
{
	balloon_query = mode;
}

void vmcg_backend_qmp_balloon_due(VmcgBackend *b)
{
	qb(b)->balloon_asked_usec = -(int64_t)BALLOON_SAFETY_POLL_USEC;
}
