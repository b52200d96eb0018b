// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The pure parts of vmcg-guest-agent: see agent-proto.h. Input is untrusted
 * (the host, /proc of a kernel we did not build, a config file an admin
 * typed), so every parser checks every byte it uses and says no clearly.
 */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent-proto.h"

static const char *const level_names[VMCG_AGENT_LEVEL_COUNT] = {
	[VMCG_AGENT_LEVEL_NONE] = "none",
	[VMCG_AGENT_LEVEL_LOW] = "low",
	[VMCG_AGENT_LEVEL_MEDIUM] = "medium",
	[VMCG_AGENT_LEVEL_CRITICAL] = "critical",
};

/*
 * 16 levels: the deepest message of version 1 is 1 deep; the room is for
 * members a later minor version may add, which the agent skips. json-c
 * recurses per level, so the bound is also a stack bound.
 */
#define MSG_DEPTH_MAX 16

const char *vmcg_agent_level_name(VmcgAgentLevel level)
{
	if ((unsigned)level >= VMCG_AGENT_LEVEL_COUNT)
		return NULL;
	return level_names[level];
}

int vmcg_agent_level_from_name(const char *name, VmcgAgentLevel *ret_level)
{
	for (unsigned i = 0; i < VMCG_AGENT_LEVEL_COUNT; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*ret_level = (VmcgAgentLevel)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* Copies a host string for logs: printable ASCII only, cut to fit. */
static void copy_printable(char *dst, size_t size, const char *src)
{
	size_t i = 0;

	for (; src[i] && i + 1 < size; i++)
		dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '_';
	dst[i] = '\0';
}

/*
 * A member that must be a JSON integer (not 1.0, not "1") in [min, max].
 * Returns 1 and sets *ret when present, 0 when absent, -EBADMSG otherwise.
 */
static int get_int(struct json_object *obj, const char *key, int64_t min, int64_t max, int64_t *ret)
{
	struct json_object *v;
	int64_t x;

	if (!json_object_object_get_ex(obj, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return -EBADMSG;
	x = json_object_get_int64(v);
	/* json-c keeps integers above INT64_MAX as uint64 and clamps here. */
	if (x == INT64_MAX && json_object_get_uint64(v) != (uint64_t)INT64_MAX)
		return -EBADMSG;
	if (x < min || x > max)
		return -EBADMSG;
	*ret = x;
	return 1;
}

static int get_string(struct json_object *obj, const char *key, const char **ret)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return -EBADMSG;
	*ret = json_object_get_string(v);
	return 1;
}

static int parse_interval(struct json_object *obj, bool required, uint32_t *ret)
{
	int64_t x = VMCG_AGENT_INTERVAL_DEFAULT_MS;
	int r = get_int(obj, "report-interval-ms", VMCG_AGENT_INTERVAL_MIN_MS,
			VMCG_AGENT_INTERVAL_MAX_MS, &x);

	if (r < 0)
		return r;
	if (r == 0 && required)
		return -EBADMSG;
	*ret = (uint32_t)x;
	return 0;
}

static int parse_object(struct json_object *obj, VmcgAgentMsg *msg)
{
	const char *type, *s;
	int64_t x;
	int r;

	if (get_string(obj, "type", &type) != 1)
		return -EBADMSG;
	if (strcmp(type, "hello") == 0) {
		msg->type = VMCG_AGENT_MSG_HELLO;
		/* Any major version parses: the caller says it does not speak it. */
		if (get_int(obj, "version", 0, INT64_MAX, &msg->version) != 1)
			return -EBADMSG;
		r = get_string(obj, "vm", &s);
		if (r < 0)
			return r;
		copy_printable(msg->vm, sizeof(msg->vm), r ? s : "");
		return parse_interval(obj, false, &msg->report_interval_ms);
	}
	if (strcmp(type, "pressure") == 0) {
		msg->type = VMCG_AGENT_MSG_PRESSURE;
		if (get_string(obj, "level", &s) != 1 ||
		    vmcg_agent_level_from_name(s, &msg->level) < 0)
			return -EBADMSG;
		if (get_int(obj, "seq", 0, INT64_MAX, &x) != 1)
			return -EBADMSG;
		msg->seq = (uint64_t)x;
		x = 0;
		if (get_int(obj, "reclaim-bytes", 0, INT64_MAX, &x) < 0)
			return -EBADMSG;
		msg->reclaim_bytes = (uint64_t)x;
		x = 0;
		if (get_int(obj, "reclaim-within-ms", 0, INT64_MAX, &x) < 0)
			return -EBADMSG;
		msg->reclaim_within_ms = (uint64_t)x;
		r = get_string(obj, "group", &s);
		if (r < 0)
			return r;
		copy_printable(msg->group, sizeof(msg->group), r ? s : "");
		return 0;
	}
	if (strcmp(type, "config") == 0) {
		msg->type = VMCG_AGENT_MSG_CONFIG;
		return parse_interval(obj, true, &msg->report_interval_ms);
	}
	return -ENOMSG;
}

/*
 * Strict UTF-8 (RFC 3629): json-c's own check lets overlong forms such as
 * C0 AF ("/") through, and the protocol says UTF-8.
 */
static bool utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		unsigned need;
		uint32_t cp, min;

		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			need = 1, cp = c & 0x1f, min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2, cp = c & 0x0f, min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (len - i <= need)
			return false;
		for (unsigned k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}

int vmcg_agent_msg_parse(const char *line, size_t len, VmcgAgentMsg *ret_msg)
{
	struct json_tokener *tok;
	struct json_object *obj;
	VmcgAgentMsg msg;
	size_t end;
	int r;

	if (len >= VMCG_AGENT_LINE_MAX)
		return -EMSGSIZE;
	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	if (len == 0)
		return -EBADMSG;
	/* json-c stops at a NUL and would take the rest for trailing bytes. */
	if (memchr(line, '\0', len) || !utf8_valid((const unsigned char *)line, len))
		return -EBADMSG;

	tok = json_tokener_new_ex(MSG_DEPTH_MAX);
	if (!tok)
		abort(); /* out of memory */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, line, (int)len);
	end = json_tokener_get_parse_end(tok);
	r = json_tokener_get_error(tok) == json_tokener_success ? 0 : -EBADMSG;
	json_tokener_free(tok);
	/* One object, and nothing after it ("{}{}" or "{} x" is not a line). */
	if (r == 0 && (!obj || end != len || !json_object_is_type(obj, json_type_object)))
		r = -EBADMSG;
	if (r == 0) {
		memset(&msg, 0, sizeof(msg));
		r = parse_object(obj, &msg);
	}
	json_object_put(obj);
	if (r < 0)
		return r;
	*ret_msg = msg;
	return 0;
}

static int finish(int n, size_t size)
{
	if (n < 0 || (size_t)n >= size)
		return -ENOSPC;
	return n;
}

int vmcg_agent_format_hello(char *buf, size_t size, const char *agent)
{
	/* "agent": at most 64 bytes, docs/guest-channel.md. */
	char name[65];
	size_t i = 0;

	for (; agent[i] && i < 64; i++) {
		char c = agent[i];
		name[i] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? c : '_';
	}
	name[i] = '\0';
	return finish(snprintf(buf, size, "{\"type\":\"hello\",\"version\":%d,\"agent\":\"%s\"}\n",
			       VMCG_AGENT_PROTO_VERSION, name),
		      size);
}

int vmcg_agent_format_report(char *buf, size_t size, uint64_t seq, const VmcgAgentPsi *psi,
			     const VmcgAgentMem *mem)
{
	size_t n = 0;
	int w;

#define APPEND(...)                                                          \
	do {                                                                 \
		w = snprintf(buf + n, n < size ? size - n : 0, __VA_ARGS__); \
		if (w < 0 || n + (size_t)w >= size)                          \
			return -ENOSPC;                                      \
		n += (size_t)w;                                              \
	} while (0)

	if (size == 0)
		return -ENOSPC;
	APPEND("{\"type\":\"report\",\"seq\":%" PRIu64, seq);
	if (psi)
		APPEND(",\"psi\":{\"some\":{\"avg10\":%.2f,\"total\":%" PRIu64
		       "},\"full\":{\"avg10\":%.2f,\"total\":%" PRIu64 "}}",
		       psi->some_avg10, psi->some_total_usec, psi->full_avg10,
		       psi->full_total_usec);
	if (mem && mem->present) {
		const char *sep = "";

		APPEND(",\"mem\":{");
		if (mem->present & VMCG_AGENT_MEM_AVAILABLE) {
			APPEND("\"available\":%" PRIu64, mem->available_bytes);
			sep = ",";
		}
		if (mem->present & VMCG_AGENT_MEM_FILE) {
			APPEND("%s\"file\":%" PRIu64, sep, mem->file_bytes);
			sep = ",";
		}
		if (mem->present & VMCG_AGENT_MEM_ANON)
			APPEND("%s\"anon\":%" PRIu64, sep, mem->anon_bytes);
		APPEND("}");
	}
	APPEND("}\n");
#undef APPEND
	return (int)n;
}

/* An unsigned decimal of exactly [s, end): no sign, no blanks, no excess. */
static int parse_u64(const char *s, const char *end, uint64_t *ret)
{
	uint64_t x = 0;

	if (s == end)
		return -EINVAL;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		if (x > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -ERANGE;
		x = x * 10 + (uint64_t)(*s - '0');
	}
	*ret = x;
	return 0;
}

/*
 * avg10 as psi_show() prints it: "%lu.%02lu". Parsed by hand (not strtod)
 * so "nan", "1e2", " 5" and locales are refused, and the bound is exact.
 */
static int parse_avg(const char *s, const char *end, double *ret)
{
	const char *dot = memchr(s, '.', (size_t)(end - s));
	uint64_t ip, fp = 0;
	double scale = 1;
	int r;

	r = parse_u64(s, dot ? dot : end, &ip);
	if (r < 0)
		return r == -ERANGE ? -EINVAL : r;
	if (dot) {
		/* At most 6 fraction digits: psi prints 2. */
		if (end - dot - 1 > 6 || parse_u64(dot + 1, end, &fp) < 0)
			return -EINVAL;
		for (const char *p = dot + 1; p < end; p++)
			scale *= 10;
	}
	if (ip > 100 || (ip == 100 && fp != 0))
		return -EINVAL;
	*ret = (double)ip + (double)fp / scale;
	return 0;
}

/* Parses one "some|full avg10=.. ... total=.." line's fields. */
static int psi_line(const char *p, const char *end, double *ret_avg, uint64_t *ret_total)
{
	bool have_avg = false, have_total = false;
	double avg = 0;
	uint64_t total = 0;
	int r;

	while (p < end) {
		const char *f = p, *eq, *fe;

		while (p < end && *p != ' ')
			p++;
		fe = p;
		if (p < end)
			p++; /* one blank between fields */
		if (fe == f)
			return -EINVAL;
		eq = memchr(f, '=', (size_t)(fe - f));
		if (!eq)
			return -EINVAL;
		if (eq - f == 5 && memcmp(f, "avg10", 5) == 0) {
			if (have_avg || parse_avg(eq + 1, fe, &avg) < 0)
				return -EINVAL;
			have_avg = true;
		} else if (eq - f == 5 && memcmp(f, "total", 5) == 0) {
			if (have_total)
				return -EINVAL;
			r = parse_u64(eq + 1, fe, &total);
			if (r < 0)
				return r;
			have_total = true;
		}
	}
	if (!have_avg || !have_total)
		return -EINVAL;
	*ret_avg = avg;
	*ret_total = total;
	return 0;
}

int vmcg_agent_psi_parse(const char *text, size_t len, VmcgAgentPsi *ret_psi)
{
	const char *p = text, *end = text + len;
	bool have_some = false, have_full = false;
	VmcgAgentPsi psi = { 0 };
	int r;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;

		if (le - p > 5 && memcmp(p, "some ", 5) == 0) {
			if (have_some)
				return -EINVAL;
			r = psi_line(p + 5, le, &psi.some_avg10, &psi.some_total_usec);
			have_some = true;
		} else if (le - p > 5 && memcmp(p, "full ", 5) == 0) {
			if (have_full)
				return -EINVAL;
			r = psi_line(p + 5, le, &psi.full_avg10, &psi.full_total_usec);
			have_full = true;
		} else {
			r = -EINVAL;
		}
		if (r < 0)
			return r;
		p = nl ? nl + 1 : end;
	}
	if (!have_some || !have_full)
		return -EINVAL;
	*ret_psi = psi;
	return 0;
}

enum {
	MI_AVAILABLE,
	MI_ACTIVE_FILE,
	MI_INACTIVE_FILE,
	MI_ACTIVE_ANON,
	MI_INACTIVE_ANON,
	MI_COUNT,
};

static const char *const meminfo_keys[MI_COUNT] = {
	"MemAvailable", "Active(file)", "Inactive(file)", "Active(anon)", "Inactive(anon)",
};

int vmcg_agent_meminfo_parse(const char *text, size_t len, VmcgAgentMem *ret_mem)
{
	const char *p = text, *end = text + len;
	uint64_t kb[MI_COUNT] = { 0 };
	unsigned seen = 0;
	VmcgAgentMem mem = { 0 };

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		const char *colon = memchr(p, ':', (size_t)(le - p));

		for (unsigned i = 0; colon && i < MI_COUNT; i++) {
			const char *v, *ve;
			int r;

			if ((size_t)(colon - p) != strlen(meminfo_keys[i]) ||
			    memcmp(p, meminfo_keys[i], (size_t)(colon - p)) != 0)
				continue;
			if (seen & (1u << i))
				return -EINVAL;
			/* "Key:   123 kB": blanks, digits, " kB", end of line. */
			v = colon + 1;
			while (v < le && *v == ' ')
				v++;
			ve = v;
			while (ve < le && *ve >= '0' && *ve <= '9')
				ve++;
			if (le - ve != 3 || memcmp(ve, " kB", 3) != 0)
				return -EINVAL;
			r = parse_u64(v, ve, &kb[i]);
			if (r < 0)
				return r;
			if (kb[i] > UINT64_MAX / 1024)
				return -ERANGE;
			seen |= 1u << i;
		}
		p = nl ? nl + 1 : end;
	}
	if (seen & (1u << MI_AVAILABLE)) {
		mem.available_bytes = kb[MI_AVAILABLE] * 1024;
		mem.present |= VMCG_AGENT_MEM_AVAILABLE;
	}
	if ((seen & (1u << MI_ACTIVE_FILE)) && (seen & (1u << MI_INACTIVE_FILE))) {
		if (kb[MI_ACTIVE_FILE] > UINT64_MAX / 1024 - kb[MI_INACTIVE_FILE])
			return -ERANGE;
		mem.file_bytes = (kb[MI_ACTIVE_FILE] + kb[MI_INACTIVE_FILE]) * 1024;
		mem.present |= VMCG_AGENT_MEM_FILE;
	}
	if ((seen & (1u << MI_ACTIVE_ANON)) && (seen & (1u << MI_INACTIVE_ANON))) {
		if (kb[MI_ACTIVE_ANON] > UINT64_MAX / 1024 - kb[MI_INACTIVE_ANON])
			return -ERANGE;
		mem.anon_bytes = (kb[MI_ACTIVE_ANON] + kb[MI_INACTIVE_ANON]) * 1024;
		mem.present |= VMCG_AGENT_MEM_ANON;
	}
	*ret_mem = mem;
	return 0;
}

