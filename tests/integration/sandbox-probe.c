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
 * (The same with the argument "probe".) With other arguments, one of the
 * other ways a workload reaches past the agent:
 *   sandbox-probe tty            open /dev/tty and try TIOCSTI on it
 *   sandbox-probe cont PID       SIGCONT to PID (another session's job)
 *   sandbox-probe memsearch PID REVERSED
 *                                read every readable mapping of PID through
 *                                /proc/PID/mem and look for REVERSED, read
 *                                backwards (so that the needle is not in our
 *                                own request): "memsearch found|absent BYTES"
 *
 * Run by the sandbox, hostile and pid-ns suites through the real agent. */
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/ptrace.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
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
                /* A kernel without IA32 emulation answers int 0x80 with
                 * SIGSEGV: the kernel's, not a sanitizer's handler. */
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

/* io_uring performs system calls the filter never sees: set up a ring and
 * ask it for an AF_VSOCK socket (IORING_OP_SOCKET), closed at once, never
 * connected. Prints io_uring_setup and io_uring_socket_vsock. */
static void io_uring_checks(void) {
        struct io_uring_params p = { 0 };
        long fd = syscall(__NR_io_uring_setup, 4L, &p);
        report("io_uring_setup", fd);
        if (fd < 0) {
                report("io_uring_socket_vsock", -1);
                return;
        }
        size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(uint32_t);
        size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
        uint8_t *sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, (int) fd, IORING_OFF_SQ_RING);
        uint8_t *cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, (int) fd, IORING_OFF_CQ_RING);
        struct io_uring_sqe *sqes = mmap(NULL, p.sq_entries * sizeof *sqes, PROT_READ | PROT_WRITE,
                                         MAP_SHARED | MAP_POPULATE, (int) fd, IORING_OFF_SQES);
        if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) {
                report("io_uring_socket_vsock", -1);
                close((int) fd);
                return;
        }
        memset(&sqes[0], 0, sizeof sqes[0]);
        sqes[0].opcode = 45; /* IORING_OP_SOCKET (5.19) */
        sqes[0].fd = AF_VSOCK;
        sqes[0].off = SOCK_STREAM | SOCK_CLOEXEC;
        uint32_t *tail = (uint32_t *) (sq + p.sq_off.tail), *mask = (uint32_t *) (sq + p.sq_off.ring_mask);
        uint32_t *array = (uint32_t *) (sq + p.sq_off.array);
        array[*tail & *mask] = 0;
        __atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
        long r = syscall(__NR_io_uring_enter, fd, 1L, 1L, (long) IORING_ENTER_GETEVENTS, NULL, 0L);
        if (r < 0) {
                report("io_uring_socket_vsock", r);
        } else {
                uint32_t head = __atomic_load_n((uint32_t *) (cq + p.cq_off.head), __ATOMIC_ACQUIRE);
                uint32_t cmask = *(uint32_t *) (cq + p.cq_off.ring_mask);
                struct io_uring_cqe *cqe = (struct io_uring_cqe *) (cq + p.cq_off.cqes) + (head & cmask);
                errno = cqe->res < 0 ? -cqe->res : 0;
                report_fd("io_uring_socket_vsock", cqe->res < 0 ? -1 : cqe->res);
        }
        close((int) fd);
}

/* The agent's controlling terminal must be out of reach. */
static int tty_checks(void) {
        long fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
        report("devtty", fd);
        if (fd >= 0) {
                /* A space in the terminal's input: harmless, and proof. */
                report("tiocsti", ioctl((int) fd, TIOCSTI, " "));
                close((int) fd);
        }
        return 0;
}

static int memsearch(pid_t pid, const char *reversed) {
        size_t n = strlen(reversed);
        char needle[256];
        if (n == 0 || n >= sizeof needle)
                return 2;
        for (size_t i = 0; i < n; i++)
                needle[i] = reversed[n - 1 - i];
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/maps", (int) pid);
        FILE *maps = fopen(path, "re");
        snprintf(path, sizeof path, "/proc/%d/mem", (int) pid);
        int mem = open(path, O_RDONLY | O_CLOEXEC);
        if (!maps || mem < 0) {
                printf("memsearch %s\n", strerrorname_np(errno));
                return 0;
        }
        unsigned long long total = 0;
        bool found = false;
        char line[512];
        static uint8_t buf[1 << 20];
        while (fgets(line, sizeof line, maps)) {
                unsigned long long a, b;
                char perms[8];
                if (sscanf(line, "%llx-%llx %7s", &a, &b, perms) != 3 || perms[0] != 'r')
                        continue;
                /* A sanitizer's shadow reserves terabytes; nothing of ours
                 * is that big. */
                if (b - a > (1ULL << 30))
                        continue;
                /* Chunks that overlap by the needle's length. */
                for (unsigned long long off = a; off < b;) {
                        size_t want = (size_t) (b - off < sizeof buf ? b - off : sizeof buf);
                        ssize_t k = pread(mem, buf, want, (off_t) off);
                        if (k <= 0)
                                break;
                        total += (unsigned long long) k;
                        if (memmem(buf, (size_t) k, needle, n))
                                found = true;
                        off += (size_t) k > n ? (size_t) k - n : (size_t) k;
                        if ((size_t) k < want)
                                break;
                }
        }
        fclose(maps);
        close(mem);
        printf("memsearch %s %llu\n", found ? "found" : "absent", total);
        return 0;
}

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

int main(int argc, char **argv) {
        struct iovec iov = { 0 };
        int sv[2];

        if (argc == 2 && strcmp(argv[1], "tty") == 0)
                return tty_checks();
        if (argc == 3 && strcmp(argv[1], "cont") == 0) {
                report("sigcont", kill((pid_t) atoi(argv[2]), SIGCONT));
                return 0;
        }
        if (argc == 4 && strcmp(argv[1], "memsearch") == 0)
                return memsearch((pid_t) atoi(argv[2]), argv[3]);
        if (argc > 2 || (argc == 2 && strcmp(argv[1], "probe") != 0)) {
                fprintf(stderr, "usage: sandbox-probe [probe | tty | cont PID | memsearch PID REVERSED]\n");
                return 2;
        }

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

        io_uring_checks();

#if defined(__x86_64__)
        in_child("i386_ptrace", nr_i386_ptrace);
        in_child("x32_ptrace", nr_x32_ptrace);
#endif
        print_status();
        return fflush(stdout) == 0 ? 0 : 1;
}
