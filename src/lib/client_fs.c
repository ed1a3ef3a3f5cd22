/* File-system operations and paged listing (PROTOCOL.md 2.4): FsRequest
 * and ListDir over client_ext_send (Hello pipelined on a fresh
 * connection). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client-internal.h"
#include "common/macro.h"
#include "ext_msg.h"
#include "vsock/error.h"

static const char *const fs_op_names[] = {
        [VSOCK_FS_STAT] = "stat",       [VSOCK_FS_LSTAT] = "lstat",     [VSOCK_FS_MKDIR] = "mkdir",
        [VSOCK_FS_REMOVE] = "remove",   [VSOCK_FS_RENAME] = "rename",   [VSOCK_FS_CHMOD] = "chmod",
        [VSOCK_FS_CHOWN] = "chown",     [VSOCK_FS_SYMLINK] = "symlink", [VSOCK_FS_READLINK] = "readlink",
        [VSOCK_FS_UTIMES] = "utimes",
};

_public_ void vsock_stat_clear(struct vsock_stat *st) {
        if (!st)
                return;
        free(st->name);
        free(st->user);
        free(st->group);
        free(st->target);
        *st = (struct vsock_stat) {};
}

_public_ void vsock_fs_result_clear(struct vsock_fs_result *r) {
        if (!r)
                return;
        vsock_stat_clear(&r->stat);
        free(r->target);
        *r = (struct vsock_fs_result) {};
}

/* Move @e's contents into @ret (e is left empty). */
static void stat_take(struct ext_stat *e, struct vsock_stat *ret) {
        *ret = (struct vsock_stat) {
                .name = TAKE_PTR(e->name),
                .size = e->size,
                .mode = (mode_t) e->mode,
                .uid = e->uid,
                .gid = e->gid,
                .user = TAKE_PTR(e->user),
                .group = TAKE_PTR(e->group),
                .nlink = e->nlink,
                .ino = e->ino,
                .dev = e->dev,
                .rdev = e->rdev,
                .mtime_ns = e->mtime_ns,
                .atime_ns = e->atime_ns,
                .ctime_ns = e->ctime_ns,
                .target = TAKE_PTR(e->target),
        };
}

static int fs_encode(const struct vsock_fs_request *req, struct ext_fs_request *ret) {
        if ((unsigned) req->op >= ARRAY_SIZE(fs_op_names) || !req->path)
                return -EINVAL;
        if (req->mode < -1 || (req->uid < -1 || req->uid > (int64_t) UINT32_MAX - 1) ||
            (req->gid < -1 || req->gid > (int64_t) UINT32_MAX - 1))
                return -EINVAL;
        *ret = (struct ext_fs_request) {
                .op = (char *) fs_op_names[req->op],
                .path = (char *) req->path,
                .target = (char *) req->target,
                .mode = req->mode < 0 ? EXT_UNSET_MODE : (uint32_t) req->mode,
                .uid = req->uid < 0 ? EXT_UNSET_ID : req->uid,
                .gid = req->gid < 0 ? EXT_UNSET_ID : req->gid,
                .atime_ns = req->atime_ns == VSOCK_TIME_OMIT ? EXT_UNSET_TIME : req->atime_ns,
                .mtime_ns = req->mtime_ns == VSOCK_TIME_OMIT ? EXT_UNSET_TIME : req->mtime_ns,
                .parents = req->parents,
                .recursive = req->recursive,
                .force = req->force,
        };
        return 0;
}

_public_ int vsock_fs(vsock_conn *c, const struct vsock_fs_request *req, struct vsock_call *call,
                      struct vsock_fs_result *ret) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call)
                return -EINVAL;
        struct ext_fs_request wire;
        if (!c || !req || !CLIENT_SIZE_KNOWN(req) || fs_encode(req, &wire) < 0)
                return -EINVAL;
        struct ext_fs_reply rep;
        int r = client_ext_call(c, VSOCK_FEATURE_FS, EXT_MSG_FS_REQUEST, &ext_fs_request_shape, &wire,
                                EXT_MSG_FS_REPLY, &ext_fs_reply_shape, &rep, call);
        if (r < 0)
                return r;
        if (ret) {
                *ret = (struct vsock_fs_result) { .has_stat = rep.has_stat, .target = TAKE_PTR(rep.target) };
                if (rep.has_stat)
                        stat_take(&rep.stat, &ret->stat);
        }
        ext_fs_reply_clear(&rep);
        return 0;
}

