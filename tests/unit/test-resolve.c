/* resolve.c: literals, the built-in names, a fixture hosts file
 * (tests/data/hosts-fixture), and "not found" without touching NSS. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/fwd/resolve.h"

static char fixture[4096];

static int setup(void **state) {
        const char *d = getenv("TEST_DATA");
        snprintf(fixture, sizeof fixture, "%s/hosts-fixture", d ? d : "tests/data");
        return 0;
}

/* "a.b.c.d:port" or "[v6%scope]:port" of one result. */
static const char *fmt(const struct resolve_addr *r) {
        static char out[128];
        char a[INET6_ADDRSTRLEN];
        if (r->sa.ss_family == AF_INET) {
                const struct sockaddr_in *in4 = (const struct sockaddr_in *) &r->sa;
                assert_int_equal(r->len, sizeof *in4);
                inet_ntop(AF_INET, &in4->sin_addr, a, sizeof a);
                snprintf(out, sizeof out, "%s:%u", a, ntohs(in4->sin_port));
        } else {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &r->sa;
                assert_int_equal(r->sa.ss_family, AF_INET6);
                assert_int_equal(r->len, sizeof *in6);
                inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof a);
                if (in6->sin6_scope_id)
                        snprintf(out, sizeof out, "[%s%%%u]:%u", a, in6->sin6_scope_id, ntohs(in6->sin6_port));
                else
                        snprintf(out, sizeof out, "[%s]:%u", a, ntohs(in6->sin6_port));
        }
        return out;
}

static void test_literals(void **state) {
        struct resolve_addr r[RESOLVE_MAX];
        assert_int_equal(resolve_literal("192.0.2.1", 80, r, RESOLVE_MAX), 1);
        assert_string_equal(fmt(&r[0]), "192.0.2.1:80");
        assert_int_equal(resolve_literal("2001:db8::1", 8080, r, RESOLVE_MAX), 1);
        assert_string_equal(fmt(&r[0]), "[2001:db8::1]:8080");
        assert_int_equal(resolve_literal("::ffff:10.0.0.1", 1, r, RESOLVE_MAX), 1);
        assert_string_equal(fmt(&r[0]), "[::ffff:10.0.0.1]:1");
        assert_int_equal(resolve_literal("fe80::1%7", 22, r, RESOLVE_MAX), 1);
        assert_string_equal(fmt(&r[0]), "[fe80::1%7]:22");
        /* A zone by interface name: the loopback is there everywhere. */
        assert_int_equal(resolve_literal("fe80::1%lo", 22, r, RESOLVE_MAX), 1);
        assert_true(((struct sockaddr_in6 *) &r[0].sa)->sin6_scope_id > 0);
        assert_int_equal(resolve_literal("fe80::1%no-such-if0", 22, r, RESOLVE_MAX), 0);
        assert_int_equal(resolve_literal("fe80::1%", 22, r, RESOLVE_MAX), 0);
        assert_int_equal(resolve_literal("10.0.0.1%3", 22, r, RESOLVE_MAX), 0);

        /* Not literals: inet_pton's strictness, no inet_aton forms. */
        assert_int_equal(resolve_literal("10.1", 80, r, RESOLVE_MAX), 0);
        assert_int_equal(resolve_literal("0x7f.0.0.1", 80, r, RESOLVE_MAX), 0);
        assert_int_equal(resolve_literal("[::1]", 80, r, RESOLVE_MAX), 0);
        assert_int_equal(resolve_literal("", 80, r, RESOLVE_MAX), 0);
        assert_int_equal(resolve_literal("example.com", 80, r, RESOLVE_MAX), 0);
        assert_int_equal(resolve_literal(NULL, 80, r, RESOLVE_MAX), 0);
}

