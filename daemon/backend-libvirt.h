/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The "libvirt" VM backend (docs/libvirt.md): every running domain of one
 * libvirtd, adopted into the hierarchy from its XML.
 *
 * VmcgLibvirt is the connection's owner on the main loop: it opens it
 * (and reopens it with backoff when libvirtd goes away), adopts the
 * running domains, follows their events and forgets the ones that stop.
 * Each adopted domain is a VmcgDvm whose backend is a LibvirtBackend;
 * its record lives only as long as the domain runs and is never written
 * to the state file: the domain's XML is its configuration.
 */
#ifndef VMCG_DAEMON_BACKEND_LIBVIRT_H
#define VMCG_DAEMON_BACKEND_LIBVIRT_H

#include <glib.h>

#include "daemon.h"

typedef struct VmcgLibvirt VmcgLibvirt;

/** A libvirt backend for @d at @uri ("" or NULL: none); connects at vmcg_libvirt_start(). */
VmcgLibvirt *vmcg_libvirt_new(VmcgDaemon *d, const char *uri, const char *default_group);
void vmcg_libvirt_start(VmcgLibvirt *lv);
/* Forgets its VMs (their charges leave the tree; balloons stay as they are). */
void vmcg_libvirt_free(VmcgLibvirt *lv);
/** The adopted domain whose UUID is @uuid (any case), or NULL. */
VmcgDvm *vmcg_libvirt_find(VmcgLibvirt *lv, const char *uuid);

/* The connection's health, for GET /v1/status and the metrics. */
typedef struct VmcgLibvirtStatus {
	const char *uri;
	const char *state; /* "connecting", "connected", "disconnected" */
	const char *error; /* why the last open failed or the connection closed; NULL */
	unsigned domains;  /* adopted */
	uint64_t opens, closes;
	unsigned pending; /* requests queued for libvirtd */
} VmcgLibvirtStatus;

void vmcg_libvirt_status(VmcgLibvirt *lv, VmcgLibvirtStatus *ret);

#endif
