// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fuzz target of the libvirt domain XML parser (daemon/libvirt-xml.c): what
 * libvirt hands vmcgd for a domain, with the <metadata> that a tenant may
 * write through virDomainSetMetadata().
 *
 * Per input: the parse either fails with one line of G_MARKUP_ERROR or
 * G_IO_ERROR_INVALID_DATA and *ret left zero, or succeeds with a result
 * that keeps libvirt-xml.h's promises: a name, a canonical lowercase UUID,
 * memory in (0, VMCG_SIZE_LIMIT], currentMemory at most memory, an absolute
 * channel path; either accepted metadata without problems (a valid group,
 * a floor within memory or "max", an oom-priority in range, knobs in
 * order) or problems (at most VMCG_DOMAIN_XML_PROBLEMS_MAX + 1, one line
 * each) and zero metadata. The same input parses the same way twice.
 *
 * To fuzz: clang -fsanitize=fuzzer,address,undefined -DVMCG_LIBFUZZER
 * -D_GNU_SOURCE -Idaemon -Iinclude daemon/libvirt-xml.c lib/group.c
 * lib/size.c ... tests/fuzz/fuzz-libvirt-xml.c $(pkg-config --cflags --libs
 * gio-2.0), or link the build's libvmcgd.a and libvmcg.a, then run it on a
 * copy of corpus/libvirt-xml (with -max_len=65536: the interesting inputs
 * are small, the size limit has its unit test).
 */
#include <stdint.h>
#include <string.h>

#include <gio/gio.h>
#include <glib.h>

#include "fuzz-check.h"
#include "libvirt-xml.h"
#include "vmcg/group.h"
#include "vmcg/oom.h"
#include "vmcg/size.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool is_zero(const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		if (c[i])
			return false;
	return true;
}

static void check_uuid(const char *u)
{
	CHECK(strlen(u) == 36);
	for (size_t i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			CHECK(u[i] == '-');
		else
			CHECK(g_ascii_isdigit(u[i]) || (u[i] >= 'a' && u[i] <= 'f'));
	}
}

static void check_meta(const VmcgDomainXml *x)
{
	const VmcgDomainMeta *m = &x->meta;
	const bool has[] = { m->has_min, m->has_low, m->has_high, m->has_max };
	const uint64_t v[] = { m->min, m->low, m->high, m->max };

	if (!x->has_meta) {
		CHECK(is_zero(m, sizeof(*m)));
		return;
	}
	CHECK(x->problems->len == 0);
	CHECK(!m->group || vmcg_path_validate(m->group) == 0);
	CHECK(m->has_floor || m->floor == 0);
	CHECK(m->floor <= x->memory || m->floor == VMCG_SIZE_MAX);
	CHECK(m->oom_priority >= VMCG_OOM_PRIORITY_MIN && m->oom_priority <= VMCG_OOM_PRIORITY_MAX);
	for (int i = 0; i < 4; i++) {
		CHECK(has[i] || v[i] == 0);
		CHECK(v[i] <= VMCG_SIZE_LIMIT || v[i] == VMCG_SIZE_MAX);
		for (int j = i + 1; j < 4; j++)
			CHECK(!has[i] || !has[j] || v[i] <= v[j]);
	}
}

static void check_result(const VmcgDomainXml *x)
{
	CHECK(x->name && *x->name);
	check_uuid(x->uuid);
	CHECK(x->id >= -1 && x->id <= G_MAXINT32);
	CHECK(x->memory > 0 && x->memory <= VMCG_SIZE_LIMIT);
	CHECK(x->current_memory <= x->memory);
	CHECK(x->min_guarantee <= VMCG_SIZE_LIMIT);
	CHECK(!x->channel ||
	      (x->channel[0] == '/' && strlen(x->channel) <= VMCG_DOMAIN_XML_TEXT_MAX));
	CHECK(x->problems);
	CHECK(x->problems->len <= VMCG_DOMAIN_XML_PROBLEMS_MAX + 1);
	for (guint i = 0; i < x->problems->len; i++) {
		const char *msg = g_ptr_array_index(x->problems, i);

		CHECK(msg && *msg && !strchr(msg, '\n'));
	}
	if (x->problems->len)
		CHECK(!x->has_meta);
	check_meta(x);
}

static void check_same(const VmcgDomainXml *a, const VmcgDomainXml *b)
{
	CHECK(strcmp(a->name, b->name) == 0);
	CHECK(strcmp(a->uuid, b->uuid) == 0);
	CHECK(a->memory == b->memory && a->current_memory == b->current_memory);
	CHECK(g_strcmp0(a->channel, b->channel) == 0);
	CHECK(a->has_meta == b->has_meta);
	CHECK(g_strcmp0(a->meta.group, b->meta.group) == 0);
	CHECK(a->meta.floor == b->meta.floor && a->meta.max == b->meta.max);
	CHECK(a->problems->len == b->problems->len);
	for (guint i = 0; i < a->problems->len; i++)
		CHECK(strcmp(g_ptr_array_index(a->problems, i),
			     g_ptr_array_index(b->problems, i)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	VmcgDomainXml x, again;
	GError *err = NULL;
	bool ok;

	memset(&x, 0xa5, sizeof(x)); /* overwritten, never read: valgrind would tell */
	ok = vmcg_domain_xml_parse((const char *)data, size, &x, &err);
	if (!ok) {
		CHECK(is_zero(&x, sizeof(x)));
		CHECK(err && err->message && g_str_has_prefix(err->message, "domain XML: "));
		CHECK(err->domain == G_MARKUP_ERROR ||
		      g_error_matches(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA));
		CHECK(!strchr(err->message, '\n'));
		g_error_free(err);
		vmcg_domain_xml_clear(&x);
		return 0;
	}
	CHECK(!err);
	check_result(&x);
	CHECK(vmcg_domain_xml_parse((const char *)data, size, &again, &err));
	check_same(&x, &again);
	vmcg_domain_xml_clear(&again);
	vmcg_domain_xml_clear(&x);
	vmcg_domain_xml_clear(&x);
	return 0;
}
