#!/bin/sh
# The README's first quick-start command: install what is needed, build,
# build the demo guest, and run vmcgd on two demo guests (scripts/demo.py).
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build
./tests/guest/build-guest.sh
exec python3 scripts/demo.py "$@"
