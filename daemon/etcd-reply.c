// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * etcd's v3 JSON gateway: request builders and reply parsers (see
 * etcd-reply.h). Pure: what tests/unit/test-etcd-reply.c and
 * tests/fuzz/fuzz-etcd-reply.c drive.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "etcd-reply.h"
#include "json-stream.h"
#include "json-util.h"

G_DEFINE_QUARK(vmcg - etcd - error - quark, vmcg_etcd_error)

/*
 * 16: the deepest nesting read. A txn reply is 6 deep
 * (reply/responses/[]/response_range/kvs/[]/kv); anything deeper is not
 * etcd's, and json-c's default (32) would spend more stack on it.
 */
#define JSON_DEPTH_MAX 16

/* gRPC status codes (google.golang.org/grpc/codes) etcd answers with. */
#define GRPC_NOT_FOUND 5
#define GRPC_UNAVAILABLE 14

static bool G_GNUC_PRINTF(3, 4) fail(GError **error, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	g_propagate_error(error, g_error_new_valist(VMCG_ETCD_ERROR, code, fmt, ap));
	va_end(ap);
	return false;
}

#define bad(error, ...) fail(error, VMCG_ETCD_ERROR_BAD_REPLY, __VA_ARGS__)

static const char *type_name(json_object *o)
{
	return json_type_to_name(json_object_get_type(o));
}

/* @o's member @key if present (else *ret = NULL), which must be of @type. */
static bool opt_member(json_object *o, const char *where, const char *key, json_type type,
		       json_object **ret, GError **error)
{
	json_object *v = NULL;

	*ret = NULL;
	if (!json_object_object_get_ex(o, key, &v) || !v)
		return true;
	if (!json_object_is_type(v, type))
		return bad(error, "%s: \"%s\" must be %s, not %s", where, key,
			   json_type_to_name(type), type_name(v));
	*ret = v;
	return true;
}

static bool req_member(json_object *o, const char *where, const char *key, json_type type,
		       json_object **ret, GError **error)
{
	if (!opt_member(o, where, key, type, ret, error))
		return false;
	if (!*ret)
		return bad(error, "%s: no \"%s\"", where, key);
	return true;
}

/*
 * An int64 field: a string of decimal digits (what grpc-gateway writes for
 * int64), within min..max. Absent is 0, which must be within range too.
 */
static bool int64_member(json_object *o, const char *where, const char *key, bool required,
			 int64_t min, int64_t max, int64_t *ret, GError **error)
{
	json_object *v;
	const char *s;
	gint64 x = 0;
	g_autoptr(GError) e = NULL;

	if (!opt_member(o, where, key, json_type_string, &v, error))
		return false;
	if (!v) {
		if (required)
			return bad(error, "%s: no \"%s\"", where, key);
	} else {
		s = json_object_get_string(v);
		/* g_ascii_string_to_signed() takes a leading '+' and spaces: etcd writes neither. */
		if (!*s || !(g_ascii_isdigit(s[0]) || (s[0] == '-' && g_ascii_isdigit(s[1]))) ||
		    !g_ascii_string_to_signed(s, 10, G_MININT64, G_MAXINT64, &x, &e))
			return bad(error, "%s: \"%s\" is not an int64 string: \"%.40s\"", where,
				   key, s);
	}
	if (x < min || x > max)
		return bad(error,
			   "%s: \"%s\" %" PRId64 " is out of range (%" PRId64 "..%" PRId64 ")",
			   where, key, (int64_t)x, min, max);
	*ret = x;
	return true;
}

/* A uint64 field (member and cluster IDs): a string of digits; absent is 0. */
static bool uint64_member(json_object *o, const char *where, const char *key, uint64_t *ret,
			  GError **error)
{
	json_object *v;
	const char *s;
	guint64 x = 0;

	if (!opt_member(o, where, key, json_type_string, &v, error))
		return false;
	if (v) {
		s = json_object_get_string(v);
		if (!g_ascii_isdigit(s[0]) ||
		    !g_ascii_string_to_unsigned(s, 10, 0, G_MAXUINT64, &x, NULL))
			return bad(error, "%s: \"%s\" is not a uint64 string: \"%.40s\"", where,
				   key, s);
	}
	*ret = x;
	return true;
}

