#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The API socket against hostile local clients: regression tests that run the attack.

  content-length-*: a request whose Content-Length libsoup would misframe
  (2^63, which became a negative length and a GLib warning per request and
  was served; two of them; one beside Transfer-Encoding; a sign) gets a
  prompt 400 or 413 and no GLib warning or critical in the log.

  fd-exhaustion: vmcgd under RLIMIT_NOFILE 64 (hard limit too), every
  descriptor taken by API connections, more waiting in the backlog:

      vmcgd  [64 fds: ~10 its own + ~54 API connections]  <- 150 clients
      expected: no spinning (< 0.2 s of CPU in 2 s), a few log lines, and
      once the clients go, the API answers again within 5 s
      (libsoup 3.2's listener gave up on the first EMFILE: never again)

  trickle-lockout: seven unprivileged uids trickle one header byte per
  second on as many connections as they can get:

      60001: 24 tries -> 16 admitted (per-uid cap), 8 refused (503 busy)
      60002..60006: 16 each -> the 96 shared places are full
      60007: refused (503): the rest is kept for root and the write group
      root, and uid 60100 of the write group (gid 100): answered at once
      every trickler: closed by the 10 s header deadline (408)

  body-deadline: headers, then a body that never ends: 408 after 30 s.

  many-connections: 1,000 and 4,000 connections at once under the usual
  1024-descriptor limit: 128 held, the others refused with 503, vmcgd never
  out of descriptors, the API answers after.

Needs root (runs clients as other users through setpriv); skips, saying
why, where it is not.
"""

import json
import os
import re
import resource
import select
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vmcgtest import tap  # noqa
from vmcgtest.daemon import Daemon, http_request, vmcgd_binary  # noqa

# The clients run as other users: the system's Python, not one under /root.
SYSTEM_PYTHON = "/usr/bin/python3"
NOBODY = 65534
WRITE_GID = 100  # "users" on Debian: the write group of trickle-lockout
WRITE_GROUP = "users"
GLIB_TROUBLE = re.compile(r"(WARNING|CRITICAL) \*\*")


def need_root():
    if os.geteuid() != 0:
        raise tap.Skip("needs root: clients run as other users")
    if not shutil.which("setpriv") or not os.access(SYSTEM_PYTHON, os.X_OK):
        raise tap.Skip("needs setpriv and %s" % SYSTEM_PYTHON)


def glib_trouble(d, since=0):
    """GLib warnings and criticals in @d's log after byte @since, but vmcgd's
    own start-up warning about a missing write group."""
    text = d.log.read_bytes()[since:].decode(errors="replace")
    return [ln for ln in text.splitlines()
            if GLIB_TROUBLE.search(ln) and "write-group" not in ln]


def raw(sock_path, data, timeout=5.0):
    """Send @data, read until the server closes; (status, body json or None, seconds)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    t = time.monotonic()
    s.connect(sock_path)
    s.sendall(data)
    got = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
            if b"\r\n\r\n" in got:
                head, _, body = got.partition(b"\r\n\r\n")
                m = re.search(rb"Content-Length: (\d+)", head)
                if m and len(body) >= int(m.group(1)):
                    break
    except socket.timeout:
        pass
    finally:
        s.close()
    took = time.monotonic() - t
    if not got:
        return None, None, took
    head, _, body = got.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return status, json.loads(body), took
    except ValueError:
        return status, None, took


# ---- 11a: Content-Length ----

PUT = b"PUT /v1/groups/cl HTTP/1.1\r\nHost: localhost\r\n"
FRAMING = [
    # (name, extra headers, body, status)
    ("2^63", b"Content-Length: 9223372036854775808\r\n", b"{}", 413),
    ("2^64-1", b"Content-Length: 18446744073709551615\r\n", b"{}", 413),
    ("forty digits", b"Content-Length: " + b"9" * 40 + b"\r\n", b"{}", 413),
    ("two, different", b"Content-Length: 2\r\nContent-Length: 70000\r\n", b"{}", 400),
    ("two, equal", b"Content-Length: 2\r\nContent-Length: 2\r\n", b"{}", 400),
    ("negative", b"Content-Length: -1\r\n", b"{}", 400),
    ("with Transfer-Encoding", b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
     b"2\r\n{}\r\n0\r\n\r\n", 400),
]


def test_content_length():
    with Daemon(config="[daemon]\nwrite-group =\n", verbose=False) as d:
        for name, headers, body, status in FRAMING:
            mark = d.log.stat().st_size
            got, obj, took = raw(d.socket, PUT + headers + b"\r\n" + body)
            assert got == status, "%s: status %s, want %d" % (name, got, status)
            assert obj and obj["error"]["code"] == ("too_large" if status == 413
                                                    else "invalid_argument"), (name, obj)
            assert took < 2, "%s: answered after %.1f s" % (name, took)
            time.sleep(0.2)
            trouble = glib_trouble(d, mark)
            assert not trouble, "%s: GLib complained: %s" % (name, trouble)
        r = http_request(d.socket, "GET", "/v1/groups/cl")
        assert r.status == 404, "a refused PUT created the group: %r" % r
        r = http_request(d.socket, "PUT", "/v1/groups/cl", {})
        assert r.status == 201, r


# ---- 2: descriptor exhaustion ----

def proc_cpu_sec(pid):
    fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def connect_wait(path, timeout=0.5):
    """A connection, or None if the backlog stayed full for @timeout seconds.
    (A unix socket's connect() fails with EAGAIN on a full backlog, even with
    a timeout set: it never waits, so we do.)"""
    end = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX)
        s.setblocking(False)
        try:
            s.connect(path)
            return s
        except BlockingIOError:
            s.close()
            if time.monotonic() > end:
                return None
            time.sleep(0.005)


