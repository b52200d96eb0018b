// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The guest pressure channel's protocol, pure (channel-proto.h): lines,
 * guest messages, host messages, rates.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "channel-proto.h"
#include "json-stream.h"

/*
 * 8: a report nests three deep (report, psi, some); room for members a
 * minor version may add, far below anything costly.
 */
#define MAX_DEPTH 8

/*
 * 1 MiB: what json-c may allocate for one line. The worst 4 KiB line
 * (json-stream.h: ~264 bytes of objects per byte of [{},{},...]) stays
 * under it; nothing a real agent sends comes near (~2 KiB).
 */
#define MAX_TREE_BYTES ((size_t)1 << 20)

/* ---- lines ---- */

void vmcg_channel_lines_reset(VmcgChannelLines *l)
{
	l->len = 0;
	l->overflow = false;
}

VmcgChannelLine vmcg_channel_lines_feed(VmcgChannelLines *l, const char *buf, size_t len,
					size_t *ret_consumed, const char **ret_line,
					size_t *ret_len)
{
	const char *nl = memchr(buf, '\n', len);
	size_t take = nl ? (size_t)(nl - buf) : len;

	*ret_consumed = nl ? take + 1 : len;
	if (l->overflow) {
		if (!nl)
			return VMCG_CHANNEL_LINE_NONE;
		l->overflow = false;
		l->len = 0;
		return VMCG_CHANNEL_LINE_TOO_LONG;
	}
	/* The newline counts: a line of LINE_MAX bytes holds LINE_MAX - 1 before it. */
	if (l->len + take > VMCG_CHANNEL_LINE_MAX - 1) {
		l->len = 0;
		if (!nl) {
			l->overflow = true;
			return VMCG_CHANNEL_LINE_NONE;
		}
		return VMCG_CHANNEL_LINE_TOO_LONG;
	}
	memcpy(l->buf + l->len, buf, take);
	l->len += take;
	if (!nl)
		return VMCG_CHANNEL_LINE_NONE;
	*ret_line = l->buf;
	*ret_len = l->len;
	l->len = 0;
	return VMCG_CHANNEL_LINE_OK;
}

/* ---- guest messages ---- */

static const char *const drop_names[_VMCG_CHANNEL_DROP_COUNT] = {
	[VMCG_CHANNEL_DROP_NONE] = "none",	   [VMCG_CHANNEL_DROP_MALFORMED] = "malformed",
	[VMCG_CHANNEL_DROP_TOO_LONG] = "too-long", [VMCG_CHANNEL_DROP_UNKNOWN] = "unknown",
	[VMCG_CHANNEL_DROP_BOUNDS] = "bounds",	   [VMCG_CHANNEL_DROP_EARLY] = "early",
	[VMCG_CHANNEL_DROP_RATE] = "rate",	   [VMCG_CHANNEL_DROP_MUTED] = "muted",
};

const char *vmcg_channel_drop_to_string(VmcgChannelDrop why)
{
	return (unsigned)why < _VMCG_CHANNEL_DROP_COUNT ? drop_names[why] : "?";
}

/*
 * Malformed, too long and out of bounds count toward the mute: a working
 * agent sends none. An unknown type does not (a newer minor version may
 * send one every interval), nor does a report early or too fast (counted,
 * and the flood rule bounds them).
 */
bool vmcg_channel_drop_is_malformed(VmcgChannelDrop why)
{
	return why == VMCG_CHANNEL_DROP_MALFORMED || why == VMCG_CHANNEL_DROP_TOO_LONG ||
	       why == VMCG_CHANNEL_DROP_BOUNDS;
}

__attribute__((format(printf, 4, 5))) static VmcgChannelDrop
fail(VmcgChannelDrop why, char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errbuf && errlen) {
		va_start(ap, fmt);
		vsnprintf(errbuf, errlen, fmt, ap);
		va_end(ap);
	}
	return why;
}

