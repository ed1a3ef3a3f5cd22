#include "agent/files/xfer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/serve/ext.h"
#include "agent/serve/session.h"
#include "common/log.h"
#include "common/macro.h"

void xfer_fail(struct session *s, bool fatal, const char *code, int err, const char *fmt, ...) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        (void) ext_error_send(s, code, code ? 0 : err, NULL, "%s", msg);
        if (fatal || (code && strcmp(code, "EPROTO") == 0))
                session_finish_close(s);
        else
                session_finish(s);
}

int xfer_stat_fill(const struct stat *st, const char *path, struct ext_stat *ret) {
        const char *slash = strrchr(path, '/');
        char *name = strdup(slash && slash[1] ? slash + 1 : path);
        if (!name)
                return -ENOMEM;
        *ret = (struct ext_stat) {
                .name = name,
                .size = st->st_size,
                .mode = st->st_mode,
                .uid = st->st_uid,
                .gid = st->st_gid,
                .nlink = st->st_nlink,
                .ino = st->st_ino,
                .dev = st->st_dev,
                .rdev = st->st_rdev,
                .mtime_ns = st->st_mtim.tv_sec * INT64_C(1000000000) + st->st_mtim.tv_nsec,
                .atime_ns = st->st_atim.tv_sec * INT64_C(1000000000) + st->st_atim.tv_nsec,
                .ctime_ns = st->st_ctim.tv_sec * INT64_C(1000000000) + st->st_ctim.tv_nsec,
        };
        return 0;
}

int xfer_send_json(struct session *s, uint8_t type, int (*encode)(const void *msg, struct buf *out), const void *msg) {
        struct buf *out = session_encode_begin(s, type);
        if (!out)
                return 0; /* gone: the operation hears it through conn_lost */
        int r = encode(msg, out);
        session_encode_end(s, r);
        return r;
}

static int done_encode(const void *m, struct buf *out) { return ext_done_encode(m, out); }

int xfer_checksum_pick(const char *op, const char *name, enum checksum_alg *ret, char *msg, size_t size) {
        if (!name) {
                *ret = CHECKSUM_SHA256;
                return 0;
        }
        size_t n = strlen(name);
        if (n > CHECKSUM_NAME_MAX) {
                snprintf(msg, size, "%s: checksum name of %zu bytes (at most %d)", op, n, CHECKSUM_NAME_MAX);
                return -EINVAL;
        }
        if (checksum_from_name(name, ret) < 0) {
                snprintf(msg, size, "%s: checksum \"%s\" not supported (sha256, crc32c)", op, name);
                return -ENOSYS;
        }
        return 0;
}

int xfer_send_done(struct session *s, uint64_t size, struct checksum *sum, int64_t entries, int64_t skipped) {
        char hex[CHECKSUM_HEX_MAX];
        enum checksum_alg alg = sum->alg;
        checksum_final_hex(sum, hex);
        struct ext_done d = {
                .size = (int64_t) size,
                .sha256 = alg == CHECKSUM_SHA256 ? hex : NULL,
                .crc32c = alg == CHECKSUM_CRC32C ? hex : NULL,
                .entries = entries,
                .skipped = skipped,
        };
        return xfer_send_json(s, EXT_MSG_DONE, done_encode, &d);
}

int xfer_stray_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len) {
        free(payload);
        ext_error_finish(s, "EPROTO", 0, NULL, "%s frame of %u bytes outside a stream",
                         type == EXT_MSG_DATA ? "Data" : "Done", len);
        return 0;
}
