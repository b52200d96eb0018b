// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The API's request-body parsers (daemon/api-parse.c), without a server: every
 * accepted form with what it yields, and every malformed body with the
 * error it must get. A refused body leaves the caller's result untouched.
 */
#include <glib.h>
#include <string.h>

#include "api.h"
#include "vmcg/oom.h"
#include "vmcg/size.h"

typedef enum Parser {
	P_GROUP,
	P_VM_ADD,
	P_VM_UPDATE,
	P_RECLAIM,
} Parser;

/* Run @p over @body; on success the result is thrown away. */
static gboolean run(Parser p, const char *body, gsize len, GError **error)
{
	VmcgGroupSettings gs;
	g_auto(VmcgApiVmRequest) vr = { 0 };
	uint64_t bytes;

	switch (p) {
	case P_GROUP:
		return vmcg_api_parse_group_settings(body, len, &gs, error);
	case P_VM_ADD:
		return vmcg_api_parse_vm_add(body, len, &vr, error);
	case P_VM_UPDATE:
		return vmcg_api_parse_vm_update(body, len, &vr, error);
	case P_RECLAIM:
		return vmcg_api_parse_reclaim(body, len, &bytes, error);
	}
	g_assert_not_reached();
}

/* ---- malformed bodies: one test case each ---- */

typedef struct BadCase {
	const char *name;
	Parser parser;
	const char *body;
	gsize len; /* 0: strlen(body) */
	VmcgApiError code;
	const char *message; /* a substring of the message, or NULL */
} BadCase;

#define ADD_OK "\"name\":\"vm1\",\"qmp\":\"/run/vm1.qmp\""

