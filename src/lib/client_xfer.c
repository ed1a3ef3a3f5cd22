/* Streaming files (PROTOCOL.md 2.5): vsock_file_get and vsock_file_put,
 * blocking, on one connection, with the credit rules of flow.c. The
 * receiver (a download) grants credit back as it writes the bytes out;
 * the sender (an upload) reads its source only as far as its credit, and
 * looks for the agent's frames (Credit, an Error) between Data frames
 * without blocking, so a failed upload stops at once. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client-internal.h"
#include "common/io.h"
#include "common/macro.h"
#include "common/checksum.h"
#include "ext_msg.h"
#include "flow.h"
#include "vsock/error.h"
#include "vsock/frame.h"

/* The window a download grants: the agent's window_max. */
#define GET_WINDOW (2u * 1024 * 1024)
/* What this host takes at most, whatever an agent announces. */
#define VSOCK_XFER_DATA_MAX_HOST (1u * 1024 * 1024)
#define GET_WINDOW_HOST (16u * 1024 * 1024)
#define BUF_SIZE VSOCK_XFER_DATA_MAX_HOST
/* Largest JSON frame of a stream (StreamStart, Done, Error). */
#define JSON_FRAME_MAX (64u * 1024)

/* A frame moved: with an idle bound, the deadline moves with it. */
static void touch(vsock_conn *c, struct vsock_call *call, int64_t idle_ns) {
        if (idle_ns <= 0)
                return;
        call->deadline_ns = vsock_now_ns() + idle_ns;
        client_call_apply(c, call);
}

/* Read one frame of a stream into @buf (@size bytes). */
static int read_frame(vsock_conn *c, struct vsock_call *call, int64_t idle_ns, uint8_t *ret_type, uint8_t *buf,
                      size_t size, uint32_t *ret_len) {
        int r = vsock_read_message_into(c, ret_type, buf, size, ret_len);
        if (r >= 0) {
                touch(c, call, idle_ns);
                return 0;
        }
        if (vsock_err_kind(r) == VSOCK_E_READ_RESPONSE_HEADER && vsock_err_errno(r) == EPIPE) {
                client_diag(call, "agent closed the connection in the middle of the stream");
                return VSOCK_ERR(VSOCK_E_CLOSED, EPIPE);
        }
        return r;
}

/* The agent's limits for this stream: its Data payloads and the window
 * it takes (our defaults when the connection has no caps). */
static void stream_limits(const vsock_conn *c, uint32_t *ret_data_max, uint32_t *ret_window) {
        const struct vsock_caps *caps = client_ext_caps(c);
        uint32_t dm = caps && caps->limits.data_max ? caps->limits.data_max : VSOCK_XFER_DATA_MAX;
        uint32_t w = caps && caps->limits.window_max ? caps->limits.window_max : GET_WINDOW;
        *ret_data_max = MIN(dm, VSOCK_XFER_DATA_MAX_HOST);
        *ret_window = MIN(w, GET_WINDOW_HOST);
}

static int send_json(vsock_conn *c, uint8_t type, const struct ext_shape *shape, const void *msg) {
        struct buf out = BUF_INIT(0);
        int r = ext_encode(shape, msg, &out);
        if (r >= 0)
                r = vsock_write_message(c, type, buf_head(&out), buf_size(&out));
        buf_free(&out);
        return r;
}

/* Hash the first @n bytes of @fd into @sum. */
static int hash_fd_prefix(int fd, uint64_t n, uint8_t *tmp, size_t size, struct checksum *sum) {
        for (uint64_t off = 0; off < n;) {
                ssize_t k = pread(fd, tmp, (size_t) MIN((uint64_t) size, n - off), (off_t) off);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        return -EINVAL; /* fewer bytes than claimed */
                checksum_update(sum, tmp, (size_t) k);
                off += (uint64_t) k;
        }
        return 0;
}

static void stat_from_ext(const struct ext_stat *s, struct vsock_file_stat *ret) {
        *ret = (struct vsock_file_stat) {
                .size = (uint64_t) s->size,
                .mode = (mode_t) s->mode,
                .uid = s->uid,
                .gid = s->gid,
                .mtime_ns = s->mtime_ns,
                .atime_ns = s->atime_ns,
        };
}

