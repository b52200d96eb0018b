// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * QMP reply parsers (daemon/qmp-reply.c): one table of canned replies, each
 * run as the daemon gets it (wrapped in a QMP message, through
 * vmcg_qmp_parse(), then the parser on its "return" or event "data"), with
 * the values or the error it must give. The "real" rows are what QEMU 7.2
 * (Debian 1:7.2+dfsg-7+deb12u18) answered with -device virtio-balloon-pci
 * and -m 128; the others are wrong types, missing members, zero, negative,
 * huge and nested junk.
 */
#include <string.h>

#include <glib.h>

#include "qmp-real.h"
#include "qmp-reply.h"

#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define TiB (UINT64_C(1) << 40)

/* What QEMU 7.2 sends for a statistic the guest has not reported. */
#define NONE "18446744073709551615"

typedef enum {
	BALLOON,
	CHANGE, /* BALLOON_CHANGE; a NULL .json is an event without data */
	STATS,
	MEMDEV,
	CHILD,
	STATUS,
} Parser;

typedef struct {
	Parser parser;
	const char *json; /* the "return" value, or the event's "data" */
	uint64_t limit;	  /* ram_limit_bytes */
	int code;	  /* -1: success; else the VMCG_QMP_ERROR code */
	const char *msg;  /* a substring of the error message */
	/* Success: the size (actual, memdev size, stats total). */
	uint64_t size;
	/* STATS: available, free, cache, last-update. */
	uint64_t avail;
	int64_t free, cache, last_update;
	/* CHILD: the QOM path; STATUS: the status, .running */
	const char *str;
	bool running;
} Case;

#define OK -1
#define BAD VMCG_QMP_ERROR_BAD_REPLY
#define NOVAL VMCG_QMP_ERROR_NO_VALUE

#define STATS_JSON(total, avail, freem, cache, lu)                                         \
	"{\"stats\": {\"stat-total-memory\": " total ", \"stat-available-memory\": " avail \
	", \"stat-free-memory\": " freem ", \"stat-disk-caches\": " cache                  \
	", \"stat-swap-in\": 0}, \"last-update\": " lu "}"

/* The reply of a guest that has not reported yet, as QEMU 7.2 sends it. */
#define REAL_STATS_NONE                                                          \
	"{\"stats\": {\"stat-htlb-pgalloc\": " NONE ", \"stat-swap-out\": " NONE \
	", \"stat-available-memory\": " NONE ", \"stat-htlb-pgfail\": " NONE     \
	", \"stat-free-memory\": " NONE ", \"stat-minor-faults\": " NONE         \
	", \"stat-major-faults\": " NONE ", \"stat-total-memory\": " NONE        \
	", \"stat-swap-in\": " NONE ", \"stat-disk-caches\": " NONE "}, \"last-update\": 0}"

