/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * QMP client: one connection to one QEMU's QMP unix socket, driven by the
 * GLib main loop. The pure layers under it have their own headers:
 * json-stream.h cuts the byte stream into JSON objects, qmp-message.h
 * classifies one object (and is included here, so the error domain and
 * message types stay where they were), qmp-reply.h reads what a reply holds.
 *
 * Everything a QEMU sends is untrusted input (a guest can wedge or kill its
 * QEMU, a compromised QEMU can send anything): every read is non-blocking,
 * every phase has a deadline, a message larger than the limit is refused
 * before it is buffered, and any malformed message is a clear GError that
 * ends this connection only. One stuck or dead VM never blocks another.
 *
 * Threading: a VmcgQmp belongs to the thread-default GMainContext of the
 * thread that created it; all calls and all callbacks happen in that thread.
 *
 * Callbacks: the state, event and reply callbacks are only ever called from
 * that main context, never from inside a vmcg_qmp_*() call, with one
 * exception: vmcg_qmp_free() calls the callbacks of pending commands before
 * it returns. Any callback may call any vmcg_qmp_*() function, including
 * vmcg_qmp_free() on the VmcgQmp that called it.
 */
#ifndef VMCG_DAEMON_QMP_H
#define VMCG_DAEMON_QMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <gio/gio.h>
#include <json-c/json.h>

#include "qmp-message.h"

typedef struct VmcgQmp VmcgQmp;

typedef enum {
	VMCG_QMP_STATE_DISCONNECTED,
	/* Socket connect, greeting and qmp_capabilities. */
	VMCG_QMP_STATE_CONNECTING,
	/* Command mode: commands run and events arrive. */
	VMCG_QMP_STATE_READY,
} VmcgQmpState;

/* Zero fields take the defaults; a NULL options pointer takes them all. */
typedef struct {
	guint connect_timeout_ms;      /* default 5000 */
	guint greeting_timeout_ms;     /* default 5000 */
	guint capabilities_timeout_ms; /* default 5000 */
	guint command_timeout_ms;      /* default 10000 */
	size_t max_message_bytes;      /* default VMCG_QMP_MAX_MESSAGE_BYTES_DEFAULT */
	size_t max_tree_bytes;	       /* default VMCG_QMP_MAX_TREE_BYTES_DEFAULT */
	guint healthy_ms;	       /* default VMCG_QMP_HEALTHY_MS (reconnect) */
} VmcgQmpOptions;

/*
 * A connection is healthy once it has been READY this long and answered a
 * command: only then does the reconnect delay start again at its minimum.
 * 30 s: vmcgd asks every QEMU at least every 10 s (query-balloon), and a
 * command unanswered for 10 s ends the connection, so a peer that passes
 * the handshake and then fails (junk, no answers, EOF) never gets there;
 * a QEMU that ran for 30 s and then restarts is back within the minimum.
 */
#define VMCG_QMP_HEALTHY_MS 30000

/**
 * vmcg_qmp_reconnect_next_ms() - the reconnect schedule (pure)
 * @last_ms: the delay armed after the previous failure, 0 if none since the
 *           schedule was (re)started
 * @min_ms, @max_ms: the bounds (min_ms <= max_ms)
 * @healthy: the connection that just ended was healthy (VMCG_QMP_HEALTHY_MS)
 *
 * Return: the delay before the next attempt: @min_ms after a healthy
 * connection or the first failure, else double @last_ms, at most @max_ms.
 * Reaching READY alone does not reset it: a peer that greets, accepts
 * qmp_capabilities and then sends junk is a failing peer.
 */
guint vmcg_qmp_reconnect_next_ms(guint last_ms, guint min_ms, guint max_ms, bool healthy);

/**
 * vmcg_qmp_healthy() - the current connection is healthy: READY for the
 * healthy time (VmcgQmpOptions.healthy_ms) and at least one command answered.
 */
bool vmcg_qmp_healthy(const VmcgQmp *qmp);

/*
 * Rate limit for the warnings about one peer (pure; the caller keeps one
 * per peer, zeroed): the first warning is logged, later ones within
 * @period_usec are counted, and the first after the period is logged with
 * that count. A peer that fails every few seconds forever costs a line per
 * period, not a line per failure.
 */
typedef struct VmcgQmpLogLimit {
	gint64 until_usec; /* end of the current period; 0: none yet */
	guint suppressed;  /* warnings not logged in it */
} VmcgQmpLogLimit;

/*
 * 5 minutes: a broken peer stays visible in the log (and its count says how
 * bad it is) without filling it; 400 broken VMs cost ~1.3 lines a second.
 */
#define VMCG_QMP_LOG_PERIOD_USEC (5 * 60 * G_USEC_PER_SEC)

