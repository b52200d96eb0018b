"""Boot the vmcg test guest under QEMU and drive it.

A Guest is one QEMU process running Debian's kernel with the busybox
initramfs that tests/guest/build-guest.sh makes. The harness talks to it
through three channels, each a file or socket in a private temporary
directory:

  console.log  the guest's ttyS0 (kernel log, init's messages, the
               VMCG-GUEST-READY marker); a file, read for diagnosis.
  shell.sock   a virtio-serial port named org.vmcg.test.shell, served by
               a shell in the guest (protocol in tests/guest/init).
  qmp.sock     QMP, through a minimal synchronous client (QMPClient).

The guest also gets build-guest.sh's data disk (read-only, shared by all
guests) as /dev/vda, mounted at /mnt/disk, to fill its page cache from.

Guarantees about cleanup: stop() quits QEMU through QMP, kills it with
SIGKILL if it has not exited by the deadline, closes the sockets and
removes the temporary directory (sockets, logs, command line). It runs on
leaving a `with` block, on a failed start, and at interpreter exit for
every guest still alive. QEMU also gets PR_SET_PDEATHSIG(SIGKILL), so it
dies with the thread that started it even if Python is killed outright
(only the temporary directory is left then); start guests from a thread
that outlives them (the main thread, or a pool that is shut down after the
guests). The directory is made by tempfile.mkdtemp(), so a $TMPDIR path
longer than about 80 characters makes the sockets' paths too long.

Environment:
  VMCG_QEMU              QEMU binary (default: qemu-system-x86_64 on PATH)
  VMCG_GUEST_DIR         where build-guest.sh puts the guest (build/test-guest)
  VMCG_ACCEL             kvm or tcg: skip the probe and use this
  VMCG_KVM_PROBE_TIMEOUT seconds the KVM probe waits for the guest's first
                         console output (default 6)
  VMCG_BOOT_TIMEOUT      seconds wait_ready() waits by default (default 60
                         under KVM, 180 under TCG)
  VMCG_GUEST_BOOT        pvh (the default when build-guest.sh made an
                         uncompressed vmlinux) or bzimage (vmlinuz, as a
                         bootloader would: twice as slow to boot under TCG)
  VMCG_TEST_LOGDIR       if set, stop() copies each guest's console and
                         QEMU logs there before removing its directory

Standard library only.
"""

import atexit
import base64
import ctypes
import fcntl
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MiB = 1 << 20

REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "tests" / "guest" / "build-guest.sh"

SHELL_PORT_NAME = "org.vmcg.test.shell"
PRESSURE_PORT_NAME = "org.vmcg.pressure.0"  # docs/guest-channel.md
SHELL_READY = b"VMCG-SHELL-READY\n"
GUEST_READY = b"VMCG-GUEST-READY"
GUEST_FAILED = b"VMCG-GUEST-FAILED"
SHELL_EXITED = b"init: command shell exited"
BALLOON_PATH = "/machine/peripheral/balloon0"

# KVM_GET_API_VERSION, include/uapi/linux/kvm.h: _IO(KVMIO, 0x00); the API
# version has been 12 since Linux 2.6.22.
KVM_GET_API_VERSION = 0xAE00
KVM_API_VERSION = 12
PR_SET_PDEATHSIG = 1


class GuestError(Exception):
    """The guest or QEMU misbehaved (exited, panicked, broke the protocol)."""


class GuestTimeout(GuestError, TimeoutError):
    """A deadline passed."""


class GuestUnavailable(GuestError):
    """The host lacks what a guest needs (QEMU, the guest kernel): skip."""


class GuestCommandError(GuestError):
    """A guest shell command exited non-zero."""

    def __init__(self, cmd, status, output):
        super().__init__("guest command exited %d: %s\n%s" % (status, cmd, output))
        self.cmd = cmd
        self.status = status
        self.output = output


class QMPError(GuestError):
    """QMP answered a command with an error."""

    def __init__(self, command, cls, desc):
        super().__init__("QMP %s: %s: %s" % (command, cls, desc))
        self.command = command
        self.cls = cls
        self.desc = desc


def log(msg):
    """A diagnostic line, on stderr, TAP-comment shaped so it never breaks TAP."""
    for line in str(msg).splitlines() or [""]:
        sys.stderr.write("# %s\n" % line)
    sys.stderr.flush()


