// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The libvirt backend's pure decisions (daemon/libvirt-adopt.c), libvirt's
 * pid file and command line (daemon/libvirt-conn.c's pure helpers), and
 * the policy's "someone else moved the balloon" (daemon/policy.c): tables.
 */
#include <glib.h>
#include <libvirt/virterror.h>
#include <string.h>

#include "libvirt-adopt.h"
#include "policy.h"

#define MIB(x) ((uint64_t)(x) << 20)
#define KIB(x) ((uint64_t)(x))

/* ---- where a domain goes ---- */

static bool exists_in(const char *path, void *userdata)
{
	for (const char *const *p = userdata; *p; p++)
		if (strcmp(*p, path) == 0)
			return true;
	return false;
}

typedef struct PlanCase {
	const char *name;
	/* the domain */
	bool has_meta;
	const char *meta_group;
	bool meta_has_floor;
	uint64_t meta_floor;
	bool meta_knob; /* memory.max in the metadata */
	bool bad;	/* a problem in the metadata */
	uint64_t min_guarantee;
	bool has_balloon, vfio, hugepages, locked;
	/* the tree, and the default group */
	const char *default_group;
	/* expected */
	const char *group;
	bool create;
	bool fallback;
	bool has_floor;
	uint64_t floor;
	const char *no_balloon; /* a word of the reason, NULL: none */
} PlanCase;

static const char *const tree[] = { "/", "/t", "/t/a", "/fallback", NULL };

static const PlanCase plan_cases[] = {
	{ "no metadata: default group", .has_balloon = true, .default_group = "/fallback",
	  .group = "/fallback" },
	{ "no metadata, default group missing: root", .has_balloon = true, .default_group = "/gone",
	  .group = "/" },
	{ "metadata group exists", .has_meta = true, .meta_group = "/t/a", .has_balloon = true,
	  .default_group = "/fallback", .group = "/t/a" },
	{ "metadata group missing, no knobs: fallback", .has_meta = true, .meta_group = "/t/b",
	  .has_balloon = true, .default_group = "/fallback", .group = "/fallback",
	  .fallback = true },
	{ "metadata group missing with a knob: created", .has_meta = true, .meta_group = "/t/b",
	  .meta_knob = true, .has_balloon = true, .default_group = "/fallback", .group = "/t/b",
	  .create = true },
	{ "metadata without a group: default", .has_meta = true, .meta_has_floor = true,
	  .meta_floor = MIB(64), .has_balloon = true, .default_group = "/fallback",
	  .group = "/fallback", .has_floor = true, .floor = MIB(64) },
	{ "invalid metadata: fallback, no floor", .bad = true, .has_balloon = true,
	  .default_group = "/fallback", .group = "/fallback", .fallback = true },
	{ "min_guarantee alone is a floor", .min_guarantee = MIB(128), .has_balloon = true,
	  .default_group = "/", .group = "/", .has_floor = true, .floor = MIB(128) },
	{ "the larger floor wins (min_guarantee)", .has_meta = true, .meta_has_floor = true,
	  .meta_floor = MIB(64), .min_guarantee = MIB(128), .has_balloon = true,
	  .default_group = "/", .group = "/", .has_floor = true, .floor = MIB(128) },
	{ "the larger floor wins (metadata)", .has_meta = true, .meta_has_floor = true,
	  .meta_floor = MIB(256), .min_guarantee = MIB(128), .has_balloon = true,
	  .default_group = "/", .group = "/", .has_floor = true, .floor = MIB(256) },
	{ "no balloon device", .default_group = "/", .group = "/", .no_balloon = "device" },
	{ "VFIO", .has_balloon = true, .vfio = true, .default_group = "/", .group = "/",
	  .no_balloon = "VFIO" },
	{ "hugepages", .has_balloon = true, .hugepages = true, .default_group = "/", .group = "/",
	  .no_balloon = "hugepage" },
	{ "locked", .has_balloon = true, .locked = true, .default_group = "/", .group = "/",
	  .no_balloon = "locked" },
	{ "no device beats VFIO", .vfio = true, .default_group = "/", .group = "/",
	  .no_balloon = "device" },
};

static void test_plan(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(plan_cases); i++) {
		const PlanCase *c = &plan_cases[i];
		g_autoptr(GPtrArray) problems = g_ptr_array_new();
		VmcgDomainXml x = {
			.memory = MIB(512),
			.has_balloon = c->has_balloon,
			.vfio = c->vfio,
			.hugepages = c->hugepages,
			.locked = c->locked,
			.min_guarantee = c->min_guarantee,
			.has_meta = c->has_meta,
			.meta = { .group = (char *)c->meta_group,
				  .has_floor = c->meta_has_floor,
				  .floor = c->meta_floor,
				  .has_max = c->meta_knob,
				  .max = MIB(1024) },
			.problems = problems,
		};
		VmcgLvPlan p;

		g_test_message("%s", c->name);
		if (c->bad)
			g_ptr_array_add(problems, (gpointer) "vmcg:floor: \"12Q\" is not a size");
		vmcg_lv_plan(&x, c->default_group, exists_in, (void *)tree, &p);
		g_assert_cmpstr(p.group, ==, c->group);
		g_assert_cmpint(p.create_group, ==, c->create);
		g_assert_cmpint(p.fallback != NULL, ==, c->fallback);
		g_assert_cmpint(p.has_floor, ==, c->has_floor);
		g_assert_cmpuint(p.floor, ==, c->floor);
		if (c->no_balloon)
			g_assert_nonnull(strstr(p.no_balloon, c->no_balloon));
		else
			g_assert_null(p.no_balloon);
	}
}

