// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Cluster-wide quotas: the grant decisions, the etcd keys and the record,
 * as pure functions (cluster-grant.h, docs/cluster.md).
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "cluster-grant.h"
#include "json-stream.h"
#include "json-util.h"
#include "vmcg/group.h"

/*
 * R * e_i needs up to 128 bits (both may be near 2^63); as in
 * lib/reclaim.c, splitting by hand would only hide the arithmetic.
 */
#ifndef __SIZEOF_INT128__
#error "daemon/cluster-grant.c needs unsigned __int128 (gcc or clang, 64-bit target)"
#endif
__extension__ typedef unsigned __int128 u128;

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* Records are bounded by 2^63, but a sum of hostile ones must not wrap. */
static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

uint64_t vmcg_grant_quota(const VmcgGrantHost *hosts, size_t n, bool *ret_drift)
{
	uint64_t q = n ? hosts[0].quota_bytes : 0;
	bool drift = false;

	for (size_t i = 1; i < n; i++) {
		if (hosts[i].quota_bytes != q)
			drift = true;
		q = min_u64(q, hosts[i].quota_bytes);
	}
	if (ret_drift)
		*ret_drift = drift;
	return q;
}

static bool live(const VmcgGrantHost *hosts, size_t i, size_t self)
{
	return i == self || hosts[i].alive;
}

/*
 * The host after @prev in name order (SIZE_MAX: the first) among those
 * @eligible; SIZE_MAX when none. Names are unique in a group (one key per
 * host); on a tie the index decides, so the order stays total.
 */
static size_t next_by_name(const VmcgGrantHost *hosts, size_t n, size_t prev,
			   bool (*eligible)(size_t i, const void *data), const void *data)
{
	size_t best = SIZE_MAX;

	for (size_t i = 0; i < n; i++) {
		int c;

		if (!eligible(i, data))
			continue;
		if (prev != SIZE_MAX) {
			c = strcmp(hosts[i].name, hosts[prev].name);
			if (c < 0 || (c == 0 && i <= prev))
				continue;
		}
		if (best == SIZE_MAX)
			best = i;
		else {
			c = strcmp(hosts[i].name, hosts[best].name);
			if (c < 0 || (c == 0 && i < best))
				best = i;
		}
	}
	return best;
}

typedef struct ShareCtx {
	const VmcgGrantHost *hosts;
	size_t self;
	const uint64_t *room; /* what each may still get */
} ShareCtx;

static bool has_room(size_t i, const void *data)
{
	const ShareCtx *c = data;

	return live(c->hosts, i, c->self) && c->room[i] > 0;
}

/*
 * Hand @left bytes out one each, by name order, to the hosts @eligible,
 * round after round. Fewer than the live hosts are ever left over, so
 * this is one pass in practice.
 */
static void spread_by_name(const VmcgGrantHost *hosts, size_t n, uint64_t left,
			   bool (*eligible)(size_t i, const void *data), ShareCtx *ctx,
			   uint64_t *shares, uint64_t *room)
{
	size_t i = SIZE_MAX;

	while (left) {
		i = next_by_name(hosts, n, i, eligible, ctx);
		if (i == SIZE_MAX) {
			i = next_by_name(hosts, n, SIZE_MAX, eligible, ctx);
			if (i == SIZE_MAX)
				return;
		}
		shares[i]++;
		room[i]--;
		left--;
	}
}

