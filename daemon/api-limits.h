/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The API server's limits as decisions (docs/api.md, "Limits"): who may
 * open one more connection, what a request's Content-Length means, and how
 * long the listener waits when the daemon is out of file descriptors.
 *
 * Pure, as policy.c is (STYLE.md, "Boundaries"): counts and header values
 * in, a verdict out; no sockets, no main loop, no logging, no GLib.
 * api-conn.c gathers the inputs (SO_PEERCRED at accept, its own counts)
 * and acts on the verdict; tests/unit/test-api-limits.c feeds tables.
 */
#ifndef VMCG_API_LIMITS_H
#define VMCG_API_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Connections. Each holds a file descriptor the daemon also needs for its
 * QEMUs, and anyone who can reach the socket may connect, so:
 *
 * - 128 in all: far more than operators, vmcgctl and exporters need
 *   (event streams included), far below the usual 1024-fd soft limit.
 * - 32 of them are kept for privileged peers (uid 0 and the write group):
 *   everyone else shares the other 96, so readers cannot lock the people
 *   who change settings out of the API.
 * - 16 per uid for a peer that is not privileged: one local user cannot
 *   take the whole shared pool; a dashboard with a few streams and
 *   scrapers fits with room to spare.
 */
#define VMCG_API_CONNECTIONS_MAX 128
#define VMCG_API_CONNECTIONS_RESERVED 32
#define VMCG_API_CONNECTIONS_PER_UID 16

/*
 * Deadlines, from accept: the request line and headers within 10 s (they
 * are one write of a few hundred bytes for every real client; this is what
 * makes a connection that trickles a byte every few seconds end), then the
 * body within 30 s of the headers (64 KiB at most). An answered request has
 * no deadline: an event stream lasts as long as its client reads; a
 * connection that makes no progress at all for 60 s is closed whatever its
 * phase (a client that stopped reading its answer).
 */
#define VMCG_API_HEADER_DEADLINE_SEC 10
#define VMCG_API_BODY_DEADLINE_SEC 30
#define VMCG_API_IDLE_TIMEOUT_SEC 60

/*
 * Out of descriptors (EMFILE, ENFILE): the listener stops watching its
 * socket and tries again after 10 ms, doubling up to 1 s. Pending clients
 * wait in the kernel's backlog meanwhile; an accept loop that kept
 * watching would spin, since the socket stays readable.
 */
#define VMCG_API_BACKOFF_MIN_MSEC 10
#define VMCG_API_BACKOFF_MAX_MSEC 1000

/* What the connections are now: all of them, those of unprivileged peers, this peer's uid. */
typedef struct VmcgApiConnCounts {
	unsigned total;
	unsigned unprivileged;
	unsigned same_uid;
} VmcgApiConnCounts;

typedef enum VmcgApiAdmit {
	VMCG_API_ADMIT = 0,
	VMCG_API_REFUSE_FULL,	 /* VMCG_API_CONNECTIONS_MAX open */
	VMCG_API_REFUSE_SHARED,	 /* the unprivileged share is in use: the rest is reserved */
	VMCG_API_REFUSE_PER_UID, /* this uid holds VMCG_API_CONNECTIONS_PER_UID */
} VmcgApiAdmit;

/**
 * vmcg_api_admit() - may a peer open one more connection?
 * @c: the connections open now, @c->same_uid those of the peer's uid
 * @privileged: the peer is uid 0 or in the write group (may write)
 *
 * Returns VMCG_API_ADMIT or why not. A privileged peer is held only by
 * the total; others by the shared pool and their uid's cap too.
 */
VmcgApiAdmit vmcg_api_admit(const VmcgApiConnCounts *c, bool privileged);

/** vmcg_api_admit_str() - a short English reason for a refusal, for logs and bodies. */
const char *vmcg_api_admit_str(VmcgApiAdmit a);

/**
 * vmcg_api_content_length() - check a request's framing headers
 * @values: every Content-Length field of the request, as received (@n of them)
 * @chunked: the request also has a Transfer-Encoding
 * @limit: the body limit, bytes
 * @ret_len: the length, set on success (0 when there is no Content-Length)
 *
 * RFC 9112 6.3: a Content-Length is one decimal number; one field, and no
 * Transfer-Encoding beside it (a proxy and the server could frame such a
 * request differently). Leading and trailing blanks are allowed.
 *
 * A body framed by Transfer-Encoding alone (chunked) is refused: libsoup
 * 3.2 reads a chunk size with strtoul() and no check, so "zz", "-2" or
 * 2^72 end the body or swallow the rest, and a malformed request could
 * not be told from a well-formed one by what it delivers. Every body the
 * API takes is small, and every client knows its length.
 *
 * Returns 0; -EINVAL (400): several fields, not a number (sign, blanks
 * inside, empty), or together with Transfer-Encoding; -EFBIG (413): over
 * @limit, whatever its size (no overflow: 9223372036854775808 or forty
 * digits are just too large); -ENOTSUP (411): Transfer-Encoding and no
 * Content-Length.
 */
int vmcg_api_content_length(const char *const *values, size_t n, bool chunked, uint64_t limit,
			    uint64_t *ret_len);

/**
 * vmcg_api_backoff_next() - the next wait after an accept that failed for lack of descriptors
 * @prev_msec: the last wait, 0 at the start of an episode
 *
 * Returns VMCG_API_BACKOFF_MIN_MSEC, then twice the last, at most
 * VMCG_API_BACKOFF_MAX_MSEC.
 */
unsigned vmcg_api_backoff_next(unsigned prev_msec);

#endif
