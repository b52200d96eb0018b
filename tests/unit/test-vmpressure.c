// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests for lib/vmpressure.c, checked against mm/vmpressure.c:
 *  - vmcg_vmpressure_calc_level(): the 59/60 % and 94/95 % boundaries with
 *    the kernel's scaled arithmetic (including a case where it rounds up
 *    past plain percentage), reclaimed >= scanned, scanned == 0, values
 *    large enough to overflow the kernel's products;
 *  - window accumulation below and at VMCG_VMPRESSURE_WIN, consumption of
 *    the whole window, scanned == 0 as a no-op;
 *  - delivery over a three-level tree for each listener mode (default stops
 *    passthrough once something below fired, hierarchy gets everything,
 *    local only its own group), the level filter, order within a group;
 *  - register/unregister, including rejected input;
 *  - vmcg_vmpressure_prio();
 *  - the stored level: in the group and its ancestors, hold and expiry;
 *  - level and mode string conversions, including bad strings.
 */
#include <errno.h>
#include <glib.h>
#include <stdint.h>

#include "vmcg/vmpressure.h"

#define WIN VMCG_VMPRESSURE_WIN

/* A listener that logs its name, the level and the group it was told about. */
typedef struct Probe {
	VmcgVmpressureListener l;
	const char *name;
	VmcgVmpressure *group; /* where it is registered */
	GString *log;	       /* shared by all probes of one test */
	unsigned int count;
	VmcgVmpressureLevel last_level;
} Probe;

static void probe_fn(VmcgVmpressure *vmpr, VmcgVmpressureLevel level, void *userdata)
{
	Probe *p = userdata;

	/* The callback is told the listener's group, not the window's. */
	g_assert_true(vmpr == p->group);
	p->count++;
	p->last_level = level;
	if (p->log->len)
		g_string_append_c(p->log, ' ');
	g_string_append(p->log, p->name);
}

static void probe_add(Probe *p, GString *log, VmcgVmpressure *group, const char *name,
		      VmcgVmpressureLevel level, VmcgVmpressureMode mode)
{
	*p = (Probe){
		.l = { .fn = probe_fn, .userdata = p, .level = level, .mode = mode },
		.name = name,
		.group = group,
		.log = log,
		.last_level = VMCG_VMPRESSURE_NONE,
	};
	g_assert_cmpint(vmcg_vmpressure_register(group, &p->l), ==, 0);
}

/* root <- mid <- leaf, plus a sibling of mid for the read-out tests. */
typedef struct Tree {
	VmcgVmpressure root, mid, leaf, sibling;
	GString *log;
} Tree;

static void tree_init(Tree *t)
{
	vmcg_vmpressure_init(&t->root, NULL);
	vmcg_vmpressure_init(&t->mid, &t->root);
	vmcg_vmpressure_init(&t->leaf, &t->mid);
	vmcg_vmpressure_init(&t->sibling, &t->root);
	t->log = g_string_new(NULL);
}

static void tree_fini(Tree *t)
{
	g_string_free(t->log, TRUE);
}

/* Complete one window in @g at @level and return the log it produced. */
static const char *window(Tree *t, VmcgVmpressure *g, VmcgVmpressureLevel level)
{
	/* 0 %, 60 % and 100 % of a window left unreclaimed. */
	static const uint64_t reclaimed[] = {
		[VMCG_VMPRESSURE_LOW] = WIN,
		[VMCG_VMPRESSURE_MEDIUM] = WIN * 2 / 5 - 1,
		[VMCG_VMPRESSURE_CRITICAL] = 0,
	};

	g_string_truncate(t->log, 0);
	g_assert_cmpint(vmcg_vmpressure_account(g, 1000, WIN, reclaimed[level]), ==, level);
	return t->log->str;
}

/* ---- calc_level ---- */

static void test_calc_level_medium_boundary(void)
{
	/*
	 * 512 scanned: 204 reclaimed gives scale 716,
	 * 716 - 204 * 716 / 512 = 716 - 285 = 431, 431 * 100 / 716 = 60;
	 * 205 reclaimed gives 717 - 287 = 430, 43000 / 717 = 59.
	 */
	g_assert_cmpint(vmcg_vmpressure_calc_level(512, 204), ==, VMCG_VMPRESSURE_MEDIUM);
	g_assert_cmpint(vmcg_vmpressure_calc_level(512, 205), ==, VMCG_VMPRESSURE_LOW);
	/* 100 scanned, 40 reclaimed: 140 - 56 = 84, 8400 / 140 = 60 exactly. */
	g_assert_cmpint(vmcg_vmpressure_calc_level(100, 40), ==, VMCG_VMPRESSURE_MEDIUM);
	/* 41 reclaimed: 141 - 57 = 84, 8400 / 141 = 59. */
	g_assert_cmpint(vmcg_vmpressure_calc_level(100, 41), ==, VMCG_VMPRESSURE_LOW);
}

