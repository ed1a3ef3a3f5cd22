/* A detached process's runner (procrun.c) in-process, on a real loop and
 * worker pools: output into the record, the exit status, and how an OOM
 * kill is told (the cgroup counter read at start and after a SIGKILL),
 * with procrun_memory_events pointing at a file the test controls. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/agent.h"
#include "agent/proc/procrun.h"
#include "agent/proc/procs.h"
#include "agent/serve/worker.h"
#include "lib/ext_msg.h"

static struct agent A;
static char events[64];

static void write_events(unsigned long long oom_kills) {
        FILE *f = fopen(events, "w");
        assert_non_null(f);
        fprintf(f, "low 0\nhigh 0\nmax 0\noom 0\noom_kill %llu\noom_group_kill 0\n", oom_kills);
        assert_int_equal(fclose(f), 0);
}

static int setup(void **state) {
        A = (struct agent) { .grace_ms = 2000, .linger_ms = 200, .io_timeout_ms = 10000 };
        sigemptyset(&A.changed_signals);
        if (loop_new(&A.loop) < 0)
                return -1;
        const struct worker_limits lim = { 4, 8, 10000 };
        if (worker_new(A.loop, &lim, &A.worker) < 0 || worker_new(A.loop, &lim, &A.spawner) < 0)
                return -1;
        const struct procs_limits pl = PROCS_LIMITS_DEFAULT;
        if (procs_new(A.loop, &pl, &A.procs) < 0)
                return -1;
        snprintf(events, sizeof events, "/tmp/test-procrun-%d.events", (int) getpid());
        procrun_memory_events = events;
        return 0;
}

static int teardown(void **state) {
        procs_free(A.procs);
        worker_free(A.worker);
        worker_free(A.spawner);
        loop_free(A.loop);
        unlink(events);
        return 0;
}

/* Follows one record: stops the loop when it reaches @want. */
struct follower {
        struct proc_watch w;
        enum proc_state want;
};

static void on_change(struct defer *d) {
        struct follower *f = container_of(d, struct follower, w.defer);
        if (!f->w.proc || proc_state(f->w.proc) >= f->want)
                loop_quit(A.loop);
}

static struct timer watchdog;
static void on_watchdog(struct timer *t) { fail_msg("hang: the process did not get there"); }

static void run_until(struct follower *f, enum proc_state want) {
        f->want = want;
        if (proc_state(f->w.proc) >= want)
                return;
        timer_init(&watchdog, A.loop, on_watchdog);
        assert_int_equal(timer_arm_in_ms(&watchdog, 15000), 0);
        assert_int_equal(loop_run(A.loop), 0);
        timer_disarm(&watchdog);
        assert_true(proc_state(f->w.proc) >= want);
}

static struct proc *start(const char *cmd, struct follower *f) {
        struct proc_spec spec = { .command = cmd };
        struct proc *p;
        const char *why;
        assert_int_equal(procs_add(A.procs, &spec, &p, &why), 0);
        struct ext_proc_start req;
        ext_proc_start_init(&req);
        req.command = strdup(cmd);
        assert_int_equal(procrun_start(&A, p, &req), 0);
        proc_watch_init(&f->w, A.loop, on_change);
        proc_watch_add(p, &f->w, false);
        run_until(f, PROC_RUNNING);
        return p;
}

static void result(struct proc *p, int *code, int *signo, int *oom) {
        int64_t ended;
        proc_result(p, code, signo, oom, &ended);
}

static void test_output_and_exit(void **state) {
        write_events(0);
        struct follower f;
        struct proc *p = start("echo out; echo err >&2; exit 5", &f);
        run_until(&f, PROC_EXITED);
        int code, signo, oom;
        result(p, &code, &signo, &oom);
        assert_int_equal(code, 5);
        assert_int_equal(signo, 0);
        assert_int_equal(oom, 0); /* not SIGKILLed: never an OOM kill */
        assert_int_equal(outring_end(proc_ring(p)), 8);
        proc_watch_remove(&f.w);
}

static void test_sigkill_with_oom_counter_rising(void **state) {
        write_events(3);
        struct follower f;
        struct proc *p = start("sleep 60", &f);
        /* The OOM killer's work, as the kernel would count it. */
        write_events(4);
        assert_int_equal(procrun_signal(proc_get_run(p), SIGKILL), 0);
        run_until(&f, PROC_EXITED);
        int code, signo, oom;
        result(p, &code, &signo, &oom);
        assert_int_equal(code, 137);
        assert_int_equal(signo, SIGKILL);
        assert_int_equal(oom, 1);
        proc_watch_remove(&f.w);
}

static void test_sigkill_without_oom(void **state) {
        write_events(4);
        struct follower f;
        struct proc *p = start("sleep 60", &f);
        assert_int_equal(procrun_signal(proc_get_run(p), SIGKILL), 0);
        run_until(&f, PROC_EXITED);
        int code, signo, oom;
        result(p, &code, &signo, &oom);
        assert_int_equal(signo, SIGKILL);
        assert_int_equal(oom, 0);
        proc_watch_remove(&f.w);
}

static void test_no_counter_cannot_tell(void **state) {
        unlink(events);
        struct follower f;
        struct proc *p = start("sleep 60", &f);
        assert_int_equal(procrun_signal(proc_get_run(p), SIGKILL), 0);
        run_until(&f, PROC_EXITED);
        int code, signo, oom;
        result(p, &code, &signo, &oom);
        assert_int_equal(signo, SIGKILL);
        assert_int_equal(oom, -1);
        proc_watch_remove(&f.w);
}

static void test_stdin_queue_and_close(void **state) {
        write_events(0);
        struct proc_spec spec = { .command = "cat" };
        struct proc *p;
        const char *why;
        assert_int_equal(procs_add(A.procs, &spec, &p, &why), 0);
        struct ext_proc_start req;
        ext_proc_start_init(&req);
        req.command = strdup("cat");
        req.stdin_pipe = true;
        assert_int_equal(procrun_start(&A, p, &req), 0);
        /* Written while it starts: queued, then delivered. */
        struct proc_run *r = proc_get_run(p);
        assert_int_equal(procrun_stdin_write(r, "queued\n", 7, false), 0);
        struct follower f;
        proc_watch_init(&f.w, A.loop, on_change);
        proc_watch_add(p, &f.w, false);
        run_until(&f, PROC_RUNNING);
        assert_int_equal(procrun_stdin_write(r, "later\n", 6, false), 0);
        /* Above the queue's bound: EAGAIN for a control write. */
        static char big[AGENT_QUEUE_HIGH + 1];
        assert_int_equal(procrun_stdin_write(r, big, sizeof big, false), -EAGAIN);
        assert_int_equal(procrun_stdin_close(r), 0);
        assert_int_equal(procrun_stdin_close(r), -EPIPE);
        assert_int_equal(procrun_stdin_write(r, "x", 1, false), -EPIPE);
        assert_int_equal(procrun_resize(r, 10, 10), -EINVAL); /* no terminal */
        run_until(&f, PROC_EXITED);
        assert_int_equal(outring_end(proc_ring(p)), 13);
        struct outring_chunk ch;
        assert_int_equal(outring_read(proc_ring(p), 0, 100, &ch), 0);
        assert_memory_equal(ch.data, "queued\nlater\n", ch.len);
        proc_watch_remove(&f.w);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_output_and_exit),
                cmocka_unit_test(test_sigkill_with_oom_counter_rising),
                cmocka_unit_test(test_sigkill_without_oom),
                cmocka_unit_test(test_no_counter_cannot_tell),
                cmocka_unit_test(test_stdin_queue_and_close),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
