/* vhost-user framing in vsock-vhost (src/vhost/vumsg.c): messages arrive
 * whole however the bytes are cut, descriptors stay with their message,
 * and a front-end that announces a huge payload, speaks another version,
 * or sends more descriptors than a message may carry is refused (and the
 * surplus descriptors are closed, not leaked). */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake-driver.h"
#include "vhost/vumsg.h"

static int count_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        int n = 0;
        for (struct dirent *e; (e = readdir(d));)
                n += e->d_name[0] != '.';
        closedir(d);
        return n;
}

static void send_with_fds(int sock, const void *data, size_t len, const int *fds, unsigned nfds) {
        assert_int_equal(fdrv_send_fds(sock, data, len, fds, nfds), (ssize_t) len);
}

static size_t frame(uint8_t *out, uint32_t req, uint32_t flags, const void *payload, uint32_t size) {
        uint32_t h[3] = { req, flags, size };
        memcpy(out, h, 12);
        if (size)
                memcpy(out + 12, payload, size);
        return 12 + size;
}

static void pair(int sv[2]) { assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0); }

static void test_pieces_and_fds(void **state) {
        int sv[2];
        pair(sv);
        struct vu_reader r;
        vu_reader_init(&r);
        assert_int_equal(vu_reader_read(&r, sv[1]), 0);

        uint8_t buf[64];
        uint64_t v = 0x1122334455667788ull;
        size_t n = frame(buf, VU_SET_VRING_KICK, VU_VERSION, &v, 8);
        int efd = eventfd(0, EFD_CLOEXEC);
        /* The header in two pieces (the fd with the first), then the payload. */
        send_with_fds(sv[0], buf, 5, &efd, 1);
        assert_int_equal(vu_reader_read(&r, sv[1]), 0);
        send_with_fds(sv[0], buf + 5, 9, NULL, 0);
        assert_int_equal(vu_reader_read(&r, sv[1]), 0);
        /* The rest of the payload and, right behind it, the next message
         * with its own descriptor. */
        uint8_t next[64];
        size_t nn = frame(next, VU_SET_VRING_CALL, VU_VERSION | VU_FLAG_NEED_REPLY, &v, 8);
        int efd2 = eventfd(0, EFD_CLOEXEC);
        send_with_fds(sv[0], buf + 14, n - 14, NULL, 0);
        send_with_fds(sv[0], next, nn, &efd2, 1);

        assert_int_equal(vu_reader_read(&r, sv[1]), 1);
        assert_int_equal(r.msg.request, VU_SET_VRING_KICK);
        assert_int_equal(r.msg.size, 8);
        assert_memory_equal(r.msg.payload, &v, 8);
        assert_int_equal(r.msg.n_fds, 1); /* only its own */
        int got = vu_msg_take_fd(&r.msg);
        assert_true(got >= 0);
        assert_int_equal(vu_msg_take_fd(&r.msg), -1); /* taken */
        close(got);
        vu_reader_next(&r);

        assert_int_equal(vu_reader_read(&r, sv[1]), 1);
        assert_int_equal(r.msg.request, VU_SET_VRING_CALL);
        assert_int_equal(r.msg.flags, VU_VERSION | VU_FLAG_NEED_REPLY);
        assert_int_equal(r.msg.n_fds, 1);
        int before = count_fds();
        vu_reader_next(&r); /* an untaken descriptor is closed */
        assert_int_equal(count_fds(), before - 1);

        close(sv[0]);
        assert_int_equal(vu_reader_read(&r, sv[1]), -ECONNRESET);
        close(sv[1]);
        close(efd);
        close(efd2);
}

static void test_bad_headers(void **state) {
        int sv[2];
        uint8_t buf[64];
        struct vu_reader r;

        /* Announces more payload than any request has: refused before a
         * payload byte is read. */
        pair(sv);
        vu_reader_init(&r);
        uint32_t h[3] = { VU_SET_MEM_TABLE, VU_VERSION, VU_PAYLOAD_MAX + 1 };
        send_with_fds(sv[0], h, 12, NULL, 0);
        assert_int_equal(vu_reader_read(&r, sv[1]), -EPROTO);
        close(sv[0]);
        close(sv[1]);

        /* Another protocol version. */
        pair(sv);
        vu_reader_init(&r);
        send_with_fds(sv[0], buf, frame(buf, VU_GET_FEATURES, 0x2, NULL, 0), NULL, 0);
        assert_int_equal(vu_reader_read(&r, sv[1]), -EPROTO);
        close(sv[0]);
        close(sv[1]);

        /* A header cut short by EOF. */
        pair(sv);
        vu_reader_init(&r);
        send_with_fds(sv[0], buf, 7, NULL, 0);
        close(sv[0]);
        assert_int_equal(vu_reader_read(&r, sv[1]), -ECONNRESET);
        close(sv[1]);
}

static void test_too_many_fds(void **state) {
        int sv[2];
        pair(sv);
        int fds[VU_MAX_FDS + 1];
        for (unsigned i = 0; i < VU_MAX_FDS + 1; i++)
                fds[i] = eventfd(0, EFD_CLOEXEC);
        uint8_t buf[64];
        struct vu_reader r;
        vu_reader_init(&r);
        int before = count_fds();
        send_with_fds(sv[0], buf, frame(buf, VU_SET_MEM_TABLE, VU_VERSION, NULL, 0), fds, VU_MAX_FDS + 1);
        assert_int_equal(vu_reader_read(&r, sv[1]), -EPROTO);
        vu_reader_next(&r);
        /* Every received copy was closed again. */
        assert_int_equal(count_fds(), before);
        for (unsigned i = 0; i < VU_MAX_FDS + 1; i++)
                close(fds[i]);
        close(sv[0]);
        close(sv[1]);
}

static void test_reply_frame(void **state) {
        uint8_t out[VU_HDR_SIZE + 8];
        uint64_t v = 42;
        assert_int_equal(vu_reply_frame(VU_GET_FEATURES, &v, 8, out), 20);
        uint32_t h[3];
        memcpy(h, out, 12);
        assert_int_equal(h[0], VU_GET_FEATURES);
        assert_int_equal(h[1], VU_VERSION | VU_FLAG_REPLY);
        assert_int_equal(h[2], 8);
        assert_memory_equal(out + 12, &v, 8);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_pieces_and_fds),
                cmocka_unit_test(test_bad_headers),
                cmocka_unit_test(test_too_many_fds),
                cmocka_unit_test(test_reply_frame),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
