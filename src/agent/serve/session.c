#include "agent/serve/session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vsock/error.h>
#include <vsock/frame.h>
#include <vsock/msg.h>

#include "agent/serve/ext.h"
#include "agent/files/fsops.h"
#include "agent/ops.h"
#include "agent/files/xfer.h"
#include "lib/ext_msg.h"
#include "common/buf.h"
#include "common/io.h"
#include "common/log.h"
#include "common/macro.h"
#include "lib/ext_msg.h"

/* Largest request the agent accepts: it may carry a big stdin. */
#define SESSION_MAX_PAYLOAD VSOCK_MAX_PAYLOAD_DEFAULT
/* Largest frame after the request (Stdin, Signal, Resize): keeps what one
 * session can make the agent buffer small. */
#define SESSION_MAX_PAYLOAD_AFTER (16u * 1024 * 1024)
/* WriteFile requests from this size on are written as they arrive. */
#define SESSION_STREAM_MIN (256u * 1024)
/* How long a closing connection waits for the host's EOF. */
#define SESSION_LINGER_MS 2000
/* A drained queue keeps at most this much memory. */
#define SESSION_KEEP_BUF (16u * 1024)
/* How often a half-closed AF_VSOCK connection is asked whether the host
 * closed it since: the transport raises no event for that. */
#define SESSION_PROBE_MS 1000
/* Frames up to this size are counted in the memory budget but never
 * refused: a request this small is served even when the budget is
 * exhausted (so the agent stays usable), and one session can hold at
 * most one such frame. Bigger ones need a reservation first. */
#define SESSION_SMALL_FRAME AGENT_READ_CHUNK

struct session {
        struct watcher w;
        struct timer timer;             /* idle bound (a request) or linger (closing) */
        struct timer send_timer;        /* the queue made no progress for send_timeout_ms */
        struct timer probe_timer;       /* half-closed vsock: did the host close since? */
        struct defer work;              /* after the pass: free, tell, resume input */
        struct agent *agent;
        uint64_t id;
        int fd;
        enum session_in in;
        enum session_out out;
        bool vsock;                     /* AF_VSOCK: a later full close raises no event */
        bool rdhup_seen;                /* the host shut its side while we were not reading */
        vsock_decoder *dec;
        struct buf pending;             /* host bytes read, not yet taken */
        struct buf queue;               /* to the host */
        /* The operation, what started it, and the one that finished in
         * this pass (freed after it, as nothing may be freed while an
         * event for it may still be pending). */
        const struct session_handler *handler;
        const struct session_ops *ops;
        void *op;
        const struct session_ops *retired_ops;
        void *retired_op;
        /* Flow control: the operation paused input; the queue went above
         * the high-water mark and has not yet fallen below the low one. */
        bool hold;
        bool high;
        uint8_t *frame_tail;            /* session_frame_begin's reservation */
        size_t encode_mark;             /* queue size at session_encode_begin */
        uint8_t encode_type;
        /* What the frame being collected holds in the budget (its payload
         * is allocated at its header), and the request's, until an
         * operation takes it over or it is released after the start. */
        size_t frame_charge;
        size_t request_charge;
        bool ext;                       /* began with Hello: extensions allowed */
        bool starting;                  /* inside a handler's start() */
        uint64_t requests;              /* requests dispatched so far */
        struct session *prev, *next;
};

/* Never called: the dispatch drops frames of a .drop handler. */
static int session_drop_frame(struct session *s, uint8_t type, uint8_t *payload, uint32_t len) {
        free(payload);
        return -EPROTO;
}

static const struct session_handler agent_handlers[SESSION_HANDLER_TYPES] = {
        [VSOCK_MSG_EXEC] = { .start = exec_start, .refuse = exec_refuse, .reply = true },
        [VSOCK_MSG_EXEC_STREAM] = { .start = exec_start, .refuse = exec_refuse, .reply = true },
        [VSOCK_MSG_EXEC_PIPE] = { .start = exec_start, .refuse = exec_refuse },
        [VSOCK_MSG_EXEC_TTY] = { .start = exec_start, .refuse = exec_refuse },
        [VSOCK_MSG_PORT_FORWARD] = { .start = portfwd_start },
        [VSOCK_MSG_WRITE_FILE] = { .start = fileop_start, .start_streamed = wfstream_start,
                                   .streamed_min = SESSION_STREAM_MIN, .refuse = fileop_refuse, .reply = true },
        [VSOCK_MSG_READ_FILE] = { .start = fileop_start, .refuse = fileop_refuse, .reply = true },
        [VSOCK_MSG_LIST_FILES] = { .start = fileop_start, .refuse = fileop_refuse, .reply = true },
        /* Extensions (PROTOCOL.md Part 2): one line per type, with the
         * feature HelloReply advertises for it. */
        [EXT_MSG_HELLO] = { .start = hello_start, .reply = true, .max_len = EXT_HELLO_MAX },
        [EXT_MSG_FS_REQUEST] = { .start = fsops_start, .reply = true, .feature = "fs" },
        [EXT_MSG_LIST_DIR] = { .start = listdir_start, .reply = true, .feature = "list" },
        [EXT_MSG_DATA] = { .start = xfer_stray_start, .reply = true },
        [EXT_MSG_CREDIT] = { .start = session_drop_frame, .drop = true },
        [EXT_MSG_DONE] = { .start = xfer_stray_start, .reply = true },
        [EXT_MSG_FILE_GET] = { .start = fileget_start, .reply = true, .frames = true, .feature = "file-get" },
        [EXT_MSG_FILE_PUT] = { .start = fileput_start, .reply = true, .frames = true, .feature = "file-put" },
        [EXT_MSG_TAR_GET] = { .start = fileget_start, .reply = true, .frames = true, .feature = "tar-get" },
        [EXT_MSG_TAR_PUT] = { .start = fileput_start, .reply = true, .frames = true, .feature = "tar-put" },
        /* Detached processes (procop.c). An attach takes Stdin, Signal and
         * Resize frames, so it is the connection's last request. */
        [EXT_MSG_PROC_START] = { .start = procop_start, .reply = true, .feature = "proc",
                                 .max_len = EXT_LIMIT_MAX_PAYLOAD },
        [EXT_MSG_PROC_LIST] = { .start = procop_start, .reply = true, .feature = "proc" },
        [EXT_MSG_PROC_ATTACH] = { .start = procop_start, .feature = "proc" },
        [EXT_MSG_PROC_CONTROL] = { .start = procop_start, .reply = true, .feature = "proc" },
        [EXT_MSG_PROC_WAIT] = { .start = procop_start, .reply = true, .feature = "proc" },
        /* Forwarding (portfwd.c): raw bytes after Ready. */
        [EXT_MSG_FWD_CONNECT] = { .start = fwdconnect_start, .feature = "fwd-connect" },
        [EXT_MSG_FWD_LISTEN] = { .start = fwdlisten_start, .feature = "fwd-listen" },
        [EXT_MSG_FWD_ATTACH] = { .start = fwdattach_start, .feature = "fwd-listen" },
};

