// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The hooks server (hooks.h). One non-blocking SOCK_SEQPACKET connection
 * per hooked QEMU, served on the main loop: a REFILL is answered within
 * the same main-loop iteration unless the VM's groups have no room, in
 * which case it is held (the vCPU waits: throttling) and retried whenever
 * charge goes away or a limit goes up, and at every tick, while the
 * control loop reclaims for it; past the OOM deadline the group's OOM
 * action runs (control.c).
 *
 * Accounting: c->charged is exactly what this connection has charged to
 * the VM (HELLO's populated pages, plus grants, minus drains). It leaves
 * the tree whole when the connection closes; sampling takes over if QEMU
 * lives on.
 *
 * The region is shared with an untrusted process: vmcgd only ever reads a
 * slot's credit with atomic operations and never trusts it beyond what it
 * has charged (a QEMU that writes itself credit gets pages it was not
 * charged for: the sampling audit flags exactly that).
 */
#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib-unix.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon-private.h"
#include "hooks-proto.h"
#include "hooks.h"
#include "unixsock.h"

#define PAGE VMCG_PAGE_SIZE
/* Packets handled per wake-up of one connection: others get their turn. */
#define BURST 64
/*
 * Log lines a peer can cause (refusals, silent connections, accept
 * failures): at most 10 per 5 s, then one line counting what was dropped.
 * An attacker connecting in a loop must not fill the disk (issue 9: 378 MB
 * of "accept: Too many open files").
 */
#define LOG_INTERVAL_USEC (5 * G_USEC_PER_SEC)
#define LOG_BURST 10

struct VmcgHooks {
	VmcgDaemon *d;
	char *path;
	int fd;
	guint watch;
	dev_t dev;
	ino_t ino;
	GQueue conns;
	uint64_t last_tick_usec;
	uint32_t nr_pending;	     /* connections waiting for their HELLO */
	guint retry;		     /* accept() failed: re-watch the listener then */
	uint32_t accept_failures;    /* in a row, this episode */
	uint64_t accept_failed_usec; /* when this episode began */
	uint64_t dropped;	     /* connections closed before HELLO (caps, deadline) */
	VmcgHooksRatelimit rl;
};

typedef struct Held {
	gboolean held;
	uint32_t need, want;
	uint64_t seq;
	int64_t since;
} Held;

struct VmcgHooksConn {
	VmcgHooks *h;
	int fd;
	guint watch;
	pid_t pid; /* SO_PEERCRED */
	uid_t uid;
	gboolean pending;  /* no HELLO yet: counted in h->nr_pending */
	guint hello_timer; /* closes it if no HELLO comes */
	VmcgDvm *vm;
	uint32_t nr_slots;
	uint32_t batch;	    /* refill size: the tree's stock-batch (region header) */
	uint32_t chunk;	    /* QEMU's pages per fault (HELLO batch) */
	uint64_t ram_pages; /* the VM's RAM when it attached: bounds c->charged */
	void *region;
	size_t region_size;
	uint64_t charged;
	Held *held;
	uint32_t nr_held;
	uint64_t stall_usec;	  /* total time a vCPU waited, all slots overlapping */
	uint64_t tick_stall_usec; /* finished waits in this tick */
	uint64_t grants, drains;
	uint64_t seq;
	gboolean dead; /* shut down; freed when its watch sees the end */
	GList link;
};

static VmcgHooksSlot *slot(VmcgHooksConn *c, uint32_t i)
{
	return vmcg_hooks_slot(c->region, i);
}

static const char *conn_name(VmcgHooksConn *c)
{
	return c->vm ? vmcg_vm_name(c->vm->vm) : "(not attached)";
}

/* ---- credit ---- */

static void credit_add(VmcgHooksConn *c, uint32_t i, uint64_t pages)
{
	__atomic_fetch_add(&slot(c, i)->credit, (int64_t)pages, __ATOMIC_SEQ_CST);
}

/* Take whatever the slot holds above @keep; what was taken. */
static uint64_t credit_take_above(VmcgHooksConn *c, uint32_t i, uint64_t keep)
{
	int64_t *p = &slot(c, i)->credit;
	int64_t old = __atomic_load_n(p, __ATOMIC_SEQ_CST);

	while (old > (int64_t)keep) {
		if (__atomic_compare_exchange_n(p, &old, (int64_t)keep, false, __ATOMIC_SEQ_CST,
						__ATOMIC_SEQ_CST))
			return (uint64_t)old - keep;
	}
	return 0;
}

/* Signed: a slot in debt (see cover_debt()) counts against the others. */
static int64_t credit_sum(VmcgHooksConn *c)
{
	int64_t sum = 0;

	for (uint32_t i = 0; i < c->nr_slots; i++)
		sum += __atomic_load_n(&slot(c, i)->credit, __ATOMIC_RELAXED);
	return sum;
}

/*
 * Slot credit is charged stock, not guest RAM (memory.stat): said to the
 * engine whenever vmcgd changes it (grant, drain, debt, attach) and each
 * tick, which catches what QEMU consumed in between.
 */
static void sync_stock(VmcgHooksConn *c)
{
	if (c->vm)
		vmcg_vm_set_external_stock(c->vm->vm, (uint64_t)MAX(credit_sum(c), 0));
}

/*
 * Whether charging @more pages keeps the connection within the VM's RAM
 * plus the slack (vmcg_hooks_charge_in_range()); if not, QEMU is making up
 * pages: said once, and the caller drops the connection.
 */
static gboolean charge_ok(VmcgHooksConn *c, uint64_t more, const char *what)
{
	if (vmcg_hooks_charge_in_range(c->charged, more, c->ram_pages, vmcg_hooks_conn_slack(c)))
		return TRUE;
	g_warning("hooks: VM %s (pid %d): %s of %" G_GUINT64_FORMAT " pages with %" G_GUINT64_FORMAT
		  " charged: above its RAM (%" G_GUINT64_FORMAT " pages) and twice the slots' "
		  "slack (%" G_GUINT64_FORMAT "): dropping the connection",
		  conn_name(c), (int)c->pid, what, more, c->charged, c->ram_pages,
		  vmcg_hooks_conn_slack(c));
	return FALSE;
}

/*
 * A vCPU that must stop (the VM is being paused or shut down) cannot wait
 * for a refill: QEMU lets its fault through on debt, taking the slot's
 * credit below 0. The pages are resident: charge them whatever the limits
 * (as the kernel force-charges what must not fail), and the control loop
 * reclaims. Bounded by what the waiting faults needed: a chunk per vCPU,
 * and by the VM's RAM (charge_ok()). FALSE: the connection must go.
 */
static gboolean cover_debt(VmcgHooksConn *c)
{
	for (uint32_t i = 0; i < c->nr_slots; i++) {
		int64_t v = __atomic_load_n(&slot(c, i)->credit, __ATOMIC_SEQ_CST);
		uint64_t debt;

		if (v >= 0)
			continue;
		debt = MIN((uint64_t)-v, (uint64_t)VMCG_HOOKS_BATCH_MAX);
		if (!charge_ok(c, debt, "debt"))
			return FALSE;
		vmcg_vm_charge(c->vm->vm, debt);
		c->charged += debt;
		c->grants += debt;
		credit_add(c, i, debt);
		g_info("hooks: VM %s: slot %u ran %" G_GUINT64_FORMAT
		       " pages into debt (a stopping vCPU): charged",
		       conn_name(c), i, debt);
	}
	sync_stock(c);
	return TRUE;
}

/*
 * Give back @pages taken from the region. Never more than this connection
 * charged: credit QEMU made up itself is not vmcgd's to uncharge.
 */
static void uncharge(VmcgHooksConn *c, uint64_t pages)
{
	if (pages > c->charged) {
		g_warning("hooks: VM %s: its slots held %" G_GUINT64_FORMAT
			  " pages more than vmcgd granted",
			  conn_name(c), pages - c->charged);
		pages = c->charged;
	}
	if (!pages)
		return;
	(void)vmcg_vm_uncharge(c->vm->vm, pages);
	c->charged -= pages;
	c->drains += pages;
	sync_stock(c);
}

/* drain_all_stock() for one connection: every slot's credit above @keep. */
static uint64_t drain(VmcgHooksConn *c, uint64_t keep)
{
	uint64_t total = 0;

	for (uint32_t i = 0; i < c->nr_slots; i++)
		total += credit_take_above(c, i, keep);
	uncharge(c, total);
	return total;
}

/* ---- sending ---- */

static gboolean send_packet(VmcgHooksConn *c, const void *buf, size_t len, int fd)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (fd >= 0) {
		struct cmsghdr *cm;

		memset(&u, 0, sizeof(u));
		msg.msg_control = u.buf;
		msg.msg_controllen = sizeof(u.buf);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	do
		n = sendmsg(c->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)len)
		return TRUE;
	/*
	 * A peer that lets a socket buffer of small packets fill up is not
	 * reading: drop it rather than queue without bound.
	 */
	g_warning("hooks: VM %s: cannot send: %s", conn_name(c),
		  n < 0 ? g_strerror(errno) : "short write");
	return FALSE;
}

