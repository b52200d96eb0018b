/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The guest pressure channel's protocol (docs/guest-channel.md), the pure
 * half: cutting the guest's bytes into lines, parsing and checking each
 * message, building the host's, and the rate and mute decisions. No I/O, no
 * main loop, no logging: daemon/channel.c does the socket and calls these;
 * tests/unit/test-channel-proto.c and tests/fuzz/fuzz-channel.c feed them.
 *
 * Everything the guest sends is untrusted (docs/security.md): a message
 * that is not one JSON object of at most VMCG_CHANNEL_LINE_MAX bytes, that
 * lacks a member, has one of the wrong type, or is out of bounds is an
 * error with a reason, never an assert.
 */
#ifndef VMCG_DAEMON_CHANNEL_PROTO_H
#define VMCG_DAEMON_CHANNEL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>
#include <json-c/json.h>

#include "vmcg/vmpressure.h"

/* The protocol's major version (docs/guest-channel.md, "Versions"). */
#define VMCG_CHANNEL_VERSION 1

/* 4096: every line, newline included, is at most this (the contract). */
#define VMCG_CHANNEL_LINE_MAX 4096

/* 64: the most an agent's name may be (the contract). */
#define VMCG_CHANNEL_AGENT_MAX 64

/* report-interval-ms bounds and default (the contract). */
#define VMCG_CHANNEL_INTERVAL_MIN_MS 100
#define VMCG_CHANNEL_INTERVAL_MAX_MS 60000
#define VMCG_CHANNEL_INTERVAL_DEFAULT_MS 1000

/*
 * The mute rules of the contract: more than 20 messages in a second, or 16
 * malformed in a minute, mute a guest for 30 s. 20/s is twice the fastest
 * report rate (100 ms) the host may ask for: an agent that follows the
 * contract never reaches it.
 */
#define VMCG_CHANNEL_FLOOD_MSGS 20
#define VMCG_CHANNEL_FLOOD_WINDOW_USEC (1 * G_USEC_PER_SEC)
#define VMCG_CHANNEL_BAD_MSGS 16
#define VMCG_CHANNEL_BAD_WINDOW_USEC (60 * G_USEC_PER_SEC)
#define VMCG_CHANNEL_MUTE_USEC (30 * G_USEC_PER_SEC)

/* A report is fresh for this many report intervals (the contract, "Effect"). */
#define VMCG_CHANNEL_FRESH_INTERVALS 3

/* ---- lines ---- */

/*
 * Cuts the guest's byte stream into lines. A line longer than
 * VMCG_CHANNEL_LINE_MAX (newline included) is not buffered: its bytes are
 * skipped up to its newline, and it comes out once as an overflow. So the
 * buffer never holds more than VMCG_CHANNEL_LINE_MAX bytes, whatever the
 * guest sends, and a bad line never costs the next one.
 */
typedef struct VmcgChannelLines {
	char buf[VMCG_CHANNEL_LINE_MAX];
	size_t len;
	bool overflow; /* skipping to the end of a line that was too long */
} VmcgChannelLines;

typedef enum VmcgChannelLine {
	VMCG_CHANNEL_LINE_NONE = 0, /* all of the input was used, no line ended */
	VMCG_CHANNEL_LINE_OK,	    /* a line (without its newline) */
	VMCG_CHANNEL_LINE_TOO_LONG, /* a line over the limit ended */
} VmcgChannelLine;

void vmcg_channel_lines_reset(VmcgChannelLines *l);

/**
 * vmcg_channel_lines_feed() - the next line of @buf
 * @ret_consumed: bytes of @buf used (always set)
 * @ret_line, @ret_len: with VMCG_CHANNEL_LINE_OK, the line without its
 *                      newline, valid until the next call
 *
 * Call again with the rest of @buf until it returns VMCG_CHANNEL_LINE_NONE.
 */
VmcgChannelLine vmcg_channel_lines_feed(VmcgChannelLines *l, const char *buf, size_t len,
					size_t *ret_consumed, const char **ret_line,
					size_t *ret_len);

/* ---- guest messages ---- */

typedef enum VmcgChannelMsgType {
	VMCG_CHANNEL_MSG_HELLO,
	VMCG_CHANNEL_MSG_REPORT,
} VmcgChannelMsgType;

/* A report, as checked. Sizes in bytes; avg10 in hundredths of a percent. */
typedef struct VmcgChannelReport {
	uint64_t seq;
	bool has_psi;
	uint32_t some_avg10_centi, full_avg10_centi; /* 0..10000 */
	uint64_t some_total_usec, full_total_usec;
	bool has_available, has_file, has_anon;
	uint64_t available, file, anon;
} VmcgChannelReport;

typedef struct VmcgChannelMsg {
	VmcgChannelMsgType type;
	/* hello */
	int64_t version;
	char agent[VMCG_CHANNEL_AGENT_MAX + 1];
	/* report */
	VmcgChannelReport report;
} VmcgChannelMsg;

