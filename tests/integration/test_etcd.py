#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""vmcgd's etcd client (daemon/etcd.c, issue 12) against a real etcd 3.4.

One private 3-member cluster (vmcgtest/etcd.py) for the whole file; the
client is driven through tests/integration/etcd-client-check.c, one
command per line, so that this script can write a key or kill a member
between two of the client's requests:

  round-trip     put, get, prefix, delete; values and revisions as etcd
                 keeps them
  cas            txn compare-and-swap on mod_revision: another writer
                 changes the key between the client's read and its txn
                 -> the txn fails and returns the other's value; on the
                 fresh revision it succeeds; create-if-absent (mod 0)
  range-guard    txn with a compare over a prefix (range_end): a key
                 created under it since the read refuses the txn
  lease          grant, put with the lease, keepalive, revoke -> the key
                 is gone; a keepalive of the revoked lease is NOT_FOUND
  lease-expiry   ttl 2 s, no keepalive -> the key is gone within ttl + 1 s
  dead-endpoint  the first endpoint refuses connections -> the next one
                 answers, and is used from then on
  deadline-cause a peer that refuses the first read (HTTP 503) and leaves
                 the retry unanswered -> TIMEOUT at the deadline, and the
                 message leads with the refusal, not "no answer"
  failover       all three endpoints, the leader first; kill the leader
                 -> the next get, then puts, txns and lease calls succeed
                 through the others, the survivors elect a new leader;
                 the member restarts on its data dir and rejoins

