// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fuzz target of the QMP parser (daemon/qmp-message.c) and the JSON stream
 * framer under it (daemon/json-stream.c): what a hostile or broken QEMU can
 * send the daemon.
 *
 * Per input:
 *  1. vmcg_qmp_parse() on the whole input: it must succeed with a message
 *     whose fields keep their promises, or fail with a GError; a message
 *     that parsed, serialized by json-c and parsed again, must classify the
 *     same.
 *  2. The framer over the input as a stream, twice: in one piece, and in
 *     chunks of pseudo-random sizes derived from the input. Both runs must
 *     give the same messages and the same error, byte for byte: chunking
 *     must never change what the client sees. The same again with
 *     newline-delimited framing, as a guest channel would use it.
 *  3. The same stream through vmcg_json_stream_feed_text() (what the QMP
 *     client uses), whole and chunked: the same messages and error again.
 *     Every message it returns as text is also read flat
 *     (daemon/json-flat.c): what the flat reader accepts must be what
 *     json-c parsed, value for value, and vmcg_qmp_fast_classify() must
 *     agree with vmcg_qmp_classify() wherever it answers. Where
 *     vmcg_json_stream_next_flat() takes the next message (the client then
 *     skips the lexer), the framer must find the same message, ending at
 *     the same byte, with the same values.
 *
 * To fuzz: clang -fsanitize=fuzzer,address,undefined -DVMCG_LIBFUZZER
 * -D_GNU_SOURCE -Idaemon daemon/json-flat.c daemon/json-stream.c daemon/qmp-message.c
 * tests/fuzz/fuzz-qmp.c $(pkg-config
 * --cflags --libs glib-2.0 gio-2.0 json-c) -lm, then run it on a copy of
 * corpus/qmp. Without libFuzzer, tests/fuzz/fuzz-replay.c provides main()
 * and `meson test --suite fuzz` replays the corpus with any compiler.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "fuzz-check.h"
#include "json-flat.h"
#include "json-stream.h"
#include "qmp-message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small limits for the framer, so that short inputs reach them. */
#define FUZZ_MAX_BYTES 2048
#define FUZZ_MAX_TREE (64 * 1024)

static void check_message(const VmcgQmpMessage *m)
{
	CHECK(m->root && json_object_is_type(m->root, json_type_object));
	switch (m->type) {
	case VMCG_QMP_MSG_GREETING:
		CHECK(m->qemu_major >= 0 && m->qemu_minor >= 0 && m->qemu_micro >= 0);
		CHECK(m->qemu_package);
		CHECK(json_object_is_type(m->capabilities, json_type_array));
		break;
	case VMCG_QMP_MSG_RETURN:
		CHECK(m->ret);
		CHECK(!m->id || strlen(m->id) < (size_t)-1);
		break;
	case VMCG_QMP_MSG_ERROR:
		CHECK(m->error_class && *m->error_class);
		CHECK(m->error_desc);
		break;
	case VMCG_QMP_MSG_EVENT:
		CHECK(m->event && *m->event);
		CHECK(!m->data || json_object_is_type(m->data, json_type_object));
		CHECK(m->timestamp_usec >= -1);
		break;
	default:
		CHECK(!"unknown message type");
	}
}

static void fuzz_parse(const char *buf, size_t len)
{
	VmcgQmpMessage m = { 0 };
	GError *err = NULL;
	int r = vmcg_qmp_parse(buf, len, &m, &err);

	if (r < 0) {
		CHECK(r == -EBADMSG || r == -EMSGSIZE);
		CHECK(err && err->domain == VMCG_QMP_ERROR && err->message && *err->message);
		CHECK(!m.root);
		g_error_free(err);
		return;
	}
	CHECK(r == 0 && !err);
	check_message(&m);

	/* Round trip through json-c's own serializer. */
	{
		size_t n;
		const char *s =
			json_object_to_json_string_length(m.root, JSON_C_TO_STRING_PLAIN, &n);
		VmcgQmpMessage m2 = { 0 };

		r = vmcg_qmp_parse(s, n, &m2, &err);
		if (r == 0) {
			CHECK(m2.type == m.type);
			CHECK(json_object_equal(m.root, m2.root));
			vmcg_qmp_message_clear(&m2);
		} else {
			/* Only growth can fail it: json-c writes "/" as "\/". */
			CHECK(g_error_matches(err, VMCG_QMP_ERROR, VMCG_QMP_ERROR_MESSAGE_TOO_BIG));
			g_error_free(err);
		}
	}
	vmcg_qmp_message_clear(&m);
}

