// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * bench-charge: what one page charge costs, per-vCPU stock against the
 * alternatives it replaces, side by side in one run.
 *
 * Variants (docs/performance.md, "Charge path", says the same at length):
 *   stock   vmcg_stock_charge()/vmcg_stock_uncharge() on a per-thread
 *           VmcgStock; all threads' stocks belong to one VM whose group is
 *           `depth` levels below "/".
 *   atomic  vmcg_counter_try_charge()/vmcg_counter_uncharge() on a
 *           per-thread leaf counter under a chain shared by all threads.
 *   mutex   the same walk over plain int64_t counters, under one
 *           pthread mutex (the structure the lock-free counter replaces).
 *   floor   a relaxed load and store on a thread-private, line-aligned
 *           counter: the least any charge can cost.
 *
 * Shape: "depth D" is the depth of the VM's group. The VM's own counter is
 * below it, so a stock refill walks D + 2 counters (VM, D groups, root).
 * The atomic and mutex leaves play the VM's part and sit below a shared
 * chain of D + 1 counters, so their walks are D + 2 counters long too.
 *
 * Work per op, identical for every variant: one "op" is the charge of one
 * page plus, amortized, the uncharge of that page. Each thread charges one
 * page `burst` times in a row, then uncharges one page `burst` times, and
 * repeats. The default burst (256) is above the largest batch measured
 * (128), so every burst makes every stock both refill and overflow, which
 * is what a guest faulting in memory and then ballooning it out does;
 * --burst 1 (charge, uncharge, charge, ...) measures stock hits alone.
 *
 * Each variant's charge and uncharge are out-of-line wrappers (noipa on
 * GCC: no inlining, no cloning, no return-value propagation), so every
 * variant pays the same two calls per op and the loop is the same code.
 *
 * Each cell runs once per round and reports the median of its rounds;
 * every round places the heap and the thread stacks differently (see
 * layout_shift()).
 *
 * Exit status: 0 whatever the targets say (a benchmark, not a test); 1 if
 * any counter is not back at exactly zero after a run, or a charge failed;
 * 2 on bad arguments or setup failure.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vmcg/counter.h"
#include "vmcg/group.h"
#include "vmcg/stock.h"

#include "bench-util.h"

/*
 * The hot code of the benchmark starts on 64-byte boundaries, so that the
 * alignment of the loop and the wrappers does not depend on the size of
 * the library code linked before them. Code placement still moves the
 * figures between two builds of the engine (the floor's too, by up to 25%
 * on the machine of docs/performance.md): compare builds by their ratios.
 */
#define HOT_ALIGN __attribute__((aligned(64)))
#if defined(__clang__)
#define OP_WRAPPER __attribute__((noinline)) HOT_ALIGN
#else
/* noinline alone still lets GCC clone the function or fold "always 0". */
#define OP_WRAPPER __attribute__((noipa)) HOT_ALIGN
#endif

enum variant {
	V_STOCK,
	V_ATOMIC,
	V_MUTEX,
	V_FLOOR,
	_V_COUNT
};

static const char *const variant_names[_V_COUNT] = { "stock", "atomic", "mutex", "floor" };

static const unsigned matrix_threads[] = { 1, 2 };
static const unsigned matrix_depths[] = { 1, 3, 5 };
static const uint32_t matrix_batches[] = { 16, 32, 64, 128 };

#define N_THREADS (sizeof(matrix_threads) / sizeof(matrix_threads[0]))
#define N_DEPTHS (sizeof(matrix_depths) / sizeof(matrix_depths[0]))
#define N_BATCHES (sizeof(matrix_batches) / sizeof(matrix_batches[0]))
#define MAX_THREADS 2
#define MAX_DEPTH 5
#define MAX_REPS 15

/*
 * 2M charges per thread per run, 5 rounds: on the 2-vCPU EPYC guest of
 * docs/performance.md the slow 2-thread cells (150-500 ns/op) take up to
 * 1 s a run and the whole matrix about 20 s (about 45 s with an engine
 * whose stock walks on most uncharges, as at commit 2e4daa4); 5 rounds
 * rather than 3 because that guest's 2-thread figures swing by 2x from run
 * to run. --quick divides the ops by 12: a smoke run of about 2 s, too
 * short for figures worth quoting.
 */
