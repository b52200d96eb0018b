// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Parsers of the QMP replies and events vmcgd reads (see qmp-reply.h).
 * Pure: what tests/unit/test-qmp-reply.c and tests/fuzz/fuzz-qmp-reply.c
 * drive. The acceptance rules are those the qmp backend once applied inline.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "qmp-reply.h"

static bool G_GNUC_PRINTF(3, 4) fail(GError **error, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	g_propagate_error(error, g_error_new_valist(VMCG_QMP_ERROR, code, fmt, ap));
	va_end(ap);
	return false;
}

static const char *type_name(json_object *o)
{
	return json_type_to_name(json_object_get_type(o));
}

static bool want_type(json_object *o, json_type type, const char *what, GError **error)
{
	if (json_object_is_type(o, type))
		return true;
	return fail(error, VMCG_QMP_ERROR_BAD_REPLY, "%s must be %s %s, not %s", what,
		    strchr("aeiou", json_type_to_name(type)[0]) ? "an" : "a",
		    json_type_to_name(type), type_name(o));
}

/* @o's member @key, of @type; an error names @where. */
static bool member(json_object *o, const char *where, const char *key, json_type type,
		   json_object **ret, GError **error)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return fail(error, VMCG_QMP_ERROR_BAD_REPLY, "%s: no \"%s\"", where, key);
	if (!json_object_is_type(v, type)) {
		/* The name is only made for the error: this runs for every reply. */
		g_autofree char *what = g_strdup_printf("%s: \"%s\"", where, key);

		return want_type(v, type, what, error);
	}
	*ret = v;
	return true;
}

static uint64_t size_limit(uint64_t ram_limit_bytes)
{
	return ram_limit_bytes ? ram_limit_bytes : VMCG_QMP_SIZE_LIMIT_DEFAULT_BYTES;
}

/*
 * An integer as int64. json-c keeps integers above INT64_MAX as uint64 and
 * json_object_get_int64() clamps them to INT64_MAX: above every limit here,
 * so they are refused as out of range, never wrapped.
 */
static int64_t int_value(json_object *v)
{
	return json_object_get_int64(v);
}

/* {"actual": <bytes>}: query-balloon's reply and BALLOON_CHANGE's data. */
static bool parse_actual(json_object *o, const char *where, uint64_t ram_limit_bytes,
			 uint64_t *ret_actual_bytes, GError **error)
{
	uint64_t lim = size_limit(ram_limit_bytes);
	json_object *a;
	int64_t v;

	if (!want_type(o, json_type_object, where, error) ||
	    !member(o, where, "actual", json_type_int, &a, error))
		return false;
	v = int_value(a);
	if (v <= 0 || (uint64_t)v > lim)
		return fail(error, VMCG_QMP_ERROR_BAD_REPLY,
			    "%s: \"actual\" %s is out of range (1..%" PRIu64 " bytes)", where,
			    json_object_get_string(a), lim);
	*ret_actual_bytes = (uint64_t)v;
	return true;
}

bool vmcg_qmp_parse_balloon(json_object *ret, uint64_t ram_limit_bytes, uint64_t *ret_actual_bytes,
			    GError **error)
{
	return parse_actual(ret, "query-balloon", ram_limit_bytes, ret_actual_bytes, error);
}

bool vmcg_qmp_parse_balloon_change(json_object *data, uint64_t ram_limit_bytes,
				   uint64_t *ret_actual_bytes, GError **error)
{
	if (!data)
		return fail(error, VMCG_QMP_ERROR_BAD_REPLY, "BALLOON_CHANGE: no \"data\"");
	return parse_actual(data, "BALLOON_CHANGE", ram_limit_bytes, ret_actual_bytes, error);
}

/*
 * One guest statistic, -1 when absent: missing, not an integer, negative,
 * or UINT64_MAX, QEMU's "the guest never reported it" (hw/virtio/
 * virtio-balloon.c initializes every stat to -1 in a uint64_t).
 */
static int64_t stat_value(json_object *stats, const char *key)
{
	json_object *v;
	int64_t x;

	if (!json_object_object_get_ex(stats, key, &v) || !json_object_is_type(v, json_type_int))
		return -1;
	if (json_object_get_uint64(v) == UINT64_MAX)
		return -1;
	x = int_value(v);
	return x < 0 ? -1 : x;
}

