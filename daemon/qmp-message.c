// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * QMP messages (see qmp-message.h): one JSON object -> greeting, return,
 * error or event, checked against qmp-spec.rst's types; error replies as
 * GErrors; the commands vmcg writes. Pure: what tests/fuzz/fuzz-qmp.c drives.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>

#include "qmp-message.h"

GQuark vmcg_qmp_error_quark(void)
{
	return g_quark_from_static_string("vmcg-qmp-error-quark");
}

VmcgJsonStreamOptions vmcg_qmp_stream_options(size_t max_message_bytes, size_t max_tree_bytes)
{
	return (VmcgJsonStreamOptions){
		.framing = VMCG_JSON_STREAM_CONCATENATED,
		.max_message_bytes = max_message_bytes,
		.max_tree_bytes = max_tree_bytes,
		.max_depth = VMCG_QMP_MAX_DEPTH,
		.what = "QMP message",
	};
}

void vmcg_qmp_error_from_stream(GError *error)
{
	if (!error || error->domain != VMCG_JSON_STREAM_ERROR)
		return;
	error->code = error->code == VMCG_JSON_STREAM_ERROR_TOO_BIG ? VMCG_QMP_ERROR_MESSAGE_TOO_BIG
								    : VMCG_QMP_ERROR_PROTOCOL;
	error->domain = VMCG_QMP_ERROR;
}

void vmcg_qmp_message_clear(VmcgQmpMessage *msg)
{
	if (msg->root)
		json_object_put(msg->root);
	memset(msg, 0, sizeof(*msg));
}

static int G_GNUC_PRINTF(2, 3) proto_error(GError **error, const char *fmt, ...)
{
	g_autofree char *what = NULL;
	va_list ap;

	va_start(ap, fmt);
	what = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error(error, VMCG_QMP_ERROR, VMCG_QMP_ERROR_PROTOCOL, "invalid QMP message: %s",
		    what);
	return -EBADMSG;
}

static const char *type_name(json_object *o)
{
	return json_type_to_name(json_object_get_type(o));
}

/* @o's member @key must exist (unless @optional) and be of @type. */
static int member(json_object *o, const char *where, const char *key, json_type type, bool optional,
		  json_object **ret, GError **error)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v)) {
		if (optional) {
			*ret = NULL;
			return 0;
		}
		return proto_error(error, "%s has no \"%s\"", where, key);
	}
	if (!json_object_is_type(v, type))
		return proto_error(error, "%s: \"%s\" must be %s %s, not %s", where, key,
				   strchr("aeiou", json_type_to_name(type)[0]) ? "an" : "a",
				   json_type_to_name(type), type_name(v));
	*ret = v;
	return 0;
}

/* A string that C can hold: no embedded NUL (possible in a built object). */
static int member_string(json_object *o, const char *where, const char *key, bool optional,
			 bool nonempty, const char **ret, GError **error)
{
	json_object *v;
	const char *s;
	int r = member(o, where, key, json_type_string, optional, &v, error);

	if (r < 0)
		return r;
	if (!v) {
		*ret = NULL;
		return 0;
	}
	s = json_object_get_string(v);
	if (strlen(s) != (size_t)json_object_get_string_len(v))
		return proto_error(error, "%s: \"%s\" holds a NUL character", where, key);
	if (nonempty && !*s)
		return proto_error(error, "%s: \"%s\" is empty", where, key);
	*ret = s;
	return 0;
}

static int member_int(json_object *o, const char *where, const char *key, int64_t lo, int64_t hi,
		      int64_t *ret, GError **error)
{
	json_object *v;
	int64_t x;
	int r = member(o, where, key, json_type_int, false, &v, error);

	if (r < 0)
		return r;
	/* Clamps a uint64 above INT64_MAX to INT64_MAX: above any @hi here. */
	x = json_object_get_int64(v);
	if (x < lo || x > hi)
		return proto_error(error, "%s: \"%s\" is out of range", where, key);
	*ret = x;
	return 0;
}