static void hdr_init(VmcgHooksConn *c, VmcgHooksHdr *hdr, uint32_t type, size_t len)
{
	hdr->type = type;
	hdr->len = (uint32_t)len;
	hdr->seq = ++c->seq;
}

/* Whether a line a peer caused may be logged now (LOG_BURST per LOG_INTERVAL_USEC). */
static gboolean log_ok(VmcgHooks *h)
{
	uint64_t missed = 0;

	if (!vmcg_hooks_ratelimit(&h->rl, vmcg_daemon_now_usec(h->d), LOG_INTERVAL_USEC, LOG_BURST,
				  &missed))
		return FALSE;
	if (missed)
		g_message("hooks: %" G_GUINT64_FORMAT " messages about refused peers suppressed",
			  missed);
	return TRUE;
}

static void send_reject(VmcgHooksConn *c, int error, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static void send_reject(VmcgHooksConn *c, int error, const char *fmt, ...)
{
	VmcgHooksReject r = { 0 };
	va_list ap;

	hdr_init(c, &r.hdr, VMCG_HOOKS_REJECT, sizeof(r));
	r.error = error;
	va_start(ap, fmt);
	g_vsnprintf(r.reason, sizeof(r.reason), fmt, ap);
	va_end(ap);
	if (log_ok(c->h))
		g_message("hooks: pid %d refused: %s", (int)c->pid, r.reason);
	(void)send_packet(c, &r, sizeof(r), -1);
}

/* ---- connections ---- */

static void emit(VmcgHooksConn *c, const char *type, json_object *extra)
{
	g_autoptr(json_object) data = extra ? extra : json_object_new_object();

	json_object_object_add(data, "vm", json_object_new_string(vmcg_vm_name(c->vm->vm)));
	json_object_object_add(data, "pid", json_object_new_int64(c->pid));
	vmcg_daemon_emit(c->h->d, type, data);
}

static void end_hold(VmcgHooksConn *c, uint32_t i, int64_t now)
{
	Held *hd = &c->held[i];
	int64_t from = MAX(hd->since, (int64_t)c->h->last_tick_usec);

	c->stall_usec += (uint64_t)(now - hd->since);
	if (now > from)
		c->tick_stall_usec = MAX(c->tick_stall_usec, (uint64_t)(now - from));
	hd->held = FALSE;
	c->nr_held--;
}

static void conn_free(VmcgHooksConn *c)
{
	VmcgHooks *h = c->h;

	if (c->vm) {
		VmcgDvm *vm = c->vm;

		uncharge(c, c->charged);
		emit(c, VMCG_EV_HOOKS_DETACHED, NULL);
		g_message("hooks: VM %s detached", vmcg_vm_name(vm->vm));
		/* Everything charged through the connection is gone: sampling takes over. */
		vmcg_dvm_hooks_detach(vm);
		c->vm = NULL;
	}
	if (c->pending)
		h->nr_pending--;
	if (c->hello_timer)
		g_source_remove(c->hello_timer);
	if (c->watch)
		g_source_remove(c->watch);
	if (c->fd >= 0)
		close(c->fd);
	if (c->region)
		munmap(c->region, c->region_size);
	g_free(c->held);
	g_queue_unlink(&h->conns, &c->link);
	g_free(c);
}

void vmcg_hooks_conn_close(VmcgHooksConn *c)
{
	conn_free(c);
}

/*
 * Outside the connection's own callback: shut the socket down and let that
 * callback free it, so that no caller up the stack is left holding a freed
 * connection. Its charge goes at once.
 */
static void conn_fail(VmcgHooksConn *c)
{
	if (c->dead)
		return;
	c->dead = TRUE;
	if (c->vm)
		uncharge(c, c->charged);
	shutdown(c->fd, SHUT_RDWR);
}

static void *region_new(uint32_t nr_slots, uint32_t batch, size_t *ret_size, int *ret_fd,
			GError **error)
{
	size_t size = VMCG_HOOKS_REGION_SIZE(nr_slots);
	VmcgHooksRegionHeader *hdr;
	void *p;
	int fd;

	fd = memfd_create("vmcg-hooks", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		int err = errno;

		if (fd >= 0)
			close(fd);
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err), "memfd: %s",
			    g_strerror(err));
		return NULL;
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		int err = errno;

		close(fd);
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err), "mmap: %s",
			    g_strerror(err));
		return NULL;
	}
	hdr = p;
	hdr->magic = VMCG_HOOKS_REGION_MAGIC;
	hdr->major = VMCG_HOOKS_ABI_MAJOR;
	hdr->minor = VMCG_HOOKS_ABI_MINOR;
	hdr->nr_slots = nr_slots;
	hdr->slot_size = sizeof(VmcgHooksSlot);
	hdr->header_size = sizeof(VmcgHooksRegionHeader);
	hdr->batch = batch;
	hdr->watermark = MAX(1u, batch / 2);
	*ret_size = size;
	*ret_fd = fd;
	return p;
}

