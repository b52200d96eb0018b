/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmcg_debug(): g_debug() that costs nothing when debug messages are off.
 * GLib 2.74 formats every message before its writer finds that nobody
 * prints debug messages (about 3,600 instructions a call); vmcgd logs a
 * debug message per balloon target it sets, on every tick, so the check
 * comes first. G_MESSAGES_DEBUG (vmcgd --verbose sets it) turns them on.
 */
#ifndef VMCG_DAEMON_LOG_H
#define VMCG_DAEMON_LOG_H

#include <stdbool.h>

#include <glib.h>

/*
 * Whether debug messages of this file's G_LOG_DOMAIN are printed, asked of
 * GLib once per file: G_MESSAGES_DEBUG is read from the environment, which
 * vmcgd sets (--verbose) before anything logs; asking each time costs a
 * getenv(), a walk of the environment.
 */
static inline bool vmcg_debug_on(void)
{
	static int on = -1;

	if (G_UNLIKELY(on < 0))
		on = !g_log_writer_default_would_drop(G_LOG_LEVEL_DEBUG, G_LOG_DOMAIN);
	return on;
}

#define vmcg_debug(...)                          \
	do {                                     \
		if (G_UNLIKELY(vmcg_debug_on())) \
			g_debug(__VA_ARGS__);    \
	} while (0)

#endif
