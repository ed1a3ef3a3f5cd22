/* The workload sandbox. The VM is the real isolation boundary; this only
 * keeps a workload (possibly running as root) from the few things that
 * reach through it or into the kernel itself: the agent's own vsock
 * channel, other processes' memory, kernel code and kernel secrets.
 * Ordinary administration inside the guest (networking, chown, kill,
 * setting the clock, raw sockets) stays possible.
 *
 * The filter is a short BPF program written out here (not generated with
 * libseccomp, which alone would add a tenth to the static agent): check
 * the architecture, then compare the syscall number against the list. It
 * is built once in sandbox_new(); installing it never allocates. */
#include "sandbox.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/macro.h"

/* The native architecture, as the kernel reports it in seccomp_data.arch.
 * Syscalls of any other ABI the kernel accepts from this process (the
 * i386 entry point on x86-64, x32) have other numbers: they kill. */
#if defined(__x86_64__) && !defined(__ILP32__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#define X32_SYSCALL_BIT 0x40000000u
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#elif defined(__i386__)
#define NATIVE_ARCH AUDIT_ARCH_I386
#elif defined(__arm__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define NATIVE_ARCH AUDIT_ARCH_ARM
#elif defined(__riscv) && __riscv_xlen == 64
#define NATIVE_ARCH AUDIT_ARCH_RISCV64
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define NATIVE_ARCH AUDIT_ARCH_PPC64LE
#elif defined(__powerpc64__)
#define NATIVE_ARCH AUDIT_ARCH_PPC64
#elif defined(__s390x__)
#define NATIVE_ARCH AUDIT_ARCH_S390X
#elif defined(__loongarch64) && defined(AUDIT_ARCH_LOONGARCH64)
#define NATIVE_ARCH AUDIT_ARCH_LOONGARCH64
#else
#error "sandbox.c: add this architecture's AUDIT_ARCH_* value"
#endif

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

/* Room for the fixed part and one compare-and-return pair per call. */
#define FILTER_MAX 64

struct sandbox {
        struct sock_fprog prog;
        struct sock_filter insns[FILTER_MAX];
        uint64_t drop_caps;
        bool self_applied;      /* sandbox_apply_self() succeeded */
};

/* Calls that fail with EPERM for every workload. Calls already gated by a
 * dropped capability are listed only when an unprivileged path to them
 * exists or the call is a well-known escape/exploit primitive. Deliberately
 * NOT blocked: mount, umount2, pivot_root, swapon/swapoff, reboot (all need
 * CAP_SYS_ADMIN or CAP_SYS_BOOT, dropped below, and blocking them would
 * also break them inside a workload's own user namespace for no gain; the
 * agent itself, under the same filter, still mounts and reboots in init
 * mode), unshare/clone namespaces (rootless container tools need them).
 * A call this architecture lacks is simply not listed. */
static const int blocked_syscalls[] = {
        /* Reading or writing other processes' memory, the agent's included
         * (it holds the host connection). */
        __NR_ptrace,
        __NR_process_vm_readv,
        __NR_process_vm_writev,
        /* Replacing the running kernel. */
#ifdef __NR_kexec_load
        __NR_kexec_load,
#endif
#ifdef __NR_kexec_file_load
        __NR_kexec_file_load,
#endif
        /* Loading kernel code (also needs CAP_SYS_MODULE). */
        __NR_init_module,
        __NR_finit_module,
        __NR_delete_module,
        /* eBPF: kernel code from user space; unprivileged bpf() may be
         * enabled on the guest kernel. */
        __NR_bpf,
        /* Large kernel attack surface and a side channel; allowed for
         * unprivileged users by default (perf_event_paranoid <= 2). */
        __NR_perf_event_open,
        /* Stalls kernel accesses to user memory at will: the standard
         * primitive for widening kernel race windows. */
        __NR_userfaultfd,
        /* Opens files by handle, bypassing path permissions (the classic
         * container "shocker" escape). */
        __NR_open_by_handle_at,
        /* The kernel keyring is not namespaced: keys stored by the agent or
         * the system would be reachable; same choice as Docker's default. */
        __NR_add_key,
        __NR_keyctl,
        __NR_request_key,
};