/* fair_shares() with @self counted as alive whatever its record says (SIZE_MAX: none). */
static void fair_shares(const VmcgGrantParams *p, const VmcgGrantHost *hosts, size_t n, size_t self,
			uint64_t *shares, uint64_t *room)
{
	ShareCtx ctx = { .hosts = hosts, .self = self, .room = room };
	uint64_t q = p->quota_bytes, m = 0, f, r, e_sum = 0, given = 0;

	for (size_t i = 0; i < n; i++) {
		shares[i] = 0;
		room[i] = 0;
		if (live(hosts, i, self))
			m++;
	}
	if (!m)
		return;
	/* The floor, when the quota allows; otherwise an equal split of it. */
	f = min_u64(p->min_grant_bytes, q / m);
	r = q - m * f;
	for (size_t i = 0; i < n; i++) {
		if (!live(hosts, i, self))
			continue;
		shares[i] = f;
		room[i] = hosts[i].demand_bytes > f ? hosts[i].demand_bytes - f : 0;
		e_sum = add_sat(e_sum, room[i]);
	}
	if (e_sum <= r) {
		/* Everyone gets its demand; the rest stays in the pool. */
		for (size_t i = 0; i < n; i++) {
			shares[i] += room[i];
			room[i] = 0;
		}
		return;
	}
	/*
	 * e_sum may have saturated at UINT64_MAX (hostile demands): the
	 * shares are then a little smaller, never larger, than exact.
	 */
	for (size_t i = 0; i < n; i++) {
		uint64_t x;

		if (!live(hosts, i, self) || !room[i])
			continue;
		x = (uint64_t)((u128)r * room[i] / e_sum);
		shares[i] += x;
		room[i] -= x;
		given += x;
	}
	spread_by_name(hosts, n, r - given, has_room, &ctx, shares, room);
}

void vmcg_grant_fair_shares(const VmcgGrantParams *p, const VmcgGrantHost *hosts, size_t n,
			    uint64_t *ret_shares)
{
	g_autofree uint64_t *room = g_new(uint64_t, n ? n : 1);

	fair_shares(p, hosts, n, SIZE_MAX, ret_shares, room);
}

const char *vmcg_grant_reason_to_string(VmcgGrantReason reason)
{
	switch (reason) {
	case VMCG_GRANT_HOLD:
		return "hold";
	case VMCG_GRANT_GROW:
		return "grow";
	case VMCG_GRANT_WAIT_POOL:
		return "wait-pool";
	case VMCG_GRANT_WAIT_PARTITION:
		return "wait-partition";
	case VMCG_GRANT_SHRINK_ROOM:
		return "shrink-room";
	case VMCG_GRANT_SHRINK_FAIR:
		return "shrink-fair";
	case VMCG_GRANT_SHRINK_QUOTA:
		return "shrink-quota";
	}
	return "unknown";
}

static uint64_t sum_grants(const VmcgGrantHost *hosts, size_t n)
{
	uint64_t s = 0;

	for (size_t i = 0; i < n; i++)
		s = add_sat(s, hosts[i].grant_bytes);
	return s;
}

static uint64_t set_reason(VmcgGrantReason *ret_reason, VmcgGrantReason reason, uint64_t grant)
{
	if (ret_reason)
		*ret_reason = reason;
	return grant;
}

uint64_t vmcg_grant_decide(const VmcgGrantParams *p, const VmcgGrantHost *hosts, size_t n,
			   size_t self, bool can_grow, VmcgGrantReason *ret_reason)
{
	g_autofree uint64_t *shares = g_new(uint64_t, n);
	g_autofree uint64_t *room = g_new(uint64_t, n);
	const VmcgGrantHost *me = &hosts[self];
	uint64_t g = me->grant_bytes, d = me->demand_bytes, h = p->hysteresis_bytes;
	uint64_t sum = sum_grants(hosts, n), q = p->quota_bytes, s, lo, upper, land;
	bool starving = false, over = sum > q;

	g_assert(self < n);
	fair_shares(p, hosts, n, self, shares, room);
	s = shares[self];
	lo = min_u64(p->min_grant_bytes, s);
	for (size_t j = 0; j < n; j++) {
		uint64_t lo_j = min_u64(p->min_grant_bytes, shares[j]);

		if (j != self && hosts[j].alive &&
		    hosts[j].grant_bytes < min_u64(max_u64(hosts[j].demand_bytes, lo_j), shares[j]))
			starving = true;
	}

	/* Give back: what is above demand + hysteresis, or above the share when it is short. */
	upper = max_u64(add_sat(d, h), lo);
	if (starving || over)
		upper = min_u64(upper, s);
	if (g > upper) {
		VmcgGrantReason why = VMCG_GRANT_SHRINK_ROOM;

		land = max_u64(add_sat(d, h / 2), lo);
		if ((starving || over) && land > s) {
			land = s;
			why = over ? VMCG_GRANT_SHRINK_QUOTA : VMCG_GRANT_SHRINK_FAIR;
		}
		if (p->step_bytes && g - land > p->step_bytes)
			land = g - p->step_bytes;
		return set_reason(ret_reason, why, land);
	}

	/* Take: only from the free pool, never from another host. */
	if (g < max_u64(d, lo)) {
		if (!can_grow)
			return set_reason(ret_reason, VMCG_GRANT_WAIT_PARTITION, g);
		land = max_u64(add_sat(d, h / 2), lo);
		if (starving)
			land = min_u64(land, max_u64(s, g));
		land = min_u64(land, add_sat(g, over ? 0 : q - sum));
		if (p->step_bytes)
			land = min_u64(land, add_sat(g, p->step_bytes));
		if (land <= g)
			return set_reason(ret_reason, VMCG_GRANT_WAIT_POOL, g);
		return set_reason(ret_reason, VMCG_GRANT_GROW, land);
	}
	return set_reason(ret_reason, VMCG_GRANT_HOLD, g);
}

