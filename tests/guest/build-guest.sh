#!/bin/sh
# Build the vmcg test guest from Debian packages:
#
#   OUT/vmlinuz             the kernel of linux-image-amd64's current version
#   OUT/vmlinux             the same, uncompressed, for QEMU's PVH boot
#   OUT/initramfs.cpio.gz   busybox-static, tests/guest/init as /init, the
#                           virtio modules the guest needs (dependencies from
#                           modules.dep), tests/guest/memhog.c built static,
#                           and guest/ (vmcg-guest-agent) built static
#   OUT/disk.ext2           a 256 MiB ext2 image holding one 240 MiB file of
#                           random data, `data`, that guests mount read-only
#                           at /mnt/disk to fill their page cache from
#   OUT/manifest            key=value facts the harness prints and checks
#
# Usage: tests/guest/build-guest.sh [OUT]
#   OUT defaults to $VMCG_GUEST_DIR, else build/test-guest under the repository
#   (build/guest is meson's output for guest/, the agent).
#
# Idempotent: OUT/stamp holds the package versions and the hashes of every
# input; when it matches, nothing is done. Downloaded .debs and the unpacked
# kernel are kept in OUT/cache, keyed by version, so a rebuild after editing
# init or memhog.c takes seconds.
#
# Installs with apt-get, only when missing: cpio, gzip, gcc and libc6-dev (to
# build memhog), and qemu-system-x86 (to run the guest; not when VMCG_QEMU
# names another QEMU). The guest's packages are downloaded (apt-get download)
# and unpacked (dpkg -x), never installed, so the host's /boot and modules are
# untouched. VMCG_SKIP_DEPS=1 disables every apt-get install.
#
# Environment: VMCG_GUEST_KERNEL_PKG overrides the kernel package (default:
# what linux-image-amd64 depends on).
#
# Exit status: 0 built or up to date; 77 the host cannot have the guest (no
# apt-get, no package archive, a tool missing that may not be installed),
# which tests report as a skip; 1 any other failure, which is a bug.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-${VMCG_GUEST_DIR:-$repo/build/test-guest}}

# The virtio drivers the test guest uses, and ext4 (which mounts ext2, with
# CONFIG_EXT4_USE_FOR_EXT2) for the data disk; everything they need comes
# from modules.dep, except crc32c_generic: ext4 asks the crypto API for
# "crc32c" at every mount (no symbol dependency, so modules.dep cannot say)
# and would fail with "Cannot load crc32c driver". Debian 6.1 builds all of
# them as modules (CONFIG_VIRTIO=m); the 8250 serial console, tmpfs and
# devtmpfs are built in.
modules="virtio_pci virtio_balloon virtio_console virtio_blk crc32c_generic ext4"

# The data disk: page cache the guest can fill and the kernel can reclaim.
# Random data, so no host (KSM) or guest mechanism can share its pages.
disk_mib=256
disk_data_mib=240

say() {
	echo "build-guest: $*" >&2
}

die() {
	say "error: $*"
	exit 1
}

unavailable() {
	say "unavailable: $*"
	exit 77
}

apt_updated=0
apt_update_once() {
	if [ $apt_updated = 0 ]; then
		say "apt-get update"
		apt-get update -qq >&2 || unavailable "apt-get update failed"
		apt_updated=1
	fi
}

# need COMMAND PACKAGE: installs PACKAGE when COMMAND is not found.
need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	[ "${VMCG_SKIP_DEPS:-0}" = 1 ] && unavailable "$1 is missing (package $2) and VMCG_SKIP_DEPS=1"
	[ "$(id -u)" = 0 ] || unavailable "$1 is missing: apt-get install $2 (as root)"
	apt_update_once
	say "installing $2 (for $1)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >&2 ||
		unavailable "apt-get install $2 failed"
}

command -v apt-get >/dev/null 2>&1 ||
	unavailable "needs Debian's apt-get (the guest is made of Debian packages)"