static int classify_greeting(json_object *qmp, VmcgQmpMessage *m, GError **error)
{
	json_object *version, *qemu, *caps;
	int64_t v[3];
	static const char *const parts[] = { "major", "minor", "micro" };
	int r;

	if (!json_object_is_type(qmp, json_type_object))
		return proto_error(error, "\"QMP\" must be an object, not %s", type_name(qmp));
	r = member(qmp, "greeting", "version", json_type_object, false, &version, error);
	if (r < 0)
		return r;
	r = member(version, "greeting \"version\"", "qemu", json_type_object, false, &qemu, error);
	if (r < 0)
		return r;
	for (int i = 0; i < 3; i++) {
		r = member_int(qemu, "greeting \"version\".\"qemu\"", parts[i], 0, INT_MAX, &v[i],
			       error);
		if (r < 0)
			return r;
	}
	r = member_string(version, "greeting \"version\"", "package", false, false,
			  &m->qemu_package, error);
	if (r < 0)
		return r;
	r = member(qmp, "greeting", "capabilities", json_type_array, false, &caps, error);
	if (r < 0)
		return r;
	for (size_t i = 0; i < json_object_array_length(caps); i++)
		if (!json_object_is_type(json_object_array_get_idx(caps, i), json_type_string))
			return proto_error(error, "greeting: \"capabilities\" must hold strings");
	m->type = VMCG_QMP_MSG_GREETING;
	m->qemu_major = (int)v[0];
	m->qemu_minor = (int)v[1];
	m->qemu_micro = (int)v[2];
	m->capabilities = caps;
	return 0;
}

static int classify_event(json_object *obj, VmcgQmpMessage *m, GError **error)
{
	json_object *ts;
	int64_t sec, usec;
	int r;

	r = member_string(obj, "event", "event", false, true, &m->event, error);
	if (r < 0)
		return r;
	r = member(obj, "event", "data", json_type_object, true, &m->data, error);
	if (r < 0)
		return r;
	r = member(obj, "event", "timestamp", json_type_object, false, &ts, error);
	if (r < 0)
		return r;
	/* qmp-spec.rst: both are -1 when QEMU could not read the clock. */
	r = member_int(ts, "event \"timestamp\"", "seconds", -1,
		       (INT64_MAX - (G_USEC_PER_SEC - 1)) / G_USEC_PER_SEC, &sec, error);
	if (r < 0)
		return r;
	r = member_int(ts, "event \"timestamp\"", "microseconds", -1, G_USEC_PER_SEC - 1, &usec,
		       error);
	if (r < 0)
		return r;
	if ((sec < 0) != (usec < 0))
		return proto_error(error, "event: \"timestamp\" is -1 in one member only");
	m->type = VMCG_QMP_MSG_EVENT;
	m->timestamp_usec = sec < 0 ? -1 : sec * G_USEC_PER_SEC + usec;
	return 0;
}

/* @val is the "return" member if @is_return, else the "error" member. */
static int classify_reply(json_object *obj, bool is_return, json_object *val, VmcgQmpMessage *m,
			  GError **error)
{
	json_object *ret = val, *err = val;
	int r;

	r = member_string(obj, "reply", "id", true, false, &m->id, error);
	if (r < 0)
		return r;
	if (is_return) {
		if (json_object_get_type(ret) == json_type_null)
			return proto_error(error, "reply: \"return\" is null");
		m->type = VMCG_QMP_MSG_RETURN;
		m->ret = ret;
		return 0;
	}
	if (!json_object_is_type(err, json_type_object))
		return proto_error(error, "reply: \"error\" must be an object, not %s",
				   type_name(err));
	r = member_string(err, "reply \"error\"", "class", false, true, &m->error_class, error);
	if (r < 0)
		return r;
	r = member_string(err, "reply \"error\"", "desc", false, false, &m->error_desc, error);
	if (r < 0)
		return r;
	m->type = VMCG_QMP_MSG_ERROR;
	return 0;
}

