// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The guest pressure channel's connection (channel.h): connect, read
 * lines, hand them to channel-proto.c, write the host's messages, and
 * reconnect with backoff. One GSource for input per connected channel and
 * one for output only while a write would block.
 */
#ifndef G_LOG_DOMAIN
#define G_LOG_DOMAIN "vmcg-channel"
#endif

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib-unix.h>

#include "channel.h"
#include "backend.h" /* vmcg_dvm_name(), vmcg_dvm_ram_bytes() */
#include "log.h"
#include "qmp.h" /* the reconnect schedule and the warning limit */

/*
 * 100 ms to 10 s: QEMU creates the chardev's socket when it starts, so a
 * VM registered before its QEMU finds it within the first few doublings;
 * 10 s (not QMP's 30 s) because a channel that is down leaves the guest
 * without its level, and an attempt costs one connect() on a local socket.
 */
#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 10000

/*
 * 8 KiB per read, one read per dispatch: two full lines. A guest that
 * floods is read as fast as the main loop goes round, never faster than
 * the others are served.
 */
#define READ_BYTES 8192

struct VmcgChannel {
	VmcgDvm *vm;
	char *path;
	uint32_t interval_ms;
	int fd; /* -1: not connected */
	GSource *in_source, *out_source, *reconnect_source;
	GSource *unmute_source; /* when a mute runs out: hello and the level again */
	guint reconnect_last_ms;
	VmcgQmpLogLimit log_limit;

	/* This connection (reset by each connect). */
	VmcgChannelLines lines;
	VmcgChannelRate rate;
	bool guest_hello; /* the guest said hello with our major version */
	bool bad_version; /* ... or with another: we send only hello */
	int64_t version;  /* the guest's last hello, 0: none */
	char agent[VMCG_CHANNEL_AGENT_MAX + 1];
	bool has_last; /* the last accepted report, for its totals */
	VmcgChannelReport last;
	VmcgChannelState state;
	GByteArray *out; /* at most one message; composed only when empty */
	bool need_hello, need_config, need_pressure;
	bool hello_sent; /* ours went out since the guest's last hello */
	uint64_t seq;

	/* What to push: the latest the control loop gave. */
	bool have_pressure;
	VmcgVmpressureLevel level;
	char *group;
	uint64_t reclaim_bytes, reclaim_within_ms;

	uint64_t dropped, received, sent;
};

static const char *const state_names[] = {
	[VMCG_CHANNEL_DISCONNECTED] = "disconnected",
	[VMCG_CHANNEL_CONNECTED] = "connected",
	[VMCG_CHANNEL_STATE_MUTED] = "muted",
};

const char *vmcg_channel_state_to_string(VmcgChannelState s)
{
	return (unsigned)s < G_N_ELEMENTS(state_names) ? state_names[s] : "?";
}

static void source_clear(GSource **s)
{
	if (*s) {
		g_source_destroy(*s);
		g_source_unref(*s);
		*s = NULL;
	}
}

static uint64_t now_usec(void)
{
	return (uint64_t)g_get_monotonic_time();
}

__attribute__((format(printf, 2, 3))) static void warn(VmcgChannel *ch, const char *fmt, ...)
{
	g_autofree char *msg = NULL;
	guint suppressed;
	va_list ap;

	if (!vmcg_qmp_log_limit(&ch->log_limit, g_get_monotonic_time(), VMCG_QMP_LOG_PERIOD_USEC,
				&suppressed))
		return;
	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	if (suppressed)
		g_warning("VM %s: channel: %s (%u more not logged)", vmcg_dvm_name(ch->vm), msg,
			  suppressed);
	else
		g_warning("VM %s: channel: %s", vmcg_dvm_name(ch->vm), msg);
}

static void set_state(VmcgChannel *ch, VmcgChannelState s, const char *why)
{
	if (ch->state == s)
		return;
	ch->state = s;
	vmcg_dvm_channel_state(ch->vm, s, why);
}

static void flush(VmcgChannel *ch);

