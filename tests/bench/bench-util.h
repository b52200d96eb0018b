/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Shared by the benchmarks: what machine the figures come from. */
#ifndef VMCG_BENCH_UTIL_H
#define VMCG_BENCH_UTIL_H

#include <stdio.h>
#include <string.h>

/* The "model name" of /proc/cpuinfo, or "unknown". */
static inline void cpu_model(char *buf, size_t size)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	char line[256];

	snprintf(buf, size, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *colon;

		if (strncmp(line, "model name", 10) != 0 || !(colon = strchr(line, ':')))
			continue;
		colon++;
		while (*colon == ' ' || *colon == '\t')
			colon++;
		colon[strcspn(colon, "\n")] = '\0';
		snprintf(buf, size, "%s", colon);
		break;
	}
	fclose(f);
}

#endif
