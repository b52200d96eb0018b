// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fuzz target of what vmcgd reads back from etcd for a cluster quota
 * (daemon/cluster-grant.c, docs/cluster.md): a grant key and a grant
 * record, both written by any host of the cluster (or by anyone with
 * write access to etcd), so hostile input.
 *
 * The first byte picks the parser (even: key, odd: record); the rest is
 * the input. Per input: a key parse either fails with an error and sets
 * nothing, or gives a valid group path and host name from which
 * vmcg_grant_key() builds exactly the input back (canonical form); a
 * record parse either fails with an error, or gives values within
 * VMCG_GRANT_BYTES_MAX that vmcg_grant_record_build() turns back into
 * exactly the input.
 *
 * To fuzz: clang -fsanitize=fuzzer,address,undefined -DVMCG_LIBFUZZER
 * with the build's libvmcgd.a and libvmcg.a, on a copy of
 * corpus/cluster-grant.
 */
#include <stdint.h>
#include <string.h>

#include <glib.h>

#include "cluster-grant.h"
#include "fuzz-check.h"
#include "vmcg/group.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_key(const char *s, size_t len)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *group = NULL, *host = NULL, *again = NULL;
	int r = vmcg_grant_key_parse(s, len, &group, &host, &error);

	if (r < 0) {
		CHECK(error != NULL && error->message[0]);
		CHECK(!group && !host);
		return;
	}
	CHECK(r == 0 && !error && group && host);
	CHECK(vmcg_path_validate(group) == 0 && strcmp(group, "/") != 0);
	CHECK(vmcg_grant_host_validate(host) == 0);
	CHECK(vmcg_grant_key(group, host, &again) == 0);
	CHECK(strlen(again) == len && memcmp(again, s, len) == 0);
}

static void fuzz_record(const char *s, size_t len)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *again = NULL;
	VmcgGrantRecord rec = { 0 };
	int r = vmcg_grant_record_parse(s, len, &rec, &error);

	if (r < 0) {
		CHECK(error != NULL && error->message[0]);
		return;
	}
	CHECK(r == 0 && !error);
	CHECK(rec.grant_bytes <= VMCG_GRANT_BYTES_MAX && rec.demand_bytes <= VMCG_GRANT_BYTES_MAX);
	CHECK(rec.quota_bytes <= VMCG_GRANT_BYTES_MAX && rec.at_usec <= VMCG_GRANT_BYTES_MAX);
	again = vmcg_grant_record_build(&rec);
	CHECK(strlen(again) == len && memcmp(again, s, len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] % 2 == 0)
		fuzz_key((const char *)data + 1, size - 1);
	else
		fuzz_record((const char *)data + 1, size - 1);
	return 0;
}
