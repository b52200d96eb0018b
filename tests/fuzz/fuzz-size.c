// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fuzz target: vmcg_size_parse() and vmcg_duration_parse() on arbitrary
 * strings (the input up to its first NUL).
 *
 * Each parser is checked against a reference written another way: a
 * regular expression for the syntax and 128-bit arithmetic for the value
 * (where the fraction is short enough for it to be exact). Then every
 * accepted value must survive format and parse unchanged, and the human
 * size must parse to within 5% (or past the limit, "8E").
 *
 * libFuzzer build (clang), e.g. from the source root:
 *   python3 daemon/embed.py config/vmcgd.conf /tmp/gen/vmcgd-conf.h
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -DVMCG_LIBFUZZER -D_GNU_SOURCE \
 *     -Iinclude -Idaemon -I/tmp/gen lib/[a-z]*.c daemon/config.c tests/fuzz/fuzz-size.c \
 *     $(pkg-config --cflags --libs glib-2.0) -lpthread -o fuzz-size
 *   mkdir -p /tmp/corpus && ./fuzz-size /tmp/corpus tests/fuzz/corpus/size
 * Without VMCG_LIBFUZZER, main() below replays files or directories of
 * inputs, which is how `meson test --suite fuzz` runs the corpus.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "vmcg/size.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef unsigned __int128 u128;

#define FAIL(...)                             \
	do {                                  \
		fprintf(stderr, __VA_ARGS__); \
		abort();                      \
	} while (0)

/* Digits to a u128; false past 2^127 (the reference then expects -ERANGE). */
static bool digits_u128(const char *s, size_t n, u128 *ret)
{
	u128 v = 0;

	for (size_t i = 0; i < n; i++) {
		if (v > ((u128)1 << 120))
			return false;
		v = v * 10 + (u128)(s[i] - '0');
	}
	*ret = v;
	return true;
}

/*
 * The reference for @s, split by a regex into whole, fraction and unit
 * multiplier: floor((whole + 0.frac) * mult). Returns 0 with the value,
 * -ERANGE above @limit, or 1 when it cannot say (a fraction too long for
 * exact 128-bit arithmetic).
 */
static int reference_value(const char *whole, size_t whole_len, const char *frac, size_t frac_len,
			   uint64_t mult, uint64_t limit, uint64_t *ret)
{
	u128 w, f = 0, pow10 = 1, v;

	if (!digits_u128(whole, whole_len, &w))
		return -ERANGE;
	if (w > (u128)limit)
		return -ERANGE; /* mult >= 1 */
	v = w * mult;
	if (frac_len) {
		/* f * mult < 10^18 * 2^60 < 2^120: exact. */
		if (frac_len > 18)
			return 1;
		digits_u128(frac, frac_len, &f);
		for (size_t i = 0; i < frac_len; i++)
			pow10 *= 10;
		v += f * mult / pow10;
	}
	if (v > (u128)limit)
		return -ERANGE;
	*ret = (uint64_t)v;
	return 0;
}

