#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Large answers against clients that never read them: regression tests that run the attack.

  stalled-readers: 20,000 groups (/metrics is about 44 MB, GET /v1/groups
  about 15 MB); 100 root connections ask for /metrics or /v1/groups,
  alternately, and never read a byte:

      vmcgd  <- 100 x "GET /metrics" / "GET /v1/groups", unread
             <- 1 client that reads: the whole answer, correct
      expected: vmcgd's VmRSS grows by less than 64 MiB (each answer is
      made 64 KiB at a time as its client reads: 100 x 64 KiB); a normal
      client meanwhile gets all of /metrics and /v1/groups.
      (Before: each answer was built whole and held per connection,
      253 MiB -> 4.5 GiB with 100 clients.)

  tree-changes: a client reads the first 64 KiB of GET /v1/groups, the
  tree changes (groups removed behind and ahead of it, one created at
  the end), the client reads the rest: valid JSON, every group once;
  those removed ahead are missing, those behind it present, the new one
  present (docs/api.md, "Large answers").

VMCG_MEMTEST_GROUPS and VMCG_MEMTEST_CLIENTS change the numbers (the
binary before streaming needs about 45 MB per client: run it with few).
Root connections: up to 128 of them, so 100 stalled clients leave room
for the one that reads. Needs root only for the 128-connection cap
(non-root users get 16); skips otherwise.
"""

import json
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vmcgtest import tap  # noqa
from vmcgtest.daemon import Daemon, http_request, vmcgd_binary  # noqa

GROUPS = int(os.environ.get("VMCG_MEMTEST_GROUPS", "20000"))
CLIENTS = int(os.environ.get("VMCG_MEMTEST_CLIENTS", "100"))
RSS_BOUND_MIB = 64


def need_root():
    if os.geteuid() != 0:
        raise tap.Skip("needs root: 100 connections (other users are held to 16)")


def config(n):
    """A flat tree /t/g00000 ... declared in the config: far faster than n PUTs."""
    return "[daemon]\nwrite-group =\n\n" + "".join("[group /t/g%05d]\n" % i for i in range(n))


def rss_kib(pid):
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def settle_rss(pid, window=1.5, timeout=60):
    """VmRSS once it has not grown for @window seconds (the answers are being made)."""
    end = time.monotonic() + timeout
    last, since = rss_kib(pid), time.monotonic()
    while time.monotonic() < end:
        time.sleep(0.25)
        now = rss_kib(pid)
        if now > last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= window:
            break
    return last


def start_daemon(n):
    d = Daemon(config=config(n), interval="1s", verbose=False)
    d.start(wait=False)
    d.wait_ready(timeout=180)
    return d


def stalled(sock_path, path):
    """A connection that asks for @path and never reads."""
    s = socket.socket(socket.AF_UNIX)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(sock_path)
    s.sendall(b"GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path.encode())
    return s


def check_metrics(body, n):
    text = body.decode()
    assert text.endswith("\n"), "metrics end mid-line"
    # One sample per group in a one-sample family, the root included.
    samples = [ln for ln in text.splitlines() if ln.startswith("vmcg_group_vms{")]
    assert len(samples) == n + 2, "%d vmcg_group_vms samples, want %d" % (len(samples), n + 2)
    assert len(set(samples)) == len(samples), "a group twice"
    assert "vmcg_groups %d\n" % (n + 2) in text


def group_paths(obj, out):
    out.append(obj["path"])
    for c in obj["children"]:
        group_paths(c, out)
    return out


def test_stalled_readers():
    need_root()
    d = start_daemon(GROUPS)
    try:
        pid = d.proc.pid
        # Warm up: one whole scrape and tree, read, as a normal client makes them.
        t = time.monotonic()
        r = http_request(d.socket, "GET", "/metrics", timeout=120)
        scrape = time.monotonic() - t
        assert r.status == 200, r
        check_metrics(r.body, GROUPS)
        tap.diag("/metrics: %d bytes in %.2f s (%d groups)" % (len(r.body), scrape, GROUPS))
        r = http_request(d.socket, "GET", "/v1/groups", timeout=120)
        assert r.status == 200
        tap.diag("/v1/groups: %d bytes" % len(r.body))
        before = settle_rss(pid)

        clients = []
        try:
            for i in range(CLIENTS):
                clients.append(stalled(d.socket, "/metrics" if i % 2 == 0 else "/v1/groups"))
            held = settle_rss(pid)
            # Meanwhile a client that reads gets everything.
            t = time.monotonic()
            r = http_request(d.socket, "GET", "/metrics", timeout=120)
            during = time.monotonic() - t
            assert r.status == 200, r
            check_metrics(r.body, GROUPS)
            r = http_request(d.socket, "GET", "/v1/groups", timeout=120)
            assert r.status == 200, r
            paths = group_paths(json.loads(r.body), [])
            assert len(paths) == GROUPS + 2 and len(set(paths)) == len(paths), len(paths)
            after = settle_rss(pid)
            tap.diag("VmRSS %d KiB before, %d KiB with %d stalled clients, %d KiB after a "
                     "full read beside them (+%.1f MiB); /metrics beside them: %.2f s"
                     % (before, held, CLIENTS, after, (max(held, after) - before) / 1024,
                        during))
            grown = (max(held, after) - before) / 1024
            assert grown < RSS_BOUND_MIB, \
                "VmRSS grew by %.0f MiB with %d clients that do not read (bound %d MiB)" % (
                    grown, CLIENTS, RSS_BOUND_MIB)
        finally:
            for s in clients:
                s.close()
        # The stalled answers end with their connections: the API still answers.
        r = http_request(d.socket, "GET", "/v1/groups/t/g00001")
        assert r.status == 200, r
        assert d.running()
    finally:
        d.close()


def test_tree_changes():
    need_root()
    n = min(GROUPS, 5000)
    d = start_daemon(n)
    try:
        s = socket.socket(socket.AF_UNIX)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(d.socket)
        s.settimeout(60)
        s.sendall(b"GET /v1/groups HTTP/1.1\r\nHost: localhost\r\n\r\n")
        got = b""
        while len(got) < 65536:
            got += s.recv(65536)
        # Behind the reader (the first 64 KiB hold about 50 groups), and far ahead of it.
        behind = ["/t/g%05d" % i for i in range(10)]
        ahead = ["/t/g%05d" % i for i in range(n - 10, n)]
        for p in behind + ahead:
            r = http_request(d.socket, "DELETE", "/v1/groups" + p)
            assert r.status == 204, (p, r)
        r = http_request(d.socket, "PUT", "/v1/groups/t/new", {})
        assert r.status == 201, r
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        s.close()
        head, _, body = got.partition(b"\r\n\r\n")
        assert b"Transfer-Encoding: chunked" in head, head
        # Undo the chunked framing.
        text, rest = b"", body
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            text += rest[:size]
            rest = rest[size + 2:]
        paths = group_paths(json.loads(text), [])
        assert len(set(paths)) == len(paths), "a group twice"
        want = ["/", "/t"] + ["/t/g%05d" % i for i in range(n - 10)] + ["/t/new"]
        assert paths == want, "got %d paths; missing %s, extra %s" % (
            len(paths), sorted(set(want) - set(paths))[:5], sorted(set(paths) - set(want))[:5])
    finally:
        d.close()


TESTS = [
    ("stalled-readers", test_stalled_readers),
    ("tree-changes", test_tree_changes),
]


def setup():
    vmcgd_binary()


if __name__ == "__main__":
    sys.exit(tap.main(TESTS, setup=setup))
