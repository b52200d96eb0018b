// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * JSON stream framer (daemon/json-stream.c): a real QEMU 7.2 transcript cut
 * at every split point, several messages per read, whitespace, the size and
 * memory limits, garbage between messages; then what newline-delimited
 * framing adds (one message per line), the depth option, and the one-shot
 * vmcg_json_parse_object(). The lexer's per-token rules (strings, numbers,
 * UTF-8) are tested through vmcg_qmp_parse() in test-qmp.c.
 */
#include <errno.h>
#include <string.h>

#include <glib.h>

#include "json-stream.h"
#include "qmp-real.h"

static VmcgJsonStream *stream_new(size_t max_bytes, size_t max_tree)
{
	VmcgJsonStreamOptions o = { .max_message_bytes = max_bytes, .max_tree_bytes = max_tree };

	return vmcg_json_stream_new(&o);
}

/* A real QEMU 7.2 exchange, as the client reads it. */
static const char transcript[] = REAL_GREETING
	"{\"return\": {}, \"id\": \"caps\"}\r\n" REAL_STATUS REAL_STOP REAL_NOT_FOUND
	"{\"return\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, \"package\": "
	"\"Debian 1:7.2+dfsg-7+deb12u18+b3\"}, \"id\": \"vmcg-2\"}\r\n" REAL_SHUTDOWN
		REAL_PARSE_ERROR;

/*
 * Feed @len bytes in chunks of the sizes in @cuts (cycling), collect each
 * message as plain JSON text, one per line; stop at an error.
 */
static GString *frame_reads(const char *buf, size_t len, const size_t *cuts, size_t ncuts,
			    size_t max_bytes, size_t max_tree, size_t *ret_reads, GError **error)
{
	g_autoptr(VmcgJsonStream) f = stream_new(max_bytes, max_tree);
	GString *out = g_string_new(NULL);
	size_t pos = 0, k = 0;

	while (pos < len) {
		size_t n = cuts[k++ % ncuts];
		size_t at = 0;

		n = MIN(n, len - pos); /* MIN() evaluates twice: no k++ in it */
		(*ret_reads)++;

		while (at < n) {
			json_object *obj = NULL;
			size_t used = 0;
			int r = vmcg_json_stream_feed(f, buf + pos + at, n - at, &used, &obj,
						      error);

			if (r < 0)
				return out;
			g_assert_cmpuint(used, <=, n - at);
			at += used;
			if (r == 0) {
				g_assert_cmpuint(at, ==, n);
				break;
			}
			g_string_append_printf(
				out, "%s\n",
				json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN));
			json_object_put(obj);
		}
		pos += n;
	}
	g_assert_false(vmcg_json_stream_in_message(f));
	return out;
}

static GString *frame(const char *buf, size_t len, const size_t *cuts, size_t ncuts,
		      size_t max_bytes, size_t max_tree, GError **error)
{
	size_t reads = 0;

	return frame_reads(buf, len, cuts, ncuts, max_bytes, max_tree, &reads, error);
}

static void test_framer_transcript(void)
{
	size_t all = sizeof(transcript) - 1;
	g_autoptr(GError) err = NULL;
	g_autoptr(GString) whole = frame(transcript, all, &all, 1, 0, 0, &err);
	static const size_t one = 1;
	g_autoptr(GString) bytewise = frame(transcript, all, &one, 1, 0, 0, &err);
	unsigned int lines = 0;

	for (const char *p = whole->str; *p; p++)
		lines += *p == '\n';
	g_assert_no_error(err);
	g_assert_cmpuint(lines, ==, 8);
	g_assert_cmpstr(whole->str, ==, bytewise->str);

	/* A split at every byte boundary: the same messages each time. */
	for (size_t cut = 1; cut < all; cut++) {
		size_t cuts[2] = { cut, all };
		size_t reads = 0;
		g_autoptr(GString) s = frame_reads(transcript, all, cuts, 2, 0, 0, &reads, &err);

		g_assert_no_error(err);
		g_assert_cmpuint(reads, ==, 2);
		g_assert_cmpstr(s->str, ==, whole->str);
	}
	/* And chunk sizes that wander over the boundaries. */
	for (size_t a = 1; a < 12; a++) {
		size_t cuts[3] = { a, 3 * a + 1, 7 };
		g_autoptr(GString) s = frame(transcript, all, cuts, 3, 0, 0, &err);

		g_assert_no_error(err);
		g_assert_cmpstr(s->str, ==, whole->str);
	}
}