/* Why a guest message was dropped (every one is counted). */
typedef enum VmcgChannelDrop {
	VMCG_CHANNEL_DROP_NONE = 0,
	VMCG_CHANNEL_DROP_MALFORMED, /* not one JSON object, no "type", a bad member */
	VMCG_CHANNEL_DROP_TOO_LONG,  /* a line over VMCG_CHANNEL_LINE_MAX */
	VMCG_CHANNEL_DROP_UNKNOWN,   /* a "type" this version does not know */
	VMCG_CHANNEL_DROP_BOUNDS,    /* avg10 outside 0..100, a total back, a size above RAM */
	VMCG_CHANNEL_DROP_EARLY,     /* anything but hello before hello */
	VMCG_CHANNEL_DROP_RATE,	     /* reports faster than twice the asked rate */
	VMCG_CHANNEL_DROP_MUTED,     /* the guest is muted */
	_VMCG_CHANNEL_DROP_COUNT,
} VmcgChannelDrop;

/* "malformed", ... for logs and metrics. */
const char *vmcg_channel_drop_to_string(VmcgChannelDrop why);

/* Whether a drop counts toward the mute for malformed messages. */
bool vmcg_channel_drop_is_malformed(VmcgChannelDrop why);

/**
 * vmcg_channel_parse() - parse and check one line from the guest
 * @line, @len: the line without its newline (need not be NUL-terminated)
 * @ram_bytes: the VM's RAM size, 0 if not known (no size bound then)
 * @last: the last report accepted on this connection, or NULL: a total
 *        below its total is refused (PSI totals never go backwards)
 * @ret: the message, set only on success
 * @ret_err: why, on failure (may be NULL; a static string or into @errbuf)
 *
 * Members a message does not know are ignored (the contract); a hello's
 * version is returned as it is (the caller decides what it speaks).
 *
 * Return: VMCG_CHANNEL_DROP_NONE, or why the line is dropped:
 * MALFORMED, UNKNOWN or BOUNDS.
 */
VmcgChannelDrop vmcg_channel_parse(const char *line, size_t len, uint64_t ram_bytes,
				   const VmcgChannelReport *last, VmcgChannelMsg *ret, char *errbuf,
				   size_t errlen);

/* ---- host messages (each a line with its newline, g_free()) ---- */

char *vmcg_channel_build_hello(const char *vm, uint32_t interval_ms);
char *vmcg_channel_build_config(uint32_t interval_ms);
char *vmcg_channel_build_pressure(VmcgVmpressureLevel level, uint64_t seq, const char *group,
				  uint64_t reclaim_bytes, uint64_t reclaim_within_ms);

/* ---- rates ---- */

/*
 * The rate and mute state of one connection, zeroed at connect. Time is
 * the daemon's monotonic clock, usec.
 */
typedef struct VmcgChannelRate {
	uint64_t flood_start_usec; /* the current one-second window; 0: none */
	uint32_t flood_msgs;
	uint64_t bad_start_usec; /* the current one-minute window; 0: none */
	uint32_t bad_msgs;
	uint64_t muted_until_usec; /* 0: not muted */
	/* Reports: a budget in usec, refilled by time, spent half an interval per report. */
	uint64_t report_budget_usec;
	uint64_t report_last_usec; /* 0: none yet */
} VmcgChannelRate;

typedef enum VmcgChannelVerdict {
	VMCG_CHANNEL_PASS = 0,	/* go on */
	VMCG_CHANNEL_MUTED,	/* muted: drop it */
	VMCG_CHANNEL_MUTED_NOW, /* this message muted the guest: drop it, say so */
} VmcgChannelVerdict;

/** Is the guest muted at @now_usec? (A mute that ran out starts the windows again.) */
bool vmcg_channel_rate_muted(VmcgChannelRate *r, uint64_t now_usec);

/**
 * vmcg_channel_rate_message() - a line arrived at @now_usec (any line,
 * good or bad). Return: MUTED while muted, MUTED_NOW for the message that
 * is one more than VMCG_CHANNEL_FLOOD_MSGS in a window, else PASS.
 */
VmcgChannelVerdict vmcg_channel_rate_message(VmcgChannelRate *r, uint64_t now_usec);

/**
 * vmcg_channel_rate_malformed() - the line was malformed (after
 * vmcg_channel_rate_message() passed it). Return: MUTED_NOW for the
 * VMCG_CHANNEL_BAD_MSGS-th in a window, else PASS.
 */
VmcgChannelVerdict vmcg_channel_rate_malformed(VmcgChannelRate *r, uint64_t now_usec);

/**
 * vmcg_channel_rate_report() - may a report arriving at @now_usec be
 * taken, the host asking for one every @interval_usec? A token bucket: two
 * reports per interval sustained, a burst of two (so a guest whose timer
 * jitters is not dropped, one that reports at twice the rate or faster is).
 * Return: true to take it (and it is charged), false to drop it.
 */
bool vmcg_channel_rate_report(VmcgChannelRate *r, uint64_t now_usec, uint64_t interval_usec);

#endif
