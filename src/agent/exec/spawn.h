/* Starting a command: clone(CLONE_VM | CLONE_VFORK | CLONE_FILES) with
 * every signal blocked, async-signal-safe set-up in the child, which runs
 * on a stack of its own and reports a failure before or at exec through
 * memory it shares with the agent (the calling thread is suspended until
 * the child has exec'd or exited, so nothing races).
 *
 * Only the calling thread is suspended, and for as long as the child's
 * chdir() and execve() take: on a file system that never answers, that
 * is forever. So the agent calls spawn_start() from a worker thread, never
 * from its loop; calls from several threads run in parallel, each with a
 * context of its own (child stack, fd slots). spawn_cancel() lets another
 * thread kill a child that hangs before its exec.
 *
 * Why not fork: fork copies the page tables and the whole fd table (an
 * agent with 1000 sessions holds ~5000 fds, each copied and then closed
 * again at exec). The child here shares both; its first act is
 * close_range(LO, ~0U, CLOSE_RANGE_UNSHARE), which gives it a table of
 * only the fds below LO. For that, the three fds that become its stdin,
 * stdout and stderr are first duplicated into three slots its context
 * keeps at low numbers (two contexts are reserved early, see
 * spawn_reserve(); more, made on demand, live only for their spawn).
 *
 * Every command gets a session of its own (setsid): it never shares the
 * agent's session or controlling terminal, and cannot signal (SIGCONT)
 * another command's processes unless it runs as the same user.
 *
 * With pid_ns, the child is first the init of new PID and mount namespaces
 * (pidns.h): it mounts the namespace's /proc, starts the command (parked
 * until the init is ready), and then replaces itself with a fresh copy of
 * the agent's binary in init mode, so the init holds none of the agent's
 * memory. The pid returned is the init's, which exits with the command's
 * status. */
#pragma once

#include <pthread.h>
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
        bool tty;                       /* fd_in becomes the controlling tty */
        /* A new PID and mount namespace with its own /proc, under a small
         * init (pidns.h). The pid returned is the init's. Needs
         * spawn_check_pid_ns() first. */
        bool pid_ns;
        /* Signals whose disposition the caller changed from SIG_DFL: the
         * child resets exactly these (every other one must be SIG_DFL in
         * the caller: a handler must never run in the child, which shares
         * the caller's memory). NULL: reset every signal (~64 syscalls). */
        const sigset_t *reset_signals;
};

/* A spawn another thread may stop. Initialize with spawn_cancel_init(),
 * pass it to spawn_start(), release with spawn_cancel_destroy(). */
struct spawn_cancel {
        pthread_mutex_t lock;
        int pidfd;              /* the child's while it sets up (written by clone) */
        bool active;            /* a clone is under way */
        bool cancelled;
};

void spawn_cancel_init(struct spawn_cancel *c);
void spawn_cancel_destroy(struct spawn_cancel *c);
/* From any thread: the spawn is not wanted any more. A child still setting
 * up is SIGKILLed (it dies unless the kernel holds it in an uninterruptible
 * wait, then as soon as that ends), one not yet started is never started,
 * and spawn_start() returns -ECANCELED. Idempotent. */
void spawn_cancel(struct spawn_cancel *c);

/* Record the signals ignored at start-up (inherited SIG_IGN survives
 * exec): every child resets them too, whatever reset_signals says. Call
 * once, first thing, before the process ignores anything itself. */
void spawn_init(void);

/* Reserve the early contexts' fd slots now (otherwise the first
 * spawn_start() does it). Call early, while low fd numbers are still free.
 * Idempotent. Returns 0 or -errno. */
int spawn_reserve(void);

/* Prepare PID namespaces (--pid-ns): open the process's own binary (to
 * start each namespace's init from) and check that this process can create
 * a namespace, mount its /proc and start the init there. Call once, at
 * start-up, single-threaded. Returns 0, or -errno with *ret_what naming the
 * step that failed. */
int spawn_check_pid_ns(const char **ret_what);

/* The exit code for a command that could not start because of @err
 * (positive errno): 127 when something was not found (ENOENT, ENOTDIR),
 * 126 otherwise, as shells do. */
int spawn_failure_code(int err);

/* Start the child; may block (see above), never on the caller's loop. On
 * success *ret_pid and *ret_pidfd (CLOEXEC) are set and the child leads a
 * new session. On failure returns a negative errno, *ret_error gets a
 * malloc'd reason ("chdir /x: no such file or directory") and
 * *ret_exit_code the code to report (spawn_failure_code()); the child, if
 * any, is reaped. @cancel may be NULL. */
int spawn_start(const struct spawn_params *p, struct spawn_cancel *cancel, pid_t *ret_pid, int *ret_pidfd,
                char **ret_error, int *ret_exit_code);
