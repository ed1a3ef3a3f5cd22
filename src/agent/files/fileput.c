/* Uploads: FilePut (PROTOCOL.md 2.5), a host's Data stream into a
 * temporary file beside the target, renamed over it once the host's Done
 * matches the agent's own size and checksum of the whole file; and TarPut
 * (2.6), the same stream extracted as it arrives beneath a directory by
 * the safe extractor (tar_fs.h), the digest checked at the end (a tree is
 * not replaced atomically: what was extracted stays). One engine: only
 * where the bytes go differs.
 *
 * The loop copies arriving Data into one of two chunks of PUT_CHUNK bytes;
 * a full chunk goes to a worker job that writes and hashes it, and its
 * bytes are granted back as Credit once written. The agent's window is the
 * two chunks (XFER_PUT_WINDOW), so a host that keeps to its credit always
 * finds room, and a transfer holds ~1.25 MiB (two chunks and one Data
 * frame being collected) whatever the file's size. Every step (open, the
 * resumed prefix's hash, writes, the commit, undo or keep) is a job on one
 * lane, in order, under --io-timeout.
 *
 * Resumable uploads (upload_id) write to ".NAME.vsock-put-ID" in the
 * target's directory; a broken connection syncs and keeps it, and FilePut
 * with resume continues at its size (hashing what it holds first). Any
 * other failure removes the temporary file and the directories made for
 * it. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "agent/files/files.h"
#include "agent/ops.h"
#include "agent/serve/session.h"
#include "agent/serve/worker.h"
#include "agent/files/xfer.h"
#include "common/log.h"
#include "common/macro.h"
#include "lib/flow.h"
#include "lib/tar_fs.h"

#define N_CHUNKS 2
#define PUT_CHUNK (XFER_PUT_WINDOW / N_CHUNKS)
#define PREFIX_STEP (64u * 1024 * 1024)
#define UPLOAD_ID_MIN 16
#define UPLOAD_ID_MAX 64

struct fput;

struct chunk {
        struct worker_job job;
        struct fput *f;
        uint8_t *data;
        size_t n;
        bool busy;
};

enum put_state {
        PUT_OPENING,    /* open and prefix jobs */
        PUT_DATA,       /* StreamStart sent, Data arriving */
        PUT_DONE_WAIT,  /* the empty Data came: Done next */
        PUT_FINISHING,  /* the commit job runs */
        PUT_ENDED,      /* the terminal frame is queued */
};

struct fput {
        struct session *s;
        struct agent *agent;
        struct ext_file_put req;
        enum put_state state;
        struct flow_recv flow;
        struct worker_lane lane;
        struct worker_job open_job, prefix_job, finish_job, cleanup_job;
        struct chunk chunks[N_CHUNKS];
        unsigned cur;
        unsigned in_flight;
        bool cleanup_queued;
        bool keep;              /* the cleanup keeps the partial */
        atomic_bool aborted;
        char *partial;          /* the partial's name (resumable), or NULL */
        bool tar;               /* TarPut */
        bool preserve_owner;
        struct tar_extract *x;  /* TarPut: the extractor, beneath root_fd */
        int root_fd;
        /* The host's Done. */
        int64_t host_size;
        char host_sum[CHECKSUM_HEX_MAX];
        /* Worker side. */
        struct files_writer fw;
        char *werr;             /* a step's error text */
        int werrno;
        const char *wcode;      /* "ECHECKSUM", ... or NULL: the errno's */
        uint64_t offset;        /* where the host starts (the partial's size) */
        uint64_t hashed;        /* prefix bytes hashed */
        uint64_t written;       /* bytes in the file */
        bool committed;
        struct checksum sum;
        char sum_hex[CHECKSUM_HEX_MAX];
};

static void fput_destroy(struct fput *f) {
        for (unsigned i = 0; i < N_CHUNKS; i++)
                free(f->chunks[i].data);
        ext_file_put_clear(&f->req);
        files_writer_clear(&f->fw); /* undoes what is left (not when kept) */
        tar_extract_free(f->x);
        f->root_fd = safe_close(f->root_fd);
        free(f->werr);
        free(f->partial);
        free(f);
}

static int submit(struct fput *f, struct worker_job *j) {
        int r = worker_submit(f->agent->worker, j);
        if (r >= 0)
                f->in_flight++;
        return r;
}

static void cleanup_run(struct worker_job *j);
static void cleanup_done(struct worker_job *j);

