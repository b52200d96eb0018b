// SPDX-License-Identifier: GPL-2.0-or-later
/* The libvirt backend's pure decisions; see libvirt-adopt.h. */
#include <libvirt/virterror.h>
#include <string.h>

#include "libvirt-adopt.h"
#include "vmcg/size.h"

static bool has_knobs(const VmcgDomainMeta *m)
{
	return m->has_min || m->has_low || m->has_high || m->has_max;
}

void vmcg_lv_plan(const VmcgDomainXml *x, const char *default_group,
		  bool (*group_exists)(const char *path, void *userdata), void *userdata,
		  VmcgLvPlan *ret)
{
	const VmcgDomainMeta *m = &x->meta;

	*ret = (VmcgLvPlan){ 0 };
	if (x->has_meta && m->group) {
		if (group_exists(m->group, userdata)) {
			ret->group = m->group;
		} else if (has_knobs(m)) {
			ret->group = m->group;
			ret->create_group = true;
		} else {
			ret->fallback = "its group does not exist, and the metadata gives no "
					"memory.* to create it with";
		}
	} else if (x->problems && x->problems->len) {
		ret->fallback = "its vmcg metadata is invalid";
	}
	if (!ret->group)
		ret->group = default_group && group_exists(default_group, userdata) ? default_group
										    : "/";

	/* The larger of the two floors: each says the guest needs at least this much. */
	if (x->has_meta && m->has_floor) {
		ret->has_floor = true;
		ret->floor = m->floor;
	}
	if (x->min_guarantee) {
		ret->floor = ret->has_floor ? MAX(ret->floor, x->min_guarantee) : x->min_guarantee;
		ret->has_floor = true;
	}
	if (x->has_meta && m->has_oom_priority) {
		ret->has_oom_priority = true;
		ret->oom_priority = m->oom_priority;
	}
	ret->channel = x->channel;

	/* The first reason that applies; each alone makes the balloon useless. */
	if (!x->has_balloon)
		ret->no_balloon = "no balloon device (memballoon model='none')";
	else if (x->vfio)
		ret->no_balloon = "a VFIO host device pins all guest memory";
	else if (x->hugepages)
		ret->no_balloon = "hugepage-backed memory is not returned by the balloon";
	else if (x->locked)
		ret->no_balloon = "locked memory (memoryBacking/locked) is not returned";
}

bool vmcg_lv_guest_stats(const VmcgLvStats *s, uint64_t ram_bytes, VmcgGuestStats *ret)
{
	/* KiB to bytes without overflow: a value above 2^54 KiB is nonsense anyway. */
	const uint64_t kib_max = UINT64_MAX >> 10;
	uint64_t total, avail, free = 0, cache = 0;

	if (!s->has_available || !s->has_usable || !s->has_last_update)
		return false;
	if (s->available > kib_max || s->usable > kib_max || s->unused > kib_max ||
	    s->caches > kib_max)
		return false;
	total = s->available << 10;
	avail = s->usable << 10;
	if (s->has_unused)
		free = s->unused << 10;
	if (s->has_caches)
		cache = s->caches << 10;
	if (!total || (ram_bytes && total > ram_bytes) || avail > total || free > total ||
	    cache > total)
		return false;
	*ret = (VmcgGuestStats){ .total = total, .available = avail, .free = free, .cache = cache };
	return true;
}

VmcgLvErrorClass vmcg_lv_error_class(int code)
{
	switch (code) {
	case VIR_ERR_OPERATION_TIMEOUT: /* "cannot acquire state change lock": a job */
	case VIR_ERR_OPERATION_ABORTED:
	case VIR_ERR_AGENT_UNRESPONSIVE:
	case VIR_ERR_NO_CONNECT:
	case VIR_ERR_RPC:
	case VIR_ERR_SYSTEM_ERROR:
	case VIR_ERR_OPERATION_INVALID: /* e.g. migrating, or not quite running yet */
		return VMCG_LV_ERR_RETRY;
	case VIR_ERR_NO_DOMAIN:
		return VMCG_LV_ERR_GONE;
	case VIR_ERR_OPERATION_UNSUPPORTED:
	case VIR_ERR_CONFIG_UNSUPPORTED:
	case VIR_ERR_NO_SUPPORT:
		return VMCG_LV_ERR_NO_BALLOON;
	default:
		return VMCG_LV_ERR_FAIL;
	}
}
