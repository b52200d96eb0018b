// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmcgd.conf: defaults, the shipped default file, a full file, durations,
 * and every error: each must name the origin, the line, the section and
 * the key, so that an operator can find the typo.
 */
#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <inttypes.h>
#include <unistd.h>

#include "../fuzz/config-cross-check.h"
#include "config-apply.h"
#include "config-merge.h"
#include "config.h"
#include "test-util.h"
#include "vmcg/oom.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define SEC UINT64_C(1000000)
#define MSEC UINT64_C(1000)

static VmcgConfig *load_ok(const char *text)
{
	g_autoptr(GError) error = NULL;
	VmcgConfig *c = NULL;

	if (!vmcg_config_load_data(text, (gsize)-1, "test.conf", &c, &error))
		g_error("unexpected error: %s\n--- in ---\n%s", error->message, text);
	g_assert_nonnull(c);
	return c;
}

/*
 * Load @text, which must fail with @code and a message that contains each
 * of the NULL-terminated strings that follow.
 */
static void load_fails(const char *text, VmcgConfigError code, ...)
{
	g_autoptr(GError) error = NULL;
	VmcgConfig *c = NULL;
	const char *want;
	va_list ap;

	if (vmcg_config_load_data(text, (gsize)-1, "test.conf", &c, &error))
		g_error("loaded, but should have failed:\n%s", text);
	g_assert_null(c);
	g_assert_nonnull(error);
	if (!g_error_matches(error, VMCG_CONFIG_ERROR, (int)code))
		g_error("error code %d, want %d: %s", error->code, code, error->message);
	if (!g_str_has_prefix(error->message, "test.conf:"))
		g_error("message does not start with the origin: %s", error->message);
	va_start(ap, code);
	while ((want = va_arg(ap, const char *)))
		if (!strstr(error->message, want))
			g_error("message lacks \"%s\": %s", want, error->message);
	va_end(ap);
	g_test_message("%s", error->message);
}

static void assert_defaults(const VmcgConfig *c)
{
	g_assert_cmpstr(c->socket_path, ==, "/run/vmcg/vmcgd.sock");
	g_assert_cmpstr(c->state_path, ==, "/var/lib/vmcg/state.json");
	g_assert_cmpuint(c->interval_usec, ==, SEC);
	g_assert_cmpstr(c->write_group, ==, "vmcg");
	g_assert_false(c->recursive_protection);
	g_assert_cmpuint(c->stock_batch, ==, 64);
	g_assert_false(c->backstop);
	g_assert_cmpuint(c->backstop_overhead_bytes, ==, 256 * MiB);
	g_assert_cmpuint(c->reclaim_step_bytes, ==, 64 * MiB);
	g_assert_cmpuint(c->hysteresis_bytes, ==, 32 * MiB);
	g_assert_cmpuint(c->stats_interval_usec, ==, 2 * SEC);
	g_assert_cmpuint(c->stats_max_age_usec, ==, 10 * SEC);
	g_assert_cmpuint(c->vmpressure_hold_usec, ==, 10 * SEC);
	g_assert_cmpuint(c->n_groups, ==, 0);
	g_assert_null(c->groups);
	g_assert_cmpuint(c->n_vms, ==, 0);
	g_assert_null(c->vms);
}

static void test_defaults(void)
{
	g_autoptr(VmcgConfig) c = vmcg_config_new_default();
	g_autoptr(VmcgConfig) empty = load_ok("");
	g_autoptr(VmcgConfig) comments = load_ok("# nothing\n\n   \t\n# more\n");
	g_autoptr(VmcgConfig) daemon = load_ok("[daemon]\n");

	assert_defaults(c);
	assert_defaults(empty);
	assert_defaults(comments);
	assert_defaults(daemon);
	g_assert_true(vmcg_config_equal(c, empty));
	vmcg_config_free(NULL);
}

/*
 * config/vmcgd.conf in the source tree: under $VMCG_SOURCE_DIR, two levels
 * above $G_TEST_SRCDIR (tests/unit, as meson sets it), under the
 * VMCG_SOURCE_DIR the build defines, or under the current directory.
 */
static char *source_conf_path(void)
{
	const char *srcdir = g_getenv("G_TEST_SRCDIR");
	g_autofree char *above = srcdir ? g_build_filename(srcdir, "..", "..", NULL) : NULL;
	const char *dirs[] = {
		g_getenv("VMCG_SOURCE_DIR"),
		above,
#ifdef VMCG_SOURCE_DIR
		VMCG_SOURCE_DIR,
#endif
		".",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(dirs); i++) {
		char *path;

		if (!dirs[i])
			continue;
		path = g_build_filename(dirs[i], "config", "vmcgd.conf", NULL);
		if (g_file_test(path, G_FILE_TEST_EXISTS))
			return path;
		g_free(path);
	}
	return NULL;
}

/*
 * The embedded text is config/vmcgd.conf, byte for byte, and loads to the
 * defaults; so does the file with every "#key = value" line uncommented,
 * which checks every default it documents; and it documents every key.
 */
static void test_default_text(void)
{
	const char *text = vmcg_config_default_text();
	g_autoptr(VmcgConfig) def = vmcg_config_new_default();
	g_autoptr(VmcgConfig) c = load_ok(text);
	g_autoptr(VmcgConfig) uncommented = NULL;
	g_autoptr(GRegex) re = NULL;
	g_autofree char *path = source_conf_path();
	g_autofree char *disk = NULL;
	g_autofree char *active = NULL;
	g_autoptr(GError) error = NULL;
	static const char *const daemon_keys[] = {
		"socket",
		"state",
		"interval",
		"write-group",
		"recursive-protection",
		"stock-batch",
		"backstop",
		"backstop-overhead",
		"reclaim-step",
		"hysteresis",
		"stats-interval",
		"stats-max-age",
		"vmpressure-hold",
	};

	g_assert_true(vmcg_config_equal(c, def));
	assert_defaults(c);

	if (!path) {
		/* Never pass without the comparison: say why it could not run. */
		g_test_message("config/vmcgd.conf not found: set VMCG_SOURCE_DIR (or "
			       "G_TEST_SRCDIR) to the source tree, or run from it");
		g_test_fail();
		return;
	}
	g_assert_true(g_file_get_contents(path, &disk, NULL, &error));
	g_assert_no_error(error);
	g_assert_cmpstr(text, ==, disk);

	re = g_regex_new("^#([a-z][a-z.-]* = )", G_REGEX_MULTILINE, 0, &error);
	g_assert_no_error(error);
	active = g_regex_replace(re, text, -1, 0, "\\1", 0, &error);
	g_assert_no_error(error);
	uncommented = load_ok(active);
	g_assert_true(vmcg_config_equal(uncommented, def));
	for (size_t i = 0; i < G_N_ELEMENTS(daemon_keys); i++) {
		g_autofree char *line = g_strdup_printf("\n%s = ", daemon_keys[i]);

		if (!strstr(active, line))
			g_error("config/vmcgd.conf does not show the default of %s",
				daemon_keys[i]);
	}
}

/* The example from the design discussion, every key set. */
static const char full_text[] =
	"[daemon]\n"
	"socket = /run/vmcg/vmcgd.sock\n"
	"state = /var/lib/vmcg/state.json\n"
	"interval = 1s            # sampling/control interval, 100ms..60s\n"
	"write-group = vmcg       # unix group allowed to write through the API (uid 0 always)\n"
	"recursive-protection = false\n"
	"stock-batch = 64\n"
	"backstop = false         # host cgroup limit on each QEMU process\n"
	"backstop-overhead = 256M # allowance above max for the backstop\n"
	"reclaim-step = 64M       # max balloon move per VM per tick\n"
	"hysteresis = 32M         # deflate only when this far under high\n"
	"stats-interval = 2s      # guest balloon stats polling\n"
	"stats-max-age = 10s      # older guest stats are stale\n"
	"vmpressure-hold = 10s\n"
	"\n"
	"[group /tenants]\n"
	"memory.max = 4G\n"
	"memory.high = 3G\n"
	"memory.low = 0\n"
	"memory.min = 0\n"
	"memory.oom.group = false\n"
	"oom-action = notify      # notify | pause | destroy\n"
	"overhead-in-max = false\n"
	"\n"
	"[group /tenants/acme]\n"
	"memory.max = 1G\n"
	"\n"
	"[vm web1]\n"
	"qmp = /run/vmcg/web1.qmp\n"
	"group = /tenants/acme\n"
	"floor = 128M\n"
	"oom-priority = 0\n";

