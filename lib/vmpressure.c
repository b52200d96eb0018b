// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmpressure: reclaim efficiency per group, delivered to listeners.
 *
 * This is the kernel's mm/vmpressure.c in its userspace-reporting ("tree")
 * mode. The kernel accumulates a window in vmpressure() and consumes it in
 * vmpressure_work_fn() from a workqueue; here both happen synchronously in
 * vmcg_vmpressure_account(), because the caller already serializes every
 * call on a tree and has no reason to defer the walk.
 *
 * The kernel's non-tree mode (vmpr->scanned, memcg->socket_pressure) feeds
 * only in-kernel users (the socket buffer allocator); a VM has no such user,
 * so it is not modelled.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "vmcg/vmpressure.h"

/*
 * The kernel's unsigned long arithmetic in vmpressure_calc_level() computes
 * reclaimed * (scanned + reclaimed), which overflows 64 bits once scanned
 * passes about 2^32 pages. Real windows are a few times
 * VMCG_VMPRESSURE_WIN, but the API takes any uint64_t; above this bound
 * both operands are halved until they fit, which keeps the ratio (the only
 * thing the level depends on) to within one part in 2^30.
 */
#define VMPRESSURE_CALC_MAX (UINT64_C(1) << 31)

static const char *const vmpressure_str_levels[] = {
	[VMCG_VMPRESSURE_LOW] = "low",
	[VMCG_VMPRESSURE_MEDIUM] = "medium",
	[VMCG_VMPRESSURE_CRITICAL] = "critical",
};

