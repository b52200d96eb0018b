#!/usr/bin/env python3
"""Hook mode as a guest sees it: how fast a real guest first-touches memory
with the vmcg-hooks object (real vmcgd, real userfaultfd path) against the
same patched QEMU without the object. One guest at a time, variants
interleaved round by round; prints MiB/s per run, medians and the ratio to
the plain guest. Each run boots a fresh guest, so the memory touched has
never been populated. Under TCG the emulation of the guest's own
instructions is a large part of what touching a page costs, which hides
part of the hook path's cost: see docs/performance.md.

Usage: tests/bench/bench-guest-hooks.py [--mib 192] [--rounds 3]
Needs: the test guest (tests/guest/build-guest.sh), the patched QEMU
($VMCG_QEMU_HOOKS or qemu-patches/build-qemu.sh), vmcgd ($VMCGD or build/).
"""

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
os.environ.setdefault("VMCGD", str(ROOT / "build" / "daemon" / "vmcgd"))
os.environ.setdefault("VMCG_GUEST_DIR", str(ROOT / "build" / "test-guest"))

from vmcgtest import Guest, wait_for  # noqa: E402
from vmcgtest.daemon import Daemon  # noqa: E402
import test_hooks  # noqa: E402

CONF = "[daemon]\ninterval = 250ms\nwrite-group =\n"


def fill_rate(g, mib):
    """memhog `mib` MiB; MiB/s from memhog's own touch time."""
    k = g.hog(mib)
    m = re.search(r"in (\d+) ms", g.hogs[k]["report"])
    g.unhog(k)
    ms = max(1, int(m.group(1)))
    return mib * 1000.0 / ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=192)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    qemu = test_hooks.hooks_qemu()
    variants = [("plain", None), ("hooks b64", 64), ("hooks b512", 512)]
    rates = {v: [] for v, _ in variants}
    with Daemon(config=CONF) as d:
        d.put("/v1/groups/bench", {})
        for r in range(args.rounds):
            for name, batch in variants:
                vm = "gb%d%s" % (r, batch or "p")
                extra = ["-L", "/usr/share/qemu", "-L", "/usr/share/seabios"]
                if batch:
                    qmp = str(Path(d.tmpdir) / (vm + ".qmp"))
                    extra += ["-object", "vmcg-hooks,id=h0,path=%s,batch=%d,vm=%s"
                              % (d.hooks_socket, batch, vm),
                              "-qmp", "unix:%s,server=on,wait=off" % qmp]
                with Guest(name=vm, mem_mib=512, qemu=qemu, extra_args=extra) as g:
                    if batch:
                        d.post("/v1/vms", {"name": vm, "qmp": qmp, "group": "/bench"})
                        wait_for(lambda: d.vm(vm)["mode"] == "hooks", 30, what="attached")
                    rate = fill_rate(g, args.mib)
                    rates[name].append(rate)
                    print("round %d %-11s %7.1f MiB/s" % (r + 1, name, rate), flush=True)
                if batch:
                    d.delete("/v1/vms/" + vm)
    base = statistics.median(rates["plain"])
    print("\nvariant      median MiB/s   min - max      ratio to plain")
    for name, _ in variants:
        med = statistics.median(rates[name])
        print("%-11s  %9.1f   %6.1f - %-6.1f  %.2f" % (name, med, min(rates[name]),
                                                      max(rates[name]), med / base))
    return 0


if __name__ == "__main__":
    sys.exit(main())