#define OPS_DEFAULT UINT64_C(2000000)
#define QUICK_DIVISOR 12
#define REPS_DEFAULT 5
/* Above the largest batch in the matrix: see the header comment. */
#define BURST_DEFAULT 256u

/*
 * Thread-private objects (atomic leaves, mutex leaves, floor counters) are
 * 128-byte aligned: some prefetchers fetch lines in 128-byte pairs (Intel's
 * L2 spatial prefetcher), and a neighbour thread's line in the same pair
 * would add false sharing that no variant should pay. The engine's stocks
 * are separate allocations (192 bytes apart with glibc), never in one pair.
 */
#define PRIVATE_ALIGN (2 * VMCG_CACHELINE)

typedef struct PrivateCounter {
	alignas(PRIVATE_ALIGN) VmcgCounter c;
} PrivateCounter;

/* ---- mutex variant: a plain counter chain under one lock ---- */

typedef struct PlainCounter PlainCounter;

/* One line each, as VmcgCounter.usage is, so that only true sharing shows. */
struct PlainCounter {
	alignas(VMCG_CACHELINE) int64_t usage;
	int64_t max;
	PlainCounter *parent;
	pthread_mutex_t *lock;
};

typedef struct PrivatePlainCounter {
	alignas(PRIVATE_ALIGN) PlainCounter c;
} PrivatePlainCounter;

/* ---- floor variant ---- */

typedef struct FloorCounter {
	alignas(PRIVATE_ALIGN) _Atomic int64_t value;
} FloorCounter;

/* ---- the op wrappers: each takes the thread's object, returns 0 or < 0 ---- */

OP_WRAPPER static int stock_charge_op(VmcgStock *stock)
{
	VmcgGroup *over;

	return vmcg_stock_charge(stock, 1, &over);
}

OP_WRAPPER static int stock_uncharge_op(VmcgStock *stock)
{
	return vmcg_stock_uncharge(stock, 1);
}

OP_WRAPPER static int atomic_charge_op(VmcgCounter *leaf)
{
	VmcgCounter *fail;

	return vmcg_counter_try_charge(leaf, 1, &fail) ? 0 : -ENOMEM;
}

OP_WRAPPER static int atomic_uncharge_op(VmcgCounter *leaf)
{
	return vmcg_counter_uncharge(leaf, 1);
}

/* The walk of vmcg_counter_try_charge(): add, compare with max, roll back. */
OP_WRAPPER static int mutex_charge_op(PlainCounter *leaf)
{
	PlainCounter *c, *fail = NULL;

	pthread_mutex_lock(leaf->lock);
	for (c = leaf; c; c = c->parent) {
		c->usage += 1;
		if (c->usage > c->max) {
			fail = c;
			break;
		}
	}
	if (fail)
		for (c = leaf; c != fail->parent; c = c->parent)
			c->usage -= 1;
	pthread_mutex_unlock(leaf->lock);
	return fail ? -ENOMEM : 0;
}

/* The leaf refuses an underflow whole, as vmcg_counter_uncharge() does. */
OP_WRAPPER static int mutex_uncharge_op(PlainCounter *leaf)
{
	int r = 0;

	pthread_mutex_lock(leaf->lock);
	if (leaf->usage < 1) {
		r = -ERANGE;
	} else {
		for (PlainCounter *c = leaf; c; c = c->parent) {
			c->usage -= 1;
			if (c->usage < 0)
				r = -ERANGE;
		}
	}
	pthread_mutex_unlock(leaf->lock);
	return r;
}

OP_WRAPPER static int floor_charge_op(FloorCounter *f)
{
	int64_t v = atomic_load_explicit(&f->value, memory_order_relaxed);

	atomic_store_explicit(&f->value, v + 1, memory_order_relaxed);
	return 0;
}

OP_WRAPPER static int floor_uncharge_op(FloorCounter *f)
{
	int64_t v = atomic_load_explicit(&f->value, memory_order_relaxed);

	atomic_store_explicit(&f->value, v - 1, memory_order_relaxed);
	return 0;
}

/* ---- workers ---- */

