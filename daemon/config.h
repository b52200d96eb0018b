/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmcgd.conf: the daemon's settings and the group tree, in GKeyFile (INI)
 * syntax. Every key, its default and its range are in the settings table
 * (settings.h) and in docs/config.md; config/vmcgd.conf is the default file.
 *
 * Loading is all or nothing: a file with any error gives no config, and the
 * GError names the origin, the line, the section and the key. Typos are
 * errors (unknown sections and keys, sections or keys given twice): a
 * misspelt limit that was silently ignored would leave a tenant unlimited.
 *
 * The result is plain data, checked but not applied: the caller builds the
 * tree from it. Nothing here touches the engine.
 */
#ifndef VMCG_DAEMON_CONFIG_H
#define VMCG_DAEMON_CONFIG_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmcg/group.h"
#include "vmcg/size.h"

/* Files above 1 MiB are refused: a config is a few KiB; more is a wrong path. */
#define VMCG_CONFIG_FILE_MAX (1024 * 1024)

#define VMCG_CONFIG_DEFAULT_PATH "/etc/vmcg/vmcgd.conf"

#define VMCG_CONFIG_ERROR (vmcg_config_error_quark())
GQuark vmcg_config_error_quark(void);

typedef enum VmcgConfigError {
	VMCG_CONFIG_ERROR_TOO_LARGE,	   /* over VMCG_CONFIG_FILE_MAX */
	VMCG_CONFIG_ERROR_ENCODING,	   /* not UTF-8, NUL or control bytes, a BOM */
	VMCG_CONFIG_ERROR_SYNTAX,	   /* not a section, key = value or comment */
	VMCG_CONFIG_ERROR_UNKNOWN_SECTION, /* [foo] */
	VMCG_CONFIG_ERROR_UNKNOWN_KEY,	   /* a key that the section does not take */
	VMCG_CONFIG_ERROR_DUPLICATE,	   /* a section or a key given twice */
	VMCG_CONFIG_ERROR_MISSING,	   /* a required key is absent */
	VMCG_CONFIG_ERROR_INVALID,	   /* a bad value, unit, range or reference */
	/* The line scanner and GKeyFile read the file differently: a bug (tests only). */
	VMCG_CONFIG_ERROR_INTERNAL,
} VmcgConfigError;

/* VmcgConfigGroup.set: which knobs its section set. */
enum {
	VMCG_CONFIG_KNOB_MIN = 1u << 0,
	VMCG_CONFIG_KNOB_LOW = 1u << 1,
	VMCG_CONFIG_KNOB_HIGH = 1u << 2,
	VMCG_CONFIG_KNOB_MAX = 1u << 3,
	VMCG_CONFIG_KNOB_OOM_GROUP = 1u << 4,
	VMCG_CONFIG_KNOB_OOM_ACTION = 1u << 5,
	VMCG_CONFIG_KNOB_OVERHEAD_IN_MAX = 1u << 6,
	VMCG_CONFIG_KNOB_CLUSTER_MAX = 1u << 7,
};

/*
 * A [group PATH] section. Knobs that were not set hold the cgroup defaults
 * (min = low = 0, high = max = VMCG_SIZE_MAX, oom.group off, notify,
 * overhead not in max), so a caller may apply all of them or only those in
 * @set. Sizes are bytes, not rounded to pages; VMCG_SIZE_MAX is "max".
 */
typedef struct VmcgConfigGroup {
	char *path; /* valid (vmcg_path_validate()), never "/" */
	unsigned line;
	unsigned set; /* VMCG_CONFIG_KNOB_* */
	uint64_t min_bytes;
	uint64_t low_bytes;
	uint64_t high_bytes;
	uint64_t max_bytes;
	bool oom_group;
	VmcgOomAction oom_action;
	bool overhead_in_max;
	uint64_t cluster_max_bytes; /* cluster.memory.max; VMCG_SIZE_MAX: not cluster-wide */
} VmcgConfigGroup;

/* A [vm NAME] section: a VM that vmcgd reaches through its backend at an address. */
typedef struct VmcgConfigVm {
	char *name; /* valid (vmcg_vm_name_validate()) */
	unsigned line;
	char *backend;	  /* "qmp" (the default and, so far, the only one) */
	char *address;	  /* qmp: the QMP socket ("qmp" or "address"), absolute, fits sun_path */
	char *group_path; /* "/" or declared (see vmcg_config_load_data()) */
	uint64_t floor_bytes; /* VMCG_SIZE_MAX: never balloon this VM */
	int32_t oom_priority; /* VMCG_OOM_PRIORITY_MIN..MAX */
	char *channel;	      /* the pressure channel's socket; NULL or "": none */
} VmcgConfigVm;

