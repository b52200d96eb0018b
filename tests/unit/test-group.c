// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The group tree: path syntax, create/lookup/remove/move with their errors,
 * reparenting of VMs on removal, charge transfer on group moves, iteration,
 * stats, and the tree-level reclaim and OOM wrappers.
 */
#include <errno.h>
#include <stdio.h>

#include "test-util.h"
#include "test-tree.h"
#include "vmcg/group.h"
#include "vmcg/stock.h"

static void test_path_syntax(void)
{
	static const struct {
		const char *path;
		int expect;
	} cases[] = {
		{ "/", 0 },
		{ "/a", 0 },
		{ "/tenants/acme/web", 0 },
		{ "/a.b_c-D9", 0 },
		{ "/...", 0 },
		{ "", -EINVAL },
		{ "a", -EINVAL },
		{ "a/b", -EINVAL },
		{ "/a/", -EINVAL },
		{ "//", -EINVAL },
		{ "/a//b", -EINVAL },
		{ "/.", -EINVAL },
		{ "/a/..", -EINVAL },
		{ "/a b", -EINVAL },
		{ "/a\nb", -EINVAL },
		{ "/caf\xc3\xa9", -EINVAL },
		{ "/a%2f", -EINVAL },
	};
	char longname[VMCG_NAME_MAX + 3], deep[4 * (VMCG_DEPTH_MAX + 2)];

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++)
		g_assert_cmpint(vmcg_path_validate(cases[i].path), ==, cases[i].expect);
	g_assert_cmpint(vmcg_path_validate(NULL), ==, -EINVAL);

	longname[0] = '/';
	memset(longname + 1, 'x', VMCG_NAME_MAX);
	longname[VMCG_NAME_MAX + 1] = '\0';
	g_assert_cmpint(vmcg_path_validate(longname), ==, 0);
	longname[VMCG_NAME_MAX + 1] = 'x';
	longname[VMCG_NAME_MAX + 2] = '\0';
	g_assert_cmpint(vmcg_path_validate(longname), ==, -ENAMETOOLONG);

	deep[0] = '\0';
	for (int i = 0; i < VMCG_DEPTH_MAX; i++)
		strcat(deep, "/d");
	g_assert_cmpint(vmcg_path_validate(deep), ==, 0);
	strcat(deep, "/d");
	g_assert_cmpint(vmcg_path_validate(deep), ==, -ENAMETOOLONG);
}

static void test_create_lookup(void)
{
	VmcgTree *t;
	VmcgGroup *g, *a, *b;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	g_assert_cmpuint(vmcg_tree_nr_groups(t), ==, 1);
	g_assert_cmpstr(vmcg_group_path(vmcg_tree_root(t)), ==, "/");
	g_assert_cmpint(vmcg_group_lookup(t, "/", &g), ==, 0);
	g_assert_true(g == vmcg_tree_root(t));

	g_assert_cmpint(vmcg_group_create(t, "/a/b", &g), ==, -ENOENT);
	a = mk(t, "/a");
	b = mk(t, "/a/b");
	g_assert_cmpint(vmcg_group_create(t, "/a", &g), ==, -EEXIST);
	g_assert_cmpint(vmcg_group_create(t, "/", &g), ==, -EEXIST);
	g_assert_cmpint(vmcg_group_create(t, "/a/", &g), ==, -EINVAL);
	g_assert_cmpint(vmcg_group_lookup(t, "/a/b", &g), ==, 0);
	g_assert_true(g == b);
	g_assert_cmpint(vmcg_group_lookup(t, "/a/c", &g), ==, -ENOENT);
	g_assert_cmpint(vmcg_group_lookup(t, "/a//b", &g), ==, -EINVAL);
	g_assert_cmpstr(vmcg_group_name(b), ==, "b");
	g_assert_true(vmcg_group_parent(b) == a);
	g_assert_true(vmcg_group_tree(b) == t);
	g_assert_cmpuint(vmcg_group_nr_children(a), ==, 1);
	g_assert_cmpuint(vmcg_tree_nr_groups(t), ==, 3);
	vmcg_group_set_userdata(b, t);
	g_assert_true(vmcg_group_get_userdata(b) == t);
	vmcg_tree_free(t);
}

