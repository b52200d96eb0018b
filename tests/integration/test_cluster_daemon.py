#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Cluster-wide quotas in the daemon (docs/cluster.md, issue 12): two real
vmcgd sharing one cluster group through a real three-member etcd, each with
one real guest (QEMU, the test kernel) whose charge is its sampled RAM.

             etcd m0  m1  m2      (private ports, vmcgtest/etcd.py)
             |  \\      /  |
             |   proxy B      (a TCP relay per member for host B: the
             |    |            partition test stops relaying, as a
        vmcgd A   vmcgd B      firewall that drops B's packets would)
           |         |
        guest a   guest b      384 MiB each, one vCPU, balloon with
                               free-page reporting; group /t on both,
                               cluster.memory.max = Q

Q is set from what the booted guests use: base(a) + base(b) + 380 MiB, so
that one guest at a time can hold 192 MiB of memhogs, not both. A guest
hogs in steps of 32 MiB a second apart, each smaller than the room a
grant leaves above usage (half the cluster hysteresis of 128 MiB): the
step brings the group within a quarter hysteresis of its cap, and the
next round's probe (usage + 128 MiB) grows the grant before the next
step. A guest that took 200 MiB at once would meet its balloon before its
grant, and the guest's OOM killer would end memhog.

  demand-moves       a hogs, frees; b hogs, frees; a hogs again. Sampled
                     every 100 ms through the whole run: the grants in
                     etcd never add up to more than Q, and the charges of
                     the two daemons never to more than Q + SLACK. The
                     slice moves to whichever host hogs (figures printed).
  leader-killed      the etcd leader is SIGKILLed: for 6 s no grant in
                     etcd moves, no charge moves by more than 16 MiB,
                     both daemons are synced again within 10 s.
  partition          B's relay drops everything: B says "partitioned"
                     and, while its guest hogs 100 MiB with room in the
                     pool, its grant and its enforced cap never grow; A
                     stays synced. Relay back: B hogs again, a step at a
                     time (memhog may reuse pages freed but not yet
                     reported), and its grant grows.
  restart-rereads    B's vmcgd is SIGKILLed and started again within the
                     lease's TTL: its record stays in etcd throughout, its
                     first grant is the one it had (or the decision made on
                     it from its usage), never a join from 0, and its guest
                     comes back from the state file.
  drift              B's quota is lowered through the API: both daemons
                     report drift and the smaller quota in force; the
                     drift is gone once B's quota is back.
  killed-returns     B's vmcgd is SIGKILLed for good: its record goes
                     when its lease expires, not before the TTL and within
                     TTL + 3 s, and A's pool grows by B's grant.

SLACK (per run, not per host): a sampled charge is seen after the guest
touched it, and the balloon takes it back a tick later, so each host may
exceed its enforced cap by what its guest touches in a tick or two. Here
that is 2 x 48 MiB. The grants themselves have no slack.

Needs the test guest (tests/guest) and /usr/bin/etcd: a missing etcd is a
failure; a host that cannot run a guest skips with the reason. Prints TAP.
"""

import base64
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vmcgtest import tap, wait_for  # noqa: E402
from vmcgtest.daemon import FAST_DAEMON_CONF, Daemon, MiB, vmcgd_binary  # noqa: E402
from vmcgtest.etcd import EtcdCluster, etcd_binary, post  # noqa: E402
from vmcgtest.guest import (Guest, GuestCommandError, GuestTimeout,  # noqa: E402
                             GuestUnavailable, ensure_guest_built, log, qemu_binary)

GUEST_MIB = 384
HOG_MIB = 192
HOG_STEP_MIB = 32
TTL_S = 12
SLACK = 96 * MiB
GROUP = "/t"
PREFIX = "/vmcg/cluster/v1/groups/%2Ft/grants/"

BED = None


class Relay:
    """A TCP relay to one etcd member; drop() stops relaying in both directions
    (bytes are read and thrown away, new connections accepted and ignored), as a
    firewall dropping the packets would: the client sees no answer, no reset."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.dropping = False
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._pump, args=(c,), daemon=True).start()

    def _pump(self, c):
        try:
            u = socket.create_connection(self.target, timeout=5)
        except OSError:
            c.close()
            return
        pair = {c: u, u: c}
        try:
            while not self.closed:
                r, _, _ = select.select(list(pair), [], [], 0.2)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    if not self.dropping:
                        pair[s].sendall(data)
        except OSError:
            pass
        finally:
            c.close()
            u.close()

    def close(self):
        self.closed = True
        self.sock.close()


