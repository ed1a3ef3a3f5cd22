/* The exec operations (Exec, ExecStream, ExecPipe, ExecTTY): one state
 * machine, with the differences between the modes in a table.
 *
 * The command is started on a worker thread (launch.h): decoding the
 * request, looking up its user and spawning it may all wait on a file
 * system, which the loop never does. Meanwhile the exec is "spawning":
 * stdin, signals and resizes the host sends are kept for the command, and
 * a cancellation kills a child that hangs in its set-up.
 *
 * An exec is done when its process was reaped AND its output sources are
 * closed: at EOF, or after a short linger once the process exited (a
 * background descendant may hold the pipes open forever). Then the result
 * is queued and the session finishes. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <vsock/msg.h>

#include "agent/exec/child.h"
#include "agent/exec/launch.h"
#include "agent/ops.h"
#include "agent/exec/pty.h"
#include "agent/serve/session.h"
#include "agent/exec/spawn.h"
#include "agent/serve/worker.h"
#include "common/buf.h"
#include "common/io.h"
#include "common/log.h"
#include "common/macro.h"
#include "lib/msg-internal.h"

/* Batch mode keeps each stream's output for the reply; beyond this, or
 * beyond what the agent's memory budget allows (output collected and its
 * encoding in the reply together), it is dropped and the reply says so:
 * the protocol has no way to make a batch command wait for the host, and
 * a command blocked on a full pipe would hold its memory all the same. */
#define BATCH_OUTPUT_MAX (16u * 1024 * 1024)
/* The final drain after the linger reads at most this per source. */
#define FINAL_DRAIN_MAX (1u * 1024 * 1024)

enum exec_mode { MODE_BATCH, MODE_STREAM, MODE_PIPE, MODE_TTY };

struct mode_info {
        const char *name;
        bool collect;           /* output kept for one ExecResult */
        bool stdin_frames;      /* accepts Stdin frames */
        bool signals;           /* accepts Signal frames */
        bool exit_frame;        /* ends with Exit (else ExecResult) */
};

static const struct mode_info modes[] = {
        [MODE_BATCH] = { "exec", true, false, false, false },
        [MODE_STREAM] = { "exec-stream", false, false, false, false },
        [MODE_PIPE] = { "exec-pipe", false, true, true, true },
        [MODE_TTY] = { "exec-tty", false, true, true, true },
};

struct exec;

struct exec_src {
        struct watcher w;
        struct exec *e;
        uint8_t type;           /* VSOCK_MSG_STDOUT / VSOCK_MSG_STDERR */
        bool open;
        struct buf collect;     /* batch: counted in the budget, strictly */
        bool truncated;
        bool budget_cut;        /* truncated by the memory budget */
};

struct exec_sink {
        struct watcher w;
        struct exec *e;
        bool open;
        bool eof_wanted;        /* close once the queue is written */
        struct buf q;
};

/* Starting the command on a worker thread. Owned by the exec while it
 * waits, by itself (freed in its done()) once the exec is gone. */
struct exec_job {
        struct worker_job job;
        struct exec *e;                 /* NULL once the exec is gone */
        struct agent *a;
        uint8_t *payload;
        uint32_t len;
        struct launch_mode mode;
        struct launch_config cfg;
        struct spawn_cancel cancel;
        int rc;
        struct launch_result res;
        size_t charge;                  /* the payload's, in a->budget */
};

struct exec {
        struct session *s;
        struct agent *a;
        enum exec_mode mode;
        const struct mode_info *info;
        struct exec_job *job;           /* while the command is being started */
        struct child *child;
        struct exec_src out[2];
        struct exec_sink in;
        int master;             /* TTY: for resize and the foreground group */
        struct timer linger;
        bool reaped;
        int exit_code;
        bool done;
        bool cancelled;
        bool lost;              /* the connection is gone */
        bool input_held;        /* we paused the host because stdin is full */
        /* What came for the command while it was being started. */
        uint64_t pending_signals;       /* bit signo-1 */
        uint16_t pending_rows, pending_cols;
};

static void exec_check_done(struct exec *e);
static void src_update(struct exec_src *src);
static void exec_cancel(struct exec *e, bool lost);

/* ---- replies ------------------------------------------------------------ */