typedef struct Worker {
	/* Own line: the timing results are written while the peer still runs. */
	alignas(VMCG_CACHELINE) enum variant variant;
	unsigned index;
	int cpu; /* -1: not pinned */
	uint64_t ops;
	uint32_t burst;
	pthread_barrier_t *start;
	union {
		VmcgStock *stock;
		VmcgCounter *leaf;
		PlainCounter *plain;
		FloorCounter *floor;
	} obj;
	size_t stack_shift; /* bytes of stack to skip before the loop */
	int64_t elapsed_ns;
	int err; /* the OR of every op's return value: non-zero if any failed */
} Worker;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * The timed loop, one function per variant so that every variant calls
 * its wrappers directly (an indirect call would cost the floor more, in
 * proportion, than the others) from identical, identically aligned code.
 * Errors are OR-ed so the check is one instruction per call everywhere.
 */
#define DEFINE_LOOP(name, type, charge, uncharge)                                       \
	__attribute__((noinline)) HOT_ALIGN static int name(const Worker *w, type *obj) \
	{                                                                               \
		uint64_t done = 0;                                                      \
		int err = 0;                                                            \
		while (done < w->ops) {                                                 \
			uint64_t n = w->ops - done;                                     \
			if (n > w->burst)                                               \
				n = w->burst;                                           \
			for (uint64_t i = 0; i < n; i++)                                \
				err |= charge(obj);                                     \
			for (uint64_t i = 0; i < n; i++)                                \
				err |= uncharge(obj);                                   \
			done += n;                                                      \
		}                                                                       \
		return err;                                                             \
	}

DEFINE_LOOP(loop_stock, VmcgStock, stock_charge_op, stock_uncharge_op)
DEFINE_LOOP(loop_atomic, VmcgCounter, atomic_charge_op, atomic_uncharge_op)
DEFINE_LOOP(loop_mutex, PlainCounter, mutex_charge_op, mutex_uncharge_op)
DEFINE_LOOP(loop_floor, FloorCounter, floor_charge_op, floor_uncharge_op)

static void run_ops(Worker *w)
{
	int err;

	switch (w->variant) {
	case V_STOCK:
		err = loop_stock(w, w->obj.stock);
		break;
	case V_ATOMIC:
		err = loop_atomic(w, w->obj.leaf);
		break;
	case V_MUTEX:
		err = loop_mutex(w, w->obj.plain);
		break;
	case V_FLOOR:
		err = loop_floor(w, w->obj.floor);
		break;
	default:
		abort();
	}
	if (err && !w->err)
		w->err = err;
}

__attribute__((noinline)) static void worker_run(Worker *w)
{
	Worker warm = *w;
	int64_t t0, t1;

	/*
	 * A few untimed bursts first: fault in the lines and train the
	 * branch predictors, so that the first timed burst is not special.
	 * The stock ends them in the same state as any other burst.
	 */
	warm.ops = (uint64_t)w->burst * 16;
	if (warm.ops > w->ops)
		warm.ops = w->ops;
	warm.err = 0;
	run_ops(&warm);
	if (warm.err)
		w->err = warm.err;

	pthread_barrier_wait(w->start);
	t0 = now_ns();
	run_ops(w);
	t1 = now_ns();
	w->elapsed_ns = t1 - t0;
}

static void *worker_main(void *arg)
{
	Worker *w = arg;

	if (w->cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(w->cpu, &set);
		(void)sched_setaffinity(0, sizeof(set), &set); /* best effort */
	}

	/* Move the loop's frames (return addresses, spills): see layout_shift(). */
	volatile char skip[w->stack_shift + 1];

	skip[0] = 0;
	worker_run(w);
	return (void *)(uintptr_t)skip[0];
}

/* ---- the CPUs to pin to ---- */

static int cpus[MAX_THREADS];
static unsigned nr_cpus_allowed;

static void pick_cpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return;
	for (int c = 0; c < CPU_SETSIZE && nr_cpus_allowed < MAX_THREADS; c++)
		if (CPU_ISSET(c, &set))
			cpus[nr_cpus_allowed++] = c;
}

/* ---- one run of one cell ---- */

typedef struct Options {
	uint64_t ops;
	unsigned reps;
	uint32_t burst;
	bool json;
} Options;