static const BadCase bad_cases[] = {
	/* not JSON */
	{ "syntax/open", P_GROUP, "{", 0, VMCG_API_ERROR_SYNTAX, "ends before" },
	{ "syntax/missing-value", P_GROUP, "{\"memory.max\":}", 0, VMCG_API_ERROR_SYNTAX, NULL },
	{ "syntax/trailing-comma", P_GROUP, "{\"memory.max\":1,}", 0, VMCG_API_ERROR_SYNTAX, NULL },
	{ "syntax/trailing-garbage", P_GROUP, "{}x", 0, VMCG_API_ERROR_SYNTAX, NULL },
	{ "syntax/two-objects", P_GROUP, "{} {}", 0, VMCG_API_ERROR_SYNTAX, NULL },
	{ "syntax/single-quotes", P_GROUP, "{'memory.max':1}", 0, VMCG_API_ERROR_SYNTAX, NULL },
	{ "syntax/nan", P_GROUP, "{\"memory.max\":NaN}", 0, VMCG_API_ERROR_SYNTAX, NULL },
	{ "syntax/infinity", P_GROUP, "{\"memory.max\":Infinity}", 0, VMCG_API_ERROR_SYNTAX, NULL },
	{ "syntax/comment", P_GROUP, "{/* c */}", 0, VMCG_API_ERROR_SYNTAX, NULL },
	{ "syntax/leading-zero", P_GROUP, "{\"memory.max\":01}", 0, VMCG_API_ERROR_SYNTAX, NULL },
	{ "syntax/bare-word", P_GROUP, "{\"oom-action\":notify}", 0, VMCG_API_ERROR_SYNTAX, NULL },
	{ "syntax/whitespace-only", P_GROUP, " \n\t ", 0, VMCG_API_ERROR_SYNTAX, "whitespace" },
	{ "syntax/nul-byte", P_GROUP, "{\"memory.max\":1}\0", 17, VMCG_API_ERROR_SYNTAX, "NUL" },
	{ "syntax/nul-inside", P_GROUP, "{\"memory.max\"\0:1}", 17, VMCG_API_ERROR_SYNTAX, "NUL" },
	{ "syntax/truncated-string", P_VM_ADD, "{\"name\":\"vm", 0, VMCG_API_ERROR_SYNTAX, NULL },
	{ "syntax/bad-escape", P_VM_ADD, "{\"name\":\"\\q\"}", 0, VMCG_API_ERROR_SYNTAX, NULL },

	/* not an object */
	{ "type/array", P_GROUP, "[]", 0, VMCG_API_ERROR_TYPE, "object" },
	{ "type/string", P_GROUP, "\"x\"", 0, VMCG_API_ERROR_TYPE, "object" },
	{ "type/number", P_RECLAIM, "5", 0, VMCG_API_ERROR_TYPE, "object" },
	{ "type/null", P_VM_ADD, "null", 0, VMCG_API_ERROR_TYPE, "object" },

	/* nesting */
	{ "depth/arrays", P_GROUP, "{\"x\":[[[[[[[[[]]]]]]]]]}", 0, VMCG_API_ERROR_DEPTH, "8" },
	{ "depth/objects", P_GROUP,
	  "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":1}}}}}}}}}", 0,
	  VMCG_API_ERROR_DEPTH, NULL },
	{ "type/deep-array", P_VM_ADD, "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", 0, VMCG_API_ERROR_TYPE,
	  NULL },
	{ "depth/deep-open-in-object", P_VM_ADD, "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[", 0,
	  VMCG_API_ERROR_DEPTH, NULL },

	/* UTF-8 */
	{ "utf8/invalid-byte", P_GROUP, "{\"memory.max\":\"\xff\"}", 0, VMCG_API_ERROR_UTF8, NULL },
	{ "utf8/overlong", P_VM_ADD, "{\"name\":\"\xc0\xaf\"}", 0, VMCG_API_ERROR_UTF8, NULL },
	{ "utf8/surrogate", P_VM_ADD, "{\"name\":\"\xed\xa0\x80\"}", 0, VMCG_API_ERROR_UTF8, NULL },
	{ "utf8/truncated", P_VM_ADD, "{\"name\":\"\xe2\x82\"}", 0, VMCG_API_ERROR_UTF8, NULL },
	{ "utf8/in-key", P_GROUP, "{\"\xfe\":1}", 0, VMCG_API_ERROR_UTF8, NULL },
	{ "syntax/non-ascii-outside-string", P_GROUP, "{\xc3\xa9}", 0, VMCG_API_ERROR_SYNTAX,
	  NULL },

	/* escaped NUL would cut a C string short */
	{ "nul-escape/value", P_VM_ADD, "{" ADD_OK ",\"group\":\"/a\\u0000b\"}", 0,
	  VMCG_API_ERROR_VALUE, "NUL" },
	{ "nul-escape/key", P_GROUP, "{\"memory.max\\u0000x\":1}", 0, VMCG_API_ERROR_VALUE, "NUL" },

	/* members */
	{ "unknown/group", P_GROUP, "{\"memory.swap.max\":1}", 0, VMCG_API_ERROR_UNKNOWN_FIELD,
	  "memory.swap.max" },
	{ "unknown/case", P_GROUP, "{\"Memory.Max\":1}", 0, VMCG_API_ERROR_UNKNOWN_FIELD, NULL },
	{ "unknown/read-only", P_GROUP, "{\"memory.current\":1}", 0, VMCG_API_ERROR_UNKNOWN_FIELD,
	  "read-only" },
	{ "unknown/read-only-children", P_GROUP, "{\"children\":[]}", 0,
	  VMCG_API_ERROR_UNKNOWN_FIELD, "read-only" },
	{ "unknown/vm-add", P_VM_ADD, "{" ADD_OK ",\"memory.max\":1}", 0,
	  VMCG_API_ERROR_UNKNOWN_FIELD, NULL },
	{ "unknown/vm-add-state", P_VM_ADD, "{" ADD_OK ",\"state\":\"ready\"}", 0,
	  VMCG_API_ERROR_UNKNOWN_FIELD, "read-only" },
	{ "unknown/vm-update-name", P_VM_UPDATE, "{\"name\":\"other\"}", 0,
	  VMCG_API_ERROR_UNKNOWN_FIELD, "read-only" },
	{ "unknown/vm-update-qmp", P_VM_UPDATE, "{\"qmp\":\"/x\"}", 0, VMCG_API_ERROR_UNKNOWN_FIELD,
	  "read-only" },
	{ "unknown/reclaim", P_RECLAIM, "{\"bytes\":1,\"swappiness\":1}", 0,
	  VMCG_API_ERROR_UNKNOWN_FIELD, NULL },
	{ "unknown/empty-key", P_GROUP, "{\"\":1}", 0, VMCG_API_ERROR_UNKNOWN_FIELD, NULL },

	{ "missing/name", P_VM_ADD, "{\"qmp\":\"/run/q\"}", 0, VMCG_API_ERROR_MISSING_FIELD,
	  "name" },
	{ "missing/qmp", P_VM_ADD, "{\"name\":\"a\"}", 0, VMCG_API_ERROR_MISSING_FIELD, "qmp" },
	{ "missing/vm-empty", P_VM_ADD, "", 0, VMCG_API_ERROR_MISSING_FIELD, NULL },
	{ "missing/bytes", P_RECLAIM, "{}", 0, VMCG_API_ERROR_MISSING_FIELD, "bytes" },
	{ "missing/reclaim-empty", P_RECLAIM, "", 0, VMCG_API_ERROR_MISSING_FIELD, "bytes" },

	/* wrong types */
	{ "type/size-double", P_GROUP, "{\"memory.max\":1.5}", 0, VMCG_API_ERROR_TYPE,
	  "memory.max" },
	{ "type/size-exponent", P_GROUP, "{\"memory.high\":1e9}", 0, VMCG_API_ERROR_TYPE, NULL },
	{ "type/size-one-point-zero", P_GROUP, "{\"memory.low\":1.0}", 0, VMCG_API_ERROR_TYPE,
	  NULL },
	{ "type/size-bool", P_GROUP, "{\"memory.min\":true}", 0, VMCG_API_ERROR_TYPE, NULL },
	{ "type/size-null", P_GROUP, "{\"memory.max\":null}", 0, VMCG_API_ERROR_TYPE, NULL },
	{ "type/size-object", P_GROUP, "{\"memory.max\":{}}", 0, VMCG_API_ERROR_TYPE, NULL },
	{ "type/size-array", P_GROUP, "{\"memory.max\":[1]}", 0, VMCG_API_ERROR_TYPE, NULL },
	{ "type/bool-int", P_GROUP, "{\"memory.oom.group\":1}", 0, VMCG_API_ERROR_TYPE,
	  "memory.oom.group" },
	{ "type/bool-string", P_GROUP, "{\"overhead-in-max\":\"true\"}", 0, VMCG_API_ERROR_TYPE,
	  NULL },
	{ "type/action-int", P_GROUP, "{\"oom-action\":1}", 0, VMCG_API_ERROR_TYPE, NULL },
	{ "type/name-int", P_VM_ADD, "{\"name\":5,\"qmp\":\"/q\"}", 0, VMCG_API_ERROR_TYPE,
	  "name" },
	{ "type/group-array", P_VM_UPDATE, "{\"group\":[\"/a\"]}", 0, VMCG_API_ERROR_TYPE, NULL },
	{ "type/priority-string", P_VM_UPDATE, "{\"oom-priority\":\"5\"}", 0, VMCG_API_ERROR_TYPE,
	  NULL },
	{ "type/priority-double", P_VM_UPDATE, "{\"oom-priority\":1.5}", 0, VMCG_API_ERROR_TYPE,
	  NULL },
	{ "type/bytes-bool", P_RECLAIM, "{\"bytes\":false}", 0, VMCG_API_ERROR_TYPE, NULL },

	/* wrong values */
	{ "value/negative", P_GROUP, "{\"memory.max\":-1}", 0, VMCG_API_ERROR_VALUE, "negative" },
	{ "value/negative-zero-ok-but-huge-negative", P_GROUP,
	  "{\"memory.max\":-99999999999999999999}", 0, VMCG_API_ERROR_VALUE, "negative" },
	{ "value/over-uint64", P_GROUP, "{\"memory.max\":99999999999999999999}", 0,
	  VMCG_API_ERROR_VALUE, "out of range: must be less than 8E, or max" },
	{ "value/uint64-max", P_GROUP, "{\"memory.max\":18446744073709551615}", 0,
	  VMCG_API_ERROR_VALUE, "out of range: must be less than 8E, or max" },
	{ "value/int64-max", P_GROUP, "{\"memory.max\":9223372036854775807}", 0,
	  VMCG_API_ERROR_VALUE, "out of range: must be less than 8E, or max" },
	{ "value/limit-plus-one", P_GROUP, "{\"memory.max\":9223372036854771713}", 0,
	  VMCG_API_ERROR_VALUE, "out of range: must be less than 8E, or max" },
	{ "value/size-string-range", P_GROUP, "{\"memory.max\":\"8E\"}", 0, VMCG_API_ERROR_VALUE,
	  "out of range" },
	{ "value/size-string-garbage", P_GROUP, "{\"memory.max\":\"12Q\"}", 0, VMCG_API_ERROR_VALUE,
	  "invalid size" },
	{ "value/size-string-empty", P_GROUP, "{\"memory.max\":\"\"}", 0, VMCG_API_ERROR_VALUE,
	  "empty value" },
	{ "value/size-string-negative", P_GROUP, "{\"memory.max\":\"-1G\"}", 0,
	  VMCG_API_ERROR_VALUE, NULL },
	{ "value/size-string-space", P_GROUP, "{\"memory.max\":\"1 G\"}", 0, VMCG_API_ERROR_VALUE,
	  NULL },
	{ "value/size-string-MAX", P_GROUP, "{\"memory.max\":\"MAX\"}", 0, VMCG_API_ERROR_VALUE,
	  NULL },
	{ "value/oom-action", P_GROUP, "{\"oom-action\":\"kill\"}", 0, VMCG_API_ERROR_VALUE,
	  "notify" },
	{ "value/name-empty", P_VM_ADD, "{\"name\":\"\",\"qmp\":\"/q\"}", 0, VMCG_API_ERROR_VALUE,
	  "name" },
	{ "value/name-slash", P_VM_ADD, "{\"name\":\"a/b\",\"qmp\":\"/q\"}", 0,
	  VMCG_API_ERROR_VALUE, "'/'" },
	{ "value/name-control", P_VM_ADD, "{\"name\":\"a\\u0001\",\"qmp\":\"/q\"}", 0,
	  VMCG_API_ERROR_VALUE, NULL },
	{ "value/name-newline", P_VM_ADD, "{\"name\":\"a\\nb\",\"qmp\":\"/q\"}", 0,
	  VMCG_API_ERROR_VALUE, NULL },
	{ "value/name-too-long", P_VM_ADD,
	  "{\"qmp\":\"/q\",\"name\":\"0123456789012345678901234567890123456789012345678901234567"
	  "890123456789012345678901234567890123456789012345678901234567890123456789\"}",
	  0, VMCG_API_ERROR_VALUE, "longer" },
	{ "value/qmp-relative", P_VM_ADD, "{\"name\":\"a\",\"qmp\":\"run/q\"}", 0,
	  VMCG_API_ERROR_VALUE, "absolute" },
	{ "value/qmp-empty", P_VM_ADD, "{\"name\":\"a\",\"qmp\":\"\"}", 0, VMCG_API_ERROR_VALUE,
	  NULL },
	{ "value/qmp-too-long", P_VM_ADD,
	  "{\"name\":\"a\",\"qmp\":\"/1234567890123456789012345678901234567890123456789012345678"
	  "901234567890123456789012345678901234567890123456789\"}",
	  0, VMCG_API_ERROR_VALUE, "longer than 107 bytes" },
	{ "value/group-relative", P_VM_ADD, "{" ADD_OK ",\"group\":\"tenants\"}", 0,
	  VMCG_API_ERROR_VALUE, "group" },
	{ "value/group-dotdot", P_VM_UPDATE, "{\"group\":\"/a/../b\"}", 0, VMCG_API_ERROR_VALUE,
	  NULL },
	{ "value/group-trailing-slash", P_VM_UPDATE, "{\"group\":\"/a/\"}", 0, VMCG_API_ERROR_VALUE,
	  NULL },
	{ "value/group-bad-char", P_VM_UPDATE, "{\"group\":\"/a b\"}", 0, VMCG_API_ERROR_VALUE,
	  NULL },
	{ "value/group-too-deep", P_VM_UPDATE, "{\"group\":\"/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q\"}",
	  0, VMCG_API_ERROR_VALUE, "too long" },
	{ "value/priority-high", P_VM_UPDATE, "{\"oom-priority\":1001}", 0, VMCG_API_ERROR_VALUE,
	  "between -1000 and 1000" },
	{ "value/priority-low", P_VM_ADD, "{" ADD_OK ",\"oom-priority\":-1001}", 0,
	  VMCG_API_ERROR_VALUE, NULL },
	{ "value/priority-huge", P_VM_UPDATE, "{\"oom-priority\":99999999999999999999}", 0,
	  VMCG_API_ERROR_VALUE, NULL },
	{ "value/priority-int32-wrap", P_VM_UPDATE, "{\"oom-priority\":4294967297}", 0,
	  VMCG_API_ERROR_VALUE, NULL },
	{ "value/floor-negative", P_VM_UPDATE, "{\"floor\":-4096}", 0, VMCG_API_ERROR_VALUE, NULL },
	{ "value/reclaim-max", P_RECLAIM, "{\"bytes\":\"max\"}", 0, VMCG_API_ERROR_VALUE, "max" },
	{ "value/reclaim-negative", P_RECLAIM, "{\"bytes\":-1}", 0, VMCG_API_ERROR_VALUE, NULL },
	{ "value/reclaim-absurd", P_RECLAIM, "{\"bytes\":\"100E\"}", 0, VMCG_API_ERROR_VALUE,
	  NULL },
	/* backends */
	{ "value/backend-unknown", P_VM_ADD, "{" ADD_OK ",\"backend\":\"libvirt\"}", 0,
	  VMCG_API_ERROR_VALUE, "backend: unknown backend \"libvirt\": the only backend is qmp" },
	{ "type/backend-int", P_VM_ADD, "{" ADD_OK ",\"backend\":1}", 0, VMCG_API_ERROR_TYPE,
	  "backend" },
	{ "value/address-relative", P_VM_ADD, "{\"name\":\"a\",\"address\":\"q\"}", 0,
	  VMCG_API_ERROR_VALUE, "address: \"q\" is not an absolute path" },
	{ "value/address-and-qmp-differ", P_VM_ADD, "{" ADD_OK ",\"address\":\"/other\"}", 0,
	  VMCG_API_ERROR_VALUE, "give one of them" },
	{ "missing/address", P_VM_ADD, "{\"name\":\"a\",\"backend\":\"qmp\"}", 0,
	  VMCG_API_ERROR_MISSING_FIELD, "qmp: required (or address)" },
	{ "unknown/vm-update-backend", P_VM_UPDATE, "{\"backend\":\"qmp\"}", 0,
	  VMCG_API_ERROR_UNKNOWN_FIELD, "read-only" },
	{ "unknown/vm-update-address", P_VM_UPDATE, "{\"address\":\"/q\"}", 0,
	  VMCG_API_ERROR_UNKNOWN_FIELD, "read-only" },
	/* the first error found is reported, and nothing is returned */
	{ "value/second-member-bad", P_GROUP, "{\"memory.min\":\"1G\",\"memory.max\":-1}", 0,
	  VMCG_API_ERROR_VALUE, "memory.max" },
};

