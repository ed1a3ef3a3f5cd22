/* Hybrid vsock dialing against a fake VMM (Firecracker-style) unix socket
 * served by a thread. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/conn-internal.h"
#include "lib/mux.h"
#include "vsock/conn.h"
#include "vsock/error.h"
#include "vsock/frame.h"

enum behaviour {
        B_OK_ECHO,        /* "OK 1073741824\n", then echo */
        B_REPLY,          /* send @reply (may hold several lines), then wait for EOF */
        B_CLOSE,          /* close without a word */
        B_SILENT,         /* never reply; wait for the client to give up */
};

struct vmm {
        char dir[64];
        char path[128];
        int lfd;
        pthread_t th;
        enum behaviour b;
        const char *reply;
        size_t reply_len;
        /* What the server saw. */
        char first_read[128];
        ssize_t first_len;
};

static void *vmm_serve(void *arg) {
        struct vmm *v = arg;
        int fd = accept4(v->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
                return NULL;
        /* One read: the CONNECT line must arrive in one piece. The client
         * sends nothing else before our reply, so whatever one read returns
         * is everything it wrote. */
        v->first_len = read(fd, v->first_read, sizeof v->first_read - 1);
        if (v->first_len > 0)
                v->first_read[v->first_len] = 0;

        char buf[4096];
        ssize_t n;
        switch (v->b) {
        case B_OK_ECHO:
                (void) !write(fd, "OK 1073741824\n", 14);
                while ((n = read(fd, buf, sizeof buf)) > 0)
                        (void) !write(fd, buf, (size_t) n);
                break;
        case B_REPLY:
                (void) !write(fd, v->reply, v->reply_len);
                while (read(fd, buf, sizeof buf) > 0)
                        ;
                break;
        case B_CLOSE:
                break;
        case B_SILENT:
                while (read(fd, buf, sizeof buf) > 0)
                        ;
                break;
        }
        close(fd);
        return NULL;
}

static void vmm_start_named(struct vmm *v, const char *name, enum behaviour b, const char *reply,
                            size_t reply_len) {
        memset(v, 0, sizeof *v);
        strcpy(v->dir, "/tmp/vsock-mux-XXXXXX");
        assert_non_null(mkdtemp(v->dir));
        snprintf(v->path, sizeof v->path, "%s/%s", v->dir, name);
        v->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(v->lfd >= 0);
        struct sockaddr_un un = { .sun_family = AF_UNIX };
        strcpy(un.sun_path, v->path);
        assert_int_equal(bind(v->lfd, (struct sockaddr *) &un, sizeof un), 0);
        assert_int_equal(listen(v->lfd, 4), 0);
        v->b = b;
        v->reply = reply;
        v->reply_len = reply_len;
        v->first_len = -1;
        assert_int_equal(pthread_create(&v->th, NULL, vmm_serve, v), 0);
}

/* A ':' in the path by default: the port is after the last one. */
static void vmm_start(struct vmm *v, enum behaviour b, const char *reply, size_t reply_len) {
        vmm_start_named(v, "fc:v.sock", b, reply, reply_len);
}

static void vmm_stop(struct vmm *v) {
        pthread_join(v->th, NULL);
        close(v->lfd);
        unlink(v->path);
        rmdir(v->dir);
}

/* The reply line of the last vmm_dial(). */
static char last_reply[MUX_REPLY_MAX + 1];

static int vmm_dial(struct vmm *v, uint32_t port, int timeout_ms, int cancel_fd, vsock_conn **ret) {
        char s[200];
        struct vsock_addr a;
        snprintf(s, sizeof s, "vsock-mux:%s:%u", v->path, port);
        assert_int_equal(vsock_addr_parse(s, 0, &a, NULL), 0);
        memset(last_reply, 'X', sizeof last_reply);
        return conn_dial_addr(&a, timeout_ms, cancel_fd, last_reply, ret);
}

static void test_ok_then_echo(void **state) {
        struct vmm v;
        vmm_start(&v, B_OK_ECHO, NULL, 0);
        vsock_conn *c = NULL;
        int r = vmm_dial(&v, 5000, 5000, -1, &c);
        if (r < 0)
                fail_msg("dial: %s", vsock_strerror(r));
        assert_string_equal(last_reply, "OK 1073741824");

        const struct vsock_addr *ra = vsock_conn_remote_addr(c);
        assert_int_equal(ra->transport, VSOCK_TRANSPORT_MUX);
        assert_string_equal(ra->path, v.path);
        assert_int_equal(ra->port, 5000);
        assert_int_equal(vsock_conn_peer(c)->transport, VSOCK_TRANSPORT_MUX);
        assert_int_equal(vsock_conn_peer(c)->port, 5000);

        /* The stream after the handshake is the guest's: frames pass. */
        vsock_conn_set_deadline(c, vsock_deadline_in(30000));
        assert_int_equal(vsock_write_message(c, 7, "hello", 5), 0);
        uint8_t type, *data;
        uint32_t len;
        assert_int_equal(vsock_read_message(c, &type, &data, &len), 0);
        assert_int_equal(type, 7);
        assert_int_equal(len, 5);
        assert_memory_equal(data, "hello", 5);
        free(data);
        vsock_conn_close(c);
        vmm_stop(&v);

        /* Exactly the CONNECT line, in one read, nothing else. */
        assert_int_equal(v.first_len, 13);
        assert_string_equal(v.first_read, "CONNECT 5000\n");
}

static void test_default_port(void **state) {
        struct vmm v;
        char s[200];
        vsock_conn *c;

        /* No port in the address: the default one is asked for. */
        vmm_start_named(&v, "v.sock", B_OK_ECHO, NULL, 0);
        snprintf(s, sizeof s, "vsock-mux:%s", v.path);
        assert_int_equal(vsock_dial_str(s, 5002, 5000, -1, &c), 0);
        vsock_conn_close(c);
        vmm_stop(&v);
        assert_string_equal(v.first_read, "CONNECT 5002\n");

        /* An explicit port wins. */
        vmm_start(&v, B_OK_ECHO, NULL, 0);
        snprintf(s, sizeof s, "vsock-mux:%s:%u", v.path, 5001u);
        assert_int_equal(vsock_dial_str(s, 5000, 5000, -1, &c), 0);
        vsock_conn_close(c);
        vmm_stop(&v);
        assert_string_equal(v.first_read, "CONNECT 5001\n");
}

static void test_error_reply(void **state) {
        struct vmm v;
        static const char reply[] = "ERR no listener\n";
        vmm_start(&v, B_REPLY, reply, sizeof reply - 1);
        vsock_conn *c = NULL;
        int r = vmm_dial(&v, 5000, 5000, -1, &c);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_MUX_HANDSHAKE);
        assert_null(c);
        /* The offending line is kept for the caller's message. */
        assert_string_equal(last_reply, "ERR no listener");
        vmm_stop(&v);
}

