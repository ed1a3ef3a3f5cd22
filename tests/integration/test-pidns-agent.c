/* --pid-ns against the real agent ($AGENT): every command sees its own PID
 * namespace and /proc under a small init, in all four exec modes; signals,
 * cancellation and the grace-period SIGKILL still reach it; whatever it
 * leaves behind ends with it; failures are reported as without the
 * namespace; mounts stay inside; the sandbox still applies (to the init
 * too); and an agent that cannot create namespaces refuses to start. After
 * every test the agent has its baseline fds and no children.
 *
 * Needs root (CAP_SYS_ADMIN for the namespaces): skipped otherwise. */
#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <vsock/vsock.h>

#include "agent-harness.h"
#include "common/buf.h"
#include "common/io.h"

#define BOUND_MS 20000  /* hang catcher for one exchange */
#define GRACE_MS 5000   /* the agent's SIGTERM -> SIGKILL grace */
#define MARKER_KEY "VSOCK_PIDNS"

static struct agent *A;         /* --pid-ns */
static struct agent *P;         /* --pid-ns --privileged */

/* ---- helpers ------------------------------------------------------------- */

static void assert_clean(struct agent *a) {
        int fds, kids;
        if (!agent_wait_clean(a, 15000, &fds, &kids))
                fail_msg("agent %d: %d fds (baseline %d), %d children", (int) a->pid, fds, a->baseline_fds, kids);
}

static void assert_marker_gone(const struct marker *m, int bound_ms, const char *what) {
        size_t n = 0;
        if (!marker_end(m, bound_ms, &n))
                fail_msg("%s: %zu processes survived", what, n);
}

static vsock_conn *dial(const struct agent *a) {
        vsock_conn *c = NULL;
        int r = agent_dial(a, BOUND_MS, &c);
        if (r < 0)
                fail_msg("dial: %s", vsock_strerror(r));
        return c;
}

static struct vsock_call bounded_call(void) {
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_now_ns() + (int64_t) BOUND_MS * 1000000;
        return call;
}

/* Batch exec of `sh -c @cmd`: exit code, stdout (NUL-terminated) in @out. */
static int64_t run(const struct agent *a, const char *cmd, struct buf *out) {
        vsock_conn *c = dial(a);
        struct vsock_exec_request req = { .command = (char *) cmd };
        struct vsock_call call = bounded_call();
        struct vsock_exec_result res = { 0 };
        int r = vsock_exec(c, &req, &call, &res);
        vsock_conn_close(c);
        if (r < 0)
                fail_msg("exec %s: %s (%s)", cmd, vsock_strerror(r), call.remote_error);
        buf_reset(out);
        assert_int_equal(buf_append(out, res.stdout_data, res.stdout_len), 0);
        assert_int_equal(buf_append(out, "", 1), 0);
        int64_t code = res.exit_code;
        if (res.stderr_len)
                print_message("stderr of %s: %.*s\n", cmd, (int) res.stderr_len, (const char *) res.stderr_data);
        vsock_exec_result_clear(&res);
        return code;
}

static const char *text(const struct buf *b) { return (const char *) buf_head(b); }

/* Streaming modes: collect output; when @trigger shows up, act once. */
struct session_io {
        struct buf out;
        const char *trigger;
        bool fired;
        vsock_exec_ctl *ctl;
        int signo;              /* Signal frame to send on the trigger, or 0 */
        int stdin_w;            /* write @keys to it on the trigger (TTY), or -1 */
        const char *keys;
};

static int on_output(void *userdata, enum vsock_stream_id stream, const uint8_t *data, size_t len) {
        struct session_io *s = userdata;
        (void) stream;
        if (buf_append(&s->out, data, len) < 0)
                return -ENOMEM;
        if (s->trigger && !s->fired && memmem(buf_head(&s->out), buf_size(&s->out), s->trigger, strlen(s->trigger))) {
                s->fired = true;
                if (s->signo && vsock_exec_ctl_signal(s->ctl, s->signo) < 0)
                        return -EIO;
                if (s->stdin_w >= 0 && write(s->stdin_w, s->keys, strlen(s->keys)) < 0)
                        return -errno;
        }
        return 0;
}

enum mode { MODE_BATCH, MODE_STREAM, MODE_PIPE, MODE_TTY };