def wait_answer(path, timeout):
    """GET /v1/groups until it is answered 200; the seconds it took, or None."""
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        try:
            r = http_request(path, "GET", "/v1/groups", timeout=max(0.5, timeout -
                                                                   (time.monotonic() - t)))
            if r.status == 200:
                return time.monotonic() - t
        except OSError:
            time.sleep(0.1)
    return None


def test_fd_exhaustion():
    need_root()
    with Daemon(config="[daemon]\nwrite-group =\n", verbose=False) as d:
        pid = d.proc.pid
        base = open_fds(pid)
        assert base < 40, "vmcgd holds %d descriptors at rest" % base
        # Soft and hard: vmcgd may raise its soft limit to the hard one at start.
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (64, 64))
        start_lines = len(d.log_text().splitlines())
        clients = []
        try:
            misses = 0
            while len(clients) < 400 and misses < 3:
                s = connect_wait(d.socket, 0.3)
                if s:
                    clients.append(s)
                else:
                    misses += 1
            time.sleep(1)
            fds = open_fds(pid)
            assert fds >= 62, "only %d descriptors in use: not exhausted" % fds
            lines0 = len(d.log_text().splitlines())
            cpu0 = proc_cpu_sec(pid)
            time.sleep(2)
            cpu = proc_cpu_sec(pid) - cpu0
            lines = len(d.log_text().splitlines()) - lines0
            print("# exhausted: %d fds, %d clients, %.2f s CPU in 2 s, %d log lines"
                  % (fds, len(clients), cpu, lines))
            assert cpu < 0.2, "vmcgd used %.2f s of CPU in 2 s out of descriptors" % cpu
            assert lines <= 5, "%d log lines in 2 s out of descriptors" % lines
        finally:
            for s in clients:
                s.close()
        took = wait_answer(d.socket, 5)
        assert took is not None, "the API did not answer within 5 s of the descriptors' return"
        print("# answered %.2f s after the clients closed" % took)
        episode = d.log_text().splitlines()[start_lines:]
        assert len(episode) <= 6, "the episode logged %d lines: %s" % (len(episode), episode)
        assert sum("cannot accept" in ln for ln in episode) == 1, episode
        assert d.running(), "vmcgd died"