/* An extension type this agent does not serve, on a connection that began
 * with Hello: Error ENOSYS, and the connection goes on. */
static int ext_unknown_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len) {
        (void) len;
        free(payload); /* no secret: nothing was decoded */
        ext_error_finish(s, "ENOSYS", ENOSYS, NULL, "request type %u is not served by this agent", type);
        return 0;
}

static const struct session_handler ext_unknown_handler = { .start = ext_unknown_start, .reply = true };

/* One read buffer for all sessions: the loop is single-threaded, and
 * idle sessions then hold no input memory. */
static uint8_t read_buf[AGENT_READ_CHUNK];

static void session_changed(struct session *s);
static void session_flush(struct session *s);

uint64_t session_id(const struct session *s) { return s->id; }
bool session_ext(const struct session *s) { return s->ext; }
void session_set_ext(struct session *s) { s->ext = true; }
const struct session_handler *session_handlers(const struct agent *a) {
        return a->handlers ? a->handlers : agent_handlers;
}
struct agent *session_agent(const struct session *s) { return s->agent; }
enum session_in session_input_state(const struct session *s) { return s->in; }
enum session_out session_output_state(const struct session *s) { return s->out; }
bool session_queue_empty(const struct session *s) { return buf_empty(&s->queue); }
bool session_queue_high(struct session *s) { return s->high; }
void session_stream_sndbuf(struct session *s, int bytes) {
        int cur = 0;
        socklen_t sl = sizeof cur;
        if (getsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &cur, &sl) == 0 && cur >= bytes)
                return;
        (void) setsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
}

static unsigned long long sid(const struct session *s) { return (unsigned long long) s->id; }

/* ---- derived predicates ------------------------------------------------ */

/* Between operations, reading a request (or waiting for one). */
static bool between_ops(const struct session *s) { return !s->ops && s->out == SESSION_OUT_OPEN; }

/* No operation and nothing more to say: waiting for the connection to end. */
static bool closing(const struct session *s) { return !s->ops && s->out != SESSION_OUT_OPEN; }

/* A request taken over at its header, still arriving. */
static bool request_arriving(const struct session *s) {
        size_t left = vsock_decoder_pass_left(s->dec);
        return s->ops && left > 0 && left != SIZE_MAX;
}

static bool input_final(const struct session *s) { return s->in == SESSION_IN_DONE || s->in == SESSION_IN_CLOSED; }

static bool output_final(const struct session *s) {
        return s->out == SESSION_OUT_SHUT || s->out == SESSION_OUT_CLOSED;
}

/* Both directions ended and nothing is attached: free after the pass. */
static bool complete(const struct session *s) {
        return !s->ops && !s->retired_ops && input_final(s) && output_final(s);
}

/* Whether host bytes (and then the EOF) are taken now: the one place that
 * decides it. */
static bool input_wanted(const struct session *s) {
        if (s->in != SESSION_IN_OPEN && s->in != SESSION_IN_EOF)
                return false;
        if (s->retired_ops)
                return false; /* the last operation goes first, after the pass */
        if (!s->ops) {
                /* A request, unless the host is not reading its replies;
                 * closing, the rest is read (and dropped) to the host's EOF
                 * once our side is shut. */
                return s->out == SESSION_OUT_OPEN ? !s->high : s->out == SESSION_OUT_SHUT;
        }
        if (s->hold)
                return false;
        if (vsock_decoder_pass_left(s->dec) > 0)
                return true; /* a request body, or a raw stream */
        /* A request/response operation takes nothing after its request:
         * what follows is the next request, read once it is done. */
        return !s->handler->reply || s->handler->frames;
}

/* While our write side is open, a hang-up means the host is gone. Once it
 * is shut, a hang-up may be only the host's half-close (both directions
 * shut) still behind unread input. */
static bool hangup_is_loss(const struct session *s) {
        return s->out == SESSION_OUT_OPEN || s->out == SESSION_OUT_DRAIN;
}

/* Interest follows the states and the queue, in this one place. */
static void update_interest(struct session *s) {
        uint32_t ev = 0;
        if (input_wanted(s) && s->in == SESSION_IN_OPEN && buf_empty(&s->pending))
                ev |= EPOLLIN;
        if (!buf_empty(&s->queue) && hangup_is_loss(s))
                ev |= EPOLLOUT;
        /* Not reading, the host's close shows as RDHUP alone on AF_VSOCK
         * and TCP (EPOLLHUP is unix's); once seen it stays set, so it is
         * watched only until then. */
        if (!input_wanted(s) && hangup_is_loss(s) && s->in == SESSION_IN_OPEN && !s->rdhup_seen)
                ev |= EPOLLRDHUP;
        /* Not reading still has to see the host hang up (EPOLLHUP/ERR come
         * with an empty mask), or a command that never reads stdin would
         * outlive it. */
        int r = hangup_is_loss(s) ? watcher_set_keep(&s->w, ev) : watcher_set(&s->w, ev);
        if (r < 0)
                log_warn("session %llu: epoll: %s", sid(s), strerror(-r));
}

/* ---- the two state machines -------------------------------------------- */