/* A non-negative JSON integer member; absent: 0 and *ret_has false. */
static VmcgChannelDrop get_u64(json_object *o, const char *key, bool required, bool *ret_has,
			       uint64_t *ret, char *errbuf, size_t errlen)
{
	json_object *v;
	int64_t i;

	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
		if (required)
			return fail(VMCG_CHANNEL_DROP_MALFORMED, errbuf, errlen, "no \"%s\"", key);
		if (ret_has)
			*ret_has = false;
		return VMCG_CHANNEL_DROP_NONE;
	}
	if (!json_object_is_type(v, json_type_int))
		return fail(VMCG_CHANNEL_DROP_MALFORMED, errbuf, errlen, "\"%s\" is not an integer",
			    key);
	errno = 0;
	i = json_object_get_int64(v);
	if (i < 0)
		return fail(VMCG_CHANNEL_DROP_MALFORMED, errbuf, errlen, "\"%s\" is negative", key);
	/* json-c keeps integers above INT64_MAX as uint64: get_int64 clamps them. */
	*ret = i == INT64_MAX ? json_object_get_uint64(v) : (uint64_t)i;
	if (ret_has)
		*ret_has = true;
	return VMCG_CHANNEL_DROP_NONE;
}

static VmcgChannelDrop parse_hello(json_object *o, VmcgChannelMsg *m, char *errbuf, size_t errlen)
{
	json_object *v;
	const char *s;
	size_t n;

	if (!json_object_object_get_ex(o, "version", &v) || !json_object_is_type(v, json_type_int))
		return fail(VMCG_CHANNEL_DROP_MALFORMED, errbuf, errlen,
			    "hello without an integer \"version\"");
	m->version = json_object_get_int64(v);
	m->agent[0] = '\0';
	if (json_object_object_get_ex(o, "agent", &v) && !json_object_is_type(v, json_type_null)) {
		if (!json_object_is_type(v, json_type_string))
			return fail(VMCG_CHANNEL_DROP_MALFORMED, errbuf, errlen,
				    "hello: \"agent\" is not a string");
		s = json_object_get_string(v);
		n = (size_t)json_object_get_string_len(v);
		if (n > VMCG_CHANNEL_AGENT_MAX)
			return fail(VMCG_CHANNEL_DROP_MALFORMED, errbuf, errlen,
				    "hello: \"agent\" of %zu bytes (at most %d)", n,
				    VMCG_CHANNEL_AGENT_MAX);
		/* Shown in logs and the API: no control characters (the framer checked UTF-8). */
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
				return fail(VMCG_CHANNEL_DROP_MALFORMED, errbuf, errlen,
					    "hello: \"agent\" has a control character");
		memcpy(m->agent, s, n);
		m->agent[n] = '\0';
	}
	return VMCG_CHANNEL_DROP_NONE;
}