static const Case cases[] = {
	/* query-balloon */
	{ BALLOON, "{\"actual\": 134217728}", 0, OK, NULL, 128 * MiB }, /* real */
	{ BALLOON, "{\"actual\": 134217728}", 128 * MiB, OK, NULL, 128 * MiB },
	{ BALLOON, "{\"actual\": 1}", 0, OK, NULL, 1 },
	{ BALLOON, "{\"actual\": 1099511627776}", 0, OK, NULL, TiB },
	{ BALLOON, "{\"actual\": 1099511627777}", 0, BAD, "out of range (1..1099511627776 bytes)" },
	{ BALLOON, "{\"actual\": 134217729}", 128 * MiB, BAD,
	  "\"actual\" 134217729 is out of range" },
	{ BALLOON, "{\"actual\": 0}", 0, BAD, "\"actual\" 0 is out of range" },
	{ BALLOON, "{\"actual\": -4096}", 0, BAD, "\"actual\" -4096 is out of range" },
	{ BALLOON, "{\"actual\": " NONE "}", 0, BAD, "out of range" },
	{ BALLOON, "{\"actual\": 9223372036854775807}", 0, BAD, "out of range" },
	{ BALLOON, "{\"actual\": \"134217728\"}", 0, BAD,
	  "query-balloon: \"actual\" must be an int, not string" },
	{ BALLOON, "{\"actual\": 1.5e8}", 0, BAD, "must be an int, not double" },
	{ BALLOON, "{\"actual\": null}", 0, BAD, "must be an int, not null" },
	{ BALLOON, "{\"actual\": {\"actual\": 1}}", 0, BAD, "must be an int, not object" },
	{ BALLOON, "{\"actual\": [134217728]}", 0, BAD, "must be an int, not array" },
	{ BALLOON, "{}", 0, BAD, "query-balloon: no \"actual\"" },
	{ BALLOON, "{\"Actual\": 1}", 0, BAD, "no \"actual\"" },
	{ BALLOON, "[{\"actual\": 134217728}]", 0, BAD,
	  "query-balloon must be an object, not array" },
	{ BALLOON, "134217728", 0, BAD, "must be an object, not int" },
	{ BALLOON, "{\"actual\": 4096, \"junk\": {\"a\": [1, {\"b\": []}]}}", 0, OK, NULL, 4096 },

	/* BALLOON_CHANGE */
	{ CHANGE, "{\"actual\": 67108864}", 128 * MiB, OK, NULL, 64 * MiB },
	{ CHANGE, "{\"actual\": 268435456}", 128 * MiB, BAD, "BALLOON_CHANGE: \"actual\"" },
	{ CHANGE, "{\"actual\": 0}", 0, BAD, "out of range" },
	{ CHANGE, "{\"actual\": true}", 0, BAD, "must be an int, not boolean" },
	{ CHANGE, "{}", 0, BAD, "BALLOON_CHANGE: no \"actual\"" },
	{ CHANGE, NULL, 0, BAD, "BALLOON_CHANGE: no \"data\"" },

	/* qom-get guest-stats */
	{ STATS, REAL_STATS_NONE, 0, NOVAL, "has not reported its total memory" }, /* real */
	{ STATS, STATS_JSON("134217728", "67108864", "33554432", "16777216", "1796469602"), 0, OK,
	  NULL, 128 * MiB, 64 * MiB, 32 * MiB, 16 * MiB, 1796469602 },
	{ STATS, STATS_JSON("134217728", "67108864", "33554432", "16777216", "0"), 128 * MiB, OK,
	  NULL, 128 * MiB, 64 * MiB, 32 * MiB, 16 * MiB, 0 },
	/* Free and cache may be absent: QEMU's marker, -1, a wrong type, missing. */
	{ STATS, STATS_JSON("134217728", "67108864", NONE, NONE, "5"), 0, OK, NULL, 128 * MiB,
	  64 * MiB, -1, -1, 5 },
	{ STATS, STATS_JSON("134217728", "0", "-1", "-7", "5"), 0, OK, NULL, 128 * MiB, 0, -1, -1,
	  5 },
	{ STATS, STATS_JSON("134217728", "134217728", "\"x\"", "[1]", "5"), 0, OK, NULL, 128 * MiB,
	  128 * MiB, -1, -1, 5 },
	{ STATS,
	  "{\"stats\": {\"stat-total-memory\": 4096, \"stat-available-memory\": 4096}, "
	  "\"last-update\": 1}",
	  0, OK, NULL, 4096, 4096, -1, -1, 1 },
	{ STATS, STATS_JSON("134217728", "1", "134217728", "134217728", "-3"), 0, OK, NULL,
	  128 * MiB, 1, 128 * MiB, 128 * MiB, -3 },
	/* Total and available must be present. */
	{ STATS, STATS_JSON(NONE, "1", "1", "1", "5"), 0, NOVAL, "total memory" },
	{ STATS, STATS_JSON("134217728", NONE, "1", "1", "5"), 0, NOVAL, "available memory" },
	{ STATS, STATS_JSON("-1", "1", "1", "1", "5"), 0, NOVAL, "total memory" },
	{ STATS, STATS_JSON("134217728", "-1", "1", "1", "5"), 0, NOVAL, "available memory" },
	{ STATS, STATS_JSON("\"134217728\"", "1", "1", "1", "5"), 0, NOVAL, "total memory" },
	{ STATS, "{\"stats\": {}, \"last-update\": 5}", 0, NOVAL, "total memory" },
	/* Out of range. */
	{ STATS, STATS_JSON("0", "0", "0", "0", "5"), 0, BAD,
	  "stat-total-memory 0 is out of range" },
	{ STATS, STATS_JSON("268435456", "1", "1", "1", "5"), 128 * MiB, BAD,
	  "stat-total-memory 268435456 is out of range (1..134217728 bytes)" },
	{ STATS, STATS_JSON("2199023255552", "1", "1", "1", "5"), 0, BAD,
	  "out of range (1..1099511627776 bytes)" },
	{ STATS, STATS_JSON("9223372036854775807", "1", "1", "1", "5"), 0, BAD, "out of range" },
	{ STATS, STATS_JSON("134217728", "134217729", "1", "1", "5"), 0, BAD,
	  "stat-available-memory 134217729 is above stat-total-memory 134217728" },
	{ STATS, STATS_JSON("134217728", "1", "134217729", "1", "5"), 0, BAD,
	  "stat-free-memory 134217729 is above" },
	{ STATS, STATS_JSON("134217728", "1", "1", "134217729", "5"), 0, BAD,
	  "stat-disk-caches 134217729 is above" },
	/* The envelope. */
	{ STATS, "{\"stats\": {\"stat-total-memory\": 1}}", 0, BAD,
	  "guest-stats: no \"last-update\"" },
	{ STATS, "{\"last-update\": 5}", 0, BAD, "guest-stats: no \"stats\"" },
	{ STATS, "{\"stats\": [], \"last-update\": 5}", 0, BAD,
	  "\"stats\" must be an object, not array" },
	{ STATS, "{\"stats\": {}, \"last-update\": \"5\"}", 0, BAD,
	  "\"last-update\" must be an int, not string" },
	{ STATS, "{\"stats\": {}, \"last-update\": 5.5}", 0, BAD, "not double" },
	{ STATS, "[" REAL_STATS_NONE "]", 0, BAD, "guest-stats must be an object, not array" },
	{ STATS, "\"stats\"", 0, BAD, "must be an object, not string" },

	/* query-memdev */
	{ MEMDEV,
	  "[{\"share\": false, \"reserve\": true, \"prealloc\": false, \"host-nodes\": [], "
	  "\"size\": 134217728, \"merge\": true, \"dump\": true, \"policy\": \"default\", "
	  "\"id\": \"pc.ram\"}]",
	  0, OK, NULL, 128 * MiB }, /* real */
	/* The first positive size wins; junk before it is skipped. */
	{ MEMDEV,
	  "[1, \"x\", [], {}, {\"size\": \"1\"}, {\"size\": 0}, {\"size\": -5}, {\"size\": 1.5}, "
	  "{\"size\": 2147483648}, {\"size\": 4096}]",
	  0, OK, NULL, 2 * GiB },
	{ MEMDEV,
	  "[{\"id\": \"m0\", \"size\": 1073741824}, {\"id\": \"m1\", \"size\": 2147483648}]", 0, OK,
	  NULL, GiB },
	{ MEMDEV, "[{\"size\": 4398046511104}]", 0, OK, NULL, 4 * TiB },
	{ MEMDEV, "[{\"size\": 4398046511105}, {\"size\": 4096}]", 0, BAD,
	  "memdev 0: \"size\" 4398046511105 is above 4398046511104 bytes" },
	{ MEMDEV, "[{\"size\": " NONE "}]", 0, BAD, "is above" },
	{ MEMDEV, "[]", 0, NOVAL, "no memdev with a positive \"size\" (of 0)" },
	{ MEMDEV, "[{\"size\": 0}, {\"size\": -1}, {\"id\": \"x\"}]", 0, NOVAL, "(of 3)" },
	{ MEMDEV, "{\"size\": 134217728}", 0, BAD, "query-memdev must be an array, not object" },
	{ MEMDEV, "{}", 0, BAD, "must be an array, not object" },

	/* qom-list /machine/peripheral(-anon) */
	{ CHILD,
	  "[{\"name\": \"type\", \"type\": \"string\"}, {\"name\": \"balloon0\", \"type\": "
	  "\"child<virtio-balloon-pci>\"}]",
	  0, OK, NULL, .str = "/machine/peripheral/balloon0" }, /* real */
	{ CHILD,
	  "[{\"name\": \"type\", \"type\": \"string\"}, {\"name\": \"device[0]\", \"type\": "
	  "\"child<virtio-balloon-pci>\"}]",
	  0, OK, NULL, .str = "/machine/peripheral-anon/device[0]" }, /* real */
	{ CHILD, "[{\"name\": \"type\", \"type\": \"string\"}]", 0, NOVAL,
	  "no virtio-balloon child (of 1)" }, /* real */
	{ CHILD, "[{\"name\": \"b\", \"type\": \"child<virtio-balloon-ccw>\"}]", 0, OK, NULL,
	  .str = "/machine/peripheral/b" },
	{ CHILD, "[{\"name\": \"b\", \"type\": \"child<virtio-balloon-device>\"}]", 0, OK, NULL,
	  .str = "/machine/peripheral/b" },
	{ CHILD,
	  "[{\"name\": \"n\", \"type\": \"child<virtio-net-pci>\"}, {\"name\": \"b\", \"type\": "
	  "\"link<virtio-balloon-pci>\"}, {\"name\": 3, \"type\": \"child<virtio-balloon-pci>\"}, "
	  "{\"name\": \"c\", \"type\": [\"child<virtio-balloon-pci>\"]}, [\"x\"], 7, "
	  "{\"name\": \"d\"}, {\"name\": \"device[12]\", \"type\": \"child<virtio-balloon-pci>\"}, "
	  "{\"name\": \"e\", \"type\": \"child<virtio-balloon-pci>\"}]",
	  0, OK, NULL, .str = "/machine/peripheral-anon/device[12]" },
	{ CHILD, "[]", 0, NOVAL, "(of 0)" },
	{ CHILD, "{\"name\": \"b\", \"type\": \"child<virtio-balloon-pci>\"}", 0, BAD,
	  "qom-list must be an array, not object" },

	/* query-status */
	{ STATUS, "{\"status\": \"prelaunch\", \"singlestep\": false, \"running\": false}", 0, OK,
	  NULL, .str = "prelaunch", .running = false }, /* real */
	{ STATUS, "{\"status\": \"running\", \"singlestep\": false, \"running\": true}", 0, OK,
	  NULL, .str = "running", .running = true }, /* real */
	{ STATUS, "{\"status\": \"paused\", \"singlestep\": false, \"running\": false}", 0, OK,
	  NULL, .str = "paused", .running = false }, /* real */
	{ STATUS, "{\"status\": \"running\", \"running\": 1}", 0, BAD,
	  "query-status: \"running\" must be a boolean, not int" },
	{ STATUS, "{\"status\": \"running\"}", 0, BAD, "no \"running\"" },
	{ STATUS, "{\"running\": true}", 0, BAD, "no \"status\"" },
	{ STATUS, "{\"status\": \"\", \"running\": true}", 0, BAD, "\"status\" is empty" },
	{ STATUS, "{\"status\": {}, \"running\": true}", 0, BAD, "must be a string, not object" },
	{ STATUS, "[]", 0, BAD, "query-status must be an object, not array" },
};

