#!/usr/bin/env python3
"""Count every test case of one or more meson test runs.

Reads meson's JSON test logs (one object a line). A TAP program counts one
test per `ok`/`not ok` line (`# SKIP` counts as skipped); tests it planned
but never reported (a crash, a bail-out) count as failed. Any other test
counts once by its result. Prints one line per run and, last, the total:

    N passed, N failed, N skipped
"""
import json
import re
import sys

TAP_LINE = re.compile(r'^(not ok|ok)\b[^#]*(#\s*(\w+))?', re.IGNORECASE)
TAP_PLAN = re.compile(r'^1\.\.(\d+)')


def count_test(entry):
    out = entry.get('stdout') or ''
    result = entry.get('result', 'FAIL')
    passed = failed = skipped = 0
    plan = None
    seen = 0
    for line in out.splitlines():
        m = TAP_PLAN.match(line)
        if m and plan is None:
            plan = int(m.group(1))
            continue
        m = TAP_LINE.match(line)
        if not m:
            continue
        seen += 1
        directive = (m.group(3) or '').upper()
        if m.group(1).lower() == 'ok':
            if directive == 'SKIP':
                skipped += 1
            else:
                passed += 1
        elif directive == 'TODO':
            skipped += 1
        else:
            failed += 1
    if plan is None and seen == 0:
        # Not a TAP program: one test, judged by its result.
        if result in ('OK', 'EXPECTEDFAIL'):
            return 1, 0, 0
        if result == 'SKIP':
            return 0, 0, 1
        return 0, 1, 0
    if plan is not None and seen < plan:
        failed += plan - seen
    if result not in ('OK', 'SKIP', 'EXPECTEDFAIL') and failed == 0:
        failed += 1  # exited badly after reporting success
    return passed, failed, skipped


def main(argv):
    total = [0, 0, 0]
    for arg in argv[1:]:
        label, _, path = arg.partition('=')
        run = [0, 0, 0]
        failures = []
        try:
            with open(path) as f:
                for line in f:
                    if not line.strip():
                        continue
                    entry = json.loads(line)
                    c = count_test(entry)
                    if c[1]:
                        failures.append(entry.get('name', '?'))
                    run = [a + b for a, b in zip(run, c)]
        except OSError as e:
            print(f'{label}: no results ({e.strerror}): counted as 1 failed')
            run = [0, 1, 0]
        print(f'{label}: {run[0]} passed, {run[1]} failed, {run[2]} skipped'
              + (f' (failing: {", ".join(failures)})' if failures else ''))
        total = [a + b for a, b in zip(total, run)]
    print(f'{total[0]} passed, {total[1]} failed, {total[2]} skipped')
    return 1 if total[1] else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
