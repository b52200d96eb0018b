// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * QMP client: the parser (real QEMU 7.2 messages and a table of malformed
 * ones, each with the error it must give), the client against a scripted
 * peer, and the client against a real QEMU. The framer under the parser has
 * its own test, test-json-stream.c; what replies hold, test-qmp-reply.c.
 *
 * The scripted peer is a thread that plays QEMU's side of the socket from a
 * list of steps. It exists because the faults tested with it cannot be
 * provoked with a real QEMU: a greeting that never comes, a refused
 * qmp_capabilities, replies out of order, a reply that never comes, EOF in
 * the middle of a message, a 1 MiB reply, garbage instead of JSON. What a
 * real QEMU can show (the handshake, query-status, query-version, quit and
 * its EOF) is tested against a real QEMU at the end.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "qmp.h"
#include "qmp-message.h"

#include "qmp-real.h"
#include "test-util.h"

/* ------------------------------------------------------------------------
 * Parser
 */

static void test_parse_greeting(void)
{
	g_auto(VmcgQmpMessage) m = { 0 };
	g_autoptr(GError) err = NULL;

	g_assert_cmpint(vmcg_qmp_parse(REAL_GREETING, strlen(REAL_GREETING), &m, &err), ==, 0);
	g_assert_no_error(err);
	g_assert_cmpint(m.type, ==, VMCG_QMP_MSG_GREETING);
	g_assert_cmpint(m.qemu_major, ==, 7);
	g_assert_cmpint(m.qemu_minor, ==, 2);
	g_assert_cmpint(m.qemu_micro, ==, 22);
	g_assert_cmpstr(m.qemu_package, ==, "Debian 1:7.2+dfsg-7+deb12u18+b3");
	g_assert_cmpuint(json_object_array_length(m.capabilities), ==, 1);
	g_assert_cmpstr(json_object_get_string(json_object_array_get_idx(m.capabilities, 0)), ==,
			"oob");
	g_assert_null(m.id);
}

static void test_parse_return(void)
{
	g_auto(VmcgQmpMessage) m = { 0 };
	g_auto(VmcgQmpMessage) a = { 0 };
	g_auto(VmcgQmpMessage) s = { 0 };
	g_autoptr(GError) err = NULL;
	json_object *v;
	static const char arr[] = "{\"return\": [1, {\"a\": null}], \"id\": \"x\"}";
	static const char str[] = "\r\n {\"return\": \"\\u00e9\\ud83d\\ude00\"}\r\n\r\n";

	g_assert_cmpint(vmcg_qmp_parse(REAL_STATUS, strlen(REAL_STATUS), &m, &err), ==, 0);
	g_assert_cmpint(m.type, ==, VMCG_QMP_MSG_RETURN);
	g_assert_cmpstr(m.id, ==, "vmcg-1");
	g_assert_true(json_object_object_get_ex(m.ret, "status", &v));
	g_assert_cmpstr(json_object_get_string(v), ==, "prelaunch");

	/* Any JSON type but null, and no id: both as qmp-spec.rst allows. */
	g_assert_cmpint(vmcg_qmp_parse(arr, strlen(arr), &a, &err), ==, 0);
	g_assert_true(json_object_is_type(a.ret, json_type_array));
	g_assert_cmpint(vmcg_qmp_parse(str, strlen(str), &s, &err), ==, 0);
	g_assert_null(s.id);
	g_assert_cmpstr(json_object_get_string(s.ret), ==, "\xc3\xa9\xf0\x9f\x98\x80");
	g_assert_no_error(err);
}

static void test_parse_error(void)
{
	g_auto(VmcgQmpMessage) m = { 0 };
	g_auto(VmcgQmpMessage) p = { 0 };
	g_autoptr(GError) err = NULL;

	g_assert_cmpint(vmcg_qmp_parse(REAL_NOT_FOUND, strlen(REAL_NOT_FOUND), &m, &err), ==, 0);
	g_assert_cmpint(m.type, ==, VMCG_QMP_MSG_ERROR);
	g_assert_cmpstr(m.id, ==, "vmcg-3");
	g_assert_cmpstr(m.error_class, ==, "CommandNotFound");
	g_assert_cmpstr(m.error_desc, ==, "The command nonexistent has not been found");
	/* QEMU cannot echo the id of a command it could not parse. */
	g_assert_cmpint(vmcg_qmp_parse(REAL_PARSE_ERROR, strlen(REAL_PARSE_ERROR), &p, &err), ==,
			0);
	g_assert_null(p.id);
	g_assert_cmpstr(p.error_class, ==, "GenericError");
	g_assert_no_error(err);
}

static void test_parse_event(void)
{
	g_auto(VmcgQmpMessage) m = { 0 };
	g_auto(VmcgQmpMessage) s = { 0 };
	g_auto(VmcgQmpMessage) c = { 0 };
	g_autoptr(GError) err = NULL;
	json_object *v;
	static const char noclock[] = "{\"event\": \"RESET\", \"timestamp\": "
				      "{\"seconds\": -1, \"microseconds\": -1}}";

	g_assert_cmpint(vmcg_qmp_parse(REAL_SHUTDOWN, strlen(REAL_SHUTDOWN), &m, &err), ==, 0);
	g_assert_cmpint(m.type, ==, VMCG_QMP_MSG_EVENT);
	g_assert_cmpstr(m.event, ==, "SHUTDOWN");
	g_assert_cmpint(m.timestamp_usec, ==, G_GINT64_CONSTANT(1795638696744823));
	g_assert_true(json_object_object_get_ex(m.data, "reason", &v));
	g_assert_cmpstr(json_object_get_string(v), ==, "host-qmp-quit");
	/* "data" is optional. */
	g_assert_cmpint(vmcg_qmp_parse(REAL_STOP, strlen(REAL_STOP), &s, &err), ==, 0);
	g_assert_cmpstr(s.event, ==, "STOP");
	g_assert_null(s.data);
	/* qmp-spec.rst: -1 and -1 when QEMU could not read the clock. */
	g_assert_cmpint(vmcg_qmp_parse(noclock, strlen(noclock), &c, &err), ==, 0);
	g_assert_cmpint(c.timestamp_usec, ==, -1);
	g_assert_no_error(err);
}

/* qmp-spec.rst: "future versions of QEMU may add new keys". */
static void test_parse_unknown_members(void)
{
	static const char *const ok[] = {
		"{\"return\": {}, \"id\": \"a\", \"x-new\": [1]}",
		"{\"error\": {\"class\": \"GenericError\", \"desc\": \"d\", \"more\": 1}}",
		"{\"event\": \"E\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2, "
		"\"ns\": 3}, \"__com.example\": true}",
		"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 9}, "
		"\"package\": \"\", \"extra\": {}}, \"capabilities\": [], \"x\": 1}, \"y\": 2}",
		/* An id on an event or a greeting is just an unknown member. */
		"{\"event\": \"E\", \"id\": 5, \"timestamp\": {\"seconds\": 1, "
		"\"microseconds\": 2}}",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(ok); i++) {
		g_auto(VmcgQmpMessage) m = { 0 };
		g_autoptr(GError) err = NULL;

		if (vmcg_qmp_parse(ok[i], strlen(ok[i]), &m, &err) != 0)
			g_error("%s: %s", ok[i], err->message);
	}
}

typedef struct {
	const char *in;
	size_t len; /* 0: strlen(in) */
	int code;   /* VmcgQmpError */
	const char *msg;
} Bad;

#define BAD(s, c, m)       \
	{                  \
		s, 0, c, m \
	}
#define BADN(s, c, m)                  \
	{                              \
		s, sizeof(s) - 1, c, m \
	}
#define P VMCG_QMP_ERROR_PROTOCOL
#define TS "\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}"
#define VER "\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": \"\"}"

