/* spawn_start(): exec-failure classification (reported through shared
 * memory by the CLONE_VM child), PATH search with the child's own PATH, the
 * ENOEXEC fallback, fds (the caller's table untouched, nothing leaked, even
 * with thousands of fds open), process groups, controlling terminals, and a
 * clean signal state in the child. Every test runs twice: as is, and with
 * pid_ns (as root), where the same must hold for the command under the
 * namespace's init; a few more check what only the namespace does. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/init/pidns.h"
#include "agent/exec/pty.h"
#include "agent/exec/spawn.h"
#include "common/io.h"
#include "common/macro.h"

static char *env_default[] = { "PATH=/usr/bin:/bin", NULL };

/* The second round: spawn with pid_ns. */
static bool pid_ns;
static const char *pid_ns_unavailable; /* why not, when it is not */

struct run {
        int rc;
        int code;               /* from spawn on failure, else the exit status */
        char *error;
        char out[4096];
        size_t out_len;
};

/* Spawn with stdin from /dev/null and stdout+stderr into a pipe; wait. */
static void run(const char *file, char **argv, char **envp, bool search, const char *cwd, struct run *r) {
        memset(r, 0, sizeof *r);
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        struct spawn_params sp = { .pid_ns = pid_ns, .file = file, .argv = argv, .envp = envp ? envp : env_default,
                                   .search_path = search, .cwd = cwd, .fd_in = devnull, .fd_out = p[1],
                                   .fd_err = p[1] };
        pid_t pid;
        int pidfd;
        r->rc = spawn_start(&sp, NULL, &pid, &pidfd, &r->error, &r->code);
        close(p[1]);
        close(devnull);
        ssize_t n = io_read_full(p[0], r->out, sizeof r->out - 1, 0, -1);
        r->out_len = n > 0 ? (size_t) n : 0;
        close(p[0]);
        if (r->rc < 0)
                return;
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        close(pidfd);
        r->code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void test_ok_and_output(void **state) {
        struct run r;
        char *argv[] = { "sh", "-c", "echo out; echo err >&2; exit 3", NULL };
        run("sh", argv, NULL, true, NULL, &r);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.code, 3);
        assert_string_equal(r.out, "out\nerr\n");
}

static void test_not_found(void **state) {
        struct run r;
        char *argv[] = { "no-such-cmd-xyz", NULL };
        run("no-such-cmd-xyz", argv, NULL, true, NULL, &r);
        assert_int_equal(r.rc, -ENOENT);
        assert_int_equal(r.code, 127);
        assert_non_null(strstr(r.error, "not found"));
        free(r.error);

        /* Searched in the child's PATH, not the caller's. */
        char *env[] = { "PATH=/nonexistent", NULL };
        char *argv2[] = { "true", NULL };
        run("true", argv2, env, true, NULL, &r);
        assert_int_equal(r.code, 127);
        free(r.error);

        char *argv3[] = { "/nonexistent/x", NULL };
        run("/nonexistent/x", argv3, NULL, false, NULL, &r);
        assert_int_equal(r.code, 127);
        free(r.error);
}

static void test_not_executable(void **state) {
        struct run r;
        char *argv[] = { "/etc/passwd", NULL };
        run("/etc/passwd", argv, NULL, false, NULL, &r);
        assert_int_equal(r.rc, -EACCES);
        assert_int_equal(r.code, 126);
        assert_non_null(strstr(r.error, "/etc/passwd"));
        free(r.error);
}

static void test_script_without_shebang(void **state) {
        char dir[] = "/tmp/spawn-test-XXXXXX";
        assert_non_null(mkdtemp(dir));
        char path[64];
        snprintf(path, sizeof path, "%s/script", dir);
        FILE *f = fopen(path, "we");
        fputs("echo \"script $1\"\n", f);
        fclose(f);
        chmod(path, 0755);
        char env_path[96];
        snprintf(env_path, sizeof env_path, "PATH=%s:/bin:/usr/bin", dir);
        char *env[] = { env_path, NULL };
        char *argv[] = { "script", "arg", NULL };
        struct run r;
        run("script", argv, env, true, NULL, &r);
        assert_int_equal(r.rc, 0);
        assert_string_equal(r.out, "script arg\n");
        unlink(path);
        rmdir(dir);
}

