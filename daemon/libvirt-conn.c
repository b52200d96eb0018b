// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The libvirt connection and its worker thread; see libvirt-conn.h.
 *
 * Threads: the main loop queues requests (GAsyncQueue) and receives
 * results and events (g_main_context_invoke_full() on the context the
 * connection was made on). The worker alone touches the virConnectPtr and
 * makes every call. libvirt's event callbacks run where libvirt's event
 * loop runs, the main loop (gvir_event_register()); the close callback may
 * run on the worker, inside a call that found the socket closed. All of
 * them only copy what they were given and post it.
 */
#include <errno.h>
#include <libvirt-glib/libvirt-glib.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <string.h>

#include "libvirt-conn.h"

/* libvirt closes a connection whose libvirtd misses 3 keepalives 5 s apart. */
#define KEEPALIVE_INTERVAL_S 5
#define KEEPALIVE_COUNT 3
/* How long freeing waits for a call in progress before leaving the worker to it. */
#define FREE_WAIT_USEC (2 * G_USEC_PER_SEC)

enum {
	CB_LIFECYCLE,
	CB_METADATA,
	CB_BALLOON,
	CB_MIGRATION,
	CB_JOB,
	_CB_COUNT,
};

struct VmcgLvConn {
	gint refs;
	GMainContext *ctx;
	VmcgLvCallbacks cb;
	gpointer userdata;
	char *uri;
	GAsyncQueue *q;
	GThread *thread;
	gint pending;
	/* main loop only */
	gboolean freed;
	unsigned gen;
	/* the worker's exit, for a bounded wait in vmcg_lv_conn_free() */
	GMutex lock;
	GCond cond;
	gboolean exited;
	/* worker only */
	virConnectPtr conn;
	struct CloseData *close_data; /* registered with conn, NULL: none */
	unsigned conn_gen;
	int cb_ids[_CB_COUNT];
};

typedef enum ReqKind {
	REQ_OPEN,
	REQ_REFRESH,
	REQ_STATS,
	REQ_OP,
	REQ_QUIT,
} ReqKind;

typedef struct Req {
	ReqKind kind;
	unsigned gen;
	VmcgLvOp op;
	uint64_t arg;
	char uuid[VMCG_LV_UUID_LEN];
} Req;

/* What the main loop is handed: a result, an event, or a close. */
typedef enum PostKind {
	POST_RESULT,
	POST_LIFECYCLE,
	POST_METADATA,
	POST_BALLOON,
	POST_MIGRATING,
	POST_JOB_DONE,
	POST_CLOSED,
} PostKind;

typedef struct Post {
	VmcgLvConn *c; /* a reference */
	PostKind kind;
	VmcgLvResult *result;
	char uuid[VMCG_LV_UUID_LEN];
	int event, detail;
	uint64_t kib;
	unsigned gen;
	char *why;
} Post;

static VmcgLvConn *conn_ref(VmcgLvConn *c)
{
	g_atomic_int_inc(&c->refs);
	return c;
}

static void conn_unref(VmcgLvConn *c)
{
	if (!g_atomic_int_dec_and_test(&c->refs))
		return;
	g_async_queue_unref(c->q);
	g_main_context_unref(c->ctx);
	g_mutex_clear(&c->lock);
	g_cond_clear(&c->cond);
	g_free(c->uri);
	g_free(c);
}

void vmcg_lv_domain_free(VmcgLvDomain *dom)
{
	if (!dom)
		return;
	g_free(dom->name);
	g_free(dom->xml);
	g_free(dom);
}

static void result_free(VmcgLvResult *r)
{
	if (!r)
		return;
	g_free(r->error.message);
	if (r->domains)
		g_ptr_array_unref(r->domains);
	vmcg_lv_domain_free(r->domain);
	if (r->stats)
		g_array_unref(r->stats);
	g_free(r);
}

static void post_free(gpointer p)
{
	Post *post = p;

	result_free(post->result);
	g_free(post->why);
	conn_unref(post->c);
	g_free(post);
}

