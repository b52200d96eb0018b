// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fuzz target: vmcg_config_load_data() on arbitrary bytes.
 *
 * Beyond "no crash, no leak, no UB" it checks:
 * - an error is in VMCG_CONFIG_ERROR, names the origin and is valid UTF-8,
 *   whatever the input was;
 * - the line scanner and GKeyFile agree on every file the scanner accepts
 *   (config-cross-check.h: the second opinion lives here and in the unit
 *   test, not in the daemon);
 * - a loaded config is within every documented range, and written back
 *   out as text (sizes and durations by their exact formatters) it loads
 *   to an equal config.
 * GLib warnings and criticals abort.
 *
 * libFuzzer build (clang), e.g. from the source root:
 *   python3 daemon/embed.py config/vmcgd.conf /tmp/gen/vmcgd-conf.h
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -DVMCG_LIBFUZZER -D_GNU_SOURCE \
 *     -Iinclude -Idaemon -I/tmp/gen lib/[a-z]*.c daemon/config.c daemon/settings.c tests/fuzz/fuzz-config.c \
 *     $(pkg-config --cflags --libs glib-2.0) -lpthread -o fuzz-config
 *   mkdir -p /tmp/corpus && ./fuzz-config /tmp/corpus tests/fuzz/corpus/config
 * (new inputs go to the first directory; copy reproducers into the corpus).
 * Without VMCG_LIBFUZZER, main() below replays files or directories of
 * inputs, which is how `meson test --suite fuzz` runs the corpus.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gio/gio.h>

#include "config-apply.h"
#include "config-cross-check.h"
#include "config-merge.h"
#include "config.h"
#include "json-util.h"
#include "vmcg/oom.h"
#include "vmcg/stock.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void append_size(GString *out, const char *key, uint64_t bytes)
{
	char buf[VMCG_SIZE_STRLEN];

	if (vmcg_size_format(bytes, buf, sizeof(buf)) < 0)
		abort();
	g_string_append_printf(out, "%s = %s\n", key, buf);
}

static void append_duration(GString *out, const char *key, uint64_t usec)
{
	char buf[VMCG_DURATION_STRLEN];

	if (vmcg_duration_format(usec, buf, sizeof(buf)) < 0)
		abort();
	g_string_append_printf(out, "%s = %s\n", key, buf);
}

static const char *bool_str(bool b)
{
	return b ? "true" : "false";
}

