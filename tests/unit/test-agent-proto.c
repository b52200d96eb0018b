// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests for guest/agent-proto.c, the pure parts of vmcg-guest-agent:
 *  - every host message of docs/guest-channel.md, with unknown members
 *    ignored and defaults; malformed lines refused with -EBADMSG (not JSON,
 *    two objects, trailing bytes, a NUL, invalid UTF-8, no type, wrong
 *    member types, 1.0 for an integer, out-of-bounds values, too deep),
 *    -ENOMSG for an unknown type, -EMSGSIZE at the line bound;
 *  - the line framer: split reads, oversized lines skipped and reported
 *    once, the exact bound;
 *  - hello and report formatting, parsed back as JSON;
 *  - /proc/pressure/memory and /proc/meminfo, real and malformed;
 *  - the config file, good and bad lines with their line numbers.
 */
#include <errno.h>
#include <glib.h>
#include <json-c/json.h>
#include <string.h>

#include "agent-proto.h"

/* A string literal and its length. */
#define LIT(s) s, sizeof(s) - 1

static int parse(const char *s, VmcgAgentMsg *m)
{
	return vmcg_agent_msg_parse(s, strlen(s), m);
}

static void test_msg_good(void)
{
	VmcgAgentMsg m;

	g_assert_cmpint(parse("{\"type\":\"hello\",\"version\":1,\"vm\":\"web1\","
			      "\"report-interval-ms\":500}",
			      &m),
			==, 0);
	g_assert_cmpint(m.type, ==, VMCG_AGENT_MSG_HELLO);
	g_assert_cmpint(m.version, ==, 1);
	g_assert_cmpstr(m.vm, ==, "web1");
	g_assert_cmpuint(m.report_interval_ms, ==, 500);

	/* Defaults, unknown members of any shape, a later major version. */
	g_assert_cmpint(parse(" {\"type\":\"hello\",\"version\":2,\"x\":{\"y\":[1,2,{}]}}\r", &m),
			==, 0);
	g_assert_cmpint(m.version, ==, 2);
	g_assert_cmpstr(m.vm, ==, "");
	g_assert_cmpuint(m.report_interval_ms, ==, VMCG_AGENT_INTERVAL_DEFAULT_MS);

	g_assert_cmpint(parse("{\"type\":\"pressure\",\"level\":\"medium\",\"seq\":42,"
			      "\"group\":\"/tenants/acme\",\"reclaim-bytes\":268435456,"
			      "\"reclaim-within-ms\":5000}",
			      &m),
			==, 0);
	g_assert_cmpint(m.type, ==, VMCG_AGENT_MSG_PRESSURE);
	g_assert_cmpint(m.level, ==, VMCG_AGENT_LEVEL_MEDIUM);
	g_assert_cmpuint(m.seq, ==, 42);
	g_assert_cmpuint(m.reclaim_bytes, ==, 268435456);
	g_assert_cmpuint(m.reclaim_within_ms, ==, 5000);
	g_assert_cmpstr(m.group, ==, "/tenants/acme");

	g_assert_cmpint(parse("{\"seq\":0,\"level\":\"critical\",\"type\":\"pressure\"}", &m), ==,
			0);
	g_assert_cmpint(m.level, ==, VMCG_AGENT_LEVEL_CRITICAL);
	g_assert_cmpuint(m.reclaim_bytes, ==, 0);

	/* A host string is kept printable for the logs. */
	g_assert_cmpint(parse("{\"type\":\"hello\",\"version\":1,\"vm\":\"a\\u0007b\\nc\"}", &m),
			==, 0);
	g_assert_cmpstr(m.vm, ==, "a_b_c");
	g_assert_cmpint(
		parse("{\"type\":\"hello\",\"version\":1,\"vm\":\"\xc3\xa9\xf0\x9f\x90\xb1\"}", &m),
		==, 0);
	g_assert_cmpstr(m.vm, ==, "______");

	g_assert_cmpint(parse("{\"type\":\"config\",\"report-interval-ms\":100}", &m), ==, 0);
	g_assert_cmpint(m.type, ==, VMCG_AGENT_MSG_CONFIG);
	g_assert_cmpuint(m.report_interval_ms, ==, 100);
	g_assert_cmpint(parse("{\"type\":\"config\",\"report-interval-ms\":60000}", &m), ==, 0);
}

