/* End-to-end tests of vsock-agent: the real binary ($AGENT) on temporary
 * unix sockets, driven with raw frames through the library. After every
 * test the agent must have no children left and its fd count must be back
 * to its baseline. */
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <vsock/vsock.h>

#include "agent-harness.h"

#define BOUND_MS 20000 /* hang catcher for one exchange */

static struct agent *A; /* the group's agent */

/* ---- the agent --------------------------------------------------------------- */

static void assert_clean(struct agent *a) {
        int fds, kids;
        if (!agent_wait_clean(a, 10000, &fds, &kids))
                fail_msg("agent %d: %d fds (baseline %d), %d children", (int) a->pid, fds, a->baseline_fds, kids);
}

/* A test's own agent; @nofile > 0 sets its RLIMIT_NOFILE. */
static struct agent *start_agent(const char *const *extra, int nofile) {
        struct agent *a = agent_start(extra, nofile);
        assert_non_null(a);
        return a;
}

/* SIGTERM, expect exit status 0 within the bound. */
static void stop_agent(struct agent *a) { assert_int_equal(agent_stop(a, BOUND_MS, NULL), 0); }

static int group_setup(void **state) {
        /* 500 sessions need fds on both sides; the agent inherits this. */
        nofile_raise(8192);
        signal(SIGPIPE, SIG_IGN);
        /* The usual umask: WriteFile's modes must not follow it. */
        umask(022);
        A = agent_start(NULL, 0);
        return A ? 0 : -1;
}

static int group_teardown(void **state) {
        int r = agent_stop(A, BOUND_MS, NULL);
        A = NULL;
        return r;
}

static int test_teardown(void **state) {
        assert_clean(A);
        return 0;
}

/* ---- protocol helpers ------------------------------------------------------ */

static vsock_conn *dial_agent(const struct agent *a) {
        vsock_conn *c = NULL;
        assert_int_equal(agent_dial(a, BOUND_MS, &c), 0);
        return c;
}

static vsock_conn *dial(void) { return dial_agent(A); }

static void send_request(vsock_conn *c, uint8_t type, const struct vsock_exec_request *r) {
        assert_int_equal(send_exec_request(c, type, r), 0);
}

struct result {
        struct buf out, err;
        int64_t exit_code;
        bool got_exit;          /* Exit or ExecResult */
        char *error;
        unsigned frames;
};

static void result_free(struct result *r) {
        buf_free(&r->out);
        buf_free(&r->err);
        free(r->error);
}

/* Read one exchange's frames up to its result (Exit or ExecResult, or
 * the agent closing). */
static void read_result(vsock_conn *c, struct result *res) {
        *res = (struct result) { .out = BUF_INIT(0), .err = BUF_INIT(0), .exit_code = -1000 };
        while (!res->got_exit) {
                uint8_t t;
                uint8_t *d;
                uint32_t n;
                int r = vsock_read_message(c, &t, &d, &n);
                if (r < 0) {
                        assert_int_equal(vsock_err_errno(r), EPIPE); /* clean EOF only */
                        break;
                }
                res->frames++;
                switch (t) {
                case VSOCK_MSG_STDOUT:
                        assert_int_equal(buf_append(&res->out, d, n), 0);
                        break;
                case VSOCK_MSG_STDERR:
                        assert_int_equal(buf_append(&res->err, d, n), 0);
                        break;
                case VSOCK_MSG_EXIT: {
                        int32_t code;
                        assert_int_equal(vsock_exit_decode(d, n, &code), 0);
                        res->exit_code = code;
                        res->got_exit = true;
                        break;
                }
                case VSOCK_MSG_EXEC_RESULT: {
                        struct vsock_exec_response er = { 0 };
                        assert_int_equal(vsock_exec_response_decode(d, n, &er, NULL), 0);
                        res->exit_code = er.exit_code;
                        res->got_exit = true;
                        if (er.stdout_data.len)
                                assert_int_equal(buf_append(&res->out, er.stdout_data.data, er.stdout_data.len), 0);
                        if (er.stderr_data.len)
                                assert_int_equal(buf_append(&res->err, er.stderr_data.data, er.stderr_data.len), 0);
                        if (er.error && er.error[0])
                                res->error = strdup(er.error);
                        vsock_exec_response_clear(&er);
                        break;
                }
                default:
                        fail_msg("unexpected frame type %u", t);
                }
                free(d);
        }
}

/* The agent closes: a clean EOF, no frame, and not our bound. */
static void expect_eof(vsock_conn *c) {
        uint8_t t;
        uint8_t *d;
        uint32_t n;
        int r = vsock_read_message(c, &t, &d, &n);
        if (r >= 0)
                fail_msg("a frame of type %u where EOF was expected", t);
        assert_int_equal(vsock_err_errno(r), EPIPE);
}

/* Read frames until EOF; the result must be the last one. A connection
 * that could take another request after the result (batch, stream) is
 * closed by the agent once the host half-closes. */
static void read_all(vsock_conn *c, struct result *res) {
        read_result(c, res);
        if (!res->got_exit)
                return;
        /* (ENOTCONN: the host had half-closed already, and over TCP the
         * agent's close may have ended the connection.) */
        int sr = vsock_conn_shutdown_write(c);
        assert_true(sr == 0 || vsock_err_errno(sr) == ENOTCONN);
        expect_eof(c);
}

static void exec_simple(uint8_t type, const struct vsock_exec_request *req, struct result *res) {
        vsock_conn *c = dial();
        send_request(c, type, req);
        if (type == VSOCK_MSG_EXEC_PIPE)
                assert_int_equal(vsock_write_message(c, VSOCK_MSG_STDIN, NULL, 0), 0);
        read_all(c, res);
        vsock_conn_close(c);
}

static void sh(uint8_t type, const char *cmd, struct result *res) {
        struct vsock_exec_request req = { .command = (char *) cmd };
        exec_simple(type, &req, res);
}

static bool buf_eq(const struct buf *b, const char *s) {
        return buf_size(b) == strlen(s) && (buf_size(b) == 0 || memcmp(buf_head(b), s, strlen(s)) == 0);
}

/* Read frames until the output so far contains @needle. */
static void read_until(vsock_conn *c, struct buf *acc, const char *needle) {
        while (!buf_contains(acc, needle)) {
                uint8_t t;
                uint8_t *d;
                uint32_t n;
                assert_int_equal(vsock_read_message(c, &t, &d, &n), 0);
                assert_true(t == VSOCK_MSG_STDOUT || t == VSOCK_MSG_STDERR);
                assert_int_equal(buf_append(acc, d, n), 0);
                free(d);
        }
}

/* ---- exec: batch and stream --------------------------------------------- */

