// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The backstop host cgroup of each QEMU; see backstop.h.
 */
#include <errno.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <string.h>

#include "backstop.h"
#include "log.h"

/*
 * A cgroup that still has a task cannot be removed (rmdir: EBUSY), and a
 * task leaves it only once it is reaped, not when it exits: the QEMU that
 * vmcgd saw die is a zombie until its parent (libvirt, a shell, a test
 * harness) calls wait(), which may be seconds later or never. So a busy
 * directory is kept on a list and rmdir is retried on a timer, starting
 * at RETRY_FIRST_MS and doubling up to RETRY_MAX_MS, until it succeeds or
 * the directory is gone. 100 ms: a parent that reaps promptly (libvirt's
 * event loop) has done so by then; 5 s: an empty directory left a few
 * seconds longer costs nothing, and a zombie that is never reaped should
 * not cost a wakeup per tick for the daemon's lifetime.
 */
#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS 5000
/* Busy this long, it is worth a warning: a parent that never reaps is a leak of its own. */
#define BUSY_WARN_USEC (60 * G_USEC_PER_SEC)

typedef struct {
	char *dir;
	guint tries;	   /* failed rmdir attempts so far */
	gint64 since_usec; /* monotonic time of the first failure */
	gboolean warned;   /* BUSY_WARN_USEC passed and was logged */
} Removal;

struct VmcgBackstop {
	char *root; /* the hierarchy's root directory */
	char *dir;  /* root/vmcg */
	gboolean v2;
	GPtrArray *pending; /* of Removal: busy directories still to remove */
	guint retry_id;	    /* the retry timeout, 0 when none is armed */
	guint retry_ms;	    /* its current interval */
};

static void removal_free(gpointer p)
{
	Removal *r = p;

	g_free(r->dir);
	g_free(r);
}

/* 0: removed or already gone; else the errno rmdir reported. */
static int remove_dir(const char *dir)
{
	if (g_rmdir(dir) < 0 && errno != ENOENT)
		return errno;
	return 0;
}

static gboolean on_retry(gpointer userdata);

static void arm_retry(VmcgBackstop *b, guint interval_ms)
{
	if (b->retry_id)
		g_source_remove(b->retry_id);
	b->retry_ms = interval_ms;
	b->retry_id = g_timeout_add(interval_ms, on_retry, b);
}

/* Retries every pending removal; rearms itself with the doubled interval while any is left. */
static gboolean on_retry(gpointer userdata)
{
	VmcgBackstop *b = userdata;

	for (guint i = b->pending->len; i-- > 0;) {
		Removal *r = g_ptr_array_index(b->pending, i);
		int e = remove_dir(r->dir);

		r->tries++;
		if (e == 0) {
			g_info("backstop: removed %s after %u retries (%.1f s busy)", r->dir,
			       r->tries,
			       (double)(g_get_monotonic_time() - r->since_usec) / G_USEC_PER_SEC);
			g_ptr_array_remove_index_fast(b->pending, i);
		} else if (e != EBUSY) {
			/* Not a task still inside: retrying will not help. */
			g_warning("backstop: cannot remove %s: %s", r->dir, g_strerror(e));
			g_ptr_array_remove_index_fast(b->pending, i);
		} else if (!r->warned && g_get_monotonic_time() - r->since_usec >= BUSY_WARN_USEC) {
			g_warning("backstop: %s still busy after %d s: a task in it is not reaped "
				  "(still retrying)",
				  r->dir, (int)(BUSY_WARN_USEC / G_USEC_PER_SEC));
			r->warned = TRUE;
		}
	}
	b->retry_id = 0;
	if (b->pending->len)
		arm_retry(b, MIN(b->retry_ms * 2, RETRY_MAX_MS));
	return G_SOURCE_REMOVE;
}

/* Index of @dir in the pending list, or -1. */
static gint find_pending(const VmcgBackstop *b, const char *dir)
{
	for (guint i = 0; i < b->pending->len; i++) {
		const Removal *r = g_ptr_array_index(b->pending, i);

		if (strcmp(r->dir, dir) == 0)
			return (gint)i;
	}
	return -1;
}

static gboolean write_file(const char *dir, const char *file, const char *value, GError **error)
{
	g_autofree char *path = g_build_filename(dir, file, NULL);

	/* g_file_set_contents() would replace the file: cgroup files must be written in place. */
	FILE *f = fopen(path, "we");
	int r = 0;

	if (!f) {
		r = errno;
	} else {
		if (fputs(value, f) < 0)
			r = errno;
		if (fclose(f) != 0 && !r)
			r = errno;
	}
	if (r) {
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(r), "write %s to %s: %s",
			    value, path, g_strerror(r));
		return FALSE;
	}
	return TRUE;
}

static gboolean has_memory_controller(const char *dir)
{
	g_autofree char *path = g_build_filename(dir, "cgroup.controllers", NULL);
	g_autofree char *text = NULL;
	g_auto(GStrv) words = NULL;

	if (!g_file_get_contents(path, &text, NULL, NULL))
		return FALSE;
	words = g_strsplit_set(g_strstrip(text), " \n", -1);
	return g_strv_contains((const char *const *)words, "memory");
}

