/* Figures 1, 2 and 4: exec latency per mode, stream and pipe throughput
 * (library, bare frame reader, and the local floors), and many concurrent
 * pipe sessions. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <vsock/client.h>
#include <vsock/error.h>
#include <vsock/frame.h>
#include <vsock/msg.h>

#include "bench.h"
#include "lib/msg-internal.h"

#define CALL_TIMEOUT_MS 60000
#define READ_BUF (256u * 1024)
#define MIN_SZ(a, b) ((a) < (b) ? (a) : (b))

static struct vsock_call call_with_timeout(int ms) {
        struct vsock_call c = VSOCK_CALL_INIT;
        c.deadline_ns = vsock_deadline_in(ms);
        return c;
}

/* ---- 1: exec latency -------------------------------------------------------- */

enum mode { M_BATCH, M_STREAM, M_PIPE, M_TTY, _M_MAX };
static const char *const mode_names[_M_MAX] = { "batch", "stream", "pipe", "tty" };

static int64_t exec_true(struct bench *b, const struct agent *a, enum mode m) {
        struct vsock_exec_request req = { .command = "true", .rows = 24, .cols = 80 };
        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        struct vsock_call call = call_with_timeout(CALL_TIMEOUT_MS);
        struct vsock_exec_result res = {};
        int64_t t0 = mono_ns();
        int r;
        switch (m) {
        case M_BATCH:
                r = vsock_exec_at(a->exec_addr, &req, &call, &res);
                break;
        case M_STREAM:
                r = vsock_exec_stream_at(a->exec_addr, &req, &io, &call, &res);
                break;
        case M_PIPE:
                r = vsock_exec_pipe_at(a->exec_addr, &req, &io, &call, &res);
                break;
        default:
                r = vsock_exec_tty_at(a->exec_addr, &req, &io, &call, &res);
                break;
        }
        int64_t dt = mono_ns() - t0;
        if (r < 0 || res.exit_code != 0) {
                bench_fail(b, "%s exec of true: %s (exit %lld) %s%s", mode_names[m], r < 0 ? vsock_strerror(r) : "ok",
                           (long long) res.exit_code, call.remote_error, res.error ? res.error : "");
                vsock_exec_result_clear(&res);
                return r < 0 ? r : -EIO;
        }
        vsock_exec_result_clear(&res);
        return dt;
}

int64_t exec_true_batch(struct bench *b, const struct agent *a) {
        return exec_true(b, a, M_BATCH);
}

/* What --pid-ns costs per command (a namespace, a /proc mount and an init
 * per exec): batch `true` against an agent with it, interleaved with the
 * same on @plain. Root only; informational. */
static void fig_exec_pid_ns(struct bench *b, const struct agent *plain) {
        if (geteuid() != 0)
                return;
        struct agent ns;
        if (agent_start_opts(b, &ns, "pidns", "--pid-ns") < 0)
                return;
        int n = b->exec_iters;
        double *base = calloc((size_t) n, sizeof *base), *v = calloc((size_t) n, sizeof *v);
        for (int i = 0; i < 10; i++)
                (void) exec_true(b, &ns, M_BATCH);
        size_t got = 0;
        for (int i = 0; i < n && base && v; i++) {
                int64_t t0 = exec_true(b, plain, M_BATCH), t1 = exec_true(b, &ns, M_BATCH);
                if (t0 < 0 || t1 < 0)
                        break;
                base[got] = (double) t0 / 1e6;
                v[got++] = (double) t1 / 1e6;
        }
        if (got > 0) {
                double bm = stat_median(base, got), bp = stat_p99(base, got);
                bench_row(b, "exec batch true --pid-ns, median", stat_median(v, got), bm, "ms", T_NONE, 0,
                          "floor: the same without --pid-ns");
                bench_row(b, "exec batch true --pid-ns, p99", stat_p99(v, got), bp, "ms", T_NONE, 0, NULL);
        }
        free(base);
        free(v);
        agent_stop(b, &ns);
}