/* @c as a config file, with every daemon key and every set group knob. */
static char *to_text(const VmcgConfig *c)
{
	GString *out = g_string_new("[daemon]\n");

	g_string_append_printf(out, "socket = %s\n", c->socket_path);
	g_string_append_printf(out, "state = %s\n", c->state_path);
	append_duration(out, "interval", c->interval_usec);
	g_string_append_printf(out, "write-group = %s\n", c->write_group);
	g_string_append_printf(out, "recursive-protection = %s\n",
			       bool_str(c->recursive_protection));
	g_string_append_printf(out, "stock-batch = %u\n", c->stock_batch);
	g_string_append_printf(out, "backstop = %s\n", bool_str(c->backstop));
	append_size(out, "backstop-overhead", c->backstop_overhead_bytes);
	append_size(out, "reclaim-step", c->reclaim_step_bytes);
	append_size(out, "hysteresis", c->hysteresis_bytes);
	append_duration(out, "stats-interval", c->stats_interval_usec);
	append_duration(out, "stats-max-age", c->stats_max_age_usec);
	append_duration(out, "vmpressure-hold", c->vmpressure_hold_usec);
	append_duration(out, "unknown-charge-grace", c->unknown_charge_grace_usec);
	append_duration(out, "channel-report-interval", c->channel_report_interval_usec);
	g_string_append_printf(out, "guest-stall = %d\n", c->guest_stall_pct);
	g_string_append_printf(out, "hooks-socket = %s\n", c->hooks_socket_path);
	g_string_append_printf(out, "[libvirt]\nuri = %s\ndefault-group = %s\n", c->libvirt_uri,
			       c->libvirt_default_group);
	g_string_append_printf(out, "[cluster]\netcd = %s\nnode = %s\n", c->cluster_etcd,
			       c->cluster_node);
	g_string_append_printf(out, "ca-file = %s\ncert-file = %s\nkey-file = %s\n",
			       c->cluster_ca_file, c->cluster_cert_file, c->cluster_key_file);
	append_duration(out, "lease-ttl", c->cluster_lease_ttl_usec);
	append_size(out, "hysteresis", c->cluster_hysteresis_bytes);
	append_size(out, "min-grant", c->cluster_min_grant_bytes);
	append_duration(out, "shrink-wait", c->cluster_shrink_wait_usec);

	for (size_t i = 0; i < c->n_groups; i++) {
		const VmcgConfigGroup *g = &c->groups[i];

		g_string_append_printf(out, "[group %s]\n", g->path);
		if (g->set & VMCG_CONFIG_KNOB_MIN)
			append_size(out, "memory.min", g->min_bytes);
		if (g->set & VMCG_CONFIG_KNOB_LOW)
			append_size(out, "memory.low", g->low_bytes);
		if (g->set & VMCG_CONFIG_KNOB_HIGH)
			append_size(out, "memory.high", g->high_bytes);
		if (g->set & VMCG_CONFIG_KNOB_MAX)
			append_size(out, "memory.max", g->max_bytes);
		if (g->set & VMCG_CONFIG_KNOB_OOM_GROUP)
			g_string_append_printf(out, "memory.oom.group = %s\n",
					       bool_str(g->oom_group));
		if (g->set & VMCG_CONFIG_KNOB_OOM_ACTION)
			g_string_append_printf(out, "oom-action = %s\n",
					       vmcg_oom_action_to_string(g->oom_action));
		if (g->set & VMCG_CONFIG_KNOB_OVERHEAD_IN_MAX)
			g_string_append_printf(out, "overhead-in-max = %s\n",
					       bool_str(g->overhead_in_max));
		if (g->set & VMCG_CONFIG_KNOB_CLUSTER_MAX)
			append_size(out, "cluster.memory.max", g->cluster_max_bytes);
	}
	for (size_t i = 0; i < c->n_vms; i++) {
		const VmcgConfigVm *vm = &c->vms[i];

		g_string_append_printf(out, "[vm %s]\nbackend = %s\nqmp = %s\ngroup = %s\n",
				       vm->name, vm->backend, vm->address, vm->group_path);
		append_size(out, "floor", vm->floor_bytes);
		g_string_append_printf(out, "oom-priority = %d\n", vm->oom_priority);
	}
	return g_string_free(out, FALSE);
}

static bool size_ok(uint64_t bytes)
{
	return bytes <= VMCG_SIZE_LIMIT || bytes == VMCG_SIZE_MAX;
}

static void check_ranges(const VmcgConfig *c)
{
	bool ok = c->socket_path[0] == '/' && strlen(c->socket_path) <= 107 &&
		  c->state_path[0] == '/' && c->interval_usec >= 100000 &&
		  c->interval_usec <= 60000000 && c->stock_batch >= 1 &&
		  c->stock_batch <= VMCG_STOCK_BATCH_MAX &&
		  c->backstop_overhead_bytes <= VMCG_SIZE_LIMIT && c->reclaim_step_bytes >= 4096 &&
		  size_ok(c->reclaim_step_bytes) && c->hysteresis_bytes <= VMCG_SIZE_LIMIT &&
		  c->stats_interval_usec % 1000000 == 0 && c->stats_interval_usec <= 3600000000u &&
		  c->stats_max_age_usec >= 1000000 && c->stats_max_age_usec <= 3600000000u &&
		  c->stats_max_age_usec >= c->stats_interval_usec &&
		  c->vmpressure_hold_usec <= 3600000000u;

	for (size_t i = 0; ok && i < c->n_groups; i++) {
		const VmcgConfigGroup *g = &c->groups[i];

		ok = vmcg_path_validate(g->path) == 0 && strcmp(g->path, "/") != 0 &&
		     size_ok(g->min_bytes) && size_ok(g->low_bytes) && size_ok(g->high_bytes) &&
		     size_ok(g->max_bytes) && (unsigned)g->oom_action < _VMCG_OOM_ACTION_COUNT;
	}
	for (size_t i = 0; ok && i < c->n_vms; i++) {
		const VmcgConfigVm *vm = &c->vms[i];

		ok = vmcg_vm_name_validate(vm->name) == 0 && strcmp(vm->backend, "qmp") == 0 &&
		     vm->address[0] == '/' && strlen(vm->address) <= 107 &&
		     vmcg_path_validate(vm->group_path) == 0 && size_ok(vm->floor_bytes) &&
		     vm->oom_priority >= VMCG_OOM_PRIORITY_MIN &&
		     vm->oom_priority <= VMCG_OOM_PRIORITY_MAX;
	}
	if (!ok) {
		g_autofree char *text = to_text(c);

		fprintf(stderr, "config out of range:\n%s", text);
		abort();
	}
}