/* Base64 of @n bytes in JSON. */
static size_t encoded_len(size_t n) { return (n + 2) / 3 * 4; }

/* Take the encoding's room for the collected @out and @err from the
 * memory budget (into the queue @q, before a byte is written); past it,
 * output is cut, the larger stream halved until it fits. True if cut. */
static bool fit_output(struct buf *q, struct buf *out, struct buf *err) {
        bool cut = false;
        for (;;) {
                size_t need = encoded_len(buf_size(out)) + encoded_len(buf_size(err)) + 1024;
                if (buf_precharge(q, need) >= 0 || (buf_empty(out) && buf_empty(err)))
                        return cut;
                struct buf *big = buf_size(out) >= buf_size(err) ? out : err;
                (void) buf_truncate(big, buf_size(big) / 2);
                cut = true;
        }
}

/* Encode an ExecResult into @q (from session_encode_begin) and queue it. */
static void encode_result(struct session *s, struct buf *q, int code, const struct buf *out, const struct buf *err,
                          const char *error) {
        struct vsock_exec_response resp = { .exit_code = code, .error = (char *) error };
        if (out) {
                resp.stdout_data = (struct vsock_bytes) { buf_head(out), buf_size(out), true };
                resp.stderr_data = (struct vsock_bytes) { buf_head(err), buf_size(err), true };
        }
        int r = msg_encode_exec_response_agent(&resp, q);
        session_encode_end(s, r);
        if (r < 0)
                log_error("session %llu: encode result: %s", (unsigned long long) session_id(s), strerror(-r));
}

/* ExecResult: with a few bytes of output (a start failure's reason, never
 * cut: it is only counted), or without (stream). */
static void send_exec_result(struct session *s, int code, const struct buf *out, const struct buf *err,
                             const char *error) {
        struct buf *q = session_encode_begin(s, VSOCK_MSG_EXEC_RESULT);
        if (q)
                encode_result(s, q, code, out, err, error);
}

static void send_exit(struct session *s, int code) {
        uint8_t b[4];
        vsock_exit_encode(code, b);
        (void) session_send(s, VSOCK_MSG_EXIT, b, sizeof b);
}

/* What a command that could not start gets: @code (127 or 126) and one
 * line of reason on its stderr, in every mode alike, so a host tells it
 * from the command's own failure. */
static void fail_reply(struct session *s, const struct mode_info *info, int code, const char *reason) {
        log_info("session %llu: %s: %s", (unsigned long long) session_id(s), info->name, reason);
        _cleanup_free_ char *line = NULL;
        int n = asprintf(&line, "vsock-agent: %s\n", reason);
        if (n < 0)
                line = NULL;
        if (info->collect) {
                struct buf out = BUF_INIT(0), err = BUF_INIT(0);
                if (line)
                        (void) buf_append(&err, line, (size_t) n);
                send_exec_result(s, code, &out, &err, NULL);
                buf_free(&err);
        } else {
                if (line)
                        (void) session_send(s, VSOCK_MSG_STDERR, line, (size_t) n);
                if (info->exit_frame)
                        send_exit(s, code);
                else
                        send_exec_result(s, code, NULL, NULL, NULL);
        }
}

/* The command could not start. Ends the session. */
static void exec_fail(struct exec *e, int code, const char *reason) {
        fail_reply(e->s, e->info, code, reason);
        e->done = true;
        session_finish(e->s);
}

/* ---- output sources ----------------------------------------------------- */

static void src_close(struct exec_src *src) {
        if (!src->open)
                return;
        src->open = false;
        int fd = src->w.fd;
        watcher_stop(&src->w);
        safe_close(fd);
}

/* One read into the reply buffer (batch) or one frame (other modes).
 * Returns > 0 bytes read, 0 at EOF (source closed), -EAGAIN, or another
 * negative errno (source closed). */
