/* The capped buffer: its API through the accessors only (the fields are
 * private to buf.c), and every misuse refused with -EINVAL or -ENOBUFS,
 * leaving the contents as they were. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/budget.h"
#include "common/buf.h"

static void assert_holds(const struct buf *b, const char *s) {
        assert_int_equal(buf_size(b), strlen(s));
        if (*s)
                assert_memory_equal(buf_head(b), s, strlen(s));
}

static void test_append_consume(void **state) {
        struct buf b = BUF_INIT(0);
        assert_int_equal(buf_append(&b, "hello", 5), 0);
        assert_int_equal(buf_append_byte(&b, ' '), 0);
        assert_int_equal(buf_append_str(&b, "world"), 0);
        assert_holds(&b, "hello world");
        assert_int_equal(buf_consume(&b, 6), 0);
        assert_holds(&b, "world");
        /* Over-consuming is an error, not a silent clamp. */
        assert_int_equal(buf_consume(&b, 100), -EINVAL);
        assert_int_equal(buf_consume(&b, 6), -EINVAL);
        assert_holds(&b, "world");
        assert_int_equal(buf_consume(&b, 5), 0);
        assert_true(buf_empty(&b));
        assert_int_equal(buf_consume(&b, 0), 0);
        assert_int_equal(buf_consume(&b, 1), -EINVAL);
        buf_free(&b);
        buf_free(&b); /* idempotent */
}

static void test_cap_enforced_before_alloc(void **state) {
        struct buf b = BUF_INIT(16);
        assert_int_equal(buf_limit_left(&b), 16);
        assert_int_equal(buf_append(&b, "0123456789abcdef", 16), 0);
        assert_int_equal(buf_limit_left(&b), 0);
        assert_int_equal(buf_append_byte(&b, 'x'), -ENOBUFS);
        assert_int_equal(buf_consume(&b, 8), 0);
        /* Consumed space counts as free again. */
        assert_int_equal(buf_limit_left(&b), 8);
        assert_int_equal(buf_append(&b, "01234567", 8), 0);
        assert_int_equal(buf_append(&b, "x", 1), -ENOBUFS);
        uint8_t *t;
        assert_int_equal(buf_reserve(&b, SIZE_MAX, &t), -ENOBUFS);
        assert_true(buf_capacity(&b) <= 16);
        assert_holds(&b, "89abcdef01234567");
        buf_free(&b);

        struct buf u = BUF_INIT(0);
        assert_int_equal(buf_limit_left(&u), SIZE_MAX);
        assert_int_equal(buf_append(&u, "ab", 2), 0);
        assert_int_equal(buf_limit_left(&u), SIZE_MAX - 2);
        buf_free(&u);
}

static void test_steal_nul_terminated(void **state) {
        struct buf b = BUF_INIT(0);
        assert_int_equal(buf_append(&b, "abc\0def", 7), 0);
        assert_int_equal(buf_consume(&b, 1), 0);
        uint8_t *d;
        size_t n;
        assert_int_equal(buf_steal(&b, &d, &n), 0);
        assert_int_equal(n, 6);
        assert_memory_equal(d, "bc\0def", 7);
        assert_true(buf_empty(&b));
        assert_int_equal(buf_capacity(&b), 0);
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
        assert_int_equal(buf_commit(&b, 100000), 0);
        assert_int_equal(buf_size(&b), 100000);
        assert_int_equal(buf_head(&b)[99999], 'z');
        buf_wipe_free(&b);
        assert_int_equal(buf_capacity(&b), 0);
        assert_true(buf_empty(&b));
}

/* A reservation may be committed in steps, never past what was reserved,
 * and any other mutation ends it. */
