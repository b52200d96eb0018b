// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The settings table (daemon/settings.c): every entry has a valid default,
 * and every setting is accepted or refused alike, with the same message,
 * by each surface that takes it: the config file, the API's request bodies
 * and the state file. For each setting the cases are its default, its
 * least and greatest values, the values just outside its range, a value of
 * the wrong syntax and (in JSON) a member of the wrong type.
 */
#include <glib.h>
#include <inttypes.h>
#include <string.h>

#include "api.h"
#include "config.h"
#include "daemon-private.h"
#include "settings.h"
#include "state.h"
#include "vmcg/size.h"

/* What one surface said about one value: accepted, or refused with this message. */
typedef struct Verdict {
	bool ok;
	char *message;
} Verdict;

static void verdict_clear(Verdict *v)
{
	g_clear_pointer(&v->message, g_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Verdict, verdict_clear)

static Verdict verdict(gboolean ok, GError *error)
{
	return (Verdict){ .ok = ok, .message = ok ? NULL : g_strdup(error->message) };
}

/* A JSON string literal of @text. */
static char *json_string(const char *text)
{
	g_autoptr(json_object) o = json_object_new_string(text);

	return g_strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* ---- the surfaces ---- */

static Verdict by_config(const VmcgSetting *s, const char *text)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(VmcgConfig) c = NULL;
	g_autofree char *doc = NULL;
	gboolean ok;

	switch (s->scope) {
	case VMCG_SETTING_DAEMON:
		/* stats-max-age must be at least stats-interval: keep that out of the way. */
		doc = g_strdup_printf("[daemon]\n%s%s = %s\n",
				      s->id == VMCG_SETTING_STATS_INTERVAL  ? "stats-max-age = 1h\n"
				      : s->id == VMCG_SETTING_STATS_MAX_AGE ? "stats-interval = 0\n"
									    : "",
				      s->name, text);
		break;
	case VMCG_SETTING_GROUP:
		doc = g_strdup_printf("[group /a]\n%s = %s\n", s->name, text);
		break;
	case VMCG_SETTING_VM:
		if (s->id == VMCG_SETTING_VM_NAME_ID)
			doc = g_strdup_printf("[vm %s]\nqmp = /q\n", text);
		else if (s->id == VMCG_SETTING_VM_QMP || s->id == VMCG_SETTING_VM_ADDRESS)
			doc = g_strdup_printf("[vm v]\n%s = %s\n", s->name, text);
		else
			doc = g_strdup_printf("[group /a]\n[vm v]\nqmp = /q\n%s = %s\n", s->name,
					      text);
		break;
	case VMCG_SETTING_LIBVIRT:
		doc = g_strdup_printf("[libvirt]\n%s = %s\n", s->name, text);
		break;
	case VMCG_SETTING_CLUSTER:
		doc = g_strdup_printf("[cluster]\n%s = %s\n", s->name, text);
		break;
	case VMCG_SETTING_REQUEST:
		g_assert_not_reached();
	}
	ok = vmcg_config_load_data(doc, (gsize)-1, "t.conf", &c, &error);
	return verdict(ok, error);
}

/* The VM body with @member set to @json. */
static char *vm_body(const VmcgSetting *s, const char *json)
{
	if (s->id == VMCG_SETTING_VM_NAME_ID)
		return g_strdup_printf("{\"name\":%s,\"qmp\":\"/q\"}", json);
	if (s->id == VMCG_SETTING_VM_QMP || s->id == VMCG_SETTING_VM_ADDRESS)
		return g_strdup_printf("{\"name\":\"v\",\"%s\":%s}", s->name, json);
	return g_strdup_printf("{\"name\":\"v\",\"qmp\":\"/q\",\"%s\":%s}", s->name, json);
}

static Verdict by_api(const VmcgSetting *s, const char *json)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *body = NULL;
	gboolean ok = FALSE;

	switch (s->scope) {
	case VMCG_SETTING_GROUP: {
		VmcgGroupSettings gs;

		body = g_strdup_printf("{\"%s\":%s}", s->name, json);
		ok = vmcg_api_parse_group_settings(body, strlen(body), &gs, &error);
		break;
	}
	case VMCG_SETTING_VM: {
		g_auto(VmcgApiVmRequest) vr = { 0 };

		body = vm_body(s, json);
		ok = vmcg_api_parse_vm_add(body, strlen(body), &vr, &error);
		break;
	}
	case VMCG_SETTING_REQUEST: {
		uint64_t bytes;

		body = g_strdup_printf("{\"%s\":%s}", s->name, json);
		ok = vmcg_api_parse_reclaim(body, strlen(body), &bytes, &error);
		break;
	}
	case VMCG_SETTING_DAEMON:
	case VMCG_SETTING_LIBVIRT:
	case VMCG_SETTING_CLUSTER:
		g_assert_not_reached();
	}
	return verdict(ok, error);
}

