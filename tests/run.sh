#!/bin/sh
# Install what is needed, build, and run every test of vmcg:
#   1. the unit, style and fuzz-corpus suites in a normal build,
#   2. the integration suite: real QEMU guests (built from Debian packages
#      by tests/guest/build-guest.sh), the real vmcgd, its real API, and
#      hook mode with QEMU built from Debian's source with qemu-patches/,
#   3. the unit suite again under valgrind memcheck,
#   4. the unit and fuzz-corpus suites again under ASan + UBSan,
#   5. a leak check: nothing this run started (vmcgd, QEMU, etcd, guest
#      agents, shells) is still alive, and nothing is left in
#      its temporary directory (tests/integration/vmcgtest/leaks.py); it
#      counts as one test case, "leak-check",
# then print one line counting every test case of every phase:
#   N passed, N failed, N skipped
# Exit status 0 only if nothing failed.
#
# Every build is configured with --werror, including one that exists
# already (its options are set again and checked). The hook-mode tests
# are required: when the patched QEMU cannot be built they fail, saying
# why (VMCG_REQUIRE_HOOKS=1); a test skips only where the host cannot run
# it.
#
# libvirtd (and virtlogd) are the host's services: the libvirt tests start
# them when they are not running (there is no systemd here), without the
# run's tag, and leave them running, as a service would be.
#
# Environment: VMCG_SKIP_DEPS=1 skips the package check (for hosts where
# you manage packages yourself); BUILD_ROOT sets where builds go (default:
# the source tree's build*/ directories); VMCG_REQUIRE_HOOKS=0 lets the
# hook-mode tests skip without a patched QEMU (not for CI).
set -u

src=$(cd "$(dirname "$0")/.." && pwd)
root=${BUILD_ROOT:-$src}
cd "$src" || exit 1

if [ "${VMCG_SKIP_DEPS:-0}" != 1 ]; then
	./scripts/install-deps.sh || exit 1
fi

logs=""
status=0

# The run's tag and temporary directory. Every process the run starts
# inherits VMCG_TEST_RUN, whatever it does with its session or parent, so
# the leak check finds what outlived the run by its environment; every
# test makes its temporary files under TMPDIR (tempfile, mktemp), here.
VMCG_TEST_RUN=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
run_tmp=${TMPDIR:-/tmp}/vmcg-test-$VMCG_TEST_RUN
# 0755: the API tests run clients as nobody, who must reach the sockets.
mkdir -m 0755 "$run_tmp" || exit 1
TMPDIR=$run_tmp
export VMCG_TEST_RUN TMPDIR
echo "=== run $VMCG_TEST_RUN (temporary files in $run_tmp)"

# Is @dir configured with werror = true? (meson introspect, JSON)
werror_set() { # dir
	meson introspect "$1" --buildoptions 2>/dev/null | python3 -c '
import json, sys
opts = {o["name"]: o["value"] for o in json.load(sys.stdin)}
sys.exit(0 if opts.get("werror") is True else 1)'
}

setup() { # dir, extra meson options...
	dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" --werror "$@" >"$dir.setup.log" 2>&1 || {
			cat "$dir.setup.log"
			return 1
		}
	else
		# An existing build directory is not trusted as it is: its options
		# are set again (werror and this phase's own); if meson refuses,
		# it is set up from scratch.
		meson configure "$dir" -Dwerror=true "$@" >"$dir.setup.log" 2>&1 ||
			meson setup --wipe "$dir" --werror "$@" >"$dir.setup.log" 2>&1 || {
			cat "$dir.setup.log"
			return 1
		}
	fi
	werror_set "$dir" || {
		echo "$dir: werror is not set after configuring it; refusing to build"
		return 1
	}
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
# time). The hook-mode tests are part of this command: if it cannot be
# built, they fail and say why (not skip).
VMCG_REQUIRE_HOOKS=${VMCG_REQUIRE_HOOKS:-1}
export VMCG_REQUIRE_HOOKS
if [ -z "${VMCG_QEMU_HOOKS:-}" ]; then
	echo "=== patched QEMU (qemu-patches/build-qemu.sh)"
	if qemu_hooks=$(bash qemu-patches/build-qemu.sh); then
		VMCG_QEMU_HOOKS=$qemu_hooks
		export VMCG_QEMU_HOOKS
		echo "patched QEMU: $VMCG_QEMU_HOOKS"
	else
		# The tests read why and do not try the build again.
		VMCG_QEMU_HOOKS_ERROR="qemu-patches/build-qemu.sh failed in tests/run.sh (see its output above)"
		export VMCG_QEMU_HOOKS_ERROR
		if [ "$VMCG_REQUIRE_HOOKS" = 1 ]; then
			echo "patched QEMU: build failed (see above): the hook-mode tests will fail"
		else
			echo "patched QEMU: build failed (see above): the hook-mode tests will skip (VMCG_REQUIRE_HOOKS=$VMCG_REQUIRE_HOOKS)"
		fi
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

echo "=== leak check"
leak_json=$root/leak-check.json
rm -f "$leak_json"
python3 tests/integration/vmcgtest/leaks.py --tag "$VMCG_TEST_RUN" --tmp "$run_tmp" \
	--kill --json "$leak_json" || status=1
logs="$logs leak-check=$leak_json"

echo "=== summary"
# shellcheck disable=SC2086
python3 tests/summarize.py $logs || status=1
exit $status
