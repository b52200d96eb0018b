// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * QMP client of vmcgd: one non-blocking unix socket on the GLib main loop,
 * with a deadline on every phase and every command. The layers under it are
 * pure and live elsewhere: json-stream.c cuts the bytes into JSON objects,
 * qmp-message.c classifies them.
 *
 * Sources: one per GMainContext, shared by all its clients (the hub). A
 * main-loop iteration prepares, polls and checks every source and poll
 * record of the context; with one source per client that was O(N) per
 * iteration, and vmcgd runs ~20 iterations a tick (polls in slices). The
 * hub owns an epoll set: each client's socket is in it (EPOLLOUT while
 * connect() is pending, then EPOLLIN, and EPOLLOUT as well while output is
 * pending), and the main loop polls only the epoll fd. On dispatch the hub
 * takes the ready sockets with epoll_wait(0), level-triggered, so a client
 * that has more to read is reported again next time, after the others
 * (the kernel puts it back at the tail of its ready list).
 *
 * Deadlines: each client has one timer, its earliest deadline (the phase's
 * and each command's), and the hub keeps the clients with a timer in a
 * GSequence ordered by (timer, client): setting a timer is O(log N), and
 * the hub's ready time is the first one. What a client writes in one
 * main-loop iteration is sent by the hub's prepare, in one send(2) (see
 * hub_prepare()); only what does not fit waits for EPOLLOUT. 1000 VMs cost
 * the main loop one source and one poll record.
 */
#ifndef G_LOG_DOMAIN
#define G_LOG_DOMAIN "vmcg-qmp"
#endif

#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gio/gunixsocketaddress.h>

#include "qmp.h"
#include "log.h"

/*
 * Defaults. Connecting to a local socket takes microseconds, and QEMU
 * greets and answers qmp_capabilities from its main loop at once: 5 s
 * without an answer means that loop is stuck, not slow. 10 s for a command:
 * the commands vmcgd sends (balloon, qom-get of guest stats, query-*) do
 * not wait for the guest.
 */
#define CONNECT_TIMEOUT_MS_DEFAULT 5000
#define GREETING_TIMEOUT_MS_DEFAULT 5000
#define CAPABILITIES_TIMEOUT_MS_DEFAULT 5000
#define COMMAND_TIMEOUT_MS_DEFAULT 10000
#define RECONNECT_MIN_MS_DEFAULT 100
#define RECONNECT_MAX_MS_DEFAULT 30000

/*
 * A full listen backlog makes a non-blocking AF_UNIX connect() fail with
 * EAGAIN instead of waiting (net/unix/af_unix.c): retry this often until
 * the connect deadline.
 */
#define CONNECT_RETRY_MS 50

/*
 * The one read buffer, on the stack of the read callback. One read per
 * dispatch, so one QEMU that floods cannot starve the others; 64 KiB takes
 * the largest real reply (query-qmp-schema, ~200 KiB) in four reads.
 */
#define READ_BYTES (64 * 1024)

enum phase {
	PHASE_IDLE,	    /* DISCONNECTED */
	PHASE_START,	    /* CONNECTING, the start idle is pending */
	PHASE_CONNECT,	    /* connect() in progress */
	PHASE_GREETING,	    /* waiting for the greeting */
	PHASE_CAPABILITIES, /* qmp_capabilities sent */
	PHASE_READY,
};

enum cmd_where {
	CMD_QUEUED, /* waiting for READY, not on the wire */
	CMD_SENT,   /* on the wire (or in the output buffer) */
	CMD_FAILED, /* its callback is due from the main loop, with ->error */
};

typedef struct {
	GList link; /* in one of the client's queues; data points here */
	enum cmd_where where;
	VmcgQmp *qmp;
	char id[VMCG_QMP_ID_MAX];
	char *wire; /* while queued */
	guint timeout_ms;
	/* Monotonic; -1 once it no longer matters (failed, or completed). */
	gint64 deadline_usec;
	GError *error; /* while failed */
	VmcgQmpFastReplyFn fast;
	VmcgQmpReplyFn cb;
	gpointer userdata;
	char command[]; /* one allocation with the Cmd */
} Cmd;

struct VmcgQmp {
	/* Held across user callbacks so that vmcg_qmp_free() from one is safe. */
	int refs;
	bool freed;
	char *path;
	VmcgQmpOptions opts;
	GMainContext *ctx;

	VmcgQmpState state;
	enum phase phase;
	/* Bumped by every teardown: a callback compares it to see one happened. */
	guint64 gen;
	GSocket *sock;
	int fd; /* ->sock's, -1 without one: read and written on every reply */
	GSource *start_source;
	GSource *retry_source; /* the next connect() after EAGAIN */
	/* The context's shared source (see the top); NULL once freed. */
	struct Hub *hub;
	GIOCondition fd_events; /* what the epoll set watches; 0: not in it */
	/* The earliest deadline, or -1; in hub->timers while >= 0. */
	gint64 timer_usec;
	GSequenceIter *timer_iter;
	/* The phase's deadline (connect, greeting, capabilities), or -1. */
	gint64 phase_deadline_usec;
	VmcgJsonStream *stream;
	GString *out; /* written but not sent */
	/* In hub->flush: ->out is sent before the main loop next polls. */
	GList flush_link;
	bool flush_pending;
	char *caps_id;

	GQueue queued;
	GQueue sent; /* in issue order */
	GQueue failed;
	GSource *fail_source;
	guint64 last_id;

	bool have_version;
	int qemu_major, qemu_minor, qemu_micro;

	bool reconnect;
	/* The delay armed after the last failure, 0: none since a healthy one. */
	guint reconnect_min_ms, reconnect_max_ms, reconnect_last_ms;
	/* When this connection became READY, and when it last answered; -1: not. */
	gint64 ready_usec, answered_usec;
	GSource *reconnect_source;

	VmcgQmpStateFn state_fn;
	gpointer state_data;
	VmcgQmpEventFn event_fn;
	VmcgQmpFastEventFn fast_event_fn;
	gpointer event_data;
};

static void qmp_ref(VmcgQmp *q)
{
	q->refs++;
}

static void qmp_unref(VmcgQmp *q)
{
	if (--q->refs > 0)
		return;
	g_assert(q->freed);
	g_assert(g_queue_is_empty(&q->queued) && g_queue_is_empty(&q->sent) &&
		 g_queue_is_empty(&q->failed));
	vmcg_json_stream_free(q->stream);
	g_string_free(q->out, TRUE);
	g_main_context_unref(q->ctx);
	g_free(q->path);
	g_free(q);
}