static void test_calc_level_critical_boundary(void)
{
	/*
	 * 512 scanned: 25 reclaimed gives 537 - 26 = 511, 51100 / 537 = 95;
	 * 26 reclaimed gives 538 - 27 = 511, 51100 / 538 = 94.
	 */
	g_assert_cmpint(vmcg_vmpressure_calc_level(512, 25), ==, VMCG_VMPRESSURE_CRITICAL);
	g_assert_cmpint(vmcg_vmpressure_calc_level(512, 26), ==, VMCG_VMPRESSURE_MEDIUM);
	/* 100 scanned, 5 reclaimed: 105 - 5 = 100, 10000 / 105 = 95. */
	g_assert_cmpint(vmcg_vmpressure_calc_level(100, 5), ==, VMCG_VMPRESSURE_CRITICAL);
	/* 6 reclaimed: 106 - 6 = 100, 10000 / 106 = 94. */
	g_assert_cmpint(vmcg_vmpressure_calc_level(100, 6), ==, VMCG_VMPRESSURE_MEDIUM);
	/* Nothing reclaimed is 100 %. */
	g_assert_cmpint(vmcg_vmpressure_calc_level(512, 0), ==, VMCG_VMPRESSURE_CRITICAL);
	g_assert_cmpint(vmcg_vmpressure_calc_level(1, 0), ==, VMCG_VMPRESSURE_CRITICAL);
}

static void test_calc_level_kernel_rounding(void)
{
	/*
	 * 514 scanned, 26 reclaimed is 94.94 % unreclaimed, but the kernel's
	 * arithmetic says 540 - 27 = 513, 51300 / 540 = 95: critical. Same for
	 * 514/206 (59.92 %): 720 - 288 = 432, 43200 / 720 = 60, medium. A
	 * plain 100 * (s - r) / s would give 94 and 59.
	 */
	g_assert_cmpint(vmcg_vmpressure_calc_level(514, 26), ==, VMCG_VMPRESSURE_CRITICAL);
	g_assert_cmpint(vmcg_vmpressure_calc_level(514, 206), ==, VMCG_VMPRESSURE_MEDIUM);
}

static void test_calc_level_reclaimed_ge_scanned(void)
{
	g_assert_cmpint(vmcg_vmpressure_calc_level(512, 512), ==, VMCG_VMPRESSURE_LOW);
	g_assert_cmpint(vmcg_vmpressure_calc_level(512, 4096), ==, VMCG_VMPRESSURE_LOW);
	g_assert_cmpint(vmcg_vmpressure_calc_level(1, UINT64_MAX), ==, VMCG_VMPRESSURE_LOW);
}

static void test_calc_level_scanned_zero(void)
{
	/* No division by zero: reclaimed >= scanned catches it. */
	g_assert_cmpint(vmcg_vmpressure_calc_level(0, 0), ==, VMCG_VMPRESSURE_LOW);
	g_assert_cmpint(vmcg_vmpressure_calc_level(0, 7), ==, VMCG_VMPRESSURE_LOW);
}

static void test_calc_level_large(void)
{
	uint64_t s = UINT64_C(1) << 40;

	/* Far beyond where reclaimed * scale overflows 64 bits. */
	g_assert_cmpint(vmcg_vmpressure_calc_level(UINT64_MAX, 0), ==, VMCG_VMPRESSURE_CRITICAL);
	g_assert_cmpint(vmcg_vmpressure_calc_level(UINT64_MAX, UINT64_MAX / 2), ==,
			VMCG_VMPRESSURE_LOW);
	g_assert_cmpint(vmcg_vmpressure_calc_level(UINT64_MAX, UINT64_MAX / 100), ==,
			VMCG_VMPRESSURE_CRITICAL);
	/* 30 % reclaimed: 70 %, medium, as for small numbers. */
	g_assert_cmpint(vmcg_vmpressure_calc_level(s, s / 10 * 3), ==, VMCG_VMPRESSURE_MEDIUM);
	g_assert_cmpint(vmcg_vmpressure_calc_level(1000, 300), ==, VMCG_VMPRESSURE_MEDIUM);
}

/* ---- window ---- */

static void test_window_below(void)
{
	VmcgVmpressure g;

	vmcg_vmpressure_init(&g, NULL);
	g_assert_cmpint(vmcg_vmpressure_account(&g, 1, WIN - 1, 0), ==, VMCG_VMPRESSURE_NONE);
	g_assert_cmpuint(g.tree_scanned, ==, WIN - 1);
	g_assert_cmpuint(g.windows, ==, 0);
	g_assert_cmpint(g.last_level, ==, VMCG_VMPRESSURE_NONE);
}

static void test_window_at(void)
{
	VmcgVmpressure g;

	vmcg_vmpressure_init(&g, NULL);
	g_assert_cmpint(vmcg_vmpressure_account(&g, 1, WIN - 1, 0), ==, VMCG_VMPRESSURE_NONE);
	g_assert_cmpint(vmcg_vmpressure_account(&g, 2, 1, 0), ==, VMCG_VMPRESSURE_CRITICAL);
	g_assert_cmpuint(g.tree_scanned, ==, 0);
	g_assert_cmpuint(g.tree_reclaimed, ==, 0);
	g_assert_cmpuint(g.windows, ==, 1);

	/* A single call of exactly one window completes it too. */
	g_assert_cmpint(vmcg_vmpressure_account(&g, 3, WIN, WIN), ==, VMCG_VMPRESSURE_LOW);
	g_assert_cmpuint(g.windows, ==, 2);
}

