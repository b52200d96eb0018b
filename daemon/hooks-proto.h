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

#include <stdbool.h>
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

/*
 * What vmcgd knows of the VM a HELLO names, from its own sources: the API
 * or config (registered), the hooks server (attached) and the VM's QMP
 * connection (pid, RAM size), never from the HELLO.
 */
typedef struct VmcgHooksVmFacts {
	bool registered;
	bool attached;
	uint32_t attached_pid;
	uint32_t qmp_pid;   /* SO_PEERCRED of vmcgd's QMP connection; 0: not connected */
	uint64_t ram_pages; /* the VM's RAM per QMP (query-memdev); 0: not known yet */
} VmcgHooksVmFacts;

/**
 * vmcg_hooks_admit() - may the HELLO @m from @peer_pid (SO_PEERCRED of the
 * hooks connection) attach to the VM @vm describes?
 * @err: the reason, for the REJECT and the log (always NUL-terminated)
 *
 * A HELLO charges its populated pages whatever the limits (they are
 * resident), so it is believed only from the VM's own QEMU and only up to
 * the VM's RAM: a peer that could claim a VM whose QEMU vmcgd has not met
 * yet, or claim more pages than it has, would charge a group without
 * bound and make its OOM action fall on another VM.
 *
 * Returns 0, or a negative errno for the REJECT:
 * -EPERM   the HELLO's pid is not the peer's, or the peer is not the
 *          process at the other end of the VM's QMP socket;
 * -ENOENT  no VM of that name is registered;
 * -EBUSY   the VM has a hooks connection already;
 * -EAGAIN  vmcgd does not know the VM's QEMU pid or RAM size yet (its QMP
 *          socket is not connected yet, or the VM is gone): QEMU retries;
 * -ERANGE  more pages populated than the VM has RAM.
 */
int vmcg_hooks_admit(const VmcgHooksMsg *m, uint32_t peer_pid, const VmcgHooksVmFacts *vm,
		     char *err, size_t errlen);

/**
 * vmcg_hooks_charge_in_range() - may a connection that has charged
 * @charged pages charge @more (a grant, or a slot's debt), for a VM of
 * @ram_pages whose slots can hold @slack_pages (vmcg_hooks_conn_slack())?
 *
 * What a connection charged is what QEMU has populated plus the slots'
 * credit (hooks-abi.h), so an honest QEMU stays within the VM's RAM plus
 * the slack. The bound is twice the slack above the RAM, a margin for
 * grants in flight: a QEMU that asks past it consumes credit without
 * populating pages, or makes up debt, to charge its group without bound
 * (and so run the group's OOM action on a neighbour), and is dropped.
 */
bool vmcg_hooks_charge_in_range(uint64_t charged, uint64_t more, uint64_t ram_pages,
				uint64_t slack_pages);

/**
 * vmcg_hooks_refill_check() - is @r what an honest QEMU asks of a
 * connection whose refill batch (the region's) is @batch and whose chunk
 * (pages per fault, the HELLO's batch) is @chunk? QEMU asks for
 * max(batch, need), and a fault needs at most a chunk.
 * Returns 0 or -EPROTO, with @err saying why.
 */
int vmcg_hooks_refill_check(const VmcgHooksRefill *r, uint32_t batch, uint32_t chunk, char *err,
			    size_t errlen);

/*
 * ---- Connections that have not said HELLO ----
 *
 * A connection costs vmcgd a file descriptor from accept() until it goes.
 * QEMU says HELLO as soon as it connects; anything else that connects and
 * stays silent only holds descriptors, so such connections are capped and
 * timed out (hooks.c), and accept() failing for lack of descriptors backs
 * off instead of spinning.
 */

/* At most this many connections wait for their HELLO (vmcgd's fds: see hooks.c). */
#define VMCG_HOOKS_PENDING_MAX 64
/* ...and this many of them from one uid (SO_PEERCRED). */
#define VMCG_HOOKS_PENDING_PER_UID_MAX 16
/* A connection that has not said HELLO after this long is closed. */
#define VMCG_HOOKS_HELLO_TIMEOUT_MSEC 3000
/* accept() out of descriptors: retry after 10 ms, doubling, at most 1 s. */
#define VMCG_HOOKS_BACKOFF_MIN_MSEC 10
#define VMCG_HOOKS_BACKOFF_MAX_MSEC 1000

typedef enum VmcgHooksAdmitConn {
	VMCG_HOOKS_CONN_ACCEPT,
	VMCG_HOOKS_CONN_OVER_TOTAL, /* VMCG_HOOKS_PENDING_MAX wait already */
	VMCG_HOOKS_CONN_OVER_UID,   /* VMCG_HOOKS_PENDING_PER_UID_MAX of its uid wait already */
} VmcgHooksAdmitConn;

/**
 * vmcg_hooks_admit_conn() - keep a connection just accepted, given how
 * many connections wait for their HELLO (@pending) and how many of them
 * are of the new one's uid (@pending_uid), the new one not counted?
 */
VmcgHooksAdmitConn vmcg_hooks_admit_conn(uint32_t pending, uint32_t pending_uid);

/**
 * vmcg_hooks_backoff_msec() - how long to stop accepting after the
 * @failures-th accept() in a row that failed (EMFILE, ENFILE, ENOBUFS,
 * ENOMEM: none goes away by retrying at once; @failures >= 1): doubling from
 * VMCG_HOOKS_BACKOFF_MIN_MSEC up to VMCG_HOOKS_BACKOFF_MAX_MSEC.
 */
uint32_t vmcg_hooks_backoff_msec(uint32_t failures);

/*
 * A log rate limit, the kernel's ___ratelimit(): at most @burst lines per
 * @interval_usec; the lines dropped are counted and said with the next
 * line let through. Zero-initialized is ready. The caller serializes.
 */
typedef struct VmcgHooksRatelimit {
	bool started;
	uint64_t begin_usec;
	uint32_t printed;
	uint64_t missed;
} VmcgHooksRatelimit;

/**
 * vmcg_hooks_ratelimit() - may a line be logged at @now_usec? When it
 * may, *@ret_missed is how many were dropped before it (then reset).
 */
bool vmcg_hooks_ratelimit(VmcgHooksRatelimit *rl, uint64_t now_usec, uint64_t interval_usec,
			  uint32_t burst, uint64_t *ret_missed);

#endif
