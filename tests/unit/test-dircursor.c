/* ListDir's cursor (src/agent/files/dircursor.c): what it writes it reads back,
 * and nothing else. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agent/files/dircursor.h"

static void test_roundtrip(void **state) {
        (void) state;
        static const struct dir_cursor cases[] = {
                { 0, 0, 0, 0 },
                { 2049, 42, 1700000000123456789u, 12345 },
                { UINT64_MAX, UINT64_MAX, UINT64_MAX, INT64_MAX },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                char buf[DIR_CURSOR_MAX];
                dir_cursor_format(&cases[i], buf);
                assert_true(strlen(buf) < DIR_CURSOR_MAX);
                struct dir_cursor got;
                assert_int_equal(dir_cursor_parse(buf, &got), 0);
                assert_memory_equal(&got, &cases[i], sizeof got);
        }
        char buf[DIR_CURSOR_MAX];
        dir_cursor_format(&(struct dir_cursor) { 0x801, 0x2a, 0, 0x10 }, buf);
        assert_string_equal(buf, "1.801.2a.0.10");
}

static void test_refused(void **state) {
        (void) state;
        static const char *const bad[] = {
                "", "1", "1.", "1.1.1.1", "1.1.1.1.", "1.1.1.1.1.", "1.1.1.1.1.1", "2.1.1.1.1", "1.A.1.1.1",
                "1.1.1.1.-1", "1.1.1.1.+1", "1. 1.1.1.1", "1.1.1.1.1 ", "1.11111111111111111.1.1.1",
                "1.1.1.1.8000000000000000", "1.1.1.1.ffffffffffffffff", "1..1.1.1", "x.1.1.1.1", "1.1.1.1.0x1",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                struct dir_cursor got = { 7, 7, 7, 7 };
                assert_int_equal(dir_cursor_parse(bad[i], &got), -EINVAL);
                assert_int_equal(got.dev, 7); /* untouched on failure */
        }
        struct dir_cursor got;
        assert_int_equal(dir_cursor_parse("1.0000000000000001.1.1.7fffffffffffffff", &got), 0);
        assert_int_equal(got.dev, 1);
        assert_int_equal(got.off, INT64_MAX);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_roundtrip),
                cmocka_unit_test(test_refused),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