static bool bool_member(json_object *o, const char *where, const char *key, bool *ret,
			GError **error)
{
	json_object *v;

	if (!opt_member(o, where, key, json_type_boolean, &v, error))
		return false;
	*ret = v ? json_object_get_boolean(v) : false;
	return true;
}

static int b64_digit(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Strict base64 (Go's encoding/base64 StdEncoding, what the gateway
 * writes): padded to a multiple of 4, the standard alphabet, '=' only as
 * the last one or two characters, no unused bits set. g_base64_decode()
 * skips what it does not know, so it cannot be the check. Decodes into a
 * new NUL-terminated buffer of at most @max bytes.
 */
static bool b64_decode(const char *s, size_t n, size_t max, char **ret, size_t *ret_len)
{
	size_t pad = 0, out_len, o = 0;
	char *out;

	if (n % 4)
		return false;
	if (n >= 1 && s[n - 1] == '=')
		pad++;
	if (n >= 2 && s[n - 2] == '=')
		pad++;
	out_len = n / 4 * 3 - pad;
	if (out_len > max)
		return false;
	out = g_malloc(out_len + 1);
	for (size_t i = 0; i < n; i += 4) {
		int d[4];
		uint32_t w;

		for (int k = 0; k < 4; k++) {
			bool padding = i + k >= n - pad;

			d[k] = padding ? (s[i + k] == '=' ? 0 : -1) : b64_digit(s[i + k]);
			if (d[k] < 0) {
				g_free(out);
				return false;
			}
		}
		w = (uint32_t)d[0] << 18 | (uint32_t)d[1] << 12 | (uint32_t)d[2] << 6 |
		    (uint32_t)d[3];
		if (i + 4 == n && ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))) {
			g_free(out); /* bits beyond the data: not canonical */
			return false;
		}
		for (int k = 0; k < 3 && o < out_len; k++)
			out[o++] = (char)(w >> (16 - 8 * k));
	}
	out[out_len] = '\0';
	*ret = out;
	*ret_len = out_len;
	return true;
}

static bool bytes_member(json_object *o, const char *where, const char *key, bool required,
			 size_t max, char **ret, size_t *ret_len, GError **error)
{
	json_object *v;

	if (!opt_member(o, where, key, json_type_string, &v, error))
		return false;
	if (!v) {
		if (required)
			return bad(error, "%s: no \"%s\"", where, key);
		*ret = g_strdup("");
		*ret_len = 0;
		return true;
	}
	if (!b64_decode(json_object_get_string(v), (size_t)json_object_get_string_len(v), max, ret,
			ret_len))
		return bad(error, "%s: \"%s\" is not base64 of at most %zu bytes", where, key, max);
	if (required && *ret_len == 0) {
		g_clear_pointer(ret, g_free);
		return bad(error, "%s: \"%s\" is empty", where, key);
	}
	return true;
}

static void kv_clear(VmcgEtcdKv *kv)
{
	g_free(kv->key);
	g_free(kv->value);
}

static void result_clear(VmcgEtcdResult *r)
{
	for (size_t i = 0; i < r->n_kvs; i++)
		kv_clear(&r->kvs[i]);
	g_free(r->kvs);
	for (size_t i = 0; i < r->n_responses; i++)
		result_clear(&r->responses[i]);
	g_free(r->responses);
	g_free(r->version);
}

void vmcg_etcd_result_free(VmcgEtcdResult *r)
{
	if (!r)
		return;
	result_clear(r);
	g_free(r);
}

