// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * QMP client of vmcgd. Three layers, bottom up:
 *
 *  - the framer: a lexer and a persistent json_tokener over the byte stream,
 *    cutting it into JSON objects within the size, memory and depth limits;
 *  - the classifier: one JSON object -> greeting, return, error or event;
 *  - the client: one non-blocking unix socket on the GLib main loop, with a
 *    deadline on every phase and every command.
 *
 * The first two are pure and are what tests/fuzz/fuzz-qmp.c drives.
 */
#ifndef G_LOG_DOMAIN
#define G_LOG_DOMAIN "vmcg-qmp"
#endif

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <gio/gunixsocketaddress.h>

#include "qmp.h"

GQuark vmcg_qmp_error_quark(void)
{
	return g_quark_from_static_string("vmcg-qmp-error-quark");
}

/* ------------------------------------------------------------------------
 * Framer
 */

/*
 * What json-c 0.16 allocates per token on x86-64 glibc, measured with
 * mallinfo2() over 4 MiB messages of one token kind: an empty object 792
 * bytes (struct, lh_table, 16 preallocated entries), an empty array 152, an
 * integer 72, an empty string 88, true 43 (struct, array slot or hash entry,
 * malloc overhead). Charged here with headroom for other allocators: 1024,
 * 192 and 128 per token. A string's bytes are charged three times: the
 * tokener's printbuf grows by doubling (up to 2x) and the value is a copy.
 * Measured charge/allocation: empty objects 1.3x, empty arrays 1.3x, ints
 * 1.8x, strings 1.5x, one 4 MiB string 3.0x, query-qmp-schema 1.7x.
 */
#define COST_OBJECT 1024
#define COST_ARRAY 192
#define COST_VALUE 128
#define COST_STRING_BYTE_EXTRA 2

/*
 * A message larger than this leaves json-c's printbuf grown to twice its
 * largest token; a fresh tokener gives that memory back.
 */
#define TOKENER_RECYCLE_BYTES (64 * 1024)

/* Enough for UINT64_MAX (20 digits) and INT64_MIN (20 chars). */
#define NUM_CHARS 24

/* Where in RFC 8259's number grammar the lexer is. */
enum num_state {
	NUM_NONE,
	NUM_SIGN,    /* -        */
	NUM_ZERO,    /* -?0      */
	NUM_INT,     /* -?[1-9]  */
	NUM_FRAC0,   /* int.     */
	NUM_FRAC,    /* int.d    */
	NUM_EXP0,    /* ...e     */
	NUM_EXPSIGN, /* ...e-    */
	NUM_EXP,     /* ...e-d   */
	NUM_BAD,
};

enum {
	ESC_NONE,
	ESC_BACKSLASH,
	ESC_HEX1, /* ESC_HEX1..ESC_HEX1+3: reading the 4 hex digits of \uXXXX */
	ESC_HEX_END = ESC_HEX1 + 4,
};

struct VmcgQmpFramer {
	struct json_tokener *tok;
	size_t max_bytes;
	size_t max_tree;

	/* After an error: the code and message to repeat until reset. */
	int failed;
	GError *failure;

	/* The message in progress. */
	bool in_msg;
	size_t bytes; /* from its '{' */
	size_t tree;  /* the json-c charge */
	unsigned int depth;
	bool saw_double;

	bool in_str;
	uint8_t esc;
	uint32_t hex;
	bool want_low; /* a \uD800-\uDBFF escape must be followed by \uDC00-\uDFFF */
	uint8_t u8_need;
	uint8_t u8_lo, u8_hi; /* allowed range of the next continuation byte */

	uint8_t num;  /* enum num_state */
	bool num_int; /* no fraction, no exponent */
	bool num_long;
	size_t num_len;
	char num_text[NUM_CHARS + 1];

	const char *lit; /* "true", "false" or "null" while in one */
	uint8_t lit_pos;
};

static struct json_tokener *framer_tokener_new(void)
{
	/*
	 * json-c counts a scalar leaf as a level: 64 nested containers with a
	 * value inside need 65. The lexer enforces VMCG_QMP_MAX_DEPTH first;
	 * this is only json-c's own bound on its stack.
	 */
	struct json_tokener *tok = json_tokener_new_ex(VMCG_QMP_MAX_DEPTH + 2);

	if (!tok)
		g_error("json_tokener_new_ex: out of memory");
	/* Strict: no trailing commas, comments, bare words or hex numbers. */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	return tok;
}

VmcgQmpFramer *vmcg_qmp_framer_new(size_t max_message_bytes, size_t max_tree_bytes)
{
	VmcgQmpFramer *f = g_new0(VmcgQmpFramer, 1);

	f->max_bytes = max_message_bytes ? max_message_bytes : VMCG_QMP_MAX_MESSAGE_BYTES_DEFAULT;
	/* json_tokener_parse_ex() takes an int length. */
	f->max_bytes = MIN(f->max_bytes, (size_t)INT_MAX);
	f->max_tree = max_tree_bytes ? max_tree_bytes : VMCG_QMP_MAX_TREE_BYTES_DEFAULT;
	f->tok = framer_tokener_new();
	return f;
}

void vmcg_qmp_framer_free(VmcgQmpFramer *f)
{
	if (!f)
		return;
	json_tokener_free(f->tok);
	g_clear_error(&f->failure);
	g_free(f);
}

static void framer_end_message(VmcgQmpFramer *f)
{
	if (f->bytes > TOKENER_RECYCLE_BYTES) {
		json_tokener_free(f->tok);
		f->tok = framer_tokener_new();
	} else {
		json_tokener_reset(f->tok);
	}
	f->in_msg = false;
	f->bytes = 0;
	f->tree = 0;
	f->depth = 0;
	f->saw_double = false;
	f->in_str = false;
	f->esc = ESC_NONE;
	f->hex = 0;
	f->want_low = false;
	f->u8_need = 0;
	f->num = NUM_NONE;
	f->num_len = 0;
	f->lit = NULL;
}