static void test_full(void)
{
	g_autoptr(VmcgConfig) c = load_ok(full_text);
	g_autoptr(VmcgConfig) again = load_ok(full_text);
	const VmcgConfigGroup *t, *acme;
	const VmcgConfigVm *vm;

	assert_defaults(&(VmcgConfig){ .socket_path = c->socket_path,
				       .state_path = c->state_path,
				       .interval_usec = c->interval_usec,
				       .write_group = c->write_group,
				       .recursive_protection = c->recursive_protection,
				       .stock_batch = c->stock_batch,
				       .backstop = c->backstop,
				       .backstop_overhead_bytes = c->backstop_overhead_bytes,
				       .reclaim_step_bytes = c->reclaim_step_bytes,
				       .hysteresis_bytes = c->hysteresis_bytes,
				       .stats_interval_usec = c->stats_interval_usec,
				       .stats_max_age_usec = c->stats_max_age_usec,
				       .vmpressure_hold_usec = c->vmpressure_hold_usec });

	g_assert_cmpuint(c->n_groups, ==, 2);
	t = &c->groups[0];
	g_assert_cmpstr(t->path, ==, "/tenants");
	g_assert_cmpuint(t->line, ==, 16);
	g_assert_cmpuint(t->set, ==,
			 VMCG_CONFIG_KNOB_MIN | VMCG_CONFIG_KNOB_LOW | VMCG_CONFIG_KNOB_HIGH |
				 VMCG_CONFIG_KNOB_MAX | VMCG_CONFIG_KNOB_OOM_GROUP |
				 VMCG_CONFIG_KNOB_OOM_ACTION | VMCG_CONFIG_KNOB_OVERHEAD_IN_MAX);
	g_assert_cmpuint(t->max_bytes, ==, 4 * GiB);
	g_assert_cmpuint(t->high_bytes, ==, 3 * GiB);
	g_assert_cmpuint(t->low_bytes, ==, 0);
	g_assert_cmpuint(t->min_bytes, ==, 0);
	g_assert_false(t->oom_group);
	g_assert_cmpint(t->oom_action, ==, VMCG_OOM_NOTIFY);
	g_assert_false(t->overhead_in_max);

	acme = &c->groups[1];
	g_assert_cmpstr(acme->path, ==, "/tenants/acme");
	g_assert_cmpuint(acme->set, ==, VMCG_CONFIG_KNOB_MAX);
	g_assert_cmpuint(acme->max_bytes, ==, GiB);
	/* Unset knobs hold the cgroup defaults. */
	g_assert_cmpuint(acme->high_bytes, ==, VMCG_SIZE_MAX);
	g_assert_cmpuint(acme->min_bytes, ==, 0);
	g_assert_cmpint(acme->oom_action, ==, VMCG_OOM_NOTIFY);
	g_assert_true(vmcg_config_find_group(c, "/tenants/acme") == acme);
	g_assert_null(vmcg_config_find_group(c, "/tenants/ac"));

	g_assert_cmpuint(c->n_vms, ==, 1);
	vm = &c->vms[0];
	g_assert_cmpstr(vm->name, ==, "web1");
	g_assert_cmpuint(vm->line, ==, 28);
	g_assert_cmpstr(vm->address, ==, "/run/vmcg/web1.qmp");
	g_assert_cmpstr(vm->group_path, ==, "/tenants/acme");
	g_assert_cmpuint(vm->floor_bytes, ==, 128 * MiB);
	g_assert_cmpint(vm->oom_priority, ==, 0);
	g_assert_true(vmcg_config_find_vm(c, "web1") == vm);
	g_assert_null(vmcg_config_find_vm(c, "web"));

	g_assert_true(vmcg_config_equal(c, again));
}

static void test_values(void)
{
	g_autoptr(VmcgConfig) c = load_ok("[daemon]\n"
					  "socket = /tmp/s\n"
					  "interval = 100ms\n"
					  "write-group =\n"
					  "recursive-protection = YES\n"
					  "stock-batch = 131072\n"
					  "backstop = on\n"
					  "backstop-overhead = 0\n"
					  "reclaim-step = max\n"
					  "hysteresis = 1.5G\n"
					  "stats-interval = 0\n"
					  "stats-max-age = 1s\n"
					  "vmpressure-hold = 0\n"
					  "[group /a]\n"
					  "memory.min = max\n"
					  "memory.high = 4097\n"
					  "memory.oom.group = 1\n"
					  "oom-action = destroy\n"
					  "overhead-in-max = True\n"
					  "[group /a/b/c]\n"
					  "oom-action = pause\n"
					  "[vm with spaces (and #)]\n"
					  "qmp = /q#x\n"
					  "floor = max\n"
					  "oom-priority = -1000\n"
					  "[vm v2]\n"
					  "qmp = /q2\n"
					  "group = /a/b\n"
					  "oom-priority = 1000\n");

	g_assert_cmpstr(c->socket_path, ==, "/tmp/s");
	g_assert_cmpuint(c->interval_usec, ==, 100 * MSEC);
	g_assert_cmpstr(c->write_group, ==, "");
	g_assert_true(c->recursive_protection);
	g_assert_cmpuint(c->stock_batch, ==, 131072);
	g_assert_true(c->backstop);
	g_assert_cmpuint(c->backstop_overhead_bytes, ==, 0);
	g_assert_cmpuint(c->reclaim_step_bytes, ==, VMCG_SIZE_MAX);
	g_assert_cmpuint(c->hysteresis_bytes, ==, GiB + GiB / 2);
	g_assert_cmpuint(c->stats_interval_usec, ==, 0);
	g_assert_cmpuint(c->stats_max_age_usec, ==, SEC);
	g_assert_cmpuint(c->vmpressure_hold_usec, ==, 0);

	g_assert_cmpuint(c->n_groups, ==, 2);
	g_assert_cmpuint(c->groups[0].min_bytes, ==, VMCG_SIZE_MAX);
	g_assert_cmpuint(c->groups[0].high_bytes, ==, 4097);
	g_assert_true(c->groups[0].oom_group);
	g_assert_cmpint(c->groups[0].oom_action, ==, VMCG_OOM_DESTROY);
	g_assert_true(c->groups[0].overhead_in_max);
	/* /a/b is implied: it gets no entry, the daemon creates it (mkdir -p). */
	g_assert_cmpstr(c->groups[1].path, ==, "/a/b/c");
	g_assert_cmpuint(c->groups[1].set, ==, VMCG_CONFIG_KNOB_OOM_ACTION);
	g_assert_cmpint(c->groups[1].oom_action, ==, VMCG_OOM_PAUSE);

	g_assert_cmpuint(c->n_vms, ==, 2);
	/* A '#' inside a word is text; only " #" starts a comment. */
	g_assert_cmpstr(c->vms[0].name, ==, "with spaces (and #)");
	g_assert_cmpstr(c->vms[0].address, ==, "/q#x");
	g_assert_cmpstr(c->vms[0].group_path, ==, "/");
	g_assert_cmpuint(c->vms[0].floor_bytes, ==, VMCG_SIZE_MAX);
	g_assert_cmpint(c->vms[0].oom_priority, ==, VMCG_OOM_PRIORITY_MIN);
	g_assert_cmpstr(c->vms[1].group_path, ==, "/a/b");
	g_assert_cmpint(c->vms[1].oom_priority, ==, VMCG_OOM_PRIORITY_MAX);
}

/* Layout that GKeyFile accepts: indentation, blanks around '=', CRLF, no final newline. */
static void test_layout(void)
{
	g_autoptr(VmcgConfig) crlf = load_ok("# c\r\n[group /x]\r\nmemory.max = 1G\r\n");
	g_autoptr(VmcgConfig) loose = load_ok("  [group /x]  \t\n"
					      "\t memory.max\t=\t 1G \t\n"
					      "   # indented comment\n"
					      "memory.high=2G\n");
	g_autoptr(VmcgConfig) last = NULL;
	g_autoptr(GError) error = NULL;

	g_assert_cmpuint(crlf->groups[0].max_bytes, ==, GiB);
	g_assert_cmpuint(loose->groups[0].max_bytes, ==, GiB);
	/* "2G#not..." is a bad size: '#' starts a comment only after a blank. */
	g_assert_false(vmcg_config_load_data("[group /x]\nmemory.high=2G#c\n", (gsize)-1, NULL,
					     &last, &error));
	g_assert_error(error, VMCG_CONFIG_ERROR, VMCG_CONFIG_ERROR_INVALID);
	g_assert_true(g_str_has_prefix(error->message, "<config>:2: [group /x] memory.high:"));
	g_clear_error(&error);

	/* Not NUL-terminated: only @len bytes are read. */
	g_assert_true(vmcg_config_load_data("[group /x]\nmemory.max = 1Ggarbage", 26, "t", &last,
					    &error));
	g_assert_no_error(error);
	g_assert_cmpuint(last->groups[0].max_bytes, ==, GiB);
}