bool vmcg_grant_sum_ok(const VmcgGrantParams *p, const VmcgGrantHost *hosts, size_t n, size_t self,
		       uint64_t new_grant_bytes)
{
	uint64_t others = 0;

	g_assert(self < n);
	if (new_grant_bytes <= hosts[self].grant_bytes)
		return true;
	for (size_t i = 0; i < n; i++)
		if (i != self)
			others = add_sat(others, hosts[i].grant_bytes);
	return add_sat(others, new_grant_bytes) <= p->quota_bytes;
}

static uint64_t dist_u64(uint64_t a, uint64_t b)
{
	return a > b ? a - b : b - a;
}

bool vmcg_grant_should_write(const VmcgGrantParams *p, const VmcgGrantHost *published,
			     uint64_t new_grant_bytes, uint64_t demand_bytes, uint64_t quota_bytes)
{
	uint64_t band = max_u64(p->hysteresis_bytes / 2, 1);

	return new_grant_bytes != published->grant_bytes || quota_bytes != published->quota_bytes ||
	       dist_u64(demand_bytes, published->demand_bytes) >= band;
}

uint64_t vmcg_grant_demand(const VmcgGrantParams *p, const VmcgGrantDemandInput *in)
{
	uint64_t demand = in->usage_bytes;

	if (add_sat(in->usage_bytes, p->hysteresis_bytes / 4) >= in->cap_bytes)
		demand =
			add_sat(in->usage_bytes, max_u64(p->hysteresis_bytes, in->usage_bytes / 8));
	return min_u64(min_u64(demand, in->ceiling_bytes), VMCG_GRANT_BYTES_MAX);
}

bool vmcg_grant_shrink_ready(uint64_t published_bytes, uint64_t new_grant_bytes,
			     uint64_t usage_bytes, uint64_t waited_usec, uint64_t wait_max_usec)
{
	return new_grant_bytes >= published_bytes || usage_bytes <= new_grant_bytes ||
	       waited_usec >= wait_max_usec;
}

/* ---- keys ---- */

G_DEFINE_QUARK(vmcg - grant - error - quark, vmcg_grant_error)

#define GRANTS_SEGMENT "/grants/"

static bool plain_byte(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

static void escape(GString *out, const char *s)
{
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (plain_byte(*c))
			g_string_append_c(out, (char)*c);
		else
			g_string_append_printf(out, "%%%02X", *c);
	}
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1; /* lower case is not canonical */
}