/* A JSON frame the stream expects: @want, or an Error (its code). */
static int expect_json(struct vsock_call *call, uint8_t type, const uint8_t *data, uint32_t len, uint8_t want,
                       const struct ext_shape *shape, void *ret, const char *name) {
        if (type == EXT_MSG_ERROR)
                return client_ext_error(call, data, len);
        if (type != want)
                return client_unexpected_frame(call, type, name);
        const char *why = NULL;
        int r = ext_decode(shape, data, len, ret, &why);
        if (r < 0) {
                client_diag(call, "%s: %s", name, why ? why : "malformed");
                return VSOCK_ERR(VSOCK_E_DECODE, EPROTO);
        }
        return 0;
}

/* A stream's checksum: what the caller wants, the name its request
 * carries, and (once the agent's caps are known) the algorithm used. */
struct stream_sum {
        enum vsock_checksum want;
        const char *name;       /* the request's `checksum`; NULL: absent (SHA-256) */
        struct checksum sum;
};

/* Choose the request's `checksum` before it is sent: CRC-32C unless the
 * caller wants SHA-256 or the agent is known to lack it (without caps
 * yet, Hello goes with the request: stream_sum_agreed decides). An
 * explicit CRC-32C against an agent known to lack it sends nothing. */
static int stream_sum_request(vsock_conn *c, enum vsock_checksum want, struct vsock_call *call,
                              struct stream_sum *ret) {
        if ((unsigned) want > VSOCK_CHECKSUM_CRC32C)
                return -EINVAL;
        const struct vsock_caps *caps = client_ext_caps(c);
        bool lacks = caps && !(caps->features & VSOCK_FEATURE_CHECKSUM_CRC32C);
        if (want == VSOCK_CHECKSUM_CRC32C && lacks)
                return client_ext_unsupported(call, VSOCK_FEATURE_CHECKSUM_CRC32C);
        *ret = (struct stream_sum) {
                .want = want,
                .name = want == VSOCK_CHECKSUM_SHA256 || lacks ? NULL : checksum_name(CHECKSUM_CRC32C),
        };
        return 0;
}

/* The request is out and HelloReply in: the agent honours `checksum`
 * only with the feature (PROTOCOL.md 2.3); one without it ignored the
 * field and streams SHA-256, which only an explicit CRC-32C refuses (the
 * request is with the agent: @c is spent). */
static int stream_sum_agreed(vsock_conn *c, struct vsock_call *call, struct stream_sum *s) {
        const struct vsock_caps *caps = client_ext_caps(c);
        bool has = caps && (caps->features & VSOCK_FEATURE_CHECKSUM_CRC32C);
        if (s->name && !has && s->want == VSOCK_CHECKSUM_CRC32C)
                return client_fail(c, client_ext_unsupported(call, VSOCK_FEATURE_CHECKSUM_CRC32C));
        checksum_init(&s->sum, s->name && has ? CHECKSUM_CRC32C : CHECKSUM_SHA256);
        return 0;
}

static enum vsock_checksum public_alg(enum checksum_alg alg) {
        return alg == CHECKSUM_CRC32C ? VSOCK_CHECKSUM_CRC32C : VSOCK_CHECKSUM_SHA256;
}

/* The stream's end: Done against what we counted and hashed; the value
 * into @hex, and into @sha256 when it is one (else ""). */
static int check_done(struct vsock_call *call, const struct ext_done *d, uint64_t size, struct stream_sum *s,
                      char hex[CHECKSUM_HEX_MAX], char sha256[SHA256_HEX_SIZE]) {
        enum checksum_alg alg = s->sum.alg;
        checksum_final_hex(&s->sum, hex);
        snprintf(sha256, SHA256_HEX_SIZE, "%s", alg == CHECKSUM_SHA256 ? hex : "");
        const char *theirs = ext_done_checksum(d, alg);
        if (d->size < 0 || (uint64_t) d->size != size || !theirs || strcmp(theirs, hex) != 0) {
                client_diag(call, "checksum mismatch: the agent reports %lld bytes with %s %s, we have %llu with %s",
                            (long long) d->size, checksum_name(alg), theirs ? theirs : "(none)",
                            (unsigned long long) size, hex);
                return VSOCK_ERR(VSOCK_E_CHECKSUM, EBADMSG);
        }
        return 0;
}