void fig_exec_latency(struct bench *b) {
        struct agent a;
        if (agent_start(b, &a, "agent") < 0)
                return;
        int n = b->exec_iters;
        double *floor = calloc((size_t) n, sizeof *floor);
        double *v[_M_MAX];
        for (int m = 0; m < _M_MAX; m++)
                v[m] = calloc((size_t) n, sizeof **v);
        char *sh[] = { "/bin/sh", "-c", "true", NULL };

        /* Warm up caches (page cache, dentries, the agent's allocator). */
        for (int i = 0; i < 10; i++) {
                (void) spawn_wait(sh, -1);
                for (int m = 0; m < _M_MAX; m++)
                        (void) exec_true(b, &a, (enum mode) m);
        }
        /* Interleaved: every figure and its floor see the same noise. */
        size_t got = 0;
        for (int i = 0; i < n; i++) {
                int64_t f = spawn_wait(sh, -1);
                if (f < 0) {
                        bench_fail(b, "posix_spawn /bin/sh -c true: %s", strerror((int) -f));
                        break;
                }
                int64_t t[_M_MAX];
                bool ok = true;
                for (int m = 0; m < _M_MAX && ok; m++)
                        ok = (t[m] = exec_true(b, &a, (enum mode) m)) >= 0;
                if (!ok)
                        break;
                floor[got] = (double) f / 1e6;
                for (int m = 0; m < _M_MAX; m++)
                        v[m][got] = (double) t[m] / 1e6;
                got++;
        }
        if (got > 0) {
                double fm = stat_median(floor, got), fp = stat_p99(floor, got);
                for (int m = 0; m < _M_MAX; m++) {
                        char name[48];
                        snprintf(name, sizeof name, "exec %s true, median", mode_names[m]);
                        bench_row(b, name, stat_median(v[m], got), fm, "ms", T_RATIO_MAX, m == M_BATCH ? 1.2 : 1.3,
                                  NULL);
                        snprintf(name, sizeof name, "exec %s true, p99", mode_names[m]);
                        bench_row(b, name, stat_p99(v[m], got), fp, "ms", T_NONE, 0, NULL);
                }
        }
        for (int m = 0; m < _M_MAX; m++)
                free(v[m]);
        free(floor);
        fig_exec_pid_ns(b, &a);
        agent_stop(b, &a);
}

/* ---- 2: throughput ----------------------------------------------------------- */

/* Userdata of the streaming calls: output counted, input handed out. */
struct xfer {
        uint64_t out;
        uint64_t in_left;
};

static int count_output(void *userdata, enum vsock_stream_id stream, const uint8_t *data, size_t len) {
        struct xfer *x = userdata;
        if (stream == VSOCK_STREAM_STDOUT)
                x->out += len;
        return 0;
}

/* The content does not matter to cat: the buffer is handed over as is. */
static ssize_t feed_stdin(void *userdata, void *buf, size_t n) {
        struct xfer *x = userdata;
        size_t k = x->in_left < n ? (size_t) x->in_left : n;
        x->in_left -= k;
        return (ssize_t) k;
}

static double mib_per_s(uint64_t bytes, int64_t ns) {
        return ns > 0 ? (double) bytes / MIB / ((double) ns / 1e9) : NAN;
}

static double xfer_stream_lib(struct bench *b, const struct agent *a) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "head -c %llu /dev/zero", (unsigned long long) b->xfer_bytes);
        struct vsock_exec_request req = { .command = cmd };
        struct xfer x = { 0 };
        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        io.on_output = count_output;
        io.userdata = &x;
        struct vsock_call call = call_with_timeout(10 * CALL_TIMEOUT_MS);
        struct vsock_exec_result res = {};
        int64_t t0 = mono_ns();
        int r = vsock_exec_stream_at(a->exec_addr, &req, &io, &call, &res);
        int64_t dt = mono_ns() - t0;
        bool ok = r >= 0 && res.exit_code == 0 && x.out == b->xfer_bytes;
        if (!ok)
                bench_fail(b, "stream exec: %s, exit %lld, %llu bytes %s", r < 0 ? vsock_strerror(r) : "ok",
                           (long long) res.exit_code, (unsigned long long) x.out, call.remote_error);
        vsock_exec_result_clear(&res);
        return ok ? mib_per_s(x.out, dt) : NAN;
}

