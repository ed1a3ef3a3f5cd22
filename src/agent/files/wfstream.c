/* A big WriteFile request written to disk while it arrives (wfparse.h).
 *
 * The session hands over right after the frame header: the op takes the
 * payload as raw bytes, the parser turns the content into file bytes in
 * one of two reused 512 KiB chunks, and a worker thread writes the full
 * ones (OPEN, WRITE..., FINISH jobs, in order on one worker lane). While
 * both chunks are with the worker, input pauses: a session holds ~1 MiB
 * whatever the file's size, and the disk sets the pace. The session stays
 * in REQUEST until the last byte of the frame (its idle bound applies as
 * to any request), and a connection lost before the reply undoes the
 * write (temporary file and new directories removed). A step that does not
 * finish within the agent's I/O timeout is answered with an error at once;
 * the write is undone once the step returns.
 *
 * A request of another shape is buffered whole and served as before. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vsock/frame.h>
#include <vsock/msg.h>

#include "agent/files/files.h"
#include "agent/ops.h"
#include "agent/serve/session.h"
#include "agent/files/wfparse.h"
#include "agent/serve/worker.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/macro.h"

#define CHUNK_SIZE (512u * 1024)
#define N_CHUNKS 2
/* Below this much room, a chunk goes to the worker. */
#define CHUNK_MIN_ROOM (16u * 1024)

enum mode {
        M_STREAM,       /* content to the file */
        M_DISCARD,      /* failed: take the rest of the frame, keep nothing */
        M_BUFFER,       /* another shape: keep it all for files_serve */
};

struct wfs;

struct chunk {
        struct worker_job job;
        struct wfs *w;
        uint8_t *data;
        size_t n;
        bool busy;              /* with the worker */
};

struct wfs {
        struct session *s;      /* NULL once the session is gone */
        struct agent *agent;
        enum mode mode;
        uint32_t len, got;      /* the payload's size, and bytes taken */
        struct wfparse p;
        struct chunk chunks[N_CHUNKS];
        unsigned cur;           /* the chunk being filled */
        struct worker_job open_job, finish_job, abort_job;
        struct worker_lane lane; /* the jobs run in order */
        unsigned in_flight;     /* jobs submitted, done() not yet run */
        bool answered;          /* a timeout's error went out */
        bool finished;          /* FINISH submitted */
        bool abort_queued;      /* the undo job was submitted */
        atomic_bool aborted;    /* the session went away (read by the worker) */
        uint8_t *buffer;        /* M_BUFFER: the whole payload */
        /* Loop side: why the request is refused (malloc'd), if it is. */
        char *err;
        /* Worker side: the file, its error, and the reply. */
        struct files_writer fw;
        char *werr;
        char *path;             /* from the head, for OPEN */
        uint32_t mode_bits;     /* from the tail, for FINISH */
        struct buf reply;
        int rc;
        size_t charge;          /* held in the agent's memory budget */
};

static void wfs_destroy(struct wfs *w) {
        wfparse_clear(&w->p);
        for (unsigned i = 0; i < N_CHUNKS; i++)
                free(w->chunks[i].data);
        files_writer_clear(&w->fw); /* undoes an unfinished write */
        free(w->buffer);
        free(w->err);
        free(w->werr);
        free(w->path);
        buf_free(&w->reply);
        (void) budget_release(&w->agent->budget, w->charge);
        free(w);
}

static void abort_run(struct worker_job *j);
static void abort_done(struct worker_job *j);

/* Free once no job is out and the session is gone. A write left half
 * done is undone on the worker first (it owns the file system work). */
static void maybe_destroy(struct wfs *w) {
        if (w->in_flight > 0 || w->s)
                return;
        /* (Not while the agent exits: the worker is being taken down.) */
        if (!w->abort_queued && !w->agent->shutting_down && (w->fw.fd >= 0 || w->fw.tmp || w->fw.created_len)) {
                w->abort_queued = true;
                w->abort_job = (struct worker_job) { .run = abort_run, .done = abort_done, .lane = &w->lane };
                if (worker_submit(w->agent->worker, &w->abort_job) >= 0) {
                        w->in_flight++;
                        return;
                }
        }
        wfs_destroy(w); /* undoes inline what is left */
}

