// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The etcd client (see etcd.h): one SoupSession, the endpoints, and the
 * requests in flight. Bodies and replies: etcd-reply.c.
 *
 * The body is read with soup_session_send_async() and a read loop rather
 * than soup_session_send_and_read_async(), which buffers whatever the
 * server sends: here a reply stops being read at VMCG_ETCD_REPLY_MAX_BYTES.
 */
#include <string.h>

#include <libsoup/soup.h>

#include "etcd.h"
#include "log.h"

/* 64 KiB: one read of a reply; most replies fit in one. */
#define READ_CHUNK_BYTES 65536

/*
 * 50 ms, doubling to 400 ms: the pause after every endpoint failed in one
 * round, before the next round. A cluster electing a leader answers "no
 * leader" at once (see hasleader below); an election takes about one
 * election timeout (etcd's default 1 s), so a few rounds fit in a request.
 */
#define BACKOFF_FIRST_MS 50
#define BACKOFF_MAX_MS 400

struct VmcgEtcd {
	SoupSession *session;
	GMainContext *context;
	char **endpoints; /* "http://host:port", no trailing slash */
	unsigned n_endpoints;
	unsigned current; /* where requests go first: the last that answered */
	unsigned timeout_ms;
	GTlsCertificate *client_cert; /* NULL: none */
	GQueue requests;	      /* Req in flight */
};

typedef struct {
	VmcgEtcd *etcd; /* NULL once the client is freed: drop silently */
	SoupSession *session;
	VmcgEtcdCall call;
	char *body;
	GError *early_error; /* a builder's error, delivered from an idle */
	bool repeatable;     /* safe to send again after an ambiguous failure */
	unsigned endpoint, tries;
	char *last_failure; /* why the last attempt that was retried failed */
	gint64 deadline_us; /* g_get_monotonic_time() when the request times out */
	unsigned backoff_ms;
	VmcgEtcdCallback cb;
	gpointer userdata;
	/* The attempt in flight. */
	SoupMessage *msg;
	GInputStream *stream;
	GByteArray *buf;
	GCancellable *cancel;
	GSource *timer;
	bool timed_out;
	GList link;
} Req;

static void attempt(Req *req);

static void attempt_clear(Req *req)
{
	if (req->timer) {
		g_source_destroy(req->timer);
		g_clear_pointer(&req->timer, g_source_unref);
	}
	g_clear_object(&req->msg);
	g_clear_object(&req->stream);
	g_clear_object(&req->cancel);
	g_clear_pointer(&req->buf, g_byte_array_unref);
	req->timed_out = false;
}

static void req_free(Req *req)
{
	attempt_clear(req);
	g_clear_error(&req->early_error);
	g_free(req->last_failure);
	g_free(req->body);
	g_object_unref(req->session);
	g_free(req);
}

/* The end of a request: the callback, once, then the request is gone. */
static void req_finish(Req *req, const VmcgEtcdResult *r, const GError *error)
{
	if (req->etcd) {
		g_queue_unlink(&req->etcd->requests, &req->link);
		if (!error)
			req->etcd->current = req->endpoint;
		req->cb(r, error, req->userdata);
	}
	req_free(req);
}

/*
 * Errors etcd gives before it proposes anything (etcdserver/api/v3rpc/
 * rpctypes/error.go): a mutation that got one was not applied, so the
 * next endpoint may have it.
 */
static bool before_proposal(const GError *e)
{
	static const char *const msgs[] = {
		"etcdserver: no leader",
		"etcdserver: leader changed",
		"etcdserver: not capable",
		"etcdserver: too many requests",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(msgs); i++)
		if (strstr(e->message, msgs[i]))
			return true;
	return false;
}

/* A transport error after which nothing reached the server. */
static bool not_sent(const GError *e)
{
	return g_error_matches(e, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED) ||
	       g_error_matches(e, G_IO_ERROR, G_IO_ERROR_HOST_UNREACHABLE) ||
	       g_error_matches(e, G_IO_ERROR, G_IO_ERROR_NETWORK_UNREACHABLE) ||
	       e->domain == G_RESOLVER_ERROR || e->domain == G_TLS_ERROR;
}

