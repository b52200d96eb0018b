// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fuzz target of the guest pressure channel's pure half
 * (daemon/channel-proto.c): what a hostile guest can send vmcgd through
 * its virtio-serial port.
 *
 * Input byte 0 picks how the stream is cut into reads (1 + byte % 64
 * bytes at a time, or all at once when 0) and whether the VM's RAM size is
 * known; the rest is the stream. Per input:
 *  - the line splitter never holds more than VMCG_CHANNEL_LINE_MAX bytes,
 *    and every line it gives is shorter than that and has no newline;
 *  - the same stream cut at a different size gives the same lines;
 *  - each line's parse is NONE or one of the documented drops, with a
 *    reason; an accepted report keeps its promises (avg10 within 0..100%,
 *    sizes within RAM, totals not below the last accepted report's);
 *  - the rate state never mutes a guest for longer than the mute.
 *
 * To fuzz: clang -fsanitize=fuzzer,address,undefined -DVMCG_LIBFUZZER with
 * the daemon's objects (channel-proto.c, json-stream.c) and glib, json-c;
 * without libFuzzer, fuzz-replay.c provides main() and `meson test --suite
 * fuzz` replays corpus/channel.
 */
#include <stdint.h>
#include <string.h>

#include <glib.h>

#include "channel-proto.h"
#include "fuzz-check.h"

#define RAM ((uint64_t)512 << 20)

/* Feed @len bytes cut every @cut bytes; call @fn per line. Returns the lines' digest. */
static guint run(const uint8_t *data, size_t len, size_t cut, uint64_t ram, bool check)
{
	VmcgChannelLines l;
	VmcgChannelRate rate = { 0 };
	VmcgChannelReport last = { 0 };
	bool has_last = false;
	guint digest = 5381;
	uint64_t now = 1000000;

	vmcg_channel_lines_reset(&l);
	for (size_t off = 0; off < len;) {
		size_t n = cut ? MIN(cut, len - off) : len - off;

		while (n) {
			const char *line = NULL;
			size_t used, ll = 0;
			VmcgChannelLine r = vmcg_channel_lines_feed(&l, (const char *)data + off, n,
								    &used, &line, &ll);

			CHECK(used <= n);
			CHECK(l.len <= VMCG_CHANNEL_LINE_MAX);
			off += used;
			n -= used;
			if (r == VMCG_CHANNEL_LINE_NONE) {
				CHECK(n == 0);
				continue;
			}
			digest = digest * 33 + r;
			if (r == VMCG_CHANNEL_LINE_TOO_LONG)
				continue;
			CHECK(ll < VMCG_CHANNEL_LINE_MAX && !memchr(line, '\n', ll));
			digest = digest * 33 + (guint)ll;
			if (!check)
				continue;
			{
				VmcgChannelMsg m;
				char err[128] = "";
				VmcgChannelDrop why =
					vmcg_channel_parse(line, ll, ram, has_last ? &last : NULL,
							   &m, err, sizeof(err));
				VmcgChannelVerdict v;

				now += 7919;
				v = vmcg_channel_rate_message(&rate, now);
				CHECK(!rate.muted_until_usec ||
				      rate.muted_until_usec <= now + VMCG_CHANNEL_MUTE_USEC + 1);
				(void)v;
				CHECK(why < _VMCG_CHANNEL_DROP_COUNT);
				CHECK(why == VMCG_CHANNEL_DROP_NONE ||
				      why == VMCG_CHANNEL_DROP_MALFORMED ||
				      why == VMCG_CHANNEL_DROP_BOUNDS ||
				      why == VMCG_CHANNEL_DROP_UNKNOWN);
				if (why) {
					CHECK(err[0] != '\0');
					if (vmcg_channel_drop_is_malformed(why))
						(void)vmcg_channel_rate_malformed(&rate, now);
					continue;
				}
				if (m.type == VMCG_CHANNEL_MSG_HELLO) {
					CHECK(strlen(m.agent) <= VMCG_CHANNEL_AGENT_MAX);
					continue;
				}
				CHECK(m.type == VMCG_CHANNEL_MSG_REPORT);
				if (m.report.has_psi) {
					CHECK(m.report.some_avg10_centi <= 10000);
					CHECK(m.report.full_avg10_centi <= 10000);
					if (has_last && last.has_psi)
						CHECK(m.report.some_total_usec >=
						      last.some_total_usec);
				}
				if (ram) {
					CHECK(!m.report.has_available || m.report.available <= ram);
					CHECK(!m.report.has_file || m.report.file <= ram);
					CHECK(!m.report.has_anon || m.report.anon <= ram);
				}
				(void)vmcg_channel_rate_report(&rate, now, 1000000);
				last = m.report;
				has_last = true;
			}
		}
	}
	return digest;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t cut;
	uint64_t ram;

	if (size < 1)
		return 0;
	cut = data[0] % 65;
	ram = (data[0] & 0x80) ? 0 : RAM;
	data++;
	size--;
	/* The same lines whatever the cuts. */
	CHECK(run(data, size, cut, ram, true) == run(data, size, 0, ram, false));
	return 0;
}
