// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A libvirt domain's XML read into a VmcgDomainXml (see libvirt-xml.h).
 * Pure: what tests/unit/test-libvirt-xml.c and tests/fuzz/fuzz-libvirt-xml.c
 * drive.
 *
 * One pass of GMarkup's callbacks over a stack of frames, one per open
 * element: each frame knows what its element is to us (its kind, decided
 * from its parent's kind and its own resolved name) and the namespace
 * declarations it made. An element under one we do not care about is
 * skipped at the cost of a depth count: no name resolution, no copies.
 * Values are collected as text during the pass and checked after it, when
 * the whole document is known (libvirt writes <metadata> before <memory>,
 * and a floor is checked against <memory>).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include <gio/gio.h>

#include "libvirt-xml.h"
#include "vmcg/group.h"
#include "vmcg/oom.h"
#include "vmcg/size.h"

/* The namespace the "xml" prefix is bound to without a declaration (XML Namespaces 1.0, 3). */
#define XML_NS "http://www.w3.org/XML/1998/namespace"

/* A name or value quoted in a message is cut at this many bytes: one line, readable. */
#define QUOTE_MAX 64

/*
 * GMarkup's messages quote the document (an entity name runs to the next
 * ';'): they are made one line and cut at this many bytes.
 */
#define MESSAGE_MAX 512

/* What an element is to us. Children of K_OTHER are K_OTHER, unlooked at. */
typedef enum Kind {
	K_OTHER = 0,
	K_DOMAIN,
	K_TEXT, /* one of the domain's values we read: Frame.index is a Value */
	K_MEMTUNE,
	K_MEMORY_BACKING,
	K_DEVICES,
	K_CHANNEL,
	K_METADATA,
	K_VM,	    /* vmcg:vm */
	K_VM_VALUE, /* a known child of vmcg:vm: Frame.index is a Key */
} Kind;

/* The domain's values, read as text. */
typedef enum Value {
	V_NAME = 0,
	V_UUID,
	V_MEMORY,
	V_CURRENT_MEMORY,
	V_MIN_GUARANTEE,
	N_VALUES,
} Value;

static const char *const value_names[N_VALUES] = {
	[V_NAME] = "<name>",
	[V_UUID] = "<uuid>",
	[V_MEMORY] = "<memory>",
	[V_CURRENT_MEMORY] = "<currentMemory>",
	[V_MIN_GUARANTEE] = "<memtune><min_guarantee>",
};

/* The children of vmcg:vm, in the order they are checked and reported. */
typedef enum Key {
	KEY_GROUP = 0,
	KEY_FLOOR,
	KEY_OOM_PRIORITY,
	KEY_MIN,
	KEY_LOW,
	KEY_HIGH,
	KEY_MAX,
	N_KEYS,
} Key;

static const char *const key_names[N_KEYS] = {
	[KEY_GROUP] = "group",	  [KEY_FLOOR] = "floor",    [KEY_OOM_PRIORITY] = "oom-priority",
	[KEY_MIN] = "memory.min", [KEY_LOW] = "memory.low", [KEY_HIGH] = "memory.high",
	[KEY_MAX] = "memory.max",
};

typedef struct Frame {
	Kind kind;
	int index;	/* K_TEXT: a Value; K_VM_VALUE: a Key */
	GHashTable *ns; /* prefix ("" for the default) -> URI ("" undeclares); NULL if none */
} Frame;

/* The resolved namespace of a prefix that nothing declared: matches nothing. */
static const char UNBOUND[] = "";

typedef struct Parser {
	Frame frames[VMCG_DOMAIN_XML_DEPTH_MAX];
	unsigned depth;
	bool root_seen;
	int64_t id;

	/* The text of the K_TEXT or K_VM_VALUE element being read. */
	GString *text;
	bool text_long; /* above VMCG_DOMAIN_XML_TEXT_MAX: the text stops growing */

	char *values[N_VALUES]; /* NULL: absent */
	char *units[N_VALUES];	/* the unit attribute, NULL if absent */
	bool value_seen[N_VALUES];

	bool has_balloon, hugepages, locked, vfio;

	/* The <channel> being read, and the one found. */
	bool ch_unix, ch_has_source, ch_has_target, ch_ours;
	char *ch_path;
	char *channel;

	/* vmcg's element. */
	unsigned nr_vm;
	unsigned nr_children;
	bool vm_text;	   /* text directly in vmcg:vm, reported once */
	bool value_nested; /* the K_VM_VALUE being read has a child, reported once */
	bool key_seen[N_KEYS];
	char *keys[N_KEYS]; /* trimmed text */
	GPtrArray *problems;
} Parser;

/* ---- messages ---- */

/*
 * @s (NUL-terminated, maybe not UTF-8) as one line of at most @max bytes of
 * it: control characters and bytes that are not UTF-8 escaped, and with
 * @quotes double quotes and backslashes; "..." when cut.
 */
static char *escape(const char *s, size_t max, bool quotes)
{
	GString *out = g_string_new(NULL);
	const char *p = s;

	while (*p && (size_t)(p - s) < max) {
		gunichar c = g_utf8_get_char_validated(p, -1);

		if (c == (gunichar)-1 || c == (gunichar)-2) {
			g_string_append_printf(out, "\\x%02x", (unsigned char)*p);
			p++;
			continue;
		}
		if (c == '\n')
			g_string_append(out, "\\n");
		else if (c == '\t')
			g_string_append(out, "\\t");
		else if (quotes && (c == '"' || c == '\\'))
			g_string_append_printf(out, "\\%c", (char)c);
		else if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0))
			g_string_append_printf(out, "\\u%04x", c);
		else
			g_string_append_len(out, p, g_utf8_next_char(p) - p);
		p = g_utf8_next_char(p);
	}
	if (*p)
		g_string_append(out, "...");
	return g_string_free(out, FALSE);
}

