/* Negotiation (Hello -> HelloReply) and the Error frame (PROTOCOL.md 2.2,
 * 2.3). */
#include "agent/serve/ext.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/serve/session.h"
#include "common/buf.h"
#include "common/io.h"
#include "common/log.h"
#include "common/macro.h"
#include "lib/ext_msg.h"
#include "vsock/version.h"


/* The 36 characters of a boot id ("8-4-4-4-12" lowercase hex). */
static bool boot_id_valid(const char *s, size_t n) {
        if (n != 36)
                return false;
        for (size_t i = 0; i < n; i++) {
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;
                if (dash ? s[i] != '-' : !strchr("0123456789abcdef", s[i]))
                        return false;
        }
        return true;
}

void ext_boot_id_load(char buf[EXT_BOOT_ID_SIZE]) {
        char raw[EXT_BOOT_ID_SIZE] = "";
        ssize_t n = -1;
        int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
                n = io_read_full(fd, raw, sizeof raw - 1, 0, -1);
                safe_close(fd);
        }
        while (n > 0 && (raw[n - 1] == '\n' || raw[n - 1] == ' '))
                n--;
        if (n > 0 && boot_id_valid(raw, (size_t) n)) {
                memcpy(buf, raw, (size_t) n);
                buf[n] = '\0';
                return;
        }
        uint8_t r[16] = {};
        if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t) sizeof r) {
                /* No entropy yet (early boot): still unique per start. */
                uint64_t t = (uint64_t) time(NULL) ^ ((uint64_t) getpid() << 32);
                memcpy(r, &t, sizeof t);
        }
        r[6] = (uint8_t) ((r[6] & 0x0f) | 0x40); /* a version 4 UUID, as the kernel's */
        r[8] = (uint8_t) ((r[8] & 0x3f) | 0x80);
        snprintf(buf, EXT_BOOT_ID_SIZE,
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3],
                 r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
        log_warn("no kernel boot id; using %s for this agent's life", buf);
}

const char *ext_errno_name(int err) {
        if (err < 0)
                err = -err;
        const char *name = err > 0 ? strerrorname_np(err) : NULL;
        return name ? name : "EIO";
}

__attribute__((format(printf, 5, 0)))
static int error_vsend(struct session *s, const char *code, int err, const char *op, const char *fmt, va_list ap) {
        if (err < 0)
                err = -err;
        char msg[1024];
        (void) vsnprintf(msg, sizeof msg, fmt, ap);
        struct ext_error e = {
                .code = (char *) (code ? code : ext_errno_name(err)),
                .err = err,
                .message = msg,
                .op = (char *) op,
        };
        log_debug("session %llu: error %s: %s", (unsigned long long) session_id(s), e.code, msg);
        struct buf *q = session_encode_begin(s, EXT_MSG_ERROR);
        if (!q)
                return 0; /* gone: the operation hears of it */
        int r = ext_error_encode(&e, q);
        session_encode_end(s, r);
        return r < 0 ? r : 0;
}

int ext_error_send(struct session *s, const char *code, int err, const char *op, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = error_vsend(s, code, err, op, fmt, ap);
        va_end(ap);
        return r;
}

void ext_error_finish(struct session *s, const char *code, int err, const char *op, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = error_vsend(s, code, err, op, fmt, ap);
        va_end(ap);
        bool proto = strcmp(code ? code : ext_errno_name(err), "EPROTO") == 0;
        /* An Error that could not be queued leaves the host waiting: close. */
        if (proto || r < 0)
                session_finish_close(s);
        else
                session_finish(s);
}

static const struct ext_limits agent_limits = {
        .max_payload = EXT_LIMIT_MAX_PAYLOAD,
        .data_max = EXT_LIMIT_DATA_MAX,
        .window_max = EXT_LIMIT_WINDOW_MAX,
        .list_page_max = EXT_LIMIT_LIST_PAGE_MAX,
        .list_reply_max = EXT_LIMIT_LIST_REPLY_MAX,
        .procs_max = EXT_LIMIT_PROCS_MAX,
        .ring_default = EXT_LIMIT_RING_DEFAULT,
        .ring_max = EXT_LIMIT_RING_MAX,
        .ring_total_max = EXT_LIMIT_RING_TOTAL_MAX,
        .proc_keep_s = EXT_LIMIT_PROC_KEEP_S,
        .partial_keep_s = EXT_LIMIT_PARTIAL_KEEP_S,
        .fwd_listeners_max = EXT_LIMIT_FWD_LISTENERS_MAX,
        .fwd_pending_max = EXT_LIMIT_FWD_PENDING_MAX,
        .fwd_attach_s = EXT_LIMIT_FWD_ATTACH_S,
};

/* "reuse", then every feature of the handler table's extension entries,
 * once each, in type order, then the stream checksums beyond SHA-256. */
static size_t collect_features(const struct agent *a, const char **names, size_t max) {
        const struct session_handler *table = session_handlers(a);
        size_t n = 0;
        names[n++] = "reuse";
        for (unsigned t = EXT_MSG_FIRST; t <= EXT_MSG_LAST && t < SESSION_HANDLER_TYPES && n < max; t++) {
                const char *f = table[t].start ? table[t].feature : NULL;
                if (!f)
                        continue;
                bool seen = false;
                for (size_t i = 0; i < n && !seen; i++)
                        seen = strcmp(names[i], f) == 0;
                if (!seen)
                        names[n++] = f;
        }
        /* Every stream operation takes a checksum algorithm (2.3). */
        static const uint8_t streams[] = { EXT_MSG_FILE_GET, EXT_MSG_FILE_PUT, EXT_MSG_TAR_GET, EXT_MSG_TAR_PUT };
        bool any = false;
        for (size_t i = 0; i < ARRAY_SIZE(streams) && !any; i++)
                any = streams[i] < SESSION_HANDLER_TYPES && table[streams[i]].start;
        if (any && n < max)
                names[n++] = "checksum-crc32c";
        return n;
}

int hello_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len) {
        (void) type;
        unsigned long long id = (unsigned long long) session_id(s);
        struct ext_hello h;
        const char *why = NULL;
        int r = ext_hello_decode(payload ? payload : (const uint8_t *) "", len, &h, &why);
        free(payload);
        if (r < 0) {
                /* Closing is what a base agent does: the host falls back. */
                log_warn("session %llu: bad Hello: %s", id, why ? why : strerror(-r));
                return -EPROTO;
        }
        if (h.version < 1) {
                log_warn("session %llu: Hello with version %d", id, (int) h.version);
                ext_hello_clear(&h);
                return -EPROTO;
        }
        log_debug("session %llu: hello from %s, version %d, %zu features", id, h.client ? h.client : "?",
                  (int) h.version, h.n_features);
        struct agent *a = session_agent(s);
        const char *features[EXT_MSG_LAST - EXT_MSG_FIRST + 2];
        struct ext_hello_reply rep = {
                .version = MIN(h.version, EXT_VERSION),
                .agent = (char *) "vsock-agent " VSOCK_VERSION_STRING,
                .boot_id = a->boot_id,
                .features = (char **) features,
                .n_features = collect_features(a, features, ARRAY_SIZE(features)),
                .limits = agent_limits,
        };
        ext_hello_clear(&h);
        struct buf *q = session_encode_begin(s, EXT_MSG_HELLO_REPLY);
        if (q) {
                r = ext_hello_reply_encode(&rep, q);
                session_encode_end(s, r);
                if (r < 0)
                        return r;
        }
        session_set_ext(s);
        session_finish(s);
        return 0;
}
