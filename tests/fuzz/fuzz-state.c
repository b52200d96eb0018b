// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fuzz target: the state file (vmcg_state_apply_text()). Any input either
 * applies or is refused with an error, and a refused one leaves the
 * daemon's tree exactly as it was.
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
	return 0;
}
