/* ListDir (PROTOCOL.md 2.4): a directory one page at a time, on a worker
 * job. The agent keeps nothing between pages: the cursor names the
 * directory (device, inode and birth time: a directory made anew may get
 * the inode number of the one it replaces) and the kernel's position
 * cookie after the page's last entry, so a cursor for a replaced directory
 * is ESTALE and a forged one can only list the directory it names, from
 * some position. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent/files/dircursor.h"
#include "agent/serve/ext.h"
#include "agent/files/fsops.h"
#include "agent/exec/user.h"
#include "common/buf.h"
#include "common/macro.h"
#include "lib/ext_msg.h"

/* Room for the reply around its entries: {"entries":[],"next":"<cursor>"}. */
#define LIST_REPLY_OVERHEAD 256u
#define LIST_DENTS_BUF (64u * 1024)

/* The identity a cursor carries, of the open directory @fd. */
static int dir_identity(int fd, struct dir_cursor *ret) {
        struct statx sx;
        if (statx(fd, "", AT_EMPTY_PATH, STATX_INO | STATX_BTIME, &sx) < 0)
                return -errno;
        ret->dev = (uint64_t) makedev(sx.stx_dev_major, sx.stx_dev_minor);
        ret->ino = sx.stx_ino;
        ret->birth = (sx.stx_mask & STATX_BTIME)
                             ? (uint64_t) sx.stx_btime.tv_sec * 1000000000 + sx.stx_btime.tv_nsec
                             : 0;
        return 0;
}

struct page {
        struct ext_list_reply rep;
        size_t cap;
        size_t bytes;                   /* encoded size of the entries so far */
        struct buf scratch;             /* measures one entry */
};

/* Append @e (taken) if it fits the byte bound: 1 when added, 0 when the
 * page is full, -ENOMEM. */
static int page_add(struct page *p, struct ext_stat *e) {
        buf_reset(&p->scratch);
        int r = ext_stat_encode(e, &p->scratch);
        if (r < 0)
                return r;
        size_t need = buf_size(&p->scratch) + 1; /* and a comma */
        if (p->rep.n_entries > 0 && p->bytes + need + LIST_REPLY_OVERHEAD > EXT_LIMIT_LIST_REPLY_MAX)
                return 0;
        if (p->rep.n_entries == p->cap) {
                size_t ncap = p->cap ? p->cap * 2 : 64;
                struct ext_stat *nv = reallocarray(p->rep.entries, ncap, sizeof *nv);
                if (!nv)
                        return -ENOMEM;
                p->rep.entries = nv;
                p->cap = ncap;
        }
        p->rep.entries[p->rep.n_entries++] = *e;
        *e = (struct ext_stat) {};
        p->bytes += need;
        return 1;
}

/* One entry of directory @fd: 1 made, 0 gone since (skip), < 0 error. */
static int entry_make(int fd, const char *name, const struct user_names *names, struct ext_stat *ret) {
        struct stat st;
        if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        _cleanup_free_ char *target = NULL;
        if (S_ISLNK(st.st_mode))
                (void) fs_readlink(fd, name, &target);
        int r = fs_stat_fill(&st, name, target, names, ret);
        if (r < 0) {
                ext_stat_clear(ret);
                return r;
        }
        return 1;
}

static void send_page(struct page *p, struct ext_reply *ret, const char *path) {
        int r = ext_list_reply_encode(&p->rep, &ret->frame);
        if (r < 0)
                ext_reply_fail(ret, NULL, r, "list %s: %s", path, strerror(-r));
        else
                ret->type = EXT_MSG_LIST_REPLY;
}

/* A path that is not a directory: one page with its own entry. */
static void list_one(const char *path, const struct user_names *names, struct page *p, struct ext_reply *ret) {
        char nb[NAME_MAX + 1];
        const char *slash = strrchr(path, '/');
        snprintf(nb, sizeof nb, "%s", slash && slash[1] ? slash + 1 : path);
        struct ext_stat e = {};
        int r = entry_make(AT_FDCWD, path, names, &e);
        if (r == 0)
                r = -ENOENT;
        if (r > 0) {
                free(e.name);
                e.name = strdup(nb);
                r = e.name ? page_add(p, &e) : -ENOMEM;
        }
        ext_stat_clear(&e);
        if (r < 0)
                ext_reply_fail(ret, NULL, r, "list %s: %s", path, strerror(-r));
        else
                send_page(p, ret, path);
}