static gboolean backoff_cb(gpointer data)
{
	Req *req = data;

	g_clear_pointer(&req->timer, g_source_unref);
	attempt(req);
	return G_SOURCE_REMOVE;
}

/*
 * This attempt failed with @error (a VMCG_ETCD_ERROR); @may_retry: the
 * failure allows another attempt. The next endpoint is tried at once;
 * after a round of all of them, after a pause; until the deadline. Takes
 * @error.
 */
static void attempt_failed(Req *req, GError *error, bool may_retry)
{
	VmcgEtcd *etcd = req->etcd;
	gint64 left_us = req->deadline_us - g_get_monotonic_time();

	attempt_clear(req);
	if (!etcd) {
		g_error_free(error);
		req_free(req);
		return;
	}
	if (may_retry && left_us > 0) {
		vmcg_debug("etcd: %s", error->message);
		g_free(req->last_failure);
		req->last_failure = g_strdup(error->message);
		g_error_free(error);
		req->endpoint = (req->endpoint + 1) % etcd->n_endpoints;
		if (req->tries % etcd->n_endpoints) {
			attempt(req);
			return;
		}
		req->backoff_ms = req->backoff_ms ? MIN(req->backoff_ms * 2, BACKOFF_MAX_MS)
						  : BACKOFF_FIRST_MS;
		req->timer = g_timeout_source_new(
			(guint)MIN((gint64)req->backoff_ms, left_us / 1000 + 1));
		g_source_set_callback(req->timer, backoff_cb, req, NULL);
		g_source_attach(req->timer, etcd->context);
		return;
	}
	if (may_retry)
		g_prefix_error(&error, "etcd: no answer within %u ms from %u endpoint(s); last: ",
			       etcd->timeout_ms, etcd->n_endpoints);
	req_finish(req, NULL, error);
	g_error_free(error);
}

/* A transport failure of this attempt (takes @e). */
static void transport_failed(Req *req, GError *e)
{
	const char *url = req->etcd ? req->etcd->endpoints[req->endpoint] : "etcd";
	GError *error;
	bool retry;

	if (req->timed_out) {
		/* The request's deadline passed: no time for another attempt.
		 * When an earlier attempt was refused, that refusal is the
		 * cause an operator needs first (a bad certificate, say). */
		unsigned timeout_ms = req->etcd ? req->etcd->timeout_ms : 0;

		if (req->last_failure)
			error = g_error_new(VMCG_ETCD_ERROR, VMCG_ETCD_ERROR_TIMEOUT,
					    "%s (retried until the %u ms deadline of %s passed)",
					    req->last_failure, timeout_ms,
					    vmcg_etcd_call_path(req->call));
		else
			error = g_error_new(VMCG_ETCD_ERROR, VMCG_ETCD_ERROR_TIMEOUT,
					    "etcd: %s: no answer to %s within %u ms", url,
					    vmcg_etcd_call_path(req->call), timeout_ms);
		retry = false;
	} else {
		error = g_error_new(VMCG_ETCD_ERROR, VMCG_ETCD_ERROR_UNAVAILABLE, "etcd: %s: %s",
				    url, e->message);
		retry = req->repeatable || not_sent(e);
	}
	g_error_free(e);
	attempt_failed(req, error, retry);
}

static void reply_read(Req *req)
{
	g_autoptr(VmcgEtcdResult) r = NULL;
	GError *error = NULL;
	unsigned status = soup_message_get_status(req->msg);
	int grpc = -1;

	if (vmcg_etcd_parse_reply(req->call, status, (const char *)req->buf->data, req->buf->len,
				  &r, &grpc, &error)) {
		attempt_clear(req);
		req_finish(req, r, NULL);
		return;
	}
	if (status >= 500 || error->code == VMCG_ETCD_ERROR_UNAVAILABLE) {
		g_prefix_error(&error,
			       "%s: ", req->etcd ? req->etcd->endpoints[req->endpoint] : "etcd");
		attempt_failed(req, error, req->repeatable || before_proposal(error));
		return;
	}
	attempt_failed(req, error, false);
}

