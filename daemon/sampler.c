// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Sampling charge from /proc/PID/smaps; see sampler.h for why this is where
 * guest RAM is.
 */
#include <errno.h>
#include <gio/gio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "sampler.h"

typedef struct Vma {
	uint64_t start, end;
	uint64_t rss_kib;
	gboolean guest; /* "dc" and anonymous, memfd or hugetlbfs */
	gboolean anon_or_memfd;
} Vma;

static gboolean parse_header(const char *line, Vma *v)
{
	unsigned long long start, end;
	char perms[8];
	int n = 0;

	if (sscanf(line, "%llx-%llx %7s %*s %*s %*s %n", &start, &end, perms, &n) < 3 || n == 0)
		return FALSE;
	if (end < start)
		return FALSE;
	v->start = start;
	v->end = end;
	v->rss_kib = 0;
	v->guest = FALSE;
	/* Anonymous: no path after the inode; memfd-backed: "/memfd:name (deleted)". */
	v->anon_or_memfd =
		line[n] == '\0' || line[n] == '\n' || strncmp(line + n, "/memfd:", 7) == 0;
	return TRUE;
}

static gboolean has_flag(const char *flags, const char *flag)
{
	gsize l = strlen(flag);

	for (const char *p = flags; (p = strstr(p, flag)); p += l)
		if ((p == flags || p[-1] == ' ') && (p[l] == ' ' || p[l] == '\0' || p[l] == '\n'))
			return TRUE;
	return FALSE;
}

gboolean vmcg_sample_parse_smaps(const char *text, gsize len, uint64_t ram_size, VmcgSample *ret,
				 GError **error)
{
	g_autoptr(GArray) vmas = g_array_new(FALSE, FALSE, sizeof(Vma));
	g_autofree char *copy = g_strndup(text, len);
	uint64_t total_kib = 0;
	Vma *cur = NULL;
	char *save = NULL;

	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		Vma v;

		if (g_ascii_isxdigit(line[0]) && strchr(line, '-') && parse_header(line, &v)) {
			g_array_append_val(vmas, v);
			cur = &g_array_index(vmas, Vma, vmas->len - 1);
		} else if (!cur) {
			g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
				    "not an smaps file: no mapping before \"%.40s\"", line);
			return FALSE;
		} else if (g_str_has_prefix(line, "Rss:")) {
			unsigned long long kib;

			if (sscanf(line + 4, "%llu", &kib) != 1) {
				g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
					    "bad Rss line in smaps: \"%.40s\"", line);
				return FALSE;
			}
			cur->rss_kib = kib;
			total_kib += kib;
		} else if (g_str_has_prefix(line, "VmFlags:")) {
			cur->guest = has_flag(line + 8, "dc") &&
				     (cur->anon_or_memfd || has_flag(line + 8, "ht"));
		}
	}
	if (vmas->len == 0) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "empty smaps");
		return FALSE;
	}

	/*
	 * A contiguous run of guest VMAs of exactly @ram_size is the main
	 * RAMBlock. The run may start at any VMA boundary: a small RAMBlock
	 * can happen to be mapped right next to it. If several match (a NUMA
	 * guest with equal nodes), all of them count: each is a memdev of
	 * that size.
	 */
	uint64_t resident_kib = 0, found = 0;

	for (guint i = 0; i < vmas->len;) {
		uint64_t end = g_array_index(vmas, Vma, i).start, rss = 0;
		guint j = i;

		while (j < vmas->len && end - g_array_index(vmas, Vma, i).start < ram_size) {
			Vma *w = &g_array_index(vmas, Vma, j);

			if (!w->guest || w->start != end)
				break;
			end = w->end;
			rss += w->rss_kib;
			j++;
		}
		if (j > i && end - g_array_index(vmas, Vma, i).start == ram_size) {
			resident_kib += rss;
			found += ram_size;
			i = j;
		} else {
			i++;
		}
	}
	if (!found) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
			    "no guest RAM mapping of %" G_GUINT64_FORMAT
			    " bytes (anonymous or memfd, MADV_DONTFORK) in smaps",
			    ram_size);
		return FALSE;
	}
	ret->guest_resident = resident_kib * 1024;
	ret->guest_size = found;
	ret->total_rss = total_kib * 1024;
	return TRUE;
}