static const char *const parser_names[] = { "balloon", "change", "stats",
					    "memdev",  "child",	 "status" };

/* The value as the daemon gets it: in a QMP message, through the real parser. */
static json_object *canned(const Case *c, VmcgQmpMessage *m, char **ret_msg)
{
	g_autofree char *msg = NULL;
	g_autoptr(GError) err = NULL;

	if (c->parser == CHANGE)
		msg = g_strdup_printf("{\"event\": \"BALLOON_CHANGE\"%s%s, \"timestamp\": "
				      "{\"seconds\": 1796469602, \"microseconds\": 58117}}\r\n",
				      c->json ? ", \"data\": " : "", c->json ? c->json : "");
	else
		msg = g_strdup_printf("{\"return\": %s, \"id\": \"vmcg-1\"}\r\n", c->json);
	if (vmcg_qmp_parse(msg, strlen(msg), m, &err) != 0)
		g_error("%s: %s", msg, err->message);
	*ret_msg = g_steal_pointer(&msg);
	return c->parser == CHANGE ? m->data : m->ret;
}

/* Run @c's parser on @v; check the result against @c. */
static void run(const Case *c, size_t i, json_object *v)
{
	g_autoptr(GError) err = NULL;
	g_autofree char *path = NULL;
	VmcgQmpGuestStats st = { 0 }, st0 = { 0 };
	uint64_t size = 0;
	bool running = false;
	const char *status = NULL;
	bool ok = false;

	switch (c->parser) {
	case BALLOON:
		ok = vmcg_qmp_parse_balloon(v, c->limit, &size, &err);
		break;
	case CHANGE:
		ok = vmcg_qmp_parse_balloon_change(v, c->limit, &size, &err);
		break;
	case STATS:
		ok = vmcg_qmp_parse_guest_stats(v, c->limit, &st, &err);
		size = st.total_bytes;
		break;
	case MEMDEV:
		ok = vmcg_qmp_parse_memdev(v, &size, &err);
		break;
	case CHILD:
		ok = vmcg_qmp_parse_balloon_child(v, &path, &err);
		break;
	case STATUS:
		ok = vmcg_qmp_parse_status(v, &running, &status, &err);
		break;
	}
	if (c->code != OK) {
		if (ok || !g_error_matches(err, VMCG_QMP_ERROR, c->code) ||
		    !strstr(err->message, c->msg))
			g_error("case %zu (%s %s): want error %d \"%s\", got %s", i,
				parser_names[c->parser], c->json ? c->json : "(null)", c->code,
				c->msg, err ? err->message : "success");
		/* Out-parameters are set on success only. */
		g_assert_cmpuint(size, ==, 0);
		g_assert_null(path);
		g_assert_null(status);
		g_assert_cmpmem(&st, sizeof(st), &st0, sizeof(st0));
		return;
	}
	if (!ok)
		g_error("case %zu (%s %s): %s", i, parser_names[c->parser], c->json, err->message);
	g_assert_no_error(err);
	switch (c->parser) {
	case STATS:
		g_assert_cmpuint(st.available_bytes, ==, c->avail);
		g_assert_cmpint(st.free_bytes, ==, c->free);
		g_assert_cmpint(st.cache_bytes, ==, c->cache);
		g_assert_cmpint(st.last_update, ==, c->last_update);
		/* fall through */
	case BALLOON:
	case CHANGE:
	case MEMDEV:
		g_assert_cmpuint(size, ==, c->size);
		break;
	case CHILD:
		g_assert_cmpstr(path, ==, c->str);
		break;
	case STATUS:
		g_assert_cmpstr(status, ==, c->str);
		g_assert_cmpint(running, ==, c->running);
		break;
	}
}