static int unix_connect(const char *addr) {
        const char *path = strchr(addr, ':') + 1;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                int e = errno;
                close(fd);
                return -e;
        }
        return fd;
}

/* The smallest correct client: one blocking socket, large reads, frames
 * parsed in place, payload bytes counted and never copied. */
static double xfer_stream_bare(struct bench *b, const struct agent *a) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "head -c %llu /dev/zero", (unsigned long long) b->xfer_bytes);
        struct vsock_exec_request req = { .command = cmd };
        uint8_t *payload = NULL;
        size_t plen;
        if (vsock_exec_request_encode(&req, &payload, &plen) < 0) {
                bench_fail(b, "bare reader: encode");
                return NAN;
        }
        uint8_t *buf = malloc(READ_BUF);
        int fd = unix_connect(a->exec_addr);
        double result = NAN;
        if (!buf || fd < 0) {
                bench_fail(b, "bare reader: connect: %s", strerror(fd < 0 ? -fd : ENOMEM));
                goto out;
        }
        int64_t t0 = mono_ns();
        uint8_t hdr[VSOCK_FRAME_HEADER_SIZE];
        vsock_frame_header(hdr, VSOCK_MSG_EXEC_STREAM, (uint32_t) plen);
        struct iovec iov[2] = { { hdr, sizeof hdr }, { payload, plen } };
        if (writev(fd, iov, 2) != (ssize_t) (sizeof hdr + plen)) {
                bench_fail(b, "bare reader: write request: %m");
                goto out;
        }
        uint64_t out = 0;
        uint8_t h[VSOCK_FRAME_HEADER_SIZE], type = 0;
        size_t hgot = 0;
        uint32_t left = 0;              /* payload bytes of the current frame */
        char result_json[4096];
        size_t rlen = 0;
        bool in_payload = false, done = false;
        while (!done) {
                ssize_t n = read(fd, buf, READ_BUF);
                if (n <= 0) {
                        bench_fail(b, "bare reader: %s before the result", n < 0 ? strerror(errno) : "EOF");
                        goto out;
                }
                for (size_t off = 0; off < (size_t) n && !done;) {
                        if (!in_payload) {
                                size_t k = MIN_SZ(sizeof h - hgot, (size_t) n - off);
                                memcpy(h + hgot, buf + off, k);
                                hgot += k;
                                off += k;
                                if (hgot < sizeof h)
                                        break;
                                hgot = 0;
                                (void) vsock_frame_header_parse(h, UINT32_MAX, &type, &left);
                                in_payload = true;
                                rlen = 0;
                        }
                        size_t k = MIN_SZ((size_t) left, (size_t) n - off);
                        if (type == VSOCK_MSG_STDOUT)
                                out += k;
                        else if (type == VSOCK_MSG_EXEC_RESULT && rlen + k < sizeof result_json) {
                                memcpy(result_json + rlen, buf + off, k);
                                rlen += k;
                        }
                        off += k;
                        left -= (uint32_t) k;
                        if (left == 0) {
                                in_payload = false;
                                done = type == VSOCK_MSG_EXEC_RESULT;
                        }
                }
        }
        int64_t dt = mono_ns() - t0;
        struct vsock_exec_response resp = {};
        if (vsock_exec_response_decode(result_json, rlen, &resp, NULL) < 0 || resp.exit_code != 0 ||
            out != b->xfer_bytes)
                bench_fail(b, "bare reader: exit %lld, %llu bytes", (long long) resp.exit_code,
                           (unsigned long long) out);
        else
                result = mib_per_s(out, dt);
        vsock_exec_response_clear(&resp);