static const Bad bad[] = {
	/* Not one JSON object. */
	BAD("", P, "empty input"),
	BAD("\r\n", P, "incomplete JSON object"),
	BAD("[]", P, "must be a JSON object, found '['"),
	BAD("\"return\"", P, "must be a JSON object, found '\"'"),
	BAD("42", P, "must be a JSON object, found '4'"),
	BAD("null", P, "must be a JSON object, found 'n'"),
	BAD("{\"return\": {}", P, "incomplete JSON object"),
	BAD("{\"return\": {}}}", P, "garbage after the JSON object at byte 14"),
	BAD("{\"return\": {}} x", P, "garbage after the JSON object at byte 15"),
	BAD("{\"return\": {}}{\"return\": {}}", P, "garbage after the JSON object at byte 14"),
	BADN("{\"return\": {}}\0", P, "garbage after the JSON object"),
	/* Not JSON, or JSON that json-c 0.16 would accept in strict mode. */
	BAD("{\"return\": {},}", P, "JSON syntax error (unexpected character)"),
	BAD("{\"return\" {}}", P, "JSON syntax error"),
	BAD("{\"return\": {]}", P, "JSON syntax error"),
	BAD("{\"return\": [1 2]}", P, "JSON syntax error"),
	BAD("{\"return\": true1}", P, "JSON syntax error"),
	BAD("{1: 2}", P, "JSON syntax error"),
	BAD("{\"return\": tru}", P, "invalid QMP message at byte 14: incomplete true"),
	BAD("{\"return\": nul", P, "incomplete JSON object"),
	BAD("{\"return\": truex}", P, "invalid QMP message at byte 15: unexpected 'x' in true"),
	BAD("{\"return\": fAlse}", P, "invalid QMP message at byte 12: unexpected 'A' in false"),
	BAD("{\"return\": True}", P, "unexpected 'T' outside a string"),
	BAD("{'return': {}}", P, "unexpected ''' outside a string"),
	BAD("{\"return\": NaN}", P, "unexpected 'N' outside a string"),
	BAD("{\"return\": -Infinity}", P, "at byte 12: incomplete number -"),
	BAD("{\"return\": 1e999}", P, "a number is out of range"),
	BAD("{\"return\": -1e999}", P, "a number is out of range"),
	BAD("{\"return\": 01}", P, "at byte 12: malformed number: '1' after 0"),
	BAD("{\"return\": 00}", P, "malformed number: '0' after 0"),
	BAD("{\"return\": -01}", P, "malformed number: '1' after -0"),
	BAD("{\"return\": 1.}", P, "at byte 13: incomplete number 1."),
	BAD("{\"return\": 1.e5}", P, "malformed number: 'e' after 1."),
	BAD("{\"return\": .5}", P, "unexpected '.' outside a string"),
	BAD("{\"return\": +1}", P, "unexpected '+' outside a string"),
	BAD("{\"return\": -}", P, "incomplete number -"),
	BAD("{\"return\": --1}", P, "malformed number: '-' after -"),
	BAD("{\"return\": 1e}", P, "incomplete number 1e"),
	BAD("{\"return\": 1e+}", P, "incomplete number 1e+"),
	BAD("{\"return\": 1e5.5}", P, "malformed number: '.' after 1e5"),
	BAD("{\"return\": 1.5.5}", P, "malformed number: '.' after 1.5"),
	BAD("{\"return\": 2-4}", P, "malformed number: '-' after 2"),
	BAD("{\"return\": 0x10}", P, "unexpected 'x' outside a string"),
	BAD("{\"return\": 18446744073709551616}", P,
	    "integer 18446744073709551616 does not fit in 64 bits"),
	BAD("{\"return\": -9223372036854775809}", P,
	    "integer -9223372036854775809 does not fit in 64 bits"),
	BAD("{\"return\": 123456789012345678901234567890}", P, "does not fit in 64 bits"),
	BAD("{\"return\": 99999999999999999999}", P,
	    "integer 99999999999999999999 does not fit in 64 bits"),
	BAD("{\"return\": -10000000000000000000}", P,
	    "integer -10000000000000000000 does not fit in 64 bits"),
	BAD("{\"return\": 20000000000000000000}", P,
	    "integer 20000000000000000000 does not fit in 64 bits"),
	BAD("{/* c */\"return\": {}}", P, "unexpected '/' outside a string"),
	BADN("{\"return\": {}\0}", P, "unexpected 0x00 outside a string"),
	BAD("\xef\xbb\xbf{\"return\": {}}", P, "found 0xef where one should start"),
	/* Strings. */
	BAD("{\"return\": \"a\tb\"}", P, "control character 0x09 in a string"),
	BAD("{\"return\": \"a\nb\"}", P, "control character 0x0a in a string"),
	BADN("{\"return\": \"a\0b\"}", P, "control character 0x00 in a string"),
	BAD("{\"return\": \"\\u0000\"}", P, "\\u0000 in a string"),
	BAD("{\"return\": \"\\x41\"}", P, "invalid escape \\'x' in a string"),
	BAD("{\"return\": \"\\u12G4\"}", P, "\\u escape with a non-hex digit"),
	BAD("{\"return\": \"\\ud800\"}", P, "high surrogate not followed by a low one"),
	BAD("{\"return\": \"\\ud800\\n\"}", P, "high surrogate not followed by a low one"),
	BAD("{\"return\": \"\\ud800\\u0041\"}", P, "high surrogate not followed by a low one"),
	BAD("{\"return\": \"\\udc00\"}", P, "low surrogate \\udc00 without a high one"),
	BAD("{\"return\": \"\xff\"}", P, "invalid UTF-8 byte 0xff in a string"),
	BAD("{\"return\": \"\x80\"}", P, "invalid UTF-8 byte 0x80 in a string"),
	BAD("{\"return\": \"\xc0\xaf\"}", P, "invalid UTF-8 byte 0xc0 in a string"),
	BAD("{\"return\": \"\xe0\x80\xaf\"}", P, "invalid UTF-8 continuation 0x80"),
	BAD("{\"return\": \"\xed\xa0\x80\"}", P, "invalid UTF-8 continuation 0xa0"),
	BAD("{\"return\": \"\xf4\x90\x80\x80\"}", P, "invalid UTF-8 continuation 0x90"),
	BAD("{\"return\": \"\xc3\"}", P, "invalid UTF-8 continuation 0x22"),
	BAD("{\"return\": \"\xe2\x82\"}", P, "invalid UTF-8 continuation 0x22"),
	BAD("{\"return\": \"unterminated}", P, "incomplete JSON object"),
	/* Classification. */
	BAD("{}", P, "no \"QMP\", \"return\", \"error\" or \"event\" member"),
	BAD("{\"id\": \"a\"}", P, "no \"QMP\", \"return\", \"error\" or \"event\" member"),
	BAD("{\"Return\": {}}", P, "no \"QMP\", \"return\", \"error\" or \"event\" member"),
	BAD("{\"return\": {}, \"error\": {\"class\": \"A\", \"desc\": \"\"}}", P,
	    "both \"return\" and \"error\" in one message"),
	BAD("{\"event\": \"E\", \"return\": {}, " TS "}", P,
	    "both \"return\" and \"event\" in one message"),
	BAD("{\"QMP\": {}, \"event\": \"E\"}", P, "both \"QMP\" and \"event\" in one message"),
	BAD("{\"return\": null}", P, "reply: \"return\" is null"),
	BAD("{\"return\": {}, \"id\": 1}", P, "reply: \"id\" must be a string, not int"),
	BAD("{\"return\": {}, \"id\": null}", P, "reply: \"id\" must be a string, not null"),
	BAD("{\"return\": {}, \"id\": {\"a\": 1}}", P,
	    "reply: \"id\" must be a string, not object"),
	BAD("{\"error\": \"GenericError\"}", P, "\"error\" must be an object, not string"),
	BAD("{\"error\": {\"desc\": \"d\"}}", P, "reply \"error\" has no \"class\""),
	BAD("{\"error\": {\"class\": \"GenericError\"}}", P, "reply \"error\" has no \"desc\""),
	BAD("{\"error\": {\"class\": 1, \"desc\": \"d\"}}", P,
	    "reply \"error\": \"class\" must be a string, not int"),
	BAD("{\"error\": {\"class\": \"\", \"desc\": \"d\"}}", P,
	    "reply \"error\": \"class\" is empty"),
	BAD("{\"error\": {\"class\": \"A\", \"desc\": [\"d\"]}}", P,
	    "reply \"error\": \"desc\" must be a string, not array"),
	BAD("{\"error\": {\"class\": \"A\", \"desc\": \"d\"}, \"id\": true}", P,
	    "\"id\" must be a string, not boolean"),
	BAD("{\"event\": 5, " TS "}", P, "event: \"event\" must be a string, not int"),
	BAD("{\"event\": \"\", " TS "}", P, "event: \"event\" is empty"),
	BAD("{\"event\": \"E\"}", P, "event has no \"timestamp\""),
	BAD("{\"event\": \"E\", \"data\": [], " TS "}", P,
	    "event: \"data\" must be an object, not array"),
	BAD("{\"event\": \"E\", \"data\": null, " TS "}", P,
	    "event: \"data\" must be an object, not null"),
	BAD("{\"event\": \"E\", \"timestamp\": 17}", P,
	    "event: \"timestamp\" must be an object, not int"),
	BAD("{\"event\": \"E\", \"timestamp\": {\"seconds\": 1}}", P,
	    "event \"timestamp\" has no \"microseconds\""),
	BAD("{\"event\": \"E\", \"timestamp\": {\"seconds\": 1.5, \"microseconds\": 2}}", P,
	    "\"seconds\" must be an int, not double"),
	BAD("{\"event\": \"E\", \"timestamp\": {\"seconds\": \"1\", \"microseconds\": 2}}", P,
	    "\"seconds\" must be an int, not string"),
	BAD("{\"event\": \"E\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 1000000}}", P,
	    "\"microseconds\" is out of range"),
	BAD("{\"event\": \"E\", \"timestamp\": {\"seconds\": -2, \"microseconds\": 0}}", P,
	    "\"seconds\" is out of range"),
	BAD("{\"event\": \"E\", \"timestamp\": {\"seconds\": -1, \"microseconds\": 5}}", P,
	    "\"timestamp\" is -1 in one member only"),
	BAD("{\"event\": \"E\", \"timestamp\": {\"seconds\": 9223372036854775807, "
	    "\"microseconds\": 0}}",
	    P, "\"seconds\" is out of range"),
	BAD("{\"QMP\": []}", P, "\"QMP\" must be an object, not array"),
	BAD("{\"QMP\": {\"capabilities\": []}}", P, "greeting has no \"version\""),
	BAD("{\"QMP\": {" VER "}}", P, "greeting has no \"capabilities\""),
	BAD("{\"QMP\": {" VER ", \"capabilities\": {}}}", P,
	    "greeting: \"capabilities\" must be an array, not object"),
	BAD("{\"QMP\": {" VER ", \"capabilities\": [\"oob\", 1]}}", P,
	    "greeting: \"capabilities\" must hold strings"),
	BAD("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2}, \"package\": "
	    "\"\"}, \"capabilities\": []}}",
	    P, "greeting \"version\".\"qemu\" has no \"major\""),
	BAD("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": -2, \"major\": 7}, "
	    "\"package\": \"\"}, \"capabilities\": []}}",
	    P, "\"minor\" is out of range"),
	BAD("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": "
	    "4294967296}, \"package\": \"\"}, \"capabilities\": []}}",
	    P, "\"major\" is out of range"),
	BAD("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}}, "
	    "\"capabilities\": []}}",
	    P, "greeting \"version\" has no \"package\""),
	BAD("{\"QMP\": {\"version\": \"7.2\", \"capabilities\": []}}", P,
	    "greeting: \"version\" must be an object, not string"),
};

static void test_parse_malformed(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		const Bad *b = &bad[i];
		size_t len = b->len ? b->len : strlen(b->in);
		VmcgQmpMessage m = { 0 };
		g_autoptr(GError) err = NULL;
		int r = vmcg_qmp_parse(b->in, len, &m, &err);

		if (r == 0)
			g_error("accepted: %s", b->in);
		g_assert_cmpint(r, ==, -EBADMSG);
		if (!g_error_matches(err, VMCG_QMP_ERROR, b->code) || !strstr(err->message, b->msg))
			g_error("%s: got \"%s\", want \"%s\"", b->in, err->message, b->msg);
		/* Out-parameters are set on success only. */
		g_assert_null(m.root);
	}
}

static char *nest(unsigned int depth, char open, char close, const char *leaf)
{
	GString *s = g_string_new("{\"return\": ");

	for (unsigned int i = 1; i < depth; i++) {
		g_string_append_c(s, open);
		if (open == '{')
			g_string_append(s, "\"a\": ");
	}
	g_string_append(s, leaf);
	for (unsigned int i = 1; i < depth; i++)
		g_string_append_c(s, close);
	g_string_append_c(s, '}');
	return g_string_free(s, FALSE);
}

/* The message itself is level 1: 64 levels pass, 65 do not. */
static void test_parse_depth(void)
{
	static const struct {
		char open, close;
		const char *leaf;
	} kinds[] = {
		{ '[', ']', "1" }, { '[', ']', "[]" }, { '{', '}', "\"x\"" }, { '{', '}', "{}" }
	};

	for (size_t k = 0; k < G_N_ELEMENTS(kinds); k++) {
		/* The leaf container, if any, is a level of its own. */
		unsigned int extra = kinds[k].leaf[0] == '[' || kinds[k].leaf[0] == '{';
		g_autofree char *ok = nest(VMCG_QMP_MAX_DEPTH - extra, kinds[k].open,
					   kinds[k].close, kinds[k].leaf);
		g_autofree char *deep = nest(VMCG_QMP_MAX_DEPTH + 1 - extra, kinds[k].open,
					     kinds[k].close, kinds[k].leaf);
		g_auto(VmcgQmpMessage) m = { 0 };
		VmcgQmpMessage m2 = { 0 };
		g_autoptr(GError) err = NULL;

		if (vmcg_qmp_parse(ok, strlen(ok), &m, &err) != 0)
			g_error("%s: %s", ok, err->message);
		g_assert_cmpint(vmcg_qmp_parse(deep, strlen(deep), &m2, &err), ==, -EBADMSG);
		g_assert_error(err, VMCG_QMP_ERROR, VMCG_QMP_ERROR_PROTOCOL);
		g_assert_nonnull(strstr(err->message, "nesting deeper than 64"));
	}
}

static void test_parse_numbers(void)
{
	static const struct {
		const char *in;
		bool is_uint;
		int64_t i;
		uint64_t u;
	} ok[] = {
		{ "{\"return\": 18446744073709551615}", true, 0, UINT64_MAX },
		{ "{\"return\": 9223372036854775807}", false, INT64_MAX, 0 },
		{ "{\"return\": -9223372036854775808}", false, INT64_MIN, 0 },
		{ "{\"return\": -0}", false, 0, 0 },
		{ "{\"return\": 0}", false, 0, 0 },
		{ "{\"return\": 9999999999999999999}", true, 0, 9999999999999999999u },
		{ "{\"return\": 10000000000000000000}", true, 0, 10000000000000000000u },
		{ "{\"return\": -999999999999999999}", false, -999999999999999999, 0 },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(ok); i++) {
		g_auto(VmcgQmpMessage) m = { 0 };
		g_autoptr(GError) err = NULL;

		g_assert_cmpint(vmcg_qmp_parse(ok[i].in, strlen(ok[i].in), &m, &err), ==, 0);
		g_assert_true(json_object_is_type(m.ret, json_type_int));
		if (ok[i].is_uint)
			g_assert_cmpuint(json_object_get_uint64(m.ret), ==, ok[i].u);
		else
			g_assert_cmpint(json_object_get_int64(m.ret), ==, ok[i].i);
	}
	{
		g_auto(VmcgQmpMessage) m = { 0 };
		static const char d[] = "{\"return\": [1.5e300, -2.5e-300, 0.1]}";

		g_assert_cmpint(vmcg_qmp_parse(d, strlen(d), &m, NULL), ==, 0);
		g_assert_cmpfloat(json_object_get_double(json_object_array_get_idx(m.ret, 0)), ==,
				  1.5e300);
	}
}

