// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Sizes: the accepted syntax, every kind of malformed input, range limits
 * at their edges, exact and human formatting, and parse(format(x)) == x.
 */
#include <errno.h>
#include <inttypes.h>

#include "test-util.h"
#include "vmcg/size.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define TiB (UINT64_C(1) << 40)
#define PiB (UINT64_C(1) << 50)
#define EiB (UINT64_C(1) << 60)

static void check_parse(const char *s, int want_r, uint64_t want)
{
	uint64_t v = 0xdeadbeef;
	int r = vmcg_size_parse(s, &v);

	if (r != want_r)
		g_error("vmcg_size_parse(\"%s\") = %d, want %d", s, r, want_r);
	if (r == 0 && v != want)
		g_error("vmcg_size_parse(\"%s\") = %" PRIu64 ", want %" PRIu64, s, v, want);
	if (r < 0 && v != 0xdeadbeef)
		g_error("vmcg_size_parse(\"%s\") failed but set its result", s);
}

static void test_valid(void)
{
	static const struct {
		const char *s;
		uint64_t bytes;
	} cases[] = {
		{ "0", 0 },
		{ "1", 1 },
		{ "4096", 4096 },
		{ "4097", 4097 },
		{ "010", 10 }, /* decimal, not octal */
		{ "0000000000000000000000000000001", 1 },
		{ "512M", 512 * MiB },
		{ "512m", 512 * MiB },
		{ "512MB", 512 * MiB },
		{ "512Mb", 512 * MiB },
		{ "512MiB", 512 * MiB },
		{ "512mib", 512 * MiB },
		{ "512MIB", 512 * MiB },
		{ "1K", KiB },
		{ "1k", KiB },
		{ "1KB", KiB },
		{ "1KiB", KiB },
		{ "2G", 2 * GiB },
		{ "3T", 3 * TiB },
		{ "5P", 5 * PiB },
		{ "7E", 7 * EiB },
		{ "0G", 0 },
		{ "100B", 100 },
		{ "100b", 100 },
		{ "1.5G", GiB + GiB / 2 },
		{ "1.5g", GiB + GiB / 2 },
		{ "1.50G", GiB + GiB / 2 },
		{ "0.5K", 512 },
		{ "0.1K", 102 },    /* 102.4, truncated */
		{ "0.999K", 1022 }, /* 1022.976 */
		{ "1.000000000000000000000000000001K", 1024 },
		{ "0.0000000001K", 0 },
		{ "0.25T", TiB / 4 },
		{ "1.3G", 1395864371 },		   /* 1395864371.2 */
		{ "7.99E", 9211842821808707338u }, /* floor(7.99 * 2^60) */
		{ "max", VMCG_SIZE_MAX },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++)
		check_parse(cases[i].s, 0, cases[i].bytes);
}

static void test_malformed(void)
{
	static const char *const cases[] = {
		"",	  " ",	    "12 M", " 12M",  "12M ",   "12M\n", "\t1",	 "+1",	  "-1",
		"-0",	  "M",	    "K1",   "1KK",   "1KBB",   "1KiBx", "1Ki",	 "1i",	  "1iB",
		"1X",	  "1Z",	    "1Y",   "1e3",   "1E3",    "0x10",	"1_000", "1,000", "1'000",
		"1.",	  ".5G",    "1.G",  "1..5G", "1.5.5G", "1.5",	"1.5B",	 "1.5b",  "Max",
		"MAX",	  "max ",   " max", "maxM",  "max0",   "inf",	"1/2G",	 "½G",	  "１G",
		"1G\x01", "1\x7fG", "nan",  "0.",    "1 ",     "1.5 G", "1M B",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++)
		check_parse(cases[i], -EINVAL, 0);
	check_parse(NULL, -EINVAL, 0);
}