static const char *const in_names[] = { "open", "eof", "done", "closed" };
static const char *const out_names[] = { "open", "drain", "shut", "lost", "closed" };

/* Whether a transition of the @dir machine (state names @names) goes
 * ahead: not to the same state, and only along an allowed edge (a refused
 * one is a bug, logged). */
static bool transition_ok(const struct session *s, const char *dir, const char *const *names, int from, int to,
                          bool allowed) {
        if (from == to)
                return false;
        if (!allowed) {
                log_error("session %llu: %s %s -> %s refused", sid(s), dir, names[from], names[to]);
                return false;
        }
        log_debug("session %llu: %s %s -> %s", sid(s), dir, names[from], names[to]);
        return true;
}

/* Input: OPEN -> EOF -> DONE; OPEN, EOF, DONE -> CLOSED. */
static void in_to(struct session *s, enum session_in to) {
        static const bool allowed[4][4] = {
                [SESSION_IN_OPEN] = { [SESSION_IN_EOF] = true, [SESSION_IN_CLOSED] = true },
                [SESSION_IN_EOF] = { [SESSION_IN_DONE] = true, [SESSION_IN_CLOSED] = true },
                [SESSION_IN_DONE] = { [SESSION_IN_CLOSED] = true },
        };
        if (!transition_ok(s, "input", in_names, s->in, to, allowed[s->in][to]))
                return;
        s->in = to;
        if (to == SESSION_IN_CLOSED)
                buf_wipe_free(&s->pending);
        if (to == SESSION_IN_CLOSED && closing(s))
                timer_disarm(&s->timer);
        session_changed(s);
}

/* Output: OPEN -> DRAIN -> SHUT; OPEN, DRAIN, SHUT -> LOST -> CLOSED; and
 * any -> CLOSED. */
static void out_to(struct session *s, enum session_out to) {
        static const bool allowed[5][5] = {
                [SESSION_OUT_OPEN] = { [SESSION_OUT_DRAIN] = true, [SESSION_OUT_LOST] = true,
                                       [SESSION_OUT_CLOSED] = true },
                [SESSION_OUT_DRAIN] = { [SESSION_OUT_SHUT] = true, [SESSION_OUT_LOST] = true,
                                        [SESSION_OUT_CLOSED] = true },
                [SESSION_OUT_SHUT] = { [SESSION_OUT_LOST] = true, [SESSION_OUT_CLOSED] = true },
                [SESSION_OUT_LOST] = { [SESSION_OUT_CLOSED] = true },
        };
        if (!transition_ok(s, "output", out_names, s->out, to, allowed[s->out][to]))
                return;
        s->out = to;
        switch (to) {
        case SESSION_OUT_DRAIN:
                if (buf_empty(&s->queue)) {
                        out_to(s, SESSION_OUT_SHUT);
                        return;
                }
                break;
        case SESSION_OUT_SHUT:
                if (shutdown(s->fd, SHUT_WR) < 0 && errno != ENOTCONN) {
                        int e = errno;
                        log_debug("session %llu: shutdown: %s", sid(s), strerror(e));
                        out_to(s, s->ops ? SESSION_OUT_LOST : SESSION_OUT_CLOSED);
                        return;
                }
                break;
        case SESSION_OUT_LOST:
        case SESSION_OUT_CLOSED:
                buf_free(&s->queue);
                timer_disarm(&s->send_timer);
                break;
        case SESSION_OUT_OPEN:
                break;
        }
        session_changed(s);
}

/* ---- lifecycle ---------------------------------------------------------- */

/* The operation let go of (finished or dropped): freed after the pass. */
static void retire_op(struct session *s) {
        if (s->retired_ops) {
                /* Two in one pass cannot happen (no request is read while
                 * one waits); free the older one rather than leak it. */
                log_error("session %llu: two operations retired in one pass", sid(s));
                if (s->retired_ops->free)
                        s->retired_ops->free(s->retired_op);
        }
        s->retired_ops = s->ops;
        s->retired_op = s->op;
        s->ops = NULL;
        s->op = NULL;
        s->hold = false;
        loop_defer(&s->work);
}

/* Close at once: nothing more is read or sent, nobody is told (the
 * operation, if any, is dropped). */
static void session_close(struct session *s) {
        if (s->ops)
                retire_op(s);
        in_to(s, SESSION_IN_CLOSED);
        out_to(s, SESSION_OUT_CLOSED);
}

/* Nothing more is read: the queue drains, the write side shuts, and the
 * connection closes at the host's EOF (bounded). */
static void abandon_input(struct session *s) {
        timer_disarm(&s->timer);
        buf_wipe_free(&s->pending);
        if (s->out == SESSION_OUT_OPEN)
                out_to(s, SESSION_OUT_DRAIN);
        session_changed(s);
}

/* The connection failed or the host hung up: drop what is queued and tell
 * the operation after the current call. */
static void session_lost(struct session *s, int err) {
        if (s->out == SESSION_OUT_LOST || s->out == SESSION_OUT_CLOSED)
                return;
        log_debug("session %llu: connection lost: %s", sid(s), strerror(-err));
        in_to(s, SESSION_IN_CLOSED);
        out_to(s, s->ops ? SESSION_OUT_LOST : SESSION_OUT_CLOSED);
}

/* After any transition: the linger bound while closing, the interest,
 * and deferred work (telling, freeing) when there is some. */
static void session_changed(struct session *s) {
        if (closing(s) && s->out == SESSION_OUT_SHUT && s->in == SESSION_IN_OPEN && !timer_armed(&s->timer)) {
                /* The host normally closes as soon as it has the result;
                 * the timer bounds how long a silent host keeps the fd. */
                if (s->agent->shutting_down || timer_arm_in_ms(&s->timer, SESSION_LINGER_MS) < 0) {
                        in_to(s, SESSION_IN_CLOSED);
                        return;
                }
        }
        if (complete(s))
                timer_disarm(&s->timer);
        /* Input that waited is handed over after the pass too; whoever
         * takes it either consumes some or pauses, so this cannot spin. */
        bool input_waits = (!buf_empty(&s->pending) || s->in == SESSION_IN_EOF) && input_wanted(s);
        if (s->retired_ops || s->out == SESSION_OUT_LOST || complete(s) || input_waits)
                loop_defer(&s->work);
        update_interest(s);
}