/* psi.some or psi.full: avg10 (a number, 0..100) and total (usec). */
static VmcgChannelDrop parse_psi_line(json_object *psi, const char *key, uint32_t *ret_avg10,
				      uint64_t *ret_total, char *errbuf, size_t errlen)
{
	json_object *o, *v;
	VmcgChannelDrop r;
	double avg;

	if (!json_object_object_get_ex(psi, key, &o) || !json_object_is_type(o, json_type_object))
		return fail(VMCG_CHANNEL_DROP_MALFORMED, errbuf, errlen,
			    "report: psi.%s is not an object", key);
	if (!json_object_object_get_ex(o, "avg10", &v) ||
	    !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
		return fail(VMCG_CHANNEL_DROP_MALFORMED, errbuf, errlen,
			    "report: psi.%s.avg10 is not a number", key);
	avg = json_object_get_double(v);
	if (!(avg >= 0.0 && avg <= 100.0))
		return fail(VMCG_CHANNEL_DROP_BOUNDS, errbuf, errlen,
			    "report: psi.%s.avg10 %g is outside 0 to 100", key, avg);
	*ret_avg10 = (uint32_t)(avg * 100.0 + 0.5);
	r = get_u64(o, "total", true, NULL, ret_total, errbuf, errlen);
	if (r)
		return r;
	return VMCG_CHANNEL_DROP_NONE;
}

static VmcgChannelDrop parse_report(json_object *o, uint64_t ram_bytes,
				    const VmcgChannelReport *last, VmcgChannelMsg *m, char *errbuf,
				    size_t errlen)
{
	VmcgChannelReport *rep = &m->report;
	json_object *psi, *mem;
	VmcgChannelDrop r;
	struct {
		const char *key;
		bool *has;
		uint64_t *val;
	} sizes[] = {
		{ "available", &rep->has_available, &rep->available },
		{ "file", &rep->has_file, &rep->file },
		{ "anon", &rep->has_anon, &rep->anon },
	};

	memset(rep, 0, sizeof(*rep));
	r = get_u64(o, "seq", true, NULL, &rep->seq, errbuf, errlen);
	if (r)
		return r;
	if (json_object_object_get_ex(o, "psi", &psi) &&
	    !json_object_is_type(psi, json_type_null)) {
		if (!json_object_is_type(psi, json_type_object))
			return fail(VMCG_CHANNEL_DROP_MALFORMED, errbuf, errlen,
				    "report: \"psi\" is not an object");
		r = parse_psi_line(psi, "some", &rep->some_avg10_centi, &rep->some_total_usec,
				   errbuf, errlen);
		if (!r)
			r = parse_psi_line(psi, "full", &rep->full_avg10_centi,
					   &rep->full_total_usec, errbuf, errlen);
		if (r)
			return r;
		rep->has_psi = true;
		if (last && last->has_psi &&
		    (rep->some_total_usec < last->some_total_usec ||
		     rep->full_total_usec < last->full_total_usec))
			return fail(VMCG_CHANNEL_DROP_BOUNDS, errbuf, errlen,
				    "report: a psi total went backwards");
	}
	if (json_object_object_get_ex(o, "mem", &mem) &&
	    !json_object_is_type(mem, json_type_null)) {
		if (!json_object_is_type(mem, json_type_object))
			return fail(VMCG_CHANNEL_DROP_MALFORMED, errbuf, errlen,
				    "report: \"mem\" is not an object");
		for (size_t i = 0; i < G_N_ELEMENTS(sizes); i++) {
			r = get_u64(mem, sizes[i].key, false, sizes[i].has, sizes[i].val, errbuf,
				    errlen);
			if (r)
				return r;
			if (*sizes[i].has && ram_bytes && *sizes[i].val > ram_bytes)
				return fail(VMCG_CHANNEL_DROP_BOUNDS, errbuf, errlen,
					    "report: mem.%s %" PRIu64
					    " is above the VM's RAM (%" PRIu64 ")",
					    sizes[i].key, *sizes[i].val, ram_bytes);
		}
	}
	return VMCG_CHANNEL_DROP_NONE;
}

VmcgChannelDrop vmcg_channel_parse(const char *line, size_t len, uint64_t ram_bytes,
				   const VmcgChannelReport *last, VmcgChannelMsg *ret, char *errbuf,
				   size_t errlen)
{
	const VmcgJsonStreamOptions opts = {
		.framing = VMCG_JSON_STREAM_NEWLINE,
		.max_message_bytes = VMCG_CHANNEL_LINE_MAX,
		.max_tree_bytes = MAX_TREE_BYTES,
		.max_depth = MAX_DEPTH,
		.what = "channel message",
	};
	g_autoptr(json_object) obj = NULL;
	g_autoptr(GError) error = NULL;
	VmcgChannelMsg m;
	VmcgChannelDrop r;
	json_object *type;
	const char *t;

	if (len > VMCG_CHANNEL_LINE_MAX - 1)
		return fail(VMCG_CHANNEL_DROP_TOO_LONG, errbuf, errlen, "a line of %zu bytes", len);
	if (vmcg_json_parse_object(line, len, &opts, &obj, &error) < 0)
		return fail(VMCG_CHANNEL_DROP_MALFORMED, errbuf, errlen, "%s", error->message);
	if (!json_object_object_get_ex(obj, "type", &type) ||
	    !json_object_is_type(type, json_type_string))
		return fail(VMCG_CHANNEL_DROP_MALFORMED, errbuf, errlen,
			    "no \"type\" string in the message");
	t = json_object_get_string(type);
	memset(&m, 0, sizeof(m));
	if (strcmp(t, "hello") == 0) {
		m.type = VMCG_CHANNEL_MSG_HELLO;
		r = parse_hello(obj, &m, errbuf, errlen);
	} else if (strcmp(t, "report") == 0) {
		m.type = VMCG_CHANNEL_MSG_REPORT;
		r = parse_report(obj, ram_bytes, last, &m, errbuf, errlen);
	} else {
		return fail(VMCG_CHANNEL_DROP_UNKNOWN, errbuf, errlen,
			    "a message of an unknown type");
	}
	if (r)
		return r;
	*ret = m;
	return VMCG_CHANNEL_DROP_NONE;
}

/* ---- host messages ---- */

static char *line_of(json_object *o)
{
	g_autoptr(json_object) owned = o;

	return g_strconcat(json_object_to_json_string_ext(
				   owned, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
			   "\n", NULL);
}

char *vmcg_channel_build_hello(const char *vm, uint32_t interval_ms)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "type", json_object_new_string("hello"));
	json_object_object_add(o, "version", json_object_new_int(VMCG_CHANNEL_VERSION));
	json_object_object_add(o, "vm", json_object_new_string(vm));
	json_object_object_add(o, "report-interval-ms", json_object_new_int64(interval_ms));
	return line_of(o);
}

