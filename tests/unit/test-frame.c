/* Frames over socketpairs. Linked with -Wl,--wrap=malloc,calloc,realloc
 * (see tests/meson.build) so the library's allocations can be counted:
 * an oversize header must be rejected with no allocation at all. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "alloc-count.h"
#include "vsock/conn.h"
#include "vsock/error.h"
#include "vsock/frame.h"

/* ---- allocation counter ------------------------------------------------ */

static void alloc_reset(void) {
        atomic_store(&alloc_calls, 0);
        atomic_store(&alloc_max, 0);
}

/* ---- helpers ----------------------------------------------------------- */

struct pair {
        vsock_conn *a, *b;
};

static void pair_open(struct pair *p) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(vsock_conn_from_fd(sv[0], &p->a), 0);
        assert_int_equal(vsock_conn_from_fd(sv[1], &p->b), 0);
}

static void pair_close(struct pair *p) {
        assert_int_equal(vsock_conn_close(p->a), 0);
        assert_int_equal(vsock_conn_close(p->b), 0);
        p->a = p->b = NULL;
}

static void raw_write(int fd, const void *buf, size_t n) {
        /* The conn fds are non-blocking; small test writes always fit. */
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
        assert_int_equal(w, (ssize_t) n);
}

static void fill(uint8_t *p, size_t n, uint32_t seed) {
        for (size_t i = 0; i < n; i++) {
                seed = seed * 1103515245 + 12345;
                p[i] = (uint8_t) (seed >> 16);
        }
}

/* ---- header and vectors ------------------------------------------------ */

static void test_header_encoding(void **state) {
        uint8_t h[VSOCK_FRAME_HEADER_SIZE];
        vsock_frame_header(h, 0xAB, 0x01020304);
        assert_memory_equal(h, "\xab\x01\x02\x03\x04", 5);
        vsock_frame_header(h, 0, 0xFFFFFFFF);
        assert_memory_equal(h, "\x00\xff\xff\xff\xff", 5);
        vsock_frame_header(h, 7, 0);
        assert_memory_equal(h, "\x07\x00\x00\x00\x00", 5);
}

static int unhex(const char *s, uint8_t **ret, size_t *ret_n) {
        size_t n = strlen(s);
        if (n % 2)
                return -1;
        uint8_t *b = malloc(n / 2 + 1);
        for (size_t i = 0; i < n / 2; i++) {
                unsigned v;
                if (sscanf(s + 2 * i, "%2x", &v) != 1) {
                        free(b);
                        return -1;
                }
                b[i] = (uint8_t) v;
        }
        *ret = b;
        *ret_n = n / 2;
        return 0;
}

/* Every golden frame: our writer produces the same bytes from the payload,
 * and our reader takes them apart again. */
static void test_golden_frames(void **state) {
        const char *path = getenv("VECTORS");
        if (!path) {
                print_message("VECTORS not set, skipping\n");
                skip();
        }
        FILE *f = fopen(path, "re");
        assert_non_null(f);
        char *line = NULL;
        size_t cap = 0;
        int seen = 0;
        while (getline(&line, &cap, f) > 0) {
                json_error_t err;
                json_t *v = json_loads(line, 0, &err);
                assert_non_null(v);
                json_t *hex = json_object_get(v, "frame_hex");
                json_t *mt = json_object_get(v, "msg_type");
                if (!json_is_string(hex) || !json_is_integer(mt)) {
                        json_decref(v);
                        continue;
                }
                uint8_t *frame = NULL;
                size_t n = 0;
                assert_int_equal(unhex(json_string_value(hex), &frame, &n), 0);
                assert_true(n >= 5);

                struct pair p;
                pair_open(&p);
                assert_int_equal(vsock_write_message(p.a, (uint8_t) json_integer_value(mt), frame + 5, n - 5), 0);
                uint8_t got[65536];
                assert_true(n <= sizeof got);
                assert_int_equal(read(vsock_conn_fd(p.b), got, sizeof got), (ssize_t) n);
                assert_memory_equal(got, frame, n);

                raw_write(vsock_conn_fd(p.a), frame, n);
                uint8_t type, *data;
                uint32_t len;
                assert_int_equal(vsock_read_message(p.b, &type, &data, &len), 0);
                assert_int_equal(type, json_integer_value(mt));
                assert_int_equal(len, n - 5);
                if (len)
                        assert_memory_equal(data, frame + 5, len);
                free(data);
                pair_close(&p);
                free(frame);
                json_decref(v);
                seen++;
        }
        free(line);
        fclose(f);
        assert_true(seen > 10);
}