void vmcg_qmp_framer_reset(VmcgQmpFramer *f)
{
	f->bytes = TOKENER_RECYCLE_BYTES + 1; /* a partial message may have grown it */
	framer_end_message(f);
	f->failed = 0;
	g_clear_error(&f->failure);
}

bool vmcg_qmp_framer_in_message(const VmcgQmpFramer *f)
{
	return f->in_msg;
}

static const char *describe_byte(unsigned char c, char buf[8])
{
	if (c >= 0x21 && c < 0x7f)
		snprintf(buf, 8, "'%c'", c);
	else
		snprintf(buf, 8, "0x%02x", c);
	return buf;
}

static int G_GNUC_PRINTF(3, 4) lex_error(VmcgQmpFramer *f, GError **error, const char *fmt, ...)
{
	g_autofree char *what = NULL;
	va_list ap;

	va_start(ap, fmt);
	what = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	/* f->bytes counts the offending byte: report its 0-based offset. */
	g_set_error(error, VMCG_QMP_ERROR, VMCG_QMP_ERROR_PROTOCOL,
		    "invalid QMP message at byte %zu: %s", f->bytes - 1, what);
	return -EBADMSG;
}

static int lex_too_big(VmcgQmpFramer *f, GError **error)
{
	if (f->tree > f->max_tree)
		g_set_error(error, VMCG_QMP_ERROR, VMCG_QMP_ERROR_MESSAGE_TOO_BIG,
			    "QMP message refused: parsing it would take more than %zu bytes of "
			    "memory (limit on the parsed size, at byte %zu)",
			    f->max_tree, f->bytes);
	else
		g_set_error(error, VMCG_QMP_ERROR, VMCG_QMP_ERROR_MESSAGE_TOO_BIG,
			    "QMP message refused: larger than %zu bytes", f->max_bytes);
	return -EMSGSIZE;
}

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The strict UTF-8 of RFC 3629: no overlongs, no surrogates, <= U+10FFFF. */
static int lex_utf8_lead(VmcgQmpFramer *f, unsigned char c, GError **error)
{
	f->u8_lo = 0x80;
	f->u8_hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf) {
		f->u8_need = 1;
	} else if (c >= 0xe0 && c <= 0xef) {
		f->u8_need = 2;
		if (c == 0xe0)
			f->u8_lo = 0xa0;
		else if (c == 0xed)
			f->u8_hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		f->u8_need = 3;
		if (c == 0xf0)
			f->u8_lo = 0x90;
		else if (c == 0xf4)
			f->u8_hi = 0x8f;
	} else {
		return lex_error(f, error, "invalid UTF-8 byte 0x%02x in a string", c);
	}
	return 0;
}

static int lex_escape_done(VmcgQmpFramer *f, GError **error)
{
	uint32_t u = f->hex;

	f->esc = ESC_NONE;
	if (u == 0)
		/* It would cut every C string that holds it. */
		return lex_error(f, error, "\\u0000 in a string");
	if (f->want_low) {
		if (u < 0xdc00 || u > 0xdfff)
			return lex_error(f, error, "high surrogate not followed by a low one");
		f->want_low = false;
	} else if (u >= 0xd800 && u <= 0xdbff) {
		f->want_low = true;
	} else if (u >= 0xdc00 && u <= 0xdfff) {
		return lex_error(f, error, "low surrogate \\u%04x without a high one", u);
	}
	return 0;
}

static int lex_string_byte(VmcgQmpFramer *f, unsigned char c, GError **error)
{
	f->tree += COST_STRING_BYTE_EXTRA;
	if (f->u8_need) {
		if (c < f->u8_lo || c > f->u8_hi)
			return lex_error(f, error, "invalid UTF-8 continuation 0x%02x in a string",
					 c);
		f->u8_need--;
		f->u8_lo = 0x80;
		f->u8_hi = 0xbf;
		return 0;
	}
	if (f->esc == ESC_BACKSLASH) {
		if (f->want_low && c != 'u')
			return lex_error(f, error, "high surrogate not followed by a low one");
		switch (c) {
		case '"':
		case '\\':
		case '/':
		case 'b':
		case 'f':
		case 'n':
		case 'r':
		case 't':
			f->esc = ESC_NONE;
			return 0;
		case 'u':
			f->esc = ESC_HEX1;
			f->hex = 0;
			return 0;
		default: {
			char b[8];

			return lex_error(f, error, "invalid escape \\%s in a string",
					 describe_byte(c, b));
		}
		}
	}
	if (f->esc >= ESC_HEX1) {
		int d = hex_value(c);

		if (d < 0)
			return lex_error(f, error, "\\u escape with a non-hex digit");
		f->hex = f->hex << 4 | (uint32_t)d;
		if (++f->esc == ESC_HEX_END)
			return lex_escape_done(f, error);
		return 0;
	}
	if (f->want_low && c != '\\')
		return lex_error(f, error, "high surrogate not followed by a low one");
	if (c == '"') {
		f->in_str = false;
		return 0;
	}
	if (c == '\\') {
		f->esc = ESC_BACKSLASH;
		return 0;
	}
	if (c < 0x20)
		return lex_error(f, error, "control character 0x%02x in a string", c);
	if (c >= 0x80)
		return lex_utf8_lead(f, c, error);
	return 0;
}

