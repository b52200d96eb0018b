// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * PSI-style memory stall accounting: the kernel's kernel/sched/psi.c for one
 * resource, with a group's vCPUs as its tasks.
 *
 * The kernel keeps per-CPU state and weights each CPU's stall time by its
 * non-idle time when it aggregates (collect_percpu_times()). A group's vCPUs
 * are tracked here as one set, as if they shared one runqueue: some and
 * full follow directly from the counts (see psi.h), and there is nothing
 * to weight. Everything from the totals on, update_averages(),
 * calc_avgs(), calc_load() and psi_show(), is the kernel's arithmetic, in
 * usec instead of nsec (only ratios of times enter the averages).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vmcg/psi.h"

/*
 * include/linux/sched/loadavg.h: 11 fractional bits. The averages hold a
 * percentage in this fixed point, so 100 % is 100 << FSHIFT and the
 * largest product in calc_load() stays far inside 64 bits.
 */
#define FSHIFT 11
#define FIXED_1 (1 << FSHIFT)
#define LOAD_INT(x) ((x) >> FSHIFT)
#define LOAD_FRAC(x) LOAD_INT(((x) & (FIXED_1 - 1)) * 100)

/*
 * kernel/sched/psi.c: 1/exp(2s/10s), 1/exp(2s/60s), 1/exp(2s/300s) in
 * FSHIFT fixed point, i.e. the decay of one VMCG_PSI_PERIOD_USEC period.
 */
#define EXP_10s 1677
#define EXP_60s 1981
#define EXP_300s 2034

static const uint64_t psi_exp[3] = { EXP_10s, EXP_60s, EXP_300s };

/*
 * include/linux/sched/loadavg.h, calc_load(): a1 = a0 * e + a * (1 - e).
 * Rounds up while rising, so a constant input is reached rather than
 * approached forever, and down while falling, so it decays to 0.
 */
static uint64_t calc_load(uint64_t load, uint64_t exp, uint64_t active)
{
	uint64_t newload;

	newload = load * exp + active * (FIXED_1 - exp);
	if (active >= load)
		newload += FIXED_1 - 1;

	return newload / FIXED_1;
}

/*
 * kernel/sched/loadavg.c, fixed_power_int(): x^n in @frac_bits fixed
 * point, by squaring, rounding each product to nearest. With x <= FIXED_1
 * every product fits in 32 bits.
 */
static uint64_t fixed_power_int(uint64_t x, unsigned int frac_bits, uint64_t n)
{
	uint64_t result = UINT64_C(1) << frac_bits;

	if (n) {
		for (;;) {
			if (n & 1) {
				result *= x;
				result += UINT64_C(1) << (frac_bits - 1);
				result >>= frac_bits;
			}
			n >>= 1;
			if (!n)
				break;
			x *= x;
			x += UINT64_C(1) << (frac_bits - 1);
			x >>= frac_bits;
		}
	}

	return result;
}

/*
 * kernel/sched/loadavg.c, calc_load_n(): @n periods of a constant @active
 * in one step, an = a0 * e^n + a * (1 - e^n). The kernel's @n is an
 * unsigned int; taking 64 bits here only avoids a truncation that could
 * turn a very long gap into a short one.
 */
static uint64_t calc_load_n(uint64_t load, uint64_t exp, uint64_t active, uint64_t n)
{
	return calc_load(load, fixed_power_int(exp, FSHIFT, n), active);
}

/* kernel/sched/psi.c, calc_avgs(): decay missed periods, then sample. */
static void calc_avgs(uint64_t avg[3], uint64_t missed_periods, uint64_t time, uint64_t period)
{
	uint64_t pct;
	int w;

	/* Periods nobody looked at had no stall that was not carried over. */
	if (missed_periods)
		for (w = 0; w < 3; w++)
			avg[w] = calc_load_n(avg[w], psi_exp[w], 0, missed_periods);

	/* @time <= @period (update_averages() clamps), so pct <= 100. */
	pct = time * 100 / period;
	pct *= FIXED_1;
	for (w = 0; w < 3; w++)
		avg[w] = calc_load(avg[w], psi_exp[w], pct);
}

/*
 * kernel/sched/psi.c, update_averages(): fold the stall time since the
 * last update into the averages. Called only once @now_usec has reached
 * avg_next_update.
 */
static void update_averages(VmcgPsi *psi, uint64_t now_usec)
{
	uint64_t missed_periods = 0;
	uint64_t expires, period;
	int s;

	expires = psi->avg_next_update_usec;
	if (now_usec - expires >= VMCG_PSI_PERIOD_USEC)
		missed_periods = (now_usec - expires) / VMCG_PSI_PERIOD_USEC;

	/*
	 * As the kernel: the schedule stays on fixed period boundaries so a
	 * late caller does not make the periods drift, but the sample is
	 * taken over the time that actually passed since the last update,
	 * less the missed periods, which are decayed as zero samples.
	 */
	psi->avg_next_update_usec = expires + (1 + missed_periods) * VMCG_PSI_PERIOD_USEC;
	period = now_usec - (psi->avg_last_update_usec + missed_periods * VMCG_PSI_PERIOD_USEC);
	psi->avg_last_update_usec = now_usec;

	for (s = 0; s < _VMCG_PSI_STATE_COUNT; s++) {
		uint64_t sample;

		sample = psi->total_usec[s] - psi->avg_total_usec[s];
		/*
		 * As the kernel: a sample longer than the period (in the
		 * kernel, deltas slipping across a period boundary; here also
		 * vmcg_psi_add_stall() or time bunched up by missed periods)
		 * is clamped so no average reads above 100 %, and the excess
		 * stays in total - avg_total for the following periods: the
		 * pressure is reported late, never dropped.
		 */
		if (sample > period)
			sample = period;
		psi->avg_total_usec[s] += sample;
		calc_avgs(psi->avg[s], missed_periods, sample, period);
	}
}

