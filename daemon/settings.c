// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The settings table and its validators; see settings.h. docs/config.md
 * and docs/api.md describe the same settings at more length, and
 * config/vmcgd.conf is the default file: a test checks that it loads to
 * exactly these defaults, and test-settings walks every entry.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "cluster-grant.h"
#include "config.h"
#include "etcd-reply.h"
#include "settings.h"
#include "vmcg/oom.h"
#include "vmcg/size.h"
#include "vmcg/stock.h"

#define USEC_PER_MSEC INT64_C(1000)
#define USEC_PER_SEC INT64_C(1000000)
#define USEC_PER_HOUR (3600 * USEC_PER_SEC)
#define SIZE_HI ((int64_t)VMCG_SIZE_LIMIT)

/* sizeof(sun_path) - 1: a socket path must fit a struct sockaddr_un with its NUL. */
#define SOCKET_PATH_MAX (sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1)
/* What groupadd accepts. */
#define UNIX_GROUP_MAX 32

/* A libvirt URI: far more than any driver's (qemu+ssh://user@host/system?keyfile=...). */
#define URI_MAX 1024

/* Quoted values are cut at this many bytes. */
#define QUOTE_MAX 64

GQuark vmcg_setting_error_quark(void)
{
	return g_quark_from_static_string("vmcg-setting-error-quark");
}

#define S(id_, name_, scope_, type_)                                             \
	.id = VMCG_SETTING_##id_, .name = name_, .scope = VMCG_SETTING_##scope_, \
	.type = VMCG_SETTING_##type_
