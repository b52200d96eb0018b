#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Which config vmcgd reads without -c (docs/config.md, vmcgd(8)).

The real vmcgd, no guests, no root; its own processes (not the Daemon
class, which pins the default path away from this host's /etc).
- the default path (VMCG_CONFIG_DEFAULT_PATH in tests, /etc/vmcg/vmcgd.conf
  in production) is read when it exists, and the log says so;
- when it does not exist, the embedded default is, and the log says so;
- a default file with an error is an error (exit 1), never a fallback;
- -c wins over the default path.
Prints TAP.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vmcgtest import tap

REPO_ROOT = Path(__file__).resolve().parents[2]
VMCGD = os.environ.get("VMCGD") or str(REPO_ROOT / "build" / "daemon" / "vmcgd")


def run(args, default_path):
    env = dict(os.environ, VMCG_CONFIG_DEFAULT_PATH=str(default_path))
    return subprocess.run([VMCGD] + args, env=env, capture_output=True, text=True, timeout=30)


def serve(tmp, default_path):
    """Start vmcgd without -c until its API answers; return its log."""
    sock = str(tmp / "vmcgd.sock")
    env = dict(os.environ, VMCG_CONFIG_DEFAULT_PATH=str(default_path))
    log = tmp / "vmcgd.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen([VMCGD, "--socket", sock, "--no-state", "--hooks-socket", ""],
                                env=env, stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while True:
                assert proc.poll() is None, "vmcgd exited: " + log.read_text()
                try:
                    with socket.socket(socket.AF_UNIX) as s:
                        s.connect(sock)
                    break
                except OSError:
                    assert time.monotonic() < deadline, "vmcgd never answered"
                    time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
    return log.read_text()


def test_file_exists():
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        conf = tmp / "vmcgd.conf"
        conf.write_text("[group /t]\nmemory.max = 1G\n[group /u]\n")
        r = run(["--check-config"], conf)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "%s: OK (2 groups, 0 VMs)" % conf, r.stdout
        log = serve(tmp, conf)
        assert "vmcgd: config: %s" % conf in log, log
        assert ", 2 groups," in log, log


def test_file_missing():
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        r = run(["--check-config"], tmp / "nonexistent.conf")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "embedded default config: OK (0 groups, 0 VMs)", r.stdout
        log = serve(tmp, tmp / "nonexistent.conf")
        assert "vmcgd: config: embedded default config" in log, log


def test_file_invalid():
    with tempfile.TemporaryDirectory() as d:
        conf = Path(d) / "vmcgd.conf"
        conf.write_text("[group /t]\nmemory.max = 1X\n")
        r = run(["--check-config"], conf)
        assert r.returncode == 1, (r.returncode, r.stdout)
        assert r.stderr.startswith("vmcgd: %s:2: [group /t] memory.max:" % conf), r.stderr


def test_option_wins():
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        default = tmp / "default.conf"
        default.write_text("junk\n")  # never read
        given = tmp / "given.conf"
        given.write_text("[group /g]\n")
        r = run(["--check-config", "-c", str(given)], default)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "%s: OK (1 groups, 0 VMs)" % given, r.stdout


TESTS = [
    ("file-exists", test_file_exists),
    ("file-missing", test_file_missing),
    ("file-invalid", test_file_invalid),
    ("option-wins", test_option_wins),
]


def setup():
    if not os.access(VMCGD, os.X_OK):
        raise AssertionError("no vmcgd at %s (build first, or set VMCGD)" % VMCGD)


if __name__ == "__main__":
    sys.exit(tap.main(TESTS, setup=setup))