/* A json_object built by code, not parsed: the classifier alone. */
static void test_classify_built(void)
{
	g_autoptr(json_object) o = json_object_new_object();
	g_autoptr(json_object) arr = json_object_new_array();
	g_autoptr(GError) err = NULL;
	VmcgQmpMessage m = { 0 };

	json_object_object_add(o, "error", json_object_new_object());
	json_object_object_add(json_object_object_get(o, "error"), "class",
			       json_object_new_string_len("Gen\0ric", 7));
	json_object_object_add(json_object_object_get(o, "error"), "desc",
			       json_object_new_string("d"));
	g_assert_cmpint(vmcg_qmp_classify(o, &m, &err), ==, -EBADMSG);
	g_assert_nonnull(strstr(err->message, "\"class\" holds a NUL character"));
	g_clear_error(&err);
	g_assert_cmpint(vmcg_qmp_classify(arr, &m, &err), ==, -EBADMSG);
	g_assert_nonnull(strstr(err->message, "must be a JSON object, not array"));
	g_assert_null(m.root);
}

/* ------------------------------------------------------------------------
 * Scripted peer
 */

typedef enum {
	STEP_END,
	STEP_SEND,	  /* write .arg, with $N replaced by the N-th expected id */
	STEP_EXPECT,	  /* read one command line; its "execute" must be .arg */
	STEP_EXPECT_WITH, /* the same, and it came in the read of the line before */
	STEP_SLEEP,	  /* .ms */
	STEP_WAIT_EOF,	  /* read until the client closes */
} StepKind;

typedef struct {
	StepKind kind;
	const char *arg;
	guint ms;
} Step;

#define SEND(s)                 \
	{                       \
		STEP_SEND, s, 0 \
	}
#define EXPECT(c)                 \
	{                         \
		STEP_EXPECT, c, 0 \
	}
#define EXPECT_WITH(c)                 \
	{                              \
		STEP_EXPECT_WITH, c, 0 \
	}
#define SLEEP(ms)                    \
	{                            \
		STEP_SLEEP, NULL, ms \
	}
#define WAIT_EOF                       \
	{                              \
		STEP_WAIT_EOF, NULL, 0 \
	}
#define END                       \
	{                         \
		STEP_END, NULL, 0 \
	}
#define HANDSHAKE \
	SEND(REAL_GREETING), EXPECT("qmp_capabilities"), SEND("{\"return\": {}, \"id\": $0}\r\n")

/* How long the peer waits for anything before it gives up on a test. */
#define PEER_WAIT_MS 20000

typedef struct {
	char *dir;
	char *path;
	int lfd;
	GThread *thread;
	const Step *steps;
	int connections; /* to serve, one script run each */
	GString *in;
	char *ids[16];
	char *lines[16]; /* the command line of each id */
	int nids;
	gint expected; /* EXPECT steps done, all connections */
	gint accepted;
} Peer;

static bool peer_wait(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };

	return poll(&p, 1, PEER_WAIT_MS) == 1;
}

/* One line from the client, or NULL at EOF. */
static char *peer_read_line(Peer *p, int fd)
{
	for (;;) {
		char *nl = memchr(p->in->str, '\n', p->in->len);
		char buf[65536];
		ssize_t n;

		if (nl) {
			char *line = g_strndup(p->in->str, (gsize)(nl - p->in->str + 1));

			g_string_erase(p->in, 0, nl - p->in->str + 1);
			return line;
		}
		if (!peer_wait(fd, POLLIN))
			return NULL;
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			return NULL;
		g_string_append_len(p->in, buf, n);
	}
}

static void peer_write(int fd, const char *s, size_t len)
{
	while (len) {
		ssize_t n;

		if (!peer_wait(fd, POLLOUT))
			return;
		n = send(fd, s, len, MSG_NOSIGNAL);
		if (n <= 0)
			return; /* the client hung up, as some tests want */
		s += n;
		len -= (size_t)n;
	}
}

static void peer_send(Peer *p, int fd, const char *tmpl)
{
	g_autoptr(GString) s = g_string_new(NULL);

	for (const char *c = tmpl; *c; c++) {
		if (c[0] == '$' && g_ascii_isdigit(c[1])) {
			int i = c[1] - '0';

			g_assert_cmpint(i, <, p->nids);
			g_string_append_printf(s, "\"%s\"", p->ids[i]);
			c++;
		} else {
			g_string_append_c(s, *c);
		}
	}
	peer_write(fd, s->str, s->len);
}

static void peer_expect(Peer *p, int fd, const char *command)
{
	g_autofree char *line = peer_read_line(p, fd);
	g_autoptr(json_object) o = NULL;
	json_object *v;

	g_assert_nonnull(line);
	g_assert_true(g_str_has_suffix(line, "\r\n"));
	o = json_tokener_parse(line);
	g_assert_nonnull(o);
	g_assert_true(json_object_object_get_ex(o, "execute", &v));
	g_assert_cmpstr(json_object_get_string(v), ==, command);
	g_assert_true(json_object_object_get_ex(o, "id", &v));
	g_assert_cmpint(p->nids, <, (int)G_N_ELEMENTS(p->ids));
	p->lines[p->nids] = g_strdup(line);
	p->ids[p->nids++] = g_strdup(json_object_get_string(v));
	g_atomic_int_inc(&p->expected);
}

static gpointer peer_thread(gpointer data)
{
	Peer *p = data;

	for (int c = 0; c < p->connections; c++) {
		int fd;

		if (!peer_wait(p->lfd, POLLIN))
			break;
		fd = accept(p->lfd, NULL, NULL);
		g_assert_cmpint(fd, >=, 0);
		g_atomic_int_inc(&p->accepted);
		g_string_truncate(p->in, 0);
		for (int i = 0; i < p->nids; i++) {
			g_clear_pointer(&p->ids[i], g_free);
			g_clear_pointer(&p->lines[i], g_free);
		}
		p->nids = 0;
		for (const Step *s = p->steps; s->kind != STEP_END; s++) {
			switch (s->kind) {
			case STEP_SEND:
				peer_send(p, fd, s->arg);
				break;
			case STEP_EXPECT:
				peer_expect(p, fd, s->arg);
				break;
			case STEP_EXPECT_WITH:
				/* Already buffered: no read(2) between the two lines. */
				g_assert_nonnull(memchr(p->in->str, '\n', p->in->len));
				peer_expect(p, fd, s->arg);
				break;
			case STEP_SLEEP:
				g_usleep(s->ms * 1000);
				break;
			case STEP_WAIT_EOF:
				g_free(peer_read_line(p, fd));
				break;
			case STEP_END:
				break;
			}
		}
		close(fd);
	}
	return NULL;
}

static int listen_unix(const char *path, int backlog)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpuint(strlen(path), <, sizeof(a.sun_path));
	strcpy(a.sun_path, path);
	g_assert_cmpint(bind(fd, (struct sockaddr *)&a, sizeof(a)), ==, 0);
	if (backlog >= 0)
		g_assert_cmpint(listen(fd, backlog), ==, 0);
	return fd;
}

static Peer *peer_new_n(const Step *steps, int connections)
{
	Peer *p = g_new0(Peer, 1);
	g_autoptr(GError) err = NULL;

	p->dir = g_dir_make_tmp("vmcg-qmp-XXXXXX", &err);
	g_assert_no_error(err);
	p->path = g_build_filename(p->dir, "qmp.sock", NULL);
	p->lfd = listen_unix(p->path, 4);
	p->steps = steps;
	p->connections = connections;
	p->in = g_string_new(NULL);
	p->thread = g_thread_new("peer", peer_thread, p);
	return p;
}

static Peer *peer_new(const Step *steps)
{
	return peer_new_n(steps, 1);
}

static void peer_free(Peer *p)
{
	g_thread_join(p->thread);
	close(p->lfd);
	g_unlink(p->path);
	g_rmdir(p->dir);
	for (int i = 0; i < p->nids; i++) {
		g_free(p->ids[i]);
		g_free(p->lines[i]);
	}
	g_string_free(p->in, TRUE);
	g_free(p->path);
	g_free(p->dir);
	g_free(p);
}

/* ------------------------------------------------------------------------
 * Client-side recorders
 */

static gboolean on_guard(gpointer data)
{
	*(bool *)data = true;
	return G_SOURCE_REMOVE;
}

static gboolean on_tick(gpointer data)
{
	(void)data;
	return G_SOURCE_CONTINUE;
}

/*
 * Run the main loop until @cond; fail the test after 20 s. The tick wakes
 * the loop for conditions that the peer thread changes.
 */
