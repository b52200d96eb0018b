/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A thin asynchronous etcd v3 client: the JSON gateway of etcd 3.4
 * (POST /v3/...) over HTTP with libsoup, on the main loop.
 *
 * Debian has no C client of etcd's v3 API (gRPC), and vmcgd already links
 * libsoup and json-c; the gateway is part of every etcd 3.4 server. The
 * bodies and replies are built and parsed by etcd-reply.c (pure); this
 * module only sends them and picks the endpoint.
 *
 * Every operation calls its callback exactly once, on the GMainContext
 * that was thread-default when vmcg_etcd_new() ran, never from inside the
 * call that started it: with the result (borrowed for the callback) and a
 * NULL error, or with a NULL result and the error (VMCG_ETCD_ERROR: a
 * transport failure is UNAVAILABLE, no answer in time TIMEOUT).
 * vmcg_etcd_free() drops every request in flight without calling its
 * callback.
 *
 * Endpoints: a request goes to the endpoint that answered last; when it
 * cannot be reached, or answers 5xx or gRPC Unavailable, the next one is
 * tried at once, and after a round of all of them, again after a pause
 * (50 ms doubling to 400 ms), until the request's timeout. Every request
 * asks for a member with a leader (gRPC metadata hasleader=true), so a
 * member that lost its leader says "etcdserver: no leader" at once
 * rather than holding the request.
 *
 * A request that etcd may already have applied is not sent again: put,
 * delete, txn and lease grant move on only when the connection was
 * refused (nothing was sent) or etcd answered an error it gives before
 * any proposal ("etcdserver: no leader", "leader changed", "not
 * capable", "too many requests"); range, status, keepalive and revoke
 * (safe to repeat) move on after any of these failures. Otherwise the
 * error is the caller's: a put may have been applied, and only the
 * caller knows whether to retry (a txn comparing the revision it read is
 * safe to retry). One such case: a put sent to a follower just after the
 * leader died is forwarded to the dead leader and lost; the follower
 * holds it until etcd's own request timeout, so the client reports
 * TIMEOUT, not a silent retry.
 *
 * Timeout: the whole request, every attempt and pause included (default
 * 2 s: etcd's own request timeout is 5 s, but vmcgd's quota loop would
 * rather retry on its next tick than wait).
 *
 * No watch: a first version polls its prefix with vmcg_etcd_range() and
 * compares revisions. A watch (/v3/watch, a stream) is for later.
 */
#ifndef VMCG_DAEMON_ETCD_H
#define VMCG_DAEMON_ETCD_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "etcd-reply.h"

typedef struct VmcgEtcd VmcgEtcd;

/* TLS: PEM files; NULL members are not used. */
typedef struct {
	const char *ca_file;   /* the CA that signed the members' certificates */
	const char *cert_file; /* the client's certificate (with key_file) */
	const char *key_file;
} VmcgEtcdTls;

/* 2000 ms: the default request timeout (see above). */
#define VMCG_ETCD_TIMEOUT_DEFAULT_MS 2000

/*
 * @r: the result (NULL on error), owned by the client, valid during the
 * callback only; @error: NULL on success.
 */
typedef void (*VmcgEtcdCallback)(const VmcgEtcdResult *r, const GError *error, gpointer userdata);

/**
 * vmcg_etcd_process_init() - call once from main(), before any thread
 * starts (it sets an environment variable). It makes libsoup speak
 * HTTP/1.1 to etcd: over TLS, etcd offers HTTP/2 (ALPN), and libsoup
 * 3.2's HTTP/2 client (Debian 12) never completes a request whose
 * connection failed its handshake (a member that wants a client
 * certificate the client lacks) nor honours its cancellation, so the
 * request would hang past its timeout; HTTP/1.1 fails at once. libsoup
 * reads SOUP_FORCE_HTTP1 once, at its first connection; one already set
 * is kept.
 */
void vmcg_etcd_process_init(void);

/**
 * vmcg_etcd_new() - a client of the cluster at @endpoints
 * @endpoints: NULL-terminated, each "http://host:port" or
 *             "https://host:port" (no path); at least one, at most
 *             VMCG_ETCD_ENDPOINTS_MAX (vmcg_etcd_split_endpoints() splits
 *             the config's comma-separated list)
 * @tls: CA and client certificate for https endpoints; NULL for the
 *       system's CAs and no client certificate
 * @error: VMCG_ETCD_ERROR_INVALID (a bad endpoint) or the GError of
 *         loading the TLS files
 *
 * Connects to nothing yet. Returns NULL on error.
 */
VmcgEtcd *vmcg_etcd_new(const char *const *endpoints, const VmcgEtcdTls *tls, GError **error);

/* Drops the requests in flight (no callbacks) and frees @etcd; NULL is fine. */
void vmcg_etcd_free(VmcgEtcd *etcd);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VmcgEtcd, vmcg_etcd_free)

/* Sets the timeout of later requests (0: the default). */
void vmcg_etcd_set_timeout(VmcgEtcd *etcd, unsigned timeout_ms);

/* The index in @endpoints of the endpoint requests go to now. */
unsigned vmcg_etcd_current_endpoint(const VmcgEtcd *etcd);

/* The key @key, or every key under the prefix @key when @prefix. */
void vmcg_etcd_range(VmcgEtcd *etcd, const char *key, bool prefix, VmcgEtcdCallback cb,
		     gpointer userdata);

/* Puts @value at @key, bound to @lease (0: none). */
void vmcg_etcd_put(VmcgEtcd *etcd, const char *key, const void *value, size_t value_len,
		   int64_t lease, VmcgEtcdCallback cb, gpointer userdata);

/* Deletes @key, or every key under the prefix @key when @prefix. */
void vmcg_etcd_delete(VmcgEtcd *etcd, const char *key, bool prefix, VmcgEtcdCallback cb,
		      gpointer userdata);

/*
 * If every compare holds, runs @success, else @failure; r->succeeded says
 * which. The arrays and what they point to are copied (the body is built
 * before this returns).
 */
void vmcg_etcd_txn(VmcgEtcd *etcd, const VmcgEtcdCompare *compares, size_t n_compares,
		   const VmcgEtcdOp *success, size_t n_success, const VmcgEtcdOp *failure,
		   size_t n_failure, VmcgEtcdCallback cb, gpointer userdata);

/* A new lease of @ttl_s seconds: r->lease_id, r->ttl_s. */
void vmcg_etcd_lease_grant(VmcgEtcd *etcd, int64_t ttl_s, VmcgEtcdCallback cb, gpointer userdata);

/*
 * Renews lease @id once: r->ttl_s. A lease that expired or was revoked is
 * VMCG_ETCD_ERROR_NOT_FOUND.
 */
void vmcg_etcd_lease_keepalive(VmcgEtcd *etcd, int64_t id, VmcgEtcdCallback cb, gpointer userdata);

/* Revokes lease @id, deleting its keys; an unknown lease is NOT_FOUND. */
void vmcg_etcd_lease_revoke(VmcgEtcd *etcd, int64_t id, VmcgEtcdCallback cb, gpointer userdata);

/* The answering member's status: r->member_id, r->leader, r->version. */
void vmcg_etcd_status(VmcgEtcd *etcd, VmcgEtcdCallback cb, gpointer userdata);

#endif