static void source_clear(GSource **s)
{
	if (*s) {
		g_source_destroy(*s);
		g_source_unref(*s);
		*s = NULL;
	}
}

static GSource *timeout_new(VmcgQmp *q, guint ms, GSourceFunc fn, gpointer data)
{
	GSource *s = g_timeout_source_new(ms);

	g_source_set_callback(s, fn, data, NULL);
	g_source_attach(s, q->ctx);
	return s;
}

/*
 * The hub: the one source of a context's clients. It lives while the
 * context has clients (->clients counts the ones not freed) and is found
 * through hubs, keyed by context; only the lookup is shared between
 * threads, the rest belongs to the context's thread like its clients.
 */
typedef struct Hub {
	GSource source;
	GMainContext *ctx; /* the key in hubs; the clients hold a reference */
	int epfd;
	guint clients;
	GSequence *timers; /* VmcgQmp *, by (timer_usec, address) */
	GQueue flush;	   /* VmcgQmp *: output to send before the next poll */
} Hub;

static GMutex hubs_lock;
static GHashTable *hubs;

/*
 * Ready sockets taken per dispatch. Level-triggered, so the rest come in
 * the next iteration: 128 bounds one dispatch to an eighth of the fleet at
 * 1000 VMs, twice the poll slices' 64 VMs. A ready socket costs its recv(2)
 * and its replies, 10 to 20 us here (docs/performance.md): 256 made
 * dispatches of 2 to 3.6 ms.
 */
#define EPOLL_BATCH 128

static void hub_dispatch_io(Hub *hub);
static void hub_dispatch_deadlines(Hub *hub, gint64 now);
static void flush_now(VmcgQmp *q);

/*
 * Before the main loop polls: send what the clients wrote since the last
 * poll, one send(2) per client whatever the number of commands (a tick's
 * balloon target, stats poll and query-balloon to one VM go out
 * together). No callback runs from here: what cannot be sent now, or
 * fails, waits for EPOLLOUT, and the error is reported from the dispatch.
 */
static gboolean hub_prepare(GSource *s, gint *timeout)
{
	Hub *hub = (Hub *)s;
	GList *l;

	while ((l = g_queue_pop_head_link(&hub->flush))) {
		VmcgQmp *q = l->data;

		q->flush_pending = false;
		flush_now(q);
	}
	*timeout = -1;
	return FALSE;
}

/* I/O first (a reply that came in time is not timed out), then deadlines. */
static gboolean hub_dispatch(GSource *s, GSourceFunc fn, gpointer data)
{
	Hub *hub = (Hub *)s;
	gint64 now = g_source_get_time(s), ready = g_source_get_ready_time(s);

	(void)fn;
	(void)data;
	hub_dispatch_io(hub);
	if (ready >= 0 && ready <= now)
		hub_dispatch_deadlines(hub, now);
	return G_SOURCE_CONTINUE;
}

static void hub_finalize(GSource *s)
{
	Hub *hub = (Hub *)s;

	close(hub->epfd);
	g_sequence_free(hub->timers);
}

static GSourceFuncs hub_funcs = {
	.prepare = hub_prepare,
	.dispatch = hub_dispatch,
	.finalize = hub_finalize,
};

/* The hub of @ctx, made if it has none; counts one client more. */
static Hub *hub_join(GMainContext *ctx)
{
	Hub *hub;

	g_mutex_lock(&hubs_lock);
	if (!hubs)
		hubs = g_hash_table_new(NULL, NULL);
	hub = g_hash_table_lookup(hubs, ctx);
	if (!hub) {
		int epfd = epoll_create1(EPOLL_CLOEXEC);

		/* Only EMFILE, ENFILE or ENOMEM: out of resources, as g_malloc() aborts. */
		if (epfd < 0)
			g_error("epoll_create1: %s", g_strerror(errno));
		hub = (Hub *)g_source_new(&hub_funcs, sizeof(Hub));
		hub->ctx = ctx;
		hub->epfd = epfd;
		hub->timers = g_sequence_new(NULL);
		g_queue_init(&hub->flush);
		g_source_set_name(&hub->source, "vmcg-qmp");
		g_source_add_unix_fd(&hub->source, epfd, G_IO_IN);
		/*
		 * Not blocked while it dispatches: GLib blocks a source that
		 * cannot recurse by taking its poll records out of the
		 * context's list and putting them back (block_source() in
		 * gmain.c). vmcgd never runs a nested main loop from a QMP
		 * callback, so the source cannot recurse anyway.
		 */
		g_source_set_can_recurse(&hub->source, TRUE);
		g_source_attach(&hub->source, ctx);
		g_hash_table_insert(hubs, ctx, hub);
	}
	hub->clients++;
	g_mutex_unlock(&hubs_lock);
	return hub;
}

/*
 * One client fewer; the last one destroys the hub. Safe from inside the
 * hub's dispatch: GLib holds a reference on the source until it returns,
 * and the finalizer closes the epoll fd.
 */
static void hub_leave(Hub *hub)
{
	g_mutex_lock(&hubs_lock);
	if (--hub->clients > 0) {
		g_mutex_unlock(&hubs_lock);
		return;
	}
	g_hash_table_remove(hubs, hub->ctx);
	g_mutex_unlock(&hubs_lock);
	g_source_destroy(&hub->source);
	g_source_unref(&hub->source);
}

static gint timer_cmp(gconstpointer a, gconstpointer b, gpointer data)
{
	const VmcgQmp *x = a, *y = b;

	(void)data;
	if (x->timer_usec != y->timer_usec)
		return x->timer_usec < y->timer_usec ? -1 : 1;
	return (uintptr_t)x < (uintptr_t)y ? -1 : (uintptr_t)x > (uintptr_t)y;
}

/* Set @q's timer to @t (-1: none): O(log N), and the hub's ready time follows. */
static void client_timer_set(VmcgQmp *q, gint64 t)
{
	Hub *hub = q->hub;
	GSequenceIter *first;

	if (q->timer_usec == t)
		return;
	q->timer_usec = t;
	if (t < 0) {
		if (q->timer_iter)
			g_sequence_remove(q->timer_iter);
		q->timer_iter = NULL;
	} else if (!q->timer_iter) {
		q->timer_iter = g_sequence_insert_sorted(hub->timers, q, timer_cmp, NULL);
	} else {
		g_sequence_sort_changed(q->timer_iter, timer_cmp, NULL);
	}
	first = g_sequence_get_begin_iter(hub->timers);
	/* A no-op when the first timer stays (g_source_set_ready_time() compares). */
	g_source_set_ready_time(&hub->source,
				g_sequence_iter_is_end(first)
					? -1
					: ((VmcgQmp *)g_sequence_get(first))->timer_usec);
}