need dpkg-deb dpkg
need cpio cpio
need gzip gzip
need gcc gcc
need sha256sum coreutils
need flock util-linux
need mke2fs e2fsprogs
if [ "$(gcc -print-file-name=libc.a)" = libc.a ]; then
	# libc.a has no command to look for; install the package by name.
	[ "${VMCG_SKIP_DEPS:-0}" = 1 ] && unavailable "libc.a is missing (package libc6-dev)"
	[ "$(id -u)" = 0 ] || unavailable "libc.a is missing: apt-get install libc6-dev (as root)"
	apt_update_once
	say "installing libc6-dev (libc.a, for the static memhog)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libc6-dev >&2 ||
		unavailable "apt-get install libc6-dev failed"
fi
if [ "$(gcc -print-file-name=libjson-c.a)" = libjson-c.a ]; then
	# The static vmcg-guest-agent links json-c's archive.
	[ "${VMCG_SKIP_DEPS:-0}" = 1 ] && unavailable "libjson-c.a is missing (package libjson-c-dev)"
	[ "$(id -u)" = 0 ] || unavailable "libjson-c.a is missing: apt-get install libjson-c-dev (as root)"
	apt_update_once
	say "installing libjson-c-dev (libjson-c.a, for the static vmcg-guest-agent)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libjson-c-dev >&2 ||
		unavailable "apt-get install libjson-c-dev failed"
fi
# The guest runs under QEMU; install Debian's unless another one is named.
if [ -z "${VMCG_QEMU:-}" ]; then
	need qemu-system-x86_64 qemu-system-x86
fi

mkdir -p "$out/cache"
out=$(cd "$out" && pwd)
cache=$out/cache

# One build at a time per output directory: tests may call this in parallel.
exec 9>"$out/.lock"
flock 9

stage=
dstage=
trap 'rm -rf "$stage" "$dstage"' EXIT

