/* The session's two state machines, driven over a socketpair with fake
 * operations in place of exec, port forwarding and file ops (the agent's
 * handler table is a seam: agent->handlers). Every transition of both
 * machines is reached, and with it what the connection shows the host:
 * sequential requests, half-close versus full close, draining, lingering,
 * the idle bound, pass-through requests, pausing, and callbacks that never
 * run inside the operation's own calls. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <vsock/frame.h>
#include <vsock/msg.h>

#include "agent/agent.h"
#include "agent/serve/ext.h"
#include "agent/serve/loop.h"
#include "agent/serve/session.h"
#include "common/buf.h"
#include "common/io.h"
#include "common/log.h"
#include "common/macro.h"
#include "lib/ext_msg.h"

#define BOUND_MS 5000
#define BIG_FRAME (2u * AGENT_QUEUE_HIGH)

/* Request types of the fake table. */
#define T_REPLY VSOCK_MSG_EXEC          /* request/response: answered on command */
#define T_PIPE VSOCK_MSG_EXEC_PIPE      /* takes frames after its request */
#define T_RAW VSOCK_MSG_PORT_FORWARD    /* a raw byte stream after its request */
#define T_EXT_A 70                      /* extension types of the fake table */
#define T_EXT_B 72
#define T_EXT_C 90
#define T_STREAMED VSOCK_MSG_WRITE_FILE /* taken over at its header from 16 bytes */
#define T_NOLOST VSOCK_MSG_LIST_FILES   /* no conn_lost: dropped with the connection */
#define T_FAIL VSOCK_MSG_READ_FILE      /* its start fails */

struct fake {
        struct session *s;
        uint8_t type;
        char req[64];                   /* the request's payload */
        unsigned frames, eofs, lost, drained, shutdowns;
        struct buf in;                  /* Stdin payloads or raw bytes */
        size_t raw_limit;               /* raw: take at most this much per call (0: all) */
        uint32_t streamed_len;          /* T_STREAMED: the body's size */
        bool in_call;                   /* the test is inside a session_* call */
        bool called_inside;             /* a callback came during one */
};

static struct agent A;
static struct fake *fakes[16];
static size_t n_fakes;
static unsigned freed;
static size_t next_raw_limit; /* raw_limit of the operations to come */

/* The newest operation. */
static struct fake *op(void) { return n_fakes ? fakes[n_fakes - 1] : NULL; }

static void note_call(struct fake *f) {
        if (f->in_call)
                f->called_inside = true;
}

static int fake_frame(void *p, uint8_t type, const uint8_t *data, uint32_t len) {
        struct fake *f = p;
        note_call(f);
        f->frames++;
        if (type == VSOCK_MSG_SIGNAL)
                return -EPROTO; /* the fake's protocol error */
        if (len > 0)
                assert_int_equal(buf_append(&f->in, data, len), 0);
        return 0;
}

static size_t fake_raw(void *p, const uint8_t *data, size_t len) {
        struct fake *f = p;
        note_call(f);
        size_t n = f->raw_limit ? MIN(len, f->raw_limit) : len;
        assert_int_equal(buf_append(&f->in, data, n), 0);
        if (n < len)
                session_pause_input(f->s, true);
        if (f->type == T_STREAMED && buf_size(&f->in) == f->streamed_len)
                session_request_done(f->s);
        return n;
}

static void fake_input_eof(void *p) {
        struct fake *f = p;
        note_call(f);
        f->eofs++;
}

static void fake_conn_lost(void *p) {
        struct fake *f = p;
        note_call(f);
        f->lost++;
}

static void fake_drained(void *p) {
        struct fake *f = p;
        note_call(f);
        f->drained++;
}

static void fake_shutdown(void *p) {
        struct fake *f = p;
        f->shutdowns++;
        session_finish(f->s);
}

static void fake_free(void *p) {
        struct fake *f = p;
        note_call(f);
        freed++;
        buf_free(&f->in);
        f->s = NULL;
}

static const struct session_ops fake_ops = {
        .name = "fake",
        .frame = fake_frame,
        .raw = fake_raw,
        .input_eof = fake_input_eof,
        .conn_lost = fake_conn_lost,
        .drained = fake_drained,
        .shutdown = fake_shutdown,
        .free = fake_free,
};

static const struct session_ops fake_ops_nolost = {
        .name = "fake-nolost",
        .frame = fake_frame,
        .free = fake_free,
};

static struct fake *fake_new(struct session *s, uint8_t type) {
        assert_true(n_fakes < ARRAY_SIZE(fakes));
        struct fake *f = calloc(1, sizeof *f);
        assert_non_null(f);
        f->s = s;
        f->type = type;
        f->in = BUF_INIT(0);
        f->raw_limit = next_raw_limit;
        fakes[n_fakes++] = f;
        return f;
}

static int fake_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len) {
        struct fake *f = fake_new(s, type);
        snprintf(f->req, sizeof f->req, "%.*s", (int) len, payload ? (const char *) payload : "");
        free(payload);
        session_set_op(s, type == T_NOLOST ? &fake_ops_nolost : &fake_ops, f);
        if (type == T_RAW)
                session_set_raw(s);
        /* "now": answered and finished within the start, as a failed exec is. */
        if (strcmp(f->req, "now") == 0) {
                assert_int_equal(session_send(s, VSOCK_MSG_EXEC_RESULT, "{}", 2), 0);
                session_finish(s);
        }
        return 0;
}

