/* The guest's files as vsockctl's cp, cat and ls need them.
 *
 * The base protocol has ReadFile (whole file, no mode), WriteFile and
 * ListFiles (name, size, mode, is_dir per entry). What users expect on
 * top of that is built here, each behind one function, so that a
 * negotiated protocol extension (stat, streamed files, paged listings with
 * owner and times) can replace a fallback without touching the commands:
 *
 *   guestfs_stat      one entry of its parent's listing     (-> a stat op)
 *   guestfs_details   owner, group, links, mtime and link target, from
 *                     stat(1) run in the guest through exec  (-> listing)
 *   guestfs_tar_out   a directory tree as a tar stream: tar(1) in the
 *   guestfs_tar_in    guest through exec, stream/pipe mode  (-> streaming)
 *
 * The exec fallbacks need /bin/sh and stat or tar in the guest; they run
 * alike on every agent (client.h, "Exec requests"). Every call dials the
 * agent itself (agent.h) and reports nothing: callers say what failed. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <vsock/vsock.h>

/* What ls -l shows beyond the base listing. */
struct guest_details {
        bool known;             /* stat answered for this entry */
        uint64_t nlink;
        uint32_t uid, gid;
        char owner[64], group[64]; /* names, or the numbers */
        int64_t mtime;          /* seconds since the epoch */
        char *link_target;      /* symlinks only (malloc'd), else NULL */
};
void guest_details_free(struct guest_details *d, size_t n);

/* ListFiles of @path, bounded by --reply-timeout; @call gets the agent's
 * words on failure. */
int guestfs_list(const char *addr, const char *path, struct vsock_call *call, struct vsock_file_entry **ret,
                 size_t *ret_n);

/* The entry for @path from its parent's listing: -ENOENT when the parent
 * has none of that name, or the listing's failure. */
int guestfs_stat(const char *addr, const char *path, struct vsock_file_entry *ret);

/* Details of @names[0..n) in directory @dir: *ret is an array of @n
 * (entries stat could not answer have known == false). Fails as a whole
 * (e.g. no shell or stat in the guest) with a code and @why. */
int guestfs_details(const char *addr, const char *dir, char *const *names, size_t n, struct guest_details **ret,
                    char *why, size_t why_size);

/* Write the tree under guest directory @dir as a tar stream to @fd (its
 * entries relative to @dir, "." first). Returns the remote tar's exit
 * status (0 = complete) or a negative code; the guest's complaints go to
 * our stderr. */
int guestfs_tar_out(const char *addr, const char *dir, int fd, struct vsock_call *call);

/* Unpack the tar stream read from @fd into guest directory @dir (made
 * first, with its parents). Returns the remote tar's exit status or a
 * negative code. */
int guestfs_tar_in(const char *addr, const char *dir, int fd, struct vsock_call *call);

/* The last component of @path ("/a/b/" -> "b", "/" -> "/") and its
 * directory ("/a/b" -> "/a", "b" -> ".", "/b" -> "/"), malloc'd (NULL
 * when out of memory). */
char *guestfs_base_name(const char *path);
char *guestfs_dir_name(const char *path);