/* A name or value from the document, in a message. */
static char *cut(const char *s)
{
	return escape(s, QUOTE_MAX, true);
}

static char *quote(const char *s)
{
	g_autofree char *c = cut(s);

	return g_strdup_printf("\"%s\"", c);
}

G_GNUC_PRINTF(2, 3)
static void fail(GError **error, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	g_propagate_error(error, g_error_new_valist(G_IO_ERROR, G_IO_ERROR_INVALID_DATA, fmt, ap));
	va_end(ap);
}

/* The line that stands for the problems not listed. */
static char *more_problems(void)
{
	return g_strdup_printf("vmcg:vm: more problems, only the first %d are listed",
			       VMCG_DOMAIN_XML_PROBLEMS_MAX);
}

/* One line about vmcg's metadata; after VMCG_DOMAIN_XML_PROBLEMS_MAX, one that says there are more. */
G_GNUC_PRINTF(2, 3)
static void problem(Parser *p, const char *fmt, ...)
{
	va_list ap;

	if (p->problems->len > VMCG_DOMAIN_XML_PROBLEMS_MAX)
		return;
	if (p->problems->len == VMCG_DOMAIN_XML_PROBLEMS_MAX) {
		g_ptr_array_add(p->problems, more_problems());
		return;
	}
	va_start(ap, fmt);
	g_ptr_array_add(p->problems, g_strdup_vprintf(fmt, ap));
	va_end(ap);
}

/*
 * A problem that explains the others (too many children: each of them may
 * have been one) goes first, and the last listed one makes room for it.
 */
static void problem_first(Parser *p, char *msg)
{
	g_ptr_array_insert(p->problems, 0, msg);
	if (p->problems->len == VMCG_DOMAIN_XML_PROBLEMS_MAX + 2)
		g_ptr_array_remove_index(p->problems, VMCG_DOMAIN_XML_PROBLEMS_MAX);
	else if (p->problems->len == VMCG_DOMAIN_XML_PROBLEMS_MAX + 1) {
		g_ptr_array_remove_index(p->problems, VMCG_DOMAIN_XML_PROBLEMS_MAX);
		g_ptr_array_add(p->problems, more_problems());
	}
}

/* ---- names and namespaces ---- */

static bool is_xmlns(const char *attr)
{
	return strcmp(attr, "xmlns") == 0 || g_str_has_prefix(attr, "xmlns:");
}

/* Records the namespace declarations of an element in its frame. The first of a prefix counts. */
static void declare(Frame *f, const char **names, const char **values)
{
	for (size_t i = 0; names[i]; i++) {
		const char *prefix;

		if (!is_xmlns(names[i]))
			continue;
		prefix = names[i][5] ? names[i] + 6 : "";
		if (!f->ns)
			f->ns = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
		if (!g_hash_table_contains(f->ns, prefix))
			g_hash_table_insert(f->ns, g_strdup(prefix), g_strdup(values[i]));
	}
}

/*
 * The namespace of @prefix ("" for none) in scope at the top frame: its
 * URI, NULL for no namespace (no prefix and no default namespace), or
 * UNBOUND (a prefix nobody declared, or undeclared with xmlns:p="").
 */