static const VmcgSetting table[_VMCG_SETTING_COUNT] = {
	/* ---- [daemon] ---- */
	[VMCG_SETTING_SOCKET] = { S(SOCKET, "socket", DAEMON, SOCKET_PATH),
				  .default_text = "/run/vmcg/vmcgd.sock" },
	[VMCG_SETTING_STATE] = { S(STATE, "state", DAEMON, FILE_PATH),
				 .default_text = "/var/lib/vmcg/state.json" },
	[VMCG_SETTING_HOOKS_SOCKET] = { S(HOOKS_SOCKET, "hooks-socket", DAEMON, SOCKET_PATH),
					.flags = VMCG_SETTING_EMPTY_OK,
					.default_text = "/run/vmcg/hooks.sock" },
	/*
	 * 1 s: the kernel's memory.high throttling reacts within a tick of the
	 * charge; a balloon takes seconds anyway. 100 ms is the least a QMP
	 * round trip per VM allows; over a minute, limits are not enforced.
	 */
	[VMCG_SETTING_INTERVAL] = { S(INTERVAL, "interval", DAEMON, DURATION),
				    .lo = 100 * USEC_PER_MSEC, .hi = 60 * USEC_PER_SEC,
				    .default_text = "1s" },
	[VMCG_SETTING_WRITE_GROUP] = { S(WRITE_GROUP, "write-group", DAEMON, UNIX_GROUP),
				       .flags = VMCG_SETTING_EMPTY_OK, .default_text = "vmcg" },
	[VMCG_SETTING_RECURSIVE_PROTECTION] = { S(RECURSIVE_PROTECTION, "recursive-protection",
						  DAEMON, BOOL),
						.default_text = "false" },
	/* 64 pages: the kernel's MEMCG_CHARGE_BATCH, via VMCG_STOCK_BATCH_DEFAULT. */
	[VMCG_SETTING_STOCK_BATCH] = { S(STOCK_BATCH, "stock-batch", DAEMON, INTEGER), .lo = 1,
				       .hi = VMCG_STOCK_BATCH_MAX,
				       .default_text = G_STRINGIFY(VMCG_STOCK_BATCH_DEFAULT),
				       .help = "a number of pages" },
	[VMCG_SETTING_BACKSTOP] = { S(BACKSTOP, "backstop", DAEMON, BOOL),
				    .default_text = "false" },
	/* QEMU's own heap, device state and I/O buffers: typically 100-200 MiB per VM. */
	[VMCG_SETTING_BACKSTOP_OVERHEAD] = { S(BACKSTOP_OVERHEAD, "backstop-overhead", DAEMON,
					       SIZE),
					     .hi = SIZE_HI, .default_text = "256M" },
	/*
	 * 64M per VM per tick: the balloon driver inflates at a few hundred
	 * MiB/s at best, and a guest that is asked for more than it can free
	 * in one interval only builds up a backlog of requests.
	 */
	[VMCG_SETTING_RECLAIM_STEP] = { S(RECLAIM_STEP, "reclaim-step", DAEMON, SIZE),
					.flags = VMCG_SETTING_MAX_OK, .lo = 4096, .hi = SIZE_HI,
					.default_text = "64M" },
	/* Half a step: a group that hovers at high must not make balloons oscillate. */
	[VMCG_SETTING_HYSTERESIS] = { S(HYSTERESIS, "hysteresis", DAEMON, SIZE), .hi = SIZE_HI,
				      .default_text = "32M" },
	/* QEMU's guest-stats-polling-interval is in whole seconds; 2s keeps stats fresh. */
	[VMCG_SETTING_STATS_INTERVAL] = { S(STATS_INTERVAL, "stats-interval", DAEMON, DURATION),
					  .flags =
						  VMCG_SETTING_ZERO_OK | VMCG_SETTING_WHOLE_SECONDS,
					  .lo = USEC_PER_SEC, .hi = USEC_PER_HOUR,
					  .default_text = "2s",
					  .help = "QEMU polls guest stats in whole seconds" },
	/* Five missed polls: stats older than that describe a guest that has moved on. */
	[VMCG_SETTING_STATS_MAX_AGE] = { S(STATS_MAX_AGE, "stats-max-age", DAEMON, DURATION),
					 .lo = USEC_PER_SEC, .hi = USEC_PER_HOUR,
					 .default_text = "10s" },
	/*
	 * As long as five polls: a level stays up while the pressure that
	 * raised it may return, so a 1-5 s poller does not miss it. 0 shows a
	 * level only while its window is the latest (no hold).
	 */
	[VMCG_SETTING_VMPRESSURE_HOLD] = { S(VMPRESSURE_HOLD, "vmpressure-hold", DAEMON, DURATION),
					   .hi = USEC_PER_HOUR, .default_text = "10s" },
	/*
	 * How often guests report on their pressure channel: 1 s, the host's
	 * own tick; 100 ms to 60 s, the bounds of docs/guest-channel.md.
	 */
	[VMCG_SETTING_CHANNEL_REPORT_INTERVAL] = { S(CHANNEL_REPORT_INTERVAL,
						     "channel-report-interval", DAEMON, DURATION),
						   .lo = USEC_PER_SEC / 10, .hi = 60 * USEC_PER_SEC,
						   .default_text = "1s" },
	/*
	 * 20%: a guest whose memory PSI some avg10 is this high spends a fifth
	 * of its time waiting for memory; it is not ballooned further
	 * (docs/guest-channel.md, "Effect"). 0 to 100, percent.
	 */
	[VMCG_SETTING_GUEST_STALL] = { S(GUEST_STALL, "guest-stall", DAEMON, INTEGER), .lo = 0,
				       .hi = 100, .default_text = "20", .help = "a percentage" },
	/*
	 * 10 s: a VM whose memory cannot be measured keeps its last charge
	 * this long, then is charged its whole RAM (charge.h): long enough to
	 * ride out a QEMU that is exiting, short enough that a VM cannot grow
	 * unseen for long. Up to a day, for hosts that know why their reads
	 * fail; 0: at once.
	 */
	[VMCG_SETTING_UNKNOWN_CHARGE_GRACE] = { S(UNKNOWN_CHARGE_GRACE, "unknown-charge-grace",
						  DAEMON, DURATION),
						.hi = 24 * USEC_PER_HOUR, .default_text = "10s" },

	/* ---- groups: the cgroup v2 defaults ---- */
	[VMCG_SETTING_MEMORY_MIN] = { S(MEMORY_MIN, "memory.min", GROUP, SIZE),
				      .flags = VMCG_SETTING_MAX_OK, .hi = SIZE_HI,
				      .default_text = "0" },
	[VMCG_SETTING_MEMORY_LOW] = { S(MEMORY_LOW, "memory.low", GROUP, SIZE),
				      .flags = VMCG_SETTING_MAX_OK, .hi = SIZE_HI,
				      .default_text = "0" },
	[VMCG_SETTING_MEMORY_HIGH] = { S(MEMORY_HIGH, "memory.high", GROUP, SIZE),
				       .flags = VMCG_SETTING_MAX_OK, .hi = SIZE_HI,
				       .default_text = "max" },
	[VMCG_SETTING_MEMORY_MAX] = { S(MEMORY_MAX, "memory.max", GROUP, SIZE),
				      .flags = VMCG_SETTING_MAX_OK, .hi = SIZE_HI,
				      .default_text = "max" },
	[VMCG_SETTING_MEMORY_OOM_GROUP] = { S(MEMORY_OOM_GROUP, "memory.oom.group", GROUP, BOOL),
					    .default_text = "false" },
	[VMCG_SETTING_OOM_ACTION_KNOB] = { S(OOM_ACTION_KNOB, "oom-action", GROUP, OOM_ACTION),
					   .default_text = "notify" },
	[VMCG_SETTING_OVERHEAD_IN_MAX] = { S(OVERHEAD_IN_MAX, "overhead-in-max", GROUP, BOOL),
					   .default_text = "false" },
	/*
	 * The group's quota across every vmcgd of the cluster (docs/cluster.md);
	 * "max": the group is not cluster-wide.
	 */
	[VMCG_SETTING_CLUSTER_MEMORY_MAX] = { S(CLUSTER_MEMORY_MAX, "cluster.memory.max", GROUP,
						SIZE),
					      .flags = VMCG_SETTING_MAX_OK, .hi = SIZE_HI,
					      .default_text = "max" },

	/* ---- VMs ---- */
	[VMCG_SETTING_VM_NAME_ID] = { S(VM_NAME_ID, "name", VM, VM_NAME) },
	[VMCG_SETTING_VM_BACKEND] = { S(VM_BACKEND, "backend", VM, BACKEND),
				      .default_text = "qmp" },
	[VMCG_SETTING_VM_ADDRESS] = { S(VM_ADDRESS, "address", VM, SOCKET_PATH),
				      .help = "the path of the VM's QMP socket" },
	[VMCG_SETTING_VM_QMP] = { S(VM_QMP, "qmp", VM, SOCKET_PATH),
				  .help = "the path of the VM's QMP socket" },
	[VMCG_SETTING_VM_GROUP] = { S(VM_GROUP, "group", VM, GROUP_PATH), .default_text = "/" },
	[VMCG_SETTING_VM_FLOOR] = { S(VM_FLOOR, "floor", VM, SIZE), .flags = VMCG_SETTING_MAX_OK,
				    .hi = SIZE_HI, .default_text = "0" },
	[VMCG_SETTING_VM_OOM_PRIORITY] = { S(VM_OOM_PRIORITY, "oom-priority", VM, INTEGER),
					   .lo = VMCG_OOM_PRIORITY_MIN, .hi = VMCG_OOM_PRIORITY_MAX,
					   .default_text = "0" },
	[VMCG_SETTING_VM_CHANNEL] = { S(VM_CHANNEL, "channel", VM, SOCKET_PATH),
				      .flags = VMCG_SETTING_EMPTY_OK,
				      .help = "the path of the VM's pressure channel socket" },

	/* ---- request parameters ---- */
	[VMCG_SETTING_RECLAIM_BYTES] = { S(RECLAIM_BYTES, "bytes", REQUEST, SIZE), .hi = SIZE_HI },

	/* ---- [libvirt] (docs/libvirt.md) ---- */
	/* The host's own libvirtd; "" turns the libvirt backend off. */
	[VMCG_SETTING_LIBVIRT_URI] = { S(LIBVIRT_URI, "uri", LIBVIRT, URI),
				       .flags = VMCG_SETTING_EMPTY_OK,
				       .default_text = "qemu:///system" },
	/* Where a domain without (valid) vmcg metadata goes. */
	[VMCG_SETTING_LIBVIRT_GROUP] = { S(LIBVIRT_GROUP, "default-group", LIBVIRT, GROUP_PATH),
					 .default_text = "/" },

	/* ---- [cluster] (docs/cluster.md) ---- */
	/* etcd's client URLs; "": no cluster (a cluster quota is then this host's alone). */
	[VMCG_SETTING_CLUSTER_ETCD] = { S(CLUSTER_ETCD, "etcd", CLUSTER, ENDPOINTS),
					.flags = VMCG_SETTING_EMPTY_OK, .default_text = "" },
	/* This host's name in the grants; "": the host name (g_get_host_name()). */
	[VMCG_SETTING_CLUSTER_NODE] = { S(CLUSTER_NODE, "node", CLUSTER, NODE_NAME),
					.flags = VMCG_SETTING_EMPTY_OK, .default_text = "" },
	/* TLS, as etcd's own --cacert, --cert and --key: PEM files; "": not used. */
	[VMCG_SETTING_CLUSTER_CA_FILE] = { S(CLUSTER_CA_FILE, "ca-file", CLUSTER, FILE_PATH),
					   .flags = VMCG_SETTING_EMPTY_OK, .default_text = "",
					   .help = "the CA of the etcd members' certificates" },
	[VMCG_SETTING_CLUSTER_CERT_FILE] = { S(CLUSTER_CERT_FILE, "cert-file", CLUSTER, FILE_PATH),
					     .flags = VMCG_SETTING_EMPTY_OK, .default_text = "",
					     .help = "the client certificate" },
	[VMCG_SETTING_CLUSTER_KEY_FILE] = { S(CLUSTER_KEY_FILE, "key-file", CLUSTER, FILE_PATH),
					    .flags = VMCG_SETTING_EMPTY_OK, .default_text = "",
					    .help = "the client certificate's key" },
	/*
	 * 10 s: a dead host's grant returns to the pool this long after its
	 * last renewal; a host cut off longer than this may see its slice
	 * given to others (docs/cluster.md, "Faults"). Renewed every third.
	 */
	[VMCG_SETTING_CLUSTER_LEASE_TTL] = { S(CLUSTER_LEASE_TTL, "lease-ttl", CLUSTER, DURATION),
					     .flags = VMCG_SETTING_WHOLE_SECONDS,
					     .lo = 2 * USEC_PER_SEC, .hi = USEC_PER_HOUR,
					     .default_text = "10s",
					     .help = "etcd leases are whole seconds" },
	/* 64 MiB: a grant may exceed demand by this before it is given back. */
	[VMCG_SETTING_CLUSTER_HYSTERESIS] = { S(CLUSTER_HYSTERESIS, "hysteresis", CLUSTER, SIZE),
					      .hi = SIZE_HI, .default_text = "64M" },
	/* 0: the slice every host keeps when the quota allows, whatever its demand. */
	[VMCG_SETTING_CLUSTER_MIN_GRANT] = { S(CLUSTER_MIN_GRANT, "min-grant", CLUSTER, SIZE),
					     .hi = SIZE_HI, .default_text = "0" },
	/*
	 * 30 s: a smaller grant is published once the group's usage is down
	 * to it, or after this long (docs/cluster.md, "Giving back").
	 */
	[VMCG_SETTING_CLUSTER_SHRINK_WAIT] = { S(CLUSTER_SHRINK_WAIT, "shrink-wait", CLUSTER,
						 DURATION),
					       .flags = VMCG_SETTING_ZERO_OK, .lo = USEC_PER_SEC,
					       .hi = USEC_PER_HOUR, .default_text = "30s" },
};
#undef S

