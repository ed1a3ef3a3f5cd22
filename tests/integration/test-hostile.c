/* Hostile input and faults against the real agent ($AGENT) on temporary
 * unix sockets. For every case: a clear error reply or a closed connection,
 * then the agent still serves (a batch `true`), its memory stays bounded
 * and it has no leftover fds or children.
 *
 * Processes started by a case carry a unique environment marker, so
 * survivors are found in /proc whatever process group or session they
 * moved to.
 *
 * Agent bugs found by these tests are marked with known_bug(): the test
 * is skipped with the reason printed (HOSTILE_KNOWN_BUGS=1 runs it
 * anyway). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <vsock/vsock.h>

#include "agent-harness.h"
#include "common/buf.h"
#include "lib/base64.h"
#include "lib/ext_msg.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

#define BOUND_MS 20000                  /* hang catcher for one exchange */
#define GRACE_MS 5000                   /* the agent's SIGTERM -> SIGKILL grace */
#define RSS_SLACK_KB (16L * 1024)       /* allowed growth over the baseline */
/* The agent's frame limits (src/agent/serve/session.c): the request, and every
 * frame after it. */
#define REQUEST_MAX VSOCK_MAX_PAYLOAD_DEFAULT
#define AFTER_MAX (16u * 1024 * 1024)
#define MARKER_KEY "VSOCK_HOSTILE"
#define FILES_READ_MAX_TEST (16u * 1024 * 1024) /* the agent's ReadFile limit */

static struct agent *A;                 /* the group's agent */
static struct agent *B;                 /* a test's own agent, stopped at teardown */
static long A_rss_kb;                   /* its VmRSS after a warm-up */

/* ---- checks ------------------------------------------------------------- */

__attribute__((unused)) static void known_bug(const char *what) {
        if (getenv("HOSTILE_KNOWN_BUGS")) {
                print_message("known bug (running anyway): %s\n", what);
                return;
        }
        print_message("known bug: %s\n", what);
        skip();
}

static void dump_fds(pid_t pid) {
        char p[64];
        snprintf(p, sizeof p, "/proc/%d/fd", (int) pid);
        DIR *d = opendir(p);
        struct dirent *de;
        while (d && (de = readdir(d))) {
                char lp[320], target[256];
                if (de->d_name[0] == '.')
                        continue;
                snprintf(lp, sizeof lp, "%s/%s", p, de->d_name);
                ssize_t n = readlink(lp, target, sizeof target - 1);
                target[n > 0 ? n : 0] = '\0';
                print_message("  fd %s -> %s\n", de->d_name, target);
        }
        if (d)
                closedir(d);
}

static void assert_clean(struct agent *a) {
        int fds, kids;
        if (!agent_wait_clean(a, 15000, &fds, &kids)) {
                dump_fds(a->pid);
                fail_msg("agent %d: %d fds (baseline %d), %d children", (int) a->pid, fds, a->baseline_fds, kids);
        }
}

static void assert_rss_bounded(struct agent *a, long base_kb, const char *what) {
        long rss = proc_rss_kb(a->pid);
#ifdef UNDER_ASAN
        /* ASan's shadow memory and quarantine make RSS meaningless. */
        (void) base_kb;
        (void) what;
        (void) rss;
#else
        if (rss < 0 || rss > base_kb + RSS_SLACK_KB)
                fail_msg("%s: agent RSS %ld kB, baseline %ld kB", what, rss, base_kb);
#endif
}

/* Serves a batch `true`, has no leftovers, memory within bounds. */
static void assert_healthy(struct agent *a, long base_kb, const char *what) {
        assert_clean(a);
        int r = agent_exec_true(a, BOUND_MS);
        if (r < 0)
                fail_msg("%s: agent no longer serves: %s", what, vsock_strerror(r));
        assert_clean(a);
        assert_rss_bounded(a, base_kb, what);
}

/* Reset the agent's VmHWM so a case's peak can be read afterwards. */
static void hwm_reset(pid_t pid) {
        char p[64];
        snprintf(p, sizeof p, "/proc/%d/clear_refs", (int) pid);
        int fd = open(p, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
                (void) !write(fd, "5", 1);
                close(fd);
        }
}

/* ---- markers ---------------------------------------------------------------- */

static void wait_marker_count(const struct marker *m, size_t n) {
        if (!marker_wait_count(m, n, BOUND_MS))
                fail_msg("%s: fewer than %zu processes started", m->entry, n);
}

static void assert_marker_gone(const struct marker *m, int bound_ms, const char *what) {
        size_t n = 0;
        if (!marker_end(m, bound_ms, &n))
                fail_msg("%s: %zu processes of the group survived", what, n);
}

/* ---- raw protocol -------------------------------------------------------- */

static vsock_conn *dial_a(struct agent *a) {
        vsock_conn *c = NULL;
        int r = agent_dial(a, BOUND_MS, &c);
        if (r < 0)
                fail_msg("dial: %s", vsock_strerror(r));
        return c;
}

static vsock_conn *dial(void) { return dial_a(A); }

static int send_header(vsock_conn *c, uint8_t type, uint32_t len) {
        uint8_t h[VSOCK_FRAME_HEADER_SIZE];
        vsock_frame_header(h, type, len);
        return vsock_conn_write(c, h, sizeof h);
}

/* Everything the agent sent until it closed. */
struct reply {
        unsigned frames;
        struct buf out, err;
        bool got_exit, got_result, got_file, got_ready;
        int64_t exit_code;
        char *error;                    /* ExecResult / FileResult error */
        int end;                        /* what ended the reading */
        bool bad;                       /* a frame the agent must not send */
        uint8_t bad_type;
};

static void reply_clear(struct reply *r) {
        buf_free(&r->out);
        buf_free(&r->err);
        free(r->error);
        r->error = NULL;
}

/* Read one frame into @r; returns the read's result. */
static int reply_read_one(vsock_conn *c, struct reply *r) {
        uint8_t t;
        uint8_t *d;
        uint32_t n;
        int rc = vsock_read_message(c, &t, &d, &n);
        if (rc < 0) {
                r->end = rc;
                return rc;
        }
        r->frames++;
        switch (t) {
        case VSOCK_MSG_STDOUT:
                (void) buf_append(&r->out, d, n);
                break;
        case VSOCK_MSG_STDERR:
                (void) buf_append(&r->err, d, n);
                break;
        case VSOCK_MSG_EXIT: {
                int32_t code;
                if (vsock_exit_decode(d, n, &code) < 0)
                        r->bad = true;
                r->exit_code = code;
                r->got_exit = true;
                break;
        }
        case VSOCK_MSG_EXEC_RESULT: {
                struct vsock_exec_response er = { 0 };
                if (vsock_exec_response_decode(d, n, &er, NULL) < 0) {
                        r->bad = true;
                        break;
                }
                r->exit_code = er.exit_code;
                r->got_result = true;
                if (er.stdout_data.len)
                        (void) buf_append(&r->out, er.stdout_data.data, er.stdout_data.len);
                if (er.stderr_data.len)
                        (void) buf_append(&r->err, er.stderr_data.data, er.stderr_data.len);
                if (er.error && er.error[0] && !r->error)
                        r->error = strdup(er.error);
                vsock_exec_response_clear(&er);
                break;
        }
        case VSOCK_MSG_FILE_RESULT: {
                struct vsock_file_response fr = { 0 };
                if (vsock_file_response_decode(d, n, &fr, NULL) < 0) {
                        r->bad = true;
                        break;
                }
                r->got_file = true;
                if (fr.error && fr.error[0] && !r->error)
                        r->error = strdup(fr.error);
                vsock_file_response_clear(&fr);
                break;
        }
        case VSOCK_MSG_READY:
                r->got_ready = true;
                break;
        default:
                r->bad = true;
                r->bad_type = t;
                break;
        }
        free(d);
        return 0;
}

/* Read until the agent closes. A result (ExecResult, FileResult) leaves
 * the connection open for another request: having none, the host
 * half-closes then, and the agent closes. */
static void reply_read(vsock_conn *c, struct reply *r) {
        *r = (struct reply) { .out = BUF_INIT(0), .err = BUF_INIT(0), .exit_code = -1000 };
        bool shut = false;
        while (reply_read_one(c, r) >= 0)
                if (!shut && (r->got_result || r->got_file)) {
                        (void) vsock_conn_shutdown_write(c);
                        shut = true;
                }
}

enum outcome { OUT_CLOSED, OUT_OK, OUT_ERROR, OUT_TIMEOUT, OUT_BAD };
static const char *const outcome_names[] = { "closed", "ok", "error reply", "TIMEOUT", "BAD FRAME" };

static enum outcome reply_outcome(const struct reply *r) {
        if (r->bad)
                return OUT_BAD;
        if (vsock_err_kind(r->end) == VSOCK_E_TIMEOUT)
                return OUT_TIMEOUT;
        if (r->frames == 0)
                return OUT_CLOSED;
        if (r->error)
                return OUT_ERROR;
        /* A request that cannot run: 126 (or 127) and the reason on stderr. */
        if ((r->got_exit || r->got_result) && r->exit_code != 0 && buf_size(&r->err) > 0)
                return OUT_ERROR;
        /* A rejected port forward: its reason on Stderr, no Ready. */
        if (!r->got_exit && !r->got_result && !r->got_file && !r->got_ready && buf_size(&r->err) > 0)
                return OUT_ERROR;
        return OUT_OK;
}

/* Send @len bytes of @type as the first frame; read the reply to EOF. */
static enum outcome exchange(uint8_t type, const void *payload, size_t len, struct reply *r) {
        vsock_conn *c = dial();
        (void) vsock_write_message(c, type, payload, len); /* the agent may close early */
        reply_read(c, r);
        vsock_conn_close(c);
        return reply_outcome(r);
}

/* Read frames until the collected output holds @needle. */
static void read_until(vsock_conn *c, struct reply *r, const char *needle) {
        while (!buf_contains(&r->out, needle)) {
                int rc = reply_read_one(c, r);
                if (rc < 0)
                        fail_msg("waiting for '%s': %s", needle, vsock_strerror(rc));
                assert_false(r->bad);
        }
}

static void reply_init(struct reply *r) {
        *r = (struct reply) { .out = BUF_INIT(0), .err = BUF_INIT(0), .exit_code = -1000 };
}

/* Send @req as a request of @type on a new connection and, with @ready,
 * read until the output shows it. */
static vsock_conn *exec_start(uint8_t type, const struct vsock_exec_request *req, const char *ready, struct reply *r) {
        vsock_conn *c = dial();
        assert_int_equal(send_exec_request(c, type, req), 0);
        reply_init(r);
        if (ready)
                read_until(c, r, ready);
        return c;
}

/* The same on @a, reading until the command's Exit or ExecResult. */
static vsock_conn *exec_until_end_a(struct agent *a, uint8_t type, const struct vsock_exec_request *req,
                                    struct reply *r) {
        vsock_conn *c = dial_a(a);
        assert_int_equal(send_exec_request(c, type, req), 0);
        reply_init(r);
        while (!r->got_exit && !r->got_result)
                assert_int_equal(reply_read_one(c, r), 0);
        return c;
}

static vsock_conn *exec_until_end(uint8_t type, const struct vsock_exec_request *req, struct reply *r) {
        return exec_until_end_a(A, type, req, r);
}

/* Read the rest: no bad frame, Exit 0 and "got:hello" in the output. */
static void expect_got_hello(vsock_conn *c, struct reply *r) {
        while (reply_read_one(c, r) >= 0)
                ;
        assert_false(r->bad);
        assert_true(r->got_exit);
        assert_int_equal(r->exit_code, 0);
        assert_true(buf_contains(&r->out, "got:hello"));
        reply_clear(r);
        vsock_conn_close(c);
}

/* ---- setup ------------------------------------------------------------------- */

static int group_setup(void **state) {
        nofile_raise(8192);
        signal(SIGPIPE, SIG_IGN);
        /* A generous I/O timeout: big listings take long under ASan on a
         * busy machine (the stalled-file-system cases use agents of their
         * own). */
        static const char *const opts[] = { "--io-timeout", "300", NULL };
        A = agent_start(opts, 0);
        if (!A)
                return -1;
        /* Warm up every path once, so first-use allocations and fds (the
         * worker thread and its arena, spawn's reserved fds) are in the
         * baseline. */
        int r = agent_warm_up(A);
        if (r < 0) {
                fprintf(stderr, "warm-up: %s\n", vsock_strerror(r));
                return -1;
        }
        A_rss_kb = proc_rss_kb(A->pid);
        print_message("agent %d: baseline %d fds, %ld kB RSS\n", (int) A->pid, A->baseline_fds, A_rss_kb);
        return 0;
}

static int group_teardown(void **state) {
        marker_kill_all(MARKER_KEY);
        int r = agent_stop(A, BOUND_MS, NULL);
        A = NULL;
        return r;
}

static struct stall_fs *F;

static int test_teardown(void **state) {
        /* First: nothing the agents run may stay stuck in it. */
        stall_fs_release(F);
        F = NULL;
        if (B) {
                /* The test failed before stopping its own agent. */
                (void) agent_stop(B, BOUND_MS, NULL);
                B = NULL;
        }
        marker_kill_all(MARKER_KEY);
        assert_healthy(A, A_rss_kb, "after the test");
        return 0;
}

/* ---- frame lengths ----------------------------------------------------------- */

/* Every exec mode. */
static const uint8_t exec_modes[] = { VSOCK_MSG_EXEC, VSOCK_MSG_EXEC_STREAM, VSOCK_MSG_EXEC_PIPE, VSOCK_MSG_EXEC_TTY };

static const uint8_t first_types[] = {
        VSOCK_MSG_EXEC,       VSOCK_MSG_EXEC_STREAM, VSOCK_MSG_EXEC_PIPE, VSOCK_MSG_EXEC_TTY, VSOCK_MSG_PORT_FORWARD,
        VSOCK_MSG_WRITE_FILE, VSOCK_MSG_READ_FILE,   VSOCK_MSG_LIST_FILES, 0,                  255,
};

/* Announce @len, send @send bytes of it, then (if @shut) half-close:
 * the agent must close the connection without a reply. */
static void expect_closed_after_header(uint8_t type, uint32_t len, size_t send, bool shut) {
        vsock_conn *c = dial();
        (void) send_header(c, type, len);
        if (send > 0) {
                uint8_t *junk = malloc(send);
                assert_non_null(junk);
                memset(junk, '[', send);
                (void) vsock_conn_write(c, junk, send);
                free(junk);
        }
        if (shut)
                (void) vsock_conn_shutdown_write(c);
        struct reply r;
        reply_read(c, &r);
        vsock_conn_close(c);
        if (reply_outcome(&r) != OUT_CLOSED)
                fail_msg("type %u, length %u (%zu sent): %s", type, len, send, outcome_names[reply_outcome(&r)]);
        reply_clear(&r);
}

static void test_frame_lengths(void **state) {
        static const uint32_t lens[] = { 0xFFFFFFFFu, 0x80000000u, REQUEST_MAX + 1, REQUEST_MAX + 2,
                                         REQUEST_MAX + 4096 };
        hwm_reset(A->pid);
        for (size_t t = 0; t < sizeof first_types; t++)
                for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
                        expect_closed_after_header(first_types[t], lens[i], 0, false);
                        expect_closed_after_header(first_types[t], lens[i], 1000, false);
                }
        /* Announcing the whole limit is allowed; the unsent rest is not
         * waited for once the host hangs up. */
        expect_closed_after_header(VSOCK_MSG_EXEC, REQUEST_MAX, 1u << 20, true);
        expect_closed_after_header(VSOCK_MSG_WRITE_FILE, REQUEST_MAX, 4u << 20, true);
        for (int i = 0; i < 8; i++) {
                vsock_conn *c = dial();
                (void) send_header(c, VSOCK_MSG_EXEC_PIPE, REQUEST_MAX);
                uint8_t junk[65536];
                memset(junk, '"', sizeof junk);
                for (int k = 0; k < 64; k++)
                        (void) vsock_conn_write(c, junk, sizeof junk);
                vsock_conn_close(c);
        }
        long hwm = proc_hwm_kb(A->pid);
        print_message("agent peak RSS over the oversize frames: %ld kB (baseline %ld kB)\n", hwm, A_rss_kb);
        assert_healthy(A, A_rss_kb, "oversize requests");

        /* After the request the limit is lower: an oversize Stdin frame is
         * a lost connection, and the command is terminated. */
        static const uint32_t after[] = { AFTER_MAX + 1, 0xFFFFFFFFu };
        static const uint8_t modes[] = { VSOCK_MSG_EXEC_PIPE, VSOCK_MSG_EXEC_TTY };
        for (size_t m = 0; m < sizeof modes; m++)
                for (size_t i = 0; i < 2; i++) {
                        struct marker mk;
                        marker_new(&mk, MARKER_KEY);
                        vsock_conn *c = dial();
                        struct vsock_exec_request req = { .command = "sleep 1000 & sleep 1000 & wait",
                                                          .env = &mk.env, .n_env = 1, .rows = 24, .cols = 80 };
                        assert_int_equal(send_exec_request(c, modes[m], &req), 0);
                        wait_marker_count(&mk, 3);
                        (void) send_header(c, VSOCK_MSG_STDIN, after[i]);
                        struct reply r;
                        reply_read(c, &r);
                        vsock_conn_close(c);
                        enum outcome o = reply_outcome(&r);
                        assert_true(o == OUT_CLOSED || o == OUT_OK || o == OUT_ERROR);
                        reply_clear(&r);
                        assert_marker_gone(&mk, 3 * GRACE_MS, "oversize Stdin frame");
                }
        /* A request/response operation reads nothing after its request: the
         * frame waits for the result, then is the next request, under the
         * request's limit: above it, refused (the connection closes
         * without a reply). */
        static const uint32_t next[] = { REQUEST_MAX + 1, 0xFFFFFFFFu };
        for (size_t i = 0; i < 2; i++) {
                vsock_conn *c = dial();
                struct vsock_exec_request req = { .command = "sleep 0.2; echo done" };
                assert_int_equal(send_exec_request(c, VSOCK_MSG_EXEC, &req), 0);
                (void) send_header(c, VSOCK_MSG_STDIN, next[i]);
                struct reply r;
                reply_init(&r);
                while (reply_read_one(c, &r) >= 0)
                        ;
                vsock_conn_close(c);
                assert_int_equal(r.frames, 1);
                assert_true(r.got_result);
                assert_true(buf_contains(&r.out, "done"));
                assert_int_not_equal(vsock_err_kind(r.end), VSOCK_E_TIMEOUT);
                reply_clear(&r);
        }
}

/* ---- truncated frames ----------------------------------------------------------- */

static void test_truncated_close(void **state) {
        uint8_t hdr[VSOCK_FRAME_HEADER_SIZE];
        vsock_frame_header(hdr, VSOCK_MSG_EXEC, 100);
        for (size_t k = 0; k < sizeof hdr; k++)
                for (int how = 0; how < 2; how++) {
                        vsock_conn *c = dial();
                        if (k > 0)
                                assert_int_equal(vsock_conn_write(c, hdr, k), 0);
                        if (how == 0) {
                                /* Half-close: the agent must close its side too. */
                                assert_int_equal(vsock_conn_shutdown_write(c), 0);
                                struct reply r;
                                reply_read(c, &r);
                                assert_int_equal(reply_outcome(&r), OUT_CLOSED);
                                reply_clear(&r);
                        }
                        vsock_conn_close(c);
                }
        /* A truncated payload, for every request type. */
        for (size_t t = 0; t < sizeof first_types; t++) {
                vsock_conn *c = dial();
                assert_int_equal(send_header(c, first_types[t], 100), 0);
                assert_int_equal(vsock_conn_write(c, "{\"command\":\"true\",", 18), 0);
                assert_int_equal(vsock_conn_shutdown_write(c), 0);
                struct reply r;
                reply_read(c, &r);
                assert_int_equal(reply_outcome(&r), OUT_CLOSED);
                reply_clear(&r);
                vsock_conn_close(c);
        }
        assert_healthy(A, A_rss_kb, "truncated frames");
}

/* Silence after part of a request: the idle timeout (1 s here) closes it. */
static void test_truncated_silence(void **state) {
        const char *extra[] = { "--idle-timeout", "1", NULL };
        struct agent *b = B = agent_start(extra, 0);
        assert_non_null(b);
        assert_int_equal(agent_warm_up(b), 0);
        long base = proc_rss_kb(b->pid);
        uint8_t hdr[VSOCK_FRAME_HEADER_SIZE];
        vsock_frame_header(hdr, VSOCK_MSG_EXEC, 100);
        enum { N = 7 };
        vsock_conn *c[N];
        for (int i = 0; i < N; i++)
                c[i] = dial_a(b);
        /* nothing; 1 and 4 header bytes; a whole header; half a payload;
         * a header announcing the limit; half a port-forward request. */
        assert_int_equal(vsock_conn_write(c[1], hdr, 1), 0);
        assert_int_equal(vsock_conn_write(c[2], hdr, 4), 0);
        assert_int_equal(vsock_conn_write(c[3], hdr, 5), 0);
        assert_int_equal(vsock_conn_write(c[4], hdr, 5), 0);
        assert_int_equal(vsock_conn_write(c[4], "{\"command\":\"true\",\"args\":[\"x\",", 30), 0);
        assert_int_equal(send_header(c[5], VSOCK_MSG_WRITE_FILE, REQUEST_MAX), 0);
        assert_int_equal(send_header(c[6], VSOCK_MSG_PORT_FORWARD, 20), 0);
        assert_int_equal(vsock_conn_write(c[6], "{\"port\":", 8), 0);
        int64_t t0 = mono_ms();
        for (int i = 0; i < N; i++) {
                struct reply r;
                reply_read(c[i], &r);
                /* Closed by the agent, not by our own bound. */
                if (reply_outcome(&r) != OUT_CLOSED)
                        fail_msg("case %d: %s", i, outcome_names[reply_outcome(&r)]);
                reply_clear(&r);
                vsock_conn_close(c[i]);
        }
        print_message("idle timeout 1 s: all %d silent connections closed after %lld ms\n", N,
                      (long long) (mono_ms() - t0));

        /* A trickle (a byte every 100 ms) does not extend the timeout:
         * the whole request must arrive in time. */
        vsock_conn *t = dial_a(b);
        int fd = vsock_conn_fd(t);
        static const char req[] = "\x01\x00\x00\x01\x00{\"command\":\"true\",\"args\":[\"x\"";
        t0 = mono_ms();
        size_t sent = 0;
        for (;;) {
                struct pollfd pf = { .fd = fd, .events = POLLIN };
                if (poll(&pf, 1, 100) > 0)
                        break; /* EOF (or reset) from the agent */
                assert_true(mono_ms() - t0 < BOUND_MS);
                if (send(fd, req + sent % (sizeof req - 1), 1, MSG_NOSIGNAL) < 0)
                        break;
                sent++;
        }
        struct reply r;
        reply_read(t, &r);
        assert_int_equal(reply_outcome(&r), OUT_CLOSED);
        reply_clear(&r);
        vsock_conn_close(t);
        print_message("idle timeout 1 s: a trickling request (%zu bytes) closed after %lld ms\n", sent,
                      (long long) (mono_ms() - t0));
        assert_healthy(b, base, "idle timeout");
        B = NULL;
        assert_int_equal(agent_stop(b, BOUND_MS, NULL), 0);
}

