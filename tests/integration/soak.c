/* vsock-soak: the agent under many concurrent clients doing random host
 * operations through the library, with random disconnects (a cancel fd
 * that fires at a random moment). At the end the agent must be back where
 * it started: same fd count, no children, RSS grown by less than 1 MiB.
 *
 *   vsock-soak --agent PATH [--seconds 60] [--threads 50] [--seed N]
 *              [--agent-arg OPTION]...   (e.g. --agent-arg=--pid-ns)
 *
 * Prints operations and errors per kind, RSS and fd figures; exits 1 on
 * any unexpected error or leftover. Run by `make soak` (scripts/soak.sh). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <vsock/vsock.h>

#include "agent-harness.h"

#define OP_BOUND_MS 30000       /* hang catcher for one operation */
#define RSS_GROWTH_MAX_KB 1024L

enum op_kind { OP_EXEC, OP_STREAM, OP_PIPE, OP_WRITE, OP_READ, OP_LIST, OP_FORWARD, OP_KINDS };
static const char *const op_names[OP_KINDS] = { "exec", "exec-stream", "exec-pipe", "write-file",
                                                "read-file", "list-files", "port-forward" };

struct counters {
        atomic_ulong ok, cancelled, timeout, failed;
};

static struct counters counts[OP_KINDS];
static atomic_ulong bytes_moved;
static atomic_bool stop;
static atomic_int errors_printed;

static struct agent *agent;
static struct tcp_server *echo;
static double cancel_share = 0.2;

/* ---- per-thread state ----------------------------------------------------- */

struct worker {
        int id;
        pthread_t th;
        uint64_t rng;
        int timer;              /* timerfd used as the cancel fd */
        uint8_t *buf, *buf2;    /* scratch, BUF_MAX each */
        char path[192];
        unsigned gen;           /* file generation, see op_write_read() */
};

#define BUF_MAX (256u * 1024)

static uint64_t rng_next(struct worker *w) {
        uint64_t x = w->rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        w->rng = x;
        return x * 2685821657736338717ull;
}

static size_t rng_below(struct worker *w, size_t n) { return n ? (size_t) (rng_next(w) % n) : 0; }

static void fill_random(struct worker *w, uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t) (rng_next(w) >> 56);
}

static void report(enum op_kind k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(enum op_kind k, const char *fmt, ...) {
        atomic_fetch_add(&counts[k].failed, 1);
        if (atomic_fetch_add(&errors_printed, 1) >= 20)
                return;
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "soak: %s: ", op_names[k]);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
}

/* A call with the hang-catching deadline and, for a share of the calls, a
 * cancel fd that fires after a random 0-50 ms. Returns whether it may be
 * cancelled. */
static bool call_init(struct worker *w, struct vsock_call *call) {
        *call = (struct vsock_call) VSOCK_CALL_INIT;
        call->deadline_ns = vsock_deadline_in(OP_BOUND_MS);
        struct itimerspec its = { 0 };
        (void) timerfd_settime(w->timer, 0, &its, NULL); /* disarm, clear */
        uint64_t junk;
        (void) !read(w->timer, &junk, sizeof junk);
        if ((double) rng_below(w, 1000) >= cancel_share * 1000)
                return false;
        long ns = (long) rng_below(w, 50000000) + 1;
        its.it_value.tv_sec = 0;
        its.it_value.tv_nsec = ns;
        if (timerfd_settime(w->timer, 0, &its, NULL) < 0)
                return false;
        call->cancel_fd = w->timer;
        return true;
}

/* Count the outcome of one call; true when it succeeded (result checks
 * follow). */
static bool outcome(enum op_kind k, int r, bool cancellable, const struct vsock_call *call) {
        if (r >= 0)
                return true;
        if (cancellable && vsock_err_kind(r) == VSOCK_E_CANCELLED) {
                atomic_fetch_add(&counts[k].cancelled, 1);
                return false;
        }
        if (vsock_err_kind(r) == VSOCK_E_TIMEOUT) {
                atomic_fetch_add(&counts[k].timeout, 1);
                report(k, "timed out after %d ms", OP_BOUND_MS);
                return false;
        }
        report(k, "%s%s%s", vsock_strerror(r), call->remote_error[0] ? ": " : "", call->remote_error);
        return false;
}

/* ---- operations --------------------------------------------------------- */

