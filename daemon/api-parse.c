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
#include "vmcg/oom.h"
#include "vmcg/size.h"

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
 * members, how each is read, and where it goes in the result.
 */
typedef enum FieldKind {
	FIELD_SIZE,	   /* bytes: integer or size string; "max" is VMCG_BYTES_MAX */
	FIELD_SIZE_NO_MAX, /* bytes, "max" refused */
	FIELD_BOOL,
	FIELD_OOM_ACTION, /* "notify" | "pause" | "destroy" */
	FIELD_PRIORITY,	  /* integer in [VMCG_OOM_PRIORITY_MIN, MAX] */
	FIELD_VM_NAME,
	FIELD_GROUP_PATH,
	FIELD_QMP_PATH, /* absolute path of a unix socket */
} FieldKind;

#define NO_HAS ((size_t)-1)

typedef struct Field {
	const char *name;
	FieldKind kind;
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
static const Field group_fields[] = {
	{ "memory.min", FIELD_SIZE, false, GS(has_min), GS(min) },
	{ "memory.low", FIELD_SIZE, false, GS(has_low), GS(low) },
	{ "memory.high", FIELD_SIZE, false, GS(has_high), GS(high) },
	{ "memory.max", FIELD_SIZE, false, GS(has_max), GS(max) },
	{ "memory.oom.group", FIELD_BOOL, false, GS(has_oom_group), GS(oom_group) },
	{ "oom-action", FIELD_OOM_ACTION, false, GS(has_oom_action), GS(oom_action) },
	{ "overhead-in-max", FIELD_BOOL, false, GS(has_overhead_in_max), GS(overhead_in_max) },
};
#undef GS

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
	NULL,
};

static const Schema group_schema = { group_fields, G_N_ELEMENTS(group_fields), group_read_only };

#define VR(m) offsetof(VmcgApiVmRequest, m)
static const Field vm_add_fields[] = {
	{ "name", FIELD_VM_NAME, true, NO_HAS, VR(name) },
	{ "qmp", FIELD_QMP_PATH, true, NO_HAS, VR(qmp) },
	{ "group", FIELD_GROUP_PATH, false, NO_HAS, VR(group) },
	{ "floor", FIELD_SIZE, false, VR(settings.has_floor), VR(settings.floor) },
	{ "oom-priority", FIELD_PRIORITY, false, VR(settings.has_oom_priority),
	  VR(settings.oom_priority) },
};

static const Field vm_update_fields[] = {
	{ "group", FIELD_GROUP_PATH, false, NO_HAS, VR(group) },
	{ "floor", FIELD_SIZE, false, VR(settings.has_floor), VR(settings.floor) },
	{ "oom-priority", FIELD_PRIORITY, false, VR(settings.has_oom_priority),
	  VR(settings.oom_priority) },
};
#undef VR

static const char *const vm_read_only[] = {
	"memory.current", "ram",   "resident", "overhead", "balloon", "stats",
	"mode",		  "state", "pid",      "hooks",	   NULL,
};

/* A VM's name and socket are its identity: forget it and add it again to change them. */
static const char *const vm_update_read_only[] = {
	"name",	 "qmp",	 "memory.current", "ram", "resident", "overhead", "balloon",
	"stats", "mode", "state",	   "pid", "hooks",    NULL,
};

static const Schema vm_add_schema = { vm_add_fields, G_N_ELEMENTS(vm_add_fields), vm_read_only };
static const Schema vm_update_schema = { vm_update_fields, G_N_ELEMENTS(vm_update_fields),
					 vm_update_read_only };

typedef struct ReclaimRequest {
	bool has_bytes;
	uint64_t bytes;
} ReclaimRequest;

static const Field reclaim_fields[] = {
	{ "bytes", FIELD_SIZE_NO_MAX, true, offsetof(ReclaimRequest, has_bytes),
	  offsetof(ReclaimRequest, bytes) },
};

static const Schema reclaim_schema = { reclaim_fields, G_N_ELEMENTS(reclaim_fields), NULL };

static gboolean type_error(const Field *f, const char *expected, GError **error)
{
	g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_TYPE, "%s: expected %s", f->name,
		    expected);
	return FALSE;
}

