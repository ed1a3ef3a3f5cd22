/* FsRequest (PROTOCOL.md 2.4): one file-system operation per request, on
 * a worker job. Every failure is an Error named for its errno, with a
 * message "OP PATH: reason". */
#include "agent/files/fsops.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/serve/ext.h"
#include "agent/exec/user.h"
#include "common/macro.h"
#include "lib/ext_msg.h"

/* Directory levels a recursive remove descends (each holds an fd). */
#define FS_REMOVE_DEPTH_MAX 256

static int64_t ts_ns(const struct timespec *t) { return (int64_t) t->tv_sec * 1000000000 + t->tv_nsec; }

static char *dup_or_null(const char *s, bool *oom) {
        if (!s || !*s)
                return NULL;
        char *d = strdup(s);
        if (!d)
                *oom = true;
        return d;
}

int fs_stat_fill(const struct stat *st, const char *name, const char *target, const struct user_names *names,
                 struct ext_stat *ret) {
        bool oom = false;
        *ret = (struct ext_stat) {
                .name = strdup(name),
                .size = (int64_t) st->st_size,
                .mode = (uint32_t) st->st_mode,
                .uid = (uint32_t) st->st_uid,
                .gid = (uint32_t) st->st_gid,
                .user = dup_or_null(user_names_user(names, (uint32_t) st->st_uid), &oom),
                .group = dup_or_null(user_names_group(names, (uint32_t) st->st_gid), &oom),
                .nlink = (uint64_t) st->st_nlink,
                .ino = (uint64_t) st->st_ino,
                .dev = (uint64_t) st->st_dev,
                .rdev = (uint64_t) st->st_rdev,
                .mtime_ns = ts_ns(&st->st_mtim),
                .atime_ns = ts_ns(&st->st_atim),
                .ctime_ns = ts_ns(&st->st_ctim),
                .target = dup_or_null(target, &oom),
        };
        return !ret->name || oom ? -ENOMEM : 0;
}

int fs_readlink(int dirfd, const char *path, char **ret) {
        char buf[PATH_MAX + 1];
        ssize_t n = readlinkat(dirfd, path, buf, sizeof buf);
        if (n < 0)
                return -errno;
        if ((size_t) n >= sizeof buf)
                return -ENAMETOOLONG;
        buf[n] = '\0';
        char *d = strdup(buf);
        if (!d)
                return -ENOMEM;
        *ret = d;
        return 0;
}

/* The last element of @path ("/" for the root), into @buf. */
static const char *last_element(const char *path, char *buf, size_t size) {
        size_t n = strlen(path);
        while (n > 1 && path[n - 1] == '/')
                n--;
        size_t b = n;
        while (b > 0 && path[b - 1] != '/')
                b--;
        if (b == n) /* only slashes */
                return "/";
        snprintf(buf, size, "%.*s", (int) (n - b), path + b);
        return buf;
}

struct fs_call {
        const struct ext_fs_request *req;
        struct ext_reply *reply;
};

static void fail_errno(struct fs_call *c, int err, const char *path) {
        ext_reply_fail(c->reply, NULL, err, "%s %s: %s", c->req->op, path, strerror(err < 0 ? -err : err));
}

/* Answer FsReply with the (l)stat of @path. */
static void reply_stat(struct fs_call *c, const char *path, bool follow) {
        struct stat st;
        if ((follow ? stat(path, &st) : lstat(path, &st)) < 0) {
                fail_errno(c, errno, path);
                return;
        }
        _cleanup_free_ char *target = NULL;
        if (S_ISLNK(st.st_mode))
                (void) fs_readlink(AT_FDCWD, path, &target); /* replaced since: no target */
        struct user_names *names = NULL;
        (void) user_names_load(NULL, NULL, &names); /* no names without memory */
        char nb[NAME_MAX + 1];
        struct ext_fs_reply rep = { .has_stat = true };
        int r = fs_stat_fill(&st, last_element(path, nb, sizeof nb), target, names, &rep.stat);
        user_names_free(names);
        if (r >= 0)
                r = ext_fs_reply_encode(&rep, &c->reply->frame);
        ext_fs_reply_clear(&rep);
        if (r < 0) {
                fail_errno(c, r, path);
                return;
        }
        c->reply->type = EXT_MSG_FS_REPLY;
}

