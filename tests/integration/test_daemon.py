#!/usr/bin/env python3
"""vmcgd against real guests: real QEMU, real guest kernel, the real daemon
and its real API over its real socket. Prints TAP.

Each scenario draws its hierarchy and the expected outcome. Sizes are
chosen for 512 MiB TCG guests on a 2-core host; tolerances say why.
"""

import os
import signal
import subprocess
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vmcgtest import Guest, GuestUnavailable, ensure_guest_built, qemu_binary, wait_for  # noqa
from vmcgtest.daemon import ApiError, Daemon, MiB, tap_run, vmcgd_binary  # noqa

GUEST_MIB = 512

# The daemon's knobs for tests: a fast loop and fresh stats, so that the
# scenarios settle in seconds even under TCG.
DAEMON_CONF = """
[daemon]
interval = 250ms
stats-interval = 1s
stats-max-age = 5s
reclaim-step = 64M
hysteresis = 16M
write-group =
"""


def require_bed():
    try:
        qemu_binary()
        ensure_guest_built()
        vmcgd_binary()
    except (GuestUnavailable, Exception) as e:  # noqa: B902 - any reason is a skip reason
        raise unittest.SkipTest("test bed unavailable: %s" % e)


class VmGuest(Guest):
    """A guest with a second QMP socket for vmcgd (QEMU serves one client per monitor)."""

    def __init__(self, qmp_dir, name, **kw):
        self.daemon_qmp = str(Path(qmp_dir) / ("%s.qmp" % name))
        super().__init__(name=name, mem_mib=kw.pop("mem_mib", GUEST_MIB),
                         extra_args=["-qmp", "unix:%s,server=on,wait=off" % self.daemon_qmp],
                         **kw)


def register(d, g, group, **extra):
    body = {"name": g.name, "qmp": g.daemon_qmp, "group": group}
    body.update(extra)
    d.post("/v1/vms", body)
    wait_for(lambda: d.vm(g.name)["state"] == "ready" and d.vm(g.name)["memory.current"] > 0,
             30, what="%s adopted and sampled" % g.name)


def current(d, path):
    return d.group(path)["memory.current"]


def test_high_held_page_cache():
    """
    /t  memory.high = 200M
    `- vm a (512 MiB guest) reads 320 MiB of its disk into page cache

    Expected: the balloon takes the cache back; once settled memory.current
    of /t stays within high + 64 MiB (one reclaim step: the loop acts after
    it samples) and "high" events were counted; the guest is alive.
    """
    require_bed()
    with Daemon(config=DAEMON_CONF) as d:
        with VmGuest(d.tmpdir, "a") as g:
            d.put("/v1/groups/t", {"memory.high": "200M"})
            register(d, g, "/t")
            g.read_disk(320)
            high = 200 * MiB
            wait_for(lambda: current(d, "/t") <= high + 64 * MiB, 120,
                     what="/t back near memory.high")
            peak_after = 0
            t_end = time.monotonic() + 5
            while time.monotonic() < t_end:
                peak_after = max(peak_after, current(d, "/t"))
                time.sleep(0.25)
            assert peak_after <= high + 64 * MiB, "held at %d MiB" % (peak_after >> 20)
            grp = d.group("/t")
            assert grp["memory.events"]["high"] > 0, grp
            vm = d.vm("a")
            assert vm["balloon"]["actual"] < GUEST_MIB * MiB, vm
            assert g.shell("echo alive").strip() == "alive"


