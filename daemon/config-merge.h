/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Which wins, the config file or the API, for each group, VM and setting:
 * the decisions of a start and of a reload (SIGHUP), as pure functions over
 * plain data. No I/O, no daemon: config-apply.c gathers the inputs and
 * applies the result. The rule, with its table of cases, is in
 * docs/config.md ("Config file and API: which wins").
 *
 * Three views of the same objects, each a list of VmcgMergeObject whose
 * values are canonical text (so that comparing is strcmp):
 *   config:  what the file says now;
 *   seen:    what the file said when vmcgd last applied it (the record in
 *            <state>.config-seen), or NULL: no record at all;
 *   running: what the tree has now (after the state file at start).
 *
 * Per object and per setting:
 *   - config == running: nothing to do;
 *   - config != seen (the operator edited it, or the section is new):
 *     the config's value is applied;
 *   - config == seen, running differs (the API changed it since): the
 *     API's value stays, and a CONFLICT note says they disagree;
 *   - no record at all (seen == NULL: the first start of a vmcgd that keeps
 *     one, or the record was moved away): as config == seen, so that a
 *     restart changes nothing the API set, with a CONFLICT note each.
 * An object the config declares that is not running (deleted through the
 * API) is created again. An object the record has and the config no longer
 * declares (its section was removed) is removed, unless the API changed a
 * setting of it since (then it is the API's: KEPT) or it still has groups
 * or VMs that stay (BUSY). Objects only the API made are not touched.
 */
#ifndef VMCG_DAEMON_CONFIG_MERGE_H
#define VMCG_DAEMON_CONFIG_MERGE_H

#include <glib.h>
#include <stdbool.h>

#include "config.h"

typedef enum VmcgMergeKind {
	VMCG_MERGE_GROUP,
	VMCG_MERGE_VM,
} VmcgMergeKind;

/* The settings of a group, by index into VmcgMergeObject.values. */
enum {
	VMCG_MERGE_G_MIN,
	VMCG_MERGE_G_LOW,
	VMCG_MERGE_G_HIGH,
	VMCG_MERGE_G_MAX,
	VMCG_MERGE_G_OOM_GROUP,
	VMCG_MERGE_G_OOM_ACTION,
	VMCG_MERGE_G_OVERHEAD_IN_MAX,
	VMCG_MERGE_G_CLUSTER_MAX,
	VMCG_MERGE_G_NKEYS,
};

/* The settings of a VM. */
enum {
	VMCG_MERGE_V_BACKEND,
	VMCG_MERGE_V_ADDRESS,
	VMCG_MERGE_V_GROUP,
	VMCG_MERGE_V_FLOOR,
	VMCG_MERGE_V_OOM_PRIORITY,
	VMCG_MERGE_V_CHANNEL, /* "" for none */
	VMCG_MERGE_V_NKEYS,
};

#define VMCG_MERGE_NKEYS_MAX VMCG_MERGE_G_NKEYS

/*
 * One group or VM. Values are canonical text: sizes in bytes rounded down
 * to pages, or "max"; booleans "true"/"false"; oom-action and backend by
 * name; integers in decimal. NULL: not known (a record that lacks it).
 */
typedef struct VmcgMergeObject {
	VmcgMergeKind kind;
	char *name; /* a group's path (never "/") or a VM's name */
	char *values[VMCG_MERGE_NKEYS_MAX];
} VmcgMergeObject;

/** Number of settings of @kind, and their names as the file spells them. */
unsigned vmcg_merge_nkeys(VmcgMergeKind kind);
const char *vmcg_merge_key_name(VmcgMergeKind kind, unsigned key);
/** "group" or "vm" */
const char *vmcg_merge_kind_name(VmcgMergeKind kind);

VmcgMergeObject *vmcg_merge_object_new(VmcgMergeKind kind, const char *name);
VmcgMergeObject *vmcg_merge_object_copy(const VmcgMergeObject *o);
void vmcg_merge_object_free(VmcgMergeObject *o);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VmcgMergeObject, vmcg_merge_object_free)

/** A new, empty list of objects (frees them with vmcg_merge_object_free()). */
GPtrArray *vmcg_merge_list_new(void);

/* Canonical text of values, shared by the config's and the tree's views. */
char *vmcg_merge_size_text(uint64_t bytes); /* VMCG_SIZE_MAX: "max" */
char *vmcg_merge_bool_text(bool b);

