/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The libvirt connection: every libvirt call vmcgd makes, on a thread of
 * its own.
 *
 * libvirt's API is synchronous: each call is a round trip to libvirtd,
 * and a libvirtd that is busy or hung would stall whoever calls it. So
 * vmcgd's main loop never calls libvirt. It queues requests here (open,
 * read a domain, read every domain's balloon statistics, set a balloon,
 * suspend, resume, destroy); one worker thread makes the calls in order
 * and hands each result back to the main loop. libvirt's events
 * (lifecycle, metadata, balloon, migration, the connection's close) are
 * dispatched by libvirt's event loop, which libvirt-glib's
 * gvir_event_register() puts on the main loop; they are handed on the
 * same way, by domain UUID, never by pointer.
 *
 * This module decides nothing: backend-libvirt.c does, on the main loop,
 * with the pure helpers of libvirt-xml.h and libvirt-adopt.h.
 */
#ifndef VMCG_DAEMON_LIBVIRT_CONN_H
#define VMCG_DAEMON_LIBVIRT_CONN_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define VMCG_LV_UUID_LEN 37 /* VIR_UUID_STRING_BUFLEN */

typedef struct VmcgLvConn VmcgLvConn;

/* One running domain as the worker read it. */
typedef struct VmcgLvDomain {
	char uuid[VMCG_LV_UUID_LEN];
	char *name;
	char *xml;	   /* virDomainGetXMLDesc(0): the live definition */
	int state, reason; /* virDomainGetState() */
	pid_t pid;	   /* libvirt's pid file, checked against /proc; 0 if unknown */
} VmcgLvDomain;

void vmcg_lv_domain_free(VmcgLvDomain *dom);

/* One domain's balloon statistics (virConnectGetAllDomainStats()), KiB. */
typedef struct VmcgLvStats {
	char uuid[VMCG_LV_UUID_LEN];
	int state;
	bool has_current, has_maximum, has_available, has_usable, has_unused, has_caches;
	bool has_last_update;
	uint64_t current, maximum; /* balloon.current (the guest's size), .maximum */
	uint64_t available;	   /* balloon.available: the guest's MemTotal */
	uint64_t usable;	   /* balloon.usable: MemAvailable */
	uint64_t unused;	   /* balloon.unused: MemFree */
	uint64_t caches;	   /* balloon.disk_caches */
	int64_t last_update;	   /* balloon.last-update, the guest's clock (s) */
} VmcgLvStats;

typedef enum VmcgLvOp {
	VMCG_LV_OP_SETMEM,  /* virDomainSetMemoryFlags(LIVE), arg = KiB */
	VMCG_LV_OP_PERIOD,  /* virDomainSetMemoryStatsPeriod(LIVE), arg = s */
	VMCG_LV_OP_SUSPEND, /* virDomainSuspend() */
	VMCG_LV_OP_RESUME,  /* virDomainResume() */
	VMCG_LV_OP_DESTROY, /* virDomainDestroy() */
} VmcgLvOp;

typedef enum VmcgLvResultKind {
	VMCG_LV_OPENED,	     /* domains: every running domain */
	VMCG_LV_OPEN_FAILED, /* error */
	VMCG_LV_DOMAIN,	     /* domain: a refresh */
	VMCG_LV_DOMAIN_GONE, /* a refresh found no running domain of that UUID */
	VMCG_LV_STATS,	     /* stats */
	VMCG_LV_DONE,	     /* an op finished: error 0, or why not */
} VmcgLvResultKind;

/* What libvirt said went wrong: its error code (virErrorNumber), for retries. */
typedef struct VmcgLvError {
	int code; /* 0: no error */
	char *message;
} VmcgLvError;

typedef struct VmcgLvResult {
	VmcgLvResultKind kind;
	unsigned gen; /* the connection the request was made on (vmcg_lv_open()) */
	VmcgLvOp op;
	uint64_t arg;
	char uuid[VMCG_LV_UUID_LEN];
	VmcgLvError error;
	GPtrArray *domains; /* VmcgLvDomain */
	VmcgLvDomain *domain;
	GArray *stats; /* VmcgLvStats */
	uint64_t usec; /* time the worker spent on it */
} VmcgLvResult;

/* Called on the main loop. Strings are borrowed for the call. */
typedef struct VmcgLvCallbacks {
	void (*result)(const VmcgLvResult *r, gpointer userdata);
	void (*lifecycle)(const char *uuid, int event, int detail, gpointer userdata);
	void (*metadata)(const char *uuid, gpointer userdata);
	void (*balloon)(const char *uuid, uint64_t actual_kib, gpointer userdata);
	void (*migrating)(const char *uuid, gpointer userdata);
	void (*job_done)(const char *uuid, gpointer userdata);
	/* The connection closed (libvirtd went away, keepalive timed out): reopen. */
	void (*closed)(unsigned gen, const char *why, gpointer userdata);
} VmcgLvCallbacks;

/**
 * vmcg_lv_conn_new() - a connection to @uri (not opened yet) and its worker.
 * Registers libvirt-glib's event loop implementation once per process.
 */
VmcgLvConn *vmcg_lv_conn_new(const char *uri, const VmcgLvCallbacks *cb, gpointer userdata);
/* Waits for the call in progress, drops the rest; no callback after it returns. */
void vmcg_lv_conn_free(VmcgLvConn *c);

/**
 * vmcg_lv_open() - (re)open the connection, subscribe to its events and
 * read every running domain; a result of VMCG_LV_OPENED or _OPEN_FAILED
 * follows. Returns the new connection's generation: results and closes of
 * older ones are stale.
 */
unsigned vmcg_lv_open(VmcgLvConn *c);
/* Read one domain again: VMCG_LV_DOMAIN or VMCG_LV_DOMAIN_GONE. */
void vmcg_lv_refresh(VmcgLvConn *c, const char *uuid);
/* Every running domain's balloon statistics, in one call: VMCG_LV_STATS. */
void vmcg_lv_read_stats(VmcgLvConn *c);
void vmcg_lv_op(VmcgLvConn *c, VmcgLvOp op, const char *uuid, uint64_t arg);
/* Requests queued or running. */
unsigned vmcg_lv_pending(VmcgLvConn *c);

/**
 * vmcg_lv_pid_path() - where libvirt's QEMU driver keeps the pid file of
 * domain @name for @uri: "<runstatedir>/libvirt/qemu/NAME.pid" for
 * qemu:///system, "$XDG_RUNTIME_DIR/libvirt/qemu/run/NAME.pid" for
 * qemu:///session; NULL for other drivers. Pure.
 */
char *vmcg_lv_pid_path(const char *uri, const char *name, const char *runtime_dir);
/** Whether /proc/PID/cmdline @cmdline (NUL-separated) is QEMU's for domain @name. Pure. */
bool vmcg_lv_cmdline_is_domain(const char *cmdline, size_t len, const char *name);

#endif
