#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The guest pressure channel end to end (docs/performance.md, "Guest
pressure channel"). Two figures:

latency: the real vmcgd and one real guest (TCG here) running the real
  vmcg-guest-agent, with a `vmcg-guest-agent --watch --wait` subscriber
  that writes each level line to a second virtio port read by this script.
  A memhog in the guest holds memory the balloon cannot take; each round
  puts the VM's group far under it (memory.high), so the daemon raises the
  level to medium or critical, then lifts the limit so that the level
  falls back to none (vmpressure-hold 0). Per round: the host time the
  daemon's `vmpressure` event (SSE) arrived -> the host time the guest
  subscriber's line arrived; and the PUT -> the subscriber's line. All
  times are this host's clock. p50/p99/max.

memory: vmcgd with N VMs (default 1000) whose QEMUs are faked by this
  process (QMP) in one selector loop, first without channels, then each
  given a channel served by this process (a fake chardev answering hello
  and reporting every second). vmcgd's VmRSS before and after, per channel.

Usage: tests/bench/bench-channel-e2e.py [latency] [memory] [--rounds 40] [--vms 1000]
Needs: vmcgd ($VMCGD or build/), for latency the test guest.
"""

import argparse
import json
import os
import selectors
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
os.environ.setdefault("VMCGD", str(ROOT / "build" / "daemon" / "vmcgd"))
os.environ.setdefault("VMCG_GUEST_DIR", str(ROOT / "build" / "test-guest"))

from vmcgtest import wait_for  # noqa: E402
from vmcgtest.daemon import Daemon, MiB  # noqa: E402


def tmpdir(prefix):
    """A temporary directory removed when this process exits."""
    import atexit
    d = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, d, True)
    return d


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


# -- latency -----------------------------------------------------------------

def latency(rounds):
    import test_channel_guest as t
    conf = t.CONF.replace("vmpressure-hold = 3s", "vmpressure-hold = 0")
    tmp = tmpdir("vmcg-bench-ch-")
    with Daemon(config=conf) as d:
        t.D = d
        ev = t.Events(d.socket)
        d.put("/v1/groups/g", {})
        g = t.VmGuest(tmp, "a")
        t.G["a"] = g
        with g:
            echo = t.Echo(g.echo_path)
            t.ECHO["a"] = echo
            d.post("/v1/vms", {"name": "a", "qmp": g.daemon_qmp, "group": "/g",
                               "channel": g.pressure_socket})
            wait_for(lambda: d.vm("a")["channel"]["state"] == "connected", 60, what="connected")
            t.start_watcher("a")
            wait_for(lambda: echo.lines, 20, what="first line")
            g.hog(200)
            from_event, from_put = [], []
            for r in range(rounds):
                t0 = time.monotonic()
                d.put("/v1/groups/g", {"memory.high": "100M"})
                line = wait_for(lambda: next((x for x in echo.since(t0) if x[1] in ("medium", "critical")),
                                             None), 60, interval=0.01, what="guest sees the level")
                evs = [(tt, e) for tt, e in ev.since(t0, "vmpressure")
                       if e.get("group") == "/g" and e["level"] == line[1]]
                t_ev = evs[0][0] if evs else None
                from_put.append(line[0] - t0)
                if t_ev is not None:
                    from_event.append(line[0] - t_ev)
                print("round %2d: %-8s put->guest %6.1f ms, event->guest %s" % (
                    r + 1, line[1], (line[0] - t0) * 1000,
                    "%6.1f ms" % ((line[0] - t_ev) * 1000) if t_ev else "-"), flush=True)
                t1 = time.monotonic()
                d.put("/v1/groups/g", {"memory.high": "max"})
                wait_for(lambda: any(x[1] == "none" for x in echo.since(t1)), 60, interval=0.05,
                         what="none again")
            echo.close()
        ev.close()
    for name, xs in (("daemon event -> guest subscriber", from_event),
                     ("PUT memory.high -> guest subscriber", from_put)):
        if xs:
            print("%-38s p50 %6.1f ms  p99 %6.1f ms  max %6.1f ms  (%d rounds)" % (
                name, pct(xs, 50) * 1000, pct(xs, 99) * 1000, max(xs) * 1000, len(xs)))


# -- memory ------------------------------------------------------------------

GREETING = {"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": ""},
                    "capabilities": []}}
RAM = 64 * MiB


class Fakes:
    """QMP servers and channel chardevs for many VMs in one selector loop."""

    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self.hellos = 0
        self.stop = False
        self.conns = {}  # sock -> [kind, buf, name, seq]
        threading.Thread(target=self._loop, daemon=True).start()

    def listen(self, path, kind, name):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.listen(4)
        s.setblocking(False)
        with self.lock:
            self.sel.register(s, selectors.EVENT_READ, ("listen", kind, name))

    def _answer(self, cmd):
        if cmd == "query-memdev":
            return [{"id": "pc.ram", "size": RAM, "merge": True, "dump": True, "prealloc": False,
                     "share": False, "policy": "default", "host-nodes": []}]
        if cmd == "query-balloon":
            return {"actual": RAM}
        if cmd == "qom-list":
            return []
        return {}

    def _send(self, c, obj):
        try:
            c.sendall((json.dumps(obj) + "\n").encode())
        except (BlockingIOError, OSError):
            pass

    def _loop(self):
        last_report = time.monotonic()
        while not self.stop:
            with self.lock:
                ready = self.sel.select(timeout=0.2)
            for key, _ in ready:
                data = key.data
                if data[0] == "listen":
                    try:
                        c, _ = key.fileobj.accept()
                    except OSError:
                        continue
                    c.setblocking(False)
                    st = [data[1], b"", data[2], 0, False]
                    self.conns[c] = st
                    with self.lock:
                        self.sel.register(c, selectors.EVENT_READ, ("conn",))
                    if data[1] == "qmp":
                        self._send(c, GREETING)
                    continue
                c = key.fileobj
                st = self.conns[c]
                try:
                    chunk = c.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    with self.lock:
                        self.sel.unregister(c)
                    del self.conns[c]
                    c.close()
                    continue
                st[1] += chunk
                self._handle(c, st)
            now = time.monotonic()
            if now - last_report >= 1.0:
                last_report = now
                for c, st in list(self.conns.items()):
                    if st[0] == "chan" and st[4]:
                        st[3] += 1
                        self._send(c, {"type": "report", "seq": st[3],
                                       "psi": {"some": {"avg10": 0.5, "total": 1000 * st[3]},
                                               "full": {"avg10": 0.0, "total": 0}},
                                       "mem": {"available": 32 * MiB, "file": 8 * MiB,
                                               "anon": 16 * MiB}})

    def _handle(self, c, st):
        if st[0] == "qmp":
            dec = json.JSONDecoder()
            text = st[1].decode()
            while True:
                text = text.lstrip()
                if not text:
                    break
                try:
                    msg, end = dec.raw_decode(text)
                except ValueError:
                    break
                text = text[end:]
                cmd = msg.get("execute")
                reply = {"return": self._answer(cmd)}
                if "id" in msg:
                    reply["id"] = msg["id"]
                self._send(c, reply)
            st[1] = text.encode()
            return
        while b"\n" in st[1]:
            line, st[1] = st[1].split(b"\n", 1)
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("type") == "hello":
                st[4] = True
                self.hellos += 1
                self._send(c, {"type": "hello", "version": 1, "agent": "bench-fake 1"})


def rss_kib(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def settle_rss(pid, seconds=6):
    xs = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        xs.append(rss_kib(pid))
        time.sleep(0.5)
    return max(xs[-4:])


def memory(nvms):
    tmp = Path(tmpdir("vmcg-bench-chm-"))
    fakes = Fakes()
    conf = "[daemon]\ninterval = 1s\nstats-interval = 0\nwrite-group =\n"
    with Daemon(config=conf) as d:
        d.put("/v1/groups/b", {})
        t0 = time.monotonic()
        for i in range(nvms):
            name = "v%04d" % i
            fakes.listen(str(tmp / (name + ".qmp")), "qmp", name)
            fakes.listen(str(tmp / (name + ".ch")), "chan", name)
            d.post("/v1/vms", {"name": name, "qmp": str(tmp / (name + ".qmp")), "group": "/b"})
        wait_for(lambda: sum(1 for v in d.get("/v1/vms") if v["state"] == "ready") == nvms, 300,
                 interval=1, what="all ready")
        print("%d VMs registered and ready in %.1f s" % (nvms, time.monotonic() - t0), flush=True)
        pid = d.proc.pid
        base = settle_rss(pid)
        t1 = time.monotonic()
        for i in range(nvms):
            name = "v%04d" % i
            d.put("/v1/vms/" + name, {"channel": str(tmp / (name + ".ch"))})
        wait_for(lambda: fakes.hellos >= nvms, 300, interval=0.5, what="every channel greeted")
        wait_for(lambda: sum(1 for v in d.get("/v1/vms")
                             if v["channel"] and v["channel"]["state"] == "connected") == nvms,
                 300, interval=1, what="every channel connected")
        print("%d channels connected in %.1f s" % (nvms, time.monotonic() - t1), flush=True)
        time.sleep(3)  # a few reports per channel
        with_ch = settle_rss(pid)
        reported = sum(1 for v in d.get("/v1/vms") if v["channel"]["report"])
        print("vmcgd VmRSS: %d KiB with %d VMs, %d KiB with their channels (%d reported): "
              "+%d KiB, %.1f KiB per channel" % (base, nvms, with_ch, reported, with_ch - base,
                                                   (with_ch - base) / nvms))
        fakes.stop = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", nargs="*", default=["latency", "memory"])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--vms", type=int, default=1000)
    args = ap.parse_args()
    if "memory" in args.what:
        memory(args.vms)
    if "latency" in args.what:
        latency(args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