static ssize_t src_read_once(struct exec_src *src) {
        struct exec *e = src->e;
        uint8_t *p;
        ssize_t n;
        if (e->info->collect) {
                size_t room = MIN((size_t) AGENT_READ_CHUNK, BATCH_OUTPUT_MAX - buf_size(&src->collect));
                int r = -ENOBUFS;
                /* Room for the bytes and, roughly, for their encoding in
                 * the reply (taken exactly when it is built): what the
                 * budget refuses is dropped. */
                if (room > 0 && !src->budget_cut && budget_left(&e->a->budget) >= encoded_len(room) + room)
                        r = buf_reserve(&src->collect, room, &p);
                if (r < 0 && r != -ENOBUFS)
                        return r;
                if (r >= 0) {
                        n = io_read_once(src->w.fd, p, room);
                        if (n > 0)
                                (void) buf_commit(&src->collect, (size_t) n);
                } else {
                        /* Dropped; once a byte was, nothing more is kept
                         * (the output would have a hole). */
                        static uint8_t sink[AGENT_READ_CHUNK];
                        n = io_read_once(src->w.fd, sink, sizeof sink);
                        if (n > 0) {
                                src->truncated = true;
                                src->budget_cut |= room > 0;
                        }
                }
        } else {
                int r = session_frame_begin(e->s, src->type, AGENT_READ_CHUNK, &p);
                if (r < 0)
                        return r;
                n = io_read_once(src->w.fd, p, AGENT_READ_CHUNK);
                session_frame_end(e->s, n > 0 ? (size_t) n : 0);
        }
        /* A pty master reports EIO once every slave fd is closed. */
        if (n == -EIO && e->mode == MODE_TTY)
                n = 0;
        if (n == 0 || (n < 0 && n != -EAGAIN))
                src_close(src);
        return n;
}

static void on_src(struct watcher *w, uint32_t revents) {
        struct exec_src *src = container_of(w, struct exec_src, w);
        struct exec *e = src->e;
        ssize_t n = src_read_once(src);
        if (n < 0 && n != -EAGAIN && n != -EIO)
                log_debug("session %llu: read output: %s", (unsigned long long) session_id(e->s),
                          strerror((int) -n));
        if (!src->open) {
                exec_check_done(e);
                return;
        }
        if (!e->info->collect && session_queue_high(e->s)) {
                src_update(&e->out[0]);
                src_update(&e->out[1]);
        }
}

/* Interest: readable unless the host is not keeping up. */
static void src_update(struct exec_src *src) {
        if (!src->open)
                return;
        bool paused = !src->e->info->collect && session_queue_high(src->e->s);
        if (watcher_set(&src->w, paused ? 0 : EPOLLIN) < 0)
                src_close(src);
}

/* After the linger: take what is already buffered (bounded), then stop. */
static void src_final_drain(struct exec_src *src) {
        size_t got = 0;
        while (src->open && got < FINAL_DRAIN_MAX) {
                ssize_t n = src_read_once(src);
                if (n <= 0)
                        break;
                got += (size_t) n;
        }
        src_close(src);
}

static void on_linger(struct timer *t) {
        struct exec *e = container_of(t, struct exec, linger);
        if (e->out[0].open || e->out[1].open)
                log_debug("session %llu: output still open %d ms after exit (background process?), "
                          "finishing", (unsigned long long) session_id(e->s), e->a->linger_ms);
        src_final_drain(&e->out[0]);
        src_final_drain(&e->out[1]);
        exec_check_done(e);
}

/* ---- stdin sink ----------------------------------------------------------- */

static void sink_close(struct exec_sink *k) {
        if (!k->open)
                return;
        k->open = false;
        int fd = k->w.fd;
        watcher_stop(&k->w);
        safe_close(fd);
        buf_wipe_free(&k->q);
}

static void sink_resume_host(struct exec *e) {
        if (e->input_held && buf_size(&e->in.q) < AGENT_QUEUE_LOW) {
                e->input_held = false;
                session_pause_input(e->s, false);
        }
}

