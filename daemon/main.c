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
#include <sys/resource.h>

#include "api.h"
#include "config-apply.h"
#include "cluster.h"
#include "config.h"
#include "etcd.h"
#include "daemon-private.h"
#include "settings.h"
#include "state.h"
#include "vmcg/size.h"

static char *opt_config;
static char *opt_socket;
static char *opt_state;
static char *opt_hooks_socket;
static char *opt_interval;
static char *opt_libvirt;
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
	{ "libvirt", 0, 0, G_OPTION_ARG_STRING, &opt_libvirt,
	  "libvirt connection URI whose running domains vmcgd adopts (default: the config's, "
	  "qemu:///system; empty: none)",
	  "URI" },
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
	p->channel_report_interval_usec = c->channel_report_interval_usec;
	p->guest_stall_pct = (uint32_t)c->guest_stall_pct;
	p->unknown_charge_grace_usec = c->unknown_charge_grace_usec;
}

/* The config as -c, or the default path, says: at start and on every SIGHUP. */
static gboolean load_config(const char *default_path, VmcgConfig **ret, const char **ret_origin,
			    GError **error)
{
	if (opt_config) {
		*ret_origin = opt_config;
		return vmcg_config_load_file(opt_config, ret, error);
	}
	return vmcg_config_load_default(default_path, ret, ret_origin, error);
}

/* What a SIGHUP needs; filled in as main() sets the daemon up. */
typedef struct Reload {
	VmcgDaemon *d;	    /* NULL until the daemon runs */
	VmcgConfig *config; /* the running config */
	GPtrArray *seen;    /* the record of the config last applied (config-apply.h) */
	char *seen_path;    /* NULL: --no-state, the record is in memory only */
	const char *default_path;
} Reload;

static void reload_clear(Reload *r)
{
	r->d = NULL;
	g_clear_pointer(&r->config, vmcg_config_free);
	g_clear_pointer(&r->seen, g_ptr_array_unref);
	g_clear_pointer(&r->seen_path, g_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Reload, reload_clear)

static void emit_reload(VmcgDaemon *d, const char *origin, const GError *error,
			const GPtrArray *restart, guint conflicts)
{
	g_autoptr(json_object) data = json_object_new_object();

	json_object_object_add(data, "ok", json_object_new_boolean(!error));
	if (origin)
		json_object_object_add(data, "origin", json_object_new_string(origin));
	if (error)
		json_object_object_add(data, "error", json_object_new_string(error->message));
	if (restart) {
		json_object *a = json_object_new_array();

		for (guint i = 0; i < restart->len; i++)
			json_object_array_add(a, json_object_new_string(restart->pdata[i]));
		json_object_object_add(data, "restart_needed", a);
		json_object_object_add(data, "conflicts", json_object_new_uint64(conflicts));
	}
	vmcg_daemon_emit(d, VMCG_EV_CONFIG_RELOAD, data);
}

/*
 * SIGHUP: read and check the whole file first; a file with any error
 * changes nothing (the running config stays, and the log says why, with
 * the file and the line). A good one is applied as at start
 * (config-apply.h), and settings that need a restart are named.
 */
static gboolean on_sighup(gpointer userdata)
{
	Reload *r = userdata;
	g_autoptr(VmcgConfig) next = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) restart = g_ptr_array_new_with_free_func(g_free);
	const char *origin = NULL;
	VmcgPolicy policy;
	guint conflicts = 0;

	if (!r->d)
		return G_SOURCE_CONTINUE; /* not serving yet: the config just read is current */
	g_message("vmcgd: SIGHUP: reloading the config");
	if (!load_config(r->default_path, &next, &origin, &error)) {
		g_warning("vmcgd: config reload failed, keeping the running config: %s",
			  error->message);
		emit_reload(r->d, origin, error, NULL, 0);
		return G_SOURCE_CONTINUE;
	}
	if (opt_interval)
		next->interval_usec = r->config->interval_usec; /* the command line's stays */
	vmcg_config_reload_daemon(r->config, next, restart);
	for (guint i = 0; i < restart->len; i++)
		g_warning("vmcgd: config reload: %s changed in %s: it takes effect at the next "
			  "restart",
			  (const char *)restart->pdata[i], origin);

	policy = *vmcg_daemon_policy(r->d);
	policy_from_config(next, &policy);
	vmcg_daemon_set_policy(r->d, &policy);
	if (next->interval_usec != r->config->interval_usec)
		vmcg_daemon_start(r->d, next->interval_usec);
	vmcg_config_apply(r->d, next, &r->seen, r->seen_path, &conflicts);

	vmcg_config_free(r->config);
	r->config = g_steal_pointer(&next);
	g_message("vmcgd: config reloaded from %s: %zu groups, %zu VMs in the file; %u "
		  "disagreement%s with the API",
		  origin, r->config->n_groups, r->config->n_vms, conflicts,
		  conflicts == 1 ? "" : "s");
	emit_reload(r->d, origin, NULL, restart, conflicts);
	return G_SOURCE_CONTINUE;
}