static gboolean on_hello(VmcgHooksConn *c, const VmcgHooksMsg *m)
{
	VmcgDaemon *d = c->h->d;
	g_autoptr(GError) error = NULL;
	VmcgHooksWelcome w = { 0 };
	VmcgHooksVmFacts facts = { 0 };
	char err[VMCG_HOOKS_REASON_MAX];
	VmcgDvm *vm;
	json_object *data;
	int mfd, r;

	vm = vmcg_daemon_vm_lookup(d, m->hello.vm_name);
	if (vm) {
		facts.registered = true;
		facts.attached = vm->hooks != NULL;
		facts.attached_pid = vm->hooks ? (uint32_t)vm->hooks->pid : 0;
		facts.qmp_pid = vm->pid > 0 ? (uint32_t)vm->pid : 0;
		facts.ram_pages = vmcg_dvm_ram_bytes(vm) / PAGE;
	}
	r = vmcg_hooks_admit(m, (uint32_t)c->pid, &facts, err, sizeof(err));
	if (r < 0) {
		send_reject(c, -r, "%s", err);
		return FALSE;
	}
	c->nr_slots = m->hello.nr_vcpus + 1;
	/*
	 * Refills are the daemon's stock batch (stock-batch, the kernel's
	 * MEMCG_CHARGE_BATCH analog); the chunk a fault populates is QEMU's.
	 */
	c->chunk = m->hello.batch;
	c->ram_pages = facts.ram_pages;
	c->batch = MIN(vmcg_tree_stock_batch(d->tree), (uint32_t)VMCG_HOOKS_BATCH_MAX);
	c->region = region_new(c->nr_slots, c->batch, &c->region_size, &mfd, &error);
	if (!c->region) {
		send_reject(c, EIO, "vmcgd: %s", error->message);
		return FALSE;
	}
	c->held = g_new0(Held, c->nr_slots);

	/* Attach: sampling's charge is replaced by the hooks' own count. */
	c->pending = FALSE;
	c->h->nr_pending--;
	if (c->hello_timer) {
		g_source_remove(c->hello_timer);
		c->hello_timer = 0;
	}
	vmcg_dvm_hooks_attach(vm, c, m->hello.populated);
	c->charged = m->hello.populated;
	c->vm = vm;
	sync_stock(c);

	hdr_init(c, &w.hdr, VMCG_HOOKS_WELCOME, sizeof(w));
	w.major = VMCG_HOOKS_ABI_MAJOR;
	w.minor = VMCG_HOOKS_ABI_MINOR;
	w.nr_slots = c->nr_slots;
	w.region_size = c->region_size;
	w.charged = c->charged;
	if (!send_packet(c, &w, sizeof(w), mfd)) {
		close(mfd);
		return FALSE;
	}
	close(mfd);
	g_message("hooks: VM %s attached: pid %d, %u vCPUs, batch %u, %" G_GUINT64_FORMAT
		  " of %" G_GUINT64_FORMAT " pages populated%s",
		  m->hello.vm_name, (int)c->pid, m->hello.nr_vcpus, c->batch, m->hello.populated,
		  m->hello.pages, m->hello.flags & VMCG_HOOKS_F_REATTACH ? " (re-attach)" : "");
	data = json_object_new_object();
	json_object_object_add(data, "vcpus", json_object_new_int64(m->hello.nr_vcpus));
	json_object_object_add(data, "batch", json_object_new_int64(c->chunk));
	json_object_object_add(data, "refill-batch", json_object_new_int64(c->batch));
	json_object_object_add(data, "populated",
			       json_object_new_uint64(m->hello.populated * PAGE));
	json_object_object_add(data, "reattach",
			       json_object_new_boolean(m->hello.flags & VMCG_HOOKS_F_REATTACH));
	emit(c, VMCG_EV_HOOKS_ATTACHED, data);
	return TRUE;
}

