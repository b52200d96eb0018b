/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Internals shared by daemon.c, control.c, qemu.c and state.c. */
#ifndef VMCG_DAEMON_PRIVATE_H
#define VMCG_DAEMON_PRIVATE_H

#include <sys/types.h>

#include "daemon.h"
#include "backstop.h"
#include "hooks.h"
#include "qmp.h"

/* qmp.h defines the json_object cleanup. */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(json_tokener, json_tokener_free)

struct VmcgDaemon {
	VmcgTree *tree;
	char *state_path;
	gboolean loading; /* applying config/state: do not save */
	VmcgPolicy policy;
	GQueue vms; /* VmcgDvm, registration order */
	GHashTable *subs;
	guint next_sub;
	guint tick_id;
	guint kick_id;
	guint save_id; /* a state save is scheduled */
	uint64_t interval_usec;
	uint64_t last_tick_usec;
	VmcgBackstop *backstop; /* NULL: no backstop */
	VmcgHooks *hooks;	/* NULL: no hooks socket */
	uint64_t backstop_overhead;
};

/* Per-group control state, the group's userdata. */
typedef struct VmcgGroupState {
	int64_t over_max_since;	 /* usec, 0 if not over max */
	uint64_t over_max_best;	 /* lowest usage seen while over max */
	uint64_t asked_pages;	 /* asked of balloons last tick (vmpressure) */
	uint64_t asked_at_usage; /* usage when asked */
	uint64_t last_psi_usec;
	/* hook mode, recomputed each tick: refills waiting for room under it */
	uint64_t held_pages;
	int64_t held_since;  /* the oldest, 0 if none */
	uint64_t stall_some; /* usec in this tick some hooked vCPU under it waited */
	uint64_t stall_full; /* ... and every VM under it had one waiting */
	uint32_t nr_vms, nr_stalled;
} VmcgGroupState;

struct VmcgDvm {
	VmcgDaemon *d;
	VmcgVm *vm; /* engine VM: name, group, charge */
	char *qmp_path;
	VmcgQmp *qmp;
	VmcgDvmState state;
	pid_t pid;
	uint64_t ram_size;  /* bytes, from query-memdev */
	uint64_t floor;	    /* configured floor, bytes */
	uint64_t charged;   /* bytes charged by sampling */
	uint64_t resident;  /* last sample */
	int64_t cal_usec;   /* last full (smaps) sample, 0 = none */
	uint64_t cal_guest; /* guest resident then */
	uint64_t cal_anon;  /* RssAnon then */
	uint64_t overhead;
	uint64_t target;       /* balloon target we set (guest size), 0 = none yet */
	uint64_t actual;       /* guest size per QEMU, 0 = unknown */
	int64_t progress_usec; /* last time actual moved toward target */
	uint64_t progress_actual;
	gboolean stuck;
	gboolean in_query; /* a query-balloon is in flight */
	gboolean in_stats;
	int64_t stats_asked_usec;
	char *balloon_path; /* QOM path of the balloon device */
	gboolean stats_enabled;
	gboolean has_stats;
	int64_t stats_usec;	/* when the guest stats were taken (our clock) */
	int64_t stats_guest_ts; /* guest's last-update, to spot stale stats */
	uint64_t st_total, st_free, st_available, st_cache;
	uint64_t stats_resident;  /* resident when the stats arrived */
	uint64_t stats_actual;	  /* guest size when the stats arrived */
	uint64_t want_take;	  /* pages the planner asks this tick */
	int64_t adopted_usec;	  /* when QMP became ready */
	pid_t backstop_pid;	  /* in its backstop cgroup, 0 if not */
	VmcgHooksConn *hooks;	  /* hook mode: charges come from here */
	uint64_t tick_stall_usec; /* hook mode: a vCPU waited this long last tick */
	gboolean audit_flagged;	  /* resident above charge + slack */
	unsigned audit_strikes;	  /* samples in a row over it */
	uint64_t backstop_limit;  /* bytes written to its limit file */
	GList link;
};

void vmcg_daemon_emit(VmcgDaemon *d, const char *type, json_object *data);
void vmcg_daemon_save(VmcgDaemon *d);
/* Run the control loop soon (a knob changed). */
void vmcg_daemon_kick(VmcgDaemon *d);

/* control.c */
uint64_t vmcg_control_reclaim(VmcgDaemon *d, VmcgGroup *g, uint64_t nr_pages);
void vmcg_control_tick(VmcgDaemon *d);

/* control.c: take @vm's QEMU out of its backstop cgroup. */
void vmcg_control_backstop_release(VmcgDvm *vm);

/* qemu.c */
VmcgDvm *vmcg_dvm_new(VmcgDaemon *d, VmcgVm *evm, const char *qmp_path);
void vmcg_dvm_free(VmcgDvm *vm);
void vmcg_dvm_connect(VmcgDvm *vm);
void vmcg_dvm_poll(VmcgDvm *vm, uint64_t now);
void vmcg_dvm_set_target(VmcgDvm *vm, uint64_t bytes);
void vmcg_dvm_oom_act(VmcgDvm *vm, VmcgOomAction action);

#endif