static void test_window_accumulates_reclaimed(void)
{
	VmcgVmpressure g;

	/*
	 * The level is over the whole window: 256/256 then 256/0 is 512/256,
	 * 768 - 384 = 384, 38400 / 768 = 50 %, low, although the call that
	 * closed the window reclaimed nothing.
	 */
	vmcg_vmpressure_init(&g, NULL);
	g_assert_cmpint(vmcg_vmpressure_account(&g, 1, 256, 256), ==, VMCG_VMPRESSURE_NONE);
	g_assert_cmpuint(g.tree_reclaimed, ==, 256);
	g_assert_cmpint(vmcg_vmpressure_account(&g, 2, 256, 0), ==, VMCG_VMPRESSURE_LOW);
}

static void test_window_consumed_whole(void)
{
	VmcgVmpressure g;

	/* An overshoot is not carried into the next window. */
	vmcg_vmpressure_init(&g, NULL);
	g_assert_cmpint(vmcg_vmpressure_account(&g, 1, WIN + 100, 0), ==, VMCG_VMPRESSURE_CRITICAL);
	g_assert_cmpuint(g.tree_scanned, ==, 0);
	g_assert_cmpint(vmcg_vmpressure_account(&g, 2, WIN - 1, 0), ==, VMCG_VMPRESSURE_NONE);
}

static void test_window_scanned_zero_noop(void)
{
	VmcgVmpressure g;

	/* As vmpressure(): nothing scanned, nothing added, not even reclaimed. */
	vmcg_vmpressure_init(&g, NULL);
	g_assert_cmpint(vmcg_vmpressure_account(&g, 1, 0, 300), ==, VMCG_VMPRESSURE_NONE);
	g_assert_cmpuint(g.tree_scanned, ==, 0);
	g_assert_cmpuint(g.tree_reclaimed, ==, 0);
	g_assert_cmpint(vmcg_vmpressure_account(&g, 2, WIN, 0), ==, VMCG_VMPRESSURE_CRITICAL);
}

static void test_window_saturates(void)
{
	VmcgVmpressure g;

	/* A wrapped sum would read as a tiny window with no pressure. */
	vmcg_vmpressure_init(&g, NULL);
	g_assert_cmpint(vmcg_vmpressure_account(&g, 1, 10, 10), ==, VMCG_VMPRESSURE_NONE);
	g_assert_cmpint(vmcg_vmpressure_account(&g, 2, UINT64_MAX, 0), ==,
			VMCG_VMPRESSURE_CRITICAL);
}

/* ---- delivery ---- */

static void test_delivery_default_stops_passthrough(void)
{
	/*
	 *   root  [default]
	 *    |
	 *   mid   [default]
	 *    |
	 *   leaf  [default]
	 *
	 * A window in leaf: leaf's listener fires and the default ones above
	 * stay quiet. A window in mid: mid only (leaf is below, never told).
	 * A window in root: root only.
	 */
	Tree t;
	Probe root, mid, leaf;

	tree_init(&t);
	probe_add(&root, t.log, &t.root, "root", VMCG_VMPRESSURE_LOW, VMCG_VMPRESSURE_MODE_DEFAULT);
	probe_add(&mid, t.log, &t.mid, "mid", VMCG_VMPRESSURE_LOW, VMCG_VMPRESSURE_MODE_DEFAULT);
	probe_add(&leaf, t.log, &t.leaf, "leaf", VMCG_VMPRESSURE_LOW, VMCG_VMPRESSURE_MODE_DEFAULT);

	g_assert_cmpstr(window(&t, &t.leaf, VMCG_VMPRESSURE_CRITICAL), ==, "leaf");
	g_assert_cmpint(leaf.last_level, ==, VMCG_VMPRESSURE_CRITICAL);
	g_assert_cmpstr(window(&t, &t.mid, VMCG_VMPRESSURE_MEDIUM), ==, "mid");
	g_assert_cmpint(mid.last_level, ==, VMCG_VMPRESSURE_MEDIUM);
	g_assert_cmpstr(window(&t, &t.root, VMCG_VMPRESSURE_LOW), ==, "root");
	g_assert_cmpint(root.last_level, ==, VMCG_VMPRESSURE_LOW);
	g_assert_cmpuint(leaf.count, ==, 1);
	g_assert_cmpuint(mid.count, ==, 1);
	g_assert_cmpuint(root.count, ==, 1);
	tree_fini(&t);
}

static void test_delivery_default_passes_through(void)
{
	/*
	 *   root  [default]
	 *    |
	 *   mid   (none)
	 *    |
	 *   leaf  (none)
	 *
	 * Nobody below listens, so the window in leaf reaches root.
	 */
	Tree t;
	Probe root;

	tree_init(&t);
	probe_add(&root, t.log, &t.root, "root", VMCG_VMPRESSURE_LOW, VMCG_VMPRESSURE_MODE_DEFAULT);
	g_assert_cmpstr(window(&t, &t.leaf, VMCG_VMPRESSURE_MEDIUM), ==, "root");
	g_assert_cmpint(root.last_level, ==, VMCG_VMPRESSURE_MEDIUM);
	tree_fini(&t);
}

