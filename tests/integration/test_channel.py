#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The guest pressure channel (docs/guest-channel.md) against a real vmcgd.

This process plays QEMU twice over: it serves each VM's QMP socket
(FakeQmp, from test_hooks_proto.py: the VM becomes ready and its QEMU pid is
this process) and it listens on each VM's channel socket itself, as QEMU's
chardev (server=on) would, with an in-test guest agent on the accepted
connection. Memory use without a guest: the VM's RAM is an anonymous
MADV_DONTFORK mapping of exactly its RAM size in this process, which
vmcgd's sampler finds in /proc/<pid>/smaps and charges as resident guest
RAM; touching part of it puts the group over memory.high.

    /            /p: memory.high 16M          /q: no limits
                 |-- press (64M RAM, 40M touched)   |-- calm (80M RAM)

- hello: vmcgd connects, says hello (version 1, the VM, the report rate)
  and the level at once; the guest's hello brings the level again, and a
  hello only if vmcgd's had not gone out since the guest's last one (no
  ping-pong); the API
  shows the channel connected with the agent; channel_connected;
- level: /p over high -> a pressure message with the level the API shows
  for /p, within 2 s, with a reclaim hint; calm stays at "none";
- report: a report reaches GET /v1/vms/<name> and the metrics;
- hostile: junk, an oversized line, a report out of bounds, a flood: all
  dropped and counted, the guest muted (channel_muted), while the other
  VM's channel and the API keep answering at once;
- silent: a channel peer that accepts and never reads nor writes: the
  channel stays "disconnected", nothing else waits on it;
- reconnect: the chardev goes away and comes back: vmcgd says hello again;
- unmute: when a mute runs out vmcgd says hello and the level again.

Python 3 standard library only. Prints TAP.
"""
import json
import mmap
import os
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vmcgtest import tap  # noqa: E402
from vmcgtest.daemon import ApiError, Daemon  # noqa: E402
from test_hooks_proto import FakeQmp  # noqa: E402

MIB = 1 << 20
D = None
FAKES = []
MAPS = []
GUESTS = {}


def wait_until(cond, timeout=5.0, what='condition'):
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError('timed out waiting for ' + what)
        time.sleep(0.02)


class Chardev:
    """The host end of a virtio-serial port as QEMU serves it: a listening
    unix socket, one client at a time. The accepted connection is the
    guest agent's port; lines read from it are in self.lines."""

    def __init__(self, path):
        self.path = path
        self.lines = []
        self.cond = threading.Condition()
        self.conn = None
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            with self.cond:
                self.conn = c
                self.cond.notify_all()
            buf = b''
            while True:
                try:
                    data = c.recv(65536)
                except OSError:
                    data = b''
                if not data:
                    break
                buf += data
                while b'\n' in buf:
                    line, buf = buf.split(b'\n', 1)
                    with self.cond:
                        self.lines.append(json.loads(line))
                        self.cond.notify_all()

    def wait_conn(self, timeout=5.0):
        with self.cond:
            self.cond.wait_for(lambda: self.conn is not None, timeout)
        assert self.conn is not None, 'vmcgd never connected to ' + self.path
        return self.conn

    def expect(self, pred, timeout=5.0, what='message'):
        """The first message from vmcgd (since the last expect) that @pred accepts."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for i, m in enumerate(self.lines):
                    if pred(m):
                        del self.lines[:i + 1]
                        return m
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError('no %s from vmcgd in %.1f s; got %r' %
                                         (what, timeout, self.lines[-5:]))
                self.cond.wait(left)

    def send(self, obj):
        data = obj if isinstance(obj, bytes) else (json.dumps(obj) + '\n').encode()
        self.wait_conn().sendall(data)

    def close(self):
        try:
            self.listener.close()
        except OSError:
            pass
        if self.conn:
            try:
                self.conn.shutdown(socket.SHUT_RDWR)
                self.conn.close()
            except OSError:
                pass


def report(seq, some=1.5, total=1000, available=32 * MIB):
    return {'type': 'report', 'seq': seq,
            'psi': {'some': {'avg10': some, 'total': total},
                    'full': {'avg10': 0.25, 'total': total // 2}},
            'mem': {'available': available, 'file': 8 * MIB, 'anon': 16 * MIB}}


def guest_ram(size, touch):
    """An anonymous mapping of exactly @size that vmcgd's sampler takes for guest RAM."""
    m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    m.madvise(mmap.MADV_DONTFORK)
    for off in range(0, touch, 4096):
        m[off] = 1
    MAPS.append(m)
    return m


