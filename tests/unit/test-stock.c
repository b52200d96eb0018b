// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Per-vCPU stock: hits touch no counter, a miss charges a batch and keeps
 * the surplus, uncharges refill and drain above the batch, the hidden
 * charge bound, exact charges near max, asynchronous drain requests, and a
 * multi-threaded stress with concurrent moves that balances to zero.
 */
#include <errno.h>
#include <pthread.h>

#include "test-util.h"
#include "test-tree.h"
#include "vmcg/group.h"
#include "vmcg/stock.h"

static void test_layout(void)
{
	g_assert_cmpuint(sizeof(VmcgStock) % VMCG_CACHELINE, ==, 0);
	g_assert_cmpuint(_Alignof(VmcgStock), ==, VMCG_CACHELINE);
}

static void test_hit_and_miss(void)
{
	VmcgTree *t;
	VmcgGroup *g, *over;
	VmcgVm *vm;
	VmcgStock *s;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	g = mk(t, "/g");
	g_assert_cmpint(vmcg_vm_new(g, "vm", &vm), ==, 0);
	g_assert_cmpint(vmcg_stock_new(vm, 0, &s), ==, 0);
	g_assert_cmpuint(s->batch, ==, VMCG_STOCK_BATCH_DEFAULT);

	/* Miss: a whole batch is charged, 63 kept. */
	g_assert_cmpint(vmcg_stock_charge(s, 1, &over), ==, 0);
	g_assert_cmpuint(vmcg_group_current(g), ==, 64);
	g_assert_cmpuint(vmcg_stock_cached(s), ==, 63);
	g_assert_cmpuint(s->refills, ==, 1);
	/* Hits: the counters do not move. */
	for (int i = 0; i < 63; i++)
		g_assert_cmpint(vmcg_stock_charge(s, 1, &over), ==, 0);
	g_assert_cmpuint(vmcg_group_current(g), ==, 64);
	g_assert_cmpuint(vmcg_stock_cached(s), ==, 0);
	g_assert_cmpuint(s->refills, ==, 1);
	/* Charge larger than a batch: exactly that much. */
	g_assert_cmpint(vmcg_stock_charge(s, 100, &over), ==, 0);
	g_assert_cmpuint(vmcg_group_current(g), ==, 164);
	g_assert_cmpuint(vmcg_stock_cached(s), ==, 0);
	g_assert_cmpuint(vmcg_vm_stat(vm, VMCG_STAT_GUEST), ==, 164);

	/*
	 * Uncharges refill up to the batch; past it, the whole stock goes
	 * back at once (50 + 114 = 164 > 64: all 164 uncharged).
	 */
	g_assert_cmpint(vmcg_stock_uncharge(s, 50), ==, 0);
	g_assert_cmpuint(vmcg_group_current(g), ==, 164);
	g_assert_cmpuint(vmcg_stock_cached(s), ==, 50);
	g_assert_cmpuint(vmcg_vm_stat(vm, VMCG_STAT_STOCK), ==, 50);
	g_assert_cmpuint(vmcg_vm_stat(vm, VMCG_STAT_GUEST), ==, 114);
	g_assert_cmpint(vmcg_stock_uncharge(s, 114), ==, 0);
	g_assert_cmpuint(vmcg_stock_cached(s), ==, 0);
	g_assert_cmpuint(vmcg_group_current(g), ==, 0);
	/* Refill with a batch; the next 64 single-page uncharges are hits. */
	for (int i = 0; i < 64; i++)
		g_assert_cmpint(vmcg_stock_charge(s, 1, NULL), ==, 0);
	g_assert_cmpuint(s->refills, ==, 3);
	g_assert_cmpuint(vmcg_group_current(g), ==, 64);
	for (int i = 0; i < 64; i++)
		g_assert_cmpint(vmcg_stock_uncharge(s, 1), ==, 0);
	g_assert_cmpuint(vmcg_group_current(g), ==, 64);
	g_assert_cmpuint(vmcg_stock_cached(s), ==, 64);

	vmcg_stock_drain(s);
	g_assert_cmpuint(vmcg_group_current(g), ==, 0);
	vmcg_stock_free(s);
	vmcg_stock_free(NULL);
	vmcg_tree_free(t);
}

