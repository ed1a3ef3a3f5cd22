/* vsock-bench: shared state of the benchmark program.
 *
 * Every figure is measured next to its floor in the same run (interleaved
 * where the figure is a latency), so the ratio holds on a noisy machine.
 * vsock-bench.c owns the table, the agent processes and the statistics;
 * bench-exec.c the exec, throughput and concurrency figures; bench-io.c
 * the file, port-forward (base and FwdConnect) and agent-footprint figures;
 * bench-ext.c the other extensions beside the base operations they extend. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KIB 1024.0
#define MIB (1024.0 * 1024.0)

enum target_kind {
        T_NONE,         /* informational */
        T_RATIO_MAX,    /* ratio <= target */
        T_RATIO_MIN,    /* ratio >= target */
        T_ABS_MAX,      /* value <= target (in the row's unit) */
        T_ABS_MIN,      /* value >= target (in the row's unit) */
};

struct agent {
        pid_t pid;
        char exec_addr[160];
        char ready_path[100];    /* fits sun_path */
        double ready_ms;        /* spawn -> ready socket accepts */
};

struct bench {
        bool quick;
        const char *agent_path;
        const char *only;       /* comma-separated figure groups, NULL = all */
        char dir[64];           /* temporary directory: sockets, files, logs */
        int errors;             /* functional failures (not timing) */
        /* Sizes and counts, reduced by --quick. */
        int exec_iters;
        uint64_t xfer_bytes;
        int xfer_reps;
        int file_reps;
        int sessions;
        int loaded_iters;
        int ready_starts;
        int big_reads;
        int attack_probes;      /* `true` runs per attack */
        int list_entries;       /* the big directory's */
        size_t escape_bytes;    /* the escape-heavy request's size */
};

/* ---- vsock-bench.c ------------------------------------------------------ */

/* Add one row to the table. @floor <= 0 (or NaN) means "no floor"; the
 * ratio is value / floor. For T_ABS_MAX, @target is in @unit. */
void bench_row(struct bench *b, const char *figure, double value, double floor, const char *unit,
               enum target_kind tk, double target, const char *note);
/* A functional failure: counted, printed, and the run exits non-zero. */
void bench_fail(struct bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool bench_wants(const struct bench *b, const char *group);

/* Start the agent on unix sockets named after @tag (several may run at
 * once); a->ready_ms is the spawn-to-ready time. */
int agent_start(struct bench *b, struct agent *a, const char *tag);
/* The same with one more agent option (NULL: none). */
int agent_start_opts(struct bench *b, struct agent *a, const char *tag, const char *extra);
void agent_stop(struct bench *b, struct agent *a);
/* VmRSS / VmHWM of the agent in KiB, or -1. */
long agent_status_kib(const struct agent *a, const char *field);

int64_t mono_ns(void);
void sleep_ms(int ms);
/* Median and p99 (nearest rank) of @n samples; sorts @v. */
double stat_median(double *v, size_t n);
double stat_p99(double *v, size_t n);
/* Keep the larger of *@best and @v (NaN: a failed sample, ignored). */
void keep_best(double *best, double v);
/* posix_spawn @argv (PATH searched) with stdout to @out_fd (-1: /dev/null)
 * and wait; returns the wall time in ns or a negative errno. */
int64_t spawn_wait(char *const argv[], int out_fd);
/* Start @argv with stdout to @out_fd; the caller waits. */
int spawn_start_out(char *const argv[], int out_fd, pid_t *ret_pid);
int wait_exit(pid_t pid);

/* ---- figure groups ---------------------------------------------------------- */
void fig_exec_latency(struct bench *b);        /* 1 */
void fig_throughput(struct bench *b);          /* 2 */
void fig_sessions(struct bench *b);            /* 4 */
void fig_files(struct bench *b);               /* 3 */
void fig_port_forward(struct bench *b);        /* 5 */
void fig_agent(struct bench *b);               /* 6 */
void fig_hash(struct bench *b);                /* bench-hash.c: SHA-256 */
void fig_attacks(struct bench *b);             /* 7, bench-attack.c: issue 12's attacks */
void fig_xfer(struct bench *b);                /* bench-xfer.c: FileGet/FilePut */
void fig_ext(struct bench *b);                 /* bench-ext.c: ProcStart+ProcWait, ListDir */

/* ---- bench-exec.c, shared with bench-io.c ---------------------------------- */
/* One batch `true` on @a, end to end (dial included): ns, or < 0. */
int64_t exec_true_batch(struct bench *b, const struct agent *a);

/* ---- bench-io.c, shared with bench-ext.c ----------------------------------- */
/* A TCP listener on 127.0.0.1, any free port (to *@ret_port): fd or < 0. */
int tcp_listen_loopback(uint16_t *ret_port);
