/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmcgd's core: the engine's tree, the VMs the daemon manages, and the
 * operations that the API, the config loader and the state loader apply to
 * them. Everything here runs on the GLib main loop of the daemon's one
 * thread; nothing in it blocks for long.
 */
#ifndef VMCG_DAEMON_H
#define VMCG_DAEMON_H

#include <glib.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmcg/group.h"
#include "channel-proto.h"
#include "policy.h"

typedef struct VmcgDaemon VmcgDaemon;
typedef struct VmcgDvm VmcgDvm;
struct VmcgBackendOps;

/* "max" in the daemon's byte-sized settings (as vmcg/size.h's VMCG_SIZE_MAX). */
#define VMCG_BYTES_MAX UINT64_MAX

/* Knobs of a group as the API and the config give them: each one optional. */
typedef struct VmcgGroupSettings {
	bool has_min, has_low, has_high, has_max;
	uint64_t min, low, high, max; /* bytes, VMCG_BYTES_MAX = "max" */
	bool has_oom_group;
	bool oom_group;
	bool has_oom_action;
	VmcgOomAction oom_action;
	bool has_overhead_in_max;
	bool overhead_in_max;
	bool has_cluster_max;
	uint64_t cluster_max; /* cluster.memory.max, bytes; VMCG_BYTES_MAX: not cluster-wide */
} VmcgGroupSettings;

typedef struct VmcgVmSettings {
	bool has_floor;
	uint64_t floor; /* bytes */
	bool has_oom_priority;
	int32_t oom_priority;
	/* The guest pressure channel's socket path, "" for none; owned by whoever fills it. */
	bool has_channel;
	char *channel;
} VmcgVmSettings;

typedef enum VmcgDvmState {
	VMCG_DVM_CONNECTING = 0, /* QMP not (yet) ready */
	VMCG_DVM_READY,
	VMCG_DVM_PAUSED, /* paused by the OOM action */
	VMCG_DVM_GONE,	 /* QEMU went away; the record stays until deleted */
} VmcgDvmState;

/* What the API shows of a hooked VM. Pages. */
typedef struct VmcgHooksInfo {
	uint32_t nr_slots;
	uint32_t batch;	       /* QEMU's chunk: pages per fault */
	uint32_t refill_batch; /* pages per refill (stock-batch) */
	uint64_t charged;      /* populated + credit, as vmcgd counts it */
	int64_t credit;	       /* sum of the slots' credit now (< 0: in debt) */
	uint64_t populated;    /* QEMU's count, from the region */
	uint64_t faults;
	uint64_t unbacked; /* populated while detached (QEMU's count) */
	uint32_t held;	   /* slots whose refill waits for room */
	uint64_t stall_usec;
	uint64_t grants, drains;
	uint64_t slack; /* pages the charge may exceed resident by */
	int64_t pid;
} VmcgHooksInfo;

