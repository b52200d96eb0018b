// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * GET /v1/events: the daemon's events as Server-Sent Events, one stream per
 * subscriber, each with a bounded queue (a reader that stops is dropped,
 * never allowed to hold the daemon's memory).
 */
#include <string.h>

#include "api-private.h"

/*
 * Event stream bounds. A subscriber that does not read holds at most
 * SSE_QUEUE_MAX bytes here (on top of what the kernel buffers for its
 * socket) before it is dropped with a final "overflow" event; then it has
 * SSE_DROP_GRACE_SEC to take that event before its connection is shut.
 * 256 KiB is over a thousand events: a live client that stalls for a
 * moment loses nothing, a dead one costs bounded memory.
 */
#define SSE_QUEUE_MAX (256 * 1024)
#define SSE_DROP_GRACE_SEC 5
/* 15 s: keeps proxies and clients with read timeouts from closing an idle stream. */
#define SSE_KEEPALIVE_SEC 15
/* At most this many streams: with SSE_QUEUE_MAX, 16 MiB in the worst case. */
#define SSE_SUBSCRIBERS_MAX 64

typedef struct Sub Sub;

struct Sub {
	VmcgApi *api;
	SoupServerMessage *msg; /* a reference */
	guint daemon_id;	/* vmcg_daemon_subscribe() */
	guint keepalive_id;
	guint drop_id;
	gulong wrote_chunk_id;
	gulong finished_id;
	GQueue chunk_sizes; /* appended, not yet written: their sizes */
	gsize queued;	    /* sum of chunk_sizes */
	bool dropping;	    /* final event queued: take no more */
	GList link;
};

static void sub_free(Sub *s)
{
	VmcgApi *api = s->api;

	g_queue_unlink(&api->subs, &s->link);
	if (s->daemon_id)
		vmcg_daemon_unsubscribe(api->d, s->daemon_id);
	g_clear_handle_id(&s->keepalive_id, g_source_remove);
	g_clear_handle_id(&s->drop_id, g_source_remove);
	g_clear_signal_handler(&s->wrote_chunk_id, s->msg);
	g_clear_signal_handler(&s->finished_id, s->msg);
	g_queue_clear(&s->chunk_sizes);
	g_object_unref(s->msg);
	g_free(s);
}

/*
 * Queue @text (@len bytes). Nothing touches @s after the unpause: the
 * message may finish, and @s be freed, from inside it.
 */
static void sub_push(Sub *s, char *text, gsize len)
{
	SoupMessageBody *body = soup_server_message_get_response_body(s->msg);

	g_queue_push_tail(&s->chunk_sizes, GSIZE_TO_POINTER(len));
	s->queued += len;
	soup_message_body_append(body, SOUP_MEMORY_TAKE, text, len);
	soup_server_message_unpause(s->msg);
}

static gboolean sub_drop_timeout(gpointer userdata)
{
	Sub *s = userdata;
	GSocket *sock = vmcg_api_msg_socket(s->msg);

	s->drop_id = 0;
	g_info("api: event subscriber did not take its last event in %d s: closing",
	       SSE_DROP_GRACE_SEC);
	/* The pending write fails, libsoup finishes the message, on_sub_finished frees @s. */
	if (sock)
		g_socket_shutdown(sock, TRUE, TRUE, NULL);
	return G_SOURCE_REMOVE;
}

/* The subscriber is behind by more than SSE_QUEUE_MAX: tell it, and end the stream. */
static void sub_drop(Sub *s, const char *reason)
{
	SoupMessageBody *body = soup_server_message_get_response_body(s->msg);
	g_autoptr(json_object) data = json_object_new_object();
	char *text;

	s->dropping = true;
	g_clear_handle_id(&s->keepalive_id, g_source_remove);
	json_object_object_add(data, "reason", json_object_new_string(reason));
	json_object_object_add(data, "queued", json_object_new_uint64(s->queued));
	text = g_strdup_printf("event: overflow\ndata: %s\n\n",
			       json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN));
	g_message("api: dropping a slow event subscriber (%zu bytes unread)", (size_t)s->queued);
	s->drop_id = g_timeout_add_seconds(SSE_DROP_GRACE_SEC, sub_drop_timeout, s);
	g_queue_push_tail(&s->chunk_sizes, GSIZE_TO_POINTER(strlen(text)));
	s->queued += strlen(text);
	soup_message_body_append(body, SOUP_MEMORY_TAKE, text, strlen(text));
	soup_message_body_complete(body);
	soup_server_message_unpause(s->msg);
}