static void test_bad(gconstpointer data)
{
	const BadCase *c = data;
	g_autoptr(GError) error = NULL;
	gsize len = c->len ? c->len : strlen(c->body);

	g_assert_false(run(c->parser, c->body, len, &error));
	g_assert_error(error, VMCG_API_ERROR, (gint)c->code);
	g_assert_nonnull(error->message);
	if (c->message && !strstr(error->message, c->message))
		g_error("message \"%s\" does not contain \"%s\"", error->message, c->message);
}

/* ---- size limit ---- */

static void test_too_large(void)
{
	gsize len = VMCG_API_BODY_LIMIT_MAX + 1;
	g_autofree char *body = g_malloc(len);
	g_autoptr(GError) error = NULL;
	VmcgGroupSettings s;

	/* A valid object padded with whitespace: refused for its size alone. */
	memset(body, ' ', len);
	body[0] = '{';
	body[len - 1] = '}';
	g_assert_false(vmcg_api_parse_group_settings(body, len, &s, &error));
	g_assert_error(error, VMCG_API_ERROR, VMCG_API_ERROR_TOO_LARGE);
	g_clear_error(&error);

	/* At the limit it is fine. */
	body[1] = '{';
	g_assert_true(vmcg_api_parse_group_settings(body + 1, len - 1, &s, &error));
	g_assert_no_error(error);
}