/* ---- round trips ------------------------------------------------------- */

struct writer_arg {
        vsock_conn *c;
        const uint8_t *data;
        size_t len;
        int ntypes;
        int rc;
};

static void *writer_all_types(void *p) {
        struct writer_arg *w = p;
        for (int t = 0; t < w->ntypes; t++) {
                w->rc = vsock_write_message(w->c, (uint8_t) t, w->data, w->len);
                if (w->rc < 0)
                        break;
        }
        return NULL;
}

static void test_round_trip_sizes(void **state) {
        static const size_t sizes[] = { 0, 1, 65535, 1u << 20 };
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
                size_t len = sizes[s];
                uint8_t *buf = malloc(len + 1);
                fill(buf, len, (uint32_t) len);

                struct pair p;
                pair_open(&p);
                /* Sizes beyond the socket buffer need a concurrent reader. */
                struct writer_arg w = { .c = p.a, .data = len ? buf : NULL, .len = len, .ntypes = 256 };
                pthread_t th;
                assert_int_equal(pthread_create(&th, NULL, writer_all_types, &w), 0);
                for (int t = 0; t < 256; t++) {
                        uint8_t type, *data;
                        uint32_t got;
                        assert_int_equal(vsock_read_message(p.b, &type, &data, &got), 0);
                        assert_int_equal(type, t);
                        assert_int_equal(got, len);
                        if (len == 0)
                                assert_null(data);
                        else {
                                assert_memory_equal(data, buf, len);
                                assert_int_equal(data[len], 0); /* NUL-terminated */
                        }
                        free(data);
                }
                pthread_join(th, NULL);
                assert_int_equal(w.rc, 0);
                pair_close(&p);
                free(buf);
        }
}

static void test_writev_and_into(void **state) {
        struct pair p;
        pair_open(&p);

        /* More iovecs than the stack copy holds. */
        struct iovec iov[40];
        char parts[40][4];
        for (int i = 0; i < 40; i++) {
                snprintf(parts[i], sizeof parts[i], "%03d", i);
                iov[i] = (struct iovec) { .iov_base = parts[i], .iov_len = 3 };
        }
        assert_int_equal(vsock_write_messagev(p.a, 9, iov, 40), 0);
        assert_int_equal(vsock_write_messagev(p.a, 10, iov, 2), 0);
        assert_int_equal(vsock_write_messagev(p.a, 11, NULL, 0), 0);

        uint8_t type, buf[200];
        uint32_t len;
        assert_int_equal(vsock_read_message_into(p.b, &type, buf, sizeof buf, &len), 0);
        assert_int_equal(type, 9);
        assert_int_equal(len, 120);
        assert_memory_equal(buf, "000001002", 9);
        assert_memory_equal(buf + 117, "039", 3);
        assert_int_equal(vsock_read_message_into(p.b, &type, buf, 6, &len), 0);
        assert_int_equal(type, 10);
        assert_int_equal(len, 6);
        assert_memory_equal(buf, "000001", 6);
        assert_int_equal(vsock_read_message_into(p.b, &type, NULL, 0, &len), 0);
        assert_int_equal(type, 11);
        assert_int_equal(len, 0);

        /* A payload bigger than the caller's buffer. */
        assert_int_equal(vsock_write_message(p.a, 1, "0123456789", 10), 0);
        int r = vsock_read_message_into(p.b, &type, buf, 9, &len);
        assert_int_equal(r, VSOCK_ERR(VSOCK_E_FRAME_TOO_LARGE, EMSGSIZE));
        pair_close(&p);
}

struct trickle_arg {
        int fd;
        const uint8_t *data;
        size_t n;
};

