/* What runs a detached process (PROTOCOL.md 2.7): its start on the agent's
 * starter pool through the same launch path as exec (launch.h: 127/126
 * and one line of reason, the sandbox, its own session), its pidfd
 * (child.h), its output pipes or terminal read into the record's ring as
 * fast as it writes (a slow follower never blocks the process: the ring
 * drops the oldest bytes), its stdin, signals and resizes.
 *
 * The process is done (proc_exited) once it was reaped and its output
 * sources reached EOF, or after the agent's linger when a background
 * descendant keeps them open. Nothing here belongs to a connection. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct agent;
struct proc;
struct proc_run;
struct ext_proc_start;

/* Start @p (state STARTING) as @req describes (its command fields, tty,
 * rows/cols, stdin). Takes @req's contents (*req is left cleared). When
 * the start is over the record is RUNNING, or EXITED with 127/126 and the
 * reason on its stderr; its followers are told either way. Returns 0, or
 * -ENOMEM (then @p is EXITED already). */
int procrun_start(struct agent *a, struct proc *p, struct ext_proc_start *req);

/* Signal the process group (a terminal's: its foreground group). -ESRCH
 * when it does not run (any more), -EAGAIN while it is being started. */
int procrun_signal(struct proc_run *r, int signo);
/* -EINVAL without a terminal, -ESRCH once it ended, -EAGAIN while it is
 * being started. */
int procrun_resize(struct proc_run *r, uint16_t rows, uint16_t cols);

/* Queue @n bytes for its stdin. -EPIPE when stdin is closed (or never
 * was a pipe), -EAGAIN when the queue holds AGENT_QUEUE_HIGH bytes already
 * (the process does not read: retry later). A write from an attached
 * host (@whole) is queued whatever the fill: that host pauses while
 * procrun_stdin_full(). */
int procrun_stdin_write(struct proc_run *r, const void *data, size_t n, bool whole);
bool procrun_stdin_full(const struct proc_run *r);
/* Close stdin once what is queued was written. -EPIPE when closed
 * already, -EINVAL for a terminal (it has no EOF: send ^D). */
int procrun_stdin_close(struct proc_run *r);

/* With the record (procs.c): a process still running is terminated and
 * reaped without anyone told. NULL is fine. */
void procrun_free(struct proc_run *r);

/* The cgroup memory.events file read for OOM kills; NULL (the default):
 * the agent's own cgroup's. For tests. */
extern const char *procrun_memory_events;