/* ---- accepted forms ---- */

static void assert_no_knobs(const VmcgGroupSettings *s)
{
	g_assert_false(s->has_min || s->has_low || s->has_high || s->has_max || s->has_oom_group ||
		       s->has_oom_action || s->has_overhead_in_max);
}

static void test_group_empty(void)
{
	g_autoptr(GError) error = NULL;
	VmcgGroupSettings s;

	/* An empty body is an empty object: create with defaults, or change nothing. */
	memset(&s, 0xa5, sizeof(s));
	g_assert_true(vmcg_api_parse_group_settings("", 0, &s, &error));
	g_assert_no_error(error);
	assert_no_knobs(&s);
	memset(&s, 0xa5, sizeof(s));
	g_assert_true(vmcg_api_parse_group_settings(" { } \n", 6, &s, &error));
	assert_no_knobs(&s);
	/* NULL is fine with len 0 */
	memset(&s, 0xa5, sizeof(s));
	g_assert_true(vmcg_api_parse_group_settings(NULL, 0, &s, &error));
	assert_no_knobs(&s);
}

static void test_group_all(void)
{
	static const char body[] = "{\"memory.min\":0,\"memory.low\":\"512M\","
				   "\"memory.high\":\"1.5G\",\"memory.max\":\"max\","
				   "\"memory.oom.group\":true,\"oom-action\":\"pause\","
				   "\"overhead-in-max\":false}";
	g_autoptr(GError) error = NULL;
	VmcgGroupSettings s;

	g_assert_true(vmcg_api_parse_group_settings(body, strlen(body), &s, &error));
	g_assert_no_error(error);
	g_assert_true(s.has_min && s.has_low && s.has_high && s.has_max);
	g_assert_cmpuint(s.min, ==, 0);
	g_assert_cmpuint(s.low, ==, 512u << 20);
	g_assert_cmpuint(s.high, ==, 3ull << 29);
	g_assert_cmpuint(s.max, ==, VMCG_BYTES_MAX);
	g_assert_true(s.has_oom_group && s.oom_group);
	g_assert_true(s.has_oom_action);
	g_assert_cmpint(s.oom_action, ==, VMCG_OOM_PAUSE);
	g_assert_true(s.has_overhead_in_max && !s.overhead_in_max);
}

