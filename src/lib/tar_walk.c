/* A directory tree as a tar stream (tar_fs.h): a depth-first walk with
 * one open directory and one small getdents buffer per level, feeding the
 * pure writer (tar.h); file content is read straight into the caller's
 * buffer. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/io.h"
#include "common/macro.h"
#include "tar.h"
#include "tar_fs.h"

#define DENTS_BUF 4096
/* Hard links remembered (beyond: archived as copies, still correct):
 * with the table, at most ~1 MiB. */
#define LINKS_MAX 8192
#define LINK_NAMES_MAX (512 << 10)

struct level {
        int fd;
        size_t plen; /* the directory's archive name is path[0..plen) */
        size_t pos, end;
        uint8_t *buf;
};

struct link {
        uint64_t dev, ino;
        char *name;
};

struct tar_walk {
        struct tar_writer *w;
        dev_t dev;
        struct level stack[TAR_WALK_DEPTH_MAX + 1];
        size_t depth;
        int file_fd;
        bool shrunk;
        int err;
        struct tar_walk_stats st;
        tar_owner_name_fn owner_name;
        void *owner_ctx;
        bool have_owner[2];
        uint32_t owner_id[2];
        char owner[2][TAR_OWNER_MAX + 1];
        struct link *links; /* open addressing, power-of-two size */
        size_t links_cap, n_links, link_bytes;
        char msg[TAR_NAME_MAX + 128];
        char path[TAR_NAME_MAX + 2];
        char target[TAR_NAME_MAX + 2];
};

__attribute__((format(printf, 3, 4))) static int fail(struct tar_walk *t, int err, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->msg, sizeof t->msg, fmt, ap);
        va_end(ap);
        t->err = err;
        return err;
}

static int fail_errno(struct tar_walk *t, int err, const char *what) {
        return fail(t, err, "%s %s: %s", what, t->path, strerror(-err));
}

/* ---- hard links ----------------------------------------------------------------------- */

static size_t link_slot(const struct tar_walk *t, uint64_t dev, uint64_t ino) {
        uint64_t h = (ino * 0x9e3779b97f4a7c15ULL) ^ dev;
        size_t i = (size_t) (h ^ h >> 29) & (t->links_cap - 1);
        while (t->links[i].name && (t->links[i].dev != dev || t->links[i].ino != ino))
                i = (i + 1) & (t->links_cap - 1);
        return i;
}

static const char *link_find(const struct tar_walk *t, const struct stat *st) {
        if (t->links_cap == 0)
                return NULL;
        return t->links[link_slot(t, st->st_dev, st->st_ino)].name;
}

/* Remember @name for (dev, ino); silently not when the table is full. */
static void link_add(struct tar_walk *t, const struct stat *st, const char *name) {
        size_t len = strlen(name);
        if (t->n_links >= LINKS_MAX || t->link_bytes + len > LINK_NAMES_MAX)
                return;
        if (2 * (t->n_links + 1) > t->links_cap) {
                size_t cap = t->links_cap ? 2 * t->links_cap : 64;
                struct link *n = calloc(cap, sizeof *n), *old = t->links;
                size_t old_cap = t->links_cap;
                if (!n)
                        return;
                t->links = n;
                t->links_cap = cap;
                for (size_t i = 0; i < old_cap; i++)
                        if (old[i].name)
                                t->links[link_slot(t, old[i].dev, old[i].ino)] = old[i];
                free(old);
        }
        char *copy = strdup(name);
        if (!copy)
                return;
        t->links[link_slot(t, st->st_dev, st->st_ino)] = (struct link) { st->st_dev, st->st_ino, copy };
        t->n_links++;
        t->link_bytes += len;
}

/* ---- entries ---------------------------------------------------------------------------- */

static const char *owner_of(struct tar_walk *t, bool group, uint32_t id) {
        if (!t->owner_name)
                return NULL;
        if (!t->have_owner[group] || t->owner_id[group] != id) {
                const char *n = t->owner_name(t->owner_ctx, group, id);
                snprintf(t->owner[group], sizeof t->owner[group], "%s", n ? n : "");
                t->owner_id[group] = id;
                t->have_owner[group] = true;
        }
        return t->owner[group][0] ? t->owner[group] : NULL;
}