static void test_msg_bad(void)
{
	static const char *const bad[] = {
		"",
		" ",
		"x",
		"null",
		"[]",
		"\"hello\"",
		"{",
		"{}",
		"{\"type\":1}",
		"{\"type\":null}",
		"{\"type\":\"hello\"}",			  /* no version */
		"{\"type\":\"hello\",\"version\":\"1\"}", /* a string */
		"{\"type\":\"hello\",\"version\":1.0}",	  /* not an integer */
		"{\"type\":\"hello\",\"version\":-1}",
		"{\"type\":\"hello\",\"version\":1,\"vm\":7}",
		"{\"type\":\"hello\",\"version\":1,\"report-interval-ms\":99}",
		"{\"type\":\"hello\",\"version\":1,\"report-interval-ms\":60001}",
		"{\"type\":\"hello\",\"version\":1}{\"type\":\"hello\",\"version\":1}",
		"{\"type\":\"hello\",\"version\":1} x",
		"{\"type\":\"hello\",\"version\":1,}", /* strict: no trailing comma */
		"{'type':'hello','version':1}",	       /* strict: no single quotes */
		"{\"type\":\"hello\",\"version\":01}",
		"{\"type\":\"hello\",\"version\":NaN}",
		"{\"type\":\"pressure\",\"seq\":1}", /* no level */
		"{\"type\":\"pressure\",\"level\":\"high\",\"seq\":1}",
		"{\"type\":\"pressure\",\"level\":\"low\"}", /* no seq */
		"{\"type\":\"pressure\",\"level\":\"low\",\"seq\":1,\"reclaim-bytes\":-1}",
		"{\"type\":\"pressure\",\"level\":\"low\",\"seq\":1,\"reclaim-bytes\":1e3}",
		"{\"type\":\"pressure\",\"level\":\"low\",\"seq\":18446744073709551616}",
		"{\"type\":\"pressure\",\"level\":\"low\",\"seq\":9223372036854775808}",
		"{\"type\":\"pressure\",\"level\":\"low\",\"seq\":1,\"group\":[]}",
		"{\"type\":\"pressure\",\"level\":\"LOW\",\"seq\":1}",
		"{\"type\":\"config\"}",
		"{\"type\":\"config\",\"report-interval-ms\":0}",
		"{\"type\":\"hello\",\"version\":1,\"vm\":\"\xff\"}",	      /* invalid UTF-8 */
		"{\"type\":\"hello\",\"version\":1,\"vm\":\"\xc0\xaf\"}",     /* overlong */
		"{\"type\":\"hello\",\"version\":1,\"vm\":\"\xed\xa0\x80\"}", /* surrogate */
		"{\"type\":\"hello\",\"version\":1,\"vm\":\"\xe2\x82\"}",     /* cut short */
	};
	VmcgAgentMsg m;

	for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
		int r = parse(bad[i], &m);

		if (r != -EBADMSG)
			g_error("%s: %d, want -EBADMSG", bad[i], r);
	}
	/* A NUL inside the line. */
	g_assert_cmpint(vmcg_agent_msg_parse("{\"type\":\"config\"}\0x", 19, &m), ==, -EBADMSG);
	/* Deeper than 16. */
	{
		GString *s = g_string_new("{\"type\":\"config\",\"report-interval-ms\":100,\"x\":");
		for (int i = 0; i < 20; i++)
			g_string_append_c(s, '[');
		for (int i = 0; i < 20; i++)
			g_string_append_c(s, ']');
		g_string_append_c(s, '}');
		g_assert_cmpint(parse(s->str, &m), ==, -EBADMSG);
		g_string_free(s, TRUE);
	}
	g_assert_cmpint(parse("{\"type\":\"bye\"}", &m), ==, -ENOMSG);
	g_assert_cmpint(parse("{\"type\":\"report\",\"seq\":1}", &m), ==, -ENOMSG);
}

