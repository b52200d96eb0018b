#!/usr/bin/env python3
"""The test bed's own guarantees, without a guest: the leak check that
tests/run.sh runs last (vmcgtest/leaks.py) finds what a run leaves behind,
and one Daemon object never runs two vmcgd. Prints TAP.
"""

import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from vmcgtest import tap  # noqa: E402
from vmcgtest.daemon import Daemon, vmcgd_binary  # noqa: E402
from vmcgtest.guest import GuestError  # noqa: E402

LEAKS = str(HERE / "vmcgtest" / "leaks.py")


def run_check(tag, prefix, *extra):
    """Runs the check the way run.sh does: from a shell that has the tag itself
    (an ancestor of the check, which must not be reported)."""
    env = dict(os.environ, VMCG_TEST_RUN=tag)
    p = subprocess.run(["sh", "-c", '"$0" "$@"; echo "rc=$?"', sys.executable, LEAKS,
                        "--tag", tag, "--tmp", prefix] + list(extra),
                       env=env, capture_output=True, text=True, timeout=60)
    out = p.stdout
    rc = int(out.rsplit("rc=", 1)[1])
    return rc, out


def fresh():
    return "t" + secrets.token_hex(6), tempfile.mkdtemp(prefix="vmcg-leaktest-")


def test_names_a_leaked_process():
    """
    a process started with the run's tag (sleep 600, in a session of its own,
    as vmcgd and QEMU are) outlives the run

    Expected: the check fails and names its pid and command; the shell that
    runs the check, which has the tag too, is not named.
    """
    tag, prefix = fresh()
    sleeper = subprocess.Popen(["sleep", "600"], env=dict(os.environ, VMCG_TEST_RUN=tag),
                               start_new_session=True)
    try:
        rc, out = run_check(tag, prefix)
        assert rc == 1, out
        assert "not ok 1 leak-check" in out, out
        assert "leaked process %d: sleep 600" % sleeper.pid in out, out
        assert out.count("leaked process") == 1, out  # not the check's own shell
        assert sleeper.poll() is None  # reported, not killed without --kill
        rc, out = run_check(tag, prefix, "--kill")
        assert rc == 1 and "killed %d" % sleeper.pid in out, out
        assert sleeper.wait(10) is not None
        rc, out = run_check(tag, prefix)
        assert rc == 0 and "ok 1 leak-check" in out, out
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


def test_names_a_leftover_tmpdir():
    """
    the run's TMPDIR keeps a directory (a Daemon that was never closed)

    Expected: the check fails and names it; with --kill it is removed, and
    the empty run directory with it.
    """
    tag, prefix = fresh()
    left = Path(prefix) / "vmcgd-left"
    left.mkdir()
    (left / "vmcgd.log").write_text("x")
    rc, out = run_check(tag, prefix)
    assert rc == 1 and "leaked temporary file: %s" % left in out, out
    rc, out = run_check(tag, prefix, "--kill")
    assert rc == 1, out
    assert not os.path.exists(prefix), "the emptied run directory is removed"


def test_passes_when_clean():
    """
    nothing has the tag, the run's TMPDIR is empty

    Expected: ok, a meson log line that tests/summarize.py counts as 1
    passed, and the empty directory removed.
    """
    tag, prefix = fresh()
    log = Path(prefix + ".json")
    try:
        rc, out = run_check(tag, prefix, "--json", str(log))
        assert rc == 0 and out.startswith("1..1\nok 1 leak-check"), out
        assert not os.path.exists(prefix)
        summary = subprocess.run([sys.executable, str(HERE.parent / "summarize.py"),
                                  "leak=%s" % log], capture_output=True, text=True)
        assert summary.stdout.splitlines()[-1] == "1 passed, 0 failed, 0 skipped", summary.stdout
    finally:
        log.unlink(missing_ok=True)


def test_daemon_start_refuses_second_process():
    """
    one Daemon object, started, then start()ed again (issue 13: a test did
    d.start() and then `with d:`, and the first vmcgd outlived the run)

    Expected: the second start() raises and no second vmcgd runs; after
    stop(), start() works again (restart); close() removes the directory.
    """
    try:
        vmcgd_binary()
    except GuestError as e:
        raise tap.Skip(str(e))
    d = Daemon(config="")
    try:
        d.start()
        pid = d.proc.pid
        try:
            d.start()
        except GuestError as e:
            assert "already running" in str(e), e
        else:
            raise AssertionError("a second start() was not refused")
        assert d.proc.pid == pid and d.running()
        try:
            with d:
                raise AssertionError("`with` on a running Daemon was not refused")
        except GuestError:
            pass
        d.restart()
        assert d.proc.pid != pid and d.running()
        assert d.get("/v1/groups")["path"] == "/"
    finally:
        d.close()
    assert not d.running() and not d.tmpdir.exists()


TESTS = [
    ("leak-check-names-a-leaked-process", test_names_a_leaked_process),
    ("leak-check-names-a-leftover-tmpdir", test_names_a_leftover_tmpdir),
    ("leak-check-passes-when-clean", test_passes_when_clean),
    ("daemon-start-refuses-second-process", test_daemon_start_refuses_second_process),
]

if __name__ == "__main__":
    sys.exit(tap.main(TESTS))
