#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""vmcgd against broken peers: regression tests that run the broken peer.

  junk-peer: a QMP peer that greets, accepts qmp_capabilities and then
  sends junk, for 20 s.

      peer (vmcgtest/qmppeer.py junk), registered as "junk"
      vmcgd: backs off (0.5, 1, 2, 4, 8, 16 s: reaching READY is no reset),
        so at most 8 connections, not ~30 (a reset at every connect);
        at most 3 warnings about it, not two per connection

  charge-unknown: VMs whose memory vmcgd cannot measure.

      "orphan": the process that listened on its QMP socket exited and left
        the socket to a child: SO_PEERCRED names a pid that is gone
      "liar":   its peer says it has 16 MiB of RAM and maps none
      both: GET /v1/vms/<name> says charge "unknown" with a reason, a
        charge_unknown event each, vmcg_vm_charge_unknown 1 in /metrics;
        after 10 s each is charged its whole RAM (16 MiB: a VM must not
        escape its limits by making its reads fail); its peer gone, a
        charge_known event and nothing charged

  many-unknown: 100 "liar" VMs (one peer process with a long smaps) cost
  vmcgd little CPU once their reads back off: utime+stime over 5 s under
  a generous bound, where reading every tick took several times that.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vmcgtest import tap, wait_for  # noqa
from vmcgtest.daemon import Daemon, vmcgd_binary  # noqa

PEER = str(Path(__file__).resolve().parent / "vmcgtest" / "qmppeer.py")
RAM_MIB = 16