/* ---- first frame of an unknown or wrong type ---------------------------------- */

static void test_unknown_first_type(void **state) {
        static const uint8_t types[] = { 0,
                                         18,
                                         255,
                                         VSOCK_MSG_EXEC_RESULT,
                                         VSOCK_MSG_STDOUT,
                                         VSOCK_MSG_STDERR,
                                         VSOCK_MSG_SIGNAL,
                                         VSOCK_MSG_READY,
                                         VSOCK_MSG_STDIN,
                                         VSOCK_MSG_RESIZE,
                                         VSOCK_MSG_EXIT,
                                         VSOCK_MSG_FILE_RESULT,
                                         100,
                                         128 };
        static const struct {
                const char *p;
                size_t n;
        } payloads[] = { { "", 0 }, { "{}", 2 }, { "{\"command\":\"true\"}", 18 }, { "\x09", 1 }, { "\0\x18\0\x50", 4 } };
        for (size_t t = 0; t < sizeof types; t++)
                for (size_t p = 0; p < sizeof payloads / sizeof *payloads; p++) {
                        struct reply r;
                        enum outcome o = exchange(types[t], payloads[p].p, payloads[p].n, &r);
                        if (o != OUT_CLOSED)
                                fail_msg("first frame of type %u: %s", types[t], outcome_names[o]);
                        reply_clear(&r);
                }
        assert_healthy(A, A_rss_kb, "unknown first frames");
}

/* ---- hostile JSON -------------------------------------------------------------- */

enum expect { WANT_ERROR, WANT_ANY };

struct json_case {
        const char *json;
        size_t len;                     /* 0: strlen */
        enum expect want;
};

#define E(s) { s, sizeof(s) - 1, WANT_ERROR }
#define ANY(s) { s, sizeof(s) - 1, WANT_ANY }

/* Shared by the four exec request types. */
static const struct json_case exec_cases[] = {
        E(""),
        E("{"),
        E("}"),
        E("{\"command\":"),
        E("{\"command\":\"true\""),
        E("{\"command\":\"true\",}"),
        E("{\"command\":\"true\"} trailing"),
        E("{\"command\":\"true\"}{}"),
        E("{command:\"true\"}"),
        E("{'command':'true'}"),
        E("[]"),
        E("[\"true\"]"),
        E("42"),
        E("\"true\""),
        E("true"),
        E("{\"command\":42}"),
        E("{\"command\":true}"),
        E("{\"command\":{}}"),
        E("{\"command\":[\"true\"]}"),
        E("{\"command\":\"true\",\"args\":\"x\"}"),
        E("{\"command\":\"true\",\"args\":[1]}"),
        E("{\"command\":\"true\",\"args\":[{}]}"),
        E("{\"command\":\"true\",\"args\":{\"0\":\"x\"}}"),
        E("{\"command\":\"true\",\"env\":[]}"),
        E("{\"command\":\"true\",\"env\":[\"A=1\"]}"),
        E("{\"command\":\"true\",\"env\":\"A=1\"}"),
        E("{\"command\":\"true\",\"env\":{\"A\":1}}"),
        E("{\"command\":\"true\",\"env\":{\"A\":{}}}"),
        E("{\"command\":\"true\",\"env\":{\"\":\"x\"}}"),
        E("{\"command\":\"true\",\"env\":{\"A=B\":\"x\"}}"),
        E("{\"command\":\"true\",\"working_dir\":5}"),
        E("{\"command\":\"true\",\"user\":[]}"),
        E("{\"command\":\"true\",\"user\":0}"),
        E("{\"command\":\"\\uZZZZ\"}"),
        E("{\"command\":\"\\x41\"}"),
        E("{\"command\":tru}"),
        E("{\"command\":\"true\", \"args\":[\"a\",]}"),
        /* NUL inside strings: escaped, and raw (invalid JSON). */
        E("{\"command\":\"true\\u0000; echo pwned\"}"),
        E("{\"command\":\"true\",\"args\":[\"a\\u0000b\"]}"),
        E("{\"command\":\"printf\",\"args\":[\"%s\",\"a\\u0000b\"]}"),
        E("{\"command\":\"true\",\"env\":{\"A\\u0000B\":\"1\"}}"),
        E("{\"command\":\"true\",\"env\":{\"A\":\"1\\u0000\"}}"),
        E("{\"command\":\"true\",\"working_dir\":\"/tmp\\u0000/x\"}"),
        E("{\"command\":\"true\",\"user\":\"root\\u0000x\"}"),
        { "{\"command\":\"tr\0ue\"}", 19, WANT_ERROR },
        { "{\"command\":\"true\"}\0", 19, WANT_ERROR },
        { "\0{\"command\":\"true\"}", 19, WANT_ERROR },
        /* Accepted by Go's decoder: any outcome, as long as it is clean. */
        ANY("null"),
        ANY("{}"),
        ANY("{\"command\":null}"),
        ANY("{\"command\":\"\"}"),
        ANY("{\"command\":\"false\",\"command\":\"true\"}"),
        ANY("{\"command\":\"true\",\"unknown\":[1,{\"a\":null},\"x\"]}"),
        ANY("{\"command\":\"\\ud800\"}"),
        ANY("{\"command\":\"tr\xff\xfeue\"}"),
        ANY("{\"command\":\"true\",\"env\":{\"A\":null}}"),
        ANY("{\"command\":\"true\",\"args\":[null]}"),
        ANY("{\"command\":\"true\",\"user\":\"4294967295\"}"),
        ANY("{\"command\":\"true\",\"user\":\"0:4294967295\"}"),
        ANY("{\"command\":\"true\",\"user\":\"99999999999999999999\"}"),
        ANY("{\"command\":\"true\",\"user\":\":\"}"),
        ANY("{\"command\":\"true\",\"working_dir\":\"/nonexistent/\"}"),
        ANY("{\"command\":\"true\",\"working_dir\":\"../../../../../../../../../../../../..\"}"),
        ANY("{\"command\":\"true\",\"user\":\"../../etc/passwd\"}"),
        ANY("{\"command\":\"true\",\"user\":\"-1\"}"),
        ANY("{\"command\":\"true\",\"user\":\"0:-1\"}"),
        ANY("{\"command\":\"true\",\"user\":\"root:root:root\"}"),
        ANY("{\"command\":\"true\",\"env\":{\"LD_PRELOAD\":\"/nonexistent.so\"}}"),
        ANY("{\"command\":\"true\",\"env\":{\"PATH\":\"\"}}"),
        ANY("{\"command\":\"true\",\"rows\":0,\"cols\":0}"),
        ANY("  \t\r\n{\"command\":\"true\"}\n"),
        ANY("\xef\xbb\xbf{\"command\":\"true\"}"),
};
/* ExecRequest only: an ExecTTYRequest has no stdin (unknown field). */
static const struct json_case stdin_cases[] = {
        E("{\"command\":\"true\",\"stdin\":42}"),
        E("{\"command\":\"true\",\"stdin\":\"!!!!\"}"),
        E("{\"command\":\"true\",\"stdin\":\"AAA\"}"),
        E("{\"command\":\"true\",\"stdin\":\"A===\"}"),
        E("{\"command\":\"true\",\"stdin\":\"QUJD=\"}"),
        E("{\"command\":\"true\",\"stdin\":\"QU JD\"}"),
        E("{\"command\":\"true\",\"stdin\":\"QUJD\\u0000\"}"),
        ANY("{\"command\":\"true\",\"stdin\":\"QUJD\\nRA==\"}"),
        ANY("{\"command\":\"true\",\"stdin\":\"QUJD\\r\\nRA==\"}"),
        ANY("{\"command\":\"true\",\"args\":null,\"env\":null,\"stdin\":null}"),
        ANY("{\"command\":\"true\",\"stdin\":[1,2]}"),            /* Go: []byte from numbers */
        ANY("{\"command\":\"true\",\"stdin\":[256]}"),
};

static const struct json_case tty_cases[] = {
        E("{\"command\":\"true\",\"rows\":1e400}"),
        E("{\"command\":\"true\",\"rows\":-1}"),
        E("{\"command\":\"true\",\"rows\":65536}"),
        E("{\"command\":\"true\",\"rows\":1.5}"),
        E("{\"command\":\"true\",\"rows\":\"24\"}"),
        E("{\"command\":\"true\",\"cols\":[80]}"),
        E("{\"command\":\"true\",\"cols\":99999999999999999999999}"),
        ANY("{\"command\":\"true\",\"rows\":65535,\"cols\":65535}"),
        ANY("{\"command\":\"true\",\"rows\":1,\"cols\":1}"),
};

static const struct json_case pf_cases[] = {
        E(""),
        E("{"),
        E("[]"),
        E("null0"),
        E("{\"port\":-1}"),
        E("{\"port\":65536}"),
        E("{\"port\":\"80\"}"),
        E("{\"port\":1.5}"),
        E("{\"port\":1e10}"),
        E("{\"host\":5,\"port\":80}"),
        E("{\"host\":[],\"port\":80}"),
        E("{\"host\":\"127.0.0.1\\u0000evil\",\"port\":80}"),
        E("{}"),
        E("{\"port\":0}"),
        E("{\"host\":\"[::1\",\"port\":1}"),
        E("{\"host\":\"256.256.256.256\",\"port\":1}"),
};

static void run_json_cases(uint8_t type, const struct json_case *cases, size_t n) {
        for (size_t i = 0; i < n; i++) {
                size_t len = cases[i].len;
                struct reply r;
                enum outcome o = exchange(type, cases[i].json, len, &r);
                bool ok = cases[i].want == WANT_ERROR ? (o == OUT_ERROR || o == OUT_CLOSED)
                                                      : (o == OUT_ERROR || o == OUT_CLOSED || o == OUT_OK);
                if (!ok)
                        fail_msg("type %u, case %zu (%.*s): %s", type, i, (int) (len > 80 ? 80 : len), cases[i].json,
                                 outcome_names[o]);
                reply_clear(&r);
                if (agent_exec_true(A, BOUND_MS) < 0)
                        fail_msg("type %u, case %zu (%.*s): the agent no longer serves", type, i,
                                 (int) (len > 80 ? 80 : len), cases[i].json);
        }
}

/* @tmpl with every '@' replaced by @path. */
static int fill_path(char *out, size_t size, const char *tmpl, const char *path) {
        size_t n = 0;
        for (const char *t = tmpl; *t && n + 1 < size; t++) {
                if (*t != '@') {
                        out[n++] = *t;
                        continue;
                }
                for (const char *q = path; *q && n + 1 < size; q++)
                        out[n++] = *q;
        }
        out[n] = '\0';
        return (int) n;
}

static void test_json_malformed(void **state) {
        for (size_t t = 0; t < sizeof exec_modes; t++)
                run_json_cases(exec_modes[t], exec_cases, sizeof exec_cases / sizeof *exec_cases);
        for (size_t t = 0; t < 3; t++)
                run_json_cases(exec_modes[t], stdin_cases, sizeof stdin_cases / sizeof *stdin_cases);
        run_json_cases(VSOCK_MSG_EXEC_TTY, tty_cases, sizeof tty_cases / sizeof *tty_cases);
        run_json_cases(VSOCK_MSG_PORT_FORWARD, pf_cases, sizeof pf_cases / sizeof *pf_cases);

        /* Long strings: a 100k-byte user, working_dir, command, path. */
        struct buf big = BUF_INIT(0);
        static const char *const long_fields[] = { "{\"command\":\"true\",\"user\":\"",
                                                   "{\"command\":\"true\",\"working_dir\":\"/",
                                                   "{\"command\":\"/", "{\"command\":\"true\",\"args\":[\"" };
        for (size_t i = 0; i < sizeof long_fields / sizeof *long_fields; i++) {
                buf_reset(&big);
                assert_int_equal(buf_append_str(&big, long_fields[i]), 0);
                for (int k = 0; k < 100000; k++)
                        assert_int_equal(buf_append_str(&big, "a"), 0);
                assert_int_equal(buf_append_str(&big, i == 3 ? "\"]}" : "\"}"), 0);
                struct reply r;
                enum outcome o = exchange(VSOCK_MSG_EXEC, buf_head(&big), buf_size(&big), &r);
                assert_true(o == OUT_ERROR || o == OUT_CLOSED || o == OUT_OK);
                reply_clear(&r);
                o = exchange(VSOCK_MSG_EXEC_PIPE, buf_head(&big), buf_size(&big), &r);
                assert_true(o == OUT_ERROR || o == OUT_CLOSED || o == OUT_OK);
                reply_clear(&r);
        }
        for (int t = 0; t < 3; t++) {
                buf_reset(&big);
                assert_int_equal(buf_append_str(&big, "{\"path\":\"/"), 0);
                for (int k = 0; k < 100000; k++)
                        assert_int_equal(buf_append_str(&big, k % 200 == 199 ? "/" : "a"), 0);
                assert_int_equal(buf_append_str(&big, "\",\"content\":\"QUJD\"}"), 0);
                struct reply r;
                enum outcome o = exchange((uint8_t) (VSOCK_MSG_WRITE_FILE + t), buf_head(&big), buf_size(&big), &r);
                assert_true(o == OUT_ERROR || o == OUT_CLOSED);
                reply_clear(&r);
        }
        buf_free(&big);
        assert_int_equal(agent_exec_true(A, BOUND_MS), 0);

        /* File operations: paths inside the agent's directory. */
        char p[160], js[512];
        snprintf(p, sizeof p, "%s/json-case", A->dir);
        static const char *const tmpl[] = {
                "",
                "{",
                "[]",
                "{\"path\":5}",
                "{\"path\":[\"@\"]}",
                "{\"path\":\"@\\u0000.evil\"}",
                "{\"path\":\"@\",\"content\":5}",
                "{\"path\":\"@\",\"content\":\"!!!!\"}",
                "{\"path\":\"@\",\"content\":\"AAA\"}",
                "{\"path\":\"@\",\"content\":\"QUJD\",\"mode\":-1}",
                "{\"path\":\"@\",\"content\":\"QUJD\",\"mode\":\"0644\"}",
                "{\"path\":\"@\",\"content\":\"QUJD\",\"mode\":1e20}",
                "{\"path\":\"@\",\"content\":\"QUJD\",\"mode\":4294967296}",
                "{\"path\":\"\"}",
                "{}",
        };
        static const uint8_t file_types[] = { VSOCK_MSG_WRITE_FILE, VSOCK_MSG_READ_FILE, VSOCK_MSG_LIST_FILES };
        for (size_t t = 0; t < sizeof file_types; t++)
                for (size_t i = 0; i < sizeof tmpl / sizeof *tmpl; i++) {
                        int n = fill_path(js, sizeof js, tmpl[i], p);
                        struct reply r;
                        enum outcome o = exchange(file_types[t], js, (size_t) n, &r);
                        /* A FileResult that carries an error, or a close. */
                        if (o != OUT_ERROR && o != OUT_CLOSED)
                                fail_msg("file type %u, '%s': %s", file_types[t], js, outcome_names[o]);
                        reply_clear(&r);
                }
        /* A raw NUL in a path. */
        int n = snprintf(js, sizeof js, "{\"path\":\"%s", p);
        memcpy(js + n, "\0x\"}", 4);
        for (size_t t = 0; t < sizeof file_types; t++) {
                struct reply r;
                enum outcome o = exchange(file_types[t], js, (size_t) n + 4, &r);
                assert_true(o == OUT_ERROR || o == OUT_CLOSED);
                reply_clear(&r);
        }
        /* None of the invalid writes created anything. */
        struct stat st;
        assert_int_equal(stat(p, &st), -1);
        assert_healthy(A, A_rss_kb, "malformed JSON");
}

/* Deep nesting: 100k '[' (and '{"a":') in every position a value can be. */
static void test_json_deep(void **state) {
        const size_t depth = 100000;
        struct buf b = BUF_INIT(0);
        static const struct {
                uint8_t type;
                const char *pre;
                const char *open;
                const char *close;
                bool closed;
        } shapes[] = {
                { VSOCK_MSG_EXEC, "", "[", "]", false },
                { VSOCK_MSG_EXEC, "", "[", "]", true },
                { VSOCK_MSG_EXEC, "{\"command\":", "[", "]", false },
                { VSOCK_MSG_EXEC, "{\"command\":\"true\",\"args\":", "[", "]", true },
                { VSOCK_MSG_EXEC, "{\"command\":\"true\",\"env\":", "{\"a\":", "}", false },
                { VSOCK_MSG_EXEC, "{\"command\":\"true\",\"unknown\":", "{\"a\":", "}", true },
                { VSOCK_MSG_EXEC_TTY, "{\"command\":\"true\",\"rows\":", "[", "]", true },
                { VSOCK_MSG_EXEC_PIPE, "{\"command\":\"true\",\"stdin\":", "[", "]", true },
                { VSOCK_MSG_PORT_FORWARD, "{\"port\":1,\"host\":", "[", "]", true },
                { VSOCK_MSG_WRITE_FILE, "{\"path\":\"/x\",\"content\":", "[", "]", true },
                { VSOCK_MSG_READ_FILE, "{\"path\":", "{\"a\":", "}", true },
                { VSOCK_MSG_LIST_FILES, "", "[", "]", false },
        };
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
                buf_reset(&b);
                assert_int_equal(buf_append_str(&b, shapes[s].pre), 0);
                for (size_t i = 0; i < depth; i++)
                        assert_int_equal(buf_append_str(&b, shapes[s].open), 0);
                if (shapes[s].closed) {
                        assert_int_equal(buf_append_str(&b, "1"), 0);
                        for (size_t i = 0; i < depth; i++)
                                assert_int_equal(buf_append_str(&b, shapes[s].close), 0);
                        if (shapes[s].pre[0])
                                assert_int_equal(buf_append_str(&b, "}"), 0);
                }
                struct reply r;
                int64_t t0 = mono_ms();
                enum outcome o = exchange(shapes[s].type, buf_head(&b), buf_size(&b), &r);
                if (o != OUT_ERROR && o != OUT_CLOSED)
                        fail_msg("nesting shape %zu: %s", s, outcome_names[o]);
                print_message("nesting shape %zu (%zu bytes): %s in %lld ms%s%.*s\n", s, buf_size(&b),
                              outcome_names[o], (long long) (mono_ms() - t0), r.error ? ": " : "",
                              r.error ? 60 : 0, r.error ? r.error : "");
                reply_clear(&r);
                assert_healthy(A, A_rss_kb, "deep nesting");
        }
        buf_free(&b);
}

/* An env object with 100k keys: small, and filling the frame limit. */
static void huge_env(size_t keys, size_t value_len, struct buf *b) {
        buf_reset(b);
        assert_int_equal(buf_append_str(b, "{\"command\":\"true\",\"env\":{"), 0);
        char *v = malloc(value_len + 1);
        assert_non_null(v);
        memset(v, 'v', value_len);
        v[value_len] = '\0';
        for (size_t i = 0; i < keys; i++) {
                char k[32];
                snprintf(k, sizeof k, "%s\"K%06zu\":\"", i ? "," : "", i);
                assert_int_equal(buf_append_str(b, k), 0);
                assert_int_equal(buf_append(b, v, value_len), 0);
                assert_int_equal(buf_append_str(b, "\""), 0);
        }
        assert_int_equal(buf_append_str(b, "}}"), 0);
        free(v);
}

struct timed_reply {
        uint8_t type;
        const void *data;
        size_t len;
        struct reply r;
        enum outcome o;
        int64_t ms;
};

static void *timed_exchange_main(void *p) {
        struct timed_reply *t = p;
        int64_t t0 = mono_ms();
        t->o = exchange(t->type, t->data, t->len, &t->r);
        t->ms = mono_ms() - t0;
        return NULL;
}

/* A probe must be answered within this while a huge request is handled:
 * one event loop serves everyone, so a long stall is a denial of service. */
#define PROBE_BOUND_MS 5000

struct huge_figures {
        int64_t stall_ms;               /* slowest concurrent probe */
        long peak_growth_kb;            /* VmHWM over the baseline */
        enum outcome o;
};

/* Send a huge request from a thread while probing the agent with batch
 * `true`s; print and return the figures. */
static void huge_case(const char *what, uint8_t type, const struct buf *b, struct huge_figures *ret) {
        struct timed_reply t = { .type = type, .data = buf_head(b), .len = buf_size(b) };
        hwm_reset(A->pid);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, timed_exchange_main, &t), 0);
        int64_t worst = 0;
        bool joined = false;
        for (int i = 0; i < 1000 && !joined; i++) {
                int64_t t0 = mono_ms();
                int r = agent_exec_true(A, 120000);
                int64_t ms = mono_ms() - t0;
                if (r < 0)
                        fail_msg("%s: probe failed: %s", what, vsock_strerror(r));
                if (ms > worst)
                        worst = ms;
                joined = pthread_tryjoin_np(th, NULL) == 0;
        }
        if (!joined)
                pthread_join(th, NULL);
        long hwm = proc_hwm_kb(A->pid);
        print_message("%s: %zu bytes -> %s in %lld ms%s%.*s; agent peak RSS %ld kB (baseline %ld kB), now %ld kB; "
                      "slowest concurrent probe %lld ms\n",
                      what, buf_size(b), outcome_names[t.o], (long long) t.ms, t.r.error ? ": " : "",
                      t.r.error ? 60 : 0, t.r.error ? t.r.error : "", hwm, A_rss_kb, proc_rss_kb(A->pid),
                      (long long) worst);
        reply_clear(&t.r);
        *ret = (struct huge_figures) { .stall_ms = worst, .peak_growth_kb = hwm - A_rss_kb, .o = t.o };
}

/* Large but reasonable: a 48 MiB stdin (a 64 MiB frame), 10k args, 4k
 * env keys. */
