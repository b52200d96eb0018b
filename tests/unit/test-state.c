// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * State persistence: a saved tree and VM set comes back identical; a
 * malformed state document is refused whole, naming what is wrong, and
 * changes nothing; saving is atomic (no temporary file left behind).
 */
#include <gio/gio.h>
#include <glib/gstdio.h>

#include "daemon-private.h"
#include "state.h"

static VmcgDaemon *mk_daemon(const char *state)
{
	VmcgDaemon *d = vmcg_daemon_new(NULL, state);
	VmcgGroupSettings s = {
		.has_max = true, .max = 1 << 30, .has_low = true, .low = 256 << 20
	};
	VmcgGroupSettings t = { .has_high = true,
				.high = 512 << 20,
				.has_oom_action = true,
				.oom_action = VMCG_OOM_PAUSE,
				.has_oom_group = true,
				.oom_group = true };
	VmcgVmSettings v = { .has_floor = true,
			     .floor = 128 << 20,
			     .has_oom_priority = true,
			     .oom_priority = -100 };
	g_autoptr(GError) error = NULL;

	g_assert_true(vmcg_daemon_group_put(d, "/tenants", &s, NULL, &error));
	g_assert_true(vmcg_daemon_group_put(d, "/tenants/acme", &t, NULL, &error));
	g_assert_true(vmcg_daemon_vm_add(d, "web1", "qmp", "/nonexistent/web1.qmp", "/tenants/acme",
					 &v, &error));
	g_assert_no_error(error);
	return d;
}

static char *doc(VmcgDaemon *d)
{
	g_autoptr(json_object) o = vmcg_state_to_json(d);

	return g_strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								  JSON_C_TO_STRING_NOSLASHESCAPE));
}

static void test_round_trip(void)
{
	g_autofree char *dir = g_dir_make_tmp("vmcg-state-XXXXXX", NULL);
	g_autofree char *sub = g_build_filename(dir, "sub", NULL);
	g_autofree char *path = g_build_filename(sub, "state.json", NULL);
	g_autoptr(GError) error = NULL;
	g_autofree char *a = NULL, *b = NULL;
	g_autoptr(GDir) gd = NULL;
	VmcgDaemon *d1, *d2;

	d1 = mk_daemon(path); /* every change saves */
	a = doc(d1);
	g_assert_true(g_file_test(path, G_FILE_TEST_EXISTS));

	d2 = vmcg_daemon_new(NULL, NULL);
	g_assert_true(vmcg_state_load(d2, path, &error));
	g_assert_no_error(error);
	b = doc(d2);
	g_assert_cmpstr(a, ==, b);
	g_assert_nonnull(strstr(b, "\"memory.max\":1073741824"));
	g_assert_nonnull(strstr(b, "\"oom-action\":\"pause\""));
	g_assert_nonnull(strstr(b, "\"oom-priority\":-100"));

	/* No temporary file is left next to it: the snapshot and its journal. */
	gd = g_dir_open(sub, 0, NULL);
	for (const char *n; (n = g_dir_read_name(gd));)
		g_assert_true(g_str_equal(n, "state.json") || g_str_equal(n, "state.json.journal"));

	vmcg_daemon_free(d1);
	vmcg_daemon_free(d2);
	g_unlink(path);
	{
		g_autofree char *j = g_strconcat(path, ".journal", NULL);

		g_unlink(j);
	}
	g_rmdir(sub);
	g_rmdir(dir);
}

static void test_missing_is_fine(void)
{
	g_autoptr(GError) error = NULL;
	VmcgDaemon *d = vmcg_daemon_new(NULL, NULL);

	g_assert_true(vmcg_state_load(d, "/nonexistent/state.json", &error));
	g_assert_no_error(error);
	vmcg_daemon_free(d);
}