static bool is_num_char(unsigned char c)
{
	return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

static enum num_state num_next(enum num_state st, unsigned char c)
{
	bool digit = c >= '0' && c <= '9';
	bool exp = c == 'e' || c == 'E';

	switch (st) {
	case NUM_SIGN:
		if (c == '0')
			return NUM_ZERO;
		return digit ? NUM_INT : NUM_BAD;
	case NUM_ZERO:
		/* No leading zeros: json-c 0.16 reads "00" as 0. */
		if (c == '.')
			return NUM_FRAC0;
		return exp ? NUM_EXP0 : NUM_BAD;
	case NUM_INT:
		if (digit)
			return NUM_INT;
		if (c == '.')
			return NUM_FRAC0;
		return exp ? NUM_EXP0 : NUM_BAD;
	case NUM_FRAC0:
		/* A digit after the point: json-c 0.16 accepts "1." and "1.e5". */
		return digit ? NUM_FRAC : NUM_BAD;
	case NUM_FRAC:
		if (digit)
			return NUM_FRAC;
		return exp ? NUM_EXP0 : NUM_BAD;
	case NUM_EXP0:
		if (c == '+' || c == '-')
			return NUM_EXPSIGN;
		return digit ? NUM_EXP : NUM_BAD;
	case NUM_EXPSIGN:
	case NUM_EXP:
		return digit ? NUM_EXP : NUM_BAD;
	default:
		return NUM_BAD;
	}
}

/*
 * json-c silently clamps integers beyond int64/uint64 to the nearest bound;
 * a balloon size of 1e30 would read as 18 EiB. Refuse them instead.
 */
static int lex_end_number(VmcgQmpFramer *f, GError **error)
{
	enum num_state st = f->num;

	f->num = NUM_NONE;
	if (st != NUM_ZERO && st != NUM_INT && st != NUM_FRAC && st != NUM_EXP)
		return lex_error(f, error, "incomplete number %.*s", (int)f->num_len, f->num_text);
	if (!f->num_int) {
		f->saw_double = true;
		return 0;
	}
	if (!f->num_long) {
		f->num_text[f->num_len] = '\0';
		errno = 0;
		if (f->num_text[0] == '-')
			(void)strtoll(f->num_text, NULL, 10);
		else
			(void)strtoull(f->num_text, NULL, 10);
		if (errno != ERANGE)
			return 0;
	}
	return lex_error(f, error, "integer %.*s%s does not fit in 64 bits", (int)f->num_len,
			 f->num_text, f->num_long ? "..." : "");
}

/* A byte that continues the number in progress. */
static int lex_number_byte(VmcgQmpFramer *f, unsigned char c, GError **error)
{
	enum num_state st = num_next(f->num, c);

	if (st == NUM_BAD) {
		char b[8];

		return lex_error(f, error, "malformed number: %s after %.*s", describe_byte(c, b),
				 (int)f->num_len, f->num_text);
	}
	if (st == NUM_FRAC0 || st == NUM_EXP0)
		f->num_int = false;
	f->num = st;
	if (f->num_len < NUM_CHARS)
		f->num_text[f->num_len++] = (char)c;
	else
		f->num_long = true;
	return 0;
}

/* A letter outside strings: only true, false and null are JSON. */
static int lex_letter(VmcgQmpFramer *f, unsigned char c, GError **error)
{
	char b[8];

	if (!f->lit) {
		f->lit = c == 't' ? "true" : c == 'f' ? "false" : c == 'n' ? "null" : NULL;
		if (!f->lit)
			/* ' (json-c's single-quoted strings), NaN, Infinity, ... */
			return lex_error(f, error, "unexpected %s outside a string",
					 describe_byte(c, b));
		f->lit_pos = 1;
		f->tree += COST_VALUE;
		return 0;
	}
	if (f->lit[f->lit_pos] != (char)c)
		return lex_error(f, error, "unexpected %s in %s", describe_byte(c, b), f->lit);
	f->lit_pos++;
	return 0;
}

/*
 * One byte of the stream. Return: 0, 1 when @c closed the message, or a
 * negative errno with @error set.
 */
static int lex_byte(VmcgQmpFramer *f, unsigned char c, GError **error)
{
	int r;

	if (!f->in_msg) {
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
			return 0;
		if (c != '{') {
			char b[8];

			g_set_error(error, VMCG_QMP_ERROR, VMCG_QMP_ERROR_PROTOCOL,
				    "invalid QMP message: a message must be a JSON object, "
				    "found %s where one should start",
				    describe_byte(c, b));
			return -EBADMSG;
		}
		f->in_msg = true;
	}
	if (f->bytes >= f->max_bytes)
		return lex_too_big(f, error);
	f->bytes++;
	f->tree++;

	if (f->in_str) {
		r = lex_string_byte(f, c, error);
		goto out;
	}
	if (f->num != NUM_NONE) {
		if (is_num_char(c))
			return lex_number_byte(f, c, error);
		r = lex_end_number(f, error);
		if (r < 0)
			return r;
	}
	if (g_ascii_isalpha(c)) {
		r = lex_letter(f, c, error);
		goto out;
	}
	if (f->lit) {
		if (f->lit[f->lit_pos])
			return lex_error(f, error, "incomplete %s", f->lit);
		f->lit = NULL;
	}
	r = 0;
	if (c == '-' || (c >= '0' && c <= '9')) {
		f->num = c == '-' ? NUM_SIGN : c == '0' ? NUM_ZERO : NUM_INT;
		f->num_int = true;
		f->num_long = false;
		f->num_text[0] = (char)c;
		f->num_len = 1;
		f->tree += COST_VALUE;
		goto out;
	}
	switch (c) {
	case ' ':
	case '\t':
	case '\n':
	case '\r':
	case ':':
	case ',':
		break;
	case '{':
	case '[':
		if (f->depth >= VMCG_QMP_MAX_DEPTH)
			return lex_error(f, error, "nesting deeper than %d", VMCG_QMP_MAX_DEPTH);
		f->depth++;
		f->tree += c == '{' ? COST_OBJECT : COST_ARRAY;
		break;
	case '}':
	case ']':
		/* json-c checks that brackets match; here only depth counts. */
		if (--f->depth == 0)
			return 1;
		break;
	case '"':
		f->in_str = true;
		f->tree += COST_VALUE;
		break;
	default: {
		char b[8];

		return lex_error(f, error, "unexpected %s outside a string", describe_byte(c, b));
	}
	}
out:
	if (r == 0 && f->tree > f->max_tree)
		return lex_too_big(f, error);
	return r;
}

/* json-c reads 1e999 as inf and accepts NaN words; JSON has neither. */
static bool json_all_finite(json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_double:
		return isfinite(json_object_get_double(o));
	case json_type_array: {
		size_t n = json_object_array_length(o);

		for (size_t i = 0; i < n; i++)
			if (!json_all_finite(json_object_array_get_idx(o, i)))
				return false;
		return true;
	}
	case json_type_object: {
		json_object_object_foreach(o, key, val)
		{
			(void)key;
			if (!json_all_finite(val))
				return false;
		}
		return true;
	}
	default:
		return true;
	}
}

