/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Shared helpers of the unit tests. */
#ifndef VMCG_TEST_UTIL_H
#define VMCG_TEST_UTIL_H

#include <glib.h>
#include <stdlib.h>
#include <string.h>

/*
 * Iteration counts of the stress tests are divided by this: memcheck runs
 * code ~50x slower and serializes threads, so there the tests keep their
 * shape (same threads, same interleaving points) with fewer rounds.
 */
static inline unsigned test_scale_div(void)
{
	const char *s = getenv("VMCG_TEST_SCALE");

	return s && strcmp(s, "valgrind") == 0 ? 50 : 1;
}

/* Entries of a directory (/proc/self/fd: open fds; /proc/self/task: threads). */
static inline unsigned test_dir_entries(const char *path)
{
	GDir *dir = g_dir_open(path, 0, NULL);
	unsigned n = 0;

	g_assert_nonnull(dir);
	while (g_dir_read_name(dir))
		n++;
	g_dir_close(dir);
	return n;
}

#endif