/* Fixtures: everything one run charges, so that it can be checked after. */
typedef struct Fixture {
	/* stock */
	VmcgTree *tree;
	VmcgGroup *groups[MAX_DEPTH + 1]; /* [0] is the root */
	VmcgVm *vm;
	VmcgStock *stocks[MAX_THREADS];
	/* atomic: chain[0] is the root, leaves hang below chain[depth] */
	VmcgCounter *chain;
	PrivateCounter *leaves;
	/* mutex */
	PlainCounter *plain_chain;
	PrivatePlainCounter *plain_leaves;
	pthread_mutex_t lock;
	/* floor */
	FloorCounter *floors;
} Fixture;

static void *xaligned(size_t n, size_t size)
{
	size_t bytes = n * size;
	void *p;

	bytes = (bytes + PRIVATE_ALIGN - 1) & ~(size_t)(PRIVATE_ALIGN - 1);
	p = aligned_alloc(PRIVATE_ALIGN, bytes);
	if (!p) {
		fprintf(stderr, "bench-charge: out of memory\n");
		exit(2);
	}
	memset(p, 0, bytes);
	return p;
}

static void die_setup(const char *what, int r)
{
	fprintf(stderr, "bench-charge: %s: %s\n", what, strerror(-r));
	exit(2);
}

static void fixture_setup(Fixture *f, enum variant v, unsigned threads, unsigned depth,
			  uint32_t batch)
{
	char path[16 * (MAX_DEPTH + 1)];
	size_t len = 0;
	int r;

	memset(f, 0, sizeof(*f));
	switch (v) {
	case V_STOCK:
		r = vmcg_tree_new(NULL, &f->tree);
		if (r < 0)
			die_setup("vmcg_tree_new", r);
		f->groups[0] = vmcg_tree_root(f->tree);
		for (unsigned d = 1; d <= depth; d++) {
			len += (size_t)snprintf(path + len, sizeof(path) - len, "/g%u", d);
			r = vmcg_group_create(f->tree, path, &f->groups[d]);
			if (r < 0)
				die_setup("vmcg_group_create", r);
		}
		r = vmcg_vm_new(f->groups[depth], "vm", &f->vm);
		if (r < 0)
			die_setup("vmcg_vm_new", r);
		for (unsigned t = 0; t < threads; t++) {
			r = vmcg_stock_new(f->vm, batch, &f->stocks[t]);
			if (r < 0)
				die_setup("vmcg_stock_new", r);
		}
		break;
	case V_ATOMIC:
		f->chain = xaligned(depth + 1, sizeof(VmcgCounter));
		f->leaves = xaligned(threads, sizeof(PrivateCounter));
		for (unsigned d = 0; d <= depth; d++)
			vmcg_counter_init(&f->chain[d], d ? &f->chain[d - 1] : NULL);
		for (unsigned t = 0; t < threads; t++)
			vmcg_counter_init(&f->leaves[t].c, &f->chain[depth]);
		break;
	case V_MUTEX:
		pthread_mutex_init(&f->lock, NULL);
		f->plain_chain = xaligned(depth + 1, sizeof(PlainCounter));
		f->plain_leaves = xaligned(threads, sizeof(PrivatePlainCounter));
		for (unsigned d = 0; d <= depth; d++) {
			f->plain_chain[d].max = (int64_t)VMCG_PAGES_MAX;
			f->plain_chain[d].parent = d ? &f->plain_chain[d - 1] : NULL;
			f->plain_chain[d].lock = &f->lock;
		}
		for (unsigned t = 0; t < threads; t++) {
			f->plain_leaves[t].c.max = (int64_t)VMCG_PAGES_MAX;
			f->plain_leaves[t].c.parent = &f->plain_chain[depth];
			f->plain_leaves[t].c.lock = &f->lock;
		}
		break;
	case V_FLOOR:
		f->floors = xaligned(threads, sizeof(FloorCounter));
		break;
	default:
		abort();
	}
}

static void fixture_bind(Fixture *f, enum variant v, Worker *w, unsigned t)
{
	switch (v) {
	case V_STOCK:
		w->obj.stock = f->stocks[t];
		break;
	case V_ATOMIC:
		w->obj.leaf = &f->leaves[t].c;
		break;
	case V_MUTEX:
		w->obj.plain = &f->plain_leaves[t].c;
		break;
	case V_FLOOR:
		w->obj.floor = &f->floors[t];
		break;
	default:
		abort();
	}
}

