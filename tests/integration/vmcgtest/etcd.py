"""etcd for the tests: a private cluster of real etcd members on localhost.

    c = EtcdCluster(n=3)        # started and healthy
    c.endpoints                 # ["http://127.0.0.1:P", ...]
    c.leader()                  # index of the leader
    c.kill(i); c.start(i)       # SIGKILL a member; restart it on its data dir
    c.stop()                    # every member gone, the directory removed

Each member has its own client and peer ports (free ports picked here),
its own data directory and log under one temp directory, and the cluster
is bootstrapped statically (--initial-cluster). Members run in their own
session and die with the test process (PR_SET_PDEATHSIG, as QEMU and
vmcgd do: guest.py); every cluster still running at exit is stopped.
A missing etcd binary is a failure, not a skip: the test command
installs it (scripts/install-deps.sh, Debian's etcd-server).

Heartbeat 50 ms and election timeout 500 ms (etcd's defaults are 100 and
1000 ms): a killed leader is replaced within about a second, so a
failover test stays short; still 10 heartbeats per election, as etcd's
tuning guide asks.

Standard library only.
"""

import atexit
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from .guest import GuestError, _child_setup, _tail, log, wait_for

STARTED = []  # EtcdCluster objects this process started
LOG_TAIL_CHARS = 3000


def etcd_binary():
    path = os.environ.get("VMCG_ETCD") or shutil.which("etcd") or "/usr/bin/etcd"
    if not os.access(path, os.X_OK):
        raise AssertionError("no etcd binary (%s): scripts/install-deps.sh installs "
                             "etcd-server" % path)
    return path


def _free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (held open together while picked)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def post(endpoint, path, body, timeout=2.0, tls=None):
    """POST a JSON body to the gateway; the decoded JSON answer (raises on error).
    tls: a Tls for https endpoints (its CA, and its client certificate)."""
    req = urllib.request.Request(endpoint + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    # No proxy: the members are on localhost, whatever http_proxy says.
    handlers = [urllib.request.ProxyHandler({})]
    if tls is not None:
        handlers.append(urllib.request.HTTPSHandler(context=tls.context()))
    opener = urllib.request.build_opener(*handlers)
    with opener.open(req, timeout=timeout) as r:
        return json.loads(r.read().decode())


class Tls:
    """A private CA and, signed by it, a server certificate for 127.0.0.1 and
    a client certificate (openssl), in `directory`: ca.pem, server.pem,
    server.key, client.pem, client.key."""

    def __init__(self, directory):
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.ca = d / "ca.pem"
        self.server_cert, self.server_key = d / "server.pem", d / "server.key"
        self.client_cert, self.client_key = d / "client.pem", d / "client.key"

        def run(*args):
            subprocess.run(["openssl"] + list(args), check=True, capture_output=True)

        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(d / "ca.key"), "-out", str(self.ca), "-subj", "/CN=vmcg test CA")
        for name, cert, key, ext in (
                ("server", self.server_cert, self.server_key,
                 "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth"),
                ("client", self.client_cert, self.client_key, "extendedKeyUsage=clientAuth")):
            (d / ("%s.ext" % name)).write_text(ext + "\n")
            run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                "-out", str(d / ("%s.csr" % name)), "-subj", "/CN=vmcg test %s" % name)
            run("x509", "-req", "-in", str(d / ("%s.csr" % name)), "-CA", str(self.ca),
                "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "2",
                "-extfile", str(d / ("%s.ext" % name)), "-out", str(cert))

    def context(self):
        ctx = ssl.create_default_context(cafile=str(self.ca))
        ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        return ctx


def _close_all():
    for c in STARTED:
        try:
            c.stop()
        except Exception:  # noqa: B902 - at exit, keep stopping the others
            pass


atexit.register(_close_all)