static Verdict by_state(const VmcgSetting *s, const char *json)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *doc = NULL, *vm = NULL;
	VmcgDaemon *d = vmcg_daemon_new(NULL, NULL);
	gboolean ok;

	if (s->scope == VMCG_SETTING_GROUP) {
		doc = g_strdup_printf("{\"version\":1,\"groups\":[{\"path\":\"/a\",\"%s\":%s}]}",
				      s->name, json);
	} else {
		vm = vm_body(s, json);
		doc = g_strdup_printf("{\"version\":1,\"groups\":[{\"path\":\"/a\"}],\"vms\":[%s]}",
				      vm);
	}
	ok = vmcg_state_apply_text(d, doc, strlen(doc), &error);
	vmcg_daemon_free(d);
	return verdict(ok, error);
}

/* ---- the cases ---- */

typedef struct Case {
	char *text; /* as the config writes it */
	char *json; /* as JSON writes it, or NULL: not a JSON value of the setting's type */
} Case;

static void add(GArray *cases, const char *text, bool bare_in_json)
{
	Case c = { g_strdup(text), bare_in_json ? g_strdup(text) : json_string(text) };

	g_array_append_val(cases, c);
}

static void add_size(GArray *cases, uint64_t bytes)
{
	char buf[32];

	g_snprintf(buf, sizeof(buf), "%" PRIu64, bytes);
	add(cases, buf, false); /* "1234" */
	add(cases, buf, true);	/* 1234 */
	if (vmcg_size_format(bytes, buf, sizeof(buf)) == 0)
		add(cases, buf, false); /* "4K" */
}

static void add_duration(GArray *cases, uint64_t usec)
{
	char buf[VMCG_DURATION_STRLEN];

	g_assert_cmpint(vmcg_duration_format(usec, buf, sizeof(buf)), ==, 0);
	add(cases, buf, false);
}

static void add_int(GArray *cases, int64_t v)
{
	char buf[32];

	g_snprintf(buf, sizeof(buf), "%" PRId64, v);
	add(cases, buf, true);
}

/* Text-only cases (no JSON of the right type says them). */
static void add_text(GArray *cases, const char *text)
{
	Case c = { g_strdup(text), NULL };

	g_array_append_val(cases, c);
}

static void case_clear(gpointer p)
{
	Case *c = p;

	g_free(c->text);
	g_free(c->json);
}