static const char *resolve(const Parser *p, const char *prefix)
{
	if (strcmp(prefix, "xml") == 0)
		return XML_NS;
	for (unsigned i = p->depth; i-- > 0;) {
		const char *uri =
			p->frames[i].ns ? g_hash_table_lookup(p->frames[i].ns, prefix) : NULL;

		if (uri)
			return *uri ? uri : *prefix ? UNBOUND : NULL;
	}
	return *prefix ? UNBOUND : NULL;
}

/* An element's resolved name. */
typedef struct Name {
	const char *ns; /* as resolve() */
	const char *local;
} Name;

static Name resolve_element(const Parser *p, const char *qname)
{
	const char *colon = strchr(qname, ':');
	g_autofree char *prefix = NULL;

	if (!colon)
		return (Name){ resolve(p, ""), qname };
	prefix = g_strndup(qname, colon - qname);
	return (Name){ resolve(p, prefix), colon + 1 };
}

/* libvirt's own elements are in no namespace. */
static bool is_libvirt(Name n, const char *local)
{
	return !n.ns && strcmp(n.local, local) == 0;
}

static bool is_vmcg(Name n)
{
	return n.ns && n.ns != UNBOUND && strcmp(n.ns, VMCG_LIBVIRT_NS) == 0;
}

/* An attribute in no namespace (unprefixed), or NULL. The first of a name counts. */
static const char *attr(const char **names, const char **values, const char *name)
{
	for (size_t i = 0; names[i]; i++)
		if (strcmp(names[i], name) == 0)
			return values[i];
	return NULL;
}

static bool is_blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!g_ascii_isspace(s[i]))
			return false;
	return true;
}

/* ---- the callbacks ---- */

static void start_text(Parser *p, Frame *f, Value v, const char **an, const char **av,
		       GError **error)
{
	if (p->value_seen[v]) {
		fail(error, "%s appears twice", value_names[v]);
		return;
	}
	p->value_seen[v] = true;
	f->kind = K_TEXT;
	f->index = v;
	if (v == V_MEMORY || v == V_CURRENT_MEMORY || v == V_MIN_GUARANTEE)
		p->units[v] = g_strdup(attr(an, av, "unit"));
	g_string_truncate(p->text, 0);
	p->text_long = false;
}

static void start_root(Parser *p, Frame *f, const char *qname, Name n, const char **an,
		       const char **av, GError **error)
{
	const char *id;

	if (p->root_seen) {
		g_autofree char *c = cut(qname);

		fail(error, "a second root element <%s> after </domain>", c);
		return;
	}
	p->root_seen = true;
	if (!is_libvirt(n, "domain")) {
		g_autofree char *c = cut(qname);

		fail(error, "the root element is <%s>, not <domain>", c);
		return;
	}
	f->kind = K_DOMAIN;
	id = attr(an, av, "id");
	/* Inactive XML has no id; -1 is libvirt's own "no id" (virDomainDef.id), read as absent. */
	if (id && strcmp(id, "-1") != 0) {
		guint64 v;

		if (!g_ascii_string_to_unsigned(id, 10, 0, G_MAXINT32, &v, NULL)) {
			g_autofree char *q = quote(id);

			fail(error, "<domain id=%s> is not a domain id (0 to %d)", q, G_MAXINT32);
			return;
		}
		p->id = (int64_t)v;
	}
}

static void start_device(Parser *p, Frame *f, Name n, const char **an, const char **av)
{
	const char *v;

	if (is_libvirt(n, "memballoon")) {
		v = attr(an, av, "model");
		if (!v || strcmp(v, "none") != 0)
			p->has_balloon = true;
	} else if (is_libvirt(n, "hostdev")) {
		/* Without a mode, libvirt reads subsystem (virDomainHostdevDefParseXML()). */
		v = attr(an, av, "mode");
		if ((!v || strcmp(v, "subsystem") == 0) &&
		    g_strcmp0(attr(an, av, "type"), "pci") == 0)
			p->vfio = true;
	} else if (is_libvirt(n, "interface")) {
		if (g_strcmp0(attr(an, av, "type"), "hostdev") == 0)
			p->vfio = true;
	} else if (is_libvirt(n, "channel")) {
		f->kind = K_CHANNEL;
		p->ch_unix = g_strcmp0(attr(an, av, "type"), "unix") == 0;
		p->ch_has_source = p->ch_has_target = p->ch_ours = false;
		g_clear_pointer(&p->ch_path, g_free);
	}
}