const VmcgSetting *vmcg_setting(VmcgSettingId id)
{
	g_return_val_if_fail((unsigned)id < _VMCG_SETTING_COUNT, NULL);
	return &table[id];
}

const VmcgSetting *vmcg_setting_find(VmcgSettingScope scope, const char *name)
{
	for (size_t i = 0; i < G_N_ELEMENTS(table); i++)
		if (table[i].scope == scope && strcmp(table[i].name, name) == 0)
			return &table[i];
	return NULL;
}

void vmcg_setting_value_clear(VmcgSettingValue *v)
{
	g_clear_pointer(&v->str, g_free);
	memset(v, 0, sizeof(*v));
}

char *vmcg_settings_quote(const char *s)
{
	GString *out = g_string_new("\"");
	const char *p = s;

	while (*p && p - s < QUOTE_MAX) {
		if (*p == '\t')
			g_string_append(out, "\\t");
		else if (*p == '"' || *p == '\\')
			g_string_append_printf(out, "\\%c", *p);
		else
			g_string_append_len(out, p, g_utf8_next_char(p) - p);
		p = g_utf8_next_char(p);
	}
	g_string_append(out, *p ? "\"..." : "\"");
	return g_string_free(out, FALSE);
}

G_GNUC_PRINTF(3, 4)
static gboolean fail(GError **error, VmcgSettingError code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	g_propagate_error(error, g_error_new_valist(VMCG_SETTING_ERROR, code, fmt, ap));
	va_end(ap);
	return FALSE;
}