/*
 * A mute ran out. The guest may have said hello while muted (its agent
 * restarted; the hello was dropped unread) and then wait for ours before it
 * reports or takes a level, so say hello and send the level again: an agent
 * that has been there all along answers it only if its own hello has not
 * gone out since our last (docs/guest-channel.md), so this cannot ping-pong.
 */
static gboolean on_unmute(gpointer userdata)
{
	VmcgChannel *ch = userdata;
	uint64_t now = now_usec();

	g_source_unref(ch->unmute_source);
	ch->unmute_source = NULL;
	if (ch->fd < 0)
		return G_SOURCE_REMOVE;
	if (vmcg_channel_rate_muted(&ch->rate, now)) {
		ch->unmute_source =
			g_timeout_source_new((guint)((ch->rate.muted_until_usec - now) / 1000 + 1));
		g_source_set_callback(ch->unmute_source, on_unmute, ch, NULL);
		g_source_attach(ch->unmute_source, NULL);
		return G_SOURCE_REMOVE;
	}
	if (ch->state == VMCG_CHANNEL_STATE_MUTED)
		set_state(ch, ch->guest_hello ? VMCG_CHANNEL_CONNECTED : VMCG_CHANNEL_DISCONNECTED,
			  NULL);
	ch->need_hello = ch->need_pressure = true;
	flush(ch);
	return G_SOURCE_REMOVE;
}

/* The guest is muted from now on; on_unmute() when that runs out. */
static void set_muted(VmcgChannel *ch, const char *why)
{
	set_state(ch, VMCG_CHANNEL_STATE_MUTED, why);
	source_clear(&ch->unmute_source);
	ch->unmute_source = g_timeout_source_new(VMCG_CHANNEL_MUTE_USEC / 1000 + 1);
	g_source_set_callback(ch->unmute_source, on_unmute, ch, NULL);
	g_source_attach(ch->unmute_source, NULL);
}

static void connect_now(VmcgChannel *ch);

static gboolean on_reconnect(gpointer userdata)
{
	VmcgChannel *ch = userdata;

	g_source_unref(ch->reconnect_source);
	ch->reconnect_source = NULL;
	connect_now(ch);
	return G_SOURCE_REMOVE;
}

static void schedule_reconnect(VmcgChannel *ch, bool healthy)
{
	ch->reconnect_last_ms = vmcg_qmp_reconnect_next_ms(ch->reconnect_last_ms, RECONNECT_MIN_MS,
							   RECONNECT_MAX_MS, healthy);
	source_clear(&ch->reconnect_source);
	ch->reconnect_source = g_timeout_source_new(ch->reconnect_last_ms);
	g_source_set_callback(ch->reconnect_source, on_reconnect, ch, NULL);
	g_source_attach(ch->reconnect_source, NULL);
}

/* Close the connection and try again later. */
static void disconnect(VmcgChannel *ch, const char *why)
{
	bool healthy = ch->guest_hello;

	source_clear(&ch->in_source);
	source_clear(&ch->out_source);
	source_clear(&ch->unmute_source);
	if (ch->fd >= 0)
		close(ch->fd);
	ch->fd = -1;
	ch->guest_hello = false;
	g_byte_array_set_size(ch->out, 0);
	set_state(ch, VMCG_CHANNEL_DISCONNECTED, why);
	schedule_reconnect(ch, healthy);
}

static gboolean on_writable(gint fd, GIOCondition cond, gpointer userdata);

/* Compose the next message to send, if any, into the empty output buffer. */
static bool compose(VmcgChannel *ch)
{
	g_autofree char *msg = NULL;

	if (ch->need_hello) {
		ch->need_hello = false;
		ch->need_config = false; /* the hello carries the rate */
		ch->hello_sent = true;
		msg = vmcg_channel_build_hello(vmcg_dvm_name(ch->vm), ch->interval_ms);
	} else if (ch->bad_version) {
		return false; /* a guest of another major version gets only hello */
	} else if (ch->need_config) {
		ch->need_config = false;
		msg = vmcg_channel_build_config(ch->interval_ms);
	} else if (ch->need_pressure && ch->have_pressure) {
		ch->need_pressure = false;
		msg = vmcg_channel_build_pressure(ch->level, ++ch->seq, ch->group,
						  ch->reclaim_bytes, ch->reclaim_within_ms);
	} else {
		return false;
	}
	g_byte_array_append(ch->out, (const guint8 *)msg, (guint)strlen(msg));
	return true;
}

