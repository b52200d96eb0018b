// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The hooks packet checker (daemon/hooks-proto.c): what a patched QEMU may
 * send vmcgd (include/vmcg/hooks-abi.h). Valid HELLO (1 and 32 RAM blocks),
 * REFILL and RETURN are accepted with every field carried over; then a
 * table of malformed packets, each built from a valid one with one thing
 * broken, must be refused with -EPROTO (-EPROTONOSUPPORT for another major
 * version) and a message. The message is always NUL-terminated, however
 * small the buffer.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>

#include "hooks-proto.h"

#define PAGE 4096u
/* Room for the largest packet and then some, for the too-long cases. */
#define BUF_SIZE (2 * VMCG_HOOKS_MSG_MAX)

typedef struct Pkt {
	union {
		unsigned char b[BUF_SIZE];
		VmcgHooksHdr hdr;
		VmcgHooksHello hello;
		VmcgHooksRefill refill;
		VmcgHooksReturn ret;
	};
	size_t len;
} Pkt;

static VmcgHooksRamBlock *rb(Pkt *p, uint32_t i)
{
	return (VmcgHooksRamBlock *)(p->b + sizeof(VmcgHooksHello)) + i;
}

static void set_len(Pkt *p, size_t len)
{
	p->len = len;
	p->hdr.len = (uint32_t)len;
}

/* A valid HELLO with @n RAM blocks: block i has 1024 (i + 1) pages, i + 1 populated. */
static void hello(Pkt *p, uint32_t n)
{
	uint64_t populated = 0;

	memset(p, 0, sizeof(*p));
	p->hdr.type = VMCG_HOOKS_HELLO;
	p->hdr.seq = 1;
	p->hello.magic = VMCG_HOOKS_MAGIC;
	p->hello.major = VMCG_HOOKS_ABI_MAJOR;
	p->hello.minor = VMCG_HOOKS_ABI_MINOR;
	p->hello.flags = VMCG_HOOKS_F_BLOCK_ON_DISCONNECT;
	p->hello.pid = 4242;
	p->hello.nr_vcpus = 4;
	p->hello.page_size = PAGE;
	p->hello.batch = 64;
	p->hello.nr_ramblocks = n;
	strcpy(p->hello.vm_name, "web-1");
	for (uint32_t i = 0; i < n; i++) {
		snprintf(rb(p, i)->name, sizeof(rb(p, i)->name), "block%u", i);
		rb(p, i)->pages = 1024 * (i + 1);
		rb(p, i)->populated = i + 1;
		populated += i + 1;
	}
	p->hello.populated = populated;
	set_len(p, sizeof(VmcgHooksHello) + n * sizeof(VmcgHooksRamBlock));
}

static void refill(Pkt *p)
{
	memset(p, 0, sizeof(*p));
	p->hdr.type = VMCG_HOOKS_REFILL;
	p->hdr.seq = 7;
	p->refill.slot = 2;
	p->refill.need = 3;
	p->refill.want = 64;
	set_len(p, sizeof(VmcgHooksRefill));
}

static void ret(Pkt *p)
{
	memset(p, 0, sizeof(*p));
	p->hdr.type = VMCG_HOOKS_RETURN;
	p->hdr.seq = 9;
	p->ret.slot = 4;
	p->ret.pages = 100;
	set_len(p, sizeof(VmcgHooksReturn));
}

static int parse(const Pkt *p, uint32_t nr_slots, VmcgHooksMsg *m, char *err, size_t errlen)
{
	return vmcg_hooks_parse(p->b, p->len, nr_slots, m, err, errlen);
}

/* ------------------------------------------------------------------------
 * Valid packets
 */

static void check_hello(uint32_t n)
{
	char err[128] = "untouched";
	VmcgHooksMsg m;
	uint64_t pages = 0, populated = 0;
	Pkt p;

	hello(&p, n);
	for (uint32_t i = 0; i < n; i++) {
		pages += 1024 * (i + 1);
		populated += i + 1;
	}
	g_assert_cmpint(parse(&p, 0, &m, err, sizeof(err)), ==, 0);
	g_assert_cmpstr(err, ==, "");
	g_assert_cmpuint(m.type, ==, VMCG_HOOKS_HELLO);
	g_assert_cmpuint(m.seq, ==, 1);
	g_assert_cmpuint(m.hello.major, ==, VMCG_HOOKS_ABI_MAJOR);
	g_assert_cmpuint(m.hello.minor, ==, VMCG_HOOKS_ABI_MINOR);
	g_assert_cmpuint(m.hello.flags, ==, VMCG_HOOKS_F_BLOCK_ON_DISCONNECT);
	g_assert_cmpuint(m.hello.pid, ==, 4242);
	g_assert_cmpuint(m.hello.nr_vcpus, ==, 4);
	g_assert_cmpuint(m.hello.page_size, ==, PAGE);
	g_assert_cmpuint(m.hello.batch, ==, 64);
	g_assert_cmpuint(m.hello.nr_ramblocks, ==, n);
	g_assert_cmpstr(m.hello.vm_name, ==, "web-1");
	g_assert_cmpuint(m.hello.populated, ==, populated);
	g_assert_cmpuint(m.hello.pages, ==, pages);
}

static void test_hello_one(void)
{
	check_hello(1);
}

