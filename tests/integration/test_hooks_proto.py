#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The hooks protocol (include/vmcg/hooks-abi.h) against a real vmcgd.

This process plays the patched QEMU: it connects to vmcgd's hooks socket
(AF_UNIX, SOCK_SEQPACKET), says HELLO with its own pid (vmcgd checks it
against SO_PEERCRED), maps the WELCOME's memfd, asks for credit and gives
it back, and watches the charge through the API. The VMs are registered
through the API with a QMP socket nobody serves: they stay "connecting",
so sampling never touches them and every page of their charge is the
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

Python 3 standard library only. Prints TAP.
"""
import errno
import mmap
import os
import socket
import struct
import sys
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

    def __init__(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.settimeout(RECV_TIMEOUT)
        self.sock.connect(D.hooks_socket)
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


# ---- the API side ----

def add_vm(name, group='/'):
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


def diff(a, b, path=''):
    """Where two snapshots differ, for the assertion message."""
    if isinstance(a, dict) and isinstance(b, dict):
        return '; '.join(filter(None, (diff(a.get(k), b.get(k), path + '/' + str(k))
                                       for k in sorted(set(a) | set(b)))))
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return '; '.join(filter(None, (diff(x, y, '%s[%d]' % (path, i))
                                       for i, (x, y) in enumerate(zip(a, b)))))
    return '' if a == b else '%s: %r -> %r' % (path, a, b)


def wait_until(cond, timeout=5.0, what='condition'):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError('timed out waiting for %s' % what)


def wait_detached(name):
    wait_until(lambda: D.vm(name)['mode'] == 'sampling', what='%s detached' % name)


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
        q.hello('m1', vcpus=2, batch=64, populated=300)
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
    assert after == before, 'state changed: ' + diff(before, after)
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
    assert after == before, diff(before, after)
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
    assert after == before, diff(before, after)
    add_then_probe()


def setup():
    """One vmcgd for every test (they talk to it in turn, as QEMUs would)."""
    global D
    if not hasattr(socket, 'recv_fds'):
        raise tap.Skip('Python %s has no socket.recv_fds' % sys.version.split()[0])
    d = Daemon(config='')
    d.__enter__()
    D = d


def cleanup():
    """The daemon must have survived every hostile client."""
    if D is None:
        return
    alive = D.running()
    tail = D.tail()
    D.close(failed=not alive)
    assert alive, 'vmcgd died:\n' + tail


if __name__ == '__main__':
    sys.exit(tap.main(TESTS, setup=setup, cleanup=cleanup))