static int framer_fail(VmcgQmpFramer *f, int r, GError *err, GError **error)
{
	f->failed = r;
	g_clear_error(&f->failure);
	f->failure = g_error_copy(err);
	g_propagate_error(error, err);
	return r;
}

static int framer_json_error(VmcgQmpFramer *f, GError **error)
{
	enum json_tokener_error jerr = json_tokener_get_error(f->tok);
	GError *err;

	/*
	 * No byte offset: where json-c stops depends on how the stream was cut
	 * into reads (it notices some errors only at a token's end).
	 */
	err = g_error_new(VMCG_QMP_ERROR, VMCG_QMP_ERROR_PROTOCOL,
			  "invalid QMP message: JSON syntax error (%s)",
			  jerr == json_tokener_continue ? "unbalanced brackets"
							: json_tokener_error_desc(jerr));
	return framer_fail(f, -EBADMSG, err, error);
}

int vmcg_qmp_framer_feed(VmcgQmpFramer *f, const char *buf, size_t len, size_t *ret_consumed,
			 json_object **ret_obj, GError **error)
{
	GError *lex_err = NULL;
	int lex_r = 0;
	size_t start = f->in_msg ? 0 : SIZE_MAX;
	size_t i;
	bool end = false;
	json_object *obj;
	enum json_tokener_error jerr;
	size_t fed;

	if (f->failed) {
		g_propagate_error(error, g_error_copy(f->failure));
		return f->failed;
	}

	for (i = 0; i < len; i++) {
		bool was_in = f->in_msg;

		lex_r = lex_byte(f, (unsigned char)buf[i], &lex_err);
		if (lex_r < 0)
			break;
		if (!was_in && f->in_msg)
			start = i;
		if (lex_r == 1) {
			end = true;
			i++;
			break;
		}
	}

	if (start == SIZE_MAX) {
		if (lex_r < 0)
			return framer_fail(f, lex_r, lex_err, error);
		*ret_consumed = len;
		return 0;
	}
	/* json-c gets exactly the message bytes that the lexer let through. */
	fed = i - start;
	obj = json_tokener_parse_ex(f->tok, buf + start, (int)fed);
	jerr = json_tokener_get_error(f->tok);
	if (lex_r < 0) {
		/*
		 * The earlier error wins, so that how the stream was cut into
		 * reads never changes which error the caller sees.
		 */
		json_object_put(obj);
		if (jerr != json_tokener_continue && jerr != json_tokener_success) {
			g_error_free(lex_err);
			return framer_json_error(f, error);
		}
		return framer_fail(f, lex_r, lex_err, error);
	}
	if (!end) {
		if (jerr == json_tokener_continue) {
			*ret_consumed = len;
			return 0;
		}
		json_object_put(obj);
		return framer_json_error(f, error);
	}
	if (!obj)
		return framer_json_error(f, error);
	if (json_tokener_get_parse_end(f->tok) != fed) {
		json_object_put(obj);
		return framer_fail(f, -EBADMSG,
				   g_error_new(VMCG_QMP_ERROR, VMCG_QMP_ERROR_PROTOCOL,
					       "invalid QMP message: JSON ends at another byte "
					       "than its brackets say"),
				   error);
	}
	if (f->saw_double && !json_all_finite(obj)) {
		json_object_put(obj);
		return framer_fail(f, -EBADMSG,
				   g_error_new(VMCG_QMP_ERROR, VMCG_QMP_ERROR_PROTOCOL,
					       "invalid QMP message: a number is out of range"),
				   error);
	}
	framer_end_message(f);
	*ret_consumed = i;
	*ret_obj = obj;
	return 1;
}

/* ------------------------------------------------------------------------
 * Classifier
 */

void vmcg_qmp_message_clear(VmcgQmpMessage *msg)
{
	if (msg->root)
		json_object_put(msg->root);
	memset(msg, 0, sizeof(*msg));
}

static int G_GNUC_PRINTF(2, 3) proto_error(GError **error, const char *fmt, ...)
{
	g_autofree char *what = NULL;
	va_list ap;

	va_start(ap, fmt);
	what = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error(error, VMCG_QMP_ERROR, VMCG_QMP_ERROR_PROTOCOL, "invalid QMP message: %s",
		    what);
	return -EBADMSG;
}

static const char *type_name(json_object *o)
{
	return json_type_to_name(json_object_get_type(o));
}

/* @o's member @key must exist (unless @optional) and be of @type. */
static int member(json_object *o, const char *where, const char *key, json_type type, bool optional,
		  json_object **ret, GError **error)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v)) {
		if (optional) {
			*ret = NULL;
			return 0;
		}
		return proto_error(error, "%s has no \"%s\"", where, key);
	}
	if (!json_object_is_type(v, type))
		return proto_error(error, "%s: \"%s\" must be %s %s, not %s", where, key,
				   strchr("aeiou", json_type_to_name(type)[0]) ? "an" : "a",
				   json_type_to_name(type), type_name(v));
	*ret = v;
	return 0;
}

