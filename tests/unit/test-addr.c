#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vsock/addr.h"
#include "vsock/conn.h"
#include "vsock/error.h"

static struct vsock_addr parse_ok(const char *s, uint32_t def) {
        struct vsock_addr a;
        const char *why = NULL;
        int r = vsock_addr_parse(s, def, &a, &why);
        if (r != 0)
                fail_msg("parse \"%s\": %d (%s)", s, r, why ? why : "?");
        return a;
}

static void test_vsock_forms(void **state) {
        struct vsock_addr a = parse_ok("vsock:3:5000", 0);
        assert_int_equal(a.transport, VSOCK_TRANSPORT_VSOCK);
        assert_int_equal(a.cid, 3);
        assert_int_equal(a.port, 5000);

        static const struct {
                const char *s;
                uint32_t cid;
        } names[] = {
                { "vsock:any:1", VSOCK_CID_ANY },
                { "vsock:host:1", VSOCK_CID_HOST },
                { "vsock:local:1", VSOCK_CID_LOCAL },
                { "vsock:hypervisor:1", VSOCK_CID_HYPERVISOR },
                { "vsock:HOST:1", VSOCK_CID_HOST },
                { "vsock::1", VSOCK_CID_ANY },
                { "vsock:4294967295:1", VSOCK_CID_ANY },
                { "vsock:0:1", 0 },
                { "vsock:007:1", 7 },
        };
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
                a = parse_ok(names[i].s, 0);
                assert_int_equal(a.cid, names[i].cid);
                assert_int_equal(a.port, 1);
        }

        a = parse_ok("vsock:3:4294967295", 0);
        assert_int_equal(a.port, VSOCK_PORT_ANY);
        a = parse_ok("vsock:3:0", 0);
        assert_int_equal(a.port, 0);
}

static void test_defaults(void **state) {
        struct vsock_addr a = parse_ok("vsock:3", 5000);
        assert_int_equal(a.cid, 3);
        assert_int_equal(a.port, 5000);
        /* An explicit port wins over the default. */
        a = parse_ok("vsock:3:5001", 5000);
        assert_int_equal(a.port, 5001);

        a = parse_ok("vsock-mux:/run/v.sock", 5002);
        assert_int_equal(a.transport, VSOCK_TRANSPORT_MUX);
        assert_string_equal(a.path, "/run/v.sock");
        assert_int_equal(a.port, 5002);

        a = parse_ok("tcp:example.com", 443);
        assert_string_equal(a.host, "example.com");
        assert_int_equal(a.port, 443);
        a = parse_ok("tcp:[::1]", 8080);
        assert_string_equal(a.host, "::1");
        assert_int_equal(a.port, 8080);

        /* unix has no port: the default is irrelevant. */
        a = parse_ok("unix:/tmp/x.sock", 5000);
        assert_int_equal(a.port, 0);
}

static void test_mux_forms(void **state) {
        struct vsock_addr a = parse_ok("vsock-mux:/run/fc/v.sock:5000", 0);
        assert_int_equal(a.transport, VSOCK_TRANSPORT_MUX);
        assert_string_equal(a.path, "/run/fc/v.sock");
        assert_int_equal(a.port, 5000);

        /* The port is after the LAST ':'. */
        a = parse_ok("vsock-mux:/run/a:b:c.sock:42", 0);
        assert_string_equal(a.path, "/run/a:b:c.sock");
        assert_int_equal(a.port, 42);

        a = parse_ok("vsock-mux:relative.sock:1", 0);
        assert_string_equal(a.path, "relative.sock");
}

static void test_unix_forms(void **state) {
        struct vsock_addr a = parse_ok("unix:/tmp/a:b.sock", 0);
        assert_int_equal(a.transport, VSOCK_TRANSPORT_UNIX);
        assert_string_equal(a.path, "/tmp/a:b.sock");

        a = parse_ok("unix:@abstract-name", 0);
        assert_string_equal(a.path, "@abstract-name");

        /* The longest path that fits sun_path with its NUL. */
        char s[200], want[VSOCK_ADDR_PATH_MAX];
        memset(want, 'p', VSOCK_ADDR_PATH_MAX - 1);
        want[0] = '/';
        want[VSOCK_ADDR_PATH_MAX - 1] = 0;
        snprintf(s, sizeof s, "unix:%s", want);
        a = parse_ok(s, 0);
        assert_string_equal(a.path, want);
}

