/* The agent's event loop: timer order, disarm, deferred calls (order,
 * cancel, and no allocation: the link wraps the allocator), watcher
 * interest (an empty mask really silences a hung-up fd) and stopping a
 * watcher whose event is already in the current batch. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/serve/loop.h"
#include "alloc-count.h"
#include "common/io.h"
#include "common/macro.h"

struct rec {
        struct timer t;
        int id;
        int *order;
        int *n;
        int quit_after;
};

static void on_rec(struct timer *t) {
        struct rec *r = container_of(t, struct rec, t);
        r->order[(*r->n)++] = r->id;
        if (*r->n == r->quit_after)
                loop_quit(t->loop);
}

static void test_timer_order(void **state) {
        struct loop *l;
        assert_int_equal(loop_new(&l), 0);
        int order[8], n = 0;
        struct rec r[5];
        int delays[5] = { 30, 10, 20, 5, 25 };
        for (int i = 0; i < 5; i++) {
                r[i] = (struct rec) { .id = i, .order = order, .n = &n, .quit_after = 4 };
                timer_init(&r[i].t, l, on_rec);
                assert_int_equal(timer_arm_in_ms(&r[i].t, delays[i]), 0);
        }
        timer_disarm(&r[4].t); /* never fires */
        timer_disarm(&r[4].t); /* idempotent */
        assert_false(timer_armed(&r[4].t));
        assert_int_equal(loop_run(l), 0);
        assert_int_equal(n, 4);
        int want[4] = { 3, 1, 2, 0 };
        assert_memory_equal(order, want, sizeof want);
        loop_free(l);
}

struct rearm {
        struct timer t;
        int count;
};

static void on_rearm(struct timer *t) {
        struct rearm *r = container_of(t, struct rearm, t);
        if (++r->count == 3)
                loop_quit(t->loop);
        else
                assert_int_equal(timer_arm_in_ms(t, 0), 0);
}

static void test_timer_rearm(void **state) {
        struct loop *l;
        assert_int_equal(loop_new(&l), 0);
        struct rearm r = { 0 };
        timer_init(&r.t, l, on_rearm);
        assert_int_equal(timer_arm_in_ms(&r.t, 0), 0);
        assert_int_equal(loop_run(l), 0);
        assert_int_equal(r.count, 3);
        loop_free(l);
}

struct pipew {
        struct watcher w;
        int rd, wr;
        int calls;
        struct pipew *other;
};

static void on_pipe_read(struct watcher *w, uint32_t revents) {
        struct pipew *p = container_of(w, struct pipew, w);
        char buf[16];
        p->calls++;
        (void) !read(p->rd, buf, sizeof buf);
        /* Whoever runs first silences the other, whose event may already be
         * in this batch: it must not be delivered. */
        if (p->other)
                watcher_stop(&p->other->w);
}

static void on_quit_timer(struct timer *t) { loop_quit(t->loop); }

static void pipew_open(struct pipew *p, struct loop *l) {
        int fds[2];
        assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
        p->rd = fds[0];
        p->wr = fds[1];
        watcher_init(&p->w, l, p->rd, on_pipe_read);
}

static void test_stop_drops_fetched_event(void **state) {
        struct loop *l;
        assert_int_equal(loop_new(&l), 0);
        struct pipew a = { 0 }, b = { 0 };
        pipew_open(&a, l);
        pipew_open(&b, l);
        a.other = &b;
        b.other = &a;
        assert_int_equal(watcher_set(&a.w, EPOLLIN), 0);
        assert_int_equal(watcher_set(&b.w, EPOLLIN), 0);
        assert_int_equal(write(a.wr, "x", 1), 1);
        assert_int_equal(write(b.wr, "x", 1), 1);
        struct timer t;
        timer_init(&t, l, on_quit_timer);
        assert_int_equal(timer_arm_in_ms(&t, 50), 0);
        assert_int_equal(loop_run(l), 0);
        assert_int_equal(a.calls + b.calls, 1);
        close(a.rd), close(a.wr), close(b.rd), close(b.wr);
        loop_free(l);
}