static void test_hello_max(void)
{
	check_hello(VMCG_HOOKS_MAX_RAMBLOCKS);
}

/* The edges of every range are inside it. */
static void test_hello_edges(void)
{
	char err[128];
	VmcgHooksMsg m;
	Pkt p;

	hello(&p, 2);
	p.hello.flags = VMCG_HOOKS_F_KNOWN;
	p.hello.nr_vcpus = VMCG_HOOKS_MAX_VCPUS;
	p.hello.batch = VMCG_HOOKS_BATCH_MAX;
	p.hello.minor = 99; /* minors only append: still ours */
	memset(p.hello.vm_name, 'x', sizeof(p.hello.vm_name) - 1);
	rb(&p, 0)->populated = rb(&p, 0)->pages;
	rb(&p, 1)->populated = 0;
	p.hello.populated = rb(&p, 0)->pages;
	g_assert_cmpint(parse(&p, 0, &m, err, sizeof(err)), ==, 0);
	g_assert_cmpuint(m.hello.nr_vcpus, ==, VMCG_HOOKS_MAX_VCPUS);
	g_assert_cmpuint(m.hello.batch, ==, VMCG_HOOKS_BATCH_MAX);
	g_assert_cmpuint(strlen(m.hello.vm_name), ==, VMCG_HOOKS_NAME_MAX - 1);

	hello(&p, 1);
	p.hello.nr_vcpus = 1;
	p.hello.batch = 1;
	p.hello.flags = 0;
	strcpy(p.hello.vm_name, "\xc3\xa9t\xc3\xa9 vm.2"); /* UTF-8 and a space */
	g_assert_cmpint(parse(&p, 0, &m, err, sizeof(err)), ==, 0);
	g_assert_cmpuint(m.hello.nr_vcpus, ==, 1);
}

static void test_refill(void)
{
	char err[128];
	VmcgHooksMsg m;
	Pkt p;

	refill(&p);
	g_assert_cmpint(parse(&p, 5, &m, err, sizeof(err)), ==, 0);
	g_assert_cmpstr(err, ==, "");
	g_assert_cmpuint(m.type, ==, VMCG_HOOKS_REFILL);
	g_assert_cmpuint(m.seq, ==, 7);
	g_assert_cmpuint(m.refill.slot, ==, 2);
	g_assert_cmpuint(m.refill.need, ==, 3);
	g_assert_cmpuint(m.refill.want, ==, 64);

	/* The last slot, a prefetch, need == want == BATCH_MAX. */
	p.refill.slot = 4;
	p.refill.need = 0;
	g_assert_cmpint(parse(&p, 5, &m, err, sizeof(err)), ==, 0);
	g_assert_cmpuint(m.refill.slot, ==, 4);
	g_assert_cmpuint(m.refill.need, ==, 0);
	p.refill.need = p.refill.want = VMCG_HOOKS_BATCH_MAX;
	g_assert_cmpint(parse(&p, 5, &m, err, sizeof(err)), ==, 0);
	g_assert_cmpuint(m.refill.need, ==, VMCG_HOOKS_BATCH_MAX);
}

static void test_return(void)
{
	char err[128];
	VmcgHooksMsg m;
	Pkt p;

	ret(&p);
	g_assert_cmpint(parse(&p, 5, &m, err, sizeof(err)), ==, 0);
	g_assert_cmpstr(err, ==, "");
	g_assert_cmpuint(m.type, ==, VMCG_HOOKS_RETURN);
	g_assert_cmpuint(m.seq, ==, 9);
	g_assert_cmpuint(m.ret.slot, ==, 4);
	g_assert_cmpuint(m.ret.pages, ==, 100);
	p.ret.pages = 0;
	g_assert_cmpint(parse(&p, 5, &m, err, sizeof(err)), ==, 0);
	g_assert_cmpuint(m.ret.pages, ==, 0);
}

/* ------------------------------------------------------------------------
 * Malformed packets: one valid packet, one thing broken
 */

typedef struct Bad {
	const char *what;
	void (*make)(Pkt *p);
	uint32_t nr_slots;
	int error;
} Bad;

/* Sizes */
static void empty(Pkt *p)
{
	hello(p, 1);
	p->len = 0;
}
static void short_hdr(Pkt *p)
{
	hello(p, 1);
	p->len = sizeof(VmcgHooksHdr) - 1;
}
static void hdr_only(Pkt *p)
{
	hello(p, 1);
	set_len(p, sizeof(VmcgHooksHdr));
}
static void hello_short(Pkt *p)
{
	hello(p, 1);
	set_len(p, sizeof(VmcgHooksHello) - 1);
}
static void hello_no_blocks(Pkt *p)
{
	hello(p, 1);
	set_len(p, sizeof(VmcgHooksHello));
}
static void hello_truncated_block(Pkt *p)
{
	hello(p, 2);
	set_len(p, p->len - 1);
}
static void hello_long(Pkt *p)
{
	hello(p, 1);
	set_len(p, p->len + 1);
}
static void hello_extra_block(Pkt *p)
{
	hello(p, 1);
	set_len(p, p->len + sizeof(VmcgHooksRamBlock));
}
static void hello_len_lies_short(Pkt *p)
{
	hello(p, 1);
	p->hdr.len -= 8;
}
static void hello_len_lies_long(Pkt *p)
{
	hello(p, 1);
	p->hdr.len += 8;
}
static void hello_len_zero(Pkt *p)
{
	hello(p, 1);
	p->hdr.len = 0;
}
static void over_max(Pkt *p)
{
	hello(p, 1);
	set_len(p, VMCG_HOOKS_MSG_MAX + 1);
}
static void over_max_far(Pkt *p)
{
	refill(p);
	set_len(p, BUF_SIZE);
}
static void refill_short(Pkt *p)
{
	refill(p);
	set_len(p, p->len - 1);
}
static void refill_long(Pkt *p)
{
	refill(p);
	set_len(p, p->len + 1);
}
static void refill_len_lies(Pkt *p)
{
	refill(p);
	p->hdr.len = sizeof(VmcgHooksReturn) + 4;
}
static void return_short(Pkt *p)
{
	ret(p);
	set_len(p, p->len - 8);
}
static void return_long(Pkt *p)
{
	ret(p);
	set_len(p, p->len + 8);
}

