#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""vmcgd joins a cluster over TLS with a client certificate ([cluster]
ca-file, cert-file, key-file; docs/cluster.md), as etcd's own clients do.

One real etcd member serving https only to clients that show a certificate
of a private CA (--client-cert-auth; the CA and certificates are made here
with openssl: vmcgtest/etcd.py Tls). vmcgd has one cluster group and no VM.

  mutual-tls        with the CA and the client certificate: the group is
                    synced and its record is in etcd (read back over TLS)
  no-client-cert    with the CA only: etcd refuses the handshake; the
                    group never syncs, says why, and its cap stays the
                    quota (no grant of 0 without a read)
  wrong-ca          with another CA: the server is not trusted; the same
  half-a-cert       cert-file without key-file: vmcgd refuses to start,
                    naming the section

Needs /usr/bin/etcd and openssl (scripts/install-deps.sh): missing ones
are failures. Prints TAP.
"""

import base64
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vmcgtest import tap, wait_for  # noqa: E402
from vmcgtest.daemon import Daemon, MiB, vmcgd_binary  # noqa: E402
from vmcgtest.etcd import EtcdCluster, Tls, etcd_binary, post  # noqa: E402

ETCD = None
PREFIX = "/vmcg/cluster/v1/groups/%2Fs/grants/"
QUOTA = 512 * MiB


def conf(tls_lines, node):
    return """
[daemon]
interval = 250ms
write-group =
[cluster]
etcd = %s
node = %s
lease-ttl = 4s
%s
[group /s]
cluster.memory.max = 512M
""" % (ETCD.endpoints[0], node, tls_lines)


def records():
    body = {"key": base64.b64encode(PREFIX.encode()).decode(),
            "range_end": base64.b64encode(PREFIX[:-1].encode() + b"0").decode()}
    r = post(ETCD.endpoints[0], "/v3/kv/range", body, tls=ETCD.tls)
    return {base64.b64decode(kv["key"]).decode()[len(PREFIX):]:
            json.loads(base64.b64decode(kv["value"])) for kv in r.get("kvs", [])}


def test_mutual_tls():
    t = ETCD.tls
    with Daemon(config=conf("ca-file = %s\ncert-file = %s\nkey-file = %s\n"
                            % (t.ca, t.client_cert, t.client_key), "tls-host")) as d:
        wait_for(lambda: d.group("/s")["cluster"]["state"] == "synced", 15,
                 what="synced over TLS")
        assert d.get("/v1/status")["cluster"]["endpoint"].startswith("https://"), \
            d.get("/v1/status")
        wait_for(lambda: "tls-host" in records(), 5, what="the record in etcd")
        assert records()["tls-host"]["quota"] == QUOTA, records()


def refused(tls_lines, what, node):
    with Daemon(config=conf(tls_lines, node)) as d:
        wait_for(lambda: (d.group("/s")["cluster"]["error"] or "") != "", 15,
                 what="an error said (%s)" % what)
        c = d.group("/s")["cluster"]
        assert c["state"] in ("connecting", "partitioned") and c["synced-usec"] == 0, c
        assert c["enforced"] == QUOTA, c  # no read: the quota is the cap, not 0
        tap.diag("%s: %s" % (what, c["error"]))
    assert node not in records()
    return c["error"]


def test_no_client_cert():
    err = refused("ca-file = %s\n" % ETCD.tls.ca, "no client certificate", "no-cert-host")
    # Says why, not only that it timed out: when the deadline cuts a retry,
    # the refusal before it leads the message.
    assert "certificate" in err.lower(), err


def test_wrong_ca():
    other = Tls(Path(ETCD.tmpdir) / "other")
    err = refused("ca-file = %s\ncert-file = %s\nkey-file = %s\n"
                  % (other.ca, ETCD.tls.client_cert, ETCD.tls.client_key),
                  "a CA that did not sign", "wrong-ca-host")
    assert "certificate" in err.lower() or "tls" in err.lower(), err


def test_half_a_cert():
    d = Daemon(config=conf("ca-file = %s\ncert-file = %s\n" % (ETCD.tls.ca,
                                                              ETCD.tls.client_cert), "half"))
    try:
        p = subprocess.run(d.command(), capture_output=True, text=True, timeout=30)
    finally:
        d.close()
    assert p.returncode != 0, p
    assert "[cluster]" in p.stderr and "key" in p.stderr, p.stderr


TESTS = [
    ("mutual-tls", test_mutual_tls),
    ("no-client-cert", test_no_client_cert),
    ("wrong-ca", test_wrong_ca),
    ("half-a-cert", test_half_a_cert),
]


def setup():
    global ETCD
    etcd_binary()
    vmcgd_binary()
    ETCD = EtcdCluster(n=1, tls=True)


def cleanup():
    if ETCD is not None:
        ETCD.stop()


if __name__ == "__main__":
    sys.exit(tap.main(TESTS, setup=setup, cleanup=cleanup))