void vmcg_agent_lines_init(VmcgAgentLines *lines)
{
	lines->len = 0;
	lines->skipping = false;
}

void vmcg_agent_lines_feed(VmcgAgentLines *lines, const char *data, size_t len, VmcgAgentLineFn fn,
			   void *opaque)
{
	while (len > 0) {
		const char *nl = memchr(data, '\n', len);
		size_t chunk = nl ? (size_t)(nl - data) : len;

		if (!lines->skipping) {
			if (lines->len + chunk > VMCG_AGENT_LINE_MAX - 1) {
				/* The newline would make it longer than the bound. */
				lines->skipping = true;
				lines->len = 0;
			} else {
				memcpy(lines->buf + lines->len, data, chunk);
				lines->len += chunk;
			}
		}
		if (!nl)
			return;
		if (lines->skipping) {
			fn(opaque, NULL, 0);
		} else {
			lines->buf[lines->len] = '\0';
			fn(opaque, lines->buf, lines->len);
		}
		lines->len = 0;
		lines->skipping = false;
		data = nl + 1;
		len -= chunk + 1;
	}
}

void vmcg_agent_config_init(VmcgAgentConfig *config)
{
	memset(config, 0, sizeof(*config));
	config->exec_timeout_ms = VMCG_AGENT_EXEC_TIMEOUT_DEFAULT_MS;
}

