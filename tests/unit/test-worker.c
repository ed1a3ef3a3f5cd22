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

#include "agent/serve/loop.h"
#include "agent/serve/worker.h"

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

/* A pool and a gate: a pipe whose read end blocks jobs until bytes are
 * written (one each). */
struct fixture {
        struct worker *w;
        int g[2];
};

static void fixture_new(struct fixture *f, unsigned max_running, unsigned max_threads, int timeout_ms) {
        struct worker_limits lim = { max_running, max_threads, timeout_ms };
        assert_int_equal(worker_new(L, &lim, &f->w), 0);
        assert_int_equal(pipe2(f->g, O_CLOEXEC), 0);
}

static void fixture_free(struct fixture *f) {
        worker_free(f->w);
        close(f->g[0]);
        close(f->g[1]);
}

static void open_gate(struct fixture *f, size_t n) {
        for (size_t i = 0; i < n; i++)
                assert_int_equal(write(f->g[1], "x", 1), 1);
}

static void test_parallel_then_queue(void **state) {
        struct fixture f;
        fixture_new(&f, 3, 6, 0);
        struct job j[5];
        for (int i = 0; i < 5; i++) {
                job_init(&j[i], i, f.g[0], NULL);
                assert_int_equal(worker_submit(f.w, &j[i].j), 0);
        }
        /* Three run at once, each on its own thread; two wait. */
        wait_started(3);
        struct worker_stats st;
        worker_stats(f.w, &st);
        assert_int_equal(st.threads, 3);
        assert_int_equal(st.queued, 2);
        open_gate(&f, 5);
        wait_done(5);
        for (int i = 0; i < 5; i++)
                assert_true(j[i].ran && j[i].done && !j[i].cancelled && !j[i].timed_out_cb);
        assert_int_equal(most_running, 3);
        /* In order: the waiting ones started after the first three. */
        assert_true(j[3].order >= 3 && j[4].order >= 3);
        fixture_free(&f);
}

static void test_lane_in_order(void **state) {
        struct fixture f;
        fixture_new(&f, 4, 4, 0);
        struct worker_lane lane = { 0 };
        enum { N = 6 };
        struct job j[N], other;
        for (int i = 0; i < N; i++) {
                job_init(&j[i], i, f.g[0], &lane);
                assert_int_equal(worker_submit(f.w, &j[i].j), 0);
        }
        /* One of the lane's jobs is out, the rest wait on the lane: one
         * thread so far. A job of no lane gets a thread of its own: once
         * the first thread holds its job (before, the pool may rightly
         * start a spare for the queue it sees). */
        wait_started(1);
        struct worker_stats st;
        worker_stats(f.w, &st);
        assert_int_equal(st.threads, 1);
        job_init(&other, 9, -1, NULL);
        assert_int_equal(worker_submit(f.w, &other.j), 0);
        worker_stats(f.w, &st);
        assert_int_equal(st.threads, 2);
        open_gate(&f, N);
        wait_done(N + 1);
        for (int i = 1; i < N; i++)
                assert_true(j[i].order > j[i - 1].order);
        assert_int_equal(lane_most, 1);
        assert_false(lane.busy);
        fixture_free(&f);
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
        struct fixture f;
        fixture_new(&f, 1, 3, 100);
        struct job stuck[3], quick, refused, after;
        job_init(&stuck[0], 0, f.g[0], NULL);
        job_init(&quick, 1, -1, NULL);
        assert_int_equal(worker_submit(f.w, &stuck[0].j), 0);
        wait_started(1);
        loop_until(is_timed_out, &stuck[0]);
        assert_true(stuck[0].j.timed_out);
        assert_false(stuck[0].done);
        /* Its thread no longer counts: a fresh one runs the next job. */
        assert_int_equal(worker_submit(f.w, &quick.j), 0);
        loop_until(is_done, &quick);
        assert_true(quick.ran && !quick.cancelled && !quick.timed_out_cb);
        struct worker_stats st;
        worker_stats(f.w, &st);
        assert_int_equal(st.stuck, 1);

        for (int i = 1; i < 3; i++) {
                job_init(&stuck[i], 1 + i, f.g[0], NULL);
                assert_int_equal(worker_submit(f.w, &stuck[i].j), 0);
                wait_started(2 + i);
                loop_until(is_timed_out, &stuck[i]);
        }
        worker_stats(f.w, &st);
        assert_int_equal(st.threads, 3);
        assert_int_equal(st.stuck, 3);
        job_init(&refused, 9, -1, NULL);
        assert_int_equal(worker_submit(f.w, &refused.j), -EBUSY);

        /* The kernel lets them go: done() for each, and the pool serves. */
        open_gate(&f, 3);
        struct job *all[] = { &stuck[0], &stuck[1], &stuck[2], NULL };
        loop_until(all_done, all);
        for (int i = 0; i < 3; i++)
                assert_true(stuck[i].ran && !stuck[i].cancelled);
        worker_stats(f.w, &st);
        assert_int_equal(st.stuck, 0);
        job_init(&after, 10, -1, NULL);
        assert_int_equal(worker_submit(f.w, &after.j), 0);
        wait_done(1);
        assert_true(after.ran);
        assert_false(refused.done);
        fixture_free(&f);
}