Needs /usr/bin/etcd (Debian's etcd-server, installed by
scripts/install-deps.sh): a missing etcd is a failure. Prints TAP.
"""

import os
import select
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vmcgtest import tap  # noqa: E402
from vmcgtest.etcd import EtcdCluster, etcd_binary, post  # noqa: E402
from vmcgtest.guest import REPO_ROOT, _child_setup, wait_for  # noqa: E402

CLUSTER = None
PREFIX = "/vmcg-test/%d/" % os.getpid()


def client_binary():
    path = os.environ.get("VMCG_ETCD_CLIENT_CHECK") or str(
        REPO_ROOT / "build" / "tests" / "integration" / "etcd-client-check")
    if not os.access(path, os.X_OK):
        raise AssertionError("no etcd-client-check at %s (build first)" % path)
    return path


def b64(s):
    import base64
    return base64.b64encode(s.encode()).decode()


class Client:
    """One etcd-client-check process: cmd() sends a line, returns the answer."""

    def __init__(self, endpoints):
        self.proc = subprocess.Popen([client_binary(), ",".join(endpoints)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1,
                                     preexec_fn=_child_setup(os.getpid()))

    def cmd(self, line, timeout=15.0):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise AssertionError("%r: no answer within %.0f s" % (line, timeout))
        out = self.proc.stdout.readline().strip()
        tap.diag("%s -> %s" % (line, out))
        return out

    def ok(self, line, **kw):
        out = self.cmd(line, **kw)
        assert out.startswith("ok"), "%r: %s" % (line, out)
        return dict(w.split("=", 1) for w in out.split()[1:] if "=" in w)

    def close(self):
        self.proc.stdin.close()
        rc = self.proc.wait(timeout=10)
        err = self.proc.stderr.read()
        assert rc == 0, "etcd-client-check exited %d: %s" % (rc, err)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.proc.kill()
            self.proc.wait()
        return False


def test_round_trip():
    k = PREFIX + "rt/a"
    with Client(CLUSTER.endpoints) as c:
        put = c.ok("put %s v1" % k)
        got = c.ok("get " + k)
        assert got["value"] == "v1" and got["count"] == "1", got
        assert got["mod"] == put["rev"] == got["create"] and got["version"] == "1", (put, got)
        put2 = c.ok("put %s v2" % k)
        got = c.ok("get " + k)
        assert got["value"] == "v2" and got["version"] == "2" and got["mod"] == put2["rev"]
        assert int(put2["rev"]) > int(put["rev"])
        c.ok("put %sb x" % k)
        c.ok("put %s y" % (PREFIX + "rt0"))  # beyond the prefix's range_end
        pre = c.ok("prefix " + PREFIX + "rt/")
        assert pre["keys"] == "%s,%sb" % (k, k) and pre["count"] == "2", pre
        assert c.ok("del " + k)["deleted"] == "1"
        assert c.ok("get " + k)["count"] == "0"
        assert c.ok("del " + k)["deleted"] == "0"
        # What the client refuses before sending: a TTL of 0.
        assert c.cmd("grant 0").startswith("error INVALID"), "a TTL of 0 was sent"


def test_cas():
    k = PREFIX + "cas"
    ep = CLUSTER.endpoints[0]
    with Client(CLUSTER.endpoints) as c:
        created = c.ok("cas %s 0 mine" % k)  # mod_revision 0: the key is absent
        assert created["succeeded"] == "1", created
        again = c.ok("cas %s 0 mine" % k)
        assert again["succeeded"] == "0" and again["value"] == "mine", again
        mod = c.ok("get " + k)["mod"]
        # Another writer, between our read and our txn.
        other = post(ep, "/v3/kv/put", {"key": b64(k), "value": b64("theirs")})
        lost = c.ok("cas %s %s mine2" % (k, mod))
        assert lost["succeeded"] == "0", lost
        assert lost["value"] == "theirs" and lost["mod"] == other["header"]["revision"], lost
        won = c.ok("cas %s %s mine2" % (k, lost["mod"]))
        assert won["succeeded"] == "1", won
        assert c.ok("get " + k)["value"] == "mine2"


def test_range_guard():
    # docs/cluster.md: "mod_revision < rev + 1" over a prefix refuses a
    # txn when a key under it was created (or changed) after the read at
    # rev, which per-key compares cannot see; a key beyond the prefix
    # does not count.
    pre = PREFIX + "guard/"
    with Client(CLUSTER.endpoints) as c:
        c.ok("put %sa 1" % pre)
        rev = c.ok("prefix " + pre)["rev"]
        c.ok("put %s x" % (PREFIX + "guard0"))  # beyond the prefix's range_end
        ok = c.ok("guard %s %s %sa 2" % (pre, rev, pre))
        assert ok["succeeded"] == "1", ok
        rev = c.ok("prefix " + pre)["rev"]
        c.ok("put %sc joined" % pre)  # created after the read
        refused = c.ok("guard %s %s %sa 3" % (pre, rev, pre))
        assert refused["succeeded"] == "0", refused
        assert c.ok("get %sa" % pre)["value"] == "2"
        rev = c.ok("prefix " + pre)["rev"]
        assert c.ok("guard %s %s %sa 3" % (pre, rev, pre))["succeeded"] == "1"
        # An empty prefix: the compare holds (nothing changed under it).
        assert c.ok("guard %s %s %sz 1" % (PREFIX + "none/", rev, PREFIX + "none/"))[
            "succeeded"] == "1"


def test_lease():
    k = PREFIX + "lease"
    with Client(CLUSTER.endpoints) as c:
        g = c.ok("grant 30")
        assert g["ttl"] == "30" and int(g["id"]) > 0, g
        c.ok("put %s held %s" % (k, g["id"]))
        got = c.ok("get " + k)
        assert got["lease"] == g["id"], got
        ka = c.ok("keepalive " + g["id"])
        assert ka["ttl"] == "30", ka
        c.ok("revoke " + g["id"])
        assert c.ok("get " + k)["count"] == "0", "the lease's key outlived its revoke"
        gone = c.cmd("keepalive " + g["id"])
        assert gone.startswith("error NOT_FOUND"), gone
        again = c.cmd("revoke " + g["id"])
        assert again.startswith("error NOT_FOUND") and "lease not found" in again, again
        bad = c.cmd("put %s x 12345" % k)  # a lease that does not exist
        assert bad.startswith("error NOT_FOUND"), bad


def test_lease_expiry():
    k = PREFIX + "expiry"
    with Client(CLUSTER.endpoints) as c:
        g = c.ok("grant 2")
        c.ok("put %s soon %s" % (k, g["id"]))
        t0 = time.monotonic()
        assert c.ok("get " + k)["count"] == "1"
        wait_for(lambda: c.ok("get " + k)["count"] == "0", 3.0, interval=0.2,
                 what="key of a 2 s lease gone within 3 s")
        tap.diag("the key went after %.1f s" % (time.monotonic() - t0))
        assert c.cmd("keepalive " + g["id"]).startswith("error NOT_FOUND")


def test_dead_endpoint():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = "http://127.0.0.1:%d" % s.getsockname()[1]
    s.close()  # nobody listens there now: connections are refused
    with Client([dead] + CLUSTER.endpoints) as c:
        st = c.ok("status")
        assert st["endpoint"] == "1" and st["version"].startswith("3.4"), st
        c.ok("put %s x" % (PREFIX + "dead"))  # a put may move on: nothing was sent
        assert c.ok("status")["endpoint"] == "1"
    with Client([dead]) as c:
        out = c.cmd("get " + PREFIX + "dead")
        assert out.startswith("error UNAVAILABLE"), out


def test_deadline_cause():
    """A retry cut by the deadline says what the attempt before it met.

    A real etcd cannot be made to refuse once and then hang, so this peer is
    a socket in this script (a fault, not a stand-in for etcd's answers)."""
    import socket
    import threading
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held = []
    seen = []

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.settimeout(5)
            try:
                seen.append(conn.recv(65536))
            except OSError:
                pass
            if len(seen) == 1:
                body = b'{"error":"etcdserver: leader changed","code":14}'
                conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\n"
                             b"Content-Type: application/json\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n"
                             % len(body) + body)
                conn.close()
            else:
                held.append(conn)  # read, never answered

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with Client(["http://127.0.0.1:%d" % srv.getsockname()[1]]) as c:
            c.ok("timeout 1500")
            out = c.cmd("get " + PREFIX + "deadline")
            assert out.startswith("error TIMEOUT "), out
            msg = out[len("error TIMEOUT "):]
            assert "leader changed" in msg, out
            assert msg.index("leader changed") < msg.index("1500 ms deadline"), out
            assert "/v3/kv/range" in msg and "no answer" not in msg, out
            assert len(seen) >= 2, "the read was not retried: %d attempt(s)" % len(seen)
    finally:
        srv.close()
        for conn in held:
            conn.close()