static void op_exec(struct worker *w) {
        struct vsock_call call;
        bool cz = call_init(w, &call);
        struct vsock_exec_request req = { 0 };
        char cmd[64];
        size_t n = 0;
        int kind = (int) rng_below(w, 4);
        switch (kind) {
        case 0:
                snprintf(cmd, sizeof cmd, "echo hello-%d", w->id);
                break;
        case 1:
                snprintf(cmd, sizeof cmd, "exit %d", (int) rng_below(w, 100));
                break;
        case 2:
                n = rng_below(w, 64 * 1024) + 1;
                fill_random(w, w->buf, n);
                req.stdin_data = (struct vsock_bytes) { w->buf, n, true };
                snprintf(cmd, sizeof cmd, "cat");
                break;
        default:
                n = rng_below(w, BUF_MAX);
                snprintf(cmd, sizeof cmd, "head -c %zu /dev/zero; echo e >&2", n);
                break;
        }
        req.command = cmd;
        struct vsock_exec_result res = { 0 };
        int r = vsock_exec_at(agent->exec_addr, &req, &call, &res);
        if (!outcome(OP_EXEC, r, cz, &call))
                return;
        bool good;
        switch (kind) {
        case 0: {
                char want[32];
                int wl = snprintf(want, sizeof want, "hello-%d\n", w->id);
                good = res.exit_code == 0 && res.stdout_len == (size_t) wl && memcmp(res.stdout_data, want, wl) == 0;
                break;
        }
        case 1:
                good = res.exit_code == atoi(cmd + 5);
                break;
        case 2:
                good = res.exit_code == 0 && res.stdout_len == n && memcmp(res.stdout_data, w->buf, n) == 0;
                break;
        default:
                good = res.exit_code == 0 && res.stdout_len == n && res.stderr_len == 2;
                break;
        }
        if (good) {
                atomic_fetch_add(&counts[OP_EXEC].ok, 1);
                atomic_fetch_add(&bytes_moved, res.stdout_len + n);
        } else
                report(OP_EXEC, "'%s': wrong result (exit %" PRId64 ", %zu bytes out)", cmd, res.exit_code,
                       res.stdout_len);
        vsock_exec_result_clear(&res);
}

struct sink {
        struct worker *w;
        size_t out, err;
        size_t match;           /* output bytes equal to what was sent so far */
        const uint8_t *expect;
        size_t expect_len;
        bool mismatch;
        /* stdin source */
        const uint8_t *in;
        size_t in_len, in_off;
};

static int sink_output(void *userdata, enum vsock_stream_id stream, const uint8_t *data, size_t len) {
        struct sink *s = userdata;
        if (stream == VSOCK_STREAM_STDERR) {
                s->err += len;
                return 0;
        }
        if (s->expect) {
                if (s->out + len > s->expect_len || memcmp(s->expect + s->out, data, len) != 0)
                        s->mismatch = true;
        } else {
                for (size_t i = 0; i < len; i++)
                        if (data[i] != 0)
                                s->mismatch = true;
        }
        s->out += len;
        return 0;
}

static ssize_t sink_stdin(void *userdata, void *buf, size_t n) {
        struct sink *s = userdata;
        size_t k = s->in_len - s->in_off;
        if (k > n)
                k = n;
        /* Hand it over in uneven pieces. */
        size_t piece = rng_below(s->w, 16384) + 1;
        if (k > piece)
                k = piece;
        memcpy(buf, s->in + s->in_off, k);
        s->in_off += k;
        return (ssize_t) k;
}

static void op_stream(struct worker *w) {
        struct vsock_call call;
        bool cz = call_init(w, &call);
        size_t n = rng_below(w, 2 * BUF_MAX);
        char cmd[96];
        snprintf(cmd, sizeof cmd, "head -c %zu /dev/zero; echo done >&2; exit 3", n);
        struct vsock_exec_request req = { .command = cmd };
        struct sink s = { .w = w };
        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        io.on_output = sink_output;
        io.userdata = &s;
        struct vsock_exec_result res = { 0 };
        int r = vsock_exec_stream_at(agent->exec_addr, &req, &io, &call, &res);
        if (outcome(OP_STREAM, r, cz, &call)) {
                if (res.exit_code == 3 && s.out == n && s.err == 5 && !s.mismatch) {
                        atomic_fetch_add(&counts[OP_STREAM].ok, 1);
                        atomic_fetch_add(&bytes_moved, n);
                } else
                        report(OP_STREAM, "exit %" PRId64 ", %zu/%zu bytes out, %zu err", res.exit_code, s.out, n,
                               s.err);
        }
        vsock_exec_result_clear(&res);
}