static void test_msg_size(void)
{
	/* 4095 bytes plus the newline is the largest line; 4096 is too long. */
	GString *s = g_string_new("{\"type\":\"config\",\"report-interval-ms\":100,\"pad\":\"");
	VmcgAgentMsg m;

	while (s->len < VMCG_AGENT_LINE_MAX - 3)
		g_string_append_c(s, 'a');
	g_string_append(s, "\"}");
	g_assert_cmpuint(s->len, ==, VMCG_AGENT_LINE_MAX - 1);
	g_assert_cmpint(vmcg_agent_msg_parse(s->str, s->len, &m), ==, 0);
	g_string_insert_c(s, 50, 'a');
	g_assert_cmpint(vmcg_agent_msg_parse(s->str, s->len, &m), ==, -EMSGSIZE);
	g_string_free(s, TRUE);
}

typedef struct {
	GPtrArray *lines;
	unsigned oversized;
} Collect;

static void collect(void *opaque, const char *line, size_t len)
{
	Collect *c = opaque;

	if (!line) {
		c->oversized++;
		g_ptr_array_add(c->lines, g_strdup("<oversized>"));
		return;
	}
	g_assert_cmpuint(strlen(line), ==, len);
	g_ptr_array_add(c->lines, g_strndup(line, len));
}

static void test_lines(void)
{
	Collect c = { g_ptr_array_new_with_free_func(g_free), 0 };
	VmcgAgentLines *l = g_new(VmcgAgentLines, 1);
	char *big = g_malloc(10000);

	vmcg_agent_lines_init(l);
	vmcg_agent_lines_feed(l, "ab", 2, collect, &c);
	g_assert_cmpuint(c.lines->len, ==, 0);
	vmcg_agent_lines_feed(l, "c\n\nde\nf", 7, collect, &c);
	g_assert_cmpuint(c.lines->len, ==, 3);
	g_assert_cmpstr(c.lines->pdata[0], ==, "abc");
	g_assert_cmpstr(c.lines->pdata[1], ==, "");
	g_assert_cmpstr(c.lines->pdata[2], ==, "de");

	/* "f" is pending; an oversized line in pieces, then a good one. */
	memset(big, 'x', 10000);
	vmcg_agent_lines_feed(l, big, 3000, collect, &c);
	vmcg_agent_lines_feed(l, big, 3000, collect, &c);
	vmcg_agent_lines_feed(l, "\nok\n", 4, collect, &c);
	g_assert_cmpuint(c.oversized, ==, 1);
	g_assert_cmpstr(c.lines->pdata[3], ==, "<oversized>");
	g_assert_cmpstr(c.lines->pdata[4], ==, "ok");

	/* Exactly the bound: 4095 bytes and the newline pass, 4096 do not. */
	big[VMCG_AGENT_LINE_MAX - 1] = '\n';
	vmcg_agent_lines_feed(l, big, VMCG_AGENT_LINE_MAX, collect, &c);
	g_assert_cmpuint(c.lines->len, ==, 6);
	g_assert_cmpuint(strlen(c.lines->pdata[5]), ==, VMCG_AGENT_LINE_MAX - 1);
	big[VMCG_AGENT_LINE_MAX - 1] = 'x';
	big[VMCG_AGENT_LINE_MAX] = '\n';
	vmcg_agent_lines_feed(l, big, VMCG_AGENT_LINE_MAX + 1, collect, &c);
	g_assert_cmpuint(c.oversized, ==, 2);
	/* After an oversized line the framer is clean again. */
	vmcg_agent_lines_feed(l, "z\n", 2, collect, &c);
	g_assert_cmpstr(c.lines->pdata[c.lines->len - 1], ==, "z");

	g_free(big);
	g_free(l);
	g_ptr_array_unref(c.lines);
}

static struct json_object *parse_json_line(const char *buf, int n)
{
	g_assert_cmpint(n, >, 0);
	g_assert_cmpint(buf[n - 1], ==, '\n');
	return json_tokener_parse(buf);
}

