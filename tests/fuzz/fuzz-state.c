// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fuzz target: the state file (vmcg_state_apply_text()). Any input either
 * applies or is refused with an error, and a refused one leaves the
 * daemon's tree exactly as it was. The same bytes as a journal record
 * (vmcg_state_apply_record()) apply or are refused, without a crash; and
 * vmcg_state_mark_text() only adds.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -DVMCG_LIBFUZZER ...
 */
#include <glib.h>
#include <string.h>

#include "daemon-private.h"
#include "state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autoptr(GError) error = NULL;
	VmcgDaemon *d = vmcg_daemon_new(NULL, NULL);
	g_autoptr(json_object) before = vmcg_state_to_json(d);
	g_autofree char *b = g_strdup(json_object_to_json_string(before));

	if (!vmcg_state_apply_text(d, (const char *)data, size, &error)) {
		g_autoptr(json_object) after = vmcg_state_to_json(d);

		g_assert_nonnull(error);
		g_assert_cmpstr(b, ==, json_object_to_json_string(after));
	}
	vmcg_daemon_free(d);

	{
		g_autoptr(GError) rec_error = NULL;
		g_autoptr(json_tokener) tok = json_tokener_new_ex(16);
		g_autoptr(json_object) rec = NULL;
		g_autofree char *marked = NULL;
		VmcgDaemon *d2 = vmcg_daemon_new(NULL, NULL);
		gsize len = 0;

		marked = vmcg_state_mark_text((const char *)data, size, &len);
		if (marked) /* only ever adds: ".0", or a backslash */
			g_assert_cmpuint(len, >, size);
		if (size < INT32_MAX)
			rec = json_tokener_parse_ex(tok, (const char *)data, (int)size);
		if (rec && !vmcg_state_apply_record(d2, rec, &rec_error))
			g_assert_nonnull(rec_error);
		vmcg_daemon_free(d2);
	}
	return 0;
}