static void test_group_partial(void)
{
	static const char body[] = "{\"memory.max\":1073741824,\"oom-action\":\"destroy\"}";
	g_autoptr(GError) error = NULL;
	VmcgGroupSettings s;

	g_assert_true(vmcg_api_parse_group_settings(body, strlen(body), &s, &error));
	g_assert_true(s.has_max);
	g_assert_cmpuint(s.max, ==, 1ull << 30);
	g_assert_false(s.has_min || s.has_low || s.has_high || s.has_oom_group ||
		       s.has_overhead_in_max);
	g_assert_cmpint(s.oom_action, ==, VMCG_OOM_DESTROY);
}

/* The largest size accepted is VMCG_SIZE_LIMIT, as an integer or a string. */
static void test_size_limit(void)
{
	g_autofree char *exact = NULL, *str = NULL;
	g_autoptr(GError) error = NULL;
	VmcgGroupSettings s;
	char buf[VMCG_SIZE_STRLEN];

	exact = g_strdup_printf("{\"memory.high\":%" G_GUINT64_FORMAT "}",
				(guint64)VMCG_SIZE_LIMIT);
	g_assert_true(vmcg_api_parse_group_settings(exact, strlen(exact), &s, &error));
	g_assert_no_error(error);
	g_assert_cmpuint(s.high, ==, VMCG_SIZE_LIMIT);

	g_assert_cmpint(vmcg_size_format(VMCG_SIZE_LIMIT, buf, sizeof(buf)), ==, 0);
	str = g_strdup_printf("{\"memory.high\":\"%s\"}", buf);
	g_assert_true(vmcg_api_parse_group_settings(str, strlen(str), &s, &error));
	g_assert_cmpuint(s.high, ==, VMCG_SIZE_LIMIT);

	/* -0 is 0 */
	g_assert_true(vmcg_api_parse_group_settings("{\"memory.min\":-0}", 17, &s, &error));
	g_assert_cmpuint(s.min, ==, 0);
}