/*
 * The same message read flat (qmp.c's fast path): wherever the flat reader
 * takes it, the fast reader (vmcg_qmp_fast_balloon(), ..._guest_stats())
 * accepts exactly the rows the json-c parser accepts, with the same values;
 * the rows the parser refuses it declines, so that their errors stay the
 * parser's.
 */
static bool run_fast(const Case *c, size_t i, const char *msg)
{
	VmcgJsonFlat f;
	VmcgQmpFastMessage fm;
	VmcgQmpGuestStats st = { 0 };
	uint64_t size = 0;
	int node;
	bool ok;

	if (c->parser != BALLOON && c->parser != CHANGE && c->parser != STATS)
		return false;
	if (!vmcg_json_flat_parse(msg, strlen(msg), &f))
		return false;
	/* A "return" that is not an object, or an event with a "data" that is not. */
	if (!vmcg_qmp_fast_classify(&f, &fm))
		return false;
	node = c->parser == CHANGE ? fm.data : fm.ret;
	if (c->parser == STATS) {
		ok = vmcg_qmp_fast_guest_stats(&f, node, c->limit, &st);
		size = st.total_bytes;
	} else {
		ok = vmcg_qmp_fast_balloon(&f, node, c->limit, &size);
	}
	if (ok != (c->code == OK))
		g_error("case %zu (%s %s): the fast reader %s", i, parser_names[c->parser],
			c->json ? c->json : "(null)", ok ? "accepts it" : "declines it");
	if (!ok)
		return false;
	g_assert_cmpuint(size, ==, c->size);
	if (c->parser == STATS) {
		g_assert_cmpuint(st.available_bytes, ==, c->avail);
		g_assert_cmpint(st.free_bytes, ==, c->free);
		g_assert_cmpint(st.cache_bytes, ==, c->cache);
		g_assert_cmpint(st.last_update, ==, c->last_update);
	}
	return true;
}