static void test_iteration_order(void)
{
	const char *expect[] = { "/", "/x", "/x/1", "/x/2", "/y", "/y/1" };
	VmcgTree *t;
	VmcgGroup *pos;
	size_t i = 0;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	mk(t, "/x");
	mk(t, "/y");
	mk(t, "/x/1");
	mk(t, "/y/1");
	mk(t, "/x/2");
	for (pos = vmcg_tree_root(t); pos; pos = vmcg_group_next_descendant(pos, vmcg_tree_root(t)))
		g_assert_cmpstr(vmcg_group_path(pos), ==, expect[i++]);
	g_assert_cmpuint(i, ==, G_N_ELEMENTS(expect));
	/* Restricted to a subtree. */
	g_assert_cmpint(vmcg_group_lookup(t, "/x", &pos), ==, 0);
	i = 0;
	for (VmcgGroup *r = pos; pos; pos = vmcg_group_next_descendant(pos, r))
		i++;
	g_assert_cmpuint(i, ==, 3);
	vmcg_tree_free(t);
}

/*
 * Removal hands VMs and their charge to the parent:
 *
 *   /t            usage 100 before and after
 *   `- /t/a  ->  removed; vm (100 pages) moves to /t
 */
static void test_remove(void)
{
	VmcgTree *t;
	VmcgGroup *tg, *a, *b;
	VmcgVm *vm;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	tg = mk(t, "/t");
	a = mk(t, "/t/a");
	b = mk(t, "/t/a/b");
	g_assert_cmpint(vmcg_group_remove(vmcg_tree_root(t), 0), ==, -EBUSY);
	g_assert_cmpint(vmcg_group_remove(a, 0), ==, -ENOTEMPTY);
	g_assert_cmpint(vmcg_group_remove(b, 0), ==, 0);
	vm = vm_in(a, "vm", 100);
	vmcg_group_set_low(a, 80);
	g_assert_cmpint(vmcg_group_remove(a, 0), ==, -EBUSY);
	g_assert_cmpuint(vmcg_group_current(tg), ==, 100);

	g_assert_cmpint(vmcg_group_remove(a, VMCG_REMOVE_REPARENT_VMS), ==, 0);
	g_assert_true(vmcg_vm_group(vm) == tg);
	g_assert_cmpuint(vmcg_group_current(tg), ==, 100);
	g_assert_cmpuint(vmcg_group_current(vmcg_tree_root(t)), ==, 100);
	/* The removed group's low claim is gone from the parent. */
	g_assert_cmpint(atomic_load(&vmcg_group_counter(tg)->children_low_usage), ==, 0);
	/* Uncharges now go straight to the parent. */
	g_assert_cmpint(vmcg_vm_uncharge(vm, 100), ==, 0);
	g_assert_cmpuint(vmcg_group_current(tg), ==, 0);
	g_assert_cmpuint(vmcg_group_current(vmcg_tree_root(t)), ==, 0);
	g_assert_cmpuint(atomic_load(&vmcg_group_counter(tg)->underflows), ==, 0);
	g_assert_cmpuint(vmcg_tree_nr_groups(t), ==, 2);
	vmcg_tree_free(t);
}

/*
 * Moving /a/x (150 pages) under /b, then back under /b/c with /b/c full:
 *
 *   /a  150 -> 0        /b  0 -> 150 (common ancestor "/" keeps 150)
 *   /b/c max 100: moving /a/x (now /b/x) into it would exceed -> -ENOMEM,
 *   nothing changes; with FORCE it goes over max.
 */