static gboolean post_run(gpointer p)
{
	Post *post = p;
	VmcgLvConn *c = post->c;

	if (c->freed)
		return G_SOURCE_REMOVE;
	switch (post->kind) {
	case POST_RESULT:
		c->cb.result(post->result, c->userdata);
		break;
	case POST_LIFECYCLE:
		c->cb.lifecycle(post->uuid, post->event, post->detail, c->userdata);
		break;
	case POST_METADATA:
		c->cb.metadata(post->uuid, c->userdata);
		break;
	case POST_BALLOON:
		c->cb.balloon(post->uuid, post->kib, c->userdata);
		break;
	case POST_MIGRATING:
		c->cb.migrating(post->uuid, c->userdata);
		break;
	case POST_JOB_DONE:
		c->cb.job_done(post->uuid, c->userdata);
		break;
	case POST_CLOSED:
		c->cb.closed(post->gen, post->why, c->userdata);
		break;
	}
	return G_SOURCE_REMOVE;
}

/*
 * Always through an idle source on the main loop's context, never
 * g_main_context_invoke(): that would run the callback in the worker
 * thread whenever it could acquire the context.
 */
static void post(VmcgLvConn *c, Post *p)
{
	GSource *s = g_idle_source_new();

	p->c = conn_ref(c);
	g_source_set_priority(s, G_PRIORITY_DEFAULT);
	g_source_set_callback(s, post_run, p, post_free);
	g_source_attach(s, c->ctx);
	g_source_unref(s);
}

static Post *post_new(PostKind kind, virDomainPtr dom)
{
	Post *p = g_new0(Post, 1);

	p->kind = kind;
	if (dom && virDomainGetUUIDString(dom, p->uuid) < 0)
		p->uuid[0] = '\0';
	return p;
}

/* ---- errors ---- */

/* libvirt prints every error to stderr unless told otherwise: we report them ourselves. */
static void quiet_errors(void *userdata, virErrorPtr err)
{
	(void)userdata;
	(void)err;
}

static void take_error(VmcgLvError *e, const char *what)
{
	virErrorPtr err = virGetLastError();

	e->code = err && err->code ? err->code : VIR_ERR_INTERNAL_ERROR;
	e->message = g_strdup_printf("%s: %s", what,
				     err && err->message ? err->message : "unknown error");
	virResetLastError();
}

/* ---- pure helpers ---- */

char *vmcg_lv_pid_path(const char *uri, const char *name, const char *runtime_dir)
{
	if (!uri || !name || strchr(name, '/') || !*name)
		return NULL;
	if (strcmp(uri, "qemu:///system") == 0 || strcmp(uri, "qemu+unix:///system") == 0)
		return g_strdup_printf("/run/libvirt/qemu/%s.pid", name);
	if ((strcmp(uri, "qemu:///session") == 0 || strcmp(uri, "qemu+unix:///session") == 0) &&
	    runtime_dir && g_path_is_absolute(runtime_dir))
		return g_strdup_printf("%s/libvirt/qemu/run/%s.pid", runtime_dir, name);
	return NULL;
}

/*
 * libvirt starts QEMU with "-name guest=NAME,debug-threads=on", NAME with
 * its commas doubled (QEMU's option syntax).
 */
bool vmcg_lv_cmdline_is_domain(const char *cmdline, size_t len, const char *name)
{
	g_autoptr(GString) want = g_string_new("guest=");
	const char *p = cmdline, *end = cmdline + len;
	bool after_name = false;

	for (const char *s = name; *s; s++) {
		g_string_append_c(want, *s);
		if (*s == ',')
			g_string_append_c(want, ',');
	}
	while (p < end) {
		const char *nul = memchr(p, '\0', (size_t)(end - p));
		size_t n = nul ? (size_t)(nul - p) : (size_t)(end - p);

		if (after_name && n >= want->len && memcmp(p, want->str, want->len) == 0 &&
		    (n == want->len ||
		     (p[want->len] == ',' && (n == want->len + 1 || p[want->len + 1] != ','))))
			return true;
		after_name = n == 5 && memcmp(p, "-name", 5) == 0;
		p += n + 1;
	}
	return false;
}