/* HELLO fields */
static void bad_magic(Pkt *p)
{
	hello(p, 1);
	p->hello.magic ^= 1;
}
static void region_magic(Pkt *p)
{
	hello(p, 1);
	p->hello.magic = VMCG_HOOKS_REGION_MAGIC;
}
static void blocks_0(Pkt *p)
{
	hello(p, 1);
	p->hello.nr_ramblocks = 0;
	set_len(p, sizeof(VmcgHooksHello));
}
static void blocks_33(Pkt *p)
{
	hello(p, VMCG_HOOKS_MAX_RAMBLOCKS);
	p->hello.nr_ramblocks = VMCG_HOOKS_MAX_RAMBLOCKS + 1;
	set_len(p, p->len + sizeof(VmcgHooksRamBlock));
}
static void blocks_huge(Pkt *p)
{
	hello(p, 1);
	p->hello.nr_ramblocks = UINT32_MAX;
}
static void blocks_more_than_sent(Pkt *p)
{
	hello(p, 2);
	p->hello.nr_ramblocks = 3;
}
static void blocks_fewer_than_sent(Pkt *p)
{
	hello(p, 3);
	p->hello.nr_ramblocks = 2;
}
static void unknown_flag(Pkt *p)
{
	hello(p, 1);
	p->hello.flags |= 1u << 2;
}
static void high_flag(Pkt *p)
{
	hello(p, 1);
	p->hello.flags = 1u << 31;
}
static void pid_0(Pkt *p)
{
	hello(p, 1);
	p->hello.pid = 0;
}
static void pid_huge(Pkt *p)
{
	hello(p, 1);
	p->hello.pid = UINT32_MAX; /* -1 as a pid_t */
}
static void vcpus_0(Pkt *p)
{
	hello(p, 1);
	p->hello.nr_vcpus = 0;
}
static void vcpus_1025(Pkt *p)
{
	hello(p, 1);
	p->hello.nr_vcpus = VMCG_HOOKS_MAX_VCPUS + 1;
}
static void vcpus_wrap(Pkt *p)
{
	hello(p, 1);
	p->hello.nr_vcpus = UINT32_MAX; /* + 1 slot would wrap to 0 */
}
static void page_2m(Pkt *p)
{
	hello(p, 1);
	p->hello.page_size = 2u << 20;
}
static void page_0(Pkt *p)
{
	hello(p, 1);
	p->hello.page_size = 0;
}
static void batch_0(Pkt *p)
{
	hello(p, 1);
	p->hello.batch = 0;
}
static void batch_4097(Pkt *p)
{
	hello(p, 1);
	p->hello.batch = VMCG_HOOKS_BATCH_MAX + 1;
}
static void reserved(Pkt *p)
{
	hello(p, 1);
	p->hello.reserved = 1;
}
static void name_unterminated(Pkt *p)
{
	hello(p, 1);
	memset(p->hello.vm_name, 'a', sizeof(p->hello.vm_name));
}
static void name_empty(Pkt *p)
{
	hello(p, 1);
	memset(p->hello.vm_name, 0, sizeof(p->hello.vm_name));
}
static void name_slash(Pkt *p)
{
	hello(p, 1);
	strcpy(p->hello.vm_name, "a/b");
}
static void name_newline(Pkt *p)
{
	hello(p, 1);
	strcpy(p->hello.vm_name, "web\n1");
}
static void name_escape(Pkt *p)
{
	hello(p, 1);
	strcpy(p->hello.vm_name, "\x1b[2Jweb");
}
static void name_del(Pkt *p)
{
	hello(p, 1);
	strcpy(p->hello.vm_name, "web\x7f");
}
static void block_name_unterminated(Pkt *p)
{
	hello(p, 2);
	memset(rb(p, 1)->name, 'r', sizeof(rb(p, 1)->name));
}
static void block_name_empty(Pkt *p)
{
	hello(p, 2);
	memset(rb(p, 0)->name, 0, sizeof(rb(p, 0)->name));
}
static void block_pages_0(Pkt *p)
{
	hello(p, 1);
	rb(p, 0)->pages = 0;
	rb(p, 0)->populated = 0;
	p->hello.populated = 0;
}
static void block_pages_huge(Pkt *p)
{
	hello(p, 1);
	rb(p, 0)->pages = UINT64_MAX;
}
static void blocks_sum_huge(Pkt *p)
{
	hello(p, 2);
	/* Each one in range, the two together over 2^40 pages. */
	rb(p, 0)->pages = UINT64_C(1) << 40;
	rb(p, 1)->pages = UINT64_C(1) << 40;
}
static void populated_over_pages(Pkt *p)
{
	hello(p, 2);
	rb(p, 1)->populated = rb(p, 1)->pages + 1;
	p->hello.populated = rb(p, 0)->populated + rb(p, 1)->populated;
}
static void populated_sum_low(Pkt *p)
{
	hello(p, 3);
	p->hello.populated--;
}
static void populated_sum_high(Pkt *p)
{
	hello(p, 3);
	p->hello.populated++;
}
static void second_hello(Pkt *p)
{
	hello(p, 1);
}