/* A string that C can hold: no embedded NUL (possible in a built object). */
static int member_string(json_object *o, const char *where, const char *key, bool optional,
			 bool nonempty, const char **ret, GError **error)
{
	json_object *v;
	const char *s;
	int r = member(o, where, key, json_type_string, optional, &v, error);

	if (r < 0)
		return r;
	if (!v) {
		*ret = NULL;
		return 0;
	}
	s = json_object_get_string(v);
	if (strlen(s) != (size_t)json_object_get_string_len(v))
		return proto_error(error, "%s: \"%s\" holds a NUL character", where, key);
	if (nonempty && !*s)
		return proto_error(error, "%s: \"%s\" is empty", where, key);
	*ret = s;
	return 0;
}

static int member_int(json_object *o, const char *where, const char *key, int64_t lo, int64_t hi,
		      int64_t *ret, GError **error)
{
	json_object *v;
	int64_t x;
	int r = member(o, where, key, json_type_int, false, &v, error);

	if (r < 0)
		return r;
	/* Clamps a uint64 above INT64_MAX to INT64_MAX: above any @hi here. */
	x = json_object_get_int64(v);
	if (x < lo || x > hi)
		return proto_error(error, "%s: \"%s\" is out of range", where, key);
	*ret = x;
	return 0;
}

static int classify_greeting(json_object *qmp, VmcgQmpMessage *m, GError **error)
{
	json_object *version, *qemu, *caps;
	int64_t v[3];
	static const char *const parts[] = { "major", "minor", "micro" };
	int r;

	if (!json_object_is_type(qmp, json_type_object))
		return proto_error(error, "\"QMP\" must be an object, not %s", type_name(qmp));
	r = member(qmp, "greeting", "version", json_type_object, false, &version, error);
	if (r < 0)
		return r;
	r = member(version, "greeting \"version\"", "qemu", json_type_object, false, &qemu, error);
	if (r < 0)
		return r;
	for (int i = 0; i < 3; i++) {
		r = member_int(qemu, "greeting \"version\".\"qemu\"", parts[i], 0, INT_MAX, &v[i],
			       error);
		if (r < 0)
			return r;
	}
	r = member_string(version, "greeting \"version\"", "package", false, false,
			  &m->qemu_package, error);
	if (r < 0)
		return r;
	r = member(qmp, "greeting", "capabilities", json_type_array, false, &caps, error);
	if (r < 0)
		return r;
	for (size_t i = 0; i < json_object_array_length(caps); i++)
		if (!json_object_is_type(json_object_array_get_idx(caps, i), json_type_string))
			return proto_error(error, "greeting: \"capabilities\" must hold strings");
	m->type = VMCG_QMP_MSG_GREETING;
	m->qemu_major = (int)v[0];
	m->qemu_minor = (int)v[1];
	m->qemu_micro = (int)v[2];
	m->capabilities = caps;
	return 0;
}

static int classify_event(json_object *obj, VmcgQmpMessage *m, GError **error)
{
	json_object *ts;
	int64_t sec, usec;
	int r;

	r = member_string(obj, "event", "event", false, true, &m->event, error);
	if (r < 0)
		return r;
	r = member(obj, "event", "data", json_type_object, true, &m->data, error);
	if (r < 0)
		return r;
	r = member(obj, "event", "timestamp", json_type_object, false, &ts, error);
	if (r < 0)
		return r;
	/* qmp-spec.rst: both are -1 when QEMU could not read the clock. */
	r = member_int(ts, "event \"timestamp\"", "seconds", -1,
		       (INT64_MAX - (G_USEC_PER_SEC - 1)) / G_USEC_PER_SEC, &sec, error);
	if (r < 0)
		return r;
	r = member_int(ts, "event \"timestamp\"", "microseconds", -1, G_USEC_PER_SEC - 1, &usec,
		       error);
	if (r < 0)
		return r;
	if ((sec < 0) != (usec < 0))
		return proto_error(error, "event: \"timestamp\" is -1 in one member only");
	m->type = VMCG_QMP_MSG_EVENT;
	m->timestamp_usec = sec < 0 ? -1 : sec * G_USEC_PER_SEC + usec;
	return 0;
}

/* @val is the "return" member if @is_return, else the "error" member. */
static int classify_reply(json_object *obj, bool is_return, json_object *val, VmcgQmpMessage *m,
			  GError **error)
{
	json_object *ret = val, *err = val;
	int r;

	r = member_string(obj, "reply", "id", true, false, &m->id, error);
	if (r < 0)
		return r;
	if (is_return) {
		if (json_object_get_type(ret) == json_type_null)
			return proto_error(error, "reply: \"return\" is null");
		m->type = VMCG_QMP_MSG_RETURN;
		m->ret = ret;
		return 0;
	}
	if (!json_object_is_type(err, json_type_object))
		return proto_error(error, "reply: \"error\" must be an object, not %s",
				   type_name(err));
	r = member_string(err, "reply \"error\"", "class", false, true, &m->error_class, error);
	if (r < 0)
		return r;
	r = member_string(err, "reply \"error\"", "desc", false, false, &m->error_desc, error);
	if (r < 0)
		return r;
	m->type = VMCG_QMP_MSG_ERROR;
	return 0;
}