/* Raw signed usage: vmcg_counter_read() would hide an underflow as 0. */
static bool counter_clean(const char *what, unsigned level, const VmcgCounter *c)
{
	int64_t usage = atomic_load(&c->usage);
	uint64_t underflows = atomic_load(&c->underflows);
	uint64_t failcnt = atomic_load(&c->failcnt);

	if (usage == 0 && underflows == 0 && failcnt == 0)
		return true;
	fprintf(stderr,
		"bench-charge: CORRECTNESS: %s %u: usage %" PRId64 " (want 0), underflows %" PRIu64
		", failcnt %" PRIu64 "\n",
		what, level, usage, underflows, failcnt);
	return false;
}

/*
 * Before the stocks are freed: every burst uncharged what it charged, so
 * all the VM's charge is credit cached in its stocks, each stock holds at
 * most its batch (the bound stock.h documents), and every ancestor holds
 * exactly the VM's charge.
 */
static bool stock_check_cached(Fixture *f, unsigned threads, unsigned depth)
{
	uint64_t cached = 0, vm_usage = vmcg_vm_current(f->vm);
	bool ok = true;

	for (unsigned t = 0; t < threads; t++) {
		uint64_t c = vmcg_stock_cached(f->stocks[t]);

		if (c > f->stocks[t]->batch) {
			fprintf(stderr,
				"bench-charge: CORRECTNESS: stock %u caches %" PRIu64
				" pages, above its batch %u\n",
				t, c, f->stocks[t]->batch);
			ok = false;
		}
		cached += c;
	}
	if (vm_usage != cached) {
		fprintf(stderr,
			"bench-charge: CORRECTNESS: vm usage %" PRIu64
			" after the run, but its stocks cache %" PRIu64 "\n",
			vm_usage, cached);
		ok = false;
	}
	for (unsigned d = 0; d <= depth; d++)
		if (vmcg_group_current(f->groups[d]) != vm_usage) {
			fprintf(stderr,
				"bench-charge: CORRECTNESS: group at depth %u holds %" PRIu64
				" pages, the vm %" PRIu64 "\n",
				d, vmcg_group_current(f->groups[d]), vm_usage);
			ok = false;
		}
	return ok;
}

/*
 * Free the stocks (which drains them), then every counter the run touched
 * must be back at exactly zero. Returns false, having said why, otherwise.
 */
static bool fixture_check_and_free(Fixture *f, enum variant v, unsigned threads, unsigned depth)
{
	bool ok = true;

	switch (v) {
	case V_STOCK:
		ok &= stock_check_cached(f, threads, depth);
		for (unsigned t = 0; t < threads; t++)
			vmcg_stock_free(f->stocks[t]);
		ok &= counter_clean("vm counter at depth", depth + 1, vmcg_vm_counter(f->vm));
		for (unsigned d = 0; d <= depth; d++)
			ok &= counter_clean("group counter at depth", d,
					    vmcg_group_counter(f->groups[d]));
		if (vmcg_vm_stat(f->vm, VMCG_STAT_STOCK) != 0) {
			fprintf(stderr,
				"bench-charge: CORRECTNESS: stock credit left after free\n");
			ok = false;
		}
		vmcg_tree_free(f->tree);
		break;
	case V_ATOMIC:
		for (unsigned t = 0; t < threads; t++)
			ok &= counter_clean("atomic leaf of thread", t, &f->leaves[t].c);
		for (unsigned d = 0; d <= depth; d++)
			ok &= counter_clean("atomic chain counter at depth", d, &f->chain[d]);
		free(f->leaves);
		free(f->chain);
		break;
	case V_MUTEX:
		for (unsigned t = 0; t < threads; t++)
			if (f->plain_leaves[t].c.usage != 0) {
				fprintf(stderr,
					"bench-charge: CORRECTNESS: mutex leaf %u: usage %" PRId64
					"\n",
					t, f->plain_leaves[t].c.usage);
				ok = false;
			}
		for (unsigned d = 0; d <= depth; d++)
			if (f->plain_chain[d].usage != 0) {
				fprintf(stderr,
					"bench-charge: CORRECTNESS: mutex depth %u: usage %" PRId64
					"\n",
					d, f->plain_chain[d].usage);
				ok = false;
			}
		pthread_mutex_destroy(&f->lock);
		free(f->plain_leaves);
		free(f->plain_chain);
		break;
	case V_FLOOR:
		for (unsigned t = 0; t < threads; t++)
			if (atomic_load(&f->floors[t].value) != 0) {
				fprintf(stderr,
					"bench-charge: CORRECTNESS: floor counter %u not zero\n",
					t);
				ok = false;
			}
		free(f->floors);
		break;
	default:
		abort();
	}
	return ok;
}