/* The QEMU behind domain @name, from libvirt's pid file, if /proc agrees. */
static pid_t read_pid(const char *uri, const char *name)
{
	g_autofree char *path = vmcg_lv_pid_path(uri, name, g_getenv("XDG_RUNTIME_DIR"));
	g_autofree char *text = NULL, *proc = NULL, *cmdline = NULL;
	gsize len;
	gint64 pid;
	char *end;

	if (!path || !g_file_get_contents(path, &text, &len, NULL))
		return 0;
	errno = 0;
	pid = g_ascii_strtoll(text, &end, 10);
	if (errno || end == text || pid <= 1 || pid > G_MAXINT32)
		return 0;
	proc = g_strdup_printf("/proc/%" G_GINT64_FORMAT "/cmdline", pid);
	if (!g_file_get_contents(proc, &cmdline, &len, NULL) ||
	    !vmcg_lv_cmdline_is_domain(cmdline, len, name))
		return 0;
	return (pid_t)pid;
}

/* ---- the worker ---- */

static VmcgLvResult *result_new(VmcgLvResultKind kind, const Req *r)
{
	VmcgLvResult *res = g_new0(VmcgLvResult, 1);

	res->kind = kind;
	res->gen = r->gen;
	res->op = r->op;
	res->arg = r->arg;
	memcpy(res->uuid, r->uuid, sizeof(res->uuid));
	return res;
}

static void post_result(VmcgLvConn *c, VmcgLvResult *res, int64_t t0)
{
	Post *p = post_new(POST_RESULT, NULL);

	res->usec = (uint64_t)(g_get_monotonic_time() - t0);
	p->result = res;
	/*
	 * Done before it is posted: whoever handles the last result sees
	 * nothing pending (each request but QUIT posts exactly one result).
	 */
	g_atomic_int_add(&c->pending, -1);
	post(c, p);
}

static void on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
	Post *p = post_new(POST_LIFECYCLE, dom);

	(void)conn;
	p->event = event;
	p->detail = detail;
	post(opaque, p);
}

static void on_metadata(virConnectPtr conn, virDomainPtr dom, int type, const char *nsuri,
			void *opaque)
{
	(void)conn;
	(void)nsuri;
	/* Any change to the metadata may be ours (a whole <metadata> edit has no URI). */
	if (type == VIR_DOMAIN_METADATA_DESCRIPTION || type == VIR_DOMAIN_METADATA_TITLE)
		return;
	post(opaque, post_new(POST_METADATA, dom));
}

static void on_balloon(virConnectPtr conn, virDomainPtr dom, unsigned long long actual,
		       void *opaque)
{
	Post *p = post_new(POST_BALLOON, dom);

	(void)conn;
	p->kib = actual;
	post(opaque, p);
}

static void on_migration(virConnectPtr conn, virDomainPtr dom, int iteration, void *opaque)
{
	(void)conn;
	(void)iteration;
	post(opaque, post_new(POST_MIGRATING, dom));
}

static void on_job(virConnectPtr conn, virDomainPtr dom, virTypedParameterPtr params, int n,
		   void *opaque)
{
	(void)conn;
	(void)params;
	(void)n;
	post(opaque, post_new(POST_JOB_DONE, dom));
}

/* The close callback's opaque: the worker's own (c->close_data), freed in close_conn(). */
typedef struct CloseData {
	VmcgLvConn *c;
	unsigned gen;
} CloseData;