def add_vm(name, group, ram, touch=0, channel=True):
    qmp = str(D.tmpdir / ('%s.qmp' % name))
    FAKES.append(FakeQmp(qmp, ram))
    guest_ram(ram, touch)
    body = {'name': name, 'qmp': qmp, 'group': group}
    ch = None
    if channel:
        path = str(D.tmpdir / ('%s.pressure' % name))
        ch = Chardev(path)
        GUESTS[name] = ch
        body['channel'] = path
    D.post('/v1/vms', body)
    wait_until(lambda: D.vm(name)['state'] == 'ready' and D.vm(name)['ram'] == ram,
               what='%s ready' % name)
    return ch


def hello(ch):
    ch.send({'type': 'hello', 'version': 1, 'agent': 'test-agent 1.0', 'future': [1]})


TESTS = []


def test(fn):
    TESTS.append((fn.__name__, fn))
    return fn


@test
def hello_and_level_at_once():
    ch = GUESTS['calm']
    h = ch.expect(lambda m: m.get('type') == 'hello', what='hello')
    assert h == {'type': 'hello', 'version': 1, 'vm': 'calm', 'report-interval-ms': 1000}, h
    p = ch.expect(lambda m: m.get('type') == 'pressure', what='pressure')
    assert p['level'] == 'none' and p['seq'] == 1 and p['group'] == '/q', p
    assert p['reclaim-bytes'] == 0 and p['reclaim-within-ms'] == 0, p
    assert D.vm('calm')['channel']['state'] == 'disconnected'
    # The guest's answer: vmcgd's hello went out since, so no hello back
    # (no ping-pong), only the level.
    hello(ch)
    p2 = ch.expect(lambda m: m.get('type') == 'pressure', what='the level again')
    assert p2['seq'] == 2, p2
    time.sleep(0.5)
    with ch.cond:
        assert not [m for m in ch.lines if m.get('type') == 'hello'], ch.lines
    # Again, as an agent that restarted: now it is answered, hello and level.
    hello(ch)
    ch.expect(lambda m: m.get('type') == 'hello', what='hello to a restarted agent')
    p3 = ch.expect(lambda m: m.get('type') == 'pressure', what='the level once more')
    assert p3['seq'] == 3, p3
    c = wait_until(lambda: (lambda c: c['state'] == 'connected' and c)(D.vm('calm')['channel']),
                   what='connected')
    assert c['version'] == 1 and c['agent'] == 'test-agent 1.0', c
    assert c['report'] is None and c['dropped'] == 0, c
    wait_until(lambda: any(e['vm'] == 'calm' for e in D.events_of('channel_connected')),
               what='channel_connected')


@test
def level_pushed_over_high():
    ch = GUESTS['press']
    hello(ch)
    ch.expect(lambda m: m.get('type') == 'pressure', what='first level')
    t0 = time.monotonic()
    D.put('/v1/groups/p', {'memory.high': '16M'})
    p = ch.expect(lambda m: m.get('type') == 'pressure' and m['level'] != 'none',
                  timeout=2.0, what='a level above none')
    took = time.monotonic() - t0
    tap.diag('level %s pushed %.2f s after /p went over high; reclaim-bytes %d within %d ms'
             % (p['level'], took, p['reclaim-bytes'], p['reclaim-within-ms']))
    assert p['group'] == '/p', p
    assert p['reclaim-bytes'] > 0 and p['reclaim-within-ms'] > 0, p
    levels = ('none', 'low', 'medium', 'critical')
    api = D.group('/p')['vmpressure']
    assert levels.index(api) >= 1, api
    # The calm VM's chain is /q and /: it gets what / shows (vmpressure goes up the tree).
    time.sleep(0.5)
    root = D.group('/')['vmpressure']
    with GUESTS['calm'].cond:
        got = [m['level'] for m in GUESTS['calm'].lines if m.get('type') == 'pressure']
    tap.diag('/ shows %s, /q shows %s; calm was sent %r' % (root, D.group('/q')['vmpressure'],
                                                             got))
    if root == 'none' and D.group('/q')['vmpressure'] == 'none':
        assert all(lv == 'none' for lv in got), got
    else:
        assert got and got[-1] == max(root, D.group('/q')['vmpressure'], key=levels.index), got
    D.put('/v1/groups/p', {'memory.high': 'max'})


