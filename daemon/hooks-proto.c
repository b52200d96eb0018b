// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hooks-proto.h"
#include "vmcg/group.h"

/* 2^40 pages of 4 KiB: 4 PiB, far above any guest; keeps every sum exact. */
#define PAGES_LIMIT (UINT64_C(1) << 40)

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
						      ...)
{
	va_list ap;

	if (errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EPROTO;
}

static int terminated(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

static int parse_hello(const unsigned char *buf, size_t len, VmcgHooksMsg *m, char *err,
		       size_t errlen)
{
	VmcgHooksHello h;
	uint64_t populated = 0, pages = 0;

	if (len < sizeof(h))
		return fail(err, errlen, "HELLO of %zu bytes, want at least %zu", len, sizeof(h));
	memcpy(&h, buf, sizeof(h));
	if (h.magic != VMCG_HOOKS_MAGIC)
		return fail(err, errlen, "HELLO with a bad magic number");
	if (h.major != VMCG_HOOKS_ABI_MAJOR) {
		if (errlen)
			snprintf(err, errlen, "hooks ABI %u.%u, this vmcgd speaks %u.x", h.major,
				 h.minor, VMCG_HOOKS_ABI_MAJOR);
		return -EPROTONOSUPPORT;
	}
	if (h.nr_ramblocks < 1 || h.nr_ramblocks > VMCG_HOOKS_MAX_RAMBLOCKS)
		return fail(err, errlen, "HELLO with %u RAM blocks, want 1..%u", h.nr_ramblocks,
			    VMCG_HOOKS_MAX_RAMBLOCKS);
	if (len != sizeof(h) + (size_t)h.nr_ramblocks * sizeof(VmcgHooksRamBlock))
		return fail(err, errlen, "HELLO of %zu bytes for %u RAM blocks", len,
			    h.nr_ramblocks);
	if (h.flags & ~VMCG_HOOKS_F_KNOWN)
		return fail(err, errlen, "HELLO with unknown flags 0x%x", h.flags);
	if (h.pid == 0 || h.pid > (1u << 22))
		return fail(err, errlen, "HELLO with pid %u", h.pid);
	if (h.nr_vcpus < 1 || h.nr_vcpus > VMCG_HOOKS_MAX_VCPUS)
		return fail(err, errlen, "HELLO with %u vCPUs, want 1..%u", h.nr_vcpus,
			    VMCG_HOOKS_MAX_VCPUS);
	if (h.page_size != VMCG_PAGE_SIZE)
		return fail(err, errlen,
			    "HELLO with %u-byte pages; only %u-byte pages are supported",
			    h.page_size, (unsigned)VMCG_PAGE_SIZE);
	if (h.batch < 1 || h.batch > VMCG_HOOKS_BATCH_MAX)
		return fail(err, errlen, "HELLO with a batch of %u pages, want 1..%u", h.batch,
			    VMCG_HOOKS_BATCH_MAX);
	if (h.reserved)
		return fail(err, errlen, "HELLO with a nonzero reserved field");
	if (!terminated(h.vm_name, sizeof(h.vm_name)) || vmcg_vm_name_validate(h.vm_name) < 0)
		return fail(err, errlen, "HELLO with an invalid VM name");
	for (uint32_t i = 0; i < h.nr_ramblocks; i++) {
		VmcgHooksRamBlock rb;

		memcpy(&rb, buf + sizeof(h) + i * sizeof(rb), sizeof(rb));
		if (!terminated(rb.name, sizeof(rb.name)) || !rb.name[0])
			return fail(err, errlen, "HELLO: RAM block %u has no valid name", i);
		if (rb.pages < 1 || rb.pages > PAGES_LIMIT || rb.populated > rb.pages)
			return fail(err, errlen,
				    "HELLO: RAM block %u: %llu of %llu pages populated", i,
				    (unsigned long long)rb.populated, (unsigned long long)rb.pages);
		pages += rb.pages;
		populated += rb.populated;
		if (pages > PAGES_LIMIT)
			return fail(err, errlen, "HELLO: RAM blocks add up to too many pages");
	}
	if (populated != h.populated)
		return fail(err, errlen, "HELLO: %llu pages populated, RAM blocks say %llu",
			    (unsigned long long)h.populated, (unsigned long long)populated);
	m->hello.major = h.major;
	m->hello.minor = h.minor;
	m->hello.flags = h.flags;
	m->hello.pid = h.pid;
	m->hello.nr_vcpus = h.nr_vcpus;
	m->hello.page_size = h.page_size;
	m->hello.batch = h.batch;
	m->hello.nr_ramblocks = h.nr_ramblocks;
	memcpy(m->hello.vm_name, h.vm_name, sizeof(h.vm_name));
	m->hello.populated = populated;
	m->hello.pages = pages;
	return 0;
}

int vmcg_hooks_parse(const void *buf, size_t len, uint32_t nr_slots, VmcgHooksMsg *ret, char *err,
		     size_t errlen)
{
	const unsigned char *p = buf;
	VmcgHooksHdr hdr;

	if (errlen)
		err[0] = '\0';
	memset(ret, 0, sizeof(*ret));
	if (len < sizeof(hdr))
		return fail(err, errlen, "packet of %zu bytes, shorter than a header", len);
	if (len > VMCG_HOOKS_MSG_MAX)
		return fail(err, errlen, "packet of %zu bytes, over %u", len, VMCG_HOOKS_MSG_MAX);
	memcpy(&hdr, p, sizeof(hdr));
	if (hdr.len != len)
		return fail(err, errlen, "packet of %zu bytes says it has %u", len, hdr.len);
	ret->type = hdr.type;
	ret->seq = hdr.seq;
	switch (hdr.type) {
	case VMCG_HOOKS_HELLO:
		if (nr_slots)
			return fail(err, errlen, "a second HELLO");
		return parse_hello(p, len, ret, err, errlen);
	case VMCG_HOOKS_REFILL:
		if (!nr_slots)
			return fail(err, errlen, "REFILL before HELLO");
		if (len != sizeof(ret->refill))
			return fail(err, errlen, "REFILL of %zu bytes", len);
		memcpy(&ret->refill, p, sizeof(ret->refill));
		if (ret->refill.slot >= nr_slots)
			return fail(err, errlen, "REFILL for slot %u of %u", ret->refill.slot,
				    nr_slots);
		if (ret->refill.reserved)
			return fail(err, errlen, "REFILL with a nonzero reserved field");
		if (ret->refill.want < 1 || ret->refill.want > VMCG_HOOKS_BATCH_MAX ||
		    ret->refill.need > ret->refill.want)
			return fail(err, errlen, "REFILL for %u pages needing %u", ret->refill.want,
				    ret->refill.need);
		return 0;
	case VMCG_HOOKS_RETURN:
		if (!nr_slots)
			return fail(err, errlen, "RETURN before HELLO");
		if (len != sizeof(ret->ret))
			return fail(err, errlen, "RETURN of %zu bytes", len);
		memcpy(&ret->ret, p, sizeof(ret->ret));
		if (ret->ret.slot >= nr_slots || ret->ret.pages > PAGES_LIMIT || ret->ret.reserved)
			return fail(err, errlen, "RETURN of %llu pages to slot %u",
				    (unsigned long long)ret->ret.pages, ret->ret.slot);
		return 0;
	default:
		return fail(err, errlen, "unexpected message type %u", hdr.type);
	}
}

static int refuse(int error, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int refuse(int error, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -error;
}

int vmcg_hooks_admit(const VmcgHooksMsg *m, uint32_t peer_pid, const VmcgHooksVmFacts *vm,
		     char *err, size_t errlen)
{
	const char *name = m->hello.vm_name;

	if (errlen)
		err[0] = '\0';
	if (m->hello.pid != peer_pid)
		return refuse(EPERM, err, errlen, "HELLO says pid %u, the socket's peer is pid %u",
			      m->hello.pid, peer_pid);
	if (!vm->registered)
		return refuse(ENOENT, err, errlen, "no VM named \"%s\" is registered with vmcgd",
			      name);
	if (vm->attached)
		return refuse(EBUSY, err, errlen, "VM %s is already attached (pid %u)", name,
			      vm->attached_pid);
	/*
	 * Only the VM's QMP connection says which process is its QEMU
	 * (SO_PEERCRED, backend-qmp.c): until vmcgd has one, nobody's HELLO
	 * can be told from an impostor's. QEMU retries every second.
	 */
	if (!vm->qmp_pid)
		return refuse(EAGAIN, err, errlen,
			      "VM %s: its QMP socket is not connected yet, so its QEMU pid is "
			      "not known",
			      name);
	if (vm->qmp_pid != peer_pid)
		return refuse(EPERM, err, errlen,
			      "VM %s is QEMU pid %u per its QMP socket, not pid %u", name,
			      vm->qmp_pid, peer_pid);
	if (!vm->ram_pages)
		return refuse(EAGAIN, err, errlen, "VM %s: its RAM size is not known yet", name);
	if (m->hello.populated > vm->ram_pages)
		return refuse(ERANGE, err, errlen,
			      "VM %s: HELLO says %llu pages populated, the VM has %llu pages of "
			      "RAM",
			      name, (unsigned long long)m->hello.populated,
			      (unsigned long long)vm->ram_pages);
	return 0;
}

bool vmcg_hooks_charge_in_range(uint64_t charged, uint64_t more, uint64_t ram_pages,
				uint64_t slack_pages)
{
	/* Every operand is at most 2^42 or so (pages, RAM); saturate anyway. */
	uint64_t cap = ram_pages + 2 * slack_pages;

	if (cap < ram_pages || slack_pages > UINT64_MAX / 4)
		cap = UINT64_MAX;
	return charged <= cap && more <= cap - charged;
}

int vmcg_hooks_refill_check(const VmcgHooksRefill *r, uint32_t batch, uint32_t chunk, char *err,
			    size_t errlen)
{
	uint32_t most = batch > chunk ? batch : chunk;

	if (errlen)
		err[0] = '\0';
	if (r->need > chunk)
		return fail(err, errlen, "REFILL needing %u pages, above a chunk (%u)", r->need,
			    chunk);
	if (r->want > most)
		return fail(err, errlen,
			    "REFILL for %u pages, above the batch (%u) and the chunk (%u)", r->want,
			    batch, chunk);
	return 0;
}

VmcgHooksAdmitConn vmcg_hooks_admit_conn(uint32_t pending, uint32_t pending_uid)
{
	if (pending >= VMCG_HOOKS_PENDING_MAX)
		return VMCG_HOOKS_CONN_OVER_TOTAL;
	if (pending_uid >= VMCG_HOOKS_PENDING_PER_UID_MAX)
		return VMCG_HOOKS_CONN_OVER_UID;
	return VMCG_HOOKS_CONN_ACCEPT;
}

uint32_t vmcg_hooks_backoff_msec(uint32_t failures)
{
	uint32_t ms = VMCG_HOOKS_BACKOFF_MIN_MSEC;

	for (uint32_t i = 1; i < failures && ms < VMCG_HOOKS_BACKOFF_MAX_MSEC; i++)
		ms *= 2;
	return ms < VMCG_HOOKS_BACKOFF_MAX_MSEC ? ms : VMCG_HOOKS_BACKOFF_MAX_MSEC;
}

bool vmcg_hooks_ratelimit(VmcgHooksRatelimit *rl, uint64_t now_usec, uint64_t interval_usec,
			  uint32_t burst, uint64_t *ret_missed)
{
	if (!rl->started || now_usec < rl->begin_usec ||
	    now_usec - rl->begin_usec >= interval_usec) {
		rl->started = true;
		rl->begin_usec = now_usec;
		rl->printed = 0;
	}
	if (rl->printed >= burst) {
		rl->missed++;
		return false;
	}
	rl->printed++;
	*ret_missed = rl->missed;
	rl->missed = 0;
	return true;
}
