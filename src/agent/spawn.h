/* Starting a command: clone(CLONE_VM | CLONE_VFORK | CLONE_FILES) with
 * every signal blocked, async-signal-safe set-up in the child, which runs
 * on its own stack and reports a failure before or at exec through memory
 * it shares with the agent (the agent is suspended until the child has
 * exec'd or exited, so nothing races).
 *
 * Why not fork: fork copies the page tables and the whole fd table (an
 * agent with 1000 sessions holds ~5000 fds, each copied and then closed
 * again at exec). The child here shares both; its first act is
 * close_range(LO, ~0U, CLOSE_RANGE_UNSHARE), which gives it a table of
 * only the fds below LO. For that, the three fds that become its stdin,
 * stdout and stderr are first duplicated into three slots the module keeps
 * reserved at low numbers (taken at the first spawn, see spawn_reserve()).
 *
 * With pid_ns, the child is instead an init in new PID and mount
 * namespaces (pidns.h): a clone without CLONE_VM (a copy-on-write fork,
 * since it lives as long as the command), which starts the command as
 * above and reports a failure through a pipe the agent reads, bounded.
 *
 * Not thread-safe in the sense of parallel spawns: calls are serialized by
 * a lock. */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

struct user_spec;
struct sandbox;

struct spawn_params {
        const char *file;               /* program; searched in envp's PATH if search_path */
        char *const *argv;              /* argv[0] is also used for ENOEXEC fallbacks */
        char *const *envp;
        bool search_path;               /* file has no '/': PATH lookup */
        const char *cwd;                /* NULL: inherit */
        const struct user_spec *user;   /* NULL: no switch */
        const struct sandbox *sandbox;  /* NULL: unconfined */
        int fd_in, fd_out, fd_err;      /* become 0, 1, 2 (not consumed) */
        bool tty;                       /* new session, fd_in becomes the controlling tty */
        /* A new PID and mount namespace with its own /proc, under a small
         * init (pidns.h). The pid returned is the init's. */
        bool pid_ns;
        /* Signals whose disposition the caller changed from SIG_DFL: the
         * child resets exactly these (every other one must be SIG_DFL in
         * the caller: a handler must never run in the child, which shares
         * the caller's memory). NULL: reset every signal (~64 syscalls). */
        const sigset_t *reset_signals;
};

/* Record the signals ignored at start-up (inherited SIG_IGN survives
 * exec): every child resets them too, whatever reset_signals says. Call
 * once, first thing, before the process ignores anything itself. */
void spawn_init(void);

/* Reserve the three low fd slots now (otherwise the first spawn_start()
 * does it). Call early, while low fd numbers are still free. Idempotent.
 * Returns 0 or -errno. */
int spawn_reserve(void);

/* Whether this process can give commands a PID namespace (--pid-ns):
 * creates one with a throw-away child that sets up the mounts as every
 * init will. Returns 0, or -errno with *ret_what naming the step that
 * failed. */
int spawn_check_pid_ns(const char **ret_what);

/* Start the child. On success *ret_pid and *ret_pidfd (CLOEXEC) are set and
 * the child is the leader of a new process group (and session, for tty).
 * On failure returns a negative errno, *ret_error gets a malloc'd message
 * and *ret_exit_code the exit code to report (127 not found, 126 not
 * executable, 1 for set-up failures); the child, if any, is reaped. */
int spawn_start(const struct spawn_params *p, pid_t *ret_pid, int *ret_pidfd, char **ret_error,
                int *ret_exit_code);