/*
 * kernel/sched/psi.c, record_times(): charge the time since the last state
 * change to the states that held during it. stalled <= active always, so
 * "every non-idle vCPU stalled" is stalled == active.
 */
static void psi_record_times(VmcgPsi *psi, uint64_t now_usec)
{
	uint64_t delta = now_usec - psi->state_start_usec;

	psi->state_start_usec = now_usec;

	if (psi->nr_stalled) {
		psi->total_usec[VMCG_PSI_SOME] += delta;
		if (psi->nr_stalled == psi->nr_active)
			psi->total_usec[VMCG_PSI_FULL] += delta;
	}
}

void vmcg_psi_init(VmcgPsi *psi, uint64_t now_usec)
{
	memset(psi, 0, sizeof(*psi));
	/* As the kernel's group_init(): the first period starts now. */
	psi->state_start_usec = now_usec;
	psi->avg_last_update_usec = now_usec;
	psi->avg_next_update_usec = now_usec + VMCG_PSI_PERIOD_USEC;
	psi->started = true;
}

/*
 * A zero-filled VmcgPsi (a group allocated with calloc and never passed
 * to vmcg_psi_init()) starts its clock at its first use instead of at time
 * 0, which would otherwise turn into a huge first state and a burst of
 * missed periods.
 */
static void psi_start(VmcgPsi *psi, uint64_t now_usec)
{
	if (!psi->started)
		vmcg_psi_init(psi, now_usec);
}

int vmcg_psi_change(VmcgPsi *psi, uint64_t now_usec, int delta_active, int delta_stalled)
{
	int64_t active, stalled;

	psi_start(psi, now_usec);

	/*
	 * Everything is checked before anything is written: the kernel only
	 * complains about an underflow (psi_bug) and carries on, but here
	 * the counts come from the daemon's view of the guest, and a wrong
	 * one is refused with the state left intact.
	 */
	if (now_usec < psi->state_start_usec)
		return -EINVAL;

	active = (int64_t)psi->nr_active + delta_active;
	stalled = (int64_t)psi->nr_stalled + delta_stalled;
	if (active < 0 || stalled < 0 || stalled > active || active > UINT32_MAX)
		return -EINVAL;

	psi_record_times(psi, now_usec);
	psi->nr_active = (uint32_t)active;
	psi->nr_stalled = (uint32_t)stalled;

	return 0;
}

int vmcg_psi_add_stall(VmcgPsi *psi, uint64_t some_usec, uint64_t full_usec)
{
	/* full is a subset of some: a full stall is always a some stall. */
	if (full_usec > some_usec)
		return -EINVAL;
	/* full <= some and total[FULL] <= total[SOME], so one check covers both. */
	if (some_usec > UINT64_MAX - psi->total_usec[VMCG_PSI_SOME])
		return -EINVAL;

	psi->total_usec[VMCG_PSI_SOME] += some_usec;
	psi->total_usec[VMCG_PSI_FULL] += full_usec;

	return 0;
}

void vmcg_psi_update(VmcgPsi *psi, uint64_t now_usec)
{
	psi_start(psi, now_usec);

	/*
	 * A clock that went backwards has nothing to add; folding it would
	 * charge a wrapped delta. The next call with a sane time catches up.
	 */
	if (now_usec < psi->state_start_usec)
		return;

	/* As psi_show(): totals first, including the state still ongoing. */
	psi_record_times(psi, now_usec);

	if (now_usec >= psi->avg_next_update_usec)
		update_averages(psi, now_usec);
}

/* Percent * 100, the same digits psi_show() prints as "%lu.%02lu". */
static uint32_t psi_avg_pct100(uint64_t avg)
{
	return (uint32_t)(LOAD_INT(avg) * 100 + LOAD_FRAC(avg));
}

void vmcg_psi_read(const VmcgPsi *psi, VmcgPsiState state, uint32_t ret_avg[3],
		   uint64_t *ret_total_usec)
{
	int w;

	for (w = 0; w < 3; w++)
		ret_avg[w] = psi_avg_pct100(psi->avg[state][w]);
	*ret_total_usec = psi->total_usec[state];
}

int vmcg_psi_format(const VmcgPsi *psi, char *buf, size_t size)
{
	size_t len = 0;
	int s;

	for (s = 0; s < _VMCG_PSI_STATE_COUNT; s++) {
		const uint64_t *avg = psi->avg[s];
		int n;

		/* psi_show()'s format; the kernel's total is nsec / 1000. */
		n = snprintf(
			size > len ? buf + len : NULL, size > len ? size - len : 0,
			"%s avg10=%llu.%02llu avg60=%llu.%02llu avg300=%llu.%02llu total=%llu\n",
			s == VMCG_PSI_FULL ? "full" : "some", (unsigned long long)LOAD_INT(avg[0]),
			(unsigned long long)LOAD_FRAC(avg[0]), (unsigned long long)LOAD_INT(avg[1]),
			(unsigned long long)LOAD_FRAC(avg[1]), (unsigned long long)LOAD_INT(avg[2]),
			(unsigned long long)LOAD_FRAC(avg[2]),
			(unsigned long long)psi->total_usec[s]);
		/* Fails only on an encoding error, impossible in ASCII. */
		if (n < 0)
			return -ENOSPC;
		len += (size_t)n;
	}

	/* snprintf() has already truncated and terminated what did fit. */
	if (len >= size)
		return -ENOSPC;

	return (int)len;
}
