// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * bench-hooks: what charging first touches through the hooks ABI costs the
 * vCPUs, against plain page faults. docs/performance.md, "Hook path
 * (userfaultfd first touch)", says the same at length.
 *
 * vCPU threads (1 or 2) each write one byte per 4 KiB page, in order, over
 * their own half of a fresh anonymous mapping, as a guest zeroing its RAM
 * does. Variants:
 *   plain   ordinary page faults, MADV_NOHUGEPAGE (4 KiB pages, as the
 *           hook path populates them).
 *   thp     the same with MADV_HUGEPAGE: a reference line only.
 *   hook B  what the patched QEMU does (include/vmcg/hooks-abi.h): the
 *           mapping is registered with userfaultfd (MISSING, with
 *           UFFD_FEATURE_THREAD_ID). One fault thread, as QEMU's, polls the
 *           uffd and a SOCK_SEQPACKET connection to a daemon thread. For
 *           each fault it finds the slot of the faulting thread in a shared
 *           region laid out as VmcgHooksRegionHeader + VmcgHooksSlot[] (one
 *           slot per vCPU and the device slot), takes n credits with a CAS
 *           on slot->credit, n being the clear bits of the populated bitmap
 *           in the aligned chunk of B pages around the fault, fills those
 *           runs with UFFDIO_COPY from a zero buffer and sets the bits. Below
 *           the watermark (B / 2, at least 1) it sends REFILL (need 0, want
 *           B); a fault that finds too little credit waits in a queue and a
 *           REFILL with need > 0 is sent unless one is outstanding. The
 *           daemon thread charges `want` pages with vmcg_vm_try_charge() on
 *           a VM in /tenants/acme/web, adds them to the slot's credit and
 *           answers GRANT, as vmcgd will.
 *
 * Not modelled: HELLO/WELCOME (the region is a sealed memfd mapped twice,
 * by "QEMU" and by "vmcgd", set up before the clock starts), drains and
 * RETURN (nothing is discarded), memory.max (no limit is set).
 *
 *   hook-vmcgd B  (--vmcgd PATH) the same fault thread against the real
 *           vmcgd, started once as a child with a config that registers
 *           the VM "bench" in /bench/a. Its QMP socket is served by a
 *           thread of this process (fake_qmp_main()), so vmcgd takes this
 *           process for the VM's QEMU (SO_PEERCRED) and learns a RAM size,
 *           which it needs before it accepts a HELLO. Each run
 *           is a new SOCK_SEQPACKET connection to vmcgd's hooks socket:
 *           HELLO (this pid, the vCPUs, batch B, one RAM block of the
 *           run's pages, none populated), WELCOME with the region's memfd,
 *           whose header carries vmcgd's batch and watermark; then REFILL
 *           and GRANT through vmcgd's GLib main loop. After the run the
 *           bench shuts its side down and waits for vmcgd to close (it
 *           uncharges then), so that the next HELLO finds the VM free.
 *           vmcgd may drain a slot above 2 x batch at its 1 s tick.
 *
 * Timing: CLOCK_MONOTONIC from the vCPUs' start barrier to the last vCPU's
 * last write; pages/s is all the pages over that. Threads are not pinned:
 * the fault and daemon threads compete with the vCPUs for the CPUs, as
 * QEMU's and vmcgd's would. Refill round trip: from the send() of a REFILL
 * to the recv() of its GRANT, in the fault thread. Faults per page: uffd
 * faults resolved, and the vCPUs' minor faults (getrusage(RUSAGE_THREAD)),
 * both over the pages touched.
 *
 * Each round runs every cell once; a cell reports the median of its rounds.
 *
 * Exit status: 0 whatever the target says (a benchmark, not a test); 1 if
 * the accounting invariant of hooks-abi.h (the VM's charge == populated
 * pages + the slots' credit; with vmcgd, whose charge this process cannot
 * read: per slot, granted - taken - final credit, what vmcgd drained, is
 * >= 0, and the populated bits are exactly the pages taken) or a protocol
 * check fails, or vmcgd does not exit cleanly on SIGTERM; 2 on bad
 * arguments or setup failure (vmcgd's log is then kept); 77 if
 * userfaultfd cannot be used here.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vmcg/group.h"
#include "vmcg/hooks-abi.h"
#include "vmcg/size.h"

#include "bench-util.h"

/* The hook path works on 4 KiB pages (VMCG_PAGE_SIZE); so does the guest. */
#define PAGE ((size_t)VMCG_PAGE_SIZE)

enum variant {
	V_PLAIN,
	V_THP,
	V_HOOK,
	V_HOOK_VMCGD,
	_V_COUNT
};

static const char *const variant_names[_V_COUNT] = { "plain", "thp", "hook", "hook-vmcgd" };

static const unsigned matrix_threads[] = { 1, 2 };
static const uint32_t matrix_batches[] = { 1, 16, 64, 512 };

#define N_THREADS (sizeof(matrix_threads) / sizeof(matrix_threads[0]))
#define N_BATCHES (sizeof(matrix_batches) / sizeof(matrix_batches[0]))
#define MAX_THREADS 2
#define MAX_SLOTS (MAX_THREADS + 1)
#define MAX_BATCH 512
#define MAX_RUNS 15

/*
 * 256 MiB a run: 65536 pages, long enough that thread start-up and the
 * first refill of each slot are noise (the slowest cell, batch 1, takes
 * about a second a run on the machine of docs/performance.md). Sizes are
 * rounded down to whole chunks of the largest batch for every thread, so
 * that no chunk straddles two vCPUs' shares. 5 rounds, as bench-charge: a
 * 2-core guest's figures swing from run to run. --quick: 32 MiB, 1 round,
 * a smoke run of a few seconds.
 */
#define SIZE_DEFAULT (UINT64_C(256) << 20)
#define SIZE_QUICK (UINT64_C(32) << 20)
#define SIZE_GRAIN ((uint64_t)MAX_THREADS * MAX_BATCH * PAGE)
#define RUNS_DEFAULT 5

/* The target of the issue: the batch-64 hook path at half the plain rate. */
#define TARGET_BATCH 64
#define TARGET_RATIO 0.5

/* The real vmcgd (--vmcgd), if started: see vmcgd_start(). */
static struct {
	pid_t pid;	  /* 0: not running */
	char dir[64];	  /* its temporary directory: config, sockets, log */
	char hooks[108];  /* its hooks socket, NUL-terminated (sun_path) */
	bool keep;	  /* something failed: keep the directory and its log */
	int qmp_listener; /* the VM's QMP socket, served by fake_qmp_main() */
	int qmp_ready;	  /* query-memdev answered (atomic) */
} vmcgd = { .qmp_listener = -1 };

/* The VM of the config vmcgd_start() writes, named in every HELLO. */
#define VMCGD_VM "bench"

static _Noreturn void die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* exit() runs vmcgd_stop() (atexit), which keeps vmcgd's log after this. */
static _Noreturn void die(int status, const char *fmt, ...)
{
	va_list ap;

	vmcgd.keep = true;
	fprintf(stderr, "bench-hooks: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *xrealloc(void *p, size_t size)
{
	p = realloc(p, size);
	if (!p)
		die(2, "out of memory");
	return p;
}

/* ---- samples ---- */

typedef struct Samples {
	int64_t *v;
	size_t n, cap;
} Samples;

static void samples_add(Samples *s, int64_t x)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 1024;
		s->v = xrealloc(s->v, s->cap * sizeof(s->v[0]));
	}
	s->v[s->n++] = x;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest rank on sorted samples; 0 when empty. */
static int64_t percentile(const Samples *s, unsigned pct)
{
	size_t rank;

	if (!s->n)
		return 0;
	rank = (s->n * pct + 99) / 100;
	return s->v[rank ? rank - 1 : 0];
}

/* ---- vCPU threads ---- */

typedef struct Vcpu {
	volatile char *mem; /* its share */
	uint64_t pages;
	VmcgHooksSlot *slot; /* hook variant: where its tid goes; else NULL */
	pthread_barrier_t *start;
	int64_t t0, t1;
	uint64_t minflt;
} Vcpu;

static uint64_t thread_minflt(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return (uint64_t)ru.ru_minflt;
}

static void *vcpu_main(void *arg)
{
	Vcpu *v = arg;
	uint64_t flt;

	/* QEMU knows its vCPUs' host tids; the fault thread maps ptids with them. */
	if (v->slot)
		__atomic_store_n(&v->slot->tid, (uint32_t)gettid(), __ATOMIC_RELEASE);
	pthread_barrier_wait(v->start);
	flt = thread_minflt();
	v->t0 = now_ns();
	for (uint64_t i = 0; i < v->pages; i++)
		v->mem[i * PAGE] = 1;
	v->t1 = now_ns();
	v->minflt = thread_minflt() - flt;
	return NULL;
}

/* What one run measured. */
typedef struct RunResult {
	double pages_per_sec;
	uint64_t pages;
	uint64_t minflt;  /* the vCPUs' */
	uint64_t faults;  /* uffd faults resolved */
	uint64_t waits;	  /* faults that waited for credit */
	uint64_t refills; /* REFILLs sent */
	uint64_t drained; /* hook-vmcgd: credit vmcgd took back (ticks) */
} RunResult;

/* Start @threads vCPUs over @mem, wait for them; fills rate and minflt. */
static void run_vcpus(char *mem, uint64_t pages, unsigned threads, void *region, RunResult *res)
{
	Vcpu vcpus[MAX_THREADS];
	pthread_t tids[MAX_THREADS];
	pthread_barrier_t start;
	uint64_t share = pages / threads;
	int64_t t0 = INT64_MAX, t1 = 0;

	pthread_barrier_init(&start, NULL, threads);
	for (unsigned t = 0; t < threads; t++) {
		vcpus[t] = (Vcpu){ .mem = mem + t * share * PAGE,
				   .pages = share,
				   .slot = region ? vmcg_hooks_slot(region, t) : NULL,
				   .start = &start };
		if (pthread_create(&tids[t], NULL, vcpu_main, &vcpus[t]) != 0)
			die(2, "pthread_create failed");
	}
	res->pages = share * threads;
	res->minflt = 0;
	for (unsigned t = 0; t < threads; t++) {
		pthread_join(tids[t], NULL);
		if (vcpus[t].t0 < t0)
			t0 = vcpus[t].t0;
		if (vcpus[t].t1 > t1)
			t1 = vcpus[t].t1;
		res->minflt += vcpus[t].minflt;
	}
	pthread_barrier_destroy(&start);
	res->pages_per_sec = (double)res->pages * 1e9 / (double)(t1 - t0);
}

static char *map_anon(uint64_t bytes, int advice)
{
	char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		die(2, "mmap %" PRIu64 " bytes: %s", bytes, strerror(errno));
	if (madvise(p, bytes, advice) < 0)
		die(2, "madvise: %s", strerror(errno));
	return p;
}

/* ---- plain ---- */

static void run_plain(uint64_t pages, unsigned threads, bool thp, RunResult *res)
{
	char *mem = map_anon(pages * PAGE, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);

	memset(res, 0, sizeof(*res));
	run_vcpus(mem, pages, threads, NULL, res);
	munmap(mem, pages * PAGE);
}

/* ---- the daemon thread: vmcgd's half of REFILL/GRANT ---- */

typedef struct Daemon {
	int sock;
	void *region; /* its own mapping of the memfd */
	uint32_t nr_slots;
	VmcgVm *vm;
} Daemon;

static void *daemon_main(void *arg)
{
	Daemon *d = arg;
	union {
		VmcgHooksRefill refill;
		char raw[VMCG_HOOKS_MSG_MAX];
	} m;

	for (;;) {
		ssize_t n = recv(d->sock, &m, sizeof(m), 0);
		const VmcgHooksRefill *r = &m.refill;
		VmcgHooksGrant g;
		VmcgGroup *over;
		uint32_t pages;

		if (n == 0)
			break; /* QEMU hung up: the run is over */
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die(1, "BROKEN: daemon recv: %s", strerror(errno));
		}
		/* The receiver's checks of hooks-abi.h: any violation drops QEMU. */
		if ((size_t)n != sizeof(*r) || r->hdr.type != VMCG_HOOKS_REFILL ||
		    r->hdr.len != (uint32_t)n || r->slot >= d->nr_slots || r->need > r->want ||
		    r->want > VMCG_HOOKS_BATCH_MAX)
			die(1, "BROKEN: malformed REFILL (%zd bytes)", n);
		pages = r->want;
		if (vmcg_vm_try_charge(d->vm, pages, &over) < 0) {
			pages = r->need; /* exactly what waits, as try_charge() retries */
			if (pages && vmcg_vm_try_charge(d->vm, pages, &over) < 0)
				die(1, "BROKEN: charge of %u pages refused with no limit set",
				    pages);
		}
		/* Credit first, then GRANT: the vCPU may use it before the reply. */
		__atomic_fetch_add(&vmcg_hooks_slot(d->region, r->slot)->credit, (int64_t)pages,
				   __ATOMIC_RELEASE);
		g = (VmcgHooksGrant){
			.hdr = { .type = VMCG_HOOKS_GRANT, .len = sizeof(g), .seq = r->hdr.seq },
			.slot = r->slot,
			.pages = pages
		};
		if (send(d->sock, &g, sizeof(g), MSG_NOSIGNAL) != (ssize_t)sizeof(g))
			die(1, "BROKEN: daemon send: %s", strerror(errno));
	}
	return NULL;
}

/* ---- the fault thread: QEMU's half ---- */

typedef struct SlotState {
	bool outstanding; /* a REFILL is in flight (at most one per slot) */
	uint64_t seq;	  /* its sequence number */
	int64_t sent_ns;
	uint64_t granted; /* pages of all its GRANTs */
	/* Faults waiting for credit, FIFO: address and since when. */
	uint64_t *addr;
	int64_t *since;
	size_t head, n, cap;
} SlotState;

typedef struct Hook {
	char *base;
	uint64_t pages;
	uint32_t batch;
	uint32_t nr_slots; /* vCPUs + the device slot */
	int uffd;
	int sock;
	int stop_fd;	  /* eventfd: the vCPUs are done */
	void *region;	  /* QEMU's mapping of the memfd */
	uint64_t *bitmap; /* populated, one bit per page */
	char *zero;	  /* batch pages of zeroes: UFFDIO_COPY's source */
	uint64_t seq;
	SlotState state[MAX_SLOTS];
	Samples *rtt;
	uint64_t waits;
} Hook;

static VmcgHooksRegionHeader *hook_header(Hook *h)
{
	return h->region;
}

/* The slot of the thread with host tid @ptid: its vCPU's, or the device slot. */
static uint32_t slot_of(Hook *h, uint32_t ptid)
{
	for (uint32_t i = 0; i + 1 < h->nr_slots; i++)
		if (__atomic_load_n(&vmcg_hooks_slot(h->region, i)->tid, __ATOMIC_ACQUIRE) == ptid)
			return i;
	return h->nr_slots - 1;
}

static bool test_bit(const uint64_t *map, uint64_t i)
{
	return map[i / 64] >> (i % 64) & 1;
}

/* Single-threaded add to a QEMU-written field that vmcgd may read. */
static void stat_add(uint64_t *field, uint64_t n)
{
	__atomic_store_n(field, __atomic_load_n(field, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static void send_refill(Hook *h, uint32_t slot, uint32_t need)
{
	const VmcgHooksRegionHeader *hdr = hook_header(h);
	SlotState *st = &h->state[slot];
	uint32_t want = __atomic_load_n(&hdr->batch, __ATOMIC_RELAXED);
	VmcgHooksRefill r;

	if (st->outstanding)
		return;
	if (want < need)
		want = need;
	st->seq = ++h->seq;
	r = (VmcgHooksRefill){
		.hdr = { .type = VMCG_HOOKS_REFILL, .len = sizeof(r), .seq = st->seq },
		.slot = slot,
		.need = need,
		.want = want,
	};
	st->sent_ns = now_ns();
	if (send(h->sock, &r, sizeof(r), MSG_NOSIGNAL) != (ssize_t)sizeof(r))
		die(1, "BROKEN: REFILL send: %s", strerror(errno));
	st->outstanding = true;
	stat_add(&vmcg_hooks_slot(h->region, slot)->refills, 1);
}

/* Prefetch when the slot's credit fell below the daemon's watermark. */
static void maybe_prefetch(Hook *h, uint32_t slot)
{
	const VmcgHooksRegionHeader *hdr = hook_header(h);
	int64_t credit =
		__atomic_load_n(&vmcg_hooks_slot(h->region, slot)->credit, __ATOMIC_RELAXED);

	if (credit < (int64_t)__atomic_load_n(&hdr->watermark, __ATOMIC_RELAXED))
		send_refill(h, slot, 0);
}

/* Take @n credits, never below 0. */
static bool take_credit(VmcgHooksSlot *s, uint32_t n, int64_t *ret_credit)
{
	int64_t c = __atomic_load_n(&s->credit, __ATOMIC_RELAXED);

	do {
		if (c < (int64_t)n) {
			*ret_credit = c;
			return false;
		}
	} while (!__atomic_compare_exchange_n(&s->credit, &c, c - (int64_t)n, true,
					      __ATOMIC_ACQUIRE, __ATOMIC_RELAXED));
	return true;
}

static void uffd_wake(Hook *h, uint64_t addr)
{
	struct uffdio_range r = { .start = addr & ~(uint64_t)(PAGE - 1), .len = PAGE };

	if (ioctl(h->uffd, UFFDIO_WAKE, &r) < 0)
		die(1, "BROKEN: UFFDIO_WAKE: %s", strerror(errno));
}

/*
 * Resolve a fault at @addr charged to @slot: populate the clear pages of
 * its chunk after taking as many credits. Returns 0, or the pages the
 * slot's credit is short of (the fault must wait for a GRANT).
 */
static uint32_t resolve(Hook *h, uint32_t slot, uint64_t addr)
{
	VmcgHooksSlot *s = vmcg_hooks_slot(h->region, slot);
	uint64_t page = (addr - (uint64_t)(uintptr_t)h->base) / PAGE;
	uint64_t first = page / h->batch * h->batch, end = first + h->batch;
	uint32_t n = 0;
	int64_t credit;

	if (end > h->pages)
		end = h->pages;
	for (uint64_t i = first; i < end; i++)
		n += !test_bit(h->bitmap, i);
	if (!n) {
		/* Already populated: a second fault on a resolved page. */
		uffd_wake(h, addr);
		return 0;
	}
	if (!take_credit(s, n, &credit))
		return n - (uint32_t)credit;
	/* Ask before copying: the daemon charges while this thread copies. */
	maybe_prefetch(h, slot);

	for (uint64_t i = first; i < end;) {
		struct uffdio_copy c;
		uint64_t j;

		if (test_bit(h->bitmap, i)) {
			i++;
			continue;
		}
		for (j = i; j < end && !test_bit(h->bitmap, j); j++)
			h->bitmap[j / 64] |= UINT64_C(1) << (j % 64);
		c = (struct uffdio_copy){ .dst = (uint64_t)(uintptr_t)(h->base + i * PAGE),
					  .src = (uint64_t)(uintptr_t)h->zero,
					  .len = (j - i) * PAGE };
		if (ioctl(h->uffd, UFFDIO_COPY, &c) < 0 || c.copy != (int64_t)c.len)
			die(1, "BROKEN: UFFDIO_COPY of %" PRIu64 " pages: %s", j - i,
			    strerror(errno));
		i = j;
	}
	stat_add(&s->consumed, n);
	stat_add(&hook_header(h)->populated, n);
	return 0;
}

static void queue_fault(SlotState *st, uint64_t addr, int64_t since)
{
	if (st->head + st->n == st->cap) {
		if (st->head) {
			memmove(st->addr, st->addr + st->head, st->n * sizeof(st->addr[0]));
			memmove(st->since, st->since + st->head, st->n * sizeof(st->since[0]));
			st->head = 0;
		} else {
			st->cap = st->cap ? 2 * st->cap : 16;
			st->addr = xrealloc(st->addr, st->cap * sizeof(st->addr[0]));
			st->since = xrealloc(st->since, st->cap * sizeof(st->since[0]));
		}
	}
	st->addr[st->head + st->n] = addr;
	st->since[st->head + st->n] = since;
	st->n++;
}

/* Resolve the slot's waiting faults in order while its credit lasts. */
static void run_queue(Hook *h, uint32_t slot)
{
	SlotState *st = &h->state[slot];
	VmcgHooksSlot *s = vmcg_hooks_slot(h->region, slot);

	while (st->n) {
		uint32_t short_by = resolve(h, slot, st->addr[st->head]);

		if (short_by) {
			send_refill(h, slot, short_by);
			return;
		}
		stat_add(&s->stall_ns, (uint64_t)(now_ns() - st->since[st->head]));
		__atomic_store_n(&s->waiting, s->waiting - 1, __ATOMIC_RELAXED);
		st->head++;
		st->n--;
	}
	st->head = 0;
}

static void read_faults(Hook *h)
{
	struct uffd_msg msgs[16];

	for (;;) {
		ssize_t n = read(h->uffd, msgs, sizeof(msgs));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0 || n % (ssize_t)sizeof(msgs[0]))
			die(1, "BROKEN: uffd read: %s", n < 0 ? strerror(errno) : "short");
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++) {
			uint64_t addr = msgs[i].arg.pagefault.address;
			uint32_t slot;
			SlotState *st;

			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				die(1, "BROKEN: unexpected uffd event %u", msgs[i].event);
			stat_add(&hook_header(h)->faults, 1);
			slot = slot_of(h, msgs[i].arg.pagefault.feat.ptid);
			st = &h->state[slot];
			if (!st->n) {
				uint32_t short_by = resolve(h, slot, addr);

				if (!short_by)
					continue;
				send_refill(h, slot, short_by);
			}
			/* Waits behind the faults queued before it, FIFO. */
			queue_fault(st, addr, now_ns());
			__atomic_store_n(&vmcg_hooks_slot(h->region, slot)->waiting,
					 vmcg_hooks_slot(h->region, slot)->waiting + 1,
					 __ATOMIC_RELAXED);
			h->waits++;
		}
	}
}

static void read_grants(Hook *h)
{
	VmcgHooksGrant g;

	for (;;) {
		ssize_t n = recv(h->sock, &g, sizeof(g), MSG_DONTWAIT | MSG_TRUNC);
		SlotState *st;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0)
			die(1, "BROKEN: the daemon hung up%s%s", n < 0 ? ": " : "",
			    n < 0 ? strerror(errno) : "");
		if (n != (ssize_t)sizeof(g) || g.hdr.type != VMCG_HOOKS_GRANT ||
		    g.hdr.len != sizeof(g) || g.slot >= h->nr_slots)
			die(1, "BROKEN: malformed GRANT (%zd bytes)", n);
		st = &h->state[g.slot];
		if (!st->outstanding || g.hdr.seq != st->seq)
			die(1, "BROKEN: GRANT seq %" PRIu64 " for no REFILL", g.hdr.seq);
		samples_add(h->rtt, now_ns() - st->sent_ns);
		st->outstanding = false;
		st->granted += g.pages;
		run_queue(h, g.slot);
		if (!st->n)
			maybe_prefetch(h, g.slot);
	}
}

static bool any_outstanding(const Hook *h)
{
	for (uint32_t i = 0; i < h->nr_slots; i++)
		if (h->state[i].outstanding)
			return true;
	return false;
}

static void *fault_main(void *arg)
{
	Hook *h = arg;
	struct pollfd pfd[3] = {
		{ .fd = h->uffd, .events = POLLIN },
		{ .fd = h->sock, .events = POLLIN },
		{ .fd = h->stop_fd, .events = POLLIN },
	};
	bool stopping = false;

	/* After the vCPUs are done, wait for the GRANTs in flight. */
	while (!stopping || any_outstanding(h)) {
		if (poll(pfd, stopping ? 2 : 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			die(1, "BROKEN: poll: %s", strerror(errno));
		}
		/* GRANTs first: they may let queued faults go. */
		if (pfd[1].revents)
			read_grants(h);
		if (pfd[0].revents)
			read_faults(h);
		if (!stopping && pfd[2].revents)
			stopping = true;
	}
	return NULL;
}

/* ---- setup ---- */

static int open_uffd(int *ret_fd, const char **ret_why)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_THREAD_ID };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		*ret_why = "userfaultfd()";
		return -errno;
	}
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int r = -errno;

		*ret_why = "UFFDIO_API with UFFD_FEATURE_THREAD_ID";
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

/* The tree vmcgd would have: the VM three levels below "/". */
static VmcgVm *make_vm(VmcgTree **ret_tree)
{
	static const char *const paths[] = { "/tenants", "/tenants/acme", "/tenants/acme/web" };
	VmcgGroup *g = NULL;
	VmcgVm *vm;
	int r = vmcg_tree_new(NULL, ret_tree);

	for (size_t i = 0; r == 0 && i < sizeof(paths) / sizeof(paths[0]); i++)
		r = vmcg_group_create(*ret_tree, paths[i], &g);
	if (r == 0)
		r = vmcg_vm_new(g, "vm", &vm);
	if (r < 0)
		die(2, "tree setup: %s", strerror(-r));
	return vm;
}

static void *map_region(int fd, uint64_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		die(2, "mmap region: %s", strerror(errno));
	return p;
}

/* ---- the real vmcgd (--vmcgd) ---- */

static void vmcgd_path(char *buf, size_t size, const char *name)
{
	if ((size_t)snprintf(buf, size, "%s/%s", vmcgd.dir, name) >= size)
		die(2, "path too long: %s/%s", vmcgd.dir, name);
}

/* A connection to vmcgd's hooks socket, or -errno. */
static int hooks_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	_Static_assert(sizeof(vmcgd.hooks) <= sizeof(sa.sun_path), "hooks socket path");
	memcpy(sa.sun_path, vmcgd.hooks, sizeof(vmcgd.hooks));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

/*
 * SIGTERM, up to 5 s, then SIGKILL. Removes its directory unless something
 * failed. False if vmcgd did not exit with status 0 (it crashed, or it
 * failed on the way out).
 */
static bool vmcgd_stop(void)
{
	static const char *const files[] = { "vmcgd.conf", "vmcgd.log", "api.sock", "hooks.sock",
					     "vm.qmp" };
	char path[192];
	int status = 0;
	bool reaped = false, clean;

	if (vmcgd.pid <= 0)
		return true;
	kill(vmcgd.pid, SIGTERM);
	for (int i = 0; i < 500 && !reaped; i++) {
		reaped = waitpid(vmcgd.pid, &status, WNOHANG) == vmcgd.pid;
		if (!reaped)
			usleep(10000);
	}
	if (!reaped) {
		kill(vmcgd.pid, SIGKILL);
		waitpid(vmcgd.pid, &status, 0);
	}
	vmcgd.pid = 0;
	clean = reaped && WIFEXITED(status) && WEXITSTATUS(status) == 0;
	if (!clean) {
		fprintf(stderr, "bench-hooks: vmcgd did not exit cleanly on SIGTERM (%s %d)\n",
			!reaped		      ? "killed after 5 s, status"
			: WIFSIGNALED(status) ? "signal"
					      : "exit status",
			WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
		vmcgd.keep = true;
	}
	if (vmcgd.keep) {
		fprintf(stderr, "bench-hooks: vmcgd's log is kept in %s/vmcgd.log\n", vmcgd.dir);
		return clean;
	}
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		vmcgd_path(path, sizeof(path), files[i]);
		(void)unlink(path);
	}
	(void)rmdir(vmcgd.dir);
	return clean;
}

static void vmcgd_stop_atexit(void)
{
	(void)vmcgd_stop();
}

/*
 * The VM's QMP socket, served from this process: vmcgd believes a HELLO
 * only from the process at the other end of the VM's QMP connection
 * (SO_PEERCRED: the one that called listen(), this one), and only once it
 * knows the VM's RAM size. Answers the greeting and every command, one per
 * line as vmcgd sends them: query-memdev with FAKE_QMP_RAM_BYTES, the rest
 * with an empty return (query-balloon's "actual" missing only costs a
 * debug line).
 */
/* 1 TiB + 4 KiB: no mapping of this process has that size, so sampling finds none. */
#define FAKE_QMP_RAM_BYTES ((UINT64_C(1) << 40) + PAGE)

static bool write_all(int fd, const char *s)
{
	size_t len = strlen(s);

	while (len) {
		ssize_t n = send(fd, s, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		s += n;
		len -= (size_t)n;
	}
	return true;
}

/* The string value of "@key":"..." in @line (the last such key), into @buf. */
static void json_str(const char *line, const char *key, char *buf, size_t size)
{
	char pat[32];
	const char *p = NULL, *q, *end;

	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	for (q = strstr(line, pat); q; q = strstr(q + 1, pat))
		p = q + strlen(pat);
	buf[0] = '\0';
	if (!p || !(end = strchr(p, '"')) || (size_t)(end - p) >= size)
		return;
	memcpy(buf, p, (size_t)(end - p));
	buf[end - p] = '\0';
}

static void fake_qmp_serve(int fd)
{
	char in[8192], reply[512], cmd[64], id[64];
	size_t have = 0;

	if (!write_all(fd, "{\"QMP\":{\"version\":{\"qemu\":{\"major\":7,\"minor\":2,\"micro\":0},"
			   "\"package\":\"\"},\"capabilities\":[]}}\r\n"))
		return;
	for (;;) {
		ssize_t n = recv(fd, in + have, sizeof(in) - 1 - have, 0);
		char *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		have += (size_t)n;
		in[have] = '\0';
		while ((nl = strchr(in, '\n'))) {
			*nl = '\0';
			json_str(in, "execute", cmd, sizeof(cmd));
			json_str(in, "id", id, sizeof(id));
			if (strcmp(cmd, "query-memdev") == 0)
				snprintf(reply, sizeof(reply),
					 "{\"return\":[{\"id\":\"pc.ram\",\"size\":%" PRIu64
					 ",\"merge\":true,\"dump\":true,\"prealloc\":false,"
					 "\"share\":false,\"policy\":\"default\",\"host-nodes\":[]}"
					 "],"
					 "\"id\":\"%s\"}\r\n",
					 FAKE_QMP_RAM_BYTES, id);
			else
				snprintf(reply, sizeof(reply), "{\"return\":%s,\"id\":\"%s\"}\r\n",
					 strcmp(cmd, "qom-list") == 0 ? "[]" : "{}", id);
			if (!write_all(fd, reply))
				return;
			if (strcmp(cmd, "query-memdev") == 0)
				__atomic_store_n(&vmcgd.qmp_ready, 1, __ATOMIC_SEQ_CST);
			have -= (size_t)(nl + 1 - in);
			memmove(in, nl + 1, have + 1);
		}
		if (have == sizeof(in) - 1)
			return; /* a line longer than any vmcgd sends */
	}
}

/* One connection at a time: vmcgd keeps one QMP connection per VM. */
static void *fake_qmp_main(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept4(vmcgd.qmp_listener, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return NULL;
		}
		fake_qmp_serve(fd);
		close(fd);
	}
}

static int fake_qmp_listen(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || strlen(path) >= sizeof(sa.sun_path))
		die(2, "QMP socket %s: %s", path, strerror(errno));
	memcpy(sa.sun_path, path, strlen(path));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0)
		die(2, "QMP socket %s: %s", path, strerror(errno));
	return fd;
}