static void test_case(gconstpointer data)
{
	const Case *c = data;
	g_auto(VmcgQmpMessage) m = { 0 };
	g_autofree char *msg = NULL;
	json_object *v = canned(c, &m, &msg);

	(void)msg;
	run(c, (size_t)(c - cases), v);
}

/*
 * Every row through the fast readers too (run_fast() checks each against
 * its row); they took every well-formed reply they can read.
 */
static void test_fast(void)
{
	unsigned ok_rows = 0, accepted = 0;

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		const Case *c = &cases[i];
		g_auto(VmcgQmpMessage) m = { 0 };
		g_autofree char *msg = NULL;

		(void)canned(c, &m, &msg);
		accepted += run_fast(c, i, msg);
		ok_rows += c->code == OK &&
			   (c->parser == BALLOON || c->parser == CHANGE || c->parser == STATS);
	}
	/* All but the two rows that hold arrays, which the flat reader leaves to json-c. */
	g_assert_cmpuint(ok_rows, >, 5);
	g_assert_cmpuint(accepted, ==, ok_rows - 2);
}

/* NULL (no "return" can be, but an event can lack "data") is an error, never a crash. */
static void test_null(void)
{
	g_autoptr(GError) e1 = NULL, e2 = NULL, e3 = NULL, e4 = NULL, e5 = NULL, e6 = NULL;
	VmcgQmpGuestStats st;
	uint64_t u;
	char *path;
	bool b;

	g_assert_false(vmcg_qmp_parse_balloon(NULL, 0, &u, &e1));
	g_assert_error(e1, VMCG_QMP_ERROR, BAD);
	g_assert_false(vmcg_qmp_parse_balloon_change(NULL, 0, &u, &e2));
	g_assert_error(e2, VMCG_QMP_ERROR, BAD);
	g_assert_false(vmcg_qmp_parse_guest_stats(NULL, 0, &st, &e3));
	g_assert_error(e3, VMCG_QMP_ERROR, BAD);
	g_assert_false(vmcg_qmp_parse_memdev(NULL, &u, &e4));
	g_assert_error(e4, VMCG_QMP_ERROR, BAD);
	g_assert_false(vmcg_qmp_parse_balloon_child(NULL, &path, &e5));
	g_assert_error(e5, VMCG_QMP_ERROR, BAD);
	g_assert_false(vmcg_qmp_parse_status(NULL, &b, NULL, &e6));
	g_assert_error(e6, VMCG_QMP_ERROR, BAD);
	/* And a NULL error pointer is allowed, as GLib's convention says. */
	g_assert_false(vmcg_qmp_parse_balloon(NULL, 0, &u, NULL));
}