static bool parse_kv(json_object *o, const char *where, VmcgEtcdKv *kv, GError **error)
{
	VmcgEtcdKv k = { 0 };

	if (!json_object_is_type(o, json_type_object))
		return bad(error, "%s must be an object, not %s", where, type_name(o));
	if (!bytes_member(o, where, "key", true, VMCG_ETCD_KEY_MAX_BYTES, &k.key, &k.key_len,
			  error))
		return false;
	if (!bytes_member(o, where, "value", false, VMCG_ETCD_VALUE_MAX_BYTES, &k.value,
			  &k.value_len, error) ||
	    !int64_member(o, where, "create_revision", true, 1, G_MAXINT64, &k.create_revision,
			  error) ||
	    !int64_member(o, where, "mod_revision", true, k.create_revision, G_MAXINT64,
			  &k.mod_revision, error) ||
	    !int64_member(o, where, "version", true, 1, G_MAXINT64, &k.version, error) ||
	    !int64_member(o, where, "lease", false, 0, G_MAXINT64, &k.lease, error)) {
		kv_clear(&k);
		return false;
	}
	*kv = k;
	return true;
}

/*
 * The header: {"cluster_id", "member_id", "revision", "raft_term"}. A
 * reply's header always has a revision (etcd's first is 1); a txn
 * response's header has only the revision.
 */
static bool parse_header(json_object *o, const char *where, VmcgEtcdResult *r, GError **error)
{
	json_object *h;
	g_autofree char *w = g_strdup_printf("%s: header", where);

	return req_member(o, where, "header", json_type_object, &h, error) &&
	       int64_member(h, w, "revision", true, 1, G_MAXINT64, &r->revision, error) &&
	       uint64_member(h, w, "member_id", &r->member_id, error);
}

/* The kvs of a range; *budget is how many more kvs this reply may hold. */
static bool parse_range(json_object *o, const char *where, VmcgEtcdResult *r, size_t *budget,
			GError **error)
{
	json_object *kvs;
	size_t n;

	if (!opt_member(o, where, "kvs", json_type_array, &kvs, error) ||
	    !int64_member(o, where, "count", false, 0, G_MAXINT64, &r->count, error) ||
	    !bool_member(o, where, "more", &r->more, error))
		return false;
	n = kvs ? json_object_array_length(kvs) : 0;
	if (n > *budget)
		return bad(error, "%s: %zu kvs, above the cap of %d in one reply", where, n,
			   VMCG_ETCD_KVS_MAX);
	if ((uint64_t)r->count < n)
		return bad(error, "%s: \"count\" %" PRId64 " is below the %zu kvs sent", where,
			   r->count, n);
	*budget -= n;
	r->kvs = g_new0(VmcgEtcdKv, n ? n : 1);
	for (size_t i = 0; i < n; i++) {
		g_autofree char *w = g_strdup_printf("%s: kvs[%zu]", where, i);

		if (!parse_kv(json_object_array_get_idx(kvs, i), w, &r->kvs[i], error))
			return false;
		r->n_kvs++;
	}
	return true;
}

static bool parse_txn(json_object *o, VmcgEtcdResult *r, GError **error)
{
	static const struct {
		const char *name;
		VmcgEtcdCall call;
	} kinds[] = {
		{ "response_range", VMCG_ETCD_CALL_RANGE },
		{ "response_put", VMCG_ETCD_CALL_PUT },
		{ "response_delete_range", VMCG_ETCD_CALL_DELETE },
	};
	size_t budget = VMCG_ETCD_KVS_MAX, n;
	json_object *resps;

	if (!bool_member(o, "txn", "succeeded", &r->succeeded, error) ||
	    !opt_member(o, "txn", "responses", json_type_array, &resps, error))
		return false;
	n = resps ? json_object_array_length(resps) : 0;
	if (n > VMCG_ETCD_TXN_OPS_MAX)
		return bad(error, "txn: %zu responses, above the %d ops a txn may hold", n,
			   VMCG_ETCD_TXN_OPS_MAX);
	r->responses = g_new0(VmcgEtcdResult, n ? n : 1);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(resps, i), *body = NULL;
		VmcgEtcdResult *sub = &r->responses[i];
		g_autofree char *w = g_strdup_printf("txn: responses[%zu]", i);

		r->n_responses++;
		if (!json_object_is_type(e, json_type_object) || json_object_object_length(e) != 1)
			return bad(error, "%s must be an object of one response", w);
		for (size_t k = 0; k < G_N_ELEMENTS(kinds); k++) {
			if (json_object_object_get_ex(e, kinds[k].name, &body)) {
				sub->call = kinds[k].call;
				g_free(w);
				w = g_strdup_printf("txn: responses[%zu]: %s", i, kinds[k].name);
				break;
			}
		}
		if (!body)
			return bad(error, "%s: not a range, put or delete response", w);
		if (!json_object_is_type(body, json_type_object))
			return bad(error, "%s must be an object, not %s", w, type_name(body));
		if (!parse_header(body, w, sub, error))
			return false;
		if (sub->call == VMCG_ETCD_CALL_RANGE && !parse_range(body, w, sub, &budget, error))
			return false;
		if (sub->call == VMCG_ETCD_CALL_DELETE &&
		    !int64_member(body, w, "deleted", false, 0, G_MAXINT64, &sub->deleted, error))
			return false;
	}
	return true;
}

