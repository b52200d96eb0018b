// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The "libvirt" VM backend; see backend-libvirt.h and docs/libvirt.md.
 *
 * Every libvirt call goes through libvirt-conn.c's worker; this file runs
 * on the main loop and decides with libvirt-adopt.c's pure helpers. A
 * domain is known by its UUID: events and results name it, and the VM's
 * address is it. Its VmcgDvm is made when the domain is seen running (at
 * the connection's open or its start event) and freed when it stops: its
 * charge leaves the tree at once.
 *
 * The balloon is driven only through virDomainSetMemoryFlags(LIVE), and
 * read through virConnectGetAllDomainStats(BALLOON): one call per tick
 * for every domain, and BALLOON_CHANGE events in between. vmcgd never
 * talks to a libvirt domain's QMP monitor: libvirt owns it.
 */
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <string.h>

#include "backend-libvirt-priv.h"
#include "backend-libvirt.h"
#include "daemon-private.h"
#include "libvirt-adopt.h"
#include "libvirt-conn.h"
#include "libvirt-xml.h"
#include "log.h"

#define PAGE VMCG_PAGE_SIZE
/* A balloon move this far from what vmcgd asked is someone else's (policy.h). */
#define EXTERNAL_SLACK_BYTES (4ull << 20)
/* One warning per domain per this long about its balloon commands failing. */
#define WARN_PERIOD_USEC (300 * G_USEC_PER_SEC)

typedef enum LvState {
	LV_OFF,
	LV_CONNECTING,
	LV_UP,
	LV_DOWN, /* waiting to reopen */
} LvState;

struct VmcgLibvirt {
	VmcgDaemon *d;
	char *uri;
	char *default_group;
	VmcgLvConn *conn;
	LvState state;
	unsigned gen;	/* the open in progress or up */
	guint retry_ms; /* the last wait before reopening, 0: none since it was up */
	guint retry_id;
	gboolean warned; /* the outage was logged */
	char *error;
	GHashTable *by_uuid; /* lowercase uuid -> LibvirtBackend */
	gboolean stats_in_flight;
	uint64_t stats_asked_usec;
	uint64_t opens, closes;
	/* the domain being adopted, for create() */
	const VmcgLvDomain *adopting;
};

typedef struct LibvirtBackend {
	VmcgDvm *vm;
	VmcgLibvirt *lv;
	char uuid[VMCG_LV_UUID_LEN];
	char *domain;
	pid_t pid;
	gboolean ready; /* reported ready to vm.c (take_domain()) */
	const char *no_balloon;
	gboolean migrating;
	gboolean pause_asked;
	/* the balloon: one command in flight, the latest target waits behind it */
	gboolean setmem_in_flight;
	gboolean want_unsent;
	uint64_t want_bytes;
	uint64_t actual; /* last reported, bytes */
	/* someone else's moves: the size closest to ref_target seen since it was set */
	uint64_t ref_actual, ref_target;
	/* guest statistics: the guest's own timestamp, to spot stale ones */
	gboolean has_stats;
	int64_t last_update;
	/* metadata: its problems as last reported (one report per change) */
	GPtrArray *problems;
	char *problems_key;
	const char *fallback;
	int64_t warned_usec;
	gboolean seen; /* in the open's list (reconciling after a reopen) */
} LibvirtBackend;

static LibvirtBackend *lb(VmcgBackend *b)
{
	return (LibvirtBackend *)b;
}

static void lv_open(VmcgLibvirt *lv);

/* Results and statistics results handled (backend-libvirt-priv.h); main loop only. */
static unsigned long results_seen, stats_seen;

void vmcg_backend_libvirt_counts(unsigned long *ret_results, unsigned long *ret_stats)
{
	*ret_results = results_seen;
	*ret_stats = stats_seen;
}

/* ---- reporting ---- */

static void emit_domain_event(VmcgLibvirt *lv, const char *type, LibvirtBackend *b,
			      json_object *data)
{
	json_object_object_add(data, "vm", json_object_new_string(vmcg_dvm_name(b->vm)));
	json_object_object_add(data, "domain", json_object_new_string(b->domain));
	json_object_object_add(data, "uuid", json_object_new_string(b->uuid));
	vmcg_daemon_emit(lv->d, type, data);
	json_object_put(data);
}

/* The metadata's problems, once per change: log, event, and the API (describe()). */
static void report_problems(VmcgLibvirt *lv, LibvirtBackend *b, const VmcgDomainXml *x,
			    const VmcgLvPlan *plan)
{
	g_autoptr(GString) key = g_string_new(plan->fallback ? plan->fallback : "");
	json_object *list, *data;

	for (guint i = 0; x->problems && i < x->problems->len; i++) {
		g_string_append_c(key, '\n');
		g_string_append(key, g_ptr_array_index(x->problems, i));
	}
	if (g_strcmp0(key->str, b->problems_key ? b->problems_key : "") == 0)
		return;
	g_free(b->problems_key);
	b->problems_key = g_strdup(key->str);
	g_ptr_array_set_size(b->problems, 0);
	for (guint i = 0; x->problems && i < x->problems->len; i++)
		g_ptr_array_add(b->problems, g_strdup(g_ptr_array_index(x->problems, i)));
	b->fallback = plan->fallback;
	if (!key->len)
		g_message("VM %s: its vmcg metadata is valid again", vmcg_dvm_name(b->vm));
	for (guint i = 0; i < b->problems->len; i++)
		g_warning("VM %s (libvirt domain %s): metadata: %s", vmcg_dvm_name(b->vm),
			  b->domain, (const char *)g_ptr_array_index(b->problems, i));
	if (plan->fallback)
		g_warning("VM %s: %s: it goes to %s", vmcg_dvm_name(b->vm), plan->fallback,
			  plan->group);
	data = json_object_new_object();
	list = json_object_new_array();
	for (guint i = 0; i < b->problems->len; i++)
		json_object_array_add(list,
				      json_object_new_string(g_ptr_array_index(b->problems, i)));
	json_object_object_add(data, "problems", list);
	json_object_object_add(data, "reason",
			       plan->fallback ? json_object_new_string(plan->fallback) : NULL);
	json_object_object_add(data, "group", json_object_new_string(plan->group));
	emit_domain_event(lv, VMCG_EV_LIBVIRT_METADATA, b, data);
}

/* ---- the ops table ---- */

static gboolean lv_check_address(const char *address, GError **error)
{
	if (!address || strlen(address) != VMCG_LV_UUID_LEN - 1) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "a libvirt VM's address is its domain's UUID");
		return FALSE;
	}
	return TRUE;
}