static void on_timer(struct timer *t) {
        struct session *s = container_of(t, struct session, timer);
        if (between_ops(s) || request_arriving(s)) {
                log_warn("session %llu: no request within %d ms, closing", sid(s), s->agent->idle_timeout_ms);
                session_close(s);
        } else if (closing(s))
                in_to(s, SESSION_IN_CLOSED); /* the host's EOF never came */
}

static void session_free(struct session *s) {
        defer_cancel(&s->work);
        timer_disarm(&s->timer);
        timer_disarm(&s->send_timer);
        timer_disarm(&s->probe_timer);
        watcher_stop(&s->w);
        s->fd = safe_close(s->fd);
        if (s->retired_ops && s->retired_ops->free)
                s->retired_ops->free(s->retired_op);
        if (s->ops && s->ops->free)
                s->ops->free(s->op);
        s->ops = s->retired_ops = NULL;
        s->op = s->retired_op = NULL;
        vsock_decoder_free(s->dec);
        buf_wipe_free(&s->pending);
        buf_free(&s->queue);
        struct agent *a = s->agent;
        (void) budget_release(&a->budget, s->frame_charge + s->request_charge);
        if (s->prev)
                s->prev->next = s->next;
        else if (a->sessions == s)
                a->sessions = s->next;
        if (s->next)
                s->next->prev = s->prev;
        a->n_sessions--;
        log_debug("session %llu: freed", sid(s));
        free(s);
}

/* ---- the send queue ------------------------------------------------------ */

/* Every frame queued ends here: written at once if nothing was waiting
 * (@before: the queue's size before it), else it waits for EPOLLOUT and
 * the queue may go high. */
/* A blocked queue is "high" at the high-water mark, or at any size while
 * the memory budget is nearly gone: sources then wait for the host to
 * read (streams keep at most a chunk each in the queue). */
static bool queue_too_full(const struct session *s) {
        size_t n = buf_size(&s->queue);
        return n >= AGENT_QUEUE_HIGH || (n > 0 && budget_left(&s->agent->budget) < AGENT_QUEUE_HIGH);
}

static void queue_pushed(struct session *s, size_t before) {
        if (before == 0)
                session_flush(s);
        else if (queue_too_full(s))
                s->high = true;
}

/* The send timeout: armed while the queue waits for the host, moved on
 * whenever some of it was written. */
static void send_timer_update(struct session *s, bool progress) {
        if (s->agent->send_timeout_ms <= 0 || (timer_armed(&s->send_timer) && !progress))
                return;
        if (timer_arm_in_ms(&s->send_timer, s->agent->send_timeout_ms) < 0)
                log_warn("session %llu: cannot arm the send timeout", sid(s));
}

/* The host read nothing of what waits for it for send_timeout_ms: as good
 * as gone (its command is cancelled as on a disconnect, the queue freed). */
static void on_send_timer(struct timer *t) {
        struct session *s = container_of(t, struct session, send_timer);
        log_warn("session %llu: the host read nothing of %zu queued bytes for %d ms, dropping the connection",
                 sid(s), buf_size(&s->queue), s->agent->send_timeout_ms);
        session_lost(s, -ETIMEDOUT);
}

/* The socket takes no more: wait for EPOLLOUT (and the send timeout).
 * Only a blocked queue can be "high": the drained callback then follows
 * from EPOLLOUT. */
static void queue_blocked(struct session *s, bool progress) {
        if (queue_too_full(s))
                s->high = true;
        send_timer_update(s, progress);
        update_interest(s);
}

static void session_flush(struct session *s) {
        bool progress = false;
        while (!buf_empty(&s->queue)) {
                struct iovec iov = { .iov_base = buf_head(&s->queue), .iov_len = buf_size(&s->queue) };
                ssize_t n = io_writev_once(s->fd, &iov, 1);
                if (n == -EAGAIN) {
                        queue_blocked(s, progress);
                        return;
                }
                if (n < 0) {
                        session_lost(s, (int) n);
                        return;
                }
                (void) buf_consume(&s->queue, (size_t) n);
                progress = n > 0;
        }
        timer_disarm(&s->send_timer);
        if (buf_capacity(&s->queue) > SESSION_KEEP_BUF)
                buf_free(&s->queue);
        if (s->out == SESSION_OUT_DRAIN)
                out_to(s, SESSION_OUT_SHUT);
        else
                update_interest(s);
}

static int queue_check(const struct session *s) { return s->out == SESSION_OUT_OPEN ? 0 : -EPIPE; }

int session_frame_begin(struct session *s, uint8_t type, size_t max, uint8_t **ret_payload) {
        int r = queue_check(s);
        if (r < 0)
                return r;
        if (max > UINT32_MAX)
                return -EMSGSIZE;
        uint8_t *t;
        r = buf_reserve(&s->queue, VSOCK_FRAME_HEADER_SIZE + max, &t);
        if (r < 0)
                return r;
        t[0] = type;
        s->frame_tail = t;
        *ret_payload = t + VSOCK_FRAME_HEADER_SIZE;
        return 0;
}

/* Commit the frame session_frame_begin reserved, with @n payload bytes. */
static void frame_commit(struct session *s, size_t n) {
        size_t before = buf_size(&s->queue);
        vsock_frame_header(s->frame_tail, s->frame_tail[0], (uint32_t) n);
        if (buf_commit(&s->queue, VSOCK_FRAME_HEADER_SIZE + n) < 0) {
                log_error("session %llu: frame of %zu bytes past its reservation", sid(s), n);
                return;
        }
        queue_pushed(s, before);
}

void session_frame_end(struct session *s, size_t n) {
        if (n > 0)
                frame_commit(s, n);
}

