// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Memory sizes: parse and format (see include/vmcg/size.h for the syntax).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "vmcg/size.h"

/* Unit letters by power of 1024: K is 2^10 ... E is 2^60 (as memparse()). */
static const char unit_letters[] = "KMGTPE";

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static char ascii_upper(char c)
{
	return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

/*
 * The unit at @p, or -1: its shift (0 for a plain "B") and the position
 * after it in *@ret_end.
 */
static int parse_unit(const char *p, const char **ret_end)
{
	const char *l = strchr(unit_letters, ascii_upper(*p));
	int shift;

	if (*p == '\0')
		return -1;
	if (ascii_upper(*p) == 'B') {
		*ret_end = p + 1;
		return 0;
	}
	if (!l)
		return -1;
	shift = (int)(l - unit_letters + 1) * 10;
	p++;
	if (ascii_upper(p[0]) == 'I' && ascii_upper(p[1]) == 'B')
		p += 2;
	else if (ascii_upper(p[0]) == 'B')
		p++;
	*ret_end = p;
	return shift;
}

/*
 * floor(0.<digits> * 2^@shift) for @n digits at @frac, exactly, with any
 * number of digits: Horner's scheme from the last digit, where
 * floor((d * m + x) / 10) = floor((d * m + floor(x)) / 10) for integers
 * d, m and real x >= 0, so the remainders can be dropped at every step.
 * acc stays below 2^@shift and d * 2^@shift <= 9 * 2^60 fits.
 */
uint64_t vmcg_decimal_fraction(const VmcgDecimal *d, uint64_t unit)
{
	uint64_t acc = 0;

	for (size_t n = d->frac ? d->frac_len : 0; n-- > 0;)
		acc = ((uint64_t)(d->frac[n] - '0') * unit + acc) / 10;
	return acc;
}

int vmcg_decimal_parse(const char *s, VmcgDecimal *ret, const char **ret_end)
{
	const char *p = s;

	*ret = (VmcgDecimal){ 0 };
	if (!is_digit(*p))
		return -EINVAL;
	for (; is_digit(*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (ret->whole > (UINT64_MAX - d) / 10)
			ret->overflow = true;
		else
			ret->whole = ret->whole * 10 + d;
	}
	if (*p == '.') {
		ret->frac = ++p;
		while (is_digit(*p))
			p++;
		ret->frac_len = (size_t)(p - ret->frac);
		if (ret->frac_len == 0)
			return -EINVAL; /* "1." or "1.G" */
	}
	*ret_end = p;
	return 0;
}

int vmcg_size_parse(const char *s, uint64_t *ret_bytes)
{
	const char *p;
	VmcgDecimal d;
	uint64_t bytes;
	int shift = 0;

	if (!s)
		return -EINVAL;
	if (strcmp(s, "max") == 0) {
		*ret_bytes = VMCG_SIZE_MAX;
		return 0;
	}

	/* The whole syntax first, so that garbage is never called a range error. */
	if (vmcg_decimal_parse(s, &d, &p) < 0)
		return -EINVAL;
	if (*p != '\0') {
		shift = parse_unit(p, &p);
		if (shift < 0 || *p != '\0')
			return -EINVAL;
	}
	if (d.frac && shift == 0)
		return -EINVAL; /* bytes are whole */

	if (d.overflow || d.whole > (VMCG_SIZE_LIMIT >> shift))
		return -ERANGE;
	bytes = d.whole << shift;
	if (d.frac) {
		uint64_t part = vmcg_decimal_fraction(&d, UINT64_C(1) << shift);

		if (bytes > VMCG_SIZE_LIMIT - part)
			return -ERANGE;
		bytes += part;
	}
	*ret_bytes = bytes;
	return 0;
}

static int emit(char *buf, size_t size, int n)
{
	if (n < 0 || (size_t)n >= size) {
		if (size > 0)
			buf[0] = '\0';
		return -ENOSPC;
	}
	return 0;
}

int vmcg_size_format(uint64_t bytes, char *buf, size_t size)
{
	if (bytes == VMCG_SIZE_MAX)
		return emit(buf, size, snprintf(buf, size, "max"));
	for (int i = (int)sizeof(unit_letters) - 2; i >= 0 && bytes; i--) {
		int shift = (i + 1) * 10;

		if ((bytes & ((UINT64_C(1) << shift) - 1)) == 0)
			return emit(buf, size,
				    snprintf(buf, size, "%" PRIu64 "%c", bytes >> shift,
					     unit_letters[i]));
	}
	return emit(buf, size, snprintf(buf, size, "%" PRIu64, bytes));
}

int vmcg_size_format_human(uint64_t bytes, char *buf, size_t size)
{
	int i = 0;
	uint64_t tenths;

	if (bytes == VMCG_SIZE_MAX)
		return emit(buf, size, snprintf(buf, size, "max"));
	if (bytes < 1024)
		return emit(buf, size, snprintf(buf, size, "%" PRIu64, bytes));

	/* The largest unit not above @bytes ... */
	while (i + 1 < (int)sizeof(unit_letters) - 1 && bytes >> ((i + 2) * 10))
		i++;
	for (;;) {
		int shift = (i + 1) * 10;
		uint64_t unit = UINT64_C(1) << shift;
		uint64_t rem = bytes & (unit - 1);

		/* ... in tenths, rounded half up; rem * 10 < 10 * 2^60 fits. */
		tenths = (bytes >> shift) * 10 + (rem * 10 + unit / 2) / unit;
		/* ... unless rounding made it 1024 of this unit: "1M", not "1024K". */
		if (tenths < 10240 || i + 1 >= (int)sizeof(unit_letters) - 1)
			break;
		i++;
	}
	if (tenths % 10 == 0)
		return emit(buf, size,
			    snprintf(buf, size, "%" PRIu64 "%c", tenths / 10, unit_letters[i]));
	return emit(buf, size,
		    snprintf(buf, size, "%" PRIu64 ".%u%c", tenths / 10, (unsigned)(tenths % 10),
			     unit_letters[i]));
}