static const char *const vmpressure_str_modes[] = {
	[VMCG_VMPRESSURE_MODE_DEFAULT] = "default",
	[VMCG_VMPRESSURE_MODE_HIERARCHY] = "hierarchy",
	[VMCG_VMPRESSURE_MODE_LOCAL] = "local",
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static bool vmpressure_level_valid(VmcgVmpressureLevel level)
{
	return (int)level >= VMCG_VMPRESSURE_LOW && (int)level <= VMCG_VMPRESSURE_CRITICAL;
}

static bool vmpressure_mode_valid(VmcgVmpressureMode mode)
{
	/* Unsigned, so a negative value cast into the enum is caught too. */
	return (unsigned int)mode <= VMCG_VMPRESSURE_MODE_LOCAL;
}

/* Adds without wrapping: a wrapped window would read as no pressure. */
static uint64_t vmpressure_add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

void vmcg_vmpressure_init(VmcgVmpressure *vmpr, VmcgVmpressure *parent)
{
	memset(vmpr, 0, sizeof(*vmpr));
	vmpr->parent = parent;
	vmpr->last_level = VMCG_VMPRESSURE_NONE;
}

/* The kernel's vmpressure_level(): map a percentage to a level. */
static VmcgVmpressureLevel vmpressure_level_of(uint64_t pressure)
{
	if (pressure >= VMCG_VMPRESSURE_LEVEL_CRITICAL)
		return VMCG_VMPRESSURE_CRITICAL;
	if (pressure >= VMCG_VMPRESSURE_LEVEL_MEDIUM)
		return VMCG_VMPRESSURE_MEDIUM;
	return VMCG_VMPRESSURE_LOW;
}

VmcgVmpressureLevel vmcg_vmpressure_calc_level(uint64_t scanned, uint64_t reclaimed)
{
	uint64_t scale;
	uint64_t pressure = 0;

	/*
	 * As in the kernel: reclaimed can exceed scanned (there, slab pages
	 * reclaimed without being scanned; here, a guest that returns more
	 * than was asked of it). That is no pressure, and the check also keeps
	 * scanned == 0 away from the division below.
	 */
	if (reclaimed >= scanned)
		return vmpressure_level_of(pressure);

	while (scanned >= VMPRESSURE_CALC_MAX) {
		scanned >>= 1;
		reclaimed >>= 1;
	}

	/*
	 * The kernel's arithmetic, rounding included, rather than
	 * 100 * (scanned - reclaimed) / scanned: the two truncations differ,
	 * e.g. 514 scanned and 26 reclaimed is 94.94 % but comes out at 95,
	 * critical. Listeners were tuned against the kernel's verdicts.
	 */
	scale = scanned + reclaimed;
	pressure = scale - (reclaimed * scale / scanned);
	pressure = pressure * 100 / scale;

	return vmpressure_level_of(pressure);
}

/*
 * The kernel's vmpressure_event(): signal the listeners of one group.
 * @ancestor: @vmpr is above the group whose window completed
 * @signalled: a listener below @vmpr has already fired
 *
 * Returns true if any listener fired, which stops DEFAULT
 * (VMPRESSURE_NO_PASSTHROUGH) listeners further up.
 */
static bool vmpressure_event(VmcgVmpressure *vmpr, VmcgVmpressureLevel level, bool ancestor,
			     bool signalled)
{
	VmcgVmpressureListener *l, *next;
	bool ret = false;

	for (l = vmpr->listeners; l; l = next) {
		/* Read first, so a callback that drops itself is survived. */
		next = l->next;

		if (ancestor && l->mode == VMCG_VMPRESSURE_MODE_LOCAL)
			continue;
		if (signalled && l->mode == VMCG_VMPRESSURE_MODE_DEFAULT)
			continue;
		if (level < l->level)
			continue;
		l->fn(vmpr, level, l->userdata);
		ret = true;
	}

	return ret;
}

/*
 * The kernel's vmpressure_work_fn() after it has taken the window: compute
 * the level and walk to the root.
 *
 * The level is also stored, with @now_usec, in the group whose window
 * completed and in each of its ancestors: an ancestor's read-out
 * (vmcg_vmpressure_level()) then reflects reclaim anywhere in its subtree,
 * as the notifications that reach it do. It is stored before any listener
 * runs, so a callback that reads the level sees this window's.
 */
static VmcgVmpressureLevel vmpressure_consume(VmcgVmpressure *vmpr, uint64_t now_usec)
{
	VmcgVmpressureLevel level;
	VmcgVmpressure *g;
	bool ancestor = false;
	bool signalled = false;

	level = vmcg_vmpressure_calc_level(vmpr->tree_scanned, vmpr->tree_reclaimed);
	vmpr->tree_scanned = 0;
	vmpr->tree_reclaimed = 0;
	vmpr->windows++;

	for (g = vmpr; g; g = g->parent) {
		g->last_level = level;
		g->last_usec = now_usec;
	}

	for (g = vmpr; g; g = g->parent) {
		if (vmpressure_event(g, level, ancestor, signalled))
			signalled = true;
		ancestor = true;
	}

	return level;
}

VmcgVmpressureLevel vmcg_vmpressure_account(VmcgVmpressure *vmpr, uint64_t now_usec,
					    uint64_t scanned, uint64_t reclaimed)
{
	/*
	 * As in the kernel: nothing scanned means reclaim found nothing to
	 * ask for at this depth, not that it failed; escalation comes through
	 * vmcg_vmpressure_prio(). Reclaimed pages without a scan are dropped
	 * too, as vmpressure() returns before adding them.
	 */
	if (!scanned)
		return VMCG_VMPRESSURE_NONE;

	vmpr->tree_scanned = vmpressure_add_sat(vmpr->tree_scanned, scanned);
	vmpr->tree_reclaimed = vmpressure_add_sat(vmpr->tree_reclaimed, reclaimed);

	/* The window is the rate limit: no verdict on fewer pages. */
	if (vmpr->tree_scanned < VMCG_VMPRESSURE_WIN)
		return VMCG_VMPRESSURE_NONE;

	return vmpressure_consume(vmpr, now_usec);
}

VmcgVmpressureLevel vmcg_vmpressure_prio(VmcgVmpressure *vmpr, uint64_t now_usec, int prio)
{
	/* Priority only ever signals critical; shallower passes say nothing. */
	if (prio > VMCG_VMPRESSURE_CRITICAL_PRIO)
		return VMCG_VMPRESSURE_NONE;

	/*
	 * A full window with nothing reclaimed, as the kernel passes
	 * vmpressure_win and 0 to vmpressure(). Pages already in the open
	 * window are part of the verdict, exactly as there.
	 */
	return vmcg_vmpressure_account(vmpr, now_usec, VMCG_VMPRESSURE_WIN, 0);
}

VmcgVmpressureLevel vmcg_vmpressure_level(const VmcgVmpressure *vmpr, uint64_t now_usec,
					  uint64_t hold_usec)
{
	/*
	 * A @now_usec before the window's time (a caller mixing clocks) is
	 * read as age 0: the level is fresh, not expired. The hold is
	 * inclusive: a window exactly @hold_usec old still counts. Before any
	 * window, last_level is NONE either way.
	 */
	if (now_usec > vmpr->last_usec && now_usec - vmpr->last_usec > hold_usec)
		return VMCG_VMPRESSURE_NONE;

	return vmpr->last_level;
}

int vmcg_vmpressure_register(VmcgVmpressure *vmpr, VmcgVmpressureListener *l)
{
	VmcgVmpressureListener *it;

	if (!l || !l->fn || !vmpressure_level_valid(l->level) || !vmpressure_mode_valid(l->mode))
		return -EINVAL;

	/* Linking a listener twice would make the list a cycle. */
	for (it = vmpr->listeners; it; it = it->next)
		if (it == l)
			return -EEXIST;

	/*
	 * At the head, as the kernel's list_add(): within one group the most
	 * recently registered listener is signalled first.
	 */
	l->next = vmpr->listeners;
	vmpr->listeners = l;

	return 0;
}

int vmcg_vmpressure_unregister(VmcgVmpressure *vmpr, VmcgVmpressureListener *l)
{
	VmcgVmpressureListener **pp;

	for (pp = &vmpr->listeners; *pp; pp = &(*pp)->next) {
		if (*pp != l)
			continue;
		*pp = l->next;
		l->next = NULL;
		return 0;
	}

	return -ENOENT;
}

const char *vmcg_vmpressure_level_to_string(VmcgVmpressureLevel level)
{
	if (level == VMCG_VMPRESSURE_NONE)
		return "none";
	if (!vmpressure_level_valid(level))
		return NULL;
	return vmpressure_str_levels[level];
}

int vmcg_vmpressure_level_from_string(const char *s, VmcgVmpressureLevel *ret)
{
	size_t i;

	if (!s)
		return -EINVAL;

	if (!strcmp(s, "none")) {
		*ret = VMCG_VMPRESSURE_NONE;
		return 0;
	}

	/* Exact, case-sensitive match, as the kernel's match_string(). */
	for (i = 0; i < ARRAY_SIZE(vmpressure_str_levels); i++) {
		if (!strcmp(s, vmpressure_str_levels[i])) {
			*ret = (VmcgVmpressureLevel)i;
			return 0;
		}
	}

	return -EINVAL;
}

const char *vmcg_vmpressure_mode_to_string(VmcgVmpressureMode mode)
{
	if (!vmpressure_mode_valid(mode))
		return NULL;
	return vmpressure_str_modes[mode];
}

int vmcg_vmpressure_mode_from_string(const char *s, VmcgVmpressureMode *ret)
{
	size_t i;

	if (!s)
		return -EINVAL;

	for (i = 0; i < ARRAY_SIZE(vmpressure_str_modes); i++) {
		if (!strcmp(s, vmpressure_str_modes[i])) {
			*ret = (VmcgVmpressureMode)i;
			return 0;
		}
	}

	return -EINVAL;
}