/* A job that waited past the timeout never runs. */
static void test_timeout_while_queued(void **state) {
        struct fixture f;
        fixture_new(&f, 1, 1, 100);
        struct job a, b;
        job_init(&a, 0, f.g[0], NULL);
        job_init(&b, 1, -1, NULL);
        assert_int_equal(worker_submit(f.w, &a.j), 0);
        wait_started(1);
        assert_int_equal(worker_submit(f.w, &b.j), 0);
        loop_until(is_done, &b);
        assert_true(b.timed_out_cb && b.cancelled);
        assert_false(b.ran);
        assert_true(a.timed_out_cb);
        open_gate(&f, 1);
        loop_until(is_done, &a);
        assert_true(a.ran && !a.cancelled);
        fixture_free(&f);
}

/* A job not yet running can be taken back, on a lane too; one running
 * cannot. */
static void test_cancel(void **state) {
        struct fixture f;
        fixture_new(&f, 1, 1, 0);
        struct worker_lane lane = { 0 };
        struct job a, b, c, d;
        job_init(&a, 0, f.g[0], &lane);
        job_init(&b, 1, -1, &lane);
        job_init(&c, 2, -1, &lane);
        job_init(&d, 3, -1, NULL);
        struct job *order[] = { &a, &b, &c, &d };
        for (int i = 0; i < 4; i++)
                assert_int_equal(worker_submit(f.w, &order[i]->j), 0);
        wait_started(1);
        assert_false(worker_cancel(&a.j));
        assert_true(worker_cancel(&b.j));       /* waiting on the lane */
        assert_true(worker_cancel(&d.j));       /* queued */
        assert_false(worker_cancel(&b.j));
        open_gate(&f, 1);
        struct job *rest[] = { &a, &c, NULL };
        loop_until(all_done, rest);
        assert_false(b.done || b.ran || d.done || d.ran);
        assert_true(c.ran && c.order > a.order);
        fixture_free(&f);
}

/* Freed with work out: every job comes back once, cancelled unless it
 * ran, lane waiters included. */
static void test_free_hands_back(void **state) {
        struct fixture f;
        fixture_new(&f, 1, 1, 0);
        struct worker_lane lane = { 0 };
        struct job j[4];
        job_init(&j[0], 0, f.g[0], &lane);
        job_init(&j[1], 1, -1, &lane);
        job_init(&j[2], 2, -1, NULL);
        job_init(&j[3], 3, -1, &lane);
        for (int i = 0; i < 4; i++)
                assert_int_equal(worker_submit(f.w, &j[i].j), 0);
        wait_started(1);
        open_gate(&f, 1);
        pending = 1 << 30;
        fixture_free(&f);
        for (int i = 0; i < 4; i++) {
                assert_true(j[i].done);
                assert_true(j[i].ran || j[i].cancelled);
        }
        assert_true(j[0].ran);
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