static void test_durations(void)
{
	static const struct {
		const char *s;
		int r;
		uint64_t usec;
	} cases[] = {
		{ "0", 0, 0 },
		{ "1us", 0, 1 },
		{ "100ms", 0, 100 * MSEC },
		{ "1s", 0, SEC },
		{ "2m", 0, 120 * SEC },
		{ "1h", 0, 3600 * SEC },
		{ "1.5s", 0, 1500 * MSEC },
		{ "0.5ms", 0, 500 },
		{ "0.0000001s", 0, 0 },
		{ "1.0000019s", 0, SEC + 1 },
		{ "90s", 0, 90 * SEC },
		{ "007s", 0, 7 * SEC },
		{ "0s", 0, 0 },
		{ "18446744073709551615us", 0, UINT64_MAX },
		{ "18446744073709551616us", -ERANGE, 0 },
		{ "5124095577h", -ERANGE, 0 },
		{ "5124095576h", 0, 5124095576 * 3600 * SEC },
		{ "18446744073709.551615s", 0, UINT64_MAX },
		{ "18446744073709.551616s", -ERANGE, 0 },
		{ "99999999999999999999999s", -ERANGE, 0 },
		{ "", -EINVAL, 0 },
		{ "1", -EINVAL, 0 },
		{ "00", -EINVAL, 0 },
		{ "0.0", -EINVAL, 0 },
		{ "s", -EINVAL, 0 },
		{ "1 s", -EINVAL, 0 },
		{ " 1s", -EINVAL, 0 },
		{ "1s ", -EINVAL, 0 },
		{ "-1s", -EINVAL, 0 },
		{ "+1s", -EINVAL, 0 },
		{ "1S", -EINVAL, 0 },
		{ "1sec", -EINVAL, 0 },
		{ "1min", -EINVAL, 0 },
		{ "1d", -EINVAL, 0 },
		{ "1ns", -EINVAL, 0 },
		{ "1m30s", -EINVAL, 0 },
		{ "1.s", -EINVAL, 0 },
		{ ".5s", -EINVAL, 0 },
		{ "1e3ms", -EINVAL, 0 },
		{ "99999999999999999999999x", -EINVAL, 0 },
	};
	static const struct {
		uint64_t usec;
		const char *s;
	} formats[] = {
		{ 0, "0" },	      { 1, "1us" },
		{ 1500, "1500us" },   { 100 * MSEC, "100ms" },
		{ SEC, "1s" },	      { 1500 * MSEC, "1500ms" },
		{ 90 * SEC, "90s" },  { 120 * SEC, "2m" },
		{ 7200 * SEC, "2h" }, { UINT64_MAX, "18446744073709551615us" },
	};
	char buf[VMCG_DURATION_STRLEN];

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		uint64_t v = 12345;
		int r = vmcg_duration_parse(cases[i].s, &v);

		if (r != cases[i].r || (r == 0 && v != cases[i].usec) || (r < 0 && v != 12345))
			g_error("vmcg_duration_parse(\"%s\") = %d, %" PRIu64, cases[i].s, r, v);
	}
	g_assert_cmpint(vmcg_duration_parse(NULL, NULL), ==, -EINVAL);

	for (size_t i = 0; i < G_N_ELEMENTS(formats); i++) {
		uint64_t back;

		g_assert_cmpint(vmcg_duration_format(formats[i].usec, buf, sizeof(buf)), ==, 0);
		g_assert_cmpstr(buf, ==, formats[i].s);
		g_assert_cmpint(vmcg_duration_parse(buf, &back), ==, 0);
		g_assert_cmpuint(back, ==, formats[i].usec);
	}
	g_assert_cmpint(vmcg_duration_format(100 * MSEC, buf, 5), ==, -ENOSPC);
	g_assert_cmpstr(buf, ==, "");
	g_assert_cmpint(vmcg_duration_format(100 * MSEC, buf, 6), ==, 0);
	g_assert_cmpint(vmcg_duration_format(0, NULL, 0), ==, -ENOSPC);

	/* Durations in the file: units, range, whole seconds. */
	load_fails("[daemon]\ninterval = 1\n", VMCG_CONFIG_ERROR_INVALID,
		   "test.conf:2: [daemon] interval:", "invalid duration \"1\"", NULL);
	load_fails("[daemon]\ninterval = 99ms\n", VMCG_CONFIG_ERROR_INVALID,
		   "[daemon] interval:", "between 100ms and 1m", NULL);
	load_fails("[daemon]\ninterval = 61s\n", VMCG_CONFIG_ERROR_INVALID,
		   "[daemon] interval:", "out of range", NULL);
	load_fails("[daemon]\ninterval = 0\n", VMCG_CONFIG_ERROR_INVALID,
		   "[daemon] interval:", NULL);
	load_fails("[daemon]\nstats-interval = 1500ms\n", VMCG_CONFIG_ERROR_INVALID,
		   "[daemon] stats-interval:", "whole number of seconds", NULL);
	load_fails("[daemon]\nstats-interval = 500ms\n", VMCG_CONFIG_ERROR_INVALID,
		   "[daemon] stats-interval:", "0 or between 1s and 1h", NULL);
	load_fails("[daemon]\nvmpressure-hold = 2h\n", VMCG_CONFIG_ERROR_INVALID,
		   "[daemon] vmpressure-hold:", NULL);
	load_fails("[daemon]\nstats-interval = 30s\n", VMCG_CONFIG_ERROR_INVALID,
		   "test.conf:2: [daemon] stats-max-age:", "shorter than stats-interval", NULL);
	load_fails("[daemon]\nstats-max-age = 5s\nstats-interval = 6s\n", VMCG_CONFIG_ERROR_INVALID,
		   "test.conf:3: [daemon] stats-max-age:", "5s", "6s", NULL);
	{
		g_autoptr(VmcgConfig) c =
			load_ok("[daemon]\nstats-interval = 0\nstats-max-age = 1s\n");
		g_autoptr(VmcgConfig) d = load_ok("[daemon]\ninterval = 1.5s\n");

		g_assert_cmpuint(c->stats_interval_usec, ==, 0);
		g_assert_cmpuint(d->interval_usec, ==, 1500 * MSEC);
	}
}

static void test_sizes_in_file(void)
{
	load_fails("[group /a]\nmemory.max = 12 M\n", VMCG_CONFIG_ERROR_INVALID,
		   "test.conf:2: [group /a] memory.max:", "invalid size \"12 M\"", NULL);
	load_fails("[group /a]\nmemory.max = 1X\n", VMCG_CONFIG_ERROR_INVALID,
		   "[group /a] memory.max:", "\"1X\"", NULL);
	load_fails("[group /a]\nmemory.max = -1\n", VMCG_CONFIG_ERROR_INVALID,
		   "[group /a] memory.max:", NULL);
	load_fails("[group /a]\nmemory.low = 8E\n", VMCG_CONFIG_ERROR_INVALID,
		   "[group /a] memory.low:", "\"8E\" is out of range: must be less than 8E, or max",
		   NULL);
	{
		g_autoptr(VmcgConfig) c = load_ok("[group /a]\nmemory.low = 7.99E\n");

		g_assert_cmpuint(c->groups[0].low_bytes, <=, VMCG_SIZE_LIMIT);
	}
	load_fails("[group /a]\nmemory.min = 99999999999999999999999\n", VMCG_CONFIG_ERROR_INVALID,
		   "[group /a] memory.min:", "out of range", NULL);
	load_fails("[group /a]\nmemory.high =\n", VMCG_CONFIG_ERROR_INVALID,
		   "[group /a] memory.high:", "empty value", NULL);
	load_fails("[group /a]\nmemory.high = # nothing\n", VMCG_CONFIG_ERROR_INVALID,
		   "[group /a] memory.high:", "empty value", NULL);
	load_fails("[daemon]\nhysteresis = max\n", VMCG_CONFIG_ERROR_INVALID,
		   "[daemon] hysteresis:", "max is not allowed here: must be less than 8E", NULL);
	load_fails("[daemon]\nbackstop-overhead = max\n", VMCG_CONFIG_ERROR_INVALID,
		   "[daemon] backstop-overhead:", NULL);
	load_fails("[daemon]\nreclaim-step = 4095\n", VMCG_CONFIG_ERROR_INVALID,
		   "[daemon] reclaim-step:", "at least 4K and less than 8E, or max", NULL);
	load_fails("[vm v]\nqmp = /q\nfloor = lots\n", VMCG_CONFIG_ERROR_INVALID,
		   "test.conf:3: [vm v] floor:", NULL);
}

static void test_other_values(void)
{
	load_fails("[daemon]\nbackstop = maybe\n", VMCG_CONFIG_ERROR_INVALID,
		   "test.conf:2: [daemon] backstop:", "invalid boolean \"maybe\"", NULL);
	load_fails("[group /a]\nmemory.oom.group = 2\n", VMCG_CONFIG_ERROR_INVALID,
		   "[group /a] memory.oom.group:", NULL);
	load_fails("[group /a]\noom-action = kill\n", VMCG_CONFIG_ERROR_INVALID,
		   "[group /a] oom-action:", "notify, pause or destroy", NULL);
	load_fails("[group /a]\noom-action = Notify\n", VMCG_CONFIG_ERROR_INVALID,
		   "[group /a] oom-action:", NULL);
	load_fails("[daemon]\nstock-batch = 0\n", VMCG_CONFIG_ERROR_INVALID,
		   "[daemon] stock-batch:", "between 1 and 131072", NULL);
	load_fails("[daemon]\nstock-batch = 131073\n", VMCG_CONFIG_ERROR_INVALID,
		   "[daemon] stock-batch:", NULL);
	load_fails("[daemon]\nstock-batch = 64k\n", VMCG_CONFIG_ERROR_INVALID,
		   "[daemon] stock-batch:", "invalid number", NULL);
	load_fails("[daemon]\nstock-batch = 99999999999999999999999\n", VMCG_CONFIG_ERROR_INVALID,
		   "[daemon] stock-batch:", "out of range", NULL);
	load_fails("[vm v]\nqmp = /q\noom-priority = 1001\n", VMCG_CONFIG_ERROR_INVALID,
		   "[vm v] oom-priority:", "between -1000 and 1000", NULL);
	load_fails("[vm v]\nqmp = /q\noom-priority = -1001\n", VMCG_CONFIG_ERROR_INVALID,
		   "[vm v] oom-priority:", NULL);
	load_fails("[vm v]\nqmp = /q\noom-priority = +1\n", VMCG_CONFIG_ERROR_INVALID,
		   "[vm v] oom-priority:", "invalid number", NULL);
	load_fails("[vm v]\nqmp = /q\noom-priority = -\n", VMCG_CONFIG_ERROR_INVALID,
		   "[vm v] oom-priority:", NULL);
	load_fails("[vm v]\nqmp = /q\noom-priority = -9223372036854775809\n",
		   VMCG_CONFIG_ERROR_INVALID, "[vm v] oom-priority:", "out of range", NULL);
	load_fails("[daemon]\nwrite-group = 1000\n", VMCG_CONFIG_ERROR_INVALID,
		   "[daemon] write-group:", "unix group", NULL);
	load_fails("[daemon]\nwrite-group = a b\n", VMCG_CONFIG_ERROR_INVALID,
		   "[daemon] write-group:", NULL);
	load_fails("[daemon]\nwrite-group = abcdefghijklmnopqrstuvwxyz0123456\n",
		   VMCG_CONFIG_ERROR_INVALID, "[daemon] write-group:", NULL);
	load_fails("[vm v]\nqmp = /q\noom-priority = -9223372036854775808\n",
		   VMCG_CONFIG_ERROR_INVALID, "[vm v] oom-priority:", "out of range", NULL);
	{
		g_autoptr(VmcgConfig) c = load_ok("[daemon]\nwrite-group = _kvm-users.2\n");

		g_assert_cmpstr(c->write_group, ==, "_kvm-users.2");
	}
}