int session_send(struct session *s, uint8_t type, const void *data, size_t len) {
        if (queue_check(s) < 0)
                return 0; /* gone: the operation learns it via conn_lost */
        if (len > UINT32_MAX)
                return -EMSGSIZE;
        uint8_t hdr[VSOCK_FRAME_HEADER_SIZE];
        vsock_frame_header(hdr, type, (uint32_t) len);
        size_t sent = 0;
        if (buf_empty(&s->queue)) {
                /* Nothing waits: written from the caller's memory, and
                 * only what the socket does not take is copied. */
                struct iovec iov[2] = { { hdr, sizeof hdr }, { (void *) data, len } };
                ssize_t n = io_writev_once(s->fd, iov, len > 0 ? 2 : 1);
                if (n < 0 && n != -EAGAIN) {
                        session_lost(s, (int) n);
                        return 0;
                }
                sent = n > 0 ? (size_t) n : 0;
                if (sent == sizeof hdr + len)
                        return 0;
        }
        size_t before = buf_size(&s->queue), hdr_left = sent < sizeof hdr ? sizeof hdr - sent : 0;
        size_t data_off = sent > sizeof hdr ? sent - sizeof hdr : 0;
        uint8_t *t;
        int r = buf_reserve(&s->queue, hdr_left + (len - data_off), &t);
        if (r < 0) {
                if (sent > 0)
                        session_lost(s, r); /* half a frame is on the wire: nothing can follow it */
                return sent > 0 ? 0 : r;
        }
        memcpy(t, hdr + sizeof hdr - hdr_left, hdr_left);
        if (len > data_off)
                memcpy(t + hdr_left, (const uint8_t *) data + data_off, len - data_off);
        (void) buf_commit(&s->queue, hdr_left + (len - data_off));
        if (before > 0)
                queue_pushed(s, before);
        else
                queue_blocked(s, sent > 0); /* the socket took what it could */
        return 0;
}

int session_send_take(struct session *s, uint8_t type, struct buf *frame) {
        size_t n = buf_size(frame);
        int r = queue_check(s);
        if (r < 0 || n < VSOCK_FRAME_HEADER_SIZE || n - VSOCK_FRAME_HEADER_SIZE > UINT32_MAX) {
                buf_free(frame);
                return r == -EPIPE ? 0 : r < 0 ? r : n < VSOCK_FRAME_HEADER_SIZE ? -EINVAL : -EMSGSIZE;
        }
        vsock_frame_header(buf_head(frame), type, (uint32_t) (n - VSOCK_FRAME_HEADER_SIZE));
        size_t before = buf_size(&s->queue);
        if (before == 0)
                r = buf_move(&s->queue, frame); /* the queue has no cap: cannot fail */
        else
                r = buf_append(&s->queue, buf_head(frame), n);
        buf_free(frame);
        if (r < 0)
                return r;
        queue_pushed(s, before);
        return 0;
}

struct buf *session_encode_begin(struct session *s, uint8_t type) {
        if (queue_check(s) < 0)
                return NULL;
        s->encode_mark = buf_size(&s->queue);
        s->encode_type = type;
        /* Placeholder header; patched in session_encode_end. */
        static const uint8_t zero[VSOCK_FRAME_HEADER_SIZE];
        if (buf_append(&s->queue, zero, sizeof zero) < 0)
                return NULL;
        return &s->queue;
}

void session_encode_end(struct session *s, int r) {
        /* Offsets are relative to the head: a reserve may have moved it. */
        size_t total = buf_size(&s->queue) - s->encode_mark;
        if (r < 0 || total - VSOCK_FRAME_HEADER_SIZE > UINT32_MAX) {
                (void) buf_truncate(&s->queue, s->encode_mark);
                return;
        }
        vsock_frame_header(buf_head(&s->queue) + s->encode_mark, s->encode_type,
                           (uint32_t) (total - VSOCK_FRAME_HEADER_SIZE));
        queue_pushed(s, s->encode_mark);
}

int session_raw_begin(struct session *s, size_t max, uint8_t **ret_data) {
        int r = queue_check(s);
        if (r < 0)
                return r;
        return buf_reserve(&s->queue, max, ret_data);
}

void session_raw_end(struct session *s, size_t n) {
        if (n == 0)
                return;
        size_t before = buf_size(&s->queue);
        if (buf_commit(&s->queue, n) < 0) {
                log_error("session %llu: %zu raw bytes past their reservation", sid(s), n);
                return;
        }
        queue_pushed(s, before);
}

/* EPOLLOUT: write on, and tell the operation when the queue fell below
 * the low mark, or emptied after having been blocked (port forwarding
 * waits for that). */
static void session_writable(struct session *s) {
        bool was_blocked = !buf_empty(&s->queue);
        session_flush(s);
        if (s->out == SESSION_OUT_LOST || s->out == SESSION_OUT_CLOSED)
                return;
        bool low = s->high && buf_size(&s->queue) < AGENT_QUEUE_LOW;
        bool emptied = was_blocked && buf_empty(&s->queue);
        if (low || emptied) {
                s->high = false;
                if (s->ops && s->ops->drained)
                        s->ops->drained(s->op);
        }
}

/* ---- requests -------------------------------------------------------------- */

static bool is_ext_type(uint8_t type) { return type >= EXT_MSG_FIRST && type <= EXT_MSG_LAST; }

static const struct session_handler *handler_for(const struct session *s, uint8_t type) {
        const struct session_handler *table = session_handlers(s->agent);
        if (type < SESSION_HANDLER_TYPES && table[type].start)
                return &table[type];
        return is_ext_type(type) && s->ext ? &ext_unknown_handler : NULL;
}

/* Extension requests only on a connection that began with Hello, and
 * Hello only as its first frame (PROTOCOL.md 2.2): otherwise the agent
 * closes, as a base agent would. NULL when @type may start here. */
static const char *ext_refusal(const struct session *s, uint8_t type) {
        if (!is_ext_type(type))
                return NULL;
        if (type == EXT_MSG_HELLO)
                return s->requests > 0 ? "Hello after the first request" : NULL;
        return s->ext ? NULL : "extension request without Hello";
}

static uint32_t request_max(const struct session_handler *h, uint8_t type) {
        if (h && h->max_len)
                return h->max_len;
        return is_ext_type(type) ? EXT_REQUEST_MAX : SESSION_MAX_PAYLOAD;
}