static VmcgBackend *lv_create(VmcgDvm *vm, const char *address)
{
	VmcgLibvirt *lv = vmcg_dvm_daemon(vm)->libvirt;
	LibvirtBackend *b = g_new0(LibvirtBackend, 1);

	g_assert(lv && lv->adopting);
	b->vm = vm;
	b->lv = lv;
	g_strlcpy(b->uuid, address, sizeof(b->uuid));
	b->domain = g_strdup(lv->adopting->name);
	b->problems = g_ptr_array_new_with_free_func(g_free);
	g_hash_table_insert(lv->by_uuid, b->uuid, b);
	return (VmcgBackend *)b;
}

static void send_period(LibvirtBackend *b)
{
	uint64_t interval = vmcg_daemon_policy(b->lv->d)->stats_interval_usec;

	if (b->no_balloon || !interval || !b->lv->conn)
		return;
	vmcg_lv_op(b->lv->conn, VMCG_LV_OP_PERIOD, b->uuid, MAX(1, interval / G_USEC_PER_SEC));
}

/* The domain as libvirt has it now: pid, RAM, the balloon's size and whether it can move. */
static void take_domain(LibvirtBackend *b, const VmcgLvDomain *dom, const VmcgDomainXml *x,
			const VmcgLvPlan *plan)
{
	gboolean was_ready = b->ready;

	if (!was_ready || dom->pid != b->pid) {
		b->ready = TRUE;
		b->pid = dom->pid;
		/* Adopted as it is: a restarted vmcgd, or libvirtd, moves no balloon. */
		vmcg_dvm_backend_ready(b->vm, b->pid);
		b->has_stats = FALSE;
		/* Ready forgets the balloon's size: the next one seen is reported. */
		b->actual = 0;
		b->ref_actual = b->ref_target = 0;
	}
	if (!b->pid)
		vmcg_debug("VM %s: no pid from libvirt's status for %s: no sampling",
			   vmcg_dvm_name(b->vm), b->domain);
	/* Ready forgets the RAM size too: always said again. */
	if (x->memory != vmcg_dvm_ram_bytes(b->vm))
		vmcg_dvm_backend_ram(b->vm, x->memory);
	if (plan->no_balloon != b->no_balloon) {
		b->no_balloon = plan->no_balloon;
		vmcg_dvm_backend_no_balloon(b->vm, b->no_balloon);
		if (b->no_balloon)
			g_message("VM %s: charged, not ballooned: %s", vmcg_dvm_name(b->vm),
				  b->no_balloon);
	}
	/* The live <currentMemory> follows the balloon (libvirt updates it on BALLOON_CHANGE). */
	if (!b->actual && x->current_memory && !b->no_balloon) {
		b->actual = x->current_memory;
		vmcg_dvm_backend_balloon(b->vm, b->actual);
	}
	if (dom->state == VIR_DOMAIN_PAUSED && b->pause_asked)
		vmcg_dvm_backend_paused(b->vm);
	if (!was_ready)
		send_period(b);
}

