// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * What the API shows of a group: the vmpressure level is held for the
 * daemon's vmpressure-hold, read live from its policy, and a hold of 0
 * holds nothing (it once became 10 s on its way to the API).
 *
 *   /g   a reclaim pass that made no progress: critical, now
 *        hold 10 s: still critical 2 ms later; hold 0: none 2 ms later
 */
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <string.h>

#include "api-private.h"
#include "daemon-private.h"

static void test_vmpressure_hold(void)
{
	g_autofree char *dir = g_dir_make_tmp("vmcg-api-render-XXXXXX", NULL);
	g_autofree char *sock = g_build_filename(dir, "api.sock", NULL);
	g_autoptr(GError) error = NULL;
	VmcgDaemon *d = vmcg_daemon_new(NULL, NULL);
	VmcgApiOptions o = { .socket_path = sock, .write_gid = -1 };
	VmcgPolicy p = *vmcg_daemon_policy(d);
	VmcgGroup *g;
	VmcgApi *api;

	g_assert_nonnull(dir);
	g_assert_true(vmcg_daemon_group_put(d, "/g", &(VmcgGroupSettings){ 0 }, NULL, &error));
	g_assert_no_error(error);
	api = vmcg_api_new(d, &o, &error);
	g_assert_no_error(error);
	g_assert_cmpint(vmcg_group_lookup(vmcg_daemon_tree(d), "/g", &g), ==, 0);
	g_assert_cmpint(vmcg_api_group_vmpressure(api, g), ==, VMCG_VMPRESSURE_NONE);

	g_assert_cmpint(vmcg_vmpressure_prio(vmcg_group_vmpressure(g), vmcg_daemon_now_usec(d), 0),
			==, VMCG_VMPRESSURE_CRITICAL);
	g_usleep(2000);
	p.vmpressure_hold_usec = 10 * G_USEC_PER_SEC;
	vmcg_daemon_set_policy(d, &p);
	g_assert_cmpint(vmcg_api_group_vmpressure(api, g), ==, VMCG_VMPRESSURE_CRITICAL);
	p.vmpressure_hold_usec = 0;
	vmcg_daemon_set_policy(d, &p);
	g_assert_cmpint(vmcg_api_group_vmpressure(api, g), ==, VMCG_VMPRESSURE_NONE);

	vmcg_api_free(api);
	vmcg_daemon_free(d);
	g_assert_cmpint(g_rmdir(dir), ==, 0);
}

/*
 * Streamed answers (api-stream.c) are the whole answers, byte for byte,
 * however they are cut into chunks:
 *
 *   /                       /a/x/deep is 3 levels down; /b is a leaf
 *   |-- a   max 1G          between two subtrees; /c has one child;
 *   |   |-- x   vm1, vm2    VMs in /a/x and /, so groups have "vms"
 *   |   |   `-- deep        arrays and /v1/vms has elements
 *   |   `-- y
 *   |-- b
 *   `-- c
 *       `-- p
 */
typedef struct Fixture {
	char *dir;
	VmcgDaemon *d;
	VmcgApi *api;
} Fixture;

static void fixture_setup(Fixture *f, const char *const *groups)
{
	g_autofree char *sock = NULL;
	g_autoptr(GError) error = NULL;
	VmcgApiOptions o = { .write_gid = -1 };
	VmcgGroupSettings max1g = { .has_max = true, .max = 1ULL << 30 };

	f->dir = g_dir_make_tmp("vmcg-api-render-XXXXXX", NULL);
	g_assert_nonnull(f->dir);
	sock = g_build_filename(f->dir, "api.sock", NULL);
	o.socket_path = sock;
	f->d = vmcg_daemon_new(NULL, NULL);
	for (const char *const *p = groups; *p; p++) {
		g_assert_true(vmcg_daemon_group_put(
			f->d, *p, strcmp(*p, "/a") == 0 ? &max1g : &(VmcgGroupSettings){ 0 }, NULL,
			&error));
		g_assert_no_error(error);
	}
	f->api = vmcg_api_new(f->d, &o, &error);
	g_assert_no_error(error);
}

static void fixture_teardown(Fixture *f)
{
	g_autofree char *sock = g_build_filename(f->dir, "api.sock", NULL);

	vmcg_api_free(f->api);
	vmcg_daemon_free(f->d);
	g_unlink(sock);
	g_assert_cmpint(g_rmdir(f->dir), ==, 0);
	g_free(f->dir);
}

static const char *const tree[] = { "/a", "/a/x", "/a/x/deep", "/a/y", "/b", "/c", "/c/p", NULL };