/*
 * Start @bin with a config that registers the VM VMCGD_VM, and wait until
 * its hooks socket takes connections. Before any thread exists: fork().
 */
static void vmcgd_start(const char *bin)
{
	char conf[192], api[192], qmp[192], log[192];
	pid_t parent = getpid();
	FILE *f;

	if (access(bin, X_OK) < 0)
		die(2, "--vmcgd %s: %s", bin, strerror(errno));
	snprintf(vmcgd.dir, sizeof(vmcgd.dir), "/tmp/bench-hooks-XXXXXX");
	if (!mkdtemp(vmcgd.dir))
		die(2, "mkdtemp: %s", strerror(errno));
	vmcgd_path(conf, sizeof(conf), "vmcgd.conf");
	vmcgd_path(api, sizeof(api), "api.sock");
	vmcgd_path(qmp, sizeof(qmp), "vm.qmp");
	vmcgd_path(log, sizeof(log), "vmcgd.log");
	vmcgd_path(vmcgd.hooks, sizeof(vmcgd.hooks), "hooks.sock");
	/* Listening before vmcgd starts; served once the fork is done. */
	vmcgd.qmp_listener = fake_qmp_listen(qmp);
	f = fopen(conf, "we");
	if (!f ||
	    fprintf(f,
		    "[daemon]\nwrite-group =\n\n[group /bench/a]\n\n[vm " VMCGD_VM
		    "]\nqmp = %s\ngroup = /bench/a\n",
		    qmp) < 0 ||
	    fclose(f) != 0)
		die(2, "%s: %s", conf, strerror(errno));

	atexit(vmcgd_stop_atexit);
	fflush(NULL);
	vmcgd.pid = fork();
	if (vmcgd.pid < 0)
		die(2, "fork: %s", strerror(errno));
	if (vmcgd.pid == 0) {
		int fd;

		/* Die with the benchmark, whatever happens to it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd >= 0)
			dup2(fd, 0);
		fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(bin, bin, "--config", conf, "--socket", api, "--no-state", "--hooks-socket",
		      vmcgd.hooks, (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	{
		pthread_t tid;

		if (pthread_create(&tid, NULL, fake_qmp_main, NULL) != 0)
			die(2, "pthread_create failed");
		pthread_detach(tid);
	}
	for (int i = 0; i < 1000; i++) {
		int status, fd = hooks_connect();

		if (fd >= 0)
			close(fd); /* vmcgd drops a connection that never said HELLO */
		if (fd >= 0 && __atomic_load_n(&vmcgd.qmp_ready, __ATOMIC_SEQ_CST))
			return;
		if (waitpid(vmcgd.pid, &status, WNOHANG) == vmcgd.pid) {
			vmcgd.pid = 0;
			die(2,
			    "vmcgd exited (status 0x%x) before its hooks socket took connections",
			    (unsigned)status);
		}
		usleep(10000);
	}
	die(2, "vmcgd's hooks socket %s took no connection, or it asked no query-memdev, in 10 s",
	    vmcgd.hooks);
}