/* REFILL and RETURN fields */
static void refill_slot_high(Pkt *p)
{
	refill(p);
	p->refill.slot = 5;
}
static void refill_slot_huge(Pkt *p)
{
	refill(p);
	p->refill.slot = UINT32_MAX;
}
static void refill_want_0(Pkt *p)
{
	refill(p);
	p->refill.need = 0;
	p->refill.want = 0;
}
static void refill_want_over(Pkt *p)
{
	refill(p);
	p->refill.need = 0;
	p->refill.want = VMCG_HOOKS_BATCH_MAX + 1;
}
static void refill_need_over_want(Pkt *p)
{
	refill(p);
	p->refill.need = p->refill.want + 1;
}
static void refill_reserved(Pkt *p)
{
	refill(p);
	p->refill.reserved = 1;
}
static void return_slot_high(Pkt *p)
{
	ret(p);
	p->ret.slot = 5;
}
static void return_pages_huge(Pkt *p)
{
	ret(p);
	p->ret.pages = UINT64_MAX;
}
static void return_reserved(Pkt *p)
{
	ret(p);
	p->ret.reserved = 1;
}

/* Types */
static void type_0(Pkt *p)
{
	refill(p);
	p->hdr.type = 0;
}
static void type_welcome(Pkt *p)
{
	refill(p);
	p->hdr.type = VMCG_HOOKS_WELCOME;
}
static void type_reject(Pkt *p)
{
	refill(p);
	p->hdr.type = VMCG_HOOKS_REJECT;
}
static void type_grant(Pkt *p)
{
	refill(p);
	p->hdr.type = VMCG_HOOKS_GRANT;
}
static void type_7(Pkt *p)
{
	refill(p);
	p->hdr.type = 7;
}
static void type_huge(Pkt *p)
{
	refill(p);
	p->hdr.type = UINT32_MAX;
}

/* Versions */
static void major_2(Pkt *p)
{
	hello(p, 1);
	p->hello.major = 2;
}
static void major_0(Pkt *p)
{
	hello(p, 1);
	p->hello.major = 0;
}
static void major_2_short(Pkt *p)
{
	/* Another major's HELLO may have another layout: its length is not ours to judge. */
	hello(p, 1);
	p->hello.major = 2;
	p->hello.nr_ramblocks = 0;
	set_len(p, sizeof(VmcgHooksHello));
}

