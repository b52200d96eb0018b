#!/usr/bin/env python3
"""vmcgd against real guests: real QEMU, real guest kernel, the real daemon
and its real API over its real socket. Prints TAP.

Each scenario draws its hierarchy and the expected outcome. Sizes are
chosen for 512 MiB TCG guests on a 2-core host; tolerances say why.
"""

import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vmcgtest import Guest, GuestError, GuestUnavailable, ensure_guest_built, qemu_binary, tap, wait_for  # noqa
from vmcgtest.daemon import FAST_DAEMON_CONF, ApiError, Daemon, MiB, vmcgd_binary  # noqa

GUEST_MIB = 512
# memory.high tolerance while a guest's cache grows 16 MiB per half second:
# the loop acts on a sample per tick (250 ms), the balloon then needs about
# a tick to inflate, and a balloon moves at most reclaim-step (64 MiB) a
# tick; one step of lag is what sampling mode cannot avoid.
HIGH_TOLERANCE = 64 * MiB

# The daemon's knobs for tests: a fast loop and fresh stats, so that the
# scenarios settle in seconds even under TCG.
DAEMON_CONF = FAST_DAEMON_CONF


def require_bed():
    """Skips only where this host cannot have a guest (GuestUnavailable says why)."""
    try:
        ensure_guest_built()  # installs QEMU if it can: before looking for it
        qemu_binary()
    except GuestUnavailable as e:
        raise tap.Skip("no test guest on this host: %s" % e)
    vmcgd_binary()


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
    /t  memory.high = 150M
    `- vm a (512 MiB guest, ~100 MiB used after boot) reads 192 MiB of its
       disk into page cache, 16 MiB every half second

    Expected: the balloon takes the cache back as it grows: memory.current
    of /t stays within high + HIGH_TOLERANCE all along, "high" events are
    counted, the balloon went down, the guest is alive.
    """
    require_bed()
    with Daemon(config=DAEMON_CONF) as d:
        with VmGuest(d.tmpdir, "a") as g:
            d.put("/v1/groups/t", {"memory.high": "150M"})
            register(d, g, "/t")
            high = 150 * MiB
            samples = []
            stop = threading.Event()

            def watch():
                while not stop.is_set():
                    try:
                        samples.append((current(d, "/t"), d.vm("a")["balloon"]["actual"]))
                    except (OSError, ApiError):
                        pass
                    time.sleep(0.1)

            th = threading.Thread(target=watch, daemon=True)
            th.start()
            try:
                # Grow the cache the way a workload does, 16 MiB at a time,
                # rather than in one burst that no sampler can follow (the
                # kernel throttles the allocating task; a balloon cannot).
                for k in range(12):
                    g.read_disk(16, skip_mib=16 * k)
                    time.sleep(0.5)
                wait_for(lambda: current(d, "/t") <= high + HIGH_TOLERANCE, 120,
                         what="/t back near memory.high")
                time.sleep(3)
            finally:
                stop.set()
                th.join()
            worst = max(c for c, _ in samples)
            print("# /t samples (MiB current/actual): " + " ".join("%d/%d" % (c >> 20, a >> 20) for c, a in samples[::3]))
            print("# /t: high %d MiB, worst %d MiB, lowest balloon actual %d MiB, %d samples"
                  % (high >> 20, worst >> 20, min(a for _, a in samples) >> 20, len(samples)))
            # Held while the cache grew, not only afterwards.
            assert worst <= high + HIGH_TOLERANCE, "peak %d MiB" % (worst >> 20)
            # The balloon did the work.
            assert min(a for _, a in samples) < GUEST_MIB * MiB
            grp = d.group("/t")
            assert grp["memory.events"]["high"] > 0, grp
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
    /r  memory.high = 150M, memory.low = 64M (set through the API)
    `- vm r reads 160 MiB of cache: vmcgd balloons it down to about high

    Expected: after vmcgd restarts, /r and the VM registration are back
    from the state file, the VM is re-adopted, and its balloon does not
    move (within 16 MiB over 4 s): a restart adopts each balloon as it is.
    """
    require_bed()
    with Daemon(config=DAEMON_CONF) as d:
        with VmGuest(d.tmpdir, "r") as g:
            d.put("/v1/groups/r", {"memory.high": "150M", "memory.low": "64M"})
            register(d, g, "/r")
            for k in range(10):
                g.read_disk(16, skip_mib=16 * k)
                time.sleep(0.3)
            wait_for(lambda: g.balloon_actual_bytes() < (GUEST_MIB - 64) * MiB, 60,
                     what="balloon down")
            # Settled first: a balloon still creeping back up under
            # high - hysteresis is the loop at work, not the restart.
            seen = []

            def steady():
                seen.append(g.balloon_actual_bytes())
                last = seen[-12:]
                return len(last) == 12 and max(last) - min(last) <= 2 * MiB

            wait_for(steady, 60, interval=0.25, what="balloon steady for 3 s")
            before = g.balloon_actual_bytes()
            d.restart()
            grp = d.group("/r")
            assert grp["memory.high"] == 150 * MiB and grp["memory.low"] == 64 * MiB, grp
            wait_for(lambda: d.vm("r")["state"] == "ready", 30, what="re-adopted")
            t_end = time.monotonic() + 4
            while time.monotonic() < t_end:
                now = g.balloon_actual_bytes()
                assert abs(now - before) <= 16 * MiB, (before >> 20, now >> 20)
                time.sleep(0.25)


def test_low_spares_protected_vm():
    """
    /p            memory.high = 300M
    |- /p/safe    memory.low = 256M   vm s: ~100 MiB after boot + 96 MiB cache
    `- /p/bulk                        vm x: ~100 MiB after boot + 96 MiB cache

    Usage reaches ~390 MiB, 90 over /p's high. s is under its low (its
    group's elow covers all its usage), so reclaim asks everything of x:
    x's balloon goes down, s's balloon does not move, and no "low" event
    is counted (low was never breached).
    """
    require_bed()
    with Daemon(config=DAEMON_CONF) as d:
        with VmGuest(d.tmpdir, "s") as gs, VmGuest(d.tmpdir, "x") as gx:
            d.put("/v1/groups/p", {})
            d.put("/v1/groups/p/safe", {"memory.low": "256M"})
            d.put("/v1/groups/p/bulk", {})
            register(d, gs, "/p/safe")
            register(d, gx, "/p/bulk")
            for k in range(6):
                gs.read_disk(16, skip_mib=16 * k)
                gx.read_disk(16, skip_mib=16 * k)
            d.put("/v1/groups/p", {"memory.high": "300M"})
            wait_for(lambda: current(d, "/p") <= 300 * MiB + HIGH_TOLERANCE, 60,
                     what="/p back near high")
            time.sleep(2)
            s, x = d.vm("s"), d.vm("x")
            print("# s: %d MiB, balloon %d MiB; x: %d MiB, balloon %d MiB" % (
                s["memory.current"] >> 20, s["balloon"]["actual"] >> 20,
                x["memory.current"] >> 20, x["balloon"]["actual"] >> 20))
            assert s["balloon"]["actual"] == GUEST_MIB * MiB, s
            assert x["balloon"]["actual"] < GUEST_MIB * MiB, x
            assert d.group("/p/safe")["memory.events"]["low"] == 0


def test_max_pause_counts_oom():
    """
    /m   memory.max = 200M, oom-action = pause
    `- vm m fills 240 MiB of tmpfs (unreclaimable)

    Reclaim cannot bring /m under max (the guest really uses it), so after
    the OOM deadline vmcgd pauses the guest: QEMU reports "paused", the VM
    shows "paused", and /m counts "max", "oom" and "oom_kill" events.
    """
    require_bed()
    conf = DAEMON_CONF + "\n[group /m]\nmemory.max = 200M\noom-action = pause\n"
    with Daemon(config=conf) as d:
        with VmGuest(d.tmpdir, "m") as g:
            register(d, g, "/m")
            g.alloc_tmpfs(240)
            wait_for(lambda: d.vm("m")["state"] == "paused", 60, what="guest paused")
            # vmcgd says paused only once QEMU confirmed the stop.
            assert g.qmp("query-status")["status"] == "paused"
            ev = d.group("/m")["memory.events"]
            assert ev["max"] > 0 and ev["oom"] >= 1 and ev["oom_kill"] >= 1, ev


def test_balloon_stuck_detected():
    """
    /b   memory.high = 120M
    `- vm b whose guest unloads its balloon driver, then fills 120 MiB cache

    The balloon cannot follow its target: vmcgd reports balloon_stuck on
    the event stream (once), and vmpressure goes critical for /b.
    """
    require_bed()
    conf = DAEMON_CONF.replace("stats-max-age = 5s", "stats-max-age = 30s")
    with Daemon(config=conf, extra_args=[]) as d:
        with VmGuest(d.tmpdir, "b") as g:
            d.put("/v1/groups/b", {})
            register(d, g, "/b")
            wait_for(lambda: d.vm("b")["stats"] is not None, 30, what="guest stats")
            d.follow_events()
            g.shell("rmmod virtio_balloon")
            for k in range(8):
                g.read_disk(16, skip_mib=16 * k)
            d.put("/v1/groups/b", {"memory.high": "120M"})
            wait_for(lambda: d.events_of("balloon_stuck"), 60, what="balloon_stuck event")
            ev = d.events_of("balloon_stuck")[0]
            assert ev["vm"] == "b" and ev["actual"] > ev["target"], ev
            wait_for(lambda: d.group("/b")["vmpressure"] == "critical", 10,
                     what="vmpressure critical")


def _backstop_dir(name):
    for root, limit in (("/sys/fs/cgroup", "memory.max"), ("/sys/fs/cgroup/unified", "memory.max"),
                        ("/sys/fs/cgroup/memory", "memory.limit_in_bytes")):
        d = Path(root) / "vmcg" / ("vm-" + name)
        if d.is_dir():
            return d, limit
    return None, None


BACKSTOP_CONF = DAEMON_CONF + "backstop = true\nbackstop-overhead = 256M\n"


def backstop_daemon():
    """A started Daemon with backstop = true (close() it), or Skip when this
    host has no writable memory cgroup: the only reason these tests skip."""
    if not any(Path(p).exists() for p in ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                          "/sys/fs/cgroup/cgroup.controllers",
                                          "/sys/fs/cgroup/unified/cgroup.controllers")):
        raise tap.Skip("no memory cgroup hierarchy on this host (v1 memory or v2)")
    d = Daemon(config=BACKSTOP_CONF)
    try:
        d.start()
    except GuestError as e:
        d.close(failed=True)
        if "memory cgroup" in str(e) or "memory controller" in str(e):
            raise tap.Skip("no writable memory cgroup: %s" % str(e).splitlines()[-1])
        raise
    return d


def test_backstop_cgroup():
    """
    /bs  memory.max = 300M, with backstop = true (overhead allowance 256M)
    `- vm bs

    Expected: QEMU sits in the host memory cgroup vmcg/vm-bs limited to
    300M + 256M; lowering max to 200M lowers the limit to 200M + 256M; when
    QEMU dies the cgroup is removed.
    """
    require_bed()
    # One vmcgd: started here (a skip if the host has no memory cgroup),
    # closed by contextlib.closing, not started again by `with`.
    with contextlib.closing(backstop_daemon()) as d:
        g = VmGuest(d.tmpdir, "bs")
        with g:
            d.put("/v1/groups/bs", {"memory.max": "300M"})
            register(d, g, "/bs")
            wait_for(lambda: _backstop_dir("bs")[0] is not None, 10, what="backstop cgroup")
            cg, limit_file = _backstop_dir("bs")
            procs = (cg / "cgroup.procs").read_text().split()
            assert str(g.pid) in procs, procs
            assert int((cg / limit_file).read_text()) == (300 + 256) * MiB
            d.put("/v1/groups/bs", {"memory.max": "200M"})
            wait_for(lambda: int((cg / limit_file).read_text()) == (200 + 256) * MiB, 10,
                     what="backstop limit follows memory.max")
            os.kill(g.pid, signal.SIGKILL)
            # The Guest object is QEMU's parent: it reaps QEMU now, as a
            # prompt parent does (until reaped, QEMU is a zombie that keeps a
            # v1 cgroup busy; a parent that reaps late is the next test).
            g.proc.wait(10)
            wait_for(lambda: not cg.exists(), 10, what="backstop cgroup removed")


# QEMU's parent for the late-reap test: forks QEMU, tells its pid, waits for
# a flag file after QEMU has exited, then REAP_DELAY_S more, and only then
# reaps it. QEMU dies with it (PR_SET_PDEATHSIG) if the test goes away.
LATE_REAPER = r"""
import ctypes, os, sys, time
real, pidfile, flag, delay = %r, %r, %r, %r
pid = os.fork()
if pid == 0:
    ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
    os.execv(real, [real] + sys.argv[1:])
