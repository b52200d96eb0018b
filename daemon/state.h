/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Persistence of what operators configured at run time: the group tree with
 * its knobs and the VM registrations, applied at start on top of the config
 * file. Balloon positions are not saved: a restarted daemon adopts each
 * VM's current balloon as its target, so restarting moves no balloon.
 *
 * Two files: the snapshot (the state path, one JSON document written
 * atomically: a temporary file, fsync, rename, fsync of the directory) and
 * beside it the journal (PATH.journal), one JSON record a line, each the
 * whole new state of one group or VM, appended and fsynced per batch of
 * changes. A batch costs what it changed, not the size of the tree; when the
 * journal outgrows the snapshot, the next batch writes a new snapshot
 * instead (compaction), so each change is written O(1) times amortized.
 *
 * The snapshot carries a generation ("journal": N) and the journal's first
 * line names the generation it follows ({"journal": N}): a journal of
 * another generation is one a compaction already folded into the snapshot
 * (a crash between the two steps), and is ignored.
 */
#ifndef VMCG_STATE_H
#define VMCG_STATE_H

#include "daemon.h"

/* The files of one daemon's state; vmcg_state_load() and compaction fill it. */
typedef struct VmcgStateFile {
	char *path;	    /* the snapshot */
	char *journal_path; /* path + ".journal" */
	int journal_fd;	    /* open for appending; -1: the next save compacts */
	uint64_t gen;	    /* the snapshot's generation, which the journal follows */
	uint64_t snapshot_bytes;
	uint64_t journal_bytes; /* what the journal holds, all of it fsynced */
} VmcgStateFile;

void vmcg_state_file_init(VmcgStateFile *sf, const char *path);
void vmcg_state_file_clear(VmcgStateFile *sf);

/*
 * vmcg_state_load() - apply the snapshot at @path, then its journal; if
 * @path is @d's state path, keep the journal open for appending. Missing files are no error. A
 * malformed snapshot or journal line is (G_IO_ERROR_INVALID_DATA, naming
 * the entry or line), and then the daemon must not start. A last journal
 * line without its newline is a write that was cut (and never
 * acknowledged: acknowledgement follows fsync): it is dropped.
 */
gboolean vmcg_state_load(VmcgDaemon *d, const char *path, GError **error);

/*
 * vmcg_state_compact() - write a new snapshot of @d (generation + 1), then
 * start a new, empty journal. Fails (nothing on disk changed) only if the
 * snapshot could not be written; a journal that cannot be started after
 * it leaves @sf->journal_fd at -1 (the next save compacts again).
 */
gboolean vmcg_state_compact(VmcgDaemon *d, VmcgStateFile *sf, GError **error);
/*
 * ... in two steps: the text (vmcg_state_snapshot_text() of generation
 * @sf->gen + 1, from the daemon: its loop), then the files, which touch
 * nothing but @sf (any thread).
 */
gboolean vmcg_state_compact_write(VmcgStateFile *sf, const char *text, gsize len, GError **error);

/*
 * vmcg_state_journal_append() - append @text (whole lines) and fsync. On
 * failure the journal is cut back to what it held (or, if even that
 * fails, abandoned: journal_fd -1) and nothing of @text counts.
 */
gboolean vmcg_state_journal_append(VmcgStateFile *sf, const char *text, gsize len, GError **error);

/*
 * Records: the whole state of one group or VM, or its absence:
 *   {"group": ENTRY}  {"group-deleted": "/path"}  {"vm": ENTRY}  {"vm-deleted": "name"}
 * ENTRY as in the snapshot. Applying one makes the daemon's group or VM
 * what it says (creating, updating, removing), so the journal replays and
 * a failed save rolls back (applying the records of before the change,
 * newest first) with one function.
 */
json_object *vmcg_state_group_record(VmcgDaemon *d, const char *path);
json_object *vmcg_state_vm_record(VmcgDaemon *d, const char *name);
gboolean vmcg_state_apply_record(VmcgDaemon *d, json_object *rec, GError **error);

/**
 * vmcg_state_write_file() - write @path atomically: a temporary file,
 * fsync, rename, fsync of the directory (made if missing). On failure
 * @path is as it was and no temporary file is left. With @ret_fd, the
 * file stays open (for appending: O_APPEND is set). For every file vmcgd
 * keeps beside its state (the snapshot, the journal's header, the
 * config's record).
 */
gboolean vmcg_state_write_file(const char *path, const char *text, gsize len, int *ret_fd,
			       GError **error);

/* A full rewrite at @path (generation 0), for the benchmark's comparison. */
gboolean vmcg_state_save(VmcgDaemon *d, const char *path, GError **error);

/* The snapshot document, one entry a line. */
char *vmcg_state_snapshot_text(VmcgDaemon *d, uint64_t gen, gsize *ret_len);

/* The document itself, for tests and the fuzz target. */
json_object *vmcg_state_to_json(VmcgDaemon *d);
gboolean vmcg_state_apply_text(VmcgDaemon *d, const char *text, gsize len, GError **error);
/* ... and the generation it names (0 if none). */
gboolean vmcg_state_apply_text_gen(VmcgDaemon *d, const char *text, gsize len, uint64_t *ret_gen,
				   GError **error);

/*
 * vmcg_state_check_entry() - what the entry parsers cannot see: a string
 * member with a NUL in it (json-c's strings are C strings: "/a\u0000b"
 * would read as "/a") and an integer json-c could not hold (it saturates
 * 2^64 and beyond to 2^64 - 1, which a floor reads as "max";
 * vmcg_state_mark_text() turns such a literal into a non-integer first). @where names the entry
 * in the error, e.g. "groups[3]".
 */
gboolean vmcg_state_check_entry(json_object *entry, const char *where, GError **error);

/*
 * vmcg_state_mark_text() - a copy of @text that json-c reads without
 * losing what the checks must see, or NULL if @text needs no change:
 * every integer literal beyond [-2^63, 2^64 - 1] ends in ".0" (so it
 * reads as a non-integer, which vmcg_state_check_entry() refuses), and a
 * \u0000 in a member name becomes the six characters "\u0000" (json-c
 * would cut the name there: {"path\u0000x": ...} would read as "path"),
 * so the name is unknown and refused. Strings' contents are otherwise
 * left alone; a key with more than 8 NULs keeps the rest (it is still
 * unknown).
 */
char *vmcg_state_mark_text(const char *text, gsize len, gsize *ret_len);

#endif