/* Charge @want pages, or exactly @need if @want would break a max. Pages, or 0. */
static uint32_t try_charge(VmcgHooksConn *c, uint32_t need, uint32_t want, VmcgGroup **ret_over)
{
	if (vmcg_vm_try_charge(c->vm->vm, want, ret_over) == 0)
		return want;
	if (need && need < want && vmcg_vm_try_charge(c->vm->vm, need, ret_over) == 0)
		return need;
	return 0;
}

static gboolean grant(VmcgHooksConn *c, uint32_t i, uint64_t seq, uint32_t pages)
{
	VmcgHooksGrant g = { 0 };

	if (pages) {
		credit_add(c, i, pages);
		c->charged += pages;
		c->grants += pages;
		sync_stock(c);
	}
	hdr_init(c, &g.hdr, VMCG_HOOKS_GRANT, sizeof(g));
	g.hdr.seq = seq;
	g.slot = i;
	g.pages = pages;
	return send_packet(c, &g, sizeof(g), -1);
}

/*
 * Every hooked VM under @g gives back its slots' credit, as try_charge()
 * drains every CPU's stock before it reclaims: credit cached for vCPUs
 * that do not fault now must not hold up the one that waits.
 */
uint64_t vmcg_hooks_drain_group(VmcgHooks *h, VmcgGroup *g)
{
	uint64_t total = 0;

	if (!h)
		return 0;
	for (GList *l = h->conns.head; l; l = l->next) {
		VmcgHooksConn *c = l->data;

		if (!c->vm || c->dead)
			continue;
		for (VmcgGroup *a = vmcg_vm_group(c->vm->vm); a; a = vmcg_group_parent(a)) {
			if (a == g) {
				total += drain(c, 0);
				break;
			}
		}
	}
	return total;
}