static void sub_send(Sub *s, char *text)
{
	gsize len = strlen(text);

	if (s->dropping) {
		g_free(text);
		return;
	}
	if (s->queued + len > SSE_QUEUE_MAX) {
		g_free(text);
		sub_drop(s, "queue_overflow");
		return;
	}
	sub_push(s, text, len);
}

static void on_sub_event(const char *type, json_object *data, gpointer userdata)
{
	Sub *s = userdata;

	if (s->dropping)
		return;
	/* PLAIN JSON has no newline, so one data: line carries it (an SSE line cannot). */
	sub_send(s, g_strdup_printf("event: %s\ndata: %s\n\n", type,
				    data ? json_object_to_json_string_ext(
						   data, JSON_C_TO_STRING_PLAIN |
								 JSON_C_TO_STRING_NOSLASHESCAPE)
					 : "{}"));
}

static gboolean on_sub_keepalive(gpointer userdata)
{
	Sub *s = userdata;

	sub_send(s, g_strdup(": keep-alive\n\n"));
	return G_SOURCE_CONTINUE;
}

static void on_sub_wrote_chunk(SoupServerMessage *msg, gpointer userdata)
{
	Sub *s = userdata;

	(void)msg;
	if (!g_queue_is_empty(&s->chunk_sizes))
		s->queued -= GPOINTER_TO_SIZE(g_queue_pop_head(&s->chunk_sizes));
}

static void on_sub_finished(SoupServerMessage *msg, gpointer userdata)
{
	(void)msg;
	sub_free(userdata);
}

void vmcg_api_handle_events(VmcgApi *api, SoupServerMessage *msg, gboolean head)
{
	SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
	Sub *s;

	if (api->subs.length >= SSE_SUBSCRIBERS_MAX) {
		soup_message_headers_replace(h, "Retry-After", "10");
		vmcg_api_reply_errorf(msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "busy",
				      "too many event subscribers (at most %d)",
				      SSE_SUBSCRIBERS_MAX);
		return;
	}
	soup_server_message_set_status(msg, SOUP_STATUS_OK, NULL);
	soup_message_headers_replace(h, "Content-Type", "text/event-stream; charset=utf-8");
	soup_message_headers_replace(h, "Cache-Control", "no-cache");
	if (head)
		return;
	soup_message_headers_set_encoding(h,
					  soup_server_message_get_http_version(msg) == SOUP_HTTP_1_0
						  ? SOUP_ENCODING_EOF
						  : SOUP_ENCODING_CHUNKED);
	/* Written chunks are dropped, not kept for a body that never ends. */
	soup_message_body_set_accumulate(soup_server_message_get_response_body(msg), FALSE);

	s = g_new0(Sub, 1);
	s->api = api;
	s->msg = g_object_ref(msg);
	s->link.data = s;
	g_queue_init(&s->chunk_sizes);
	g_queue_push_tail_link(&api->subs, &s->link);
	s->wrote_chunk_id = g_signal_connect(msg, "wrote-chunk", G_CALLBACK(on_sub_wrote_chunk), s);
	s->finished_id = g_signal_connect(msg, "finished", G_CALLBACK(on_sub_finished), s);
	s->daemon_id = vmcg_daemon_subscribe(api->d, on_sub_event, s);
	s->keepalive_id = g_timeout_add_seconds(SSE_KEEPALIVE_SEC, on_sub_keepalive, s);
	/* A first comment, so the client sees the stream open at once. */
	sub_push(s, g_strdup(": vmcg events\n\n"), strlen(": vmcg events\n\n"));
}

void vmcg_api_events_close_all(VmcgApi *api)
{
	while (!g_queue_is_empty(&api->subs))
		sub_free(g_queue_peek_head(&api->subs));
}