# ---- 3: trickling connections, per-uid caps, room kept for writers ----

# As another user: open @tries connections; those not refused at once (a 503
# within 0.1 s) trickle one byte of a request's headers per second. Prints
# "ready ADMITTED REFUSED" once all are open, then, when every admitted one
# has ended (or after 30 s), one JSON line: per connection, seconds from its
# connect() to its end and the status it got (null: closed without a word).
TRICKLER = r"""
import json, re, select, socket, sys, time
path, tries = sys.argv[1], int(sys.argv[2])
req = b"GET /v1/groups HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 200
conns, refused = [], 0
for _ in range(tries):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    r, _, _ = select.select([s], [], [], 0.1)
    if r:
        data = s.recv(4096)
        if not data or b" 503 " in data.split(b"\r\n", 1)[0]:
            refused += 1
            s.close()
            continue
    conns.append([s, time.monotonic(), 0, None, None])
print("ready %d %d" % (len(conns), refused), flush=True)
end = time.monotonic() + 30
while time.monotonic() < end and any(c[3] is None for c in conns):
    for c in conns:
        if c[3] is not None:
            continue
        try:
            c[0].send(req[c[2]:c[2] + 1])
            c[2] += 1
        except OSError:
            pass
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:
        live = [c[0] for c in conns if c[3] is None]
        if not live:
            break
        r, _, _ = select.select(live, [], [], max(0, deadline - time.monotonic()))
        for c in conns:
            if c[0] in r:
                try:
                    data = c[0].recv(4096)
                except OSError:
                    data = b""
                c[3] = time.monotonic() - c[1]
                m = re.match(rb"HTTP/1.1 (\d+)", data)
                c[4] = int(m.group(1)) if m else None
print(json.dumps([[c[3], c[4]] for c in conns]), flush=True)
"""


