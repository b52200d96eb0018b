/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * JSON stream framer: cuts a byte stream into JSON objects, one at a time,
 * as the bytes arrive. No I/O, no main loop, nothing QMP-specific: QMP's
 * client (daemon/qmp.c) uses it for QEMU's stream of concatenated objects,
 * and a newline-delimited JSON channel can use it as it is.
 *
 * Everything fed to it is untrusted: a message larger than the limits is
 * refused before json-c sees the byte that crosses them, nesting is bounded,
 * and anything that is not strict JSON (RFC 8259) is a clear GError.
 *
 * The two framings differ only between values:
 *
 *   VMCG_JSON_STREAM_CONCATENATED  values follow each other with any JSON
 *                                  whitespace (or none) between them: what
 *                                  QMP sends ("{...}\r\n{...}").
 *   VMCG_JSON_STREAM_NEWLINE       NDJSON: one value per line. A newline
 *                                  inside a value is refused (JSON strings
 *                                  cannot hold a raw one, so it could only be
 *                                  whitespace between tokens), and after a
 *                                  value only spaces, tabs and CR may come
 *                                  before the newline that ends its line.
 *                                  Empty lines are skipped.
 *
 * In both, a value is returned as soon as its closing '}' arrives (an
 * NDJSON value does not wait for its newline), and only JSON objects are
 * values: a scalar or an array at the top is refused, as neither protocol
 * that uses this sends one.
 */
#ifndef VMCG_DAEMON_JSON_STREAM_H
#define VMCG_DAEMON_JSON_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <glib.h>
#include <json-c/json.h>

#include "json-flat.h"
#include "json-util.h" /* g_autoptr(json_object) */

/*
 * 10 MiB: QMP's limit on one message (the largest reply of a stock QEMU
 * 7.2, query-qmp-schema, is ~200 KiB: 50x headroom). Another protocol
 * passes its own.
 */
#define VMCG_JSON_STREAM_MAX_MESSAGE_BYTES_DEFAULT ((size_t)10 << 20)

/*
 * 64 MiB: the limit on what json-c may allocate for one message. The byte
 * limit alone does not bound memory: json-c 0.16 turns the 10 MiB message
 * [{},{},...] into 2.7 GB of objects (264 bytes per byte; one empty object
 * is ~800 bytes of hash table). The framer charges each token its json-c
 * cost as it goes (see vmcg_json_stream_feed()) and refuses the message when
 * the charge passes this. QEMU 7.2's query-qmp-schema reply is charged
 * 7.8 MB (json-c really allocates 4.7 MB for it), so this is 8x headroom
 * over the largest real QMP reply while one hostile peer cannot make the
 * daemon allocate more than this plus one read buffer (and the message's
 * bytes).
 */
#define VMCG_JSON_STREAM_MAX_TREE_BYTES_DEFAULT ((size_t)64 << 20)

/*
 * 64: nesting deeper than this is refused (the message itself is level 1).
 * QEMU's deepest replies (query-qmp-schema, query-block with backing chains)
 * nest fewer than 20.
 */
#define VMCG_JSON_STREAM_MAX_DEPTH_DEFAULT 64

/* Errors of the VMCG_JSON_STREAM_ERROR domain. */
#define VMCG_JSON_STREAM_ERROR (vmcg_json_stream_error_quark())
GQuark vmcg_json_stream_error_quark(void);

typedef enum {
	/* Not strict JSON, not an object, or bytes where none may stand. */
	VMCG_JSON_STREAM_ERROR_INVALID,
	/* Over max_message_bytes, or over max_tree_bytes. */
	VMCG_JSON_STREAM_ERROR_TOO_BIG,
} VmcgJsonStreamError;

typedef enum {
	VMCG_JSON_STREAM_CONCATENATED,
	VMCG_JSON_STREAM_NEWLINE,
} VmcgJsonStreamFraming;

/* Zero fields take the defaults; a NULL options pointer takes them all. */
typedef struct {
	VmcgJsonStreamFraming framing;
	/* Bytes from a message's '{' to its '}' (at most INT_MAX). */
	size_t max_message_bytes;
	/* What json-c may allocate for one message. */
	size_t max_tree_bytes;
	/* Nesting, the message itself counting 1 (at most 1024). */
	unsigned int max_depth;
	/* The noun of error messages, e.g. "QMP message"; NULL: "JSON message". */
	const char *what;
} VmcgJsonStreamOptions;

typedef struct VmcgJsonStream VmcgJsonStream;

/* Return: the framer, never NULL; @opts is copied (@opts->what must outlive it). */
VmcgJsonStream *vmcg_json_stream_new(const VmcgJsonStreamOptions *opts);
void vmcg_json_stream_free(VmcgJsonStream *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VmcgJsonStream, vmcg_json_stream_free)

/* Forget any partial message, and the error state (a new connection). */
void vmcg_json_stream_reset(VmcgJsonStream *s);

