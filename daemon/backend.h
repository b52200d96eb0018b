/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * VM backends: whatever runs a VM, as vmcgd needs it.
 *
 * A backend connects to (or adopts) a running VM, reports what it does,
 * and carries out what the control loop decides: a balloon target, a
 * pause, a destroy. It owns everything about how it talks to the VM (the
 * QMP connection, libvirt's domain handle, ...) and nothing else: charges
 * belong to the charge sources (charge.h), the VM's balloon, guest
 * statistics and state to daemon/vm.c, decisions to the policy.
 *
 * The ops table is in the style of the kernel's file_operations: one
 * static const table per backend, found by name (vmcg_backend_find()).
 * A VM's identity is its backend's name and an address in that backend's
 * terms (for "qmp", the absolute path of the QMP socket).
 *
 * Data flows one way. A backend reports through the vmcg_dvm_backend_*()
 * calls below; it never writes a VmcgDvm's fields. All of it runs on the
 * daemon's main loop.
 */
#ifndef VMCG_DAEMON_BACKEND_H
#define VMCG_DAEMON_BACKEND_H

#include <glib.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon.h"

typedef struct VmcgBackend VmcgBackend;

/* What a backend tells the API about a VM. Strings are the backend's. */
typedef struct VmcgBackendInfo {
	const char *address;
	const char *qmp; /* the QMP socket, if the backend has one; else NULL */
	/* libvirt: the domain's name and UUID; NULL for other backends */
	const char *domain;
	const char *uuid;
	const char *no_balloon;	   /* why its balloon is not driven; NULL if it is */
	bool migrating;		   /* balloon targets frozen */
	const GPtrArray *problems; /* char *: what is wrong with its metadata; NULL or empty */
	const char *fallback;	   /* why its metadata's group was not used; NULL */
} VmcgBackendInfo;

typedef struct VmcgBackendOps {
	const char *name;

	/** Is @address one this backend can reach? FALSE with a clear G_IO_ERROR. */
	gboolean (*check_address)(const char *address, GError **error);
	/** A backend for @vm at @address (checked); does no I/O yet. */
	VmcgBackend *(*create)(VmcgDvm *vm, const char *address);
	/** Start connecting; report ready/gone as it goes. */
	void (*connect)(VmcgBackend *b);
	/** Once per tick while ready: refresh balloon actual and guest statistics. */
	void (*poll)(VmcgBackend *b, uint64_t now_usec);
	/** Ask the balloon for a guest size of @guest_bytes (clamped by the caller). */
	void (*set_balloon)(VmcgBackend *b, uint64_t guest_bytes);
	/** The OOM actions. Report paused once the VM has stopped. */
	void (*pause)(VmcgBackend *b);
	void (*resume)(VmcgBackend *b);
	void (*destroy)(VmcgBackend *b);
	/** The QEMU process behind the VM, 0 if not known. */
	pid_t (*pid)(VmcgBackend *b);
	void (*describe)(VmcgBackend *b, VmcgBackendInfo *ret);
	/** Disconnect and free; no report is made from here. */
	void (*free)(VmcgBackend *b);
} VmcgBackendOps;

extern const VmcgBackendOps vmcg_backend_qmp;
extern const VmcgBackendOps vmcg_backend_libvirt;

/** The backend called @name ("qmp", "libvirt"), or NULL. */
const VmcgBackendOps *vmcg_backend_find(const char *name);

/* Guest statistics as a backend read them (bytes), already checked for sanity. */
typedef struct VmcgGuestStats {
	uint64_t total;
	uint64_t available;
	uint64_t free;	/* 0 if the guest did not say */
	uint64_t cache; /* 0 if the guest did not say */
} VmcgGuestStats;

/* ---- reports, implemented by daemon/vm.c ---- */

/**
 * vmcg_dvm_backend_ready() - the VM is reachable and running (or adopted
 * running after a daemon restart): its balloon is adopted as it is.
 * @pid: the QEMU process, 0 if unknown (no sampling then).
 */
void vmcg_dvm_backend_ready(VmcgDvm *vm, pid_t pid);
/** The guest's RAM size in bytes (QMP's query-memdev), once known. */
void vmcg_dvm_backend_ram(VmcgDvm *vm, uint64_t ram_bytes);
/**
 * The VM went away (QEMU exited, the connection broke): its charge leaves
 * the tree. Logged at info only: the backend warns, as it alone knows
 * whether the same peer keeps failing (and rate-limits it).
 */
void vmcg_dvm_backend_gone(VmcgDvm *vm, const char *why);
/** The balloon's actual guest size, in bytes (checked against the RAM size). */
void vmcg_dvm_backend_balloon(VmcgDvm *vm, uint64_t actual_bytes);
/** Fresh guest statistics (a repeat of the last ones is not reported). */
void vmcg_dvm_backend_stats(VmcgDvm *vm, const VmcgGuestStats *stats);
/**
 * The VM's balloon cannot be driven (@reason, static; NULL: it can again):
 * it is still charged and measured, never ballooned, and the API says why.
 */
void vmcg_dvm_backend_no_balloon(VmcgDvm *vm, const char *reason);
/**
 * Someone else moved the balloon (vmcg_policy_balloon_external()): vmcgd
 * forgets its own target and leaves the balloon where it is until the
 * VM's group needs reclaim again.
 */
void vmcg_dvm_backend_balloon_external(VmcgDvm *vm);
/** The VM stopped after pause(), or resumed (by anyone) after it. */
void vmcg_dvm_backend_paused(VmcgDvm *vm);
void vmcg_dvm_backend_resumed(VmcgDvm *vm);

/* For backends: what they need to know of their VM. */
const char *vmcg_dvm_name(const VmcgDvm *vm);
/** The balloon target vmcgd set (guest size, bytes), 0: none since adoption. */
uint64_t vmcg_dvm_balloon_target(const VmcgDvm *vm);
/** The guest's RAM size in bytes, 0 until reported. */
uint64_t vmcg_dvm_ram_bytes(const VmcgDvm *vm);
VmcgDaemon *vmcg_dvm_daemon(const VmcgDvm *vm);

#endif
