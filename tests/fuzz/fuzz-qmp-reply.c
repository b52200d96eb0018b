// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fuzz target of the QMP reply parsers (daemon/qmp-reply.c): what a hostile
 * or broken QEMU (or a guest, through the balloon statistics) can put in a
 * reply the daemon reads.
 *
 * Per input: parsed as one QMP message (vmcg_qmp_parse()); a return value
 * goes through every reply parser, an event's data through the
 * BALLOON_CHANGE parser, each with the limit unknown (0) and with a small
 * guest's RAM. Every parser must either fail with a GError of
 * VMCG_QMP_ERROR, leaving its out-parameters alone, or give values that
 * keep qmp-reply.h's promises. The same input read flat (json-flat.h):
 * where a fast reader (vmcg_qmp_fast_*()) answers, the json-c parser must
 * give the same values.
 *
 * To fuzz: clang -fsanitize=fuzzer,address,undefined -DVMCG_LIBFUZZER
 * -D_GNU_SOURCE -Idaemon daemon/json-flat.c daemon/json-stream.c daemon/qmp-message.c
 * daemon/qmp-reply.c tests/fuzz/fuzz-qmp-reply.c $(pkg-config --cflags
 * --libs glib-2.0 json-c) -lm, then run it on a copy of corpus/qmp-reply.
 */
#include <stdint.h>
#include <string.h>

#include <glib.h>

#include "fuzz-check.h"
#include "qmp-reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Sentinel of out-parameters that must stay untouched on failure. */
#define UNSET UINT64_C(0xdeadbeefdeadbeef)

static void check_error(GError *err)
{
	CHECK(err && err->domain == VMCG_QMP_ERROR);
	CHECK(err->code == VMCG_QMP_ERROR_BAD_REPLY || err->code == VMCG_QMP_ERROR_NO_VALUE);
	CHECK(err->message && *err->message);
	g_error_free(err);
}

static void check_size(bool ok, uint64_t v, uint64_t lim, GError *err)
{
	if (!ok) {
		CHECK(v == UNSET);
		check_error(err);
		return;
	}
	CHECK(!err && v > 0 && v <= lim);
}

static void fuzz_return(json_object *ret, uint64_t ram)
{
	uint64_t lim = ram ? ram : VMCG_QMP_SIZE_LIMIT_DEFAULT_BYTES;
	GError *err = NULL;
	uint64_t v = UNSET;
	bool ok;

	ok = vmcg_qmp_parse_balloon(ret, ram, &v, &err);
	check_size(ok, v, lim, err);
	err = NULL;

	{
		VmcgQmpGuestStats st, unset;

		memset(&st, 0xa5, sizeof(st));
		unset = st;
		ok = vmcg_qmp_parse_guest_stats(ret, ram, &st, &err);
		if (!ok) {
			CHECK(memcmp(&st, &unset, sizeof(st)) == 0);
			check_error(err);
		} else {
			CHECK(!err);
			CHECK(st.total_bytes > 0 && st.total_bytes <= lim);
			CHECK(st.available_bytes <= st.total_bytes);
			CHECK(st.free_bytes >= -1 && st.free_bytes <= (int64_t)st.total_bytes);
			CHECK(st.cache_bytes >= -1 && st.cache_bytes <= (int64_t)st.total_bytes);
		}
		err = NULL;
	}

	v = UNSET;
	ok = vmcg_qmp_parse_memdev(ret, &v, &err);
	check_size(ok, v, VMCG_QMP_MEMDEV_MAX_BYTES, err);
	err = NULL;

	{
		char *path = NULL;

		ok = vmcg_qmp_parse_balloon_child(ret, &path, &err);
		if (!ok) {
			CHECK(!path);
			check_error(err);
		} else {
			CHECK(!err && g_str_has_prefix(path, "/machine/peripheral"));
			g_free(path);
		}
		err = NULL;
	}

	{
		bool running = false;
		const char *status = NULL;

		ok = vmcg_qmp_parse_status(ret, &running, &status, &err);
		if (!ok) {
			CHECK(!status);
			check_error(err);
		} else {
			CHECK(!err && status && *status);
		}
	}
}

static void fuzz_event(const VmcgQmpMessage *m, uint64_t ram)
{
	uint64_t lim = ram ? ram : VMCG_QMP_SIZE_LIMIT_DEFAULT_BYTES;
	GError *err = NULL;
	uint64_t v = UNSET;
	bool ok;

	(void)vmcg_qmp_event_kind(m->event);
	ok = vmcg_qmp_parse_balloon_change(m->data, ram, &v, &err);
	check_size(ok, v, lim, err);
}

/* The fast readers of the message read flat agree with the json-c parsers. */
static void fuzz_fast(const char *text, size_t len, const VmcgQmpMessage *m, uint64_t ram)
{
	VmcgJsonFlat f;
	VmcgQmpFastMessage fm;
	json_object *obj;
	int node;
	uint64_t a = UNSET, b = UNSET;
	VmcgQmpGuestStats fs, cs;

	if (!vmcg_json_flat_parse(text, len, &f) || !vmcg_qmp_fast_classify(&f, &fm))
		return;
	CHECK(fm.type == m->type);
	obj = m->type == VMCG_QMP_MSG_RETURN ? m->ret : m->data;
	node = m->type == VMCG_QMP_MSG_RETURN ? fm.ret : fm.data;
	if (vmcg_qmp_fast_balloon(&f, node, ram, &a)) {
		CHECK(m->type == VMCG_QMP_MSG_RETURN
			      ? vmcg_qmp_parse_balloon(obj, ram, &b, NULL)
			      : vmcg_qmp_parse_balloon_change(obj, ram, &b, NULL));
		CHECK(a == b);
	}
	if (m->type == VMCG_QMP_MSG_RETURN && vmcg_qmp_fast_guest_stats(&f, node, ram, &fs)) {
		CHECK(vmcg_qmp_parse_guest_stats(obj, ram, &cs, NULL));
		CHECK(fs.total_bytes == cs.total_bytes &&
		      fs.available_bytes == cs.available_bytes && fs.free_bytes == cs.free_bytes &&
		      fs.cache_bytes == cs.cache_bytes && fs.last_update == cs.last_update);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Unknown, and a 128 MiB guest, as query-memdev would give it. */
	static const uint64_t rams[] = { 0, UINT64_C(128) << 20 };
	VmcgQmpMessage m = { 0 };
	GError *err = NULL;

	if (vmcg_qmp_parse((const char *)data, size, &m, &err) < 0) {
		g_error_free(err);
		return 0;
	}
	for (size_t i = 0; i < G_N_ELEMENTS(rams); i++) {
		if (m.type == VMCG_QMP_MSG_RETURN)
			fuzz_return(m.ret, rams[i]);
		else if (m.type == VMCG_QMP_MSG_EVENT)
			fuzz_event(&m, rams[i]);
		fuzz_fast((const char *)data, size, &m, rams[i]);
	}
	vmcg_qmp_message_clear(&m);
	return 0;
}