static void test_group_move(void)
{
	VmcgTree *t;
	VmcgGroup *a, *b, *c, *x, *over = NULL, *g;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	a = mk(t, "/a");
	b = mk(t, "/b");
	c = mk(t, "/b/c");
	x = mk(t, "/a/x");
	mk(t, "/a/x/y");
	vm_in(x, "vm", 150);
	vmcg_group_set_min(x, 40);

	g_assert_cmpint(vmcg_group_move(vmcg_tree_root(t), b, 0, NULL), ==, -EBUSY);
	g_assert_cmpint(vmcg_group_move(x, x, 0, NULL), ==, -ELOOP);
	g_assert_cmpint(vmcg_group_lookup(t, "/a/x/y", &g), ==, 0);
	g_assert_cmpint(vmcg_group_move(x, g, 0, NULL), ==, -ELOOP);
	g_assert_cmpint(vmcg_group_move(x, a, 0, NULL), ==, 0); /* same parent */

	g_assert_cmpint(vmcg_group_move(x, b, 0, NULL), ==, 0);
	g_assert_cmpstr(vmcg_group_path(x), ==, "/b/x");
	g_assert_cmpint(vmcg_group_lookup(t, "/b/x/y", &g), ==, 0);
	g_assert_cmpint(vmcg_group_lookup(t, "/a/x", &g), ==, -ENOENT);
	g_assert_cmpuint(vmcg_group_current(a), ==, 0);
	g_assert_cmpuint(vmcg_group_current(b), ==, 150);
	g_assert_cmpuint(vmcg_group_current(vmcg_tree_root(t)), ==, 150);
	/* x's min claim moved with it. */
	g_assert_cmpint(atomic_load(&vmcg_group_counter(a)->children_min_usage), ==, 0);
	g_assert_cmpint(atomic_load(&vmcg_group_counter(b)->children_min_usage), ==, 40);

	vmcg_group_set_max(c, 100);
	g_assert_cmpint(vmcg_group_move(x, c, 0, &over), ==, -ENOMEM);
	g_assert_true(over == c);
	g_assert_cmpstr(vmcg_group_path(x), ==, "/b/x");
	g_assert_cmpuint(vmcg_group_current(c), ==, 0);
	g_assert_cmpuint(vmcg_group_current(b), ==, 150);

	g_assert_cmpint(vmcg_group_move(x, c, VMCG_MOVE_FORCE, NULL), ==, 0);
	g_assert_cmpuint(vmcg_group_current(c), ==, 150);
	g_assert_cmpuint(vmcg_group_current(b), ==, 150);
	g_assert_true(vmcg_group_over_max(c));

	/* Name clash at the destination. */
	mk(t, "/a/x");
	g_assert_cmpint(vmcg_group_move(x, a, 0, NULL), ==, -EEXIST);
	vmcg_tree_free(t);
}

static void count_level(VmcgVmpressure *vmpr, VmcgVmpressureLevel level, void *userdata)
{
	unsigned *n = userdata;

	(void)vmpr;
	(void)level;
	(*n)++;
}

/*
 * vmpressure follows a moved group: its own listener stays registered and
 * its windows now reach the new parent's listeners, not the old one's.
 *
 *   /old (listener)   /new (listener)
 *   `- g (listener) ---moved--> /new/g
 */
static void test_move_keeps_vmpressure(void)
{
	unsigned n_g = 0, n_old = 0, n_new = 0;
	VmcgVmpressureListener lg = { .fn = count_level,
				      .userdata = &n_g,
				      .mode = VMCG_VMPRESSURE_MODE_HIERARCHY };
	VmcgVmpressureListener lo = { .fn = count_level,
				      .userdata = &n_old,
				      .mode = VMCG_VMPRESSURE_MODE_HIERARCHY };
	VmcgVmpressureListener ln = { .fn = count_level,
				      .userdata = &n_new,
				      .mode = VMCG_VMPRESSURE_MODE_HIERARCHY };
	VmcgTree *t;
	VmcgGroup *old, *new, *g;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	old = mk(t, "/old");
	new = mk(t, "/new");
	g = mk(t, "/old/g");
	g_assert_cmpint(vmcg_vmpressure_register(vmcg_group_vmpressure(g), &lg), ==, 0);
	g_assert_cmpint(vmcg_vmpressure_register(vmcg_group_vmpressure(old), &lo), ==, 0);
	g_assert_cmpint(vmcg_vmpressure_register(vmcg_group_vmpressure(new), &ln), ==, 0);
	g_assert_cmpint(vmcg_group_move(g, new, 0, NULL), ==, 0);
	g_assert_cmpint(
		vmcg_vmpressure_account(vmcg_group_vmpressure(g), 1, VMCG_VMPRESSURE_WIN, 0), ==,
		VMCG_VMPRESSURE_CRITICAL);
	g_assert_cmpuint(n_g, ==, 1);
	g_assert_cmpuint(n_new, ==, 1);
	g_assert_cmpuint(n_old, ==, 0);
	g_assert_true(vmcg_group_from_vmpressure(vmcg_group_vmpressure(g)) == g);
	vmcg_tree_free(t);
}

