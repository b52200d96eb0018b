// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Answers that grow with the tree or the VM count (/metrics, GET
 * /v1/groups, GET /v1/vms), written a chunk at a time as the client reads
 * them (docs/api.md, "Large answers").
 *
 * libsoup 3.2 (soup-server-message-io-http1.c, io_write()) writes the
 * response body chunk by chunk; once it has written one whole to the
 * socket it emits "wrote-chunk", and when it finds no chunk to write it
 * pauses the message until unpaused. So the next chunk is made in
 * "wrote-chunk", from where the walk stopped: the body never holds more
 * than one chunk, whatever the client does, and with the body's
 * accumulate flag off, written chunks are freed at once. A client that
 * never reads holds one chunk and the kernel's socket buffer until the
 * idle timeout (VMCG_API_IDLE_TIMEOUT_SEC) closes its connection.
 */
#include <string.h>

#include "api-private.h"
#include "backend.h"

typedef struct Stream {
	VmcgApiProducer *p; /* NULL once the answer is complete */
	SoupServerMessage *msg;
	gulong wrote_chunk_id;
	gulong finished_id;
} Stream;

static void stream_free(Stream *s)
{
	g_clear_signal_handler(&s->wrote_chunk_id, s->msg);
	g_clear_signal_handler(&s->finished_id, s->msg);
	vmcg_api_producer_free(s->p);
	g_object_unref(s->msg);
	g_free(s);
}

/* Append the next chunk to the body, or complete it. */
static void stream_pump(Stream *s)
{
	SoupMessageBody *body = soup_server_message_get_response_body(s->msg);
	GString *out = g_string_sized_new(VMCG_API_CHUNK_BYTES + VMCG_API_CHUNK_BYTES / 8);
	bool done = false;
	gsize len;

	while (!done && out->len == 0)
		done = s->p->fill(s->p, out, VMCG_API_CHUNK_BYTES);
	len = out->len;
	if (len)
		soup_message_body_append(body, SOUP_MEMORY_TAKE, g_string_free(out, FALSE), len);
	else
		g_string_free(out, TRUE);
	if (done) {
		/* The walk's state is not needed for the last chunk's write. */
		g_clear_pointer(&s->p, vmcg_api_producer_free);
		soup_message_body_complete(body);
	}
}

static void on_stream_wrote_chunk(SoupServerMessage *msg, gpointer userdata)
{
	Stream *s = userdata;

	(void)msg;
	if (s->p)
		stream_pump(s);
}

static void on_stream_finished(SoupServerMessage *msg, gpointer userdata)
{
	(void)msg;
	stream_free(userdata);
}

void vmcg_api_producer_free(VmcgApiProducer *p)
{
	if (p)
		p->free(p);
}

char *vmcg_api_producer_collect(VmcgApiProducer *p, gsize chunk_bytes, gsize *ret_len)
{
	GString *out = g_string_new(NULL);

	while (!p->fill(p, out, out->len + chunk_bytes))
		;
	vmcg_api_producer_free(p);
	if (ret_len)
		*ret_len = out->len;
	return g_string_free(out, FALSE);
}

void vmcg_api_reply_stream(SoupServerMessage *msg, const char *content_type, gboolean head,
			   VmcgApiProducer *p)
{
	SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
	SoupMessageBody *body = soup_server_message_get_response_body(msg);
	Stream *s;

	soup_server_message_set_status(msg, SOUP_STATUS_OK, NULL);
	soup_message_headers_replace(h, "Content-Type", content_type);
	/* HTTP/1.0 has no chunks: the end of the connection ends the body (Connection: close). */
	soup_message_headers_set_encoding(h,
					  soup_server_message_get_http_version(msg) == SOUP_HTTP_1_0
						  ? SOUP_ENCODING_EOF
						  : SOUP_ENCODING_CHUNKED);
	soup_message_body_set_accumulate(body, FALSE);
	if (head) {
		vmcg_api_producer_free(p);
		soup_message_body_complete(body);
		return;
	}
	s = g_new0(Stream, 1);
	s->p = p;
	s->msg = g_object_ref(msg);
	s->wrote_chunk_id =
		g_signal_connect(msg, "wrote-chunk", G_CALLBACK(on_stream_wrote_chunk), s);
	s->finished_id = g_signal_connect(msg, "finished", G_CALLBACK(on_stream_finished), s);
	stream_pump(s);
}

/* ---- walks ---- */

static gpointer group_next(gpointer ctx, gpointer item)
{
	VmcgApiGroupWalk *w = ctx;

	return vmcg_group_next_descendant(item, w->root);
}

/* Is @path @root or below it? */
static bool path_in(const char *path, const char *root)
{
	size_t n = strlen(root);

	if (strcmp(root, "/") == 0)
		return true;
	return strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static gpointer group_lookup(gpointer ctx, const char *key)
{
	VmcgApiGroupWalk *w = ctx;
	VmcgGroup *g = NULL;

	if (!path_in(key, vmcg_group_path(w->root)) || vmcg_group_lookup(w->tree, key, &g) < 0)
		return NULL;
	return g;
}

static const char *group_key(gpointer ctx, gpointer item)
{
	(void)ctx;
	return vmcg_group_path(item);
}

/*
 * The group of @key and those remembered after it are gone: go on after
 * the subtree of its deepest surviving ancestor (api-cursor.h). Groups
 * are removed only as leaves, so its ancestors went in order from the
 * bottom, and the walk's root is there (its removal ends the walk first).
 */
static gpointer group_after_gone(gpointer ctx, const char *key)
{
	VmcgApiGroupWalk *w = ctx;
	g_autofree char *path = g_strdup(key);
	VmcgGroup *g = NULL;
	char *slash;

	while (!(g = group_lookup(w, path))) {
		slash = strrchr(path, '/');
		if (!slash || slash == path)
			return NULL; /* not below the root: cannot happen */
		*slash = '\0';
	}
	for (; g != w->root; g = vmcg_group_parent(g))
		if (vmcg_group_next_sibling(g))
			return vmcg_group_next_sibling(g);
	return NULL;
}

const VmcgApiWalkOps vmcg_api_group_walk_ops = {
	.next = group_next,
	.lookup = group_lookup,
	.key = group_key,
	.after_gone = group_after_gone,
};

bool vmcg_api_group_walk_init(VmcgApiGroupWalk *w, VmcgTree *tree, const char *root_path)
{
	w->tree = tree;
	w->root = NULL;
	return vmcg_group_lookup(tree, root_path, &w->root) == 0;
}

static gpointer vm_next(gpointer ctx, gpointer item)
{
	(void)ctx;
	return vmcg_daemon_vm_next(item);
}

static gpointer vm_lookup(gpointer ctx, const char *key)
{
	return vmcg_daemon_vm_lookup(ctx, key);
}

static const char *vm_key(gpointer ctx, gpointer item)
{
	(void)ctx;
	return vmcg_dvm_name(item);
}

/* VMs are one list: with everything remembered gone, the walk ends (api-cursor.h). */
const VmcgApiWalkOps vmcg_api_vm_walk_ops = {
	.next = vm_next,
	.lookup = vm_lookup,
	.key = vm_key,
	.after_gone = NULL,
};
