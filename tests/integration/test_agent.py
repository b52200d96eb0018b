#!/usr/bin/env python3
"""vmcg-guest-agent in a real guest, this script acting as the host (vmcgd).

    host (this script)                 guest (tests/guest/init)
    pressure.sock --- org.vmcg.pressure.0 --- vmcg-guest-agent
                                                 |-> /run/vmcg/pressure
                                                 `-> /run/vmcg/pressure.sock
    echo.sock ------- org.vmcg.test.echo <---- vmcg-guest-agent --watch --wait

One guest (512 MiB, 1 vCPU) for every test, in order: the agent greets a
host that connects and answers its hello; the state file and a --watch
subscriber follow each pressure message; reports come at the asked rate
with sane PSI and meminfo figures; junk, unknown types, messages before
hello and an oversized line are dropped and counted, and the next good
line still works; a flood of changes leaves the agent alive, the state at
the last one, and a subscriber that does not read dropped; the host
leaving and coming back, and the agent restarting, each start a new
conversation with hello. `latency` measures host send -> line out of a
guest subscriber and back on a second port (a round trip: the one-way
latency is below it), p50/p99 over 100 changes.

Standard library only; TAP through vmcgtest.tap.
"""

import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from vmcgtest import Guest, connect_unix, ensure_guest_built, GuestUnavailable, qemu_binary, tap, wait_for  # noqa: E402
from vmcgtest.guest import _chardev_path  # noqa: E402

ECHO_PORT = "org.vmcg.test.echo"
LEVELS = ("none", "low", "medium", "critical")

G = None        # the guest
ECHO = None     # path of the echo port's host socket


def diag(msg):
    tap.diag(msg)


class Host:
    """The host side of the pressure channel: NDJSON over QEMU's socket."""

    def __init__(self, path, timeout=30.0):
        self.sock = connect_unix(path, timeout)
        self.buf = b""

    def send(self, obj_or_bytes):
        data = obj_or_bytes if isinstance(obj_or_bytes, bytes) else (
            json.dumps(obj_or_bytes, separators=(",", ":")).encode() + b"\n")
        self.sock.sendall(data)

    def recv(self, timeout=10.0, want=None):
        """The next message (a dict with "_t", the host's receive time) whose
        type is `want` (others are skipped), or None at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line, self.buf = self.buf[:nl], self.buf[nl + 1:]
                assert len(line) < 4096, "guest line over the bound"
                msg = json.loads(line)
                msg["_t"] = time.monotonic()
                if want is None or msg.get("type") == want:
                    return msg
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not data:
                raise EOFError("pressure socket closed")
            self.buf += data

    def drain(self):
        while self.recv(timeout=0.05):
            pass

    def close(self):
        self.sock.close()


HOST = None


def state():
    return G.shell("cat /run/vmcg/pressure").strip()


def agent_log():
    return G.shell("cat /run/vmcg/agent.log")


def stats():
    """The agent's counters: SIGUSR1 makes it log them at once."""
    before = agent_log().count("stats:")
    G.shell("kill -USR1 $(cat /run/vmcg/agent.pid)")
    wait_for(lambda: agent_log().count("stats:") > before, 10, what="stats line")
    line = [l for l in agent_log().splitlines() if "stats:" in l][-1]
    return line


def pressure(seq, level, rb=0, rw=0):
    return {"type": "pressure", "level": level, "seq": seq, "group": "/test",
            "reclaim-bytes": rb, "reclaim-within-ms": rw}


def greet(host, interval_ms=1000, answered=False):
    """Host hello. The agent answers it with its own only if its own has not
    gone out since the host's previous hello (docs/guest-channel.md): after
    the agent's hello on connect, not (no ping-pong). Returns the answer,
    or None when none is due and none came within a second."""
    host.send({"type": "hello", "version": 1, "vm": "agenttest", "report-interval-ms": interval_ms})
    hello = host.recv(10 if answered else 1.0, want="hello")
    if answered:
        assert hello, "no hello from the agent after ours"
    else:
        assert hello is None, "the agent answered our answer to its hello: %r" % hello
    return hello


