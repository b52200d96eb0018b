// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Sampling charge: finding guest RAM in smaps, on a file captured from a
 * real QEMU 7.2 (pc machine, -m 256, TCG, SeaBIOS running) and on
 * malformed or edited copies of it.
 */
#include <gio/gio.h>

#include "sampler.h"

static char *load(gsize *len)
{
	g_autofree char *path =
		g_test_build_filename(G_TEST_DIST, "data", "smaps-qemu72-pc-256m.txt", NULL);
	char *text;

	g_assert_true(g_file_get_contents(path, &text, len, NULL));
	return text;
}

static void test_real_qemu(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *text;
	VmcgSample s;
	gsize len;

	text = load(&len);
	g_assert_true(vmcg_sample_parse_smaps(text, len, 256 << 20, &s, &error));
	g_assert_no_error(error);
	/* The 256 MiB "dc" VMA had 6144 kB resident; the whole process 43788 kB. */
	g_assert_cmpuint(s.guest_resident, ==, 6144 * 1024);
	g_assert_cmpuint(s.guest_size, ==, 256 << 20);
	g_assert_cmpuint(s.total_rss, ==, UINT64_C(43788) * 1024);
}

static void test_wrong_size(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *text;
	VmcgSample s;
	gsize len;

	text = load(&len);
	/* 512 MiB is not there; the 1 GiB TCG code buffer (no "dc") must not match. */
	g_assert_false(vmcg_sample_parse_smaps(text, len, 512 << 20, &s, &error));
	g_assert_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
	g_clear_error(&error);
	g_assert_false(vmcg_sample_parse_smaps(text, len, UINT64_C(1023) << 20, &s, &error));
	g_assert_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
}

/* Split VMAs (e.g. after an mprotect) still add up; a neighbour does not spoil it. */
static void test_split_and_adjacent(void)
{
	static const char text[] =
		"7f0000000000-7f0008000000 rw-p 00000000 00:00 0 \n"
		"Rss:                1024 kB\n"
		"VmFlags: rd wr mr mw me dc ac hg mg\n"
		"7f0008000000-7f0010000000 rw-p 00000000 00:00 0 \n"
		"Rss:                 512 kB\n"
		"VmFlags: rd wr mr mw me dc ac hg mg\n"
		"7f0010000000-7f0010040000 rw-p 00000000 00:00 0 \n"
		"Rss:                 256 kB\n"
		"VmFlags: rd wr mr mw me dc ac\n"
		"7f0020000000-7f0020001000 rw-p 00000000 08:01 1234 /usr/lib/x.so\n"
		"Rss:                   4 kB\n"
		"VmFlags: rd wr mr mw me dc\n";
	g_autoptr(GError) error = NULL;
	VmcgSample s;

	g_assert_true(vmcg_sample_parse_smaps(text, sizeof(text) - 1, 256 << 20, &s, &error));
	g_assert_cmpuint(s.guest_resident, ==, 1536 * 1024);
	g_assert_cmpuint(s.total_rss, ==, (1024 + 512 + 256 + 4) * 1024);
	/* A small block right after is found on its own too. */
	g_assert_true(vmcg_sample_parse_smaps(text, sizeof(text) - 1, 256 << 10, &s, &error));
	g_assert_cmpuint(s.guest_resident, ==, 256 * 1024);
	/* File-backed "dc" mappings are never guest RAM. */
	g_assert_false(vmcg_sample_parse_smaps(text, sizeof(text) - 1, 4096, &s, &error));
}

static void test_memfd(void)
{
	static const char text[] = "7f0000000000-7f0010000000 rw-s 00000000 00:01 77 "
				   "/memfd:pc.ram (deleted)\n"
				   "Rss:                2048 kB\n"
				   "VmFlags: rd wr sh mr mw me ms dc sd\n";
	VmcgSample s;

	g_assert_true(vmcg_sample_parse_smaps(text, sizeof(text) - 1, 256 << 20, &s, NULL));
	g_assert_cmpuint(s.guest_resident, ==, 2048 * 1024);
}

static void test_malformed(void)
{
	static const char *const bad[] = {
		"",
		"Rss: 12 kB\n",
		"hello world\n",
		"7f0000000000-7f0010000000 rw-p 00000000 00:00 0\nRss: lots kB\n",
		"zzzz-7f0010000000 rw-p 00000000 00:00 0\n",
		"7f0010000000-7f0000000000 rw-p 00000000 00:00 0\nRss: 1 kB\n",
	};

	for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(GError) error = NULL;
		VmcgSample s;

		g_assert_false(
			vmcg_sample_parse_smaps(bad[i], strlen(bad[i]), 256 << 20, &s, &error));
		g_assert_nonnull(error);
	}
}

static void test_read_self(void)
{
	g_autoptr(GError) error = NULL;
	VmcgSample s;

	/* Our own process has no guest RAM: a clean NOT_FOUND, not a crash. */
	g_assert_false(vmcg_sample_read(getpid(), 256 << 20, &s, &error));
	g_assert_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
	g_clear_error(&error);
	g_assert_false(vmcg_sample_read(-5, 256 << 20, &s, &error));
	g_assert_nonnull(error);
}

