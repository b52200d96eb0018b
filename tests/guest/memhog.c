// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * memhog: hold N MiB of anonymous, unreclaimable memory in the test guest.
 *
 * The guest has no swap, so anonymous memory that is touched cannot be
 * reclaimed: it is the guest-side model of a tenant that really uses its
 * RAM. memhog maps N MiB, writes to every page (so each one is backed by a
 * guest page and, through QEMU, by a host page), reports on stdout, then
 * holds the memory until its stdin reaches end of file or it is sent
 * SIGTERM, SIGINT or SIGHUP. It then unmaps the memory, says so and exits 0.
 *
 * Usage: memhog MIB [DELAY_MS]
 *
 * With DELAY_MS, memhog maps the memory and waits that long before it
 * touches the first page: a harness can start it, then take away what the
 * touching needs (vmcgd, in hook mode), and see the touching wait.
 *
 * Output, one line each, flushed at once so a harness can wait for it:
 *   memhog: pid PID holding MIB MiB (PAGES pages touched in MS ms)
 *   memhog: pid PID freed MIB MiB
 * Exit status: 0 on success, 1 if the memory could not be had, 2 on bad usage.
 *
 * Built static on the host (gcc -static -O2) and copied into the guest's
 * initramfs by build-guest.sh, so it needs nothing from the guest.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* Largest request: far above any test guest, low enough that MiB << 20 fits. */
#define MEMHOG_MAX_MIB (1024u * 1024u)
/* Longest delay before touching: an hour. */
#define MEMHOG_MAX_DELAY_MS 3600000u

static volatile sig_atomic_t memhog_stop;

static void memhog_on_signal(int sig)
{
	(void)sig;
	memhog_stop = 1;
}

static uint64_t memhog_now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/*
 * Returns 0 and sets *ret_mib for a decimal number of MiB in 1..MEMHOG_MAX_MIB,
 * -EINVAL otherwise.
 */
static int memhog_parse_mib(const char *s, size_t *ret_mib)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v == 0 || v > MEMHOG_MAX_MIB)
		return -EINVAL;
	*ret_mib = (size_t)v;
	return 0;
}

/* Returns 0 and sets *ret_ms for a decimal number of ms in 0..MEMHOG_MAX_DELAY_MS, -EINVAL otherwise. */
static int memhog_parse_delay(const char *s, unsigned *ret_ms)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v > MEMHOG_MAX_DELAY_MS)
		return -EINVAL;
	*ret_ms = (unsigned)v;
	return 0;
}

/*
 * Waits until stdin reaches end of file (or fails) or a stop signal arrives.
 * The stop signals are blocked by the caller and unblocked only inside
 * ppoll(), so one that arrives between the check and the wait is not lost.
 */
static void memhog_hold(const sigset_t *waitmask)
{
	struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
	char buf[4096];
	bool watch_stdin = true;

	while (!memhog_stop) {
		int n = ppoll(&pfd, watch_stdin ? 1 : 0, NULL, waitmask);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (pfd.revents & POLLNVAL) {
			/* No stdin at all: only a signal can end the hold. */
			watch_stdin = false;
			continue;
		}
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = read(STDIN_FILENO, buf, sizeof(buf));

			if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
				return;
		}
	}
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = memhog_on_signal };
	sigset_t block, waitmask;
	size_t mib, len, page, off, pages = 0;
	uint64_t t0, t1;
	unsigned char *mem;
	unsigned delay_ms = 0;

	if (argc < 2 || argc > 3 || memhog_parse_mib(argv[1], &mib) < 0 ||
	    (argc == 3 && memhog_parse_delay(argv[2], &delay_ms) < 0)) {
		fprintf(stderr, "usage: memhog MIB (1..%u) [DELAY_MS (0..%u)]\n", MEMHOG_MAX_MIB,
			MEMHOG_MAX_DELAY_MS);
		return 2;
	}

	/* No SA_RESTART: the signal must interrupt ppoll(). */
	sigemptyset(&sa.sa_mask);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &waitmask);
	sigdelset(&waitmask, SIGTERM);
	sigdelset(&waitmask, SIGINT);
	sigdelset(&waitmask, SIGHUP);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* A harness that goes away must not kill us mid-report. */
	signal(SIGPIPE, SIG_IGN);

	len = mib << 20;
	page = (size_t)sysconf(_SC_PAGESIZE);
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		fprintf(stderr, "memhog: mmap %zu MiB: %s\n", mib, strerror(errno));
		return 1;
	}

	/*
	 * A non-zero byte per page: the host must not be able to share or skip
	 * the page (zero-page dedup, KSM), so each touched page costs the host
	 * one page, which is what the tests measure.
	 */
	if (delay_ms) {
		struct timespec ts = { .tv_sec = delay_ms / 1000,
				       .tv_nsec = (delay_ms % 1000) * 1000000L };

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !memhog_stop)
			;
	}
	t0 = memhog_now_usec();
	for (off = 0; off < len; off += page) {
		mem[off] = (unsigned char)(1 + (off / page) % 255);
		pages++;
	}
	t1 = memhog_now_usec();

	printf("memhog: pid %ld holding %zu MiB (%zu pages touched in %" PRIu64 " ms)\n",
	       (long)getpid(), mib, pages, (t1 - t0) / 1000);
	fflush(stdout);

	memhog_hold(&waitmask);

	if (munmap(mem, len) < 0) {
		fprintf(stderr, "memhog: munmap: %s\n", strerror(errno));
		return 1;
	}
	printf("memhog: pid %ld freed %zu MiB\n", (long)getpid(), mib);
	fflush(stdout);
	return 0;
}