def test_failover():
    k = PREFIX + "failover"
    lead = CLUSTER.leader()
    assert lead is not None
    order = [lead] + [i for i in range(CLUSTER.n) if i != lead]
    with Client([CLUSTER.endpoints[i] for i in order]) as c:
        st = c.ok("status")
        assert st["member"] == st["leader"] and st["endpoint"] == "0", st
        c.ok("put %s before" % k)
        CLUSTER.kill(lead)
        # The first request is a read: a put sent to a follower before it
        # noticed the leader's death is forwarded to the dead leader and
        # lost, and the client rightly reports a timeout rather than
        # sending it again (etcd.h). A read is safe to repeat: refused by
        # the dead member, "leader changed" or "no leader" from the others
        # until they elect one, then answered.
        t0 = time.monotonic()
        got = c.ok("get " + k)
        tap.diag("first get after the kill took %.1f s" % (time.monotonic() - t0))
        assert got["value"] == "before", got
        put = c.cmd("put %s after" % k)
        assert put.startswith("ok"), put
        assert c.ok("get " + k)["value"] == "after"
        mod = c.ok("get " + k)["mod"]
        assert c.ok("cas %s %s swapped" % (k, mod))["succeeded"] == "1"
        st = c.ok("status")
        assert st["endpoint"] != "0", st
        assert st["leader"] != "0" and st["member"] != "0", st
        g = c.ok("grant 10")
        c.ok("keepalive " + g["id"])
        c.ok("revoke " + g["id"])
    survivors = [i for i in range(CLUSTER.n) if i != lead]
    new = CLUSTER.leader()
    assert new in survivors, "leader %r after killing %d" % (new, lead)
    CLUSTER.start(lead)
    CLUSTER.wait_healthy(timeout=20)


TESTS = [
    ("round-trip", test_round_trip),
    ("cas", test_cas),
    ("range-guard", test_range_guard),
    ("lease", test_lease),
    ("lease-expiry", test_lease_expiry),
    ("dead-endpoint", test_dead_endpoint),
    ("deadline-cause", test_deadline_cause),
    ("failover", test_failover),
]


def setup():
    global CLUSTER
    etcd_binary()
    client_binary()
    CLUSTER = EtcdCluster(n=3)


def cleanup():
    if CLUSTER is not None:
        CLUSTER.stop()


if __name__ == "__main__":
    sys.exit(tap.main(TESTS, setup=setup, cleanup=cleanup))