/*
 * Near max the batch is not forced: /g max 70, stock batch 64.
 * First miss charges 64 (fits). Next miss: 64 more would make 128 > 70,
 * so exactly the 6 asked for are charged; no "max" event for the batch
 * attempt. The one after that fails: a real "max" event.
 */
static void test_near_max(void)
{
	VmcgTree *t;
	VmcgGroup *g, *over = NULL;
	VmcgVm *vm;
	VmcgStock *s;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	g = mk(t, "/g");
	vmcg_group_set_max(g, 70);
	g_assert_cmpint(vmcg_vm_new(g, "vm", &vm), ==, 0);
	g_assert_cmpint(vmcg_stock_new(vm, 64, &s), ==, 0);
	g_assert_cmpint(vmcg_stock_charge(s, 64, &over), ==, 0);
	g_assert_cmpint(vmcg_stock_charge(s, 6, &over), ==, 0);
	g_assert_cmpuint(vmcg_group_current(g), ==, 70);
	g_assert_cmpuint(vmcg_group_events(g, VMCG_EVENT_MAX, true), ==, 0);
	g_assert_cmpint(vmcg_stock_charge(s, 1, &over), ==, -ENOMEM);
	g_assert_true(over == g);
	g_assert_cmpuint(vmcg_group_events(g, VMCG_EVENT_MAX, true), ==, 1);
	g_assert_cmpuint(vmcg_group_current(g), ==, 70);
	vmcg_tree_free(t); /* frees the stock too, draining it */
}

/*
 * The bound: N stocks of batch B hide at most N x B pages, whatever the
 * sequence of operations.
 */
static void test_hidden_bound(void)
{
	enum {
		N = 4,
		B = 16
	};
	VmcgTree *t;
	VmcgVm *vm;
	VmcgStock *s[N];
	unsigned seed = 42;
	int64_t held[N] = { 0 };

	g_assert_cmpint(vmcg_tree_new(&(VmcgTreeOptions){ .stock_batch = B }, &t), ==, 0);
	g_assert_cmpint(vmcg_vm_new(vmcg_tree_root(t), "vm", &vm), ==, 0);
	for (int i = 0; i < N; i++)
		g_assert_cmpint(vmcg_stock_new(vm, 0, &s[i]), ==, 0);
	for (int round = 0; round < 20000; round++) {
		int i = rand_r(&seed) % N;
		uint32_t n = 1 + rand_r(&seed) % 40;
		uint64_t hidden = 0, real = 0;

		if ((rand_r(&seed) & 1) || held[i] < n) {
			g_assert_cmpint(vmcg_stock_charge(s[i], n, NULL), ==, 0);
			held[i] += n;
		} else {
			g_assert_cmpint(vmcg_stock_uncharge(s[i], n), ==, 0);
			held[i] -= n;
		}
		for (int j = 0; j < N; j++) {
			g_assert_cmpuint(vmcg_stock_cached(s[j]), <=, B);
			hidden += vmcg_stock_cached(s[j]);
			real += held[j];
		}
		g_assert_cmpuint(vmcg_vm_current(vm), ==, real + hidden);
		g_assert_cmpuint(hidden, <=, N * B);
	}
	vmcg_tree_free(t);
}

