#!/bin/busybox sh
# Stage 0 of the VM test guest (/init in the initramfs). It only does what
# the agent cannot: load the virtio and vsock modules (the initramfs has no
# modprobe and no modules.dep, so busybox insmod in the dependency order
# vm/fetch-kernel.sh wrote: the virtio core and PCI transport, vsock, the
# virtio vsock transport for vsock-vhost's device, loopback) and bring up
# the loopback interface for the port-forward checks. Then it hands PID 1
# to the agent, which mounts the rest and takes its options from the kernel
# command line.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin HOME=/root

for m in $(cat /lib/modules/vsock/load-order); do
        insmod "/lib/modules/vsock/$m.ko" || echo "VMTEST: FAIL insmod $m"
done
ip link set lo up || echo "VMTEST: FAIL ip link set lo up"

# The driver starts before the agent exists and waits for its ready port.
# Once this shell execs the agent, the driver is a child the agent never
# spawned: an orphan it must reap as PID 1.
/vmtest/driver.sh &

exec /sbin/vsock-agent --init
echo "VMTEST: FAIL exec /sbin/vsock-agent --init"
poweroff -f