/* A scheme (letters, digits, '+', '-', '.') then ':', then printable ASCII without blanks. */
static bool uri_ok(const char *s)
{
	const char *p = s;

	if (strlen(s) > URI_MAX || !g_ascii_isalpha(*p))
		return false;
	while (g_ascii_isalnum(*p) || *p == '+' || *p == '-' || *p == '.')
		p++;
	if (*p != ':')
		return false;
	for (; *p; p++)
		if (*p <= ' ' || *p > '~')
			return false;
	return true;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static gboolean parse_bool(const char *s, bool *ret)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < G_N_ELEMENTS(yes); i++) {
		if (g_ascii_strcasecmp(s, yes[i]) == 0) {
			*ret = true;
			return TRUE;
		}
		if (g_ascii_strcasecmp(s, no[i]) == 0) {
			*ret = false;
			return TRUE;
		}
	}
	return FALSE;
}

/* A decimal integer, '-' allowed, nothing else: 0, -EINVAL, -ERANGE. */
static int parse_int64(const char *s, int64_t *ret)
{
	bool neg = *s == '-';
	uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	bool overflow = false;

	if (neg)
		s++;
	if (!is_digit(*s))
		return -EINVAL;
	for (; is_digit(*s); s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (limit - d) / 10)
			overflow = true;
		else
			v = v * 10 + d;
	}
	if (*s)
		return -EINVAL;
	if (overflow)
		return -ERANGE;
	*ret = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