static void test_json_huge(void **state) {
        struct buf b = BUF_INIT(0);
        struct huge_figures f;
        size_t n = (REQUEST_MAX - 64) / 4 * 3;
        uint8_t *data = malloc(n);
        assert_non_null(data);
        for (size_t i = 0; i < n; i++)
                data[i] = (uint8_t) (i * 131);
        struct vsock_exec_request req = { .command = "wc -c", .stdin_data = { data, n, true } };
        uint8_t *p;
        size_t len;
        assert_int_equal(vsock_exec_request_encode(&req, &p, &len), 0);
        free(data);
        assert_true(len <= REQUEST_MAX);
        assert_int_equal(buf_append(&b, p, len), 0);
        free(p);
        huge_case("48 MiB stdin", VSOCK_MSG_EXEC, &b, &f);
        assert_int_equal(f.o, OUT_OK);
        assert_true(f.stall_ms < PROBE_BOUND_MS);
        assert_healthy(A, A_rss_kb, "48 MiB stdin");

        buf_reset(&b);
        assert_int_equal(buf_append_str(&b, "{\"command\":\"true\",\"args\":["), 0);
        for (int i = 0; i < 10000; i++)
                assert_int_equal(buf_append_str(&b, i ? ",\"arg\"" : "\"arg\""), 0);
        assert_int_equal(buf_append_str(&b, "]}"), 0);
        huge_case("10k args", VSOCK_MSG_EXEC, &b, &f);
        assert_int_equal(f.o, OUT_OK);
        assert_true(f.stall_ms < PROBE_BOUND_MS);
        assert_healthy(A, A_rss_kb, "10k args");

        huge_env(4000, 10, &b);
        huge_case("env with 4k keys", VSOCK_MSG_EXEC, &b, &f);
        assert_int_equal(f.o, OUT_OK);
        assert_true(f.stall_ms < PROBE_BOUND_MS);
        assert_healthy(A, A_rss_kb, "4k env keys");
        buf_free(&b);
}

/* An env object with 100k keys, small and filling the frame. */
static void test_json_huge_env(void **state) {
        struct buf b = BUF_INIT(0);
        struct huge_figures f;
        huge_env(100000, 1, &b);
        huge_case("env with 100k keys", VSOCK_MSG_EXEC, &b, &f);
        assert_true(f.o != OUT_TIMEOUT && f.o != OUT_BAD);
        assert_true(f.stall_ms < PROBE_BOUND_MS);
        assert_healthy(A, A_rss_kb, "huge env");
        size_t per_key = (REQUEST_MAX - 64) / 100000 - 13; /* ,"K000000":"" */
        huge_env(100000, per_key, &b);
        assert_true(buf_size(&b) <= REQUEST_MAX);
        huge_case("env with 100k keys filling the frame", VSOCK_MSG_EXEC, &b, &f);
        assert_true(f.o != OUT_TIMEOUT && f.o != OUT_BAD);
        assert_true(f.stall_ms < PROBE_BOUND_MS);
        assert_healthy(A, A_rss_kb, "frame-sized env");
        buf_free(&b);
}

/* Many tiny JSON values in one frame: the decoder's tree must not cost
 * many times the frame. Bound: the frame itself plus three times more. */
static void test_json_amplification(void **state) {
        struct buf b = BUF_INIT(0);
        struct huge_figures f;
        static const struct {
                const char *what, *pre, *elem, *post;
        } shapes[] = {
                { "64 MiB of empty args", "{\"command\":\"true\",\"args\":[\"\"", ",\"\"", "]}" },
                { "64 MiB of numbers in an unknown field", "{\"command\":\"true\",\"x\":[0", ",0", "]}" },
                { "64 MiB of empty objects in args", "{\"command\":\"true\",\"args\":[{}", ",{}", "]}" },
        };
        for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
                buf_reset(&b);
                assert_int_equal(buf_append_str(&b, shapes[i].pre), 0);
                size_t el = strlen(shapes[i].elem);
                while (buf_size(&b) + el + strlen(shapes[i].post) <= REQUEST_MAX)
                        assert_int_equal(buf_append(&b, shapes[i].elem, el), 0);
                assert_int_equal(buf_append_str(&b, shapes[i].post), 0);
                huge_case(shapes[i].what, VSOCK_MSG_EXEC, &b, &f);
                assert_true(f.o != OUT_TIMEOUT && f.o != OUT_BAD);
#ifndef UNDER_ASAN /* its shadow memory and quarantine make RSS meaningless */
                assert_true(f.peak_growth_kb < 4L * (REQUEST_MAX / 1024));
#endif
                assert_true(f.stall_ms < PROBE_BOUND_MS);
                assert_healthy(A, A_rss_kb, shapes[i].what);
        }
        buf_free(&b);
}

/* Freed memory goes back to the system: after big replies (a 16 MiB file,
 * 16 MiB of batch output) a fresh agent's RSS returns near its baseline
 * (glibc's dynamic mmap threshold would keep tens of MiB resident). */
static void test_memory_returned(void **state) {
        struct agent *b = B = agent_start(NULL, 0);
        assert_non_null(b);
        assert_int_equal(agent_warm_up(b), 0);
        long base = proc_rss_kb(b->pid);
        char path[160];
        snprintf(path, sizeof path, "%s/big", b->dir);
        size_t len = 16u << 20;
        uint8_t *data = calloc(1, len);
        assert_non_null(data);
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, len, f), len);
        fclose(f);
        free(data);
        for (int i = 0; i < 3; i++) {
                struct vsock_call call = VSOCK_CALL_INIT;
                call.deadline_ns = vsock_deadline_in(BOUND_MS);
                uint8_t *got;
                size_t n;
                assert_int_equal(vsock_read_file_at(b->exec_addr, path, &call, &got, &n), 0);
                assert_int_equal(n, len);
                free(got);
                struct vsock_exec_request req = { .command = "head -c 16000000 /dev/zero" };
                struct vsock_exec_result res = { 0 };
                call.deadline_ns = vsock_deadline_in(BOUND_MS);
                assert_int_equal(vsock_exec_at(b->exec_addr, &req, &call, &res), 0);
                assert_int_equal(res.stdout_len, 16000000);
                vsock_exec_result_clear(&res);
                print_message("round %d: agent RSS %ld kB (baseline %ld kB)\n", i, proc_rss_kb(b->pid), base);
        }
        unlink(path);
        assert_healthy(b, base, "after big replies");
        B = NULL;
        assert_int_equal(agent_stop(b, BOUND_MS, NULL), 0);
}

/* Many mid-size file operations at once (the soak's file mix, in small;
 * writes from 256 KiB are streamed): after a warm-up round, a second one
 * leaves the idle agent within 1 MiB of where the first left it. (The soak,
 * longer and with every operation, is the finer check: it caught a reply
 * grown piece by piece fragmenting the worker's heap, which this does
 * not.) */
struct mid_args {
        const struct agent *a;
        int id;
        int fails;
};

static void *mid_main(void *p) {
        struct mid_args *m = p;
        uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t) (m->id + 1);
        uint8_t *data = malloc(300u * 1024);
        if (!data)
                return NULL;
        char path[200];
        for (int i = 0; i < 40; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                size_t n = 4096 + (size_t) (x % (296u * 1024));
                memset(data, (int) (x & 0xff), n);
                snprintf(path, sizeof path, "%s/mid-%d-%d", m->a->dir, m->id, i);
                struct vsock_call call = VSOCK_CALL_INIT;
                call.deadline_ns = vsock_deadline_in(BOUND_MS);
                uint8_t *got = NULL;
                size_t got_n = 0;
                if (vsock_write_file_at(m->a->exec_addr, path, data, n, 0600, &call) < 0 ||
                    vsock_read_file_at(m->a->exec_addr, path, &call, &got, &got_n) < 0 || got_n != n ||
                    memcmp(got, data, n) != 0)
                        m->fails++;
                free(got);
                unlink(path);
        }
        free(data);
        return NULL;
}

static void test_memory_mid_sizes(void **state) {
        struct agent *b = B = agent_start(NULL, 0);
        assert_non_null(b);
        assert_int_equal(agent_warm_up(b), 0);
        enum { T = 12 };
        pthread_t t[T];
        struct mid_args args[T];
        /* A first round warms the agent's heap up; the second must not
         * add to it. */
        long base = 0;
        for (int round = 0; round < 2; round++) {
                for (int i = 0; i < T; i++) {
                        args[i] = (struct mid_args) { .a = b, .id = i + round * T };
                        assert_int_equal(pthread_create(&t[i], NULL, mid_main, &args[i]), 0);
                }
                for (int i = 0; i < T; i++) {
                        pthread_join(t[i], NULL);
                        assert_int_equal(args[i].fails, 0);
                }
                assert_clean(b);
                if (round == 0)
                        base = proc_rss_kb(b->pid);
        }
        /* Idle now: the agent trims its heap when its last session ends. */
        int64_t end = mono_ms() + 2000;
        long rss = proc_rss_kb(b->pid);
        while (rss > base + 1024 && mono_ms() < end) {
                pause_ms(20);
                rss = proc_rss_kb(b->pid);
        }
        print_message("%d x 80 mid-size file operations: agent RSS %ld kB after the first round, %ld kB after "
                      "the second\n",
                      T, base, rss);
#ifndef UNDER_ASAN
        if (rss > base + 1024)
                fail_msg("agent RSS grew from %ld to %ld kB", base, rss);
#endif
        B = NULL;
        assert_int_equal(agent_stop(b, BOUND_MS, NULL), 0);
}

/* ---- binary frames with wrong lengths, frames out of place ----------------------- */

/* Frames that must be ignored (or rejected) without hurting the session. */
static void send_junk_frames(vsock_conn *c) {
        static const struct {
                uint8_t type;
                const char *p;
                size_t n;
        } junk[] = {
                { VSOCK_MSG_RESIZE, "\0\x18\0", 3 },
                { VSOCK_MSG_RESIZE, "", 0 },
                { VSOCK_MSG_RESIZE, "\0\x18\0\x50\0", 5 },
                { VSOCK_MSG_RESIZE, "\0", 1 },
                { VSOCK_MSG_RESIZE, "\0\0\0\0", 4 },          /* 0 x 0 */
                { VSOCK_MSG_SIGNAL, "", 0 },
                { VSOCK_MSG_SIGNAL, "\0\x09", 2 },
                { VSOCK_MSG_SIGNAL, "\x09\x09", 2 },
                { VSOCK_MSG_SIGNAL, "\0", 1 },
                { VSOCK_MSG_SIGNAL, "\x41", 1 },              /* 65 */
                { VSOCK_MSG_SIGNAL, "\xff", 1 },              /* 255 */
                { VSOCK_MSG_SIGNAL, "\x80", 1 },
                { VSOCK_MSG_EXEC_RESULT, "{}", 2 },
                { VSOCK_MSG_STDOUT, "x", 1 },
                { VSOCK_MSG_READY, "", 0 },
                { VSOCK_MSG_EXIT, "\0\0\0\0", 4 },
                { VSOCK_MSG_FILE_RESULT, "{}", 2 },
                { VSOCK_MSG_PORT_FORWARD, "{\"port\":1}", 10 },
                { VSOCK_MSG_READ_FILE, "{\"path\":\"/etc/passwd\"}", 22 },
                { 0, "", 0 },
                { 18, "abc", 3 },
                { 255, "\xff\xff", 2 },
        };
        for (size_t i = 0; i < sizeof junk / sizeof *junk; i++)
                assert_int_equal(vsock_write_message(c, junk[i].type, junk[i].p, junk[i].n), 0);
}

static void test_bad_binary_frames(void **state) {
        /* TTY: bad Resize/Signal frames and stray types are ignored; the
         * command then reads its line and exits 0. */
        struct vsock_exec_request req = { .command = "stty -echo; echo ready; read x; echo got:$x", .rows = 24,
                                          .cols = 80 };
        struct reply r;
        vsock_conn *c = exec_start(VSOCK_MSG_EXEC_TTY, &req, "ready", &r);
        send_junk_frames(c);
        assert_int_equal(vsock_write_message(c, VSOCK_MSG_STDIN, NULL, 0), 0); /* no EOF on a tty */
        assert_int_equal(vsock_write_message(c, VSOCK_MSG_STDIN, "hello\r", 6), 0);
        expect_got_hello(c, &r);

        /* Pipe: the same. */
        req = (struct vsock_exec_request) { .command = "echo ready; read x; echo got:$x" };
        c = exec_start(VSOCK_MSG_EXEC_PIPE, &req, "ready", &r);
        send_junk_frames(c);
        assert_int_equal(vsock_write_message(c, VSOCK_MSG_STDIN, "hello\n", 6), 0);
        assert_int_equal(vsock_write_message(c, VSOCK_MSG_STDIN, NULL, 0), 0);
        expect_got_hello(c, &r);

        /* Batch and stream: Stdin/Signal/Resize are not theirs; even a
         * valid SIGKILL is ignored. */
        static const uint8_t modes[] = { VSOCK_MSG_EXEC, VSOCK_MSG_EXEC_STREAM };
        for (size_t m = 0; m < sizeof modes; m++) {
                c = dial();
                req = (struct vsock_exec_request) { .command = "read x; echo got:$x",
                                                    .stdin_data = { (uint8_t *) "hello\n", 6, true } };
                assert_int_equal(send_exec_request(c, modes[m], &req), 0);
                send_junk_frames(c);
                uint8_t kill9 = SIGKILL;
                assert_int_equal(vsock_write_message(c, VSOCK_MSG_SIGNAL, &kill9, 1), 0);
                assert_int_equal(vsock_write_message(c, VSOCK_MSG_STDIN, "evil\n", 5), 0);
                reply_read(c, &r);
                assert_false(r.bad);
                assert_true(r.got_result);
                assert_int_equal(r.exit_code, 0);
                assert_true(buf_contains(&r.out, "got:hello"));
                reply_clear(&r);
                vsock_conn_close(c);
        }

        /* Unknown signal numbers never reach the process group. */
        req = (struct vsock_exec_request) { .command = "trap 'echo SIG' HUP INT QUIT USR1 USR2 TERM ALRM; "
                                                       "echo ready; read x; echo got:$x" };
        c = exec_start(VSOCK_MSG_EXEC_PIPE, &req, "ready", &r);
        for (unsigned s = 65; s < 256; s++) {
                uint8_t b = (uint8_t) s;
                assert_int_equal(vsock_write_message(c, VSOCK_MSG_SIGNAL, &b, 1), 0);
        }
        assert_int_equal(vsock_write_message(c, VSOCK_MSG_STDIN, "x\n", 2), 0);
        while (reply_read_one(c, &r) >= 0)
                ;
        assert_int_equal(r.exit_code, 0);
        assert_false(buf_contains(&r.out, "SIG"));
        reply_clear(&r);
        vsock_conn_close(c);
        assert_healthy(A, A_rss_kb, "bad binary frames");
}

/* Frames after the command ended: discarded; the agent closes. */
static void test_frames_after_end(void **state) {
        for (size_t m = 0; m < sizeof exec_modes; m++) {
                struct vsock_exec_request req = { .command = "echo bye", .rows = 24, .cols = 80 };
                struct reply r;
                vsock_conn *c = exec_until_end(exec_modes[m], &req, &r);
                /* The agent may already have closed: ignore write errors. */
                uint8_t k = SIGKILL;
                (void) vsock_write_message(c, VSOCK_MSG_SIGNAL, &k, 1);
                (void) vsock_write_message(c, VSOCK_MSG_STDIN, "more\n", 5);
                (void) vsock_write_message(c, VSOCK_MSG_RESIZE, "\0\x10\0\x10", 4);
                (void) send_exec_request(c, VSOCK_MSG_EXEC, &req);
                (void) send_header(c, VSOCK_MSG_STDIN, 0xFFFFFFFFu);
                unsigned before = r.frames;
                while (reply_read_one(c, &r) >= 0)
                        ;
                assert_int_equal(r.frames, before);
                assert_int_not_equal(vsock_err_kind(r.end), VSOCK_E_TIMEOUT);
                reply_clear(&r);
                vsock_conn_close(c);
        }
        /* A command that ends while the host floods it with Stdin and never
         * reads: the session still ends. */
        uint8_t *chunk = calloc(1, 65536);
        assert_non_null(chunk);
        for (int round = 0; round < 2; round++) {
                vsock_conn *c = dial();
                vsock_conn_set_deadline(c, vsock_deadline_in(5000));
                struct vsock_exec_request req = { .command = round ? "head -c 1000 >/dev/null" : "true" };
                assert_int_equal(send_exec_request(c, VSOCK_MSG_EXEC_PIPE, &req), 0);
                int rc = 0;
                for (int i = 0; i < 400 && rc == 0; i++)
                        rc = vsock_write_message(c, VSOCK_MSG_STDIN, chunk, 65536);
                vsock_conn_set_deadline(c, vsock_deadline_in(BOUND_MS));
                struct reply r;
                reply_read(c, &r);
                enum outcome o = reply_outcome(&r);
                print_message("stdin flood after exit (%s): writes %s, %s\n", req.command,
                              rc == 0 ? "all accepted" : vsock_strerror(rc), outcome_names[o]);
                assert_true(o == OUT_OK || o == OUT_CLOSED);
                reply_clear(&r);
                vsock_conn_close(c);
        }
        free(chunk);
        assert_healthy(A, A_rss_kb, "frames after the end");
}

/* ---- a second request on the same connection -------------------------------------- */

/* Read frames until one exchange's result (Exit, ExecResult, FileResult)
 * or the end; returns false at the end. */
static bool read_exchange(vsock_conn *c, struct reply *r) {
        reply_init(r);
        while (!r->got_exit && !r->got_result && !r->got_file)
                if (reply_read_one(c, r) < 0)
                        return false;
        return true;
}

static void test_second_request(void **state) {
        /* After the first completed: batch and stream serve the next one;
         * pipe and TTY own the connection, so nothing more is served. */
        for (size_t m = 0; m < sizeof exec_modes; m++) {
                bool reply = exec_modes[m] == VSOCK_MSG_EXEC || exec_modes[m] == VSOCK_MSG_EXEC_STREAM;
                struct vsock_exec_request req = { .command = "echo one", .rows = 24, .cols = 80 };
                struct reply r;
                vsock_conn *c = exec_until_end(exec_modes[m], &req, &r);
                reply_clear(&r);
                req.command = "echo two";
                (void) send_exec_request(c, exec_modes[m], &req);
                bool got = read_exchange(c, &r);
                assert_false(r.bad);
                assert_int_equal(got, reply);
                assert_int_equal(buf_contains(&r.out, "two"), reply);
                if (got) {
                        /* Nothing more to ask: the host's half-close ends it. */
                        reply_clear(&r);
                        assert_int_equal(vsock_conn_shutdown_write(c), 0);
                        reply_read(c, &r);
                        assert_int_equal(r.frames, 0);
                }
                assert_int_not_equal(vsock_err_kind(r.end), VSOCK_E_TIMEOUT);
                reply_clear(&r);
                vsock_conn_close(c);
        }
        /* While the first runs: a pipe or TTY ignores request frames (one
         * result); batch and stream read nothing after their request, so
         * the requests wait and are served in order once it is done, up to
         * the first that owns the connection (the pipe). */
        for (size_t m = 0; m < sizeof exec_modes; m++) {
                bool interactive = exec_modes[m] == VSOCK_MSG_EXEC_PIPE || exec_modes[m] == VSOCK_MSG_EXEC_TTY;
                struct vsock_exec_request req = {
                        .command = interactive ? "stty -echo 2>/dev/null; echo ready; read x; echo got:$x"
                                               : "echo ready; sleep 0.3; echo one",
                        .rows = 24,
                        .cols = 80,
                };
                struct reply r;
                vsock_conn *c = exec_start(exec_modes[m], &req, exec_modes[m] != VSOCK_MSG_EXEC ? "ready" : NULL, &r);
                struct vsock_exec_request two = { .command = "echo two", .rows = 24, .cols = 80 };
                for (size_t k = 0; k < sizeof exec_modes; k++)
                        assert_int_equal(send_exec_request(c, exec_modes[k], &two), 0);
                if (interactive)
                        assert_int_equal(vsock_write_message(c, VSOCK_MSG_STDIN, "x\r\n", 3), 0);
                if (interactive) {
                        while (reply_read_one(c, &r) >= 0)
                                ;
                        assert_false(r.bad);
                        assert_int_equal(r.got_exit + r.got_result, 1);
                        assert_int_equal(r.exit_code, 0);
                        assert_false(buf_contains(&r.out, "two"));
                } else {
                        while (!r.got_result)
                                assert_int_equal(reply_read_one(c, &r), 0);
                        assert_int_equal(r.exit_code, 0);
                        assert_false(buf_contains(&r.out, "two"));
                        for (int k = 0; k < 3; k++) { /* batch, stream, then the pipe */
                                reply_clear(&r);
                                assert_true(read_exchange(c, &r));
                                assert_false(r.bad);
                                assert_int_equal(r.exit_code, 0);
                                assert_true(buf_contains(&r.out, "two"));
                        }
                        reply_clear(&r);
                        reply_init(&r);
                        assert_int_equal(vsock_conn_shutdown_write(c), 0);
                        while (reply_read_one(c, &r) >= 0) /* the TTY request is not served */
                                ;
                        assert_int_equal(r.frames, 0);
                        assert_int_not_equal(vsock_err_kind(r.end), VSOCK_E_TIMEOUT);
                }
                reply_clear(&r);
                vsock_conn_close(c);
        }
        /* File operations one after another: a FileResult each. */
        char p[160], js[256];
        snprintf(p, sizeof p, "%s/second", A->dir);
        int n = snprintf(js, sizeof js, "{\"path\":\"%s\",\"content\":\"QUJD\",\"mode\":420}", p);
        vsock_conn *c = dial();
        assert_int_equal(vsock_write_message(c, VSOCK_MSG_WRITE_FILE, js, (size_t) n), 0);
        n = snprintf(js, sizeof js, "{\"path\":\"%s\"}", p);
        assert_int_equal(vsock_write_message(c, VSOCK_MSG_READ_FILE, js, (size_t) n), 0);
        n = snprintf(js, sizeof js, "{\"path\":\"%s\"}", A->dir);
        assert_int_equal(vsock_write_message(c, VSOCK_MSG_LIST_FILES, js, (size_t) n), 0);
        assert_int_equal(vsock_conn_shutdown_write(c), 0);
        struct reply r;
        reply_init(&r);
        while (reply_read_one(c, &r) >= 0)
                ;
        assert_int_equal(r.frames, 3);
        assert_true(r.got_file);
        assert_null(r.error);
        assert_int_not_equal(vsock_err_kind(r.end), VSOCK_E_TIMEOUT);
        reply_clear(&r);
        vsock_conn_close(c);
        unlink(p);
        assert_healthy(A, A_rss_kb, "second requests");
}

/* ---- 10k connections dropped at random points ------------------------------------- */