static int submit(struct wfs *w, struct worker_job *j) {
        int r = worker_submit(w->agent->worker, j);
        if (r >= 0)
                w->in_flight++;
        return r;
}

/* ---- worker side ------------------------------------------------------------ */

static void open_run(struct worker_job *j) {
        struct wfs *w = container_of(j, struct wfs, open_job);
        w->rc = files_write_begin(&w->fw, w->path, &w->werr);
}

static void write_run(struct worker_job *j) {
        struct chunk *c = container_of(j, struct chunk, job);
        struct wfs *w = c->w;
        if (w->rc >= 0 && !w->werr && !atomic_load(&w->aborted))
                w->rc = files_write_data(&w->fw, c->data, c->n, &w->werr);
}

static void finish_run(struct worker_job *j) {
        struct wfs *w = container_of(j, struct wfs, finish_job);
        const char *err = w->err ? w->err : w->werr;
        bool aborted = atomic_load(&w->aborted);
        if (w->rc >= 0 && !err && !aborted)
                w->rc = files_write_commit(&w->fw, w->mode_bits, &w->werr);
        err = w->err ? w->err : w->werr;
        if (err || w->rc < 0 || aborted)
                files_write_abort(&w->fw);
        if (aborted)
                return;
        w->reply = BUF_INIT(0);
        int r = fileop_reply_begin(&w->reply);
        if (r >= 0)
                r = files_write_reply(&w->reply, w->rc < 0 ? "agent out of memory" : err);
        if (r < 0 && w->rc >= 0)
                w->rc = r;
}

static void abort_run(struct worker_job *j) {
        struct wfs *w = container_of(j, struct wfs, abort_job);
        files_write_abort(&w->fw);
}

/* ---- loop side -------------------------------------------------------------- */

/* A step did not finish in time: the host hears now, the steps still to
 * come do nothing, and the write is undone once the stuck one returns. */
static void timed_out(struct wfs *w) {
        atomic_store(&w->aborted, true);
        if (!w->s || w->answered)
                return;
        w->answered = true;
        char msg[160];
        snprintf(msg, sizeof msg, "write_file: gave up after %d s: the file system does not answer",
                 w->agent->io_timeout_ms / 1000);
        struct buf out = BUF_INIT(0);
        int r = fileop_reply_begin(&out);
        if (r >= 0)
                r = files_write_reply(&out, msg);
        fileop_reply(w->s, &out, r);
}

static void open_timeout(struct worker_job *j) { timed_out(container_of(j, struct wfs, open_job)); }
static void chunk_timeout(struct worker_job *j) { timed_out(container_of(j, struct chunk, job)->w); }
static void finish_timeout(struct worker_job *j) { timed_out(container_of(j, struct wfs, finish_job)); }

static size_t wfs_raw(void *op, const uint8_t *data, size_t len);

static void resume_if_room(struct wfs *w) {
        if (w->s && !w->finished && w->mode == M_STREAM && !w->chunks[w->cur].busy)
                session_pause_input(w->s, false);
}

static void open_done(struct worker_job *j) {
        struct wfs *w = container_of(j, struct wfs, open_job);
        w->in_flight--;
        maybe_destroy(w);
}

static void write_done(struct worker_job *j) {
        struct chunk *c = container_of(j, struct chunk, job);
        struct wfs *w = c->w;
        c->busy = false;
        c->n = 0;
        w->in_flight--;
        if (j->cancelled)
                atomic_store(&w->aborted, true);
        resume_if_room(w);
        maybe_destroy(w);
}

static void finish_done(struct worker_job *j) {
        struct wfs *w = container_of(j, struct wfs, finish_job);
        w->in_flight--;
        if (w->s && !j->cancelled && !atomic_load(&w->aborted))
                fileop_reply(w->s, &w->reply, w->rc < 0 ? w->rc : 0);
        else if (w->s)
                session_finish(w->s);
        maybe_destroy(w);
}

static void abort_done(struct worker_job *j) {
        struct wfs *w = container_of(j, struct wfs, abort_job);
        w->in_flight--;
        maybe_destroy(w);
}

