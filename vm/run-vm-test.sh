#!/bin/sh
# make test-vm: prove the agent, vsockctl and the library over real AF_VSOCK.
#
# Boots a Debian kernel under QEMU (TCG) with an initramfs whose PID 1 is
# `vsock-agent --init`, and a virtio-vsock device served by vsock-vhost
# (vhost-user-vsock-pci, guest CID 3). The host driver (vm/host-test.py)
# starts vsock-vhost and QEMU and drives a default-configured guest agent
# from the host through Firecracker's hybrid socket (vsock-mux:), serving
# the guest's connections to the host; then the guest's driver runs its own
# checks over AF_VSOCK loopback (CID 1) and reports on the serial console.
# This machine never connects to any vsock address itself: the host side
# is unix sockets into vsock-vhost, the rest stays in the guest's kernel.
#
# Usage: vm/run-vm-test.sh BUILD_DIR
# Environment: VM_CACHE (kernel cache, default build/vm-cache),
#              VM_TIMEOUT (seconds for the whole boot, default 420),
#              VM_KEEP=1 (keep the work directory's initramfs and log).
set -eu

[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
vm="$top/vm"
cache=${VM_CACHE:-$top/build/vm-cache}
limit=${VM_TIMEOUT:-420}
work="$build/vm-test"
t_start=$(date +%s)

say() { echo "test-vm: $*"; }
die() { echo "test-vm: $*" >&2; exit 1; }

agent="$build/src/agent/vsock-agent"
# vm/meson.build links vsockctl statically for the guest; a dynamic one
# would do too (install_bin copies its libraries).
ctl="$build/vm/vsockctl-static"
[ -x "$ctl" ] || ctl="$build/src/cli/vsockctl"
check="$build/vm/vsock-vmcheck"
vhost="$build/src/vhost/vsock-vhost"
hostctl="$build/src/cli/vsockctl"
busybox=${BUSYBOX:-/bin/busybox}
for f in "$agent" "$ctl" "$check" "$busybox" "$vhost" "$hostctl"; do
        [ -x "$f" ] || die "missing $f (run 'make build' with the default static agent, and 'scripts/deps.sh vm')"
done
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing (scripts/deps.sh vm)"
command -v python3 >/dev/null || die "python3 missing (scripts/deps.sh)"

is_static() { ! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q 'INTERP'; }
is_static "$agent" || die "$agent is not static (configure with -Dstatic_agent=true)"
is_static "$busybox" || die "$busybox is not static (install busybox-static)"

# ---- kernel ------------------------------------------------------------
kdir=$("$vm/fetch-kernel.sh" "$cache") || die "cannot fetch the kernel"
say "kernel $(cat "$kdir/package")"

# ---- initramfs -----------------------------------------------------------
rm -rf "$work"
root="$work/root"
mkdir -p "$root/bin" "$root/sbin" "$root/lib/modules/vsock" "$root/etc" "$root/vmtest" \
        "$root/root" "$root/home/tester" "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/run"

# Copy an executable; a dynamic one brings its shared libraries along.
install_bin() { # src dest
        cp "$1" "$root$2"
        is_static "$1" && return 0
        ldd "$1" | awk '/=> \// { print $3 } /^\t\/[^ ]+ \(/ { print $1 }' | while read -r lib; do
                mkdir -p "$root$(dirname "$lib")"
                cp -L "$lib" "$root$lib"
        done
}
install_bin "$busybox" /bin/busybox
install_bin "$agent" /sbin/vsock-agent
install_bin "$ctl" /bin/vsockctl
install_bin "$check" /bin/vsock-vmcheck
cp "$kdir"/modules/*.ko "$kdir/modules/load-order" "$root/lib/modules/vsock/"
cp "$vm/guest-init.sh" "$root/init"
cp "$vm/guest-driver.sh" "$root/vmtest/driver.sh"
chmod 0755 "$root/init" "$root/vmtest/driver.sh"
chmod 1777 "$root/tmp"
# busybox sh gives a background job /dev/null as stdin and fails without
# one; until the agent mounts devtmpfs over /dev, an empty file serves.
: >"$root/dev/null"
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
tester:x:1000:1000:tester:/home/tester:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
tty:x:5:
tester:x:1000:
nogroup:x:65534:
EOF
chown 1000:1000 "$root/home/tester" 2>/dev/null || true
(cd "$root" && find . -print0 | cpio --null -o -H newc -R 0:0 --quiet | gzip -1) >"$work/initrd.gz"
say "initramfs $(du -k "$work/initrd.gz" | cut -f1) KiB"

# ---- boot ----------------------------------------------------------------
# The agent (PID 1) takes its options from the kernel command line: it
# listens on 6000/6002 and trusts CID 1, so the driver can start a second,
# default-configured agent on the protocol's ports 5000/5002 for the host.
append="console=ttyS0 panic=-1 quiet loglevel=3 hostname=vmtest"
append="$append vsock.listen=vsock::6000 vsock.ready=vsock::6002 vsock.allow_cid=1"
log="$work/console.log"
: >"$log"
say "booting with vsock-vhost (timeout ${limit}s)"
python3 "$vm/host-test.py" --work "$work" --backend "$vhost" --ctl "$hostctl" --vmcheck "$check" \
        --kernel "$kdir/vmlinux" --initrd "$work/initrd.gz" --append "$append" --log "$log" \
        --timeout "$limit" >"$work/host.log" 2>&1 &
hpid=$!
# Show the host's and the guest's per-check lines as they arrive.
tail -n +1 -f --pid="$hpid" "$work/host.log" 2>/dev/null | grep -a --line-buffered 'HOSTTEST' &
tail -n +1 -f --pid="$hpid" "$log" 2>/dev/null | grep -a --line-buffered 'VMTEST' | sed -u 's/\r$//; s/^.*VMTEST/VMTEST/' || true
host_rc=0
wait "$hpid" || host_rc=$?
wait

# ---- verdict ---------------------------------------------------------------
clean=$(tr -d '\r' <"$log")
result=$(printf '%s\n' "$clean" | grep -a -o 'VMTEST-RESULT: pass=[0-9]* fail=[0-9]*' | tail -n 1 || true)
host_result=$(grep -a -o 'HOSTTEST-RESULT: pass=[0-9]* fail=[0-9]*' "$work/host.log" | tail -n 1 || true)
elapsed=$(($(date +%s) - t_start))
problem=""
if [ -z "$result" ]; then
        problem="no result marker from the guest"
else
        fails=$(printf '%s\n' "$result" | sed 's/.*fail=//')
        passes=$(printf '%s\n' "$result" | sed 's/.*pass=\([0-9]*\).*/\1/')
        [ "$fails" = 0 ] || problem="$fails guest check(s) failed"
        [ "$passes" -gt 0 ] || problem="no guest check passed"
        # The driver ends with SIGTERM to PID 1: init mode must power off
        # (the kernel says so), not reboot, panic or hang.
        if [ -z "$problem" ] && ! printf '%s\n' "$clean" | grep -q 'reboot: Power down'; then
                problem="the guest stopped without PID 1 powering it off"
        fi
fi
if [ "$host_rc" != 0 ]; then
        problem="${problem:+$problem; }host side failed (${host_result:-no result}; see HOSTTEST lines)"
fi
if [ -n "$problem" ]; then
        echo "==== guest console log ($log) ===="
        printf '%s\n' "$clean"
        echo "==== end of guest console log ===="
        echo "==== vsock-vhost log ($work/vsock-vhost.log) ===="
        tail -n 60 "$work/vsock-vhost.log" 2>/dev/null
        echo "==== end of vsock-vhost log ===="
        die "FAILED: $problem (${elapsed}s)"
fi
say "$result; $host_result; PID 1 powered the guest off on SIGTERM; ${elapsed}s in all"
[ "${VM_KEEP:-0}" = 1 ] || rm -rf "$root"
exit 0