static uint64_t rng_state;

static uint64_t rng_next(void) {
        /* xorshift64*: reproducible from the printed seed. */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * 2685821657736338717ull;
}

static size_t rng_below(size_t n) { return n ? (size_t) (rng_next() % n) : 0; }

/* A valid request (and for streaming modes some input after it) as bytes. */
static void build_stream(struct buf *b, uint8_t type, const void *json, size_t n) {
        uint8_t h[VSOCK_FRAME_HEADER_SIZE];
        vsock_frame_header(h, type, (uint32_t) n);
        assert_int_equal(buf_append(b, h, sizeof h), 0);
        assert_int_equal(buf_append(b, json, n), 0);
}

static void test_random_drops(void **state) {
        const char *s = getenv("HOSTILE_SEED");
        uint64_t seed = s ? strtoull(s, NULL, 0) : (uint64_t) vsock_now_ns() ^ ((uint64_t) getpid() << 32);
        if (!seed)
                seed = 1;
        rng_state = seed;
        print_message("random drops: seed %llu (HOSTILE_SEED=%llu reproduces)\n", (unsigned long long) seed,
                      (unsigned long long) seed);
        struct tcp_server *echo;
        assert_int_equal(tcp_server_start(TCP_ECHO, &echo), 0);

        enum { KINDS = 8 };
        struct buf reqs[KINDS];
        char js[512];
        int n;
        for (int k = 0; k < KINDS; k++)
                reqs[k] = BUF_INIT(0);
        n = snprintf(js, sizeof js, "{\"command\":\"true\"}");
        build_stream(&reqs[0], VSOCK_MSG_EXEC, js, (size_t) n);
        n = snprintf(js, sizeof js, "{\"command\":\"echo x; echo y >&2\"}");
        build_stream(&reqs[1], VSOCK_MSG_EXEC_STREAM, js, (size_t) n);
        n = snprintf(js, sizeof js, "{\"command\":\"cat\"}");
        build_stream(&reqs[2], VSOCK_MSG_EXEC_PIPE, js, (size_t) n);
        build_stream(&reqs[2], VSOCK_MSG_STDIN, "hello\n", 6);
        build_stream(&reqs[2], VSOCK_MSG_SIGNAL, "\x0f", 1);
        build_stream(&reqs[2], VSOCK_MSG_STDIN, "", 0);
        n = snprintf(js, sizeof js, "{\"command\":\"cat\",\"rows\":24,\"cols\":80}");
        build_stream(&reqs[3], VSOCK_MSG_EXEC_TTY, js, (size_t) n);
        build_stream(&reqs[3], VSOCK_MSG_RESIZE, "\0\x20\0\x40", 4);
        build_stream(&reqs[3], VSOCK_MSG_STDIN, "hello\r", 6);
        n = snprintf(js, sizeof js, "{\"host\":\"127.0.0.1\",\"port\":%u}", tcp_server_port(echo));
        build_stream(&reqs[4], VSOCK_MSG_PORT_FORWARD, js, (size_t) n);
        assert_int_equal(buf_append_str(&reqs[4], "raw bytes for the echo server"), 0);
        n = snprintf(js, sizeof js, "{\"path\":\"%s/drop\",\"content\":\"aGVsbG8K\",\"mode\":420}", A->dir);
        build_stream(&reqs[5], VSOCK_MSG_WRITE_FILE, js, (size_t) n);
        n = snprintf(js, sizeof js, "{\"path\":\"/etc/passwd\"}");
        build_stream(&reqs[6], VSOCK_MSG_READ_FILE, js, (size_t) n);
        n = snprintf(js, sizeof js, "{\"path\":\"%s\"}", A->dir);
        build_stream(&reqs[7], VSOCK_MSG_LIST_FILES, js, (size_t) n);

        const int total = 10000, batch = 64;
        unsigned full = 0, by_kind[KINDS] = { 0 };
        hwm_reset(A->pid);
        int64_t t0 = mono_ms();
        for (int done = 0; done < total; done += batch) {
                int fds[64];
                for (int i = 0; i < batch; i++) {
                        vsock_conn *c = dial();
                        fds[i] = vsock_conn_release_fd(c);
                        assert_true(fds[i] >= 0);
                }
                /* Each gets a random prefix of a random request, in random
                 * order; some are half-closed first; then all are dropped
                 * in another random order. */
                for (int i = 0; i < batch; i++) {
                        int k = (int) rng_below(KINDS);
                        size_t cut = rng_below(buf_size(&reqs[k]) + 1);
                        by_kind[k]++;
                        if (cut == buf_size(&reqs[k]))
                                full++;
                        size_t off = 0;
                        while (off < cut) {
                                ssize_t w = send(fds[i], buf_head(&reqs[k]) + off, cut - off, MSG_NOSIGNAL);
                                if (w <= 0)
                                        break;
                                off += (size_t) w;
                        }
                        if (rng_below(4) == 0)
                                (void) shutdown(fds[i], SHUT_WR);
                }
                for (int i = batch - 1; i > 0; i--) {
                        int j = (int) rng_below((size_t) i + 1);
                        int t = fds[i];
                        fds[i] = fds[j];
                        fds[j] = t;
                }
                for (int i = 0; i < batch; i++)
                        close(fds[i]);
        }
        int64_t ms = mono_ms() - t0;
        print_message("random drops: %d connections in %lld ms (%u complete), by kind:", total, (long long) ms, full);
        for (int k = 0; k < KINDS; k++)
                print_message(" %u", by_kind[k]);
        print_message("; agent peak RSS %ld kB\n", proc_hwm_kb(A->pid));
        assert_healthy(A, A_rss_kb, "random drops");
        /* Every forwarded connection was closed on the target side too. */
        assert_true(tcp_server_wait_idle(echo, 10000));
        tcp_server_stop(echo);
        for (int k = 0; k < KINDS; k++)
                buf_free(&reqs[k]);
        char p[160];
        snprintf(p, sizeof p, "%s/drop", A->dir);
        unlink(p);
}

/* ---- a host that never reads ------------------------------------------------------- */

static void test_never_reads(void **state) {
        struct marker mk;
        marker_new(&mk, MARKER_KEY);
        char *args[] = { "-c", "1073741824", "/dev/zero" };
        struct vsock_exec_request req = { .command = "head", .args = args, .n_args = 3, .env = &mk.env, .n_env = 1 };
        vsock_conn *c = dial();
        assert_int_equal(send_exec_request(c, VSOCK_MSG_EXEC_STREAM, &req), 0);
        wait_marker_count(&mk, 1);
        pid_t pid;
        assert_int_equal(marker_find(mk.entry, &pid, 1), 1);
        /* The host does not read for a few seconds. */
        pause_ms(3000);
        long rss = proc_rss_kb(A->pid);
        /* The child is blocked writing into its full pipe. */
        int64_t end = mono_ms() + BOUND_MS;
        char st, wchan[64];
        for (;;) {
                st = proc_state(pid);
                proc_wchan(pid, wchan, sizeof wchan);
                if (st == 'S' && (!wchan[0] || strcmp(wchan, "0") == 0 || strstr(wchan, "pipe")))
                        break;
                if (mono_ms() > end)
                        fail_msg("child %d: state %c, wchan %s (not blocked on its pipe)", (int) pid, st, wchan);
                pause_ms(10);
        }
        print_message("host not reading for 3 s: agent RSS %ld kB (baseline %ld kB), child state %c wchan %s\n", rss,
                      A_rss_kb, st, wchan[0] ? wchan : "(hidden)");
        assert_rss_bounded(A, A_rss_kb, "host not reading");
        /* The host reads a little, then goes away: the child goes too. */
        struct reply r;
        reply_init(&r);
        for (int i = 0; i < 10; i++)
                assert_int_equal(reply_read_one(c, &r), 0);
        reply_clear(&r);
        vsock_conn_close(c);
        assert_marker_gone(&mk, 3 * GRACE_MS, "host not reading, then gone");
}

/* ---- out of file descriptors --------------------------------------------------------- */

static void test_out_of_fds(void **state) {
        const int limit = 64;
        struct agent *b = B = agent_start(NULL, limit);
        assert_non_null(b);
        assert_int_equal(agent_warm_up(b), 0);
        long base = proc_rss_kb(b->pid);
        enum { MAXC = 256 };
        vsock_conn *c[MAXC];
        /* Open more connections than the agent has fds for; those it
         * cannot accept wait in the backlog. */
        int n = 0;
        while (n < limit + 16)
                c[n++] = dial_a(b);
        int64_t end = mono_ms() + BOUND_MS;
        int prev = -1, fds;
        while ((fds = count_fds(b->pid)) != prev) {
                prev = fds;
                pause_ms(100);
                assert_true(mono_ms() < end);
        }
        /* Every fd the agent could get is a session; the rest wait. */
        assert_true(fds - b->baseline_fds < n);
        assert_true(fds >= limit - 1);
        long hz = sysconf(_SC_CLK_TCK);
        long t0 = proc_cpu_ticks(b->pid);
        pause_ms(2000);
        long t1 = proc_cpu_ticks(b->pid);
        print_message("out of fds: %d connections, %d accepted (agent holds %d fds, limit %d), "
                      "agent CPU %ld ms over 2 s\n",
                      n, fds - b->baseline_fds, count_fds(b->pid), limit, (t1 - t0) * 1000 / hz);
        /* Backing off, not spinning on the listener. */
        assert_true((t1 - t0) * 1000 / hz < 500);
        for (int i = 0; i < n; i++)
                vsock_conn_close(c[i]);
        assert_healthy(b, base, "out of fds");
        B = NULL;
        assert_int_equal(agent_stop(b, BOUND_MS, NULL), 0);
}

/* ---- host disconnects at every stage ------------------------------------------------ */

/* Start @cmd with a marker; wait until @procs processes carry it. */
static vsock_conn *start_marked_a(struct agent *a, uint8_t type, const char *cmd, const struct marker *mk,
                                  size_t procs) {
        vsock_conn *c = dial_a(a);
        struct vsock_exec_request req = { .command = (char *) cmd, .env = (struct vsock_env *) &mk->env, .n_env = 1,
                                          .rows = 24, .cols = 80 };
        assert_int_equal(send_exec_request(c, type, &req), 0);
        wait_marker_count(mk, procs);
        return c;
}

static vsock_conn *start_marked(uint8_t type, const char *cmd, const struct marker *mk, size_t procs) {
        return start_marked_a(A, type, cmd, mk, procs);
}

static const char *mode_name(uint8_t type) { return vsock_msg_type_name(type); }

static void test_disconnect_exec(void **state) {
        char what[128];
        for (size_t m = 0; m < sizeof exec_modes; m++) {
                uint8_t type = exec_modes[m];
                struct marker mk;

                /* During the request: half of it, then gone. Nothing runs. */
                marker_new(&mk, MARKER_KEY);
                struct vsock_exec_request req = { .command = "sleep 1000", .env = &mk.env, .n_env = 1 };
                uint8_t *p;
                size_t n;
                assert_int_equal(vsock_exec_request_encode(&req, &p, &n), 0);
                vsock_conn *c = dial();
                assert_int_equal(send_header(c, type, (uint32_t) n), 0);
                assert_int_equal(vsock_conn_write(c, p, n / 2), 0);
                free(p);
                vsock_conn_close(c);
                assert_clean(A);
                assert_int_equal(marker_count(&mk), 0);

                /* After the request, before any output. */
                marker_new(&mk, MARKER_KEY);
                c = start_marked(type, "sleep 1000 & sleep 1000 & wait", &mk, 3);
                vsock_conn_close(c);
                snprintf(what, sizeof what, "%s: gone before output", mode_name(type));
                assert_marker_gone(&mk, 3 * GRACE_MS, what);

                /* Mid-output. */
                marker_new(&mk, MARKER_KEY);
                c = start_marked(type, "sleep 1000 & yes & wait", &mk, 3);
                if (type != VSOCK_MSG_EXEC) {
                        struct reply r;
                        reply_init(&r);
                        read_until(c, &r, "y");
                        reply_clear(&r);
                }
                vsock_conn_close(c);
                snprintf(what, sizeof what, "%s: gone mid-output", mode_name(type));
                assert_marker_gone(&mk, 3 * GRACE_MS, what);

                if (type == VSOCK_MSG_EXEC_PIPE || type == VSOCK_MSG_EXEC_TTY) {
                        /* During stdin: some frames, then half of one. */
                        marker_new(&mk, MARKER_KEY);
                        c = start_marked(type, "sleep 1000 & cat >/dev/null; wait", &mk, 3);
                        char chunk[4096];
                        memset(chunk, 'x', sizeof chunk);
                        for (int i = 0; i < 16; i++)
                                assert_int_equal(vsock_write_message(c, VSOCK_MSG_STDIN, chunk, sizeof chunk), 0);
                        assert_int_equal(send_header(c, VSOCK_MSG_STDIN, sizeof chunk), 0);
                        assert_int_equal(vsock_conn_write(c, chunk, 100), 0);
                        vsock_conn_close(c);
                        snprintf(what, sizeof what, "%s: gone during stdin", mode_name(type));
                        assert_marker_gone(&mk, 3 * GRACE_MS, what);

                        /* Half-closed (EOF on the connection, not an empty
                         * Stdin frame), then gone: a half-close is not a
                         * disconnect (test-agent shows the command runs on),
                         * the full close after it is. */
                        marker_new(&mk, MARKER_KEY);
                        c = start_marked(type, "sleep 1000 & sleep 1000 & wait", &mk, 3);
                        assert_int_equal(vsock_conn_shutdown_write(c), 0);
                        vsock_conn_close(c);
                        snprintf(what, sizeof what, "%s: half-closed, then gone", mode_name(type));
                        assert_marker_gone(&mk, 3 * GRACE_MS, what);
                }
                if (type == VSOCK_MSG_EXEC_TTY) {
                        /* An interactive session with a job in the
                         * background and a stopped one. */
                        marker_new(&mk, MARKER_KEY);
                        c = start_marked(type, "sleep 1000 & sh -c 'kill -STOP $$; sleep 1000' & cat; wait", &mk, 4);
                        assert_int_equal(vsock_write_message(c, VSOCK_MSG_STDIN, "typed\r", 6), 0);
                        struct reply r;
                        reply_init(&r);
                        read_until(c, &r, "typed");
                        reply_clear(&r);
                        vsock_conn_close(c);
                        assert_marker_gone(&mk, 3 * GRACE_MS, "tty session");
                }
                assert_clean(A);
        }
        assert_healthy(A, A_rss_kb, "disconnects during exec");
}

/* Open a forward to @port; returns the raw stream. */
static vsock_conn *forward_a(struct agent *a, uint16_t port) {
        vsock_conn *c = dial_a(a);
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_deadline_in(BOUND_MS);
        int r = vsock_open_port_forward(c, "127.0.0.1", port, &call);
        if (r < 0)
                fail_msg("port forward: %s (%s)", vsock_strerror(r), call.remote_error);
        return c;
}

static vsock_conn *forward(uint16_t port) { return forward_a(A, port); }

static void test_disconnect_portfwd(void **state) {
        struct tcp_server *echo, *flood;
        assert_int_equal(tcp_server_start(TCP_ECHO, &echo), 0);
        assert_int_equal(tcp_server_start(TCP_FLOOD, &flood), 0);
        char js[128];

        /* Gone right after the request (by name: during resolution), and
         * after half of it. */
        for (int i = 0; i < 20; i++) {
                vsock_conn *c = dial();
                int n = snprintf(js, sizeof js, "{\"host\":\"%s\",\"port\":%u}", i % 2 ? "localhost" : "127.0.0.1",
                                 tcp_server_port(echo));
                if (i % 4 == 3) {
                        assert_int_equal(send_header(c, VSOCK_MSG_PORT_FORWARD, (uint32_t) n), 0);
                        assert_int_equal(vsock_conn_write(c, js, (size_t) n / 2), 0);
                } else
                        assert_int_equal(vsock_write_message(c, VSOCK_MSG_PORT_FORWARD, js, (size_t) n), 0);
                vsock_conn_close(c);
        }
        assert_clean(A);
        assert_true(tcp_server_wait_idle(echo, BOUND_MS));

        /* Mid-proxy, with traffic both ways. */
        uint8_t *data = malloc(1u << 20);
        assert_non_null(data);
        memset(data, 'e', 1u << 20);
        for (int i = 0; i < 5; i++) {
                vsock_conn *c = forward(tcp_server_port(echo));
                assert_int_equal(vsock_conn_write(c, data, 256u * 1024), 0);
                size_t got = 0;
                while (got < 64u * 1024) {
                        ssize_t r = vsock_conn_read(c, data, 64u * 1024);
                        assert_true(r > 0);
                        got += (size_t) r;
                }
                memset(data, 'e', 1u << 20);
                if (i % 2)
                        (void) vsock_conn_shutdown_write(c);
                vsock_conn_close(c);
        }
        assert_clean(A);
        assert_true(tcp_server_wait_idle(echo, BOUND_MS));

        /* The target floods, the host never reads, then goes away. */
        vsock_conn *c = forward(tcp_server_port(flood));
        pause_ms(1000); /* let the flood fill every buffer */
        long rss = proc_rss_kb(A->pid);
        print_message("port forward from a flooding target, host not reading: agent RSS %ld kB\n", rss);
        assert_rss_bounded(A, A_rss_kb, "host not reading a forward");
        vsock_conn_close(c);
        assert_clean(A);
        assert_true(tcp_server_wait_idle(flood, BOUND_MS));

        free(data);
        tcp_server_stop(echo);
        tcp_server_stop(flood);
        assert_healthy(A, A_rss_kb, "disconnects during port forwarding");
}

/* Write @data (cyclically) without blocking until the peer has stopped
 * taking bytes for a second. Returns the bytes written. */
static size_t write_until_blocked(int fd, const uint8_t *data, size_t len) {
        size_t sent = 0, off = 0;
        for (;;) {
                ssize_t w = send(fd, data + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (w > 0) {
                        sent += (size_t) w;
                        off = (off + (size_t) w) % len;
                        assert_true(sent < (size_t) 1 << 30);
                        continue;
                }
                assert_true(w < 0 && errno == EAGAIN);
                struct pollfd pf = { .fd = fd, .events = POLLOUT };
                if (poll(&pf, 1, 1000) == 0)
                        return sent; /* blocked for a second: the agent stopped reading */
        }
}

/* The host goes away while the agent has stopped reading it (its input is
 * queued toward a command or a target that does not read). */
static void test_disconnect_paused_input(void **state) {
        /* Stdin frames to a command that never reads them. */
        enum { CHUNK = 65536, FRAMES = 16 };
        uint8_t *frames = malloc((size_t) FRAMES * (CHUNK + VSOCK_FRAME_HEADER_SIZE));
        assert_non_null(frames);
        size_t len = 0;
        for (int i = 0; i < FRAMES; i++) {
                vsock_frame_header(frames + len, VSOCK_MSG_STDIN, CHUNK);
                memset(frames + len + VSOCK_FRAME_HEADER_SIZE, 'i', CHUNK);
                len += VSOCK_FRAME_HEADER_SIZE + CHUNK;
        }
        static const uint8_t modes[] = { VSOCK_MSG_EXEC_PIPE, VSOCK_MSG_EXEC_TTY };
        for (size_t m = 0; m < sizeof modes; m++) {
                struct marker mk;
                marker_new(&mk, MARKER_KEY);
                /* A canonical-mode tty discards a line past its buffer
                 * (so that erase still works) and never pushes back:
                 * non-canonical mode makes the pty fill up instead. */
                const char *cmd = modes[m] == VSOCK_MSG_EXEC_TTY ? "stty -icanon -echo; sleep 1000 & sleep 1000 & wait"
                                                                : "sleep 1000 & sleep 1000 & wait";
                vsock_conn *c = start_marked(modes[m], cmd, &mk, 3);
                size_t sent = write_until_blocked(vsock_conn_fd(c), frames, len);
                print_message("%s, command not reading stdin: host wrote %zu kB before blocking; agent RSS %ld kB\n",
                              mode_name(modes[m]), sent / 1024, proc_rss_kb(A->pid));
                assert_rss_bounded(A, A_rss_kb, "stdin not read");
                vsock_conn_close(c);
                assert_marker_gone(&mk, 3 * GRACE_MS, "host gone while its stdin was held back");
                assert_clean(A);
        }

        /* A forward whose target never reads. */
        struct tcp_server *sink;
        assert_int_equal(tcp_server_start(TCP_SINK, &sink), 0);
        vsock_conn *c = forward(tcp_server_port(sink));
        size_t sent = write_until_blocked(vsock_conn_fd(c), frames, len);
        print_message("port forward to a target that never reads: host wrote %zu kB before blocking; agent RSS %ld kB\n",
                      sent / 1024, proc_rss_kb(A->pid));
        assert_rss_bounded(A, A_rss_kb, "target not reading");
        vsock_conn_close(c);
        assert_clean(A);
        assert_true(tcp_server_wait_idle(sink, BOUND_MS));
        tcp_server_stop(sink);
        free(frames);
}

static size_t count_temp_files(const char *dir) {
        DIR *d = opendir(dir);
        assert_non_null(d);
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                if (strncmp(de->d_name, ".vsock-agent-write-", 19) == 0)
                        n++;
        closedir(d);
        return n;
}

static void test_disconnect_files(void **state) {
        char path[160];
        snprintf(path, sizeof path, "%s/big", A->dir);
        size_t len = 8u << 20;
        uint8_t *data = malloc(len);
        assert_non_null(data);
        memset(data, 'f', len);
        struct vsock_write_file_request wr = { .path = path, .content = { data, len, true }, .mode = 0644 };
        uint8_t *p;
        size_t n;
        assert_int_equal(vsock_write_file_request_encode(&wr, &p, &n), 0);

        /* During the write request: half of it, then gone. */
        for (int i = 0; i < 3; i++) {
                vsock_conn *c = dial();
                assert_int_equal(send_header(c, VSOCK_MSG_WRITE_FILE, (uint32_t) n), 0);
                assert_int_equal(vsock_conn_write(c, p, n / (size_t) (2 + i)), 0);
                vsock_conn_close(c);
        }
        assert_clean(A);
        struct stat st;
        assert_int_equal(stat(path, &st), -1);
        assert_int_equal(count_temp_files(A->dir), 0);

        /* The whole request, then gone at once (the write runs on). */
        for (int i = 0; i < 3; i++) {
                vsock_conn *c = dial();
                assert_int_equal(vsock_write_message(c, VSOCK_MSG_WRITE_FILE, p, n), 0);
                vsock_conn_close(c);
        }
        assert_clean(A);
        /* The worker may still be finishing the last write. */
        int64_t end = mono_ms() + BOUND_MS;
        while (count_temp_files(A->dir) > 0 && mono_ms() < end)
                pause_ms(10);
        assert_int_equal(count_temp_files(A->dir), 0);
        free(p);

        /* Reading a big file and listing a big directory, gone before the
         * reply. */
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, len, f), len);
        fclose(f);
        char sub[192];
        snprintf(sub, sizeof sub, "%s/many", A->dir);
        assert_int_equal(mkdir(sub, 0755), 0);
        for (int i = 0; i < 3000; i++) {
                char fp[256];
                snprintf(fp, sizeof fp, "%s/entry-with-a-long-name-%05d", sub, i);
                int fd = open(fp, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
                assert_true(fd >= 0);
                close(fd);
        }
        struct vsock_path_request pr = { .path = path };
        for (int i = 0; i < 6; i++) {
                pr.path = i % 2 ? sub : path;
                assert_int_equal(vsock_path_request_encode(&pr, &p, &n), 0);
                vsock_conn *c = dial();
                assert_int_equal(vsock_write_message(c, i % 2 ? VSOCK_MSG_LIST_FILES : VSOCK_MSG_READ_FILE, p, n), 0);
                free(p);
                if (i >= 4) {
                        /* Read the start of the reply, then go. */
                        uint8_t hdr[5];
                        assert_int_equal(vsock_conn_read_full(c, hdr, 5, NULL), 0);
                }
                vsock_conn_close(c);
        }
        assert_clean(A);
        for (int i = 0; i < 3000; i++) {
                char fp[256];
                snprintf(fp, sizeof fp, "%s/entry-with-a-long-name-%05d", sub, i);
                unlink(fp);
        }
        rmdir(sub);
        unlink(path);
        free(data);
        assert_healthy(A, A_rss_kb, "disconnects during file operations");
}

