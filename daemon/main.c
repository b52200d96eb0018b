// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmcgd: parse arguments and the config, apply the config and the saved
 * state, serve the API and run the control loop until SIGTERM or SIGINT.
 */
#include <errno.h>
#include <gio/gio.h>
#include <glib-unix.h>
#include <grp.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>

#include "api.h"
#include "config.h"
#include "daemon-private.h"
#include "state.h"
#include "vmcg/size.h"

static char *opt_config;
static char *opt_socket;
static char *opt_state;
static char *opt_hooks_socket;
static char *opt_interval;
static gboolean opt_check;
static gboolean opt_print_default;
static gboolean opt_verbose;
static gboolean opt_no_state;

static const GOptionEntry entries[] = {
	{ "config", 'c', 0, G_OPTION_ARG_FILENAME, &opt_config,
	  "Config file (default: " VMCG_CONFIG_DEFAULT_PATH
	  " if it exists, else the embedded default config)",
	  "FILE" },
	{ "socket", 's', 0, G_OPTION_ARG_FILENAME, &opt_socket,
	  "API socket (default: the config's, /run/vmcg/vmcgd.sock)", "PATH" },
	{ "state", 0, 0, G_OPTION_ARG_FILENAME, &opt_state,
	  "State file (default: the config's, /var/lib/vmcg/state.json)", "FILE" },
	{ "hooks-socket", 0, 0, G_OPTION_ARG_FILENAME, &opt_hooks_socket,
	  "Hooks socket for hook-mode QEMUs (default: the config's, /run/vmcg/hooks.sock; "
	  "empty: none)",
	  "PATH" },
	{ "no-state", 0, 0, G_OPTION_ARG_NONE, &opt_no_state,
	  "Neither load nor save state (changes through the API do not survive a restart)", NULL },
	{ "interval", 'i', 0, G_OPTION_ARG_STRING, &opt_interval,
	  "Control interval, 100ms to 60s (default: the config's, 1s)", "DURATION" },
	{ "check-config", 0, 0, G_OPTION_ARG_NONE, &opt_check,
	  "Parse the config, print what is wrong, and exit", NULL },
	{ "print-default-config", 0, 0, G_OPTION_ARG_NONE, &opt_print_default,
	  "Print the embedded default config and exit", NULL },
	{ "verbose", 'v', 0, G_OPTION_ARG_NONE, &opt_verbose, "Log debug messages", NULL },
	{ NULL },
};

static gboolean on_signal(gpointer userdata)
{
	g_main_loop_quit(userdata);
	return G_SOURCE_CONTINUE;
}

/* Every policy member that is a setting, as the config has it: 0 included (stats-interval 0: do not poll). */
static void policy_from_config(const VmcgConfig *c, VmcgPolicy *p)
{
	p->reclaim_step = c->reclaim_step_bytes;
	p->hysteresis = c->hysteresis_bytes;
	p->stats_interval_usec = c->stats_interval_usec;
	p->stats_max_age_usec = c->stats_max_age_usec;
	p->vmpressure_hold_usec = c->vmpressure_hold_usec;
}

static gboolean apply_config(VmcgDaemon *d, const VmcgConfig *c, GError **error)
{
	gboolean ok = TRUE;

	d->loading = TRUE;
	for (size_t i = 0; ok && i < c->n_groups; i++) {
		const VmcgConfigGroup *cg = &c->groups[i];
		VmcgGroupSettings s = {
			.has_min = true,
			.min = cg->min_bytes,
			.has_low = true,
			.low = cg->low_bytes,
			.has_high = true,
			.high = cg->high_bytes,
			.has_max = true,
			.max = cg->max_bytes,
			.has_oom_group = true,
			.oom_group = cg->oom_group,
			.has_oom_action = true,
			.oom_action = cg->oom_action,
			.has_overhead_in_max = true,
			.overhead_in_max = cg->overhead_in_max,
		};
		g_auto(GStrv) parts = g_strsplit(cg->path + 1, "/", -1);
		g_autoptr(GString) prefix = g_string_new("");

		/*
		 * mkdir -p: undeclared ancestors get the defaults, and a child
		 * may come before its parent in the file.
		 */
		for (guint k = 0; ok && parts[k + 1]; k++) {
			VmcgGroup *g;

			g_string_append_printf(prefix, "/%s", parts[k]);
			if (vmcg_group_lookup(d->tree, prefix->str, &g) < 0)
				ok = vmcg_daemon_group_put(d, prefix->str,
							   &(VmcgGroupSettings){ 0 }, NULL, error);
		}
		if (ok)
			ok = vmcg_daemon_group_put(d, cg->path, &s, NULL, error);
	}
	for (size_t i = 0; ok && i < c->n_vms; i++) {
		const VmcgConfigVm *cv = &c->vms[i];
		VmcgVmSettings s = {
			.has_floor = true,
			.floor = cv->floor_bytes,
			.has_oom_priority = true,
			.oom_priority = cv->oom_priority,
		};

		ok = vmcg_daemon_vm_add(d, cv->name, cv->backend, cv->address, cv->group_path, &s,
					error);
	}
	d->loading = FALSE;
	return ok;
}

