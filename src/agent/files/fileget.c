/* Downloads: FileGet (PROTOCOL.md 2.5), a regular file to the host as a
 * Data stream within the host's credit, with Done{size, checksum}; and
 * TarGet (2.6), the same for a tree archived on the fly by tar_walk
 * (tar_fs.h), with entries and skipped in Done. Both are one engine: only
 * where the bytes come from differs (pread, or tar_walk_read).
 *
 * The file is read on worker jobs into two chunks of XFER_DATA_MAX bytes,
 * which also hash what they read (the worker's time, not the loop's); the
 * loop copies a ready chunk into Data frames while the host's credit and
 * the send queue allow, and hands it back to the worker once sent. So a
 * transfer holds two chunks plus a send queue bounded by the queue's
 * high-water mark (under 1.5 MiB) whatever the file's size, and the
 * disk, the hashing and the socket overlap. All jobs run on one worker
 * lane, in order, so the digest sees the bytes in file order. A resumed
 * download (offset > 0) first hashes the prefix it does not send, in
 * steps of PREFIX_STEP bytes, each a job of its own under --io-timeout. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/uio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/ops.h"
#include "agent/serve/session.h"
#include "agent/serve/worker.h"
#include "agent/files/xfer.h"
#include "common/log.h"
#include "common/macro.h"
#include "lib/flow.h"
#include "lib/tar_fs.h"

#define N_CHUNKS 2
#define CHUNK_SIZE (2 * XFER_DATA_MAX)
#define PREFIX_STEP (64u * 1024 * 1024)
#define XFER_SNDBUF (1024 * 1024)

struct fget;

struct chunk {
        struct worker_job job;
        struct fget *g;
        uint8_t *data;
        size_t n, off;          /* bytes read, bytes sent */
        bool busy;              /* with the worker */
        bool eof;               /* nothing after this chunk */
};

struct fget {
        struct session *s;      /* NULL once the session let go */
        struct agent *agent;
        struct ext_file_get req;        /* TarGet: path and window only */
        bool tar;
        struct flow_send flow;
        struct worker_lane lane;
        struct worker_job open_job, prefix_job;
        struct chunk chunks[N_CHUNKS];
        unsigned cur;           /* the chunk to send from next */
        unsigned in_flight;     /* jobs submitted, done() not yet run */
        bool started;           /* StreamStart queued */
        bool ended;             /* the terminal frame is queued */
        bool no_fast;           /* the file system has no RWF_NOWAIT: the worker reads */
        atomic_bool aborted;    /* read by the worker */
        /* Worker side (the lane orders the jobs). */
        int fd;
        struct tar_walk *walk;  /* TarGet */
        struct stat st;
        int err;                /* errno of the failed step, 0 */
        const char *err_what;
        uint64_t pos;           /* next byte to read */
        uint64_t left;          /* bytes still to read */
        uint64_t prefix;        /* bytes of the prefix hashed */
        bool eof;
        struct checksum sum;
};

static void fget_destroy(struct fget *g) {
        for (unsigned i = 0; i < N_CHUNKS; i++)
                free(g->chunks[i].data);
        ext_file_get_clear(&g->req);
        g->fd = safe_close(g->fd);
        tar_walk_free(g->walk);
        free(g);
}

static void maybe_destroy(struct fget *g) {
        if (!g->s && g->in_flight == 0)
                fget_destroy(g);
}

static int submit(struct fget *g, struct worker_job *j) {
        int r = worker_submit(g->agent->worker, j);
        if (r >= 0)
                g->in_flight++;
        return r;
}

/* ---- worker side ------------------------------------------------------------ */

/* TarGet: the walk of the path's last element, beneath its parent. */
static void tar_open(struct fget *g) {
        const char *slash = strrchr(g->req.path, '/');
        _cleanup_free_ char *dir = slash == g->req.path ? strdup("/") : strndup(g->req.path, (size_t) (slash - g->req.path));
        const char *name = slash[1] ? slash + 1 : ".";
        g->err_what = "open";
        _cleanup_close_ int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        if (dfd < 0) {
                g->err = dir ? errno : ENOMEM;
                return;
        }
        if (fstatat(dfd, name, &g->st, AT_SYMLINK_NOFOLLOW) < 0) {
                g->err = errno;
                g->err_what = "stat";
                return;
        }
        int r = tar_walk_new(dfd, name, strcmp(name, ".") == 0 ? "." : name, NULL, NULL, &g->walk);
        if (r < 0)
                g->err = -r;
        g->left = UINT64_MAX;
}

