#!/bin/sh
# Install every Debian package the build and the tests need, and nothing
# that is already there. Safe to run repeatedly; quiet when nothing is
# missing. Extra package sets: "deps.sh vm" for the QEMU test.
set -eu

base="meson ninja-build pkg-config gcc binutils clang libclang-rt-14-dev libjansson-dev libseccomp-dev libcmocka-dev python3 procps iproute2 libfuse3-dev fuse3 tar"
vm="qemu-system-x86 busybox-static cpio xz-utils"

want="$base"
for set in "$@"; do
        case "$set" in
        vm) want="$want $vm" ;;
        *) echo "deps.sh: unknown package set '$set'" >&2; exit 2 ;;
        esac
done

missing=""
for p in $want; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
                missing="$missing $p"
        fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
        echo "deps.sh: missing packages:$missing (run as root, or install them)" >&2
        exit 1
fi
echo "deps.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
if ! apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $missing >&2; then
        apt-get -o DPkg::Lock::Timeout=600 update -q >&2
        apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $missing >&2
fi