static void on_close(virConnectPtr conn, int reason, void *opaque)
{
	static const char *const reasons[] = {
		[VIR_CONNECT_CLOSE_REASON_ERROR] = "an I/O error",
		[VIR_CONNECT_CLOSE_REASON_EOF] = "libvirtd closed it",
		[VIR_CONNECT_CLOSE_REASON_KEEPALIVE] = "libvirtd stopped answering keepalives",
		[VIR_CONNECT_CLOSE_REASON_CLIENT] = "closed",
	};
	CloseData *cd = opaque;
	Post *p = post_new(POST_CLOSED, NULL);

	(void)conn;
	p->gen = cd->gen;
	p->why = g_strdup(reason >= 0 && (size_t)reason < G_N_ELEMENTS(reasons) && reasons[reason]
				  ? reasons[reason]
				  : "closed");
	post(cd->c, p);
}

static void close_conn(VmcgLvConn *c)
{
	if (!c->conn)
		return;
	for (int i = 0; i < _CB_COUNT; i++) {
		if (c->cb_ids[i] >= 0)
			(void)virConnectDomainEventDeregisterAny(c->conn, c->cb_ids[i]);
		c->cb_ids[i] = -1;
	}
	/*
	 * Ours to free (no free callback given to libvirt: not every driver
	 * calls it on unregistering), once libvirt can no longer call it.
	 */
	if (c->close_data)
		(void)virConnectUnregisterCloseCallback(c->conn, on_close);
	g_clear_pointer(&c->close_data, g_free);
	virResetLastError();
	virConnectClose(c->conn);
	c->conn = NULL;
}

static VmcgLvDomain *read_domain(VmcgLvConn *c, virDomainPtr dom, VmcgLvError *e)
{
	VmcgLvDomain *d = g_new0(VmcgLvDomain, 1);
	const char *name;
	char *xml;

	if (virDomainGetUUIDString(dom, d->uuid) < 0 || !(name = virDomainGetName(dom))) {
		take_error(e, "domain identity");
		goto fail;
	}
	d->name = g_strdup(name);
	if (virDomainGetState(dom, &d->state, &d->reason, 0) < 0) {
		take_error(e, "virDomainGetState");
		goto fail;
	}
	xml = virDomainGetXMLDesc(dom, 0);
	if (!xml) {
		take_error(e, "virDomainGetXMLDesc");
		goto fail;
	}
	d->xml = g_strdup(xml);
	free(xml);
	d->pid = read_pid(c->uri, d->name);
	return d;
fail:
	vmcg_lv_domain_free(d);
	return NULL;
}

static void do_open(VmcgLvConn *c, const Req *r)
{
	static const struct {
		int id;
		virConnectDomainEventGenericCallback fn;
	} events[_CB_COUNT] = {
		[CB_LIFECYCLE] = { VIR_DOMAIN_EVENT_ID_LIFECYCLE,
				   VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle) },
		[CB_METADATA] = { VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
				  VIR_DOMAIN_EVENT_CALLBACK(on_metadata) },
		[CB_BALLOON] = { VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE,
				 VIR_DOMAIN_EVENT_CALLBACK(on_balloon) },
		[CB_MIGRATION] = { VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION,
				   VIR_DOMAIN_EVENT_CALLBACK(on_migration) },
		[CB_JOB] = { VIR_DOMAIN_EVENT_ID_JOB_COMPLETED, VIR_DOMAIN_EVENT_CALLBACK(on_job) },
	};
	int64_t t0 = g_get_monotonic_time();
	VmcgLvResult *res = result_new(VMCG_LV_OPENED, r);
	virDomainPtr *doms = NULL;
	CloseData *cd;
	int n;

	close_conn(c);
	c->conn = virConnectOpen(c->uri);
	if (!c->conn) {
		take_error(&res->error, c->uri);
		goto fail;
	}
	c->conn_gen = r->gen;
	/* Drivers without keepalive (test:///) refuse it: nothing to do then. */
	if (virConnectSetKeepAlive(c->conn, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT) < 0)
		virResetLastError();
	cd = g_new0(CloseData, 1);
	cd->c = c; /* the worker's reference covers it: closed before the worker exits */
	cd->gen = r->gen;
	c->close_data = cd;
	if (virConnectRegisterCloseCallback(c->conn, on_close, cd, NULL) < 0) {
		/* A driver without a close callback (test:///) cannot close. */
		g_clear_pointer(&c->close_data, g_free);
		virResetLastError();
	}
	/* Subscribe first, then list: a domain that starts in between is not missed. */
	for (int i = 0; i < _CB_COUNT; i++) {
		c->cb_ids[i] = virConnectDomainEventRegisterAny(c->conn, NULL, events[i].id,
								events[i].fn, c, NULL);
		if (c->cb_ids[i] < 0) {
			/* An older driver without an event: the rest still work. */
			if (i == CB_LIFECYCLE) {
				take_error(&res->error, "domain lifecycle events");
				goto fail;
			}
			virResetLastError();
		}
	}
	n = virConnectListAllDomains(c->conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
	if (n < 0) {
		take_error(&res->error, "virConnectListAllDomains");
		goto fail;
	}
	res->domains = g_ptr_array_new_with_free_func((GDestroyNotify)vmcg_lv_domain_free);
	for (int i = 0; i < n; i++) {
		VmcgLvError e = { 0 };
		VmcgLvDomain *d = read_domain(c, doms[i], &e);

		/* Gone between the list and the read: its stop event follows. */
		if (d)
			g_ptr_array_add(res->domains, d);
		g_free(e.message);
		virDomainFree(doms[i]);
	}
	free(doms);
	post_result(c, res, t0);
	return;
fail:
	close_conn(c);
	res->kind = VMCG_LV_OPEN_FAILED;
	post_result(c, res, t0);
}

