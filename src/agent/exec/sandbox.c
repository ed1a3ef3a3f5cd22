/* The workload sandbox. The VM is the real isolation boundary; this only
 * keeps a workload (possibly running as root) from the few things that
 * reach through it or into the kernel itself: the agent's own vsock
 * channel, other processes' memory, kernel code and kernel secrets.
 * Ordinary administration inside the guest (networking, chown, kill,
 * setting the clock, raw sockets) stays possible.
 *
 * libseccomp allocates, so the filter is compiled once in sandbox_new()
 * and kept as a plain BPF program; the child installs it with prctl(). */
#include "sandbox.h"

#include <errno.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/io.h"
#include "common/macro.h"

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

struct sandbox {
        struct sock_fprog prog;
        uint64_t drop_caps;
        bool self_applied;      /* sandbox_apply_self() succeeded */
};

/* Calls that fail with EPERM for every workload. Calls already gated by a
 * dropped capability are listed only when an unprivileged path to them
 * exists or the call is a well-known escape/exploit primitive. Deliberately
 * NOT blocked: mount, umount2, pivot_root, swapon/swapoff, reboot (all need
 * CAP_SYS_ADMIN or CAP_SYS_BOOT, dropped below, and blocking them would
 * also break them inside a workload's own user namespace for no gain),
 * unshare/clone namespaces (rootless container tools need them). */
static const char *const blocked_syscalls[] = {
        /* Reading or writing other processes' memory, the agent's included
         * (it holds the host connection). */
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        /* Replacing the running kernel. */
        "kexec_load",
        "kexec_file_load",
        /* Loading kernel code (also needs CAP_SYS_MODULE). */
        "init_module",
        "finit_module",
        "delete_module",
        /* eBPF: kernel code from user space; unprivileged bpf() may be
         * enabled on the guest kernel. */
        "bpf",
        /* Large kernel attack surface and a side channel; allowed for
         * unprivileged users by default (perf_event_paranoid <= 2). */
        "perf_event_open",
        /* Stalls kernel accesses to user memory at will: the standard
         * primitive for widening kernel race windows. */
        "userfaultfd",
        /* Opens files by handle, bypassing path permissions (the classic
         * container "shocker" escape). */
        "open_by_handle_at",
        /* The kernel keyring is not namespaced: keys stored by the agent or
         * the system would be reachable; same choice as Docker's default. */
        "add_key",
        "keyctl",
        "request_key",
        /* io_uring performs system calls the filter never sees:
         * IORING_OP_SOCKET makes the AF_VSOCK socket refused below, and
         * IORING_OP_OPENAT and friends get past any rule on arguments. A
         * large attack surface too; container runtimes deny it likewise.
         * Programs fall back to plain calls (EPERM is also what
         * kernel.io_uring_disabled answers). */
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
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

static inline void seccomp_releasep(scmp_filter_ctx *ctx) {
        if (*ctx)
                seccomp_release(*ctx);
}

static int build_filter(struct sock_fprog *ret) {
        _cleanup_(seccomp_releasep) scmp_filter_ctx ctx = NULL;
        _cleanup_close_ int fd = -1;
        _cleanup_free_ struct sock_filter *insns = NULL;
        struct stat st;
        int r;

        /* seccomp_init() adds only the native architecture; any other one
         * (e.g. the i386 ABI through int 0x80 on x86_64, or x32) would see
         * different syscall numbers and must not slip past the rules. */
        ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (!ctx)
                return -ENOMEM;
        r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
        if (r < 0)
                return r;

        for (size_t i = 0; i < ARRAY_SIZE(blocked_syscalls); i++) {
                int nr = seccomp_syscall_resolve_name(blocked_syscalls[i]);
                if (nr == __NR_SCMP_ERROR || nr < 0)
                        continue; /* does not exist on this architecture */
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
                if (r < 0)
                        return r;
        }

        /* AF_VSOCK is the agent's channel to the host: a workload must not
         * open its own (impersonating the agent, reaching host services).
         * The domain is an int: compare only the low 32 bits, or a caller
         * could set high register bits the kernel ignores. */
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
                             SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, AF_VSOCK));
        if (r < 0)
                return r;
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socketpair), 1,
                             SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, AF_VSOCK));
        if (r < 0)
                return r;

        /* libseccomp 2.5 can only export to an fd. */
        fd = memfd_create("vsock-agent-seccomp", MFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = seccomp_export_bpf(ctx, fd);
        if (r < 0)
                return r;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) != 0 ||
            st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS)
                return -EINVAL;
        insns = malloc(st.st_size);
        if (!insns)
                return -ENOMEM;
        if (lseek(fd, 0, SEEK_SET) < 0)
                return -errno;
        ssize_t n = io_read_full(fd, insns, st.st_size, 0, -1);
        if (n < 0)
                return (int) n;
        if (n != st.st_size)
                return -EIO;

        ret->len = (unsigned short) (st.st_size / sizeof(struct sock_filter));
        ret->filter = TAKE_PTR(insns);
        return 0;
}

int sandbox_new(struct sandbox **ret) {
        _cleanup_free_ struct sandbox *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        int r = build_filter(&s->prog);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ARRAY_SIZE(dropped_caps); i++)
                s->drop_caps |= UINT64_C(1) << dropped_caps[i];
        *ret = TAKE_PTR(s);
        return 0;
}

void sandbox_free(struct sandbox *s) {
        if (!s)
                return;
        free(s->prog.filter);
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

/* LeakSanitizer ptraces the process at exit, which the filter refuses. */
#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(leak_sanitizer)
#define SANDBOX_LSAN 1
#endif
#endif

int sandbox_apply_self(struct sandbox *s) {
#ifdef SANDBOX_LSAN
        /* Children then apply the whole sandbox themselves. */
        (void) s;
        return 0;
#endif
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