static void *trickle(void *p) {
        struct trickle_arg *t = p;
        for (size_t i = 0; i < t->n; i++) {
                /* One byte per send, and a yield so the reader often sees
                 * one byte at a time. */
                if (send(t->fd, t->data + i, 1, MSG_NOSIGNAL) != 1)
                        break;
                if (i % 3 == 0)
                        sched_yield();
        }
        return NULL;
}

static void test_one_byte_writes(void **state) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        vsock_conn *c;
        assert_int_equal(vsock_conn_from_fd(sv[1], &c), 0);

        uint8_t stream[5 + 300 + 5 + 5 + 1];
        vsock_frame_header(stream, 3, 300);
        fill(stream + 5, 300, 42);
        vsock_frame_header(stream + 305, 6, 0);
        vsock_frame_header(stream + 310, 5, 1);
        stream[315] = 9;

        struct trickle_arg t = { .fd = sv[0], .data = stream, .n = sizeof stream };
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, trickle, &t), 0);
        vsock_conn_set_read_deadline(c, vsock_deadline_in(30000)); /* hang catcher */

        uint8_t type, *data;
        uint32_t len;
        assert_int_equal(vsock_read_message(c, &type, &data, &len), 0);
        assert_int_equal(type, 3);
        assert_int_equal(len, 300);
        assert_memory_equal(data, stream + 5, 300);
        free(data);
        assert_int_equal(vsock_read_message(c, &type, &data, &len), 0);
        assert_int_equal(type, 6);
        assert_int_equal(len, 0);
        assert_null(data);
        assert_int_equal(vsock_read_message(c, &type, &data, &len), 0);
        assert_int_equal(type, 5);
        assert_int_equal(len, 1);
        assert_int_equal(data[0], 9);
        free(data);
        pthread_join(th, NULL);
        close(sv[0]);
        /* Then a clean EOF. */
        int r = vsock_read_message(c, &type, &data, &len);
        assert_int_equal(r, VSOCK_ERR(VSOCK_E_READ_RESPONSE_HEADER, EPIPE));
        vsock_conn_close(c);
}

/* ---- truncation -------------------------------------------------------- */

static void test_truncation(void **state) {
        uint8_t type = 0x55, *data = (uint8_t *) 0x1;
        uint32_t len = 77;
        struct pair p;

        /* Clean EOF before any byte. */
        pair_open(&p);
        vsock_conn_close(p.a);
        int r = vsock_read_message(p.b, &type, &data, &len);
        assert_int_equal(r, VSOCK_ERR(VSOCK_E_READ_RESPONSE_HEADER, EPIPE));
        vsock_conn_close(p.b);

        /* EOF inside the header. */
        pair_open(&p);
        raw_write(vsock_conn_fd(p.a), "\x03\x00\x00", 3);
        vsock_conn_close(p.a);
        r = vsock_read_message(p.b, &type, &data, &len);
        assert_int_equal(r, VSOCK_ERR(VSOCK_E_READ_RESPONSE_HEADER, EPROTO));
        vsock_conn_close(p.b);

        /* EOF inside the payload. */
        pair_open(&p);
        raw_write(vsock_conn_fd(p.a), "\x03\x00\x00\x00\x0a" "abc", 8);
        vsock_conn_close(p.a);
        r = vsock_read_message(p.b, &type, &data, &len);
        assert_int_equal(r, VSOCK_ERR(VSOCK_E_READ_RESPONSE_DATA, EPROTO));
        vsock_conn_close(p.b);

        /* Same for the caller-buffer variant. */
        pair_open(&p);
        raw_write(vsock_conn_fd(p.a), "\x03\x00\x00\x00\x0a" "abc", 8);
        vsock_conn_close(p.a);
        uint8_t buf[16];
        r = vsock_read_message_into(p.b, &type, buf, sizeof buf, &len);
        assert_int_equal(r, VSOCK_ERR(VSOCK_E_READ_RESPONSE_DATA, EPROTO));
        vsock_conn_close(p.b);

        /* Out-parameters untouched on failure. */
        assert_int_equal(type, 0x55);
        assert_ptr_equal(data, (uint8_t *) 0x1);
        assert_int_equal(len, 77);
}

/* ---- oversize: rejected before allocating ------------------------------ */