def start_peer(mode, paths, regions=0):
    p = subprocess.Popen([sys.executable, PEER, mode, str(RAM_MIB), str(regions)] + paths,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.strip() == "ready", "peer %s did not start: %r" % (mode, line)
    return p


def stop_peer(p):
    try:
        p.stdin.close()
    except OSError:
        pass
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def warnings_about(d, vm):
    return [ln for ln in d.log_text().splitlines()
            if "WARNING" in ln and ("VM %s:" % vm) in ln]


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_junk_peer():
    tmp = Path(tempfile.mkdtemp(prefix="vmcg-peers-"))
    qmp = str(tmp / "junk.qmp")
    peer = start_peer("junk", [qmp])
    accepts = []
    try:
        with Daemon() as d:
            t0 = time.monotonic()
            d.post("/v1/vms", {"name": "junk", "qmp": qmp})
            while time.monotonic() - t0 < 20:
                time.sleep(0.5)
            d.stop()
            log = d.log_text()
        stop_peer(peer)
        accepts = [ln for ln in peer.stdout.read().splitlines() if ln.startswith("accept")]
        n = len(accepts)
        warns = [ln for ln in log.splitlines() if "WARNING" in ln and "VM junk:" in ln]
        tap.diag("junk peer: %d connections in 20 s, %d warnings about it" % (n, len(warns)))
        assert n >= 2, "vmcgd did not reconnect at all (%d connections)" % n
        assert n <= 8, "%d connections in 20 s: the backoff resets at connect" % n
        assert len(warns) <= 3, "%d warnings about one broken peer:\n%s" % (
            len(warns), "\n".join(warns[:10]))
    finally:
        stop_peer(peer)
        shutil.rmtree(tmp, ignore_errors=True)


def metric(d, name, vm):
    text = d.request("GET", "/metrics")
    m = re.search(r'^%s\{vm="%s"[^}]*\} (\S+)$' % (name, vm), text, re.M)
    return float(m.group(1)) if m else None


def test_charge_unknown():
    tmp = Path(tempfile.mkdtemp(prefix="vmcg-peers-"))
    orphan_qmp, liar_qmp = str(tmp / "orphan.qmp"), str(tmp / "liar.qmp")
    orphan = start_peer("orphan", [orphan_qmp])
    orphan.wait(timeout=10)  # the listener; its child serves
    liar = start_peer("liar", [liar_qmp])
    try:
        with Daemon() as d:
            d.follow_events()
            d.post("/v1/vms", {"name": "orphan", "qmp": orphan_qmp})
            d.post("/v1/vms", {"name": "liar", "qmp": liar_qmp})
            for vm in ("orphan", "liar"):
                wait_for(lambda: d.vm(vm)["state"] == "ready" and d.vm(vm)["ram"], 20,
                         what="%s ready with its RAM size" % vm)
                obj = d.vm(vm)
                assert "charge" in obj, "no charge state in the VM object: %s" % obj
                wait_for(lambda: d.vm(vm)["charge"]["state"] == "unknown", 20,
                         what="%s's charge unknown" % vm)
                c = d.vm(vm)["charge"]
                tap.diag("%s: %s" % (vm, c))
                assert c["reason"], c
                assert c["failures"] >= 1, c
                wait_for(lambda: any(e.get("vm") == vm for e in d.events_of("charge_unknown")),
                         10, what="a charge_unknown event for %s" % vm)
                assert metric(d, "vmcg_vm_charge_unknown", vm) == 1
            # The policy: the whole RAM once unknown for 10 s, never less.
            for vm in ("orphan", "liar"):
                wait_for(lambda: d.vm(vm)["charge"]["worst-case"], 20,
                         what="%s charged its whole RAM" % vm)
                assert d.vm(vm)["memory.current"] == RAM_MIB << 20, d.vm(vm)
            # Failed reads back off: a few in 12 s, not one per 250 ms tick.
            f0 = d.vm("liar")["charge"]["failures"]
            time.sleep(12)
            f1 = d.vm("liar")["charge"]["failures"]
            tap.diag("liar: %d failed reads in 12 s" % (f1 - f0))
            assert f1 - f0 <= 3, "%d failed reads in 12 s: no backoff" % (f1 - f0)
            # One warning per episode, not one per read.
            for vm in ("orphan", "liar"):
                w = [ln for ln in warnings_about(d, vm) if "measure" in ln]
                assert len(w) == 1, "%s: %d warnings about its reads:\n%s" % (
                    vm, len(w), "\n".join(w[:5]))
            # The peer gone: the VM is gone, its charge known (nothing charged).
            stop_peer(liar)
            wait_for(lambda: any(e.get("vm") == "liar"
                                 for e in d.events_of("charge_known")), 20,
                     what="a charge_known event for liar")
            assert d.vm("liar")["memory.current"] == 0, d.vm("liar")
            assert d.vm("liar")["charge"]["state"] != "unknown", d.vm("liar")
            assert metric(d, "vmcg_vm_charge_unknown", "liar") == 0
    finally:
        stop_peer(liar)
        stop_peer(orphan)
        shutil.rmtree(tmp, ignore_errors=True)


N_MANY = 100


def test_many_unknown():
    tmp = Path(tempfile.mkdtemp(prefix="vmcg-peers-"))
    paths = [str(tmp / ("m%03d.qmp" % i)) for i in range(N_MANY)]
    peer = start_peer("liar", paths, regions=2000)
    try:
        with Daemon() as d:
            for i, p in enumerate(paths):
                d.post("/v1/vms", {"name": "m%03d" % i, "qmp": p})
            wait_for(lambda: all(v["state"] == "ready" and v["ram"]
                                 for v in d.get("/v1/vms")), 30, what="every VM ready")
            # Let the reads fail a few times (1 + 2 + 4 s of backoff).
            time.sleep(10)
            c0, t0 = cpu_seconds(d.proc.pid), time.monotonic()
            time.sleep(5)
            used = cpu_seconds(d.proc.pid) - c0
            frac = used / (time.monotonic() - t0)
            tap.diag("%d VMs whose reads fail: vmcgd used %.2f s of CPU in 5 s (%.0f%%)"
                     % (N_MANY, used, frac * 100))
            assert frac < 0.10, "vmcgd used %.0f%% of a CPU for %d VMs whose reads fail" % (
                frac * 100, N_MANY)
            unknown = sum(1 for v in d.get("/v1/vms")
                          if v.get("charge", {}).get("state") == "unknown")
            assert unknown == N_MANY, "%d of %d VMs shown unknown" % (unknown, N_MANY)
    finally:
        stop_peer(peer)
        shutil.rmtree(tmp, ignore_errors=True)


TESTS = [
    ("junk-peer", test_junk_peer),
    ("charge-unknown", test_charge_unknown),
    ("many-unknown", test_many_unknown),
]


def setup():
    vmcgd_binary()


if __name__ == "__main__":
    sys.exit(tap.main(TESTS, setup=setup))