static const Bad bad[] = {
	{ "empty packet", empty, 0, -EPROTO },
	{ "shorter than a header", short_hdr, 0, -EPROTO },
	{ "a header only", hdr_only, 0, -EPROTO },
	{ "HELLO one byte short", hello_short, 0, -EPROTO },
	{ "HELLO without its blocks", hello_no_blocks, 0, -EPROTO },
	{ "HELLO with a truncated block", hello_truncated_block, 0, -EPROTO },
	{ "HELLO one byte long", hello_long, 0, -EPROTO },
	{ "HELLO with a block too many", hello_extra_block, 0, -EPROTO },
	{ "hdr.len below the packet", hello_len_lies_short, 0, -EPROTO },
	{ "hdr.len above the packet", hello_len_lies_long, 0, -EPROTO },
	{ "hdr.len 0", hello_len_zero, 0, -EPROTO },
	{ "packet over MSG_MAX", over_max, 0, -EPROTO },
	{ "packet far over MSG_MAX", over_max_far, 5, -EPROTO },
	{ "REFILL one byte short", refill_short, 5, -EPROTO },
	{ "REFILL one byte long", refill_long, 5, -EPROTO },
	{ "REFILL with the hdr.len of another size", refill_len_lies, 5, -EPROTO },
	{ "RETURN short", return_short, 5, -EPROTO },
	{ "RETURN long", return_long, 5, -EPROTO },
	{ "bad magic", bad_magic, 0, -EPROTO },
	{ "the region's magic", region_magic, 0, -EPROTO },
	{ "0 RAM blocks", blocks_0, 0, -EPROTO },
	{ "33 RAM blocks", blocks_33, 0, -EPROTO },
	{ "2^32-1 RAM blocks", blocks_huge, 0, -EPROTO },
	{ "nr_ramblocks above what was sent", blocks_more_than_sent, 0, -EPROTO },
	{ "nr_ramblocks below what was sent", blocks_fewer_than_sent, 0, -EPROTO },
	{ "unknown flag", unknown_flag, 0, -EPROTO },
	{ "high flag", high_flag, 0, -EPROTO },
	{ "pid 0", pid_0, 0, -EPROTO },
	{ "pid 2^32-1", pid_huge, 0, -EPROTO },
	{ "0 vCPUs", vcpus_0, 0, -EPROTO },
	{ "1025 vCPUs", vcpus_1025, 0, -EPROTO },
	{ "2^32-1 vCPUs", vcpus_wrap, 0, -EPROTO },
	{ "2 MiB pages", page_2m, 0, -EPROTO },
	{ "0-byte pages", page_0, 0, -EPROTO },
	{ "batch 0", batch_0, 0, -EPROTO },
	{ "batch 4097", batch_4097, 0, -EPROTO },
	{ "reserved nonzero", reserved, 0, -EPROTO },
	{ "VM name unterminated", name_unterminated, 0, -EPROTO },
	{ "VM name empty", name_empty, 0, -EPROTO },
	{ "VM name a/b", name_slash, 0, -EPROTO },
	{ "VM name with a newline", name_newline, 0, -EPROTO },
	{ "VM name with an escape", name_escape, 0, -EPROTO },
	{ "VM name with DEL", name_del, 0, -EPROTO },
	{ "RAM block name unterminated", block_name_unterminated, 0, -EPROTO },
	{ "RAM block name empty", block_name_empty, 0, -EPROTO },
	{ "RAM block of 0 pages", block_pages_0, 0, -EPROTO },
	{ "RAM block of 2^64-1 pages", block_pages_huge, 0, -EPROTO },
	{ "RAM blocks adding up past 2^40 pages", blocks_sum_huge, 0, -EPROTO },
	{ "populated > pages", populated_over_pages, 0, -EPROTO },
	{ "populated sum low", populated_sum_low, 0, -EPROTO },
	{ "populated sum high", populated_sum_high, 0, -EPROTO },
	{ "a second HELLO", second_hello, 5, -EPROTO },
	{ "REFILL before HELLO", refill, 0, -EPROTO },
	{ "RETURN before HELLO", ret, 0, -EPROTO },
	{ "REFILL slot == nr_slots", refill_slot_high, 5, -EPROTO },
	{ "REFILL slot 2^32-1", refill_slot_huge, 5, -EPROTO },
	{ "REFILL want 0", refill_want_0, 5, -EPROTO },
	{ "REFILL want > BATCH_MAX", refill_want_over, 5, -EPROTO },
	{ "REFILL need > want", refill_need_over_want, 5, -EPROTO },
	{ "REFILL reserved nonzero", refill_reserved, 5, -EPROTO },
	{ "RETURN slot == nr_slots", return_slot_high, 5, -EPROTO },
	{ "RETURN of 2^64-1 pages", return_pages_huge, 5, -EPROTO },
	{ "RETURN reserved nonzero", return_reserved, 5, -EPROTO },
	{ "type 0", type_0, 5, -EPROTO },
	{ "type WELCOME (vmcgd's own)", type_welcome, 5, -EPROTO },
	{ "type REJECT (vmcgd's own)", type_reject, 5, -EPROTO },
	{ "type GRANT (vmcgd's own)", type_grant, 5, -EPROTO },
	{ "type 7", type_7, 5, -EPROTO },
	{ "type 2^32-1", type_huge, 5, -EPROTO },
	{ "major 2", major_2, 0, -EPROTONOSUPPORT },
	{ "major 0", major_0, 0, -EPROTONOSUPPORT },
	{ "major 2 with another layout", major_2_short, 0, -EPROTONOSUPPORT },
};

static void test_malformed(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		char err[256];
		VmcgHooksMsg m;
		Pkt p;
		int r;

		bad[i].make(&p);
		memset(err, 'X', sizeof(err));
		memset(&m, 0xa5, sizeof(m));
		r = parse(&p, bad[i].nr_slots, &m, err, sizeof(err));
		if (r != bad[i].error)
			g_error("%s: returned %d (%s), want %d", bad[i].what, r,
				r ? err : "accepted", bad[i].error);
		g_assert_nonnull(memchr(err, '\0', sizeof(err)));
		if (!err[0])
			g_error("%s: refused without a message", bad[i].what);
		if (g_test_verbose())
			g_printerr("%s: %s\n", bad[i].what, err);
	}
}

/* The valid packets must not be refused by the same parser state the table uses. */
static void test_table_bases_are_valid(void)
{
	char err[128];
	VmcgHooksMsg m;
	Pkt p;

	hello(&p, 3);
	g_assert_cmpint(parse(&p, 0, &m, err, sizeof(err)), ==, 0);
	refill(&p);
	g_assert_cmpint(parse(&p, 5, &m, err, sizeof(err)), ==, 0);
	ret(&p);
	g_assert_cmpint(parse(&p, 5, &m, err, sizeof(err)), ==, 0);
}