VmcgBackstop *vmcg_backstop_new(const char *sysfs, GError **error)
{
	g_autoptr(GError) local = NULL;
	VmcgBackstop *b = g_new0(VmcgBackstop, 1);
	g_autofree char *unified = g_build_filename(sysfs, "unified", NULL);
	g_autofree char *v1 = g_build_filename(sysfs, "memory", NULL);
	g_autofree char *v1_limit = g_build_filename(v1, "memory.limit_in_bytes", NULL);

	if (has_memory_controller(sysfs)) {
		b->root = g_strdup(sysfs);
		b->v2 = TRUE;
	} else if (has_memory_controller(unified)) {
		b->root = g_steal_pointer(&unified);
		b->v2 = TRUE;
	} else if (g_file_test(v1_limit, G_FILE_TEST_EXISTS)) {
		b->root = g_steal_pointer(&v1);
	} else {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
			    "no memory cgroup controller under %s (v2 or v1)", sysfs);
		vmcg_backstop_free(b);
		return NULL;
	}
	b->pending = g_ptr_array_new_with_free_func(removal_free);
	b->dir = g_build_filename(b->root, "vmcg", NULL);
	if (g_mkdir(b->dir, 0755) < 0 && errno != EEXIST) {
		int e = errno;

		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "mkdir %s: %s", b->dir,
			    g_strerror(e));
		vmcg_backstop_free(b);
		return NULL;
	}
	/* v2: children of vmcg/ need the controller enabled above them. */
	if (b->v2 && (!write_file(b->root, "cgroup.subtree_control", "+memory", &local) ||
		      !write_file(b->dir, "cgroup.subtree_control", "+memory", &local))) {
		g_propagate_prefixed_error(error, g_steal_pointer(&local),
					   "cannot enable the memory controller: ");
		vmcg_backstop_free(b);
		return NULL;
	}
	return b;
}

void vmcg_backstop_free(VmcgBackstop *b)
{
	if (!b)
		return;
	if (b->retry_id)
		g_source_remove(b->retry_id);
	if (b->pending) {
		/* A last try: a parent may have reaped since; what is still busy stays behind. */
		for (guint i = 0; i < b->pending->len; i++) {
			const Removal *r = g_ptr_array_index(b->pending, i);
			int e = remove_dir(r->dir);

			if (e)
				g_warning("backstop: %s left behind: %s", r->dir, g_strerror(e));
		}
		g_ptr_array_unref(b->pending);
	}
	g_free(b->root);
	g_free(b->dir);
	g_free(b);
}

const char *vmcg_backstop_version(const VmcgBackstop *b)
{
	return b->v2 ? "v2" : "v1";
}

/* A VM name as one directory name: [A-Za-z0-9_.-] kept, the rest as _XX. */
char *vmcg_backstop_path(const VmcgBackstop *b, const char *vm_name)
{
	g_autoptr(GString) s = g_string_new("vm-");

	for (const unsigned char *p = (const unsigned char *)vm_name; *p; p++) {
		if (g_ascii_isalnum(*p) || *p == '-' || *p == '.')
			g_string_append_c(s, (char)*p);
		else
			g_string_append_printf(s, "_%02x", *p);
	}
	return g_build_filename(b->dir, s->str, NULL);
}

gboolean vmcg_backstop_apply(VmcgBackstop *b, const char *vm_name, pid_t pid, uint64_t limit_bytes,
			     GError **error)
{
	g_autofree char *dir = vmcg_backstop_path(b, vm_name);
	g_autofree char *pidstr = g_strdup_printf("%d", (int)pid);
	g_autofree char *limit = NULL;
	gint i = find_pending(b, dir);

	/* The name is back (a VM re-adopted): the directory is in use again, not to be removed. */
	if (i >= 0)
		g_ptr_array_remove_index_fast(b->pending, (guint)i);
	if (g_mkdir(dir, 0755) < 0 && errno != EEXIST) {
		int e = errno;

		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "mkdir %s: %s", dir,
			    g_strerror(e));
		return FALSE;
	}
	if (limit_bytes == UINT64_MAX)
		limit = g_strdup(b->v2 ? "max" : "-1");
	else
		limit = g_strdup_printf("%" G_GUINT64_FORMAT, limit_bytes);
	return write_file(dir, "cgroup.procs", pidstr, error) &&
	       write_file(dir, b->v2 ? "memory.max" : "memory.limit_in_bytes", limit, error);
}

void vmcg_backstop_release(VmcgBackstop *b, const char *vm_name, pid_t pid)
{
	g_autofree char *dir = vmcg_backstop_path(b, vm_name);
	g_autoptr(GError) error = NULL;
	Removal *r;
	gint i;
	int e;

	if (!g_file_test(dir, G_FILE_TEST_IS_DIR))
		return;
	if (pid > 0) {
		g_autofree char *pidstr = g_strdup_printf("%d", (int)pid);

		if (!write_file(b->root, "cgroup.procs", pidstr, &error) &&
		    !g_error_matches(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
			vmcg_debug("backstop: %s", error->message);
	}
	e = remove_dir(dir);
	i = find_pending(b, dir);
	if (e == 0 && i >= 0)
		g_ptr_array_remove_index_fast(b->pending, (guint)i);
	if (e == 0 || i >= 0)
		return;
	if (e != EBUSY) {
		g_warning("backstop: cannot remove %s: %s", dir, g_strerror(e));
		return;
	}
	/* Busy: QEMU exited but is not reaped yet (a zombie is still a member). */
	g_info("backstop: %s busy (a task not reaped yet), retrying", dir);
	r = g_new0(Removal, 1);
	r->dir = g_steal_pointer(&dir);
	r->since_usec = g_get_monotonic_time();
	g_ptr_array_add(b->pending, r);
	/* From the first interval again: the newcomer's parent is likely a prompt one. */
	arm_retry(b, RETRY_FIRST_MS);
}