static bool parse_status(json_object *o, VmcgEtcdResult *r, GError **error)
{
	json_object *v;

	if (!req_member(o, "status", "version", json_type_string, &v, error))
		return false;
	if (json_object_get_string_len(v) == 0 || json_object_get_string_len(v) > 64)
		return bad(error, "status: \"version\" must be 1 to 64 characters");
	r->version = g_strdup(json_object_get_string(v));
	return uint64_member(o, "status", "leader", &r->leader, error) &&
	       int64_member(o, "status", "raftTerm", false, 0, G_MAXINT64, &r->raft_term, error) &&
	       int64_member(o, "status", "raftIndex", false, 0, G_MAXINT64, &r->raft_index,
			    error) &&
	       int64_member(o, "status", "dbSize", false, 0, G_MAXINT64, &r->db_size_bytes, error);
}

static int error_code_of(int grpc)
{
	switch (grpc) {
	case GRPC_NOT_FOUND:
		return VMCG_ETCD_ERROR_NOT_FOUND;
	case GRPC_UNAVAILABLE:
		return VMCG_ETCD_ERROR_UNAVAILABLE;
	default:
		return VMCG_ETCD_ERROR_SERVER;
	}
}

/*
 * An error etcd answered: {"error": msg, "code": n, "message": msg}, or a
 * stream's {"error": {"grpc_code": n, "message": msg, ...}}. Returns false
 * when @o is not one (and then sets nothing).
 */
static bool parse_error(json_object *o, int *ret_grpc_code, GError **error)
{
	json_object *e, *code = NULL, *msg = NULL;
	const char *text;
	int64_t c;

	if (!json_object_object_get_ex(o, "error", &e))
		return false;
	if (json_object_is_type(e, json_type_object)) {
		json_object_object_get_ex(e, "grpc_code", &code);
		json_object_object_get_ex(e, "message", &msg);
	} else {
		json_object_object_get_ex(o, "code", &code);
		json_object_object_get_ex(o, "message", &msg);
		if (!msg)
			msg = e;
	}
	if (!code || !json_object_is_type(code, json_type_int) || !msg ||
	    !json_object_is_type(msg, json_type_string))
		return false;
	c = json_object_get_int64(code);
	if (c < 0 || c > 16) /* gRPC's codes are 0..16 */
		return false;
	text = json_object_get_string(msg);
	*ret_grpc_code = (int)c;
	/* %.200s: etcd's messages are short; a hostile one is not logged whole. */
	fail(error, error_code_of((int)c), "etcd: %.200s (code %d)", text, (int)c);
	return true;
}

/*
 * One JSON object and only white space after it (a keepalive stream's
 * newline), with the framer's strict checks (json-stream.h): integers
 * beyond 64 bits, NaN, bad UTF-8 and the like are refused, not clamped.
 */
static json_object *parse_json(const char *body, size_t len, GError **error)
{
	const VmcgJsonStreamOptions opts = {
		.max_message_bytes = VMCG_ETCD_REPLY_MAX_BYTES,
		/* A full reply (VMCG_ETCD_KVS_MAX kvs of a few members) stays within. */
		.max_tree_bytes = (size_t)256 << 20,
		.max_depth = JSON_DEPTH_MAX,
		.what = "etcd reply",
	};
	g_autoptr(GError) local = NULL;
	json_object *o = NULL;

	if (vmcg_json_parse_object(body, len, &opts, &o, &local) < 0) {
		bad(error, "not JSON: %s", local->message);
		return NULL;
	}
	return o;
}