/*
 * QEMU's side of HELLO/WELCOME on a new connection: @h's socket and its
 * mapping of vmcgd's region. Returns the region's size.
 */
static uint64_t hook_attach(Hook *h, unsigned threads)
{
	VmcgHooksHello hello = { .hdr = { .type = VMCG_HOOKS_HELLO,
					  .len = sizeof(VmcgHooksHello) + sizeof(VmcgHooksRamBlock),
					  .seq = ++h->seq },
				 .magic = VMCG_HOOKS_MAGIC,
				 .major = VMCG_HOOKS_ABI_MAJOR,
				 .minor = VMCG_HOOKS_ABI_MINOR,
				 .pid = (uint32_t)getpid(),
				 .nr_vcpus = threads,
				 .page_size = (uint32_t)PAGE,
				 .batch = h->batch,
				 .nr_ramblocks = 1,
				 .vm_name = VMCGD_VM };
	VmcgHooksRamBlock rb = { .name = "pc.ram", .pages = h->pages };
	_Alignas(8) unsigned char out[sizeof(hello) + sizeof(rb)], in[VMCG_HOOKS_MSG_MAX];
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = in, .iov_len = sizeof(in) };
	struct msghdr msg = { .msg_iov = &iov,
			      .msg_iovlen = 1,
			      .msg_control = u.buf,
			      .msg_controllen = sizeof(u.buf) };
	struct timeval tv = { .tv_sec = 5 };
	const VmcgHooksRegionHeader *hdr;
	struct cmsghdr *cm;
	VmcgHooksWelcome w;
	VmcgHooksHdr mh;
	int memfd = -1, tries = 0;
	ssize_t n;

