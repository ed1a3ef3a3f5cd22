/* A started child process: its pidfd is watched in the loop and reaped with
 * waitid(P_PIDFD), so the agent never waits for "any child". Signals go to
 * the child's process group only while the leader is unreaped (so the group
 * id cannot have been reused), and to the leader only through its pidfd. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "agent/serve/loop.h"

struct agent;
struct child;

/* Called once, from the loop, after the child was reaped. @exit_code is the
 * exit status or 128+signal. */
typedef void (*child_exit_fn)(struct child *c, int exit_code, void *userdata);

/* Take ownership of @pidfd (also on failure) and watch it in @a's loop;
 * the child is on @a's list until reaped. @pid is the
 * leader of its own process group; @tty_session: it also leads a session
 * with a controlling terminal, which gets SIGHUP on termination. */
int child_new(struct agent *a, pid_t pid, int pidfd, bool tty_session, int grace_ms, child_exit_fn cb,
              void *userdata, struct child **ret);

pid_t child_pid(const struct child *c);
bool child_reaped(const struct child *c);
/* Once reaped: the signal that killed it, 0 when it exited (an exit code
 * of 128+N alone cannot tell `exit 137` from SIGKILL). */
int child_exit_signal(const struct child *c);

/* Deliver @signo to the child's process group (no-op once reaped). */
int child_signal_group(struct child *c, int signo);
/* Deliver @signo to process group @pgrp, which must belong to the child's
 * session (a TTY's foreground group); no-op once the leader is reaped. */
int child_signal_pgrp(struct child *c, pid_t pgrp, int signo);

/* Ask the child to end: SIGHUP (TTY session) and SIGTERM to the group now,
 * SIGKILL to the group and the leader after the grace period. Idempotent. */
void child_terminate(struct child *c);

/* A started process nobody wants (its owner went away while it started):
 * terminate it and reap it once it ends. Takes @pidfd. */
void child_abandon(struct agent *a, pid_t pid, int pidfd, int grace_ms);

/* Drop the owner's reference. An unreaped child is terminated and frees
 * itself once reaped; the callback is not called any more. Accepts NULL. */
void child_release(struct child *c);

/* Terminate every child of @a (agent shutdown) and count the unreaped ones. */
void child_terminate_all(struct agent *a);
size_t child_count(const struct agent *a);