/* The reply is the caller's: a later dial, or one that asks for no reply,
 * leaves an earlier caller's line alone. */
static void test_reply_per_caller(void **state) {
        struct vmm a, b;
        char first[MUX_REPLY_MAX + 1], s[200];
        struct vsock_addr addr;
        vsock_conn *c = NULL;

        vmm_start_named(&a, "a.sock", B_REPLY, "ERR no listener\n", 16);
        snprintf(s, sizeof s, "vsock-mux:%s:5000", a.path);
        assert_int_equal(vsock_addr_parse(s, 0, &addr, NULL), 0);
        assert_int_equal(vsock_err_kind(conn_dial_addr(&addr, 5000, -1, first, &c)), VSOCK_E_MUX_HANDSHAKE);
        vmm_stop(&a);

        vmm_start_named(&b, "b.sock", B_REPLY, "OK 12\n", 6);
        assert_int_equal(vmm_dial(&b, 5000, 5000, -1, &c), 0);
        vsock_conn_close(c);
        vmm_stop(&b);
        assert_string_equal(last_reply, "OK 12");

        vmm_start_named(&b, "b.sock", B_REPLY, "OK 13\n", 6);
        snprintf(s, sizeof s, "vsock-mux:%s:5000", b.path);
        assert_int_equal(vsock_dial_str(s, 0, 5000, -1, &c), 0);
        vsock_conn_close(c);
        vmm_stop(&b);

        assert_string_equal(first, "ERR no listener");
        assert_string_equal(last_reply, "OK 12");
}

static void test_close_without_reply(void **state) {
        struct vmm v;
        vmm_start(&v, B_CLOSE, NULL, 0);
        vsock_conn *c = NULL;
        int r = vmm_dial(&v, 5000, 5000, -1, &c);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_NOT_LISTENING);
        assert_null(c);
        assert_string_equal(last_reply, "");
        vmm_stop(&v);
}

