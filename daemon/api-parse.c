// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The API's request bodies (docs/api.md): pure functions that take the raw
 * bytes and either fill in a settings struct or say what is wrong, so that
 * every request is validated whole before the daemon sees it (the daemon's
 * calls are all-or-nothing too). The unit test and the fuzzer exercise
 * them; the state file's entries go through them too (state.c).
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "api-private.h"
#include "settings.h"

GQuark vmcg_api_error_quark(void)
{
	return g_quark_from_static_string("vmcg-api-error-quark");
}

char *vmcg_api_quote(const char *s)
{
	const char *end;

	if (strlen(s) <= VMCG_API_QUOTE_MAX)
		return g_strdup(s);
	g_utf8_validate(s, VMCG_API_QUOTE_MAX, &end);
	return g_strdup_printf("%.*s...", (int)(end - s), s);
}

static bool is_json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * json-c's strict mode still takes single-quoted strings, NaN and
 * Infinity, and it keeps an escaped NUL ("\u0000") inside strings and
 * keys, where C code would silently cut the name short. Refuse all of that
 * before json-c sees it: outside strings only what RFC 8259 has, inside
 * strings no \u0000.
 */
static gboolean check_lexemes(const char *body, gsize len, GError **error)
{
	static const char allowed[] = " \t\r\n{}[]:,-+.0123456789eE"
				      "truefalsn"; /* true false null */
	bool in_string = false;

	for (gsize i = 0; i < len; i++) {
		char c = body[i];

		if (in_string) {
			if (c == '"') {
				in_string = false;
			} else if (c == '\\' && i + 1 < len) {
				if (len - i >= 6 && memcmp(body + i + 1, "u0000", 5) == 0) {
					g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_VALUE,
						    "NUL characters (\\u0000) are not allowed "
						    "(byte %zu)",
						    (size_t)i);
					return FALSE;
				}
				i++; /* the escaped character; json-c checks the escape */
			}
			continue;
		}
		if (c == '"') {
			in_string = true;
			continue;
		}
		if (c == '\0' || !strchr(allowed, c)) {
			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_SYNTAX,
				    "invalid JSON: unexpected character at byte %zu", (size_t)i);
			return FALSE;
		}
	}
	return TRUE;
}

/* The body as a JSON object, or an error that says why not. */
static json_object *parse_object(const char *body, gsize len, GError **error)
{
	g_autoptr(json_tokener) tok = NULL;
	json_object *obj;
	enum json_tokener_error jerr;
	const char *bad;
	gsize i, end;

	if (len > VMCG_API_BODY_LIMIT_MAX) {
		g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_TOO_LARGE,
			    "request body of %zu bytes is over the limit of %d bytes", (size_t)len,
			    VMCG_API_BODY_LIMIT_MAX);
		return NULL;
	}
	if (len == 0)
		return json_object_new_object();
	bad = memchr(body, '\0', len);
	if (bad) {
		g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_SYNTAX,
			    "invalid JSON: NUL byte at byte %zu", (size_t)(bad - body));
		return NULL;
	}
	if (!g_utf8_validate_len(body, len, &bad)) {
		g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_UTF8,
			    "request body is not valid UTF-8 (byte %zu)", (size_t)(bad - body));
		return NULL;
	}
	if (!check_lexemes(body, len, error))
		return NULL;
	for (i = 0; i < len && is_json_space(body[i]); i++)
		;
	if (i == len) {
		g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_SYNTAX,
			    "invalid JSON: the body is only whitespace");
		return NULL;
	}
	if (body[i] != '{') {
		g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_TYPE,
			    "the request body must be a JSON object");
		return NULL;
	}

	tok = json_tokener_new_ex(VMCG_API_JSON_DEPTH);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, body, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	if (!obj) {
		if (jerr == json_tokener_error_depth)
			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_DEPTH,
				    "JSON nested deeper than %d levels", VMCG_API_JSON_DEPTH);
		else if (jerr == json_tokener_error_parse_utf8_string)
			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_UTF8,
				    "invalid UTF-8 in a JSON string");
		else if (jerr == json_tokener_continue)
			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_SYNTAX,
				    "invalid JSON: the body ends before the object does");
		else
			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_SYNTAX,
				    "invalid JSON: %s at byte %zu", json_tokener_error_desc(jerr),
				    (size_t)end);
		return NULL;
	}
	for (i = end; i < len && is_json_space(body[i]); i++)
		;
	if (i < len || !json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_SYNTAX,
			    "invalid JSON: data after the object at byte %zu", (size_t)i);
		return NULL;
	}
	return obj;
}

