"""Run the real vmcgd and talk to its real API over its real unix socket.

    with Daemon(config=TEXT) as d:
        d.put("/v1/groups/t", {"memory.high": "256M"})
        d.get("/v1/groups/t")["memory.current"]

Standard library only.
"""

import atexit
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

from .guest import REPO_ROOT, GuestError, _child_setup, wait_for

MiB = 1 << 20

# The [daemon] section of the tests with real guests: a fast loop and fresh
# guest statistics, so that scenarios settle in seconds even under TCG; no
# write group (the tests run as root).
FAST_DAEMON_CONF = """
[daemon]
interval = 250ms
stats-interval = 1s
stats-max-age = 5s
reclaim-step = 64M
hysteresis = 16M
write-group =
"""


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


class Response:
    """A raw HTTP answer: status, headers and body bytes (Daemon.http())."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "%d %r" % (self.status, self.body[:300])


def http_request(sock, method, path, body=None, headers=None, chunked=False, timeout=30.0):
    """One HTTP request over the unix socket @sock; a Response, whatever its status.
    A dict or list body is sent as JSON; chunked: sent in 4 KiB chunks."""
    conn = UnixHTTPConnection(sock, timeout=timeout)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode("utf-8")
        hdrs = dict(headers or {})
        if chunked:
            conn.request(method, path, body=iter([body[i:i + 4096]
                                                  for i in range(0, len(body), 4096)]),
                         headers=hdrs, encode_chunked=True)
        else:
            conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        return Response(r.status, r.headers, r.read())
    finally:
        conn.close()


# Every Daemon started in this process, in order: the TAP runner (tap.py)
# shows the log of those a failed test started and of those still running.
STARTED = []
LOG_KEEP_CHARS = 16000


def _close_all():
    """At exit: no vmcgd of this process outlives it, nor its directory."""
    for d in STARTED:
        try:
            d.close()
        except Exception:  # noqa: B902 - at exit, keep closing the others
            pass


atexit.register(_close_all)


class Daemon:
    """One vmcgd process with a private socket, hooks socket, state file and log.

    config: the config file's text; None runs vmcgd without --config (its
    embedded default). socket_path: the API socket's path (default
    TMPDIR/vmcgd.sock). verbose: -v (debug messages in the log).

    One object runs at most one vmcgd at a time: start() raises while the
    process it started is alive; stop() then start() (or restart()) starts
    a new one. `with Daemon(...) as d:` starts it and, at the end, stops it
    and removes its temporary directory (close()); so does close() after a
    bare start().
    """

    def __init__(self, config="", interval="250ms", extra_args=(), tmpdir=None, socket_path=None,
                 verbose=True, libvirt=""):
        self.config = config
        self.interval = interval
        self.extra_args = list(extra_args)
        self.verbose = verbose
        # The libvirt URI (--libvirt): none unless a test asks, so that no
        # other test adopts this host's libvirt domains.
        self.libvirt = libvirt
        self.own_tmpdir = tmpdir is None
        self.tmpdir = Path(tmpdir or tempfile.mkdtemp(prefix="vmcgd-"))
        self.socket = str(socket_path or self.tmpdir / "vmcgd.sock")
        self.state = str(self.tmpdir / "state.json")
        self.hooks_socket = str(self.tmpdir / "hooks.sock")
        self.log = self.tmpdir / "vmcgd.log"
        self.proc = None
        self.logf = None
        self.events = []
        self._events_lock = threading.Lock()
        self._sse = None
        self._saved_log = None
        self._closed = False

    def __enter__(self):
        self._refuse_second()  # before the try: the running vmcgd is not ours to close
        try:
            self.start()
        except BaseException:
            self.close(failed=True)
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(failed=exc_type is not None)
        return False

    def command(self):
        """vmcgd's argument vector."""
        args = [vmcgd_binary()]
        if self.config is not None:  # None: vmcgd's embedded default config
            cfg = self.tmpdir / "vmcgd.conf"
            cfg.write_text(self.config)
            args += ["--config", str(cfg)]
        args += ["--socket", self.socket, "--state", self.state, "--interval", self.interval,
                 "--hooks-socket", self.hooks_socket]
        if self.libvirt is not None:
            args += ["--libvirt", self.libvirt]
        if self.verbose:
            args.append("-v")
        return args + self.extra_args

    def start(self, wait=True):
        if self._closed:
            raise GuestError("vmcgd %s: closed, its directory is gone" % self.tmpdir)
        self._refuse_second()
        args = self.command()
        self.logf = open(self.log, "ab")
        # Its own session (a ^C to the test is not a SIGINT to vmcgd), but it
        # dies with the test (PR_SET_PDEATHSIG), as QEMU does: see guest.py.
        # Config None means the embedded default: never this host's
        # /etc/vmcg/vmcgd.conf, which vmcgd reads first when it exists.
        env = dict(os.environ)
        env.setdefault("VMCG_CONFIG_DEFAULT_PATH", str(self.tmpdir / "no-default.conf"))
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_child_setup(os.getpid()), env=env)
        if self not in STARTED:
            STARTED.append(self)
        if wait:
            self.wait_ready()
        return self

    def _refuse_second(self):
        if self.running():
            raise GuestError("vmcgd %s: already running (pid %d); stop() it first"
                             % (self.tmpdir, self.proc.pid))

    def wait_ready(self, timeout=20):
        wait_for(lambda: self._alive() and os.path.exists(self.socket) and self._ping(),
                 timeout, what="vmcgd answering on %s" % self.socket)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

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

    def log_text(self):
        """The whole log (what was kept of it once the directory is gone)."""
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return self._saved_log or ""

    def tail(self, limit=4000):
        return self.log_text()[-limit:]

    def stop(self, sig=signal.SIGTERM):
        if self._sse:
            self._sse.close()
            self._sse = None
        if self.running():
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.logf:
            self.logf.close()
            self.logf = None

    def close(self, failed=False):
        """stop(), then remove the temporary directory (if it made it); the log
        is kept in memory for the TAP runner, and copied to $VMCG_TEST_LOGDIR
        after a failure."""
        self.stop()
        if self.own_tmpdir and not self._closed:
            self._saved_log = self.log_text()[-LOG_KEEP_CHARS:]
            if failed and os.environ.get("VMCG_TEST_LOGDIR") and self.log.exists():
                dst = Path(os.environ["VMCG_TEST_LOGDIR"])
                dst.mkdir(parents=True, exist_ok=True)
                shutil.copy(self.log, dst / ("vmcgd-%d-%s.log" % (os.getpid(), self.tmpdir.name)))
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self._closed = True

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

    def http(self, method, path, body=None, headers=None, chunked=False, timeout=30.0):
        """One request; the answer as a Response, whatever its status."""
        return http_request(self.socket, method, path, body, headers, chunked, timeout)

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
        """Collects the SSE stream into self.events, (type, data, arrival time on
        this host's monotonic clock) each, from a background thread."""
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
                            self.events.append((etype, data, time.monotonic()))
                        etype = None
            except (OSError, ValueError, AttributeError):
                pass

        threading.Thread(target=reader, daemon=True).start()

    def events_of(self, etype):
        with self._events_lock:
            return [d for e, d, _ in self.events if e == etype]

    def events_since(self, t0, etype):
        """[(arrival time, data)] of the @etype events that arrived at or after @t0."""
        with self._events_lock:
            return [(t, d) for e, d, t in self.events if t >= t0 and e == etype]