static GArray *cases_of(const VmcgSetting *s)
{
	GArray *cases = g_array_new(FALSE, TRUE, sizeof(Case));
	g_autofree char *long_path = g_strnfill(120, 'p');

	long_path[0] = '/';
	g_array_set_clear_func(cases, case_clear);
	if (s->default_text)
		add(cases, s->default_text,
		    s->type == VMCG_SETTING_INTEGER || s->type == VMCG_SETTING_BOOL);
	switch (s->type) {
	case VMCG_SETTING_SIZE:
		add_size(cases, (uint64_t)s->lo);
		add_size(cases, (uint64_t)s->hi);
		add_size(cases, (uint64_t)s->hi + 1);
		if (s->lo > 0)
			add_size(cases, (uint64_t)s->lo - 1);
		add(cases, "max", false);
		add(cases, "-1", true);
		add(cases, "lots", false);
		break;
	case VMCG_SETTING_DURATION:
		add_duration(cases, (uint64_t)s->lo);
		add_duration(cases, (uint64_t)s->hi);
		add_duration(cases, (uint64_t)s->hi + 1);
		if (s->lo > 0)
			add_duration(cases, (uint64_t)s->lo - 1);
		add(cases, "0", false);
		add(cases, "5", false);
		break;
	case VMCG_SETTING_INTEGER:
		add_int(cases, s->lo);
		add_int(cases, s->hi);
		add_int(cases, s->lo - 1);
		add_int(cases, s->hi + 1);
		add_text(cases, "12k");
		break;
	case VMCG_SETTING_BOOL:
		add(cases, "true", true);
		add(cases, "false", true);
		add_text(cases, "maybe");
		break;
	case VMCG_SETTING_OOM_ACTION:
		add(cases, "pause", false);
		add(cases, "destroy", false);
		add(cases, "kill", false);
		break;
	case VMCG_SETTING_SOCKET_PATH:
	case VMCG_SETTING_FILE_PATH:
		add(cases, "/run/x.sock", false);
		add(cases, "run/x.sock", false);
		add(cases, "/run/", false);
		add(cases, long_path, false);
		break;
	case VMCG_SETTING_UNIX_GROUP:
		add(cases, "kvm", false);
		add(cases, "1kvm", false);
		break;
	case VMCG_SETTING_GROUP_PATH:
		add(cases, "/", false);
		add(cases, "/a", false);
		add(cases, "a", false);
		add(cases, "/a/../b", false);
		break;
	case VMCG_SETTING_VM_NAME:
		add(cases, "web1", false);
		add(cases, "a/b", false);
		break;
	case VMCG_SETTING_BACKEND:
		add(cases, "qmp", false);
		add(cases, "libvirt", false);
		break;
	case VMCG_SETTING_URI:
		add(cases, "qemu:///system", false);
		add(cases, "test:///default", false);
		add(cases, "qemu+ssh://root@host/system?keyfile=/k", false);
		add(cases, "", false);
		add(cases, "qemu", false);
		add(cases, "qemu:///sys tem", false);
		add(cases, "1qemu:///system", false);
		add(cases, ":///system", false);
		break;
	case VMCG_SETTING_ENDPOINTS:
		add(cases, "http://127.0.0.1:2379", false);
		add(cases, "https://e1:2379, https://e2:2379,https://e3:2379", false);
		add(cases, "http://[::1]:2379/", false);
		add(cases, "", false);
		add(cases, "127.0.0.1:2379", false);
		add(cases, "ftp://e:2379", false);
		add(cases, "http://e:2379/v3", false);
		add(cases, "http://user@e:2379", false);
		add(cases, ",,", false);
		add(cases,
		    "http://a:1,http://a:2,http://a:3,http://a:4,http://a:5,http://a:6,"
		    "http://a:7,http://a:8,http://a:9,http://a:10,http://a:11,http://a:12,"
		    "http://a:13,http://a:14,http://a:15,http://a:16,http://a:17",
		    false);
		break;
	case VMCG_SETTING_NODE_NAME:
		add(cases, "host-1.example.com", false);
		add(cases, "", false);
		add(cases, "a b", false);
		add(cases, "h\u00e9", false);
		break;
	}
	return cases;
}

/* @v accepted iff @want_ok; if refused, its message ends in ": " @want_message. */
static void check(const char *surface, const VmcgSetting *s, const char *value, const Verdict *v,
		  bool want_ok, const char *want_message)
{
	if (v->ok != want_ok)
		g_error("%s: %s = %s: %s, but the validator %s", surface, s->name, value,
			v->ok ? "accepted" : v->message, want_ok ? "accepts it" : want_message);
	if (!want_ok && !g_str_has_suffix(v->message, want_message))
		g_error("%s: %s = %s: message \"%s\" is not the validator's \"%s\"", surface,
			s->name, value, v->message, want_message);
	if (!want_ok && v->message[strlen(v->message) - strlen(want_message) - 2] != ':')
		g_error("%s: %s = %s: \"%s\" does not end in \": <message>\"", surface, s->name,
			value, v->message);
}