/*
 * One table per request type (STYLE.md: one schema per wire format): the
 * members, the setting each one is (its type, range and validator are the
 * settings table's, shared with the config file), and where it goes in
 * the result.
 */
#define NO_HAS ((size_t)-1)

typedef struct Field {
	VmcgSettingId id;
	const char *name; /* the member, if not the setting's name */
	bool required;
	size_t has_offset; /* bool set when present, or NO_HAS */
	size_t offset;	   /* uint64_t, bool, VmcgOomAction, int32_t or char * */
} Field;

typedef struct Schema {
	const Field *fields;
	size_t nr_fields;
	const char *const *read_only; /* members of the GET form that cannot be written */
} Schema;

#define GS(m) offsetof(VmcgGroupSettings, m)
#define GROUP_KNOBS                                                                                \
	{ VMCG_SETTING_MEMORY_MIN, NULL, false, GS(has_min), GS(min) },                            \
		{ VMCG_SETTING_MEMORY_LOW, NULL, false, GS(has_low), GS(low) },                    \
		{ VMCG_SETTING_MEMORY_HIGH, NULL, false, GS(has_high), GS(high) },                 \
		{ VMCG_SETTING_MEMORY_MAX, NULL, false, GS(has_max), GS(max) },                    \
		{ VMCG_SETTING_MEMORY_OOM_GROUP, NULL, false, GS(has_oom_group), GS(oom_group) },  \
		{ VMCG_SETTING_OOM_ACTION_KNOB, NULL, false, GS(has_oom_action), GS(oom_action) }, \
		{ VMCG_SETTING_OVERHEAD_IN_MAX, NULL, false, GS(has_overhead_in_max),              \
		  GS(overhead_in_max) },                                                           \
	{                                                                                          \
		VMCG_SETTING_CLUSTER_MEMORY_MAX, NULL, false, GS(has_cluster_max), GS(cluster_max) \
	}

static const Field group_fields[] = { GROUP_KNOBS };
#undef GS

/* A group of the state file: its path, then the knobs as PUT takes them. */
typedef struct GroupEntry {
	char *path;
	VmcgGroupSettings s;
} GroupEntry;

#define GS(m) offsetof(GroupEntry, s) + offsetof(VmcgGroupSettings, m)
static const Field group_entry_fields[] = {
	{ VMCG_SETTING_VM_GROUP, "path", true, NO_HAS, offsetof(GroupEntry, path) },
	GROUP_KNOBS,
};
#undef GS
#undef GROUP_KNOBS

static const char *const group_read_only[] = {
	"path",
	"memory.current",
	"memory.peak",
	"memory.events",
	"memory.events.local",
	"memory.pressure",
	"vmpressure",
	"memory.stat",
	"vms",
	"children",
	"cluster",
	NULL,
};

static const Schema group_schema = { group_fields, G_N_ELEMENTS(group_fields), group_read_only };
static const Schema group_entry_schema = { group_entry_fields, G_N_ELEMENTS(group_entry_fields),
					   group_read_only };

#define VR(m) offsetof(VmcgApiVmRequest, m)
/* address or qmp is required too: vm_identity() checks. */
static const Field vm_add_fields[] = {
	{ VMCG_SETTING_VM_NAME_ID, NULL, true, NO_HAS, VR(name) },
	{ VMCG_SETTING_VM_BACKEND, NULL, false, NO_HAS, VR(backend) },
	{ VMCG_SETTING_VM_ADDRESS, NULL, false, NO_HAS, VR(address) },
	{ VMCG_SETTING_VM_QMP, NULL, false, NO_HAS, VR(qmp) },
	{ VMCG_SETTING_VM_GROUP, NULL, false, NO_HAS, VR(group) },
	{ VMCG_SETTING_VM_FLOOR, NULL, false, VR(settings.has_floor), VR(settings.floor) },
	{ VMCG_SETTING_VM_OOM_PRIORITY, NULL, false, VR(settings.has_oom_priority),
	  VR(settings.oom_priority) },
	{ VMCG_SETTING_VM_CHANNEL, NULL, false, VR(settings.has_channel), VR(settings.channel) },
};

