/* The first process of a command's own PID namespace (--pid-ns).
 *
 * A process that is PID 1 of a namespace has duties the command does not
 * know about: every orphan in the namespace is re-parented to it and must
 * be reaped, the kernel drops signals sent to it for which it has no
 * handler (so a shell as PID 1 would shrug off SIGTERM), and when it exits
 * the kernel SIGKILLs everything else in the namespace. So the command is
 * never PID 1: spawn.c starts a small init as PID 1, which mounts the
 * namespace's own /proc, starts the command as PID 2 in its process group
 * and session, and then replaces itself with a fresh copy of the agent's
 * binary run in init mode (pidns_init_main()), so that nothing of the
 * agent's memory (other sessions' requests, their environments) stays
 * readable through /proc/1/mem. The init releases the command, reaps
 * whatever ends, and exits with the command's status as soon as the
 * command ends (which ends every process the command left behind, as a
 * container does), or when the agent is gone.
 *
 * Signals need no forwarding: the init and the command share a process
 * group (and, for a TTY, a session), and the agent signals the group. The
 * init keeps every signal blocked: only SIGKILL from the agent (forced
 * across the namespace boundary) ends it early, which ends the whole
 * namespace. */
#pragma once

#include <sys/types.h>

/* argv[1] of the agent's binary started as a namespace's init. */
#define PIDNS_INIT_ARG "--pid-ns-init"

/* Make every mount of this (new) mount namespace a slave of the agent's,
 * so that nothing mounted here propagates back. Returns 0 or -errno.
 * Async-signal-safe. */
int pidns_private_mounts(void);

/* Mount a fresh proc on /proc (after pidns_private_mounts()). Returns 0 or
 * -errno. Async-signal-safe. */
int pidns_mount_proc(void);

/* The init's main, in the re-executed binary: argv is
 * { "vsock-init", PIDNS_INIT_ARG, GO_FD, ALIVE_FD, CMD_PID }. Releases the
 * command parked on GO_FD (-1: none), then reaps every child until CMD_PID
 * ends and exits with its status (128+signal when it was killed), or at
 * once when ALIVE_FD hangs up (the agent is gone), or with 0 when CMD_PID
 * is 0 (spawn_check_pid_ns()'s probe). Returns -1 at once, doing nothing,
 * when argv is not that (the caller goes on as usual); never returns
 * otherwise. Call first thing in main(). */
int pidns_init_main(int argc, char **argv);
