/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The GKeyFile second opinion on config files, for test-config.c and
 * fuzz-config.c (it is no part of the daemon's config loading): every file
 * the line scanner accepts must be a valid key file in which GKeyFile sees
 * exactly the sections, keys and raw values the scanner saw. The scanner
 * refuses everything GKeyFile would merge or drop, so any difference is a
 * bug in config.c. Returns NULL, or what differs.
 */
#ifndef VMCG_TESTS_CONFIG_CROSS_CHECK_H
#define VMCG_TESTS_CONFIG_CROSS_CHECK_H

#include <string.h>

#include "config.h"

static inline char *config_cross_check(const char *data, gsize len)
{
	g_autoptr(GKeyFile) kf = g_key_file_new();
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) scanned = NULL;
	g_auto(GStrv) groups = NULL;
	gsize n_groups;

	if (!vmcg_config_scan_data(data, len, &scanned, &error))
		return NULL; /* refused: nothing to compare */
	if (!g_key_file_load_from_data(kf, data, len, G_KEY_FILE_NONE, &error))
		return g_strdup_printf("not a valid key file: %s", error->message);
	groups = g_key_file_get_groups(kf, &n_groups);
	if (n_groups != scanned->len)
		return g_strdup_printf("GKeyFile sees %zu sections, the scanner %u",
				       (size_t)n_groups, scanned->len);
	for (gsize i = 0; i < n_groups; i++) {
		const VmcgConfigScanned *s = g_ptr_array_index(scanned, i);
		g_auto(GStrv) keys = NULL;
		gsize n_keys;

		if (strcmp(groups[i], s->name) != 0)
			return g_strdup_printf("[%s]: GKeyFile sees section [%s] here", s->name,
					       groups[i]);
		keys = g_key_file_get_keys(kf, groups[i], &n_keys, NULL);
		if (!keys || n_keys != s->keys->len)
			return g_strdup_printf("[%s]: GKeyFile sees %zu keys, the scanner %u",
					       s->name, keys ? (size_t)n_keys : 0, s->keys->len);
		for (gsize j = 0; j < n_keys; j++) {
			g_autofree char *v = g_key_file_get_value(kf, groups[i], keys[j], NULL);

			if (strcmp(keys[j], g_ptr_array_index(s->keys, j)) != 0 || !v ||
			    strcmp(v, g_ptr_array_index(s->values, j)) != 0)
				return g_strdup_printf("[%s] %s: GKeyFile and the scanner read it "
						       "differently",
						       s->name, keys[j]);
		}
	}
	return NULL;
}

#endif