static void test_cwd(void **state) {
        struct run r;
        char *argv[] = { "pwd", NULL };
        run("pwd", argv, NULL, true, "/tmp", &r);
        assert_int_equal(r.code, 0);
        assert_string_equal(r.out, "/tmp\n");
        run("pwd", argv, NULL, true, "/nonexistent-dir", &r);
        assert_int_equal(r.rc, -ENOENT);
        assert_int_equal(r.code, 127);
        assert_string_equal(r.error, "chdir /nonexistent-dir: no such file or directory");
        free(r.error);
}

static void test_clean_signal_state(void **state) {
        /* The caller blocks and ignores signals; the command must not
         * inherit either. */
        sigset_t m, old;
        sigemptyset(&m);
        sigaddset(&m, SIGTERM);
        sigaddset(&m, SIGINT);
        sigprocmask(SIG_BLOCK, &m, &old);
        signal(SIGPIPE, SIG_IGN);
        struct run r;
        char *argv[] = { "sh", "-c", "grep -E '^Sig(Blk|Ign)' /proc/self/status", NULL };
        run("sh", argv, NULL, true, NULL, &r);
        sigprocmask(SIG_SETMASK, &old, NULL);
        signal(SIGPIPE, SIG_DFL);
        assert_int_equal(r.code, 0);
        assert_non_null(strstr(r.out, "SigBlk:\t0000000000000000"));
        assert_non_null(strstr(r.out, "SigIgn:\t0000000000000000"));
}

/* `sh -c @script` with stdin and stdout+stderr on pipes: writes @input,
 * closes stdin, reads the output to EOF into @out, reaps. Checks in
 * between with @between(pid) if given. Returns the wait status. */
static int run_piped(const char *script, const char *input, char *out, size_t size, void (*between)(pid_t)) {
        int in[2], o[2];
        assert_int_equal(pipe2(in, O_CLOEXEC), 0);
        assert_int_equal(pipe2(o, O_CLOEXEC), 0);
        char *argv[] = { "sh", "-c", (char *) script, NULL };
        struct spawn_params sp = { .pid_ns = pid_ns, .file = "sh", .argv = argv, .envp = env_default, .search_path = true,
                                   .fd_in = in[0], .fd_out = o[1], .fd_err = o[1] };
        pid_t pid;
        int pidfd, code;
        char *err = NULL;
        assert_int_equal(spawn_start(&sp, NULL, &pid, &pidfd, &err, &code), 0);
        close(in[0]);
        close(o[1]);
        if (between)
                between(pid);
        assert_int_equal(write(in[1], input, strlen(input)), (ssize_t) strlen(input));
        close(in[1]);
        memset(out, 0, size);
        ssize_t n = io_read_full(o[0], out, size - 1, 0, -1); /* to EOF */
        assert_true(n > 0);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        close(o[0]);
        close(pidfd);
        return st;
}

static void assert_own_group(pid_t pid) {
        assert_int_equal(getpgid(pid), pid); /* its own group (blocked in read) */
}

static void test_group_and_fds(void **state) {
        /* Low fds as sources: 0..2 swapped around must still land right. */
        char buf[256];
        run_piped("read x; echo \"got $x\"; ls /proc/self/fd | wc -l", "yes\n", buf, sizeof buf, assert_own_group);
        /* 0, 1, 2 and the fd ls opens: nothing leaked from the parent. */
        assert_string_equal(buf, "got yes\n4\n");
}