static void test_partial_then_silence(void **state) {
        /* Half a line, then nothing: the deadline ends it, and the part
         * that came is still reported. */
        struct vmm v;
        vmm_start(&v, B_REPLY, "OK 12", 5);
        vsock_conn *c = NULL;
        int r = vmm_dial(&v, 5000, 300, -1, &c);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_TIMEOUT);
        assert_string_equal(last_reply, "OK 12");
        vmm_stop(&v);
}

static void *reply_then_close(void *arg) {
        int lfd = *(int *) arg;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        char buf[64];
        (void) !read(fd, buf, sizeof buf);
        (void) !write(fd, "OK 12", 5);
        close(fd);
        return NULL;
}

/* Half a line, then EOF: a broken handshake, not "not listening". */
static void test_partial_then_eof(void **state) {
        struct vmm v;
        memset(&v, 0, sizeof v);
        strcpy(v.dir, "/tmp/vsock-mux-XXXXXX");
        assert_non_null(mkdtemp(v.dir));
        snprintf(v.path, sizeof v.path, "%s/v.sock", v.dir);
        v.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un un = { .sun_family = AF_UNIX };
        strcpy(un.sun_path, v.path);
        assert_int_equal(bind(v.lfd, (struct sockaddr *) &un, sizeof un), 0);
        assert_int_equal(listen(v.lfd, 4), 0);
        assert_int_equal(pthread_create(&v.th, NULL, reply_then_close, &v.lfd), 0);

        vsock_conn *c = NULL;
        int r = vmm_dial(&v, 5000, 5000, -1, &c);
        assert_int_equal(r, VSOCK_ERR(VSOCK_E_MUX_HANDSHAKE, EPROTO));
        assert_string_equal(last_reply, "OK 12");
        vmm_stop(&v);
}

static void test_silent_timeout(void **state) {
        struct vmm v;
        vmm_start(&v, B_SILENT, NULL, 0);
        vsock_conn *c = NULL;
        int64_t t0 = vsock_now_ns();
        int r = vmm_dial(&v, 5000, 200, -1, &c);
        int64_t el = vsock_now_ns() - t0;
        assert_int_equal(vsock_err_kind(r), VSOCK_E_TIMEOUT);
        assert_null(c);
        /* Not before the deadline; the upper bound only catches a hang. */
        assert_true(el >= 190 * 1000000LL);
        assert_true(el < 20 * 1000000000LL);
        vmm_stop(&v);
}

static void test_silent_default_bound(void **state) {
        /* No dial timeout: the handshake's own bound still applies. */
        struct vmm v;
        vmm_start(&v, B_SILENT, NULL, 0);
        vsock_conn *c = NULL;
        int64_t t0 = vsock_now_ns();
        int r = vmm_dial(&v, 5000, -1, -1, &c);
        int64_t el = vsock_now_ns() - t0;
        assert_int_equal(vsock_err_kind(r), VSOCK_E_TIMEOUT);
        assert_true(el >= (VSOCK_MUX_HANDSHAKE_MS - 10) * 1000000LL);
        assert_true(el < 30 * 1000000000LL);
        vmm_stop(&v);
}

static void test_cancel(void **state) {
        struct vmm v;
        vmm_start(&v, B_SILENT, NULL, 0);
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(write(p[1], "x", 1), 1);
        vsock_conn *c = NULL;
        int r = vmm_dial(&v, 5000, 5000, p[0], &c);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_CANCELLED);
        assert_null(c);
        close(p[0]);
        close(p[1]);
        vmm_stop(&v);
}

static void test_reply_and_data_together(void **state) {
        /* The VMM's OK line and the guest's first bytes in one write: the
         * bytes after '\n' belong to the caller. */
        static const char reply[] = "OK 1073741824\nPROTO\x03\x00\x00\x00\x02hi";
        struct vmm v;
        vmm_start(&v, B_REPLY, reply, sizeof reply - 1);
        vsock_conn *c = NULL;
        assert_int_equal(vmm_dial(&v, 5000, 5000, -1, &c), 0);
        vsock_conn_set_read_deadline(c, vsock_deadline_in(30000));
        char buf[5];
        assert_int_equal(vsock_conn_read_full(c, buf, 5, NULL), 0);
        assert_memory_equal(buf, "PROTO", 5);
        uint8_t type, *data;
        uint32_t len;
        assert_int_equal(vsock_read_message(c, &type, &data, &len), 0);
        assert_int_equal(type, 3);
        assert_int_equal(len, 2);
        assert_memory_equal(data, "hi", 2);
        free(data);
        vsock_conn_close(c);
        vmm_stop(&v);
}

