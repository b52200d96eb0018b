/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A flat, allocation-free read of small JSON objects: the fast path for the
 * QMP messages vmcgd reads on every tick (a balloon command's empty return,
 * query-balloon's size, guest statistics, BALLOON_CHANGE). json-c builds a
 * hash table per object and a heap object per value, and that, not the
 * socket, was most of what a reply cost (docs/performance.md).
 *
 * What it reads: an object whose values are integers, strings, objects,
 * true, false or null, nested at most VMCG_JSON_FLAT_MAX_DEPTH deep, with at
 * most VMCG_JSON_FLAT_MAX_NODES values in all. What it declines (returns
 * false): anything else (arrays, fractions and exponents, more values,
 * deeper nesting, a key twice in one object, a key with an escape), and
 * any text that is not JSON. Declining is never an error: the caller then
 * parses the message with json-c, which says what is wrong, so json-c
 * stays the one judge of what is malformed and every error message stays
 * as it was. What it accepts, json-c accepts with the same values
 * (tests/unit/test-json-flat.c and tests/fuzz/fuzz-json-flat.c check both).
 *
 * Meant for text that json-stream.c's lexer let through (valid UTF-8,
 * integers that fit 64 bits), but safe on any bytes. Pure: no I/O, no GLib.
 */
#ifndef VMCG_DAEMON_JSON_FLAT_H
#define VMCG_DAEMON_JSON_FLAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMCG_JSON_FLAT_MAX_NODES 48
#define VMCG_JSON_FLAT_MAX_DEPTH 4

typedef enum {
	VMCG_JSON_FLAT_OBJECT,
	VMCG_JSON_FLAT_INT,  /* fits int64: ->i */
	VMCG_JSON_FLAT_UINT, /* above INT64_MAX: ->u */
	/* ->str, ->len: the bytes between the quotes; ->escaped if they hold a '\' */
	VMCG_JSON_FLAT_STRING,
	VMCG_JSON_FLAT_OTHER, /* true, false, null */
} VmcgJsonFlatType;

typedef struct {
	VmcgJsonFlatType type;
	int parent;	 /* the object it is a member of; -1 for the root */
	const char *key; /* its name in that object (never escaped), ->key_len bytes */
	size_t key_len;
	const char *str;
	size_t len;
	bool escaped;
	int64_t i;
	uint64_t u;
} VmcgJsonFlatNode;

typedef struct {
	VmcgJsonFlatNode node[VMCG_JSON_FLAT_MAX_NODES];
	int n; /* node[0] is the root object */
} VmcgJsonFlat;

/* Read @len bytes (one object, whitespace around it allowed); false: declined. */
bool vmcg_json_flat_parse(const char *text, size_t len, VmcgJsonFlat *ret);

/*
 * The same for one object at @text[0] (its '{'), in the plainest JSON: every
 * string printable ASCII without escapes. *@ret_len: the object's bytes, to
 * its '}' (what follows is not read). The bytes a lexer would check (UTF-8,
 * escapes, control characters) cannot occur in what it accepts; see
 * vmcg_json_stream_next_flat().
 */
bool vmcg_json_flat_parse_plain(const char *text, size_t len, size_t *ret_len, VmcgJsonFlat *ret);

/* The member @key of the object @obj, or -1. */
int vmcg_json_flat_get(const VmcgJsonFlat *f, int obj, const char *key);

/* The member @key of @obj if it is of @type, else -1. */
int vmcg_json_flat_get_type(const VmcgJsonFlat *f, int obj, const char *key, VmcgJsonFlatType type);

/* Members of the object @obj. */
int vmcg_json_flat_count(const VmcgJsonFlat *f, int obj);

#endif
