/* A tar stream into a directory tree (tar_fs.h), safely: every path is
 * resolved beneath the root without following symlinks, every file and
 * symlink is made under a temporary name and renamed into place, and
 * directories get their final mode and mtime once the archive has left
 * them (a depth-first archive leaves a directory when an entry outside it
 * comes: a stack of the current directory's ancestors, bounded by the
 * name length). */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/io.h"
#include "common/macro.h"
#include "tar.h"
#include "tar_fs.h"

struct dirmeta {
        size_t len; /* its name is dirpath[0..len) */
        uint32_t mode, uid, gid;
        int64_t mtime;
        uint32_t nsec;
};

struct tar_extract {
        struct tar_parser *p;
        int root;
        unsigned flags;
        bool no_openat2;
        bool ended;
        bool finalized;
        int err;
        struct tar_extract_stats st;
        /* What make_symlink/make_hardlink create (hard link: in link_dirfd). */
        const char *link;
        int link_dirfd;
        /* The file being written: its temporary in the cached parent. */
        int out_fd;
        uint64_t left;
        char tmp[48];
        /* The parent directory of the last entry, kept for the next one. */
        int parent_fd;
        size_t parent_len;
        char parent[TAR_NAME_MAX + 1];
        struct dirmeta *dirs; /* at most one per level of a name */
        size_t n_dirs, dirs_cap;
        char dirpath[TAR_NAME_MAX + 1];
        char msg[TAR_NAME_MAX + 128];
};

/* Temporary names are unique across every extractor of the process (two
 * may fill one directory from different threads), so the counter is the
 * process's, not an extractor's; O_EXCL settles clashes with anything
 * else. */
static unsigned tmp_counter;

__attribute__((format(printf, 3, 4))) static int fail(struct tar_extract *x, int err, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->msg, sizeof x->msg, fmt, ap);
        va_end(ap);
        x->err = err;
        return err;
}

static int fail_errno(struct tar_extract *x, int err, const char *what, const char *name) {
        if (err == -ELOOP)
                return fail(x, err, "%s %s: a symlink is in the way", what, name);
        return fail(x, err, "%s %s: %s", what, name, strerror(-err));
}

/* ---- resolution beneath the root ---------------------------------------------------------- */