/* json-c keeps the last of repeated members; so do we (RFC 8259 leaves it open). */
static void test_duplicate(void)
{
	static const char body[] = "{\"memory.max\":1,\"memory.max\":\"2K\"}";
	g_autoptr(GError) error = NULL;
	VmcgGroupSettings s;

	g_assert_true(vmcg_api_parse_group_settings(body, strlen(body), &s, &error));
	g_assert_cmpuint(s.max, ==, 2048);
}

/* The result is set only on success. */
static void test_untouched_on_error(void)
{
	static const char bad_group[] = "{\"memory.min\":\"1G\",\"memory.max\":true}";
	static const char bad_vm[] = "{\"name\":\"a\",\"qmp\":\"/q\",\"group\":\"x\"}";
	g_autoptr(GError) error = NULL;
	VmcgGroupSettings s, before;
	VmcgApiVmRequest vr, vr_before;
	uint64_t bytes = 12345;

	memset(&s, 0x5a, sizeof(s));
	before = s;
	g_assert_false(vmcg_api_parse_group_settings(bad_group, strlen(bad_group), &s, &error));
	g_assert_cmpmem(&s, sizeof(s), &before, sizeof(before));
	g_clear_error(&error);

	/* "name" and "qmp" were read and freed again: valgrind sees no leak */
	memset(&vr, 0x5a, sizeof(vr));
	vr_before = vr;
	g_assert_false(vmcg_api_parse_vm_add(bad_vm, strlen(bad_vm), &vr, &error));
	g_assert_cmpmem(&vr, sizeof(vr), &vr_before, sizeof(vr_before));
	g_clear_error(&error);

	g_assert_false(vmcg_api_parse_reclaim("{\"bytes\":-5}", 12, &bytes, &error));
	g_assert_cmpuint(bytes, ==, 12345);
}

