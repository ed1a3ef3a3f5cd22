/* Detached processes (PROTOCOL.md 2.7) end to end: the library's
 * vsock_proc_*() against the real agent. Start, detach and reattach with
 * replay, output from an offset, gaps when the ring dropped bytes, stdin
 * written later and closed, signals, wait, start failures, limits,
 * retention, shutdown; and hostile requests sent as raw frames. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <vsock/vsock.h>

#include "agent-harness.h"
#include "lib/ext_msg.h"

#define BOUND_MS 20000 /* hang catcher for one exchange */

#include "agent-group.h"

/* Start `sh -c @cmd` detached, with @tag (may be NULL). */
static uint64_t start_sh(const char *cmd, const char *tag, struct vsock_proc_spec *extra) {
        struct vsock_proc_spec spec = extra ? *extra : (struct vsock_proc_spec) { 0 };
        spec.req.command = cmd;
        spec.tag = tag;
        vsock_conn *c = dial();
        struct vsock_call call = bounded_call();
        struct vsock_proc_info info;
        int r = vsock_proc_start(c, &spec, &call, &info);
        if (r < 0)
                fail_msg("proc_start: %s: %s", vsock_strerror(r), call.remote_error);
        vsock_conn_close(c);
        uint64_t id = info.id;
        assert_true(id > 0);
        vsock_proc_info_clear(&info);
        return id;
}

static int start_err(struct vsock_proc_spec *spec, char *why, size_t size) {
        vsock_conn *c = dial();
        struct vsock_call call = bounded_call();
        struct vsock_proc_info info;
        int r = vsock_proc_start(c, spec, &call, &info);
        if (r >= 0)
                vsock_proc_info_clear(&info);
        snprintf(why, size, "%s", call.remote_error);
        vsock_conn_close(c);
        return r;
}

static struct vsock_proc_end wait_proc(uint64_t id, const char *tag) {
        vsock_conn *c = dial();
        struct vsock_call call = bounded_call();
        struct vsock_proc_end end;
        int r = vsock_proc_wait(c, id, tag, 0, &call, &end);
        if (r < 0)
                fail_msg("proc_wait: %s: %s", vsock_strerror(r), call.remote_error);
        vsock_conn_close(c);
        return end;
}

static int control(uint64_t id, const char *tag, const struct vsock_proc_control *ctl, struct vsock_proc_info *ret) {
        vsock_conn *c = dial();
        struct vsock_call call = bounded_call();
        int r = vsock_proc_control(c, id, tag, ctl, &call, ret);
        vsock_conn_close(c);
        return r;
}

/* What an attach delivered. */
struct seen {
        struct buf out, err, all;
        uint64_t gap_from, gap_to;
        int gaps;
        size_t stop_after; /* > 0: fail the call once this much arrived */
};

static int seen_output(void *userdata, enum vsock_stream_id stream, const uint8_t *data, size_t len) {
        struct seen *s = userdata;
        assert_int_equal(buf_append(stream == VSOCK_STREAM_STDOUT ? &s->out : &s->err, data, len), 0);
        assert_int_equal(buf_append(&s->all, data, len), 0);
        if (s->stop_after && buf_size(&s->all) >= s->stop_after)
                return -ECANCELED;
        return 0;
}

static int seen_gap(void *userdata, uint64_t from, uint64_t to) {
        struct seen *s = userdata;
        s->gaps++;
        s->gap_from = from;
        s->gap_to = to;
        return 0;
}

static void seen_init(struct seen *s) {
        *s = (struct seen) { .out = BUF_INIT(0), .err = BUF_INIT(0), .all = BUF_INIT(0) };
}

static void seen_free(struct seen *s) {
        buf_free(&s->out);
        buf_free(&s->err);
        buf_free(&s->all);
}

static bool buf_is(const struct buf *b, const char *s) {
        return buf_size(b) == strlen(s) && memcmp(buf_head(b), s, strlen(s)) == 0;
}