out:
        if (fd >= 0)
                close(fd);
        free(buf);
        free(payload);
        return result;
}

/* Read everything a local command writes to @fd (its stdout's other end). */
static double xfer_local(struct bench *b, const char *what, char *const argv[], int rd, int wr) {
        uint8_t *buf = malloc(READ_BUF);
        pid_t pid = -1;
        int64_t t0 = mono_ns();
        int r = buf ? spawn_start_out(argv, wr, &pid) : -ENOMEM;
        close(wr);
        if (r < 0) {
                bench_fail(b, "%s: %s", what, strerror(-r));
                close(rd);
                free(buf);
                return NAN;
        }
        uint64_t total = 0;
        ssize_t n;
        /* 64 KiB per read: what a reader of a default pipe gets at most. */
        while ((n = read(rd, buf, 64 * 1024)) > 0)
                total += (uint64_t) n;
        int st = wait_exit(pid);
        int64_t dt = mono_ns() - t0;
        close(rd);
        free(buf);
        if (st != 0 || total != b->xfer_bytes) {
                bench_fail(b, "%s: status %d, %llu bytes", what, st, (unsigned long long) total);
                return NAN;
        }
        return mib_per_s(total, dt);
}

static double xfer_unix_raw(struct bench *b) {
        char n[32];
        snprintf(n, sizeof n, "%llu", (unsigned long long) b->xfer_bytes);
        char *argv[] = { "head", "-c", n, "/dev/zero", NULL };
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
                bench_fail(b, "socketpair: %m");
                return NAN;
        }
        return xfer_local(b, "head > unix socket", argv, sv[0], sv[1]);
}

static double xfer_head_cat(struct bench *b) {
        char cmd[96];
        snprintf(cmd, sizeof cmd, "head -c %llu /dev/zero | cat", (unsigned long long) b->xfer_bytes);
        char *argv[] = { "/bin/sh", "-c", cmd, NULL };
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0) {
                bench_fail(b, "pipe: %m");
                return NAN;
        }
        return xfer_local(b, "head | cat", argv, p[0], p[1]);
}

static double xfer_pipe_lib(struct bench *b, const struct agent *a) {
        struct vsock_exec_request req = { .command = "cat" };
        struct xfer x = { .in_left = b->xfer_bytes };
        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        io.on_output = count_output;
        io.read_stdin = feed_stdin;
        io.userdata = &x;
        struct vsock_call call = call_with_timeout(10 * CALL_TIMEOUT_MS);
        struct vsock_exec_result res = {};
        int64_t t0 = mono_ns();
        int r = vsock_exec_pipe_at(a->exec_addr, &req, &io, &call, &res);
        int64_t dt = mono_ns() - t0;
        bool ok = r >= 0 && res.exit_code == 0 && x.out == b->xfer_bytes;
        if (!ok)
                bench_fail(b, "pipe exec through cat: %s, exit %lld, %llu bytes %s", r < 0 ? vsock_strerror(r) : "ok",
                           (long long) res.exit_code, (unsigned long long) x.out, call.remote_error);
        vsock_exec_result_clear(&res);
        return ok ? mib_per_s(x.out, dt) : NAN;
}

