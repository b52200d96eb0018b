"""The one TAP runner of the integration tests.

    from vmcgtest import tap

    def test_something():
        if not host_can():
            raise tap.Skip("why this host cannot run it")
        assert ...

    TESTS = [("something", test_something)]
    if __name__ == "__main__":
        sys.exit(tap.main(TESTS, setup=..., cleanup=...))

What it prints, for meson's TAP parser and tests/summarize.py:

- `1..N`, then one `ok N name (1.2 s)` or `not ok N name (1.2 s)` per test,
  or `ok N name # SKIP reason` for a test that raised tap.Skip;
- on a failure, the traceback as `#` lines (and on stderr too, which is
  what meson prints for a failed test, so a CI log says why), then the
  tail of the log of
  every vmcgd (vmcgtest.daemon.Daemon) that the test started or that is
  still running, and of every QEMU guest the test started;
- `1..0 # SKIP reason` when setup() raises tap.Skip and there is nothing
  to run on this host (the whole file is skipped, exit 0); when setup()
  fails otherwise, every test is reported `not ok` with the reason.

A test may skip only where the host cannot run it, and says why.
tap.require(what, reason) turns a skip into a failure when the
environment says the thing is required (VMCG_REQUIRE_HOOKS=1, set by
tests/run.sh, for the patched QEMU): a missing part the test command is
supposed to provide is a failure, not a skip.

SIGTERM (a CI timeout) stops the run like ^C: the test in progress and
those not run are reported `not ok ... # interrupted`, cleanup() runs,
and the exit status is 1. Any `only` names on the command line select
tests by name.
"""

import os
import signal
import sys
import time
import traceback
import unittest

# unittest's, so that code raising unittest.SkipTest (and vmcgtest.guest's
# callers) skip the same way.
Skip = unittest.SkipTest

LOG_TAIL_LINES = 40


class Interrupted(KeyboardInterrupt):
    pass


def diag(msg):
    """A TAP comment on stdout (each line prefixed by '# ')."""
    for line in str(msg).splitlines() or [""]:
        print("# " + line, flush=True)


def require(env, reason):
    """Raises Skip(reason), or AssertionError if $env is 1: the run requires it."""
    if os.environ.get(env) == "1":
        raise AssertionError("%s=1, but: %s" % (env, reason)) from None
    raise Skip(reason) from None


def _interrupt(sig, frame):
    raise Interrupted("signal %d" % sig)


def _logs_for_failure(daemons_before, guests_before):
    """The daemon and guest logs worth showing after a failed test."""
    from . import daemon as daemon_mod  # late: daemon imports guest, which is heavy
    from . import guest as guest_mod

    for i, d in enumerate(daemon_mod.STARTED):
        if i >= daemons_before or d.running():
            diag("vmcgd log (%s), last %d lines:" % (d.log, LOG_TAIL_LINES))
            diag("\n".join(d.log_text().splitlines()[-LOG_TAIL_LINES:]))
    for g in guest_mod.STARTED[guests_before:]:
        text = g.last_log_tail()
        if text:
            diag("guest %s: QEMU log, last lines:" % g.name)
            diag(text)


def _started_counts():
    from . import daemon as daemon_mod
    from . import guest as guest_mod

    return len(daemon_mod.STARTED), len(guest_mod.STARTED)


def main(tests, setup=None, cleanup=None, argv=None):
    """Runs (name, fn) pairs as TAP. Returns the exit status (0: none failed)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        tests = [t for t in tests if t[0] in argv]
    signal.signal(signal.SIGTERM, _interrupt)
    t_start = time.monotonic()
    failed = 0
    setup_error = None
    try:
        if setup is not None:
            try:
                setup()
            except Skip as e:
                print("1..0 # SKIP %s" % e, flush=True)
                return 0
            except Interrupted:
                raise
            except Exception:  # noqa: B902 - every test reports it
                setup_error = traceback.format_exc()
        print("1..%d" % len(tests), flush=True)
        n = 0
        for n, (name, fn) in enumerate(tests, 1):
            if setup_error is not None:
                failed += 1
                print("not ok %d %s # setup failed" % (n, name), flush=True)
                if n == 1:
                    diag(setup_error)
                continue
            before = _started_counts()
            t0 = time.monotonic()
            try:
                fn()
            except Skip as e:
                print("ok %d %s # SKIP %s" % (n, name, e), flush=True)
                continue
            except (Interrupted, KeyboardInterrupt) as e:
                failed += 1
                print("not ok %d %s # interrupted (%s)" % (n, name, e or "SIGINT"), flush=True)
                for m, (rest, _) in enumerate(tests[n:], n + 1):
                    print("not ok %d %s # interrupted" % (m, rest), flush=True)
                return 1
            except BaseException:  # noqa: B902 - SystemExit from a test is a failure too
                failed += 1
                print("not ok %d %s (%.1f s)" % (n, name, time.monotonic() - t0), flush=True)
                diag(traceback.format_exc())
                print("%s: %s" % (name, traceback.format_exc()), file=sys.stderr, flush=True)
                try:
                    _logs_for_failure(*before)
                except Exception as e:  # noqa: B902 - diagnostics must not break the run
                    diag("(logs unavailable: %s)" % e)
                continue
            print("ok %d %s (%.1f s)" % (n, name, time.monotonic() - t0), flush=True)
    except (Interrupted, KeyboardInterrupt) as e:
        diag("interrupted (%s)" % (e or "SIGINT"))
        return 1
    finally:
        if cleanup is not None:
            try:
                cleanup()
            except Exception:  # noqa: B902 - a cleanup failure fails the run
                failed += 1
                diag("cleanup failed:\n" + traceback.format_exc())
        diag("wall time %.1f s" % (time.monotonic() - t_start))
    return 1 if failed else 0