def run_as(uid, gid, code, *args):
    return subprocess.Popen(["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid,
                             "--clear-groups", SYSTEM_PYTHON, "-c", code] + list(args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def timed_get(path, uid=None, gid=None):
    """(status, seconds) of one GET /v1/groups, as root or as @uid:@gid."""
    if uid is None:
        t = time.monotonic()
        r = http_request(path, "GET", "/v1/groups", timeout=5)
        return r.status, time.monotonic() - t
    code = ("import socket,sys,time\nt=time.monotonic()\ns=socket.socket(socket.AF_UNIX)\n"
            "s.settimeout(5)\ns.connect(sys.argv[1])\n"
            "s.sendall(b'GET /v1/groups HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')\n"
            "d=s.recv(100)\nprint(d.split(b' ')[1].decode() if d else 0, time.monotonic()-t)\n")
    p = run_as(uid, gid, code, path)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    status, took = out.split()
    return int(status), float(took)


def test_trickle_lockout():
    need_root()
    import grp
    try:
        grp.getgrnam(WRITE_GROUP)
    except KeyError:
        raise tap.Skip("no group %s for the write group" % WRITE_GROUP)
    with Daemon(config="[daemon]\nwrite-group = %s\n" % WRITE_GROUP, verbose=False) as d:
        os.chmod(d.tmpdir, 0o755)
        procs = []
        try:
            plan = [(NOBODY, 24)] + [(60002 + i, 16) for i in range(5)]
            started = [(uid, tries, run_as(uid, NOBODY, TRICKLER, d.socket, str(tries)))
                       for uid, tries in plan]
            for uid, tries, p in started:
                line = p.stdout.readline().split()
                assert line and line[0] == "ready", (line, p.stderr.read() if not line else "")
                procs.append((uid, tries, p, int(line[1]), int(line[2])))
            t_full = time.monotonic()
            uid0, _, _, admitted0, refused0 = procs[0]
            assert (admitted0, refused0) == (16, 8), \
                "uid %d: %d admitted, %d refused; want 16 and 8 (per-uid cap)" % (
                    uid0, admitted0, refused0)
            for uid, tries, _, admitted, refused in procs[1:]:
                assert (admitted, refused) == (16, 0), (uid, admitted, refused)
            # The shared 96 are taken: a seventh user is refused...
            p7 = run_as(60007, NOBODY, TRICKLER, d.socket, "1")
            line = p7.stdout.readline().split()
            p7.communicate(timeout=40)
            assert line == ["ready", "0", "1"], "uid 60007 beside a full pool: %s" % line
            # ...root and the write group are not, and at once.
            status, took = timed_get(d.socket)
            assert status == 200 and took < 1, ("root", status, took)
            status, took = timed_get(d.socket, 60100, WRITE_GID)
            assert status == 200 and took < 1, ("write group", status, took)
            print("# 96 trickling, 8 + 1 refused; root and the write group answered")
            for uid, tries, p, admitted, _ in procs:
                out, err = p.communicate(timeout=60)
                ends = json.loads(out.strip().splitlines()[-1])
                assert len(ends) == admitted, (uid, ends)
                for took, status in ends:
                    assert took is not None, "uid %d: a trickler outlived 30 s" % uid
                    assert 8 <= took <= 14, "uid %d: closed after %.1f s, not at the 10 s " \
                        "header deadline" % (uid, took)
                    assert status == 408, "uid %d: got %s, want 408" % (uid, status)
            print("# tricklers closed %.1f s after the pool filled" % (time.monotonic() - t_full))
            assert timed_get(d.socket, NOBODY, NOBODY)[0] == 200
            assert len(d.log_text().splitlines()) < 40, "log flooded"
        finally:
            for _, _, p, _, _ in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()


def test_body_deadline():
    with Daemon(config="[daemon]\nwrite-group =\n", verbose=False) as d:
        status, obj, took = raw(d.socket, PUT + b"Content-Length: 10\r\n\r\n{", timeout=45)
        assert status == 408, (status, obj, took)
        assert 28 <= took <= 34, "closed after %.1f s, not at the 30 s body deadline" % took
        assert wait_answer(d.socket, 5) is not None


# ---- 1,000 and 4,000 at once ----

def test_many_connections():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 4200:
        raise tap.Skip("the test itself needs 4,200 descriptors (hard limit %d)" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4200), hard))
    with Daemon(config="[daemon]\nwrite-group =\n", verbose=False) as d:
        pid = d.proc.pid
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (1024, 1024))
        for n in (1000, 4000):
            clients, most = [], 0
            try:
                for i in range(n):
                    s = connect_wait(d.socket)
                    if s:
                        clients.append(s)
                    if i % 200 == 0:
                        most = max(most, open_fds(pid))
                time.sleep(1)
                most = max(most, open_fds(pid))
                # What each got: nothing yet (held) or a 503 and the end.
                held = busy = 0
                for s in clients:
                    p = select.poll()
                    p.register(s, select.POLLIN)
                    r = p.poll(0)
                    try:
                        data = s.recv(200) if r else None
                    except OSError:
                        data = b""
                    if data is None:
                        held += 1
                    elif b" 503 " in data.split(b"\r\n", 1)[0]:
                        busy += 1
            finally:
                for s in clients:
                    s.close()
            print("# %d connections: %d held, %d refused with 503, at most %d fds in vmcgd"
                  % (n, held, busy, most))
            assert most < 200, "vmcgd held %d descriptors" % most
            assert held <= 128, held
            assert wait_answer(d.socket, 5) is not None, "no answer after %d connections" % n
        assert d.running()


TESTS = [
    ("content-length-misframed", test_content_length),
    ("fd-exhaustion", test_fd_exhaustion),
    ("trickle-lockout", test_trickle_lockout),
    ("body-deadline", test_body_deadline),
    ("many-connections", test_many_connections),
]


def setup():
    vmcgd_binary()


if __name__ == "__main__":
    sys.exit(tap.main(TESTS, setup=setup))
