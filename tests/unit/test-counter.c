// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * VmcgCounter: hierarchical charge/uncharge, try_charge all-or-nothing with
 * the limiting ancestor reported, underflow detection, peak, limits below
 * usage, protected-usage propagation, and a multi-threaded stress that must
 * balance to exactly zero.
 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>

#include "test-util.h"
#include "vmcg/counter.h"

/* root -> a -> b -> leaf */
typedef struct {
	VmcgCounter root, a, b, leaf;
} Chain;

static void chain_init(Chain *c)
{
	vmcg_counter_init(&c->root, NULL);
	vmcg_counter_init(&c->a, &c->root);
	vmcg_counter_init(&c->b, &c->a);
	vmcg_counter_init(&c->leaf, &c->b);
}

static void test_layout(void)
{
	/* usage alone on its line; limits and parent on another. */
	g_assert_cmpuint(offsetof(VmcgCounter, usage) % VMCG_CACHELINE, ==, 0);
	g_assert_cmpuint(offsetof(VmcgCounter, emin) / VMCG_CACHELINE, !=,
			 offsetof(VmcgCounter, usage) / VMCG_CACHELINE);
	g_assert_cmpuint(offsetof(VmcgCounter, parent) / VMCG_CACHELINE, !=,
			 offsetof(VmcgCounter, usage) / VMCG_CACHELINE);
	g_assert_cmpuint(offsetof(VmcgCounter, max) / VMCG_CACHELINE, ==,
			 offsetof(VmcgCounter, parent) / VMCG_CACHELINE);
	g_assert_cmpuint(_Alignof(VmcgCounter), ==, VMCG_CACHELINE);
}

static void test_defaults(void)
{
	VmcgCounter c;

	vmcg_counter_init(&c, NULL);
	g_assert_cmpuint(vmcg_counter_read(&c), ==, 0);
	g_assert_cmpuint(vmcg_counter_max(&c), ==, VMCG_PAGES_MAX);
	g_assert_cmpuint(vmcg_counter_high(&c), ==, VMCG_PAGES_MAX);
	g_assert_cmpuint(vmcg_counter_min(&c), ==, 0);
	g_assert_cmpuint(vmcg_counter_low(&c), ==, 0);
	g_assert_cmpuint(VMCG_PAGES_MAX * VMCG_PAGE_SIZE, <=, (uint64_t)INT64_MAX);
}

static void test_charge_hierarchy(void)
{
	Chain c;

	chain_init(&c);
	vmcg_counter_charge(&c.leaf, 10);
	vmcg_counter_charge(&c.b, 5);
	g_assert_cmpuint(vmcg_counter_read(&c.leaf), ==, 10);
	g_assert_cmpuint(vmcg_counter_read(&c.b), ==, 15);
	g_assert_cmpuint(vmcg_counter_read(&c.a), ==, 15);
	g_assert_cmpuint(vmcg_counter_read(&c.root), ==, 15);
	g_assert_cmpint(vmcg_counter_uncharge(&c.leaf, 10), ==, 0);
	g_assert_cmpint(vmcg_counter_uncharge(&c.b, 5), ==, 0);
	g_assert_cmpuint(vmcg_counter_read(&c.root), ==, 0);
}

static void test_try_charge_all_or_nothing(void)
{
	VmcgCounter *fail = NULL;
	Chain c;

	chain_init(&c);
	vmcg_counter_set_max(&c.a, 100);
	vmcg_counter_set_max(&c.b, 1000);
	g_assert_true(vmcg_counter_try_charge(&c.leaf, 60, &fail));
	g_assert_false(vmcg_counter_try_charge(&c.leaf, 41, &fail));
	/* a is the limit; leaf and b were rolled back, root never touched. */
	g_assert_true(fail == &c.a);
	g_assert_cmpuint(vmcg_counter_read(&c.leaf), ==, 60);
	g_assert_cmpuint(vmcg_counter_read(&c.b), ==, 60);
	g_assert_cmpuint(vmcg_counter_read(&c.a), ==, 60);
	g_assert_cmpuint(vmcg_counter_read(&c.root), ==, 60);
	g_assert_cmpuint(atomic_load(&c.a.failcnt), ==, 1);
	g_assert_cmpuint(atomic_load(&c.b.failcnt), ==, 0);
	/* Exactly at the limit is fine. */
	g_assert_true(vmcg_counter_try_charge(&c.leaf, 40, &fail));
	g_assert_cmpuint(vmcg_counter_read(&c.a), ==, 100);
	/* The lowest limiting level is reported first. */
	vmcg_counter_set_max(&c.leaf, 100);
	g_assert_false(vmcg_counter_try_charge(&c.leaf, 1, &fail));
	g_assert_true(fail == &c.leaf);
}