int vmcg_qmp_classify(json_object *obj, VmcgQmpMessage *ret, GError **error)
{
	static const char *const kinds[] = { "QMP", "return", "error", "event" };
	json_object *v[4] = { NULL };
	bool has[4];
	VmcgQmpMessage m = { 0 };
	int n = 0, r;

	if (!json_object_is_type(obj, json_type_object))
		return proto_error(error, "a message must be a JSON object, not %s",
				   type_name(obj));
	for (int i = 0; i < 4; i++) {
		has[i] = json_object_object_get_ex(obj, kinds[i], &v[i]);
		n += has[i];
	}
	if (n == 0)
		return proto_error(error, "no \"QMP\", \"return\", \"error\" or \"event\" member");
	if (n > 1) {
		const char *a = NULL, *b = NULL;

		for (int i = 0; i < 4; i++) {
			if (!has[i])
				continue;
			if (!a)
				a = kinds[i];
			else if (!b)
				b = kinds[i];
		}
		return proto_error(error, "both \"%s\" and \"%s\" in one message", a, b);
	}
	if (has[0])
		r = classify_greeting(v[0], &m, error);
	else if (has[3])
		r = classify_event(obj, &m, error);
	else
		r = classify_reply(obj, has[1], has[1] ? v[1] : v[2], &m, error);
	if (r < 0)
		return r;
	m.root = json_object_get(obj);
	*ret = m;
	return 0;
}

int vmcg_qmp_parse(const char *buf, size_t len, VmcgQmpMessage *ret, GError **error)
{
	g_autoptr(VmcgQmpFramer) f = vmcg_qmp_framer_new(0, 0);
	g_autoptr(json_object) obj = NULL;
	size_t used;
	int r;

	r = vmcg_qmp_framer_feed(f, buf, len, &used, &obj, error);
	if (r < 0)
		return r;
	if (r == 0)
		return proto_error(error, "%s", len ? "incomplete JSON object" : "empty input");
	for (size_t i = used; i < len; i++)
		if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\n' && buf[i] != '\r')
			return proto_error(error, "garbage after the JSON object at byte %zu", i);
	return vmcg_qmp_classify(obj, ret, error);
}

/* ------------------------------------------------------------------------
 * Client
 */

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
	char *id;
	char *command;
	char *wire; /* while queued */
	guint timeout_ms;
	GSource *timer;
	GError *error; /* while failed */
	VmcgQmpReplyFn cb;
	gpointer userdata;
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
	GSource *start_source;
	GSource *connect_source; /* G_IO_OUT while connect() is pending */
	GSource *retry_source;	 /* the next connect() after EAGAIN */
	GSource *read_source;
	GSource *write_source;
	GSource *phase_timer;
	VmcgQmpFramer *framer;
	GByteArray *out;
	char *caps_id;

	GQueue queued;
	GQueue sent; /* in issue order */
	GQueue failed;
	GSource *fail_source;
	guint64 last_id;

	bool have_version;
	int qemu_major, qemu_minor, qemu_micro;

	bool reconnect;
	guint reconnect_min_ms, reconnect_max_ms, reconnect_delay_ms;
	GSource *reconnect_source;

	VmcgQmpStateFn state_fn;
	gpointer state_data;
	VmcgQmpEventFn event_fn;
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
	vmcg_qmp_framer_free(q->framer);
	g_byte_array_unref(q->out);
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

static GSource *socket_source_new(VmcgQmp *q, GIOCondition cond, GSocketSourceFunc fn)
{
	GSource *s = g_socket_create_source(q->sock, cond | G_IO_HUP | G_IO_ERR, NULL);

	g_source_set_callback(s, G_SOURCE_FUNC(fn), q, NULL);
	g_source_attach(s, q->ctx);
	return s;
}