def test_agent_running():
    wait_for(lambda: "waiting" in agent_log() or "opened" in agent_log(), 20,
             what="agent log")
    assert state().startswith("none "), state()
    out = G.shell("ls -l /dev/virtio-ports/; cat /run/vmcg/agent.pid; vmcg-guest-agent --version")
    diag(out.strip())


def test_hello():
    global HOST
    HOST = Host(G.pressure_socket)
    first = HOST.recv(15, want="hello")
    assert first and first["version"] == 1 and first["agent"].startswith("vmcg-guest-agent"), first
    diag("agent hello on connect: %r" % {k: v for k, v in first.items() if k != "_t"})
    # Before our hello, a pressure message is dropped (counted).
    HOST.send(pressure(1, "critical"))
    greet(HOST, 1000)  # our answer to its hello: not answered again
    # A second hello, as a host that restarted sends: answered.
    answer = greet(HOST, 1000, answered=True)
    assert answer["version"] == 1
    time.sleep(0.5)
    assert state().startswith("none "), state()
    assert "before-hello 1" in stats()


def test_state_follows():
    for seq, level in enumerate(["low", "medium", "critical", "none", "medium"], 1):
        HOST.send(pressure(seq, level, rb=seq << 20, rw=5000 if seq % 2 else 0))
        want = "%s seq=%d reclaim-bytes=%d reclaim-within-ms=%d" % (
            level, seq, seq << 20, 5000 if seq % 2 else 0)
        wait_for(lambda: state() == want, 10, interval=0.05, what="state %r" % want)
    # Written atomically: no temporary file is left.
    assert G.shell("ls /run/vmcg").split() == sorted(
        ["agent.log", "agent.pid", "pressure", "pressure.sock"]), G.shell("ls /run/vmcg")


def test_watch():
    G.shell("vmcg-guest-agent --watch >/run/watch.log 2>&1 & echo $! >/run/watch.pid")
    wait_for(lambda: G.shell("cat /run/watch.log").strip(), 10, what="first watch line")
    first = G.shell("cat /run/watch.log").splitlines()
    assert first == ["medium seq=5 reclaim-bytes=5242880 reclaim-within-ms=5000"], first
    for seq, level in [(6, "low"), (7, "critical"), (8, "critical"), (9, "none")]:
        HOST.send(pressure(seq, level))
    wait_for(lambda: "none seq=9" in G.shell("cat /run/watch.log"), 10, what="watch lines")
    lines = G.shell("cat /run/watch.log").splitlines()
    assert [l.split()[0] + " " + l.split()[1] for l in lines] == [
        "medium seq=5", "low seq=6", "critical seq=7", "critical seq=8", "none seq=9"], lines


def test_reports():
    HOST.send({"type": "config", "report-interval-ms": 200})
    HOST.drain()
    t0 = time.monotonic()
    reports = []
    while time.monotonic() - t0 < 4.0:
        r = HOST.recv(1.0, want="report")
        if r:
            reports.append(r)
    span = reports[-1]["_t"] - reports[0]["_t"]
    rate = (len(reports) - 1) / span
    diag("%d reports in %.2f s at interval 200 ms: %.2f/s" % (len(reports), span, rate))
    assert 3.5 <= rate <= 6.5, rate
    memtotal = G.meminfo()["MemTotal"]
    for a, b in zip(reports, reports[1:]):
        assert b["seq"] == a["seq"] + 1, (a, b)
        for k in ("some", "full"):
            assert b["psi"][k]["total"] >= a["psi"][k]["total"]
    for r in reports:
        for k in ("some", "full"):
            assert 0 <= r["psi"][k]["avg10"] <= 100, r
        mem = r["mem"]
        assert 0 < mem["available"] <= memtotal, (mem, memtotal)
        assert 0 <= mem["file"] + mem["anon"] <= memtotal, (mem, memtotal)
    diag("last report: %s" % {k: v for k, v in reports[-1].items() if k != "_t"})
    # Back to 1 s, and the rate follows.
    HOST.send({"type": "config", "report-interval-ms": 1000})
    HOST.drain()
    a = HOST.recv(3, want="report")
    b = HOST.recv(3, want="report")
    assert a and b and 0.7 <= b["_t"] - a["_t"] <= 1.5, (a, b)