/*
 * PSI walks the ancestors:
 *
 *   /p
 *   |- /p/a   vm with 1 vCPU, stalled 0..1 s
 *   `- /p/b   vm with 1 vCPU, never stalled
 *
 * /p/a: some = full = 1 s. /p: some 1 s (one vCPU of its subtree
 * stalled), full 0 (the other was running).
 */
static void test_psi_hierarchy(void)
{
	uint64_t total;
	uint32_t avg[3];
	VmcgTree *t;
	VmcgGroup *p, *a, *b;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	p = mk(t, "/p");
	a = mk(t, "/p/a");
	b = mk(t, "/p/b");
	g_assert_cmpint(vmcg_group_psi_change(a, 0, 1, 0), ==, 0);
	g_assert_cmpint(vmcg_group_psi_change(b, 0, 1, 0), ==, 0);
	g_assert_cmpint(vmcg_group_psi_change(a, 0, 0, 1), ==, 0);
	g_assert_cmpint(vmcg_group_psi_change(a, 1000000, 0, -1), ==, 0);
	/* Refused at the leaf (no stalled vCPU there): nothing changes anywhere. */
	g_assert_cmpint(vmcg_group_psi_change(b, 1000000, 0, -1), ==, -EINVAL);
	vmcg_group_psi_update(vmcg_tree_root(t), 1500000);

	vmcg_psi_read(vmcg_group_psi(a), VMCG_PSI_SOME, avg, &total);
	g_assert_cmpuint(total, ==, 1000000);
	vmcg_psi_read(vmcg_group_psi(a), VMCG_PSI_FULL, avg, &total);
	g_assert_cmpuint(total, ==, 1000000);
	vmcg_psi_read(vmcg_group_psi(p), VMCG_PSI_SOME, avg, &total);
	g_assert_cmpuint(total, ==, 1000000);
	vmcg_psi_read(vmcg_group_psi(p), VMCG_PSI_FULL, avg, &total);
	g_assert_cmpuint(total, ==, 0);
	vmcg_psi_read(vmcg_group_psi(vmcg_tree_root(t)), VMCG_PSI_SOME, avg, &total);
	g_assert_cmpuint(total, ==, 1000000);
	vmcg_psi_read(vmcg_group_psi(b), VMCG_PSI_SOME, avg, &total);
	g_assert_cmpuint(total, ==, 0);
	vmcg_tree_free(t);
}

static void test_move_too_deep(void)
{
	char path[256] = "";
	VmcgTree *t;
	VmcgGroup *leaf = NULL, *sub;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	for (int i = 0; i < VMCG_DEPTH_MAX; i++) {
		strcat(path, "/d");
		leaf = mk(t, path);
	}
	mk(t, "/s");
	sub = mk(t, "/s/t");
	(void)sub;
	g_assert_cmpint(vmcg_group_lookup(t, "/s", &sub), ==, 0);
	g_assert_cmpint(vmcg_group_move(sub, leaf, 0, NULL), ==, -ENAMETOOLONG);
	vmcg_tree_free(t);
}