/* Write what is queued; EPOLLOUT only after EAGAIN. */
static void sink_flush(struct exec_sink *k) {
        while (k->open && !buf_empty(&k->q)) {
                struct iovec iov = { .iov_base = buf_head(&k->q), .iov_len = buf_size(&k->q) };
                ssize_t n = io_writev_once(k->w.fd, &iov, 1);
                if (n == -EAGAIN) {
                        if (watcher_set(&k->w, EPOLLOUT) < 0)
                                sink_close(k);
                        return;
                }
                if (n < 0) {
                        /* The command closed its stdin: drop the rest. */
                        log_debug("session %llu: stdin: %s", (unsigned long long) session_id(k->e->s),
                                  strerror((int) -n));
                        sink_close(k);
                        /* Nothing to hold the host back for any more
                         * (signals must still get through). */
                        if (k->e->input_held) {
                                k->e->input_held = false;
                                session_pause_input(k->e->s, false);
                        }
                        break;
                }
                (void) buf_consume(&k->q, (size_t) n);
        }
        if (k->open) {
                (void) watcher_set(&k->w, 0);
                if (buf_capacity(&k->q) > 64 * 1024)
                        buf_wipe_free(&k->q);
                if (k->eof_wanted)
                        sink_close(k);
        }
}

static void on_sink(struct watcher *w, uint32_t revents) {
        struct exec_sink *k = container_of(w, struct exec_sink, w);
        sink_flush(k);
        sink_resume_host(k->e);
}

/* Queue stdin for the command; while it is being started, for later. */
static void sink_push(struct exec *e, const uint8_t *data, size_t len) {
        struct exec_sink *k = &e->in;
        if ((!k->open && !e->job) || k->eof_wanted)
                return;
        if (buf_append(&k->q, data, len) < 0) {
                log_warn("session %llu: stdin queue full, dropping input", (unsigned long long) session_id(e->s));
                return;
        }
        if (k->open && k->w.events == 0)
                sink_flush(k);
        if ((k->open || e->job) && buf_size(&k->q) >= AGENT_QUEUE_HIGH && !e->input_held) {
                e->input_held = true;
                session_pause_input(e->s, true);
        }
}

/* ---- lifecycle -------------------------------------------------------- */

/* The ExecResult of a batch command, saying what was cut and why. */
static void send_batch_result(struct exec *e) {
        struct exec_src *o = &e->out[0], *er = &e->out[1];
        struct buf *q = session_encode_begin(e->s, VSOCK_MSG_EXEC_RESULT);
        if (!q)
                return;
        size_t had_out = buf_size(&o->collect), had_err = buf_size(&er->collect);
        bool cut = fit_output(q, &o->collect, &er->collect);
        bool out_cut = o->truncated || o->budget_cut || buf_size(&o->collect) < had_out;
        bool err_cut = er->truncated || er->budget_cut || buf_size(&er->collect) < had_err;
        const char *which = out_cut && err_cut ? "stdout and stderr" : out_cut ? "stdout" : "stderr";
        char msg[192] = "";
        if (cut || o->budget_cut || er->budget_cut)
                snprintf(msg, sizeof msg, "output truncated: %s (%zu MiB) on %s", AGENT_BUDGET_TEXT,
                         budget_limit(&e->a->budget) >> 20, which);
        else if (o->truncated || er->truncated)
                snprintf(msg, sizeof msg, "output truncated: more than %u bytes on %s", BATCH_OUTPUT_MAX, which);
        encode_result(e->s, q, e->exit_code, &o->collect, &er->collect, msg);
}

static void exec_check_done(struct exec *e) {
        if (e->done || !e->reaped)
                return;
        if (e->out[0].open || e->out[1].open) {
                if (!timer_armed(&e->linger) && timer_arm_in_ms(&e->linger, e->a->linger_ms) < 0)
                        on_linger(&e->linger);
                return;
        }
        e->done = true;
        timer_disarm(&e->linger);
        sink_close(&e->in);
        log_debug("session %llu: %s done, exit code %d", (unsigned long long) session_id(e->s), e->info->name,
                  e->exit_code);
        if (e->info->exit_frame)
                send_exit(e->s, e->exit_code);
        else if (e->info->collect)
                send_batch_result(e);
        else
                send_exec_result(e->s, e->exit_code, NULL, NULL, "");
        buf_free(&e->out[0].collect);
        buf_free(&e->out[1].collect);
        session_finish(e->s);
}

static void on_child_exit(struct child *c, int code, void *userdata) {
        struct exec *e = userdata;
        e->reaped = true;
        e->exit_code = code;
        exec_check_done(e);
}