static int fake_start_failing(struct session *s, uint8_t type, uint8_t *payload, uint32_t len) {
        free(payload);
        return -ENOMEM;
}

static int fake_start_streamed(struct session *s, uint32_t len) {
        struct fake *f = fake_new(s, T_STREAMED);
        f->streamed_len = len;
        session_set_op(s, &fake_ops, f);
        return 0;
}

static unsigned refused;

static void fake_refuse(struct session *s, uint8_t type, const char *why) {
        refused++;
        assert_non_null(strstr(why, AGENT_BUDGET_TEXT));
        assert_int_equal(session_send(s, VSOCK_MSG_EXEC_RESULT, "{\"refused\":1}", 13), 0);
}

static const struct session_handler fake_handlers[SESSION_HANDLER_TYPES] = {
        [T_REPLY] = { .start = fake_start, .refuse = fake_refuse, .reply = true },
        [T_PIPE] = { .start = fake_start },
        [T_RAW] = { .start = fake_start },
        [T_STREAMED] = { .start = fake_start, .start_streamed = fake_start_streamed, .streamed_min = 16,
                         .reply = true },
        [T_NOLOST] = { .start = fake_start, .reply = true },
        [T_FAIL] = { .start = fake_start_failing },
        /* Extensions: the real Hello, fake operations registered the way
         * extension modules are (two types of one feature). */
        [EXT_MSG_HELLO] = { .start = hello_start, .reply = true, .max_len = EXT_HELLO_MAX },
        [T_EXT_A] = { .start = fake_start, .reply = true, .feature = "alpha" },
        [T_EXT_B] = { .start = fake_start, .reply = true, .feature = "alpha" },
        [T_EXT_C] = { .start = fake_start, .reply = true, .feature = "beta" },
};

/* ---- the loop and the host's end -------------------------------------------- */

static bool (*until)(void);
static bool bound_hit;

static void post_pass(void *userdata) {
        if (until && until())
                loop_quit(A.loop);
}

static void on_bound(struct timer *t) {
        bound_hit = true;
        loop_quit(t->loop);
}

/* Run the loop until @cond holds (checked after every pass). */
static void run_until(bool (*cond)(void)) {
        if (cond())
                return;
        struct timer bound;
        timer_init(&bound, A.loop, on_bound);
        assert_int_equal(timer_arm_in_ms(&bound, BOUND_MS), 0);
        until = cond;
        bound_hit = false;
        assert_int_equal(loop_run(A.loop), 0);
        timer_disarm(&bound);
        until = NULL;
        assert_false(bound_hit);
}

/* One pass of whatever is ready now. */
static void run_pass(void) {
        struct timer t;
        timer_init(&t, A.loop, on_bound);
        assert_int_equal(timer_arm_in_ms(&t, 20), 0);
        assert_int_equal(loop_run(A.loop), 0);
        timer_disarm(&t);
}

static struct session *S; /* the session under test */
static int H = -1;        /* the host's end */

static bool no_sessions(void) { return A.n_sessions == 0; }

static int setup(void **state) {
        log_set_level(getenv("SESSION_DEBUG") ? LOG_DEBUG : LOG_ERR);
        A = (struct agent) { .idle_timeout_ms = 30000, .handlers = fake_handlers };
        assert_int_equal(loop_new(&A.loop), 0);
        loop_set_post_pass(A.loop, post_pass, NULL);
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
        assert_int_equal(fd_set_nonblock(sv[1], 0), 0);
        H = sv[1];
        assert_int_equal(session_new(&A, sv[0], NULL, &S), 0);
        n_fakes = 0;
        freed = 0;
        refused = 0;
        return 0;
}

static int teardown(void **state) {
        session_destroy_all(&A);
        loop_free(A.loop);
        A.loop = NULL;
        H = safe_close(H);
        for (size_t i = 0; i < n_fakes; i++) {
                buf_free(&fakes[i]->in);
                free(fakes[i]);
        }
        n_fakes = 0;
        S = NULL;
        return 0;
}

static void host_send(uint8_t type, const void *data, size_t len) {
        uint8_t hdr[VSOCK_FRAME_HEADER_SIZE];
        vsock_frame_header(hdr, type, (uint32_t) len);
        assert_int_equal(io_write_all(H, hdr, sizeof hdr, 0, -1), 0);
        if (len)
                assert_int_equal(io_write_all(H, data, len, 0, -1), 0);
}

static void host_send_str(uint8_t type, const char *s) { host_send(type, s, strlen(s)); }

/* Send a frame bigger than the socket takes at once, running the loop
 * while it waits. */
static void run_pass(void);
static void host_send_big(uint8_t type, const void *data, size_t len) {
        uint8_t hdr[VSOCK_FRAME_HEADER_SIZE];
        vsock_frame_header(hdr, type, (uint32_t) len);
        assert_int_equal(io_write_all(H, hdr, sizeof hdr, 0, -1), 0);
        int64_t end = now_ns() + (int64_t) BOUND_MS * 1000000;
        for (size_t done = 0; done < len;) {
                assert_true(now_ns() < end);
                ssize_t n = send(H, (const uint8_t *) data + done, len - done, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0) {
                        assert_int_equal(errno, EAGAIN);
                        run_pass();
                        continue;
                }
                done += (size_t) n;
        }
}

