// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests for daemon/channel-proto.c: the guest pressure channel
 * (docs/guest-channel.md). One table of guest lines, well-formed and not,
 * each with the drop it must get; the line splitter on cuts and overlong
 * lines; the host's messages parsed back; the rate, flood and malformed
 * rules on a fake clock.
 */
#include <string.h>

#include <glib.h>

#include "channel-proto.h"
#include "json-util.h"

#define MIB(x) ((uint64_t)(x) << 20)
#define SEC(x) ((uint64_t)(x)*G_USEC_PER_SEC)
#define MS(x) ((uint64_t)(x)*1000)
#define RAM MIB(512)

#define GOOD_REPORT                                                                          \
	"{\"type\":\"report\",\"seq\":7,\"psi\":{\"some\":{\"avg10\":2.5,\"total\":123456}," \
	"\"full\":{\"avg10\":0.75,\"total\":45678}},"                                        \
	"\"mem\":{\"available\":201326592,\"file\":67108864,\"anon\":100663296}}"

static const struct {
	const char *name;
	const char *line;
	VmcgChannelDrop want;
} parse_rows[] = {
	/* well-formed */
	{ "hello", "{\"type\":\"hello\",\"version\":1,\"agent\":\"vmcg-guest-agent 0.3\"}",
	  VMCG_CHANNEL_DROP_NONE },
	{ "hello no agent", "{\"type\":\"hello\",\"version\":1}", VMCG_CHANNEL_DROP_NONE },
	{ "hello v2 (the caller decides)", "{\"type\":\"hello\",\"version\":2}",
	  VMCG_CHANNEL_DROP_NONE },
	{ "hello unknown member", "{\"type\":\"hello\",\"version\":1,\"x\":[1,{}]}",
	  VMCG_CHANNEL_DROP_NONE },
	{ "report", GOOD_REPORT, VMCG_CHANNEL_DROP_NONE },
	{ "report spaces and CR", "  " GOOD_REPORT " \r", VMCG_CHANNEL_DROP_NONE },
	{ "report no psi", "{\"type\":\"report\",\"seq\":1,\"mem\":{\"available\":1}}",
	  VMCG_CHANNEL_DROP_NONE },
	{ "report no mem", "{\"type\":\"report\",\"seq\":1}", VMCG_CHANNEL_DROP_NONE },
	{ "report integer avg10",
	  "{\"type\":\"report\",\"seq\":1,\"psi\":{\"some\":{\"avg10\":100,\"total\":0},"
	  "\"full\":{\"avg10\":0,\"total\":0}}}",
	  VMCG_CHANNEL_DROP_NONE },
	{ "report size = RAM", "{\"type\":\"report\",\"seq\":1,\"mem\":{\"anon\":536870912}}",
	  VMCG_CHANNEL_DROP_NONE },
	/* malformed */
	{ "empty", "", VMCG_CHANNEL_DROP_MALFORMED },
	{ "junk", "hello there", VMCG_CHANNEL_DROP_MALFORMED },
	{ "array", "[1,2]", VMCG_CHANNEL_DROP_MALFORMED },
	{ "scalar", "42", VMCG_CHANNEL_DROP_MALFORMED },
	{ "two objects", "{\"type\":\"hello\",\"version\":1}{}", VMCG_CHANNEL_DROP_MALFORMED },
	{ "truncated", "{\"type\":\"hello\",\"version\":", VMCG_CHANNEL_DROP_MALFORMED },
	{ "no type", "{\"version\":1}", VMCG_CHANNEL_DROP_MALFORMED },
	{ "type not a string", "{\"type\":1}", VMCG_CHANNEL_DROP_MALFORMED },
	{ "NaN", "{\"type\":\"report\",\"seq\":1,\"psi\":NaN}", VMCG_CHANNEL_DROP_MALFORMED },
	{ "single quotes", "{'type':'hello'}", VMCG_CHANNEL_DROP_MALFORMED },
	{ "bad utf-8", "{\"type\":\"hello\",\"version\":1,\"agent\":\"\xc0\xaf\"}",
	  VMCG_CHANNEL_DROP_MALFORMED },
	{ "too deep", "{\"type\":\"x\",\"a\":[[[[[[[[[[1]]]]]]]]]]}", VMCG_CHANNEL_DROP_MALFORMED },
	{ "hello no version", "{\"type\":\"hello\"}", VMCG_CHANNEL_DROP_MALFORMED },
	{ "hello version string", "{\"type\":\"hello\",\"version\":\"1\"}",
	  VMCG_CHANNEL_DROP_MALFORMED },
	{ "hello agent not string", "{\"type\":\"hello\",\"version\":1,\"agent\":5}",
	  VMCG_CHANNEL_DROP_MALFORMED },
	{ "hello agent 65 bytes",
	  "{\"type\":\"hello\",\"version\":1,\"agent\":"
	  "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
	  VMCG_CHANNEL_DROP_MALFORMED },
	{ "hello agent control char", "{\"type\":\"hello\",\"version\":1,\"agent\":\"a\\u001bb\"}",
	  VMCG_CHANNEL_DROP_MALFORMED },
	{ "report no seq", "{\"type\":\"report\"}", VMCG_CHANNEL_DROP_MALFORMED },
	{ "report negative seq", "{\"type\":\"report\",\"seq\":-1}", VMCG_CHANNEL_DROP_MALFORMED },
	{ "report seq float", "{\"type\":\"report\",\"seq\":1.5}", VMCG_CHANNEL_DROP_MALFORMED },
	{ "report psi not object", "{\"type\":\"report\",\"seq\":1,\"psi\":3}",
	  VMCG_CHANNEL_DROP_MALFORMED },
	{ "report psi no full",
	  "{\"type\":\"report\",\"seq\":1,\"psi\":{\"some\":{\"avg10\":1,\"total\":1}}}",
	  VMCG_CHANNEL_DROP_MALFORMED },
	{ "report avg10 string",
	  "{\"type\":\"report\",\"seq\":1,\"psi\":{\"some\":{\"avg10\":\"1\",\"total\":1},"
	  "\"full\":{\"avg10\":0,\"total\":0}}}",
	  VMCG_CHANNEL_DROP_MALFORMED },
	{ "report total missing",
	  "{\"type\":\"report\",\"seq\":1,\"psi\":{\"some\":{\"avg10\":1},"
	  "\"full\":{\"avg10\":0,\"total\":0}}}",
	  VMCG_CHANNEL_DROP_MALFORMED },
	{ "report mem not object", "{\"type\":\"report\",\"seq\":1,\"mem\":[]}",
	  VMCG_CHANNEL_DROP_MALFORMED },
	{ "report size string", "{\"type\":\"report\",\"seq\":1,\"mem\":{\"file\":\"1G\"}}",
	  VMCG_CHANNEL_DROP_MALFORMED },
	{ "report size negative", "{\"type\":\"report\",\"seq\":1,\"mem\":{\"file\":-1}}",
	  VMCG_CHANNEL_DROP_MALFORMED },
	{ "integer past 64 bits", "{\"type\":\"report\",\"seq\":99999999999999999999}",
	  VMCG_CHANNEL_DROP_MALFORMED },
	/* out of bounds */
	{ "avg10 above 100",
	  "{\"type\":\"report\",\"seq\":1,\"psi\":{\"some\":{\"avg10\":100.5,\"total\":1},"
	  "\"full\":{\"avg10\":0,\"total\":0}}}",
	  VMCG_CHANNEL_DROP_BOUNDS },
	{ "avg10 negative",
	  "{\"type\":\"report\",\"seq\":1,\"psi\":{\"some\":{\"avg10\":1,\"total\":1},"
	  "\"full\":{\"avg10\":-0.5,\"total\":0}}}",
	  VMCG_CHANNEL_DROP_BOUNDS },
	{ "available above RAM",
	  "{\"type\":\"report\",\"seq\":1,\"mem\":{\"available\":536870913}}",
	  VMCG_CHANNEL_DROP_BOUNDS },
	{ "anon 2^64-1", "{\"type\":\"report\",\"seq\":1,\"mem\":{\"anon\":18446744073709551615}}",
	  VMCG_CHANNEL_DROP_BOUNDS },
	/* unknown */
	{ "unknown type", "{\"type\":\"pressure\",\"level\":\"low\"}", VMCG_CHANNEL_DROP_UNKNOWN },
};