static void expect_too_large(vsock_conn *w, vsock_conn *c, const char *hdr) {
        uint8_t type, *data = NULL;
        uint32_t len;
        raw_write(vsock_conn_fd(w), hdr, 5);
        /* A hang catcher only: the reader must not wait for the payload. */
        vsock_conn_set_read_deadline(c, vsock_deadline_in(30000));
        alloc_reset();
        int r = vsock_read_message(c, &type, &data, &len);
        size_t calls = atomic_load(&alloc_calls);
        assert_int_equal(r, VSOCK_ERR(VSOCK_E_FRAME_TOO_LARGE, EMSGSIZE));
        assert_null(data);
        assert_int_equal(calls, 0);
}

static void test_oversize_no_alloc(void **state) {
        struct pair p;
        pair_open(&p);

        /* The counter works: a legit frame allocates len + 1. */
        raw_write(vsock_conn_fd(p.a), "\x01\x00\x00\x01\x00", 5);
        uint8_t payload[256] = {};
        raw_write(vsock_conn_fd(p.a), payload, sizeof payload);
        uint8_t type, *data;
        uint32_t len;
        alloc_reset();
        assert_int_equal(vsock_read_message(p.b, &type, &data, &len), 0);
        assert_int_equal(atomic_load(&alloc_calls), 1);
        assert_int_equal(atomic_load(&alloc_max), 257);
        free(data);

        /* Headers only: the announced payload never comes. */
        expect_too_large(p.a, p.b, "\x01\xff\xff\xff\xff");
        pair_close(&p);

        /* Default max + 1. */
        pair_open(&p);
        assert_int_equal(vsock_conn_max_payload(p.b), VSOCK_MAX_PAYLOAD_DEFAULT);
        uint8_t h[5];
        vsock_frame_header(h, 2, VSOCK_MAX_PAYLOAD_DEFAULT + 1);
        expect_too_large(p.a, p.b, (const char *) h);
        pair_close(&p);

        /* A lowered limit: exactly max passes, max + 1 does not. */
        pair_open(&p);
        vsock_conn_set_max_payload(p.b, 16);
        assert_int_equal(vsock_conn_max_payload(p.b), 16);
        assert_int_equal(vsock_write_message(p.a, 4, "0123456789abcdef", 16), 0);
        assert_int_equal(vsock_read_message(p.b, &type, &data, &len), 0);
        assert_int_equal(len, 16);
        free(data);
        vsock_frame_header(h, 2, 17);
        expect_too_large(p.a, p.b, (const char *) h);
        pair_close(&p);
}

static void test_write_too_large(void **state) {
        struct pair p;
        pair_open(&p);
        /* Refused before anything is sent (the pointer is never read). */
        int r = vsock_write_message(p.a, 1, "x", (size_t) UINT32_MAX + 1);
        assert_int_equal(r, VSOCK_ERR(VSOCK_E_FRAME_TOO_LARGE, EMSGSIZE));
        struct iovec iov[2] = {
                { .iov_base = "x", .iov_len = UINT32_MAX },
                { .iov_base = "y", .iov_len = 1 },
        };
        r = vsock_write_messagev(p.a, 1, iov, 2);
        assert_int_equal(r, VSOCK_ERR(VSOCK_E_FRAME_TOO_LARGE, EMSGSIZE));
        char c;
        assert_int_equal(recv(vsock_conn_fd(p.b), &c, 1, MSG_DONTWAIT), -1);
        assert_int_equal(errno, EAGAIN);
        pair_close(&p);
}

/* ---- write errors ------------------------------------------------------ */

static void test_write_header_error(void **state) {
        struct pair p;
        pair_open(&p);
        vsock_conn_close(p.b);
        /* Peer gone: not even the header goes out, and no SIGPIPE. */
        int r = vsock_write_message(p.a, 1, "abc", 3);
        assert_int_equal(r, VSOCK_ERR(VSOCK_E_WRITE_HEADER, EPIPE));
        vsock_conn_close(p.a);
}

struct close_after_arg {
        int fd;
        size_t n;
};