/* A complete request: start what it asks for. The one dispatch point. */
static void session_dispatch(struct session *s, uint8_t type, uint8_t *payload, uint32_t len) {
        const struct session_handler *h = handler_for(s, type);
        if (h && h->drop && s->ext) {
                free(payload);
                return;
        }
        timer_disarm(&s->timer);
        const char *name = vsock_msg_type_name(type);
        log_debug("session %llu: request %s (%u bytes)", sid(s), name ? name : "?", len);
        if (!name)
                name = ext_msg_type_name(type);
        const char *refusal = ext_refusal(s, type);
        if (!h || refusal) {
                log_warn("session %llu: %s %u (%s), closing", sid(s),
                         refusal ? refusal : "unexpected first message type", type, name ? name : "unknown");
                if (payload)
                        explicit_bzero(payload, len);
                free(payload);
                session_close(s);
                return;
        }
        s->handler = h;
        s->requests++;
        s->starting = true;
        int r = h->start(s, type, payload, len);
        s->starting = false;
        if (r < 0) {
                log_warn("session %llu: %s failed: %s", sid(s), name ? name : "?", strerror(-r));
                session_close(s);
        }
}

/* A frame of @len bytes is about to be collected (the decoder allocates
 * it next): count it, or refuse a big one the budget has no room for. */
static int frame_reserve(struct session *s, uint32_t len) {
        if (len <= SESSION_SMALL_FRAME)
                budget_charge(&s->agent->budget, len);
        else if (budget_reserve(&s->agent->budget, len) < 0)
                return -ENOBUFS;
        s->frame_charge = len;
        return 0;
}

static void frame_release(struct session *s) {
        (void) budget_release(&s->agent->budget, s->frame_charge);
        s->frame_charge = 0;
}

/* A request the budget has no room for: an error reply (from the
 * handler's refuse), and the connection closes; the rest of the request
 * is read and dropped meanwhile (bounded by the linger). */
static void request_refuse(struct session *s, const struct session_handler *h, uint8_t type, uint32_t len) {
        char why[192];
        snprintf(why, sizeof why, "%s (%zu MiB): a request of %u bytes does not fit", AGENT_BUDGET_TEXT,
                 budget_limit(&s->agent->budget) >> 20, len);
        log_warn("session %llu: %s", sid(s), why);
        if (!h || !h->refuse) {
                session_close(s);
                return;
        }
        h->refuse(s, type, why);
        timer_disarm(&s->timer);
        if (s->out == SESSION_OUT_OPEN)
                out_to(s, SESSION_OUT_DRAIN);
}

/* A request announced at its header: big ones of a streamed type are taken
 * over now, their payload then passing through as raw input; the others
 * are collected whole if the memory budget has room. */
static void request_header(struct session *s, uint8_t type, uint32_t len) {
        const struct session_handler *h = handler_for(s, type);
        const char *refusal = ext_refusal(s, type);
        if (refusal) {
                log_warn("session %llu: %s (type %u), closing", sid(s), refusal, type);
                session_close(s);
                return;
        }
        if (len > request_max(h, type)) {
                log_warn("session %llu: request type %u of %u bytes, over its limit, closing", sid(s), type, len);
                if (s->ext) {
                        /* The host may still read why; nothing more is read. */
                        (void) ext_error_send(s, "ELIMIT", 0, NULL, "request of %u bytes exceeds the limit of %u",
                                              len, request_max(h, type));
                        abandon_input(s);
                } else
                        session_close(s);
                return;
        }
        if (!h || !h->start_streamed || len < h->streamed_min) {
                if (frame_reserve(s, len) < 0)
                        request_refuse(s, h, type, len);
                return;
        }
        s->handler = h;
        if (vsock_decoder_pass(s->dec) < 0 || h->start_streamed(s, len) < 0)
                session_close(s);
}

/* A frame that is too large, or a protocol error from the operation. */
static void frame_error(struct session *s, int err) {
        if (between_ops(s)) {
                log_warn("session %llu: frame too large, closing", sid(s));
                session_close(s);
        } else
                session_lost(s, err);
}

/* ---- input --------------------------------------------------------------- */

/* A complete frame: the request, or one for the operation. */
static void frame_ready(struct session *s) {
        uint8_t type;
        const uint8_t *payload;
        uint32_t len;
        vsock_decoder_frame(s->dec, &type, &payload, &len);
        if (!s->ops) {
                /* The request's charge goes with its payload: to the
                 * operation if it takes it over, else it ends here. */
                s->request_charge = s->frame_charge;
                s->frame_charge = 0;
                session_dispatch(s, type, vsock_decoder_take_payload(s->dec), len);
                (void) budget_release(&s->agent->budget, session_request_charge_take(s));
                return;
        }
        int r = s->ops->frame ? s->ops->frame(s->op, type, payload, len) : 0;
        vsock_decoder_reset(s->dec);
        frame_release(s);
        if (r < 0) {
                log_warn("session %llu: protocol error on message type %u: %s", sid(s), type, strerror(-r));
                frame_error(s, r);
        }
}

/* Feed host bytes to the decoder and on to the request reader or the
 * operation while they are wanted; the rest waits in s->pending. */