static void test_malformed(void)
{
	static const char *const bad[] = {
		"",
		"[]",
		"{",
		"{\"version\":1} trailing",
		"{\"version\":2}",
		"{\"version\":\"1\"}",
		"{\"version\":1,\"extra\":true}",
		"{\"version\":1,\"groups\":{}}",
		"{\"version\":1,\"groups\":[1]}",
		"{\"version\":1,\"groups\":[{}]}",
		"{\"version\":1,\"groups\":[{\"path\":\"rel\"}]}",
		"{\"version\":1,\"groups\":[{\"path\":\"/\"}]}",
		"{\"version\":1,\"groups\":[{\"path\":\"/a\",\"memory.max\":-1}]}",
		"{\"version\":1,\"groups\":[{\"path\":\"/a\",\"memory.max\":\"lots\"}]}",
		"{\"version\":1,\"groups\":[{\"path\":\"/a\",\"memory.oom.group\":1}]}",
		"{\"version\":1,\"groups\":[{\"path\":\"/a\",\"oom-action\":\"kill\"}]}",
		"{\"version\":1,\"groups\":[{\"path\":\"/a\",\"colour\":\"red\"}]}",
		"{\"version\":1,\"groups\":[{\"path\":\"/a/b\"}]}", /* no parent */
		"{\"version\":1,\"vms\":[{\"name\":\"x\"}]}",
		"{\"version\":1,\"vms\":[{\"name\":\"x\",\"qmp\":\"/q\",\"group\":\"/none\"}]}",
		"{\"version\":1,\"vms\":[{\"name\":\"x\",\"qmp\":\"rel\",\"group\":\"/\"}]}",
		"{\"version\":1,\"vms\":[{\"name\":\"x\",\"qmp\":\"/q\",\"group\":\"/"
		"\",\"floor\":\"lots\"}]}",
		"{\"version\":1,\"vms\":[{\"name\":\"x\",\"backend\":\"libvirt\",\"address\":\"/"
		"q\"}]}",
		"{\"version\":1,\"vms\":[{\"name\":\"x\",\"address\":\"/q\",\"qmp\":\"/r\"}]}",
		"{\"version\":1,\"vms\":[{\"name\":\"x\",\"qmp\":\"/"
		"q\"},{\"name\":\"x\",\"qmp\":\"/r\"}]}",
		"{\"version\":1,\"vms\":[{\"name\":\"x\",\"qmp\":\"/q\",\"oom-priority\":1001}]}",
		"{\"version\":1,\"groups\":[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]}",
	};

	for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(GError) error = NULL;
		VmcgDaemon *d = vmcg_daemon_new(NULL, NULL);

		g_test_message("case %zu: %s", i, bad[i]);
		g_assert_false(vmcg_state_apply_text(d, bad[i], strlen(bad[i]), &error));
		g_assert_nonnull(error);
		g_assert_cmpuint(vmcg_tree_nr_vms(vmcg_daemon_tree(d)), ==, 0);
		vmcg_daemon_free(d);
	}
}

/*
 * Files written before backends had only "qmp", and a floor of "max" as
 * the integer 2^64 - 1: both still load, and are written back in today's
 * form (backend, address and qmp; "max").
 */
static void test_legacy(void)
{
	static const char text[] = "{\"version\":1,\"vms\":[{\"name\":\"old\",\"qmp\":\"/q\","
				   "\"group\":\"/\",\"floor\":18446744073709551615,"
				   "\"oom-priority\":5}]}";
	g_autoptr(GError) error = NULL;
	g_autofree char *out = NULL, *again = NULL;
	VmcgDaemon *d = vmcg_daemon_new(NULL, NULL);
	VmcgDaemon *d2 = vmcg_daemon_new(NULL, NULL);
	VmcgDvmInfo i;

	g_assert_true(vmcg_state_apply_text(d, text, sizeof(text) - 1, &error));
	g_assert_no_error(error);
	vmcg_dvm_info(vmcg_daemon_vm_lookup(d, "old"), &i);
	g_assert_cmpstr(i.backend, ==, "qmp");
	g_assert_cmpstr(i.address, ==, "/q");
	g_assert_cmpstr(i.qmp, ==, "/q");
	g_assert_cmpuint(i.floor, ==, VMCG_BYTES_MAX);
	g_assert_cmpint(i.oom_priority, ==, 5);
	out = doc(d);
	g_assert_nonnull(strstr(out, "\"backend\":\"qmp\",\"address\":\"/q\",\"qmp\":\"/q\""));
	g_assert_nonnull(strstr(out, "\"floor\":\"max\""));

	/* And today's form loads to the same. */
	g_assert_true(vmcg_state_apply_text(d2, out, strlen(out), &error));
	again = doc(d2);
	g_assert_cmpstr(out, ==, again);
	vmcg_daemon_free(d);
	vmcg_daemon_free(d2);
}

/* A document that fails validation half-way changes nothing already present. */
static void test_refused_whole(void)
{
	static const char text[] = "{\"version\":1,\"groups\":[{\"path\":\"/new\"},"
				   "{\"path\":\"/x\",\"memory.max\":true}]}";
	g_autoptr(GError) error = NULL;
	g_autofree char *before = NULL, *after = NULL;
	VmcgDaemon *d = mk_daemon(NULL);

	before = doc(d);
	g_assert_false(vmcg_state_apply_text(d, text, sizeof(text) - 1, &error));
	g_assert_nonnull(strstr(error->message, "memory.max"));
	after = doc(d);
	g_assert_cmpstr(before, ==, after);
	vmcg_daemon_free(d);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL);
	g_test_add_func("/state/round-trip", test_round_trip);
	g_test_add_func("/state/missing-is-fine", test_missing_is_fine);
	g_test_add_func("/state/malformed", test_malformed);
	g_test_add_func("/state/refused-whole", test_refused_whole);
	g_test_add_func("/state/legacy", test_legacy);
	return g_test_run();
}
