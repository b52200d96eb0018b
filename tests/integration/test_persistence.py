#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The state file under real faults: a write is acknowledged only once it is
on disk, and one that cannot be saved is refused (503) and undone.

  full-disk: the state directory is a 512 KiB tmpfs. 40 groups are created,
  then the tmpfs is filled with dd and 4 writers create 40 groups each and
  delete one each; some are refused (503 "not_saved", "No space left"),
  GET /v1/status says why. The fill is removed, writes succeed again.
  vmcgd is killed with SIGKILL (no exit-time save) and restarted: every
  acknowledged group is there, every refused one is not, every refused
  delete left its group.

      tmpfs 512K: state.json, state.json.journal, fill (dd until ENOSPC)
      /a0 ... /a39           201, kept
      /w<k>-<i>              201 or 503: after restart, there iff 201
      DELETE /a<k>           204 or 503: after restart, gone iff 204

  read-only: while vmcgd runs, the state directory and files are made
  immutable (chattr +i: a read-only remount would wait for vmcgd's open
  journal): a PUT, a DELETE and a VM registration are refused with 503
  naming the cause, and leave nothing behind; /v1/status and /metrics
  say so. vmcgd restarted on the directory bind-mounted read-only starts
  (its VMs need it) and refuses writes; remounted read-write, writes are
  acknowledged again.

  sigkill: 4 writers create 50 groups each as fast as they can; vmcgd is
  killed with SIGKILL the moment the last answer arrives; restarted, it
  has all 200 (vmcgd before this answered before saving, 100 ms later).

  put-scales: a PUT into a tree of 20,000 groups costs about what it costs
  in a tree of 1,000 (the median of 300 PUTs, within a factor of 2;
  vmcgd before this rewrote the whole state per change).

Needs root (mount); skips, saying why, without.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vmcgtest import tap  # noqa: E402
from vmcgtest.daemon import Daemon, vmcgd_binary  # noqa: E402


def mount(*args):
    subprocess.run(["mount"] + list(args), check=True, capture_output=True)


def umount(path):
    subprocess.run(["umount", "-l", path], check=False, capture_output=True)