/* ---- guest statistics from libvirt's balloon stats ---- */

typedef struct StatsCase {
	const char *name;
	VmcgLvStats s;
	uint64_t ram;
	bool ok;
	VmcgGuestStats want;
} StatsCase;

#define FULL(t_, u_, f_, c_)                                                               \
	.has_available = true, .has_usable = true, .has_unused = true, .has_caches = true, \
	.has_last_update = true, .available = (t_), .usable = (u_), .unused = (f_),        \
	.caches = (c_), .last_update = 1

static const StatsCase stats_cases[] = {
	{ "all there",
	  { FULL(KIB(200000), KIB(150000), KIB(100000), KIB(30000)) },
	  MIB(256),
	  true,
	  { 200000 << 10, 150000 << 10, 100000 << 10, 30000 << 10 } },
	{ "no usable (older guest): none",
	  { .has_available = true, .available = 1 },
	  MIB(256),
	  false },
	{ "no last-update: none",
	  { .has_available = true, .has_usable = true, .available = 10, .usable = 5 },
	  MIB(256),
	  false },
	{ "total above RAM: nonsense", { FULL(KIB(300000), KIB(1), 0, 0) }, MIB(256), false },
	{ "usable above total: nonsense", { FULL(KIB(1000), KIB(1001), 0, 0) }, MIB(256), false },
	{ "free above total: nonsense",
	  { FULL(KIB(1000), KIB(10), KIB(1001), 0) },
	  MIB(256),
	  false },
	{ "cache above total: nonsense",
	  { FULL(KIB(1000), KIB(10), 0, KIB(1001)) },
	  MIB(256),
	  false },
	{ "total 0: nonsense", { FULL(0, 0, 0, 0) }, MIB(256), false },
	{ "2^60 KiB: overflow refused", { FULL(UINT64_C(1) << 60, 1, 0, 0) }, 0, false },
	{ "RAM unknown: no upper check",
	  { FULL(KIB(300000), KIB(1), 0, 0) },
	  0,
	  true,
	  { 300000 << 10, 1 << 10, 0, 0 } },
};

static void test_guest_stats(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(stats_cases); i++) {
		const StatsCase *c = &stats_cases[i];
		VmcgGuestStats g = { 0 };

		g_test_message("%s", c->name);
		g_assert_cmpint(vmcg_lv_guest_stats(&c->s, c->ram, &g), ==, c->ok);
		if (!c->ok)
			continue;
		g_assert_cmpuint(g.total, ==, c->want.total);
		g_assert_cmpuint(g.available, ==, c->want.available);
		g_assert_cmpuint(g.free, ==, c->want.free);
		g_assert_cmpuint(g.cache, ==, c->want.cache);
	}
}

/* ---- errors ---- */

static void test_error_class(void)
{
	static const struct {
		int code;
		VmcgLvErrorClass want;
	} rows[] = {
		{ VIR_ERR_OPERATION_TIMEOUT, VMCG_LV_ERR_RETRY }, /* a job holds it */
		{ VIR_ERR_OPERATION_INVALID, VMCG_LV_ERR_RETRY },
		{ VIR_ERR_NO_CONNECT, VMCG_LV_ERR_RETRY },
		{ VIR_ERR_RPC, VMCG_LV_ERR_RETRY },
		{ VIR_ERR_NO_DOMAIN, VMCG_LV_ERR_GONE },
		{ VIR_ERR_OPERATION_UNSUPPORTED, VMCG_LV_ERR_NO_BALLOON },
		{ VIR_ERR_CONFIG_UNSUPPORTED, VMCG_LV_ERR_NO_BALLOON },
		{ VIR_ERR_INTERNAL_ERROR, VMCG_LV_ERR_FAIL },
		{ VIR_ERR_INVALID_ARG, VMCG_LV_ERR_FAIL },
		{ 100000, VMCG_LV_ERR_FAIL },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++)
		g_assert_cmpint(vmcg_lv_error_class(rows[i].code), ==, rows[i].want);
}

