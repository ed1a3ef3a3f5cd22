/* Attempts every operation the agent's workload sandbox restricts and
 * prints one line per check: "<name> <result>", where <result> is "ok",
 * the errno name ("EPERM", "EINVAL", ...) or "killed SIGSYS". Then the
 * sandbox-relevant lines of /proc/self/status, verbatim.
 *
 * Every call uses arguments the kernel rejects on its own when the call is
 * allowed, with an errno other than EPERM, and checked before any
 * privilege test where the kernel allows it: so EPERM means the seccomp
 * filter (or, for the capability-gated calls, a dropped capability), and
 * nothing here ever changes the system. The AF_VSOCK socket is created and
 * closed, never connected.
 *
 * Run by tests/integration/test-sandbox-agent.c through the real agent. */
#include <errno.h>
#include <linux/keyctl.h>
#include <linux/ptrace.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#define UFFD_USER_MODE_ONLY_FLAG 1 /* skips the unprivileged_userfaultfd check */

static void report(const char *name, long r) {
        if (r >= 0)
                printf("%s ok\n", name);
        else {
                const char *e = strerrorname_np(errno);
                if (e)
                        printf("%s %s\n", name, e);
                else
                        printf("%s errno%d\n", name, errno);
        }
}

/* A call whose success returns an fd: close it. */
static void report_fd(const char *name, long r) {
        report(name, r);
        if (r >= 0)
                close((int) r);
}

#if defined(__x86_64__)
/* Other system call ABIs on the same kernel: the filter must not let them
 * through (libseccomp kills the process for any non-native architecture
 * and for x32 numbers). Done in a child, which may be killed. */
/* Both return 0 or the errno the call failed with. */
static int nr_i386_ptrace(void) {
        long ret;
        long nr = 26; /* ptrace in the i386 table */
        __asm__ volatile("int $0x80"
                         : "=a"(ret)
                         : "a"(nr), "b"((long) PTRACE_PEEKUSR), "c"((long) getppid()), "d"(0L)
                         : "memory", "r8", "r9", "r10", "r11");
        return ret < 0 && ret > -4096 ? (int) -ret : 0;
}

static int nr_x32_ptrace(void) {
        /* x32 ptrace is 521 with __X32_SYSCALL_BIT. */
        return syscall(0x40000000L | 521L, (long) PTRACE_PEEKUSR, (long) getppid(), 0L, 0L) < 0 ? errno : 0;
}

static void in_child(const char *name, int (*fn)(void)) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
                report(name, -1);
                return;
        }
        if (pid == 0) {
                /* The kernel's verdict, not a sanitizer's: ASan's SIGSEGV
                 * handler would turn the kill into exit status 1. */
                signal(SIGSEGV, SIG_DFL);
                /* A SIGSYS kill would otherwise dump core in the cwd. */
                struct rlimit rl = { 0, 0 };
                (void) setrlimit(RLIMIT_CORE, &rl);
                (void) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
                int e = fn();
                _exit(e > 0 && e < 256 ? e : 0);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
        if (WIFSIGNALED(st)) {
                const char *s = sigabbrev_np(WTERMSIG(st));
                printf("%s killed SIG%s\n", name, s ? s : "?");
        } else if (WEXITSTATUS(st) == 0)
                printf("%s ok\n", name);
        else {
                const char *e = strerrorname_np(WEXITSTATUS(st));
                printf("%s %s\n", name, e ? e : "?");
        }
}
#endif

static void print_status(void) {
        static const char *const keys[] = { "Uid:", "NoNewPrivs:", "Seccomp:", "CapInh:", "CapPrm:",
                                            "CapEff:", "CapBnd:", "CapAmb:" };
        FILE *f = fopen("/proc/self/status", "re");
        if (!f) {
                printf("status %s\n", strerrorname_np(errno));
                return;
        }
        char line[256];
        while (fgets(line, sizeof line, f))
                for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
                        if (strncmp(line, keys[i], strlen(keys[i])) == 0)
                                fputs(line, stdout);
        fclose(f);
}

