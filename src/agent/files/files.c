/* WriteFile, ReadFile and ListFiles of the exec service.
 *
 * Errors are reported the way the Go reference agent reports them, i.e.
 * as Go's *os.PathError strings: "OP PATH: reason", where reason is the
 * errno text in lower case ("open /nope: no such file or directory").
 *
 * WriteFile never truncates an existing file in place: the content goes to
 * a temporary file in the target's directory, which is renamed over the
 * target only once it is completely written, has its final mode and is on
 * disk. A failure at any step (a full disk, typically) removes the
 * temporary file, and the directories made for it, and leaves the old
 * content untouched. The steps are also exported (files_write_*) for a
 * request that arrives over time (wfstream.c). Because of rename
 * semantics, writing to a path that is a symlink replaces the link itself
 * with a regular file instead of writing through it (a workload's link
 * cannot redirect a host's write); and the file gets a new inode, so hard
 * links to the old file keep the old content. The owner of a replaced
 * regular file is kept when the agent is allowed to chown, and so is its
 * mode unless the request gives one. A device, FIFO, socket or directory
 * in the way is refused, never replaced (WriteFile is not a way to feed a
 * device, and /dev/null replaced by a file breaks the guest). On kernel
 * file systems (/proc, /sys, cgroups), where no temporary file can be
 * made, an existing file is written in place, as the Go agent does.
 *
 * ReadFile follows symlinks (like Go's os.ReadFile) but only reads regular
 * files, and never more than FILES_READ_MAX bytes, even from a file that
 * grows while being read (or that reports a size of 0, as /proc does).
 *
 * ListFiles reports each entry with lstat semantics, sorted by name in
 * byte order, as Go's os.ReadDir + DirEntry.Info() do. */
#include "files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "common/errtext.h"
#include "common/io.h"
#include "common/macro.h"
#include "lib/base64.h"
#include "lib/huge.h"
#include "lib/msg-internal.h"
#include "vsock/error.h"
#include "vsock/msg.h"

/* Sets *err to "OP PATH: reason". Returns 0, or -ENOMEM. */
static int path_error(char **err, const char *op, const char *path, int errnum) {
        char reason[128];
        if (asprintf(err, "%s %s: %s", op, path, errno_text(errnum, reason, sizeof(reason))) < 0) {
                *err = NULL;
                return -ENOMEM;
        }
        return 0;
}

