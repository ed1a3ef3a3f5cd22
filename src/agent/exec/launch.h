/* From an exec request to a running command: decode the request, look up
 * the user, build the environment and argv, make the command's stdio
 * (pipes or a pseudo-terminal) and spawn it. Everything here may block on
 * a file system (passwd and group files, /dev, the command's working
 * directory and program), so the agent runs it on a worker thread, never
 * on its loop; it keeps no state and is safe to run in parallel.
 *
 * A command that cannot start gets an exit code and one reason, the same
 * in every exec mode: 127 when something was not found (the user, the
 * working directory, the program), 126 for anything else (no permission,
 * not executable, a bad or too large request, no resources). */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sandbox;
struct spawn_cancel;

/* The agent's side of every launch; read-only while launches run. */
struct launch_config {
        const struct sandbox *sandbox;  /* NULL: unconfined (--privileged) */
        bool pid_ns;
        const sigset_t *reset_signals;  /* see spawn_params */
        char *const *base_env;          /* the agent's environment */
        const char *passwd, *group;     /* NULL: /etc/passwd, /etc/group */
};

/* How the command's stdio is wired, from the exec mode. */
struct launch_mode {
        bool tty;               /* a pseudo-terminal on 0, 1 and 2 */
        bool stdin_frames;      /* stdin comes later, in frames (a pipe, even if none come) */
};

struct launch_result {
        pid_t pid;
        int pidfd;
        int in_fd;              /* the write end of the command's stdin; -1: /dev/null */
        int out_fd, err_fd;     /* read ends; a TTY has one output: err_fd -1 */
        int master;             /* TTY: the terminal, for resizes and its foreground group */
        uint8_t *stdin_data;    /* the request's own stdin (batch, stream), to be written */
        size_t stdin_len;
        int exit_code;          /* failed: 127 or 126 */
        char *error;            /* failed: why, e.g. "unknown user \"bob\"" */
};

/* A result that holds nothing: what launch_result_clear() may be given
 * before launch_run() filled it. */
#define LAUNCH_RESULT_INIT \
        ((struct launch_result) { .pidfd = -1, .in_fd = -1, .out_fd = -1, .err_fd = -1, .master = -1 })

/* Decode @payload (@len bytes; consumed: wiped and freed, may be NULL) as
 * an exec request for @mode and start it. Returns 0 with the process and
 * its fds in *ret, or a negative errno with ret->exit_code and ret->error
 * set (error may be NULL when even that could not be allocated). In both
 * cases release *ret with launch_result_clear(). @cancel may be NULL. */
int launch_run(uint8_t *payload, size_t len, struct launch_mode mode, const struct launch_config *cfg,
               struct spawn_cancel *cancel, struct launch_result *ret);

/* A start job that failed (@rc < 0) or never ran (@cancelled: the agent
 * is shutting down): the exit code to report, and why in *ret_reason
 * (static, @r's own text, or written into @buf). */
int launch_failure(const struct launch_result *r, int rc, bool cancelled, char *buf, size_t size,
                   const char **ret_reason);
/* Why a start that outlived --io-timeout (@io_timeout_ms) failed. */
void launch_timeout_reason(int io_timeout_ms, char *buf, size_t size);

struct vsock_exec_request;
/* The same for a request already decoded (a ProcStart's command fields):
 * @q is not consumed, except that its stdin_data moves to *ret when it is
 * handed over (non-frame modes). */
int launch_request(struct vsock_exec_request *q, struct launch_mode mode, const struct launch_config *cfg,
                   struct spawn_cancel *cancel, struct launch_result *ret);

/* Close the fds, wipe and free the rest; the process is left alone.
 * Idempotent. */
void launch_result_clear(struct launch_result *r);