def wait_for(predicate, timeout, interval=0.1, what="condition"):
    """Polls predicate() until it returns a true value, which is returned.

    Raises GuestTimeout naming `what` and the last value if `timeout` seconds
    pass first. The predicate is always evaluated at least once, and once
    more at the deadline, so a slow poll does not lose the last chance.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        now = time.monotonic()
        if now >= deadline:
            raise GuestTimeout("%s not met within %.1f s (last: %r)" % (what, timeout, value))
        time.sleep(min(interval, max(deadline - now, 0.0)))


def _tail(path, limit=3000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


# ---------------------------------------------------------------------------
# Finding QEMU and building the guest

def qemu_binary():
    """Path of qemu-system-x86_64 ($VMCG_QEMU overrides); GuestUnavailable if none."""
    name = os.environ.get("VMCG_QEMU")
    if name:
        path = shutil.which(name)
        if not path:
            raise GuestUnavailable("VMCG_QEMU=%s is not an executable" % name)
        return path
    path = shutil.which("qemu-system-x86_64")
    if not path:
        raise GuestUnavailable(
            "qemu-system-x86_64 not found (apt-get install qemu-system-x86; "
            "tests/guest/build-guest.sh installs it)")
    return path


class GuestImage:
    """The kernel, initramfs and manifest of a built guest."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.kernel = self.dir / "vmlinuz"
        self.vmlinux = self.dir / "vmlinux"  # optional: for PVH boot
        self.initrd = self.dir / "initramfs.cpio.gz"
        self.disk = self.dir / "disk.ext2"
        self.manifest = {}
        try:
            for line in (self.dir / "manifest").read_text().splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    self.manifest[key] = value
        except OSError:
            pass

    @property
    def disk_data_mib(self):
        """Size of /mnt/disk/data in the guest, MiB."""
        return int(self.manifest.get("disk_data_mib", "0"))

    def __repr__(self):
        return "GuestImage(%s, kernel %s)" % (self.dir, self.manifest.get("kernel_package_version"))


_images = {}
_images_lock = threading.Lock()


