/* The extension protocol (PROTOCOL.md Part 2) against the real agent
 * ($AGENT) on temporary unix sockets: negotiation and its order rules,
 * the Error frame, and the library's side (vsock_hello, the caps cache,
 * pipelined extension requests). Raw frames where the order of bytes on
 * the wire is the point. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <vsock/vsock.h>

#include "agent-harness.h"
#include "lib/client-internal.h"
#include "lib/ext_msg.h"

#define BOUND_MS 20000 /* hang catcher for one exchange */

static struct agent *A;

static int group_setup(void **state) {
        (void) state;
        signal(SIGPIPE, SIG_IGN);
        umask(022);
        A = agent_start(NULL, 0);
        return A ? 0 : -1;
}

static int group_teardown(void **state) {
        (void) state;
        int r = agent_stop(A, BOUND_MS, NULL);
        A = NULL;
        return r;
}

static int test_teardown(void **state) {
        (void) state;
        int fds, kids;
        if (!agent_wait_clean(A, 10000, &fds, &kids))
                fail_msg("agent: %d fds (baseline %d), %d children", fds, A->baseline_fds, kids);
        vsock_caps_forget(NULL);
        return 0;
}

static vsock_conn *dial(void) {
        vsock_conn *c = NULL;
        assert_int_equal(agent_dial(A, BOUND_MS, &c), 0);
        return c;
}

/* ---- raw frames ------------------------------------------------------------------- */

static void send_hello(vsock_conn *c, int32_t version) {
        struct ext_hello h = { .version = version, .client = "test-ext-agent" };
        struct buf b = BUF_INIT(0);
        assert_int_equal(ext_hello_encode(&h, &b), 0);
        assert_int_equal(vsock_write_message(c, EXT_MSG_HELLO, buf_head(&b), buf_size(&b)), 0);
        buf_free(&b);
}

/* The next frame, which must be of @type; its payload (malloc'd). */
static uint8_t *expect_frame(vsock_conn *c, uint8_t type, uint32_t *ret_len) {
        uint8_t t;
        uint8_t *d = NULL;
        uint32_t n;
        int r = vsock_read_message(c, &t, &d, &n);
        if (r < 0)
                fail_msg("waiting for type %u: %s", type, vsock_strerror(r));
        if (t != type)
                fail_msg("type %u (%.*s) instead of %u", t, (int) n, d ? (const char *) d : "", type);
        *ret_len = n;
        return d;
}

static void expect_hello_reply(vsock_conn *c, struct ext_hello_reply *ret) {
        uint32_t n;
        uint8_t *d = expect_frame(c, EXT_MSG_HELLO_REPLY, &n);
        const char *why = NULL;
        if (ext_hello_reply_decode(d, n, ret, &why) < 0)
                fail_msg("HelloReply: %s", why);
        free(d);
}

static void expect_error(vsock_conn *c, const char *code) {
        uint32_t n;
        uint8_t *d = expect_frame(c, EXT_MSG_ERROR, &n);
        struct ext_error e;
        const char *why = NULL;
        if (ext_error_decode(d, n, &e, &why) < 0)
                fail_msg("Error: %s", why);
        free(d);
        if (strcmp(e.code, code) != 0)
                fail_msg("Error %s (%s) instead of %s", e.code, e.message, code);
        assert_true(e.message[0] != '\0');
        ext_error_clear(&e);
}

/* The agent closed: EOF (or a reset) before any frame. */
static void expect_closed(vsock_conn *c) {
        uint8_t t;
        uint8_t *d = NULL;
        uint32_t n;
        int r = vsock_read_message(c, &t, &d, &n);
        if (r >= 0)
                fail_msg("frame type %u instead of the agent closing", t);
        int e = vsock_err_errno(r);
        if (vsock_err_kind(r) != VSOCK_E_CLOSED && e != EPIPE && e != ECONNRESET)
                fail_msg("%s instead of the agent closing", vsock_strerror(r));
}

static bool has_feature(const struct ext_hello_reply *r, const char *name) {
        for (size_t i = 0; i < r->n_features; i++)
                if (strcmp(r->features[i], name) == 0)
                        return true;
        return false;
}

/* A batch `true` on a connection: proves it still serves. */
static void exec_true_on(vsock_conn *c) {
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_now_ns() + (int64_t) BOUND_MS * 1000000;
        struct vsock_exec_request req = { .command = "true" };
        struct vsock_exec_result res = {};
        int r = vsock_exec(c, &req, &call, &res);
        if (r < 0)
                fail_msg("exec: %s (%s)", vsock_strerror(r), call.remote_error);
        assert_int_equal(res.exit_code, 0);
        vsock_exec_result_clear(&res);
}

