/* Credit accounting of vsock-vhost (src/vhost/credit.h): what we may send
 * the guest, whether the guest stayed within what we gave it, and when it
 * must hear about freed space; across 32-bit wrap-around and with figures
 * a hostile guest makes up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "vhost/credit.h"

static void test_peer_free(void **state) {
        struct credit c = { 0 };
        assert_int_equal(credit_peer_free(&c), 0); /* nothing advertised yet */
        credit_peer_update(&c, 1000, 0);
        assert_int_equal(credit_peer_free(&c), 1000);
        c.tx_cnt = 600;
        assert_int_equal(credit_peer_free(&c), 400);
        c.tx_cnt = 1000;
        assert_int_equal(credit_peer_free(&c), 0);
        credit_peer_update(&c, 1000, 700); /* it read 700 */
        assert_int_equal(credit_peer_free(&c), 700);
        /* Across the wrap: 100 bytes in flight. */
        c.tx_cnt = 50;
        credit_peer_update(&c, 1000, UINT32_MAX - 49);
        assert_int_equal(credit_peer_free(&c), 900);
}

static void test_peer_lies(void **state) {
        struct credit c = { .tx_cnt = 500 };
        /* Claims to have read more than we sent: no credit, not 4 GiB. */
        credit_peer_update(&c, 1000, 600);
        assert_int_equal(credit_peer_free(&c), 0);
        /* Shrinks its buffer below what is in flight. */
        credit_peer_update(&c, 100, 0);
        assert_int_equal(credit_peer_free(&c), 0);
        credit_peer_update(&c, UINT32_MAX, 500);
        assert_int_equal(credit_peer_free(&c), UINT32_MAX);
}

static void test_rx_fits(void **state) {
        struct credit c = { .buf_alloc = 1000 };
        assert_true(credit_rx_fits(&c, 1000));
        assert_false(credit_rx_fits(&c, 1001));
        assert_false(credit_rx_fits(&c, UINT32_MAX)); /* no overflow into "fits" */
        c.rx_cnt = 800;
        c.fwd_cnt = 300; /* 500 queued */
        assert_int_equal(credit_queued(&c), 500);
        assert_true(credit_rx_fits(&c, 500));
        assert_false(credit_rx_fits(&c, 501));
        /* Wrapped counters. */
        c.rx_cnt = 100;
        c.fwd_cnt = UINT32_MAX - 99; /* 200 queued */
        assert_int_equal(credit_queued(&c), 200);
        assert_true(credit_rx_fits(&c, 800));
        assert_false(credit_rx_fits(&c, 801));
}

static void test_update_due(void **state) {
        struct credit c = { .buf_alloc = 1000 };
        assert_false(credit_update_due(&c));
        c.fwd_cnt = 249;
        assert_false(credit_update_due(&c));
        c.fwd_cnt = 250;
        assert_true(credit_update_due(&c));
        c.fwd_sent = 250;
        assert_false(credit_update_due(&c));
        /* A guest that used all its credit is always told once it drains. */
        c.fwd_sent = UINT32_MAX - 500;
        c.fwd_cnt = c.fwd_sent + 1000;
        assert_true(credit_update_due(&c));
        /* A zero buffer never asks for updates of nothing. */
        struct credit z = { 0 };
        assert_false(credit_update_due(&z));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_peer_free),
                cmocka_unit_test(test_peer_lies),
                cmocka_unit_test(test_rx_fits),
                cmocka_unit_test(test_update_due),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
