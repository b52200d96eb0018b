#!/usr/bin/env python3
"""Smoke test of the vmcg test bed: one real guest, every harness feature.

    host:  QEMU (pid P, RSS measured)  <--QMP-->  this test
             |  virtio-balloon (free-page-reporting=on)
    guest: 512 MiB, Debian kernel, busybox /init, shell on a virtio port
             /mnt/tmp (tmpfs), memhog (anonymous), /dev/vda (page cache)

Expected: QMP answers; balloon stats arrive; the balloon takes the guest to
384 MiB and back; 200 MiB written to tmpfs show up in QEMU's RSS and leave
it again within seconds of being freed, through free page reporting alone
(no balloon); memhog holds and frees 100 MiB of anonymous memory, which
QEMU's RSS shows too; 100 MiB read from the data disk show up as guest page
cache (Cached) until dropped.

Runs as `python3 tests/integration/test_guest.py` and prints TAP. A host
without QEMU or the guest kernel (no package archive) prints
`1..0 # SKIP reason` and exits 0; any failure exits 1.
"""

import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from vmcgtest import (  # noqa: E402
    Guest,
    GuestUnavailable,
    ensure_guest_built,
    probe_accel,
    qemu_binary,
    tap,
    wait_for,
)
from vmcgtest.guest import MiB, accel_probe_result  # noqa: E402

MEM_MIB = 512
BALLOON_MIB = 384
TMPFS_MIB = 200
DISK_READ_MIB = 100
HOG_MIB = 100

# RSS tolerance for memory the guest allocates or frees: +-25 %. Below:
# guest pages can land in host memory that is already resident (freed but
# not yet reported, or in a 2 MiB host huge page the guest partly uses:
# QEMU madvises guest RAM for THP, so one guest touch makes 2 MiB
# resident), so the host pays less than the guest allocated (measured:
# memhog 100 MiB, RSS +88 to +90). Above: TCG translates the code that runs
# into its code buffer, QEMU's heap moves, THP rounds up (measured: tmpfs
# 200 MiB, RSS +200 to +202).
RSS_TOLERANCE = 0.25

# Free page reporting waits PAGE_REPORTING_DELAY (2 s, mm/page_reporting.c)
# after a free before reporting, then reports a bounded batch per pass. The
# design promises about 2 s; allow much more so a loaded two-core host
# running TCG does not make this flaky, and print what was measured.
FPR_DEADLINE_S = 30.0
BALLOON_DEADLINE_S = 60.0
STATS_DEADLINE_S = 30.0

measured = {}


diag = tap.diag


def settle_rss(guest, window_s=2.5, slack_mib=2, timeout=30.0):
    """Waits until QEMU's RSS moves less than slack_mib over window_s; returns it.

    Memory the guest freed shortly before is reported (and leaves QEMU's RSS)
    only after PAGE_REPORTING_DELAY, 2 s: a window shorter than that could
    call the calm before the drop steady, and the baseline would drift.
    """
    last = [guest.rss_bytes()]

    def steady():
        time.sleep(window_s)
        now = guest.rss_bytes()
        ok = abs(now - last[0]) < slack_mib * MiB
        last[0] = now
        return now if ok else None

    try:
        return wait_for(steady, timeout, interval=0, what="QEMU RSS steady")
    except TimeoutError:
        diag("RSS did not settle within %.0f s; using %.1f MiB" % (timeout, last[0] / MiB))
        return last[0]


