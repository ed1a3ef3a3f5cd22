/* Forwarding extensions (PROTOCOL.md 2.8) end to end against the real
 * agent: FwdConnect to TCP and unix targets with errnos, and guest ->
 * host forwarding (FwdListen, FwdEvent, FwdAttach): data both ways, EOF
 * propagation, expiry, the limits, single-use ids; hostile requests. */
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
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <cmocka.h>

#include <vsock/vsock.h>

#include "agent-harness.h"
#include "lib/ext_msg.h"

#define BOUND_MS 20000

#include "agent-group.h"

/* Write all of @s, then read until EOF (bounded by the conn's deadline). */
static void roundtrip(vsock_conn *c, const char *s, const char *want) {
        assert_int_equal(vsock_conn_write(c, s, strlen(s)), 0);
        assert_int_equal(vsock_conn_shutdown_write(c), 0);
        char buf[256];
        ssize_t n = conn_read_all(c, buf, sizeof buf - 1);
        assert_true(n >= 0);
        buf[n] = '\0';
        assert_string_equal(buf, want);
}

/* A unix-socket echo server in the "guest" (this machine). */
struct unix_echo {
        char path[108];
        int fd;
        pthread_t t;
};

static void *unix_echo_main(void *arg) {
        struct unix_echo *u = arg;
        for (;;) {
                int c = accept4(u->fd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0)
                        return NULL;
                char b[256];
                ssize_t n;
                while ((n = read(c, b, sizeof b)) > 0)
                        if (write(c, b, (size_t) n) != n)
                                break;
                close(c);
        }
}

static void unix_echo_start(struct unix_echo *u) {
        snprintf(u->path, sizeof u->path, "/tmp/test-fwd-%d.sock", (int) getpid());
        unlink(u->path);
        u->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", u->path);
        assert_int_equal(bind(u->fd, (struct sockaddr *) &sa, sizeof sa), 0);
        assert_int_equal(listen(u->fd, 16), 0);
        assert_int_equal(pthread_create(&u->t, NULL, unix_echo_main, u), 0);
}

static void unix_echo_stop(struct unix_echo *u) {
        shutdown(u->fd, SHUT_RDWR);
        pthread_join(u->t, NULL);
        close(u->fd);
        unlink(u->path);
}

/* ---- FwdConnect ---------------------------------------------------------------------- */

static void test_connect_unix_and_tcp(void **state) {
        struct unix_echo u;
        unix_echo_start(&u);
        vsock_conn *c = dial();
        struct vsock_call call = bounded_call();
        int r = vsock_fwd_connect(c, NULL, 0, u.path, &call);
        if (r < 0)
                fail_msg("fwd_connect: %s: %s", vsock_strerror(r), call.remote_error);
        roundtrip(c, "through a unix socket", "through a unix socket");
        vsock_conn_close(c);
        unix_echo_stop(&u);

        struct tcp_server *srv;
        assert_int_equal(tcp_server_start(TCP_ECHO, &srv), 0);
        c = dial();
        call = bounded_call();
        assert_int_equal(vsock_fwd_connect(c, "127.0.0.1", tcp_server_port(srv), NULL, &call), 0);
        roundtrip(c, "over tcp", "over tcp");
        vsock_conn_close(c);
        tcp_server_stop(srv);
}

static void test_connect_errors(void **state) {
        vsock_conn *c = dial();
        struct vsock_call call = bounded_call();
        int r = vsock_fwd_connect(c, NULL, 0, "/nonexistent/socket", &call);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_REMOTE);
        assert_int_equal(vsock_err_errno(r), ENOENT);
        assert_non_null(strstr(call.remote_error, "/nonexistent/socket"));
        vsock_conn_close(c);

        /* A port nobody listens on: take a free one and close it. */
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t sl = sizeof sa;
        assert_int_equal(bind(s, (struct sockaddr *) &sa, sizeof sa), 0);
        assert_int_equal(getsockname(s, (struct sockaddr *) &sa, &sl), 0);
        close(s);
        c = dial();
        call = bounded_call();
        r = vsock_fwd_connect(c, NULL, ntohs(sa.sin_port), NULL, &call);
        assert_int_equal(vsock_err_errno(r), ECONNREFUSED);
        vsock_conn_close(c);

        /* A socket file that nobody serves. */
        char path[108];
        snprintf(path, sizeof path, "/tmp/test-fwd-dead-%d.sock", (int) getpid());
        unlink(path);
        s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un un = { .sun_family = AF_UNIX };
        snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
        assert_int_equal(bind(s, (struct sockaddr *) &un, sizeof un), 0);
        close(s);
        c = dial();
        call = bounded_call();
        r = vsock_fwd_connect(c, NULL, 0, path, &call);
        assert_int_equal(vsock_err_errno(r), ECONNREFUSED);
        vsock_conn_close(c);
        unlink(path);
}

