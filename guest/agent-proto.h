/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The pure parts of vmcg-guest-agent: the host's messages of the pressure
 * channel (docs/guest-channel.md), the agent's own messages, the line
 * framer, /proc/pressure/memory, /proc/meminfo and the agent's config file.
 *
 * No I/O, no clock, no logging, no GLib: the agent is linked statically into
 * small guests. Every function takes its input as a buffer and returns 0 or
 * a negative errno; out-parameters (ret_*) are set only on success. The unit
 * test (tests/unit/test-agent-proto.c) and the fuzz target
 * (tests/fuzz/fuzz-agent-msg.c) link this file alone.
 */
#ifndef VMCG_AGENT_PROTO_H
#define VMCG_AGENT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Every line of the channel, newline included: docs/guest-channel.md. */
#define VMCG_AGENT_LINE_MAX 4096
#define VMCG_AGENT_PROTO_VERSION 1
/* report-interval-ms bounds and default, docs/guest-channel.md. */
#define VMCG_AGENT_INTERVAL_MIN_MS 100
#define VMCG_AGENT_INTERVAL_MAX_MS 60000
#define VMCG_AGENT_INTERVAL_DEFAULT_MS 1000
/* What the agent keeps of the host's strings (they are for logs only). */
#define VMCG_AGENT_NAME_MAX 128

typedef enum VmcgAgentLevel {
	VMCG_AGENT_LEVEL_NONE,
	VMCG_AGENT_LEVEL_LOW,
	VMCG_AGENT_LEVEL_MEDIUM,
	VMCG_AGENT_LEVEL_CRITICAL,
	VMCG_AGENT_LEVEL_COUNT,
} VmcgAgentLevel;

typedef enum VmcgAgentMsgType {
	VMCG_AGENT_MSG_HELLO,
	VMCG_AGENT_MSG_PRESSURE,
	VMCG_AGENT_MSG_CONFIG,
} VmcgAgentMsgType;

typedef struct VmcgAgentMsg {
	VmcgAgentMsgType type;
	/* hello */
	int64_t version;
	char vm[VMCG_AGENT_NAME_MAX];
	/* hello (default when absent), config (required) */
	uint32_t report_interval_ms;
	/* pressure */
	VmcgAgentLevel level;
	uint64_t seq;
	uint64_t reclaim_bytes;
	uint64_t reclaim_within_ms;
	char group[VMCG_AGENT_NAME_MAX];
} VmcgAgentMsg;

/* "none", "low", "medium", "critical"; NULL for anything else. */
const char *vmcg_agent_level_name(VmcgAgentLevel level);
/* Returns 0 and sets *ret_level, or -EINVAL for an unknown name. */
int vmcg_agent_level_from_name(const char *name, VmcgAgentLevel *ret_level);

/*
 * Parses one host line (without its newline; a trailing "\r" or blanks are
 * allowed) into *ret_msg. The line must be exactly one JSON object (strict
 * JSON, valid UTF-8, nesting at most 16 deep) with a string "type";
 * members the agent does not know are ignored, as the protocol says.
 *
 * Returns 0, or:
 *  -EMSGSIZE  len is VMCG_AGENT_LINE_MAX or more (the newline would not fit);
 *  -EBADMSG   not one JSON object, no string "type", a known member of the
 *             wrong type or out of its bounds (a level that is not one of the
 *             four, a negative size, report-interval-ms outside 100..60000);
 *  -ENOMSG    a well-formed message of a type the agent does not know.
 * Never aborts, whatever the input (tests/fuzz/fuzz-agent-msg.c).
 */
int vmcg_agent_msg_parse(const char *line, size_t len, VmcgAgentMsg *ret_msg);

/*
 * The agent's hello: {"type":"hello","version":1,"agent":"<agent>"}, with
 * its newline. agent is cut to 64 bytes (the protocol's bound) and must be
 * printable ASCII without '"' or '\\' (those are replaced by '_').
 * Returns the length written, or -ENOSPC if buf is too small.
 */
int vmcg_agent_format_hello(char *buf, size_t size, const char *agent);

typedef struct VmcgAgentPsi {
	double some_avg10;
	double full_avg10;
	uint64_t some_total_usec;
	uint64_t full_total_usec;
} VmcgAgentPsi;

/* Which VmcgAgentMem members were read. */
#define VMCG_AGENT_MEM_AVAILABLE (1u << 0)
#define VMCG_AGENT_MEM_FILE (1u << 1)
#define VMCG_AGENT_MEM_ANON (1u << 2)