/* Several messages in one read, with no separator or with odd whitespace. */
static void test_framer_many_in_one(void)
{
	static const char in[] = "{\"return\": 1}{\"return\": 2} \t{\"return\": 3}\n\n\r\n"
				 "{\"return\": {\"a\": [1, {\"b\": \"}\"}]}}\r\n";
	size_t len = sizeof(in) - 1;
	g_autoptr(GError) err = NULL;
	g_autoptr(GString) s = frame(in, len, &len, 1, 0, 0, &err);

	g_assert_no_error(err);
	g_assert_cmpstr(s->str, ==,
			"{\"return\":1}\n{\"return\":2}\n{\"return\":3}\n"
			"{\"return\":{\"a\":[1,{\"b\":\"}\"}]}}\n");
}

/* Whitespace between messages costs nothing and is not a message. */
static void test_framer_whitespace(void)
{
	g_autoptr(VmcgJsonStream) f = stream_new(16, 0);
	json_object *obj = NULL;
	size_t used;
	char ws[4096];

	memset(ws, '\n', sizeof(ws));
	for (int i = 0; i < 100; i++)
		g_assert_cmpint(vmcg_json_stream_feed(f, ws, sizeof(ws), &used, &obj, NULL), ==, 0);
	g_assert_false(vmcg_json_stream_in_message(f));
	g_assert_cmpint(vmcg_json_stream_feed(f, "{\"return\": 1}", 13, &used, &obj, NULL), ==, 1);
	json_object_put(obj);
}

/*
 * The size limit: a message of exactly the limit passes; one byte more is
 * refused at that byte, before json-c has seen it, whatever the chunking.
 */
static void test_framer_oversized(void)
{
	enum {
		LIMIT = 1000
	};
	GString *msg = g_string_new("{\"return\": \"");
	g_autofree char *fit = NULL;
	size_t fit_len;

	while (msg->len < LIMIT - 2)
		g_string_append_c(msg, 'x');
	g_string_append(msg, "\"}");
	g_assert_cmpuint(msg->len, ==, LIMIT);
	fit_len = msg->len;
	fit = g_string_free(msg, FALSE);

	for (size_t cut = 1; cut <= LIMIT + 1; cut += 37) {
		g_autoptr(GError) err = NULL;
		g_autoptr(GString) ok = frame(fit, fit_len, &cut, 1, LIMIT, 0, &err);
		g_autofree char *over = g_strdup_printf("{\"return\": \"x%s", fit + 12);
		g_autoptr(GString) no = NULL;

		g_assert_no_error(err);
		g_assert_true(g_str_has_suffix(ok->str, "xx\"}\n")); /* one whole message */
		g_assert_cmpuint(strlen(strchr(ok->str, '\n')), ==, 1);
		no = frame(over, strlen(over), &cut, 1, LIMIT, 0, &err);
		g_assert_error(err, VMCG_JSON_STREAM_ERROR, VMCG_JSON_STREAM_ERROR_TOO_BIG);
		g_assert_nonnull(strstr(err->message, "larger than 1000 bytes"));
		g_assert_cmpuint(no->len, ==, 0);
	}

	/* Byte-exact: the framer takes LIMIT bytes and refuses the next. */
	{
		g_autoptr(VmcgJsonStream) f = stream_new(LIMIT, 0);
		g_autofree char *big = g_malloc(LIMIT * 4);
		g_autoptr(GError) err = NULL;
		json_object *obj = NULL;
		size_t used = 0;

		memset(big, ' ', LIMIT * 4);
		memcpy(big, "{\"return\": [", 12);
		g_assert_cmpint(vmcg_json_stream_feed(f, big, LIMIT, &used, &obj, &err), ==, 0);
		g_assert_cmpuint(used, ==, LIMIT);
		g_assert_true(vmcg_json_stream_in_message(f));
		g_assert_cmpint(vmcg_json_stream_feed(f, big, 1, &used, &obj, &err), ==, -EMSGSIZE);
		g_assert_error(err, VMCG_JSON_STREAM_ERROR, VMCG_JSON_STREAM_ERROR_TOO_BIG);
		/* It stays refused until reset. */
		g_clear_error(&err);
		g_assert_cmpint(vmcg_json_stream_feed(f, "{}", 2, &used, &obj, &err), ==,
				-EMSGSIZE);
		g_clear_error(&err);
		vmcg_json_stream_reset(f);
		g_assert_false(vmcg_json_stream_in_message(f));
		g_assert_cmpint(vmcg_json_stream_feed(f, "{\"a\":1}", 7, &used, &obj, &err), ==, 1);
		g_assert_cmpuint(used, ==, 7);
		json_object_put(obj);
	}
}

