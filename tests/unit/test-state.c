// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * State persistence: a saved tree and VM set comes back identical; a
 * malformed state document is refused whole, naming what is wrong, and
 * changes nothing; saving is atomic (no temporary file left behind). The
 * journal replays, drops a cut last line, is ignored when a compaction
 * already folded it in; a save that fails undoes every change since the
 * last good one.
 */
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <unistd.h>

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
				.oom_group = true,
				.has_cluster_max = true,
				.cluster_max = (UINT64_C(3) << 30) + 100 };
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
	/* A cluster quota is kept, rounded down to pages; a local group has no member. */
	g_assert_nonnull(strstr(b, "\"cluster.memory.max\":3221225472}"));
	g_assert_true(strstr(b, "cluster.memory.max") == g_strrstr(b, "cluster.memory.max"));

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

/*
 * What json-c would lose: a NUL in a member name (cut: "path\u0000x" read
 * as "path") or value, an integer beyond 64 bits (saturated: a floor of
 * 2^64 read as "max"). Each is refused, naming the entry.
 */
static void test_refused_entries(void)
{
	static const struct {
		const char *text, *why;
	} cases[] = {
		{ "{\"version\":1,\"groups\":[{\"path\\u0000junk\":\"/b\"}]}",
		  "groups[0]: unknown member \"path\\u0000junk\"" },
		{ "{\"version\":1,\"groups\\u0000x\":[]}", "unknown field \"groups\\u0000x\"" },
		{ "{\"version\":1,\"groups\":[{\"path\":\"/a\\u0000/b\"}]}",
		  "groups[0] (/a): path: a NUL character" },
		{ "{\"version\":1,\"groups\":[{\"path\":\"/a\",\"oom-action\":\"pause\\u0000\"}]}",
		  "groups[0] (/a): oom-action: a NUL character" },
		{ "{\"version\":1,\"vms\":[{\"name\":\"x\\u0000y\",\"qmp\":\"/q\"}]}",
		  "vms[0] (x): name: a NUL character" },
		{ "{\"version\":1,\"vms\":[{\"name\":\"x\",\"qmp\":\"/q\\u0000junk\"}]}",
		  "vms[0] (x): qmp: a NUL character" },
		{ "{\"version\":1,\"vms\":[{\"name\":\"x\",\"address\":\"/q\\u0000\"}]}",
		  "vms[0] (x): address: a NUL character" },
		{ "{\"version\":1,\"vms\":[{\"name\":\"x\",\"qmp\":\"/q\",\"group\":\"/"
		  "\\u0000a\"}]}",
		  "vms[0] (x): group: a NUL character" },
		{ "{\"version\":1,\"vms\":[{\"name\":\"x\",\"qmp\":\"/"
		  "q\",\"floor\":18446744073709551616}]}",
		  "vms[0] (x): floor: 18446744073709551616 is not an integer" },
		{ "{\"version\":1,\"vms\":[{\"name\":\"x\",\"qmp\":\"/"
		  "q\",\"floor\":99999999999999999999999}]}",
		  "vms[0] (x): floor: 99999999999999999999999 is not an integer" },
		{ "{\"version\":1,\"vms\":[{\"name\":\"x\",\"qmp\":\"/"
		  "q\",\"oom-priority\":-9223372036854775809}]}",
		  "vms[0] (x): oom-priority: -9223372036854775809 is not an integer" },
		{ "{\"version\":1,\"groups\":[{\"path\":\"/"
		  "a\",\"memory.max\":018446744073709551616}]}",
		  "not an integer" },
		{ "{\"version\":1,\"groups\":[{\"path\":\"/a\",\"memory.low\":1.5}]}",
		  "groups[0] (/a): memory.low: 1.5 is not an integer" },
		{ "{\"version\":1,\"journal\":18446744073709551616}", "the document: journal" },
	};

	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GError) error = NULL;
		VmcgDaemon *d = vmcg_daemon_new(NULL, NULL);

		g_test_message("case %zu: %s", i, cases[i].text);
		g_assert_false(
			vmcg_state_apply_text(d, cases[i].text, strlen(cases[i].text), &error));
		g_assert_nonnull(error);
		g_test_message("  -> %s", error->message);
		g_assert_nonnull(strstr(error->message, cases[i].why));
		g_assert_cmpuint(vmcg_tree_nr_groups(vmcg_daemon_tree(d)), ==, 1);
		g_assert_cmpuint(vmcg_tree_nr_vms(vmcg_daemon_tree(d)), ==, 0);
		vmcg_daemon_free(d);
	}
}