static void reply_empty(struct fs_call *c) {
        struct ext_fs_reply rep = {};
        int r = ext_fs_reply_encode(&rep, &c->reply->frame);
        if (r < 0) {
                fail_errno(c, r, c->req->path);
                return;
        }
        c->reply->type = EXT_MSG_FS_REPLY;
}

/* ---- mkdir ---------------------------------------------------------------------- */

/* mkdir, then the exact mode (mkdir's is masked by the umask). */
static int make_dir(const char *path, mode_t mode) {
        if (mkdir(path, 0700) < 0)
                return -errno;
        return chmod(path, mode) < 0 ? -errno : 0;
}

static bool is_dir(const char *path) {
        struct stat st;
        return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void op_mkdir(struct fs_call *c) {
        const char *path = c->req->path;
        mode_t mode = c->req->mode == EXT_UNSET_MODE ? 0755 : (mode_t) (c->req->mode & 07777);
        if (c->req->parents) {
                /* Every missing ancestor, as `mkdir -p` makes them. */
                _cleanup_free_ char *p = strdup(path);
                if (!p) {
                        fail_errno(c, ENOMEM, path);
                        return;
                }
                for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
                        if (s[-1] == '/')
                                continue;
                        *s = '\0';
                        if (mkdir(p, 0755) < 0 && errno != EEXIST) {
                                fail_errno(c, errno, p);
                                return;
                        }
                        if (!is_dir(p)) {
                                fail_errno(c, ENOTDIR, p);
                                return;
                        }
                        *s = '/';
                }
        }
        int r = make_dir(path, mode);
        if (r == -EEXIST && c->req->parents && is_dir(path))
                r = 0;
        if (r < 0) {
                fail_errno(c, r, path);
                return;
        }
        reply_stat(c, path, true);
}

/* ---- remove ---------------------------------------------------------------------- */

struct rm_state {
        dev_t dev;                      /* the file system the tree is on */
        int err;                        /* the first failure */
        char err_path[PATH_MAX];
        char path[PATH_MAX];            /* the directory being emptied (messages) */
};

static void rm_note(struct rm_state *st, int err, const char *name) {
        if (st->err)
                return;
        st->err = err;
        /* Truncated in the message only. */
        if (snprintf(st->err_path, sizeof st->err_path, "%s/%s", st->path, name) < 0)
                st->err_path[0] = '\0';
}

/* Empty the directory @fd (consumed), on as far as it goes: never
 * following a symlink (they are removed as such) and never entering
 * another file system; the first failure is kept. */
static void rm_contents(int fd, struct rm_state *st, unsigned depth) {
        DIR *d = fdopendir(fd);
        if (!d) {
                rm_note(st, errno, ".");
                safe_close(fd);
                return;
        }
        size_t base = strlen(st->path);
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(d);
                if (!de) {
                        if (errno)
                                rm_note(st, errno, ".");
                        break;
                }
                const char *name = de->d_name;
                if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                        continue;
                struct stat s;
                if (fstatat(dirfd(d), name, &s, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno != ENOENT)
                                rm_note(st, errno, name);
                        continue;
                }
                if (S_ISDIR(s.st_mode)) {
                        if (s.st_dev != st->dev) {
                                rm_note(st, EXDEV, name);
                                continue;
                        }
                        if (depth >= FS_REMOVE_DEPTH_MAX) {
                                rm_note(st, ELOOP, name);
                                continue;
                        }
                        int sub = openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub < 0) {
                                rm_note(st, errno, name);
                                continue;
                        }
                        if (snprintf(st->path + base, sizeof st->path - base, "/%s", name) < 0)
                                st->path[base] = '\0'; /* names in messages only */
                        rm_contents(sub, st, depth + 1);
                        st->path[base] = '\0';
                }
                if (unlinkat(dirfd(d), name, S_ISDIR(s.st_mode) ? AT_REMOVEDIR : 0) < 0 && errno != ENOENT)
                        rm_note(st, errno, name);
        }
        closedir(d);
}