/* Run @cmd in @mode; stdin stays open (pipe, tty) until the call ends. */
static int64_t run_mode(const struct agent *a, enum mode mode, const char *cmd, struct session_io *s) {
        if (mode == MODE_BATCH) {
                int64_t code = run(a, cmd, &s->out);
                assert_int_equal(buf_truncate(&s->out, buf_size(&s->out) - 1), 0); /* the NUL */
                return code;
        }
        int in[2];
        assert_int_equal(pipe2(in, O_CLOEXEC), 0);
        assert_int_equal(vsock_exec_ctl_new(&s->ctl), 0);
        s->stdin_w = s->keys ? in[1] : -1;
        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        io.on_output = on_output;
        io.userdata = s;
        io.ctl = s->ctl;
        io.stdin_fd = mode == MODE_STREAM ? -1 : in[0];
        struct vsock_exec_request req = { .command = (char *) cmd, .rows = 24, .cols = 80 };
        struct vsock_call call = bounded_call();
        struct vsock_exec_result res = { 0 };
        vsock_conn *c = dial(a);
        int r = mode == MODE_STREAM ? vsock_exec_stream(c, &req, &io, &call, &res)
                : mode == MODE_PIPE ? vsock_exec_pipe(c, &req, &io, &call, &res)
                                    : vsock_exec_tty(c, &req, &io, &call, &res);
        vsock_conn_close(c);
        close(in[0]);
        close(in[1]);
        vsock_exec_ctl_free(s->ctl);
        s->ctl = NULL;
        if (r < 0)
                fail_msg("exec %s: %s (%s)", cmd, vsock_strerror(r), call.remote_error);
        int64_t code = res.exit_code;
        vsock_exec_result_clear(&res);
        return code;
}

static void session_io_init(struct session_io *s) {
        memset(s, 0, sizeof *s);
        s->out = BUF_INIT(1 << 20);
        s->stdin_w = -1;
}

/* ---- setup ----------------------------------------------------------------- */

static int group_setup(void **state) {
        (void) state;
        if (geteuid() != 0)
                return 0;
        static const char *const pidns[] = { "--pid-ns", NULL };
        static const char *const priv[] = { "--pid-ns", "--privileged", NULL };
        A = agent_start(pidns, 0);
        P = agent_start(priv, 0);
        if (!A || !P || agent_warm_up(A) < 0 || agent_warm_up(P) < 0)
                return -1;
        return 0;
}

static int group_teardown(void **state) {
        (void) state;
        marker_kill_all(MARKER_KEY);
        int ra = A ? agent_stop(A, 10000, NULL) : 0;
        int rp = P ? agent_stop(P, 10000, NULL) : 0;
        return ra < 0 || rp < 0 ? -1 : 0;
}

static int test_setup(void **state) {
        (void) state;
        if (!A)
                skip(); /* not root */
        return 0;
}

