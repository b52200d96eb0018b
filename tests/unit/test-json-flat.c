// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The flat JSON reader (daemon/json-flat.c), table-driven: what it reads
 * and how (each accepted row is also parsed by json-c in strict mode, which
 * must accept it with the same values), and what it declines (json-c may
 * accept those or not: declining only sends the message the slow way).
 */
#include <string.h>

#include <glib.h>
#include <json-c/json.h>

#include "json-flat.h"
#include "json-util.h" /* g_autoptr(json_object) */

/* Node @k of @f holds what json-c made of the same text, @o. */
static void same_as_json_c(const VmcgJsonFlat *f, int k, json_object *o)
{
	const VmcgJsonFlatNode *n = &f->node[k];

	switch (n->type) {
	case VMCG_JSON_FLAT_OBJECT:
		g_assert_true(json_object_is_type(o, json_type_object));
		g_assert_cmpint(json_object_object_length(o), ==, vmcg_json_flat_count(f, k));
		for (int m = k + 1; m < f->n; m++) {
			g_autofree char *key = NULL;
			json_object *v = NULL;

			if (f->node[m].parent != k)
				continue;
			key = g_strndup(f->node[m].key, f->node[m].key_len);
			g_assert_true(json_object_object_get_ex(o, key, &v));
			same_as_json_c(f, m, v);
		}
		break;
	case VMCG_JSON_FLAT_INT:
		g_assert_true(json_object_is_type(o, json_type_int));
		g_assert_cmpint(json_object_get_int64(o), ==, n->i);
		break;
	case VMCG_JSON_FLAT_UINT:
		g_assert_true(json_object_is_type(o, json_type_int));
		g_assert_cmpuint(json_object_get_uint64(o), ==, n->u);
		break;
	case VMCG_JSON_FLAT_STRING:
		g_assert_true(json_object_is_type(o, json_type_string));
		if (!n->escaped)
			g_assert_cmpmem(json_object_get_string(o), json_object_get_string_len(o),
					n->str, n->len);
		break;
	case VMCG_JSON_FLAT_OTHER:
		g_assert_true(!o || json_object_is_type(o, json_type_boolean));
		break;
	}
}

static json_object *json_c_strict(const char *text)
{
	struct json_tokener *tok = json_tokener_new();
	json_object *o;

	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, text, (int)strlen(text));
	g_assert_cmpint(json_tokener_get_error(tok), ==, json_tokener_success);
	json_tokener_free(tok);
	return o;
}

static void test_accepted(void)
{
	static const char *const rows[] = {
		"{}",
		" \r\n{ } \r\n",
		"{\"return\": {}, \"id\": \"vmcg-1\"}",
		"{\"return\":{\"actual\":134217728},\"id\":\"vmcg-18446744073709551615\"}",
		"{\"timestamp\": {\"seconds\": 1733400000, \"microseconds\": 1}, \"event\": "
		"\"BALLOON_CHANGE\", \"data\": {\"actual\": 1048576}}",
		"{\"return\": {\"last-update\": 5, \"stats\": {\"stat-total-memory\": "
		"18446744073709551615, \"stat-free-memory\": -1}}}",
		"{\"a\": 0, \"b\": -0, \"c\": -9223372036854775808, \"d\": 9223372036854775807, "
		"\"e\": 9223372036854775808}",
		"{\"t\": true, \"f\": false, \"n\": null}",
		"{\"s\": \"caf\xc3\xa9\", \"e\": \"a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\\u00e9\"}",
		"{\"a\": {\"b\": {\"c\": {}}}}",
		"{\"\": 1}",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		g_autoptr(json_object) o = json_c_strict(rows[i]);
		VmcgJsonFlat f;

		if (!vmcg_json_flat_parse(rows[i], strlen(rows[i]), &f))
			g_error("row %zu declined: %s", i, rows[i]);
		same_as_json_c(&f, 0, o);
	}
}

/* What the readers get, by key. */
static void test_values(void)
{
	static const char t[] =
		"{\"return\": {\"actual\": 402653184, \"big\": 18446744073709551614,"
		" \"neg\": -5, \"s\": \"x\\ny\", \"o\": {\"k\": \"v\"}}, \"id\": \"vmcg-7\"}";
	VmcgJsonFlat f;
	int ret, k;

	g_assert_true(vmcg_json_flat_parse(t, strlen(t), &f));
	ret = vmcg_json_flat_get_type(&f, 0, "return", VMCG_JSON_FLAT_OBJECT);
	g_assert_cmpint(ret, >, 0);
	g_assert_cmpint(vmcg_json_flat_count(&f, 0), ==, 2);
	g_assert_cmpint(vmcg_json_flat_count(&f, ret), ==, 5);
	k = vmcg_json_flat_get_type(&f, ret, "actual", VMCG_JSON_FLAT_INT);
	g_assert_cmpint(k, >, 0);
	g_assert_cmpint(f.node[k].i, ==, 402653184);
	k = vmcg_json_flat_get(&f, ret, "big");
	g_assert_cmpint(f.node[k].type, ==, VMCG_JSON_FLAT_UINT);
	g_assert_cmpuint(f.node[k].u, ==, UINT64_MAX - 1);
	g_assert_cmpint(f.node[vmcg_json_flat_get(&f, ret, "neg")].i, ==, -5);
	k = vmcg_json_flat_get(&f, ret, "s");
	g_assert_true(f.node[k].escaped);
	g_assert_cmpint(vmcg_json_flat_get_type(&f, ret, "actual", VMCG_JSON_FLAT_STRING), ==, -1);
	g_assert_cmpint(vmcg_json_flat_get(&f, ret, "missing"), ==, -1);
	/* Members are found in their own object only. */
	g_assert_cmpint(vmcg_json_flat_get(&f, 0, "actual"), ==, -1);
	g_assert_cmpint(vmcg_json_flat_get(&f, ret, "k"), ==, -1);
	k = vmcg_json_flat_get(&f, 0, "id");
	g_assert_cmpmem(f.node[k].str, f.node[k].len, "vmcg-7", 6);
	g_assert_false(f.node[k].escaped);
}