/* Node @k of @f holds what json-c made of the same text, @o. */
static void check_flat_node(const VmcgJsonFlat *f, int k, json_object *o)
{
	const VmcgJsonFlatNode *n = &f->node[k];

	switch (n->type) {
	case VMCG_JSON_FLAT_OBJECT:
		CHECK(json_object_is_type(o, json_type_object));
		CHECK(json_object_object_length(o) == vmcg_json_flat_count(f, k));
		for (int m = k + 1; m < f->n; m++) {
			json_object *v = NULL;
			char *key;

			if (f->node[m].parent != k)
				continue;
			key = g_strndup(f->node[m].key, f->node[m].key_len);
			CHECK(strlen(key) == f->node[m].key_len);
			CHECK(json_object_object_get_ex(o, key, &v));
			g_free(key);
			check_flat_node(f, m, v);
		}
		break;
	case VMCG_JSON_FLAT_INT:
		CHECK(json_object_is_type(o, json_type_int));
		CHECK(json_object_get_int64(o) == n->i);
		break;
	case VMCG_JSON_FLAT_UINT:
		CHECK(json_object_is_type(o, json_type_int) && n->u > (uint64_t)INT64_MAX);
		CHECK(json_object_get_uint64(o) == n->u);
		break;
	case VMCG_JSON_FLAT_STRING:
		CHECK(json_object_is_type(o, json_type_string));
		if (!n->escaped)
			CHECK((size_t)json_object_get_string_len(o) == n->len &&
			      memcmp(json_object_get_string(o), n->str, n->len) == 0);
		break;
	case VMCG_JSON_FLAT_OTHER:
		CHECK(json_object_is_type(o, json_type_boolean) || o == NULL);
		break;
	default:
		CHECK(!"unknown flat type");
	}
}

/* A message returned as text and parsed by json-c into @obj: the flat reader agrees. */
static void check_flat(const char *text, size_t len, json_object *obj)
{
	VmcgJsonFlat f;
	VmcgQmpFastMessage fm;
	VmcgQmpMessage m = { 0 };
	GError *err = NULL;

	if (!vmcg_json_flat_parse(text, len, &f))
		return;
	CHECK(f.n >= 1 && f.n <= VMCG_JSON_FLAT_MAX_NODES);
	check_flat_node(&f, 0, obj);
	if (!vmcg_qmp_fast_classify(&f, &fm))
		return;
	CHECK(vmcg_qmp_classify(obj, &m, &err) == 0);
	CHECK(m.type == fm.type);
	if (m.type == VMCG_QMP_MSG_RETURN) {
		CHECK(!m.id == !fm.id);
		CHECK(!m.id || (strlen(m.id) == fm.id_len && memcmp(m.id, fm.id, fm.id_len) == 0));
		CHECK(json_object_is_type(m.ret, json_type_object));
		check_flat_node(&f, fm.ret, m.ret);
	} else {
		CHECK(strcmp(m.event, fm.event) == 0);
		CHECK(!m.data == (fm.data < 0));
		if (m.data)
			check_flat_node(&f, fm.data, m.data);
		CHECK(m.timestamp_usec == fm.timestamp_usec);
	}
	vmcg_qmp_message_clear(&m);
}

/* xorshift64*, seeded from the input: the same input chunks the same way. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

static size_t chunk_size(uint64_t *s)
{
	uint64_t r = rng_next(s);

	/* Mostly tiny chunks, where boundaries fall inside tokens. */
	switch (r & 3) {
	case 0:
		return 1;
	case 1:
	case 2:
		return 1 + (r >> 8) % 16;
	default:
		return 1 + (r >> 8) % 512;
	}
}

/*
 * The framer over @buf, chunked by @seed (0: one piece), as text; through
 * vmcg_json_stream_feed_text() if @text.
 */