int vmcg_qmp_classify(json_object *obj, VmcgQmpMessage *ret, GError **error)
{
	static const char *const kinds[] = { "QMP", "return", "error", "event" };
	json_object *v[4] = { NULL };
	bool has[4];
	VmcgQmpMessage m = { 0 };
	int n = 0, r;

	if (!json_object_is_type(obj, json_type_object))
		return proto_error(error, "a message must be a JSON object, not %s",
				   type_name(obj));
	for (int i = 0; i < 4; i++) {
		has[i] = json_object_object_get_ex(obj, kinds[i], &v[i]);
		n += has[i];
	}
	if (n == 0)
		return proto_error(error, "no \"QMP\", \"return\", \"error\" or \"event\" member");
	if (n > 1) {
		const char *a = NULL, *b = NULL;

		for (int i = 0; i < 4; i++) {
			if (!has[i])
				continue;
			if (!a)
				a = kinds[i];
			else if (!b)
				b = kinds[i];
		}
		return proto_error(error, "both \"%s\" and \"%s\" in one message", a, b);
	}
	if (has[0])
		r = classify_greeting(v[0], &m, error);
	else if (has[3])
		r = classify_event(obj, &m, error);
	else
		r = classify_reply(obj, has[1], has[1] ? v[1] : v[2], &m, error);
	if (r < 0)
		return r;
	m.root = json_object_get(obj);
	*ret = m;
	return 0;
}

int vmcg_qmp_parse(const char *buf, size_t len, VmcgQmpMessage *ret, GError **error)
{
	VmcgJsonStreamOptions o = vmcg_qmp_stream_options(0, 0);
	g_autoptr(json_object) obj = NULL;
	GError *err = NULL;
	int r;

	r = vmcg_json_parse_object(buf, len, &o, &obj, &err);
	if (r < 0) {
		vmcg_qmp_error_from_stream(err);
		g_propagate_error(error, err);
		return r;
	}
	return vmcg_qmp_classify(obj, ret, error);
}

static int class_code(const char *cls)
{
	static const struct {
		const char *name;
		int code;
	} classes[] = {
		/* QapiErrorClass of qapi/error.json */
		{ "GenericError", VMCG_QMP_ERROR_GENERIC_ERROR },
		{ "CommandNotFound", VMCG_QMP_ERROR_COMMAND_NOT_FOUND },
		{ "DeviceNotActive", VMCG_QMP_ERROR_DEVICE_NOT_ACTIVE },
		{ "DeviceNotFound", VMCG_QMP_ERROR_DEVICE_NOT_FOUND },
		{ "KVMMissingCap", VMCG_QMP_ERROR_KVM_MISSING_CAP },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(classes); i++)
		if (strcmp(cls, classes[i].name) == 0)
			return classes[i].code;
	return VMCG_QMP_ERROR_UNKNOWN_CLASS;
}

GError *vmcg_qmp_message_to_error(const VmcgQmpMessage *m, const char *prefix)
{
	int code = class_code(m->error_class);

	if (code == VMCG_QMP_ERROR_UNKNOWN_CLASS)
		return g_error_new(VMCG_QMP_ERROR, code, "%s%s: %s", prefix, m->error_class,
				   m->error_desc);
	return g_error_new(VMCG_QMP_ERROR, code, "%s%s", prefix, m->error_desc);
}

const char *vmcg_qmp_message_kind(const VmcgQmpMessage *m)
{
	switch (m->type) {
	case VMCG_QMP_MSG_GREETING:
		return "a greeting";
	case VMCG_QMP_MSG_RETURN:
		return "a reply";
	case VMCG_QMP_MSG_ERROR:
		return "an error reply";
	case VMCG_QMP_MSG_EVENT:
		return "an event";
	}
	return "?";
}

size_t vmcg_qmp_id_format(char buf[VMCG_QMP_ID_MAX], guint64 n)
{
	char digits[20];
	size_t nd = 0, len = 5;

	/* By hand: printf's machinery costs more than the command's send. */
	memcpy(buf, "vmcg-", 5);
	do {
		digits[nd++] = (char)('0' + n % 10);
		n /= 10;
	} while (n);
	while (nd)
		buf[len++] = digits[--nd];
	buf[len] = '\0';
	return len;
}

char *vmcg_qmp_id(guint64 n)
{
	char buf[VMCG_QMP_ID_MAX];

	vmcg_qmp_id_format(buf, n);
	return g_strdup(buf);
}

/*
 * @s as a JSON string: as is when every byte is one json-c would not
 * escape (command names and ids always are), else through json-c.
 */