typedef struct VmcgAgentMem {
	unsigned present; /* VMCG_AGENT_MEM_* */
	uint64_t available_bytes;
	uint64_t file_bytes;
	uint64_t anon_bytes;
} VmcgAgentMem;

/*
 * A report, with its newline. psi NULL leaves "psi" out (no PSI in the
 * guest); members of mem that are not present are left out, and "mem"
 * altogether when none is. Returns the length, or -ENOSPC.
 */
int vmcg_agent_format_report(char *buf, size_t size, uint64_t seq, const VmcgAgentPsi *psi,
			     const VmcgAgentMem *mem);

/*
 * Parses /proc/pressure/memory (kernel/sched/psi.c psi_show()):
 *   some avg10=0.00 avg60=0.00 avg300=0.00 total=0
 *   full avg10=0.00 avg60=0.00 avg300=0.00 total=0
 * Both lines are required, each with avg10 (0 to 100) and total (an
 * unsigned decimal); other fields are ignored, as later kernels may add
 * some. Returns 0, or -EINVAL when a line is malformed or missing, or
 * -ERANGE when a number does not fit.
 */
int vmcg_agent_psi_parse(const char *text, size_t len, VmcgAgentPsi *ret_psi);

/*
 * Parses /proc/meminfo: MemAvailable, Active(file) + Inactive(file),
 * Active(anon) + Inactive(anon), each "Key: <decimal> kB", into bytes. A
 * figure whose lines are missing is left out of ->present (the protocol
 * leaves the member out); lines of other keys are not looked at. Returns 0,
 * or -EINVAL when a needed line is malformed (no "kB", not a number, a key
 * given twice), -ERANGE when a figure overflows 64 bits in bytes.
 */
int vmcg_agent_meminfo_parse(const char *text, size_t len, VmcgAgentMem *ret_mem);

/*
 * Line framer for the port: bytes in, whole lines out. A line longer than
 * VMCG_AGENT_LINE_MAX - 1 bytes (so its newline does not fit the bound) is
 * skipped up to its newline and reported once as oversized.
 */
typedef struct VmcgAgentLines {
	char buf[VMCG_AGENT_LINE_MAX];
	size_t len;
	bool skipping; /* inside an oversized line */
} VmcgAgentLines;

/* Called once per line: line (len bytes, no newline, NUL-terminated) or,
 * with line NULL, once per oversized line. */
typedef void (*VmcgAgentLineFn)(void *opaque, const char *line, size_t len);

void vmcg_agent_lines_init(VmcgAgentLines *lines);
void vmcg_agent_lines_feed(VmcgAgentLines *lines, const char *data, size_t len, VmcgAgentLineFn fn,
			   void *opaque);

/* The config file, /etc/vmcg/guest-agent.conf: docs/guest-agent.md. */
#define VMCG_AGENT_EXEC_TIMEOUT_DEFAULT_MS 10000
#define VMCG_AGENT_PATH_MAX 256

typedef struct VmcgAgentAction {
	bool drop_caches;
	char exec[VMCG_AGENT_PATH_MAX]; /* "" when none */
} VmcgAgentAction;

typedef struct VmcgAgentConfig {
	VmcgAgentAction action[VMCG_AGENT_LEVEL_COUNT];
	uint32_t exec_timeout_ms;
} VmcgAgentConfig;

/* All actions off, the default timeout. */
void vmcg_agent_config_init(VmcgAgentConfig *config);

/*
 * Parses the config file's text into *ret_config (which starts from
 * vmcg_agent_config_init()). Lines: blank, "# comment", or "key = value":
 *   LEVEL.drop-caches = true|false
 *   LEVEL.exec = /absolute/path
 *   exec-timeout-ms = 100..3600000
 * where LEVEL is none, low, medium or critical. Returns 0, or -EINVAL with
 * *ret_line set to the 1-based number of the first bad line and
 * *ret_what to a static description (an unknown key, a bad value, a line
 * longer than 1024 bytes, a relative exec path).
 */
int vmcg_agent_config_parse(const char *text, size_t len, VmcgAgentConfig *ret_config,
			    unsigned *ret_line, const char **ret_what);

/*
 * The state line the agent writes to its state file and streams to
 * subscribers, with its newline:
 *   LEVEL seq=N reclaim-bytes=N reclaim-within-ms=N
 * Returns the length, or -ENOSPC.
 */
int vmcg_agent_format_state(char *buf, size_t size, VmcgAgentLevel level, uint64_t seq,
			    uint64_t reclaim_bytes, uint64_t reclaim_within_ms);

#endif