/* Free once the session let go and no job is out; the temporary file is
 * kept (resumable) or undone on the worker first. */
static void maybe_destroy(struct fput *f) {
        if (f->s || f->in_flight > 0)
                return;
        if (!f->cleanup_queued && !f->agent->shutting_down && (f->fw.fd >= 0 || f->fw.tmp || f->fw.created_len || f->x)) {
                f->cleanup_queued = true;
                /* A resumable upload cut off while its bytes were arriving
                 * keeps them; anything that failed or was refused leaves
                 * nothing. */
                f->keep = f->partial && !f->werrno && !f->werr && f->fw.fd >= 0 && f->state == PUT_DATA;
                f->cleanup_job = (struct worker_job) { .run = cleanup_run, .done = cleanup_done, .lane = &f->lane };
                if (submit(f, &f->cleanup_job) >= 0)
                        return;
        }
        fput_destroy(f);
}

static void set_werr(struct fput *f, int e, const char *code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void set_werr(struct fput *f, int e, const char *code, const char *fmt, ...) {
        if (f->werr || f->werrno)
                return;
        f->werrno = e;
        f->wcode = code;
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&f->werr, fmt, ap) < 0)
                f->werr = NULL;
        va_end(ap);
}

/* ---- worker side ------------------------------------------------------------ */

/* TarPut: the directory (made with its parents) and its extractor. */
static void tar_open(struct fput *f) {
        char *err = NULL;
        int r = files_mkdirs(&f->fw, f->req.path, &err);
        if (r < 0 || err) {
                set_werr(f, r < 0 ? -r : EIO, NULL, "%s", err ? err : "out of memory");
                free(err);
                return;
        }
        f->root_fd = open(f->req.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (f->root_fd < 0) {
                set_werr(f, errno, NULL, "tar_put %s: %s", f->req.path, strerror(errno));
                return;
        }
        r = tar_extract_new(f->root_fd, f->preserve_owner ? TAR_X_OWNER : 0, &f->x);
        if (r < 0)
                set_werr(f, -r, NULL, "tar_put %s: %s", f->req.path, strerror(-r));
}

static void open_run(struct worker_job *j) {
        struct fput *f = container_of(j, struct fput, open_job);
        if (f->tar) {
                tar_open(f);
                return;
        }
        struct files_write_opts o = {
                .partial = f->partial,
                .resume = f->req.resume,
                .keep_s = XFER_PARTIAL_KEEP_S,
                .no_in_place = true,
        };
        char *err = NULL;
        int r = files_write_begin_opts(&f->fw, f->req.path, &o, &err);
        if (r < 0 || err) {
                set_werr(f, r < 0 ? -r : f->fw.error ? f->fw.error : EIO, NULL, "%s", err ? err : "out of memory");
                free(err);
                return;
        }
        struct stat st;
        if (fstat(f->fw.fd, &st) < 0) {
                set_werr(f, errno, NULL, "stat %s: %s", f->req.path, strerror(errno));
                return;
        }
        f->offset = (uint64_t) st.st_size;
        f->written = f->offset;
        /* ENOSPC before any byte is written, when the size is known. */
        struct statvfs vfs;
        if (f->req.size != EXT_UNSET_SIZE && (uint64_t) f->req.size > f->offset && fstatvfs(f->fw.fd, &vfs) == 0 &&
            (uint64_t) vfs.f_bavail * vfs.f_frsize < (uint64_t) f->req.size - f->offset)
                set_werr(f, ENOSPC, NULL, "file_put %s: %lld bytes do not fit in the %llu free", f->req.path,
                         (long long) (f->req.size - (int64_t) f->offset),
                         (unsigned long long) vfs.f_bavail * vfs.f_frsize);
}

static void prefix_run(struct worker_job *j) {
        struct fput *f = container_of(j, struct fput, prefix_job);
        uint8_t *buf = f->chunks[0].data;
        uint64_t end = MIN(f->offset, f->hashed + PREFIX_STEP);
        while (f->hashed < end && !atomic_load(&f->aborted)) {
                ssize_t k = pread(f->fw.fd, buf, (size_t) MIN(end - f->hashed, (uint64_t) PUT_CHUNK), (off_t) f->hashed);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        set_werr(f, k < 0 ? errno : EIO, NULL, "read %s: %s", f->fw.tmp,
                                 k < 0 ? strerror(errno) : "the partial file shrank");
                        return;
                }
                checksum_update(&f->sum, buf, (size_t) k);
                f->hashed += (uint64_t) k;
        }
}