static void read_cb(GObject *source, GAsyncResult *res, gpointer data)
{
	Req *req = data;
	GError *e = NULL;
	g_autoptr(GBytes) bytes = g_input_stream_read_bytes_finish(G_INPUT_STREAM(source), res, &e);

	if (!bytes) {
		transport_failed(req, e);
		return;
	}
	if (!req->etcd) {
		req_free(req);
		return;
	}
	if (g_bytes_get_size(bytes) == 0) {
		reply_read(req);
		return;
	}
	if (req->buf->len + g_bytes_get_size(bytes) > VMCG_ETCD_REPLY_MAX_BYTES) {
		attempt_failed(req,
			       g_error_new(VMCG_ETCD_ERROR, VMCG_ETCD_ERROR_BAD_REPLY,
					   "etcd: %s: a reply above %u bytes",
					   req->etcd->endpoints[req->endpoint],
					   VMCG_ETCD_REPLY_MAX_BYTES),
			       false);
		return;
	}
	g_byte_array_append(req->buf, g_bytes_get_data(bytes, NULL), g_bytes_get_size(bytes));
	g_input_stream_read_bytes_async(req->stream, READ_CHUNK_BYTES, G_PRIORITY_DEFAULT,
					req->cancel, read_cb, req);
}

static void sent_cb(GObject *source, GAsyncResult *res, gpointer data)
{
	Req *req = data;
	GError *e = NULL;
	GInputStream *stream = soup_session_send_finish(SOUP_SESSION(source), res, &e);

	if (!stream) {
		transport_failed(req, e);
		return;
	}
	req->stream = stream;
	if (!req->etcd) {
		req_free(req);
		return;
	}
	req->buf = g_byte_array_new();
	g_input_stream_read_bytes_async(req->stream, READ_CHUNK_BYTES, G_PRIORITY_DEFAULT,
					req->cancel, read_cb, req);
}

static gboolean timeout_cb(gpointer data)
{
	Req *req = data;

	req->timed_out = true;
	g_cancellable_cancel(req->cancel);
	g_clear_pointer(&req->timer, g_source_unref);
	return G_SOURCE_REMOVE;
}

static void attempt(Req *req)
{
	VmcgEtcd *etcd = req->etcd;
	g_autofree char *uri =
		g_strconcat(etcd->endpoints[req->endpoint], vmcg_etcd_call_path(req->call), NULL);
	g_autoptr(GBytes) body = g_bytes_new(req->body, strlen(req->body));
	gint64 left_us = req->deadline_us - g_get_monotonic_time();

	req->tries++;
	req->msg = soup_message_new(SOUP_METHOD_POST, uri);
	soup_message_set_request_body_from_bytes(req->msg, "application/json", body);
	/*
	 * gRPC metadata "hasleader" (grpc-gateway forwards Grpc-Metadata-*
	 * headers): a member without a leader answers "etcdserver: no leader"
	 * at once (verified on etcd 3.4.23) instead of holding the request
	 * until its own timeout; nothing was proposed, so any request may go on
	 * to the next endpoint.
	 */
	soup_message_headers_replace(soup_message_get_request_headers(req->msg),
				     "Grpc-Metadata-hasleader", "true");
	if (etcd->client_cert)
		soup_message_set_tls_client_certificate(req->msg, etcd->client_cert);
	req->cancel = g_cancellable_new();
	req->timer = g_timeout_source_new((guint)MAX(left_us / 1000, 1));
	g_source_set_callback(req->timer, timeout_cb, req, NULL);
	g_source_attach(req->timer, etcd->context);
	soup_session_send_async(etcd->session, req->msg, G_PRIORITY_DEFAULT, req->cancel, sent_cb,
				req);
}