static void test_paths(void)
{
	g_autofree char *long_sock = g_strnfill(107, 'x');
	g_autofree char *text = NULL;

	long_sock[0] = '/';
	text = g_strdup_printf("[daemon]\nsocket = %s\n", long_sock);
	{
		g_autoptr(VmcgConfig) c = load_ok(text);

		g_assert_cmpuint(strlen(c->socket_path), ==, 107);
	}
	g_free(text);
	text = g_strdup_printf("[daemon]\nsocket = %sx\n", long_sock);
	load_fails(text, VMCG_CONFIG_ERROR_INVALID, "[daemon] socket:", "longer than 107 bytes",
		   "unix socket", NULL);
	g_free(text);
	text = g_strdup_printf("[vm v]\nqmp = %sx\n", long_sock);
	load_fails(text, VMCG_CONFIG_ERROR_INVALID, "test.conf:2: [vm v] qmp:", NULL);

	load_fails("[daemon]\nsocket = run/vmcgd.sock\n", VMCG_CONFIG_ERROR_INVALID,
		   "[daemon] socket:", "not an absolute path", NULL);
	load_fails("[daemon]\nstate = ./state.json\n", VMCG_CONFIG_ERROR_INVALID,
		   "[daemon] state:", "not an absolute path", NULL);
	load_fails("[daemon]\nstate = /var/lib/vmcg/\n", VMCG_CONFIG_ERROR_INVALID,
		   "[daemon] state:", "must name a file", NULL);
	load_fails("[vm web1]\nqmp = web1.qmp\n", VMCG_CONFIG_ERROR_INVALID,
		   "test.conf:2: [vm web1] qmp:", "\"web1.qmp\" is not an absolute path", NULL);
	load_fails("[vm web1]\nqmp = ~/web1.qmp\n", VMCG_CONFIG_ERROR_INVALID,
		   "[vm web1] qmp:", NULL);
}

static void test_syntax_errors(void)
{
	load_fails("memory.max = 1G\n", VMCG_CONFIG_ERROR_SYNTAX,
		   "test.conf:1:", "\"memory.max\" before any [section]", NULL);
	load_fails("[daemon]\njunk\n", VMCG_CONFIG_ERROR_SYNTAX,
		   "test.conf:2: [daemon]:", "\"junk\"", NULL);
	load_fails("[daemon]\n= 1\n", VMCG_CONFIG_ERROR_SYNTAX, "test.conf:2:", "without a key",
		   NULL);
	load_fails("[daemon\n", VMCG_CONFIG_ERROR_SYNTAX, "test.conf:1:", "without its ']'", NULL);
	load_fails("[daemon] # comment\n", VMCG_CONFIG_ERROR_SYNTAX,
		   "test.conf:1:", "text after a section header", NULL);
	load_fails("[daemon]]\n", VMCG_CONFIG_ERROR_SYNTAX, "test.conf:1:", NULL);
	load_fails("\n\n[]\n", VMCG_CONFIG_ERROR_SYNTAX, "test.conf:3:", "empty section name",
		   NULL);
	load_fails("[vm a[b]\n", VMCG_CONFIG_ERROR_SYNTAX, "'[' in a section name", NULL);
	load_fails("[group]\n", VMCG_CONFIG_ERROR_SYNTAX, "needs a group path", "[group /path]",
		   NULL);
	load_fails("[vm]\n", VMCG_CONFIG_ERROR_SYNTAX, "needs a VM name", NULL);
	load_fails("[vm ]\n", VMCG_CONFIG_ERROR_SYNTAX, "needs a VM name", NULL);
}

static void test_unknown(void)
{
	load_fails("[deamon]\n", VMCG_CONFIG_ERROR_UNKNOWN_SECTION,
		   "test.conf:1:", "unknown section [deamon]", "did you mean daemon?", NULL);
	load_fails("[Daemon]\n", VMCG_CONFIG_ERROR_UNKNOWN_SECTION, "[Daemon]", NULL);
	load_fails("[groups /a]\n", VMCG_CONFIG_ERROR_UNKNOWN_SECTION, "[groups /a]",
		   "did you mean group?", NULL);
	load_fails("[daemon x]\n", VMCG_CONFIG_ERROR_UNKNOWN_SECTION, "takes no name", NULL);
	load_fails("[ daemon]\n", VMCG_CONFIG_ERROR_UNKNOWN_SECTION, "[ daemon]", NULL);
	load_fails("[daemon]\ninterval = 1s\nintervall = 2s\n", VMCG_CONFIG_ERROR_UNKNOWN_KEY,
		   "test.conf:3: [daemon]:", "unknown key \"intervall\"", "did you mean interval?",
		   NULL);
	load_fails("[group /a]\nmemory.mx = 1G\n", VMCG_CONFIG_ERROR_UNKNOWN_KEY,
		   "test.conf:2: [group /a]:", "\"memory.mx\"", "did you mean memory.max?", NULL);
	load_fails("[group /a]\nMemory.Max = 1G\n", VMCG_CONFIG_ERROR_UNKNOWN_KEY, "\"Memory.Max\"",
		   NULL);
	load_fails("[group /a]\nfloor = 1G\n", VMCG_CONFIG_ERROR_UNKNOWN_KEY,
		   "[group /a]:", "\"floor\"", "belongs in a [vm name] section", NULL);
	load_fails("[vm v]\nqmp = /q\nmemory.max = 1G\n", VMCG_CONFIG_ERROR_UNKNOWN_KEY,
		   "test.conf:3: [vm v]:", "belongs in a [group /path] section", NULL);
	load_fails("[daemon]\nqmp = /q\n", VMCG_CONFIG_ERROR_UNKNOWN_KEY,
		   "[daemon]:", "belongs in a [vm name] section", NULL);
	load_fails("[group /a]\nstock-batch = 1\n", VMCG_CONFIG_ERROR_UNKNOWN_KEY,
		   "belongs in a [daemon] section", NULL);
	/* Names from the file are cut short in messages. */
	{
		g_autofree char *name = g_strnfill(3000, 'x');
		g_autofree char *text = g_strdup_printf("[%s]\n", name);
		g_autofree char *cut = g_strdup_printf("[%.80s...]", name);

		load_fails(text, VMCG_CONFIG_ERROR_UNKNOWN_SECTION, cut, NULL);
		g_free(text);
		text = g_strdup_printf("[vm %s]\n", name);
		load_fails(text, VMCG_CONFIG_ERROR_INVALID, "longer than 128 bytes", NULL);
		g_free(text);
		text = g_strdup_printf("[daemon]\n%s = 1\n", name);
		g_free(cut);
		cut = g_strdup_printf("unknown key \"%.64s\"...", name);
		load_fails(text, VMCG_CONFIG_ERROR_UNKNOWN_KEY, cut, NULL);
	}
	/* GKeyFile would drop a key with a locale suffix without a word. */
	load_fails("[group /a]\nmemory.max[de] = 1G\n", VMCG_CONFIG_ERROR_UNKNOWN_KEY,
		   "\"memory.max[de]\"", NULL);
	/* GKeyFile would check the encoding and keep going. */
	load_fails("[daemon]\nEncoding = UTF-8\n", VMCG_CONFIG_ERROR_UNKNOWN_KEY, "\"Encoding\"",
		   NULL);
}

static void test_duplicates(void)
{
	load_fails("[group /a]\nmemory.max = 1G\n\n[group /b]\n[group /a]\nmemory.high = 1G\n",
		   VMCG_CONFIG_ERROR_DUPLICATE,
		   "test.conf:5: [group /a]:", "section given twice (first on line 1)", NULL);
	load_fails("[daemon]\n[daemon]\n", VMCG_CONFIG_ERROR_DUPLICATE,
		   "test.conf:2: [daemon]:", NULL);
	load_fails("[vm web1]\nqmp = /a\n[vm web1]\nqmp = /b\n", VMCG_CONFIG_ERROR_DUPLICATE,
		   "test.conf:3: [vm web1]:", "first on line 1", NULL);
	load_fails("[group /a]\nmemory.max = 1G\nmemory.high = 1G\nmemory.max = 2G\n",
		   VMCG_CONFIG_ERROR_DUPLICATE,
		   "test.conf:4: [group /a] memory.max:", "key given twice (first on line 2)",
		   NULL);
	load_fails("[daemon]\nbackstop = true\nbackstop=false\n", VMCG_CONFIG_ERROR_DUPLICATE,
		   "test.conf:3: [daemon] backstop:", NULL);
	/* Same VM name, different case: two VMs (libvirt names are case-sensitive). */
	{
		g_autoptr(VmcgConfig) c = load_ok("[vm web1]\nqmp = /a\n[vm WEB1]\nqmp = /b\n");

		g_assert_cmpuint(c->n_vms, ==, 2);
	}
}

static void test_groups(void)
{
	g_autofree char *deep = NULL;
	g_autofree char *too_deep = NULL;
	g_autofree char *long_name = g_strnfill(VMCG_NAME_MAX + 1, 'n');
	g_autoptr(GString) s = g_string_new("[group ");

	load_fails("[group tenants]\n", VMCG_CONFIG_ERROR_INVALID,
		   "test.conf:1: [group tenants]:", "invalid group path \"tenants\"", NULL);
	load_fails("[group /tenants/]\n", VMCG_CONFIG_ERROR_INVALID, "[group /tenants/]:", NULL);
	load_fails("[group //tenants]\n", VMCG_CONFIG_ERROR_INVALID, NULL);
	load_fails("[group /a/../b]\n", VMCG_CONFIG_ERROR_INVALID, NULL);
	load_fails("[group /a/./b]\n", VMCG_CONFIG_ERROR_INVALID, NULL);
	load_fails("[group /a b]\n", VMCG_CONFIG_ERROR_INVALID, "[group /a b]:", NULL);
	load_fails("[group  /a]\n", VMCG_CONFIG_ERROR_INVALID, NULL);
	load_fails("[group /a ]\n", VMCG_CONFIG_ERROR_INVALID, NULL);
	load_fails("[group /caf\xc3\xa9]\n", VMCG_CONFIG_ERROR_INVALID, NULL);
	deep = g_strdup_printf("[group /%s]\n", long_name);
	load_fails(deep, VMCG_CONFIG_ERROR_INVALID, "too long", NULL);
	for (int i = 0; i < VMCG_DEPTH_MAX + 1; i++)
		g_string_append(s, "/d");
	g_string_append(s, "]\n");
	too_deep = g_string_free(g_steal_pointer(&s), FALSE);
	load_fails(too_deep, VMCG_CONFIG_ERROR_INVALID, "too long", "16 levels", NULL);

	/* The root takes no knobs; an empty [group /] is harmless and yields nothing. */
	load_fails("[group /]\nmemory.max = 1G\n", VMCG_CONFIG_ERROR_INVALID,
		   "test.conf:2: [group /] memory.max:", "root group takes no settings", NULL);
	load_fails("[group /]\noom-action = pause\n", VMCG_CONFIG_ERROR_INVALID,
		   "[group /] oom-action:", NULL);
	load_fails("[group /]\nmemory.mx = 1G\n", VMCG_CONFIG_ERROR_UNKNOWN_KEY, NULL);
	{
		g_autoptr(VmcgConfig) c = load_ok("[group /]\n[group /a]\n");

		g_assert_cmpuint(c->n_groups, ==, 1);
		g_assert_cmpstr(c->groups[0].path, ==, "/a");
		g_assert_cmpuint(c->groups[0].set, ==, 0);
	}

	/* File order, children before parents allowed; ancestors implied. */
	{
		g_autoptr(VmcgConfig) c = load_ok("[group /x/y/z]\n[group /b]\n[group /x]\n");

		g_assert_cmpuint(c->n_groups, ==, 3);
		g_assert_cmpstr(c->groups[0].path, ==, "/x/y/z");
		g_assert_cmpstr(c->groups[1].path, ==, "/b");
		g_assert_cmpstr(c->groups[2].path, ==, "/x");
	}
}

