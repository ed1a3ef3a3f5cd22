/* Firecracker's CONNECT command as vsock-vhost reads it (src/vhost/hybrid.c):
 * what Firecracker accepts (any case, blanks, '+', trailing words), what it
 * refuses (no port, a port past 32 bits, junk, no newline within 32 bytes),
 * the "OK" reply and the host-side port numbering from 2^30. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vhost/hybrid.h"

/* Feed @s byte by byte: the result of the last byte fed, and the port. */
static int feed(const char *s, size_t n, uint32_t *port, size_t *used) {
        struct hybrid_line l = { 0 };
        int r = 0;
        size_t i;
        for (i = 0; i < n; i++) {
                r = hybrid_feed(&l, s[i], port);
                if (r != 0) {
                        i++;
                        break;
                }
        }
        *used = i;
        return r;
}

static void expect_port(const char *s, uint32_t want) {
        uint32_t port = 0;
        size_t used;
        assert_int_equal(feed(s, strlen(s), &port, &used), 1);
        assert_int_equal(port, want);
        assert_int_equal(used, strlen(s)); /* nothing read past the '\n' */
}

static void expect_bad(const char *s, size_t n, int want) {
        uint32_t port = 0;
        size_t used;
        assert_int_equal(feed(s, n, &port, &used), want);
}

static void test_accepted(void **state) {
        expect_port("CONNECT 52\n", 52);
        expect_port("connect 0\n", 0);
        expect_port("CoNnEcT 5000\n", 5000);
        expect_port("  CONNECT\t  5000  \r\n", 5000);
        expect_port("CONNECT +7\n", 7);
        expect_port("CONNECT 4294967295\n", UINT32_MAX);
        expect_port("CONNECT 0000000000000000000052\n", 52);
        expect_port("CONNECT 1 2 3\n", 1); /* Firecracker reads two words */
}

static void test_refused(void **state) {
        expect_bad("CONNECT\n", 8, -EINVAL);
        expect_bad("CONNECT \n", 9, -EINVAL);
        expect_bad("CONNEC 5\n", 9, -EINVAL);
        expect_bad("CONNECTX 5\n", 11, -EINVAL);
        expect_bad("CONNECT 4294967296\n", 19, -EINVAL);
        expect_bad("CONNECT -1\n", 11, -EINVAL);
        expect_bad("CONNECT 5x\n", 11, -EINVAL);
        expect_bad("CONNECT ++5\n", 12, -EINVAL);
        expect_bad("CONNECT 0x10\n", 13, -EINVAL);
        expect_bad("\n", 1, -EINVAL);
        expect_bad("CONNECT 5\0\n", 11, -EINVAL);
        expect_bad("CONNECT \xc3\xa9\n", 11, -EINVAL);
        /* 31 bytes and then no '\n': too long. */
        char long_line[64];
        memset(long_line, ' ', sizeof long_line);
        memcpy(long_line, "CONNECT 5", 9);
        expect_bad(long_line, sizeof long_line, -EMSGSIZE);
        /* Exactly 32 bytes with the '\n' is still fine. */
        long_line[HYBRID_LINE_MAX - 1] = '\n';
        expect_port(strndupa(long_line, HYBRID_LINE_MAX), 5);
}

static void test_incomplete(void **state) {
        uint32_t port;
        size_t used;
        assert_int_equal(feed("CONNECT 52", 10, &port, &used), 0);
}

static void test_ok_and_ports(void **state) {
        char buf[HYBRID_LINE_MAX];
        assert_int_equal(hybrid_format_ok(1073741824u, buf, sizeof buf), 14);
        assert_memory_equal(buf, "OK 1073741824\n", 14);
        assert_int_equal(hybrid_format_ok(7, buf, 4), -ENOBUFS);
        assert_int_equal(hybrid_next_port(HYBRID_PORT_FIRST - 1), HYBRID_PORT_FIRST);
        assert_int_equal(hybrid_next_port(HYBRID_PORT_FIRST), HYBRID_PORT_FIRST + 1);
        /* The range is [2^30, 2^31): it wraps back to its start. */
        assert_int_equal(hybrid_next_port(0x7fffffffu), HYBRID_PORT_FIRST);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_accepted),
                cmocka_unit_test(test_refused),
                cmocka_unit_test(test_incomplete),
                cmocka_unit_test(test_ok_and_ports),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
