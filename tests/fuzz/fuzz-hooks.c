// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fuzz target of the hooks packet checker (daemon/hooks-proto.c): what a
 * hostile or broken QEMU can send vmcgd's hooks socket.
 *
 * Input byte 0 chooses the connection's state: nr_slots = byte % 8, so 0
 * (before WELCOME: only HELLO is valid) or 1..7 slots (a small VM); the
 * rest is the packet. Per input:
 *  - the result is 0, -EPROTO or -EPROTONOSUPPORT, and the message is
 *    NUL-terminated within the buffer, empty on success, not on failure;
 *  - an accepted packet keeps every promise of hooks-abi.h: exact length,
 *    fields in range, a valid NUL-terminated VM name, sums that add up,
 *    the slot below nr_slots;
 *  - the same input with a tiny error buffer gives the same result and a
 *    terminated, truncated message;
 *  - the packet copied to a heap block of exactly its size parses the same
 *    (ASan sees any read beyond it);
 *  - an accepted REFILL passes vmcg_hooks_refill_check() exactly when it
 *    asks no more than a batch and needs no more than a chunk;
 *  - an accepted HELLO is admitted (vmcg_hooks_admit()) by a VM whose facts
 *    the input's first byte also picks, only if its pid is the peer's and
 *    the VM's QMP pid, and its populated pages fit the VM's RAM; a refusal
 *    is one of the documented errnos, with a reason.
 *
 * To fuzz: clang -fsanitize=fuzzer,address,undefined -DVMCG_LIBFUZZER
 * -D_GNU_SOURCE -Iinclude -Idaemon daemon/hooks-proto.c lib/vm.c ... (any
 * object that provides vmcg_vm_name_validate(): linking libvmcg.a from an
 * ASan build is simplest) tests/fuzz/fuzz-hooks.c, then run it on a copy of
 * corpus/hooks. Without libFuzzer, tests/fuzz/fuzz-replay.c provides main()
 * and `meson test --suite fuzz` replays the corpus with any compiler.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-check.h"
#include "hooks-proto.h"
#include "vmcg/group.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_hello(const VmcgHooksMsg *m, const uint8_t *pkt, size_t len)
{
	VmcgHooksHello h;
	uint64_t pages = 0, populated = 0;

	CHECK(len >= sizeof(h));
	memcpy(&h, pkt, sizeof(h));
	CHECK(h.magic == VMCG_HOOKS_MAGIC);
	CHECK(m->hello.major == VMCG_HOOKS_ABI_MAJOR && h.major == m->hello.major);
	CHECK(m->hello.minor == h.minor);
	CHECK(!(m->hello.flags & ~VMCG_HOOKS_F_KNOWN) && m->hello.flags == h.flags);
	CHECK(m->hello.pid != 0 && m->hello.pid == h.pid && (int32_t)m->hello.pid > 0);
	CHECK(m->hello.nr_vcpus >= 1 && m->hello.nr_vcpus <= VMCG_HOOKS_MAX_VCPUS);
	CHECK(m->hello.page_size == VMCG_PAGE_SIZE);
	CHECK(m->hello.batch >= 1 && m->hello.batch <= VMCG_HOOKS_BATCH_MAX);
	CHECK(h.reserved == 0);
	CHECK(m->hello.nr_ramblocks >= 1 && m->hello.nr_ramblocks <= VMCG_HOOKS_MAX_RAMBLOCKS);
	CHECK(len == sizeof(h) + m->hello.nr_ramblocks * sizeof(VmcgHooksRamBlock));
	CHECK(memchr(m->hello.vm_name, '\0', sizeof(m->hello.vm_name)));
	CHECK(vmcg_vm_name_validate(m->hello.vm_name) == 0);
	CHECK(strcmp(m->hello.vm_name, h.vm_name) == 0);
	for (uint32_t i = 0; i < m->hello.nr_ramblocks; i++) {
		VmcgHooksRamBlock rb;

		memcpy(&rb, pkt + sizeof(h) + i * sizeof(rb), sizeof(rb));
		CHECK(memchr(rb.name, '\0', sizeof(rb.name)) && rb.name[0]);
		CHECK(rb.pages >= 1 && rb.populated <= rb.pages);
		pages += rb.pages;
		populated += rb.populated;
	}
	/* Nothing wrapped: 32 blocks of at most 2^40 pages each. */
	CHECK(pages == m->hello.pages && pages <= (UINT64_C(1) << 40));
	CHECK(populated == m->hello.populated && populated == h.populated);
	CHECK(populated <= pages);
}

static void check_accepted(const VmcgHooksMsg *m, const uint8_t *pkt, size_t len, uint32_t nr_slots)
{
	VmcgHooksHdr hdr;

	CHECK(len >= sizeof(hdr) && len <= VMCG_HOOKS_MSG_MAX);
	memcpy(&hdr, pkt, sizeof(hdr));
	CHECK(hdr.len == len && hdr.type == m->type && hdr.seq == m->seq);
	switch (m->type) {
	case VMCG_HOOKS_HELLO:
		CHECK(nr_slots == 0);
		check_hello(m, pkt, len);
		break;
	case VMCG_HOOKS_REFILL:
		CHECK(nr_slots > 0 && len == sizeof(VmcgHooksRefill));
		CHECK(m->refill.slot < nr_slots);
		CHECK(m->refill.want >= 1 && m->refill.want <= VMCG_HOOKS_BATCH_MAX);
		CHECK(m->refill.need <= m->refill.want && m->refill.reserved == 0);
		CHECK(memcmp(&m->refill, pkt, sizeof(m->refill)) == 0);
		break;
	case VMCG_HOOKS_RETURN:
		CHECK(nr_slots > 0 && len == sizeof(VmcgHooksReturn));
		CHECK(m->ret.slot < nr_slots && m->ret.reserved == 0);
		CHECK(m->ret.pages <= (UINT64_C(1) << 40));
		CHECK(memcmp(&m->ret, pkt, sizeof(m->ret)) == 0);
		break;
	default:
		CHECK(!"accepted a type that is not QEMU's to send");
	}
}

