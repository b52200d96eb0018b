// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fuzz target: the guest agent's side of the pressure channel
 * (guest/agent-proto.c). The input is a byte stream from the host: it goes
 * through the line framer, each line through the message parser, which
 * accepts it with its members in bounds or refuses it with -EMSGSIZE,
 * -EBADMSG or -ENOMSG. The same bytes are also parsed as
 * /proc/pressure/memory, /proc/meminfo and the config file.
 *
 *   clang -fsanitize=fuzzer,address,undefined -DVMCG_LIBFUZZER -Iguest \
 *     tests/fuzz/fuzz-agent-msg.c guest/agent-proto.c -ljson-c
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "agent-proto.h"
#include "fuzz-check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_line(void *opaque, const char *line, size_t len)
{
	unsigned *lines = opaque;
	VmcgAgentMsg m;
	int r;

	(*lines)++;
	if (!line)
		return;
	CHECK(len < VMCG_AGENT_LINE_MAX);
	CHECK(line[len] == '\0');
	r = vmcg_agent_msg_parse(line, len, &m);
	CHECK(r == 0 || r == -EBADMSG || r == -ENOMSG);
	if (r != 0)
		return;
	switch (m.type) {
	case VMCG_AGENT_MSG_HELLO:
		CHECK(m.version >= 0);
		CHECK(memchr(m.vm, '\0', sizeof(m.vm)));
		CHECK(m.report_interval_ms >= VMCG_AGENT_INTERVAL_MIN_MS &&
		      m.report_interval_ms <= VMCG_AGENT_INTERVAL_MAX_MS);
		break;
	case VMCG_AGENT_MSG_CONFIG:
		CHECK(m.report_interval_ms >= VMCG_AGENT_INTERVAL_MIN_MS &&
		      m.report_interval_ms <= VMCG_AGENT_INTERVAL_MAX_MS);
		break;
	case VMCG_AGENT_MSG_PRESSURE:
		CHECK(vmcg_agent_level_name(m.level) != NULL);
		CHECK(m.seq <= INT64_MAX && m.reclaim_bytes <= INT64_MAX);
		CHECK(memchr(m.group, '\0', sizeof(m.group)));
		break;
	default:
		CHECK(0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static VmcgAgentLines lines;
	const char *text = (const char *)data;
	unsigned n = 0;

	/* The stream, in two reads split in the middle, and then alone. */
	vmcg_agent_lines_init(&lines);
	vmcg_agent_lines_feed(&lines, text, size / 2, check_line, &n);
	vmcg_agent_lines_feed(&lines, text + size / 2, size - size / 2, check_line, &n);
	CHECK(n <= size);
	if (size < VMCG_AGENT_LINE_MAX + 16) {
		VmcgAgentMsg m;
		int r = vmcg_agent_msg_parse(text, size, &m);

		CHECK(r == 0 || r == -EBADMSG || r == -ENOMSG || r == -EMSGSIZE);
	}
	{
		VmcgAgentPsi p;

		if (vmcg_agent_psi_parse(text, size, &p) == 0)
			CHECK(p.some_avg10 >= 0 && p.some_avg10 <= 100 && p.full_avg10 >= 0 &&
			      p.full_avg10 <= 100);
	}
	{
		VmcgAgentMem m;
		int r = vmcg_agent_meminfo_parse(text, size, &m);

		CHECK(r == 0 || r == -EINVAL || r == -ERANGE);
	}
	{
		VmcgAgentConfig c;
		const char *what = NULL;
		unsigned line = 0;
		int r = vmcg_agent_config_parse(text, size, &c, &line, &what);

		CHECK(r == 0 || (r == -EINVAL && line >= 1 && what));
		if (r == 0)
			CHECK(c.exec_timeout_ms >= 100);
	}
	{
		/* The agent's own reports must parse as messages of unknown type. */
		char buf[VMCG_AGENT_LINE_MAX];
		VmcgAgentMsg m;
		VmcgAgentPsi p = { 0 };
		VmcgAgentMem mem = { 0 };
		int len;

		if (size >= 8)
			memcpy(&mem.available_bytes, data, 8);
		mem.present = size ? data[0] & 7 : 0;
		len = vmcg_agent_format_report(buf, sizeof(buf), size, &p, &mem);
		CHECK(len > 0 && buf[len - 1] == '\n');
		CHECK(vmcg_agent_msg_parse(buf, (size_t)len - 1, &m) == -ENOMSG);
	}
	return 0;
}