static void test_exit_codes(void **state) {
        static const struct {
                const char *cmd;
                int64_t code;
        } cases[] = { { "exit 0", 0 }, { "exit 1", 1 }, { "exit 42", 42 }, { "kill -9 $$", 128 + 9 } };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                uint8_t types[] = { VSOCK_MSG_EXEC, VSOCK_MSG_EXEC_STREAM, VSOCK_MSG_EXEC_PIPE };
                for (size_t t = 0; t < sizeof types; t++) {
                        struct result r;
                        sh(types[t], cases[i].cmd, &r);
                        assert_true(r.got_exit);
                        assert_int_equal(r.exit_code, cases[i].code);
                        result_free(&r);
                }
        }
        struct result r;
        sh(VSOCK_MSG_EXEC, "echo hi; echo oops >&2", &r);
        assert_true(buf_eq(&r.out, "hi\n"));
        assert_true(buf_eq(&r.err, "oops\n"));
        assert_null(r.error);
        result_free(&r);
}

/* A command that cannot start: 127 (not found) or 126, and one line of
 * reason on its stderr, never an `error` field, the same in every mode,
 * so that a host never mistakes it for the command's own failure. */
static void expect_start_failure(const struct vsock_exec_request *req, int64_t code, const char *reason) {
        static const uint8_t types[] = { VSOCK_MSG_EXEC, VSOCK_MSG_EXEC_STREAM, VSOCK_MSG_EXEC_PIPE,
                                         VSOCK_MSG_EXEC_TTY };
        char want[512];
        snprintf(want, sizeof want, "vsock-agent: %s\n", reason);
        for (size_t i = 0; i < sizeof types; i++) {
                struct result r;
                exec_simple(types[i], req, &r);
                if (r.exit_code != code || !buf_eq(&r.err, want) || r.error || buf_size(&r.out) != 0)
                        fail_msg("%s: exit %lld, stderr \"%.*s\", error \"%s\"; want %lld, \"%s\"",
                                 vsock_msg_type_name(types[i]), (long long) r.exit_code, (int) buf_size(&r.err),
                                 (const char *) buf_head(&r.err), r.error ? r.error : "", (long long) code, want);
                result_free(&r);
        }
}

static void test_not_found(void **state) {
        char *args[] = { "a" };
        struct vsock_exec_request req = { .command = "no-such-command-xyz", .args = args, .n_args = 1 };
        expect_start_failure(&req, 127, "exec: \"no-such-command-xyz\": executable file not found in $PATH");
        req.command = "/no/such/program";
        expect_start_failure(&req, 127, "exec /no/such/program: no such file or directory");
        req.command = "/etc/passwd"; /* exists, not executable */
        expect_start_failure(&req, 126, "exec /etc/passwd: permission denied");

        req = (struct vsock_exec_request) { .command = "pwd", .working_dir = "/nonexistent-dir" };
        expect_start_failure(&req, 127, "chdir /nonexistent-dir: no such file or directory");
        req = (struct vsock_exec_request) { .command = "id", .user = "no-such-user-xyz" };
        expect_start_failure(&req, 127, "unknown user \"no-such-user-xyz\"");
        req = (struct vsock_exec_request) { .command = "id", .user = "0:no-such-group-xyz" };
        expect_start_failure(&req, 127, "unknown group \"no-such-group-xyz\"");

        /* Through the shell, the shell says it, with the same code. */
        struct result r;
        sh(VSOCK_MSG_EXEC, "no-such-command-xyz", &r);
        assert_int_equal(r.exit_code, 127);
        assert_true(buf_contains(&r.err, "not found"));
        assert_false(buf_contains(&r.err, "vsock-agent"));
        result_free(&r);
}

static void test_argv_mode(void **state) {
        struct result r;
        char *args[] = { "%s|", "a b", "$HOME", ";", "*" };
        struct vsock_exec_request req = { .command = "printf", .args = args, .n_args = 5 };
        exec_simple(VSOCK_MSG_EXEC, &req, &r);
        assert_int_equal(r.exit_code, 0);
        assert_true(buf_eq(&r.out, "a b|$HOME|;|*|"));
        result_free(&r);
}

static void test_stdin_batch(void **state) {
        struct result r;
        struct vsock_exec_request req = { .command = "cat; echo end",
                                          .stdin_data = { (uint8_t *) "hello\n", 6, true } };
        exec_simple(VSOCK_MSG_EXEC, &req, &r);
        assert_true(buf_eq(&r.out, "hello\nend\n"));
        result_free(&r);

        /* Absent stdin is /dev/null: cat ends at once. */
        sh(VSOCK_MSG_EXEC_STREAM, "cat; echo end", &r);
        assert_true(buf_eq(&r.out, "end\n"));
        result_free(&r);

        /* Present but empty: EOF right away too. */
        req.stdin_data = (struct vsock_bytes) { (uint8_t *) "", 0, true };
        exec_simple(VSOCK_MSG_EXEC, &req, &r);
        assert_true(buf_eq(&r.out, "end\n"));
        result_free(&r);
}

static void test_stream_mixed(void **state) {
        struct result r;
        sh(VSOCK_MSG_EXEC_STREAM,
           "i=0; while [ $i -lt 3000 ]; do echo \"out $i\"; echo \"err $i\" >&2; i=$((i+1)); done;"
           "head -c 3000000 /dev/zero | tr '\\0' a & head -c 2000000 /dev/zero | tr '\\0' b >&2; wait",
           &r);
        assert_int_equal(r.exit_code, 0);
        struct buf want_out = BUF_INIT(0), want_err = BUF_INIT(0);
        char line[32];
        for (int i = 0; i < 3000; i++) {
                snprintf(line, sizeof line, "out %d\n", i);
                buf_append_str(&want_out, line);
                snprintf(line, sizeof line, "err %d\n", i);
                buf_append_str(&want_err, line);
        }
        assert_int_equal(buf_size(&r.out), buf_size(&want_out) + 3000000);
        assert_int_equal(buf_size(&r.err), buf_size(&want_err) + 2000000);
        assert_memory_equal(buf_head(&r.out), buf_head(&want_out), buf_size(&want_out));
        assert_memory_equal(buf_head(&r.err), buf_head(&want_err), buf_size(&want_err));
        for (size_t i = buf_size(&want_out); i < buf_size(&r.out); i++)
                if (buf_head(&r.out)[i] != 'a')
                        fail_msg("stdout byte %zu", i);
        for (size_t i = buf_size(&want_err); i < buf_size(&r.err); i++)
                if (buf_head(&r.err)[i] != 'b')
                        fail_msg("stderr byte %zu", i);
        buf_free(&want_out);
        buf_free(&want_err);
        result_free(&r);

        /* The same through batch mode. */
        sh(VSOCK_MSG_EXEC, "head -c 1000000 /dev/zero; head -c 700000 /dev/zero >&2", &r);
        assert_int_equal(buf_size(&r.out), 1000000);
        assert_int_equal(buf_size(&r.err), 700000);
        result_free(&r);
}