typedef struct VmcgConfig {
	/* [daemon] */
	char *socket_path;
	char *state_path;
	char *hooks_socket_path; /* "" for no hooks socket */
	uint64_t interval_usec;
	char *write_group; /* "" for root only */
	bool recursive_protection;
	uint32_t stock_batch; /* pages */
	bool backstop;
	uint64_t backstop_overhead_bytes;
	uint64_t reclaim_step_bytes; /* VMCG_SIZE_MAX: no cap */
	uint64_t hysteresis_bytes;
	uint64_t stats_interval_usec; /* 0: do not poll */
	uint64_t stats_max_age_usec;
	uint64_t vmpressure_hold_usec;
	uint64_t unknown_charge_grace_usec;
	uint64_t channel_report_interval_usec;
	int32_t guest_stall_pct;
	/* [libvirt] */
	char *libvirt_uri;	     /* "" turns the libvirt backend off */
	char *libvirt_default_group; /* a domain without usable metadata goes here */
	/* [cluster] (docs/cluster.md) */
	char *cluster_etcd; /* endpoints, comma-separated; "" for no cluster */
	char *cluster_node; /* "" for the host name */
	char *cluster_ca_file, *cluster_cert_file, *cluster_key_file; /* "" for none */
	uint64_t cluster_lease_ttl_usec;
	uint64_t cluster_hysteresis_bytes;
	uint64_t cluster_min_grant_bytes;
	uint64_t cluster_shrink_wait_usec;

	/* [group PATH] sections, in file order (a child may come before its parent). */
	VmcgConfigGroup *groups;
	size_t n_groups;
	/* [vm NAME] sections, in file order. */
	VmcgConfigVm *vms;
	size_t n_vms;
} VmcgConfig;

/** vmcg_config_new_default() - every setting at its default; no groups, no VMs. */
VmcgConfig *vmcg_config_new_default(void);

/** vmcg_config_free() - NULL ok. */
void vmcg_config_free(VmcgConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VmcgConfig, vmcg_config_free)

/**
 * vmcg_config_load_data() - parse and check a config
 * @data: the text, UTF-8; need not be NUL-terminated
 * @len: its length in bytes, or (gsize)-1 if @data is NUL-terminated
 * @origin: a name for messages (a path), or NULL for "<config>"
 * @ret: the config, set only on success
 *
 * Groups whose ancestors are not declared are fine: the caller creates
 * missing ancestors with default knobs (mkdir -p). A VM's group, though,
 * must be "/", declared, or an ancestor of a declared group, so that a
 * typo in it is an error rather than a new, unlimited group.
 *
 * Returns TRUE, or FALSE with @error in VMCG_CONFIG_ERROR.
 */
gboolean vmcg_config_load_data(const char *data, gsize len, const char *origin, VmcgConfig **ret,
			       GError **error);

/**
 * vmcg_config_load_file() - vmcg_config_load_data() on the contents of @path
 * Files over VMCG_CONFIG_FILE_MAX are refused without being read in full.
 * Returns TRUE, or FALSE with @error in G_FILE_ERROR (cannot read) or
 * VMCG_CONFIG_ERROR.
 */
gboolean vmcg_config_load_file(const char *path, VmcgConfig **ret, GError **error);

/** vmcg_config_find_group() - the [group @path] entry, or NULL. */
const VmcgConfigGroup *vmcg_config_find_group(const VmcgConfig *config, const char *path);
/** vmcg_config_find_vm() - the [vm @name] entry, or NULL. */
const VmcgConfigVm *vmcg_config_find_vm(const VmcgConfig *config, const char *name);

/**
 * vmcg_config_equal() - same settings, groups and VMs (in the same order).
 * Line numbers are not compared. For reloads: an unchanged file is no-op.
 */
bool vmcg_config_equal(const VmcgConfig *a, const VmcgConfig *b);

/**
 * vmcg_config_load_default() - the config vmcgd reads without -c: @path
 * (VMCG_CONFIG_DEFAULT_PATH in production) if it exists, else the embedded
 * default (vmcg_config_default_text()). A file that exists but cannot be
 * read or is invalid is an error, never a silent fallback.
 * @ret_origin: set to @path or "embedded default config" (static or
 * @path itself), only on success
 */
gboolean vmcg_config_load_default(const char *path, VmcgConfig **ret, const char **ret_origin,
				  GError **error);

/**
 * vmcg_config_scan_data() - a test seam: vmcg_config_load_data() that also
 * returns the sections, keys and raw values (before inline comments are
 * cut) that the line scanner saw, as an array of VmcgConfigScanned, so that
 * the unit test and the fuzzer can hold them against GKeyFile's reading.
 */
typedef struct VmcgConfigScanned {
	char *name;
	GPtrArray *keys;   /* char * */
	GPtrArray *values; /* char *, raw: as GKeyFile returns them */
} VmcgConfigScanned;

gboolean vmcg_config_scan_data(const char *data, gsize len, GPtrArray **ret_sections,
			       GError **error);

/**
 * vmcg_config_default_text() - config/vmcgd.conf as shipped, embedded at
 * build time: it loads to exactly vmcg_config_new_default(). For a
 * "print the default config" option.
 */
const char *vmcg_config_default_text(void);

/*
 * Durations: a decimal number and a unit, "100ms", "1s", "2m", "1.5s".
 *
 *   duration = "0" | digits [ "." digits ] unit
 *   unit     = "us" | "ms" | "s" | "m" | "h"
 *
 * The unit is required (is "5" seconds or milliseconds?) except for 0.
 * Lower case only, no whitespace, no sign, one number and one unit ("1m30s"
 * is "90s"). Fractions are truncated to whole microseconds.
 */

/** vmcg_duration_parse() - 0, -EINVAL (syntax), -ERANGE (over UINT64_MAX usec). */
int vmcg_duration_parse(const char *s, uint64_t *ret_usec);

/* A buffer of this size holds any vmcg_duration_format() output. */
#define VMCG_DURATION_STRLEN 24

/**
 * vmcg_duration_format() - exact form in the largest unit that divides
 * @usec: "100ms", "1s", "90s", "2m", "1500us", "0".
 * Returns 0 or -ENOSPC.
 */
int vmcg_duration_format(uint64_t usec, char *buf, size_t size);

#endif
