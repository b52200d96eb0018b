// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The API's connections (docs/api.md, "Limits"): vmcgd's own accept loop on
 * the listening socket, admission by the peer's credentials, and the
 * request deadlines. libsoup gets each admitted connection as a stream
 * (soup_server_accept_iostream()) and does HTTP; the decisions are in
 * api-limits.c.
 *
 * Why not soup_server_listen_socket(): libsoup 3.2's listener removes its
 * watch on the first failed accept (soup-listener.c, listen_watch():
 * "if (!socket) return G_SOURCE_REMOVE"), so one EMFILE ended the API for
 * good, silently; it also kept a reference to every accepted GSocket.
 * And admission must be decided before libsoup reads a byte, with the
 * peer's credentials, which only the accept loop has.
 */
#include <errno.h>
#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <glib-unix.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api-limits.h"
#include "api-private.h"

/*
 * At most this many accepts per wakeup: a flood of connects is served in
 * turns with the daemon's other sources (QMP, the tick), not ahead of them.
 */
#define ACCEPT_BATCH 32

/* At most one line per kind of trouble this often; the lines say how many were not logged. */
#define LOG_INTERVAL_USEC (10 * G_USEC_PER_SEC)

typedef enum Phase {
	PHASE_HEADERS, /* accepted: the request line and headers are due */
	PHASE_BODY,    /* headers read and accepted: the body is due */
	PHASE_ANSWER,  /* the request is whole (or refused): no deadline */
} Phase;

typedef struct Conn {
	VmcgApi *api;
	GList link;		   /* in api->conns */
	GSocket *sock;		   /* ours; libsoup's stream wraps it */
	GSocketConnection *stream; /* libsoup's (weak): gone, the connection is over */
	GSocketAddress *remote;	   /* ours; what libsoup hands back per message */
	uid_t uid;
	bool privileged;
	Phase phase;
	guint deadline_id;
} Conn;

static GQuark conn_quark(void)
{
	static GQuark q;

	if (!q)
		q = g_quark_from_static_string("vmcg-api-conn");
	return q;
}

/* Should a line about @what be logged now? @last: when one last was. */
static bool log_now(gint64 *last)
{
	gint64 now = g_get_monotonic_time();

	if (*last && now - *last < LOG_INTERVAL_USEC)
		return false;
	*last = now;
	return true;
}

/* ---- counts ---- */

static unsigned uid_count(VmcgApi *api, uid_t uid)
{
	return GPOINTER_TO_UINT(g_hash_table_lookup(api->uid_conns, GUINT_TO_POINTER(uid)));
}

static void uid_count_add(VmcgApi *api, uid_t uid, int delta)
{
	unsigned n = uid_count(api, uid) + (unsigned)delta;

	if (n)
		g_hash_table_insert(api->uid_conns, GUINT_TO_POINTER(uid), GUINT_TO_POINTER(n));
	else
		g_hash_table_remove(api->uid_conns, GUINT_TO_POINTER(uid));
}

/* ---- a connection ---- */

static void on_stream_gone(gpointer userdata, GObject *where_the_stream_was);

static void conn_release(Conn *c)
{
	VmcgApi *api = c->api;

	g_queue_unlink(&api->conns, &c->link);
	if (!c->privileged) {
		api->conns_unprivileged--;
		uid_count_add(api, c->uid, -1);
	}
	g_clear_handle_id(&c->deadline_id, g_source_remove);
	if (c->stream)
		g_object_weak_unref(G_OBJECT(c->stream), on_stream_gone, c);
	g_object_set_qdata(G_OBJECT(c->remote), conn_quark(), NULL);
	g_object_unref(c->remote);
	g_object_unref(c->sock);
	g_free(c);
}

/* libsoup is done with the connection: it closed the stream and let it go. */
static void on_stream_gone(gpointer userdata, GObject *where_the_stream_was)
{
	Conn *c = userdata;

	(void)where_the_stream_was;
	c->stream = NULL;
	conn_release(c);
}

