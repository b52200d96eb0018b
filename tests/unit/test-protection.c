// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Effective protection: the kernel's effective_protection() on scenario
 * trees (numbers in pages, worked out in each comment), with and without
 * recursive protection, and the VM-level split of a group's protection.
 */
#include <errno.h>

#include "test-util.h"
#include "test-tree.h"
#include "vmcg/group.h"

static void test_formula(void)
{
	/* First rule: within budget, a child keeps min(usage, setting). */
	g_assert_cmpuint(vmcg_effective_protection(50, 150, 30, 200, 50, false), ==, 30);
	/* Overcommitted: protected * parent_effective / siblings_protected. */
	g_assert_cmpuint(vmcg_effective_protection(50, 150, 75, 50, 75, false), ==, 33);
	/* Recursive: plus unclaimed * (usage - protected) / (parent_usage - siblings). */
	g_assert_cmpuint(vmcg_effective_protection(50, 150, 30, 200, 50, true), ==, 60);
	/* No usage above protection: nothing floats in. */
	g_assert_cmpuint(vmcg_effective_protection(30, 150, 30, 200, 50, true), ==, 30);
	/* Huge values do not overflow (2^50 pages x 2^50 pages). */
	g_assert_cmpuint(vmcg_effective_protection(UINT64_C(1) << 50, UINT64_C(1) << 51,
						   UINT64_C(1) << 50, UINT64_C(1) << 49,
						   UINT64_C(1) << 50, false),
			 ==, UINT64_C(1) << 49);
}

/*
 * The overcommitted tree of the kernel's test_memcg_min(), in pages:
 *
 *   A (reclaim root)
 *   `- B        min 50            usage 150
 *      |- C     min 75  usage 50  -> 50 * 50 / 75 = 33
 *      |- D     min 25  usage 50  -> 25 * 50 / 75 = 16
 *      |- E     min 0   usage 50  -> 0
 *      `- F     min 500 usage 0   -> 0
 *
 * B is a child of the root: its emin is its setting, 50. Its children
 * claim and use min(50,75) + min(50,25) = 75 > 50, so they split B's 50
 * in proportion to their protected usage.
 */
static void test_overcommit(void)
{
	VmcgTree *t;
	VmcgGroup *a, *b, *c, *d, *e, *f;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	a = mk(t, "/A");
	b = mk(t, "/A/B");
	c = mk(t, "/A/B/C");
	d = mk(t, "/A/B/D");
	e = mk(t, "/A/B/E");
	f = mk(t, "/A/B/F");
	vmcg_group_set_min(b, 50);
	vmcg_group_set_min(c, 75);
	vmcg_group_set_min(d, 25);
	vmcg_group_set_min(f, 500);
	vm_in(c, "c", 50);
	vm_in(d, "d", 50);
	vm_in(e, "e", 50);

	vmcg_tree_calculate_protection(a);
	g_assert_cmpuint(vmcg_group_emin(b), ==, 50);
	g_assert_cmpuint(vmcg_group_emin(c), ==, 33);
	g_assert_cmpuint(vmcg_group_emin(d), ==, 16);
	g_assert_cmpuint(vmcg_group_emin(e), ==, 0);
	g_assert_cmpuint(vmcg_group_emin(f), ==, 0);
	/* The same numbers for low. */
	vmcg_group_set_low(b, 50);
	vmcg_group_set_low(c, 75);
	vmcg_group_set_low(d, 25);
	vmcg_tree_calculate_protection(a);
	g_assert_cmpuint(vmcg_group_elow(c), ==, 33);
	g_assert_cmpuint(vmcg_group_elow(d), ==, 16);
	/* The reclaim root's own protection is ignored. */
	vmcg_tree_calculate_protection(b);
	g_assert_cmpuint(vmcg_group_emin(c), ==, 75);
	g_assert_cmpuint(vmcg_group_emin(d), ==, 25);
	vmcg_tree_free(t);
}

/*
 * Undercommitted, with and without memory_recursiveprot:
 *
 *   A (reclaim root)
 *   `- B        min 200           usage 150
 *      |- C     min 30  usage 50
 *      |- D     min 20  usage 50
 *      `- E     min 0   usage 50
 *
 * Claimed: 30 + 20 = 50 <= 200.
 * Plain:      C 30, D 20, E 0 (each its own setting).
 * Recursive:  unclaimed 200 - 50 = 150 floats in proportion to
 *             unprotected usage, out of 150 - 50 = 100:
 *             C 30 + 150*20/100 = 60, D 20 + 150*30/100 = 65,
 *             E 0 + 150*50/100 = 75; total 200 = B's protection.
 */