static void test_background(void **state) {
        struct result r;
        sh(VSOCK_MSG_EXEC, "sleep 60 & echo $!; echo hi", &r);
        assert_int_equal(r.exit_code, 0);
        assert_true(buf_contains(&r.out, "\nhi\n"));
        pid_t bg = (pid_t) atoi((const char *) buf_head(&r.out));
        assert_true(bg > 0);
        /* The descendant keeps running; the request did not wait for it. */
        assert_true(pid_exists(bg));
        kill(bg, SIGKILL);
        result_free(&r);

        sh(VSOCK_MSG_EXEC_PIPE, "sleep 60 & echo $!; echo hi", &r);
        assert_int_equal(r.exit_code, 0);
        assert_true(buf_contains(&r.out, "\nhi\n"));
        kill((pid_t) atoi((const char *) buf_head(&r.out)), SIGKILL);
        result_free(&r);
}

static void test_env_cwd_user(void **state) {
        struct result r;
        struct vsock_env env[] = { { "FOO", "bar baz" }, { "PATH", "/usr/bin:/bin" } };
        struct vsock_exec_request req = { .command = "echo \"$FOO\"; pwd; echo $PATH", .working_dir = "/tmp",
                                          .env = env, .n_env = 2 };
        exec_simple(VSOCK_MSG_EXEC, &req, &r);
        assert_int_equal(r.exit_code, 0);
        assert_true(buf_eq(&r.out, "bar baz\n/tmp\n/usr/bin:/bin\n"));
        result_free(&r);

        /* (Directories and users that do not exist: test_not_found.) */
        if (geteuid() != 0) {
                print_message("not root: skipping the user switch\n");
                return;
        }
        req = (struct vsock_exec_request) { .command = "id -u; id -g; echo $HOME", .user = "65534" };
        exec_simple(VSOCK_MSG_EXEC, &req, &r);
        assert_int_equal(r.exit_code, 0);
        assert_true(buf_contains(&r.out, "65534\n"));
        result_free(&r);

        req.user = "65534:65534";
        req.command = "id -u; id -g";
        exec_simple(VSOCK_MSG_EXEC_PIPE, &req, &r);
        assert_int_equal(r.exit_code, 0);
        assert_true(buf_eq(&r.out, "65534\n65534\n"));
        result_free(&r);
}

/* ---- exec: pipe --------------------------------------------------------- */

struct writer {
        vsock_conn *c;
        const uint8_t *data;
        size_t len;
        int rc;
};

static void *writer_main(void *p) {
        struct writer *w = p;
        size_t off = 0;
        while (off < w->len && w->rc == 0) {
                size_t n = w->len - off < 65536 ? w->len - off : 65536;
                w->rc = vsock_write_message(w->c, VSOCK_MSG_STDIN, w->data + off, n);
                off += n;
        }
        if (w->rc == 0)
                w->rc = vsock_write_message(w->c, VSOCK_MSG_STDIN, NULL, 0);
        return NULL;
}

/* Run @cmd on @a in pipe mode, the connection bounded by @bound_ms, while
 * a thread feeds it @data in Stdin frames and then EOF; its result goes to
 * @r. */
static void pipe_feed(const struct agent *a, const char *cmd, const uint8_t *data, size_t len, int bound_ms,
                      struct result *r) {
        vsock_conn *c = dial_agent(a);
        vsock_conn_set_deadline(c, vsock_deadline_in(bound_ms));
        struct vsock_exec_request req = { .command = (char *) cmd };
        send_request(c, VSOCK_MSG_EXEC_PIPE, &req);
        struct writer w = { c, data, len, 0 };
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);
        read_all(c, r);
        pthread_join(th, NULL);
        assert_int_equal(w.rc, 0);
        vsock_conn_close(c);
}

static void test_pipe_big_stdin(void **state) {
        size_t len = 10u * 1024 * 1024;
        uint8_t *data = malloc(len);
        assert_non_null(data);
        uint32_t x = 12345;
        for (size_t i = 0; i < len; i++) {
                x = x * 1103515245u + 12345u;
                data[i] = (uint8_t) (x >> 16);
        }
        struct result r;
        pipe_feed(A, "cat", data, len, 60000, &r);
        assert_int_equal(r.exit_code, 0);
        assert_int_equal(buf_size(&r.out), len);
        assert_memory_equal(buf_head(&r.out), data, len);
        result_free(&r);
        free(data);
}

/* Run @cmd in @type until it prints @ready, then send one @msg frame of @n
 * bytes at @p: it must exit @code, with @out in its output if not NULL. */
static void expect_after_ready(uint8_t type, const char *cmd, const char *ready, uint8_t msg, const void *p, size_t n,
                               int64_t code, const char *out) {
        vsock_conn *c = dial();
        bool tty = type == VSOCK_MSG_EXEC_TTY;
        struct vsock_exec_request req = { .command = (char *) cmd, .rows = tty ? 24 : 0, .cols = tty ? 80 : 0 };
        send_request(c, type, &req);
        struct buf acc = BUF_INIT(0);
        read_until(c, &acc, ready);
        assert_int_equal(vsock_write_message(c, msg, p, n), 0);
        struct result r;
        read_all(c, &r);
        assert_int_equal(r.exit_code, code);
        if (out)
                assert_true(buf_contains(&r.out, out));
        result_free(&r);
        buf_free(&acc);
        vsock_conn_close(c);
}

static void test_pipe_signal(void **state) {
        uint8_t sig = SIGUSR1;
        expect_after_ready(VSOCK_MSG_EXEC_PIPE,
                           "trap 'echo got; exit 7' USR1; echo ready; while :; do sleep 0.05; done", "ready\n",
                           VSOCK_MSG_SIGNAL, &sig, 1, 7, "got\n");
        /* SIGKILL to the group: 128 + 9. */
        sig = SIGKILL;
        expect_after_ready(VSOCK_MSG_EXEC_PIPE, "echo ready; sleep 30", "ready\n", VSOCK_MSG_SIGNAL, &sig, 1,
                           128 + SIGKILL, NULL);
}

/* ---- exec: tty --------------------------------------------------------- */

static void test_tty_size_resize(void **state) {
        vsock_conn *c = dial();
        struct vsock_exec_request req = { .command = "stty size; echo $TERM; read x; stty size", .rows = 33,
                                          .cols = 101 };
        send_request(c, VSOCK_MSG_EXEC_TTY, &req);
        struct buf acc = BUF_INIT(0);
        read_until(c, &acc, "xterm-256color");
        assert_true(buf_contains(&acc, "33 101"));
        uint8_t rs[4];
        vsock_resize_encode(50, 120, rs);
        assert_int_equal(vsock_write_message(c, VSOCK_MSG_RESIZE, rs, 4), 0);
        assert_int_equal(vsock_write_message(c, VSOCK_MSG_STDIN, "go\n", 3), 0);
        struct result r;
        read_all(c, &r);
        assert_int_equal(r.exit_code, 0);
        assert_true(buf_contains(&r.out, "50 120"));
        result_free(&r);
        buf_free(&acc);
        vsock_conn_close(c);

        /* A TERM from the request wins. */
        struct vsock_env env[] = { { "TERM", "vt100" } };
        req = (struct vsock_exec_request) { .command = "echo $TERM; tty", .env = env, .n_env = 1, .rows = 24,
                                            .cols = 80 };
        c = dial();
        send_request(c, VSOCK_MSG_EXEC_TTY, &req);
        read_all(c, &r);
        assert_true(buf_contains(&r.out, "vt100\r\n/dev/pts/"));
        result_free(&r);
        vsock_conn_close(c);
}

