// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fuzz target for the API's request-body parsers (daemon/api-parse.c).
 *
 * Input: one selector byte, then the body. The selector (mod 4) picks the
 * parser: '0' group settings, '1' VM add, '2' VM update, '3' reclaim, so
 * the seed corpus in tests/fuzz/corpus/api/ is readable text.
 *
 * Beyond "no crash, no leak, no UB" it checks what the parsers promise:
 * an error is in VMCG_API_ERROR with a valid UTF-8 message; an accepted
 * body yields only values the daemon accepts (sizes up to VMCG_SIZE_LIMIT
 * or "max", valid names and paths, priorities in range), and writing the
 * result back as JSON and parsing that gives the same result.
 *
 * libFuzzer build (clang), from the source root; the parsers live in
 * api-parse.c (with settings.c), linked here with the rest of the daemon:
 *   python3 daemon/embed.py config/vmcgd.conf /tmp/gen/vmcgd-conf.h
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -DVMCG_LIBFUZZER -D_GNU_SOURCE \
 *     -Iinclude -Idaemon -I/tmp/gen lib/[a-z]*.c $(ls daemon/[a-z]*.c | grep -v /main.c) \
 *     tests/fuzz/fuzz-api.c $(pkg-config --cflags --libs glib-2.0 gio-2.0 \
 *     gio-unix-2.0 json-c libsoup-3.0) -lpthread -o fuzz-api
 *   mkdir -p /tmp/corpus && ./fuzz-api -max_len=8192 /tmp/corpus tests/fuzz/corpus/api
 * Without VMCG_LIBFUZZER, main() below replays files or directories of
 * inputs, which is how `meson test --suite fuzz` runs the corpus.
 */
#include <glib.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-check.h"
#include "api.h"
#include "vmcg/oom.h"
#include "vmcg/size.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_error(const GError *error)
{
	CHECK(error);
	CHECK(error->domain == VMCG_API_ERROR);
	CHECK(error->code >= VMCG_API_ERROR_SYNTAX && error->code <= VMCG_API_ERROR_VALUE);
	CHECK(error->message && g_utf8_validate(error->message, -1, NULL));
}

static void check_size(uint64_t bytes)
{
	CHECK(bytes <= VMCG_SIZE_LIMIT || bytes == VMCG_BYTES_MAX);
}

static void add_size(json_object *obj, const char *key, uint64_t bytes)
{
	json_object_object_add(obj, key,
			       bytes == VMCG_BYTES_MAX ? json_object_new_string("max")
						       : json_object_new_uint64(bytes));
}

/* Parse @obj's JSON text with @fn and hand back the text for the caller to free. */
static char *to_text(json_object *obj)
{
	char *text = g_strdup(json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN));

	json_object_put(obj);
	return text;
}

static void fuzz_group(const char *body, size_t len)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *text = NULL;
	VmcgGroupSettings s, again;
	json_object *obj;

	if (!vmcg_api_parse_group_settings(body, len, &s, &error)) {
		check_error(error);
		return;
	}
	obj = json_object_new_object();
	if (s.has_min) {
		check_size(s.min);
		add_size(obj, "memory.min", s.min);
	}
	if (s.has_low) {
		check_size(s.low);
		add_size(obj, "memory.low", s.low);
	}
	if (s.has_high) {
		check_size(s.high);
		add_size(obj, "memory.high", s.high);
	}
	if (s.has_max) {
		check_size(s.max);
		add_size(obj, "memory.max", s.max);
	}
	if (s.has_oom_group)
		json_object_object_add(obj, "memory.oom.group",
				       json_object_new_boolean(s.oom_group));
	if (s.has_oom_action) {
		CHECK(vmcg_oom_action_to_string(s.oom_action));
		json_object_object_add(
			obj, "oom-action",
			json_object_new_string(vmcg_oom_action_to_string(s.oom_action)));
	}
	if (s.has_overhead_in_max)
		json_object_object_add(obj, "overhead-in-max",
				       json_object_new_boolean(s.overhead_in_max));

	text = to_text(obj);
	CHECK(vmcg_api_parse_group_settings(text, strlen(text), &again, NULL));
	CHECK(again.has_min == s.has_min && (!s.has_min || again.min == s.min));
	CHECK(again.has_low == s.has_low && (!s.has_low || again.low == s.low));
	CHECK(again.has_high == s.has_high && (!s.has_high || again.high == s.high));
	CHECK(again.has_max == s.has_max && (!s.has_max || again.max == s.max));
	CHECK(again.has_oom_group == s.has_oom_group &&
	      (!s.has_oom_group || again.oom_group == s.oom_group));
	CHECK(again.has_oom_action == s.has_oom_action &&
	      (!s.has_oom_action || again.oom_action == s.oom_action));
	CHECK(again.has_overhead_in_max == s.has_overhead_in_max &&
	      (!s.has_overhead_in_max || again.overhead_in_max == s.overhead_in_max));
}