/* Send a stream's request and read its StreamStart into @ret, settling
 * the checksum in between. Failures shut @c down, except an Error before
 * the stream (the connection then reads the next request). */
static int stream_open(vsock_conn *c, unsigned feature, uint8_t type_req, const struct ext_shape *shape,
                       const void *req, struct vsock_call *call, int64_t idle_ns, uint8_t *buf, struct stream_sum *sum,
                       struct ext_stream_start *ret) {
        int r = client_ext_send_msg(c, feature, type_req, shape, req, call);
        if (r < 0)
                return client_fail(c, r);
        r = stream_sum_agreed(c, call, sum);
        if (r < 0)
                return r;
        uint8_t type;
        uint32_t n;
        r = read_frame(c, call, idle_ns, &type, buf, JSON_FRAME_MAX, &n);
        if (r < 0)
                return client_fail(c, r);
        r = expect_json(call, type, buf, n, EXT_MSG_STREAM_START, &ext_stream_start_shape, ret, "StreamStart");
        if (r < 0)
                return type == EXT_MSG_ERROR && vsock_err_kind(r) != VSOCK_E_PROTOCOL ? r : client_fail(c, r);
        return 0;
}

/* ---- download ------------------------------------------------------------ */

struct done_counts;
static int get_op(vsock_conn *c, unsigned feature, uint8_t type_req, const struct ext_shape *shape, const void *req,
                  uint32_t window, const struct vsock_file_get_opts *o, struct vsock_call *call, uint8_t *buf,
                  struct stream_sum *sum, struct vsock_file_get_result *ret, struct done_counts *counts);

/* A tree's Done says how many entries it carried and skipped. */
struct done_counts {
        uint64_t entries, skipped;
};

static int get_stream(vsock_conn *c, const struct vsock_file_get_opts *o, struct vsock_call *call, uint8_t *buf,
                      uint32_t window, struct stream_sum *sum, struct vsock_file_get_result *res,
                      struct done_counts *counts) {
        uint32_t data_max, unused;
        stream_limits(c, &data_max, &unused);
        struct flow_recv fl;
        (void) flow_recv_init(&fl, window, data_max);
        uint64_t total = res->stat.size > o->offset ? res->stat.size - o->offset : 0;
        if (o->length > 0 && o->length < total)
                total = o->length;
        for (;;) {
                uint8_t type;
                uint32_t n;
                int r = read_frame(c, call, o->idle_timeout_ns, &type, buf, BUF_SIZE, &n);
                if (r < 0)
                        return r;
                if (type == EXT_MSG_ERROR)
                        return client_ext_error(call, buf, n);
                if (type != EXT_MSG_DATA)
                        return client_unexpected_frame(call, type, "Data");
                if (flow_recv_data(&fl, n) < 0) {
                        client_diag(call, "the agent sent %u bytes past its credit", n);
                        return VSOCK_ERR(VSOCK_E_PROTOCOL, EPROTO);
                }
                if (n == 0)
                        break;
                r = o->fd >= 0 ? io_write_all(o->fd, buf, n, 0, -1) : o->sink(o->userdata, buf, n);
                if (r < 0)
                        return r;
                checksum_update(&sum->sum, buf, n);
                res->received += n;
                if (o->progress)
                        o->progress(o->userdata, res->received, total);
                uint32_t grant = flow_recv_consumed(&fl, n);
                if (grant > 0) {
                        uint8_t p[EXT_CREDIT_SIZE];
                        ext_credit_encode(grant, p);
                        touch(c, call, o->idle_timeout_ns);
                        r = vsock_write_message(c, EXT_MSG_CREDIT, p, sizeof p);
                        if (r < 0)
                                return r;
                }
        }
        uint8_t type;
        uint32_t n;
        int r = read_frame(c, call, o->idle_timeout_ns, &type, buf, JSON_FRAME_MAX, &n);
        if (r < 0)
                return r;
        struct ext_done d;
        r = expect_json(call, type, buf, n, EXT_MSG_DONE, &ext_done_shape, &d, "Done");
        if (r < 0)
                return r;
        /* Done's size counts the bytes sent; the digest covers the prefix too. */
        r = check_done(call, &d, res->received, sum, res->digest, res->sha256);
        res->checksum = public_alg(sum->sum.alg);
        *counts = (struct done_counts) { (uint64_t) MAX(d.entries, 0), (uint64_t) MAX(d.skipped, 0) };
        ext_done_clear(&d);
        return r;
}