static int error_fmt(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int error_fmt(char **err, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = vasprintf(err, fmt, ap);
        va_end(ap);
        if (r < 0) {
                *err = NULL;
                return -ENOMEM;
        }
        return 0;
}

/* Decoder failures become the reply's error; only -ENOMEM is fatal. */
static int decode_error(char **err, int r, const char *what, const char *why) {
        if (r == -ENOMEM)
                return r;
        return error_fmt(err, "invalid %s request: %s", what, why ? why : "malformed JSON");
}

/* ---- WriteFile ---------------------------------------------------------- */

/* mkdir -p of @dir (absolute). Existing components, including symlinks to
 * directories, are fine, like Go's os.MkdirAll. The outermost directory it
 * makes is recorded in @w (all others are inside it), for
 * files_write_abort(), however deep the path. Returns 0, -ENOMEM, or
 * -errno with *err set. */
static int mkdir_parents(struct files_writer *w, const char *dir, char **err) {
        struct stat st;
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
                return 0;

        _cleanup_free_ char *p = strdup(dir);
        if (!p)
                return -ENOMEM;
        size_t n = strlen(p);
        for (size_t i = 1; i <= n; i++) {
                if (p[i] != '/' && p[i] != '\0')
                        continue;
                if (p[i - 1] == '/')
                        continue; /* "//" */
                char saved = p[i];
                p[i] = '\0';
                int e = 0;
                if (mkdir(p, 0755) < 0) {
                        e = errno;
                        /* As Go's MkdirAll: an existing non-directory is
                         * reported by its own name. */
                        if (e == EEXIST)
                                e = stat(p, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
                } else if (w->created_len == 0)
                        w->created_len = i;
                if (e != 0) {
                        int r = path_error(err, "mkdir", p, e);
                        return r < 0 ? r : -e;
                }
                p[i] = saved;
        }
        if (stat(dir, &st) < 0) {
                int e = errno;
                int r = path_error(err, "mkdir", dir, e);
                return r < 0 ? r : -e;
        }
        if (!S_ISDIR(st.st_mode)) {
                int r = path_error(err, "mkdir", dir, ENOTDIR);
                return r < 0 ? r : -ENOTDIR;
        }
        return 0;
}

int files_mkdirs(struct files_writer *w, const char *dir, char **err) {
        if (!dir || dir[0] != '/')
                return w->error = EINVAL, error_fmt(err, "mkdir: path must be absolute: \"%s\"", dir ? dir : "");
        if (!w->dir && !(w->dir = strdup(dir)))
                return -ENOMEM;
        int r = mkdir_parents(w, dir, err);
        if (r < 0 && r != -ENOMEM)
                w->error = -r;
        return r == -ENOMEM ? r : 0;
}

void files_writer_init(struct files_writer *w) { *w = (struct files_writer) { .fd = -1 }; }

/* Kernel file systems: their files can be written, nothing created. */
static bool kernel_fs(const char *dir) {
        struct statfs sf;
        if (statfs(dir, &sf) < 0)
                return false;
        switch ((unsigned long) sf.f_type) {
        case PROC_SUPER_MAGIC:
        case SYSFS_MAGIC:
        case CGROUP_SUPER_MAGIC:
        case CGROUP2_SUPER_MAGIC:
        case DEBUGFS_MAGIC:
        case TRACEFS_MAGIC:
        case SECURITYFS_MAGIC:
                return true;
        default:
                return false;
        }
}

static const char *file_kind(mode_t m) {
        return S_ISCHR(m) ? "character device" : S_ISBLK(m) ? "block device" : S_ISFIFO(m) ? "named pipe"
             : S_ISSOCK(m) ? "socket" : "special file";
}

/* What is at @path may be replaced: nothing, a regular file or a link.
 * Returns 1 (an existing regular file), 0, -ENOMEM, or -errno with *err. */
static int check_target(const char *path, char **err) {
        struct stat st;
        if (lstat(path, &st) < 0)
                return 0; /* missing, or a parent's trouble: mkdir says */
        if (S_ISREG(st.st_mode))
                return 1;
        if (S_ISLNK(st.st_mode))
                return 0;
        if (S_ISDIR(st.st_mode)) {
                int r = path_error(err, "open", path, EISDIR);
                return r < 0 ? r : -EISDIR;
        }
        int r = error_fmt(err, "open %s: not a regular file (%s): not replaced", path, file_kind(st.st_mode));
        return r < 0 ? r : -EEXIST;
}

int files_write_begin(struct files_writer *w, const char *path, char **err) {
        return files_write_begin_opts(w, path, NULL, err);
}

/* Open (or continue) the named temporary file @o->partial in the target's
 * directory @w->dir. */
static int open_partial(struct files_writer *w, const struct files_write_opts *o, char **err) {
        if (asprintf(&w->tmp, "%s/%s", strcmp(w->dir, "/") == 0 ? "" : w->dir, o->partial) < 0) {
                w->tmp = NULL;
                return -ENOMEM;
        }
        int flags = O_RDWR | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC | (o->resume ? 0 : O_TRUNC);
        w->fd = open(w->tmp, flags, 0600);
        struct stat st;
        if (w->fd >= 0 && fstat(w->fd, &st) < 0)
                w->fd = safe_close(w->fd);
        if (w->fd >= 0 && !S_ISREG(st.st_mode)) {
                w->fd = safe_close(w->fd);
                errno = EINVAL;
        }
        if (w->fd < 0) {
                int e = errno;
                free(w->tmp); /* not ours to remove */
                w->tmp = NULL;
                return w->error = e, path_error(err, "open", w->path, e);
        }
        /* Stale: older than the caller's bound, it starts again. */
        if (o->resume && o->keep_s > 0 && st.st_mtim.tv_sec + (time_t) o->keep_s < time(NULL) &&
            ftruncate(w->fd, 0) < 0)
                return w->error = errno, path_error(err, "truncate", w->tmp, w->error);
        if (lseek(w->fd, 0, SEEK_END) < 0)
                return w->error = errno, path_error(err, "seek", w->tmp, w->error);
        return 0;
}

int files_write_begin_opts(struct files_writer *w, const char *path, const struct files_write_opts *o, char **err) {
        if (!path || path[0] != '/')
                return w->error = EINVAL, error_fmt(err, "write_file: path must be absolute: \"%s\"", path ? path : "");
        size_t plen = strlen(path);
        if (path[plen - 1] == '/')
                return w->error = EISDIR, path_error(err, "open", path, EISDIR);

        w->path = strdup(path);
        const char *slash = strrchr(path, '/');
        w->dir = slash == path ? strdup("/") : strndup(path, (size_t) (slash - path));
        if (!w->path || !w->dir)
                return -ENOMEM;
        int r = check_target(path, err);
        if (r < 0)
                return w->error = -r, r == -ENOMEM ? r : 0;
        if (r == 1 && kernel_fs(w->dir)) {
                if (o && o->no_in_place)
                        return w->error = EINVAL, error_fmt(err, "open %s: a kernel file system: no temporary file can be made", path);
                /* No temporary file there: the file itself, as is. */
                w->fd = open(path, O_WRONLY | O_TRUNC | O_NOCTTY | O_CLOEXEC);
                if (w->fd < 0)
                        return w->error = errno, path_error(err, "open", path, w->error);
                w->in_place = true;
                return 0;
        }
        r = mkdir_parents(w, w->dir, err);
        if (r == -ENOMEM || *err)
                return w->error = -r, r == -ENOMEM ? r : 0;
        if (o && o->partial)
                return open_partial(w, o, err);

        if (asprintf(&w->tmp, "%s/.vsock-agent-write-XXXXXX", slash == path ? "" : w->dir) < 0) {
                w->tmp = NULL;
                return -ENOMEM;
        }
        /* mkostemp: O_CREAT|O_EXCL with a unique name, mode 0600 until the
         * final fchmod, so nobody reads a half-written file meanwhile. */
        w->fd = mkostemp(w->tmp, O_CLOEXEC);
        if (w->fd < 0) {
                int e = errno;
                free(w->tmp); /* nothing was created */
                w->tmp = NULL;
                return w->error = e, path_error(err, "open", path, e);
        }
        return 0;
}

int files_write_data(struct files_writer *w, const void *data, size_t n, char **err) {
        if (n == 0)
                return 0;
        int r = io_write_all(w->fd, data, n, 0, -1);
        if (r < 0)
                w->error = -r;
        return r < 0 ? path_error(err, "write", w->path, -r) : 0;
}

int files_write_commit(struct files_writer *w, uint32_t go_mode, char **err) {
        struct files_attrs a = {
                .mode = go_mode == 0 ? 0644 : vsock_go_mode_to_mode_t(go_mode) & 07777,
                .keep_mode = go_mode == 0,
                .keep_owner = true,
                .uid = -1,
                .gid = -1,
        };
        return files_write_commit_attrs(w, &a, err);
}

int files_write_commit_attrs(struct files_writer *w, const struct files_attrs *a, char **err) {
        struct stat st;
        mode_t mode = a->mode & 07777;

        if (w->in_place) {
                /* Mode and owner are the kernel's; a kernel file has no
                 * data to sync. Errors came with the writes. */
                w->fd = safe_close(w->fd);
                return 0;
        }
        /* The target may have changed since begin: check again. */
        int r = check_target(w->path, err);
        if (r < 0)
                return w->error = -r, r == -ENOMEM ? r : 0;
        /* Keep the owner of a file we replace (best effort: an unprivileged
         * agent cannot chown), and without a mode in the request its mode.
         * chown clears setuid bits, so it comes before fchmod. */
        if (r == 1 && (a->keep_owner || a->keep_mode) && lstat(w->path, &st) == 0 && S_ISREG(st.st_mode)) {
                if (a->keep_owner)
                        (void) fchown(w->fd, st.st_uid, st.st_gid);
                if (a->keep_mode)
                        mode = st.st_mode & 07777;
        }
        if ((a->uid >= 0 || a->gid >= 0) && fchown(w->fd, a->uid >= 0 ? (uid_t) a->uid : (uid_t) -1,
                                                   a->gid >= 0 ? (gid_t) a->gid : (gid_t) -1) < 0)
                return w->error = errno, path_error(err, "chown", w->path, w->error);

        /* fchmod is not subject to the umask, so the mode is exact,
         * setuid/setgid/sticky included. */
        if (fchmod(w->fd, mode) < 0)
                return w->error = errno, path_error(err, "chmod", w->path, w->error);
        if (a->has_mtime) {
                const struct timespec ts[2] = { { .tv_nsec = UTIME_NOW }, a->mtime };
                if (futimens(w->fd, ts) < 0)
                        return w->error = errno, path_error(err, "utimes", w->path, w->error);
        }
        if (fsync(w->fd) < 0)
                return w->error = errno, path_error(err, "sync", w->path, w->error);
        w->fd = safe_close(w->fd);

        if (rename(w->tmp, w->path) < 0)
                return w->error = errno, path_error(err, "rename", w->path, w->error);
        free(w->tmp);
        w->tmp = NULL;
        /* The directories are the file's now. */
        w->created_len = 0;

        /* Make the rename itself durable; the write already succeeded, so a
         * failure here is not reported. */
        _cleanup_close_ int dfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0)
                (void) fsync(dfd);
        return 0;
}

void files_write_keep(struct files_writer *w) {
        if (w->fd >= 0)
                (void) fsync(w->fd);
        w->fd = safe_close(w->fd);
        free(w->tmp);
        w->tmp = NULL;
        w->created_len = 0;
        files_writer_clear(w);
}

/* rmdir the directories begin made, innermost first; one that gained
 * entries meanwhile stays, and so do those around it. */
static void remove_created(struct files_writer *w) {
        if (w->created_len == 0 || !w->dir)
                return;
        _cleanup_free_ char *p = strdup(w->dir);
        if (!p)
                return;
        size_t n = strlen(p);
        while (n >= w->created_len && n > 1) {
                p[n] = '\0';
                (void) rmdir(p);
                while (n > 0 && p[n - 1] != '/')
                        n--;
                while (n > 1 && p[n - 1] == '/')
                        n--;
        }
        w->created_len = 0;
}

void files_write_abort(struct files_writer *w) {
        /* Unlink before close: once the fd is gone, so is the name (a
         * watcher counting fds can rely on it). */
        if (w->tmp)
                (void) unlink(w->tmp);
        w->fd = safe_close(w->fd);
        free(w->tmp);
        w->tmp = NULL;
        /* A failed write leaves nothing behind: not even the directories
         * it made. */
        remove_created(w);
        files_writer_clear(w);
}

void files_writer_clear(struct files_writer *w) {
        if (w->fd >= 0 || w->tmp || w->created_len) {
                files_write_abort(w);
                return;
        }
        free(w->path);
        free(w->dir);
        files_writer_init(w);
}

static int write_file(void *payload, size_t len, char **err) {
        _cleanup_(vsock_write_file_request_clear) struct vsock_write_file_request req = {};
        _cleanup_(files_writer_clear) struct files_writer w;
        const char *why = NULL;
        const uint8_t *content;
        size_t content_len;

        files_writer_init(&w);
        int r = msg_decode_write_file_inplace(payload, len, &req, &content, &content_len, &why);
        if (r < 0)
                return decode_error(err, r, "write_file", why);
        r = files_write_begin(&w, req.path, err);
        if (r >= 0 && !*err)
                r = files_write_data(&w, content, content_len, err);
        if (r >= 0 && !*err)
                r = files_write_commit(&w, req.mode, err);
        return r; /* on failure, the cleanup undoes it all */
}

/* ---- ReadFile ----------------------------------------------------------- */

/* The file is encoded into the reply as it is read, in pieces of a
 * multiple of 3 bytes (so the pieces' base64 joins up): no buffer of the
 * whole file besides the reply itself. */
#define READ_PIECE (3u * 64 * 1024)

/* ReadFile's reply, {"content":"BASE64"} ({} when empty), written to @out
 * here; on failure @out is as it was and *err says why. */
struct piece_map {
        uint8_t *p;
};

/* The piece buffer is mapped, not malloc'd: freed, it goes back to the
 * kernel at once instead of staying in the worker thread's arena. */
static void piece_unmap(struct piece_map *m) {
        if (m->p)
                (void) munmap(m->p, READ_PIECE);
}

static int read_file(const void *payload, size_t len, struct buf *out, char **err) {
        _cleanup_(vsock_path_request_clear) struct vsock_path_request req = {};
        _cleanup_close_ int fd = -1;
        _cleanup_(piece_unmap) struct piece_map pm = { NULL };
        const char *why = NULL;
        struct stat st;
        int r;

        r = vsock_path_request_decode(payload, len, &req, &why);
        if (r < 0)
                return decode_error(err, r, "read_file", why);
        const char *path = req.path ? req.path : "";

        /* O_NONBLOCK: opening a FIFO must not wait for a writer (it is
         * refused below anyway); O_NOCTTY: a tty never becomes ours. */
        fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
                return path_error(err, "open", path, errno);
        if (fstat(fd, &st) < 0)
                return path_error(err, "stat", path, errno);
        if (S_ISDIR(st.st_mode))
                return path_error(err, "read", path, EISDIR);
        if (!S_ISREG(st.st_mode))
                return error_fmt(err, "read_file %s: not a regular file", path);
        if (st.st_size > (off_t) FILES_READ_MAX)
                return error_fmt(err, "read_file exceeds %u bytes: %s", FILES_READ_MAX, path);

        void *m = mmap(NULL, READ_PIECE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
                return -ENOMEM;
        uint8_t *piece = pm.p = m;
        size_t mark = buf_size(out);
        {
                /* The reply's room in one go (on huge pages if big): growing
                 * it piece by piece would leave the worker's heap
                 * fragmented. A file that grows meanwhile still fits. */
                size_t need = base64_encoded_len((size_t) st.st_size) + 32;
                uint8_t *tail;
                if (buf_reserve(out, need, &tail) >= 0)
                        huge_advise(tail, need);
        }
        r = buf_append_str(out, "{\"content\":\"");
        /* Read to EOF, whatever the size said (/proc reports 0), but never
         * past the limit, even for a file that grows meanwhile. */
        size_t total = 0, have = 0;
        bool eof = false;
        while (r >= 0 && !eof) {
                ssize_t k = io_read_once(fd, piece + have, READ_PIECE - have);
                if (k < 0) {
                        (void) buf_truncate(out, mark);
                        return path_error(err, "read", path, (int) -k);
                }
                eof = k == 0;
                have += (size_t) k;
                total += (size_t) k;
                if (total > FILES_READ_MAX) {
                        (void) buf_truncate(out, mark);
                        return error_fmt(err, "read_file exceeds %u bytes: %s", FILES_READ_MAX, path);
                }
                /* Whole triplets now; a remainder waits for more, or EOF. */
                size_t whole = eof ? have : have / 3 * 3;
                if (whole < READ_PIECE / 2 && !eof)
                        continue;
                r = base64_encode_append(out, piece, whole);
                memmove(piece, piece + whole, have - whole);
                have -= whole;
        }
        if (r >= 0)
                r = buf_append_str(out, "\"}");
        if (r < 0) {
                (void) buf_truncate(out, mark);
                return r;
        }
        if (total == 0) {
                /* Go omits an empty content. */
                (void) buf_truncate(out, mark);
                return buf_append_str(out, "{}");
        }
        return 0;
}

/* ---- ListFiles ---------------------------------------------------------- */

static int file_info_cmp(const void *a, const void *b) {
        return strcmp(((const struct vsock_file_info *) a)->name, ((const struct vsock_file_info *) b)->name);
}

static inline void closedirp(DIR **d) {
        if (*d)
                (void) closedir(*d);
}

/* Smallest encoding of one FileInfo: {"name":"","size":0,"mode":0,"is_dir":false}
 * plus a comma. */
#define FILE_INFO_MIN_JSON 45u

static int list_files(const void *payload, size_t len, struct vsock_file_response *resp, size_t room,
                      char **err) {
        _cleanup_(vsock_path_request_clear) struct vsock_path_request req = {};
        _cleanup_(closedirp) DIR *d = NULL;
        _cleanup_close_ int fd = -1;
        const char *why = NULL;
        struct stat st;
        size_t need = 0;
        int r;

        r = vsock_path_request_decode(payload, len, &req, &why);
        if (r < 0)
                return decode_error(err, r, "list_files", why);
        const char *path = req.path ? req.path : "";

        /* O_DIRECTORY: never open a device or FIFO just to list it. */
        fd = open(path, O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) {
                int e = errno;
                /* Go opens any file and fails in getdents; a path component
                 * that is not a directory fails in open, as here. */
                if (e == ENOTDIR && stat(path, &st) == 0)
                        return path_error(err, "readdirent", path, ENOTDIR);
                return path_error(err, "open", path, e);
        }
        d = fdopendir(fd);
        if (!d)
                return errno == ENOMEM ? -ENOMEM : path_error(err, "open", path, errno);
        fd = -1; /* owned by d now */

        for (;;) {
                errno = 0;
                struct dirent *de = readdir(d);
                if (!de) {
                        if (errno != 0)
                                return path_error(err, "readdirent", path, errno);
                        break;
                }
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno == ENOENT)
                                continue; /* removed since readdir */
                        int e = errno;
                        _cleanup_free_ char *full = NULL;
                        if (asprintf(&full, "%s/%s", path, de->d_name) < 0)
                                return -ENOMEM;
                        return path_error(err, "lstat", full, e);
                }
                /* A huge directory fails as soon as its reply cannot fit
                 * the caller's cap, not after collecting all of it. */
                need += FILE_INFO_MIN_JSON + strlen(de->d_name);
                if (need > room)
                        return -ENOBUFS;
                if (resp->n_files % 64 == 0) {
                        struct vsock_file_info *nf =
                                reallocarray(resp->files, resp->n_files + 64, sizeof(struct vsock_file_info));
                        if (!nf)
                                return -ENOMEM;
                        resp->files = nf;
                }
                char *name = strdup(de->d_name);
                if (!name)
                        return -ENOMEM;
                resp->files[resp->n_files++] = (struct vsock_file_info) {
                        .name = name,
                        .size = (int64_t) st.st_size,
                        .mode = vsock_go_mode_from_mode_t(st.st_mode),
                        .is_dir = S_ISDIR(st.st_mode),
                };
        }

        if (resp->n_files > 1)
                qsort(resp->files, resp->n_files, sizeof(struct vsock_file_info), file_info_cmp);
        return 0;
}