static void cmd_free(Cmd *cmd)
{
	source_clear(&cmd->timer);
	g_clear_error(&cmd->error);
	g_free(cmd->id);
	g_free(cmd->command);
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

	source_clear(&cmd->timer);
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
	source_clear(&cmd->timer);
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
	source_clear(&q->connect_source);
	source_clear(&q->retry_source);
	source_clear(&q->read_source);
	source_clear(&q->write_source);
	source_clear(&q->phase_timer);
	if (q->sock) {
		g_socket_close(q->sock, NULL);
		g_clear_object(&q->sock);
	}
	vmcg_qmp_framer_reset(q->framer);
	g_byte_array_set_size(q->out, 0);
	g_clear_pointer(&q->caps_id, g_free);
	q->phase = PHASE_IDLE;
	q->state = VMCG_QMP_STATE_DISCONNECTED;
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
		q->reconnect_source = timeout_new(q, q->reconnect_delay_ms, on_reconnect, q);
		/* Doubled for the next failure; go_ready() resets it. */
		q->reconnect_delay_ms = (guint)MIN((guint64)q->reconnect_delay_ms * 2,
						   (guint64)q->reconnect_max_ms);
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

static int class_code(const char *cls)
{
	static const struct {
		const char *name;
		int code;
	} classes[] = {
		/* QapiErrorClass of qapi/error.json */
		{ "GenericError", VMCG_QMP_ERROR_GENERIC_ERROR },
		{ "CommandNotFound", VMCG_QMP_ERROR_COMMAND_NOT_FOUND },
		{ "DeviceNotActive", VMCG_QMP_ERROR_DEVICE_NOT_ACTIVE },
		{ "DeviceNotFound", VMCG_QMP_ERROR_DEVICE_NOT_FOUND },
		{ "KVMMissingCap", VMCG_QMP_ERROR_KVM_MISSING_CAP },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(classes); i++)
		if (strcmp(cls, classes[i].name) == 0)
			return classes[i].code;
	return VMCG_QMP_ERROR_UNKNOWN_CLASS;
}

static GError *qmp_error_new(const VmcgQmpMessage *m, const char *prefix)
{
	int code = class_code(m->error_class);

	if (code == VMCG_QMP_ERROR_UNKNOWN_CLASS)
		return g_error_new(VMCG_QMP_ERROR, code, "%s%s: %s", prefix, m->error_class,
				   m->error_desc);
	return g_error_new(VMCG_QMP_ERROR, code, "%s%s", prefix, m->error_desc);
}

static const char *msg_kind(const VmcgQmpMessage *m)
{
	switch (m->type) {
	case VMCG_QMP_MSG_GREETING:
		return "a greeting";
	case VMCG_QMP_MSG_RETURN:
		return "a reply";
	case VMCG_QMP_MSG_ERROR:
		return "an error reply";
	case VMCG_QMP_MSG_EVENT:
		return "an event";
	}
	return "?";
}

static void go_ready(VmcgQmp *q)
{
	GList *l;

	source_clear(&q->phase_timer);
	q->phase = PHASE_READY;
	q->state = VMCG_QMP_STATE_READY;
	q->reconnect_delay_ms = q->reconnect_min_ms;
	/* Commands issued while connecting go first, in issue order. */
	while ((l = g_queue_pop_head_link(&q->queued))) {
		Cmd *cmd = l->data;

		cmd_push(q, cmd, CMD_SENT);
		queue_write(q, cmd->wire, strlen(cmd->wire));
		g_clear_pointer(&cmd->wire, g_free);
	}
	notify_state(q, NULL);
}

static void send_capabilities(VmcgQmp *q)
{
	g_autofree char *wire = NULL;

	q->caps_id = g_strdup_printf("vmcg-%" G_GUINT64_FORMAT, ++q->last_id);
	/* No capability is enabled: vmcgd needs no out-of-band commands. */
	wire = g_strdup_printf("{\"execute\":\"qmp_capabilities\",\"id\":\"%s\"}\r\n", q->caps_id);
	queue_write(q, wire, strlen(wire));
	q->phase = PHASE_CAPABILITIES;
}

static gboolean on_phase_timeout(gpointer data);

static void handle_reply(VmcgQmp *q, const VmcgQmpMessage *m)
{
	g_autoptr(GError) err = NULL;
	Cmd *cmd = NULL;

	if (q->phase == PHASE_CAPABILITIES) {
		if (!m->id || strcmp(m->id, q->caps_id) != 0) {
			g_debug("%s: dropping a reply with unknown id %s", q->path,
				m->id ? m->id : "(none)");
			return;
		}
		if (m->type == VMCG_QMP_MSG_ERROR) {
			teardown(q, qmp_error_new(m, "qmp_capabilities refused: "));
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
		g_debug("%s: dropping a reply with unknown id %s", q->path,
			m->id ? m->id : "(none)");
		return;
	}
	cmd_unlink(q, cmd);
	if (m->type == VMCG_QMP_MSG_ERROR) {
		err = qmp_error_new(m, "");
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
				     "expected the QMP greeting, got %s", msg_kind(&m));
			return;
		}
		q->have_version = true;
		q->qemu_major = m.qemu_major;
		q->qemu_minor = m.qemu_minor;
		q->qemu_micro = m.qemu_micro;
		send_capabilities(q);
		source_clear(&q->phase_timer);
		q->phase_timer =
			timeout_new(q, q->opts.capabilities_timeout_ms, on_phase_timeout, q);
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

static gboolean on_readable(GSocket *sock, GIOCondition cond, gpointer data)
{
	VmcgQmp *q = data;
	char buf[READ_BYTES];
	GError *err = NULL;
	guint64 gen = q->gen;
	gssize n;
	size_t pos = 0;

	(void)sock;
	(void)cond;
	n = g_socket_receive(q->sock, buf, sizeof(buf), NULL, &err);
	if (n < 0) {
		if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
			g_error_free(err);
			return G_SOURCE_CONTINUE;
		}
		qmp_ref(q);
		teardown_gio(q, err, "read");
		qmp_unref(q);
		return G_SOURCE_CONTINUE; /* teardown destroyed this source */
	}
	qmp_ref(q);
	if (n == 0) {
		teardown_new(q, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
			     "QMP peer closed the connection%s%s",
			     vmcg_qmp_framer_in_message(q->framer) ? " in the middle of a message"
								   : "",
			     phase_eof_note(q->phase));
		goto out;
	}
	while (pos < (size_t)n) {
		json_object *obj = NULL;
		size_t used;
		int r = vmcg_qmp_framer_feed(q->framer, buf + pos, (size_t)n - pos, &used, &obj,
					     &err);

		if (r < 0) {
			g_prefix_error(&err, "%s: ", q->path);
			teardown(q, err);
			goto out;
		}
		pos += used;
		if (r == 0)
			break;
		handle_message(q, obj);
		json_object_put(obj);
		if (q->freed || q->gen != gen)
			goto out;
	}
out:
	qmp_unref(q);
	return G_SOURCE_CONTINUE;
}

static gboolean on_writable(GSocket *sock, GIOCondition cond, gpointer data)
{
	VmcgQmp *q = data;
	GError *err = NULL;
	gssize n;

	(void)sock;
	(void)cond;
	n = g_socket_send(q->sock, (const char *)q->out->data, q->out->len, NULL, &err);
	if (n < 0) {
		if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
			g_error_free(err);
			return G_SOURCE_CONTINUE;
		}
		qmp_ref(q);
		teardown_gio(q, err, "write");
		qmp_unref(q);
		return G_SOURCE_CONTINUE;
	}
	g_byte_array_remove_range(q->out, 0, (guint)n);
	if (q->out->len == 0) {
		source_clear(&q->write_source);
		return G_SOURCE_REMOVE;
	}
	return G_SOURCE_CONTINUE;
}

/* Written from the main loop, so that no vmcg_qmp_*() call can fail inline. */
static void queue_write(VmcgQmp *q, const char *data, size_t len)
{
	g_byte_array_append(q->out, (const guint8 *)data, (guint)len);
	if (!q->write_source)
		q->write_source = socket_source_new(q, G_IO_OUT, on_writable);
}