/**
 * vmcg_merge_from_config() - the config's groups and VMs as objects, groups
 * first, each in file order. Undeclared ancestors are not objects: vmcgd
 * creates them (mkdir -p) but they are not the config's.
 */
GPtrArray *vmcg_merge_from_config(const VmcgConfig *config);

typedef enum VmcgMergeOp {
	VMCG_MERGE_CREATE,  /* not running: create with .object's values */
	VMCG_MERGE_UPDATE,  /* apply .object's values of the .keys mask */
	VMCG_MERGE_REPLACE, /* a VM whose backend or address changes: forget it, register anew */
	VMCG_MERGE_REMOVE,
} VmcgMergeOp;

typedef struct VmcgMergeAction {
	VmcgMergeOp op;
	unsigned keys;		 /* UPDATE: 1u << key for each setting to apply */
	VmcgMergeObject *object; /* owned; the values after the merge */
} VmcgMergeAction;

typedef enum VmcgMergeNoteKind {
	/* info */
	VMCG_MERGE_NOTE_APPLIED,   /* the config changed since it was last seen: applied */
	VMCG_MERGE_NOTE_ADOPTED,   /* a new section for an object the API made: its values apply */
	VMCG_MERGE_NOTE_RECREATED, /* declared, but not running (deleted through the API) */
	VMCG_MERGE_NOTE_REMOVED,   /* its section was removed, and so is it */
	/* warnings: the config and the running daemon disagree, and the daemon's value stays */
	VMCG_MERGE_NOTE_CONFLICT,   /* unchanged in the file, changed through the API */
	VMCG_MERGE_NOTE_UNRECORDED, /* no record of what the file said before: running kept */
	VMCG_MERGE_NOTE_KEPT,	    /* section removed, but the API changed the object: it stays */
	VMCG_MERGE_NOTE_BUSY,	    /* section removed, but groups or VMs that stay are in it */
} VmcgMergeNoteKind;

typedef struct VmcgMergeNote {
	VmcgMergeNoteKind what;
	VmcgMergeKind kind;
	char *name;
	int key; /* -1: the object as a whole */
	/* the values involved, NULL where there is none */
	char *config_value, *seen_value, *running_value;
} VmcgMergeNote;

void vmcg_merge_note_free(VmcgMergeNote *n);
/** Whether @n is a disagreement that the operator should hear of (a warning and an event). */
bool vmcg_merge_note_is_warning(const VmcgMergeNote *n);
/** "note_kind" as events name it: "conflict", "kept", ... */
const char *vmcg_merge_note_kind_name(VmcgMergeNoteKind what);
/** One line for the log: "[group /a] memory.max: ...". */
char *vmcg_merge_note_format(const VmcgMergeNote *n);

typedef struct VmcgMergeResult {
	/*
	 * VmcgMergeAction, in the order to apply them: groups created (parents
	 * first) and updated, VMs removed, replaced, created and updated,
	 * then groups removed (children first).
	 */
	GArray *actions;
	GPtrArray *notes; /* VmcgMergeNote */
} VmcgMergeResult;

void vmcg_merge_result_clear(VmcgMergeResult *r);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(VmcgMergeResult, vmcg_merge_result_clear)

/**
 * vmcg_merge() - decide, per object and per setting, between @config and
 * @running, with @seen the config last applied (NULL: no record). The
 * record to keep afterwards is @config itself. Every list holds each
 * (kind, name) at most once.
 */
void vmcg_merge(const GPtrArray *config, const GPtrArray *seen, const GPtrArray *running,
		VmcgMergeResult *ret);

/*
 * [daemon] settings on reload. Those the running daemon can take at once
 * (interval, reclaim-step, hysteresis, stats-max-age, vmpressure-hold)
 * are taken; the others need a restart (sockets, state, write-group,
 * tree options, backstop, stats-interval, which QEMU was told at
 * adoption). vmcg_config_reload_daemon() names each setting of the latter
 * kind that @next changes, and puts @running's value back into @next, so
 * that @next then says what runs. stats-max-age stays too when
 * stats-interval does (the file checked one against the other).
 */
void vmcg_config_reload_daemon(const VmcgConfig *running, VmcgConfig *next,
			       GPtrArray *ret_restart_keys);

#endif