static gboolean early_error_cb(gpointer data)
{
	Req *req = data;
	GError *e = g_steal_pointer(&req->early_error);

	req_finish(req, NULL, e);
	g_error_free(e);
	return G_SOURCE_REMOVE;
}

/* Starts a request of @body (NULL: @build_error says why; takes both). */
static void submit(VmcgEtcd *etcd, VmcgEtcdCall call, char *body, GError *build_error,
		   bool repeatable, VmcgEtcdCallback cb, gpointer userdata)
{
	Req *req = g_new0(Req, 1);

	req->etcd = etcd;
	req->session = g_object_ref(etcd->session);
	req->call = call;
	req->body = body;
	req->repeatable = repeatable;
	req->endpoint = etcd->current;
	req->deadline_us = g_get_monotonic_time() + (gint64)etcd->timeout_ms * 1000;
	req->cb = cb;
	req->userdata = userdata;
	req->link.data = req;
	g_queue_push_tail_link(&etcd->requests, &req->link);
	if (!body) {
		GSource *idle = g_idle_source_new();

		req->early_error = build_error;
		g_source_set_callback(idle, early_error_cb, req, NULL);
		g_source_attach(idle, etcd->context);
		g_source_unref(idle);
		return;
	}
	attempt(req);
}

void vmcg_etcd_process_init(void)
{
	g_setenv("SOUP_FORCE_HTTP1", "1", FALSE);
}

VmcgEtcd *vmcg_etcd_new(const char *const *endpoints, const VmcgEtcdTls *tls, GError **error)
{
	g_autoptr(VmcgEtcd) etcd = g_new0(VmcgEtcd, 1);
	unsigned n = endpoints ? g_strv_length((char **)endpoints) : 0;

	g_queue_init(&etcd->requests);
	etcd->context = g_main_context_ref_thread_default();
	etcd->timeout_ms = VMCG_ETCD_TIMEOUT_DEFAULT_MS;
	/* No proxy: etcd is on the cluster's network, whatever http_proxy says. */
	etcd->session =
		soup_session_new_with_options("proxy-resolver", NULL, "user-agent", "vmcgd", NULL);
	if (n == 0 || n > VMCG_ETCD_ENDPOINTS_MAX) {
		g_set_error(error, VMCG_ETCD_ERROR, VMCG_ETCD_ERROR_INVALID,
			    "etcd: %u endpoints (1 to %d)", n, VMCG_ETCD_ENDPOINTS_MAX);
		return NULL;
	}
	etcd->endpoints = g_new0(char *, n + 1);
	for (unsigned i = 0; i < n; i++) {
		if (!vmcg_etcd_endpoint_parse(endpoints[i], &etcd->endpoints[i], error))
			return NULL;
		etcd->n_endpoints++;
	}
	if (tls && tls->ca_file) {
		g_autoptr(GTlsDatabase) db = g_tls_file_database_new(tls->ca_file, error);

		if (!db)
			return NULL;
		soup_session_set_tls_database(etcd->session, db);
	}
	if (tls && (tls->cert_file || tls->key_file)) {
		if (!tls->cert_file || !tls->key_file) {
			g_set_error(error, VMCG_ETCD_ERROR, VMCG_ETCD_ERROR_INVALID,
				    "etcd: a client certificate needs both its cert and key files");
			return NULL;
		}
		etcd->client_cert =
			g_tls_certificate_new_from_files(tls->cert_file, tls->key_file, error);
		if (!etcd->client_cert)
			return NULL;
	}
	return g_steal_pointer(&etcd);
}

