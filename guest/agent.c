// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmcg-guest-agent: the guest side of the pressure channel
 * (docs/guest-channel.md, docs/guest-agent.md).
 *
 * One thread, one poll() loop, every descriptor non-blocking: the port to
 * the host, the subscribers' listening socket, up to SUBSCRIBERS_MAX
 * subscribers, and a signalfd (SIGTERM, SIGINT, SIGCHLD). Nothing the agent
 * writes may block it: a host that does not read loses messages (counted),
 * a subscriber that does not read is dropped. The decisions that can be
 * tested alone (parsing, formatting, the config) are in agent-proto.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent-proto.h"

#ifndef VMCG_VERSION
#define VMCG_VERSION "unknown"
#endif

#define PORT_NAME "org.vmcg.pressure.0"
#define DEFAULT_CONFIG "/etc/vmcg/guest-agent.conf"
#define DEFAULT_RUN_DIR "/run/vmcg"

/* 64 subscribers: a few per guest service is plenty; each costs a pollfd. */
#define SUBSCRIBERS_MAX 64
/*
 * How often the agent looks for a missing port (the brief's 1 s) and for a
 * host that went away to come back: the port reports POLLHUP for as long
 * as the host is not connected, so it cannot stay in the poll set.
 */
#define PORT_RETRY_MS 1000
#define HOST_RECHECK_MS 200
/* Drops are logged at most once per 10 s, as one summary line. */
#define DROP_LOG_MS 10000
/*
 * A host hello is answered only if ours has not gone out since the host's
 * last one (docs/guest-channel.md), so two honest sides never ping-pong;
 * a broken host must not make the agent spin either: at most 4 answers a
 * second, more than any honest reconnect needs.
 */
#define HELLO_ANSWERS_PER_SEC 4
/*
 * Level changes are logged, at most 10 per 10 s: a host that flips the
 * level thousands of times must not fill the guest's /run with our log.
 */
#define LEVEL_LOG_BURST 10
#define LEVEL_LOG_WINDOW_MS 10000
/* After SIGTERM an exec'd action gets this long before SIGKILL. */
#define EXEC_KILL_GRACE_MS 2000

enum {
	FD_SIGNAL,
	FD_PORT,
	FD_LISTEN,
	FD_SUB0
};

typedef struct Agent {
	/* options */
	const char *port_opt; /* --port, or NULL: find by name */
	const char *config_path;
	char state_path[VMCG_AGENT_PATH_MAX];
	char sock_path[VMCG_AGENT_PATH_MAX];
	VmcgAgentConfig config;

	int sigfd;
	int listen_fd;
	int subs[SUBSCRIBERS_MAX];
	unsigned nsubs;

	/* the port */
	int port_fd;
	char port_path[VMCG_AGENT_PATH_MAX];
	bool host_connected;   /* the port does not report POLLHUP */
	bool host_hello;       /* seen the host's hello on this connection */
	bool hello_sent;       /* ours went out since the host's last hello */
	bool version_mismatch; /* its major version is not ours */
	bool said_waiting;     /* logged "waiting for the port" once */
	uint64_t next_port_ms; /* next look for the port or the host */
	VmcgAgentLines lines;
	uint32_t interval_ms;
	uint64_t next_report_ms;
	uint64_t report_seq;
	uint64_t hello_window_ms;
	unsigned hello_answers;

	/* the level, as last heard */
	VmcgAgentLevel level;
	uint64_t seq;
	uint64_t reclaim_bytes;
	uint64_t reclaim_within_ms;

	/* the exec action */
	pid_t exec_pid;
	uint64_t exec_deadline_ms;
	bool exec_termed;
	uint64_t exec_skipped;

	/* counters, docs/guest-agent.md */
	uint64_t drop_oversized, drop_malformed, drop_unknown, drop_before_hello;
	uint64_t drop_total_logged;
	uint64_t next_drop_log_ms;
	uint64_t send_dropped, subs_dropped, subs_refused;
	uint64_t messages;
	uint64_t level_log_window_ms;
	unsigned level_logged;
	uint64_t level_unlogged;
} Agent;

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...)
{
	struct timespec ts;
	char buf[512];
	va_list ap;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "vmcg-guest-agent[%ld.%03ld]: %s\n", (long)ts.tv_sec, ts.tv_nsec / 1000000,
		buf);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Reads a small file whole (a /proc file or the config); -errno on failure. */
