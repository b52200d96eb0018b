#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The config file against the API, at restart and on SIGHUP; signals;
the open files limit (docs/config.md "Config file and API: which wins",
vmcgd(8) SIGNALS).

The real vmcgd, its real API, real signals; no guest, no root needed.

    restart:  [group /t] memory.max = 1G          -> 1G
              file: 256M, restart                  -> 256M  (the edit wins)
              API: 512M, restart, file unchanged   -> 512M  + a warning
              sections /u and [vm w] removed       -> /u and w gone; /t,
                                                      changed by the API, stays
    SIGHUP:   file edited, kill -HUP               -> applied, same pid
              file broken at line 4, kill -HUP     -> old config kept, the log
                                                      names file:4
    PUT, SIGHUP, PUTs, SIGKILL, restart            -> every acknowledged PUT is
                                                      there (the reload's save
                                                      goes through the journal)
    SIGUSR1, SIGUSR2, SIGALRM right after a PUT    -> still running; the PUT
                                                      survives a clean restart
    soft RLIMIT_NOFILE below the hard limit        -> raised to the hard limit
    a garbage config record                        -> vmcgd refuses to start,
                                                      naming the file
Prints TAP.
"""

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vmcgtest import tap, wait_for  # noqa: E402
from vmcgtest.daemon import Daemon  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
HEAD = "[daemon]\nwrite-group =\n"


def max_of(d, path):
    return d.group(path)["memory.max"]


def has_group(d, path):
    try:
        d.group(path)
        return True
    except Exception:  # noqa: B902 - 404 from the API
        return False


def has_vm(d, name):
    try:
        d.vm(name)
        return True
    except Exception:  # noqa: B902 - 404 from the API
        return False


def conf_path(d):
    return d.tmpdir / "vmcgd.conf"


def hup(d, wait_for_text):
    """SIGHUP the running vmcgd; wait until its log has one more @wait_for_text."""
    before = d.log_text().count(wait_for_text)
    os.kill(d.proc.pid, signal.SIGHUP)
    wait_for(lambda: d._alive() and d.log_text().count(wait_for_text) > before, 10,
             what="vmcgd's log: %s" % wait_for_text)


def test_restart_precedence():
    # The state file once overrode every later edit of the file.
    conf = HEAD + ("[group /t]\nmemory.max = 1G\n[group /u]\nmemory.max = 2G\n"
                   "[vm w]\nqmp = /nonexistent/w.qmp\ngroup = /u\n")
    with Daemon(config=conf) as d:
        assert max_of(d, "/t") == GiB
        d.stop()
        d.config = conf.replace("1G", "256M")
        d.start()
        assert max_of(d, "/t") == 256 * MiB, "the file's edit did not apply at restart"
        assert "changed in the config from 1073741824 to 268435456" in d.log_text()

        # The API changes it; the file does not: the API's value stays, with a warning.
        d.put("/v1/groups/t", {"memory.max": "512M"})
        d.restart()
        assert max_of(d, "/t") == 512 * MiB
        log = d.log_text()
        assert "WARNING" in log and ("[group /t] memory.max: the config says 268435456, but it "
                                     "was set to 536870912 through the API") in log, log[-3000:]
        assert "event config_conflict" in log

        # Sections removed: what the API left alone goes; /t, the API's now, stays.
        d.stop()
        d.config = HEAD + "[group /t]\nmemory.max = 256M\n"
        d.start()
        assert not has_vm(d, "w"), "[vm w] removed from the file, but the VM stays"
        assert not has_group(d, "/u"), "[group /u] removed from the file, but the group stays"
        assert max_of(d, "/t") == 512 * MiB
        d.stop()
        d.config = HEAD
        d.start()
        assert has_group(d, "/t") and max_of(d, "/t") == 512 * MiB
        assert "changed through the API (memory.max 536870912, not 268435456): it stays" \
            in d.log_text()
        # and it is the API's now: no warning about it at the next start
        d.restart()
        assert d.log_text().count("[group /t] memory.max: its section was removed") == 1


def test_sighup_reload():
    conf = HEAD + "[group /t]\nmemory.max = 1G\n[group /gone]\n"
    with Daemon(config=conf) as d:
        pid = d.proc.pid
        d.follow_events()
        time.sleep(0.2)
        # /t edited, /gone removed, /new added, and a [daemon] setting that needs a restart
        conf_path(d).write_text("[daemon]\nwrite-group =\nstock-batch = 32\n"
                                "[group /t]\nmemory.max = 256M\n[group /new]\n")
        hup(d, "config reloaded from")
        assert d.proc.pid == pid and d.running()
        assert max_of(d, "/t") == 256 * MiB
        assert has_group(d, "/new") and not has_group(d, "/gone")
        assert "stock-batch changed in %s: it takes effect at the next restart" % conf_path(d) \
            in d.log_text()
        wait_for(lambda: d.events_of("config_reload"), 5, what="a config_reload event")
        ev = d.events_of("config_reload")[-1]
        assert ev["ok"] is True and ev["restart_needed"] == ["stock-batch"], ev

        # A broken file: the running config stays, and the log says where.
        conf_path(d).write_text(HEAD + "[group /t]\nmemory.max = 1X\n")
        hup(d, "config reload failed")
        assert d.proc.pid == pid and d.running()
        assert max_of(d, "/t") == 256 * MiB and has_group(d, "/new")
        assert "keeping the running config: %s:4: [group /t] memory.max" % conf_path(d) \
            in d.log_text(), d.tail()
        wait_for(lambda: len(d.events_of("config_reload")) >= 2, 5,
                 what="a second config_reload event")
        ev = d.events_of("config_reload")[-1]
        assert ev["ok"] is False and ":4:" in ev["error"], ev

        # The API changes /t; a reload of the same file leaves it, with a warning event.
        d.put("/v1/groups/t", {"memory.max": "512M"})
        conf_path(d).write_text("[daemon]\nwrite-group =\nstock-batch = 32\n"
                                "[group /t]\nmemory.max = 256M\n[group /new]\n")
        hup(d, "config reloaded from")
        assert max_of(d, "/t") == 512 * MiB
        wait_for(lambda: d.events_of("config_conflict"), 5, what="a config_conflict event")
        c = d.events_of("config_conflict")[-1]
        assert c["group"] == "/t" and c["key"] == "memory.max" and c["what"] == "conflict", c
        assert c["config"] == str(256 * MiB) and c["running"] == str(512 * MiB), c


def test_ignored_signals():
    # Each of these once ended vmcgd, before it wrote a PUT it had acknowledged.
    with Daemon(config=HEAD) as d:
        pid = d.proc.pid
        for i, sig in enumerate((signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM)):
            d.put("/v1/groups/s%d" % i, {"memory.max": "%dM" % (300 + i)})
            os.kill(pid, sig)
        time.sleep(0.5)
        assert d.running() and d.proc.pid == pid, "vmcgd died of a signal: %s" % d.tail()
        d.restart()
        for i in range(3):
            assert max_of(d, "/s%d" % i) == (300 + i) * MiB


def test_reload_then_sigkill():
    # A reload saves the state (the config's changes) before its record. It
    # once did so beside the journal, with a snapshot the journal's
    # generation no longer matched: writes acknowledged after the reload
    # were in the journal, and the next start threw the journal away.
    with Daemon(config=HEAD + "[group /t]\nmemory.max = 1G\n") as d:
        d.put("/v1/groups/before", {"memory.max": "100M"})
        d.config = HEAD + "[group /t]\nmemory.max = 2G\n"  # what start() writes too
        conf_path(d).write_text(d.config)
        os.kill(d.proc.pid, signal.SIGHUP)
        wait_for(lambda: max_of(d, "/t") == 2 * GiB, 10, what="the reload applied")
        for i in range(5):
            d.put("/v1/groups/after%d" % i, {"memory.max": "%dM" % (200 + i)})
        d.stop(sig=signal.SIGKILL)
        d.start()
        assert max_of(d, "/t") == 2 * GiB
        assert max_of(d, "/before") == 100 * MiB
        for i in range(5):
            assert has_group(d, "/after%d" % i), \
                "/after%d, acknowledged after the reload, is gone after a restart" % i
            assert max_of(d, "/after%d" % i) == (200 + i) * MiB


def test_nofile_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 256:
        raise tap.Skip("hard RLIMIT_NOFILE is %s: nothing to raise to" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        d = Daemon(config=HEAD)
        d.start()  # inherits the soft limit of 256
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        limits = Path("/proc/%d/limits" % d.proc.pid).read_text()
        line = next(ln for ln in limits.splitlines() if ln.startswith("Max open files"))
        got_soft, got_hard = line.split()[3:5]
        assert int(got_hard) == hard and int(got_soft) == hard, line
        assert "open files limit %d (was 256" % hard in d.log_text()
    finally:
        d.close()


def test_garbage_record():
    with Daemon(config=HEAD + "[group /t]\n") as d:
        d.stop()
        seen = Path(d.state + ".config-seen")
        assert seen.exists(), "no config record next to the state file"
        seen.write_text('{"version": 1, "groups": {"/t": {"memory.max": 1}}}')
        r = subprocess.run(d.command(), capture_output=True, text=True, timeout=30,
                           env=dict(os.environ,
                                    VMCG_CONFIG_DEFAULT_PATH=str(d.tmpdir / "none.conf")))
        assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
        assert "%s: config record: groups /t: memory.max: not a string" % seen in r.stderr, \
            r.stderr[-2000:]
        seen.unlink()
        d.start()  # without the record it starts, as documented


TESTS = [
    ("restart-precedence", test_restart_precedence),
    ("sighup-reload", test_sighup_reload),
    ("ignored-signals", test_ignored_signals),
    ("reload-then-sigkill", test_reload_then_sigkill),
    ("nofile-limit", test_nofile_limit),
    ("garbage-record", test_garbage_record),
]

if __name__ == "__main__":
    sys.exit(tap.main(TESTS))
