// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * JSON stream framer (see json-stream.h): a lexer that runs ahead of a
 * persistent json_tokener over the byte stream, cutting it into JSON objects
 * within the size, memory and depth limits. Pure: what tests/fuzz/fuzz-qmp.c
 * and tests/fuzz/fuzz-json-stream.c drive.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-stream.h"

GQuark vmcg_json_stream_error_quark(void)
{
	return g_quark_from_static_string("vmcg-json-stream-error-quark");
}

/* json-c's own bound on its stack (json_tokener_new_ex()), far above any real message. */
#define MAX_DEPTH_LIMIT 1024

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

struct VmcgJsonStream {
	struct json_tokener *tok;
	VmcgJsonStreamFraming framing;
	size_t max_bytes;
	size_t max_tree;
	unsigned int max_depth;
	const char *what;

	/* NEWLINE framing: a value ended on this line, its newline is due. */
	bool line_used;

	/* After an error: the code and message to repeat until reset. */
	int failed;
	GError *failure;

	/* The message in progress. */
	bool in_msg;
	/* The last message returned as text (feed_text()) had a fraction or exponent. */
	bool text_saw_double;
	bool tok_used; /* json-c was fed since its last reset */
	size_t bytes;  /* from its '{' */
	size_t tree;   /* the json-c charge */
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

static struct json_tokener *stream_tokener_new(unsigned int max_depth)
{
	/*
	 * json-c counts a scalar leaf as a level: 64 nested containers with a
	 * value inside need 65. The lexer enforces max_depth first; this is
	 * only json-c's own bound on its stack.
	 */
	struct json_tokener *tok = json_tokener_new_ex((int)max_depth + 2);