static void test_long_reply(void **state) {
        /* 40 bytes and no '\n': rejected once 32 are read. */
        static const char reply[] = "OK 1234567890123456789012345678901234567";
        struct vmm v;
        vmm_start(&v, B_REPLY, reply, sizeof reply - 1);
        vsock_conn *c = NULL;
        int r = vmm_dial(&v, 5000, 5000, -1, &c);
        assert_int_equal(r, VSOCK_ERR(VSOCK_E_MUX_HANDSHAKE, EMSGSIZE));
        assert_null(c);
        assert_int_equal(strlen(last_reply), MUX_REPLY_MAX);
        vmm_stop(&v);

        /* The boundary: 31 characters + '\n' is fine, 32 + '\n' is not. */
        static const char ok32[] = "OK 0000000000000000000000000001\n";
        assert_int_equal(strlen(ok32), 32);
        vmm_start(&v, B_REPLY, ok32, sizeof ok32 - 1);
        assert_int_equal(vmm_dial(&v, 5000, 5000, -1, &c), 0);
        vsock_conn_close(c);
        vmm_stop(&v);

        static const char ok33[] = "OK 00000000000000000000000000001\n";
        vmm_start(&v, B_REPLY, ok33, sizeof ok33 - 1);
        r = vmm_dial(&v, 5000, 5000, -1, &c);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_MUX_HANDSHAKE);
        vmm_stop(&v);
}

static void test_reply_variants(void **state) {
        static const struct {
                const char *reply;
                bool ok;
        } cases[] = {
                { "OK 1\n", true },
                { "OK 99999999999999999999\n", true }, /* any decimal number */
                { "OK 5\r\n", true },
                { "OK\n", false },
                { "OK \n", false },
                { "OK 12x\n", false },
                { "ok 12\n", false },
                { "OK  12\n", false },
                { "\n", false },
                { "NOPE\n", false },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                struct vmm v;
                vmm_start(&v, B_REPLY, cases[i].reply, strlen(cases[i].reply));
                vsock_conn *c = NULL;
                int r = vmm_dial(&v, 5000, 5000, -1, &c);
                if (cases[i].ok) {
                        if (r < 0)
                                fail_msg("reply \"%s\" refused: %s", cases[i].reply, vsock_strerror(r));
                        vsock_conn_close(c);
                } else {
                        if (r >= 0)
                                fail_msg("reply \"%s\" accepted", cases[i].reply);
                        assert_int_equal(r, VSOCK_ERR(VSOCK_E_MUX_HANDSHAKE, EPROTO));
                }
                vmm_stop(&v);
        }
        /* Non-printable bytes are shown as '?'. */
        struct vmm v;
        vmm_start(&v, B_REPLY, "E\x01\x7f" "Z\n", 5);
        vsock_conn *c = NULL;
        assert_true(vmm_dial(&v, 5000, 5000, -1, &c) < 0);
        assert_string_equal(last_reply, "E??Z");
        vmm_stop(&v);
}

static void test_no_socket(void **state) {
        vsock_conn *c = NULL;
        int r = vsock_dial_str("vsock-mux:/nonexistent/dir/v.sock:5000", 0, 1000, -1, &c);
        assert_int_equal(r, VSOCK_ERR(VSOCK_E_CONNECT, ENOENT));
        assert_null(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ok_then_echo),
                cmocka_unit_test(test_default_port),
                cmocka_unit_test(test_error_reply),
                cmocka_unit_test(test_reply_per_caller),
                cmocka_unit_test(test_close_without_reply),
                cmocka_unit_test(test_partial_then_silence),
                cmocka_unit_test(test_partial_then_eof),
                cmocka_unit_test(test_silent_timeout),
                cmocka_unit_test(test_silent_default_bound),
                cmocka_unit_test(test_cancel),
                cmocka_unit_test(test_reply_and_data_together),
                cmocka_unit_test(test_long_reply),
                cmocka_unit_test(test_reply_variants),
                cmocka_unit_test(test_no_socket),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