/* Removed from the bounding, effective, permitted, inheritable and ambient
 * sets. Kept: CAP_SYS_TIME (a guest may run its own NTP), CAP_NET_ADMIN,
 * CAP_SETUID/SETGID (needed for the user switch after the sandbox). */
static const int dropped_caps[] = {
        CAP_SYS_ADMIN,  /* mount, namespaces setup, most "admin" ioctls */
        CAP_SYS_PTRACE, /* ptrace / process_vm_* of any process */
        CAP_SYS_MODULE, /* load kernel modules */
        CAP_SYS_RAWIO,  /* iopl, /dev/mem, raw block I/O */
        CAP_SYS_BOOT,   /* reboot, kexec */
        CAP_MAC_ADMIN,  /* change LSM policy */
        CAP_MAC_OVERRIDE,
        CAP_BPF,        /* bpf() maps and programs (kernel >= 5.8) */
        CAP_PERFMON,    /* perf events, kernel >= 5.8 */
        CAP_SYSLOG,     /* kernel log and unmasked kernel pointers */
};

#define LD_W(off) ((struct sock_filter) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (off)))
#define JEQ(k, jt, jf) ((struct sock_filter) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (k), (jt), (jf)))
#define JGE(k, jt, jf) ((struct sock_filter) BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, (k), (jt), (jf)))
#define RET(v) ((struct sock_filter) BPF_STMT(BPF_RET | BPF_K, (v)))

/* The socket domain is an int: only the low 32 bits of the 64-bit
 * argument count (a caller could set high bits the kernel ignores). */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ARG0_LO offsetof(struct seccomp_data, args[0])
#else
#define ARG0_LO (offsetof(struct seccomp_data, args[0]) + 4)
#endif

static void build_filter(struct sandbox *s) {
        struct sock_filter *f = s->insns;
        size_t n = 0;

        f[n++] = LD_W(offsetof(struct seccomp_data, arch));
        f[n++] = JEQ(NATIVE_ARCH, 1, 0);
        f[n++] = RET(SECCOMP_RET_KILL_PROCESS);
        f[n++] = LD_W(offsetof(struct seccomp_data, nr));
#ifdef X32_SYSCALL_BIT
        /* x32 calls carry the native arch with this bit set in the number;
         * -1 (a tracer cancelling the call) passes, as with libseccomp. */
        f[n++] = JGE(X32_SYSCALL_BIT, 0, 2);
        f[n++] = JEQ(UINT32_MAX, 1, 0);
        f[n++] = RET(SECCOMP_RET_KILL_PROCESS);
#endif
        for (size_t i = 0; i < ARRAY_SIZE(blocked_syscalls); i++) {
                f[n++] = JEQ((uint32_t) blocked_syscalls[i], 0, 1);
                f[n++] = RET(SECCOMP_RET_ERRNO | EPERM);
        }
        /* AF_VSOCK is the agent's channel to the host: a workload must not
         * open its own (impersonating the agent, reaching host services).
         * (Where socketcall(2) multiplexes sockets, its arguments sit in
         * memory a filter cannot read; the direct calls are covered.) */
        f[n++] = JEQ(__NR_socket, 1, 0);
        f[n++] = JEQ(__NR_socketpair, 0, 3);
        f[n++] = LD_W(ARG0_LO);
        f[n++] = JEQ(AF_VSOCK, 0, 1);
        f[n++] = RET(SECCOMP_RET_ERRNO | EPERM);
        f[n++] = RET(SECCOMP_RET_ALLOW);

        _Static_assert(ARRAY_SIZE(blocked_syscalls) * 2 + 13 <= FILTER_MAX, "FILTER_MAX too small");
        s->prog.len = (unsigned short) n;
        s->prog.filter = s->insns;
}