/* True while a message has started and not ended (for "EOF mid-message"). */
bool vmcg_json_stream_in_message(const VmcgJsonStream *s);

/**
 * vmcg_json_stream_feed() - feed bytes of the stream
 * @s: the framer
 * @buf, @len: the next bytes of the stream
 * @ret_consumed: bytes of @buf used (set when the return is 0 or 1)
 * @ret_obj: the message (set when the return is 1; a new reference)
 * @error: set on failure
 *
 * A persistent json_tokener parses the stream incrementally, so a message
 * may be split across any number of calls and one call may hold several
 * messages: feed the rest of @buf again after a return of 1. A small lexer
 * runs over the same bytes ahead of json-c; it finds where each object ends
 * (json-c's parse end must agree), and refuses what json-c 0.16 would let
 * through in strict mode: raw control characters and invalid UTF-8
 * (overlong, surrogates) in strings, "\u0000" and unpaired surrogate
 * escapes, single-quoted strings, NaN and Infinity, numbers outside JSON's
 * grammar ("1.", "00", "-01"), integers beyond 64 bits (json-c clamps them
 * silently), nesting past max_depth, and the size limits. No byte past
 * either limit is ever given to json-c. The lexer's errors give the byte
 * offset in the message; json-c's grammar errors do not, because where
 * json-c notices one depends on how the stream was cut into reads. Whatever
 * the cuts, the same stream gives the same messages and the same error.
 *
 * After an error the framer refuses everything until
 * vmcg_json_stream_reset(): a stream that lost its framing cannot find it
 * again.
 *
 * Return: 1 with a message, 0 when all of @buf was used and no message
 * ended, -EBADMSG (VMCG_JSON_STREAM_ERROR_INVALID) or -EMSGSIZE
 * (VMCG_JSON_STREAM_ERROR_TOO_BIG).
 */
int vmcg_json_stream_feed(VmcgJsonStream *s, const char *buf, size_t len, size_t *ret_consumed,
			  json_object **ret_obj, GError **error);

/**
 * vmcg_json_stream_feed_text() - vmcg_json_stream_feed(), leaving json-c out when it can
 * @ret_text, @ret_text_len: set when the return is 2
 *
 * The same as vmcg_json_stream_feed(), except for a message that lies in
 * @buf from its first byte to its last: that one is lexed (every check of
 * the lexer, the limits included) but not given to json-c, and the return
 * is 2 with the message's bytes in @buf. The caller reads them with a
 * parser of its own (json-flat.h), or has json-c parse them, with the
 * checks vmcg_json_stream_feed() makes after the lexer, through
 * vmcg_json_stream_parse_text(), before the next feed. A message that came
 * in pieces is parsed by json-c as it comes and returned as an object (1).
 */
int vmcg_json_stream_feed_text(VmcgJsonStream *s, const char *buf, size_t len, size_t *ret_consumed,
			       json_object **ret_obj, const char **ret_text, size_t *ret_text_len,
			       GError **error);

/**
 * vmcg_json_stream_next_flat() - the next message, read flat, lexer and json-c left out
 * @flat: the message, read by vmcg_json_flat_parse_plain()
 *
 * Between messages of a VMCG_JSON_STREAM_CONCATENATED stream, when @buf
 * holds (after whitespace) a whole object in the plainest JSON (strings of
 * printable ASCII without escapes, integers, true, false, null; no arrays,
 * at most json-flat.h's nodes and depth) that is within every limit of the
 * framer (bytes, the json-c charge, depth): true, with *@ret_consumed the
 * bytes up to its '}'. The framer's state is what feeding those bytes
 * would have left. Every such object is one the lexer and json-c accept
 * (tests/fuzz/fuzz-qmp.c checks it, value for value). False for anything
 * else, having done nothing: feed @buf as usual.
 */
bool vmcg_json_stream_next_flat(const VmcgJsonStream *s, const char *buf, size_t len,
				size_t *ret_consumed, VmcgJsonFlat *flat);

/*
 * The message vmcg_json_stream_feed_text() returned as text, through
 * json-c: the object (0), or the error vmcg_json_stream_feed() would have
 * given, after which the framer refuses everything until reset.
 */
int vmcg_json_stream_parse_text(VmcgJsonStream *s, const char *text, size_t len,
				json_object **ret_obj, GError **error);

/**
 * vmcg_json_parse_object() - parse one complete message with the framer's checks
 * @buf: the message, optionally surrounded by whitespace (CRLF included)
 * @len: bytes in @buf; need not be NUL-terminated
 * @opts: limits and the noun of errors, or NULL (the framing is ignored)
 * @ret_obj: the object, on success (a new reference)
 * @error: set on failure
 *
 * Return: 0; -EBADMSG when @buf is not exactly one JSON object (empty,
 * incomplete, or with anything but whitespace after it); -EMSGSIZE.
 */
int vmcg_json_parse_object(const char *buf, size_t len, const VmcgJsonStreamOptions *opts,
			   json_object **ret_obj, GError **error);

#endif
