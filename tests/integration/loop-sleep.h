/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * For the drivers that run cluster agents in one process (cluster-check,
 * bench-cluster): run the thread-default main loop (keepalives, late
 * replies) until a monotonic time.
 */
#ifndef VMCG_TESTS_LOOP_SLEEP_H
#define VMCG_TESTS_LOOP_SLEEP_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

static inline gboolean loop_sleep_wake(gpointer data)
{
	*(bool *)data = true;
	return G_SOURCE_REMOVE;
}

/* Runs the main loop until @until_usec (g_get_monotonic_time()); returns at once if past. */
static inline void loop_sleep_until(int64_t until_usec)
{
	int64_t now = g_get_monotonic_time();
	bool woke = false;

	if (until_usec <= now)
		return;
	g_timeout_add((guint)((until_usec - now + 999) / 1000), loop_sleep_wake, &woke);
	while (!woke)
		g_main_context_iteration(NULL, TRUE);
}

#endif