static void test_delivery_hierarchy_gets_everything(void)
{
	/*
	 *   root  [hierarchy "root-h"] [default "root-d"]
	 *    |
	 *   mid   [hierarchy]
	 *    |
	 *   leaf  [default]
	 *
	 * A window in leaf: leaf, then mid and root-h although leaf fired;
	 * root-d is stopped by them. A window in mid: mid and root-h.
	 */
	Tree t;
	Probe root_h, root_d, mid, leaf;

	tree_init(&t);
	probe_add(&root_d, t.log, &t.root, "root-d", VMCG_VMPRESSURE_LOW,
		  VMCG_VMPRESSURE_MODE_DEFAULT);
	probe_add(&root_h, t.log, &t.root, "root-h", VMCG_VMPRESSURE_LOW,
		  VMCG_VMPRESSURE_MODE_HIERARCHY);
	probe_add(&mid, t.log, &t.mid, "mid", VMCG_VMPRESSURE_LOW, VMCG_VMPRESSURE_MODE_HIERARCHY);
	probe_add(&leaf, t.log, &t.leaf, "leaf", VMCG_VMPRESSURE_LOW, VMCG_VMPRESSURE_MODE_DEFAULT);

	g_assert_cmpstr(window(&t, &t.leaf, VMCG_VMPRESSURE_LOW), ==, "leaf mid root-h");
	g_assert_cmpstr(window(&t, &t.mid, VMCG_VMPRESSURE_CRITICAL), ==, "mid root-h");
	g_assert_cmpstr(window(&t, &t.root, VMCG_VMPRESSURE_CRITICAL), ==, "root-h root-d");
	g_assert_cmpuint(root_d.count, ==, 1);
	g_assert_cmpuint(root_h.count, ==, 3);
	tree_fini(&t);
}

static void test_delivery_local_only_own_group(void)
{
	/*
	 *   root  [default]
	 *    |
	 *   mid   [local]
	 *    |
	 *   leaf  (none)
	 *
	 * A window in leaf: mid's local listener ignores it (mid is an
	 * ancestor), so nothing has fired and root's default one does. A
	 * window in mid: mid's local fires, which stops root's default one.
	 */
	Tree t;
	Probe root, mid;

	tree_init(&t);
	probe_add(&root, t.log, &t.root, "root", VMCG_VMPRESSURE_LOW, VMCG_VMPRESSURE_MODE_DEFAULT);
	probe_add(&mid, t.log, &t.mid, "mid", VMCG_VMPRESSURE_LOW, VMCG_VMPRESSURE_MODE_LOCAL);

	g_assert_cmpstr(window(&t, &t.leaf, VMCG_VMPRESSURE_CRITICAL), ==, "root");
	g_assert_cmpstr(window(&t, &t.mid, VMCG_VMPRESSURE_CRITICAL), ==, "mid");
	g_assert_cmpuint(mid.count, ==, 1);
	g_assert_cmpuint(root.count, ==, 1);
	tree_fini(&t);
}

static void test_delivery_local_stops_default_above(void)
{
	/*
	 *   root  [default] [hierarchy]
	 *    |
	 *   mid   (none)
	 *    |
	 *   leaf  [local]
	 *
	 * As in the kernel, a local listener that fired counts as signalled:
	 * root's default listener stays quiet, its hierarchy one does not.
	 */
	Tree t;
	Probe root_d, root_h, leaf;

	tree_init(&t);
	probe_add(&root_d, t.log, &t.root, "root-d", VMCG_VMPRESSURE_LOW,
		  VMCG_VMPRESSURE_MODE_DEFAULT);
	probe_add(&root_h, t.log, &t.root, "root-h", VMCG_VMPRESSURE_LOW,
		  VMCG_VMPRESSURE_MODE_HIERARCHY);
	probe_add(&leaf, t.log, &t.leaf, "leaf", VMCG_VMPRESSURE_LOW, VMCG_VMPRESSURE_MODE_LOCAL);

	g_assert_cmpstr(window(&t, &t.leaf, VMCG_VMPRESSURE_MEDIUM), ==, "leaf root-h");
	g_assert_cmpuint(root_d.count, ==, 0);
	tree_fini(&t);
}

static void test_delivery_level_filter(void)
{
	/*
	 *   root  [default, low]
	 *    |
	 *   mid   [default, medium]
	 *    |
	 *   leaf  [default, critical]
	 *
	 * Each window is caught by the lowest group whose threshold it meets;
	 * a listener filtered out by level does not count as having fired.
	 */
	Tree t;
	Probe root, mid, leaf;

	tree_init(&t);
	probe_add(&root, t.log, &t.root, "root", VMCG_VMPRESSURE_LOW, VMCG_VMPRESSURE_MODE_DEFAULT);
	probe_add(&mid, t.log, &t.mid, "mid", VMCG_VMPRESSURE_MEDIUM, VMCG_VMPRESSURE_MODE_DEFAULT);
	probe_add(&leaf, t.log, &t.leaf, "leaf", VMCG_VMPRESSURE_CRITICAL,
		  VMCG_VMPRESSURE_MODE_DEFAULT);

	g_assert_cmpstr(window(&t, &t.leaf, VMCG_VMPRESSURE_LOW), ==, "root");
	g_assert_cmpstr(window(&t, &t.leaf, VMCG_VMPRESSURE_MEDIUM), ==, "mid");
	g_assert_cmpstr(window(&t, &t.leaf, VMCG_VMPRESSURE_CRITICAL), ==, "leaf");
	tree_fini(&t);
}