static int test_teardown(void **state) {
        (void) state;
        if (!A)
                return 0;
        marker_kill_all(MARKER_KEY);
        assert_clean(A);
        assert_clean(P);
        return 0;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_own_proc(void **state) {
        (void) state;
        struct buf out;
        out = BUF_INIT(1 << 20);
        char cmd[256];
        snprintf(cmd, sizeof cmd,
                 "echo $$; cat /proc/1/comm; ls /proc | grep -c '^[0-9][0-9]*$'; "
                 "test -e /proc/%d && echo agent visible || echo agent hidden",
                 (int) A->pid);
        assert_int_equal(run(A, cmd, &out), 0);
        unsigned sh_pid = 0, n_pids = 0;
        char comm[32], agent[32];
        if (sscanf(text(&out), "%u\n%31s\n%u\nagent %31s", &sh_pid, comm, &n_pids, agent) != 4)
                fail_msg("unexpected output:\n%s", text(&out));
        /* PID 1 is the init, the shell PID 2; besides them only ls and grep. */
        assert_int_equal(sh_pid, 2);
        assert_string_equal(comm, "vsock-init");
        assert_in_range(n_pids, 2, 4);
        assert_string_equal(agent, "hidden");
        /* And its /proc is not the agent's: the agent's still shows it. */
        char p[64];
        snprintf(p, sizeof p, "/proc/%d/status", (int) A->pid);
        assert_int_equal(access(p, F_OK), 0);
        buf_free(&out);
}

static void test_all_modes(void **state) {
        (void) state;
        static const char *const names[] = { "batch", "stream", "pipe", "tty" };
        for (enum mode m = MODE_BATCH; m <= MODE_TTY; m++) {
                struct session_io s;
                session_io_init(&s);
                int64_t code = run_mode(A, m, "echo pid=$$ ppid=$PPID; exit 3", &s);
                assert_int_equal(buf_append(&s.out, "", 1), 0);
                if (code != 3 || !strstr(text(&s.out), "pid=2 ppid=1"))
                        fail_msg("%s: exit %lld, output: %s", names[m], (long long) code, text(&s.out));
                buf_free(&s.out);
        }
}

static void test_exit_status(void **state) {
        (void) state;
        struct buf out;
        out = BUF_INIT(1 << 20);
        assert_int_equal(run(A, "exit 42", &out), 42);
        /* Killed by a signal: the init exits with 128+N, as the agent
         * reports a command killed without a namespace. */
        assert_int_equal(run(A, "kill -KILL $$", &out), 137);
        assert_int_equal(run(A, "kill -TERM $$", &out), 143);
        buf_free(&out);
}

/* Run @cmd in @mode; when it prints "ready", send @signo in a Signal frame
 * or type @keys. It must exit @code, with @out in its output if not NULL. */
static void expect_after_ready(enum mode mode, const char *cmd, int signo, const char *keys, int64_t code,
                               const char *out) {
        struct session_io s;
        session_io_init(&s);
        s.trigger = "ready";
        s.signo = signo;
        s.keys = keys;
        int64_t got = run_mode(A, mode, cmd, &s);
        assert_true(s.fired);
        assert_int_equal(got, code);
        if (out)
                assert_non_null(memmem(buf_head(&s.out), buf_size(&s.out), out, strlen(out)));
        buf_free(&s.out);
}

static void test_signal_pipe(void **state) {
        (void) state;
        /* The shell and its background job both get it: the group does. */
        expect_after_ready(MODE_PIPE, "trap 'echo got TERM; exit 7' TERM; sleep 1000 & echo ready; wait", SIGTERM,
                           NULL, 7, "got TERM");
}

static void test_signal_tty(void **state) {
        (void) state;
        /* A Signal frame goes to the terminal's foreground group. */
        expect_after_ready(MODE_TTY, "trap 'echo got TERM; exit 8' TERM; echo ready; sleep 1000 & wait", SIGTERM,
                           NULL, 8, NULL);

        /* ^C typed on the terminal: the line discipline signals the
         * foreground group, the init's (which ignores it). The shell waits
         * in a builtin: a SIGINT while dash forks a command is held back
         * and then lost, which made "; sleep 1000" hang now and then. */
        expect_after_ready(MODE_TTY, "echo ready; read x", 0, "\x03", 130, NULL);

        /* The command's session is the init's, with the terminal. */
        struct session_io s;
        session_io_init(&s);
        int64_t code = run_mode(A, MODE_TTY, "test -t 0 && echo tty; cut -d' ' -f6 /proc/self/stat", &s);
        assert_int_equal(code, 0);
        assert_int_equal(buf_append(&s.out, "", 1), 0);
        if (!strstr(text(&s.out), "tty\r\n1\r\n"))
                fail_msg("output: %s", text(&s.out));
        buf_free(&s.out);
}

/* Host disconnect: SIGTERM to the group; a command that ignores it is
 * SIGKILLed with the init after the grace period, and the kernel ends the
 * rest of the namespace. */
static void test_disconnect(void **state) {
        (void) state;
        static const char *const cmds[] = { "sleep 1000 & sleep 1000", "trap '' TERM; sleep 1000 & sleep 1000" };
        for (size_t i = 0; i < 2; i++) {
                struct marker mk;
                marker_new(&mk, MARKER_KEY);
                vsock_conn *c = dial(A);
                struct vsock_exec_request req = { .command = (char *) cmds[i], .env = &mk.env, .n_env = 1 };
                assert_int_equal(send_exec_request(c, VSOCK_MSG_EXEC_PIPE, &req), 0);
                assert_true(marker_wait_count(&mk, 3, BOUND_MS));
                vsock_conn_close(c);
                assert_marker_gone(&mk, 3 * GRACE_MS, cmds[i]);
                assert_clean(A);
        }
}

/* A daemon (new session, re-parented to the init) ends with the command. */
static void test_leftovers_end(void **state) {
        (void) state;
        struct marker mk;
        marker_new(&mk, MARKER_KEY);
        vsock_conn *c = dial(A);
        struct vsock_exec_request req = { .command = "setsid sleep 1000 >/dev/null 2>&1 & echo started",
                                          .env = &mk.env, .n_env = 1 };
        struct vsock_call call = bounded_call();
        struct vsock_exec_result res = { 0 };
        assert_int_equal(vsock_exec(c, &req, &call, &res), 0);
        vsock_conn_close(c);
        assert_int_equal(res.exit_code, 0);
        assert_int_equal(res.stdout_len, 8);
        vsock_exec_result_clear(&res);
        assert_marker_gone(&mk, BOUND_MS, "daemon of a finished command");
}

static void test_exec_errors(void **state) {
        (void) state;
        char *args[] = { "no-such-command-xyz" };
        struct vsock_exec_request req = { .command = "no-such-command-xyz", .args = args, .n_args = 1 };
        struct vsock_call call = bounded_call();
        struct vsock_exec_result res = { 0 };
        vsock_conn *c = dial(A);
        assert_int_equal(vsock_exec(c, &req, &call, &res), 0);
        vsock_conn_close(c);
        assert_int_equal(res.exit_code, 127);
        assert_null(res.error);
        assert_int_equal(res.stderr_len, strlen("vsock-agent: exec: \"no-such-command-xyz\": executable file not "
                                                "found in $PATH\n"));
        assert_non_null(memmem(res.stderr_data, res.stderr_len, "executable file not found in $PATH", 34));
        vsock_exec_result_clear(&res);

        req = (struct vsock_exec_request) { .command = "true", .working_dir = "/no/such/dir" };
        call = bounded_call();
        c = dial(A);
        assert_int_equal(vsock_exec(c, &req, &call, &res), 0);
        vsock_conn_close(c);
        assert_int_equal(res.exit_code, 127);
        assert_null(res.error);
        static const char want[] = "vsock-agent: chdir /no/such/dir: no such file or directory\n";
        assert_int_equal(res.stderr_len, strlen(want));
        assert_memory_equal(res.stderr_data, want, strlen(want));
        vsock_exec_result_clear(&res);
}

static void test_sandbox_inside(void **state) {
        (void) state;
        struct buf out;
        out = BUF_INIT(1 << 20);
        assert_int_equal(run(A, "cat /proc/self/status; echo INIT; cat /proc/1/status", &out), 0);
        const char *cmd = text(&out), *init = strstr(cmd, "INIT\n");
        assert_non_null(init);
        char v[64];
        for (int i = 0; i < 2; i++) {
                const char *st = i ? init : cmd;
                assert_true(text_field(st, "NoNewPrivs", v, sizeof v));
                assert_string_equal(v, "1");
                assert_true(text_field(st, "Seccomp", v, sizeof v));
                assert_string_equal(v, "2");
                assert_true(text_field(st, "CapEff", v, sizeof v));
                uint64_t eff = strtoull(v, NULL, 16);
                if (eff & (UINT64_C(1) << 21)) /* CAP_SYS_ADMIN */
                        fail_msg("%s has CAP_SYS_ADMIN: CapEff %s", i ? "the init" : "the command", v);
        }
        buf_free(&out);

        /* --privileged lifts it for the command (the namespace stays). */
        out = BUF_INIT(1 << 20);
        assert_int_equal(run(P, "echo $$; grep NoNewPrivs /proc/self/status", &out), 0);
        assert_non_null(strstr(text(&out), "2\nNoNewPrivs:\t0\n"));
        buf_free(&out);
}

static size_t count_lines_with(const char *path, const char *needle) {
        FILE *f = fopen(path, "re");
        assert_non_null(f);
        char line[4096];
        size_t n = 0;
        while (fgets(line, sizeof line, f))
                if (strstr(line, needle))
                        n++;
        fclose(f);
        return n;
}

/* The namespace's /proc, and what a command mounts, stay in it, even
 * under a shared mount (systemd makes "/" shared; this machine's may not
 * be, so the test makes its own shared mount point). */
static void test_mounts_stay_inside(void **state) {
        (void) state;
        char dir[] = "/tmp/vsock-pidns-mnt-XXXXXX";
        assert_non_null(mkdtemp(dir));
        assert_int_equal(mount(dir, dir, NULL, MS_BIND, NULL), 0);
        assert_int_equal(mount(NULL, dir, NULL, MS_SHARED, NULL), 0);
        char sub[64];
        snprintf(sub, sizeof sub, "%s/sub", dir);
        assert_int_equal(mkdir(sub, 0700), 0);

        char mi[64];
        snprintf(mi, sizeof mi, "/proc/%d/mountinfo", (int) P->pid);
        size_t procs = count_lines_with(mi, " - proc ");
        struct buf out = BUF_INIT(1 << 20);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "mount -t tmpfs vsock-pidns-test %s && grep -c ' %s ' /proc/self/mountinfo", sub,
                 sub);
        int64_t code = run(P, cmd, &out);
        size_t leaked = count_lines_with("/proc/self/mountinfo", sub);
        size_t procs_after = count_lines_with(mi, " - proc ");
        if (leaked)
                (void) umount2(sub, MNT_DETACH);
        (void) umount2(dir, MNT_DETACH);
        (void) rmdir(sub);
        (void) rmdir(dir);

        assert_int_equal(code, 0);
        assert_string_equal(text(&out), "1\n");
        buf_free(&out);
        assert_int_equal(procs_after, procs);
        assert_int_equal(leaked, 0);
}