/* Retry @c's held refills; FALSE if the connection must go. */
static gboolean retry_held(VmcgHooksConn *c, int64_t now)
{
	for (uint32_t i = 0; c->nr_held && i < c->nr_slots; i++) {
		Held *hd = &c->held[i];
		uint32_t pages;

		if (!hd->held)
			continue;
		if (!charge_ok(c, hd->want, "a held REFILL"))
			return FALSE;
		pages = try_charge(c, hd->need, hd->want, NULL);
		if (!pages)
			continue;
		end_hold(c, i, now);
		if (!grant(c, i, hd->seq, pages))
			return FALSE;
	}
	return TRUE;
}

static gboolean on_refill(VmcgHooksConn *c, const VmcgHooksRefill *r)
{
	VmcgHooks *h = c->h;
	int64_t now = (int64_t)vmcg_daemon_now_usec(h->d);
	VmcgGroup *over = NULL;
	Held *hd = &c->held[r->slot];
	char err[160];
	uint32_t pages;

	if (vmcg_hooks_refill_check(r, c->batch, c->chunk, err, sizeof(err)) < 0) {
		g_warning("hooks: VM %s (pid %d): %s: dropping the connection", conn_name(c),
			  (int)c->pid, err);
		return FALSE;
	}
	if (!charge_ok(c, r->want, "a REFILL"))
		return FALSE;
	if (hd->held) {
		g_warning("hooks: VM %s: a second REFILL for slot %u while one is held",
			  conn_name(c), r->slot);
		return FALSE;
	}
	pages = try_charge(c, r->need, r->want, &over);
	if (!pages && r->need && over && vmcg_hooks_drain_group(h, over))
		pages = try_charge(c, r->need, r->want, NULL);
	if (pages || !r->need)
		return grant(c, r->slot, r->hdr.seq, pages);
	/* No room: the vCPU waits while the control loop reclaims for it. */
	hd->held = TRUE;
	hd->need = r->need;
	hd->want = r->want;
	hd->seq = r->hdr.seq;
	hd->since = now;
	c->nr_held++;
	vmcg_daemon_kick(h->d);
	return TRUE;
}

