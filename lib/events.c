// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * memory.events counting and the names of events, OOM actions and stats.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

/*
 * memcg_memory_event(): the .local count of the group where it happened,
 * and the hierarchical count of it and every ancestor. The kernel stops
 * below the root, which has no memory.events file; our root reports one,
 * so it counts too. Relaxed: counters are statistics, and the callback
 * runs after all of them are bumped on this thread.
 */
void vmcg_group_event(VmcgGroup *group, VmcgEvent event)
{
	VmcgTree *tree = group->tree;

	if ((unsigned)event >= _VMCG_EVENT_COUNT)
		return;
	atomic_fetch_add_explicit(&group->events_local[event], 1, memory_order_relaxed);
	for (VmcgGroup *g = group; g; g = g->parent)
		atomic_fetch_add_explicit(&g->events[event], 1, memory_order_relaxed);
	if (tree->event_fn)
		tree->event_fn(group, event, tree->event_userdata);
}

uint64_t vmcg_group_events(const VmcgGroup *group, VmcgEvent event, bool local)
{
	if ((unsigned)event >= _VMCG_EVENT_COUNT)
		return 0;
	return atomic_load_explicit(local ? &group->events_local[event] : &group->events[event],
				    memory_order_relaxed);
}

static const char *const event_names[_VMCG_EVENT_COUNT] = {
	[VMCG_EVENT_LOW] = "low", [VMCG_EVENT_HIGH] = "high",	      [VMCG_EVENT_MAX] = "max",
	[VMCG_EVENT_OOM] = "oom", [VMCG_EVENT_OOM_KILL] = "oom_kill",
};

static const char *const oom_action_names[_VMCG_OOM_ACTION_COUNT] = {
	[VMCG_OOM_NOTIFY] = "notify",
	[VMCG_OOM_PAUSE] = "pause",
	[VMCG_OOM_DESTROY] = "destroy",
};

static const char *const stat_names[_VMCG_STAT_COUNT] = {
	[VMCG_STAT_GUEST] = "guest",
	[VMCG_STAT_OVERHEAD] = "overhead",
	[VMCG_STAT_STOCK] = "stock",
	[VMCG_STAT_BALLOONED] = "ballooned",
	[VMCG_STAT_REPORTED_FREE] = "reported_free",
	[VMCG_STAT_GUEST_FREE] = "guest_free",
	[VMCG_STAT_GUEST_CACHE] = "guest_cache",
};

static int lookup(const char *const *names, int n, const char *s)
{
	if (!s)
		return -EINVAL;
	for (int i = 0; i < n; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -EINVAL;
}

const char *vmcg_event_to_string(VmcgEvent event)
{
	return (unsigned)event < _VMCG_EVENT_COUNT ? event_names[event] : NULL;
}

int vmcg_event_from_string(const char *s, VmcgEvent *ret)
{
	int i = lookup(event_names, _VMCG_EVENT_COUNT, s);

	if (i < 0)
		return i;
	*ret = (VmcgEvent)i;
	return 0;
}

const char *vmcg_oom_action_to_string(VmcgOomAction action)
{
	return (unsigned)action < _VMCG_OOM_ACTION_COUNT ? oom_action_names[action] : NULL;
}

int vmcg_oom_action_from_string(const char *s, VmcgOomAction *ret)
{
	int i = lookup(oom_action_names, _VMCG_OOM_ACTION_COUNT, s);

	if (i < 0)
		return i;
	*ret = (VmcgOomAction)i;
	return 0;
}

const char *vmcg_stat_to_string(VmcgStat item)
{
	return (unsigned)item < _VMCG_STAT_COUNT ? stat_names[item] : NULL;
}