static void test_stats(void)
{
	VmcgTree *t;
	VmcgGroup *a, *b;
	VmcgVm *v1, *v2;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	a = mk(t, "/a");
	b = mk(t, "/a/b");
	v1 = vm_in(a, "v1", 100);
	v2 = vm_in(b, "v2", 50);
	g_assert_cmpint(vmcg_vm_set_stat(v1, VMCG_STAT_BALLOONED, 7), ==, 0);
	g_assert_cmpint(vmcg_vm_set_stat(v2, VMCG_STAT_BALLOONED, 3), ==, 0);
	g_assert_cmpint(vmcg_vm_set_stat(v2, VMCG_STAT_GUEST, 3), ==, -EINVAL);
	g_assert_cmpint(vmcg_vm_set_stat(v2, _VMCG_STAT_COUNT, 3), ==, -EINVAL);
	g_assert_cmpuint(vmcg_group_stat(a, VMCG_STAT_BALLOONED), ==, 10);
	g_assert_cmpuint(vmcg_group_stat(b, VMCG_STAT_BALLOONED), ==, 3);
	g_assert_cmpuint(vmcg_group_stat(a, VMCG_STAT_GUEST), ==, 150);
	for (int i = 0; i < _VMCG_STAT_COUNT; i++)
		g_assert_nonnull(vmcg_stat_to_string(i));
	g_assert_null(vmcg_stat_to_string(_VMCG_STAT_COUNT));
	vmcg_tree_free(t);
}

/*
 * Reclaim through the tree: /p is over high by 100.
 *
 *   /p
 *   |- /p/safe   low 300   vm s  usage 200 (under low: skipped)
 *   `- /p/bulk             vm b1 usage 300, vm b2 usage 100
 *
 * Pass 1 asks bulk's VMs in proportion to usage: b1 75, b2 25; no low
 * event. Asking 700 instead exceeds bulk's 400: pass 2 dips into safe
 * (200 above emin 0) for the rest, 300 -> s gives 200... capped: total
 * capacity is 600, so s gives 200, b1/b2 all, a low event on /p/safe.
 */
static void test_plan_reclaim(void)
{
	VmcgReclaimSummary sum;
	VmcgReclaimItem *items;
	VmcgTree *t;
	VmcgGroup *p, *safe, *bulk;
	VmcgVm *s, *b1, *b2;
	size_t n;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	p = mk(t, "/p");
	safe = mk(t, "/p/safe");
	bulk = mk(t, "/p/bulk");
	vmcg_group_set_low(safe, 300);
	s = vm_in(safe, "s", 200);
	b1 = vm_in(bulk, "b1", 300);
	b2 = vm_in(bulk, "b2", 100);

	g_assert_cmpint(vmcg_group_plan_reclaim(p, 100, &items, &n, &sum), ==, 0);
	g_assert_cmpuint(n, ==, 2);
	g_assert_true(items[0].vm == b1);
	g_assert_cmpuint(items[0].take_pages, ==, 75);
	g_assert_true(items[1].vm == b2);
	g_assert_cmpuint(items[1].take_pages, ==, 25);
	g_assert_false(sum.low_reclaim);
	g_assert_cmpuint(vmcg_group_events(safe, VMCG_EVENT_LOW, true), ==, 0);
	free(items);

	g_assert_cmpint(vmcg_group_plan_reclaim(p, 700, &items, &n, &sum), ==, 0);
	g_assert_true(sum.low_reclaim);
	g_assert_cmpuint(sum.planned_pages, ==, 600);
	g_assert_cmpuint(sum.shortfall_pages, ==, 100);
	g_assert_cmpuint(n, ==, 3);
	g_assert_true(items[0].vm == s);
	g_assert_cmpuint(items[0].take_pages, ==, 200);
	g_assert_true(items[0].low_breached);
	g_assert_cmpuint(vmcg_group_events(safe, VMCG_EVENT_LOW, true), ==, 1);
	g_assert_cmpuint(vmcg_group_events(p, VMCG_EVENT_LOW, false), ==, 1);
	g_assert_cmpuint(vmcg_group_events(p, VMCG_EVENT_LOW, true), ==, 0);
	free(items);

	/* Floors cap what a VM gives. */
	vmcg_vm_set_floor(b1, 280);
	g_assert_cmpuint(vmcg_vm_floor(b1), ==, 280);
	g_assert_cmpint(vmcg_group_plan_reclaim(bulk, 100, &items, &n, &sum), ==, 0);
	g_assert_cmpuint(sum.planned_pages, ==, 100);
	for (size_t i = 0; i < n; i++)
		if (items[i].vm == b1)
			g_assert_cmpuint(items[i].take_pages, ==, 20);
	free(items);

	/* An empty group plans nothing. */
	g_assert_cmpint(vmcg_group_plan_reclaim(vmcg_tree_root(t), 0, &items, &n, &sum), ==, 0);
	g_assert_cmpuint(n, ==, 0);
	g_assert_null(items);
	vmcg_tree_free(t);
}

