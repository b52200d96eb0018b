#!/usr/bin/env python3
"""What a test run left behind: processes and temporary files.

tests/run.sh exports a run tag, VMCG_TEST_RUN=<random>, to everything it
starts, and TMPDIR=<prefix> (a directory of its own); every process a test
starts (vmcgd, QEMU, libvirtd, etcd, a guest agent, a shell) inherits the
tag, whatever it does with its session or its parent. At the end:

    leaks.py --tag TAG --tmp PREFIX [--kill] [--json FILE]

lists every live process whose environment holds VMCG_TEST_RUN=TAG,
except itself and its ancestors (run.sh itself has the tag), and
everything left in PREFIX. It prints one TAP test, `leak-check`, naming
each leak, and exits 1 if there is any. --kill then SIGKILLs the leaked
processes (by pid, after naming them) so that they do not outlive the
run; --json appends a line in meson's test-log format so that
tests/summarize.py counts the check as a test case. An empty PREFIX is
removed.

A process that clears its environment (env -i) escapes the scan; none of
the test bed's does. A zombie has no environment to read: it is not
running anything and its parent, when it goes, takes it along.
"""

import argparse
import json
import os
import shutil
import signal
import sys

TAG_VAR = "VMCG_TEST_RUN"


def _ancestors(pid):
    """pid and its ancestors, from /proc/PID/stat."""
    out = set()
    while pid > 0 and pid not in out:
        out.add(pid)
        try:
            with open("/proc/%d/stat" % pid) as f:
                stat = f.read()
        except OSError:
            break
        # comm may hold spaces and parentheses: the fields start after the last ')'.
        pid = int(stat[stat.rindex(")") + 2:].split()[1])
    return out


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return "?"
    return " ".join(a.decode("utf-8", "replace") for a in args if a)[:200] or "?"


def tagged_processes(tag, proc="/proc"):
    """(pid, command line) of every process with TAG_VAR=tag but this one and its ancestors."""
    want = ("%s=%s" % (TAG_VAR, tag)).encode()
    mine = _ancestors(os.getpid())
    found = []
    for name in os.listdir(proc):
        if not name.isdigit() or int(name) in mine:
            continue
        try:
            with open(os.path.join(proc, name, "environ"), "rb") as f:
                env = f.read().split(b"\0")
        except OSError:  # gone meanwhile, or a kernel thread
            continue
        if want in env:
            found.append((int(name), _cmdline(int(name))))
    return sorted(found)


def leftover_files(prefix):
    """Top-level entries left in the run's temporary directory."""
    try:
        return sorted(os.listdir(prefix))
    except FileNotFoundError:
        return []


def check(tag, prefix, kill=False):
    """(ok, TAP text)."""
    lines = []
    procs = tagged_processes(tag) if tag else []
    files = leftover_files(prefix) if prefix else []
    for pid, cmd in procs:
        lines.append("leaked process %d: %s" % (pid, cmd))
    for name in files:
        lines.append("leaked temporary file: %s" % os.path.join(prefix, name))
    ok = not procs and not files
    tap = ["1..1", "%s 1 leak-check" % ("ok" if ok else "not ok")]
    tap += ["# " + line for line in lines]
    if kill:
        for pid, _ in procs:
            try:
                os.kill(pid, signal.SIGKILL)
                tap.append("# killed %d" % pid)
            except ProcessLookupError:
                pass
        for name in files:
            path = os.path.join(prefix, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass
    if prefix:
        try:
            os.rmdir(prefix)
        except OSError:
            pass
    return ok, "\n".join(tap) + "\n"


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tag", default=os.environ.get(TAG_VAR), help="the run tag (default $%s)"
                   % TAG_VAR)
    p.add_argument("--tmp", help="the run's temporary directory")
    p.add_argument("--kill", action="store_true", help="kill and remove what leaked, after naming it")
    p.add_argument("--json", help="append a meson test-log line here")
    a = p.parse_args(argv)
    if not a.tag and not a.tmp:
        p.error("nothing to check: give --tag or --tmp")
    ok, tap = check(a.tag, a.tmp, kill=a.kill)
    sys.stdout.write(tap)
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps({"name": "leak-check", "result": "OK" if ok else "FAIL",
                                "stdout": tap}) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