static bool parse_reply(VmcgEtcdCall call, unsigned http_status, const char *body, size_t len,
			VmcgEtcdResult **ret, int *ret_grpc_code, GError **error)
{
	g_autoptr(json_object) root = NULL;
	g_autoptr(VmcgEtcdResult) r = NULL;
	json_object *o;
	size_t budget = VMCG_ETCD_KVS_MAX;
	bool ok = true;

	if (len > VMCG_ETCD_REPLY_MAX_BYTES)
		return bad(error, "reply of %zu bytes, above the cap of %u", len,
			   VMCG_ETCD_REPLY_MAX_BYTES);
	if (len == 0 || memchr(body, '\0', len)) {
		if (http_status / 100 != 2)
			return bad(error, "HTTP %u without an etcd error", http_status);
		return bad(error, "%s", len ? "a NUL in the reply" : "an empty reply");
	}
	root = parse_json(body, len, error);
	if (!root) {
		if (http_status / 100 != 2) {
			g_clear_error(error);
			return bad(error, "HTTP %u without an etcd error", http_status);
		}
		return false;
	}
	if (parse_error(root, ret_grpc_code, error))
		return false;
	if (http_status / 100 != 2)
		return bad(error, "HTTP %u without an etcd error", http_status);
	o = root;
	if (call == VMCG_ETCD_CALL_LEASE_KEEPALIVE &&
	    !req_member(root, "keepalive", "result", json_type_object, &o, error))
		return false;

	r = g_new0(VmcgEtcdResult, 1);
	r->call = call;
	if (!parse_header(o, vmcg_etcd_call_path(call), r, error))
		return false;
	switch (call) {
	case VMCG_ETCD_CALL_RANGE:
		ok = parse_range(o, "range", r, &budget, error);
		break;
	case VMCG_ETCD_CALL_DELETE:
		ok = int64_member(o, "deleterange", "deleted", false, 0, G_MAXINT64, &r->deleted,
				  error);
		break;
	case VMCG_ETCD_CALL_TXN:
		ok = parse_txn(o, r, error);
		break;
	case VMCG_ETCD_CALL_LEASE_GRANT:
		ok = int64_member(o, "lease grant", "ID", true, 1, G_MAXINT64, &r->lease_id,
				  error) &&
		     int64_member(o, "lease grant", "TTL", true, 1, VMCG_ETCD_TTL_MAX_S, &r->ttl_s,
				  error);
		break;
	case VMCG_ETCD_CALL_LEASE_KEEPALIVE:
		ok = int64_member(o, "keepalive", "ID", true, 1, G_MAXINT64, &r->lease_id, error) &&
		     int64_member(o, "keepalive", "TTL", false, 0, VMCG_ETCD_TTL_MAX_S, &r->ttl_s,
				  error);
		if (ok && r->ttl_s == 0) {
			*ret_grpc_code = GRPC_NOT_FOUND;
			return fail(error, VMCG_ETCD_ERROR_NOT_FOUND,
				    "etcd: lease %" PRId64 " is gone (expired or revoked)",
				    r->lease_id);
		}
		break;
	case VMCG_ETCD_CALL_STATUS:
		ok = parse_status(o, r, error);
		break;
	case VMCG_ETCD_CALL_PUT:
	case VMCG_ETCD_CALL_LEASE_REVOKE:
		break;
	}
	if (!ok)
		return false;
	*ret = g_steal_pointer(&r);
	return true;
}

bool vmcg_etcd_parse_reply(VmcgEtcdCall call, unsigned http_status, const char *body, size_t len,
			   VmcgEtcdResult **ret, int *ret_grpc_code, GError **error)
{
	int code = -1;

	if (parse_reply(call, http_status, body, len, ret, &code, error))
		return true;
	if (ret_grpc_code)
		*ret_grpc_code = code;
	return false;
}