void fig_throughput(struct bench *b) {
        struct agent a;
        if (agent_start(b, &a, "agent") < 0)
                return;
        printf("  %llu MiB per transfer, best of %d\n", (unsigned long long) (b->xfer_bytes >> 20), b->xfer_reps);
        enum { X_UNIX, X_HEAD_CAT, X_LIB, X_BARE, X_PIPE, _X_MAX };
        double best[_X_MAX];
        for (int i = 0; i < _X_MAX; i++)
                best[i] = NAN;
        /* Interleaved repetitions; the best of each is the least disturbed. */
        for (int rep = 0; rep < b->xfer_reps && b->errors == 0; rep++) {
                keep_best(&best[X_UNIX], xfer_unix_raw(b));
                keep_best(&best[X_HEAD_CAT], xfer_head_cat(b));
                keep_best(&best[X_LIB], xfer_stream_lib(b, &a));
                keep_best(&best[X_BARE], xfer_stream_bare(b, &a));
                keep_best(&best[X_PIPE], xfer_pipe_lib(b, &a));
        }
        bench_row(b, "head > raw unix socket", best[X_UNIX], NAN, "MiB/s", T_NONE, 0, "floor");
        bench_row(b, "head | cat pipe", best[X_HEAD_CAT], NAN, "MiB/s", T_NONE, 0, "floor");
        bench_row(b, "stream head (library) vs head|cat", best[X_LIB], best[X_HEAD_CAT], "MiB/s", T_RATIO_MIN, 0.5,
                  NULL);
        bench_row(b, "stream head (library) vs unix copy", best[X_LIB], best[X_UNIX], "MiB/s", T_NONE, 0, NULL);
        bench_row(b, "stream head (bare reader) vs head|cat", best[X_BARE], best[X_HEAD_CAT], "MiB/s", T_NONE, 0,
                  NULL);
        bench_row(b, "stream: library vs bare reader", best[X_LIB], best[X_BARE], "MiB/s", T_RATIO_MIN, 0.9, NULL);
        bench_row(b, "pipe through cat vs head|cat", best[X_PIPE], best[X_HEAD_CAT], "MiB/s", T_RATIO_MIN, 0.4,
                  NULL);
        agent_stop(b, &a);
}

/* ---- 4: concurrent pipe sessions ----------------------------------------------- */

/* Read frames until @want arrives (for Stdout: until @want_bytes of it).
 * Returns 0, or a negative code; *ret_code gets an Exit frame's code. */
static int sess_wait(vsock_conn *c, uint8_t want, size_t want_bytes, int32_t *ret_code) {
        size_t got = 0;
        for (;;) {
                uint8_t type;
                uint8_t *data = NULL;
                uint32_t len;
                int r = vsock_read_message(c, &type, &data, &len);
                if (r < 0)
                        return r;
                if (type == VSOCK_MSG_STDOUT)
                        got += len;
                else if (type == VSOCK_MSG_EXIT && want == VSOCK_MSG_EXIT)
                        r = vsock_exit_decode(data, len, ret_code);
                else if (type != VSOCK_MSG_STDERR)
                        r = -EPROTO;
                free(data);
                if (r < 0)
                        return r;
                if (type == want && (want != VSOCK_MSG_STDOUT || got >= want_bytes))
                        return 0;
        }
}

/* Batch `true` latency on @loaded and on @idle, interleaved, so both
 * medians see the same machine noise. */
static void loaded_vs_idle(struct bench *b, const struct agent *loaded, const struct agent *idle, int n,
                           double *ret_loaded, double *ret_idle) {
        double *l = calloc((size_t) n, sizeof *l), *i = calloc((size_t) n, sizeof *i);
        size_t got = 0;
        for (int k = 0; l && i && k < n; k++) {
                int64_t ti = exec_true_batch(b, idle);
                int64_t tl = exec_true_batch(b, loaded);
                if (ti < 0 || tl < 0)
                        break;
                i[got] = (double) ti / 1e6;
                l[got++] = (double) tl / 1e6;
        }
        *ret_loaded = stat_median(l, got);
        *ret_idle = stat_median(i, got);
        free(l);
        free(i);
}