/* Watch the socket for @events (and HUP and ERR, which epoll always reports). */
static void fd_watch(VmcgQmp *q, GIOCondition events)
{
	struct epoll_event ev = {
		.events = (events & G_IO_IN ? EPOLLIN : 0u) | (events & G_IO_OUT ? EPOLLOUT : 0u),
		.data.ptr = q,
	};

	if (q->fd_events == events)
		return;
	/* ENOMEM or ENOSPC (fs.epoll.max_user_watches): out of resources. */
	if (epoll_ctl(q->hub->epfd, q->fd_events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
		      g_socket_get_fd(q->sock), &ev) < 0)
		g_error("%s: epoll_ctl: %s", q->path, g_strerror(errno));
	q->fd_events = events;
}

/* Before the socket is closed: a dup of the fd elsewhere would keep it in the set. */
static void fd_unwatch(VmcgQmp *q)
{
	if (q->fd_events)
		epoll_ctl(q->hub->epfd, EPOLL_CTL_DEL, g_socket_get_fd(q->sock), NULL);
	q->fd_events = 0;
}

static void cmd_free(Cmd *cmd)
{
	g_clear_error(&cmd->error);
	g_free(cmd->wire);
	g_free(cmd);
}

static GQueue *cmd_queue(VmcgQmp *q, enum cmd_where where)
{
	return where == CMD_QUEUED ? &q->queued : where == CMD_SENT ? &q->sent : &q->failed;
}

static void cmd_unlink(VmcgQmp *q, Cmd *cmd)
{
	g_queue_unlink(cmd_queue(q, cmd->where), &cmd->link);
}

static void cmd_push(VmcgQmp *q, Cmd *cmd, enum cmd_where where)
{
	cmd->where = where;
	g_queue_push_tail_link(cmd_queue(q, where), &cmd->link);
}

/* Call @cmd's callback and free it; @cmd is on no queue. */
static void cmd_complete(Cmd *cmd, json_object *ret, const GError *error)
{
	VmcgQmp *q = cmd->qmp;

	cmd->deadline_usec = -1;
	if (cmd->cb)
		cmd->cb(q, ret, error, cmd->userdata);
	cmd_free(cmd);
}

static gboolean on_fail_idle(gpointer data)
{
	VmcgQmp *q = data;
	GList *l;

	qmp_ref(q);
	source_clear(&q->fail_source);
	while (!q->freed && (l = g_queue_pop_head_link(&q->failed))) {
		Cmd *cmd = l->data;

		cmd_complete(cmd, NULL, cmd->error);
	}
	qmp_unref(q);
	return G_SOURCE_REMOVE;
}

/* Fail @cmd (on no queue) from the main loop, with @error (taken). */
static void cmd_fail_later(VmcgQmp *q, Cmd *cmd, GError *error)
{
	/* Its deadline no longer matters: it ends with @error either way. */
	cmd->deadline_usec = -1;
	g_clear_error(&cmd->error);
	cmd->error = error;
	cmd_push(q, cmd, CMD_FAILED);
	if (!q->fail_source) {
		q->fail_source = g_idle_source_new();
		g_source_set_callback(q->fail_source, on_fail_idle, q, NULL);
		g_source_attach(q->fail_source, q->ctx);
	}
}

static void notify_state(VmcgQmp *q, const GError *error)
{
	if (q->state_fn)
		q->state_fn(q, q->state, error, q->state_data);
}

/* Close the socket and forget the connection; no callback. */
static void close_transport(VmcgQmp *q)
{
	q->gen++;
	source_clear(&q->start_source);
	source_clear(&q->retry_source);
	fd_unwatch(q);
	q->phase_deadline_usec = -1;
	if (q->sock) {
		g_socket_close(q->sock, NULL);
		g_clear_object(&q->sock);
	}
	q->fd = -1;
	vmcg_json_stream_reset(q->stream);
	g_string_truncate(q->out, 0);
	if (q->flush_pending)
		g_queue_unlink(&q->hub->flush, &q->flush_link);
	q->flush_pending = false;
	g_clear_pointer(&q->caps_id, g_free);
	q->phase = PHASE_IDLE;
	q->state = VMCG_QMP_STATE_DISCONNECTED;
	q->ready_usec = q->answered_usec = -1;
}

static gboolean on_reconnect(gpointer data)
{
	VmcgQmp *q = data;

	source_clear(&q->reconnect_source);
	vmcg_qmp_connect(q);
	return G_SOURCE_REMOVE;
}

/*
 * The connection is gone because of @reason (taken): fail what it carried,
 * arm the reconnect delay, tell the owner. Called from main-loop callbacks
 * only, which must hold a reference and must not touch the connection
 * afterwards without checking ->gen.
 */
static void teardown(VmcgQmp *q, GError *reason)
{
	bool healthy = vmcg_qmp_healthy(q);
	GList *l;

	close_transport(q);
	while ((l = g_queue_pop_head_link(&q->sent)))
		cmd_fail_later(q, l->data,
			       g_error_new(VMCG_QMP_ERROR, VMCG_QMP_ERROR_DISCONNECTED,
					   "connection lost with the command in flight: %s",
					   reason->message));
	while ((l = g_queue_pop_head_link(&q->queued)))
		cmd_fail_later(q, l->data,
			       g_error_new(G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED, "not sent: %s",
					   reason->message));
	if (q->reconnect) {
		source_clear(&q->reconnect_source);
		q->reconnect_last_ms = vmcg_qmp_reconnect_next_ms(
			q->reconnect_last_ms, q->reconnect_min_ms, q->reconnect_max_ms, healthy);
		q->reconnect_source = timeout_new(q, q->reconnect_last_ms, on_reconnect, q);
	}
	notify_state(q, reason);
	g_error_free(reason);
}

static void G_GNUC_PRINTF(4, 5)
	teardown_new(VmcgQmp *q, GQuark domain, int code, const char *fmt, ...)
{
	g_autofree char *what = NULL;
	va_list ap;

	va_start(ap, fmt);
	what = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	teardown(q, g_error_new(domain, code, "%s: %s", q->path, what));
}