static void test_vms(void)
{
	g_autofree char *long_name = g_strnfill(VMCG_VM_NAME_MAX + 1, 'v');
	g_autofree char *text = NULL;

	load_fails("[vm web1]\ngroup = /tenants\n", VMCG_CONFIG_ERROR_MISSING,
		   "test.conf:1: [vm web1]:", "qmp is required", NULL);
	load_fails("[vm web1]\nqmp = /q\ngroup = /tenants/acne\n[group /tenants/acme]\n",
		   VMCG_CONFIG_ERROR_INVALID,
		   "test.conf:3: [vm web1] group:", "group /tenants/acne is not declared",
		   "[group /tenants/acne]", NULL);
	load_fails("[vm web1]\nqmp = /q\ngroup = tenants\n", VMCG_CONFIG_ERROR_INVALID,
		   "test.conf:3: [vm web1] group:", "invalid group path", NULL);
	load_fails("[vm web1]\nqmp = /q\ngroup = /a/\n", VMCG_CONFIG_ERROR_INVALID,
		   "[vm web1] group:", NULL);
	/* A prefix that is not a whole component is no ancestor. */
	load_fails("[group /tenants/acme]\n[vm w]\nqmp = /q\ngroup = /ten\n",
		   VMCG_CONFIG_ERROR_INVALID, "[vm w] group:", NULL);
	load_fails("[vm a/b]\nqmp = /q\n", VMCG_CONFIG_ERROR_INVALID,
		   "[vm a/b]:", "invalid VM name", NULL);
	load_fails("[vm  web1]\nqmp = /q\n", VMCG_CONFIG_ERROR_INVALID, "exactly one space", NULL);
	load_fails("[vm web1 ]\nqmp = /q\n", VMCG_CONFIG_ERROR_INVALID, NULL);
	text = g_strdup_printf("[vm %s]\nqmp = /q\n", long_name);
	load_fails(text, VMCG_CONFIG_ERROR_INVALID, "longer than 128 bytes", NULL);

	/* Declared, implied (an ancestor of a declared group) and the root are fine. */
	{
		g_autoptr(VmcgConfig) c = load_ok("[vm a]\nqmp = /a\ngroup = /t/acme\n"
						  "[vm b]\nqmp = /b\ngroup = /t\n"
						  "[vm c]\nqmp = /c\ngroup = /\n"
						  "[group /t/acme]\n"
						  "[vm d]\nqmp = /d\n");

		g_assert_cmpuint(c->n_vms, ==, 4);
		g_assert_cmpstr(c->vms[0].group_path, ==, "/t/acme");
		g_assert_cmpstr(c->vms[1].group_path, ==, "/t");
		g_assert_cmpstr(c->vms[2].group_path, ==, "/");
		g_assert_cmpstr(c->vms[3].group_path, ==, "/");
		g_assert_cmpstr(c->vms[3].name, ==, "d");
		g_assert_cmpuint(c->vms[3].line, ==, 11);
	}
}

static void test_encoding(void)
{
	static const char nul[] = "[daemon]\nbackstop = true\0\n";
	g_autoptr(VmcgConfig) c = NULL;
	g_autoptr(GError) error = NULL;

	load_fails("[daemon]\nwrite-group = \xff\n", VMCG_CONFIG_ERROR_ENCODING,
		   "test.conf:2:", "invalid UTF-8 at byte 23", NULL);
	load_fails("[vm caf\xc3]\n", VMCG_CONFIG_ERROR_ENCODING, "test.conf:1:", NULL);
	load_fails("\xef\xbb\xbf[daemon]\n", VMCG_CONFIG_ERROR_ENCODING, "byte-order mark", NULL);
	load_fails("[daemon]\n\n\x01\n", VMCG_CONFIG_ERROR_ENCODING,
		   "test.conf:3:", "control character 0x01", NULL);
	load_fails("[daemon]\rbackstop = true\n", VMCG_CONFIG_ERROR_ENCODING,
		   "test.conf:1:", "carriage return", NULL);
	load_fails("[daemon]\r", VMCG_CONFIG_ERROR_ENCODING, NULL);
	load_fails("[daemon]\n\vbackstop = true\n", VMCG_CONFIG_ERROR_ENCODING, "0x0b", NULL);
	load_fails("[vm a\x7f]\n", VMCG_CONFIG_ERROR_ENCODING, "0x7f", NULL);

	g_assert_false(vmcg_config_load_data(nul, sizeof(nul) - 1, "nul.conf", &c, &error));
	g_assert_error(error, VMCG_CONFIG_ERROR, VMCG_CONFIG_ERROR_ENCODING);
	g_assert_nonnull(strstr(error->message, "nul.conf:2: NUL byte at byte 24"));
	g_assert_null(c);
	g_clear_error(&error);

	/* UTF-8 is fine where the syntax allows it. */
	c = load_ok("# Grüße\n[vm café]\nqmp = /run/vmcg/café.qmp\n");
	g_assert_cmpstr(c->vms[0].name, ==, "café");
}

static void test_too_large(void)
{
	gsize len = VMCG_CONFIG_FILE_MAX + 1;
	g_autofree char *big = g_malloc(len + 1);
	g_autoptr(VmcgConfig) c = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *path = NULL;
	int fd;

	/* Exactly the limit is fine (comments), one byte more is not. */
	memset(big, '#', len);
	big[0] = '#';
	big[len - 2] = '\n';
	big[len - 1] = '\n';
	big[len] = '\0';
	g_assert_true(vmcg_config_load_data(big, len - 1, "big", &c, &error));
	g_assert_no_error(error);
	g_clear_pointer(&c, vmcg_config_free);
	g_assert_false(vmcg_config_load_data(big, len, "big", &c, &error));
	g_assert_error(error, VMCG_CONFIG_ERROR, VMCG_CONFIG_ERROR_TOO_LARGE);
	g_assert_true(g_str_has_prefix(error->message, "big: 1048577 bytes"));
	g_clear_error(&error);

	/* A file: refused by its size, before reading. */
	fd = g_file_open_tmp("vmcg-config-XXXXXX", &path, &error);
	g_assert_no_error(error);
	g_assert_cmpint(write(fd, big, len), ==, (ssize_t)len);
	close(fd);
	g_assert_false(vmcg_config_load_file(path, &c, &error));
	g_assert_error(error, VMCG_CONFIG_ERROR, VMCG_CONFIG_ERROR_TOO_LARGE);
	g_assert_nonnull(strstr(error->message, path));
	g_clear_error(&error);
	g_unlink(path);
}