def cluster_conf(name, endpoints):
    return FAST_DAEMON_CONF + """[cluster]
etcd = %s
node = host-%s
lease-ttl = %ds
hysteresis = 128M
shrink-wait = 20s
""" % (",".join(endpoints), name, TTL_S)


class VmGuest(Guest):
    """A guest with a second QMP socket for vmcgd."""

    def __init__(self, qmp_dir, name):
        self.daemon_qmp = str(Path(qmp_dir) / ("%s.qmp" % name))
        super().__init__(name=name, mem_mib=GUEST_MIB,
                         extra_args=["-qmp", "unix:%s,server=on,wait=off" % self.daemon_qmp])


class Bed:
    def __init__(self):
        self.etcd = EtcdCluster(n=3)
        self.relays = [Relay(p) for p in self.etcd.client_ports]
        relayed = ["http://127.0.0.1:%d" % r.port for r in self.relays]
        self.da = Daemon(config=cluster_conf("a", self.etcd.endpoints))
        self.db = Daemon(config=cluster_conf("b", relayed))
        self.da.start()
        self.db.start()
        self.ga = VmGuest(self.da.tmpdir, "a").start()
        self.gb = VmGuest(self.db.tmpdir, "b").start()
        self.ga.wait_ready()
        self.gb.wait_ready()
        self.quota = None
        for d, g in ((self.da, self.ga), (self.db, self.gb)):
            d.put("/v1/groups/t", {})
            d.post("/v1/vms", {"name": g.name, "qmp": g.daemon_qmp, "group": GROUP})
            wait_for(lambda d=d, g=g: d.vm(g.name)["state"] == "ready" and
                     d.vm(g.name)["memory.current"] > 0, 60, what="%s sampled" % g.name)
        # Guests settle after boot: the base is what they hold then.
        time.sleep(3)
        base = self.current(self.da) + self.current(self.db)
        self.quota = (base + 380 * MiB) // 4096 * 4096
        log("base charges %d MiB, Q = %d MiB" % (base // MiB, self.quota // MiB))
        for d in (self.da, self.db):
            d.put("/v1/groups/t", {"cluster.memory.max": self.quota})
            d.follow_events()
        wait_for(lambda: self.synced(self.da) and self.synced(self.db), 20,
                 what="both hosts hold a grant")

    @staticmethod
    def current(d):
        return d.group(GROUP)["memory.current"]

    @staticmethod
    def cluster(d):
        return d.group(GROUP)["cluster"]

    def synced(self, d):
        c = self.cluster(d)
        return c["state"] == "synced" and c["grant"] > 0

    def grants(self):
        """The grants in etcd, read from any member that answers: {host: grant}."""
        body = {"key": base64.b64encode(PREFIX.encode()).decode(),
                "range_end": base64.b64encode(PREFIX[:-1].encode() + b"0").decode()}
        for ep in self.etcd.endpoints:
            try:
                r = post(ep, "/v3/kv/range", body, timeout=1.0)
            except Exception:  # noqa: B902 - the next member
                continue
            out = {}
            for kv in r.get("kvs", []):
                key = base64.b64decode(kv["key"]).decode()
                out[key[len(PREFIX):]] = json.loads(base64.b64decode(kv["value"]))["grant"]
            return out
        raise AssertionError("no etcd member answered")

    def close(self):
        for x in (self.ga, self.gb):
            try:
                x.stop()
            except Exception:  # noqa: B902
                pass
        for d in (self.da, self.db):
            d.close()
        for r in self.relays:
            r.close()
        self.etcd.stop()


class Sampler:
    """Every 100 ms: the two charges and the grants in etcd; the worst sums."""

    def __init__(self, bed):
        self.bed = bed
        self.stop_ = threading.Event()
        self.samples = 0
        self.max_charges = 0
        self.max_grants = 0
        self.errors = []
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop_.is_set():
            try:
                ch = self.bed.current(self.bed.da) + self.bed.current(self.bed.db)
                gr = sum(self.bed.grants().values())
            except Exception as e:  # noqa: B902 - reported by stop()
                self.errors.append(repr(e))
                time.sleep(0.1)
                continue
            self.samples += 1
            self.max_charges = max(self.max_charges, ch)
            self.max_grants = max(self.max_grants, gr)
            time.sleep(0.1)

    def stop(self):
        self.stop_.set()
        self.t.join(timeout=10)
        log("%d samples: max sum of charges %d MiB, of grants %d MiB (Q %d MiB)"
            % (self.samples, self.max_charges // MiB, self.max_grants // MiB,
               self.bed.quota // MiB))
        assert self.samples >= 10, self.errors[-3:]
        assert len(self.errors) <= self.samples // 10, self.errors[-3:]
        assert self.max_grants <= self.bed.quota, "grants %d > Q %d" % (self.max_grants,
                                                                        self.bed.quota)
        assert self.max_charges <= self.bed.quota + SLACK, \
            "charges %d MiB > Q + slack %d MiB" % (self.max_charges // MiB,
                                                   (self.bed.quota + SLACK) // MiB)


def vmcgctl(d, *args):
    p = subprocess.run([os.environ.get("VMCGCTL", "vmcgctl"), "-s", d.socket] + list(args),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout


def setup():
    global BED
    try:
        ensure_guest_built()
        qemu_binary()
    except GuestUnavailable as e:
        raise tap.Skip("no test guest on this host: %s" % e)
    vmcgd_binary()
    etcd_binary()
    BED = Bed()


def cleanup():
    if BED:
        BED.close()


def hog_and_wait(g, d, what):
    """Hogs HOG_MIB in guest g, HOG_STEP_MIB at a time; waits until d's grant
    covers it. Returns the hogs and the seconds from the first step."""
    t0 = time.monotonic()
    base = BED.current(d)
    hogs = []
    for _ in range(HOG_MIB // HOG_STEP_MIB):
        hogs.append(g.hog(HOG_STEP_MIB))
        time.sleep(1)
    # memhog reuses some of what the guest had (caches): most, not all, is new.
    wait_or_show(lambda: BED.cluster(d)["grant"] >= BED.current(d) and
                 BED.current(d) >= base + HOG_MIB * 3 // 4 * MiB, 60, what)
    return hogs, time.monotonic() - t0


def picture():
    """Both hosts' cluster objects, for a failure's message."""
    out = []
    for d in (BED.da, BED.db):
        try:
            c = BED.cluster(d)
            out.append("%s: current %d MiB, %s" % (
                d.tmpdir.name, BED.current(d) // MiB,
                {k: (v // MiB if isinstance(v, int) and k not in ("writes", "conflicts",
                                                                  "synced-usec") else v)
                 for k, v in c.items()}))
        except Exception as e:  # noqa: B902
            out.append("%s: %r" % (d.tmpdir.name, e))
    return "\n".join(out)


def wait_or_show(pred, timeout, what):
    try:
        wait_for(pred, timeout, what=what)
    except Exception:
        log(picture())
        raise


def unhog(g, hogs):
    for h in hogs:
        g.unhog(h)


def test_demand_moves():
    s = Sampler(BED)
    try:
        moves = []
        for g, d in ((BED.ga, BED.da), (BED.gb, BED.db), (BED.ga, BED.da)):
            base = BED.current(d)
            hog, dt = hog_and_wait(g, d, "%s's grant covers its hog" % g.name)
            moves.append(dt)
            log("%s: hog of %d MiB granted in %.1f s: grants %s" %
                (g.name, HOG_MIB, dt, {k: v // MiB for k, v in BED.grants().items()}))
            unhog(g, hog)
            # Free-page reporting returns most of what memhog freed (test_daemon.py).
            wait_or_show(lambda d=d, base=base: BED.cluster(d)["grant"] <=
                         BED.current(d) + 128 * MiB and BED.current(d) < base + 100 * MiB, 60,
                         "%s gives its slice back" % g.name)
    finally:
        s.stop()
    c = BED.cluster(BED.da)
    assert set(c["hosts"]) == {"host-a", "host-b"}, c
    assert c["writes"] > 0 and c["quota"] == BED.quota, c


def settled(seconds=2.0, timeout=60):
    """Waits until no grant in etcd moved for @seconds."""
    t_end = time.monotonic() + timeout
    last, since = BED.grants(), time.monotonic()
    while time.monotonic() < t_end:
        time.sleep(0.2)
        now = BED.grants()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return last
    raise AssertionError("grants still moving after %d s: %s" % (timeout, last))


def test_leader_killed():
    settled()
    leader = BED.etcd.leader()
    assert leader is not None
    before = BED.grants()
    charges = (BED.current(BED.da), BED.current(BED.db))
    BED.etcd.kill(leader)
    try:
        t_end = time.monotonic() + 6
        while time.monotonic() < t_end:
            try:
                now = BED.grants()
            except AssertionError:
                now = before  # no member answered this instant: nothing seen to move
            assert now == before, "grants moved: %s -> %s" % (before, now)
            for d, c0 in zip((BED.da, BED.db), charges):
                assert abs(BED.current(d) - c0) <= 16 * MiB
            time.sleep(0.2)
        wait_for(lambda: BED.cluster(BED.da)["state"] == "synced" and
                 BED.cluster(BED.db)["state"] == "synced", 10, what="both synced")
    finally:
        BED.etcd.start(leader)
        BED.etcd.wait_healthy()


def test_partition():
    settled()
    g0 = BED.cluster(BED.db)["grant"]
    for r in BED.relays:
        r.dropping = True
    try:
        wait_for(lambda: BED.cluster(BED.db)["state"] == "partitioned", 10,
                 what="B sees itself cut off")
        hog = [BED.gb.hog(HOG_STEP_MIB), BED.gb.hog(HOG_STEP_MIB)]
        worst = 0
        t_end = time.monotonic() + 2
        while time.monotonic() < t_end:
            c = BED.cluster(BED.db)
            worst = max(worst, c["grant"], c["enforced"])
            assert BED.cluster(BED.da)["state"] == "synced"
            time.sleep(0.1)
        assert worst <= g0, "B grew while cut off: %d > %d" % (worst, g0)
        pool = BED.cluster(BED.da)["pool"]
        assert pool > 32 * MiB, "no room in the pool: the test proves nothing (%d)" % pool
        log("B cut off: grant held at %d MiB with %d MiB in the pool" % (g0 // MiB,
                                                                         pool // MiB))
    finally:
        for r in BED.relays:
            r.dropping = False
    wait_or_show(lambda: BED.cluster(BED.db)["state"] == "synced", 30,
                 "B synced once it reaches etcd")
    # Held at its slice, B's guest may have met its balloon: its OOM killer
    # may have ended a memhog (what a cap means). Those are gone already.
    for h in hog:
        try:
            BED.gb.unhog(h)
        except GuestCommandError as e:
            log("memhog %d ended in the guest while B was cut off: %s" % (h, e.output.strip()))
            BED.gb.hogs.pop(h, None)
    # memhog may take pages the guest freed a moment ago and has not yet
    # reported (the unhog above): its usage then need not rise with a step.
    # So step, a step at a time as hog_and_wait() does, until the grant
    # follows (up to the 192 MiB the pool has room for).
    again = []
    for _ in range(HOG_MIB // HOG_STEP_MIB):
        again.append(BED.gb.hog(HOG_STEP_MIB))
        try:
            wait_for(lambda: BED.cluster(BED.db)["grant"] > g0, 3, what="B's grant follows")
            break
        except GuestTimeout:
            pass  # usage did not rise enough yet: one step more
    log("B grows again after %d MiB of memhogs" % (len(again) * HOG_STEP_MIB))
    wait_or_show(lambda: BED.cluster(BED.db)["grant"] >= BED.current(BED.db) and
                 BED.cluster(BED.db)["grant"] > g0, 30, "B grows again")
    unhog(BED.gb, again)


def test_restart_rereads():
    g0 = BED.grants()["host-b"]
    use0 = BED.current(BED.db)
    BED.db.stop(signal.SIGKILL)
    t0 = time.monotonic()
    BED.db.start()
    BED.db.follow_events()
    seen = []
    while time.monotonic() - t0 < 3:
        seen.append(BED.grants().get("host-b", 0))  # the record outlives the process
        time.sleep(0.1)
    wait_or_show(lambda: BED.cluster(BED.db)["state"] == "synced", 10, "B synced again")
    ev = [e for _, e in BED.db.events_since(t0, "cluster_grant")]
    assert ev, "no cluster_grant event after the restart"
    first = ev[0]["grant"]
    log("B restarted: grant %d MiB in etcd before (usage %d MiB), first grant after %d MiB"
        % (g0 // MiB, use0 // MiB, first // MiB))
    assert min(seen) > 0, "B's record went or fell to 0 during the restart: %s" % seen
    # Its old grant, or the decision made on it from its usage: never a join from 0.
    assert first >= min(g0, use0) - 16 * MiB, (g0, use0, first)
    wait_for(lambda: BED.db.vm("b")["state"] == "ready", 30, what="guest b back from state")


def test_drift():
    lower = BED.quota - 64 * MiB
    BED.db.put("/v1/groups/t", {"cluster.memory.max": lower})
    try:
        wait_for(lambda: all(BED.cluster(d)["drift"] and BED.cluster(d)["quota"] == lower
                             for d in (BED.da, BED.db)), 10, what="drift seen on both")
        assert BED.da.events_of("cluster_drift"), "no cluster_drift event on A"
        out = vmcgctl(BED.da, "get", GROUP)
        assert "cluster.drift" in out and "cluster.hosts.host-b" in out, out
        assert "cluster.state" in out and "synced" in out, out
        m = BED.da.http("GET", "/metrics").body.decode()
        assert 'vmcg_cluster_drift{group="/t"} 1' in m, m
        assert 'vmcg_cluster_lease_alive 1' in m, m
    finally:
        BED.db.put("/v1/groups/t", {"cluster.memory.max": BED.quota})
    wait_for(lambda: not any(BED.cluster(d)["drift"] for d in (BED.da, BED.db)), 10,
             what="drift gone")


def test_killed_returns():
    gb = BED.grants()["host-b"]
    pool0 = BED.cluster(BED.da)["pool"]
    BED.db.stop(signal.SIGKILL)
    t0 = time.monotonic()
    wait_for(lambda: "host-b" not in BED.grants(), TTL_S + 3, interval=0.1,
             what="B's record gone with its lease")
    gone = time.monotonic() - t0
    wait_for(lambda: BED.cluster(BED.da)["pool"] >= pool0 + gb - 4096, 5,
             what="A sees B's grant back in the pool")
    log("B killed: its %d MiB back in the pool after %.1f s (TTL %d s)" % (gb // MiB, gone,
                                                                          TTL_S))
    # The lease was last renewed up to TTL/3 before the kill.
    assert gone >= TTL_S * 2 / 3 - 0.5, "freed before its lease could expire: %.1f s" % gone


TESTS = [
    ("demand-moves", test_demand_moves),
    ("leader-killed", test_leader_killed),
    ("partition", test_partition),
    ("restart-rereads", test_restart_rereads),
    ("drift", test_drift),
    ("killed-returns", test_killed_returns),
]


if __name__ == "__main__":
    sys.exit(tap.main(TESTS, setup=setup, cleanup=cleanup))
