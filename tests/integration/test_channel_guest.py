#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The guest pressure channel end to end: the real vmcgd, real QEMU guests
(TCG here), the real vmcg-guest-agent in each guest (docs/guest-channel.md,
docs/guest-agent.md). Prints TAP.

    vmcgd --- a.pressure --- org.vmcg.pressure.0 --- agent (guest a)
      |                                              `-> --watch --wait subscriber
      |                                                  > org.vmcg.test.echo --> host
      `------ b.pressure --- org.vmcg.pressure.0 --- agent (guest b), the same

    /g          (limits set per test)
    |- vm a     384 MiB, 1 vCPU
    `- vm b     384 MiB, 1 vCPU

Each guest's `vmcg-guest-agent --watch --wait` subscriber writes every
level line to a second virtio port that this script reads, stamping each
line with the host's clock as it arrives; the daemon's `vmpressure` events
(SSE) are stamped the same way, so "the guest saw it N s after the daemon
raised it" compares two host times (the guests' clocks are not used).

Tests, in order, on one vmcgd and the same two guests:

- level_reaches_guest_subscriber: memhog in a puts /g over memory.high
  (unreclaimable): the subscribers in both guests see medium or critical
  within 2 s of the daemon's first medium/critical event for /g, and none
  again after relief (memhog freed, high raised);
- reports_reach_api: each guest's PSI/meminfo report is in GET /v1/vms
  (channel.report: psi, available, age) and in /metrics, fresh, and
  `available` agrees with the guest's own MemAvailable;
- stalled_guest_held_sibling_pays: a thrashes (memhog near its RAM and a
  disk file read over and over: real reclaim and refaults, real PSI); b
  only has page cache. /g over high: a's balloon target is held while b's
  goes down; /g given room: a gets memory back first;
- silent_guest_disconnected: b's agent stopped and the channel reconnected:
  b's channel stays `disconnected`, the API answers, a's reports flow;
- agent_restart_hello_and_level: b's agent started again: `connected`,
  and its state file has the current level at once (seq > 0);
- hostile_guest_muted_others_fine: b's agent stopped, the guest shell writes
  junk, an oversized line and a flood straight into the port: dropped,
  counted, muted (`channel_muted`), while a's reports and level pushes keep
  flowing and the control loop and the API go on; b's agent is started
  again while b is still muted (its hello is dropped);
- muted_guest_recovers: when the mute runs out (30 s) vmcgd says hello
  and the level again, so that agent hears the host and reports again
  (it waited for ever before: found here, fixed in daemon/channel.c).

STALL (guest-stall, percent) is 10 here, not the default 20: under TCG
the thrashing guest's real `some avg10` reaches 15-17 % within about
10 s (memhog in all but ~100 MiB of what it has, plus the 240 MiB data
file read in a loop), and the idle sibling stays under 1 %;
$VMCG_GUEST_STALL overrides it.
"""

import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vmcgtest import Guest, connect_unix, ensure_guest_built, GuestUnavailable, qemu_binary, tap, wait_for  # noqa: E402
from vmcgtest.daemon import FAST_DAEMON_CONF, Daemon, MiB, vmcgd_binary  # noqa: E402
from vmcgtest.guest import _chardev_path  # noqa: E402

GUEST_MIB = 384
ECHO_PORT = "org.vmcg.test.echo"
PORT = "/dev/virtio-ports/org.vmcg.pressure.0"
LEVELS = ("none", "low", "medium", "critical")
STALL = int(os.environ.get("VMCG_GUEST_STALL", "10"))
REPORT_MS = 500

CONF = FAST_DAEMON_CONF + """vmpressure-hold = 3s
channel-report-interval = %dms
guest-stall = %d
""" % (REPORT_MS, STALL)

D = None
G = {}       # name -> VmGuest
ECHO = {}    # name -> Echo
TMP = None
MUTE = {}


def diag(msg):
    tap.diag(msg)


class Echo:
    """The host end of a guest's echo port: every line the guest's
    `--watch --wait` subscriber prints, with the host's arrival time."""

    def __init__(self, path):
        self.sock = connect_unix(path, 30)
        self.lines = []  # (t, level, seq, text)
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        buf = b""
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            if not data:
                return
            t = time.monotonic()
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode("utf-8", "replace").strip()
                m = re.match(r"(\w+) seq=(\d+)", text)
                if m:
                    with self.lock:
                        self.lines.append((t, m.group(1), int(m.group(2)), text))

    def since(self, t0):
        with self.lock:
            return [x for x in self.lines if x[0] >= t0]

    def close(self):
        self.sock.close()


class VmGuest(Guest):
    """A guest with a second QMP socket for vmcgd, the pressure port, and an echo port."""

    def __init__(self, tmpdir, name):
        self.daemon_qmp = str(Path(tmpdir) / ("%s.qmp" % name))
        self.echo_path = str(Path(tmpdir) / ("%s.echo" % name))
        super().__init__(name=name, mem_mib=GUEST_MIB, pressure_channel=True, extra_args=[
            "-qmp", "unix:%s,server=on,wait=off" % self.daemon_qmp,
            "-chardev", "socket,id=echo0,path=%s,server=on,wait=off" % _chardev_path(self.echo_path),
            "-device", "virtserialport,bus=vser0.0,chardev=echo0,name=" + ECHO_PORT])


def start_watcher(name):
    """(Re)starts the guest's --watch --wait subscriber writing to the echo port."""
    g = G[name]
    g.shell("kill $(cat /run/watch.pid 2>/dev/null) 2>/dev/null; "
            "vmcg-guest-agent --watch --wait >/dev/virtio-ports/%s 2>/run/watch.err & "
            "echo $! >/run/watch.pid" % ECHO_PORT)


def channel(name):
    return D.vm(name)["channel"]


def state_file(name):
    return G[name].shell("cat /run/vmcg/pressure 2>/dev/null; true").strip()


def agent_running(name):
    return G[name].shell_status("kill -0 $(cat /run/vmcg/agent.pid 2>/dev/null) 2>/dev/null")[0] == 0


def stop_agent(name):
    g = G[name]
    g.shell("kill $(cat /run/vmcg/agent.pid) 2>/dev/null; true")
    wait_for(lambda: g.shell_status("test -e /run/vmcg/pressure.sock")[0] != 0, 20,
             what="%s's agent gone" % name)


def start_agent(name):
    G[name].shell("vmcg-guest-agent </dev/null >>/run/vmcg/agent.log 2>&1 & "
                  "echo $! >/run/vmcg/agent.pid")


def report_seq_moves(name, timeout=20):
    """A report from @name that arrived after this call reaches the API."""
    t0 = time.monotonic()

    def fresh():
        r = channel(name)["report"]
        return r and r["age-usec"] < (time.monotonic() - t0) * 1e6 - 50000 and r
    return wait_for(fresh, timeout, interval=0.2, what="a new report from %s" % name)


def level_idx(lv):
    return LEVELS.index(lv)


def current(path):
    return D.group(path)["memory.current"]


# -- tests -------------------------------------------------------------------

def test_level_reaches_guest_subscriber():
    a, b = G["a"], G["b"]
    base = current("/g")
    diag("/g %d MiB after boot (a %d, b %d)" % (base >> 20, D.vm("a")["memory.current"] >> 20,
                                                D.vm("b")["memory.current"] >> 20))
    t0 = time.monotonic()
    # 200 MiB of anonymous memory in a: nothing the balloon can take; with
    # /g's high at 200M the two guests cannot fit, so the level climbs.
    hog = a.hog(200)
    D.put("/v1/groups/g", {"memory.high": "200M"})

    def raised():
        ev = [(t, d) for t, d in D.events_since(t0, "vmpressure")
              if d.get("group") == "/g" and level_idx(d["level"]) >= 2]
        return ev and ev[0]
    t_raise, ev = wait_for(raised, 120, interval=0.1, what="/g medium or critical (event)")
    seen = {}
    for n in ("a", "b"):
        line = wait_for(lambda: next((x for x in ECHO[n].since(t0) if level_idx(x[1]) >= 2), None),
                        30, interval=0.05, what="%s's subscriber sees medium/critical" % n)
        seen[n] = line
        diag("%s: subscriber saw %r %.3f s after the daemon's first %s event for /g"
             % (n, line[3], line[0] - t_raise, ev["level"]))
    api = D.group("/g")["vmpressure"]
    diag("/g in the API: %s; a balloon %d MiB, b balloon %d MiB" % (
        api, D.vm("a")["balloon"]["actual"] >> 20, D.vm("b")["balloon"]["actual"] >> 20))
    for n in ("a", "b"):
        assert seen[n][0] - t_raise < 2.0, (n, seen[n][0] - t_raise)
        # The state file agrees (polled through the guest shell).
        wait_for(lambda: level_idx(state_file(n).split()[0]) >= 1, 10, what="%s state file" % n)
    # Relief: memhog freed and the limit raised; the level goes back to
    # none after vmpressure-hold (3 s), and the subscribers hear it.
    t1 = time.monotonic()
    a.unhog(hog)
    D.put("/v1/groups/g", {"memory.high": "max"})
    for n in ("a", "b"):
        line = wait_for(lambda: next((x for x in ECHO[n].since(t1) if x[1] == "none"), None), 60,
                        interval=0.1, what="%s's subscriber sees none again" % n)
        diag("%s: none %.1f s after relief" % (n, line[0] - t1))
        wait_for(lambda: state_file(n).startswith("none "), 10, what="%s state file none" % n)
    # Every line a subscriber got had a larger seq than the one before.
    for n in ("a", "b"):
        seqs = [s for _, _, s, _ in ECHO[n].since(t0)]
        assert seqs == sorted(seqs), (n, seqs)


def test_reports_reach_api():
    for n in ("a", "b"):
        r = wait_for(lambda: channel(n)["report"], 20, what="%s's report" % n)
        c = channel(n)
        assert c["state"] == "connected" and c["version"] == 1, c
        assert c["agent"].startswith("vmcg-guest-agent"), c
        psi = r["psi"]
        assert psi is not None, r  # the Debian kernel has PSI
        assert 0 <= psi["some-avg10"] <= 100 and 0 <= psi["full-avg10"] <= psi["some-avg10"] + 0.01, r
        assert psi["some-total-usec"] >= psi["full-total-usec"] >= 0, r
        assert 0 < r["available"] <= GUEST_MIB * MiB, r
        assert r["file"] is not None and r["anon"] is not None, r
        # Fresh: reports come every 500 ms; TCG and two loaded cores: allow 3 intervals.
        assert r["age-usec"] < 3 * REPORT_MS * 1000, r
        # available agrees with the guest's own MemAvailable (it moves; 32 MiB slack).
        mi = G[n].meminfo()["MemAvailable"]
        r2 = channel(n)["report"]
        assert abs(r2["available"] - mi) < 32 * MiB, (r2["available"] >> 20, mi >> 20)
        diag("%s: psi some %.2f%% full %.2f%%, available %d MiB (guest says %d), age %d ms" % (
            n, psi["some-avg10"], psi["full-avg10"], r2["available"] >> 20, mi >> 20,
            r2["age-usec"] // 1000))
    # Reports keep coming: the age stays small over several seconds.
    for _ in range(6):
        time.sleep(0.5)
        for n in ("a", "b"):
            assert channel(n)["report"]["age-usec"] < 3 * REPORT_MS * 1000, channel(n)
    text = D.request("GET", "/metrics")
    for n in ("a", "b"):
        assert 'vmcg_vm_channel_connected{vm="%s",group="/g"} 1' % n in text, text[-3000:]
        assert re.search(r'vmcg_vm_guest_psi_avg10_percent\{vm="%s",group="/g",kind="some"\} \d' % n,
                         text), text[-3000:]


def some_avg10(n):
    r = channel(n)["report"]
    return r["psi"]["some-avg10"] if r and r["psi"] else 0.0


def test_stalled_guest_held_sibling_pays():
    a, b = G["a"], G["b"]
    # Both with page cache, then /g under it: both ballooned down, so that
    # "gets memory back first" has something to give a later.
    for k in range(8):
        a.read_disk(16, skip_mib=16 * k)
        b.read_disk(16, skip_mib=16 * k)
    cur = current("/g")
    D.put("/v1/groups/g", {"memory.high": str(cur - 160 * MiB)})
    wait_for(lambda: all(D.vm(n)["balloon"]["target"] <= (GUEST_MIB - 48) * MiB for n in "ab"),
             90, interval=0.25, what="both ballooned down")
    # Hold it there: just above the group's charge (no reclaim, and under
    # hysteresis no deflate).
    D.put("/v1/groups/g", {"memory.high": str(current("/g") + 8 * MiB)})
    diag("ballooned: a target %d MiB, b target %d MiB" % (
        D.vm("a")["balloon"]["target"] >> 20, D.vm("b")["balloon"]["target"] >> 20))
    # b: its cache again (the balloon took part of it), which the balloon
    # can take cheaply. a: memhog close to what it has, then the 240 MiB
    # disk file read over and over: page cache reclaimed and refaulted all
    # the time, real reclaim stalls and refaults (PSI memory "some").
    for k in range(8):
        b.read_disk(16, skip_mib=16 * k)
    avail = a.meminfo()["MemAvailable"] >> 20
    hog = a.hog(max(32, avail - 100))
    a.shell("(while :; do dd if=/mnt/disk/data of=/dev/null bs=1M 2>/dev/null; done) "
            ">/dev/null 2>&1 & echo $! >/run/thrash.pid")
    try:
        t0 = time.monotonic()
        wait_for(lambda: some_avg10("a") >= STALL + 5, 180, interval=0.5,
                 what="a's PSI some avg10 at guest-stall (%d%%) + 5" % STALL)
        diag("a stalls: some avg10 %.1f%% after %.0f s (memhog %d MiB); b %.1f%%"
             % (some_avg10("a"), time.monotonic() - t0, max(32, avail - 100), some_avg10("b")))
        assert some_avg10("b") < STALL, channel("b")["report"]
        va, vb = D.vm("a"), D.vm("b")
        ta0, tb0 = va["balloon"]["target"], vb["balloon"]["target"]
        cur = current("/g")
        high = cur - 96 * MiB
        diag("/g %d MiB (a %d, b %d); a target %d MiB, b target %d MiB; high -> %d MiB" % (
            cur >> 20, va["memory.current"] >> 20, vb["memory.current"] >> 20,
            ta0 >> 20, tb0 >> 20, high >> 20))
        D.put("/v1/groups/g", {"memory.high": str(high)})
        samples = []

        def b_paid():
            va, vb = D.vm("a"), D.vm("b")
            samples.append((va["balloon"]["target"], vb["balloon"]["target"], some_avg10("a")))
            return vb["balloon"]["target"] <= tb0 - 16 * MiB
        wait_for(b_paid, 60, interval=0.25, what="b's balloon target lowered")
        # A few more intervals with the group over its limit.
        end = time.monotonic() + 3
        while time.monotonic() < end:
            b_paid()
            time.sleep(0.25)
        diag("targets a/b (MiB) and a's avg10: " + " ".join(
            "%d/%d/%.0f" % (x >> 20, y >> 20, s) for x, y, s in samples[::2]))
        held = [x for x, _, s in samples if s >= STALL]
        assert held, "a's stall fell under guest-stall during the test"
        assert min(held) >= ta0, "a was ballooned while stalled: %d -> %d MiB" % (
            ta0 >> 20, min(held) >> 20)
        # Some room again (64 MiB above the charge, past the 16 MiB
        # hysteresis): a (stalled, ballooned before) gets it first. b's
        # target moves by itself with its guest's statistics (its floor), so
        # "first" is: a has gained 16 MiB no later than b has gained 32 MiB,
        # and a gains most of the room.
        ta1, tb1 = D.vm("a")["balloon"]["target"], D.vm("b")["balloon"]["target"]
        assert ta1 < GUEST_MIB * MiB, "a's balloon is at its full size: nothing to give back"
        assert some_avg10("a") >= STALL, channel("a")["report"]
        D.put("/v1/groups/g", {"memory.high": str(current("/g") + 80 * MiB)})
        got = []

        def a_grown():
            ta, tb = D.vm("a")["balloon"]["target"], D.vm("b")["balloon"]["target"]
            got.append((ta, tb))
            return ta > ta1 + 16 * MiB or tb > tb1 + 32 * MiB
        wait_for(a_grown, 30, interval=0.05, what="a target grows")
        end = time.monotonic() + 2
        while time.monotonic() < end:
            a_grown()
            time.sleep(0.25)
        diag("some room: targets a/b (MiB) from %d/%d: %s" % (ta1 >> 20, tb1 >> 20, " ".join(
            "%d/%d" % (x >> 20, y >> 20) for x, y in got[::3])))
        ia = next(i for i, (x, y) in enumerate(got) if x > ta1 + 16 * MiB or y > tb1 + 32 * MiB)
        assert got[ia][0] > ta1 + 16 * MiB, ("b first", ta1 >> 20, tb1 >> 20, got[ia])
        assert max(x for x, _ in got) >= min(ta1 + 48 * MiB, GUEST_MIB * MiB), got[-1]
        # All the room: b too.
        D.put("/v1/groups/g", {"memory.high": "max"})
        wait_for(lambda: D.vm("b")["balloon"]["target"] > tb1, 30, what="b's target grows too")
    finally:
        D.put("/v1/groups/g", {"memory.high": "max"})
        a.shell("kill $(cat /run/thrash.pid) 2>/dev/null; true", timeout=120)
        a.unhog(hog)
        b.drop_disk_cache()


def test_silent_guest_disconnected():
    stop_agent("b")
    path = channel("b")["path"]
    # A new connection that no agent answers.
    D.put("/v1/vms/b", {"channel": ""})
    D.put("/v1/vms/b", {"channel": path})
    t0 = time.monotonic()
    while time.monotonic() < t0 + 5:
        c = channel("b")
        assert c["state"] == "disconnected" and c["report"] is None, c
        t1 = time.monotonic()
        D.get("/v1/vms")
        assert time.monotonic() - t1 < 1.0
        time.sleep(0.5)
    # The other guest's reports go on.
    report_seq_moves("a")
    assert channel("a")["state"] == "connected"


def test_agent_restart_hello_and_level():
    t0 = time.monotonic()
    start_agent("b")
    wait_for(lambda: channel("b")["state"] == "connected", 30, what="b connected again")
    took = time.monotonic() - t0
    # The level right away: the state file has a host seq.
    s = wait_for(lambda: (lambda s: re.match(r"\w+ seq=([1-9]\d*) ", s) and s)(state_file("b")), 10,
                 what="b's state file has the host's level")
    diag("b connected %.1f s after its agent restarted; state %r" % (took, s))

    def chain():
        return LEVELS[max(level_idx(D.group("/g")["vmpressure"]), level_idx(D.group("/")["vmpressure"]))]
    wait_for(lambda: state_file("b").split()[0] == chain(), 15, interval=0.5,
             what="b's level is the daemon's")
    assert channel("b")["agent"].startswith("vmcg-guest-agent")
    wait_for(lambda: channel("b")["report"], 10, what="b reports again")
    # A subscriber started after the restart gets the current line.
    start_watcher("b")
    wait_for(lambda: ECHO["b"].since(t0), 20, what="b's subscriber has a line")


def test_hostile_guest_muted_others_fine():
    b = G["b"]
    stop_agent("b")
    d0 = channel("b")["dropped"]
    t0 = time.monotonic()
    b.shell("printf 'hello there\\n[1,2,3]\\n{\"no\":\"type\"}\\n' >%s" % PORT)
    b.shell("{ head -c 6000 /dev/zero | tr '\\0' x; echo; } >%s" % PORT)
    wait_for(lambda: channel("b")["dropped"] >= d0 + 4, 20, what="junk counted")
    b.shell("yes '{\"junk\":1}' | head -n 300 >%s" % PORT)
    wait_for(lambda: channel("b")["state"] == "muted", 20, what="b muted")
    wait_for(lambda: any(d.get("vm") == "b" for _, d in D.events_since(t0, "channel_muted")), 10,
             what="channel_muted event")
    dropped = wait_for(lambda: (lambda n: n >= d0 + 304 and n)(channel("b")["dropped"]), 20,
                       what="every junk line counted")
    diag("b: %d lines dropped, muted" % (dropped - d0))
    # Meanwhile: a's reports keep coming, the API answers, and level pushes
    # reach a's subscriber: /g over high (a reclaim hint) and back.
    report_seq_moves("a")
    t1 = time.monotonic()
    D.get("/v1/status")
    assert time.monotonic() - t1 < 1.0
    t2 = time.monotonic()
    hog = G["a"].hog(200)
    try:
        D.put("/v1/groups/g", {"memory.high": "200M"})
        line = wait_for(lambda: next((x for x in ECHO["a"].since(t2) if x[1] != "none"), None), 60,
                        interval=0.1, what="a's subscriber sees the level while b is muted")
        diag("a's subscriber: %r while b is muted" % line[3])
        # The control loop works: a high event is counted for /g.
        wait_for(lambda: D.group("/g")["memory.events"]["high"] > 0, 30, what="high events")
        assert channel("b")["state"] == "muted"
    finally:
        D.put("/v1/groups/g", {"memory.high": "max"})
        G["a"].unhog(hog)
    assert D.running()
    # b's agent starts again while b is still muted: its hello is dropped.
    hellos = G["b"].shell("grep -c 'host hello' /run/vmcg/agent.log; true").strip()
    start_agent("b")
    assert channel("b")["state"] == "muted"
    MUTE["t"], MUTE["hellos"] = t0, int(hellos or 0)


def test_muted_guest_recovers():
    """The mute runs out (30 s): b's agent, restarted during the mute, hears
    the host's hello and the level, and its reports reach the API again."""
    wait_for(lambda: channel("b")["state"] != "muted", 60, interval=0.5, what="the mute over")
    diag("b unmuted %.1f s after the flood" % (time.monotonic() - MUTE["t"]))
    wait_for(lambda: int(G["b"].shell("grep -c 'host hello' /run/vmcg/agent.log; true").strip() or 0)
             > MUTE["hellos"], 20, interval=0.5, what="b's agent hears the host's hello again")
    report_seq_moves("b", timeout=20)
    wait_for(lambda: channel("b")["state"] == "connected", 10, what="b connected")
    wait_for(lambda: re.match(r"\w+ seq=[1-9]", state_file("b")), 10, what="b's level")


# -- setup -------------------------------------------------------------------

def setup():
    global D, TMP
    try:
        ensure_guest_built()
        qemu_binary()
    except GuestUnavailable as e:
        raise tap.Skip("no test guest on this host: %s" % e)
    vmcgd_binary()
    D = Daemon(config=CONF)
    D.__enter__()
    D.follow_events()
    TMP = tempfile.mkdtemp(prefix="vmcg-chg-")
    D.put("/v1/groups/g", {})
    for n in ("a", "b"):
        g = VmGuest(TMP, n)
        G[n] = g
        g.__enter__()
        diag("guest %s ready in %.1f s (%s)" % (n, g.boot_seconds, g.accel))
        ECHO[n] = Echo(g.echo_path)
        wait_for(lambda: agent_running(n), 30, what="%s's agent" % n)
        D.post("/v1/vms", {"name": n, "qmp": g.daemon_qmp, "group": "/g",
                           "channel": g.pressure_socket})
    for n in ("a", "b"):
        wait_for(lambda: D.vm(n)["state"] == "ready" and D.vm(n)["memory.current"] > 0, 60,
                 what="%s adopted" % n)
        wait_for(lambda: channel(n)["state"] == "connected", 30, what="%s's channel connected" % n)
        start_watcher(n)
        wait_for(lambda: ECHO[n].lines, 20, what="%s's subscriber's first line" % n)


def cleanup():
    for e in ECHO.values():
        e.close()
    for n, g in G.items():
        try:
            diag("%s agent log:\n%s" % (n, g.shell("tail -n 15 /run/vmcg/agent.log", check=False,
                                                    timeout=20)))
        except Exception as e:  # noqa: BLE001 - a dead guest has no log to show
            diag("%s: no agent log (%s)" % (n, e))
        g.stop()
    if TMP:
        shutil.rmtree(TMP, ignore_errors=True)
    if D is not None:
        alive = D.running()
        tail = D.tail()
        D.close(failed=not alive)
        assert alive, "vmcgd died:\n" + tail


TESTS = [
    ("level_reaches_guest_subscriber", test_level_reaches_guest_subscriber),
    ("reports_reach_api", test_reports_reach_api),
    ("stalled_guest_held_sibling_pays", test_stalled_guest_held_sibling_pays),
    ("silent_guest_disconnected", test_silent_guest_disconnected),
    ("agent_restart_hello_and_level", test_agent_restart_hello_and_level),
    ("hostile_guest_muted_others_fine", test_hostile_guest_muted_others_fine),
    ("muted_guest_recovers", test_muted_guest_recovers),
]

if __name__ == "__main__":
    sys.exit(tap.main(TESTS, setup=setup, cleanup=cleanup))