static void test_setting(gconstpointer data)
{
	const VmcgSetting *s = data;
	g_autoptr(GArray) cases = cases_of(s);
	guint refused = 0;

	for (guint i = 0; i < cases->len; i++) {
		const Case *c = &g_array_index(cases, Case, i);
		g_auto(VmcgSettingValue) v = { 0 };
		g_autoptr(GError) error = NULL;
		gboolean ok = vmcg_setting_parse_text(s, c->text, &v, &error);
		const char *want = ok ? NULL : error->message;

		refused += !ok;
		g_test_message("%s = %s: %s", s->name, c->text, ok ? "ok" : want);
		if (s->scope != VMCG_SETTING_REQUEST) {
			g_auto(Verdict) vc = by_config(s, c->text);

			check("config", s, c->text, &vc, ok, want);
		}
		if (s->scope != VMCG_SETTING_DAEMON && s->scope != VMCG_SETTING_LIBVIRT &&
		    s->scope != VMCG_SETTING_CLUSTER && c->json) {
			g_auto(Verdict) va = by_api(s, c->json);

			check("api", s, c->json, &va, ok, want);
		}
		if ((s->scope == VMCG_SETTING_GROUP || s->scope == VMCG_SETTING_VM) && c->json) {
			g_auto(Verdict) vs = by_state(s, c->json);

			check("state", s, c->json, &vs, ok, want);
		}
	}
	g_assert_cmpuint(refused, >, 0); /* every setting has cases it refuses */

	/* A JSON member of the wrong type: the same TYPE error in the API and the state file. */
	if (s->scope != VMCG_SETTING_DAEMON && s->scope != VMCG_SETTING_LIBVIRT &&
	    s->scope != VMCG_SETTING_CLUSTER) {
		g_autoptr(json_object) arr = json_object_new_array();
		g_auto(VmcgSettingValue) v = { 0 };
		g_autoptr(GError) error = NULL;

		g_assert_false(vmcg_setting_parse_json(s, arr, &v, &error));
		g_assert_error(error, VMCG_SETTING_ERROR, VMCG_SETTING_ERROR_TYPE);
		{
			g_auto(Verdict) va = by_api(s, "[]");

			check("api", s, "[]", &va, false, error->message);
		}
		if (s->scope != VMCG_SETTING_REQUEST) {
			g_auto(Verdict) vs = by_state(s, "[]");

			check("state", s, "[]", &vs, false, error->message);
		}
	}
}

/* The table itself: in id order, names unique per scope, defaults valid. */
static void test_table(void)
{
	for (int id = 0; id < _VMCG_SETTING_COUNT; id++) {
		const VmcgSetting *s = vmcg_setting((VmcgSettingId)id);

		g_assert_cmpint(s->id, ==, id);
		g_assert_nonnull(s->name);
		g_assert_true(vmcg_setting_find(s->scope, s->name) == s);
		if (s->default_text) {
			g_auto(VmcgSettingValue) v = { 0 };
			g_autoptr(GError) error = NULL;

			g_assert_true(vmcg_setting_parse_text(s, s->default_text, &v, &error));
			g_assert_no_error(error);
		}
		if (s->type == VMCG_SETTING_SIZE || s->type == VMCG_SETTING_DURATION ||
		    s->type == VMCG_SETTING_INTEGER)
			g_assert_cmpint(s->lo, <=, s->hi);
	}
	g_assert_null(vmcg_setting_find(VMCG_SETTING_GROUP, "floor"));
}

/* The policy's defaults are the table's (daemon.c's default_policy() should use them). */
static void test_policy_defaults(void)
{
	VmcgPolicy p = { .guest_margin = 7 };
	g_autoptr(VmcgConfig) c = vmcg_config_new_default();

	vmcg_settings_policy_defaults(&p);
	g_assert_cmpuint(p.reclaim_step, ==, c->reclaim_step_bytes);
	g_assert_cmpuint(p.hysteresis, ==, c->hysteresis_bytes);
	g_assert_cmpuint(p.stats_interval_usec, ==, c->stats_interval_usec);
	g_assert_cmpuint(p.stats_max_age_usec, ==, c->stats_max_age_usec);
	g_assert_cmpuint(p.vmpressure_hold_usec, ==, c->vmpressure_hold_usec);
	g_assert_cmpuint(p.unknown_charge_grace_usec, ==, c->unknown_charge_grace_usec);
	g_assert_cmpuint(p.guest_margin, ==, 7); /* not a setting: untouched */
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_log_set_always_fatal(G_LOG_LEVEL_WARNING | G_LOG_LEVEL_CRITICAL);
	g_test_add_func("/settings/table", test_table);
	g_test_add_func("/settings/policy-defaults", test_policy_defaults);
	for (int id = 0; id < _VMCG_SETTING_COUNT; id++) {
		const VmcgSetting *s = vmcg_setting((VmcgSettingId)id);
		g_autofree char *path =
			g_strdup_printf("/settings/%s/%s",
					s->scope == VMCG_SETTING_DAEMON	   ? "daemon"
					: s->scope == VMCG_SETTING_GROUP   ? "group"
					: s->scope == VMCG_SETTING_VM	   ? "vm"
					: s->scope == VMCG_SETTING_LIBVIRT ? "libvirt"
					: s->scope == VMCG_SETTING_CLUSTER ? "cluster"
									   : "request",
					s->name);

		g_test_add_data_func(path, s, test_setting);
	}
	return g_test_run();
}