static int attach(uint64_t id, const char *tag, struct vsock_proc_attach_opts opts, struct seen *s,
                  struct vsock_call *call, struct vsock_proc_info *ret_info, struct vsock_proc_end *ret_end) {
        vsock_conn *c = dial();
        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        io.on_output = seen_output;
        io.userdata = s;
        opts.on_gap = seen_gap;
        int r = vsock_proc_attach(c, id, tag, &opts, &io, call, ret_info, ret_end);
        vsock_conn_close(c);
        return r;
}

/* ---- cases ------------------------------------------------------------------------ */

static void test_start_wait_logs(void **state) {
        uint64_t id = start_sh("echo out1; echo err1 >&2; echo out2; exit 3", "swl", NULL);
        struct vsock_proc_end end = wait_proc(0, "swl");
        assert_string_equal(end.reason, "exit");
        assert_int_equal(end.exit_code, 3);
        assert_int_equal(end.signal, 0);
        assert_int_equal(end.offset, 15);

        /* Replay, no follow: both streams, in order, each byte once. */
        struct seen s;
        seen_init(&s);
        struct vsock_call call = bounded_call();
        struct vsock_proc_info info;
        struct vsock_proc_attach_opts opts = { .no_follow = true };
        assert_int_equal(attach(id, NULL, opts, &s, &call, &info, &end), 0);
        assert_false(info.running);
        assert_int_equal(info.exit_code, 3);
        assert_string_equal(info.tag, "swl");
        assert_int_equal(info.out_end, 15);
        assert_true(buf_is(&s.out, "out1\nout2\n"));
        assert_true(buf_is(&s.err, "err1\n"));
        /* Two pipes: their interleaving is the order the agent read them. */
        assert_int_equal(buf_size(&s.all), 15);
        assert_string_equal(end.reason, "end");
        assert_int_equal(end.offset, 15);
        assert_int_equal(s.gaps, 0);
        vsock_proc_info_clear(&info);
        char all[16];
        memcpy(all, buf_head(&s.all), 15);
        seen_free(&s);

        /* From an offset: only the rest, the same bytes. */
        seen_init(&s);
        call = bounded_call();
        opts.offset = 10;
        assert_int_equal(attach(0, "swl", opts, &s, &call, NULL, &end), 0);
        assert_int_equal(buf_size(&s.all), 5);
        assert_memory_equal(buf_head(&s.all), all + 10, 5);
        seen_free(&s);

        /* Beyond the end: refused. */
        seen_init(&s);
        call = bounded_call();
        opts.offset = 16;
        int r = attach(id, NULL, opts, &s, &call, NULL, &end);
        assert_int_equal(vsock_err_errno(r), EINVAL);
        seen_free(&s);
}