gboolean vmcg_sample_read(pid_t pid, uint64_t ram_size, VmcgSample *ret, GError **error)
{
	g_autofree char *path = g_strdup_printf("/proc/%d/smaps", (int)pid);
	g_autofree char *text = NULL;
	gsize len;

	if (!g_file_get_contents(path, &text, &len, error))
		return FALSE;
	return vmcg_sample_parse_smaps(text, len, ram_size, ret, error);
}

static gboolean status_field(const char *line, const char *key, uint64_t *ret)
{
	unsigned long long kib;
	gsize l = strlen(key);

	if (strncmp(line, key, l) != 0 || line[l] != ':')
		return FALSE;
	if (sscanf(line + l + 1, "%llu kB", &kib) != 1 || kib > (UINT64_MAX >> 10))
		return FALSE;
	*ret = (uint64_t)kib << 10;
	return TRUE;
}

gboolean vmcg_status_parse(const char *text, gsize len, VmcgStatusSample *ret, GError **error)
{
	g_autofree char *copy = g_strndup(text, len);
	gboolean anon = FALSE, rss = FALSE;
	char *save = NULL;

	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		anon |= status_field(line, "RssAnon", &ret->rss_anon);
		rss |= status_field(line, "VmRSS", &ret->rss);
	}
	if (!anon || !rss) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			    "no RssAnon and VmRSS lines in /proc/PID/status");
		return FALSE;
	}
	return TRUE;
}

gboolean vmcg_status_read(pid_t pid, VmcgStatusSample *ret, GError **error)
{
	g_autofree char *path = g_strdup_printf("/proc/%d/status", (int)pid);
	g_autofree char *text = NULL;
	gsize len;

	if (!g_file_get_contents(path, &text, &len, error))
		return FALSE;
	return vmcg_status_parse(text, len, ret, error);
}

gboolean vmcg_sample_req_read(VmcgSampleReq *r)
{
	gboolean full = r->full;

	r->ok = FALSE;
	r->read_smaps = FALSE;
	if (!full) {
		if (!vmcg_status_read(r->pid, &r->st, &r->error))
			return FALSE;
		full = r->st.rss_anon > r->cal_anon + r->drift_bytes ||
		       r->st.rss_anon + r->drift_bytes < r->cal_anon;
	}
	/* smaps first, then status: RssAnon is then no older than the smaps walk. */
	if (full) {
		if (!vmcg_sample_read(r->pid, r->ram_size, &r->smp, &r->error) ||
		    !vmcg_status_read(r->pid, &r->st, &r->error))
			return FALSE;
		r->read_smaps = TRUE;
	}
	r->ok = TRUE;
	return TRUE;
}

/* ---- the sampler thread(s) ---- */

/*
 * Results delivered per main-loop dispatch: applying one is about a
 * microsecond, so a burst of 1000 (every VM's read of a tick) stays well
 * under a millisecond; past that the rest waits for the next iteration,
 * so that a backlog never holds the API up.
 */
#define DELIVER_MAX 512

#define SAMPLER_MAX_THREADS 16

/*
 * The request queue is the sampler's own, not a GThreadPool's: a tick
 * queues every VM's read at once (vmcg_sampler_submit_batch()) under one
 * lock and one wakeup. Pushed one by one into a GThreadPool, 1000 reads
 * cost the tick 3 to 13 ms here (each push takes the pool's lock, which
 * the busy readers contend for, and may wake one), more than the rest of
 * the tick.
 */
struct VmcgSampler {
	GMutex lock;
	GCond cond;
	GQueue todo; /* VmcgSampleReq, under ->lock */
	gboolean stopping;
	GThread *threads[SAMPLER_MAX_THREADS];
	unsigned n_threads;
	GAsyncQueue *results; /* VmcgSampleReq, read */
	GSource *source;      /* in the creator's context: delivers ->results */
	gint pending;
	gint wake_armed; /* a result has set ->source ready since the last delivery */
};

static gboolean deliver(gpointer userdata)
{
	VmcgSampler *s = userdata;
	VmcgSampleReq *r;
	unsigned n = 0;

	/* Disarm first: a result pushed from now on re-arms it (no lost wakeup). */
	g_source_set_ready_time(s->source, -1);
	g_atomic_int_set(&s->wake_armed, 0);
	while (n < DELIVER_MAX && (r = g_async_queue_try_pop(s->results))) {
		r->done(r, r->userdata);
		n++;
	}
	if (n == DELIVER_MAX)
		g_source_set_ready_time(s->source, 0);
	return G_SOURCE_CONTINUE;
}