/* ListFiles' reply, at most @limit bytes of JSON (the estimate in
 * list_files() fails a huge directory early; the encoding is checked
 * exactly): past it, an error that says so. */
static int list_reply(const void *payload, size_t len, size_t limit, struct buf *out) {
        _cleanup_(vsock_file_response_clear) struct vsock_file_response resp = {};
        _cleanup_free_ char *err = NULL;
        size_t mark = buf_size(out);
        int r = list_files(payload, len, &resp, limit, &err);
        if (r >= 0 && !err) {
                r = msg_encode_file_response(&resp, out);
                if (r >= 0 && buf_size(out) - mark <= limit)
                        return 0;
                (void) buf_truncate(out, mark);
        }
        if (r == -ENOBUFS || (r >= 0 && !err)) {
                _cleanup_(vsock_path_request_clear) struct vsock_path_request req = {};
                const char *why = NULL;
                (void) vsock_path_request_decode(payload, len, &req, &why);
                bool mib = limit % (1u << 20) == 0;
                r = error_fmt(&err, "list_files %s: too many entries: the listing exceeds the reply limit of %zu %s",
                              req.path ? req.path : "", mib ? limit >> 20 : limit, mib ? "MiB" : "bytes");
        }
        if (r < 0)
                return r;
        vsock_file_response_clear(&resp);
        resp.error = TAKE_PTR(err);
        return msg_encode_file_response(&resp, out);
}

/* ---- entry point -------------------------------------------------------- */

int files_serve(uint8_t type, void *payload, size_t len, struct buf *out) {
        _cleanup_(vsock_file_response_clear) struct vsock_file_response resp = {};
        _cleanup_free_ char *err = NULL;
        int r;

        switch (type) {
        case VSOCK_MSG_WRITE_FILE:
                r = write_file(payload, len, &err);
                break;
        case VSOCK_MSG_READ_FILE:
                r = read_file(payload, len, out, &err);
                if (r >= 0 && !err)
                        return 0; /* the reply is written */
                break;
        case VSOCK_MSG_LIST_FILES: {
                return list_reply(payload, len, MIN(buf_limit_left(out), (size_t) FILES_LIST_MAX), out);
        }
        default:
                r = error_fmt(&err, "unsupported file operation (message type %u)", type);
        }
        if (r < 0 && !err)
                return r;

        if (err) {
                /* A failed operation replies with the error alone. */
                vsock_file_response_clear(&resp);
                resp.error = TAKE_PTR(err);
        }
        return msg_encode_file_response(&resp, out);
}

int files_write_reply(struct buf *out, const char *err) {
        struct vsock_file_response resp = { .error = (char *) err };
        return msg_encode_file_response(&resp, out);
}