static void retry_all(VmcgHooks *h);

static gboolean on_return(VmcgHooksConn *c, const VmcgHooksReturn *r)
{
	/* refill_stock(): the surplus over a batch goes back up the tree at once. */
	uint64_t taken = credit_take_above(c, r->slot, c->batch);

	uncharge(c, taken);
	if (taken)
		retry_all(c->h);
	return TRUE;
}

static gboolean handle(VmcgHooksConn *c, const void *buf, size_t len)
{
	char err[160];
	VmcgHooksMsg m;
	int r;

	r = vmcg_hooks_parse(buf, len, c->vm ? c->nr_slots : 0, &m, err, sizeof(err));
	if (r == -EPROTONOSUPPORT) {
		send_reject(c, EPROTONOSUPPORT, "%s", err);
		return FALSE;
	}
	if (r < 0) {
		if (c->vm)
			g_warning("hooks: %s (pid %d): %s: dropping the connection", conn_name(c),
				  (int)c->pid, err);
		else
			send_reject(c, EPROTO, "%s", err); /* logs it, rate-limited */
		return FALSE;
	}
	switch (m.type) {
	case VMCG_HOOKS_HELLO:
		return on_hello(c, &m);
	case VMCG_HOOKS_REFILL:
		return on_refill(c, &m.refill);
	case VMCG_HOOKS_RETURN:
		return on_return(c, &m.ret);
	}
	return FALSE;
}

static gboolean on_conn_io(gint fd, GIOCondition cond, gpointer userdata)
{
	VmcgHooksConn *c = userdata;
	unsigned char buf[VMCG_HOOKS_MSG_MAX + 1];

	(void)cond;
	for (int i = 0; i < BURST && !c->dead; i++) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return G_SOURCE_CONTINUE;
		if (n <= 0) {
			if (n < 0 && (c->vm || log_ok(c->h)))
				g_warning("hooks: %s: %s", conn_name(c), g_strerror(errno));
			break;
		}
		if (n > VMCG_HOOKS_MSG_MAX) { /* MSG_TRUNC: its real length */
			if (c->vm || log_ok(c->h))
				g_warning("hooks: %s (pid %d): a packet of %zd bytes: dropping the "
					  "connection",
					  conn_name(c), (int)c->pid, n);
			break;
		}
		if (!handle(c, buf, (size_t)n))
			break;
		if (i == BURST - 1)
			return G_SOURCE_CONTINUE; /* level-triggered: back soon */
	}
	c->watch = 0;
	conn_free(c);
	return G_SOURCE_REMOVE;
}

static gboolean on_hello_timeout(gpointer userdata)
{
	VmcgHooksConn *c = userdata;
	VmcgHooks *h = c->h;

	c->hello_timer = 0;
	h->dropped++;
	if (log_ok(h))
		g_message("hooks: pid %d (uid %u) said no HELLO within %u ms: closed "
			  "(%" G_GUINT64_FORMAT " connections closed before HELLO so far)",
			  (int)c->pid, (unsigned)c->uid, VMCG_HOOKS_HELLO_TIMEOUT_MSEC, h->dropped);
	conn_free(c);
	return G_SOURCE_REMOVE;
}

static gboolean on_accept(gint fd, GIOCondition cond, gpointer userdata);

static gboolean on_accept_retry(gpointer userdata)
{
	VmcgHooks *h = userdata;

	h->retry = 0;
	h->watch = g_unix_fd_add(h->fd, G_IO_IN, on_accept, h);
	return G_SOURCE_REMOVE;
}

/*
 * accept() failed for want of a descriptor (or memory): retrying at once
 * fails again (the connection stays queued, the listener stays readable:
 * a busy loop). Stop watching the listener and look again later, sooner
 * if it was a blip; the queued connections wait in the backlog, and the
 * ones waiting for HELLO time out meanwhile, which gives descriptors back.
 */