static void test_status(void)
{
	static const char good[] = "Name:\tqemu-system-x86\nVmRSS:\t  264316 kB\n"
				   "RssAnon:\t  150000 kB\nRssFile:\t  60000 kB\n";
	static const char *const bad[] = { "", "VmRSS: 1 kB\n", "RssAnon: 1 kB\n",
					   "VmRSS: x kB\nRssAnon: 1 kB\n",
					   "VmRSSx: 1 kB\nRssAnon: 1 kB\n" };
	g_autoptr(GError) error = NULL;
	VmcgStatusSample st;

	g_assert_true(vmcg_status_parse(good, sizeof(good) - 1, &st, &error));
	g_assert_cmpuint(st.rss, ==, UINT64_C(264316) << 10);
	g_assert_cmpuint(st.rss_anon, ==, UINT64_C(150000) << 10);
	for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(GError) e = NULL;

		g_assert_false(vmcg_status_parse(bad[i], strlen(bad[i]), &st, &e));
		g_assert_error(e, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
	}
	/* Our own status has both lines. */
	g_assert_true(vmcg_status_read(getpid(), &st, &error));
	g_assert_cmpuint(st.rss, >, 0);
}

/* A cheap read of ourselves; a drifted RssAnon asks for smaps, which has no guest RAM here. */
static void test_req_read(void)
{
	VmcgSampleReq r = { .pid = getpid(), .ram_size = 256 << 20, .drift_bytes = 256 << 20 };

	r.cal_anon = 0;
	g_assert_true(vmcg_sample_req_read(&r));
	g_assert_false(r.read_smaps);
	g_assert_cmpuint(r.st.rss, >, 0);

	r.cal_anon = UINT64_C(1) << 40;
	g_assert_false(vmcg_sample_req_read(&r));
	g_assert_error(r.error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
	g_clear_error(&r.error);
}

typedef struct Done {
	unsigned n, ok;
	GThread *thread;
} Done;

static void on_done(VmcgSampleReq *r, gpointer userdata)
{
	Done *d = userdata;

	d->n++;
	d->ok += r->ok;
	d->thread = g_thread_self();
	g_clear_error(&r->error);
}

/*
 * The sampler thread: results come back on the main context's thread;
 * a cancelled request is not read but still comes back; free delivers
 * what the loop did not.
 */
static void test_sampler_thread(void)
{
	VmcgSampler *s = vmcg_sampler_new(2);
	VmcgSampleReq r[8];
	Done d = { 0 };

	for (gsize i = 0; i < G_N_ELEMENTS(r); i++) {
		r[i] = (VmcgSampleReq){ .pid = getpid(),
					.ram_size = 256 << 20,
					.drift_bytes = UINT64_MAX / 2 };
		if (i == 3)
			r[i].cancelled = 1;
		vmcg_sampler_submit(s, &r[i], on_done, &d);
	}
	while (d.n < G_N_ELEMENTS(r))
		g_main_context_iteration(NULL, TRUE);
	g_assert_cmpuint(d.ok, ==, G_N_ELEMENTS(r) - 1);
	g_assert_false(r[3].ok);
	g_assert_true(d.thread == g_thread_self());
	g_assert_cmpuint(vmcg_sampler_pending(s), ==, 0);

	/* Submitted, never iterated: vmcg_sampler_free() hands them back. */
	d = (Done){ 0 };
	for (gsize i = 0; i < 4; i++)
		vmcg_sampler_submit(s, &r[i], on_done, &d);
	vmcg_sampler_free(s);
	g_assert_cmpuint(d.n, ==, 4);
}

/*
 * A batch (one lock, one wakeup, as the tick submits): every request
 * comes back exactly once, on the main context's thread; so does a batch
 * the sampler is freed with, unread ones included.
 */
static void test_sampler_batch(void)
{
	enum {
		N = 64
	};
	VmcgSampler *s = vmcg_sampler_new(2);
	VmcgSampleReq r[N], *p[N];
	Done d = { 0 };

	for (gsize i = 0; i < N; i++) {
		r[i] = (VmcgSampleReq){ .pid = getpid(),
					.ram_size = 256 << 20,
					.drift_bytes = UINT64_MAX / 2,
					.cancelled = i % 5 == 0,
					.done = on_done,
					.userdata = &d };
		p[i] = &r[i];
	}
	vmcg_sampler_submit_batch(s, p, N);
	vmcg_sampler_submit_batch(s, p, 0);
	while (d.n < N)
		g_main_context_iteration(NULL, TRUE);
	g_assert_cmpuint(d.n, ==, N);
	g_assert_cmpuint(d.ok, ==, N - (N + 4) / 5);
	g_assert_true(d.thread == g_thread_self());
	g_assert_cmpuint(vmcg_sampler_pending(s), ==, 0);
	/* Nothing more comes. */
	while (g_main_context_iteration(NULL, FALSE))
		;
	g_assert_cmpuint(d.n, ==, N);

	d = (Done){ 0 };
	vmcg_sampler_submit_batch(s, p, N);
	vmcg_sampler_free(s);
	g_assert_cmpuint(d.n, ==, N);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/sampler/real-qemu", test_real_qemu);
	g_test_add_func("/sampler/wrong-size", test_wrong_size);
	g_test_add_func("/sampler/split-and-adjacent", test_split_and_adjacent);
	g_test_add_func("/sampler/memfd", test_memfd);
	g_test_add_func("/sampler/malformed", test_malformed);
	g_test_add_func("/sampler/read-self", test_read_self);
	g_test_add_func("/sampler/status", test_status);
	g_test_add_func("/sampler/req-read", test_req_read);
	g_test_add_func("/sampler/thread", test_sampler_thread);
	g_test_add_func("/sampler/batch", test_sampler_batch);
	return g_test_run();
}