_public_ int vsock_file_get(vsock_conn *c, const char *path, const struct vsock_file_get_opts *o,
                            struct vsock_call *call, struct vsock_file_get_result *ret) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call || !c || !path || !o || !CLIENT_SIZE_KNOWN(o) || !ret || (o->fd < 0 && !o->sink) ||
            (o->offset > 0 && o->fd < 0) || o->offset > INT64_MAX || o->length > INT64_MAX)
                return -EINVAL;
        client_call_apply(c, call);
        _cleanup_free_ uint8_t *buf = malloc(BUF_SIZE);
        if (!buf)
                return -ENOMEM;
        struct stream_sum sum;
        int r = stream_sum_request(c, o->checksum, call, &sum);
        if (r < 0)
                return r;
        /* Before Hello the agent's window_max is not known: ours. */
        uint32_t data_max, window;
        stream_limits(c, &data_max, &window);
        struct ext_file_get req = {
                .path = (char *) path,
                .offset = (int64_t) o->offset,
                .length = (int64_t) o->length,
                .window = window,
                .checksum = (char *) sum.name,
        };
        struct done_counts counts;
        return get_op(c, VSOCK_FEATURE_FILE_GET, EXT_MSG_FILE_GET, &ext_file_get_shape, &req, window, o, call, buf,
                      &sum, ret, &counts);
}

/* A download's request (@type, from @req of @shape) and its stream; the
 * result goes to @ret only on success. */
static int get_op(vsock_conn *c, unsigned feature, uint8_t type_req, const struct ext_shape *shape, const void *req,
                  uint32_t window, const struct vsock_file_get_opts *o, struct vsock_call *call, uint8_t *buf,
                  struct stream_sum *sum, struct vsock_file_get_result *ret, struct done_counts *counts) {
        struct ext_stream_start ss;
        int r = stream_open(c, feature, type_req, shape, req, call, o->idle_timeout_ns, buf, sum, &ss);
        if (r < 0)
                return r;
        struct vsock_file_get_result res = {};
        stat_from_ext(&ss.stat, &res.stat);
        ext_stream_start_clear(&ss);
        /* A resumed download's checksum covers what @fd holds too; the
         * algorithm is settled only now (the agent hashes its own copy of
         * the prefix meanwhile, and sends nothing before). */
        if (o->offset > 0) {
                r = hash_fd_prefix(o->fd, o->offset, buf, BUF_SIZE, &sum->sum);
                if (r >= 0 && lseek(o->fd, (off_t) o->offset, SEEK_SET) < 0)
                        r = -errno;
        }
        if (r >= 0)
                r = get_stream(c, o, call, buf, window, sum, &res, counts);
        if (r < 0)
                return client_fail(c, r);
        *ret = res;
        return 0;
}