static void add_vms(Fixture *f)
{
	g_autoptr(GError) error = NULL;

	g_assert_true(
		vmcg_daemon_vm_add(f->d, "vm1", "qmp", "/nonexistent/1.qmp", "/a/x", NULL, &error));
	g_assert_true(
		vmcg_daemon_vm_add(f->d, "vm2", "qmp", "/nonexistent/2.qmp", "/a/x", NULL, &error));
	g_assert_true(
		vmcg_daemon_vm_add(f->d, "vm3", "qmp", "/nonexistent/3.qmp", "/", NULL, &error));
	g_assert_no_error(error);
}

/* What reply_json() in api.c sends for @obj. */
static char *whole_json(json_object *obj, bool pretty)
{
	int flags = JSON_C_TO_STRING_NOSLASHESCAPE |
		    (pretty ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED
			    : JSON_C_TO_STRING_PLAIN);

	return g_strconcat(json_object_to_json_string_ext(obj, flags), "\n", NULL);
}

static const gsize chunk_sizes[] = { 1, 7, 300, 4096, VMCG_API_CHUNK_BYTES };

static void test_groups_identical(void)
{
	static const char *const roots[] = { "/", "/a", "/a/x/deep", "/c" };
	Fixture f;

	fixture_setup(&f, tree);
	add_vms(&f);
	for (size_t r = 0; r < G_N_ELEMENTS(roots); r++) {
		VmcgGroup *g;

		g_assert_cmpint(vmcg_group_lookup(vmcg_daemon_tree(f.d), roots[r], &g), ==, 0);
		for (int pretty = 0; pretty < 2; pretty++) {
			g_autoptr(json_object) obj = vmcg_api_group_to_json(f.api, g, true);
			g_autofree char *want = whole_json(obj, pretty);

			for (size_t k = 0; k < G_N_ELEMENTS(chunk_sizes); k++) {
				g_autofree char *got = vmcg_api_producer_collect(
					vmcg_api_groups_producer_new(f.api, roots[r], pretty),
					chunk_sizes[k], NULL);

				g_assert_cmpstr(got, ==, want);
			}
		}
	}
	fixture_teardown(&f);
}

static void test_vms_identical(void)
{
	Fixture f;

	fixture_setup(&f, tree);
	for (int with_vms = 0; with_vms < 2; with_vms++) {
		if (with_vms)
			add_vms(&f);
		for (int pretty = 0; pretty < 2; pretty++) {
			g_autoptr(json_object) obj = json_object_new_array();
			g_autofree char *want = NULL;

			for (VmcgDvm *vm = vmcg_daemon_vm_first(f.d); vm;
			     vm = vmcg_daemon_vm_next(vm))
				json_object_array_add(obj, vmcg_api_vm_to_json(vm));
			want = whole_json(obj, pretty);
			for (size_t k = 0; k < G_N_ELEMENTS(chunk_sizes); k++) {
				g_autofree char *got = vmcg_api_producer_collect(
					vmcg_api_vms_producer_new(f.api, pretty), chunk_sizes[k],
					NULL);

				g_assert_cmpstr(got, ==, want);
			}
		}
	}
	fixture_teardown(&f);
}

/* /metrics cut anywhere is /metrics made at once; every group and VM has its samples. */
static void test_metrics_chunks(void)
{
	g_autofree char *whole = NULL;
	Fixture f;

	fixture_setup(&f, tree);
	add_vms(&f);
	whole = vmcg_api_producer_collect(vmcg_api_metrics_producer_new(f.api), G_MAXSIZE / 2,
					  NULL);
	g_assert_true(g_str_has_prefix(whole, "# HELP vmcg_groups "));
	g_assert_nonnull(strstr(whole, "vmcg_group_vms{group=\"/c/p\"} 0\n"));
	g_assert_nonnull(strstr(whole, "vmcg_vm_charge_unknown{vm=\"vm3\",group=\"/\"}"));
	g_assert_true(g_str_has_suffix(whole, "\n"));
	for (size_t k = 0; k < G_N_ELEMENTS(chunk_sizes); k++) {
		g_autofree char *got = vmcg_api_producer_collect(
			vmcg_api_metrics_producer_new(f.api), chunk_sizes[k], NULL);

		g_assert_cmpstr(got, ==, whole);
	}
	fixture_teardown(&f);
}

/*
 * The tree changes between chunks. Each step: one fill of @chunk bytes,
 * then a change; at the end the text must be valid JSON (never a group
 * twice, never a dangling object) and hold what the cursor promises:
 *
 *   remove the group just written (a leaf): the walk goes on after it
 *   remove the groups ahead of it: skipped
 *   create a group after the cursor: it appears
 *   remove the answer's root (GET /v1/groups/c?recursive): the answer ends, valid
 */
static void json_put(gpointer obj)
{
	json_object_put(obj);
}

static void collect_paths(json_object *obj, GPtrArray *out)
{
	json_object *children = json_object_object_get(obj, "children");

	g_ptr_array_add(out, (gpointer)json_object_get_string(json_object_object_get(obj, "path")));
	for (size_t i = 0; i < json_object_array_length(children); i++)
		collect_paths(json_object_array_get_idx(children, i), out);
}