/*
 * Connections whose socket libsoup closed but whose stream it still holds.
 * Not expected (every connection serves one request, then libsoup lets
 * it go), but a stream kept by a libsoup bug must not hold a place under
 * the caps forever. Only run when a cap is reached.
 */
static void sweep_closed(VmcgApi *api)
{
	GList *l, *next;

	for (l = api->conns.head; l; l = next) {
		Conn *c = l->data;

		next = l->next;
		if (g_socket_is_closed(c->sock))
			conn_release(c);
	}
}

/*
 * A short answer written straight to the socket, before or instead of
 * libsoup: the socket's buffer is empty (nothing was written to it yet),
 * so a few hundred bytes fit without blocking; if they do not, the client
 * still sees its connection close.
 */
static void send_raw_error(int fd, unsigned status, const char *reason, const char *extra_headers,
			   const char *code, const char *message)
{
	g_autofree char *body = g_strdup_printf(
		"{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n", code, message);
	g_autofree char *text = g_strdup_printf("HTTP/1.1 %u %s\r\nServer: vmcgd\r\n"
						"Connection: close\r\n%s"
						"Content-Type: application/json\r\n"
						"Content-Length: %zu\r\n\r\n%s",
						status, reason, extra_headers, strlen(body), body);

	(void)!send(fd, text, strlen(text), MSG_DONTWAIT | MSG_NOSIGNAL);
}

static gboolean on_deadline(gpointer userdata)
{
	Conn *c = userdata;
	VmcgApi *api = c->api;
	bool headers = c->phase == PHASE_HEADERS;

	c->deadline_id = 0;
	api->deadlines_missed++;
	if (log_now(&api->deadline_logged_usec))
		g_message("api: a connection of uid %u sent no whole request %s in %d s: closing "
			  "(%" G_GUINT64_FORMAT " so far)",
			  (unsigned)c->uid, headers ? "line and headers" : "body",
			  headers ? VMCG_API_HEADER_DEADLINE_SEC : VMCG_API_BODY_DEADLINE_SEC,
			  api->deadlines_missed);
	/* libsoup is reading, not writing: the answer is ours to give. */
	send_raw_error(g_socket_get_fd(c->sock), 408, "Request Timeout", "", "timeout",
		       headers ? "the request line and headers must arrive within 10 s"
			       : "the request body must arrive within 30 s of the headers");
	/* libsoup's read sees the end of the stream and ends the connection. */
	g_socket_shutdown(c->sock, TRUE, TRUE, NULL);
	return G_SOURCE_REMOVE;
}

static void conn_set_phase(Conn *c, Phase phase)
{
	c->phase = phase;
	g_clear_handle_id(&c->deadline_id, g_source_remove);
	if (phase == PHASE_HEADERS)
		c->deadline_id =
			g_timeout_add_seconds(VMCG_API_HEADER_DEADLINE_SEC, on_deadline, c);
	else if (phase == PHASE_BODY)
		c->deadline_id = g_timeout_add_seconds(VMCG_API_BODY_DEADLINE_SEC, on_deadline, c);
}

static Conn *conn_of(SoupServerMessage *msg)
{
	GSocketAddress *remote = soup_server_message_get_remote_address(msg);

	return remote ? g_object_get_qdata(G_OBJECT(remote), conn_quark()) : NULL;
}

GSocket *vmcg_api_msg_socket(SoupServerMessage *msg)
{
	Conn *c = conn_of(msg);

	return c ? c->sock : NULL;
}

void vmcg_api_msg_got_headers(SoupServerMessage *msg)
{
	Conn *c = conn_of(msg);

	if (c && c->phase == PHASE_HEADERS)
		conn_set_phase(c, PHASE_BODY);
}

void vmcg_api_msg_answering(SoupServerMessage *msg)
{
	Conn *c = conn_of(msg);

	if (c)
		conn_set_phase(c, PHASE_ANSWER);
}

