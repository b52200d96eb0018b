/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The hooks ABI: what a patched QEMU (the `vmcg-hooks` object, see
 * qemu-patches/) and vmcgd say to each other. docs/hooks-abi.md is the prose
 * version of this file; when the two disagree, this file is right.
 *
 * Transport: one AF_UNIX SOCK_SEQPACKET connection per VM, QEMU connecting to
 * vmcgd's hooks socket. Every message is one packet that starts with a
 * VmcgHooksHdr; integers are in the host's byte order (both ends run on the
 * same host). A receiver drops the connection on any malformed packet: too
 * short for its type, unknown type, out-of-range slot, a packet over
 * VMCG_HOOKS_MSG_MAX. QEMU takes a longer daemon message as one of a later
 * minor version and ignores the tail; vmcgd 1.0 requires QEMU's messages to
 * be exactly their size (HELLO: with its RAM blocks), since QEMU's minor is
 * not above its own.
 *
 * Conversation:
 *   QEMU  -> HELLO   (identity, vCPUs, RAM layout, pages already populated)
 *   vmcgd -> WELCOME (with the region's memfd as SCM_RIGHTS) or REJECT
 *   QEMU  -> REFILL  (a slot wants credit)          vmcgd -> GRANT
 *   QEMU  -> RETURN  (discards put credit back into a slot; a hint to drain)
 *
 * Credit: the region holds one VmcgHooksSlot per vCPU plus one for device
 * and I/O threads (the last). A slot's `credit` is pages that vmcgd has
 * already charged to the VM and QEMU has not yet used: the per-vCPU stock.
 *   - vmcgd adds to it when it grants (after charging the hierarchy) and
 *     takes from it when it drains (then uncharges what it took);
 *   - QEMU takes from it when a fault populates pages and adds to the device
 *     slot when a discard (balloon inflate, free-page report) drops pages it
 *     had populated.
 * Both ends change `credit` only with atomic read-modify-write operations
 * (compare-and-swap for takes, so it never goes below 0, with one
 * exception: debt, below). Hence, with no message in flight:
 *     vmcgd's guest charge for the VM == populated pages + sum of credits
 * and the guest's resident RAM is at most the charge. How far the charge can
 * exceed what is resident (the slack) is bounded by the credit the slots can
 * hold: each slot is refilled only below `watermark` by at most `batch`
 * pages, and vmcgd drains a slot above 2 x `batch`, so the slack is at most
 * (nr_slots) x 2 x batch pages plus one in-flight grant per slot.
 *
 * Refill: QEMU sends REFILL for a slot when its credit falls below the
 * watermark (need = 0: a prefetch, no vCPU waits) or when a fault needs more
 * than the slot holds (need = pages the fault waits for). At most one REFILL
 * per slot is outstanding; GRANT answers it, after vmcgd has added `pages`
 * to the slot (0 pages: a prefetch refused, e.g. at memory.max). vmcgd
 * charges `want` pages, or exactly `need` if `want` would break a max, as
 * the kernel's try_charge() retries with the exact amount. A REFILL with
 * need > 0 that cannot be charged is held: the vCPU stalls (that stall is
 * the group's memory.pressure) while vmcgd reclaims; past the group's OOM
 * deadline the OOM action runs.
 *
 * Debt: a vCPU whose fault waits for a refill cannot stop, and QEMU must
 * stop every vCPU to pause or shut the VM down. When the VM leaves the
 * running state with faults waiting, QEMU resolves them anyway and takes
 * their pages from the slot's credit even below 0. vmcgd charges a slot's
 * debt at its next tick whatever the limits (as the kernel force-charges
 * what must not fail) and adds it back; the invariant above holds
 * throughout, and the overshoot is at most one chunk per vCPU.
 *
 * Versioning: VMCG_HOOKS_ABI_MAJOR changes on any incompatible change; a
 * daemon rejects a HELLO whose major differs. Minor versions only append
 * fields at the end of messages and of the region header; each side reads
 * what it knows.
 */
#ifndef VMCG_HOOKS_ABI_H
#define VMCG_HOOKS_ABI_H

#include <stdint.h>

#define VMCG_HOOKS_ABI_MAJOR 1
#define VMCG_HOOKS_ABI_MINOR 0

/* "VMCGHOOK" / "VMCGRGN1", little-endian on the wire and in the region. */
#define VMCG_HOOKS_MAGIC 0x4b4f4f4847434d56ULL
#define VMCG_HOOKS_REGION_MAGIC 0x314e474847434d56ULL

#define VMCG_HOOKS_CACHELINE 64
#define VMCG_HOOKS_MSG_MAX 4096
#define VMCG_HOOKS_NAME_MAX 64 /* VM and RAMBlock names, NUL-padded */
#define VMCG_HOOKS_MAX_VCPUS 1024
#define VMCG_HOOKS_MAX_RAMBLOCKS 32
#define VMCG_HOOKS_BATCH_MAX 4096 /* pages */
#define VMCG_HOOKS_REASON_MAX 192

enum VmcgHooksMsgType {
	VMCG_HOOKS_HELLO = 1,
	VMCG_HOOKS_WELCOME = 2,
	VMCG_HOOKS_REJECT = 3,
	VMCG_HOOKS_REFILL = 4,
	VMCG_HOOKS_GRANT = 5,
	VMCG_HOOKS_RETURN = 6,
};

/* HELLO flags */
#define VMCG_HOOKS_F_BLOCK_ON_DISCONNECT (1u << 0) /* on-disconnect=block */
#define VMCG_HOOKS_F_REATTACH (1u << 1)		   /* pages were populated while detached */
#define VMCG_HOOKS_F_KNOWN (VMCG_HOOKS_F_BLOCK_ON_DISCONNECT | VMCG_HOOKS_F_REATTACH)

typedef struct VmcgHooksHdr {
	uint32_t type; /* enum VmcgHooksMsgType */
	uint32_t len;  /* whole packet, header included */
	uint64_t seq;  /* sender's sequence number; GRANT echoes its REFILL's */
} VmcgHooksHdr;

typedef struct VmcgHooksRamBlock {
	char name[VMCG_HOOKS_NAME_MAX]; /* QEMU's RAMBlock idstr, truncated */
	uint64_t pages;			/* registered length, in pages */
	uint64_t populated;		/* pages set in its populated bitmap */
} VmcgHooksRamBlock;

typedef struct VmcgHooksHello {
	VmcgHooksHdr hdr;
	uint64_t magic; /* VMCG_HOOKS_MAGIC */
	uint16_t major;
	uint16_t minor;
	uint32_t flags;	    /* VMCG_HOOKS_F_* */
	uint32_t pid;	    /* QEMU's; vmcgd checks it against SO_PEERCRED */
	uint32_t nr_vcpus;  /* 1..VMCG_HOOKS_MAX_VCPUS; slots = nr_vcpus + 1 */
	uint32_t page_size; /* host page size of guest RAM, bytes */
	uint32_t batch;	    /* pages QEMU would like per refill, 1..BATCH_MAX */
	uint32_t nr_ramblocks;
	uint32_t reserved;
	char vm_name[VMCG_HOOKS_NAME_MAX]; /* -name guest=, or the object's vm= */
	uint8_t uuid[16];		   /* -uuid, zero if none */
	uint64_t populated;		   /* sum of ramblocks[].populated */
	VmcgHooksRamBlock ramblocks[];	   /* nr_ramblocks of them */
} VmcgHooksHello;

typedef struct VmcgHooksWelcome {
	VmcgHooksHdr hdr;
	uint16_t major;
	uint16_t minor;
	uint32_t nr_slots;    /* == HELLO nr_vcpus + 1 */
	uint64_t region_size; /* bytes of the memfd to map, read-write, shared */
	uint64_t charged;     /* pages vmcgd charged for HELLO's populated */
} VmcgHooksWelcome;

typedef struct VmcgHooksReject {
	VmcgHooksHdr hdr;
	int32_t error; /* a positive errno value */
	uint32_t reserved;
	char reason[VMCG_HOOKS_REASON_MAX]; /* NUL-terminated, for QEMU's log */
} VmcgHooksReject;

typedef struct VmcgHooksRefill {
	VmcgHooksHdr hdr;
	uint32_t slot; /* < nr_slots */
	uint32_t need; /* pages a waiting fault needs beyond the credit; 0: prefetch */
	uint32_t want; /* pages to charge if possible: the batch (>= need) */
	uint32_t reserved;
} VmcgHooksRefill;

typedef struct VmcgHooksGrant {
	VmcgHooksHdr hdr; /* seq: the REFILL's */
	uint32_t slot;
	uint32_t pages; /* already added to the slot's credit; 0: refused prefetch */
} VmcgHooksGrant;

typedef struct VmcgHooksReturn {
	VmcgHooksHdr hdr;
	uint32_t slot; /* where the pages went: the device slot */
	uint32_t reserved;
	uint64_t pages; /* returned since the last RETURN */
} VmcgHooksReturn;

/*
 * The shared region: a header line, then nr_slots slots, one cache line
 * each (vmcgd creates it with memfd_create(), sizes it, seals it against
 * shrinking and growing, and passes it in WELCOME).
 */
typedef struct VmcgHooksRegionHeader {
	uint64_t magic; /* VMCG_HOOKS_REGION_MAGIC */
	uint16_t major;
	uint16_t minor;
	uint32_t nr_slots;
	uint32_t slot_size; /* VMCG_HOOKS_CACHELINE */
	uint32_t header_size;
	/* vmcgd-written policy, read by QEMU at every refill decision: */
	uint32_t batch;	    /* pages per prefetch refill */
	uint32_t watermark; /* prefetch when a slot's credit falls below this */
	/* QEMU-written: */
	uint64_t populated; /* pages set in all populated bitmaps */
	uint64_t faults;    /* userfaults resolved */
	uint64_t unbacked;  /* pages populated with no credit (detached) */
	uint8_t pad_[VMCG_HOOKS_CACHELINE - 56];
} VmcgHooksRegionHeader;

typedef struct VmcgHooksSlot {
	int64_t credit;	   /* pages charged, not yet used (see above) */
	uint64_t consumed; /* QEMU: pages taken by faults, monotonic */
	uint64_t returned; /* QEMU: pages put back by discards (device slot) */
	uint64_t refills;  /* QEMU: REFILLs sent */
	uint64_t stall_ns; /* QEMU: time faults on this slot waited for credit */
	uint32_t tid;	   /* QEMU: the vCPU's host thread id, 0 if unknown */
	uint32_t waiting;  /* QEMU: faults now waiting on this slot */
	uint8_t pad_[VMCG_HOOKS_CACHELINE - 48];
} VmcgHooksSlot;

#define VMCG_HOOKS_REGION_SIZE(nr_slots) \
	((uint64_t)sizeof(VmcgHooksRegionHeader) + (uint64_t)(nr_slots) * sizeof(VmcgHooksSlot))

static inline VmcgHooksSlot *vmcg_hooks_slot(void *region, uint32_t i)
{
	return (VmcgHooksSlot *)((char *)region + sizeof(VmcgHooksRegionHeader)) + i;
}

_Static_assert(sizeof(VmcgHooksHdr) == 16, "hdr");
_Static_assert(sizeof(VmcgHooksRamBlock) == 80, "ramblock");
_Static_assert(sizeof(VmcgHooksHello) == 144, "hello");
_Static_assert(sizeof(VmcgHooksHello) + VMCG_HOOKS_MAX_RAMBLOCKS * sizeof(VmcgHooksRamBlock) <=
		       VMCG_HOOKS_MSG_MAX,
	       "hello fits");
_Static_assert(sizeof(VmcgHooksWelcome) == 40, "welcome");
_Static_assert(sizeof(VmcgHooksReject) == 216, "reject");
_Static_assert(sizeof(VmcgHooksRefill) == 32, "refill");
_Static_assert(sizeof(VmcgHooksGrant) == 24, "grant");
_Static_assert(sizeof(VmcgHooksReturn) == 32, "return");
_Static_assert(sizeof(VmcgHooksRegionHeader) == VMCG_HOOKS_CACHELINE, "region header");
_Static_assert(sizeof(VmcgHooksSlot) == VMCG_HOOKS_CACHELINE, "slot");

#endif /* VMCG_HOOKS_ABI_H */