/* What the API shows of a VM. Sizes in bytes; ages in usec, or -1 if never. */
typedef struct VmcgDvmInfo {
	const char *name;
	const char *backend;	/* "qmp" */
	const char *address;	/* the backend's address of the VM */
	const char *qmp;	/* the QMP socket (qmp backend), else NULL */
	const char *domain;	/* libvirt: the domain's name, else NULL */
	const char *uuid;	/* libvirt: the domain's UUID, else NULL */
	bool managed;		/* adopted from its backend (libvirt), not registered */
	const char *no_balloon; /* why the balloon is not driven, NULL if it is */
	bool migrating;
	bool external_hold;	   /* someone else moved the balloon; vmcgd leaves it */
	const GPtrArray *problems; /* libvirt: the metadata's problems (char *), or NULL */
	const char *fallback;	   /* libvirt: why the metadata's group was not used */
	const char *group;
	const char *mode;  /* "sampling" or "hooks" */
	const char *state; /* "connecting", "ready", "paused", "gone" */
	uint64_t current;  /* charged bytes */
	uint64_t ram;	   /* guest RAM size, 0 if not known yet */
	uint64_t resident; /* last sample of resident guest RAM */
	uint64_t overhead;
	uint64_t floor;
	int32_t oom_priority;
	uint64_t balloon_target; /* guest size the balloon aims at; 0 if unset */
	uint64_t balloon_actual;
	bool has_stats;
	int64_t stats_age_usec;
	uint64_t stat_total, stat_free, stat_available, stat_cache;
	int64_t pid;
	/* hook mode only (hooked) */
	bool hooked;
	VmcgHooksInfo hooks;
	bool hook_audit_flagged; /* resident above the hooks' charge + slack */
	/* whether the charge is known (charge.h: VmcgChargeState) */
	const char *charge_state;    /* "pending", "known", "unknown" */
	const char *charge_reason;   /* unknown: why; borrowed */
	int64_t charge_unknown_usec; /* unknown: for how long, else -1 */
	unsigned charge_failures;    /* reads failed in a row */
	bool charge_worst_case;	     /* unknown: charged its whole RAM */
	int64_t sample_age_usec;     /* last successful read, -1: none */
	/* the guest pressure channel (docs/guest-channel.md); NULL: none */
	const char *channel_path;
	const char *channel_state; /* "connected", "disconnected", "muted" */
	int64_t channel_version;   /* the guest's hello, 0: none yet */
	const char *channel_agent; /* the guest's hello, NULL: none yet */
	uint64_t channel_dropped;
	bool has_report;
	int64_t report_age_usec;
	VmcgChannelReport report; /* the guest's last, if has_report */
} VmcgDvmInfo;

/* Event types of the API's event stream. */
#define VMCG_EV_VMPRESSURE "vmpressure"
#define VMCG_EV_BALLOON_STUCK "balloon_stuck"
#define VMCG_EV_VM_ATTACHED "vm_attached"
#define VMCG_EV_VM_DETACHED "vm_detached"
#define VMCG_EV_HOOKS_ATTACHED "hooks_attached"
#define VMCG_EV_HOOKS_DETACHED "hooks_detached"
/* a hooked VM has more resident than it was charged for, beyond the slack */
#define VMCG_EV_HOOKS_AUDIT "hooks_audit"
/* a sampled VM's charge became unknown (its reads fail), and known again */
#define VMCG_EV_CHARGE_UNKNOWN "charge_unknown"
#define VMCG_EV_CHARGE_KNOWN "charge_known"
/* the guest pressure channel: up (both hellos), down, the guest muted */
#define VMCG_EV_CHANNEL_CONNECTED "channel_connected"
#define VMCG_EV_CHANNEL_DISCONNECTED "channel_disconnected"
#define VMCG_EV_CHANNEL_MUTED "channel_muted"
/* libvirt: a domain's vmcg metadata is invalid (or valid again) */
#define VMCG_EV_LIBVIRT_METADATA "libvirt_metadata"
/* someone else (virsh setmem) moved a balloon; vmcgd leaves it there while it can */
#define VMCG_EV_BALLOON_EXTERNAL "balloon_external"
/* cluster quotas (docs/cluster.md): a grant or its enforced cap moved; drift; cut off or back */
#define VMCG_EV_CLUSTER_GRANT "cluster_grant"
#define VMCG_EV_CLUSTER_DRIFT "cluster_drift"
#define VMCG_EV_CLUSTER_PARTITION "cluster_partition"
/* and the memory events: "low", "high", "max", "oom", "oom_kill" */

/* @data is borrowed for the call. */
typedef void (*VmcgDaemonEventFn)(const char *type, json_object *data, gpointer userdata);

/* VmcgPolicy, the enforcement tunables, is in policy.h. */

/* ---- lifetime ---- */

/**
 * vmcg_daemon_new() - a daemon with an empty tree.
 * @state_path: where state is persisted (NULL: not persisted)
 * The daemon does nothing until vmcg_daemon_start().
 */