static void lv_connect(VmcgBackend *vb)
{
	/* Connected already: adopt() reports it ready (take_domain()) once it is made. */
	lb(vb)->seen = TRUE;
}

/* The waiting target, if it may go: one command in flight, none while it migrates. */
static void send_setmem(LibvirtBackend *b)
{
	VmcgLibvirt *lv = b->lv;

	if (!b->want_unsent || b->setmem_in_flight || b->migrating || lv->state != LV_UP)
		return;
	b->want_unsent = FALSE;
	b->setmem_in_flight = TRUE;
	vmcg_lv_op(lv->conn, VMCG_LV_OP_SETMEM, b->uuid, b->want_bytes >> 10);
}

static void lv_poll(VmcgBackend *vb, uint64_t now)
{
	LibvirtBackend *b = lb(vb);
	VmcgLibvirt *lv = b->lv;
	uint64_t tick = lv->d->interval_usec;

	send_setmem(b);
	/* One call for every domain's statistics, at most once a tick. */
	if (lv->state == LV_UP && !lv->stats_in_flight &&
	    now - lv->stats_asked_usec >= tick - tick / 4) {
		lv->stats_in_flight = TRUE;
		lv->stats_asked_usec = now;
		vmcg_lv_read_stats(lv->conn);
	}
}

static void lv_set_balloon(VmcgBackend *vb, uint64_t bytes)
{
	LibvirtBackend *b = lb(vb);

	/* Not enforced (describe() says why): the target is the policy's, never sent. */
	if (b->no_balloon)
		return;
	b->want_bytes = bytes;
	b->want_unsent = TRUE;
	send_setmem(b);
}

static void lv_pause(VmcgBackend *vb)
{
	LibvirtBackend *b = lb(vb);

	b->pause_asked = TRUE;
	vmcg_lv_op(b->lv->conn, VMCG_LV_OP_SUSPEND, b->uuid, 0);
}

static void lv_resume(VmcgBackend *vb)
{
	LibvirtBackend *b = lb(vb);

	b->pause_asked = FALSE;
	vmcg_lv_op(b->lv->conn, VMCG_LV_OP_RESUME, b->uuid, 0);
}

static void lv_destroy(VmcgBackend *vb)
{
	LibvirtBackend *b = lb(vb);

	vmcg_lv_op(b->lv->conn, VMCG_LV_OP_DESTROY, b->uuid, 0);
}

static pid_t lv_pid(VmcgBackend *vb)
{
	return lb(vb)->pid;
}

static void lv_describe(VmcgBackend *vb, VmcgBackendInfo *ret)
{
	LibvirtBackend *b = lb(vb);

	ret->address = b->uuid;
	ret->domain = b->domain;
	ret->uuid = b->uuid;
	ret->no_balloon = b->no_balloon;
	ret->migrating = b->migrating;
	ret->problems = b->problems;
	ret->fallback = b->fallback;
}