static const Field vm_update_fields[] = {
	{ VMCG_SETTING_VM_GROUP, NULL, false, NO_HAS, VR(group) },
	{ VMCG_SETTING_VM_FLOOR, NULL, false, VR(settings.has_floor), VR(settings.floor) },
	{ VMCG_SETTING_VM_OOM_PRIORITY, NULL, false, VR(settings.has_oom_priority),
	  VR(settings.oom_priority) },
	{ VMCG_SETTING_VM_CHANNEL, NULL, false, VR(settings.has_channel), VR(settings.channel) },
};
#undef VR

static const char *const vm_read_only[] = {
	"memory.current", "ram",   "resident", "overhead", "balloon", "stats",
	"mode",		  "state", "pid",      "hooks",	   NULL,
};

/* A VM's name and address are its identity: forget it and add it again to change them. */
static const char *const vm_update_read_only[] = {
	"name", "backend",  "address",	"qmp",	   "memory.current",
	"ram",	"resident", "overhead", "balloon", "stats",
	"mode", "state",    "pid",	"hooks",   NULL,
};

static const Schema vm_add_schema = { vm_add_fields, G_N_ELEMENTS(vm_add_fields), vm_read_only };
static const Schema vm_update_schema = { vm_update_fields, G_N_ELEMENTS(vm_update_fields),
					 vm_update_read_only };

typedef struct ReclaimRequest {
	bool has_bytes;
	uint64_t bytes;
} ReclaimRequest;

static const Field reclaim_fields[] = {
	{ VMCG_SETTING_RECLAIM_BYTES, NULL, true, offsetof(ReclaimRequest, has_bytes),
	  offsetof(ReclaimRequest, bytes) },
};

static const Schema reclaim_schema = { reclaim_fields, G_N_ELEMENTS(reclaim_fields), NULL };

static const char *field_name(const Field *f)
{
	return f->name ? f->name : vmcg_setting(f->id)->name;
}

/* The member's value by its setting's validator, the message prefixed with the member. */
static gboolean read_field(const Field *f, json_object *v, void *base, GError **error)
{
	const VmcgSetting *s = vmcg_setting(f->id);
	void *dst = (char *)base + f->offset;
	g_auto(VmcgSettingValue) val = { 0 };
	g_autoptr(GError) local = NULL;

	if (!vmcg_setting_parse_json(s, v, &val, &local)) {
		VmcgApiError code = local->code == VMCG_SETTING_ERROR_TYPE   ? VMCG_API_ERROR_TYPE
				    : local->code == VMCG_SETTING_ERROR_UTF8 ? VMCG_API_ERROR_UTF8
									     : VMCG_API_ERROR_VALUE;

		g_set_error(error, VMCG_API_ERROR, code, "%s: %s", field_name(f), local->message);
		return FALSE;
	}
	/* VMCG_SIZE_MAX is VMCG_BYTES_MAX: sizes store as they are. */
	vmcg_setting_store(s, &val, dst);
	if (f->has_offset != NO_HAS)
		*(bool *)((char *)base + f->has_offset) = true;
	return TRUE;
}

/*
 * Fills @base (zeroed by the caller) from the object @obj by @schema. On
 * failure @base may hold strings already read: the caller clears it. A
 * member that appears twice counts once, with its last value (json-c keeps
 * the last; RFC 8259 leaves it open).
 */
static gboolean parse_members(const Schema *schema, json_object *obj, void *base, GError **error)
{
	uint32_t seen = 0;

	G_STATIC_ASSERT(sizeof(seen) * 8 >= G_N_ELEMENTS(group_entry_fields));
	G_STATIC_ASSERT(sizeof(seen) * 8 >= G_N_ELEMENTS(vm_add_fields));
	if (!json_object_is_type(obj, json_type_object)) {
		g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_TYPE, "expected a JSON object");
		return FALSE;
	}
	json_object_object_foreach(obj, key, val)
	{
		const Field *f = NULL;
		size_t i;

		for (i = 0; i < schema->nr_fields; i++) {
			if (strcmp(field_name(&schema->fields[i]), key) == 0) {
				f = &schema->fields[i];
				break;
			}
		}
		if (!f) {
			g_autofree char *q = vmcg_api_quote(key);
			bool ro = schema->read_only && g_strv_contains(schema->read_only, key);

			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_UNKNOWN_FIELD,
				    ro ? "%s: read-only" : "unknown member \"%s\"", q);
			return FALSE;
		}
		if (!read_field(f, val, base, error))
			return FALSE;
		seen |= 1u << i;
	}
	for (size_t i = 0; i < schema->nr_fields; i++) {
		if (schema->fields[i].required && !(seen & (1u << i))) {
			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_MISSING_FIELD,
				    "%s: required", field_name(&schema->fields[i]));
			return FALSE;
		}
	}
	return TRUE;
}