static void test_file(void)
{
	g_autoptr(VmcgConfig) c = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *path = NULL;
	g_autofree char *dir = NULL;
	int fd;

	fd = g_file_open_tmp("vmcg-config-XXXXXX", &path, &error);
	g_assert_no_error(error);
	g_assert_cmpint(write(fd, full_text, strlen(full_text)), ==, (ssize_t)strlen(full_text));
	close(fd);
	g_assert_true(vmcg_config_load_file(path, &c, &error));
	g_assert_no_error(error);
	g_assert_cmpuint(c->n_groups, ==, 2);
	g_clear_pointer(&c, vmcg_config_free);

	/* Errors name the file. */
	fd = open(path, O_WRONLY | O_APPEND);
	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(write(fd, "bogus = 1\n", 10), ==, 10);
	close(fd);
	g_assert_false(vmcg_config_load_file(path, &c, &error));
	g_assert_error(error, VMCG_CONFIG_ERROR, VMCG_CONFIG_ERROR_UNKNOWN_KEY);
	g_assert_true(g_str_has_prefix(error->message, path));
	g_assert_nonnull(strstr(error->message, ":33: [vm web1]: unknown key \"bogus\""));
	g_clear_error(&error);
	g_unlink(path);

	g_assert_false(vmcg_config_load_file(path, &c, &error));
	g_assert_error(error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
	g_assert_nonnull(strstr(error->message, path));
	g_clear_error(&error);

	dir = g_dir_make_tmp("vmcg-config-XXXXXX", &error);
	g_assert_no_error(error);
	g_assert_false(vmcg_config_load_file(dir, &c, &error));
	g_assert_error(error, G_FILE_ERROR, G_FILE_ERROR_ISDIR);
	g_clear_error(&error);
	g_rmdir(dir);

	/* Not a regular file: read up to the limit, then refused. */
	g_assert_false(vmcg_config_load_file("/dev/zero", &c, &error));
	g_assert_error(error, VMCG_CONFIG_ERROR, VMCG_CONFIG_ERROR_TOO_LARGE);
	g_clear_error(&error);
	g_assert_true(vmcg_config_load_file("/dev/null", &c, &error));
	g_assert_no_error(error);
	assert_defaults(c);
}

static void test_equal(void)
{
	g_autoptr(VmcgConfig) a = load_ok(full_text);
	g_autoptr(VmcgConfig) b =
		load_ok("[group /tenants]\nmemory.max = 4G\nmemory.high = 3G\n"
			"memory.low = 0\nmemory.min = 0\nmemory.oom.group = no\n"
			"oom-action = notify\noverhead-in-max = off\n"
			"[group /tenants/acme]\nmemory.max = 1024M\n"
			"[vm web1]\nqmp = /run/vmcg/web1.qmp\ngroup = /tenants/acme\n"
			"floor = 131072K\n");
	g_autoptr(VmcgConfig) c = load_ok("[group /tenants]\nmemory.max = 4G\n");
	g_autoptr(VmcgConfig) d = load_ok("[group /tenants]\nmemory.max = max\n");
	g_autoptr(VmcgConfig) e = load_ok("[group /tenants]\n");
	g_autoptr(VmcgConfig) f = load_ok("[daemon]\ninterval = 2s\n");
	g_autoptr(VmcgConfig) def = vmcg_config_new_default();

	/* Same values, differently written, on other lines. */
	g_assert_true(vmcg_config_equal(a, b));
	g_assert_false(vmcg_config_equal(a, c));
	g_assert_false(vmcg_config_equal(c, d));
	/* Same values, but one was set: not equal (the set knobs differ). */
	g_assert_false(vmcg_config_equal(d, e));
	g_assert_false(vmcg_config_equal(f, def));
}

/* [vm NAME]: backend = qmp (the default, and the only one), qmp or address. */
static void test_backend(void)
{
	g_autoptr(VmcgConfig) a = load_ok("[vm a]\nqmp = /q\n");
	g_autoptr(VmcgConfig) b = load_ok("[vm a]\nbackend = qmp\nqmp = /q\n");
	g_autoptr(VmcgConfig) c = load_ok("[vm a]\nbackend = qmp\naddress = /q\n");

	g_assert_cmpstr(a->vms[0].backend, ==, "qmp");
	g_assert_cmpstr(a->vms[0].address, ==, "/q");
	g_assert_true(vmcg_config_equal(a, b));
	g_assert_true(vmcg_config_equal(a, c));
	load_fails("[vm a]\nbackend = libvirt\nqmp = /q\n", VMCG_CONFIG_ERROR_INVALID,
		   "test.conf:2: [vm a] backend:", "unknown backend \"libvirt\"", NULL);
	load_fails("[vm a]\nbackend = qmp\n", VMCG_CONFIG_ERROR_MISSING,
		   "[vm a]:", "qmp is required", NULL);
	load_fails("[vm a]\nqmp = /q\naddress = /q\n", VMCG_CONFIG_ERROR_INVALID,
		   "test.conf:3: [vm a]:", "give one of them", NULL);
	load_fails("[vm a]\naddress = q\n", VMCG_CONFIG_ERROR_INVALID,
		   "[vm a] address:", "not an absolute path", NULL);
}

/*
 * Without -c, vmcgd reads VMCG_CONFIG_DEFAULT_PATH if it exists, else the
 * embedded default; a file that exists but is bad is an error, never a
 * silent fallback to the default.
 */
static void test_load_default(void)
{
	g_autofree char *dir = g_dir_make_tmp("vmcg-config-XXXXXX", NULL);
	g_autofree char *path = g_build_filename(dir, "vmcgd.conf", NULL);
	g_autoptr(GError) error = NULL;
	const char *origin = NULL;

	{
		g_autoptr(VmcgConfig) c = NULL;
		g_autoptr(VmcgConfig) def = vmcg_config_new_default();

		g_assert_true(vmcg_config_load_default(path, &c, &origin, &error));
		g_assert_no_error(error);
		g_assert_cmpstr(origin, ==, "embedded default config");
		g_assert_true(vmcg_config_equal(c, def));
	}
	g_assert_true(g_file_set_contents(path, "[group /t]\nmemory.max = 1G\n", -1, NULL));
	{
		g_autoptr(VmcgConfig) c = NULL;

		g_assert_true(vmcg_config_load_default(path, &c, &origin, &error));
		g_assert_cmpstr(origin, ==, path);
		g_assert_cmpuint(c->n_groups, ==, 1);
	}
	g_assert_true(g_file_set_contents(path, "[group /t]\nmemory.max = 1X\n", -1, NULL));
	{
		g_autoptr(VmcgConfig) c = NULL;

		g_assert_false(vmcg_config_load_default(path, &c, &origin, &error));
		g_assert_error(error, VMCG_CONFIG_ERROR, VMCG_CONFIG_ERROR_INVALID);
		g_assert_true(g_str_has_prefix(error->message, path));
		g_assert_null(c);
	}
	g_unlink(path);
	g_rmdir(dir);
}

/*
 * The GKeyFile second opinion (config-cross-check.h, which the fuzzer runs
 * on every input): it agrees with the line scanner on every file here.
 */
static void test_cross_check(void)
{
	const char *texts[] = {
		full_text,
		vmcg_config_default_text(),
		"",
		"\n\n# only comments\n",
		"[daemon]\r\ninterval = 2s\r\n",
		"  [group /a]  \n\tmemory.max=1G#c\nmemory.high = 512M   # x\n",
		"[vm with spaces (and #)]\nqmp = /q#x\n[group /]\n",
		"[daemon]",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(texts); i++) {
		g_autofree char *diff = config_cross_check(texts[i], strlen(texts[i]));

		if (diff)
			g_error("text %zu: %s", i, diff);
	}
}

/* ---- config against API: config-merge.c, config-apply.c's record ---- */

/*
 * An object in a few words: "g /a memory.max=1G oom-action=pause" or
 * "v web group=/a floor=0"; settings not named hold the defaults (a
 * group's cgroup defaults; a VM at /run/NAME.qmp in "/"). Sizes are bytes.
 */
static VmcgMergeObject *obj(const char *spec)
{
	static const char *const gdef[] = { "0",     "0",      "max",	"max",
					    "false", "notify", "false", "max" };
	g_auto(GStrv) w = g_strsplit(spec, " ", -1);
	VmcgMergeKind kind = w[0][0] == 'g' ? VMCG_MERGE_GROUP : VMCG_MERGE_VM;
	VmcgMergeObject *o = vmcg_merge_object_new(kind, w[1]);

	G_STATIC_ASSERT(G_N_ELEMENTS(gdef) == VMCG_MERGE_G_NKEYS);
	for (unsigned k = 0; k < vmcg_merge_nkeys(kind); k++)
		o->values[k] = kind == VMCG_MERGE_GROUP ? g_strdup(gdef[k]) : NULL;
	if (kind == VMCG_MERGE_VM) {
		o->values[VMCG_MERGE_V_BACKEND] = g_strdup("qmp");
		o->values[VMCG_MERGE_V_ADDRESS] = g_strdup_printf("/run/%s.qmp", w[1]);
		o->values[VMCG_MERGE_V_GROUP] = g_strdup("/");
		o->values[VMCG_MERGE_V_FLOOR] = g_strdup("0");
		o->values[VMCG_MERGE_V_OOM_PRIORITY] = g_strdup("0");
	}
	for (guint i = 2; w[i]; i++) {
		g_auto(GStrv) kv = g_strsplit(w[i], "=", 2);
		unsigned k;

		for (k = 0; k < vmcg_merge_nkeys(kind); k++)
			if (strcmp(vmcg_merge_key_name(kind, k), kv[0]) == 0)
				break;
		g_assert_cmpuint(k, <, vmcg_merge_nkeys(kind));
		g_free(o->values[k]);
		o->values[k] = strcmp(kv[1], "-") == 0 ? NULL : g_strdup(kv[1]);
	}
	return o;
}

/* A list from "|"-separated objects; "" is empty, NULL stays NULL (no record). */
static GPtrArray *objs(const char *specs)
{
	GPtrArray *list;
	g_auto(GStrv) parts = NULL;

	if (!specs)
		return NULL;
	list = vmcg_merge_list_new();
	parts = g_strsplit(specs, "|", -1);
	for (guint i = 0; parts[i]; i++)
		if (*g_strstrip(parts[i]))
			g_ptr_array_add(list, obj(parts[i]));
	return list;
}

static const char *const op_names[] = { "create", "update", "replace", "remove" };

/*
 * Per object and per setting, config against the record ("seen", NULL:
 * no record) against the tree ("running"). Actions are "op kind name" and
 * for updates the settings applied; notes "what kind name [key]".
 */
static const struct {
	const char *what, *config, *seen, *running;
	const char *actions; /* "; "-separated, in the order to apply */
	const char *notes;
} merge_cases[] = {
	/* first start: nothing running, no record: the config is created */
	{ "fresh", "g /a memory.max=1073741824 | v w group=/a", NULL, "", "create g /a; create v w",
	  "" },
	{ "unchanged", "g /a memory.max=1073741824", "g /a memory.max=1073741824",
	  "g /a memory.max=1073741824", "", "" },
	/* The operator edits the file: the edit wins over the state (the bug). */
	{ "file edited", "g /a memory.max=268435456", "g /a memory.max=1073741824",
	  "g /a memory.max=1073741824", "update g /a memory.max", "applied g /a memory.max" },
	/* ... even over a value the API set since */
	{ "file edited over API", "g /a memory.max=268435456", "g /a memory.max=1073741824",
	  "g /a memory.max=536870912", "update g /a memory.max", "applied g /a memory.max" },
	/* The API changed it, the file did not: the API's value stays, with a warning. */
	{ "API changed", "g /a memory.max=1073741824", "g /a memory.max=1073741824",
	  "g /a memory.max=536870912", "", "conflict g /a memory.max" },
	/* per setting: one of each in the same group */
	{ "per setting", "g /a memory.max=268435456 memory.high=1024",
	  "g /a memory.max=1073741824 memory.high=1024",
	  "g /a memory.max=1073741824 memory.high=4096 oom-action=pause", "update g /a memory.max",
	  "conflict g /a memory.high; applied g /a memory.max; conflict g /a oom-action" },
	/* edited back to what the API set: nothing to do, nothing to say */
	{ "file meets API", "g /a memory.max=536870912", "g /a memory.max=1073741824",
	  "g /a memory.max=536870912", "", "" },
	/* no record (first start with one): the state's value stays, with a warning */
	{ "no record", "g /a memory.max=268435456", NULL, "g /a memory.max=1073741824", "",
	  "unrecorded g /a memory.max" },
	/* a record that lacks a setting: as changed */
	{ "record lacks key", "g /a memory.max=268435456", "g /a memory.max=-",
	  "g /a memory.max=1073741824", "update g /a memory.max", "applied g /a memory.max" },
	/* a new section for an object the API made: the config's values apply */
	{ "new section", "g /a memory.max=268435456", "", "g /a memory.max=1073741824",
	  "update g /a memory.max", "adopted g /a memory.max" },
	/* deleted through the API, still declared: created again */
	{ "deleted by API", "g /a", "g /a", "", "create g /a", "recreated g /a" },
	/* section removed, object untouched by the API: removed */
	{ "section removed", "", "g /a memory.max=1073741824", "g /a memory.max=1073741824",
	  "remove g /a", "removed g /a" },
	/* section removed, but the API changed it: it stays, the API's */
	{ "removed but API's", "", "g /a memory.max=1073741824", "g /a memory.max=536870912", "",
	  "kept g /a memory.max" },
	/* section removed, but an API-made VM is in it: it stays */
	{ "removed but busy", "", "g /a", "g /a | v w group=/a", "", "busy g /a" },
	/* ... and so does its parent, whose section went too */
	{ "removed parent of busy", "", "g /a | g /a/b", "g /a | g /a/b | v w group=/a/b", "",
	  "busy g /a/b; busy g /a" },
	/* a tree removed with its VM: the VM first, then children before parents */
	{ "removed tree", "", "g /a | g /a/b | v w group=/a/b", "g /a | g /a/b | v w group=/a/b",
	  "remove v w; remove g /a/b; remove g /a", "removed v w; removed g /a/b; removed g /a" },
	/* only the API made it: untouched */
	{ "API only", "", "", "g /api | v w group=/api", "", "" },
	/* VMs: the file moves a VM, the API's floor stays */
	{ "vm moved by file", "g /a | g /b | v w group=/b", "g /a | g /b | v w group=/a",
	  "g /a | g /b | v w group=/a floor=4096", "update v w group",
	  "applied v w group; conflict v w floor" },
	/* a new address needs a new registration */
	{ "vm address", "v w address=/run/new.qmp", "v w", "v w", "replace v w address",
	  "applied v w address" },
	/* created groups come parents first, before the VMs that go in them */
	{ "order", "v w group=/a/b | g /a/b | g /a", "", "",
	  "create g /a; create g /a/b; create v w", "" },
	/* the API moved the VM out: its old group can go */
	{ "vm moved out by API", "v w", "g /a | v w group=/a", "g /a | v w", "remove g /a",
	  "removed g /a" },
};

static char *describe_actions(const VmcgMergeResult *r)
{
	g_autoptr(GString) s = g_string_new("");

	for (guint i = 0; i < r->actions->len; i++) {
		const VmcgMergeAction *a = &g_array_index(r->actions, VmcgMergeAction, i);

		g_string_append_printf(s, "%s%s %c %s", i ? "; " : "", op_names[a->op],
				       a->object->kind == VMCG_MERGE_GROUP ? 'g' : 'v',
				       a->object->name);
		for (unsigned k = 0; k < vmcg_merge_nkeys(a->object->kind); k++)
			if (a->op != VMCG_MERGE_CREATE && a->op != VMCG_MERGE_REMOVE &&
			    (a->keys & 1u << k))
				g_string_append_printf(s, " %s",
						       vmcg_merge_key_name(a->object->kind, k));
	}
	return g_string_free(g_steal_pointer(&s), FALSE);
}

static char *describe_notes(const VmcgMergeResult *r)
{
	g_autoptr(GString) s = g_string_new("");

	for (guint i = 0; i < r->notes->len; i++) {
		const VmcgMergeNote *n = r->notes->pdata[i];
		g_autofree char *text = vmcg_merge_note_format(n);

		g_string_append_printf(s, "%s%s %c %s", i ? "; " : "",
				       vmcg_merge_note_kind_name(n->what),
				       n->kind == VMCG_MERGE_GROUP ? 'g' : 'v', n->name);
		if (n->key >= 0)
			g_string_append_printf(s, " %s",
					       vmcg_merge_key_name(n->kind, (unsigned)n->key));
		/* every note reads as a sentence that names its object */
		g_assert_nonnull(strstr(text, n->name));
		g_test_message("%s", text);
	}
	return g_string_free(g_steal_pointer(&s), FALSE);
}

static void test_merge(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(merge_cases); i++) {
		g_autoptr(GPtrArray) config = objs(merge_cases[i].config);
		g_autoptr(GPtrArray) seen = objs(merge_cases[i].seen);
		g_autoptr(GPtrArray) running = objs(merge_cases[i].running);
		g_auto(VmcgMergeResult) r = { 0 };
		g_autofree char *actions = NULL, *notes = NULL;

		vmcg_merge(config, seen, running, &r);
		actions = describe_actions(&r);
		notes = describe_notes(&r);
		if (strcmp(actions, merge_cases[i].actions) || strcmp(notes, merge_cases[i].notes))
			g_error("%s:\n  actions \"%s\", want \"%s\"\n  notes \"%s\", want \"%s\"",
				merge_cases[i].what, actions, merge_cases[i].actions, notes,
				merge_cases[i].notes);
	}
}