class GuestSmokeTest(unittest.TestCase):
    guest = None

    @classmethod
    def setUpClass(cls):
        probe_accel()
        cls.guest = Guest(mem_mib=MEM_MIB, smp=1, name="smoke")
        try:
            cls.guest.start()
            cls.guest.wait_ready()
        except BaseException:
            cls.guest.stop()
            raise
        g = cls.guest
        measured["boot_s"] = g.boot_seconds
        diag("guest booted in %.1f s (%s, %s boot; guest uptime %.2f s at ready); QEMU RSS %.0f MiB"
             ", of which guest RAM %.0f MiB"
             % (g.boot_seconds, g.accel, g.boot, g.guest_uptime_at_ready or -1,
                g.rss_bytes() / MiB, g.guest_ram_rss_bytes() / MiB))

    @classmethod
    def tearDownClass(cls):
        if cls.guest is not None:
            cls.guest.stop()

    def test_00_free_page_reporting_negotiated(self):
        negotiated, order = self.guest.free_page_reporting()
        diag("guest: VIRTIO_BALLOON_F_REPORTING %s, page_reporting_order %d (%d KiB)"
             % ("negotiated" if negotiated else "NOT negotiated", order, 4 << order))
        self.assertTrue(negotiated, "virtio_balloon did not negotiate free page reporting")

    def test_01_query_balloon(self):
        info = self.guest.qmp("query-balloon")
        self.assertEqual(info["actual"], MEM_MIB * MiB)

    def test_02_guest_stats(self):
        g = self.guest
        g.enable_guest_stats(1)
        try:
            stats = wait_for(
                lambda: (lambda s: s if s["last-update"] and s["stats"]["stat-total-memory"] > 0
                         else None)(g.guest_stats()),
                STATS_DEADLINE_S, interval=0.2, what="balloon guest-stats")
        finally:
            g.enable_guest_stats(0)
        s = stats["stats"]
        mi = g.meminfo()
        diag("guest-stats: total %.0f MiB, free %.0f MiB, available %.0f MiB, caches %.0f MiB"
             % (s["stat-total-memory"] / MiB, s["stat-free-memory"] / MiB,
                s["stat-available-memory"] / MiB, s["stat-disk-caches"] / MiB))
        # Same source as /proc/meminfo's MemTotal (totalram_pages).
        self.assertAlmostEqual(s["stat-total-memory"], mi["MemTotal"], delta=4 * MiB)
        self.assertGreater(s["stat-free-memory"], 0)
        self.assertLessEqual(s["stat-free-memory"], s["stat-total-memory"])

    def test_03_balloon_inflate_deflate(self):
        g = self.guest
        total0 = g.meminfo()["MemTotal"]
        rss0 = g.rss_bytes()
        g.set_balloon(BALLOON_MIB)
        t_in = g.wait_balloon(BALLOON_MIB, BALLOON_DEADLINE_S)
        total1 = g.meminfo()["MemTotal"]
        rss1 = g.rss_bytes()
        g.set_balloon(MEM_MIB)
        t_out = g.wait_balloon(MEM_MIB, BALLOON_DEADLINE_S)
        total2 = g.meminfo()["MemTotal"]
        measured["balloon_inflate_s"] = t_in
        measured["balloon_deflate_s"] = t_out
        diag("balloon %d -> %d MiB in %.1f s, back in %.1f s; guest MemTotal %.0f -> %.0f -> %.0f"
             " MiB; QEMU RSS %.0f -> %.0f MiB"
             % (MEM_MIB, BALLOON_MIB, t_in, t_out, total0 / MiB, total1 / MiB, total2 / MiB,
                rss0 / MiB, rss1 / MiB))
        # Without deflate-on-oom the driver takes the pages out of the
        # guest's managed memory, so MemTotal shows the balloon.
        self.assertAlmostEqual(total0 - total1, (MEM_MIB - BALLOON_MIB) * MiB, delta=2 * MiB)
        self.assertAlmostEqual(total2, total0, delta=2 * MiB)
        changes = [e for e in g.qmp_events if e["event"] == "BALLOON_CHANGE"]
        self.assertTrue(changes, "no BALLOON_CHANGE event recorded")

    def test_04_tmpfs_rss_and_free_page_reporting(self):
        g = self.guest
        base = settle_rss(g)
        g.alloc_tmpfs(TMPFS_MIB)
        peak = g.rss_bytes()
        growth = peak - base
        measured["tmpfs_rss_growth_mib"] = growth / MiB
        diag("tmpfs %d MiB: QEMU RSS %.1f -> %.1f MiB (+%.1f MiB)"
             % (TMPFS_MIB, base / MiB, peak / MiB, growth / MiB))
        self.assertGreaterEqual(growth, (1 - RSS_TOLERANCE) * TMPFS_MIB * MiB)
        self.assertLessEqual(growth, (1 + RSS_TOLERANCE) * TMPFS_MIB * MiB)

        t_free = time.monotonic()
        g.free_tmpfs()
        t0 = time.monotonic()
        # Back to within the tolerance of where it started, by reporting alone.
        target = base + RSS_TOLERANCE * TMPFS_MIB * MiB
        trace = []

        def returned():
            rss = g.rss_bytes()
            trace.append((time.monotonic() - t0, rss))
            return rss <= target

        try:
            wait_for(returned, FPR_DEADLINE_S, interval=0.1,
                     what="QEMU RSS back to %.0f MiB" % (target / MiB))
        finally:
            dt, rss = trace[-1]
            diag("freed: QEMU RSS %.1f MiB %.1f s after rm returned, %.1f s after it began"
                 " (free page reporting returned %.1f MiB)"
                 % (rss / MiB, dt, dt + t0 - t_free, (peak - rss) / MiB))
        measured["fpr_latency_s"] = trace[-1][0]
        measured["fpr_returned_mib"] = (peak - trace[-1][1]) / MiB

    def test_05_memhog(self):
        g = self.guest
        out = g.shell("memhog 16 </dev/null")
        self.assertRegex(out, r"holding 16 MiB")
        self.assertRegex(out, r"freed 16 MiB")

        before = g.meminfo()
        rss0 = settle_rss(g)
        hog = g.hog(HOG_MIB)
        report = g.hogs[hog]["report"]
        during = g.meminfo()
        rss1 = g.rss_bytes()
        anon = during["AnonPages"] - before["AnonPages"]
        diag("%s; guest AnonPages +%.1f MiB, QEMU RSS +%.1f MiB"
             % (report, anon / MiB, (rss1 - rss0) / MiB))
        self.assertRegex(report, r"holding %d MiB" % HOG_MIB)
        self.assertGreaterEqual(anon, HOG_MIB * MiB)
        self.assertLessEqual(anon, HOG_MIB * MiB + 8 * MiB)
        # After test_04's tmpfs file was freed and reported, the hog's pages
        # are not already resident (see RSS_TOLERANCE).
        measured["memhog_rss_growth_mib"] = (rss1 - rss0) / MiB
        self.assertGreaterEqual(rss1 - rss0, (1 - RSS_TOLERANCE) * HOG_MIB * MiB)
        g.unhog(hog)
        after = g.meminfo()
        self.assertLess(after["AnonPages"] - before["AnonPages"], 4 * MiB)

    def test_06_page_cache(self):
        g = self.guest
        g.drop_disk_cache()
        before = g.meminfo()
        # Settled, so memory test_05 freed is not reused resident.
        rss0 = settle_rss(g)
        t0 = time.monotonic()
        g.read_disk(DISK_READ_MIB)
        dt = time.monotonic() - t0
        after = g.meminfo()
        rss1 = g.rss_bytes()
        grown = after["Cached"] - before["Cached"]
        diag("read %d MiB of /mnt/disk/data in %.1f s: guest Cached %.1f -> %.1f MiB (+%.1f); "
             "QEMU RSS +%.1f MiB" % (DISK_READ_MIB, dt, before["Cached"] / MiB,
                                     after["Cached"] / MiB, grown / MiB, (rss1 - rss0) / MiB))
        # Readahead may read a little past the end of the request.
        self.assertGreaterEqual(grown, 0.95 * DISK_READ_MIB * MiB)
        self.assertLessEqual(grown, DISK_READ_MIB * MiB + 16 * MiB)
        # Held: dd has closed the file, and its pages are still cached.
        self.assertGreaterEqual(g.meminfo()["Cached"] - before["Cached"], 0.95 * DISK_READ_MIB * MiB)

        g.drop_disk_cache()
        self.assertLess(g.meminfo()["Cached"] - before["Cached"], 8 * MiB)
        # Dropped page cache is free guest memory too, but reporting only
        # returns free blocks of 2 MiB (page_reporting_order 9), and page
        # cache frees fragmented: measured, about 60 of 100 MiB come back,
        # the rest stays resident in partly used 2 MiB blocks. Reported,
        # not asserted: it depends on the guest's fragmentation.
        rss = settle_rss(g)
        diag("dropped the cache: QEMU RSS %.1f MiB (%.1f MiB of the read returned to the host)"
             % (rss / MiB, (rss1 - rss) / MiB))
        measured["cache_rss_growth_mib"] = (rss1 - rss0) / MiB
        measured["cache_rss_returned_mib"] = (rss1 - rss) / MiB


# The test methods of GuestSmokeTest, in order, named without "test_NN_".
TESTS = [(re.sub(r"^test_\d+_", "", m), getattr(GuestSmokeTest(m), m))
         for m in sorted(n for n in dir(GuestSmokeTest) if n.startswith("test_"))]
T0 = time.monotonic()


def setup():
    """Boots the one guest every test uses; skips where the host cannot have one."""
    try:
        image = ensure_guest_built()
        qemu = qemu_binary()
    except GuestUnavailable as e:
        raise tap.Skip(e)
    diag("qemu %s; guest %s" % (qemu, image))
    GuestSmokeTest.setUpClass()


def cleanup():
    GuestSmokeTest.tearDownClass()
    probe = accel_probe_result()
    if probe:
        diag("accelerator: %s (%s)" % probe)
    diag("measured: " + ", ".join("%s=%.1f" % kv for kv in sorted(measured.items())))


if __name__ == "__main__":
    sys.exit(tap.main(TESTS, setup=setup, cleanup=cleanup))
