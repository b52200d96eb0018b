#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The libvirt backend end to end (docs/libvirt.md): a real libvirtd with
its QEMU driver (started here if it is not running), test guests run as
transient libvirt domains (type='qemu' under TCG, 'kvm' where KVM works),
the real vmcgd adopting them through qemu:///system. Prints TAP.

    /tenants/acme/web   made by domain a's metadata (its memory.max)
    /other              a moves here by a live metadata change
    /fallback           [libvirt] default-group: bad metadata lands here
    /nob                domain b, no balloon device

Tests, in order, on one vmcgd:

- adopt_with_metadata: a, started with metadata naming a group that does
  not exist with its memory.max, is adopted: named by its domain, backend
  libvirt, domain and UUID shown, the group made, its floor and
  oom-priority from the metadata, usage charged; found by UUID too; the
  API's changes to it are refused (403); not in the state file;
- live_metadata_moves: `virsh metadata --live` moves it to /other;
- malformed_metadata_falls_back: bad metadata (a path that escapes, a bad
  size, an unknown element) puts it in /fallback with the problems in the
  API, a libvirt_metadata event and the log; good metadata again brings
  it back;
- high_enforced_through_libvirt: /other's memory.high below a's usage:
  its balloon is inflated through libvirt (virsh dommemstat's actual) and
  usage comes down to high; given back when high is lifted;
- operator_setmem_not_fought: an operator's `virsh setmem` is reported
  (balloon_external) and left where it is while /other is within limits;
- no_balloon_charged_not_enforced: b, with <memballoon model='none'/>, is
  charged and shown with the reason, and never ballooned, its group over
  high or not;
- libvirtd_restart_keeps_charges: libvirtd stopped (for 2, 0, 1, 0 s) and
  started again, four times: the VMs keep their charges and balloons, vmcgd
  reconnects (GET /v1/status), re-reads everything, and a metadata
  change after it still moves a VM (the events were re-subscribed);
- oom_pause_through_libvirt: b paused by `virsh suspend` stays ready and
  charged; its group over max with nothing to reclaim, its OOM action
  (pause) suspends it through libvirt (`virsh domstate`: paused), and it
  is ready again once resumed;
- destroy_removes_charge: `virsh destroy` takes a's charge out of its
  group at once (vm_detached);
- pressure_channel_from_xml: c has the org.vmcg.pressure.0 port as a
  <channel type='unix'>: vmcgd finds its socket in the XML, connects,
  gets the agent's reports, and the guest hears its group's level;
- no_libvirtd_logged_once: a vmcgd whose libvirt is not there logs it
  once, retries with backoff, shows it in GET /v1/status, and serves on;
- hooks_by_uuid: h runs the patched QEMU with the vmcg-hooks object put
  on through <qemu:commandline>, naming the VM by its domain UUID: its
  hooks connection attaches to the adopted domain (mode hooks, its pid
  libvirt's), and leaves with it.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_hooks import hooks_qemu  # noqa: E402
from vmcgtest import GuestUnavailable, tap, wait_for  # noqa: E402
from vmcgtest.daemon import ApiError, Daemon, vmcgd_binary  # noqa: E402
from vmcgtest.libvirt import (  # noqa: E402
    URI,
    Domain,
    ensure_libvirtd,
    libvirtd_answers,
    metadata_xml,
    restart_libvirtd,
    virsh,
)

MIB = 1 << 20
CONFIG = """[daemon]
write-group =
stats-interval = 1s
[group /tenants]
[group /tenants/acme]
[group /other]
[group /fallback]
[group /nob]
[libvirt]
default-group = /fallback
"""

TESTS = []
S = {}  # the daemon and the domains, shared by the tests in order


def test(name):
    def register(fn):
        TESTS.append((name, fn))
        return fn
    return register


def vmcgctl(d, *args):
    p = subprocess.run([os.environ.get("VMCGCTL", "vmcgctl"), "-s", d.socket] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
    assert p.returncode == 0, (args, p.stdout)
    return p.stdout


def daemon():
    return S["d"]


def vm_of(dom):
    return daemon().vm(dom.domain)


def wait_vm(dom, pred, timeout, what):
    last = {}

    def ok():
        try:
            last["vm"] = vm_of(dom)
        except ApiError:
            return False
        return pred(last["vm"])
    try:
        wait_for(ok, timeout, interval=0.2, what=what)
    except Exception:
        tap.diag("last seen: %s" % json.dumps(last.get("vm"), indent=1)[:3000])
        tap.diag(daemon().tail(3000))
        raise
    return last["vm"]


@test("adopt_with_metadata")
def adopt_with_metadata():
    d = daemon()
    a = S["a"] = Domain("a", mem_mib=256, metadata=metadata_xml(
        group="/tenants/acme/web", floor="64M", oom_priority=7,
        extra="<vmcg:memory.max>1G</vmcg:memory.max>"))
    a.start()
    a.wait_ready()
    vm = wait_vm(a, lambda v: v["state"] == "ready" and v["memory.current"] > 16 * MIB, 60,
                 "domain a adopted and charged")
    assert vm["backend"] == "libvirt", vm
    assert vm["domain"] == a.domain and vm["uuid"] == a.uuid, vm
    assert vm["address"] == a.uuid, vm
    assert vm["group"] == "/tenants/acme/web", vm
    assert vm["floor"] == 64 * MIB and vm["oom-priority"] == 7, vm
    assert vm["metadata"]["valid"] is True and vm["metadata"]["problems"] == [], vm
    assert vm["pid"] == a.proc.pid, (vm["pid"], a.proc.pid)
    assert vm["ram"] == 256 * MIB, vm
    assert vm["balloon"]["enforced"] is True, vm
    g = d.group("/tenants/acme/web")
    assert g["memory.max"] == 1 << 30, g
    assert g["memory.current"] >= vm["memory.current"] > 0, g
    # By UUID too, in either case.
    assert d.vm(a.uuid)["name"] == a.domain
    assert d.vm(a.uuid.upper())["name"] == a.domain
    # Guest statistics come through libvirt (virDomainSetMemoryStatsPeriod).
    wait_vm(a, lambda v: v["stats"] is not None and v["stats"]["total"] > 0, 30,
            "guest statistics through libvirt")
    metrics = d.http("GET", "/metrics").body.decode()
    assert "vmcg_libvirt_connected 1\n" in metrics, metrics[-2000:]
    assert "vmcg_libvirt_domains 1\n" in metrics, metrics[-2000:]
    st = d.get("/v1/status")["libvirt"]
    assert st["uri"] == URI and st["state"] == "connected" and st["domains"] == 1, st
    # Its configuration is its XML: the API's changes are refused.
    for method, body in (("DELETE", None), ("PUT", {"group": "/other"}),
                         ("PUT", {"floor": "1M"})):
        r = d.http(method, "/v1/vms/" + a.domain, body)
        assert r.status == 403, (method, body, r.status, r.body)
        assert b"libvirt" in r.body, r.body
    # ... and it is not in the state file (its backend re-reads it at start).
    d.put("/v1/groups/other", {"memory.low": 0})
    text = Path(d.state).read_text() + (
        Path(d.state + ".journal").read_text() if Path(d.state + ".journal").exists() else "")
    assert a.domain not in text and a.uuid not in text, text[:2000]
    lines = [ln for ln in vmcgctl(d, "vms").splitlines() if a.domain in ln]
    assert lines and "/tenants/acme/web" in lines[0], lines
    out = vmcgctl(d, "vm", a.uuid)  # by UUID
    for want in ("libvirt", a.domain, a.uuid, "metadata             valid"):
        assert want in out, (want, out)


@test("live_metadata_moves")
def live_metadata_moves():
    d, a = daemon(), S["a"]
    a.set_metadata("<vm><group>/other</group><floor>64M</floor></vm>")
    wait_vm(a, lambda v: v["group"] == "/other", 15, "a moved to /other")
    wait_for(lambda: d.group("/tenants/acme/web")["memory.current"] == 0, 5,
             what="its old group uncharged")
    assert d.group("/other")["memory.current"] > 0


@test("malformed_metadata_falls_back")
def malformed_metadata_falls_back():
    d, a = daemon(), S["a"]
    t0 = time.monotonic()
    a.set_metadata("<vm><group>/tenants/../etc</group><floor>12Q</floor><bogus>1</bogus>"
                   "</vm>")
    vm = wait_vm(a, lambda v: v["group"] == "/fallback", 15, "a in the default group")
    meta = vm["metadata"]
    assert meta["valid"] is False, meta
    text = " ".join(meta["problems"])
    assert "floor" in text and "12Q" in text, meta
    assert "bogus" in text, meta
    assert "group" in text, meta
    assert meta["fallback"], meta
    wait_for(lambda: d.events_since(t0, "libvirt_metadata"), 5, what="libvirt_metadata event")
    ev = d.events_since(t0, "libvirt_metadata")[0][1]
    assert ev["domain"] == a.domain and ev["group"] == "/fallback", ev
    assert "12Q" in d.log_text(), "the problem is not in the log"
    out = vmcgctl(d, "vm", a.domain)
    assert "12Q" in out and "bogus" in out, out
    # Valid again: back where it says, and the API and an event say so.
    t1 = time.monotonic()
    a.set_metadata("<vm><group>/other</group></vm>")
    vm = wait_vm(a, lambda v: v["group"] == "/other" and v["metadata"]["valid"], 15,
                 "a back in /other")
    assert vm["floor"] == 0, vm
    wait_for(lambda: d.events_since(t1, "libvirt_metadata"), 5, what="the all-clear event")
    ev = d.events_since(t1, "libvirt_metadata")[0][1]
    assert ev["problems"] == [] and ev["group"] == "/other", ev


@test("high_enforced_through_libvirt")
def high_enforced_through_libvirt():
    d, a = daemon(), S["a"]
    ram = 256 * MIB
    # Pages the guest touched and freed are resident and free: what a
    # balloon takes back. (Without this the host holds only what the guest
    # uses, and its floor, not high, is where the balloon stops.)
    a.hog(140)
    a.unhog()
    a.hog(64)  # the guest uses it: its balloon cannot take that back
    try:
        settled = {"prev": 0}

        def steady():
            cur = d.group("/other")["memory.current"]
            ok = cur > 100 * MIB and abs(cur - settled["prev"]) <= 4 * MIB
            settled["prev"] = cur
            return ok
        wait_for(steady, 60, interval=2, what="a's usage steady with its hog")
        before = settled["prev"]
        high = before - 32 * MIB
        t0 = time.monotonic()
        d.put("/v1/groups/other", {"memory.high": high})
        wait_for(lambda: a.balloon_actual_bytes() <= ram - 32 * MIB, 60, interval=0.5,
                 what="a's balloon inflated through libvirt")

        def progress():
            cur = d.group("/other")["memory.current"]
            tap.diag("t+%.0f s: /other %d MiB (was %d, high %d), balloon %d MiB" % (
                time.monotonic() - t0, cur // MIB, before // MIB, high // MIB,
                a.balloon_actual_bytes() // MIB))
            # At high, or as far as the guest's own use lets its floor go.
            return cur <= high + 8 * MIB or cur <= before - 24 * MIB
        wait_for(progress, 60, interval=2, what="/other's usage brought down by the balloon")
    finally:
        d.put("/v1/groups/other", {"memory.high": "max"})
        oom = [ln for ln in a.console_log().splitlines() if "Out of memory" in ln
               or "oom-kill" in ln or "Killed process" in ln]
        try:
            a.unhog()
        except Exception as e:  # noqa: B902 - reported with the guest's own view
            raise AssertionError("the hog did not survive: %s\nguest console: %s"
                                 % (e, "\n".join(oom) or "(no OOM kill)"))
    wait_for(lambda: a.balloon_actual_bytes() >= ram - 8 * MIB, 60, interval=0.5,
             what="a's balloon given back once /other has room")


@test("operator_setmem_not_fought")
def operator_setmem_not_fought():
    d, a = daemon(), S["a"]
    t0 = time.monotonic()
    a.setmem(200)
    wait_for(lambda: d.events_since(t0, "balloon_external"), 15,
             what="balloon_external event")
    ev = d.events_since(t0, "balloon_external")[0][1]
    assert ev["domain"] == a.domain, ev
    time.sleep(5)  # ten ticks: vmcgd would have deflated it back by now
    actual = a.balloon_actual_bytes()
    assert abs(actual - 200 * MIB) <= 4 * MIB, actual // MIB
    assert vm_of(a)["balloon"]["external"] is True
    a.setmem(256)
    wait_for(lambda: a.balloon_actual_bytes() >= 252 * MIB, 30, what="a given back its memory")


@test("no_balloon_charged_not_enforced")
def no_balloon_charged_not_enforced():
    d = daemon()
    b = S["b"] = Domain("b", mem_mib=256, balloon=False,
                        metadata=metadata_xml(group="/nob"))
    b.start()
    b.wait_ready()
    vm = wait_vm(b, lambda v: v["state"] == "ready" and v["memory.current"] > 16 * MIB, 60,
                 "domain b charged")
    assert vm["balloon"]["enforced"] is False, vm
    assert "balloon" in vm["balloon"]["reason"], vm
    t0 = time.monotonic()
    d.put("/v1/groups/nob", {"memory.high": 8 * MIB})
    time.sleep(4)
    vm = vm_of(b)
    assert vm["memory.current"] > 16 * MIB, vm  # still charged
    assert vm["balloon"]["target"] in (None, 0, vm["ram"]), vm
    stuck = [e for _, e in d.events_since(t0, "balloon_stuck") if e.get("vm") == b.domain]
    assert not stuck, stuck
    assert d.running()
    d.put("/v1/groups/nob", {"memory.high": "max"})


@test("libvirtd_restart_keeps_charges")
def libvirtd_restart_keeps_charges():
    d, a, b = daemon(), S["a"], S["b"]
    before = {x.domain: vm_of(x) for x in (a, b)}
    actual = a.balloon_actual_bytes()
    # Four restarts, libvirtd down 0 to 2 s: a reconnect was lost 1 time in
    # 8 or so before the worker stopped reading a request it had queued.
    for down in (2, 0, 1, 0):
        opens = d.get("/v1/status")["libvirt"]["connects"]
        restart_libvirtd(down_seconds=down)
        wait_for(lambda: d.get("/v1/status")["libvirt"]["connects"] > opens, 30,
                 what="vmcgd reconnected to libvirtd (down %d s)" % down)
        st = d.get("/v1/status")["libvirt"]
        assert st["state"] == "connected" and st["disconnects"] >= 1, st
        assert st["domains"] >= 2, st
        for x in (a, b):
            vm = vm_of(x)
            assert vm["uuid"] == before[x.domain]["uuid"], vm
            assert vm["memory.current"] > before[x.domain]["memory.current"] // 2, (
                vm["memory.current"], before[x.domain]["memory.current"])
        assert abs(a.balloon_actual_bytes() - actual) <= 4 * MIB, "a balloon moved"
    # Re-subscribed: a metadata change after the restart still moves it.
    a.set_metadata("<vm><group>/tenants/acme/web</group></vm>")
    wait_vm(a, lambda v: v["group"] == "/tenants/acme/web", 15, "a moved after the restart")


@test("oom_pause_through_libvirt")
def oom_pause_through_libvirt():
    d, b = daemon(), S["b"]
    # Paused by someone else (virsh suspend): still ready, charged, measured.
    virsh("suspend", b.domain)
    time.sleep(2)
    vm = vm_of(b)
    assert vm["state"] == "ready" and vm["memory.current"] > 16 * MIB, vm
    virsh("resume", b.domain)
    # Over max with nothing to reclaim (no balloon): the OOM action, through libvirt.
    cur = vm["memory.current"]
    d.put("/v1/groups/nob", {"oom-action": "pause", "memory.max": cur - 8 * MIB})
    try:
        wait_vm(b, lambda v: v["state"] == "paused", 30, "b paused by its OOM action")
        assert virsh("domstate", b.domain).strip() == "paused"
        ev = d.group("/nob")["memory.events"]
        assert ev["oom"] >= 1 and ev["oom_kill"] >= 1, ev
    finally:
        d.put("/v1/groups/nob", {"memory.max": "max", "oom-action": "notify"})
    virsh("resume", b.domain)
    wait_vm(b, lambda v: v["state"] == "ready", 15, "b ready again once resumed")


@test("destroy_removes_charge")
def destroy_removes_charge():
    d, a = daemon(), S["a"]
    assert d.group("/tenants/acme/web")["memory.current"] > 0
    t0 = time.monotonic()
    a.destroy()
    t1 = time.monotonic()
    # libvirt's STOPPED event comes once it has torn the domain down.
    wait_for(lambda: d.group("/tenants/acme/web")["memory.current"] == 0, 5, interval=0.05,
             what="a's charge gone")
    tap.diag("charge gone %.2f s after virsh destroy began, %.2f s after it returned"
             % (time.monotonic() - t0, time.monotonic() - t1))
    try:
        vm_of(a)
        raise AssertionError("a still listed")
    except ApiError as e:
        assert e.status == 404, e
    det = [e for _, e in d.events_since(t0, "vm_detached") if e.get("vm") == a.domain]
    assert det, "no vm_detached event"
    if "b" in S:
        S["b"].stop()


@test("pressure_channel_from_xml")
def pressure_channel_from_xml():
    d = daemon()
    c = S["c"] = Domain("c", mem_mib=256, pressure_channel=True,
                        metadata=metadata_xml(group="/other"))
    c.start()
    c.wait_ready()
    vm = wait_vm(c, lambda v: (v["channel"] or {}).get("state") == "connected", 60,
                 "c's pressure channel, found in its XML, connected")
    assert vm["channel"]["path"] == c.pressure_socket, vm["channel"]
    wait_vm(c, lambda v: v["channel"].get("report") is not None, 30,
            "a report from c's agent")
    # The level reaches the guest: /other over high, then relieved.
    d.put("/v1/groups/other", {"memory.high": 16 * MIB})
    try:
        wait_for(lambda: c.shell("cat /run/vmcg/pressure 2>/dev/null; true").split()[:1]
                 in (["medium"], ["critical"]), 20, interval=0.5,
                 what="c's agent hears medium or critical")
    finally:
        d.put("/v1/groups/other", {"memory.high": "max"})
    wait_for(lambda: c.shell("cat /run/vmcg/pressure 2>/dev/null; true").split()[:1]
             == ["none"], 60, interval=0.5, what="c's agent hears none again")
    c.stop()


@test("hooks_by_uuid")
def hooks_by_uuid():
    d = daemon()
    try:
        qemu = hooks_qemu()
    except GuestUnavailable as e:
        tap.require("VMCG_REQUIRE_HOOKS", "no patched QEMU for hook mode: %s" % e)
    h = S["h"] = Domain("h", mem_mib=256, qemu=qemu, hooks_socket=d.hooks_socket,
                        metadata=metadata_xml(group="/other"))
    t0 = time.monotonic()
    h.start()
    h.wait_ready()
    vm = wait_vm(h, lambda v: v["mode"] == "hooks" and v["hooks"]["charged"] > 16 * MIB, 30,
                 "h's hooks connection attached by its UUID")
    assert vm["pid"] == h.proc.pid, vm
    att = [e for _, e in d.events_since(t0, "hooks_attached") if e.get("vm") == h.domain]
    assert att and att[-1]["pid"] == h.proc.pid, att
    assert d.group("/other")["memory.current"] >= vm["hooks"]["charged"]
    h.destroy()
    wait_for(lambda: d.group("/other")["memory.current"] == 0, 5, what="h's charge gone")


@test("no_libvirtd_logged_once")
def no_libvirtd_logged_once():
    # A libvirt URI whose socket is not there: a host without libvirtd.
    uri = "qemu+unix:///system?socket=/nonexistent/libvirt-sock"
    with Daemon(config="[daemon]\nwrite-group =\n", libvirt=uri) as d2:
        wait_for(lambda: (d2.get("/v1/status")["libvirt"] or {}).get("error"), 10,
                 what="the failed connect in the status")
        time.sleep(4)  # 0.5 + 1 + 2 s of backoff: three more tries
        st = d2.get("/v1/status")["libvirt"]
        assert st["uri"] == uri and st["state"] in ("connecting", "disconnected"), st
        assert st["connects"] == 0 and "nonexistent" in st["error"], st
        log = d2.log_text()
        warned = [ln for ln in log.splitlines() if "WARNING" in ln and "libvirt" in ln]
        assert len(warned) == 1 and "retrying" in warned[0], warned
        assert log.count("cannot connect") >= 3, "not retried"
        assert d2.get("/v1/groups/")["path"] == "/"
    # A bad URI is refused at start, with a clear message, before serving.
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([os.environ.get("VMCGD", "vmcgd"), "--libvirt", "qemu system",
                            "--no-state", "--socket", tmp + "/vmcgd.sock"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=30, env=dict(os.environ,
                                                VMCG_CONFIG_DEFAULT_PATH=tmp + "/none.conf"))
        assert r.returncode == 2, (r.returncode, r.stdout)
        assert "--libvirt: invalid libvirt URI" in r.stdout, r.stdout
        assert not os.path.exists(tmp + "/vmcgd.sock"), "served before checking --libvirt"

def setup():
    vmcgd_binary()
    ensure_libvirtd()
    assert libvirtd_answers()
    S["d"] = Daemon(config=CONFIG, interval="500ms", libvirt=URI)
    S["d"].start()
    S["d"].follow_events()


def cleanup():
    for k in ("a", "b", "c", "h"):
        if k in S:
            S[k].stop()
    if "d" in S:
        S["d"].close()


if __name__ == "__main__":
    sys.exit(tap.main(TESTS, setup=setup, cleanup=cleanup))