/*
 * OOM in /d:
 *
 *   /d
 *   |- /d/g  oom.group     vm g1 300, vm g2 10
 *   `- /d/h                vm h1 200
 *
 * g1 is the biggest, and its group has oom.group: both g1 and g2 go.
 * Without oom.group only g1. With g1 at priority -1000: h1.
 */
static void test_oom_select(void)
{
	VmcgTree *t;
	VmcgGroup *d, *g, *h;
	VmcgVm *g1, *g2, *h1, **v;
	size_t n;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	d = mk(t, "/d");
	g = mk(t, "/d/g");
	h = mk(t, "/d/h");
	g1 = vm_in(g, "g1", 300);
	g2 = vm_in(g, "g2", 10);
	h1 = vm_in(h, "h1", 200);
	vmcg_group_set_oom_group(g, true);
	g_assert_true(vmcg_group_oom_group(g));

	g_assert_cmpint(vmcg_group_oom_select(d, &v, &n), ==, 0);
	g_assert_cmpuint(n, ==, 2);
	g_assert_true((v[0] == g1 && v[1] == g2) || (v[0] == g2 && v[1] == g1));
	free(v);

	vmcg_group_set_oom_group(g, false);
	g_assert_cmpint(vmcg_group_oom_select(d, &v, &n), ==, 0);
	g_assert_cmpuint(n, ==, 1);
	g_assert_true(v[0] == g1);
	free(v);

	g_assert_cmpint(vmcg_vm_set_oom_priority(g1, -1000), ==, 0);
	g_assert_cmpint(vmcg_group_oom_select(d, &v, &n), ==, 0);
	g_assert_true(v[0] == h1);
	free(v);

	/* oom.group above the domain does not widen it. */
	vmcg_group_set_oom_group(d, true);
	g_assert_cmpint(vmcg_group_oom_select(h, &v, &n), ==, 0);
	g_assert_cmpuint(n, ==, 1);
	g_assert_true(v[0] == h1);
	free(v);

	vmcg_vm_set_oom_eligible(h1, false);
	vmcg_vm_set_oom_eligible(g2, false);
	g_assert_cmpint(vmcg_group_oom_select(d, &v, &n), ==, -ESRCH);
	g_assert_cmpint(vmcg_group_oom_select(vmcg_tree_root(t), &v, &n), ==, -ESRCH);
	g_assert_null(v);
	vmcg_tree_free(t);
}

static void test_knobs(void)
{
	VmcgTree *t;
	VmcgGroup *g;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	g = mk(t, "/g");
	g_assert_cmpint(vmcg_group_set_min(g, 1), ==, 0);
	g_assert_cmpint(vmcg_group_set_low(g, 2), ==, 0);
	g_assert_cmpint(vmcg_group_set_high(g, 3), ==, 0);
	g_assert_cmpint(vmcg_group_set_max(g, 4), ==, 0);
	g_assert_cmpuint(vmcg_group_min(g), ==, 1);
	g_assert_cmpuint(vmcg_group_low(g), ==, 2);
	g_assert_cmpuint(vmcg_group_high(g), ==, 3);
	g_assert_cmpuint(vmcg_group_max(g), ==, 4);
	g_assert_cmpint(vmcg_group_set_oom_action(g, VMCG_OOM_PAUSE), ==, 0);
	g_assert_cmpint(vmcg_group_oom_action(g), ==, VMCG_OOM_PAUSE);
	g_assert_cmpint(vmcg_group_set_oom_action(g, (VmcgOomAction)7), ==, -EINVAL);
	g_assert_cmpint(vmcg_group_oom_action(g), ==, VMCG_OOM_PAUSE);
	g_assert_cmpint(vmcg_tree_set_stock_batch(t, 0), ==, -EINVAL);
	g_assert_cmpint(vmcg_tree_set_stock_batch(t, VMCG_STOCK_BATCH_MAX + 1), ==, -EINVAL);
	g_assert_cmpint(vmcg_tree_set_stock_batch(t, 16), ==, 0);
	g_assert_cmpuint(vmcg_tree_stock_batch(t), ==, 16);
	vmcg_tree_free(t);
	g_assert_cmpint(
		vmcg_tree_new(&(VmcgTreeOptions){ .stock_batch = VMCG_STOCK_BATCH_MAX + 1 }, &t),
		==, -EINVAL);
	vmcg_tree_free(NULL);
}

