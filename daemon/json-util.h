/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * json-c with GLib's cleanups: g_autoptr(json_object) and
 * g_autoptr(json_tokener). The one place they are defined: every file that
 * wants them includes this header (G_DEFINE_AUTOPTR_CLEANUP_FUNC twice in
 * one translation unit does not compile).
 */
#ifndef VMCG_JSON_UTIL_H
#define VMCG_JSON_UTIL_H

#include <glib.h>
#include <json-c/json.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC(json_object, json_object_put)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(json_tokener, json_tokener_free)

#endif
