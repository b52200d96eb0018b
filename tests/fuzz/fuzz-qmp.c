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
 *
 * To fuzz: clang -fsanitize=fuzzer,address,undefined -DVMCG_LIBFUZZER
 * -D_GNU_SOURCE -Idaemon daemon/json-stream.c daemon/qmp-message.c tests/fuzz/fuzz-qmp.c $(pkg-config
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

/* The framer over @buf, chunked by @seed (0: one piece), as text. */
static GString *frame(const char *buf, size_t len, uint64_t seed, VmcgJsonStreamFraming framing)
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
			int r = vmcg_json_stream_feed(f, buf + pos + at, n - at, &used, &obj, &err);

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
		GString *whole = frame(buf, size, 0, framings[k]);
		GString *chunked = frame(buf, size, seed, framings[k]);

		if (strcmp(whole->str, chunked->str) != 0) {
			fprintf(stderr,
				"chunking changed the result (framing %d):\n--- whole\n%s--- "
				"chunked\n%s",
				framings[k], whole->str, chunked->str);
			abort();
		}
		g_string_free(whole, TRUE);
		g_string_free(chunked, TRUE);
	}
	return 0;
}