static ssize_t read_file(const char *path, char *buf, size_t size)
{
	size_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while (n < size - 1) {
		ssize_t r = read(fd, buf + n, size - 1 - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			close(fd);
			return r;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	return (ssize_t)n;
}

/* ---- the state file and the subscribers ---- */

static int state_line(const Agent *a, char *buf, size_t size)
{
	return vmcg_agent_format_state(buf, size, a->level, a->seq, a->reclaim_bytes,
				       a->reclaim_within_ms);
}

/* temp + rename: a reader sees the old line or the new one, never half. */
static void write_state(Agent *a)
{
	char tmp[VMCG_AGENT_PATH_MAX + 8], line[256];
	int n = state_line(a, line, sizeof(line));
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", a->state_path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		logmsg("cannot write %s: %s", tmp, strerror(errno));
		return;
	}
	if (n < 0 || write(fd, line, (size_t)n) != n) {
		logmsg("cannot write %s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		return;
	}
	close(fd);
	if (rename(tmp, a->state_path) < 0) {
		logmsg("cannot rename %s: %s", tmp, strerror(errno));
		unlink(tmp);
	}
}

static void drop_subscriber(Agent *a, unsigned i)
{
	close(a->subs[i]);
	a->subs[i] = a->subs[--a->nsubs];
}

/* A line to one subscriber; false if it had to be dropped (slow or gone). */
static bool send_sub(int fd, const char *line, size_t len)
{
	ssize_t w = send(fd, line, len, MSG_NOSIGNAL | MSG_DONTWAIT);

	return w == (ssize_t)len;
}

static void publish(Agent *a)
{
	char line[256];
	int n = state_line(a, line, sizeof(line));

	write_state(a);
	if (n < 0)
		return;
	for (unsigned i = 0; i < a->nsubs;) {
		if (send_sub(a->subs[i], line, (size_t)n)) {
			i++;
			continue;
		}
		a->subs_dropped++;
		logmsg("subscriber dropped: it does not read (%" PRIu64 " dropped so far)",
		       a->subs_dropped);
		drop_subscriber(a, i);
	}
}

static void accept_subscribers(Agent *a)
{
	for (;;) {
		char line[256];
		int n, fd = accept4(a->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				logmsg("accept: %s", strerror(errno));
			return;
		}
		if (a->nsubs == SUBSCRIBERS_MAX) {
			if (a->subs_refused++ % 64 == 0)
				logmsg("subscriber refused: %d already (%" PRIu64 " refused)",
				       SUBSCRIBERS_MAX, a->subs_refused);
			close(fd);
			continue;
		}
		/* The current level first, then every change. */
		n = state_line(a, line, sizeof(line));
		if (n < 0 || !send_sub(fd, line, (size_t)n)) {
			close(fd);
			continue;
		}
		a->subs[a->nsubs++] = fd;
	}
}

/* Subscribers only listen; what they send is read and ignored. */
static void service_subscriber(Agent *a, unsigned i, short revents)
{
	char buf[256];
	ssize_t r;

	if (revents & (POLLERR | POLLNVAL)) {
		drop_subscriber(a, i);
		return;
	}
	r = recv(a->subs[i], buf, sizeof(buf), MSG_DONTWAIT);
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
		drop_subscriber(a, i);
}

static int listen_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A stale socket of an agent that died; a live one would be ours to
	 * replace anyway (one agent per port). */
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

/* ---- actions ---- */

static void run_actions(Agent *a, VmcgAgentLevel level)
{
	const VmcgAgentAction *act = &a->config.action[level];
	const char *name = vmcg_agent_level_name(level);

	if (act->drop_caches) {
		/* Synchronous: the kernel drops clean cache in well under a
		 * second even for GiBs, and the level is already published. */
		int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);

		if (fd < 0 || write(fd, "1", 1) != 1)
			logmsg("%s: drop-caches failed: %s", name, strerror(errno));
		else
			logmsg("%s: dropped caches", name);
		if (fd >= 0)
			close(fd);
	}
	if (act->exec[0]) {
		pid_t pid;

		if (a->exec_pid > 0) {
			if (a->exec_skipped++ % 100 == 0)
				logmsg("%s: %s not run: the previous one (pid %d) still runs "
				       "(%" PRIu64 " skipped)",
				       name, act->exec, (int)a->exec_pid, a->exec_skipped);
			return;
		}
		pid = fork();
		if (pid < 0) {
			logmsg("%s: fork: %s", name, strerror(errno));
			return;
		}
		if (pid == 0) {
			char *argv[] = { (char *)act->exec, (char *)name, NULL };
			char rb[64], rw[64];
			sigset_t all;
			int null = open("/dev/null", O_RDONLY);

			sigemptyset(&all);
			sigprocmask(SIG_SETMASK, &all, NULL);
			signal(SIGPIPE, SIG_DFL);
			if (null >= 0) {
				dup2(null, 0);
				dup2(2, 1);
			}
			snprintf(rb, sizeof(rb), "%" PRIu64, a->reclaim_bytes);
			snprintf(rw, sizeof(rw), "%" PRIu64, a->reclaim_within_ms);
			setenv("VMCG_LEVEL", name, 1);
			setenv("VMCG_RECLAIM_BYTES", rb, 1);
			setenv("VMCG_RECLAIM_WITHIN_MS", rw, 1);
			execv(act->exec, argv);
			fprintf(stderr, "vmcg-guest-agent: exec %s: %s\n", act->exec,
				strerror(errno));
			_exit(127);
		}
		a->exec_pid = pid;
		a->exec_deadline_ms = now_ms() + a->config.exec_timeout_ms;
		a->exec_termed = false;
		logmsg("%s: started %s (pid %d)", name, act->exec, (int)pid);
	}
}

static void reap_children(Agent *a)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid != a->exec_pid)
			continue;
		if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
			logmsg("action pid %d exited %d", (int)pid, WEXITSTATUS(status));
		else if (WIFSIGNALED(status))
			logmsg("action pid %d killed by signal %d", (int)pid, WTERMSIG(status));
		a->exec_pid = 0;
	}
}