static void op_pipe(struct worker *w) {
        struct vsock_call call;
        bool cz = call_init(w, &call);
        size_t n = rng_below(w, BUF_MAX);
        fill_random(w, w->buf, n);
        struct vsock_exec_request req = { .command = rng_below(w, 2) ? "cat" : "cat; echo end >&2" };
        struct sink s = { .w = w, .expect = w->buf, .expect_len = n, .in = w->buf, .in_len = n };
        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        io.on_output = sink_output;
        io.read_stdin = sink_stdin;
        io.userdata = &s;
        struct vsock_exec_result res = { 0 };
        int r = vsock_exec_pipe_at(agent->exec_addr, &req, &io, &call, &res);
        if (outcome(OP_PIPE, r, cz, &call)) {
                if (res.exit_code == 0 && s.out == n && !s.mismatch) {
                        atomic_fetch_add(&counts[OP_PIPE].ok, 1);
                        atomic_fetch_add(&bytes_moved, 2 * n);
                } else
                        report(OP_PIPE, "exit %" PRId64 ", %zu/%zu bytes back%s", res.exit_code, s.out, n,
                               s.mismatch ? ", corrupted" : "");
        }
        vsock_exec_result_clear(&res);
}

static void next_path(struct worker *w) {
        snprintf(w->path, sizeof w->path, "%s/soak-%d-%u", agent->dir, w->id, ++w->gen);
}

static void op_write_read(struct worker *w) {
        struct vsock_call call;
        bool cz = call_init(w, &call);
        size_t n = rng_below(w, BUF_MAX);
        fill_random(w, w->buf, n);
        int r = vsock_write_file_at(agent->exec_addr, w->path, w->buf, n, 0600, &call);
        if (!outcome(OP_WRITE, r, cz, &call)) {
                /* A cancelled write may still be carried out, and later
                 * than the next one (the agent serves a request already
                 * sent even when the host has gone, and connections in no
                 * fixed order): the next write goes to a new file. */
                next_path(w);
                return;
        }
        atomic_fetch_add(&counts[OP_WRITE].ok, 1);
        atomic_fetch_add(&bytes_moved, n);
        cz = call_init(w, &call);
        uint8_t *got = NULL;
        size_t got_len = 0;
        r = vsock_read_file_at(agent->exec_addr, w->path, &call, &got, &got_len);
        if (outcome(OP_READ, r, cz, &call)) {
                if (got_len == n && (n == 0 || memcmp(got, w->buf, n) == 0)) {
                        atomic_fetch_add(&counts[OP_READ].ok, 1);
                        atomic_fetch_add(&bytes_moved, n);
                } else
                        report(OP_READ, "%zu bytes back, %zu written", got_len, n);
        }
        free(got);
}

static void op_list(struct worker *w) {
        struct vsock_call call;
        bool cz = call_init(w, &call);
        struct vsock_file_entry *e = NULL;
        size_t n = 0;
        int r = vsock_list_files_at(agent->exec_addr, agent->dir, &call, &e, &n);
        if (outcome(OP_LIST, r, cz, &call)) {
                /* At least the sockets are there. */
                if (n >= 2)
                        atomic_fetch_add(&counts[OP_LIST].ok, 1);
                else
                        report(OP_LIST, "%zu entries", n);
        }
        vsock_file_entries_free(e, n);
}

static void op_forward(struct worker *w) {
        struct vsock_call call;
        bool cz = call_init(w, &call);
        vsock_conn *c = NULL;
        int r = vsock_open_port_forward_at(agent->exec_addr, "127.0.0.1", tcp_server_port(echo), &call, &c);
        if (!outcome(OP_FORWARD, r, cz, &call))
                return;
        /* The raw stream obeys the same deadline and cancel fd. */
        vsock_conn_set_deadline(c, call.deadline_ns);
        vsock_conn_set_cancel_fd(c, call.cancel_fd);
        size_t n = rng_below(w, 64 * 1024) + 1;
        fill_random(w, w->buf, n);
        r = vsock_conn_write(c, w->buf, n);
        if (r >= 0)
                r = vsock_conn_shutdown_write(c);
        size_t got = 0;
        while (r >= 0) {
                ssize_t k = vsock_conn_read(c, w->buf2 + got, BUF_MAX - got);
                if (k < 0)
                        r = (int) k;
                else if (k == 0)
                        break;
                else
                        got += (size_t) k;
                if (got == BUF_MAX)
                        break;
        }
        vsock_conn_close(c);
        if (!outcome(OP_FORWARD, r, cz, &call))
                return;
        if (got == n && memcmp(w->buf, w->buf2, n) == 0) {
                atomic_fetch_add(&counts[OP_FORWARD].ok, 1);
                atomic_fetch_add(&bytes_moved, 2 * n);
        } else
                report(OP_FORWARD, "%zu bytes echoed, %zu sent", got, n);
}