static GString *frame(const char *buf, size_t len, uint64_t seed, VmcgJsonStreamFraming framing,
		      bool text)
{
	VmcgJsonStreamOptions o = vmcg_qmp_stream_options(FUZZ_MAX_BYTES, FUZZ_MAX_TREE);
	g_autoptr(VmcgJsonStream) f = NULL;
	GString *out = g_string_new(NULL);
	size_t pos = 0;

	o.framing = framing;
	f = vmcg_json_stream_new(&o);
	while (pos < len) {
		size_t n = seed ? chunk_size(&seed) : len;
		size_t at = 0;

		n = MIN(n, len - pos); /* MIN() evaluates twice: no call in it */
		while (at < n) {
			json_object *obj = NULL;
			GError *err = NULL;
			size_t used = SIZE_MAX;
			const char *msg = NULL;
			size_t msg_len = 0, flat_used = 0;
			VmcgJsonFlat flat;
			/* What the QMP client reads flat first must be the next message. */
			bool is_flat = text && vmcg_json_stream_next_flat(f, buf + pos + at, n - at,
									  &flat_used, &flat);
			int r = text ? vmcg_json_stream_feed_text(f, buf + pos + at, n - at, &used,
								  &obj, &msg, &msg_len, &err)
				     : vmcg_json_stream_feed(f, buf + pos + at, n - at, &used, &obj,
							     &err);

			CHECK(!is_flat || ((r == 1 || r == 2) && used == flat_used));

			if (r == 2) {
				CHECK(!obj && !err && used <= n - at && msg >= buf + pos + at &&
				      msg + msg_len <= buf + pos + at + used);
				r = vmcg_json_stream_parse_text(f, msg, msg_len, &obj, &err);
				CHECK(!is_flat || r == 0);
				if (r == 0) {
					check_flat(msg, msg_len, obj);
					r = 1;
				}
			}
			if (is_flat) {
				CHECK(r == 1 && obj);
				check_flat_node(&flat, 0, obj);
			}
			if (r < 0) {
				CHECK(!obj && err && err->domain == VMCG_JSON_STREAM_ERROR);
				g_string_append_printf(out, "error %d: %s\n", err->code,
						       err->message);
				g_error_free(err);
				return out;
			}
			CHECK(!err && used <= n - at);
			at += used;
			if (r == 0) {
				CHECK(at == n && !obj);
				break;
			}
			CHECK(r == 1 && obj && json_object_is_type(obj, json_type_object));
			{
				VmcgQmpMessage m = { 0 };

				if (vmcg_qmp_classify(obj, &m, &err) == 0) {
					check_message(&m);
					g_string_append_printf(out, "type %d: ", m.type);
					vmcg_qmp_message_clear(&m);
				} else {
					g_string_append_printf(out,
							       "unclassified: %s: ", err->message);
					g_error_free(err);
				}
			}
			g_string_append_printf(
				out, "%s\n",
				json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN));
			json_object_put(obj);
		}
		pos += n;
	}
	g_string_append_printf(out, "end%s\n",
			       vmcg_json_stream_in_message(f) ? " in a message" : "");
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	uint64_t seed = UINT64_C(0xcbf29ce484222325);
	static const VmcgJsonStreamFraming framings[] = { VMCG_JSON_STREAM_CONCATENATED,
							  VMCG_JSON_STREAM_NEWLINE };

	fuzz_parse(buf, size);

	for (size_t i = 0; i < size; i++)
		seed = (seed ^ data[i]) * UINT64_C(0x100000001b3);
	seed |= 1; /* xorshift's state must not be 0; 0 means one piece */
	for (size_t k = 0; k < G_N_ELEMENTS(framings); k++) {
		GString *whole = frame(buf, size, 0, framings[k], false);
		GString *runs[] = {
			frame(buf, size, seed, framings[k], false),
			frame(buf, size, 0, framings[k], true),
			frame(buf, size, seed, framings[k], true),
		};
		static const char *const names[] = { "chunked", "as text", "chunked, as text" };

		for (size_t j = 0; j < G_N_ELEMENTS(runs); j++) {
			if (strcmp(whole->str, runs[j]->str) != 0) {
				fprintf(stderr,
					"%s changed the result (framing %d):\n--- whole\n%s--- "
					"%s\n%s",
					names[j], framings[k], whole->str, names[j], runs[j]->str);
				abort();
			}
			g_string_free(runs[j], TRUE);
		}
		g_string_free(whole, TRUE);
	}
	return 0;
}
