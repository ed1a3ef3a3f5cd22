/* The requests on detached processes (PROTOCOL.md 2.7): ProcStart,
 * ProcList, ProcAttach, ProcControl and ProcWait, as session operations
 * over the records of procs.h and the runners of procrun.h.
 *
 * ProcStart is decoded on a worker (it may be as large as an exec
 * request); the others are small and bounded, decoded where they arrive.
 * Followers (attach, wait, a start waiting for its process) hold a
 * proc_watch: every change of the record queues them once per pass, and
 * an attach sends output only while the connection takes it, so a slow
 * host costs the process nothing (it falls behind the ring and gets a
 * ProcGap). */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vsock/msg.h>

#include "agent/agent.h"
#include "agent/serve/ext.h"
#include "agent/ops.h"
#include "agent/proc/procrun.h"
#include "agent/proc/procs.h"
#include "agent/serve/session.h"
#include "agent/serve/worker.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/macro.h"
#include "lib/ext_msg.h"

/* Requests other than ProcStart are small: ProcControl carries at most
 * data_max bytes (base64 in JSON). */
#define PROCOP_REQUEST_MAX (1u << 20)
/* ProcControl stdin data, and one ProcOutput's bytes (limits.data_max). */
#define PROCOP_DATA_MAX EXT_LIMIT_DATA_MAX
/* ProcWait timeout_ms at most: a day. */
#define PROCOP_WAIT_MAX_MS (INT64_C(24) * 3600 * 1000)

struct procop {
        struct session *s;
        struct agent *a;
        uint8_t type;
        struct worker_job job;          /* ProcStart decoding */
        bool decoding;
        uint8_t *payload;
        uint32_t len;
        int decode_rc;
        char why[200];
        struct ext_proc_start start;
        struct proc_watch watch;
        struct timer timeout;           /* ProcWait */
        uint64_t pos;                   /* ProcAttach: next offset to send */
        bool follow, input;
        bool input_held;                /* paused: the process's stdin queue is full */
        bool done;
        bool close;                     /* the host broke the protocol: close after the reply */
};

/* ---- replies ---------------------------------------------------------------------- */

static void finish(struct procop *o) {
        if (o->done)
                return;
        o->done = true;
        proc_watch_remove(&o->watch);
        timer_disarm(&o->timeout);
        if (o->input_held) {
                o->input_held = false;
                session_pause_input(o->s, false);
        }
        if (o->close)
                session_finish_close(o->s);
        else
                session_finish(o->s);
}

/* The request's terminal Error (PROTOCOL.md 2.10): the errno's name, or
 * ELIMIT. */