static void test_range(void)
{
	char buf[64];

	/* VMCG_SIZE_LIMIT itself is fine, one byte more is not. */
	g_snprintf(buf, sizeof(buf), "%" PRIu64, VMCG_SIZE_LIMIT);
	check_parse(buf, 0, VMCG_SIZE_LIMIT);
	g_snprintf(buf, sizeof(buf), "%" PRIu64, VMCG_SIZE_LIMIT + 1);
	check_parse(buf, -ERANGE, 0);
	g_snprintf(buf, sizeof(buf), "%" PRIu64 "K", VMCG_SIZE_LIMIT >> 10);
	check_parse(buf, 0, VMCG_SIZE_LIMIT);
	g_snprintf(buf, sizeof(buf), "%" PRIu64 "K", (VMCG_SIZE_LIMIT >> 10) + 1);
	check_parse(buf, -ERANGE, 0);

	/* Rounded up to pages, the largest size is still at most VMCG_PAGES_MAX. */
	g_assert_cmpuint((VMCG_SIZE_LIMIT + VMCG_PAGE_SIZE - 1) >> VMCG_PAGE_SHIFT, ==,
			 VMCG_PAGES_MAX);

	check_parse("8E", -ERANGE, 0);
	check_parse("7.9999999999E", 0, 9223372036739483657u); /* floor(7.9999999999 * 2^60) */
	check_parse("7.99999999999999999999E", -ERANGE, 0);
	check_parse("9000P", -ERANGE, 0);
	check_parse("8388607T", 0, 8388607 * TiB);
	check_parse("8388608T", -ERANGE, 0);
	check_parse("18446744073709551615", -ERANGE, 0); /* UINT64_MAX: that is "max" */
	check_parse("18446744073709551616", -ERANGE, 0); /* overflows 64 bits */
	check_parse("99999999999999999999999999999999999999", -ERANGE, 0);
	check_parse("18446744073709551616K", -ERANGE, 0);
	check_parse("16777216T", -ERANGE, 0); /* 2^64 bytes: shifts out of 64 bits */
	check_parse("17179869184G", -ERANGE, 0);

	/* Garbage after a huge number is a syntax error, not a range error. */
	check_parse("99999999999999999999999999X", -EINVAL, 0);
	check_parse("99999999999999999999999999.5", -EINVAL, 0);
}

static void check_format(uint64_t bytes, const char *want)
{
	char buf[VMCG_SIZE_STRLEN];

	g_assert_cmpint(vmcg_size_format(bytes, buf, sizeof(buf)), ==, 0);
	g_assert_cmpstr(buf, ==, want);
}

static void test_format(void)
{
	check_format(0, "0");
	check_format(1, "1");
	check_format(1023, "1023");
	check_format(1024, "1K");
	check_format(4097, "4097");
	check_format(4096 * 3, "12K");
	check_format(512 * MiB, "512M");
	check_format(1536 * MiB, "1536M");
	check_format(2 * GiB, "2G");
	check_format(GiB + 1, "1073741825");
	check_format(3 * TiB, "3T");
	check_format(5 * PiB, "5P");
	check_format(15 * EiB, "15E");
	check_format(VMCG_SIZE_LIMIT, "9007199254740988K");
	check_format(UINT64_MAX - 1, "18446744073709551614");
	check_format(VMCG_SIZE_MAX, "max");
}

static void test_format_nospc(void)
{
	char buf[VMCG_SIZE_STRLEN];

	g_assert_cmpint(vmcg_size_format(512 * MiB, buf, 5), ==, 0);
	g_assert_cmpstr(buf, ==, "512M");
	g_assert_cmpint(vmcg_size_format(512 * MiB, buf, 4), ==, -ENOSPC);
	g_assert_cmpstr(buf, ==, "");
	g_assert_cmpint(vmcg_size_format(VMCG_SIZE_MAX, buf, 3), ==, -ENOSPC);
	g_assert_cmpint(vmcg_size_format(0, buf, 1), ==, -ENOSPC);
	g_assert_cmpint(vmcg_size_format(0, NULL, 0), ==, -ENOSPC);
	g_assert_cmpint(vmcg_size_format_human(1536 * MiB, buf, 4), ==, -ENOSPC);
	g_assert_cmpint(vmcg_size_format_human(1536 * MiB, buf, 5), ==, 0);
	g_assert_cmpstr(buf, ==, "1.5G");
	g_assert_cmpint(vmcg_size_format_human(0, NULL, 0), ==, -ENOSPC);

	/* The longest outputs fit VMCG_SIZE_STRLEN. */
	g_assert_cmpint(vmcg_size_format(UINT64_MAX - 1, buf, sizeof(buf)), ==, 0);
	g_assert_cmpint(vmcg_size_format_human(UINT64_MAX - 1, buf, sizeof(buf)), ==, 0);
	g_assert_cmpstr(buf, ==, "16E");
}

static void check_human(uint64_t bytes, const char *want)
{
	char buf[VMCG_SIZE_STRLEN];

	g_assert_cmpint(vmcg_size_format_human(bytes, buf, sizeof(buf)), ==, 0);
	g_assert_cmpstr(buf, ==, want);
}