static void test_detach_and_reattach(void **state) {
        /* Writes a line, waits for its stdin, writes what it read, then
         * waits for its stdin's end. */
        struct vsock_proc_spec spec = { .stdin_pipe = true };
        uint64_t id = start_sh("echo ready; read x; echo got $x; cat; echo eof", "reattach", &spec);

        /* First attach: sees "ready", then goes away (the deadline). */
        struct seen s;
        seen_init(&s);
        s.stop_after = 6;
        struct vsock_call call = bounded_call();
        struct vsock_proc_end end;
        int r = attach(id, NULL, (struct vsock_proc_attach_opts) { 0 }, &s, &call, NULL, &end);
        assert_true(r < 0);
        assert_true(buf_is(&s.all, "ready\n"));
        seen_free(&s);

        /* It runs on: list says so, and nobody follows it any more. */
        vsock_conn *c = dial();
        call = bounded_call();
        struct vsock_proc_info *v = NULL;
        size_t n = 0;
        assert_int_equal(vsock_proc_list(c, "reattach", &call, &v, &n), 0);
        vsock_conn_close(c);
        assert_int_equal(n, 1);
        assert_true(v[0].running);
        assert_true(v[0].stdin_open);
        assert_int_equal(v[0].id, id);
        vsock_proc_infos_free(v, n);

        /* Stdin written later, from another connection, then closed. */
        struct vsock_proc_control ctl = { .op = VSOCK_PROC_STDIN, .data = "42\n", .len = 3 };
        assert_int_equal(control(id, NULL, &ctl, NULL), 0);
        ctl = (struct vsock_proc_control) { .op = VSOCK_PROC_CLOSE_STDIN };
        struct vsock_proc_info info;
        assert_int_equal(control(id, NULL, &ctl, &info), 0);
        assert_false(info.stdin_open);
        vsock_proc_info_clear(&info);
        ctl = (struct vsock_proc_control) { .op = VSOCK_PROC_STDIN, .data = "x", .len = 1 };
        r = control(id, NULL, &ctl, NULL);
        assert_int_equal(vsock_err_errno(r), EPIPE);

        /* Reattach and follow to the end: the whole output again. */
        seen_init(&s);
        call = bounded_call();
        assert_int_equal(attach(id, NULL, (struct vsock_proc_attach_opts) { 0 }, &s, &call, NULL, &end), 0);
        assert_true(buf_is(&s.all, "ready\ngot 42\neof\n"));
        assert_string_equal(end.reason, "exit");
        assert_int_equal(end.exit_code, 0);
        seen_free(&s);
}

static void test_attach_input(void **state) {
        /* Stdin through the attach itself, EOF included. */
        struct vsock_proc_spec spec = { .stdin_pipe = true };
        uint64_t id = start_sh("tr a-z A-Z", NULL, &spec);
        int p[2];
        assert_int_equal(pipe(p), 0);
        assert_int_equal(write(p[1], "hello\n", 6), 6);
        close(p[1]);
        vsock_conn *c = dial();
        struct seen s;
        seen_init(&s);
        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        io.on_output = seen_output;
        io.userdata = &s;
        io.stdin_fd = p[0];
        struct vsock_proc_attach_opts opts = { .input = true };
        struct vsock_call call = bounded_call();
        struct vsock_proc_end end;
        int r = vsock_proc_attach(c, id, NULL, &opts, &io, &call, NULL, &end);
        if (r < 0)
                fail_msg("attach: %s: %s", vsock_strerror(r), call.remote_error);
        vsock_conn_close(c);
        close(p[0]);
        assert_true(buf_is(&s.all, "HELLO\n"));
        assert_string_equal(end.reason, "exit");
        seen_free(&s);
}

static void test_ring_gap(void **state) {
        /* 64-byte ring, 200 bytes of output: the first 136 are gone. */
        struct vsock_proc_spec spec = { .ring = 64 };
        uint64_t id = start_sh("i=0; while [ $i -lt 20 ]; do echo 012345678; i=$((i+1)); done", NULL, &spec);
        struct vsock_proc_end end = wait_proc(id, NULL);
        assert_int_equal(end.offset, 200);
        struct seen s;
        seen_init(&s);
        struct vsock_call call = bounded_call();
        struct vsock_proc_info info;
        assert_int_equal(attach(id, NULL, (struct vsock_proc_attach_opts) { 0 }, &s, &call, &info, &end), 0);
        assert_int_equal(info.ring_start, 136);
        assert_int_equal(s.gaps, 1);
        assert_int_equal(s.gap_from, 0);
        assert_int_equal(s.gap_to, 136);
        assert_int_equal(buf_size(&s.all), 64);
        assert_memory_equal(buf_head(&s.all), "678\n012345678\n", 14);
        assert_int_equal(end.offset, 200);
        vsock_proc_info_clear(&info);
        seen_free(&s);
}