static void accept_back_off(VmcgHooks *h, int err)
{
	uint32_t ms;

	if (!h->accept_failures++) {
		h->accept_failed_usec = vmcg_daemon_now_usec(h->d);
		if (log_ok(h))
			g_warning("hooks: accept: %s (%u connections wait for their HELLO): not "
				  "accepting for now, retrying for up to %u ms at a time",
				  g_strerror(err), h->nr_pending, VMCG_HOOKS_BACKOFF_MAX_MSEC);
	}
	ms = vmcg_hooks_backoff_msec(h->accept_failures);
	h->watch = 0;
	h->retry = g_timeout_add(ms, on_accept_retry, h);
}

/* How many connections of @uid wait for their HELLO. */
static uint32_t pending_of(VmcgHooks *h, uid_t uid)
{
	uint32_t n = 0;

	for (GList *l = h->conns.head; l; l = l->next) {
		VmcgHooksConn *c = l->data;

		n += c->pending && c->uid == uid;
	}
	return n;
}

static gboolean on_accept(gint fd, GIOCondition cond, gpointer userdata)
{
	VmcgHooks *h = userdata;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	VmcgHooksConn *c;
	VmcgHooksAdmitConn verdict;
	int cfd;

	(void)cond;
	cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (cfd < 0) {
		int err = errno;

		/* ECONNABORTED: the peer gave up while queued; the next one is fine. */
		if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED)
			return G_SOURCE_CONTINUE;
		accept_back_off(h, err);
		return G_SOURCE_REMOVE;
	}
	if (h->accept_failures) {
		if (log_ok(h))
			g_message("hooks: accepting again, after %u failed attempts over "
				  "%" G_GUINT64_FORMAT " ms",
				  h->accept_failures,
				  (vmcg_daemon_now_usec(h->d) - h->accept_failed_usec) / 1000);
		h->accept_failures = 0;
	}
	if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.pid <= 0) {
		if (log_ok(h))
			g_warning("hooks: no peer credentials: %s", g_strerror(errno));
		close(cfd);
		return G_SOURCE_CONTINUE;
	}
	verdict = vmcg_hooks_admit_conn(h->nr_pending, pending_of(h, cred.uid));
	if (verdict != VMCG_HOOKS_CONN_ACCEPT) {
		h->dropped++;
		if (log_ok(h))
			g_message("hooks: pid %d (uid %u) refused: %u connections%s wait for their "
				  "HELLO already",
				  (int)cred.pid, (unsigned)cred.uid,
				  verdict == VMCG_HOOKS_CONN_OVER_UID
					  ? VMCG_HOOKS_PENDING_PER_UID_MAX
					  : VMCG_HOOKS_PENDING_MAX,
				  verdict == VMCG_HOOKS_CONN_OVER_UID ? " of its uid" : "");
		close(cfd);
		return G_SOURCE_CONTINUE;
	}
	c = g_new0(VmcgHooksConn, 1);
	c->h = h;
	c->fd = cfd;
	c->pid = cred.pid;
	c->uid = cred.uid;
	c->pending = TRUE;
	h->nr_pending++;
	c->link.data = c;
	g_queue_push_tail_link(&h->conns, &c->link);
	c->watch = g_unix_fd_add(cfd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_conn_io, c);
	c->hello_timer = g_timeout_add(VMCG_HOOKS_HELLO_TIMEOUT_MSEC, on_hello_timeout, c);
	return G_SOURCE_CONTINUE;
}

/* ---- the server ---- */

VmcgHooks *vmcg_hooks_new(VmcgDaemon *d, const char *path, GError **error)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	VmcgHooks *h;
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "hooks socket path %s is too long", path);
		return NULL;
	}
	if (!vmcg_unix_socket_prepare(path, G_SOCKET_TYPE_SEQPACKET, error))
		return NULL;
	g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    /* QEMU runs as root here; a distro QEMU user gets the socket's group. */
	    chmod(path, 0660) < 0 || listen(fd, 64) < 0) {
		int err = errno;

		if (fd >= 0)
			close(fd);
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err), "hooks socket %s: %s",
			    path, g_strerror(err));
		return NULL;
	}
	h = g_new0(VmcgHooks, 1);
	h->d = d;
	h->path = g_strdup(path);
	h->fd = fd;
	if (stat(path, &st) == 0) {
		h->dev = st.st_dev;
		h->ino = st.st_ino;
	}
	h->watch = g_unix_fd_add(fd, G_IO_IN, on_accept, h);
	return h;
}

