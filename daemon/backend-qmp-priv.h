/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Test seams of the qmp backend, for benchmarks and tests only: they make
 * a backend whose QEMU never answered look like one that answered
 * everything, so that the control loop can be measured without QEMU.
 */
#ifndef VMCG_DAEMON_BACKEND_QMP_PRIV_H
#define VMCG_DAEMON_BACKEND_QMP_PRIV_H

#include "backend.h"
#include "qmp.h"

/** The backend's QMP client (@b must be a qmp backend). */
VmcgQmp *vmcg_backend_qmp_client(VmcgBackend *b);

/**
 * vmcg_backend_qmp_fake_ready() - as if QMP had connected and answered
 * query-memdev (@ram_bytes) and qom-list (a balloon at @balloon_path, stats
 * polling on), with no pid; reports ready and the RAM size to the VM.
 */
void vmcg_backend_qmp_fake_ready(VmcgBackend *b, uint64_t ram_bytes, const char *balloon_path);

/** Commands in flight: query-balloon and guest-stats (0..2). */
unsigned vmcg_backend_qmp_in_flight(VmcgBackend *b);

/** Forget when guest stats were last asked for: the next poll asks. */
void vmcg_backend_qmp_stats_due(VmcgBackend *b);

/** The same for the balloon's safety poll (a query-balloon every 10 s). */
void vmcg_backend_qmp_balloon_due(VmcgBackend *b);

/* When a VM whose balloon moves is asked query-balloon (backend-qmp.c says why). */
typedef enum {
	/* With each guest-stats poll, in the same write (vmcgd). */
	VMCG_QMP_BALLOON_QUERY_WITH_STATS,
	/* Every tick (vmcgd before; the benchmark's "before"). */
	VMCG_QMP_BALLOON_QUERY_EVERY_TICK,
} VmcgQmpBalloonQuery;

/** For the benchmark's side by side; every backend of the process. */
void vmcg_backend_qmp_set_balloon_query(VmcgQmpBalloonQuery mode);

/** Polls and balloon commands issued by every VM so far. */
unsigned long vmcg_backend_qmp_issued(void);

#endif