class EtcdCluster:
    def __init__(self, n=3, start=True, timeout=30.0, tls=False):
        self.n = n
        self.tmpdir = Path(tempfile.mkdtemp(prefix="vmcg-etcd-"))
        ports = _free_ports(2 * n)
        self.client_ports = ports[:n]
        self.peer_ports = ports[n:]
        self.names = ["m%d" % i for i in range(n)]
        # tls: clients speak https and must show a certificate of the CA
        # (--client-cert-auth); peers stay plain http on localhost.
        self.tls = Tls(self.tmpdir / "tls") if tls else None
        self.endpoints = ["%s://127.0.0.1:%d" % ("https" if tls else "http", p)
                          for p in self.client_ports]
        self.procs = [None] * n
        self.logfs = [None] * n
        self.stopped = False
        STARTED.append(self)
        if start:
            try:
                for i in range(n):
                    self.start(i, wait=False)
                self.wait_healthy(timeout=timeout)
            except BaseException:
                self.log_tails()
                self.stop()
                raise

    def log_path(self, i):
        return self.tmpdir / ("%s.log" % self.names[i])

    def command(self, i):
        cluster = ",".join("%s=http://127.0.0.1:%d" % (self.names[k], self.peer_ports[k])
                           for k in range(self.n))
        client = self.endpoints[i]
        peer = "http://127.0.0.1:%d" % self.peer_ports[i]
        return [etcd_binary(), "--name", self.names[i],
                "--data-dir", str(self.tmpdir / self.names[i]),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", cluster, "--initial-cluster-state", "new",
                "--initial-cluster-token", "vmcg-test-%s" % self.tmpdir.name,
                "--heartbeat-interval", "50", "--election-timeout", "500",
                "--logger", "zap", "--log-outputs", "stderr"] + (
                    ["--cert-file", str(self.tls.server_cert),
                     "--key-file", str(self.tls.server_key),
                     "--trusted-ca-file", str(self.tls.ca), "--client-cert-auth"]
                    if self.tls else [])

    def running(self, i):
        return self.procs[i] is not None and self.procs[i].poll() is None

    def start(self, i, wait=True):
        """Starts member i (again: on its data dir, which keeps its identity)."""
        if self.running(i):
            raise GuestError("etcd member %d already running" % i)
        self.logfs[i] = open(self.log_path(i), "ab")
        self.procs[i] = subprocess.Popen(self.command(i), stdin=subprocess.DEVNULL,
                                         stdout=self.logfs[i], stderr=subprocess.STDOUT,
                                         start_new_session=True,
                                         preexec_fn=_child_setup(os.getpid()))
        if wait:
            wait_for(lambda: self.status(i), 20, what="etcd member %d healthy" % i)

    def kill(self, i):
        """SIGKILL member i (a crash: no graceful leave)."""
        p = self.procs[i]
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=10)
        if self.logfs[i]:
            self.logfs[i].close()
            self.logfs[i] = None

    def status(self, i, timeout=1.0):
        """Member i's /v3/maintenance/status, or None if it does not answer or has
        no leader."""
        if not self.running(i):
            return None
        try:
            st = post(self.endpoints[i], "/v3/maintenance/status", {}, timeout=timeout,
                      tls=self.tls)
        except (OSError, ValueError, urllib.error.URLError):
            return None
        if st.get("leader", "0") == "0":
            return None
        return st

    def healthy(self):
        return all(self.status(i) for i in range(self.n) if self.running(i))

    def wait_healthy(self, timeout=30.0):
        """Every running member answers with a leader, and all agree on it."""
        def agreed():
            sts = [self.status(i) for i in range(self.n) if self.running(i)]
            return all(sts) and len({s["leader"] for s in sts}) == 1
        wait_for(agreed, timeout, interval=0.1, what="etcd cluster healthy")

    def leader(self):
        """Index of the leader, as the running members report it (member_id vs
        leader); None when they have none."""
        for i in range(self.n):
            st = self.status(i)
            if not st:
                continue
            for k in range(self.n):
                sk = self.status(k)
                if sk and sk["header"]["member_id"] == st["leader"]:
                    return k
        return None

    def log_tails(self):
        for i in range(self.n):
            text = _tail(self.log_path(i), LOG_TAIL_CHARS)
            if text:
                log("etcd %s log, last lines:\n%s" % (self.names[i], text))

    def stop(self):
        if self.stopped:
            return
        for i in range(self.n):
            self.kill(i)
        self.stopped = True
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.log_tails()
        self.stop()
        return False