const char *vmcg_etcd_call_path(VmcgEtcdCall call)
{
	switch (call) {
	case VMCG_ETCD_CALL_RANGE:
		return "/v3/kv/range";
	case VMCG_ETCD_CALL_PUT:
		return "/v3/kv/put";
	case VMCG_ETCD_CALL_DELETE:
		return "/v3/kv/deleterange";
	case VMCG_ETCD_CALL_TXN:
		return "/v3/kv/txn";
	case VMCG_ETCD_CALL_LEASE_GRANT:
		return "/v3/lease/grant";
	case VMCG_ETCD_CALL_LEASE_KEEPALIVE:
		return "/v3/lease/keepalive";
	case VMCG_ETCD_CALL_LEASE_REVOKE:
		return "/v3/lease/revoke";
	case VMCG_ETCD_CALL_STATUS:
		return "/v3/maintenance/status";
	}
	return "/v3/unknown";
}

/* ---- request builders ---- */

static bool check_key(const char *key, GError **error)
{
	size_t n = key ? strlen(key) : 0;

	if (n == 0)
		return fail(error, VMCG_ETCD_ERROR_INVALID, "etcd: an empty key");
	if (n > VMCG_ETCD_KEY_MAX_BYTES)
		return fail(error, VMCG_ETCD_ERROR_INVALID,
			    "etcd: a key of %zu bytes, above the cap of %d", n,
			    VMCG_ETCD_KEY_MAX_BYTES);
	return true;
}

static bool check_value(size_t len, GError **error)
{
	if (len > VMCG_ETCD_VALUE_MAX_BYTES)
		return fail(error, VMCG_ETCD_ERROR_INVALID,
			    "etcd: a value of %zu bytes, above the cap of %u", len,
			    VMCG_ETCD_VALUE_MAX_BYTES);
	return true;
}

static void add_b64(json_object *o, const char *name, const void *data, size_t len)
{
	g_autofree char *s = g_base64_encode(data, len);

	json_object_object_add(o, name, json_object_new_string(s));
}

static void add_int64(json_object *o, const char *name, int64_t v)
{
	char buf[24];

	g_snprintf(buf, sizeof(buf), "%" PRId64, v);
	json_object_object_add(o, name, json_object_new_string(buf));
}

size_t vmcg_etcd_prefix_end(const char *prefix, size_t len, char *buf)
{
	memcpy(buf, prefix, len);
	for (size_t i = len; i-- > 0;) {
		if ((unsigned char)buf[i] < 0xff) {
			buf[i]++;
			return i + 1;
		}
	}
	buf[0] = '\0';
	return 1;
}

static void add_key_range(json_object *o, const char *key, bool prefix)
{
	add_b64(o, "key", key, strlen(key));
	if (prefix) {
		char end[VMCG_ETCD_KEY_MAX_BYTES + 1];
		size_t n = vmcg_etcd_prefix_end(key, strlen(key), end);

		add_b64(o, "range_end", end, n);
	}
}

static char *finish(json_object *o)
{
	char *s = g_strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));

	json_object_put(o);
	return s;
}

static json_object *range_object(const char *key, bool prefix)
{
	json_object *o = json_object_new_object();

	add_key_range(o, key, prefix);
	return o;
}

static bool check_lease(int64_t lease, GError **error)
{
	if (lease < 0)
		return fail(error, VMCG_ETCD_ERROR_INVALID, "etcd: a negative lease %" PRId64,
			    lease);
	return true;
}

static json_object *put_object(const char *key, const void *value, size_t value_len, int64_t lease)
{
	json_object *o = json_object_new_object();

	add_b64(o, "key", key, strlen(key));
	add_b64(o, "value", value ? value : "", value_len);
	if (lease)
		add_int64(o, "lease", lease);
	return o;
}

char *vmcg_etcd_build_range(const char *key, bool prefix, GError **error)
{
	if (!check_key(key, error))
		return NULL;
	return finish(range_object(key, prefix));
}

