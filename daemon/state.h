/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Persistence of what operators configured at run time: the group tree with
 * its knobs and the VM registrations, as one JSON document written
 * atomically (write a temporary file, fsync, rename, fsync the directory)
 * after every change, and applied at start on top of the config file.
 * Balloon positions are not saved: a restarted daemon adopts each VM's
 * current balloon as its target, so restarting moves no balloon.
 */
#ifndef VMCG_STATE_H
#define VMCG_STATE_H

#include "daemon.h"

gboolean vmcg_state_save(VmcgDaemon *d, const char *path, GError **error);

/*
 * vmcg_state_load() - apply the state at @path. A missing file is no error.
 * A malformed one is (G_IO_ERROR_INVALID_DATA, naming what is wrong), and
 * then nothing of it was applied.
 */
gboolean vmcg_state_load(VmcgDaemon *d, const char *path, GError **error);

/* The document itself, for tests and the fuzz target. */
json_object *vmcg_state_to_json(VmcgDaemon *d);
gboolean vmcg_state_apply_text(VmcgDaemon *d, const char *text, gsize len, GError **error);

#endif