static void test_builtin_names(void **state) {
        struct resolve_addr r[RESOLVE_MAX];
        static const char *const both[] = { "localhost", "LocalHost", "localhost.", "localhost.localdomain" };
        for (size_t i = 0; i < sizeof both / sizeof both[0]; i++) {
                assert_int_equal(resolve_literal(both[i], 5000, r, RESOLVE_MAX), 2);
                assert_string_equal(fmt(&r[0]), "127.0.0.1:5000");
                assert_string_equal(fmt(&r[1]), "[::1]:5000");
        }
        assert_int_equal(resolve_literal("ip6-localhost", 1, r, RESOLVE_MAX), 1);
        assert_string_equal(fmt(&r[0]), "[::1]:1");
        assert_int_equal(resolve_literal("ip6-loopback", 1, r, RESOLVE_MAX), 1);
        assert_int_equal(resolve_literal("localhost..", 1, r, RESOLVE_MAX), 0);
        assert_int_equal(resolve_literal("xlocalhost", 1, r, RESOLVE_MAX), 0);
        assert_int_equal(resolve_literal("localhost", 1, r, 1), 0); /* no room for both */
}

static void test_hosts_file(void **state) {
        struct resolve_addr r[RESOLVE_MAX];
        /* Every matching line in file order, case-insensitively, without
         * repeats. */
        assert_int_equal(resolve_host("web.example", 443, fixture, false, r, RESOLVE_MAX), 3);
        assert_string_equal(fmt(&r[0]), "10.1.2.3:443");
        assert_string_equal(fmt(&r[1]), "10.1.2.4:443");
        assert_string_equal(fmt(&r[2]), "[2001:db8::5]:443");
        /* Aliases. */
        assert_int_equal(resolve_host("web", 1, fixture, false, r, RESOLVE_MAX), 1);
        assert_string_equal(fmt(&r[0]), "10.1.2.3:1");
        assert_int_equal(resolve_host("DUP", 1, fixture, false, r, RESOLVE_MAX), 1);
        assert_int_equal(resolve_host("mixed.case.name", 1, fixture, false, r, RESOLVE_MAX), 1);
        assert_string_equal(fmt(&r[0]), "192.0.2.8:1");
        /* A trailing dot on either side. */
        assert_int_equal(resolve_host("trailing.dot", 1, fixture, false, r, RESOLVE_MAX), 1);
        assert_int_equal(resolve_host("web.example.", 1, fixture, false, r, RESOLVE_MAX), 3);
        assert_int_equal(resolve_host("linklocal", 2, fixture, false, r, RESOLVE_MAX), 1);
        assert_string_equal(fmt(&r[0]), "[fe80::1%1]:2");
        assert_int_equal(resolve_host("indented", 2, fixture, false, r, RESOLVE_MAX), 1);
        assert_string_equal(fmt(&r[0]), "192.0.2.9:2");
        assert_int_equal(resolve_host("after", 2, fixture, false, r, RESOLVE_MAX), 1);
        assert_int_equal(resolve_host("comment", 2, fixture, false, r, RESOLVE_MAX), -ENOENT);
        /* Truncated to the room given. */
        assert_int_equal(resolve_host("web.example", 1, fixture, false, r, 2), 2);

        /* Lines that do not parse give nothing; literals and built-ins
         * come before the file. */
        assert_int_equal(resolve_host("broken", 1, fixture, false, r, RESOLVE_MAX), -ENOENT);
        assert_int_equal(resolve_host("192.0.2.7", 1, fixture, false, r, RESOLVE_MAX), 1);
        assert_int_equal(resolve_host("localhost", 9, fixture, false, r, RESOLVE_MAX), 2);
        assert_string_equal(fmt(&r[1]), "[::1]:9");
        assert_int_equal(resolve_host("no-such-name", 1, fixture, false, r, RESOLVE_MAX), -ENOENT);
        assert_int_equal(resolve_host("", 1, fixture, false, r, RESOLVE_MAX), -EINVAL);

        /* No hosts file at all is "not found", not an error. */
        assert_int_equal(resolve_host("web.example", 1, "/nonexistent/hosts", false, r, RESOLVE_MAX), -ENOENT);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_literals),
                cmocka_unit_test(test_builtin_names),
                cmocka_unit_test(test_hosts_file),
        };
        return cmocka_run_group_tests_name("resolve", tests, setup, NULL);
}
