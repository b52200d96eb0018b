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

#include "api-cursor.h"
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
	GQueue subs; /* Sub, in order of subscription */

	/* The connections (api-conn.c). */
	GSocket *listen_sock;
	GSocketAddress *local_addr;
	guint listen_id;	     /* the watch on listen_sock; 0 while backing off */
	guint backoff_id;	     /* the timer that watches it again */
	unsigned backoff_msec;	     /* 0: not backing off */
	gint64 backoff_since_usec;   /* when the episode started */
	guint64 backoff_failures;    /* accepts that failed in the episode */
	bool backoff_logged;	     /* its start was logged: log its end */
	GQueue conns;		     /* Conn, oldest first */
	unsigned conns_unprivileged; /* those of peers who may not write */
	GHashTable *uid_conns;	     /* uid -> connections, of peers who may not write */
	guint64 conns_refused;	     /* by the caps, since start */
	guint64 deadlines_missed;    /* connections closed by a request deadline */
	gint64 backoff_logged_usec;  /* rate limits of the log lines (monotonic) */
	gint64 refused_logged_usec;
	gint64 deadline_logged_usec;
	gint64 accept_logged_usec;
};

/* A member name or value quoted in an error message: at most this many bytes. */
#define VMCG_API_QUOTE_MAX 64

/** vmcg_api_quote() - @s cut to VMCG_API_QUOTE_MAX bytes at a character boundary (@s is UTF-8). */
char *vmcg_api_quote(const char *s);

/* ---- api.c ---- */

/** vmcg_api_reply_errorf() - the error body {"error": {"code", "message"}}, logged. */
void vmcg_api_reply_errorf(SoupServerMessage *msg, guint status, const char *code, const char *fmt,
			   ...) G_GNUC_PRINTF(4, 5);

/**
 * vmcg_api_peer_may_write() - may the peer of @sock write (uid 0 or the write group)?
 * Decided from the kernel's record of the peer at connect(); false with
 * @error set (PERMISSION_DENIED, saying who the peer is) otherwise.
 */
gboolean vmcg_api_peer_may_write(VmcgApi *api, GSocket *sock, GError **error);

/* ---- api-conn.c ---- */

/** vmcg_api_listen() - accept connections on the listening @sock (a reference is taken). */
gboolean vmcg_api_listen(VmcgApi *api, GSocket *sock, GError **error);
/** vmcg_api_conns_close() - stop listening, forget every connection (after soup_server_disconnect()). */
void vmcg_api_conns_close(VmcgApi *api);
/** vmcg_api_conn_count() - connections open now. */
guint vmcg_api_conn_count(VmcgApi *api);
/** vmcg_api_msg_socket() - the socket of @msg's connection; NULL if it is not one of ours. */
GSocket *vmcg_api_msg_socket(SoupServerMessage *msg);
/** vmcg_api_msg_got_headers() - @msg's headers are read and accepted: its body is due. */
void vmcg_api_msg_got_headers(SoupServerMessage *msg);
/**
 * vmcg_api_msg_refuse_raw() - answer @msg from the headers alone and end its connection
 *
 * For a request whose body libsoup cannot be trusted to frame (an early
 * handler only): the answer is written to the socket as is, and libsoup
 * gives the connection up without reading a byte more.
 */
void vmcg_api_msg_refuse_raw(SoupServerMessage *msg, unsigned status, const char *reason,
			     const char *code, const char *message);
/** vmcg_api_msg_answering() - @msg is whole, or refused: no request deadline any more. */
void vmcg_api_msg_answering(SoupServerMessage *msg);

/* ---- api-stream.c ---- */

/*
 * A streamed answer is made this many bytes at a time (whole samples or
 * objects, so a chunk ends a little past it). 64 KiB: a few hundred
 * groups' worth of samples, enough that a scrape of 20,000 groups is a
 * few hundred main-loop turns, each short; and with at most
 * VMCG_API_CONNECTIONS_MAX connections, all such answers together hold
 * about 8 MiB whatever their clients do.
 */
#define VMCG_API_CHUNK_BYTES (64 * 1024)