int main(int argc, char **argv)
{
	g_autoptr(GOptionContext) ctx = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(VmcgConfig) config = NULL;
	g_autoptr(VmcgDaemon) d = NULL;
	g_autoptr(VmcgApi) api = NULL;
	g_autoptr(GMainLoop) loop = NULL;
	VmcgApiOptions api_opts = { 0 };
	VmcgPolicy policy;
	const char *state_path;
	const char *origin = NULL;
	/* Tests point this elsewhere; production reads VMCG_CONFIG_DEFAULT_PATH. */
	const char *default_path = g_getenv("VMCG_CONFIG_DEFAULT_PATH") ?: VMCG_CONFIG_DEFAULT_PATH;

	setlocale(LC_ALL, "");
	ctx = g_option_context_new("- memory cgroups for virtual machines");
	g_option_context_set_summary(ctx, "Groups VMs into a hierarchy with cgroup-v2 memory "
					  "semantics, charged by resident guest RAM and\n"
					  "enforced through the virtio balloon. See vmcgd(8) "
					  "(docs/vmcgd.8.md) and docs/config.md.");
	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
		fprintf(stderr, "vmcgd: %s (try --help)\n", error->message);
		return 2;
	}
	if (opt_print_default) {
		fputs(vmcg_config_default_text(), stdout);
		return 0;
	}
	if (opt_verbose)
		g_setenv("G_MESSAGES_DEBUG", "all", TRUE);

	if (opt_config) {
		origin = opt_config;
		if (!vmcg_config_load_file(opt_config, &config, &error)) {
			fprintf(stderr, "vmcgd: %s\n", error->message);
			return 1;
		}
	} else if (!vmcg_config_load_default(default_path, &config, &origin, &error)) {
		fprintf(stderr, "vmcgd: %s\n", error->message);
		return 1;
	}
	if (opt_check) {
		printf("%s: OK (%zu groups, %zu VMs)\n", origin, config->n_groups, config->n_vms);
		return 0;
	}
	g_message("vmcgd: config: %s", origin);
	if (opt_interval) {
		uint64_t usec;

		if (vmcg_duration_parse(opt_interval, &usec) < 0 || usec < 100000 ||
		    usec > 60 * G_USEC_PER_SEC) {
			fprintf(stderr, "vmcgd: --interval %s: want a duration from 100ms to 60s\n",
				opt_interval);
			return 2;
		}
		config->interval_usec = usec;
	}

	state_path = opt_no_state ? NULL : opt_state ? opt_state : config->state_path;
	d = vmcg_daemon_new(
		&(VmcgTreeOptions){ .recursive_protection = config->recursive_protection,
				    .stock_batch = config->stock_batch },
		state_path);
	policy = *vmcg_daemon_policy(d);
	policy_from_config(config, &policy);
	vmcg_daemon_set_policy(d, &policy);

	if (config->backstop &&
	    !vmcg_daemon_enable_backstop(d, "/sys/fs/cgroup", config->backstop_overhead_bytes,
					 &error)) {
		fprintf(stderr, "vmcgd: backstop = true, but: %s\n", error->message);
		return 1;
	}
	if (!apply_config(d, config, &error)) {
		fprintf(stderr, "vmcgd: config: %s\n", error->message);
		return 1;
	}
	if (state_path && !vmcg_state_load(d, state_path, &error)) {
		fprintf(stderr,
			"vmcgd: %s\nvmcgd: refusing to start rather than lose that state; "
			"move the file away to start from the config alone\n",
			error->message);
		return 1;
	}
	/* Save once: the state now has the config's tree too, and proves it is writable. */
	vmcg_daemon_save(d);

	api_opts.socket_path = opt_socket ? opt_socket : config->socket_path;
	api_opts.write_gid = -1;
	if (config->write_group && *config->write_group) {
		struct group *gr = getgrnam(config->write_group);

		/*
		 * The shipped default names a "vmcg" group that a host may not
		 * have: then only root writes, which is the safe reading.
		 */
		if (!gr)
			g_warning("write-group %s does not exist: only root may change settings",
				  config->write_group);
		else
			api_opts.write_gid = gr->gr_gid;
	}
	api = vmcg_api_new(d, &api_opts, &error);
	if (!api) {
		fprintf(stderr, "vmcgd: API socket %s: %s\n", api_opts.socket_path, error->message);
		return 1;
	}

	{
		const char *hp = opt_hooks_socket ? opt_hooks_socket : config->hooks_socket_path;

		if (hp && *hp && !vmcg_daemon_enable_hooks(d, hp, &error)) {
			fprintf(stderr, "vmcgd: %s\n", error->message);
			return 1;
		}
	}

	loop = g_main_loop_new(NULL, FALSE);
	g_unix_signal_add(SIGTERM, on_signal, loop);
	g_unix_signal_add(SIGINT, on_signal, loop);
	vmcg_daemon_start(d, config->interval_usec);
	g_message("vmcgd: serving %s, %zu groups, %zu VMs, interval %" G_GUINT64_FORMAT " ms%s%s",
		  api_opts.socket_path, vmcg_tree_nr_groups(vmcg_daemon_tree(d)) - 1,
		  vmcg_tree_nr_vms(vmcg_daemon_tree(d)), config->interval_usec / 1000,
		  state_path ? ", state " : "", state_path ? state_path : "");
	g_main_loop_run(loop);
	g_message("vmcgd: exiting");
	return 0;
}