static void test_mark_text(void)
{
	static const struct {
		const char *in, *out; /* out NULL: unchanged */
	} cases[] = {
		{ "{\"a\":1}", NULL },
		{ "[18446744073709551615,-9223372036854775808]", NULL },
		{ "[18446744073709551616]", "[18446744073709551616.0]" },
		{ "[-9223372036854775809]", "[-9223372036854775809.0]" },
		{ "[1e400, 184467440737095516160.5]", NULL },
		{ "{\"18446744073709551616\":\"99999999999999999999\"}", NULL },
		{ "{\"k\\u0000\":\"v\\u0000\"}", "{\"k\\\\u0000\":\"v\\u0000\"}" },
		{ "{\"k\\\\u0000\" : 1}", NULL }, /* an escaped backslash, no NUL */
		{ "{\"a\\u0000b\\u0000c\"  :[99999999999999999999]}",
		  "{\"a\\\\u0000b\\\\u0000c\"  :[99999999999999999999.0]}" },
		{ "\"unterminated \\u0000", NULL },
	};

	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		gsize len = 0;
		g_autofree char *out = vmcg_state_mark_text(cases[i].in, strlen(cases[i].in), &len);

		g_test_message("case %zu: %s", i, cases[i].in);
		g_assert_cmpstr(out, ==, cases[i].out);
		if (out)
			g_assert_cmpuint(len, ==, strlen(out));
	}
}

typedef struct TmpState {
	char *dir, *path, *journal;
} TmpState;

static void tmp_state_init(TmpState *t)
{
	t->dir = g_dir_make_tmp("vmcg-state-XXXXXX", NULL);
	t->path = g_build_filename(t->dir, "state.json", NULL);
	t->journal = g_strconcat(t->path, ".journal", NULL);
}

static void tmp_state_clear(TmpState *t)
{
	g_autoptr(GDir) gd = g_dir_open(t->dir, 0, NULL);

	for (const char *n; gd && (n = g_dir_read_name(gd));) {
		g_autofree char *p = g_build_filename(t->dir, n, NULL);

		if (g_rmdir(p) < 0)
			g_unlink(p);
	}
	g_rmdir(t->dir);
	g_free(t->dir);
	g_free(t->path);
	g_free(t->journal);
}

static char *loaded_doc(const char *path)
{
	g_autoptr(GError) error = NULL;
	VmcgDaemon *d = vmcg_daemon_new(NULL, NULL);
	char *text;

	g_assert_true(vmcg_state_load(d, path, &error));
	g_assert_no_error(error);
	text = doc(d);
	vmcg_daemon_free(d);
	return text;
}

static void append_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_APPEND);

	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(write(fd, text, strlen(text)), ==, (gssize)strlen(text));
	close(fd);
}

static int by_key(const void *a, const void *b)
{
	json_object *const *x = a, *const *y = b;
	json_object *kx, *ky;

	if (!json_object_object_get_ex(*x, "path", &kx))
		json_object_object_get_ex(*x, "name", &kx);
	if (!json_object_object_get_ex(*y, "path", &ky))
		json_object_object_get_ex(*y, "name", &ky);
	return strcmp(json_object_get_string(kx), json_object_get_string(ky));
}

/*
 * The document with groups and VMs sorted: an undone delete puts its group
 * back last among its siblings (the API lists children in creation
 * order), which is the same tree.
 */
static char *canon(const char *text)
{
	g_autoptr(json_object) o = json_tokener_parse(text);
	json_object *a;

	g_assert_nonnull(o);
	if (json_object_object_get_ex(o, "groups", &a))
		json_object_array_sort(a, by_key);
	if (json_object_object_get_ex(o, "vms", &a))
		json_object_array_sort(a, by_key);
	return g_strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								  JSON_C_TO_STRING_NOSLASHESCAPE));
}

