/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Internals shared by the API's layers: api.c (server, routes, handlers),
 * api-parse.c (request bodies), api-render.c (JSON of groups and VMs),
 * api-metrics.c (/metrics) and api-events.c (/v1/events).
 */
#ifndef VMCG_API_PRIVATE_H
#define VMCG_API_PRIVATE_H

#include <libsoup/soup.h>
#include <sys/types.h>

#include "api.h"
#include "json-util.h"

struct VmcgApi {
	VmcgDaemon *d;
	SoupServer *server;
	char *socket_path;
	dev_t sock_dev; /* the socket file we made, to remove only that one */
	ino_t sock_ino;
	gint64 write_gid;
	gsize body_limit;
	GQueue subs;	   /* Sub, in order of subscription */
	GHashTable *conns; /* GSocket (weak) of every open connection */
	guint64 conns_refused;
	bool drop_leaked_sockets; /* libsoup < 3.3: see sweep_conns() */
};

/* A member name or value quoted in an error message: at most this many bytes. */
#define VMCG_API_QUOTE_MAX 64

/** vmcg_api_quote() - @s cut to VMCG_API_QUOTE_MAX bytes at a character boundary (@s is UTF-8). */
char *vmcg_api_quote(const char *s);

/* ---- api.c ---- */

/** vmcg_api_reply_errorf() - the error body {"error": {"code", "message"}}, logged. */
void vmcg_api_reply_errorf(SoupServerMessage *msg, guint status, const char *code, const char *fmt,
			   ...) G_GNUC_PRINTF(4, 5);

/* ---- api-render.c ---- */

/** The GET form of @g; its children as paths, or as objects if @nested. */
json_object *vmcg_api_group_to_json(VmcgApi *api, VmcgGroup *g, bool nested);
/** The GET form of @vm. */
json_object *vmcg_api_vm_to_json(VmcgDvm *vm);
/** @g's vmpressure level now, as its API name ("none" when there is none). */
VmcgVmpressureLevel vmcg_api_group_vmpressure(VmcgApi *api, VmcgGroup *g);

/* ---- api-metrics.c ---- */

/** GET /metrics: the Prometheus text exposition of the tree and the VMs. */
void vmcg_api_handle_metrics(VmcgApi *api, SoupServerMessage *msg);

/* ---- api-events.c ---- */

/** GET /v1/events: subscribe @msg to the daemon's events (HEAD: headers only). */
void vmcg_api_handle_events(VmcgApi *api, SoupServerMessage *msg, gboolean head);
/** End every event stream (vmcg_api_free()). */
void vmcg_api_events_close_all(VmcgApi *api);

#endif