static void test_commit_misuse(void **state) {
        struct buf b = BUF_INIT(0);
        uint8_t *t;
        /* Nothing reserved yet. */
        assert_int_equal(buf_commit(&b, 1), -EINVAL);
        assert_true(buf_empty(&b));

        assert_int_equal(buf_reserve(&b, 4, &t), 0);
        memcpy(t, "abcd", 4);
        assert_int_equal(buf_commit(&b, 5), -EINVAL); /* past the reservation */
        assert_true(buf_empty(&b));
        assert_int_equal(buf_commit(&b, 1), 0);
        assert_int_equal(buf_commit(&b, 3), 0);
        assert_holds(&b, "abcd");
        assert_int_equal(buf_commit(&b, 1), -EINVAL); /* used up */
        assert_holds(&b, "abcd");

        /* The allocation may be bigger than asked: still only @extra. */
        assert_int_equal(buf_reserve(&b, 2, &t), 0);
        assert_true(buf_capacity(&b) - buf_size(&b) > 2);
        assert_int_equal(buf_commit(&b, 3), -EINVAL);

        /* Append, consume, truncate, reset end a reservation. */
        assert_int_equal(buf_reserve(&b, 8, NULL), 0);
        assert_int_equal(buf_append_byte(&b, 'e'), 0);
        assert_int_equal(buf_commit(&b, 1), -EINVAL);
        assert_int_equal(buf_reserve(&b, 8, NULL), 0);
        assert_int_equal(buf_append(&b, "f", 1), 0);
        assert_int_equal(buf_commit(&b, 1), -EINVAL);
        assert_int_equal(buf_reserve(&b, 8, NULL), 0);
        assert_int_equal(buf_consume(&b, 1), 0);
        assert_int_equal(buf_commit(&b, 1), -EINVAL);
        assert_int_equal(buf_reserve(&b, 8, NULL), 0);
        assert_int_equal(buf_truncate(&b, buf_size(&b)), 0);
        assert_int_equal(buf_commit(&b, 1), -EINVAL);
        assert_holds(&b, "bcdef");
        assert_int_equal(buf_reserve(&b, 8, NULL), 0);
        buf_reset(&b);
        assert_int_equal(buf_commit(&b, 1), -EINVAL);
        assert_true(buf_empty(&b));

        /* A refused reservation leaves nothing to commit either. */
        struct buf c = BUF_INIT(4);
        assert_int_equal(buf_reserve(&c, 4, NULL), 0);
        assert_int_equal(buf_reserve(&c, 5, NULL), -ENOBUFS);
        assert_int_equal(buf_commit(&c, 1), -EINVAL);
        buf_free(&c);
        buf_free(&b);
}

/* Back to a mark, as an encoder does when a frame is dropped. */
static void test_truncate(void **state) {
        struct buf b = BUF_INIT(0);
        assert_int_equal(buf_append_str(&b, "xxhead"), 0);
        assert_int_equal(buf_consume(&b, 2), 0); /* marks count from the head */
        size_t mark = buf_size(&b);
        assert_int_equal(buf_append_str(&b, "-dropped"), 0);
        assert_int_equal(buf_truncate(&b, mark), 0);
        assert_holds(&b, "head");
        assert_int_equal(buf_truncate(&b, 5), -EINVAL); /* past the contents */
        assert_holds(&b, "head");
        assert_int_equal(buf_truncate(&b, 0), 0);
        assert_true(buf_empty(&b));
        buf_free(&b);
}

/* A buffer handed over whole: no copy, the destination's cap kept. */
static void test_move(void **state) {
        struct buf src = BUF_INIT(1000), dst = BUF_INIT(0);
        assert_int_equal(buf_append_str(&dst, "old"), 0);
        assert_int_equal(buf_append_str(&src, "..payload"), 0);
        assert_int_equal(buf_consume(&src, 2), 0);
        const uint8_t *storage = buf_head(&src);
        assert_int_equal(buf_move(&dst, &src), 0);
        assert_ptr_equal(buf_head(&dst), storage);
        assert_holds(&dst, "payload");
        assert_int_equal(buf_limit_left(&dst), SIZE_MAX - 7); /* still uncapped */
        assert_true(buf_empty(&src));
        assert_int_equal(buf_capacity(&src), 0);
        assert_int_equal(buf_limit_left(&src), 1000); /* src keeps its cap */
        assert_int_equal(buf_move(&dst, &dst), 0);
        assert_holds(&dst, "payload");

        /* Contents above the destination's cap: refused, nothing moved. */
        struct buf small = BUF_INIT(4);
        assert_int_equal(buf_append_str(&small, "ab"), 0);
        assert_int_equal(buf_move(&small, &dst), -ENOBUFS);
        assert_holds(&small, "ab");
        assert_holds(&dst, "payload");
        buf_free(&small);
        buf_free(&dst);
        buf_free(&src);
}

/* A strict buffer grows only as far as its budget allows; what it writes
 * is counted (in steps, never past the allocation) and given back when
 * it is freed. */