static void check_exec_timeout(Agent *a, uint64_t now)
{
	if (a->exec_pid <= 0 || now < a->exec_deadline_ms)
		return;
	if (!a->exec_termed) {
		logmsg("action pid %d timed out after %" PRIu32 " ms: SIGTERM", (int)a->exec_pid,
		       a->config.exec_timeout_ms);
		kill(a->exec_pid, SIGTERM);
		a->exec_termed = true;
		a->exec_deadline_ms = now + EXEC_KILL_GRACE_MS;
	} else {
		logmsg("action pid %d: SIGKILL", (int)a->exec_pid);
		kill(a->exec_pid, SIGKILL);
		a->exec_deadline_ms = now + EXEC_KILL_GRACE_MS;
	}
}

/* ---- the port ---- */

/*
 * Without udev (an initramfs) there is no /dev/virtio-ports/NAME: look the
 * name up in sysfs as udev's rule does (50-udev-default.rules).
 */
static bool find_port(Agent *a)
{
	struct dirent *de;
	DIR *d;

	if (a->port_opt) {
		snprintf(a->port_path, sizeof(a->port_path), "%s", a->port_opt);
		return access(a->port_path, F_OK) == 0;
	}
	snprintf(a->port_path, sizeof(a->port_path), "/dev/virtio-ports/%s", PORT_NAME);
	if (access(a->port_path, F_OK) == 0)
		return true;
	d = opendir("/sys/class/virtio-ports");
	if (!d)
		return false;
	while ((de = readdir(d))) {
		char path[512], name[128];
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", de->d_name);
		n = read_file(path, name, sizeof(name));
		if (n > 0 && name[n - 1] == '\n')
			name[--n] = '\0';
		if (n > 0 && strcmp(name, PORT_NAME) == 0) {
			/* vportNpM: short, but say so to the compiler. */
			snprintf(a->port_path, sizeof(a->port_path), "/dev/%.64s", de->d_name);
			closedir(d);
			return access(a->port_path, F_OK) == 0;
		}
	}
	closedir(d);
	return false;
}

