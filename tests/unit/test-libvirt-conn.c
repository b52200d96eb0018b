// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * daemon/libvirt-conn.c against libvirt's own fake driver, test:///default
 * (in this process; libvirt's, not ours): the worker's requests and their
 * results on the main loop, generations, errors, and freeing with work
 * queued. Run under memcheck and ASan too (tests/run.sh), which is where
 * a request touched after the worker freed it shows.
 */
#include <glib.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <string.h>

#include "libvirt-conn.h"

#define URI "test:///default"

typedef struct Seen {
	GPtrArray *results; /* VmcgLvResult copies: kind, gen, op, error code, counts */
	unsigned lifecycle, closed;
} Seen;

typedef struct Got {
	VmcgLvResultKind kind;
	unsigned gen;
	VmcgLvOp op;
	int error;
	unsigned domains, stats;
	char uuid[VMCG_LV_UUID_LEN];
	char first_name[64];
	bool first_has_xml;
} Got;

static void on_result(const VmcgLvResult *r, gpointer userdata)
{
	Seen *s = userdata;
	Got *g = g_new0(Got, 1);

	g->kind = r->kind;
	g->gen = r->gen;
	g->op = r->op;
	g->error = r->error.code;
	g->domains = r->domains ? r->domains->len : 0;
	g->stats = r->stats ? r->stats->len : 0;
	memcpy(g->uuid, r->uuid, sizeof(g->uuid));
	if (r->domains && r->domains->len) {
		const VmcgLvDomain *d = g_ptr_array_index(r->domains, 0);

		g_strlcpy(g->first_name, d->name, sizeof(g->first_name));
		memcpy(g->uuid, d->uuid, sizeof(g->uuid));
		g->first_has_xml = d->xml && strstr(d->xml, "<domain") != NULL;
	}
	if (r->domain) {
		g_strlcpy(g->first_name, r->domain->name, sizeof(g->first_name));
		g->first_has_xml = strstr(r->domain->xml, "<domain") != NULL;
	}
	g_ptr_array_add(s->results, g);
}

static void on_lifecycle(const char *uuid, int event, int detail, gpointer userdata)
{
	(void)uuid;
	(void)event;
	(void)detail;
	((Seen *)userdata)->lifecycle++;
}

static void on_metadata(const char *uuid, gpointer userdata)
{
	(void)uuid;
	(void)userdata;
}

static void on_balloon(const char *uuid, uint64_t kib, gpointer userdata)
{
	(void)uuid;
	(void)kib;
	(void)userdata;
}

static void on_uuid(const char *uuid, gpointer userdata)
{
	(void)uuid;
	(void)userdata;
}

static void on_closed(unsigned gen, const char *why, gpointer userdata)
{
	(void)gen;
	(void)why;
	((Seen *)userdata)->closed++;
}

static const VmcgLvCallbacks cbs = {
	.result = on_result,
	.lifecycle = on_lifecycle,
	.metadata = on_metadata,
	.balloon = on_balloon,
	.migrating = on_uuid,
	.job_done = on_uuid,
	.closed = on_closed,
};

/* Run the main loop until @n results are in (10 s at most). */
static void wait_results(Seen *s, guint n)
{
	gint64 until = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

	while (s->results->len < n && g_get_monotonic_time() < until)
		if (!g_main_context_iteration(NULL, FALSE))
			g_usleep(1000);
	g_assert_cmpuint(s->results->len, >=, n);
}

static const Got *got(Seen *s, guint i)
{
	return g_ptr_array_index(s->results, i);
}

static void test_open_and_requests(void)
{
	Seen s = { .results = g_ptr_array_new_with_free_func(g_free) };
	VmcgLvConn *c = vmcg_lv_conn_new(URI, &cbs, &s);
	char uuid[VMCG_LV_UUID_LEN];
	unsigned gen;

	/* Opens, in a row: each a new generation, each answered with its own. */
	for (unsigned i = 0; i < 20; i++) {
		gen = vmcg_lv_open(c);
		g_assert_cmpuint(gen, ==, i + 1);
	}
	wait_results(&s, 20);
	for (unsigned i = 0; i < 20; i++) {
		g_assert_cmpint(got(&s, i)->kind, ==, VMCG_LV_OPENED);
		g_assert_cmpuint(got(&s, i)->gen, ==, i + 1);
		/* test:///default runs one domain, "test". */
		g_assert_cmpuint(got(&s, i)->domains, ==, 1);
		g_assert_cmpstr(got(&s, i)->first_name, ==, "test");
		g_assert_true(got(&s, i)->first_has_xml);
	}
	memcpy(uuid, got(&s, 0)->uuid, sizeof(uuid));
	g_ptr_array_set_size(s.results, 0);

	/* A refresh of it, and of a UUID that is no domain. */
	vmcg_lv_refresh(c, uuid);
	vmcg_lv_refresh(c, "00000000-0000-0000-0000-000000000001");
	vmcg_lv_read_stats(c);
	vmcg_lv_op(c, VMCG_LV_OP_SUSPEND, uuid, 0);
	vmcg_lv_op(c, VMCG_LV_OP_RESUME, uuid, 0);
	vmcg_lv_op(c, VMCG_LV_OP_SETMEM, "00000000-0000-0000-0000-000000000001", 1024);
	wait_results(&s, 6);
	g_assert_cmpint(got(&s, 0)->kind, ==, VMCG_LV_DOMAIN);
	g_assert_cmpstr(got(&s, 0)->first_name, ==, "test");
	g_assert_cmpint(got(&s, 1)->kind, ==, VMCG_LV_DOMAIN_GONE);
	g_assert_cmpint(got(&s, 1)->error, ==, VIR_ERR_NO_DOMAIN);
	g_assert_cmpint(got(&s, 2)->kind, ==, VMCG_LV_STATS);
	g_assert_cmpint(got(&s, 2)->error, ==, 0);
	g_assert_cmpuint(got(&s, 2)->stats, ==, 1);
	g_assert_cmpint(got(&s, 3)->kind, ==, VMCG_LV_DONE);
	g_assert_cmpint(got(&s, 3)->op, ==, VMCG_LV_OP_SUSPEND);
	g_assert_cmpint(got(&s, 3)->error, ==, 0);
	g_assert_cmpint(got(&s, 4)->error, ==, 0);
	g_assert_cmpint(got(&s, 5)->error, ==, VIR_ERR_NO_DOMAIN);
	/* Suspended and resumed: libvirt's events came through the main loop. */
	for (gint64 until = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
	     s.lifecycle < 2 && g_get_monotonic_time() < until;)
		if (!g_main_context_iteration(NULL, FALSE))
			g_usleep(1000);
	g_assert_cmpuint(s.lifecycle, >=, 2);
	g_assert_cmpuint(vmcg_lv_pending(c), ==, 0);

	/* Freed with work queued: nothing is called after it returns. */
	for (unsigned i = 0; i < 50; i++)
		vmcg_lv_read_stats(c);
	g_ptr_array_set_size(s.results, 0);
	vmcg_lv_conn_free(c);
	while (g_main_context_iteration(NULL, FALSE))
		;
	g_assert_cmpuint(s.results->len, ==, 0);
	g_ptr_array_unref(s.results);
}

static void test_open_fails(void)
{
	Seen s = { .results = g_ptr_array_new_with_free_func(g_free) };
	VmcgLvConn *c = vmcg_lv_conn_new("test:///nonexistent/file.xml", &cbs, &s);

	vmcg_lv_open(c);
	/* Before any open succeeded: not connected. */
	vmcg_lv_read_stats(c);
	vmcg_lv_op(c, VMCG_LV_OP_SETMEM, "00000000-0000-0000-0000-000000000001", 1);
	wait_results(&s, 3);
	g_assert_cmpint(got(&s, 0)->kind, ==, VMCG_LV_OPEN_FAILED);
	g_assert_cmpint(got(&s, 0)->error, !=, 0);
	g_assert_cmpint(got(&s, 1)->kind, ==, VMCG_LV_STATS);
	g_assert_cmpint(got(&s, 1)->error, ==, VIR_ERR_NO_CONNECT);
	g_assert_cmpint(got(&s, 2)->error, ==, VIR_ERR_NO_CONNECT);
	/*
	 * Failed opens are quick, so the worker frees each request at once:
	 * the generation returned is the one answered (it was read from the
	 * freed request once, and was garbage when the worker won the race).
	 */
	g_ptr_array_set_size(s.results, 0);
	for (unsigned i = 0; i < 300; i++) {
		guint n = s.results->len;
		unsigned gen = vmcg_lv_open(c);

		wait_results(&s, n + 1);
		g_assert_cmpuint(got(&s, n)->gen, ==, gen);
		if (i % 3 == 0)
			g_usleep(200);
	}
	vmcg_lv_conn_free(c);
	g_ptr_array_unref(s.results);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/libvirt-conn/open-and-requests", test_open_and_requests);
	g_test_add_func("/libvirt-conn/open-fails", test_open_fails);
	return g_test_run();
}
