#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/exec/sandbox.h"
#include "common/io.h"

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

/* Must match the list in sandbox.c. */
static const int dropped_caps[] = { CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_BOOT,
                                    CAP_MAC_ADMIN, CAP_MAC_OVERRIDE, 39 /* BPF */, 38 /* PERFMON */, CAP_SYSLOG };

static struct sandbox *sb;

static int setup(void **state) { return sandbox_new(&sb) < 0 ? -1 : 0; }
static int teardown(void **state) {
        sandbox_free(sb);
        return 0;
}

/* Child-side check: cmocka's asserts cannot cross the fork, so a failing
 * check prints itself and becomes the child's exit status. */
#define CHECK(x)                                                                                               \
        do {                                                                                                   \
                if (!(x)) {                                                                                    \
                        dprintf(2, "%s:%d: check failed: %s (errno %d %s)\n", __FILE__, __LINE__, #x, errno,  \
                                strerror(errno));                                                              \
                        return 1;                                                                              \
                }                                                                                              \
        } while (0)

/* Runs @fn in a forked child; returns its wait status. */
static int run_child(int (*fn)(void *), void *arg) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                /* cmocka's handlers would report a crash as a test and carry on here. */
                signal(SIGSEGV, SIG_DFL);
                signal(SIGBUS, SIG_DFL);
                _exit(fn(arg));
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return status;
}

