// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * What a durable group creation costs as the tree grows (docs/performance.md,
 * "State file and group creation"). At each size N (1k, 10k, 100k groups,
 * all siblings under the root: the worst case for a linear child list),
 * side by side in one run:
 *
 *   tree     vmcg_daemon_group_put() without saving: lookup, create, the
 *            daemon's bookkeeping (the in-memory part of a PUT)
 *   journal  the same, each one saved as vmcgd saves it: one record
 *            appended and fdatasync()ed, and the compactions that come due
 *            (a new snapshot when the journal outgrows the old one),
 *            amortized over the run
 *   rewrite  the same, each one saved by writing the whole state again
 *            (tmp file, fsync, rename; what vmcgd did before the journal)
 *
 * and as ratios: rewrite/journal at N, and each column at N over itself
 * at 1k (flat = O(1) per operation). Each column starts from N groups
 * (what one column created is removed, untimed, before the next). One save per PUT is the worst case
 * of group commit (one client, one PUT at a time); concurrent clients
 * share a save.
 *
 *   bench-state [--quick] [--dir DIR]   (DIR: where the state goes; default
 *                                         a temporary directory under $TMPDIR)
 */
#include <glib.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench-util.h"
#include "daemon-private.h"
#include "state.h"

static double now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void fill(VmcgDaemon *d, size_t n)
{
	VmcgGroupSettings s = { 0 };

	d->loading = TRUE; /* no saves */
	for (size_t i = 0; i < n; i++) {
		char path[32];

		snprintf(path, sizeof(path), "/g%zu", i);
		g_assert_true(vmcg_daemon_group_put(d, path, &s, NULL, NULL));
	}
	d->loading = FALSE;
}

/* Remove what per_put() created, unsaved and untimed: each column starts at N. */
static void unfill(VmcgDaemon *d, const char *prefix, size_t k)
{
	d->loading = TRUE;
	for (size_t i = 0; i < k; i++) {
		char path[48];

		snprintf(path, sizeof(path), "/%s%zu", prefix, i);
		g_assert_true(vmcg_daemon_group_delete(d, path, NULL));
	}
	d->loading = FALSE;
}

/* usec per group put of @k new groups named PREFIX<i>; @save: how each is saved. */
typedef enum {
	SAVE_NONE,
	SAVE_JOURNAL,
	SAVE_REWRITE
} SaveMode;

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/*
 * The median, not the mean: the disk is shared with whatever else runs,
 * and one slow fsync must not make a row. (Compactions are in the mean;
 * the journal column's mean is printed too.)
 */
static double per_put(VmcgDaemon *d, const char *prefix, size_t k, SaveMode mode,
		      const char *rewrite_path, double *ret_mean)
{
	VmcgGroupSettings s = { .has_max = true, .max = 1ull << 30 };
	g_autofree double *t = g_new(double, k);
	double sum = 0;

	for (size_t i = 0; i < k; i++) {
		char path[48];
		double t0 = now_usec();

		snprintf(path, sizeof(path), "/%s%zu", prefix, i);
		d->loading = mode != SAVE_JOURNAL;
		g_assert_true(vmcg_daemon_group_put(d, path, &s, NULL, NULL));
		d->loading = FALSE;
		if (mode == SAVE_REWRITE) {
			g_autoptr(GError) error = NULL;

			if (!vmcg_state_save(d, rewrite_path, &error))
				g_error("%s", error->message);
		}
		t[i] = now_usec() - t0;
		sum += t[i];
	}
	qsort(t, k, sizeof(*t), cmp_double);
	if (ret_mean)
		*ret_mean = sum / (double)k;
	return t[k / 2];
}

int main(int argc, char **argv)
{
	static const size_t sizes[] = { 1000, 10000, 100000 };
	gboolean quick = FALSE;
	const char *dir_arg = NULL;
	g_autofree char *dir = NULL;
	double base[3] = { 0 };
	char cpu[128];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0)
			quick = TRUE;
		else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			dir_arg = argv[++i];
		else {
			fprintf(stderr, "usage: %s [--quick] [--dir DIR]\n", argv[0]);
			return 2;
		}
	}
	g_log_set_writer_func(g_log_writer_default, NULL, NULL);
	g_setenv("G_MESSAGES_DEBUG", "", TRUE);
	dir = dir_arg ? g_strdup(dir_arg) : g_dir_make_tmp("vmcg-bench-state-XXXXXX", NULL);
	g_assert_nonnull(dir);
	cpu_model(cpu, sizeof(cpu));
	printf("# bench-state: %s, state in %s%s\n", cpu, dir, quick ? " (quick)" : "");
	printf("# usec per group creation, median of k at that size\n");
	printf("%8s %10s %10s %10s | %12s %11s %11s %11s\n", "groups", "tree", "journal", "rewrite",
	       "rewrite/jrnl", "tree/1k", "journal/1k", "rewrite/1k");

	for (size_t si = 0; si < G_N_ELEMENTS(sizes) - (quick ? 1 : 0); si++) {
		size_t n = sizes[si];
		g_autofree char *path = g_strdup_printf("%s/state-%zu.json", dir, n);
		g_autofree char *journal = g_strconcat(path, ".journal", NULL);
		g_autofree char *rewrite = g_strdup_printf("%s/rewrite-%zu.json", dir, n);
		VmcgDaemon *d = vmcg_daemon_new(NULL, path);
		size_t k_tree = quick ? 2000 : 20000;
		size_t k_journal = quick ? 300 : 2000;
		/* The rewrite is O(N) a save: fewer at 100k, or this takes minutes. */
		size_t k_rewrite = CLAMP((quick ? 20000 : 200000) / n, (size_t)5, n / 10);
		double tree, jrnl, jmean, rewr;

		fill(d, n);
		vmcg_daemon_save(d); /* the snapshot of N groups, the journal empty */
		tree = per_put(d, "t", k_tree, SAVE_NONE, NULL, NULL);
		unfill(d, "t", k_tree);
		jrnl = per_put(d, "j", k_journal, SAVE_JOURNAL, NULL, &jmean);
		unfill(d, "j", k_journal);
		rewr = per_put(d, "r", k_rewrite, SAVE_REWRITE, rewrite, NULL);
		if (si == 0) {
			base[0] = tree;
			base[1] = jrnl;
			base[2] = rewr;
		}
		printf("%8zu %10.2f %10.1f %10.1f | %12.1f %11.2f %11.2f %11.2f   (k %zu/%zu/%zu; "
		       "journal mean %.1f, %" G_GUINT64_FORMAT " compactions)\n",
		       n, tree, jrnl, rewr, rewr / jrnl, tree / base[0], jrnl / base[1],
		       rewr / base[2], k_tree, k_journal, k_rewrite, jmean, d->compactions);
		fflush(stdout);
		vmcg_daemon_free(d);
		g_unlink(path);
		g_unlink(journal);
		g_unlink(rewrite);
	}
	if (!dir_arg)
		g_rmdir(dir);
	return 0;
}
