/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The control-plane API: HTTP/1.1 and JSON over a unix socket (docs/api.md).
 *
 * Two halves:
 * - the server (vmcg_api_new(); api.c, with the read-outs in api-render.c,
 *   /metrics in api-metrics.c and the event stream in api-events.c), which
 *   routes requests to the daemon core, checks the peer's credentials for
 *   writes and streams events;
 * - the request-body parsers (vmcg_api_parse_*(); api-parse.c), pure
 *   functions of their input that validate a whole body before anything
 *   reaches the daemon, so a rejected request never changes state. Each
 *   member is a setting of the settings table (settings.h), validated as
 *   the config file validates the key of the same name. They are what the
 *   unit test and the fuzzer exercise, and what reads the state file.
 */
#ifndef VMCG_API_H
#define VMCG_API_H

#include <glib.h>
#include <stdint.h>

#include "daemon.h"

#define VMCG_API_SOCKET_DEFAULT "/run/vmcg/vmcgd.sock"

/*
 * 64 KiB: the largest valid body is a few hundred bytes (a VM with a
 * 128-byte name and a 107-byte socket path); anything near this is not a
 * request, and holding it costs memory per connection.
 */
#define VMCG_API_BODY_LIMIT_DEFAULT (64 * 1024)
/* The parsers refuse more than this whatever the server's limit (1 MiB). */
#define VMCG_API_BODY_LIMIT_MAX (1024 * 1024)

/*
 * 8: every body is one flat object, so depth 2 is all a valid request
 * needs; json-c's default (32) would let a hostile body make the tokener
 * keep a deep stack for nothing.
 */
#define VMCG_API_JSON_DEPTH 8

typedef struct VmcgApiOptions {
	const char *socket_path; /* NULL: VMCG_API_SOCKET_DEFAULT */
	gint64 write_gid;	 /* a group whose members may write; -1: root only */
	gsize body_limit;	 /* bytes; 0: VMCG_API_BODY_LIMIT_DEFAULT */
} VmcgApiOptions;

typedef struct VmcgApi VmcgApi;

/**
 * vmcg_api_new() - serve the API of @d on a unix socket
 *
 * Creates the socket's directory (0755) if it is missing, removes a stale
 * socket file that nobody listens on (never a live socket, never a file
 * that is not a socket), binds, listens and makes the socket 0666: anyone
 * who can reach it may read; writes are allowed by the peer's credentials
 * (uid 0, or @opts->write_gid as primary or supplementary group).
 * Requests are served from the thread-default main context.
 *
 * Errors: G_IO_ERROR (ADDRESS_IN_USE if a daemon already listens there,
 * EXISTS if the path is something else, INVALID_ARGUMENT for a path that
 * does not fit a sockaddr_un or a body limit above VMCG_API_BODY_LIMIT_MAX,
 * and what mkdir, bind and listen report).
 */
VmcgApi *vmcg_api_new(VmcgDaemon *d, const VmcgApiOptions *opts, GError **error);

/** vmcg_api_free() - close every connection and remove the socket file. NULL ok. */
void vmcg_api_free(VmcgApi *api);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VmcgApi, vmcg_api_free)

/* ---- request bodies ---- */

#define VMCG_API_ERROR (vmcg_api_error_quark())
GQuark vmcg_api_error_quark(void);

/* Why a body was refused. All are 400 invalid_argument, but TOO_LARGE (413). */
typedef enum VmcgApiError {
	VMCG_API_ERROR_SYNTAX = 0,    /* not JSON, truncated, trailing data, NUL bytes */
	VMCG_API_ERROR_UTF8,	      /* not UTF-8, in the body or in an escaped string */
	VMCG_API_ERROR_DEPTH,	      /* nested deeper than VMCG_API_JSON_DEPTH */
	VMCG_API_ERROR_TOO_LARGE,     /* more than VMCG_API_BODY_LIMIT_MAX bytes */
	VMCG_API_ERROR_TYPE,	      /* not an object, or a member of the wrong type */
	VMCG_API_ERROR_UNKNOWN_FIELD, /* a member the request does not have (or read-only) */
	VMCG_API_ERROR_MISSING_FIELD, /* a required member is absent */
	VMCG_API_ERROR_VALUE,	      /* right type, wrong value (range, syntax, name) */
} VmcgApiError;

/*
 * A VM request: POST /v1/vms (name and address required, group defaults
 * to "/") or PUT /v1/vms/<name> (every member optional; group NULL: stays).
 * After vmcg_api_parse_vm_add(), backend is set ("qmp" unless given) and
 * address is too, whether the body named it "address" or "qmp"; qmp is
 * the address again for the qmp backend, else NULL.
 */
typedef struct VmcgApiVmRequest {
	char *name;
	char *backend;
	char *address;
	char *qmp;
	char *group;
	VmcgVmSettings settings;
} VmcgApiVmRequest;

void vmcg_api_vm_request_clear(VmcgApiVmRequest *req);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(VmcgApiVmRequest, vmcg_api_vm_request_clear)

/*
 * The parsers. @body need not be NUL-terminated; @len 0 is an empty
 * object. Unknown members, wrong types, negative sizes and sizes above
 * VMCG_SIZE_LIMIT are refused. *@ret is set only on success. Errors in
 * VMCG_API_ERROR, the message naming the member at fault.
 */

/** PUT /v1/groups/<path>: memory.min/low/high/max, memory.oom.group, oom-action, overhead-in-max. */
gboolean vmcg_api_parse_group_settings(const char *body, gsize len, VmcgGroupSettings *ret,
				       GError **error);
/** POST /v1/vms: name, address or qmp (required), backend, group, floor, oom-priority. */
gboolean vmcg_api_parse_vm_add(const char *body, gsize len, VmcgApiVmRequest *ret, GError **error);
/** PUT /v1/vms/<name>: group, floor, oom-priority. */
gboolean vmcg_api_parse_vm_update(const char *body, gsize len, VmcgApiVmRequest *ret,
				  GError **error);
/** POST /v1/groups/<path>/reclaim: bytes (required; not "max"). */
gboolean vmcg_api_parse_reclaim(const char *body, gsize len, uint64_t *ret_bytes, GError **error);

/*
 * The state file's entries (state.c) are parsed by the same schemas, from
 * a JSON value of the document: a group is {"path", and the PUT members},
 * a VM is a POST /v1/vms body. Same errors as the body parsers.
 */
gboolean vmcg_api_parse_group_entry(json_object *obj, char **ret_path, VmcgGroupSettings *ret,
				    GError **error);
gboolean vmcg_api_parse_vm_entry(json_object *obj, VmcgApiVmRequest *ret, GError **error);

#endif