static void test_parse(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(parse_rows); i++) {
		VmcgChannelMsg m;
		char err[256] = "";
		VmcgChannelDrop r =
			vmcg_channel_parse(parse_rows[i].line, strlen(parse_rows[i].line), RAM,
					   NULL, &m, err, sizeof(err));

		if (r != parse_rows[i].want)
			g_error("%s: got %s (%s), want %s", parse_rows[i].name,
				vmcg_channel_drop_to_string(r), err,
				vmcg_channel_drop_to_string(parse_rows[i].want));
		if (r)
			g_assert_cmpstr(err, !=, "");
	}
}

static void test_parse_values(void)
{
	VmcgChannelMsg m;
	VmcgChannelReport last;

	g_assert_cmpint(
		vmcg_channel_parse(GOOD_REPORT, strlen(GOOD_REPORT), RAM, NULL, &m, NULL, 0), ==,
		VMCG_CHANNEL_DROP_NONE);
	g_assert_cmpint(m.type, ==, VMCG_CHANNEL_MSG_REPORT);
	g_assert_cmpuint(m.report.seq, ==, 7);
	g_assert_true(m.report.has_psi);
	g_assert_cmpuint(m.report.some_avg10_centi, ==, 250);
	g_assert_cmpuint(m.report.full_avg10_centi, ==, 75);
	g_assert_cmpuint(m.report.some_total_usec, ==, 123456);
	g_assert_cmpuint(m.report.full_total_usec, ==, 45678);
	g_assert_true(m.report.has_available && m.report.has_file && m.report.has_anon);
	g_assert_cmpuint(m.report.available, ==, 201326592);

	/* A total that goes backwards against the last report: bounds. */
	last = m.report;
	last.some_total_usec = 123457;
	g_assert_cmpint(
		vmcg_channel_parse(GOOD_REPORT, strlen(GOOD_REPORT), RAM, &last, &m, NULL, 0), ==,
		VMCG_CHANNEL_DROP_BOUNDS);
	/* Equal is fine (no stall since). */
	last.some_total_usec = 123456;
	g_assert_cmpint(
		vmcg_channel_parse(GOOD_REPORT, strlen(GOOD_REPORT), RAM, &last, &m, NULL, 0), ==,
		VMCG_CHANNEL_DROP_NONE);
	/* RAM unknown: no size bound. */
	{
		const char *big = "{\"type\":\"report\",\"seq\":1,\"mem\":{\"file\":99999999999}}";

		g_assert_cmpint(vmcg_channel_parse(big, strlen(big), 0, NULL, &m, NULL, 0), ==,
				VMCG_CHANNEL_DROP_NONE);
	}

	{
		const char *h = "{\"type\":\"hello\",\"version\":1,\"agent\":\"a b\"}";

		g_assert_cmpint(vmcg_channel_parse(h, strlen(h), RAM, NULL, &m, NULL, 0), ==,
				VMCG_CHANNEL_DROP_NONE);
	}
	g_assert_cmpint(m.type, ==, VMCG_CHANNEL_MSG_HELLO);
	g_assert_cmpint(m.version, ==, 1);
	g_assert_cmpstr(m.agent, ==, "a b");
}