static void test_undercommit(void)
{
	VmcgTree *t;
	VmcgGroup *a, *b, *c, *d, *e;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	a = mk(t, "/A");
	b = mk(t, "/A/B");
	c = mk(t, "/A/B/C");
	d = mk(t, "/A/B/D");
	e = mk(t, "/A/B/E");
	vmcg_group_set_min(b, 200);
	vmcg_group_set_min(c, 30);
	vmcg_group_set_min(d, 20);
	vm_in(c, "c", 50);
	vm_in(d, "d", 50);
	vm_in(e, "e", 50);

	vmcg_tree_calculate_protection(a);
	g_assert_cmpuint(vmcg_group_emin(c), ==, 30);
	g_assert_cmpuint(vmcg_group_emin(d), ==, 20);
	g_assert_cmpuint(vmcg_group_emin(e), ==, 0);

	vmcg_tree_set_recursive_protection(t, true);
	g_assert_true(vmcg_tree_recursive_protection(t));
	vmcg_tree_calculate_protection(a);
	g_assert_cmpuint(vmcg_group_emin(c), ==, 60);
	g_assert_cmpuint(vmcg_group_emin(d), ==, 65);
	g_assert_cmpuint(vmcg_group_emin(e), ==, 75);
	vmcg_tree_free(t);
}

/*
 * Delegation: a grandchild can never get more than its parent's effective
 * protection, whatever it declares.
 *
 *   root (reclaim root)
 *   `- T        low 100           usage 300
 *      `- U     low 1000          usage 300
 *         `- V  low 1000  usage 300   -> capped to 100 at each level
 */
static void test_capped_by_parent(void)
{
	VmcgTree *t;
	VmcgGroup *tg, *u, *v;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	tg = mk(t, "/T");
	u = mk(t, "/T/U");
	v = mk(t, "/T/U/V");
	vmcg_group_set_low(tg, 100);
	vmcg_group_set_low(u, 1000);
	vmcg_group_set_low(v, 1000);
	vm_in(v, "v", 300);
	vmcg_tree_calculate_protection(vmcg_tree_root(t));
	g_assert_cmpuint(vmcg_group_elow(tg), ==, 100);
	g_assert_cmpuint(vmcg_group_elow(u), ==, 100);
	g_assert_cmpuint(vmcg_group_elow(v), ==, 100);
	vmcg_tree_free(t);
}

/*
 * VMs share their group's protection in proportion to usage:
 *
 *   root (reclaim root)
 *   `- G   min 100  low 150   usage 200
 *      |- vm1  usage 60   -> emin 100*60/200 = 30,  elow 150*60/200 = 45
 *      `- vm2  usage 140  -> emin 70,               elow 105
 *
 * A VM directly in the reclaim root gets nothing: the root's protection
 * does not apply against itself.
 */
static void test_vm_share(void)
{
	VmcgTree *t;
	VmcgGroup *g;
	VmcgVm *v1, *v2, *v3;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	g = mk(t, "/G");
	vmcg_group_set_min(g, 100);
	vmcg_group_set_low(g, 150);
	v1 = vm_in(g, "vm1", 60);
	v2 = vm_in(g, "vm2", 140);
	v3 = vm_in(vmcg_tree_root(t), "vm3", 500);
	vmcg_tree_calculate_protection(vmcg_tree_root(t));
	g_assert_cmpuint(vmcg_vm_emin(v1), ==, 30);
	g_assert_cmpuint(vmcg_vm_emin(v2), ==, 70);
	g_assert_cmpuint(vmcg_vm_elow(v1), ==, 45);
	g_assert_cmpuint(vmcg_vm_elow(v2), ==, 105);
	g_assert_cmpuint(vmcg_vm_emin(v3), ==, 0);
	/* Reclaim rooted at G: G's own protection does not count. */
	vmcg_tree_calculate_protection(g);
	g_assert_cmpuint(vmcg_vm_emin(v1), ==, 0);
	g_assert_cmpuint(vmcg_vm_elow(v2), ==, 0);
	vmcg_tree_free(t);
}

/* Root takes no limits, as the root cgroup has none. */
static void test_root_knobs(void)
{
	VmcgTree *t;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	g_assert_cmpint(vmcg_group_set_min(vmcg_tree_root(t), 1), ==, -EPERM);
	g_assert_cmpint(vmcg_group_set_low(vmcg_tree_root(t), 1), ==, -EPERM);
	g_assert_cmpint(vmcg_group_set_high(vmcg_tree_root(t), 1), ==, -EPERM);
	g_assert_cmpint(vmcg_group_set_max(vmcg_tree_root(t), 1), ==, -EPERM);
	vmcg_tree_free(t);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/protection/formula", test_formula);
	g_test_add_func("/protection/overcommit", test_overcommit);
	g_test_add_func("/protection/undercommit", test_undercommit);
	g_test_add_func("/protection/capped-by-parent", test_capped_by_parent);
	g_test_add_func("/protection/vm-share", test_vm_share);
	g_test_add_func("/protection/root-knobs", test_root_knobs);
	return g_test_run();
}