/* Refuse the request (the reply comes once the whole frame is in). */
static void refuse(struct wfs *w, const char *why) {
        if (!w->err && asprintf(&w->err, "invalid write_file request: %s", why ? why : "malformed JSON") < 0)
                w->err = NULL;
        w->mode = M_DISCARD;
}

/* The memory budget has no room for what the request needs. */
static void refuse_budget(struct wfs *w) {
        if (!w->err && asprintf(&w->err, "write_file: %s (%zu MiB)", AGENT_BUDGET_TEXT,
                                budget_limit(&w->agent->budget) >> 20) < 0)
                w->err = NULL;
        w->mode = M_DISCARD;
}

/* A step could not be queued (@r from submit()). */
static void refuse_submit(struct wfs *w, int r) {
        if (r == -EBUSY && !w->err) {
                w->err = strdup("write_file: " WORKER_BUSY_TEXT);
                w->mode = M_DISCARD;
        }
        refuse(w, "agent out of resources");
}

/* Hand a filled chunk to the worker. */
static void flush_chunk(struct wfs *w) {
        struct chunk *c = &w->chunks[w->cur];
        if (c->n == 0 || w->mode != M_STREAM)
                return;
        int r = submit(w, &c->job);
        if (r < 0) {
                refuse_submit(w, r);
                c->n = 0;
                return;
        }
        c->busy = true;
        w->cur = (w->cur + 1) % N_CHUNKS;
}

/* The head is complete: the path is known, the file can be opened. */
static void head_done(struct wfs *w) {
        struct vsock_write_file_request req = {};
        const char *why = NULL;
        int r = wfparse_head(&w->p, &req, &why);
        if (r != 0) {
                refuse(w, r < 0 ? "out of memory" : why);
                return;
        }
        w->path = req.path ? strdup(req.path) : strdup("");
        vsock_write_file_request_clear(&req);
        r = w->path ? submit(w, &w->open_job) : -ENOMEM;
        if (r < 0)
                refuse_submit(w, r);
}

/* The whole frame is in. */
static void frame_done(struct wfs *w) {
        struct session *s = w->s;
        session_request_done(s);
        if (w->mode == M_BUFFER) {
                uint8_t *payload = TAKE_PTR(w->buffer);
                /* fileop takes over the session; this op is done. */
                int r = fileop_start(s, VSOCK_MSG_WRITE_FILE, payload, w->len);
                wfs_destroy(w);
                if (r < 0)
                        session_finish(s);
                return;
        }
        if (w->mode == M_STREAM) {
                struct vsock_write_file_request req = {};
                const char *why = NULL;
                int r = wfparse_finish(&w->p, &req, &why);
                if (r != 0)
                        refuse(w, r < 0 ? "out of memory" : why);
                else
                        w->mode_bits = req.mode;
                vsock_write_file_request_clear(&req);
        }
        if (w->mode == M_STREAM)
                flush_chunk(w);
        session_pause_input(s, true); /* nothing else may come */
        int r = submit(w, &w->finish_job);
        if (r < 0) {
                log_error("session %llu: write_file: cannot queue the last step", (unsigned long long) session_id(s));
                struct buf out = BUF_INIT(0);
                int rr = fileop_reply_begin(&out);
                if (rr >= 0)
                        rr = files_write_reply(&out, r == -EBUSY ? "write_file: " WORKER_BUSY_TEXT
                                                                  : "write_file: agent out of resources");
                atomic_store(&w->aborted, true);
                fileop_reply(s, &out, rr);
                return;
        }
        w->finished = true;
}

/* M_BUFFER: keep everything, as the session's decoder would have. */
static int to_buffer(struct wfs *w, const uint8_t *data, size_t n) {
        if (!w->buffer) {
                /* In place of the chunks. */
                size_t need = w->len ? w->len : 1;
                if (budget_reserve(&w->agent->budget, need) < 0)
                        return -ENOBUFS;
                (void) budget_release(&w->agent->budget, w->charge);
                w->charge = need;
                w->buffer = malloc(need);
                if (!w->buffer)
                        return -ENOMEM;
                if (buf_size(&w->p.head) > 0)
                        memcpy(w->buffer, buf_head(&w->p.head), buf_size(&w->p.head));
        }
        if (n > 0)
                memcpy(w->buffer + w->got, data, n);
        return 0;
}