static void start_channel_child(Parser *p, Name n, const char **an, const char **av)
{
	if (is_libvirt(n, "source") && !p->ch_has_source) {
		p->ch_has_source = true;
		p->ch_path = g_strdup(attr(an, av, "path"));
	} else if (is_libvirt(n, "target") && !p->ch_has_target) {
		p->ch_has_target = true;
		p->ch_ours = g_strcmp0(attr(an, av, "type"), "virtio") == 0 &&
			     g_strcmp0(attr(an, av, "name"), VMCG_CHANNEL_PORT_NAME) == 0;
	}
}

/* vmcg's elements have no attributes but namespace declarations: reports the first other. */
static void check_no_attrs(Parser *p, const char *what, const char **an)
{
	for (size_t i = 0; an[i]; i++) {
		if (!is_xmlns(an[i])) {
			g_autofree char *q = quote(an[i]);

			problem(p, "%s: unexpected attribute %s", what, q);
			return;
		}
	}
}

static void start_metadata_child(Parser *p, Frame *f, const char *qname, Name n, const char **an)
{
	if (!is_vmcg(n))
		return; /* another program's */
	if (strcmp(n.local, "vm") != 0) {
		g_autofree char *c = cut(qname);

		problem(p,
			"<metadata>: unknown element <%s> in vmcg's namespace (expected vmcg:vm)",
			c);
		return;
	}
	if (++p->nr_vm > 1) {
		if (p->nr_vm == 2)
			problem(p, "<metadata>: more than one vmcg:vm element");
		return;
	}
	f->kind = K_VM;
	check_no_attrs(p, "vmcg:vm", an);
}

static void start_vm_child(Parser *p, Frame *f, const char *qname, Name n, const char **an)
{
	char what[32];

	if (++p->nr_children > VMCG_DOMAIN_XML_META_CHILDREN_MAX) {
		if (p->nr_children == VMCG_DOMAIN_XML_META_CHILDREN_MAX + 1)
			problem_first(p,
				      g_strdup_printf("vmcg:vm: more than %d child elements, the "
						      "rest is not read",
						      VMCG_DOMAIN_XML_META_CHILDREN_MAX));
		return;
	}
	for (int k = 0; k < N_KEYS; k++) {
		if (!is_vmcg(n) || strcmp(n.local, key_names[k]) != 0)
			continue;
		if (p->key_seen[k]) {
			problem(p, "vmcg:%s appears more than once", key_names[k]);
			return;
		}
		p->key_seen[k] = true;
		f->kind = K_VM_VALUE;
		f->index = k;
		g_string_truncate(p->text, 0);
		p->text_long = false;
		p->value_nested = false;
		g_snprintf(what, sizeof(what), "vmcg:%s", key_names[k]);
		check_no_attrs(p, what, an);
		return;
	}
	{
		g_autofree char *c = cut(qname);

		problem(p, "vmcg:vm: unknown element <%s>", c);
	}
}

static void on_start(GMarkupParseContext *ctx, const char *qname, const char **an, const char **av,
		     gpointer user, GError **error)
{
	Parser *p = user;
	Kind parent = p->depth ? p->frames[p->depth - 1].kind : K_OTHER;
	Frame *f;
	Name n;

	(void)ctx;
	if (p->depth == VMCG_DOMAIN_XML_DEPTH_MAX) {
		fail(error, "elements are nested deeper than %d levels", VMCG_DOMAIN_XML_DEPTH_MAX);
		return;
	}
	f = &p->frames[p->depth++];
	*f = (Frame){ .kind = K_OTHER, .index = -1 };

	if (parent == K_VM_VALUE) {
		if (!p->value_nested) {
			g_autofree char *c = cut(qname);

			p->value_nested = true;
			problem(p, "vmcg:%s: unexpected child element <%s>",
				key_names[p->frames[p->depth - 2].index], c);
		}
		return;
	}
	/* The root's parent is the document: depth 1 now. */
	if (p->depth > 1 && (parent == K_OTHER || parent == K_TEXT))
		return;

	declare(f, an, av);
	n = resolve_element(p, qname);
	if (p->depth == 1) {
		start_root(p, f, qname, n, an, av, error);
		return;
	}
	switch (parent) {
	case K_DOMAIN:
		if (is_libvirt(n, "name"))
			start_text(p, f, V_NAME, an, av, error);
		else if (is_libvirt(n, "uuid"))
			start_text(p, f, V_UUID, an, av, error);
		else if (is_libvirt(n, "memory"))
			start_text(p, f, V_MEMORY, an, av, error);
		else if (is_libvirt(n, "currentMemory"))
			start_text(p, f, V_CURRENT_MEMORY, an, av, error);
		else if (is_libvirt(n, "memtune"))
			f->kind = K_MEMTUNE;
		else if (is_libvirt(n, "memoryBacking"))
			f->kind = K_MEMORY_BACKING;
		else if (is_libvirt(n, "devices"))
			f->kind = K_DEVICES;
		else if (is_libvirt(n, "metadata"))
			f->kind = K_METADATA;
		break;
	case K_MEMTUNE:
		if (is_libvirt(n, "min_guarantee"))
			start_text(p, f, V_MIN_GUARANTEE, an, av, error);
		break;
	case K_MEMORY_BACKING:
		if (is_libvirt(n, "hugepages"))
			p->hugepages = true;
		else if (is_libvirt(n, "locked"))
			p->locked = true;
		break;
	case K_DEVICES:
		start_device(p, f, n, an, av);
		break;
	case K_CHANNEL:
		start_channel_child(p, n, an, av);
		break;
	case K_METADATA:
		start_metadata_child(p, f, qname, n, an);
		break;
	case K_VM:
		start_vm_child(p, f, qname, n, an);
		break;
	default:
		break;
	}
}