static void op_remove(struct fs_call *c) {
        const char *path = c->req->path;
        struct stat st, root;
        if (lstat(path, &st) < 0) {
                if (errno == ENOENT && c->req->force)
                        reply_empty(c);
                else
                        fail_errno(c, errno, path);
                return;
        }
        if (stat("/", &root) == 0 && st.st_dev == root.st_dev && st.st_ino == root.st_ino) {
                ext_reply_fail(c->reply, "EPERM", EPERM, "remove %s: refusing to remove the root directory", path);
                return;
        }
        if (!S_ISDIR(st.st_mode)) {
                if (unlink(path) < 0)
                        fail_errno(c, errno, path);
                else
                        reply_empty(c);
                return;
        }
        if (c->req->recursive) {
                int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0) {
                        fail_errno(c, errno, path);
                        return;
                }
                struct rm_state *rs = calloc(1, sizeof *rs);
                if (!rs) {
                        safe_close(fd);
                        fail_errno(c, ENOMEM, path);
                        return;
                }
                rs->dev = st.st_dev;
                snprintf(rs->path, sizeof rs->path, "%s", path);
                rm_contents(fd, rs, 1);
                if (rs->err) {
                        fail_errno(c, rs->err, rs->err_path);
                        free(rs);
                        return;
                }
                free(rs);
        }
        if (rmdir(path) < 0)
                fail_errno(c, errno, path);
        else
                reply_empty(c);
}

/* ---- the rest --------------------------------------------------------------------- */

static bool absolute(const char *p) { return p && p[0] == '/'; }

static void op_rename(struct fs_call *c) {
        const char *to = c->req->target;
        if (!absolute(to)) {
                ext_reply_fail(c->reply, "EINVAL", EINVAL, "rename %s: the target must be an absolute path",
                               c->req->path);
                return;
        }
        if (rename(c->req->path, to) < 0)
                ext_reply_fail(c->reply, NULL, errno, "rename %s %s: %s", c->req->path, to, strerror(errno));
        else
                reply_empty(c);
}

static void op_chmod(struct fs_call *c) {
        if (c->req->mode == EXT_UNSET_MODE) {
                ext_reply_fail(c->reply, "EINVAL", EINVAL, "chmod %s: no mode given", c->req->path);
                return;
        }
        if (chmod(c->req->path, (mode_t) (c->req->mode & 07777)) < 0)
                fail_errno(c, errno, c->req->path);
        else
                reply_stat(c, c->req->path, true);
}

/* -1 (absent) leaves the id alone; anything else must be a valid id. */
static bool id_arg(int64_t v, uint32_t *ret) {
        if (v == EXT_UNSET_ID) {
                *ret = UINT32_MAX;
                return true;
        }
        if (v < 0 || v >= UINT32_MAX)
                return false;
        *ret = (uint32_t) v;
        return true;
}

static void op_chown(struct fs_call *c) {
        uint32_t uid, gid;
        if (!id_arg(c->req->uid, &uid) || !id_arg(c->req->gid, &gid)) {
                ext_reply_fail(c->reply, "EINVAL", EINVAL, "chown %s: uid or gid out of range", c->req->path);
                return;
        }
        if (lchown(c->req->path, (uid_t) uid, (gid_t) gid) < 0)
                fail_errno(c, errno, c->req->path);
        else
                reply_stat(c, c->req->path, false);
}