@test
def report_reaches_the_api_and_metrics():
    ch = GUESTS['calm']
    ch.send(report(1, some=2.5, total=123456))
    r = wait_until(lambda: D.vm('calm')['channel']['report'], what='the report in the API')
    assert r['psi'] == {'some-avg10': 2.5, 'full-avg10': 0.25, 'some-total-usec': 123456,
                        'full-total-usec': 61728}, r
    assert r['available'] == 32 * MIB and r['file'] == 8 * MIB and r['anon'] == 16 * MIB, r
    assert 0 <= r['age-usec'] < 5 * 10**6, r
    text = D.request('GET', '/metrics')
    assert 'vmcg_vm_channel_connected{vm="calm",group="/q"} 1' in text, text[-2000:]
    assert 'vmcg_vm_guest_psi_avg10_percent{vm="calm",group="/q",kind="some"} 2.50' in text
    assert 'vmcg_vm_channel_dropped_total{vm="calm",group="/q"} 0' in text


@test
def hostile_guest_dropped_muted_others_fine():
    ch = GUESTS['press']
    calm = GUESTS['calm']
    d0 = D.vm('press')['channel']['dropped']
    # One of each: junk, not an object, oversized, out of bounds, unknown type, too fast.
    ch.send(b'hello there\n')
    ch.send(b'[1,2,3]\n')
    ch.send(b'{"type":"report","seq":1,"pad":"' + b'x' * 5000 + b'"}\n')
    ch.send(report(1, some=150.0))
    ch.send({'type': 'gossip'})
    ch.send(report(2))
    ch.send(report(3))
    ch.send(report(4))  # the bucket holds two: this one and maybe the last are too fast
    wait_until(lambda: D.vm('press')['channel']['dropped'] >= d0 + 6, what='drops counted')
    assert D.vm('press')['channel']['state'] == 'connected'
    # A flood: 200 junk lines in one go -> muted (more than 20/s, and 16 malformed).
    t0 = time.monotonic()
    ch.send(b'{"junk":1}\n' * 200)
    wait_until(lambda: D.vm('press')['channel']['state'] == 'muted', what='muted')
    wait_until(lambda: any(e['vm'] == 'press' for e in D.events_of('channel_muted')),
               what='channel_muted')
    dropped = wait_until(lambda: (lambda n: n >= d0 + 206 and n)(
        D.vm('press')['channel']['dropped']), what='every flood line counted')
    tap.diag('dropped %d messages; muted %.2f s after the flood began'
             % (dropped - d0, time.monotonic() - t0))
    # Muted: a good report is read and dropped, and the level still flows.
    ch.send(report(10))
    wait_until(lambda: D.vm('press')['channel']['dropped'] > dropped, what='muted drop')
    # Meanwhile the other guest is served at once, and the API answers.
    calm.send(report(2, some=3.0, total=200000))
    t1 = time.monotonic()
    wait_until(lambda: D.vm('calm')['channel']['report']['psi']['some-avg10'] == 3.0,
               what="the other VM's report")
    tap.diag("the other VM's report in the API %.0f ms later" % ((time.monotonic() - t1) * 1000))
    t2 = time.monotonic()
    D.get('/v1/status')
    assert time.monotonic() - t2 < 1.0
    assert D.running()