static void test_delivery_hierarchy_level_filter(void)
{
	/*
	 *   root  [hierarchy, critical]
	 *    |
	 *   mid   (none)
	 *    |
	 *   leaf  [default, low]
	 *
	 * The hierarchy listener sees only critical windows.
	 */
	Tree t;
	Probe root, leaf;

	tree_init(&t);
	probe_add(&root, t.log, &t.root, "root", VMCG_VMPRESSURE_CRITICAL,
		  VMCG_VMPRESSURE_MODE_HIERARCHY);
	probe_add(&leaf, t.log, &t.leaf, "leaf", VMCG_VMPRESSURE_LOW, VMCG_VMPRESSURE_MODE_DEFAULT);

	g_assert_cmpstr(window(&t, &t.leaf, VMCG_VMPRESSURE_LOW), ==, "leaf");
	g_assert_cmpstr(window(&t, &t.leaf, VMCG_VMPRESSURE_MEDIUM), ==, "leaf");
	g_assert_cmpstr(window(&t, &t.leaf, VMCG_VMPRESSURE_CRITICAL), ==, "leaf root");
	tree_fini(&t);
}

static void test_delivery_same_group(void)
{
	/*
	 *   root  (none)
	 *    |
	 *   mid   [default "a"] then [default "b"]
	 *
	 * Both fire (passthrough is stopped only by groups below), newest
	 * first, as the kernel's list_add() orders them.
	 */
	Tree t;
	Probe a, b;

	tree_init(&t);
	probe_add(&a, t.log, &t.mid, "a", VMCG_VMPRESSURE_LOW, VMCG_VMPRESSURE_MODE_DEFAULT);
	probe_add(&b, t.log, &t.mid, "b", VMCG_VMPRESSURE_LOW, VMCG_VMPRESSURE_MODE_DEFAULT);
	g_assert_cmpstr(window(&t, &t.leaf, VMCG_VMPRESSURE_LOW), ==, "b a");
	tree_fini(&t);
}

static void test_delivery_open_window_silent(void)
{
	Tree t;
	Probe leaf;

	/* Nothing is delivered until the window completes. */
	tree_init(&t);
	probe_add(&leaf, t.log, &t.leaf, "leaf", VMCG_VMPRESSURE_LOW, VMCG_VMPRESSURE_MODE_DEFAULT);
	g_assert_cmpint(vmcg_vmpressure_account(&t.leaf, 1, WIN - 1, 0), ==, VMCG_VMPRESSURE_NONE);
	g_assert_cmpuint(leaf.count, ==, 0);
	g_assert_cmpint(vmcg_vmpressure_account(&t.leaf, 2, 1, 0), ==, VMCG_VMPRESSURE_CRITICAL);
	g_assert_cmpuint(leaf.count, ==, 1);
	tree_fini(&t);
}

/* ---- register / unregister ---- */

static void test_unregister(void)
{
	Tree t;
	Probe a, b, c;

	tree_init(&t);
	probe_add(&a, t.log, &t.leaf, "a", VMCG_VMPRESSURE_LOW, VMCG_VMPRESSURE_MODE_HIERARCHY);
	probe_add(&b, t.log, &t.leaf, "b", VMCG_VMPRESSURE_LOW, VMCG_VMPRESSURE_MODE_HIERARCHY);
	probe_add(&c, t.log, &t.leaf, "c", VMCG_VMPRESSURE_LOW, VMCG_VMPRESSURE_MODE_HIERARCHY);

	/* From the middle of the list, then the tail, then the head. */
	g_assert_cmpint(vmcg_vmpressure_unregister(&t.leaf, &b.l), ==, 0);
	g_assert_cmpstr(window(&t, &t.leaf, VMCG_VMPRESSURE_LOW), ==, "c a");
	g_assert_cmpint(vmcg_vmpressure_unregister(&t.leaf, &a.l), ==, 0);
	g_assert_cmpstr(window(&t, &t.leaf, VMCG_VMPRESSURE_LOW), ==, "c");
	g_assert_cmpint(vmcg_vmpressure_unregister(&t.leaf, &c.l), ==, 0);
	g_assert_cmpstr(window(&t, &t.leaf, VMCG_VMPRESSURE_LOW), ==, "");
	g_assert_null(t.leaf.listeners);

	/* Twice, or from a group it is not in. */
	g_assert_cmpint(vmcg_vmpressure_unregister(&t.leaf, &c.l), ==, -ENOENT);
	g_assert_cmpint(vmcg_vmpressure_register(&t.mid, &a.l), ==, 0);
	g_assert_cmpint(vmcg_vmpressure_unregister(&t.leaf, &a.l), ==, -ENOENT);
	g_assert_cmpint(vmcg_vmpressure_unregister(&t.mid, &a.l), ==, 0);

	/* And it can be registered again afterwards. */
	g_assert_cmpint(vmcg_vmpressure_register(&t.leaf, &b.l), ==, 0);
	g_assert_cmpstr(window(&t, &t.leaf, VMCG_VMPRESSURE_LOW), ==, "b");
	tree_fini(&t);
}