static void write_run(struct worker_job *j) {
        struct chunk *c = container_of(j, struct chunk, job);
        struct fput *f = c->f;
        if (f->werr || f->werrno || atomic_load(&f->aborted))
                return;
        if (f->tar) {
                int r = tar_extract_write(f->x, c->data, c->n);
                if (r < 0) {
                        set_werr(f, -r, NULL, "tar_put %s: %s", f->req.path, tar_extract_error(f->x));
                        return;
                }
                checksum_update(&f->sum, c->data, c->n);
                f->written += c->n;
                return;
        }
        char *err = NULL;
        int r = files_write_data(&f->fw, c->data, c->n, &err);
        if (r < 0 || err) {
                int e = r < 0 ? -r : f->fw.error ? f->fw.error : EIO;
                set_werr(f, e, NULL, "%s", err ? err : "out of memory");
                free(err);
                return;
        }
        checksum_update(&f->sum, c->data, c->n);
        f->written += c->n;
}

static void finish_run(struct worker_job *j) {
        struct fput *f = container_of(j, struct fput, finish_job);
        if (f->werr || f->werrno || atomic_load(&f->aborted))
                return;
        const char *alg = checksum_name(f->sum.alg);
        checksum_final_hex(&f->sum, f->sum_hex);
        bool size_ok = f->req.size == EXT_UNSET_SIZE || (uint64_t) f->req.size == f->written;
        if ((uint64_t) f->host_size != f->written || !size_ok || strcmp(f->host_sum, f->sum_hex) != 0) {
                set_werr(f, 0, "ECHECKSUM",
                         "file_put %s: the agent received %llu bytes with %s %s, the host sent %lld with %s%s%s: "
                         "nothing replaced",
                         f->req.path, (unsigned long long) f->written, alg, f->sum_hex, (long long) f->host_size,
                         f->host_sum[0] ? f->host_sum : "no ", f->host_sum[0] ? "" : alg,
                         size_ok ? "" : " (not the announced size)");
                return;
        }
        if (f->tar) {
                int r = tar_extract_finish(f->x);
                if (r < 0)
                        set_werr(f, -r, NULL, "tar_put %s: %s", f->req.path, tar_extract_error(f->x));
                else
                        f->committed = true;
                return;
        }
        struct files_attrs a = {
                .mode = f->req.mode == EXT_UNSET_MODE ? 0644 : (mode_t) (f->req.mode & 07777),
                .uid = f->req.uid,
                .gid = f->req.gid,
                .has_mtime = f->req.mtime_ns != EXT_UNSET_TIME,
                .mtime = { .tv_sec = f->req.mtime_ns / 1000000000, .tv_nsec = f->req.mtime_ns % 1000000000 },
        };
        if (a.mtime.tv_nsec < 0) {
                a.mtime.tv_sec--;
                a.mtime.tv_nsec += 1000000000;
        }
        char *err = NULL;
        int r = files_write_commit_attrs(&f->fw, &a, &err);
        if (r < 0 || err) {
                set_werr(f, r < 0 ? -r : f->fw.error ? f->fw.error : EIO, NULL, "%s", err ? err : "out of memory");
                free(err);
                return;
        }
        f->committed = true;
}

static void cleanup_run(struct worker_job *j) {
        struct fput *f = container_of(j, struct fput, cleanup_job);
        tar_extract_free(TAKE_PTR(f->x));
        f->root_fd = safe_close(f->root_fd);
        f->fw.created_len = 0; /* a tree's directories stay with what was extracted */
        if (f->keep)
                files_write_keep(&f->fw);
        else
                files_write_abort(&f->fw);
}

/* ---- loop side -------------------------------------------------------------- */

static void fail(struct fput *f, bool fatal, const char *code, int err, const char *msg) {
        if (!f->s || f->state == PUT_ENDED)
                return;
        f->state = PUT_ENDED;
        atomic_store(&f->aborted, true);
        xfer_fail(f->s, fatal, code, err, "%s", msg);
}

/* A worker step failed: its error, fatal while Data may still come. */
static void fail_worker(struct fput *f) {
        bool fatal = f->state == PUT_DATA || f->state == PUT_DONE_WAIT;
        char msg[64];
        if (!f->werr)
                snprintf(msg, sizeof msg, "file_put %s", strerror(f->werrno ? f->werrno : EIO));
        fail(f, fatal, f->wcode, f->werrno ? f->werrno : EIO, f->werr ? f->werr : msg);
}