/* ---- WriteFile streamed to disk as it arrives (wfstream.c) ------------------- */

/* A Go-shaped WriteFile payload: {"path":..,"content":"<@n bytes of
 * base64>"@tail; @junk_at (< the base64 length) gets a '-' if set. */
static char *wf_payload(const char *path, size_t n, size_t junk_at, const char *tail, size_t *ret_len) {
        uint8_t *data = malloc(n);
        assert_non_null(data);
        for (size_t i = 0; i < n; i++)
                data[i] = (uint8_t) (i * 31 + 7);
        struct buf b = BUF_INIT(0);
        char head[512];
        snprintf(head, sizeof head, "{\"path\":\"%s\",\"content\":\"", path);
        assert_int_equal(buf_append_str(&b, head), 0);
        size_t at = buf_size(&b);
        assert_int_equal(base64_encode_append(&b, data, n), 0);
        if (junk_at != SIZE_MAX)
                buf_head(&b)[at + junk_at] = '-';
        assert_int_equal(buf_append_str(&b, "\""), 0);
        assert_int_equal(buf_append_str(&b, tail), 0);
        free(data);
        uint8_t *out;
        assert_int_equal(buf_steal(&b, &out, ret_len), 0);
        return (char *) out;
}

static bool path_exists(const char *p) {
        struct stat st;
        return lstat(p, &st) == 0;
}

/* Wait (bounded) until @p is gone: the undo runs on the agent's worker. */
static void assert_gone(const char *p, const char *what) {
        int64_t end = mono_ms() + BOUND_MS;
        while (path_exists(p) && mono_ms() < end)
                pause_ms(5);
        if (path_exists(p))
                fail_msg("%s: %s is still there", what, p);
}

/* Refused requests leave nothing behind (not even the directories made
 * for them), whether the fault is in the content, after it, in the
 * connection or in the disk; the agent's memory does not follow the file's
 * size; another shape is buffered and served. */
static void test_streamed_write_faults(void **state) {
        char top[192], target[256];
        snprintf(top, sizeof top, "%s/new-a", A->dir);
        snprintf(target, sizeof target, "%s/new-b/file", top);
        static const struct {
                size_t junk_at;
                const char *tail;
                const char *error;
        } refused[] = {
                { 1000000, "}", "invalid write_file request: field \"content\": invalid base64" },
                { 2700000, "}", "invalid write_file request: field \"content\": invalid base64" },
                { SIZE_MAX, ",\"mode\":\"x\"}", "invalid write_file request: field \"mode\": expected number" },
                { SIZE_MAX, ",\"mode\":420} x", "invalid write_file request: invalid character after top-level value" },
                { SIZE_MAX, ",\"mode\":420,\"content\":\"\"}", "invalid write_file request: duplicate key in JSON object" },
        };
        for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
                size_t len;
                char *p = wf_payload(target, 2u << 20, refused[i].junk_at, refused[i].tail, &len);
                struct reply r;
                enum outcome o = exchange(VSOCK_MSG_WRITE_FILE, p, len, &r);
                if (o != OUT_ERROR || !r.error || strcmp(r.error, refused[i].error) != 0)
                        fail_msg("case %zu: %s, error \"%s\"", i, outcome_names[o], r.error ? r.error : "");
                reply_clear(&r);
                free(p);
                assert_gone(top, "a refused write");
        }

        /* Cut off mid-content, at several points. */
        size_t len;
        char *p = wf_payload(target, 4u << 20, SIZE_MAX, ",\"mode\":420}", &len);
        for (int i = 1; i <= 3; i++) {
                vsock_conn *c = dial();
                assert_int_equal(send_header(c, VSOCK_MSG_WRITE_FILE, (uint32_t) len), 0);
                assert_int_equal(vsock_conn_write(c, p, len * (size_t) i / 4), 0);
                /* Cut off once the directories are made (else the next
                 * round could find them made by this one, and rightly
                 * leave them). */
                int64_t until = mono_ms() + BOUND_MS;
                while (!path_exists(top) && mono_ms() < until)
                        pause_ms(2);
                vsock_conn_close(c);
                assert_gone(top, "a write cut off");
        }
        assert_clean(A);

        /* Silence mid-content: the request's idle bound still applies. */
        const char *extra[] = { "--idle-timeout", "1", NULL };
        struct agent *b = B = agent_start(extra, 0);
        assert_non_null(b);
        char btop[192], btarget[256];
        snprintf(btop, sizeof btop, "%s/new-a", b->dir);
        snprintf(btarget, sizeof btarget, "%s/new-b/file", btop);
        free(p);
        p = wf_payload(btarget, 4u << 20, SIZE_MAX, "}", &len);
        vsock_conn *c = dial_a(b);
        assert_int_equal(send_header(c, VSOCK_MSG_WRITE_FILE, (uint32_t) len), 0);
        assert_int_equal(vsock_conn_write(c, p, len / 2), 0);
        struct reply r;
        reply_read(c, &r);
        assert_int_equal(reply_outcome(&r), OUT_CLOSED);
        reply_clear(&r);
        vsock_conn_close(c);
        assert_gone(btop, "a silent write");
        /* The agent told to stop mid-stream: it exits 0 (no leak under
         * LeakSanitizer) and undoes the write. */
        c = dial_a(b);
        assert_int_equal(send_header(c, VSOCK_MSG_WRITE_FILE, (uint32_t) len), 0);
        assert_int_equal(vsock_conn_write(c, p, len / 2), 0);
        int64_t end = mono_ms() + BOUND_MS;
        while (!path_exists(btop) && mono_ms() < end)
                pause_ms(5);
        assert_true(path_exists(btop));
        free(p);
        int wst = 0;
        if (agent_stop(b, BOUND_MS, &wst) != 0)
                fail_msg("agent stopped mid-stream: wait status 0x%x", wst);
        B = NULL;
        vsock_conn_close(c);
        assert_false(path_exists(btop));

        /* A 40 MiB file: the agent holds ~1 MiB of it at a time. */
        snprintf(target, sizeof target, "%s/big40", A->dir);
        size_t n48 = 40u << 20;
        uint8_t *data = malloc(n48);
        assert_non_null(data);
        memset(data, 'z', n48);
        hwm_reset(A->pid);
        long rss0 = proc_rss_kb(A->pid);
        c = dial();
        struct vsock_call call = VSOCK_CALL_INIT;
        assert_int_equal(vsock_write_file(c, target, data, n48, 0600, &call), 0);
        vsock_conn_close(c);
        long hwm = proc_hwm_kb(A->pid);
        print_message("40 MiB write_file: agent RSS %ld kB before, peak %ld kB\n", rss0, hwm);
#ifndef UNDER_ASAN
        assert_true(hwm - rss0 < 16 * 1024);
#endif
        struct stat st;
        assert_int_equal(stat(target, &st), 0);
        assert_int_equal((size_t) st.st_size, n48);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(unlink(target), 0);
        free(data);

        /* Another shape (content first): buffered, and served all the same. */
        snprintf(target, sizeof target, "%s/content-first", A->dir);
        struct buf t = BUF_INIT(0);
        size_t n1 = 1u << 20;
        uint8_t *one = malloc(n1);
        assert_non_null(one);
        memset(one, 'q', n1);
        assert_int_equal(buf_append_str(&t, "{\"content\":\""), 0);
        assert_int_equal(base64_encode_append(&t, one, n1), 0);
        free(one);
        char tail[320];
        snprintf(tail, sizeof tail, "\",\"path\":\"%s\",\"mode\":416}", target);
        assert_int_equal(buf_append_str(&t, tail), 0);
        assert_int_equal(exchange(VSOCK_MSG_WRITE_FILE, buf_head(&t), buf_size(&t), &r), OUT_OK);
        reply_clear(&r);
        buf_free(&t);
        assert_int_equal(stat(target, &st), 0);
        assert_int_equal((size_t) st.st_size, n1);
        assert_int_equal(st.st_mode & 07777, 0640);
        assert_int_equal(unlink(target), 0);

        /* A full disk mid-stream: the error, the old file intact. */
        if (geteuid() == 0) {
                char mnt[192];
                snprintf(mnt, sizeof mnt, "%s/small-fs", A->dir);
                assert_int_equal(mkdir(mnt, 0755), 0);
                assert_int_equal(mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=256k,mode=0755"), 0);
                snprintf(target, sizeof target, "%s/file", mnt);
                FILE *f = fopen(target, "we");
                assert_non_null(f);
                fputs("old", f);
                fclose(f);
                p = wf_payload(target, 1u << 20, SIZE_MAX, "}", &len);
                enum outcome o = exchange(VSOCK_MSG_WRITE_FILE, p, len, &r);
                bool ok = o == OUT_ERROR && r.error && strstr(r.error, "no space left on device");
                char old[8] = "";
                f = fopen(target, "re");
                if (f) {
                        (void) !fread(old, 1, sizeof old - 1, f);
                        fclose(f);
                }
                size_t temps = count_temp_files(mnt);
                (void) umount2(mnt, MNT_DETACH);
                (void) rmdir(mnt);
                if (!ok)
                        fail_msg("full disk: %s, error \"%s\"", outcome_names[o], r.error ? r.error : "");
                assert_string_equal(old, "old");
                assert_int_equal(temps, 0);
                reply_clear(&r);
                free(p);
        }
        assert_healthy(A, A_rss_kb, "streamed write faults");
}

/* A command that ignores SIGTERM (and SIGHUP) gets SIGKILL after the grace. */
static void test_sigterm_ignored(void **state) {
        static const uint8_t modes[] = { VSOCK_MSG_EXEC_PIPE, VSOCK_MSG_EXEC };
        for (size_t m = 0; m < sizeof modes; m++) {
                struct marker mk;
                marker_new(&mk, MARKER_KEY);
                vsock_conn *c = start_marked(modes[m], "trap '' TERM HUP; sleep 1000 & sleep 1000 & wait", &mk, 3);
                int64_t t0 = mono_ms();
                vsock_conn_close(c);
                pause_ms(1000);
                size_t alive = marker_count(&mk);
                assert_marker_gone(&mk, 3 * GRACE_MS, "SIGTERM ignored");
                print_message("%s: SIGTERM ignored: %zu of 3 still alive after 1 s, all gone after %lld ms\n",
                              mode_name(modes[m]), alive, (long long) (mono_ms() - t0));
                assert_int_equal(alive, 3);
        }
}

/* A command that starts a daemon (setsid, double fork) and exits: the
 * request completes promptly even if the daemon keeps the output open. */
static void test_daemon(void **state) {
        static const char *cmds[] = {
                "setsid sh -c 'sleep 1000 </dev/null >/dev/null 2>&1 &' </dev/null >/dev/null 2>&1 & echo parent",
                "setsid sh -c 'sleep 1000 & echo daemon' & echo parent",
                "(setsid sleep 1000 &) ; echo parent",
        };
        for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
                for (size_t m = 0; m < sizeof exec_modes; m++) {
                        struct marker mk;
                        marker_new(&mk, MARKER_KEY);
                        vsock_conn *c = dial();
                        struct vsock_exec_request req = { .command = (char *) cmds[i], .env = &mk.env, .n_env = 1,
                                                          .rows = 24, .cols = 80 };
                        int64_t t0 = mono_ms();
                        assert_int_equal(send_exec_request(c, exec_modes[m], &req), 0);
                        struct reply r;
                        reply_read(c, &r);
                        int64_t ms = mono_ms() - t0;
                        vsock_conn_close(c);
                        if (!(r.got_exit || r.got_result) || r.exit_code != 0 || !buf_contains(&r.out, "parent"))
                                fail_msg("daemon %zu, %s: %s, exit %lld", i, mode_name(exec_modes[m]),
                                         outcome_names[reply_outcome(&r)], (long long) r.exit_code);
                        reply_clear(&r);
                        print_message("daemon %zu, %s: completed in %lld ms\n", i, mode_name(exec_modes[m]),
                                      (long long) ms);
                        assert_true(ms < 10000);
                        assert_clean(A);
                        /* The daemon left the group on purpose; not the
                         * agent's to kill (a TTY hangup may have, though). */
                        marker_kill(mk.entry, false);
                        assert_true(marker_wait_gone(mk.entry, BOUND_MS));
                }
}

/* SIGTERM to the agent with sessions of every kind running: children are
 * terminated and reaped, and the agent exits 0 within the grace. */
static void test_agent_sigterm(void **state) {
        for (int round = 0; round < 2; round++) {
                struct agent *b = B = agent_start(NULL, 0);
                assert_non_null(b);
                struct marker mk;
                marker_new(&mk, MARKER_KEY);
                vsock_conn *c[12];
                int n = 0;
                const char *cmd = round ? "trap '' TERM HUP; sleep 1000 & sleep 1000 & wait"
                                        : "sleep 1000 & sleep 1000 & wait";
                for (size_t m = 0; m < sizeof exec_modes; m++)
                        c[n++] = start_marked_a(b, exec_modes[m], cmd, &mk, 3 * (m + 1));
                /* An idle connection, a partial request, a forward. */
                c[n++] = dial_a(b);
                c[n] = dial_a(b);
                assert_int_equal(send_header(c[n++], VSOCK_MSG_EXEC, 100), 0);
                struct tcp_server *echo;
                assert_int_equal(tcp_server_start(TCP_ECHO, &echo), 0);
                c[n++] = forward_a(b, tcp_server_port(echo));
                int64_t t0 = mono_ms();
                int st = 0;
                B = NULL;
                int r = agent_stop(b, round ? GRACE_MS + 3000 : GRACE_MS, &st);
                int64_t ms = mono_ms() - t0;
                print_message("agent SIGTERM with %d connections (%s children): exit status %d after %lld ms\n", n,
                              round ? "SIGTERM-ignoring" : "ordinary", WIFEXITED(st) ? WEXITSTATUS(st) : -1,
                              (long long) ms);
                assert_int_equal(r, 0);
                assert_true(marker_wait_gone(mk.entry, 1000));
                /* Every connection was closed; exec sessions got their
                 * Exit/ExecResult first. */
                for (int i = 0; i < n; i++) {
                        struct reply rp;
                        reply_read(c[i], &rp);
                        assert_int_not_equal(vsock_err_kind(rp.end), VSOCK_E_TIMEOUT);
                        if (i < (int) sizeof exec_modes)
                                assert_true(rp.got_exit || rp.got_result);
                        reply_clear(&rp);
                        vsock_conn_close(c[i]);
                }
                assert_true(tcp_server_wait_idle(echo, BOUND_MS));
                tcp_server_stop(echo);
        }
}

/* ---- a file system that never answers --------------------------------------- */


static struct stall_fs *stall_or_skip(void) {
        char why[256];
        F = stall_fs_start(why, sizeof why);
        if (!F) {
                print_message("skip: no stalled file system here: %s\n", why);
                skip();
        }
        return F;
}

/* A batch exec sent on a new connection of @a; the reply is read later. */
static vsock_conn *exec_send_a(struct agent *a, const struct vsock_exec_request *req) {
        vsock_conn *c = dial_a(a);
        assert_int_equal(send_exec_request(c, VSOCK_MSG_EXEC, req), 0);
        return c;
}

/* Latency of a batch `true` and of the ready port on @a, which must still
 * serve while something else hangs. */
static void assert_serving(struct agent *a, const char *what) {
        int64_t t0 = mono_ms();
        int r = agent_exec_true(a, BOUND_MS);
        int64_t t1 = mono_ms();
        vsock_conn *c;
        int rr = vsock_dial_str(a->ready_addr, 0, BOUND_MS, -1, &c);
        int64_t t2 = mono_ms();
        if (rr >= 0)
                vsock_conn_close(c);
        print_message("%s: concurrent `true` %lld ms, ready port %lld ms\n", what, (long long) (t1 - t0),
                      (long long) (t2 - t1));
        if (r < 0 || rr < 0)
                fail_msg("%s: the agent no longer serves (exec %s, ready %s)", what, vsock_strerror(r),
                         vsock_strerror(rr));
}

/* Read the reply to the end: the exec must have been answered "could not
 * start" (126, the reason on stderr) within the bound. */
static void expect_start_timeout(vsock_conn *c, const char *what) {
        struct reply r;
        int64_t t0 = mono_ms();
        reply_read(c, &r);
        vsock_conn_close(c);
        print_message("%s: answered after %lld ms: exit %lld, %.*s", what, (long long) (mono_ms() - t0),
                      (long long) r.exit_code, (int) buf_size(&r.err), (const char *) buf_head(&r.err));
        if (!r.got_result || r.exit_code != 126 || !buf_contains(&r.err, "vsock-agent: the command did not start"))
                fail_msg("%s: %s, exit %lld", what, outcome_names[reply_outcome(&r)], (long long) r.exit_code);
        reply_clear(&r);
}

/* The thread ids of @pid, up to @max. */
static size_t tasks_of(pid_t pid, pid_t *out, size_t max) {
        char p[64];
        snprintf(p, sizeof p, "/proc/%d/task", (int) pid);
        DIR *d = opendir(p);
        size_t n = 0;
        struct dirent *de;
        while (d && n < max && (de = readdir(d)))
                if (de->d_name[0] != '.')
                        out[n++] = (pid_t) atoi(de->d_name);
        if (d)
                closedir(d);
        return n;
}

/* /proc/@pid/task/@tid/@name opened for reading, or NULL. */
static FILE *task_file(pid_t pid, pid_t tid, const char *name) {
        char p[128];
        snprintf(p, sizeof p, "/proc/%d/task/%d/%s", (int) pid, (int) tid, name);
        return fopen(p, "re");
}

/* What fd @fd of @pid is ("(closed)" if none). */
static void fd_target(pid_t pid, int fd, char *buf, size_t size) {
        char p[64];
        snprintf(p, sizeof p, "/proc/%d/fd/%d", (int) pid, fd);
        ssize_t n = readlink(p, buf, size - 1);
        if (n < 0)
                snprintf(buf, size, "(closed)");
        else
                buf[n] = '\0';
}

/* Children of @pid now (the agent's stuck vfork children), up to @max. */
static size_t children_of(pid_t pid, pid_t *out, size_t max) {
        pid_t tids[256];
        size_t n = 0, nt = tasks_of(pid, tids, 256);
        for (size_t i = 0; i < nt; i++) {
                FILE *f = task_file(pid, tids[i], "children");
                int c;
                while (f && n < max && fscanf(f, "%d", &c) == 1)
                        out[n++] = c;
                if (f)
                        fclose(f);
        }
        return n;
}

/* Wait (bounded) until @pid has at least @n children; their pids to @kids. */
static size_t wait_children(pid_t pid, size_t n, pid_t *kids, size_t max) {
        size_t have = 0;
        int64_t end = mono_ms() + BOUND_MS;
        while ((have = children_of(pid, kids, max)) < n && mono_ms() < end)
                pause_ms(5);
        return have;
}

/* Release the stalled file system; whatever hung in it ends. */
static void release_and_reap(const char *name, const pid_t *kids, size_t n) {
        stall_fs_release(F);
        F = NULL;
        for (size_t i = 0; i < n; i++)
                if (!wait_pid_gone(kids[i], BOUND_MS))
                        fail_msg("%s: process %d still there after the file system answered", name, (int) kids[i]);
}

/* An exec whose working directory, program or PATH entry is on a file
 * system that never answers: the loop goes on (other sessions, the ready
 * port), the host hears at the I/O timeout. With every thread that may
 * start commands stuck, starts are refused at once, even those that
 * waited (and the agent's own fds stay as they were). SIGTERM still ends
 * the agent while a start hangs. Each time the file system answers at the
 * end, and nothing stays stuck. */
