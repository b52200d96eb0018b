// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * memory.events: local vs hierarchical counting as memcg_memory_event()
 * does it, the event callback, and the name tables.
 */
#include <errno.h>

#include "test-util.h"
#include "vmcg/group.h"

typedef struct {
	VmcgGroup *last_group;
	VmcgEvent last_event;
	unsigned calls;
} Seen;

static void on_event(VmcgGroup *g, VmcgEvent ev, void *userdata)
{
	Seen *s = userdata;

	s->last_group = g;
	s->last_event = ev;
	s->calls++;
	/* Counters are already updated when the callback runs. */
	g_assert_cmpuint(vmcg_group_events(g, ev, true), >, 0);
}

/*
 *   /            high: 2 (hier), 0 (local)
 *   `- /a        high: 2 (hier), 1 (local)
 *      `- /a/b   high: 1 (hier), 1 (local)
 */
static void test_hierarchical(void)
{
	VmcgTree *t;
	VmcgGroup *a, *b;
	Seen seen = { 0 };

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	g_assert_cmpint(vmcg_group_create(t, "/a", &a), ==, 0);
	g_assert_cmpint(vmcg_group_create(t, "/a/b", &b), ==, 0);
	vmcg_tree_set_event_fn(t, on_event, &seen);

	vmcg_group_event(b, VMCG_EVENT_HIGH);
	g_assert_cmpuint(seen.calls, ==, 1);
	g_assert_true(seen.last_group == b);
	g_assert_cmpint(seen.last_event, ==, VMCG_EVENT_HIGH);
	vmcg_group_event(a, VMCG_EVENT_HIGH);

	g_assert_cmpuint(vmcg_group_events(b, VMCG_EVENT_HIGH, false), ==, 1);
	g_assert_cmpuint(vmcg_group_events(b, VMCG_EVENT_HIGH, true), ==, 1);
	g_assert_cmpuint(vmcg_group_events(a, VMCG_EVENT_HIGH, false), ==, 2);
	g_assert_cmpuint(vmcg_group_events(a, VMCG_EVENT_HIGH, true), ==, 1);
	g_assert_cmpuint(vmcg_group_events(vmcg_tree_root(t), VMCG_EVENT_HIGH, false), ==, 2);
	g_assert_cmpuint(vmcg_group_events(vmcg_tree_root(t), VMCG_EVENT_HIGH, true), ==, 0);
	/* Other events untouched. */
	for (int e = 0; e < _VMCG_EVENT_COUNT; e++)
		if (e != VMCG_EVENT_HIGH)
			g_assert_cmpuint(vmcg_group_events(a, e, false), ==, 0);
	/* Out-of-range events are ignored, not counted anywhere. */
	vmcg_group_event(a, _VMCG_EVENT_COUNT);
	g_assert_cmpuint(seen.calls, ==, 2);
	g_assert_cmpuint(vmcg_group_events(a, _VMCG_EVENT_COUNT, false), ==, 0);
	vmcg_tree_free(t);
}

/* Event counts of a removed group stay in its ancestors' hierarchical counts. */
static void test_removed_group_counts_stay(void)
{
	VmcgTree *t;
	VmcgGroup *a, *b;

	g_assert_cmpint(vmcg_tree_new(NULL, &t), ==, 0);
	g_assert_cmpint(vmcg_group_create(t, "/a", &a), ==, 0);
	g_assert_cmpint(vmcg_group_create(t, "/a/b", &b), ==, 0);
	vmcg_group_event(b, VMCG_EVENT_OOM_KILL);
	g_assert_cmpint(vmcg_group_remove(b, 0), ==, 0);
	g_assert_cmpuint(vmcg_group_events(a, VMCG_EVENT_OOM_KILL, false), ==, 1);
	vmcg_tree_free(t);
}

static void test_names(void)
{
	static const char *const events[] = { "low", "high", "max", "oom", "oom_kill" };
	static const char *const actions[] = { "notify", "pause", "destroy" };
	VmcgOomAction a;
	VmcgEvent e;

	for (int i = 0; i < _VMCG_EVENT_COUNT; i++) {
		g_assert_cmpstr(vmcg_event_to_string(i), ==, events[i]);
		g_assert_cmpint(vmcg_event_from_string(events[i], &e), ==, 0);
		g_assert_cmpint(e, ==, i);
	}
	g_assert_null(vmcg_event_to_string(_VMCG_EVENT_COUNT));
	g_assert_null(vmcg_event_to_string((VmcgEvent)-1));
	g_assert_cmpint(vmcg_event_from_string("HIGH", &e), ==, -EINVAL);
	g_assert_cmpint(vmcg_event_from_string("", &e), ==, -EINVAL);
	g_assert_cmpint(vmcg_event_from_string(NULL, &e), ==, -EINVAL);

	for (int i = 0; i < _VMCG_OOM_ACTION_COUNT; i++) {
		g_assert_cmpstr(vmcg_oom_action_to_string(i), ==, actions[i]);
		g_assert_cmpint(vmcg_oom_action_from_string(actions[i], &a), ==, 0);
		g_assert_cmpint(a, ==, i);
	}
	g_assert_null(vmcg_oom_action_to_string(_VMCG_OOM_ACTION_COUNT));
	g_assert_cmpint(vmcg_oom_action_from_string("kill", &a), ==, -EINVAL);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/events/hierarchical", test_hierarchical);
	g_test_add_func("/events/removed-group-counts-stay", test_removed_group_counts_stay);
	g_test_add_func("/events/names", test_names);
	return g_test_run();
}