static void lv_free(VmcgBackend *vb)
{
	LibvirtBackend *b = lb(vb);

	g_hash_table_remove(b->lv->by_uuid, b->uuid);
	g_free(b->domain);
	g_free(b->problems_key);
	g_ptr_array_unref(b->problems);
	g_free(b);
}

const VmcgBackendOps vmcg_backend_libvirt = {
	.name = "libvirt",
	.check_address = lv_check_address,
	.create = lv_create,
	.connect = lv_connect,
	.poll = lv_poll,
	.set_balloon = lv_set_balloon,
	.pause = lv_pause,
	.resume = lv_resume,
	.destroy = lv_destroy,
	.pid = lv_pid,
	.describe = lv_describe,
	.free = lv_free,
};

/* ---- adopting and forgetting domains ---- */

static LibvirtBackend *find(VmcgLibvirt *lv, const char *uuid)
{
	char key[VMCG_LV_UUID_LEN];

	if (!uuid || strlen(uuid) != VMCG_LV_UUID_LEN - 1)
		return NULL;
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = g_ascii_tolower(uuid[i]);
	return g_hash_table_lookup(lv->by_uuid, key);
}

VmcgDvm *vmcg_libvirt_find(VmcgLibvirt *lv, const char *uuid)
{
	LibvirtBackend *b = lv ? find(lv, uuid) : NULL;

	return b ? b->vm : NULL;
}

static bool group_exists(const char *path, void *userdata)
{
	VmcgGroup *g;

	return vmcg_group_lookup(vmcg_daemon_tree(userdata), path, &g) == 0;
}

/* Create @path and its missing ancestors; the metadata's knobs on @path itself. */
static gboolean create_group(VmcgLibvirt *lv, const char *path, const VmcgDomainMeta *m,
			     GError **error)
{
	g_auto(GStrv) parts = g_strsplit(path + 1, "/", -1);
	g_autoptr(GString) at = g_string_new("");

	for (guint i = 0; parts[i]; i++) {
		VmcgGroupSettings s = { 0 };

		g_string_append_c(at, '/');
		g_string_append(at, parts[i]);
		if (group_exists(at->str, lv->d))
			continue;
		if (!parts[i + 1])
			s = (VmcgGroupSettings){ .has_min = m->has_min,
						 .min = m->min,
						 .has_low = m->has_low,
						 .low = m->low,
						 .has_high = m->has_high,
						 .high = m->high,
						 .has_max = m->has_max,
						 .max = m->max };
		if (!vmcg_daemon_group_put(lv->d, at->str, &s, NULL, error))
			return FALSE;
		g_message("libvirt: group %s created from a domain's metadata", at->str);
	}
	return TRUE;
}

static void forget(VmcgLibvirt *lv, LibvirtBackend *b, const char *why)
{
	g_autofree char *name = g_strdup(vmcg_dvm_name(b->vm));

	g_info("VM %s (libvirt domain %s): %s", name, b->domain, why);
	vmcg_daemon_vm_forget(lv->d, b->vm);
}