static bool unix_group_ok(const char *s)
{
	size_t len = strlen(s);

	if (len > UNIX_GROUP_MAX || !(g_ascii_isalpha(s[0]) || s[0] == '_'))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!(g_ascii_isalnum(s[i]) || s[i] == '_' || s[i] == '-' || s[i] == '.'))
			return false;
	return true;
}

/* The range of a size or duration setting, for messages: "less than 8E, or max". */
static const char *range_text(const VmcgSetting *s, char *buf, size_t size)
{
	char lo[VMCG_SIZE_STRLEN], hi[VMCG_SIZE_STRLEN];
	const char *or_max = s->flags & VMCG_SETTING_MAX_OK ? ", or max" : "";

	G_STATIC_ASSERT(VMCG_SIZE_STRLEN >= VMCG_DURATION_STRLEN);
	if (s->type == VMCG_SETTING_DURATION) {
		vmcg_duration_format((uint64_t)s->lo, lo, sizeof(lo));
		vmcg_duration_format((uint64_t)s->hi, hi, sizeof(hi));
		snprintf(buf, size, "%sbetween %s and %s",
			 s->flags & VMCG_SETTING_ZERO_OK ? "0 or " : "", lo, hi);
		return buf;
	}
	vmcg_size_format((uint64_t)s->lo, lo, sizeof(lo));
	vmcg_size_format(VMCG_SIZE_LIMIT + VMCG_PAGE_SIZE, hi, sizeof(hi));
	/* VMCG_SIZE_LIMIT itself is 8E - 4K: say "less than 8E". */
	if (s->hi == SIZE_HI && s->lo == 0)
		snprintf(buf, size, "less than %s%s", hi, or_max);
	else if (s->hi == SIZE_HI)
		snprintf(buf, size, "at least %s and less than %s%s", lo, hi, or_max);
	else
		snprintf(buf, size, "between %s and %" PRId64 "%s", lo, s->hi, or_max);
	return buf;
}

static gboolean check_path(const VmcgSetting *s, const char *v, const char *q, GError **error)
{
	size_t max = s->type == VMCG_SETTING_SOCKET_PATH ? SOCKET_PATH_MAX : PATH_MAX - 1;

	if (v[0] != '/')
		return fail(error, VMCG_SETTING_ERROR_VALUE, "%s is not an absolute path", q);
	if (v[strlen(v) - 1] == '/')
		return fail(error, VMCG_SETTING_ERROR_VALUE, "%s ends in '/': it must name a file",
			    q);
	if (strlen(v) > max)
		return fail(error, VMCG_SETTING_ERROR_VALUE, "%s is longer than %zu bytes%s", q,
			    max,
			    s->type == VMCG_SETTING_SOCKET_PATH
				    ? ", the most a unix socket path can have"
				    : "");
	return TRUE;
}

