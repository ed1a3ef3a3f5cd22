#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"

static void test_append_consume(void **state) {
        struct buf b = BUF_INIT(0);
        assert_int_equal(buf_append(&b, "hello", 5), 0);
        assert_int_equal(buf_append_byte(&b, ' '), 0);
        assert_int_equal(buf_append_str(&b, "world"), 0);
        assert_int_equal(buf_size(&b), 11);
        assert_memory_equal(buf_head(&b), "hello world", 11);
        buf_consume(&b, 6);
        assert_int_equal(buf_size(&b), 5);
        assert_memory_equal(buf_head(&b), "world", 5);
        buf_consume(&b, 100);
        assert_true(buf_empty(&b));
        buf_free(&b);
        buf_free(&b); /* idempotent */
}

static void test_cap_enforced_before_alloc(void **state) {
        struct buf b = BUF_INIT(16);
        assert_int_equal(buf_append(&b, "0123456789abcdef", 16), 0);
        assert_int_equal(buf_append_byte(&b, 'x'), -ENOBUFS);
        buf_consume(&b, 8);
        /* Consumed space counts as free again. */
        assert_int_equal(buf_append(&b, "01234567", 8), 0);
        assert_int_equal(buf_append(&b, "x", 1), -ENOBUFS);
        uint8_t *t;
        assert_int_equal(buf_reserve(&b, SIZE_MAX, &t), -ENOBUFS);
        assert_true(b.cap <= 16);
        buf_free(&b);
}

static void test_steal_nul_terminated(void **state) {
        struct buf b = BUF_INIT(0);
        assert_int_equal(buf_append(&b, "abc\0def", 7), 0);
        buf_consume(&b, 1);
        uint8_t *d;
        size_t n;
        assert_int_equal(buf_steal(&b, &d, &n), 0);
        assert_int_equal(n, 6);
        assert_memory_equal(d, "bc\0def", 7);
        assert_true(buf_empty(&b));
        assert_null(b.data);
        free(d);
        assert_int_equal(buf_steal(&b, &d, &n), 0);
        assert_int_equal(n, 0);
        assert_int_equal(d[0], 0);
        free(d);
}

static void test_reserve_commit(void **state) {
        struct buf b = BUF_INIT(0);
        uint8_t *t;
        assert_int_equal(buf_reserve(&b, 100000, &t), 0);
        memset(t, 'z', 100000);
        buf_commit(&b, 100000);
        assert_int_equal(buf_size(&b), 100000);
        assert_int_equal(buf_head(&b)[99999], 'z');
        buf_wipe_free(&b);
        assert_null(b.data);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_append_consume),
                cmocka_unit_test(test_cap_enforced_before_alloc),
                cmocka_unit_test(test_steal_nul_terminated),
                cmocka_unit_test(test_reserve_commit),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