static void test_only_new_output(void **state) {
        struct vsock_proc_spec spec = { .stdin_pipe = true };
        uint64_t id = start_sh("echo old; read x; echo new", NULL, &spec);
        /* Wait until "old" is there: a no-follow replay of 4 bytes. */
        for (int i = 0;; i++) {
                struct seen s;
                seen_init(&s);
                struct vsock_call call = bounded_call();
                struct vsock_proc_end end;
                assert_int_equal(attach(id, NULL, (struct vsock_proc_attach_opts) { .no_follow = true }, &s, &call,
                                        NULL, &end), 0);
                bool there = buf_size(&s.all) == 4;
                seen_free(&s);
                if (there)
                        break;
                assert_true(i < 2000); /* 10 s */
                usleep(5000);
        }
        /* offset -1: the attach starts at the end; its stdin then makes
         * "new" appear. */
        struct seen s;
        seen_init(&s);
        vsock_conn *c = dial();
        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        io.on_output = seen_output;
        io.userdata = &s;
        /* The attach's own input carries the line, so it certainly comes
         * after the attach started. */
        int p[2];
        assert_int_equal(pipe(p), 0);
        assert_int_equal(write(p[1], "\n", 1), 1);
        close(p[1]);
        io.stdin_fd = p[0];
        struct vsock_proc_attach_opts opts = { .offset = -1, .input = true };
        struct vsock_call call = bounded_call();
        struct vsock_proc_end end;
        assert_int_equal(vsock_proc_attach(c, id, NULL, &opts, &io, &call, NULL, &end), 0);
        vsock_conn_close(c);
        close(p[0]);
        assert_true(buf_is(&s.all, "new\n"));
        assert_int_equal(end.offset, 8);
        seen_free(&s);
}

static void test_signal_and_kill(void **state) {
        uint64_t id = start_sh("trap 'echo term; exit 7' TERM; while :; do sleep 0.05; done", "sig", NULL);
        /* Let the trap be installed: its first sleep runs once the loop
         * started. A TERM before the trap would just kill it (143). */
        struct vsock_proc_control ctl = { .op = VSOCK_PROC_SIGNAL, .signal = SIGTERM };
        struct vsock_proc_info info;
        assert_int_equal(control(id, NULL, &ctl, &info), 0);
        assert_true(info.running || info.exit_code == 143 || info.exit_code == 7);
        vsock_proc_info_clear(&info);
        struct vsock_proc_end end = wait_proc(id, NULL);
        assert_string_equal(end.reason, "exit");
        assert_true(end.exit_code == 7 || end.exit_code == 143);

        id = start_sh("sleep 60", NULL, NULL);
        ctl.signal = SIGKILL;
        assert_int_equal(control(id, NULL, &ctl, NULL), 0);
        end = wait_proc(id, NULL);
        assert_int_equal(end.exit_code, 137);
        assert_int_equal(end.signal, SIGKILL);
        /* Signalling what ended: ESRCH. */
        int r = control(id, NULL, &ctl, NULL);
        assert_int_equal(vsock_err_errno(r), ESRCH);
        /* And `exit 137` is an exit code, not a signal. */
        id = start_sh("exit 137", NULL, NULL);
        end = wait_proc(id, NULL);
        assert_int_equal(end.exit_code, 137);
        assert_int_equal(end.signal, 0);
}

static void test_start_failure(void **state) {
        struct vsock_proc_spec spec = { .req.working_dir = "/nonexistent/dir" };
        uint64_t id = start_sh("true", NULL, &spec);
        struct vsock_proc_end end = wait_proc(id, NULL);
        assert_int_equal(end.exit_code, 127);
        struct seen s;
        seen_init(&s);
        struct vsock_call call = bounded_call();
        assert_int_equal(attach(id, NULL, (struct vsock_proc_attach_opts) { .no_follow = true }, &s, &call, NULL,
                                &end), 0);
        assert_true(buf_contains(&s.err, "vsock-agent: "));
        assert_true(buf_contains(&s.err, "/nonexistent/dir"));
        seen_free(&s);
}

