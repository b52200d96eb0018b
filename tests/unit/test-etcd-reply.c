// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * etcd gateway replies and requests (daemon/etcd-reply.c): one table of
 * canned replies, each parsed as the client gets it (call, HTTP status,
 * body), with the values or the error it must give; then the request
 * builders' bodies.
 *
 * The "real" rows are what etcd 3.4.23 (Debian 12's etcd-server) answered
 * to curl -X POST http://127.0.0.1:23790/v3/... on a one-member cluster,
 * byte for byte; the others are wrong types, bad base64, int64 strings out
 * of range, counts that do not match, missing fields and nested junk.
 */
#include <string.h>

#include <glib.h>

#include "etcd-reply.h"

#define HDR                                                                                        \
	"\"header\":{\"cluster_id\":\"324952591200643719\",\"member_id\":\"3319814642761637952\"," \
	"\"revision\":\"3\",\"raft_term\":\"2\"}"
#define MEMBER UINT64_C(3319814642761637952)

/* Real: put of foo=bar, range of foo after a second put, of a missing key. */
#define REAL_PUT                                                            \
	"{\"header\":{\"cluster_id\":\"324952591200643719\",\"member_id\":" \
	"\"3319814642761637952\",\"revision\":\"2\",\"raft_term\":\"2\"}}"
#define REAL_RANGE                                                                              \
	"{" HDR ",\"kvs\":[{\"key\":\"Zm9v\",\"create_revision\":\"2\",\"mod_revision\":\"3\"," \
	"\"version\":\"2\",\"value\":\"YmF6\"}],\"count\":\"1\"}"
#define REAL_RANGE_NONE "{" HDR "}"
/* Real: a key put with a lease. */
#define REAL_RANGE_LEASE                                                                         \
	"{\"header\":{\"cluster_id\":\"324952591200643719\",\"member_id\":"                      \
	"\"3319814642761637952\",\"revision\":\"4\",\"raft_term\":\"2\"},\"kvs\":[{\"key\":"     \
	"\"bGs=\",\"create_revision\":\"4\",\"mod_revision\":\"4\",\"version\":\"1\",\"value\":" \
	"\"dg==\",\"lease\":\"2324035834501166351\"}],\"count\":\"1\"}"
/* Real: an empty value (no "value"), and a limit of 1 of 2 keys ("more"). */
#define REAL_RANGE_MORE                                                                           \
	"{\"header\":{\"cluster_id\":\"324952591200643719\",\"member_id\":"                       \
	"\"3319814642761637952\",\"revision\":\"10\",\"raft_term\":\"2\"},\"kvs\":[{\"key\":"     \
	"\"bmV3\",\"create_revision\":\"9\",\"mod_revision\":\"9\",\"version\":\"1\"}],\"more\":" \
	"true,\"count\":\"2\"}"
#define REAL_TXN_OK                                                                           \
	"{\"header\":{\"cluster_id\":\"324952591200643719\",\"member_id\":"                   \
	"\"3319814642761637952\",\"revision\":\"7\",\"raft_term\":\"2\"},\"succeeded\":true," \
	"\"responses\":[{\"response_put\":{\"header\":{\"revision\":\"7\"}}},"                \
	"{\"response_delete_range\":{\"header\":{\"revision\":\"7\"},\"deleted\":\"1\"}}]}"
/* Real: a compare that failed, the failure branch's range. */
#define REAL_TXN_FAILED                                                                            \
	"{\"header\":{\"cluster_id\":\"324952591200643719\",\"member_id\":"                        \
	"\"3319814642761637952\",\"revision\":\"6\",\"raft_term\":\"2\"},\"responses\":[{"         \
	"\"response_range\":{\"header\":{\"revision\":\"6\"},\"kvs\":[{\"key\":\"Zm9v\","          \
	"\"create_revision\":\"2\",\"mod_revision\":\"6\",\"version\":\"3\",\"value\":\"cXV4\"}]," \
	"\"count\":\"1\"}}]}"
#define REAL_TXN_FAILED_EMPTY                                               \
	"{\"header\":{\"cluster_id\":\"324952591200643719\",\"member_id\":" \
	"\"3319814642761637952\",\"revision\":\"7\",\"raft_term\":\"2\"}}"
#define REAL_DELETE "{" HDR ",\"deleted\":\"1\"}"
#define REAL_GRANT "{" HDR ",\"ID\":\"2324035834501166346\",\"TTL\":\"5\"}"
#define REAL_KEEPALIVE                                                                  \
	"{\"result\":{\"header\":{\"cluster_id\":\"324952591200643719\",\"member_id\":" \
	"\"3319814642761637952\",\"revision\":\"4\",\"raft_term\":\"2\"},\"ID\":"       \
	"\"2324035834501166351\",\"TTL\":\"30\"}}\n"
#define REAL_KEEPALIVE_GONE "{\"result\":{" HDR ",\"ID\":\"12345\"}}\n"
#define REAL_STATUS                                                                                \
	"{" HDR ",\"version\":\"3.4.23\",\"dbSize\":\"20480\",\"leader\":\"3319814642761637952\"," \
	"\"raftIndex\":\"7\",\"raftTerm\":\"2\",\"raftAppliedIndex\":\"7\",\"dbSizeInUse\":"       \
	"\"16384\"}"
#define REAL_ERR_LEASE                                                                    \
	"{\"error\":\"etcdserver: requested lease not found\",\"message\":\"etcdserver: " \
	"requested lease not found\",\"code\":5}"
#define REAL_ERR_BASE64                                                                    \
	"{\"error\":\"illegal base64 data at input byte 0\",\"message\":\"illegal base64 " \
	"data at input byte 0\",\"code\":3}"

typedef enum {
	RANGE,
	PUT,
	DEL,
	TXN,
	GRANT,
	KEEPALIVE,
	REVOKE,
	STATUS
} Call;

static const VmcgEtcdCall calls[] = {
	VMCG_ETCD_CALL_RANGE,	     VMCG_ETCD_CALL_PUT,	 VMCG_ETCD_CALL_DELETE,
	VMCG_ETCD_CALL_TXN,	     VMCG_ETCD_CALL_LEASE_GRANT, VMCG_ETCD_CALL_LEASE_KEEPALIVE,
	VMCG_ETCD_CALL_LEASE_REVOKE, VMCG_ETCD_CALL_STATUS,
};

typedef struct {
	Call call;
	unsigned status;
	const char *body;
	int code;	 /* -1: success; else the VMCG_ETCD_ERROR code */
	const char *msg; /* a substring of the error message */
	int grpc;	 /* on an error: the gRPC code (-1: not etcd's) */
	int64_t revision;
	int64_t a, b; /* RANGE: n_kvs, count; DEL: deleted; GRANT/KEEPALIVE: id, ttl */
} Case;

#define OK -1, NULL, -1
#define BAD(m) VMCG_ETCD_ERROR_BAD_REPLY, m, -1
#define H(rev) "\"header\":{\"revision\":\"" #rev "\"}"
#define KV(fields) "{" H(5) ",\"kvs\":[{" fields "}],\"count\":\"1\"}"

static const Case cases[] = {
	/* Real replies. */
	{ PUT, 200, REAL_PUT, OK, 2 },
	{ RANGE, 200, REAL_RANGE, OK, 3, 1, 1 },
	{ RANGE, 200, REAL_RANGE_NONE, OK, 3, 0, 0 },
	{ RANGE, 200, REAL_RANGE_LEASE, OK, 4, 1, 1 },
	{ RANGE, 200, REAL_RANGE_MORE, OK, 10, 1, 2 },
	{ TXN, 200, REAL_TXN_OK, OK, 7 },
	{ TXN, 200, REAL_TXN_FAILED, OK, 6 },
	{ TXN, 200, REAL_TXN_FAILED_EMPTY, OK, 7 },
	{ DEL, 200, REAL_DELETE, OK, 3, 1 },
	{ GRANT, 200, REAL_GRANT, OK, 3, 2324035834501166346, 5 },
	{ KEEPALIVE, 200, REAL_KEEPALIVE, OK, 4, 2324035834501166351, 30 },
	{ KEEPALIVE, 200, REAL_KEEPALIVE_GONE, VMCG_ETCD_ERROR_NOT_FOUND, "lease 12345 is gone",
	  5 },
	{ REVOKE, 200, REAL_PUT, OK, 2 },
	{ STATUS, 200, REAL_STATUS, OK, 3 },
	{ REVOKE, 404, REAL_ERR_LEASE, VMCG_ETCD_ERROR_NOT_FOUND,
	  "etcd: etcdserver: requested lease not found (code 5)", 5 },
	{ RANGE, 400, REAL_ERR_BASE64, VMCG_ETCD_ERROR_SERVER, "illegal base64", 3 },
	/* Errors: Unavailable, a stream error, an error even with 200. */
	{ PUT, 503,
	  "{\"error\":\"etcdserver: leader changed\",\"message\":\"etcdserver: leader changed\","
	  "\"code\":14}",
	  VMCG_ETCD_ERROR_UNAVAILABLE, "leader changed", 14 },
	{ KEEPALIVE, 200,
	  "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no leader\","
	  "\"http_status\":\"Service Unavailable\"}}",
	  VMCG_ETCD_ERROR_UNAVAILABLE, "no leader", 14 },
	{ PUT, 200, "{\"error\":\"x\",\"code\":9}", VMCG_ETCD_ERROR_SERVER, "etcd: x (code 9)", 9 },
	/* Not etcd's errors. */
	{ PUT, 404, "Not Found\n", BAD("HTTP 404 without an etcd error") },
	{ PUT, 502, "", BAD("HTTP 502 without an etcd error") },
	{ PUT, 500, "{\"error\":\"x\",\"code\":\"14\"}", BAD("HTTP 500 without an etcd error") },
	{ PUT, 500, "{\"error\":\"x\",\"code\":99}", BAD("HTTP 500 without an etcd error") },
	{ PUT, 500, "{\"error\":7,\"code\":14}", BAD("HTTP 500 without an etcd error") },
	{ PUT, 200, "", BAD("an empty reply") },
	{ PUT, 200, "{}", BAD("no \"header\"") },
	{ PUT, 200, "[]", BAD("must be a JSON object, found '['") },
	{ PUT, 200, "{" H(1) "} {}", BAD("garbage after the JSON object") },
	{ PUT, 200, "{" H(1), BAD("incomplete JSON object") },
	{ PUT, 200, "{\"header\":[]}", BAD("\"header\" must be object, not array") },
	{ PUT, 200, "{\"header\":{}}", BAD("no \"revision\"") },
	{ PUT, 200, "{\"header\":{\"revision\":3}}", BAD("must be string, not int") },
	{ PUT, 200, "{\"header\":{\"revision\":\"0\"}}", BAD("\"revision\" 0 is out of range") },
	{ PUT, 200, "{\"header\":{\"revision\":\"-3\"}}", BAD("out of range") },
	{ PUT, 200, "{\"header\":{\"revision\":\"9223372036854775808\"}}",
	  BAD("is not an int64 string") },
	{ PUT, 200, "{\"header\":{\"revision\":\"+3\"}}", BAD("is not an int64 string") },
	{ PUT, 200, "{\"header\":{\"revision\":\" 3\"}}", BAD("is not an int64 string") },
	{ PUT, 200, "{\"header\":{\"revision\":\"3x\"}}", BAD("is not an int64 string") },
	{ PUT, 200, "{\"header\":{\"revision\":\"\"}}", BAD("is not an int64 string") },
	{ PUT, 200, "{\"header\":{\"revision\":\"1\",\"member_id\":\"-1\"}}",
	  BAD("is not a uint64 string") },
	{ PUT, 200, "{\"header\":{\"revision\":\"9223372036854775807\"}}", OK, INT64_MAX },
	/* Range: kvs. */
	{ RANGE, 200,
	  KV("\"key\":\"YQ==\",\"create_revision\":\"1\",\"mod_revision\":\"1\","
	     "\"version\":\"1\""),
	  OK, 5, 1, 1 },
	{ RANGE, 200, KV("\"create_revision\":\"1\",\"mod_revision\":\"1\",\"version\":\"1\""),
	  BAD("kvs[0]: no \"key\"") },
	{ RANGE, 200,
	  KV("\"key\":\"\",\"create_revision\":\"1\",\"mod_revision\":\"1\",\"version\":\"1\""),
	  BAD("\"key\" is empty") },
	{ RANGE, 200,
	  KV("\"key\":\"YQ\",\"create_revision\":\"1\",\"mod_revision\":\"1\",\"version\":\"1\""),
	  BAD("\"key\" is not base64") },
	{ RANGE, 200,
	  KV("\"key\":\"Y!==\",\"create_revision\":\"1\",\"mod_revision\":\"1\",\"version\":\"1\""),
	  BAD("\"key\" is not base64") },
	{ RANGE, 200,
	  KV("\"key\":\"YR==\",\"create_revision\":\"1\",\"mod_revision\":\"1\",\"version\":\"1\""),
	  BAD("\"key\" is not base64") },
	{ RANGE, 200,
	  KV("\"key\":\"=YQ=\",\"create_revision\":\"1\",\"mod_revision\":\"1\",\"version\":\"1\""),
	  BAD("\"key\" is not base64") },
	{ RANGE, 200,
	  KV("\"key\":\"YQ==\",\"value\":\"Y Q=\",\"create_revision\":\"1\",\"mod_revision\":"
	     "\"1\",\"version\":\"1\""),
	  BAD("\"value\" is not base64") },
	{ RANGE, 200,
	  KV("\"key\":\"YQ==\",\"value\":7,\"create_revision\":\"1\",\"mod_revision\":\"1\","
	     "\"version\":\"1\""),
	  BAD("\"value\" must be string, not int") },
	{ RANGE, 200, KV("\"key\":\"YQ==\",\"mod_revision\":\"1\",\"version\":\"1\""),
	  BAD("no \"create_revision\"") },
	{ RANGE, 200,
	  KV("\"key\":\"YQ==\",\"create_revision\":\"5\",\"mod_revision\":\"4\",\"version\":\"1\""),
	  BAD("\"mod_revision\" 4 is out of range (5..") },
	{ RANGE, 200,
	  KV("\"key\":\"YQ==\",\"create_revision\":\"1\",\"mod_revision\":\"1\",\"version\":\"0\""),
	  BAD("\"version\" 0 is out of range") },
	{ RANGE, 200,
	  KV("\"key\":\"YQ==\",\"create_revision\":\"1\",\"mod_revision\":\"1\",\"version\":\"1\","
	     "\"lease\":\"-2\""),
	  BAD("\"lease\" -2 is out of range") },
	{ RANGE, 200, "{" H(5) ",\"kvs\":[7],\"count\":\"1\"}",
	  BAD("kvs[0] must be an object, not int") },
	{ RANGE, 200, "{" H(5) ",\"kvs\":{},\"count\":\"1\"}",
	  BAD("\"kvs\" must be array, not object") },
	{ RANGE, 200, "{" H(5) ",\"kvs\":[],\"count\":\"99999999999\"}", OK, 5, 0, 99999999999 },
	{ RANGE, 200,
	  "{" H(5) ",\"kvs\":[{\"key\":\"YQ==\",\"create_revision\":\"1\",\"mod_revision\":\"1\","
		   "\"version\":\"1\"}]}",
	  BAD("\"count\" 0 is below the 1 kvs sent") },
	{ RANGE, 200, "{" H(5) ",\"more\":\"yes\"}", BAD("\"more\" must be boolean") },
	/* Txn. */
	{ TXN, 200, "{" H(5) ",\"succeeded\":1}", BAD("\"succeeded\" must be boolean, not int") },
	{ TXN, 200, "{" H(5) ",\"responses\":[{}]}", BAD("must be an object of one response") },
	{ TXN, 200, "{" H(5) ",\"responses\":[{\"response_txn\":{}}]}",
	  BAD("not a range, put or delete response") },
	{ TXN, 200, "{" H(5) ",\"responses\":[{\"response_put\":{}}]}",
	  BAD("responses[0]: response_put: no \"header\"") },
	{ TXN, 200, "{" H(5) ",\"responses\":[{\"response_put\":[]}]}",
	  BAD("response_put must be an object") },
	{ TXN, 200,
	  "{" H(5) ",\"responses\":[{\"response_range\":{" H(5) ",\"kvs\":[{\"key\":\"!\"}],"
								"\"count\":\"1\"}}]}",
	  BAD("responses[0]: response_range: kvs[0]: \"key\" is not base64") },
	{ TXN, 200,
	  "{" H(5) ",\"responses\":[{\"response_delete_range\":{" H(5) ",\"deleted\":\"-1\"}}]}",
	  BAD("\"deleted\" -1 is out of range") },
	/* Lease. */
	{ GRANT, 200, "{" H(5) ",\"TTL\":\"5\"}", BAD("no \"ID\"") },
	{ GRANT, 200, "{" H(5) ",\"ID\":\"0\",\"TTL\":\"5\"}", BAD("\"ID\" 0 is out of range") },
	{ GRANT, 200, "{" H(5) ",\"ID\":\"7\",\"TTL\":\"9000000001\"}", BAD("\"TTL\" 9000000001") },
	{ GRANT, 200, "{" H(5) ",\"ID\":\"7\",\"TTL\":5}", BAD("\"TTL\" must be string, not int") },
	{ KEEPALIVE, 200, "{" H(5) ",\"ID\":\"7\",\"TTL\":\"5\"}", BAD("no \"result\"") },
	{ KEEPALIVE, 200, "{\"result\":{" H(5) ",\"ID\":\"7\",\"TTL\":\"-1\"}}",
	  BAD("out of range") },
	/* Status. */
	{ STATUS, 200, "{" H(5) "}", BAD("status: no \"version\"") },
	{ STATUS, 200, "{" H(5) ",\"version\":\"\"}", BAD("1 to 64 characters") },
	{ STATUS, 200, "{" H(5) ",\"version\":\"3.4\",\"leader\":12}",
	  BAD("\"leader\" must be string") },
	/* Depth. */
	{ PUT, 200, "{" H(5) ",\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
	  BAD("not JSON") },
	{ PUT, 200, "{" H(5) ",\"junk\":{\"a\":[1,{\"b\":[]}]}}", OK, 5 },
};

static void test_case(gconstpointer data)
{
	const Case *c = data;
	g_autoptr(GError) err = NULL;
	VmcgEtcdResult *r = (VmcgEtcdResult *)0x1;
	int grpc = -77;
	bool ok = vmcg_etcd_parse_reply(calls[c->call], c->status, c->body, strlen(c->body), &r,
					&grpc, &err);

	if (c->code >= 0) {
		g_assert_false(ok);
		g_assert_nonnull(err);
		if (!strstr(err->message, c->msg))
			g_error("message \"%s\" lacks \"%s\"", err->message, c->msg);
		g_assert_cmpint(err->code, ==, c->code);
		g_assert_cmpint(grpc, ==, c->grpc);
		g_assert_true(r == (VmcgEtcdResult *)0x1);
		return;
	}
	if (!ok)
		g_error("%s: %s", c->body, err->message);
	g_assert_cmpint(grpc, ==, -77);
	g_assert_cmpint(r->revision, ==, c->revision);
	switch (c->call) {
	case RANGE:
		g_assert_cmpuint(r->n_kvs, ==, (uint64_t)c->a);
		g_assert_cmpint(r->count, ==, c->b);
		break;
	case DEL:
		g_assert_cmpint(r->deleted, ==, c->a);
		break;
	case GRANT:
	case KEEPALIVE:
		g_assert_cmpint(r->lease_id, ==, c->a);
		g_assert_cmpint(r->ttl_s, ==, c->b);
		break;
	default:
		break;
	}
	vmcg_etcd_result_free(r);
}

static VmcgEtcdResult *parse_ok(VmcgEtcdCall call, const char *body)
{
	g_autoptr(GError) err = NULL;
	VmcgEtcdResult *r = NULL;

	if (!vmcg_etcd_parse_reply(call, 200, body, strlen(body), &r, NULL, &err))
		g_error("%s", err->message);
	return r;
}

/* The real replies' values, field by field. */
static void test_real_values(void)
{
	g_autoptr(VmcgEtcdResult) range = parse_ok(VMCG_ETCD_CALL_RANGE, REAL_RANGE);
	g_autoptr(VmcgEtcdResult) lease = parse_ok(VMCG_ETCD_CALL_RANGE, REAL_RANGE_LEASE);
	g_autoptr(VmcgEtcdResult) more = parse_ok(VMCG_ETCD_CALL_RANGE, REAL_RANGE_MORE);
	g_autoptr(VmcgEtcdResult) ok = parse_ok(VMCG_ETCD_CALL_TXN, REAL_TXN_OK);
	g_autoptr(VmcgEtcdResult) failed = parse_ok(VMCG_ETCD_CALL_TXN, REAL_TXN_FAILED);
	g_autoptr(VmcgEtcdResult) status = parse_ok(VMCG_ETCD_CALL_STATUS, REAL_STATUS);

	g_assert_cmpuint(range->member_id, ==, MEMBER);
	g_assert_cmpstr(range->kvs[0].key, ==, "foo");
	g_assert_cmpuint(range->kvs[0].key_len, ==, 3);
	g_assert_cmpstr(range->kvs[0].value, ==, "baz");
	g_assert_cmpint(range->kvs[0].create_revision, ==, 2);
	g_assert_cmpint(range->kvs[0].mod_revision, ==, 3);
	g_assert_cmpint(range->kvs[0].version, ==, 2);
	g_assert_cmpint(range->kvs[0].lease, ==, 0);
	g_assert_false(range->more);

	g_assert_cmpstr(lease->kvs[0].key, ==, "lk");
	g_assert_cmpstr(lease->kvs[0].value, ==, "v");
	g_assert_cmpint(lease->kvs[0].lease, ==, 2324035834501166351);

	g_assert_true(more->more);
	g_assert_cmpstr(more->kvs[0].value, ==, "");
	g_assert_cmpuint(more->kvs[0].value_len, ==, 0);

	g_assert_true(ok->succeeded);
	g_assert_cmpuint(ok->n_responses, ==, 2);
	g_assert_cmpint(ok->responses[0].call, ==, VMCG_ETCD_CALL_PUT);
	g_assert_cmpint(ok->responses[1].call, ==, VMCG_ETCD_CALL_DELETE);
	g_assert_cmpint(ok->responses[1].deleted, ==, 1);

	g_assert_false(failed->succeeded);
	g_assert_cmpuint(failed->n_responses, ==, 1);
	g_assert_cmpint(failed->responses[0].call, ==, VMCG_ETCD_CALL_RANGE);
	g_assert_cmpstr(failed->responses[0].kvs[0].value, ==, "qux");
	g_assert_cmpint(failed->responses[0].kvs[0].mod_revision, ==, 6);

	g_assert_cmpstr(status->version, ==, "3.4.23");
	g_assert_cmpuint(status->leader, ==, MEMBER);
	g_assert_cmpuint(status->member_id, ==, MEMBER);
	g_assert_cmpint(status->raft_term, ==, 2);
	g_assert_cmpint(status->raft_index, ==, 7);
	g_assert_cmpint(status->db_size_bytes, ==, 20480);
}

/* Binary keys and values: NULs kept, lengths right. */
static void test_binary(void)
{
	static const char body[] = "{" H(5) ",\"kvs\":[{\"key\":\"AGE=\",\"value\":\"AAAA\","
					    "\"create_revision\":\"1\",\"mod_revision\":\"1\","
					    "\"version\":\"1\"}],\"count\":\"1\"}";
	g_autoptr(VmcgEtcdResult) r = parse_ok(VMCG_ETCD_CALL_RANGE, body);

	g_assert_cmpuint(r->kvs[0].key_len, ==, 2);
	g_assert_cmpmem(r->kvs[0].key, 2, "\0a", 2);
	g_assert_cmpuint(r->kvs[0].value_len, ==, 3);
	g_assert_cmpmem(r->kvs[0].value, 3, "\0\0\0", 3);
}

/* Caps: a reply above 16 MiB, a NUL, more kvs than the cap. */
static void test_caps(void)
{
	g_autoptr(GError) err = NULL;
	g_autoptr(GString) s = g_string_new("{" H(5) ",\"kvs\":[");
	VmcgEtcdResult *r = NULL;

	g_assert_false(vmcg_etcd_parse_reply(VMCG_ETCD_CALL_PUT, 200, "{}",
					     VMCG_ETCD_REPLY_MAX_BYTES + 1, &r, NULL, &err));
	g_assert_nonnull(strstr(err->message, "above the cap"));
	g_clear_error(&err);
	g_assert_false(vmcg_etcd_parse_reply(VMCG_ETCD_CALL_PUT, 200, "{}\0", 3, &r, NULL, &err));
	g_assert_nonnull(strstr(err->message, "NUL"));
	g_clear_error(&err);
	for (unsigned i = 0; i <= VMCG_ETCD_KVS_MAX; i++)
		g_string_append(s, i ? ",{}" : "{}");
	g_string_append(s, "],\"count\":\"200000\"}");
	g_assert_false(
		vmcg_etcd_parse_reply(VMCG_ETCD_CALL_RANGE, 200, s->str, s->len, &r, NULL, &err));
	g_assert_nonnull(strstr(err->message, "above the cap of 100000"));
	g_assert_null(r);
}

static void check_body(char *got, const char *want)
{
	g_assert_nonnull(got);
	g_assert_cmpstr(got, ==, want);
	g_free(got);
}

static void check_invalid(char *got, GError **err, const char *msg)
{
	g_assert_null(got);
	g_assert_error(*err, VMCG_ETCD_ERROR, VMCG_ETCD_ERROR_INVALID);
	if (!strstr((*err)->message, msg))
		g_error("message \"%s\" lacks \"%s\"", (*err)->message, msg);
	g_clear_error(err);
}

/* The builders' bodies: the same JSON the real etcd took in the captures. */
static void test_builders(void)
{
	g_autoptr(GError) err = NULL;
	g_autofree char *big = g_malloc0(VMCG_ETCD_KEY_MAX_BYTES + 2);
	char end[VMCG_ETCD_KEY_MAX_BYTES + 1];
	const VmcgEtcdCompare cmp[] = {
		{ .key = "foo",
		  .target = VMCG_ETCD_TARGET_MOD,
		  .result = VMCG_ETCD_CMP_EQUAL,
		  .number = 3 },
		{ .key = "new",
		  .target = VMCG_ETCD_TARGET_VALUE,
		  .result = VMCG_ETCD_CMP_NOT_EQUAL,
		  .value = "1",
		  .value_len = 1 },
		{ .key = "new", .target = VMCG_ETCD_TARGET_VERSION, .result = VMCG_ETCD_CMP_LESS },
		{ .key = "new",
		  .target = VMCG_ETCD_TARGET_CREATE,
		  .result = VMCG_ETCD_CMP_GREATER,
		  .number = 1 },
		{ .key = "new", .target = VMCG_ETCD_TARGET_LEASE, .number = 7 },
		/* The range guard of docs/cluster.md: no key under "g/" changed since rev 41. */
		{ .key = "g/",
		  .prefix = true,
		  .target = VMCG_ETCD_TARGET_MOD,
		  .result = VMCG_ETCD_CMP_LESS,
		  .number = 42 },
	};
	const VmcgEtcdOp success[] = {
		{ .kind = VMCG_ETCD_OP_PUT,
		  .key = "foo",
		  .value = "qux",
		  .value_len = 3,
		  .lease = 9 },
		{ .kind = VMCG_ETCD_OP_DELETE, .key = "f", .prefix = true },
	};
	const VmcgEtcdOp failure[] = { { .kind = VMCG_ETCD_OP_RANGE, .key = "foo" } };

	check_body(vmcg_etcd_build_range("foo", false, &err), "{\"key\":\"Zm9v\"}");
	check_body(vmcg_etcd_build_range("f", true, &err),
		   "{\"key\":\"Zg==\",\"range_end\":\"Zw==\"}");
	check_body(vmcg_etcd_build_put("foo", "bar", 3, 0, &err),
		   "{\"key\":\"Zm9v\",\"value\":\"YmFy\"}");
	check_body(vmcg_etcd_build_put("lk", "v", 1, 2324035834501166351, &err),
		   "{\"key\":\"bGs=\",\"value\":\"dg==\",\"lease\":\"2324035834501166351\"}");
	check_body(vmcg_etcd_build_put("k", NULL, 0, 0, &err), "{\"key\":\"aw==\",\"value\":\"\"}");
	check_body(vmcg_etcd_build_delete("new", false, &err), "{\"key\":\"bmV3\"}");
	check_body(vmcg_etcd_build_lease_grant(5, &err), "{\"TTL\":\"5\"}");
	check_body(vmcg_etcd_build_lease_id(2324035834501166351, &err),
		   "{\"ID\":\"2324035834501166351\"}");
	check_body(vmcg_etcd_build_status(), "{}");
	check_body(
		vmcg_etcd_build_txn(cmp, G_N_ELEMENTS(cmp), success, G_N_ELEMENTS(success), failure,
				    G_N_ELEMENTS(failure), &err),
		"{\"compare\":["
		"{\"key\":\"Zm9v\",\"target\":\"MOD\",\"result\":\"EQUAL\",\"mod_revision\":\"3\"},"
		"{\"key\":\"bmV3\",\"target\":\"VALUE\",\"result\":\"NOT_EQUAL\",\"value\":\"MQ=="
		"\"},"
		"{\"key\":\"bmV3\",\"target\":\"VERSION\",\"result\":\"LESS\",\"version\":\"0\"},"
		"{\"key\":\"bmV3\",\"target\":\"CREATE\",\"result\":\"GREATER\","
		"\"create_revision\":\"1\"},"
		"{\"key\":\"bmV3\",\"target\":\"LEASE\",\"result\":\"EQUAL\",\"lease\":\"7\"},"
		"{\"key\":\"Zy8=\",\"range_end\":\"ZzA=\",\"target\":\"MOD\",\"result\":\"LESS\","
		"\"mod_revision\":\"42\"}],"
		"\"success\":[{\"request_put\":{\"key\":\"Zm9v\",\"value\":\"cXV4\",\"lease\":"
		"\"9\"}},"
		"{\"request_delete_range\":{\"key\":\"Zg==\",\"range_end\":\"Zw==\"}}],"
		"\"failure\":[{\"request_range\":{\"key\":\"Zm9v\"}}]}");
	check_body(vmcg_etcd_build_txn(NULL, 0, NULL, 0, NULL, 0, &err),
		   "{\"compare\":[],\"success\":[],\"failure\":[]}");

	/* Prefix ends: 0xff bytes carry, all 0xff is "every key from here". */
	g_assert_cmpuint(vmcg_etcd_prefix_end("a\xff\xff", 3, end), ==, 1);
	g_assert_cmpint(end[0], ==, 'b');
	g_assert_cmpuint(vmcg_etcd_prefix_end("\xff\xff", 2, end), ==, 1);
	g_assert_cmpint(end[0], ==, 0);
	g_assert_cmpuint(vmcg_etcd_prefix_end("/vmcg/", 6, end), ==, 6);
	g_assert_cmpmem(end, 6, "/vmcg0", 6);

	check_invalid(vmcg_etcd_build_range("", false, &err), &err, "an empty key");
	check_invalid(vmcg_etcd_build_range(NULL, false, &err), &err, "an empty key");
	memset(big, 'k', VMCG_ETCD_KEY_MAX_BYTES + 1);
	check_invalid(vmcg_etcd_build_put(big, "", 0, 0, &err), &err, "above the cap");
	big[VMCG_ETCD_KEY_MAX_BYTES] = '\0';
	g_free(vmcg_etcd_build_put(big, "", 0, 0, &err));
	g_assert_no_error(err);
	check_invalid(vmcg_etcd_build_put("k", "", VMCG_ETCD_VALUE_MAX_BYTES + 1, 0, &err), &err,
		      "a value of");
	check_invalid(vmcg_etcd_build_put("k", "", 0, -1, &err), &err, "negative lease");
	check_invalid(vmcg_etcd_build_lease_grant(0, &err), &err, "out of range");
	check_invalid(vmcg_etcd_build_lease_grant(VMCG_ETCD_TTL_MAX_S + 1, &err), &err,
		      "out of range");
	check_invalid(vmcg_etcd_build_lease_id(0, &err), &err, "is not > 0");
	check_invalid(vmcg_etcd_build_txn(cmp, VMCG_ETCD_TXN_OPS_MAX + 1, NULL, 0, NULL, 0, &err),
		      &err, "txn compares");
	{
		VmcgEtcdCompare neg = cmp[0];
		VmcgEtcdOp bad = failure[0];

		neg.number = -1;
		check_invalid(vmcg_etcd_build_txn(&neg, 1, NULL, 0, NULL, 0, &err), &err,
			      "negative compare");
		bad.key = "";
		check_invalid(vmcg_etcd_build_txn(cmp, 1, NULL, 0, &bad, 1, &err), &err,
			      "an empty key");
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *name = g_strdup_printf("/etcd-reply/case/%zu", i);

		g_test_add_data_func(name, &cases[i], test_case);
	}
	g_test_add_func("/etcd-reply/real-values", test_real_values);
	g_test_add_func("/etcd-reply/binary", test_binary);
	g_test_add_func("/etcd-reply/caps", test_caps);
	g_test_add_func("/etcd-reply/builders", test_builders);
	return g_test_run();
}
