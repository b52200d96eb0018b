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

#endif