static void *read_some_then_close(void *p) {
        struct close_after_arg *a = p;
        char buf[1000];
        size_t got = 0;
        while (got < a->n) {
                ssize_t k = read(a->fd, buf, (a->n - got < sizeof buf ? a->n - got : sizeof buf));
                if (k <= 0)
                        break;
                got += (size_t) k;
        }
        close(a->fd);
        return NULL;
}

static void test_write_request_error(void **state) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        vsock_conn *c;
        assert_int_equal(vsock_conn_from_fd(sv[0], &c), 0);
        vsock_conn_set_write_deadline(c, vsock_deadline_in(30000)); /* hang catcher */

        /* Far more than the socket buffers hold; the peer reads a little,
         * then hangs up in the middle of the payload. */
        size_t n = 16u << 20;
        uint8_t *big = calloc(1, n);
        struct close_after_arg a = { .fd = sv[1], .n = 1000 };
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, read_some_then_close, &a), 0);
        int r = vsock_write_message(c, 1, big, n);
        pthread_join(th, NULL);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_WRITE_REQUEST);
        assert_true(vsock_err_errno(r) == EPIPE || vsock_err_errno(r) == ECONNRESET);
        free(big);
        vsock_conn_close(c);
}

/* ---- deadlines and cancellation ---------------------------------------- */

static void test_read_deadline(void **state) {
        struct pair p;
        pair_open(&p);
        uint8_t type, *data;
        uint32_t len;

        int64_t t0 = vsock_now_ns();
        vsock_conn_set_read_deadline(p.b, vsock_deadline_in(100));
        int r = vsock_read_message(p.b, &type, &data, &len);
        int64_t el = vsock_now_ns() - t0;
        assert_int_equal(vsock_err_kind(r), VSOCK_E_TIMEOUT);
        assert_int_equal(vsock_err_errno(r), ETIMEDOUT);
        /* Never early; the upper bound only catches a hang. */
        assert_true(el >= 95 * 1000000LL);
        assert_true(el < 20 * 1000000000LL);

        /* Deadline inside a payload: still a timeout, not a data error. */
        raw_write(vsock_conn_fd(p.a), "\x01\x00\x00\x00\x05" "ab", 7);
        vsock_conn_set_read_deadline(p.b, vsock_deadline_in(50));
        r = vsock_read_message(p.b, &type, &data, &len);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_TIMEOUT);

        /* Cleared deadline: blocks until data comes (it is already there). */
        pair_close(&p);
        pair_open(&p);
        vsock_conn_set_read_deadline(p.b, 0);
        assert_int_equal(vsock_write_message(p.a, 2, "hi", 2), 0);
        assert_int_equal(vsock_read_message(p.b, &type, &data, &len), 0);
        free(data);

        /* Write deadline: nobody reads, buffers fill, the write times out. */
        vsock_conn_set_write_deadline(p.a, vsock_deadline_in(100));
        size_t n = 16u << 20;
        uint8_t *big = calloc(1, n);
        r = vsock_write_message(p.a, 1, big, n);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_TIMEOUT);
        free(big);
        pair_close(&p);
}

struct cancel_arg {
        int efd;
};

static void *cancel_soon(void *p) {
        struct cancel_arg *a = p;
        struct timespec ts = { 0, 50 * 1000000 };
        nanosleep(&ts, NULL);
        uint64_t one = 1;
        (void) !write(a->efd, &one, sizeof one);
        return NULL;
}

static void test_cancel(void **state) {
        struct pair p;
        pair_open(&p);
        int efd = eventfd(0, EFD_CLOEXEC);
        assert_true(efd >= 0);
        vsock_conn_set_cancel_fd(p.b, efd);
        assert_int_equal(vsock_conn_cancel_fd(p.b), efd);
        vsock_conn_set_read_deadline(p.b, vsock_deadline_in(30000)); /* hang catcher */

        /* Fired while blocked. */
        struct cancel_arg a = { .efd = efd };
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, cancel_soon, &a), 0);
        uint8_t type, *data;
        uint32_t len;
        int r = vsock_read_message(p.b, &type, &data, &len);
        pthread_join(th, NULL);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_CANCELLED);
        assert_int_equal(vsock_err_errno(r), ECANCELED);

        /* Already fired: returns at once, even for writes. */
        vsock_conn_set_cancel_fd(p.a, efd);
        r = vsock_write_message(p.a, 1, "x", 1);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_CANCELLED);

        /* Cleared: works again. */
        vsock_conn_set_cancel_fd(p.a, -1);
        vsock_conn_set_cancel_fd(p.b, -1);
        assert_int_equal(vsock_conn_cancel_fd(p.b), -1);
        assert_int_equal(vsock_write_message(p.a, 1, "x", 1), 0);
        assert_int_equal(vsock_read_message(p.b, &type, &data, &len), 0);
        free(data);
        close(efd);
        pair_close(&p);
}