static void test_register_rejects(void)
{
	VmcgVmpressure g;
	VmcgVmpressureListener good = {
		.fn = probe_fn,
		.level = VMCG_VMPRESSURE_LOW,
		.mode = VMCG_VMPRESSURE_MODE_LOCAL,
	};
	VmcgVmpressureListener l;

	vmcg_vmpressure_init(&g, NULL);

	g_assert_cmpint(vmcg_vmpressure_register(&g, NULL), ==, -EINVAL);

	l = good;
	l.fn = NULL;
	g_assert_cmpint(vmcg_vmpressure_register(&g, &l), ==, -EINVAL);

	l = good;
	l.level = VMCG_VMPRESSURE_NONE;
	g_assert_cmpint(vmcg_vmpressure_register(&g, &l), ==, -EINVAL);
	l.level = (VmcgVmpressureLevel)3;
	g_assert_cmpint(vmcg_vmpressure_register(&g, &l), ==, -EINVAL);
	l.level = (VmcgVmpressureLevel)-7;
	g_assert_cmpint(vmcg_vmpressure_register(&g, &l), ==, -EINVAL);

	l = good;
	l.mode = (VmcgVmpressureMode)3;
	g_assert_cmpint(vmcg_vmpressure_register(&g, &l), ==, -EINVAL);
	l.mode = (VmcgVmpressureMode)-1;
	g_assert_cmpint(vmcg_vmpressure_register(&g, &l), ==, -EINVAL);

	/* None of that linked anything. */
	g_assert_null(g.listeners);

	l = good;
	g_assert_cmpint(vmcg_vmpressure_register(&g, &l), ==, 0);
	g_assert_cmpint(vmcg_vmpressure_register(&g, &l), ==, -EEXIST);
	g_assert_true(g.listeners == &l);
	g_assert_null(l.next);
}

/* ---- prio ---- */

static void test_prio(void)
{
	Tree t;
	Probe leaf;

	tree_init(&t);
	probe_add(&leaf, t.log, &t.leaf, "leaf", VMCG_VMPRESSURE_CRITICAL,
		  VMCG_VMPRESSURE_MODE_DEFAULT);

	/* Above the critical priority: ignored, nothing accounted. */
	g_assert_cmpint(vmcg_vmpressure_prio(&t.leaf, 1, VMCG_VMPRESSURE_CRITICAL_PRIO + 1), ==,
			VMCG_VMPRESSURE_NONE);
	g_assert_cmpint(vmcg_vmpressure_prio(&t.leaf, 1, 12), ==, VMCG_VMPRESSURE_NONE);
	g_assert_cmpuint(t.leaf.tree_scanned, ==, 0);
	g_assert_cmpuint(leaf.count, ==, 0);

	/* At it or below: a critical window, delivered. */
	g_assert_cmpint(vmcg_vmpressure_prio(&t.leaf, 2, VMCG_VMPRESSURE_CRITICAL_PRIO), ==,
			VMCG_VMPRESSURE_CRITICAL);
	g_assert_cmpint(vmcg_vmpressure_prio(&t.leaf, 3, 0), ==, VMCG_VMPRESSURE_CRITICAL);
	g_assert_cmpuint(leaf.count, ==, 2);
	g_assert_cmpuint(t.leaf.windows, ==, 2);
	tree_fini(&t);
}

static void test_prio_joins_open_window(void)
{
	VmcgVmpressure g;

	/*
	 * As in the kernel, prio adds to the open window: 256/256 plus
	 * 512/0 is 768/256, 1024 - 341 = 683, 68300 / 1024 = 66 %, medium.
	 */
	vmcg_vmpressure_init(&g, NULL);
	g_assert_cmpint(vmcg_vmpressure_account(&g, 1, 256, 256), ==, VMCG_VMPRESSURE_NONE);
	g_assert_cmpint(vmcg_vmpressure_prio(&g, 2, 1), ==, VMCG_VMPRESSURE_MEDIUM);
}

/* ---- stored level ---- */

static void test_level_hold_expiry(void)
{
	VmcgVmpressure g;
	const uint64_t hold = 5000000;

	vmcg_vmpressure_init(&g, NULL);
	g_assert_cmpint(vmcg_vmpressure_level(&g, 0, hold), ==, VMCG_VMPRESSURE_NONE);

	g_assert_cmpint(vmcg_vmpressure_account(&g, 1000000, WIN, 0), ==, VMCG_VMPRESSURE_CRITICAL);
	g_assert_cmpuint(g.last_usec, ==, 1000000);
	g_assert_cmpint(vmcg_vmpressure_level(&g, 1000000, hold), ==, VMCG_VMPRESSURE_CRITICAL);
	g_assert_cmpint(vmcg_vmpressure_level(&g, 1000000 + hold, hold), ==,
			VMCG_VMPRESSURE_CRITICAL);
	g_assert_cmpint(vmcg_vmpressure_level(&g, 1000000 + hold + 1, hold), ==,
			VMCG_VMPRESSURE_NONE);
	/* A clock before the window: age 0, still held. */
	g_assert_cmpint(vmcg_vmpressure_level(&g, 10, hold), ==, VMCG_VMPRESSURE_CRITICAL);
	/* hold 0: only at the very instant. */
	g_assert_cmpint(vmcg_vmpressure_level(&g, 1000000, 0), ==, VMCG_VMPRESSURE_CRITICAL);
	g_assert_cmpint(vmcg_vmpressure_level(&g, 1000001, 0), ==, VMCG_VMPRESSURE_NONE);

	/* An open window does not touch the stored level. */
	g_assert_cmpint(vmcg_vmpressure_account(&g, 2000000, 10, 10), ==, VMCG_VMPRESSURE_NONE);
	g_assert_cmpuint(g.last_usec, ==, 1000000);

	/* A newer window replaces it, even with a lower level. */
	g_assert_cmpint(vmcg_vmpressure_account(&g, 7000000, WIN, WIN), ==, VMCG_VMPRESSURE_LOW);
	g_assert_cmpint(vmcg_vmpressure_level(&g, 7000000 + hold, hold), ==, VMCG_VMPRESSURE_LOW);
}