static void exec_cancel(struct exec *e, bool lost) {
        if (e->job) {
                /* Still starting: a child stuck in its set-up is killed;
                 * the rest follows once the start is over (exec_started). */
                e->cancelled = true;
                e->lost |= lost;
                buf_wipe_free(&e->in.q);
                spawn_cancel(&e->job->cancel);
                return;
        }
        if (!e->cancelled && e->child && !e->reaped) {
                log_info("session %llu: host went away, terminating pid %d", (unsigned long long) session_id(e->s),
                         (int) child_pid(e->child));
        }
        e->cancelled = true;
        sink_close(&e->in);
        if (e->mode == MODE_TTY) {
                /* Closing every master fd hangs the terminal up: the kernel
                 * sends SIGHUP to its foreground group, which may be a job
                 * other than the leader's group. */
                src_close(&e->out[0]);
                e->master = safe_close(e->master);
        }
        if (lost) {
                /* Nobody to deliver output to. */
                src_close(&e->out[0]);
                src_close(&e->out[1]);
        }
        if (e->child)
                child_terminate(e->child);
        exec_check_done(e);
}

/* ---- session callbacks ------------------------------------------------ */

/* The host's input ended (an empty Stdin frame, or a half-close): for a
 * pipe, close the child's stdin once what is queued is written; a terminal
 * has no EOF of its own (the host sends ^D), so its command runs on. */
static void stdin_eof(struct exec *e) {
        if (e->mode != MODE_PIPE)
                return;
        e->in.eof_wanted = true;
        if (buf_empty(&e->in.q))
                sink_close(&e->in);
}

static int exec_frame(void *op, uint8_t type, const uint8_t *data, uint32_t len) {
        struct exec *e = op;
        switch (type) {
        case VSOCK_MSG_STDIN:
                if (!e->info->stdin_frames)
                        break;
                if (len == 0) {
                        stdin_eof(e);
                        return 0;
                }
                sink_push(e, data, len);
                return 0;
        case VSOCK_MSG_SIGNAL: {
                int signo;
                if (!e->info->signals)
                        break;
                if (vsock_signal_decode(data, len, &signo) < 0) {
                        log_warn("session %llu: bad signal frame", (unsigned long long) session_id(e->s));
                        return 0;
                }
                if (e->job && signo >= 1 && signo <= 64) {
                        e->pending_signals |= UINT64_C(1) << (signo - 1); /* for the command, once it runs */
                        return 0;
                }
                if (!e->child || e->reaped)
                        return 0;
                int r;
                if (e->mode == MODE_TTY) {
                        pid_t fg = e->master >= 0 ? pty_foreground(e->master) : -1;
                        r = child_signal_pgrp(e->child, fg, signo);
                } else
                        r = child_signal_group(e->child, signo);
                log_debug("session %llu: signal %d: %s", (unsigned long long) session_id(e->s), signo,
                          r < 0 ? strerror(-r) : "delivered");
                return 0;
        }
        case VSOCK_MSG_RESIZE: {
                uint16_t rows, cols;
                if (e->mode != MODE_TTY)
                        break;
                if (vsock_resize_decode(data, len, &rows, &cols) < 0) {
                        log_warn("session %llu: bad resize frame", (unsigned long long) session_id(e->s));
                        return 0;
                }
                if (e->master >= 0)
                        (void) pty_resize(e->master, rows, cols);
                else if (e->job) {
                        e->pending_rows = rows;
                        e->pending_cols = cols;
                }
                return 0;
        }
        default:
                break;
        }
        log_debug("session %llu: ignoring message type %u during %s", (unsigned long long) session_id(e->s), type,
                  e->info->name);
        return 0;
}

/* A half-close is not a disconnect: the host still reads the result. */
static void exec_input_eof(void *op) { stdin_eof(op); }
static void exec_conn_lost(void *op) { exec_cancel(op, true); }

static void exec_drained(void *op) {
        struct exec *e = op;
        src_update(&e->out[0]);
        src_update(&e->out[1]);
}

static void exec_shutdown(void *op) {
        struct exec *e = op;
        if (e->job)
                spawn_cancel(&e->job->cancel); /* exec_started() then ends it */
        if (e->child)
                child_terminate(e->child);
}

static void job_free(struct exec_job *j);