static char *paths_of(const char *text, GPtrArray *keep)
{
	json_object *obj = json_tokener_parse(text);
	g_autoptr(GPtrArray) paths = g_ptr_array_new();
	GString *s = g_string_new(NULL);

	g_assert_nonnull(obj);
	collect_paths(obj, paths);
	for (guint i = 0; i < paths->len; i++)
		g_string_append_printf(s, "%s%s", i ? " " : "", (char *)paths->pdata[i]);
	g_ptr_array_add(keep, obj);
	return g_string_free(s, FALSE);
}

static void delete_group(Fixture *f, const char *path)
{
	g_autoptr(GError) error = NULL;

	g_assert_true(vmcg_daemon_group_delete(f->d, path, &error));
	g_assert_no_error(error);
}

static void put_group(Fixture *f, const char *path)
{
	g_autoptr(GError) error = NULL;

	g_assert_true(vmcg_daemon_group_put(f->d, path, &(VmcgGroupSettings){ 0 }, NULL, &error));
	g_assert_no_error(error);
}

static void test_groups_tree_changes(void)
{
	static const char *const flat[] = { "/g0", "/g1", "/g2", "/g3", "/g4", "/g5",
					    "/g6", "/g7", "/g8", "/g9", NULL };
	g_autoptr(GPtrArray) keep = g_ptr_array_new_with_free_func(json_put);
	Fixture f;

	for (int pretty = 0; pretty < 2; pretty++) {
		VmcgApiProducer *p;
		GString *out = g_string_new(NULL);
		g_autofree char *text = NULL, *paths = NULL;

		/* The first fill writes "/" and /g0 (and a little more: 1 byte is asked for each). */
		fixture_setup(&f, flat);
		p = vmcg_api_groups_producer_new(f.api, "/", pretty);
		g_assert_false(p->fill(p, out, 1));	       /* "/" */
		g_assert_false(p->fill(p, out, out->len + 1)); /* /g0 */
		delete_group(&f, "/g0");		       /* the one just written */
		g_assert_false(p->fill(p, out, out->len + 1)); /* /g1 */
		delete_group(&f, "/g2");		       /* ahead */
		delete_group(&f, "/g3");
		put_group(&f, "/g1/new"); /* after the cursor: a child of /g1 */
		put_group(&f, "/z");	  /* at the end */
		while (!p->fill(p, out, out->len + 1))
			;
		vmcg_api_producer_free(p);
		text = g_string_free(out, FALSE);
		paths = paths_of(text, keep);
		g_assert_cmpstr(paths, ==, "/ /g0 /g1 /g1/new /g4 /g5 /g6 /g7 /g8 /g9 /z");
		fixture_teardown(&f);
	}

	/* The last written and four ahead removed: the rest of that level is lost, not repeated. */
	{
		VmcgApiProducer *p;
		GString *out = g_string_new(NULL);
		g_autofree char *text = NULL, *paths = NULL;

		fixture_setup(&f, flat);
		p = vmcg_api_groups_producer_new(f.api, "/", false);
		g_assert_false(p->fill(p, out, 1));
		g_assert_false(p->fill(p, out, out->len + 1)); /* /g0 */
		for (int i = 0; i < 5; i++) {
			g_autofree char *path = g_strdup_printf("/g%d", i);

			delete_group(&f, path);
		}
		while (!p->fill(p, out, out->len + 1))
			;
		vmcg_api_producer_free(p);
		text = g_string_free(out, FALSE);
		paths = paths_of(text, keep);
		g_assert_cmpstr(paths, ==, "/ /g0");
		fixture_teardown(&f);
	}

	/* The answer's root goes: it ends there, valid. */
	{
		VmcgApiProducer *p;
		GString *out = g_string_new(NULL);
		g_autofree char *text = NULL, *paths = NULL;

		fixture_setup(&f, tree);
		p = vmcg_api_groups_producer_new(f.api, "/c", true);
		g_assert_false(p->fill(p, out, 1)); /* /c */
		delete_group(&f, "/c/p");
		delete_group(&f, "/c");
		g_assert_true(p->fill(p, out, out->len + 1));
		vmcg_api_producer_free(p);
		text = g_string_free(out, FALSE);
		paths = paths_of(text, keep);
		g_assert_cmpstr(paths, ==, "/c");
		fixture_teardown(&f);
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/api-render/vmpressure-hold", test_vmpressure_hold);
	g_test_add_func("/api-render/groups-identical", test_groups_identical);
	g_test_add_func("/api-render/vms-identical", test_vms_identical);
	g_test_add_func("/api-render/metrics-chunks", test_metrics_chunks);
	g_test_add_func("/api-render/groups-tree-changes", test_groups_tree_changes);
	return g_test_run();
}