int main(void) {
        struct iovec iov = { 0 };
        int sv[2];

        /* Not traced by us: ESRCH when allowed, whatever our privilege. */
        report("ptrace", syscall(SYS_ptrace, (long) PTRACE_PEEKUSR, (long) getppid(), 0L, 0L));
        /* Non-zero flags: EINVAL before anything else. */
        report("process_vm_readv", syscall(SYS_process_vm_readv, (long) getppid(), &iov, 1L, &iov, 1L, 1L));
        report("process_vm_writev", syscall(SYS_process_vm_writev, (long) getppid(), &iov, 1L, &iov, 1L, 1L));

        /* Created and closed at once, never connected. */
        report_fd("socket_vsock", syscall(SYS_socket, (long) AF_VSOCK, (long) (SOCK_STREAM | SOCK_CLOEXEC), 0L));
        /* The kernel reads the domain as an int: high register bits must not
         * get past the filter. */
        report_fd("socket_vsock_hibits",
                  syscall(SYS_socket, (long) ((1UL << 32) | AF_VSOCK), (long) (SOCK_STREAM | SOCK_CLOEXEC), 0L));
        long r = syscall(SYS_socketpair, (long) AF_VSOCK, (long) (SOCK_STREAM | SOCK_CLOEXEC), 0L, sv);
        report("socketpair_vsock", r);
        if (r == 0) {
                close(sv[0]);
                close(sv[1]);
        }
        report_fd("socket_unix", syscall(SYS_socket, (long) AF_UNIX, (long) (SOCK_STREAM | SOCK_CLOEXEC), 0L));
        r = syscall(SYS_socketpair, (long) AF_UNIX, (long) (SOCK_STREAM | SOCK_CLOEXEC), 0L, sv);
        report("socketpair_unix", r);
        if (r == 0) {
                close(sv[0]);
                close(sv[1]);
        }

        /* Unknown command, no attributes: EINVAL. */
        report_fd("bpf", syscall(SYS_bpf, 100000L, NULL, 0L));
        /* Unknown flag: EINVAL before the attributes are read. */
        report_fd("perf_event_open", syscall(SYS_perf_event_open, NULL, 0L, -1L, -1L, (long) (1UL << 31)));
        /* User-mode-only passes the sysctl check; the unknown flag is EINVAL. */
        report_fd("userfaultfd", syscall(SYS_userfaultfd, (long) (UFFD_USER_MODE_ONLY_FLAG | (1 << 30))));
        /* Root: ENOEXEC (empty image) or ENOSYS (no module support). */
        report("init_module", syscall(SYS_init_module, NULL, 0L, ""));
        /* Root: EBADF. */
        report("finit_module", syscall(SYS_finit_module, -1L, "", 0L));
        /* Root: EFAULT (unreadable name). */
        report("delete_module", syscall(SYS_delete_module, NULL, 0L));
        /* Root: EINVAL (more segments than allowed), or ENOSYS. */
        report("kexec_load", syscall(SYS_kexec_load, 0L, 17L, NULL, 0L));
#ifdef SYS_kexec_file_load
        /* Root: EINVAL (unknown flag; never KEXEC_FILE_UNLOAD), or ENOSYS. */
        report("kexec_file_load", syscall(SYS_kexec_file_load, -1L, -1L, 0L, NULL, (long) (1UL << 31)));
#endif
        /* Unreadable handle or bad mount fd: EFAULT/EBADF for root. */
        report_fd("open_by_handle_at", syscall(SYS_open_by_handle_at, -1L, NULL, 0L));
        /* Unknown operation: EOPNOTSUPP. */
        report("keyctl", syscall(SYS_keyctl, 100000L, 0L, 0L, 0L, 0L));
        /* Unreadable type: EFAULT. */
        report("add_key", syscall(SYS_add_key, NULL, NULL, NULL, 0L, (long) KEY_SPEC_PROCESS_KEYRING));
        report("request_key", syscall(SYS_request_key, NULL, NULL, NULL, 0L));

#if defined(__x86_64__)
        in_child("i386_ptrace", nr_i386_ptrace);
        in_child("x32_ptrace", nr_x32_ptrace);
#endif
        print_status();
        return fflush(stdout) == 0 ? 0 : 1;
}
