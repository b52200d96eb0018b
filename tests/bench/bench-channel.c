// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The guest pressure channel's per-message cost in vmcgd's pure half
 * (daemon/channel-proto.c): a guest report cut from the byte stream,
 * parsed and checked, and rated; a muted line (cut and counted only);
 * building a pressure message. CPU time per message, one thread.
 * The I/O half's cost (one recv() per 8 KiB) is measured by
 * tests/integration/test_channel.py (cpu_per_message).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <glib.h>

#include "channel-proto.h"

static double cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	const char *report = "{\"type\":\"report\",\"seq\":7,\"psi\":{\"some\":{\"avg10\":2.5,"
			     "\"total\":123456},\"full\":{\"avg10\":0.75,\"total\":45678}},"
			     "\"mem\":{\"available\":201326592,\"file\":67108864,"
			     "\"anon\":100663296}}\n";
	int n = argc > 1 && strcmp(argv[1], "--quick") == 0 ? 20000 : 500000;
	size_t len = strlen(report);
	VmcgChannelLines l;
	VmcgChannelRate rate = { 0 };
	double t0, t1;
	uint64_t now = 1;
	int ok = 0;

	vmcg_channel_lines_reset(&l);
	t0 = cpu_ns();
	for (int i = 0; i < n; i++) {
		const char *line;
		size_t used, ll;
		VmcgChannelMsg m;

		if (vmcg_channel_lines_feed(&l, report, len, &used, &line, &ll) !=
		    VMCG_CHANNEL_LINE_OK)
			return 1;
		now += 1000000;
		(void)vmcg_channel_rate_message(&rate, now);
		ok += vmcg_channel_parse(line, ll, (uint64_t)1 << 30, NULL, &m, NULL, 0) ==
			      VMCG_CHANNEL_DROP_NONE &&
		      vmcg_channel_rate_report(&rate, now, 1000000);
	}
	t1 = cpu_ns();
	printf("report: cut + parse + check + rate: %.0f ns per message (%d of %d taken)\n",
	       (t1 - t0) / n, ok, n);

	rate = (VmcgChannelRate){ .muted_until_usec = UINT64_MAX };
	t0 = cpu_ns();
	for (int i = 0; i < n; i++) {
		const char *line;
		size_t used, ll;

		(void)vmcg_channel_lines_feed(&l, report, len, &used, &line, &ll);
		ok += vmcg_channel_rate_message(&rate, (uint64_t)i) == VMCG_CHANNEL_MUTED;
	}
	t1 = cpu_ns();
	printf("muted line: cut + counted: %.0f ns per message\n", (t1 - t0) / n);

	t0 = cpu_ns();
	for (int i = 0; i < n; i++)
		g_free(vmcg_channel_build_pressure(VMCG_VMPRESSURE_MEDIUM, (uint64_t)i,
						   "/tenants/acme", 268435456, 5000));
	t1 = cpu_ns();
	printf("pressure message built: %.0f ns\n", (t1 - t0) / n);
	printf("memory per channel: struct VmcgChannelLines %zu bytes + rate %zu + report %zu\n",
	       sizeof(VmcgChannelLines), sizeof(VmcgChannelRate), sizeof(VmcgChannelReport));
	return ok ? 0 : 1;
}
