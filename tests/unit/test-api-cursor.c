// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A streamed answer's cursor (api-cursor.h) over a fake list of keys: a
 * reader stops after one item, the list changes, the reader goes on.
 *
 *   a b c d e f g h     stop after c; the change; what the rest must be
 *
 * Removed items are freed and poisoned before the cursor resumes: it
 * must only ever find them gone, never read them.
 */
#include <string.h>

#include "api-cursor.h"

static gpointer fake_next(gpointer ctx, gpointer item)
{
	GPtrArray *list = ctx;
	guint i;

	g_assert_true(g_ptr_array_find(list, item, &i));
	return i + 1 < list->len ? list->pdata[i + 1] : NULL;
}

static gpointer fake_lookup(gpointer ctx, const char *key)
{
	GPtrArray *list = ctx;

	for (guint i = 0; i < list->len; i++)
		if (strcmp(list->pdata[i], key) == 0)
			return list->pdata[i];
	return NULL;
}

static const char *fake_key(gpointer ctx, gpointer item)
{
	(void)ctx;
	return item;
}

static const VmcgApiWalkOps fake_ops = {
	.next = fake_next,
	.lookup = fake_lookup,
	.key = fake_key,
};

static const struct {
	const char *name;
	const char *stop_after; /* the last item of the first chunk */
	const char *remove;	/* then these go, */
	const char *append;	/* and these come, at the end */
	const char *rest;	/* what the reader then gets */
} cases[] = {
	{ "unchanged", "c", "", "", "d e f g h" },
	{ "at the start", NULL, "", "", "a b c d e f g h" },
	{ "an earlier item removed", "c", "a b", "", "d e f g h" },
	{ "the last written removed", "c", "c", "", "d e f g h" },
	{ "it and the next removed", "c", "c d", "", "e f g h" },
	{ "it and 3 ahead removed", "c", "c d e f", "", "g h" },
	{ "it and 4 ahead removed: the rest is lost, nothing repeated", "c", "c d e f g", "", "" },
	{ "a later item removed", "c", "e", "", "d f g h" },
	{ "appended after the end", "h", "", "i j", "i j" },
	{ "appended", "c", "", "i", "d e f g h i" },
	{ "the end removed, then appended: not seen", "g", "g h", "i", "" },
	{ "removed and made again: the new one's place", "c", "c", "c i", "i" },
	{ "everything removed", "c", "a b c d e f g h", "", "" },
};

static char *rest_of(GPtrArray *list, const VmcgApiCursor *c)
{
	GString *out = g_string_new(NULL);
	gpointer item =
		vmcg_api_cursor_resume(c, &fake_ops, list, list->len ? list->pdata[0] : NULL);

	for (; item; item = fake_next(list, item))
		g_string_append_printf(out, "%s%s", out->len ? " " : "", (char *)item);
	return g_string_free(out, FALSE);
}

static void poison_free(gpointer p)
{
	memset(p, 'X', strlen(p));
	g_free(p);
}

static void test_cases(void)
{
	for (size_t k = 0; k < G_N_ELEMENTS(cases); k++) {
		g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(poison_free);
		g_auto(GStrv) initial = g_strsplit("a b c d e f g h", " ", -1);
		g_auto(GStrv) remove = g_strsplit(cases[k].remove, " ", -1);
		g_auto(GStrv) append = g_strsplit(cases[k].append, " ", -1);
		g_autofree char *rest = NULL;
		VmcgApiCursor c = { 0 };

		g_test_message("%s", cases[k].name);
		for (char **s = initial; *s; s++)
			g_ptr_array_add(list, g_strdup(*s));
		if (cases[k].stop_after)
			vmcg_api_cursor_save(&c, &fake_ops, list,
					     fake_lookup(list, cases[k].stop_after));
		for (char **s = remove; *s; s++)
			if (**s)
				g_assert_true(g_ptr_array_remove(list, fake_lookup(list, *s)));
		for (char **s = append; *s; s++)
			if (**s)
				g_ptr_array_add(list, g_strdup(*s));
		rest = rest_of(list, &c);
		g_assert_cmpstr(rest, ==, cases[k].rest);
		vmcg_api_cursor_clear(&c);
	}
}

/* What a cursor holds: the last key and at most VMCG_API_CURSOR_AHEAD more. */
static void test_bounded(void)
{
	g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(g_free);
	VmcgApiCursor c = { 0 };

	for (int i = 0; i < 100; i++)
		g_ptr_array_add(list, g_strdup_printf("k%d", i));
	vmcg_api_cursor_save(&c, &fake_ops, list, list->pdata[10]);
	g_assert_cmpstr(c.last, ==, "k10");
	g_assert_cmpuint(c.n_ahead, ==, VMCG_API_CURSOR_AHEAD);
	g_assert_cmpstr(c.ahead[VMCG_API_CURSOR_AHEAD - 1], ==, "k14");
	vmcg_api_cursor_save(&c, &fake_ops, list, list->pdata[98]);
	g_assert_cmpuint(c.n_ahead, ==, 1);
	vmcg_api_cursor_clear(&c);
	g_assert_null(c.last);
	g_assert_false(c.started);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/api-cursor/cases", test_cases);
	g_test_add_func("/api-cursor/bounded", test_bounded);
	return g_test_run();
}