_public_ int vsock_tar_get(vsock_conn *c, const char *path, const struct vsock_tar_opts *o, struct vsock_call *call,
                           struct vsock_tar_result *ret) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call || !c || !path || !o || !CLIENT_SIZE_KNOWN(o) || !ret || (o->fd < 0 && !o->sink))
                return -EINVAL;
        client_call_apply(c, call);
        _cleanup_free_ uint8_t *buf = malloc(BUF_SIZE);
        if (!buf)
                return -ENOMEM;
        struct stream_sum sum;
        int r = stream_sum_request(c, o->checksum, call, &sum);
        if (r < 0)
                return r;
        uint32_t data_max, window;
        stream_limits(c, &data_max, &window);
        struct ext_tar_get req = { .path = (char *) path, .window = window, .checksum = (char *) sum.name };
        struct vsock_file_get_opts fo = {
                .fd = o->fd,
                .sink = o->sink,
                .userdata = o->userdata,
                .progress = o->progress,
                .idle_timeout_ns = o->idle_timeout_ns,
        };
        struct vsock_file_get_result res;
        struct done_counts counts;
        r = get_op(c, VSOCK_FEATURE_TAR_GET, EXT_MSG_TAR_GET, &ext_tar_get_shape, &req, window, &fo, call, buf, &sum,
                   &res, &counts);
        if (r < 0)
                return r;
        *ret = (struct vsock_tar_result) { .size = res.received, .entries = counts.entries, .skipped = counts.skipped,
                                           .checksum = res.checksum };
        memcpy(ret->sha256, res.sha256, sizeof ret->sha256);
        memcpy(ret->digest, res.digest, sizeof ret->digest);
        return 0;
}

/* ---- upload ---------------------------------------------------------------- */

static int put_op(vsock_conn *c, unsigned feature, uint8_t type_req, const struct ext_shape *shape, const void *req,
                  const struct vsock_file_put_opts *o, struct vsock_call *call, uint8_t *buf, struct stream_sum *sum,
                  struct vsock_file_put_result *ret, struct done_counts *counts);

/* An fd read as a stream (a pipe, a socket, a file from its offset). */
static ssize_t fd_source(void *userdata, void *buf, size_t n) {
        int fd = *(int *) userdata;
        for (;;) {
                ssize_t k = io_read_once(fd, buf, n);
                if (k != -EAGAIN)
                        return k;
                int r = io_wait(fd, POLLIN, 0, -1);
                if (r < 0)
                        return r;
        }
}

/* Read up to @n bytes of the source at @pos. */
static ssize_t put_read(const struct vsock_file_put_opts *o, void *buf, size_t n, uint64_t pos) {
        if (o->fd < 0)
                return o->source(o->userdata, buf, n);
        for (;;) {
                ssize_t k = pread(o->fd, buf, n, (off_t) pos);
                if (k >= 0 || errno != EINTR)
                        return k < 0 ? -errno : k;
        }
}

/* The agent's frames while sending: Credit adds to @fl; an Error ends the
 * upload. With @block, wait for one; else only take what is there. */
static int put_poll(vsock_conn *c, struct vsock_call *call, int64_t idle_ns, struct flow_send *fl, uint8_t *buf,
                    bool block) {
        for (;;) {
                if (!block) {
                        struct pollfd p = { .fd = vsock_conn_fd(c), .events = POLLIN };
                        if (poll(&p, 1, 0) <= 0)
                                return 0;
                }
                uint8_t type;
                uint32_t n;
                int r = read_frame(c, call, idle_ns, &type, buf, JSON_FRAME_MAX, &n);
                if (r < 0)
                        return r;
                if (type == EXT_MSG_ERROR)
                        return client_ext_error(call, buf, n);
                if (type != EXT_MSG_CREDIT)
                        return client_unexpected_frame(call, type, "Credit");
                uint32_t grant;
                const char *why = NULL;
                r = ext_credit_decode(buf, n, &grant, &why);
                if (r >= 0)
                        r = flow_send_credit(fl, grant);
                if (r < 0) {
                        client_diag(call, "Credit: %s", why ? why : "past the window");
                        return VSOCK_ERR(VSOCK_E_PROTOCOL, EPROTO);
                }
                block = false;
        }
}

/* A write failed: the agent may have said why before it closed. */
static int put_write_failed(vsock_conn *c, struct vsock_call *call, struct flow_send *fl, uint8_t *buf, int r) {
        int why = put_poll(c, call, 0, fl, buf, false);
        return why < 0 && vsock_err_kind(why) == VSOCK_E_REMOTE ? why : r;
}