/*
 * Admission, against a VM whose facts come from @sel, byte 0 (a HELLO's is a
 * multiple of 8): 0 is the VM's own QEMU with room for its pages; 0x08 a
 * peer of another pid; 0x10 no such VM; 0x20 attached already; 0xc0 the
 * QMP pid: the peer's, unknown, another, or the peer's with too little RAM.
 */
static void check_admit(const VmcgHooksMsg *m, uint8_t sel)
{
	uint32_t pid = m->hello.pid, peer = sel & 0x08 ? pid + 1 : pid;
	uint32_t qmp[4] = { pid, 0, pid + 1, pid };
	VmcgHooksVmFacts vm = {
		.registered = !(sel & 0x10),
		.attached = sel & 0x20,
		.attached_pid = 1,
		.qmp_pid = qmp[sel >> 6],
		.ram_pages = (sel >> 6) == 3 ? m->hello.populated / 2
					     : (m->hello.populated ? m->hello.populated : 1),
	};
	char err[VMCG_HOOKS_REASON_MAX], tiny[4];
	int r;

	memset(err, 'X', sizeof(err));
	r = vmcg_hooks_admit(m, peer, &vm, err, sizeof(err));
	CHECK(memchr(err, '\0', sizeof(err)));
	CHECK(vmcg_hooks_admit(m, peer, &vm, tiny, sizeof(tiny)) == r);
	CHECK(memchr(tiny, '\0', sizeof(tiny)));
	if (r == 0) {
		CHECK(err[0] == '\0');
		CHECK(m->hello.pid == peer && vm.registered && !vm.attached);
		CHECK(vm.qmp_pid == peer && vm.ram_pages && m->hello.populated <= vm.ram_pages);
	} else {
		CHECK(err[0] != '\0');
		CHECK(r == -EPERM || r == -ENOENT || r == -EBUSY || r == -EAGAIN || r == -ERANGE);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256], tiny[4];
	VmcgHooksMsg m, m2;
	uint32_t nr_slots;
	const uint8_t *pkt;
	uint8_t *copy;
	size_t len;
	int r, r2;

	if (size < 1)
		return 0;
	nr_slots = data[0] % 8;
	pkt = data + 1;
	len = size - 1;

	memset(err, 'X', sizeof(err));
	r = vmcg_hooks_parse(pkt, len, nr_slots, &m, err, sizeof(err));
	CHECK(memchr(err, '\0', sizeof(err)));
	if (r == 0) {
		CHECK(err[0] == '\0');
		check_accepted(&m, pkt, len, nr_slots);
		if (m.type == VMCG_HOOKS_HELLO)
			check_admit(&m, data[0]);
		/* What an honest QEMU with batch 64 and chunk 64 (or 1) asks, and only that. */
		if (m.type == VMCG_HOOKS_REFILL) {
			CHECK((vmcg_hooks_refill_check(&m.refill, 64, 64, NULL, 0) == 0) ==
			      (m.refill.want <= 64));
			CHECK((vmcg_hooks_refill_check(&m.refill, 64, 1, NULL, 0) == 0) ==
			      (m.refill.want <= 64 && m.refill.need <= 1));
		}
	} else {
		CHECK(r == -EPROTO || r == -EPROTONOSUPPORT);
		CHECK(err[0] != '\0');
		/* Another major is only said of a HELLO that got as far as its magic. */
		if (r == -EPROTONOSUPPORT)
			CHECK(nr_slots == 0 && len >= sizeof(VmcgHooksHello));
	}

	/* A tiny buffer: same verdict, truncated and terminated. */
	memset(tiny, 'X', sizeof(tiny));
	r2 = vmcg_hooks_parse(pkt, len, nr_slots, &m2, tiny, sizeof(tiny));
	CHECK(r2 == r);
	CHECK(memchr(tiny, '\0', sizeof(tiny)));
	CHECK(strncmp(tiny, err, sizeof(tiny) - 1) == 0);
	/* No buffer at all. */
	CHECK(vmcg_hooks_parse(pkt, len, nr_slots, &m2, NULL, 0) == r);

	/* Exactly @len bytes on the heap: nothing beyond is read. */
	copy = malloc(len ? len : 1);
	CHECK(copy);
	if (len)
		memcpy(copy, pkt, len);
	r2 = vmcg_hooks_parse(copy, len, nr_slots, &m2, err, sizeof(err));
	CHECK(r2 == r);
	if (r == 0)
		CHECK(memcmp(&m, &m2, sizeof(m)) == 0);
	free(copy);
	return 0;
}