static void test_budget_strict(void **state) {
        struct budget bg;
        budget_init(&bg, 320 * 1024);
        struct buf b = BUF_INIT(0);
        buf_set_budget(&b, &bg, true);
        assert_int_equal(buf_append(&b, "abc", 3), 0);
        assert_true(budget_used(&bg) >= 3 && budget_used(&bg) <= 64 * 1024);
        assert_int_equal(buf_charged(&b), budget_used(&bg));
        uint8_t *t;
        assert_int_equal(buf_reserve(&b, 200 * 1024, &t), 0);
        assert_true(budget_used(&bg) >= 200 * 1024 + 3);
        /* Past the budget: refused, contents unchanged, nothing more taken. */
        size_t before = budget_used(&bg);
        assert_int_equal(buf_reserve(&b, 400 * 1024, &t), -ENOBUFS);
        assert_int_equal(budget_used(&bg), before);
        assert_holds(&b, "abc");
        /* Byte by byte, too. */
        size_t n = 0;
        int r;
        while ((r = buf_append_byte(&b, 'x')) == 0)
                n++;
        assert_int_equal(r, -ENOBUFS);
        assert_true(budget_used(&bg) <= 320 * 1024);
        assert_int_equal(buf_size(&b), 3 + n);
        buf_free(&b);
        assert_int_equal(budget_used(&bg), 0);
}

/* A non-strict buffer is counted past the limit; a precharge is strict. */
static void test_budget_charge(void **state) {
        struct budget bg;
        budget_init(&bg, 64 * 1024);
        struct buf q = BUF_INIT(0);
        buf_set_budget(&q, &bg, false);
        uint8_t *t;
        assert_int_equal(buf_reserve(&q, 100 * 1024, &t), 0);
        assert_int_equal(buf_commit(&q, 100 * 1024), 0);
        assert_true(budget_used(&bg) >= 100 * 1024);
        assert_int_equal(buf_precharge(&q, 64 * 1024), -ENOBUFS);
        buf_free(&q);
        assert_int_equal(budget_used(&bg), 0);
        /* A precharge takes now what the writes then use. */
        assert_int_equal(buf_precharge(&q, 40 * 1024), 0);
        size_t pre = budget_used(&bg);
        assert_true(pre >= 40 * 1024);
        assert_int_equal(buf_reserve(&q, 40 * 1024, &t), 0);
        assert_int_equal(buf_commit(&q, 40 * 1024), 0);
        assert_int_equal(budget_used(&bg), pre);
        assert_int_equal(buf_precharge(&q, 40 * 1024), -ENOBUFS);
        buf_free(&q);
        assert_int_equal(budget_used(&bg), 0);
}

/* A move carries the storage's charge along, also into another budget;
 * a steal takes it out of the count. */
static void test_budget_move_steal(void **state) {
        struct budget b1, b2;
        budget_init(&b1, 0);
        budget_init(&b2, 0);
        struct buf src = BUF_INIT(0), dst = BUF_INIT(0), plain = BUF_INIT(0);
        buf_set_budget(&src, &b1, true);
        buf_set_budget(&dst, &b1, false);
        assert_int_equal(buf_append(&dst, "old", 3), 0);
        assert_int_equal(buf_append(&src, "payload", 7), 0);
        size_t src_charge = buf_charged(&src);
        assert_int_equal(buf_move(&dst, &src), 0);
        assert_holds(&dst, "payload");
        assert_int_equal(buf_charged(&dst), src_charge);
        assert_int_equal(buf_charged(&src), 0);
        assert_int_equal(budget_used(&b1), src_charge);
        /* Into another budget. */
        struct buf other = BUF_INIT(0);
        buf_set_budget(&other, &b2, false);
        assert_int_equal(buf_move(&other, &dst), 0);
        assert_int_equal(budget_used(&b1), 0);
        assert_int_equal(budget_used(&b2), src_charge);
        /* Into none, and from none into a budget. */
        assert_int_equal(buf_move(&plain, &other), 0);
        assert_int_equal(budget_used(&b2), 0);
        assert_int_equal(buf_move(&src, &plain), 0);
        assert_true(budget_used(&b1) > 0);
        assert_holds(&src, "payload");
        uint8_t *data;
        size_t len;
        assert_int_equal(buf_steal(&src, &data, &len), 0);
        assert_int_equal(budget_used(&b1), 0);
        free(data);
        buf_free(&dst);
        buf_free(&other);
        buf_free(&plain);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_append_consume),
                cmocka_unit_test(test_cap_enforced_before_alloc),
                cmocka_unit_test(test_steal_nul_terminated),
                cmocka_unit_test(test_reserve_commit),
                cmocka_unit_test(test_commit_misuse),
                cmocka_unit_test(test_truncate),
                cmocka_unit_test(test_move),
                cmocka_unit_test(test_budget_strict),
                cmocka_unit_test(test_budget_charge),
                cmocka_unit_test(test_budget_move_steal),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