static void session_feed(struct session *s, const uint8_t *data, size_t len) {
        while (len > 0 && input_wanted(s)) {
                if (closing(s)) {
                        len = 0; /* late input after the result is dropped */
                        break;
                }
                size_t used = 0;
                int r = vsock_decoder_feed(s->dec, data, len, &used);
                data += used;
                len -= used;
                if (r == VSOCK_DECODER_PASS) {
                        size_t k = MIN(len, vsock_decoder_pass_left(s->dec));
                        size_t took = s->ops && s->ops->raw ? s->ops->raw(s->op, data, k) : k;
                        took = MIN(took, k);
                        (void) vsock_decoder_passed(s->dec, took);
                        data += took;
                        len -= took;
                        if (took == 0 && !s->hold) {
                                /* Taking nothing without pausing would
                                 * hand the same bytes over forever. */
                                log_error("session %llu: %s took no input and did not pause", sid(s),
                                          s->ops ? s->ops->name : "?");
                                s->hold = true;
                        }
                } else if (r == VSOCK_DECODER_HEADER) {
                        uint8_t type;
                        uint32_t flen;
                        (void) vsock_decoder_header(s->dec, &type, &flen);
                        if (!s->ops)
                                request_header(s, type, flen);
                        else if (flen > SESSION_MAX_PAYLOAD_AFTER)
                                frame_error(s, -EMSGSIZE);
                        else if (s->ops->header && (r = s->ops->header(s->op, type, flen)) < 0)
                                frame_error(s, r);
                        else if (frame_reserve(s, flen) < 0) {
                                log_warn("session %llu: %s (%zu MiB): a frame of %u bytes does not fit, "
                                         "dropping the connection", sid(s), AGENT_BUDGET_TEXT,
                                         budget_limit(&s->agent->budget) >> 20, flen);
                                frame_error(s, -ENOBUFS);
                        }
                } else if (r == VSOCK_DECODER_FRAME)
                        frame_ready(s);
                else if (r < 0)
                        frame_error(s, r);
        }
        if (len > 0 && (s->in == SESSION_IN_OPEN || s->in == SESSION_IN_EOF) && buf_append(&s->pending, data, len) < 0)
                session_lost(s, -ENOMEM);
}

/* The host's EOF, once everything before it was taken. */
static void deliver_eof(struct session *s) {
        if (s->in != SESSION_IN_EOF || !buf_empty(&s->pending) || !input_wanted(s))
                return;
        if (between_ops(s) && vsock_decoder_partial(s->dec)) {
                log_warn("session %llu: truncated request", sid(s));
                session_close(s);
                return;
        }
        if (s->ops && vsock_decoder_partial(s->dec)) {
                /* Cut off inside a frame: nothing can make sense of it. */
                session_lost(s, -EPIPE);
                return;
        }
        in_to(s, SESSION_IN_DONE);
        if (s->ops) {
                if (s->ops->input_eof)
                        s->ops->input_eof(s->op);
        } else if (s->out == SESSION_OUT_OPEN) {
                /* Between requests: the host is done; so are we once the
                 * queue is written. */
                timer_disarm(&s->timer);
                out_to(s, SESSION_OUT_DRAIN);
        }
}

/* Bytes kept earlier, then the EOF, as far as they are wanted now. */
static void take_pending(struct session *s) {
        if (!buf_empty(&s->pending) && input_wanted(s)) {
                /* Feed a copy: what is left over goes back to s->pending. */
                struct buf old = s->pending;
                s->pending = BUF_INIT(0);
                buf_set_budget(&s->pending, &s->agent->budget, false);
                session_feed(s, buf_head(&old), buf_size(&old));
                buf_wipe_free(&old);
        }
        deliver_eof(s);
}

/* Where to read a large payload's remaining bytes directly (one copy
 * fewer than through read_buf): only when a whole chunk or more is
 * missing, so small frames still arrive many to a read. */
static uint8_t *direct_tail(struct session *s, size_t *ret_room) {
        if (!buf_empty(&s->pending) || closing(s))
                return NULL;
        uint8_t *t = vsock_decoder_payload_tail(s->dec, ret_room);
        return t && *ret_room >= AGENT_READ_CHUNK ? t : NULL;
}

/* Whether the host closed both ways (or reset) rather than half-closed;
 * only while our write side is open, or our own shutdown would answer. */
static bool peer_gone(const struct session *s) { return hangup_is_loss(s) && io_peer_gone(s->fd); }

static void arm_probe(struct session *s) {
        if (s->vsock && timer_arm_in_ms(&s->probe_timer, SESSION_PROBE_MS) < 0)
                log_warn("session %llu: cannot arm the close probe", sid(s));
}

/* A half-closed vsock connection whose operation still runs: the host's
 * later close raises no epoll event (the kernel only marks the socket), so
 * it is asked once a second; an idle socket costs one syscall each time. */
static void on_probe_timer(struct timer *t) {
        struct session *s = container_of(t, struct session, probe_timer);
        if (s->in == SESSION_IN_CLOSED || !hangup_is_loss(s))
                return;
        if (peer_gone(s)) {
                log_debug("session %llu: the host closed its half-closed connection", sid(s));
                session_lost(s, -EPIPE);
                session_changed(s);
                return;
        }
        arm_probe(s);
}

static void session_read(struct session *s) {
        size_t room = 0;
        uint8_t *tail = direct_tail(s, &room);
        ssize_t n = tail ? io_read_once(s->fd, tail, room) : io_read_once(s->fd, read_buf, sizeof read_buf);
        if (n == -EAGAIN)
                return;
        if (n < 0) {
                session_lost(s, (int) n);
                return;
        }
        if (n == 0) {
                if (peer_gone(s)) {
                        /* A full close, not a half-close: AF_VSOCK says so
                         * with EOF alone (no EPOLLHUP), and the host's
                         * command must not outlive it. */
                        session_lost(s, -EPIPE);
                        return;
                }
                in_to(s, SESSION_IN_EOF);
                arm_probe(s);
                deliver_eof(s);
                return;
        }
        if (tail) {
                /* At most the room was read: nothing of a next frame. */
                if (vsock_decoder_payload_commit(s->dec, (size_t) n) == 1)
                        frame_ready(s);
        } else
                session_feed(s, read_buf, (size_t) n);
}

static void on_conn(struct watcher *w, uint32_t revents) {
        struct session *s = container_of(w, struct session, w);
        if (revents & EPOLLERR) {
                int err = 0;
                socklen_t sl = sizeof err;
                (void) getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &sl);
                session_lost(s, -(err ? err : EPIPE));
                return;
        }
        if ((revents & EPOLLHUP) && hangup_is_loss(s)) {
                /* A full close (or reset), not a half-close: the host is
                 * gone, and nothing it sent before matters any more. */
                session_lost(s, -EPIPE);
                return;
        }
        if ((revents & EPOLLRDHUP) && !input_wanted(s) && hangup_is_loss(s) && !s->rdhup_seen) {
                /* A close or a half-close while the operation runs; a
                 * half-close is a stream's business once it reads. */
                s->rdhup_seen = true;
                if (peer_gone(s)) {
                        session_lost(s, -EPIPE);
                        return;
                }
                arm_probe(s);
        }
        if (revents & EPOLLOUT)
                session_writable(s);
        if ((revents & (EPOLLIN | EPOLLHUP)) && input_wanted(s) && s->in == SESSION_IN_OPEN &&
            buf_empty(&s->pending))
                session_read(s);
        session_changed(s);
}