/*
 * Raise the soft limit on open files to the hard one: every VM holds a
 * QMP socket, a hooks connection with its memfd and an eventfd per vCPU,
 * and every API client a socket; the usual soft limit of 1024 (systemd's
 * default, for select()'s sake, which vmcgd never uses) would cap a fleet
 * at a few hundred VMs. The hard limit is what the administrator allows.
 */
static void raise_nofile_limit(void)
{
	struct rlimit rl;
	rlim_t soft;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		g_warning("getrlimit(RLIMIT_NOFILE): %s", g_strerror(errno));
		return;
	}
	soft = rl.rlim_cur;
	if (soft < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			g_warning("cannot raise the open files limit from %" G_GUINT64_FORMAT
				  " to %" G_GUINT64_FORMAT ": %s",
				  (guint64)soft, (guint64)rl.rlim_max, g_strerror(errno));
			return;
		}
	}
	g_info("open files limit %" G_GUINT64_FORMAT " (was %" G_GUINT64_FORMAT
	       ", hard limit %" G_GUINT64_FORMAT ")",
	       (guint64)rl.rlim_cur, (guint64)soft, (guint64)rl.rlim_max);
}

int main(int argc, char **argv)
{
	g_autoptr(GOptionContext) ctx = NULL;
	g_autoptr(GError) error = NULL;
	VmcgConfig *config = NULL; /* the running config: reload.config owns it */
	g_autoptr(VmcgDaemon) d = NULL;
	g_autoptr(VmcgApi) api = NULL;
	g_autoptr(GMainLoop) loop = NULL;
	VmcgApiOptions api_opts = { 0 };
	VmcgPolicy policy;
	g_auto(Reload) reload = { 0 };
	const char *state_path;
	gboolean had_state;
	const char *origin = NULL;
	/* Tests point this elsewhere; production reads VMCG_CONFIG_DEFAULT_PATH. */
	const char *default_path = g_getenv("VMCG_CONFIG_DEFAULT_PATH") ?: VMCG_CONFIG_DEFAULT_PATH;

	setlocale(LC_ALL, "");
	/* Before any thread: it sets the environment (etcd.h). */
	vmcg_etcd_process_init();
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

	if (!load_config(default_path, &config, &origin, &error)) {
		fprintf(stderr, "vmcgd: %s\n", error->message);
		return 1;
	}
	reload.config = config;
	reload.default_path = default_path;
	if (opt_check) {
		printf("%s: OK (%zu groups, %zu VMs)\n", origin, config->n_groups, config->n_vms);
		return 0;
	}
	/*
	 * Signals that would end vmcgd by default, and mean nothing to it:
	 * ignored, so that a stray kill -USR1 or a closed peer (SIGPIPE) never
	 * loses a change acknowledged just before (vmcgd(8), SIGNALS). SIGHUP
	 * reloads the config: its source is added before anything else, so
	 * that one that comes during start-up waits for the loop instead of
	 * ending vmcgd.
	 */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
	signal(SIGUSR2, SIG_IGN);
	signal(SIGALRM, SIG_IGN);
	g_unix_signal_add(SIGHUP, on_sighup, &reload);
	g_message("vmcgd: config: %s", origin);
	raise_nofile_limit();
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

	if (opt_libvirt) {
		g_auto(VmcgSettingValue) v = { 0 };

		if (!vmcg_setting_parse_text(vmcg_setting(VMCG_SETTING_LIBVIRT_URI), opt_libvirt,
					     &v, &error)) {
			fprintf(stderr, "vmcgd: --libvirt: %s\n", error->message);
			return 2;
		}
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
	/*
	 * The saved state first (the tree as it was), then the config on top
	 * by the rule of config-merge.h: what the file changed since it was
	 * last applied wins; what the API changed since stays.
	 */
	had_state = state_path && g_file_test(state_path, G_FILE_TEST_EXISTS);
	if (state_path && !vmcg_state_load(d, state_path, &error)) {
		fprintf(stderr,
			"vmcgd: %s\nvmcgd: refusing to start rather than lose that state; "
			"move the file away to start from the config alone\n",
			error->message);
		return 1;
	}
	if (state_path) {
		reload.seen_path = vmcg_config_seen_path(state_path);
		if (!vmcg_config_seen_load(reload.seen_path, &reload.seen, &error)) {
			fprintf(stderr,
				"vmcgd: %s\nvmcgd: refusing to start rather than guess which of "
				"the "
				"config and the state is newer; move the file away to start "
				"without "
				"it (then the state's values stay where the two disagree, with a "
				"warning each)\n",
				error->message);
			return 1;
		}
		if (!reload.seen && had_state)
			g_message("vmcgd: config: no record of the config last applied (%s): "
				  "where the config and the state disagree, the state's value "
				  "stays",
				  reload.seen_path);
	}
	/* Saves the state once: it now has the config's tree too, and proves it is writable. */
	vmcg_config_apply(d, config, &reload.seen, reload.seen_path, NULL);

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

	vmcg_daemon_enable_libvirt(d, opt_libvirt ? opt_libvirt : config->libvirt_uri,
				   config->libvirt_default_group);

	{
		VmcgClusterConfig cc = {
			.etcd = config->cluster_etcd,
			.node = config->cluster_node,
			.ca_file = config->cluster_ca_file,
			.cert_file = config->cluster_cert_file,
			.key_file = config->cluster_key_file,
			.lease_ttl_usec = config->cluster_lease_ttl_usec,
			.hysteresis_bytes = config->cluster_hysteresis_bytes,
			.min_grant_bytes = config->cluster_min_grant_bytes,
			.shrink_wait_usec = config->cluster_shrink_wait_usec,
		};

		if (!vmcg_cluster_connect(vmcg_daemon_cluster(d), &cc, &error)) {
			fprintf(stderr, "vmcgd: %s\n", error->message);
			return 1;
		}
	}

	loop = g_main_loop_new(NULL, FALSE);
	g_unix_signal_add(SIGTERM, on_signal, loop);
	g_unix_signal_add(SIGINT, on_signal, loop);
	vmcg_daemon_start(d, config->interval_usec);
	reload.d = d;
	g_message("vmcgd: serving %s, %zu groups, %zu VMs, interval %" G_GUINT64_FORMAT " ms%s%s",
		  api_opts.socket_path, vmcg_tree_nr_groups(vmcg_daemon_tree(d)) - 1,
		  vmcg_tree_nr_vms(vmcg_daemon_tree(d)), config->interval_usec / 1000,
		  state_path ? ", state " : "", state_path ? state_path : "");
	g_main_loop_run(loop);
	g_message("vmcgd: exiting");
	return 0;
}