char *vmcg_etcd_build_put(const char *key, const void *value, size_t value_len, int64_t lease,
			  GError **error)
{
	if (!check_key(key, error) || !check_value(value_len, error) || !check_lease(lease, error))
		return NULL;
	return finish(put_object(key, value, value_len, lease));
}

char *vmcg_etcd_build_delete(const char *key, bool prefix, GError **error)
{
	return vmcg_etcd_build_range(key, prefix, error);
}

static json_object *compare_object(const VmcgEtcdCompare *c, GError **error)
{
	static const char *const targets[] = { "VERSION", "CREATE", "MOD", "VALUE", "LEASE" };
	static const char *const fields[] = { "version", "create_revision", "mod_revision", "value",
					      "lease" };
	static const char *const results[] = { "EQUAL", "GREATER", "LESS", "NOT_EQUAL" };
	json_object *o;

	if (!check_key(c->key, error))
		return NULL;
	if ((unsigned)c->target >= G_N_ELEMENTS(targets) ||
	    (unsigned)c->result >= G_N_ELEMENTS(results)) {
		fail(error, VMCG_ETCD_ERROR_INVALID, "etcd: an unknown compare target or result");
		return NULL;
	}
	if (c->target == VMCG_ETCD_TARGET_VALUE ? !check_value(c->value_len, error)
						: c->number < 0) {
		if (c->target != VMCG_ETCD_TARGET_VALUE)
			fail(error, VMCG_ETCD_ERROR_INVALID,
			     "etcd: a negative compare number %" PRId64, c->number);
		return NULL;
	}
	o = json_object_new_object();
	add_key_range(o, c->key, c->prefix);
	json_object_object_add(o, "target", json_object_new_string(targets[c->target]));
	json_object_object_add(o, "result", json_object_new_string(results[c->result]));
	if (c->target == VMCG_ETCD_TARGET_VALUE)
		add_b64(o, fields[c->target], c->value ? c->value : "", c->value_len);
	else
		add_int64(o, fields[c->target], c->number);
	return o;
}

static json_object *op_object(const VmcgEtcdOp *op, GError **error)
{
	json_object *o = json_object_new_object(), *body;
	const char *name;

	if (!check_key(op->key, error))
		goto err;
	switch (op->kind) {
	case VMCG_ETCD_OP_RANGE:
		name = "request_range";
		body = range_object(op->key, op->prefix);
		break;
	case VMCG_ETCD_OP_PUT:
		if (!check_value(op->value_len, error) || !check_lease(op->lease, error))
			goto err;
		name = "request_put";
		body = put_object(op->key, op->value, op->value_len, op->lease);
		break;
	case VMCG_ETCD_OP_DELETE:
		name = "request_delete_range";
		body = range_object(op->key, op->prefix);
		break;
	default:
		fail(error, VMCG_ETCD_ERROR_INVALID, "etcd: an unknown txn op");
		goto err;
	}
	json_object_object_add(o, name, body);
	return o;
err:
	json_object_put(o);
	return NULL;
}

static bool add_ops(json_object *txn, const char *name, const VmcgEtcdOp *ops, size_t n,
		    GError **error)
{
	json_object *a;

	if (n > VMCG_ETCD_TXN_OPS_MAX)
		return fail(error, VMCG_ETCD_ERROR_INVALID,
			    "etcd: %zu txn ops, above etcd's default of %d", n,
			    VMCG_ETCD_TXN_OPS_MAX);
	a = json_object_new_array();
	json_object_object_add(txn, name, a);
	for (size_t i = 0; i < n; i++) {
		json_object *o = op_object(&ops[i], error);

		if (!o)
			return false;
		json_object_array_add(a, o);
	}
	return true;
}