static void fail_submit(struct fput *f, int r) {
        char msg[256];
        snprintf(msg, sizeof msg, "file_put %s: %s", f->req.path, r == -EBUSY ? WORKER_BUSY_TEXT : strerror(-r));
        fail(f, f->state != PUT_OPENING, NULL, r == -EBUSY ? EAGAIN : -r, msg);
}

static int stream_start_encode(const void *m, struct buf *out) { return ext_stream_start_encode(m, out); }

static void stream_start(struct fput *f) {
        struct ext_stream_start ss = {
                .offset = (int64_t) f->offset,
                .window = XFER_PUT_WINDOW,
                .upload_id = f->req.upload_id,
        };
        (void) flow_recv_init(&f->flow, XFER_PUT_WINDOW, XFER_DATA_MAX);
        f->state = PUT_DATA;
        if (xfer_send_json(f->s, EXT_MSG_STREAM_START, stream_start_encode, &ss) < 0)
                fail(f, true, NULL, ENOMEM, "file_put: out of memory");
}

static bool step_done(struct fput *f, struct worker_job *j) {
        f->in_flight--;
        if (!f->s || f->state == PUT_ENDED) {
                maybe_destroy(f);
                return false;
        }
        if (j->cancelled && !f->werrno)
                set_werr(f, ECANCELED, NULL, "file_put %s: cancelled", f->req.path);
        if (f->werr || f->werrno) {
                fail_worker(f);
                return false;
        }
        return true;
}

static void open_done(struct worker_job *j) {
        struct fput *f = container_of(j, struct fput, open_job);
        if (!step_done(f, j))
                return;
        if (f->offset > 0) {
                int r = submit(f, &f->prefix_job);
                if (r < 0)
                        fail_submit(f, r);
                return;
        }
        stream_start(f);
}

static void prefix_done(struct worker_job *j) {
        struct fput *f = container_of(j, struct fput, prefix_job);
        if (!step_done(f, j))
                return;
        if (f->hashed < f->offset) {
                int r = submit(f, &f->prefix_job);
                if (r < 0)
                        fail_submit(f, r);
                return;
        }
        stream_start(f);
}

static void write_done(struct worker_job *j) {
        struct chunk *c = container_of(j, struct chunk, job);
        struct fput *f = c->f;
        size_t n = c->n;
        c->busy = false;
        c->n = 0;
        if (!step_done(f, j))
                return;
        uint32_t grant = flow_recv_consumed(&f->flow, n);
        if (grant > 0) {
                uint8_t p[EXT_CREDIT_SIZE];
                ext_credit_encode(grant, p);
                if (session_send(f->s, EXT_MSG_CREDIT, p, sizeof p) < 0)
                        fail(f, true, NULL, ENOMEM, "file_put: out of memory");
        }
}

static int done_encode(const void *m, struct buf *out) { return ext_done_encode(m, out); }

static void finish_done(struct worker_job *j) {
        struct fput *f = container_of(j, struct fput, finish_job);
        if (!step_done(f, j))
                return;
        struct tar_extract_stats ts = {};
        if (f->x)
                tar_extract_stats(f->x, &ts);
        struct ext_done d = {
                .size = (int64_t) f->written,
                .sha256 = f->sum.alg == CHECKSUM_SHA256 ? f->sum_hex : NULL,
                .crc32c = f->sum.alg == CHECKSUM_CRC32C ? f->sum_hex : NULL,
                .entries = (int64_t) ts.entries,
                .skipped = (int64_t) ts.skipped,
        };
        f->state = PUT_ENDED;
        if (xfer_send_json(f->s, EXT_MSG_DONE, done_encode, &d) < 0) {
                xfer_fail(f->s, true, NULL, ENOMEM, "file_put: out of memory");
                return;
        }
        session_finish(f->s);
}

static void job_timeout(struct fput *f) {
        char msg[256];
        snprintf(msg, sizeof msg, "file_put %s: gave up after %d s: the file system does not answer", f->req.path,
                 f->agent->io_timeout_ms / 1000);
        fail(f, f->state != PUT_OPENING, NULL, ETIMEDOUT, msg);
}

static void open_timeout(struct worker_job *j) { job_timeout(container_of(j, struct fput, open_job)); }
static void prefix_timeout(struct worker_job *j) { job_timeout(container_of(j, struct fput, prefix_job)); }
static void write_timeout(struct worker_job *j) { job_timeout(container_of(j, struct chunk, job)->f); }
static void finish_timeout(struct worker_job *j) { job_timeout(container_of(j, struct fput, finish_job)); }

