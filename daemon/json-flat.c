// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The flat JSON reader (see json-flat.h): a recursive descent over the
 * text, one node per value into a fixed array. Declines whatever it does
 * not read exactly as json-c would.
 */
#include <string.h>

#include "json-flat.h"

typedef struct {
	const char *p, *end;
	VmcgJsonFlat *f;
	bool plain; /* strings: printable ASCII, no escapes */
} Reader;

static void skip_ws(Reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

/*
 * A string at r->p (its '"'): the bytes between the quotes. Escapes are
 * only skipped (\uXXXX included): a string that holds one is marked, and a
 * key that holds one is declined, so no value is ever read from one. Raw
 * control characters are not JSON.
 */
static bool read_string(Reader *r, const char **ret, size_t *ret_len, bool *ret_escaped)
{
	const char *s = ++r->p;
	bool esc = false;

	while (r->p < r->end && *r->p != '"') {
		unsigned char c = (unsigned char)*r->p;

		if (c < 0x20 || (r->plain && (c >= 0x7f || c == '\\')))
			return false;
		if (c == '\\') {
			esc = true;
			if (++r->p >= r->end)
				return false;
			if (*r->p == 'u') {
				for (int k = 0; k < 4; k++) {
					char h;

					if (++r->p >= r->end)
						return false;
					h = *r->p;
					if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') ||
					      (h >= 'A' && h <= 'F')))
						return false;
				}
			} else if (!strchr("\"\\/bfnrt", *r->p) || !*r->p) {
				return false;
			}
		}
		r->p++;
	}
	if (r->p >= r->end)
		return false;
	*ret = s;
	*ret_len = (size_t)(r->p - s);
	*ret_escaped = esc;
	r->p++;
	return true;
}

/* An integer (no fraction, no exponent: declined), as json-c keeps it. */
static bool read_int(Reader *r, VmcgJsonFlatNode *n)
{
	bool neg = false;
	uint64_t v = 0;
	const char *d;

	if (*r->p == '-') {
		neg = true;
		r->p++;
	}
	d = r->p;
	while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
		unsigned digit = (unsigned)(*r->p - '0');

		if (v > (UINT64_MAX - digit) / 10)
			return false;
		v = v * 10 + digit;
		r->p++;
	}
	if (r->p == d || (*d == '0' && r->p - d > 1))
		return false;
	if (r->p < r->end && (*r->p == '.' || *r->p == 'e' || *r->p == 'E'))
		return false;
	if (neg) {
		if (v > (uint64_t)INT64_MAX + 1)
			return false;
		n->type = VMCG_JSON_FLAT_INT;
		n->i = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	} else if (v > (uint64_t)INT64_MAX) {
		n->type = VMCG_JSON_FLAT_UINT;
		n->u = v;
	} else {
		n->type = VMCG_JSON_FLAT_INT;
		n->i = (int64_t)v;
	}
	return true;
}

static bool read_word(Reader *r, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(r->end - r->p) < n || memcmp(r->p, w, n) != 0)
		return false;
	r->p += n;
	return true;
}

static bool read_object(Reader *r, int self, int depth);

static bool read_value(Reader *r, int self, int depth)
{
	VmcgJsonFlatNode *n = &r->f->node[self];

	if (r->p >= r->end)
		return false;
	switch (*r->p) {
	case '{':
		n->type = VMCG_JSON_FLAT_OBJECT;
		return depth < VMCG_JSON_FLAT_MAX_DEPTH && read_object(r, self, depth + 1);
	case '"':
		n->type = VMCG_JSON_FLAT_STRING;
		return read_string(r, &n->str, &n->len, &n->escaped);
	case 't':
		n->type = VMCG_JSON_FLAT_OTHER;
		return read_word(r, "true");
	case 'f':
		n->type = VMCG_JSON_FLAT_OTHER;
		return read_word(r, "false");
	case 'n':
		n->type = VMCG_JSON_FLAT_OTHER;
		return read_word(r, "null");
	default:
		if (*r->p == '-' || (*r->p >= '0' && *r->p <= '9'))
			return read_int(r, n);
		return false; /* an array, or not JSON */
	}
}

/* r->p at the object's '{'; node @self is the object. */
static bool read_object(Reader *r, int self, int depth)
{
	r->p++;
	skip_ws(r);
	if (r->p < r->end && *r->p == '}') {
		r->p++;
		return true;
	}
	for (;;) {
		VmcgJsonFlat *f = r->f;
		const char *key;
		size_t key_len;
		bool esc;
		int m;

		if (r->p >= r->end || *r->p != '"' || !read_string(r, &key, &key_len, &esc) || esc)
			return false;
		/* json-c keeps the last of a key given twice: declined instead. */
		for (int k = self + 1; k < f->n; k++)
			if (f->node[k].parent == self && f->node[k].key_len == key_len &&
			    memcmp(f->node[k].key, key, key_len) == 0)
				return false;
		if (f->n >= VMCG_JSON_FLAT_MAX_NODES)
			return false;
		m = f->n++;
		f->node[m] = (VmcgJsonFlatNode){ .parent = self, .key = key, .key_len = key_len };
		skip_ws(r);
		if (r->p >= r->end || *r->p != ':')
			return false;
		r->p++;
		skip_ws(r);
		if (!read_value(r, m, depth))
			return false;
		skip_ws(r);
		if (r->p >= r->end)
			return false;
		if (*r->p == '}') {
			r->p++;
			return true;
		}
		if (*r->p != ',')
			return false;
		r->p++;
		skip_ws(r);
	}
}

/* The object at r->p (its '{'), its root node reset first. */
static bool read_root(Reader *r)
{
	r->f->n = 1;
	r->f->node[0] = (VmcgJsonFlatNode){ .type = VMCG_JSON_FLAT_OBJECT, .parent = -1 };
	return r->p < r->end && *r->p == '{' && read_object(r, 0, 1);
}

bool vmcg_json_flat_parse(const char *text, size_t len, VmcgJsonFlat *ret)
{
	Reader r = { .p = text, .end = text + len, .f = ret };

	skip_ws(&r);
	if (!read_root(&r))
		return false;
	skip_ws(&r);
	return r.p == r.end;
}

bool vmcg_json_flat_parse_plain(const char *text, size_t len, size_t *ret_len, VmcgJsonFlat *ret)
{
	Reader r = { .p = text, .end = text + len, .f = ret, .plain = true };

	if (!read_root(&r))
		return false;
	*ret_len = (size_t)(r.p - text);
	return true;
}

int vmcg_json_flat_get(const VmcgJsonFlat *f, int obj, const char *key)
{
	size_t len = strlen(key);

	for (int k = obj + 1; k < f->n; k++)
		if (f->node[k].parent == obj && f->node[k].key_len == len &&
		    memcmp(f->node[k].key, key, len) == 0)
			return k;
	return -1;
}

int vmcg_json_flat_get_type(const VmcgJsonFlat *f, int obj, const char *key, VmcgJsonFlatType type)
{
	int k = vmcg_json_flat_get(f, obj, key);

	return k >= 0 && f->node[k].type == type ? k : -1;
}

int vmcg_json_flat_count(const VmcgJsonFlat *f, int obj)
{
	int n = 0;

	for (int k = obj + 1; k < f->n; k++)
		n += f->node[k].parent == obj;
	return n;
}
