"""libvirt for the tests: a real libvirtd (started here if it is not
running) and test guests run as libvirt domains.

ensure_libvirtd() starts `virtlogd -d` and `libvirtd -d` (the monolithic
daemon of Debian 12, QEMU driver) when qemu:///system does not answer,
and waits until it does. A host without libvirtd installed fails: the
test command installs it (scripts/install-deps.sh).

Domain is a Guest (guest.py) whose QEMU libvirt starts from domain XML:
type='qemu' (TCG) or 'kvm' as probe_accel() finds, the same kernel,
initramfs, console file and shell port as a Guest, so .shell(), .hog()
and friends work; there is no QMP (libvirt owns the monitor), so the
balloon is read with `virsh dommemstat`. The domain is transient
(`virsh create`): destroying it undefines it.
"""

import os
import shutil
import subprocess
import tempfile
import time
import uuid as uuidlib
from pathlib import Path
from xml.sax.saxutils import escape

from .guest import (
    PRESSURE_PORT_NAME,
    SHELL_PORT_NAME,
    Guest,
    GuestError,
    GuestUnavailable,
    _live,
    _live_lock,
    ensure_guest_built,
    log,
    probe_accel,
    wait_for,
)

URI = os.environ.get("VMCG_LIBVIRT_URI", "qemu:///system")
LIBVIRT_SOCK = "/run/libvirt/libvirt-sock"
STARTED = []  # LibvirtDaemon objects this process started