def test_unreclaimable_not_oomed():
    """
    /u  memory.high = 160M
    `- vm b fills 200 MiB of tmpfs (no swap: unreclaimable)

    Expected: vmcgd does not balloon the guest below what it uses (its
    stats say so), so the guest's OOM killer never runs; "high" events are
    counted instead, and vmpressure rises.
    """
    require_bed()
    with Daemon(config=DAEMON_CONF) as d:
        with VmGuest(d.tmpdir, "b") as g:
            d.put("/v1/groups/u", {"memory.high": "160M"})
            register(d, g, "/u")
            g.alloc_tmpfs(200)
            wait_for(lambda: d.group("/u")["memory.events"]["high"] >= 5, 60,
                     what="high events counted")
            time.sleep(3)
            log = g.console_log()
            assert "Out of memory" not in log and "oom-kill" not in log, log[-2000:]
            assert g.shell("echo alive").strip() == "alive"
            vm = d.vm("b")
            # Guest size never below used (200 MiB tmpfs + kernel/init).
            assert vm["balloon"]["target"] >= 200 * MiB, vm


def test_fpr_returns_and_deflates():
    """
    /f  memory.high = 256M
    `- vm c fills 150 MiB tmpfs, then frees it

    Expected: free-page reporting returns the freed pages to the host, so
    the charge drops by most of it; with /f under high the balloon is
    deflated back toward the full guest size.
    """
    require_bed()
    with Daemon(config=DAEMON_CONF) as d:
        with VmGuest(d.tmpdir, "c") as g:
            d.put("/v1/groups/f", {"memory.high": "256M"})
            register(d, g, "/f")
            base = current(d, "/f")
            g.alloc_tmpfs(150)
            wait_for(lambda: current(d, "/f") >= base + 120 * MiB, 60, what="charge grows")
            grown = current(d, "/f")
            g.free_tmpfs()
            wait_for(lambda: current(d, "/f") <= grown - 100 * MiB, 60,
                     what="freed pages uncharged via free-page reporting")
            wait_for(lambda: d.vm("c")["balloon"]["actual"] >= (GUEST_MIB - 8) * MiB, 60,
                     what="balloon deflated")


def test_qemu_killed_leaves_no_charge():
    """
    /k
    `- vm k: QEMU is SIGKILLed mid-run

    Expected: /k's charge goes to 0 at once (next tick), the VM shows
    "gone", the daemon keeps serving.
    """
    require_bed()
    with Daemon(config=DAEMON_CONF) as d:
        g = VmGuest(d.tmpdir, "k")
        with g:
            d.put("/v1/groups/k", {})
            register(d, g, "/k")
            assert current(d, "/k") > 0
            os.kill(g.pid, signal.SIGKILL)
            wait_for(lambda: current(d, "/k") == 0, 10, what="charge gone")
            assert d.vm("k")["state"] == "gone"
            assert current(d, "/") == 0
            d.get("/v1/groups")


def test_restart_keeps_config_and_balloons():
    """
    /r  memory.high = 300M (set through the API)
    `- vm r, ballooned to 384 MiB by hand

    Expected: after vmcgd restarts, /r and the VM registration are back
    from the state file, and the balloon has not moved.
    """
    require_bed()
    with Daemon(config=DAEMON_CONF) as d:
        with VmGuest(d.tmpdir, "r") as g:
            d.put("/v1/groups/r", {"memory.high": "300M", "memory.low": "64M"})
            register(d, g, "/r")
            g.set_balloon(384)
            g.wait_balloon(384, timeout=60, tolerance_mib=4)
            before = g.balloon_actual_bytes()
            d.restart()
            grp = d.group("/r")
            assert grp["memory.high"] == 300 * MiB and grp["memory.low"] == 64 * MiB, grp
            wait_for(lambda: d.vm("r")["state"] == "ready", 30, what="re-adopted")
            time.sleep(3)
            assert abs(g.balloon_actual_bytes() - before) <= 4 * MiB


TESTS = [
    ("high-held-page-cache", test_high_held_page_cache),
    ("unreclaimable-not-oomed", test_unreclaimable_not_oomed),
    ("fpr-returns-and-deflates", test_fpr_returns_and_deflates),
    ("qemu-killed-leaves-no-charge", test_qemu_killed_leaves_no_charge),
    ("restart-keeps-config-and-balloons", test_restart_keeps_config_and_balloons),
]

if __name__ == "__main__":
    only = sys.argv[1:]
    sys.exit(tap_run([t for t in TESTS if not only or t[0] in only]))