/* @err (taken) from GIO, with what was being done and the socket path. */
static void teardown_gio(VmcgQmp *q, GError *err, const char *doing)
{
	g_prefix_error(&err, "%s: %s: ", q->path, doing);
	teardown(q, err);
}

static void queue_write(VmcgQmp *q, const char *data, size_t len);
static void flush_later(VmcgQmp *q);

static void go_ready(VmcgQmp *q)
{
	GList *l;

	q->phase_deadline_usec = -1;
	q->phase = PHASE_READY;
	q->state = VMCG_QMP_STATE_READY;
	/* Not a reset of the reconnect delay: only a healthy connection is (teardown()). */
	q->ready_usec = g_get_monotonic_time();
	/* Commands issued while connecting go first, in issue order. */
	while ((l = g_queue_pop_head_link(&q->queued))) {
		Cmd *cmd = l->data;

		cmd_push(q, cmd, CMD_SENT);
		g_string_append(q->out, cmd->wire);
		g_clear_pointer(&cmd->wire, g_free);
	}
	flush_later(q);
	notify_state(q, NULL);
}

static void send_capabilities(VmcgQmp *q)
{
	g_autofree char *wire = NULL;

	q->caps_id = vmcg_qmp_id(++q->last_id);
	/* No capability is enabled: vmcgd needs no out-of-band commands. */
	wire = g_strdup_printf("{\"execute\":\"qmp_capabilities\",\"id\":\"%s\"}\r\n", q->caps_id);
	queue_write(q, wire, strlen(wire));
	q->phase = PHASE_CAPABILITIES;
}

static void phase_deadline_set(VmcgQmp *q, guint ms);

static void handle_reply(VmcgQmp *q, const VmcgQmpMessage *m)
{
	g_autoptr(GError) err = NULL;
	Cmd *cmd = NULL;

	if (q->phase == PHASE_CAPABILITIES) {
		if (!m->id || strcmp(m->id, q->caps_id) != 0) {
			vmcg_debug("%s: dropping a reply with unknown id %s", q->path,
				   m->id ? m->id : "(none)");
			return;
		}
		if (m->type == VMCG_QMP_MSG_ERROR) {
			teardown(q, vmcg_qmp_message_to_error(m, "qmp_capabilities refused: "));
			return;
		}
		go_ready(q);
		return;
	}
	for (GList *l = q->sent.head; l && m->id; l = l->next) {
		if (strcmp(((Cmd *)l->data)->id, m->id) == 0) {
			cmd = l->data;
			break;
		}
	}
	if (!cmd) {
		/* qmp-spec.rst: clients should drop replies with unknown ids. */
		vmcg_debug("%s: dropping a reply with unknown id %s", q->path,
			   m->id ? m->id : "(none)");
		return;
	}
	cmd_unlink(q, cmd);
	/* An error reply is an answer too: the monitor works. */
	q->answered_usec = g_get_monotonic_time();
	if (m->type == VMCG_QMP_MSG_ERROR) {
		err = vmcg_qmp_message_to_error(m, "");
		cmd_complete(cmd, NULL, err);
	} else {
		cmd_complete(cmd, m->ret, NULL);
	}
}

/* One message of the current connection; may call back and tear down. */
static void handle_message(VmcgQmp *q, json_object *obj)
{
	g_auto(VmcgQmpMessage) m = { 0 };
	GError *err = NULL;

	if (vmcg_qmp_classify(obj, &m, &err) < 0) {
		g_prefix_error(&err, "%s: ", q->path);
		teardown(q, err);
		return;
	}
	if (q->phase == PHASE_GREETING) {
		if (m.type != VMCG_QMP_MSG_GREETING) {
			teardown_new(q, VMCG_QMP_ERROR, VMCG_QMP_ERROR_PROTOCOL,
				     "expected the QMP greeting, got %s",
				     vmcg_qmp_message_kind(&m));
			return;
		}
		q->have_version = true;
		q->qemu_major = m.qemu_major;
		q->qemu_minor = m.qemu_minor;
		q->qemu_micro = m.qemu_micro;
		send_capabilities(q);
		phase_deadline_set(q, q->opts.capabilities_timeout_ms);
		return;
	}
	switch (m.type) {
	case VMCG_QMP_MSG_GREETING:
		teardown_new(q, VMCG_QMP_ERROR, VMCG_QMP_ERROR_PROTOCOL, "a second QMP greeting");
		return;
	case VMCG_QMP_MSG_EVENT:
		/* QEMU sends none before qmp_capabilities; if it did, pass it on. */
		if (q->event_fn)
			q->event_fn(q, m.event, m.data, m.timestamp_usec, q->event_data);
		return;
	case VMCG_QMP_MSG_RETURN:
	case VMCG_QMP_MSG_ERROR:
		handle_reply(q, &m);
		return;
	}
}

static const char *phase_eof_note(enum phase phase)
{
	switch (phase) {
	case PHASE_GREETING:
		return " before the greeting";
	case PHASE_CAPABILITIES:
		return " during capabilities negotiation";
	default:
		return "";
	}
}

/* The command on the wire with id @id (@len bytes), or NULL. */
static Cmd *sent_cmd(VmcgQmp *q, const char *id, size_t len)
{
	for (GList *l = q->sent.head; l; l = l->next) {
		Cmd *cmd = l->data;

		if (strncmp(cmd->id, id, len) == 0 && cmd->id[len] == '\0')
			return cmd;
	}
	return NULL;
}

/*
 * A whole message in @text, read flat: true when a fast reader took it
 * (the command is complete, or the event delivered). False, with nothing
 * done, for everything else, which then goes to json-c. May call back.
 */
static bool fast_message_flat(VmcgQmp *q, const VmcgJsonFlat *flat)
{
	VmcgQmpFastMessage m;
	Cmd *cmd;

	if (q->phase != PHASE_READY || !vmcg_qmp_fast_classify(flat, &m))
		return false;
	if (m.type == VMCG_QMP_MSG_EVENT)
		return q->fast_event_fn &&
		       q->fast_event_fn(m.event, flat, m.data, m.timestamp_usec, q->event_data);
	cmd = m.id ? sent_cmd(q, m.id, m.id_len) : NULL;
	if (!cmd || !cmd->fast || !cmd->fast(flat, m.ret, cmd->userdata))
		return false;
	/* Taken: complete it as handle_reply() would, without its callback. */
	cmd_unlink(q, cmd);
	q->answered_usec = g_get_monotonic_time();
	cmd->deadline_usec = -1;
	cmd_free(cmd);
	return true;
}