/* One escaped segment back into its bytes; canonical escapes only, no NUL. */
static char *unescape(const char *s, size_t len, const char *what, GError **error)
{
	g_autoptr(GString) out = g_string_sized_new(len);

	for (size_t i = 0; i < len; i++) {
		int hi, lo;
		unsigned char c;

		if (plain_byte((unsigned char)s[i])) {
			g_string_append_c(out, s[i]);
			continue;
		}
		if (s[i] != '%') {
			g_set_error(error, VMCG_GRANT_ERROR, VMCG_GRANT_ERROR_INVALID,
				    "%s: byte 0x%02x at %zu is not allowed in a key", what,
				    (unsigned char)s[i], i);
			return NULL;
		}
		if (len - i < 3 || (hi = hex_digit(s[i + 1])) < 0 ||
		    (lo = hex_digit(s[i + 2])) < 0) {
			g_set_error(error, VMCG_GRANT_ERROR, VMCG_GRANT_ERROR_INVALID,
				    "%s: bad escape at %zu (%%XX, upper-case hex)", what, i);
			return NULL;
		}
		c = (unsigned char)(hi << 4 | lo);
		if (c == 0 || plain_byte(c)) {
			g_set_error(error, VMCG_GRANT_ERROR, VMCG_GRANT_ERROR_INVALID,
				    "%s: escape at %zu is not canonical (%s)", what, i,
				    c ? "a plain byte escaped" : "NUL");
			return NULL;
		}
		g_string_append_c(out, (char)c);
		i += 2;
	}
	return g_string_free(g_steal_pointer(&out), FALSE);
}

int vmcg_grant_host_validate(const char *host)
{
	size_t len = strlen(host);

	if (!len || len > VMCG_GRANT_HOST_MAX)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)host[i] <= ' ' || (unsigned char)host[i] >= 0x7f)
			return -EINVAL;
	return 0;
}

static bool group_valid(const char *group)
{
	return vmcg_path_validate(group) == 0 && strcmp(group, "/") != 0;
}

int vmcg_grant_key_prefix(const char *group, char **ret_prefix)
{
	GString *k;

	if (!group_valid(group))
		return -EINVAL;
	k = g_string_new(VMCG_GRANT_KEY_ROOT);
	escape(k, group);
	g_string_append(k, GRANTS_SEGMENT);
	*ret_prefix = g_string_free(k, FALSE);
	return 0;
}

int vmcg_grant_key(const char *group, const char *host, char **ret_key)
{
	g_autofree char *prefix = NULL;
	GString *k;

	if (vmcg_grant_host_validate(host) < 0 || vmcg_grant_key_prefix(group, &prefix) < 0)
		return -EINVAL;
	k = g_string_new(prefix);
	escape(k, host);
	*ret_key = g_string_free(k, FALSE);
	return 0;
}

int vmcg_grant_key_parse(const char *key, size_t len, char **ret_group, char **ret_host,
			 GError **error)
{
	const size_t root = strlen(VMCG_GRANT_KEY_ROOT), seg = strlen(GRANTS_SEGMENT);
	g_autofree char *group = NULL, *host = NULL;
	const char *g, *slash;
	size_t glen, hlen;

	if (len < root || memcmp(key, VMCG_GRANT_KEY_ROOT, root) != 0) {
		g_set_error(error, VMCG_GRANT_ERROR, VMCG_GRANT_ERROR_INVALID,
			    "key: not under " VMCG_GRANT_KEY_ROOT);
		return -EINVAL;
	}
	g = key + root;
	slash = memchr(g, '/', len - root);
	if (!slash || len - (size_t)(slash - key) < seg ||
	    memcmp(slash, GRANTS_SEGMENT, seg) != 0) {
		g_set_error(error, VMCG_GRANT_ERROR, VMCG_GRANT_ERROR_INVALID,
			    "key: no \"" GRANTS_SEGMENT "\" after the group");
		return -EINVAL;
	}
	glen = (size_t)(slash - g);
	hlen = len - root - glen - seg;
	if (!glen || !hlen) {
		g_set_error(error, VMCG_GRANT_ERROR, VMCG_GRANT_ERROR_INVALID, "key: an empty %s",
			    glen ? "host" : "group");
		return -EINVAL;
	}
	/* unescape() refuses '/' (and NUL): no extra segment gets through. */
	group = unescape(g, glen, "group", error);
	if (!group)
		return -EINVAL;
	host = unescape(slash + seg, hlen, "host", error);
	if (!host)
		return -EINVAL;
	if (!group_valid(group)) {
		g_set_error(error, VMCG_GRANT_ERROR, VMCG_GRANT_ERROR_INVALID,
			    "key: not a valid group path");
		return -EINVAL;
	}
	if (vmcg_grant_host_validate(host) < 0) {
		g_set_error(error, VMCG_GRANT_ERROR, VMCG_GRANT_ERROR_INVALID,
			    "key: not a valid host name");
		return -EINVAL;
	}
	*ret_group = g_steal_pointer(&group);
	*ret_host = g_steal_pointer(&host);
	return 0;
}