static void exec_free(void *op) {
        struct exec *e = op;
        if (!e)
                return;
        if (e->job) {
                /* The job goes on without us; its done() cleans up. */
                struct exec_job *j = TAKE_PTR(e->job);
                j->e = NULL;
                spawn_cancel(&j->cancel);
                if (worker_cancel(&j->job)) {
                        j->a->spawns_pending--;
                        job_free(j); /* it never started */
                }
        }
        child_release(e->child);
        timer_disarm(&e->linger);
        src_close(&e->out[0]);
        src_close(&e->out[1]);
        sink_close(&e->in);
        buf_wipe_free(&e->in.q);
        buf_free(&e->out[0].collect);
        buf_free(&e->out[1].collect);
        safe_close(e->master);
        free(e);
}

static const struct session_ops exec_ops = {
        .name = "exec",
        .frame = exec_frame,
        .input_eof = exec_input_eof,
        .conn_lost = exec_conn_lost,
        .drained = exec_drained,
        .shutdown = exec_shutdown,
        .free = exec_free,
};

/* ---- starting ----------------------------------------------------------- */

static void src_init(struct exec *e, struct exec_src *src, uint8_t type, int fd) {
        src->e = e;
        src->type = type;
        src->collect = BUF_INIT(0);
        buf_set_budget(&src->collect, &e->a->budget, true);
        watcher_init(&src->w, e->a->loop, fd, on_src);
        src->open = fd >= 0;
}

extern char **environ;

static void job_free(struct exec_job *j) {
        if (j->payload)
                explicit_bzero(j->payload, j->len);
        free(j->payload);
        (void) budget_release(&j->a->budget, j->charge);
        launch_result_clear(&j->res);
        spawn_cancel_destroy(&j->cancel);
        free(j);
}

/* Worker thread. */
static void job_run(struct worker_job *wj) {
        struct exec_job *j = container_of(wj, struct exec_job, job);
        j->rc = launch_run(TAKE_PTR(j->payload), j->len, j->mode, &j->cfg, &j->cancel, &j->res);
        /* The request is freed; its stdin, if any, is counted with the
         * exec's queue from here on. */
        (void) budget_release(&j->a->budget, j->charge);
        j->charge = 0;
}

/* The command runs: wire it to the session, hand over what came for it
 * meanwhile. Takes the process and fds out of @r. */
static void exec_started(struct exec *e, struct launch_result *r) {
        int pidfd = TAKE_FD(r->pidfd);
        int rc = child_new(e->a, r->pid, pidfd, e->mode == MODE_TTY, e->a->grace_ms, on_child_exit, e,
                           &e->child);
        if (rc < 0) {
                exec_fail(e, 126, "cannot watch the process");
                return;
        }
        log_debug("session %llu: %s started pid %d", (unsigned long long) session_id(e->s), e->info->name,
                  (int) r->pid);
        e->master = TAKE_FD(r->master);
        watcher_init(&e->in.w, e->a->loop, r->in_fd, on_sink);
        e->in.open = r->in_fd >= 0;
        r->in_fd = -1;
        src_init(e, &e->out[0], VSOCK_MSG_STDOUT, TAKE_FD(r->out_fd));
        src_init(e, &e->out[1], VSOCK_MSG_STDERR, TAKE_FD(r->err_fd));

        if (e->in.open && !e->info->stdin_frames) {
                /* The request's own stdin, then EOF. */
                if (r->stdin_len > 0 && buf_append(&e->in.q, r->stdin_data, r->stdin_len) < 0)
                        log_warn("session %llu: out of memory for stdin", (unsigned long long) session_id(e->s));
                e->in.eof_wanted = true;
        }
        if (e->in.open)
                sink_flush(&e->in);
        else
                buf_wipe_free(&e->in.q);
        sink_resume_host(e);
        if (e->pending_rows || e->pending_cols)
                (void) pty_resize(e->master, e->pending_rows, e->pending_cols);
        for (int sig = 1; sig <= 64; sig++)
                if (e->pending_signals & (UINT64_C(1) << (sig - 1)))
                        (void) (e->mode == MODE_TTY ? child_signal_pgrp(e->child, pty_foreground(e->master), sig)
                                                    : child_signal_group(e->child, sig));
        src_update(&e->out[0]);
        src_update(&e->out[1]);
        if (e->cancelled)
                exec_cancel(e, e->lost);
        else if (e->a->shutting_down)
                child_terminate(e->child);
}