static void fail(struct procop *o, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(struct procop *o, int err, const char *fmt, ...) {
        char msg[400];
        va_list ap;
        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        bool limit = err == PROCS_ELIMIT;
        (void) ext_error_send(o->s, limit ? "ELIMIT" : NULL, limit ? 0 : err, ext_msg_type_name(o->type), "%s", msg);
        finish(o);
}

/* A request that breaks the protocol: Error EPROTO, then the connection
 * closes. */
static void fail_proto(struct procop *o, const char *why) {
        (void) ext_error_send(o->s, "EPROTO", EPROTO, ext_msg_type_name(o->type), "invalid %s: %s",
                              ext_msg_type_name(o->type), why);
        o->close = true;
        finish(o);
}

static void send_info(struct procop *o, uint8_t type, const struct proc *p) {
        struct ext_proc_info info;
        proc_info(p, &info);
        struct buf *q = session_encode_begin(o->s, type);
        if (q)
                session_encode_end(o->s, ext_proc_info_encode(&info, q));
}

/* ProcEnd: the terminal frame of an attach or a wait. */
static void end_with(struct procop *o, const char *reason, const struct proc *p) {
        struct ext_proc_end end;
        ext_proc_end_init(&end);
        end.reason = (char *) reason;
        end.offset = o->pos;
        if (p && proc_state(p) == PROC_EXITED) {
                int code, signo, oom;
                int64_t ended;
                proc_result(p, &code, &signo, &oom, &ended);
                end.exit_code = code;
                end.signal = signo;
                end.oom_killed = oom > 0;
                end.ended_ns = ended;
        }
        struct buf *q = session_encode_begin(o->s, EXT_MSG_PROC_END);
        if (q)
                session_encode_end(o->s, ext_proc_end_encode(&end, q));
        finish(o);
}

/* The process a request names: by id, else by tag. */
static struct proc *lookup(struct procop *o, uint64_t id, const char *tag) {
        if (id == 0 && !tag) {
                fail(o, EINVAL, "%s: neither id nor tag given", ext_msg_type_name(o->type));
                return NULL;
        }
        struct proc *p = procs_find(o->a->procs, id, tag);
        if (!p) {
                if (id != 0)
                        fail(o, ENOENT, "no process with id %llu", (unsigned long long) id);
                else
                        fail(o, ENOENT, "no process tagged \"%s\"", tag);
        }
        return p;
}

/* ---- following ------------------------------------------------------------------- */

/* Send output from o->pos while the connection takes it; the end when
 * there is no more to send. */
static void attach_pump(struct procop *o) {
        struct proc *p = o->watch.proc;
        if (o->done)
                return;
        if (!p) {
                end_with(o, "removed", NULL);
                return;
        }
        if (o->input_held && !procrun_stdin_full(proc_get_run(p))) {
                o->input_held = false;
                session_pause_input(o->s, false);
        }
        const struct outring *ring = proc_ring(p);
        while (!session_queue_high(o->s)) {
                struct outring_chunk ch;
                if (outring_read(ring, o->pos, PROCOP_DATA_MAX, &ch) < 0)
                        break;
                if (ch.kind == OUTRING_NONE)
                        break;
                if (ch.kind == OUTRING_GAP) {
                        uint8_t g[EXT_PROC_GAP_SIZE];
                        ext_proc_gap_encode(ch.offset, ch.to, g);
                        if (session_send(o->s, EXT_MSG_PROC_GAP, g, sizeof g) < 0)
                                return;
                        o->pos = ch.to;
                        continue;
                }
                uint8_t *f;
                if (session_frame_begin(o->s, EXT_MSG_PROC_OUTPUT, EXT_PROC_OUTPUT_HEADER_SIZE + ch.len, &f) < 0)
                        return;
                ext_proc_output_header(ch.stream, ch.offset, f);
                memcpy(f + EXT_PROC_OUTPUT_HEADER_SIZE, ch.data, ch.len);
                session_frame_end(o->s, EXT_PROC_OUTPUT_HEADER_SIZE + ch.len);
                o->pos += ch.len;
        }
        if (o->pos < outring_end(ring))
                return; /* the drained callback comes back */
        if (!o->follow)
                end_with(o, "end", p);
        else if (proc_state(p) == PROC_EXITED)
                end_with(o, "exit", p);
}

static void wait_check(struct procop *o) {
        struct proc *p = o->watch.proc;
        if (o->done)
                return;
        if (!p)
                end_with(o, "removed", NULL);
        else if (proc_state(p) == PROC_EXITED) {
                o->pos = outring_end(proc_ring(p));
                end_with(o, "exit", p);
        }
}

static void start_check(struct procop *o) {
        struct proc *p = o->watch.proc;
        if (o->done)
                return;
        if (!p) {
                fail(o, ENOENT, "the process's record was removed");
                return;
        }
        if (proc_state(p) == PROC_STARTING)
                return;
        send_info(o, EXT_MSG_PROC_INFO, p);
        finish(o);
}

static void on_watch(struct defer *d) {
        struct procop *o = container_of(d, struct procop, watch.defer);
        switch (o->type) {
        case EXT_MSG_PROC_ATTACH:
                attach_pump(o);
                break;
        case EXT_MSG_PROC_WAIT:
                wait_check(o);
                break;
        case EXT_MSG_PROC_START:
                start_check(o);
                break;
        }
}

static void on_timeout(struct timer *t) {
        struct procop *o = container_of(t, struct procop, timeout);
        if (!o->done)
                fail(o, ETIMEDOUT, "process still running after timeout_ms");
}

/* ---- session callbacks ------------------------------------------------------------- */

static int procop_frame(void *op, uint8_t type, const uint8_t *data, uint32_t len) {
        struct procop *o = op;
        struct proc *p = o->watch.proc;
        if (o->type != EXT_MSG_PROC_ATTACH || !o->input || o->done)
                return -EPROTO;
        struct proc_run *r = p ? proc_get_run(p) : NULL;
        switch (type) {
        case VSOCK_MSG_STDIN:
                if (!r)
                        return 0;
                if (len == 0) {
                        (void) procrun_stdin_close(r);
                        return 0;
                }
                if (procrun_stdin_write(r, data, len, true) >= 0 && procrun_stdin_full(r) && !o->input_held) {
                        o->input_held = true;
                        session_pause_input(o->s, true);
                }
                return 0;
        case VSOCK_MSG_SIGNAL: {
                int signo;
                if (vsock_signal_decode(data, len, &signo) < 0)
                        return -EPROTO;
                if (r)
                        (void) procrun_signal(r, signo);
                return 0;
        }
        case VSOCK_MSG_RESIZE: {
                uint16_t rows, cols;
                if (vsock_resize_decode(data, len, &rows, &cols) < 0)
                        return -EPROTO;
                if (r)
                        (void) procrun_resize(r, rows, cols);
                return 0;
        }
        default:
                return -EPROTO;
        }
}

static void procop_drained(void *op) {
        struct procop *o = op;
        if (o->type == EXT_MSG_PROC_ATTACH)
                attach_pump(o);
}

static void procop_input_eof(void *op) {
        /* The host half-closed: with input, that is its stdin's end. */
        struct procop *o = op;
        struct proc *p = o->watch.proc;
        if (o->type == EXT_MSG_PROC_ATTACH && o->input && p && proc_get_run(p))
                (void) procrun_stdin_close(proc_get_run(p));
}

static void job_release(struct procop *o);

static void procop_free(void *op) {
        struct procop *o = op;
        if (!o)
                return;
        proc_watch_remove(&o->watch);
        timer_disarm(&o->timeout);
        if (o->decoding) {
                /* The decoding job goes on without us; its done() frees it. */
                o->s = NULL;
                if (worker_cancel(&o->job))
                        job_release(o);
                return;
        }
        job_release(o);
}

static void job_release(struct procop *o) {
        if (o->payload)
                explicit_bzero(o->payload, o->len);
        free(o->payload);
        ext_proc_start_clear(&o->start);
        free(o);
}

static const struct session_ops procop_ops = {
        .name = "proc",
        .frame = procop_frame,
        .input_eof = procop_input_eof,
        .drained = procop_drained,
        .free = procop_free,
};

/* ---- the requests ------------------------------------------------------------------- */

static void start_decoded(struct procop *o) {
        struct ext_proc_start *q = &o->start;
        const struct procs_limits *lim = procs_get_limits(o->a->procs);
        if (q->ring > lim->ring_max) {
                fail(o, PROCS_ELIMIT, "ring %u bytes: more than limits.ring_max (%u)", q->ring, lim->ring_max);
                return;
        }
        if (q->tty && q->stdin_pipe) {
                /* A terminal is always writable: stdin is implied. */
                q->stdin_pipe = false;
        }
        struct proc_spec spec = {
                .tag = q->tag,
                .command = q->command,
                .args = q->args,
                .n_args = q->n_args,
                .tty = q->tty,
                .ring = q->ring,
                .keep_ms = (int64_t) q->keep_s * 1000,
        };
        struct proc *p;
        const char *why = NULL;
        int r = procs_add(o->a->procs, &spec, &p, &why);
        if (r < 0) {
                fail(o, -r, "%s%s%s", q->tag ? q->tag : "", q->tag ? ": " : "", why ? why : strerror(-r));
                return;
        }
        log_info("session %llu: detached process %llu%s%s", (unsigned long long) session_id(o->s),
                 (unsigned long long) proc_id(p), q->tag ? " tag " : "", q->tag ? q->tag : "");
        proc_watch_add(p, &o->watch, false);
        (void) procrun_start(o->a, p, q);
        start_check(o); /* it may have failed already */
}

/* Worker: ProcStart may be large. */
static void decode_run(struct worker_job *j) {
        struct procop *o = container_of(j, struct procop, job);
        const char *why = NULL;
        o->decode_rc = ext_proc_start_decode(o->payload ? o->payload : (const uint8_t *) "", o->len, &o->start, &why);
        if (o->decode_rc < 0)
                snprintf(o->why, sizeof o->why, "%s", why ? why : strerror(-o->decode_rc));
        if (o->payload)
                explicit_bzero(o->payload, o->len);
        free(TAKE_PTR(o->payload));
}

static void decode_done(struct worker_job *j) {
        struct procop *o = container_of(j, struct procop, job);
        o->decoding = false;
        if (!o->s) {
                job_release(o);
                return;
        }
        if (j->cancelled || j->timed_out)
                fail(o, EAGAIN, "agent busy");
        else if (o->decode_rc == -ENOMEM)
                fail(o, ENOMEM, "out of memory");
        else if (o->decode_rc < 0)
                fail_proto(o, o->why);
        else
                start_decoded(o);
}

/* Decode the request into @ret (a struct of @shape); on failure the
 * request ends with Error EPROTO. */
static bool decode(struct procop *o, const struct ext_shape *shape, const uint8_t *data, uint32_t len, void *ret) {
        const char *why = NULL;
        if (ext_decode(shape, data, len, ret, &why) >= 0)
                return true;
        fail_proto(o, why ? why : "bad JSON");
        return false;
}

static void do_list(struct procop *o, const uint8_t *data, uint32_t len) {
        struct ext_proc_list q;
        if (!decode(o, &ext_proc_list_shape, data, len, &q))
                return;
        struct procs *m = o->a->procs;
        struct ext_proc_list_reply reply = { 0 };
        reply.procs = calloc(procs_count(m) + 1, sizeof *reply.procs);
        if (!reply.procs) {
                ext_proc_list_clear(&q);
                fail(o, ENOMEM, "out of memory");
                return;
        }
        for (struct proc *p = procs_first(m); p; p = proc_next(p)) {
                if (q.tag) {
                        struct ext_proc_info i;
                        proc_info(p, &i);
                        if (!i.tag || strcmp(i.tag, q.tag) != 0)
                                continue;
                }
                proc_info(p, &reply.procs[reply.n_procs++]);
        }
        struct buf *out = session_encode_begin(o->s, EXT_MSG_PROC_LIST_REPLY);
        if (out)
                session_encode_end(o->s, ext_proc_list_reply_encode(&reply, out));
        free(reply.procs); /* the entries are borrowed */
        ext_proc_list_clear(&q);
        finish(o);
}

static void do_attach(struct procop *o, const uint8_t *data, uint32_t len) {
        struct ext_proc_attach q;
        if (!decode(o, &ext_proc_attach_shape, data, len, &q))
                return;
        struct proc *p = lookup(o, q.id, q.tag);
        if (p) {
                uint64_t end = outring_end(proc_ring(p));
                if (q.offset < -1 || (q.offset >= 0 && (uint64_t) q.offset > end))
                        fail(o, EINVAL, "offset %lld beyond the output's end %llu", (long long) q.offset,
                             (unsigned long long) end);
                else {
                        o->pos = q.offset == -1 ? end : (uint64_t) q.offset;
                        o->follow = q.follow;
                        o->input = q.input;
                        send_info(o, EXT_MSG_PROC_INFO, p);
                        proc_watch_add(p, &o->watch, true); /* the first pump comes after the pass */
                }
        }
        ext_proc_attach_clear(&q);
}

static void do_control(struct procop *o, const uint8_t *data, uint32_t len) {
        struct ext_proc_control q;
        if (!decode(o, &ext_proc_control_shape, data, len, &q))
                return;
        struct proc *p = lookup(o, q.id, q.tag);
        if (!p)
                goto out;
        struct proc_run *r = proc_get_run(p);
        const char *op = q.op;
        int rc = 0;
        if (strcmp(op, "stdin") == 0) {
                if (q.data.len > PROCOP_DATA_MAX) {
                        fail(o, PROCS_ELIMIT, "stdin: %zu bytes, more than limits.data_max", q.data.len);
                        goto out;
                }
                rc = r ? procrun_stdin_write(r, q.data.data, q.data.len, false) : -EPIPE;
        } else if (strcmp(op, "close-stdin") == 0)
                rc = r ? procrun_stdin_close(r) : -EPIPE;
        else if (strcmp(op, "signal") == 0) {
                if (q.signal < 1 || q.signal > 64) {
                        fail(o, EINVAL, "signal %d: not a signal number", q.signal);
                        goto out;
                }
                rc = r ? procrun_signal(r, q.signal) : -ESRCH;
        } else if (strcmp(op, "resize") == 0)
                rc = r ? procrun_resize(r, q.rows, q.cols) : -ESRCH;
        else if (strcmp(op, "remove") == 0) {
                if (proc_state(p) != PROC_EXITED) {
                        fail(o, EBUSY, "process %llu is running", (unsigned long long) proc_id(p));
                        goto out;
                }
                send_info(o, EXT_MSG_PROC_INFO, p);
                (void) proc_remove(p);
                finish(o);
                goto out;
        } else {
                fail(o, ENOSYS, "unknown op \"%s\"", op);
                goto out;
        }
        if (rc < 0) {
                const char *what = rc == -ESRCH    ? "process is not running"
                                   : rc == -EPIPE  ? "stdin is closed"
                                   : rc == -EAGAIN && strcmp(op, "stdin") == 0
                                           ? "stdin is full (the process does not read it): retry later"
                                   : rc == -EAGAIN ? "process is being started: retry"
                                   : rc == -EINVAL ? "process has no terminal"
                                                   : strerror(-rc);
                fail(o, -rc, "%s: %s", op, what);
                goto out;
        }
        send_info(o, EXT_MSG_PROC_INFO, p);
        finish(o);
out:
        ext_proc_control_clear(&q);
}

static void do_wait(struct procop *o, const uint8_t *data, uint32_t len) {
        struct ext_proc_wait q;
        if (!decode(o, &ext_proc_wait_shape, data, len, &q))
                return;
        struct proc *p = lookup(o, q.id, q.tag);
        if (p) {
                if (q.timeout_ms < 0 || q.timeout_ms > PROCOP_WAIT_MAX_MS)
                        fail(o, EINVAL, "timeout_ms: 0 (none) up to a day");
                else if (q.timeout_ms > 0 && timer_arm_in_ms(&o->timeout, q.timeout_ms) < 0)
                        fail(o, ENOMEM, "out of memory");
                else {
                        proc_watch_add(p, &o->watch, false);
                        wait_check(o);
                }
        }
        ext_proc_wait_clear(&q);
}

int procop_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len) {
        struct procop *o = calloc(1, sizeof *o);
        if (!o) {
                if (payload)
                        explicit_bzero(payload, len);
                free(payload);
                return -ENOMEM;
        }
        o->s = s;
        o->a = session_agent(s);
        o->type = type;
        proc_watch_init(&o->watch, o->a->loop, on_watch);
        timer_init(&o->timeout, o->a->loop, on_timeout);
        ext_proc_start_init(&o->start);
        session_set_op(s, &procop_ops, o);
        if (!o->a->procs) {
                fail(o, ENOSYS, "detached processes are not available");
                free(payload);
                return 0;
        }
        if (type == EXT_MSG_PROC_START) {
                o->payload = payload;
                o->len = len;
                o->job = (struct worker_job) { .run = decode_run, .done = decode_done };
                int r = worker_submit(o->a->worker, &o->job);
                if (r < 0) {
                        fail(o, EAGAIN, "%s", r == -EBUSY ? WORKER_BUSY_TEXT : "agent out of resources");
                        return 0;
                }
                o->decoding = true;
                return 0;
        }
        static const uint8_t empty[1];
        const uint8_t *data = payload ? payload : empty;
        if (len > PROCOP_REQUEST_MAX)
                fail(o, PROCS_ELIMIT, "request of %u bytes", len);
        else if (type == EXT_MSG_PROC_LIST)
                do_list(o, data, len);
        else if (type == EXT_MSG_PROC_ATTACH)
                do_attach(o, data, len);
        else if (type == EXT_MSG_PROC_CONTROL)
                do_control(o, data, len);
        else if (type == EXT_MSG_PROC_WAIT)
                do_wait(o, data, len);
        else
                fail(o, ENOSYS, "request type %u", type);
        if (payload)
                explicit_bzero(payload, len);
        free(payload);
        return 0;
}