char *vmcg_etcd_build_txn(const VmcgEtcdCompare *compares, size_t n_compares,
			  const VmcgEtcdOp *success, size_t n_success, const VmcgEtcdOp *failure,
			  size_t n_failure, GError **error)
{
	g_autoptr(json_object) txn = json_object_new_object();
	json_object *a;

	if (n_compares > VMCG_ETCD_TXN_OPS_MAX) {
		fail(error, VMCG_ETCD_ERROR_INVALID,
		     "etcd: %zu txn compares, above etcd's default of %d", n_compares,
		     VMCG_ETCD_TXN_OPS_MAX);
		return NULL;
	}
	a = json_object_new_array();
	json_object_object_add(txn, "compare", a);
	for (size_t i = 0; i < n_compares; i++) {
		json_object *o = compare_object(&compares[i], error);

		if (!o)
			return NULL;
		json_object_array_add(a, o);
	}
	if (!add_ops(txn, "success", success, n_success, error) ||
	    !add_ops(txn, "failure", failure, n_failure, error))
		return NULL;
	return finish(g_steal_pointer(&txn));
}

static bool check_lease_id(int64_t id, GError **error)
{
	if (id <= 0)
		return fail(error, VMCG_ETCD_ERROR_INVALID, "etcd: lease ID %" PRId64 " is not > 0",
			    id);
	return true;
}

char *vmcg_etcd_build_lease_grant(int64_t ttl_s, GError **error)
{
	json_object *o;

	if (ttl_s < 1 || ttl_s > VMCG_ETCD_TTL_MAX_S) {
		fail(error, VMCG_ETCD_ERROR_INVALID,
		     "etcd: a TTL of %" PRId64 " s is out of range (1..%" PRId64 ")", ttl_s,
		     VMCG_ETCD_TTL_MAX_S);
		return NULL;
	}
	o = json_object_new_object();
	add_int64(o, "TTL", ttl_s);
	return finish(o);
}

char *vmcg_etcd_build_lease_id(int64_t id, GError **error)
{
	json_object *o;

	if (!check_lease_id(id, error))
		return NULL;
	o = json_object_new_object();
	add_int64(o, "ID", id);
	return finish(o);
}

char *vmcg_etcd_build_status(void)
{
	return g_strdup("{}");
}

/* ---- endpoints ---- */

bool vmcg_etcd_endpoint_parse(const char *s, char **ret, GError **error)
{
	g_autoptr(GUri) uri = g_uri_parse(s, G_URI_FLAGS_NONE, NULL);
	const char *scheme, *path;

	if (!uri)
		goto bad;
	scheme = g_uri_get_scheme(uri);
	path = g_uri_get_path(uri);
	if ((g_strcmp0(scheme, "http") && g_strcmp0(scheme, "https")) || !g_uri_get_host(uri) ||
	    !*g_uri_get_host(uri) || (*path && strcmp(path, "/")) || g_uri_get_query(uri) ||
	    g_uri_get_userinfo(uri))
		goto bad;
	if (ret)
		*ret = g_strndup(s, strlen(s) - (*path ? 1 : 0));
	return true;
bad:
	g_set_error(error, VMCG_ETCD_ERROR, VMCG_ETCD_ERROR_INVALID,
		    "etcd endpoint \"%s\" is not http://host:port or https://host:port", s);
	return false;
}

char **vmcg_etcd_split_endpoints(const char *list)
{
	char **v = g_strsplit(list ? list : "", ",", -1);
	unsigned j = 0;

	for (unsigned i = 0; v[i]; i++) {
		g_strstrip(v[i]);
		if (*v[i])
			v[j++] = v[i];
		else
			g_free(v[i]);
	}
	v[j] = NULL;
	return v;
}

bool vmcg_etcd_endpoints_validate(const char *list, GError **error)
{
	g_auto(GStrv) v = vmcg_etcd_split_endpoints(list);
	unsigned n = g_strv_length(v);

	if (n == 0 || n > VMCG_ETCD_ENDPOINTS_MAX) {
		g_set_error(error, VMCG_ETCD_ERROR, VMCG_ETCD_ERROR_INVALID,
			    "%u etcd endpoints: expected 1 to %d, separated by commas", n,
			    VMCG_ETCD_ENDPOINTS_MAX);
		return false;
	}
	for (unsigned i = 0; i < n; i++)
		if (!vmcg_etcd_endpoint_parse(v[i], NULL, error))
			return false;
	return true;
}