/* Every message fits any buffer, truncated and terminated; none is written to errlen 0. */
static void test_tiny_errlen(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		for (size_t errlen = 0; errlen <= 4; errlen++) {
			char err[8];
			VmcgHooksMsg m;
			Pkt p;
			int r;

			bad[i].make(&p);
			memset(err, 'X', sizeof(err));
			r = parse(&p, bad[i].nr_slots, &m, err, errlen);
			g_assert_cmpint(r, ==, bad[i].error);
			if (errlen == 0) {
				g_assert_cmpint(err[0], ==, 'X');
				continue;
			}
			g_assert_nonnull(memchr(err, '\0', errlen));
			g_assert_cmpuint(strlen(err), ==, errlen - 1);
			for (size_t j = errlen; j < sizeof(err); j++)
				g_assert_cmpint(err[j], ==, 'X');
		}
	}
	/* A success with errlen 1 leaves an empty string. */
	{
		char err[2] = { 'X', 'X' };
		VmcgHooksMsg m;
		Pkt p;

		hello(&p, 1);
		g_assert_cmpint(parse(&p, 0, &m, err, 1), ==, 0);
		g_assert_cmpint(err[0], ==, '\0');
		g_assert_cmpint(err[1], ==, 'X');
		g_assert_cmpint(parse(&p, 0, &m, NULL, 0), ==, 0);
		refill(&p);
		g_assert_cmpint(parse(&p, 0, &m, NULL, 0), ==, -EPROTO);
	}
}

/* The checker reads only @len bytes: each packet in a heap block of exactly its size. */
static void check_exact(const Pkt *p, uint32_t nr_slots, int want)
{
	g_autofree unsigned char *copy = g_malloc(p->len);
	char err[128];
	VmcgHooksMsg m;

	memcpy(copy, p->b, p->len);

	/* valgrind and ASan see any read past the block. */
	g_assert_cmpint(vmcg_hooks_parse(copy, p->len, nr_slots, &m, err, sizeof(err)), ==, want);
}

static void test_reads_only_len(void)
{
	Pkt p;

	hello(&p, 2);
	check_exact(&p, 0, 0);
	hello(&p, 2);
	set_len(&p, p.len - 1);
	check_exact(&p, 0, -EPROTO);
	hello(&p, 1);
	set_len(&p, sizeof(VmcgHooksHello) - 1);
	check_exact(&p, 0, -EPROTO);
	refill(&p);
	check_exact(&p, 5, 0);
	ret(&p);
	check_exact(&p, 5, 0);
	refill(&p);
	set_len(&p, 1);
	check_exact(&p, 5, -EPROTO);
}

/* ------------------------------------------------------------------------
 * Admitting a HELLO (issue 9, finding 7): who may attach, and for how much.
 * The HELLO is the valid one-block HELLO from pid 4242 for "web-1",
 * with @populated pages populated.
 */

#define QEMU_PID 4242u
#define RAM_PAGES 131072u /* a 512 MiB VM */

static const VmcgHooksVmFacts ready_vm = {
	.registered = true,
	.qmp_pid = QEMU_PID,
	.ram_pages = RAM_PAGES,
};

static const struct {
	const char *what;
	uint32_t hello_pid, peer_pid;
	uint64_t populated;
	VmcgHooksVmFacts vm;
	int error;
	const char *reason; /* a substring of the REJECT's reason */
} admits[] = {
	{ "QEMU of a ready VM", QEMU_PID, QEMU_PID, 1000, ready_vm, 0, "" },
	{ "nothing populated", QEMU_PID, QEMU_PID, 0, ready_vm, 0, "" },
	{ "all of RAM populated", QEMU_PID, QEMU_PID, RAM_PAGES, ready_vm, 0, "" },
	{ "HELLO pid is not the peer", QEMU_PID + 1, QEMU_PID, 1000, ready_vm, -EPERM,
	  "socket's peer is pid 4242" },
	{ "no such VM", QEMU_PID, QEMU_PID, 1000, { 0 }, -ENOENT, "no VM named \"web-1\"" },
	{ "already attached",
	  QEMU_PID,
	  QEMU_PID,
	  1000,
	  { .registered = true,
	    .attached = true,
	    .attached_pid = 77,
	    .qmp_pid = QEMU_PID,
	    .ram_pages = RAM_PAGES },
	  -EBUSY,
	  "already attached (pid 77)" },
	/* The 4 TiB that ran the OOM action on another VM: QMP not connected yet. */
	{ "QMP not connected yet",
	  QEMU_PID,
	  QEMU_PID,
	  UINT64_C(1) << 30,
	  { .registered = true, .ram_pages = RAM_PAGES },
	  -EAGAIN,
	  "QMP socket is not connected" },
	{ "VM gone (no pid, stale RAM size)",
	  QEMU_PID,
	  QEMU_PID,
	  10,
	  { .registered = true, .ram_pages = RAM_PAGES },
	  -EAGAIN,
	  "QEMU pid is not known" },
	{ "peer is not the VM's QEMU (a child)",
	  QEMU_PID,
	  QEMU_PID,
	  10,
	  { .registered = true, .qmp_pid = QEMU_PID - 1, .ram_pages = RAM_PAGES },
	  -EPERM,
	  "QEMU pid 4241 per its QMP socket, not pid 4242" },
	{ "RAM size not known yet",
	  QEMU_PID,
	  QEMU_PID,
	  10,
	  { .registered = true, .qmp_pid = QEMU_PID },
	  -EAGAIN,
	  "RAM size is not known" },
	{ "one page more than RAM", QEMU_PID, QEMU_PID, RAM_PAGES + 1, ready_vm, -ERANGE,
	  "131073 pages populated, the VM has 131072" },
	{ "4 TiB for a 512 MiB VM", QEMU_PID, QEMU_PID, UINT64_C(1) << 30, ready_vm, -ERANGE,
	  "1073741824 pages populated" },
	/* The pid checks come first: nobody learns about a VM with a forged HELLO. */
	{ "forged pid for an unknown VM", 1, QEMU_PID, 10, { 0 }, -EPERM, "says pid 1" },
};