again:
	h->sock = hooks_connect();
	if (h->sock < 0)
		die(2, "connect %s: %s", vmcgd.hooks, strerror(-h->sock));
	/* Only the handshake and the close block; the fault thread polls. */
	if (setsockopt(h->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(h->sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		die(2, "setsockopt: %s", strerror(errno));
	memcpy(out, &hello, sizeof(hello));
	memcpy(out + sizeof(hello), &rb, sizeof(rb));
	if (send(h->sock, out, sizeof(out), MSG_NOSIGNAL) != (ssize_t)sizeof(out))
		die(1, "BROKEN: HELLO send: %s", strerror(errno));
	do
		n = recvmsg(h->sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		die(1, "BROKEN: no WELCOME from vmcgd: %s", strerror(errno));
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int)) && memfd < 0)
			memcpy(&memfd, CMSG_DATA(cm), sizeof(int));
	memcpy(&mh, in, (size_t)n < sizeof(mh) ? (size_t)n : sizeof(mh));
	if ((size_t)n == sizeof(VmcgHooksReject) && mh.type == VMCG_HOOKS_REJECT) {
		VmcgHooksReject rej;

		memcpy(&rej, in, sizeof(rej));
		rej.reason[sizeof(rej.reason) - 1] = '\0';
		/* EAGAIN: vmcgd has not taken in the QMP answers yet; QEMU retries too. */
		if (rej.error == EAGAIN && ++tries < 100) {
			close(h->sock);
			msg.msg_controllen = sizeof(u.buf); /* recvmsg() shrank it */
			usleep(50000);
			goto again;
		}
		die(2, "vmcgd refused the HELLO: %s (%s)", rej.reason, strerror(rej.error));
	}
	if ((size_t)n != sizeof(w) || mh.type != VMCG_HOOKS_WELCOME || mh.len != (uint32_t)n ||
	    msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC) || memfd < 0)
		die(1, "BROKEN: malformed WELCOME (%zd bytes, type %u, %s memfd)", n, mh.type,
		    memfd < 0 ? "no" : "a");
	memcpy(&w, in, sizeof(w));
	if (w.major != VMCG_HOOKS_ABI_MAJOR || w.nr_slots != h->nr_slots ||
	    w.region_size != VMCG_HOOKS_REGION_SIZE(h->nr_slots) || w.charged != 0)
		die(1,
		    "BROKEN: WELCOME: ABI %u, %u slots, region of %" PRIu64 " bytes, %" PRIu64
		    " pages charged",
		    w.major, w.nr_slots, w.region_size, w.charged);
	h->region = map_region(memfd, w.region_size);
	close(memfd);
	hdr = h->region;
	if (hdr->magic != VMCG_HOOKS_REGION_MAGIC || hdr->major != VMCG_HOOKS_ABI_MAJOR ||
	    hdr->nr_slots != h->nr_slots || hdr->slot_size != sizeof(VmcgHooksSlot) ||
	    hdr->header_size != sizeof(VmcgHooksRegionHeader) || hdr->batch < 1 ||
	    hdr->batch > VMCG_HOOKS_BATCH_MAX || hdr->watermark < 1)
		die(1, "BROKEN: vmcgd's region header (%u slots, batch %u, watermark %u)",
		    hdr->nr_slots, hdr->batch, hdr->watermark);
	return w.region_size;
}