static void list_page(int fd, const char *path, const struct dir_cursor *id, int64_t from, uint32_t limit,
                      const struct user_names *names, struct page *p, struct ext_reply *ret) {
        if (from != 0 && lseek(fd, from, SEEK_SET) < 0) {
                ext_reply_fail(ret, NULL, errno, "list %s: bad cursor: %s", path, strerror(errno));
                return;
        }
        _cleanup_free_ uint8_t *dents = malloc(LIST_DENTS_BUF);
        if (!dents) {
                ext_reply_fail(ret, NULL, ENOMEM, "list %s: agent out of memory", path);
                return;
        }
        int64_t pos = from;             /* after the last entry taken or skipped */
        bool more = false;
        while (!more) {
                ssize_t n = getdents64(fd, dents, LIST_DENTS_BUF);
                if (n < 0) {
                        ext_reply_fail(ret, NULL, errno, "list %s: %s", path, strerror(errno));
                        return;
                }
                if (n == 0)
                        break;
                for (ssize_t at = 0; at < n && !more;) {
                        struct dirent64 *de = (struct dirent64 *) (dents + at);
                        at += de->d_reclen;
                        const char *name = de->d_name;
                        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
                                pos = de->d_off;
                                continue;
                        }
                        if (p->rep.n_entries >= limit) {
                                more = true;
                                break;
                        }
                        struct ext_stat e = {};
                        int r = entry_make(fd, name, names, &e);
                        if (r > 0)
                                r = page_add(p, &e);
                        else if (r == 0)
                                r = 1; /* removed since: skipped */
                        ext_stat_clear(&e);
                        if (r < 0) {
                                ext_reply_fail(ret, NULL, r, "list %s/%s: %s", path, name, strerror(-r));
                                return;
                        }
                        if (r == 0) {
                                more = true; /* the byte bound: this entry starts the next page */
                                break;
                        }
                        pos = de->d_off;
                }
        }
        char next[DIR_CURSOR_MAX];
        if (more) {
                struct dir_cursor c = *id;
                c.off = pos;
                dir_cursor_format(&c, next);
                p->rep.next = next;
        }
        send_page(p, ret, path);
        p->rep.next = NULL; /* not ours to free */
}

static void list_work(const uint8_t *payload, uint32_t len, struct ext_reply *ret) {
        struct ext_list_dir req;
        const char *why = NULL;
        int r = ext_list_dir_decode(payload, len, &req, &why);
        if (r < 0) {
                ext_reply_fail(ret, "EPROTO", EPROTO, "ListDir: %s", why ? why : strerror(-r));
                return;
        }
        const char *path = req.path;
        struct dir_cursor cur = {};
        uint32_t limit = req.limit == 0 ? EXT_LIMIT_LIST_PAGE_MAX : (uint32_t) MIN(req.limit, EXT_LIMIT_LIST_PAGE_MAX);
        struct user_names *names = NULL;
        struct page p = { .scratch = BUF_INIT(0) };
        int fd = -1;
        if (path[0] != '/')
                ext_reply_fail(ret, "EINVAL", EINVAL, "list %s: the path must be absolute", path);
        else if (req.limit < 0)
                ext_reply_fail(ret, "EINVAL", EINVAL, "list %s: negative limit", path);
        else if (req.cursor && dir_cursor_parse(req.cursor, &cur) < 0)
                ext_reply_fail(ret, "EINVAL", EINVAL, "list %s: malformed cursor", path);
        else {
                (void) user_names_load(NULL, NULL, &names); /* no names without memory */
                fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                struct dir_cursor id = {};
                int e = fd < 0 ? errno : -dir_identity(fd, &id);
                if (e == ENOTDIR && !req.cursor)
                        list_one(path, names, &p, ret);
                else if (e)
                        ext_reply_fail(ret, NULL, e, "list %s: %s", path, strerror(e));
                else if (req.cursor && (id.dev != cur.dev || id.ino != cur.ino || id.birth != cur.birth))
                        ext_reply_fail(ret, "ESTALE", ESTALE, "list %s: the directory changed since the cursor", path);
                else
                        list_page(fd, path, &id, cur.off, limit, names, &p, ret);
        }
        safe_close(fd);
        user_names_free(names);
        ext_list_reply_clear(&p.rep);
        buf_free(&p.scratch);
        ext_list_dir_clear(&req);
}

int listdir_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len) {
        (void) type;
        return ext_job_start(s, "list", payload, len, list_work);
}
