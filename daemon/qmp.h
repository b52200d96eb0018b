/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * QMP client: one connection to one QEMU's QMP unix socket, driven by the
 * GLib main loop, plus the pure layers under it (a framer that cuts the byte
 * stream into JSON objects, and a parser that classifies one object).
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

#include <gio/gio.h>
#include <json-c/json.h>

/*
 * json_object via g_autoptr(). Guarded so that another daemon header may
 * define the same cleanup: G_DEFINE_AUTOPTR_CLEANUP_FUNC twice in one
 * translation unit does not compile.
 */
#ifndef VMCG_JSON_OBJECT_AUTOPTR
#define VMCG_JSON_OBJECT_AUTOPTR
G_DEFINE_AUTOPTR_CLEANUP_FUNC(json_object, json_object_put)
#endif

/*
 * 10 MiB: the limit on one QMP message. The largest reply of a stock
 * QEMU 7.2 is query-qmp-schema at ~200 KiB, so this is 50x headroom.
 */
#define VMCG_QMP_MAX_MESSAGE_BYTES_DEFAULT ((size_t)10 << 20)

/*
 * 64 MiB: the limit on what json-c may allocate for one message. The byte
 * limit alone does not bound memory: json-c 0.16 turns the 10 MiB message
 * [{},{},...] into 2.7 GB of objects (264 bytes per byte; one empty object
 * is ~800 bytes of hash table). The framer charges each token its json-c
 * cost as it goes (see vmcg_qmp_framer_feed()) and refuses the message when
 * the charge passes this. QEMU 7.2's query-qmp-schema reply is charged
 * 7.8 MB (json-c really allocates 4.7 MB for it), so this is 8x headroom
 * over the largest real reply while one hostile QEMU cannot make the daemon
 * allocate more than this plus one read buffer (and the message's bytes).
 */
#define VMCG_QMP_MAX_TREE_BYTES_DEFAULT ((size_t)64 << 20)

/*
 * 64: nesting deeper than this is refused. QEMU's deepest replies
 * (query-qmp-schema, query-block with backing chains) nest fewer than 20.
 */
#define VMCG_QMP_MAX_DEPTH 64

/* Errors of the VMCG_QMP_ERROR domain; transport errors use G_IO_ERROR. */
#define VMCG_QMP_ERROR (vmcg_qmp_error_quark())
GQuark vmcg_qmp_error_quark(void);

typedef enum {
	/* The peer does not speak QMP: bad JSON, wrong types, wrong message. */
	VMCG_QMP_ERROR_PROTOCOL,
	/* A message over max_message_bytes, or over max_tree_bytes. */
	VMCG_QMP_ERROR_MESSAGE_TOO_BIG,
	/*
	 * The connection went down while the command was on the wire: it may
	 * or may not have run. The message says why the connection went down.
	 */
	VMCG_QMP_ERROR_DISCONNECTED,
	/* QEMU answered "error"; the code is its class, the message its desc. */
	VMCG_QMP_ERROR_GENERIC_ERROR,
	VMCG_QMP_ERROR_COMMAND_NOT_FOUND,
	VMCG_QMP_ERROR_DEVICE_NOT_ACTIVE,
	VMCG_QMP_ERROR_DEVICE_NOT_FOUND,
	VMCG_QMP_ERROR_KVM_MISSING_CAP,
	/* A class QEMU 7.2 does not have; the message is "Class: desc". */
	VMCG_QMP_ERROR_UNKNOWN_CLASS,
} VmcgQmpError;

/* ------------------------------------------------------------------------
 * Parser: one complete message, no I/O.
 */

typedef enum {
	VMCG_QMP_MSG_GREETING,
	VMCG_QMP_MSG_RETURN,
	VMCG_QMP_MSG_ERROR,
	VMCG_QMP_MSG_EVENT,
} VmcgQmpMessageType;

/*
 * A classified message. @root owns the JSON tree; every other pointer
 * borrows from it and lives until vmcg_qmp_message_clear().
 */
typedef struct {
	VmcgQmpMessageType type;
	json_object *root;

	/* RETURN, ERROR: the "id" member, NULL when absent. */
	const char *id;
	/* RETURN: the "return" member, never NULL (JSON null is refused). */
	json_object *ret;
	/* ERROR: "error"."class" (never empty) and "error"."desc". */
	const char *error_class;
	const char *error_desc;
	/* EVENT: name (never empty), "data" (NULL when absent), timestamp. */
	const char *event;
	json_object *data;
	/* Microseconds since the epoch; -1 when QEMU could not read the clock. */
	gint64 timestamp_usec;
	/* GREETING: "QMP"."version"."qemu", "package", "capabilities". */
	int qemu_major, qemu_minor, qemu_micro;
	const char *qemu_package;
	json_object *capabilities;
} VmcgQmpMessage;

void vmcg_qmp_message_clear(VmcgQmpMessage *msg);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(VmcgQmpMessage, vmcg_qmp_message_clear)

