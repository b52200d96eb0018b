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

#include <glib.h>

#define vmcg_debug(...)                                                                            \
	do {                                                                                       \
		if (G_UNLIKELY(!g_log_writer_default_would_drop(G_LOG_LEVEL_DEBUG, G_LOG_DOMAIN))) \
			g_debug(__VA_ARGS__);                                                      \
	} while (0)

#endif