static void *parallel_main(void *p) {
        const struct agent *a = p;
        for (int i = 0; i < 10; i++) {
                vsock_conn *c;
                if (agent_dial(a, BOUND_MS, &c) < 0)
                        return "dial";
                struct vsock_exec_request req = { .command = "echo $$" };
                struct vsock_call call = bounded_call();
                struct vsock_exec_result res = { 0 };
                int r = vsock_exec(c, &req, &call, &res);
                vsock_conn_close(c);
                bool ok = r == 0 && res.exit_code == 0 && res.stdout_len == 2 && memcmp(res.stdout_data, "2\n", 2) == 0;
                vsock_exec_result_clear(&res);
                if (!ok)
                        return "exec";
        }
        return NULL;
}

static void test_parallel(void **state) {
        (void) state;
        enum { N = 16 };
        pthread_t t[N];
        for (int i = 0; i < N; i++)
                assert_int_equal(pthread_create(&t[i], NULL, parallel_main, A), 0);
        for (int i = 0; i < N; i++) {
                void *err;
                pthread_join(t[i], &err);
                if (err)
                        fail_msg("thread %d: %s failed", i, (const char *) err);
        }
}

/* The agent killed outright: each namespace's init sees it (its pipe from
 * the agent hangs up) and ends, and its namespace with it. */