static void test_tty(void **state) {
        int master, slave;
        assert_int_equal(pty_open(30, 90, &master, &slave), 0);
        char *argv[] = { "sh", "-c", "stty size; tty; read x", NULL };
        struct spawn_params sp = { .pid_ns = pid_ns, .file = "sh", .argv = argv, .envp = env_default, .search_path = true,
                                   .fd_in = slave, .fd_out = slave, .fd_err = slave, .tty = true };
        pid_t pid;
        int pidfd, code;
        char *err = NULL;
        assert_int_equal(spawn_start(&sp, NULL, &pid, &pidfd, &err, &code), 0);
        close(slave);
        assert_int_equal(getsid(pid), pid);
        char buf[512] = "";
        size_t have = 0;
        while (!strstr(buf, "/dev/pts/") || !strchr(strstr(buf, "/dev/pts/"), '\n')) {
                assert_int_equal(io_wait(master, POLLIN, deadline_from_ms(10000), -1), 0);
                ssize_t n = read(master, buf + have, sizeof buf - 1 - have);
                assert_true(n > 0);
                have += (size_t) n;
                buf[have] = '\0';
        }
        assert_non_null(strstr(buf, "30 90"));
        assert_int_equal(pty_foreground(master), pid);
        assert_int_equal(pty_resize(master, 40, 100), 0);
        assert_int_equal(write(master, "\n", 1), 1);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFEXITED(st));
        close(master);
        close(pidfd);
}

static void test_reset_signals_given(void **state) {
        /* The caller names what it changed; the child resets just that. */
        sigset_t changed;
        sigemptyset(&changed);
        sigaddset(&changed, SIGPIPE);
        sigaddset(&changed, SIGUSR2);
        signal(SIGPIPE, SIG_IGN);
        signal(SIGUSR2, SIG_IGN);
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        char *argv[] = { "sh", "-c", "grep -E '^SigIgn' /proc/self/status", NULL };
        struct spawn_params sp = { .pid_ns = pid_ns, .file = "sh", .argv = argv, .envp = env_default, .search_path = true,
                                   .fd_in = devnull, .fd_out = p[1], .fd_err = p[1], .reset_signals = &changed };
        pid_t pid;
        int pidfd, code;
        char *err = NULL;
        assert_int_equal(spawn_start(&sp, NULL, &pid, &pidfd, &err, &code), 0);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGUSR2, SIG_DFL);
        close(p[1]);
        close(devnull);
        char buf[256] = "";
        assert_true(io_read_full(p[0], buf, sizeof buf - 1, 0, -1) > 0);
        close(p[0]);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        close(pidfd);
        assert_non_null(strstr(buf, "SigIgn:\t0000000000000000"));
}

static void test_many_fds(void **state) {
        /* The child shares our fd table until it unshares a small part of
         * it: with thousands of fds open (some without CLOEXEC, some at
         * 0..2 of the sources' numbers), our own 0..2 must be untouched,
         * the child must see exactly its three, and EOF must still come
         * (no extra copy of a pipe end stays behind in the caller). */
        struct rlimit rl;
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
        if (rl.rlim_cur < 4200) {
                rl.rlim_cur = rl.rlim_max < 4200 ? rl.rlim_max : 4200;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }
        int n = 0, fds[4000];
        for (; n < 4000; n++) {
                fds[n] = open("/dev/null", O_RDONLY | (n % 2 ? 0 : O_CLOEXEC));
                if (fds[n] < 0)
                        break;
        }
        assert_true(n > 100);
        char before[3][256];
        for (int i = 0; i < 3; i++) {
                char path[64];
                snprintf(path, sizeof path, "/proc/self/fd/%d", i);
                ssize_t k = readlink(path, before[i], sizeof before[i] - 1);
                before[i][k > 0 ? k : 0] = '\0';
        }
        for (int round = 0; round < 3; round++) {
                char buf[256];
                int st = run_piped("read x; echo \"$x\"; ls /proc/self/fd | wc -l", "hi\n", buf, sizeof buf, NULL);
                assert_string_equal(buf, "hi\n4\n");
                assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        }
        for (int i = 0; i < 3; i++) {
                char path[64], now[256];
                snprintf(path, sizeof path, "/proc/self/fd/%d", i);
                ssize_t k = readlink(path, now, sizeof now - 1);
                now[k > 0 ? k : 0] = '\0';
                assert_string_equal(now, before[i]);
        }
        for (int i = 0; i < n; i++)
                close(fds[i]);
}