/* A JSON string as a C string: no NUL inside, valid UTF-8 after unescaping. */
static gboolean read_string(const Field *f, json_object *v, const char **ret, GError **error)
{
	const char *s;

	if (!json_object_is_type(v, json_type_string))
		return type_error(f, "a string", error);
	s = json_object_get_string(v);
	if (strlen(s) != (size_t)json_object_get_string_len(v)) {
		g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_VALUE,
			    "%s: NUL characters are not allowed", f->name);
		return FALSE;
	}
	if (!g_utf8_validate(s, -1, NULL)) {
		g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_UTF8, "%s: invalid UTF-8",
			    f->name);
		return FALSE;
	}
	*ret = s;
	return TRUE;
}

/*
 * Sizes: a non-negative integer of bytes, or a vmcg_size_parse() string
 * ("512M", "1.5G", "max"). Anything above VMCG_SIZE_LIMIT (VMCG_PAGES_MAX
 * pages) is a mistake rather than a limit: write "max". Integers are exact
 * JSON integers: 1e9 and 1.0 are refused, as json-c would read them as
 * doubles and doubles lose bytes above 2^53.
 */
static gboolean read_size(const Field *f, json_object *v, uint64_t *ret, GError **error)
{
	const char *s;
	uint64_t bytes;
	int r;

	if (json_object_is_type(v, json_type_int)) {
		/* json-c: above INT64_MAX is a uint64 (saturated), below INT64_MIN saturates. */
		if (json_object_get_int64(v) < 0) {
			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_VALUE,
				    "%s: a size cannot be negative", f->name);
			return FALSE;
		}
		bytes = json_object_get_uint64(v);
		if (bytes > VMCG_SIZE_LIMIT) {
			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_VALUE,
				    "%s: %" G_GUINT64_FORMAT " bytes is more than any memory "
				    "(at most %" G_GUINT64_FORMAT "; use \"max\" for no limit)",
				    f->name, bytes, (guint64)VMCG_SIZE_LIMIT);
			return FALSE;
		}
		*ret = bytes;
		return TRUE;
	}
	if (!json_object_is_type(v, json_type_string))
		return type_error(f, "a size: bytes as an integer, or a string such as \"512M\"",
				  error);
	if (!read_string(f, v, &s, error))
		return FALSE;
	r = vmcg_size_parse(s, &bytes);
	if (r == -ERANGE) {
		g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_VALUE,
			    "%s: more than any memory (at most %" G_GUINT64_FORMAT
			    " bytes; use \"max\" for no limit)",
			    f->name, (guint64)VMCG_SIZE_LIMIT);
		return FALSE;
	}
	if (r < 0) {
		g_autofree char *q = vmcg_api_quote(s);

		g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_VALUE,
			    "%s: \"%s\" is not a size (bytes, or a number with K, M, G, T, P "
			    "or E: \"512M\", \"1.5G\"%s)",
			    f->name, q, f->kind == FIELD_SIZE ? ", or \"max\"" : "");
		return FALSE;
	}
	if (bytes == VMCG_SIZE_MAX && f->kind == FIELD_SIZE_NO_MAX) {
		g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_VALUE,
			    "%s: \"max\" is not allowed here", f->name);
		return FALSE;
	}
	*ret = bytes == VMCG_SIZE_MAX ? VMCG_BYTES_MAX : bytes;
	return TRUE;
}