/* Whatever the cuts, the same lines come out; an overlong line comes out once. */
static void test_lines(void)
{
	GString *in = g_string_new(NULL);
	g_autofree char *big = g_strnfill(VMCG_CHANNEL_LINE_MAX * 3, 'x');
	g_autofree char *fits = g_strnfill(VMCG_CHANNEL_LINE_MAX - 1, 'y');
	g_autofree char *over = g_strnfill(VMCG_CHANNEL_LINE_MAX, 'z');
	const size_t cuts[] = { 1, 2, 7, 100, 4095, 4096, 5000, 1 << 16 };

	g_string_append(in, "a\n\nbb\n");
	g_string_append(in, big);
	g_string_append(in, "\nccc\n");
	g_string_append(in, fits); /* 4095 + newline: exactly the limit */
	g_string_append(in, "\n");
	g_string_append(in, over); /* 4096 + newline: one over */
	g_string_append(in, "\ndd\npartial");

	for (size_t c = 0; c < G_N_ELEMENTS(cuts); c++) {
		VmcgChannelLines l;
		GString *got = g_string_new(NULL);

		vmcg_channel_lines_reset(&l);
		for (size_t off = 0; off < in->len;) {
			size_t n = MIN(cuts[c], in->len - off), used;

			while (n) {
				const char *line;
				size_t len;
				VmcgChannelLine r = vmcg_channel_lines_feed(&l, in->str + off, n,
									    &used, &line, &len);

				if (r == VMCG_CHANNEL_LINE_OK)
					g_string_append_printf(got, "[%zu:%c]", len,
							       len ? line[0] : '-');
				else if (r == VMCG_CHANNEL_LINE_TOO_LONG)
					g_string_append(got, "[long]");
				off += used;
				n -= used;
			}
		}
		g_assert_cmpstr(got->str, ==, "[1:a][0:-][2:b][long][3:c][4095:y][long][2:d]");
		g_assert_cmpuint(l.len, ==, 7); /* "partial" waits for its newline */
		g_string_free(got, TRUE);
	}
	g_string_free(in, TRUE);
}

