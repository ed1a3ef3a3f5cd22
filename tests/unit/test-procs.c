/* The detached-process records (procs.c): ids and tags, ring offsets and
 * gaps as ProcInfo shows them, the limits on count and ring memory with
 * the eviction of exited records, retention after exit, and followers;
 * and the OOM-kill counter parser (oomkill.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/serve/loop.h"
#include "agent/exec/oomkill.h"
#include "agent/proc/procs.h"
#include "lib/ext_msg.h"

static struct loop *L;

static int setup(void **state) { return loop_new(&L); }
static int teardown(void **state) {
        loop_free(L);
        return 0;
}

static struct procs_limits small_limits(void) {
        return (struct procs_limits) { .procs_max = 3, .ring_default = 16, .ring_max = 64,
                                       .ring_total_max = UINT64_C(1) << 20, .keep_s = 600 };
}

static struct proc *add(struct procs *m, const char *tag, int want) {
        struct proc *p = NULL;
        const char *why = NULL;
        struct proc_spec spec = { .tag = tag, .command = "true" };
        assert_int_equal(procs_add(m, &spec, &p, &why), want);
        if (want < 0)
                assert_non_null(why);
        return p;
}

static void test_ids_and_tags(void **state) {
        struct procs *m;
        struct procs_limits lim = small_limits();
        assert_int_equal(procs_new(L, &lim, &m), 0);
        struct proc *a = add(m, "web", 0);
        struct proc *b = add(m, NULL, 0);
        assert_true(proc_id(b) > proc_id(a));
        assert_ptr_equal(procs_find(m, 0, "web"), a);
        assert_ptr_equal(procs_find(m, proc_id(b), NULL), b);
        assert_null(procs_find(m, 0, "nope"));
        assert_null(procs_find(m, 999, NULL));
        add(m, "web", -EEXIST);
        add(m, "bad tag", -EINVAL);
        add(m, "", -EINVAL);
        char long_tag[66];
        memset(long_tag, 'x', 65);
        long_tag[65] = '\0';
        add(m, long_tag, -EINVAL);
        long_tag[64] = '\0';
        assert_true(procs_tag_valid(long_tag));
        assert_true(procs_tag_valid("a.b_c-D9"));
        assert_false(procs_tag_valid("a/b"));

        /* Ids are never reused, not even after a removal. */
        uint64_t old = proc_id(b);
        assert_int_equal(proc_remove(b), -EBUSY); /* still "starting" */
        proc_exited(b, 0, 0, 0);
        assert_int_equal(proc_remove(b), 0);
        struct proc *c = add(m, NULL, 0);
        assert_true(proc_id(c) > old);
        /* A removed record's tag is free again. */
        proc_exited(a, 0, 0, 0);
        assert_int_equal(proc_remove(a), 0);
        add(m, "web", 0);
        procs_free(m);
}

static void test_offsets_and_gaps(void **state) {
        struct procs *m;
        struct procs_limits lim = small_limits();
        assert_int_equal(procs_new(L, &lim, &m), 0);
        struct proc *p = add(m, NULL, 0); /* ring_default: 16 bytes */
        proc_set_running(p, 4242);
        assert_int_equal(proc_output(p, OUTRING_STDOUT, "0123456789", 10), 0);
        assert_int_equal(proc_output(p, OUTRING_STDERR, "abcdefghij", 10), 0);
        assert_int_equal(proc_output(p, OUTRING_STDOUT, "KLMNOPQRST", 10), 0);

        struct ext_proc_info info;
        proc_info(p, &info);
        assert_string_equal(info.state, "running");
        assert_int_equal(info.pid, 4242);
        assert_int_equal(info.out_end, 30);
        assert_int_equal(info.ring_start, 14);

        /* Replay from 0: a gap up to the ring's start, then the bytes,
         * each run of one stream. */
        struct outring_chunk ch;
        assert_int_equal(outring_read(proc_ring(p), 0, 100, &ch), 0);
        assert_int_equal(ch.kind, OUTRING_GAP);
        assert_int_equal(ch.to, 14);
        assert_int_equal(outring_read(proc_ring(p), 14, 100, &ch), 0);
        assert_int_equal(ch.kind, OUTRING_DATA);
        assert_int_equal(ch.stream, OUTRING_STDERR);
        /* A run may stop at the allocation's end: the rest follows. */
        assert_true(ch.len >= 1 && ch.len <= 6);
        assert_memory_equal(ch.data, "efghij", ch.len);

        proc_exited(p, 137, 9, 1);
        proc_info(p, &info);
        assert_string_equal(info.state, "exited");
        assert_int_equal(info.exit_code, 137);
        assert_int_equal(info.signal, 9);
        assert_true(info.oom_killed);
        assert_true(info.ended_ns >= info.started_ns);
        /* And the encoder takes the borrowed snapshot. */
        struct buf b = BUF_INIT(0);
        assert_int_equal(ext_proc_info_encode(&info, &b), 0);
        assert_non_null(memmem(buf_head(&b), buf_size(&b), "\"oom_killed\":true", 17));
        buf_free(&b);
        procs_free(m);
}