static gboolean parse_schema(const Schema *schema, const char *body, gsize len, void *base,
			     GError **error)
{
	g_autoptr(json_object) obj = parse_object(body, len, error);

	return obj && parse_members(schema, obj, base, error);
}

gboolean vmcg_api_parse_group_settings(const char *body, gsize len, VmcgGroupSettings *ret,
				       GError **error)
{
	VmcgGroupSettings s = { 0 };

	if (!parse_schema(&group_schema, body, len, &s, error))
		return FALSE;
	*ret = s;
	return TRUE;
}

gboolean vmcg_api_parse_group_entry(json_object *obj, char **ret_path, VmcgGroupSettings *ret,
				    GError **error)
{
	GroupEntry e = { 0 };

	if (!parse_members(&group_entry_schema, obj, &e, error)) {
		g_free(e.path);
		return FALSE;
	}
	*ret_path = e.path;
	*ret = e.s;
	return TRUE;
}

void vmcg_api_vm_request_clear(VmcgApiVmRequest *req)
{
	g_clear_pointer(&req->name, g_free);
	g_clear_pointer(&req->backend, g_free);
	g_clear_pointer(&req->address, g_free);
	g_clear_pointer(&req->qmp, g_free);
	g_clear_pointer(&req->group, g_free);
	g_free(req->settings.channel);
	memset(&req->settings, 0, sizeof(req->settings));
}

/*
 * A new VM's identity: the backend ("qmp" unless given) and its address,
 * given as "address" or, for the qmp backend, as "qmp" (the name before
 * backends); both is fine if they agree.
 */
static gboolean vm_identity(VmcgApiVmRequest *req, GError **error)
{
	if (!req->backend)
		req->backend = g_strdup("qmp");
	if (req->qmp && req->address && strcmp(req->qmp, req->address) != 0) {
		g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_VALUE,
			    "qmp: differs from address: for the qmp backend they are the same "
			    "setting; give one of them");
		return FALSE;
	}
	if (!req->address && !req->qmp) {
		g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_MISSING_FIELD,
			    "qmp: required (or address): %s",
			    vmcg_setting(VMCG_SETTING_VM_QMP)->help);
		return FALSE;
	}
	if (!req->address)
		req->address = g_strdup(req->qmp);
	if (!req->qmp && strcmp(req->backend, "qmp") == 0)
		req->qmp = g_strdup(req->address);
	return TRUE;
}

static gboolean parse_vm(const Schema *schema, json_object *obj, VmcgApiVmRequest *ret,
			 GError **error)
{
	g_auto(VmcgApiVmRequest) req = { 0 };

	if (!parse_members(schema, obj, &req, error))
		return FALSE;
	if (schema == &vm_add_schema && !vm_identity(&req, error))
		return FALSE;
	*ret = req;
	memset(&req, 0, sizeof(req)); /* moved */
	return TRUE;
}

gboolean vmcg_api_parse_vm_add(const char *body, gsize len, VmcgApiVmRequest *ret, GError **error)
{
	g_autoptr(json_object) obj = parse_object(body, len, error);

	return obj && parse_vm(&vm_add_schema, obj, ret, error);
}

gboolean vmcg_api_parse_vm_entry(json_object *obj, VmcgApiVmRequest *ret, GError **error)
{
	return parse_vm(&vm_add_schema, obj, ret, error);
}

gboolean vmcg_api_parse_vm_update(const char *body, gsize len, VmcgApiVmRequest *ret,
				  GError **error)
{
	g_autoptr(json_object) obj = parse_object(body, len, error);

	return obj && parse_vm(&vm_update_schema, obj, ret, error);
}

gboolean vmcg_api_parse_reclaim(const char *body, gsize len, uint64_t *ret_bytes, GError **error)
{
	ReclaimRequest req = { 0 };

	if (!parse_schema(&reclaim_schema, body, len, &req, error))
		return FALSE;
	*ret_bytes = req.bytes;
	return TRUE;
}
