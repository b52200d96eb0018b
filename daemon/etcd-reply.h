/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * etcd's v3 JSON gateway (grpc-gateway, etcd 3.4: POST /v3/...): the
 * request bodies vmcgd sends and the replies it reads. Pure: no I/O, no
 * main loop; etcd.c does the HTTP.
 *
 * The wire format, as etcd 3.4.23 (Debian 12's etcd-server) writes it
 * (tests/unit/test-etcd-reply.c holds replies captured from it):
 * - keys and values are base64 (standard alphabet, padded);
 * - int64 and uint64 fields (revisions, versions, counts, lease IDs, TTLs,
 *   member IDs) are JSON strings of decimal digits; int32 fields (an
 *   error's "code") are JSON numbers;
 * - proto3 leaves out every field at its zero value: no "kvs" and no
 *   "count" for an empty range, no "succeeded" for a failed txn, no
 *   "value" for an empty value, no "lease" for a key without one. So an
 *   absent field is its zero, except where etcd never sends the zero (a
 *   key, a reply's header and revision, a kv's revisions and version, a
 *   granted lease's ID), where absence is an error;
 * - an error is {"error": msg, "message": msg, "code": <gRPC code>} with
 *   an HTTP status (400 invalid argument, 404 not found, 500 unknown,
 *   503 unavailable);
 * - /v3/lease/keepalive is a stream: each reply is wrapped in
 *   {"result": {...}}, a lease that is gone has no "TTL" (0), and a
 *   stream error is {"error": {"grpc_code":, "http_code":, "message":}}.
 *
 * Replies are hostile input: wrong types, bad base64, int64 strings out of
 * range, counts that do not match, sizes above the caps below are a
 * VMCG_ETCD_ERROR_BAD_REPLY naming what is wrong, never a crash and never
 * a clamped value. Out-parameters are set on success only.
 */
#ifndef VMCG_DAEMON_ETCD_REPLY_H
#define VMCG_DAEMON_ETCD_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>

#define VMCG_ETCD_ERROR (vmcg_etcd_error_quark())
GQuark vmcg_etcd_error_quark(void);

typedef enum {
	VMCG_ETCD_ERROR_BAD_REPLY,   /* not what etcd 3.4 sends, or above a cap */
	VMCG_ETCD_ERROR_INVALID,     /* the caller's request: empty or huge key, bad TTL */
	VMCG_ETCD_ERROR_NOT_FOUND,   /* gRPC NotFound (5): no such lease; a lease gone */
	VMCG_ETCD_ERROR_UNAVAILABLE, /* gRPC Unavailable (14), or no endpoint answered */
	VMCG_ETCD_ERROR_TIMEOUT,     /* no answer within the request's timeout */
	VMCG_ETCD_ERROR_SERVER,	     /* any other error etcd answered */
} VmcgEtcdError;

/*
 * 16 MiB: the largest reply read. etcd's default --max-request-bytes is
 * 1.5 MiB and its default gRPC send limit is math.MaxInt32, so a range of
 * a large prefix can be bigger; vmcgd's prefixes hold one small record per
 * group and host, far below this, and a reply above it is refused rather
 * than buffered.
 */
#define VMCG_ETCD_REPLY_MAX_BYTES (16u << 20)

/*
 * 4 KiB: the longest key. vmcgd's keys are a prefix and a group path (at
 * most a few hundred bytes); etcd has no key limit of its own beyond the
 * request size.
 */
#define VMCG_ETCD_KEY_MAX_BYTES 4096

/* 1.5 MiB: etcd's default --max-request-bytes; no value can be larger. */
#define VMCG_ETCD_VALUE_MAX_BYTES (3u << 19)

/*
 * 100000: the most kvs one reply may hold (a range, or a txn's ranges all
 * together): well above one record per group and host, and it bounds the
 * memory of a reply made of many tiny entries.
 */
#define VMCG_ETCD_KVS_MAX 100000

/* 128: the most compares or ops in one txn (etcd's default --max-txn-ops). */
#define VMCG_ETCD_TXN_OPS_MAX 128

/*
 * 9000000000 s: etcd's MaxLeaseTTL (lease/lessor.go), the largest TTL a
 * grant accepts.
 */
#define VMCG_ETCD_TTL_MAX_S INT64_C(9000000000)

/* One key as etcd stores it (mvccpb.KeyValue). */
typedef struct {
	char *key; /* NUL-terminated too; may hold NULs (key_len says) */
	size_t key_len;
	char *value; /* NUL-terminated too; "" when empty */
	size_t value_len;
	int64_t create_revision, mod_revision; /* > 0 */
	int64_t version;		       /* > 0: puts since creation */
	int64_t lease;			       /* 0: none */
} VmcgEtcdKv;

/* What each call answers; which fields a call fills is said at each. */
typedef enum {
	VMCG_ETCD_CALL_RANGE,
	VMCG_ETCD_CALL_PUT,
	VMCG_ETCD_CALL_DELETE,
	VMCG_ETCD_CALL_TXN,
	VMCG_ETCD_CALL_LEASE_GRANT,
	VMCG_ETCD_CALL_LEASE_KEEPALIVE,
	VMCG_ETCD_CALL_LEASE_REVOKE,
	VMCG_ETCD_CALL_STATUS,
} VmcgEtcdCall;

typedef struct VmcgEtcdResult VmcgEtcdResult;

struct VmcgEtcdResult {
	VmcgEtcdCall call;
	/* The header's revision (> 0). In a txn's responses: that op's. */
	int64_t revision;
	uint64_t member_id; /* the header's member_id: who answered (0 in txn responses) */
	/* RANGE, and a txn's range: the kvs, "count" (>= n_kvs), "more". */
	VmcgEtcdKv *kvs;
	size_t n_kvs;
	int64_t count;
	bool more;
	/* DELETE, and a txn's delete: how many keys went. */
	int64_t deleted;
	/* TXN: whether the compares held, and the responses of the ops run. */
	bool succeeded;
	VmcgEtcdResult *responses; /* their .call: RANGE, PUT or DELETE */
	size_t n_responses;
	/* LEASE_GRANT, LEASE_KEEPALIVE: the lease (> 0) and its TTL (> 0, s). */
	int64_t lease_id;
	int64_t ttl_s;
	/* STATUS: the server's version, the leader's member ID, raft state. */
	char *version;
	uint64_t leader;
	int64_t raft_term, raft_index, db_size_bytes;
};

/* Frees @r and everything it holds; NULL is fine. */
void vmcg_etcd_result_free(VmcgEtcdResult *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VmcgEtcdResult, vmcg_etcd_result_free)

/**
 * vmcg_etcd_parse_reply() - one reply of the gateway
 * @call: what was asked
 * @http_status: the HTTP status of the reply
 * @body: the body; need not be NUL-terminated
 * @len: its length: above VMCG_ETCD_REPLY_MAX_BYTES is an error
 * @ret: the result on success (vmcg_etcd_result_free() it)
 * @ret_grpc_code: on an error etcd answered, its gRPC code; -1 when the
 *                 reply was not an etcd error (bad reply). May be NULL.
 *                 Set on failure only.
 * @error: BAD_REPLY; for an etcd error, NOT_FOUND, UNAVAILABLE or SERVER
 *         with etcd's message
 *
 * An error body is read whatever the status; a non-2xx status without one
 * is a BAD_REPLY naming the status. A keepalive whose lease is gone (no
 * TTL) is a NOT_FOUND error: the caller must grant a new lease.
 */
bool vmcg_etcd_parse_reply(VmcgEtcdCall call, unsigned http_status, const char *body, size_t len,
			   VmcgEtcdResult **ret, int *ret_grpc_code, GError **error);

/*
 * Request builders. Each returns the JSON body (g_free() it) or NULL with
 * VMCG_ETCD_ERROR_INVALID: an empty key, a key above
 * VMCG_ETCD_KEY_MAX_BYTES, a value above VMCG_ETCD_VALUE_MAX_BYTES, a
 * negative lease, a TTL outside 1..VMCG_ETCD_TTL_MAX_S, too many txn
 * entries. Keys are C strings (vmcgd's keys are text).
 */

/* The path of @call under the gateway, e.g. "/v3/kv/range". */
const char *vmcg_etcd_call_path(VmcgEtcdCall call);

/*
 * The range_end of every key starting with @prefix (clientv3's
 * GetPrefixRangeEnd): the prefix with its last byte below 0xff
 * incremented and what follows dropped; "\0" (every key from @prefix on)
 * when every byte is 0xff. Returns its length; @buf holds
 * VMCG_ETCD_KEY_MAX_BYTES + 1 bytes.
 */
size_t vmcg_etcd_prefix_end(const char *prefix, size_t len, char *buf);

/* /v3/kv/range of @key, or of every key under it when @prefix. */
char *vmcg_etcd_build_range(const char *key, bool prefix, GError **error);
/* /v3/kv/put: @lease 0 for none. */
char *vmcg_etcd_build_put(const char *key, const void *value, size_t value_len, int64_t lease,
			  GError **error);
/* /v3/kv/deleterange of @key, or of every key under it when @prefix. */
char *vmcg_etcd_build_delete(const char *key, bool prefix, GError **error);

typedef enum {
	VMCG_ETCD_TARGET_VERSION, /* .number: the key's version; 0 = absent */
	VMCG_ETCD_TARGET_CREATE,  /* .number: create_revision */
	VMCG_ETCD_TARGET_MOD,	  /* .number: mod_revision */
	VMCG_ETCD_TARGET_VALUE,	  /* .value, .value_len */
	VMCG_ETCD_TARGET_LEASE,	  /* .number: the key's lease ID */
} VmcgEtcdTarget;

typedef enum {
	VMCG_ETCD_CMP_EQUAL,
	VMCG_ETCD_CMP_GREATER,
	VMCG_ETCD_CMP_LESS,
	VMCG_ETCD_CMP_NOT_EQUAL,
} VmcgEtcdCmpResult;

/*
 * One txn compare: the key's @target, compared by @result to the value.
 * With @prefix, over every key under the prefix @key (etcd's range_end):
 * the compare holds when it holds for each of them, and trivially when
 * there is none. "mod_revision < rev + 1" over a prefix is how a txn
 * learns that no key under it was created or changed since a read at
 * rev (docs/cluster.md, the range guard).
 */
typedef struct {
	const char *key;
	bool prefix;
	VmcgEtcdTarget target;
	VmcgEtcdCmpResult result;
	int64_t number;
	const void *value;
	size_t value_len;
} VmcgEtcdCompare;

typedef enum {
	VMCG_ETCD_OP_RANGE,  /* .key, .prefix */
	VMCG_ETCD_OP_PUT,    /* .key, .value, .value_len, .lease */
	VMCG_ETCD_OP_DELETE, /* .key, .prefix */
} VmcgEtcdOpKind;

/* One op of a txn's success or failure branch. */
typedef struct {
	VmcgEtcdOpKind kind;
	const char *key;
	bool prefix;
	const void *value;
	size_t value_len;
	int64_t lease;
} VmcgEtcdOp;

/* /v3/kv/txn: at most VMCG_ETCD_TXN_OPS_MAX compares and per branch. */
char *vmcg_etcd_build_txn(const VmcgEtcdCompare *compares, size_t n_compares,
			  const VmcgEtcdOp *success, size_t n_success, const VmcgEtcdOp *failure,
			  size_t n_failure, GError **error);
/* /v3/lease/grant of @ttl_s seconds (1..VMCG_ETCD_TTL_MAX_S). */
char *vmcg_etcd_build_lease_grant(int64_t ttl_s, GError **error);
/* /v3/lease/keepalive and /v3/lease/revoke of lease @id (> 0). */
char *vmcg_etcd_build_lease_id(int64_t id, GError **error);
/* /v3/maintenance/status: "{}". */
char *vmcg_etcd_build_status(void);

/* ---- endpoints (the config's [cluster] etcd; pure) ---- */

/* 16: the most endpoints (an etcd cluster has 3, 5 or 7 members). */
#define VMCG_ETCD_ENDPOINTS_MAX 16

/* Splits "a,b,c" (spaces around commas dropped, empty items too); g_strfreev() it. */
char **vmcg_etcd_split_endpoints(const char *list);

/*
 * One endpoint: "http://host:port" or "https://host:port", no path (a
 * trailing "/" is dropped), query or user. *@ret (if not NULL) gets it
 * without the slash. VMCG_ETCD_ERROR_INVALID otherwise.
 */
bool vmcg_etcd_endpoint_parse(const char *s, char **ret, GError **error);

/* A comma-separated list of 1 to VMCG_ETCD_ENDPOINTS_MAX endpoints, each as above. */
bool vmcg_etcd_endpoints_validate(const char *list, GError **error);

#endif
