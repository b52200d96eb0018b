/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The guest pressure channel, the I/O half (docs/guest-channel.md): one
 * client connection per VM to the unix socket of QEMU's chardev for the
 * virtio-serial port org.vmcg.pressure.0, on the daemon's main loop. The
 * protocol's decisions are channel-proto.h's (pure).
 *
 * It connects as the QMP client does, reconnects with the same backoff
 * (vmcg_qmp_reconnect_next_ms()) and rate-limits its warnings the same way
 * (VmcgQmpLogLimit). Everything the guest sends is untrusted: reads are
 * non-blocking, one bounded read per dispatch, a line is at most
 * VMCG_CHANNEL_LINE_MAX bytes, and the output is at most one message: what
 * is still to send (hello, config, pressure) is a flag, composed only when
 * the previous message is out, so a pressure change replaces an unsent
 * older one and a guest that never reads costs nothing but that message.
 *
 * It owns nothing of the VM: what it learns it reports through
 * vmcg_dvm_channel_*() (daemon/vm.c).
 */
#ifndef VMCG_DAEMON_CHANNEL_H
#define VMCG_DAEMON_CHANNEL_H

#include <stdint.h>

#include <glib.h>

#include "channel-proto.h"
#include "daemon.h"

typedef struct VmcgChannel VmcgChannel;

typedef enum VmcgChannelState {
	VMCG_CHANNEL_DISCONNECTED = 0, /* no socket, or no guest hello on it yet */
	VMCG_CHANNEL_CONNECTED,	       /* each side has seen the other's hello */
	VMCG_CHANNEL_STATE_MUTED,      /* the guest is muted (channel-proto.h) */
} VmcgChannelState;

const char *vmcg_channel_state_to_string(VmcgChannelState s);

/* What the API shows; strings are the channel's. */
typedef struct VmcgChannelInfo {
	VmcgChannelState state;
	int64_t version;   /* the guest's hello, 0 before one */
	const char *agent; /* the guest's hello, NULL before one */
	uint64_t dropped;  /* guest messages dropped, all connections */
	uint64_t received; /* guest lines read, all connections */
	uint64_t sent;	   /* host messages sent, all connections */
	uint64_t pressure_seq;
} VmcgChannelInfo;

/** A channel for @vm to @path (checked like a QMP socket); does no I/O yet. */
VmcgChannel *vmcg_channel_new(VmcgDvm *vm, const char *path, uint32_t interval_ms);
/** Disconnect and free; no report is made from here. NULL is fine. */
void vmcg_channel_free(VmcgChannel *ch);
/** Start connecting (and reconnecting). */
void vmcg_channel_start(VmcgChannel *ch);
const char *vmcg_channel_path(const VmcgChannel *ch);

/** The report rate asked of the guest (a config message when it changes). */
void vmcg_channel_set_interval(VmcgChannel *ch, uint32_t interval_ms);

/**
 * vmcg_channel_set_pressure() - the VM's level and reclaim hint now: sent
 * at once when either changed (and after every hello). Cheap when nothing
 * changed: the control loop calls it every tick.
 */
void vmcg_channel_set_pressure(VmcgChannel *ch, VmcgVmpressureLevel level, const char *group,
			       uint64_t reclaim_bytes, uint64_t reclaim_within_ms);

void vmcg_channel_info(const VmcgChannel *ch, VmcgChannelInfo *ret);

/* ---- reports, implemented by daemon/vm.c ---- */

/** A report the channel accepted (checked, at the allowed rate). */
void vmcg_dvm_channel_report(VmcgDvm *vm, const VmcgChannelReport *r);
/** The channel's state changed (events channel_connected, _disconnected, _muted). */
void vmcg_dvm_channel_state(VmcgDvm *vm, VmcgChannelState state, const char *why);

#endif
