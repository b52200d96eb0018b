/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmpressure: how hard reclaim has to work, per group, as the kernel's
 * mm/vmpressure.c computes it for memory cgroups.
 *
 * Reclaim reports pages it asked guests to give back ("scanned": the balloon
 * target moved by that much) and pages that actually came back ("reclaimed").
 * Once a window of VMCG_VMPRESSURE_WIN scanned pages has accumulated, the
 * level of that window is computed,
 *     pressure = 100 * (1 - reclaimed / scanned)
 * and delivered to listeners of the group and of its ancestors.
 *
 * Concurrency: vmcg_vmpressure_account() and listener (un)registration on
 * one tree are serialized by the caller (the daemon's main loop). Listener
 * callbacks run synchronously inside vmcg_vmpressure_account(), in the
 * caller's context; they must not register or unregister listeners.
 */
#ifndef VMCG_VMPRESSURE_H
#define VMCG_VMPRESSURE_H

#include <stdbool.h>
#include <stdint.h>

/* 512 pages: SWAP_CLUSTER_MAX * 16, the kernel's vmpressure_win. */
#define VMCG_VMPRESSURE_WIN 512
/* The kernel's vmpressure_level_med and vmpressure_level_critical (%). */
#define VMCG_VMPRESSURE_LEVEL_MEDIUM 60
#define VMCG_VMPRESSURE_LEVEL_CRITICAL 95
/*
 * ilog2(100 / 10): the kernel's vmpressure_level_critical_prio. A reclaim
 * pass at this priority or more urgent (lower) reports critical at once.
 */
#define VMCG_VMPRESSURE_CRITICAL_PRIO 3

typedef enum VmcgVmpressureLevel {
	VMCG_VMPRESSURE_NONE = -1, /* no window completed recently */
	VMCG_VMPRESSURE_LOW = 0,
	VMCG_VMPRESSURE_MEDIUM,
	VMCG_VMPRESSURE_CRITICAL,
} VmcgVmpressureLevel;

/* The kernel's enum vmpressure_modes and their memory.pressure_level names. */
typedef enum VmcgVmpressureMode {
	VMCG_VMPRESSURE_MODE_DEFAULT = 0, /* "default": VMPRESSURE_NO_PASSTHROUGH */
	VMCG_VMPRESSURE_MODE_HIERARCHY,	  /* "hierarchy" */
	VMCG_VMPRESSURE_MODE_LOCAL,	  /* "local" */
} VmcgVmpressureMode;

typedef struct VmcgVmpressure VmcgVmpressure;
typedef struct VmcgVmpressureListener VmcgVmpressureListener;

/* @vmpr is the group whose listener fires; @level the level of the window. */
typedef void (*VmcgVmpressureFn)(VmcgVmpressure *vmpr, VmcgVmpressureLevel level, void *userdata);

/*
 * Caller-owned listener (no allocation in the engine): fill in fn, userdata,
 * level (fire for windows at this level or above) and mode, then register.
 */
struct VmcgVmpressureListener {
	VmcgVmpressureFn fn;
	void *userdata;
	VmcgVmpressureLevel level;
	VmcgVmpressureMode mode;
	/* private */
	VmcgVmpressureListener *next;
};

struct VmcgVmpressure {
	/* private: tree linkage, window accumulators and listeners */
	VmcgVmpressure *parent;
	uint64_t tree_scanned;
	uint64_t tree_reclaimed;
	VmcgVmpressureListener *listeners;
	/* last window's level and when it completed, for the read-out */
	VmcgVmpressureLevel last_level;
	uint64_t last_usec;
	uint64_t windows; /* windows completed in this group itself, for stats */
};

/** vmcg_vmpressure_init() - @parent is the parent group's state or NULL. */
void vmcg_vmpressure_init(VmcgVmpressure *vmpr, VmcgVmpressure *parent);

/** vmcg_vmpressure_calc_level() - the kernel's vmpressure_calc_level(). */
VmcgVmpressureLevel vmcg_vmpressure_calc_level(uint64_t scanned, uint64_t reclaimed);

/**
 * vmcg_vmpressure_account() - the kernel's vmpressure() with tree == true
 * @now_usec: caller's monotonic clock, stored with the level
 *
 * Adds @scanned and @reclaimed to @vmpr's window. When the window reaches
 * VMCG_VMPRESSURE_WIN scanned pages it is consumed: its level is computed,
 * stored in every group on the way to the root as their last level, and
 * delivered as vmpressure_work_fn() does: walking from @vmpr to the root,
 * a listener fires if its level is at or below the window's level, unless
 * it is LOCAL and the group is an ancestor, or it is DEFAULT and a listener
 * below it has already fired. @scanned == 0 is a no-op.
 *
 * Returns the level of the window completed by this call, or
 * VMCG_VMPRESSURE_NONE when the window is still open.
 */
VmcgVmpressureLevel vmcg_vmpressure_account(VmcgVmpressure *vmpr, uint64_t now_usec,
					    uint64_t scanned, uint64_t reclaimed);

/**
 * vmcg_vmpressure_prio() - the kernel's vmpressure_prio(): a reclaim pass
 * at @prio <= VMCG_VMPRESSURE_CRITICAL_PRIO accounts a full window of
 * scanned pages with nothing reclaimed, i.e. critical. Used when the daemon
 * escalates (balloon stuck, reclaim deadline passed). Returns as
 * vmcg_vmpressure_account().
 */
VmcgVmpressureLevel vmcg_vmpressure_prio(VmcgVmpressure *vmpr, uint64_t now_usec, int prio);

/**
 * vmcg_vmpressure_level() - the level to report now: the last window's level
 * if it completed at most @hold_usec before @now_usec, else NONE.
 * A @now_usec earlier than the window's time counts as age 0.
 */
VmcgVmpressureLevel vmcg_vmpressure_level(const VmcgVmpressure *vmpr, uint64_t now_usec,
					  uint64_t hold_usec);

/**
 * vmcg_vmpressure_register() - add @l; its fields must be filled in.
 * -EINVAL on bad level/mode/fn, -EEXIST if @l is already registered here.
 */
int vmcg_vmpressure_register(VmcgVmpressure *vmpr, VmcgVmpressureListener *l);
/** vmcg_vmpressure_unregister() - remove @l; -ENOENT if not registered here. */
int vmcg_vmpressure_unregister(VmcgVmpressure *vmpr, VmcgVmpressureListener *l);

/** "none", "low", "medium", "critical"; NULL for an invalid value. */
const char *vmcg_vmpressure_level_to_string(VmcgVmpressureLevel level);
/** Parses the names above; -EINVAL otherwise. */
int vmcg_vmpressure_level_from_string(const char *s, VmcgVmpressureLevel *ret);
/** "default", "hierarchy", "local"; NULL for an invalid value. */
const char *vmcg_vmpressure_mode_to_string(VmcgVmpressureMode mode);
int vmcg_vmpressure_mode_from_string(const char *s, VmcgVmpressureMode *ret);

#endif
