/* The first process of a command's own PID namespace (--pid-ns).
 *
 * A process that is PID 1 of a namespace has duties the command does not
 * know about: every orphan in the namespace is re-parented to it and must
 * be reaped, the kernel drops signals sent to it for which it has no
 * handler (so a shell as PID 1 would shrug off SIGTERM), and when it exits
 * the kernel SIGKILLs everything else in the namespace. So the command is
 * never PID 1: spawn.c starts a small init (a copy of the agent, no exec)
 * as PID 1, which mounts the namespace's own /proc, starts the command as
 * PID 2 in its own process group and session, reaps whatever ends, and
 * exits with the command's status as soon as the command ends (which ends
 * every process the command left behind, as a container does).
 *
 * Signals need no forwarding: the init and the command share a process
 * group (and, for a TTY, a session), and the agent signals the group. The
 * init itself keeps every signal blocked: only SIGKILL from the agent
 * (forced across the namespace boundary) ends it early, which ends the
 * whole namespace. Everything here is async-signal-safe, raw system calls
 * only: the init is a fork of a multi-threaded process. */
#pragma once

#include <sys/types.h>

/* Make every mount of this (new) mount namespace a slave of the agent's,
 * so that nothing mounted here propagates back. Returns 0 or -errno. */
int pidns_private_mounts(void);

/* Mount a fresh proc on /proc (after pidns_private_mounts()). Returns 0 or
 * -errno. */
int pidns_mount_proc(void);

/* Reap every child until @cmd ends, then exit with its status (128+signal
 * when it was killed). Never returns. */
_Noreturn void pidns_reap(pid_t cmd);