/*
 * A cap on memory.max (a cluster grant, docs/cluster.md): the lower of the
 * two is enforced, memory.max as set is kept apart.
 */
static void test_max_cap(void)
{
	static const struct {
		uint64_t max, cap, want_effective;
	} rows[] = {
		{ VMCG_PAGES_MAX, VMCG_PAGES_MAX, VMCG_PAGES_MAX }, /* neither */
		{ 100, VMCG_PAGES_MAX, 100 },			    /* max only */
		{ VMCG_PAGES_MAX, 50, 50 },			    /* cap only */
		{ 100, 50, 50 },				    /* cap lower */
		{ 30, 50, 30 },					    /* max lower */
		{ 100, 100, 100 },
		{ 100, VMCG_PAGES_MAX + 5, 100 }, /* "max" or more: no cap */
	};
	VmcgGroup *over = NULL;
	VmcgTree *t;
	VmcgGroup *g;
	VmcgVm *vm;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	g = mk(t, "/g");
	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		g_assert_cmpint(vmcg_group_set_max(g, rows[i].max), ==, 0);
		g_assert_cmpint(vmcg_group_set_max_cap(g, rows[i].cap), ==, 0);
		g_assert_cmpuint(vmcg_group_max(g), ==, MIN(rows[i].max, VMCG_PAGES_MAX));
		g_assert_cmpuint(vmcg_group_max_cap(g), ==, MIN(rows[i].cap, VMCG_PAGES_MAX));
		g_assert_cmpuint(vmcg_group_max_effective(g), ==, rows[i].want_effective);
	}
	/* The cap is enforced on charges, and memory.max changes keep it. */
	g_assert_cmpint(vmcg_group_set_max(g, 100), ==, 0);
	g_assert_cmpint(vmcg_group_set_max_cap(g, 40), ==, 0);
	g_assert_cmpint(vmcg_vm_new(g, "v", &vm), ==, 0);
	g_assert_cmpint(vmcg_vm_try_charge(vm, 40, &over), ==, 0);
	g_assert_cmpint(vmcg_vm_try_charge(vm, 1, &over), ==, -ENOMEM);
	g_assert_true(over == g);
	g_assert_cmpint(vmcg_group_set_max(g, 200), ==, 0);
	g_assert_cmpuint(vmcg_group_max_effective(g), ==, 40);
	g_assert_cmpint(vmcg_vm_try_charge(vm, 1, &over), ==, -ENOMEM);
	/* Lifted: up to memory.max again. */
	g_assert_cmpint(vmcg_group_set_max_cap(g, VMCG_PAGES_MAX), ==, 0);
	g_assert_cmpint(vmcg_vm_try_charge(vm, 60, &over), ==, 0);
	g_assert_cmpuint(vmcg_group_current(g), ==, 100);
	/* Lowered under usage: accepted, the group is over its (effective) max. */
	g_assert_cmpint(vmcg_group_set_max_cap(g, 80), ==, 0);
	g_assert_true(vmcg_group_over_max(g));
	g_assert_cmpuint(vmcg_group_max(g), ==, 200);
	g_assert_cmpint(vmcg_vm_uncharge(vm, 100), ==, 0);
	vmcg_vm_free(vm);
	/* The root takes no cap, as it takes no max. */
	g_assert_cmpint(vmcg_group_set_max_cap(vmcg_tree_root(t), 10), ==, -EPERM);
	vmcg_tree_free(t);
}

/*
 * Many siblings, and the same names under different parents: children are
 * found by a hash of (parent, name), which removal, moves and the table's
 * growth must keep exact; the child list keeps creation order (appended
 * through its tail, which removal of the last child moves back).
 *
 *   /s0 ... /s2999, each /sI/x; /s0/x moved under /s1 as /s1/x/x ...
 */