/* Loop thread: the start is over, one way or the other. */
static void job_done(struct worker_job *wj) {
        struct exec_job *j = container_of(wj, struct exec_job, job);
        struct exec *e = j->e;
        j->a->spawns_pending--; /* child.c knows the process from here on */
        if (!e) {
                /* Nobody wants the command any more (if it started). */
                if (!wj->cancelled && j->rc >= 0)
                        child_abandon(j->a, j->res.pid, TAKE_FD(j->res.pidfd), j->a->grace_ms);
                job_free(j);
                return;
        }
        e->job = NULL;
        if (wj->cancelled || j->rc < 0) {
                char why[64];
                const char *reason;
                int code = launch_failure(&j->res, j->rc, wj->cancelled, why, sizeof why, &reason);
                exec_fail(e, code, reason);
        } else
                exec_started(e, &j->res);
        job_free(j);
}

/* Loop thread: the start takes too long (a file system that does not
 * answer): tell the host now; the job cleans up after itself. */
static void job_timeout(struct worker_job *wj) {
        struct exec_job *j = container_of(wj, struct exec_job, job);
        struct exec *e = j->e;
        if (!e)
                return;
        spawn_cancel(&j->cancel);
        j->e = NULL;
        e->job = NULL;
        char why[160];
        launch_timeout_reason(e->a->io_timeout_ms, why, sizeof why);
        exec_fail(e, 126, why);
}

static enum exec_mode mode_of(uint8_t type) {
        return type == VSOCK_MSG_EXEC          ? MODE_BATCH
               : type == VSOCK_MSG_EXEC_STREAM ? MODE_STREAM
               : type == VSOCK_MSG_EXEC_PIPE   ? MODE_PIPE
                                               : MODE_TTY;
}

void exec_refuse(struct session *s, uint8_t type, const char *why) { fail_reply(s, &modes[mode_of(type)], 126, why); }

int exec_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len) {
        struct exec *e = calloc(1, sizeof *e);
        struct exec_job *j = calloc(1, sizeof *j);
        if (!e || !j) {
                if (payload)
                        explicit_bzero(payload, len);
                free(payload);
                free(e);
                free(j);
                return -ENOMEM;
        }
        e->s = s;
        e->a = session_agent(s);
        e->master = -1;
        e->mode = mode_of(type);
        e->info = &modes[e->mode];
        e->in.q = BUF_INIT(0);
        buf_set_budget(&e->in.q, &e->a->budget, false);
        e->in.e = e;
        watcher_init(&e->in.w, e->a->loop, -1, on_sink);
        src_init(e, &e->out[0], VSOCK_MSG_STDOUT, -1);
        src_init(e, &e->out[1], VSOCK_MSG_STDERR, -1);
        timer_init(&e->linger, e->a->loop, on_linger);
        session_set_op(s, &exec_ops, e);

        /* Even the decoding happens on the worker: a 64 MiB request full
         * of escapes takes a second of CPU. */
        *j = (struct exec_job) {
                .job = { .run = job_run, .done = job_done, .timeout = job_timeout },
                .e = e,
                .a = e->a,
                .payload = payload,
                .len = len,
                .mode = { .tty = e->mode == MODE_TTY, .stdin_frames = e->info->stdin_frames },
                .cfg = { .sandbox = e->a->sandbox, .pid_ns = e->a->pid_ns, .reset_signals = &e->a->changed_signals,
                         .base_env = environ },
                /* Until it ran: no process, and nothing to close (not fd 0). */
                .rc = -ECANCELED,
                .res = LAUNCH_RESULT_INIT,
                .charge = session_request_charge_take(s),
        };
        spawn_cancel_init(&j->cancel);
        int r = worker_submit(e->a->spawner, &j->job);
        if (r < 0) {
                job_free(j);
                exec_fail(e, 126, r == -EBUSY ? WORKER_BUSY_TEXT : "agent out of resources: cannot start a thread");
                return 0;
        }
        e->job = j;
        e->a->spawns_pending++;
        return 0;
}
