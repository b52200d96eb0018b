// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fuzz target: the smaps and status parsers of the sampler. Any input is
 * measured or refused with an error; what is measured never exceeds what
 * was asked for.
 */
#include <glib.h>

#include "sampler.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t sizes[] = { 4096, 256 << 10, 256 << 20, 512 << 20 };

	for (gsize i = 0; i < G_N_ELEMENTS(sizes); i++) {
		g_autoptr(GError) error = NULL;
		VmcgSample s;

		if (vmcg_sample_parse_smaps((const char *)data, size, sizes[i], &s, &error)) {
			g_assert_cmpuint(s.guest_size % sizes[i], ==, 0);
			g_assert_cmpuint(s.guest_resident, <=, s.total_rss);
		} else {
			g_assert_nonnull(error);
		}
	}
	{
		g_autoptr(GError) error = NULL;
		VmcgStatusSample st;

		if (!vmcg_status_parse((const char *)data, size, &st, &error))
			g_assert_nonnull(error);
	}
	return 0;
}