/* A running domain as libvirt describes it: adopt it, or bring its VM up to date. */
static void adopt(VmcgLibvirt *lv, const VmcgLvDomain *dom)
{
	g_auto(VmcgDomainXml) x = { 0 };
	g_autoptr(GError) error = NULL;
	VmcgVmSettings s = { 0 };
	LibvirtBackend *b = find(lv, dom->uuid);
	VmcgLvPlan plan;
	const char *name;

	if (!vmcg_domain_xml_parse(dom->xml, strlen(dom->xml), &x, &error)) {
		g_warning("libvirt domain %s (%s): cannot read its XML: %s; not managed", dom->name,
			  dom->uuid, error->message);
		return;
	}
	vmcg_lv_plan(&x, lv->default_group, group_exists, lv->d, &plan);
	if (plan.create_group && !create_group(lv, plan.group, &x.meta, &error)) {
		g_warning("libvirt domain %s: cannot create group %s from its metadata: %s",
			  dom->name, plan.group, error->message);
		g_clear_error(&error);
		plan.fallback = "its group could not be created";
		plan.group = group_exists(lv->default_group, lv->d) ? lv->default_group : "/";
	}
	s.has_floor = TRUE;
	s.floor = plan.has_floor ? plan.floor : 0;
	s.has_oom_priority = TRUE;
	s.oom_priority = plan.has_oom_priority ? plan.oom_priority : 0;
	s.has_channel = TRUE;
	s.channel = (char *)(plan.channel ? plan.channel : "");

	lv->adopting = dom;
	if (b) {
		VmcgDvmInfo i;

		b->seen = TRUE;
		vmcg_dvm_info(b->vm, &i);
		if (strcmp(i.group, plan.group) != 0) {
			if (vmcg_daemon_vm_managed_move(lv->d, b->vm, plan.group, &error))
				g_message("VM %s moved to %s by its metadata", i.name, plan.group);
			else
				g_warning("VM %s stays in %s: %s", i.name, i.group, error->message);
			g_clear_error(&error);
		}
		vmcg_daemon_vm_managed_set(lv->d, b->vm, &s);
	} else {
		VmcgDvm *vm;

		/* Named by the domain; by its UUID if a VM of that name is another one. */
		name = vmcg_daemon_vm_lookup(lv->d, dom->name) ? dom->uuid : dom->name;
		if (name == dom->uuid)
			g_warning("libvirt domain %s: a VM of that name exists; this one is "
				  "named by its UUID %s",
				  dom->name, dom->uuid);
		vm = vmcg_daemon_vm_adopt(lv->d, name, &vmcg_backend_libvirt, dom->uuid, plan.group,
					  &s, &error);
		if (!vm) {
			g_warning("libvirt domain %s: not managed: %s", dom->name, error->message);
			lv->adopting = NULL;
			return;
		}
		b = lb(vm->backend);
	}
	take_domain(b, dom, &x, &plan);
	report_problems(lv, b, &x, &plan);
	lv->adopting = NULL;
}

/* ---- results and events ---- */

static void on_opened(VmcgLibvirt *lv, const VmcgLvResult *r)
{
	GHashTableIter it;
	gpointer value;
	GPtrArray *stale = g_ptr_array_new();

	lv->state = LV_UP;
	lv->retry_ms = 0;
	lv->opens++;
	g_clear_pointer(&lv->error, g_free);
	g_message("libvirt: connected to %s: %u running domains (%.1f ms)", lv->uri,
		  r->domains->len, (double)r->usec / 1000);
	lv->warned = FALSE;
	g_hash_table_iter_init(&it, lv->by_uuid);
	while (g_hash_table_iter_next(&it, NULL, &value))
		((LibvirtBackend *)value)->seen = FALSE;
	for (guint i = 0; i < r->domains->len; i++)
		adopt(lv, g_ptr_array_index(r->domains, i));
	/* Known before, not running now: stopped while the connection was down. */
	g_hash_table_iter_init(&it, lv->by_uuid);
	while (g_hash_table_iter_next(&it, NULL, &value))
		if (!((LibvirtBackend *)value)->seen)
			g_ptr_array_add(stale, value);
	for (guint i = 0; i < stale->len; i++)
		forget(lv, g_ptr_array_index(stale, i), "no longer running");
	g_ptr_array_unref(stale);
	vmcg_daemon_kick(lv->d);
}

static gboolean on_retry(gpointer userdata)
{
	VmcgLibvirt *lv = userdata;

	lv->retry_id = 0;
	lv_open(lv);
	return G_SOURCE_REMOVE;
}

static void schedule_reopen(VmcgLibvirt *lv)
{
	/* QMP's schedule: 0.5 s, doubling to 30 s. */
	guint ms = vmcg_qmp_reconnect_next_ms(lv->retry_ms, 500, 30000, false);

	lv->retry_ms = ms;
	lv->state = LV_DOWN;
	if (!lv->retry_id)
		lv->retry_id = g_timeout_add(ms, on_retry, lv);
}

static void on_open_failed(VmcgLibvirt *lv, const VmcgLvResult *r)
{
	g_free(lv->error);
	lv->error = g_strdup(r->error.message);
	/* Once per outage: a host without libvirtd is not an error worth a line a minute. */
	if (!lv->warned)
		g_warning("libvirt: cannot connect (%s); retrying, libvirt domains are not "
			  "managed until then",
			  r->error.message);
	else
		vmcg_debug("libvirt: cannot connect: %s", r->error.message);
	lv->warned = TRUE;
	schedule_reopen(lv);
}

