/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * QMP messages, no I/O: classifying one JSON object that QEMU sent
 * (greeting, return, error, event), turning an error reply into a GError,
 * and writing the commands vmcg sends. Layered on json-stream.h (which cuts
 * the byte stream into objects) and under qmp.h (the client, which owns the
 * connection). What a reply's "return" holds is qmp-reply.h's business.
 */
#ifndef VMCG_DAEMON_QMP_MESSAGE_H
#define VMCG_DAEMON_QMP_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>
#include <json-c/json.h>

#include "json-flat.h"
#include "json-stream.h"

/* QMP's limits are the stream's defaults; json-stream.h says why. */
#define VMCG_QMP_MAX_MESSAGE_BYTES_DEFAULT VMCG_JSON_STREAM_MAX_MESSAGE_BYTES_DEFAULT
#define VMCG_QMP_MAX_TREE_BYTES_DEFAULT VMCG_JSON_STREAM_MAX_TREE_BYTES_DEFAULT
#define VMCG_QMP_MAX_DEPTH VMCG_JSON_STREAM_MAX_DEPTH_DEFAULT

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
	/*
	 * qmp-reply.h: a reply or event whose content is not what the command
	 * returns (wrong type, missing member, a value out of range).
	 */
	VMCG_QMP_ERROR_BAD_REPLY,
	/*
	 * qmp-reply.h: a well-formed reply without the value asked for: no
	 * balloon device, no memdev with a size, no guest statistics yet.
	 */
	VMCG_QMP_ERROR_NO_VALUE,
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
 * integers that fit 64 bits, finite numbers, depth, the default size limits;
 * see vmcg_json_stream_feed()) and then vmcg_qmp_classify().
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

/*
 * The same error in the VMCG_QMP_ERROR domain: VMCG_JSON_STREAM_ERROR_INVALID
 * becomes VMCG_QMP_ERROR_PROTOCOL, _TOO_BIG becomes _MESSAGE_TOO_BIG; the
 * message is kept. Other domains are left alone. @error may be NULL.
 */
void vmcg_qmp_error_from_stream(GError *error);

/* The options of a JSON stream of QMP messages (errors say "QMP message"). */
VmcgJsonStreamOptions vmcg_qmp_stream_options(size_t max_message_bytes, size_t max_tree_bytes);

/*
 * The fast path (qmp.c): a RETURN or an EVENT read by json-flat.h, with
 * what vmcg_qmp_classify() gives for it. Strings point into the message's
 * text.
 */
typedef struct {
	VmcgQmpMessageType type; /* RETURN or EVENT */
	/* RETURN: the "id" member (@id_len bytes, no escapes), NULL when absent. */
	const char *id;
	size_t id_len;
	int ret; /* RETURN: the node of "return", an object */
	/* EVENT: its name, NUL-terminated; "data" (an object's node, or -1). */
	char event[64];
	int data;
	gint64 timestamp_usec;
} VmcgQmpFastMessage;

/**
 * vmcg_qmp_fast_classify() - vmcg_qmp_classify() of a message read flat
 *
 * True for a RETURN whose "return" is an object, or an EVENT, that
 * vmcg_qmp_classify() classifies the same; false for anything else
 * (greetings, errors, anything it would refuse, escaped ids or names):
 * those go to json-c and vmcg_qmp_classify(), which says what is wrong.
 */
bool vmcg_qmp_fast_classify(const VmcgJsonFlat *f, VmcgQmpFastMessage *ret);

/*
 * An ERROR message as a GError: VMCG_QMP_ERROR_<class> with the "desc" as
 * the message (prefixed with @prefix); a class QEMU 7.2 does not have is
 * VMCG_QMP_ERROR_UNKNOWN_CLASS with "Class: desc".
 */
GError *vmcg_qmp_message_to_error(const VmcgQmpMessage *msg, const char *prefix);

/* "a greeting", "a reply", "an error reply", "an event": for error messages. */
const char *vmcg_qmp_message_kind(const VmcgQmpMessage *msg);

/*
 * The id of the @n-th command of a client, "vmcg-<n>": unique per client as
 * long as @n is.
 */
char *vmcg_qmp_id(guint64 n);

/* "vmcg-" and up to 20 digits, and the NUL. */
#define VMCG_QMP_ID_MAX 26

/* The same into @buf; Return: its length. */
size_t vmcg_qmp_id_format(char buf[VMCG_QMP_ID_MAX], guint64 n);

/*
 * One command as it goes on the wire: {"execute":..,"arguments":..,"id":..}
 * and CRLF. @args is an object or NULL (not consumed). Return: g_free() it.
 */
char *vmcg_qmp_command_wire(const char *command, json_object *args, const char *id);

/*
 * The same, appended to @w; the arguments are @args, or else @args_json
 * (an object's JSON text, written as it is), or none when both are NULL.
 */
void vmcg_qmp_command_wire_append(GString *w, const char *command, json_object *args,
				  const char *args_json, const char *id);

#endif