#define WAIT_FOR(cond)                                                                         \
	do {                                                                                   \
		bool expired_ = false;                                                         \
		guint guard_ = g_timeout_add(PEER_WAIT_MS, on_guard, &expired_);               \
		guint tick_ = g_timeout_add(5, on_tick, NULL);                                 \
		while (!(cond) && !expired_)                                                   \
			g_main_context_iteration(NULL, TRUE);                                  \
		if (expired_)                                                                  \
			g_error("%s:%d: timed out waiting for %s", __FILE__, __LINE__, #cond); \
		g_source_remove(guard_);                                                       \
		g_source_remove(tick_);                                                        \
	} while (0)

/* Let the main loop run for @ms. */
static void spin(guint ms)
{
	bool done = false;

	g_timeout_add(ms, on_guard, &done);
	while (!done)
		g_main_context_iteration(NULL, TRUE);
}

typedef struct {
	VmcgQmpState state[64];
	GError *error[64];
	gint64 when_usec[64];
	int n;
	GString *log; /* shared with Reply and events, to check interleaving */
} States;

static void on_state(VmcgQmp *q, VmcgQmpState st, const GError *err, gpointer data)
{
	States *s = data;

	(void)q;
	g_assert_cmpint(s->n, <, 64);
	g_assert_true((st == VMCG_QMP_STATE_DISCONNECTED) == (err != NULL));
	g_assert_cmpint(st, ==, vmcg_qmp_get_state(q));
	s->state[s->n] = st;
	s->error[s->n] = err ? g_error_copy(err) : NULL;
	s->when_usec[s->n] = g_get_monotonic_time();
	s->n++;
	if (s->log)
		g_string_append_printf(s->log, "state:%d ", st);
}

static void states_clear(States *s)
{
	for (int i = 0; i < s->n; i++)
		g_clear_error(&s->error[i]);
	s->n = 0;
}

static int states_count(const States *s, VmcgQmpState st)
{
	int n = 0;

	for (int i = 0; i < s->n; i++)
		n += s->state[i] == st;
	return n;
}

static const GError *last_error(const States *s)
{
	g_assert_cmpint(s->n, >, 0);
	g_assert_cmpint(s->state[s->n - 1], ==, VMCG_QMP_STATE_DISCONNECTED);
	return s->error[s->n - 1];
}

typedef struct {
	int calls;
	json_object *ret;
	GError *error;
	GString *log;
	const char *name;
	VmcgQmp *free_me; /* vmcg_qmp_free() it from the callback */
} Reply;

static void on_reply(VmcgQmp *q, json_object *ret, const GError *err, gpointer data)
{
	Reply *r = data;

	(void)q;
	r->calls++;
	g_assert_cmpint(r->calls, ==, 1);
	g_assert_true((ret == NULL) != (err == NULL));
	if (ret)
		r->ret = json_object_get(ret);
	if (err)
		r->error = g_error_copy(err);
	if (r->log)
		g_string_append_printf(r->log, "%s:%s ", r->name, err ? "error" : "ok");
	if (r->free_me)
		vmcg_qmp_free(g_steal_pointer(&r->free_me));
}

static void reply_clear(Reply *r)
{
	g_clear_pointer(&r->ret, json_object_put);
	g_clear_error(&r->error);
}

typedef struct {
	GString *log;
	int n;
	gint64 last_usec;
} Events;

static void on_event(VmcgQmp *q, const char *event, json_object *data, gint64 ts, gpointer ud)
{
	Events *e = ud;
	json_object *v;

	(void)q;
	e->n++;
	e->last_usec = ts;
	g_string_append_printf(e->log, "event:%s", event);
	if (data && json_object_object_get_ex(data, "n", &v))
		g_string_append_printf(e->log, "/%d", json_object_get_int(v));
	g_string_append_c(e->log, ' ');
}

static VmcgQmp *client(const char *path, const VmcgQmpOptions *o, States *st)
{
	VmcgQmp *q = vmcg_qmp_new(path, o);

	vmcg_qmp_set_state_callback(q, on_state, st);
	return q;
}

static const char *ret_string(json_object *ret, const char *key)
{
	json_object *v;

	g_assert_nonnull(ret);
	g_assert_true(json_object_object_get_ex(ret, key, &v));
	return json_object_get_string(v);
}

/* ------------------------------------------------------------------------
 * Client against the scripted peer
 */

/*
 * The handshake, a command issued while still connecting (it waits for
 * READY), a reply matched by id, and a command too big for one write.
 */
static void test_client_handshake(void)
{
	static const Step steps[] = {
		HANDSHAKE,
		EXPECT("query-status"),
		SEND("{\"return\": {\"status\": \"running\"}, \"id\": $1}\r\n"),
		EXPECT("big"),
		SEND("{\"return\": {\"status\": \"ok\"}, \"id\": $2}\r\n"),
		WAIT_EOF,
		END,
	};
	Peer *p = peer_new(steps);
	States st = { 0 };
	Reply r1 = { 0 }, r2 = { 0 };
	VmcgQmp *q = client(p->path, NULL, &st);
	json_object *args = json_object_new_object();
	g_autofree char *big = g_malloc(2 << 20);
	int major, minor, micro;

	g_assert_cmpint(vmcg_qmp_get_state(q), ==, VMCG_QMP_STATE_DISCONNECTED);
	g_assert_false(vmcg_qmp_get_qemu_version(q, &major, &minor, &micro));
	vmcg_qmp_connect(q);
	/* CONNECTING at once, but its notification comes from the main loop. */
	g_assert_cmpint(vmcg_qmp_get_state(q), ==, VMCG_QMP_STATE_CONNECTING);
	g_assert_cmpint(st.n, ==, 0);
	vmcg_qmp_execute(q, "query-status", NULL, on_reply, &r1);
	WAIT_FOR(r1.calls);
	g_assert_no_error(r1.error);
	g_assert_cmpstr(ret_string(r1.ret, "status"), ==, "running");
	g_assert_cmpint(st.n, ==, 2);
	g_assert_cmpint(st.state[0], ==, VMCG_QMP_STATE_CONNECTING);
	g_assert_cmpint(st.state[1], ==, VMCG_QMP_STATE_READY);
	g_assert_true(vmcg_qmp_get_qemu_version(q, &major, &minor, &micro));
	g_assert_cmpint(major * 10000 + minor * 100 + micro, ==, 70222);

	/* 2 MiB of arguments: many partial non-blocking writes. */
	memset(big, 'x', (2 << 20) - 1);
	big[(2 << 20) - 1] = '\0';
	json_object_object_add(args, "blob", json_object_new_string(big));
	vmcg_qmp_execute(q, "big", args, on_reply, &r2);
	WAIT_FOR(r2.calls);
	g_assert_no_error(r2.error);
	g_assert_cmpstr(ret_string(r2.ret, "status"), ==, "ok");

	vmcg_qmp_free(q);
	peer_free(p);
	g_assert_cmpint(st.n, ==, 2); /* free() does not notify */
	reply_clear(&r1);
	reply_clear(&r2);
	states_clear(&st);
}

/*
 * Replies out of issue order, events before, between and after them, a
 * reply with an id nobody sent and one with no id (both dropped).
 */
/*
 * The commands a client is given in one main-loop iteration go out in one
 * send(2), before the loop polls; the arguments of vmcg_qmp_execute_fast()
 * as they are; and vmcg_qmp_free() still sends what was issued before it.
 */
static void test_client_batched_writes(void)
{
	static const Step steps[] = {
		HANDSHAKE,
		EXPECT("a"),
		EXPECT_WITH("b"),
		EXPECT_WITH("c"),
		SEND("{\"return\": {}, \"id\": $1}\r\n{\"return\": {}, \"id\": $2}\r\n"
		     "{\"return\": {}, \"id\": $3}\r\n"),
		EXPECT("d"),
		WAIT_EOF,
		END,
	};
	Peer *p = peer_new(steps);
	States st = { 0 };
	g_autoptr(GString) log = g_string_new(NULL);
	Reply a = { .log = log, .name = "a" }, b = { .log = log, .name = "b" },
	      c = { .log = log, .name = "c" }, d = { .log = log, .name = "d" };
	VmcgQmp *q = client(p->path, NULL, &st);

	vmcg_qmp_connect(q);
	WAIT_FOR(vmcg_qmp_get_state(q) == VMCG_QMP_STATE_READY);
	vmcg_qmp_execute(q, "a", NULL, on_reply, &a);
	vmcg_qmp_execute_fast(q, "b", "{\"value\":1073741824}", NULL, on_reply, &b);
	vmcg_qmp_execute(q, "c", NULL, on_reply, &c);
	/* Nothing is on the wire before the main loop runs (the peer would have read it). */
	g_usleep(50 * 1000);
	g_assert_cmpint(g_atomic_int_get(&p->expected), ==, 1);
	WAIT_FOR(c.calls == 1);
	g_assert_cmpstr(log->str, ==, "a:ok b:ok c:ok ");
	g_assert_cmpint(g_atomic_int_get(&p->expected), ==, 4);
	vmcg_qmp_execute(q, "d", NULL, on_reply, &d);
	vmcg_qmp_free(q);
	WAIT_FOR(g_atomic_int_get(&p->expected) == 5);
	g_assert_cmpint(d.calls, ==, 1);
	g_assert_error(d.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
	g_assert_nonnull(
		strstr(p->lines[2], "{\"execute\":\"b\",\"arguments\":{\"value\":1073741824},"));
	peer_free(p);
	reply_clear(&a);
	reply_clear(&b);
	reply_clear(&c);
	reply_clear(&d);
	states_clear(&st);
}

/* The fast path's readers: log what they saw; take "n" when it is 1, decline otherwise. */
static GString *fast_log;

static bool on_fast_reply(const VmcgJsonFlat *f, int ret, gpointer data)
{
	Reply *r = data;
	int n = vmcg_json_flat_get_type(f, ret, "n", VMCG_JSON_FLAT_INT);

	g_string_append_printf(fast_log, "fast-%s:%s ", r->name,
			       n >= 0 && f->node[n].i == 1 ? "taken" : "declined");
	return n >= 0 && f->node[n].i == 1;
}

static bool on_fast_event(const char *event, const VmcgJsonFlat *f, int data, gint64 ts,
			  gpointer ud)
{
	Events *e = ud;

	g_string_append_printf(fast_log, "fast-event:%s", event);
	if (strcmp(event, "TAKE") != 0) {
		g_string_append(fast_log, ":declined ");
		return false;
	}
	g_assert_cmpint(data, >, 0);
	g_assert_cmpint(f->node[vmcg_json_flat_get(f, data, "n")].i, ==, 7);
	g_assert_cmpint(ts, ==, 1000002);
	e->n++;
	g_string_append(fast_log, ":taken ");
	return true;
}

/*
 * vmcg_qmp_execute_fast() and the fast event callback: a reply or event
 * the fast reader takes never reaches json-c or the ordinary callback; one
 * it declines does, as does what the flat reader or the fast classifier
 * leave (errors, arrays, replies of commands without a fast reader).
 */
static void test_client_fast_path(void)
{
	static const Step steps[] = {
		HANDSHAKE,
		EXPECT("a"),
		EXPECT("b"),
		EXPECT("c"),
		EXPECT("d"),
		EXPECT("e"),
		SEND("{\"return\": {\"n\": 1}, \"id\": $1}\r\n"
		     "{\"return\": {\"n\": 2}, \"id\": $2}\r\n"
		     "{\"id\": $3, \"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}}\r\n"
		     "{\"return\": {\"n\": [1]}, \"id\": $4}\r\n"
		     "{\"return\": {\"n\": 1}, \"id\": $5}\r\n"
		     "{\"return\": {\"n\": 1}, \"id\": \"vmcg-999\"}\r\n"
		     "{\"event\": \"TAKE\", \"data\": {\"n\": 7}, " TS "}\r\n"
		     "{\"event\": \"LEAVE\", \"data\": {\"n\": 8}, " TS "}\r\n"),
		WAIT_EOF,
		END,
	};
	Peer *p = peer_new(steps);
	States st = { 0 };
	g_autoptr(GString) log = g_string_new(NULL);
	Reply a = { .log = log, .name = "a" }, b = { .log = log, .name = "b" },
	      c = { .log = log, .name = "c" }, d = { .log = log, .name = "d" },
	      e = { .log = log, .name = "e" };
	Events ev = { .log = log };
	VmcgQmp *q = client(p->path, NULL, &st);

	fast_log = g_string_new(NULL);
	vmcg_qmp_set_event_callback(q, on_event, &ev);
	vmcg_qmp_set_fast_event_callback(q, on_fast_event);
	vmcg_qmp_connect(q);
	WAIT_FOR(vmcg_qmp_get_state(q) == VMCG_QMP_STATE_READY);
	vmcg_qmp_execute_fast(q, "a", NULL, on_fast_reply, on_reply, &a);
	vmcg_qmp_execute_fast(q, "b", "{\"x\":1}", on_fast_reply, on_reply, &b);
	vmcg_qmp_execute_fast(q, "c", NULL, on_fast_reply, on_reply, &c);
	vmcg_qmp_execute_fast(q, "d", NULL, on_fast_reply, on_reply, &d);
	/* No fast reader: json-c and the ordinary callback, as ever. */
	vmcg_qmp_execute(q, "e", NULL, on_reply, &e);
	WAIT_FOR(ev.n == 2);
	g_assert_cmpstr(fast_log->str, ==,
			"fast-a:taken fast-b:declined fast-event:TAKE:taken "
			"fast-event:LEAVE:declined ");
	g_assert_cmpstr(log->str, ==, "b:ok c:error d:ok e:ok event:LEAVE/8 ");
	g_assert_cmpint(a.calls, ==, 0);
	g_assert_cmpint(json_object_get_int(json_object_object_get(b.ret, "n")), ==, 2);
	g_assert_error(c.error, VMCG_QMP_ERROR, VMCG_QMP_ERROR_GENERIC_ERROR);
	g_assert_true(json_object_is_type(json_object_object_get(d.ret, "n"), json_type_array));
	g_assert_cmpint(json_object_get_int(json_object_object_get(e.ret, "n")), ==, 1);
	g_assert_cmpint(vmcg_qmp_get_state(q), ==, VMCG_QMP_STATE_READY);
	/* The taken command is complete: nothing is left to fail on free. */
	vmcg_qmp_free(q);
	g_assert_cmpint(a.calls, ==, 0);
	peer_free(p);
	g_string_free(fast_log, TRUE);
	fast_log = NULL;
	reply_clear(&b);
	reply_clear(&c);
	reply_clear(&d);
	reply_clear(&e);
	states_clear(&st);
}

/* Greeting deadlines that pass together are handled a batch per main-loop iteration. */
typedef struct {
	unsigned iteration, failed, timed_out, max_per_iteration, in_this;
	unsigned last_iteration;
} Storm;

static void on_storm_state(VmcgQmp *q, VmcgQmpState state, const GError *error, gpointer ud)
{
	Storm *s = ud;

	(void)q;
	if (state != VMCG_QMP_STATE_DISCONNECTED || !error)
		return;
	if (s->last_iteration != s->iteration)
		s->in_this = 0;
	s->last_iteration = s->iteration;
	s->in_this++;
	s->max_per_iteration = MAX(s->max_per_iteration, s->in_this);
	s->failed++;
	s->timed_out += g_error_matches(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
}

static void test_client_deadline_storm(void)
{
	enum {
		N = 200
	};
	g_autoptr(GError) err = NULL;
	g_autofree char *dir = g_dir_make_tmp("vmcg-qmp-XXXXXX", &err);
	g_autofree char *path = g_build_filename(dir, "never-greets.sock", NULL);
	/* Connections wait in the backlog: connected, never greeted. */
	int lfd = listen_unix(path, N + 10);
	VmcgQmpOptions o = { .greeting_timeout_ms = 300 };
	VmcgQmp *qs[N];
	Storm s = { 0 };
	gint64 give_up = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;

	for (int i = 0; i < N; i++) {
		qs[i] = vmcg_qmp_new(path, &o);
		vmcg_qmp_set_state_callback(qs[i], on_storm_state, &s);
		vmcg_qmp_connect(qs[i]);
	}
	/* Connected (their greeting deadlines running), then all overdue at once. */
	for (gint64 t = g_get_monotonic_time() + 100 * 1000; g_get_monotonic_time() < t;)
		g_main_context_iteration(NULL, FALSE);
	g_assert_cmpuint(s.failed, ==, 0);
	g_usleep(500 * 1000);
	while (s.failed < N && g_get_monotonic_time() < give_up) {
		s.iteration++;
		g_main_context_iteration(NULL, TRUE);
	}
	g_assert_cmpuint(s.failed, ==, N);
	g_assert_cmpuint(s.timed_out, ==, N);
	g_test_message("%d greeting timeouts, at most %u in one iteration", N, s.max_per_iteration);
	g_assert_cmpuint(s.max_per_iteration, <=, 64);
	g_assert_cmpuint(s.max_per_iteration, >=, 32);
	for (int i = 0; i < N; i++)
		vmcg_qmp_free(qs[i]);
	close(lfd);
	g_unlink(path);
	g_rmdir(dir);
}

static void test_client_ids_and_events(void)
{
	static const Step steps[] = {
		HANDSHAKE,
		EXPECT("a"),
		EXPECT("b"),
		EXPECT("c"),
		SEND("{\"event\": \"E\", \"data\": {\"n\": 1}, " TS "}\r\n"),
		SEND("{\"return\": {\"who\": \"c\"}, \"id\": $3}\r\n"
		     "{\"return\": {\"who\": \"x\"}, \"id\": \"vmcg-999\"}\r\n"
		     "{\"event\": \"E\", \"data\": {\"n\": 2}, " TS "}"),
		SLEEP(20),
		SEND("\r\n{\"id\": $1, \"error\": {\"class\": \"DeviceNotFound\", \"desc\": "
		     "\"no such device\"}}\r\n" REAL_PARSE_ERROR),
		SEND("{\"return\": [\"b\"], \"id\": $2}\r\n"
		     "{\"event\": \"F\", \"timestamp\": {\"seconds\": 3, \"microseconds\": "
		     "4}}\r\n"),
		WAIT_EOF,
		END,
	};
	Peer *p = peer_new(steps);
	States st = { 0 };
	g_autoptr(GString) log = g_string_new(NULL);
	Reply a = { .log = log, .name = "a" }, b = { .log = log, .name = "b" },
	      c = { .log = log, .name = "c" };
	Events ev = { .log = log };
	VmcgQmp *q = client(p->path, NULL, &st);

	vmcg_qmp_set_event_callback(q, on_event, &ev);
	vmcg_qmp_connect(q);
	WAIT_FOR(vmcg_qmp_get_state(q) == VMCG_QMP_STATE_READY);
	vmcg_qmp_execute(q, "a", NULL, on_reply, &a);
	vmcg_qmp_execute(q, "b", NULL, on_reply, &b);
	vmcg_qmp_execute(q, "c", NULL, on_reply, &c);
	WAIT_FOR(ev.n == 3);
	g_assert_cmpstr(log->str, ==, "event:E/1 c:ok event:E/2 a:error b:ok event:F ");
	g_assert_cmpstr(ret_string(c.ret, "who"), ==, "c");
	g_assert_error(a.error, VMCG_QMP_ERROR, VMCG_QMP_ERROR_DEVICE_NOT_FOUND);
	g_assert_cmpstr(a.error->message, ==, "no such device");
	g_assert_cmpstr(json_object_get_string(json_object_array_get_idx(b.ret, 0)), ==, "b");
	g_assert_cmpint(ev.last_usec, ==, 3000004);
	g_assert_cmpint(vmcg_qmp_get_state(q), ==, VMCG_QMP_STATE_READY);

	vmcg_qmp_free(q);
	peer_free(p);
	reply_clear(&a);
	reply_clear(&b);
	reply_clear(&c);
	states_clear(&st);
}

/* No greeting: the greeting deadline, and the socket is closed. */
static void test_client_greeting_timeout(void)
{
	static const Step steps[] = { WAIT_EOF, END };
	Peer *p = peer_new(steps);
	States st = { 0 };
	VmcgQmpOptions o = { .greeting_timeout_ms = 200 };
	VmcgQmp *q = client(p->path, &o, &st);
	Reply r = { 0 };
	gint64 t0 = g_get_monotonic_time();

	vmcg_qmp_connect(q);
	vmcg_qmp_execute(q, "query-status", NULL, on_reply, &r);
	WAIT_FOR(st.n == 2);
	g_assert_cmpint(g_get_monotonic_time() - t0, >=, 200 * 1000);
	g_assert_error(last_error(&st), G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
	g_assert_nonnull(strstr(last_error(&st)->message, "no QMP greeting within 200 ms"));
	/* The queued command was never sent. */
	WAIT_FOR(r.calls);
	g_assert_error(r.error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED);
	g_assert_nonnull(strstr(r.error->message, "no QMP greeting"));
	peer_free(p); /* returns once the client has closed */
	vmcg_qmp_free(q);
	reply_clear(&r);
	states_clear(&st);
}

static void test_client_capabilities_error(void)
{
	static const Step steps[] = {
		SEND(REAL_GREETING),
		EXPECT("qmp_capabilities"),
		SEND("{\"id\": $0, \"error\": {\"class\": \"GenericError\", \"desc\": \"no "
		     "thanks\"}}\r\n"),
		WAIT_EOF,
		END,
	};
	Peer *p = peer_new(steps);
	States st = { 0 };
	VmcgQmp *q = client(p->path, NULL, &st);

	vmcg_qmp_connect(q);
	WAIT_FOR(st.n == 2);
	g_assert_error(last_error(&st), VMCG_QMP_ERROR, VMCG_QMP_ERROR_GENERIC_ERROR);
	g_assert_cmpstr(last_error(&st)->message, ==, "qmp_capabilities refused: no thanks");
	peer_free(p);
	vmcg_qmp_free(q);
	states_clear(&st);
}

static void test_client_capabilities_timeout(void)
{
	static const Step steps[] = { SEND(REAL_GREETING), EXPECT("qmp_capabilities"), WAIT_EOF,
				      END };
	Peer *p = peer_new(steps);
	States st = { 0 };
	VmcgQmpOptions o = { .capabilities_timeout_ms = 150 };
	VmcgQmp *q = client(p->path, &o, &st);

	vmcg_qmp_connect(q);
	WAIT_FOR(st.n == 2);
	g_assert_error(last_error(&st), G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
	g_assert_nonnull(
		strstr(last_error(&st)->message, "qmp_capabilities not answered within 150 ms"));
	/* The greeting was read: its version is known. */
	peer_free(p);
	vmcg_qmp_free(q);
	states_clear(&st);
}

static void test_client_connect_errors(void)
{
	g_autoptr(GError) err = NULL;
	g_autofree char *dir = g_dir_make_tmp("vmcg-qmp-XXXXXX", &err);
	g_autofree char *missing = g_build_filename(dir, "missing.sock", NULL);
	g_autofree char *deaf = g_build_filename(dir, "deaf.sock", NULL);
	g_autofree char *full = g_build_filename(dir, "full.sock", NULL);
	g_autofree char *longp = g_strnfill(200, 'x');
	States st = { 0 };
	VmcgQmp *q;
	int deaf_fd, full_fd, queued_fd;
	struct sockaddr_un a = { .sun_family = AF_UNIX };

	/* No such socket. */
	q = client(missing, NULL, &st);
	vmcg_qmp_connect(q);
	WAIT_FOR(st.n == 2);
	g_assert_error(last_error(&st), G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
	g_assert_true(g_str_has_prefix(last_error(&st)->message, missing));
	vmcg_qmp_free(q);
	states_clear(&st);

	/* A socket nobody listens on: QEMU has exited. */
	deaf_fd = listen_unix(deaf, -1);
	q = client(deaf, NULL, &st);
	vmcg_qmp_connect(q);
	WAIT_FOR(st.n == 2);
	g_assert_error(last_error(&st), G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED);
	vmcg_qmp_free(q);
	states_clear(&st);

	/*
	 * A full backlog: QEMU's main loop does not accept. AF_UNIX then
	 * refuses non-blocking connects with EAGAIN; the client retries until
	 * the connect deadline.
	 */
	full_fd = listen_unix(full, 0);
	queued_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	strcpy(a.sun_path, full);
	g_assert_cmpint(connect(queued_fd, (struct sockaddr *)&a, sizeof(a)), ==, 0);
	{
		VmcgQmpOptions o = { .connect_timeout_ms = 300 };

		q = client(full, &o, &st);
	}
	vmcg_qmp_connect(q);
	WAIT_FOR(st.n == 2);
	g_assert_error(last_error(&st), G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
	g_assert_nonnull(strstr(last_error(&st)->message, "connect timed out after 300 ms"));
	vmcg_qmp_free(q);
	states_clear(&st);

	/* A path sun_path cannot hold. */
	q = client(longp, NULL, &st);
	vmcg_qmp_connect(q);
	WAIT_FOR(st.n == 2);
	g_assert_error(last_error(&st), G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
	vmcg_qmp_free(q);
	states_clear(&st);

	close(queued_fd);
	close(full_fd);
	close(deaf_fd);
	g_unlink(deaf);
	g_unlink(full);
	g_rmdir(dir);
}

/*
 * b misses its deadline: it fails with TIMED_OUT, the connection is torn
 * down (QMP is in order: c is stuck behind b), c fails with DISCONNECTED,
 * and a, answered before, is unaffected.
 */
static void test_client_command_timeout(void)
{
	static const Step steps[] = {
		HANDSHAKE,
		EXPECT("a"),
		EXPECT("b"),
		EXPECT("c"),
		SEND("{\"return\": {}, \"id\": $1}\r\n"),
		WAIT_EOF,
		END,
	};
	Peer *p = peer_new(steps);
	States st = { 0 };
	g_autoptr(GString) log = g_string_new(NULL);
	Reply a = { .log = log, .name = "a" }, b = { .log = log, .name = "b" },
	      c = { .log = log, .name = "c" };
	VmcgQmp *q = client(p->path, NULL, &st);

	st.log = log;
	vmcg_qmp_connect(q);
	WAIT_FOR(vmcg_qmp_get_state(q) == VMCG_QMP_STATE_READY);
	vmcg_qmp_execute(q, "a", NULL, on_reply, &a);
	vmcg_qmp_execute_timeout(q, "b", NULL, 250, on_reply, &b);
	vmcg_qmp_execute(q, "c", NULL, on_reply, &c);
	WAIT_FOR(c.calls);
	g_assert_cmpstr(log->str, ==, "state:1 state:2 a:ok b:error state:0 c:error ");
	g_assert_error(b.error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
	g_assert_nonnull(strstr(b.error->message, "QMP command b (id vmcg-3) not answered "
						  "within 250 ms"));
	g_assert_error(last_error(&st), G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
	g_assert_nonnull(strstr(last_error(&st)->message, "QMP command b"));
	g_assert_error(c.error, VMCG_QMP_ERROR, VMCG_QMP_ERROR_DISCONNECTED);
	g_assert_nonnull(strstr(c.error->message, "QMP command b"));
	peer_free(p);
	vmcg_qmp_free(q);
	reply_clear(&a);
	reply_clear(&b);
	reply_clear(&c);
	states_clear(&st);
}

/*
 * Deadlines out of issue order share one timer per client: each command
 * still times out at its own deadline, earliest first. Queued (not sent)
 * commands time out alone; the first sent one that does takes the
 * connection down, and the later-deadline command behind it is failed as
 * disconnected, not timed out.
 */
static void test_client_deadline_order(void)
{
	static const Step steps[] = {
		SLEEP(700),  HANDSHAKE,	  EXPECT("d"), SEND("{\"return\": {}, \"id\": $1}\r\n"),
		EXPECT("e"), EXPECT("f"), WAIT_EOF,    END,
	};
	Peer *p = peer_new(steps);
	States st = { 0 };
	g_autoptr(GString) log = g_string_new(NULL);
	Reply r[6] = { { .log = log, .name = "a" }, { .log = log, .name = "b" },
		       { .log = log, .name = "c" }, { .log = log, .name = "d" },
		       { .log = log, .name = "e" }, { .log = log, .name = "f" } };
	VmcgQmp *q = client(p->path, NULL, &st);

	st.log = log;
	vmcg_qmp_connect(q);
	vmcg_qmp_execute_timeout(q, "a", NULL, 450, on_reply, &r[0]);
	vmcg_qmp_execute_timeout(q, "b", NULL, 150, on_reply, &r[1]);
	vmcg_qmp_execute_timeout(q, "c", NULL, 300, on_reply, &r[2]);
	vmcg_qmp_execute(q, "d", NULL, on_reply, &r[3]);
	WAIT_FOR(r[3].calls);
	g_assert_cmpstr(log->str, ==, "state:1 b:error c:error a:error state:2 d:ok ");
	for (int i = 0; i < 3; i++)
		g_assert_error(r[i].error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
	vmcg_qmp_execute_timeout(q, "e", NULL, 600, on_reply, &r[4]);
	vmcg_qmp_execute_timeout(q, "f", NULL, 200, on_reply, &r[5]);
	WAIT_FOR(r[4].calls);
	g_assert_cmpstr(log->str, ==,
			"state:1 b:error c:error a:error state:2 d:ok f:error state:0 e:error ");
	g_assert_error(r[5].error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
	g_assert_error(r[4].error, VMCG_QMP_ERROR, VMCG_QMP_ERROR_DISCONNECTED);
	peer_free(p);
	vmcg_qmp_free(q);
	for (int i = 0; i < 6; i++)
		reply_clear(&r[i]);
	states_clear(&st);
}

static void test_client_eof_mid_message(void)
{
	static const Step steps[] = {
		HANDSHAKE,
		EXPECT("query-status"),
		SEND("{\"return\": {\"status\": \"runn"),
		END,
	};
	Peer *p = peer_new(steps);
	States st = { 0 };
	Reply r = { 0 };
	VmcgQmp *q = client(p->path, NULL, &st);

	vmcg_qmp_connect(q);
	vmcg_qmp_execute(q, "query-status", NULL, on_reply, &r);
	WAIT_FOR(r.calls);
	g_assert_error(last_error(&st), G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
	g_assert_nonnull(strstr(last_error(&st)->message,
				"QMP peer closed the connection in the middle of a message"));
	g_assert_error(r.error, VMCG_QMP_ERROR, VMCG_QMP_ERROR_DISCONNECTED);
	peer_free(p);
	vmcg_qmp_free(q);
	reply_clear(&r);
	states_clear(&st);
}

static void test_client_eof_before_greeting(void)
{
	static const Step steps[] = { END };
	Peer *p = peer_new(steps);
	States st = { 0 };
	VmcgQmp *q = client(p->path, NULL, &st);

	vmcg_qmp_connect(q);
	WAIT_FOR(st.n == 2);
	g_assert_error(last_error(&st), G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
	g_assert_nonnull(strstr(last_error(&st)->message, "connection before the greeting"));
	peer_free(p);
	vmcg_qmp_free(q);
	states_clear(&st);
}

static char *oversized_reply;

/* 1 MiB against a 64 KiB limit: refused, the connection dropped. */
static void test_client_oversized(void)
{
	Step steps[] = {
		HANDSHAKE, EXPECT("query-status"), SEND(NULL), WAIT_EOF, END,
	};
	GString *s = g_string_new("{\"return\": {\"status\": \"");
	Peer *p;
	States st = { 0 };
	Reply r = { 0 };
	VmcgQmpOptions o = { .max_message_bytes = 64 * 1024 };
	VmcgQmp *q;

	while (s->len < (1 << 20))
		g_string_append(s, "abcdefgh");
	g_string_append(s, "\"}, \"id\": $1}\r\n");
	oversized_reply = g_string_free(s, FALSE);
	steps[4].arg = oversized_reply;
	p = peer_new(steps);
	q = client(p->path, &o, &st);
	vmcg_qmp_connect(q);
	vmcg_qmp_execute(q, "query-status", NULL, on_reply, &r);
	WAIT_FOR(r.calls);
	g_assert_error(last_error(&st), VMCG_QMP_ERROR, VMCG_QMP_ERROR_MESSAGE_TOO_BIG);
	g_assert_nonnull(strstr(last_error(&st)->message, "larger than 65536 bytes"));
	g_assert_error(r.error, VMCG_QMP_ERROR, VMCG_QMP_ERROR_DISCONNECTED);
	peer_free(p);
	vmcg_qmp_free(q);
	g_free(oversized_reply);
	reply_clear(&r);
	states_clear(&st);
}

/* Things a QEMU never sends: each ends the connection with PROTOCOL. */
static void test_client_protocol_errors(void)
{
	static const struct {
		Step steps[6];
		const char *msg;
	} cases[] = {
		{ { SEND("{\"event\": \"E\", " TS "}\r\n"), WAIT_EOF, END },
		  "expected the QMP greeting, got an event" },
		{ { SEND("{\"return\": {}}\r\n"), WAIT_EOF, END },
		  "expected the QMP greeting, got a reply" },
		{ { HANDSHAKE, SEND(REAL_GREETING), WAIT_EOF, END }, "a second QMP greeting" },
		{ { HANDSHAKE, SEND("{\"return\": {}, \"id\": 7}\r\n"), WAIT_EOF, END },
		  "\"id\" must be a string, not int" },
		{ { HANDSHAKE, SEND("<html>\r\n"), WAIT_EOF, END },
		  "must be a JSON object, found '<'" },
		{ { HANDSHAKE, SEND("{\"return\": {\"a\": \"\x01\"}}"), WAIT_EOF, END },
		  "control character 0x01 in a string" },
		{ { SEND("{\"QMP\": {}}\r\n"), WAIT_EOF, END }, "greeting has no \"version\"" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		Peer *p = peer_new(cases[i].steps);
		States st = { 0 };
		VmcgQmp *q = client(p->path, NULL, &st);

		vmcg_qmp_connect(q);
		WAIT_FOR(st.n && st.state[st.n - 1] == VMCG_QMP_STATE_DISCONNECTED);
		g_assert_error(last_error(&st), VMCG_QMP_ERROR, VMCG_QMP_ERROR_PROTOCOL);
		if (!strstr(last_error(&st)->message, cases[i].msg))
			g_error("case %zu: %s", i, last_error(&st)->message);
		g_assert_true(g_str_has_prefix(last_error(&st)->message, p->path));
		peer_free(p);
		vmcg_qmp_free(q);
		states_clear(&st);
	}
}

/* The callbacks never run inside the call that caused them. */
static void test_client_execute_errors(void)
{
	States st = { 0 };
	VmcgQmp *q = client("/nonexistent/qmp.sock", NULL, &st);
	Reply r1 = { 0 }, r2 = { 0 }, r3 = { 0 };

	vmcg_qmp_execute(q, "query-status", NULL, on_reply, &r1);
	vmcg_qmp_execute(q, "query-status", json_object_new_array(), on_reply, &r2);
	vmcg_qmp_execute(q, "", NULL, on_reply, &r3);
	g_assert_cmpint(r1.calls + r2.calls + r3.calls, ==, 0);
	WAIT_FOR(r1.calls && r2.calls && r3.calls);
	g_assert_error(r1.error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED);
	g_assert_error(r2.error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
	g_assert_error(r3.error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
	vmcg_qmp_free(q);
	g_assert_cmpint(st.n, ==, 0);
	reply_clear(&r1);
	reply_clear(&r2);
	reply_clear(&r3);
}

/*
 * free() with commands everywhere: on the wire, waiting for READY on
 * another client, and due to fail from the main loop. Each callback runs
 * exactly once (on_reply asserts it), with CANCELLED, before free()
 * returns; nothing runs after.
 */
static void test_client_free_pending(void)
{
	static const Step steps[] = {
		HANDSHAKE, EXPECT("a"), EXPECT("b"), EXPECT("c"), WAIT_EOF, END,
	};
	static const Step silent[] = { WAIT_EOF, END };
	Peer *p = peer_new(steps), *p2 = peer_new(silent);
	States st = { 0 }, st2 = { 0 };
	Reply r[6] = { 0 };
	VmcgQmp *q = client(p->path, NULL, &st);
	VmcgQmp *q2 = client(p2->path, NULL, &st2);
	VmcgQmp *q3 = client("/nonexistent/qmp.sock", NULL, NULL);

	vmcg_qmp_connect(q);
	WAIT_FOR(vmcg_qmp_get_state(q) == VMCG_QMP_STATE_READY);
	vmcg_qmp_execute(q, "a", NULL, on_reply, &r[0]);
	vmcg_qmp_execute(q, "b", NULL, on_reply, &r[1]);
	vmcg_qmp_execute(q, "c", NULL, on_reply, &r[2]);
	WAIT_FOR(g_atomic_int_get(&p->expected) == 4);
	vmcg_qmp_free(q);
	for (int i = 0; i < 3; i++) {
		g_assert_cmpint(r[i].calls, ==, 1);
		g_assert_error(r[i].error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
	}

	vmcg_qmp_connect(q2);
	vmcg_qmp_execute(q2, "queued", NULL, on_reply, &r[3]);
	WAIT_FOR(g_atomic_int_get(&p2->accepted) == 1);
	vmcg_qmp_free(q2);
	g_assert_cmpint(r[3].calls, ==, 1);
	g_assert_error(r[3].error, G_IO_ERROR, G_IO_ERROR_CANCELLED);

	vmcg_qmp_execute(q3, "due", NULL, on_reply, &r[4]);
	vmcg_qmp_free(q3);
	g_assert_cmpint(r[4].calls, ==, 1);
	g_assert_error(r[4].error, G_IO_ERROR, G_IO_ERROR_CANCELLED);

	vmcg_qmp_free(NULL);
	spin(50); /* nothing may run any more */
	for (int i = 0; i < 5; i++)
		g_assert_cmpint(r[i].calls, ==, 1);
	peer_free(p);
	peer_free(p2);
	for (int i = 0; i < 6; i++)
		reply_clear(&r[i]);
	states_clear(&st);
	states_clear(&st2);
}

/* free() from a reply callback: the rest are cancelled, nothing crashes. */
static void test_client_free_in_callback(void)
{
	static const Step steps[] = {
		HANDSHAKE,
		EXPECT("a"),
		EXPECT("b"),
		EXPECT("c"),
		SEND("{\"return\": {}, \"id\": $1}\r\n{\"return\": {}, \"id\": $2}\r\n"),
		WAIT_EOF,
		END,
	};
	Peer *p = peer_new(steps);
	States st = { 0 };
	Reply a = { 0 }, b = { 0 }, c = { 0 };
	VmcgQmp *q = client(p->path, NULL, &st);

	vmcg_qmp_connect(q);
	WAIT_FOR(vmcg_qmp_get_state(q) == VMCG_QMP_STATE_READY);
	a.free_me = q;
	vmcg_qmp_execute(q, "a", NULL, on_reply, &a);
	vmcg_qmp_execute(q, "b", NULL, on_reply, &b);
	vmcg_qmp_execute(q, "c", NULL, on_reply, &c);
	WAIT_FOR(a.calls);
	/* b's reply was in the same read as a's: it is not delivered. */
	g_assert_cmpint(b.calls, ==, 1);
	g_assert_error(b.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
	g_assert_cmpint(c.calls, ==, 1);
	g_assert_error(c.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
	spin(50);
	peer_free(p);
	reply_clear(&a);
	reply_clear(&b);
	reply_clear(&c);
	states_clear(&st);
}

static int open_fds(void)
{
	return (int)test_dir_entries("/proc/self/fd");
}

/*
 * All clients of a context share one source and its epoll fd: the first
 * client makes it, the last one freed closes it.
 *
 *   context ── hub (1 epoll fd) ─┬─ a
 *                                └─ b
 *
 * Expected: one fd more with a and b alive, none after both are freed, and
 * a new hub (again one fd) for a client made afterwards.
 */
static void test_client_shared_source(void)
{
	int base;
	VmcgQmp *a, *b;

	spin(1);
	base = open_fds();
	a = vmcg_qmp_new("/nonexistent/a", NULL);
	g_assert_cmpint(open_fds(), ==, base + 1);
	b = vmcg_qmp_new("/nonexistent/b", NULL);
	g_assert_cmpint(open_fds(), ==, base + 1);
	vmcg_qmp_free(a);
	g_assert_cmpint(open_fds(), ==, base + 1);
	vmcg_qmp_free(b);
	g_assert_cmpint(open_fds(), ==, base);
	a = vmcg_qmp_new("/nonexistent/a", NULL);
	g_assert_cmpint(open_fds(), ==, base + 1);
	vmcg_qmp_free(a);
	g_assert_cmpint(open_fds(), ==, base);
}

/*
 * Two clients whose replies are ready in the same dispatch of the shared
 * source, and the first reply's callback frees the other client (which is
 * in the ready list of that dispatch), whose cancelled command's callback
 * then frees the first one, the last client of the context:
 *
 *   dispatch: ready [q1, q2] (either order)
 *     reply of qX ok -> free(qY) -> qY's command CANCELLED -> free(qX)
 *
 * Expected: each callback exactly once, one ok and one CANCELLED, the
 * freed client's event skipped, the shared source gone with its epoll fd.
 */
static void test_client_free_other_in_dispatch(void)
{
	static const Step steps[] = {
		HANDSHAKE, EXPECT("x"), SEND("{\"return\": {}, \"id\": $1}\r\n"), WAIT_EOF, END,
	};
	Peer *p1, *p2;
	States st1 = { 0 }, st2 = { 0 };
	Reply r1 = { 0 }, r2 = { 0 };
	int base;
	VmcgQmp *q1, *q2;

	spin(1);
	base = open_fds();
	p1 = peer_new(steps);
	p2 = peer_new(steps);
	q1 = client(p1->path, NULL, &st1);
	q2 = client(p2->path, NULL, &st2);
	vmcg_qmp_connect(q1);
	vmcg_qmp_connect(q2);
	WAIT_FOR(vmcg_qmp_get_state(q1) == VMCG_QMP_STATE_READY &&
		 vmcg_qmp_get_state(q2) == VMCG_QMP_STATE_READY);
	r1.free_me = q2;
	r2.free_me = q1;
	/*
	 * Sent by the next iteration's prepare, before it polls (no reply
	 * can be in yet, so nothing is dispatched); both replies then
	 * arrive before the next dispatch.
	 */
	vmcg_qmp_execute(q1, "x", NULL, on_reply, &r1);
	vmcg_qmp_execute(q2, "x", NULL, on_reply, &r2);
	g_main_context_iteration(NULL, FALSE);
	while (g_atomic_int_get(&p1->expected) < 2 || g_atomic_int_get(&p2->expected) < 2)
		g_usleep(1000);
	g_usleep(100 * 1000);
	WAIT_FOR(r1.calls && r2.calls);
	g_assert_cmpint(r1.calls, ==, 1);
	g_assert_cmpint(r2.calls, ==, 1);
	g_assert_true((r1.error != NULL) != (r2.error != NULL));
	if (r1.error)
		g_assert_error(r1.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
	else
		g_assert_error(r2.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
	spin(50);
	peer_free(p1);
	peer_free(p2);
	g_assert_cmpint(open_fds(), ==, base);
	reply_clear(&r1);
	reply_clear(&r2);
	states_clear(&st1);
	states_clear(&st2);
}

/* A VM whose QEMU never greets does not delay another VM's commands. */
static void test_client_stuck_peer_isolated(void)
{
	static const Step stuck[] = { WAIT_EOF, END };
	static const Step fine[] = {
		HANDSHAKE,
		EXPECT("query-status"),
		SEND(REAL_STOP "{\"return\": {\"status\": \"paused\"}, \"id\": $1}\r\n"),
		WAIT_EOF,
		END,
	};
	Peer *ps = peer_new(stuck), *pf = peer_new(fine);
	States sts = { 0 }, stf = { 0 };
	VmcgQmpOptions o = { .greeting_timeout_ms = 1500 };
	VmcgQmp *qs = client(ps->path, &o, &sts), *qf = client(pf->path, NULL, &stf);
	Reply r = { 0 };
	gint64 t0 = g_get_monotonic_time();

	vmcg_qmp_connect(qs);
	vmcg_qmp_connect(qf);
	vmcg_qmp_execute(qf, "query-status", NULL, on_reply, &r);
	WAIT_FOR(r.calls);
	g_assert_cmpstr(ret_string(r.ret, "status"), ==, "paused");
	g_assert_cmpint(g_get_monotonic_time() - t0, <, 1500 * 1000);
	g_assert_cmpint(vmcg_qmp_get_state(qs), ==, VMCG_QMP_STATE_CONNECTING);
	WAIT_FOR(sts.n == 2);
	g_assert_error(last_error(&sts), G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
	g_assert_cmpint(vmcg_qmp_get_state(qf), ==, VMCG_QMP_STATE_READY);
	vmcg_qmp_free(qs);
	vmcg_qmp_free(qf);
	peer_free(ps);
	peer_free(pf);
	reply_clear(&r);
	states_clear(&sts);
	states_clear(&stf);
}

/*
 * Backoff with nothing listening: delays of 40, 80, 160, 160 ms between
 * attempts (min 40, max 160).
 */
static void test_client_reconnect_backoff(void)
{
	States st = { 0 };
	VmcgQmp *q = client("/nonexistent/qmp.sock", NULL, &st);
	static const int want_ms[] = { 40, 80, 160, 160 };

	vmcg_qmp_set_reconnect(q, true, 40, 160);
	vmcg_qmp_connect(q);
	WAIT_FOR(states_count(&st, VMCG_QMP_STATE_CONNECTING) == 5);
	for (int i = 0; i < 4; i++) {
		/*
		 * CONNECTING at 2i, DISCONNECTED at 2i+1, the next CONNECTING
		 * at 2i+2. The delay is armed between the first two, so it is
		 * measured from the first.
		 */
		gint64 d = (st.when_usec[2 * i + 2] - st.when_usec[2 * i]) / 1000;

		g_assert_cmpint(st.state[2 * i], ==, VMCG_QMP_STATE_CONNECTING);
		g_assert_cmpint(st.state[2 * i + 1], ==, VMCG_QMP_STATE_DISCONNECTED);
		g_assert_cmpint(d, >=, want_ms[i]);
		g_assert_cmpint(d, <, want_ms[i] + 2000);
	}
	/* Off: the pending retry is cancelled. */
	vmcg_qmp_set_reconnect(q, false, 0, 0);
	{
		int n = st.n;

		spin(400);
		g_assert_cmpint(st.n, <=, n + 1);
		g_assert_cmpint(vmcg_qmp_get_state(q), ==, VMCG_QMP_STATE_DISCONNECTED);
	}
	vmcg_qmp_free(q);
	states_clear(&st);
}

/* A QEMU that drops the connection after the handshake: READY again. */
static void test_client_reconnect_after_eof(void)
{
	static const Step steps[] = { HANDSHAKE, SLEEP(30), END };
	Peer *p = peer_new_n(steps, 3);
	States st = { 0 };
	VmcgQmp *q = client(p->path, NULL, &st);

	vmcg_qmp_set_reconnect(q, true, 20, 1000);
	vmcg_qmp_connect(q);
	WAIT_FOR(states_count(&st, VMCG_QMP_STATE_READY) == 3);
	vmcg_qmp_set_reconnect(q, false, 0, 0);
	WAIT_FOR(st.state[st.n - 1] == VMCG_QMP_STATE_DISCONNECTED);
	for (int i = 0; i + 2 < st.n; i += 3) {
		g_assert_cmpint(st.state[i], ==, VMCG_QMP_STATE_CONNECTING);
		g_assert_cmpint(st.state[i + 1], ==, VMCG_QMP_STATE_READY);
		g_assert_cmpint(st.state[i + 2], ==, VMCG_QMP_STATE_DISCONNECTED);
		g_assert_error(st.error[i + 2], G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
	}
	vmcg_qmp_free(q);
	peer_free(p);
	states_clear(&st);
}

/* ------------------------------------------------------------------------
 * Client against a real QEMU
 */

static void test_client_real_qemu(void)
{
	g_autofree char *qemu = g_find_program_in_path("qemu-system-x86_64");
	g_autoptr(GError) err = NULL;
	g_autofree char *dir = NULL, *path = NULL, *qmparg = NULL;
	g_autoptr(GSubprocess) proc = NULL;
	States st = { 0 };
	Reply status = { 0 }, version = { 0 }, quit = { 0 }, unknown = { 0 };
	g_autoptr(GString) log = g_string_new(NULL);
	Events ev = { .log = log };
	VmcgQmpOptions o = { .command_timeout_ms = 20000 };
	VmcgQmp *q;
	json_object *v;
	int major, minor, micro;

	if (!qemu) {
		g_test_skip("qemu-system-x86_64 is not installed (Debian: qemu-system-x86)");
		return;
	}
	dir = g_dir_make_tmp("vmcg-qmp-XXXXXX", &err);
	g_assert_no_error(err);
	path = g_build_filename(dir, "qmp.sock", NULL);
	qmparg = g_strdup_printf("unix:%s,server=on,wait=off", path);
	proc = g_subprocess_new(G_SUBPROCESS_FLAGS_NONE, &err, qemu, "-machine", "none",
				"-nodefaults", "-display", "none", "-qmp", qmparg, "-S", NULL);
	g_assert_no_error(err);

	/* QEMU creates the socket when it is up: reconnect until it is there. */
	q = client(path, &o, &st);
	vmcg_qmp_set_event_callback(q, on_event, &ev);
	vmcg_qmp_set_reconnect(q, true, 20, 200);
	vmcg_qmp_connect(q);
	WAIT_FOR(vmcg_qmp_get_state(q) == VMCG_QMP_STATE_READY);
	vmcg_qmp_set_reconnect(q, false, 0, 0);

	vmcg_qmp_execute(q, "query-status", NULL, on_reply, &status);
	vmcg_qmp_execute(q, "query-version", NULL, on_reply, &version);
	vmcg_qmp_execute(q, "no-such-command", NULL, on_reply, &unknown);
	WAIT_FOR(status.calls && version.calls && unknown.calls);
	g_assert_no_error(status.error);
	g_assert_cmpstr(ret_string(status.ret, "status"), ==, "prelaunch");
	g_assert_true(json_object_object_get_ex(status.ret, "running", &v));
	g_assert_false(json_object_get_boolean(v));
	g_assert_no_error(version.error);
	g_assert_true(json_object_object_get_ex(version.ret, "qemu", &v));
	g_assert_true(vmcg_qmp_get_qemu_version(q, &major, &minor, &micro));
	g_assert_cmpint(json_object_get_int(json_object_object_get(v, "major")), ==, major);
	g_assert_cmpint(json_object_get_int(json_object_object_get(v, "minor")), ==, minor);
	g_assert_cmpint(json_object_get_int(json_object_object_get(v, "micro")), ==, micro);
	g_assert_error(unknown.error, VMCG_QMP_ERROR, VMCG_QMP_ERROR_COMMAND_NOT_FOUND);

	vmcg_qmp_execute(q, "quit", NULL, on_reply, &quit);
	WAIT_FOR(vmcg_qmp_get_state(q) == VMCG_QMP_STATE_DISCONNECTED);
	WAIT_FOR(quit.calls);
	/* QEMU may close before its reply to quit is read: both are fine. */
	if (quit.error)
		g_assert_error(quit.error, VMCG_QMP_ERROR, VMCG_QMP_ERROR_DISCONNECTED);
	g_assert_error(last_error(&st), G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
	g_assert_nonnull(strstr(log->str, "event:SHUTDOWN"));
	g_assert_true(g_subprocess_wait(proc, NULL, &err));
	g_assert_no_error(err);
	g_assert_true(g_subprocess_get_if_exited(proc));
	g_assert_cmpint(g_subprocess_get_exit_status(proc), ==, 0);

	vmcg_qmp_free(q);
	g_unlink(path);
	g_rmdir(dir);
	reply_clear(&status);
	reply_clear(&version);
	reply_clear(&quit);
	reply_clear(&unknown);
	states_clear(&st);
}

/* The reconnect schedule: a healthy connection resets it, reaching READY does not. */
static void test_reconnect_schedule(void)
{
	static const struct {
		guint last, min, max;
		bool healthy;
		guint want;
	} t[] = {
		{ 0, 500, 30000, false, 500 },	     /* the first failure */
		{ 500, 500, 30000, false, 1000 },    /* READY then junk: no reset */
		{ 16000, 500, 30000, false, 30000 }, /* capped */
		{ 30000, 500, 30000, false, 30000 },
		{ 30000, 500, 30000, true, 500 }, /* healthy for 30 s: from the start */
		{ 0, 500, 30000, true, 500 },
		{ G_MAXUINT, 500, G_MAXUINT, false, G_MAXUINT }, /* no overflow */
	};

	for (size_t i = 0; i < G_N_ELEMENTS(t); i++)
		g_assert_cmpuint(
			vmcg_qmp_reconnect_next_ms(t[i].last, t[i].min, t[i].max, t[i].healthy), ==,
			t[i].want);
}

/* The log limit of one peer: the first, then one per period with the count. */
static void test_log_limit(void)
{
	const gint64 period = 1000;
	static const struct {
		gint64 now;
		bool logged;
		guint suppressed; /* when logged */
	} t[] = {
		{ 10, true, 0 },   { 11, false, 0 },   { 500, false, 0 }, { 1009, false, 0 },
		{ 1010, true, 3 }, { 1500, false, 0 }, { 5000, true, 1 }, { 5001, false, 0 },
	};
	VmcgQmpLogLimit l = { 0 };

	for (size_t i = 0; i < G_N_ELEMENTS(t); i++) {
		guint n = 12345;

		g_assert_cmpint(vmcg_qmp_log_limit(&l, t[i].now, period, &n), ==, t[i].logged);
		if (t[i].logged)
			g_assert_cmpuint(n, ==, t[i].suppressed);
		else
			g_assert_cmpuint(n, ==, 12345); /* set only when logged */
	}
	/* Healthy again: the count is handed back, and the next one is logged at once. */
	g_assert_cmpuint(vmcg_qmp_log_limit_reset(&l), ==, 1);
	{
		guint n;

		g_assert_true(vmcg_qmp_log_limit(&l, 5002, period, &n));
		g_assert_cmpuint(n, ==, 0);
	}
	/* now 0 (a clock at its origin) still starts a period. */
	l = (VmcgQmpLogLimit){ 0 };
	{
		guint n;

		g_assert_true(vmcg_qmp_log_limit(&l, 0, 0, &n));
		g_assert_false(vmcg_qmp_log_limit(&l, 0, 0, &n));
	}
}

/*
 * A peer that passes the handshake and then closes, again and again: the
 * delay doubles (READY is no reset); one that stayed READY past the
 * healthy time with a command answered starts again at the minimum.
 */
static void test_client_reconnect_no_reset_at_ready(void)
{
	static const Step steps[] = { HANDSHAKE, END };
	Peer *p = peer_new_n(steps, 4);
	States st = { 0 };
	VmcgQmpOptions o = { .healthy_ms = 60000 };
	VmcgQmp *q = client(p->path, &o, &st);
	gint64 ready[4];
	int k = 0;

	vmcg_qmp_set_reconnect(q, true, 40, 1000);
	vmcg_qmp_connect(q);
	WAIT_FOR(states_count(&st, VMCG_QMP_STATE_READY) == 4);
	vmcg_qmp_set_reconnect(q, false, 0, 0);
	for (int i = 0; i < st.n && k < 4; i++)
		if (st.state[i] == VMCG_QMP_STATE_READY)
			ready[k++] = st.when_usec[i];
	/* 40, 80, 160 ms between the attempts: it doubled although each reached READY. */
	g_assert_cmpint((ready[1] - ready[0]) / 1000, >=, 40);
	g_assert_cmpint((ready[2] - ready[1]) / 1000, >=, 80);
	g_assert_cmpint((ready[3] - ready[2]) / 1000, >=, 160);
	g_assert_false(vmcg_qmp_healthy(q));
	vmcg_qmp_free(q);
	peer_free(p);
	states_clear(&st);
}

/*
 * The wire is written out by hand (qmp-message.c): the same bytes as
 * json-c prints for the object, whatever the command, arguments and id.
 */
static void test_command_wire(void)
{
	static const struct {
		const char *command, *args, *id;
	} rows[] = {
		{ "query-balloon", NULL, "vmcg-1" },
		{ "qom-get",
		  "{\"path\":\"/machine/peripheral/balloon0\",\"property\":\"guest-stats\"}",
		  "vmcg-18446744073709551615" },
		{ "balloon", "{\"value\":536870912}", "vmcg-7" },
		{ "qom-set", "{\"path\":\"/a b\\\\c\\\"d\",\"value\":\"\\u00e9\\n\"}", "x" },
		{ "odd \"command\"/\\", "{}", "id with spaces/" },
		{ "", NULL, "" },
		{ "caf\xc3\xa9", "[]", "\x01" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		g_autoptr(json_object) args =
			rows[i].args ? json_tokener_parse(rows[i].args) : NULL;
		g_autoptr(json_object) root = json_object_new_object();
		g_autofree char *want = NULL, *got = NULL;

		g_assert_true(!rows[i].args || args);
		json_object_object_add(root, "execute", json_object_new_string(rows[i].command));
		if (args)
			json_object_object_add(root, "arguments", json_object_get(args));
		json_object_object_add(root, "id", json_object_new_string(rows[i].id));
		want = g_strconcat(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN),
				   "\r\n", NULL);
		got = vmcg_qmp_command_wire(rows[i].command, args, rows[i].id);
		g_assert_cmpstr(got, ==, want);
		/* The same bytes with the arguments as text (vmcg_qmp_execute_fast()). */
		if (args) {
			g_autoptr(GString) w = g_string_new(NULL);

			vmcg_qmp_command_wire_append(
				w, rows[i].command, NULL,
				json_object_to_json_string_ext(args, JSON_C_TO_STRING_PLAIN),
				rows[i].id);
			g_assert_cmpstr(w->str, ==, want);
		}
	}
}

static void test_id_format(void)
{
	static const struct {
		guint64 n;
		const char *want;
	} rows[] = {
		{ 0, "vmcg-0" },
		{ 1, "vmcg-1" },
		{ 10, "vmcg-10" },
		{ 4294967296, "vmcg-4294967296" },
		{ UINT64_MAX, "vmcg-18446744073709551615" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		char buf[VMCG_QMP_ID_MAX];
		g_autofree char *dup = vmcg_qmp_id(rows[i].n);

		g_assert_cmpuint(vmcg_qmp_id_format(buf, rows[i].n), ==, strlen(rows[i].want));
		g_assert_cmpstr(buf, ==, rows[i].want);
		g_assert_cmpstr(dup, ==, rows[i].want);
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);

	g_test_add_func("/qmp/command-wire", test_command_wire);
	g_test_add_func("/qmp/id-format", test_id_format);
	g_test_add_func("/qmp/parse/greeting", test_parse_greeting);
	g_test_add_func("/qmp/parse/return", test_parse_return);
	g_test_add_func("/qmp/parse/error", test_parse_error);
	g_test_add_func("/qmp/parse/event", test_parse_event);
	g_test_add_func("/qmp/parse/unknown-members", test_parse_unknown_members);
	g_test_add_func("/qmp/parse/malformed", test_parse_malformed);
	g_test_add_func("/qmp/parse/depth", test_parse_depth);
	g_test_add_func("/qmp/parse/numbers", test_parse_numbers);
	g_test_add_func("/qmp/parse/classify-built", test_classify_built);
	g_test_add_func("/qmp/client/handshake", test_client_handshake);
	g_test_add_func("/qmp/client/ids-and-events", test_client_ids_and_events);
	g_test_add_func("/qmp/client/batched-writes", test_client_batched_writes);
	g_test_add_func("/qmp/client/fast-path", test_client_fast_path);
	g_test_add_func("/qmp/client/deadline-storm", test_client_deadline_storm);
	g_test_add_func("/qmp/client/greeting-timeout", test_client_greeting_timeout);
	g_test_add_func("/qmp/client/capabilities-error", test_client_capabilities_error);
	g_test_add_func("/qmp/client/capabilities-timeout", test_client_capabilities_timeout);
	g_test_add_func("/qmp/client/connect-errors", test_client_connect_errors);
	g_test_add_func("/qmp/client/command-timeout", test_client_command_timeout);
	g_test_add_func("/qmp/client/deadline-order", test_client_deadline_order);
	g_test_add_func("/qmp/client/eof-mid-message", test_client_eof_mid_message);
	g_test_add_func("/qmp/client/eof-before-greeting", test_client_eof_before_greeting);
	g_test_add_func("/qmp/client/oversized-reply", test_client_oversized);
	g_test_add_func("/qmp/client/protocol-errors", test_client_protocol_errors);
	g_test_add_func("/qmp/client/execute-errors", test_client_execute_errors);
	g_test_add_func("/qmp/client/free-pending", test_client_free_pending);
	g_test_add_func("/qmp/client/free-in-callback", test_client_free_in_callback);
	g_test_add_func("/qmp/client/shared-source", test_client_shared_source);
	g_test_add_func("/qmp/client/free-other-in-dispatch", test_client_free_other_in_dispatch);
	g_test_add_func("/qmp/client/stuck-peer-isolated", test_client_stuck_peer_isolated);
	g_test_add_func("/qmp/client/reconnect-backoff", test_client_reconnect_backoff);
	g_test_add_func("/qmp/client/reconnect-after-eof", test_client_reconnect_after_eof);
	g_test_add_func("/qmp/reconnect-schedule", test_reconnect_schedule);
	g_test_add_func("/qmp/log-limit", test_log_limit);
	g_test_add_func("/qmp/client/reconnect-no-reset-at-ready",
			test_client_reconnect_no_reset_at_ready);
	g_test_add_func("/qmp/client/real-qemu", test_client_real_qemu);
	return g_test_run();
}
