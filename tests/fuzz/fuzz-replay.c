// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Replay driver shared by every fuzz target when it is built without
 * libFuzzer: `meson test --suite fuzz` runs each target over its corpus
 * with the ordinary compiler (and under the sanitizer or valgrind builds).
 * Built with clang -fsanitize=fuzzer, libFuzzer provides main() instead.
 */
#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static gint compare_paths(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Replay: every file named on the command line, or every file in a named
 * directory. Exits 0 when all ran (a finding aborts), 1 when a file could
 * not be read or nothing was run, so an empty or missing corpus fails.
 */
static int replay(const char *path, unsigned *count)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *buf = NULL;
	gsize len;

	if (g_file_test(path, G_FILE_TEST_IS_DIR)) {
		g_autoptr(GDir) dir = g_dir_open(path, 0, &error);
		g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
		const char *name;
		int r = 0;

		if (!dir) {
			fprintf(stderr, "%s\n", error->message);
			return 1;
		}
		while ((name = g_dir_read_name(dir)))
			g_ptr_array_add(names, g_build_filename(path, name, NULL));
		g_ptr_array_sort(names, compare_paths);
		for (guint i = 0; i < names->len; i++)
			r |= replay(g_ptr_array_index(names, i), count);
		return r;
	}
	if (!g_file_get_contents(path, &buf, &len, &error)) {
		fprintf(stderr, "%s\n", error->message);
		return 1;
	}
	LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
	(*count)++;
	return 0;
}

int main(int argc, char **argv)
{
	unsigned count = 0;
	int r = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++)
		r |= replay(argv[i], &count);
	printf("%u inputs replayed\n", count);
	return r || count == 0;
}