static void test_format(void)
{
	char buf[4096];
	struct json_object *o, *v;
	VmcgAgentPsi psi = { 2.5, 0.75, 123456, 45678 };
	VmcgAgentMem mem = { VMCG_AGENT_MEM_AVAILABLE | VMCG_AGENT_MEM_ANON, 201326592, 0,
			     100663296 };
	int n;

	n = vmcg_agent_format_hello(buf, sizeof(buf), "vmcg-guest-agent 0.1 \"x\"\\");
	g_assert_cmpstr(
		buf, ==,
		"{\"type\":\"hello\",\"version\":1,\"agent\":\"vmcg-guest-agent 0.1 _x__\"}\n");
	o = parse_json_line(buf, n);
	g_assert_nonnull(o);
	json_object_put(o);
	g_assert_cmpint(vmcg_agent_format_hello(buf, 10, "x"), ==, -ENOSPC);
	/* The agent string is cut to 64 bytes. */
	n = vmcg_agent_format_hello(
		buf, sizeof(buf),
		"0123456789012345678901234567890123456789012345678901234567890123456789");
	o = parse_json_line(buf, n);
	g_assert_true(json_object_object_get_ex(o, "agent", &v));
	g_assert_cmpuint(strlen(json_object_get_string(v)), ==, 64);
	json_object_put(o);

	n = vmcg_agent_format_report(buf, sizeof(buf), 7, &psi, &mem);
	g_assert_cmpstr(
		buf, ==,
		"{\"type\":\"report\",\"seq\":7,\"psi\":{\"some\":{\"avg10\":2.50,\"total\":"
		"123456},\"full\":{\"avg10\":0.75,\"total\":45678}},\"mem\":{\"available\":"
		"201326592,\"anon\":100663296}}\n");
	o = parse_json_line(buf, n);
	g_assert_nonnull(o);
	json_object_put(o);
	n = vmcg_agent_format_report(buf, sizeof(buf), 8, NULL, NULL);
	g_assert_cmpstr(buf, ==, "{\"type\":\"report\",\"seq\":8}\n");
	for (size_t size = 0; size < 40; size++)
		g_assert_cmpint(vmcg_agent_format_report(buf, size, 7, &psi, &mem), ==, -ENOSPC);

	n = vmcg_agent_format_state(buf, sizeof(buf), VMCG_AGENT_LEVEL_CRITICAL, 3, 4096, 5000);
	g_assert_cmpstr(buf, ==, "critical seq=3 reclaim-bytes=4096 reclaim-within-ms=5000\n");
	g_assert_cmpint(n, ==, (int)strlen(buf));
	g_assert_cmpint(vmcg_agent_format_state(buf, sizeof(buf), VMCG_AGENT_LEVEL_COUNT, 0, 0, 0),
			==, -EINVAL);
}