static void op_symlink(struct fs_call *c) {
        const char *to = c->req->target;
        if (!to || !*to) {
                ext_reply_fail(c->reply, "EINVAL", EINVAL, "symlink %s: no target given", c->req->path);
                return;
        }
        if (symlink(to, c->req->path) < 0)
                fail_errno(c, errno, c->req->path);
        else
                reply_stat(c, c->req->path, false);
}

static void op_readlink(struct fs_call *c) {
        struct ext_fs_reply rep = {};
        int r = fs_readlink(AT_FDCWD, c->req->path, &rep.target);
        if (r >= 0)
                r = ext_fs_reply_encode(&rep, &c->reply->frame);
        ext_fs_reply_clear(&rep);
        if (r < 0) {
                fail_errno(c, r, c->req->path);
                return;
        }
        c->reply->type = EXT_MSG_FS_REPLY;
}

static struct timespec ts_arg(int64_t ns) {
        if (ns == EXT_UNSET_TIME)
                return (struct timespec) { .tv_nsec = UTIME_OMIT };
        int64_t s = ns / 1000000000, rem = ns % 1000000000;
        if (rem < 0) { /* times before 1970: the remainder is never negative */
                s--;
                rem += 1000000000;
        }
        return (struct timespec) { .tv_sec = (time_t) s, .tv_nsec = (long) rem };
}

static void op_utimes(struct fs_call *c) {
        struct timespec ts[2] = { ts_arg(c->req->atime_ns), ts_arg(c->req->mtime_ns) };
        if (utimensat(AT_FDCWD, c->req->path, ts, 0) < 0)
                fail_errno(c, errno, c->req->path);
        else
                reply_stat(c, c->req->path, true);
}

static void op_stat(struct fs_call *c) { reply_stat(c, c->req->path, true); }
static void op_lstat(struct fs_call *c) { reply_stat(c, c->req->path, false); }

/* mkdir and remove act on the last element itself: "dir/" is "dir", so
 * the mode of `mkdir -p /a/b/` goes to b, and removing "link/" removes
 * the link, never what it points to (where the kernel would follow it). */
static void strip_trailing_slashes(char *p) {
        size_t n = strlen(p);
        while (n > 1 && p[n - 1] == '/')
                p[--n] = '\0';
}

static const struct {
        const char *name;
        void (*run)(struct fs_call *c);
        bool strip;
} fs_ops[] = {
        { "stat", op_stat, false },         { "lstat", op_lstat, false },     { "mkdir", op_mkdir, true },
        { "remove", op_remove, true },      { "rename", op_rename, false },   { "chmod", op_chmod, false },
        { "chown", op_chown, false },       { "symlink", op_symlink, false }, { "readlink", op_readlink, false },
        { "utimes", op_utimes, false },
};

static void fs_work(const uint8_t *payload, uint32_t len, struct ext_reply *ret) {
        struct ext_fs_request req;
        const char *why = NULL;
        int r = ext_fs_request_decode(payload, len, &req, &why);
        if (r < 0) {
                ext_reply_fail(ret, "EPROTO", EPROTO, "FsRequest: %s", why ? why : strerror(-r));
                return;
        }
        struct fs_call c = { .req = &req, .reply = ret };
        size_t i = 0;
        while (i < ARRAY_SIZE(fs_ops) && strcmp(fs_ops[i].name, req.op) != 0)
                i++;
        if (i == ARRAY_SIZE(fs_ops))
                ext_reply_fail(ret, "ENOSYS", ENOSYS, "FsRequest: unknown op \"%.64s\"", req.op);
        else if (!absolute(req.path))
                ext_reply_fail(ret, "EINVAL", EINVAL, "%s: the path must be absolute", req.op);
        else {
                if (fs_ops[i].strip)
                        strip_trailing_slashes(req.path);
                fs_ops[i].run(&c);
        }
        ext_fs_request_clear(&req);
}

int fsops_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len) {
        (void) type;
        return ext_job_start(s, "fs", payload, len, fs_work);
}
