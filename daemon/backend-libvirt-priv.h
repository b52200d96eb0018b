/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Test seam of the libvirt backend, for benchmarks only. A tick's libvirt
 * work ends on the worker thread and in a result handled later on the main
 * loop, and against libvirt's test driver a statistics result changes
 * nothing a VM shows (test:/// reports no balloon statistics): without a
 * count, a benchmark cannot tell when the tick's one
 * virConnectGetAllDomainStats() has come back, nor how many requests the
 * tick made.
 */
#ifndef VMCG_DAEMON_BACKEND_LIBVIRT_PRIV_H
#define VMCG_DAEMON_BACKEND_LIBVIRT_PRIV_H

/**
 * vmcg_backend_libvirt_counts() - since the process started, over every
 * connection: @ret_results, the worker's results handled on the main loop
 * (one per request: an open, a domain's refresh, a statistics read, a
 * balloon or other command; stale ones included); @ret_stats, the
 * statistics results among them. Main loop only.
 */
void vmcg_backend_libvirt_counts(unsigned long *ret_results, unsigned long *ret_stats);

#endif