static virDomainPtr lookup(VmcgLvConn *c, const char *uuid, VmcgLvError *e)
{
	virDomainPtr dom;

	if (!c->conn) {
		e->code = VIR_ERR_NO_CONNECT;
		e->message = g_strdup("not connected to libvirt");
		return NULL;
	}
	dom = virDomainLookupByUUIDString(c->conn, uuid);
	if (!dom)
		take_error(e, "domain lookup");
	return dom;
}

static void do_refresh(VmcgLvConn *c, const Req *r)
{
	int64_t t0 = g_get_monotonic_time();
	VmcgLvResult *res = result_new(VMCG_LV_DOMAIN, r);
	virDomainPtr dom = lookup(c, r->uuid, &res->error);

	if (dom && virDomainIsActive(dom) == 1)
		res->domain = read_domain(c, dom, &res->error);
	if (!res->domain)
		res->kind = VMCG_LV_DOMAIN_GONE;
	if (dom)
		virDomainFree(dom);
	post_result(c, res, t0);
}

static bool get_ull(virDomainStatsRecordPtr rec, const char *field, uint64_t *ret)
{
	unsigned long long v;

	if (virTypedParamsGetULLong(rec->params, rec->nparams, field, &v) != 1)
		return false;
	*ret = v;
	return true;
}

static void do_stats(VmcgLvConn *c, const Req *r)
{
	int64_t t0 = g_get_monotonic_time();
	VmcgLvResult *res = result_new(VMCG_LV_STATS, r);
	virDomainStatsRecordPtr *recs = NULL;
	int n;

	res->stats = g_array_new(FALSE, TRUE, sizeof(VmcgLvStats));
	if (!c->conn) {
		res->error.code = VIR_ERR_NO_CONNECT;
		res->error.message = g_strdup("not connected to libvirt");
		post_result(c, res, t0);
		return;
	}
	n = virConnectGetAllDomainStats(c->conn, VIR_DOMAIN_STATS_STATE | VIR_DOMAIN_STATS_BALLOON,
					&recs, VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE);
	if (n < 0) {
		take_error(&res->error, "virConnectGetAllDomainStats");
		post_result(c, res, t0);
		return;
	}
	for (int i = 0; i < n; i++) {
		VmcgLvStats s = { 0 };
		uint64_t lu;
		int state;

		if (virDomainGetUUIDString(recs[i]->dom, s.uuid) < 0)
			continue;
		if (virTypedParamsGetInt(recs[i]->params, recs[i]->nparams, "state.state",
					 &state) == 1)
			s.state = state;
		s.has_current = get_ull(recs[i], "balloon.current", &s.current);
		s.has_maximum = get_ull(recs[i], "balloon.maximum", &s.maximum);
		s.has_available = get_ull(recs[i], "balloon.available", &s.available);
		s.has_usable = get_ull(recs[i], "balloon.usable", &s.usable);
		s.has_unused = get_ull(recs[i], "balloon.unused", &s.unused);
		s.has_caches = get_ull(recs[i], "balloon.disk_caches", &s.caches);
		s.has_last_update =
			get_ull(recs[i], "balloon.last-update", &lu) && lu <= (uint64_t)G_MAXINT64;
		s.last_update = s.has_last_update ? (int64_t)lu : 0;
		g_array_append_val(res->stats, s);
	}
	virDomainStatsRecordListFree(recs);
	virResetLastError();
	post_result(c, res, t0);
}