static void test_level_stored_in_ancestors(void)
{
	/*
	 *        root
	 *       /    \
	 *     mid   sibling
	 *      |
	 *     leaf
	 *
	 * A window in leaf sets leaf, mid and root, not sibling; the window
	 * count is leaf's alone.
	 */
	Tree t;

	tree_init(&t);
	window(&t, &t.leaf, VMCG_VMPRESSURE_MEDIUM);
	g_assert_cmpint(vmcg_vmpressure_level(&t.leaf, 1000, 0), ==, VMCG_VMPRESSURE_MEDIUM);
	g_assert_cmpint(vmcg_vmpressure_level(&t.mid, 1000, 0), ==, VMCG_VMPRESSURE_MEDIUM);
	g_assert_cmpint(vmcg_vmpressure_level(&t.root, 1000, 0), ==, VMCG_VMPRESSURE_MEDIUM);
	g_assert_cmpint(vmcg_vmpressure_level(&t.sibling, 1000, 0), ==, VMCG_VMPRESSURE_NONE);
	g_assert_cmpuint(t.leaf.windows, ==, 1);
	g_assert_cmpuint(t.mid.windows, ==, 0);
	g_assert_cmpuint(t.root.windows, ==, 0);

	/* A window in mid does not reach down into leaf. */
	g_string_truncate(t.log, 0);
	g_assert_cmpint(vmcg_vmpressure_account(&t.mid, 2000, WIN, 0), ==,
			VMCG_VMPRESSURE_CRITICAL);
	g_assert_cmpint(vmcg_vmpressure_level(&t.mid, 2000, 0), ==, VMCG_VMPRESSURE_CRITICAL);
	g_assert_cmpint(vmcg_vmpressure_level(&t.root, 2000, 0), ==, VMCG_VMPRESSURE_CRITICAL);
	g_assert_cmpuint(t.leaf.last_usec, ==, 1000);
	tree_fini(&t);
}

static VmcgVmpressureLevel seen_in_callback;

static void read_level_fn(VmcgVmpressure *vmpr, VmcgVmpressureLevel level, void *userdata)
{
	(void)level;
	seen_in_callback = vmcg_vmpressure_level(vmpr, *(uint64_t *)userdata, 0);
}

static void test_level_visible_in_callback(void)
{
	VmcgVmpressure root, leaf;
	uint64_t now = 4242;
	VmcgVmpressureListener l = {
		.fn = read_level_fn,
		.userdata = &now,
		.level = VMCG_VMPRESSURE_LOW,
		.mode = VMCG_VMPRESSURE_MODE_HIERARCHY,
	};

	/* An ancestor's listener already reads the new level. */
	vmcg_vmpressure_init(&root, NULL);
	vmcg_vmpressure_init(&leaf, &root);
	g_assert_cmpint(vmcg_vmpressure_register(&root, &l), ==, 0);
	seen_in_callback = VMCG_VMPRESSURE_NONE;
	g_assert_cmpint(vmcg_vmpressure_account(&leaf, now, WIN, 0), ==, VMCG_VMPRESSURE_CRITICAL);
	g_assert_cmpint(seen_in_callback, ==, VMCG_VMPRESSURE_CRITICAL);
}

/* ---- strings ---- */

static void test_level_strings(void)
{
	static const struct {
		VmcgVmpressureLevel level;
		const char *name;
	} table[] = {
		{ VMCG_VMPRESSURE_NONE, "none" },
		{ VMCG_VMPRESSURE_LOW, "low" },
		{ VMCG_VMPRESSURE_MEDIUM, "medium" },
		{ VMCG_VMPRESSURE_CRITICAL, "critical" },
	};
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(table); i++) {
		VmcgVmpressureLevel level = (VmcgVmpressureLevel)99;

		g_assert_cmpstr(vmcg_vmpressure_level_to_string(table[i].level), ==, table[i].name);
		g_assert_cmpint(vmcg_vmpressure_level_from_string(table[i].name, &level), ==, 0);
		g_assert_cmpint(level, ==, table[i].level);
	}
	g_assert_null(vmcg_vmpressure_level_to_string((VmcgVmpressureLevel)3));
	g_assert_null(vmcg_vmpressure_level_to_string((VmcgVmpressureLevel)-2));
}

