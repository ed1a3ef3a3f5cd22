/* A bounded pool of threads for blocking work (file operations, name
 * lookups, starting commands), so that neither a slow disk nor a file
 * system that never answers stalls the event loop, and independent jobs
 * never wait for each other.
 *
 * Each running job has a thread of its own: up to limits.max_running at
 * once (threads start on demand and end after a while idle); beyond that,
 * jobs wait in submission order. Jobs that share a lane run one at a time,
 * in the order submitted (the steps of one streamed write).
 *
 * With limits.timeout_ms, a job that has not finished by then (waiting
 * included) is given up: its owner hears at once (timeout()), so it can
 * answer its host, and a job still waiting never runs. A thread still
 * running a job that timed out is stuck in the kernel: it stops counting
 * against max_running, so a fresh thread takes the next job, and it
 * finishes the job whenever the kernel lets it (then done() comes as
 * usual). At most limits.max_threads threads exist, stuck ones included.
 *
 * Completions come back to the loop thread through an eventfd; every
 * callback but run() runs there. */
#pragma once

#include <stdbool.h>

#include "agent/serve/loop.h"

struct worker;
struct worker_job;

/* What to tell a host when worker_submit() says -EBUSY. */
#define WORKER_BUSY_TEXT "agent busy: its worker threads are stuck in a file system that does not answer"

struct worker_limits {
        unsigned max_running;   /* jobs running at once, stuck ones not counted */
        unsigned max_threads;   /* threads at most, stuck ones included */
        int timeout_ms;         /* 0: none */
};

/* Jobs of one lane run one at a time, in order. Embed it in the owner,
 * zeroed; it must outlive the done() of every job submitted on it. */
struct worker_lane {
        struct worker_job *head, **tail;        /* waiting for the lane */
        bool busy;                              /* one of its jobs is queued or running */
};

struct worker_job {
        void (*run)(struct worker_job *j);      /* pool thread: blocking work only */
        /* Loop thread, exactly once per submitted job (unless
         * worker_cancel() took it back): the owner has @j again. */
        void (*done)(struct worker_job *j);
        /* Loop thread, optional: the timeout passed. done() follows, at
         * once if the job never ran (then cancelled is set), else when
         * run() returns. */
        void (*timeout)(struct worker_job *j);
        struct worker_lane *lane;               /* NULL: none */
        bool cancelled;                         /* done() without run() */
        bool timed_out;                         /* timeout() was called */
        /* The pool's. */
        struct worker *pool;
        struct timer timer;
        int state;
        bool stuck;
        struct worker_job *next;
};

int worker_new(struct loop *l, const struct worker_limits *limits, struct worker **ret);
/* Stops the threads and hands every job back through done() (waiting ones
 * with cancelled set). Threads still stuck after a second are abandoned,
 * with @w and their jobs (exit only). Returns how many were; the caller
 * should then _exit() rather than run exit handlers beside them. Accepts
 * NULL. */
unsigned worker_free(struct worker *w);

/* Queue @j (not copied; it must stay valid until done()). Sets the
 * callbacks' expectations: cancelled and timed_out are reset. Returns 0,
 * -EBUSY when every thread the pool may have is stuck in the kernel, or
 * another -errno when no thread could be started for it (nothing was
 * queued in either case). */
int worker_submit(struct worker *w, struct worker_job *j);

/* Take back a job that has not started: returns true, and done() will not
 * be called. False once it runs or ran (done() is still to come). */
bool worker_cancel(struct worker_job *j);

/* Figures for tests and logs. */
struct worker_stats {
        unsigned threads, idle, stuck, queued;
};
void worker_stats(struct worker *w, struct worker_stats *ret);