static void test_empty_mask_silences_hangup(void **state) {
        struct loop *l;
        assert_int_equal(loop_new(&l), 0);
        struct pipew p = { 0 };
        pipew_open(&p, l);
        assert_int_equal(watcher_set(&p.w, EPOLLIN), 0);
        assert_int_equal(watcher_set(&p.w, 0), 0); /* paused */
        close(p.wr);                                 /* hangs up */
        struct timer t;
        timer_init(&t, l, on_quit_timer);
        assert_int_equal(timer_arm_in_ms(&t, 30), 0);
        assert_int_equal(loop_run(l), 0);
        assert_int_equal(p.calls, 0);
        /* Resumed, it sees the hangup. */
        assert_int_equal(watcher_set(&p.w, EPOLLIN), 0);
        assert_int_equal(timer_arm_in_ms(&t, 30), 0);
        assert_int_equal(loop_run(l), 0);
        assert_true(p.calls >= 1);
        watcher_stop(&p.w);
        watcher_stop(&p.w); /* idempotent */
        close(p.rd);
        loop_free(l);
}

static int deferred_runs;
static bool in_callback;

struct deferrer {
        struct timer t;
        struct defer d;
};

static void deferred(struct defer *d) {
        assert_false(in_callback);
        deferred_runs++;
        if (deferred_runs == 1)
                loop_defer(d); /* runs again in the same drain */
        else
                loop_quit(d->loop);
}

static void on_defer_timer(struct timer *t) {
        struct deferrer *x = container_of(t, struct deferrer, t);
        in_callback = true;
        loop_defer(&x->d);
        loop_defer(&x->d); /* already queued: one run serves both */
        in_callback = false;
}

static void test_defer(void **state) {
        struct loop *l;
        assert_int_equal(loop_new(&l), 0);
        struct deferrer x;
        timer_init(&x.t, l, on_defer_timer);
        defer_init(&x.d, l, deferred);
        assert_false(defer_queued(&x.d));
        assert_int_equal(timer_arm_in_ms(&x.t, 0), 0);
        assert_int_equal(loop_run(l), 0);
        assert_int_equal(deferred_runs, 2);
        assert_false(defer_queued(&x.d));
        loop_free(l);
}

/* FIFO order, cancel from the middle and the ends, and no allocation:
 * deferring cannot fail for want of memory. */
struct node {
        struct defer d;
        int id;
        int *order;
        int *n;
};

static void on_node(struct defer *d) {
        struct node *x = container_of(d, struct node, d);
        x->order[(*x->n)++] = x->id;
}

static void on_stop(struct defer *d) { loop_quit(d->loop); }

static void test_defer_order_cancel(void **state) {
        struct loop *l;
        assert_int_equal(loop_new(&l), 0);
        int order[8], n = 0;
        struct node x[6];
        for (int i = 0; i < 6; i++) {
                x[i] = (struct node) { .id = i, .order = order, .n = &n };
                defer_init(&x[i].d, l, on_node);
        }
        struct defer stop;
        defer_init(&stop, l, on_stop);
        size_t before = alloc_calls;
        for (int i = 0; i < 6; i++)
                loop_defer(&x[i].d);
        loop_defer(&stop);
        defer_cancel(&x[0].d); /* head */
        defer_cancel(&x[3].d); /* middle */
        defer_cancel(&x[3].d); /* idempotent */
        defer_cancel(&x[5].d); /* just before the tail */
        loop_defer(&x[5].d);   /* re-queued: now after stop, still this drain */
        assert_int_equal(alloc_calls, before);
        assert_int_equal(loop_run(l), 0);
        int want[] = { 1, 2, 4, 5 };
        assert_int_equal(n, 4);
        assert_memory_equal(order, want, sizeof want);
        for (int i = 0; i < 6; i++)
                assert_false(defer_queued(&x[i].d));
        /* A cancelled tail leaves a queue that still works. */
        n = 0;
        loop_defer(&x[1].d);
        loop_defer(&x[2].d);
        defer_cancel(&x[2].d);
        loop_defer(&stop);
        assert_int_equal(loop_run(l), 0);
        assert_int_equal(n, 1);
        assert_int_equal(order[0], 1);
        loop_free(l);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_timer_order),
                cmocka_unit_test(test_timer_rearm),
                cmocka_unit_test(test_stop_drops_fetched_event),
                cmocka_unit_test(test_empty_mask_silences_hangup),
                cmocka_unit_test(test_defer),
                cmocka_unit_test(test_defer_order_cancel),
        };
        return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
