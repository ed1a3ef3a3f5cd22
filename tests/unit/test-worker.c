/* The worker pool: jobs run in parallel up to the limit and wait in order
 * beyond it, lanes run one job at a time in order, a job that overruns is
 * given up (its owner told at once, its thread replaced, done() still
 * coming), a job that waited too long never runs, the hard cap on threads
 * holds (and says -EBUSY), jobs can be taken back, and the pool hands
 * every job back when freed. Blocking jobs wait on pipes the test
 * controls; a guard timer catches hangs. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/loop.h"
#include "agent/worker.h"

#define GUARD_MS 20000

struct job {
        struct worker_job j;
        int id;
        int block_fd;           /* run() reads one byte from it first; -1: no wait */
        bool ran, done, cancelled, timed_out_cb;
        int order;              /* when run() started, among all jobs */
};

static struct loop *L;
static int pending;             /* done() calls still expected */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int running, most_running, started;
static int lane_running, lane_most;

static void job_run(struct worker_job *wj) {
        struct job *j = container_of(wj, struct job, j);
        pthread_mutex_lock(&mu);
        j->order = started++;
        running++;
        most_running = running > most_running ? running : most_running;
        if (wj->lane) {
                lane_running++;
                lane_most = lane_running > lane_most ? lane_running : lane_most;
        }
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
        if (j->block_fd >= 0) {
                char c;
                (void) !read(j->block_fd, &c, 1);
        }
        pthread_mutex_lock(&mu);
        running--;
        if (wj->lane)
                lane_running--;
        pthread_mutex_unlock(&mu);
        j->ran = true;
}

static void job_done(struct worker_job *wj) {
        struct job *j = container_of(wj, struct job, j);
        assert_false(j->done);
        j->done = true;
        j->cancelled = wj->cancelled;
        if (--pending == 0)
                loop_quit(L);
}

static void job_timeout(struct worker_job *wj) {
        struct job *j = container_of(wj, struct job, j);
        assert_false(j->done);
        j->timed_out_cb = true;
}

static void job_init(struct job *j, int id, int block_fd, struct worker_lane *lane) {
        *j = (struct job) { .id = id, .block_fd = block_fd };
        j->j = (struct worker_job) { .run = job_run, .done = job_done, .timeout = job_timeout, .lane = lane };
}

static void on_guard(struct timer *t) { fail_msg("hang: %d done() calls still expected", pending); }

/* Run the loop until @n more done() calls came. */
static void wait_done(int n) {
        pending = n;
        if (n == 0)
                return;
        struct timer guard;
        timer_init(&guard, L, on_guard);
        assert_int_equal(timer_arm_in_ms(&guard, GUARD_MS), 0);
        assert_int_equal(loop_run(L), 0);
        timer_disarm(&guard);
}

/* Wait (on this thread, bounded) until @n jobs have started run(). */
static void wait_started(int n) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += GUARD_MS / 1000;
        pthread_mutex_lock(&mu);
        while (started < n)
                if (pthread_cond_timedwait(&cv, &mu, &ts) == ETIMEDOUT)
                        fail_msg("only %d of %d jobs started", started, n);
        pthread_mutex_unlock(&mu);
}

static int setup(void **state) {
        started = running = most_running = lane_running = lane_most = 0;
        return loop_new(&L);
}

static int teardown(void **state) {
        loop_free(L);
        L = NULL;
        return 0;
}

/* A pipe whose read end blocks jobs until bytes are written (one each). */
static void gate(int p[2]) { assert_int_equal(pipe2(p, O_CLOEXEC), 0); }

static void test_parallel_then_queue(void **state) {
        struct worker *w;
        struct worker_limits lim = { .max_running = 3, .max_threads = 6 };
        assert_int_equal(worker_new(L, &lim, &w), 0);
        int g[2];
        gate(g);
        struct job j[5];
        for (int i = 0; i < 5; i++) {
                job_init(&j[i], i, g[0], NULL);
                assert_int_equal(worker_submit(w, &j[i].j), 0);
        }
        /* Three run at once, each on its own thread; two wait. */
        wait_started(3);
        struct worker_stats st;
        worker_stats(w, &st);
        assert_int_equal(st.threads, 3);
        assert_int_equal(st.queued, 2);
        assert_int_equal(write(g[1], "xxxxx", 5), 5);
        wait_done(5);
        for (int i = 0; i < 5; i++)
                assert_true(j[i].ran && j[i].done && !j[i].cancelled && !j[i].timed_out_cb);
        assert_int_equal(most_running, 3);
        /* In order: the waiting ones started after the first three. */
        assert_true(j[3].order >= 3 && j[4].order >= 3);
        worker_free(w);
        close(g[0]);
        close(g[1]);
}