static char *canon_doc(VmcgDaemon *d)
{
	g_autofree char *text = doc(d);

	return canon(text);
}

static char *canon_loaded(const char *path)
{
	g_autofree char *text = loaded_doc(path);

	return canon(text);
}

/*
 * The journal: every change after the first (which writes the snapshot)
 * is a line; a reader gets the same tree; a last line cut short (a write
 * never acknowledged) is dropped; a journal of an older generation (the
 * compaction that replaced it died before starting a new one) is ignored.
 */
static void test_journal(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *a = NULL, *b = NULL, *c = NULL, *jtext = NULL;
	VmcgGroupSettings s = { .has_max = true, .max = 512 << 20 };
	VmcgStateHealth h;
	TmpState t;
	VmcgDaemon *d;

	tmp_state_init(&t);
	d = mk_daemon(t.path);
	g_assert_true(vmcg_daemon_group_put(d, "/tenants/beta", &s, NULL, &error));
	g_assert_true(vmcg_daemon_vm_move(d, "web1", "/tenants/beta", &error));
	g_assert_true(vmcg_daemon_group_delete(d, "/tenants/acme", &error));
	vmcg_daemon_state_health(d, &h);
	g_assert_true(h.ok);
	g_assert_cmpuint(h.compactions, ==, 1);
	g_assert_cmpuint(h.saves, ==, 6);
	g_assert_true(g_file_get_contents(t.journal, &jtext, NULL, NULL));
	g_assert_true(g_str_has_prefix(jtext, "{\"journal\":1}\n"));
	g_assert_nonnull(strstr(jtext, "{\"group-deleted\":\"/tenants/acme\"}\n"));
	a = doc(d);
	b = loaded_doc(t.path);
	g_assert_cmpstr(a, ==, b);

	/* Cut short: dropped. */
	append_text(t.journal, "{\"group\":{\"path\":\"/torn\"");
	g_free(b);
	b = loaded_doc(t.path);
	g_assert_cmpstr(a, ==, b);
	vmcg_daemon_free(d);

	/* The daemon's own load cuts it off, and appends after. */
	d = vmcg_daemon_new(NULL, t.path);
	g_assert_true(vmcg_state_load(d, t.path, &error));
	g_assert_true(vmcg_daemon_group_put(d, "/after", &s, NULL, &error));
	g_free(jtext);
	g_assert_true(g_file_get_contents(t.journal, &jtext, NULL, NULL));
	g_assert_null(strstr(jtext, "torn"));
	c = doc(d);
	vmcg_daemon_free(d);
	g_free(b);
	b = loaded_doc(t.path);
	g_assert_cmpstr(c, ==, b);

	/* A journal of another generation is stale. */
	g_assert_true(g_file_set_contents(
		t.journal, "{\"journal\":0}\n{\"group\":{\"path\":\"/stale\"}}\n", -1, NULL));
	g_free(b);
	b = loaded_doc(t.path);
	g_assert_null(strstr(b, "/stale"));

	/* A malformed line that is not the last is an error, naming the line. */
	g_assert_true(
		g_file_set_contents(t.journal,
				    "{\"journal\":1}\n{\"group\":{\"path\":\"/x\",\"colour\":1}}\n"
				    "{\"group\":{\"path\":\"/y\"}}\n",
				    -1, NULL));
	d = vmcg_daemon_new(NULL, NULL);
	g_assert_false(vmcg_state_load(d, t.path, &error));
	g_assert_nonnull(strstr(error->message, "line 2"));
	g_assert_nonnull(strstr(error->message, "colour"));
	vmcg_daemon_free(d);
	tmp_state_clear(&t);
}

/*
 * A save that fails undoes its change: the daemon holds what the state
 * file holds. The journal fails (an fd it cannot write, nor cut back:
 * abandoned), and so does the snapshot that would replace it (a directory
 * where its temporary file goes).
 */