static void do_op(VmcgLvConn *c, const Req *r)
{
	int64_t t0 = g_get_monotonic_time();
	VmcgLvResult *res = result_new(VMCG_LV_DONE, r);
	virDomainPtr dom = lookup(c, r->uuid, &res->error);
	int rc = -1;

	if (dom) {
		switch (r->op) {
		case VMCG_LV_OP_SETMEM:
			rc = virDomainSetMemoryFlags(dom, (unsigned long)r->arg,
						     VIR_DOMAIN_AFFECT_LIVE);
			break;
		case VMCG_LV_OP_PERIOD:
			rc = virDomainSetMemoryStatsPeriod(dom, (int)r->arg,
							   VIR_DOMAIN_AFFECT_LIVE);
			break;
		case VMCG_LV_OP_SUSPEND:
			rc = virDomainSuspend(dom);
			break;
		case VMCG_LV_OP_RESUME:
			rc = virDomainResume(dom);
			break;
		case VMCG_LV_OP_DESTROY:
			rc = virDomainDestroy(dom);
			break;
		}
		if (rc < 0)
			take_error(&res->error, "libvirt");
		virDomainFree(dom);
	}
	post_result(c, res, t0);
}

static gpointer worker(gpointer data)
{
	VmcgLvConn *c = data;

	for (int i = 0; i < _CB_COUNT; i++)
		c->cb_ids[i] = -1;
	virSetErrorFunc(NULL, quiet_errors);
	for (;;) {
		Req *r = g_async_queue_pop(c->q);
		ReqKind kind = r->kind;

		switch (kind) {
		case REQ_OPEN:
			do_open(c, r);
			break;
		case REQ_REFRESH:
			do_refresh(c, r);
			break;
		case REQ_STATS:
			do_stats(c, r);
			break;
		case REQ_OP:
			do_op(c, r);
			break;
		case REQ_QUIT:
			break;
		}
		g_free(r);
		if (kind == REQ_QUIT) {
			g_atomic_int_add(&c->pending, -1);
			break;
		}
	}
	close_conn(c);
	g_mutex_lock(&c->lock);
	c->exited = TRUE;
	g_cond_signal(&c->cond);
	g_mutex_unlock(&c->lock);
	conn_unref(c);
	return NULL;
}

/* ---- the main loop's side ---- */

/*
 * libvirt-glib 4.0 logs every watch and timeout it adds, updates,
 * removes or dispatches at debug level, with no log domain and a
 * trailing newline: dozens of lines per libvirt call in vmcgd -v. Those
 * go; every other debug message goes on to GLib's default handler.
 */
static void drop_event_loop_debug(const char *domain, GLogLevelFlags level, const char *message,
				  gpointer userdata)
{
	static const char *const prefixes[] = {
		"Add handle ",	     "Update handle ",	  "Remove handle ",
		"Dispatch handler ", "Add timeout ",	  "Update timeout ",
		"Remove timeout ",   "Dispatch timeout ", "Update for missing handle "
	};

	for (size_t i = 0; i < G_N_ELEMENTS(prefixes); i++)
		if (g_str_has_prefix(message, prefixes[i]))
			return;
	g_log_default_handler(domain, level, message, userdata);
}