static void test_declined(void)
{
	static const struct {
		const char *why, *text;
	} rows[] = {
		{ "empty", "" },
		{ "not an object", "[]" },
		{ "a number", "5" },
		{ "an array inside", "{\"a\": [1]}" },
		{ "a fraction", "{\"a\": 1.5}" },
		{ "an exponent", "{\"a\": 1e3}" },
		{ "a leading zero", "{\"a\": 01}" },
		{ "beyond 64 bits", "{\"a\": 18446744073709551616}" },
		{ "below int64", "{\"a\": -9223372036854775809}" },
		{ "a lone minus", "{\"a\": -}" },
		{ "a key twice", "{\"a\": 1, \"a\": 2}" },
		{ "an escaped key", "{\"\\u0061\": 1}" },
		{ "too deep", "{\"a\": {\"b\": {\"c\": {\"d\": {}}}}}" },
		{ "no colon", "{\"a\" 1}" },
		{ "no comma", "{\"a\": 1 \"b\": 2}" },
		{ "a trailing comma", "{\"a\": 1,}" },
		{ "a leading comma", "{,\"a\": 1}" },
		{ "unclosed", "{\"a\": 1" },
		{ "an unclosed string", "{\"a\": \"x}" },
		{ "a raw control character", "{\"a\": \"x\ty\"}" },
		{ "a bad escape", "{\"a\": \"\\x\"}" },
		{ "a short \\u", "{\"a\": \"\\u12\"}" },
		{ "a bad \\u digit", "{\"a\": \"\\u12g4\"}" },
		{ "a bare word", "{\"a\": nul}" },
		{ "TRUE", "{\"a\": True}" },
		{ "a single quote", "{'a': 1}" },
		{ "garbage after", "{} x" },
		{ "two objects", "{}{}" },
		{ "a key that is no string", "{a: 1}" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		VmcgJsonFlat f;

		if (vmcg_json_flat_parse(rows[i].text, strlen(rows[i].text), &f))
			g_error("%s: accepted %s", rows[i].why, rows[i].text);
	}
}

/* More values than nodes: declined, never past the array. */
static void test_too_many(void)
{
	g_autoptr(GString) s = g_string_new("{");
	VmcgJsonFlat f;

	for (int i = 0; i < VMCG_JSON_FLAT_MAX_NODES - 1; i++)
		g_string_append_printf(s, "%s\"k%d\": %d", i ? ", " : "", i, i);
	g_string_append(s, "}");
	g_assert_true(vmcg_json_flat_parse(s->str, s->len, &f));
	g_assert_cmpint(f.n, ==, VMCG_JSON_FLAT_MAX_NODES);
	g_string_truncate(s, s->len - 1);
	g_string_append(s, ", \"one-more\": 1}");
	g_assert_false(vmcg_json_flat_parse(s->str, s->len, &f));
}

/* Every prefix of a real reply is declined (and read within its bytes: no NUL needed). */
static void test_prefixes(void)
{
	static const char t[] = "{\"return\": {\"last-update\": 1733400000, \"stats\": "
				"{\"stat-total-memory\": 519966720, \"s\": \"a\\u00e9\"}}, "
				"\"id\": \"vmcg-42\"}";
	VmcgJsonFlat f;

	for (size_t n = 0; n < sizeof(t) - 1; n++) {
		char *copy = g_memdup2(t, n);

		g_assert_false(vmcg_json_flat_parse(copy, n, &f));
		g_free(copy);
	}
	g_assert_true(vmcg_json_flat_parse(t, sizeof(t) - 1, &f));
}

/* The plainest JSON only: printable ASCII strings without escapes; the length read. */
static void test_plain(void)
{
	static const struct {
		const char *text;
		size_t want; /* 0: declined */
	} rows[] = {
		{ "{\"return\": {}, \"id\": \"vmcg-1\"}\r\n", 30 },
		{ "{}{}", 2 },
		{ "{\"a\": {\"b\": true}} trailing", 18 },
		{ " {}", 0 },
		{ "{\"a\": \"x\\ny\"}", 0 },
		{ "{\"a\": \"caf\xc3\xa9\"}", 0 },
		{ "{\"a\": \"\x7f\"}", 0 },
		{ "{\"a\": [1]}", 0 },
		{ "{\"a\": 1", 0 },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		VmcgJsonFlat f;
		size_t len = 0;
		bool ok = vmcg_json_flat_parse_plain(rows[i].text, strlen(rows[i].text), &len, &f);

		if (ok != (rows[i].want != 0) || (ok && len != rows[i].want))
			g_error("row %zu (%s): %s, %zu bytes", i, rows[i].text,
				ok ? "read" : "declined", len);
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/json-flat/accepted", test_accepted);
	g_test_add_func("/json-flat/values", test_values);
	g_test_add_func("/json-flat/declined", test_declined);
	g_test_add_func("/json-flat/too-many", test_too_many);
	g_test_add_func("/json-flat/prefixes", test_prefixes);
	g_test_add_func("/json-flat/plain", test_plain);
	return g_test_run();
}
