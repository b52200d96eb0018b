// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * What the API shows of a group: the vmpressure level is held for the
 * daemon's vmpressure-hold, read live from its policy, and a hold of 0
 * holds nothing (it once became 10 s on its way to the API).
 *
 *   /g   a reclaim pass that made no progress: critical, now
 *        hold 10 s: still critical 2 ms later; hold 0: none 2 ms later
 */
#include <gio/gio.h>
#include <glib/gstdio.h>

#include "api-private.h"
#include "daemon-private.h"

static void test_vmpressure_hold(void)
{
	g_autofree char *dir = g_dir_make_tmp("vmcg-api-render-XXXXXX", NULL);
	g_autofree char *sock = g_build_filename(dir, "api.sock", NULL);
	g_autoptr(GError) error = NULL;
	VmcgDaemon *d = vmcg_daemon_new(NULL, NULL);
	VmcgApiOptions o = { .socket_path = sock, .write_gid = -1 };
	VmcgPolicy p = *vmcg_daemon_policy(d);
	VmcgGroup *g;
	VmcgApi *api;

	g_assert_nonnull(dir);
	g_assert_true(vmcg_daemon_group_put(d, "/g", &(VmcgGroupSettings){ 0 }, NULL, &error));
	g_assert_no_error(error);
	api = vmcg_api_new(d, &o, &error);
	g_assert_no_error(error);
	g_assert_cmpint(vmcg_group_lookup(vmcg_daemon_tree(d), "/g", &g), ==, 0);
	g_assert_cmpint(vmcg_api_group_vmpressure(api, g), ==, VMCG_VMPRESSURE_NONE);

	g_assert_cmpint(vmcg_vmpressure_prio(vmcg_group_vmpressure(g), vmcg_daemon_now_usec(d), 0),
			==, VMCG_VMPRESSURE_CRITICAL);
	g_usleep(2000);
	p.vmpressure_hold_usec = 10 * G_USEC_PER_SEC;
	vmcg_daemon_set_policy(d, &p);
	g_assert_cmpint(vmcg_api_group_vmpressure(api, g), ==, VMCG_VMPRESSURE_CRITICAL);
	p.vmpressure_hold_usec = 0;
	vmcg_daemon_set_policy(d, &p);
	g_assert_cmpint(vmcg_api_group_vmpressure(api, g), ==, VMCG_VMPRESSURE_NONE);

	vmcg_api_free(api);
	vmcg_daemon_free(d);
	g_assert_cmpint(g_rmdir(dir), ==, 0);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/api-render/vmpressure-hold", test_vmpressure_hold);
	return g_test_run();
}