def start_qemu_machine_none(qmp):
    """A real QEMU with no machine (-machine none): a real QMP peer at @qmp,
    cheap to run. Returns the Popen; stop it with kill() and wait(). A host
    without QEMU skips, or fails where $VMCG_REQUIRE_QEMU=1."""
    from . import tap  # late: tap imports nothing of ours, guest.py is imported first

    try:
        qemu = qemu_binary()
    except GuestUnavailable as e:
        tap.require("VMCG_REQUIRE_QEMU", "no QEMU on this host: %s" % e)
    p = subprocess.Popen([qemu, "-machine", "none", "-nodefaults", "-display", "none",
                          "-qmp", "unix:%s,server=on,wait=off" % qmp],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    wait_for(lambda: os.path.exists(qmp), 20, what="QEMU's QMP socket")
    return p


def connect_unix(path, timeout=30.0):
    """A stream socket connected to @path, retried while nothing listens
    there yet (a QEMU chardev that is still starting) for @timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def ensure_guest_built(guest_dir=None):
    """Runs tests/guest/build-guest.sh (once per process and directory).

    The script is idempotent and cached, so this costs about two seconds when
    nothing changed. Its progress goes to stderr as TAP comments. Returns a
    GuestImage; raises GuestUnavailable if this host cannot have the guest
    (the script's exit 77: no package archive, no root to install build
    tools, ...), GuestError if the script failed otherwise (a bug).
    """
    directory = Path(guest_dir or os.environ.get("VMCG_GUEST_DIR") or REPO_ROOT / "build" / "test-guest")
    key = str(directory.resolve()) if directory.exists() else str(directory)
    with _images_lock:
        if key in _images:
            return _images[key]
        if not BUILD_SCRIPT.is_file():
            raise GuestUnavailable("%s is missing" % BUILD_SCRIPT)
        proc = subprocess.Popen(["sh", str(BUILD_SCRIPT), str(directory)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        lines = []
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            lines.append(line)
            log(line)
        status = proc.wait()
        if status == 77:  # the script's "this host cannot have the guest"
            raise GuestUnavailable("cannot build the guest: %s" % " | ".join(lines[-2:]))
        if status != 0:
            raise GuestError("build-guest.sh failed (exit %d): %s"
                             % (status, " | ".join(lines[-3:])))
        image = GuestImage(directory)
        if not image.kernel.is_file() or not image.initrd.is_file():
            raise GuestUnavailable("build-guest.sh left no kernel/initramfs in %s" % directory)
        _images[key] = image
        return image


# ---------------------------------------------------------------------------
# Accelerator

def kvm_usable():
    """(True, reason) if /dev/kvm opens and speaks the KVM API, else (False, reason).

    Necessary, not sufficient: a host can pass this and still not boot a
    guest (nested virtualization that hangs in firmware), which is why
    probe_accel() boots one.
    """
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return False, "/dev/kvm: %s" % e.strerror
    try:
        version = fcntl.ioctl(fd, KVM_GET_API_VERSION)
    except OSError as e:
        return False, "KVM_GET_API_VERSION: %s" % e.strerror
    finally:
        os.close(fd)
    if version != KVM_API_VERSION:
        return False, "KVM API version %d, want %d" % (version, KVM_API_VERSION)
    return True, "/dev/kvm answers"


_accel = None
_accel_lock = threading.Lock()


def probe_accel():
    """'kvm' if KVM can boot the test guest, else 'tcg'; probed once per process.

    The probe boots a 256 MiB guest under KVM and waits for its shell. A
    host whose KVM works shows kernel output within a second; one whose KVM
    hangs in firmware shows none, so the probe gives up when the console
    stays silent for VMCG_KVM_PROBE_TIMEOUT seconds (default 6: TCG, ten
    times slower, prints within about 4 s). The result and why are logged.
    """
    global _accel
    with _accel_lock:
        if _accel is not None:
            return _accel[0]
        forced = os.environ.get("VMCG_ACCEL")
        if forced:
            if forced not in ("kvm", "tcg"):
                raise ValueError("VMCG_ACCEL must be kvm or tcg, not %r" % forced)
            _accel = (forced, "forced by VMCG_ACCEL")
        else:
            ok, why = kvm_usable()
            if not ok:
                _accel = ("tcg", "no KVM: %s" % why)
            else:
                first = float(os.environ.get("VMCG_KVM_PROBE_TIMEOUT", "6"))
                t0 = time.monotonic()
                probe = Guest(mem_mib=256, smp=1, accel="kvm", disk=False, name="kvm-probe")
                try:
                    probe.start()
                    probe.wait_ready(timeout=max(30.0, 5 * first), first_output_timeout=first)
                    _accel = ("kvm", "KVM booted the test guest in %.1f s" % (time.monotonic() - t0))
                except GuestUnavailable:
                    raise
                except GuestError as e:
                    reason = str(e).splitlines()[0]
                    _accel = ("tcg", "KVM could not boot the test guest (%s; %.1f s)"
                              % (reason, time.monotonic() - t0))
                finally:
                    probe.stop()
        log("accelerator probe: %s (%s)" % _accel)
        return _accel[0]


def accel_probe_result():
    """(accel, reason) of the probe, or None if it has not run."""
    return _accel


# ---------------------------------------------------------------------------
# QMP

class QMPClient:
    """A minimal synchronous QMP client over a unix socket.

    Reads the greeting, negotiates capabilities, then execute() sends one
    command with a fresh id and returns its "return" value, raising
    QMPError on an "error" answer. Asynchronous events met while waiting
    are appended to .events (the dicts as QEMU sent them, each also given
    "_received", the host's time.monotonic() at receipt).
    """

    def __init__(self, path, timeout=10.0):
        self.events = []
        self._buf = b""
        self._id = 0
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.connect(str(path))
            greeting = self._read_message(time.monotonic() + timeout)
            if "QMP" not in greeting:
                raise GuestError("QMP: unexpected greeting %r" % greeting)
            self.greeting = greeting["QMP"]
            self.execute("qmp_capabilities", timeout=timeout)
        except BaseException:
            self._sock.close()
            raise

    def _read_message(self, deadline):
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line, self._buf = self._buf[:nl], self._buf[nl + 1:]
                if not line.strip():
                    continue
                try:
                    return json.loads(line)
                except ValueError as e:
                    raise GuestError("QMP: bad JSON %r: %s" % (line[:200], e))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GuestTimeout("QMP: no answer in time")
            ready, _, _ = select.select([self._sock], [], [], remaining)
            if not ready:
                continue
            data = self._sock.recv(65536)
            if not data:
                raise GuestError("QMP: connection closed")
            self._buf += data

    def execute(self, command, args=None, timeout=30.0):
        """Runs one QMP command; returns its "return" value."""
        self._id += 1
        msg = {"execute": command, "id": self._id}
        if args:
            msg["arguments"] = args
        self._sock.sendall(json.dumps(msg).encode() + b"\n")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._read_message(deadline)
            if "event" in answer:
                answer["_received"] = time.monotonic()
                self.events.append(answer)
                continue
            if answer.get("id") != self._id:
                continue  # the answer to an earlier command that timed out
            if "error" in answer:
                err = answer["error"]
                raise QMPError(command, err.get("class"), err.get("desc"))
            return answer.get("return")

    def wait_event(self, name, timeout=30.0, since=0):
        """Returns the first event called `name` in .events[since:], reading
        QMP until one arrives; GuestTimeout after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        seen = since
        while True:
            for ev in self.events[seen:]:
                if ev["event"] == name:
                    return ev
            seen = len(self.events)
            msg = self._read_message(deadline)
            if "event" in msg:
                msg["_received"] = time.monotonic()
                self.events.append(msg)

    def close(self):
        self._sock.close()


# ---------------------------------------------------------------------------
# The guest

_live = set()
_live_lock = threading.Lock()
# Every guest started in this process, in order: the TAP runner (tap.py)
# shows the logs of those a failed test started.
STARTED = []


def _stop_all():
    with _live_lock:
        guests = list(_live)
    for g in guests:
        try:
            g.stop()
        except Exception as e:  # at exit, keep cleaning the others
            log("cleanup of %s failed: %s" % (g.name, e))


atexit.register(_stop_all)

try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def _child_setup(parent_pid):
    # Between fork and exec, in the child: die with the starting thread.
    def setup():
        if _prctl is not None:
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl
            os._exit(1)
    return setup


def _chardev_path(path):
    # QEMU option values escape commas by doubling them.
    return str(path).replace(",", ",,")


class Guest:
    """One test guest under QEMU.

    with Guest(mem_mib=512) as g:    # started and ready
        g.shell("uname -r")
        g.qmp("query-balloon")

    Parameters: mem_mib and smp size the guest; accel is "kvm", "tcg" or
    None (probe_accel()); machine is q35 or pc; disk attaches the data disk
    (build-guest.sh's disk.ext2, read-only, shared by all guests), which the
    guest mounts at /mnt/disk for page-cache tests; append adds kernel
    arguments; extra_args adds QEMU arguments; qemu is the QEMU binary
    (default qemu_binary()); boot is
    "pvh" (QEMU loads the uncompressed vmlinux through its PVH entry) or
    "bzimage" (vmlinuz through SeaBIOS, decompressing itself), default
    $VMCG_GUEST_BOOT, else pvh when the image has a vmlinux.
    pressure_channel adds the pressure port (docs/guest-channel.md), a
    virtserialport named org.vmcg.pressure.0 whose host side is a unix
    socket QEMU listens on, .pressure_socket (connect to it as vmcgd does,
    or give it to vmcgd as the VM's channel); the guest's init then starts
    vmcg-guest-agent.
    """

    def __init__(self, mem_mib=512, smp=1, accel=None, machine="q35", disk=True,
                 name="guest", append="", extra_args=(), image=None, boot=None, qemu=None,
                 pressure_channel=False):
        self.qemu = qemu  # None: qemu_binary()
        self.mem_mib = mem_mib
        self.smp = smp
        self.accel = accel
        self.machine = machine
        self.disk = disk
        self.name = name
        self.append = append
        self.extra_args = list(extra_args)
        self.pressure_channel = pressure_channel
        self.image = image
        self.boot = boot
        self.tmpdir = None
        self.proc = None
        self.boot_seconds = None     # QEMU start to shell ready, host clock
        self.guest_uptime_at_ready = None  # from the guest's ready marker
        self._qmp = None
        self._shell = None
        self._buf = b""
        self._seq = 0
        self._ready = False
        self._stopped = False
        self._t_start = None
        self.hogs = {}
        self._tmpfs_files = []
        self._stale = set()  # tokens of commands that timed out

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self):
        try:
            if self.proc is None:
                self.start()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        return False

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def _path(self, name):
        return Path(self.tmpdir) / name

    @property
    def pressure_socket(self):
        """Host side of the pressure port (a path), or None without one.

        Valid once start() made the directory; QEMU listens there (one
        client at a time; a second connection waits until the first
        closes).
        """
        if not self.pressure_channel or not self.tmpdir:
            return None
        return str(self._path("pressure.sock"))

    def qemu_args(self):
        """The QEMU command line (valid after start() has set the paths)."""
        img = self.image
        kernel = img.vmlinux if self.boot == "pvh" else img.kernel
        cmdline = "console=ttyS0 panic=-1 " + self.append
        args = [
            self.qemu, "-name", "vmcg-" + self.name,
            "-machine", self.machine, "-accel", self.accel,
            "-m", "%dM" % self.mem_mib, "-smp", str(self.smp),
            # Only the devices below: no NIC, VGA, floppy or monitor. Not
            # -nographic, which would put the monitor and serial on stdio.
            "-nodefaults", "-no-user-config", "-display", "none",
            # A guest panic (panic=-1) ends QEMU at once: fail fast.
            "-no-reboot",
            "-kernel", str(kernel), "-initrd", str(img.initrd),
            "-append", cmdline.strip(),
            "-chardev", "file,id=con0,path=%s" % _chardev_path(self._path("console.log")),
            "-serial", "chardev:con0",
            "-device", "virtio-balloon-pci,id=balloon0,free-page-reporting=on",
            "-device", "virtio-serial-pci,id=vser0",
            "-chardev", "socket,id=shell0,path=%s,server=on,wait=off"
            % _chardev_path(self._path("shell.sock")),
            "-device", "virtserialport,bus=vser0.0,chardev=shell0,name=" + SHELL_PORT_NAME,
            "-qmp", "unix:%s,server=on,wait=off" % _chardev_path(self._path("qmp.sock")),
        ]
        if self.pressure_channel:
            args += ["-chardev", "socket,id=vmcgpress0,path=%s,server=on,wait=off"
                     % _chardev_path(self.pressure_socket),
                     "-device", "virtserialport,bus=vser0.0,chardev=vmcgpress0,name="
                     + PRESSURE_PORT_NAME]
        if self.disk:
            args += ["-drive", "file=%s,format=raw,if=none,id=disk0,readonly=on"
                     % _chardev_path(img.disk),
                     "-device", "virtio-blk-pci,drive=disk0,id=vblk0"]
        return args + self.extra_args

    def start(self):
        """Starts QEMU and connects QMP and the shell socket (not waiting for boot)."""
        if self.proc is not None:
            raise GuestError("guest %s already started" % self.name)
        self.image = self.image or ensure_guest_built()
        self.qemu = self.qemu or qemu_binary()
        if self.boot is None:
            self.boot = os.environ.get("VMCG_GUEST_BOOT") or (
                "pvh" if self.image.vmlinux.is_file() else "bzimage")
        if self.boot not in ("pvh", "bzimage"):
            raise ValueError("boot must be pvh or bzimage, not %r" % self.boot)
        if self.boot == "pvh" and not self.image.vmlinux.is_file():
            raise GuestUnavailable("no %s for PVH boot" % self.image.vmlinux)
        if self.accel is None:
            self.accel = probe_accel()
        self.tmpdir = tempfile.mkdtemp(prefix="vmcg-%s-" % self.name)
        with _live_lock:
            _live.add(self)
            STARTED.append(self)
        try:
            if self.disk and not self.image.disk.is_file():
                raise GuestUnavailable("no data disk %s" % self.image.disk)
            args = self.qemu_args()
            with open(self._path("cmdline"), "w") as f:
                f.write(" ".join(args) + "\n")
            with open(self._path("qemu.log"), "wb") as logf:
                self._t_start = time.monotonic()
                self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf,
                                             stderr=subprocess.STDOUT, cwd=self.tmpdir,
                                             start_new_session=True,
                                             preexec_fn=_child_setup(os.getpid()))
            self._shell = self._connect(self._path("shell.sock"))
            qmp_deadline = time.monotonic() + 30
            while True:
                try:
                    self._qmp = QMPClient(self._path("qmp.sock"))
                    break
                except (FileNotFoundError, ConnectionRefusedError):
                    self._check_alive("connecting QMP")
                    if time.monotonic() > qmp_deadline:
                        raise GuestTimeout("QMP socket did not appear")
                    time.sleep(0.05)
        except BaseException:
            self.stop()
            raise
        return self

    def _connect(self, path, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(str(path))
                return s
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                self._check_alive("connecting %s" % Path(path).name)
                if time.monotonic() > deadline:
                    raise GuestTimeout("%s did not appear" % path)
                time.sleep(0.05)

    def _diagnosis(self):
        parts = []
        con = _tail(self._path("console.log"), 1500) if self.tmpdir else ""
        qlog = _tail(self._path("qemu.log"), 1000) if self.tmpdir else ""
        if qlog.strip():
            parts.append("--- qemu.log (tail)\n" + qlog.rstrip())
        parts.append("--- console.log (tail)\n" + (con.rstrip() or "(empty)"))
        return "\n".join(parts)

    def _check_alive(self, doing):
        if self.proc is None:
            raise GuestError("guest %s not started" % self.name)
        status = self.proc.poll()
        if status is not None:
            raise GuestError("QEMU (%s) exited with %d while %s\n%s"
                             % (self.name, status, doing, self._diagnosis()))

    def last_log_tail(self, lines=20):
        """The last lines of QEMU's log and of the console (kept after stop())."""
        if not self.tmpdir or not os.path.isdir(self.tmpdir):
            return getattr(self, "_saved_tail", "")
        out = []
        for name in ("qemu.log", "console.log"):
            try:
                text = self._path(name).read_text(errors="replace")
            except OSError:
                continue
            tail = text.splitlines()[-lines:]
            if tail:
                out.append("-- %s:" % name)
                out += tail
        return "\n".join(out)

    def console_log(self):
        """The guest's serial console so far, as text."""
        try:
            return self._path("console.log").read_bytes().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_ready(self, timeout=None, first_output_timeout=None):
        """Waits for the guest's shell to greet; returns the boot time in seconds.

        Fails fast (GuestError) if QEMU exits, the kernel panics or init
        reports failure; GuestTimeout after `timeout` seconds, or after
        `first_output_timeout` seconds of a silent console (a hung firmware).
        """
        if self._ready:
            return self.boot_seconds
        if timeout is None:
            default = "60" if self.accel == "kvm" else "180"
            timeout = float(os.environ.get("VMCG_BOOT_TIMEOUT", default))
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive("booting")
            console = b""
            try:
                console = self._path("console.log").read_bytes()
            except OSError:
                pass
            if b"Kernel panic" in console or GUEST_FAILED in console:
                raise GuestError("guest %s failed to boot\n%s" % (self.name, self._diagnosis()))
            idx = self._buf.find(SHELL_READY)
            if idx >= 0:
                self._buf = self._buf[idx + len(SHELL_READY):]
                self._ready = True
                self.boot_seconds = time.monotonic() - self._t_start
                m = re.search(re.escape(GUEST_READY) + rb" uptime=([0-9.]+)", console)
                if m:
                    self.guest_uptime_at_ready = float(m.group(1))
                return self.boot_seconds
            now = time.monotonic()
            if (first_output_timeout is not None and not console
                    and now - self._t_start > first_output_timeout):
                raise GuestTimeout("no console output from guest %s within %.1f s (%s)\n%s"
                                   % (self.name, first_output_timeout, self.accel,
                                      self._diagnosis()))
            if now >= deadline:
                raise GuestTimeout("guest %s not ready within %.1f s (%s)\n%s"
                                   % (self.name, timeout, self.accel, self._diagnosis()))
            self._recv(min(0.2, deadline - now))

    def stop(self, timeout=15.0):
        """Quits QEMU (QMP quit, then SIGKILL at the deadline) and removes its files.

        Idempotent, and safe on a guest that never started or half started.
        """
        if self._stopped:
            return
        self._stopped = True
        try:
            if self.proc is not None and self.proc.poll() is None:
                if self._qmp is not None:
                    try:
                        self._qmp.execute("quit", timeout=min(5.0, timeout))
                    except Exception:
                        pass  # QEMU may close the socket before it answers
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    log("guest %s: QEMU did not quit in %.0f s, SIGKILL" % (self.name, timeout))
                    self.proc.kill()
                    self.proc.wait(30)
        finally:
            for s in (self._qmp, self._shell):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass
            self._ready = False
            if self.tmpdir:
                logdir = os.environ.get("VMCG_TEST_LOGDIR")
                if logdir:
                    try:
                        os.makedirs(logdir, exist_ok=True)
                        for name in ("console.log", "qemu.log", "cmdline"):
                            src = self._path(name)
                            if src.exists():
                                shutil.copy(src, Path(logdir) / ("%s-%d-%s" % (
                                    self.name, self.pid or 0, name)))
                    except OSError as e:
                        log("could not keep logs of %s: %s" % (self.name, e))
                self._saved_tail = self.last_log_tail()
                shutil.rmtree(self.tmpdir, ignore_errors=True)
            with _live_lock:
                _live.discard(self)

    # -- shell -------------------------------------------------------------

    def _recv(self, timeout):
        if timeout > 0:
            ready, _, _ = select.select([self._shell], [], [], timeout)
            if not ready:
                return False
        else:
            self._shell.setblocking(False)
        try:
            data = self._shell.recv(65536)
        except BlockingIOError:
            return False
        except OSError as e:
            self._check_alive("reading the guest shell")
            raise GuestError("guest %s: shell socket: %s" % (self.name, e))
        finally:
            self._shell.setblocking(True)
        if not data:
            self._check_alive("reading the guest shell")
            raise GuestError("guest %s: shell socket closed" % self.name)
        self._buf += data
        return True

    def _shell_restarts(self):
        # init logs each restart of the serving shell on the console, where
        # no command's output can forge it.
        try:
            return self._path("console.log").read_bytes().count(SHELL_EXITED)
        except OSError:
            return 0

    def _await_shell(self, timeout=30.0):
        # After a restart: the new shell greets before it reads requests.
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(rb"(^|\n)" + re.escape(SHELL_READY), self._buf)
            if m:
                self._buf = self._buf[m.end():]
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GuestTimeout("guest %s: the shell did not come back\n%s"
                                   % (self.name, self._diagnosis()))
            self._check_alive("waiting for the guest shell")
            self._recv(min(remaining, 0.5))

    def _strip_stale(self):
        # A command that timed out still runs in the guest and ends with its
        # own marker; its output comes before anything later, so drop it.
        for tok in list(self._stale):
            m = re.search(rb"\n__VMCG_END_" + tok.encode() + rb"__ (\d+)( exit)?\n", self._buf)
            if m:
                self._buf = self._buf[m.end():]
                self._stale.discard(tok)
                if m.group(2):
                    self._await_shell()

    def shell_status(self, cmd, timeout=60.0):
        """Runs `cmd` in the guest shell; returns (status, output).

        `cmd` runs in the guest's serving shell (eval), so its variables, `cd`
        and background jobs persist. Raises GuestTimeout after `timeout`
        seconds (the command keeps running in the guest, and the next one
        waits for it), GuestError if the shell or QEMU dies meanwhile.
        """
        if not self._ready:
            raise GuestError("guest %s is not ready" % self.name)
        # Whatever arrived unasked (a background job's output): drop it.
        while self._recv(0):
            pass
        self._strip_stale()
        if not self._stale:
            self._buf = b""
        restarts = self._shell_restarts()
        self._seq += 1
        tok = "c%d_%s" % (self._seq, secrets.token_hex(6))
        request = "%s %s\n" % (tok, base64.b64encode(cmd.encode()).decode())
        try:
            self._shell.sendall(request.encode())
        except OSError as e:
            self._check_alive("sending %r" % cmd)
            raise GuestError("guest %s: shell socket: %s" % (self.name, e))
        end = re.compile(rb"\n__VMCG_END_" + tok.encode() + rb"__ (\d+)( exit)?\n")
        deadline = time.monotonic() + timeout
        while True:
            self._strip_stale()
            m = end.search(self._buf) if not self._stale else None
            if m:
                output = self._buf[:m.start()].decode("utf-8", "replace")
                self._buf = self._buf[m.end():]
                if m.group(2):
                    log("guest %s: %r ended the guest shell; waiting for a new one"
                        % (self.name, cmd))
                    self._await_shell()
                return int(m.group(1)), output
            if self._shell_restarts() > restarts:
                self._await_shell()
                raise GuestError("guest %s: the shell died running %r (state is lost)"
                                 % (self.name, cmd))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._stale.add(tok)
                partial = self._buf.decode("utf-8", "replace")
                raise GuestTimeout("guest %s: %r did not finish in %.1f s; output so far: %r"
                                   % (self.name, cmd, timeout, partial[-500:]))
            self._check_alive("running %r" % cmd)
            self._recv(min(remaining, 0.5))

    def shell(self, cmd, timeout=60.0, check=True):
        """Runs `cmd` in the guest shell; returns its output (stdout and stderr).

        Raises GuestCommandError if it exits non-zero and `check` is true.
        """
        status, output = self.shell_status(cmd, timeout)
        if check and status != 0:
            raise GuestCommandError(cmd, status, output)
        return output

    # -- QMP ---------------------------------------------------------------

    def qmp(self, command, args=None, timeout=30.0, **kwargs):
        """Runs a QMP command; arguments from `args` (a dict) and keywords."""
        if self._qmp is None:
            raise GuestError("guest %s has no QMP connection" % self.name)
        merged = dict(args or {})
        merged.update(kwargs)
        return self._qmp.execute(command, merged or None, timeout=timeout)

    @property
    def qmp_events(self):
        """QMP events received so far (see QMPClient)."""
        return self._qmp.events if self._qmp else []

    # -- host-side memory --------------------------------------------------

    def rss_detail(self):
        """QEMU's /proc/PID/smaps_rollup in bytes (Rss, Anonymous, AnonHugePages...)."""
        out = {}
        with open("/proc/%d/smaps_rollup" % self.pid) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1]) * 1024
        return out

    def rss_bytes(self):
        """Resident memory of the QEMU process, bytes.

        smaps_rollup is exact (it walks the page tables); /proc/PID/status
        is the fallback, whose counters may lag by a per-CPU batch.
        """
        try:
            return self.rss_detail()["Rss"]
        except (OSError, KeyError):
            with open("/proc/%d/status" % self.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        raise GuestError("no RSS for QEMU pid %s" % self.pid)

    def guest_ram_rss_bytes(self):
        """Resident bytes of the guest's RAM alone, from /proc/PID/smaps.

        Guest RAM is QEMU's one anonymous mapping of the guest's size (q35's
        pc.ram); the rest of the RSS is QEMU itself, TCG's code buffer and,
        with PVH boot, the vmlinux file QEMU maps (about 57 MiB of page
        cache, shared with the host's).
        """
        size_lo = self.mem_mib * MiB
        size_hi = size_lo + 4 * MiB  # QEMU may add alignment or a guard page
        best = None
        cur = None
        with open("/proc/%d/smaps" % self.pid) as f:
            for line in f:
                parts = line.split()
                if "-" in parts[0] and not parts[0].endswith(":"):
                    lo, hi = (int(x, 16) for x in parts[0].split("-"))
                    anon = len(parts) < 6
                    cur = (size_lo <= hi - lo <= size_hi and anon)
                elif cur and parts[0] == "Rss:":
                    rss = int(parts[1]) * 1024
                    if best is None or rss > best:
                        best = rss
        if best is None:
            raise GuestError("no %d MiB anonymous mapping in QEMU %d" % (self.mem_mib, self.pid))
        return best

    # -- balloon -----------------------------------------------------------

    def balloon_actual_bytes(self):
        """The guest's memory as the balloon sees it (query-balloon "actual")."""
        return self.qmp("query-balloon")["actual"]

    def set_balloon(self, mib):
        """Asks the guest to shrink to (or grow back to) `mib` MiB."""
        self.qmp("balloon", value=mib * MiB)

    def wait_balloon(self, mib, timeout=60.0, tolerance_mib=1):
        """Polls until "actual" is within tolerance of `mib`; returns seconds taken."""
        t0 = time.monotonic()
        wait_for(lambda: abs(self.balloon_actual_bytes() - mib * MiB) <= tolerance_mib * MiB,
                 timeout, interval=0.1, what="balloon actual == %d MiB" % mib)
        return time.monotonic() - t0

    def enable_guest_stats(self, interval_s=1):
        """Makes the balloon driver report guest stats every `interval_s` seconds."""
        self.qmp("qom-set", path=BALLOON_PATH, property="guest-stats-polling-interval",
                 value=interval_s)

    def guest_stats(self):
        """The balloon's guest-stats: {"stats": {...}, "last-update": seconds}."""
        return self.qmp("qom-get", path=BALLOON_PATH, property="guest-stats")

    # -- guest-side memory -------------------------------------------------

    def meminfo(self):
        """The guest's /proc/meminfo: kB fields in bytes, counts as they are."""
        out = {}
        for line in self.shell("cat /proc/meminfo").splitlines():
            parts = line.replace(":", " ").split()
            if len(parts) >= 2 and parts[1].isdigit():
                value = int(parts[1])
                out[parts[0]] = value * 1024 if len(parts) > 2 and parts[2] == "kB" else value
        return out

    def free_page_reporting(self):
        """(negotiated, page_reporting_order) as the guest kernel sees them."""
        out = self.shell(
            "f=$(echo /sys/bus/virtio/drivers/virtio_balloon/virtio*/features); "
            "cut -c6 $f; cat /sys/module/page_reporting/parameters/page_reporting_order")
        bit, order = out.split()
        return bit == "1", int(order)

    @staticmethod
    def _io_timeout(mib):
        # TCG on a loaded two-core host moves a few tens of MiB/s at worst.
        return 60.0 + mib * 0.5

    def alloc_tmpfs(self, mib):
        """Writes a `mib` MiB file in the guest's tmpfs (unreclaimable: no swap).

        Returns its path; free it with free_tmpfs().
        """
        self._seq += 1
        path = "/mnt/tmp/fill.%d" % self._seq
        self.shell("dd if=/dev/zero of=%s bs=1M count=%d 2>&1" % (path, mib),
                   timeout=self._io_timeout(mib))
        self._tmpfs_files.append(path)
        return path

    def free_tmpfs(self, path=None):
        """Removes one tmpfs file made by alloc_tmpfs(), or all of them."""
        paths = [path] if path else list(self._tmpfs_files)
        if paths:
            self.shell("rm -f " + " ".join(paths))
        for p in paths:
            if p in self._tmpfs_files:
                self._tmpfs_files.remove(p)

    def hog(self, mib):
        """Starts memhog holding `mib` MiB of anonymous memory; returns its id.

        Returns once every page is touched; .hogs[id] then holds {"mib",
        "report"} (memhog's line). The hog holds until unhog().
        """
        self._seq += 1
        k = self._seq
        limit = int(self._io_timeout(mib) * 20)  # 50 ms polls
        # memhog's stdin is a FIFO it holds open itself, so it never sees end
        # of file: only SIGTERM (unhog) ends it. It is a child of the
        # serving shell, so `wait` can reap it.
        script = r"""
mkdir -p /run/hogs
rm -f /run/hogs/{k}.*
mkfifo /run/hogs/{k}.in
memhog {mib} 0<>/run/hogs/{k}.in >/run/hogs/{k}.out 2>&1 &
p=$!
echo $p >/run/hogs/{k}.pid
r=1
n=0
while [ $n -lt {limit} ]; do
	if grep -q holding /run/hogs/{k}.out; then r=0; break; fi
	if [ -s /run/hogs/{k}.out ] || [ ! -d /proc/$p ] || grep -q '^State:.*Z' /proc/$p/status; then break; fi
	usleep 50000
	n=$((n + 1))
done
# Its line may have come between the two checks above: look once more.
grep -q holding /run/hogs/{k}.out && r=0
cat /run/hogs/{k}.out
[ $r = 0 ]
""".format(k=k, mib=mib, limit=limit)
        out = self.shell(script, timeout=self._io_timeout(mib) + 30)
        self.hogs[k] = {"mib": mib, "report": out.strip()}
        return k

    def unhog(self, hog_id=None):
        """Ends one memhog (or all) with SIGTERM and waits until it has freed."""
        ids = [hog_id] if hog_id is not None else list(self.hogs)
        for k in ids:
            self.shell("p=$(cat /run/hogs/{k}.pid); kill -TERM $p; wait $p; r=$?; "
                       "cat /run/hogs/{k}.out; rm -f /run/hogs/{k}.*; [ $r = 0 ]".format(k=k),
                       timeout=60)
            self.hogs.pop(k, None)

    def read_disk(self, mib, skip_mib=0):
        """Reads `mib` MiB of the data disk's file into the guest's page cache.

        The file is /mnt/disk/data on the read-only ext2 data disk; its pages
        stay cached after the read (page cache outlives the open file) until
        memory pressure reclaims them or drop_disk_cache(). They count in
        the guest's Cached. Returns dd's report.
        """
        if not self.disk:
            raise GuestError("guest %s has no data disk" % self.name)
        if skip_mib + mib > self.image.disk_data_mib:
            raise ValueError("the data disk holds %d MiB" % self.image.disk_data_mib)
        return self.shell("dd if=/mnt/disk/data of=/dev/null bs=1M count=%d skip=%d 2>&1"
                          % (mib, skip_mib), timeout=self._io_timeout(mib))

    def drop_disk_cache(self):
        """Drops the guest's clean page cache (the data disk's among it)."""
        self.shell("sync; echo 1 >/proc/sys/vm/drop_caches")