/* The merged values of an update: the config's where applied, the tree's elsewhere. */
static void test_merge_values(void)
{
	g_autoptr(GPtrArray) config = objs("v w group=/b floor=0");
	g_autoptr(GPtrArray) seen = objs("v w group=/a floor=0");
	g_autoptr(GPtrArray) running = objs("v w group=/a floor=4096");
	g_auto(VmcgMergeResult) r = { 0 };
	const VmcgMergeAction *a;

	vmcg_merge(config, seen, running, &r);
	g_assert_cmpuint(r.actions->len, ==, 1);
	a = &g_array_index(r.actions, VmcgMergeAction, 0);
	g_assert_cmpstr(a->object->values[VMCG_MERGE_V_GROUP], ==, "/b");
	g_assert_cmpstr(a->object->values[VMCG_MERGE_V_FLOOR], ==, "4096");
	g_assert_true(vmcg_merge_note_is_warning(r.notes->pdata[1]));
	g_assert_false(vmcg_merge_note_is_warning(r.notes->pdata[0]));
}

/* The file's values as the tree keeps them: sizes in whole pages, so that 1.5K == 4K. */
static void test_merge_from_config(void)
{
	g_autoptr(VmcgConfig) c =
		load_ok("[group /a]\nmemory.max = 6K\nmemory.high = max\noom-action = pause\n"
			"[vm w]\nqmp = /run/w.qmp\ngroup = /a\nfloor = max\noom-priority = -5\n");
	g_autoptr(GPtrArray) l = vmcg_merge_from_config(c);
	const VmcgMergeObject *g = l->pdata[0], *v = l->pdata[1];

	g_assert_cmpuint(l->len, ==, 2);
	g_assert_cmpstr(g->values[VMCG_MERGE_G_MAX], ==, "4096");
	g_assert_cmpstr(g->values[VMCG_MERGE_G_HIGH], ==, "max");
	g_assert_cmpstr(g->values[VMCG_MERGE_G_OOM_ACTION], ==, "pause");
	g_assert_cmpstr(v->values[VMCG_MERGE_V_BACKEND], ==, "qmp");
	g_assert_cmpstr(v->values[VMCG_MERGE_V_ADDRESS], ==, "/run/w.qmp");
	g_assert_cmpstr(v->values[VMCG_MERGE_V_GROUP], ==, "/a");
	g_assert_cmpstr(v->values[VMCG_MERGE_V_FLOOR], ==, "max");
	g_assert_cmpstr(v->values[VMCG_MERGE_V_OOM_PRIORITY], ==, "-5");
}