static gboolean read_field(const Field *f, json_object *v, void *base, GError **error)
{
	void *dst = (char *)base + f->offset;
	const char *s;
	int64_t n;
	int r;

	switch (f->kind) {
	case FIELD_SIZE:
	case FIELD_SIZE_NO_MAX:
		if (!read_size(f, v, dst, error))
			return FALSE;
		break;
	case FIELD_BOOL:
		if (!json_object_is_type(v, json_type_boolean))
			return type_error(f, "true or false", error);
		*(bool *)dst = json_object_get_boolean(v);
		break;
	case FIELD_OOM_ACTION:
		if (!read_string(f, v, &s, error))
			return FALSE;
		if (vmcg_oom_action_from_string(s, dst) < 0) {
			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_VALUE,
				    "%s: must be \"notify\", \"pause\" or \"destroy\"", f->name);
			return FALSE;
		}
		break;
	case FIELD_PRIORITY:
		if (!json_object_is_type(v, json_type_int))
			return type_error(f, "an integer", error);
		n = json_object_get_int64(v); /* saturates: out of range stays out of range */
		if (n < VMCG_OOM_PRIORITY_MIN || n > VMCG_OOM_PRIORITY_MAX) {
			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_VALUE,
				    "%s: must be in [%d, %d]", f->name, VMCG_OOM_PRIORITY_MIN,
				    VMCG_OOM_PRIORITY_MAX);
			return FALSE;
		}
		*(int32_t *)dst = (int32_t)n;
		break;
	case FIELD_VM_NAME:
		if (!read_string(f, v, &s, error))
			return FALSE;
		r = vmcg_vm_name_validate(s);
		if (r < 0) {
			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_VALUE,
				    r == -ENAMETOOLONG ? "%s: longer than %d bytes"
						       : "%s: must be 1 to %d bytes, without "
							 "control characters or '/'",
				    f->name, VMCG_VM_NAME_MAX);
			return FALSE;
		}
		*(char **)dst = g_strdup(s);
		break;
	case FIELD_GROUP_PATH:
		if (!read_string(f, v, &s, error))
			return FALSE;
		r = vmcg_path_validate(s);
		if (r < 0) {
			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_VALUE,
				    r == -ENAMETOOLONG
					    ? "%s: deeper than %d levels or a name longer than %d "
					      "bytes"
					    : "%s: not a group path (\"/\", \"/a/b\": names of "
					      "[A-Za-z0-9_.-], not \".\" or \"..\")",
				    f->name, VMCG_DEPTH_MAX, VMCG_NAME_MAX);
			return FALSE;
		}
		*(char **)dst = g_strdup(s);
		break;
	case FIELD_QMP_PATH:
		if (!read_string(f, v, &s, error))
			return FALSE;
		/* sun_path is 108 bytes with its NUL: a longer path cannot be connected to. */
		if (s[0] != '/' || strlen(s) >= sizeof(((struct sockaddr_un *)NULL)->sun_path)) {
			g_set_error(error, VMCG_API_ERROR, VMCG_API_ERROR_VALUE,
				    "%s: must be the absolute path of a unix socket, under %zu "
				    "bytes",
				    f->name, sizeof(((struct sockaddr_un *)NULL)->sun_path));
			return FALSE;
		}
		*(char **)dst = g_strdup(s);
		break;
	}
	if (f->has_offset != NO_HAS)
		*(bool *)((char *)base + f->has_offset) = true;
	return TRUE;
}

/*
 * Fills @base (zeroed by the caller) from @body by @schema. On failure
 * @base may hold strings already read: the caller clears it. A member that
 * appears twice counts once, with its last value (json-c keeps the last;
 * RFC 8259 leaves it open).
 */
static gboolean parse_schema(const Schema *schema, const char *body, gsize len, void *base,
			     GError **error)
{
	g_autoptr(json_object) obj = NULL;
	uint32_t seen = 0;

	G_STATIC_ASSERT(sizeof(seen) * 8 >= G_N_ELEMENTS(vm_add_fields));
	obj = parse_object(body, len, error);
	if (!obj)
		return FALSE;

	json_object_object_foreach(obj, key, val)
	{
		const Field *f = NULL;
		size_t i;

		for (i = 0; i < schema->nr_fields; i++) {
			if (strcmp(schema->fields[i].name, key) == 0) {
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
				    "%s: required", schema->fields[i].name);
			return FALSE;
		}
	}
	return TRUE;
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

void vmcg_api_vm_request_clear(VmcgApiVmRequest *req)
{
	g_clear_pointer(&req->name, g_free);
	g_clear_pointer(&req->qmp, g_free);
	g_clear_pointer(&req->group, g_free);
	memset(&req->settings, 0, sizeof(req->settings));
}

static gboolean parse_vm(const Schema *schema, const char *body, gsize len, VmcgApiVmRequest *ret,
			 GError **error)
{
	g_auto(VmcgApiVmRequest) req = { 0 };

	if (!parse_schema(schema, body, len, &req, error))
		return FALSE;
	*ret = req;
	memset(&req, 0, sizeof(req)); /* moved */
	return TRUE;
}

gboolean vmcg_api_parse_vm_add(const char *body, gsize len, VmcgApiVmRequest *ret, GError **error)
{
	return parse_vm(&vm_add_schema, body, len, ret, error);
}

gboolean vmcg_api_parse_vm_update(const char *body, gsize len, VmcgApiVmRequest *ret,
				  GError **error)
{
	return parse_vm(&vm_update_schema, body, len, ret, error);
}

gboolean vmcg_api_parse_reclaim(const char *body, gsize len, uint64_t *ret_bytes, GError **error)
{
	ReclaimRequest req = { 0 };

	if (!parse_schema(&reclaim_schema, body, len, &req, error))
		return FALSE;
	*ret_bytes = req.bytes;
	return TRUE;
}