static void test_tty_signal(void **state) {
        /* The shell itself blocks (in read): no window between "ready"
         * and a forked child in which the signal would race the fork. */
        uint8_t sig = SIGINT;
        expect_after_ready(VSOCK_MSG_EXEC_TTY, "echo ready; read x", "ready", VSOCK_MSG_SIGNAL, &sig, 1, 128 + SIGINT,
                           NULL);
        /* ^C typed on the terminal works as on a real one. */
        expect_after_ready(VSOCK_MSG_EXEC_TTY, "echo ready; exec sh -c 'read x'", "ready", VSOCK_MSG_STDIN, "\003", 1,
                           128 + SIGINT, NULL);
}

/* ---- cancellation ---------------------------------------------------------- */

/* Start @cmd on @a (it prints its pid first), read the pid, hang up. */
static pid_t start_and_hang_up_a(const struct agent *a, uint8_t type, const char *cmd) {
        vsock_conn *c = dial_agent(a);
        struct vsock_exec_request req = { .command = (char *) cmd, .rows = 24, .cols = 80 };
        send_request(c, type, &req);
        struct buf acc = BUF_INIT(0);
        read_until(c, &acc, "started");
        pid_t pid = (pid_t) atoi((const char *) buf_head(&acc));
        assert_true(pid > 0);
        assert_true(pid_exists(pid));
        buf_free(&acc);
        vsock_conn_close(c);
        return pid;
}

static pid_t start_and_hang_up(uint8_t type, const char *cmd) { return start_and_hang_up_a(A, type, cmd); }

static void test_cancel_disconnect(void **state) {
        uint8_t types[] = { VSOCK_MSG_EXEC_STREAM, VSOCK_MSG_EXEC_PIPE, VSOCK_MSG_EXEC_TTY };
        for (size_t i = 0; i < sizeof types; i++) {
                pid_t pid = start_and_hang_up(types[i], "printf '%d started\\r\\n' $$; sleep 30");
                /* Gone, and reaped (not even a zombie), well within the grace. */
                assert_true(wait_pid_gone(pid, 4000));
        }
        /* Batch: no output until the end, so learn the pid through a file. */
        char path[128];
        snprintf(path, sizeof path, "%s/pid", A->dir);
        char cmd[512];
        snprintf(cmd, sizeof cmd, "echo $$ > %s.tmp; mv %s.tmp %s; sleep 30", path, path, path);
        vsock_conn *c = dial();
        struct vsock_exec_request req = { .command = cmd };
        send_request(c, VSOCK_MSG_EXEC, &req);
        int64_t end = mono_ms() + BOUND_MS;
        FILE *f;
        while (!(f = fopen(path, "re"))) {
                assert_true(mono_ms() < end);
                pause_ms(5);
        }
        int pid = 0;
        assert_int_equal(fscanf(f, "%d", &pid), 1);
        fclose(f);
        unlink(path);
        vsock_conn_close(c);
        assert_true(wait_pid_gone(pid, 4000));
}

static void test_cancel_sigkill(void **state) {
        /* Ignores SIGTERM and SIGHUP: only the SIGKILL after the grace ends it. */
        pid_t pid = start_and_hang_up(VSOCK_MSG_EXEC_PIPE,
                                      "trap '' TERM HUP; printf '%d started\\r\\n' $$; "
                                      "while :; do sleep 0.2; done");
        assert_true(wait_pid_gone(pid, 15000));
}

/* ---- protocol robustness --------------------------------------------------- */

static void test_unknown_type(void **state) {
        vsock_conn *c = dial();
        assert_int_equal(vsock_write_message(c, 99, "{}", 2), 0);
        uint8_t t;
        uint8_t *d;
        uint32_t n;
        int r = vsock_read_message(c, &t, &d, &n);
        assert_true(r < 0); /* closed without a reply */
        vsock_conn_close(c);

        /* A stray Stdout frame as the first message: same. */
        c = dial();
        assert_int_equal(vsock_write_message(c, VSOCK_MSG_STDOUT, "x", 1), 0);
        assert_true(vsock_read_message(c, &t, &d, &n) < 0);
        vsock_conn_close(c);

        /* Garbage JSON: a clear error, not a crash. */
        c = dial();
        assert_int_equal(vsock_write_message(c, VSOCK_MSG_EXEC, "{\"command\":", 11), 0);
        struct result res;
        read_all(c, &res);
        assert_int_equal(res.exit_code, 126);
        assert_true(buf_contains(&res.err, "vsock-agent: invalid exec request: "));
        result_free(&res);
        vsock_conn_close(c);

        /* And the agent still serves. */
        sh(VSOCK_MSG_EXEC, "echo alive", &res);
        assert_true(buf_eq(&res.out, "alive\n"));
        result_free(&res);
}

/* A connection serves requests one after another, as upstream's newer
 * agent does for hosts that pool connections: batch and stream exec and
 * file operations. Each one's result ends it; a request sent before the
 * previous result waits for it. A pipe (like a TTY or a port forward) owns
 * the connection's byte stream: after it, the agent closes. */