static void test_command_is_cut(void **state) {
        struct procs *m;
        struct procs_limits lim = small_limits();
        assert_int_equal(procs_new(L, &lim, &m), 0);
        char *big = malloc(10000);
        memset(big, 'a', 9999);
        big[9999] = '\0';
        char *args[] = { "x", big, "y" };
        struct proc_spec spec = { .command = "cmd", .args = args, .n_args = 3 };
        struct proc *p;
        const char *why;
        assert_int_equal(procs_add(m, &spec, &p, &why), 0);
        struct ext_proc_info info;
        proc_info(p, &info);
        assert_string_equal(info.command, "cmd");
        assert_int_equal(info.n_args, 2);
        assert_string_equal(info.args[0], "x");
        assert_int_equal(strlen(info.command) + strlen(info.args[0]) + strlen(info.args[1]), PROCS_COMMAND_MAX);
        spec = (struct proc_spec) { .command = big };
        assert_int_equal(procs_add(m, &spec, &p, &why), 0);
        proc_info(p, &info);
        assert_int_equal(strlen(info.command), PROCS_COMMAND_MAX);
        free(big);
        procs_free(m);
}

static void test_count_limit_evicts_exited(void **state) {
        struct procs *m;
        struct procs_limits lim = small_limits();
        assert_int_equal(procs_new(L, &lim, &m), 0);
        struct proc *a = add(m, "a", 0);
        struct proc *b = add(m, "b", 0);
        add(m, "c", 0);
        add(m, "d", -PROCS_ELIMIT);
        /* Exited ones give way, the oldest first. */
        proc_exited(b, 0, 0, 0);
        proc_exited(a, 0, 0, 0);
        add(m, "d", 0);
        assert_null(procs_find(m, 0, "a"));
        assert_non_null(procs_find(m, 0, "b"));
        assert_int_equal(procs_count(m), 3);
        procs_free(m);
}

static void test_ring_limits(void **state) {
        struct procs *m;
        struct procs_limits lim = small_limits();
        lim.procs_max = 100;
        lim.ring_total_max = 2 * outring_footprint(64) + 10;
        assert_int_equal(procs_new(L, &lim, &m), 0);
        struct proc_spec spec = { .command = "x", .ring = 65 };
        struct proc *p;
        const char *why;
        assert_int_equal(procs_add(m, &spec, &p, &why), -EINVAL); /* above ring_max */
        spec.ring = 64;
        struct proc *first;
        assert_int_equal(procs_add(m, &spec, &first, &why), 0);
        assert_int_equal(procs_add(m, &spec, &p, &why), 0);
        assert_int_equal(procs_ring_reserved(m), 2 * outring_footprint(64));
        assert_int_equal(procs_add(m, &spec, &p, &why), -PROCS_ELIMIT);
        assert_non_null(strstr(why, "ring_total_max"));
        proc_exited(first, 0, 0, 0);
        assert_int_equal(procs_add(m, &spec, &p, &why), 0);
        assert_int_equal(procs_count(m), 2);
        procs_free(m);
}

/* A follower that records what it saw and stops the loop when told to. */
struct follower {
        struct proc_watch w;
        int calls;
        bool saw_removed;
        bool quit_on_removed, quit_on_call;
};

static void on_follow(struct defer *d) {
        struct follower *f = container_of(d, struct follower, w.defer);
        f->calls++;
        if (!f->w.proc) {
                f->saw_removed = true;
                if (f->quit_on_removed)
                        loop_quit(L);
        }
        if (f->quit_on_call)
                loop_quit(L);
}

static struct timer watchdog;
static void on_watchdog(struct timer *t) {
        fail_msg("hang: the loop did not stop");
}