static void test_tty(void **state) {
        struct vsock_proc_spec spec = { .tty = true, .req.rows = 33, .req.cols = 101 };
        uint64_t id = start_sh("stty size; tty", NULL, &spec);
        struct vsock_proc_end end = wait_proc(id, NULL);
        assert_int_equal(end.exit_code, 0);
        struct seen s;
        seen_init(&s);
        struct vsock_call call = bounded_call();
        struct vsock_proc_info info;
        assert_int_equal(attach(id, NULL, (struct vsock_proc_attach_opts) { .no_follow = true }, &s, &call, &info,
                                &end), 0);
        assert_true(info.tty);
        assert_true(buf_contains(&s.out, "33 101"));
        assert_true(buf_contains(&s.out, "/dev/pts/"));
        vsock_proc_info_clear(&info);
        seen_free(&s);
        /* No EOF on a terminal: close-stdin is refused. */
        struct vsock_proc_control ctl = { .op = VSOCK_PROC_CLOSE_STDIN };
        id = start_sh("sleep 60", NULL, &spec);
        assert_int_equal(vsock_err_errno(control(id, NULL, &ctl, NULL)), EINVAL);
        ctl = (struct vsock_proc_control) { .op = VSOCK_PROC_RESIZE, .rows = 10, .cols = 20 };
        assert_int_equal(control(id, NULL, &ctl, NULL), 0);
        ctl = (struct vsock_proc_control) { .op = VSOCK_PROC_SIGNAL, .signal = SIGKILL };
        assert_int_equal(control(id, NULL, &ctl, NULL), 0);
        (void) wait_proc(id, NULL);
}

static void test_wait_timeout_and_errors(void **state) {
        uint64_t id = start_sh("sleep 60", "waiter", NULL);
        vsock_conn *c = dial();
        struct vsock_call call = bounded_call();
        struct vsock_proc_end end;
        int r = vsock_proc_wait(c, 0, "waiter", 50, &call, &end);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_REMOTE);
        assert_int_equal(vsock_err_errno(r), ETIMEDOUT);
        /* The connection serves the next request after an Error. */
        call = bounded_call();
        struct vsock_proc_control ctl = { .op = VSOCK_PROC_REMOVE };
        r = vsock_proc_control(c, id, NULL, &ctl, &call, NULL);
        assert_int_equal(vsock_err_errno(r), EBUSY);
        vsock_conn_close(c);

        char why[512];
        struct vsock_proc_spec spec = { .req.command = "true", .tag = "waiter" };
        r = start_err(&spec, why, sizeof why);
        assert_int_equal(vsock_err_errno(r), EEXIST);
        spec.tag = "bad/tag";
        assert_int_equal(vsock_err_errno(start_err(&spec, why, sizeof why)), EINVAL);
        spec.tag = NULL;
        spec.ring = 64u << 20;
        r = start_err(&spec, why, sizeof why);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_LIMIT);
        assert_non_null(strstr(why, "ring_max"));

        ctl = (struct vsock_proc_control) { .op = VSOCK_PROC_SIGNAL, .signal = SIGKILL };
        assert_int_equal(control(id, NULL, &ctl, NULL), 0);
        (void) wait_proc(id, NULL);
        ctl.op = VSOCK_PROC_REMOVE;
        assert_int_equal(control(0, "waiter", &ctl, NULL), 0);
        r = control(0, "waiter", &ctl, NULL);
        assert_int_equal(vsock_err_errno(r), ENOENT);
        r = control(987654, NULL, &ctl, NULL);
        assert_int_equal(vsock_err_errno(r), ENOENT);
}