void vmcg_api_msg_refuse_raw(SoupServerMessage *msg, unsigned status, const char *reason,
			     const char *code, const char *message)
{
	Conn *c = conn_of(msg);
	g_autoptr(GIOStream) stream = NULL;

	if (!c)
		return;
	conn_set_phase(c, PHASE_ANSWER);
	send_raw_error(g_socket_get_fd(c->sock), status, reason, "", code, message);
	/*
	 * libsoup lets go of the connection (as for a WebSocket upgrade) and
	 * never reads the body with the framing it misread; closing the
	 * stream closes the socket.
	 */
	stream = soup_server_message_steal_connection(msg);
	if (stream)
		g_io_stream_close(stream, NULL, NULL);
	else
		g_socket_shutdown(c->sock, TRUE, TRUE, NULL);
}

guint vmcg_api_conn_count(VmcgApi *api)
{
	return api->conns.length;
}

/* ---- accepting ---- */

static void refuse(VmcgApi *api, int fd, uid_t uid, VmcgApiAdmit why)
{
	g_autofree char *message =
		g_strdup_printf("%s (%d in all, %d kept for root and the write group, %d per "
				"user): try again later",
				vmcg_api_admit_str(why), VMCG_API_CONNECTIONS_MAX,
				VMCG_API_CONNECTIONS_RESERVED, VMCG_API_CONNECTIONS_PER_UID);

	api->conns_refused++;
	if (log_now(&api->refused_logged_usec))
		g_warning("api: refusing a connection of uid %u: %s (%" G_GUINT64_FORMAT
			  " refused so far)",
			  (unsigned)uid, vmcg_api_admit_str(why), api->conns_refused);
	send_raw_error(fd, 503, "Service Unavailable", "Retry-After: 1\r\n", "busy", message);
}

/* A new connection, @fd ours: admit it and hand it to libsoup, or refuse it. */
static void conn_accept(VmcgApi *api, int fd)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GSocket) sock = NULL;
	g_autoptr(GSocketConnection) stream = NULL;
	struct ucred uc = { .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	socklen_t len = sizeof(uc);
	VmcgApiConnCounts counts;
	VmcgApiAdmit verdict;
	Conn *c;

	/* No credentials (not expected on AF_UNIX): an unknown peer, neither root nor the group. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
		uc.uid = (uid_t)-1;
	sock = g_socket_new_from_fd(fd, &error);
	if (!sock) {
		if (log_now(&api->accept_logged_usec))
			g_warning("api: cannot use an accepted connection: %s", error->message);
		close(fd);
		return;
	}
	c = g_new0(Conn, 1);
	c->api = api;
	c->uid = uc.uid;
	c->privileged = uc.uid != (uid_t)-1 && vmcg_api_peer_may_write(api, sock, NULL);
	counts = (VmcgApiConnCounts){ api->conns.length, api->conns_unprivileged,
				      c->privileged ? 0 : uid_count(api, c->uid) };
	verdict = vmcg_api_admit(&counts, c->privileged);
	if (verdict != VMCG_API_ADMIT) {
		sweep_closed(api);
		counts = (VmcgApiConnCounts){ api->conns.length, api->conns_unprivileged,
					      c->privileged ? 0 : uid_count(api, c->uid) };
		verdict = vmcg_api_admit(&counts, c->privileged);
	}
	if (verdict != VMCG_API_ADMIT) {
		refuse(api, fd, c->uid, verdict);
		g_free(c);
		g_socket_close(sock, NULL);
		return;
	}

	c->sock = g_object_ref(sock);
	c->link.data = c;
	g_queue_push_tail_link(&api->conns, &c->link);
	if (!c->privileged) {
		api->conns_unprivileged++;
		uid_count_add(api, c->uid, 1);
	}
	/* A connection that makes no progress at all (one that stopped reading its answer). */
	g_socket_set_timeout(sock, VMCG_API_IDLE_TIMEOUT_SEC);
	conn_set_phase(c, PHASE_HEADERS);
	/*
	 * libsoup hands this address back with every message of the
	 * connection (soup_server_message_get_remote_address()): it is how a
	 * message finds its connection. A unix peer has no address of its own.
	 */
	c->remote = g_unix_socket_address_new_with_type("", 0, G_UNIX_SOCKET_ADDRESS_ANONYMOUS);
	g_object_set_qdata(G_OBJECT(c->remote), conn_quark(), c);
	stream = g_socket_connection_factory_create_connection(sock);
	c->stream = stream;
	g_object_weak_ref(G_OBJECT(stream), on_stream_gone, c);
	/* Starts the first request at once: on_request_started() sees it, with c findable. */
	soup_server_accept_iostream(api->server, G_IO_STREAM(stream), api->local_addr, c->remote,
				    NULL);
}