static int put_stream(vsock_conn *c, const struct vsock_file_put_opts *o, struct vsock_call *call, uint8_t *buf,
                      const struct ext_stream_start *ss, struct stream_sum *sum, struct vsock_file_put_result *res,
                      struct done_counts *counts) {
        uint64_t pos = 0, offset = (uint64_t) ss->offset;
        /* The agent's digest covers the whole file: hash what it kept. */
        while (pos < offset) {
                ssize_t k = put_read(o, buf, (size_t) MIN((uint64_t) BUF_SIZE, offset - pos), pos);
                if (k < 0)
                        return (int) k;
                if (k == 0) {
                        client_diag(call, "the agent holds %llu bytes of this upload, the source has only %llu",
                                    (unsigned long long) offset, (unsigned long long) pos);
                        return -EINVAL;
                }
                checksum_update(&sum->sum, buf, (size_t) k);
                pos += (uint64_t) k;
        }
        uint32_t data_max, unused;
        stream_limits(c, &data_max, &unused);
        struct flow_send fl;
        if (ss->window == 0 || flow_send_init(&fl, ss->window, ss->window, data_max) < 0) {
                client_diag(call, "StreamStart without a window");
                return VSOCK_ERR(VSOCK_E_PROTOCOL, EPROTO);
        }
        uint64_t total = o->file_size >= 0 ? (uint64_t) o->file_size : 0;
        for (;;) {
                int r = put_poll(c, call, o->idle_timeout_ns, &fl, buf, flow_send_room(&fl) == 0);
                if (r < 0)
                        return r;
                size_t room = flow_send_room(&fl);
                ssize_t k = put_read(o, buf, room, pos);
                if (k < 0)
                        return (int) k;
                touch(c, call, o->idle_timeout_ns);
                r = vsock_write_message(c, EXT_MSG_DATA, buf, (size_t) k);
                if (r < 0)
                        return put_write_failed(c, call, &fl, buf, r);
                (void) flow_send_sent(&fl, (size_t) k);
                if (k == 0)
                        break;
                checksum_update(&sum->sum, buf, (size_t) k);
                pos += (uint64_t) k;
                if (o->progress)
                        o->progress(o->userdata, pos, total);
        }
        enum checksum_alg alg = sum->sum.alg;
        checksum_final_hex(&sum->sum, res->digest);
        snprintf(res->sha256, sizeof res->sha256, "%s", alg == CHECKSUM_SHA256 ? res->digest : "");
        res->checksum = public_alg(alg);
        struct ext_done mine = {
                .size = (int64_t) pos,
                .sha256 = alg == CHECKSUM_SHA256 ? res->digest : NULL,
                .crc32c = alg == CHECKSUM_CRC32C ? res->digest : NULL,
        };
        int r = send_json(c, EXT_MSG_DONE, &ext_done_shape, &mine);
        if (r < 0)
                return put_write_failed(c, call, &fl, buf, r);
        for (;;) {
                uint8_t type;
                uint32_t n;
                r = read_frame(c, call, o->idle_timeout_ns, &type, buf, JSON_FRAME_MAX, &n);
                if (r < 0)
                        return r;
                if (type == EXT_MSG_CREDIT)
                        continue; /* late credit for the last bytes */
                struct ext_done d;
                r = expect_json(call, type, buf, n, EXT_MSG_DONE, &ext_done_shape, &d, "Done");
                if (r < 0)
                        return r;
                const char *theirs = ext_done_checksum(&d, alg);
                bool same = d.size == (int64_t) pos && theirs && strcmp(theirs, res->digest) == 0;
                *counts = (struct done_counts) { (uint64_t) MAX(d.entries, 0), (uint64_t) MAX(d.skipped, 0) };
                ext_done_clear(&d);
                if (!same) {
                        client_diag(call, "the agent's Done does not match what was sent");
                        return VSOCK_ERR(VSOCK_E_CHECKSUM, EBADMSG);
                }
                res->offset = offset;
                res->size = pos;
                return 0;
        }
}