static void test_sequential_requests(void **state) {
        vsock_conn *c = dial();
        struct vsock_exec_request req = { .command = "echo one" };
        send_request(c, VSOCK_MSG_EXEC, &req);
        req.command = "echo two >&2; exit 3";
        send_request(c, VSOCK_MSG_EXEC_STREAM, &req); /* before the first result */
        struct result r;
        read_result(c, &r);
        assert_true(r.got_exit);
        assert_int_equal(r.frames, 1);
        assert_true(buf_eq(&r.out, "one\n"));
        result_free(&r);
        read_result(c, &r);
        assert_int_equal(r.exit_code, 3);
        assert_true(buf_eq(&r.err, "two\n"));
        result_free(&r);

        /* File operations, the last two sent before the first reply. */
        char path[160];
        snprintf(path, sizeof path, "%s/seq.txt", A->dir);
        uint8_t *p;
        size_t n;
        struct vsock_write_file_request wr = { .path = path, .content = { (uint8_t *) "seq", 3, true }, .mode = 0600 };
        assert_int_equal(vsock_write_file_request_encode(&wr, &p, &n), 0);
        assert_int_equal(vsock_write_message(c, VSOCK_MSG_WRITE_FILE, p, n), 0);
        free(p);
        struct vsock_path_request pr = { .path = path };
        assert_int_equal(vsock_path_request_encode(&pr, &p, &n), 0);
        assert_int_equal(vsock_write_message(c, VSOCK_MSG_READ_FILE, p, n), 0);
        free(p);
        pr.path = A->dir;
        assert_int_equal(vsock_path_request_encode(&pr, &p, &n), 0);
        assert_int_equal(vsock_write_message(c, VSOCK_MSG_LIST_FILES, p, n), 0);
        free(p);
        for (int i = 0; i < 3; i++) {
                uint8_t t;
                uint8_t *d;
                uint32_t len;
                assert_int_equal(vsock_read_message(c, &t, &d, &len), 0);
                assert_int_equal(t, VSOCK_MSG_FILE_RESULT);
                struct vsock_file_response fr = { 0 };
                assert_int_equal(vsock_file_response_decode(d, len, &fr, NULL), 0);
                free(d);
                if (fr.error && fr.error[0])
                        fail_msg("file operation %d: %s", i, fr.error);
                if (i == 1) {
                        assert_int_equal(fr.content.len, 3);
                        assert_memory_equal(fr.content.data, "seq", 3);
                }
                if (i == 2) {
                        bool found = false;
                        for (size_t k = 0; k < fr.n_files; k++)
                                found = found || (strcmp(fr.files[k].name, "seq.txt") == 0 && fr.files[k].size == 3);
                        assert_true(found);
                }
                vsock_file_response_clear(&fr);
        }
        unlink(path);

        /* The library's calls on the same connection. */
        for (int i = 0; i < 2; i++) {
                struct vsock_exec_result er = { 0 };
                req.command = "echo lib";
                assert_int_equal(vsock_exec(c, &req, NULL, &er), 0);
                assert_int_equal(er.exit_code, 0);
                assert_int_equal(er.stdout_len, 4);
                assert_memory_equal(er.stdout_data, "lib\n", 4);
                vsock_exec_result_clear(&er);
        }

        /* A pipe last: served, then the agent closes on its own. */
        req.command = "cat";
        send_request(c, VSOCK_MSG_EXEC_PIPE, &req);
        assert_int_equal(vsock_write_message(c, VSOCK_MSG_STDIN, "three\n", 6), 0);
        assert_int_equal(vsock_write_message(c, VSOCK_MSG_STDIN, NULL, 0), 0);
        read_result(c, &r);
        assert_int_equal(r.exit_code, 0);
        assert_true(buf_eq(&r.out, "three\n"));
        result_free(&r);
        expect_eof(c);
        vsock_conn_close(c);
}

/* The idle bound applies between requests too: a connection kept after a
 * result is closed by the agent when no next request comes. */
static void test_idle_between_requests(void **state) {
        const char *extra[] = { "--idle-timeout", "1", NULL };
        struct agent *b = start_agent(extra, 0);
        vsock_conn *c = dial_agent(b);
        struct vsock_exec_request req = { .command = "true" };
        send_request(c, VSOCK_MSG_EXEC, &req);
        struct result r;
        read_result(c, &r);
        assert_int_equal(r.exit_code, 0);
        result_free(&r);
        expect_eof(c); /* closed by the agent, not our bound */
        vsock_conn_close(c);
        assert_clean(b);
        stop_agent(b);
}

/* The host sends its request, then half-closes: it still gets the whole
 * result, in every mode, and then the agent closes. A pipe's stdin ends
 * there; a terminal's command runs on. */
static void half_close_all(const struct agent *a) {
        uint8_t types[] = { VSOCK_MSG_EXEC, VSOCK_MSG_EXEC_STREAM };
        for (size_t i = 0; i < sizeof types; i++) {
                vsock_conn *c = dial_agent(a);
                struct vsock_exec_request req = { .command = "sleep 0.2; echo done; echo err >&2; exit 5" };
                send_request(c, types[i], &req);
                assert_int_equal(vsock_conn_shutdown_write(c), 0);
                struct result r;
                read_all(c, &r);
                assert_int_equal(r.exit_code, 5);
                assert_true(buf_eq(&r.out, "done\n"));
                assert_true(buf_eq(&r.err, "err\n"));
                result_free(&r);
                vsock_conn_close(c);
        }
        vsock_conn *c = dial_agent(a);
        struct vsock_exec_request req = { .command = "cat; echo end" };
        send_request(c, VSOCK_MSG_EXEC_PIPE, &req);
        assert_int_equal(vsock_write_message(c, VSOCK_MSG_STDIN, "abc\n", 4), 0);
        assert_int_equal(vsock_conn_shutdown_write(c), 0);
        struct result r;
        read_all(c, &r);
        assert_int_equal(r.exit_code, 0);
        assert_true(buf_eq(&r.out, "abc\nend\n"));
        result_free(&r);
        vsock_conn_close(c);

        c = dial_agent(a);
        req = (struct vsock_exec_request) { .command = "sleep 0.2; echo done", .rows = 24, .cols = 80 };
        send_request(c, VSOCK_MSG_EXEC_TTY, &req);
        assert_int_equal(vsock_conn_shutdown_write(c), 0);
        read_all(c, &r);
        assert_int_equal(r.exit_code, 0);
        assert_true(buf_contains(&r.out, "done"));
        result_free(&r);
        vsock_conn_close(c);
}

static uint16_t free_tcp_port(void) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t sl = sizeof in;
        assert_int_equal(bind(s, (struct sockaddr *) &in, sl), 0);
        assert_int_equal(getsockname(s, (struct sockaddr *) &in, &sl), 0);
        close(s);
        return ntohs(in.sin_port);
}

static void test_half_close(void **state) {
        half_close_all(A); /* unix: a full close is a hang-up, a half-close is not */

        /* TCP: FIN is the same for both; a full close is only seen when a
         * write is answered with a reset. */
        char listen[64];
        snprintf(listen, sizeof listen, "tcp:127.0.0.1:%u", free_tcp_port());
        const char *extra[] = { "--listen", listen, NULL };
        struct agent *b = start_agent(extra, 0);
        snprintf(b->exec_addr, sizeof b->exec_addr, "%s", listen);
        half_close_all(b);
        /* A full close during output: the next writes fail, and the
         * command is cancelled. */
        pid_t pid = start_and_hang_up_a(b, VSOCK_MSG_EXEC_STREAM,
                                        "printf '%d started\\n' $$; while :; do echo x; sleep 0.01; done");
        assert_true(wait_pid_gone(pid, 8000));
        assert_clean(b);
        stop_agent(b);
}

/* The exec port listens before the ready port, so a host that sees
 * "ready" can connect to exec at once: the socket files (renamed into
 * place once listening) appear in that order. */