static void stalled_exec_case(const char *const *opts, const char *name) {
        stall_or_skip();
        struct agent *b = B = agent_start(opts, 0);
        assert_non_null(b);
        char wd[128], prog[128], pathv[256], bin[128];
        stall_fs_path(F, "stall-wd", wd, sizeof wd);
        stall_fs_path(F, "stall-bin/prog", prog, sizeof prog);
        snprintf(pathv, sizeof pathv, "%s:/usr/bin:/bin", stall_fs_path(F, "stall-path", bin, sizeof bin));
        struct vsock_env path_env = { "PATH", pathv };
        char *args[] = { "x" };
        const struct vsock_exec_request reqs[] = {
                { .command = "true", .working_dir = wd },
                { .command = prog, .args = args, .n_args = 1 },
                { .command = "true", .args = args, .n_args = 1, .env = &path_env, .n_env = 1 },
        };
        static const char *const whats[] = { "working directory", "program", "PATH entry" };
        vsock_conn *c[3];
        for (int i = 0; i < 3; i++)
                c[i] = exec_send_a(b, &reqs[i]);
        char what[160];
        snprintf(what, sizeof what, "%s: 3 execs stalled on a file system", name);
        pid_t kids[64];
        (void) wait_children(b->pid, 3, kids, 64);
        assert_serving(b, what);
        for (int i = 0; i < 3; i++) {
                snprintf(what, sizeof what, "%s: %s on a stalled file system", name, whats[i]);
                expect_start_timeout(c[i], what);
        }
        assert_serving(b, "after the start timeouts");

        /* More than the threads that may exist (32): every host hears,
         * some of those starts never ran at all. */
        char fd0[256], now[256];
        fd_target(b->pid, 0, fd0, sizeof fd0);
        enum { FILL = 40 };
        vsock_conn *fill[FILL];
        for (int i = 0; i < FILL; i++)
                fill[i] = exec_send_a(b, &reqs[0]);
        for (int i = 0; i < FILL; i++) {
                struct reply r;
                reply_read(fill[i], &r);
                vsock_conn_close(fill[i]);
                if (!r.got_result || r.exit_code != 126 || !buf_contains(&r.err, "vsock-agent: "))
                        fail_msg("%s: start %d of %d: %s, exit %lld", name, i, FILL, outcome_names[reply_outcome(&r)],
                                 (long long) r.exit_code);
                reply_clear(&r);
        }
        fd_target(b->pid, 0, now, sizeof now);
        assert_string_equal(now, fd0);
        /* A start is answered at once: refused while every starter is
         * stuck, or run when the cancels freed one (with --pid-ns the
         * killed namespace takes its stuck command with it). The ready
         * port answers. */
        struct vsock_exec_request t = { .command = "true" };
        struct reply r;
        int64_t t0 = mono_ms();
        vsock_conn *busy = exec_until_end_a(b, VSOCK_MSG_EXEC, &t, &r);
        int64_t ms = mono_ms() - t0;
        vsock_conn_close(busy);
        print_message("%s: %d starts stalled: a `true` answered in %lld ms: exit %lld%s%.*s", name, FILL,
                      (long long) ms, (long long) r.exit_code, buf_size(&r.err) ? ", " : "\n",
                      (int) buf_size(&r.err), (const char *) buf_head(&r.err));
        assert_true(ms < PROBE_BOUND_MS);
        if (r.exit_code != 0) {
                assert_int_equal(r.exit_code, 126);
                assert_true(buf_contains(&r.err, "vsock-agent: agent busy: "));
        }
        reply_clear(&r);
        vsock_conn *rc;
        assert_int_equal(vsock_dial_str(b->ready_addr, 0, BOUND_MS, -1, &rc), 0);
        vsock_conn_close(rc);
        size_t n_kids = children_of(b->pid, kids, 64);
        release_and_reap(name, kids, n_kids);
        assert_clean(b);
        assert_serving(b, "once the file system answered");

        /* SIGTERM while a start hangs. */
        stall_or_skip();
        stall_fs_path(F, "stall-wd", wd, sizeof wd);
        vsock_conn *last = exec_send_a(b, &reqs[0]);
        n_kids = wait_children(b->pid, 1, kids, 64);
        t0 = mono_ms();
        int st = 0;
        B = NULL;
        int rr = agent_stop(b, BOUND_MS, &st);
        print_message("%s: SIGTERM with a stalled exec: exit status %d after %lld ms\n", name,
                      WIFEXITED(st) ? WEXITSTATUS(st) : -1, (long long) (mono_ms() - t0));
        assert_int_equal(rr, 0);
        struct reply rp;
        reply_read(last, &rp);
        assert_int_not_equal(vsock_err_kind(rp.end), VSOCK_E_TIMEOUT);
        reply_clear(&rp);
        vsock_conn_close(last);
        release_and_reap(name, kids, n_kids);
}

static void test_stalled_fs_exec(void **state) {
        static const char *const opts[] = { "--io-timeout", "3", NULL };
        stalled_exec_case(opts, "exec");
}

static void test_stalled_fs_exec_pidns(void **state) {
        if (geteuid() != 0) {
                print_message("skip: --pid-ns needs root\n");
                skip();
        }
        static const char *const opts[] = { "--io-timeout", "3", "--pid-ns", NULL };
        stalled_exec_case(opts, "exec --pid-ns");
}

struct timed_file_op {
        struct agent *a;
        uint8_t type;
        char path[512];
        int64_t ms;
        struct reply r;
};

static void *timed_file_op_main(void *p) {
        struct timed_file_op *t = p;
        struct vsock_path_request req = { .path = t->path };
        uint8_t *payload;
        size_t n;
        if (vsock_path_request_encode(&req, &payload, &n) < 0)
                return "encode";
        int64_t t0 = mono_ms();
        vsock_conn *c;
        if (agent_dial(t->a, 3 * BOUND_MS, &c) < 0)
                return "dial";
        (void) vsock_write_message(c, t->type, payload, n);
        free(payload);
        reply_read(c, &t->r);
        vsock_conn_close(c);
        t->ms = mono_ms() - t0;
        return NULL;
}

static void timed_file_op_start(struct timed_file_op *t, pthread_t *th, struct agent *a, uint8_t type,
                                const char *path) {
        t->a = a;
        t->type = type;
        snprintf(t->path, sizeof t->path, "%s", path);
        assert_int_equal(pthread_create(th, NULL, timed_file_op_main, t), 0);
}

static void timed_file_op_join(struct timed_file_op *t, pthread_t th) {
        void *err;
        pthread_join(th, &err);
        if (err)
                fail_msg("file op on %s: %s failed", t->path, (const char *) err);
}

/* Threads of @pid waiting in the FUSE file system. */
static size_t threads_in_fuse(pid_t pid) {
        pid_t tids[256];
        size_t n = 0, nt = tasks_of(pid, tids, 256);
        for (size_t i = 0; i < nt; i++) {
                char w[64] = "";
                FILE *f = task_file(pid, tids[i], "wchan");
                if (f && fgets(w, sizeof w, f) && (strstr(w, "fuse") || strstr(w, "request_wait_answer")))
                        n++;
                if (f)
                        fclose(f);
        }
        return n;
}

/* Make @n entries in @dir (hard links to one file, fast): the number,
 * zero-padded to @width digits. */
static void fill_dir(const char *dir, size_t n, int width) {
        assert_true(mkdir(dir, 0755) == 0 || errno == EEXIST);
        char first[1024], name[1024];
        for (size_t i = 0; i < n; i++) {
                /* A new target now and then: file systems cap links. */
                if (i % 50000 == 0) {
                        snprintf(first, sizeof first, "%s/.target%zu", dir, i / 50000);
                        int fd = open(first, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                        assert_true(fd >= 0);
                        close(fd);
                }
                snprintf(name, sizeof name, "%s/f%0*zu", dir, width, i);
                if (link(first, name) < 0 && errno != EEXIST)
                        fail_msg("link %s: %s", name, strerror(errno));
        }
}

static void remove_tree(const char *dir) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
}

/* File operations and name lookups do not queue behind each other: a
 * small read while a read that never returns and a 200k-entry listing
 * run; a lookup for a port forward too. A stalled operation is answered
 * at the I/O timeout, its thread left to the kernel and replaced, within
 * a hard cap on threads. */
static void test_stalled_fs_files(void **state) {
        stall_or_skip();
        /* The figures with the default I/O timeout (30 s): a 200k-entry
         * listing takes seconds on a busy machine. */
        struct agent *b = B = agent_start(NULL, 0);
        assert_non_null(b);
        char dir200k[160], small[160], stalled[128];
        snprintf(dir200k, sizeof dir200k, "%s/200k", b->dir);
#ifdef UNDER_ASAN
        /* Ten times slower: a 200k listing would overrun the timeout. */
        fill_dir(dir200k, 20000, 6);
#else
        fill_dir(dir200k, 200000, 6);
#endif
        snprintf(small, sizeof small, "%s/small", b->dir);
        int fd = open(small, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        assert_int_equal(write(fd, "abc", 3), 3);
        close(fd);
        stall_fs_path(F, "rstall", stalled, sizeof stalled);

        /* Alone first, for the record. */
        struct timed_file_op list0 = { 0 }, read0 = { 0 };
        pthread_t th;
        timed_file_op_start(&list0, &th, b, VSOCK_MSG_LIST_FILES, dir200k);
        timed_file_op_join(&list0, th);
        timed_file_op_start(&read0, &th, b, VSOCK_MSG_READ_FILE, small);
        timed_file_op_join(&read0, th);
        assert_true(list0.r.got_file && !list0.r.error);
        assert_true(read0.r.got_file && !read0.r.error);
        print_message("alone: 200k-entry ListFiles %lld ms, 3-byte ReadFile %lld ms\n", (long long) list0.ms,
                      (long long) read0.ms);
        reply_clear(&list0.r);
        reply_clear(&read0.r);

        /* Together: the stalled read and the listing first. */
        struct timed_file_op st = { 0 }, list = { 0 }, rd = { 0 };
        pthread_t tst, tlist, trd;
        timed_file_op_start(&st, &tst, b, VSOCK_MSG_READ_FILE, stalled);
        int64_t end = mono_ms() + BOUND_MS;
        while (threads_in_fuse(b->pid) < 1 && mono_ms() < end)
                pause_ms(5);
        timed_file_op_start(&list, &tlist, b, VSOCK_MSG_LIST_FILES, dir200k);
        timed_file_op_start(&rd, &trd, b, VSOCK_MSG_READ_FILE, small);
        timed_file_op_join(&rd, trd);
        /* A name to resolve (the hosts file, on a worker): answered too. */
        vsock_conn *c = dial_a(b);
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_deadline_in(BOUND_MS);
        int64_t t0 = mono_ms();
        int r = vsock_open_port_forward(c, "no-such-host.invalid", 80, &call);
        int64_t lookup_ms = mono_ms() - t0;
        vsock_conn_close(c);
        timed_file_op_join(&list, tlist);
        print_message("with a stalled ReadFile and the listing: 3-byte ReadFile %lld ms, ListFiles %lld ms, "
                      "port-forward lookup %lld ms\n",
                      (long long) rd.ms, (long long) list.ms, (long long) lookup_ms);
        assert_true(rd.r.got_file && !rd.r.error);
        assert_true(rd.ms < PROBE_BOUND_MS);
        assert_true(list.r.got_file && !list.r.error);
        assert_true(vsock_err_kind(r) == VSOCK_E_PORT_FORWARD_REJECTED);
        assert_string_equal(call.remote_error, "connect no-such-host.invalid:80 failed: dial tcp: lookup "
                                               "no-such-host.invalid: no such host");
        assert_true(lookup_ms < PROBE_BOUND_MS);
        reply_clear(&rd.r);
        reply_clear(&list.r);
        remove_tree(dir200k);
        /* SIGTERM with a file operation stuck in the kernel: the agent
         * ends at once; the process disappears once the thread is let go
         * (a thread in an uninterruptible wait holds the exit). */
        int64_t t1 = mono_ms();
        assert_int_equal(kill(b->pid, SIGTERM), 0);
        end = mono_ms() + BOUND_MS;
        while (proc_state(b->pid) != 'Z' && proc_state(b->pid) != 0 && mono_ms() < end)
                pause_ms(5);
        print_message("SIGTERM with a file operation stuck: the agent ended after %lld ms\n",
                      (long long) (mono_ms() - t1));
        assert_true(proc_state(b->pid) == 'Z' || proc_state(b->pid) == 0);
        timed_file_op_join(&st, tst);
        assert_false(st.r.got_file);
        reply_clear(&st.r);
        stall_fs_release(F);
        F = NULL;
        B = NULL;
        assert_int_equal(agent_stop(b, BOUND_MS, NULL), 0);
        stall_or_skip();
        stall_fs_path(F, "rstall", stalled, sizeof stalled);

        /* With a 3 s I/O timeout: the stalled read is answered then. */
        static const char *const opts[] = { "--io-timeout", "3", NULL };
        b = B = agent_start(opts, 0);
        assert_non_null(b);
        snprintf(small, sizeof small, "%s/small", b->dir);
        fd = open(small, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        assert_int_equal(write(fd, "abc", 3), 3);
        close(fd);
        timed_file_op_start(&st, &tst, b, VSOCK_MSG_READ_FILE, stalled);
        timed_file_op_join(&st, tst);
        print_message("a stalled ReadFile answered after %lld ms: %s\n", (long long) st.ms,
                      st.r.error ? st.r.error : "(no error)");
        assert_true(st.r.got_file);
        assert_string_equal(st.r.error, "read_file: gave up after 3 s: the file system does not answer");
        reply_clear(&st.r);

        /* More stalled operations than may run at once: each is answered
         * at its timeout, the threads stuck in the kernel are replaced, and
         * a fresh operation is still served. Then more than the hard cap:
         * every host still hears, no more threads than the cap hang, and a
         * fresh operation is told the agent is busy. */
        enum { THREADS_MAX = 32, ROUND = 20, ROUNDS_MAX = 8 };
        static struct timed_file_op many[ROUND];
        pthread_t tm[ROUND];
        static const char *const stalls[] = { "rstall", "ostall", "gstall", "dstall", "stall-lookup" };
        bool saturated = false;
        for (int round = 0; round < ROUNDS_MAX && !saturated; round++) {
                for (int i = 0; i < ROUND; i++) {
                        char p[128];
                        const char *name = stalls[i % 5];
                        memset(&many[i], 0, sizeof many[i]);
                        timed_file_op_start(&many[i], &tm[i], b,
                                            strcmp(name, "dstall") == 0 ? VSOCK_MSG_LIST_FILES : VSOCK_MSG_READ_FILE,
                                            stall_fs_path(F, name, p, sizeof p));
                }
                size_t most = 0;
                int busy = 0;
                for (int i = 0; i < ROUND; i++) {
                        timed_file_op_join(&many[i], tm[i]);
                        size_t now = threads_in_fuse(b->pid);
                        most = now > most ? now : most;
                        const char *e = many[i].r.error;
                        if (!many[i].r.got_file || !e || (!strstr(e, "gave up after 3 s") && !strstr(e, "agent busy")))
                                fail_msg("stalled op %d on %s: %s", i, many[i].path,
                                         e ? e : outcome_names[reply_outcome(&many[i].r)]);
                        busy += strstr(e, "agent busy") != NULL;
                        reply_clear(&many[i].r);
                }
                timed_file_op_start(&rd, &trd, b, VSOCK_MSG_READ_FILE, small);
                timed_file_op_join(&rd, trd);
                print_message("%d more stalled operations: all answered (%d told busy); at most %zu threads in the "
                              "file system (cap %d); a fresh ReadFile after them: %lld ms, %s\n",
                              ROUND, busy, most, THREADS_MAX, (long long) rd.ms, rd.r.error ? rd.r.error : "ok");
                assert_true(most <= THREADS_MAX);
                assert_true(rd.r.got_file);
                assert_true(rd.ms < PROBE_BOUND_MS);
                if (rd.r.error) {
                        /* Every thread the pool may have is stuck. */
                        assert_true(round > 0);
                        assert_string_equal(rd.r.error, "read_file: agent busy: its worker threads are stuck in a "
                                                        "file system that does not answer");
                        saturated = true;
                }
                reply_clear(&rd.r);
                assert_serving(b, "with the file-op threads stuck");
        }
        assert_true(saturated);

        /* Released: the stuck threads return and the agent is as before. */
        stall_fs_release(F);
        F = NULL;
        end = mono_ms() + BOUND_MS;
        while (threads_in_fuse(b->pid) > 0 && mono_ms() < end)
                pause_ms(5);
        assert_int_equal(threads_in_fuse(b->pid), 0);
        assert_clean(b);
        timed_file_op_start(&rd, &trd, b, VSOCK_MSG_READ_FILE, small);
        timed_file_op_join(&rd, trd);
        assert_true(rd.r.got_file && !rd.r.error);
        reply_clear(&rd.r);
        B = NULL;
        assert_int_equal(agent_stop(b, BOUND_MS, NULL), 0);
}

/* ---- workloads reaching past the agent ---------------------------------------- */

/* $PROBE @args... as a batch exec on @a (as @user, or the agent's). */
static char *probe_out(struct agent *a, const char *user, const char *args) {
        char *cmd;
        assert_true(asprintf(&cmd, "%s %s", getenv("PROBE"), args) > 0);
        struct vsock_env env[] = { { "ASAN_OPTIONS", "detect_leaks=0" } };
        struct vsock_exec_request req = { .command = cmd, .user = (char *) user, .env = env, .n_env = 1 };
        struct reply r;
        vsock_conn *c = exec_until_end_a(a, VSOCK_MSG_EXEC, &req, &r);
        vsock_conn_close(c);
        free(cmd);
        if (r.exit_code != 0)
                fail_msg("probe %s: exit %lld: %.*s", args, (long long) r.exit_code, (int) buf_size(&r.err),
                         (const char *) buf_head(&r.err));
        char *out = strndup((const char *) buf_head(&r.out), buf_size(&r.out));
        reply_clear(&r);
        return out;
}

static void expect_line(const char *out, const char *key, const char *want) {
        char v[128];
        if (!text_field_is(out, key, want, v, sizeof v))
                fail_msg("%s: got \"%s\", want \"%s\"; probe output:\n%s", key, v, want, out);
}

/* io_uring would create the AF_VSOCK socket the filter refuses. */
static void test_io_uring_denied(void **state) {
        if (!getenv("PROBE"))
                fail_msg("PROBE is not set");
        char *out = probe_out(A, NULL, "");
        expect_line(out, "io_uring_setup", "EPERM");
        expect_line(out, "io_uring_socket_vsock", "EPERM");
        expect_line(out, "socket_vsock", "EPERM");
        free(out);
}

/* An agent started from a terminal: no command gets at it (/dev/tty,
 * TIOCSTI), and a command of one user cannot continue another session's
 * stopped job. */
static void test_no_controlling_terminal(void **state) {
        if (geteuid() != 0) {
                print_message("skip: commands as another user need root\n");
                skip();
        }
        int master;
        struct agent *b = B = agent_start_tty(NULL, &master);
        assert_non_null(b);
        char *out = probe_out(b, "65534", "tty");
        print_message("probe as nobody under an agent with a terminal:\n%s", out);
        expect_line(out, "devtty", "ENXIO");
        free(out);
        out = probe_out(b, NULL, "tty");
        expect_line(out, "devtty", "ENXIO");
        free(out);

        /* A root job, stopped; a nobody command tries to continue it. */
        struct marker mk;
        marker_new(&mk, MARKER_KEY);
        char *sleep_args[] = { "1000" };
        struct vsock_exec_request req = { .command = "sleep", .args = sleep_args, .n_args = 1, .env = &mk.env,
                                          .n_env = 1 };
        vsock_conn *job = exec_send_a(b, &req);
        wait_marker_count(&mk, 1);
        pid_t pid;
        assert_int_equal(marker_find(mk.entry, &pid, 1), 1);
        assert_int_equal(kill(pid, SIGSTOP), 0);
        int64_t end = mono_ms() + BOUND_MS;
        while (proc_state(pid) != 'T' && mono_ms() < end)
                pause_ms(5);
        assert_int_equal(proc_state(pid), 'T');
        char args[64];
        snprintf(args, sizeof args, "cont %d", (int) pid);
        out = probe_out(b, "65534", args);
        expect_line(out, "sigcont", "EPERM");
        free(out);
        assert_int_equal(proc_state(pid), 'T');
        vsock_conn_close(job);
        assert_marker_gone(&mk, 3 * GRACE_MS, "the stopped job");
        /* The terminal's hangup would SIGHUP the agent: stop it first. */
        B = NULL;
        assert_int_equal(agent_stop(b, BOUND_MS, NULL), 0);
        close(master);
}

/* --pid-ns: the namespace's init holds none of the agent's memory: a
 * secret of another session's request is not in it for a root workload
 * to read through /proc/1/mem. */
static void test_pidns_init_memory(void **state) {
        if (geteuid() != 0) {
                print_message("skip: --pid-ns needs root\n");
                skip();
        }
        static const char *const opts[] = { "--pid-ns", NULL };
        struct agent *b = B = agent_start(opts, 0);
        assert_non_null(b);
        char secret[48], reversed[48];
        uint8_t rnd[16];
        assert_int_equal(getrandom(rnd, sizeof rnd, 0), (ssize_t) sizeof rnd);
        int k = snprintf(secret, sizeof secret, "SeCrEt");
        for (size_t i = 0; i < sizeof rnd; i++)
                k += snprintf(secret + k, sizeof secret - (size_t) k, "%02x", rnd[i]);
        for (int i = 0; i < k; i++)
                reversed[i] = secret[k - 1 - i];
        reversed[k] = '\0';
        /* A session that keeps running with the secret in its request,
         * late in it (a short request after it overwrites less). */
        char pad[400];
        memset(pad, 'p', sizeof pad - 1);
        pad[sizeof pad - 1] = '\0';
        struct marker mk;
        marker_new(&mk, MARKER_KEY);
        struct vsock_env env[] = { { "A_PADDING", pad }, { "B_SECRET", secret }, mk.env };
        struct vsock_exec_request req = { .command = "sleep 1000", .env = env, .n_env = 3 };
        vsock_conn *holder = dial_a(b);
        assert_int_equal(send_exec_request(holder, VSOCK_MSG_EXEC_PIPE, &req), 0);
        wait_marker_count(&mk, 1);
        char args[128];
        snprintf(args, sizeof args, "memsearch 1 %s", reversed);
        char *out = probe_out(b, NULL, args);
        print_message("the init's memory as a root workload reads it: %s", out);
        char v[64];
        assert_true(text_field(out, "memsearch", v, sizeof v));
        if (strncmp(v, "absent ", 7) != 0 || strtoull(v + 7, NULL, 10) == 0)
                fail_msg("memsearch: %s", v);
        free(out);
        vsock_conn_close(holder);
        assert_marker_gone(&mk, 3 * GRACE_MS, "the secret holder");
        B = NULL;
        assert_int_equal(agent_stop(b, BOUND_MS, NULL), 0);
}

/* ---- heavy requests ------------------------------------------------------------ */

struct big_request {
        const struct buf *b;
        struct reply r;
        int64_t done_ms;        /* when its reply was complete */
};

static void *big_request_main(void *p) {
        struct big_request *t = p;
        vsock_conn *c = dial();
        (void) vsock_conn_write(c, buf_head(t->b), buf_size(t->b));
        /* The agent has it all once our send queue is empty. */
        int fd = vsock_conn_fd(c), q = 1;
        int64_t end = mono_ms() + BOUND_MS;
        while (ioctl(fd, SIOCOUTQ, &q) == 0 && q > 0 && mono_ms() < end)
                pause_ms(1);
        t->done_ms = -1;
        reply_read(c, &t->r);
        t->done_ms = mono_ms();
        vsock_conn_close(c);
        return NULL;
}

/* 64 MiB of \u00e9 escapes: decoding takes a second of CPU. It happens on
 * a worker: a `true` sent after the whole request is in is answered long
 * before the request is. */
static void test_escape_heavy_request(void **state) {
        struct buf b = BUF_INIT(0);
        size_t n = (REQUEST_MAX - 64) / 6;
        uint8_t h[VSOCK_FRAME_HEADER_SIZE] = { 0 };
        assert_int_equal(buf_append(&b, h, sizeof h), 0);
        assert_int_equal(buf_append_str(&b, "{\"command\":\""), 0);
        uint8_t *tail;
        assert_int_equal(buf_reserve(&b, n * 6, &tail), 0);
        for (size_t i = 0; i < n; i++)
                memcpy(tail + 6 * i, "\\u00e9", 6);
        buf_commit(&b, n * 6);
        assert_int_equal(buf_append_str(&b, "\"}"), 0);
        vsock_frame_header(buf_head(&b), VSOCK_MSG_EXEC, (uint32_t) (buf_size(&b) - sizeof h));
        struct big_request t = { .b = &b };
        t.r = (struct reply) { .out = BUF_INIT(0), .err = BUF_INIT(0) };
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, big_request_main, &t), 0);
        /* Wait until the agent holds the whole request (the thread's send
         * queue drained), then ask. */
        int64_t end = mono_ms() + BOUND_MS;
        vsock_conn *probe = NULL;
        for (;;) {
                assert_true(mono_ms() < end);
                if (__atomic_load_n(&t.done_ms, __ATOMIC_ACQUIRE) != 0)
                        break;
                pause_ms(1);
        }
        int64_t t0 = mono_ms();
        int r = agent_exec_true(A, BOUND_MS);
        int64_t probe_done = mono_ms();
        (void) probe;
        pthread_join(th, NULL);
        print_message("64 MiB of escapes: concurrent `true` %lld ms; the big request answered %lld ms after the "
                      "probe started: %s, exit %lld\n",
                      (long long) (probe_done - t0), (long long) (t.done_ms - t0),
                      outcome_names[reply_outcome(&t.r)], (long long) t.r.exit_code);
        assert_int_equal(r, 0);
        /* The loop was free: `true` came back before the request's reply. */
        assert_true(probe_done <= t.done_ms);
        assert_int_equal(reply_outcome(&t.r), OUT_ERROR);
        reply_clear(&t.r);
        buf_free(&b);
}