/* After the pass: free the finished operation, tell a live one that its
 * connection is gone, hand over input that waited, free a complete
 * session. */
static void session_work(struct defer *d) {
        struct session *s = container_of(d, struct session, work);
        if (s->retired_ops) {
                const struct session_ops *ops = TAKE_PTR(s->retired_ops);
                if (ops->free)
                        ops->free(TAKE_PTR(s->retired_op));
        }
        if (s->out == SESSION_OUT_LOST) {
                out_to(s, SESSION_OUT_CLOSED);
                if (s->ops && s->ops->conn_lost)
                        s->ops->conn_lost(s->op);
                else if (s->ops)
                        retire_op(s); /* nothing to tell: dropped with the connection */
        }
        take_pending(s);
        if (complete(s)) {
                session_free(s);
                return;
        }
        session_changed(s);
}

/* ---- the operation's calls -------------------------------------------------- */

void session_set_op(struct session *s, const struct session_ops *ops, void *op) {
        s->ops = ops;
        s->op = op;
}

void session_pause_input(struct session *s, bool pause) {
        if (s->hold == pause)
                return;
        s->hold = pause;
        session_changed(s); /* input left over is handed over after this call */
}

void session_set_raw(struct session *s) {
        if (request_arriving(s))
                return; /* a request taken over at its header already passes through */
        if (vsock_decoder_set_raw(s->dec) < 0)
                log_error("session %llu: raw mode inside a frame", sid(s));
}

void session_shutdown_write(struct session *s) {
        if (s->out == SESSION_OUT_OPEN)
                out_to(s, SESSION_OUT_DRAIN);
}

void session_request_done(struct session *s) { timer_disarm(&s->timer); }

size_t session_request_charge_take(struct session *s) {
        size_t n = s->request_charge;
        s->request_charge = 0;
        return n;
}

static void finish(struct session *s, bool may_reuse) {
        /* Without an operation only from inside start() (a synchronous
         * reply); otherwise it was finished already. */
        if (!s->ops && !s->starting)
                return;
        /* Reused only at a clean frame boundary with both directions whole:
         * what follows is the next request. */
        bool reuse = may_reuse && s->handler && s->handler->reply && s->out == SESSION_OUT_OPEN &&
                     (s->in == SESSION_IN_OPEN || s->in == SESSION_IN_EOF) && !vsock_decoder_partial(s->dec) &&
                     !s->agent->shutting_down;
        if (s->ops)
                retire_op(s);
        if (reuse) {
                log_debug("session %llu: ready for the next request", sid(s));
                if (timer_arm_in_ms(&s->timer, s->agent->idle_timeout_ms) < 0) {
                        session_close(s);
                        return;
                }
        } else {
                abandon_input(s);
                return;
        }
        session_changed(s);
}

void session_finish(struct session *s) { finish(s, true); }
void session_finish_close(struct session *s) { finish(s, false); }

/* ---- the agent's calls -------------------------------------------------------- */

int session_new(struct agent *a, int fd, const struct vsock_peer *peer, struct session **ret) {
        struct session *s = calloc(1, sizeof *s);
        if (!s) {
                safe_close(fd);
                return -ENOMEM;
        }
        s->agent = a;
        s->fd = fd;
        s->id = ++a->next_session_id;
        s->queue = BUF_INIT(0);
        s->pending = BUF_INIT(0);
        buf_set_budget(&s->queue, &a->budget, false);
        buf_set_budget(&s->pending, &a->budget, false);
        int r = vsock_decoder_new(SESSION_MAX_PAYLOAD, &s->dec);
        if (r < 0) {
                safe_close(fd);
                free(s);
                return r;
        }
        vsock_decoder_report_headers(s->dec, true);
        watcher_init(&s->w, a->loop, fd, on_conn);
        timer_init(&s->timer, a->loop, on_timer);
        timer_init(&s->send_timer, a->loop, on_send_timer);
        timer_init(&s->probe_timer, a->loop, on_probe_timer);
        s->vsock = peer && peer->transport == VSOCK_TRANSPORT_VSOCK;
        defer_init(&s->work, a->loop, session_work);
        s->next = a->sessions;
        if (a->sessions)
                a->sessions->prev = s;
        a->sessions = s;
        a->n_sessions++;
        r = timer_arm_in_ms(&s->timer, a->idle_timeout_ms);
        if (r >= 0)
                r = watcher_set_keep(&s->w, EPOLLIN);
        if (r < 0) {
                session_free(s);
                return r;
        }
        if (peer)
                log_debug("session %llu: accepted (cid %u uid %d pid %d)", sid(s), peer->cid,
                          peer->has_cred ? (int) peer->uid : -1, peer->has_cred ? (int) peer->pid : -1);
        *ret = s;
        return 0;
}

void session_shutdown_all(struct agent *a) {
        for (struct session *s = a->sessions; s; s = s->next) {
                if (s->ops) {
                        if (s->ops->shutdown)
                                s->ops->shutdown(s->op);
                } else if (between_ops(s) && buf_empty(&s->queue))
                        session_close(s);
                else if (between_ops(s)) {
                        /* A reply still being written: finish it first. */
                        timer_disarm(&s->timer);
                        in_to(s, SESSION_IN_CLOSED);
                        out_to(s, SESSION_OUT_DRAIN);
                } else if (closing(s) && s->out == SESSION_OUT_SHUT)
                        in_to(s, SESSION_IN_CLOSED);
        }
}

void session_destroy_all(struct agent *a) {
        while (a->sessions)
                session_free(a->sessions);
}