static gboolean on_listen(int fd, GIOCondition cond, gpointer userdata);

static gboolean on_backoff_done(gpointer userdata)
{
	VmcgApi *api = userdata;

	api->backoff_id = 0;
	api->listen_id = g_unix_fd_add(g_socket_get_fd(api->listen_sock), G_IO_IN, on_listen, api);
	return G_SOURCE_REMOVE;
}

/*
 * accept() failed for lack of something (descriptors, memory) or for a
 * reason we do not know: stop watching the socket (it stays readable, a
 * watch would spin) and try again later. Pending clients wait in the
 * backlog. One line when an episode starts, one when it ends.
 */
static void backoff(VmcgApi *api, int err)
{
	if (!api->backoff_msec) {
		api->backoff_since_usec = g_get_monotonic_time();
		api->backoff_failures = 0;
		api->backoff_logged = log_now(&api->backoff_logged_usec);
		if (api->backoff_logged)
			g_warning("api: cannot accept connections: %s; trying again every %d ms "
				  "to %d s",
				  g_strerror(err), VMCG_API_BACKOFF_MIN_MSEC,
				  VMCG_API_BACKOFF_MAX_MSEC / 1000);
	}
	api->backoff_failures++;
	api->backoff_msec = vmcg_api_backoff_next(api->backoff_msec);
	api->backoff_id = g_timeout_add(api->backoff_msec, on_backoff_done, api);
}

static void backoff_over(VmcgApi *api)
{
	if (!api->backoff_msec)
		return;
	if (api->backoff_logged)
		g_message("api: accepting connections again after %.1f s (%" G_GUINT64_FORMAT
			  " tries failed)",
			  (double)(g_get_monotonic_time() - api->backoff_since_usec) /
				  G_USEC_PER_SEC,
			  api->backoff_failures);
	api->backoff_msec = 0;
}

static gboolean on_listen(int fd, GIOCondition cond, gpointer userdata)
{
	VmcgApi *api = userdata;

	(void)cond;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (cfd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			api->listen_id = 0;
			backoff(api, errno);
			return G_SOURCE_REMOVE;
		}
		backoff_over(api);
		conn_accept(api, cfd);
	}
	return G_SOURCE_CONTINUE;
}

gboolean vmcg_api_listen(VmcgApi *api, GSocket *sock, GError **error)
{
	api->local_addr = g_socket_get_local_address(sock, error);
	if (!api->local_addr)
		return FALSE;
	g_socket_set_blocking(sock, FALSE);
	api->listen_sock = g_object_ref(sock);
	api->uid_conns = g_hash_table_new(g_direct_hash, g_direct_equal);
	api->listen_id = g_unix_fd_add(g_socket_get_fd(sock), G_IO_IN, on_listen, api);
	return TRUE;
}

void vmcg_api_conns_close(VmcgApi *api)
{
	g_clear_handle_id(&api->listen_id, g_source_remove);
	g_clear_handle_id(&api->backoff_id, g_source_remove);
	/* What libsoup did not end (it was disconnected first) no longer calls back into @api. */
	while (api->conns.head)
		conn_release(api->conns.head->data);
	if (api->listen_sock)
		g_socket_close(api->listen_sock, NULL);
	g_clear_object(&api->listen_sock);
	g_clear_object(&api->local_addr);
	g_clear_pointer(&api->uid_conns, g_hash_table_destroy);
}
