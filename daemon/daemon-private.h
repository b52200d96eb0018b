/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Internals shared by daemon.c, vm.c, control.c, the backends and the charge sources. */
#ifndef VMCG_DAEMON_PRIVATE_H
#define VMCG_DAEMON_PRIVATE_H

#include <sys/types.h>

#include "daemon.h"
#include "backend.h"
#include "backend-libvirt.h"
#include "backstop.h"
#include "channel.h"
#include "charge.h"
#include "cluster.h"
#include "hooks.h"
#include "qmp.h"
#include "state.h"

#include "json-util.h"

struct VmcgDaemon {
	VmcgTree *tree;
	char *state_path;
	gboolean loading; /* applying config/state, or rolling back: do not save */
	/* persistence (daemon.c "persistence"; state.h) */
	VmcgStateFile sf;
	GPtrArray *changes;	   /* StateChange not in a save yet, oldest first */
	GQueue save_waiters;	   /* SaveWaiter: answered after the next save */
	gboolean save_deferred;	   /* a loop runs: save when it is idle, not at once */
	gboolean save_task;	   /* a save runs in a worker thread */
	gboolean compact_wanted;   /* the next save writes a whole snapshot */
	gboolean rolling_back;	   /* a VM goes back where it was even over max */
	gboolean save_ok;	   /* the last save (TRUE before any) */
	int64_t save_time_usec;	   /* wall clock of the last save, 0 if none */
	int64_t save_ok_time_usec; /* ... of the last that succeeded */
	char *save_error;	   /* why the last save failed */
	uint64_t saves, save_failures, compactions;
	VmcgPolicy policy;
	GQueue vms;	      /* VmcgDvm, registration order */
	GHashTable *vm_names; /* name -> VmcgDvm: O(1) lookup */
	GHashTable *subs;
	guint next_sub;
	guint tick_id;
	guint kick_id;
	/* The tick's backend polls, a slice per main-loop iteration (control.c). */
	guint poll_id;
	/* The tick's decisions wait for its samples (control.c). */
	gboolean decide_pending;
	guint decide_id;
	uint64_t decide_dt;
	GList *poll_next; /* the next VM to poll; vm.c steps over a VM it frees */
	guint save_id;	  /* a state save is scheduled (next loop turn) */
	uint64_t interval_usec;
	uint64_t last_tick_usec;
	VmcgBackstop *backstop; /* NULL: no backstop */
	VmcgHooks *hooks;	/* NULL: no hooks socket */
	VmcgLibvirt *libvirt;	/* NULL: no libvirt backend */
	VmcgCluster *cluster;	/* always; local until [cluster] etcd (cluster.h) */
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
	/* this tick: the highest vmpressure level of the group and its ancestors */
	VmcgVmpressureLevel chain_level;
	/* this tick: pages given back to stalled guests first (deflation), not yet in usage */
	uint64_t promised_pages;
} VmcgGroupState;

/*
 * A VM as vmcgd manages it. Owned by daemon/vm.c: nothing else writes
 * these fields (backends report through backend.h, charge sources keep
 * their own records, the control loop calls vm.c). The control loop owns
 * want_take; hooks.c owns tick_stall_usec.
 */
struct VmcgDvm {
	VmcgDaemon *d;
	VmcgVm *vm; /* engine VM: name, group, charge */
	const VmcgBackendOps *ops;
	VmcgBackend *backend;
	VmcgSampling *sampling; /* always: measures; charges unless hooked */
	VmcgHooksConn *hooks;	/* hook mode: charges come from here */
	VmcgDvmState state;
	/* Adopted by a backend that owns its life (libvirt): not in the state file, not the API's. */
	gboolean managed;
	pid_t pid;
	uint64_t ram_size; /* bytes, as the backend reported it */
	uint64_t floor;	   /* configured floor, bytes */
	/* the balloon */
	uint64_t target;	/* balloon target we set (guest size), 0 = none yet */
	gboolean target_unsent; /* not yet given to the backend (vmcg_dvm_send_target()) */
	uint64_t actual;	/* guest size per the backend, 0 = unknown */
	int64_t progress_usec;	/* last time actual moved toward target */
	uint64_t progress_actual;
	gboolean stuck;
	const char *no_balloon; /* why the backend cannot drive it (static), NULL: it can */
	gboolean external_hold; /* someone else moved it: leave it until reclaim is needed */
	int64_t adopted_usec;	/* when the backend became ready */
	/* the guest's statistics: hints */
	gboolean has_stats;
	int64_t stats_usec; /* when they arrived (our clock) */
	uint64_t st_total, st_free, st_available, st_cache;
	uint64_t stats_resident; /* resident when the stats arrived */
	uint64_t stats_actual;	 /* guest size when the stats arrived */
	/* the guest pressure channel: its connection, and the last report it accepted */
	VmcgChannel *channel;
	gboolean connected; /* vmcg_dvm_connect() ran: a new channel connects at once */
	gboolean has_report;
	int64_t report_usec; /* when it arrived (our clock) */
	VmcgChannelReport report;
	uint64_t report_resident; /* resident when it arrived */
	uint64_t report_actual;	  /* guest size when it arrived */
	/* control loop */
	uint64_t want_take;	  /* pages the planner asks this tick */
	uint64_t tick_stall_usec; /* hook mode: a vCPU waited this long last tick */
	/* backstop */
	pid_t backstop_pid; /* in its backstop cgroup, 0 if not */
	uint64_t backstop_limit;
	GList link;
};