VmcgDaemon *vmcg_daemon_new(const VmcgTreeOptions *opts, const char *state_path);
void vmcg_daemon_free(VmcgDaemon *d);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VmcgDaemon, vmcg_daemon_free)

void vmcg_daemon_set_policy(VmcgDaemon *d, const VmcgPolicy *p);
const VmcgPolicy *vmcg_daemon_policy(VmcgDaemon *d);

/**
 * vmcg_daemon_enable_backstop() - put each QEMU into a host memory cgroup
 * limited to its group's memory.max plus @overhead_bytes (backstop.h).
 * @sysfs: the cgroup mount point, "/sys/fs/cgroup"
 */
gboolean vmcg_daemon_enable_backstop(VmcgDaemon *d, const char *sysfs, uint64_t overhead_bytes,
				     GError **error);

/**
 * vmcg_daemon_enable_hooks() - serve hook-mode QEMUs on @path (hooks.h).
 */
gboolean vmcg_daemon_enable_hooks(VmcgDaemon *d, const char *path, GError **error);

/** Start the control loop at @interval_usec and connect to every VM. */
void vmcg_daemon_start(VmcgDaemon *d, uint64_t interval_usec);

VmcgTree *vmcg_daemon_tree(VmcgDaemon *d);

/* The cluster side (cluster.h): always there, local until [cluster] etcd joins one. */
struct VmcgCluster *vmcg_daemon_cluster(VmcgDaemon *d);
/** The daemon's monotonic clock, usec (g_get_monotonic_time()). */
uint64_t vmcg_daemon_now_usec(VmcgDaemon *d);

/* ---- persistence ---- */

/* The state file's health, for the API (GET /v1/status) and metrics. */
typedef struct VmcgStateHealth {
	const char *path;	  /* NULL: no state (--no-state) */
	bool ok;		  /* the last save succeeded (true before any) */
	int64_t last_save_usec;	  /* wall clock of the last save, 0 if none */
	int64_t last_ok_usec;	  /* ... of the last one that succeeded, 0 if none */
	const char *error;	  /* why the last save failed, else NULL */
	uint64_t saves, failures; /* since start */
	uint64_t compactions;	  /* whole snapshots written since start */
	uint64_t snapshot_bytes;  /* as last written or read */
	uint64_t journal_bytes;	  /* appended since, fsynced */
	uint64_t pending;	  /* changes not yet saved */
} VmcgStateHealth;

void vmcg_daemon_state_health(VmcgDaemon *d, VmcgStateHealth *ret);

/*
 * A write is acknowledged only once it is on disk: after a change, the API
 * calls vmcg_daemon_when_saved(). If there are unsaved changes, @fn is
 * called once, after the next save, with NULL if it succeeded, or with
 * why it failed (then every change since the last good save has been
 * undone: what the daemon holds is what the state file holds), and TRUE
 * is returned; else (nothing to save, or no state file) FALSE, and @fn is
 * not called. Saves run when the main loop is idle, one for all changes
 * made until then (group commit).
 */
typedef void (*VmcgDaemonSavedFn)(const GError *error, gpointer userdata);
gboolean vmcg_daemon_when_saved(VmcgDaemon *d, VmcgDaemonSavedFn fn, gpointer userdata);

/* Save the pending changes now (exit, tests); what the waiters are told. */
gboolean vmcg_daemon_flush(VmcgDaemon *d, GError **error);

/* ---- groups ---- */

/**
 * vmcg_daemon_group_put() - create the group at @path (parents must exist)
 * or update it, applying every knob @s has. Validates everything before
 * changing anything: on error nothing changed.
 * Errors (G_IO_ERROR): INVALID_ARGUMENT (bad path or value), NOT_FOUND
 * (no parent), PERMISSION_DENIED (knobs on "/").
 */
gboolean vmcg_daemon_group_put(VmcgDaemon *d, const char *path, const VmcgGroupSettings *s,
			       gboolean *ret_created, GError **error);