static void test_vm_add(void)
{
	static const char minimal[] =
		"{\"name\":\"web 1 \xc3\xa9\",\"qmp\":\"/run/qemu/web1.qmp\"}";
	static const char full[] = "{\"name\":\"db\",\"qmp\":\"/run/db.qmp\",\"group\":"
				   "\"/tenants/acme\",\"floor\":\"256M\",\"oom-priority\":-1000}";
	g_auto(VmcgApiVmRequest) r1 = { 0 };
	g_auto(VmcgApiVmRequest) r2 = { 0 };
	g_autoptr(GError) error = NULL;

	g_assert_true(vmcg_api_parse_vm_add(minimal, strlen(minimal), &r1, &error));
	g_assert_no_error(error);
	g_assert_cmpstr(r1.name, ==, "web 1 \xc3\xa9");
	g_assert_cmpstr(r1.qmp, ==, "/run/qemu/web1.qmp");
	g_assert_null(r1.group);
	g_assert_false(r1.settings.has_floor || r1.settings.has_oom_priority);

	g_assert_true(vmcg_api_parse_vm_add(full, strlen(full), &r2, &error));
	g_assert_cmpstr(r2.group, ==, "/tenants/acme");
	g_assert_true(r2.settings.has_floor);
	g_assert_cmpuint(r2.settings.floor, ==, 256u << 20);
	g_assert_true(r2.settings.has_oom_priority);
	g_assert_cmpint(r2.settings.oom_priority, ==, VMCG_OOM_PRIORITY_MIN);
}

static void test_vm_limits(void)
{
	g_autofree char *name128 = g_strnfill(VMCG_VM_NAME_MAX, 'n');
	g_autofree char *path107 = g_strnfill(107, 'p');
	g_autofree char *body = NULL;
	g_auto(VmcgApiVmRequest) r = { 0 };
	g_autoptr(GError) error = NULL;

	path107[0] = '/';
	body = g_strdup_printf("{\"name\":\"%s\",\"qmp\":\"%s\",\"floor\":\"max\","
			       "\"oom-priority\":1000}",
			       name128, path107);
	g_assert_true(vmcg_api_parse_vm_add(body, strlen(body), &r, &error));
	g_assert_no_error(error);
	g_assert_cmpuint(strlen(r.name), ==, VMCG_VM_NAME_MAX);
	g_assert_cmpuint(r.settings.floor, ==, VMCG_BYTES_MAX);
	g_assert_cmpint(r.settings.oom_priority, ==, VMCG_OOM_PRIORITY_MAX);
}

