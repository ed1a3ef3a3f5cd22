#include "agent/exec/launch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vsock/msg.h>

#include "agent/exec/env.h"
#include "agent/exec/pty.h"
#include "agent/exec/spawn.h"
#include "agent/exec/user.h"
#include "common/io.h"
#include "common/macro.h"
#include "lib/msg-internal.h"
#include "lib/shquote.h"

/* execve() fails with E2BIG past ARG_MAX (a quarter of the stack limit,
 * 2 MiB by default): refuse earlier, with a clear reason, before building
 * anything that large. */
#define LAUNCH_ARGS_MAX (2u << 20)

static int fail(struct launch_result *r, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct launch_result *r, int err, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        free(r->error);
        if (vasprintf(&r->error, fmt, ap) < 0)
                r->error = NULL;
        va_end(ap);
        r->exit_code = spawn_failure_code(err);
        return -err;
}

static bool too_large(const struct vsock_exec_request *q) {
        size_t total = strlen(q->command ? q->command : "") + 64; /* and "/bin/sh", "-c" */
        for (size_t i = 0; i < q->n_args && total <= LAUNCH_ARGS_MAX; i++)
                total += strlen(q->args[i]) + 1 + sizeof(char *);
        for (size_t i = 0; i < q->n_env && total <= LAUNCH_ARGS_MAX; i++)
                total += strlen(q->env[i].key) + (q->env[i].value ? strlen(q->env[i].value) : 0) + 2 +
                         sizeof(char *);
        return total > LAUNCH_ARGS_MAX;
}

/* `sh -c COMMAND` without args, else COMMAND ARGS... (a PATH search), or
 * ARGS... alone when COMMAND is their shell quoting. */
static char **make_argv(const struct vsock_exec_request *q) {
        /* With args, command is either the program (args are its
         * arguments) or, from hosts that also serve agents ignoring args,
         * the shell quoting of args, which are then the whole vector. */
        bool whole = q->n_args > 0 && shquote_matches(q->command, q->args, q->n_args);
        size_t argc = whole ? q->n_args : q->n_args > 0 ? q->n_args + 1 : 3;
        char **argv = calloc(argc + 1, sizeof *argv);
        if (!argv)
                return NULL;
        if (whole) {
                memcpy(argv, q->args, q->n_args * sizeof *argv);
        } else if (q->n_args > 0) {
                argv[0] = (char *) (q->command ? q->command : "");
                for (size_t i = 0; i < q->n_args; i++)
                        argv[i + 1] = (char *) q->args[i];
        } else {
                argv[0] = "/bin/sh";
                argv[1] = "-c";
                argv[2] = (char *) (q->command ? q->command : "");
        }
        return argv;
}

static int make_pipe(bool child_reads, int *ret_parent, int *ret_child) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        int parent = child_reads ? p[1] : p[0];
        int r = fd_set_nonblock(parent, 1);
        if (r < 0) {
                safe_close(p[0]);
                safe_close(p[1]);
                return r;
        }
        *ret_parent = parent;
        *ret_child = child_reads ? p[0] : p[1];
        return 0;
}

/* The command's ends of its stdio in @child (the same fd three times for
 * a terminal), ours in @r. */
static int make_stdio(const struct vsock_exec_request *q, struct launch_mode mode, int child[3],
                      struct launch_result *r) {
        if (mode.tty) {
                int slave, rc = pty_open(q->rows ? q->rows : 24, q->cols ? q->cols : 80, &r->master, &slave);
                if (rc < 0)
                        return fail(r, -rc, "cannot allocate a pseudo-terminal: %s", strerror(-rc));
                child[0] = child[1] = child[2] = slave;
                r->in_fd = fcntl(r->master, F_DUPFD_CLOEXEC, 3);
                r->out_fd = fcntl(r->master, F_DUPFD_CLOEXEC, 3);
                if (r->in_fd < 0 || r->out_fd < 0)
                        return fail(r, errno, "cannot duplicate the terminal: %s", strerror(errno));
                return 0;
        }
        int rc;
        if (mode.stdin_frames || q->stdin_data.present)
                rc = make_pipe(true, &r->in_fd, &child[0]);
        else {
                child[0] = open("/dev/null", O_RDONLY | O_CLOEXEC | O_NOCTTY);
                rc = child[0] < 0 ? -errno : 0;
        }
        if (rc >= 0)
                rc = make_pipe(false, &r->out_fd, &child[1]);
        if (rc >= 0)
                rc = make_pipe(false, &r->err_fd, &child[2]);
        return rc < 0 ? fail(r, -rc, "cannot create pipes: %s", strerror(-rc)) : 0;
}

static void close_child_ends(int child[3]) {
        /* A terminal's slave is there three times: each fd once. */
        const int fd[3] = { child[0], child[1], child[2] };
        for (int i = 0; i < 3; i++) {
                if ((i < 1 || fd[i] != fd[0]) && (i < 2 || fd[i] != fd[1]))
                        safe_close(fd[i]);
                child[i] = -1;
        }
}