static void test_lane_in_order(void **state) {
        struct worker *w;
        struct worker_limits lim = { .max_running = 4, .max_threads = 4 };
        assert_int_equal(worker_new(L, &lim, &w), 0);
        struct worker_lane lane = { 0 };
        enum { N = 12 };
        struct job j[N];
        for (int i = 0; i < N; i++) {
                job_init(&j[i], i, -1, &lane);
                assert_int_equal(worker_submit(w, &j[i].j), 0);
        }
        wait_done(N);
        for (int i = 1; i < N; i++)
                assert_true(j[i].order > j[i - 1].order);
        assert_int_equal(lane_most, 1);
        assert_false(lane.busy);
        worker_free(w);
}

static void on_tick(struct timer *t) { loop_quit(t->loop); }

/* Run the loop in short passes until @cond holds (bounded). */
static void loop_until(bool (*cond)(void *), void *arg) {
        pending = 1 << 30; /* done() never quits the loop here */
        struct timespec t0, now;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (!cond(arg)) {
                clock_gettime(CLOCK_MONOTONIC, &now);
                if (now.tv_sec - t0.tv_sec > GUARD_MS / 1000)
                        fail_msg("hang: condition not met");
                struct timer tick;
                timer_init(&tick, L, on_tick);
                assert_int_equal(timer_arm_in_ms(&tick, 5), 0);
                assert_int_equal(loop_run(L), 0);
                timer_disarm(&tick);
        }
}

static bool is_done(void *p) { return ((struct job *) p)->done; }
static bool is_timed_out(void *p) { return ((struct job *) p)->timed_out_cb; }

static bool all_done(void *p) {
        struct job **jobs = p;
        for (; *jobs; jobs++)
                if (!(*jobs)->done)
                        return false;
        return true;
}

/* A job that overruns: its owner hears at once, a fresh thread takes the
 * next job, done() comes when the stuck one returns; with every thread
 * stuck, the pool refuses at once. */
static void test_timeout_replaces_thread(void **state) {
        struct worker *w;
        struct worker_limits lim = { .max_running = 1, .max_threads = 3, .timeout_ms = 100 };
        assert_int_equal(worker_new(L, &lim, &w), 0);
        int g[2];
        gate(g);
        struct job stuck[3], quick, refused, after;
        job_init(&stuck[0], 0, g[0], NULL);
        job_init(&quick, 1, -1, NULL);
        assert_int_equal(worker_submit(w, &stuck[0].j), 0);
        wait_started(1);
        loop_until(is_timed_out, &stuck[0]);
        assert_true(stuck[0].j.timed_out);
        assert_false(stuck[0].done);
        /* Its thread no longer counts: a fresh one runs the next job. */
        assert_int_equal(worker_submit(w, &quick.j), 0);
        loop_until(is_done, &quick);
        assert_true(quick.ran && !quick.cancelled && !quick.timed_out_cb);
        struct worker_stats st;
        worker_stats(w, &st);
        assert_int_equal(st.stuck, 1);

        for (int i = 1; i < 3; i++) {
                job_init(&stuck[i], 1 + i, g[0], NULL);
                assert_int_equal(worker_submit(w, &stuck[i].j), 0);
                wait_started(2 + i);
                loop_until(is_timed_out, &stuck[i]);
        }
        worker_stats(w, &st);
        assert_int_equal(st.threads, 3);
        assert_int_equal(st.stuck, 3);
        job_init(&refused, 9, -1, NULL);
        assert_int_equal(worker_submit(w, &refused.j), -EBUSY);

        /* The kernel lets them go: done() for each, and the pool serves. */
        assert_int_equal(write(g[1], "xxx", 3), 3);
        struct job *all[] = { &stuck[0], &stuck[1], &stuck[2], NULL };
        loop_until(all_done, all);
        for (int i = 0; i < 3; i++)
                assert_true(stuck[i].ran && !stuck[i].cancelled);
        worker_stats(w, &st);
        assert_int_equal(st.stuck, 0);
        job_init(&after, 10, -1, NULL);
        assert_int_equal(worker_submit(w, &after.j), 0);
        wait_done(1);
        assert_true(after.ran);
        assert_false(refused.done);
        worker_free(w);
        close(g[0]);
        close(g[1]);
}