void vmcg_hooks_free(VmcgHooks *h)
{
	if (!h)
		return;
	while (h->conns.head)
		conn_free(h->conns.head->data);
	if (h->watch)
		g_source_remove(h->watch);
	if (h->retry)
		g_source_remove(h->retry);
	close(h->fd);
	if (h->ino)
		vmcg_unix_socket_unlink_own(h->path, h->dev, h->ino);
	g_free(h->path);
	g_free(h);
}

/* ---- per tick ---- */

/* Retry every held refill now: charge went away. */
static void retry_all(VmcgHooks *h)
{
	int64_t now;
	GList *l, *next;

	if (!h)
		return;
	now = (int64_t)vmcg_daemon_now_usec(h->d);
	for (l = h->conns.head; l; l = next) {
		VmcgHooksConn *c = l->data;

		next = l->next;
		if (c->vm && !c->dead && c->nr_held && !retry_held(c, now))
			conn_fail(c);
	}
}

void vmcg_hooks_tick(VmcgHooks *h, uint64_t since, uint64_t now)
{
	GList *l, *next;

	if (!h)
		return;
	for (l = h->conns.head; l; l = next) {
		VmcgHooksConn *c = l->data;
		uint64_t stall = c->tick_stall_usec;

		next = l->next;
		if (!c->vm || c->dead)
			continue;
		if (!cover_debt(c)) {
			conn_fail(c);
			continue;
		}
		/* A RETURN hint can be missed or never sent: drain above 2 x batch here. */
		(void)drain(c, 2 * (uint64_t)c->batch);
		if (c->nr_held && !retry_held(c, (int64_t)now)) {
			conn_fail(c);
			continue;
		}
		for (uint32_t i = 0; i < c->nr_slots; i++) {
			if (c->held[i].held)
				stall = MAX(stall, now - MAX((uint64_t)c->held[i].since, since));
		}
		c->vm->tick_stall_usec = MIN(stall, now - since);
		c->tick_stall_usec = 0;
		sync_stock(c);
	}
	h->last_tick_usec = now;
}

/* ---- reading ---- */

uint64_t vmcg_hooks_conn_slack(VmcgHooksConn *c)
{
	/* Up to 2 x batch kept per slot between drains, plus a grant in flight
	 * each (a refill of a batch, or of a chunk if a chunk is larger). */
	return (uint64_t)c->nr_slots * (2 * (uint64_t)c->batch + MAX(c->batch, c->chunk));
}

pid_t vmcg_hooks_conn_pid(VmcgHooksConn *c)
{
	return c->pid;
}

uint64_t vmcg_hooks_conn_charged(VmcgHooksConn *c)
{
	return c->charged;
}

uint64_t vmcg_hooks_conn_held(VmcgHooksConn *c, int64_t *ret_since)
{
	uint64_t need = 0;
	int64_t since = 0;

	for (uint32_t i = 0; c->nr_held && i < c->nr_slots; i++) {
		if (!c->held[i].held)
			continue;
		need += c->held[i].need;
		if (!since || c->held[i].since < since)
			since = c->held[i].since;
	}
	if (ret_since)
		*ret_since = since;
	return need;
}

void vmcg_hooks_conn_info(VmcgHooksConn *c, VmcgHooksInfo *ret)
{
	const VmcgHooksRegionHeader *hdr = c->region;

	memset(ret, 0, sizeof(*ret));
	ret->nr_slots = c->nr_slots;
	ret->batch = c->chunk;
	ret->refill_batch = c->batch;
	ret->charged = c->charged;
	ret->credit = credit_sum(c);
	ret->populated = __atomic_load_n(&hdr->populated, __ATOMIC_RELAXED);
	ret->faults = __atomic_load_n(&hdr->faults, __ATOMIC_RELAXED);
	ret->unbacked = __atomic_load_n(&hdr->unbacked, __ATOMIC_RELAXED);
	ret->held = c->nr_held;
	ret->stall_usec = c->stall_usec;
	ret->grants = c->grants;
	ret->drains = c->drains;
	ret->slack = vmcg_hooks_conn_slack(c);
	ret->pid = c->pid;
}