char *vmcg_channel_build_config(uint32_t interval_ms)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "type", json_object_new_string("config"));
	json_object_object_add(o, "report-interval-ms", json_object_new_int64(interval_ms));
	return line_of(o);
}

char *vmcg_channel_build_pressure(VmcgVmpressureLevel level, uint64_t seq, const char *group,
				  uint64_t reclaim_bytes, uint64_t reclaim_within_ms)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "type", json_object_new_string("pressure"));
	json_object_object_add(o, "level",
			       json_object_new_string(vmcg_vmpressure_level_to_string(level)));
	json_object_object_add(o, "seq", json_object_new_uint64(seq));
	json_object_object_add(o, "group", json_object_new_string(group));
	json_object_object_add(o, "reclaim-bytes", json_object_new_uint64(reclaim_bytes));
	json_object_object_add(o, "reclaim-within-ms",
			       json_object_new_uint64(reclaim_bytes ? reclaim_within_ms : 0));
	return line_of(o);
}

/* ---- rates ---- */

bool vmcg_channel_rate_muted(VmcgChannelRate *r, uint64_t now_usec)
{
	if (!r->muted_until_usec)
		return false;
	if (now_usec < r->muted_until_usec)
		return true;
	/* The mute ran out: the guest starts with clean windows. */
	r->muted_until_usec = 0;
	r->flood_start_usec = r->bad_start_usec = 0;
	r->flood_msgs = r->bad_msgs = 0;
	return false;
}

static VmcgChannelVerdict mute(VmcgChannelRate *r, uint64_t now_usec)
{
	/* +1: now_usec may be 0 in tests, and 0 means "not muted". */
	r->muted_until_usec = now_usec + VMCG_CHANNEL_MUTE_USEC + 1;
	return VMCG_CHANNEL_MUTED_NOW;
}

/* Fixed windows: the first message opens one, it lasts @window_usec. */
static uint32_t count_in_window(uint64_t *start, uint32_t *n, uint64_t now_usec,
				uint64_t window_usec)
{
	if (!*start || now_usec - *start >= window_usec) {
		*start = now_usec ? now_usec : 1;
		*n = 0;
	}
	return ++*n;
}

VmcgChannelVerdict vmcg_channel_rate_message(VmcgChannelRate *r, uint64_t now_usec)
{
	if (vmcg_channel_rate_muted(r, now_usec))
		return VMCG_CHANNEL_MUTED;
	if (count_in_window(&r->flood_start_usec, &r->flood_msgs, now_usec,
			    VMCG_CHANNEL_FLOOD_WINDOW_USEC) > VMCG_CHANNEL_FLOOD_MSGS)
		return mute(r, now_usec);
	return VMCG_CHANNEL_PASS;
}

VmcgChannelVerdict vmcg_channel_rate_malformed(VmcgChannelRate *r, uint64_t now_usec)
{
	if (vmcg_channel_rate_muted(r, now_usec))
		return VMCG_CHANNEL_MUTED;
	if (count_in_window(&r->bad_start_usec, &r->bad_msgs, now_usec,
			    VMCG_CHANNEL_BAD_WINDOW_USEC) >= VMCG_CHANNEL_BAD_MSGS)
		return mute(r, now_usec);
	return VMCG_CHANNEL_PASS;
}

bool vmcg_channel_rate_report(VmcgChannelRate *r, uint64_t now_usec, uint64_t interval_usec)
{
	uint64_t cost = interval_usec / 2;

	if (!r->report_last_usec) {
		r->report_budget_usec = interval_usec; /* a full bucket: two reports */
	} else {
		r->report_budget_usec += now_usec - r->report_last_usec;
		if (r->report_budget_usec > interval_usec)
			r->report_budget_usec = interval_usec;
	}
	r->report_last_usec = now_usec ? now_usec : 1;
	if (r->report_budget_usec < cost)
		return false;
	r->report_budget_usec -= cost;
	return true;
}