static void test_retention_and_followers(void **state) {
        struct procs *m;
        struct procs_limits lim = small_limits();
        assert_int_equal(procs_new(L, &lim, &m), 0);
        struct proc_spec spec = { .command = "x", .keep_ms = 30 };
        struct proc *p;
        const char *why;
        assert_int_equal(procs_add(m, &spec, &p, &why), 0);
        struct follower f = { 0 }, g = { 0 };
        proc_watch_init(&f.w, L, on_follow);
        proc_watch_init(&g.w, L, on_follow);
        proc_watch_add(p, &f.w, true);
        proc_watch_add(p, &g.w, false);
        struct ext_proc_info info;
        proc_info(p, &info);
        assert_int_equal(info.attached, 1); /* only counted watches */

        /* Several changes in one pass: one call each. */
        proc_set_running(p, 1);
        (void) proc_output(p, OUTRING_STDOUT, "x", 1);
        (void) proc_output(p, OUTRING_STDOUT, "y", 1);
        f.quit_on_call = true;
        timer_init(&watchdog, L, on_watchdog);
        assert_int_equal(timer_arm_in_ms(&watchdog, 10000), 0);
        assert_int_equal(loop_run(L), 0);
        assert_int_equal(f.calls, 1);
        assert_int_equal(g.calls, 1);

        /* g leaves; f sees the exit, then the removal when keep_ms passed. */
        proc_watch_remove(&g.w);
        proc_watch_remove(&g.w); /* idempotent */
        f.quit_on_call = false;
        f.quit_on_removed = true;
        proc_exited(p, 0, 0, 0);
        assert_int_equal(loop_run(L), 0);
        assert_true(f.saw_removed);
        assert_null(f.w.proc);
        assert_int_equal(procs_count(m), 0);
        assert_int_equal(g.calls, 1);
        timer_disarm(&watchdog);
        proc_watch_remove(&f.w);
        procs_free(m);
}

static void test_keep_is_capped(void **state) {
        struct procs *m;
        struct procs_limits lim = small_limits();
        lim.keep_s = 0; /* results are dropped at once (at the next pass) */
        assert_int_equal(procs_new(L, &lim, &m), 0);
        struct proc_spec spec = { .command = "x", .keep_ms = 3600 * 1000 };
        struct proc *p;
        const char *why;
        assert_int_equal(procs_add(m, &spec, &p, &why), 0);
        struct follower f = { .quit_on_removed = true };
        proc_watch_init(&f.w, L, on_follow);
        proc_watch_add(p, &f.w, false);
        proc_exited(p, 3, 0, 0);
        timer_init(&watchdog, L, on_watchdog);
        assert_int_equal(timer_arm_in_ms(&watchdog, 10000), 0);
        assert_int_equal(loop_run(L), 0);
        timer_disarm(&watchdog);
        assert_true(f.saw_removed);
        procs_free(m);
}

static void test_oom_events(void **state) {
        uint64_t v = 0;
        const char ok[] = "low 0\nhigh 0\nmax 4\noom 2\noom_kill 7\noom_group_kill 0\n";
        assert_int_equal(oomkill_parse_events(ok, sizeof ok - 1, &v), 0);
        assert_int_equal(v, 7);
        const char none[] = "low 0\noom 2\noom_group_kill 3\n";
        assert_int_equal(oomkill_parse_events(none, sizeof none - 1, &v), -ENOENT);
        const char bad[] = "oom_kill x\n";
        assert_int_equal(oomkill_parse_events(bad, sizeof bad - 1, &v), -EINVAL);
        const char empty[] = "oom_kill \n";
        assert_int_equal(oomkill_parse_events(empty, sizeof empty - 1, &v), -EINVAL);
        const char huge[] = "oom_kill 99999999999999999999999\n";
        assert_int_equal(oomkill_parse_events(huge, sizeof huge - 1, &v), -EINVAL);
        const char last[] = "max 1\noom_kill 12"; /* no final newline */
        assert_int_equal(oomkill_parse_events(last, sizeof last - 1, &v), 0);
        assert_int_equal(v, 12);

        char path[] = "/tmp/test-procs-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, ok, sizeof ok - 1), (ssize_t) (sizeof ok - 1));
        close(fd);
        v = 0;
        assert_int_equal(oomkill_count(path, &v), 0);
        assert_int_equal(v, 7);
        unlink(path);
        assert_int_equal(oomkill_count(path, &v), -ENOENT);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_ids_and_tags, setup, teardown),
                cmocka_unit_test_setup_teardown(test_offsets_and_gaps, setup, teardown),
                cmocka_unit_test_setup_teardown(test_command_is_cut, setup, teardown),
                cmocka_unit_test_setup_teardown(test_count_limit_evicts_exited, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ring_limits, setup, teardown),
                cmocka_unit_test_setup_teardown(test_retention_and_followers, setup, teardown),
                cmocka_unit_test_setup_teardown(test_keep_is_capped, setup, teardown),
                cmocka_unit_test(test_oom_events),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