static void test_psi(void)
{
	static const char real[] = "some avg10=12.34 avg60=1.00 avg300=0.20 total=123456\n"
				   "full avg10=100.00 avg60=0.00 avg300=0.00 total=42\n";
	static const char *const bad[] = {
		"",
		"some avg10=1.00 avg60=0.00 avg300=0.00 total=1\n", /* no full */
		"full avg10=1.00 avg60=0.00 avg300=0.00 total=1\n",
		"some avg10=1.00 total=1\nfull avg10=1.00\n", /* no total */
		"some total=1\nfull avg10=1.00 total=1\n",    /* no avg10 */
		"some avg10=100.01 total=1\nfull avg10=0 total=1\n",
		"some avg10=-1.00 total=1\nfull avg10=0 total=1\n",
		"some avg10=nan total=1\nfull avg10=0 total=1\n",
		"some avg10=1e2 total=1\nfull avg10=0 total=1\n",
		"some avg10=1. total=1\nfull avg10=0 total=1\n",
		"some avg10=.5 total=1\nfull avg10=0 total=1\n",
		"some avg10=1.00 total=-1\nfull avg10=0 total=1\n",
		"some avg10=1.00 total=1x\nfull avg10=0 total=1\n",
		"some avg10=1.00  total=1\nfull avg10=0 total=1\n", /* two blanks */
		"some avg10=1.00 total\nfull avg10=0 total=1\n",
		"some avg10=1.00 avg10=2.00 total=1\nfull avg10=0 total=1\n",
		"some avg10=1.00 total=1\nsome avg10=1.00 total=1\nfull avg10=0 total=1\n",
		"some avg10=1.00 total=1\nfull avg10=0 total=1\nmore\n",
		"some\nfull\n",
	};
	VmcgAgentPsi p;

	g_assert_cmpint(vmcg_agent_psi_parse(real, strlen(real), &p), ==, 0);
	g_assert_cmpfloat_with_epsilon(p.some_avg10, 12.34, 1e-9);
	g_assert_cmpfloat_with_epsilon(p.full_avg10, 100.0, 1e-9);
	g_assert_cmpuint(p.some_total_usec, ==, 123456);
	g_assert_cmpuint(p.full_total_usec, ==, 42);
	/* No final newline; fields a later kernel might add. */
	g_assert_cmpint(
		vmcg_agent_psi_parse(LIT("some avg10=0 total=0 new=3\nfull avg10=0.5 total=0"), &p),
		==, 0);
	g_assert_cmpfloat_with_epsilon(p.full_avg10, 0.5, 1e-9);

	for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
		int r = vmcg_agent_psi_parse(bad[i], strlen(bad[i]), &p);

		if (r != -EINVAL)
			g_error("%s: %d, want -EINVAL", bad[i], r);
	}
	g_assert_cmpint(vmcg_agent_psi_parse(LIT("some avg10=0 total=18446744073709551616\n"
						 "full avg10=0 total=0\n"),
					     &p),
			==, -ERANGE);
}

static void test_meminfo(void)
{
	static const char real[] = "MemTotal:         504000 kB\n"
				   "MemFree:          100000 kB\n"
				   "MemAvailable:     300000 kB\n"
				   "Active(anon):       1000 kB\n"
				   "Inactive(anon):     2000 kB\n"
				   "Active(file):      30000 kB\n"
				   "Inactive(file):    40000 kB\n"
				   "HugePages_Total:       0\n";
	VmcgAgentMem m;

	g_assert_cmpint(vmcg_agent_meminfo_parse(real, strlen(real), &m), ==, 0);
	g_assert_cmpuint(m.present, ==,
			 VMCG_AGENT_MEM_AVAILABLE | VMCG_AGENT_MEM_FILE | VMCG_AGENT_MEM_ANON);
	g_assert_cmpuint(m.available_bytes, ==, 300000ull * 1024);
	g_assert_cmpuint(m.file_bytes, ==, 70000ull * 1024);
	g_assert_cmpuint(m.anon_bytes, ==, 3000ull * 1024);

	/* An old kernel: no MemAvailable, half of the file pair. */
	g_assert_cmpint(vmcg_agent_meminfo_parse(LIT("Active(file): 1 kB\nActive(anon): 1 kB\n"
						     "Inactive(anon): 1 kB"),
						 &m),
			==, 0);
	g_assert_cmpuint(m.present, ==, VMCG_AGENT_MEM_ANON);
	g_assert_cmpuint(m.anon_bytes, ==, 2048);
	g_assert_cmpint(vmcg_agent_meminfo_parse(LIT(""), &m), ==, 0);
	g_assert_cmpuint(m.present, ==, 0);

	{
		static const char *const bad[] = {
			"MemAvailable: 1\n",
			"MemAvailable: 1 MB\n",
			"MemAvailable: x kB\n",
			"MemAvailable: -1 kB\n",
			"MemAvailable:  kB\n",
			"MemAvailable: 1 kB \n",
			"MemAvailable: 1 kB\nMemAvailable: 1 kB\n",
		};
		for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
			int r = vmcg_agent_meminfo_parse(bad[i], strlen(bad[i]), &m);

			if (r != -EINVAL)
				g_error("%s: %d, want -EINVAL", bad[i], r);
		}
	}
	g_assert_cmpint(vmcg_agent_meminfo_parse(LIT("MemAvailable: 18014398509481984 kB\n"), &m),
			==, -ERANGE);
	g_assert_cmpint(vmcg_agent_meminfo_parse(LIT("Active(file): 18014398509481983 kB\n"
						     "Inactive(file): 1 kB\n"),
						 &m),
			==, -ERANGE);
}

