// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fuzz target of the etcd gateway's reply parser (daemon/etcd-reply.c):
 * what a hostile or broken etcd, or anything listening where an endpoint
 * points, can answer.
 *
 * Per input: parsed as the reply of every call, with HTTP 200 and 503.
 * The parser must either fail with a GError of VMCG_ETCD_ERROR, leaving
 * its out-parameter alone, or give a result that keeps etcd-reply.h's
 * promises (revisions > 0, kvs within the caps and below "count", keys
 * non-empty and NUL-terminated, leases > 0).
 *
 * To fuzz: clang -fsanitize=fuzzer,address,undefined -DVMCG_LIBFUZZER
 * -D_GNU_SOURCE -Idaemon daemon/etcd-reply.c tests/fuzz/fuzz-etcd-reply.c
 * $(pkg-config --cflags --libs glib-2.0 json-c), then run it on a copy of
 * corpus/etcd-reply.
 */
#include <stdint.h>
#include <string.h>

#include <glib.h>

#include "etcd-reply.h"
#include "fuzz-check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_kvs(const VmcgEtcdResult *r)
{
	CHECK(r->n_kvs <= VMCG_ETCD_KVS_MAX);
	CHECK(r->count >= 0 && (uint64_t)r->count >= r->n_kvs);
	for (size_t i = 0; i < r->n_kvs; i++) {
		const VmcgEtcdKv *kv = &r->kvs[i];

		CHECK(kv->key_len > 0 && kv->key_len <= VMCG_ETCD_KEY_MAX_BYTES);
		CHECK(kv->key[kv->key_len] == '\0');
		CHECK(kv->value_len <= VMCG_ETCD_VALUE_MAX_BYTES);
		CHECK(kv->value[kv->value_len] == '\0');
		CHECK(kv->create_revision > 0 && kv->mod_revision >= kv->create_revision);
		CHECK(kv->version > 0 && kv->lease >= 0);
	}
}

static void check_result(const VmcgEtcdResult *r, VmcgEtcdCall call)
{
	CHECK(r->call == call && r->revision > 0);
	switch (call) {
	case VMCG_ETCD_CALL_RANGE:
		check_kvs(r);
		break;
	case VMCG_ETCD_CALL_DELETE:
		CHECK(r->deleted >= 0);
		break;
	case VMCG_ETCD_CALL_TXN:
		CHECK(r->n_responses <= VMCG_ETCD_TXN_OPS_MAX);
		for (size_t i = 0; i < r->n_responses; i++) {
			const VmcgEtcdResult *s = &r->responses[i];

			CHECK(s->revision > 0);
			CHECK(s->call == VMCG_ETCD_CALL_RANGE || s->call == VMCG_ETCD_CALL_PUT ||
			      s->call == VMCG_ETCD_CALL_DELETE);
			check_kvs(s);
			CHECK(s->deleted >= 0);
		}
		break;
	case VMCG_ETCD_CALL_LEASE_GRANT:
	case VMCG_ETCD_CALL_LEASE_KEEPALIVE:
		CHECK(r->lease_id > 0 && r->ttl_s > 0 && r->ttl_s <= VMCG_ETCD_TTL_MAX_S);
		break;
	case VMCG_ETCD_CALL_STATUS:
		CHECK(r->version && *r->version && strlen(r->version) <= 64);
		CHECK(r->raft_term >= 0 && r->raft_index >= 0 && r->db_size_bytes >= 0);
		break;
	default:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned statuses[] = { 200, 503 };

	for (int call = VMCG_ETCD_CALL_RANGE; call <= VMCG_ETCD_CALL_STATUS; call++) {
		for (size_t s = 0; s < G_N_ELEMENTS(statuses); s++) {
			VmcgEtcdResult *r = (VmcgEtcdResult *)0x1;
			GError *err = NULL;
			int grpc = -77;

			if (!vmcg_etcd_parse_reply(call, statuses[s], (const char *)data, size, &r,
						   &grpc, &err)) {
				CHECK(r == (VmcgEtcdResult *)0x1);
				CHECK(err && err->domain == VMCG_ETCD_ERROR);
				CHECK(err->code != VMCG_ETCD_ERROR_INVALID &&
				      err->code != VMCG_ETCD_ERROR_TIMEOUT);
				CHECK(err->message && *err->message);
				CHECK(grpc >= -1 && grpc <= 16);
				CHECK((grpc == -1) == (err->code == VMCG_ETCD_ERROR_BAD_REPLY));
				g_error_free(err);
				continue;
			}
			CHECK(!err && grpc == -77 && statuses[s] == 200);
			check_result(r, call);
			vmcg_etcd_result_free(r);
		}
	}
	return 0;
}