/* Write what can be written now; wait for POLLOUT only when the socket is full. */
static void flush(VmcgChannel *ch)
{
	while (ch->fd >= 0) {
		ssize_t n;

		if (!ch->out->len && !compose(ch))
			break;
		n = send(ch->fd, ch->out->data, ch->out->len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!ch->out_source) {
				ch->out_source = g_unix_fd_source_new(ch->fd, G_IO_OUT);
				g_source_set_callback(ch->out_source, G_SOURCE_FUNC(on_writable),
						      ch, NULL);
				g_source_attach(ch->out_source, NULL);
			}
			return;
		}
		if (n < 0) {
			warn(ch, "write to %s: %s", ch->path, g_strerror(errno));
			disconnect(ch, g_strerror(errno));
			return;
		}
		g_byte_array_remove_range(ch->out, 0, (guint)n);
		if (!ch->out->len)
			ch->sent++;
	}
	source_clear(&ch->out_source);
}

static gboolean on_writable(gint fd, GIOCondition cond, gpointer userdata)
{
	VmcgChannel *ch = userdata;

	(void)fd;
	(void)cond;
	g_source_unref(ch->out_source);
	ch->out_source = NULL;
	flush(ch);
	return G_SOURCE_REMOVE;
}

static void drop(VmcgChannel *ch, VmcgChannelDrop why, const char *err, uint64_t now)
{
	ch->dropped++;
	if (why == VMCG_CHANNEL_DROP_MUTED)
		return;
	warn(ch, "dropped a message (%s): %s", vmcg_channel_drop_to_string(why), err);
	if (vmcg_channel_drop_is_malformed(why) &&
	    vmcg_channel_rate_malformed(&ch->rate, now) == VMCG_CHANNEL_MUTED_NOW) {
		warn(ch, "%d malformed messages in a minute: muted for %d s", VMCG_CHANNEL_BAD_MSGS,
		     (int)(VMCG_CHANNEL_MUTE_USEC / G_USEC_PER_SEC));
		set_muted(ch, "malformed");
	}
}

static void on_hello(VmcgChannel *ch, const VmcgChannelMsg *m)
{
	/*
	 * A hello is answered with ours only if ours has not gone out since
	 * the guest's last one (docs/guest-channel.md): a restarted agent
	 * learns we are here, and two sides that each answer the other's
	 * answer never start.
	 */
	bool answer = !ch->hello_sent;

	ch->hello_sent = false;
	ch->version = m->version;
	g_strlcpy(ch->agent, m->agent, sizeof(ch->agent));
	if (m->version != VMCG_CHANNEL_VERSION) {
		if (!ch->bad_version)
			warn(ch, "the guest speaks version %" G_GINT64_FORMAT ", not %d",
			     m->version, VMCG_CHANNEL_VERSION);
		ch->bad_version = true;
		ch->guest_hello = false;
		ch->need_hello |= answer;
		set_state(ch, VMCG_CHANNEL_DISCONNECTED, "version");
		return;
	}
	/* The level after every hello of the guest's: a restarted agent learns it at once. */
	ch->bad_version = false;
	ch->guest_hello = true;
	ch->has_last = false; /* a new agent: its totals start again */
	ch->need_hello |= answer;
	ch->need_pressure = true;
	set_state(ch, VMCG_CHANNEL_CONNECTED, NULL);
	ch->reconnect_last_ms = 0;
	vmcg_qmp_log_limit_reset(&ch->log_limit);
}