/*
 * The balloon's size, from an event or the statistics (KiB): reported, and
 * checked for someone else's hand (vmcg_policy_balloon_external()).
 */
static void balloon_seen(VmcgLibvirt *lv, LibvirtBackend *b, uint64_t kib)
{
	uint64_t target = vmcg_dvm_balloon_target(b->vm), actual;
	const uint64_t far = EXTERNAL_SLACK_BYTES;

	if (b->no_balloon || !kib || kib > (UINT64_MAX >> 10))
		return;
	actual = kib << 10;
	if (vmcg_dvm_ram_bytes(b->vm) && actual > vmcg_dvm_ram_bytes(b->vm))
		return;
	if (target != b->ref_target || !b->ref_actual) {
		b->ref_target = target;
		b->ref_actual = b->actual ? b->actual : actual;
	}
	if (target &&
	    (actual > target ? actual - target : target - actual) <
		    (b->ref_actual > target ? b->ref_actual - target : target - b->ref_actual))
		b->ref_actual = actual;
	if (actual != b->actual) {
		b->actual = actual;
		vmcg_dvm_backend_balloon(b->vm, actual);
	}
	/* Moved away from what vmcgd asked: an operator's virsh setmem, say. */
	if (vmcg_policy_balloon_external(b->ref_actual, actual, target, far)) {
		json_object *data = json_object_new_object();

		json_object_object_add(data, "actual", json_object_new_uint64(actual));
		json_object_object_add(data, "from", json_object_new_uint64(b->ref_actual));
		json_object_object_add(data, "target",
				       target ? json_object_new_uint64(target) : NULL);
		b->want_unsent = FALSE;
		b->ref_actual = actual;
		b->ref_target = 0;
		vmcg_dvm_backend_balloon_external(b->vm);
		emit_domain_event(lv, VMCG_EV_BALLOON_EXTERNAL, b, data);
	}
}

static void on_stats(VmcgLibvirt *lv, const VmcgLvResult *r)
{
	lv->stats_in_flight = FALSE;
	if (r->error.code) {
		vmcg_debug("libvirt: %s", r->error.message);
		return;
	}
	for (guint i = 0; i < r->stats->len; i++) {
		const VmcgLvStats *s = &g_array_index(r->stats, VmcgLvStats, i);
		LibvirtBackend *b = find(lv, s->uuid);
		VmcgGuestStats gs;

		if (!b || b->no_balloon)
			continue;
		if (s->has_current)
			balloon_seen(lv, b, s->current);
		if (!vmcg_lv_guest_stats(s, vmcg_dvm_ram_bytes(b->vm), &gs))
			continue;
		/* The guest's own timestamp did not move: it stopped updating; they age out. */
		if (b->has_stats && s->last_update == b->last_update)
			continue;
		b->has_stats = TRUE;
		b->last_update = s->last_update;
		vmcg_dvm_backend_stats(b->vm, &gs);
	}
}

static void on_done(VmcgLibvirt *lv, const VmcgLvResult *r)
{
	static const char *const ops[] = {
		[VMCG_LV_OP_SETMEM] = "set its balloon",
		[VMCG_LV_OP_PERIOD] = "set its stats period",
		[VMCG_LV_OP_SUSPEND] = "suspend it",
		[VMCG_LV_OP_RESUME] = "resume it",
		[VMCG_LV_OP_DESTROY] = "destroy it",
	};
	LibvirtBackend *b = find(lv, r->uuid);
	int64_t now = g_get_monotonic_time();

	if (!b)
		return;
	if (r->op == VMCG_LV_OP_SETMEM)
		b->setmem_in_flight = FALSE;
	if (!r->error.code) {
		if (r->op == VMCG_LV_OP_SUSPEND)
			vmcg_dvm_backend_paused(b->vm);
		return;
	}
	switch (vmcg_lv_error_class(r->error.code)) {
	case VMCG_LV_ERR_RETRY:
		/* A job holds the domain (or libvirtd is busy): the target goes again next tick. */
		if (r->op == VMCG_LV_OP_SETMEM && !b->want_unsent) {
			b->want_unsent = TRUE;
			b->want_bytes = r->arg << 10;
		}
		vmcg_debug("VM %s: cannot %s yet: %s", vmcg_dvm_name(b->vm), ops[r->op],
			   r->error.message);
		return;
	case VMCG_LV_ERR_GONE:
		return; /* its stop event follows */
	case VMCG_LV_ERR_NO_BALLOON:
		if (r->op == VMCG_LV_OP_SETMEM || r->op == VMCG_LV_OP_PERIOD) {
			b->no_balloon = "libvirt cannot drive its balloon";
			vmcg_dvm_backend_no_balloon(b->vm, b->no_balloon);
			g_warning("VM %s: charged, not ballooned: %s", vmcg_dvm_name(b->vm),
				  r->error.message);
			return;
		}
		break;
	case VMCG_LV_ERR_FAIL:
		break;
	}
	if (!b->warned_usec || now - b->warned_usec >= WARN_PERIOD_USEC) {
		g_warning("VM %s: cannot %s: %s", vmcg_dvm_name(b->vm), ops[r->op],
			  r->error.message);
		b->warned_usec = now;
	}
}