static bool end_channel(Parser *p, GError **error)
{
	if (!p->ch_unix || !p->ch_ours || !p->ch_path || !*p->ch_path || p->channel)
		return true;
	if (strlen(p->ch_path) > VMCG_DOMAIN_XML_TEXT_MAX) {
		fail(error, "channel %s: the source path is longer than %d bytes",
		     VMCG_CHANNEL_PORT_NAME, VMCG_DOMAIN_XML_TEXT_MAX);
		return false;
	}
	if (p->ch_path[0] != '/') {
		g_autofree char *q = quote(p->ch_path);

		fail(error, "channel %s: the source path %s is not absolute",
		     VMCG_CHANNEL_PORT_NAME, q);
		return false;
	}
	p->channel = g_steal_pointer(&p->ch_path);
	return true;
}

static void on_end(GMarkupParseContext *ctx, const char *qname, gpointer user, GError **error)
{
	Parser *p = user;
	Frame *f = &p->frames[p->depth - 1];

	(void)ctx;
	(void)qname;
	switch (f->kind) {
	case K_TEXT:
		if (p->text_long) {
			fail(error, "%s is longer than %d bytes", value_names[f->index],
			     VMCG_DOMAIN_XML_TEXT_MAX);
			return;
		}
		p->values[f->index] = g_strdup(p->text->str);
		break;
	case K_VM_VALUE:
		/* A value with a child has no value: its one problem is the child. */
		if (p->value_nested)
			break;
		if (p->text_long)
			problem(p, "vmcg:%s: the value is longer than %d bytes",
				key_names[f->index], VMCG_DOMAIN_XML_TEXT_MAX);
		else
			p->keys[f->index] = g_strstrip(g_strdup(p->text->str));
		break;
	case K_CHANNEL:
		if (!end_channel(p, error))
			return;
		break;
	default:
		break;
	}
	g_clear_pointer(&f->ns, g_hash_table_destroy);
	p->depth--;
}

static void on_text(GMarkupParseContext *ctx, const char *text, gsize len, gpointer user,
		    GError **error)
{
	Parser *p = user;
	const Frame *f;

	(void)ctx;
	(void)error;
	if (!p->depth)
		return;
	f = &p->frames[p->depth - 1];
	if (f->kind == K_TEXT || f->kind == K_VM_VALUE) {
		if (p->text_long || len > VMCG_DOMAIN_XML_TEXT_MAX - p->text->len)
			p->text_long = true;
		else
			g_string_append_len(p->text, text, len);
	} else if (f->kind == K_VM && !p->vm_text && !is_blank(text, len)) {
		p->vm_text = true;
		problem(p, "vmcg:vm: text outside of its elements");
	}
}

static const GMarkupParser parser_callbacks = {
	.start_element = on_start,
	.end_element = on_end,
	.text = on_text,
};

/* ---- the domain's values ---- */

/*
 * libvirt's units (virScaleInteger(), src/util/virutil.c): case does not
 * matter; "b", "byte", "bytes"; k, m, g, t, p, e alone or with "iB" are
 * powers of 1024, with "B" powers of 1000. No unit: KiB, as libvirt's
 * memory elements.
 */