static void test_count_limit(void **state) {
        /* procs_max (64) records: running ones are never evicted. */
        struct vsock_proc_spec spec = { .req.command = "sleep 60", .ring = 4096 };
        uint64_t ids[64];
        size_t n = 0;
        char why[512];
        int r = 0;
        for (; n < 64; n++) {
                vsock_conn *c = dial();
                struct vsock_call call = bounded_call();
                struct vsock_proc_info info;
                r = vsock_proc_start(c, &spec, &call, &info);
                snprintf(why, sizeof why, "%s", call.remote_error);
                vsock_conn_close(c);
                if (r < 0)
                        break;
                ids[n] = info.id;
                vsock_proc_info_clear(&info);
        }
        /* Earlier cases left exited records, which gave way; now all 64
         * run, and one more is refused. */
        if (n == 64)
                r = start_err(&spec, why, sizeof why);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_LIMIT);
        assert_non_null(strstr(why, "procs_max"));
        struct vsock_proc_control ctl = { .op = VSOCK_PROC_SIGNAL, .signal = SIGKILL };
        for (size_t i = 0; i < n; i++)
                assert_int_equal(control(ids[i], NULL, &ctl, NULL), 0);
        for (size_t i = 0; i < n; i++)
                (void) wait_proc(ids[i], NULL);
        /* Exited ones make room again. */
        uint64_t id = start_sh("true", NULL, NULL);
        (void) wait_proc(id, NULL);
}

static void test_retention(void **state) {
        struct vsock_proc_spec spec = { .keep_s = 1 };
        uint64_t id = start_sh("true", "short-lived", &spec);
        (void) wait_proc(id, NULL);
        /* Gone within a bound after its second of retention. */
        for (int i = 0;; i++) {
                vsock_conn *c = dial();
                struct vsock_call call = bounded_call();
                struct vsock_proc_info *v = NULL;
                size_t n = 0;
                assert_int_equal(vsock_proc_list(c, "short-lived", &call, &v, &n), 0);
                vsock_conn_close(c);
                vsock_proc_infos_free(v, n);
                if (n == 0)
                        break;
                assert_true(i < 1000); /* 10 s */
                usleep(10000);
        }
}

/* Whether @pid is alive and carries @m. */
static bool marker_has_pid(const struct marker *m, pid_t pid) {
        pid_t pids[64];
        size_t n = marker_find(m->entry, pids, 64);
        for (size_t i = 0; i < n && i < 64; i++)
                if (pids[i] == pid)
                        return true;
        return false;
}

static void test_outlives_connection_ends_with_agent(void **state) {
        struct agent *a = agent_start(NULL, 0);
        assert_non_null(a);
        struct marker m;
        marker_new(&m, "PROCTEST");
        vsock_conn *c = NULL;
        assert_int_equal(agent_dial(a, BOUND_MS, &c), 0);
        struct vsock_proc_spec spec = { .req.command = "sleep 60", .req.env = &m.env, .req.n_env = 1 };
        struct vsock_call call = bounded_call();
        struct vsock_proc_info info;
        assert_int_equal(vsock_proc_start(c, &spec, &call, &info), 0);
        pid_t pid = info.pid;
        vsock_proc_info_clear(&info);
        /* The connection goes; the process stays. Follow its pid, not the
         * marker count: whether the shell forks sleep or execs it is the
         * shell's business, and a fork lands whenever it likes. */
        vsock_conn_close(c);
        assert_true(marker_wait_count(&m, 1, 10000));
        assert_int_equal(agent_exec_true(a, BOUND_MS), 0);
        assert_true(marker_has_pid(&m, pid));
        /* Agent shutdown ends it. */
        assert_int_equal(agent_stop(a, BOUND_MS, NULL), 0);
        size_t left = 0;
        assert_true(marker_end(&m, 10000, &left));
}

/* ---- hostile input ---------------------------------------------------------------------- */

/* A connection that said Hello. */
static vsock_conn *dial_ext(void) {
        vsock_conn *c = dial();
        struct vsock_call call = bounded_call();
        assert_int_equal(vsock_hello(c, &call, NULL), 0);
        return c;
}

