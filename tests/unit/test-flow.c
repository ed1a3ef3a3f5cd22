/* Credit accounting of Data streams (src/lib/flow.c): the sender never
 * gets room past its credit or data_max, over-granting and over-sending
 * are protocol errors, and the receiver grants back in half-window steps
 * without ever inflating its window. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "lib/flow.h"

static void test_send_room(void **state) {
        (void) state;
        struct flow_send f;
        assert_int_equal(flow_send_init(&f, 1000, 4000, 300), 0);
        assert_int_equal(flow_send_room(&f), 300);
        assert_int_equal(flow_send_sent(&f, 300), 0);
        assert_int_equal(flow_send_sent(&f, 300), 0);
        assert_int_equal(flow_send_sent(&f, 300), 0);
        assert_int_equal(flow_send_room(&f), 100);
        assert_int_equal(flow_send_sent(&f, 101), -EINVAL); /* past the room */
        assert_int_equal(flow_send_sent(&f, 100), 0);
        assert_int_equal(flow_send_room(&f), 0);
        assert_int_equal(flow_send_credit(&f, 50), 0);
        assert_int_equal(flow_send_room(&f), 50);
        assert_int_equal(f.sent, 1000);
        /* The empty Data needs no credit, and ends it. */
        assert_int_equal(flow_send_sent(&f, 0), 0);
        assert_true(f.ended);
        assert_int_equal(flow_send_room(&f), 0);
        assert_int_equal(flow_send_credit(&f, 10), -EPROTO);
        assert_int_equal(flow_send_sent(&f, 0), -EINVAL);
}

static void test_send_credit_bounds(void **state) {
        (void) state;
        struct flow_send f;
        assert_int_equal(flow_send_init(&f, 10, 5, 1), -EINVAL);
        assert_int_equal(flow_send_init(&f, 10, 10, 0), -EINVAL);
        assert_int_equal(flow_send_init(&f, 1000, 2000, 300), 0);
        assert_int_equal(flow_send_credit(&f, 0), -EPROTO);
        assert_int_equal(flow_send_credit(&f, 1000), 0);
        /* Outstanding credit beyond credit_max (the window bound). */
        assert_int_equal(flow_send_credit(&f, 1), -EPROTO);
        assert_int_equal(f.credit, 2000);
        /* uint32 credits cannot wrap the sum. */
        assert_int_equal(flow_send_credit(&f, UINT32_MAX), -EPROTO);
}

static void test_recv(void **state) {
        (void) state;
        struct flow_recv f;
        assert_int_equal(flow_recv_init(&f, 0, 10), -EINVAL);
        assert_int_equal(flow_recv_init(&f, 1000, 300), 0);
        assert_int_equal(flow_recv_data(&f, 301), -EPROTO); /* above data_max */
        assert_int_equal(flow_recv_data(&f, 300), 0);
        assert_int_equal(flow_recv_data(&f, 300), 0);
        assert_int_equal(flow_recv_data(&f, 300), 0);
        assert_int_equal(flow_recv_data(&f, 101), -EPROTO); /* past the credit */
        assert_int_equal(flow_recv_data(&f, 100), 0);
        assert_int_equal(flow_recv_data(&f, 1), -EPROTO);
        /* Half a window consumed: its credit goes back. */
        assert_int_equal(flow_recv_consumed(&f, 499), 0);
        assert_int_equal(flow_recv_consumed(&f, 1), 500);
        assert_int_equal(flow_recv_data(&f, 300), 0);
        assert_int_equal(flow_recv_data(&f, 200), 0);
        assert_int_equal(flow_recv_data(&f, 1), -EPROTO);
        /* Consuming more than was held never grants more than that. */
        assert_int_equal(flow_recv_consumed(&f, 10000), 1000);
        assert_int_equal(f.outstanding, 1000);
        assert_int_equal(flow_recv_consumed(&f, 10000), 0);
        assert_int_equal(flow_recv_data(&f, 0), 0);
        assert_true(f.ended);
        assert_int_equal(flow_recv_data(&f, 0), -EPROTO);
        assert_int_equal(f.received, 1500);
}

/* A sender and a receiver in lock step move any amount within the window. */
static void test_lockstep(void **state) {
        (void) state;
        struct flow_send s;
        struct flow_recv r;
        assert_int_equal(flow_send_init(&s, 4096, 4096, 1000), 0);
        assert_int_equal(flow_recv_init(&r, 4096, 1000), 0);
        uint64_t held = 0, moved = 0;
        for (int i = 0; i < 100000 && moved < 10000000; i++) {
                size_t room = flow_send_room(&s);
                if (room > 0) {
                        size_t n = room > 777 ? 777 : room;
                        assert_int_equal(flow_send_sent(&s, n), 0);
                        assert_int_equal(flow_recv_data(&r, n), 0);
                        held += n;
                        moved += n;
                        assert_true(held <= 4096);
                }
                uint32_t g = flow_recv_consumed(&r, held);
                held = 0;
                if (g > 0)
                        assert_int_equal(flow_send_credit(&s, g), 0);
        }
        assert_true(moved >= 10000000);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_send_room),
                cmocka_unit_test(test_send_credit_bounds),
                cmocka_unit_test(test_recv),
                cmocka_unit_test(test_lockstep),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