static void on_line(VmcgChannel *ch, VmcgChannelLine kind, const char *line, size_t len)
{
	uint64_t now = now_usec();
	char err[256] = "";
	VmcgChannelMsg m;
	VmcgChannelDrop why;
	VmcgChannelVerdict v;
	size_t i;

	ch->received++;
	v = vmcg_channel_rate_message(&ch->rate, now);
	if (v == VMCG_CHANNEL_MUTED_NOW) {
		warn(ch, "more than %d messages in a second: muted for %d s",
		     VMCG_CHANNEL_FLOOD_MSGS, (int)(VMCG_CHANNEL_MUTE_USEC / G_USEC_PER_SEC));
		set_muted(ch, "flood");
	}
	if (v != VMCG_CHANNEL_PASS) {
		drop(ch, VMCG_CHANNEL_DROP_MUTED, NULL, now);
		return;
	}
	if (ch->state == VMCG_CHANNEL_STATE_MUTED)
		set_state(ch, ch->guest_hello ? VMCG_CHANNEL_CONNECTED : VMCG_CHANNEL_DISCONNECTED,
			  NULL);
	if (kind == VMCG_CHANNEL_LINE_TOO_LONG) {
		drop(ch, VMCG_CHANNEL_DROP_TOO_LONG, "a line over 4096 bytes", now);
		return;
	}
	/* Empty lines are skipped (NDJSON); they count toward the flood rule only. */
	for (i = 0; i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'); i++)
		;
	if (i == len) {
		ch->received--;
		return;
	}
	why = vmcg_channel_parse(line, len, vmcg_dvm_ram_bytes(ch->vm),
				 ch->has_last ? &ch->last : NULL, &m, err, sizeof(err));
	if (!why && m.type != VMCG_CHANNEL_MSG_HELLO && !ch->guest_hello) {
		why = VMCG_CHANNEL_DROP_EARLY;
		g_strlcpy(err, "a report before hello", sizeof(err));
	}
	if (!why && m.type == VMCG_CHANNEL_MSG_REPORT &&
	    !vmcg_channel_rate_report(&ch->rate, now, (uint64_t)ch->interval_ms * 1000)) {
		why = VMCG_CHANNEL_DROP_RATE;
		g_strlcpy(err, "reports faster than twice the asked rate", sizeof(err));
	}
	if (why) {
		drop(ch, why, err, now);
		return;
	}
	if (m.type == VMCG_CHANNEL_MSG_HELLO) {
		on_hello(ch, &m);
		flush(ch);
		return;
	}
	ch->last = m.report;
	ch->has_last = true;
	vmcg_dvm_channel_report(ch->vm, &m.report);
}

static gboolean on_readable(gint fd, GIOCondition cond, gpointer userdata)
{
	VmcgChannel *ch = userdata;
	char buf[READ_BYTES];
	ssize_t n;
	size_t off = 0;

	(void)cond;
	n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return G_SOURCE_CONTINUE;
	if (n <= 0) {
		const char *why = n == 0 ? "closed by QEMU" : g_strerror(errno);

		if (ch->guest_hello)
			g_info("VM %s: channel %s: %s", vmcg_dvm_name(ch->vm), ch->path, why);
		else
			warn(ch, "%s: %s", ch->path, why);
		/* The source is destroyed by disconnect(): returning REMOVE would unref it twice. */
		disconnect(ch, why);
		return G_SOURCE_CONTINUE;
	}
	while (off < (size_t)n && ch->fd >= 0) {
		const char *line = NULL;
		size_t used, len = 0;
		VmcgChannelLine r = vmcg_channel_lines_feed(&ch->lines, buf + off, (size_t)n - off,
							    &used, &line, &len);

		off += used;
		if (r != VMCG_CHANNEL_LINE_NONE)
			on_line(ch, r, line, len);
	}
	return G_SOURCE_CONTINUE;
}

static void connect_now(VmcgChannel *ch)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (ch->fd >= 0)
		return;
	g_strlcpy(sa.sun_path, ch->path, sizeof(sa.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		warn(ch, "socket: %s", g_strerror(errno));
		schedule_reconnect(ch, false);
		return;
	}
	/*
	 * A local stream socket connects at once or not at all (a full backlog
	 * is EAGAIN, not EINPROGRESS: net/unix/af_unix.c): a failure is retried
	 * on the schedule.
	 */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		/* Not there yet is the normal state of a VM not started: debug, not a warning. */
		if (e == ENOENT || e == ECONNREFUSED)
			vmcg_debug("VM %s: channel %s: %s", vmcg_dvm_name(ch->vm), ch->path,
				   g_strerror(e));
		else
			warn(ch, "connect to %s: %s", ch->path, g_strerror(e));
		schedule_reconnect(ch, false);
		return;
	}
	ch->fd = fd;
	vmcg_channel_lines_reset(&ch->lines);
	memset(&ch->rate, 0, sizeof(ch->rate));
	source_clear(&ch->unmute_source);
	ch->guest_hello = ch->bad_version = ch->has_last = ch->hello_sent = false;
	ch->seq = 0;
	ch->need_hello = ch->need_pressure = true;
	ch->need_config = false;
	ch->in_source = g_unix_fd_source_new(fd, G_IO_IN | G_IO_HUP | G_IO_ERR);
	g_source_set_callback(ch->in_source, G_SOURCE_FUNC(on_readable), ch, NULL);
	g_source_attach(ch->in_source, NULL);
	vmcg_debug("VM %s: channel %s connected", vmcg_dvm_name(ch->vm), ch->path);
	flush(ch);
}