static void test_bind_order(void **state) {
        struct agent *a = calloc(1, sizeof *a);
        assert_non_null(a);
        snprintf(a->dir, sizeof a->dir, "/tmp/vsock-order-XXXXXX");
        assert_non_null(mkdtemp(a->dir));
        snprintf(a->exec_addr, sizeof a->exec_addr, "unix:%s/exec.sock", a->dir);
        snprintf(a->ready_addr, sizeof a->ready_addr, "unix:%s/ready.sock", a->dir);
        int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        assert_true(in >= 0);
        assert_true(inotify_add_watch(in, a->dir, IN_CREATE | IN_MOVED_TO) >= 0);
        const char *agent = getenv("AGENT");
        assert_non_null(agent);
        a->pid = fork();
        assert_true(a->pid >= 0);
        if (a->pid == 0) {
                execl(agent, agent, "--listen", a->exec_addr, "--ready", a->ready_addr, "--log-level=error",
                      (char *) NULL);
                _exit(127);
        }
        bool exec_seen = false, ready_seen = false, exec_first = false;
        int64_t end = mono_ms() + BOUND_MS;
        while (!ready_seen) {
                assert_true(mono_ms() < end);
                struct pollfd p = { .fd = in, .events = POLLIN };
                (void) poll(&p, 1, 100);
                char ev[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
                ssize_t n = read(in, ev, sizeof ev);
                for (ssize_t off = 0; n > 0 && off < n;) {
                        const struct inotify_event *e = (const struct inotify_event *) (ev + off);
                        if (e->len && strcmp(e->name, "exec.sock") == 0)
                                exec_seen = true;
                        if (e->len && strcmp(e->name, "ready.sock") == 0) {
                                ready_seen = true;
                                exec_first = exec_seen;
                        }
                        off += (ssize_t) (sizeof *e + e->len);
                }
        }
        close(in);
        assert_true(exec_first);
        /* Ready answers; exec, right after, serves. */
        vsock_conn *c;
        assert_int_equal(vsock_dial_str(a->ready_addr, 0, BOUND_MS, -1, &c), 0);
        vsock_conn_close(c);
        assert_int_equal(agent_exec_true(a, BOUND_MS), 0);
        stop_agent(a);
}

/* ---- port forwarding ------------------------------------------------------- */

static void portfwd_request(vsock_conn *c, const char *host, uint16_t port) {
        struct vsock_port_forward_request pr = { .host = (char *) host, .port = port };
        uint8_t *p;
        size_t n;
        assert_int_equal(vsock_port_forward_request_encode(&pr, &p, &n), 0);
        assert_int_equal(vsock_write_message(c, VSOCK_MSG_PORT_FORWARD, p, n), 0);
        free(p);
}

/* The stream is raw after Ready: plain bytes, then a half-close. */
static void *raw_writer_main(void *p) {
        struct writer *w = p;
        w->rc = vsock_conn_write(w->c, w->data, w->len);
        if (w->rc == 0)
                w->rc = vsock_conn_shutdown_write(w->c);
        return NULL;
}

static void portfwd_echo(const char *host, int family) {
        struct tcp_server *echo;
        assert_int_equal(tcp_server_start_family(TCP_ECHO, family, &echo), 0);
        vsock_conn *c = dial();
        portfwd_request(c, host, tcp_server_port(echo));
        /* Raw bytes may follow the request at once. */
        size_t len = 3u * 1024 * 1024;
        uint8_t *data = malloc(len);
        for (size_t i = 0; i < len; i++)
                data[i] = (uint8_t) (i * 7 + i / 1000);
        uint8_t t;
        uint8_t *d;
        uint32_t n;
        assert_int_equal(vsock_read_message(c, &t, &d, &n), 0);
        assert_int_equal(t, VSOCK_MSG_READY);
        assert_int_equal(n, 0);
        free(d);
        struct writer w = { c, data, len, 0 };
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, raw_writer_main, &w), 0);
        uint8_t *got = malloc(len + 1);
        ssize_t have = conn_read_all(c, got, len + 1);
        assert_true(have >= 0);
        pthread_join(th, NULL);
        assert_int_equal(w.rc, 0);
        assert_int_equal(have, len);
        assert_memory_equal(got, data, len);
        vsock_conn_close(c);
        tcp_server_stop(echo);
        free(got);
        free(data);
}

static void test_portfwd(void **state) {
        portfwd_echo(NULL, AF_INET);          /* default host 127.0.0.1 */
        portfwd_echo("127.0.0.1", AF_INET);
        int s6 = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_addr = in6addr_loopback };
        if (s6 >= 0 && bind(s6, (struct sockaddr *) &in6, sizeof in6) == 0) {
                close(s6);
                portfwd_echo("::1", AF_INET6);
        } else {
                if (s6 >= 0)
                        close(s6);
                print_message("no IPv6 loopback: skipping ::1\n");
        }
        portfwd_echo("localhost", AF_INET); /* by name, via the worker */
}

/* One Stderr frame, exactly @text, and the connection closes. */
static void expect_reject(const char *host, uint16_t port, const char *text) {
        vsock_conn *c = dial();
        portfwd_request(c, host, port);
        struct result r;
        read_all(c, &r);
        assert_int_equal(r.frames, 1);
        if (!buf_eq(&r.err, text))
                fail_msg("rejection \"%.*s\", want \"%s\"", (int) buf_size(&r.err), (const char *) buf_head(&r.err),
                         text);
        result_free(&r);
        vsock_conn_close(c);
}

/* A loopback port nobody listens on: bind one, then close it. */
static uint16_t closed_port(int family) {
        int s = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_storage ss = { .ss_family = (sa_family_t) family };
        if (family == AF_INET)
                ((struct sockaddr_in *) &ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        else
                ((struct sockaddr_in6 *) &ss)->sin6_addr = in6addr_loopback;
        socklen_t sl = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        if (bind(s, (struct sockaddr *) &ss, sl) < 0) {
                close(s);
                return 0; /* no IPv6 here */
        }
        assert_int_equal(getsockname(s, (struct sockaddr *) &ss, &sl), 0);
        close(s);
        return ntohs(family == AF_INET ? ((struct sockaddr_in *) &ss)->sin_port
                                       : ((struct sockaddr_in6 *) &ss)->sin6_port);
}

/* The Go agent's words, which Go hosts may parse. */
static void test_portfwd_reject(void **state) {
        char want[256];
        uint16_t port = closed_port(AF_INET);
        snprintf(want, sizeof want, "connect 127.0.0.1:%u failed: dial tcp 127.0.0.1:%u: connect: connection refused",
                 port, port);
        expect_reject("127.0.0.1", port, want);
        expect_reject(NULL, port, want); /* the default host */
        uint16_t port6 = closed_port(AF_INET6);
        if (port6) {
                snprintf(want, sizeof want, "connect ::1:%u failed: dial tcp [::1]:%u: connect: connection refused",
                         port6, port6);
                expect_reject("::1", port6, want);
        }
        expect_reject(NULL, 0, "invalid remote port 0");
        expect_reject("no-such-host.invalid", 80,
                      "connect no-such-host.invalid:80 failed: dial tcp: lookup no-such-host.invalid: no such host");
}

/* WriteFile's modes, as the README's compatibility table says: exact (the
 * agent's umask, 022, does not apply), and an existing file keeps its own
 * when the request has none. */
static void test_write_file_modes(void **state) {
        char path[160];
        snprintf(path, sizeof path, "%s/modes", A->dir);
        static const struct {
                mode_t mode, want;
        } steps[] = { { 0777, 0777 }, { 0, 0777 }, { 0640, 0640 }, { 0, 0640 } };
        for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
                struct vsock_call call = VSOCK_CALL_INIT;
                call.deadline_ns = vsock_deadline_in(BOUND_MS);
                vsock_conn *c = dial();
                int r = vsock_write_file(c, path, "m", 1, steps[i].mode, &call);
                vsock_conn_close(c);
                if (r < 0)
                        fail_msg("write_file mode %o: %s (%s)", steps[i].mode, vsock_strerror(r), call.remote_error);
                struct stat st;
                assert_int_equal(stat(path, &st), 0);
                if ((st.st_mode & 07777) != steps[i].want)
                        fail_msg("step %zu (mode %o): %o, want %o", i, steps[i].mode, st.st_mode & 07777,
                                 steps[i].want);
        }
        unlink(path);
}

