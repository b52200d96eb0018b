#!/bin/bash
# Build Debian 12's QEMU 7.2 with vmcg's patch series (qemu-patches/*.patch):
# a qemu-system-x86_64 with the vmcg-hooks object.
#
# Usage: qemu-patches/build-qemu.sh
#   Prints progress on stderr and the absolute path of the binary as the only
#   line on stdout. The binary looks for firmware where Debian's QEMU does
#   ($firmwarepath: qemu-system-data, seabios and ipxe-qemu, installed here;
#   ipxe-qemu has the NIC option ROMs, e.g. efi-e1000.rom, that a default NIC
#   needs), so it needs no -L; older callers' -L /usr/share/qemu
#   -L /usr/share/seabios are harmless.
#
# Cache: $VMCG_QEMU_CACHE (default /var/cache/vmcg/qemu)/<key>/, where <key>
# hashes the source package version, the series and this script. A run that
# finds its key built prints the path at once. Concurrent runs serialise on
# a lock; a build happens in a temporary directory renamed into place.
#
# Needs root (apt-get): adds a deb-src entry mirroring
# /etc/apt/sources.list.d/debian.sources when there is none, installs the
# build dependencies, fetches the source with `apt-get source`.
# VMCG_SKIP_DEPS=1 skips every apt-get install (the source is still fetched).
set -euo pipefail

exec 3>&1 1>&2      # stdout is only for the result

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${VMCG_QEMU_CACHE:-/var/cache/vmcg/qemu}
jobs=${VMCG_QEMU_JOBS:-$(( $(nproc) + 1 ))}
deps=(build-essential ninja-build meson pkg-config python3 dpkg-dev xz-utils
      libglib2.0-dev libpixman-1-dev zlib1g-dev libfdt-dev)
runtime=(qemu-system-data seabios ipxe-qemu)
# Debian's FIRMWAREPATH (debian/rules): where those packages put firmware
firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu

say() { echo "build-qemu: $*"; }
die() { say "error: $*"; exit 1; }

shopt -s nullglob
patches=("$here"/[0-9][0-9][0-9][0-9]-*.patch)
((${#patches[@]})) || die "no patches in $here"

missing() {
    local p out=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
            out+=("$p")
    done
    echo "${out[@]:-}"
}

apt_install() {
    local need
    [ "${VMCG_SKIP_DEPS:-0}" = 1 ] && return 0
    need=$(missing "$@")
    [ -n "$need" ] || return 0
    say "installing $need"
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends $need >&2
}

have_deb_src() {
    grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list \
        /etc/apt/sources.list.d/ 2>/dev/null
}

src_version() {
    # apt-cache fails while the deb-src lists are not downloaded yet: that
    # is "no version", not an error (set -e, pipefail)
    { apt-cache showsrc --only-source qemu 2>/dev/null || true; } |
        sed -n 's/^Version: //p' | sort -V | tail -n1
}

# The source version: from the local apt lists when they have sources.
if ! have_deb_src; then
    [ -f /etc/apt/sources.list.d/debian.sources ] ||
        die "no deb-src entry and no /etc/apt/sources.list.d/debian.sources"
    say "adding /etc/apt/sources.list.d/vmcg-deb-src.sources"
    sed 's/^Types:.*/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
        > /etc/apt/sources.list.d/vmcg-deb-src.sources
fi
version=$(src_version)
if [ -z "$version" ]; then
    say "apt-get update"
    apt-get update -q >&2
    version=$(src_version)
fi
[ -n "$version" ] || die "apt knows no source package qemu"

# The ABI header: vmcg's copy is authoritative, the series carries one too.
abi=$repo/include/vmcg/hooks-abi.h
[ -f "$abi" ] || abi=

key=$( { echo "$version"; cat "${patches[@]}" "$0" $abi; } | sha256sum | cut -c1-16)
out=$cache/$key
bin=$out/qemu-system-x86_64

finish() {
    apt_install "${runtime[@]}"
    echo "$bin" >&3
    exit 0
}

[ -x "$bin" ] && finish

mkdir -p "$cache"
exec 9>"$cache/.lock"
say "waiting for the lock on $cache" && flock 9
[ -x "$bin" ] && finish     # built by whoever held the lock

say "building qemu $version with ${#patches[@]} patches into $out"
apt_install "${deps[@]}"
command -v dpkg-source >/dev/null || die "dpkg-source missing (dpkg-dev)"

tmp=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
(
    cd "$tmp"
    chmod 755 "$tmp"    # apt-get source downloads as _apt when it can
    say "fetching the source"
    apt-get source -q --download-only "qemu=$version" >&2
    dpkg-source -x ./*.dsc src >&2
)
cd "$tmp/src"
for p in "${patches[@]}"; do
    say "applying $(basename "$p")"
    patch -p1 --batch --forward --quiet < "$p" >&2
done
series_abi=include/standard-headers/vmcg/hooks-abi.h
if [ -n "$abi" ] && ! cmp -s "$abi" "$series_abi"; then
    say "warning: using $abi, which differs from the series' copy" \
        "(regenerate the patches)"
    cp "$abi" "$series_abi"
fi

say "configuring"
mkdir build
cd build
../configure --target-list=x86_64-softmmu --disable-install-blobs \
    --without-default-features --enable-kvm --enable-tcg --enable-fdt=system \
    --firmwarepath="$firmwarepath" \
    --disable-docs --disable-tools --disable-guest-agent --disable-werror \
    --disable-debug-info >&2
say "compiling (ninja -j$jobs)"
ninja -j"$jobs" qemu-system-x86_64 >&2

mkdir "$tmp/out"
install -m 755 qemu-system-x86_64 "$tmp/out/qemu-system-x86_64"
strip "$tmp/out/qemu-system-x86_64" 2>/dev/null || true
{
    echo "source=qemu $version"
    echo "patches=$(cd "$here" && echo [0-9][0-9][0-9][0-9]-*.patch)"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ) in $(( $(date +%s) - start ))s"
    echo "firmwarepath=$firmwarepath"
} > "$tmp/out/BUILDINFO"
cd /
rm -rf "$out"
mv -T "$tmp/out" "$out"     # atomic: readers see all or nothing
say "built in $(( $(date +%s) - start ))s"
finish
