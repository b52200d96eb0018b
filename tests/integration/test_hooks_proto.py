#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The hooks protocol (include/vmcg/hooks-abi.h) against a real vmcgd.

This process plays the patched QEMU: it connects to vmcgd's hooks socket
(AF_UNIX, SOCK_SEQPACKET), says HELLO with its own pid (vmcgd checks it
against SO_PEERCRED), maps the WELCOME's memfd, asks for credit and gives
it back, and watches the charge through the API. The VMs are registered
through the API with a QMP socket this process serves (FakeQmp): vmcgd
learns the VM's QEMU pid from that connection (SO_PEERCRED), and it is
this process, which is also the hooks peer. The fake QEMU has no guest
RAM mapping, so sampling finds nothing and every page of the charge is the
hooks' doing.

- HELLO -> WELCOME: slots, the region's header, "mode": "hooks", the
  populated pages charged;
- REFILL -> GRANT: the slot's credit and the charge grow; at memory.max a
  refill that needs pages is held (no GRANT; "held" in the API; a max event)
  until the limit goes up; a prefetch at max is refused with 0 pages;
- RETURN: credit put in the device slot above a batch is drained and
  uncharged;
- closing the socket uncharges all of it, back to sampling, with
  hooks_attached / hooks_detached on the event stream;
- every refusal (REJECT with its errno, or the connection dropped) leaves
  the daemon's state as it was and the daemon serving.

Attacks (issue 9), each run for real; each fails on the vmcgd before the fix:

- claim-unconnected-vm-4tib: a HELLO for a VM whose QMP socket is not
  connected yet (its QEMU pid unknown) with 4 TiB populated is refused
  (EAGAIN), nothing is charged, and the other VM of the group is not
  OOM-acted (no QMP stop) after the OOM deadline;
- populated-above-ram: 4 TiB populated for a 512 MiB VM: ERANGE, nothing
  charged;
- hello-from-a-child: a process other than the VM's QEMU (a child of it)
  says HELLO with its own pid: EPERM;
- credit-out-of-range: a QEMU that attached with all of its 512 MiB
  populated consumes its credit without populating anything and asks
  for more, or writes itself debt: dropped once its charge would pass its
  RAM plus twice the slots' slack; a REFILL wanting more than a batch or
  needing more than a chunk is dropped;
