#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Daemon settings reach the VM as documented (docs/config.md).

  stats-interval: the real vmcgd adopts a real QEMU (a pc machine with a
  virtio balloon and no guest OS: nothing to boot, so no guest needed) and
  sets the balloon's guest-stats-polling-interval, read back through a
  second QMP monitor of the test's own:

      stats-interval = 2s   polling interval 2, vmcgd asks for guest-stats
      stats-interval = 0    polling interval left at 0, and vmcgd never
                            asks (it once polled every 2 s anyway)
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vmcgtest import GuestUnavailable, QMPClient, qemu_binary, tap, wait_for  # noqa
from vmcgtest.daemon import Daemon, vmcgd_binary  # noqa

BALLOON = "/machine/peripheral/balloon0"


def run_with(stats_interval):
    """The balloon's polling interval once vmcgd has adopted the QEMU, and
    whether vmcgd's log shows it asking for guest statistics."""
    try:
        qemu = qemu_binary()
    except GuestUnavailable as e:
        raise AssertionError("no QEMU: %s" % e)
    with tempfile.TemporaryDirectory(prefix="vmcg-settings-") as tmp:
        ours, theirs = os.path.join(tmp, "test.qmp"), os.path.join(tmp, "vmcgd.qmp")
        p = subprocess.Popen(
            [qemu, "-M", "pc", "-m", "64", "-nodefaults", "-display", "none",
             "-L", "/usr/share/qemu", "-L", "/usr/share/seabios", "-S",
             "-device", "virtio-balloon-pci,id=balloon0",
             "-qmp", "unix:%s,server=on,wait=off" % ours,
             "-qmp", "unix:%s,server=on,wait=off" % theirs],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: os.path.exists(ours) and os.path.exists(theirs), 20,
                     what="QEMU's QMP sockets")
            conf = "[daemon]\nwrite-group =\nstats-interval = %s\n" % stats_interval
            with Daemon(config=conf, extra_args=["-v"]) as d:
                d.post("/v1/vms", {"name": "vm", "qmp": theirs})
                wait_for(lambda: d.vm("vm")["state"] == "ready", 20, what="adopted")
                wait_for(lambda: "balloon at %s" % BALLOON in d.log_text(), 20,
                         what="vmcgd found the balloon")
                time.sleep(3)  # more than a stats interval of 2 s
                q = QMPClient(ours)
                try:
                    interval = q.execute("qom-get", {
                        "path": BALLOON, "property": "guest-stats-polling-interval"})
                finally:
                    q.close()
                asked = "guest-stats" in d.log_text()
                return interval, asked, d.log_text()
        finally:
            p.kill()
            p.wait(timeout=20)


def test_stats_interval_2s():
    interval, asked, log = run_with("2s")
    assert interval == 2, interval
    assert "stats every 2 s" in log, log[-2000:]


def test_stats_interval_0():
    interval, asked, log = run_with("0")
    assert interval == 0, "stats-interval = 0, yet the balloon polls every %s s" % interval
    assert "guest statistics off" in log, log[-2000:]
    assert "stats every" not in log, log[-2000:]


TESTS = [
    ("stats-interval-2s", test_stats_interval_2s),
    ("stats-interval-0", test_stats_interval_0),
]


def setup():
    vmcgd_binary()


if __name__ == "__main__":
    sys.exit(tap.main(TESTS, setup=setup))
