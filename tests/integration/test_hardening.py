#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""vmcgd against a hostile local user: regression tests that run the attack.

  qemu-spoof: a VM's QEMU is the process at the other end of vmcgd's own
  QMP connection (SO_PEERCRED), not whoever listens on the socket's path.

      real QEMU (-machine none), QMP at DIR/vm.qmp, registered as "victim"
      nobody, in 8 user + mount namespaces of its own: a tmpfs over DIR and
        a listener bound at DIR/vm.qmp in each (/proc/net/unix then lists
        9 listeners with that path)
      vmcgd restarted 3 times: every time the API shows QEMU's pid, never
        an attacker's

  space-in-path: a QMP socket whose path has a space still finds its QEMU
  (the /proc/net/unix lookup could not parse such a path: the VM stayed
  uncharged).

Needs root (runs as nobody through setpriv) and unprivileged user
namespaces; skips, saying why, where the host has neither.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vmcgtest import start_qemu_machine_none, tap, wait_for  # noqa
from vmcgtest.daemon import Daemon, vmcgd_binary  # noqa

NOBODY = 65534
# nobody cannot run a Python under /root (pyenv): the system's, which is there
# wherever this test's dependencies (meson) are.
SYSTEM_PYTHON = "/usr/bin/python3"
ATTACKERS = 8

# The attacker, as nobody in a user + mount namespace of its own: hide the
# socket's directory under a tmpfs, bind a listener at the same path, say
# so, and hold it until stdin closes.
ATTACKER = r"""
import os, socket, subprocess, sys
d = sys.argv[1]
subprocess.run(["mount", "-t", "tmpfs", "none", d], check=True)
s = socket.socket(socket.AF_UNIX)
s.bind(os.path.join(d, "vm.qmp"))
s.listen(8)
print(os.getpid(), flush=True)
sys.stdin.read()
"""


def stop(p):
    if p.poll() is None:
        p.kill()
    p.wait(timeout=20)


def userns_usable():
    if os.geteuid() != 0:
        return "not root: cannot run the attacker as another user"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return "no %s for the attacker to run" % SYSTEM_PYTHON
    if not shutil.which("setpriv") or not shutil.which("unshare"):
        return "setpriv/unshare missing (util-linux)"
    r = subprocess.run(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                        "--clear-groups", "unshare", "--user", "--map-root-user", "--mount",
                        "true"], capture_output=True, text=True)
    if r.returncode != 0:
        return "unprivileged user namespaces are off: %s" % r.stderr.strip()
    return None


def test_qemu_spoof():
    why = userns_usable()
    if why:
        raise tap.Skip(why)
    tmp = Path(tempfile.mkdtemp(prefix="vmcg-spoof-"))
    attackers = []
    qemu = None
    try:
        qdir = tmp / "qmp"
        qdir.mkdir()
        os.chmod(tmp, 0o755)
        os.chmod(qdir, 0o755)
        qmp = str(qdir / "vm.qmp")
        qemu = start_qemu_machine_none(qmp)
        with Daemon(config="[daemon]\nwrite-group =\n") as d:
            d.post("/v1/vms", {"name": "victim", "qmp": qmp})
            wait_for(lambda: d.vm("victim")["state"] == "ready", 20, what="victim adopted")
            assert d.vm("victim")["pid"] == qemu.pid, d.vm("victim")
            for _ in range(ATTACKERS):
                a = subprocess.Popen(
                    ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                     "--clear-groups", "unshare", "--user", "--map-root-user", "--mount",
                     SYSTEM_PYTHON, "-c", ATTACKER, str(qdir)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                attackers.append(a)
                line = a.stdout.readline()
                assert line.strip(), "the attacker did not bind its listener"
            # Listening (flag __SO_ACCEPTCON, 0x10000) at that path: QEMU's and the attackers'.
            listed = sum(1 for ln in open("/proc/net/unix")
                         if ln.rstrip().endswith(" " + qmp) and int(ln.split()[3], 16) & 0x10000)
            assert listed == ATTACKERS + 1, "%d listeners at %s, want %d" % (
                listed, qmp, ATTACKERS + 1)
            evil = {a.pid for a in attackers}
            for i in range(3):
                d.restart()
                wait_for(lambda: d.vm("victim")["state"] == "ready", 20,
                         what="victim re-adopted (restart %d)" % (i + 1))
                pid = d.vm("victim")["pid"]
                assert pid == qemu.pid, "restart %d: pid %s, QEMU is %d (attackers under %s)" % (
                    i + 1, pid, qemu.pid, sorted(evil))
    finally:
        for a in attackers:
            a.stdin.close()
            a.wait(timeout=20)
        if qemu:
            stop(qemu)
        shutil.rmtree(tmp, ignore_errors=True)


def test_space_in_path():
    tmp = Path(tempfile.mkdtemp(prefix="vmcg space "))
    qemu = None
    try:
        qmp = str(tmp / "my vm.qmp")
        qemu = start_qemu_machine_none(qmp)
        with Daemon(config="[daemon]\nwrite-group =\n") as d:
            d.post("/v1/vms", {"name": "spaced", "qmp": qmp})
            wait_for(lambda: d.vm("spaced")["state"] == "ready", 20, what="adopted")
            assert d.vm("spaced")["pid"] == qemu.pid, d.vm("spaced")
    finally:
        if qemu:
            stop(qemu)
        shutil.rmtree(tmp, ignore_errors=True)


TESTS = [
    ("qemu-spoof", test_qemu_spoof),
    ("space-in-path", test_space_in_path),
]


def setup():
    vmcgd_binary()


if __name__ == "__main__":
    sys.exit(tap.main(TESTS, setup=setup))
