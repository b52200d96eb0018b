/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The hooks server: QEMUs with the vmcg-hooks object (qemu-patches/)
 * connect here and charge guest RAM on first touch through per-vCPU credit
 * slots in a region shared with vmcgd (include/vmcg/hooks-abi.h,
 * docs/hooks-abi.md). A connection is matched by its VM name to a VM
 * registered in the config or through the API; while it is attached, the
 * hooks charge that VM's guest RAM and sampling only audits it.
 */
#ifndef VMCG_DAEMON_HOOKS_H
#define VMCG_DAEMON_HOOKS_H

#include <glib.h>
#include <sys/types.h>

#include "daemon.h"

typedef struct VmcgHooks VmcgHooks;
typedef struct VmcgHooksConn VmcgHooksConn;

/** Listen on @path (a stale socket file there is replaced; a live one is an error). */
VmcgHooks *vmcg_hooks_new(VmcgDaemon *d, const char *path, GError **error);
/** Close every connection (their QEMUs go on per their on-disconnect policy). NULL ok. */
void vmcg_hooks_free(VmcgHooks *h);

/* VmcgHooksInfo, what the API shows of a hooked VM, is in daemon.h (VmcgDvmInfo has one). */
void vmcg_hooks_conn_info(VmcgHooksConn *c, VmcgHooksInfo *ret);
/** Most pages the charge may exceed what is resident (see hooks-abi.h). */
uint64_t vmcg_hooks_conn_slack(VmcgHooksConn *c);
uint64_t vmcg_hooks_conn_charged(VmcgHooksConn *c);
pid_t vmcg_hooks_conn_pid(VmcgHooksConn *c);
/** Pages the held refills need, and since when the oldest waits (0: none). */
uint64_t vmcg_hooks_conn_held(VmcgHooksConn *c, int64_t *ret_since);
/** Detach (the VM is forgotten): its hook charge leaves the tree. */
void vmcg_hooks_conn_close(VmcgHooksConn *c);

/**
 * vmcg_hooks_tick() - once per control tick: drain slots holding more than
 * they should, retry held refills, and return per VM how long a vCPU
 * waited in (now - @since, now] (VmcgDvm.tick_stall_usec).
 */
void vmcg_hooks_tick(VmcgHooks *h, uint64_t since, uint64_t now);
/**
 * vmcg_hooks_drain_group() - every hooked VM under @g gives its slots'
 * cached credit back (drain_all_stock()); the pages drained.
 */
uint64_t vmcg_hooks_drain_group(VmcgHooks *h, VmcgGroup *g);

#endif