static void test_rollback(void)
{
	VmcgGroupSettings s = { .has_max = true, .max = 2ull << 30 };
	VmcgVmSettings v = { .has_floor = true, .floor = 1 << 30 };
	g_autoptr(GError) error = NULL;
	g_autofree char *before = NULL, *tmp = NULL, *after = NULL;
	VmcgStateHealth h;
	TmpState t;
	VmcgDaemon *d;

	tmp_state_init(&t);
	tmp = g_strdup_printf("%s.tmp.%d", t.path, (int)getpid());
	d = mk_daemon(t.path);
	g_assert_true(vmcg_daemon_group_put(d, "/other", &s, NULL, &error));
	before = canon_doc(d);
	close(d->sf.journal_fd);
	d->sf.journal_fd = open(t.journal, O_RDONLY | O_CLOEXEC);
	g_assert_cmpint(g_mkdir(tmp, 0700), ==, 0);

	/* Each is made, fails to save, and is undone. */
	g_assert_true(vmcg_daemon_group_put(d, "/tenants", &s, NULL, &error)); /* update */
	g_assert_true(vmcg_daemon_group_put(d, "/new", &s, NULL, &error));     /* create */
	g_assert_true(vmcg_daemon_group_delete(d, "/other", &error));
	g_assert_true(vmcg_daemon_vm_move(d, "web1", "/other", &error));
	g_assert_true(vmcg_daemon_vm_set(d, "web1", &v, &error));
	g_assert_true(
		vmcg_daemon_vm_add(d, "web2", "qmp", "/nonexistent/2.qmp", "/", NULL, &error));
	g_assert_true(vmcg_daemon_vm_remove(d, "web1", &error));
	g_assert_no_error(error);
	after = canon_doc(d);
	g_assert_cmpstr(before, ==, after);
	vmcg_daemon_state_health(d, &h);
	g_assert_false(h.ok);
	g_assert_cmpuint(h.failures, ==, 7);
	g_assert_nonnull(strstr(h.error, "Is a directory"));
	g_assert_cmpuint(h.pending, ==, 0);
	g_assert_cmpint(d->sf.journal_fd, ==, -1);
	g_free(after);
	after = canon_loaded(t.path);
	g_assert_cmpstr(before, ==, after);

	/* The way clear: saved again (a snapshot, then the journal). */
	g_assert_cmpint(g_rmdir(tmp), ==, 0);
	g_assert_true(vmcg_daemon_group_put(d, "/new", &s, NULL, &error));
	g_assert_true(vmcg_daemon_group_put(d, "/new2", &s, NULL, &error));
	vmcg_daemon_state_health(d, &h);
	g_assert_true(h.ok);
	g_assert_null(h.error);
	g_assert_cmpint(d->sf.journal_fd, >=, 0);
	g_free(after);
	after = canon_doc(d);
	g_free(before);
	before = canon_loaded(t.path);
	g_assert_cmpstr(before, ==, after);

	/* A compaction that fails changes nothing on disk and undoes too. */
	g_assert_cmpint(g_mkdir(tmp, 0700), ==, 0);
	vmcg_daemon_save(d);
	g_assert_true(vmcg_daemon_group_delete(d, "/new", &error));
	vmcg_daemon_state_health(d, &h);
	g_assert_false(h.ok);
	g_free(after);
	after = canon_doc(d);
	g_assert_cmpstr(before, ==, after);
	g_free(after);
	after = canon_loaded(t.path);
	g_assert_cmpstr(before, ==, after);
	g_rmdir(tmp);
	vmcg_daemon_free(d);
	tmp_state_clear(&t);
}

typedef struct Answer {
	int calls;
	char *error;
} Answer;

static void on_answer(const GError *error, gpointer userdata)
{
	Answer *a = userdata;

	a->calls++;
	a->error = error ? g_strdup(error->message) : NULL;
}

/*
 * With a loop (as vmcgd runs): saves go to a worker thread, and a change
 * made while one runs goes into the next. If the running save fails,
 * that change (made on top of the failed one) is undone and refused too.
 *
 *   put /x, wait        save 1 starts (thread) ... fails
 *   put /y, wait        (pending)                 undone, refused
 *   then, the way clear: put /z, wait: saved, answered without error
 */