/* ---- libvirt's pid file and QEMU's command line ---- */

static void test_pid_path(void)
{
	static const struct {
		const char *uri, *name, *runtime, *want;
	} rows[] = {
		{ "qemu:///system", "web1", NULL, "/run/libvirt/qemu/web1.pid" },
		{ "qemu+unix:///system", "web1", NULL, "/run/libvirt/qemu/web1.pid" },
		{ "qemu:///session", "web1", "/run/user/1000",
		  "/run/user/1000/libvirt/qemu/run/web1.pid" },
		{ "qemu:///session", "web1", NULL, NULL },
		{ "qemu:///session", "web1", "relative", NULL },
		{ "test:///default", "web1", NULL, NULL },
		{ "qemu+ssh://h/system", "web1", NULL, NULL }, /* not this host's */
		{ "qemu:///system", "a/b", NULL, NULL },
		{ "qemu:///system", "", NULL, NULL },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		g_autofree char *p = vmcg_lv_pid_path(rows[i].uri, rows[i].name, rows[i].runtime);

		g_assert_cmpstr(p, ==, rows[i].want);
	}
}

static void test_cmdline(void)
{
#define CL(s) s, sizeof(s) - 1
	static const struct {
		const char *cmdline;
		size_t len;
		const char *name;
		bool want;
	} rows[] = {
		{ CL("/usr/bin/qemu-system-x86_64\0-name\0guest=web1,debug-threads=on\0-S\0"),
		  "web1", true },
		{ CL("qemu\0-name\0guest=web1\0"), "web1", true },
		{ CL("qemu\0-name\0guest=web10,debug-threads=on\0"), "web1", false },
		{ CL("qemu\0-name\0guest=web,debug-threads=on\0"), "web1", false },
		{ CL("qemu\0-name\0guest=a,,b,debug-threads=on\0"), "a,b", true },
		{ CL("qemu\0-name\0guest=a,,b\0"), "a,b", true },
		{ CL("qemu\0-name\0guest=a,b\0"), "a,b", false },
		{ CL("qemu\0guest=web1\0"), "web1", false }, /* not after -name */
		{ CL("qemu\0-name\0"), "web1", false },
		{ CL("qemu\0-name\0guest=web1"), "web1", true }, /* no final NUL */
		{ CL(""), "web1", false },
	};
#undef CL

	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++)
		g_assert_cmpint(
			vmcg_lv_cmdline_is_domain(rows[i].cmdline, rows[i].len, rows[i].name), ==,
			rows[i].want);
}

/* ---- someone else's balloon moves (policy.c) ---- */

static void test_balloon_external(void)
{
	static const struct {
		const char *name;
		uint64_t ref, actual, target;
		bool want;
	} rows[] = {
		{ "no target, still", MIB(256), MIB(256), 0, false },
		{ "no target, jitter within slack", MIB(256), MIB(253), 0, false },
		{ "no target, an operator's setmem", MIB(256), MIB(200), 0, true },
		{ "no target, grown back by someone", MIB(200), MIB(256), 0, true },
		{ "toward our target", MIB(256), MIB(220), MIB(200), false },
		{ "at our target", MIB(256), MIB(200), MIB(200), false },
		{ "past our target (overshoot)", MIB(256), MIB(198), MIB(200), false },
		{ "deflating toward our target", MIB(200), MIB(240), MIB(256), false },
		{ "away from our target", MIB(200), MIB(150), MIB(200), true },
		{ "away, within slack", MIB(200), MIB(197), MIB(200), false },
		{ "away while inflating toward it", MIB(220), MIB(240), MIB(200), true },
		{ "unknown reference", 0, MIB(100), MIB(200), false },
		{ "unknown size", MIB(200), 0, MIB(200), false },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		g_test_message("%s", rows[i].name);
		g_assert_cmpint(vmcg_policy_balloon_external(rows[i].ref, rows[i].actual,
							     rows[i].target, MIB(4)),
				==, rows[i].want);
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/libvirt-adopt/plan", test_plan);
	g_test_add_func("/libvirt-adopt/guest-stats", test_guest_stats);
	g_test_add_func("/libvirt-adopt/error-class", test_error_class);
	g_test_add_func("/libvirt-conn/pid-path", test_pid_path);
	g_test_add_func("/libvirt-conn/cmdline", test_cmdline);
	g_test_add_func("/policy/balloon-external", test_balloon_external);
	return g_test_run();
}
