/* Directory trees to and from tar streams (tar.h), for TarGet/TarPut and
 * `vsockctl cp -r` in both directions. These make blocking file-system
 * calls: the agent runs them on a worker thread. Each call does a bounded
 * amount of work (fills one buffer, consumes one piece of input), so the
 * caller interleaves them with its network I/O and flow control, and
 * memory stays bounded whatever the tree or archive size.
 *
 * Every fd is O_CLOEXEC. Error texts (tar_walk_error, tar_extract_error)
 * name the entry and the cause: "open a/b: Permission denied". */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- walk: a tree into an archive -------------------------------------------------- */

struct tar_walk;

struct tar_walk_stats {
        uint64_t entries;  /* entries written */
        uint64_t skipped;  /* sockets, FIFOs and devices, not archived */
        uint64_t other_fs; /* on another file system: directories archived empty, others skipped */
        uint64_t changed;  /* vanished, replaced or shrunk while being read (shrunk: zero-filled) */
};

/* The name of uid (@group false) or gid @id, or NULL when it has none.
 * The walker copies the answer and asks again only for a different id. */
typedef const char *(*tar_owner_name_fn)(void *ctx, bool group, uint32_t id);

/* Archive the entry @name of directory @dirfd (which is not kept) under
 * the archive name @arcname ("dir" for `tar -C parent -c dir`; "." for a
 * tree's contents only): regular files, directories, symlinks (never
 * followed, @name included) and hard links within the tree, with modes,
 * owners (and their names, when @owner_name is given), and nanosecond
 * mtimes. It opens only regular files and directories, with O_NOFOLLOW,
 * and does not descend into directories on other file systems; sockets,
 * FIFOs and devices are skipped and counted. Errors: -errno from
 * fstatat/open of @name, -EINVAL for a bad @arcname, -ENOMEM. */
int tar_walk_new(int dirfd, const char *name, const char *arcname, tar_owner_name_fn owner_name, void *ctx,
                 struct tar_walk **ret);

/* Write up to @n (> 0) next archive bytes into @buf. Returns how many
 * (fewer than @n only at the end; 0 once the archive is complete) or a
 * negative errno (sticky; tar_walk_error() says what failed; -EINVAL for
 * @n == 0). */
ssize_t tar_walk_read(struct tar_walk *t, uint8_t *buf, size_t n);

void tar_walk_stats(const struct tar_walk *t, struct tar_walk_stats *ret);
const char *tar_walk_error(const struct tar_walk *t);
/* Close everything. NULL is fine. */
void tar_walk_free(struct tar_walk *t);

/* Depth of directories below the walk's root it descends into. */
#define TAR_WALK_DEPTH_MAX 256

/* ---- extract: an archive into a tree ---------------------------------------------------- */

struct tar_extract;

struct tar_extract_stats {
        uint64_t entries; /* entries extracted */
        uint64_t skipped; /* devices, FIFOs and unknown types, not extracted */
};

enum {
        TAR_X_OWNER = 1 << 0,      /* apply the archive's uid/gid (else the extractor's own) */
        TAR_X_NO_OPENAT2 = 1 << 1, /* resolve by the O_NOFOLLOW walk only (tests; kernels < 5.6) */
};

/* Extract beneath the directory @root_fd (borrowed: it must stay open
 * until tar_extract_free). Every path is resolved beneath it without
 * following any symlink (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|
 * RESOLVE_NO_MAGICLINKS, or a walk of O_NOFOLLOW opens where openat2 is
 * missing): a symlink in the way is -ELOOP. Missing parent directories are
 * created. Files and symlinks are made under temporary names and renamed
 * into place (replacing a file or symlink, never following it); hard
 * links must name an entry beneath the root. Modes (setuid/setgid only
 * with TAR_X_OWNER) and mtimes are applied, directories' once their
 * contents are in. */
int tar_extract_new(int root_fd, unsigned flags, struct tar_extract **ret);

/* Consume @len more archive bytes, any split. Returns 0 or a negative
 * errno, sticky (the parser's, or the file system's). What was extracted
 * before an error stays. */
int tar_extract_write(struct tar_extract *x, const void *data, size_t len);

/* The input ended. Applies the remaining directories' modes and mtimes.
 * Returns 0 when the archive was complete and extracted, else the error
 * (-EBADMSG for a truncated archive). */
int tar_extract_finish(struct tar_extract *x);

void tar_extract_stats(const struct tar_extract *x, struct tar_extract_stats *ret);
const char *tar_extract_error(const struct tar_extract *x);
/* Remove an unfinished temporary file, apply what directory metadata is
 * pending, close everything. NULL is fine. */
void tar_extract_free(struct tar_extract *x);
