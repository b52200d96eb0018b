/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Applying the config file to the running tree, at start and on reload
 * (SIGHUP): gathers the three views config-merge.h decides between (the
 * file, the record of what the file said when last applied, the tree),
 * applies the decisions, logs them and emits them as events, and keeps
 * the record.
 *
 * The record is its own file next to the state file, <state>.config-seen,
 * JSON, written atomically (temporary file, fsync, rename, fsync of the
 * directory) after the state file, so that a crash between the two leaves
 * a record older than the state, and the next start applies the file's
 * change again rather than lose it:
 *
 *   {"version": 1,
 *    "groups": {"/a": {"memory.max": "1073741824", ...}, ...},
 *    "vms": {"web1": {"address": "/run/...", "group": "/a", ...}, ...}}
 *
 * Values are config-merge.h's canonical text. The record is read back as
 * untrusted input: its values are only ever compared with the file's,
 * never applied, and a record that is not this document is an error that
 * says what is wrong.
 */
#ifndef VMCG_DAEMON_CONFIG_APPLY_H
#define VMCG_DAEMON_CONFIG_APPLY_H

#include <glib.h>
#include <json-c/json.h>

#include "config-merge.h"
#include "config.h"
#include "daemon.h"

/* Events (the API's event stream). */
#define VMCG_EV_CONFIG_CONFLICT "config_conflict" /* a warning note of config-merge.h */
#define VMCG_EV_CONFIG_RELOAD "config_reload"	  /* a SIGHUP's outcome */

/* A record is a few KiB per hundred objects; more is not one of ours. */
#define VMCG_CONFIG_SEEN_MAX_BYTES (16 << 20)

/** The record's path for the state file @state_path (a new string). */
char *vmcg_config_seen_path(const char *state_path);

/**
 * vmcg_config_seen_parse() - the record's text to a list of objects
 * (config-merge.h). Errors: G_IO_ERROR_INVALID_DATA, naming what is wrong.
 */
gboolean vmcg_config_seen_parse(const char *text, gsize len, GPtrArray **ret, GError **error);
json_object *vmcg_config_seen_to_json(const GPtrArray *seen);

/**
 * vmcg_config_seen_load() - read the record at @path. A missing file is no
 * error: *@ret is then NULL (no record).
 */
gboolean vmcg_config_seen_load(const char *path, GPtrArray **ret, GError **error);
gboolean vmcg_config_seen_save(const char *path, const GPtrArray *seen, GError **error);

/** The tree's groups (but "/") and VMs, as objects. */
GPtrArray *vmcg_config_snapshot(VmcgDaemon *d);

/**
 * vmcg_config_apply() - apply @config to @d by the rule of config-merge.h.
 * @seen: the record (NULL: none); on return, *@seen is @config's (the old
 * list is freed).
 * @seen_path: where to keep the record (NULL: in memory only, --no-state);
 * written after the state file.
 * An action that the tree refuses (a VM that cannot move into a group at
 * its max) is logged and skipped; the rest is applied.
 * *@ret_warnings: how many disagreements were logged and emitted.
 */
void vmcg_config_apply(VmcgDaemon *d, const VmcgConfig *config, GPtrArray **seen,
		       const char *seen_path, guint *ret_warnings);

#endif