static void on_result(const VmcgLvResult *r, gpointer userdata)
{
	VmcgLibvirt *lv = userdata;
	LibvirtBackend *b;

	results_seen++;
	if (r->kind == VMCG_LV_STATS)
		stats_seen++;
	/* A result of a connection since replaced: the new one reads everything again. */
	if (r->gen != lv->gen) {
		if (r->kind == VMCG_LV_STATS)
			lv->stats_in_flight = FALSE;
		if (r->kind == VMCG_LV_DONE && (b = find(lv, r->uuid)) &&
		    r->op == VMCG_LV_OP_SETMEM)
			b->setmem_in_flight = FALSE;
		return;
	}
	switch (r->kind) {
	case VMCG_LV_OPENED:
		on_opened(lv, r);
		break;
	case VMCG_LV_OPEN_FAILED:
		on_open_failed(lv, r);
		break;
	case VMCG_LV_DOMAIN:
		adopt(lv, r->domain);
		vmcg_daemon_kick(lv->d);
		break;
	case VMCG_LV_DOMAIN_GONE:
		/* Not running (0), or undefined: gone. Not connected: the reopen tells. */
		if ((b = find(lv, r->uuid)) &&
		    (!r->error.code || r->error.code == VIR_ERR_NO_DOMAIN))
			forget(lv, b, "no longer running");
		break;
	case VMCG_LV_STATS:
		on_stats(lv, r);
		break;
	case VMCG_LV_DONE:
		on_done(lv, r);
		break;
	}
}

static void on_lifecycle(const char *uuid, int event, int detail, gpointer userdata)
{
	VmcgLibvirt *lv = userdata;
	LibvirtBackend *b = find(lv, uuid);

	if (lv->state != LV_UP)
		return;
	switch (event) {
	case VIR_DOMAIN_EVENT_STARTED:
		/* On a migration's destination too: adopted on its terms, as it is. */
		vmcg_lv_refresh(lv->conn, uuid);
		break;
	case VIR_DOMAIN_EVENT_STOPPED:
		/* Destroyed, shut down, crashed, migrated away, saved: its charge leaves now. */
		if (b)
			forget(lv, b,
			       detail == VIR_DOMAIN_EVENT_STOPPED_MIGRATED  ? "migrated away"
			       : detail == VIR_DOMAIN_EVENT_STOPPED_CRASHED ? "crashed"
									    : "stopped");
		break;
	case VIR_DOMAIN_EVENT_SUSPENDED:
		if (!b)
			break;
		if (detail == VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED ||
		    detail == VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY)
			b->migrating = TRUE;
		else if (b->pause_asked)
			vmcg_dvm_backend_paused(b->vm);
		break;
	case VIR_DOMAIN_EVENT_RESUMED:
		if (!b)
			break;
		/* A migration that failed resumes here: the balloon is ours again. */
		b->migrating = FALSE;
		b->pause_asked = FALSE;
		vmcg_dvm_backend_resumed(b->vm);
		break;
	default:
		break;
	}
}

static void on_metadata(const char *uuid, gpointer userdata)
{
	VmcgLibvirt *lv = userdata;

	if (lv->state == LV_UP && find(lv, uuid))
		vmcg_lv_refresh(lv->conn, uuid);
}