/**
 * vmcg_qmp_parse() - parse and classify one complete QMP message
 * @buf: the message, optionally surrounded by whitespace (CRLF included)
 * @len: bytes in @buf; need not be NUL-terminated
 * @ret: filled on success only; release with vmcg_qmp_message_clear()
 * @error: set on failure
 *
 * Applies the framer's checks (one JSON object, strict JSON, valid UTF-8,
 * integers that fit 64 bits, finite numbers, depth, the default size limits)
 * and then vmcg_qmp_classify().
 *
 * Return: 0; -EBADMSG for anything that is not one well-formed QMP message
 * (VMCG_QMP_ERROR_PROTOCOL); -EMSGSIZE for one over the default limits
 * (VMCG_QMP_ERROR_MESSAGE_TOO_BIG).
 */
int vmcg_qmp_parse(const char *buf, size_t len, VmcgQmpMessage *ret, GError **error);

/**
 * vmcg_qmp_classify() - classify one parsed JSON value as a QMP message
 * @obj: the value; on success @ret->root holds a new reference to it
 * @ret: filled on success only
 * @error: set on failure
 *
 * Exactly one of "QMP", "return", "error" and "event" must be present, each
 * with the types qmp-spec.rst gives; unknown members are ignored, as the
 * spec's compatibility rules require. "id" must be a string: vmcg sends only
 * string ids, so any other id cannot be an answer to it.
 *
 * Return: 0, or -EBADMSG (VMCG_QMP_ERROR_PROTOCOL).
 */
int vmcg_qmp_classify(json_object *obj, VmcgQmpMessage *ret, GError **error);

/* ------------------------------------------------------------------------
 * Framer: cuts a byte stream into JSON objects, no I/O.
 */

typedef struct VmcgQmpFramer VmcgQmpFramer;

/*
 * @max_message_bytes: bytes from a message's '{' to its '}' (0: default);
 * @max_tree_bytes: what json-c may allocate for it (0: default).
 */
VmcgQmpFramer *vmcg_qmp_framer_new(size_t max_message_bytes, size_t max_tree_bytes);
void vmcg_qmp_framer_free(VmcgQmpFramer *f);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VmcgQmpFramer, vmcg_qmp_framer_free)

/* Forget any partial message, and the error state. */
void vmcg_qmp_framer_reset(VmcgQmpFramer *f);

/* True while a message has started and not ended (for "EOF mid-message"). */
bool vmcg_qmp_framer_in_message(const VmcgQmpFramer *f);

/**
 * vmcg_qmp_framer_feed() - feed bytes of the stream
 * @f: the framer
 * @buf, @len: the next bytes of the stream
 * @ret_consumed: bytes of @buf used (set when the return is 0 or 1)
 * @ret_obj: the message (set when the return is 1; a new reference)
 * @error: set on failure
 *
 * Messages are JSON objects separated by any JSON whitespace (QEMU sends
 * CRLF); nothing else may stand between them. A persistent json_tokener
 * parses the stream incrementally, so a message may be split across any
 * number of calls and one call may hold several messages: feed the rest of
 * @buf again after a return of 1. A small lexer runs over the same bytes
 * ahead of json-c; it finds where each object ends (json-c's parse end must
 * agree), and refuses what json-c 0.16 would let through in strict mode: raw
 * control characters and invalid UTF-8 (overlong, surrogates) in strings,
 * "\u0000" and unpaired surrogate escapes, single-quoted strings, NaN and
 * Infinity, numbers outside JSON's grammar ("1.", "00", "-01"), integers
 * beyond 64 bits (json-c clamps them silently), nesting past
 * VMCG_QMP_MAX_DEPTH, and the size limits. No byte past either limit is ever
 * given to json-c. The lexer's errors give the byte offset in the message;
 * json-c's grammar errors do not, because where json-c notices one depends
 * on how the stream was cut into reads. Whatever the cuts, the same stream
 * gives the same messages and the same error.
 *
 * After an error the framer refuses everything until vmcg_qmp_framer_reset().
 *
 * Return: 1 with a message, 0 when all of @buf was used and no message
 * ended, -EBADMSG (VMCG_QMP_ERROR_PROTOCOL) or -EMSGSIZE
 * (VMCG_QMP_ERROR_MESSAGE_TOO_BIG).
 */
int vmcg_qmp_framer_feed(VmcgQmpFramer *f, const char *buf, size_t len, size_t *ret_consumed,
			 json_object **ret_obj, GError **error);

/* ------------------------------------------------------------------------
 * Client.
 */

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
} VmcgQmpOptions;

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
 * vmcg_qmp_connect() runs again after a delay: @min_ms after a connection
 * that had reached READY, then doubling with each attempt that fails to
 * reach READY, up to @max_ms. The delay never drops to zero, so a QEMU that
 * accepts and at once closes costs at most one attempt per @min_ms, and one
 * that is gone (the VM was shut down) one attempt per @max_ms. Turning it
 * off cancels a pending delay. It only acts on later disconnections: call
 * vmcg_qmp_connect() for the first connection.
 */
void vmcg_qmp_set_reconnect(VmcgQmp *qmp, bool on, guint min_ms, guint max_ms);

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

#endif
