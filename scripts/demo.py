#!/usr/bin/env python3
"""vmcg demo: vmcgd with its embedded default config caps a group of real
guests, and you watch the group held at its limit and the balloons move.

    /demo   memory.high = 256M, memory.max = 384M
    |- vm demo-1 (384 MiB guest): fills its page cache, 16 MiB at a time
    `- vm demo-2 (384 MiB guest): idle

Run by scripts/demo.sh after the build; --seconds sets how long the
growing lasts (default 40).
"""

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

from vmcgtest import Guest, wait_for  # noqa: E402
from vmcgtest.daemon import Daemon, MiB  # noqa: E402


def bar(value, limit, width=30):
    fill = min(width, int(width * value / limit)) if limit else 0
    return "[" + "#" * fill + "." * (width - fill) + "]"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=40)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="vmcg-demo-"))
    print("vmcg demo: starting vmcgd (embedded default config), API at %s/vmcgd.sock" % tmp)
    # config=None: no --config, vmcgd runs on its embedded default config.
    d = Daemon(config=None, tmpdir=tmp, interval="250ms")
    guests = []
    try:
        d.start()
        d.put("/v1/groups/demo", {"memory.high": "256M", "memory.max": "384M"})
        print("created /demo: memory.high 256M, memory.max 384M")
        for i in (1, 2):
            qmp = str(tmp / ("demo-%d.qmp" % i))
            print("booting demo-%d (384 MiB guest)..." % i, flush=True)
            g = Guest(name="demo-%d" % i, mem_mib=384,
                      extra_args=["-qmp", "unix:%s,server=on,wait=off" % qmp])
            g.start()
            g.wait_ready()
            guests.append(g)
            d.post("/v1/vms", {"name": g.name, "qmp": qmp, "group": "/demo"})
        wait_for(lambda: all(d.vm(g.name)["state"] == "ready" for g in guests), 30,
                 what="VMs adopted")

        stop = threading.Event()

        def grow():
            g = guests[0]
            k = 0
            while not stop.is_set() and 16 * (k + 1) <= g.image.disk_data_mib:
                g.read_disk(16, skip_mib=16 * k)
                k += 1
                time.sleep(0.5)

        print("demo-1 now fills its page cache; vmcgd holds /demo at memory.high")
        print("(meanwhile, in another terminal: build/tools/vmcgctl --socket %s tree)\n"
              % d.socket)
        th = threading.Thread(target=grow, daemon=True)
        th.start()
        t_end = time.monotonic() + args.seconds
        high = 256 * MiB
        while time.monotonic() < t_end:
            grp = d.group("/demo")
            cur = grp["memory.current"]
            line = "/demo %4d MiB %s high 256M  events: high=%d max=%d" % (
                cur >> 20, bar(cur, high), grp["memory.events"]["high"],
                grp["memory.events"]["max"])
            for g in guests:
                vm = d.vm(g.name)
                line += " | %s %3d MiB, balloon %3d MiB" % (
                    g.name, vm["memory.current"] >> 20, vm["balloon"]["actual"] >> 20)
            print(line, flush=True)
            time.sleep(1)
        stop.set()
        print("\ndone: /demo peaked at %d MiB (memory.high 256M)"
              % (d.group("/demo")["memory.peak"] >> 20))
    finally:
        for g in guests:
            g.stop()
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