static void fuzz_vm(const char *body, size_t len, bool add)
{
	g_auto(VmcgApiVmRequest) r = { 0 };
	g_auto(VmcgApiVmRequest) again = { 0 };
	g_autoptr(GError) error = NULL;
	g_autofree char *text = NULL;
	json_object *obj;
	gboolean ok;

	ok = add ? vmcg_api_parse_vm_add(body, len, &r, &error)
		 : vmcg_api_parse_vm_update(body, len, &r, &error);
	if (!ok) {
		check_error(error);
		return;
	}
	obj = json_object_new_object();
	if (add) {
		CHECK(r.name && vmcg_vm_name_validate(r.name) == 0);
		CHECK(g_utf8_validate(r.name, -1, NULL));
		CHECK(r.qmp && r.qmp[0] == '/' && strlen(r.qmp) < 108);
		json_object_object_add(obj, "name", json_object_new_string(r.name));
		json_object_object_add(obj, "qmp", json_object_new_string(r.qmp));
	} else {
		CHECK(!r.name && !r.qmp);
	}
	if (r.group) {
		CHECK(vmcg_path_validate(r.group) == 0);
		json_object_object_add(obj, "group", json_object_new_string(r.group));
	}
	if (r.settings.has_floor) {
		check_size(r.settings.floor);
		add_size(obj, "floor", r.settings.floor);
	}
	if (r.settings.has_oom_priority) {
		CHECK(r.settings.oom_priority >= VMCG_OOM_PRIORITY_MIN &&
		      r.settings.oom_priority <= VMCG_OOM_PRIORITY_MAX);
		json_object_object_add(obj, "oom-priority",
				       json_object_new_int(r.settings.oom_priority));
	}

	text = to_text(obj);
	ok = add ? vmcg_api_parse_vm_add(text, strlen(text), &again, NULL)
		 : vmcg_api_parse_vm_update(text, strlen(text), &again, NULL);
	CHECK(ok);
	CHECK(g_strcmp0(again.name, r.name) == 0);
	CHECK(g_strcmp0(again.qmp, r.qmp) == 0);
	CHECK(g_strcmp0(again.group, r.group) == 0);
	CHECK(again.settings.has_floor == r.settings.has_floor &&
	      (!r.settings.has_floor || again.settings.floor == r.settings.floor));
	CHECK(again.settings.has_oom_priority == r.settings.has_oom_priority &&
	      (!r.settings.has_oom_priority ||
	       again.settings.oom_priority == r.settings.oom_priority));
}

static void fuzz_reclaim(const char *body, size_t len)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *text = NULL;
	uint64_t bytes = 0, again = 0;

	if (!vmcg_api_parse_reclaim(body, len, &bytes, &error)) {
		check_error(error);
		return;
	}
	CHECK(bytes <= VMCG_SIZE_LIMIT);
	text = g_strdup_printf("{\"bytes\":%" G_GUINT64_FORMAT "}", (guint64)bytes);
	CHECK(vmcg_api_parse_reclaim(text, strlen(text), &again, NULL));
	CHECK(again == bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body;
	size_t len;

	if (size < 1)
		return 0;
	/* A copy of exactly the body, so ASan sees any read past its end. */
	len = size - 1;
	body = len ? g_memdup2(data + 1, len) : NULL;
	switch (data[0] % 4) {
	case 0:
		fuzz_group(body, len);
		break;
	case 1:
		fuzz_vm(body, len, true);
		break;
	case 2:
		fuzz_vm(body, len, false);
		break;
	case 3:
		fuzz_reclaim(body, len);
		break;
	}
	g_free((char *)body);
	return 0;
}
