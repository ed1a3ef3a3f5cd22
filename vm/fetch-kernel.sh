#!/bin/sh
# Fetch the Debian kernel that linux-image-amd64 currently points to, without
# installing it, and cache what the VM test needs:
#   CACHE/<package>/vmlinux      uncompressed kernel (QEMU boots it via PVH,
#                                which skips the slow in-guest decompression)
#   CACHE/<package>/modules/*.ko the AF_VSOCK loopback modules, uncompressed
# Prints CACHE/<package> on stdout. Usage: fetch-kernel.sh CACHE_DIR
set -eu

cache=${1:?usage: fetch-kernel.sh CACHE_DIR}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

# Load order matters: busybox insmod does not resolve dependencies.
MODULES="vsock vmw_vsock_virtio_transport_common vsock_loopback"

log() { echo "fetch-kernel: $*" >&2; }

resolve() {
        apt-cache depends linux-image-amd64 2>/dev/null |
                awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }'
}

complete() {
        [ -s "$1/vmlinux" ] || return 1
        for m in $MODULES; do [ -s "$1/modules/$m.ko" ] || return 1; done
}

pkg=$(resolve)
if [ -z "$pkg" ]; then
        log "apt-cache does not know linux-image-amd64; running apt-get update"
        apt-get update -q >&2 || true
        pkg=$(resolve)
fi
if [ -z "$pkg" ]; then
        # Offline and no package lists: fall back to any complete cached kernel.
        for d in "$cache"/linux-image-*; do
                if complete "$d"; then log "offline, using cached $d"; echo "$d"; exit 0; fi
        done
        log "cannot resolve linux-image-amd64"
        exit 1
fi

dest="$cache/$pkg"
if complete "$dest"; then
        echo "$dest"
        exit 0
fi

log "downloading $pkg"
work=$(mktemp -d "$cache/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
# apt-get download writes into the current directory; as root it warns that
# the _apt user cannot write there, which is harmless.
(cd "$work" && apt-get download -q "$pkg" >&2 2>/dev/null) ||
        (cd "$work" && apt-get update -q >&2 && apt-get download -q "$pkg" >&2)
deb=$(ls "$work"/*.deb)

# Extract only the kernel image and the vsock modules: the full package is
# several hundred MB unpacked.
mkdir -p "$work/x"
dpkg-deb --fsys-tarfile "$deb" |
        tar -x -C "$work/x" --wildcards './boot/vmlinuz-*' './lib/modules/*/kernel/net/vmw_vsock/*'

mkdir -p "$work/out/modules"
vmlinuz=$(ls "$work"/x/boot/vmlinuz-* | head -n 1)
off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -n 1 | cut -d: -f1)
if [ -z "$off" ]; then
        log "no xz payload in $vmlinuz"
        exit 1
fi
tail -c +"$((off + 1))" "$vmlinuz" | xz -dc --single-stream >"$work/out/vmlinux"

moddir=$(ls -d "$work"/x/lib/modules/*/kernel/net/vmw_vsock)
for m in $MODULES; do
        if [ -f "$moddir/$m.ko" ]; then
                cp "$moddir/$m.ko" "$work/out/modules/$m.ko"
        elif [ -f "$moddir/$m.ko.xz" ]; then
                xz -dc "$moddir/$m.ko.xz" >"$work/out/modules/$m.ko"
        elif [ -f "$moddir/$m.ko.zst" ]; then
                zstd -qdc "$moddir/$m.ko.zst" >"$work/out/modules/$m.ko"
        else
                log "module $m not found in $pkg"
                exit 1
        fi
done
echo "$pkg" >"$work/out/package"

rm -rf "$dest"
mv "$work/out" "$dest"
log "cached $pkg in $dest"
echo "$dest"