static void assert_child_ok(int status) {
        if (!WIFEXITED(status))
                fail_msg("child killed by signal %d", WTERMSIG(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

/* Runs @pre (if any) in a child, then execs @argv with stdout captured.
 * Returns the wait status; the output goes to @out (NUL-terminated). */
static int run_capture(int (*pre)(void *), void *arg, char *const argv[], char *out, size_t size) {
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (dup2(p[1], 1) < 0)
                        _exit(126);
                if (pre && pre(arg) != 0)
                        _exit(125);
                execv(argv[0], argv);
                _exit(127);
        }
        close(p[1]);
        ssize_t n = io_read_full(p[0], out, size - 1, 0, -1);
        assert_true(n >= 0);
        out[n] = '\0';
        close(p[0]);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return status;
}

static int apply(void *arg) {
        int r = sandbox_apply_child(sb);
        if (r < 0) {
                dprintf(2, "sandbox_apply_child: %s\n", strerror(-r));
                return 1;
        }
        return 0;
}

/* Every call the filter must refuse, with arguments that are harmless
 * without the filter. "baseline" is false where even a failing call could
 * have effects as root (kexec_load with no segments unloads the image). */
struct probe {
        const char *name;
        bool baseline;
        long (*call)(void);
};

static char probe_buf[16] = "probe";

static long p_ptrace_peek(void) { return ptrace(PTRACE_PEEKDATA, getpid(), probe_buf, NULL); }
static long p_vm_readv(void) {
        char dst[8];
        struct iovec l = { dst, sizeof(dst) }, r = { probe_buf, sizeof(dst) };
        return process_vm_readv(getpid(), &l, 1, &r, 1, 0);
}
static long p_vm_writev(void) {
        char src[8] = "written";
        struct iovec l = { src, sizeof(src) }, r = { probe_buf, sizeof(src) };
        return process_vm_writev(getpid(), &l, 1, &r, 1, 0);
}
static long p_socketpair_vsock(void) {
        int sv[2];
        long r = socketpair(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
        if (r == 0) {
                close(sv[0]);
                close(sv[1]);
        }
        return r;
}
static long p_socket_vsock_highbits(void) {
        /* The kernel truncates the domain to an int: must still be caught. */
        long fd = syscall(SYS_socket, 0x100000000L | AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0L);
        if (fd >= 0)
                close((int) fd);
        return fd;
}
static long p_perf(void) { return syscall(SYS_perf_event_open, NULL, 0L, -1L, -1L, 0L); }
static long p_bpf(void) { return syscall(SYS_bpf, 0L, NULL, 0L); }
static long p_userfaultfd(void) {
        long fd = syscall(SYS_userfaultfd, (long) O_CLOEXEC);
        if (fd >= 0)
                close((int) fd);
        return fd;
}
static long p_open_by_handle(void) { return syscall(SYS_open_by_handle_at, -1L, NULL, 0L); }
static long p_keyctl(void) { return syscall(SYS_keyctl, 0L /* GET_KEYRING_ID */, -1L /* thread */, 0L); }
static long p_add_key(void) { return syscall(SYS_add_key, "user", "probe", "x", 1L, -1L); }
static long p_request_key(void) { return syscall(SYS_request_key, "user", "probe-none", NULL, 0L); }
static long p_init_module(void) { return syscall(SYS_init_module, NULL, 0L, ""); }
static long p_finit_module(void) { return syscall(SYS_finit_module, -1L, "", 0L); }
static long p_delete_module(void) { return syscall(SYS_delete_module, "vsock-test-no-such-module", (long) O_NONBLOCK); }
static long p_kexec_load(void) { return syscall(SYS_kexec_load, 0L, 0L, NULL, 0L); }
#ifdef SYS_kexec_file_load
static long p_kexec_file_load(void) { return syscall(SYS_kexec_file_load, -1L, -1L, 0L, "", 0L); }
#endif

static const struct probe probes[] = {
        { "ptrace(PEEKDATA)", true, p_ptrace_peek },
        { "process_vm_readv", true, p_vm_readv },
        { "process_vm_writev", true, p_vm_writev },
        { "socketpair(AF_VSOCK)", true, p_socketpair_vsock },
        { "socket(AF_VSOCK | 1<<32)", false, p_socket_vsock_highbits },
        { "perf_event_open", true, p_perf },
        { "bpf", true, p_bpf },
        { "userfaultfd", true, p_userfaultfd },
        { "open_by_handle_at", true, p_open_by_handle },
        { "keyctl", true, p_keyctl },
        { "add_key", false, p_add_key },
        { "request_key", true, p_request_key },
        { "init_module", false, p_init_module },
        { "finit_module", true, p_finit_module },
        { "delete_module", true, p_delete_module },
        { "kexec_load", false, p_kexec_load },
#ifdef SYS_kexec_file_load
        { "kexec_file_load", false, p_kexec_file_load },
#endif
};

static void test_new_free(void **state) {
        struct sandbox *s = NULL;
        assert_int_equal(sandbox_new(&s), 0);
        assert_non_null(s);
        sandbox_free(s);
        sandbox_free(NULL);
}

static int child_baseline(void *arg) {
        /* Root without the filter: none of the probes fails with EPERM
         * (so EPERM under the filter really comes from the filter). */
        for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
                if (!probes[i].baseline)
                        continue;
                errno = 0;
                long r = probes[i].call();
                if (r < 0 && errno == EPERM) {
                        dprintf(2, "baseline %s: EPERM without the sandbox\n", probes[i].name);
                        return 1;
                }
        }
        CHECK(p_vm_readv() == 8);
        /* Creating (never connecting) a vsock socket works if the kernel
         * has AF_VSOCK. */
        int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(fd >= 0 || errno == EAFNOSUPPORT);
        if (fd >= 0)
                close(fd);
        return 0;
}

static void test_baseline_without_sandbox(void **state) {
        if (getuid() != 0)
                skip();
        assert_child_ok(run_child(child_baseline, NULL));
}

static int child_filter(void *arg) {
        CHECK(apply(NULL) == 0);

        CHECK(ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0 && errno == EPERM);
        for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
                errno = 0;
                long r = probes[i].call();
                if (!(r < 0 && errno == EPERM)) {
                        dprintf(2, "%s: got %ld errno %d, want EPERM\n", probes[i].name, r, errno);
                        return 1;
                }
        }
        CHECK(socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0) < 0 && errno == EPERM);
        CHECK(socket(AF_VSOCK, SOCK_DGRAM | SOCK_CLOEXEC, 0) < 0 && errno == EPERM);

        /* Everything else still works. */
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(fd >= 0);
        close(fd);
        int sv[2];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        close(sv[0]);
        close(sv[1]);
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        CHECK(fd >= 0);
        close(fd);
        CHECK(getpid() > 0);
        CHECK(setresgid(getgid(), getgid(), getgid()) == 0);

        FILE *f = fopen("/proc/self/status", "re");
        CHECK(f);
        char line[256];
        bool nnp = false, seccomp = false;
        while (fgets(line, sizeof(line), f)) {
                if (strcmp(line, "NoNewPrivs:\t1\n") == 0)
                        nnp = true;
                if (strcmp(line, "Seccomp:\t2\n") == 0)
                        seccomp = true;
        }
        fclose(f);
        CHECK(nnp);
        CHECK(seccomp);
        return 0;
}

static void test_filter(void **state) { assert_child_ok(run_child(child_filter, NULL)); }

static int child_exec_true(void *arg) {
        CHECK(apply(NULL) == 0);
        execv("/bin/true", (char *const[]) { "/bin/true", NULL });
        return 2;
}

static void test_exec_under_filter(void **state) { assert_child_ok(run_child(child_exec_true, NULL)); }

static uint64_t status_hex(const char *status, const char *key) {
        const char *p = strstr(status, key);
        assert_non_null(p);
        return strtoull(p + strlen(key), NULL, 16);
}