static void check_size(const char *s)
{
	static const char letters[] = "KMGTPE";
	static GRegex *re;
	g_autoptr(GMatchInfo) m = NULL;
	char buf[VMCG_SIZE_STRLEN];
	uint64_t v = 0, back = 0, want = 0;
	int r, want_r;

	if (!re)
		re = g_regex_new("^([0-9]+)(?:\\.([0-9]+))?([KMGTPE](?:iB|B)?|B)?\\z",
				 G_REGEX_RAW | G_REGEX_CASELESS, 0, NULL);

	r = vmcg_size_parse(s, &v);
	if (strcmp(s, "max") == 0) {
		want_r = 0;
		want = VMCG_SIZE_MAX;
	} else if (g_regex_match(re, s, 0, &m)) {
		gint ws, we, fs = -1, fe = -1, us = -1, ue = -1;
		uint64_t mult = 1;

		g_match_info_fetch_pos(m, 1, &ws, &we);
		g_match_info_fetch_pos(m, 2, &fs, &fe);
		g_match_info_fetch_pos(m, 3, &us, &ue);
		if (us >= 0 && ue > us && g_ascii_toupper(s[us]) != 'B')
			mult = UINT64_C(1)
			       << (10 * (strchr(letters, g_ascii_toupper(s[us])) - letters + 1));
		if (fs >= 0 && fe > fs && mult == 1)
			want_r = -EINVAL; /* a fraction needs a unit */
		else
			want_r = reference_value(s + ws, (size_t)(we - ws), s + fs,
						 fs >= 0 ? (size_t)(fe - fs) : 0, mult,
						 VMCG_SIZE_LIMIT, &want);
	} else {
		want_r = -EINVAL;
	}
	if (want_r != 1 && (r != want_r || (r == 0 && v != want)))
		FAIL("size \"%s\": %d %" PRIu64 ", reference %d %" PRIu64 "\n", s, r, v, want_r,
		     want);
	if (r != 0 && r != -EINVAL && r != -ERANGE)
		FAIL("size \"%s\": %d\n", s, r);
	if (r != 0)
		return;

	if (v > VMCG_SIZE_LIMIT && v != VMCG_SIZE_MAX)
		FAIL("size \"%s\": %" PRIu64 " is past the limit\n", s, v);
	if (vmcg_size_format(v, buf, sizeof(buf)) < 0 || vmcg_size_parse(buf, &back) < 0 ||
	    back != v)
		FAIL("size \"%s\" = %" PRIu64 " -> \"%s\" -> %" PRIu64 "\n", s, v, buf, back);
	if (vmcg_size_format_human(v, buf, sizeof(buf)) < 0)
		FAIL("size %" PRIu64 ": no human form\n", v);
	r = vmcg_size_parse(buf, &back);
	if (v == VMCG_SIZE_MAX || v < 1024) {
		if (r != 0 || back != v)
			FAIL("size %" PRIu64 ": human \"%s\" is not exact\n", v, buf);
	} else if (r == -ERANGE) {
		/* Rounded up past the limit: "8E". */
		if (v < VMCG_SIZE_LIMIT / 100 * 95)
			FAIL("size %" PRIu64 ": human \"%s\" is out of range\n", v, buf);
	} else if (r != 0) {
		FAIL("size %" PRIu64 ": human \"%s\" does not parse\n", v, buf);
	} else {
		double err = ((double)back - (double)v) / (double)v;

		if (err > 0.05 || err < -0.05)
			FAIL("size %" PRIu64 ": human \"%s\" is off by %.3f\n", v, buf, err);
	}
}

static void check_duration(const char *s)
{
	static const struct {
		const char *unit;
		uint64_t usec;
	} units[] = { { "us", 1 },
		      { "ms", 1000 },
		      { "s", 1000000 },
		      { "m", 60000000 },
		      { "h", UINT64_C(3600000000) } };
	static GRegex *re;
	g_autoptr(GMatchInfo) m = NULL;
	char buf[VMCG_DURATION_STRLEN];
	uint64_t v = 0, back = 0, want = 0;
	int r, want_r;

	if (!re)
		re = g_regex_new("^([0-9]+)(?:\\.([0-9]+))?(us|ms|s|m|h)\\z", G_REGEX_RAW, 0, NULL);

	r = vmcg_duration_parse(s, &v);
	if (strcmp(s, "0") == 0) {
		want_r = 0;
		want = 0;
	} else if (g_regex_match(re, s, 0, &m)) {
		gint ws, we, fs = -1, fe = -1, us, ue;
		uint64_t mult = 0;

		g_match_info_fetch_pos(m, 1, &ws, &we);
		g_match_info_fetch_pos(m, 2, &fs, &fe);
		g_match_info_fetch_pos(m, 3, &us, &ue);
		for (size_t i = 0; i < G_N_ELEMENTS(units); i++)
			if ((size_t)(ue - us) == strlen(units[i].unit) &&
			    memcmp(s + us, units[i].unit, (size_t)(ue - us)) == 0)
				mult = units[i].usec;
		want_r = reference_value(s + ws, (size_t)(we - ws), s + fs,
					 fs >= 0 ? (size_t)(fe - fs) : 0, mult, UINT64_MAX, &want);
	} else {
		want_r = -EINVAL;
	}
	if (want_r != 1 && (r != want_r || (r == 0 && v != want)))
		FAIL("duration \"%s\": %d %" PRIu64 ", reference %d %" PRIu64 "\n", s, r, v, want_r,
		     want);
	if (r != 0)
		return;
	if (vmcg_duration_format(v, buf, sizeof(buf)) < 0 || vmcg_duration_parse(buf, &back) < 0 ||
	    back != v)
		FAIL("duration \"%s\" = %" PRIu64 " -> \"%s\" -> %" PRIu64 "\n", s, v, buf, back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Sizes are short; past 256 bytes only the digit loops get longer. */
	g_autofree char *s = g_strndup((const char *)data, MIN(size, 256));

	check_size(s);
	check_duration(s);
	return 0;
}