static void connected(VmcgQmp *q)
{
	q->phase = PHASE_GREETING;
	source_clear(&q->phase_timer);
	q->phase_timer = timeout_new(q, q->opts.greeting_timeout_ms, on_phase_timeout, q);
	q->read_source = socket_source_new(q, G_IO_IN, on_readable);
}

static gboolean on_connect_ready(GSocket *sock, GIOCondition cond, gpointer data)
{
	VmcgQmp *q = data;
	GError *err = NULL;

	(void)sock;
	(void)cond;
	source_clear(&q->connect_source);
	if (!g_socket_check_connect_result(q->sock, &err)) {
		qmp_ref(q);
		teardown_gio(q, err, "connect");
		qmp_unref(q);
		return G_SOURCE_REMOVE;
	}
	connected(q);
	return G_SOURCE_REMOVE;
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
		g_socket_close(q->sock, NULL);
		g_clear_object(&q->sock);
	}
	q->sock = g_socket_new(G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
			       G_SOCKET_PROTOCOL_DEFAULT, &err);
	if (!q->sock) {
		teardown_gio(q, err, "socket");
		return;
	}
	g_socket_set_blocking(q->sock, FALSE);
	addr = g_unix_socket_address_new(q->path);
	if (g_socket_connect(q->sock, addr, NULL, &err)) {
		connected(q);
		return;
	}
	if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_PENDING)) {
		g_error_free(err);
		q->connect_source = socket_source_new(q, G_IO_OUT, on_connect_ready);
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

static gboolean on_phase_timeout(gpointer data)
{
	VmcgQmp *q = data;

	source_clear(&q->phase_timer);
	qmp_ref(q);
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
	qmp_unref(q);
	return G_SOURCE_REMOVE;
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
		q->phase_timer = timeout_new(q, q->opts.connect_timeout_ms, on_phase_timeout, q);
		try_connect(q);
	}
	qmp_unref(q);
	return G_SOURCE_REMOVE;
}

static gboolean on_cmd_timeout(gpointer data)
{
	Cmd *cmd = data;
	VmcgQmp *q = cmd->qmp;
	bool was_sent = cmd->where == CMD_SENT;
	guint64 gen = q->gen;
	g_autoptr(GError) err = NULL;
	g_autofree char *what = NULL;

	cmd_unlink(q, cmd);
	what = g_strdup_printf("QMP command %s (id %s) not answered within %u ms", cmd->command,
			       cmd->id, cmd->timeout_ms);
	err = g_error_new(G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "%s: %s", q->path, what);
	qmp_ref(q);
	cmd_complete(cmd, NULL, err);
	/* QMP answers in order: everything behind it is stuck; see qmp.h. */
	if (was_sent && !q->freed && q->gen == gen)
		teardown_new(q, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "%s", what);
	qmp_unref(q);
	return G_SOURCE_REMOVE;
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
	q->framer = vmcg_qmp_framer_new(q->opts.max_message_bytes, q->opts.max_tree_bytes);
	q->out = g_byte_array_new();
	q->ctx = g_main_context_ref_thread_default();
	g_queue_init(&q->queued);
	g_queue_init(&q->sent);
	g_queue_init(&q->failed);
	q->reconnect_min_ms = RECONNECT_MIN_MS_DEFAULT;
	q->reconnect_max_ms = RECONNECT_MAX_MS_DEFAULT;
	q->reconnect_delay_ms = q->reconnect_min_ms;
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
	close_transport(q);
	source_clear(&q->reconnect_source);
	source_clear(&q->fail_source);
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
	q->reconnect_delay_ms = q->reconnect_min_ms;
	if (!q->reconnect)
		source_clear(&q->reconnect_source);
}

VmcgQmpState vmcg_qmp_get_state(const VmcgQmp *q)
{
	return q->state;
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

void vmcg_qmp_execute_timeout(VmcgQmp *q, const char *command, json_object *args, guint timeout_ms,
			      VmcgQmpReplyFn cb, gpointer userdata)
{
	g_autoptr(json_object) a = args;
	g_autoptr(json_object) root = NULL;
	Cmd *cmd = g_new0(Cmd, 1);

	cmd->link.data = cmd;
	cmd->qmp = q;
	cmd->cb = cb;
	cmd->userdata = userdata;
	cmd->command = g_strdup(command ? command : "");
	cmd->timeout_ms = timeout_ms ? timeout_ms : q->opts.command_timeout_ms;

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
					   command, type_name(a)));
		return;
	}
	if (q->state == VMCG_QMP_STATE_DISCONNECTED) {
		cmd_fail_later(q, cmd,
			       g_error_new(G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED,
					   "%s: QMP not connected", q->path));
		return;
	}

	cmd->id = g_strdup_printf("vmcg-%" G_GUINT64_FORMAT, ++q->last_id);
	root = json_object_new_object();
	json_object_object_add(root, "execute", json_object_new_string(command));
	if (a)
		json_object_object_add(root, "arguments", json_object_get(a));
	json_object_object_add(root, "id", json_object_new_string(cmd->id));
	cmd->wire = g_strconcat(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN),
				"\r\n", NULL);
	cmd->timer = timeout_new(q, cmd->timeout_ms, on_cmd_timeout, cmd);
	if (q->phase == PHASE_READY) {
		cmd_push(q, cmd, CMD_SENT);
		queue_write(q, cmd->wire, strlen(cmd->wire));
		g_clear_pointer(&cmd->wire, g_free);
	} else {
		cmd_push(q, cmd, CMD_QUEUED);
	}
}

void vmcg_qmp_execute(VmcgQmp *q, const char *command, json_object *args, VmcgQmpReplyFn cb,
		      gpointer userdata)
{
	vmcg_qmp_execute_timeout(q, command, args, 0, cb, userdata);
}