static void test_admit(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(admits); i++) {
		char err[VMCG_HOOKS_REASON_MAX];
		VmcgHooksMsg m;
		Pkt p;
		int r;

		hello(&p, 1);
		p.hello.pid = admits[i].hello_pid;
		p.hello.populated = admits[i].populated;
		rb(&p, 0)->pages = MAX(admits[i].populated, 1);
		rb(&p, 0)->populated = admits[i].populated;
		g_assert_cmpint(parse(&p, 0, &m, NULL, 0), ==, 0);
		memset(err, 'X', sizeof(err));
		r = vmcg_hooks_admit(&m, admits[i].peer_pid, &admits[i].vm, err, sizeof(err));
		if (r != admits[i].error)
			g_error("%s: returned %d (%s), want %d", admits[i].what, r, err,
				admits[i].error);
		g_assert_nonnull(memchr(err, '\0', sizeof(err)));
		if (r && !strstr(err, admits[i].reason))
			g_error("%s: reason \"%s\" lacks \"%s\"", admits[i].what, err,
				admits[i].reason);
		if (!r)
			g_assert_cmpstr(err, ==, "");
		/* A tiny buffer still gets a terminated reason. */
		r = vmcg_hooks_admit(&m, admits[i].peer_pid, &admits[i].vm, err, 3);
		g_assert_cmpint(r, ==, admits[i].error);
		g_assert_cmpuint(strlen(err), <=, 2);
		g_assert_cmpint(vmcg_hooks_admit(&m, admits[i].peer_pid, &admits[i].vm, NULL, 0),
				==, admits[i].error);
	}
}

/* Charge a connection may reach: the VM's RAM plus twice the slack. */
static void test_charge_in_range(void)
{
	static const struct {
		uint64_t charged, more, ram, slack;
		bool ok;
	} t[] = {
		{ 0, 0, RAM_PAGES, 384, true },
		{ RAM_PAGES, 768, RAM_PAGES, 384, true },
		{ RAM_PAGES, 769, RAM_PAGES, 384, false },
		{ RAM_PAGES + 768, 0, RAM_PAGES, 384, true },
		{ RAM_PAGES + 769, 0, RAM_PAGES, 384, false },
		{ 100, 64, RAM_PAGES, 384, true },
		/* The 4 TiB of issue 9, as grants or as debt. */
		{ 0, UINT64_C(1) << 30, RAM_PAGES, 384, false },
		{ RAM_PAGES, 4096, RAM_PAGES, 384, false },
		/* Nothing wraps. */
		{ UINT64_MAX, 1, RAM_PAGES, 384, false },
		{ 1, UINT64_MAX, RAM_PAGES, 384, false },
		{ 0, UINT64_MAX, UINT64_MAX, UINT64_MAX, true },
		{ UINT64_MAX - 1, 1, UINT64_MAX - 10, 100, true },
		{ 0, 1, 0, 0, false },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(t); i++) {
		if (vmcg_hooks_charge_in_range(t[i].charged, t[i].more, t[i].ram, t[i].slack) !=
		    t[i].ok)
			g_error("case %zu: charged %" G_GUINT64_FORMAT " + %" G_GUINT64_FORMAT
				", RAM %" G_GUINT64_FORMAT ", slack %" G_GUINT64_FORMAT ": want %s",
				i, t[i].charged, t[i].more, t[i].ram, t[i].slack,
				t[i].ok ? "in range" : "out of range");
	}
}

/* QEMU asks for max(batch, need), need at most a chunk. */
static void test_refill_check(void)
{
	static const struct {
		uint32_t need, want, batch, chunk;
		int error;
	} t[] = {
		{ 0, 64, 64, 64, 0 },	       { 64, 64, 64, 64, 0 },
		{ 1, 64, 64, 512, 0 },	       { 512, 512, 64, 512, 0 },
		{ 0, 64, 64, 1, 0 },	       { 1, 64, 64, 1, 0 },
		{ 0, 65, 64, 64, -EPROTO },    { 65, 65, 64, 64, -EPROTO },
		{ 0, 4096, 64, 512, -EPROTO }, { 2, 64, 64, 1, -EPROTO },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(t); i++) {
		VmcgHooksRefill r = { .slot = 0, .need = t[i].need, .want = t[i].want };
		char err[128];
		int got;

		memset(err, 'X', sizeof(err));
		got = vmcg_hooks_refill_check(&r, t[i].batch, t[i].chunk, err, sizeof(err));
		if (got != t[i].error)
			g_error("need %u want %u, batch %u chunk %u: %d (%s), want %d", t[i].need,
				t[i].want, t[i].batch, t[i].chunk, got, err, t[i].error);
		g_assert_nonnull(memchr(err, '\0', sizeof(err)));
		g_assert_true(got ? err[0] != '\0' : err[0] == '\0');
	}
}

/* ------------------------------------------------------------------------
 * Connections before HELLO (issue 9, finding 2)
 */