static char *empty_objects(int n, size_t *ret_len)
{
	GString *s = g_string_new("{\"return\": [");

	for (int i = 0; i < n; i++)
		g_string_append(s, i ? ",{}" : "{}");
	g_string_append(s, "]}");
	*ret_len = s->len;
	return g_string_free(s, FALSE);
}

/*
 * The memory limit: [{},{},...] is 3 bytes per element and ~800 bytes of
 * json-c per element (charged 1024); it is refused long before the byte limit, and before
 * json-c has seen any of it.
 */
static void test_framer_tree_limit(void)
{
	size_t len, small_len;
	g_autofree char *buf = empty_objects(100000, &len);
	g_autofree char *small = empty_objects(1000, &small_len);
	g_autoptr(GError) err = NULL;
	g_autoptr(GString) out = NULL;

	/* 300 KB, under the default 10 MiB, but charged 100 MB: refused. */
	out = frame(buf, len, &len, 1, 0, 0, &err);
	g_assert_error(err, VMCG_JSON_STREAM_ERROR, VMCG_JSON_STREAM_ERROR_TOO_BIG);
	g_assert_nonnull(strstr(err->message, "more than 67108864 bytes of memory"));
	g_assert_cmpuint(out->len, ==, 0);
	g_clear_error(&err);
	g_string_free(g_steal_pointer(&out), TRUE);

	/* 1000 of them are charged ~1 MB: refused under 512 KiB, not 2 MiB. */
	out = frame(small, small_len, &small_len, 1, 0, 512 * 1024, &err);
	g_assert_error(err, VMCG_JSON_STREAM_ERROR, VMCG_JSON_STREAM_ERROR_TOO_BIG);
	g_clear_error(&err);
	g_string_free(g_steal_pointer(&out), TRUE);
	out = frame(small, small_len, &small_len, 1, 0, 2 << 20, &err);
	g_assert_no_error(err);
	g_assert_true(g_str_has_prefix(out->str, "{\"return\":[{},{},"));
}

/* Everything that cannot start a message, between messages. */
static void test_framer_garbage_between(void)
{
	static const char *const streams[] = { "{\"return\": 1}x{\"return\": 2}",
					       "{\"return\": 1}\r\n[1]\r\n",
					       "{\"return\": 1}\r\n\"s\"", "{\"return\": 1}}",
					       "{\"return\": 1}\0" };

	for (size_t i = 0; i < G_N_ELEMENTS(streams); i++) {
		size_t len = strlen(streams[i]) + (i == 4);
		g_autoptr(GError) err = NULL;
		g_autoptr(GString) out = frame(streams[i], len, &len, 1, 0, 0, &err);

		g_assert_cmpstr(out->str, ==, "{\"return\":1}\n");
		g_assert_error(err, VMCG_JSON_STREAM_ERROR, VMCG_JSON_STREAM_ERROR_INVALID);
		g_assert_nonnull(strstr(err->message, "must be a JSON object"));
	}
}

