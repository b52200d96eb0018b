#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The control-plane API over the real socket of a real vmcgd.

Starts the vmcgd binary ($VMCGD, default build/daemon/vmcgd) with --socket
in a temporary directory, no config file and a state file of its own, and
exercises every endpoint and every refusal of docs/api.md:

- each endpoint's success path and the shape of what it returns;
- each malformed request gets its 4xx and {"error":{"code","message"}},
  and leaves the daemon's state exactly as it was (GET before and after);
- a writer that is not root is refused, a reader is not (run as nobody);
- the event stream delivers vm_attached / vm_detached for a VM registered
  with a QMP socket nobody listens on (it stays "connecting") and removed;
- /metrics is valid Prometheus text;
- the socket: directory 0755, socket 0666, a second daemon refused, a
  stale socket file taken over after a crash.
And the CLI's exit codes, if vmcgctl is found ($VMCGCTL, default
build/tools/vmcgctl).

Python 3 standard library only. Prints TAP. Without a vmcgd binary every
test is skipped, with the reason.
"""
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from vmcgtest import tap  # noqa: E402
from vmcgtest.daemon import Daemon, UnixHTTPConnection, http_request, vmcgd_binary  # noqa: E402
VMCGCTL = os.environ.get('VMCGCTL') or os.path.join(ROOT, 'build', 'tools', 'vmcgctl')

# Seconds to wait for an event to arrive.
EVENT_TIMEOUT = 10

Skip = tap.Skip

DAEMON = None  # the vmcgd every test talks to (setup())
QMP_NOWHERE = None


def request(method, path, body=None, headers=None, sock=None, chunked=False):
    return http_request(sock or DAEMON.socket, method, path, body, headers, chunked)


def get_json(path):
    r = request('GET', path)
    assert r.status == 200, r
    return r.json()


def snapshot():
    """Everything a client can see of the state, minus what moves on its own."""
    def strip(g):
        g = dict(g)
        g.pop('memory.pressure', None)  # averages decay with time
        g.pop('vmpressure', None)
        g['children'] = [strip(c) if isinstance(c, dict) else c for c in g['children']]
        return g
    return strip(get_json('/v1/groups')), get_json('/v1/vms')


def check_error(r, status, code):
    assert r.status == status, 'expected %d, got %r' % (status, r)
    assert r.headers.get('Content-Type', '').startswith('application/json'), r.headers
    err = r.json()['error']
    assert err['code'] == code, 'expected code %s, got %r' % (code, err)
    assert isinstance(err['message'], str) and err['message'], err
    return err


def find_group(tree, path):
    if tree['path'] == path:
        return tree
    for c in tree['children']:
        if isinstance(c, dict):
            g = find_group(c, path)
            if g:
                return g
    return None


def put_group(path, body=None, expect=None):
    r = request('PUT', '/v1/groups' + path, body if body is not None else {})
    if expect:
        assert r.status == expect, r
    return r


# ---- tests ----

TESTS = []


def test(name):
    def register(fn):
        TESTS.append((name, fn))
        return fn
    return register


@test('socket: directory 0755, socket 0666')
def _():
    st = os.stat(os.path.dirname(DAEMON.socket))
    assert stat.S_IMODE(st.st_mode) == 0o755, oct(st.st_mode)
    st = os.stat(DAEMON.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o666, oct(st.st_mode)


@test('GET /v1/groups: the root and every field')
def _():
    root = get_json('/v1/groups')
    assert root['path'] == '/'
    for k in ('memory.current', 'memory.peak', 'memory.min', 'memory.low'):
        assert isinstance(root[k], int) and root[k] >= 0, (k, root[k])
    for k in ('memory.high', 'memory.max'):
        assert root[k] == 'max' or isinstance(root[k], int), (k, root[k])
    for k in ('memory.events', 'memory.events.local'):
        assert sorted(root[k]) == sorted(['low', 'high', 'max', 'oom', 'oom_kill']), root[k]
        assert all(isinstance(v, int) for v in root[k].values())
    p = root['memory.pressure']
    for s in ('some', 'full'):
        for w in ('avg10', 'avg60', 'avg300'):
            assert isinstance(p[s][w], (int, float)), p
        assert isinstance(p[s]['total'], int), p
    assert re.match(r'some avg10=\d+\.\d\d avg60=\d+\.\d\d avg300=\d+\.\d\d total=\d+\n'
                    r'full avg10=', p['text']), p['text']
    assert root['vmpressure'] in ('none', 'low', 'medium', 'critical')
    assert isinstance(root['memory.stat'], dict) and 'guest' in root['memory.stat']
    assert all(isinstance(v, int) for v in root['memory.stat'].values())
    assert isinstance(root['memory.oom.group'], bool)
    assert root['oom-action'] in ('notify', 'pause', 'destroy')
    assert isinstance(root['vms'], list) and isinstance(root['children'], list)


@test('PUT /v1/groups/<path>: 201 when created, with Location and the group')
def _():
    r = put_group('/tenants', {'memory.max': '4G', 'memory.high': 3 << 30})
    assert r.status == 201, r
    assert r.headers['Location'] == '/v1/groups/tenants'
    g = r.json()
    assert g['path'] == '/tenants'
    assert g['memory.max'] == 4 << 30 and g['memory.high'] == 3 << 30
    assert g['memory.min'] == 0 and g['memory.low'] == 0


@test('PUT /v1/groups/<path>: 200 when updated; sizes as bytes, strings, "max"')
def _():
    put_group('/tenants/acme', {}, expect=201)
    r = put_group('/tenants/acme', {'memory.min': '512M', 'memory.low': 1 << 30,
                                    'memory.high': '1.5G', 'memory.max': 'max',
                                    'memory.oom.group': True, 'oom-action': 'pause',
                                    'overhead-in-max': True})
    assert r.status == 200, r
    g = r.json()
    assert g['memory.min'] == 512 << 20
    assert g['memory.low'] == 1 << 30
    assert g['memory.high'] == 3 << 29
    assert g['memory.max'] == 'max'
    assert g['memory.oom.group'] is True
    assert g['oom-action'] == 'pause'
    assert g['overhead-in-max'] is True
    # and only what is given changes
    g = put_group('/tenants/acme', {'memory.max': '2G'}, expect=200).json()
    assert g['memory.max'] == 2 << 30 and g['memory.min'] == 512 << 20


@test('cluster.memory.max without [cluster] etcd: the group is capped at it on this host')
def _():
    put_group('/cl', {}, expect=201)
    assert get_json('/v1/groups/cl')['cluster'] is None
    g = put_group('/cl', {'cluster.memory.max': '1G'}, expect=200).json()
    c = g['cluster']
    assert c['memory.max'] == 1 << 30 and c['state'] == 'local', c
    assert c['grant'] == 1 << 30 and c['enforced'] == 1 << 30 and c['quota'] == 1 << 30, c
    assert g['memory.max'] == 'max'  # the operator's memory.max stays as set
    assert get_json('/v1/status')['cluster'] is None  # not joined to any cluster
    m = request('GET', '/metrics').body.decode()
    assert 'vmcg_cluster_enforced_bytes{group="/cl"} 1073741824' in m, m[-2000:]
    # Kept across a restart (the state file).
    DAEMON.restart()
    assert get_json('/v1/groups/cl')['cluster']['memory.max'] == 1 << 30
    # Refused on the root, and not a negative or absurd size; nothing changes.
    before = snapshot()
    check_error(put_group('/', {'cluster.memory.max': '1G'}), 403, 'permission_denied')
    check_error(put_group('/cl', {'cluster.memory.max': '-1'}), 400, 'invalid_argument')
    check_error(put_group('/cl', {'cluster.memory.max': {'a': 1}}), 400, 'invalid_argument')
    assert snapshot() == before
    # "max": a local group again.
    g = put_group('/cl', {'cluster.memory.max': 'max'}, expect=200).json()
    assert g['cluster'] is None
    request('DELETE', '/v1/groups/cl')


@test('GET /v1/groups nests; GET /v1/groups/<path> lists child paths, ?recursive nests')
def _():
    put_group('/tenants/beta', expect=201)
    tree = get_json('/v1/groups')
    t = find_group(tree, '/tenants')
    assert t and sorted(c['path'] for c in t['children']) == ['/tenants/acme',
                                                             '/tenants/beta']
    g = get_json('/v1/groups/tenants')
    assert sorted(g['children']) == ['/tenants/acme', '/tenants/beta']
    g = get_json('/v1/groups/tenants?recursive')
    assert sorted(c['path'] for c in g['children']) == ['/tenants/acme', '/tenants/beta']
    assert get_json('/v1/groups/')['path'] == '/'
    r = request('GET', '/v1/groups/tenants?pretty')
    assert r.status == 200 and b'\n  ' in r.body


@test('HEAD is GET without a body')
def _():
    r = request('HEAD', '/v1/groups/tenants')
    assert r.status == 200 and r.body == b''


@test('PUT If-None-Match: * refuses an existing group (412 exists), If-Match: * a missing one')
def _():
    before = snapshot()
    check_error(request('PUT', '/v1/groups/tenants', {'memory.max': '1G'},
                        {'If-None-Match': '*'}), 412, 'exists')
    check_error(request('PUT', '/v1/groups/nowhere', {}, {'If-Match': '*'}), 412,
                'not_found')
    assert snapshot() == before
    r = request('PUT', '/v1/groups/tenants/gamma', {}, {'If-None-Match': '*'})
    assert r.status == 201, r
    r = request('PUT', '/v1/groups/tenants/gamma', {'memory.low': '1M'}, {'If-Match': '*'})
    assert r.status == 200, r


@test('POST /v1/groups/<path>/reclaim returns the planned bytes')
def _():
    r = request('POST', '/v1/groups/tenants/reclaim', {'bytes': '1G'})
    assert r.status == 200, r
    j = r.json()
    assert j['bytes'] == 1 << 30
    assert isinstance(j['planned'], int) and 0 <= j['planned'] <= 1 << 30
    r = request('POST', '/v1/groups/tenants/reclaim', {'bytes': 4096})
    assert r.status == 200, r
    check_error(request('POST', '/v1/groups/nowhere/reclaim', {'bytes': 4096}), 404,
                'not_found')


@test('DELETE /v1/groups/<path>: 204; busy with children; 404 when missing; root refused')
def _():
    put_group('/tenants/gone', expect=201)
    before = snapshot()
    check_error(request('DELETE', '/v1/groups/tenants'), 409, 'busy')
    check_error(request('DELETE', '/v1/groups/'), 409, 'busy')
    check_error(request('DELETE', '/v1/groups/tenants/nope'), 404, 'not_found')
    assert snapshot() == before
    r = request('DELETE', '/v1/groups/tenants/gone')
    assert r.status == 204, r
    assert request('GET', '/v1/groups/tenants/gone').status == 404


QMP_NOWHERE = None


@test('POST /v1/vms registers a QEMU (nothing listens: it stays connecting)')
def _():
    r = request('POST', '/v1/vms', {'name': 'web1', 'qmp': QMP_NOWHERE,
                                    'group': '/tenants/acme', 'floor': '256M',
                                    'oom-priority': -100})
    assert r.status == 201, r
    assert r.headers['Location'] == '/v1/vms/web1'
    vm = r.json()
    assert vm['name'] == 'web1' and vm['group'] == '/tenants/acme'
    assert vm['qmp'] == QMP_NOWHERE
    assert vm['floor'] == 256 << 20 and vm['oom-priority'] == -100
    assert 'web1' in get_json('/v1/groups/tenants/acme')['vms']
    # Nothing listens on its socket: the daemon keeps trying, and the VM is
    # "connecting" (not yet ready), not "gone" (it never came).
    time.sleep(1.5)
    vm = get_json('/v1/vms/web1')
    assert vm['state'] == 'connecting', 'state %r after failed connects' % vm['state']


@test('GET /v1/vms and /v1/vms/<name>: every field')
def _():
    vms = get_json('/v1/vms')
    assert [v['name'] for v in vms].count('web1') == 1
    vm = get_json('/v1/vms/web1')
    for k in ('name', 'group', 'memory.current', 'balloon', 'stats', 'mode', 'state', 'qmp',
              'pid', 'floor', 'oom-priority'):
        assert k in vm, k
    assert vm['state'] in ('connecting', 'ready', 'paused', 'gone'), vm
    assert vm['mode'] in ('sampling', 'hooks'), vm
    assert isinstance(vm['memory.current'], int)
    assert set(vm['balloon']) == {'target', 'actual', 'enforced', 'reason', 'migrating',
                                  'external'}, vm['balloon']
    # A qmp VM's balloon is driven, and it has none of libvirt's members.
    assert vm['balloon']['enforced'] is True and vm['balloon']['reason'] is None
    assert 'domain' not in vm and 'uuid' not in vm and 'metadata' not in vm, vm
    assert vm['stats'] is None or 'age-usec' in vm['stats']
    assert vm['pid'] is None or isinstance(vm['pid'], int)
    check_error(request('GET', '/v1/vms/nobody-here'), 404, 'not_found')


@test('POST /v1/vms: 409 for a taken name, 404 for a missing group, state unchanged')
def _():
    before = snapshot()
    check_error(request('POST', '/v1/vms', {'name': 'web1', 'qmp': QMP_NOWHERE}), 409,
                'exists')
    check_error(request('POST', '/v1/vms', {'name': 'web2', 'qmp': QMP_NOWHERE,
                                            'group': '/no/such'}), 404, 'not_found')
    assert snapshot() == before


@test('PUT /v1/vms/<name> moves and sets floor and priority')
def _():
    r = request('PUT', '/v1/vms/web1', {'group': '/tenants/beta', 'floor': '512M',
                                        'oom-priority': 50})
    assert r.status == 200, r
    vm = r.json()
    assert vm['group'] == '/tenants/beta' and vm['floor'] == 512 << 20
    assert vm['oom-priority'] == 50
    assert 'web1' in get_json('/v1/groups/tenants/beta')['vms']
    assert 'web1' not in get_json('/v1/groups/tenants/acme')['vms']
    before = snapshot()
    check_error(request('PUT', '/v1/vms/web1', {'group': '/no/such'}), 404, 'not_found')
    check_error(request('PUT', '/v1/vms/nobody-here', {'floor': 0}), 404, 'not_found')
    assert snapshot() == before


@test('a VM name with spaces and quotes round-trips through the URL')
def _():
    name = 'db "primary" 1'
    r = request('POST', '/v1/vms', {'name': name, 'qmp': QMP_NOWHERE})
    assert r.status == 201, r
    path = '/v1/vms/' + urlquote(name)
    assert r.headers['Location'] == path
    assert get_json(path)['name'] == name
    assert request('DELETE', path).status == 204


def urlquote(s):
    import urllib.parse
    return urllib.parse.quote(s, safe='')


@test('GET /v1/events: vm_attached and vm_detached for POST and DELETE /v1/vms')
def _():
    events = []
    ready = threading.Event()
    done = threading.Event()

    def reader():
        conn = UnixHTTPConnection(DAEMON.socket, timeout=EVENT_TIMEOUT + 5)
        conn.request('GET', '/v1/events')
        r = conn.getresponse()
        assert r.status == 200
        assert r.headers['Content-Type'].startswith('text/event-stream')
        ready.set()
        etype = None
        deadline = time.monotonic() + EVENT_TIMEOUT
        while time.monotonic() < deadline:
            line = r.readline()
            if not line:
                break
            line = line.decode().rstrip('\n')
            if line.startswith('event: '):
                etype = line[7:]
            elif line.startswith('data: '):
                events.append((etype, json.loads(line[6:])))
                if etype == 'vm_detached' and events[-1][1].get('vm') == 'sse1':
                    break
        conn.close()
        done.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    assert ready.wait(EVENT_TIMEOUT), 'the event stream did not open'
    time.sleep(0.2)
    r = request('POST', '/v1/vms', {'name': 'sse1', 'qmp': QMP_NOWHERE,
                                    'group': '/tenants'})
    assert r.status == 201, r
    r = request('DELETE', '/v1/vms/sse1')
    assert r.status == 204, r
    assert done.wait(EVENT_TIMEOUT + 5), 'no vm_detached within %d s: %r' % (EVENT_TIMEOUT,
                                                                            events)
    mine = [(e, d) for e, d in events if d.get('vm') == 'sse1']
    assert [e for e, _ in mine] == ['vm_attached', 'vm_detached'], events
    assert mine[0][1].get('group') == '/tenants', mine


@test('DELETE /v1/vms/<name>: 204, then 404')
def _():
    r = request('POST', '/v1/vms', {'name': 'tmp1', 'qmp': QMP_NOWHERE})
    assert r.status == 201, r
    assert request('DELETE', '/v1/vms/tmp1').status == 204
    check_error(request('DELETE', '/v1/vms/tmp1'), 404, 'not_found')
    assert 'tmp1' not in [v['name'] for v in get_json('/v1/vms')]


METRIC_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


@test('GET /metrics: Prometheus text with HELP and TYPE for every family')
def _():
    r = request('GET', '/metrics')
    assert r.status == 200, r
    assert r.headers['Content-Type'].startswith('text/plain; version=0.0.4')
    text = r.body.decode('utf-8')
    helps, types, samples = set(), {}, []
    seen_families = []
    for line in text.splitlines():
        if line.startswith('# HELP '):
            helps.add(line.split()[2])
        elif line.startswith('# TYPE '):
            _, _, name, kind = line.split()
            assert kind in ('gauge', 'counter'), line
            assert name not in types, 'family %s twice' % name
            types[name] = kind
            seen_families.append(name)
        elif line.startswith('#') or not line:
            continue
        else:
            m = METRIC_LINE.match(line)
            assert m, 'bad line: %r' % line
            name, labels, value = m.group(1), m.group(3) or '', m.group(4)
            assert name in types, 'sample before its TYPE: %r' % line
            assert name == seen_families[-1], 'family %s interleaved' % name
            float(value)
            rest = labels
            while rest:
                lm = LABEL.match(rest)
                assert lm, 'bad labels: %r' % labels
                rest = rest[lm.end():]
            samples.append((name, labels, value))
    assert helps == set(types), helps ^ set(types)
    names = {s[0] for s in samples}
    for n in ('vmcg_group_memory_current_bytes', 'vmcg_group_memory_max_bytes',
              'vmcg_group_memory_events_total', 'vmcg_vm_memory_current_bytes',
              'vmcg_vm_state'):
        assert n in names, n
    assert types['vmcg_group_memory_events_total'] == 'counter'
    assert ('vmcg_group_memory_max_bytes', 'group="/tenants"', str(4 << 30)) in samples
    assert any(s[0] == 'vmcg_vm_memory_current_bytes' and 'vm="web1"' in s[1]
               for s in samples)


@test('unknown paths: 404 not_found')
def _():
    for path in ('/', '/v1', '/v2/groups', '/v1/groupsx', '/v1/vms/a/b', '/metricsx'):
        check_error(request('GET', path), 404, 'not_found')


@test('wrong methods: 405 method_not_allowed with Allow')
def _():
    before = snapshot()
    for method, path, allow in (('POST', '/v1/groups', 'GET, HEAD'),
                                ('DELETE', '/v1/vms', 'GET, HEAD, POST'),
                                ('POST', '/v1/groups/tenants', 'GET, HEAD, PUT, DELETE'),
                                ('POST', '/v1/vms/web1', 'GET, HEAD, PUT, DELETE'),
                                ('PUT', '/v1/events', 'GET, HEAD'),
                                ('DELETE', '/metrics', 'GET, HEAD'),
                                ('PATCH', '/v1/groups/tenants', 'GET, HEAD, PUT, DELETE')):
        r = request(method, path, {} if method != 'DELETE' else None)
        check_error(r, 405, 'method_not_allowed')
        assert r.headers['Allow'] == allow, (method, path, r.headers['Allow'])
    assert snapshot() == before


# Rejected requests: (name, method, path, body, status, code). The body is
# sent as is when bytes or str, as JSON otherwise.
DEEP = b'{"memory.max":' + b'[' * 9 + b']' * 9 + b'}'
REJECTS = [
    ('invalid JSON', 'PUT', '/v1/groups/tenants', b'{"memory.max":', 400,
     'invalid_argument'),
    ('trailing data', 'PUT', '/v1/groups/tenants', b'{"memory.max":"1G"} {}', 400,
     'invalid_argument'),
    ('not an object', 'PUT', '/v1/groups/tenants', b'["memory.max"]', 400,
     'invalid_argument'),
    ('single quotes', 'PUT', '/v1/groups/tenants', b"{'memory.max':1}", 400,
     'invalid_argument'),
    ('deep nesting', 'PUT', '/v1/groups/tenants', DEEP, 400, 'invalid_argument'),
    ('invalid UTF-8', 'PUT', '/v1/groups/tenants', b'{"oom-action":"\xff"}', 400,
     'invalid_argument'),
    ('escaped NUL', 'POST', '/v1/vms', b'{"name":"a\\u0000b","qmp":"/x"}', 400,
     'invalid_argument'),
    ('unknown field', 'PUT', '/v1/groups/tenants', {'memory.swap.max': 1}, 400,
     'invalid_argument'),
    ('read-only field', 'PUT', '/v1/groups/tenants', {'memory.current': 1}, 400,
     'invalid_argument'),
    ('bool for a size', 'PUT', '/v1/groups/tenants', {'memory.max': True}, 400,
     'invalid_argument'),
    ('double for a size', 'PUT', '/v1/groups/tenants', b'{"memory.max":1.5e9}', 400,
     'invalid_argument'),
    ('string for a bool', 'PUT', '/v1/groups/tenants', {'memory.oom.group': 'true'}, 400,
     'invalid_argument'),
    ('negative size', 'PUT', '/v1/groups/tenants', {'memory.max': -1}, 400,
     'invalid_argument'),
    ('absurd size', 'PUT', '/v1/groups/tenants', {'memory.max': 1 << 63}, 400,
     'invalid_argument'),
    ('absurd size string', 'PUT', '/v1/groups/tenants', {'memory.max': '9E'}, 400,
     'invalid_argument'),
    ('size garbage', 'PUT', '/v1/groups/tenants', {'memory.high': '12 parsecs'}, 400,
     'invalid_argument'),
    ('unknown oom-action', 'PUT', '/v1/groups/tenants', {'oom-action': 'kill'}, 400,
     'invalid_argument'),
    ('one bad knob among good ones', 'PUT', '/v1/groups/tenants',
     {'memory.max': '1G', 'memory.low': '1M', 'memory.high': -5}, 400, 'invalid_argument'),
    ('bad knob on a group that would be created', 'PUT', '/v1/groups/tenants/new',
     {'memory.max': 'lots'}, 400, 'invalid_argument'),
    ('knobs on the root', 'PUT', '/v1/groups/', {'memory.max': '1G'}, 403,
     'permission_denied'),
    ('no parent', 'PUT', '/v1/groups/no/parent', {}, 404, 'not_found'),
    ('invalid group path', 'PUT', '/v1/groups/a%20b', {}, 400, 'invalid_argument'),
    ('dot-dot group path', 'PUT', '/v1/vms/web1', {'group': '/tenants/../x'}, 400,
     'invalid_argument'),
    ('escaped NUL in a path', 'GET', '/v1/groups/a%00b', None, 400, 'invalid_argument'),
    ('escaped slash in a VM name', 'GET', '/v1/vms/a%2Fb', None, 400, 'invalid_argument'),
    ('VM without qmp', 'POST', '/v1/vms', {'name': 'x'}, 400, 'invalid_argument'),
    ('VM without name', 'POST', '/v1/vms', {'qmp': '/run/x.qmp'}, 400, 'invalid_argument'),
    ('VM name with a slash', 'POST', '/v1/vms', {'name': 'a/b', 'qmp': '/run/x.qmp'}, 400,
     'invalid_argument'),
    ('VM name too long', 'POST', '/v1/vms', {'name': 'n' * 129, 'qmp': '/run/x.qmp'}, 400,
     'invalid_argument'),
    ('relative qmp path', 'POST', '/v1/vms', {'name': 'x', 'qmp': 'x.qmp'}, 400,
     'invalid_argument'),
    ('qmp path too long', 'POST', '/v1/vms', {'name': 'x', 'qmp': '/' + 'q' * 107}, 400,
     'invalid_argument'),
    ('priority out of range', 'POST', '/v1/vms',
     {'name': 'x', 'qmp': '/run/x.qmp', 'oom-priority': 1001}, 400, 'invalid_argument'),
    ('VM update renames', 'PUT', '/v1/vms/web1', {'name': 'web9'}, 400, 'invalid_argument'),
    ('VM move with a bad priority', 'PUT', '/v1/vms/web1',
     {'group': '/tenants/acme', 'oom-priority': 'high'}, 400, 'invalid_argument'),
    ('reclaim max', 'POST', '/v1/groups/tenants/reclaim', {'bytes': 'max'}, 400,
     'invalid_argument'),
    ('reclaim without bytes', 'POST', '/v1/groups/tenants/reclaim', {}, 400,
     'invalid_argument'),
    ('reclaim negative', 'POST', '/v1/groups/tenants/reclaim', {'bytes': -4096}, 400,
     'invalid_argument'),
    ('body over the limit', 'PUT', '/v1/groups/tenants', b' ' * 70000 + b'{}', 413,
     'too_large'),
]


def add_reject_tests():
    for name, method, path, body, status, code in REJECTS:
        def fn(method=method, path=path, body=body, status=status, code=code):
            before = snapshot()
            check_error(request(method, path, body), status, code)
            assert snapshot() == before, 'state changed'
            assert DAEMON.proc.poll() is None, 'vmcgd died'
        TESTS.append(('rejected, state unchanged: %s (%d %s)' % (name, status, code), fn))


add_reject_tests()


@test('rejected, state unchanged: a chunked body, even a good one (411 length_required)')
def _():
    before = snapshot()
    # Raw: vmcgd answers from the headers and closes, so a client still
    # sending its body may see EPIPE; the answer is there to read.
    for body in (b'2\r\n{}\r\n0\r\n\r\n', b'11170\r\n' + b' ' * 70000):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(DAEMON.socket)
        try:
            s.sendall(b'PUT /v1/groups/tenants HTTP/1.1\r\nHost: localhost\r\n'
                      b'Content-Type: application/json\r\n'
                      b'Transfer-Encoding: chunked\r\n\r\n' + body)
        except BrokenPipeError:
            pass
        answer = b''
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                # The body vmcgd did not read: AF_UNIX reports it after
                # the data queued before the close.
                break
            if not data:
                break
            answer += data
        s.close()
        assert answer.startswith(b'HTTP/1.1 411 '), answer[:200]
        assert b'"length_required"' in answer, answer
        assert snapshot() == before


@test('rejected, state unchanged: a URL the HTTP layer cannot parse (bare 400)')
def _():
    before = snapshot()
    r = request('GET', '/v1/groups/a%zz')
    assert r.status == 400, r
    assert snapshot() == before


@test('rejected, state unchanged: a connection that sends garbage')
def _():
    before = snapshot()
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(DAEMON.socket)
    s.sendall(b'\x00\xff garbage \r\n\r\n')
    try:
        s.recv(4096)
    except OSError:
        pass
    s.close()
    assert snapshot() == before
    assert DAEMON.proc.poll() is None


def run_as_nobody(code):
    """Run python3 -c @code as nobody:nogroup without supplementary groups."""
    if os.geteuid() != 0:
        raise Skip('needs root to run a request as nobody')
    py = sys.executable or 'python3'
    if shutil.which('setpriv'):
        cmd = ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', py, '-c', code]
    elif shutil.which('runuser'):
        cmd = ['runuser', '-u', 'nobody', '--', py, '-c', code]
    else:
        raise Skip('neither setpriv nor runuser is installed')
    return subprocess.run(cmd, capture_output=True, timeout=30)


NOBODY_CLIENT = r'''
import http.client, json, socket, sys
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(%r)
out = []
for method, path, body in %r:
    c = C('localhost', timeout=10)
    c.request(method, path, body=body.encode() if body is not None else None)
    r = c.getresponse()
    out.append([r.status, r.read().decode()])
print(json.dumps(out))
'''


@test('a writer that is not root is refused (403); it can still read')
def _():
    # The temporary directory must be reachable by nobody.
    os.chmod(str(DAEMON.tmpdir), 0o755)
    reqs = [('PUT', '/v1/groups/tenants/evil', '{}'),
            ('PUT', '/v1/groups/tenants', '{"memory.max":"1M"}'),
            ('DELETE', '/v1/groups/tenants/beta', None),
            ('POST', '/v1/groups/tenants/reclaim', '{"bytes":4096}'),
            ('POST', '/v1/vms', '{"name":"evil","qmp":"/run/x.qmp"}'),
            ('PUT', '/v1/vms/web1', '{"group":"/"}'),
            ('DELETE', '/v1/vms/web1', None),
            ('GET', '/v1/groups/tenants', None),
            ('GET', '/metrics', None)]
    before = snapshot()
    p = run_as_nobody(NOBODY_CLIENT % (DAEMON.socket, reqs))
    assert p.returncode == 0, p.stderr.decode()
    out = json.loads(p.stdout)
    for (method, path, _), (status, body) in zip(reqs, out):
        if method == 'GET':
            assert status == 200, (method, path, status, body)
        else:
            assert status == 403, (method, path, status, body)
            assert json.loads(body)['error']['code'] == 'permission_denied', body
    assert snapshot() == before


# ---- vmcgctl ----

def ctl(*args, sock=None, user=None):
    if not os.access(VMCGCTL, os.X_OK):
        raise Skip('vmcgctl not built (%s)' % VMCGCTL)
    cmd = [VMCGCTL, '--socket', sock or DAEMON.socket] + list(args)
    if user:
        if os.geteuid() != 0 or not shutil.which('setpriv'):
            raise Skip('needs root and setpriv')
        cmd = ['setpriv', '--reuid=' + user, '--regid=nogroup', '--clear-groups'] + cmd
    return subprocess.run(cmd, capture_output=True, timeout=30, env=dict(os.environ, LANG='C'))


@test('vmcgctl: tree, get, --json')
def _():
    p = ctl('tree')
    assert p.returncode == 0, p
    assert b'tenants' in p.stdout and b'acme' in p.stdout and b'4G' in p.stdout, p.stdout
    p = ctl('--json', 'get', '/tenants')
    assert p.returncode == 0, p
    assert json.loads(p.stdout)['path'] == '/tenants'
    p = ctl('get', '/tenants/acme')
    assert p.returncode == 0 and b'memory.max' in p.stdout, p


@test('vmcgctl: create, set, rm, add, move, set-vm, forget, reclaim')
def _():
    assert ctl('create', '/tenants/cli', 'max=1G', 'memory.oom.group=true').returncode == 0
    g = get_json('/v1/groups/tenants/cli')
    assert g['memory.max'] == 1 << 30 and g['memory.oom.group'] is True
    assert ctl('set', '/tenants/cli', 'memory.high=512M').returncode == 0
    assert get_json('/v1/groups/tenants/cli')['memory.high'] == 512 << 20
    p = ctl('add', 'cli1', '--qmp', QMP_NOWHERE, '--group', '/tenants/cli', '--floor', '64M',
            '--oom-priority', '-5')
    assert p.returncode == 0, p
    vm = get_json('/v1/vms/cli1')
    assert vm['floor'] == 64 << 20 and vm['oom-priority'] == -5
    assert ctl('move', 'cli1', '/tenants').returncode == 0
    assert get_json('/v1/vms/cli1')['group'] == '/tenants'
    assert ctl('set-vm', 'cli1', 'oom-priority=7').returncode == 0
    assert get_json('/v1/vms/cli1')['oom-priority'] == 7
    p = ctl('reclaim', '/tenants', '1M')
    assert p.returncode == 0, p
    assert ctl('vms').returncode == 0
    p = ctl('vm', 'cli1')
    assert p.returncode == 0, p
    out = p.stdout.decode() if isinstance(p.stdout, bytes) else p.stdout
    assert re.search(r'^backend\s+qmp$', out, re.M), out
    assert re.search(r'^address\s+/', out, re.M), out
    vm = get_json('/v1/vms/cli1')
    assert vm['backend'] == 'qmp' and vm['address'] == vm['qmp'], vm
    assert ctl('forget', 'cli1').returncode == 0
    assert ctl('rm', '/tenants/cli').returncode == 0
    assert request('GET', '/v1/groups/tenants/cli').status == 404


@test('vmcgctl: exit codes 1 usage, 2 not found, 3 conflict, 4 permission, 5 unreachable')
def _():
    p = ctl('frobnicate')
    assert p.returncode == 1, p
    p = ctl('set', '/tenants', 'memory.max=lots')
    assert p.returncode == 1 and b'memory.max' in p.stderr, p
    p = ctl('get', '/no/such/group')
    assert p.returncode == 2 and p.stderr, p
    p = ctl('set', '/no/such', 'max=1G')
    assert p.returncode == 2, p
    p = ctl('create', '/tenants')
    assert p.returncode == 3 and b'exists' in p.stderr, p
    p = ctl('rm', '/tenants')
    assert p.returncode == 3, p
    p = ctl('tree', sock=os.path.join(str(DAEMON.tmpdir), 'nothing.sock'))
    assert p.returncode == 5, p
    p = ctl('create', '/tenants/x', user='nobody')
    assert p.returncode == 4 and b'uid 0' in p.stderr, p


@test('vmcgctl watch: one line per event')
def _():
    if not os.access(VMCGCTL, os.X_OK):
        raise Skip('vmcgctl not built (%s)' % VMCGCTL)
    w = subprocess.Popen([VMCGCTL, '--socket', DAEMON.socket, '--json', 'watch'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)
        assert request('POST', '/v1/vms', {'name': 'w1', 'qmp': QMP_NOWHERE}).status == 201
        assert request('DELETE', '/v1/vms/w1').status == 204
        lines = []
        deadline = time.monotonic() + EVENT_TIMEOUT
        while time.monotonic() < deadline and len(lines) < 2:
            line = w.stdout.readline()
            if not line:
                break
            ev = json.loads(line)
            if ev['data'].get('vm') == 'w1':
                lines.append(ev['event'])
        assert lines == ['vm_attached', 'vm_detached'], lines
    finally:
        w.send_signal(signal.SIGINT)
        assert w.wait(10) == 0


# ---- the socket file ----

@test('a second daemon on the same socket is refused; the first keeps serving')
def _():
    tmp = str(DAEMON.tmpdir)
    # Its own state file and hooks socket: only the API socket is shared.
    p = subprocess.run([vmcgd_binary(), '--socket', DAEMON.socket,
                        '--state', os.path.join(tmp, 'state2.json'), '--interval', '1s',
                        '--hooks-socket', os.path.join(tmp, 'hooks2.sock')],
                       capture_output=True, timeout=30)
    assert p.returncode != 0, p
    assert get_json('/v1/groups')['path'] == '/'


@test('after a crash the stale socket is taken over (and state persisted)')
def _():
    before = get_json('/v1/groups/tenants')
    DAEMON.stop(signal.SIGKILL)
    assert os.path.exists(DAEMON.socket), 'a killed daemon leaves its socket'
    DAEMON.start()
    g = get_json('/v1/groups/tenants')
    assert g['path'] == '/tenants'
    assert g['memory.max'] == before['memory.max']


def setup():
    """One vmcgd for every test, with vmcgd's embedded default config (no
    --config), its API socket in a directory it makes (run/)."""
    global DAEMON, QMP_NOWHERE
    d = Daemon(config=None, interval='1s', verbose=False)
    d.socket = str(d.tmpdir / 'run' / 'vmcgd.sock')
    QMP_NOWHERE = str(d.tmpdir / 'nobody-listens.qmp')
    d.__enter__()
    DAEMON = d


def cleanup():
    if DAEMON is not None:
        DAEMON.close()


def checked(fn):
    """A test during which vmcgd died fails; vmcgd is started again for the next."""
    def run():
        try:
            fn()
        finally:
            if not DAEMON.running():
                rc = DAEMON.proc.returncode
                DAEMON.start()
                raise AssertionError('vmcgd exited with %s during the test (started again)' % rc)
    return run


if __name__ == '__main__':
    sys.exit(tap.main([(name, checked(fn)) for name, fn in TESTS], setup=setup, cleanup=cleanup))