static void cleanup_done(struct worker_job *j) {
        struct fput *f = container_of(j, struct fput, cleanup_job);
        f->in_flight--;
        fput_destroy(f);
}

/* Hand the current chunk to the worker. */
static int flush_chunk(struct fput *f) {
        struct chunk *c = &f->chunks[f->cur];
        if (c->n == 0)
                return 0;
        int r = submit(f, &c->job);
        if (r < 0)
                return r;
        c->busy = true;
        f->cur = (f->cur + 1) % N_CHUNKS;
        return 0;
}

static void protocol_error(struct fput *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void protocol_error(struct fput *f, const char *fmt, ...) {
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        fail(f, true, "EPROTO", 0, msg);
}

static int fput_header(void *op, uint8_t type, uint32_t len) {
        struct fput *f = op;
        if (f->state == PUT_ENDED)
                return 0;
        if (type == EXT_MSG_DATA && f->state == PUT_DATA && len <= XFER_DATA_MAX)
                return 0;
        if (type == EXT_MSG_DONE && f->state == PUT_DONE_WAIT && len <= 4096)
                return 0;
        protocol_error(f, "file_put: frame type %u of %u bytes not allowed here (Data <= %u bytes after StreamStart, "
                          "then Done)", type, len, XFER_DATA_MAX);
        return 0;
}

static void on_data(struct fput *f, const uint8_t *data, uint32_t len) {
        if (flow_recv_data(&f->flow, len) < 0) {
                protocol_error(f, "file_put: %u bytes of Data past the credit granted", len);
                return;
        }
        if (len == 0) {
                f->state = PUT_DONE_WAIT;
                int r = flush_chunk(f);
                if (r < 0)
                        fail_submit(f, r);
                return;
        }
        while (len > 0) {
                struct chunk *c = &f->chunks[f->cur];
                if (c->busy) {
                        /* Cannot happen within the credit: the chunks are the window. */
                        protocol_error(f, "file_put: no room for Data");
                        return;
                }
                size_t k = MIN((size_t) len, PUT_CHUNK - c->n);
                memcpy(c->data + c->n, data, k);
                c->n += k;
                data += k;
                len -= (uint32_t) k;
                if (c->n == PUT_CHUNK) {
                        int r = flush_chunk(f);
                        if (r < 0) {
                                fail_submit(f, r);
                                return;
                        }
                }
        }
}

static void on_done(struct fput *f, const uint8_t *data, uint32_t len) {
        struct ext_done d;
        const char *why = NULL;
        int r = ext_done_decode(data, len, &d, &why);
        if (r < 0) {
                protocol_error(f, "file_put: invalid Done: %s", why ? why : "malformed JSON");
                return;
        }
        f->host_size = d.size;
        const char *sum = ext_done_checksum(&d, f->sum.alg);
        snprintf(f->host_sum, sizeof f->host_sum, "%s", sum ? sum : "");
        ext_done_clear(&d);
        f->state = PUT_FINISHING;
        session_pause_input(f->s, true); /* the next request waits for the reply */
        r = submit(f, &f->finish_job);
        if (r < 0)
                fail_submit(f, r);
}

static int fput_frame(void *op, uint8_t type, const uint8_t *data, uint32_t len) {
        struct fput *f = op;
        if (f->state == PUT_ENDED)
                return 0;
        if (type == EXT_MSG_DATA)
                on_data(f, data, len);
        else
                on_done(f, data, len);
        return 0;
}

static void fput_shutdown(void *op) {
        struct fput *f = op;
        char msg[256];
        snprintf(msg, sizeof msg, "file_put %s: the agent is shutting down", f->req.path);
        fail(f, true, NULL, ESHUTDOWN, msg);
}

static void fput_free(void *op) {
        struct fput *f = op;
        f->s = NULL;
        atomic_store(&f->aborted, true);
        maybe_destroy(f);
}

static const struct session_ops fput_ops = {
        .name = "file_put",
        .frame = fput_frame,
        .header = fput_header,
        .shutdown = fput_shutdown,
        .free = fput_free,
};

static bool upload_id_ok(const char *id) {
        size_t n = strlen(id);
        if (n < UPLOAD_ID_MIN || n > UPLOAD_ID_MAX)
                return false;
        return strspn(id, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-") == n;
}

/* Checks that need no file system; a message in @msg when refused. */
static int request_check(struct fput *f, char *msg, size_t size) {
        const struct ext_file_put *q = &f->req;
        if (q->path[0] != '/')
                return snprintf(msg, size, "file_put: path must be absolute: \"%s\"", q->path), -EINVAL;
        if (q->size < EXT_UNSET_SIZE || (q->uid < 0 && q->uid != EXT_UNSET_ID) || (q->gid < 0 && q->gid != EXT_UNSET_ID) ||
            q->uid > UINT32_MAX - 1 || q->gid > UINT32_MAX - 1)
                return snprintf(msg, size, "file_put %s: size, uid or gid out of range", q->path), -EINVAL;
        if (q->mode != EXT_UNSET_MODE && (q->mode & ~07777u))
                return snprintf(msg, size, "file_put %s: mode %o has bits beyond 07777", q->path, q->mode), -EINVAL;
        if (q->upload_id && !upload_id_ok(q->upload_id))
                return snprintf(msg, size, "file_put: upload_id must be 16-64 characters of [0-9A-Za-z_-]"), -EINVAL;
        if (q->resume && !q->upload_id)
                return snprintf(msg, size, "file_put: resume needs an upload_id"), -EINVAL;
        return 0;
}

/* TarPut's request, as the FilePut it amounts to. */
static int tar_put_decode(struct fput *f, const uint8_t *payload, uint32_t len, const char **why) {
        struct ext_tar_put t;
        int r = ext_tar_put_decode(payload, len, &t, why);
        if (r < 0)
                return r;
        ext_file_put_init(&f->req);
        f->req.path = TAKE_PTR(t.path);
        f->preserve_owner = t.preserve_owner;
        f->req.checksum = TAKE_PTR(t.checksum);
        ext_tar_put_clear(&t);
        return 0;
}

int fileput_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len) {
        struct fput *f = calloc(1, sizeof *f);
        if (!f) {
                free(payload);
                return -ENOMEM;
        }
        f->s = s;
        f->agent = session_agent(s);
        files_writer_init(&f->fw);
        f->root_fd = -1;
        const char *why = NULL;
        f->tar = type == EXT_MSG_TAR_PUT;
        int r = f->tar ? tar_put_decode(f, payload, len, &why) : ext_file_put_decode(payload, len, &f->req, &why);
        free(payload);
        session_set_op(s, &fput_ops, f);
        char msg[256];
        if (r == -ENOMEM) {
                fail(f, true, NULL, ENOMEM, "file_put: out of memory");
                return 0;
        }
        if (r < 0) {
                snprintf(msg, sizeof msg, "invalid FilePut: %s", why ? why : "malformed JSON");
                fail(f, true, "EPROTO", 0, msg);
                return 0;
        }
        r = request_check(f, msg, sizeof msg);
        enum checksum_alg alg;
        if (r >= 0)
                r = xfer_checksum_pick(f->tar ? "tar_put" : "file_put", f->req.checksum, &alg, msg, sizeof msg);
        if (r < 0) {
                fail(f, false, NULL, -r, msg);
                return 0;
        }
        checksum_init(&f->sum, alg);
        if (f->req.upload_id) {
                const char *slash = strrchr(f->req.path, '/');
                if (asprintf(&f->partial, ".%s.vsock-put-%s", slash + 1, f->req.upload_id) < 0) {
                        f->partial = NULL;
                        fail(f, false, NULL, ENOMEM, "file_put: out of memory");
                        return 0;
                }
        }
        f->open_job = (struct worker_job) { .run = open_run, .done = open_done, .timeout = open_timeout,
                                            .lane = &f->lane };
        f->prefix_job = (struct worker_job) { .run = prefix_run, .done = prefix_done, .timeout = prefix_timeout,
                                              .lane = &f->lane };
        f->finish_job = (struct worker_job) { .run = finish_run, .done = finish_done, .timeout = finish_timeout,
                                              .lane = &f->lane };
        for (unsigned i = 0; i < N_CHUNKS; i++) {
                f->chunks[i] = (struct chunk) {
                        .job = { .run = write_run, .done = write_done, .timeout = write_timeout, .lane = &f->lane },
                        .f = f,
                        .data = malloc(PUT_CHUNK),
                };
                if (!f->chunks[i].data) {
                        fail(f, false, NULL, ENOMEM, "file_put: out of memory");
                        return 0;
                }
        }
        r = submit(f, &f->open_job);
        if (r < 0)
                fail_submit(f, r);
        return 0;
}