/* [daemon] on reload: what needs a restart is named and stays as it runs. */
static void test_reload_daemon(void)
{
	g_autoptr(VmcgConfig) running = load_ok("[daemon]\nstats-interval = 2s\n");
	static const struct {
		const char *text;
		const char *restart; /* ", "-separated */
	} cases[] = {
		{ "[daemon]\nstats-interval = 2s\n", "" },
		{ "[daemon]\nstats-interval = 2s\ninterval = 2s\nreclaim-step = 1M\nhysteresis = "
		  "1M\nvmpressure-hold = 1s\nstats-max-age = 20s\n",
		  "" },
		{ "[daemon]\nsocket = /x.sock\nstate = /x.json\nhooks-socket =\nwrite-group = "
		  "\nrecursive-protection = true\nstock-batch = 1\nbackstop = true\n"
		  "backstop-overhead = 1M\nstats-interval = 2s\n",
		  "socket, state, hooks-socket, write-group, recursive-protection, stock-batch, "
		  "backstop, backstop-overhead" },
		{ "[daemon]\nstats-interval = 5s\nstats-max-age = 5s\n",
		  "stats-interval, stats-max-age" },
		{ "[daemon]\nstats-interval = 2s\n[cluster]\netcd = http://e:2379\nnode = n\n"
		  "ca-file = /ca\ncert-file = /c\nkey-file = /k\nlease-ttl = 20s\nhysteresis = 1M\n"
		  "min-grant = 1M\nshrink-wait = 0\n",
		  "[cluster] etcd, [cluster] node, [cluster] ca-file, [cluster] cert-file, "
		  "[cluster] key-file, [cluster] lease-ttl, [cluster] hysteresis, [cluster] "
		  "min-grant, [cluster] shrink-wait" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(VmcgConfig) next = load_ok(cases[i].text);
		g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func(g_free);
		g_autofree char *got = NULL;

		vmcg_config_reload_daemon(running, next, keys);
		g_ptr_array_add(keys, NULL);
		got = g_strjoinv(", ", (char **)keys->pdata);
		g_assert_cmpstr(got, ==, cases[i].restart);
		/* what needs a restart is back at the running value */
		g_assert_cmpstr(next->socket_path, ==, running->socket_path);
		g_assert_cmpuint(next->stats_interval_usec, ==, running->stats_interval_usec);
		g_assert_cmpuint(next->stats_max_age_usec, >=, next->stats_interval_usec);
		g_assert_true(next->backstop == running->backstop);
		g_assert_cmpstr(next->cluster_etcd, ==, running->cluster_etcd);
		g_assert_cmpuint(next->cluster_lease_ttl_usec, ==, running->cluster_lease_ttl_usec);
	}
}

/* [cluster]: its defaults, a full section, and what is refused with file:line. */
static void test_cluster_section(void)
{
	g_autoptr(VmcgConfig) d = load_ok("");
	g_autoptr(VmcgConfig) c = NULL;
	static const struct {
		const char *text, *want;
	} bad[] = {
		{ "[cluster /x]\n", "takes no name" },
		{ "[cluster]\netcd = 127.0.0.1:2379\n",
		  "t.conf:2: [cluster] etcd: invalid etcd endpoints" },
		{ "[cluster]\nnode = a b\n", "invalid node name" },
		{ "[cluster]\nlease-ttl = 1s\n", "out of range" },
		{ "[cluster]\nlease-ttl = 2.5s\n", "whole number of seconds" },
		{ "[cluster]\nttl = 2s\n", "unknown key" },
		{ "[cluster]\nca-file = ca.pem\n", "not an absolute path" },
		{ "[clustre]\n", "unknown section" },
		{ "[group /a]\ncluster.memory.max = lots\n", "invalid size" },
	};

	g_assert_cmpstr(d->cluster_etcd, ==, "");
	g_assert_cmpstr(d->cluster_node, ==, "");
	g_assert_cmpuint(d->cluster_lease_ttl_usec, ==, 10 * G_USEC_PER_SEC);
	g_assert_cmpuint(d->cluster_hysteresis_bytes, ==, 64 << 20);
	g_assert_cmpuint(d->cluster_min_grant_bytes, ==, 0);
	g_assert_cmpuint(d->cluster_shrink_wait_usec, ==, 30 * G_USEC_PER_SEC);

	c = load_ok(
		"[cluster]\netcd = https://a:2379 , https://b:2379\nnode = h1\n"
		"ca-file = /etc/ca.pem\nlease-ttl = 30s\n[group /t]\ncluster.memory.max = 8G\n");
	g_assert_cmpstr(c->cluster_etcd, ==, "https://a:2379 , https://b:2379");
	g_assert_cmpstr(c->cluster_node, ==, "h1");
	g_assert_cmpstr(c->cluster_ca_file, ==, "/etc/ca.pem");
	g_assert_cmpuint(c->cluster_lease_ttl_usec, ==, 30 * G_USEC_PER_SEC);
	g_assert_cmpuint(c->groups[0].cluster_max_bytes, ==, UINT64_C(8) << 30);
	g_assert_true(c->groups[0].set & VMCG_CONFIG_KNOB_CLUSTER_MAX);

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(VmcgConfig) x = NULL;

		g_assert_false(vmcg_config_load_data(bad[i].text, (gsize)-1, "t.conf", &x, &error));
		if (!strstr(error->message, bad[i].want))
			g_error("%s: got \"%s\", want \"%s\"", bad[i].text, error->message,
				bad[i].want);
	}
}

/* The record read back is untrusted: garbage is an error that says what is wrong. */
static void test_seen_record(void)
{
	static const struct {
		const char *text, *want; /* want NULL: accepted */
	} cases[] = {
		{ "{\"version\":1}", NULL },
		{ "{\"version\":1,\"groups\":{\"/a\":{\"memory.max\":\"1\"}},\"vms\":{\"w\":{}}}\n",
		  NULL },
		{ "", "not JSON" },
		{ "{\"version\":1", "not JSON" },
		{ "{\"version\":1} x", "not JSON" },
		{ "[]", "not a JSON object" },
		{ "{}", "version must be 1" },
		{ "{\"version\":2}", "version must be 1" },
		{ "{\"version\":\"1\"}", "version must be 1" },
		{ "{\"version\":1,\"x\":1}", "unknown field \"x\"" },
		{ "{\"version\":1,\"groups\":[]}", "groups must be an object" },
		{ "{\"version\":1,\"groups\":{\"a\":{}}}", "invalid group path \"a\"" },
		{ "{\"version\":1,\"groups\":{\"/\":{}}}", "invalid group path \"/\"" },
		{ "{\"version\":1,\"groups\":{\"/a/../b\":{}}}", "invalid group path" },
		{ "{\"version\":1,\"vms\":{\"a/b\":{}}}", "invalid VM name" },
		{ "{\"version\":1,\"groups\":{\"/a\":1}}", "not an object" },
		{ "{\"version\":1,\"groups\":{\"/a\":{\"memory.mx\":\"1\"}}}",
		  "unknown setting \"memory.mx\"" },
		{ "{\"version\":1,\"groups\":{\"/a\":{\"memory.max\":1}}}", "not a string" },
		{ "{\"version\":1,\"vms\":{\"w\":{\"floor\":null}}}", "not a string" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(GPtrArray) l = NULL;
		gboolean ok =
			vmcg_config_seen_parse(cases[i].text, strlen(cases[i].text), &l, &error);

		if (!cases[i].want) {
			g_assert_no_error(error);
			g_assert_true(ok);
			continue;
		}
		if (ok)
			g_error("accepted: %s", cases[i].text);
		g_assert_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
		if (!strstr(error->message, cases[i].want))
			g_error("%s: message \"%s\" lacks \"%s\"", cases[i].text, error->message,
				cases[i].want);
		g_assert_null(l);
	}
	/* a NUL inside */
	{
		g_autoptr(GError) error = NULL;
		g_autoptr(GPtrArray) l = NULL;

		g_assert_false(vmcg_config_seen_parse("{\"version\":1}\0", 14, &l, &error));
		g_assert_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
	}
}

/* Written atomically and read back the same; a missing record is no record. */
static void test_seen_roundtrip(void)
{
	g_autofree char *dir = g_dir_make_tmp("test-config-XXXXXX", NULL);
	g_autofree char *path = g_build_filename(dir, "state.json.config-seen", NULL);
	g_autoptr(GPtrArray) list = objs("g /a memory.max=4096 | g /a/b | v w group=/a/b");
	g_autoptr(GPtrArray) back = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GDir) d = NULL;
	guint n = 0;

	g_assert_true(vmcg_config_seen_load(path, &back, &error));
	g_assert_no_error(error);
	g_assert_null(back);
	g_assert_true(vmcg_config_seen_save(path, list, &error));
	g_assert_no_error(error);
	g_assert_true(vmcg_config_seen_load(path, &back, &error));
	g_assert_cmpuint(back->len, ==, 3);
	for (guint i = 0; i < 3; i++) {
		const VmcgMergeObject *a = list->pdata[i], *b = back->pdata[i];

		g_assert_cmpstr(a->name, ==, b->name);
		for (unsigned k = 0; k < VMCG_MERGE_NKEYS_MAX; k++)
			g_assert_cmpstr(a->values[k], ==, b->values[k]);
	}
	/* no temporary file left behind */
	d = g_dir_open(dir, 0, NULL);
	while (g_dir_read_name(d))
		n++;
	g_assert_cmpuint(n, ==, 1);
	g_assert_true(g_file_set_contents(path, "{\"version\": 1, \"groups\": 7}", -1, NULL));
	g_clear_pointer(&back, g_ptr_array_unref);
	g_assert_false(vmcg_config_seen_load(path, &back, &error));
	g_assert_true(g_str_has_prefix(error->message, path));
	g_unlink(path);
	g_rmdir(dir);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/config/defaults", test_defaults);
	g_test_add_func("/config/default-text", test_default_text);
	g_test_add_func("/config/full", test_full);
	g_test_add_func("/config/values", test_values);
	g_test_add_func("/config/layout", test_layout);
	g_test_add_func("/config/durations", test_durations);
	g_test_add_func("/config/sizes", test_sizes_in_file);
	g_test_add_func("/config/other-values", test_other_values);
	g_test_add_func("/config/paths", test_paths);
	g_test_add_func("/config/syntax", test_syntax_errors);
	g_test_add_func("/config/unknown", test_unknown);
	g_test_add_func("/config/duplicates", test_duplicates);
	g_test_add_func("/config/groups", test_groups);
	g_test_add_func("/config/vms", test_vms);
	g_test_add_func("/config/encoding", test_encoding);
	g_test_add_func("/config/too-large", test_too_large);
	g_test_add_func("/config/file", test_file);
	g_test_add_func("/config/equal", test_equal);
	g_test_add_func("/config/backend", test_backend);
	g_test_add_func("/config/load-default", test_load_default);
	g_test_add_func("/config/cross-check", test_cross_check);
	g_test_add_func("/config/merge", test_merge);
	g_test_add_func("/config/merge-values", test_merge_values);
	g_test_add_func("/config/merge-from-config", test_merge_from_config);
	g_test_add_func("/config/reload-daemon", test_reload_daemon);
	g_test_add_func("/config/cluster-section", test_cluster_section);
	g_test_add_func("/config/seen-record", test_seen_record);
	g_test_add_func("/config/seen-roundtrip", test_seen_roundtrip);
	return g_test_run();
}