static void append_json_string(GString *w, const char *s)
{
	const char *p;

	for (p = s; *p; p++)
		if (!g_ascii_isalnum(*p) && *p != '-' && *p != '_' && *p != '.')
			break;
	if (!*p) {
		g_string_append_c(w, '"');
		g_string_append(w, s);
		g_string_append_c(w, '"');
		return;
	}
	{
		g_autoptr(json_object) o = json_object_new_string(s);

		g_string_append(w, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	}
}

/*
 * Written out rather than built as a json-c object and printed: one
 * command per VM per poll, and the object, its members and the printing
 * cost more than the send (tests/bench/bench-control.c). The same bytes
 * as json-c would print.
 */
void vmcg_qmp_command_wire_append(GString *w, const char *command, json_object *args,
				  const char *args_json, const char *id)
{
	g_string_append(w, "{\"execute\":");
	append_json_string(w, command);
	if (args) {
		g_string_append(w, ",\"arguments\":");
		g_string_append(w, json_object_to_json_string_ext(args, JSON_C_TO_STRING_PLAIN));
	} else if (args_json) {
		g_string_append(w, ",\"arguments\":");
		g_string_append(w, args_json);
	}
	g_string_append(w, ",\"id\":");
	append_json_string(w, id);
	g_string_append(w, "}\r\n");
}

char *vmcg_qmp_command_wire(const char *command, json_object *args, const char *id)
{
	GString *w = g_string_sized_new(128);

	vmcg_qmp_command_wire_append(w, command, args, NULL, id);
	return g_string_free(w, FALSE);
}

bool vmcg_qmp_fast_classify(const VmcgJsonFlat *f, VmcgQmpFastMessage *ret)
{
	const VmcgJsonFlatNode *n;
	int ev, rv, id, ts, sec, usec;

	if (vmcg_json_flat_get(f, 0, "QMP") >= 0 || vmcg_json_flat_get(f, 0, "error") >= 0)
		return false;
	rv = vmcg_json_flat_get(f, 0, "return");
	ev = vmcg_json_flat_get(f, 0, "event");
	if ((rv >= 0) == (ev >= 0))
		return false;
	*ret = (VmcgQmpFastMessage){ .ret = -1, .data = -1, .timestamp_usec = -1 };
	if (rv >= 0) {
		/* classify_reply(): an optional string "id", a "return" that is not null. */
		if (f->node[rv].type != VMCG_JSON_FLAT_OBJECT)
			return false;
		id = vmcg_json_flat_get(f, 0, "id");
		if (id >= 0) {
			n = &f->node[id];
			if (n->type != VMCG_JSON_FLAT_STRING || n->escaped ||
			    memchr(n->str, '\0', n->len))
				return false;
			ret->id = n->str;
			ret->id_len = n->len;
		}
		ret->type = VMCG_QMP_MSG_RETURN;
		ret->ret = rv;
		return true;
	}
	/* classify_event(): a non-empty name, optional object "data", a timestamp. */
	n = &f->node[ev];
	if (n->type != VMCG_JSON_FLAT_STRING || n->escaped || n->len == 0 ||
	    n->len >= sizeof(ret->event) || memchr(n->str, '\0', n->len))
		return false;
	memcpy(ret->event, n->str, n->len);
	ret->event[n->len] = '\0';
	ret->data = vmcg_json_flat_get(f, 0, "data");
	if (ret->data >= 0 && f->node[ret->data].type != VMCG_JSON_FLAT_OBJECT)
		return false;
	ts = vmcg_json_flat_get_type(f, 0, "timestamp", VMCG_JSON_FLAT_OBJECT);
	if (ts < 0)
		return false;
	sec = vmcg_json_flat_get_type(f, ts, "seconds", VMCG_JSON_FLAT_INT);
	usec = vmcg_json_flat_get_type(f, ts, "microseconds", VMCG_JSON_FLAT_INT);
	if (sec < 0 || usec < 0 || f->node[sec].i < -1 ||
	    f->node[sec].i > (INT64_MAX - (G_USEC_PER_SEC - 1)) / G_USEC_PER_SEC ||
	    f->node[usec].i < -1 || f->node[usec].i > G_USEC_PER_SEC - 1 ||
	    (f->node[sec].i < 0) != (f->node[usec].i < 0))
		return false;
	ret->type = VMCG_QMP_MSG_EVENT;
	ret->timestamp_usec =
		f->node[sec].i < 0 ? -1 : f->node[sec].i * G_USEC_PER_SEC + f->node[usec].i;
	return true;
}
