/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What vmcgd reads out of QMP replies and events: pure parsers, no I/O, no
 * main loop, one per command. Each takes the "return" member (or an
 * event's "data") as the client hands it to the callback, applies the
 * checks below, and fills plain values.
 *
 * Everything here is untrusted (a guest drives the balloon statistics, a
 * compromised QEMU can answer anything): a value out of range is an error,
 * never clamped, so a VM that answers nonsense is a VM that does not answer.
 *
 * Sizes are bounded by @ram_limit_bytes, the guest's RAM as query-memdev
 * gave it, or VMCG_QMP_SIZE_LIMIT_DEFAULT_BYTES when it is 0 (not known
 * yet).
 *
 * Errors: VMCG_QMP_ERROR_BAD_REPLY (wrong type, missing member, out of
 * range) or VMCG_QMP_ERROR_NO_VALUE (well-formed, but without the value:
 * no balloon child, no memdev size, no guest statistics yet). Out-parameters
 * are set on success only. The functions return true on success.
 */
#ifndef VMCG_DAEMON_QMP_REPLY_H
#define VMCG_DAEMON_QMP_REPLY_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>
#include <json-c/json.h>

#include "qmp-message.h"

/*
 * 1 TiB: the bound on a size before the guest's RAM is known. Above any
 * VM vmcgd manages on one host, and far below the int64 range, so that a
 * size QEMU clamps or garbles is refused.
 */
#define VMCG_QMP_SIZE_LIMIT_DEFAULT_BYTES (UINT64_C(1) << 40)

/*
 * 4 TiB: the largest guest RAM query-memdev may report, the bound vmcgd
 * has always used: room for the largest guests a host runs, while a
 * garbled size (an integer json-c clamped to INT64_MAX, say) is refused.
 */
#define VMCG_QMP_MEMDEV_MAX_BYTES (UINT64_C(1) << 42)

/**
 * vmcg_qmp_parse_balloon() - the reply of query-balloon
 * @ret: the "return" member: {"actual": <bytes>}
 * @ram_limit_bytes: the guest's RAM, or 0 when not known yet
 * @ret_actual_bytes: the balloon's actual size: > 0 and <= the limit
 * @error: VMCG_QMP_ERROR_BAD_REPLY
 */
bool vmcg_qmp_parse_balloon(json_object *ret, uint64_t ram_limit_bytes, uint64_t *ret_actual_bytes,
			    GError **error);

/**
 * vmcg_qmp_parse_balloon_change() - the data of a BALLOON_CHANGE event
 * @data: the event's "data": {"actual": <bytes>}; NULL is an error
 *
 * The same rules as vmcg_qmp_parse_balloon().
 */
bool vmcg_qmp_parse_balloon_change(json_object *data, uint64_t ram_limit_bytes,
				   uint64_t *ret_actual_bytes, GError **error);

/* The guest's own view of its memory, from the virtio-balloon stats queue. */
typedef struct {
	uint64_t total_bytes;	  /* stat-total-memory: > 0 and <= the limit */
	uint64_t available_bytes; /* stat-available-memory: <= total */
	int64_t free_bytes;	  /* stat-free-memory: <= total; -1 when absent */
	int64_t cache_bytes;	  /* stat-disk-caches: <= total; -1 when absent */
	/*
	 * "last-update": the host's time in seconds when the guest last sent
	 * statistics, 0 before it ever did. The caller compares it with the
	 * last one it took: a value that does not move means the guest
	 * stopped updating.
	 */
	int64_t last_update;
} VmcgQmpGuestStats;

/**
 * vmcg_qmp_parse_guest_stats() - the reply of qom-get <balloon> guest-stats
 * @ret: {"stats": {"stat-total-memory": .., ...}, "last-update": <int>}
 * @ram_limit_bytes: the guest's RAM, or 0 when not known yet
 * @ret_stats: filled on success
 * @error: VMCG_QMP_ERROR_BAD_REPLY, or VMCG_QMP_ERROR_NO_VALUE when the
 *         guest has not reported its total or available memory
 *
 * A statistic the guest did not report is absent: missing, not an integer,
 * negative, or QEMU's marker for "never reported", UINT64_MAX (which is
 * what QEMU 7.2 sends: 18446744073709551615). stat-total-memory and
 * stat-available-memory must be present; free and cache may be absent
 * (-1). Present values beyond the total (or the total beyond the limit)
 * make the whole reply nonsense.
 */
bool vmcg_qmp_parse_guest_stats(json_object *ret, uint64_t ram_limit_bytes,
				VmcgQmpGuestStats *ret_stats, GError **error);

/*
 * The fast path (qmp.h, VmcgQmpFastReplyFn): the same readings of a reply
 * read flat, node @obj of @f. True with exactly what the json-c parser
 * above gives for that reply; false for anything it would refuse or could
 * read otherwise (the caller then has json-c parse the reply, and the
 * parser above says what is wrong). tests/unit/test-qmp-reply.c runs both
 * over every canned reply.
 */
bool vmcg_qmp_fast_balloon(const VmcgJsonFlat *f, int obj, uint64_t ram_limit_bytes,
			   uint64_t *ret_actual_bytes);
bool vmcg_qmp_fast_guest_stats(const VmcgJsonFlat *f, int ret, uint64_t ram_limit_bytes,
			       VmcgQmpGuestStats *ret_stats);

/**
 * vmcg_qmp_parse_memdev() - the guest's RAM from the reply of query-memdev
 * @ret: an array of memdevs, each {"id": .., "size": <bytes>, ...}
 * @ret_size_bytes: the size of the first memdev whose "size" is a positive
 *                  integer; entries that are not objects or lack one are
 *                  skipped
 * @error: VMCG_QMP_ERROR_BAD_REPLY (not an array, or that size is above
 *         VMCG_QMP_MEMDEV_MAX_BYTES), VMCG_QMP_ERROR_NO_VALUE (none)
 *
 * The first size, not the sum: the sampler counts every memdev of that size
 * (NUMA nodes of equal size); a guest with unequal nodes is a documented
 * limit of sampling mode.
 */
bool vmcg_qmp_parse_memdev(json_object *ret, uint64_t *ret_size_bytes, GError **error);

/**
 * vmcg_qmp_parse_balloon_child() - find the virtio-balloon in a qom-list
 * @ret: the reply of qom-list of /machine/peripheral or
 *       /machine/peripheral-anon: an array of {"name": .., "type": ..}
 * @ret_qom_path: the QOM path of the first child whose type starts with
 *                "child<virtio-balloon" (vmcg_qmp_balloon_qom_path() of its
 *                name); g_free() it. Entries that are not objects with
 *                string "name" and "type" are skipped.
 * @error: VMCG_QMP_ERROR_BAD_REPLY (not an array), VMCG_QMP_ERROR_NO_VALUE
 *         (no balloon child)
 */
bool vmcg_qmp_parse_balloon_child(json_object *ret, char **ret_qom_path, GError **error);

/*
 * The QOM path of the peripheral named @child_name: the proxy (e.g. PCI)
 * device, which carries the balloon's guest-stats properties. Devices
 * without an id are "device[N]" under /machine/peripheral-anon, the others
 * are under /machine/peripheral (QEMU ids cannot hold '['). g_free() it.
 */
char *vmcg_qmp_balloon_qom_path(const char *child_name);

/**
 * vmcg_qmp_parse_status() - the reply of query-status
 * @ret: {"status": "running", "singlestep": false, "running": true}
 * @ret_running: "running"
 * @ret_status: "status" (non-empty), borrowed from @ret; may be NULL
 * @error: VMCG_QMP_ERROR_BAD_REPLY
 */
bool vmcg_qmp_parse_status(json_object *ret, bool *ret_running, const char **ret_status,
			   GError **error);

/* The events vmcgd acts on. */
typedef enum {
	VMCG_QMP_EVENT_OTHER,
	VMCG_QMP_EVENT_BALLOON_CHANGE, /* data: vmcg_qmp_parse_balloon_change() */
	VMCG_QMP_EVENT_STOP,
	VMCG_QMP_EVENT_RESUME,
	VMCG_QMP_EVENT_SHUTDOWN,
} VmcgQmpEventKind;

/* The kind of the event named @event (as the event callback gets it). */
VmcgQmpEventKind vmcg_qmp_event_kind(const char *event);

#endif