/* The host's messages are one line each, and parse back as the contract says. */
static void test_build(void)
{
	g_autofree char *h = vmcg_channel_build_hello("web\"1", 1000);
	g_autofree char *c = vmcg_channel_build_config(500);
	g_autofree char *p = vmcg_channel_build_pressure(VMCG_VMPRESSURE_MEDIUM, 42,
							 "/tenants/acme", MIB(256), 5000);
	g_autofree char *z = vmcg_channel_build_pressure(VMCG_VMPRESSURE_NONE, 1, "/", 0, 5000);
	g_autoptr(json_object) o = NULL;

	g_assert_true(g_str_has_suffix(h, "\n") && !strchr(h, '\n')[1]);
	g_assert_cmpstr(h, ==,
			"{\"type\":\"hello\",\"version\":1,\"vm\":\"web\\\"1\",\"report-interval-"
			"ms\":1000}\n");
	g_assert_cmpstr(c, ==, "{\"type\":\"config\",\"report-interval-ms\":500}\n");
	g_assert_cmpstr(
		p, ==,
		"{\"type\":\"pressure\",\"level\":\"medium\",\"seq\":42,\"group\":\"/tenants/"
		"acme\",\"reclaim-bytes\":268435456,\"reclaim-within-ms\":5000}\n");
	/* No reclaim: no deadline either. */
	g_assert_nonnull(strstr(z, "\"reclaim-bytes\":0,\"reclaim-within-ms\":0}"));
	o = json_tokener_parse(p);
	g_assert_nonnull(o);
}

/* More than 20 messages in a second mute for 30 s; a new second starts over. */
static void test_flood(void)
{
	VmcgChannelRate r = { 0 };
	uint64_t t = SEC(100);

	for (int i = 0; i < VMCG_CHANNEL_FLOOD_MSGS; i++)
		g_assert_cmpint(vmcg_channel_rate_message(&r, t + MS(i * 40)), ==,
				VMCG_CHANNEL_PASS);
	/* A new window: 20 more pass. */
	t += SEC(1);
	for (int i = 0; i < VMCG_CHANNEL_FLOOD_MSGS; i++)
		g_assert_cmpint(vmcg_channel_rate_message(&r, t + MS(i)), ==, VMCG_CHANNEL_PASS);
	g_assert_cmpint(vmcg_channel_rate_message(&r, t + MS(20)), ==, VMCG_CHANNEL_MUTED_NOW);
	g_assert_true(vmcg_channel_rate_muted(&r, t + MS(21)));
	g_assert_cmpint(vmcg_channel_rate_message(&r, t + SEC(29)), ==, VMCG_CHANNEL_MUTED);
	g_assert_cmpint(vmcg_channel_rate_malformed(&r, t + SEC(29)), ==, VMCG_CHANNEL_MUTED);
	/* 30 s after: clean again, with a fresh window. */
	g_assert_false(vmcg_channel_rate_muted(&r, t + MS(20) + SEC(30) + 1));
	for (int i = 0; i < VMCG_CHANNEL_FLOOD_MSGS; i++)
		g_assert_cmpint(vmcg_channel_rate_message(&r, t + SEC(31) + MS(i)), ==,
				VMCG_CHANNEL_PASS);
}

