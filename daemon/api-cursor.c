// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A streamed answer's place in a walk, by keys (api-cursor.h).
 */
#include "api-cursor.h"

void vmcg_api_cursor_clear(VmcgApiCursor *c)
{
	g_clear_pointer(&c->last, g_free);
	for (unsigned i = 0; i < c->n_ahead; i++)
		g_clear_pointer(&c->ahead[i], g_free);
	c->n_ahead = 0;
	c->started = false;
}

gpointer vmcg_api_cursor_resume(const VmcgApiCursor *c, const VmcgApiWalkOps *ops, gpointer ctx,
				gpointer first)
{
	gpointer item;

	if (!c->started)
		return first;
	item = ops->lookup(ctx, c->last);
	if (item)
		return ops->next(ctx, item);
	for (unsigned i = 0; i < c->n_ahead; i++) {
		item = ops->lookup(ctx, c->ahead[i]);
		if (item)
			return item;
	}
	/* Fewer remembered than asked for: the walk ended after them. */
	if (c->n_ahead < VMCG_API_CURSOR_AHEAD || !ops->after_gone)
		return NULL;
	return ops->after_gone(ctx, c->ahead[c->n_ahead - 1]);
}

void vmcg_api_cursor_save(VmcgApiCursor *c, const VmcgApiWalkOps *ops, gpointer ctx, gpointer item)
{
	gpointer next = item;

	if (!item)
		return; /* nothing written since the last save: it still holds */
	vmcg_api_cursor_clear(c);
	c->started = true;
	c->last = g_strdup(ops->key(ctx, item));
	while (c->n_ahead < VMCG_API_CURSOR_AHEAD && (next = ops->next(ctx, next)))
		c->ahead[c->n_ahead++] = g_strdup(ops->key(ctx, next));
}
