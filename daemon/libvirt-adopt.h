/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The libvirt backend's decisions, pure: where a domain goes and with what
 * settings (from its XML), whether its balloon can be driven, what its
 * statistics are worth, what to do about an error libvirt returned.
 * backend-libvirt.c gathers the inputs and applies the answers;
 * tests/unit/test-libvirt-adopt.c has the tables.
 */
#ifndef VMCG_DAEMON_LIBVIRT_ADOPT_H
#define VMCG_DAEMON_LIBVIRT_ADOPT_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "libvirt-conn.h"
#include "libvirt-xml.h"

/* What vmcgd does with a running domain. Strings point into the inputs. */
typedef struct VmcgLvPlan {
	const char *group; /* where it goes */
	/* The metadata names a group that does not exist and carries its knobs: create it. */
	bool create_group;
	bool has_floor;
	uint64_t floor; /* bytes: max(vmcg:floor, <memtune><min_guarantee>) */
	bool has_oom_priority;
	int32_t oom_priority;
	const char *channel;	/* the pressure channel's socket, NULL: none */
	const char *no_balloon; /* why its balloon cannot be driven; NULL: it can */
	/* Why the metadata's group was not used (static text), NULL if it was or there was none. */
	const char *fallback;
} VmcgLvPlan;

/**
 * vmcg_lv_plan() - the plan for domain @x: its metadata's group if the
 * metadata is valid and the group exists (or can be created from the
 * metadata's knobs), else @default_group if it exists, else "/".
 * @group_exists: whether a group path exists in the tree now.
 */
void vmcg_lv_plan(const VmcgDomainXml *x, const char *default_group,
		  bool (*group_exists)(const char *path, void *userdata), void *userdata,
		  VmcgLvPlan *ret);

/**
 * vmcg_lv_guest_stats() - a domain's balloon statistics as guest
 * statistics: FALSE if it has none, or they are nonsense against its RAM
 * (@ram_bytes): a total above RAM, an available or free above the total.
 */
bool vmcg_lv_guest_stats(const VmcgLvStats *s, uint64_t ram_bytes, VmcgGuestStats *ret);

typedef enum VmcgLvErrorClass {
	VMCG_LV_ERR_RETRY,	/* busy (a job holds the domain), not connected: next tick */
	VMCG_LV_ERR_GONE,	/* no such domain, or not running: its stop event follows */
	VMCG_LV_ERR_NO_BALLOON, /* the domain cannot balloon (no device, unsupported) */
	VMCG_LV_ERR_FAIL,	/* anything else: warned, retried later */
} VmcgLvErrorClass;

/** What a libvirt error code (virErrorNumber) means for a balloon or OOM action. */
VmcgLvErrorClass vmcg_lv_error_class(int code);

#endif