bool vmcg_qmp_parse_guest_stats(json_object *ret, uint64_t ram_limit_bytes,
				VmcgQmpGuestStats *ret_stats, GError **error)
{
	static const char where[] = "guest-stats";
	uint64_t lim = size_limit(ram_limit_bytes);
	json_object *stats, *lu;
	int64_t total, avail, freem, cache;

	if (!want_type(ret, json_type_object, where, error) ||
	    !member(ret, where, "stats", json_type_object, &stats, error) ||
	    !member(ret, where, "last-update", json_type_int, &lu, error))
		return false;
	total = stat_value(stats, "stat-total-memory");
	avail = stat_value(stats, "stat-available-memory");
	freem = stat_value(stats, "stat-free-memory");
	cache = stat_value(stats, "stat-disk-caches");
	if (total < 0 || avail < 0)
		return fail(error, VMCG_QMP_ERROR_NO_VALUE,
			    "guest-stats: the guest has not reported its %s memory",
			    total < 0 ? "total" : "available");
	if (total == 0 || (uint64_t)total > lim)
		return fail(error, VMCG_QMP_ERROR_BAD_REPLY,
			    "guest-stats: stat-total-memory %" PRId64
			    " is out of range (1..%" PRIu64 " bytes)",
			    total, lim);
	if (avail > total)
		return fail(error, VMCG_QMP_ERROR_BAD_REPLY,
			    "guest-stats: stat-available-memory %" PRId64
			    " is above stat-total-memory %" PRId64,
			    avail, total);
	if (freem > total)
		return fail(error, VMCG_QMP_ERROR_BAD_REPLY,
			    "guest-stats: stat-free-memory %" PRId64
			    " is above stat-total-memory %" PRId64,
			    freem, total);
	if (cache > total)
		return fail(error, VMCG_QMP_ERROR_BAD_REPLY,
			    "guest-stats: stat-disk-caches %" PRId64
			    " is above stat-total-memory %" PRId64,
			    cache, total);
	*ret_stats = (VmcgQmpGuestStats){
		.total_bytes = (uint64_t)total,
		.available_bytes = (uint64_t)avail,
		.free_bytes = freem,
		.cache_bytes = cache,
		.last_update = int_value(lu),
	};
	return true;
}

bool vmcg_qmp_fast_balloon(const VmcgJsonFlat *f, int obj, uint64_t ram_limit_bytes,
			   uint64_t *ret_actual_bytes)
{
	int a;

	/* parse_actual(): an int in 1..limit; a uint64 above INT64_MAX is out of range. */
	if (obj < 0 || f->node[obj].type != VMCG_JSON_FLAT_OBJECT)
		return false;
	a = vmcg_json_flat_get_type(f, obj, "actual", VMCG_JSON_FLAT_INT);
	if (a < 0 || f->node[a].i <= 0 || (uint64_t)f->node[a].i > size_limit(ram_limit_bytes))
		return false;
	*ret_actual_bytes = (uint64_t)f->node[a].i;
	return true;
}

/*
 * stat_value() of a flat node: -1 for what it makes -1; false for a uint64
 * above INT64_MAX that is not UINT64_MAX (json-c clamps it, and the checks
 * then refuse it: left to them).
 */
static bool fast_stat(const VmcgJsonFlat *f, int stats, const char *key, int64_t *ret)
{
	int k = vmcg_json_flat_get(f, stats, key);

	*ret = -1;
	if (k < 0)
		return true;
	switch (f->node[k].type) {
	case VMCG_JSON_FLAT_INT:
		*ret = f->node[k].i < 0 ? -1 : f->node[k].i;
		return true;
	case VMCG_JSON_FLAT_UINT:
		return f->node[k].u == UINT64_MAX;
	default:
		return true; /* not an integer */
	}
}

bool vmcg_qmp_fast_guest_stats(const VmcgJsonFlat *f, int ret, uint64_t ram_limit_bytes,
			       VmcgQmpGuestStats *ret_stats)
{
	uint64_t lim = size_limit(ram_limit_bytes);
	int64_t total, avail, freem, cache;
	int stats, lu;

	if (ret < 0 || f->node[ret].type != VMCG_JSON_FLAT_OBJECT)
		return false;
	stats = vmcg_json_flat_get_type(f, ret, "stats", VMCG_JSON_FLAT_OBJECT);
	lu = vmcg_json_flat_get_type(f, ret, "last-update", VMCG_JSON_FLAT_INT);
	if (stats < 0 || lu < 0 || !fast_stat(f, stats, "stat-total-memory", &total) ||
	    !fast_stat(f, stats, "stat-available-memory", &avail) ||
	    !fast_stat(f, stats, "stat-free-memory", &freem) ||
	    !fast_stat(f, stats, "stat-disk-caches", &cache))
		return false;
	/* Every refusal of vmcg_qmp_parse_guest_stats(), declined. */
	if (total <= 0 || avail < 0 || (uint64_t)total > lim || avail > total || freem > total ||
	    cache > total)
		return false;
	*ret_stats = (VmcgQmpGuestStats){
		.total_bytes = (uint64_t)total,
		.available_bytes = (uint64_t)avail,
		.free_bytes = freem,
		.cache_bytes = cache,
		.last_update = f->node[lu].i,
	};
	return true;
}