static void open_run(struct worker_job *j) {
        struct fget *g = container_of(j, struct fget, open_job);
        if (g->tar) {
                tar_open(g);
                return;
        }
        /* O_NONBLOCK: a FIFO must not block the open; it is refused below. */
        g->fd = open(g->req.path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (g->fd < 0) {
                g->err = errno;
                g->err_what = "open";
                return;
        }
        if (fstat(g->fd, &g->st) < 0) {
                g->err = errno;
                g->err_what = "stat";
                return;
        }
        if (!S_ISREG(g->st.st_mode)) {
                g->err = S_ISDIR(g->st.st_mode) ? EISDIR : EINVAL;
                g->err_what = "open (not a regular file)";
                return;
        }
        if ((uint64_t) g->req.offset > (uint64_t) g->st.st_size) {
                g->err = EINVAL;
                g->err_what = "offset past the end of";
                return;
        }
        g->pos = (uint64_t) g->req.offset;
        g->left = g->req.length > 0 ? (uint64_t) g->req.length : UINT64_MAX;
}

/* Fill @p with @n bytes at @off, short only at the end of the file. */
static ssize_t read_at(int fd, uint8_t *p, size_t n, uint64_t off) {
        size_t got = 0;
        while (got < n) {
                ssize_t k = pread(fd, p + got, n - got, (off_t) (off + got));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                got += (size_t) k;
        }
        return (ssize_t) got;
}

static void prefix_run(struct worker_job *j) {
        struct fget *g = container_of(j, struct fget, prefix_job);
        uint8_t *buf = g->chunks[0].data;
        uint64_t end = (uint64_t) g->req.offset, step_end = MIN(end, g->prefix + PREFIX_STEP);
        while (g->prefix < step_end && !atomic_load(&g->aborted)) {
                ssize_t k = read_at(g->fd, buf, (size_t) MIN(step_end - g->prefix, (uint64_t) CHUNK_SIZE), g->prefix);
                if (k <= 0) {
                        g->err = k < 0 ? (int) -k : EINVAL; /* it shrank under us */
                        g->err_what = k < 0 ? "read" : "read (the file shrank)";
                        return;
                }
                checksum_update(&g->sum, buf, (size_t) k);
                g->prefix += (uint64_t) k;
        }
}

static void read_run(struct worker_job *j) {
        struct chunk *c = container_of(j, struct chunk, job);
        struct fget *g = c->g;
        c->n = c->off = 0;
        if (g->eof || g->err || atomic_load(&g->aborted)) {
                c->eof = true;
                return;
        }
        size_t want = (size_t) MIN(g->left, (uint64_t) CHUNK_SIZE);
        ssize_t k = g->tar ? tar_walk_read(g->walk, c->data, want) : read_at(g->fd, c->data, want, g->pos);
        if (k < 0) {
                g->err = (int) -k;
                g->err_what = g->tar ? "archive" : "read";
                return;
        }
        checksum_update(&g->sum, c->data, (size_t) k);
        c->n = (size_t) k;
        g->pos += (uint64_t) k;
        g->left -= (uint64_t) k;
        /* A short read is the end (pread fills all it can). */
        if ((size_t) k < want || g->left == 0)
                g->eof = true;
        c->eof = g->eof;
}

/* ---- loop side -------------------------------------------------------------- */

static void fail_errno(struct fget *g, int err, const char *what) {
        g->ended = true;
        atomic_store(&g->aborted, true);
        const char *detail = g->walk ? tar_walk_error(g->walk) : NULL;
        if (detail && detail[0])
                xfer_fail(g->s, g->started, NULL, err, "tar_get %s: %s", g->req.path, detail);
        else
                xfer_fail(g->s, g->started, NULL, err, "%s %s: %s", what, g->req.path, strerror(err));
}

static void pump(struct fget *g);

static void submit_read(struct fget *g, struct chunk *c) {
        int r = submit(g, &c->job);
        if (r < 0) {
                fail_errno(g, r == -EBUSY ? EAGAIN : -r, r == -EBUSY ? WORKER_BUSY_TEXT ": read" : "read");
                return;
        }
        c->busy = true;
}

/* Fill drained chunk @c on the loop itself, when the kernel can do it
 * without blocking (RWF_NOWAIT: the bytes are in the page cache) and the
 * checksum costs next to nothing (CRC-32C: ~10 us a chunk; SHA-256 stays
 * on the worker). This saves two thread handoffs per chunk, which cost
 * more than the copy. Only with no job out (the worker side's position
 * is the loop's then) and no other chunk holding bytes still to send
 * (they come before these). Returns 1 if @c was filled (or reached the
 * end), 0 if the worker must read. */
static bool fast_capable(const struct fget *g) {
        return !g->tar && !g->no_fast && g->sum.alg == CHECKSUM_CRC32C;
}

static int fast_read(struct fget *g, struct chunk *c) {
        if (!fast_capable(g) || g->in_flight > 0 || g->eof || g->err)
                return 0;
        for (unsigned i = 0; i < N_CHUNKS; i++)
                if (g->chunks[i].off < g->chunks[i].n)
                        return 0;
        size_t want = (size_t) MIN(g->left, (uint64_t) CHUNK_SIZE);
        struct iovec iov = { c->data, want };
        ssize_t k;
        do
                k = preadv2(g->fd, &iov, 1, (off_t) g->pos, RWF_NOWAIT);
        while (k < 0 && errno == EINTR);
        if (k < 0) {
                /* EAGAIN: not cached, the worker waits for the disk;
                 * anything else (EOPNOTSUPP: FUSE, NFS, ...) the worker
                 * reads and reports, from now on. */
                if (errno != EAGAIN)
                        g->no_fast = true;
                return 0;
        }
        checksum_update(&g->sum, c->data, (size_t) k);
        c->n = (size_t) k;
        c->off = 0;
        g->pos += (uint64_t) k;
        g->left -= (uint64_t) k;
        /* Short is not the end here (part of the range may be cached);
         * only 0 is. */
        if (k == 0 || g->left == 0)
                g->eof = true;
        c->eof = g->eof;
        return 1;
}

static void stream_begin(struct fget *g) {
        pump(g);
}

static int stream_start_encode(const void *m, struct buf *out) { return ext_stream_start_encode(m, out); }

/* A step came back: false when the download is over (freed if the session
 * let go) or failed (answered). */
static bool step_done(struct fget *g, struct worker_job *j, const char *what) {
        g->in_flight--;
        if (!g->s || g->ended) {
                maybe_destroy(g);
                return false;
        }
        if (j->cancelled || g->err) {
                fail_errno(g, g->err ? g->err : ECANCELED, g->err ? g->err_what : what);
                return false;
        }
        return true;
}

/* Hash the next piece of a resumed download's prefix, or start sending. */
static void prefix_next(struct fget *g) {
        if (g->prefix >= (uint64_t) g->req.offset) {
                stream_begin(g);
                return;
        }
        int r = submit(g, &g->prefix_job);
        if (r < 0)
                fail_errno(g, r == -EBUSY ? EAGAIN : -r, "hash the prefix of");
}

static void open_done(struct worker_job *j) {
        struct fget *g = container_of(j, struct fget, open_job);
        if (!step_done(g, j, "open"))
                return;
        struct ext_stream_start ss = { .has_stat = true, .offset = g->req.offset };
        int r = xfer_stat_fill(&g->st, g->req.path, &ss.stat);
        if (r >= 0) {
                r = xfer_send_json(g->s, EXT_MSG_STREAM_START, stream_start_encode, &ss);
                ext_stream_start_clear(&ss);
        }
        if (r < 0) {
                fail_errno(g, -r, "stream_start");
                return;
        }
        g->started = true;
        session_stream_sndbuf(g->s, XFER_SNDBUF);
        prefix_next(g);
}

static void prefix_done(struct worker_job *j) {
        struct fget *g = container_of(j, struct fget, prefix_job);
        if (step_done(g, j, "read"))
                prefix_next(g);
}

static void read_done(struct worker_job *j) {
        struct chunk *c = container_of(j, struct chunk, job);
        c->busy = false;
        if (step_done(c->g, j, "read"))
                pump(c->g);
}

static void job_timeout(struct fget *g) {
        if (!g->s || g->ended)
                return;
        g->ended = true;
        atomic_store(&g->aborted, true);
        xfer_fail(g->s, g->started, NULL, ETIMEDOUT, "file_get %s: gave up after %d s: the file system does not answer",
                  g->req.path, g->agent->io_timeout_ms / 1000);
}

static void open_timeout(struct worker_job *j) { job_timeout(container_of(j, struct fget, open_job)); }
static void prefix_timeout(struct worker_job *j) { job_timeout(container_of(j, struct fget, prefix_job)); }
static void read_timeout(struct worker_job *j) { job_timeout(container_of(j, struct chunk, job)->g); }

/* Send what credit and the queue allow; hand drained chunks back. */
static void pump(struct fget *g) {
        while (g->s && !g->ended && g->started) {
                struct chunk *c = &g->chunks[g->cur];
                if (c->busy)
                        return;
                if (c->off < c->n) {
                        /* Only into an empty queue: the frame goes from the
                         * chunk to the socket, and at most its unsent rest
                         * is copied (the drained callback resumes). */
                        size_t room = flow_send_room(&g->flow);
                        if (room == 0 || !session_queue_empty(g->s))
                                return;
                        size_t k = MIN(room, c->n - c->off);
                        int r = session_send(g->s, EXT_MSG_DATA, c->data + c->off, k);
                        if (r < 0) {
                                fail_errno(g, -r, "send");
                                return;
                        }
                        (void) flow_send_sent(&g->flow, k);
                        c->off += k;
                        continue;
                }
                if (c->eof) {
                        /* The empty Data needs no credit. */
                        g->ended = true;
                        (void) flow_send_sent(&g->flow, 0);
                        int r = session_send(g->s, EXT_MSG_DATA, NULL, 0);
                        struct tar_walk_stats ts = {};
                        if (g->walk)
                                tar_walk_stats(g->walk, &ts);
                        if (r >= 0)
                                r = xfer_send_done(g->s, g->flow.sent, &g->sum, (int64_t) ts.entries,
                                                   (int64_t) (ts.skipped + ts.changed));
                        if (r < 0) {
                                xfer_fail(g->s, true, NULL, -r, "file_get %s: out of memory", g->req.path);
                                return;
                        }
                        session_finish(g->s);
                        return;
                }
                if (fast_read(g, c))
                        continue;
                submit_read(g, c);
                /* Where the loop may read, the worker reads only what was
                 * not cached, one chunk at a time: this one, sent next,
                 * after which the loop tries again (readahead has likely
                 * caught up). Elsewhere the worker keeps both chunks
                 * going. */
                if (!fast_capable(g))
                        g->cur = (g->cur + 1) % N_CHUNKS;
        }
}

static int fget_header(void *op, uint8_t type, uint32_t len) {
        struct fget *g = op;
        if (type == EXT_MSG_CREDIT && len == EXT_CREDIT_SIZE)
                return 0;
        g->ended = true;
        atomic_store(&g->aborted, true);
        xfer_fail(g->s, true, "EPROTO", 0, "file_get: unexpected frame type %u (%u bytes) during the download", type,
                  len);
        return 0;
}

static int fget_frame(void *op, uint8_t type, const uint8_t *data, uint32_t len) {
        struct fget *g = op;
        if (g->ended)
                return 0; /* late credit after the end: harmless */
        uint32_t n = 0;
        const char *why = NULL;
        int r = type == EXT_MSG_CREDIT ? ext_credit_decode(data, len, &n, &why) : -EPROTO;
        if (r >= 0)
                r = flow_send_credit(&g->flow, n);
        if (r < 0) {
                g->ended = true;
                atomic_store(&g->aborted, true);
                xfer_fail(g->s, true, "EPROTO", 0, "file_get: %s", why ? why : "credit past the window");
                return 0;
        }
        pump(g);
        return 0;
}

static void fget_drained(void *op) { pump(op); }

static void fget_shutdown(void *op) {
        struct fget *g = op;
        if (g->ended)
                return;
        g->ended = true;
        atomic_store(&g->aborted, true);
        xfer_fail(g->s, true, NULL, ESHUTDOWN, "file_get %s: the agent is shutting down", g->req.path);
}

static void fget_free(void *op) {
        struct fget *g = op;
        g->s = NULL;
        atomic_store(&g->aborted, true);
        maybe_destroy(g);
}

static const struct session_ops fget_ops = {
        .name = "file_get",
        .frame = fget_frame,
        .header = fget_header,
        .drained = fget_drained,
        .shutdown = fget_shutdown,
        .free = fget_free,
};

/* TarGet's request, as the FileGet it amounts to. */
static int tar_get_decode(const uint8_t *payload, uint32_t len, struct ext_file_get *ret, const char **why) {
        struct ext_tar_get t;
        int r = ext_tar_get_decode(payload, len, &t, why);
        if (r < 0)
                return r;
        *ret = (struct ext_file_get) { .path = TAKE_PTR(t.path), .window = t.window, .checksum = TAKE_PTR(t.checksum) };
        ext_tar_get_clear(&t);
        return 0;
}

int fileget_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len) {
        struct fget *g = calloc(1, sizeof *g);
        if (!g) {
                free(payload);
                return -ENOMEM;
        }
        g->s = s;
        g->agent = session_agent(s);
        g->fd = -1;
        const char *why = NULL;
        g->tar = type == EXT_MSG_TAR_GET;
        int r = g->tar ? tar_get_decode(payload, len, &g->req, &why) : ext_file_get_decode(payload, len, &g->req, &why);
        free(payload);
        /* Attached first: every answer below ends it with session_finish. */
        session_set_op(s, &fget_ops, g);
        if (r == -ENOMEM)
                return xfer_fail(s, true, NULL, ENOMEM, "file_get: out of memory"), 0;
        if (r < 0)
                return xfer_fail(s, true, "EPROTO", 0, "invalid FileGet: %s", why ? why : "malformed JSON"), 0;
        if (g->req.path[0] != '/')
                return xfer_fail(s, false, NULL, EINVAL, "file_get: path must be absolute: \"%s\"", g->req.path), 0;
        if (g->req.offset < 0 || g->req.length < 0)
                return xfer_fail(s, false, NULL, EINVAL, "file_get %s: negative offset or length", g->req.path), 0;
        if (g->req.window == 0 || g->req.window > XFER_WINDOW_MAX)
                return xfer_fail(s, false, "ELIMIT", 0, "file_get: window %u outside 1..%u (window_max)", g->req.window,
                                 XFER_WINDOW_MAX),
                       0;
        char msg[128];
        enum checksum_alg alg;
        r = xfer_checksum_pick(g->tar ? "tar_get" : "file_get", g->req.checksum, &alg, msg, sizeof msg);
        if (r < 0)
                return xfer_fail(s, false, NULL, -r, "%s", msg), 0;
        checksum_init(&g->sum, alg);
        (void) flow_send_init(&g->flow, g->req.window, XFER_WINDOW_MAX, XFER_DATA_MAX);
        g->open_job = (struct worker_job) { .run = open_run, .done = open_done, .timeout = open_timeout,
                                            .lane = &g->lane };
        g->prefix_job = (struct worker_job) { .run = prefix_run, .done = prefix_done, .timeout = prefix_timeout,
                                              .lane = &g->lane };
        for (unsigned i = 0; i < N_CHUNKS; i++) {
                g->chunks[i] = (struct chunk) {
                        .job = { .run = read_run, .done = read_done, .timeout = read_timeout, .lane = &g->lane },
                        .g = g,
                        .data = malloc(CHUNK_SIZE),
                };
                if (!g->chunks[i].data)
                        return xfer_fail(s, false, NULL, ENOMEM, "file_get: out of memory"), 0;
        }
        r = submit(g, &g->open_job);
        if (r < 0)
                return xfer_fail(s, false, NULL, r == -EBUSY ? EAGAIN : -r, "file_get %s: %s", g->req.path,
                                 r == -EBUSY ? WORKER_BUSY_TEXT : "cannot queue the read"),
                       0;
        return 0;
}
