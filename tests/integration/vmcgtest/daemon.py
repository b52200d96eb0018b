"""Run the real vmcgd and talk to its real API over its real unix socket.

    with Daemon(config=TEXT) as d:
        d.put("/v1/groups/t", {"memory.high": "256M"})
        d.get("/v1/groups/t")["memory.current"]

Standard library only.
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from .guest import REPO_ROOT, GuestError, wait_for

MiB = 1 << 20


def vmcgd_binary():
    path = os.environ.get("VMCGD") or str(REPO_ROOT / "build" / "daemon" / "vmcgd")
    if not os.access(path, os.X_OK):
        raise GuestError("no vmcgd at %s (build first, or set VMCGD)" % path)
    return path


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket: only connect() differs."""

    def __init__(self, path, timeout=30.0):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class ApiError(Exception):
    def __init__(self, status, body):
        super().__init__("HTTP %d: %s" % (status, body))
        self.status = status
        self.body = body


class Daemon:
    """One vmcgd process with a private socket, state file and log."""

    def __init__(self, config="", interval="250ms", extra_args=(), tmpdir=None):
        self.config = config
        self.interval = interval
        self.extra_args = list(extra_args)
        self.own_tmpdir = tmpdir is None
        self.tmpdir = Path(tmpdir or tempfile.mkdtemp(prefix="vmcgd-"))
        self.socket = str(self.tmpdir / "vmcgd.sock")
        self.state = str(self.tmpdir / "state.json")
        self.hooks_socket = str(self.tmpdir / "hooks.sock")
        self.log = self.tmpdir / "vmcgd.log"
        self.proc = None
        self.events = []
        self._events_lock = threading.Lock()
        self._sse = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        if self.own_tmpdir:
            if exc_type and os.environ.get("VMCG_TEST_LOGDIR"):
                dst = Path(os.environ["VMCG_TEST_LOGDIR"])
                dst.mkdir(parents=True, exist_ok=True)
                shutil.copy(self.log, dst / ("vmcgd-%d.log" % os.getpid()))
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        return False

    def start(self):
        args = [vmcgd_binary()]
        if self.config is not None:  # None: vmcgd's embedded default config
            cfg = self.tmpdir / "vmcgd.conf"
            cfg.write_text(self.config)
            args += ["--config", str(cfg)]
        args += ["--socket", self.socket, "--state", self.state, "--interval", self.interval,
                 "--hooks-socket", self.hooks_socket, "-v"] + self.extra_args
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: self._alive() and os.path.exists(self.socket) and self._ping(),
                 20, what="vmcgd answering on %s" % self.socket)
        return self

    def _alive(self):
        if self.proc.poll() is not None:
            raise GuestError("vmcgd exited with %s:\n%s" % (self.proc.returncode, self.tail()))
        return True

    def _ping(self):
        try:
            self.request("GET", "/v1/groups/")
            return True
        except (OSError, ApiError):
            return False

    def tail(self, limit=4000):
        try:
            return self.log.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM):
        if self._sse:
            self._sse.close()
            self._sse = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "logf", None):
            self.logf.close()
            self.logf = None

    def restart(self):
        self.stop()
        self.start()

    # -- API -----------------------------------------------------------------

    def request(self, method, path, body=None, raw=None, timeout=30.0):
        conn = UnixHTTPConnection(self.socket, timeout=timeout)
        try:
            data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                                else None)
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
            try:
                doc = json.loads(text) if text else None
            except ValueError:
                doc = text
            if resp.status >= 400:
                raise ApiError(resp.status, doc)
            return doc
        finally:
            conn.close()

    def get(self, path):
        return self.request("GET", path)

    def put(self, path, body):
        return self.request("PUT", path, body)

    def post(self, path, body):
        return self.request("POST", path, body)

    def delete(self, path):
        return self.request("DELETE", path)

    def group(self, path):
        return self.get("/v1/groups" + (path if path != "/" else "/"))

    def vm(self, name):
        return self.get("/v1/vms/" + name)

    # -- events ----------------------------------------------------------------

    def follow_events(self):
        """Collects the SSE stream into self.events from a background thread."""
        conn = UnixHTTPConnection(self.socket, timeout=None)
        conn.request("GET", "/v1/events")
        resp = conn.getresponse()
        if resp.status != 200:
            raise ApiError(resp.status, resp.read())
        self._sse = conn

        def reader():
            etype = None
            try:
                for raw in resp:
                    line = raw.decode("utf-8", "replace").rstrip("\n")
                    if line.startswith("event:"):
                        etype = line[6:].strip()
                    elif line.startswith("data:") and etype:
                        try:
                            data = json.loads(line[5:].strip())
                        except ValueError:
                            data = line[5:].strip()
                        with self._events_lock:
                            self.events.append((etype, data))
                        etype = None
            except (OSError, ValueError, AttributeError):
                pass

        threading.Thread(target=reader, daemon=True).start()

    def events_of(self, etype):
        with self._events_lock:
            return [d for t, d in self.events if t == etype]


def tap_run(tests):
    """Runs (name, fn) pairs, printing TAP; fn may raise SkipTest. Returns exit status."""
    import traceback
    import unittest

    print("1..%d" % len(tests), flush=True)
    failed = 0
    for i, (name, fn) in enumerate(tests, 1):
        t0 = time.monotonic()
        try:
            fn()
        except unittest.SkipTest as e:
            print("ok %d %s # SKIP %s" % (i, name, e), flush=True)
            continue
        except Exception:
            failed += 1
            print("not ok %d %s" % (i, name), flush=True)
            for line in traceback.format_exc().splitlines():
                print("# " + line, flush=True)
            continue
        print("ok %d %s (%.1f s)" % (i, name, time.monotonic() - t0), flush=True)
    return 1 if failed else 0