static bool unit_scale(const char *unit, uint64_t *ret)
{
	static const char prefixes[] = "kmgtpe";
	const char *at;
	uint64_t base, scale = 1;

	if (!unit) {
		*ret = 1024;
		return true;
	}
	if (!g_ascii_strcasecmp(unit, "b") || !g_ascii_strcasecmp(unit, "byte") ||
	    !g_ascii_strcasecmp(unit, "bytes")) {
		*ret = 1;
		return true;
	}
	if (!unit[0] || !(at = strchr(prefixes, g_ascii_tolower(unit[0]))))
		return false;
	if (!unit[1] || !g_ascii_strcasecmp(unit + 1, "iB"))
		base = 1024;
	else if (!g_ascii_strcasecmp(unit + 1, "B"))
		base = 1000;
	else
		return false;
	for (const char *c = prefixes; c <= at; c++)
		scale *= base; /* at most 1024^6 = 2^60 */
	*ret = scale;
	return true;
}

/* A libvirt scaled integer: digits (trimmed), times the unit, at most VMCG_SIZE_LIMIT. */
static bool parse_scaled(const Parser *p, Value v, uint64_t *ret_bytes, GError **error)
{
	g_autofree char *s = g_strstrip(g_strdup(p->values[v]));
	const char *unit = p->units[v];
	uint64_t n = 0, scale, bytes;
	bool overflow = false;

	if (!*s) {
		fail(error, "%s is empty", value_names[v]);
		return false;
	}
	for (const char *c = s; *c; c++) {
		if (!g_ascii_isdigit(*c)) {
			g_autofree char *q = quote(s);

			fail(error, "%s %s is not a number", value_names[v], q);
			return false;
		}
		if (!g_uint64_checked_mul(&n, n, 10) || !g_uint64_checked_add(&n, n, *c - '0'))
			overflow = true;
	}
	if (!unit_scale(unit, &scale)) {
		g_autofree char *q = quote(unit);

		fail(error, "%s: unknown unit %s (b, KiB, MiB, GiB, ..., KB, MB, ...)",
		     value_names[v], q);
		return false;
	}
	if (overflow || !g_uint64_checked_mul(&bytes, n, scale) || bytes > VMCG_SIZE_LIMIT) {
		g_autofree char *c = cut(s);
		g_autofree char *u = cut(unit ? unit : "KiB");

		fail(error, "%s %s %s is too large (at most %" PRIu64 " bytes)", value_names[v], c,
		     u, (uint64_t)VMCG_SIZE_LIMIT);
		return false;
	}
	*ret_bytes = bytes;
	return true;
}

/* 8-4-4-4-12 hex digits, or 32 in a row; written back lowercase and canonical. */
static bool parse_uuid(const char *text, char ret[37])
{
	g_autofree char *s = g_strstrip(g_strdup(text));
	size_t len = strlen(s), o = 0;

	if (len != 36 && len != 32)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (len == 36 && (i == 8 || i == 13 || i == 18 || i == 23)) {
			if (s[i] != '-')
				return false;
			continue;
		}
		if (!g_ascii_isxdigit(s[i]))
			return false;
		if (o == 8 || o == 13 || o == 18 || o == 23)
			ret[o++] = '-';
		ret[o++] = g_ascii_tolower(s[i]);
	}
	ret[o] = '\0';
	return true;
}

static bool has_dot_component(const char *path)
{
	g_auto(GStrv) parts = g_strsplit(path, "/", -1);

	for (size_t i = 0; parts[i]; i++)
		if (strcmp(parts[i], ".") == 0 || strcmp(parts[i], "..") == 0)
			return true;
	return false;
}

static void check_group(Parser *p, const char *s)
{
	g_autofree char *q = quote(s);
	int r = vmcg_path_validate(s);

	if (r == -ENAMETOOLONG)
		problem(p,
			"vmcg:group: %s is too long: at most %d levels of names of at most %d "
			"bytes",
			q, VMCG_DEPTH_MAX, VMCG_NAME_MAX);
	else if (r < 0 || has_dot_component(s))
		problem(p,
			"vmcg:group: %s is not a group path (expected \"/\" or /name/name..., "
			"names "
			"of letters, digits, '_', '-' and '.', not \".\" or \"..\")",
			q);
}