static bool fast_message(VmcgQmp *q, const char *text, size_t len)
{
	VmcgJsonFlat flat;

	return vmcg_json_flat_parse(text, len, &flat) && fast_message_flat(q, &flat);
}

/* The socket is readable (or closed); called from io_dispatch(), which holds a reference. */
static void on_readable(VmcgQmp *q)
{
	char buf[READ_BYTES];
	GError *err = NULL;
	guint64 gen = q->gen;
	ssize_t n;
	size_t pos = 0;

	/* recv(2) itself: GSocket's wrapper costs a GError per EAGAIN. */
	n = recv(q->fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n < 0) {
		int e = errno;

		if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR)
			return;
		teardown_gio(
			q, g_error_new_literal(G_IO_ERROR, g_io_error_from_errno(e), g_strerror(e)),
			"read");
		return;
	}
	if (n == 0) {
		teardown_new(q, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
			     "QMP peer closed the connection%s%s",
			     vmcg_json_stream_in_message(q->stream) ? " in the middle of a message"
								    : "",
			     phase_eof_note(q->phase));
		return;
	}
	while (pos < (size_t)n) {
		json_object *obj = NULL;
		const char *text = NULL;
		size_t used, text_len = 0;
		VmcgJsonFlat flat;
		int r;

		/*
		 * The plainest messages (all of a tick's) skip even the lexer:
		 * read flat where they lie, taken if a fast reader wants them.
		 */
		if (q->phase == PHASE_READY &&
		    vmcg_json_stream_next_flat(q->stream, buf + pos, (size_t)n - pos, &used,
					       &flat)) {
			if (fast_message_flat(q, &flat)) {
				pos += used;
				if (q->freed || q->gen != gen)
					return;
				continue;
			}
			/* Declined: json-c's, without asking the fast readers again. */
			r = vmcg_json_stream_feed(q->stream, buf + pos, (size_t)n - pos, &used,
						  &obj, &err);
		} else {
			r = vmcg_json_stream_feed_text(q->stream, buf + pos, (size_t)n - pos, &used,
						       &obj, &text, &text_len, &err);
		}

		if (r == 2) {
			if (fast_message(q, text, text_len)) {
				pos += used;
				if (q->freed || q->gen != gen)
					return;
				continue;
			}
			r = vmcg_json_stream_parse_text(q->stream, text, text_len, &obj, &err);
			r = r < 0 ? r : 1;
		}
		if (r < 0) {
			vmcg_qmp_error_from_stream(err);
			g_prefix_error(&err, "%s: ", q->path);
			teardown(q, err);
			return;
		}
		pos += used;
		if (r == 0)
			break;
		handle_message(q, obj);
		json_object_put(obj);
		if (q->freed || q->gen != gen)
			return;
	}
}

/*
 * Send what waits in ->out; Return: -errno of a failure other than a full
 * socket, else 0. What is left waits for EPOLLOUT.
 */
static int send_out(VmcgQmp *q)
{
	ssize_t n = 0;
	int e = 0;

	while (q->out->len) {
		n = send(q->fd, q->out->str, q->out->len, MSG_DONTWAIT | MSG_NOSIGNAL);
		e = n < 0 ? errno : 0;
		if (e == EINTR)
			continue;
		if (n <= 0)
			break;
		g_string_erase(q->out, 0, n);
	}
	if (!q->out->len) {
		fd_watch(q, G_IO_IN);
		return 0;
	}
	fd_watch(q, G_IO_IN | G_IO_OUT);
	return e && e != EAGAIN && e != EWOULDBLOCK ? -e : 0;
}

/* The socket is writable and output is pending; called from io_dispatch(). */
static void on_writable(VmcgQmp *q)
{
	int r = send_out(q);

	if (r < 0)
		teardown_gio(
			q,
			g_error_new_literal(G_IO_ERROR, g_io_error_from_errno(-r), g_strerror(-r)),
			"write");
}

/* From the hub's prepare: no callback may run, so a failure waits for EPOLLOUT (on_writable()). */
static void flush_now(VmcgQmp *q)
{
	if (q->sock && q->out->len)
		(void)send_out(q);
}

/* ->out has new bytes: send them before the main loop polls again (hub_prepare()). */
static void flush_later(VmcgQmp *q)
{
	/* Waiting for EPOLLOUT already: the socket is full, the dispatch sends. */
	if (q->flush_pending || !q->out->len || (q->fd_events & G_IO_OUT))
		return;
	q->flush_pending = true;
	q->flush_link.data = q;
	g_queue_push_tail_link(&q->hub->flush, &q->flush_link);
}

/*
 * Written to the socket before the main loop next polls, all of a client's
 * commands of one main-loop iteration in one send(2); and so never inline,
 * so that no vmcg_qmp_*() call fails inline.
 */
static void queue_write(VmcgQmp *q, const char *data, size_t len)
{
	g_string_append_len(q->out, data, (gssize)len);
	flush_later(q);
}

static void connected(VmcgQmp *q)
{
	q->phase = PHASE_GREETING;
	phase_deadline_set(q, q->opts.greeting_timeout_ms);
	fd_watch(q, G_IO_IN);
}

/* connect() finished; called from io_dispatch(), which holds a reference. */
static void on_connect_ready(VmcgQmp *q)
{
	GError *err = NULL;

	if (!g_socket_check_connect_result(q->sock, &err)) {
		teardown_gio(q, err, "connect");
		return;
	}
	connected(q);
}

static gboolean on_connect_retry(gpointer data);

static void try_connect(VmcgQmp *q)
{
	g_autoptr(GSocketAddress) addr = NULL;
	GError *err = NULL;

	if (strlen(q->path) >= sizeof(((struct sockaddr_un *)NULL)->sun_path)) {
		teardown_new(q, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			     "socket path longer than a unix socket address can hold");
		return;
	}
	if (q->sock) {
		fd_unwatch(q);
		g_socket_close(q->sock, NULL);
		g_clear_object(&q->sock);
	}
	q->sock = g_socket_new(G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
			       G_SOCKET_PROTOCOL_DEFAULT, &err);
	if (!q->sock) {
		teardown_gio(q, err, "socket");
		return;
	}
	q->fd = g_socket_get_fd(q->sock);
	g_socket_set_blocking(q->sock, FALSE);
	addr = g_unix_socket_address_new(q->path);
	if (g_socket_connect(q->sock, addr, NULL, &err)) {
		connected(q);
		return;
	}
	if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_PENDING)) {
		g_error_free(err);
		fd_watch(q, G_IO_OUT);
		return;
	}
	if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
		/* The backlog is full: QEMU is not accepting. Try again. */
		g_error_free(err);
		q->retry_source = timeout_new(q, CONNECT_RETRY_MS, on_connect_retry, q);
		return;
	}
	teardown_gio(q, err, "connect");
}