static void test_format_human(void)
{
	check_human(0, "0");
	check_human(512, "512");
	check_human(1023, "1023");
	check_human(1024, "1K");
	check_human(4097, "4K");
	check_human(1536, "1.5K");
	check_human(1536 * MiB, "1.5G");
	check_human(GiB + GiB / 20 - 1, "1G");	 /* 1.0499... */
	check_human(GiB + GiB / 20 + 1, "1.1G"); /* just above 1.05 */
	check_human(1536 + 51, "1.5K");		 /* 1.5498 */
	check_human(1536 + 52, "1.6K");		 /* 1.5508 */
	check_human(1024 + 51, "1K");		 /* 1.0498 */
	check_human(1024 + 52, "1.1K");		 /* 1.0508 */
	check_human(1048525, "1M");		 /* 1023.95K rounds into the next unit */
	check_human(1048524, "1023.9K");
	check_human(MiB - 1, "1M");
	check_human(999 * MiB, "999M");
	check_human(2 * GiB, "2G");
	check_human(VMCG_SIZE_LIMIT, "8E");
	check_human(UINT64_MAX - 1, "16E");
	check_human(VMCG_SIZE_MAX, "max");
}

/* parse(format(x)) == x for sizes of every shape, and format(parse(s)) is canonical. */
static void test_round_trip(void)
{
	static const uint64_t fixed[] = {
		0,
		1,
		4095,
		4096,
		4097,
		KiB,
		1536 * MiB,
		512 * MiB,
		2 * GiB,
		7 * EiB,
		VMCG_SIZE_LIMIT,
		VMCG_SIZE_LIMIT - 1,
		EiB - 1,
		PiB + 1,
		TiB * 3,
		GiB * 1023,
		VMCG_SIZE_MAX,
	};
	GRand *rand = g_rand_new_with_seed(42);
	unsigned rounds = 100000 / test_scale_div();

	for (size_t i = 0; i < G_N_ELEMENTS(fixed); i++) {
		char buf[VMCG_SIZE_STRLEN];
		uint64_t back;

		g_assert_cmpint(vmcg_size_format(fixed[i], buf, sizeof(buf)), ==, 0);
		g_assert_cmpint(vmcg_size_parse(buf, &back), ==, 0);
		g_assert_cmpuint(back, ==, fixed[i]);
	}
	for (unsigned i = 0; i < rounds; i++) {
		/* A random mantissa shifted by a random amount: exercises every unit. */
		uint64_t m = ((uint64_t)g_rand_int(rand) << 32 | g_rand_int(rand)) >>
			     g_rand_int_range(rand, 0, 64);
		uint64_t x = (m << g_rand_int_range(rand, 0, 61)) % (VMCG_SIZE_LIMIT + 1);
		char buf[VMCG_SIZE_STRLEN], human[VMCG_SIZE_STRLEN];
		uint64_t back, approx;

		g_assert_cmpint(vmcg_size_format(x, buf, sizeof(buf)), ==, 0);
		g_assert_cmpint(vmcg_size_parse(buf, &back), ==, 0);
		g_assert_cmpuint(back, ==, x);

		/*
		 * The human form parses, and is within 5%; it may round up
		 * past the limit ("8E"), where parsing says -ERANGE.
		 */
		g_assert_cmpint(vmcg_size_format_human(x, human, sizeof(human)), ==, 0);
		if (vmcg_size_parse(human, &approx) == -ERANGE) {
			g_assert_cmpuint(x, >, VMCG_SIZE_LIMIT / 100 * 95);
			continue;
		}
		if (x >= 1024) {
			double err = ((double)approx - (double)x) / (double)x;

			if (err > 0.05 || err < -0.05)
				g_error("human(%" PRIu64 ") = %s, off by %.3f", x, human, err);
		} else {
			g_assert_cmpuint(approx, ==, x);
		}
	}
	g_rand_free(rand);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/size/valid", test_valid);
	g_test_add_func("/size/malformed", test_malformed);
	g_test_add_func("/size/range", test_range);
	g_test_add_func("/size/format", test_format);
	g_test_add_func("/size/format-nospc", test_format_nospc);
	g_test_add_func("/size/format-human", test_format_human);
	g_test_add_func("/size/round-trip", test_round_trip);
	return g_test_run();
}