static void test_until(void)
{
	VmcgCounter *fail;
	Chain c;

	chain_init(&c);
	vmcg_counter_charge_until(&c.leaf, &c.a, 7);
	g_assert_cmpuint(vmcg_counter_read(&c.b), ==, 7);
	g_assert_cmpuint(vmcg_counter_read(&c.a), ==, 0);
	vmcg_counter_set_max(&c.b, 10);
	g_assert_false(vmcg_counter_try_charge_until(&c.leaf, &c.a, 4, &fail));
	g_assert_true(fail == &c.b);
	g_assert_true(vmcg_counter_try_charge_until(&c.leaf, &c.a, 3, &fail));
	g_assert_cmpint(vmcg_counter_uncharge_until(&c.leaf, &c.a, 10), ==, 0);
	g_assert_cmpuint(vmcg_counter_read(&c.b), ==, 0);
	/* Stop == counter is a no-op. */
	g_assert_cmpint(vmcg_counter_uncharge_until(&c.leaf, &c.leaf, 10), ==, 0);
}

static void test_underflow(void)
{
	Chain c;

	chain_init(&c);
	vmcg_counter_charge(&c.leaf, 5);
	/* The leaf refuses: nothing changes anywhere, and it is counted. */
	g_assert_cmpint(vmcg_counter_uncharge(&c.leaf, 6), ==, -ERANGE);
	g_assert_cmpuint(vmcg_counter_read(&c.leaf), ==, 5);
	g_assert_cmpuint(vmcg_counter_read(&c.root), ==, 5);
	g_assert_cmpuint(atomic_load(&c.leaf.underflows), ==, 1);

	/* An inconsistent ancestor is clamped at zero and reported. */
	chain_init(&c);
	vmcg_counter_charge_until(&c.leaf, &c.a, 3); /* a and root never charged */
	g_assert_cmpint(vmcg_counter_uncharge(&c.leaf, 3), ==, -EUCLEAN);
	g_assert_cmpint(atomic_load(&c.leaf.usage), ==, 0);
	g_assert_cmpint(atomic_load(&c.b.usage), ==, 0);
	g_assert_cmpint(atomic_load(&c.a.usage), ==, 0);
	g_assert_cmpint(atomic_load(&c.root.usage), ==, 0);
	g_assert_cmpuint(atomic_load(&c.leaf.underflows), ==, 0);
	g_assert_cmpuint(atomic_load(&c.a.underflows), ==, 1);
	g_assert_cmpuint(atomic_load(&c.root.underflows), ==, 1);
}

static void test_peak(void)
{
	Chain c;

	chain_init(&c);
	vmcg_counter_charge(&c.leaf, 30);
	(void)vmcg_counter_uncharge(&c.leaf, 20);
	g_assert_cmpuint(vmcg_counter_peak(&c.leaf), ==, 30);
	g_assert_cmpuint(vmcg_counter_peak(&c.root), ==, 30);
	vmcg_counter_reset_peak(&c.leaf);
	g_assert_cmpuint(vmcg_counter_peak(&c.leaf), ==, 10);
	g_assert_cmpuint(vmcg_counter_peak(&c.root), ==, 30);
	vmcg_counter_charge(&c.leaf, 5);
	g_assert_cmpuint(vmcg_counter_peak(&c.leaf), ==, 15);
}

static void test_limit_below_usage(void)
{
	VmcgCounter *fail;
	Chain c;

	chain_init(&c);
	vmcg_counter_charge(&c.leaf, 50);
	/* Accepted (memory.max semantics); the caller must reclaim. */
	vmcg_counter_set_max(&c.b, 20);
	g_assert_cmpuint(vmcg_counter_max(&c.b), ==, 20);
	g_assert_cmpuint(vmcg_counter_read(&c.b), ==, 50);
	g_assert_false(vmcg_counter_try_charge(&c.leaf, 1, &fail));
	g_assert_true(fail == &c.b);
	/* Uncharging is always possible. */
	g_assert_cmpint(vmcg_counter_uncharge(&c.leaf, 40), ==, 0);
	g_assert_true(vmcg_counter_try_charge(&c.leaf, 10, &fail));
	/* "max" saturates. */
	vmcg_counter_set_max(&c.b, UINT64_MAX);
	g_assert_cmpuint(vmcg_counter_max(&c.b), ==, VMCG_PAGES_MAX);
	vmcg_counter_set_high(&c.b, 5);
	g_assert_cmpuint(vmcg_counter_high(&c.b), ==, 5);
}