static void test_level_strings_bad(void)
{
	static const char *const bad[] = {
		"", "Low", "LOW", "low ", " low", "lo", "lowx", "critical,local", "3", "-1",
	};
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(bad); i++) {
		VmcgVmpressureLevel level = VMCG_VMPRESSURE_MEDIUM;

		g_assert_cmpint(vmcg_vmpressure_level_from_string(bad[i], &level), ==, -EINVAL);
		/* ret_* is set only on success. */
		g_assert_cmpint(level, ==, VMCG_VMPRESSURE_MEDIUM);
	}
	g_assert_cmpint(vmcg_vmpressure_level_from_string(NULL, NULL), ==, -EINVAL);
}

static void test_mode_strings(void)
{
	static const struct {
		VmcgVmpressureMode mode;
		const char *name;
	} table[] = {
		{ VMCG_VMPRESSURE_MODE_DEFAULT, "default" },
		{ VMCG_VMPRESSURE_MODE_HIERARCHY, "hierarchy" },
		{ VMCG_VMPRESSURE_MODE_LOCAL, "local" },
	};
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(table); i++) {
		VmcgVmpressureMode mode = (VmcgVmpressureMode)99;

		g_assert_cmpstr(vmcg_vmpressure_mode_to_string(table[i].mode), ==, table[i].name);
		g_assert_cmpint(vmcg_vmpressure_mode_from_string(table[i].name, &mode), ==, 0);
		g_assert_cmpint(mode, ==, table[i].mode);
	}
	g_assert_null(vmcg_vmpressure_mode_to_string((VmcgVmpressureMode)3));
	g_assert_null(vmcg_vmpressure_mode_to_string((VmcgVmpressureMode)-1));
}

static void test_mode_strings_bad(void)
{
	static const char *const bad[] = {
		"", "Default", "no_passthrough", "hier", "local\n", "none", "low",
	};
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(bad); i++) {
		VmcgVmpressureMode mode = VMCG_VMPRESSURE_MODE_LOCAL;

		g_assert_cmpint(vmcg_vmpressure_mode_from_string(bad[i], &mode), ==, -EINVAL);
		g_assert_cmpint(mode, ==, VMCG_VMPRESSURE_MODE_LOCAL);
	}
	g_assert_cmpint(vmcg_vmpressure_mode_from_string(NULL, NULL), ==, -EINVAL);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);

	g_test_add_func("/vmpressure/calc-level/medium-boundary", test_calc_level_medium_boundary);
	g_test_add_func("/vmpressure/calc-level/critical-boundary",
			test_calc_level_critical_boundary);
	g_test_add_func("/vmpressure/calc-level/kernel-rounding", test_calc_level_kernel_rounding);
	g_test_add_func("/vmpressure/calc-level/reclaimed-ge-scanned",
			test_calc_level_reclaimed_ge_scanned);
	g_test_add_func("/vmpressure/calc-level/scanned-zero", test_calc_level_scanned_zero);
	g_test_add_func("/vmpressure/calc-level/large", test_calc_level_large);

	g_test_add_func("/vmpressure/window/below", test_window_below);
	g_test_add_func("/vmpressure/window/at", test_window_at);
	g_test_add_func("/vmpressure/window/accumulates-reclaimed",
			test_window_accumulates_reclaimed);
	g_test_add_func("/vmpressure/window/consumed-whole", test_window_consumed_whole);
	g_test_add_func("/vmpressure/window/scanned-zero-noop", test_window_scanned_zero_noop);
	g_test_add_func("/vmpressure/window/saturates", test_window_saturates);

	g_test_add_func("/vmpressure/delivery/default-stops-passthrough",
			test_delivery_default_stops_passthrough);
	g_test_add_func("/vmpressure/delivery/default-passes-through",
			test_delivery_default_passes_through);
	g_test_add_func("/vmpressure/delivery/hierarchy-gets-everything",
			test_delivery_hierarchy_gets_everything);
	g_test_add_func("/vmpressure/delivery/local-only-own-group",
			test_delivery_local_only_own_group);
	g_test_add_func("/vmpressure/delivery/local-stops-default-above",
			test_delivery_local_stops_default_above);
	g_test_add_func("/vmpressure/delivery/level-filter", test_delivery_level_filter);
	g_test_add_func("/vmpressure/delivery/hierarchy-level-filter",
			test_delivery_hierarchy_level_filter);
	g_test_add_func("/vmpressure/delivery/same-group", test_delivery_same_group);
	g_test_add_func("/vmpressure/delivery/open-window-silent",
			test_delivery_open_window_silent);

	g_test_add_func("/vmpressure/register/unregister", test_unregister);
	g_test_add_func("/vmpressure/register/rejects", test_register_rejects);

	g_test_add_func("/vmpressure/prio/critical", test_prio);
	g_test_add_func("/vmpressure/prio/joins-open-window", test_prio_joins_open_window);

	g_test_add_func("/vmpressure/level/hold-expiry", test_level_hold_expiry);
	g_test_add_func("/vmpressure/level/stored-in-ancestors", test_level_stored_in_ancestors);
	g_test_add_func("/vmpressure/level/visible-in-callback", test_level_visible_in_callback);

	g_test_add_func("/vmpressure/strings/level", test_level_strings);
	g_test_add_func("/vmpressure/strings/level-bad", test_level_strings_bad);
	g_test_add_func("/vmpressure/strings/mode", test_mode_strings);
	g_test_add_func("/vmpressure/strings/mode-bad", test_mode_strings_bad);

	return g_test_run();
}