/* The next frame from the agent (bounded); its payload into @ret (may be NULL). */
static uint8_t host_read(struct buf *ret) {
        uint8_t hdr[VSOCK_FRAME_HEADER_SIZE];
        int64_t dl = now_ns() + (int64_t) BOUND_MS * 1000000;
        assert_int_equal(io_read_full(H, hdr, sizeof hdr, dl, -1), (ssize_t) sizeof hdr);
        uint8_t type;
        uint32_t len;
        assert_int_equal(vsock_frame_header_parse(hdr, 1u << 26, &type, &len), 0);
        uint8_t *p = malloc(len + 1u);
        assert_non_null(p);
        assert_int_equal(io_read_full(H, p, len, dl, -1), (ssize_t) len);
        if (ret)
                assert_int_equal(buf_append(ret, p, len), 0);
        free(p);
        return type;
}

/* What the host reads now: 1 byte or more, 0 at EOF, -EAGAIN for nothing. */
static ssize_t host_peek(void) {
        char c;
        ssize_t n = recv(H, &c, 1, MSG_DONTWAIT | MSG_PEEK);
        return n < 0 ? -errno : n;
}

static bool host_eof(void) { return host_peek() == 0; }

/* ---- predicates the loop waits for -------------------------------------------- */

static bool have_op(void) { return op() && op()->s; }
static bool op_has_eof(void) { return op() && op()->eofs > 0; }
static bool op_lost(void) { return op() && op()->lost > 0; }
static bool op_freed(void) { return freed >= n_fakes && n_fakes > 0; }
static size_t want_ops;
static bool ops_started(void) { return n_fakes >= want_ops; }
static bool ops_done(void) { return n_fakes >= want_ops && freed >= want_ops; }
static bool two_ops(void) { return n_fakes >= 2; }
static bool out_shut(void) { return session_output_state(S) == SESSION_OUT_SHUT; }
static bool op_drained(void) { return op() && op()->drained > 0; }
static bool op_frames_2(void) { return op() && op()->frames >= 2; }
static size_t want_in;
static bool op_got_want(void) { return op() && buf_size(&op()->in) >= want_in; }

/* The fake answers its request and finishes. */
static void op_reply(const char *json) {
        struct fake *f = op();
        f->in_call = true;
        assert_int_equal(session_send(f->s, VSOCK_MSG_EXEC_RESULT, json, strlen(json)), 0);
        session_finish(f->s);
        f->in_call = false;
}

/* Read what the agent sent, without blocking, while the loop runs, until
 * @want bytes (frames and all) are in. */
static void host_take(size_t want) {
        uint8_t chunk[65536];
        size_t got = 0;
        int64_t end = now_ns() + (int64_t) BOUND_MS * 1000000;
        while (got < want) {
                assert_true(now_ns() < end);
                run_pass();
                ssize_t n = recv(H, chunk, MIN(sizeof chunk, want - got), MSG_DONTWAIT);
                if (n < 0) {
                        assert_int_equal(errno, EAGAIN);
                        continue;
                }
                assert_true(n > 0);
                got += (size_t) n;
        }
}

/* A pipe operation whose queue blocks (the host's receive side small, a
 * frame of twice the high-water mark queued): the queue is high. */
