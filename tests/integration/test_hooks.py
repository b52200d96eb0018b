#!/usr/bin/env python3
"""Hook mode against real guests: QEMU 7.2 built from Debian's source with
the vmcg patch series (qemu-patches/), the Debian guest kernel, the real
vmcgd and its API. Prints TAP.

What is resident is measured independently of vmcgd: the Rss of QEMU's
userfaultfd-registered mappings (VmFlags "um" in /proc/PID/smaps), which
are exactly the guest RAM blocks the vmcg-hooks object registered.
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vmcgtest import Guest, GuestUnavailable, ensure_guest_built, tap, wait_for  # noqa
from vmcgtest.daemon import FAST_DAEMON_CONF, Daemon, MiB, vmcgd_binary  # noqa

ROOT = Path(__file__).resolve().parents[2]
GUEST_MIB = 512
BATCH = 64
PAGE = 4096
# Reading smaps and then the API is not atomic: a batch populated or a
# discard drained between the two reads shows up as a difference. A few
# batches cover it; the slack itself comes from the API (nr_slots x 3 x batch).
RACE = 4 * BATCH * PAGE

DAEMON_CONF = FAST_DAEMON_CONF

_hooks_qemu = None
_hooks_error = None


def hooks_qemu():
    """The patched QEMU: $VMCG_QEMU_HOOKS, else qemu-patches/build-qemu.sh (cached).

    Raises GuestUnavailable, saying why, when there is none: tests/run.sh
    sets $VMCG_QEMU_HOOKS_ERROR when its build failed (not tried again
    here), and a failed build is tried once per process."""
    global _hooks_qemu, _hooks_error
    if _hooks_qemu:
        return _hooks_qemu
    if _hooks_error:
        raise GuestUnavailable(_hooks_error)
    path = os.environ.get("VMCG_QEMU_HOOKS")
    if not path and os.environ.get("VMCG_QEMU_HOOKS_ERROR"):
        _hooks_error = os.environ["VMCG_QEMU_HOOKS_ERROR"]
        raise GuestUnavailable(_hooks_error)
    if not path:
        r = subprocess.run(["bash", str(ROOT / "qemu-patches" / "build-qemu.sh")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            _hooks_error = "qemu-patches/build-qemu.sh failed: %s" % r.stderr.strip()[-500:]
            raise GuestUnavailable(_hooks_error)
        path = r.stdout.strip().splitlines()[-1]
    if not os.access(path, os.X_OK):
        _hooks_error = "patched QEMU %s is not executable" % path
        raise GuestUnavailable(_hooks_error)
    _hooks_qemu = path
    return path


def require_hooks_qemu():
    """The patched QEMU, or: a skip, or a failure when the run requires hook
    mode (VMCG_REQUIRE_HOOKS=1, set by tests/run.sh, which builds it)."""
    try:
        return hooks_qemu()
    except GuestUnavailable as e:
        tap.require("VMCG_REQUIRE_HOOKS", "no patched QEMU for hook mode: %s" % e)


def require_bed():
    """Skips only where this host cannot have a guest (GuestUnavailable says why)."""
    try:
        ensure_guest_built()
    except GuestUnavailable as e:
        raise tap.Skip("no test guest on this host: %s" % e)
    vmcgd_binary()
    require_hooks_qemu()


class HookGuest(Guest):
    """A patched-QEMU guest with the vmcg-hooks object and a QMP socket for vmcgd."""

    def __init__(self, d, name, smp=1, policy="continue", **kw):
        self.daemon_qmp = str(Path(d.tmpdir) / ("%s.qmp" % name))
        obj = "vmcg-hooks,id=vmcg0,path=%s,batch=%d,on-disconnect=%s,vm=%s" % (
            d.hooks_socket.replace(",", ",,"), BATCH, policy, name)
        super().__init__(name=name, mem_mib=kw.pop("mem_mib", GUEST_MIB), smp=smp,
                         qemu=hooks_qemu(),
                         extra_args=["-L", "/usr/share/qemu", "-L", "/usr/share/seabios",
                                     "-object", obj,
                                     "-qmp", "unix:%s,server=on,wait=off" % self.daemon_qmp],
                         **kw)

    def hooked_rss(self):
        """Rss of the userfaultfd-registered (guest RAM) mappings, bytes."""
        total = 0
        rss = 0
        with open("/proc/%d/smaps" % self.pid) as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("VmFlags:"):
                    if "um" in line.split()[1:]:
                        total += rss
        return total


def register(d, g, group):
    d.post("/v1/vms", {"name": g.name, "qmp": g.daemon_qmp, "group": group})
    wait_for(lambda: d.vm(g.name)["mode"] == "hooks", 30, what="%s attached" % g.name)


def hooks(d, name):
    return d.vm(name)["hooks"]


def check_charge(d, g, what):
    """Charge equals resident guest RAM within the slack (plus the read race)."""
    res = g.hooked_rss()
    h = hooks(d, g.name)
    assert h is not None, "%s: not hooked" % what
    charged, slack = h["charged"], h["slack"]
    assert res <= charged + RACE, "%s: resident %d MiB above charge %d MiB" % (
        what, res >> 20, charged >> 20)
    assert charged <= res + slack + RACE, "%s: charge %d KiB over resident %d KiB + slack %d" % (
        what, charged >> 10, res >> 10, slack >> 10)
    # The ABI's invariant, as the region shows it.
    assert abs(charged - (h["populated"] + h["credit"])) <= RACE, (what, h)
    # Slot credit is charged stock, not guest RAM (memory.stat, as of the
    # last tick): never above the slack, and guest + stock is the charge.
    vm = d.vm(g.name)
    st = d.group(vm["group"])["memory.stat"]
    assert 0 <= st["stock"] <= slack + RACE, "%s: stock %d KiB, slack %d KiB" % (
        what, st["stock"] >> 10, slack >> 10)
    assert abs(st["stock"] - max(h["credit"], 0)) <= RACE, (what, st, h)
    assert st["guest"] + st["stock"] == vm["memory.current"], (what, st, vm["memory.current"])
    return charged, res


def test_charge_follows_resident():
    """
    /h  (no limit)
    `- vm h: hook mode, 512 MiB

    Expected: after boot, after a 128 MiB memhog, after it exits (free
    page reporting), after 128 MiB of page cache and after memory.high
    makes vmcgd inflate the balloon over that cache, the charge equals the
    resident guest RAM within the slack; the hog raises the charge, its
    exit lowers it, and the balloon takes the charge down to high.
    """
    require_bed()
    with Daemon(config=DAEMON_CONF) as d:
        d.put("/v1/groups/h", {})
        with HookGuest(d, "h") as g:
            register(d, g, "/h")
            time.sleep(1)
            boot, _ = check_charge(d, g, "after boot")
            assert d.group("/h")["memory.current"] >= boot - RACE
            g.hog(128)
            grown, _ = check_charge(d, g, "after memhog 128M")
            # Some of the hog lands on pages the guest had touched and freed
            # since boot (already populated and charged).
            assert grown - boot >= 96 * MiB, (boot >> 20, grown >> 20)
            g.unhog()
            # Free page reporting gives the freed 2 MiB blocks back in ~2 s.
            wait_for(lambda: hooks(d, "h")["charged"] <= grown - 96 * MiB, 30,
                     what="charge back down after memhog exit")
            time.sleep(1)
            released, _ = check_charge(d, g, "after release")
            # Page cache, then memory.high below it: vmcgd inflates the
            # balloon, the guest drops cache, the discards uncharge it.
            g.read_disk(128)
            cached, _ = check_charge(d, g, "after 128M of page cache")
            high = cached - 96 * MiB
            d.put("/v1/groups/h", {"memory.high": high})
            wait_for(lambda: hooks(d, "h")["charged"] <= high + 16 * MiB, 90,
                     what="charge down to memory.high through the balloon")
            assert g.balloon_actual_bytes() < GUEST_MIB * MiB
            time.sleep(1)
            after, res = check_charge(d, g, "after balloon inflate")
            assert after < cached - 64 * MiB, (cached >> 20, after >> 20)
            h = hooks(d, "h")
            assert h["drained"] > 0 and h["faults"] > 0, h
            assert h["audit-flagged"] is False, h


def test_max_is_hard():
    """
    /m  memory.max = 256M
    `- vm m: hook mode, 512 MiB, 2 vCPUs; memhog tries to fill 400 MiB

    Expected: resident guest RAM never exceeds max + slack, sampled every
    0.1 s for 20 s; the group counts max events, its memory.pressure
    rises (vCPUs wait for refills) and, past the OOM deadline (5 s), its
    OOM action (notify) runs: oom and oom_kill events. QMP stop then
    pauses the VM although a vCPU waits (debt: at most a chunk per vCPU
    over max).
    """
    require_bed()
    with Daemon(config=DAEMON_CONF) as d:
        d.put("/v1/groups/m", {"memory.max": "256M"})
        with HookGuest(d, "m", smp=2) as g:
            register(d, g, "/m")
            time.sleep(1)
            check_charge(d, g, "after boot")
            # In the background: memhog never gets all it asks for.
            g.shell("mkdir -p /run/hogs; mkfifo /run/hogs/big.in; "
                    "memhog 400 0<>/run/hogs/big.in >/run/hogs/big.out 2>&1 &")
            slack = hooks(d, "m")["slack"]
            limit = 256 * MiB + slack + RACE
            worst = 0
            t_end = time.monotonic() + 20
            while time.monotonic() < t_end:
                res = g.hooked_rss()
                worst = max(worst, res)
                assert res <= limit, "resident %d KiB over max + slack %d KiB" % (
                    res >> 10, limit >> 10)
                time.sleep(0.1)
            grp = d.group("/m")
            h = hooks(d, "m")
            print("# worst resident %.1f MiB, max 256 MiB, slack %.2f MiB, held %d, "
                  "events %s" % (worst / MiB, slack / MiB, h["held"], grp["memory.events"]))
            assert worst >= 200 * MiB, "memhog never reached the limit: %d MiB" % (worst >> 20)
            assert grp["memory.current"] <= 256 * MiB, grp["memory.current"]
            assert grp["memory.events"]["max"] > 0, grp["memory.events"]
            assert h["held"] >= 1, h
            assert grp["memory.pressure"]["some"]["total"] > 1000000, grp["memory.pressure"]
            wait_for(lambda: d.group("/m")["memory.events"]["oom"] > 0, 15,
                     what="oom after the deadline")
            assert d.group("/m")["memory.events"]["oom_kill"] > 0
            # A waiting vCPU must not stop QEMU from pausing the VM: its
            # fault goes through on debt, which vmcgd then charges (at most
            # a chunk per vCPU over max).
            t0 = time.monotonic()
            g.qmp("stop", timeout=20)
            assert g.qmp("query-status")["status"] == "paused"
            print("# stop took %.2f s with a vCPU waiting" % (time.monotonic() - t0))
            wait_for(lambda: hooks(d, "m")["credit"] >= 0, 10, what="debt charged")
            over = d.group("/m")["memory.current"] - 256 * MiB
            assert over <= 2 * BATCH * PAGE, "over max by %d KiB" % (over >> 10)
            check_charge(d, g, "paused")


def test_daemon_restart_keeps_guest():
    """
    /r  (no limit)
    `- vm r: hook mode, 512 MiB, on-disconnect=continue

    vmcgd is killed (SIGKILL) while the guest holds 64 MiB; the guest keeps
    running and allocates 64 MiB more uncharged; vmcgd starts again.

    Expected: the guest answers while vmcgd is gone; QEMU re-attaches by
    itself, and the rebuilt charge equals resident within the slack
    (including the 64 MiB touched while detached).
    """
    require_bed()
    with Daemon(config=DAEMON_CONF) as d:
        d.put("/v1/groups/r", {})
        with HookGuest(d, "r") as g:
            register(d, g, "/r")
            g.hog(64)
            before, _ = check_charge(d, g, "before the restart")
            time.sleep(0.5)  # let the state file catch up (100 ms coalescing)
            d.stop(sig=signal.SIGKILL)
            assert g.shell("echo alive").strip() == "alive"
            g.hog(64)
            assert g.hooked_rss() >= before + 60 * MiB
            d.start()
            wait_for(lambda: d.vm("r")["mode"] == "hooks", 30, what="re-attached")
            time.sleep(1)
            after, res = check_charge(d, g, "after the restart")
            assert after >= before + 60 * MiB, (before >> 20, after >> 20)
            assert d.group("/r")["memory.current"] >= after - RACE
            g.unhog()


def test_block_waits_for_daemon():
    """
    /b  (no limit)
    `- vm b: hook mode, 512 MiB, on-disconnect=block

    The guest starts a 256 MiB memhog that waits 2 s before it touches its
    memory; vmcgd is then killed at once, so the hog touches with vmcgd
    gone.

    Expected: while vmcgd is gone the hog cannot touch new memory (the
    resident guest RAM grows by less than a few chunks); once vmcgd is
    back, QEMU re-attaches, the hog completes, its touch took at least the
    time it waited for vmcgd, and the charge equals resident within the
    slack.

    (Nothing may be asked of the guest while vmcgd is gone: a command that
    needs a page the guest never touched waits in a fault, and with a vCPU
    frozen in a fault the whole guest soon waits for it. So the hog is
    armed before the kill.)
    """
    require_bed()
    with Daemon(config=DAEMON_CONF) as d:
        d.put("/v1/groups/b", {})
        g = HookGuest(d, "b", smp=2, policy="block")
        # Registered first: with block, not a page is touched unattached.
        d.post("/v1/vms", {"name": g.name, "qmp": g.daemon_qmp, "group": "/b"})
        with g:
            wait_for(lambda: d.vm("b")["mode"] == "hooks", 30, what="attached")
            assert hooks(d, "b")["unbacked"] == 0
            time.sleep(1.5)
            g.shell("mkdir -p /run/hogs; mkfifo /run/hogs/b.in; "
                    "memhog 256 2000 0<>/run/hogs/b.in >/run/hogs/b.out 2>&1 &",
                    timeout=30)
            d.stop(sig=signal.SIGKILL)
            down = time.monotonic()
            before = g.hooked_rss()
            time.sleep(5)
            grown = g.hooked_rss() - before
            assert grown < 16 * MiB, "grew %d MiB with no vmcgd" % (grown >> 20)
            d.start()
            wait_for(lambda: d.vm("b")["mode"] == "hooks", 30, what="re-attached")
            waited = time.monotonic() - down - 2
            out = wait_for(lambda: re.search(r"holding 256 MiB \(\d+ pages touched in (\d+) ms\)",
                                             g.shell("cat /run/hogs/b.out")), 120,
                           what="memhog done once vmcgd is back")
            touch_ms = int(out.group(1))
            # It began to touch about 2 s after the kill and could not
            # finish before vmcgd was back: it waited (less a second of
            # slop for when its delay began).
            assert touch_ms >= (waited - 1) * 1000, \
                "memhog touched 256 MiB in %d ms, but vmcgd was gone for %.1f s of it" % (
                    touch_ms, waited)
            # Part of the hog reuses pages the guest had touched and freed.
            assert g.hooked_rss() - before >= 100 * MiB
            time.sleep(1)
            check_charge(d, g, "after the hog, re-attached")
            print("# grew %.1f MiB while detached (block); the hog waited, touching in %d ms"
                  % (grown / MiB, touch_ms))


def _qemu_refuses(qemu, obj, what, args, word):
    r = subprocess.run([qemu, "-L", "/usr/share/qemu", "-L", "/usr/share/seabios",
                        "-nodefaults", "-display", "none", "-accel", "tcg",
                        "-m", "256M"] + args + ["-object", obj, "-S"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=60)
    assert r.returncode != 0, "%s: QEMU started: %s" % (what, r.stdout)
    assert "vmcg-hooks" in r.stdout and word in r.stdout.lower(), (what, r.stdout)
    print("# %s: %s" % (what, r.stdout.strip().splitlines()[-1]))


def test_refuses_unhookable_ram():
    """
    The object refuses what it cannot hook, saying why: shared (fd-backed)
    and hugepage-backed guest RAM make QEMU exit before the guest runs;
    migration is refused by a migration blocker.
    """
    require_bed()
    qemu = hooks_qemu()
    with Daemon(config=DAEMON_CONF) as d:
        obj = "vmcg-hooks,id=vmcg0,path=%s,vm=x" % d.hooks_socket
        _qemu_refuses(qemu, obj, "shared",
                      ["-object", "memory-backend-memfd,id=ram0,size=256M,share=on",
                       "-machine", "memory-backend=ram0"], "private anonymous")
        # Hugepages where the host can give some (root may reserve them; the
        # reservation is given back).
        nr = Path("/proc/sys/vm/nr_hugepages")
        had = int(nr.read_text())
        try:
            if had < 128:
                nr.write_text("128")
            if int(nr.read_text()) >= 128:
                _qemu_refuses(qemu, obj, "hugepages",
                              ["-object", "memory-backend-memfd,id=ram0,size=256M,"
                               "hugetlb=on,hugetlbsize=2M",
                               "-machine", "memory-backend=ram0"], "page")
            else:
                print("# hugepages case not run: the host has no 2 MiB pages to give")
        finally:
            if had < 128:
                nr.write_text(str(had))
        r = subprocess.run([qemu, "-L", "/usr/share/qemu", "-L", "/usr/share/seabios",
                            "-nodefaults", "-display", "none", "-accel", "tcg", "-m", "64M",
                            "-object", obj, "-S", "-qmp", "stdio"],
                           input='{"execute":"qmp_capabilities"}\n'
                                 '{"execute":"migrate","arguments":{"uri":"exec:cat>/dev/null"}}\n'
                                 '{"execute":"quit"}\n',
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=60)
        assert "vmcg-hooks" in r.stdout and "migration" in r.stdout.lower(), r.stdout


TESTS = [
    ("charge-follows-resident", test_charge_follows_resident),
    ("max-is-hard", test_max_is_hard),
    ("daemon-restart-keeps-guest", test_daemon_restart_keeps_guest),
    ("block-waits-for-daemon", test_block_waits_for_daemon),
    ("refuses-unhookable-ram", test_refuses_unhookable_ram),
]

if __name__ == "__main__":
    sys.exit(tap.main(TESTS))