class StateDir:
    """A temporary directory; mounted over by the test, unmounted at the end."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="vmcg-persist-")
        self.dir = os.path.join(self.tmp, "state")
        os.mkdir(self.dir)
        self.mounted = False
        self.state = os.path.join(self.dir, "state.json")

    def tmpfs(self, size):
        mount("-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "vmcg-test", self.dir)
        self.mounted = True

    def bind(self):
        mount("--bind", self.dir, self.dir)
        self.mounted = True

    def read_only(self, ro):
        mount("-o", "remount,bind,%s" % ("ro" if ro else "rw"), self.dir)

    def close(self):
        if self.mounted:
            umount(self.dir)
        shutil.rmtree(self.tmp, ignore_errors=True)


def status(d):
    return d.get("/v1/status")["state"]


def put(d, path, body=None):
    return d.http("PUT", "/v1/groups" + path, body if body is not None else {})


def group_paths(d):
    out = set()

    def walk(g):
        out.add(g["path"])
        for c in g.get("children", []):
            walk(c)

    walk(d.get("/v1/groups"))
    return out


def fill(path):
    """dd until the filesystem is full (dd fails with ENOSPC, which is the point)."""
    r = subprocess.run(["dd", "if=/dev/zero", "of=" + path, "bs=4k"], capture_output=True,
                       text=True)
    assert "No space left" in r.stderr, r.stderr


def assert_refused(r, cause):
    assert r.status == 503, r
    err = r.json()["error"]
    assert err["code"] == "not_saved", err
    assert cause in err["message"], err


def test_full_disk():
    sd = StateDir()
    try:
        sd.tmpfs("512k")
        with Daemon(extra_args=["--state", sd.state]) as d:
            for i in range(40):
                r = put(d, "/a%d" % i, {"memory.max": "1G"})
                assert r.status == 201, r
            fill(os.path.join(sd.dir, "fill"))

            acked, refused, deleted, kept = set(), set(), set(), set()
            lock = threading.Lock()
            errors = []

            def writer(k):
                try:
                    for i in range(40):
                        path = "/w%d-%d" % (k, i)
                        r = put(d, path, {"memory.high": "512M"})
                        with lock:
                            if r.status == 201:
                                acked.add(path)
                            else:
                                assert_refused(r, "No space left")
                                refused.add(path)
                    r = d.http("DELETE", "/v1/groups/a%d" % k)
                    with lock:
                        if r.status == 204:
                            deleted.add("/a%d" % k)
                        else:
                            assert_refused(r, "No space left")
                            kept.add("/a%d" % k)
                except Exception as e:  # noqa: B902 - reported below
                    errors.append(e)

            threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not errors, errors
            tap.diag("full: %d acknowledged, %d refused; deletes: %d done, %d refused"
                     % (len(acked), len(refused), len(deleted), len(kept)))
            assert len(refused) >= 20, (len(acked), len(refused))
            # A short record may still fit in the journal's last page: the
            # state shows the last save's result, so look right after a refusal.
            for i in range(10):
                r = put(d, "/probe%d" % i, {"memory.high": "512M"})
                if r.status == 503:
                    refused.add("/probe%d" % i)
                    break
                acked.add("/probe%d" % i)
            st = status(d)
            assert not st["ok"] and "No space left" in st["error"], st
            assert st["failures"] >= 2, st
            # Undone: the daemon holds what the file holds.
            paths = group_paths(d)
            assert acked <= paths and not (refused & paths), (acked - paths, refused & paths)
            assert not (deleted & paths) and kept <= paths

            os.unlink(os.path.join(sd.dir, "fill"))
            r = put(d, "/after")
            assert r.status == 201, r
            assert status(d)["ok"], status(d)

            d.stop(signal.SIGKILL)
            d.start()
            paths = group_paths(d)
            want = acked | kept | {"/after"} | {"/a%d" % i for i in range(4, 40)}
            assert want <= paths, sorted(want - paths)[:10]
            assert not (refused & paths), sorted(refused & paths)[:10]
            assert not (deleted & paths), sorted(deleted & paths)
    finally:
        sd.close()


def chattr(flag, *paths):
    subprocess.run(["chattr", flag] + [p for p in paths if os.path.exists(p)], check=True,
                   capture_output=True)


def test_read_only():
    sd = StateDir()
    files = [sd.dir, sd.state, sd.state + ".journal"]
    try:
        sd.bind()
        with Daemon(extra_args=["--state", sd.state]) as d:
            assert put(d, "/keep").status == 201
            # While it runs (its journal open for writing, which a remount
            # read-only would wait for): the files made immutable.
            chattr("+i", *files)
            try:
                assert_refused(put(d, "/lost"), "Operation not permitted")
                assert d.http("GET", "/v1/groups/lost").status == 404
                assert_refused(d.http("DELETE", "/v1/groups/keep"), "Operation not permitted")
                assert d.http("GET", "/v1/groups/keep").status == 200
                r = d.http("POST", "/v1/vms", {"name": "vm1", "qmp": "/nonexistent/vm1.qmp"})
                assert_refused(r, "Operation not permitted")
                assert d.http("GET", "/v1/vms/vm1").status == 404
                st = status(d)
                assert not st["ok"] and "not permitted" in st["error"], st
                assert st["failures"] >= 3, st
                metrics = d.http("GET", "/metrics").body.decode()
                assert "\nvmcg_state_ok 0\n" in metrics, metrics[:2000]
            finally:
                chattr("-i", *files)

            # Started on a read-only mount: it runs (its VMs need it) and refuses writes.
            d.stop()
            sd.read_only(True)
            d.start()
            st = status(d)
            assert not st["ok"] and "Read-only file system" in st["error"], st
            assert_refused(put(d, "/lost2"), "Read-only file system")
            assert d.http("GET", "/v1/groups/keep").status == 200

            sd.read_only(False)
            assert put(d, "/back").status == 201
            assert status(d)["ok"]
            d.stop(signal.SIGKILL)
            d.start()
            paths = group_paths(d)
            assert {"/keep", "/back"} <= paths, paths
            assert not ({"/lost", "/lost2"} & paths), paths
            assert d.http("GET", "/v1/vms/vm1").status == 404
    finally:
        subprocess.run(["chattr", "-i"] + files, capture_output=True)
        sd.close()


def test_sigkill():
    with Daemon() as d:
        acked = set()
        lock = threading.Lock()

        def writer(k):
            for i in range(50):
                path = "/k%d-%d" % (k, i)
                r = put(d, path)
                assert r.status == 201, r
                with lock:
                    acked.add(path)

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        d.stop(signal.SIGKILL)
        assert len(acked) == 200
        d.start()
        paths = group_paths(d)
        assert acked <= paths, sorted(acked - paths)[:10]


def write_state(path, n):
    with open(path, "w") as f:
        f.write('{"version":1,"groups":[\n')
        f.write(",\n".join('{"path":"/p%d"}' % i for i in range(n)))
        f.write("]}\n")


def median_put_usec(d, prefix, n=300):
    times = []
    for i in range(n):
        t = time.monotonic()
        r = put(d, "/%s%d" % (prefix, i))
        times.append(time.monotonic() - t)
        assert r.status == 201, r
    times.sort()
    return times[len(times) // 2] * 1e6


def test_put_scales():
    small, large = Daemon(), Daemon()
    try:
        write_state(small.state, 1000)
        write_state(large.state, 20000)
        small.start()
        large.start(wait=False)
        large.wait_ready(timeout=120)
        # Interleaved, so that the machine's noise falls on both.
        t_small = t_large = 0
        for rnd in range(3):
            t_small += median_put_usec(small, "s%d-" % rnd, 100)
            t_large += median_put_usec(large, "s%d-" % rnd, 100)
        ratio = t_large / t_small
        tap.diag("median PUT: %.0f us at 1,000 groups, %.0f us at 20,000: ratio %.2f"
                 % (t_small / 3, t_large / 3, ratio))
        assert ratio < 2, ratio
    finally:
        small.close()
        large.close()


TESTS = [
    ("full-disk", test_full_disk),
    ("read-only", test_read_only),
    ("sigkill", test_sigkill),
    ("put-scales", test_put_scales),
]


def setup():
    vmcgd_binary()
    if os.geteuid() != 0:
        raise tap.Skip("needs root: the faults are mounts (tmpfs, read-only bind)")


if __name__ == "__main__":
    sys.exit(tap.main(TESTS, setup=setup))