static void test_admit_conn(void)
{
	static const struct {
		uint32_t pending, pending_uid;
		VmcgHooksAdmitConn want;
	} t[] = {
		{ 0, 0, VMCG_HOOKS_CONN_ACCEPT },
		{ VMCG_HOOKS_PENDING_MAX - 1, 0, VMCG_HOOKS_CONN_ACCEPT },
		{ VMCG_HOOKS_PENDING_MAX - 1, VMCG_HOOKS_PENDING_PER_UID_MAX - 1,
		  VMCG_HOOKS_CONN_ACCEPT },
		{ VMCG_HOOKS_PENDING_MAX, 0, VMCG_HOOKS_CONN_OVER_TOTAL },
		{ VMCG_HOOKS_PENDING_MAX, VMCG_HOOKS_PENDING_PER_UID_MAX,
		  VMCG_HOOKS_CONN_OVER_TOTAL },
		{ 20, VMCG_HOOKS_PENDING_PER_UID_MAX, VMCG_HOOKS_CONN_OVER_UID },
		{ UINT32_MAX, UINT32_MAX, VMCG_HOOKS_CONN_OVER_TOTAL },
	};

	/* The per-uid cap must leave room for other uids. */
	g_assert_cmpuint(VMCG_HOOKS_PENDING_PER_UID_MAX, <, VMCG_HOOKS_PENDING_MAX);
	for (size_t i = 0; i < G_N_ELEMENTS(t); i++)
		g_assert_cmpint(vmcg_hooks_admit_conn(t[i].pending, t[i].pending_uid), ==,
				t[i].want);
}

static void test_backoff(void)
{
	static const struct {
		uint32_t failures, msec;
	} t[] = {
		{ 1, 10 },   { 2, 20 },	   { 3, 40 },	   { 4, 80 },
		{ 5, 160 },  { 6, 320 },   { 7, 640 },	   { 8, 1000 },
		{ 9, 1000 }, { 64, 1000 }, { 1000, 1000 }, { UINT32_MAX, 1000 },
		{ 0, 10 },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(t); i++) {
		if (vmcg_hooks_backoff_msec(t[i].failures) != t[i].msec)
			g_error("%u failures: %u ms, want %u", t[i].failures,
				vmcg_hooks_backoff_msec(t[i].failures), t[i].msec);
	}
}

static void test_ratelimit(void)
{
	const uint64_t interval = 5000000;
	VmcgHooksRatelimit rl = { 0 };
	uint64_t missed = 99;
	uint64_t now = 1000;

	/* A burst of 3 lines, then silence, counted. */
	for (int i = 0; i < 3; i++) {
		g_assert_true(vmcg_hooks_ratelimit(&rl, now + i, interval, 3, &missed));
		g_assert_cmpuint(missed, ==, 0);
	}
	for (int i = 0; i < 1000; i++)
		g_assert_false(vmcg_hooks_ratelimit(&rl, now + 10 + i, interval, 3, &missed));
	/* Still in the interval. */
	g_assert_false(vmcg_hooks_ratelimit(&rl, now + interval - 1, interval, 3, &missed));
	/* The next interval lets lines through and says how many were dropped, once. */
	missed = 0;
	g_assert_true(vmcg_hooks_ratelimit(&rl, now + interval, interval, 3, &missed));
	g_assert_cmpuint(missed, ==, 1001);
	g_assert_true(vmcg_hooks_ratelimit(&rl, now + interval + 1, interval, 3, &missed));
	g_assert_cmpuint(missed, ==, 0);
	/* A clock at 0 and a clock going backwards do not wedge it. */
	rl = (VmcgHooksRatelimit){ 0 };
	g_assert_true(vmcg_hooks_ratelimit(&rl, 0, interval, 1, &missed));
	g_assert_false(vmcg_hooks_ratelimit(&rl, 0, interval, 1, &missed));
	g_assert_true(vmcg_hooks_ratelimit(&rl, interval + 1, interval, 1, &missed));
	g_assert_cmpuint(missed, ==, 1);
	g_assert_true(vmcg_hooks_ratelimit(&rl, 5, interval, 1, &missed));
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/hooks-proto/hello/one-block", test_hello_one);
	g_test_add_func("/hooks-proto/hello/32-blocks", test_hello_max);
	g_test_add_func("/hooks-proto/hello/edges", test_hello_edges);
	g_test_add_func("/hooks-proto/refill", test_refill);
	g_test_add_func("/hooks-proto/return", test_return);
	g_test_add_func("/hooks-proto/table-bases-valid", test_table_bases_are_valid);
	g_test_add_func("/hooks-proto/malformed", test_malformed);
	g_test_add_func("/hooks-proto/tiny-errlen", test_tiny_errlen);
	g_test_add_func("/hooks-proto/reads-only-len", test_reads_only_len);
	g_test_add_func("/hooks-proto/admit", test_admit);
	g_test_add_func("/hooks-proto/admit-conn", test_admit_conn);
	g_test_add_func("/hooks-proto/charge-in-range", test_charge_in_range);
	g_test_add_func("/hooks-proto/refill-check", test_refill_check);
	g_test_add_func("/hooks-proto/backoff", test_backoff);
	g_test_add_func("/hooks-proto/ratelimit", test_ratelimit);
	return g_test_run();
}