void vmcg_etcd_free(VmcgEtcd *etcd)
{
	Req *req;

	if (!etcd)
		return;
	/* A request in flight holds its own ref on the session for its callback. */
	while ((req = g_queue_pop_head(&etcd->requests))) {
		req->etcd = NULL;
		if (req->msg) {
			/* In soup's hands: its callback, cancelled, frees it. */
			if (req->timer) {
				g_source_destroy(req->timer);
				g_clear_pointer(&req->timer, g_source_unref);
			}
			g_cancellable_cancel(req->cancel);
		} else if (!req->early_error) {
			req_free(req); /* pausing between rounds */
		}
		/* A request with an early error: its idle still runs and frees it. */
	}
	g_clear_object(&etcd->session);
	g_clear_object(&etcd->client_cert);
	g_strfreev(etcd->endpoints);
	g_main_context_unref(etcd->context);
	g_free(etcd);
}

void vmcg_etcd_set_timeout(VmcgEtcd *etcd, unsigned timeout_ms)
{
	etcd->timeout_ms = timeout_ms ? timeout_ms : VMCG_ETCD_TIMEOUT_DEFAULT_MS;
}

unsigned vmcg_etcd_current_endpoint(const VmcgEtcd *etcd)
{
	return etcd->current;
}

void vmcg_etcd_range(VmcgEtcd *etcd, const char *key, bool prefix, VmcgEtcdCallback cb,
		     gpointer userdata)
{
	GError *e = NULL;
	char *body = vmcg_etcd_build_range(key, prefix, &e);

	submit(etcd, VMCG_ETCD_CALL_RANGE, body, e, true, cb, userdata);
}

void vmcg_etcd_put(VmcgEtcd *etcd, const char *key, const void *value, size_t value_len,
		   int64_t lease, VmcgEtcdCallback cb, gpointer userdata)
{
	GError *e = NULL;
	char *body = vmcg_etcd_build_put(key, value, value_len, lease, &e);

	submit(etcd, VMCG_ETCD_CALL_PUT, body, e, false, cb, userdata);
}

void vmcg_etcd_delete(VmcgEtcd *etcd, const char *key, bool prefix, VmcgEtcdCallback cb,
		      gpointer userdata)
{
	GError *e = NULL;
	char *body = vmcg_etcd_build_delete(key, prefix, &e);

	submit(etcd, VMCG_ETCD_CALL_DELETE, body, e, false, cb, userdata);
}

void vmcg_etcd_txn(VmcgEtcd *etcd, const VmcgEtcdCompare *compares, size_t n_compares,
		   const VmcgEtcdOp *success, size_t n_success, const VmcgEtcdOp *failure,
		   size_t n_failure, VmcgEtcdCallback cb, gpointer userdata)
{
	GError *e = NULL;
	char *body = vmcg_etcd_build_txn(compares, n_compares, success, n_success, failure,
					 n_failure, &e);

	submit(etcd, VMCG_ETCD_CALL_TXN, body, e, false, cb, userdata);
}

void vmcg_etcd_lease_grant(VmcgEtcd *etcd, int64_t ttl_s, VmcgEtcdCallback cb, gpointer userdata)
{
	GError *e = NULL;
	char *body = vmcg_etcd_build_lease_grant(ttl_s, &e);

	submit(etcd, VMCG_ETCD_CALL_LEASE_GRANT, body, e, false, cb, userdata);
}

void vmcg_etcd_lease_keepalive(VmcgEtcd *etcd, int64_t id, VmcgEtcdCallback cb, gpointer userdata)
{
	GError *e = NULL;
	char *body = vmcg_etcd_build_lease_id(id, &e);

	submit(etcd, VMCG_ETCD_CALL_LEASE_KEEPALIVE, body, e, true, cb, userdata);
}

void vmcg_etcd_lease_revoke(VmcgEtcd *etcd, int64_t id, VmcgEtcdCallback cb, gpointer userdata)
{
	GError *e = NULL;
	char *body = vmcg_etcd_build_lease_id(id, &e);

	submit(etcd, VMCG_ETCD_CALL_LEASE_REVOKE, body, e, true, cb, userdata);
}

void vmcg_etcd_status(VmcgEtcd *etcd, VmcgEtcdCallback cb, gpointer userdata)
{
	submit(etcd, VMCG_ETCD_CALL_STATUS, vmcg_etcd_build_status(), NULL, true, cb, userdata);
}