static void port_send(Agent *a, const char *buf, size_t len)
{
	ssize_t w;

	if (a->port_fd < 0 || !a->host_connected)
		return;
	/* A virtio port write is one buffer: all or EAGAIN, never partial. */
	w = write(a->port_fd, buf, len);
	if (w != (ssize_t)len) {
		if (a->send_dropped++ % 100 == 0)
			logmsg("send to the host dropped (%s; %" PRIu64 " so far)",
			       w < 0 ? strerror(errno) : "short write", a->send_dropped);
	}
}

static void send_hello(Agent *a)
{
	char buf[128];
	int n = vmcg_agent_format_hello(buf, sizeof(buf), "vmcg-guest-agent " VMCG_VERSION);

	if (n > 0) {
		port_send(a, buf, (size_t)n);
		a->hello_sent = true;
	}
}

static void send_report(Agent *a)
{
	char text[8192], buf[VMCG_AGENT_LINE_MAX];
	VmcgAgentPsi psi;
	VmcgAgentMem mem = { 0 };
	bool have_psi = false;
	ssize_t n;
	int r;

	n = read_file("/proc/pressure/memory", text, sizeof(text));
	if (n >= 0) {
		r = vmcg_agent_psi_parse(text, (size_t)n, &psi);
		if (r == 0)
			have_psi = true;
		else
			logmsg("/proc/pressure/memory: %s", strerror(-r));
	}
	n = read_file("/proc/meminfo", text, sizeof(text));
	if (n >= 0) {
		r = vmcg_agent_meminfo_parse(text, (size_t)n, &mem);
		if (r < 0) {
			logmsg("/proc/meminfo: %s", strerror(-r));
			mem.present = 0;
		}
	}
	r = vmcg_agent_format_report(buf, sizeof(buf), ++a->report_seq, have_psi ? &psi : NULL,
				     &mem);
	if (r > 0)
		port_send(a, buf, (size_t)r);
}

/* A (re)connected host: a new conversation. */
static void host_connected(Agent *a)
{
	a->host_connected = true;
	a->host_hello = false;
	a->hello_sent = false;
	a->version_mismatch = false;
	a->report_seq = 0;
	vmcg_agent_lines_init(&a->lines);
	logmsg("host connected on %s", a->port_path);
	send_hello(a);
}

static void host_gone(Agent *a, const char *why)
{
	if (a->host_connected)
		logmsg("host disconnected (%s); the level stays %s", why,
		       vmcg_agent_level_name(a->level));
	a->host_connected = false;
	a->host_hello = false;
	a->next_port_ms = now_ms() + HOST_RECHECK_MS;
}

static void close_port(Agent *a, const char *why)
{
	host_gone(a, why);
	if (a->port_fd >= 0)
		close(a->port_fd);
	a->port_fd = -1;
	a->said_waiting = false;
	a->next_port_ms = now_ms() + PORT_RETRY_MS;
}