static uint64_t dropped_mask(void) {
        uint64_t m = 0;
        for (size_t i = 0; i < sizeof(dropped_caps) / sizeof(dropped_caps[0]); i++)
                m |= UINT64_C(1) << dropped_caps[i];
        return m;
}

static void test_caps_after_exec(void **state) {
        if (getuid() != 0)
                skip();
        static char out[8192];
        char *const argv[] = { "/bin/cat", "/proc/self/status", NULL };
        int status = run_capture(apply, NULL, argv, out, sizeof(out));
        assert_child_ok(status);

        /* The exec'd root process gets its caps from the bounding set: the
         * dropped ones stay gone, the rest is still there. */
        uint64_t m = dropped_mask();
        uint64_t bnd = status_hex(out, "CapBnd:\t"), eff = status_hex(out, "CapEff:\t"),
                 prm = status_hex(out, "CapPrm:\t"), inh = status_hex(out, "CapInh:\t"),
                 amb = status_hex(out, "CapAmb:\t");
        assert_int_equal(bnd & m, 0);
        assert_int_equal(eff & m, 0);
        assert_int_equal(prm & m, 0);
        assert_int_equal(inh & m, 0);
        assert_int_equal(amb & m, 0);
        assert_true(eff & (UINT64_C(1) << CAP_CHOWN));
        assert_true(eff & (UINT64_C(1) << CAP_SETUID));
        assert_true(eff & (UINT64_C(1) << CAP_NET_ADMIN));
        assert_non_null(strstr(out, "NoNewPrivs:\t1\n"));
        assert_non_null(strstr(out, "Seccomp:\t2\n"));
}

static int drop_setpcap_then_apply(void *arg) {
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct d[2];
        if (syscall(SYS_capget, &h, d) < 0)
                return 1;
        d[0].effective &= ~(UINT32_C(1) << CAP_SETPCAP);
        if (syscall(SYS_capset, &h, d) < 0)
                return 1;
        return apply(NULL);
}

static void test_without_setpcap(void **state) {
        if (getuid() != 0)
                skip();
        static char out[8192];
        char *const argv[] = { "/bin/cat", "/proc/self/status", NULL };
        int status = run_capture(drop_setpcap_then_apply, NULL, argv, out, sizeof(out));
        /* Succeeds quietly; the bounding set is untouched. */
        assert_child_ok(status);
        uint64_t m = dropped_mask();
        FILE *f = fopen("/proc/self/status", "re");
        assert_non_null(f);
        static char self[8192];
        size_t n = fread(self, 1, sizeof(self) - 1, f);
        self[n] = '\0';
        fclose(f);
        assert_int_equal(status_hex(out, "CapBnd:\t"), status_hex(self, "CapBnd:\t"));
        assert_int_equal(status_hex(out, "CapEff:\t") & m, 0);
        assert_non_null(strstr(out, "Seccomp:\t2\n"));
}

static int setuid_nobody(void *arg) {
        if (arg && apply(NULL) != 0)
                return 1;
        /* After the sandbox, as the agent does: the user switch works. */
        if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
                return 1;
        return 0;
}

static void test_setuid_binary(void **state) {
        if (getuid() != 0)
                skip();
        char dir[] = "/tmp/test-sandbox-XXXXXX";
        assert_non_null(mkdtemp(dir));
        assert_int_equal(chmod(dir, 0755), 0);
        char path[64];
        snprintf(path, sizeof(path), "%s/id", dir);

        /* A setuid-root copy of id(1). */
        int in = open("/usr/bin/id", O_RDONLY | O_CLOEXEC);
        if (in < 0) {
                rmdir(dir);
                skip();
        }
        int outfd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
        assert_true(outfd >= 0);
        char b[65536];
        ssize_t n;
        while ((n = read(in, b, sizeof(b))) > 0)
                assert_int_equal(write(outfd, b, n), n);
        close(in);
        assert_int_equal(fchmod(outfd, 04755), 0);
        close(outfd);

        char out[64];
        char *const argv[] = { path, "-u", NULL };
        /* Without the sandbox the setuid bit works (unless /tmp is nosuid),
         * which is what makes the sandboxed result meaningful. */
        int status = run_capture(setuid_nobody, NULL, argv, out, sizeof(out));
        assert_child_ok(status);
        bool suid_works = strcmp(out, "0\n") == 0;
        status = run_capture(setuid_nobody, (void *) 1, argv, out, sizeof(out));
        assert_child_ok(status);
        assert_string_equal(out, "65534\n");
        unlink(path);
        rmdir(dir);
        if (!suid_works)
                skip();
}

/* The agent's way: sandbox_apply_self() once, sandbox_apply_child() per
 * command. The agent keeps its effective capabilities but gets the filter;
 * a root command exec'd after apply_child has the same result as with the
 * child-only path. */
