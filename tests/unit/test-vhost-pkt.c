/* vsock-vhost's packet layer (src/vhost/pkt.c): the header's exact byte
 * layout, the verdict on every kind of bad header a guest can send, and
 * the scatter/gather copies; and the guest memory table (guestmem.c):
 * overlapping, wrapping and short-file regions are refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "vhost/guestmem.h"
#include "vhost/pkt.h"

/* ---- header --------------------------------------------------------------- */

static void test_header_layout(void **state) {
        struct vsock_hdr h = {
                .src_cid = 0x0102030405060708ull,
                .dst_cid = 2,
                .src_port = 0x11223344,
                .dst_port = 5000,
                .len = 0x01020304,
                .type = 1,
                .op = 5,
                .flags = 3,
                .buf_alloc = 0x40000,
                .fwd_cnt = 0xdeadbeef,
        };
        uint8_t b[VSOCK_HDR_SIZE];
        vsock_hdr_encode(&h, b);
        /* Little-endian, packed, in the spec's field order. */
        static const uint8_t want[VSOCK_HDR_SIZE] = {
                0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* src_cid */
                0x02, 0, 0, 0, 0, 0, 0, 0,                      /* dst_cid */
                0x44, 0x33, 0x22, 0x11,                         /* src_port */
                0x88, 0x13, 0, 0,                               /* dst_port 5000 */
                0x04, 0x03, 0x02, 0x01,                         /* len */
                0x01, 0x00,                                     /* type */
                0x05, 0x00,                                     /* op */
                0x03, 0, 0, 0,                                  /* flags */
                0x00, 0x00, 0x04, 0x00,                         /* buf_alloc */
                0xef, 0xbe, 0xad, 0xde,                         /* fwd_cnt */
        };
        assert_memory_equal(b, want, sizeof want);
        struct vsock_hdr back;
        memset(&back, 0, sizeof back);
        vsock_hdr_decode(b, &back);
        assert_int_equal(back.src_cid, h.src_cid);
        assert_int_equal(back.dst_cid, h.dst_cid);
        assert_int_equal(back.src_port, h.src_port);
        assert_int_equal(back.dst_port, h.dst_port);
        assert_int_equal(back.len, h.len);
        assert_int_equal(back.type, h.type);
        assert_int_equal(back.op, h.op);
        assert_int_equal(back.flags, h.flags);
        assert_int_equal(back.buf_alloc, h.buf_alloc);
        assert_int_equal(back.fwd_cnt, h.fwd_cnt);
}

static struct vsock_hdr good(void) {
        return (struct vsock_hdr) {
                .src_cid = 3, .dst_cid = 2, .src_port = 1024, .dst_port = 52, .type = 1, .op = VSOCK_OP_RW, .len = 10,
        };
}

static void expect_verdict(struct vsock_hdr h, uint64_t body, enum pkt_verdict want) {
        const char *why = NULL;
        assert_int_equal(vsock_pkt_check(&h, 3, body, &why), want);
        if (want != PKT_OK)
                assert_non_null(why);
}

static void test_verdicts(void **state) {
        struct vsock_hdr h = good();
        expect_verdict(h, 10, PKT_OK);
        expect_verdict(h, 100, PKT_OK); /* a buffer bigger than the payload is fine */

        h = good(), h.src_cid = 4; /* speaking for another guest */
        expect_verdict(h, 10, PKT_DROP);
        h = good(), h.src_cid = 3 | (1ull << 32);
        expect_verdict(h, 10, PKT_DROP);
        h = good(), h.dst_cid = 1; /* not for the host */
        expect_verdict(h, 10, PKT_DROP);

        h = good(), h.type = 2; /* seqpacket: not offered */
        expect_verdict(h, 10, PKT_RST);
        h = good(), h.op = 0;
        expect_verdict(h, 10, PKT_RST);
        h = good(), h.op = 8;
        expect_verdict(h, 10, PKT_RST);
        h = good(), h.op = 0xffff;
        expect_verdict(h, 10, PKT_RST);
        h = good(); /* payload longer than the chain */
        expect_verdict(h, 9, PKT_RST);
        h = good(), h.len = VSOCK_MAX_PKT_PAYLOAD + 1;
        expect_verdict(h, UINT32_MAX, PKT_RST);
        h = good(), h.len = UINT32_MAX;
        expect_verdict(h, UINT64_MAX, PKT_RST);
        h = good(), h.op = VSOCK_OP_CREDIT_UPDATE; /* control with a payload */
        expect_verdict(h, 10, PKT_RST);

        /* An RST is never answered with an RST. */
        h = good(), h.op = VSOCK_OP_RST, h.type = 7;
        expect_verdict(h, 10, PKT_DROP);
        h = good(), h.op = VSOCK_OP_RST;
        expect_verdict(h, 10, PKT_DROP);
        h = good(), h.op = VSOCK_OP_RST, h.len = 0;
        expect_verdict(h, 0, PKT_OK);
}

/* ---- iovec copies ------------------------------------------------------------ */

