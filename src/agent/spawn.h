/* Starting a command: fork with every signal blocked, async-signal-safe
 * set-up in the child, and exec failures reported through a close-on-exec
 * pipe (EOF means the exec succeeded). */
#pragma once

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
};

/* Start the child. On success *ret_pid and *ret_pidfd (CLOEXEC) are set and
 * the child is the leader of a new process group (and session, for tty).
 * On failure returns a negative errno, *ret_error gets a malloc'd message
 * and *ret_exit_code the exit code to report (127 not found, 126 not
 * executable, 1 for set-up failures); the child, if any, is reaped. */
int spawn_start(const struct spawn_params *p, pid_t *ret_pid, int *ret_pidfd, char **ret_error,
                int *ret_exit_code);