with open(pidfile + ".tmp", "w") as f:
    f.write(str(pid))
os.rename(pidfile + ".tmp", pidfile)
while not os.path.exists(flag):
    time.sleep(0.1)
time.sleep(delay)
_, status = os.waitpid(pid, 0)
sys.exit(0)
"""
REAP_DELAY_S = 4.0


def test_backstop_cgroup_reaped_late():
    """
    /lr  memory.max = 300M, with backstop = true
    `- vm lr, whose QEMU is the child of a wrapper that does not reap it
       until REAP_DELAY_S after a flag file appears; the wrapper sits in
       QEMU's cgroup too, as a helper process QEMU forked would

    QEMU is SIGKILLed. It stays a zombie until the wrapper reaps it, and
    until then the cgroup is busy: a zombie pins a v1 memory cgroup on
    some kernels (Debian 12's 6.18 with v1 memory, where this was found),
    and the wrapper, alive until it has reaped QEMU, pins it on every
    kernel, so the test does not depend on which one runs it.

    Expected: vmcgd sees QEMU gone, gets EBUSY from rmdir and logs that it
    will retry; the directory stays while QEMU is unreaped; once QEMU is
    reaped and the wrapper has exited (and been reaped by us), a retry
    removes it (the retry backs off to 5 s at most) and vmcgd logs it.
    """
    require_bed()
    with contextlib.closing(backstop_daemon()) as d:
        wrapper = d.tmpdir / "late-reaper"
        pidfile = d.tmpdir / "qemu.pid"
        flag = d.tmpdir / "reap"
        wrapper.write_text("#!%s\n%s" % (sys.executable, LATE_REAPER % (
            qemu_binary(), str(pidfile), str(flag), REAP_DELAY_S)))
        wrapper.chmod(0o755)
        g = VmGuest(d.tmpdir, "lr", qemu=str(wrapper))
        qemu_pid = None
        try:
            with g:
                try:
                    d.put("/v1/groups/lr", {"memory.max": "300M"})
                    register(d, g, "/lr")
                    qemu_pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text(), 10,
                                            what="QEMU's pid from the wrapper"))
                    wait_for(lambda: _backstop_dir("lr")[0] is not None, 10, what="backstop cgroup")
                    cg, _ = _backstop_dir("lr")
                    assert str(qemu_pid) in (cg / "cgroup.procs").read_text().split()
                    (cg / "cgroup.procs").write_text(str(g.pid))  # the wrapper joins
                    os.kill(qemu_pid, signal.SIGKILL)
                    wait_for(lambda: d.vm("lr")["state"] == "gone", 10, what="vmcgd sees QEMU gone")
                    wait_for(lambda: "State:\tZ" in Path("/proc/%d/status" % qemu_pid).read_text(),
                             10, what="QEMU a zombie")
                    wait_for(lambda: "%s busy" % cg in d.log_text(), 10,
                             what="vmcgd logs that %s is busy and will be retried" % cg)
                    time.sleep(1.0)  # several retries (100, 200, 400 ms...)
                    assert cg.exists(), "removed while QEMU was unreaped and the wrapper alive"
                    t_flag = time.monotonic()
                    flag.touch()
                    g.proc.wait(REAP_DELAY_S + 10)  # the wrapper reaped QEMU and exited
                    assert not Path("/proc/%d" % qemu_pid).exists(), "QEMU not reaped"
                    t_reaped = time.monotonic()
                    wait_for(lambda: not cg.exists(), 10, what="backstop cgroup removed once reaped")
                    print("# reaped %.1f s after the flag; cgroup gone %.1f s after the reap"
                          % (t_reaped - t_flag, time.monotonic() - t_reaped), flush=True)
                    wait_for(lambda: "backstop: removed %s after" % cg in d.log_text(), 5,
                             what="vmcgd logs the removal after retries")
                finally:
                    flag.touch()  # before stop(): the wrapper must reap and exit
        finally:
            flag.touch()  # let the wrapper reap and exit whatever happened
            if qemu_pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(qemu_pid, signal.SIGKILL)


TESTS = [
    ("high-held-page-cache", test_high_held_page_cache),
    ("unreclaimable-not-oomed", test_unreclaimable_not_oomed),
    ("fpr-returns-and-deflates", test_fpr_returns_and_deflates),
    ("qemu-killed-leaves-no-charge", test_qemu_killed_leaves_no_charge),
    ("restart-keeps-config-and-balloons", test_restart_keeps_config_and_balloons),
    ("low-spares-protected-vm", test_low_spares_protected_vm),
    ("max-pause-counts-oom", test_max_pause_counts_oom),
    ("balloon-stuck-detected", test_balloon_stuck_detected),
    ("backstop-cgroup", test_backstop_cgroup),
    ("backstop-cgroup-reaped-late", test_backstop_cgroup_reaped_late),
]

if __name__ == "__main__":
    sys.exit(tap.main(TESTS))