static void push(VmcgLvConn *c, Req *r, gboolean front)
{
	g_atomic_int_inc(&c->pending);
	if (front)
		g_async_queue_push_front(c->q, r);
	else
		g_async_queue_push(c->q, r);
}

VmcgLvConn *vmcg_lv_conn_new(const char *uri, const VmcgLvCallbacks *cb, gpointer userdata)
{
	static gsize once;
	VmcgLvConn *c = g_new0(VmcgLvConn, 1);

	if (g_once_init_enter(&once)) {
		/*
		 * libvirt-glib's own set-up first (it also keeps its per-event debug
		 * lines out of vmcgd's log unless LIBVIRT_GLIB_DEBUG is set), then
		 * libvirt's events on the GLib main loop, before any connection.
		 */
		gvir_init(NULL, NULL);
		gvir_event_register();
		g_log_set_handler(NULL, G_LOG_LEVEL_DEBUG, drop_event_loop_debug, NULL);
		virSetErrorFunc(NULL, quiet_errors);
		g_once_init_leave(&once, 1);
	}
	c->refs = 2; /* the caller's and the worker's */
	c->ctx = g_main_context_ref_thread_default();
	c->cb = *cb;
	c->userdata = userdata;
	c->uri = g_strdup(uri);
	c->q = g_async_queue_new();
	g_mutex_init(&c->lock);
	g_cond_init(&c->cond);
	c->thread = g_thread_new("vmcg-libvirt", worker, c);
	return c;
}

void vmcg_lv_conn_free(VmcgLvConn *c)
{
	Req *quit;
	gint64 until;
	gboolean exited;

	if (!c)
		return;
	c->freed = TRUE;
	/* Drop what is queued: only the call in progress is waited for. */
	for (Req *r; (r = g_async_queue_try_pop(c->q));) {
		g_free(r);
		g_atomic_int_add(&c->pending, -1);
	}
	quit = g_new0(Req, 1);
	quit->kind = REQ_QUIT;
	push(c, quit, TRUE);
	until = g_get_monotonic_time() + FREE_WAIT_USEC;
	g_mutex_lock(&c->lock);
	while (!c->exited)
		if (!g_cond_wait_until(&c->cond, &c->lock, until))
			break;
	exited = c->exited;
	g_mutex_unlock(&c->lock);
	/* A call hung in libvirtd: the thread finishes on its own (and drops its reference). */
	if (exited)
		g_thread_join(c->thread);
	else
		g_thread_unref(c->thread);
	conn_unref(c);
}

unsigned vmcg_lv_open(VmcgLvConn *c)
{
	Req *r = g_new0(Req, 1);

	r->kind = REQ_OPEN;
	r->gen = ++c->gen;
	/* Not r->gen after the push: the worker may have freed r by then. */
	push(c, r, FALSE);
	return c->gen;
}

static void push_uuid(VmcgLvConn *c, ReqKind kind, VmcgLvOp op, const char *uuid, uint64_t arg)
{
	Req *r = g_new0(Req, 1);

	r->kind = kind;
	r->gen = c->gen;
	r->op = op;
	r->arg = arg;
	if (uuid)
		g_strlcpy(r->uuid, uuid, sizeof(r->uuid));
	push(c, r, FALSE);
}

void vmcg_lv_refresh(VmcgLvConn *c, const char *uuid)
{
	push_uuid(c, REQ_REFRESH, 0, uuid, 0);
}

void vmcg_lv_read_stats(VmcgLvConn *c)
{
	push_uuid(c, REQ_STATS, 0, NULL, 0);
}

void vmcg_lv_op(VmcgLvConn *c, VmcgLvOp op, const char *uuid, uint64_t arg)
{
	push_uuid(c, REQ_OP, op, uuid, arg);
}

unsigned vmcg_lv_pending(VmcgLvConn *c)
{
	return (unsigned)MAX(0, g_atomic_int_get(&c->pending));
}
