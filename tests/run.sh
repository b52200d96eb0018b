#!/bin/sh
# Install what is needed, build, and run every test of vmcg:
#   1. the unit, style and fuzz-corpus suites in a normal build,
#   2. the integration suite: real QEMU guests (built from Debian packages
#      by tests/guest/build-guest.sh), the real vmcgd, its real API, and
#      hook mode with QEMU built from Debian's source with qemu-patches/,
#   3. the unit suite again under valgrind memcheck,
#   4. the unit and fuzz-corpus suites again under ASan + UBSan,
# then print one line counting every test case of every phase:
#   N passed, N failed, N skipped
# Exit status 0 only if nothing failed.
#
# Environment: VMCG_SKIP_DEPS=1 skips the package check (for hosts where
# you manage packages yourself); BUILD_ROOT sets where builds go (default:
# the source tree's build*/ directories).
set -u

src=$(cd "$(dirname "$0")/.." && pwd)
root=${BUILD_ROOT:-$src}
cd "$src"

if [ "${VMCG_SKIP_DEPS:-0}" != 1 ]; then
	./scripts/install-deps.sh || exit 1
fi

logs=""
status=0

setup() { # dir, extra meson options...
	dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" --werror "$@" >"$dir.setup.log" 2>&1 || {
			cat "$dir.setup.log"
			return 1
		}
	fi
	ninja -C "$dir" >"$dir.build.log" 2>&1 || {
		cat "$dir.build.log"
		return 1
	}
}

phase() { # label, build dir, test setup or "-", meson test args...
	label=$1
	dir=$2
	setup=$3
	shift 3
	echo "=== $label"
	if [ "$setup" = - ]; then
		json=$dir/meson-logs/$label.json
		meson test -C "$dir" --no-rebuild --print-errorlogs --logbase "$label" "$@" ||
			status=1
	else
		# meson appends the setup's name to the log's base name
		json=$dir/meson-logs/$label-$setup.json
		meson test -C "$dir" --no-rebuild --print-errorlogs --logbase "$label" \
			--setup "$setup" "$@" || status=1
	fi
	logs="$logs $label=$json"
}

# The patched QEMU for the hook-mode tests (qemu-patches/): built once from
# Debian's source package and cached (about 5 minutes on 2 cores the first
# time). If it cannot be built here, those tests skip and say why.
if [ -z "${VMCG_QEMU_HOOKS:-}" ]; then
	echo "=== patched QEMU (qemu-patches/build-qemu.sh)"
	if qemu_hooks=$(bash qemu-patches/build-qemu.sh); then
		VMCG_QEMU_HOOKS=$qemu_hooks
		export VMCG_QEMU_HOOKS
		echo "patched QEMU: $VMCG_QEMU_HOOKS"
	else
		echo "patched QEMU: build failed (see above): the hook-mode tests will skip"
	fi
fi

mkdir -p "$root"
if setup "$root/build"; then
	phase unit "$root/build" - --suite unit --suite style --suite fuzz
	phase integration "$root/build" - --suite integration
	phase memcheck "$root/build" valgrind --suite unit
else
	status=1
	logs="$logs unit=/nonexistent integration=/nonexistent memcheck=/nonexistent"
fi

if setup "$root/build-asan" -Db_sanitize=address,undefined -Db_lundef=false \
	-Dbuildtype=debug; then
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		phase asan "$root/build-asan" - --suite unit --suite fuzz
else
	status=1
	logs="$logs asan=/nonexistent"
fi

echo "=== summary"
# shellcheck disable=SC2086
python3 tests/summarize.py $logs || status=1
exit $status