static bool check_size(Parser *p, Key k, uint64_t *ret)
{
	g_autofree char *q = quote(p->keys[k]);
	int r = vmcg_size_parse(p->keys[k], ret);

	if (r == -ERANGE)
		problem(p, "vmcg:%s: %s is too large (at most %" PRIu64 " bytes, or max)",
			key_names[k], q, (uint64_t)VMCG_SIZE_LIMIT);
	else if (r < 0)
		problem(p, "vmcg:%s: %s is not a size (e.g. 256M)", key_names[k], q);
	return r == 0;
}

static bool check_oom_priority(Parser *p, int32_t *ret)
{
	const char *s = p->keys[KEY_OOM_PRIORITY];
	g_autofree char *q = quote(s);
	g_autoptr(GError) err = NULL;
	gint64 v;

	if (!g_ascii_string_to_signed(s, 10, G_MININT64, G_MAXINT64, &v, &err)) {
		if (g_error_matches(err, G_NUMBER_PARSER_ERROR,
				    G_NUMBER_PARSER_ERROR_OUT_OF_BOUNDS))
			problem(p, "vmcg:oom-priority: %s is out of range [%d, %d]", q,
				VMCG_OOM_PRIORITY_MIN, VMCG_OOM_PRIORITY_MAX);
		else
			problem(p, "vmcg:oom-priority: %s is not an integer", q);
		return false;
	}
	if (v < VMCG_OOM_PRIORITY_MIN || v > VMCG_OOM_PRIORITY_MAX) {
		problem(p, "vmcg:oom-priority: %s is out of range [%d, %d]", q,
			VMCG_OOM_PRIORITY_MIN, VMCG_OOM_PRIORITY_MAX);
		return false;
	}
	*ret = (int32_t)v;
	return true;
}

/* Reports each pair of knobs out of order: min <= low <= high <= max. */
static void check_order(Parser *p, const bool has[4], const uint64_t v[4])
{
	for (int i = 0; i < 4; i++) {
		for (int j = i + 1; j < 4; j++) {
			char a[VMCG_SIZE_STRLEN], b[VMCG_SIZE_STRLEN];

			if (!has[i] || !has[j] || v[i] <= v[j])
				continue;
			vmcg_size_format(v[i], a, sizeof(a));
			vmcg_size_format(v[j], b, sizeof(b));
			problem(p, "vmcg:%s (%s) is above vmcg:%s (%s)", key_names[KEY_MIN + i], a,
				key_names[KEY_MIN + j], b);
		}
	}
}

/* Checks vmcg's values once the domain's memory is known; fills @ret->meta or the problems. */
static void finish_meta(Parser *p, VmcgDomainXml *ret)
{
	VmcgDomainMeta m = { 0 };
	bool has[4] = { false };
	uint64_t knobs[4] = { 0 };

	if (p->keys[KEY_GROUP]) {
		check_group(p, p->keys[KEY_GROUP]);
		m.group = g_strdup(p->keys[KEY_GROUP]);
	}
	if (p->keys[KEY_FLOOR] && check_size(p, KEY_FLOOR, &m.floor)) {
		m.has_floor = true;
		if (m.floor != VMCG_SIZE_MAX && m.floor > ret->memory) {
			g_autofree char *q = quote(p->keys[KEY_FLOOR]);
			char mem[VMCG_SIZE_STRLEN];

			vmcg_size_format(ret->memory, mem, sizeof(mem));
			problem(p, "vmcg:floor: %s is above the domain's <memory> (%s)", q, mem);
		}
	}
	if (p->keys[KEY_OOM_PRIORITY])
		m.has_oom_priority = check_oom_priority(p, &m.oom_priority);
	for (int i = 0; i < 4; i++)
		if (p->keys[KEY_MIN + i])
			has[i] = check_size(p, KEY_MIN + i, &knobs[i]);
	check_order(p, has, knobs);
	m.has_min = has[0];
	m.has_low = has[1];
	m.has_high = has[2];
	m.has_max = has[3];
	m.min = knobs[0];
	m.low = knobs[1];
	m.high = knobs[2];
	m.max = knobs[3];

	if (p->problems->len || p->nr_vm != 1) {
		g_free(m.group);
		return;
	}
	ret->has_meta = true;
	ret->meta = m;
}