static void test_async(void)
{
	VmcgGroupSettings s = { 0 };
	g_autoptr(GError) error = NULL;
	g_autofree char *before = NULL, *after = NULL, *tmp = NULL;
	Answer ax = { 0 }, ay = { 0 }, az = { 0 };
	TmpState t;
	VmcgDaemon *d;

	tmp_state_init(&t);
	tmp = g_strdup_printf("%s.tmp.%d", t.path, (int)getpid());
	d = mk_daemon(t.path);
	before = canon_doc(d);
	d->save_deferred = TRUE;
	close(d->sf.journal_fd);
	d->sf.journal_fd = open(t.journal, O_RDONLY | O_CLOEXEC);
	g_assert_cmpint(g_mkdir(tmp, 0700), ==, 0);

	g_assert_true(vmcg_daemon_group_put(d, "/x", &s, NULL, &error));
	g_assert_true(vmcg_daemon_when_saved(d, on_answer, &ax));
	while (!d->save_task)
		g_main_context_iteration(NULL, FALSE);
	g_assert_true(vmcg_daemon_group_put(d, "/y", &s, NULL, &error));
	g_assert_true(vmcg_daemon_when_saved(d, on_answer, &ay));
	while (!ax.calls || !ay.calls)
		g_main_context_iteration(NULL, TRUE);
	g_assert_cmpint(ax.calls, ==, 1);
	g_assert_cmpint(ay.calls, ==, 1);
	g_assert_nonnull(ax.error);
	g_assert_nonnull(ay.error);
	after = canon_doc(d);
	g_assert_cmpstr(before, ==, after);
	g_free(after);
	after = canon_loaded(t.path);
	g_assert_cmpstr(before, ==, after);

	g_assert_cmpint(g_rmdir(tmp), ==, 0);
	g_assert_true(vmcg_daemon_group_put(d, "/z", &s, NULL, &error));
	g_assert_false(d->save_task); /* not before the loop is idle */
	g_assert_true(vmcg_daemon_when_saved(d, on_answer, &az));
	while (!az.calls)
		g_main_context_iteration(NULL, TRUE);
	g_assert_null(az.error);
	g_assert_false(vmcg_daemon_when_saved(d, on_answer, &az)); /* nothing to wait for */
	g_free(after);
	after = canon_loaded(t.path);
	g_assert_nonnull(strstr(after, "\"/z\""));
	g_assert_null(strstr(after, "\"/x\""));
	g_free(ax.error);
	g_free(ay.error);
	vmcg_daemon_free(d);
	tmp_state_clear(&t);
}

/* The journal is folded into a new snapshot once it outgrows it (and 64 KiB). */
static void test_compaction(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *a = NULL, *b = NULL;
	VmcgGroupSettings s = { 0 };
	VmcgStateHealth h;
	TmpState t;
	VmcgDaemon *d;

	tmp_state_init(&t);
	d = vmcg_daemon_new(NULL, t.path);
	for (int i = 0; i < 2000; i++) {
		g_autofree char *p = g_strdup_printf("/g%d", i);

		g_assert_true(vmcg_daemon_group_put(d, p, &s, NULL, &error));
	}
	vmcg_daemon_state_health(d, &h);
	g_assert_true(h.ok);
	g_assert_cmpuint(h.compactions, >=, 2);
	g_assert_cmpuint(h.journal_bytes, <=, MAX(h.snapshot_bytes, 64 << 10) + 4096);
	a = doc(d);
	b = loaded_doc(t.path);
	g_assert_cmpstr(a, ==, b);
	vmcg_daemon_free(d);
	tmp_state_clear(&t);
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
	g_test_add_func("/state/refused-entries", test_refused_entries);
	g_test_add_func("/state/mark-text", test_mark_text);
	g_test_add_func("/state/journal", test_journal);
	g_test_add_func("/state/rollback", test_rollback);
	g_test_add_func("/state/compaction", test_compaction);
	g_test_add_func("/state/async", test_async);
	return g_test_run();
}
