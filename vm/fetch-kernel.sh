#!/bin/sh
# Fetch the Debian kernel that linux-image-amd64 currently points to, without
# installing it, and cache what the VM test needs:
#   CACHE/<package>/vmlinux      uncompressed kernel (QEMU boots it via PVH,
#                                which skips the slow in-guest decompression)
#   CACHE/<package>/modules/*.ko the virtio PCI and AF_VSOCK modules
#                                (virtio transport and loopback), uncompressed
#   CACHE/<package>/modules/load-order  their names in load order (modules
#                                the kernel has built in are left out)
# Prints CACHE/<package> on stdout. Usage: fetch-kernel.sh CACHE_DIR
set -eu

cache=${1:?usage: fetch-kernel.sh CACHE_DIR}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

# Load order matters: busybox insmod does not resolve dependencies (the
# order vm-testing.md measured: the virtio core, PCI, then vsock).
MODULES="drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev
drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci net/vmw_vsock/vsock
net/vmw_vsock/vmw_vsock_virtio_transport_common net/vmw_vsock/vmw_vsock_virtio_transport
net/vmw_vsock/vsock_loopback"

log() { echo "fetch-kernel: $*" >&2; }

resolve() {
        apt-cache depends linux-image-amd64 2>/dev/null |
                awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }'
}

complete() {
        [ -s "$1/vmlinux" ] && [ -s "$1/modules/load-order" ] || return 1
        for m in $(cat "$1/modules/load-order"); do [ -s "$1/modules/$m.ko" ] || return 1; done
        # A cache from before a module was added to MODULES is incomplete.
        [ "$(cat "$1/modules/wanted")" = "$(echo $MODULES)" ]
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

# Extract only the kernel image and the modules we load: the full package
# is several hundred MB unpacked.
mkdir -p "$work/x"
dpkg-deb --fsys-tarfile "$deb" |
        tar -x -C "$work/x" --wildcards './boot/vmlinuz-*' './lib/modules/*/kernel/net/vmw_vsock/*' \
                './lib/modules/*/kernel/drivers/virtio/*' './lib/modules/*/modules.builtin'

mkdir -p "$work/out/modules"
vmlinuz=$(ls "$work"/x/boot/vmlinuz-* | head -n 1)
off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -n 1 | cut -d: -f1)
if [ -z "$off" ]; then
        log "no xz payload in $vmlinuz"
        exit 1
fi
tail -c +"$((off + 1))" "$vmlinuz" | xz -dc --single-stream >"$work/out/vmlinux"

kdir=$(ls -d "$work"/x/lib/modules/*)
: >"$work/out/modules/load-order"
for path in $MODULES; do
        m=$(basename "$path")
        src="$kdir/kernel/$path"
        if [ -f "$src.ko" ]; then
                cp "$src.ko" "$work/out/modules/$m.ko"
        elif [ -f "$src.ko.xz" ]; then
                xz -dc "$src.ko.xz" >"$work/out/modules/$m.ko"
        elif [ -f "$src.ko.zst" ]; then
                zstd -qdc "$src.ko.zst" >"$work/out/modules/$m.ko"
        elif grep -q "^kernel/$path.ko" "$kdir/modules.builtin" 2>/dev/null; then
                continue # built into this kernel: nothing to load
        else
                log "module $m not found in $pkg"
                exit 1
        fi
        echo "$m" >>"$work/out/modules/load-order"
done
echo $MODULES >"$work/out/modules/wanted"
echo "$pkg" >"$work/out/package"

rm -rf "$dest"
mv "$work/out" "$dest"
log "cached $pkg in $dest"
echo "$dest"