void fig_sessions(struct bench *b) {
        struct agent a, idle_agent = { .pid = -1 };
        if (agent_start(b, &a, "agent") < 0)
                return;
        int n = b->sessions;
        vsock_conn **c = calloc((size_t) n, sizeof *c);
        bool *ok = calloc((size_t) n, sizeof *ok);
        struct vsock_exec_request req = { .command = "cat" };
        uint8_t *payload = NULL;
        size_t plen;
        if (!c || !ok || vsock_exec_request_encode(&req, &payload, &plen) < 0) {
                bench_fail(b, "sessions: out of memory");
                goto out;
        }
        /* The floor: the same binary, idle, measured at the same time. */
        if (agent_start(b, &idle_agent, "idle") < 0)
                goto out;
        for (int i = 0; i < 10; i++) {
                (void) exec_true_batch(b, &a);
                (void) exec_true_batch(b, &idle_agent);
        }

        /* All requests first, then all echoes: the agent starts the
         * commands while we are still connecting. */
        int64_t t0 = mono_ns();
        int64_t deadline = vsock_deadline_in(CALL_TIMEOUT_MS);
        int opened = 0;
        for (int i = 0; i < n; i++) {
                int r = vsock_dial_str(a.exec_addr, 0, CALL_TIMEOUT_MS, -1, &c[i]);
                if (r >= 0)
                        r = vsock_write_message(c[i], VSOCK_MSG_EXEC_PIPE, payload, plen);
                if (r >= 0)
                        r = vsock_write_message(c[i], VSOCK_MSG_STDIN, "ping\n", 5);
                if (r < 0) {
                        bench_fail(b, "session %d: open: %s", i, vsock_strerror(r));
                        break;
                }
                opened++;
        }
        for (int i = 0; i < opened; i++) {
                vsock_conn_set_deadline(c[i], deadline);
                int r = sess_wait(c[i], VSOCK_MSG_STDOUT, 5, NULL);
                if (r < 0) {
                        bench_fail(b, "session %d: echo: %s", i, vsock_strerror(r));
                        continue;
                }
                ok[i] = true;
        }
        double setup_ms = (double) (mono_ns() - t0) / 1e6;
        long rss = agent_status_kib(&a, "VmRSS");
        double loaded, idle;
        loaded_vs_idle(b, &a, &idle_agent, b->loaded_iters, &loaded, &idle);
        long rss2 = agent_status_kib(&a, "VmRSS");
        if (rss2 > rss)
                rss = rss2;

        /* EOF to every cat: each must exit 0. */
        int succeeded = 0;
        for (int i = 0; i < opened; i++)
                if (ok[i] && vsock_write_message(c[i], VSOCK_MSG_STDIN, NULL, 0) < 0)
                        ok[i] = false;
        deadline = vsock_deadline_in(CALL_TIMEOUT_MS);
        for (int i = 0; i < opened; i++) {
                if (!ok[i])
                        continue;
                vsock_conn_set_deadline(c[i], deadline);
                int32_t code = -1;
                int r = sess_wait(c[i], VSOCK_MSG_EXIT, 0, &code);
                if (r < 0 || code != 0)
                        bench_fail(b, "session %d: exit: %s, code %d", i, r < 0 ? vsock_strerror(r) : "ok", code);
                else
                        succeeded++;
        }
        char name[48];
        snprintf(name, sizeof name, "%d pipe sessions: succeeded", n);
        bench_row(b, name, succeeded, n, "", T_RATIO_MIN, 1.0, NULL);
        snprintf(name, sizeof name, "%d pipe sessions: open+echo", n);
        bench_row(b, name, setup_ms, NAN, "ms", T_NONE, 0, NULL);
        snprintf(name, sizeof name, "%d pipe sessions: agent RSS", n);
        bench_row(b, name, rss / KIB, NAN, "MiB", T_ABS_MAX, 32, NULL);
        snprintf(name, sizeof name, "batch true with %d sessions", n);
        bench_row(b, name, loaded, idle, "ms", T_RATIO_MAX, 2.0, "floor: idle agent, interleaved");
out:
        for (int i = 0; c && i < n; i++)
                vsock_conn_close(c[i]);
        free(c);
        free(ok);
        free(payload);
        agent_stop(b, &idle_agent);
        agent_stop(b, &a);
}