_public_ int vsock_file_put(vsock_conn *c, const char *path, const struct vsock_file_put_opts *o,
                            struct vsock_call *call, struct vsock_file_put_result *ret) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call || !c || !path || !o || !CLIENT_SIZE_KNOWN(o) || !ret || (o->fd < 0 && !o->source) ||
            (o->resume && !o->upload_id) || o->mode > 07777)
                return -EINVAL;
        client_call_apply(c, call);
        struct vsock_file_put_opts opts = *o;
        struct stat st;
        if (opts.file_size < 0 && opts.fd >= 0 && fstat(opts.fd, &st) == 0 && S_ISREG(st.st_mode))
                opts.file_size = st.st_size;
        _cleanup_free_ uint8_t *buf = malloc(BUF_SIZE);
        if (!buf)
                return -ENOMEM;
        struct stream_sum sum;
        int r = stream_sum_request(c, o->checksum, call, &sum);
        if (r < 0)
                return r;
        struct ext_file_put req = {
                .path = (char *) path,
                .mode = opts.mode < 0 ? EXT_UNSET_MODE : (uint32_t) opts.mode,
                .uid = opts.uid < 0 ? EXT_UNSET_ID : opts.uid,
                .gid = opts.gid < 0 ? EXT_UNSET_ID : opts.gid,
                .mtime_ns = opts.mtime_ns,
                .size = opts.file_size < 0 ? EXT_UNSET_SIZE : opts.file_size,
                .upload_id = (char *) opts.upload_id,
                .resume = opts.resume,
                .checksum = (char *) sum.name,
        };
        struct done_counts counts;
        return put_op(c, VSOCK_FEATURE_FILE_PUT, EXT_MSG_FILE_PUT, &ext_file_put_shape, &req, &opts, call, buf, &sum,
                      ret, &counts);
}

/* An upload's request (@type, from @req of @shape) and its stream; the
 * result goes to @ret only on success. */
static int put_op(vsock_conn *c, unsigned feature, uint8_t type_req, const struct ext_shape *shape, const void *req,
                  const struct vsock_file_put_opts *o, struct vsock_call *call, uint8_t *buf, struct stream_sum *sum,
                  struct vsock_file_put_result *ret, struct done_counts *counts) {
        struct ext_stream_start ss;
        int r = stream_open(c, feature, type_req, shape, req, call, o->idle_timeout_ns, buf, sum, &ss);
        if (r < 0)
                return r;
        struct vsock_file_put_result res = {};
        r = ss.offset < 0 ? VSOCK_ERR(VSOCK_E_PROTOCOL, EPROTO) : put_stream(c, o, call, buf, &ss, sum, &res, counts);
        ext_stream_start_clear(&ss);
        if (r < 0)
                return client_fail(c, r);
        *ret = res;
        return 0;
}

_public_ int vsock_tar_put(vsock_conn *c, const char *path, const struct vsock_tar_opts *o, struct vsock_call *call,
                           struct vsock_tar_result *ret) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call || !c || !path || !o || !CLIENT_SIZE_KNOWN(o) || !ret || (o->fd < 0 && !o->source))
                return -EINVAL;
        client_call_apply(c, call);
        _cleanup_free_ uint8_t *buf = malloc(BUF_SIZE);
        if (!buf)
                return -ENOMEM;
        struct stream_sum sum;
        int r = stream_sum_request(c, o->checksum, call, &sum);
        if (r < 0)
                return r;
        struct ext_tar_put req = { .path = (char *) path, .preserve_owner = o->preserve_owner,
                                   .checksum = (char *) sum.name };
        /* A tar stream is read sequentially: a source, or the fd as one. */
        int fd = o->fd;
        struct vsock_file_put_opts po = VSOCK_FILE_PUT_OPTS_INIT;
        po.source = o->fd >= 0 ? fd_source : o->source;
        po.userdata = o->fd >= 0 ? (void *) &fd : o->userdata;
        po.progress = o->progress;
        po.idle_timeout_ns = o->idle_timeout_ns;
        struct vsock_file_put_result res;
        struct done_counts counts;
        r = put_op(c, VSOCK_FEATURE_TAR_PUT, EXT_MSG_TAR_PUT, &ext_tar_put_shape, &req, &po, call, buf, &sum, &res,
                   &counts);
        if (r < 0)
                return r;
        *ret = (struct vsock_tar_result) { .size = res.size, .entries = counts.entries, .skipped = counts.skipped,
                                           .checksum = res.checksum };
        memcpy(ret->sha256, res.sha256, sizeof ret->sha256);
        memcpy(ret->digest, res.digest, sizeof ret->digest);
        return 0;
}