/*
 * Where the objects fall in memory changes the figures: in one run, with
 * the same code on the hit path, every depth-3 stock cell cost 6.0 ns per
 * hit and every depth-1 cell 4.1 ns (4 KiB aliasing between a load and an
 * earlier store is one way placement costs cycles). And the heap and the
 * thread stacks come out the same in every run of a cell, so repeating it
 * would repeat its placement. Each round therefore shifts both by its own
 * multiple of a line, and a cell's median is taken over several layouts.
 */
static size_t layout_shift(unsigned round)
{
	return (size_t)(round * 37 % 64) * VMCG_CACHELINE;
}

/*
 * One timed run. Returns the mean over threads of each thread's ns per op
 * (what one vCPU pays per charge), or a negative value after a correctness
 * failure.
 */
static double run_once(const Options *o, enum variant v, unsigned threads, unsigned depth,
		       uint32_t batch, unsigned round)
{
	Worker workers[MAX_THREADS];
	pthread_t tids[MAX_THREADS];
	pthread_barrier_t start;
	Fixture f;
	double sum = 0;
	bool ok = true;
	void *heap_shift = malloc(layout_shift(round) + 1);

	if (!heap_shift) {
		fprintf(stderr, "bench-charge: out of memory\n");
		exit(2);
	}
	fixture_setup(&f, v, threads, depth, batch);
	pthread_barrier_init(&start, NULL, threads);
	for (unsigned t = 0; t < threads; t++) {
		Worker *w = &workers[t];

		memset(w, 0, sizeof(*w));
		w->variant = v;
		w->index = t;
		w->cpu = t < nr_cpus_allowed ? cpus[t] : -1;
		w->ops = o->ops;
		w->burst = o->burst;
		w->start = &start;
		w->stack_shift = layout_shift(round);
		fixture_bind(&f, v, w, t);
		if (pthread_create(&tids[t], NULL, worker_main, w) != 0) {
			fprintf(stderr, "bench-charge: pthread_create failed\n");
			exit(2);
		}
	}
	for (unsigned t = 0; t < threads; t++)
		pthread_join(tids[t], NULL);
	pthread_barrier_destroy(&start);

	for (unsigned t = 0; t < threads; t++) {
		if (workers[t].err) {
			fprintf(stderr,
				"bench-charge: CORRECTNESS: %s thread %u: an op failed (%d)\n",
				variant_names[v], t, workers[t].err);
			ok = false;
		}
		sum += (double)workers[t].elapsed_ns / (double)o->ops;
	}
	ok &= fixture_check_and_free(&f, v, threads, depth);
	free(heap_shift);
	if (!ok) {
		fprintf(stderr, "bench-charge: ... in the run %s threads=%u depth=%u batch=%u\n",
			variant_names[v], threads, depth, batch);
		return -1;
	}
	return sum / threads;
}

/* ---- the matrix ---- */

typedef struct Cell {
	enum variant variant;
	unsigned threads;
	unsigned depth;
	uint32_t batch; /* 0 for variants without one */
	double samples[MAX_REPS];
	double ns_per_op; /* median of the samples */
} Cell;

#define MAX_CELLS (N_THREADS * N_DEPTHS * (N_BATCHES + _V_COUNT - 1))

static Cell cells[MAX_CELLS];
static size_t nr_cells;