VmcgChannel *vmcg_channel_new(VmcgDvm *vm, const char *path, uint32_t interval_ms)
{
	VmcgChannel *ch = g_new0(VmcgChannel, 1);

	ch->vm = vm;
	ch->path = g_strdup(path);
	ch->interval_ms = interval_ms;
	ch->fd = -1;
	ch->out = g_byte_array_sized_new(256);
	ch->group = g_strdup("/");
	return ch;
}

void vmcg_channel_free(VmcgChannel *ch)
{
	if (!ch)
		return;
	source_clear(&ch->in_source);
	source_clear(&ch->out_source);
	source_clear(&ch->reconnect_source);
	source_clear(&ch->unmute_source);
	if (ch->fd >= 0)
		close(ch->fd);
	g_byte_array_unref(ch->out);
	g_free(ch->group);
	g_free(ch->path);
	g_free(ch);
}

void vmcg_channel_start(VmcgChannel *ch)
{
	source_clear(&ch->reconnect_source);
	ch->reconnect_last_ms = 0;
	connect_now(ch);
}

const char *vmcg_channel_path(const VmcgChannel *ch)
{
	return ch->path;
}

void vmcg_channel_set_interval(VmcgChannel *ch, uint32_t interval_ms)
{
	if (ch->interval_ms == interval_ms)
		return;
	ch->interval_ms = interval_ms;
	ch->need_config = true;
	flush(ch);
}

void vmcg_channel_set_pressure(VmcgChannel *ch, VmcgVmpressureLevel level, const char *group,
			       uint64_t reclaim_bytes, uint64_t reclaim_within_ms)
{
	if (!reclaim_bytes)
		reclaim_within_ms = 0;
	if (ch->have_pressure && ch->level == level && ch->reclaim_bytes == reclaim_bytes &&
	    ch->reclaim_within_ms == reclaim_within_ms && strcmp(ch->group, group) == 0)
		return;
	ch->have_pressure = true;
	ch->level = level;
	ch->reclaim_bytes = reclaim_bytes;
	ch->reclaim_within_ms = reclaim_within_ms;
	if (strcmp(ch->group, group) != 0) {
		g_free(ch->group);
		ch->group = g_strdup(group);
	}
	ch->need_pressure = true;
	flush(ch);
}

void vmcg_channel_info(const VmcgChannel *ch, VmcgChannelInfo *ret)
{
	VmcgChannelState state = ch->state;

	/* A mute that ran out while the guest said nothing more (the state changes on its next line). */
	if (state == VMCG_CHANNEL_STATE_MUTED && now_usec() >= ch->rate.muted_until_usec)
		state = ch->guest_hello ? VMCG_CHANNEL_CONNECTED : VMCG_CHANNEL_DISCONNECTED;
	*ret = (VmcgChannelInfo){
		.state = state,
		.version = ch->version,
		.agent = ch->version ? ch->agent : NULL,
		.dropped = ch->dropped,
		.received = ch->received,
		.sent = ch->sent,
		.pressure_seq = ch->seq,
	};
}