gboolean vmcg_setting_parse_text(const VmcgSetting *s, const char *v, VmcgSettingValue *ret,
				 GError **error)
{
	g_autofree char *q = vmcg_settings_quote(v);
	VmcgSettingValue out = { 0 };
	char range[128];
	int r;

	if (*v == '\0' && !(s->flags & VMCG_SETTING_EMPTY_OK))
		return fail(error, VMCG_SETTING_ERROR_VALUE, "empty value");

	switch (s->type) {
	case VMCG_SETTING_SIZE:
		if (*v == '-')
			return fail(error, VMCG_SETTING_ERROR_VALUE,
				    "%s is negative: a size is 0 or more bytes", q);
		r = vmcg_size_parse(v, &out.u64);
		if (r == -EINVAL)
			return fail(error, VMCG_SETTING_ERROR_VALUE,
				    "invalid size %s: expected bytes, or a number with a unit K, "
				    "M, G, T, P or E (powers of 1024), e.g. 512M or 1.5G%s",
				    q, s->flags & VMCG_SETTING_MAX_OK ? ", or max" : "");
		if (r == 0 && out.u64 == VMCG_SIZE_MAX && !(s->flags & VMCG_SETTING_MAX_OK))
			return fail(error, VMCG_SETTING_ERROR_VALUE,
				    "max is not allowed here: must be %s",
				    range_text(s, range, sizeof(range)));
		if (r == -ERANGE || (out.u64 != VMCG_SIZE_MAX &&
				     (out.u64 < (uint64_t)s->lo || out.u64 > (uint64_t)s->hi) &&
				     !(out.u64 == 0 && (s->flags & VMCG_SETTING_ZERO_OK))))
			return fail(error, VMCG_SETTING_ERROR_VALUE,
				    "%s is out of range: must be %s", q,
				    range_text(s, range, sizeof(range)));
		break;

	case VMCG_SETTING_DURATION:
		r = vmcg_duration_parse(v, &out.u64);
		if (r == -EINVAL)
			return fail(error, VMCG_SETTING_ERROR_VALUE,
				    "invalid duration %s: expected a number and a unit us, ms, s, "
				    "m or h, e.g. 100ms or 1.5s",
				    q);
		if (r == -ERANGE || ((out.u64 < (uint64_t)s->lo || out.u64 > (uint64_t)s->hi) &&
				     !(out.u64 == 0 && (s->flags & VMCG_SETTING_ZERO_OK))))
			return fail(error, VMCG_SETTING_ERROR_VALUE,
				    "%s is out of range: must be %s", q,
				    range_text(s, range, sizeof(range)));
		if ((s->flags & VMCG_SETTING_WHOLE_SECONDS) && out.u64 % USEC_PER_SEC)
			return fail(error, VMCG_SETTING_ERROR_VALUE,
				    "%s is not a whole number of seconds (%s)", q, s->help);
		break;

	case VMCG_SETTING_BOOL:
		if (!parse_bool(v, &out.b))
			return fail(error, VMCG_SETTING_ERROR_VALUE,
				    "invalid boolean %s: expected true or false (or yes/no, "
				    "on/off, 1/0)",
				    q);
		break;

	case VMCG_SETTING_INTEGER:
		r = parse_int64(v, &out.i64);
		if (r == -EINVAL)
			return fail(error, VMCG_SETTING_ERROR_VALUE,
				    "invalid number %s: expected a decimal integer%s%s", q,
				    s->help ? ", " : "", s->help ? s->help : "");
		if (r == -ERANGE || out.i64 < s->lo || out.i64 > s->hi)
			return fail(error, VMCG_SETTING_ERROR_VALUE,
				    "%s is out of range: must be between %" PRId64 " and %" PRId64,
				    q, s->lo, s->hi);
		break;

	case VMCG_SETTING_OOM_ACTION:
		if (vmcg_oom_action_from_string(v, &out.action) < 0)
			return fail(error, VMCG_SETTING_ERROR_VALUE,
				    "invalid OOM action %s: expected notify, pause or destroy", q);
		break;

	case VMCG_SETTING_SOCKET_PATH:
	case VMCG_SETTING_FILE_PATH:
		if (*v && !check_path(s, v, q, error))
			return FALSE;
		break;

	case VMCG_SETTING_UNIX_GROUP:
		if (*v && !unix_group_ok(v))
			return fail(error, VMCG_SETTING_ERROR_VALUE,
				    "invalid unix group name %s: expected a letter or '_', then up "
				    "to %d letters, digits, '_', '-' or '.' (or nothing, for root "
				    "only)",
				    q, UNIX_GROUP_MAX - 1);
		break;

	case VMCG_SETTING_GROUP_PATH:
		r = vmcg_path_validate(v);
		if (r == -ENAMETOOLONG)
			return fail(error, VMCG_SETTING_ERROR_VALUE,
				    "group path %s is too long: at most %d levels of names of at "
				    "most %d bytes",
				    q, VMCG_DEPTH_MAX, VMCG_NAME_MAX);
		if (r < 0)
			return fail(error, VMCG_SETTING_ERROR_VALUE,
				    "invalid group path %s: expected \"/\" or /name/name..., names "
				    "of letters, digits, '_', '-' and '.', not \".\" or \"..\"",
				    q);
		break;

	case VMCG_SETTING_VM_NAME:
		r = vmcg_vm_name_validate(v);
		if (r == -ENAMETOOLONG)
			return fail(error, VMCG_SETTING_ERROR_VALUE, "VM name longer than %d bytes",
				    VMCG_VM_NAME_MAX);
		if (r < 0)
			return fail(error, VMCG_SETTING_ERROR_VALUE,
				    "invalid VM name %s: no '/' or control characters", q);
		break;

	case VMCG_SETTING_BACKEND:
		if (strcmp(v, "qmp") != 0)
			return fail(error, VMCG_SETTING_ERROR_VALUE,
				    "unknown backend %s: the only backend is qmp (libvirt "
				    "domains are adopted from libvirt: see [libvirt])",
				    q);
		break;

	case VMCG_SETTING_ENDPOINTS: {
		g_autoptr(GError) err = NULL;

		if (*v && !vmcg_etcd_endpoints_validate(v, &err))
			return fail(error, VMCG_SETTING_ERROR_VALUE,
				    "invalid etcd endpoints %s: %s (or nothing, for no cluster)", q,
				    err->message);
		break;
	}

	case VMCG_SETTING_NODE_NAME:
		if (*v && vmcg_grant_host_validate(v) < 0)
			return fail(
				error, VMCG_SETTING_ERROR_VALUE,
				"invalid node name %s: 1 to %d printable ASCII bytes, no blanks "
				"(or nothing, for the host name)",
				q, VMCG_GRANT_HOST_MAX);
		break;

	case VMCG_SETTING_URI:
		if (*v && !uri_ok(v))
			return fail(error, VMCG_SETTING_ERROR_VALUE,
				    "invalid libvirt URI %s: expected DRIVER:///PATH such as "
				    "qemu:///system, printable ASCII without blanks, at most %d "
				    "bytes (or nothing, for no libvirt)",
				    q, URI_MAX);
		break;
	}

	switch (s->type) {
	case VMCG_SETTING_SOCKET_PATH:
	case VMCG_SETTING_FILE_PATH:
	case VMCG_SETTING_UNIX_GROUP:
	case VMCG_SETTING_GROUP_PATH:
	case VMCG_SETTING_VM_NAME:
	case VMCG_SETTING_BACKEND:
	case VMCG_SETTING_URI:
	case VMCG_SETTING_ENDPOINTS:
	case VMCG_SETTING_NODE_NAME:
		out.str = g_strdup(v);
		break;
	default:
		break;
	}
	*ret = out;
	return TRUE;
}