/* ---- negotiation ----------------------------------------------------------------- */

static void test_hello_reply(void **state) {
        (void) state;
        vsock_conn *c = dial();
        send_hello(c, 7); /* a newer host: the agent answers its own version */
        struct ext_hello_reply rep;
        expect_hello_reply(c, &rep);
        assert_int_equal(rep.version, EXT_VERSION);
        assert_true(strncmp(rep.agent, "vsock-agent ", 12) == 0);
        char boot[64] = "";
        int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_true(read(fd, boot, sizeof boot - 1) > 0);
        close(fd);
        boot[strcspn(boot, "\n")] = '\0';
        assert_string_equal(rep.boot_id, boot);
        assert_true(has_feature(&rep, "reuse"));
        assert_int_equal(rep.limits.max_payload, 16u << 20);
        assert_int_equal(rep.limits.list_page_max, 4096);
        assert_int_equal(rep.limits.procs_max, 64);
        assert_int_equal(rep.limits.ring_total_max, 64u << 20);
        ext_hello_reply_clear(&rep);
        /* A base request after Hello, twice: "reuse". */
        exec_true_on(c);
        exec_true_on(c);
        vsock_conn_close(c);
}

static void test_hello_order(void **state) {
        (void) state;
        /* A second Hello: closed. */
        vsock_conn *c = dial();
        send_hello(c, 1);
        struct ext_hello_reply rep;
        expect_hello_reply(c, &rep);
        ext_hello_reply_clear(&rep);
        send_hello(c, 1);
        expect_closed(c);
        vsock_conn_close(c);

        /* An extension request without Hello: closed, as a base agent would. */
        c = dial();
        static const char fs[] = "{\"op\":\"stat\",\"path\":\"/\"}";
        assert_int_equal(vsock_write_message(c, EXT_MSG_FS_REQUEST, fs, sizeof fs - 1), 0);
        expect_closed(c);
        vsock_conn_close(c);

        /* Hello after a base request on the same connection: closed. */
        c = dial();
        exec_true_on(c);
        send_hello(c, 1);
        expect_closed(c);
        vsock_conn_close(c);
}

/* Hello and a request in one write: both answered, in order. An extension
 * type the agent does not serve gets Error ENOSYS, and the connection
 * goes on. */
static void test_hello_pipelined(void **state) {
        (void) state;
        vsock_conn *c = dial();
        struct ext_hello h = { .version = 1 };
        struct buf b = BUF_INIT(0);
        uint8_t hdr[VSOCK_FRAME_HEADER_SIZE];
        struct buf json = BUF_INIT(0);
        assert_int_equal(ext_hello_encode(&h, &json), 0);
        vsock_frame_header(hdr, EXT_MSG_HELLO, (uint32_t) buf_size(&json));
        assert_int_equal(buf_append(&b, hdr, sizeof hdr), 0);
        assert_int_equal(buf_append(&b, buf_head(&json), buf_size(&json)), 0);
        vsock_frame_header(hdr, 127, 2); /* an extension type nobody defines */
        assert_int_equal(buf_append(&b, hdr, sizeof hdr), 0);
        assert_int_equal(buf_append(&b, "{}", 2), 0);
        assert_int_equal(vsock_conn_write(c, buf_head(&b), buf_size(&b)), 0);
        buf_free(&b);
        buf_free(&json);
        struct ext_hello_reply rep;
        expect_hello_reply(c, &rep);
        ext_hello_reply_clear(&rep);
        expect_error(c, "ENOSYS");
        exec_true_on(c);
        vsock_conn_close(c);
}