static void test_tcp_forms(void **state) {
        struct vsock_addr a = parse_ok("tcp:127.0.0.1:80", 0);
        assert_int_equal(a.transport, VSOCK_TRANSPORT_TCP);
        assert_string_equal(a.host, "127.0.0.1");
        assert_int_equal(a.port, 80);

        a = parse_ok("tcp:[::1]:65535", 0);
        assert_string_equal(a.host, "::1");
        assert_int_equal(a.port, 65535);

        a = parse_ok("tcp:[fe80::1%eth0]:22", 0);
        assert_string_equal(a.host, "fe80::1%eth0");

        a = parse_ok("tcp:[::ffff:10.0.0.1]:1", 0);
        assert_string_equal(a.host, "::ffff:10.0.0.1");

        a = parse_ok("tcp:my-host_1.example.com:8080", 0);
        assert_string_equal(a.host, "my-host_1.example.com");

        /* Empty host: every address when listening. */
        a = parse_ok("tcp::8080", 0);
        assert_string_equal(a.host, "");
        assert_int_equal(a.port, 8080);

        /* Port 0 is allowed (an ephemeral port when listening). */
        a = parse_ok("tcp:127.0.0.1:0", 0);
        assert_int_equal(a.port, 0);
}

static void test_errors(void **state) {
        static const struct {
                const char *s;
                uint32_t def;
                const char *why;
        } cases[] = {
                { "", 0, "missing transport (want vsock:, vsock-mux:, unix: or tcp:)" },
                { "/run/x.sock", 0, "missing transport (want vsock:, vsock-mux:, unix: or tcp:)" },
                { "vsock:", 0, "missing CID" },
                { "vsock:3", 0, "missing port" },
                { "vsock:3:", 5000, "empty port" },
                { "vsock::", 0, "empty port" },
                { "vsock:3:4294967296", 0, "port out of range" },
                { "vsock:3:99999999999999999999", 0, "port out of range" },
                { "vsock:3:-1", 0, "port is not a decimal number" },
                { "vsock:3:+1", 0, "port is not a decimal number" },
                { "vsock:3:0x10", 0, "port is not a decimal number" },
                { "vsock:3: 1", 0, "port is not a decimal number" },
                { "vsock:3:1:2", 0, "port is not a decimal number" },
                { "vsock:4294967296:1", 0, "CID out of range" },
                { "vsock:guest:1", 0, "bad CID (want a number or any, host, local, hypervisor)" },
                { "vsock:-3:1", 0, "bad CID (want a number or any, host, local, hypervisor)" },
                { "vsock-mux:", 0, "missing socket path" },
                { "vsock-mux::5000", 0, "missing socket path" },
                { "vsock-mux:/run/v.sock", 0, "missing port" },
                { "vsock-mux:/run/v.sock:", 0, "empty port" },
                { "vsock-mux:/run/a:b", 0, "port is not a decimal number" },
                { "vsock-mux:/run/v.sock:4294967296", 0, "port out of range" },
                { "unix:", 0, "missing socket path" },
                { "unix:@", 0, "empty abstract socket name" },
                { "tcp:", 80, "missing host" },
                { "tcp:host", 0, "missing port" },
                { "tcp:host:", 80, "empty port" },
                { "tcp:host:65536", 0, "port out of range" },
                { "tcp:host", 70000, "port out of range" },
                { "tcp:host:http", 0, "port is not a decimal number" },
                { "tcp:::1:80", 0, "IPv6 address must be in brackets: tcp:[ADDR]:PORT" },
                { "tcp:[::1:80", 0, "unterminated [" },
                { "tcp:[]:80", 0, "empty []" },
                { "tcp:[::1]80", 0, "junk after ] (want [IPv6]:PORT)" },
                { "tcp:[::1]:", 0, "empty port" },
                { "tcp:[not-v6]:80", 0, "bad IPv6 address in []" },
                { "tcp:[1.2.3.4]:80", 0, "bad IPv6 address in []" },
                { "tcp:[fe80::1%]:80", 0, "empty IPv6 zone" },
                { "tcp:bad/host:80", 0, "bad character in host name" },
                { "tcp:a]b:80", 0, "bad character in host name" },
                { "tcp:sp ace:80", 0, "bad character in host name" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                struct vsock_addr a = { .transport = 99, .port = 1234 };
                const char *why = NULL;
                int r = vsock_addr_parse(cases[i].s, cases[i].def, &a, &why);
                if (r >= 0)
                        fail_msg("\"%s\" parsed but should fail with \"%s\"", cases[i].s, cases[i].why);
                assert_int_equal(r, VSOCK_ERR(VSOCK_E_BAD_ADDRESS, EINVAL));
                assert_int_equal(vsock_err_kind(r), VSOCK_E_BAD_ADDRESS);
                assert_non_null(why);
                if (strcmp(why, cases[i].why) != 0)
                        fail_msg("\"%s\": got \"%s\", want \"%s\"", cases[i].s, why, cases[i].why);
                /* ret is written only on success. */
                assert_int_equal(a.transport, 99);
                assert_int_equal(a.port, 1234);
        }

        /* NULL why is allowed. */
        struct vsock_addr a;
        assert_int_equal(vsock_addr_parse("bogus", 0, &a, NULL), VSOCK_ERR(VSOCK_E_BAD_ADDRESS, EINVAL));
}

static void test_too_long(void **state) {
        char s[400], p[300];
        const char *why;
        struct vsock_addr a;

        memset(p, 'x', VSOCK_ADDR_PATH_MAX);
        p[0] = '/';
        p[VSOCK_ADDR_PATH_MAX] = 0; /* 108 chars: one too many */
        snprintf(s, sizeof s, "unix:%s", p);
        assert_true(vsock_addr_parse(s, 0, &a, &why) < 0);
        assert_string_equal(why, "socket path too long (max 107 bytes)");
        snprintf(s, sizeof s, "vsock-mux:%s:5000", p);
        assert_true(vsock_addr_parse(s, 0, &a, &why) < 0);
        assert_string_equal(why, "socket path too long (max 107 bytes)");

        memset(p, 'h', 256);
        p[256] = 0;
        snprintf(s, sizeof s, "tcp:%s:80", p);
        assert_true(vsock_addr_parse(s, 0, &a, &why) < 0);
        assert_string_equal(why, "host name too long");
        p[255] = 0; /* 255 fits */
        snprintf(s, sizeof s, "tcp:%s:80", p);
        assert_int_equal(vsock_addr_parse(s, 0, &a, &why), 0);
}

static void test_unknown_transport(void **state) {
        const char *why;
        struct vsock_addr a;
        assert_true(vsock_addr_parse("foo:bar", 0, &a, &why) < 0);
        assert_string_equal(why, "unknown transport \"foo\" (want vsock, vsock-mux, unix or tcp)");
        assert_true(vsock_addr_parse("VSOCK:3:1", 0, &a, &why) < 0);
        assert_string_equal(why, "unknown transport \"VSOCK\" (want vsock, vsock-mux, unix or tcp)");
        /* A huge transport name is cut, not overflowing anything. */
        char s[1000];
        memset(s, 'z', 900);
        strcpy(s + 900, ":1");
        assert_true(vsock_addr_parse(s, 0, &a, &why) < 0);
        assert_non_null(strstr(why, "unknown transport \"zzzz"));
        assert_true(strlen(why) < 120);
}

static void test_format(void **state) {
        static const struct {
                const char *in;
                const char *canonical;
        } cases[] = {
                { "vsock:3:5000", "vsock:3:5000" },
                { "vsock::5000", "vsock:any:5000" },
                { "vsock:any:1", "vsock:any:1" },
                { "vsock:host:2", "vsock:2:2" },
                { "vsock:4294967295:4294967295", "vsock:any:4294967295" },
                { "vsock:007:010", "vsock:7:10" },
                { "vsock-mux:/run/a:b.sock:42", "vsock-mux:/run/a:b.sock:42" },
                { "unix:/tmp/x.sock", "unix:/tmp/x.sock" },
                { "unix:@abs", "unix:@abs" },
                { "tcp:127.0.0.1:80", "tcp:127.0.0.1:80" },
                { "tcp:[::1]:80", "tcp:[::1]:80" },
                { "tcp:[fe80::1%eth0]:22", "tcp:[fe80::1%eth0]:22" },
                { "tcp:localhost:8080", "tcp:localhost:8080" },
                { "tcp::8080", "tcp::8080" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                struct vsock_addr a = parse_ok(cases[i].in, 0), b;
                char buf[512];
                int n = vsock_addr_format(&a, buf, sizeof buf);
                assert_int_equal(n, (int) strlen(cases[i].canonical));
                assert_string_equal(buf, cases[i].canonical);
                /* Round trip: the canonical form parses back to the same struct. */
                b = parse_ok(buf, 0);
                assert_memory_equal(&a, &b, sizeof a);
        }
}

static void test_format_truncation(void **state) {
        struct vsock_addr a = vsock_addr_vsock(3, 5000);
        char buf[6];
        /* Like snprintf: the full length is returned, output cut and terminated. */
        assert_int_equal(vsock_addr_format(&a, buf, sizeof buf), 12);
        assert_string_equal(buf, "vsock");
        assert_int_equal(vsock_addr_format(&a, NULL, 0), 12);

        struct vsock_addr bad = { .transport = 0 };
        assert_int_equal(vsock_addr_format(&bad, buf, sizeof buf), -EINVAL);
        bad.transport = 77;
        assert_int_equal(vsock_addr_format(&bad, buf, sizeof buf), -EINVAL);
}

static void test_round_trip_structs(void **state) {
        /* From structs (not strings): every transport, edge values. */
        struct vsock_addr in[8] = {};
        in[0] = vsock_addr_vsock(VSOCK_CID_ANY, 0);
        in[1] = vsock_addr_vsock(VSOCK_CID_HYPERVISOR, VSOCK_PORT_ANY);
        in[2] = vsock_addr_vsock(123456789, 47001);
        in[3].transport = VSOCK_TRANSPORT_MUX;
        strcpy(in[3].path, "/a:b:c:");
        in[3].port = 7;
        in[4].transport = VSOCK_TRANSPORT_UNIX;
        strcpy(in[4].path, "rel/path");
        in[5].transport = VSOCK_TRANSPORT_TCP;
        strcpy(in[5].host, "2001:db8::1");
        in[5].port = 65535;
        in[6].transport = VSOCK_TRANSPORT_TCP;
        strcpy(in[6].host, "10.1.2.3");
        in[6].port = 1;
        in[7].transport = VSOCK_TRANSPORT_UNIX;
        memset(in[7].path, 'q', VSOCK_ADDR_PATH_MAX - 1);

        for (size_t i = 0; i < 8; i++) {
                char buf[512];
                struct vsock_addr out;
                const char *why = NULL;
                assert_true(vsock_addr_format(&in[i], buf, sizeof buf) > 0);
                if (vsock_addr_parse(buf, 0, &out, &why) != 0)
                        fail_msg("\"%s\" does not parse back: %s", buf, why);
                assert_memory_equal(&in[i], &out, sizeof out);
        }
}

static void test_addr_vsock(void **state) {
        struct vsock_addr a = vsock_addr_vsock(3, 5000), b = parse_ok("vsock:3:5000", 0);
        assert_memory_equal(&a, &b, sizeof a);
}

/* Reserved bytes: zero in every address the library fills; an address
 * with any set is refused, so a later version may give them meaning. */
static void test_reserved(void **state) {
        struct vsock_addr a;
        memset(&a, 0xff, sizeof a);
        assert_int_equal(vsock_addr_parse("unix:/tmp/x.sock", 0, &a, NULL), 0);
        for (size_t i = 0; i < sizeof a.reserved / sizeof a.reserved[0]; i++)
                assert_int_equal(a.reserved[i], 0);
        struct vsock_addr v = vsock_addr_vsock(3, 5000);
        for (size_t i = 0; i < sizeof v.reserved / sizeof v.reserved[0]; i++)
                assert_int_equal(v.reserved[i], 0);

        char buf[128];
        assert_int_equal(vsock_addr_format(&a, buf, sizeof buf), (int) strlen("unix:/tmp/x.sock"));
        a.reserved[7] = 1;
        assert_int_equal(vsock_addr_format(&a, buf, sizeof buf), -EINVAL);
        vsock_conn *c = NULL;
        vsock_listener *l = NULL;
        assert_int_equal(vsock_dial_addr(&a, 100, -1, &c), -EINVAL);
        assert_null(c);
        assert_int_equal(vsock_listen_addr(&a, 0, 0600, &l), -EINVAL);
        assert_null(l);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_vsock_forms),
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_mux_forms),
                cmocka_unit_test(test_reserved),
                cmocka_unit_test(test_unix_forms),
                cmocka_unit_test(test_tcp_forms),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_too_long),
                cmocka_unit_test(test_unknown_transport),
                cmocka_unit_test(test_format),
                cmocka_unit_test(test_format_truncation),
                cmocka_unit_test(test_round_trip_structs),
                cmocka_unit_test(test_addr_vsock),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