/**
 * vmcg_qmp_log_limit() - whether to log a warning at @now_usec
 * @ret_suppressed: when it returns true, how many were not logged since the
 *                  last one logged (0 for the first)
 */
bool vmcg_qmp_log_limit(VmcgQmpLogLimit *l, gint64 now_usec, gint64 period_usec,
			guint *ret_suppressed);
/** Start over (the peer is healthy again); returns the warnings not logged. */
guint vmcg_qmp_log_limit_reset(VmcgQmpLogLimit *l);

/*
 * State changes. @error is NULL except for DISCONNECTED, where it says why:
 * G_IO_ERROR_NOT_FOUND / _CONNECTION_REFUSED / ... from connect(),
 * G_IO_ERROR_TIMED_OUT naming the phase (connect, greeting, capabilities,
 * or the command that did not answer), G_IO_ERROR_CONNECTION_CLOSED for EOF
 * or a reset, VMCG_QMP_ERROR_PROTOCOL, VMCG_QMP_ERROR_MESSAGE_TOO_BIG, or the
 * VMCG_QMP_ERROR class code of a refused qmp_capabilities.
 */
typedef void (*VmcgQmpStateFn)(VmcgQmp *qmp, VmcgQmpState state, const GError *error,
			       gpointer userdata);

/*
 * An event. @data is borrowed for the call and NULL when the event has none;
 * @timestamp_usec is QEMU's clock (microseconds since the epoch), or -1.
 */
typedef void (*VmcgQmpEventFn)(VmcgQmp *qmp, const char *event, json_object *data,
			       gint64 timestamp_usec, gpointer userdata);

/*
 * The end of a command, called exactly once: either @ret (the "return"
 * member, borrowed for the call, never NULL) or @error:
 *   VMCG_QMP_ERROR_<class>       QEMU answered "error";
 *   G_IO_ERROR_TIMED_OUT         no answer within the command's deadline;
 *   VMCG_QMP_ERROR_DISCONNECTED  the connection went down while the command
 *                                was on the wire (it may have run);
 *   G_IO_ERROR_NOT_CONNECTED     never sent: no connection, or the handshake
 *                                it was waiting for failed;
 *   G_IO_ERROR_CANCELLED         vmcg_qmp_free();
 *   G_IO_ERROR_INVALID_ARGUMENT  a bad command name or arguments.
 */
typedef void (*VmcgQmpReplyFn)(VmcgQmp *qmp, json_object *ret, const GError *error,
			       gpointer userdata);

/*
 * The fast path of a reply (vmcg_qmp_execute_fast()): its "return", an
 * object, read flat (json-flat.h: node @ret of @f) instead of by json-c.
 * True: the reply is taken, and the command's VmcgQmpReplyFn is not called.
 * False, having done nothing: json-c parses the reply and the
 * VmcgQmpReplyFn gets it as usual (what does not fit a fast reader's
 * expectations, errors included, takes that way, so that the messages
 * about it stay the reply parser's). Not called for error replies.
 */
typedef bool (*VmcgQmpFastReplyFn)(const VmcgJsonFlat *f, int ret, gpointer userdata);

/* The same for events: @data is the node of "data", or -1. */
typedef bool (*VmcgQmpFastEventFn)(const char *event, const VmcgJsonFlat *f, int data,
				   gint64 timestamp_usec, gpointer userdata);

/**
 * vmcg_qmp_new() - a client for the QMP socket at @socket_path
 * @socket_path: a unix socket path (at most 107 bytes, as sun_path allows)
 * @opts: timeouts and limits, or NULL for the defaults
 *
 * The client starts DISCONNECTED and does nothing until vmcg_qmp_connect().
 * Return: the client; never NULL.
 */
VmcgQmp *vmcg_qmp_new(const char *socket_path, const VmcgQmpOptions *opts);

/**
 * vmcg_qmp_free() - cancel everything and free
 * @qmp: the client, or NULL
 *
 * Closes the connection and calls the callback of every command not yet
 * completed with G_IO_ERROR_CANCELLED, exactly once each, before returning.
 * The state callback is not called. Safe from inside any callback of @qmp.
 */
void vmcg_qmp_free(VmcgQmp *qmp);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VmcgQmp, vmcg_qmp_free)

void vmcg_qmp_set_state_callback(VmcgQmp *qmp, VmcgQmpStateFn fn, gpointer userdata);
void vmcg_qmp_set_event_callback(VmcgQmp *qmp, VmcgQmpEventFn fn, gpointer userdata);

/*
 * Events read flat first (VmcgQmpFastEventFn), given to the event callback
 * when @fn declines; same @userdata as the event callback's.
 */
void vmcg_qmp_set_fast_event_callback(VmcgQmp *qmp, VmcgQmpFastEventFn fn);