static int add(struct tar_walk *t, enum tar_type type, const struct stat *st, const char *link) {
        struct tar_entry e = {
                .type = type,
                .name = t->path,
                .link = link,
                .size = type == TAR_FILE ? (uint64_t) st->st_size : 0,
                .mode = st->st_mode & 07777,
                .uid = st->st_uid,
                .gid = st->st_gid,
                .uname = owner_of(t, false, st->st_uid),
                .gname = owner_of(t, true, st->st_gid),
                .mtime = st->st_mtim.tv_sec,
                .mtime_nsec = (uint32_t) st->st_mtim.tv_nsec,
        };
        int r = tar_writer_add(t->w, &e);
        if (r < 0)
                return fail(t, r, "archive %s: %s", t->path, strerror(-r));
        t->st.entries++;
        return 0;
}

static int push_dir(struct tar_walk *t, int fd, size_t plen) {
        if (t->depth > TAR_WALK_DEPTH_MAX) {
                close(fd);
                return fail(t, -ELOOP, "more than %d directory levels at %s", TAR_WALK_DEPTH_MAX, t->path);
        }
        uint8_t *buf = malloc(DENTS_BUF);
        if (!buf) {
                close(fd);
                return fail(t, -ENOMEM, "out of memory");
        }
        t->stack[t->depth++] = (struct level) { .fd = fd, .plen = plen, .buf = buf };
        return 0;
}

/* The entry @dname of @dirfd, whose archive name is path[0..plen) and
 * whose lstat is @st. Returns 1 when it queued an entry, 0 when it
 * skipped it, or an error. */
