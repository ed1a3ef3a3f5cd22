/* vsock-bench: starts the agent on a unix socket and measures each figure
 * beside its floor; prints a table and optionally writes it as JSON.
 *
 *   vsock-bench --agent PATH [--quick] [--json FILE] [--only GROUPS] [--keep]
 *
 * Exit status: 0 when every figure meets its target (--quick: whenever the
 * harness itself worked), 1 when a target is missed or an operation
 * failed, 2 for usage errors. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

extern char **environ;

struct row {
        char figure[48];
        double value;
        double floor;
        double ratio;
        char unit[12];
        enum target_kind tk;
        double target;
        bool pass;
        char note[96];
};

static struct row *rows;
static size_t n_rows;

/* ---- helpers ---------------------------------------------------------------- */

int64_t mono_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void sleep_ms(int ms) {
        struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000 };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return (x > y) - (x < y);
}

double stat_median(double *v, size_t n) {
        if (n == 0)
                return NAN;
        qsort(v, n, sizeof *v, cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double stat_p99(double *v, size_t n) {
        if (n == 0)
                return NAN;
        qsort(v, n, sizeof *v, cmp_double);
        size_t k = (size_t) ceil(0.99 * (double) n);
        return v[k > 0 ? k - 1 : 0];
}

void keep_best(double *best, double v) {
        if (!isnan(v) && (isnan(*best) || v > *best))
                *best = v;
}

int spawn_start_out(char *const argv[], int out_fd, pid_t *ret_pid) {
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        if (out_fd >= 0)
                posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
        else
                posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        pid_t pid;
        int r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (r != 0)
                return -r;
        *ret_pid = pid;
        return 0;
}

int wait_exit(pid_t pid) {
        int st;
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int64_t spawn_wait(char *const argv[], int out_fd) {
        int64_t t0 = mono_ns();
        pid_t pid = -1;
        int r = spawn_start_out(argv, out_fd, &pid);
        if (r < 0)
                return r;
        r = wait_exit(pid);
        if (r != 0)
                return r < 0 ? r : -ECHILD;
        return mono_ns() - t0;
}

/* ---- the table ---------------------------------------------------------------- */

void bench_row(struct bench *b, const char *figure, double value, double floor, const char *unit,
               enum target_kind tk, double target, const char *note) {
        struct row *nr = realloc(rows, (n_rows + 1) * sizeof *rows);
        if (!nr) {
                bench_fail(b, "out of memory");
                return;
        }
        rows = nr;
        struct row *r = &rows[n_rows++];
        *r = (struct row) { .value = value, .floor = floor > 0 ? floor : NAN, .tk = tk, .target = target };
        snprintf(r->figure, sizeof r->figure, "%s", figure);
        snprintf(r->unit, sizeof r->unit, "%s", unit);
        snprintf(r->note, sizeof r->note, "%s", note ? note : "");
        r->ratio = isnan(r->floor) ? NAN : value / r->floor;
        switch (tk) {
        case T_NONE:
                r->pass = true;
                break;
        case T_RATIO_MAX:
                r->pass = !isnan(r->ratio) && r->ratio <= target;
                break;
        case T_RATIO_MIN:
                r->pass = !isnan(r->ratio) && r->ratio >= target;
                break;
        case T_ABS_MAX:
                r->pass = !isnan(value) && value <= target;
                break;
        case T_ABS_MIN:
                r->pass = !isnan(value) && value >= target;
                break;
        }
        printf("  %-36s %12.3f %-6s", r->figure, value, r->unit);
        if (!isnan(r->floor))
                printf("  floor %10.3f  ratio %6.3f", r->floor, r->ratio);
        putchar('\n');
        fflush(stdout);
}

void bench_fail(struct bench *b, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "vsock-bench: FAILED: ");
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        b->errors++;
}

bool bench_wants(const struct bench *b, const char *group) {
        if (!b->only)
                return true;
        size_t n = strlen(group);
        for (const char *p = b->only; *p;) {
                const char *e = strchrnul(p, ',');
                if ((size_t) (e - p) == n && strncmp(p, group, n) == 0)
                        return true;
                p = *e ? e + 1 : e;
        }
        return false;
}

static void target_text(const struct row *r, char *buf, size_t size) {
        switch (r->tk) {
        case T_NONE:
                snprintf(buf, size, "-");
                break;
        case T_RATIO_MAX:
                snprintf(buf, size, "<= %gx", r->target);
                break;
        case T_RATIO_MIN:
                snprintf(buf, size, ">= %gx", r->target);
                break;
        case T_ABS_MAX:
                snprintf(buf, size, "<= %g %s", r->target, r->unit);
                break;
        case T_ABS_MIN:
                snprintf(buf, size, ">= %g %s", r->target, r->unit);
                break;
        }
}

static void print_table(const struct bench *b) {
        printf("\n%-36s %12s %-6s %12s %8s %-12s %s\n", "figure", "value", "unit", "floor", "ratio", "target",
               "result");
        for (size_t i = 0; i < n_rows; i++) {
                const struct row *r = &rows[i];
                char t[32], fl[24] = "-", ra[16] = "-";
                target_text(r, t, sizeof t);
                if (!isnan(r->floor)) {
                        snprintf(fl, sizeof fl, "%.3f", r->floor);
                        snprintf(ra, sizeof ra, "%.3f", r->ratio);
                }
                printf("%-36s %12.3f %-6s %12s %8s %-12s %s%s%s\n", r->figure, r->value, r->unit, fl, ra, t,
                       r->tk == T_NONE ? "" : r->pass ? "pass" : "FAIL", r->note[0] ? "  " : "", r->note);
        }
        if (b->errors)
                printf("%d operation(s) failed (see above)\n", b->errors);
}

static void json_str(FILE *f, const char *s) {
        fputc('"', f);
        for (; *s; s++) {
                if (*s == '"' || *s == '\\')
                        fprintf(f, "\\%c", *s);
                else if ((unsigned char) *s < 0x20)
                        fprintf(f, "\\u%04x", (unsigned char) *s);
                else
                        fputc(*s, f);
        }
        fputc('"', f);
}

static void json_num(FILE *f, double v) {
        if (isnan(v) || isinf(v))
                fputs("null", f);
        else
                fprintf(f, "%.6g", v);
}

static int write_json(const struct bench *b, const char *path) {
        FILE *f = fopen(path, "we");
        if (!f)
                return -errno;
        fprintf(f, "{\n  \"quick\": %s,\n  \"agent\": ", b->quick ? "true" : "false");
        json_str(f, b->agent_path);
        fprintf(f, ",\n  \"errors\": %d,\n  \"figures\": [\n", b->errors);
        for (size_t i = 0; i < n_rows; i++) {
                const struct row *r = &rows[i];
                char t[32];
                target_text(r, t, sizeof t);
                fprintf(f, "    {\"figure\": ");
                json_str(f, r->figure);
                fprintf(f, ", \"value\": ");
                json_num(f, r->value);
                fprintf(f, ", \"unit\": ");
                json_str(f, r->unit);
                fprintf(f, ", \"floor\": ");
                json_num(f, r->floor);
                fprintf(f, ", \"ratio\": ");
                json_num(f, r->ratio);
                fprintf(f, ", \"target\": ");
                if (r->tk == T_NONE)
                        fputs("null", f);
                else
                        json_str(f, t);
                fprintf(f, ", \"pass\": %s", r->tk == T_NONE ? "null" : r->pass ? "true" : "false");
                if (r->note[0]) {
                        fprintf(f, ", \"note\": ");
                        json_str(f, r->note);
                }
                fprintf(f, "}%s\n", i + 1 < n_rows ? "," : "");
        }
        fprintf(f, "  ]\n}\n");
        int r = ferror(f) ? -EIO : 0;
        if (fclose(f) != 0 && r == 0)
                r = -errno;
        return r;
}

/* ---- the agent ------------------------------------------------------------------ */

long agent_status_kib(const struct agent *a, const char *field) {
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%d/status", (int) a->pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return -1;
        long v = -1;
        size_t n = strlen(field);
        while (fgets(line, sizeof line, f))
                if (strncmp(line, field, n) == 0 && line[n] == ':') {
                        v = strtol(line + n + 1, NULL, 10);
                        break;
                }
        fclose(f);
        return v;
}

/* Ready when a connect to the ready socket succeeds: polled in a tight
 * loop (50 us), so the figure is not rounded up to a retry interval. */
int agent_start(struct bench *b, struct agent *a, const char *tag) { return agent_start_opts(b, a, tag, NULL); }

int agent_start_opts(struct bench *b, struct agent *a, const char *tag, const char *extra) {
        *a = (struct agent) { .pid = -1 };
        snprintf(a->exec_addr, sizeof a->exec_addr, "unix:%s/%s-exec.sock", b->dir, tag);
        snprintf(a->ready_path, sizeof a->ready_path, "%s/%s-ready.sock", b->dir, tag);
        char ready_addr[160], log_path[128];
        snprintf(ready_addr, sizeof ready_addr, "unix:%s", a->ready_path);
        snprintf(log_path, sizeof log_path, "%s/agent.log", b->dir);
        (void) unlink(a->ready_path);

        char *argv[] = { (char *) b->agent_path, "--listen", a->exec_addr, "--ready", ready_addr,
                         "--log-level", "warn", (char *) extra, NULL };
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 2, log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", a->ready_path);

        int64_t t0 = mono_ns();
        int r = posix_spawn(&a->pid, b->agent_path, &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (r != 0) {
                a->pid = -1;
                bench_fail(b, "cannot start %s: %s", b->agent_path, strerror(r));
                return -r;
        }
        int64_t end = t0 + 10 * 1000000000LL;
        for (;;) {
                int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        return -errno;
                int c = connect(fd, (struct sockaddr *) &sa, sizeof sa);
                close(fd);
                if (c == 0)
                        break;
                int st;
                if (waitpid(a->pid, &st, WNOHANG) == a->pid) {
                        a->pid = -1;
                        bench_fail(b, "the agent exited before it was ready (see %s)", log_path);
                        return -ECHILD;
                }
                if (mono_ns() > end) {
                        bench_fail(b, "the agent was not ready within 10 s");
                        agent_stop(b, a);
                        return -ETIMEDOUT;
                }
                struct timespec ts = { 0, 50000 };
                nanosleep(&ts, NULL);
        }
        a->ready_ms = (double) (mono_ns() - t0) / 1e6;
        return 0;
}

void agent_stop(struct bench *b, struct agent *a) {
        if (a->pid <= 0)
                return;
        (void) kill(a->pid, SIGTERM);
        int64_t end = mono_ns() + 10 * 1000000000LL;
        int st;
        pid_t r;
        while ((r = waitpid(a->pid, &st, WNOHANG)) == 0 && mono_ns() < end)
                sleep_ms(2);
        if (r == 0) {
                bench_fail(b, "the agent did not exit within 10 s of SIGTERM");
                (void) kill(a->pid, SIGKILL);
                (void) waitpid(a->pid, &st, 0);
        } else if (r == a->pid && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
                bench_fail(b, "the agent exited with status 0x%x", st);
        a->pid = -1;
}

/* ---- main ---------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path) < 0 ? -1 : 0;
}

static void usage(FILE *f) {
        fprintf(f, "Usage: vsock-bench --agent PATH [--quick] [--json FILE] [--only GROUPS] [--keep]\n"
                   "\n"
                   "Measures the agent against same-machine floors and prints a table.\n"
                   "  --quick        reduced sizes and counts; exit 0 whatever the figures\n"
                   "  --json FILE    also write the table as JSON\n"
                   "  --only GROUPS  comma-separated: exec,throughput,files,sessions,portfwd,agent,hash,\n"
                   "                 attack,xfer,ext\n"
                   "  --keep         keep the temporary directory\n");
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "agent", required_argument, NULL, 'a' }, { "quick", no_argument, NULL, 'q' },
                { "json", required_argument, NULL, 'j' },  { "only", required_argument, NULL, 'o' },
                { "keep", no_argument, NULL, 'k' },        { "help", no_argument, NULL, 'h' },
                {},
        };
        struct bench b = { 0 };
        const char *json = NULL;
        bool keep = false;
        int c;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (c) {
                case 'a':
                        b.agent_path = optarg;
                        break;
                case 'q':
                        b.quick = true;
                        break;
                case 'j':
                        json = optarg;
                        break;
                case 'o':
                        b.only = optarg;
                        break;
                case 'k':
                        keep = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (!b.agent_path || optind < argc) {
                usage(stderr);
                return 2;
        }
        if (b.quick) {
                b.exec_iters = 30;
                b.xfer_bytes = 64ull << 20;
                b.xfer_reps = 1;
                b.file_reps = 2;
                b.sessions = 100;
                b.attack_probes = 5;
                b.list_entries = 20000;
                b.escape_bytes = 8u << 20;
                b.loaded_iters = 20;
                b.ready_starts = 3;
                b.big_reads = 20;
        } else {
                b.exec_iters = 500;
                b.xfer_bytes = 1ull << 30;
                b.xfer_reps = 5;
                b.file_reps = 10;
                b.sessions = 1000;
                b.attack_probes = 20;
                b.list_entries = 200000;
                b.escape_bytes = 64u << 20;
                b.loaded_iters = 200;
                b.ready_starts = 20;
                b.big_reads = 20;
        }

        /* 1000 sessions hold about five fds each in the agent (which
         * inherits this limit) and one each here. */
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }
        /* A closed connection must show up as EPIPE, not kill the bench. */
        signal(SIGPIPE, SIG_IGN);
        setvbuf(stdout, NULL, _IOLBF, 0);

        snprintf(b.dir, sizeof b.dir, "/tmp/vsock-bench-XXXXXX");
        if (!mkdtemp(b.dir)) {
                fprintf(stderr, "vsock-bench: mkdtemp: %m\n");
                return 1;
        }
        printf("vsock-bench%s: agent %s, scratch %s, RLIMIT_NOFILE %llu\n", b.quick ? " --quick" : "",
               b.agent_path, b.dir, (unsigned long long) rl.rlim_cur);

        static const struct {
                const char *name;
                void (*fn)(struct bench *b);
        } groups[] = {
                { "exec", fig_exec_latency },     { "throughput", fig_throughput }, { "files", fig_files },
                { "sessions", fig_sessions },     { "portfwd", fig_port_forward },  { "agent", fig_agent },
                { "hash", fig_hash },             { "attack", fig_attacks },
                { "xfer", fig_xfer },             { "ext", fig_ext },
        };
        for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
                if (!bench_wants(&b, groups[i].name))
                        continue;
                printf("[%s]\n", groups[i].name);
                int64_t t0 = mono_ns();
                groups[i].fn(&b);
                printf("  (%.1f s)\n", (double) (mono_ns() - t0) / 1e9);
        }

        print_table(&b);
        if (json) {
                int r = write_json(&b, json);
                if (r < 0) {
                        fprintf(stderr, "vsock-bench: %s: %s\n", json, strerror(-r));
                        b.errors++;
                }
        }
        if (keep)
                printf("kept %s\n", b.dir);
        else
                (void) nftw(b.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);

        bool missed = false;
        for (size_t i = 0; i < n_rows; i++)
                missed |= !rows[i].pass;
        free(rows);
        if (b.errors)
                return 1;
        return b.quick || !missed ? 0 : 1;
}