/**
 * vmcg_qmp_connect() - start connecting
 * @qmp: the client
 *
 * If DISCONNECTED, the state becomes CONNECTING at once (so commands issued
 * now wait for READY) and the work runs from the main loop: connect (the
 * connect deadline), read the greeting (the greeting deadline), send
 * qmp_capabilities without enabling any capability (the capabilities
 * deadline), then READY. The CONNECTING notification comes from the main
 * loop too. Does nothing while CONNECTING or READY; cancels a pending
 * reconnect delay and connects now.
 */
void vmcg_qmp_connect(VmcgQmp *qmp);

/**
 * vmcg_qmp_set_reconnect() - reconnect by itself after DISCONNECTED
 * @qmp: the client
 * @on: whether to reconnect
 * @min_ms: the first delay (0: 100 ms)
 * @max_ms: the largest delay (0, or less than @min_ms: 30 s, or @min_ms)
 *
 * After every transition to DISCONNECTED (other than by vmcg_qmp_free()),
 * vmcg_qmp_connect() runs again after a delay (vmcg_qmp_reconnect_next_ms()):
 * @min_ms after a connection that was healthy (vmcg_qmp_healthy()), else
 * doubling with each attempt, up to @max_ms, whether or not the attempt
 * reached READY. So a peer that passes the handshake and then closes or
 * sends junk costs one attempt per @max_ms once the doubling has run up,
 * as one that is gone (the VM was shut down) does. Turning it
 * off cancels a pending delay. It only acts on later disconnections: call
 * vmcg_qmp_connect() for the first connection.
 */
void vmcg_qmp_set_reconnect(VmcgQmp *qmp, bool on, guint min_ms, guint max_ms);

/**
 * vmcg_qmp_peer_pid() - the process at the other end of the connection
 * (SO_PEERCRED: whoever called listen() on the socket, QEMU for its QMP
 * monitor), in vmcgd's pid namespace; 0 if not connected or not known.
 * The kernel vouches for it: unlike a lookup of the socket's path, which
 * another process in its own mount namespace can bind as well, it cannot
 * be spoofed.
 */
pid_t vmcg_qmp_peer_pid(const VmcgQmp *q);
VmcgQmpState vmcg_qmp_get_state(const VmcgQmp *qmp);

/* The QEMU version from the greeting; false before the first greeting. */
bool vmcg_qmp_get_qemu_version(const VmcgQmp *qmp, int *ret_major, int *ret_minor, int *ret_micro);

/**
 * vmcg_qmp_execute() - run a command, with the default command deadline
 * @qmp: the client
 * @command: the command name, e.g. "query-status"
 * @args: its "arguments" object, or NULL; owned by the call in every case
 * @cb: called exactly once, from the main loop (see VmcgQmpReplyFn)
 * @userdata: for @cb
 *
 * Every command carries a unique "id" (never reused by this client) and its
 * reply is matched by it; replies with ids it did not send are dropped, as
 * qmp-spec.rst says clients should. While CONNECTING the command waits and
 * is sent right after qmp_capabilities succeeds; when DISCONNECTED it fails
 * with G_IO_ERROR_NOT_CONNECTED.
 *
 * The deadline runs from this call. A command that misses it fails with
 * G_IO_ERROR_TIMED_OUT and, if it had been sent, the connection is torn
 * down (DISCONNECTED, and the other commands on the wire fail with
 * VMCG_QMP_ERROR_DISCONNECTED). Why: QEMU runs in-band commands one at a
 * time in issue order, so every command behind an overdue one is stuck
 * behind it; the caller that gave up cannot know whether the command will
 * still take effect; and a QEMU whose monitor stopped answering is most
 * likely stuck in its main loop, which only a fresh connection (with its own
 * greeting deadline) can tell.
 */
void vmcg_qmp_execute(VmcgQmp *qmp, const char *command, json_object *args, VmcgQmpReplyFn cb,
		      gpointer userdata);

/* The same with its own deadline (0: the default command deadline). */
void vmcg_qmp_execute_timeout(VmcgQmp *qmp, const char *command, json_object *args,
			      guint timeout_ms, VmcgQmpReplyFn cb, gpointer userdata);

/*
 * The same for the commands of every tick: the arguments as JSON text
 * (@args_json, or NULL), an object that vmcgd wrote itself (printed once by
 * json-c and kept, or a format of numbers), put on the wire as it is, never
 * text that came from a peer or a user; and a fast path for the reply
 * (VmcgQmpFastReplyFn, or NULL), which json-c would otherwise turn into a
 * tree of heap objects only to read a number or two.
 */
void vmcg_qmp_execute_fast(VmcgQmp *qmp, const char *command, const char *args_json,
			   VmcgQmpFastReplyFn fast, VmcgQmpReplyFn cb, gpointer userdata);

#endif