def vmcgd_cpu_sec():
    f = open('/proc/%d/stat' % D.proc.pid).read().rsplit(')', 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf('SC_CLK_TCK')


@test
def cpu_per_message():
    """vmcgd's CPU for 200k lines of a muted guest (read, cut, counted), end to end."""
    ch = GUESTS['press']
    assert D.vm('press')['channel']['state'] == 'muted'
    n = 200000
    d0 = D.vm('press')['channel']['dropped']
    c0 = vmcgd_cpu_sec()
    ch.send(b'{"type":"report","seq":1}\n' * n)
    wait_until(lambda: D.vm('press')['channel']['dropped'] >= d0 + n, timeout=30,
               what='the flood read')
    c1 = vmcgd_cpu_sec()
    tap.diag('vmcgd CPU per muted line: %.2f us (%.2f s for %d lines, 26 bytes each)'
             % ((c1 - c0) * 1e6 / n, c1 - c0, n))
    assert (c1 - c0) * 1e6 / n < 50, c1 - c0


@test
def silent_peer_costs_nothing():
    path = str(D.tmpdir / 'silent.pressure')
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lst.bind(path)
    lst.listen(1)
    qmp = str(D.tmpdir / 'silent.qmp')
    FAKES.append(FakeQmp(qmp, 72 * MIB))
    guest_ram(72 * MIB, 0)
    D.post('/v1/vms', {'name': 'silent', 'qmp': qmp, 'group': '/q', 'channel': path})
    conn, _ = lst.accept()  # never read, never written
    try:
        time.sleep(1.0)
        c = D.vm('silent')['channel']
        assert c['state'] == 'disconnected' and c['agent'] is None, c
        t0 = time.monotonic()
        D.get('/v1/vms')
        assert time.monotonic() - t0 < 1.0
        # The others are still served.
        GUESTS['calm'].send(report(3, some=4.0, total=300000))
        wait_until(lambda: D.vm('calm')['channel']['report']['psi']['some-avg10'] == 4.0,
                   what="the other VM's report")
    finally:
        conn.close()
        lst.close()
        D.delete('/v1/vms/silent')


@test
def reconnect_after_the_chardev_restarts():
    ch = GUESTS['calm']
    ch.close()
    os.unlink(ch.path)
    wait_until(lambda: D.vm('calm')['channel']['state'] == 'disconnected', what='down')
    wait_until(lambda: any(e['vm'] == 'calm' for e in D.events_of('channel_disconnected')),
               what='channel_disconnected')
    time.sleep(0.5)
    ch2 = Chardev(ch.path)
    GUESTS['calm'] = ch2
    t0 = time.monotonic()
    h = ch2.expect(lambda m: m.get('type') == 'hello', timeout=15.0, what='hello after restart')
    tap.diag('reconnected %.2f s after the chardev came back' % (time.monotonic() - t0))
    assert h['vm'] == 'calm'
    p = ch2.expect(lambda m: m.get('type') == 'pressure', what='the level after restart')
    assert p['seq'] == 1, p
    hello(ch2)
    wait_until(lambda: D.vm('calm')['channel']['state'] == 'connected', what='up again')


@test
def channel_setting_put_and_persisted():
    # PUT changes it; "" removes it; a relative path is refused like a QMP path.
    for bad in ('relative/path', '/' + 'x' * 107):
        try:
            D.put('/v1/vms/calm', {'channel': bad})
            raise AssertionError('accepted %r' % bad)
        except ApiError as e:
            assert e.status == 400, e
    path = GUESTS['calm'].path
    state = D.tmpdir / 'state'
    D.put('/v1/vms/calm', {'channel': ''})
    assert D.vm('calm')['channel'] is None
    D.put('/v1/vms/calm', {'channel': path})
    assert D.vm('calm')['channel']['path'] == path
    text = ''.join(p.read_text(errors='replace') for p in D.tmpdir.glob('state*')
                   if p.is_file())
    assert '"channel"' in text and path in text, (state, text[-500:])


@test
def unmute_says_hello_again():
    """When the mute runs out vmcgd says hello and sends the level: a guest
    whose hello was dropped while muted (its agent restarted) learns the
    host is there (found end to end by test_channel_guest.py)."""
    ch = GUESTS['press']
    with ch.cond:
        del ch.lines[:]
    h = ch.expect(lambda m: m.get('type') == 'hello', timeout=40.0, what='hello when the mute ends')
    assert h['vm'] == 'press', h
    ch.expect(lambda m: m.get('type') == 'pressure', what='the level after it')
    wait_until(lambda: D.vm('press')['channel']['state'] != 'muted', what='not muted')
    # The guest answers as a restarted agent would; its reports count again.
    hello(ch)
    ch.send(report(1, some=5.0, total=500000))
    wait_until(lambda: (D.vm('press')['channel']['report'] or {}).get('psi', {}).get('some-avg10') == 5.0,
               what='a report after the mute')


def setup():
    global D
    if not hasattr(mmap, 'MADV_DONTFORK'):
        raise tap.Skip('Python %s has no mmap.MADV_DONTFORK' % sys.version.split()[0])
    d = Daemon(config='')
    d.__enter__()
    D = d
    D.follow_events()
    D.put('/v1/groups/p', {})
    D.put('/v1/groups/q', {})
    add_vm('calm', '/q', 80 * MIB)
    add_vm('press', '/p', 64 * MIB, touch=40 * MIB)
    wait_until(lambda: D.vm('press')['memory.current'] >= 32 * MIB, what='press charged')


def cleanup():
    for g in GUESTS.values():
        g.close()
    for f in FAKES:
        f.close()
    if D is None:
        return
    alive = D.running()
    tail = D.tail()
    D.close(failed=not alive)
    assert alive, 'vmcgd died:\n' + tail


if __name__ == '__main__':
    sys.exit(tap.main(TESTS, setup=setup, cleanup=cleanup))