/* A drain request is acted on at the owner's next operation. */
static void test_drain_request(void)
{
	VmcgTree *t;
	VmcgGroup *g;
	VmcgVm *vm;
	VmcgStock *s;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	g = mk(t, "/g");
	g_assert_cmpint(vmcg_vm_new(g, "vm", &vm), ==, 0);
	g_assert_cmpint(vmcg_stock_new(vm, 32, &s), ==, 0);
	g_assert_cmpint(vmcg_stock_charge(s, 2, NULL), ==, 0);
	g_assert_cmpuint(vmcg_group_current(g), ==, 32);

	vmcg_group_drain_stocks(g);
	/* Asynchronous: nothing happened yet. */
	g_assert_cmpuint(vmcg_group_current(g), ==, 32);
	/* Next op drains 30, then has to refill for 1 page: 2 + 32 charged. */
	g_assert_cmpint(vmcg_stock_charge(s, 1, NULL), ==, 0);
	g_assert_cmpuint(vmcg_group_current(g), ==, 2 + 32);
	g_assert_cmpuint(vmcg_stock_cached(s), ==, 31);

	/* Lowering max requests a drain; an uncharge acts on it. */
	g_assert_cmpint(vmcg_group_set_max(g, 10), ==, 0);
	g_assert_cmpint(vmcg_stock_uncharge(s, 3), ==, 0);
	g_assert_cmpuint(vmcg_group_current(g), ==, 3);
	g_assert_cmpuint(vmcg_stock_cached(s), ==, 3);
	/* Raising it does not. */
	g_assert_cmpint(vmcg_group_set_max(g, 100), ==, 0);
	g_assert_cmpint(vmcg_stock_uncharge(s, 1), ==, 0);
	g_assert_cmpuint(vmcg_stock_cached(s), ==, 4);
	vmcg_tree_free(t);
}

static void test_bad_batch(void)
{
	VmcgTree *t;
	VmcgVm *vm;
	VmcgStock *s;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	g_assert_cmpint(vmcg_vm_new(vmcg_tree_root(t), "vm", &vm), ==, 0);
	g_assert_cmpint(vmcg_stock_new(vm, VMCG_STOCK_BATCH_MAX + 1, &s), ==, -EINVAL);
	vmcg_tree_free(t);
}

/*
 * A double uncharge through a stock cannot be seen while it only fills the
 * stock; it is caught once the stock trims past what the VM holds.
 * batch 8: charge 8 (counter 8, stock 0); uncharge 8 (stock 8); uncharge 8
 * (16 > 8: give back 16 of the counter's 8: -ERANGE, counted, and nothing
 * changes: the stock keeps its 8, the counter its 8).
 */
static void test_double_uncharge(void)
{
	VmcgTree *t;
	VmcgVm *vm;
	VmcgStock *s;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	g_assert_cmpint(vmcg_vm_new(vmcg_tree_root(t), "vm", &vm), ==, 0);
	g_assert_cmpint(vmcg_stock_new(vm, 8, &s), ==, 0);
	g_assert_cmpint(vmcg_stock_charge(s, 8, NULL), ==, 0);
	g_assert_cmpint(vmcg_stock_uncharge(s, 8), ==, 0);
	g_assert_cmpint(vmcg_stock_uncharge(s, 8), ==, -ERANGE);
	g_assert_cmpuint(vmcg_vm_current(vm), ==, 8);
	g_assert_cmpuint(vmcg_stock_cached(s), ==, 8);
	g_assert_cmpuint(atomic_load(&vmcg_vm_counter(vm)->underflows), ==, 1);
	/* The credit is still good: freeing the stock returns the VM to zero. */
	vmcg_stock_free(s);
	g_assert_cmpuint(vmcg_vm_current(vm), ==, 0);
	g_assert_cmpuint(atomic_load(&vmcg_vm_counter(vm)->underflows), ==, 1);
	vmcg_tree_free(t);
}

/*
 * Stress: one thread per stock (all on one VM) charges and uncharges
 * random amounts under a limited group; the main thread moves the VM
 * between two limited subtrees and requests drains. At the end every
 * counter of the tree must read exactly zero and no underflow may have
 * happened.
 *
 *   /
 *   |- /l (max 5000) - /l/a
 *   `- /r (max 5000) - /r/b      VM bounces between /l/a and /r/b
 */
