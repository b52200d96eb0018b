#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A broken QMP peer, run as its own process (test_peers.py).

    qmppeer.py MODE RAM_MIB REGIONS SOCKET...

Listens on every SOCKET, greets as QEMU 7.2 does and accepts
qmp_capabilities; then, by MODE:

  junk    sends a line that is not JSON (the connection is then vmcgd's to
          drop) and counts the connections it accepted, one line per accept
          on stdout ("accept N");
  liar    answers query-memdev with RAM_MIB of RAM it never maps (so no
          smaps read finds guest RAM: a parse error each time), everything
          else with an empty return; maps REGIONS small regions first, so
          that its smaps is long (each read costs vmcgd what a real QEMU's
          does);
  orphan  as liar, but the process that listened exits once the sockets
          are bound, leaving them to a child that serves them: the pid
          vmcgd gets from SO_PEERCRED is gone, /proc/PID/smaps is not there.

Prints "ready" once every socket listens. Ends when stdin closes.
"""

import json
import mmap
import os
import selectors
import socket
import sys

GREETING = {"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7},
                                "package": ""}, "capabilities": ["oob"]}}


def send(conn, obj):
    try:
        conn.sendall(json.dumps(obj).encode() + b"\r\n")
    except OSError:
        pass


def serve(mode, ram_mib, listeners):
    sel = selectors.DefaultSelector()
    accepts = 0
    for s in listeners:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, ("listen", None))
    sel.register(sys.stdin, selectors.EVENT_READ, ("stdin", None))
    while True:
        for key, _ in sel.select():
            kind, buf = key.data
            if kind == "stdin":
                if not os.read(sys.stdin.fileno(), 4096):
                    return
                continue
            if kind == "listen":
                try:
                    conn, _ = key.fileobj.accept()
                except BlockingIOError:
                    continue
                accepts += 1
                if mode == "junk":
                    print("accept %d" % accepts, flush=True)
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ, ("conn", bytearray()))
                send(conn, GREETING)
                continue
            conn = key.fileobj
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            if not data:
                sel.unregister(conn)
                conn.close()
                continue
            buf += data
            while b"\n" in buf:
                line, _, rest = bytes(buf).partition(b"\n")
                buf[:] = rest
                try:
                    cmd = json.loads(line)
                except ValueError:
                    continue
                name, cid = cmd.get("execute"), cmd.get("id")
                if name == "qmp_capabilities":
                    send(conn, {"return": {}, "id": cid})
                    if mode == "junk":
                        try:
                            conn.sendall(b"]]] this is not QMP [[[\r\n")
                        except OSError:
                            pass
                elif name == "query-memdev":
                    send(conn, {"return": [{"id": "pc.ram", "size": ram_mib << 20,
                                            "merge": True, "dump": True, "prealloc": False,
                                            "share": False, "reserve": True,
                                            "host-nodes": [], "policy": "default"}],
                                "id": cid})
                elif name == "qom-list":
                    send(conn, {"return": [], "id": cid})
                else:
                    send(conn, {"return": {}, "id": cid})


def main():
    mode, ram_mib, regions = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    # Small mappings that cannot merge (alternating protections): a long smaps.
    keep = [mmap.mmap(-1, 4096, prot=mmap.PROT_READ | (mmap.PROT_WRITE if i % 2 else 0))
            for i in range(regions)]
    for i, m in enumerate(keep):
        if i % 2:
            m[0] = 1
    listeners = []
    for path in sys.argv[4:]:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.listen(16)
        listeners.append(s)
    if mode == "orphan":
        # The listener leaves; a child keeps the sockets and serves them.
        if os.fork():
            os._exit(0)
        os.setsid()
    print("ready", flush=True)
    serve(mode, ram_mib, listeners)


if __name__ == "__main__":
    main()