static gboolean on_connect_retry(gpointer data)
{
	VmcgQmp *q = data;

	source_clear(&q->retry_source);
	qmp_ref(q);
	try_connect(q);
	qmp_unref(q);
	return G_SOURCE_REMOVE;
}

/* The phase's deadline passed; called from on_deadline(), which holds a reference. */
static void phase_timeout(VmcgQmp *q)
{
	q->phase_deadline_usec = -1;
	switch (q->phase) {
	case PHASE_CONNECT:
		teardown_new(q, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
			     "connect timed out after %u ms (QEMU does not accept)",
			     q->opts.connect_timeout_ms);
		break;
	case PHASE_GREETING:
		teardown_new(q, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
			     "no QMP greeting within %u ms after connecting",
			     q->opts.greeting_timeout_ms);
		break;
	case PHASE_CAPABILITIES:
		teardown_new(q, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
			     "qmp_capabilities not answered within %u ms",
			     q->opts.capabilities_timeout_ms);
		break;
	default:
		g_assert_not_reached();
	}
}

static gboolean on_start(gpointer data)
{
	VmcgQmp *q = data;
	guint64 gen = q->gen;

	source_clear(&q->start_source);
	q->phase = PHASE_CONNECT;
	qmp_ref(q);
	notify_state(q, NULL);
	if (!q->freed && q->gen == gen) {
		phase_deadline_set(q, q->opts.connect_timeout_ms);
		try_connect(q);
	}
	qmp_unref(q);
	return G_SOURCE_REMOVE;
}

/*
 * @cmd (queued or sent) missed its deadline; called from on_deadline(),
 * which holds a reference.
 */
static void cmd_timeout(VmcgQmp *q, Cmd *cmd)
{
	bool was_sent = cmd->where == CMD_SENT;
	guint64 gen = q->gen;
	g_autoptr(GError) err = NULL;
	g_autofree char *what = NULL;

	cmd_unlink(q, cmd);
	what = g_strdup_printf("QMP command %s (id %s) not answered within %u ms", cmd->command,
			       cmd->id, cmd->timeout_ms);
	err = g_error_new(G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "%s: %s", q->path, what);
	cmd_complete(cmd, NULL, err);
	/* QMP answers in order: everything behind it is stuck; see qmp.h. */
	if (was_sent && !q->freed && q->gen == gen)
		teardown_new(q, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "%s", what);
}

/* The command with the earliest deadline at or before @now, in issue order on ties. */
static Cmd *cmd_overdue(VmcgQmp *q, gint64 now)
{
	GQueue *queues[] = { &q->sent, &q->queued };
	Cmd *best = NULL;

	for (size_t i = 0; i < G_N_ELEMENTS(queues); i++)
		for (GList *l = queues[i]->head; l; l = l->next) {
			Cmd *cmd = l->data;

			if (cmd->deadline_usec >= 0 && cmd->deadline_usec <= now &&
			    (!best || cmd->deadline_usec < best->deadline_usec))
				best = cmd;
		}
	return best;
}

/*
 * Ready the timer at the earliest deadline. Only here (after the timer
 * fired) and when a deadline is added: a command that completes leaves the
 * timer where it was, and the timer that then fires early finds nothing
 * due and sets the next one. That costs one wakeup per command deadline
 * window at most, and saves a scan of the queues and a GSequence removal
 * and insertion per reply (disarming it when the last command completes
 * made a tick cost 1 to 2 us more per VM at 1000 VMs). The clients of one
 * tick, whose timers were set together, then fire together, which
 * hub_dispatch_deadlines() takes DEADLINE_BATCH at a time.
 */
static void timer_arm(VmcgQmp *q)
{
	GQueue *queues[] = { &q->sent, &q->queued };
	gint64 t = q->phase_deadline_usec;

	for (size_t i = 0; i < G_N_ELEMENTS(queues); i++)
		for (GList *l = queues[i]->head; l; l = l->next) {
			gint64 d = ((Cmd *)l->data)->deadline_usec;

			if (d >= 0 && (t < 0 || d < t))
				t = d;
		}
	client_timer_set(q, t);
}

/* A new deadline @t: the timer fires at it unless it fires earlier already. */
static void timer_add(VmcgQmp *q, gint64 t)
{
	if (q->timer_usec < 0 || t < q->timer_usec)
		client_timer_set(q, t);
}

static void phase_deadline_set(VmcgQmp *q, guint ms)
{
	q->phase_deadline_usec = g_get_monotonic_time() + (gint64)ms * 1000;
	timer_add(q, q->phase_deadline_usec);
}

/*
 * Whatever is due at @now, earliest first: a timeout may tear the connection
 * down and so fail (not time out) the commands behind it, as separate timers
 * firing in deadline order would. Called from io_dispatch(), which holds a
 * reference.
 */
static void on_deadline(VmcgQmp *q, gint64 now)
{
	client_timer_set(q, -1);
	while (!q->freed) {
		Cmd *cmd = cmd_overdue(q, now);
		gint64 phase = q->phase_deadline_usec;

		if (phase >= 0 && phase <= now && (!cmd || phase < cmd->deadline_usec))
			phase_timeout(q);
		else if (cmd)
			cmd_timeout(q, cmd);
		else
			break;
	}
	if (!q->freed)
		timer_arm(q);
}

/*
 * The socket of @q is ready for @rev; called from hub_dispatch_io(), which
 * holds a reference. Any callback may free the client or tear the
 * connection down: ->freed and ->gen say so.
 */
static void client_io(VmcgQmp *q, GIOCondition rev)
{
	guint64 gen = q->gen;

	if (q->phase == PHASE_CONNECT) {
		on_connect_ready(q);
		return;
	}
	if (rev & (G_IO_IN | G_IO_HUP | G_IO_ERR))
		on_readable(q);
	if (!q->freed && q->gen == gen && (rev & G_IO_OUT) && q->out->len)
		on_writable(q);
}