/* A json_object built by code: an int stored as uint64 below INT64_MAX is a size like any. */
static void test_built_uint64(void)
{
	g_autoptr(json_object) o = json_object_new_object();
	uint64_t u = 0;

	json_object_object_add(o, "actual", json_object_new_uint64(128 * MiB));
	g_assert_true(vmcg_qmp_parse_balloon(o, 0, &u, NULL));
	g_assert_cmpuint(u, ==, 128 * MiB);
	json_object_object_add(o, "actual", json_object_new_uint64(UINT64_MAX));
	g_assert_false(vmcg_qmp_parse_balloon(o, 0, &u, NULL));
}

static void test_qom_path(void)
{
	static const char *const in[][2] = {
		{ "balloon0", "/machine/peripheral/balloon0" },
		{ "device[0]", "/machine/peripheral-anon/device[0]" },
		{ "device[123]", "/machine/peripheral-anon/device[123]" },
		{ "device", "/machine/peripheral/device" },
		{ "devices[0]", "/machine/peripheral/devices[0]" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(in); i++) {
		g_autofree char *p = vmcg_qmp_balloon_qom_path(in[i][0]);

		g_assert_cmpstr(p, ==, in[i][1]);
	}
}

static void test_event_kind(void)
{
	g_assert_cmpint(vmcg_qmp_event_kind("BALLOON_CHANGE"), ==, VMCG_QMP_EVENT_BALLOON_CHANGE);
	g_assert_cmpint(vmcg_qmp_event_kind("STOP"), ==, VMCG_QMP_EVENT_STOP);
	g_assert_cmpint(vmcg_qmp_event_kind("RESUME"), ==, VMCG_QMP_EVENT_RESUME);
	g_assert_cmpint(vmcg_qmp_event_kind("SHUTDOWN"), ==, VMCG_QMP_EVENT_SHUTDOWN);
	g_assert_cmpint(vmcg_qmp_event_kind("stop"), ==, VMCG_QMP_EVENT_OTHER);
	g_assert_cmpint(vmcg_qmp_event_kind("STOPPED"), ==, VMCG_QMP_EVENT_OTHER);
	g_assert_cmpint(vmcg_qmp_event_kind(""), ==, VMCG_QMP_EVENT_OTHER);
	g_assert_cmpint(vmcg_qmp_event_kind(NULL), ==, VMCG_QMP_EVENT_OTHER);
}

/* The real events of qmp-real.h, classified and read as the daemon would. */
static void test_real_events(void)
{
	static const char *const in[] = { REAL_STOP, REAL_SHUTDOWN };
	static const VmcgQmpEventKind kind[] = { VMCG_QMP_EVENT_STOP, VMCG_QMP_EVENT_SHUTDOWN };

	for (size_t i = 0; i < G_N_ELEMENTS(in); i++) {
		g_auto(VmcgQmpMessage) m = { 0 };

		g_assert_cmpint(vmcg_qmp_parse(in[i], strlen(in[i]), &m, NULL), ==, 0);
		g_assert_cmpint(m.type, ==, VMCG_QMP_MSG_EVENT);
		g_assert_cmpint(vmcg_qmp_event_kind(m.event), ==, kind[i]);
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *name =
			g_strdup_printf("/qmp-reply/%s/%02zu", parser_names[cases[i].parser], i);

		g_test_add_data_func(name, &cases[i], test_case);
	}
	g_test_add_func("/qmp-reply/fast", test_fast);
	g_test_add_func("/qmp-reply/null", test_null);
	g_test_add_func("/qmp-reply/built-uint64", test_built_uint64);
	g_test_add_func("/qmp-reply/qom-path", test_qom_path);
	g_test_add_func("/qmp-reply/event-kind", test_event_kind);
	g_test_add_func("/qmp-reply/real-events", test_real_events);
	return g_test_run();
}
