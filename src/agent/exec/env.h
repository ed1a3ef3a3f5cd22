/* A command's environment, built from the agent's own, the user it runs
 * as and the request's variables. Pure: no I/O, no globals; the caller
 * passes the agent's environment in.
 *
 * Precedence, lowest first: the agent's environment; HOME, USER and
 * LOGNAME of the user (when the request names one); TERM=xterm-256color
 * for a terminal; the request's variables (the last of equal keys wins).
 * Below them all, a default PATH. The result is sorted by key.
 * Requests may carry 100k variables: the lists are sorted and merged, never
 * searched pairwise. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <vsock/msg.h>

/* A NULL-terminated vector of malloc'd "KEY=VALUE" strings. */
struct strv {
        char **v;
        size_t n;
};

/* Wipe every string (the environment may hold secrets), then free. Safe on
 * an empty or already freed vector. */
void strv_wipe_free(struct strv *s);

/* The identity a command runs as, for HOME, USER and LOGNAME. */
struct env_user {
        const char *name;
        const char *home;       /* NULL: "/" */
};

#define ENV_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Build the environment into *ret. @base is the agent's environment
 * (entries without '=' or with an empty or 256-byte-plus key are skipped),
 * @user may be NULL (no identity variables). Returns 0, -EINVAL (a request
 * key is empty or contains '=') or -ENOMEM, with *ret_why saying which;
 * *ret is set only on success. */
int env_build(char *const *base, const struct vsock_env *vars, size_t n_vars, const struct env_user *user, bool tty,
              struct strv *ret, const char **ret_why);