static void pipe_with_blocked_queue(void) {
        int small = 4096;
        assert_int_equal(setsockopt(H, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
        if (!have_op()) {
                host_send_str(T_PIPE, "pipe");
                run_until(have_op);
        }
        uint8_t *p = calloc(1, BIG_FRAME);
        assert_non_null(p);
        assert_int_equal(session_send(S, VSOCK_MSG_STDOUT, p, BIG_FRAME), 0);
        free(p);
        assert_true(session_queue_high(S));
        assert_false(session_queue_empty(S));
}

/* ---- request/response: the connection serves the next request -------------- */

static void test_sequential_requests(void **state) {
        host_send_str(T_REPLY, "first");
        host_send_str(T_REPLY, "second"); /* pipelined */
        run_until(have_op);
        assert_string_equal(op()->req, "first");
        /* While a request/response operation runs, nothing more is read. */
        run_pass();
        assert_int_equal(n_fakes, 1);
        assert_int_equal(op()->frames, 0);
        op_reply("{\"exit_code\":1}");
        assert_int_equal(freed, 0); /* not inside the pass that finished it */
        assert_int_equal(session_input_state(S), SESSION_IN_OPEN);
        assert_int_equal(session_output_state(S), SESSION_OUT_OPEN);
        run_until(two_ops);
        assert_int_equal(freed, 1);
        assert_string_equal(op()->req, "second");
        struct buf b = BUF_INIT(0);
        assert_int_equal(host_read(&b), VSOCK_MSG_EXEC_RESULT);
        assert_int_equal(buf_size(&b), 15);
        buf_free(&b);
        op_reply("{}");
        assert_int_equal(host_read(NULL), VSOCK_MSG_EXEC_RESULT);
        /* Answered within its start: the same. */
        host_send_str(T_REPLY, "now");
        assert_int_equal(session_output_state(S), SESSION_OUT_OPEN);
        want_ops = 3;
        run_until(ops_done);
        assert_int_equal(host_read(NULL), VSOCK_MSG_EXEC_RESULT);
        assert_int_equal(host_peek(), -EAGAIN); /* still open, nothing more */
        /* Then the host half-closes: input OPEN -> EOF -> DONE between
         * requests, output OPEN -> DRAIN -> SHUT, and the session ends. */
        assert_int_equal(shutdown(H, SHUT_WR), 0);
        run_until(no_sessions);
        assert_true(host_eof());
        for (size_t i = 0; i < n_fakes; i++)
                assert_false(fakes[i]->called_inside);
}

/* A pipe (interactive) operation: its frames, then the host's half-close
 * (input OPEN -> EOF -> DONE, the operation told), then its own end: the
 * output drains and shuts, and the session lingers for the host's EOF. */
static void test_half_close_interactive(void **state) {
        host_send_str(T_PIPE, "pipe");
        host_send_str(VSOCK_MSG_STDIN, "abc");
        host_send(VSOCK_MSG_STDIN, NULL, 0);
        run_until(op_frames_2);
        assert_int_equal(buf_size(&op()->in), 3);
        assert_int_equal(shutdown(H, SHUT_WR), 0);
        run_until(op_has_eof);
        assert_int_equal(session_input_state(S), SESSION_IN_DONE);
        assert_int_equal(session_output_state(S), SESSION_OUT_OPEN); /* a half-close is not a disconnect */
        assert_int_equal(op()->lost, 0);
        /* Output still flows after the host's EOF. */
        op()->in_call = true;
        assert_int_equal(session_send(S, VSOCK_MSG_STDOUT, "out", 3), 0);
        op()->in_call = false;
        struct buf b = BUF_INIT(0);
        assert_int_equal(host_read(&b), VSOCK_MSG_STDOUT);
        assert_int_equal(buf_size(&b), 3);
        buf_free(&b);
        op_reply("{}");
        assert_int_equal(session_output_state(S), SESSION_OUT_SHUT); /* an empty queue drains at once */
        assert_int_equal(host_read(NULL), VSOCK_MSG_EXEC_RESULT);
        run_until(no_sessions);
        assert_true(host_eof());
        assert_int_equal(freed, 1);
        assert_false(op()->called_inside);
}

/* A full close (a hang-up on a unix socket) is a lost connection: input
 * OPEN -> CLOSED, output OPEN -> LOST -> CLOSED; the operation is told
 * after the pass, never inside its own call, and freed when it finishes. */
static void test_full_close(void **state) {
        host_send_str(T_PIPE, "pipe");
        run_until(have_op);
        H = safe_close(H);
        run_until(op_lost);
        assert_int_equal(session_input_state(S), SESSION_IN_CLOSED);
        assert_int_equal(session_output_state(S), SESSION_OUT_CLOSED);
        assert_int_equal(op()->eofs, 0);
        /* The operation may still send: dropped. */
        assert_int_equal(session_send(S, VSOCK_MSG_STDOUT, "late", 4), 0);
        session_finish(S);
        run_until(no_sessions);
        assert_int_equal(freed, 1);
}

/* A loss found inside the operation's own call (a write to a closed peer)
 * is told after it returns: OPEN -> LOST, then LOST -> CLOSED. */
static void test_loss_inside_call(void **state) {
        host_send_str(T_REPLY, "wait");
        run_until(have_op);
        H = safe_close(H);
        struct fake *f = op();
        f->in_call = true;
        assert_int_equal(session_send(S, VSOCK_MSG_STDOUT, "x", 1), 0); /* EPIPE inside */
        f->in_call = false;
        assert_int_equal(session_output_state(S), SESSION_OUT_LOST);
        assert_int_equal(f->lost, 0);
        run_until(op_lost);
        assert_int_equal(session_output_state(S), SESSION_OUT_CLOSED);
        assert_false(f->called_inside);
        session_finish(S);
        run_until(no_sessions);
        assert_int_equal(freed, 1);
}

/* After the host's EOF was handed over (input DONE), a full close is still
 * a loss: DONE -> CLOSED. */
static void test_close_after_eof(void **state) {
        host_send_str(T_PIPE, "pipe");
        assert_int_equal(shutdown(H, SHUT_WR), 0);
        run_until(op_has_eof);
        assert_int_equal(session_input_state(S), SESSION_IN_DONE);
        H = safe_close(H);
        run_until(op_lost);
        assert_int_equal(session_input_state(S), SESSION_IN_CLOSED);
        assert_int_equal(session_output_state(S), SESSION_OUT_CLOSED);
        session_finish(S);
        run_until(no_sessions);
}

/* A frame cut off by the host's EOF: between requests the session closes
 * at once (EOF -> CLOSED, OPEN -> CLOSED), with an operation it is lost. */
static void test_truncated(void **state) {
        uint8_t hdr[VSOCK_FRAME_HEADER_SIZE];
        vsock_frame_header(hdr, T_REPLY, 10);
        assert_int_equal(io_write_all(H, hdr, sizeof hdr, 0, -1), 0);
        assert_int_equal(io_write_all(H, "abc", 3, 0, -1), 0);
        assert_int_equal(shutdown(H, SHUT_WR), 0);
        run_until(no_sessions);
        assert_int_equal(n_fakes, 0);
        assert_true(host_eof());
}

static void test_truncated_after_request(void **state) {
        host_send_str(T_PIPE, "pipe");
        uint8_t hdr[VSOCK_FRAME_HEADER_SIZE];
        vsock_frame_header(hdr, VSOCK_MSG_STDIN, 10);
        assert_int_equal(io_write_all(H, hdr, sizeof hdr, 0, -1), 0);
        assert_int_equal(shutdown(H, SHUT_WR), 0);
        run_until(op_lost);
        assert_int_equal(op()->eofs, 0);
        assert_int_equal(session_input_state(S), SESSION_IN_CLOSED);
        session_finish(S);
        run_until(no_sessions);
}

/* The queue blocks: finishing drains it first (OPEN -> DRAIN), the write
 * side shuts once the host reads (DRAIN -> SHUT), and the drained
 * callback comes below the low mark. */
static void test_drain_then_shut(void **state) {
        pipe_with_blocked_queue();
        /* The host reads it all, while the loop runs. */
        host_take(VSOCK_FRAME_HEADER_SIZE + BIG_FRAME);
        run_until(op_drained);
        assert_false(session_queue_high(S));
        assert_true(session_queue_empty(S));
        /* Again, then finish with the queue blocked. */
        pipe_with_blocked_queue();
        session_finish(S);
        assert_int_equal(session_output_state(S), SESSION_OUT_DRAIN);
        run_pass();
        assert_int_equal(session_output_state(S), SESSION_OUT_DRAIN);
        host_take(VSOCK_FRAME_HEADER_SIZE + BIG_FRAME);
        run_until(out_shut);
        /* Closing: input read (and dropped) to the host's EOF. */
        host_send_str(VSOCK_MSG_STDIN, "ignored");
        assert_int_equal(shutdown(H, SHUT_WR), 0);
        run_until(no_sessions);
        assert_true(host_eof());
}

/* A full close while draining: DRAIN -> CLOSED (no operation left to
 * tell), and with one attached, DRAIN -> LOST -> CLOSED. */
static void test_close_while_draining(void **state) {
        pipe_with_blocked_queue();
        session_shutdown_write(S); /* an operation's own half-close (port forward) */
        assert_int_equal(session_output_state(S), SESSION_OUT_DRAIN);
        H = safe_close(H);
        run_until(op_lost);
        assert_int_equal(session_output_state(S), SESSION_OUT_CLOSED);
        session_finish(S);
        run_until(no_sessions);
}

static void test_close_while_draining_no_op(void **state) {
        pipe_with_blocked_queue();
        session_finish(S);
        assert_int_equal(session_output_state(S), SESSION_OUT_DRAIN);
        run_pass();
        H = safe_close(H);
        run_until(no_sessions);
        assert_int_equal(freed, 1);
        assert_int_equal(op()->lost, 0); /* already finished: nobody to tell */
}

/* The host resets while our write side is shut: with an operation attached
 * SHUT -> LOST -> CLOSED; closing, SHUT -> CLOSED. A unix socket closed
 * with unread data resets its peer. */
static void test_reset_after_shut(void **state) {
        host_send_str(T_RAW, "raw");
        run_until(have_op);
        assert_int_equal(session_send(S, VSOCK_MSG_STDOUT, "unread", 6), 0);
        session_shutdown_write(S);
        assert_int_equal(session_output_state(S), SESSION_OUT_SHUT);
        H = safe_close(H); /* with our bytes unread */
        run_until(op_lost);
        assert_int_equal(session_output_state(S), SESSION_OUT_CLOSED);
        session_finish(S);
        run_until(no_sessions);
}

/* Our write side shut (a port forward whose target ended), the host still
 * sends, then half-closes: a hang-up now (both directions shut) is its EOF,
 * not a loss. */
static void test_half_close_after_shut(void **state) {
        host_send_str(T_RAW, "raw");
        run_until(have_op);
        session_shutdown_write(S);
        assert_int_equal(session_output_state(S), SESSION_OUT_SHUT);
        assert_true(host_eof());
        assert_int_equal(io_write_all(H, "tail", 4, 0, -1), 0);
        assert_int_equal(shutdown(H, SHUT_WR), 0);
        run_until(op_has_eof);
        assert_int_equal(op()->lost, 0);
        assert_int_equal(buf_size(&op()->in), 4);
        assert_int_equal(session_input_state(S), SESSION_IN_DONE);
        session_finish(S);
        run_until(no_sessions);
}

static void test_reset_while_lingering(void **state) {
        host_send_str(T_PIPE, "pipe");
        run_until(have_op);
        op_reply("{}");
        run_until(out_shut);
        assert_int_equal(session_input_state(S), SESSION_IN_OPEN); /* lingering */
        H = safe_close(H); /* the result unread */
        run_until(no_sessions);
        assert_int_equal(op()->lost, 0);
}

/* The host never sends EOF: the linger bound ends it (input CLOSED). */
static void test_linger_bound(void **state) {
        host_send_str(T_PIPE, "pipe");
        run_until(have_op);
        op_reply("{}");
        run_until(out_shut);
        run_until(no_sessions); /* 2 s */
        assert_int_equal(host_read(NULL), VSOCK_MSG_EXEC_RESULT);
        assert_true(host_eof());
}

/* No request within the idle bound: OPEN -> CLOSED on both sides, also
 * between requests and in the middle of a streamed request. */
static void test_idle_bound(void **state) {
        session_destroy_all(&A);
        A.idle_timeout_ms = 200;
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
        H = safe_close(H);
        H = sv[1];
        assert_int_equal(fd_set_nonblock(H, 0), 0);
        assert_int_equal(session_new(&A, sv[0], NULL, &S), 0);
        host_send_str(T_REPLY, "now");
        run_until(op_freed);
        assert_int_equal(host_read(NULL), VSOCK_MSG_EXEC_RESULT);
        run_until(no_sessions); /* between requests */
        assert_true(host_eof());

        H = safe_close(H);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
        H = sv[1];
        assert_int_equal(fd_set_nonblock(H, 0), 0);
        assert_int_equal(session_new(&A, sv[0], NULL, &S), 0);
        uint8_t hdr[VSOCK_FRAME_HEADER_SIZE];
        vsock_frame_header(hdr, T_STREAMED, 100);
        assert_int_equal(io_write_all(H, hdr, sizeof hdr, 0, -1), 0);
        assert_int_equal(io_write_all(H, "part", 4, 0, -1), 0);
        run_until(have_op);
        run_until(no_sessions); /* the rest never came: dropped, not told */
        assert_int_equal(op()->lost, 0);
        assert_true(op_freed());
        A.idle_timeout_ms = 30000;
}

/* A request taken over at its header: the body passes through as raw
 * input (in pieces the operation may refuse by pausing), then the
 * connection serves the next request. */
static void test_streamed_request(void **state) {
        char body[200];
        for (size_t i = 0; i < sizeof body; i++)
                body[i] = (char) ('a' + i % 26);
        next_raw_limit = 50;
        host_send(T_STREAMED, body, sizeof body);
        host_send_str(T_REPLY, "next");
        run_until(have_op);
        next_raw_limit = 0;
        want_in = 50;
        run_until(op_got_want);
        run_pass();
        assert_int_equal(buf_size(&op()->in), 50); /* paused */
        struct fake *f = op();
        for (size_t want = 100; want <= sizeof body; want += 50) {
                f->in_call = true;
                session_pause_input(S, false);
                f->in_call = false;
                want_in = want;
                run_until(op_got_want);
        }
        assert_int_equal(buf_size(&f->in), sizeof body);
        assert_memory_equal(buf_head(&f->in), body, sizeof body);
        run_pass();
        assert_int_equal(n_fakes, 1); /* the next request waits for the reply */
        op_reply("{}");
        run_until(two_ops);
        assert_string_equal(op()->req, "next");
        assert_false(f->called_inside);
        /* A short one is collected whole. */
        op_reply("{}");
        host_send_str(T_STREAMED, "tiny");
        want_ops = 3;
        run_until(ops_started);
        assert_string_equal(op()->req, "tiny");
}

/* Raw mode: everything after the request passes through unframed. Paused,
 * the host's bytes wait (some in the agent, the rest in the socket). */
static void test_raw_and_pause(void **state) {
        host_send_str(T_RAW, "raw");
        const char *stream = "\x07\x00\x00\x00\x05not a frame";
        assert_int_equal(io_write_all(H, stream, strlen(stream) + 1, 0, -1), 0);
        want_in = strlen(stream) + 1;
        run_until(op_got_want);
        assert_memory_equal(buf_head(&op()->in), stream, want_in);
        session_pause_input(S, true);
        assert_int_equal(io_write_all(H, "more", 4, 0, -1), 0);
        run_pass();
        assert_int_equal(buf_size(&op()->in), want_in);
        session_pause_input(S, false);
        want_in += 4;
        run_until(op_got_want);
        /* The host's half-close: the operation's EOF. */
        assert_int_equal(shutdown(H, SHUT_WR), 0);
        run_until(op_has_eof);
        assert_int_equal(session_input_state(S), SESSION_IN_DONE);
}

/* Frames that end the connection: oversize after the request, a protocol
 * error from the operation, an operation that fails to start or that has
 * no conn_lost (dropped with the connection). */
static void test_protocol_errors(void **state) {
        host_send_str(T_PIPE, "pipe");
        run_until(have_op);
        uint8_t hdr[VSOCK_FRAME_HEADER_SIZE];
        vsock_frame_header(hdr, VSOCK_MSG_STDIN, 16u * 1024 * 1024 + 1);
        assert_int_equal(io_write_all(H, hdr, sizeof hdr, 0, -1), 0);
        run_until(op_lost);
        session_finish(S);
        run_until(no_sessions);
}

static void test_op_protocol_error(void **state) {
        host_send_str(T_PIPE, "pipe");
        uint8_t sig = 9;
        host_send(VSOCK_MSG_SIGNAL, &sig, 1);
        run_until(op_lost);
        session_finish(S);
        run_until(no_sessions);
}

static void test_start_fails_and_unknown(void **state) {
        host_send_str(T_FAIL, "x");
        run_until(no_sessions);
        assert_true(host_eof());
        assert_int_equal(n_fakes, 0);
}

static void test_unknown_first(void **state) {
        host_send_str(99, "{}");
        run_until(no_sessions);
        assert_true(host_eof());
        assert_int_equal(n_fakes, 0);
}

static void test_dropped_without_conn_lost(void **state) {
        host_send_str(T_NOLOST, "wait");
        run_until(have_op);
        H = safe_close(H);
        run_until(no_sessions);
        assert_int_equal(freed, 1);
}

/* ---- extensions: Hello, the order rules, registration ---------------------------- */

static void host_hello(void) {
        host_send_str(EXT_MSG_HELLO, "{\"version\":1}");
        run_pass();
        struct buf b = BUF_INIT(0);
        assert_int_equal(host_read(&b), EXT_MSG_HELLO_REPLY);
        struct ext_hello_reply rep;
        assert_int_equal(ext_hello_reply_decode(buf_head(&b), buf_size(&b), &rep, NULL), 0);
        buf_free(&b);
        /* Every registered feature once, in type order, after "reuse". */
        assert_int_equal(rep.n_features, 3);
        assert_string_equal(rep.features[0], "reuse");
        assert_string_equal(rep.features[1], "alpha");
        assert_string_equal(rep.features[2], "beta");
        ext_hello_reply_clear(&rep);
}

static void test_ext_after_hello(void **state) {
        host_hello();
        host_send_str(T_EXT_A, "{}");
        run_until(have_op);
        assert_int_equal(op()->type, T_EXT_A);
        op_reply("{}");
        assert_int_equal(host_read(NULL), VSOCK_MSG_EXEC_RESULT);
        /* An extension type nobody registered: Error ENOSYS, and on. */
        host_send_str(100, "{}");
        run_pass();
        struct buf b = BUF_INIT(0);
        assert_int_equal(host_read(&b), EXT_MSG_ERROR);
        struct ext_error e;
        assert_int_equal(ext_error_decode(buf_head(&b), buf_size(&b), &e, NULL), 0);
        assert_string_equal(e.code, "ENOSYS");
        assert_int_equal(e.err, ENOSYS);
        ext_error_clear(&e);
        buf_free(&b);
        want_ops = 2;
        host_send_str(T_EXT_C, "{}");
        run_until(ops_started);
        op_reply("{}");
        assert_int_equal(host_read(NULL), VSOCK_MSG_EXEC_RESULT);
        /* Hello again: closed. */
        host_send_str(EXT_MSG_HELLO, "{\"version\":1}");
        run_until(no_sessions);
        assert_true(host_eof());
}

static void test_ext_without_hello(void **state) {
        host_send_str(T_EXT_B, "{}");
        run_until(no_sessions);
        assert_true(host_eof());
        assert_int_equal(n_fakes, 0);
}

/* Hello after a base request: closed (it must be the first frame). */
static void test_hello_not_first(void **state) {
        host_send_str(T_REPLY, "first");
        run_until(have_op);
        op_reply("{}");
        assert_int_equal(host_read(NULL), VSOCK_MSG_EXEC_RESULT);
        host_send_str(EXT_MSG_HELLO, "{\"version\":1}");
        run_until(no_sessions);
        assert_true(host_eof());
}

/* An Error that ends a request: the connection goes on, unless EPROTO. */
static void test_ext_error_finish(void **state) {
        host_hello();
        host_send_str(T_EXT_A, "{}");
        run_until(have_op);
        struct fake *f = op();
        f->in_call = true;
        ext_error_finish(f->s, NULL, ENOENT, "stat", "stat /%s: gone", "x");
        f->in_call = false;
        struct buf b = BUF_INIT(0);
        assert_int_equal(host_read(&b), EXT_MSG_ERROR);
        struct ext_error e;
        assert_int_equal(ext_error_decode(buf_head(&b), buf_size(&b), &e, NULL), 0);
        assert_string_equal(e.code, "ENOENT");
        assert_int_equal(e.err, ENOENT);
        assert_string_equal(e.message, "stat /x: gone");
        assert_string_equal(e.op, "stat");
        ext_error_clear(&e);
        buf_reset(&b);
        want_ops = 2;
        host_send_str(T_EXT_A, "{}");
        run_until(ops_started);
        f = op();
        f->in_call = true;
        ext_error_finish(f->s, "EPROTO", EPROTO, NULL, "bad");
        f->in_call = false;
        assert_int_equal(host_read(&b), EXT_MSG_ERROR);
        buf_free(&b);
        run_until(out_shut);
        assert_true(host_eof());
}

/* Agent shutdown: operations are told; an idle connection closes. */
/* ---- the send timeout and the memory budget ------------------------------------ */

/* A host that reads nothing of a blocked queue for send_timeout_ms is
 * lost (the operation told, the queue freed); one that reads slowly but
 * steadily is not. */
static void test_send_timeout(void **state) {
        A.send_timeout_ms = 1000;
        budget_init(&A.budget, 0); /* counted only */
        pipe_with_blocked_queue();
        uint8_t *more = calloc(1, 2 * BIG_FRAME);
        assert_non_null(more);
        assert_int_equal(session_send(S, VSOCK_MSG_STDOUT, more, 2 * BIG_FRAME), 0);
        free(more);
        assert_true(budget_used(&A.budget) >= 2 * BIG_FRAME);
        /* Steady progress, 32 KiB every 50 ms (the kernel wakes the
         * writer each ~100 KiB), over two timeouts: still served. */
        int64_t t0 = now_ns();
        for (size_t got = 0; got < 5 * BIG_FRAME / 2;) {
                int64_t next = now_ns() + 50 * 1000000;
                while (now_ns() < next)
                        run_pass();
                host_take(32768);
                got += 32768;
        }
        print_message("read half the queue in %lld ms\n", (long long) ((now_ns() - t0) / 1000000));
        assert_int_equal(op()->lost, 0);
        assert_int_equal(session_output_state(S), SESSION_OUT_OPEN);
        /* Then nothing: dropped, as on a disconnect. */
        run_until(op_lost);
        assert_int_equal(session_output_state(S), SESSION_OUT_CLOSED);
        assert_int_equal(session_input_state(S), SESSION_IN_CLOSED);
        assert_true(session_queue_empty(S));
        assert_int_equal(budget_used(&A.budget), 0);
        session_finish(S);
        run_until(no_sessions);
        A.send_timeout_ms = 0;
}

/* Without a send timeout, a blocked queue waits. */
static void test_no_send_timeout(void **state) {
        A.send_timeout_ms = 0;
        pipe_with_blocked_queue();
        for (int i = 0; i < 30; i++)
                run_pass();
        assert_int_equal(op()->lost, 0);
        assert_int_equal(session_output_state(S), SESSION_OUT_OPEN);
}

static bool op_refused(void) { return refused > 0; }

/* A request bigger than the budget has room for is refused at its header
 * (the handler's error reply, nothing allocated for its body), and the
 * connection closes; small ones are served whatever the budget. */
static void test_budget_refuses_request(void **state) {
        budget_init(&A.budget, 1u << 20);
        uint8_t hdr[VSOCK_FRAME_HEADER_SIZE];
        vsock_frame_header(hdr, T_REPLY, 2u << 20);
        assert_int_equal(io_write_all(H, hdr, sizeof hdr, 0, -1), 0);
        assert_int_equal(io_write_all(H, "{\"command\":\"", 12, 0, -1), 0);
        run_until(op_refused);
        assert_int_equal(n_fakes, 0);
        assert_true(budget_used(&A.budget) < 64u * 1024);
        struct buf b = BUF_INIT(0);
        assert_int_equal(host_read(&b), VSOCK_MSG_EXEC_RESULT);
        assert_int_equal(buf_size(&b), 13);
        buf_free(&b);
        assert_int_equal(session_output_state(S), SESSION_OUT_SHUT);
        assert_int_equal(shutdown(H, SHUT_WR), 0);
        run_until(no_sessions);
        assert_true(host_eof());
        assert_int_equal(budget_used(&A.budget), 0);
        budget_init(&A.budget, 0);
}

/* What fits is charged while it is held and released after: a request
 * collected whole, and a frame after the request. A frame after the
 * request that does not fit loses the connection. */
static void test_budget_frames(void **state) {
        budget_init(&A.budget, 1u << 20);
        char *big = malloc(512u * 1024);
        assert_non_null(big);
        memset(big, 'x', 512u * 1024);
        host_send_big(T_PIPE, big, 512u * 1024);
        run_until(have_op);
        assert_int_equal(budget_used(&A.budget), 0);
        host_send_big(VSOCK_MSG_STDIN, big, 512u * 1024);
        want_in = 512u * 1024;
        run_until(op_got_want);
        assert_int_equal(budget_used(&A.budget), 0);
        /* 2 MiB of Stdin: past the budget. */
        uint8_t hdr[VSOCK_FRAME_HEADER_SIZE];
        vsock_frame_header(hdr, VSOCK_MSG_STDIN, 2u << 20);
        assert_int_equal(io_write_all(H, hdr, sizeof hdr, 0, -1), 0);
        run_until(op_lost);
        session_finish(S);
        run_until(no_sessions);
        assert_int_equal(budget_used(&A.budget), 0);
        free(big);
        budget_init(&A.budget, 0);
}

static void test_agent_shutdown(void **state) {
        host_send_str(T_PIPE, "pipe");
        run_until(have_op);
        A.shutting_down = true;
        session_shutdown_all(&A);
        assert_int_equal(op()->shutdowns, 1); /* the fake finishes at once */
        run_until(no_sessions);               /* no linger while shutting down */
        A.shutting_down = false;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_sequential_requests, setup, teardown),
                cmocka_unit_test_setup_teardown(test_half_close_interactive, setup, teardown),
                cmocka_unit_test_setup_teardown(test_full_close, setup, teardown),
                cmocka_unit_test_setup_teardown(test_loss_inside_call, setup, teardown),
                cmocka_unit_test_setup_teardown(test_close_after_eof, setup, teardown),
                cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
                cmocka_unit_test_setup_teardown(test_truncated_after_request, setup, teardown),
                cmocka_unit_test_setup_teardown(test_drain_then_shut, setup, teardown),
                cmocka_unit_test_setup_teardown(test_close_while_draining, setup, teardown),
                cmocka_unit_test_setup_teardown(test_close_while_draining_no_op, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reset_after_shut, setup, teardown),
                cmocka_unit_test_setup_teardown(test_half_close_after_shut, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reset_while_lingering, setup, teardown),
                cmocka_unit_test_setup_teardown(test_linger_bound, setup, teardown),
                cmocka_unit_test_setup_teardown(test_idle_bound, setup, teardown),
                cmocka_unit_test_setup_teardown(test_streamed_request, setup, teardown),
                cmocka_unit_test_setup_teardown(test_raw_and_pause, setup, teardown),
                cmocka_unit_test_setup_teardown(test_protocol_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_op_protocol_error, setup, teardown),
                cmocka_unit_test_setup_teardown(test_start_fails_and_unknown, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unknown_first, setup, teardown),
                cmocka_unit_test_setup_teardown(test_dropped_without_conn_lost, setup, teardown),
                cmocka_unit_test_setup_teardown(test_agent_shutdown, setup, teardown),
                cmocka_unit_test_setup_teardown(test_send_timeout, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_send_timeout, setup, teardown),
                cmocka_unit_test_setup_teardown(test_budget_refuses_request, setup, teardown),
                cmocka_unit_test_setup_teardown(test_budget_frames, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ext_after_hello, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ext_without_hello, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hello_not_first, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ext_error_finish, setup, teardown),
        };
        return cmocka_run_group_tests_name("session", tests, NULL, NULL);
}
