// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The etcd client (daemon/etcd.c) driven from a script: test_etcd.py runs
 * this against the etcd members it started, writes one command per line
 * on stdin and reads one answer per line on stdout, so that it can kill a
 * member or write a key itself between two commands.
 *
 *   etcd-client-check http://127.0.0.1:A,http://127.0.0.1:B,...
 *
 * Commands (keys and values are text without spaces):
 *   put KEY VALUE [LEASE]   ok rev=R
 *   get KEY                 ok rev=R count=N [value=V mod=M create=C version=V lease=L]
 *   prefix KEY              ok rev=R count=N keys=K1,K2,...
 *   del KEY                 ok rev=R deleted=N
 *   cas KEY MOD VALUE       put VALUE if KEY's mod_revision is MOD (0: absent):
 *                           ok succeeded=1 rev=R, or ok succeeded=0 mod=M value=V
 *   guard PREFIX REV KEY VALUE
 *                           put VALUE at KEY if no key under PREFIX has a
 *                           mod_revision above REV (docs/cluster.md's range
 *                           guard): ok succeeded=0|1 rev=R
 *   grant TTL               ok id=ID ttl=T
 *   keepalive ID            ok ttl=T
 *   revoke ID               ok rev=R
 *   status                  ok member=M leader=L version=V endpoint=I
 *   timeout MS              ok
 * An error is "error CODE message" (CODE: VMCG_ETCD_ERROR's name).
 * Exit: 0 at the end of input, 2 on bad arguments.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "etcd.h"

typedef struct {
	bool done;
	GString *out;
	const char *cmd;
} Call;

static const char *code_name(int code)
{
	static const char *const names[] = { "BAD_REPLY",   "INVALID", "NOT_FOUND",
					     "UNAVAILABLE", "TIMEOUT", "SERVER" };

	return code >= 0 && (size_t)code < G_N_ELEMENTS(names) ? names[code] : "OTHER";
}

static void print_kv(GString *out, const VmcgEtcdKv *kv)
{
	g_string_append_printf(
		out,
		" value=%s mod=%" PRId64 " create=%" PRId64 " version=%" PRId64 " lease=%" PRId64,
		kv->value, kv->mod_revision, kv->create_revision, kv->version, kv->lease);
}

static VmcgEtcd *client;

static void done_cb(const VmcgEtcdResult *r, const GError *error, gpointer data)
{
	Call *c = data;

	c->done = true;
	if (error) {
		g_string_append_printf(c->out, "error %s %s",
				       error->domain == VMCG_ETCD_ERROR ? code_name(error->code)
									: "OTHER",
				       error->message);
		return;
	}
	g_string_append(c->out, "ok");
	if (!strcmp(c->cmd, "get")) {
		g_string_append_printf(c->out, " rev=%" PRId64 " count=%" PRId64, r->revision,
				       r->count);
		if (r->n_kvs)
			print_kv(c->out, &r->kvs[0]);
	} else if (!strcmp(c->cmd, "prefix")) {
		g_string_append_printf(
			c->out, " rev=%" PRId64 " count=%" PRId64 " keys=", r->revision, r->count);
		for (size_t i = 0; i < r->n_kvs; i++)
			g_string_append_printf(c->out, "%s%s", i ? "," : "", r->kvs[i].key);
	} else if (!strcmp(c->cmd, "del")) {
		g_string_append_printf(c->out, " rev=%" PRId64 " deleted=%" PRId64, r->revision,
				       r->deleted);
	} else if (!strcmp(c->cmd, "guard")) {
		g_string_append_printf(c->out, " succeeded=%d rev=%" PRId64, r->succeeded,
				       r->revision);
	} else if (!strcmp(c->cmd, "cas")) {
		g_string_append_printf(c->out, " succeeded=%d", r->succeeded);
		if (r->succeeded)
			g_string_append_printf(c->out, " rev=%" PRId64, r->revision);
		else if (r->n_responses == 1 && r->responses[0].n_kvs == 1)
			g_string_append_printf(c->out, " mod=%" PRId64 " value=%s",
					       r->responses[0].kvs[0].mod_revision,
					       r->responses[0].kvs[0].value);
	} else if (!strcmp(c->cmd, "grant")) {
		g_string_append_printf(c->out, " id=%" PRId64 " ttl=%" PRId64, r->lease_id,
				       r->ttl_s);
	} else if (!strcmp(c->cmd, "keepalive")) {
		g_string_append_printf(c->out, " ttl=%" PRId64, r->ttl_s);
	} else if (!strcmp(c->cmd, "status")) {
		g_string_append_printf(c->out, " member=%" PRIu64 " leader=%" PRIu64 " version=%s",
				       r->member_id, r->leader, r->version);
	} else {
		g_string_append_printf(c->out, " rev=%" PRId64, r->revision);
	}
}

static int64_t num(const char *s)
{
	return s ? g_ascii_strtoll(s, NULL, 10) : 0;
}

/* Runs one command line; the answer in @out. */
static void run(char **argv, unsigned argc, GString *out)
{
	Call c = { .out = out, .cmd = argv[0] };
	const char *cmd = argv[0];

	if (!strcmp(cmd, "put") && argc >= 3) {
		vmcg_etcd_put(client, argv[1], argv[2], strlen(argv[2]),
			      argc > 3 ? num(argv[3]) : 0, done_cb, &c);
	} else if (!strcmp(cmd, "get") && argc == 2) {
		vmcg_etcd_range(client, argv[1], false, done_cb, &c);
	} else if (!strcmp(cmd, "prefix") && argc == 2) {
		vmcg_etcd_range(client, argv[1], true, done_cb, &c);
	} else if (!strcmp(cmd, "del") && argc == 2) {
		vmcg_etcd_delete(client, argv[1], false, done_cb, &c);
	} else if (!strcmp(cmd, "cas") && argc == 4) {
		VmcgEtcdCompare cmp = { .key = argv[1],
					.target = VMCG_ETCD_TARGET_MOD,
					.result = VMCG_ETCD_CMP_EQUAL,
					.number = num(argv[2]) };
		VmcgEtcdOp put = { .kind = VMCG_ETCD_OP_PUT,
				   .key = argv[1],
				   .value = argv[3],
				   .value_len = strlen(argv[3]) };
		VmcgEtcdOp get = { .kind = VMCG_ETCD_OP_RANGE, .key = argv[1] };

		vmcg_etcd_txn(client, &cmp, 1, &put, 1, &get, 1, done_cb, &c);
	} else if (!strcmp(cmd, "guard") && argc == 5) {
		VmcgEtcdCompare cmp = { .key = argv[1],
					.prefix = true,
					.target = VMCG_ETCD_TARGET_MOD,
					.result = VMCG_ETCD_CMP_LESS,
					.number = num(argv[2]) + 1 };
		VmcgEtcdOp put = { .kind = VMCG_ETCD_OP_PUT,
				   .key = argv[3],
				   .value = argv[4],
				   .value_len = strlen(argv[4]) };

		vmcg_etcd_txn(client, &cmp, 1, &put, 1, NULL, 0, done_cb, &c);
	} else if (!strcmp(cmd, "grant") && argc == 2) {
		vmcg_etcd_lease_grant(client, num(argv[1]), done_cb, &c);
	} else if (!strcmp(cmd, "keepalive") && argc == 2) {
		vmcg_etcd_lease_keepalive(client, num(argv[1]), done_cb, &c);
	} else if (!strcmp(cmd, "revoke") && argc == 2) {
		vmcg_etcd_lease_revoke(client, num(argv[1]), done_cb, &c);
	} else if (!strcmp(cmd, "status") && argc == 1) {
		vmcg_etcd_status(client, done_cb, &c);
	} else if (!strcmp(cmd, "timeout") && argc == 2) {
		vmcg_etcd_set_timeout(client, (unsigned)num(argv[1]));
		g_string_append(out, "ok");
		return;
	} else {
		g_string_append_printf(out, "error USAGE %s", cmd);
		return;
	}
	while (!c.done)
		g_main_context_iteration(NULL, TRUE);
	if (!strcmp(cmd, "status") && g_str_has_prefix(out->str, "ok"))
		g_string_append_printf(out, " endpoint=%u", vmcg_etcd_current_endpoint(client));
}

int main(int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	g_auto(GStrv) endpoints = NULL;
	char line[4096];

	vmcg_etcd_process_init();

	if (argc != 2) {
		fprintf(stderr, "usage: %s ENDPOINT[,ENDPOINT...] < commands\n", argv[0]);
		return 2;
	}
	endpoints = vmcg_etcd_split_endpoints(argv[1]);
	client = vmcg_etcd_new((const char *const *)endpoints, NULL, &error);
	if (!client) {
		fprintf(stderr, "%s\n", error->message);
		return 2;
	}
	while (fgets(line, sizeof(line), stdin)) {
		g_auto(GStrv) words = g_strsplit_set(g_strstrip(line), " ", -1);
		g_autoptr(GString) out = g_string_new(NULL);

		if (!words[0] || !*words[0])
			continue;
		run(words, g_strv_length(words), out);
		printf("%s\n", out->str);
		fflush(stdout);
	}
	vmcg_etcd_free(client);
	return 0;
}
