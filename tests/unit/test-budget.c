/* The agent-wide memory budget: strict reservations refuse past the
 * limit, charges always count, releases give back, and the count stays
 * exact under concurrent use from several threads. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/budget.h"

static void test_reserve_release(void **state) {
        struct budget b;
        budget_init(&b, 1000);
        assert_int_equal(budget_reserve(&b, 600), 0);
        assert_int_equal(budget_used(&b), 600);
        assert_int_equal(budget_left(&b), 400);
        /* Past the limit: refused, nothing taken. */
        assert_int_equal(budget_reserve(&b, 401), -ENOBUFS);
        assert_int_equal(budget_used(&b), 600);
        /* Exactly to the limit is fine. */
        assert_int_equal(budget_reserve(&b, 400), 0);
        assert_int_equal(budget_left(&b), 0);
        assert_int_equal(budget_reserve(&b, 1), -ENOBUFS);
        assert_int_equal(budget_release(&b, 1000), 0);
        assert_int_equal(budget_used(&b), 0);
        assert_int_equal(budget_peak(&b), 1000);
        /* More than the limit at once never fits, and does not wrap. */
        assert_int_equal(budget_reserve(&b, SIZE_MAX), -ENOBUFS);
        assert_int_equal(budget_used(&b), 0);
}

static void test_charge_past_limit(void **state) {
        struct budget b;
        budget_init(&b, 100);
        budget_charge(&b, 150);
        assert_int_equal(budget_used(&b), 150);
        assert_int_equal(budget_left(&b), 0);
        /* What was charged is seen by strict reservations. */
        assert_int_equal(budget_reserve(&b, 1), -ENOBUFS);
        assert_int_equal(budget_release(&b, 100), 0);
        assert_int_equal(budget_reserve(&b, 50), 0);
        assert_int_equal(budget_reserve(&b, 1), -ENOBUFS);
        assert_int_equal(budget_release(&b, 100), 0);
        assert_int_equal(budget_used(&b), 0);
}

static void test_over_release(void **state) {
        struct budget b;
        budget_init(&b, 100);
        assert_int_equal(budget_reserve(&b, 10), 0);
        assert_int_equal(budget_release(&b, 11), -EINVAL);
        assert_int_equal(budget_used(&b), 0);
}

static void test_unlimited_and_null(void **state) {
        struct budget b;
        budget_init(&b, 0);
        assert_int_equal(budget_reserve(&b, (size_t) 1 << 40), 0);
        assert_int_equal(budget_used(&b), (size_t) 1 << 40);
        assert_int_equal(budget_left(&b), SIZE_MAX);
        assert_int_equal(budget_release(&b, (size_t) 1 << 40), 0);
        /* No budget: nothing counted, nothing refused. */
        assert_int_equal(budget_reserve(NULL, SIZE_MAX), 0);
        budget_charge(NULL, 5);
        assert_int_equal(budget_release(NULL, 5), 0);
        assert_int_equal(budget_used(NULL), 0);
}

#define THREADS 4
#define ROUNDS 100000

static void *hammer(void *arg) {
        struct budget *b = arg;
        size_t held = 0;
        for (int i = 0; i < ROUNDS; i++) {
                if (budget_reserve(b, 7) == 0)
                        held += 7;
                budget_charge(b, 3);
                (void) budget_release(b, 3);
                if (held >= 70) {
                        (void) budget_release(b, held);
                        held = 0;
                }
        }
        (void) budget_release(b, held);
        return NULL;
}

/* Reservations never overshoot the limit, and every byte comes back. */
static void test_threads(void **state) {
        struct budget b;
        budget_init(&b, 200);
        pthread_t t[THREADS];
        for (int i = 0; i < THREADS; i++)
                assert_int_equal(pthread_create(&t[i], NULL, hammer, &b), 0);
        for (int i = 0; i < THREADS; i++)
                pthread_join(t[i], NULL);
        assert_int_equal(budget_used(&b), 0);
        /* Charges may pass the limit (by at most 3 per thread). */
        assert_true(budget_peak(&b) <= 200 + 3 * THREADS);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_reserve_release),
                cmocka_unit_test(test_charge_past_limit),
                cmocka_unit_test(test_over_release),
                cmocka_unit_test(test_unlimited_and_null),
                cmocka_unit_test(test_threads),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
