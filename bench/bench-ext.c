/* The extensions beyond file transfer, each beside the base operation it
 * extends or its floor, measured interleaved on the same agent: a detached
 * process started and waited for (ProcStart + ProcWait) beside a batch exec
 * of the same command, a directory listed as one ListDir page (owners,
 * times, link targets) beside the base ListFiles of it, and a guest client's
 * bytes forwarded to the host (FwdListen + FwdAttach, `port-forward -R`)
 * beside the same over plain TCP. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vsock/client.h>
#include <vsock/error.h>

#include "bench.h"

#define CALL_TIMEOUT_MS 60000
#define LIST_ENTRIES 1000
#define CHUNK (256u * 1024)

static struct vsock_call call_with_timeout(int ms) {
        struct vsock_call c = VSOCK_CALL_INIT;
        c.deadline_ns = vsock_deadline_in(ms);
        return c;
}

/* ProcStart `true` and ProcWait on one connection, dial included (as the
 * batch exec it stands beside). ns, or < 0. */
static int64_t proc_true(struct bench *b, const struct agent *a, const void *arg) {
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

/* A timed operation on the agent: ns, or < 0. */
struct timed {
        int64_t (*fn)(struct bench *b, const struct agent *a, const void *arg);
        const void *arg;
};

static int64_t exec_floor(struct bench *b, const struct agent *a, const void *arg) { return exec_true_batch(b, a); }
static int64_t list_paged(struct bench *b, const struct agent *a, const void *dir) { return list_once(b, a, dir, true); }
static int64_t list_base(struct bench *b, const struct agent *a, const void *dir) { return list_once(b, a, dir, false); }

/* @warm rounds of both, then @n interleaved samples of @floor_op and @op
 * (so both see the same noise) into @fv and @v, and their rows. */
static void interleave(struct bench *b, const struct agent *a, const struct timed *floor_op, const struct timed *op,
                       int warm, double *v, double *fv, int n, const char *what, const char *note) {
        for (int i = 0; i < warm; i++) {
                (void) floor_op->fn(b, a, floor_op->arg);
                (void) op->fn(b, a, op->arg);
        }
        size_t got = 0;
        for (int i = 0; i < n; i++) {
                int64_t f = floor_op->fn(b, a, floor_op->arg), t = f < 0 ? f : op->fn(b, a, op->arg);
                if (t < 0)
                        break;
                fv[got] = (double) f / 1e6;
                v[got++] = (double) t / 1e6;
        }
        if (got > 0)
                rows_beside(b, what, v, fv, got, note);
}

/* ---- guest -> host forwarding ----------------------------------------------- */

/* A guest client: connects to 127.0.0.1:@port, writes @bytes, half-closes. */
struct writer {
        uint16_t port;
        uint64_t bytes;
        int err;
};

static void *writer_main(void *p) {
        struct writer *w = p;
        uint8_t *buf = calloc(1, CHUNK);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(w->port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        if (!buf || fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                w->err = errno ? errno : ENOMEM;
        for (uint64_t left = w->bytes; !w->err && left > 0;) {
                ssize_t k = write(fd, buf, left < CHUNK ? (size_t) left : CHUNK);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        w->err = k < 0 ? errno : EIO;
                else
                        left -= (uint64_t) k;
        }
        if (fd >= 0) {
                (void) shutdown(fd, SHUT_WR);
                close(fd);
        }
        free(buf);
        return NULL;
}

/* Read @fd to EOF: the byte count, or < 0. */
static int64_t drain(int fd) {
        uint8_t *buf = malloc(CHUNK);
        int64_t n = buf ? 0 : -ENOMEM;
        while (n >= 0) {
                ssize_t k = read(fd, buf, CHUNK);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        n = k < 0 ? -errno : n;
                        break;
                }
                n += k;
        }
        free(buf);
        return n;
}

/* One guest client's @bytes to the host, through the agent's listener on
 * @ctl (whose port is @port) when @ctl is set, else over a plain TCP
 * listener @lfd. MiB/s, or NaN. */
static double forward_once(struct bench *b, const struct agent *a, vsock_conn *ctl, uint16_t port, int lfd,
                           uint64_t bytes) {
        struct writer w = { .port = port, .bytes = bytes };
        pthread_t th;
        int64_t t0 = mono_ns();
        if (pthread_create(&th, NULL, writer_main, &w) != 0) {
                bench_fail(b, "fwd-listen: cannot start the guest client");
                return NAN;
        }
        int fd = -1, r = 0;
        struct vsock_call call = call_with_timeout(CALL_TIMEOUT_MS);
        if (ctl) {
                struct vsock_fwd_event ev;
                vsock_conn *c = NULL;
                r = vsock_fwd_next_event(ctl, &call, &ev);
                if (r >= 0 && strcmp(ev.event, "accepted") != 0)
                        r = -EPROTO;
                if (r >= 0)
                        r = vsock_dial_str(a->exec_addr, 0, CALL_TIMEOUT_MS, -1, &c);
                if (r >= 0 && (r = vsock_fwd_attach(c, ev.id, &call)) < 0)
                        (void) vsock_conn_close(c);
                if (r >= 0) {
                        fd = vsock_conn_release_fd(c);
                        (void) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
                }
        } else if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
                r = -errno;
        int64_t n = r < 0 ? r : drain(fd);
        int64_t dt = mono_ns() - t0;
        pthread_join(th, NULL);
        if (fd >= 0)
                close(fd);
        if (n != (int64_t) bytes || w.err) {
                bench_fail(b, "%s: %s, %lld of %llu bytes %s", ctl ? "fwd-listen" : "tcp",
                           n < 0 ? vsock_strerror((int) n) : w.err ? strerror(w.err) : "short",
                           (long long) n, (unsigned long long) bytes, call.remote_error);
                return NAN;
        }
        return (double) n / MIB / ((double) dt / 1e9);
}

static void fig_fwd_listen(struct bench *b, const struct agent *a) {
        uint16_t tport = 0, gport = 0;
        int lfd = tcp_listen_loopback(&tport);
        vsock_conn *ctl = NULL;
        struct vsock_call call = call_with_timeout(CALL_TIMEOUT_MS);
        char bound[160] = "";
        int r = lfd < 0 ? lfd : vsock_dial_str(a->exec_addr, 0, CALL_TIMEOUT_MS, -1, &ctl);
        if (r >= 0)
                r = vsock_fwd_listen(ctl, "tcp:127.0.0.1:0", 0, &call, bound, sizeof bound);
        const char *colon = strrchr(bound, ':');
        if (r < 0 || !colon) {
                bench_fail(b, "fwd-listen: %s %s", vsock_strerror(r), call.remote_error);
                goto out;
        }
        gport = (uint16_t) atoi(colon + 1);
        double best[2] = { NAN, NAN };
        uint64_t bytes = b->xfer_bytes / 4;
        for (int rep = 0; rep < b->xfer_reps && b->errors == 0; rep++) {
                keep_best(&best[0], forward_once(b, a, NULL, tport, lfd, bytes));
                keep_best(&best[1], forward_once(b, a, ctl, gport, -1, bytes));
        }
        bench_row(b, "fwd-listen (-R) guest to host", best[1], best[0], "MiB/s", T_NONE, 0,
                  "floor: the same over direct TCP");
out:
        if (ctl)
                (void) vsock_conn_close(ctl);
        if (lfd >= 0)
                close(lfd);
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

        struct timed proc = { proc_true }, exec = { exec_floor };
        interleave(b, &a, &exec, &proc, 10, v, floor, n, "proc start+wait true", "floor: exec batch true");
        struct timed listdir = { list_paged, dir }, listfiles = { list_base, dir };
        interleave(b, &a, &listfiles, &listdir, 5, v, floor, n, "ListDir page of 1000",
                   "floor: ListFiles of the same directory");
        fig_fwd_listen(b, &a);
out:
        free(v);
        free(floor);
        agent_stop(b, &a);
}
