/* One background thread for blocking work (file operations, name
 * resolution), so a slow disk or DNS server never stalls the loop. Jobs run
 * in submission order; completions come back to the loop through an
 * eventfd and run there. */
#pragma once

#include <stdbool.h>

#include "agent/loop.h"

struct worker;
struct worker_job;

struct worker_job {
        void (*run)(struct worker_job *j);      /* worker thread: blocking work only */
        void (*done)(struct worker_job *j);     /* loop thread: owns @j again */
        bool cancelled;                         /* done() without run() (exit) */
        struct worker_job *next;
};

int worker_new(struct loop *l, struct worker **ret);
/* Stops the thread after its current job and hands every job back through
 * done() (pending ones with cancelled set). If the current job is still
 * blocked after a second, the thread and @w are abandoned (exit only).
 * Accepts NULL. */
void worker_free(struct worker *w);

/* Queue @j (not copied; it must stay valid until done() runs). The thread
 * starts on first use, so an idle agent has none. */
int worker_submit(struct worker *w, struct worker_job *j);