/* Opens the port if needed, and sees whether the host is there. */
static void check_port(Agent *a, uint64_t now)
{
	struct pollfd p;

	if (a->host_connected || now < a->next_port_ms)
		return;
	if (a->port_fd < 0) {
		if (!find_port(a)) {
			if (!a->said_waiting)
				logmsg("waiting for the port %s",
				       a->port_opt ? a->port_opt : PORT_NAME);
			a->said_waiting = true;
			a->next_port_ms = now + PORT_RETRY_MS;
			return;
		}
		a->port_fd = open(a->port_path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (a->port_fd < 0) {
			if (!a->said_waiting)
				logmsg("cannot open %s: %s; retrying", a->port_path,
				       strerror(errno));
			a->said_waiting = true;
			a->next_port_ms = now + PORT_RETRY_MS;
			return;
		}
		logmsg("opened %s", a->port_path);
		a->said_waiting = false;
	}
	/* The port says POLLHUP for as long as no host is connected. */
	p = (struct pollfd){ .fd = a->port_fd, .events = POLLIN };
	if (poll(&p, 1, 0) >= 0 && !(p.revents & POLLHUP))
		host_connected(a);
	else
		a->next_port_ms = now + HOST_RECHECK_MS;
}

static void log_drops(Agent *a, uint64_t now, bool force)
{
	uint64_t total =
		a->drop_oversized + a->drop_malformed + a->drop_unknown + a->drop_before_hello;

	if (total == a->drop_total_logged || (!force && now < a->next_drop_log_ms))
		return;
	logmsg("dropped %" PRIu64 " host lines so far: oversized %" PRIu64 ", malformed %" PRIu64
	       ", unknown type %" PRIu64 ", before hello %" PRIu64,
	       total, a->drop_oversized, a->drop_malformed, a->drop_unknown, a->drop_before_hello);
	a->drop_total_logged = total;
	a->next_drop_log_ms = now + DROP_LOG_MS;
}

/* SIGUSR1: every counter, at once (docs/guest-agent.md). */
static void log_stats(Agent *a)
{
	logmsg("stats: host %s, hello %s, level %s seq %" PRIu64 ", messages %" PRIu64
	       ", dropped: oversized %" PRIu64 " malformed %" PRIu64 " unknown-type %" PRIu64
	       " before-hello %" PRIu64 ", reports %" PRIu64 ", sends dropped %" PRIu64
	       ", subscribers %u (dropped %" PRIu64 ", refused %" PRIu64 ")",
	       a->host_connected ? "connected" : "disconnected", a->host_hello ? "yes" : "no",
	       vmcg_agent_level_name(a->level), a->seq, a->messages, a->drop_oversized,
	       a->drop_malformed, a->drop_unknown, a->drop_before_hello, a->report_seq,
	       a->send_dropped, a->nsubs, a->subs_dropped, a->subs_refused);
}

static void handle_line(void *opaque, const char *line, size_t len)
{
	Agent *a = opaque;
	uint64_t now = now_ms();
	VmcgAgentMsg m;
	int r;

	if (!line) {
		a->drop_oversized++;
		log_drops(a, now, false);
		return;
	}
	r = vmcg_agent_msg_parse(line, len, &m);
	if (r < 0) {
		if (r == -EMSGSIZE)
			a->drop_oversized++;
		else if (r == -ENOMSG)
			a->drop_unknown++;
		else
			a->drop_malformed++;
		log_drops(a, now, false);
		return;
	}
	a->messages++;
	if (m.type == VMCG_AGENT_MSG_HELLO) {
		bool answer = !a->hello_sent;

		a->hello_sent = false;
		if (m.version != VMCG_AGENT_PROTO_VERSION) {
			if (!a->version_mismatch)
				logmsg("host %s speaks version %" PRId64 ", we speak %d: only "
				       "hello until it does",
				       m.vm, m.version, VMCG_AGENT_PROTO_VERSION);
			a->version_mismatch = true;
			a->host_hello = false;
		} else {
			if (!a->host_hello || a->version_mismatch)
				logmsg("host hello: vm %s, report every %" PRIu32 " ms", m.vm,
				       m.report_interval_ms);
			a->version_mismatch = false;
			a->host_hello = true;
			a->interval_ms = m.report_interval_ms;
			a->next_report_ms = now + a->interval_ms;
		}
		if (now >= a->hello_window_ms + 1000) {
			a->hello_window_ms = now;
			a->hello_answers = 0;
		}
		if (answer && a->hello_answers++ < HELLO_ANSWERS_PER_SEC)
			send_hello(a);
		return;
	}
	if (!a->host_hello) {
		a->drop_before_hello++;
		log_drops(a, now, false);
		return;
	}
	if (m.type == VMCG_AGENT_MSG_CONFIG) {
		if (m.report_interval_ms != a->interval_ms)
			logmsg("report every %" PRIu32 " ms", m.report_interval_ms);
		a->interval_ms = m.report_interval_ms;
		a->next_report_ms = now + a->interval_ms;
		return;
	}
	/* pressure */
	{
		VmcgAgentLevel old = a->level;

		a->seq = m.seq;
		a->level = m.level;
		a->reclaim_bytes = m.reclaim_bytes;
		a->reclaim_within_ms = m.reclaim_within_ms;
		publish(a);
		if (old != m.level && now >= a->level_log_window_ms + LEVEL_LOG_WINDOW_MS) {
			if (a->level_unlogged)
				logmsg("%" PRIu64 " level changes not logged", a->level_unlogged);
			a->level_log_window_ms = now;
			a->level_logged = 0;
			a->level_unlogged = 0;
		}
		if (old != m.level && a->level_logged++ >= LEVEL_LOG_BURST)
			a->level_unlogged++;
		else if (old != m.level)
			logmsg("level %s -> %s (seq %" PRIu64 ", reclaim %" PRIu64
			       " bytes within %" PRIu64 " ms)",
			       vmcg_agent_level_name(old), vmcg_agent_level_name(m.level), m.seq,
			       m.reclaim_bytes, m.reclaim_within_ms);
		if (old != m.level)
			run_actions(a, m.level);
	}
}

static void read_port(Agent *a)
{
	char buf[8192];

	/* Bounded per wakeup, so a flood cannot starve the subscribers. */
	for (int i = 0; i < 16; i++) {
		ssize_t r = read(a->port_fd, buf, sizeof(buf));

		if (r > 0) {
			vmcg_agent_lines_feed(&a->lines, buf, (size_t)r, handle_line, a);
			continue;
		}
		if (r == 0) {
			host_gone(a, "end of file");
			return;
		}
		if (errno == EAGAIN || errno == EINTR)
			return;
		/* ENODEV & co: the port was unplugged. */
		close_port(a, strerror(errno));
		return;
	}
}

/* ---- main loop ---- */

static int load_config(Agent *a)
{
	static char text[65536];
	const char *what = "";
	unsigned line = 0;
	ssize_t n = read_file(a->config_path, text, sizeof(text));
	int r;

	if (n == -ENOENT) {
		vmcg_agent_config_init(&a->config);
		return 0;
	}
	if (n < 0) {
		fprintf(stderr, "vmcg-guest-agent: %s: %s\n", a->config_path, strerror((int)-n));
		return -1;
	}
	if ((size_t)n == sizeof(text) - 1) {
		fprintf(stderr, "vmcg-guest-agent: %s: larger than 64 KiB\n", a->config_path);
		return -1;
	}
	r = vmcg_agent_config_parse(text, (size_t)n, &a->config, &line, &what);
	if (r < 0) {
		fprintf(stderr, "vmcg-guest-agent: %s:%u: %s\n", a->config_path, line, what);
		return -1;
	}
	for (unsigned l = 0; l < VMCG_AGENT_LEVEL_COUNT; l++) {
		const VmcgAgentAction *act = &a->config.action[l];

		if (act->drop_caches || act->exec[0])
			logmsg("on %s:%s%s%s", vmcg_agent_level_name((VmcgAgentLevel)l),
			       act->drop_caches ? " drop caches" : "", act->exec[0] ? " run " : "",
			       act->exec);
	}
	return 0;
}

static int run_agent(Agent *a)
{
	struct pollfd pfd[FD_SUB0 + SUBSCRIBERS_MAX];
	sigset_t mask;
	const char *dir_end;
	char dir[VMCG_AGENT_PATH_MAX];
	int r;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGUSR1);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	a->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (a->sigfd < 0) {
		logmsg("signalfd: %s", strerror(errno));
		return 1;
	}
	dir_end = strrchr(a->sock_path, '/');
	if (dir_end && dir_end != a->sock_path) {
		snprintf(dir, sizeof(dir), "%.*s", (int)(dir_end - a->sock_path), a->sock_path);
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			logmsg("mkdir %s: %s", dir, strerror(errno));
	}
	a->listen_fd = listen_socket(a->sock_path);
	if (a->listen_fd < 0) {
		logmsg("cannot listen on %s: %s", a->sock_path, strerror(-a->listen_fd));
		return 1;
	}
	/* Socket usable by every local user: it only tells the level. */
	chmod(a->sock_path, 0666);
	write_state(a);
	logmsg("vmcg-guest-agent %s: state %s, subscribers %s", VMCG_VERSION, a->state_path,
	       a->sock_path);

	for (;;) {
		uint64_t now = now_ms(), next;
		int timeout;
		nfds_t n;

		check_port(a, now);
		check_exec_timeout(a, now);
		if (a->host_connected && a->host_hello && !a->version_mismatch &&
		    now >= a->next_report_ms) {
			send_report(a);
			/* Keep the cadence; after a long stall, restart it. */
			a->next_report_ms += a->interval_ms;
			if (a->next_report_ms <= now)
				a->next_report_ms = now + a->interval_ms;
		}
		log_drops(a, now, false);

		next = now + 60000;
		if (!a->host_connected && a->next_port_ms < next)
			next = a->next_port_ms;
		if (a->host_connected && a->host_hello && a->next_report_ms < next)
			next = a->next_report_ms;
		if (a->exec_pid > 0 && a->exec_deadline_ms < next)
			next = a->exec_deadline_ms;
		if (a->drop_total_logged != a->drop_oversized + a->drop_malformed +
						    a->drop_unknown + a->drop_before_hello &&
		    a->next_drop_log_ms < next)
			next = a->next_drop_log_ms;
		timeout = next > now ? (int)(next - now) : 0;

		pfd[FD_SIGNAL] = (struct pollfd){ .fd = a->sigfd, .events = POLLIN };
		pfd[FD_PORT] = (struct pollfd){ .fd = a->host_connected ? a->port_fd : -1,
						.events = POLLIN };
		pfd[FD_LISTEN] = (struct pollfd){ .fd = a->listen_fd, .events = POLLIN };
		for (unsigned i = 0; i < a->nsubs; i++)
			pfd[FD_SUB0 + i] = (struct pollfd){ .fd = a->subs[i], .events = POLLIN };
		n = FD_SUB0 + a->nsubs;
		r = poll(pfd, n, timeout);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			logmsg("poll: %s", strerror(errno));
			return 1;
		}
		if (pfd[FD_SIGNAL].revents) {
			struct signalfd_siginfo si;

			while (read(a->sigfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGCHLD)
					reap_children(a);
				else if (si.ssi_signo == SIGUSR1)
					log_stats(a);
				else if (si.ssi_signo == SIGHUP)
					logmsg("SIGHUP ignored: restart the agent to reread %s",
					       a->config_path);
				else {
					logmsg("signal %u: exiting", si.ssi_signo);
					log_drops(a, now_ms(), true);
					return 0;
				}
			}
		}
		if (pfd[FD_PORT].fd >= 0 && pfd[FD_PORT].revents) {
			if (pfd[FD_PORT].revents & POLLIN)
				read_port(a);
			else if (pfd[FD_PORT].revents & POLLHUP)
				host_gone(a, "hangup");
			else if (pfd[FD_PORT].revents & (POLLERR | POLLNVAL))
				close_port(a, "error");
		}
		/* From the end: drop_subscriber() moves the last one into i. */
		for (unsigned i = a->nsubs; i-- > 0;) {
			if (pfd[FD_SUB0 + i].revents)
				service_subscriber(a, i, pfd[FD_SUB0 + i].revents);
		}
		if (pfd[FD_LISTEN].revents & POLLIN)
			accept_subscribers(a);
	}
}