static void test_failure_with_many_fds(void **state) {
        /* A failing child reports through shared memory and is reaped;
         * nothing it did to fds reaches us. */
        int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        int count_before = 0, count_after = 0;
        for (int fd = 0; fd < 1024; fd++)
                count_before += fcntl(fd, F_GETFD) >= 0;
        for (int i = 0; i < 20; i++) {
                char *argv[] = { "no-such-cmd-xyz", NULL };
                struct spawn_params sp = { .pid_ns = pid_ns, .file = "no-such-cmd-xyz", .argv = argv, .envp = env_default,
                                           .search_path = true, .fd_in = devnull, .fd_out = devnull,
                                           .fd_err = devnull, .cwd = i % 2 ? "/nonexistent-dir" : NULL };
                pid_t pid;
                int pidfd, code;
                char *err = NULL;
                int r = spawn_start(&sp, NULL, &pid, &pidfd, &err, &code);
                assert_int_equal(r, -ENOENT);
                assert_int_equal(code, 127);
                free(err);
        }
        for (int fd = 0; fd < 1024; fd++)
                count_after += fcntl(fd, F_GETFD) >= 0;
        assert_int_equal(count_after, count_before);
        /* No zombie left behind. */
        assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
        assert_int_equal(errno, ECHILD);
        close(devnull);
}

/* Out of fds (a pidfd, and the report pipe with pid_ns, are new fds):
 * a clean failure, nothing leaked, no child left, and spawning works
 * again once fds are free. */
static void test_out_of_fds(void **state) {
        int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        assert_true(devnull >= 0);
        char *argv[] = { "true", NULL };
        struct spawn_params sp = { .pid_ns = pid_ns, .file = "true", .argv = argv, .envp = env_default,
                                   .search_path = true, .fd_in = devnull, .fd_out = devnull, .fd_err = devnull };
        pid_t pid;
        int pidfd, code;
        char *err = NULL;
        /* Reserve the slots first: they are taken once, at the first spawn. */
        assert_int_equal(spawn_reserve(), 0);
        int highest = 0, count = 0;
        for (int fd = 0; fd < 4096; fd++)
                if (fcntl(fd, F_GETFD) >= 0) {
                        highest = fd;
                        count++;
                }
        struct rlimit old, low;
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
        low = old;
        low.rlim_cur = (rlim_t) highest + 1;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
        /* Fill the gaps below: no free fd number left. */
        int fillers[4096], n_fill = 0;
        while (n_fill < 4096 && (fillers[n_fill] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
                n_fill++;
        assert_int_equal(errno, EMFILE);
        int r = spawn_start(&sp, NULL, &pid, &pidfd, &err, &code);
        for (int i = 0; i < n_fill; i++)
                close(fillers[i]);
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
        assert_int_equal(r, -EMFILE);
        assert_int_equal(code, 126);
        assert_non_null(err);
        assert_string_equal(err, "start process: too many open files");
        free(err);
        int after = 0;
        for (int fd = 0; fd < 4096; fd++)
                after += fcntl(fd, F_GETFD) >= 0;
        assert_int_equal(after, count);
        assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
        assert_int_equal(errno, ECHILD);

        err = NULL;
        assert_int_equal(spawn_start(&sp, NULL, &pid, &pidfd, &err, &code), 0);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        close(pidfd);
        close(devnull);
}

/* ---- only with pid_ns ---------------------------------------------------- */

static void test_ns_identity(void **state) {
        struct run r;
        char *argv[] = { "sh", "-c", "echo $$ $PPID; cat /proc/1/comm; ls /proc | grep -c '^[0-9]*$'", NULL };
        run("sh", argv, NULL, true, NULL, &r);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.code, 0);
        /* init, sh, ls, grep: the namespace's own /proc. */
        assert_string_equal(r.out, "2 1\nvsock-init\n4\n");
}

/* The caller signals the init's group (the agent does): the command is in
 * it, the init ignores it and exits with the command's 128+N. SIGKILL to
 * the init ends the namespace. */
static void test_ns_signals(void **state) {
        for (int round = 0; round < 2; round++) {
                int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
                char *argv[] = { "sleep", "1000", NULL };
                struct spawn_params sp = { .pid_ns = true, .file = "sleep", .argv = argv, .envp = env_default,
                                           .search_path = true, .fd_in = devnull, .fd_out = devnull,
                                           .fd_err = devnull };
                pid_t pid;
                int pidfd, code;
                char *err = NULL;
                assert_int_equal(spawn_start(&sp, NULL, &pid, &pidfd, &err, &code), 0);
                close(devnull);
                assert_int_equal(getpgid(pid), pid);
                if (round == 0)
                        assert_int_equal(kill(-pid, SIGTERM), 0);
                else
                        assert_int_equal(kill(pid, SIGKILL), 0);
                int st;
                assert_int_equal(waitpid(pid, &st, 0), pid);
                if (round == 0)
                        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 128 + SIGTERM);
                else
                        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
                close(pidfd);
        }
}

