/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Checking what QEMU's vmcg-hooks object sends (include/vmcg/hooks-abi.h).
 * Pure: no I/O, no GLib, so the unit tests and the fuzz target exercise
 * exactly what the hooks server runs. Every packet is untrusted: a packet
 * is accepted only if its length is exactly right for its type and every
 * field is in range; names must be NUL-terminated within their field and
 * valid VM names.
 */
#ifndef VMCG_DAEMON_HOOKS_PROTO_H
#define VMCG_DAEMON_HOOKS_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "vmcg/hooks-abi.h"

typedef struct VmcgHooksMsg {
	uint32_t type; /* VMCG_HOOKS_HELLO, _REFILL or _RETURN */
	uint64_t seq;
	union {
		struct {
			uint16_t major, minor;
			uint32_t flags;
			uint32_t pid;
			uint32_t nr_vcpus;
			uint32_t page_size;
			uint32_t batch;
			uint32_t nr_ramblocks;
			char vm_name[VMCG_HOOKS_NAME_MAX];
			uint64_t populated;
			uint64_t pages; /* sum of the ramblocks' sizes */
		} hello;
		VmcgHooksRefill refill;
		VmcgHooksReturn ret;
	};
} VmcgHooksMsg;

/**
 * vmcg_hooks_parse() - check one packet from QEMU.
 * @nr_slots: the connection's slots (0 before WELCOME: only HELLO is valid)
 * @err: a message for the log on error (always NUL-terminated)
 * Returns 0, or -EPROTO (malformed, out of range, unexpected now) or
 * -EPROTONOSUPPORT (a HELLO of another major version).
 */
int vmcg_hooks_parse(const void *buf, size_t len, uint32_t nr_slots, VmcgHooksMsg *ret, char *err,
		     size_t errlen);

#endif