static GIOCondition epoll_to_cond(uint32_t events)
{
	return (events & EPOLLIN ? G_IO_IN : 0) | (events & EPOLLOUT ? G_IO_OUT : 0) |
	       (events & EPOLLHUP ? G_IO_HUP : 0) | (events & EPOLLERR ? G_IO_ERR : 0);
}

/*
 * Every ready socket of this batch. A callback may free any client of the
 * batch or close its connection (and open the next one): each is held by
 * a reference from before the first callback, and skipped if it was freed
 * or its connection is not the one the event was for (->gen).
 */
static void hub_dispatch_io(Hub *hub)
{
	struct epoll_event ev[EPOLL_BATCH];
	guint64 gen[EPOLL_BATCH];
	int n = epoll_wait(hub->epfd, ev, EPOLL_BATCH, 0);

	for (int i = 0; i < n; i++) {
		VmcgQmp *q = ev[i].data.ptr;

		qmp_ref(q);
		gen[i] = q->gen;
	}
	for (int i = 0; i < n; i++) {
		VmcgQmp *q = ev[i].data.ptr;

		if (!q->freed && q->gen == gen[i] && q->fd_events)
			client_io(q, epoll_to_cond(ev[i].events));
	}
	for (int i = 0; i < n; i++)
		qmp_unref(ev[i].data.ptr);
}

/*
 * Clients whose deadlines are handled per dispatch. Commands issued in one
 * tick share a deadline, so a QEMU fleet that stops answering (a host
 * stall) times out together: 1000 clients' timeouts, teardowns and
 * callbacks in one main-loop iteration would hold it for tens of
 * milliseconds. The rest stay due, and the hub's ready time with them:
 * the next iteration takes the next batch, the API's requests in between.
 */
#define DEADLINE_BATCH 64

/*
 * The first DEADLINE_BATCH clients whose timer is at or before @now, taken
 * (and referenced) before the first callback, which may free or re-arm
 * any of them.
 */
static void hub_dispatch_deadlines(Hub *hub, gint64 now)
{
	g_autoptr(GPtrArray) due = g_ptr_array_new();

	for (GSequenceIter *it = g_sequence_get_begin_iter(hub->timers);
	     !g_sequence_iter_is_end(it) && due->len < DEADLINE_BATCH;
	     it = g_sequence_iter_next(it)) {
		VmcgQmp *q = g_sequence_get(it);

		if (q->timer_usec > now)
			break;
		qmp_ref(q);
		g_ptr_array_add(due, q);
	}
	for (guint i = 0; i < due->len; i++) {
		VmcgQmp *q = due->pdata[i];

		if (!q->freed && q->timer_usec >= 0 && q->timer_usec <= now)
			on_deadline(q, now);
	}
	for (guint i = 0; i < due->len; i++)
		qmp_unref(due->pdata[i]);
}

VmcgQmp *vmcg_qmp_new(const char *socket_path, const VmcgQmpOptions *opts)
{
	VmcgQmp *q = g_new0(VmcgQmp, 1);

	q->refs = 1;
	q->path = g_strdup(socket_path);
	if (opts)
		q->opts = *opts;
	if (!q->opts.connect_timeout_ms)
		q->opts.connect_timeout_ms = CONNECT_TIMEOUT_MS_DEFAULT;
	if (!q->opts.greeting_timeout_ms)
		q->opts.greeting_timeout_ms = GREETING_TIMEOUT_MS_DEFAULT;
	if (!q->opts.capabilities_timeout_ms)
		q->opts.capabilities_timeout_ms = CAPABILITIES_TIMEOUT_MS_DEFAULT;
	if (!q->opts.command_timeout_ms)
		q->opts.command_timeout_ms = COMMAND_TIMEOUT_MS_DEFAULT;
	if (!q->opts.healthy_ms)
		q->opts.healthy_ms = VMCG_QMP_HEALTHY_MS;
	{
		VmcgJsonStreamOptions so =
			vmcg_qmp_stream_options(q->opts.max_message_bytes, q->opts.max_tree_bytes);

		q->stream = vmcg_json_stream_new(&so);
	}
	q->out = g_string_sized_new(256);
	q->ctx = g_main_context_ref_thread_default();
	q->phase_deadline_usec = -1;
	q->timer_usec = -1;
	q->fd = -1;
	q->hub = hub_join(q->ctx);
	g_queue_init(&q->queued);
	g_queue_init(&q->sent);
	g_queue_init(&q->failed);
	q->reconnect_min_ms = RECONNECT_MIN_MS_DEFAULT;
	q->reconnect_max_ms = RECONNECT_MAX_MS_DEFAULT;
	q->reconnect_last_ms = 0;
	q->ready_usec = q->answered_usec = -1;
	return q;
}

void vmcg_qmp_free(VmcgQmp *q)
{
	GList *l;

	if (!q || q->freed)
		return;
	q->freed = true;
	q->state_fn = NULL;
	q->event_fn = NULL;
	q->fast_event_fn = NULL;
	/* What was issued before this call still goes out, as if sent at once. */
	if (q->phase == PHASE_READY)
		flush_now(q);
	close_transport(q);
	source_clear(&q->reconnect_source);
	source_clear(&q->fail_source);
	client_timer_set(q, -1);
	hub_leave(q->hub);
	q->hub = NULL;
	/* Oldest first; execute() from these callbacks completes at once. */
	for (;;) {
		g_autoptr(GError) err = NULL;
		Cmd *cmd;

		if (!(l = g_queue_pop_head_link(&q->failed)) &&
		    !(l = g_queue_pop_head_link(&q->sent)) &&
		    !(l = g_queue_pop_head_link(&q->queued)))
			break;
		cmd = l->data;
		err = g_error_new(G_IO_ERROR, G_IO_ERROR_CANCELLED, "%s: QMP client freed",
				  q->path);
		cmd_complete(cmd, NULL, err);
	}
	source_clear(&q->fail_source);
	qmp_unref(q);
}

void vmcg_qmp_set_state_callback(VmcgQmp *q, VmcgQmpStateFn fn, gpointer userdata)
{
	if (q->freed)
		return;
	q->state_fn = fn;
	q->state_data = userdata;
}

void vmcg_qmp_set_event_callback(VmcgQmp *q, VmcgQmpEventFn fn, gpointer userdata)
{
	if (q->freed)
		return;
	q->event_fn = fn;
	q->event_data = userdata;
}

void vmcg_qmp_set_fast_event_callback(VmcgQmp *q, VmcgQmpFastEventFn fn)
{
	if (q->freed)
		return;
	q->fast_event_fn = fn;
}

