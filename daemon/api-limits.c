// SPDX-License-Identifier: GPL-2.0-or-later
/* The API server's limits as pure decisions: see api-limits.h. */
#include <errno.h>

#include "api-limits.h"

VmcgApiAdmit vmcg_api_admit(const VmcgApiConnCounts *c, bool privileged)
{
	if (c->total >= VMCG_API_CONNECTIONS_MAX)
		return VMCG_API_REFUSE_FULL;
	if (privileged)
		return VMCG_API_ADMIT;
	if (c->unprivileged >= VMCG_API_CONNECTIONS_MAX - VMCG_API_CONNECTIONS_RESERVED)
		return VMCG_API_REFUSE_SHARED;
	if (c->same_uid >= VMCG_API_CONNECTIONS_PER_UID)
		return VMCG_API_REFUSE_PER_UID;
	return VMCG_API_ADMIT;
}

const char *vmcg_api_admit_str(VmcgApiAdmit a)
{
	switch (a) {
	case VMCG_API_ADMIT:
		return "admitted";
	case VMCG_API_REFUSE_FULL:
		return "too many connections";
	case VMCG_API_REFUSE_SHARED:
		return "too many connections from users who may not write (the rest is reserved)";
	case VMCG_API_REFUSE_PER_UID:
		return "too many connections from this user";
	}
	return "refused";
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

int vmcg_api_content_length(const char *const *values, size_t n, bool chunked, uint64_t limit,
			    uint64_t *ret_len)
{
	const char *p;
	uint64_t len = 0;
	bool over = false;

	if (n == 0 && chunked)
		return -ENOTSUP;
	if (n == 0) {
		*ret_len = 0;
		return 0;
	}
	if (n > 1 || chunked)
		return -EINVAL;
	p = values[0];
	while (is_blank(*p))
		p++;
	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		/* Once over the limit the value no longer matters, only its syntax. */
		if (!over && (len > limit / 10 || d > limit - len * 10))
			over = true;
		if (!over)
			len = len * 10 + d;
	}
	while (is_blank(*p))
		p++;
	if (*p)
		return -EINVAL;
	if (over || len > limit)
		return -EFBIG;
	*ret_len = len;
	return 0;
}

unsigned vmcg_api_backoff_next(unsigned prev_msec)
{
	if (prev_msec < VMCG_API_BACKOFF_MIN_MSEC)
		return VMCG_API_BACKOFF_MIN_MSEC;
	if (prev_msec >= VMCG_API_BACKOFF_MAX_MSEC / 2)
		return VMCG_API_BACKOFF_MAX_MSEC;
	return prev_msec * 2;
}