static void on_balloon(const char *uuid, uint64_t actual_kib, gpointer userdata)
{
	VmcgLibvirt *lv = userdata;
	LibvirtBackend *b = find(lv, uuid);

	if (b)
		balloon_seen(lv, b, actual_kib);
}

static void on_migrating(const char *uuid, gpointer userdata)
{
	LibvirtBackend *b = find(userdata, uuid);

	if (b && !b->migrating) {
		g_info("VM %s: migrating: its balloon target is frozen", vmcg_dvm_name(b->vm));
		b->migrating = TRUE;
	}
}

static void on_job_done(const char *uuid, gpointer userdata)
{
	LibvirtBackend *b = find(userdata, uuid);

	/* A migration that finished here stops the domain (STOPPED follows); else it stays. */
	if (b)
		b->migrating = FALSE;
}

static void on_closed(unsigned gen, const char *why, gpointer userdata)
{
	VmcgLibvirt *lv = userdata;

	if (gen != lv->gen || lv->state != LV_UP)
		return;
	lv->closes++;
	g_free(lv->error);
	lv->error = g_strdup(why);
	/*
	 * The VMs stay as they are: their QEMUs run on without libvirtd, their
	 * charges are still sampled, their balloons are left where they are.
	 * The reopen reads every domain again and forgets the ones gone.
	 */
	g_warning("libvirt: connection to %s lost (%s); reconnecting, %u domains keep their "
		  "charges meanwhile",
		  lv->uri, why, g_hash_table_size(lv->by_uuid));
	lv->warned = TRUE;
	lv->retry_ms = 0;
	schedule_reopen(lv);
}

static const VmcgLvCallbacks callbacks = {
	.result = on_result,
	.lifecycle = on_lifecycle,
	.metadata = on_metadata,
	.balloon = on_balloon,
	.migrating = on_migrating,
	.job_done = on_job_done,
	.closed = on_closed,
};

/* ---- the connection's life ---- */

static void lv_open(VmcgLibvirt *lv)
{
	lv->state = LV_CONNECTING;
	lv->stats_in_flight = FALSE;
	lv->gen = vmcg_lv_open(lv->conn);
}

VmcgLibvirt *vmcg_libvirt_new(VmcgDaemon *d, const char *uri, const char *default_group)
{
	VmcgLibvirt *lv = g_new0(VmcgLibvirt, 1);

	lv->d = d;
	lv->uri = g_strdup(uri ? uri : "");
	lv->default_group = g_strdup(default_group ? default_group : "/");
	lv->by_uuid = g_hash_table_new(g_str_hash, g_str_equal);
	lv->state = LV_OFF;
	return lv;
}

void vmcg_libvirt_start(VmcgLibvirt *lv)
{
	if (!*lv->uri || lv->conn)
		return;
	lv->conn = vmcg_lv_conn_new(lv->uri, &callbacks, lv);
	lv_open(lv);
}

void vmcg_libvirt_free(VmcgLibvirt *lv)
{
	GList *all;

	if (!lv)
		return;
	if (lv->retry_id)
		g_source_remove(lv->retry_id);
	vmcg_lv_conn_free(lv->conn);
	lv->conn = NULL;
	all = g_hash_table_get_values(lv->by_uuid);
	for (GList *l = all; l; l = l->next)
		vmcg_daemon_vm_forget(lv->d, ((LibvirtBackend *)l->data)->vm);
	g_list_free(all);
	g_hash_table_unref(lv->by_uuid);
	g_free(lv->uri);
	g_free(lv->default_group);
	g_free(lv->error);
	g_free(lv);
}

void vmcg_libvirt_status(VmcgLibvirt *lv, VmcgLibvirtStatus *ret)
{
	static const char *const states[] = { "off", "connecting", "connected", "disconnected" };

	*ret = (VmcgLibvirtStatus){
		.uri = lv->uri,
		.state = states[lv->state],
		.error = lv->error,
		.domains = g_hash_table_size(lv->by_uuid),
		.opens = lv->opens,
		.closes = lv->closes,
		.pending = lv->conn ? vmcg_lv_pending(lv->conn) : 0,
	};
}
