/* The records of detached processes (PROTOCOL.md 2.7): identity (id, tag),
 * state, result, output ring, retention after exit, the limits on count
 * and ring memory, and who follows each one. What runs the process
 * (procrun.h) and what serves the requests (procop.c) sit on top of this.
 *
 * Followers are watches embedded in their owners: a change to a record
 * (output, exit, removal) queues each watch's deferred call, so nothing
 * runs inside the call that made the change and a burst of output costs
 * one wake-up per pass.
 *
 * Loop thread only; pure memory and timers (no fds, no file system). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/serve/ext.h"
#include "agent/serve/loop.h"
#include "agent/exec/outring.h"

struct ext_proc_info;
struct proc_run;

/* A limit of PROTOCOL.md 2.9 was reached: reported to the host as ELIMIT
 * (no errno of its own). */
#define PROCS_ELIMIT EDQUOT

struct procs_limits {
        int procs_max;           /* records, running and kept */
        uint32_t ring_default;   /* bytes per ring when the host names none */
        uint32_t ring_max;
        uint64_t ring_total_max; /* sum of outring_footprint() of all records */
        uint32_t keep_s;         /* retention after exit: default and maximum */
};

/* What HelloReply announces (ext.h). */
#define PROCS_LIMITS_DEFAULT                                                                               \
        ((struct procs_limits) { .procs_max = EXT_LIMIT_PROCS_MAX,                                         \
                                 .ring_default = EXT_LIMIT_RING_DEFAULT,                                   \
                                 .ring_max = EXT_LIMIT_RING_MAX,                                           \
                                 .ring_total_max = EXT_LIMIT_RING_TOTAL_MAX,                               \
                                 .keep_s = EXT_LIMIT_PROC_KEEP_S })

enum proc_state {
        PROC_STARTING, /* its launch job runs */
        PROC_RUNNING,
        PROC_EXITED,   /* reaped and its output complete */
};

/* ProcInfo's command and args together, bytes at most (procs_add cuts). */
#define PROCS_COMMAND_MAX 4096

struct procs;
struct proc;

/* A follower. Embed it, bind it with proc_watch_add(); after any change
 * of the record, @defer's callback runs after the pass. When the record is
 * removed, proc is NULL by then (the watch is unlinked already). */
struct proc_watch {
        struct defer defer;
        struct proc *proc;
        bool counted; /* counts as "attached" in ProcInfo */
        struct proc_watch *prev, *next;
};

/* What a new record describes (strings copied). */
struct proc_spec {
        const char *tag;       /* NULL: none */
        const char *command;
        char *const *args;
        size_t n_args;
        bool tty;
        uint32_t ring;         /* 0: limits.ring_default */
        int64_t keep_ms;       /* <= 0: limits.keep_s */
};

int procs_new(struct loop *l, const struct procs_limits *limits, struct procs **ret);
/* Free every record (and its runner, procrun_free()) and @m. NULL is fine. */
void procs_free(struct procs *m);
const struct procs_limits *procs_get_limits(const struct procs *m);

/* Whether @tag is a valid tag: 1-64 of [0-9A-Za-z._-]. */
bool procs_tag_valid(const char *tag);

/* A new record in state STARTING, with an id never used before. Makes
 * room first by removing exited records, oldest first, when procs_max or
 * ring_total_max would be exceeded. Errors: -EINVAL (bad tag, ring above
 * ring_max; *ret_why says which), -EEXIST (tag in use), -PROCS_ELIMIT
 * (no room; *ret_why says which limit), -ENOMEM. *ret_why is static. */
int procs_add(struct procs *m, const struct proc_spec *spec, struct proc **ret, const char **ret_why);

/* By id (non-zero) or else by tag; NULL when there is none. */
struct proc *procs_find(struct procs *m, uint64_t id, const char *tag);

/* Oldest first. */
struct proc *procs_first(struct procs *m);
struct proc *proc_next(struct proc *p);
size_t procs_count(const struct procs *m);
uint64_t procs_ring_reserved(const struct procs *m);

uint64_t proc_id(const struct proc *p);
enum proc_state proc_state(const struct proc *p);
bool proc_tty(const struct proc *p);
const struct outring *proc_ring(const struct proc *p);

/* Fill @ret from @p. The strings and arrays are borrowed from the record:
 * encode it, do not clear it. */
void proc_info(const struct proc *p, struct ext_proc_info *ret);

/* The runner's calls. */
void proc_set_run(struct proc *p, struct proc_run *run);
struct proc_run *proc_get_run(struct proc *p);
void proc_set_running(struct proc *p, pid_t pid);
/* Append output; followers are told. -EINVAL, -ENOMEM (nothing kept). */
int proc_output(struct proc *p, uint8_t stream, const void *data, size_t n);
/* The process exited and its output is complete: @exit_code (128+N when
 * killed by signal N), @signo (0: none), @oom (-1: cannot tell, 0, 1).
 * Arms the retention timer. */
void proc_exited(struct proc *p, int exit_code, int signo, int oom);
/* Whether the stdin of the process is open (from the runner). */
void proc_set_stdin_open(struct proc *p, bool open);

/* The exit status as ProcEnd carries it; valid in state EXITED. */
void proc_result(const struct proc *p, int *ret_exit_code, int *ret_signo, int *ret_oom, int64_t *ret_ended_ns);

/* Forget an exited record now: -EBUSY while it runs. Followers are told
 * (their watch's proc becomes NULL). */
int proc_remove(struct proc *p);

void proc_watch_init(struct proc_watch *w, struct loop *l, defer_fn cb);
void proc_watch_add(struct proc *p, struct proc_watch *w, bool counted);
/* Unlink and unqueue; idempotent. */
void proc_watch_remove(struct proc_watch *w);
/* Queue every follower's call (the runner: stdin drained, and the like). */
void proc_notify(struct proc *p);