int sandbox_new(struct sandbox **ret) {
        struct sandbox *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        build_filter(s);
        for (size_t i = 0; i < ARRAY_SIZE(dropped_caps); i++)
                s->drop_caps |= UINT64_C(1) << dropped_caps[i];
        *ret = s;
        return 0;
}

void sandbox_free(struct sandbox *s) {
        free(s);
}

static int caps_get(struct __user_cap_data_struct data[2]) {
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
        if (syscall(SYS_capget, &h, data) < 0)
                return -errno;
        return 0;
}

static int caps_set(struct __user_cap_data_struct data[2]) {
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
        if (syscall(SYS_capset, &h, data) < 0)
                return -errno;
        return 0;
}

/* The parts of the drop that a child inherits through fork and execve:
 * the bounding set (what a root workload gets back on execve), and the
 * inheritable and ambient sets. */
static int drop_inherited_caps(uint64_t mask, struct __user_cap_data_struct data[2]) {
        /* Lowering the bounding set needs CAP_SETPCAP, which an agent
         * started without full privileges may lack: then the other sets
         * still drop. */
        if (data[0].effective & (UINT32_C(1) << CAP_SETPCAP)) {
                for (int c = 0; c < 64; c++) {
                        if (!(mask & (UINT64_C(1) << c)))
                                continue;
                        if (prctl(PR_CAPBSET_DROP, (unsigned long) c, 0, 0, 0) < 0 && errno != EINVAL)
                                return -errno; /* EINVAL: cap unknown to this kernel */
                }
        }
        for (int c = 0; c < 64; c++) {
                if (!(mask & (UINT64_C(1) << c)))
                        continue;
                if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, (unsigned long) c, 0, 0) < 0 && errno != EINVAL)
                        return -errno;
        }
        data[0].inheritable &= ~(uint32_t) mask;
        data[1].inheritable &= ~(uint32_t) (mask >> 32);
        return 0;
}

static void lower_own_caps(uint64_t mask, struct __user_cap_data_struct data[2]) {
        uint32_t lo = ~(uint32_t) mask, hi = ~(uint32_t) (mask >> 32);
        data[0].effective &= lo;
        data[0].permitted &= lo;
        data[1].effective &= hi;
        data[1].permitted &= hi;
}

/* no_new_privs is required for an unprivileged filter install, and it
 * keeps setuid binaries and file capabilities from restoring what was
 * dropped. */
static int install_filter(const struct sock_fprog *prog, bool all_threads) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return -errno;
        if (all_threads) {
                if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, prog) == 0)
                        return 0;
                if (errno != ENOSYS)
                        return -errno;
        }
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog, 0, 0) < 0)
                return -errno;
        return 0;
}

int sandbox_apply_self(struct sandbox *s) {
        struct __user_cap_data_struct data[2];
        int r = caps_get(data);
        if (r < 0)
                return r;
        r = drop_inherited_caps(s->drop_caps, data);
        if (r < 0)
                return r;
        /* Effective and permitted stay: init mode still mounts and
         * reboots. Each child lowers its own. */
        r = caps_set(data);
        if (r < 0)
                return r;
        r = install_filter(&s->prog, true);
        if (r < 0)
                return r;
        s->self_applied = true;
        return 0;
}

int sandbox_apply_child(const struct sandbox *s) {
        struct __user_cap_data_struct data[2];
        int r = caps_get(data);
        if (r < 0)
                return r;
        if (!s->self_applied) {
                r = drop_inherited_caps(s->drop_caps, data);
                if (r < 0)
                        return r;
        }
        /* Lowering effective/permitted never needs privilege. */
        lower_own_caps(s->drop_caps, data);
        r = caps_set(data);
        if (r < 0)
                return r;
        if (s->self_applied)
                return 0; /* filter and no_new_privs are inherited */
        return install_filter(&s->prog, false);
}