static int visit(struct tar_walk *t, int dirfd, const char *dname, struct stat *st, size_t plen) {
        bool other_fs = st->st_dev != t->dev;
        int r;

        if (S_ISREG(st->st_mode)) {
                if (other_fs) {
                        t->st.other_fs++;
                        return 0;
                }
                /* O_NONBLOCK: a FIFO swapped in since the lstat must not block us. */
                _cleanup_close_ int fd = openat(dirfd, dname, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
                struct stat now;
                if (fd < 0 && (errno == ENOENT || errno == ELOOP)) {
                        t->st.changed++;
                        return 0;
                }
                if (fd < 0)
                        return fail_errno(t, -errno, "open");
                if (fstat(fd, &now) < 0)
                        return fail_errno(t, -errno, "stat");
                if (!S_ISREG(now.st_mode) || now.st_dev != st->st_dev) {
                        t->st.changed++;
                        return 0;
                }
                *st = now;
                if (st->st_nlink > 1) {
                        const char *first = link_find(t, st);
                        if (first) {
                                snprintf(t->target, sizeof t->target, "%s", first);
                                r = add(t, TAR_HARDLINK, st, t->target);
                                return r < 0 ? r : 1;
                        }
                        link_add(t, st, t->path);
                }
                r = add(t, TAR_FILE, st, NULL);
                if (r < 0)
                        return r;
                t->file_fd = TAKE_FD(fd);
                t->shrunk = false;
                return 1;
        }
        if (S_ISDIR(st->st_mode)) {
                r = add(t, TAR_DIR, st, NULL);
                if (r < 0)
                        return r;
                if (other_fs) {
                        /* The mount point itself, not what is mounted there. */
                        t->st.other_fs++;
                        return 1;
                }
                int fd = openat(dirfd, dname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        return fail_errno(t, -errno, "open");
                r = push_dir(t, fd, plen);
                return r < 0 ? r : 1;
        }
        if (S_ISLNK(st->st_mode)) {
                if (other_fs) {
                        t->st.other_fs++;
                        return 0;
                }
                ssize_t n = readlinkat(dirfd, dname, t->target, TAR_NAME_MAX + 1);
                if (n < 0 && errno == ENOENT) {
                        t->st.changed++;
                        return 0;
                }
                if (n < 0)
                        return fail_errno(t, -errno, "readlink");
                if (n > TAR_NAME_MAX)
                        return fail(t, -ENAMETOOLONG, "readlink %s: target too long", t->path);
                t->target[n] = '\0';
                r = add(t, TAR_SYMLINK, st, t->target);
                return r < 0 ? r : 1;
        }
        /* Sockets, FIFOs, devices. */
        t->st.skipped++;
        return 0;
}

/* The next directory entry of the deepest level, or NULL at its end. */
static struct dirent64 *next_dirent(struct tar_walk *t, struct level *l) {
        if (l->pos >= l->end) {
                ssize_t n = getdents64(l->fd, l->buf, DENTS_BUF);
                if (n < 0) {
                        t->path[l->plen] = '\0';
                        fail_errno(t, -errno, "read directory");
                        return NULL;
                }
                l->pos = 0;
                l->end = (size_t) n;
                if (n == 0)
                        return NULL;
        }
        struct dirent64 *d = (struct dirent64 *) (l->buf + l->pos);
        l->pos += d->d_reclen;
        return d;
}

static void pop(struct tar_walk *t) {
        struct level *l = &t->stack[--t->depth];
        close(l->fd);
        free(l->buf);
}

/* Queue the next entry, or the end of the archive. */
static int next(struct tar_walk *t) {
        while (t->depth > 0) {
                struct level *l = &t->stack[t->depth - 1];
                struct dirent64 *d = next_dirent(t, l);
                if (!d) {
                        if (t->err)
                                return t->err;
                        pop(t);
                        continue;
                }
                const char *dn = d->d_name;
                if (dn[0] == '.' && (dn[1] == '\0' || (dn[1] == '.' && dn[2] == '\0')))
                        continue;
                size_t n = strlen(dn), plen = l->plen + 1 + n;
                if (plen > TAR_NAME_MAX) {
                        t->path[l->plen] = '\0';
                        return fail(t, -ENAMETOOLONG, "name longer than %d bytes: %s/%s", TAR_NAME_MAX, t->path, dn);
                }
                t->path[l->plen] = '/';
                memcpy(t->path + l->plen + 1, dn, n + 1);
                struct stat st;
                if (fstatat(l->fd, dn, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno == ENOENT) {
                                t->st.changed++;
                                continue;
                        }
                        return fail_errno(t, -errno, "stat");
                }
                int r = visit(t, l->fd, dn, &st, plen);
                if (r != 0)
                        return r < 0 ? r : 0;
        }
        return tar_writer_finish(t->w);
}

int tar_walk_new(int dirfd, const char *name, const char *arcname, tar_owner_name_fn owner_name, void *ctx,
                 struct tar_walk **ret) {
        if (!name || !arcname)
                return -EINVAL;
        struct tar_walk *t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        t->file_fd = -1;
        t->owner_name = owner_name;
        t->owner_ctx = ctx;
        int r = tar_writer_new(&t->w);
        if (r < 0)
                goto fail;
        size_t alen = strlen(arcname);
        r = alen <= TAR_NAME_MAX ? tar_name_clean(arcname, alen, t->path) : -ENAMETOOLONG;
        if (r < 0)
                goto fail;
        struct stat st;
        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                r = -errno;
                goto fail;
        }
        t->dev = st.st_dev;
        r = visit(t, dirfd, name, &st, (size_t) r);
        if (r < 0)
                goto fail;
        if (r == 0) {
                /* The root vanished, or is a socket, FIFO or device. */
                r = t->st.changed ? -ENOENT : -EINVAL;
                goto fail;
        }
        *ret = t;
        return 0;
fail:
        tar_walk_free(t);
        return r;
}

ssize_t tar_walk_read(struct tar_walk *t, uint8_t *buf, size_t n) {
        size_t k = 0;

        if (t->err)
                return t->err;
        if (n == 0)
                return -EINVAL; /* 0 means "complete" */
        while (k < n) {
                k += tar_writer_read(t->w, buf + k, n - k);
                if (k == n)
                        break;
                uint64_t due = tar_writer_content_due(t->w);
                if (due > 0) {
                        size_t want = (size_t) MIN(due, (uint64_t) (n - k));
                        ssize_t got = t->shrunk ? 0 : io_read_once(t->file_fd, buf + k, want);
                        if (got < 0)
                                return fail_errno(t, (int) got, "read");
                        if (got == 0) {
                                /* Shrunk while archived: its header promised more. */
                                if (!t->shrunk)
                                        t->st.changed++;
                                t->shrunk = true;
                                memset(buf + k, 0, want);
                                got = (ssize_t) want;
                        }
                        (void) tar_writer_content_done(t->w, (uint64_t) got);
                        k += (size_t) got;
                        continue;
                }
                t->file_fd = safe_close(t->file_fd);
                if (tar_writer_done(t->w))
                        break;
                int r = next(t);
                if (r < 0)
                        return r;
        }
        return (ssize_t) k;
}

void tar_walk_stats(const struct tar_walk *t, struct tar_walk_stats *ret) {
        *ret = t->st;
}

const char *tar_walk_error(const struct tar_walk *t) {
        return t->msg;
}

void tar_walk_free(struct tar_walk *t) {
        if (!t)
                return;
        while (t->depth > 0)
                pop(t);
        safe_close(t->file_fd);
        for (size_t i = 0; i < t->links_cap; i++)
                free(t->links[i].name);
        free(t->links);
        tar_writer_free(t->w);
        free(t);
}