#define STOCK_THREADS 3

typedef struct {
	VmcgVm *vm;
	VmcgStock *stock;
	unsigned rounds;
	unsigned seed;
	uint64_t enomem;
} Worker;

static void *worker(void *arg)
{
	Worker *w = arg;
	uint64_t held = 0;

	for (unsigned i = 0; i < w->rounds; i++) {
		uint32_t n = 1 + rand_r(&w->seed) % 8;

		if (held < 256 && (rand_r(&w->seed) % 3)) {
			if (vmcg_stock_charge(w->stock, n, NULL) == 0)
				held += n;
			else
				w->enomem++;
		} else if (held) {
			n = n > held ? (uint32_t)held : n;
			g_assert_cmpint(vmcg_stock_uncharge(w->stock, n), ==, 0);
			held -= n;
		}
	}
	while (held) {
		uint32_t n = held > 8 ? 8 : (uint32_t)held;

		g_assert_cmpint(vmcg_stock_uncharge(w->stock, n), ==, 0);
		held -= n;
	}
	vmcg_stock_drain(w->stock);
	return NULL;
}

static void test_stress(void)
{
	VmcgTree *t;
	VmcgGroup *l, *r, *a, *b, *pos;
	VmcgVm *vm;
	Worker w[STOCK_THREADS];
	pthread_t th[STOCK_THREADS];
	unsigned moves = 0;

	g_assert_cmpint(vmcg_tree_new(&(VmcgTreeOptions){ .stock_batch = 32 }, &t), ==, 0);
	l = mk(t, "/l");
	r = mk(t, "/r");
	a = mk(t, "/l/a");
	b = mk(t, "/r/b");
	vmcg_group_set_max(l, 5000);
	vmcg_group_set_max(r, 5000);
	g_assert_cmpint(vmcg_vm_new(a, "vm", &vm), ==, 0);
	for (int i = 0; i < STOCK_THREADS; i++) {
		w[i] = (Worker){ .vm = vm, .rounds = 300000 / test_scale_div(), .seed = i + 7 };
		g_assert_cmpint(vmcg_stock_new(vm, 0, &w[i].stock), ==, 0);
	}
	for (int i = 0; i < STOCK_THREADS; i++)
		pthread_create(&th[i], NULL, worker, &w[i]);
	for (unsigned i = 0; i < 2000 / test_scale_div() + 10; i++) {
		/* FORCE: a move must not depend on racing charges. */
		g_assert_cmpint(vmcg_vm_move(vm, i & 1 ? a : b, VMCG_MOVE_FORCE, NULL), ==, 0);
		moves++;
		if (i % 7 == 0)
			vmcg_vm_drain_stocks(vm);
		g_usleep(50);
	}
	for (int i = 0; i < STOCK_THREADS; i++)
		pthread_join(th[i], NULL);
	g_assert_cmpuint(moves, >, 0);

	for (pos = vmcg_tree_root(t); pos;
	     pos = vmcg_group_next_descendant(pos, vmcg_tree_root(t))) {
		g_assert_cmpint(atomic_load(&vmcg_group_counter(pos)->usage), ==, 0);
		g_assert_cmpuint(atomic_load(&vmcg_group_counter(pos)->underflows), ==, 0);
	}
	g_assert_cmpint(atomic_load(&vmcg_vm_counter(vm)->usage), ==, 0);
	vmcg_tree_free(t);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/stock/layout", test_layout);
	g_test_add_func("/stock/hit-and-miss", test_hit_and_miss);
	g_test_add_func("/stock/near-max", test_near_max);
	g_test_add_func("/stock/hidden-bound", test_hidden_bound);
	g_test_add_func("/stock/drain-request", test_drain_request);
	g_test_add_func("/stock/bad-batch", test_bad_batch);
	g_test_add_func("/stock/double-uncharge", test_double_uncharge);
	g_test_add_func("/stock/stress", test_stress);
	return g_test_run();
}