def test_junk():
    before = stats()
    junk = [
        b"not json\n",
        b"{}\n",
        b'{"type":42}\n',
        b'{"type":"pressure","level":"extreme","seq":1}\n',
        b'{"type":"pressure","level":"low","seq":-5}\n',
        b'{"type":"config","report-interval-ms":5}\n',
        b'{"type":"hello","version":1}{"type":"hello","version":1}\n',
        b'\xff\xfe\xfd\n',
        b'{"type":"teleport","to":"mars"}\n',
        b'{"type":"pressure","level":"low","seq":1,"pad":"' + b"x" * 10000 + b'"}\n',
        b"[" * 5000 + b"\n",
    ]
    for j in junk:
        HOST.send(j)
    HOST.send(pressure(100, "low"))
    wait_for(lambda: state().startswith("low seq=100 "), 10, what="good line after junk")
    after = stats()
    diag("before: %s" % before.split("stats: ")[1])
    diag("after:  %s" % after.split("stats: ")[1])
    m = re.search(r"oversized (\d+) malformed (\d+) unknown-type (\d+)", after)
    assert m and tuple(map(int, m.groups())) == (2, 8, 1), after
    assert "dropped" in agent_log()  # the rate-limited summary


def test_flood():
    # A subscriber that never reads: its pipe and socket fill, it is dropped.
    G.shell("vmcg-guest-agent --watch | sleep 3600 & echo $! >/run/slow.pid")
    time.sleep(1)
    n = 3000
    t0 = time.monotonic()
    chunk = []
    for i in range(n):
        chunk.append(json.dumps(pressure(1000 + i, LEVELS[i % 4])).encode() + b"\n")
        if len(chunk) == 100:
            HOST.send(b"".join(chunk))
            chunk = []
    HOST.send(b"".join(chunk))
    last = "%s seq=%d " % (LEVELS[(n - 1) % 4], 1000 + n - 1)
    wait_for(lambda: state().startswith(last), 120, interval=0.5, what="state after flood")
    diag("%d changes applied in %.1f s" % (n, time.monotonic() - t0))
    s = stats()
    diag(s.split("stats: ")[1])
    assert re.search(r"subscribers \d+ \(dropped [1-9]", s), s
    assert "oversized 2 malformed 8 unknown-type 1" in s, s
    G.shell("kill $(cat /run/slow.pid) 2>/dev/null; true")


def test_latency():
    # The subscriber writes every line to a second port, back to us.
    echo = Host(ECHO)
    try:
        G.shell("vmcg-guest-agent --watch --wait >/dev/virtio-ports/%s 2>/run/echo.err & "
                "echo $! >/run/echo.pid" % ECHO_PORT)
        deadline = time.monotonic() + 10
        while b"\n" not in echo.buf and time.monotonic() < deadline:
            echo.sock.settimeout(1)
            try:
                echo.buf += echo.sock.recv(4096)
            except socket.timeout:
                pass
        echo.buf = b""
        lat = []
        for i in range(100):
            seq = 20000 + i
            t0 = time.monotonic()
            HOST.send(pressure(seq, ("low", "medium")[i % 2]))
            want = (" seq=%d " % seq).encode()
            while want not in echo.buf:
                echo.sock.settimeout(10)
                data = echo.sock.recv(4096)
                assert data, "echo port closed"
                echo.buf += data
            lat.append(time.monotonic() - t0)
            echo.buf = echo.buf[echo.buf.find(want):]
            echo.buf = echo.buf[echo.buf.find(b"\n") + 1:]
        lat.sort()
        p50, p99 = lat[49] * 1000, lat[98] * 1000
        diag("latency host send -> guest subscriber -> host (round trip, TCG): "
             "p50 %.1f ms, p99 %.1f ms, max %.1f ms over 100 changes" % (p50, p99, lat[-1] * 1000))
        assert p99 < 2000, p99
        G.shell("kill $(cat /run/echo.pid); true")
    finally:
        echo.close()


