/* File-system operations and paged listing (PROTOCOL.md 2.4): FsRequest
 * (fsops.c) and ListDir (listdir.c), both run on worker jobs (extjob.c). */
#pragma once

#include <stdint.h>
#include <sys/stat.h>

struct session;
struct ext_stat;
struct user_names;

/* FsRequest (70) -> FsReply (71) or Error. */
int fsops_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len);
/* ListDir (72) -> ListReply (73) or Error. */
int listdir_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len);

/* Fill @ret (a fresh struct, ext_stat_init'ed or zeroed) from @st: @name
 * is the entry's last path element, @target a symlink's target (NULL: none),
 * @names (may be NULL) gives user and group names. Strings are copied.
 * Returns 0 or -ENOMEM (then @ret owns what was copied: ext_stat_clear). */
int fs_stat_fill(const struct stat *st, const char *name, const char *target, const struct user_names *names,
                 struct ext_stat *ret);

/* readlinkat(@dirfd, @path) into a malloc'd string. Returns 0, -errno
 * (-ENAMETOOLONG for a target longer than PATH_MAX). */
int fs_readlink(int dirfd, const char *path, char **ret);