	if (!tok)
		g_error("json_tokener_new_ex: out of memory");
	/* Strict: no trailing commas, comments, bare words or hex numbers. */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	return tok;
}

VmcgJsonStream *vmcg_json_stream_new(const VmcgJsonStreamOptions *opts)
{
	static const VmcgJsonStreamOptions defaults = { 0 };
	VmcgJsonStream *f = g_new0(VmcgJsonStream, 1);

	if (!opts)
		opts = &defaults;
	f->framing = opts->framing;
	f->max_bytes = opts->max_message_bytes ? opts->max_message_bytes
					       : VMCG_JSON_STREAM_MAX_MESSAGE_BYTES_DEFAULT;
	/* json_tokener_parse_ex() takes an int length. */
	f->max_bytes = MIN(f->max_bytes, (size_t)INT_MAX);
	f->max_tree = opts->max_tree_bytes ? opts->max_tree_bytes
					   : VMCG_JSON_STREAM_MAX_TREE_BYTES_DEFAULT;
	f->max_depth = opts->max_depth ? MIN(opts->max_depth, MAX_DEPTH_LIMIT)
				       : VMCG_JSON_STREAM_MAX_DEPTH_DEFAULT;
	f->what = opts->what ? opts->what : "JSON message";
	f->tok = stream_tokener_new(f->max_depth);
	return f;
}

void vmcg_json_stream_free(VmcgJsonStream *f)
{
	if (!f)
		return;
	json_tokener_free(f->tok);
	g_clear_error(&f->failure);
	g_free(f);
}

static void stream_end_message(VmcgJsonStream *f)
{
	if (f->bytes > TOKENER_RECYCLE_BYTES) {
		json_tokener_free(f->tok);
		f->tok = stream_tokener_new(f->max_depth);
	} else if (f->tok_used) {
		/* Not for a message returned as text: json-c never saw it. */
		json_tokener_reset(f->tok);
	}
	f->tok_used = false;
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

void vmcg_json_stream_reset(VmcgJsonStream *f)
{
	f->bytes = TOKENER_RECYCLE_BYTES + 1; /* a partial message may have grown it */
	stream_end_message(f);
	f->failed = 0;
	g_clear_error(&f->failure);
	f->line_used = false;
}

bool vmcg_json_stream_in_message(const VmcgJsonStream *f)
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

static int G_GNUC_PRINTF(3, 4) lex_error(VmcgJsonStream *f, GError **error, const char *fmt, ...)
{
	g_autofree char *what = NULL;
	va_list ap;

	va_start(ap, fmt);
	what = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	/* f->bytes counts the offending byte: report its 0-based offset. */
	g_set_error(error, VMCG_JSON_STREAM_ERROR, VMCG_JSON_STREAM_ERROR_INVALID,
		    "invalid %s at byte %zu: %s", f->what, f->bytes - 1, what);
	return -EBADMSG;
}

static int lex_too_big(VmcgJsonStream *f, GError **error)
{
	if (f->tree > f->max_tree)
		g_set_error(error, VMCG_JSON_STREAM_ERROR, VMCG_JSON_STREAM_ERROR_TOO_BIG,
			    "%s refused: parsing it would take more than %zu bytes of "
			    "memory (limit on the parsed size, at byte %zu)",
			    f->what, f->max_tree, f->bytes);
	else
		g_set_error(error, VMCG_JSON_STREAM_ERROR, VMCG_JSON_STREAM_ERROR_TOO_BIG,
			    "%s refused: larger than %zu bytes", f->what, f->max_bytes);
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
static int lex_utf8_lead(VmcgJsonStream *f, unsigned char c, GError **error)
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

static int lex_escape_done(VmcgJsonStream *f, GError **error)
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

static int lex_string_byte(VmcgJsonStream *f, unsigned char c, GError **error)
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
 * Whether the integer @t (@n chars: digits, maybe a leading '-', no leading
 * zeros: the lexer's grammar) fits in int64 (negative) or uint64. Compared
 * as text: strtoull() cost more than the rest of the lexer on a guest-stats
 * reply.
 */
static bool int_fits(const char *t, size_t n)
{
	static const char max_neg[] = "9223372036854775808";  /* -INT64_MIN */
	static const char max_pos[] = "18446744073709551615"; /* UINT64_MAX */
	bool neg = n && t[0] == '-';
	const char *digits = t + neg, *max = neg ? max_neg : max_pos;
	size_t nd = n - neg, nmax = neg ? sizeof(max_neg) - 1 : sizeof(max_pos) - 1;

	if (nd != nmax)
		return nd < nmax;
	return memcmp(digits, max, nd) <= 0;
}

/*
 * json-c silently clamps integers beyond int64/uint64 to the nearest bound;
 * a balloon size of 1e30 would read as 18 EiB. Refuse them instead.
 */
static int lex_end_number(VmcgJsonStream *f, GError **error)
{
	enum num_state st = f->num;

	f->num = NUM_NONE;
	if (st != NUM_ZERO && st != NUM_INT && st != NUM_FRAC && st != NUM_EXP)
		return lex_error(f, error, "incomplete number %.*s", (int)f->num_len, f->num_text);
	if (!f->num_int) {
		f->saw_double = true;
		return 0;
	}
	if (!f->num_long && int_fits(f->num_text, f->num_len))
		return 0;
	return lex_error(f, error, "integer %.*s%s does not fit in 64 bits", (int)f->num_len,
			 f->num_text, f->num_long ? "..." : "");
}

/* A byte that continues the number in progress. */
static int lex_number_byte(VmcgJsonStream *f, unsigned char c, GError **error)
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
static int lex_letter(VmcgJsonStream *f, unsigned char c, GError **error)
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
static int lex_byte(VmcgJsonStream *f, unsigned char c, GError **error)
{
	int r;

	if (!f->in_msg) {
		if (c == '\n') {
			f->line_used = false;
			return 0;
		}
		if (c == ' ' || c == '\t' || c == '\r')
			return 0;
		if (c != '{') {
			char b[8];

			g_set_error(error, VMCG_JSON_STREAM_ERROR, VMCG_JSON_STREAM_ERROR_INVALID,
				    "invalid %s: a message must be a JSON object, "
				    "found %s where one should start",
				    f->what, describe_byte(c, b));
			return -EBADMSG;
		}
		if (f->line_used) {
			g_set_error(error, VMCG_JSON_STREAM_ERROR, VMCG_JSON_STREAM_ERROR_INVALID,
				    "invalid %s: a second message on one line "
				    "(newline-delimited JSON)",
				    f->what);
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
	case '\n':
		if (f->framing == VMCG_JSON_STREAM_NEWLINE)
			return lex_error(f, error,
					 "newline inside a message (newline-delimited JSON)");
		break;
	case ' ':
	case '\t':
	case '\r':
	case ':':
	case ',':
		break;
	case '{':
	case '[':
		if (f->depth >= f->max_depth)
			return lex_error(f, error, "nesting deeper than %u", f->max_depth);
		f->depth++;
		f->tree += c == '{' ? COST_OBJECT : COST_ARRAY;
		break;
	case '}':
	case ']':
		/* json-c checks that brackets match; here only depth counts. */
		if (--f->depth == 0) {
			f->line_used = f->framing == VMCG_JSON_STREAM_NEWLINE;
			return 1;
		}
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

static int stream_fail(VmcgJsonStream *f, int r, GError *err, GError **error)
{
	f->failed = r;
	g_clear_error(&f->failure);
	f->failure = g_error_copy(err);
	g_propagate_error(error, err);
	return r;
}

static int stream_json_error(VmcgJsonStream *f, GError **error)
{
	enum json_tokener_error jerr = json_tokener_get_error(f->tok);
	GError *err;

	/*
	 * No byte offset: where json-c stops depends on how the stream was cut
	 * into reads (it notices some errors only at a token's end).
	 */
	err = g_error_new(VMCG_JSON_STREAM_ERROR, VMCG_JSON_STREAM_ERROR_INVALID,
			  "invalid %s: JSON syntax error (%s)", f->what,
			  jerr == json_tokener_continue ? "unbalanced brackets"
							: json_tokener_error_desc(jerr));
	return stream_fail(f, -EBADMSG, err, error);
}

/*
 * What json-c parsed from @fed bytes, as the lexer cannot check it: it ends
 * where the brackets say, and its numbers are finite. Frees @obj on failure.
 */
static int stream_check_object(VmcgJsonStream *f, json_object *obj, size_t fed, bool saw_double,
			       GError **error)
{
	const char *what = NULL;

	if (json_tokener_get_parse_end(f->tok) != fed)
		what = "JSON ends at another byte than its brackets say";
	else if (saw_double && !json_all_finite(obj))
		what = "a number is out of range";
	if (!what)
		return 0;
	json_object_put(obj);
	return stream_fail(f, -EBADMSG,
			   g_error_new(VMCG_JSON_STREAM_ERROR, VMCG_JSON_STREAM_ERROR_INVALID,
				       "invalid %s: %s", f->what, what),
			   error);
}

static int feed(VmcgJsonStream *f, const char *buf, size_t len, size_t *ret_consumed,
		json_object **ret_obj, const char **ret_text, size_t *ret_text_len, GError **error)
{
	GError *lex_err = NULL;
	int lex_r = 0, r;
	bool started_before = f->in_msg;
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

		/*
		 * Most of a QMP reply's bytes are plain ASCII inside strings
		 * (keys, ids, names): skip them in a tight loop, with the same
		 * counts as lex_byte() (one byte, and its charge), never past
		 * either limit (the byte that crosses one goes the slow way
		 * and fails there).
		 */
		if (f->in_str && !f->u8_need && f->esc == ESC_NONE && !f->want_low) {
			size_t room = MIN(len - i, f->max_bytes - f->bytes);
			size_t tree_room = f->tree < f->max_tree ? f->max_tree - f->tree : 0;
			size_t k = 0;

			room = MIN(room, tree_room / (1 + COST_STRING_BYTE_EXTRA));
			while (k < room) {
				unsigned char c = (unsigned char)buf[i + k];

				if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\')
					break;
				k++;
			}
			f->bytes += k;
			f->tree += k * (1 + COST_STRING_BYTE_EXTRA);
			i += k;
			if (i == len)
				break;
		} else if (f->num == NUM_INT || f->num == NUM_FRAC || f->num == NUM_EXP) {
			/*
			 * Digits that keep the number in its state, as
			 * lex_number_byte() takes them: numbers are most of a
			 * guest-stats reply.
			 */
			size_t room = MIN(len - i, f->max_bytes - f->bytes);
			size_t k = 0;

			while (k < room && buf[i + k] >= '0' && buf[i + k] <= '9') {
				if (f->num_len < NUM_CHARS)
					f->num_text[f->num_len++] = buf[i + k];
				else
					f->num_long = true;
				k++;
			}
			f->bytes += k;
			f->tree += k;
			i += k;
			if (i == len)
				break;
		}
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
			return stream_fail(f, lex_r, lex_err, error);
		*ret_consumed = len;
		return 0;
	}
	/* json-c gets exactly the message bytes that the lexer let through. */
	fed = i - start;
	if (ret_text && lex_r == 1 && !started_before) {
		/* All of it is in @buf: the caller reads it (vmcg_json_stream_parse_text()). */
		f->text_saw_double = f->saw_double;
		stream_end_message(f);
		*ret_consumed = i;
		*ret_text = buf + start;
		*ret_text_len = fed;
		return 2;
	}
	f->tok_used = true;
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
			return stream_json_error(f, error);
		}
		return stream_fail(f, lex_r, lex_err, error);
	}
	if (!end) {
		if (jerr == json_tokener_continue) {
			*ret_consumed = len;
			return 0;
		}
		json_object_put(obj);
		return stream_json_error(f, error);
	}
	if (!obj)
		return stream_json_error(f, error);
	r = stream_check_object(f, obj, fed, f->saw_double, error);
	if (r < 0)
		return r;
	stream_end_message(f);
	*ret_consumed = i;
	*ret_obj = obj;
	return 1;
}

int vmcg_json_stream_feed(VmcgJsonStream *f, const char *buf, size_t len, size_t *ret_consumed,
			  json_object **ret_obj, GError **error)
{
	return feed(f, buf, len, ret_consumed, ret_obj, NULL, NULL, error);
}

int vmcg_json_stream_feed_text(VmcgJsonStream *f, const char *buf, size_t len, size_t *ret_consumed,
			       json_object **ret_obj, const char **ret_text, size_t *ret_text_len,
			       GError **error)
{
	return feed(f, buf, len, ret_consumed, ret_obj, ret_text, ret_text_len, error);
}

bool vmcg_json_stream_next_flat(const VmcgJsonStream *f, const char *buf, size_t len,
				size_t *ret_consumed, VmcgJsonFlat *flat)
{
	size_t ws = 0, n;
	uint64_t tree;

	if (f->failed || f->in_msg || f->framing != VMCG_JSON_STREAM_CONCATENATED ||
	    f->max_depth < VMCG_JSON_FLAT_MAX_DEPTH)
		return false;
	while (ws < len &&
	       (buf[ws] == ' ' || buf[ws] == '\t' || buf[ws] == '\r' || buf[ws] == '\n'))
		ws++;
	if (!vmcg_json_flat_parse_plain(buf + ws, len - ws, &n, flat) || n > f->max_bytes)
		return false;
	/*
	 * The lexer's charge of the same bytes (lex_byte()): one per byte;
	 * per value COST_VALUE, an object COST_OBJECT; per string (keys too)
	 * COST_VALUE and COST_STRING_BYTE_EXTRA per byte after its opening
	 * quote. It only grows, so under the limit at the end means under it
	 * all along. (The lexer does not check it on a number's bytes or the
	 * closing '}': it may take a message this declines, never the other
	 * way round.)
	 */
	tree = n;
	for (int k = 0; k < flat->n; k++) {
		const VmcgJsonFlatNode *v = &flat->node[k];

		if (k > 0)
			tree += COST_VALUE + COST_STRING_BYTE_EXTRA * (v->key_len + 1);
		switch (v->type) {
		case VMCG_JSON_FLAT_OBJECT:
			tree += COST_OBJECT;
			break;
		case VMCG_JSON_FLAT_STRING:
			tree += COST_VALUE + COST_STRING_BYTE_EXTRA * (v->len + 1);
			break;
		default:
			tree += COST_VALUE;
			break;
		}
	}
	if (tree > f->max_tree)
		return false;
	*ret_consumed = ws + n;
	return true;
}

int vmcg_json_stream_parse_text(VmcgJsonStream *f, const char *text, size_t len,
				json_object **ret_obj, GError **error)
{
	json_object *obj;
	int r;

	if (f->failed) {
		g_propagate_error(error, g_error_copy(f->failure));
		return f->failed;
	}
	/* What vmcg_json_stream_feed() does once the lexer found the end. */
	json_tokener_reset(f->tok);
	obj = json_tokener_parse_ex(f->tok, text, (int)len);
	if (!obj) {
		r = stream_json_error(f, error);
		json_tokener_reset(f->tok);
		return r;
	}
	r = stream_check_object(f, obj, len, f->text_saw_double, error);
	json_tokener_reset(f->tok);
	if (r < 0)
		return r;
	*ret_obj = obj;
	return 0;
}

int vmcg_json_parse_object(const char *buf, size_t len, const VmcgJsonStreamOptions *opts,
			   json_object **ret_obj, GError **error)
{
	VmcgJsonStreamOptions o = opts ? *opts : (VmcgJsonStreamOptions){ 0 };
	g_autoptr(VmcgJsonStream) f = NULL;
	g_autoptr(json_object) obj = NULL;
	size_t used;
	int r;

	o.framing = VMCG_JSON_STREAM_CONCATENATED;
	f = vmcg_json_stream_new(&o);
	r = vmcg_json_stream_feed(f, buf, len, &used, &obj, error);
	if (r < 0)
		return r;
	if (r == 0) {
		g_set_error(error, VMCG_JSON_STREAM_ERROR, VMCG_JSON_STREAM_ERROR_INVALID,
			    "invalid %s: %s", f->what,
			    len ? "incomplete JSON object" : "empty input");
		return -EBADMSG;
	}
	for (size_t i = used; i < len; i++)
		if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\n' && buf[i] != '\r') {
			g_set_error(error, VMCG_JSON_STREAM_ERROR, VMCG_JSON_STREAM_ERROR_INVALID,
				    "invalid %s: garbage after the JSON object at byte %zu",
				    f->what, i);
			return -EBADMSG;
		}
	*ret_obj = g_steal_pointer(&obj);
	return 0;
}