static void cleanup_agent(Agent *a)
{
	for (unsigned i = 0; i < a->nsubs; i++)
		close(a->subs[i]);
	if (a->listen_fd >= 0) {
		close(a->listen_fd);
		unlink(a->sock_path);
	}
	/* A stale level is worse than none: readers see the agent is gone. */
	unlink(a->state_path);
	if (a->port_fd >= 0)
		close(a->port_fd);
}

/* ---- --watch ---- */

static int connect_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

static int watch(const char *path, bool wait)
{
	bool said = false;

	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		char buf[4096];
		ssize_t r;
		int fd = connect_socket(path);

		if (fd < 0) {
			if (!wait) {
				fprintf(stderr, "vmcg-guest-agent --watch: %s: %s\n", path,
					strerror(-fd));
				return 1;
			}
			if (!said)
				fprintf(stderr, "vmcg-guest-agent --watch: waiting for %s\n", path);
			said = true;
			sleep(1);
			continue;
		}
		said = false;
		/* Lines pass through as they come: the agent writes whole ones. */
		while ((r = read(fd, buf, sizeof(buf))) != 0) {
			if (r < 0) {
				if (errno == EINTR)
					continue;
				break;
			}
			if (fwrite(buf, 1, (size_t)r, stdout) != (size_t)r || fflush(stdout)) {
				close(fd);
				return 1; /* our reader went away */
			}
		}
		close(fd);
		if (!wait)
			return 0;
	}
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: vmcg-guest-agent [--port PATH] [--config PATH] [--run-dir DIR]\n"
		   "       vmcg-guest-agent --watch [--wait] [--run-dir DIR]\n"
		   "\n"
		   "The guest side of vmcg's pressure channel (virtio-serial port " PORT_NAME ").\n"
		   "Publishes the host's pressure level in DIR/pressure and DIR/pressure.sock\n"
		   "(DIR defaults to " DEFAULT_RUN_DIR "), reports the guest's PSI and memory.\n"
		   "\n"
		   "  --port PATH     the port's device (default: found by name)\n"
		   "  --config PATH   actions per level (default " DEFAULT_CONFIG ")\n"
		   "  --run-dir DIR   where the state file and socket live\n"
		   "  --watch         print each level change; exit 0 when the agent goes away\n"
		   "  --wait          with --watch: wait for the agent instead of exiting\n"
		   "  --version       print the version\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "config", required_argument, NULL, 'c' },
		{ "run-dir", required_argument, NULL, 'r' },
		{ "watch", no_argument, NULL, 'w' },
		{ "wait", no_argument, NULL, 'W' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	static Agent a;
	const char *run_dir = DEFAULT_RUN_DIR;
	bool do_watch = false, do_wait = false;
	int c, r;

	a.config_path = DEFAULT_CONFIG;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			a.port_opt = optarg;
			break;
		case 'c':
			a.config_path = optarg;
			break;
		case 'r':
			run_dir = optarg;
			break;
		case 'w':
			do_watch = true;
			break;
		case 'W':
			do_wait = true;
			break;
		case 'V':
			printf("vmcg-guest-agent %s\n", VMCG_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || (do_wait && !do_watch)) {
		usage(stderr);
		return 2;
	}
	if (strlen(run_dir) + sizeof("/pressure.sock") > VMCG_AGENT_PATH_MAX) {
		fprintf(stderr, "vmcg-guest-agent: --run-dir too long\n");
		return 2;
	}
	snprintf(a.state_path, sizeof(a.state_path), "%s/pressure", run_dir);
	snprintf(a.sock_path, sizeof(a.sock_path), "%s/pressure.sock", run_dir);
	if (do_watch)
		return watch(a.sock_path, do_wait);

	if (load_config(&a) < 0)
		return 1;
	a.port_fd = -1;
	a.listen_fd = -1;
	a.level = VMCG_AGENT_LEVEL_NONE;
	a.interval_ms = VMCG_AGENT_INTERVAL_DEFAULT_MS;
	vmcg_agent_lines_init(&a.lines);
	r = run_agent(&a);
	cleanup_agent(&a);
	return r;
}