static void test_agent_killed(void **state) {
        (void) state;
        static const char *const pidns[] = { "--pid-ns", NULL };
        struct agent *k = agent_start(pidns, 0);
        assert_non_null(k);
        struct marker mk;
        marker_new(&mk, MARKER_KEY);
        vsock_conn *c[2];
        for (int i = 0; i < 2; i++) {
                c[i] = dial(k);
                struct vsock_exec_request req = { .command = "sleep 1000 & sleep 1000", .env = &mk.env, .n_env = 1 };
                assert_int_equal(send_exec_request(c[i], VSOCK_MSG_EXEC_PIPE, &req), 0);
        }
        assert_true(marker_wait_count(&mk, 4, BOUND_MS)); /* 2 x (sh or its last sleep, a sleep) */
        assert_int_equal(kill(k->pid, SIGKILL), 0);
        assert_marker_gone(&mk, BOUND_MS, "commands of a killed agent");
        for (int i = 0; i < 2; i++)
                vsock_conn_close(c[i]);
        (void) agent_stop(k, BOUND_MS, NULL); /* reaps it, cleans up */
}

/* Without CAP_SYS_ADMIN there is no namespace to give: the agent says so
 * and does not start, rather than failing every command. */
static void test_refused_unprivileged(void **state) {
        (void) state;
        char dir[] = "/tmp/vsock-pidns-nobody-XXXXXX";
        assert_non_null(mkdtemp(dir));
        assert_int_equal(chmod(dir, 0777), 0);
        char listen[128], ready[128];
        snprintf(listen, sizeof listen, "unix:%s/exec.sock", dir);
        snprintf(ready, sizeof ready, "unix:%s/ready.sock", dir);
        int err[2];
        assert_int_equal(pipe2(err, O_CLOEXEC), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (dup2(err[1], 2) < 0 || setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
                        _exit(126);
                execl(getenv("AGENT"), "vsock-agent", "--pid-ns", "--listen", listen, "--ready", ready, (char *) NULL);
                _exit(127);
        }
        close(err[1]);
        char msg[1024];
        ssize_t n = io_read_full(err[0], msg, sizeof msg - 1, vsock_now_ns() + (int64_t) BOUND_MS * 1000000, -1);
        close(err[0]);
        msg[n > 0 ? n : 0] = '\0';
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 1);
        if (!strstr(msg, "--pid-ns: cannot create a PID and mount namespace: Operation not permitted"))
                fail_msg("stderr: %s", msg);
        char sock[128];
        snprintf(sock, sizeof sock, "%s/exec.sock", dir);
        assert_int_equal(access(sock, F_OK), -1); /* nothing was bound */
        assert_int_equal(rmdir(dir), 0);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)
        const struct CMUnitTest tests[] = {
                T(test_own_proc), T(test_all_modes), T(test_exit_status), T(test_signal_pipe),
                T(test_signal_tty), T(test_disconnect), T(test_leftovers_end), T(test_exec_errors),
                T(test_sandbox_inside), T(test_mounts_stay_inside), T(test_parallel), T(test_agent_killed),
                T(test_refused_unprivileged),
        };
#undef T
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