/* A job that waited past the timeout never runs. */
static void test_timeout_while_queued(void **state) {
        struct worker *w;
        struct worker_limits lim = { .max_running = 1, .max_threads = 1, .timeout_ms = 100 };
        assert_int_equal(worker_new(L, &lim, &w), 0);
        int g[2];
        gate(g);
        struct job a, b;
        job_init(&a, 0, g[0], NULL);
        job_init(&b, 1, -1, NULL);
        assert_int_equal(worker_submit(w, &a.j), 0);
        wait_started(1);
        assert_int_equal(worker_submit(w, &b.j), 0);
        loop_until(is_done, &b);
        assert_true(b.timed_out_cb && b.cancelled);
        assert_false(b.ran);
        assert_true(a.timed_out_cb);
        assert_int_equal(write(g[1], "x", 1), 1);
        loop_until(is_done, &a);
        assert_true(a.ran && !a.cancelled);
        worker_free(w);
        close(g[0]);
        close(g[1]);
}

/* A job not yet running can be taken back, on a lane too; one running
 * cannot. */
static void test_cancel(void **state) {
        struct worker *w;
        struct worker_limits lim = { .max_running = 1, .max_threads = 1 };
        assert_int_equal(worker_new(L, &lim, &w), 0);
        int g[2];
        gate(g);
        struct worker_lane lane = { 0 };
        struct job a, b, c, d;
        job_init(&a, 0, g[0], &lane);
        job_init(&b, 1, -1, &lane);
        job_init(&c, 2, -1, &lane);
        job_init(&d, 3, -1, NULL);
        assert_int_equal(worker_submit(w, &a.j), 0);
        assert_int_equal(worker_submit(w, &b.j), 0);
        assert_int_equal(worker_submit(w, &c.j), 0);
        assert_int_equal(worker_submit(w, &d.j), 0);
        wait_started(1);
        assert_false(worker_cancel(&a.j));
        assert_true(worker_cancel(&b.j));       /* waiting on the lane */
        assert_true(worker_cancel(&d.j));       /* queued */
        assert_false(worker_cancel(&b.j));
        assert_int_equal(write(g[1], "x", 1), 1);
        struct job *rest[] = { &a, &c, NULL };
        loop_until(all_done, rest);
        assert_false(b.done || b.ran || d.done || d.ran);
        assert_true(c.ran && c.order > a.order);
        worker_free(w);
        close(g[0]);
        close(g[1]);
}

/* Freed with work out: every job comes back once, cancelled unless it
 * ran, lane waiters included. */
static void test_free_hands_back(void **state) {
        struct worker *w;
        struct worker_limits lim = { .max_running = 1, .max_threads = 1 };
        assert_int_equal(worker_new(L, &lim, &w), 0);
        int g[2];
        gate(g);
        struct worker_lane lane = { 0 };
        struct job j[4];
        job_init(&j[0], 0, g[0], &lane);
        job_init(&j[1], 1, -1, &lane);
        job_init(&j[2], 2, -1, NULL);
        job_init(&j[3], 3, -1, &lane);
        for (int i = 0; i < 4; i++)
                assert_int_equal(worker_submit(w, &j[i].j), 0);
        wait_started(1);
        assert_int_equal(write(g[1], "x", 1), 1);
        pending = 1 << 30;
        worker_free(w);
        for (int i = 0; i < 4; i++) {
                assert_true(j[i].done);
                assert_true(j[i].ran || j[i].cancelled);
        }
        assert_true(j[0].ran);
        close(g[0]);
        close(g[1]);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_parallel_then_queue, setup, teardown),
                cmocka_unit_test_setup_teardown(test_lane_in_order, setup, teardown),
                cmocka_unit_test_setup_teardown(test_timeout_replaces_thread, setup, teardown),
                cmocka_unit_test_setup_teardown(test_timeout_while_queued, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
                cmocka_unit_test_setup_teardown(test_free_hands_back, setup, teardown),
        };
        return cmocka_run_group_tests_name("worker", tests, NULL, NULL);
}