/* ---- guest -> host --------------------------------------------------------------------- */

/* A control connection listening on a free guest port. */
static vsock_conn *listen_tcp_backlog(int backlog, uint16_t *ret_port) {
        vsock_conn *c = dial();
        struct vsock_call call = bounded_call();
        char bound[160];
        int r = vsock_fwd_listen(c, "tcp:127.0.0.1:0", backlog, &call, bound, sizeof bound);
        if (r < 0)
                fail_msg("fwd_listen: %s: %s", vsock_strerror(r), call.remote_error);
        const char *colon = strrchr(bound, ':');
        assert_non_null(colon);
        assert_true(strncmp(bound, "tcp:127.0.0.1:", 14) == 0);
        *ret_port = (uint16_t) atoi(colon + 1);
        assert_true(*ret_port > 0);
        return c;
}

static vsock_conn *listen_tcp(uint16_t *ret_port) { return listen_tcp_backlog(0, ret_port); }

/* Close a listener's control connection and wait (bounded) until the
 * agent let go of the listener: its port refuses. */
static void close_listener(vsock_conn *ctl, uint16_t port) {
        vsock_conn_close(ctl);
        for (int i = 0;; i++) {
                int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
                                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                int cr = connect(fd, (struct sockaddr *) &sa, sizeof sa);
                int e = errno;
                close(fd);
                if (cr < 0 && e == ECONNREFUSED)
                        return;
                assert_true(i < 1000); /* 10 s */
                usleep(10000);
        }
}

static int guest_client(uint16_t port) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        return fd;
}

static struct vsock_fwd_event next_event(vsock_conn *c) {
        struct vsock_call call = bounded_call();
        struct vsock_fwd_event ev;
        int r = vsock_fwd_next_event(c, &call, &ev);
        if (r < 0)
                fail_msg("fwd_next_event: %s: %s", vsock_strerror(r), call.remote_error);
        return ev;
}

static vsock_conn *attach_id(uint64_t id, int *ret_rc) {
        vsock_conn *c = dial();
        struct vsock_call call = bounded_call();
        *ret_rc = vsock_fwd_attach(c, id, &call);
        return c;
}

static void test_listen_attach_both_ways(void **state) {
        uint16_t port;
        vsock_conn *ctl = listen_tcp(&port);
        int g = guest_client(port);
        struct vsock_fwd_event ev = next_event(ctl);
        assert_string_equal(ev.event, "accepted");
        assert_true(ev.id > 0);
        assert_non_null(strstr(ev.peer, "127.0.0.1:"));
        int r;
        vsock_conn *h = attach_id(ev.id, &r);
        assert_int_equal(r, 0);
        /* guest -> host, then host -> guest, with EOF each way. */
        assert_int_equal(write(g, "from guest", 10), 10);
        char buf[64];
        size_t part;
        assert_int_equal(vsock_conn_read_full(h, buf, 10, &part), 0);
        assert_memory_equal(buf, "from guest", 10);
        assert_int_equal(vsock_conn_write(h, "from host", 9), 0);
        assert_int_equal(read(g, buf, sizeof buf), 9);
        assert_memory_equal(buf, "from host", 9);
        assert_int_equal(shutdown(g, SHUT_WR), 0);
        assert_int_equal(conn_read_all(h, buf, sizeof buf), 0); /* the guest's EOF */
        assert_int_equal(vsock_conn_write(h, "late", 4), 0);    /* the other way still open */
        assert_int_equal(read(g, buf, sizeof buf), 4);
        assert_int_equal(vsock_conn_shutdown_write(h), 0);
        assert_int_equal(read(g, buf, sizeof buf), 0); /* the host's EOF */
        close(g);
        vsock_conn_close(h);

        /* Ids are single-use. */
        h = attach_id(ev.id, &r);
        assert_int_equal(vsock_err_errno(r), ENOENT);
        vsock_conn_close(h);
        h = attach_id(987654321, &r);
        assert_int_equal(vsock_err_errno(r), ENOENT);
        vsock_conn_close(h);

        /* Closing the control connection stops listening. */
        close_listener(ctl, port);
}