static size_t wfs_raw(void *op, const uint8_t *data, size_t len) {
        struct wfs *w = op;
        size_t taken = 0;
        while (taken < len && w->got < w->len) {
                size_t n = MIN(len - taken, (size_t) (w->len - w->got));
                if (w->mode == M_BUFFER) {
                        int r = to_buffer(w, data + taken, n);
                        if (r == -ENOBUFS)
                                refuse_budget(w);
                        if (r < 0) {
                                refuse(w, "out of memory");
                                continue;
                        }
                } else if (w->mode == M_DISCARD) {
                        /* nothing to keep */
                } else {
                        struct chunk *c = &w->chunks[w->cur];
                        if (c->busy) {
                                session_pause_input(w->s, true);
                                return taken;
                        }
                        if (!c->data && !(c->data = malloc(CHUNK_SIZE))) {
                                refuse(w, "out of memory");
                                continue;
                        }
                        size_t room = CHUNK_SIZE - c->n;
                        n = MIN(n, (room - 3) / 3 * 4);
                        enum wfparse_state before = w->p.state;
                        size_t nout = 0;
                        ssize_t used = wfparse_feed(&w->p, data + taken, n, c->data + c->n, &nout);
                        if (used < 0) {
                                refuse(w, "out of memory");
                                continue;
                        }
                        c->n += nout;
                        n = (size_t) used;
                        if (w->p.state == WFPARSE_NOT_STREAMABLE) {
                                /* The consumed bytes are in the head. */
                                w->mode = M_BUFFER;
                                w->got += (uint32_t) n;
                                taken += n;
                                if (to_buffer(w, NULL, 0) < 0)
                                        refuse(w, "out of memory");
                                continue;
                        }
                        if (before == WFPARSE_HEAD && w->p.state != WFPARSE_HEAD)
                                head_done(w);
                        if (w->p.state == WFPARSE_FAILED)
                                refuse(w, w->p.why);
                        else if (CHUNK_SIZE - c->n < CHUNK_MIN_ROOM)
                                flush_chunk(w);
                }
                w->got += (uint32_t) n;
                taken += n;
        }
        if (w->got == w->len && !w->finished)
                frame_done(w); /* may free @w (handed to fileop) */
        return taken;
}

static void wfs_free(void *op) {
        struct wfs *w = op;
        if (!w)
                return;
        /* Jobs still out see the abort; the last done() frees. */
        w->s = NULL;
        atomic_store(&w->aborted, true);
        maybe_destroy(w);
}

static const struct session_ops wfs_ops = {
        .name = "write_file",
        .raw = wfs_raw,
        .free = wfs_free,
};

int wfstream_start(struct session *s, uint32_t len) {
        struct wfs *w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->s = s;
        w->agent = session_agent(s);
        w->len = len;
        w->mode = M_STREAM;
        wfparse_init(&w->p);
        files_writer_init(&w->fw);
        w->open_job = (struct worker_job) { .run = open_run, .done = open_done, .timeout = open_timeout,
                                            .lane = &w->lane };
        w->finish_job = (struct worker_job) { .run = finish_run, .done = finish_done, .timeout = finish_timeout,
                                              .lane = &w->lane };
        for (unsigned i = 0; i < N_CHUNKS; i++)
                w->chunks[i] = (struct chunk) {
                        .job = { .run = write_run, .done = write_done, .timeout = chunk_timeout, .lane = &w->lane },
                        .w = w,
                };
        /* The two chunks, whatever the file's size. */
        if (budget_reserve(&w->agent->budget, N_CHUNKS * CHUNK_SIZE) == 0)
                w->charge = N_CHUNKS * CHUNK_SIZE;
        else
                refuse_budget(w);
        session_set_op(s, &wfs_ops, w);
        log_debug("session %llu: request WriteFile (%u bytes), streamed", (unsigned long long) session_id(s), len);
        return 0;
}