/* What a JSON member of this type looks like, for type errors. */
static const char *json_expected(VmcgSettingType type)
{
	switch (type) {
	case VMCG_SETTING_SIZE:
		return "a size: bytes as an integer, or a string such as \"512M\"";
	case VMCG_SETTING_DURATION:
		return "a duration: a string such as \"1.5s\"";
	case VMCG_SETTING_BOOL:
		return "true or false";
	case VMCG_SETTING_INTEGER:
		return "an integer";
	default:
		return "a string";
	}
}

gboolean vmcg_setting_parse_json(const VmcgSetting *s, json_object *v, VmcgSettingValue *ret,
				 GError **error)
{
	switch (json_object_get_type(v)) {
	case json_type_boolean:
		if (s->type != VMCG_SETTING_BOOL)
			break;
		*ret = (VmcgSettingValue){ .b = json_object_get_boolean(v) };
		return TRUE;

	case json_type_int: {
		char buf[32];

		if (s->type != VMCG_SETTING_SIZE && s->type != VMCG_SETTING_INTEGER)
			break;
		/* json-c: above INT64_MAX is a uint64 (saturated), below INT64_MIN saturates. */
		if (json_object_get_int64(v) < 0)
			snprintf(buf, sizeof(buf), "%" PRId64, json_object_get_int64(v));
		else
			snprintf(buf, sizeof(buf), "%" PRIu64, json_object_get_uint64(v));
		return vmcg_setting_parse_text(s, buf, ret, error);
	}

	case json_type_string: {
		const char *str = json_object_get_string(v);

		if (s->type == VMCG_SETTING_BOOL || s->type == VMCG_SETTING_INTEGER)
			break;
		if (strlen(str) != (size_t)json_object_get_string_len(v))
			return fail(error, VMCG_SETTING_ERROR_VALUE,
				    "NUL characters are not allowed");
		if (!g_utf8_validate(str, -1, NULL))
			return fail(error, VMCG_SETTING_ERROR_UTF8, "invalid UTF-8");
		return vmcg_setting_parse_text(s, str, ret, error);
	}

	default:
		break;
	}
	return fail(error, VMCG_SETTING_ERROR_TYPE, "expected %s", json_expected(s->type));
}