int launch_run(uint8_t *payload, size_t len, struct launch_mode mode, const struct launch_config *cfg,
               struct spawn_cancel *cancel, struct launch_result *ret) {
        struct vsock_exec_request q = { 0 };
        const char *why = NULL;
        int rc;

        *ret = LAUNCH_RESULT_INIT;
        rc = msg_decode_exec_request(payload ? payload : (const uint8_t *) "", len, mode.tty, &q, &why);
        if (payload)
                explicit_bzero(payload, len);
        free(payload);
        if (rc < 0)
                return fail(ret, rc == -ENOMEM ? ENOMEM : EINVAL, "invalid exec request: %s",
                            why ? why : strerror(-rc));
        rc = launch_request(&q, mode, cfg, cancel, ret);
        vsock_exec_request_clear(&q, true);
        return rc;
}

int launch_request(struct vsock_exec_request *q_in, struct launch_mode mode, const struct launch_config *cfg,
                   struct spawn_cancel *cancel, struct launch_result *ret) {
        _cleanup_(user_spec_clear) struct user_spec user = { 0 };
        struct vsock_exec_request q = *q_in;
        struct strv env = { 0 };
        char **argv = NULL;
        int child[3] = { -1, -1, -1 };
        char *err = NULL;
        const char *why = NULL;
        int rc;

        *ret = LAUNCH_RESULT_INIT;
        if (too_large(&q)) {
                rc = fail(ret, E2BIG, "request too large: arguments and environment exceed 2 MiB");
                goto out;
        }

        bool has_user = q.user && q.user[0];
        if (has_user) {
                rc = user_resolve(q.user, cfg->passwd, cfg->group, &user, &err);
                if (rc < 0) {
                        rc = fail(ret, -rc, "%s", err ? err : strerror(-rc));
                        goto out;
                }
        }
        struct env_user eu = { user.name, user.home };
        rc = env_build(cfg->base_env, q.env, q.n_env, has_user ? &eu : NULL, mode.tty, &env, &why);
        if (rc < 0) {
                rc = fail(ret, rc == -ENOMEM ? ENOMEM : EINVAL, "%s", why);
                goto out;
        }
        argv = make_argv(&q);
        if (!argv) {
                rc = fail(ret, ENOMEM, "out of memory");
                goto out;
        }
        rc = make_stdio(&q, mode, child, ret);
        if (rc < 0)
                goto out;

        struct spawn_params p = {
                .file = argv[0],
                .argv = argv,
                .envp = env.v,
                .search_path = q.n_args > 0,
                .cwd = q.working_dir && q.working_dir[0] ? q.working_dir : NULL,
                .user = has_user ? &user : NULL,
                .sandbox = cfg->sandbox,
                .fd_in = child[0],
                .fd_out = child[1],
                .fd_err = child[2],
                .tty = mode.tty,
                .pid_ns = cfg->pid_ns,
                .reset_signals = cfg->reset_signals,
        };
        rc = spawn_start(&p, cancel, &ret->pid, &ret->pidfd, &err, &ret->exit_code);
        if (rc < 0) {
                free(ret->error);
                ret->error = TAKE_PTR(err);
                goto out;
        }
        if (!mode.stdin_frames && q.stdin_data.len > 0) {
                /* Handed over as is; wiped by launch_result_clear(). */
                ret->stdin_data = TAKE_PTR(q_in->stdin_data.data);
                ret->stdin_len = q_in->stdin_data.len;
                q_in->stdin_data.len = 0;
        }
out:
        /* The child has its copies; ours would keep its pipes from EOF. */
        close_child_ends(child);
        free(argv);
        free(err);
        strv_wipe_free(&env);
        if (rc < 0) {
                /* Nothing of a command that did not start stays open. */
                ret->in_fd = safe_close(ret->in_fd);
                ret->out_fd = safe_close(ret->out_fd);
                ret->err_fd = safe_close(ret->err_fd);
                ret->master = safe_close(ret->master);
        }
        return rc;
}

int launch_failure(const struct launch_result *r, int rc, bool cancelled, char *buf, size_t size,
                   const char **ret_reason) {
        if (cancelled) {
                *ret_reason = "agent shutting down";
                return 126;
        }
        *ret_reason = r->error ? r->error : strerror_r(-rc, buf, size);
        return r->exit_code;
}

void launch_timeout_reason(int io_timeout_ms, char *buf, size_t size) {
        snprintf(buf, size, "the command did not start within %d s (a file system does not answer?)",
                 io_timeout_ms / 1000);
}

void launch_result_clear(struct launch_result *r) {
        r->pidfd = safe_close(r->pidfd);
        r->in_fd = safe_close(r->in_fd);
        r->out_fd = safe_close(r->out_fd);
        r->err_fd = safe_close(r->err_fd);
        r->master = safe_close(r->master);
        if (r->stdin_data)
                explicit_bzero(r->stdin_data, r->stdin_len);
        free(r->stdin_data);
        r->stdin_data = NULL;
        r->stdin_len = 0;
        free(r->error);
        r->error = NULL;
}