/*
 * Hang up and wait for vmcgd to close its end: it has then uncharged the
 * connection and detached the VM, which the next HELLO needs.
 */
static void hook_detach(Hook *h)
{
	char buf[VMCG_HOOKS_MSG_MAX];
	ssize_t n;

	if (shutdown(h->sock, SHUT_WR) < 0)
		die(1, "BROKEN: shutdown: %s", strerror(errno));
	do
		n = recv(h->sock, buf, sizeof(buf), 0);
	while (n < 0 && errno == EINTR);
	if (n != 0)
		die(1, "BROKEN: vmcgd did not close the connection: %s",
		    n < 0 ? strerror(errno) : "a packet after the run");
	close(h->sock);
}

/* ---- one hook run ---- */

/*
 * In-process (@real false): a daemon thread charging through libvmcg.
 * Real: vmcgd over its hooks socket. Returns false after an accounting
 * failure (said on stderr).
 */
static bool run_hook(bool real, uint64_t pages, unsigned threads, uint32_t batch, Samples *rtt,
		     RunResult *res)
{
	uint32_t nr_slots = threads + 1;
	uint64_t region_size = VMCG_HOOKS_REGION_SIZE(nr_slots), populated = 0, taken = 0;
	uint64_t granted = 0, drained = 0, charge;
	int64_t credits = 0;
	VmcgHooksRegionHeader *hdr;
	struct uffdio_register reg;
	Hook h = { .pages = pages, .batch = batch, .nr_slots = nr_slots, .rtt = rtt };
	Daemon d = { .nr_slots = nr_slots, .sock = -1 };
	VmcgTree *tree = NULL;
	pthread_t fault_tid, daemon_tid;
	int sv[2], memfd, r;
	const char *why;
	bool ok = true;

	memset(res, 0, sizeof(*res));
	if (real) {
		region_size = hook_attach(&h, threads);
	} else {
		d.vm = make_vm(&tree);

		/* vmcgd's part: the sealed memfd and its policy. */
		memfd = memfd_create("vmcg-hooks-bench", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		if (memfd < 0 || ftruncate(memfd, (off_t)region_size) < 0 ||
		    fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
			die(2, "region memfd: %s", strerror(errno));
		d.region = map_region(memfd, region_size);
		h.region = map_region(memfd, region_size);
		close(memfd);
		hdr = d.region;
		*hdr = (VmcgHooksRegionHeader){ .magic = VMCG_HOOKS_REGION_MAGIC,
						.major = VMCG_HOOKS_ABI_MAJOR,
						.minor = VMCG_HOOKS_ABI_MINOR,
						.nr_slots = nr_slots,
						.slot_size = sizeof(VmcgHooksSlot),
						.header_size = sizeof(VmcgHooksRegionHeader),
						.batch = batch,
						.watermark = batch / 2 ? batch / 2 : 1 };

		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
			die(2, "socketpair: %s", strerror(errno));
		h.sock = sv[0];
		d.sock = sv[1];
	}
	hdr = h.region;
	h.stop_fd = eventfd(0, EFD_CLOEXEC);
	if (h.stop_fd < 0)
		die(2, "eventfd: %s", strerror(errno));

	/* QEMU's part: guest RAM registered with userfaultfd, like postcopy. */
	r = open_uffd(&h.uffd, &why);
	if (r < 0)
		die(2, "%s: %s", why, strerror(-r));
	h.base = map_anon(pages * PAGE, MADV_NOHUGEPAGE);
	reg = (struct uffdio_register){
		.range = { .start = (uint64_t)(uintptr_t)h.base, .len = pages * PAGE },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	if (ioctl(h.uffd, UFFDIO_REGISTER, &reg) < 0)
		die(2, "UFFDIO_REGISTER: %s", strerror(errno));
	if (!(reg.ioctls & (UINT64_C(1) << _UFFDIO_COPY)))
		die(2, "UFFDIO_COPY not offered on anonymous memory");
	h.bitmap = calloc((pages + 63) / 64, sizeof(uint64_t));
	if (!h.bitmap)
		die(2, "out of memory");
	/*
	 * Never written: every page of it is the kernel's zero page (what a
	 * calloc()ed buffer is), read once here so that the copies do not
	 * fault on it.
	 */
	h.zero = map_anon((uint64_t)batch * PAGE, MADV_NOHUGEPAGE);
	for (uint32_t i = 0; i < batch; i++)
		(void)*(volatile char *)(h.zero + (size_t)i * PAGE);

	if ((!real && pthread_create(&daemon_tid, NULL, daemon_main, &d) != 0) ||
	    pthread_create(&fault_tid, NULL, fault_main, &h) != 0)
		die(2, "pthread_create failed");

	run_vcpus(h.base, pages, threads, h.region, res);

	if (eventfd_write(h.stop_fd, 1) < 0)
		die(2, "eventfd_write: %s", strerror(errno));
	pthread_join(fault_tid, NULL);

	/*
	 * hooks-abi.h: with no message in flight, charge == populated +
	 * credits. The in-process daemon's charge is libvmcg's count. vmcgd's
	 * cannot be read from here: it is what its GRANTs brought minus what
	 * it drained since, and a slot's credit goes down only by this
	 * process's takes and vmcgd's drains, so per slot drained = granted -
	 * taken - credit, which must not be negative.
	 */
	for (uint64_t i = 0; i < (pages + 63) / 64; i++)
		populated += (uint64_t)__builtin_popcountll(h.bitmap[i]);
	for (uint32_t i = 0; i < nr_slots; i++) {
		const VmcgHooksSlot *s = vmcg_hooks_slot(h.region, i);
		int64_t credit = __atomic_load_n(&s->credit, __ATOMIC_ACQUIRE);
		int64_t slot_drained = (int64_t)h.state[i].granted - (int64_t)s->consumed - credit;

		credits += credit;
		taken += s->consumed;
		granted += h.state[i].granted;
		res->refills += s->refills;
		if (credit < 0 || s->waiting || (real && slot_drained < 0)) {
			fprintf(stderr,
				"bench-hooks: INVARIANT: slot %u: credit %" PRId64
				", %u faults waiting, %" PRIu64 " granted, %" PRIu64 " taken\n",
				i, credit, s->waiting, h.state[i].granted, s->consumed);
			ok = false;
		}
		if (real && slot_drained > 0)
			drained += (uint64_t)slot_drained;
	}
	charge = real ? granted - drained : vmcg_vm_current(d.vm);
	if (charge != populated + (uint64_t)credits || populated != taken ||
	    populated != hdr->populated || populated != res->pages) {
		fprintf(stderr,
			"bench-hooks: INVARIANT: charge %" PRIu64 " != populated %" PRIu64
			" + credits %" PRId64 " (%" PRIu64 " taken, header says %" PRIu64
			" populated, %" PRIu64 " pages touched)\n",
			charge, populated, credits, taken, hdr->populated, res->pages);
		ok = false;
	}
	res->faults = hdr->faults;
	res->waits = h.waits;
	res->drained = drained;
	if (!ok)
		fprintf(stderr, "bench-hooks: ... in the run %s threads=%u batch=%u\n",
			variant_names[real ? V_HOOK_VMCGD : V_HOOK], threads, batch);

	if (real) {
		hook_detach(&h); /* vmcgd uncharges the connection */
	} else {
		close(h.sock); /* the daemon sees the hang-up and ends */
		pthread_join(daemon_tid, NULL);
		if (vmcg_vm_uncharge(d.vm, charge) < 0 ||
		    vmcg_group_current(vmcg_tree_root(tree))) {
			fprintf(stderr,
				"bench-hooks: INVARIANT: the tree is not empty after uncharge\n");
			ok = false;
		}
		vmcg_tree_free(tree);
		close(d.sock);
		munmap(d.region, region_size);
	}
	for (uint32_t i = 0; i < nr_slots; i++) {
		free(h.state[i].addr);
		free(h.state[i].since);
	}
	free(h.bitmap);
	munmap(h.zero, (size_t)batch * PAGE);
	munmap(h.base, pages * PAGE);
	close(h.uffd);
	close(h.stop_fd);
	munmap(h.region, region_size);
	return ok;
}

/* ---- the matrix ---- */

typedef struct Cell {
	enum variant variant;
	unsigned threads;
	uint32_t batch; /* 0 for plain and thp */
	double rates[MAX_RUNS];
	double median, min, max;
	RunResult sum; /* counts summed over the runs */
	Samples rtt;
} Cell;

#define MAX_CELLS (N_THREADS * (2 * N_BATCHES + 2))

static Cell cells[MAX_CELLS];
static size_t nr_cells;

typedef struct Options {
	uint64_t size; /* bytes a run, a multiple of SIZE_GRAIN */
	unsigned runs;
	bool thp;
	const char *vmcgd; /* NULL: no hook-vmcgd rows */
} Options;

static bool thp_available(void)
{
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
	char line[128] = "";
	bool ok;

	if (!f)
		return false;
	ok = fgets(line, sizeof(line), f) && !strstr(line, "[never]");
	fclose(f);
	return ok;
}

static bool run_matrix(const Options *o)
{
	uint64_t pages = o->size / PAGE;
	bool ok = true;

	for (size_t ti = 0; ti < N_THREADS; ti++) {
		cells[nr_cells++] = (Cell){ .variant = V_PLAIN, .threads = matrix_threads[ti] };
		if (o->thp)
			cells[nr_cells++] =
				(Cell){ .variant = V_THP, .threads = matrix_threads[ti] };
		for (size_t bi = 0; bi < N_BATCHES; bi++)
			cells[nr_cells++] = (Cell){ .variant = V_HOOK,
						    .threads = matrix_threads[ti],
						    .batch = matrix_batches[bi] };
		for (size_t bi = 0; o->vmcgd && bi < N_BATCHES; bi++)
			cells[nr_cells++] = (Cell){ .variant = V_HOOK_VMCGD,
						    .threads = matrix_threads[ti],
						    .batch = matrix_batches[bi] };
	}

	for (unsigned r = 0; r < o->runs; r++)
		for (size_t i = 0; i < nr_cells; i++) {
			Cell *c = &cells[i];
			RunResult res;

			if (c->variant == V_HOOK || c->variant == V_HOOK_VMCGD)
				ok &= run_hook(c->variant == V_HOOK_VMCGD, pages, c->threads,
					       c->batch, &c->rtt, &res);
			else
				run_plain(pages, c->threads, c->variant == V_THP, &res);
			c->rates[r] = res.pages_per_sec;
			c->sum.pages += res.pages;
			c->sum.minflt += res.minflt;
			c->sum.faults += res.faults;
			c->sum.waits += res.waits;
			c->sum.refills += res.refills;
			c->sum.drained += res.drained;
		}

	for (size_t i = 0; i < nr_cells; i++) {
		Cell *c = &cells[i];
		unsigned n = o->runs;

		qsort(c->rates, n, sizeof(c->rates[0]), cmp_double);
		c->median = n % 2 ? c->rates[n / 2] : (c->rates[n / 2 - 1] + c->rates[n / 2]) / 2;
		c->min = c->rates[0];
		c->max = c->rates[n - 1];
		qsort(c->rtt.v, c->rtt.n, sizeof(c->rtt.v[0]), cmp_i64);
	}
	return ok;
}

static const Cell *find(enum variant v, unsigned threads, uint32_t batch)
{
	for (size_t i = 0; i < nr_cells; i++)
		if (cells[i].variant == v && cells[i].threads == threads && cells[i].batch == batch)
			return &cells[i];
	return NULL;
}

/* ---- output ---- */

static void print_table(const Options *o)
{
	char model[128], size[VMCG_SIZE_STRLEN];

	cpu_model(model, sizeof(model));
	vmcg_size_format_human(o->size, size, sizeof(size));
	printf("bench-hooks: %ld online CPUs (%s), %s a run (%" PRIu64
	       " pages of 4 KiB), median of %u runs\n",
	       sysconf(_SC_NPROCESSORS_ONLN), model, size, o->size / PAGE, o->runs);
	printf("hook: userfaultfd MISSING, chunk = batch pages, watermark = batch/2, "
	       "want = batch, VM 3 levels below /\n");
	if (o->vmcgd)
		printf("hook-vmcgd: the same against the real vmcgd (%s), VM in /bench/a, "
		       "a HELLO per run\n",
		       o->vmcgd);
	printf("ratio: pages/s over plain's, same threads; uffd/pg and flt/pg: uffd faults "
	       "and vCPU minor faults per page;\nwait%%: uffd faults that waited for "
	       "credit; rtt: REFILL to GRANT, over all runs' refills\n\n");
	printf("%3s %-10s %5s %11s %23s %6s %8s %7s %6s %9s %9s %9s\n", "thr", "variant", "batch",
	       "pages/s", "min - max", "ratio", "uffd/pg", "flt/pg", "wait%", "refills", "rtt p50",
	       "rtt p99");
	for (size_t i = 0; i < nr_cells; i++) {
		const Cell *c = &cells[i], *plain = find(V_PLAIN, c->threads, 0);
		double pages = (double)c->sum.pages;
		char batch[16] = "-", range[32], wait[16] = "-", refills[24] = "-";
		char p50[16] = "-", p99[16] = "-";

		snprintf(range, sizeof(range), "%.0f - %.0f", c->min, c->max);
		if (c->variant == V_HOOK || c->variant == V_HOOK_VMCGD) {
			snprintf(batch, sizeof(batch), "%u", c->batch);
			snprintf(wait, sizeof(wait), "%.1f",
				 c->sum.faults
					 ? 100.0 * (double)c->sum.waits / (double)c->sum.faults
					 : 0.0);
			snprintf(refills, sizeof(refills), "%" PRIu64, c->sum.refills / o->runs);
			snprintf(p50, sizeof(p50), "%.1fus",
				 (double)percentile(&c->rtt, 50) / 1000.0);
			snprintf(p99, sizeof(p99), "%.1fus",
				 (double)percentile(&c->rtt, 99) / 1000.0);
		}
		printf("%3u %-10s %5s %11.0f %23s %6.3f %8.4f %7.4f %6s %9s %9s %9s\n", c->threads,
		       variant_names[c->variant], batch, c->median, range,
		       c->median / plain->median, (double)c->sum.faults / pages,
		       (double)c->sum.minflt / pages, wait, refills, p50, p99);
	}
	for (size_t i = 0; o->vmcgd && i < nr_cells; i++)
		if (cells[i].sum.drained)
			printf("(%u %s %u: vmcgd drained %" PRIu64 " pages of credit at its ticks "
			       "over the runs)\n",
			       cells[i].threads, variant_names[cells[i].variant], cells[i].batch,
			       cells[i].sum.drained);
}

static void print_targets(void)
{
	printf("\ntargets:\n");
	for (enum variant v = V_HOOK; v <= V_HOOK_VMCGD; v++)
		for (size_t ti = 0; ti < N_THREADS; ti++) {
			unsigned t = matrix_threads[ti];
			const Cell *c = find(v, t, TARGET_BATCH);
			double ratio;

			if (!c)
				continue;
			ratio = c->median / find(V_PLAIN, t, 0)->median;
			printf("  %s  %s batch %u >= %.1fx plain (%u thread%s): ratio = %.3f\n",
			       ratio >= TARGET_RATIO ? "PASS" : "FAIL", variant_names[v],
			       TARGET_BATCH, TARGET_RATIO, t, t > 1 ? "s" : "", ratio);
		}
}

/* ---- arguments ---- */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: bench-hooks [--quick] [--size SIZE] [--runs N] [--no-thp] [--vmcgd PATH]\n"
		"  --quick      %" PRIu64 " MiB, 1 run (a smoke run of a few seconds)\n"
		"  --size SIZE  guest RAM touched per run, e.g. 256M (default %" PRIu64 " MiB;\n"
		"               rounded down to a multiple of %" PRIu64 " MiB)\n"
		"  --runs N     runs per cell, median reported (default %u, max %u)\n"
		"  --no-thp     leave out the transparent-huge-page reference line\n"
		"  --vmcgd PATH also run the hook rows against this vmcgd binary, started\n"
		"               as a child (hook-vmcgd); default: the in-process daemon only\n",
		SIZE_QUICK >> 20, SIZE_DEFAULT >> 20, SIZE_GRAIN >> 20, RUNS_DEFAULT, MAX_RUNS);
}

static void parse_args(int argc, char **argv, Options *o)
{
	bool quick = false, size_set = false, runs_set = false;

	*o = (Options){ .size = SIZE_DEFAULT, .runs = RUNS_DEFAULT, .thp = true };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		char *end;

		if (strcmp(a, "--quick") == 0) {
			quick = true;
		} else if (strcmp(a, "--no-thp") == 0) {
			o->thp = false;
		} else if (strcmp(a, "--vmcgd") == 0 && i + 1 < argc && *argv[i + 1]) {
			o->vmcgd = argv[++i];
		} else if (strcmp(a, "--size") == 0 && i + 1 < argc &&
			   vmcg_size_parse(argv[i + 1], &o->size) == 0 &&
			   o->size != VMCG_SIZE_MAX) {
			size_set = true;
			i++;
		} else if (strcmp(a, "--runs") == 0 && i + 1 < argc &&
			   (o->runs = (unsigned)strtoul(argv[i + 1], &end, 10)) >= 1 &&
			   o->runs <= MAX_RUNS && !*end && *argv[i + 1] != '-') {
			runs_set = true;
			i++;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			exit(0);
		} else {
			fprintf(stderr, "bench-hooks: bad argument '%s'\n", a);
			usage(stderr);
			exit(2);
		}
	}
	if (quick && !size_set)
		o->size = SIZE_QUICK;
	if (quick && !runs_set)
		o->runs = 1;
	o->size = o->size / SIZE_GRAIN * SIZE_GRAIN;
	if (!o->size)
		die(2, "--size: at least %" PRIu64 " MiB", SIZE_GRAIN >> 20);
}

int main(int argc, char **argv)
{
	Options o;
	const char *why;
	int fd, r;

	parse_args(argc, argv, &o);
	if (sysconf(_SC_PAGESIZE) != (long)PAGE) {
		printf("bench-hooks: skipped: host pages are not 4 KiB\n");
		return 77;
	}
	r = open_uffd(&fd, &why);
	if (r < 0) {
		printf("bench-hooks: skipped: %s: %s%s\n", why, strerror(-r),
		       r == -EPERM ? " (not root, and vm.unprivileged_userfaultfd is 0)" : "");
		return 77;
	}
	close(fd);
	if (o.thp && !thp_available()) {
		fprintf(stderr, "bench-hooks: transparent huge pages are off: no thp line\n");
		o.thp = false;
	}

	if (o.vmcgd)
		vmcgd_start(o.vmcgd);

	if (!run_matrix(&o)) {
		fprintf(stderr, "bench-hooks: the accounting is broken; no figures\n");
		vmcgd.keep = true;
		(void)vmcgd_stop();
		return 1;
	}
	if (!vmcgd_stop())
		return 1;
	print_table(&o);
	print_targets();
	return 0;
}
