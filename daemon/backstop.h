/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The backstop: a host memory cgroup around each QEMU process, limited to
 * its group's memory.max plus an allowance for VMM overhead, so that a
 * guest that ignores its balloon (or a QEMU that leaks) cannot take the
 * host down: past the limit the host kernel reclaims from that QEMU and,
 * at worst, OOM-kills it alone.
 *
 * cgroup v2 (the memory controller on the unified hierarchy, at
 * /sys/fs/cgroup or /sys/fs/cgroup/unified) and v1 (/sys/fs/cgroup/memory)
 * are both supported. Each VM gets <hierarchy>/vmcg/<escaped name>.
 */
#ifndef VMCG_BACKSTOP_H
#define VMCG_BACKSTOP_H

#include <glib.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct VmcgBackstop VmcgBackstop;

/**
 * vmcg_backstop_new() - find a memory cgroup hierarchy under @sysfs
 * ("/sys/fs/cgroup") and make its "vmcg" directory.
 * Errors: G_IO_ERROR_NOT_SUPPORTED when there is no writable memory
 * controller, or what mkdir/write report.
 */
VmcgBackstop *vmcg_backstop_new(const char *sysfs, GError **error);
void vmcg_backstop_free(VmcgBackstop *b);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VmcgBackstop, vmcg_backstop_free)

/** "v1" or "v2". */
const char *vmcg_backstop_version(const VmcgBackstop *b);

/** The cgroup directory of @vm_name (whether or not it exists yet). */
char *vmcg_backstop_path(const VmcgBackstop *b, const char *vm_name);

/**
 * vmcg_backstop_apply() - put @pid into @vm_name's cgroup and limit it to
 * @limit_bytes (UINT64_MAX: unlimited). Idempotent. Cancels a pending
 * removal of that cgroup (see vmcg_backstop_release()).
 */
gboolean vmcg_backstop_apply(VmcgBackstop *b, const char *vm_name, pid_t pid, uint64_t limit_bytes,
			     GError **error);

/**
 * vmcg_backstop_release() - move @pid (0: none) back to the hierarchy's
 * root and remove @vm_name's cgroup. Failures are logged, not fatal.
 * A cgroup that is still busy (EBUSY: QEMU exited but its parent has not
 * reaped it yet) is removed later: @b retries on a GLib timeout of the
 * default main context, with backoff, until rmdir succeeds or the
 * directory is gone, or until vmcg_backstop_apply() uses the name again.
 * vmcg_backstop_free() makes a last attempt and cancels the retries.
 */
void vmcg_backstop_release(VmcgBackstop *b, const char *vm_name, pid_t pid);

#endif