/* ---- concurrent writers ------------------------------------------------ */

#define FRAMES_PER_WRITER 10000

struct mt_writer {
        vsock_conn *c;
        uint8_t id;
        int rc;
};

static size_t mt_size(unsigned seq) {
        /* Mostly small, every 50th well beyond the socket buffer so a frame
         * needs several sendmsg calls and interleaving would show. */
        if (seq % 50 == 0)
                return 300000 + seq;
        return (seq * 7919u) % 3000;
}

static void mt_fill(uint8_t *p, size_t n, uint8_t id, unsigned seq) {
        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t) (id * 131 + seq * 7 + i);
        if (n >= 4)
                memcpy(p, &seq, 4);
}

static void *mt_write(void *arg) {
        struct mt_writer *w = arg;
        uint8_t *buf = malloc(300000 + FRAMES_PER_WRITER);
        for (unsigned seq = 0; seq < FRAMES_PER_WRITER; seq++) {
                size_t n = mt_size(seq);
                mt_fill(buf, n, w->id, seq);
                w->rc = vsock_write_message(w->c, w->id, buf, n);
                if (w->rc < 0)
                        break;
        }
        free(buf);
        return NULL;
}

static void test_concurrent_writers(void **state) {
        struct pair p;
        pair_open(&p);
        vsock_conn_set_read_deadline(p.b, vsock_deadline_in(120000)); /* hang catcher */

        struct mt_writer w[2] = { { .c = p.a, .id = 1 }, { .c = p.a, .id = 2 } };
        pthread_t th[2];
        for (int i = 0; i < 2; i++)
                assert_int_equal(pthread_create(&th[i], NULL, mt_write, &w[i]), 0);

        unsigned next[3] = { 0, 0, 0 };
        uint8_t *want = malloc(300000 + FRAMES_PER_WRITER);
        for (int k = 0; k < 2 * FRAMES_PER_WRITER; k++) {
                uint8_t type, *data;
                uint32_t len;
                int r = vsock_read_message(p.b, &type, &data, &len);
                if (r < 0)
                        fail_msg("frame %d: %s", k, vsock_strerror(r));
                if (type != 1 && type != 2)
                        fail_msg("frame %d: bad type %u (stream out of sync)", k, type);
                unsigned seq = next[type]++;
                size_t n = mt_size(seq);
                if (len != n)
                        fail_msg("frame %d: writer %u seq %u: len %u want %zu", k, type, seq, len, n);
                mt_fill(want, n, type, seq);
                if (n && memcmp(data, want, n) != 0)
                        fail_msg("frame %d: writer %u seq %u: payload corrupted", k, type, seq);
                free(data);
        }
        free(want);
        for (int i = 0; i < 2; i++) {
                pthread_join(th[i], NULL);
                assert_int_equal(w[i].rc, 0);
        }
        assert_int_equal(next[1], FRAMES_PER_WRITER);
        assert_int_equal(next[2], FRAMES_PER_WRITER);
        pair_close(&p);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_header_encoding),
                cmocka_unit_test(test_golden_frames),
                cmocka_unit_test(test_round_trip_sizes),
                cmocka_unit_test(test_writev_and_into),
                cmocka_unit_test(test_one_byte_writes),
                cmocka_unit_test(test_truncation),
                cmocka_unit_test(test_oversize_no_alloc),
                cmocka_unit_test(test_write_too_large),
                cmocka_unit_test(test_write_header_error),
                cmocka_unit_test(test_write_request_error),
                cmocka_unit_test(test_read_deadline),
                cmocka_unit_test(test_cancel),
                cmocka_unit_test(test_concurrent_writers),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