/* ---- files ------------------------------------------------------------------ */

static void file_call(uint8_t type, const uint8_t *req, size_t len, struct vsock_file_response *ret) {
        vsock_conn *c = dial();
        assert_int_equal(vsock_write_message(c, type, req, len), 0);
        uint8_t t;
        uint8_t *d;
        uint32_t n;
        assert_int_equal(vsock_read_message(c, &t, &d, &n), 0);
        assert_int_equal(t, VSOCK_MSG_FILE_RESULT);
        assert_int_equal(vsock_file_response_decode(d, n, ret, NULL), 0);
        free(d);
        /* Nothing follows: the host's half-close ends the connection. */
        assert_int_equal(vsock_conn_shutdown_write(c), 0);
        expect_eof(c);
        vsock_conn_close(c);
}

static void test_files(void **state) {
        char path[160];
        snprintf(path, sizeof path, "%s/hello.txt", A->dir);
        uint8_t *p;
        size_t n;
        struct vsock_write_file_request wr = { .path = path, .content = { (uint8_t *) "file body", 9, true },
                                              .mode = 0640 };
        assert_int_equal(vsock_write_file_request_encode(&wr, &p, &n), 0);
        struct vsock_file_response fr = { 0 };
        file_call(VSOCK_MSG_WRITE_FILE, p, n, &fr);
        free(p);
        assert_true(!fr.error || !fr.error[0]);
        vsock_file_response_clear(&fr);

        struct vsock_path_request pr = { .path = path };
        assert_int_equal(vsock_path_request_encode(&pr, &p, &n), 0);
        file_call(VSOCK_MSG_READ_FILE, p, n, &fr);
        free(p);
        assert_int_equal(fr.content.len, 9);
        assert_memory_equal(fr.content.data, "file body", 9);
        vsock_file_response_clear(&fr);

        pr.path = A->dir;
        assert_int_equal(vsock_path_request_encode(&pr, &p, &n), 0);
        file_call(VSOCK_MSG_LIST_FILES, p, n, &fr);
        free(p);
        bool found = false;
        for (size_t i = 0; i < fr.n_files; i++)
                if (strcmp(fr.files[i].name, "hello.txt") == 0 && fr.files[i].size == 9)
                        found = true;
        assert_true(found);
        vsock_file_response_clear(&fr);

        pr.path = "/nonexistent/file";
        assert_int_equal(vsock_path_request_encode(&pr, &p, &n), 0);
        file_call(VSOCK_MSG_READ_FILE, p, n, &fr);
        free(p);
        assert_non_null(fr.error);
        vsock_file_response_clear(&fr);
        unlink(path);
}

/* ---- scale ------------------------------------------------------------------ */

#define N_SESSIONS 500

static void test_many_sessions(void **state) {
        vsock_conn **c = calloc(N_SESSIONS, sizeof *c);
        assert_non_null(c);
        struct vsock_exec_request req = { .command = "cat" };
        for (int i = 0; i < N_SESSIONS; i++) {
                c[i] = dial();
                vsock_conn_set_deadline(c[i], vsock_deadline_in(60000));
                send_request(c[i], VSOCK_MSG_EXEC_PIPE, &req);
        }
        for (int i = 0; i < N_SESSIONS; i++) {
                char msg[32];
                int len = snprintf(msg, sizeof msg, "ping %d\n", i);
                assert_int_equal(vsock_write_message(c[i], VSOCK_MSG_STDIN, msg, (size_t) len), 0);
        }
        for (int i = 0; i < N_SESSIONS; i++) {
                char msg[32];
                snprintf(msg, sizeof msg, "ping %d\n", i);
                struct buf acc = BUF_INIT(0);
                read_until(c[i], &acc, msg);
                buf_free(&acc);
                assert_int_equal(vsock_write_message(c[i], VSOCK_MSG_STDIN, NULL, 0), 0);
        }
        for (int i = 0; i < N_SESSIONS; i++) {
                struct result r;
                read_all(c[i], &r);
                assert_int_equal(r.exit_code, 0);
                result_free(&r);
                vsock_conn_close(c[i]);
        }
        free(c);
}

/* ---- access control, timeouts, shutdown (own agents) ----------------------- */

/* As uid 65534, connect and send a request; returns 1 if served, 0 if the
 * connection was closed without a reply. */
static int try_as_nobody(const char *sock_path) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
                        _exit(10);
                char addr[160];
                snprintf(addr, sizeof addr, "unix:%s", sock_path);
                vsock_conn *c;
                if (vsock_dial_str(addr, 0, 5000, -1, &c) < 0)
                        _exit(11);
                vsock_conn_set_deadline(c, vsock_deadline_in(BOUND_MS));
                struct vsock_exec_request req = { .command = "true" };
                uint8_t *p;
                size_t n;
                if (vsock_exec_request_encode(&req, &p, &n) < 0)
                        _exit(12);
                (void) vsock_write_message(c, VSOCK_MSG_EXEC, p, n);
                uint8_t t;
                uint8_t *d;
                uint32_t len;
                int r = vsock_read_message(c, &t, &d, &len);
                _exit(r >= 0 && t == VSOCK_MSG_EXEC_RESULT ? 1 : 0);
        }
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFEXITED(st));
        assert_true(WEXITSTATUS(st) <= 1);
        return WEXITSTATUS(st);
}