static void test_vm_update(void)
{
	static const char body[] = "{\"group\":\"/\",\"floor\":4096}";
	g_auto(VmcgApiVmRequest) r = { 0 };
	g_auto(VmcgApiVmRequest) empty = { 0 };
	g_autoptr(GError) error = NULL;

	g_assert_true(vmcg_api_parse_vm_update(body, strlen(body), &r, &error));
	g_assert_no_error(error);
	g_assert_null(r.name);
	g_assert_null(r.qmp);
	g_assert_cmpstr(r.group, ==, "/");
	g_assert_true(r.settings.has_floor);
	g_assert_cmpuint(r.settings.floor, ==, 4096);
	g_assert_false(r.settings.has_oom_priority);

	g_assert_true(vmcg_api_parse_vm_update("{}", 2, &empty, &error));
	g_assert_null(empty.group);
	g_assert_false(empty.settings.has_floor || empty.settings.has_oom_priority);
}

static void test_reclaim(void)
{
	g_autoptr(GError) error = NULL;
	uint64_t bytes = 0;

	g_assert_true(vmcg_api_parse_reclaim("{\"bytes\":4096}", 14, &bytes, &error));
	g_assert_cmpuint(bytes, ==, 4096);
	g_assert_true(vmcg_api_parse_reclaim("{\"bytes\":\"1G\"}", 14, &bytes, &error));
	g_assert_cmpuint(bytes, ==, 1ull << 30);
	g_assert_true(vmcg_api_parse_reclaim("{\"bytes\":0}", 11, &bytes, &error));
	g_assert_cmpuint(bytes, ==, 0);
	g_assert_no_error(error);
}

/* A body need not be NUL-terminated: only @len bytes are read. */
static void test_not_terminated(void)
{
	g_autoptr(GError) error = NULL;
	char buf[32];
	uint64_t bytes = 0;

	memcpy(buf, "{\"bytes\":4096}garbage-after-len", 31);
	g_assert_true(vmcg_api_parse_reclaim(buf, 14, &bytes, &error));
	g_assert_cmpuint(bytes, ==, 4096);
	/* the same bytes one short are incomplete */
	g_assert_false(vmcg_api_parse_reclaim(buf, 13, &bytes, &error));
	g_assert_error(error, VMCG_API_ERROR, VMCG_API_ERROR_SYNTAX);
}

/* A VM's identity: backend (default qmp) and address, given as "qmp" or "address". */
static void test_vm_backend(void)
{
	static const char *const bodies[] = {
		"{\"name\":\"a\",\"qmp\":\"/run/a.qmp\"}",
		"{\"name\":\"a\",\"address\":\"/run/a.qmp\"}",
		"{\"name\":\"a\",\"backend\":\"qmp\",\"address\":\"/run/a.qmp\"}",
		"{\"name\":\"a\",\"backend\":\"qmp\",\"qmp\":\"/run/a.qmp\","
		"\"address\":\"/run/a.qmp\"}",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(bodies); i++) {
		g_auto(VmcgApiVmRequest) vr = { 0 };
		g_autoptr(GError) error = NULL;

		g_assert_true(vmcg_api_parse_vm_add(bodies[i], strlen(bodies[i]), &vr, &error));
		g_assert_no_error(error);
		g_assert_cmpstr(vr.backend, ==, "qmp");
		g_assert_cmpstr(vr.address, ==, "/run/a.qmp");
		g_assert_cmpstr(vr.qmp, ==, "/run/a.qmp");
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);

	for (size_t i = 0; i < G_N_ELEMENTS(bad_cases); i++) {
		g_autofree char *path = g_strdup_printf("/api-parse/bad/%s", bad_cases[i].name);

		g_test_add_data_func(path, &bad_cases[i], test_bad);
	}
	g_test_add_func("/api-parse/too-large", test_too_large);
	g_test_add_func("/api-parse/group/empty", test_group_empty);
	g_test_add_func("/api-parse/group/all", test_group_all);
	g_test_add_func("/api-parse/group/partial", test_group_partial);
	g_test_add_func("/api-parse/group/size-limit", test_size_limit);
	g_test_add_func("/api-parse/group/duplicate", test_duplicate);
	g_test_add_func("/api-parse/untouched-on-error", test_untouched_on_error);
	g_test_add_func("/api-parse/vm/add", test_vm_add);
	g_test_add_func("/api-parse/vm/limits", test_vm_limits);
	g_test_add_func("/api-parse/vm/update", test_vm_update);
	g_test_add_func("/api-parse/vm/backend", test_vm_backend);
	g_test_add_func("/api-parse/reclaim", test_reclaim);
	g_test_add_func("/api-parse/not-terminated", test_not_terminated);
	return g_test_run();
}