/* ---- files ----------------------------------------------------------------------- */

static void write_file_expect(struct agent *a, const char *path, const char *want_error) {
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_deadline_in(BOUND_MS);
        vsock_conn *c = dial_a(a);
        int r = vsock_write_file(c, path, "hostile", 7, 0644, &call);
        vsock_conn_close(c);
        if (!want_error) {
                if (r < 0)
                        fail_msg("write %s: %s (%s)", path, vsock_strerror(r), call.remote_error);
                return;
        }
        if (r >= 0 || strcmp(call.remote_error, want_error) != 0)
                fail_msg("write %s: \"%s\", want \"%s\"", path, r >= 0 ? "(no error)" : call.remote_error, want_error);
}

/* WriteFile never replaces a special file; a /proc file is written in
 * place. */
static void test_write_special_files(void **state) {
        char fifo[160], dev[160], want[400];
        snprintf(fifo, sizeof fifo, "%s/fifo", A->dir);
        snprintf(dev, sizeof dev, "%s/null", A->dir);
        assert_int_equal(mkfifo(fifo, 0600), 0);
        snprintf(want, sizeof want, "open %s: not a regular file (named pipe): not replaced", fifo);
        write_file_expect(A, fifo, want);
        struct stat st;
        assert_int_equal(lstat(fifo, &st), 0);
        assert_true(S_ISFIFO(st.st_mode));
        unlink(fifo);
        if (mknod(dev, S_IFCHR | 0666, makedev(1, 3)) == 0) {
                snprintf(want, sizeof want, "open %s: not a regular file (character device): not replaced", dev);
                write_file_expect(A, dev, want);
                assert_int_equal(lstat(dev, &st), 0);
                assert_true(S_ISCHR(st.st_mode));
                unlink(dev);
        } else
                print_message("no character device case: mknod: %s\n", strerror(errno));
        snprintf(want, sizeof want, "open %s: is a directory", A->dir);
        write_file_expect(A, A->dir, want);

        /* The agent's own name, through /proc, and back. */
        char comm[64], name[64] = "";
        snprintf(comm, sizeof comm, "/proc/%d/comm", (int) A->pid);
        write_file_expect(A, comm, NULL);
        FILE *f = fopen(comm, "re");
        assert_non_null(f);
        assert_non_null(fgets(name, sizeof name, f));
        fclose(f);
        assert_string_equal(name, "hostile\n");
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_deadline_in(BOUND_MS);
        vsock_conn *c = dial();
        assert_int_equal(vsock_write_file(c, comm, "vsock-agent", 11, 0, &call), 0);
        vsock_conn_close(c);
}

/* A streamed write refused after it made 100 directories leaves none; a
 * listing over the reply limit is an error that says so. */
static void test_write_dirs_and_list_cap(void **state) {
        struct buf path = BUF_INIT(0);
        char top[160];
        snprintf(top, sizeof top, "%s/deep", A->dir);
        assert_int_equal(buf_append_str(&path, top), 0);
        for (int i = 0; i < 100; i++)
                assert_int_equal(buf_append_str(&path, "/d"), 0);
        assert_int_equal(buf_append_str(&path, "/file"), 0);
        assert_int_equal(buf_append_byte(&path, 0), 0);
        size_t len;
        char *p = wf_payload((const char *) buf_head(&path), 1u << 20, 512u * 1024, "}", &len);
        struct reply r;
        enum outcome o = exchange(VSOCK_MSG_WRITE_FILE, p, len, &r);
        print_message("streamed write with junk under 100 new directories: %s: %s\n", outcome_names[o],
                      r.error ? r.error : "");
        assert_int_equal(o, OUT_ERROR);
        reply_clear(&r);
        free(p);
        buf_free(&path);
        assert_gone(top, "directories made for a refused write");

        char dir[160];
        snprintf(dir, sizeof dir, "%s/wide", A->dir);
        /* 250-byte names: about 300 bytes of JSON each, 125k of them. */
        fill_dir(dir, 125000, 249);
        struct timed_file_op t = { 0 };
        pthread_t th;
        timed_file_op_start(&t, &th, A, VSOCK_MSG_LIST_FILES, dir);
        timed_file_op_join(&t, th);
        char want[300];
        snprintf(want, sizeof want, "list_files %s: too many entries: the listing exceeds the reply limit of 32 MiB",
                 dir);
        print_message("listing of 125k long names: %lld ms: %s\n", (long long) t.ms, t.r.error ? t.r.error : "");
        assert_true(t.r.got_file);
        assert_non_null(t.r.error);
        assert_string_equal(t.r.error, want);
        reply_clear(&t.r);
        remove_tree(dir);
}

/* ---- the memory budget: hosts that never read ---------------------------------- */

#define ATTACKERS 24
#define ATTACK_BUDGET_MIB 64
/* What the agent may hold beyond its budget: code, stacks, per-session
 * state, malloc's slack, huge-page rounding. */
#define BUDGET_OVERHEAD_KB (32L * 1024)
#define ATTACK_SEND_TIMEOUT_S 4

/* Whether the agent has answered on @c: its reply's first bytes are in
 * the socket (peeked: nothing is read). The peeked text goes to @text. */
static bool answered(vsock_conn *c, char *text, size_t size) {
        ssize_t n = recv(vsock_conn_fd(c), text, size - 1, MSG_PEEK | MSG_DONTWAIT);
        text[n > 0 ? n : 0] = '\0';
        return n >= (ssize_t) VSOCK_FRAME_HEADER_SIZE;
}

/* Whether the agent closed @c (it dropped the connection). */
static bool dropped(vsock_conn *c) {
        struct pollfd p = { .fd = vsock_conn_fd(c), .events = POLLIN | POLLRDHUP };
        return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR));
}

/* The replies' beginnings (FileResult JSON, or ExecResult JSON) say
 * whether the budget refused or cut: count those. */
static unsigned count_refused(vsock_conn **c, size_t n) {
        unsigned k = 0;
        for (size_t i = 0; i < n; i++) {
                char t[512];
                if (answered(c[i], t, sizeof t) && memmem(t, sizeof t, "budget exhausted", 16))
                        k++;
        }
        return k;
}

/* Until every attacker has its answer in its socket (bounded). */
static void wait_all_answered(vsock_conn **c, size_t n) {
        int64_t end = mono_ms() + 3 * BOUND_MS;
        for (size_t i = 0; i < n; i++) {
                char t[16];
                while (!answered(c[i], t, sizeof t)) {
                        if (mono_ms() > end)
                                fail_msg("attacker %zu: no answer", i);
                        pause_ms(10);
                }
        }
}

/* `true` @n times while the attack holds: every one answers (within the
 * hang bound); the median and the slowest are printed. */
static void probe_true(struct agent *a, const char *what) {
        int64_t ms[5];
        for (int i = 0; i < 5; i++) {
                int64_t t0 = mono_ms();
                int r = agent_exec_true(a, BOUND_MS);
                ms[i] = mono_ms() - t0;
                if (r < 0)
                        fail_msg("%s: concurrent `true`: %s", what, vsock_strerror(r));
        }
        for (int i = 1; i < 5; i++)
                for (int j = i; j > 0 && ms[j] < ms[j - 1]; j--) {
                        int64_t t = ms[j];
                        ms[j] = ms[j - 1];
                        ms[j - 1] = t;
                }
        print_message("%s: concurrent `true` median %lld ms, max %lld ms\n", what, (long long) ms[2],
                      (long long) ms[4]);
}

static void assert_rss_under_budget(struct agent *a, long base_kb, const char *what) {
        long rss = proc_rss_kb(a->pid);
        print_message("%s: agent RSS %ld kB (baseline %ld kB, budget %d MiB)\n", what, rss, base_kb,
                      ATTACK_BUDGET_MIB);
#ifndef UNDER_ASAN
        if (rss < 0 || rss > base_kb + ATTACK_BUDGET_MIB * 1024L + BUDGET_OVERHEAD_KB)
                fail_msg("%s: agent RSS %ld kB, baseline %ld kB, budget %d MiB", what, rss, base_kb,
                         ATTACK_BUDGET_MIB);
#endif
}

/* Wait (bounded) until the agent's RSS is back within the usual slack of
 * its baseline: what the attack made it hold is given back. */
static void wait_rss_back(struct agent *a, long base_kb, int bound_ms, const char *what) {
        int64_t t0 = mono_ms();
        long rss = proc_rss_kb(a->pid);
#ifdef UNDER_ASAN
        (void) bound_ms; /* RSS says nothing under ASan */
#else
        int64_t end = t0 + bound_ms;
        while (rss < 0 || rss > base_kb + RSS_SLACK_KB) {
                if (mono_ms() > end)
                        fail_msg("%s: agent RSS %ld kB, baseline %ld kB", what, rss, base_kb);
                pause_ms(20);
                rss = proc_rss_kb(a->pid);
        }
#endif
        print_message("%s: RSS %ld kB after %lld ms\n", what, rss, (long long) (mono_ms() - t0));
}

static struct agent *budget_agent(long *ret_base_kb) {
        static const char *const opts[] = { "--memory-budget", "64", "--send-timeout", "4", NULL };
        _Static_assert(ATTACK_BUDGET_MIB == 64 && ATTACK_SEND_TIMEOUT_S == 4, "the options above");
        struct agent *b = B = agent_start(opts, 0);
        assert_non_null(b);
        assert_int_equal(agent_warm_up(b), 0);
        *ret_base_kb = proc_rss_kb(b->pid);
        return b;
}

/* 24 hosts ask for a 16 MiB file each and never read: the agent holds at
 * most its budget (the others get "agent memory budget exhausted"), keeps
 * serving, and drops the stalled hosts after the send timeout, which
 * frees their memory; then a full read works again. */
static void test_budget_readfile(void **state) {
        long base_kb;
        struct agent *b = budget_agent(&base_kb);
        char path[160], req[256];
        snprintf(path, sizeof path, "%s/big", b->dir);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, FILES_READ_MAX_TEST), 0);
        close(fd);
        int n = snprintf(req, sizeof req, "{\"path\":\"%s\"}", path);
        vsock_conn *c[ATTACKERS];
        int64_t t0 = mono_ms();
        for (int i = 0; i < ATTACKERS; i++) {
                c[i] = dial_a(b);
                assert_int_equal(vsock_write_message(c[i], VSOCK_MSG_READ_FILE, req, (size_t) n), 0);
        }
        wait_all_answered(c, ATTACKERS);
        print_message("%d ReadFiles of 16 MiB answered in %lld ms, %u refused by the budget\n", ATTACKERS,
                      (long long) (mono_ms() - t0), count_refused(c, ATTACKERS));
        assert_true(count_refused(c, ATTACKERS) >= ATTACKERS - ATTACK_BUDGET_MIB / 16);
        assert_rss_under_budget(b, base_kb, "24 stalled ReadFiles");
        probe_true(b, "24 stalled ReadFiles");
        /* The stalled hosts are dropped after the send timeout. */
        int64_t end = mono_ms() + ATTACK_SEND_TIMEOUT_S * 1000 + 3 * BOUND_MS;
        for (int i = 0; i < ATTACKERS; i++) {
                while (!dropped(c[i])) {
                        if (mono_ms() > end)
                                fail_msg("attacker %d: still connected", i);
                        pause_ms(20);
                }
        }
        wait_rss_back(b, base_kb, BOUND_MS, "stalled ReadFiles dropped");
        for (int i = 0; i < ATTACKERS; i++)
                vsock_conn_close(c[i]);
        /* A host that reads gets the whole file again. */
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_deadline_in(BOUND_MS);
        uint8_t *data = NULL;
        size_t len = 0;
        int r = vsock_read_file_at(b->exec_addr, path, &call, &data, &len);
        if (r < 0)
                fail_msg("read after the attack: %s (%s)", vsock_strerror(r), call.remote_error);
        assert_int_equal(len, FILES_READ_MAX_TEST);
        free(data);
        unlink(path);
        assert_clean(b);
        assert_int_equal(agent_stop(b, BOUND_MS, NULL), 0);
        B = NULL;
}

/* 24 hosts run a batch command with 16 MiB of output each and never
 * read: output past the budget is cut (the reply says so), the agent holds
 * at most its budget and keeps serving; once the hosts go away, the memory
 * is given back. */
static void test_budget_batch_output(void **state) {
        long base_kb;
        struct agent *b = budget_agent(&base_kb);
        struct marker mk;
        marker_new(&mk, MARKER_KEY);
        char *args[] = { "-c", "16777216", "/dev/zero" };
        struct vsock_exec_request req = { .command = "head", .args = args, .n_args = 3, .env = &mk.env, .n_env = 1 };
        vsock_conn *c[ATTACKERS];
        int64_t t0 = mono_ms();
        for (int i = 0; i < ATTACKERS; i++) {
                c[i] = dial_a(b);
                assert_int_equal(send_exec_request(c[i], VSOCK_MSG_EXEC, &req), 0);
        }
        wait_all_answered(c, ATTACKERS);
        long rss_kb = proc_rss_kb(b->pid);
        print_message("%d batch commands of 16 MiB output answered in %lld ms, agent RSS %ld kB\n", ATTACKERS,
                      (long long) (mono_ms() - t0), rss_kb);
        assert_rss_under_budget(b, base_kb, "24 stalled batch results");
        probe_true(b, "24 stalled batch results");
        /* Each reply says whether it was cut: read half of them. */
        unsigned cut = 0, whole = 0;
        for (int i = 0; i < ATTACKERS / 2; i++) {
                struct reply r;
                reply_init(&r);
                while (!r.got_result && reply_read_one(c[i], &r) == 0)
                        ;
                assert_true(r.got_result);
                assert_int_equal(r.exit_code, 0);
                if (r.error && strstr(r.error, "output truncated: agent memory budget exhausted (64 MiB)"))
                        cut++;
                else if (!r.error && buf_size(&r.out) == 16777216)
                        whole++;
                else
                        fail_msg("attacker %d: %zu bytes, error \"%s\"", i, buf_size(&r.out), r.error ? r.error : "");
                reply_clear(&r);
        }
        print_message("%u results cut by the budget, %u whole\n", cut, whole);
        assert_true(cut >= ATTACKERS / 2 - 2);
        /* The others go away without reading. */
        for (int i = 0; i < ATTACKERS; i++)
                vsock_conn_close(c[i]);
        wait_rss_back(b, base_kb, BOUND_MS, "batch attackers gone");
        probe_true(b, "after the batch attack");
        assert_clean(b);
        assert_int_equal(agent_stop(b, BOUND_MS, NULL), 0);
        B = NULL;
}

/* ---- extension messages (PROTOCOL.md Part 2) --------------------------------- */

/* The agent's limits on an extension request frame (src/agent/serve/ext.h). */
#define EXT_HELLO_MAX_TEST (64u * 1024)
#define EXT_REQUEST_MAX_TEST (1u * 1024 * 1024)
#define EXT_PROC_START_MAX_TEST (16u * 1024 * 1024)

/* What the agent must do with a hostile extension frame. */
enum ext_verdict {
        EV_CLOSED,      /* close without a frame, as a base agent does */
        EV_ERROR,       /* Error with the code; the connection serves the next request */
        EV_ERROR_CLOSE, /* Error with the code, then close (EPROTO, ELIMIT, an op that owns the connection) */
        EV_IGNORED,     /* nothing; the connection serves the next request */
};

static const char *const ext_verdict_names[] = { "closed", "error", "error+close", "ignored" };

struct ext_case {
        const char *what;
        bool hello;             /* sent on a connection that said Hello */
        uint8_t type;
        const char *payload;
        size_t len;             /* of @payload */
        uint32_t announce;      /* > 0: a header announcing this many bytes, nothing more */
        enum ext_verdict verdict;
        const char *code;       /* the Error's code */
};

#define EXT_PAYLOAD(s) s, sizeof(s) - 1

/* Hello as the library sends it, and the agent's reply read. */
static void ext_hello_on(vsock_conn *c) {
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_now_ns() + (int64_t) BOUND_MS * 1000000;
        int r = vsock_hello(c, &call, NULL);
        if (r < 0)
                fail_msg("Hello: %s (%s)", vsock_strerror(r), call.remote_error);
}

static vsock_conn *ext_dial(bool hello) {
        vsock_conn *c = dial();
        if (hello)
                ext_hello_on(c);
        return c;
}

/* The next frame (which may be none: the agent closed). Returns the type,
 * 0 when the connection ended; an Error's code goes to @code ("" for
 * other frames), "closed" or the read error's text when there was none.
 * A hang fails at the connection's bound instead of passing as "closed". */
static uint8_t ext_read_verdict(vsock_conn *c, char *code, size_t size, char *msg, size_t msg_size) {
        uint8_t t;
        uint8_t *d = NULL;
        uint32_t n;
        msg[0] = '\0';
        int r = vsock_read_message(c, &t, &d, &n);
        if (r < 0) {
                int e = vsock_err_errno(r);
                if (vsock_err_kind(r) != VSOCK_E_CLOSED && e != EPIPE && e != ECONNRESET)
                        fail_msg("reading the reply: %s (a hang?)", vsock_strerror(r));
                snprintf(code, size, "closed");
                return 0;
        }
        code[0] = '\0';
        if (t == EXT_MSG_ERROR) {
                struct ext_error e;
                const char *why = NULL;
                if (ext_error_decode(d, n, &e, &why) < 0)
                        fail_msg("an Error that does not decode: %s", why);
                snprintf(code, size, "%s", e.code);
                snprintf(msg, msg_size, "%s", e.message);
                ext_error_clear(&e);
        }
        free(d);
        return t;
}

static void ext_expect_closed(vsock_conn *c, const char *what) {
        char code[32], msg[256];
        uint8_t t = ext_read_verdict(c, code, sizeof code, msg, sizeof msg);
        if (t != 0)
                fail_msg("%s: frame type %u (%s) instead of the agent closing", what, t, code);
}

/* A stat of "/" on @c: answered with FsReply. */
static void ext_stat_root(vsock_conn *c, const char *what) {
        static const char req[] = "{\"op\":\"stat\",\"path\":\"/\"}";
        if (vsock_write_message(c, EXT_MSG_FS_REQUEST, req, sizeof req - 1) < 0)
                fail_msg("%s: the connection no longer takes requests", what);
        char code[32], msg[256];
        uint8_t t = ext_read_verdict(c, code, sizeof code, msg, sizeof msg);
        if (t != EXT_MSG_FS_REPLY)
                fail_msg("%s: a stat got type %u (%s %s) instead of FsReply", what, t, code, msg);
}

/* One case: a bystander connection (after Hello) has a request in flight
 * while the hostile frame goes in; the hostile connection gets its
 * verdict, and the bystander its answer. */
static void ext_case_run(const struct ext_case *k) {
        char what[160];
        const char *tn = ext_msg_type_name(k->type);
        snprintf(what, sizeof what, "%s (type %u %s, %s)", k->what, k->type, tn ? tn : "unassigned",
                 k->hello ? "after Hello" : "without Hello");
        vsock_conn *by = ext_dial(true);
        vsock_conn *c = ext_dial(k->hello);
        static const char stat_req[] = "{\"op\":\"stat\",\"path\":\"/\"}";
        assert_int_equal(vsock_write_message(by, EXT_MSG_FS_REQUEST, stat_req, sizeof stat_req - 1), 0);
        if (k->announce) {
                uint8_t hdr[VSOCK_FRAME_HEADER_SIZE];
                vsock_frame_header(hdr, k->type, k->announce);
                assert_int_equal(vsock_conn_write(c, hdr, sizeof hdr), 0);
        } else
                assert_int_equal(vsock_write_message(c, k->type, k->payload, k->len), 0);

        char code[32], msg[256] = "";
        uint8_t t = 0;
        switch (k->verdict) {
        case EV_CLOSED:
                ext_expect_closed(c, what);
                break;
        case EV_ERROR:
        case EV_ERROR_CLOSE:
                t = ext_read_verdict(c, code, sizeof code, msg, sizeof msg);
                if (t != EXT_MSG_ERROR || strcmp(code, k->code) != 0)
                        fail_msg("%s: type %u %s instead of Error %s", what, t, code, k->code);
                /* A clear reply: it says what was wrong. */
                if (strlen(msg) < 8)
                        fail_msg("%s: Error %s with the message \"%s\"", what, code, msg);
                if (k->verdict == EV_ERROR_CLOSE)
                        ext_expect_closed(c, what);
                else
                        ext_stat_root(c, what);
                break;
        case EV_IGNORED:
                ext_stat_root(c, what);
                break;
        }
        /* The bystander was served meanwhile, and still is. */
        char by_code[32], by_msg[256];
        t = ext_read_verdict(by, by_code, sizeof by_code, by_msg, sizeof by_msg);
        if (t != EXT_MSG_FS_REPLY)
                fail_msg("%s: the concurrent stat got type %u (%s) instead of FsReply", what, t, by_code);
        ext_stat_root(by, what);
        print_message("%-60s %s%s%s%s%s\n", what, ext_verdict_names[k->verdict], k->code ? " " : "",
                      k->code ? k->code : "", msg[0] ? ": " : "", msg);
        vsock_conn_close(c);
        vsock_conn_close(by);
}