static void test_iov(void **state) {
        uint8_t a[3], b[0 + 1], c[5];
        struct iovec iov[4] = { { a, 3 }, { b, 0 }, { c, 5 }, { b, 1 } };
        const uint8_t src[9] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
        assert_int_equal(iov_total(iov, 4), 9);
        assert_int_equal(iov_scatter(iov, 4, 0, src, 9), 9);
        assert_int_equal(a[2], 3);
        assert_int_equal(c[0], 4);
        assert_int_equal(b[0], 9);
        uint8_t out[16] = { 0 };
        /* From an offset inside the third piece, asking for more than is left. */
        assert_int_equal(iov_gather(iov, 4, 4, out, 16), 5);
        const uint8_t want[5] = { 5, 6, 7, 8, 9 };
        assert_memory_equal(out, want, 5);
        /* Past the end: nothing. */
        assert_int_equal(iov_gather(iov, 4, 9, out, 1), 0);
        assert_int_equal(iov_scatter(iov, 4, 100, src, 1), 0);

        struct iovec s[4];
        unsigned n = iov_slice(iov, 4, 2, 4, s, 4);
        assert_int_equal(n, 2);
        assert_ptr_equal(s[0].iov_base, a + 2);
        assert_int_equal(s[0].iov_len, 1);
        assert_ptr_equal(s[1].iov_base, c);
        assert_int_equal(s[1].iov_len, 3);
        /* Bounded by the output's room. */
        assert_int_equal(iov_slice(iov, 4, 0, 9, s, 1), 1);
        assert_int_equal(iov_slice(iov, 4, 0, 0, s, 4), 0);
}

/* ---- guest memory ---------------------------------------------------------------- */

static void test_guestmem_ranges(void **state) {
        static uint8_t ram[8192];
        struct guestmem m = { 0 };
        assert_int_equal(guestmem_add_ptr(&m, 0x1000, 4096, 0x10000, ram), 0);
        /* Overlaps by guest address, by front-end address; empty; wrapping. */
        assert_int_equal(guestmem_add_ptr(&m, 0x1fff, 16, 0x90000, ram), -EINVAL);
        assert_int_equal(guestmem_add_ptr(&m, 0x9000, 16, 0x10ff0, ram), -EINVAL);
        assert_int_equal(guestmem_add_ptr(&m, 0x9000, 0, 0x90000, ram), -EINVAL);
        assert_int_equal(guestmem_add_ptr(&m, UINT64_MAX - 10, 16, 0x90000, ram), -EINVAL);
        assert_int_equal(guestmem_add_ptr(&m, 0x9000, 16, UINT64_MAX - 10, ram), -EINVAL);
        assert_int_equal(guestmem_add_ptr(&m, 0x2000, 4096, 0x20000, ram + 4096), 0);

        assert_ptr_equal(guestmem_gpa(&m, 0x1000, 4096), ram);
        assert_null(guestmem_gpa(&m, 0x1000, 4097)); /* crosses into the next region */
        assert_null(guestmem_gpa(&m, 0x1000, 0));
        assert_null(guestmem_gpa(&m, 0xfff, 2));
        assert_null(guestmem_gpa(&m, 0x3000, 1));
        assert_ptr_equal(guestmem_uva(&m, 0x20010, 16), ram + 4096 + 16);
        assert_null(guestmem_uva(&m, 0x1000, 1));

        struct iovec iov[2];
        unsigned n = 0;
        assert_int_equal(guestmem_gpa_iov(&m, 0x1ffe, 4, iov, 2, &n), 0);
        assert_int_equal(n, 2);
        assert_ptr_equal(iov[0].iov_base, ram + 4094);
        assert_ptr_equal(iov[1].iov_base, ram + 4096);
        n = 1;
        assert_int_equal(guestmem_gpa_iov(&m, 0x1ffe, 4, iov, 2, &n), -E2BIG);
        n = 0;
        assert_int_equal(guestmem_gpa_iov(&m, 0x2ffe, 4, iov, 2, &n), -EFAULT);
        n = 0;
        assert_int_equal(guestmem_gpa_iov(&m, UINT64_MAX, 2, iov, 2, &n), -EFAULT);
        n = 0;
        assert_int_equal(guestmem_gpa_iov(&m, 0x5000, 0, iov, 2, &n), 0);
        assert_int_equal(n, 0);

        for (int i = 2; i < GUESTMEM_MAX_REGIONS; i++)
                assert_int_equal(guestmem_add_ptr(&m, 0x100000u * (unsigned) i, 16, 0x1000000u * (unsigned) i, ram), 0);
        assert_int_equal(guestmem_add_ptr(&m, 0x7000000, 16, 0x70000000, ram), -ENOSPC);
        guestmem_clear(&m);
        assert_int_equal(m.n, 0);
        assert_null(guestmem_gpa(&m, 0x1000, 1));
}

static void test_guestmem_fd(void **state) {
        int fd = memfd_create("guest", MFD_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, 3 * 4096), 0);
        struct guestmem m = { 0 };
        /* Past the end of the file: would fault with SIGBUS on access. */
        assert_int_equal(guestmem_map_fd(&m, 0, 8192, 0x10000, fd, 8192), -EFBIG);
        assert_int_equal(m.n, 0);
        /* An offset that is not page-aligned maps what it says. */
        assert_int_equal(pwrite(fd, "abcdef", 6, 4096 + 100), 6);
        assert_int_equal(guestmem_map_fd(&m, 0x100000, 4096, 0x10000, fd, 4096 + 96), 0);
        const char *p = guestmem_gpa(&m, 0x100004, 6);
        assert_non_null(p);
        assert_memory_equal(p, "abcdef", 6);
        guestmem_clear(&m);
        close(fd);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_header_layout),
                cmocka_unit_test(test_verdicts),
                cmocka_unit_test(test_iov),
                cmocka_unit_test(test_guestmem_ranges),
                cmocka_unit_test(test_guestmem_fd),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