static void add_cell(enum variant v, unsigned threads, unsigned depth, uint32_t batch)
{
	cells[nr_cells++] =
		(Cell){ .variant = v, .threads = threads, .depth = depth, .batch = batch };
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/*
 * Round-robin: every round runs every cell once, and a cell's figure is the
 * median of its rounds. A guest's speed drifts over seconds (host load,
 * frequency); running a cell's repetitions back to back would charge such
 * a phase to a few cells, and the ratios between cells would carry it.
 * Returns false after a correctness failure.
 */
static bool run_matrix(const Options *o)
{
	for (size_t ti = 0; ti < N_THREADS; ti++)
		for (size_t di = 0; di < N_DEPTHS; di++) {
			unsigned t = matrix_threads[ti], d = matrix_depths[di];

			for (size_t bi = 0; bi < N_BATCHES; bi++)
				add_cell(V_STOCK, t, d, matrix_batches[bi]);
			add_cell(V_ATOMIC, t, d, 0);
			add_cell(V_MUTEX, t, d, 0);
			add_cell(V_FLOOR, t, d, 0);
		}

	for (unsigned r = 0; r < o->reps; r++)
		for (size_t i = 0; i < nr_cells; i++) {
			Cell *c = &cells[i];

			c->samples[r] = run_once(o, c->variant, c->threads, c->depth, c->batch, r);
			if (c->samples[r] < 0)
				return false;
		}

	for (size_t i = 0; i < nr_cells; i++) {
		Cell *c = &cells[i];
		unsigned n = o->reps;

		qsort(c->samples, n, sizeof(c->samples[0]), cmp_double);
		c->ns_per_op =
			n % 2 ? c->samples[n / 2] : (c->samples[n / 2 - 1] + c->samples[n / 2]) / 2;
	}
	return true;
}

static const Cell *find(enum variant v, unsigned threads, unsigned depth, uint32_t batch)
{
	for (size_t i = 0; i < nr_cells; i++)
		if (cells[i].variant == v && cells[i].threads == threads &&
		    cells[i].depth == depth && cells[i].batch == batch)
			return &cells[i];
	return NULL;
}

static double ns(enum variant v, unsigned threads, unsigned depth, uint32_t batch)
{
	const Cell *c = find(v, threads, depth, batch);

	return c ? c->ns_per_op : 0;
}

/* ---- output ---- */

static void print_table(const Options *o)
{
	char model[128];

	cpu_model(model, sizeof(model));
	printf("bench-charge: %ld online CPUs (%s), pinned to %u, %" PRIu64
	       " charges/thread/run, burst %u, median of %u rounds\n",
	       sysconf(_SC_NPROCESSORS_ONLN), model, nr_cpus_allowed, o->ops, o->burst, o->reps);
	printf("depth D: the VM's group is D levels below /; every walk touches D + 2 counters\n");
	printf("ns per op = one 1-page charge + its amortized 1-page uncharge\n\n");
	printf("%3s %5s %5s  %8s %8s %8s %8s  %11s %12s %11s %9s\n", "thr", "depth", "batch",
	       "stock", "atomic", "mutex", "floor", "stock/floor", "atomic/stock", "mutex/stock",
	       "stock5/1");
	for (size_t ti = 0; ti < N_THREADS; ti++)
		for (size_t di = 0; di < N_DEPTHS; di++)
			for (size_t bi = 0; bi < N_BATCHES; bi++) {
				unsigned t = matrix_threads[ti], d = matrix_depths[di];
				uint32_t b = matrix_batches[bi];
				double s = ns(V_STOCK, t, d, b), a = ns(V_ATOMIC, t, d, 0),
				       m = ns(V_MUTEX, t, d, 0), fl = ns(V_FLOOR, t, d, 0);
				char ratio51[16] = "-";

				if (d == MAX_DEPTH)
					snprintf(ratio51, sizeof(ratio51), "%.2f",
						 s / ns(V_STOCK, t, 1, b));
				printf("%3u %5u %5u  %8.2f %8.2f %8.2f %8.2f  %11.2f %12.2f %11.2f "
				       "%9s\n",
				       t, d, b, s, a, m, fl, s / fl, a / s, m / s, ratio51);
			}
	printf("\n(atomic, mutex and floor do not depend on batch: measured once per "
	       "threads/depth, repeated on each batch row)\n");
}

static void print_json(void)
{
	printf("{\"results\":[");
	for (size_t i = 0; i < nr_cells; i++)
		printf("%s{\"variant\":\"%s\",\"threads\":%u,\"depth\":%u,\"batch\":%u,"
		       "\"ns_per_op\":%.3f}",
		       i ? "," : "", variant_names[cells[i].variant], cells[i].threads,
		       cells[i].depth, cells[i].batch, cells[i].ns_per_op);
	printf("]}\n");
}

/*
 * The targets the stock was built for. Depth 3 wherever the target does not
 * name one: the middle of the matrix, a group two levels below a tenant.
 */
static void print_targets(FILE *out)
{
	double s13 = ns(V_STOCK, 1, 3, 64), f13 = ns(V_FLOOR, 1, 3, 0);
	double a13 = ns(V_ATOMIC, 1, 3, 0);
	double s23 = ns(V_STOCK, 2, 3, 64), m23 = ns(V_MUTEX, 2, 3, 0);
	double s15 = ns(V_STOCK, 1, 5, 64), s11 = ns(V_STOCK, 1, 1, 64);
	struct {
		bool pass;
		const char *text;
		double value;
		const char *bound;
	} t[] = {
		{ s13 <= 2 * f13, "stock <= 2x floor (1 thread, depth 3, batch 64): stock/floor",
		  s13 / f13, "<= 2" },
		{ a13 >= 3 * s13,
		  "stock >= 3x faster than atomic (1 thread, depth 3, batch 64): atomic/stock",
		  a13 / s13, ">= 3" },
		{ m23 >= 10 * s23,
		  "stock >= 10x faster than mutex (2 threads, depth 3, batch 64): mutex/stock",
		  m23 / s23, ">= 10" },
		{ s15 <= 1.2 * s11,
		  "stock depth 5 within 1.2x of depth 1 (1 thread, batch 64): d5/d1", s15 / s11,
		  "<= 1.2" },
	};

	fprintf(out, "\ntargets:\n");
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		fprintf(out, "  %s  %s = %.3f (want %s)\n", t[i].pass ? "PASS" : "FAIL", t[i].text,
			t[i].value, t[i].bound);
}

/* ---- arguments ---- */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: bench-charge [--json] [--quick] [--ops N] [--reps N] [--burst N]\n"
		"  --json     one JSON object on stdout; everything else on stderr\n"
		"  --quick    %u times fewer ops (a smoke run of a few seconds)\n"
		"  --ops N    charges per thread per run (default %" PRIu64 ")\n"
		"  --reps N   rounds over the matrix, median reported (default %u, max %u)\n"
		"  --burst N  charges in a row before as many uncharges (default %u;\n"
		"             1 alternates charge/uncharge: stock hits only)\n",
		QUICK_DIVISOR, OPS_DEFAULT, REPS_DEFAULT, MAX_REPS, BURST_DEFAULT);
}