static int openat2_beneath(int root, const char *path, uint64_t flags) {
        struct open_how how = {
                .flags = flags | O_CLOEXEC,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        long fd = syscall(SYS_openat2, root, path, &how, sizeof how);
        return fd < 0 ? -errno : (int) fd;
}

/* The kernel-less way: one O_NOFOLLOW open per component. A symlink
 * component fails with ENOTDIR there; say ELOOP, as openat2 would. */
static int walk_beneath(int root, const char *path, uint64_t flags, bool create) {
        int cur = openat(root, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (cur < 0)
                return -errno;
        char comp[TAR_COMPONENT_MAX + 1];
        const char *p = path;
        while (*p) {
                const char *slash = strchrnul(p, '/');
                size_t n = (size_t) (slash - p);
                memcpy(comp, p, n);
                comp[n] = '\0';
                p = *slash ? slash + 1 : slash;
                bool last = !*p;
                uint64_t f = last ? flags : O_PATH | O_DIRECTORY;
                int fd = openat(cur, comp, (int) f | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0 && errno == ENOENT && create) {
                        if (mkdirat(cur, comp, 0755) < 0 && errno != EEXIST) {
                                int e = -errno;
                                close(cur);
                                return e;
                        }
                        fd = openat(cur, comp, (int) f | O_NOFOLLOW | O_CLOEXEC);
                }
                if (fd < 0) {
                        int e = -errno;
                        struct stat st;
                        if ((e == -ENOTDIR || e == -ELOOP) && fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                            S_ISLNK(st.st_mode))
                                e = -ELOOP;
                        close(cur);
                        return e;
                }
                close(cur);
                cur = fd;
        }
        return cur;
}

/* A directory fd for @path ("" is the root) opened with @flags. With
 * @create, missing directories on the way are made (0755, umask). */
static int open_dir(struct tar_extract *x, const char *path, uint64_t flags, bool create) {
        flags |= O_DIRECTORY;
        if (!x->no_openat2) {
                int fd = openat2_beneath(x->root, *path ? path : ".", flags);
                if (fd >= 0)
                        return fd;
                /* No openat2 (old kernel, or a filter that refuses it). */
                if (fd == -ENOSYS || fd == -EPERM || fd == -E2BIG)
                        x->no_openat2 = true;
                else if (fd != -ENOENT || !create)
                        return fd;
        }
        return walk_beneath(x->root, path, flags, create);
}

/* The parent directory of the current entry (cached while entries stay
 * in one directory). Returns a borrowed fd. */
static int parent_dir(struct tar_extract *x, const char *name, size_t len) {
        if (x->parent_fd >= 0 && x->parent_len == len && memcmp(x->parent, name, len) == 0)
                return x->parent_fd;
        x->parent_fd = safe_close(x->parent_fd);
        memcpy(x->parent, name, len);
        x->parent[len] = '\0';
        int fd = open_dir(x, x->parent, O_PATH, true);
        if (fd < 0)
                return fail_errno(x, fd, "open directory", len ? x->parent : ".");
        x->parent_fd = fd;
        x->parent_len = len;
        return fd;
}

/* ---- metadata --------------------------------------------------------------------------------- */

static uint32_t mode_of(const struct tar_extract *x, uint32_t mode, bool dir) {
        mode &= 07777;
        /* Without the archive's owners, a setuid/setgid bit would hand the
         * archive's author the extractor's identity. Directories keep
         * setgid (group inheritance only). */
        if (!(x->flags & TAR_X_OWNER))
                mode &= dir ? ~(uint32_t) S_ISUID : ~(uint32_t) (S_ISUID | S_ISGID);
        return mode;
}

static struct timespec *times_of(int64_t sec, uint32_t nsec, struct timespec ts[2]) {
        ts[0] = (struct timespec) { .tv_nsec = UTIME_OMIT };
        ts[1] = (struct timespec) { .tv_sec = sec, .tv_nsec = nsec };
        return ts;
}

/* Owner, then mode (chown clears setuid), then times, on an open fd. */
static int apply_fd(struct tar_extract *x, int fd, uint32_t mode, uint32_t uid, uint32_t gid, int64_t mtime,
                    uint32_t nsec, bool dir) {
        struct timespec ts[2];
        if ((x->flags & TAR_X_OWNER) && fchown(fd, uid, gid) < 0)
                return -errno;
        if (fchmod(fd, mode_of(x, mode, dir)) < 0)
                return -errno;
        if (futimens(fd, times_of(mtime, nsec, ts)) < 0)
                return -errno;
        return 0;
}

static int finalize_dir(struct tar_extract *x, const struct dirmeta *d) {
        char path[TAR_NAME_MAX + 1];
        memcpy(path, x->dirpath, d->len);
        path[d->len] = '\0';
        _cleanup_close_ int fd = open_dir(x, path, O_RDONLY, false);
        if (fd < 0)
                return fail_errno(x, fd, "open directory", path);
        int r = apply_fd(x, fd, d->mode, d->uid, d->gid, d->mtime, d->nsec, true);
        if (r < 0)
                return fail_errno(x, r, "set attributes of", path);
        return 0;
}

/* Finalize the directories the archive has left: those that are not
 * ancestors of @name (NULL: all of them). */
static int leave_dirs(struct tar_extract *x, const char *name) {
        int r = 0;
        while (x->n_dirs > 0) {
                const struct dirmeta *d = &x->dirs[x->n_dirs - 1];
                if (name && strncmp(name, x->dirpath, d->len) == 0 && name[d->len] == '/')
                        break;
                int e = finalize_dir(x, d);
                if (r == 0)
                        r = e;
                x->n_dirs--;
        }
        return r;
}

/* ---- entries ------------------------------------------------------------------------------------ */

/* A new temporary name in the parent: ours alone (O_EXCL), never a
 * symlink someone planted. */
static int make_tmp(struct tar_extract *x, int dirfd, const char *name, int (*make)(struct tar_extract *, int)) {
        for (int tries = 0; tries < 100; tries++) {
                snprintf(x->tmp, sizeof x->tmp, ".tarx.%d.%u", (int) getpid(),
                         __atomic_fetch_add(&tmp_counter, 1, __ATOMIC_RELAXED));
                int r = make(x, dirfd);
                if (r != -EEXIST)
                        return r < 0 ? fail_errno(x, r, "create", name) : r;
        }
        return fail(x, -EEXIST, "create %s: no free temporary name", name);
}

static int make_file(struct tar_extract *x, int dirfd) {
        int fd = openat(dirfd, x->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        return fd < 0 ? -errno : fd;
}

static int make_symlink(struct tar_extract *x, int dirfd) {
        return symlinkat(x->link, dirfd, x->tmp) < 0 ? -errno : 0;
}

static int make_hardlink(struct tar_extract *x, int dirfd) {
        return linkat(x->link_dirfd, x->link, dirfd, x->tmp, 0) < 0 ? -errno : 0;
}

static int install(struct tar_extract *x, int dirfd, const char *base, const char *name) {
        if (renameat(dirfd, x->tmp, dirfd, base) < 0) {
                int e = -errno;
                (void) unlinkat(dirfd, x->tmp, 0);
                return fail_errno(x, e, "rename into", name);
        }
        x->st.entries++;
        return 0;
}

static int file_done(struct tar_extract *x) {
        const struct tar_entry *e = tar_parser_entry(x->p);
        const char *base = strrchr(e->name, '/');
        base = base ? base + 1 : e->name;
        int r = apply_fd(x, x->out_fd, e->mode, e->uid, e->gid, e->mtime, e->mtime_nsec, false);
        if (r < 0) {
                (void) unlinkat(x->parent_fd, x->tmp, 0);
                x->out_fd = safe_close(x->out_fd);
                return fail_errno(x, r, "set attributes of", e->name);
        }
        if (close(TAKE_FD(x->out_fd)) < 0 && errno != EINTR) {
                r = -errno;
                (void) unlinkat(x->parent_fd, x->tmp, 0);
                return fail_errno(x, r, "write", e->name);
        }
        return install(x, x->parent_fd, base, e->name);
}

static int do_dir(struct tar_extract *x, int dirfd, const char *base, const struct tar_entry *e) {
        if (mkdirat(dirfd, base, 0700) < 0) {
                struct stat st;
                int r = -errno;
                if (r != -EEXIST)
                        return fail_errno(x, r, "mkdir", e->name);
                if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return fail_errno(x, -errno, "stat", e->name);
                if (S_ISLNK(st.st_mode))
                        return fail_errno(x, -ELOOP, "mkdir", e->name);
                if (!S_ISDIR(st.st_mode))
                        return fail(x, -EEXIST, "mkdir %s: exists and is not a directory", e->name);
        }
        /* The stack holds ancestors of this entry only (leave_dirs), so
         * it is no deeper than the name has components. */
        if (x->n_dirs == x->dirs_cap) {
                size_t cap = x->dirs_cap ? 2 * x->dirs_cap : 16;
                struct dirmeta *d = realloc(x->dirs, cap * sizeof *d);
                if (!d)
                        return fail(x, -ENOMEM, "out of memory");
                x->dirs = d;
                x->dirs_cap = cap;
        }
        size_t len = strlen(e->name);
        memcpy(x->dirpath, e->name, len);
        x->dirs[x->n_dirs++] = (struct dirmeta) {
                .len = len, .mode = e->mode, .uid = e->uid, .gid = e->gid, .mtime = e->mtime, .nsec = e->mtime_nsec,
        };
        x->st.entries++;
        return 0;
}

static int do_symlink(struct tar_extract *x, int dirfd, const char *base, const struct tar_entry *e) {
        struct timespec ts[2];
        x->link = e->link;
        int r = make_tmp(x, dirfd, e->name, make_symlink);
        if (r < 0)
                return r;
        if (((x->flags & TAR_X_OWNER) && fchownat(dirfd, x->tmp, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0) ||
            utimensat(dirfd, x->tmp, times_of(e->mtime, e->mtime_nsec, ts), AT_SYMLINK_NOFOLLOW) < 0) {
                r = -errno;
                (void) unlinkat(dirfd, x->tmp, 0);
                return fail_errno(x, r, "set attributes of", e->name);
        }
        return install(x, dirfd, base, e->name);
}

static int do_hardlink(struct tar_extract *x, int dirfd, const char *base, const struct tar_entry *e) {
        /* The target, resolved beneath the root like any name. */
        char tparent[TAR_NAME_MAX + 1];
        const char *slash = strrchr(e->link, '/');
        size_t plen = slash ? (size_t) (slash - e->link) : 0;
        memcpy(tparent, e->link, plen);
        tparent[plen] = '\0';
        _cleanup_close_ int tfd = open_dir(x, tparent, O_PATH, false);
        if (tfd < 0)
                return fail_errno(x, tfd, "link to", e->link);
        x->link_dirfd = tfd;
        x->link = slash ? slash + 1 : e->link;
        int r = make_tmp(x, dirfd, e->name, make_hardlink);
        if (r < 0)
                return r;
        r = install(x, dirfd, base, e->name);
        /* A link onto itself: rename(2) keeps both names then. */
        if (r == 0)
                (void) unlinkat(dirfd, x->tmp, 0);
        return r;
}

static int entry(struct tar_extract *x, const struct tar_entry *e) {
        int r = leave_dirs(x, e->name);
        if (r < 0)
                return r;
        if (strcmp(e->name, ".") == 0) {
                /* The root itself: it exists; its attributes are the caller's. */
                x->st.entries++;
                return 0;
        }
        switch (e->type) {
        case TAR_CHAR:
        case TAR_BLOCK_DEV:
        case TAR_FIFO:
        case TAR_OTHER:
                x->st.skipped++;
                return 0;
        default:
                break;
        }
        const char *slash = strrchr(e->name, '/');
        size_t plen = slash ? (size_t) (slash - e->name) : 0;
        const char *base = slash ? slash + 1 : e->name;
        int dirfd = parent_dir(x, e->name, plen);
        if (dirfd < 0)
                return dirfd;
        switch (e->type) {
        case TAR_DIR:
                return do_dir(x, dirfd, base, e);
        case TAR_SYMLINK:
                return do_symlink(x, dirfd, base, e);
        case TAR_HARDLINK:
                return do_hardlink(x, dirfd, base, e);
        case TAR_FILE:
                r = make_tmp(x, dirfd, e->name, make_file);
                if (r < 0)
                        return r;
                x->out_fd = r;
                x->left = e->size;
                return e->size == 0 ? file_done(x) : 0;
        default:
                return 0;
        }
}

/* ---- the interface ------------------------------------------------------------------------------ */

int tar_extract_new(int root_fd, unsigned flags, struct tar_extract **ret) {
        struct tar_extract *x = calloc(1, sizeof *x);
        if (!x)
                return -ENOMEM;
        int r = tar_parser_new(&x->p);
        if (r < 0) {
                free(x);
                return r;
        }
        x->root = root_fd;
        x->flags = flags;
        x->no_openat2 = flags & TAR_X_NO_OPENAT2;
        x->out_fd = -1;
        x->parent_fd = -1;
        *ret = x;
        return 0;
}

int tar_extract_write(struct tar_extract *x, const void *data, size_t len) {
        const uint8_t *in = data;
        if (x->err)
                return x->err;
        while (len > 0) {
                size_t used = 0, n = 0;
                const uint8_t *d = NULL;
                int ev = tar_parser_feed(x->p, in, len, &used, &d, &n);
                if (ev < 0)
                        return fail(x, ev, "%s", tar_parser_error(x->p));
                in += used;
                len -= used;
                int r = 0;
                switch (ev) {
                case TAR_EV_ENTRY:
                        r = entry(x, tar_parser_entry(x->p));
                        break;
                case TAR_EV_DATA:
                        /* Content of a skipped entry goes nowhere. */
                        if (x->out_fd < 0)
                                break;
                        r = io_write_all(x->out_fd, d, n, 0, -1);
                        if (r < 0) {
                                const char *name = tar_parser_entry(x->p)->name;
                                (void) unlinkat(x->parent_fd, x->tmp, 0);
                                x->out_fd = safe_close(x->out_fd);
                                return fail_errno(x, r, "write", name);
                        }
                        x->left -= n;
                        if (x->left == 0)
                                r = file_done(x);
                        break;
                case TAR_EV_END:
                        x->ended = true;
                        break;
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

int tar_extract_finish(struct tar_extract *x) {
        int r = x->err;
        if (r == 0) {
                r = tar_parser_finish(x->p);
                if (r < 0)
                        fail(x, r, "%s", tar_parser_error(x->p));
        }
        if (!x->finalized) {
                x->finalized = true;
                int e = leave_dirs(x, NULL);
                if (r == 0)
                        r = e;
        }
        return r;
}

void tar_extract_stats(const struct tar_extract *x, struct tar_extract_stats *ret) {
        *ret = x->st;
}

const char *tar_extract_error(const struct tar_extract *x) {
        return x->msg;
}

void tar_extract_free(struct tar_extract *x) {
        if (!x)
                return;
        if (x->out_fd >= 0) {
                x->out_fd = safe_close(x->out_fd);
                (void) unlinkat(x->parent_fd, x->tmp, 0);
        }
        if (!x->finalized) {
                int err = x->err;
                (void) leave_dirs(x, NULL);
                x->err = err;
        }
        safe_close(x->parent_fd);
        tar_parser_free(x->p);
        free(x->dirs);
        free(x);
}