/* Whatever the command leaves behind ends with it: the output pipe, held
 * by a background sleep, reaches EOF as soon as the command exits. */
static void test_ns_leftovers(void **state) {
        struct run r;
        char *argv[] = { "sh", "-c", "sleep 1000 & setsid sleep 1000 & echo bye", NULL };
        int64_t start = now_ns();
        run("sh", argv, NULL, true, NULL, &r);
        assert_int_equal(r.code, 0);
        assert_string_equal(r.out, "bye\n");
        /* Hang catcher only: without the namespace this takes 1000 s. */
        assert_true(now_ns() - start < INT64_C(20) * 1000000000);
}

static int ns_on(void **state) {
        if (pid_ns_unavailable) {
                print_message("no PID namespace: %s\n", pid_ns_unavailable);
                skip();
        }
        pid_ns = true;
        return 0;
}

static int ns_off(void **state) {
        pid_ns = false;
        return 0;
}

#define NS(t) { #t " (pid-ns)", t, ns_on, ns_off, NULL }
#define BOTH(t) cmocka_unit_test(t), NS(t)

int main(int argc, char **argv) {
        /* spawn.c starts each namespace's init from this very binary. */
        if (pidns_init_main(argc, argv) >= 0)
                return 0;
        const struct CMUnitTest tests[] = {
                BOTH(test_ok_and_output),
                BOTH(test_not_found),
                BOTH(test_not_executable),
                BOTH(test_script_without_shebang),
                BOTH(test_cwd),
                BOTH(test_clean_signal_state),
                BOTH(test_group_and_fds),
                BOTH(test_tty),
                BOTH(test_reset_signals_given),
                BOTH(test_many_fds),
                BOTH(test_failure_with_many_fds),
                BOTH(test_out_of_fds),
                NS(test_ns_identity),
                NS(test_ns_signals),
                NS(test_ns_leftovers),
        };
        /* Like the agent: started with signals ignored (a background job),
         * the children must still get them at SIG_DFL. */
        spawn_init();
        const char *what;
        int r = spawn_check_pid_ns(&what);
        static char why[256];
        if (r < 0) {
                snprintf(why, sizeof why, "cannot %s: %s", what, strerror(-r));
                pid_ns_unavailable = why;
        }
        return cmocka_run_group_tests_name("spawn", tests, NULL, NULL);
}
