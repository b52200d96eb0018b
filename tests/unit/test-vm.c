// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * VMs: names, attach/detach, the charge path with max events, underflow,
 * overhead accounting, moves (errors, charge transfer, atomicity against a
 * concurrent reader while other threads charge).
 */
#include <errno.h>
#include <pthread.h>

#include "test-util.h"
#include "test-tree.h"
#include "vmcg/group.h"
#include "vmcg/oom.h"

static void test_names(void)
{
	char longname[VMCG_VM_NAME_MAX + 2];
	VmcgTree *t;
	VmcgVm *vm, *found;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	g_assert_cmpint(vmcg_vm_new(vmcg_tree_root(t), "", &vm), ==, -EINVAL);
	g_assert_cmpint(vmcg_vm_new(vmcg_tree_root(t), NULL, &vm), ==, -EINVAL);
	g_assert_cmpint(vmcg_vm_new(vmcg_tree_root(t), "a/b", &vm), ==, -EINVAL);
	g_assert_cmpint(vmcg_vm_new(vmcg_tree_root(t), "a\tb", &vm), ==, -EINVAL);
	memset(longname, 'v', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	g_assert_cmpint(vmcg_vm_new(vmcg_tree_root(t), longname, &vm), ==, -ENAMETOOLONG);
	longname[VMCG_VM_NAME_MAX] = '\0';
	g_assert_cmpint(vmcg_vm_new(vmcg_tree_root(t), longname, &vm), ==, 0);
	g_assert_cmpint(vmcg_vm_new(vmcg_tree_root(t), "web-1 (prod)", &vm), ==, 0);
	g_assert_cmpint(vmcg_vm_new(vmcg_tree_root(t), "web-1 (prod)", &found), ==, -EEXIST);
	g_assert_cmpint(vmcg_vm_lookup(t, "web-1 (prod)", &found), ==, 0);
	g_assert_true(found == vm);
	g_assert_cmpint(vmcg_vm_lookup(t, "nope", &found), ==, -ENOENT);
	g_assert_cmpuint(vmcg_tree_nr_vms(t), ==, 2);
	vmcg_vm_free(vm);
	g_assert_cmpint(vmcg_vm_lookup(t, "web-1 (prod)", &found), ==, -ENOENT);
	g_assert_cmpuint(vmcg_tree_nr_vms(t), ==, 1);
	vmcg_vm_free(NULL);
	vmcg_tree_free(t);
}

static void test_charge_and_max_event(void)
{
	VmcgTree *t;
	VmcgGroup *a, *b, *over = NULL;
	VmcgVm *vm;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	a = mk(t, "/a");
	b = mk(t, "/a/b");
	g_assert_cmpint(vmcg_vm_new(b, "vm", &vm), ==, 0);
	vmcg_group_set_max(a, 100);
	g_assert_cmpint(vmcg_vm_try_charge(vm, 100, &over), ==, 0);
	g_assert_cmpint(vmcg_vm_try_charge(vm, 1, &over), ==, -ENOMEM);
	g_assert_true(over == a);
	g_assert_cmpuint(vmcg_group_events(a, VMCG_EVENT_MAX, true), ==, 1);
	g_assert_cmpuint(vmcg_group_events(a, VMCG_EVENT_MAX, false), ==, 1);
	g_assert_cmpuint(vmcg_group_events(b, VMCG_EVENT_MAX, false), ==, 0);
	g_assert_cmpuint(vmcg_group_events(vmcg_tree_root(t), VMCG_EVENT_MAX, false), ==, 1);
	g_assert_cmpuint(vmcg_vm_current(vm), ==, 100);
	g_assert_cmpint(vmcg_vm_try_charge(vm, 0, &over), ==, 0);

	/* Forced charges go through (resident pages cannot be refused). */
	vmcg_vm_charge(vm, 20);
	g_assert_true(vmcg_group_over_max(a));
	g_assert_cmpuint(vmcg_group_current(a), ==, 120);

	g_assert_cmpint(vmcg_vm_uncharge(vm, 121), ==, -ERANGE);
	g_assert_cmpuint(vmcg_vm_current(vm), ==, 120);
	g_assert_cmpint(vmcg_vm_uncharge(vm, 120), ==, 0);
	g_assert_cmpuint(vmcg_group_current(vmcg_tree_root(t)), ==, 0);
	vmcg_tree_free(t);
}

static void test_over_high(void)
{
	VmcgTree *t;
	VmcgGroup *a, *b;
	VmcgVm *vm;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	a = mk(t, "/a");
	b = mk(t, "/a/b");
	g_assert_cmpint(vmcg_vm_new(b, "vm", &vm), ==, 0);
	vmcg_group_set_high(a, 50);
	vmcg_vm_charge(vm, 50);
	g_assert_null(vmcg_vm_over_high(vm));
	vmcg_vm_charge(vm, 1);
	g_assert_true(vmcg_vm_over_high(vm) == a);
	vmcg_group_set_high(b, 10);
	g_assert_true(vmcg_vm_over_high(vm) == b);
	vmcg_tree_free(t);
}

/* Detach takes the VM's whole charge (guest and overhead) out of the tree. */
static void test_free_uncharges(void)
{
	VmcgTree *t;
	VmcgGroup *a;
	VmcgVm *vm;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	a = mk(t, "/a");
	vmcg_group_set_overhead_counted(a, true);
	g_assert_cmpint(vmcg_vm_new(a, "vm", &vm), ==, 0);
	vmcg_vm_charge(vm, 300);
	vmcg_vm_set_overhead(vm, 25);
	g_assert_cmpuint(vmcg_group_current(a), ==, 325);
	vmcg_vm_free(vm);
	g_assert_cmpuint(vmcg_group_current(a), ==, 0);
	g_assert_cmpuint(vmcg_group_current(vmcg_tree_root(t)), ==, 0);
	vmcg_tree_free(t);
}

/*
 * Overhead: reported always, charged only where the group counts it.
 *
 *   /counted (overhead counted)   /plain
 *   vm: 100 guest + 10 overhead -> /counted 110; moved to /plain -> 100
 */
static void test_overhead(void)
{
	VmcgTree *t;
	VmcgGroup *counted, *plain;
	VmcgVm *vm;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	counted = mk(t, "/counted");
	plain = mk(t, "/plain");
	vmcg_group_set_overhead_counted(counted, true);
	g_assert_true(vmcg_group_overhead_counted(counted));
	g_assert_cmpint(vmcg_vm_new(counted, "vm", &vm), ==, 0);
	vmcg_vm_charge(vm, 100);
	vmcg_vm_set_overhead(vm, 10);
	g_assert_cmpuint(vmcg_group_current(counted), ==, 110);
	g_assert_cmpuint(vmcg_vm_stat(vm, VMCG_STAT_GUEST), ==, 100);
	g_assert_cmpuint(vmcg_vm_stat(vm, VMCG_STAT_OVERHEAD), ==, 10);
	vmcg_vm_set_overhead(vm, 4);
	g_assert_cmpuint(vmcg_group_current(counted), ==, 104);

	g_assert_cmpint(vmcg_vm_move(vm, plain, 0, NULL), ==, 0);
	g_assert_cmpuint(vmcg_group_current(counted), ==, 0);
	g_assert_cmpuint(vmcg_group_current(plain), ==, 100);
	g_assert_cmpuint(vmcg_vm_stat(vm, VMCG_STAT_OVERHEAD), ==, 4);
	g_assert_cmpuint(vmcg_vm_stat(vm, VMCG_STAT_GUEST), ==, 100);

	vmcg_group_set_overhead_counted(plain, true);
	g_assert_cmpuint(vmcg_group_current(plain), ==, 104);
	vmcg_group_set_overhead_counted(plain, false);
	g_assert_cmpuint(vmcg_group_current(plain), ==, 100);
	vmcg_tree_free(t);
}

/*
 * Credit cached outside the engine (hook mode's shared slots) is charged
 * like guest pages but shown as stock, and guest is the rest.
 *
 *   /h   vm: 100 pages charged, 30 of them slot credit
 */
static void test_external_stock(void)
{
	VmcgTree *t;
	VmcgGroup *h;
	VmcgVm *vm;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	h = mk(t, "/h");
	g_assert_cmpint(vmcg_vm_new(h, "vm", &vm), ==, 0);
	vmcg_vm_charge(vm, 100);
	g_assert_cmpuint(vmcg_vm_stat(vm, VMCG_STAT_STOCK), ==, 0);
	vmcg_vm_set_external_stock(vm, 30);
	g_assert_cmpuint(vmcg_vm_stat(vm, VMCG_STAT_STOCK), ==, 30);
	g_assert_cmpuint(vmcg_vm_stat(vm, VMCG_STAT_GUEST), ==, 70);
	g_assert_cmpuint(vmcg_group_stat(h, VMCG_STAT_STOCK), ==, 30);
	g_assert_cmpuint(vmcg_group_stat(h, VMCG_STAT_GUEST), ==, 70);
	g_assert_cmpuint(vmcg_group_current(h), ==, 100);
	/* Not settable as a plain stat: it is derived. */
	g_assert_cmpint(vmcg_vm_set_stat(vm, VMCG_STAT_STOCK, 5), ==, -EINVAL);
	/* Over the charge (a stale report): guest never goes negative. */
	vmcg_vm_set_external_stock(vm, 150);
	g_assert_cmpuint(vmcg_vm_stat(vm, VMCG_STAT_GUEST), ==, 0);
	vmcg_vm_set_external_stock(vm, 0);
	g_assert_cmpuint(vmcg_vm_stat(vm, VMCG_STAT_GUEST), ==, 100);
	vmcg_tree_free(t);
}

static void test_move(void)
{
	VmcgTree *t, *t2;
	VmcgGroup *a, *b, *c, *over = NULL;
	VmcgVm *vm;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	g_assert_cmpint(vmcg_tree_new(NULL, &t2), ==, 0);
	a = mk(t, "/a");
	b = mk(t, "/b");
	c = mk(t, "/b/c");
	g_assert_cmpint(vmcg_vm_new(a, "vm", &vm), ==, 0);
	vmcg_vm_charge(vm, 80);
	g_assert_cmpint(vmcg_vm_move(vm, vmcg_tree_root(t2), 0, NULL), ==, -EINVAL);
	g_assert_cmpint(vmcg_vm_move(vm, a, 0, NULL), ==, 0);

	vmcg_group_set_max(b, 50);
	g_assert_cmpint(vmcg_vm_move(vm, c, 0, &over), ==, -ENOMEM);
	g_assert_true(over == b);
	g_assert_true(vmcg_vm_group(vm) == a);
	g_assert_cmpuint(vmcg_group_current(a), ==, 80);
	g_assert_cmpuint(vmcg_group_current(b), ==, 0);
	/* A refused move is not a "max" event: no charge was attempted by the guest. */
	g_assert_cmpuint(vmcg_group_events(b, VMCG_EVENT_MAX, false), ==, 0);

	vmcg_group_set_max(b, 100);
	g_assert_cmpint(vmcg_vm_move(vm, c, 0, NULL), ==, 0);
	g_assert_true(vmcg_vm_group(vm) == c);
	g_assert_true(vmcg_group_first_vm(c) == vm);
	g_assert_null(vmcg_group_first_vm(a));
	g_assert_cmpuint(vmcg_group_current(a), ==, 0);
	g_assert_cmpuint(vmcg_group_current(b), ==, 80);
	g_assert_cmpuint(vmcg_group_current(c), ==, 80);
	g_assert_cmpuint(vmcg_group_current(vmcg_tree_root(t)), ==, 80);

	/* Move within a subtree: the common ancestor keeps its usage. */
	g_assert_cmpint(vmcg_vm_move(vm, b, 0, NULL), ==, 0);
	g_assert_cmpuint(vmcg_group_current(b), ==, 80);
	g_assert_cmpuint(vmcg_group_current(c), ==, 0);

	vmcg_group_set_max(a, 10);
	g_assert_cmpint(vmcg_vm_move(vm, a, VMCG_MOVE_FORCE, NULL), ==, 0);
	g_assert_cmpuint(vmcg_group_current(a), ==, 80);
	g_assert_cmpuint(vmcg_group_current(b), ==, 0);
	vmcg_tree_free(t);
	vmcg_tree_free(t2);
}

static void test_priority(void)
{
	VmcgTree *t;
	VmcgVm *vm;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	g_assert_cmpint(vmcg_vm_new(vmcg_tree_root(t), "vm", &vm), ==, 0);
	g_assert_cmpint(vmcg_vm_set_oom_priority(vm, VMCG_OOM_PRIORITY_MAX + 1), ==, -EINVAL);
	g_assert_cmpint(vmcg_vm_set_oom_priority(vm, VMCG_OOM_PRIORITY_MIN - 1), ==, -EINVAL);
	g_assert_cmpint(vmcg_vm_oom_priority(vm), ==, 0);
	g_assert_cmpint(vmcg_vm_set_oom_priority(vm, -500), ==, 0);
	g_assert_cmpint(vmcg_vm_oom_priority(vm), ==, -500);
	g_assert_true(vmcg_vm_oom_eligible(vm));
	vmcg_vm_set_userdata(vm, t);
	g_assert_true(vmcg_vm_get_userdata(vm) == t);
	vmcg_tree_free(t);
}

/*
 * A VM bounces between /x/a and /y/b while two threads charge and
 * uncharge it and a reader checks, under the seqcount, that the VM's
 * charge is always in exactly one of the two subtrees:
 *     current(/x) + current(/y) == current(/)
 * (the root sees every charge; /x and /y must not both or neither have it).
 * Afterwards everything is exactly zero.
 */
typedef struct {
	VmcgTree *t;
	VmcgGroup *x, *y, *a, *b;
	VmcgVm *vm;
	atomic_bool stop;
	unsigned rounds;
	unsigned inconsistent;
	unsigned reads;
} MoveRace;

static void *charger(void *arg)
{
	MoveRace *m = arg;

	for (unsigned i = 0; i < m->rounds; i++) {
		vmcg_vm_charge(m->vm, 3);
		g_assert_cmpint(vmcg_vm_uncharge(m->vm, 3), ==, 0);
	}
	return NULL;
}

static void *reader(void *arg)
{
	MoveRace *m = arg;

	while (!atomic_load(&m->stop)) {
		uint64_t x, y, vmu;
		unsigned seq;

		do {
			seq = vmcg_tree_read_begin(m->t);
			x = vmcg_group_current(m->x);
			y = vmcg_group_current(m->y);
			vmu = vmcg_vm_current(m->vm);
		} while (vmcg_tree_read_retry(m->t, seq));
		/* Chargers run concurrently, so compare against the fixed base. */
		if (x + y < 1000 || (x >= 1000) == (y >= 1000))
			m->inconsistent++;
		(void)vmu;
		m->reads++;
	}
	return NULL;
}

static void test_move_race(void)
{
	MoveRace m = { 0 };
	pthread_t c1, c2, r;
	unsigned moves = 200000 / test_scale_div();

	g_assert_cmpint(vmcg_tree_new(NULL, &m.t), ==, 0);
	m.x = mk(m.t, "/x");
	m.y = mk(m.t, "/y");
	/* Deep leaves: a longer transfer walk widens the window a bug would show in. */
	m.a = mk(m.t, "/x/a");
	m.a = mk(m.t, "/x/a/a");
	m.a = mk(m.t, "/x/a/a/a");
	m.a = mk(m.t, "/x/a/a/a/a");
	m.a = mk(m.t, "/x/a/a/a/a/a");
	m.b = mk(m.t, "/y/b");
	m.b = mk(m.t, "/y/b/b");
	m.b = mk(m.t, "/y/b/b/b");
	m.b = mk(m.t, "/y/b/b/b/b");
	m.b = mk(m.t, "/y/b/b/b/b/b");
	g_assert_cmpint(vmcg_vm_new(m.a, "vm", &m.vm), ==, 0);
	vmcg_vm_charge(m.vm, 1000);
	m.rounds = 200000 / test_scale_div();

	pthread_create(&r, NULL, reader, &m);
	pthread_create(&c1, NULL, charger, &m);
	pthread_create(&c2, NULL, charger, &m);
	for (unsigned i = 0; i < moves; i++)
		g_assert_cmpint(vmcg_vm_move(m.vm, i & 1 ? m.a : m.b, 0, NULL), ==, 0);
	pthread_join(c1, NULL);
	pthread_join(c2, NULL);
	atomic_store(&m.stop, true);
	pthread_join(r, NULL);

	g_assert_cmpuint(m.inconsistent, ==, 0);
	g_assert_cmpuint(m.reads, >, 0);
	g_assert_true(vmcg_vm_group(m.vm) == m.a);
	g_assert_cmpuint(vmcg_group_current(m.a), ==, 1000);
	g_assert_cmpuint(vmcg_group_current(m.x), ==, 1000);
	g_assert_cmpuint(vmcg_group_current(m.b), ==, 0);
	g_assert_cmpuint(vmcg_group_current(m.y), ==, 0);
	g_assert_cmpuint(atomic_load(&vmcg_group_counter(m.y)->underflows), ==, 0);
	g_assert_cmpint(vmcg_vm_uncharge(m.vm, 1000), ==, 0);
	g_assert_cmpuint(vmcg_group_current(vmcg_tree_root(m.t)), ==, 0);
	vmcg_tree_free(m.t);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/vm/names", test_names);
	g_test_add_func("/vm/charge-and-max-event", test_charge_and_max_event);
	g_test_add_func("/vm/over-high", test_over_high);
	g_test_add_func("/vm/free-uncharges", test_free_uncharges);
	g_test_add_func("/vm/overhead", test_overhead);
	g_test_add_func("/vm/external-stock", test_external_stock);
	g_test_add_func("/vm/move", test_move);
	g_test_add_func("/vm/priority", test_priority);
	g_test_add_func("/vm/move-race", test_move_race);
	return g_test_run();
}