static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*ret = v;
	return true;
}

static void parse_args(int argc, char **argv, Options *o)
{
	bool quick = false, ops_set = false;
	uint64_t v;

	*o = (Options){ .ops = OPS_DEFAULT, .reps = REPS_DEFAULT, .burst = BURST_DEFAULT };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--json") == 0) {
			o->json = true;
		} else if (strcmp(a, "--quick") == 0) {
			quick = true;
		} else if (strcmp(a, "--ops") == 0 &&
			   parse_u64(argv[i + 1], 1, UINT64_MAX / 2, &v)) {
			o->ops = v;
			ops_set = true;
			i++;
		} else if (strcmp(a, "--reps") == 0 && parse_u64(argv[i + 1], 1, MAX_REPS, &v)) {
			o->reps = (unsigned)v;
			i++;
		} else if (strcmp(a, "--burst") == 0 && parse_u64(argv[i + 1], 1, 1u << 20, &v)) {
			o->burst = (uint32_t)v;
			i++;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			exit(0);
		} else {
			fprintf(stderr, "bench-charge: bad argument '%s'\n", a);
			usage(stderr);
			exit(2);
		}
	}
	if (quick && !ops_set)
		o->ops /= QUICK_DIVISOR;
	/* Whole bursts only: every run ends with everything uncharged. */
	o->ops = (o->ops + o->burst - 1) / o->burst * o->burst;
}

int main(int argc, char **argv)
{
	Options o;

	parse_args(argc, argv, &o);
	pick_cpus();
	if (nr_cpus_allowed < MAX_THREADS)
		fprintf(stderr,
			"bench-charge: only %u CPU(s) allowed: the 2-thread cells share one\n",
			nr_cpus_allowed);

	if (!run_matrix(&o)) {
		fprintf(stderr, "bench-charge: the engine is broken; no figures\n");
		return 1;
	}

	if (o.json) {
		print_json();
		print_targets(stderr);
	} else {
		print_table(&o);
		print_targets(stdout);
	}
	return 0;
}