static void test_unix_listener(void **state) {
        char path[108];
        snprintf(path, sizeof path, "/tmp/test-fwd-listen-%d.sock", (int) getpid());
        unlink(path);
        char spec[128];
        snprintf(spec, sizeof spec, "unix:%s", path);
        vsock_conn *ctl = dial();
        struct vsock_call call = bounded_call();
        char bound[160];
        assert_int_equal(vsock_fwd_listen(ctl, spec, 4, &call, bound, sizeof bound), 0);
        assert_string_equal(bound, spec);
        /* A second listener on a live path: refused. */
        vsock_conn *c2 = dial();
        call = bounded_call();
        int r = vsock_fwd_listen(c2, spec, 4, &call, NULL, 0);
        assert_int_equal(vsock_err_errno(r), EADDRINUSE);
        vsock_conn_close(c2);
        /* Finding it live took a connection to it: the first event. */
        struct vsock_fwd_event probe = next_event(ctl);
        assert_string_equal(probe.event, "accepted");

        int g = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un un = { .sun_family = AF_UNIX };
        snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
        assert_int_equal(connect(g, (struct sockaddr *) &un, sizeof un), 0);
        struct vsock_fwd_event ev = next_event(ctl);
        vsock_conn *h = attach_id(ev.id, &r);
        assert_int_equal(r, 0);
        assert_int_equal(write(g, "ux", 2), 2);
        char buf[8];
        size_t part;
        assert_int_equal(vsock_conn_read_full(h, buf, 2, &part), 0);
        close(g);
        vsock_conn_close(h);
        vsock_conn_close(ctl);
        /* The socket file goes with the listener. */
        for (int i = 0; access(path, F_OK) == 0; i++) {
                assert_true(i < 1000);
                usleep(10000);
        }
}

static void test_expiry(void **state) {
        uint16_t port;
        vsock_conn *ctl = listen_tcp(&port);
        int g = guest_client(port);
        struct vsock_fwd_event ev = next_event(ctl);
        assert_string_equal(ev.event, "accepted");
        /* Not attached: after fwd_attach_s (10 s) it expires, the guest's
         * client sees its connection closed, and the id is gone. */
        struct vsock_fwd_event ex = next_event(ctl);
        assert_string_equal(ex.event, "expired");
        assert_int_equal(ex.id, ev.id);
        char b;
        assert_int_equal(read(g, &b, 1), 0);
        close(g);
        int r;
        vsock_conn *h = attach_id(ev.id, &r);
        assert_int_equal(vsock_err_errno(r), ENOENT);
        vsock_conn_close(h);
        close_listener(ctl, port);
}

static void test_limits(void **state) {
        /* fwd_listeners_max (16) listeners at once. */
        vsock_conn *ctl[17];
        uint16_t ports[16], port;
        /* The last with a backlog that takes 65 connections at once. */
        for (int i = 0; i < 16; i++)
                ctl[i] = listen_tcp_backlog(i == 15 ? 128 : 0, &ports[i]);
        port = ports[15];
        ctl[16] = dial();
        struct vsock_call call = bounded_call();
        int r = vsock_fwd_listen(ctl[16], "tcp:127.0.0.1:0", 0, &call, NULL, 0);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_LIMIT);
        vsock_conn_close(ctl[16]);

        /* fwd_pending_max (64) waiting: the 65th is not accepted until one
         * is attached. */
        vsock_conn *l = ctl[15];
        int g[65];
        for (int i = 0; i < 65; i++) {
                g[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
                                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                (void) connect(g[i], (struct sockaddr *) &sa, sizeof sa);
        }
        uint64_t first = 0;
        for (int i = 0; i < 64; i++) {
                struct vsock_fwd_event ev = next_event(l);
                assert_string_equal(ev.event, "accepted");
                if (!first)
                        first = ev.id;
        }
        /* Nothing more while 64 wait: a short bounded read times out. */
        call = (struct vsock_call) VSOCK_CALL_INIT;
        call.deadline_ns = vsock_deadline_in(300);
        struct vsock_fwd_event ev;
        r = vsock_fwd_next_event(l, &call, &ev);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_TIMEOUT);
        /* That spent the control connection (the call failed): it closes,
         * the listener with it, and all 64 are dropped. */
        close_listener(l, port);
        for (int i = 0; i < 65; i++)
                close(g[i]);

        /* Again on a fresh listener, attaching one to make room. */
        l = listen_tcp_backlog(128, &port);
        for (int i = 0; i < 65; i++) {
                g[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
                                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                (void) connect(g[i], (struct sockaddr *) &sa, sizeof sa);
        }
        first = 0;
        for (int i = 0; i < 64; i++) {
                ev = next_event(l);
                if (!first)
                        first = ev.id;
        }
        vsock_conn *h = attach_id(first, &r);
        assert_int_equal(r, 0);
        ev = next_event(l);
        assert_string_equal(ev.event, "accepted"); /* the 65th */
        vsock_conn_close(h);
        close_listener(l, port);
        for (int i = 0; i < 65; i++)
                close(g[i]);
        for (int i = 0; i < 15; i++)
                close_listener(ctl[i], ports[i]);
}