static void trim(const char **s, const char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t'))
		(*s)++;
	while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r'))
		(*e)--;
}

static bool span_is(const char *s, const char *e, const char *word)
{
	return (size_t)(e - s) == strlen(word) && memcmp(s, word, (size_t)(e - s)) == 0;
}

/* Config line bound: generous for a path, small enough to keep on the stack. */
#define CONFIG_LINE_MAX 1024

static const char *config_line(VmcgAgentConfig *c, const char *s, const char *e)
{
	const char *eq, *ks, *ke, *vs, *ve, *dot;
	VmcgAgentLevel level;
	char name[16];

	trim(&s, &e);
	if (s == e || *s == '#')
		return NULL;
	eq = memchr(s, '=', (size_t)(e - s));
	if (!eq)
		return "not key = value";
	ks = s;
	ke = eq;
	vs = eq + 1;
	ve = e;
	trim(&ks, &ke);
	trim(&vs, &ve);
	if (memchr(vs, '\0', (size_t)(ve - vs)))
		return "a NUL byte";
	if (span_is(ks, ke, "exec-timeout-ms")) {
		uint64_t ms;

		if (parse_u64(vs, ve, &ms) < 0 || ms < 100 || ms > 3600000)
			return "exec-timeout-ms must be 100 to 3600000";
		c->exec_timeout_ms = (uint32_t)ms;
		return NULL;
	}
	dot = memchr(ks, '.', (size_t)(ke - ks));
	if (!dot || (size_t)(dot - ks) >= sizeof(name))
		return "unknown key";
	memcpy(name, ks, (size_t)(dot - ks));
	name[dot - ks] = '\0';
	if (vmcg_agent_level_from_name(name, &level) < 0)
		return "unknown level (none, low, medium, critical)";
	if (span_is(dot + 1, ke, "drop-caches")) {
		if (span_is(vs, ve, "true"))
			c->action[level].drop_caches = true;
		else if (span_is(vs, ve, "false"))
			c->action[level].drop_caches = false;
		else
			return "drop-caches must be true or false";
		return NULL;
	}
	if (span_is(dot + 1, ke, "exec")) {
		if (vs == ve) {
			c->action[level].exec[0] = '\0';
			return NULL;
		}
		if (*vs != '/')
			return "exec must be an absolute path";
		if ((size_t)(ve - vs) >= sizeof(c->action[level].exec))
			return "exec path too long";
		memcpy(c->action[level].exec, vs, (size_t)(ve - vs));
		c->action[level].exec[ve - vs] = '\0';
		return NULL;
	}
	return "unknown key";
}

int vmcg_agent_config_parse(const char *text, size_t len, VmcgAgentConfig *ret_config,
			    unsigned *ret_line, const char **ret_what)
{
	const char *p = text, *end = text + len;
	VmcgAgentConfig c;
	unsigned lineno = 0;

	vmcg_agent_config_init(&c);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		const char *what;

		lineno++;
		what = le - p > CONFIG_LINE_MAX ? "line too long" : config_line(&c, p, le);
		if (what) {
			*ret_line = lineno;
			*ret_what = what;
			return -EINVAL;
		}
		p = nl ? nl + 1 : end;
	}
	*ret_config = c;
	return 0;
}

int vmcg_agent_format_state(char *buf, size_t size, VmcgAgentLevel level, uint64_t seq,
			    uint64_t reclaim_bytes, uint64_t reclaim_within_ms)
{
	const char *name = vmcg_agent_level_name(level);

	if (!name)
		return -EINVAL;
	return finish(snprintf(buf, size,
			       "%s seq=%" PRIu64 " reclaim-bytes=%" PRIu64
			       " reclaim-within-ms=%" PRIu64 "\n",
			       name, seq, reclaim_bytes, reclaim_within_ms),
		      size);
}