/* ---- the record ---- */

static const char *const record_members[] = { "grant", "demand", "quota", "at" };

static int get_member(json_object *o, const char *key, uint64_t *ret, GError **error)
{
	json_object *v;
	int64_t i;

	if (!json_object_object_get_ex(o, key, &v)) {
		g_set_error(error, VMCG_GRANT_ERROR, VMCG_GRANT_ERROR_INVALID,
			    "grant record: no \"%s\"", key);
		return -EINVAL;
	}
	if (!json_object_is_type(v, json_type_int)) {
		g_set_error(error, VMCG_GRANT_ERROR, VMCG_GRANT_ERROR_INVALID,
			    "grant record: \"%s\" is not an integer", key);
		return -EINVAL;
	}
	i = json_object_get_int64(v);
	if (i < 0) {
		g_set_error(error, VMCG_GRANT_ERROR, VMCG_GRANT_ERROR_INVALID,
			    "grant record: \"%s\" is negative", key);
		return -EINVAL;
	}
	/* json-c keeps integers above INT64_MAX as uint64: get_int64 clamps them. */
	*ret = i == INT64_MAX ? json_object_get_uint64(v) : (uint64_t)i;
	if (*ret > VMCG_GRANT_BYTES_MAX) {
		g_set_error(error, VMCG_GRANT_ERROR, VMCG_GRANT_ERROR_INVALID,
			    "grant record: \"%s\" is above 2^63", key);
		return -EINVAL;
	}
	return 0;
}

int vmcg_grant_record_parse(const char *buf, size_t len, VmcgGrantRecord *ret, GError **error)
{
	const VmcgJsonStreamOptions opts = {
		.max_message_bytes = VMCG_GRANT_RECORD_MAX,
		.max_tree_bytes = 64 * VMCG_GRANT_RECORD_MAX,
		.max_depth = 2,
		.what = "grant record",
	};
	g_autoptr(json_object) obj = NULL;
	g_autofree char *canonical = NULL;
	VmcgGrantRecord r;

	if (len > VMCG_GRANT_RECORD_MAX) {
		g_set_error(error, VMCG_GRANT_ERROR, VMCG_GRANT_ERROR_INVALID,
			    "grant record: %zu bytes, at most %d", len, VMCG_GRANT_RECORD_MAX);
		return -EINVAL;
	}
	if (vmcg_json_parse_object(buf, len, &opts, &obj, error) < 0)
		return -EINVAL;
	json_object_object_foreach(obj, key, val)
	{
		bool known = false;

		(void)val;
		for (size_t i = 0; i < G_N_ELEMENTS(record_members); i++)
			known = known || strcmp(key, record_members[i]) == 0;
		if (!known) {
			g_set_error(error, VMCG_GRANT_ERROR, VMCG_GRANT_ERROR_INVALID,
				    "grant record: unknown member \"%s\"", key);
			return -EINVAL;
		}
	}
	if (get_member(obj, "grant", &r.grant_bytes, error) < 0 ||
	    get_member(obj, "demand", &r.demand_bytes, error) < 0 ||
	    get_member(obj, "quota", &r.quota_bytes, error) < 0 ||
	    get_member(obj, "at", &r.at_usec, error) < 0)
		return -EINVAL;
	canonical = vmcg_grant_record_build(&r);
	if (strlen(canonical) != len || memcmp(canonical, buf, len) != 0) {
		g_set_error(error, VMCG_GRANT_ERROR, VMCG_GRANT_ERROR_INVALID,
			    "grant record: not in canonical form (members repeated, reordered "
			    "or spaced)");
		return -EINVAL;
	}
	*ret = r;
	return 0;
}

char *vmcg_grant_record_build(const VmcgGrantRecord *r)
{
	return g_strdup_printf("{\"grant\":%" PRIu64 ",\"demand\":%" PRIu64 ",\"quota\":%" PRIu64
			       ",\"at\":%" PRIu64 "}",
			       r->grant_bytes, r->demand_bytes, r->quota_bytes, r->at_usec);
}