_public_ int vsock_fs_at(const char *addr, const struct vsock_fs_request *req, struct vsock_call *call,
                         struct vsock_fs_result *ret) {
        struct vsock_call fallback;
        vsock_conn *c = NULL;
        int r = client_ext_dial(addr, &call, &fallback, &c);
        if (r < 0)
                return r;
        r = vsock_fs(c, req, call, ret);
        (void) vsock_conn_close(c);
        return r;
}

_public_ int vsock_stat(vsock_conn *c, const char *path, bool follow, struct vsock_call *call,
                        struct vsock_stat *ret) {
        struct vsock_fs_request req = VSOCK_FS_REQUEST_INIT(follow ? VSOCK_FS_STAT : VSOCK_FS_LSTAT, path);
        struct vsock_fs_result res;
        if (!ret)
                return -EINVAL;
        int r = vsock_fs(c, &req, call, &res);
        if (r < 0)
                return r;
        if (!res.has_stat) {
                vsock_fs_result_clear(&res);
                return VSOCK_ERR(VSOCK_E_PROTOCOL, EPROTO);
        }
        *ret = res.stat;
        res.stat = (struct vsock_stat) {};
        vsock_fs_result_clear(&res);
        return 0;
}

_public_ int vsock_stat_at(const char *addr, const char *path, bool follow, struct vsock_call *call,
                           struct vsock_stat *ret) {
        struct vsock_call fallback;
        vsock_conn *c = NULL;
        int r = client_ext_dial(addr, &call, &fallback, &c);
        if (r < 0)
                return r;
        r = vsock_stat(c, path, follow, call, ret);
        (void) vsock_conn_close(c);
        return r;
}

/* ---- ListDir ------------------------------------------------------------------- */

/* One page: its entries to @on_page, its cursor (NULL on the last page)
 * into *cursor. */
static int list_page(vsock_conn *c, const char *path, int page_size, char **cursor, vsock_list_fn on_page,
                     void *userdata, struct vsock_call *call) {
        struct ext_list_dir req = { .path = (char *) path, .cursor = *cursor, .limit = page_size };
        struct ext_list_reply rep;
        int r = client_ext_call(c, VSOCK_FEATURE_LIST, EXT_MSG_LIST_DIR, &ext_list_dir_shape, &req,
                                EXT_MSG_LIST_REPLY, &ext_list_reply_shape, &rep, call);
        if (r < 0)
                return r;
        struct vsock_stat *v = rep.n_entries ? calloc(rep.n_entries, sizeof *v) : NULL;
        if (rep.n_entries && !v) {
                ext_list_reply_clear(&rep);
                return -ENOMEM;
        }
        for (size_t i = 0; i < rep.n_entries; i++)
                stat_take(&rep.entries[i], &v[i]);
        free(*cursor);
        *cursor = TAKE_PTR(rep.next);
        size_t n = rep.n_entries;
        ext_list_reply_clear(&rep);
        r = on_page(userdata, v, n);
        for (size_t i = 0; i < n; i++)
                vsock_stat_clear(&v[i]);
        free(v);
        return r < 0 ? r : 0;
}

_public_ int vsock_list_dir(vsock_conn *c, const char *path, int page_size, vsock_list_fn on_page, void *userdata,
                            struct vsock_call *call) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call || !c || !path || !on_page || page_size < 0)
                return -EINVAL;
        char *cursor = NULL;
        int r;
        do
                r = list_page(c, path, page_size, &cursor, on_page, userdata, call);
        while (r >= 0 && cursor);
        free(cursor);
        return r;
}

_public_ int vsock_list_dir_at(const char *addr, const char *path, int page_size, vsock_list_fn on_page,
                               void *userdata, struct vsock_call *call) {
        struct vsock_call fallback;
        vsock_conn *c = NULL;
        int r = client_ext_dial(addr, &call, &fallback, &c);
        if (r < 0)
                return r;
        r = vsock_list_dir(c, path, page_size, on_page, userdata, call);
        (void) vsock_conn_close(c);
        return r;
}
