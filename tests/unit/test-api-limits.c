// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests for daemon/api-limits.c: one table per decision, each row
 * worked out by hand from the rule it names (api-limits.h). The numbers
 * are the daemon's: 128 connections, 32 of them kept for privileged
 * peers (96 shared), 16 per unprivileged uid.
 */
#include <errno.h>
#include <glib.h>

#include "api-limits.h"

#define CONN_MAX VMCG_API_CONNECTIONS_MAX
#define SHARED (VMCG_API_CONNECTIONS_MAX - VMCG_API_CONNECTIONS_RESERVED)
#define PER_UID VMCG_API_CONNECTIONS_PER_UID

static void test_admit(void)
{
	static const struct {
		const char *row;
		unsigned total, unprivileged, same_uid;
		bool privileged;
		VmcgApiAdmit want;
	} rows[] = {
		{ "empty, reader", 0, 0, 0, false, VMCG_API_ADMIT },
		{ "empty, root", 0, 0, 0, true, VMCG_API_ADMIT },
		{ "reader's 16th", 15, 15, 15, false, VMCG_API_ADMIT },
		{ "reader's 17th", 16, 16, 16, false, VMCG_API_REFUSE_PER_UID },
		{ "another reader beside a full one", 16, 16, 0, false, VMCG_API_ADMIT },
		{ "root beside a full reader", 16, 16, 0, true, VMCG_API_ADMIT },
		/* Root's own connections are not the readers' business. */
		{ "root holds 100: reader gets in", 100, 0, 0, false, VMCG_API_ADMIT },
		{ "shared pool's last", SHARED - 1, SHARED - 1, 3, false, VMCG_API_ADMIT },
		{ "shared pool full: reader", SHARED, SHARED, 0, false, VMCG_API_REFUSE_SHARED },
		{ "shared pool full: root", SHARED, SHARED, 0, true, VMCG_API_ADMIT },
		{ "shared full and uid full: the pool is named", SHARED, SHARED, PER_UID, false,
		  VMCG_API_REFUSE_SHARED },
		{ "reserved room's last", CONN_MAX - 1, SHARED, 0, true, VMCG_API_ADMIT },
		{ "all 128: root", CONN_MAX, SHARED, 0, true, VMCG_API_REFUSE_FULL },
		{ "all 128: reader", CONN_MAX, 10, 0, false, VMCG_API_REFUSE_FULL },
		{ "over (counts raced): root", CONN_MAX + 5, SHARED, 0, true,
		  VMCG_API_REFUSE_FULL },
	};

	g_assert_cmpint(SHARED, ==, 96);
	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		VmcgApiConnCounts c = { rows[i].total, rows[i].unprivileged, rows[i].same_uid };
		VmcgApiAdmit got = vmcg_api_admit(&c, rows[i].privileged);

		if (got != rows[i].want)
			g_test_fail_printf("%s: %s, want %s", rows[i].row, vmcg_api_admit_str(got),
					   vmcg_api_admit_str(rows[i].want));
	}
}

#define LIMIT 65536

static void test_content_length(void)
{
	static const struct {
		const char *row;
		const char *values[3];
		size_t n;
		bool chunked;
		int want;
		uint64_t want_len;
	} rows[] = {
		{ "none", { NULL }, 0, false, 0, 0 },
		{ "none, chunked (411)", { NULL }, 0, true, -ENOTSUP, 0 },
		{ "zero", { "0" }, 1, false, 0, 0 },
		{ "small", { "17" }, 1, false, 0, 17 },
		{ "blanks around", { " \t42 " }, 1, false, 0, 42 },
		{ "leading zeros", { "000123" }, 1, false, 0, 123 },
		{ "the limit", { "65536" }, 1, false, 0, LIMIT },
		{ "one over", { "65537" }, 1, false, -EFBIG, 0 },
		{ "2^63 (was negative as goffset)",
		  { "9223372036854775808" },
		  1,
		  false,
		  -EFBIG,
		  0 },
		{ "2^64 - 1", { "18446744073709551615" }, 1, false, -EFBIG, 0 },
		{ "2^64 (wraps to 0 in 64 bits)", { "18446744073709551616" }, 1, false, -EFBIG, 0 },
		{ "forty digits",
		  { "1234567890123456789012345678901234567890" },
		  1,
		  false,
		  -EFBIG,
		  0 },
		{ "forty digits then junk",
		  { "1234567890123456789012345678901234567890x" },
		  1,
		  false,
		  -EINVAL,
		  0 },
		{ "negative", { "-1" }, 1, false, -EINVAL, 0 },
		{ "plus sign", { "+5" }, 1, false, -EINVAL, 0 },
		{ "empty", { "" }, 1, false, -EINVAL, 0 },
		{ "blank", { "  " }, 1, false, -EINVAL, 0 },
		{ "hex", { "0x10" }, 1, false, -EINVAL, 0 },
		{ "list", { "5, 5" }, 1, false, -EINVAL, 0 },
		{ "blank inside", { "1 2" }, 1, false, -EINVAL, 0 },
		{ "two fields, equal", { "5", "5" }, 2, false, -EINVAL, 0 },
		{ "two fields, differ", { "2", "70000" }, 2, false, -EINVAL, 0 },
		{ "with Transfer-Encoding", { "5" }, 1, true, -EINVAL, 0 },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		uint64_t len = 777;
		int r = vmcg_api_content_length(rows[i].values, rows[i].n, rows[i].chunked, LIMIT,
						&len);

		if (r != rows[i].want)
			g_test_fail_printf("%s: returned %d, want %d", rows[i].row, r,
					   rows[i].want);
		else if (r == 0 && len != rows[i].want_len)
			g_test_fail_printf("%s: length %" G_GUINT64_FORMAT
					   ", want %" G_GUINT64_FORMAT,
					   rows[i].row, len, rows[i].want_len);
		else if (r < 0 && len != 777)
			g_test_fail_printf("%s: length set on failure", rows[i].row);
	}
}

/* A limit too small to hold one digit: never an overflow, whatever follows. */
static void test_content_length_tiny_limit(void)
{
	const char *nines[] = { "99999999999999999999999999" };
	const char *three[] = { "3" };
	uint64_t len = 0;

	g_assert_cmpint(vmcg_api_content_length(nines, 1, false, 5, &len), ==, -EFBIG);
	g_assert_cmpint(vmcg_api_content_length(three, 1, false, 5, &len), ==, 0);
	g_assert_cmpuint(len, ==, 3);
	g_assert_cmpint(vmcg_api_content_length(three, 1, false, 0, &len), ==, -EFBIG);
}

static void test_backoff(void)
{
	static const struct {
		unsigned prev, want;
	} rows[] = {
		{ 0, 10 },     { 10, 20 },     { 20, 40 }, { 40, 80 },	 { 320, 640 },
		{ 640, 1000 }, { 1000, 1000 }, { 5, 10 },  { 499, 998 }, { 500, 1000 },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		unsigned got = vmcg_api_backoff_next(rows[i].prev);

		if (got != rows[i].want)
			g_test_fail_printf("after %u ms: %u, want %u", rows[i].prev, got,
					   rows[i].want);
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/api-limits/admit", test_admit);
	g_test_add_func("/api-limits/content-length", test_content_length);
	g_test_add_func("/api-limits/content-length-tiny-limit", test_content_length_tiny_limit);
	g_test_add_func("/api-limits/backoff", test_backoff);
	return g_test_run();
}
