#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Cluster-wide quotas (docs/cluster.md, issue 12): the cluster agent
(daemon/cluster-agent.c) of K simulated hosts against a real etcd 3.4.

One private 3-member cluster (vmcgtest/etcd.py). Each test runs
tests/integration/cluster-check.c, which holds K hosts in one process
(each its own etcd client, lease and agent of one group, quota Q) and
drives them through phases; a separate client reads the whole prefix
after every round:

         etcd (3 members)
        /      |       \\
      h0      h1  ...  hK-1     grants under /vmcg/cluster/v1/groups/<g>/grants/
    0.8Q -> 0.01Q       0.01Q -> 0.8Q      (the slice moves)
      Q        Q         Q                 (Q/K each, then no writes)
              h1 stops                     (its lease expires: the others
                                            grow into its share)

  k3-stop   K=3; after phase 3 host 2's lease is revoked under it: its
            record is back under a new lease within TTL/3 + 1.5 s; then
            host 1 stops its rounds and keepalive:
            no check ever sees sum(grants) > Q; the steady window writes
            nothing; host 1's key is gone and the others hold Q - 1 %
            within TTL (2 s) + 1.5 s
  k8        K=8, same phases without the stop
  k3-shrink K=3; after phase 3 host 0's demand drops while its usage
            stays: for 10 rounds it enforces the smaller grant but its
            record keeps the old one and the others do not grow; once its
            usage is down it publishes and the others grow
  k8-churn  K=8; after phase 3, 300 rounds in which every host's demand
            jumps at random between 0 and Q, all rounds in flight at once
            (the stress of concurrent grant requests): no check ever sees
            sum(grants) > Q

Needs /usr/bin/etcd: a missing etcd is a failure. Prints TAP.
"""

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vmcgtest import tap  # noqa: E402
from vmcgtest.etcd import EtcdCluster, etcd_binary  # noqa: E402
from vmcgtest.guest import REPO_ROOT, _child_setup  # noqa: E402

CLUSTER = None
TTL_S = 2
INTERVAL_MS = 100


def check_binary():
    path = os.environ.get("VMCG_CLUSTER_CHECK") or str(
        REPO_ROOT / "build" / "tests" / "integration" / "cluster-check")
    if not os.access(path, os.X_OK):
        raise AssertionError("no cluster-check at %s (build first)" % path)
    return path


def run_check(*args):
    """Runs cluster-check; returns its figures. Fails on any violation."""
    cmd = [check_binary(), "--endpoints", ",".join(CLUSTER.endpoints),
           "--ttl", str(TTL_S), "--interval-ms", str(INTERVAL_MS)] + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                       preexec_fn=_child_setup(os.getpid()))
    figures = {}
    for line in p.stdout.splitlines():
        if line.startswith("figure ") or line.startswith("violation"):
            tap.diag(line)
        if line.startswith("figure "):
            k, v = line.split(" ", 1)[1].split("=", 1)
            figures[k] = float(v)
    violations = [l for l in p.stdout.splitlines() if l.startswith("violation")]
    assert not violations, "violations: %s" % violations
    assert p.returncode == 0, "cluster-check exited %d: %s\n%s" % (
        p.returncode, p.stderr[-2000:], p.stdout[-2000:])
    assert figures.get("checks", 0) > 0, "no prefix read checked the sum"
    # Convergence: the steady window (every host wants Q, shares Q/K) writes nothing.
    assert figures["steady_writes"] == 0, figures
    return figures


def test_k3_stop():
    f = run_check("--hosts", "3", "--group", "/k3", "--revoke-host", "2", "--stop-host", "1",
                  "--seed", "1")
    assert "regrown_ms" in f and "rejoin_ms" in f, f
    # Revoked: the keepalive (every TTL/3) hears NOT_FOUND, grants anew,
    # and the agent puts its record again at its next round.
    assert f["rejoin_ms"] <= TTL_S * 1000 / 3 + 1500, f
    # The lease expires after its TTL; etcd's lessor checks every 500 ms;
    # then a round or two for the others to grow.
    assert f["regrown_ms"] <= TTL_S * 1000 + 1500, f


def test_k8():
    # 60 rounds a phase: with every round of 8 hosts in flight at once, the
    # range guard lets about one transaction commit per round, and a CI run
    # under load took 32 rounds to converge, past the 30 of the default
    # steady window's start (docs/cluster.md, "Not done": synchronized rounds).
    run_check("--hosts", "8", "--group", "/k8", "--rounds", "60", "--seed", "2")


def test_k3_shrink():
    f = run_check("--hosts", "3", "--group", "/k3s", "--shrink-check", "--seed", "3")
    assert "shrink_publish_rounds" in f, f


def test_k8_churn():
    # 60 rounds a phase, as k8: its convergence phase is the same, and a CI
    # run under load took 34 rounds (4 writes in the steady window).
    f = run_check("--hosts", "8", "--group", "/k8c", "--rounds", "60", "--churn-rounds", "300",
                  "--seed", "4")
    # Every round of the 300 was followed by prefix reads that checked the sum.
    assert f["churn_checks"] >= 300, f
    assert f["churn_writes"] > 100, f  # demand moved: grants did too


TESTS = [
    ("k3-stop", test_k3_stop),
    ("k8", test_k8),
    ("k3-shrink", test_k3_shrink),
    ("k8-churn", test_k8_churn),
]


def setup():
    global CLUSTER
    etcd_binary()
    check_binary()
    CLUSTER = EtcdCluster(n=3)


def cleanup():
    if CLUSTER is not None:
        CLUSTER.stop()


if __name__ == "__main__":
    sys.exit(tap.main(TESTS, setup=setup, cleanup=cleanup))
