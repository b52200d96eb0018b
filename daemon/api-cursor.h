/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Where a streamed answer stands in a walk (docs/api.md, "Large answers").
 *
 * /metrics, GET /v1/groups and GET /v1/vms are written a chunk at a time,
 * as the client reads; between two chunks the main loop runs, and groups
 * and VMs may be created or removed. A cursor therefore never holds a
 * pointer to an item across chunks: it holds the key (group path, VM name)
 * of the last item written and the keys of the few items that followed
 * it, and finds its place again by looking them up. A removed item is
 * never dereferenced: it is simply not found.
 *
 * What a reader sees, given that groups are removed only as leaves and
 * children and VMs are only ever appended (lib/group.c, daemon.c):
 *
 * - every item that exists for the whole answer, exactly once, in walk
 *   order; never an item twice;
 * - an item created meanwhile appears if it lands after the cursor, not
 *   if it lands before;
 * - an item removed meanwhile appears if the cursor passed it first;
 * - if the last item written and the VMCG_API_CURSOR_AHEAD items after it
 *   are all removed between two chunks, the walk goes on after the
 *   subtree of the deepest surviving ancestor of the last of them (ops
 *   after_gone), so items in that subtree after them may be missed (never
 *   repeated). Only a writer removes items.
 *
 * Pure: no I/O, no main loop; tests/unit/test-api-cursor.c feeds a fake
 * walk.
 */
#ifndef VMCG_API_CURSOR_H
#define VMCG_API_CURSOR_H

#include <glib.h>
#include <stdbool.h>

/*
 * Keys remembered past the last item written. 4: a writer removes one
 * group or VM per request, and a reader is behind by at most one chunk;
 * four removals right at a paused reader's position before it reads on
 * is already an unlikely race. At most 4 x 1 KiB paths per cursor.
 */
#define VMCG_API_CURSOR_AHEAD 4

typedef struct VmcgApiWalkOps {
	/* The item after @item in the walk, or NULL at its end. */
	gpointer (*next)(gpointer ctx, gpointer item);
	/* The item whose key is @key now, or NULL: gone. */
	gpointer (*lookup)(gpointer ctx, const char *key);
	/* @item's key (valid until the item changes). */
	const char *(*key)(gpointer ctx, gpointer item);
	/*
	 * Where to go on when the item of @key and everything remembered
	 * after it is gone and the walk went on past it; NULL: the end.
	 * NULL means the same.
	 */
	gpointer (*after_gone)(gpointer ctx, const char *key);
} VmcgApiWalkOps;

typedef struct VmcgApiCursor {
	bool started;			    /* an item was written */
	char *last;			    /* the key of the last item written */
	char *ahead[VMCG_API_CURSOR_AHEAD]; /* the keys that followed it */
	unsigned n_ahead;
} VmcgApiCursor;

/** vmcg_api_cursor_clear() - back to the start; frees the keys. */
void vmcg_api_cursor_clear(VmcgApiCursor *c);

/**
 * vmcg_api_cursor_resume() - the item to write next
 * @first: the walk's first item (used only before any was written)
 *
 * Returns: @first before the first item; the item after the last one
 * written if that one still exists; else the first remembered item that
 * still exists; else ops->after_gone() of the last remembered key when
 * the walk went on past it, NULL when it did not (the end).
 */
gpointer vmcg_api_cursor_resume(const VmcgApiCursor *c, const VmcgApiWalkOps *ops, gpointer ctx,
				gpointer first);

/**
 * vmcg_api_cursor_save() - @item was the last item written: remember it
 *
 * Keeps its key and those of up to VMCG_API_CURSOR_AHEAD items after it.
 * Call at the end of a chunk, while @item is valid. A NULL @item (none
 * written in this chunk) leaves @c as it is.
 */
void vmcg_api_cursor_save(VmcgApiCursor *c, const VmcgApiWalkOps *ops, gpointer ctx, gpointer item);

#endif