- fd-exhaustion: vmcgd under RLIMIT_NOFILE 32, flooded with connections that
  never say HELLO (as root and as nobody in the socket's group): vmcgd
  does not spin (CPU time) nor flood its log, closes the silent
  connections by the HELLO deadline, and then attaches a real HELLO.

Python 3 standard library only. Prints TAP.
"""
import errno
import json
import mmap
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vmcgtest import tap  # noqa: E402
from vmcgtest.daemon import Daemon  # noqa: E402

PAGE = 4096
MAGIC = 0x4b4f4f4847434d56
REGION_MAGIC = 0x314e474847434d56
HELLO, WELCOME, REJECT, REFILL, GRANT, RETURN = 1, 2, 3, 4, 5, 6
HDR = struct.Struct('=IIQ')
HELLO_FIXED = struct.Struct('=IIQQHHIIIIIII64s16sQ')  # header included: 144 bytes
RAMBLOCK = struct.Struct('=64sQQ')
WELCOME_S = struct.Struct('=IIQHHIQQ')
REJECT_S = struct.Struct('=IIQiI192s')
REFILL_S = struct.Struct('=IIQIIII')
GRANT_S = struct.Struct('=IIQII')
RETURN_S = struct.Struct('=IIQIIQ')
REGION_HDR = struct.Struct('=QHHIIIIIQQQ')  # then padding to a cache line
HEADER_SIZE = 64
SLOT_SIZE = 64
RECV_TIMEOUT = 5.0

assert HELLO_FIXED.size == 144 and RAMBLOCK.size == 80 and WELCOME_S.size == 40
assert REJECT_S.size == 216 and REFILL_S.size == 32 and GRANT_S.size == 24
assert RETURN_S.size == 32

D = None  # the daemon every test talks to


# ---- the QEMU side ----

def hello_packet(name, pid=None, vcpus=2, batch=64, populated=100, major=1, minor=0,
                 flags=0, pages=65536, seq=1):
    blocks = RAMBLOCK.pack(b'pc.ram', pages, populated)
    return HELLO_FIXED.pack(HELLO, HELLO_FIXED.size + len(blocks), seq, MAGIC, major, minor,
                            flags, os.getpid() if pid is None else pid, vcpus, PAGE, batch,
                            1, 0, name.encode(), b'\0' * 16, populated) + blocks


def refill_packet(slot, need, want, seq):
    return REFILL_S.pack(REFILL, REFILL_S.size, seq, slot, need, want, 0)


def return_packet(slot, pages, seq):
    return RETURN_S.pack(RETURN, RETURN_S.size, seq, slot, 0, pages)


class Qemu:
    """One hooks connection, as the vmcg-hooks object in QEMU holds it."""

    def __init__(self, path=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.settimeout(RECV_TIMEOUT)
        self.sock.connect(path or D.hooks_socket)
        self.region = None
        self.nr_slots = 0
        self.seq = 1

    def send(self, data):
        self.sock.send(data)

    def recv(self, timeout=RECV_TIMEOUT):
        """One packet and its fds; b'' at EOF."""
        self.sock.settimeout(timeout)
        data, fds, _flags, _addr = socket.recv_fds(self.sock, 8192, 4)
        return data, fds

    def hello(self, name, **kw):
        """HELLO; the WELCOME (unpacked), with the region mapped."""
        self.send(hello_packet(name, **kw))
        data, fds = self.recv()
        assert len(data) >= HDR.size, 'no answer to HELLO: %r' % data
        t = HDR.unpack_from(data)[0]
        if t == REJECT:
            raise AssertionError('HELLO rejected: %r' % (parse_reject(data),))
        assert t == WELCOME and len(data) == WELCOME_S.size, data
        assert len(fds) == 1, 'WELCOME without exactly one fd: %r' % fds
        w = dict(zip(('type', 'len', 'seq', 'major', 'minor', 'nr_slots', 'region_size',
                      'charged'), WELCOME_S.unpack(data)))
        st = os.fstat(fds[0])
        assert st.st_size == w['region_size'], (st.st_size, w)
        self.region = mmap.mmap(fds[0], w['region_size'], mmap.MAP_SHARED,
                                mmap.PROT_READ | mmap.PROT_WRITE)
        os.close(fds[0])
        self.nr_slots = w['nr_slots']
        return w

    def region_header(self):
        keys = ('magic', 'major', 'minor', 'nr_slots', 'slot_size', 'header_size', 'batch',
                'watermark', 'populated', 'faults', 'unbacked')
        return dict(zip(keys, REGION_HDR.unpack_from(self.region, 0)))

    def credit(self, slot):
        return struct.unpack_from('=q', self.region, HEADER_SIZE + slot * SLOT_SIZE)[0]

    def set_credit(self, slot, value):
        # QEMU adds with an atomic RMW; with vmcgd not touching this slot now, a store will do.
        struct.pack_into('=q', self.region, HEADER_SIZE + slot * SLOT_SIZE, value)

    def refill(self, slot, need, want):
        self.seq += 1
        self.send(refill_packet(slot, need, want, self.seq))
        return self.seq

    def grant(self, seq, timeout=RECV_TIMEOUT):
        data, fds = self.recv(timeout)
        assert not fds
        assert len(data) == GRANT_S.size, 'expected a GRANT, got %r' % data
        t, ln, s, slot, pages = GRANT_S.unpack(data)
        assert t == GRANT and ln == GRANT_S.size and s == seq, (t, ln, s, seq)
        return slot, pages

    def give_back(self, slot, pages):
        self.seq += 1
        self.send(return_packet(slot, pages, self.seq))

    def dropped(self, timeout=RECV_TIMEOUT):
        """True if vmcgd closed the connection (EOF)."""
        data, fds = self.recv(timeout)
        for fd in fds:
            os.close(fd)
        return data == b''

    def close(self):
        if self.region is not None:
            self.region.close()
            self.region = None
        self.sock.close()


def parse_reject(data):
    assert len(data) == REJECT_S.size, 'expected a REJECT, got %r' % data
    t, ln, _seq, err, _res, reason = REJECT_S.unpack(data)
    assert t == REJECT and ln == REJECT_S.size
    assert b'\0' in reason, 'reason not NUL-terminated'
    return err, reason.split(b'\0', 1)[0].decode('utf-8', 'replace')


# ---- the QMP side ----

class FakeQmp:
    """A QMP server in this process, for one VM: the greeting, then an
    answer to every command (what backend-qmp.c asks at connect:
    qmp_capabilities, query-memdev, query-balloon, qom-list; anything else
    gets an empty return). vmcgd's SO_PEERCRED on the connection is this
    process: the VM's QEMU pid becomes os.getpid(). Commands are recorded
    (self.commands) so a test can tell whether vmcgd paused or killed it."""

    GREETING = {'QMP': {'version': {'qemu': {'major': 7, 'minor': 2, 'micro': 0},
                                    'package': ''}, 'capabilities': []}}

    def __init__(self, path, ram_bytes=512 << 20):
        self.path = path
        self.ram = ram_bytes
        self.commands = []
        self.conns = []
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(4)
        threading.Thread(target=self._accept, daemon=True).start()

    def _answer(self, cmd):
        if cmd == 'query-memdev':
            return [{'id': 'pc.ram', 'size': self.ram, 'merge': True, 'dump': True,
                     'prealloc': False, 'share': False, 'policy': 'default', 'host-nodes': []}]
        if cmd == 'query-balloon':
            return {'actual': self.ram}
        if cmd == 'qom-list':
            return []
        return {}

    def _accept(self):
        while True:
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        dec = json.JSONDecoder()
        buf = ''
        try:
            c.sendall((json.dumps(self.GREETING) + '\r\n').encode())
            while True:
                data = c.recv(65536)
                if not data:
                    return
                buf += data.decode()
                while True:
                    buf = buf.lstrip()
                    if not buf:
                        break
                    try:
                        msg, end = dec.raw_decode(buf)
                    except ValueError:
                        break
                    buf = buf[end:]
                    cmd = msg.get('execute')
                    with self.lock:
                        self.commands.append(cmd)
                    reply = {'return': self._answer(cmd)}
                    if 'id' in msg:
                        reply['id'] = msg['id']
                    c.sendall((json.dumps(reply) + '\r\n').encode())
        except OSError:
            return
        finally:
            c.close()

    def got(self, *cmds):
        with self.lock:
            return [c for c in self.commands if c in cmds]

    def close(self):
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


FAKES = {}


# ---- the API side ----

def add_vm(name, group='/', ram=512 << 20, d=None):
    """Registers @name with a FakeQmp and waits until vmcgd knows its pid and RAM."""
    d = d or D
    qmp = str(d.tmpdir / ('fake-%s.qmp' % name))
    FAKES[(d.tmpdir, name)] = FakeQmp(qmp, ram)
    d.post('/v1/vms', {'name': name, 'qmp': qmp, 'group': group})
    # Ready, its RAM size and balloon known (the HELLO's bound; a snapshot that holds still).
    # Its first read back too (unknown: see CONF), so that it does not land
    # inside a test's before and after.
    wait_until(lambda: (lambda v: v['state'] == 'ready' and v['ram'] == ram and
                        v['balloon']['actual'] == ram and
                        v['charge']['state'] != 'pending')(d.vm(name)),
               what='%s ready with its RAM size' % name)
    vm = d.vm(name)
    assert vm['pid'] == os.getpid(), vm
    assert vm['mode'] == 'sampling', vm
    return FAKES[(d.tmpdir, name)]


def add_vm_unconnected(name, group='/'):
    """Registered with a QMP socket nobody serves: "connecting", pid unknown."""
    D.post('/v1/vms', {'name': name, 'qmp': str(D.tmpdir / ('nobody-%s.qmp' % name)),
                       'group': group})
    assert D.vm(name)['state'] == 'connecting'
    assert D.vm(name)['mode'] == 'sampling'


def vm_current(name):
    return D.vm(name)['memory.current']


def snapshot(events=True):
    """What a client sees of the state, minus what moves on its own (and
    the groups' event counters and peaks, which a hold legitimately moves,
    unless @events)."""
    def strip(g):
        g = dict(g)
        g.pop('memory.pressure', None)
        g.pop('vmpressure', None)
        if not events:
            g.pop('memory.events', None)
            g.pop('memory.events.local', None)
            g.pop('memory.peak', None)
        g['children'] = [strip(c) if isinstance(c, dict) else c for c in g['children']]
        return g
    return [strip(D.get('/v1/groups')), D.get('/v1/vms')]


# This process is every fake VM's QEMU, and it has no guest RAM for
# vmcgd's sampler to find: a sampled fake VM's charge is "unknown" (0, as
# nothing was ever measured). That must not turn into its whole RAM within
# a run (unknown-charge-grace, 10 s by default), nor may the ages and
# failure counts of those reads count as a change of state.
CONF = "[daemon]\nunknown-charge-grace = 24h\n"
MOVING = {'unknown-usec', 'sample-age-usec', 'failures'}


def diff(a, b, path=''):
    """Where two snapshots differ, for the assertion message ('' if not)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return '; '.join(filter(None, (diff(a.get(k), b.get(k), path + '/' + str(k))
                                       for k in sorted(set(a) | set(b)))))
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return '; '.join(filter(None, (diff(x, y, '%s[%d]' % (path, i))
                                       for i, (x, y) in enumerate(zip(a, b)))))
    if path.rsplit('/', 1)[-1] in MOVING and '/charge/' in path:
        return ''
    return '' if a == b else '%s: %r -> %r' % (path, a, b)


def wait_until(cond, timeout=5.0, what='condition'):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError('timed out waiting for %s' % what)


def wait_detached(name):
    # Sampling takes over: until its first read of this process is back,
    # the charge is "pending" (then "unknown": see CONF).
    wait_until(lambda: (lambda v: v['mode'] == 'sampling' and
                        v['charge']['state'] != 'pending')(D.vm(name)),
               what='%s detached' % name)


# ---- tests ----

TESTS = []


def test(fn):
    TESTS.append((fn.__name__, fn))
    return fn


@test
def hello_welcome_region_and_charge():
    add_vm('h1')
    q = Qemu()
    try:
        w = q.hello('h1', vcpus=3, batch=64, populated=100)
        assert w['major'] == 1 and w['nr_slots'] == 4 and w['charged'] == 100, w
        assert w['region_size'] == 64 + 4 * 64, w
        r = q.region_header()
        assert r['magic'] == REGION_MAGIC and r['major'] == 1, r
        assert r['nr_slots'] == 4 and r['slot_size'] == 64 and r['header_size'] == 64, r
        assert r['batch'] == 64 and r['watermark'] == 32, r
        assert all(q.credit(i) == 0 for i in range(4))
        vm = D.vm('h1')
        assert vm['mode'] == 'hooks', vm
        assert vm['memory.current'] == 100 * PAGE, vm
        assert vm['hooks']['slots'] == 4 and vm['hooks']['batch'] == 64, vm['hooks']
        assert vm['hooks']['charged'] == 100 * PAGE and vm['hooks']['held'] == 0
        assert D.group('/')['memory.current'] >= 100 * PAGE
    finally:
        q.close()
    wait_detached('h1')
    assert vm_current('h1') == 0


@test
def refill_grants_into_the_slot():
    add_vm('r1')
    q = Qemu()
    try:
        q.hello('r1', vcpus=2, batch=64, populated=10)
        before = vm_current('r1')
        assert before == 10 * PAGE
        seq = q.refill(0, 0, 64)
        slot, pages = q.grant(seq)
        assert slot == 0 and pages == 64, (slot, pages)
        assert q.credit(0) == 64
        assert vm_current('r1') == before + 64 * PAGE
        hk = D.vm('r1')['hooks']
        assert hk['credit'] == 64 * PAGE and hk['granted'] == 64 * PAGE, hk
        # Another slot, a fault waiting on 5 pages: the whole batch if it fits.
        seq = q.refill(1, 5, 64)
        assert q.grant(seq) == (1, 64)
        assert q.credit(1) == 64
        assert vm_current('r1') == before + 128 * PAGE
    finally:
        q.close()
    wait_detached('r1')
    assert vm_current('r1') == 0


@test
def held_at_max_until_the_limit_goes_up():
    D.put('/v1/groups/held', {'memory.max': 400 * PAGE})
    add_vm('m1', '/held')
    q = Qemu()
    try:
        q.hello('m1', vcpus=2, batch=128, populated=300)  # a fault may need 128 pages
        assert D.group('/held')['memory.current'] == 300 * PAGE
        max_events = D.group('/held')['memory.events']['max']
        # 300 + 64 fits.
        seq = q.refill(0, 0, 64)
        assert q.grant(seq) == (0, 64)
        # 364 + 64 does not, and even after draining slot 0, 300 + 128 does not: held.
        seq = q.refill(1, 128, 128)
        q.sock.settimeout(1.0)
        try:
            data = q.sock.recv(8192)
            raise AssertionError('answered within 1 s at max: %r' % data)
        except socket.timeout:
            pass
        vm = D.vm('m1')
        assert vm['hooks']['held'] == 1, vm['hooks']
        assert D.group('/held')['memory.events']['max'] > max_events
        assert D.group('/held')['memory.current'] <= 400 * PAGE
        # Raising memory.max lets the held refill through.
        D.put('/v1/groups/held', {'memory.max': 1000 * PAGE})
        slot, pages = q.grant(seq)
        assert slot == 1 and pages == 128, (slot, pages)
        assert D.vm('m1')['hooks']['held'] == 0
        assert q.credit(1) == 128
        charged = D.vm('m1')['hooks']['charged']
        assert vm_current('m1') == charged
        assert charged == (300 + q.credit(0) + q.credit(1)) * PAGE
    finally:
        q.close()
    wait_detached('m1')
    assert D.group('/held')['memory.current'] == 0


@test
def prefetch_at_max_refused_with_zero_pages():
    D.put('/v1/groups/full', {'memory.max': 100 * PAGE})
    add_vm('p1', '/full')
    q = Qemu()
    try:
        q.hello('p1', vcpus=1, batch=64, populated=90)
        seq = q.refill(0, 0, 64)
        assert q.grant(seq) == (0, 0)
        assert q.credit(0) == 0
        assert vm_current('p1') == 90 * PAGE
        assert D.vm('p1')['hooks']['held'] == 0
        # Exactly need fits where want does not: need is charged.
        seq = q.refill(0, 10, 64)
        assert q.grant(seq) == (0, 10)
        assert vm_current('p1') == 100 * PAGE
    finally:
        q.close()
    wait_detached('p1')
    assert vm_current('p1') == 0


@test
def return_drains_the_device_slot_to_a_batch():
    add_vm('d1')
    q = Qemu()
    try:
        q.hello('d1', vcpus=2, batch=64, populated=500)
        dev = q.nr_slots - 1
        assert dev == 2
        before = vm_current('d1')
        assert before == 500 * PAGE
        # A balloon inflation discarded 120 populated pages: QEMU moves them to credit.
        # (At most 2 x batch, so the tick's own drain leaves them alone.)
        q.set_credit(dev, 120)
        q.give_back(dev, 120)
        wait_until(lambda: q.credit(dev) == 64, what='the device slot drained to a batch')
        wait_until(lambda: vm_current('d1') == before - 56 * PAGE, what='56 pages uncharged')
        hk = D.vm('d1')['hooks']
        assert hk['drained'] == 56 * PAGE and hk['charged'] == 444 * PAGE, hk
        # At or below a batch a RETURN takes nothing.
        q.give_back(dev, 0)
        time.sleep(0.3)
        assert q.credit(dev) == 64 and vm_current('d1') == before - 56 * PAGE
    finally:
        q.close()
    wait_detached('d1')
    assert vm_current('d1') == 0


@test
def close_uncharges_everything_and_events():
    D.follow_events()
    add_vm('c1')
    base_root = D.group('/')['memory.current']
    q = Qemu()
    try:
        q.hello('c1', vcpus=2, batch=32, populated=200)
        for slot in range(3):
            seq = q.refill(slot, 0, 32)
            assert q.grant(seq) == (slot, 32)
        assert vm_current('c1') == (200 + 96) * PAGE
        assert D.group('/')['memory.current'] == base_root + (200 + 96) * PAGE
        wait_until(lambda: any(e.get('vm') == 'c1' for e in D.events_of('hooks_attached')),
                   what='hooks_attached for c1')
        ev = [e for e in D.events_of('hooks_attached') if e.get('vm') == 'c1'][0]
        assert ev['pid'] == os.getpid() and ev['vcpus'] == 2 and ev['batch'] == 32, ev
        assert ev['populated'] == 200 * PAGE, ev
    finally:
        q.close()
    wait_detached('c1')
    assert vm_current('c1') == 0
    assert D.vm('c1')['hooks'] is None
    assert D.group('/')['memory.current'] == base_root
    wait_until(lambda: any(e.get('vm') == 'c1' for e in D.events_of('hooks_detached')),
               what='hooks_detached for c1')


def refused(send, want_errno=None, setup=None):
    """Sends what @send gives on a fresh connection: REJECT with @want_errno (None:
    a REJECT or a drop), then EOF; the daemon's state unchanged and still serving."""
    before = snapshot()
    q = Qemu()
    try:
        for pkt in send():
            q.send(pkt)
        data, fds = q.recv()
        for fd in fds:
            os.close(fd)
        if want_errno is not None:
            err, reason = parse_reject(data)
            assert err == want_errno, 'errno %d (%s), want %d' % (err, reason, want_errno)
            assert reason, 'REJECT without a reason'
        elif data:
            parse_reject(data)
        if data:
            assert q.dropped(), 'connection not closed after REJECT'
    finally:
        q.close()
    time.sleep(0.1)
    after = snapshot()
    assert not diff(before, after), 'state changed: ' + diff(before, after)
    # Still serving: the API and the hooks socket.
    D.get('/v1/groups/')
    add_then_probe()


_probe = [0]


def add_then_probe():
    """A fresh VM attaches and detaches cleanly."""
    _probe[0] += 1
    name = 'probe%d' % _probe[0]
    add_vm(name)
    q = Qemu()
    try:
        q.hello(name, populated=1)
        assert vm_current(name) == PAGE
    finally:
        q.close()
    wait_detached(name)
    D.delete('/v1/vms/' + name)
    FAKES.pop((D.tmpdir, name)).close()


@test
def refused_unknown_vm():
    refused(lambda: [hello_packet('nobody-here')], errno.ENOENT)


@test
def refused_pid_not_the_peer():
    add_vm('e1')
    refused(lambda: [hello_packet('e1', pid=os.getppid())], errno.EPERM)
    assert D.vm('e1')['mode'] == 'sampling'


@test
def refused_second_connection_for_attached_vm():
    add_vm('b1')
    q = Qemu()
    try:
        q.hello('b1', populated=7)
        seq = q.refill(0, 0, 64)
        assert q.grant(seq) == (0, 64)
        refused(lambda: [hello_packet('b1', populated=500)], errno.EBUSY)
        # The first connection is untouched.
        assert vm_current('b1') == (7 + 64) * PAGE
        seq = q.refill(1, 0, 64)
        assert q.grant(seq) == (1, 64)
    finally:
        q.close()
    wait_detached('b1')


@test
def refused_major_2():
    add_vm('v2')
    refused(lambda: [hello_packet('v2', major=2)], errno.EPROTONOSUPPORT)


@test
def refused_garbage():
    refused(lambda: [b'\xff' * 100], errno.EPROTO)
    refused(lambda: [b'GET / HTTP/1.1\r\n\r\n'], errno.EPROTO)


@test
def refused_truncated_hello():
    add_vm('t1')

    def truncated():
        p = bytearray(hello_packet('t1')[:150])
        struct.pack_into('=I', p, 4, len(p))  # a consistent hdr.len: only the size is wrong
        return [bytes(p)]
    refused(truncated, errno.EPROTO)
    refused(lambda: [hello_packet('t1')[:10]], errno.EPROTO)


@test
def refused_refill_before_hello():
    refused(lambda: [refill_packet(0, 0, 64, 1)], errno.EPROTO)


@test
def dropped_refill_slot_out_of_range():
    add_vm('s1')
    before = snapshot()
    q = Qemu()
    try:
        w = q.hello('s1', vcpus=2, populated=50)
        seq = q.refill(0, 0, 64)
        assert q.grant(seq) == (0, 64)
        assert vm_current('s1') == 114 * PAGE
        q.refill(w['nr_slots'], 0, 64)
        assert q.dropped(), 'REFILL for slot %d of %d not dropped' % (w['nr_slots'],
                                                                       w['nr_slots'])
    finally:
        q.close()
    wait_detached('s1')
    assert vm_current('s1') == 0
    after = snapshot()
    assert not diff(before, after), diff(before, after)
    add_then_probe()


@test
def dropped_second_refill_for_held_slot():
    D.put('/v1/groups/held2', {'memory.max': 100 * PAGE})
    add_vm('s2', '/held2')
    before = snapshot(events=False)  # the hold counts a max event: that is its job
    q = Qemu()
    try:
        q.hello('s2', vcpus=1, populated=80)
        seq = q.refill(0, 64, 64)
        q.sock.settimeout(0.5)
        try:
            data = q.sock.recv(8192)
            raise AssertionError('answered at max: %r' % data)
        except socket.timeout:
            pass
        assert D.vm('s2')['hooks']['held'] == 1
        assert seq
        q.refill(0, 64, 64)
        assert q.dropped(), 'a second REFILL for a held slot not dropped'
    finally:
        q.close()
    wait_detached('s2')
    assert vm_current('s2') == 0
    after = snapshot(events=False)
    assert not diff(before, after), diff(before, after)
    add_then_probe()


# ---- attacks (issue 9) ----

FOUR_TIB_PAGES = (4 << 40) // PAGE


def hello_answer(q, name, **kw):
    """Sends a HELLO; ('reject', errno, reason) or ('welcome', charged)."""
    q.send(hello_packet(name, **kw))
    data, fds = q.recv()
    for fd in fds:
        os.close(fd)
    assert len(data) >= HDR.size, 'no answer to HELLO: %r' % data
    if HDR.unpack_from(data)[0] == WELCOME:
        return ('welcome', WELCOME_S.unpack(data)[-1])
    err, reason = parse_reject(data)
    return ('reject', err, reason)


@test
def claim_unconnected_vm_4tib():
    """
        /claim            memory.max 256M, oom-action pause
          victim          ready (FakeQmp), nothing charged
          ghost           registered, its QMP socket not served: QEMU pid unknown

    A peer says HELLO for ghost with 4 TiB populated. Before: accepted and
    charged, /claim went 4 TiB over max and, 5 s later, its OOM action
    paused victim. Now: REJECT EAGAIN, nothing charged, victim untouched.
    """
    D.put('/v1/groups/claim', {'memory.max': 256 << 20, 'oom-action': 'pause'})
    victim = add_vm('victim', '/claim')
    add_vm_unconnected('ghost', '/claim')
    before = snapshot()
    q = Qemu()
    problems = []
    try:
        ans = hello_answer(q, 'ghost', populated=FOUR_TIB_PAGES, pages=FOUR_TIB_PAGES)
        if ans[:2] != ('reject', errno.EAGAIN):
            problems.append('HELLO for a VM whose QEMU pid is unknown: %r' % (ans,))
        elif 'QMP socket is not connected' not in ans[2]:
            problems.append('reason: %r' % ans[2])
        cur = D.group('/claim')['memory.current']
        if cur:
            problems.append('/claim charged %d bytes' % cur)
        # Past the OOM deadline (5 s) with the connection still open.
        time.sleep(6.5)
        acted = victim.got('stop', 'quit')
        if acted:
            problems.append('OOM action on victim, another VM: QMP %s' % acted)
        g = D.group('/claim')
        if g['memory.events']['oom'] or g['memory.events']['oom_kill']:
            problems.append('/claim events %r' % g['memory.events'])
        if D.vm('victim')['state'] != 'ready':
            problems.append('victim is %s' % D.vm('victim')['state'])
    finally:
        q.close()
    assert not problems, '; '.join(problems)
    after = snapshot()
    assert not diff(before, after), 'state changed: ' + diff(before, after)
    assert D.vm('ghost')['mode'] == 'sampling'


@test
def populated_above_ram():
    """A 512 MiB VM, a HELLO from its QEMU with 4 TiB populated: ERANGE, nothing charged."""
    add_vm('big', ram=512 << 20)
    refused(lambda: [hello_packet('big', populated=FOUR_TIB_PAGES, pages=FOUR_TIB_PAGES)],
            errno.ERANGE)
    # One page over its RAM is already too many; exactly its RAM is fine.
    refused(lambda: [hello_packet('big', populated=131073, pages=131073)], errno.ERANGE)
    q = Qemu()
    try:
        w = q.hello('big', populated=131072, pages=131072)
        assert w['charged'] == 131072, w
        assert vm_current('big') == 512 << 20
    finally:
        q.close()
    wait_detached('big')
    assert vm_current('big') == 0


def read_charge_until_drop(q, name, step, timeout=10.0):
    """Runs @step() until vmcgd drops @q (True) or @timeout; the highest
    hook charge seen, in pages."""
    peak = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h = D.vm(name)['hooks']
        if h is None:
            return True, peak
        peak = max(peak, h['charged'] // PAGE)
        try:
            if step():
                return True, peak
        except (ConnectionError, BrokenPipeError):
            return True, peak
    return False, peak


@test
def credit_out_of_range():
    """
    VM liar, 512 MiB (131072 pages), attached with all of it populated.
    Its QEMU (this process) then (1) consumes every GRANT without populating
    anything and asks again, (2) writes itself debt, 4096 pages a tick.
    Before: vmcgd charged without end (with no memory.max, the group's
    charge grows past any RAM). Now: dropped once the charge would pass
    the RAM plus twice the slots' slack, and uncharged.
    """
    ram_pages = 131072
    add_vm('liar', ram=ram_pages * PAGE)
    # (1) REFILL, take the credit, again.
    q = Qemu()
    try:
        q.hello('liar', vcpus=1, batch=64, populated=ram_pages, pages=ram_pages)
        slack = D.vm('liar')['hooks']['slack'] // PAGE
        cap = ram_pages + 2 * slack

        def consume():
            seq = q.refill(0, 0, 64)
            data, _ = q.recv()
            if data == b'':
                return True
            t, _, s, _, pages = GRANT_S.unpack(data)
            assert t == GRANT and s == seq
            q.set_credit(0, 0)
            return False
        dropped, peak = read_charge_until_drop(q, 'liar', consume)
        assert dropped, 'still attached, %d pages charged for %d of RAM' % (
            D.vm('liar')['memory.current'] // PAGE, ram_pages)
        assert peak <= cap, (peak, cap)
    finally:
        q.close()
    wait_detached('liar')
    assert vm_current('liar') == 0
    # (2) Debt, which vmcgd charges whatever the limits.
    q = Qemu()
    try:
        q.hello('liar', vcpus=1, batch=64, populated=ram_pages, pages=ram_pages)

        def debt():
            if q.credit(1) >= 0:
                q.set_credit(1, -4096)
            time.sleep(0.05)
            return False
        dropped, peak = read_charge_until_drop(q, 'liar', debt)
        assert dropped, 'still attached, %d pages charged for %d of RAM' % (
            D.vm('liar')['memory.current'] // PAGE, ram_pages)
        assert peak <= cap, (peak, cap)
    finally:
        q.close()
    wait_detached('liar')
    assert vm_current('liar') == 0
    # (3) A REFILL no honest QEMU sends: want above the batch and the chunk, need above a chunk.
    for need, want in ((0, 4096), (65, 65)):
        q = Qemu()
        try:
            q.hello('liar', vcpus=1, batch=64, populated=10)
            q.refill(0, need, want)
            assert q.dropped(), 'REFILL need %d want %d with batch and chunk 64' % (need, want)
        finally:
            q.close()
        wait_detached('liar')
        assert vm_current('liar') == 0


CHILD_HELLO = r"""
import os, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.settimeout(5)
s.connect(sys.argv[1])
pkt = bytes.fromhex(sys.argv[2])
pid = struct.pack('=I', os.getpid())
s.send(pkt[:32] + pid + pkt[36:])  # the HELLO's pid field: its own, as QEMU would
data = s.recv(8192)
print(data.hex(), flush=True)
"""


def child_hello(name):
    """A child of this process (this process is the VM's QEMU per QMP) says
    HELLO for @name with its own pid, which SO_PEERCRED confirms: the answer."""
    out = subprocess.run([sys.executable, '-c', CHILD_HELLO, D.hooks_socket,
                          hello_packet(name).hex()],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    data = bytes.fromhex(out.stdout.strip())
    assert HDR.unpack_from(data)[0] == REJECT, 'the child was answered %r' % (data[:16],)
    return parse_reject(data)


@test
def hello_from_a_child():
    """
    VM kid, QEMU pid X (this process, per its QMP socket). X's child, pid Y,
    says HELLO for kid with pid Y: refused with EPERM while vmcgd knows X;
    once kid's QMP connection is gone (QEMU pid unknown) refused with EAGAIN,
    as is X itself. Before: the HELLO was accepted whenever the pid was not
    known ("connecting" or "gone"), and its populated pages charged.
    """
    assert struct.unpack_from('=I', hello_packet('kid'), 32)[0] == os.getpid()
    fake = add_vm('kid')
    before = snapshot()
    err, reason = child_hello('kid')
    assert err == errno.EPERM, (err, reason)
    assert 'per its QMP socket' in reason, reason
    time.sleep(0.1)
    after = snapshot()
    assert not diff(before, after), diff(before, after)
    # QEMU's QMP connection goes away: the VM is "gone", its pid unknown.
    fake.close()
    wait_until(lambda: D.vm('kid')['state'] == 'gone', what='kid gone')
    before = snapshot()
    err, reason = child_hello('kid')
    assert err == errno.EAGAIN, (err, reason)
    refused(lambda: [hello_packet('kid')], errno.EAGAIN)
    time.sleep(0.1)
    after = snapshot()
    assert not diff(before, after), diff(before, after)
    assert D.vm('kid')['mode'] == 'sampling'


# The flood: as root and as nobody with the socket's group (0660 root:root
# here, so group 0), PER_ATTACKER connections each, none ever says HELLO.
NOFILE = 32
PER_ATTACKER = 24
NOBODY = 65534
SYSTEM_PYTHON = '/usr/bin/python3'
FLOODER = r"""
import socket, sys, time
socks = []
for i in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.setblocking(False)
    try:
        s.connect(sys.argv[1])
    except BlockingIOError:
        pass  # the backlog is full: in once vmcgd accepts
    except OSError as e:
        print('connect %d: %s' % (i, e), file=sys.stderr)
        continue
    socks.append((s, time.monotonic()))
print(len(socks), flush=True)
# Report when each is closed by vmcgd (EOF or reset), up to a deadline.
deadline = time.monotonic() + float(sys.argv[3])
closed = []
while socks and time.monotonic() < deadline:
    for s, t0 in list(socks):
        try:
            d = s.recv(4096)
        except BlockingIOError:
            continue
        except OSError:
            d = b''
        if d == b'':
            closed.append(time.monotonic() - t0)
            socks.remove((s, t0))
            s.close()
    time.sleep(0.05)
print(' '.join('%.2f' % c for c in closed), flush=True)
print(len(socks), flush=True)
"""


def proc_cpu_ticks(pid):
    f = open('/proc/%d/stat' % pid).read().rsplit(')', 1)[1].split()
    return int(f[11]) + int(f[12])  # utime + stime (fields 14, 15)


def hooks_log_lines(d):
    return sum(1 for ln in d.log_text().splitlines() if 'hooks' in ln)


class LimitedDaemon(Daemon):
    """vmcgd with RLIMIT_NOFILE NOFILE (soft and hard): prlimit sets it, then execs."""

    def command(self):
        return ['prlimit', '--nofile=%d:%d' % (NOFILE, NOFILE), '--'] + super().command()


@test
def fd_exhaustion():
    """
    vmcgd at RLIMIT_NOFILE 32; 48 connections that never say HELLO (24 as
    root, 24 as nobody in the socket's group): accept() runs out of
    descriptors. Before: vmcgd spun at 100 % CPU logging "hooks: accept:
    Too many open files" thousands of times a second, and the silent
    connections stayed forever. Now: the listener backs off, CPU and log
    stay small, every silent connection is closed (the HELLO deadline, 3 s,
    or the per-uid cap, 16), then a real HELLO attaches.
    """
    if os.geteuid() != 0:
        raise tap.Skip('not root: cannot run the flood as another user')
    if not shutil.which('prlimit') or not shutil.which('setpriv'):
        raise tap.Skip('prlimit/setpriv missing (util-linux)')
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        raise tap.Skip('no %s for the attacker to run' % SYSTEM_PYTHON)
    hz = os.sysconf('SC_CLK_TCK')
    with LimitedDaemon(config=CONF) as d:
        os.chmod(d.tmpdir, 0o755)  # nobody reaches the socket; its group decides
        add_vm('flood', d=d)
        lines0 = hooks_log_lines(d)
        pid = d.proc.pid
        limit = open('/proc/%d/limits' % pid).read()
        assert [ln for ln in limit.splitlines() if 'open files' in ln and
                ' %d ' % NOFILE in ln], limit
        floods = []
        for who in (['setpriv', '--reuid=%d' % NOBODY, '--regid=%d' % NOBODY, '--groups=0',
                     SYSTEM_PYTHON], [SYSTEM_PYTHON]):
            floods.append(subprocess.Popen(who + ['-c', FLOODER, d.hooks_socket,
                                                  str(PER_ATTACKER), '25'],
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                           text=True))
        opened = [int(f.stdout.readline()) for f in floods]
        assert opened == [PER_ATTACKER, PER_ATTACKER], opened
        time.sleep(0.3)
        nfd = len(os.listdir('/proc/%d/fd' % pid))
        cpu0, log0, t0 = proc_cpu_ticks(pid), hooks_log_lines(d), time.monotonic()
        time.sleep(2.0)
        cpu = (proc_cpu_ticks(pid) - cpu0) / hz
        dt = time.monotonic() - t0
        logged = hooks_log_lines(d) - log0
        text = d.log_text()
        # Every flood connection closed by vmcgd, the first ones by the deadline.
        results = []
        for f in floods:
            out, err = f.communicate(timeout=60)
            lines = out.splitlines()
            results.append(([float(x) for x in lines[0].split()], int(lines[1]), err))
        tap.diag('at EMFILE (%d fds open): %.3f s CPU in %.1f s, %d hooks log lines '
                 '(%d bytes of log); closed after %s s' % (
                     nfd, cpu, dt, logged, len(text),
                     ' '.join('%.1f' % c for c in sorted(results[0][0]))))
        assert 'Too many open files' in text, 'never out of descriptors (%d open):\n%s' % (
            nfd, text[-3000:])
        assert cpu < 0.25 * dt, 'vmcgd used %.2f s of CPU in %.2f s at EMFILE' % (cpu, dt)
        assert logged <= 12, '%d hooks log lines in %.1f s:\n%s' % (logged, dt, text[-2000:])
        for closed, left, err in results:
            assert left == 0, '%d connections still open after 25 s (%s)' % (left, err)
            assert len(closed) == PER_ATTACKER, closed
            # The first accepted wait exactly the deadline, give or take a tick.
            first = min(c for c in closed if c > 1.0)
            assert 2.5 <= first <= 5.0, closed
        # The listener is back: a real HELLO attaches.
        q = Qemu(d.hooks_socket)
        try:
            w = q.hello('flood', populated=5)
            assert w['charged'] == 5, w
            assert d.vm('flood')['mode'] == 'hooks'
        finally:
            q.close()
        total = hooks_log_lines(d) - lines0
        tap.diag('hooks log lines over the whole flood: %d' % total)


def setup():
    """One vmcgd for every test (they talk to it in turn, as QEMUs would)."""
    global D
    if not hasattr(socket, 'recv_fds'):
        raise tap.Skip('Python %s has no socket.recv_fds' % sys.version.split()[0])
    d = Daemon(config=CONF)
    d.__enter__()
    D = d


def cleanup():
    """The daemon must have survived every hostile client."""
    for f in FAKES.values():
        f.close()
    if D is None:
        return
    alive = D.running()
    tail = D.tail()
    D.close(failed=not alive)
    assert alive, 'vmcgd died:\n' + tail


if __name__ == '__main__':
    sys.exit(tap.main(TESTS, setup=setup, cleanup=cleanup))
