#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The patched QEMU (qemu-patches/, the vmcg-hooks object) against a hostile
or broken daemon. Prints TAP.

Why a fake daemon: the real vmcgd never sends a malformed message (wrong
lengths, bad regions, unterminated reasons, out-of-range slots, garbage), so
how QEMU copes with one cannot be provoked with the real daemon. This file
is the one place where a fake plays vmcgd: a Python server on a temporary
SOCK_SEQPACKET socket (the object's path=) accepts QEMU's connection, reads
and checks its HELLO (magic, major, pid, vCPUs, page size, batch, name, the
one "pc.ram" block and its populated count), and then misbehaves. Between
cases it behaves: a WELCOME with a region it made itself (memfd, sealed
against shrinking and growing, a valid header), and a GRANT for every
REFILL after adding the pages to the slot's credit with struct.pack_into.
That store is not the atomic read-modify-write the ABI requires; it is a
test-only simplification (QEMU only ever subtracts from a vCPU slot's credit
with compare-and-swap, so a lost update can only lose the fake's grant,
never let QEMU populate uncharged pages).

For every misbehaviour the test asserts that QEMU (1) stays alive and QMP
answers query-status, (2) says what went wrong in its log, (3) drops the
connection and reconnects within a few seconds with a new, valid HELLO
(REATTACH when it populated pages uncharged meanwhile) and (4) the guest
keeps working (on-disconnect=continue). One guest serves every case; it is
restarted if a case kills it.
"""

import fcntl
import mmap
import os
import random
import select
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vmcgtest import Guest, GuestTimeout, GuestUnavailable, ensure_guest_built, tap, wait_for  # noqa: E402
from vmcgtest.guest import log  # noqa: E402
from test_hooks import hooks_qemu, require_hooks_qemu  # noqa: E402
from test_hooks_proto import (  # noqa: E402
    GRANT, GRANT_S, HDR, HELLO, HELLO_FIXED, MAGIC, RAMBLOCK, REFILL, REFILL_S, REGION_HDR,
    REGION_MAGIC, REJECT, REJECT_S, RETURN, RETURN_S, WELCOME, WELCOME_S)

NAME = "hostile"
GUEST_MIB = 256
BATCH = 64
PAGE = 4096
SMP = 1
NR_SLOTS = SMP + 1
F_BLOCK, F_REATTACH = 1, 2
# QEMU retries every second; a drop is immediate. Generous for a loaded host.
RECONNECT_S = 4.0
HELLO_TIMEOUT_S = 5.0  # VMCG_HELLO_TIMEOUT in the patch


def region_size(nr_slots=NR_SLOTS):
    return 64 + 64 * nr_slots


# ---- the fake daemon ----

class Conn:
    """One connection QEMU opened, and what happened on it."""

    def __init__(self, sock, index):
        self.sock = sock
        self.index = index
        self.t_accept = time.monotonic()
        self.hello = None
        self.t_hello = None
        self.behaviour = None
        self.t_reply = None       # when the fake answered the HELLO (well or badly)
        self.welcomed = False     # a good WELCOME was sent
        self.region = None
        self.t_closed = None
        self.eof = False          # QEMU closed it (not the fake)
        self.kill = False         # the fake is asked to close it
        self.received = []        # (type, len) of packets after HELLO
        self.grants = 0
        self.error = None
        self.tainted = False      # a case put odd credit in its region

    def send(self, data, fds=()):
        """One packet; False if QEMU has gone (or its queue stays full for 1 s)."""
        deadline = time.monotonic() + 1.0
        while True:
            try:
                if fds:
                    socket.send_fds(self.sock, [data], list(fds), socket.MSG_DONTWAIT)
                else:
                    self.sock.send(data, socket.MSG_DONTWAIT)
                return True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return False
                select.select([], [self.sock], [], 0.05)
            except OSError:
                return False

    def credit(self, slot):
        return struct.unpack_from("=q", self.region, 64 + 64 * slot)[0]

    def add_credit(self, slot, pages):
        # Test-only: not atomic (see the module docstring).
        struct.pack_into("=q", self.region, 64 + 64 * slot, self.credit(slot) + pages)

    def region_header(self):
        keys = ("magic", "major", "minor", "nr_slots", "slot_size", "header_size", "batch",
                "watermark", "populated", "faults", "unbacked")
        return dict(zip(keys, REGION_HDR.unpack_from(self.region, 0)))


def parse_hello(data):
    keys = ("type", "len", "seq", "magic", "major", "minor", "flags", "pid", "nr_vcpus",
            "page_size", "batch", "nr_ramblocks", "reserved", "vm_name", "uuid", "populated")
    if len(data) < HELLO_FIXED.size:
        return {"size": len(data), "short": True}
    h = dict(zip(keys, HELLO_FIXED.unpack_from(data)))
    h["size"] = len(data)
    h["vm_name"] = h["vm_name"].rstrip(b"\0").decode("utf-8", "replace")
    h["blocks"] = []
    for i in range(min(h["nr_ramblocks"], 32)):
        off = HELLO_FIXED.size + i * RAMBLOCK.size
        if off + RAMBLOCK.size <= len(data):
            name, pages, populated = RAMBLOCK.unpack_from(data, off)
            h["blocks"].append((name.rstrip(b"\0").decode("utf-8", "replace"), pages, populated))
    return h


def make_region(nr_slots=NR_SLOTS, size=None, magic=REGION_MAGIC, major=1, slot_size=64,
                header_size=64, seal=True):
    """A memfd holding a region header (and zeroed slots); (fd, mapping or None)."""
    size = region_size(nr_slots) if size is None else size
    fd = os.memfd_create("vmcg-fake-region", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, size)
    mm = None
    if size >= 64:
        mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        REGION_HDR.pack_into(mm, 0, magic, major, 0, nr_slots, slot_size, header_size,
                             BATCH, BATCH // 2, 0, 0, 0)
    if seal:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW)
    return fd, mm


def welcome_packet(nr_slots=NR_SLOTS, size=None, charged=0, length=None, major=1, hdr_len=None):
    size = region_size(nr_slots) if size is None else size
    data = WELCOME_S.pack(WELCOME, WELCOME_S.size, 1, major, 0, nr_slots, size, charged)
    if length is not None:
        data = (data + b"\0" * length)[:length]
    ln = len(data) if hdr_len is None else hdr_len
    return struct.pack("=I", WELCOME) + struct.pack("=I", ln) + data[8:]


def reject_packet(error, reason):
    return REJECT_S.pack(REJECT, REJECT_S.size, 1, error, 0, reason)


def grant_packet(slot, pages, seq):
    return GRANT_S.pack(GRANT, GRANT_S.size, seq, slot, pages)


class FakeVmcgd:
    """Listens on a temporary SOCK_SEQPACKET socket and serves QEMU's connections
    one at a time, each with the next planned behaviour (good by default)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="vmcg-fake-")
        self.path = os.path.join(self.dir, "hooks.sock")
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.lsock.bind(self.path)
        self.lsock.listen(8)
        self.cond = threading.Condition()
        self.conns = []
        self.plan = []
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    # -- the server thread --

    def _run(self):
        while not self.stopping:
            r, _, _ = select.select([self.lsock], [], [], 0.2)
            if not r:
                continue
            try:
                sock, _ = self.lsock.accept()
            except OSError:
                continue
            with self.cond:
                c = Conn(sock, len(self.conns))
                c.behaviour = self.plan.pop(0) if self.plan else good
                self.conns.append(c)
                self.cond.notify_all()
            try:
                data = self._recv(c, HELLO_TIMEOUT_S)
                if data:
                    c.hello = parse_hello(data)
                    c.t_hello = time.monotonic()
                    with self.cond:
                        self.cond.notify_all()
                    c.behaviour(self, c)
            except Exception as e:  # noqa: B902 - recorded, the test asserts on it
                c.error = repr(e)
            finally:
                sock.close()
                with self.cond:
                    c.t_closed = time.monotonic()
                    self.cond.notify_all()

    def _recv(self, c, timeout):
        """One packet (fds closed), b'' at EOF, None after timeout or kill."""
        deadline = time.monotonic() + timeout
        while not c.kill and not self.stopping:
            r, _, _ = select.select([c.sock], [], [], min(0.1, max(0, deadline - time.monotonic())))
            if r:
                try:
                    data, fds, _fl, _ad = socket.recv_fds(c.sock, 8192, 4)
                except ConnectionResetError:
                    data, fds = b"", []
                for fd in fds:
                    os.close(fd)
                if not data:
                    c.eof = True
                return data
            if time.monotonic() >= deadline:
                return None
        return None

    def serve(self, c, until=None):
        """Answers REFILLs (credit, then GRANT) until EOF, kill or `until` (monotonic)."""
        while True:
            timeout = 3600 if until is None else until - time.monotonic()
            if timeout <= 0:
                return
            data = self._recv(c, timeout)
            if not data:
                return
            t, ln = struct.unpack_from("=II", data) if len(data) >= 8 else (0, len(data))
            c.received.append((t, len(data)))
            if t == REFILL and len(data) == REFILL_S.size and c.region is not None:
                _t, _l, seq, slot, need, want, _r = REFILL_S.unpack(data)
                if slot < NR_SLOTS:
                    c.add_credit(slot, want)
                    c.send(grant_packet(slot, want, seq))
                    c.grants += 1

    def drain(self, c, timeout=10.0):
        """After a bad answer: read (and record) until QEMU drops the connection."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = self._recv(c, deadline - time.monotonic())
            if not data:
                return
            c.received.append((struct.unpack_from("=I", data)[0] if len(data) >= 4 else 0,
                               len(data)))

    # -- the test's side --

    def count(self):
        with self.cond:
            return len(self.conns)

    def wait_conn(self, index, timeout, hello=True):
        """Connection number `index` (with its HELLO read, if `hello`)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if len(self.conns) > index and (not hello or self.conns[index].hello
                                                or self.conns[index].t_closed):
                    return self.conns[index]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no connection #%d from QEMU within %.1f s (%d so far)"
                                         % (index, timeout, len(self.conns)))
                self.cond.wait(left)

    def wait_closed(self, c, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while c.t_closed is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def attached(self, timeout=15.0):
        """The current connection, once it is welcomed (and still open)."""
        def cur():
            with self.cond:
                c = self.conns[-1] if self.conns else None
            return c if c and c.welcomed and c.t_closed is None and not c.eof else None
        return wait_for(cur, timeout, interval=0.05, what="an attached connection")

    def last_attached_populated(self, before):
        """What QEMU last wrote as `populated` into the region of the latest
        connection before #`before` that it attached to (final once it left)."""
        with self.cond:
            for c in reversed(self.conns[:before]):
                if c.welcomed and c.region is not None:
                    return c.region_header()["populated"]
        return None

    def kick(self):
        """Closes the current connection: QEMU detaches and reconnects."""
        with self.cond:
            for c in self.conns:
                if c.t_closed is None:
                    c.kill = True

    def close(self):
        self.stopping = True
        self.thread.join(5)
        self.lsock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# -- behaviours, called in the server thread after the HELLO --

def good(fake, c):
    fd, mm = make_region()
    c.region = mm
    ok = c.send(welcome_packet(charged=c.hello.get("populated", 0)), [fd])
    os.close(fd)
    c.t_reply = time.monotonic()
    c.welcomed = ok
    fake.serve(c)


def silent(fake, c):
    """Accepts, reads the HELLO, never answers."""
    c.t_reply = time.monotonic()
    fake.drain(c, HELLO_TIMEOUT_S + 10)


def close_now(fake, c):
    c.t_reply = time.monotonic()


def bad_welcome(packet_kw=None, fds="region", region_kw=None):
    """A WELCOME made wrong: its packet (welcome_packet's arguments), its fds
    ("region", "none", "two", "rdonly", "socket") or its region (make_region's)."""
    def behaviour(fake, c):
        fd, mm = make_region(**(region_kw or {}))
        c.region = mm
        extra = []
        if fds == "region":
            send = [fd]
        elif fds == "none":
            send = []
        elif fds == "two":
            extra = [os.open("/dev/null", os.O_RDONLY)]
            send = [fd] + extra
        elif fds == "rdonly":
            extra = [os.open("/proc/self/fd/%d" % fd, os.O_RDONLY)]
            send = extra
        else:
            raise ValueError(fds)
        c.send(welcome_packet(**(packet_kw or {})), send)
        for f in [fd] + extra:
            os.close(f)
        c.t_reply = time.monotonic()
        fake.drain(c)
    return behaviour


def raw_reply(packet):
    def behaviour(fake, c):
        c.send(packet)
        c.t_reply = time.monotonic()
        fake.drain(c)
    return behaviour


# ---- the guest ----

class HostileGuest(Guest):
    def __init__(self, fake):
        obj = "vmcg-hooks,id=vmcg0,path=%s,batch=%d,on-disconnect=continue,vm=%s" % (
            fake.path.replace(",", ",,"), BATCH, NAME)
        super().__init__(name=NAME, mem_mib=GUEST_MIB, smp=SMP, qemu=hooks_qemu(),
                         extra_args=["-L", "/usr/share/qemu", "-L", "/usr/share/seabios",
                                     "-object", obj])

    def log_size(self):
        try:
            return self._path("qemu.log").stat().st_size
        except OSError:
            return 0

    def log_since(self, offset):
        with open(self._path("qemu.log"), "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def nr_fds(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def hooked_rss(self):
        """Rss of the userfaultfd-registered (guest RAM) mappings, bytes."""
        total = rss = 0
        with open("/proc/%d/smaps" % self.pid) as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("VmFlags:") and "um" in line.split()[1:]:
                    total += rss
        return total

    def unpopulate(self):
        """Inflates the balloon over most of the guest's free memory and deflates
        it: those pages are discarded (unpopulated), so what the guest touches
        next faults. Returns the hooked RSS afterwards."""
        self.set_balloon(GUEST_MIB - 144)
        try:
            self.wait_balloon(GUEST_MIB - 144, timeout=30, tolerance_mib=24)
        except GuestTimeout as e:  # best effort: the cases check that they faulted
            log("unpopulate: %s" % e)
        self.set_balloon(GUEST_MIB)
        self.wait_balloon(GUEST_MIB, timeout=60, tolerance_mib=1)
        return self.hooked_rss()

    def bg_hog(self, mib, tag):
        """memhog in the background (the shell returns at once); see hog_done()."""
        self.shell("mkdir -p /run/hogs; rm -f /run/hogs/%s.*; mkfifo /run/hogs/%s.in; "
                   "memhog %d 0<>/run/hogs/%s.in >/run/hogs/%s.out 2>&1 & "
                   "echo $! >/run/hogs/%s.pid" % (tag, tag, mib, tag, tag, tag), timeout=60)

    def hog_done(self, tag):
        return "holding" in self.shell("cat /run/hogs/%s.out" % tag, timeout=60)

    def bg_unhog(self, tag):
        self.shell("kill $(cat /run/hogs/%s.pid); wait $(cat /run/hogs/%s.pid); "
                   "rm -f /run/hogs/%s.*" % (tag, tag, tag), timeout=60, check=False)


class Bed:
    def __init__(self):
        self.fake = FakeVmcgd()
        self.g = HostileGuest(self.fake)
        try:
            self.g.start()
            self.g.wait_ready()
        except BaseException:
            self.close()
            raise

    def alive(self):
        return self.g.proc is not None and self.g.proc.poll() is None

    def close(self):
        self.g.stop()
        self.fake.close()


BED = None


def bed():
    """The shared guest and fake daemon, (re)started if need be."""
    global BED
    try:
        ensure_guest_built()
    except GuestUnavailable as e:
        raise tap.Skip("no test guest on this host: %s" % e)
    require_hooks_qemu()
    if BED is not None and not BED.alive():
        print("# the guest died in an earlier case; starting a new one", flush=True)
        BED.close()
        BED = None
    if BED is None:
        BED = Bed()
    fake = BED.fake
    with fake.cond:
        fake.plan.clear()
        cur = fake.conns[-1] if fake.conns else None
    if cur is not None and (cur.tainted or not cur.welcomed) and cur.t_closed is None:
        # An earlier case left a connection behind that is not a good one: a fresh start.
        fake.kick()
    fake.attached(30)
    # Whatever an earlier (failed) case left running in the guest.
    BED.g.shell("killall memhog 2>/dev/null; rm -rf /run/hogs /mnt/tmp/*; true", timeout=60)
    BED.g.hogs.clear()
    return BED


# ---- checks ----

def check_hello(c, g, reattach=None):
    h = c.hello
    assert h and not h.get("short"), "connection #%d: no (or a short) HELLO: %r" % (c.index, h)
    pages = GUEST_MIB * MiB_PAGES
    assert h["type"] == HELLO and h["len"] == h["size"] == HELLO_FIXED.size + RAMBLOCK.size, h
    assert h["magic"] == MAGIC and h["major"] == 1 and h["minor"] == 0, h
    assert h["pid"] == g.pid, (h["pid"], g.pid)
    assert h["nr_vcpus"] == SMP and h["page_size"] == PAGE and h["batch"] == BATCH, h
    assert h["nr_ramblocks"] == 1 and h["reserved"] == 0, h
    assert h["flags"] & ~(F_BLOCK | F_REATTACH) == 0 and not h["flags"] & F_BLOCK, h
    assert h["vm_name"] == NAME, h
    assert len(h["blocks"]) == 1, h
    name, bpages, populated = h["blocks"][0]
    assert name == "pc.ram" and bpages == pages, h["blocks"]
    assert populated <= pages and h["populated"] == populated, h
    assert h["uuid"] == b"\0" * 16, h  # no -uuid
    if reattach is not None:
        assert bool(h["flags"] & F_REATTACH) == reattach, ("REATTACH", reattach, h)


MiB_PAGES = (1 << 20) // PAGE


def guest_works(g):
    """A shell command that touches fresh memory (faults) and answers."""
    t0 = time.monotonic()
    out = g.shell("dd if=/dev/zero of=/mnt/tmp/w bs=1M count=8 2>/dev/null; "
                  "wc -c </mnt/tmp/w; rm -f /mnt/tmp/w; echo ok", timeout=60)
    assert out.split() == [str(8 << 20), "ok"], out
    return time.monotonic() - t0


def qemu_ok(b):
    assert b.alive(), "QEMU exited with %r\n%s" % (b.g.proc.poll(), b.g._diagnosis())
    st = b.g.qmp("query-status", timeout=10)
    assert st["status"] == "running", st


def after_misbehaviour(b, bad, words, what, drop=True):
    """(1)-(4) after connection `bad` was answered badly. Returns the new connection."""
    fake, g = b.fake, b.g
    if drop:
        assert fake.wait_closed(bad, 10), "%s: QEMU kept the connection" % what
        assert bad.eof, "%s: the fake closed the connection, not QEMU (%s)" % (what, bad.error)
        took = bad.t_closed - (bad.t_reply or bad.t_hello)
        assert took < 3.0, "%s: QEMU took %.1f s to drop the connection" % (what, took)
    new = fake.wait_conn(bad.index + 1, RECONNECT_S + 10)
    gap = new.t_accept - bad.t_closed
    assert gap <= RECONNECT_S, "%s: reconnected %.1f s after the drop" % (what, gap)
    check_hello(new, g)
    last = fake.last_attached_populated(new.index)
    if last is not None and new.hello["populated"] > last:
        # Pages populated while detached went uncharged: the HELLO says so.
        assert new.hello["flags"] & F_REATTACH, (what, last, new.hello)
    qemu_ok(b)
    fake.attached(10)
    log = g.log_since(bad.log_offset)
    for w in words:
        assert w in log, "%s: %r not in QEMU's log:\n%s" % (what, w, log[-2000:])
    guest_works(g)
    qemu_ok(b)
    print("# %s: dropped after %.3f s, reconnected %.2f s later; log: %s" % (
        what, max(0.0, bad.t_closed - (bad.t_reply or bad.t_hello)), gap,
        " | ".join(l.split("vmcg-hooks: ", 1)[-1] for l in log.splitlines()
                   if "vmcg-hooks" in l and "attached to" not in l)[:300]), flush=True)
    return new


def on_hello(b, behaviour, words, what, drop=True):
    """The next connection's HELLO gets `behaviour`; then (1)-(4)."""
    fake, g = b.fake, b.g
    fds0 = g.nr_fds()
    with fake.cond:
        fake.plan.append(behaviour)
        n = len(fake.conns)
    off = g.log_size()
    fake.kick()
    bad = fake.wait_conn(n, RECONNECT_S + 5)
    assert bad.behaviour is behaviour
    bad.log_offset = off
    check_hello(bad, g)
    new = after_misbehaviour(b, bad, words, what, drop)
    assert g.nr_fds() <= fds0 + 1, "%s: QEMU's fds %d -> %d" % (what, fds0, g.nr_fds())
    return bad, new


def after_attach(b, packets, words, what, fds=()):
    """Sends `packets` on the attached connection; then (1)-(4)."""
    fake, g = b.fake, b.g
    c = fake.attached()
    fds0 = g.nr_fds()
    c.log_offset = g.log_size()
    for p in packets:
        c.send(p, fds)
    c.t_reply = time.monotonic()
    after_misbehaviour(b, c, words, what)
    assert g.nr_fds() <= fds0 + 1, "%s: QEMU's fds %d -> %d" % (what, fds0, g.nr_fds())
    return c


# ---- tests ----

def test_hello_and_good_daemon():
    """The first HELLO is well formed; under the good fake the guest runs and
    its faults are charged through REFILL/GRANT."""
    b = bed()
    c = b.fake.attached()
    check_hello(c, b.g)
    guest_works(b.g)
    qemu_ok(b)
    h = c.region_header()
    assert c.grants > 0 and h["populated"] > 0 and h["faults"] > 0, (c.grants, h)
    assert h["unbacked"] == 0, h
    print("# HELLO: populated %d pages; %d grants so far" % (c.hello["populated"], c.grants))


def test_welcome_wrong_length():
    b = bed()
    for ln in (WELCOME_S.size - 1, 16, 24):
        on_hello(b, bad_welcome(packet_kw={"length": ln}), ["malformed message (type 2, %d" % ln],
                 "WELCOME of %d bytes" % ln)
    # hdr.len says 40 but the packet is 41 bytes: malformed too.
    on_hello(b, bad_welcome(packet_kw={"length": 41, "hdr_len": 40}), ["malformed message (type 2"],
             "WELCOME of 41 bytes, hdr.len 40")
    # Longer and consistent is a later minor version's WELCOME: accepted (hooks-abi.h).
    with b.fake.cond:
        b.fake.plan.append(_long_welcome)
        n = len(b.fake.conns)
    b.fake.kick()
    c = b.fake.wait_conn(n, RECONNECT_S + 5)
    wait_for(lambda: c.welcomed, 5, what="long WELCOME sent")
    time.sleep(1.5)
    assert c.t_closed is None and not c.eof, "QEMU dropped a 48-byte WELCOME (a minor extension)"
    qemu_ok(b)
    guest_works(b.g)


def _long_welcome(fake, c):
    fd, mm = make_region()
    c.region = mm
    c.welcomed = c.send(welcome_packet(charged=c.hello["populated"], length=48), [fd])
    os.close(fd)
    c.t_reply = time.monotonic()
    fake.serve(c)


def test_welcome_wrong_slots():
    b = bed()
    for slots in (NR_SLOTS - 1, NR_SLOTS + 1, 0, 1 << 31):
        # The region agrees with the WELCOME (only the slot count is wrong).
        rk = {"nr_slots": slots} if slots < 64 else {"size": 4096}
        pk = {"nr_slots": slots, "size": region_size(slots) if slots < 64 else 4096}
        on_hello(b, bad_welcome(packet_kw=pk, region_kw=rk), ["invalid WELCOME"],
                 "WELCOME nr_slots %d" % slots)


def test_welcome_fds():
    b = bed()
    on_hello(b, bad_welcome(fds="none"), ["malformed message (type 2"], "WELCOME without an fd")
    on_hello(b, bad_welcome(fds="two"), ["malformed message (type 2"], "WELCOME with two fds")
    on_hello(b, bad_welcome(region_kw={"size": 64}), ["invalid WELCOME"],
             "WELCOME's fd smaller than region_size")
    on_hello(b, bad_welcome(fds="rdonly"), ["cannot map the region"],
             "WELCOME with a read-only fd")


def test_welcome_bad_region():
    b = bed()
    on_hello(b, bad_welcome(region_kw={"magic": 0x1234}), ["invalid region"], "region magic")
    on_hello(b, bad_welcome(region_kw={"major": 2}), ["invalid region"], "region major 2")
    on_hello(b, bad_welcome(region_kw={"slot_size": 32}), ["invalid region"],
             "region slot_size 32")
    on_hello(b, bad_welcome(region_kw={"header_size": 128}), ["invalid region"],
             "region header_size 128")
    on_hello(b, bad_welcome(packet_kw={"major": 2}), ["invalid WELCOME"], "WELCOME major 2")
    on_hello(b, bad_welcome(packet_kw={"size": 1 << 40}), ["invalid WELCOME"],
             "region_size 1 TiB")
    on_hello(b, bad_welcome(packet_kw={"size": 1 << 40}, region_kw={"size": 1 << 40}),
             ["invalid WELCOME"], "region_size 1 TiB, memfd 1 TiB (sparse)")


def test_reject_malformed():
    b = bed()
    bad, _ = on_hello(b, raw_reply(reject_packet(13, b"X" * 192)), ["rejected us: " + "X" * 191],
                      "REJECT with an unterminated reason")
    log = b.g.log_since(bad.log_offset)
    assert "X" * 192 not in log, "QEMU logged past the reason's field"
    on_hello(b, raw_reply(reject_packet(0, b"zero error\0")), ["rejected us: zero error"],
             "REJECT with error 0")
    on_hello(b, raw_reply(reject_packet(-2147483648, b"negative\0")), ["rejected us: negative"],
             "REJECT with error INT_MIN")
    on_hello(b, raw_reply(reject_packet(13, b"\xff\xfe\x1b[2Jcontrol\0")), ["rejected us:"],
             "REJECT with control bytes in the reason")
    on_hello(b, raw_reply(reject_packet(13, b"short\0")[:100]), ["malformed message (type 3"],
             "REJECT of 100 bytes")


def test_grant_out_of_range():
    b = bed()
    for slot in (NR_SLOTS, 0xffffffff):
        after_attach(b, [grant_packet(slot, 64, 1)], ["malformed message (type 5"],
                     "GRANT for slot %d" % slot)


def test_unknown_types():
    b = bed()
    for t in (0, 7, 4, 6, 1, 0xffffffff):
        after_attach(b, [HDR.pack(t, 24, 1) + b"\0" * 8], ["malformed message (type %d" % t],
                     "packet of type %d" % t)


def test_bad_sizes():
    b = bed()
    big = grant_packet(0, 0, 1) + b"\0" * (4097 - 24)
    after_attach(b, [struct.pack("=II", GRANT, len(big)) + big[8:]], ["malformed message"],
                 "packet of 4097 bytes")
    huge = b"\xa5" * 65536
    after_attach(b, [huge], ["malformed message"], "packet of 64 KiB")
    # A zero-length datagram reads as end of file: QEMU can only call it a detach.
    after_attach(b, [b""], ["detached from"], "zero-length packet")
    after_attach(b, [b"\x05\0\0"], ["malformed message (type 0, 3 bytes"], "3-byte packet")
    g = grant_packet(0, 0, 1)
    after_attach(b, [struct.pack("=II", GRANT, 32) + g[8:]], ["malformed message (type 5, 24"],
                 "GRANT whose hdr.len says 32")
    after_attach(b, [struct.pack("=II", GRANT, 24) + g[8:] + b"\0" * 8],
                 ["malformed message (type 5, 32"], "GRANT of 32 bytes whose hdr.len says 24")
    after_attach(b, [grant_packet(0, 0, 1)[:20]], ["malformed message (type 5, 20"],
                 "GRANT of 20 bytes")


def test_second_welcome():
    b = bed()
    fd, _mm = make_region()
    try:
        after_attach(b, [welcome_packet()], ["malformed message (type 2"], "second WELCOME",
                     fds=[fd])
    finally:
        os.close(fd)
    after_attach(b, [reject_packet(1, b"late\0")], ["malformed message (type 3"],
                 "REJECT after WELCOME")
    # fds on a GRANT: malformed, and closed (the fd count is checked).
    fd = os.open("/dev/null", os.O_RDONLY)
    try:
        after_attach(b, [grant_packet(0, 0, 1)], ["malformed message (type 5"],
                     "GRANT with an fd", fds=[fd])
    finally:
        os.close(fd)


def test_mutation_loop():
    """~20 s and about 10 MB of packets: mostly GRANTs QEMU must accept, with
    random bit flips, random bytes, other types, fds attached; QEMU drops
    and reconnects as often as it must and survives all of it."""
    b = bed()
    fake, g = b.fake, b.g
    rng = random.Random(int(os.environ.get("VMCG_FUZZ_SEED", time.time())))
    fds0 = g.nr_fds()
    off = g.log_size()
    n0 = fake.count()
    sent = bytes_sent = 0
    dropped = 0
    templates = [welcome_packet(), reject_packet(5, b"r\0"), REFILL_S.pack(REFILL, 32, 1, 0, 1, 64, 0),
                 RETURN_S.pack(RETURN, 32, 1, 1, 0, 5), HDR.pack(HELLO, 16, 1)]
    devnull = os.open("/dev/null", os.O_RDONLY)
    t_end = time.monotonic() + 20
    try:
        while time.monotonic() < t_end and bytes_sent < 10 << 20:
            c = fake.attached(RECONNECT_S + 5)
            # A run of packets QEMU must accept (GRANTs, many of them longer,
            # as a later minor version may send, with random tails and random
            # seq/pages), then one mutant that is most likely malformed.
            run = rng.randrange(100, 600)
            while c.t_closed is None and not c.eof and time.monotonic() < t_end:
                fds = ()
                if run > 0:
                    run -= 1
                    p = grant_packet(rng.randrange(NR_SLOTS), rng.getrandbits(32),
                                     rng.getrandbits(64))
                    if rng.random() < 0.8:
                        p += rng.randbytes(rng.randrange(1, 4096 - 24 + 1))
                        p = p[:4] + struct.pack("=I", len(p)) + p[8:]
                else:
                    run = rng.randrange(100, 600)
                    x = rng.random()
                    if x < 0.4:  # a GRANT with 1-4 bits flipped anywhere
                        p = bytearray(grant_packet(rng.randrange(NR_SLOTS), 0, 0))
                        for _ in range(rng.randint(1, 4)):
                            bit = rng.randrange(len(p) * 8)
                            p[bit // 8] ^= 1 << (bit % 8)
                        p = bytes(p)
                    elif x < 0.7:  # random bytes, short or up to past the maximum
                        p = rng.randbytes(rng.choice((rng.randrange(0, 64),
                                                      rng.randrange(0, 5000))))
                    else:  # another type's packet, bits flipped, maybe with an fd
                        p = bytearray(rng.choice(templates))
                        for _ in range(rng.randint(0, 3)):
                            bit = rng.randrange(len(p) * 8)
                            p[bit // 8] ^= 1 << (bit % 8)
                        p = bytes(p)
                        if rng.random() < 0.5:
                            fds = [devnull]
                if not c.send(p, fds):
                    break
                sent += 1
                bytes_sent += len(p)
            if c.t_closed is not None or c.eof or fake.wait_closed(c, 2):
                dropped += 1
    finally:
        os.close(devnull)
    qemu_ok(b)
    c = fake.attached(RECONNECT_S + 10)
    check_hello(c, g)
    guest_works(g)
    qemu_ok(b)
    fds1 = g.nr_fds()
    log = g.log_since(off)
    print("# mutation loop: %d packets, %.1f MB sent, %d connections dropped, %d opened; "
          "QEMU fds %d -> %d; %d malformed-message log lines" % (
              sent, bytes_sent / 1e6, dropped, fake.count() - n0, fds0, fds1,
              log.count("malformed message")), flush=True)
    assert fake.count() - n0 >= 2 and "malformed message" in log, (fake.count() - n0, log[-500:])
    assert fds1 <= fds0 + 1, "QEMU leaks fds: %d -> %d" % (fds0, fds1)


def test_hello_never_answered():
    """The fake accepts and never answers: QEMU gives up after its HELLO timeout
    (5 s) and retries. With on-disconnect=continue the guest goes on meanwhile:
    a 64 MiB memhog started in the window gets its memory, the shell and QMP
    answer within a second (the pages become debt at the next attach)."""
    b = bed()
    fake, g = b.fake, b.g
    rss0 = g.unpopulate()
    with fake.cond:
        fake.plan.append(silent)
        n = len(fake.conns)
    off = g.log_size()
    fake.kick()
    bad = fake.wait_conn(n, RECONNECT_S + 5)
    bad.log_offset = off
    check_hello(bad, g)
    t_hello = bad.t_hello
    # QMP and the resident guest RAM from a thread; the guest's shell from here.
    samples = []  # (s since HELLO, QMP s, guest RAM grown MiB)
    done = threading.Event()

    def sample():
        while not done.is_set() and time.monotonic() - t_hello < HELLO_TIMEOUT_S + 3:
            t = time.monotonic()
            g.qmp("query-status", timeout=15)
            samples.append((t - t_hello, time.monotonic() - t, (g.hooked_rss() - rss0) / (1 << 20)))
            time.sleep(0.2)
    th = threading.Thread(target=sample)
    th.start()
    shell = []  # (s since HELLO when asked, s taken)
    try:
        t = time.monotonic()
        g.bg_hog(64, "silent")
        shell.append((t - t_hello, time.monotonic() - t))
        while time.monotonic() - t_hello < HELLO_TIMEOUT_S + 1:
            t = time.monotonic()
            assert g.shell("echo alive", timeout=30).strip() == "alive"
            shell.append((t - t_hello, time.monotonic() - t))
            time.sleep(0.2)
    finally:
        done.set()
        th.join()
    assert fake.wait_closed(bad, 10) and bad.eof, "QEMU never gave up on the HELLO"
    waited = bad.t_closed - bad.t_hello
    grown_in_window = max([x[2] for x in samples if x[0] < waited] or [0])
    new = after_misbehaviour(b, bad, ["no WELCOME from"], "HELLO never answered", drop=False)
    wait_for(lambda: g.hog_done("silent"), 60, interval=0.5, what="memhog done after the window")
    grown = (g.hooked_rss() - rss0) / (1 << 20)
    g.bg_unhog("silent")
    print("# HELLO unanswered: QEMU gave up after %.2f s, reconnected %.2f s later; new HELLO "
          "flags %#x" % (waited, new.t_accept - bad.t_closed, new.hello["flags"]), flush=True)
    print("# in the window, QMP (s since HELLO, s taken, guest RAM grown MiB): %s" % (
        " ".join("(%.1f %.2f %.0f)" % x for x in samples)), flush=True)
    print("# in the window, guest shell (s since HELLO, s taken; the first starts the hog): %s" % (
        " ".join("(%.1f %.2f)" % x for x in shell)), flush=True)
    print("# grew %.0f MiB in the window, %.0f MiB once the hog was done" % (
        grown_in_window, grown), flush=True)
    assert HELLO_TIMEOUT_S - 0.5 <= waited <= HELLO_TIMEOUT_S + 2, waited
    assert samples and all(x[1] < 1.0 for x in samples), samples
    assert grown >= 32, "the hog did not fault new memory (grew %.0f MiB)" % grown
    # on-disconnect=continue: a daemon that accepts and hangs must not
    # freeze the guest (the pages populated meanwhile become debt at attach).
    assert shell and all(x[1] < 1.0 for x in shell), shell
    assert grown_in_window >= 32, "guest frozen while the HELLO waited: %s" % samples


def test_reattach_flag():
    """Detached (the fake closes every connection at once) while the guest
    touches 64 MiB: those pages are populated uncharged, and the next HELLO
    says REATTACH with a populated count that includes them."""
    b = bed()
    fake, g = b.fake, b.g
    g.unpopulate()
    c = fake.attached()
    with fake.cond:
        fake.plan.extend([close_now] * 30)
        n = len(fake.conns)
    fake.kick()
    fake.wait_closed(c, 5)
    time.sleep(0.5)  # QEMU has left the region: its populated count is final
    before = c.region_header()["populated"]
    hog = g.hog(64)
    fake.wait_conn(n + 1, RECONNECT_S)  # at least one more refused connection
    with fake.cond:
        left = len(fake.plan)
        fake.plan.clear()
    assert left < 30, "QEMU did not retry while detached"
    new = fake.attached(RECONNECT_S + 10)
    check_hello(new, g, reattach=True)
    assert new.hello["populated"] >= before + 32 * MiB_PAGES, (before, new.hello["populated"])
    qemu_ok(b)
    guest_works(g)
    g.unhog(hog)
    print("# REATTACH: populated %d -> %d pages across %d refused connections" % (
        before, new.hello["populated"], new.index - n), flush=True)


def test_huge_credit():
    """credit = 2^40 in slot 0: QEMU populates without asking (the audit's
    business), and must not crash."""
    b = bed()
    g = b.g
    rss0 = g.unpopulate()
    c = b.fake.attached()
    c.tainted = True
    c.add_credit(0, 1 << 40)
    refills = len([t for t, _ in c.received if t == REFILL])
    g.hog(96)
    qemu_ok(b)
    guest_works(g)
    g.unhog()
    grown = (g.hooked_rss() - rss0) >> 20
    assert c.t_closed is None, "QEMU dropped the connection"
    used = (1 << 40) - c.credit(0)
    print("# huge credit: the guest grew %d MiB, took %d pages of the 2^40; REFILLs on the way: %d"
          % (grown, used, len([t for t, _ in c.received if t == REFILL]) - refills), flush=True)
    assert used >= 16 * MiB_PAGES, used
    assert c.credit(0) > 0


def test_negative_credit():
    """credit = -2^62 in slot 0 (the fake then grants a batch at every REFILL,
    which never covers the hole): the vCPU's faults wait, QEMU asks again at
    every GRANT. After 3 s the fake closes the connection; with
    on-disconnect=continue the waiting faults go through uncharged."""
    b = bed()
    fake, g = b.fake, b.g
    rss0 = g.unpopulate()
    c = fake.attached()
    c.add_credit(0, -(1 << 62))
    c.tainted = True
    r0 = len(c.received)
    t0 = time.monotonic()
    held = {}

    def drop():
        held["grown"] = (g.hooked_rss() - rss0) >> 20
        held["refills"] = len([t for t, _ in c.received[r0:] if t == REFILL])
        held["status"] = g.qmp("query-status", timeout=5)["status"]
        fake.kick()
    timer = threading.Timer(3.0, drop)
    timer.start()
    try:
        g.bg_hog(64, "neg")
    finally:
        timer.join()
    took = time.monotonic() - t0
    grown_held, refills = held["grown"], held["refills"]
    fake.wait_closed(c, 5)
    wait_for(lambda: g.hog_done("neg"), 60, interval=0.5, what="memhog done once detached")
    grown = (g.hooked_rss() - rss0) >> 20
    g.bg_unhog("neg")
    qemu_ok(b)
    fake.attached(RECONNECT_S + 5)
    guest_works(g)
    print("# negative credit: %d REFILLs in 3 s (%d GRANTs), guest RAM grew %d MiB held, %d MiB "
          "after the drop; the shell waited %.1f s; QMP said %s while held" % (
              refills, c.grants, grown_held, grown, took, held["status"]), flush=True)
    assert refills >= 1 and grown_held < 16, (refills, grown_held)
    assert held["status"] == "running", held
    assert grown >= 32, grown


def test_region_shrunk_after_welcome():
    """A region memfd without seals, shrunk to 0 after the WELCOME. vmcgd seals
    its memfds; QEMU does not check (F_GET_SEALS), so its next access to the
    region would be a SIGBUS."""
    b = bed()
    fake, g = b.fake, b.g
    holder = {}

    def unsealed(fake_, c):
        fd, mm = make_region(seal=False)
        c.region = mm
        holder["fd"] = os.dup(fd)
        c.welcomed = c.send(welcome_packet(charged=c.hello["populated"]), [fd])
        os.close(fd)
        c.t_reply = time.monotonic()
        fake_.serve(c)

    with fake.cond:
        fake.plan.append(unsealed)
        n = len(fake.conns)
    off = g.log_size()
    fake.kick()
    c = fake.wait_conn(n, RECONNECT_S + 5)
    wait_for(lambda: c.welcomed and "fd" in holder, 5, what="unsealed WELCOME")
    g.unpopulate()
    c.region.close()
    c.region = None
    os.ftruncate(holder["fd"], 0)
    os.close(holder["fd"])
    try:
        g.hog(32)
        g.unhog()
    except Exception as e:  # noqa: B902 - reported below
        print("# shrunk region: guest command failed: %s" % str(e).splitlines()[0])
    assert b.alive(), "QEMU died (%r) once the region was shrunk: it maps an unsealed memfd\n%s" % (
        b.g.proc.poll(), g.log_since(off)[-1500:])
    qemu_ok(b)


TESTS = [
    ("hello-and-good-daemon", test_hello_and_good_daemon),
    ("welcome-wrong-length", test_welcome_wrong_length),
    ("welcome-wrong-slots", test_welcome_wrong_slots),
    ("welcome-fds", test_welcome_fds),
    ("welcome-bad-region", test_welcome_bad_region),
    ("reject-malformed", test_reject_malformed),
    ("grant-out-of-range", test_grant_out_of_range),
    ("unknown-types", test_unknown_types),
    ("bad-sizes", test_bad_sizes),
    ("second-welcome", test_second_welcome),
    ("mutation-loop", test_mutation_loop),
    ("hello-never-answered", test_hello_never_answered),
    ("reattach-flag", test_reattach_flag),
    ("huge-credit", test_huge_credit),
    ("negative-credit", test_negative_credit),
    ("region-shrunk-after-welcome", test_region_shrunk_after_welcome),
]



def cleanup():
    if BED is not None:
        BED.close()


if __name__ == "__main__":
    sys.exit(tap.main(TESTS, cleanup=cleanup))