static void *worker_main(void *p) {
        struct worker *w = p;
        while (!atomic_load(&stop)) {
                switch (rng_below(w, 6)) {
                case 0:
                        op_exec(w);
                        break;
                case 1:
                        op_stream(w);
                        break;
                case 2:
                        op_pipe(w);
                        break;
                case 3:
                        op_write_read(w);
                        break;
                case 4:
                        op_list(w);
                        break;
                default:
                        op_forward(w);
                        break;
                }
        }
        return NULL;
}

/* Run @n workers for @ms milliseconds. */
static int run_phase(struct worker *ws, int n, int64_t ms) {
        atomic_store(&stop, false);
        for (int i = 0; i < n; i++)
                if (pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) != 0) {
                        fprintf(stderr, "soak: cannot start thread %d\n", i);
                        atomic_store(&stop, true);
                        for (int j = 0; j < i; j++)
                                pthread_join(ws[j].th, NULL);
                        return -1;
                }
        int64_t end = mono_ms() + ms;
        while (mono_ms() < end)
                pause_ms(100);
        atomic_store(&stop, true);
        for (int i = 0; i < n; i++)
                pthread_join(ws[i].th, NULL);
        return 0;
}

static void counters_reset(void) {
        for (int k = 0; k < OP_KINDS; k++) {
                atomic_store(&counts[k].ok, 0);
                atomic_store(&counts[k].cancelled, 0);
                atomic_store(&counts[k].timeout, 0);
                atomic_store(&counts[k].failed, 0);
        }
        atomic_store(&bytes_moved, 0);
}

static void usage(FILE *f) {
        fprintf(f, "Usage: vsock-soak --agent PATH [--seconds N] [--threads N] [--seed N] [--cancel-share F]\n"
                   "                  [--agent-arg OPTION]...\n");
}