# Resolve the versioned kernel package behind the linux-image-amd64 meta
# package, and the versions apt would install (one apt-cache call each: they
# take a second apiece).
resolve() {
	kpkg=${VMCG_GUEST_KERNEL_PKG:-$(apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: *\(linux-image-[0-9][^ ]*\).*/\1/p' | head -n 1)}
	[ -n "$kpkg" ] || return 0
	policy=$(apt-cache policy "$kpkg" busybox-static 2>/dev/null || true)
	kver_pkg=$(echo "$policy" | awk -v p="$kpkg:" '/^[^ ]/ { cur = $1 }
		cur == p && $1 == "Candidate:" && $2 != "(none)" { print $2 }')
	bb_ver=$(echo "$policy" | awk '/^[^ ]/ { cur = $1 }
		cur == "busybox-static:" && $1 == "Candidate:" && $2 != "(none)" { print $2 }')
}

kpkg=
kver_pkg=
bb_ver=
resolve
if [ -z "$kpkg" ] || [ -z "$kver_pkg" ] || [ -z "$bb_ver" ]; then
	# A fresh machine has no package lists yet.
	apt_update_once
	resolve
fi
if [ -z "$kpkg" ] || [ -z "$kver_pkg" ] || [ -z "$bb_ver" ]; then
	if [ -f "$out/stamp" ] && [ -f "$out/vmlinuz" ] && [ -f "$out/initramfs.cpio.gz" ]; then
		say "warning: cannot resolve package versions; keeping the existing guest"
		exit 0
	fi
	unavailable "cannot resolve linux-image-amd64 / busybox-static with apt-cache"
fi
# linux-image-6.1.0-56-amd64 -> 6.1.0-56-amd64, the name of its modules dir.
kver=${kpkg#linux-image-}

# The agent's sources, and the version meson.build gives it.
agent_src="$repo/guest/agent.c $repo/guest/agent-proto.c $repo/guest/agent-proto.h"
agent_version=$(sed -n "s/^ *version: *'\([^']*\)'.*/\1/p" "$repo/meson.build" | head -n 1)
# shellcheck disable=SC2086 # agent_src is a list of paths without blanks
inputs_hash=$({ cat "$here/build-guest.sh" "$here/init" "$here/memhog.c" $agent_src; echo "$agent_version"; } |
	sha256sum | cut -d' ' -f1)
stamp="kernel=$kpkg $kver_pkg
busybox=busybox-static $bb_ver
gcc=$(gcc -dumpfullversion 2>/dev/null || gcc -dumpversion)
inputs=$inputs_hash
modules=$modules"

# The data disk depends on nothing above; it has its own stamp.
disk_stamp="ext2 image ${disk_mib} MiB, data ${disk_data_mib} MiB of /dev/urandom, v1"
if [ ! -f "$out/disk.ext2" ] || [ "$(cat "$out/disk.stamp" 2>/dev/null)" != "$disk_stamp" ]; then
	say "making the data disk (ext2, ${disk_data_mib} MiB of random data)"
	dstage=$(mktemp -d "$out/disk.XXXXXX")
	head -c "${disk_data_mib}M" /dev/urandom >"$dstage/data"
	rm -f "$out/disk.ext2.tmp"
	# 4 KiB blocks and few inodes: mke2fs's defaults for a small file
	# system (1 KiB blocks, an inode per 4 KiB) leave no room for the data.
	mke2fs -q -F -t ext2 -O ^metadata_csum -b 4096 -N 64 -m 0 -L vmcgdisk -d "$dstage" \
		"$out/disk.ext2.tmp" "${disk_mib}M" >&2 || {
		rm -f "$out/disk.ext2.tmp"
		die "mke2fs failed"
	}
	rm -rf "$dstage"
	dstage=
	mv "$out/disk.ext2.tmp" "$out/disk.ext2"
	echo "$disk_stamp" >"$out/disk.stamp"
fi

if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ] &&
	[ -f "$out/vmlinuz" ] && [ -f "$out/initramfs.cpio.gz" ] &&
	{ ! grep -qx pvh=yes "$out/manifest" 2>/dev/null || [ -f "$out/vmlinux" ]; }; then
	say "up to date in $out ($kpkg $kver_pkg, busybox $bb_ver)"
	exit 0
fi

# fetch PACKAGE VERSION: prints the path of the .deb, downloading it if needed.
fetch() {
	# apt-get download names the file with the version's ':' escaped as %3a.
	f=
	for d in "$cache"/"$1"_*.deb; do
		if [ -f "$d" ] && [ "$(dpkg-deb -f "$d" Version)" = "$2" ]; then
			f=$d
		fi
	done
	if [ -z "$f" ]; then
		say "downloading $1 $2"
		# _apt cannot write to a root-only directory; download into a
		# world-writable temporary one and move the file.
		dl=$(mktemp -d)
		chmod 777 "$dl"
		(cd "$dl" && apt-get download -q "$1=$2" >&2) || {
			rm -rf "$dl"
			unavailable "apt-get download $1=$2 failed"
		}
		rm -f "$cache"/"$1"_*.deb
		mv "$dl"/*.deb "$cache"/
		rm -rf "$dl"
		for f in "$cache"/"$1"_*.deb; do :; done
	fi
	echo "$f"
}

kdeb=$(fetch "$kpkg" "$kver_pkg")
bbdeb=$(fetch busybox-static "$bb_ver")

# Unpack the kernel once per version; modules.dep is not in the package
# (its postinst runs depmod), so make it with busybox's depmod, which runs
# on the host because busybox-static is static.
kroot=$cache/$kpkg-$kver_pkg
bbroot=$cache/busybox-$bb_ver
if [ ! -f "$bbroot/.done" ]; then
	say "unpacking busybox-static $bb_ver"
	rm -rf "$bbroot"
	dpkg-deb -x "$bbdeb" "$bbroot"
	touch "$bbroot/.done"
fi
busybox=$bbroot/bin/busybox
[ -x "$busybox" ] || die "no bin/busybox in $bbdeb"
if [ ! -f "$kroot/.done" ]; then
	say "unpacking $kpkg $kver_pkg"
	rm -rf "$kroot"
	dpkg-deb -x "$kdeb" "$kroot"
	say "depmod $kver (busybox)"
	"$busybox" depmod -b "$kroot" "$kver"
	touch "$kroot/.done"
	# Older unpacked versions are of no further use.
	for d in "$cache"/linux-image-*; do
		if [ -d "$d" ] && [ "$d" != "$kroot" ]; then
			rm -rf "$d"
		fi
	done
fi
moddir=$kroot/lib/modules/$kver
config=$kroot/boot/config-$kver
[ -f "$moddir/modules.dep" ] || die "no modules.dep in $moddir"
[ -f "$config" ] || die "no kernel config in $kroot/boot"

# The guest depends on these being built in or modular; say which.
for opt in CONFIG_PAGE_REPORTING CONFIG_VIRTIO_BALLOON CONFIG_VIRTIO_CONSOLE CONFIG_VIRTIO_BLK \
	CONFIG_VIRTIO_PCI CONFIG_TMPFS CONFIG_DEVTMPFS CONFIG_SERIAL_8250_CONSOLE CONFIG_RD_GZIP \
	CONFIG_EXT4_FS CONFIG_EXT4_USE_FOR_EXT2; do
	v=$(sed -n "s/^$opt=//p" "$config")
	case $v in
	y | m) ;;
	*) die "$kpkg lacks $opt (needed by the test guest)" ;;
	esac
done

# Module load order: each module after its dependencies, resolved recursively
# from modules.dep (whose lines list a module's dependencies, not their order).
# A module that is built in (modules.builtin) needs no loading.
load_order=$(awk -v want="$modules" '
	function base(p) { sub(/.*\//, "", p); sub(/\.ko(\.[a-z]+)?$/, "", p); gsub(/-/, "_", p); return p }
	function visit(m,   i, n, d) {
		if (m in done) return
		if (m in builtin) { done[m] = 1; return }
		if (!(m in path)) { print "missing module " m > "/dev/stderr"; failed = 1; return }
		done[m] = 1
		n = split(deps[m], d, " ")
		for (i = 1; i <= n; i++) visit(base(d[i]))
		print path[m]
	}
	FILENAME ~ /modules.builtin$/ { builtin[base($1)] = 1; next }
	{ f = $1; sub(/:$/, "", f); m = base(f); path[m] = f; $1 = ""; deps[m] = $0 }
	END { n = split(want, w, " "); for (i = 1; i <= n; i++) visit(w[i]); exit failed }
' "$moddir/modules.builtin" "$moddir/modules.dep") || die "cannot resolve modules: $modules"

# vmlinux: the same kernel uncompressed, for QEMU's PVH boot (-kernel of an
# ELF with a PVH note, CONFIG_PVH). Under TCG it halves the boot (about 5 s
# instead of 10 s on two loaded cores): the bzImage spends the difference
# xz-decompressing itself in emulated code. The compressed payload's place
# is in the bzImage's setup header (Documentation/x86/boot.rst):
# setup_sects at 0x1f1, payload_offset at 0x248, relative to the
# protected-mode code that starts after (setup_sects + 1) sectors.
rm -f "$cache/vmlinux"
if [ "$(sed -n 's/^CONFIG_PVH=//p' "$config")" = y ]; then
	vmlinuz=$kroot/boot/vmlinuz-$kver
	setup_sects=$(od -An -tu1 -j $((0x1f1)) -N1 "$vmlinuz" | tr -d ' ')
	[ "$setup_sects" = 0 ] && setup_sects=4
	payload_offset=$(od -An -tu4 -j $((0x248)) -N4 "$vmlinuz" | tr -d ' ')
	payload=$(((setup_sects + 1) * 512 + payload_offset + 1))
	magic=$(tail -c +"$payload" "$vmlinuz" | od -An -tx1 -N6 | tr -d ' \n')
	case $magic in
	fd377a585a00) need xz xz-utils && decompress="xz -dc --single-stream" ;;
	1f8b*) decompress="gzip -dc" ;;
	*) decompress= ;;
	esac
	if [ -n "$decompress" ] &&
		tail -c +"$payload" "$vmlinuz" | $decompress >"$cache/vmlinux" 2>/dev/null &&
		[ "$(od -An -tx1 -N4 "$cache/vmlinux" | tr -d ' \n')" = 7f454c46 ]; then
		say "extracted vmlinux for PVH boot"
	else
		say "warning: no vmlinux for PVH boot (payload magic $magic); the harness boots vmlinuz"
		rm -f "$cache/vmlinux"
	fi
fi

say "building memhog (static)"
gcc -static -O2 -Wall -Wextra -Wmissing-prototypes -Wstrict-prototypes -Wformat=2 \
	-o "$cache/memhog" "$here/memhog.c"
# Compiled here rather than taken from a meson build dir, so the guest never
# carries a stale agent: its sources are in the stamp above.
say "building vmcg-guest-agent (static)"
# shellcheck disable=SC2086
gcc -static -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wmissing-prototypes -Wstrict-prototypes \
	-Wformat=2 -DVMCG_VERSION="\"$agent_version\"" -I"$repo/guest" \
	-o "$cache/vmcg-guest-agent" "$repo/guest/agent.c" "$repo/guest/agent-proto.c" -ljson-c
strip "$cache/vmcg-guest-agent" 2>/dev/null || true

say "assembling initramfs"
stage=$(mktemp -d "$out/stage.XXXXXX")
mkdir -p "$stage/bin" "$stage/sbin" "$stage/usr/bin" "$stage/usr/sbin" \
	"$stage/proc" "$stage/sys" "$stage/dev" "$stage/run" "$stage/tmp" "$stage/mnt" \
	"$stage/lib/modules/$kver"
cp "$busybox" "$stage/bin/busybox"
# One symlink per applet, where busybox says it belongs.
"$busybox" --list-full | while read -r applet; do
	[ -e "$stage/$applet" ] || ln -s /bin/busybox "$stage/$applet"
done
cp "$here/init" "$stage/init"
chmod 755 "$stage/init"
cp "$cache/memhog" "$stage/bin/memhog"
cp "$cache/vmcg-guest-agent" "$stage/bin/vmcg-guest-agent"
: >"$stage/lib/modules/load-order"
for m in $load_order; do
	mkdir -p "$stage/lib/modules/$kver/$(dirname "$m")"
	cp "$moddir/$m" "$stage/lib/modules/$kver/$m"
	echo "$kver/$m" >>"$stage/lib/modules/load-order"
done
cp "$moddir/modules.dep" "$moddir/modules.builtin" "$stage/lib/modules/$kver/"

modnames=$(printf '%s\n' "$load_order" | sed 's|.*/||; s|\.ko$||' | tr '\n' ' ')
modnames=${modnames% }
manifest="kernel_package=$kpkg
kernel_package_version=$kver_pkg
kernel_release=$kver
busybox_version=$bb_ver
modules=$modnames
page_reporting=$(sed -n 's/^CONFIG_PAGE_REPORTING=//p' "$config")
virtio_balloon=$(sed -n 's/^CONFIG_VIRTIO_BALLOON=//p' "$config")
init_on_alloc_default_on=$(sed -n 's/^CONFIG_INIT_ON_ALLOC_DEFAULT_ON=//p' "$config")
init_on_free_default_on=$(sed -n 's/^CONFIG_INIT_ON_FREE_DEFAULT_ON=//p' "$config")
pvh=$([ -f "$cache/vmlinux" ] && echo yes || echo no)
disk_mib=$disk_mib
disk_data_mib=$disk_data_mib"
mkdir -p "$stage/etc"
echo "$manifest" >"$stage/etc/vmcg-guest"

# Reproducible archive: sorted names, root-owned, fixed mtimes.
(cd "$stage" && find . -mindepth 1 -exec touch -h -d @0 {} + &&
	find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) |
	gzip -9n >"$out/initramfs.cpio.gz.tmp"
cp "$kroot/boot/vmlinuz-$kver" "$out/vmlinuz.tmp"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
if [ -f "$cache/vmlinux" ]; then
	mv "$cache/vmlinux" "$out/vmlinux"
else
	rm -f "$out/vmlinux"
fi
mv "$out/initramfs.cpio.gz.tmp" "$out/initramfs.cpio.gz"
echo "$manifest" >"$out/manifest"
echo "$stamp" >"$out/stamp"
say "built $out/vmlinuz$([ -f "$out/vmlinux" ] && echo ", vmlinux") and $out/initramfs.cpio.gz ($(du -k "$out/initramfs.cpio.gz" | cut -f1) KiB;" \
	"kernel $kver_pkg; modules: $modnames)"