static void test_protected_usage(void)
{
	VmcgCounter root, p, c1, c2;

	vmcg_counter_init(&root, NULL);
	vmcg_counter_init(&p, &root);
	vmcg_counter_init(&c1, &p);
	vmcg_counter_init(&c2, &p);
	vmcg_counter_set_min(&c1, 100);
	vmcg_counter_set_low(&c2, 50);
	vmcg_counter_charge(&c1, 30);
	vmcg_counter_charge(&c2, 80);
	g_assert_cmpint(atomic_load(&p.children_min_usage), ==, 30);
	g_assert_cmpint(atomic_load(&p.children_low_usage), ==, 50);
	vmcg_counter_charge(&c1, 200);
	g_assert_cmpint(atomic_load(&p.children_min_usage), ==, 100);
	(void)vmcg_counter_uncharge(&c1, 230);
	g_assert_cmpint(atomic_load(&p.children_min_usage), ==, 0);
	/* Setting changes re-propagate at once. */
	vmcg_counter_set_low(&c2, 10);
	g_assert_cmpint(atomic_load(&p.children_low_usage), ==, 10);
	vmcg_counter_set_low(&c2, 0);
	g_assert_cmpint(atomic_load(&p.children_low_usage), ==, 0);
}

/*
 * Threads hammer try_charge/uncharge on their own leaves under a shared
 * limited chain. Afterwards every level must read exactly zero, no
 * underflow may have happened, and the limit must never have been seen
 * exceeded by a successful charge (checked through the peak).
 */
#define STRESS_THREADS 4

typedef struct {
	VmcgCounter root, mid;
	VmcgCounter leaf[STRESS_THREADS];
	unsigned rounds;
	uint64_t failures[STRESS_THREADS];
} Stress;

static void *stress_thread(void *arg)
{
	void **a = arg;
	Stress *s = a[0];
	unsigned idx = (unsigned)(uintptr_t)a[1];
	VmcgCounter *leaf = &s->leaf[idx];
	uint64_t held = 0;
	unsigned seed = idx + 1;

	for (unsigned i = 0; i < s->rounds; i++) {
		uint64_t n = 1 + (rand_r(&seed) % 64);
		VmcgCounter *fail;

		if (vmcg_counter_try_charge(leaf, n, &fail)) {
			held += n;
		} else {
			g_assert_true(fail == &s->mid);
			s->failures[idx]++;
		}
		if (held > 512 || (rand_r(&seed) & 1)) {
			uint64_t m = held ? 1 + rand_r(&seed) % held : 0;

			g_assert_cmpint(vmcg_counter_uncharge(leaf, m), ==, 0);
			held -= m;
		}
	}
	g_assert_cmpint(vmcg_counter_uncharge(leaf, held), ==, 0);
	return NULL;
}

static void test_stress_balances(void)
{
	/* Counters are cache-line aligned types: g_new0() would not do. */
	Stress *s = aligned_alloc(VMCG_CACHELINE, sizeof(*s));
	pthread_t th[STRESS_THREADS];
	void *args[STRESS_THREADS][2];
	uint64_t fails = 0;

	memset(s, 0, sizeof(*s));
	vmcg_counter_init(&s->root, NULL);
	vmcg_counter_init(&s->mid, &s->root);
	vmcg_counter_set_max(&s->mid, 400); /* below what one thread alone holds (512 + 64) */
	for (int i = 0; i < STRESS_THREADS; i++)
		vmcg_counter_init(&s->leaf[i], &s->mid);
	s->rounds = 200000 / test_scale_div();

	for (int i = 0; i < STRESS_THREADS; i++) {
		args[i][0] = s;
		args[i][1] = (void *)(uintptr_t)i;
		g_assert_cmpint(pthread_create(&th[i], NULL, stress_thread, args[i]), ==, 0);
	}
	for (int i = 0; i < STRESS_THREADS; i++)
		pthread_join(th[i], NULL);

	for (int i = 0; i < STRESS_THREADS; i++) {
		g_assert_cmpint(atomic_load(&s->leaf[i].usage), ==, 0);
		g_assert_cmpuint(atomic_load(&s->leaf[i].underflows), ==, 0);
		fails += s->failures[i];
	}
	g_assert_cmpint(atomic_load(&s->mid.usage), ==, 0);
	g_assert_cmpint(atomic_load(&s->root.usage), ==, 0);
	g_assert_cmpuint(atomic_load(&s->mid.underflows), ==, 0);
	/*
	 * Speculative charging can make usage overshoot for an instant, but a
	 * charge only succeeds (and records a peak) at or below the limit.
	 */
	g_assert_cmpuint(vmcg_counter_peak(&s->mid), <=, 400);
	g_assert_cmpuint(fails, >, 0);
	g_assert_cmpuint(atomic_load(&s->mid.failcnt), ==, fails);
	free(s);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/counter/layout", test_layout);
	g_test_add_func("/counter/defaults", test_defaults);
	g_test_add_func("/counter/charge-hierarchy", test_charge_hierarchy);
	g_test_add_func("/counter/try-charge-all-or-nothing", test_try_charge_all_or_nothing);
	g_test_add_func("/counter/until", test_until);
	g_test_add_func("/counter/underflow", test_underflow);
	g_test_add_func("/counter/peak", test_peak);
	g_test_add_func("/counter/limit-below-usage", test_limit_below_usage);
	g_test_add_func("/counter/protected-usage", test_protected_usage);
	g_test_add_func("/counter/stress-balances", test_stress_balances);
	return g_test_run();
}