static void test_peer_uid(void **state) {
        if (geteuid() != 0) {
                skip();
                return;
        }
        struct stat st;
        assert_int_equal(stat(A->sock_path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        /* Open the file permissions so the peer check itself is tested. */
        assert_int_equal(chmod(A->dir, 0755), 0);
        assert_int_equal(chmod(A->sock_path, 0666), 0);
        assert_int_equal(try_as_nobody(A->sock_path), 0);

        const char *extra[] = { "--allow-uid", "65534", NULL };
        struct agent *b = start_agent(extra, 0);
        assert_int_equal(chmod(b->dir, 0755), 0);
        assert_int_equal(chmod(b->sock_path, 0666), 0);
        assert_int_equal(try_as_nobody(b->sock_path), 1);
        assert_clean(b);
        stop_agent(b);
}

static void test_idle_timeout(void **state) {
        const char *extra[] = { "--idle-timeout", "1", NULL };
        struct agent *b = start_agent(extra, 0);
        vsock_conn *c = dial_agent(b);
        /* Half a header is not a request. */
        assert_int_equal(vsock_conn_write(c, "\x01\x00", 2), 0);
        uint8_t t;
        uint8_t *d;
        uint32_t n;
        int r = vsock_read_message(c, &t, &d, &n);
        assert_true(r < 0);
        assert_true(vsock_err_kind(r) != VSOCK_E_TIMEOUT); /* closed by the agent, not our bound */
        vsock_conn_close(c);
        assert_clean(b);
        stop_agent(b);
}

/* A slow host and a slow child: the agent's memory stays bounded because
 * it stops reading the fast side (no credit window in the protocol). */
static void test_backpressure(void **state) {
        struct agent *b = start_agent(NULL, 0);
        const size_t total = 32u * 1024 * 1024;

        /* Output: 32 MiB from the child while the host does not read. */
        vsock_conn *c = dial_agent(b);
        vsock_conn_set_deadline(c, vsock_deadline_in(120000));
        struct vsock_exec_request req = { .command = "head -c 33554432 /dev/zero" };
        send_request(c, VSOCK_MSG_EXEC_STREAM, &req);
        pause_ms(300); /* let the agent hit the high-water mark */
        size_t got = 0;
        for (bool done = false; !done;) {
                uint8_t t;
                uint8_t *d;
                uint32_t n;
                assert_int_equal(vsock_read_message(c, &t, &d, &n), 0);
                if (t == VSOCK_MSG_STDOUT)
                        got += n;
                done = t == VSOCK_MSG_EXEC_RESULT;
                free(d);
        }
        assert_int_equal(got, total);
        vsock_conn_close(c);

        /* Input: 32 MiB of Stdin frames to a child that reads late. */
        uint8_t *data = calloc(1, total);
        assert_non_null(data);
        struct result r;
        pipe_feed(b, "sleep 0.3; exec wc -c", data, total, 120000, &r);
        assert_int_equal(r.exit_code, 0);
        assert_true(buf_contains(&r.out, "33554432"));
        result_free(&r);
        free(data);

        long hwm = proc_hwm_kb(b->pid);
        print_message("agent peak RSS after 2 x 32 MiB with backpressure: %ld kB\n", hwm);
#if defined(__SANITIZE_ADDRESS__)
        /* ASan's shadow memory and quarantine make RSS meaningless. */
        (void) hwm;
#else
        assert_true(hwm > 0 && hwm < 24 * 1024);
#endif
        assert_clean(b);
        stop_agent(b);
}

/* Out of fds: the agent backs off instead of spinning on the listener, and
 * serves again once fds are free. */
static void test_emfile_backoff(void **state) {
        struct agent *b = start_agent(NULL, 24);
        vsock_conn *c[40];
        for (int i = 0; i < 40; i++)
                c[i] = dial_agent(b);
        long t0 = proc_cpu_ticks(b->pid);
        pause_ms(300);
        long t1 = proc_cpu_ticks(b->pid);
        print_message("agent CPU while out of fds: %ld ticks in 300 ms\n", t1 - t0);
        for (int i = 0; i < 40; i++)
                vsock_conn_close(c[i]);
        /* Every backlogged connection is accepted and dropped in turn... */
        assert_clean(b);
        /* ... and the agent serves again. */
        vsock_conn *cc = dial_agent(b);
        struct vsock_exec_request req = { .command = "echo back" };
        send_request(cc, VSOCK_MSG_EXEC, &req);
        struct result r;
        read_all(cc, &r);
        assert_true(buf_eq(&r.out, "back\n"));
        result_free(&r);
        vsock_conn_close(cc);
        assert_clean(b);
        stop_agent(b);
}

static void test_sigterm(void **state) {
        struct agent *b = start_agent(NULL, 0);
        vsock_conn *c = dial_agent(b);
        struct vsock_exec_request req = { .command = "printf '%d started\\r\\n' $$; sleep 30" };
        send_request(c, VSOCK_MSG_EXEC_PIPE, &req);
        struct buf acc = BUF_INIT(0);
        read_until(c, &acc, "started");
        pid_t pid = (pid_t) atoi((const char *) buf_head(&acc));
        buf_free(&acc);
        stop_agent(b); /* SIGTERM; asserts exit status 0 */
        assert_false(pid_exists(pid));
        /* The session got its Exit (SIGTERM: 128 + 15) before the close. */
        struct result r;
        read_all(c, &r);
        assert_int_equal(r.exit_code, 128 + SIGTERM);
        result_free(&r);
        vsock_conn_close(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_exit_codes, test_teardown),
                cmocka_unit_test_teardown(test_not_found, test_teardown),
                cmocka_unit_test_teardown(test_argv_mode, test_teardown),
                cmocka_unit_test_teardown(test_stdin_batch, test_teardown),
                cmocka_unit_test_teardown(test_stream_mixed, test_teardown),
                cmocka_unit_test_teardown(test_background, test_teardown),
                cmocka_unit_test_teardown(test_env_cwd_user, test_teardown),
                cmocka_unit_test_teardown(test_pipe_big_stdin, test_teardown),
                cmocka_unit_test_teardown(test_pipe_signal, test_teardown),
                cmocka_unit_test_teardown(test_tty_size_resize, test_teardown),
                cmocka_unit_test_teardown(test_tty_signal, test_teardown),
                cmocka_unit_test_teardown(test_cancel_disconnect, test_teardown),
                cmocka_unit_test_teardown(test_cancel_sigkill, test_teardown),
                cmocka_unit_test_teardown(test_unknown_type, test_teardown),
                cmocka_unit_test_teardown(test_sequential_requests, test_teardown),
                cmocka_unit_test_teardown(test_idle_between_requests, test_teardown),
                cmocka_unit_test_teardown(test_half_close, test_teardown),
                cmocka_unit_test_teardown(test_bind_order, test_teardown),
                cmocka_unit_test_teardown(test_portfwd, test_teardown),
                cmocka_unit_test_teardown(test_portfwd_reject, test_teardown),
                cmocka_unit_test_teardown(test_files, test_teardown),
                cmocka_unit_test_teardown(test_write_file_modes, test_teardown),
                cmocka_unit_test_teardown(test_many_sessions, test_teardown),
                cmocka_unit_test_teardown(test_peer_uid, test_teardown),
                cmocka_unit_test_teardown(test_idle_timeout, test_teardown),
                cmocka_unit_test_teardown(test_backpressure, test_teardown),
                cmocka_unit_test_teardown(test_emfile_backoff, test_teardown),
                cmocka_unit_test_teardown(test_sigterm, test_teardown),
        };
        return cmocka_run_group_tests_name("agent", tests, group_setup, group_teardown);
}