static void test_config(void)
{
	static const char good[] = "# actions\n"
				   "\n"
				   "critical.drop-caches = true\n"
				   "  medium.exec=/usr/local/bin/shed load  \r\n"
				   "low.drop-caches = false\n"
				   "exec-timeout-ms = 2500\n"
				   "none.exec =\n";
	static const struct {
		const char *text;
		unsigned line;
	} bad[] = {
		{ "critical.drop-caches = yes\n", 1 }, { "\n\nhigh.exec = /bin/true\n", 3 },
		{ "medium.exec = bin/true\n", 1 },     { "medium.run = /bin/true\n", 1 },
		{ "drop-caches = true\n", 1 },	       { "just words\n", 1 },
		{ "exec-timeout-ms = 99\n", 1 },       { "exec-timeout-ms = 3600001\n", 1 },
		{ "exec-timeout-ms = 1s\n", 1 },       { "verylonglevelname.exec = /x\n", 1 },
	};
	VmcgAgentConfig c;
	const char *what = NULL;
	unsigned line = 0;

	g_assert_cmpint(vmcg_agent_config_parse(good, strlen(good), &c, &line, &what), ==, 0);
	g_assert_true(c.action[VMCG_AGENT_LEVEL_CRITICAL].drop_caches);
	g_assert_false(c.action[VMCG_AGENT_LEVEL_LOW].drop_caches);
	g_assert_cmpstr(c.action[VMCG_AGENT_LEVEL_MEDIUM].exec, ==, "/usr/local/bin/shed load");
	g_assert_cmpstr(c.action[VMCG_AGENT_LEVEL_NONE].exec, ==, "");
	g_assert_cmpuint(c.exec_timeout_ms, ==, 2500);

	g_assert_cmpint(vmcg_agent_config_parse("", 0, &c, &line, &what), ==, 0);
	g_assert_cmpuint(c.exec_timeout_ms, ==, VMCG_AGENT_EXEC_TIMEOUT_DEFAULT_MS);
	g_assert_false(c.action[VMCG_AGENT_LEVEL_CRITICAL].drop_caches);

	for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
		line = 0;
		what = NULL;
		g_assert_cmpint(
			vmcg_agent_config_parse(bad[i].text, strlen(bad[i].text), &c, &line, &what),
			==, -EINVAL);
		g_assert_cmpuint(line, ==, bad[i].line);
		g_assert_nonnull(what);
	}
	{
		char *longline = g_strnfill(2000, 'a');
		g_assert_cmpint(vmcg_agent_config_parse(longline, 2000, &c, &line, &what), ==,
				-EINVAL);
		g_assert_cmpstr(what, ==, "line too long");
		g_free(longline);
	}
}

static void test_levels(void)
{
	VmcgAgentLevel l;

	for (unsigned i = 0; i < VMCG_AGENT_LEVEL_COUNT; i++) {
		g_assert_cmpint(vmcg_agent_level_from_name(vmcg_agent_level_name(i), &l), ==, 0);
		g_assert_cmpuint(l, ==, i);
	}
	g_assert_null(vmcg_agent_level_name(VMCG_AGENT_LEVEL_COUNT));
	g_assert_cmpint(vmcg_agent_level_from_name("", &l), ==, -EINVAL);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/agent/msg/good", test_msg_good);
	g_test_add_func("/agent/msg/bad", test_msg_bad);
	g_test_add_func("/agent/msg/size", test_msg_size);
	g_test_add_func("/agent/lines", test_lines);
	g_test_add_func("/agent/format", test_format);
	g_test_add_func("/agent/psi", test_psi);
	g_test_add_func("/agent/meminfo", test_meminfo);
	g_test_add_func("/agent/config", test_config);
	g_test_add_func("/agent/levels", test_levels);
	return g_test_run();
}