/* ---- hostile input ----------------------------------------------------------------------- */

static uint8_t raw_request(vsock_conn *c, uint8_t type, const char *json, char *code, size_t size) {
        assert_int_equal(vsock_write_message(c, type, json, strlen(json)), 0);
        uint8_t t;
        uint8_t *d = NULL;
        uint32_t n;
        if (vsock_read_message(c, &t, &d, &n) < 0) {
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

static void test_hostile(void **state) {
        static const struct { uint8_t type; const char *json; const char *code; } cases[] = {
                { EXT_MSG_FWD_CONNECT, "{\"port\":", "EPROTO" },
                { EXT_MSG_FWD_CONNECT, "{\"port\":70000}", "EPROTO" },
                { EXT_MSG_FWD_CONNECT, "{}", "EINVAL" },
                { EXT_MSG_FWD_CONNECT, "{\"port\":80,\"unix\":\"/x\"}", "EINVAL" },
                { EXT_MSG_FWD_CONNECT, "{\"unix\":\"relative\"}", "EINVAL" },
                { EXT_MSG_FWD_LISTEN, "{\"listen\":7}", "EPROTO" },
                { EXT_MSG_FWD_LISTEN, "{\"listen\":\"udp:1.2.3.4:5\"}", "EINVAL" },
                { EXT_MSG_FWD_LISTEN, "{\"listen\":\"tcp:example.com:80\"}", "EINVAL" },
                { EXT_MSG_FWD_LISTEN, "{\"listen\":\"unix:rel\"}", "EINVAL" },
                { EXT_MSG_FWD_ATTACH, "{\"id\":-1}", "EPROTO" },
                { EXT_MSG_FWD_ATTACH, "{}", "ENOENT" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                vsock_conn *c = dial();
                struct vsock_call call = bounded_call();
                assert_int_equal(vsock_hello(c, &call, NULL), 0);
                char code[32];
                uint8_t t = raw_request(c, cases[i].type, cases[i].json, code, sizeof code);
                if (t != EXT_MSG_ERROR || strcmp(code, cases[i].code) != 0)
                        fail_msg("case %zu (%s): type %u code %s", i, cases[i].json, t, code);
                vsock_conn_close(c);
        }
        /* Frames on a listener's control connection: it closes. */
        uint16_t port;
        vsock_conn *ctl = listen_tcp(&port);
        assert_int_equal(vsock_write_message(ctl, VSOCK_MSG_STDIN, "x", 1), 0);
        uint8_t t;
        uint8_t *d = NULL;
        uint32_t n;
        assert_true(vsock_read_message(ctl, &t, &d, &n) < 0);
        close_listener(ctl, port);
        /* Without Hello: closed, as by a base agent. */
        vsock_conn *c = dial();
        char code[32];
        assert_int_equal(raw_request(c, EXT_MSG_FWD_LISTEN, "{\"listen\":\"tcp:127.0.0.1:0\"}", code, sizeof code), 0);
        vsock_conn_close(c);
        assert_int_equal(agent_exec_true(A, BOUND_MS), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_connect_unix_and_tcp),
                cmocka_unit_test(test_connect_errors),
                cmocka_unit_test(test_listen_attach_both_ways),
                cmocka_unit_test(test_unix_listener),
                cmocka_unit_test(test_expiry),
                cmocka_unit_test(test_limits),
                cmocka_unit_test(test_hostile),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