/*
 * The config record (config-apply.h) is untrusted input too: the same
 * bytes as a record are refused with INVALID_DATA or read, and what is
 * read writes back to the same list.
 */
static void fuzz_seen_record(const uint8_t *data, size_t size)
{
	g_autoptr(GPtrArray) l = NULL, back = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(json_object) j = NULL;
	const char *text;

	if (!vmcg_config_seen_parse((const char *)data, size, &l, &error)) {
		if (l || !g_error_matches(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA)) {
			fprintf(stderr, "record: bad error: %s\n",
				error ? error->message : "(none)");
			abort();
		}
		return;
	}
	j = vmcg_config_seen_to_json(l);
	text = json_object_to_json_string(j);
	if (!vmcg_config_seen_parse(text, strlen(text), &back, &error) || back->len != l->len) {
		fprintf(stderr, "record: written back, it reads differently: %s\n", text);
		abort();
	}
}

/*
 * The merge on a config the loader accepts: against itself it does and
 * says nothing; on an empty tree it only creates, each object once.
 */
static void check_merge(const VmcgConfig *c)
{
	g_autoptr(GPtrArray) l = vmcg_merge_from_config(c);
	g_autoptr(GPtrArray) empty = vmcg_merge_list_new();
	g_auto(VmcgMergeResult) same = { 0 };
	g_auto(VmcgMergeResult) fresh = { 0 };

	vmcg_merge(l, l, l, &same);
	if (same.actions->len || same.notes->len) {
		fprintf(stderr, "merge: a config against itself is not a no-op\n");
		abort();
	}
	vmcg_merge(l, NULL, empty, &fresh);
	if (fresh.actions->len != l->len || fresh.notes->len) {
		fprintf(stderr, "merge: on an empty tree, not one create per object\n");
		abort();
	}
	for (guint i = 0; i < fresh.actions->len; i++)
		if (g_array_index(fresh.actions, VmcgMergeAction, i).op != VMCG_MERGE_CREATE)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autoptr(VmcgConfig) c = NULL;
	g_autoptr(VmcgConfig) again = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *text = NULL;

	g_log_set_always_fatal(G_LOG_LEVEL_WARNING | G_LOG_LEVEL_CRITICAL);
	fuzz_seen_record(data, size);

	if (!vmcg_config_load_data((const char *)data, size, "fuzz", &c, &error)) {
		if (c || !error || error->domain != VMCG_CONFIG_ERROR ||
		    error->code == VMCG_CONFIG_ERROR_INTERNAL ||
		    !g_str_has_prefix(error->message, "fuzz:") ||
		    !g_utf8_validate(error->message, -1, NULL)) {
			fprintf(stderr, "bad error: %s\n", error ? error->message : "(none)");
			abort();
		}
		return 0;
	}
	check_ranges(c);
	check_merge(c);
	{
		g_autofree char *diff = config_cross_check((const char *)data, size);

		if (diff) {
			fprintf(stderr, "GKeyFile disagrees: %s\n", diff);
			abort();
		}
	}

	text = to_text(c);
	if (!vmcg_config_load_data(text, (gsize)-1, "again", &again, &error)) {
		fprintf(stderr, "written back, it does not load: %s\n%s", error->message, text);
		abort();
	}
	if (!vmcg_config_equal(c, again)) {
		fprintf(stderr, "written back, it loads differently:\n%s", text);
		abort();
	}
	return 0;
}