/** Errors: NOT_FOUND, INVALID_ARGUMENT, BUSY (root, children, or VMs). */
gboolean vmcg_daemon_group_delete(VmcgDaemon *d, const char *path, GError **error);

/**
 * vmcg_daemon_group_reclaim() - memory.reclaim: ask the group's VMs'
 * balloons for @bytes now, as planned by the engine. *@ret_planned is what
 * could be asked for (less than @bytes when protection and floors stop it).
 */
gboolean vmcg_daemon_group_reclaim(VmcgDaemon *d, const char *path, uint64_t bytes,
				   uint64_t *ret_planned, GError **error);

/* ---- VMs ---- */

/**
 * vmcg_daemon_vm_add() - register a VM that @backend reaches at @address
 * and attach it to @group. A VM's identity is backend + address: for the
 * "qmp" backend (the default when @backend is NULL) the address is the
 * absolute path of QEMU's QMP socket. The backend connects asynchronously.
 * Errors: INVALID_ARGUMENT (name, unknown backend, bad address), EXISTS,
 * NOT_FOUND (group).
 */
gboolean vmcg_daemon_vm_add(VmcgDaemon *d, const char *name, const char *backend,
			    const char *address, const char *group, const VmcgVmSettings *s,
			    GError **error);

/** Errors: NOT_FOUND (VM or group), NO_SPACE (destination at max; nothing changed). */
gboolean vmcg_daemon_vm_move(VmcgDaemon *d, const char *name, const char *group, GError **error);

/** Apply per-VM settings. Errors: NOT_FOUND, INVALID_ARGUMENT. */
gboolean vmcg_daemon_vm_set(VmcgDaemon *d, const char *name, const VmcgVmSettings *s,
			    GError **error);

/**
 * vmcg_daemon_vm_adopt() - a VM that a backend found running and manages
 * itself (libvirt): as vmcg_daemon_vm_add(), but never saved (its backend
 * re-reads it at start), refused to the API's changes, and moved, set and
 * forgotten only by its backend (the _managed_ calls below).
 */
VmcgDvm *vmcg_daemon_vm_adopt(VmcgDaemon *d, const char *name, const struct VmcgBackendOps *ops,
			      const char *address, const char *group, const VmcgVmSettings *s,
			      GError **error);
gboolean vmcg_daemon_vm_managed_move(VmcgDaemon *d, VmcgDvm *vm, const char *group, GError **error);
void vmcg_daemon_vm_managed_set(VmcgDaemon *d, VmcgDvm *vm, const VmcgVmSettings *s);
void vmcg_daemon_vm_forget(VmcgDaemon *d, VmcgDvm *vm);
/**
 * vmcg_daemon_enable_libvirt() - adopt the running domains of the
 * libvirtd at @uri ("" or NULL: none) once the daemon starts; a domain
 * without usable metadata goes to @default_group (docs/libvirt.md).
 */
void vmcg_daemon_enable_libvirt(VmcgDaemon *d, const char *uri, const char *default_group);
/* The libvirt connection's health; FALSE if there is none (backend-libvirt.h). */
struct VmcgLibvirtStatus;
gboolean vmcg_daemon_libvirt_status(VmcgDaemon *d, struct VmcgLibvirtStatus *ret);
/** Forget a VM: its charge leaves the tree, its balloon is left as it is. */
gboolean vmcg_daemon_vm_remove(VmcgDaemon *d, const char *name, GError **error);

VmcgDvm *vmcg_daemon_vm_lookup(VmcgDaemon *d, const char *name);
/** Iteration in registration order. */
VmcgDvm *vmcg_daemon_vm_first(VmcgDaemon *d);
VmcgDvm *vmcg_daemon_vm_next(VmcgDvm *vm);
void vmcg_dvm_info(VmcgDvm *vm, VmcgDvmInfo *ret);

/* ---- events ---- */

guint vmcg_daemon_subscribe(VmcgDaemon *d, VmcgDaemonEventFn fn, gpointer userdata);
void vmcg_daemon_unsubscribe(VmcgDaemon *d, guint id);

#endif