/* One answer being made: where it stands, and how to make more of it. */
typedef struct VmcgApiProducer VmcgApiProducer;
struct VmcgApiProducer {
	/*
	 * Append the next part to @out, whole items, until @out->len is at
	 * least @want or the answer is complete. Returns true when it is.
	 * The tree may change between two calls, never during one.
	 */
	bool (*fill)(VmcgApiProducer *p, GString *out, gsize want);
	void (*free)(VmcgApiProducer *p);
};

/** vmcg_api_producer_free() - free @p (NULL is fine). */
void vmcg_api_producer_free(VmcgApiProducer *p);

/**
 * vmcg_api_producer_collect() - the whole answer of @p, made @chunk_bytes at a time
 *
 * For tests and benchmarks: frees @p; returns the text (NUL-terminated), its length in @ret_len.
 */
char *vmcg_api_producer_collect(VmcgApiProducer *p, gsize chunk_bytes, gsize *ret_len);

/**
 * vmcg_api_reply_stream() - answer @msg 200 with @p's text, a chunk at a time as the client reads
 *
 * Takes @p. HEAD gets the headers alone. At most one chunk is held at a
 * time (api-stream.c).
 */
void vmcg_api_reply_stream(SoupServerMessage *msg, const char *content_type, gboolean head,
			   VmcgApiProducer *p);

/* A walk over the groups of the subtree of @root, in tree order (pre-order, children in creation order). */
typedef struct VmcgApiGroupWalk {
	VmcgTree *tree;
	VmcgGroup *root; /* valid during one fill only: look it up again for the next */
} VmcgApiGroupWalk;

/** vmcg_api_group_walk_init() - @w over @root_path's subtree; false if there is no such group. */
bool vmcg_api_group_walk_init(VmcgApiGroupWalk *w, VmcgTree *tree, const char *root_path);
/* Cursor ops for a VmcgApiGroupWalk (ctx); keys are group paths. */
extern const VmcgApiWalkOps vmcg_api_group_walk_ops;
/* Cursor ops for the daemon's VMs (ctx: the VmcgDaemon), in its order; keys are VM names. */
extern const VmcgApiWalkOps vmcg_api_vm_walk_ops;

/* ---- api-render.c ---- */

/** The GET form of @g; its children as paths, or as objects if @nested. */
json_object *vmcg_api_group_to_json(VmcgApi *api, VmcgGroup *g, bool nested);
/**
 * vmcg_api_groups_producer_new() - GET /v1/groups (@path "/") or GET /v1/groups/<path>?recursive
 *
 * The nested JSON of the group at @path and its subtree, byte for byte as
 * vmcg_api_group_to_json(..., true) prints it with JSON_C_TO_STRING_PLAIN,
 * or PRETTY | SPACED if @pretty, and a newline; made a chunk at a time,
 * in tree order, with a cursor by path (api-cursor.h). If the group at
 * @path is removed before the end, the answer ends there, valid.
 */
VmcgApiProducer *vmcg_api_groups_producer_new(VmcgApi *api, const char *path, bool pretty);
/** vmcg_api_vms_producer_new() - GET /v1/vms: the array of VM objects, a chunk at a time. */
VmcgApiProducer *vmcg_api_vms_producer_new(VmcgApi *api, bool pretty);
/** The GET form of @vm. */
json_object *vmcg_api_vm_to_json(VmcgDvm *vm);
/** @g's vmpressure level now, as its API name ("none" when there is none). */
VmcgVmpressureLevel vmcg_api_group_vmpressure(VmcgApi *api, VmcgGroup *g);

/* ---- api-metrics.c ---- */

/** GET /metrics: the Prometheus text exposition of the tree and the VMs, streamed. */
void vmcg_api_handle_metrics(VmcgApi *api, SoupServerMessage *msg, gboolean head);
/** vmcg_api_metrics_producer_new() - the text of GET /metrics, a chunk at a time. */
VmcgApiProducer *vmcg_api_metrics_producer_new(VmcgApi *api);

/* ---- api-events.c ---- */

/** GET /v1/events: subscribe @msg to the daemon's events (HEAD: headers only). */
void vmcg_api_handle_events(VmcgApi *api, SoupServerMessage *msg, gboolean head);
/** End every event stream (vmcg_api_free()). */
void vmcg_api_events_close_all(VmcgApi *api);

#endif
