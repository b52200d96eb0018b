/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One source of settings: every setting vmcgd takes, with its default,
 * type and range, in one table (settings.c), and one validator per type
 * that the config file (config.c), the API's request bodies (api-parse.c)
 * and the state file (state.c, through the API's parsers) all call. So the
 * same value is accepted or refused, with the same message, everywhere:
 *
 *   config:  vmcgd.conf:7: [group /a] memory.max: "8E" is out of range: ...
 *   API:     memory.max: "8E" is out of range: ...
 *   state:   state: groups[0]: memory.max: "8E" is out of range: ...
 *
 * The message a validator gives names neither the setting nor where the
 * value came from: each caller puts its own prefix in front.
 *
 * Text (the config file, JSON strings) and JSON values (API bodies, state
 * entries) go through the same text parser: a JSON integer is read as its
 * decimal text, so {"memory.max": 1073741824} and memory.max = 1073741824
 * are one value with one message. What JSON alone can get wrong (a member
 * of the wrong type) is a VMCG_SETTING_ERROR_TYPE.
 */
#ifndef VMCG_DAEMON_SETTINGS_H
#define VMCG_DAEMON_SETTINGS_H

#include <glib.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "daemon.h"

/* Where a setting lives: a config section and an API object. */
typedef enum VmcgSettingScope {
	VMCG_SETTING_DAEMON,  /* [daemon]; not in the API */
	VMCG_SETTING_GROUP,   /* [group PATH], PUT /v1/groups/PATH, state "groups" */
	VMCG_SETTING_VM,      /* [vm NAME], POST /v1/vms, PUT /v1/vms/NAME, state "vms" */
	VMCG_SETTING_REQUEST, /* a request parameter, never stored (reclaim "bytes") */
	VMCG_SETTING_LIBVIRT, /* [libvirt]; not in the API */
	VMCG_SETTING_CLUSTER, /* [cluster]; not in the API */
} VmcgSettingScope;

typedef enum VmcgSettingType {
	VMCG_SETTING_SIZE,	  /* u64 bytes (vmcg/size.h); VMCG_BYTES_MAX is "max" */
	VMCG_SETTING_DURATION,	  /* u64 usec (config.h's vmcg_duration_parse()) */
	VMCG_SETTING_BOOL,	  /* b */
	VMCG_SETTING_INTEGER,	  /* i64, decimal, in [lo, hi] */
	VMCG_SETTING_SOCKET_PATH, /* str: absolute, names a file, fits sun_path */
	VMCG_SETTING_FILE_PATH,	  /* str: absolute, names a file, < PATH_MAX */
	VMCG_SETTING_UNIX_GROUP,  /* str: a group name as groupadd takes it */
	VMCG_SETTING_OOM_ACTION,  /* action: notify | pause | destroy */
	VMCG_SETTING_GROUP_PATH,  /* str: vmcg_path_validate() */
	VMCG_SETTING_VM_NAME,	  /* str: vmcg_vm_name_validate() */
	VMCG_SETTING_BACKEND,	  /* str: "qmp", the only backend the API and config register */
	VMCG_SETTING_URI,	  /* str: a libvirt connection URI, printable ASCII, no blanks */
	VMCG_SETTING_ENDPOINTS,	  /* str: etcd endpoints, http(s)://host:port, comma-separated */
	VMCG_SETTING_NODE_NAME,	  /* str: a cluster host name (vmcg_grant_host_validate()) */
} VmcgSettingType;

/* VmcgSetting.flags */
enum {
	VMCG_SETTING_MAX_OK = 1u << 0,	      /* sizes: "max" is allowed */
	VMCG_SETTING_ZERO_OK = 1u << 1,	      /* durations, sizes: 0 is allowed below lo ("off") */
	VMCG_SETTING_WHOLE_SECONDS = 1u << 2, /* durations */
	VMCG_SETTING_EMPTY_OK = 1u << 3,      /* strings: "" is allowed ("none") */
};

typedef enum VmcgSettingId {
	/* [daemon] */
	VMCG_SETTING_SOCKET,
	VMCG_SETTING_STATE,
	VMCG_SETTING_HOOKS_SOCKET,
	VMCG_SETTING_INTERVAL,
	VMCG_SETTING_WRITE_GROUP,
	VMCG_SETTING_RECURSIVE_PROTECTION,
	VMCG_SETTING_STOCK_BATCH,
	VMCG_SETTING_BACKSTOP,
	VMCG_SETTING_BACKSTOP_OVERHEAD,
	VMCG_SETTING_RECLAIM_STEP,
	VMCG_SETTING_HYSTERESIS,
	VMCG_SETTING_STATS_INTERVAL,
	VMCG_SETTING_STATS_MAX_AGE,
	VMCG_SETTING_VMPRESSURE_HOLD,
	VMCG_SETTING_CHANNEL_REPORT_INTERVAL,
	VMCG_SETTING_GUEST_STALL,
	VMCG_SETTING_UNKNOWN_CHARGE_GRACE,
	/* groups */
	VMCG_SETTING_MEMORY_MIN,
	VMCG_SETTING_MEMORY_LOW,
	VMCG_SETTING_MEMORY_HIGH,
	VMCG_SETTING_MEMORY_MAX,
	VMCG_SETTING_MEMORY_OOM_GROUP,
	VMCG_SETTING_OOM_ACTION_KNOB,
	VMCG_SETTING_OVERHEAD_IN_MAX,
	VMCG_SETTING_CLUSTER_MEMORY_MAX,
	/* VMs */
	VMCG_SETTING_VM_NAME_ID, /* the section's NAME in the config */
	VMCG_SETTING_VM_BACKEND,
	VMCG_SETTING_VM_ADDRESS,
	VMCG_SETTING_VM_QMP, /* the address, for the qmp backend (the name before backends) */
	VMCG_SETTING_VM_GROUP,
	VMCG_SETTING_VM_FLOOR,
	VMCG_SETTING_VM_OOM_PRIORITY,
	VMCG_SETTING_VM_CHANNEL, /* the guest pressure channel's socket; "" none */
	/* request parameters */
	VMCG_SETTING_RECLAIM_BYTES,
	/* [libvirt] */
	VMCG_SETTING_LIBVIRT_URI,
	VMCG_SETTING_LIBVIRT_GROUP,
	/* [cluster] */
	VMCG_SETTING_CLUSTER_ETCD,
	VMCG_SETTING_CLUSTER_NODE,
	VMCG_SETTING_CLUSTER_CA_FILE,
	VMCG_SETTING_CLUSTER_CERT_FILE,
	VMCG_SETTING_CLUSTER_KEY_FILE,
	VMCG_SETTING_CLUSTER_LEASE_TTL,
	VMCG_SETTING_CLUSTER_HYSTERESIS,
	VMCG_SETTING_CLUSTER_MIN_GRANT,
	VMCG_SETTING_CLUSTER_SHRINK_WAIT,
	_VMCG_SETTING_COUNT,
} VmcgSettingId;

typedef struct VmcgSetting {
	VmcgSettingId id;
	const char *name; /* the config key and the JSON member */
	VmcgSettingScope scope;
	VmcgSettingType type;
	unsigned flags;		  /* VMCG_SETTING_MAX_OK, ... */
	int64_t lo, hi;		  /* sizes, durations, integers: the range, inclusive */
	const char *default_text; /* as the config file writes it; NULL: none (required) */
	const char *help;	  /* for messages: what the value is */
} VmcgSetting;

/* A parsed value: the member that its type uses. */
typedef struct VmcgSettingValue {
	uint64_t u64; /* SIZE, DURATION */
	int64_t i64;  /* INTEGER */
	bool b;	      /* BOOL */
	VmcgOomAction action;
	char *str; /* the string types; owned */
} VmcgSettingValue;

void vmcg_setting_value_clear(VmcgSettingValue *v);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(VmcgSettingValue, vmcg_setting_value_clear)

#define VMCG_SETTING_ERROR (vmcg_setting_error_quark())
GQuark vmcg_setting_error_quark(void);

typedef enum VmcgSettingError {
	VMCG_SETTING_ERROR_TYPE,  /* JSON: a member of the wrong type */
	VMCG_SETTING_ERROR_UTF8,  /* JSON: a string that is not UTF-8 once unescaped */
	VMCG_SETTING_ERROR_VALUE, /* syntax, range, name */
} VmcgSettingError;

/** vmcg_setting() - the table's entry for @id. */
const VmcgSetting *vmcg_setting(VmcgSettingId id);

/** vmcg_setting_find() - the setting of @scope called @name, or NULL. */
const VmcgSetting *vmcg_setting_find(VmcgSettingScope scope, const char *name);

/**
 * vmcg_setting_parse_text() - validate @text for @s
 * @text: as written in the config (trimmed) or a JSON string's contents
 * @ret: the value, set only on success (the caller clears it)
 * Errors: VMCG_SETTING_ERROR_VALUE, the message without the setting's name.
 */
gboolean vmcg_setting_parse_text(const VmcgSetting *s, const char *text, VmcgSettingValue *ret,
				 GError **error);

/**
 * vmcg_setting_parse_json() - validate a JSON member's value @v for @s.
 * Integers are validated as their decimal text, strings as their text
 * (sizes, durations, paths, names, words); booleans are JSON booleans.
 * Errors: VMCG_SETTING_ERROR_TYPE, _UTF8 and _VALUE, without the name.
 */
gboolean vmcg_setting_parse_json(const VmcgSetting *s, json_object *v, VmcgSettingValue *ret,
				 GError **error);

/** vmcg_setting_default() - @s's default (its default_text, parsed). @s must have one. */
void vmcg_setting_default(const VmcgSetting *s, VmcgSettingValue *ret);
/** The default of a size or duration setting. */
uint64_t vmcg_setting_default_u64(VmcgSettingId id);

/**
 * vmcg_settings_policy_defaults() - the members of @p that are settings
 * (reclaim-step, hysteresis, stats-interval, stats-max-age,
 * vmpressure-hold, channel-report-interval, guest-stall) at their defaults; the others are left as they are.
 */
void vmcg_settings_policy_defaults(VmcgPolicy *p);

/**
 * vmcg_setting_store() - put @v, a value of @s's type, into @field: a
 * uint64_t (sizes, durations), bool, 32-bit integer, VmcgOomAction, or
 * char * for the rest (the string is moved out of @v; the old one freed).
 * The one mapping from values to the structs of config, API and state.
 */
void vmcg_setting_store(const VmcgSetting *s, VmcgSettingValue *v, void *field);

/**
 * vmcg_settings_quote() - @s as messages quote a value: in double quotes,
 * tabs, quotes and backslashes escaped, cut at 64 bytes on a character
 * boundary (@s is UTF-8) with "..." after.
 */
char *vmcg_settings_quote(const char *s);

#endif