/* 16 malformed in a minute mute; 15, then a new minute, do not. */
static void test_malformed(void)
{
	VmcgChannelRate r = { 0 };
	uint64_t t = SEC(100);

	for (int i = 0; i < VMCG_CHANNEL_BAD_MSGS - 1; i++)
		g_assert_cmpint(vmcg_channel_rate_malformed(&r, t + SEC(i * 3)), ==,
				VMCG_CHANNEL_PASS);
	t += SEC(60);
	for (int i = 0; i < VMCG_CHANNEL_BAD_MSGS - 1; i++)
		g_assert_cmpint(vmcg_channel_rate_malformed(&r, t + SEC(i)), ==, VMCG_CHANNEL_PASS);
	g_assert_cmpint(vmcg_channel_rate_malformed(&r, t + SEC(20)), ==, VMCG_CHANNEL_MUTED_NOW);
	g_assert_true(vmcg_channel_rate_muted(&r, t + SEC(49)));
	g_assert_false(vmcg_channel_rate_muted(&r, t + SEC(51)));
	/* Drop kinds that count toward it. */
	g_assert_true(vmcg_channel_drop_is_malformed(VMCG_CHANNEL_DROP_MALFORMED));
	g_assert_true(vmcg_channel_drop_is_malformed(VMCG_CHANNEL_DROP_TOO_LONG));
	g_assert_true(vmcg_channel_drop_is_malformed(VMCG_CHANNEL_DROP_BOUNDS));
	g_assert_false(vmcg_channel_drop_is_malformed(VMCG_CHANNEL_DROP_UNKNOWN));
	g_assert_false(vmcg_channel_drop_is_malformed(VMCG_CHANNEL_DROP_RATE));
}

/* Reports: at the asked rate all pass, jitter passes, twice the rate and more is cut. */
static void test_report_rate(void)
{
	static const struct {
		const char *name;
		uint64_t period_ms, jitter_ms;
		int n, want_min, want_max; /* how many of n pass */
	} rows[] = {
		{ "at the rate", 1000, 0, 50, 50, 50 },
		{ "jittery at the rate", 1000, 400, 50, 50, 50 },
		{ "at 1.5x", 667, 0, 60, 60, 60 },
		/* At 4x: a burst of 2, then 2 per interval, so about half. */
		{ "at 4x", 250, 0, 80, 40, 42 },
		{ "at 100x", 10, 0, 1000, 20, 22 },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		VmcgChannelRate r = { 0 };
		int passed = 0;

		for (int k = 0; k < rows[i].n; k++) {
			uint64_t t = SEC(100) + MS(k * rows[i].period_ms) +
				     ((k % 2) ? MS(rows[i].jitter_ms) : 0);

			passed += vmcg_channel_rate_report(&r, t, SEC(1));
		}
		if (passed < rows[i].want_min || passed > rows[i].want_max)
			g_error("%s: %d of %d passed, want %d..%d", rows[i].name, passed, rows[i].n,
				rows[i].want_min, rows[i].want_max);
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/channel-proto/parse", test_parse);
	g_test_add_func("/channel-proto/parse-values", test_parse_values);
	g_test_add_func("/channel-proto/lines", test_lines);
	g_test_add_func("/channel-proto/build", test_build);
	g_test_add_func("/channel-proto/flood", test_flood);
	g_test_add_func("/channel-proto/malformed", test_malformed);
	g_test_add_func("/channel-proto/report-rate", test_report_rate);
	return g_test_run();
}