void vmcg_qmp_connect(VmcgQmp *q)
{
	if (q->freed || q->state != VMCG_QMP_STATE_DISCONNECTED)
		return;
	source_clear(&q->reconnect_source);
	q->state = VMCG_QMP_STATE_CONNECTING;
	q->phase = PHASE_START;
	q->start_source = g_idle_source_new();
	g_source_set_callback(q->start_source, on_start, q, NULL);
	g_source_attach(q->start_source, q->ctx);
}

void vmcg_qmp_set_reconnect(VmcgQmp *q, bool on, guint min_ms, guint max_ms)
{
	q->reconnect = on && !q->freed;
	q->reconnect_min_ms = min_ms ? min_ms : RECONNECT_MIN_MS_DEFAULT;
	q->reconnect_max_ms = max_ms ? max_ms : RECONNECT_MAX_MS_DEFAULT;
	q->reconnect_max_ms = MAX(q->reconnect_max_ms, q->reconnect_min_ms);
	q->reconnect_last_ms = 0;
	if (!q->reconnect)
		source_clear(&q->reconnect_source);
}

guint vmcg_qmp_reconnect_next_ms(guint last_ms, guint min_ms, guint max_ms, bool healthy)
{
	if (healthy || !last_ms)
		return min_ms;
	return (guint)MIN((guint64)last_ms * 2, (guint64)max_ms);
}

bool vmcg_qmp_healthy(const VmcgQmp *q)
{
	return q->state == VMCG_QMP_STATE_READY && q->ready_usec >= 0 &&
	       q->answered_usec >= q->ready_usec &&
	       g_get_monotonic_time() - q->ready_usec >= (gint64)q->opts.healthy_ms * 1000;
}

bool vmcg_qmp_log_limit(VmcgQmpLogLimit *l, gint64 now_usec, gint64 period_usec,
			guint *ret_suppressed)
{
	if (l->until_usec && now_usec < l->until_usec) {
		l->suppressed++;
		return false;
	}
	*ret_suppressed = l->suppressed;
	l->suppressed = 0;
	l->until_usec = MAX(now_usec + period_usec, 1);
	return true;
}

guint vmcg_qmp_log_limit_reset(VmcgQmpLogLimit *l)
{
	guint n = l->suppressed;

	*l = (VmcgQmpLogLimit){ 0 };
	return n;
}

VmcgQmpState vmcg_qmp_get_state(const VmcgQmp *q)
{
	return q->state;
}

pid_t vmcg_qmp_peer_pid(const VmcgQmp *q)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (!q->sock || q->state != VMCG_QMP_STATE_READY ||
	    getsockopt(g_socket_get_fd(q->sock), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    len != sizeof(cred) || cred.pid <= 0)
		return 0;
	return cred.pid;
}

bool vmcg_qmp_get_qemu_version(const VmcgQmp *q, int *ret_major, int *ret_minor, int *ret_micro)
{
	if (!q->have_version)
		return false;
	*ret_major = q->qemu_major;
	*ret_minor = q->qemu_minor;
	*ret_micro = q->qemu_micro;
	return true;
}

/* @args, or else @args_json (see vmcg_qmp_execute_fast()), or neither. */
static void execute(VmcgQmp *q, const char *command, json_object *args, const char *args_json,
		    guint timeout_ms, VmcgQmpFastReplyFn fast, VmcgQmpReplyFn cb, gpointer userdata)
{
	g_autoptr(json_object) a = args;
	size_t clen = command ? strlen(command) : 0;
	Cmd *cmd = g_malloc0(sizeof(Cmd) + clen + 1);

	cmd->link.data = cmd;
	cmd->qmp = q;
	cmd->fast = fast;
	cmd->cb = cb;
	cmd->userdata = userdata;
	memcpy(cmd->command, command ? command : "", clen);
	cmd->timeout_ms = timeout_ms ? timeout_ms : q->opts.command_timeout_ms;
	cmd->deadline_usec = -1;

	if (q->freed) {
		/* From a callback run by vmcg_qmp_free(): no main loop is left. */
		g_autoptr(GError) err = g_error_new(G_IO_ERROR, G_IO_ERROR_CANCELLED,
						    "%s: QMP client freed", q->path);

		cmd_complete(cmd, NULL, err);
		return;
	}
	if (!command || !*command) {
		cmd_fail_later(q, cmd,
			       g_error_new(G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
					   "QMP command without a name"));
		return;
	}
	if (a && !json_object_is_type(a, json_type_object)) {
		cmd_fail_later(q, cmd,
			       g_error_new(G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
					   "arguments of QMP command %s must be an object, not %s",
					   command, json_type_to_name(json_object_get_type(a))));
		return;
	}
	if (q->state == VMCG_QMP_STATE_DISCONNECTED) {
		cmd_fail_later(q, cmd,
			       g_error_new(G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED,
					   "%s: QMP not connected", q->path));
		return;
	}

	vmcg_qmp_id_format(cmd->id, ++q->last_id);
	cmd->deadline_usec = g_get_monotonic_time() + (gint64)cmd->timeout_ms * 1000;
	timer_add(q, cmd->deadline_usec);
	if (q->phase == PHASE_READY) {
		/* Straight into the output, sent before the next poll. */
		cmd_push(q, cmd, CMD_SENT);
		vmcg_qmp_command_wire_append(q->out, command, a, args_json, cmd->id);
		flush_later(q);
	} else {
		GString *w = g_string_sized_new(128);

		vmcg_qmp_command_wire_append(w, command, a, args_json, cmd->id);
		cmd->wire = g_string_free(w, FALSE);
		cmd_push(q, cmd, CMD_QUEUED);
	}
}

void vmcg_qmp_execute_timeout(VmcgQmp *q, const char *command, json_object *args, guint timeout_ms,
			      VmcgQmpReplyFn cb, gpointer userdata)
{
	execute(q, command, args, NULL, timeout_ms, NULL, cb, userdata);
}

void vmcg_qmp_execute(VmcgQmp *q, const char *command, json_object *args, VmcgQmpReplyFn cb,
		      gpointer userdata)
{
	execute(q, command, args, NULL, 0, NULL, cb, userdata);
}

void vmcg_qmp_execute_fast(VmcgQmp *q, const char *command, const char *args_json,
			   VmcgQmpFastReplyFn fast, VmcgQmpReplyFn cb, gpointer userdata)
{
	execute(q, command, NULL, args_json, 0, fast, cb, userdata);
}