bool vmcg_qmp_parse_memdev(json_object *ret, uint64_t *ret_size_bytes, GError **error)
{
	size_t n;

	if (!want_type(ret, json_type_array, "query-memdev", error))
		return false;
	n = json_object_array_length(ret);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(ret, i), *size;
		int64_t v;

		if (!json_object_is_type(e, json_type_object) ||
		    !json_object_object_get_ex(e, "size", &size) ||
		    !json_object_is_type(size, json_type_int))
			continue;
		v = int_value(size);
		if (v <= 0)
			continue;
		if ((uint64_t)v > VMCG_QMP_MEMDEV_MAX_BYTES)
			return fail(error, VMCG_QMP_ERROR_BAD_REPLY,
				    "query-memdev: memdev %zu: \"size\" %s is above %" PRIu64
				    " bytes",
				    i, json_object_get_string(size), VMCG_QMP_MEMDEV_MAX_BYTES);
		*ret_size_bytes = (uint64_t)v;
		return true;
	}
	return fail(error, VMCG_QMP_ERROR_NO_VALUE,
		    "query-memdev: no memdev with a positive \"size\" (of %zu)", n);
}

char *vmcg_qmp_balloon_qom_path(const char *child_name)
{
	return g_strdup_printf("/machine/peripheral%s/%s",
			       g_str_has_prefix(child_name, "device[") ? "-anon" : "", child_name);
}

bool vmcg_qmp_parse_balloon_child(json_object *ret, char **ret_qom_path, GError **error)
{
	size_t n;

	if (!want_type(ret, json_type_array, "qom-list", error))
		return false;
	n = json_object_array_length(ret);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(ret, i), *name, *type;

		if (!json_object_is_type(e, json_type_object) ||
		    !json_object_object_get_ex(e, "name", &name) ||
		    !json_object_object_get_ex(e, "type", &type) ||
		    !json_object_is_type(name, json_type_string) ||
		    !json_object_is_type(type, json_type_string))
			continue;
		if (g_str_has_prefix(json_object_get_string(type), "child<virtio-balloon")) {
			*ret_qom_path = vmcg_qmp_balloon_qom_path(json_object_get_string(name));
			return true;
		}
	}
	return fail(error, VMCG_QMP_ERROR_NO_VALUE, "qom-list: no virtio-balloon child (of %zu)",
		    n);
}

bool vmcg_qmp_parse_status(json_object *ret, bool *ret_running, const char **ret_status,
			   GError **error)
{
	json_object *running, *status;

	if (!want_type(ret, json_type_object, "query-status", error) ||
	    !member(ret, "query-status", "running", json_type_boolean, &running, error) ||
	    !member(ret, "query-status", "status", json_type_string, &status, error))
		return false;
	if (!*json_object_get_string(status))
		return fail(error, VMCG_QMP_ERROR_BAD_REPLY, "query-status: \"status\" is empty");
	*ret_running = json_object_get_boolean(running);
	if (ret_status)
		*ret_status = json_object_get_string(status);
	return true;
}

VmcgQmpEventKind vmcg_qmp_event_kind(const char *event)
{
	static const struct {
		const char *name;
		VmcgQmpEventKind kind;
	} events[] = {
		{ "BALLOON_CHANGE", VMCG_QMP_EVENT_BALLOON_CHANGE },
		{ "STOP", VMCG_QMP_EVENT_STOP },
		{ "RESUME", VMCG_QMP_EVENT_RESUME },
		{ "SHUTDOWN", VMCG_QMP_EVENT_SHUTDOWN },
	};

	for (size_t i = 0; event && i < G_N_ELEMENTS(events); i++)
		if (strcmp(event, events[i].name) == 0)
			return events[i].kind;
	return VMCG_QMP_EVENT_OTHER;
}