def virsh(*args, check=True, timeout=60, uri=URI):
    """Runs virsh against URI; returns its stdout (raises on failure if check)."""
    p = subprocess.run(["virsh", "-q", "-c", uri] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise GuestError("virsh %s: %s" % (" ".join(args), p.stderr.strip() or p.stdout.strip()))
    return p.stdout if check else p


def libvirtd_answers():
    try:
        return virsh("version", check=False, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def libvirtd_pids():
    out = subprocess.run(["pgrep", "-x", "libvirtd"], stdout=subprocess.PIPE, text=True)
    return [int(p) for p in out.stdout.split()]


def _service_env():
    """libvirtd is the host's service, not a test's process: it does not carry
    the run's tag (leaks.py) or its TMPDIR, and it outlives the run."""
    return {k: v for k, v in os.environ.items()
            if k not in ("VMCG_TEST_RUN", "TMPDIR") and not k.startswith("VMCG_")}


def start_libvirtd(timeout=30):
    """Starts virtlogd and libvirtd as daemons (no systemd here) and waits for the socket."""
    for prog in ("virtlogd", "libvirtd"):
        if not shutil.which(prog) and not os.path.exists("/usr/sbin/" + prog):
            raise GuestError("%s is not installed: run scripts/install-deps.sh "
                             "(libvirt-daemon-system)" % prog)
    if subprocess.run(["pgrep", "-x", "virtlogd"], stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["virtlogd", "-d"], check=True, env=_service_env(), cwd="/")
    if not libvirtd_pids():
        subprocess.run(["libvirtd", "-d"], check=True, env=_service_env(), cwd="/")
    wait_for(libvirtd_answers, timeout, interval=0.2, what="libvirtd answering on " + URI)


def ensure_libvirtd():
    """A libvirtd with the QEMU driver answering on URI (started if need be)."""
    if os.geteuid() != 0:
        raise GuestUnavailable("libvirt tests drive qemu:///system and need root")
    if libvirtd_answers():
        return
    log("libvirtd not answering on %s: starting it" % URI)
    start_libvirtd()


def restart_libvirtd(down_seconds=0.0):
    """Stops libvirtd (SIGTERM; its domains keep running) and starts it again."""
    for pid in libvirtd_pids():
        os.kill(pid, 15)
    wait_for(lambda: not libvirtd_pids(), 30, what="libvirtd exiting")
    if down_seconds:
        time.sleep(down_seconds)
    start_libvirtd()


def metadata_xml(group=None, floor=None, oom_priority=None, extra=""):
    """vmcg's <metadata> element (docs/libvirt.md) for a domain."""
    parts = []
    if group is not None:
        parts.append("<vmcg:group>%s</vmcg:group>" % escape(group))
    if floor is not None:
        parts.append("<vmcg:floor>%s</vmcg:floor>" % escape(floor))
    if oom_priority is not None:
        parts.append("<vmcg:oom-priority>%s</vmcg:oom-priority>" % oom_priority)
    return ('<vmcg:vm xmlns:vmcg="urn:vmcg:domain:1">%s%s</vmcg:vm>'
            % ("".join(parts), extra))


class _DomainProc:
    """What Guest expects of self.proc, for a QEMU that libvirt started."""

    def __init__(self, pid):
        self.pid = pid

    def poll(self):
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                return 0 if f.read().rsplit(")", 1)[1].split()[0] == "Z" else None
        except (OSError, IndexError):
            return 0

    def wait(self, timeout=None):
        deadline = time.monotonic() + (timeout if timeout is not None else 3600)
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("qemu %d" % self.pid, timeout)
            time.sleep(0.05)
        return 0

    def kill(self):
        try:
            os.kill(self.pid, 9)
        except OSError:
            pass


class Domain(Guest):
    """A test guest run by libvirt: `with Domain(name, metadata=...) as d:`.

    metadata: the XML of vmcg's element (metadata_xml()), or None for none;
    balloon: False gives <memballoon model='none'/>; pressure_channel adds
    the org.vmcg.pressure.0 port as a <channel type='unix'> that vmcgd
    finds in the domain XML.
    """

    def __init__(self, name, mem_mib=256, metadata=None, balloon=True, stats_period=0,
                 pressure_channel=False, disk=False, hooks_socket=None, **kwargs):
        super().__init__(mem_mib=mem_mib, name=name, disk=disk, machine="pc",
                         pressure_channel=pressure_channel, **kwargs)
        self.domain = "vmcgt-%s-%d" % (name, os.getpid())
        self.uuid = str(uuidlib.uuid4())
        self.metadata = metadata
        self.balloon = balloon
        self.stats_period = stats_period
        # Hook mode (docs/libvirt.md, "Hook mode"): the patched QEMU (qemu=),
        # the vmcg-hooks object through <qemu:commandline>, naming the VM by
        # its UUID, and QEMU run as root (a static DAC label) for userfaultfd.
        self.hooks_socket = hooks_socket

    def domain_xml(self):
        img = self.image
        kernel = img.vmlinux if self.boot == "pvh" else img.kernel
        devices = [
            "<emulator>%s</emulator>" % escape(self.qemu),
            "<serial type='file'><source path='%s'/><target port='0'/></serial>"
            % escape(str(self._path("console.log"))),
            "<controller type='usb' model='none'/>",
            "<controller type='virtio-serial' index='0'/>",
            "<channel type='unix'><source mode='bind' path='%s'/>"
            "<target type='virtio' name='%s'/></channel>"
            % (escape(str(self._path("shell.sock"))), SHELL_PORT_NAME),
        ]
        if self.pressure_channel:
            devices.append("<channel type='unix'><source mode='bind' path='%s'/>"
                           "<target type='virtio' name='%s'/></channel>"
                           % (escape(self.pressure_socket), PRESSURE_PORT_NAME))
        if self.balloon:
            devices.append("<memballoon model='virtio'>%s</memballoon>"
                           % ("<stats period='%d'/>" % self.stats_period
                              if self.stats_period else ""))
        else:
            devices.append("<memballoon model='none'/>")
        if self.disk:
            devices.append("<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
                           "<source file='%s'/><target dev='vda' bus='virtio'/><readonly/>"
                           "</disk>" % escape(str(img.disk)))
        hooks = ""
        if self.hooks_socket:
            hooks = ("\n  <seclabel type='static' model='dac' relabel='no'><label>+0:+0</label>"
                     "</seclabel>\n  <qemu:commandline>" + "".join(
                         "<qemu:arg value='%s'/>" % escape(a) for a in (
                             "-L", "/usr/share/qemu", "-L", "/usr/share/seabios", "-object",
                             "vmcg-hooks,id=vmcg0,path=%s,vm=%s"
                             % (self.hooks_socket.replace(",", ",,"), self.uuid)))
                     + "</qemu:commandline>")
        return """<domain type='%(type)s'%(qemu_ns)s>
  <name>%(name)s</name>
  <uuid>%(uuid)s</uuid>
  <memory unit='MiB'>%(mem)d</memory>
  <currentMemory unit='MiB'>%(mem)d</currentMemory>
  <vcpu>%(smp)d</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>%(kernel)s</kernel>
    <initrd>%(initrd)s</initrd>
    <cmdline>%(cmdline)s</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    %(devices)s
  </devices>%(metadata)s%(hooks)s
</domain>
""" % {
            "type": "kvm" if self.accel == "kvm" else "qemu",
            "name": self.domain,
            "uuid": self.uuid,
            "mem": self.mem_mib,
            "smp": self.smp,
            "kernel": escape(str(kernel)),
            "initrd": escape(str(img.initrd)),
            "cmdline": escape(("console=ttyS0 panic=-1 " + self.append).strip()),
            "devices": "\n    ".join(devices),
            "metadata": ("\n  <metadata>%s</metadata>" % self.metadata
                         if self.metadata is not None else ""),
            "hooks": hooks,
            "qemu_ns": (" xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'"
                        if self.hooks_socket else ""),
        }

    def start(self):
        if self.proc is not None:
            raise GuestError("domain %s already started" % self.domain)
        self.image = self.image or ensure_guest_built()
        self.qemu = self.qemu or "/usr/bin/qemu-system-x86_64"
        if self.boot is None:
            self.boot = os.environ.get("VMCG_GUEST_BOOT") or (
                "pvh" if self.image.vmlinux.is_file() else "bzimage")
        if self.accel is None:
            self.accel = probe_accel()
        ensure_libvirtd()
        self.tmpdir = tempfile.mkdtemp(prefix="vmcg-lv-%s-" % self.name)
        # QEMU runs as libvirt-qemu: it makes its sockets and the console here.
        os.chmod(self.tmpdir, 0o777)
        with _live_lock:
            _live.add(self)
        try:
            xml = self._path("domain.xml")
            xml.write_text(self.domain_xml())
            self._t_start = time.monotonic()
            virsh("create", str(xml))
            self.proc = _DomainProc(self.qemu_pid())
            self._shell = self._connect(self._path("shell.sock"))
        except BaseException:
            self.stop()
            raise
        return self

    def qemu_pid(self):
        path = Path("/run/libvirt/qemu/%s.pid" % self.domain)
        wait_for(path.exists, 30, what="libvirt's pid file of %s" % self.domain)
        return int(path.read_text().strip())

    def _diagnosis(self):
        text = super()._diagnosis()
        try:
            qlog = Path("/var/log/libvirt/qemu/%s.log" % self.domain).read_text(errors="replace")
            text += "\n--- libvirt's QEMU log (tail)\n" + qlog[-1500:]
        except OSError:
            pass
        return text

    def running(self):
        p = virsh("domstate", self.domain, check=False)
        return p.returncode == 0 and p.stdout.strip() in ("running", "paused")

    def destroy(self):
        """`virsh destroy`: QEMU is killed, the transient domain undefined."""
        virsh("destroy", self.domain)

    def stop(self, timeout=15.0):
        if self._stopped:
            return
        try:
            if self.proc is not None or self.domain:
                virsh("destroy", self.domain, check=False)
        finally:
            if self.proc is not None:
                self.proc = _DomainProc(self.proc.pid)
            super().stop(timeout)

    # -- what libvirt says ---------------------------------------------------

    def memstat(self):
        """`virsh dommemstat` as a dict of KiB."""
        out = {}
        for line in virsh("dommemstat", self.domain).splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                out[parts[0]] = int(parts[1])
        return out

    def balloon_actual_bytes(self):
        return self.memstat()["actual"] * 1024

    def set_metadata(self, xml):
        """`virsh metadata --live` with vmcg's namespace (a live change)."""
        virsh("metadata", self.domain, "urn:vmcg:domain:1", "--key", "vmcg", "--set", xml,
              "--live")

    def setmem(self, mib):
        """An operator's `virsh setmem --live`."""
        virsh("setmem", self.domain, "%dM" % mib, "--live")