static void test_hello_hostile(void **state) {
        (void) state;
        /* Garbage, a wrong JSON type, version 0: closed without a reply. */
        static const char *const bad[] = { "{", "[]", "{\"version\":\"1\"}", "{\"version\":0}", "{\"version\":-3}",
                                           "{\"version\":1,\"features\":[1]}" };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                vsock_conn *c = dial();
                assert_int_equal(vsock_write_message(c, EXT_MSG_HELLO, bad[i], strlen(bad[i])), 0);
                expect_closed(c);
                vsock_conn_close(c);
        }
        /* An oversized Hello is refused at its header: 1 MiB announced,
         * nothing more sent, and the agent closes at once. */
        vsock_conn *c = dial();
        uint8_t hdr[VSOCK_FRAME_HEADER_SIZE];
        vsock_frame_header(hdr, EXT_MSG_HELLO, 1u << 20);
        assert_int_equal(vsock_conn_write(c, hdr, sizeof hdr), 0);
        expect_closed(c);
        vsock_conn_close(c);

        /* After Hello, an extension request over its limit: Error ELIMIT,
         * then the agent closes (the payload is never read). */
        c = dial();
        send_hello(c, 1);
        struct ext_hello_reply rep;
        expect_hello_reply(c, &rep);
        ext_hello_reply_clear(&rep);
        vsock_frame_header(hdr, EXT_MSG_FS_REQUEST, 8u << 20);
        assert_int_equal(vsock_conn_write(c, hdr, sizeof hdr), 0);
        expect_error(c, "ELIMIT");
        expect_closed(c);
        vsock_conn_close(c);

        /* The agent still serves. */
        assert_int_equal(agent_exec_true(A, BOUND_MS), 0);
}

/* ---- the library -------------------------------------------------------------------- */

static void test_lib_hello(void **state) {
        (void) state;
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_now_ns() + (int64_t) BOUND_MS * 1000000;
        struct vsock_caps caps = VSOCK_CAPS_INIT;
        assert_int_equal(vsock_caps_lookup(A->exec_addr, &caps), -ENOENT);
        int r = vsock_hello_at(A->exec_addr, &call, &caps);
        if (r < 0)
                fail_msg("hello: %s (%s)", vsock_strerror(r), call.remote_error);
        assert_int_equal(caps.version, 1);
        assert_true(caps.features & VSOCK_FEATURE_REUSE);
        assert_true(strncmp(caps.features_text, "reuse", 5) == 0);
        assert_int_equal(strlen(caps.boot_id), 36);
        assert_int_equal(caps.limits.data_max, 256u * 1024);
        /* Cached now, whole; and a caller with a smaller (older) struct
         * gets only what it has room for. */
        struct vsock_caps cached = VSOCK_CAPS_INIT;
        assert_int_equal(vsock_caps_lookup(A->exec_addr, &cached), 0);
        assert_memory_equal(&cached, &caps, sizeof caps);
        struct vsock_caps small;
        memset(&small, 0x5a, sizeof small);
        small.size = offsetof(struct vsock_caps, features_text);
        assert_int_equal(vsock_caps_lookup(A->exec_addr, &small), 0);
        assert_int_equal(small.version, 1);
        assert_int_equal((uint8_t) small.features_text[0], 0x5a);

        /* On one connection: Hello, then base requests. */
        vsock_conn *c = dial();
        assert_int_equal(vsock_hello(c, &call, &caps), 0);
        assert_int_equal(vsock_hello(c, &call, &caps), 0); /* no I/O the second time */
        exec_true_on(c);
        exec_true_on(c);
        vsock_conn_close(c);
}

/* An extension request through client_ext_send: pipelined with Hello on a
 * fresh connection; a feature the agent lacks is VSOCK_E_UNSUPPORTED. */
static void test_lib_pipelined_unsupported(void **state) {
        (void) state;
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_now_ns() + (int64_t) BOUND_MS * 1000000;
        vsock_conn *c = dial();
        static const char req[] = "{\"listen\":\"tcp:127.0.0.1:1\"}";
        /* A feature bit no agent has (beyond those defined). */
        int r = client_ext_send(c, 1u << 30, EXT_MSG_FWD_LISTEN, req, sizeof req - 1, &call);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_UNSUPPORTED);
        assert_string_equal(call.remote_error, "agent does not support extensions");
        vsock_conn_close(c);
        /* Without a feature check, the agent's own answer comes back. */
        c = dial();
        r = client_ext_send(c, 0, 126, "{}", 2, &call);
        assert_int_equal(r, 0);
        uint8_t t;
        uint8_t *d = NULL;
        uint32_t n;
        r = client_ext_read(c, &call, &t, &d, &n);
        assert_int_equal(r, VSOCK_ERR(VSOCK_E_UNSUPPORTED, ENOSYS));
        assert_non_null(strstr(call.remote_error, "not served"));
        /* ... and the connection serves the next request. */
        exec_true_on(c);
        vsock_conn_close(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_hello_reply, test_teardown),
                cmocka_unit_test_teardown(test_hello_order, test_teardown),
                cmocka_unit_test_teardown(test_hello_pipelined, test_teardown),
                cmocka_unit_test_teardown(test_hello_hostile, test_teardown),
                cmocka_unit_test_teardown(test_lib_hello, test_teardown),
                cmocka_unit_test_teardown(test_lib_pipelined_unsupported, test_teardown),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