static uint64_t status_hex_of(const char *status, const char *key) {
        const char *p = strstr(status, key);
        return p ? strtoull(p + strlen(key), NULL, 16) : UINT64_MAX;
}

static int read_status(const char *path, char *buf, size_t size) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        ssize_t n = io_read_full(fd, buf, size - 1, 0, -1);
        close(fd);
        if (n < 0)
                return -1;
        buf[n] = '\0';
        return 0;
}

static int child_apply_self(void *arg) {
        uint64_t m = 0;
        for (size_t i = 0; i < sizeof(dropped_caps) / sizeof(dropped_caps[0]); i++)
                m |= UINT64_C(1) << dropped_caps[i];
        static char st[8192], out[8192];
        CHECK(read_status("/proc/self/status", st, sizeof(st)) == 0);
        uint64_t eff_before = status_hex_of(st, "CapEff:\t");

        CHECK(sandbox_apply_self(sb) == 0);
        CHECK(read_status("/proc/self/status", st, sizeof(st)) == 0);
        CHECK(strstr(st, "Seccomp:\t2\n") != NULL);
        CHECK(strstr(st, "NoNewPrivs:\t1\n") != NULL);
        /* Our own effective set is untouched (init mode needs it). */
        CHECK(status_hex_of(st, "CapEff:\t") == eff_before);
        CHECK((status_hex_of(st, "CapInh:\t") & m) == 0);
        CHECK((status_hex_of(st, "CapAmb:\t") & m) == 0);
        if (eff_before & (UINT64_C(1) << CAP_SETPCAP))
                CHECK((status_hex_of(st, "CapBnd:\t") & m) == 0);
        /* The filter already applies to us. */
        CHECK(socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0) < 0 && errno == EPERM);
        CHECK(p_bpf() < 0 && errno == EPERM);

        /* A command started from here: apply_child only lowers its caps. */
        int p[2];
        CHECK(pipe2(p, O_CLOEXEC) == 0);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                if (dup2(p[1], 1) < 0 || sandbox_apply_child(sb) < 0)
                        _exit(125);
                execv("/bin/cat", (char *const[]) { "/bin/cat", "/proc/self/status", NULL });
                _exit(127);
        }
        close(p[1]);
        ssize_t n = io_read_full(p[0], out, sizeof(out) - 1, 0, -1);
        close(p[0]);
        int status;
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK(n > 0);
        out[n] = '\0';
        CHECK(strstr(out, "Seccomp:\t2\n") != NULL);
        CHECK(strstr(out, "NoNewPrivs:\t1\n") != NULL);
        CHECK((status_hex_of(out, "CapEff:\t") & m) == 0);
        CHECK((status_hex_of(out, "CapPrm:\t") & m) == 0);
        CHECK((status_hex_of(out, "CapInh:\t") & m) == 0);
        CHECK((status_hex_of(out, "CapAmb:\t") & m) == 0);
        if (eff_before & (UINT64_C(1) << CAP_SETPCAP))
                CHECK((status_hex_of(out, "CapBnd:\t") & m) == 0);
        if (eff_before & (UINT64_C(1) << CAP_CHOWN))
                CHECK(status_hex_of(out, "CapEff:\t") & (UINT64_C(1) << CAP_CHOWN));
        return 0;
}

static void test_apply_self(void **state) {
#if defined(__SANITIZE_ADDRESS__)
        skip(); /* a no-op under LeakSanitizer (sandbox.h) */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(leak_sanitizer)
        skip();
#endif
#endif
        assert_child_ok(run_child(child_apply_self, NULL));
}

#ifdef __x86_64__
static int int80_getpid(void *arg) {
        if (arg && apply(NULL) != 0)
                return 1;
        long ret;
        /* i386 getpid (20) through the 32-bit entry point. */
        __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory", "r8", "r9", "r10", "r11");
        return ret == getpid() ? 0 : 3;
}

static void test_foreign_arch_killed(void **state) {
        int status = run_child(int80_getpid, NULL);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                skip(); /* no IA32 emulation in this kernel */
        status = run_child(int80_getpid, (void *) 1);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGSYS);
}
#endif

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_new_free),
                cmocka_unit_test(test_baseline_without_sandbox),
                cmocka_unit_test(test_filter),
                cmocka_unit_test(test_exec_under_filter),
                cmocka_unit_test(test_caps_after_exec),
                cmocka_unit_test(test_without_setpcap),
                cmocka_unit_test(test_setuid_binary),
                cmocka_unit_test(test_apply_self),
#ifdef __x86_64__
                cmocka_unit_test(test_foreign_arch_killed),
#endif
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