/* Send @type with @json; return the reply's type and, for an Error, its
 * code in @code. */
static uint8_t raw_request(vsock_conn *c, uint8_t type, const void *data, size_t len, char *code, size_t size) {
        assert_int_equal(vsock_write_message(c, type, data, len), 0);
        uint8_t t;
        uint8_t *d = NULL;
        uint32_t n;
        int r = vsock_read_message(c, &t, &d, &n);
        if (r < 0) {
                snprintf(code, size, "closed");
                return 0;
        }
        code[0] = '\0';
        if (t == EXT_MSG_ERROR) {
                struct ext_error e;
                assert_int_equal(ext_error_decode(d, n, &e, NULL), 0);
                snprintf(code, size, "%s", e.code);
                ext_error_clear(&e);
        }
        free(d);
        return t;
}

static bool conn_closed(vsock_conn *c) {
        uint8_t t;
        uint8_t *d = NULL;
        uint32_t n;
        int r = vsock_read_message(c, &t, &d, &n);
        free(d);
        return r < 0;
}

static void test_hostile(void **state) {
        char code[32];
        /* Without Hello: the agent closes, as a base agent would. */
        vsock_conn *c = dial();
        assert_int_equal(raw_request(c, EXT_MSG_PROC_LIST, "{}", 2, code, sizeof code), 0);
        vsock_conn_close(c);

        /* Bad JSON: EPROTO, then the connection closes. */
        static const struct { uint8_t type; const char *json; } bad[] = {
                { EXT_MSG_PROC_START, "{\"command\":" },
                { EXT_MSG_PROC_START, "{\"command\":\"x\",\"ring\":-1}" },
                { EXT_MSG_PROC_LIST, "[1,2]" },
                { EXT_MSG_PROC_ATTACH, "{\"id\":\"x\"}" },
                { EXT_MSG_PROC_CONTROL, "{\"op\":\"stdin\",\"data\":\"!!notbase64\"}" },
                { EXT_MSG_PROC_WAIT, "{\"id\":1e400}" },
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                c = dial_ext();
                assert_int_equal(raw_request(c, bad[i].type, bad[i].json, strlen(bad[i].json), code, sizeof code),
                                 EXT_MSG_ERROR);
                assert_string_equal(code, "EPROTO");
                assert_true(conn_closed(c));
                vsock_conn_close(c);
        }

        /* Well-formed but wrong: an Error, and the connection goes on
         * (except after an attach, always a connection's last request). */
        static const struct { uint8_t type; const char *json; const char *code; } wrong[] = {
                { EXT_MSG_PROC_ATTACH, "{}", "EINVAL" },
                { EXT_MSG_PROC_ATTACH, "{\"id\":99999}", "ENOENT" },
                { EXT_MSG_PROC_CONTROL, "{\"id\":99999,\"op\":\"signal\",\"signal\":9}", "ENOENT" },
                { EXT_MSG_PROC_WAIT, "{\"tag\":\"none-such\"}", "ENOENT" },
                { EXT_MSG_PROC_START, "{\"command\":\"true\",\"ring\":4294967295}", "ELIMIT" },
                { EXT_MSG_PROC_START, "{\"command\":\"true\",\"tag\":\"../x\"}", "EINVAL" },
        };
        c = NULL;
        for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
                if (!c)
                        c = dial_ext();
                assert_int_equal(raw_request(c, wrong[i].type, wrong[i].json, strlen(wrong[i].json), code, sizeof code),
                                 EXT_MSG_ERROR);
                assert_string_equal(code, wrong[i].code);
                if (wrong[i].type == EXT_MSG_PROC_ATTACH) {
                        assert_true(conn_closed(c));
                        vsock_conn_close(c);
                        c = NULL;
                }
        }
        vsock_conn_close(c);

        /* Control ops that do not apply. */
        uint64_t id = start_sh("sleep 60", NULL, NULL);
        char json[256];
        c = dial_ext();
        snprintf(json, sizeof json, "{\"id\":%llu,\"op\":\"explode\"}", (unsigned long long) id);
        assert_int_equal(raw_request(c, EXT_MSG_PROC_CONTROL, json, strlen(json), code, sizeof code), EXT_MSG_ERROR);
        assert_string_equal(code, "ENOSYS");
        snprintf(json, sizeof json, "{\"id\":%llu,\"op\":\"signal\",\"signal\":99}", (unsigned long long) id);
        assert_int_equal(raw_request(c, EXT_MSG_PROC_CONTROL, json, strlen(json), code, sizeof code), EXT_MSG_ERROR);
        assert_string_equal(code, "EINVAL");
        snprintf(json, sizeof json, "{\"id\":%llu,\"op\":\"resize\",\"rows\":1,\"cols\":1}", (unsigned long long) id);
        assert_int_equal(raw_request(c, EXT_MSG_PROC_CONTROL, json, strlen(json), code, sizeof code), EXT_MSG_ERROR);
        assert_string_equal(code, "EINVAL");
        snprintf(json, sizeof json, "{\"id\":%llu,\"timeout_ms\":-5}", (unsigned long long) id);
        assert_int_equal(raw_request(c, EXT_MSG_PROC_WAIT, json, strlen(json), code, sizeof code), EXT_MSG_ERROR);
        assert_string_equal(code, "EINVAL");
        /* Stdin above data_max (its stdin is /dev/null, but the size is
         * checked first). */
        size_t big = 300 * 1024;
        struct ext_proc_control pc;
        ext_proc_control_init(&pc);
        pc.id = id;
        pc.op = "stdin";
        pc.data = (struct vsock_bytes) { calloc(1, big), big, true };
        struct buf b = BUF_INIT(0);
        assert_int_equal(ext_proc_control_encode(&pc, &b), 0);
        free(pc.data.data);
        assert_int_equal(raw_request(c, EXT_MSG_PROC_CONTROL, buf_head(&b), buf_size(&b), code, sizeof code),
                         EXT_MSG_ERROR);
        assert_string_equal(code, "ELIMIT");
        buf_free(&b);
        vsock_conn_close(c);

        /* Stdin frames on an attach without input: a protocol error. */
        c = dial_ext();
        snprintf(json, sizeof json, "{\"id\":%llu}", (unsigned long long) id);
        assert_int_equal(raw_request(c, EXT_MSG_PROC_ATTACH, json, strlen(json), code, sizeof code), EXT_MSG_PROC_INFO);
        assert_int_equal(vsock_write_message(c, VSOCK_MSG_STDIN, "x", 1), 0);
        assert_true(conn_closed(c));
        vsock_conn_close(c);

        /* The agent still serves, and the process still runs. */
        struct vsock_proc_control ctl = { .op = VSOCK_PROC_SIGNAL, .signal = SIGKILL };
        assert_int_equal(control(id, NULL, &ctl, NULL), 0);
        struct vsock_proc_end end = wait_proc(id, NULL);
        assert_int_equal(end.signal, SIGKILL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_start_wait_logs),
                cmocka_unit_test(test_detach_and_reattach),
                cmocka_unit_test(test_attach_input),
                cmocka_unit_test(test_ring_gap),
                cmocka_unit_test(test_only_new_output),
                cmocka_unit_test(test_signal_and_kill),
                cmocka_unit_test(test_start_failure),
                cmocka_unit_test(test_tty),
                cmocka_unit_test(test_wait_timeout_and_errors),
                cmocka_unit_test(test_count_limit),
                cmocka_unit_test(test_retention),
                cmocka_unit_test(test_outlives_connection_ends_with_agent),
                cmocka_unit_test(test_hostile),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