void vmcg_daemon_emit(VmcgDaemon *d, const char *type, json_object *data);
/* Write the whole state at the next save (start-up: the config's tree too). */
void vmcg_daemon_save(VmcgDaemon *d);
/* Run the control loop soon (a knob changed). */
void vmcg_daemon_kick(VmcgDaemon *d);

/* control.c */
uint64_t vmcg_control_reclaim(VmcgDaemon *d, VmcgGroup *g, uint64_t nr_pages);
void vmcg_control_tick(VmcgDaemon *d);
/* Every sample asked for is in: a tick's decisions waiting for them run. */
void vmcg_control_samples_in(VmcgDaemon *d);
/* Whether the last tick's backend polls are still being sent. */
bool vmcg_control_polling(const VmcgDaemon *d);
/* Drop the polls still to send (the daemon is going away). */
void vmcg_control_stop(VmcgDaemon *d);

/* vm.c */
VmcgDvm *vmcg_dvm_new(VmcgDaemon *d, VmcgVm *evm, const VmcgBackendOps *ops, const char *address);
void vmcg_dvm_free(VmcgDvm *vm);
void vmcg_dvm_connect(VmcgDvm *vm);
/* The guest pressure channel at @path (NULL: none); connects if the VM has. */
void vmcg_dvm_set_channel(VmcgDvm *vm, const char *path);
/* The control loop's push of the VM's level and reclaim hint, if it has a channel. */
void vmcg_dvm_channel_pressure(VmcgDvm *vm, VmcgVmpressureLevel level, uint64_t reclaim_bytes,
			       uint64_t reclaim_within_ms);
/*
 * Once per tick: the charge source's sample, then the balloon's progress
 * check (vmcg_dvm_poll()); the backend's poll (its QMP queries) comes from
 * the tick's poll slices (vmcg_dvm_poll_backend()).
 */
void vmcg_dvm_sample(VmcgDvm *vm, uint64_t now);
void vmcg_dvm_poll(VmcgDvm *vm, uint64_t now);
void vmcg_dvm_poll_backend(VmcgDvm *vm, uint64_t now);
/*
 * A new balloon target: recorded now, given to the backend by
 * vmcg_dvm_send_target(), which the tick's poll slices call (first thing
 * in vmcg_dvm_poll_backend()), so that the tick itself sends nothing.
 */
void vmcg_dvm_set_target(VmcgDvm *vm, uint64_t bytes);
void vmcg_dvm_send_target(VmcgDvm *vm);
/*
 * Whether the balloon is still on its way to a target vmcgd set: READY, a
 * target, actual not there yet, not flagged stuck. A backend whose balloon
 * reports itself (events) polls it only then.
 */
bool vmcg_dvm_balloon_moving(const VmcgDvm *vm);
void vmcg_dvm_oom_act(VmcgDvm *vm, VmcgOomAction action);
/* Resident guest RAM as last sampled, bytes. */
uint64_t vmcg_dvm_resident(const VmcgDvm *vm);
/* The charge handover of hook mode (charge.h). */
void vmcg_dvm_hooks_attach(VmcgDvm *vm, VmcgHooksConn *c, uint64_t populated_pages);
void vmcg_dvm_hooks_detach(VmcgDvm *vm);
/* Put the VM's QEMU in its backstop cgroup at its limit; take it out. */
void vmcg_dvm_backstop_sync(VmcgDvm *vm);
void vmcg_dvm_backstop_release(VmcgDvm *vm);

#endif