int main(int argc, char **argv) {
        static const struct option longopts[] = {
                { "agent", required_argument, NULL, 'a' },   { "seconds", required_argument, NULL, 's' },
                { "threads", required_argument, NULL, 't' }, { "seed", required_argument, NULL, 'r' },
                { "cancel-share", required_argument, NULL, 'c' }, { "help", no_argument, NULL, 'h' },
                { "agent-arg", required_argument, NULL, 'o' },
                {},
        };
        const char *agent_path = getenv("AGENT");
        int seconds = 60, threads = 50;
        const char *agent_args[16] = { NULL };
        size_t n_agent_args = 0;
        uint64_t seed = (uint64_t) vsock_now_ns() ^ (uint64_t) getpid();
        int c;
        while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
                switch (c) {
                case 'a':
                        agent_path = optarg;
                        break;
                case 's':
                        seconds = atoi(optarg);
                        break;
                case 't':
                        threads = atoi(optarg);
                        break;
                case 'r':
                        seed = strtoull(optarg, NULL, 0);
                        break;
                case 'c':
                        cancel_share = atof(optarg);
                        break;
                case 'o':
                        if (n_agent_args + 1 >= sizeof agent_args / sizeof agent_args[0]) {
                                fprintf(stderr, "soak: too many --agent-arg\n");
                                return 2;
                        }
                        agent_args[n_agent_args++] = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (!agent_path || seconds <= 0 || threads <= 0 || threads > 1000) {
                usage(stderr);
                return 2;
        }
        setenv("AGENT", agent_path, 1);
        signal(SIGPIPE, SIG_IGN);
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 8192) {
                rl.rlim_cur = rl.rlim_max < 8192 ? rl.rlim_max : 8192;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }

        agent = agent_start(agent_args, 0);
        if (!agent)
                return 1;
        int rc = 1;
        struct worker *ws = calloc((size_t) threads, sizeof *ws);
        if (!ws || agent_warm_up(agent) < 0 || tcp_server_start(TCP_ECHO, &echo) < 0) {
                fprintf(stderr, "soak: setup failed\n");
                goto out;
        }
        for (int i = 0; i < threads; i++) {
                ws[i].id = i;
                ws[i].rng = seed + 0x9E3779B97F4A7C15ull * (uint64_t) (i + 1);
                ws[i].timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
                ws[i].buf = malloc(BUF_MAX);
                ws[i].buf2 = malloc(BUF_MAX);
                next_path(&ws[i]);
                if (ws[i].timer < 0 || !ws[i].buf || !ws[i].buf2) {
                        fprintf(stderr, "soak: out of resources\n");
                        goto out;
                }
        }
        long rss_start = proc_rss_kb(agent->pid);
        printf("soak: agent %d, %d threads, %d s, seed %" PRIu64 ", %.0f%% of calls cancelled at a random moment\n",
               (int) agent->pid, threads, seconds, seed, cancel_share * 100);

        /* A short warm-up under the same load: the allocator's first-use
         * growth (arenas, per-size free lists) is not a leak. */
        int warm_ms = seconds * 1000 / 10;
        if (warm_ms < 2000)
                warm_ms = 2000;
        if (run_phase(ws, threads, warm_ms) < 0)
                goto out;
        int fds, kids;
        bool clean = agent_wait_clean(agent, 20000, &fds, &kids);
        long rss_before = proc_rss_kb(agent->pid);
        unsigned long warm_failed = 0;
        for (int k = 0; k < OP_KINDS; k++)
                warm_failed += atomic_load(&counts[k].failed);
        printf("soak: warm-up %d ms: %s (%d fds, baseline %d; %d children), %lu errors; agent RSS %ld kB at start, "
               "%ld kB after the warm-up\n",
               warm_ms, clean ? "clean" : "NOT CLEAN", fds, agent->baseline_fds, kids, warm_failed, rss_start,
               rss_before);
        counters_reset();

        int64_t t0 = mono_ms();
        if (run_phase(ws, threads, (int64_t) seconds * 1000) < 0)
                goto out;
        int64_t ms = mono_ms() - t0;
        clean = agent_wait_clean(agent, 20000, &fds, &kids);
        long rss_after = proc_rss_kb(agent->pid);
        long hwm = proc_hwm_kb(agent->pid);
        int serve = agent_exec_true(agent, OP_BOUND_MS);

        unsigned long total = 0, failed = warm_failed;
        printf("soak: %-13s %10s %10s %8s %8s\n", "operation", "ok", "cancelled", "timeout", "failed");
        for (int k = 0; k < OP_KINDS; k++) {
                unsigned long ok = atomic_load(&counts[k].ok), ca = atomic_load(&counts[k].cancelled),
                              to = atomic_load(&counts[k].timeout), fa = atomic_load(&counts[k].failed);
                total += ok + ca + fa;
                failed += fa;
                printf("soak: %-13s %10lu %10lu %8lu %8lu\n", op_names[k], ok, ca, to, fa);
        }
        printf("soak: %lu operations in %.1f s (%.0f/s), %.1f MiB moved\n", total, (double) ms / 1000,
               (double) total * 1000 / (double) (ms ? ms : 1), (double) atomic_load(&bytes_moved) / (1 << 20));
        printf("soak: agent fds %d (baseline %d), children %d, RSS %ld kB -> %ld kB (%+ld kB; limit +%ld kB), "
               "peak %ld kB; serves afterwards: %s\n",
               fds, agent->baseline_fds, kids, rss_before, rss_after, rss_after - rss_before, RSS_GROWTH_MAX_KB, hwm,
               serve == 0 ? "yes" : vsock_strerror(serve));
        bool ok = clean && failed == 0 && rss_after - rss_before < RSS_GROWTH_MAX_KB && serve == 0;
        printf("soak: %s\n", ok ? "PASS" : "FAIL");
        rc = ok ? 0 : 1;
out:
        for (int i = 0; ws && i < threads; i++) {
                if (ws[i].timer > 0)
                        close(ws[i].timer);
                free(ws[i].buf);
                free(ws[i].buf2);
                for (unsigned g = 1; agent && g <= ws[i].gen; g++) {
                        char p[192];
                        snprintf(p, sizeof p, "%s/soak-%d-%u", agent->dir, i, g);
                        unlink(p);
                }
        }
        free(ws);
        tcp_server_stop(echo);
        if (agent_stop(agent, 20000, NULL) < 0) {
                fprintf(stderr, "soak: the agent did not exit cleanly on SIGTERM\n");
                rc = 1;
        }
        return rc;
}
