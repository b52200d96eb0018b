/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * json-c with GLib's cleanups: g_autoptr(json_object) and
 * g_autoptr(json_tokener). Each is guarded, because
 * G_DEFINE_AUTOPTR_CLEANUP_FUNC twice in one translation unit does not
 * compile and qmp.h defines the json_object one too (with the same guard).
 * daemon-private.h still defines the json_tokener one unguarded: include
 * this header after it.
 */
#ifndef VMCG_JSON_UTIL_H
#define VMCG_JSON_UTIL_H

#include <glib.h>
#include <json-c/json.h>

#ifndef VMCG_JSON_OBJECT_AUTOPTR
#define VMCG_JSON_OBJECT_AUTOPTR
G_DEFINE_AUTOPTR_CLEANUP_FUNC(json_object, json_object_put)
#endif

#if !defined(VMCG_JSON_TOKENER_AUTOPTR) && !defined(VMCG_DAEMON_PRIVATE_H)
#define VMCG_JSON_TOKENER_AUTOPTR
G_DEFINE_AUTOPTR_CLEANUP_FUNC(json_tokener, json_tokener_free)
#endif

#endif
