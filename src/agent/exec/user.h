/* Resolving the "user" field of exec requests without NSS: "uid",
 * "uid:gid", "name" or "name:group", looked up in the guest's own
 * /etc/passwd and /etc/group. Resolution happens in the agent before the
 * child starts (it allocates); the child only calls user_switch_child(),
 * which is async-signal-safe. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct user_spec {
        uid_t uid;
        gid_t gid;
        gid_t *groups;          /* supplementary groups (includes gid) */
        size_t n_groups;
        char *name;             /* for USER/LOGNAME; numeric uid if unknown */
        char *home;             /* for HOME; "/" if unknown */
        char *shell;
};

/* Resolve @spec. @passwd_path/@group_path default to /etc/passwd and
 * /etc/group when NULL (tests pass their own). On failure returns a
 * negative errno and sets *ret_error to a malloc'd message such as
 * "unknown user \"bob\"". */
int user_resolve(const char *spec, const char *passwd_path, const char *group_path, struct user_spec *ret,
                 char **ret_error);

void user_spec_clear(struct user_spec *u);

/* In the child, after fork/clone: setgroups, setgid, setuid (in that
 * order), as raw system calls that change only the calling process (safe
 * in a CLONE_VM child of a threaded process). Returns 0 or -errno.
 * Async-signal-safe. */
int user_switch_child(const struct user_spec *u);

/* ---- names of ids, for listings ------------------------------------------
 * /etc/passwd and /etc/group read once into two sorted tables (the first
 * entry of an id wins, as getpwuid() would find it), so that a page of
 * thousands of entries costs two file reads. Missing or unreadable files
 * mean no names, not an error. At most USER_NAMES_MAX ids of each kind
 * are kept. Blocking (worker threads). */
#define USER_NAMES_MAX 65536u

struct user_names;

/* @passwd_path/@group_path: NULL for /etc/passwd and /etc/group.
 * Returns 0 or -ENOMEM. */
int user_names_load(const char *passwd_path, const char *group_path, struct user_names **ret);
/* The name of @uid / @gid, NULL when there is none. Valid until
 * user_names_free(). */
const char *user_names_user(const struct user_names *n, uint32_t uid);
const char *user_names_group(const struct user_names *n, uint32_t gid);
/* Accepts NULL. */
void user_names_free(struct user_names *n);