def test_host_reconnect():
    global HOST
    level_before = state()
    HOST.close()
    wait_for(lambda: "host disconnected" in agent_log(), 10, what="disconnect seen")
    assert state() == level_before, state()  # the level stays
    HOST = Host(G.pressure_socket)
    hello = HOST.recv(10, want="hello")
    assert hello, "no hello after the host reconnected"
    greet(HOST, 200)
    HOST.send(pressure(1, "critical"))  # a new connection: seq starts again
    wait_for(lambda: state().startswith("critical seq=1 "), 10, what="state after reconnect")
    r = HOST.recv(3, want="report")
    # Reports count again from 1 (greet() skipped those of its second; the
    # old connection had sent dozens at 200 ms).
    assert r and r["seq"] <= 10, r


def test_agent_restart():
    # Restarted with actions: medium runs a script (with the level as its
    # argument, no shell between), critical drops the caches.
    G.shell("""mkdir -p /etc/vmcg
cat >/run/act.sh <<'X'
#!/bin/sh
echo "$1 $VMCG_LEVEL $VMCG_RECLAIM_BYTES $VMCG_RECLAIM_WITHIN_MS" >>/run/act.out
X
chmod 755 /run/act.sh
printf '# test\nmedium.exec = /run/act.sh\ncritical.drop-caches = true\nexec-timeout-ms = 5000\n' \
	>/etc/vmcg/guest-agent.conf""")
    G.shell("kill $(cat /run/vmcg/agent.pid); sleep 1; test ! -e /run/vmcg/pressure.sock")
    G.shell("vmcg-guest-agent </dev/null >>/run/vmcg/agent.log 2>&1 & echo $! >/run/vmcg/agent.pid")
    hello = HOST.recv(15, want="hello")
    assert hello, "no hello from the restarted agent"
    greet(HOST, 1000)
    HOST.send(pressure(2, "medium", rb=4096, rw=100))
    wait_for(lambda: state().startswith("medium seq=2 "), 10, what="state after agent restart")
    wait_for(lambda: G.shell("cat /run/act.out 2>/dev/null").strip() == "medium medium 4096 100",
             10, what="medium.exec ran")
    HOST.send(pressure(3, "critical"))
    wait_for(lambda: "critical: dropped caches" in agent_log(), 10, what="critical.drop-caches")
    G.shell("rm -f /etc/vmcg/guest-agent.conf")
    # The watcher of test_watch saw the agent go and exited 0.
    G.shell("wait $(cat /run/watch.pid)")


ECHO_DIR = None


def setup():
    global G, ECHO, ECHO_DIR
    try:
        image = ensure_guest_built()
        qemu = qemu_binary()
    except GuestUnavailable as e:
        raise tap.Skip(e)
    diag("qemu %s; guest %s" % (qemu, image))
    ECHO_DIR = tempfile.mkdtemp(prefix="vmcg-echo-")
    ECHO = os.path.join(ECHO_DIR, "echo.sock")
    G = Guest(name="agent", disk=False, pressure_channel=True, extra_args=[
        "-chardev", "socket,id=echo0,path=%s,server=on,wait=off" % _chardev_path(ECHO),
        "-device", "virtserialport,bus=vser0.0,chardev=echo0,name=" + ECHO_PORT])
    G.__enter__()
    diag("guest ready in %.1f s (%s)" % (G.boot_seconds, G.accel))


def cleanup():
    if HOST is not None:
        HOST.close()
    if G is not None:
        diag("agent log:\n" + G.shell("tail -n 30 /run/vmcg/agent.log", check=False))
        G.stop()
    if ECHO_DIR:
        shutil.rmtree(ECHO_DIR, ignore_errors=True)


TESTS = [
    ("agent_running", test_agent_running),
    ("hello", test_hello),
    ("state_follows", test_state_follows),
    ("watch", test_watch),
    ("reports", test_reports),
    ("junk", test_junk),
    ("flood", test_flood),
    ("latency", test_latency),
    ("host_reconnect", test_host_reconnect),
    ("agent_restart", test_agent_restart),
]


if __name__ == "__main__":
    sys.exit(tap.main(TESTS, setup=setup, cleanup=cleanup))
