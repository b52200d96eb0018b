#!/bin/sh
# Install what vmcg needs to build and test on Debian 12 (bookworm).
# Idempotent: packages already present are not touched, and the package
# lists are only refreshed when something is missing.
set -eu

PACKAGES="
build-essential
meson
ninja-build
pkg-config
python3
libglib2.0-dev
libjson-c-dev
libsoup-3.0-dev
libvirt-dev
libvirt-glib-1.0-dev
libvirt-daemon-system
libvirt-daemon-driver-qemu
libvirt-clients
valgrind
clang-format
qemu-system-x86
qemu-utils
cpio
util-linux
systemd
groff-base
etcd-server
openssl
"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "install-deps: all build and test packages are present"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages:$missing" >&2
	echo "install-deps: run as root (or install them yourself) to continue" >&2
	exit 1
fi

echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