/* Every request type the host may send, with a payload that would be
 * well-formed (for the cases that need one). */
static const struct {
        uint8_t type;
        const char *json;
        const char *wrong;      /* the same with a field of the wrong JSON type */
} ext_requests[] = {
        { EXT_MSG_FS_REQUEST, "{\"op\":\"stat\",\"path\":\"/\"}", "{\"op\":\"stat\",\"path\":[\"/\"]}" },
        { EXT_MSG_LIST_DIR, "{\"path\":\"/\"}", "{\"path\":\"/\",\"limit\":\"10\"}" },
        { EXT_MSG_FILE_GET, "{\"path\":\"/etc/hostname\",\"window\":4096}", "{\"path\":\"/etc/hostname\",\"window\":-1}" },
        { EXT_MSG_FILE_PUT, "{\"path\":\"/nonexistent-hostile/f\"}", "{\"path\":\"/nonexistent-hostile/f\",\"resume\":1}" },
        { EXT_MSG_TAR_GET, "{\"path\":\"/etc\",\"window\":4096}", "{\"path\":\"/etc\",\"window\":\"4096\"}" },
        { EXT_MSG_TAR_PUT, "{\"path\":\"/nonexistent-hostile/d\"}", "{\"path\":\"/nonexistent-hostile/d\",\"preserve_owner\":\"yes\"}" },
        { EXT_MSG_PROC_START, "{\"command\":\"true\"}", "{\"command\":\"true\",\"env\":[\"A=1\"]}" },
        { EXT_MSG_PROC_LIST, "{}", "{\"tag\":5}" },
        { EXT_MSG_PROC_ATTACH, "{\"id\":1}", "{\"id\":1.5}" },
        { EXT_MSG_PROC_CONTROL, "{\"id\":1,\"op\":\"signal\",\"signal\":0}", "{\"id\":1,\"op\":\"signal\",\"signal\":\"TERM\"}" },
        { EXT_MSG_PROC_WAIT, "{\"id\":1}", "{\"id\":1,\"timeout_ms\":{}}" },
        { EXT_MSG_FWD_LISTEN, "{\"listen\":\"tcp:127.0.0.1:0\"}", "{\"listen\":\"tcp:127.0.0.1:0\",\"backlog\":true}" },
        { EXT_MSG_FWD_ATTACH, "{\"id\":1}", "{\"id\":\"1\"}" },
        { EXT_MSG_FWD_CONNECT, "{\"port\":1}", "{\"port\":65536}" },
};

/* Types only the agent sends, and numbers no version defines: ENOSYS
 * after Hello, and the connection goes on. */
static const uint8_t ext_not_requests[] = {
        EXT_MSG_HELLO_REPLY, EXT_MSG_ERROR,      EXT_MSG_FS_REPLY,  EXT_MSG_LIST_REPLY,
        EXT_MSG_STREAM_START, EXT_MSG_PROC_INFO, EXT_MSG_PROC_LIST_REPLY, EXT_MSG_PROC_OUTPUT,
        EXT_MSG_PROC_GAP,    EXT_MSG_PROC_END,   EXT_MSG_FWD_EVENT, 79, 94, 100, 127,
};

/* Every extension type the host may send: before Hello, as bad JSON,
 * with a field of the wrong type, oversized at its header, and out of
 * state or out of range; and every type it may not send. Each gets its
 * verdict (PROTOCOL.md 2.2, 2.3, 2.10) while a concurrent request on
 * another connection is still answered. */
static void test_ext_every_type(void **state) {
        (void) state;
        /* Generic: each request type. */
        for (size_t i = 0; i < sizeof ext_requests / sizeof ext_requests[0]; i++) {
                uint8_t type = ext_requests[i].type;
                uint32_t max = type == EXT_MSG_PROC_START ? EXT_PROC_START_MAX_TEST : EXT_REQUEST_MAX_TEST;
                const struct ext_case cases[] = {
                        { "a well-formed request", false, type, ext_requests[i].json, strlen(ext_requests[i].json),
                          0, EV_CLOSED, NULL },
                        { "JSON cut short", true, type, EXT_PAYLOAD("{\"path\":"), 0, EV_ERROR_CLOSE, "EPROTO" },
                        { "not JSON", true, type, EXT_PAYLOAD("\x01\xff garbage"), 0, EV_ERROR_CLOSE, "EPROTO" },
                        { "an array, not an object", true, type, EXT_PAYLOAD("[]"), 0, EV_ERROR_CLOSE, "EPROTO" },
                        { "an empty payload", true, type, NULL, 0, 0, EV_ERROR_CLOSE, "EPROTO" },
                        { "a field of the wrong type", true, type, ext_requests[i].wrong,
                          strlen(ext_requests[i].wrong), 0, EV_ERROR_CLOSE, "EPROTO" },
                        { "oversized", true, type, NULL, 0, max + 1, EV_ERROR_CLOSE, "ELIMIT" },
                        { "oversized", false, type, NULL, 0, max + 1, EV_CLOSED, NULL },
                };
                for (size_t j = 0; j < sizeof cases / sizeof cases[0]; j++)
                        ext_case_run(&cases[j]);
        }
        /* Types the host may not send. */
        for (size_t i = 0; i < sizeof ext_not_requests / sizeof ext_not_requests[0]; i++) {
                uint8_t type = ext_not_requests[i];
                const struct ext_case cases[] = {
                        { "not a request", true, type, EXT_PAYLOAD("{}"), 0, EV_ERROR, "ENOSYS" },
                        { "not a request", false, type, EXT_PAYLOAD("{}"), 0, EV_CLOSED, NULL },
                };
                for (size_t j = 0; j < sizeof cases / sizeof cases[0]; j++)
                        ext_case_run(&cases[j]);
        }
        /* Per type: Hello itself, the stream frames out of a stream, and
         * requests that decode but ask for something wrong or absent. */
        static const struct ext_case cases[] = {
                { "cut short", false, EXT_MSG_HELLO, EXT_PAYLOAD("{\"version\":"), 0, EV_CLOSED, NULL },
                { "version of the wrong type", false, EXT_MSG_HELLO, EXT_PAYLOAD("{\"version\":\"1\"}"), 0, EV_CLOSED, NULL },
                { "version 0", false, EXT_MSG_HELLO, EXT_PAYLOAD("{\"version\":0}"), 0, EV_CLOSED, NULL },
                { "oversized", false, EXT_MSG_HELLO, NULL, 0, EXT_HELLO_MAX_TEST + 1, EV_CLOSED, NULL },
                { "a second Hello", true, EXT_MSG_HELLO, EXT_PAYLOAD("{\"version\":1}"), 0, EV_CLOSED, NULL },
                { "Data without a stream", true, EXT_MSG_DATA, EXT_PAYLOAD("bytes"), 0, EV_ERROR_CLOSE, "EPROTO" },
                { "an empty Data without a stream", true, EXT_MSG_DATA, NULL, 0, 0, EV_ERROR_CLOSE, "EPROTO" },
                { "Data", false, EXT_MSG_DATA, EXT_PAYLOAD("bytes"), 0, EV_CLOSED, NULL },
                { "oversized Data", true, EXT_MSG_DATA, NULL, 0, EXT_REQUEST_MAX_TEST + 1, EV_ERROR_CLOSE, "ELIMIT" },
                { "Done without a stream", true, EXT_MSG_DONE, EXT_PAYLOAD("{\"size\":0,\"sha256\":\"\"}"), 0,
                  EV_ERROR_CLOSE, "EPROTO" },
                { "Done, bad JSON, without a stream", true, EXT_MSG_DONE, EXT_PAYLOAD("{"), 0, EV_ERROR_CLOSE, "EPROTO" },
                { "Done", false, EXT_MSG_DONE, EXT_PAYLOAD("{}"), 0, EV_CLOSED, NULL },
                /* A Credit in flight when a download ended is dropped. */
                { "Credit without a stream", true, EXT_MSG_CREDIT, EXT_PAYLOAD("\x00\x00\x10\x00"), 0, EV_IGNORED, NULL },
                { "a short Credit without a stream", true, EXT_MSG_CREDIT, EXT_PAYLOAD("\x00\x10"), 0, EV_IGNORED, NULL },
                { "Credit", false, EXT_MSG_CREDIT, EXT_PAYLOAD("\x00\x00\x10\x00"), 0, EV_CLOSED, NULL },
                { "oversized Credit", true, EXT_MSG_CREDIT, NULL, 0, EXT_REQUEST_MAX_TEST + 1, EV_ERROR_CLOSE, "ELIMIT" },
                { "an unknown op", true, EXT_MSG_FS_REQUEST, EXT_PAYLOAD("{\"op\":\"format\",\"path\":\"/\"}"), 0,
                  EV_ERROR, "ENOSYS" },
                { "a relative path", true, EXT_MSG_FS_REQUEST, EXT_PAYLOAD("{\"op\":\"stat\",\"path\":\"etc\"}"), 0,
                  EV_ERROR, "EINVAL" },
                { "a forged cursor", true, EXT_MSG_LIST_DIR, EXT_PAYLOAD("{\"path\":\"/\",\"cursor\":\"not-a-cursor\"}"),
                  0, EV_ERROR, "EINVAL" },
                { "a negative limit", true, EXT_MSG_LIST_DIR, EXT_PAYLOAD("{\"path\":\"/\",\"limit\":-1}"), 0, EV_ERROR,
                  "EINVAL" },
                { "window 0", true, EXT_MSG_FILE_GET, EXT_PAYLOAD("{\"path\":\"/etc/hostname\",\"window\":0}"), 0,
                  EV_ERROR, "ELIMIT" },
                { "a missing file", true, EXT_MSG_FILE_GET,
                  EXT_PAYLOAD("{\"path\":\"/nonexistent-hostile/f\",\"window\":4096}"), 0, EV_ERROR, "ENOENT" },
                { "a directory", true, EXT_MSG_FILE_GET, EXT_PAYLOAD("{\"path\":\"/\",\"window\":4096}"), 0, EV_ERROR,
                  "EISDIR" },
                { "a malformed upload id", true, EXT_MSG_FILE_PUT,
                  EXT_PAYLOAD("{\"path\":\"/nonexistent-hostile/f\",\"upload_id\":\"../x\"}"), 0, EV_ERROR, "EINVAL" },
                { "a mode beyond 07777", true, EXT_MSG_FILE_PUT,
                  EXT_PAYLOAD("{\"path\":\"/nonexistent-hostile/f\",\"mode\":33188}"), 0, EV_ERROR, "EINVAL" },
                { "window beyond window_max", true, EXT_MSG_TAR_GET,
                  EXT_PAYLOAD("{\"path\":\"/etc\",\"window\":4294967295}"), 0, EV_ERROR, "ELIMIT" },
                { "a relative path", true, EXT_MSG_TAR_PUT, EXT_PAYLOAD("{\"path\":\"rel\"}"), 0, EV_ERROR, "EINVAL" },
                { "a malformed tag", true, EXT_MSG_PROC_START, EXT_PAYLOAD("{\"command\":\"true\",\"tag\":\"a b\"}"), 0,
                  EV_ERROR, "EINVAL" },
                { "a ring beyond ring_max", true, EXT_MSG_PROC_START,
                  EXT_PAYLOAD("{\"command\":\"true\",\"ring\":4294967295}"), 0, EV_ERROR, "ELIMIT" },
                { "an unknown id", true, EXT_MSG_PROC_ATTACH, EXT_PAYLOAD("{\"id\":987654321}"), 0, EV_ERROR_CLOSE,
                  "ENOENT" },
                /* Integers travel within int64 (PROTOCOL.md 2.1). */
                { "an id beyond int64", true, EXT_MSG_PROC_ATTACH, EXT_PAYLOAD("{\"id\":18446744073709551615}"), 0,
                  EV_ERROR_CLOSE, "EPROTO" },
                { "an unknown tag", true, EXT_MSG_PROC_ATTACH, EXT_PAYLOAD("{\"tag\":\"no-such-hostile-tag\"}"), 0,
                  EV_ERROR_CLOSE, "ENOENT" },
                { "an unknown id", true, EXT_MSG_PROC_CONTROL,
                  EXT_PAYLOAD("{\"id\":987654321,\"op\":\"signal\",\"signal\":9}"), 0, EV_ERROR, "ENOENT" },
                { "neither id nor tag", true, EXT_MSG_PROC_CONTROL, EXT_PAYLOAD("{\"op\":\"remove\"}"), 0, EV_ERROR,
                  "EINVAL" },
                { "an unknown tag", true, EXT_MSG_PROC_WAIT, EXT_PAYLOAD("{\"tag\":\"no-such-hostile-tag\"}"), 0,
                  EV_ERROR, "ENOENT" },
                { "an unknown scheme", true, EXT_MSG_FWD_LISTEN, EXT_PAYLOAD("{\"listen\":\"udp:127.0.0.1:0\"}"), 0,
                  EV_ERROR_CLOSE, "EINVAL" },
                { "a relative unix path", true, EXT_MSG_FWD_LISTEN, EXT_PAYLOAD("{\"listen\":\"unix:rel.sock\"}"), 0,
                  EV_ERROR_CLOSE, "EINVAL" },
                { "an id never issued", true, EXT_MSG_FWD_ATTACH, EXT_PAYLOAD("{\"id\":987654321}"), 0,
                  EV_ERROR_CLOSE, "ENOENT" },
                { "both port and unix", true, EXT_MSG_FWD_CONNECT, EXT_PAYLOAD("{\"port\":80,\"unix\":\"/x\"}"), 0,
                  EV_ERROR_CLOSE, "EINVAL" },
                { "a relative unix path", true, EXT_MSG_FWD_CONNECT, EXT_PAYLOAD("{\"unix\":\"rel.sock\"}"), 0,
                  EV_ERROR_CLOSE, "EINVAL" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
                ext_case_run(&cases[i]);
        /* Nothing an upload case refused was created. */
        assert_int_equal(access("/nonexistent-hostile", F_OK), -1);
}

static struct vsock_call ext_call(void) {
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_now_ns() + (int64_t) BOUND_MS * 1000000;
        return call;
}

/* A guest client of a forwarding listener on 127.0.0.1:@port. */
static int ext_guest_client(uint16_t port) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        return fd;
}

/* Requests that name something that was, but is no more: a forwarded
 * connection's id once attached, or once its listener ended; a process
 * after its record was removed. Error ENOENT, nothing else touched, and
 * the agent serves on. */
static void test_ext_stale_ids(void **state) {
        (void) state;
        struct vsock_call call = ext_call();
        char addr[128], json[128];

        /* A listener, one guest client, its id attached once. */
        vsock_conn *ctl = ext_dial(false);
        assert_int_equal(vsock_fwd_listen(ctl, "tcp:127.0.0.1:0", 4, &call, addr, sizeof addr), 0);
        const char *colon = strrchr(addr, ':');
        assert_non_null(colon);
        uint16_t port = (uint16_t) atoi(colon + 1);
        int g1 = ext_guest_client(port);
        struct vsock_fwd_event ev;
        assert_int_equal(vsock_fwd_next_event(ctl, &call, &ev), 0);
        assert_string_equal(ev.event, "accepted");
        uint64_t used = ev.id;
        vsock_conn *att = ext_dial(false);
        assert_int_equal(vsock_fwd_attach(att, used, &call), 0);
        /* Attached: bytes pass. */
        assert_int_equal(write(g1, "ping", 4), 4);
        char got[4];
        assert_int_equal(conn_read_all(att, got, sizeof got), 4);
        assert_memory_equal(got, "ping", 4);

        /* The used id again: ENOENT, and the agent closes. */
        snprintf(json, sizeof json, "{\"id\":%llu}", (unsigned long long) used);
        struct ext_case k = { "an id already attached", true, EXT_MSG_FWD_ATTACH, json, strlen(json), 0,
                              EV_ERROR_CLOSE, "ENOENT" };
        ext_case_run(&k);
        /* The attached connection is untouched by it. */
        assert_int_equal(write(g1, "pong", 4), 4);
        assert_int_equal(conn_read_all(att, got, sizeof got), 4);
        assert_memory_equal(got, "pong", 4);

        /* A second client, not attached; its listener ends (the control
         * connection closes), which closes the client: its id is stale. */
        int g2 = ext_guest_client(port);
        assert_int_equal(vsock_fwd_next_event(ctl, &call, &ev), 0);
        assert_string_equal(ev.event, "accepted");
        uint64_t orphan = ev.id;
        vsock_conn_close(ctl);
        struct pollfd pfd = { .fd = g2, .events = POLLIN };
        assert_int_equal(poll(&pfd, 1, BOUND_MS), 1);
        assert_true(read(g2, got, sizeof got) <= 0);
        snprintf(json, sizeof json, "{\"id\":%llu}", (unsigned long long) orphan);
        k = (struct ext_case) { "the id of an ended listener", true, EXT_MSG_FWD_ATTACH, json, strlen(json), 0,
                                EV_ERROR_CLOSE, "ENOENT" };
        ext_case_run(&k);
        close(g2);
        close(g1);
        vsock_conn_close(att);

        /* A process whose record was removed. */
        vsock_conn *c = ext_dial(true);
        struct vsock_proc_spec spec = { .req = { .command = "true" } };
        struct vsock_proc_info info;
        assert_int_equal(vsock_proc_start(c, &spec, &call, &info), 0);
        uint64_t id = info.id;
        vsock_proc_info_clear(&info);
        struct vsock_proc_end end;
        assert_int_equal(vsock_proc_wait(c, id, NULL, 0, &call, &end), 0);
        struct vsock_proc_control rm = { .op = VSOCK_PROC_REMOVE };
        assert_int_equal(vsock_proc_control(c, id, NULL, &rm, &call, NULL), 0);
        vsock_conn_close(c);
        snprintf(json, sizeof json, "{\"id\":%llu}", (unsigned long long) id);
        const struct ext_case removed[] = {
                { "a removed process", true, EXT_MSG_PROC_WAIT, json, strlen(json), 0, EV_ERROR, "ENOENT" },
                { "a removed process", true, EXT_MSG_PROC_ATTACH, json, strlen(json), 0, EV_ERROR_CLOSE, "ENOENT" },
        };
        for (size_t i = 0; i < sizeof removed / sizeof removed[0]; i++)
                ext_case_run(&removed[i]);
        snprintf(json, sizeof json, "{\"id\":%llu,\"op\":\"remove\"}", (unsigned long long) id);
        k = (struct ext_case) { "a removed process", true, EXT_MSG_PROC_CONTROL, json, strlen(json), 0, EV_ERROR,
                                "ENOENT" };
        ext_case_run(&k);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_frame_lengths, test_teardown),
                cmocka_unit_test_teardown(test_truncated_close, test_teardown),
                cmocka_unit_test_teardown(test_truncated_silence, test_teardown),
                cmocka_unit_test_teardown(test_unknown_first_type, test_teardown),
                cmocka_unit_test_teardown(test_json_malformed, test_teardown),
                cmocka_unit_test_teardown(test_json_deep, test_teardown),
                cmocka_unit_test_teardown(test_json_huge, test_teardown),
                cmocka_unit_test_teardown(test_json_huge_env, test_teardown),
                cmocka_unit_test_teardown(test_json_amplification, test_teardown),
                cmocka_unit_test_teardown(test_memory_returned, test_teardown),
                cmocka_unit_test_teardown(test_memory_mid_sizes, test_teardown),
                cmocka_unit_test_teardown(test_bad_binary_frames, test_teardown),
                cmocka_unit_test_teardown(test_frames_after_end, test_teardown),
                cmocka_unit_test_teardown(test_second_request, test_teardown),
                cmocka_unit_test_teardown(test_random_drops, test_teardown),
                cmocka_unit_test_teardown(test_never_reads, test_teardown),
                cmocka_unit_test_teardown(test_out_of_fds, test_teardown),
                cmocka_unit_test_teardown(test_disconnect_exec, test_teardown),
                cmocka_unit_test_teardown(test_disconnect_portfwd, test_teardown),
                cmocka_unit_test_teardown(test_disconnect_paused_input, test_teardown),
                cmocka_unit_test_teardown(test_disconnect_files, test_teardown),
                cmocka_unit_test_teardown(test_streamed_write_faults, test_teardown),
                cmocka_unit_test_teardown(test_sigterm_ignored, test_teardown),
                cmocka_unit_test_teardown(test_daemon, test_teardown),
                cmocka_unit_test_teardown(test_agent_sigterm, test_teardown),
                cmocka_unit_test_teardown(test_stalled_fs_exec, test_teardown),
                cmocka_unit_test_teardown(test_stalled_fs_exec_pidns, test_teardown),
                cmocka_unit_test_teardown(test_stalled_fs_files, test_teardown),
                cmocka_unit_test_teardown(test_io_uring_denied, test_teardown),
                cmocka_unit_test_teardown(test_no_controlling_terminal, test_teardown),
                cmocka_unit_test_teardown(test_pidns_init_memory, test_teardown),
                cmocka_unit_test_teardown(test_escape_heavy_request, test_teardown),
                cmocka_unit_test_teardown(test_write_special_files, test_teardown),
                cmocka_unit_test_teardown(test_write_dirs_and_list_cap, test_teardown),
                cmocka_unit_test_teardown(test_budget_readfile, test_teardown),
                cmocka_unit_test_teardown(test_budget_batch_output, test_teardown),
                cmocka_unit_test_teardown(test_ext_every_type, test_teardown),
                cmocka_unit_test_teardown(test_ext_stale_ids, test_teardown),
        };
        /* HOSTILE_ONLY / HOSTILE_SKIP=test_name (a glob) select a subset. */
        if (getenv("HOSTILE_ONLY"))
                cmocka_set_test_filter(getenv("HOSTILE_ONLY"));
        if (getenv("HOSTILE_SKIP"))
                cmocka_set_skip_filter(getenv("HOSTILE_SKIP"));
        return cmocka_run_group_tests_name("hostile", tests, group_setup, group_teardown);
}
