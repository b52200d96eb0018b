/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Memory sizes as people write them: "512M", "1.5G", "4096", "max".
 *
 * One syntax for the config file, the API and the CLI, so a value copied
 * from one to another means the same thing everywhere:
 *
 *   size   = "max" | digits [ "." digits ] [ unit ]
 *   unit   = ( "K" | "M" | "G" | "T" | "P" | "E" ) [ "B" | "iB" ]  ; powers of 1024
 *          | "B"                                                  ; bytes
 *
 * - Units are powers of 1024 and case-insensitive: "1k" = "1K" = "1KB" =
 *   "1KiB" = 1024, as the kernel's memparse() reads cgroup files. There is
 *   no decimal (1000) unit: memory is sized in binary units, and "1KB"
 *   meaning 1000 would make "1K" and "1KB" differ by 2.4%.
 * - Digits are always decimal: "010" is ten (memparse would read octal,
 *   and "0x10" hex; nobody writes sizes that way on purpose).
 * - A fraction needs a unit: "1.5G" is 1610612736 bytes; "1.5" and "1.5B"
 *   are errors. Bytes below one are truncated ("0.1K" is 102): the caller
 *   rounds to pages anyway. memparse() has no fractions, but a config
 *   file reads better with "1.5G" than "1536M".
 * - "max" (lower case only, as in cgroup files) is VMCG_SIZE_MAX.
 * - Nothing else: no sign, no whitespace anywhere (callers trim: GKeyFile
 *   strips around '=', JSON strings are exact), no exponent, no separators.
 *
 * The pure C11 half of libvmcg: no GLib, no allocation, no locale
 * (isdigit() and strtoull() are not used because they depend on it).
 */
#ifndef VMCG_SIZE_H
#define VMCG_SIZE_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmcg/counter.h"

/* "max": unlimited. Never a real size. */
#define VMCG_SIZE_MAX UINT64_MAX

/*
 * The largest size vmcg_size_parse() accepts: VMCG_PAGES_MAX pages (just
 * under 8 EiB). Anything at or above it means "no limit" to the engine
 * anyway, so a larger number is a mistake (a missing unit on the wrong
 * side, an extra digit) and is reported as one. Rounding any accepted
 * size up to whole pages stays at or below VMCG_PAGES_MAX.
 */
#define VMCG_SIZE_LIMIT (VMCG_PAGES_MAX << VMCG_PAGE_SHIFT)

/* A buffer of this size holds any output of the vmcg_size_format*(): 20 digits and a NUL. */
#define VMCG_SIZE_STRLEN 24

/**
 * vmcg_size_parse() - parse a size (see the syntax above)
 * @s: NUL-terminated string
 * @ret_bytes: the size in bytes, or VMCG_SIZE_MAX for "max"; set only on success
 *
 * Syntax errors take precedence over range errors ("99999999999999999999X"
 * is -EINVAL).
 * Returns 0, -EINVAL (NULL, empty, sign, whitespace, unknown unit, a
 * fraction without a unit, any other garbage), -ERANGE (above
 * VMCG_SIZE_LIMIT, including values that overflow 64 bits).
 */
int vmcg_size_parse(const char *s, uint64_t *ret_bytes);

/**
 * vmcg_size_format() - the exact, shortest-unit form of a size
 * @bytes: a size, or VMCG_SIZE_MAX
 * @buf: output, NUL-terminated
 * @size: size of @buf; VMCG_SIZE_STRLEN always suffices
 *
 * Uses the largest unit that divides @bytes exactly: 536870912 is "512M",
 * 1610612736 is "1536M", 4097 is "4097", 0 is "0", VMCG_SIZE_MAX is "max".
 * vmcg_size_parse() of the output gives @bytes back for every size it
 * accepts (every size up to VMCG_SIZE_LIMIT, and "max").
 * Returns 0 or -ENOSPC (@buf too small; @buf is then an empty string if
 * @size > 0).
 */
int vmcg_size_format(uint64_t bytes, char *buf, size_t size);

/**
 * vmcg_size_format_human() - an approximate size for people to read
 * @bytes: a size, or VMCG_SIZE_MAX
 *
 * Below 1K exact ("512"); otherwise the largest unit that is not more than
 * @bytes, rounded to one decimal, which is dropped when it is 0: "1.5G",
 * "4K" for 4097, "1M" for 1048525 (1023.95K rounds up into the next unit),
 * "max". Parsing the output gives a size within 5% of @bytes, not
 * @bytes: use vmcg_size_format() for anything that is read back.
 * Returns 0 or -ENOSPC, as vmcg_size_format().
 */
int vmcg_size_format_human(uint64_t bytes, char *buf, size_t size);

/*
 * The "digits [ . digits ]" number that sizes and durations (the daemon's
 * config) share. Digits are decimal; the whole part saturates with
 * @overflow set, so that a caller can report a range error only after the
 * rest of the syntax checked out.
 */
typedef struct VmcgDecimal {
	uint64_t whole;
	bool overflow;
	const char *frac; /* the digits after '.', or NULL */
	size_t frac_len;
} VmcgDecimal;

/** vmcg_decimal_parse() - 0 and *@ret_end past the number, or -EINVAL. */
int vmcg_decimal_parse(const char *s, VmcgDecimal *ret, const char **ret_end);

/*
 * vmcg_decimal_fraction() - floor(0.<frac> x @unit), exactly: digits are
 * folded in from the last, (d * unit + acc) / 10 at each step, since
 * floor((d + x) / 10) = floor((d + floor(x)) / 10) for integers d and real
 * x >= 0. Exact for @unit <= 2^60 (9 x 2^60 fits in 64 bits).
 */
uint64_t vmcg_decimal_fraction(const VmcgDecimal *d, uint64_t unit);

#endif