static gboolean source_dispatch(GSource *source, GSourceFunc callback, gpointer userdata)
{
	(void)source;
	return callback(userdata);
}

static GSourceFuncs source_funcs = {
	.dispatch = source_dispatch,
};

/*
 * The readers' nice: they are background work, and on a host with few
 * CPUs two busy readers would otherwise take the main loop's CPU (and
 * stall the API) as surely as reading on the main loop did. 10: the
 * main loop, at 0, then gets about 90% of a contended CPU (CFS weights
 * 1024 against 110, kernel/sched/core.c sched_prio_to_weight).
 */
#define READER_NICE 10

static gpointer worker(gpointer data)
{
	VmcgSampler *s = data;

	/* Linux: PRIO_PROCESS with a thread id is that thread alone. */
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), READER_NICE);
	for (;;) {
		VmcgSampleReq *r;

		g_mutex_lock(&s->lock);
		while (!(r = g_queue_pop_head(&s->todo)) && !s->stopping)
			g_cond_wait(&s->cond, &s->lock);
		g_mutex_unlock(&s->lock);
		/* Stopping, and nothing left: queued reads are done first. */
		if (!r)
			return NULL;
		if (!g_atomic_int_get(&r->cancelled))
			(void)vmcg_sample_req_read(r);
		g_async_queue_push(s->results, r);
		(void)g_atomic_int_dec_and_test(&s->pending);
		/*
		 * Thread-safe: wakes the context up (GLib >= 2.36). Once per
		 * delivery, not per result: it takes the context's lock, which
		 * the main loop holds while it polls and dispatches.
		 */
		if (g_atomic_int_compare_and_exchange(&s->wake_armed, 0, 1))
			g_source_set_ready_time(s->source, 0);
	}
}

VmcgSampler *vmcg_sampler_new(unsigned threads)
{
	VmcgSampler *s = g_new0(VmcgSampler, 1);
	g_autoptr(GMainContext) ctx = g_main_context_ref_thread_default();

	g_mutex_init(&s->lock);
	g_cond_init(&s->cond);
	g_queue_init(&s->todo);
	s->results = g_async_queue_new();
	s->source = g_source_new(&source_funcs, sizeof(GSource));
	g_source_set_name(s->source, "vmcg-sampler");
	g_source_set_callback(s->source, deliver, s, NULL);
	g_source_attach(s->source, ctx);
	/* Started now, not at the first read of a tick. */
	s->n_threads = MIN(MAX(threads, 1u), SAMPLER_MAX_THREADS);
	for (unsigned i = 0; i < s->n_threads; i++)
		s->threads[i] = g_thread_new("vmcg-sampler", worker, s);
	return s;
}

void vmcg_sampler_free(VmcgSampler *s)
{
	VmcgSampleReq *r;

	if (!s)
		return;
	/* Queued reads still run unless cancelled; then nothing touches ->source. */
	g_mutex_lock(&s->lock);
	s->stopping = TRUE;
	g_cond_broadcast(&s->cond);
	g_mutex_unlock(&s->lock);
	for (unsigned i = 0; i < s->n_threads; i++)
		g_thread_join(s->threads[i]);
	while ((r = g_async_queue_try_pop(s->results)))
		r->done(r, r->userdata);
	g_source_destroy(s->source);
	g_source_unref(s->source);
	g_async_queue_unref(s->results);
	g_mutex_clear(&s->lock);
	g_cond_clear(&s->cond);
	g_free(s);
}

void vmcg_sampler_submit_batch(VmcgSampler *s, VmcgSampleReq **reqs, size_t n)
{
	if (!n)
		return;
	g_mutex_lock(&s->lock);
	for (size_t i = 0; i < n; i++)
		g_queue_push_tail(&s->todo, reqs[i]);
	g_atomic_int_add(&s->pending, (gint)n);
	/* Every reader, if there is work for every reader. */
	if (n > 1)
		g_cond_broadcast(&s->cond);
	else
		g_cond_signal(&s->cond);
	g_mutex_unlock(&s->lock);
}

void vmcg_sampler_submit(VmcgSampler *s, VmcgSampleReq *req, VmcgSampleDone done, gpointer userdata)
{
	req->done = done;
	req->userdata = userdata;
	vmcg_sampler_submit_batch(s, &req, 1);
}

unsigned vmcg_sampler_pending(VmcgSampler *s)
{
	return (unsigned)g_atomic_int_get(&s->pending);
}
