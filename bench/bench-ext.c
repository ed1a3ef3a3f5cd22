/* The extensions beyond file transfer, each beside the base operation it
 * extends, measured interleaved on the same agent: a detached process
 * started and waited for (ProcStart + ProcWait) beside a batch exec of the
 * same command, and a directory listed as one ListDir page (owners, times,
 * link targets) beside the base ListFiles of it. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vsock/client.h>
#include <vsock/error.h>

#include "bench.h"

#define CALL_TIMEOUT_MS 60000
#define LIST_ENTRIES 1000

static struct vsock_call call_with_timeout(int ms) {
        struct vsock_call c = VSOCK_CALL_INIT;
        c.deadline_ns = vsock_deadline_in(ms);
        return c;
}

/* ProcStart `true` and ProcWait on one connection, dial included (as the
 * batch exec it stands beside). ns, or < 0. */
static int64_t proc_true(struct bench *b, const struct agent *a) {
        struct vsock_call call = call_with_timeout(CALL_TIMEOUT_MS);
        struct vsock_proc_spec spec = { .req = { .command = "true" }, .keep_s = 1 };
        struct vsock_proc_info info = {};
        struct vsock_proc_end end = {};
        vsock_conn *c = NULL;
        int64_t t0 = mono_ns();
        int r = vsock_dial_str(a->exec_addr, 0, CALL_TIMEOUT_MS, -1, &c);
        if (r >= 0)
                r = vsock_proc_start(c, &spec, &call, &info);
        if (r >= 0)
                r = vsock_proc_wait(c, info.id, NULL, 0, &call, &end);
        int64_t dt = mono_ns() - t0;
        if (c)
                (void) vsock_conn_close(c);
        vsock_proc_info_clear(&info);
        if (r < 0 || end.exit_code != 0) {
                bench_fail(b, "proc start+wait of true: %s (exit %d) %s", r < 0 ? vsock_strerror(r) : "ok",
                           end.exit_code, call.remote_error);
                return r < 0 ? r : -EIO;
        }
        return dt;
}

static int count_page(void *userdata, const struct vsock_stat *entries, size_t n) {
        *(size_t *) userdata += n;
        return 0;
}

/* @dir listed by ListDir in one page (@paged) or by the base ListFiles,
 * dial included. ns, or < 0. */
static int64_t list_once(struct bench *b, const struct agent *a, const char *dir, bool paged) {
        struct vsock_call call = call_with_timeout(CALL_TIMEOUT_MS);
        size_t n = 0;
        struct vsock_file_entry *e = NULL;
        int64_t t0 = mono_ns();
        int r = paged ? vsock_list_dir_at(a->exec_addr, dir, LIST_ENTRIES, count_page, &n, &call)
                      : vsock_list_files_at(a->exec_addr, dir, &call, &e, &n);
        int64_t dt = mono_ns() - t0;
        vsock_file_entries_free(e, n);
        if (r < 0 || n != LIST_ENTRIES) {
                bench_fail(b, "%s of %s: %s, %zu entries %s", paged ? "ListDir" : "ListFiles", dir,
                           r < 0 ? vsock_strerror(r) : "ok", n, call.remote_error);
                return r < 0 ? r : -EIO;
        }
        return dt;
}

static int make_dir(const char *dir) {
        if (mkdir(dir, 0755) < 0)
                return -errno;
        char p[256];
        for (int i = 0; i < LIST_ENTRIES; i++) {
                snprintf(p, sizeof p, "%s/entry-%04d", dir, i);
                int fd = i % 10 == 9 ? symlink("entry-0000", p) : open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                if (fd < 0)
                        return -errno;
                if (i % 10 != 9)
                        close(fd);
        }
        return 0;
}

/* Median and p99 rows of @v (@n samples) beside @floor's, which @note
 * names. */
static void rows_beside(struct bench *b, const char *what, double *v, double *floor, size_t n, const char *note) {
        char name[64];
        double fm = stat_median(floor, n), fp = stat_p99(floor, n);
        snprintf(name, sizeof name, "%s, median", what);
        bench_row(b, name, stat_median(v, n), fm, "ms", T_NONE, 0, note);
        snprintf(name, sizeof name, "%s, p99", what);
        bench_row(b, name, stat_p99(v, n), fp, "ms", T_NONE, 0, NULL);
}

void fig_ext(struct bench *b) {
        struct agent a;
        if (agent_start(b, &a, "agent") < 0)
                return;
        int n = b->exec_iters;
        double *v = calloc((size_t) n, sizeof *v), *floor = calloc((size_t) n, sizeof *floor);
        char dir[128];
        snprintf(dir, sizeof dir, "%s/list-dir", b->dir);
        int r = make_dir(dir);
        if (!v || !floor || r < 0) {
                bench_fail(b, "ext: cannot set up: %s", strerror(r < 0 ? -r : ENOMEM));
                goto out;
        }

        /* Warm up both paths (the agent's allocator, page cache). */
        for (int i = 0; i < 10; i++) {
                (void) exec_true_batch(b, &a);
                (void) proc_true(b, &a);
        }
        size_t got = 0;
        for (int i = 0; i < n; i++) {
                int64_t f = exec_true_batch(b, &a), t = f < 0 ? f : proc_true(b, &a);
                if (t < 0)
                        break;
                floor[got] = (double) f / 1e6;
                v[got++] = (double) t / 1e6;
        }
        if (got > 0)
                rows_beside(b, "proc start+wait true", v, floor, got, "floor: exec batch true");

        for (int i = 0; i < 5; i++) {
                (void) list_once(b, &a, dir, false);
                (void) list_once(b, &a, dir, true);
        }
        got = 0;
        for (int i = 0; i < n; i++) {
                int64_t f = list_once(b, &a, dir, false), t = f < 0 ? f : list_once(b, &a, dir, true);
                if (t < 0)
                        break;
                floor[got] = (double) f / 1e6;
                v[got++] = (double) t / 1e6;
        }
        if (got > 0)
                rows_beside(b, "ListDir page of 1000", v, floor, got, "floor: ListFiles of the same directory");
out:
        free(v);
        free(floor);
        agent_stop(b, &a);
}