/* The checks of the whole document, after the pass. */
static bool finish(Parser *p, VmcgDomainXml *ret, GError **error)
{
	if (!p->values[V_NAME]) {
		fail(error, "no <name>");
		return false;
	}
	if (!*p->values[V_NAME]) {
		fail(error, "<name> is empty");
		return false;
	}
	if (!p->values[V_UUID]) {
		fail(error, "no <uuid>");
		return false;
	}
	if (!parse_uuid(p->values[V_UUID], ret->uuid)) {
		g_autofree char *q = quote(p->values[V_UUID]);

		fail(error, "<uuid> %s is not a UUID (8-4-4-4-12 hex digits)", q);
		return false;
	}
	if (!p->values[V_MEMORY]) {
		fail(error, "no <memory>");
		return false;
	}
	if (!parse_scaled(p, V_MEMORY, &ret->memory, error))
		return false;
	if (ret->memory == 0) {
		fail(error, "<memory> is 0");
		return false;
	}
	ret->current_memory = ret->memory;
	if (p->values[V_CURRENT_MEMORY]) {
		if (!parse_scaled(p, V_CURRENT_MEMORY, &ret->current_memory, error))
			return false;
		if (ret->current_memory > ret->memory) {
			fail(error,
			     "<currentMemory> (%" PRIu64 " bytes) is above <memory> (%" PRIu64
			     " bytes)",
			     ret->current_memory, ret->memory);
			return false;
		}
	}
	if (p->values[V_MIN_GUARANTEE] &&
	    !parse_scaled(p, V_MIN_GUARANTEE, &ret->min_guarantee, error))
		return false;

	ret->name = g_strdup(p->values[V_NAME]);
	ret->id = p->id;
	ret->has_balloon = p->has_balloon;
	ret->hugepages = p->hugepages;
	ret->locked = p->locked;
	ret->vfio = p->vfio;
	ret->channel = g_steal_pointer(&p->channel);
	finish_meta(p, ret);
	ret->problems = g_steal_pointer(&p->problems);
	return true;
}

static void parser_clear(Parser *p)
{
	for (unsigned i = 0; i < p->depth; i++)
		g_clear_pointer(&p->frames[i].ns, g_hash_table_destroy);
	if (p->text)
		g_string_free(p->text, TRUE);
	for (int i = 0; i < N_VALUES; i++) {
		g_free(p->values[i]);
		g_free(p->units[i]);
	}
	for (int i = 0; i < N_KEYS; i++)
		g_free(p->keys[i]);
	g_free(p->ch_path);
	g_free(p->channel);
	if (p->problems)
		g_ptr_array_unref(p->problems);
}

gboolean vmcg_domain_xml_parse(const char *xml, size_t len, VmcgDomainXml *ret, GError **error)
{
	g_autoptr(GError) err = NULL;
	GMarkupParseContext *ctx;
	Parser *p;
	bool ok;

	memset(ret, 0, sizeof(*ret));
	if (!xml && len) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "domain XML: no data");
		return FALSE;
	}
	if (len > VMCG_DOMAIN_XML_MAX_BYTES) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			    "domain XML: %zu bytes, more than the %u allowed", len,
			    (unsigned)VMCG_DOMAIN_XML_MAX_BYTES);
		return FALSE;
	}
	if (len && memchr(xml, '\0', len)) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			    "domain XML: a NUL byte at offset %zu",
			    (size_t)((const char *)memchr(xml, '\0', len) - xml));
		return FALSE;
	}

	/* The frames are 1.5 KiB: on the heap, not the caller's stack. */
	p = g_new0(Parser, 1);
	p->id = -1;
	p->text = g_string_new(NULL);
	p->problems = g_ptr_array_new_with_free_func(g_free);
	ret->id = -1;
	ctx = g_markup_parse_context_new(
		&parser_callbacks, G_MARKUP_TREAT_CDATA_AS_TEXT | G_MARKUP_PREFIX_ERROR_POSITION, p,
		NULL);
	ok = g_markup_parse_context_parse(ctx, xml ? xml : "", (gssize)len, &err) &&
	     g_markup_parse_context_end_parse(ctx, &err) && finish(p, ret, &err);
	g_markup_parse_context_free(ctx);
	parser_clear(p);
	g_free(p);
	if (!ok) {
		char *line = escape(err->message, MESSAGE_MAX, false);

		vmcg_domain_xml_clear(ret);
		g_free(err->message);
		err->message = line;
		g_propagate_prefixed_error(error, g_steal_pointer(&err), "domain XML: ");
		return FALSE;
	}
	return TRUE;
}

void vmcg_domain_xml_clear(VmcgDomainXml *x)
{
	if (!x)
		return;
	g_free(x->name);
	g_free(x->channel);
	g_free(x->meta.group);
	if (x->problems)
		g_ptr_array_unref(x->problems);
	memset(x, 0, sizeof(*x));
}