/* Feed @in to @s in chunks of @chunk bytes; messages as text, then "error: ...". */
static GString *frame_with(VmcgJsonStream *s, const char *in, size_t len, size_t chunk)
{
	GString *out = g_string_new(NULL);

	for (size_t pos = 0; pos < len;) {
		size_t n = MIN(chunk, len - pos), at = 0;

		while (at < n) {
			json_object *obj = NULL;
			g_autoptr(GError) err = NULL;
			size_t used = 0;
			int r = vmcg_json_stream_feed(s, in + pos + at, n - at, &used, &obj, &err);

			if (r < 0) {
				g_assert_true(err && err->domain == VMCG_JSON_STREAM_ERROR);
				g_string_append_printf(out, "error: %s\n", err->message);
				return out;
			}
			at += used;
			if (r == 0)
				break;
			g_string_append_printf(
				out, "%s\n",
				json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN));
			json_object_put(obj);
		}
		pos += n;
	}
	return out;
}

/*
 * Newline-delimited JSON: one object per line, CRLF or LF, empty lines
 * skipped; the same input in the concatenated framing for contrast. Every
 * chunk size gives the same result.
 */
static void test_ndjson(void)
{
	static const struct {
		const char *in;
		const char *ndjson, *concat;
	} cases[] = {
		{ "{\"a\":1}\n{\"b\":2}\r\n\n\r\n  {\"c\":[1,2]}\n",
		  "{\"a\":1}\n{\"b\":2}\n{\"c\":[1,2]}\n",
		  "{\"a\":1}\n{\"b\":2}\n{\"c\":[1,2]}\n" },
		/* A message may end the stream without its newline. */
		{ "{\"a\":1}", "{\"a\":1}\n", "{\"a\":1}\n" },
		/* Spaces after a message on its line are fine. */
		{ "{\"a\":1} \t\r\n{\"b\":2}\n", "{\"a\":1}\n{\"b\":2}\n",
		  "{\"a\":1}\n{\"b\":2}\n" },
		{ "{\"a\":1}{\"b\":2}\n",
		  "{\"a\":1}\nerror: invalid JSON message: a second message on "
		  "one line (newline-delimited JSON)\n",
		  "{\"a\":1}\n{\"b\":2}\n" },
		{ "{\"a\":1} {\"b\":2}\n",
		  "{\"a\":1}\nerror: invalid JSON message: a second message "
		  "on one line (newline-delimited JSON)\n",
		  "{\"a\":1}\n{\"b\":2}\n" },
		{ "{\"a\":\n1}\n",
		  "error: invalid JSON message at byte 5: newline inside a message "
		  "(newline-delimited JSON)\n",
		  "{\"a\":1}\n" },
		{ "{\"a\":1}\n[1]\n",
		  "{\"a\":1}\nerror: invalid JSON message: a message must be a "
		  "JSON object, found '[' where one should start\n",
		  "{\"a\":1}\nerror: invalid JSON message: a message must be a "
		  "JSON object, found '[' where one should start\n" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		size_t len = strlen(cases[i].in);

		for (size_t chunk = 1; chunk <= len; chunk++) {
			VmcgJsonStreamOptions nl = { .framing = VMCG_JSON_STREAM_NEWLINE };
			g_autoptr(VmcgJsonStream) a = vmcg_json_stream_new(&nl);
			g_autoptr(VmcgJsonStream) b = vmcg_json_stream_new(NULL);
			g_autoptr(GString) ra = frame_with(a, cases[i].in, len, chunk);
			g_autoptr(GString) rb = frame_with(b, cases[i].in, len, chunk);

			if (strcmp(ra->str, cases[i].ndjson) != 0)
				g_error("case %zu chunk %zu ndjson: got\n%s", i, chunk, ra->str);
			if (strcmp(rb->str, cases[i].concat) != 0)
				g_error("case %zu chunk %zu concat: got\n%s", i, chunk, rb->str);
		}
	}
}

/* reset() forgets the line state too: a new connection starts a new line. */
static void test_ndjson_reset(void)
{
	VmcgJsonStreamOptions nl = { .framing = VMCG_JSON_STREAM_NEWLINE };
	g_autoptr(VmcgJsonStream) s = vmcg_json_stream_new(&nl);
	g_autoptr(GString) a = frame_with(s, "{\"a\":1}", 7, 7);
	g_autoptr(GString) b = NULL;

	vmcg_json_stream_reset(s);
	b = frame_with(s, "{\"b\":2}", 7, 7);
	g_assert_cmpstr(a->str, ==, "{\"a\":1}\n");
	g_assert_cmpstr(b->str, ==, "{\"b\":2}\n");
}

/* max_depth and the noun of errors are options; the defaults are QMP's. */
static void test_options(void)
{
	VmcgJsonStreamOptions o = { .max_depth = 3, .what = "guest message" };
	g_autoptr(VmcgJsonStream) s = vmcg_json_stream_new(&o);
	g_autoptr(VmcgJsonStream) d = vmcg_json_stream_new(NULL);
	static const char ok[] = "{\"a\":[{\"b\":1}]}";
	static const char deep[] = "{\"a\":[[{\"b\":1}]]}";
	g_autoptr(GString) r1 = frame_with(s, ok, strlen(ok), 64);
	g_autoptr(GString) r2 = NULL;
	g_autoptr(GString) r3 = frame_with(d, deep, strlen(deep), 64);

	g_assert_cmpstr(r1->str, ==, "{\"a\":[{\"b\":1}]}\n");
	vmcg_json_stream_reset(s);
	r2 = frame_with(s, deep, strlen(deep), 64);
	g_assert_cmpstr(r2->str, ==,
			"error: invalid guest message at byte 7: nesting deeper than 3\n");
	g_assert_cmpstr(r3->str, ==, "{\"a\":[[{\"b\":1}]]}\n");
}

static void test_parse_object(void)
{
	static const struct {
		const char *in;
		int r;
		const char *msg;
	} cases[] = {
		{ " {\"a\": 1}\r\n", 0, NULL },
		{ "", -EBADMSG, "invalid JSON message: empty input" },
		{ "  \r\n", -EBADMSG, "invalid JSON message: incomplete JSON object" },
		{ "{\"a\": 1", -EBADMSG, "invalid JSON message: incomplete JSON object" },
		{ "{\"a\": 1} x", -EBADMSG,
		  "invalid JSON message: garbage after the JSON object at byte 9" },
		{ "{\"a\": 1} {}", -EBADMSG,
		  "invalid JSON message: garbage after the JSON object at byte 9" },
		{ "[1]", -EBADMSG, "a message must be a JSON object" },
		{ "{\"a\": 1e999}", -EBADMSG, "a number is out of range" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GError) err = NULL;
		g_autoptr(json_object) obj = NULL;
		int r = vmcg_json_parse_object(cases[i].in, strlen(cases[i].in), NULL, &obj, &err);

		g_assert_cmpint(r, ==, cases[i].r);
		if (r == 0) {
			g_assert_no_error(err);
			g_assert_cmpint(json_object_get_int(json_object_object_get(obj, "a")), ==,
					1);
			continue;
		}
		g_assert_null(obj);
		g_assert_error(err, VMCG_JSON_STREAM_ERROR, VMCG_JSON_STREAM_ERROR_INVALID);
		if (!strstr(err->message, cases[i].msg))
			g_error("case %zu: %s", i, err->message);
	}
	/* The byte limit applies as to a stream. */
	{
		VmcgJsonStreamOptions o = { .max_message_bytes = 4 };
		g_autoptr(GError) err = NULL;
		json_object *obj = NULL;

		g_assert_cmpint(vmcg_json_parse_object("{\"a\":1}", 7, &o, &obj, &err), ==,
				-EMSGSIZE);
		g_assert_error(err, VMCG_JSON_STREAM_ERROR, VMCG_JSON_STREAM_ERROR_TOO_BIG);
	}
}

/*
 * vmcg_json_stream_next_flat(): the plainest whole messages only, within
 * every limit the lexer applies, between messages of a concatenated
 * stream; and where it takes one, the framer takes the same bytes.
 */
static void test_next_flat(void)
{
	static const struct {
		const char *in;
		size_t max_bytes, max_tree;
		size_t want; /* bytes taken; 0: declined */
		int framer;  /* declined at a limit: what the framer says (1 or -EMSGSIZE) */
	} rows[] = {
		{ "{\"return\": {}, \"id\": \"vmcg-1\"}\r\n{}", 0, 0, 30 },
		{ " \r\n\t{\"a\":1}x", 0, 0, 11 },
		{ "{\"a\": [1]}", 0, 0, 0 },
		{ "{\"a\": \"\\n\"}", 0, 0, 0 },
		{ "{\"a\": \"caf\xc3\xa9\"}", 0, 0, 0 },
		{ "{\"a\": 1.5}", 0, 0, 0 },
		{ "{\"a\": 1", 0, 0, 0 },
		{ "x{}", 0, 0, 0 },
		/* 8 bytes: at the byte limit, and one over. */
		{ "{\"a\":12}", 8, 0, 8 },
		{ "{\"a\":123}", 8, 0, 0, -EMSGSIZE },
		/*
		 * The charge: 8 bytes + an object + a key (128 + 2 x 2) + a number
		 * (128). The lexer does not check it on a number's bytes or the
		 * closing '}', so it takes this message at 2 less: declining
		 * there is on the safe side.
		 */
		{ "{\"a\":12}", 0, 8 + 1024 + 132 + 128, 8 },
		{ "{\"a\":12}", 0, 8 + 1024 + 132 + 128 - 1, 0, 1 },
		{ "{\"a\":12}", 0, 8 + 1024 + 132 + 128 - 3, 0, -EMSGSIZE },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		g_autoptr(VmcgJsonStream) f = stream_new(rows[i].max_bytes, rows[i].max_tree);
		g_autoptr(json_object) obj = NULL;
		size_t n = strlen(rows[i].in), used = 0, fed = 0;
		VmcgJsonFlat flat;
		bool ok = vmcg_json_stream_next_flat(f, rows[i].in, n, &used, &flat);

		g_assert_cmpint(ok, ==, rows[i].want != 0);
		if (!ok) {
			if (rows[i].framer)
				g_assert_cmpint(
					vmcg_json_stream_feed(f, rows[i].in, n, &fed, &obj, NULL),
					==, rows[i].framer);
			continue;
		}
		g_assert_cmpuint(used, ==, rows[i].want);
		/* The framer, fed the same bytes, ends its message there too. */
		g_assert_cmpint(vmcg_json_stream_feed(f, rows[i].in, n, &fed, &obj, NULL), ==, 1);
		g_assert_cmpuint(fed, ==, used);
	}
	/* Not inside a message, not after an error, not for newline-delimited JSON. */
	{
		g_autoptr(VmcgJsonStream) f = stream_new(0, 0);
		VmcgJsonStreamOptions nl = { .framing = VMCG_JSON_STREAM_NEWLINE };
		g_autoptr(VmcgJsonStream) g = vmcg_json_stream_new(&nl);
		g_autoptr(GError) err = NULL;
		VmcgJsonFlat flat;
		json_object *obj = NULL;
		size_t used;

		g_assert_cmpint(vmcg_json_stream_feed(f, "{\"a\":", 5, &used, &obj, NULL), ==, 0);
		g_assert_false(vmcg_json_stream_next_flat(f, "{}", 2, &used, &flat));
		g_assert_cmpint(vmcg_json_stream_feed(f, "]", 1, &used, &obj, &err), <, 0);
		g_assert_false(vmcg_json_stream_next_flat(f, "{}", 2, &used, &flat));
		g_assert_false(vmcg_json_stream_next_flat(g, "{}\n", 3, &used, &flat));
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/json-stream/transcript-every-split", test_framer_transcript);
	g_test_add_func("/json-stream/many-in-one-read", test_framer_many_in_one);
	g_test_add_func("/json-stream/whitespace", test_framer_whitespace);
	g_test_add_func("/json-stream/oversized", test_framer_oversized);
	g_test_add_func("/json-stream/tree-limit", test_framer_tree_limit);
	g_test_add_func("/json-stream/garbage-between", test_framer_garbage_between);
	g_test_add_func("/json-stream/ndjson", test_ndjson);
	g_test_add_func("/json-stream/ndjson-reset", test_ndjson_reset);
	g_test_add_func("/json-stream/options", test_options);
	g_test_add_func("/json-stream/parse-object", test_parse_object);
	g_test_add_func("/json-stream/next-flat", test_next_flat);
	return g_test_run();
}