static void test_many_siblings(void)
{
	enum {
		N = 3000
	};
	VmcgTree *t;
	VmcgGroup *g, *x0, *s1x, *last;
	char path[64];
	size_t i;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	for (i = 0; i < N; i++) {
		snprintf(path, sizeof(path), "/s%zu", i);
		mk(t, path);
		snprintf(path, sizeof(path), "/s%zu/x", i);
		mk(t, path);
	}
	g_assert_cmpuint(vmcg_tree_nr_groups(t), ==, 2 * N + 1);
	for (i = 0; i < N; i++) {
		snprintf(path, sizeof(path), "/s%zu/x", i);
		g_assert_cmpint(vmcg_group_lookup(t, path, &g), ==, 0);
		g_assert_cmpstr(vmcg_group_path(g), ==, path);
	}
	g_assert_cmpint(vmcg_group_lookup(t, "/s3000", &g), ==, -ENOENT);
	g_assert_cmpint(vmcg_group_lookup(t, "/s1/y", &g), ==, -ENOENT);
	g_assert_cmpint(vmcg_group_create(t, "/s7", NULL), ==, -EEXIST);

	/* Creation order, through the tail. */
	i = 0;
	for (g = vmcg_group_first_child(vmcg_tree_root(t)); g; g = vmcg_group_next_sibling(g)) {
		snprintf(path, sizeof(path), "s%zu", i++);
		g_assert_cmpstr(vmcg_group_name(g), ==, path);
	}
	g_assert_cmpuint(i, ==, N);

	/* Remove the last child: the next one appended comes after the new last. */
	g_assert_cmpint(vmcg_group_lookup(t, "/s2999/x", &g), ==, 0);
	g_assert_cmpint(vmcg_group_remove(g, 0), ==, 0);
	g_assert_cmpint(vmcg_group_lookup(t, "/s2999", &g), ==, 0);
	g_assert_cmpint(vmcg_group_remove(g, 0), ==, 0);
	g_assert_cmpint(vmcg_group_lookup(t, "/s2999", &g), ==, -ENOENT);
	last = mk(t, "/new");
	g_assert_cmpint(vmcg_group_lookup(t, "/s2998", &g), ==, 0);
	g_assert_true(vmcg_group_next_sibling(g) == last);

	/* A move re-files the group under its new parent. */
	g_assert_cmpint(vmcg_group_lookup(t, "/s0/x", &x0), ==, 0);
	g_assert_cmpint(vmcg_group_lookup(t, "/s1/x", &s1x), ==, 0);
	g_assert_cmpint(vmcg_group_move(x0, s1x, 0, NULL), ==, 0);
	g_assert_cmpint(vmcg_group_lookup(t, "/s0/x", &g), ==, -ENOENT);
	g_assert_cmpint(vmcg_group_lookup(t, "/s1/x/x", &g), ==, 0);
	g_assert_true(g == x0);
	g_assert_cmpint(vmcg_group_lookup(t, "/s1/x", &g), ==, 0);
	g_assert_true(g == s1x);
	g_assert_cmpint(vmcg_group_create(t, "/s0/x", &g), ==, 0);
	g_assert_true(g != x0);
	vmcg_tree_free(t);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/group/path-syntax", test_path_syntax);
	g_test_add_func("/group/create-lookup", test_create_lookup);
	g_test_add_func("/group/iteration-order", test_iteration_order);
	g_test_add_func("/group/remove", test_remove);
	g_test_add_func("/group/many-siblings", test_many_siblings);
	g_test_add_func("/group/move", test_group_move);
	g_test_add_func("/group/move-too-deep", test_move_too_deep);
	g_test_add_func("/group/psi-hierarchy", test_psi_hierarchy);
	g_test_add_func("/group/move-keeps-vmpressure", test_move_keeps_vmpressure);
	g_test_add_func("/group/stats", test_stats);
	g_test_add_func("/group/plan-reclaim", test_plan_reclaim);
	g_test_add_func("/group/oom-select", test_oom_select);
	g_test_add_func("/group/knobs", test_knobs);
	g_test_add_func("/group/max-cap", test_max_cap);
	return g_test_run();
}
