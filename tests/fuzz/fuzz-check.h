/* SPDX-License-Identifier: GPL-2.0-or-later */
/* CHECK(): a fuzz target's assertion, kept in release builds (not assert()). */
#ifndef VMCG_FUZZ_CHECK_H
#define VMCG_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(x)                                                                              \
	do {                                                                                  \
		if (!(x)) {                                                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x); \
			abort();                                                              \
		}                                                                             \
	} while (0)

#endif