void vmcg_setting_default(const VmcgSetting *s, VmcgSettingValue *ret)
{
	g_autoptr(GError) error = NULL;

	g_return_if_fail(s->default_text != NULL);
	if (!vmcg_setting_parse_text(s, s->default_text, ret, &error))
		g_error("settings: the default of %s is invalid: %s", s->name, error->message);
}

uint64_t vmcg_setting_default_u64(VmcgSettingId id)
{
	g_auto(VmcgSettingValue) v = { 0 };

	vmcg_setting_default(vmcg_setting(id), &v);
	return v.u64;
}

void vmcg_setting_store(const VmcgSetting *s, VmcgSettingValue *v, void *field)
{
	switch (s->type) {
	case VMCG_SETTING_SIZE:
	case VMCG_SETTING_DURATION:
		*(uint64_t *)field = v->u64;
		break;
	case VMCG_SETTING_BOOL:
		*(bool *)field = v->b;
		break;
	case VMCG_SETTING_INTEGER:
		/*
		 * 32 bits: stock-batch (a uint32_t, 1..131072) and oom-priority
		 * (an int32_t, -1000..1000): both ranges fit either type.
		 */
		*(int32_t *)field = (int32_t)v->i64;
		break;
	case VMCG_SETTING_OOM_ACTION:
		*(VmcgOomAction *)field = v->action;
		break;
	default:
		g_free(*(char **)field);
		*(char **)field = g_steal_pointer(&v->str);
		break;
	}
}

void vmcg_settings_policy_defaults(VmcgPolicy *p)
{
	p->reclaim_step = vmcg_setting_default_u64(VMCG_SETTING_RECLAIM_STEP);
	p->hysteresis = vmcg_setting_default_u64(VMCG_SETTING_HYSTERESIS);
	p->stats_interval_usec = vmcg_setting_default_u64(VMCG_SETTING_STATS_INTERVAL);
	p->stats_max_age_usec = vmcg_setting_default_u64(VMCG_SETTING_STATS_MAX_AGE);
	p->vmpressure_hold_usec = vmcg_setting_default_u64(VMCG_SETTING_VMPRESSURE_HOLD);
	p->channel_report_interval_usec =
		vmcg_setting_default_u64(VMCG_SETTING_CHANNEL_REPORT_INTERVAL);
	p->guest_stall_pct = 20; /* the default of guest-stall */
	p->unknown_charge_grace_usec = vmcg_setting_default_u64(VMCG_SETTING_UNKNOWN_CHARGE_GRACE);
}
