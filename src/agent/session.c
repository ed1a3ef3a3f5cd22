#include "agent/session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vsock/error.h>
#include <vsock/frame.h>
#include <vsock/msg.h>

#include "agent/ops.h"
#include "common/buf.h"
#include "common/io.h"
#include "common/log.h"
#include "common/macro.h"

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

enum session_state {
        SESSION_REQUEST,
        SESSION_ACTIVE,
        SESSION_FLUSH,
        SESSION_LINGER,
        SESSION_CLOSED,
};

struct session {
        struct watcher w;
        struct timer timer;             /* idle (REQUEST) or linger (LINGER) */
        struct agent *agent;
        uint64_t id;
        int fd;
        enum session_state state;
        vsock_decoder *dec;
        struct buf in;                  /* host bytes not yet taken (rare) */
        struct buf out;                 /* send queue */
        const struct session_ops *ops;
        void *op;
        bool raw;
        bool in_paused;
        bool in_eof;                    /* read returned 0 */
        bool hup_ignored;               /* paused with our side shut: HUP is just EOF */
        bool eof_delivered;
        bool out_blocked;               /* waiting for EPOLLOUT */
        bool out_high;                  /* queue went above the high mark */
        bool dead;                      /* connection unusable */
        bool shut_wr_wanted, shut_wr_done;
        bool free_queued;
        unsigned pending;               /* deferred calls holding @s */
        uint8_t *frame_tail;            /* session_frame_begin's reservation */
        size_t encode_mark;             /* queue size at session_encode_begin */
        uint8_t encode_type;
        struct session *prev, *next;
};

/* One read buffer for all sessions: the loop is single-threaded, and
 * idle sessions then hold no input memory. */
static uint8_t read_buf[AGENT_READ_CHUNK];

static void session_process(struct session *s, const uint8_t *data, size_t len);
static void session_flush(struct session *s);

uint64_t session_id(const struct session *s) { return s->id; }
struct agent *session_agent(const struct session *s) { return s->agent; }
bool session_can_send(const struct session *s) { return !s->dead && s->fd >= 0; }
bool session_queue_empty(const struct session *s) { return buf_empty(&s->out); }

/* Interest follows state in this one place. */
static void session_update_events(struct session *s) {
        if (s->fd < 0)
                return;
        uint32_t ev = 0;
        bool reading = s->state == SESSION_LINGER ||
                       ((s->state == SESSION_REQUEST || s->state == SESSION_ACTIVE) && !s->in_paused);
        if (reading && !s->in_eof && !s->dead)
                ev |= EPOLLIN;
        if (s->out_blocked && !s->dead)
                ev |= EPOLLOUT;
        /* Paused input still has to see the host hang up (EPOLLHUP/ERR come
         * with an empty mask), or a command that never reads stdin would
         * outlive it. */
        bool paused = (s->state == SESSION_REQUEST || s->state == SESSION_ACTIVE) && s->in_paused &&
                      !s->in_eof && !s->dead && !s->hup_ignored;
        int r = paused ? watcher_set_keep(&s->w, ev) : watcher_set(&s->w, ev);
        if (r < 0)
                log_warn("session %llu: epoll: %s", (unsigned long long) s->id, strerror(-r));
}

static void session_free(struct session *s) {
        timer_disarm(&s->timer);
        watcher_stop(&s->w);
        s->fd = safe_close(s->fd);
        if (s->ops && s->ops->free)
                s->ops->free(s->op);
        s->ops = NULL;
        s->op = NULL;
        vsock_decoder_free(s->dec);
        buf_wipe_free(&s->in);
        buf_free(&s->out);
        struct agent *a = s->agent;
        if (s->prev)
                s->prev->next = s->next;
        else if (a->sessions == s)
                a->sessions = s->next;
        if (s->next)
                s->next->prev = s->prev;
        a->n_sessions--;
        log_debug("session %llu: freed", (unsigned long long) s->id);
        free(s);
}

static void session_free_deferred(void *p) {
        struct session *s = p;
        if (s->pending > 0) {
                /* A deferred call still refers to @s: go after it. */
                (void) loop_defer(s->agent->loop, session_free_deferred, s);
                return;
        }
        session_free(s);
}

/* Close the connection. The session is freed after the pass. */
static void session_close(struct session *s) {
        if (s->state == SESSION_CLOSED)
                return;
        s->state = SESSION_CLOSED;
        timer_disarm(&s->timer);
        watcher_stop(&s->w);
        s->fd = safe_close(s->fd);
        buf_free(&s->out);
        if (!s->free_queued) {
                s->free_queued = true;
                if (loop_defer(s->agent->loop, session_free_deferred, s) < 0)
                        log_error("session %llu: cannot queue free; leaking", (unsigned long long) s->id);
        }
}

static void notify_lost(void *p) {
        struct session *s = p;
        s->pending--;
        if (s->state == SESSION_ACTIVE && s->ops && s->ops->conn_lost)
                s->ops->conn_lost(s->op);
}

/* The connection failed: drop what is queued, stop watching it, and tell
 * the operation outside of whatever call we are in. */
static void session_mark_dead(struct session *s, int err) {
        if (s->dead)
                return;
        s->dead = true;
        log_debug("session %llu: connection lost: %s", (unsigned long long) s->id, strerror(-err));
        buf_free(&s->out);
        s->out_blocked = false;
        watcher_stop(&s->w);
        switch (s->state) {
        case SESSION_ACTIVE:
                if (loop_defer(s->agent->loop, notify_lost, s) >= 0)
                        s->pending++;
                break;
        case SESSION_REQUEST:
        case SESSION_FLUSH:
        case SESSION_LINGER:
                session_close(s);
                break;
        case SESSION_CLOSED:
                break;
        }
}

static void on_timer(struct timer *t) {
        struct session *s = container_of(t, struct session, timer);
        if (s->state == SESSION_REQUEST)
                log_warn("session %llu: no request within %d ms, closing", (unsigned long long) s->id,
                         s->agent->idle_timeout_ms);
        else if (s->state != SESSION_LINGER)
                return;
        session_close(s);
}

static void begin_linger(struct session *s) {
        s->state = SESSION_LINGER;
        if (!s->shut_wr_done && shutdown(s->fd, SHUT_WR) < 0 && errno != ENOTCONN)
                log_debug("session %llu: shutdown: %m", (unsigned long long) s->id);
        s->shut_wr_done = true;
        /* The host normally closes as soon as it has the result; the timer
         * bounds how long a silent host can keep the fd. */
        if (s->in_eof || s->agent->shutting_down || timer_arm_in_ms(&s->timer, SESSION_LINGER_MS) < 0) {
                session_close(s);
                return;
        }
        session_update_events(s);
}

static void session_flush(struct session *s) {
        while (!buf_empty(&s->out) && !s->dead) {
                struct iovec iov = { .iov_base = buf_head(&s->out), .iov_len = buf_size(&s->out) };
                ssize_t n = io_writev_once(s->fd, &iov, 1);
                if (n == -EAGAIN) {
                        /* Only a blocked queue can be "high": the drained
                         * callback then follows from EPOLLOUT. */
                        if (buf_size(&s->out) >= AGENT_QUEUE_HIGH)
                                s->out_high = true;
                        if (!s->out_blocked) {
                                s->out_blocked = true;
                                session_update_events(s);
                        }
                        return;
                }
                if (n < 0) {
                        session_mark_dead(s, (int) n);
                        return;
                }
                (void) buf_consume(&s->out, (size_t) n);
        }
        if (s->dead)
                return;
        if (buf_capacity(&s->out) > SESSION_KEEP_BUF)
                buf_free(&s->out);
        if (s->out_blocked) {
                s->out_blocked = false;
                session_update_events(s);
        }
        if (s->state == SESSION_FLUSH)
                begin_linger(s);
        else if (s->shut_wr_wanted && !s->shut_wr_done) {
                s->shut_wr_done = true;
                if (shutdown(s->fd, SHUT_WR) < 0)
                        session_mark_dead(s, -errno);
        }
}

static int queue_check(struct session *s) {
        if (s->dead || s->fd < 0 || s->state == SESSION_LINGER || s->state == SESSION_CLOSED)
                return -EPIPE;
        return 0;
}

int session_frame_begin(struct session *s, uint8_t type, size_t max, uint8_t **ret_payload) {
        int r = queue_check(s);
        if (r < 0)
                return r;
        if (max > UINT32_MAX)
                return -EMSGSIZE;
        uint8_t *t;
        r = buf_reserve(&s->out, VSOCK_FRAME_HEADER_SIZE + max, &t);
        if (r < 0)
                return r;
        t[0] = type;
        s->frame_tail = t;
        *ret_payload = t + VSOCK_FRAME_HEADER_SIZE;
        return 0;
}

void session_frame_end(struct session *s, size_t n) {
        if (n == 0)
                return;
        uint8_t *t = s->frame_tail;
        vsock_frame_header(t, t[0], (uint32_t) n);
        (void) buf_commit(&s->out, VSOCK_FRAME_HEADER_SIZE + n);
        if (!s->out_blocked)
                session_flush(s);
        else if (buf_size(&s->out) >= AGENT_QUEUE_HIGH)
                s->out_high = true;
}

int session_send(struct session *s, uint8_t type, const void *data, size_t len) {
        uint8_t *p;
        int r = session_frame_begin(s, type, len, &p);
        if (r == -EPIPE)
                return 0; /* gone: the operation learns it via conn_lost */
        if (r < 0)
                return r;
        if (len == 0) {
                /* An empty frame is still a frame (Ready, Stdin EOF). */
                vsock_frame_header(s->frame_tail, type, 0);
                (void) buf_commit(&s->out, VSOCK_FRAME_HEADER_SIZE);
                if (!s->out_blocked)
                        session_flush(s);
                return 0;
        }
        memcpy(p, data, len);
        session_frame_end(s, len);
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
        if (buf_empty(&s->out)) {
                r = buf_move(&s->out, frame); /* the queue has no cap: cannot fail */
                buf_free(frame);
                if (r < 0)
                        return r;
        } else {
                r = buf_append(&s->out, buf_head(frame), n);
                buf_free(frame);
                if (r < 0)
                        return r;
        }
        if (!s->out_blocked)
                session_flush(s);
        else if (buf_size(&s->out) >= AGENT_QUEUE_HIGH)
                s->out_high = true;
        return 0;
}

struct buf *session_encode_begin(struct session *s, uint8_t type) {
        if (queue_check(s) < 0)
                return NULL;
        s->encode_mark = buf_size(&s->out);
        s->encode_type = type;
        /* Placeholder header; patched in session_encode_end. */
        static const uint8_t zero[VSOCK_FRAME_HEADER_SIZE];
        if (buf_append(&s->out, zero, sizeof zero) < 0)
                return NULL;
        return &s->out;
}

void session_encode_end(struct session *s, int r) {
        /* Offsets are relative to the head: a reserve may have moved it. */
        size_t total = buf_size(&s->out) - s->encode_mark;
        if (r < 0 || total - VSOCK_FRAME_HEADER_SIZE > UINT32_MAX) {
                (void) buf_truncate(&s->out, s->encode_mark);
                return;
        }
        vsock_frame_header(buf_head(&s->out) + s->encode_mark, s->encode_type,
                           (uint32_t) (total - VSOCK_FRAME_HEADER_SIZE));
        if (!s->out_blocked)
                session_flush(s);
        else if (buf_size(&s->out) >= AGENT_QUEUE_HIGH)
                s->out_high = true;
}

int session_raw_begin(struct session *s, size_t max, uint8_t **ret_data) {
        int r = queue_check(s);
        if (r < 0)
                return r;
        return buf_reserve(&s->out, max, ret_data);
}

void session_raw_end(struct session *s, size_t n) {
        if (n == 0)
                return;
        (void) buf_commit(&s->out, n);
        if (!s->out_blocked)
                session_flush(s);
        else if (buf_size(&s->out) >= AGENT_QUEUE_HIGH)
                s->out_high = true;
}

bool session_queue_high(struct session *s) { return s->out_high; }

static void kick(void *p) {
        struct session *s = p;
        s->pending--;
        if ((s->state != SESSION_ACTIVE && s->state != SESSION_REQUEST) || s->in_paused)
                return;
        if (!buf_empty(&s->in)) {
                /* Process a copy: the op may leave some of it again. */
                struct buf old = s->in;
                s->in = BUF_INIT(0);
                session_process(s, buf_head(&old), buf_size(&old));
                buf_wipe_free(&old);
        } else if (s->in_eof && !s->eof_delivered)
                session_process(s, NULL, 0);
        session_update_events(s);
}

void session_pause_input(struct session *s, bool pause) {
        if (s->in_paused == pause)
                return;
        s->in_paused = pause;
        if (!pause && (!buf_empty(&s->in) || (s->in_eof && !s->eof_delivered))) {
                /* Leftover input is handed over after this call returns. */
                if (loop_defer(s->agent->loop, kick, s) >= 0)
                        s->pending++;
        }
        session_update_events(s);
}

void session_set_raw(struct session *s) { s->raw = true; }

void session_shutdown_write(struct session *s) {
        s->shut_wr_wanted = true;
        if (!s->dead && s->fd >= 0 && buf_empty(&s->out) && !s->shut_wr_done) {
                s->shut_wr_done = true;
                if (shutdown(s->fd, SHUT_WR) < 0 && errno != ENOTCONN)
                        session_mark_dead(s, -errno);
        }
}

void session_set_op(struct session *s, const struct session_ops *ops, void *op) {
        s->ops = ops;
        s->op = op;
}

void session_finish(struct session *s) {
        if (s->state != SESSION_ACTIVE && s->state != SESSION_REQUEST)
                return;
        if (s->dead || s->fd < 0) {
                session_close(s);
                return;
        }
        s->state = SESSION_FLUSH;
        s->in_paused = false;
        buf_wipe_free(&s->in);
        if (buf_empty(&s->out))
                begin_linger(s);
        else
                session_update_events(s);
}

void session_request_done(struct session *s) {
        timer_disarm(&s->timer);
        s->state = SESSION_ACTIVE;
}

static void dispatch_request(struct session *s, uint8_t type, uint8_t *payload, uint32_t len) {
        session_request_done(s);
        const char *name = vsock_msg_type_name(type);
        log_debug("session %llu: request %s (%u bytes)", (unsigned long long) s->id, name ? name : "?", len);
        int r;
        switch (type) {
        case VSOCK_MSG_EXEC:
        case VSOCK_MSG_EXEC_STREAM:
        case VSOCK_MSG_EXEC_PIPE:
        case VSOCK_MSG_EXEC_TTY:
                r = exec_start(s, type, payload, len);
                break;
        case VSOCK_MSG_PORT_FORWARD:
                r = portfwd_start(s, type, payload, len);
                break;
        case VSOCK_MSG_WRITE_FILE:
        case VSOCK_MSG_READ_FILE:
        case VSOCK_MSG_LIST_FILES:
                r = fileop_start(s, type, payload, len);
                break;
        default:
                log_warn("session %llu: unexpected first message type %u (%s), closing",
                         (unsigned long long) s->id, type, name ? name : "unknown");
                if (payload)
                        explicit_bzero(payload, len);
                free(payload);
                r = -EBADMSG;
                break;
        }
        if (r < 0) {
                if (r != -EBADMSG)
                        log_warn("session %llu: %s failed: %s", (unsigned long long) s->id,
                                 name ? name : "?", strerror(-r));
                session_close(s);
        }
}

/* The decoder holds a complete frame: the request starts the operation,
 * later frames go to it. Returns false when the session stopped reading
 * for good (closed or dead). */
static bool session_frame_ready(struct session *s) {
        uint8_t type;
        const uint8_t *payload;
        uint32_t plen;
        vsock_decoder_frame(s->dec, &type, &payload, &plen);
        if (s->state == SESSION_REQUEST) {
                uint8_t *p = vsock_decoder_take_payload(s->dec);
                vsock_decoder_free(s->dec);
                s->dec = NULL;
                if (vsock_decoder_new(SESSION_MAX_PAYLOAD_AFTER, &s->dec) < 0) {
                        free(p);
                        session_close(s);
                        return false;
                }
                dispatch_request(s, type, p, plen);
                return true;
        }
        int fr = s->ops && s->ops->frame ? s->ops->frame(s->op, type, payload, plen) : 0;
        vsock_decoder_reset(s->dec);
        if (fr < 0) {
                log_warn("session %llu: protocol error on message type %u: %s", (unsigned long long) s->id, type,
                         strerror(-fr));
                session_mark_dead(s, fr);
                return false;
        }
        return true;
}

/* A big WriteFile goes to disk as it arrives instead of being buffered
 * whole (wfstream.c): taken over at its header, if the header is here in
 * one piece (it nearly always is; otherwise the request is buffered, which
 * serves it all the same). Returns true when the header was taken. */
static bool stream_request(struct session *s, const uint8_t *hdr) {
        uint32_t len = (uint32_t) hdr[1] << 24 | (uint32_t) hdr[2] << 16 | (uint32_t) hdr[3] << 8 | hdr[4];
        if (hdr[0] != VSOCK_MSG_WRITE_FILE || len < SESSION_STREAM_MIN || len > SESSION_MAX_PAYLOAD)
                return false;
        if (wfstream_start(s, len) < 0)
                session_close(s); /* the caller's loop ends on it */
        return true;
}

/* Feed host bytes to the decoder or the raw consumer until they are used
 * up, input is paused, or the session left the states that read. Bytes
 * left over are kept in s->in. */
static void session_process(struct session *s, const uint8_t *data, size_t len) {
        while (len > 0 && !s->in_paused && !s->dead &&
               (s->state == SESSION_REQUEST || s->state == SESSION_ACTIVE)) {
                if (s->raw) {
                        size_t used = s->ops && s->ops->raw ? s->ops->raw(s->op, data, len) : len;
                        if (used > len)
                                used = len;
                        data += used;
                        len -= used;
                        if (used == 0 && !s->in_paused)
                                break; /* op took nothing and did not pause: keep the rest */
                        continue;
                }
                if (s->state == SESSION_REQUEST && len >= VSOCK_FRAME_HEADER_SIZE && !vsock_decoder_partial(s->dec) &&
                    stream_request(s, data)) {
                        data += VSOCK_FRAME_HEADER_SIZE;
                        len -= VSOCK_FRAME_HEADER_SIZE;
                        continue;
                }
                size_t used = 0;
                int r = vsock_decoder_feed(s->dec, data, len, &used);
                data += used;
                len -= used;
                if (r < 0) {
                        log_warn("session %llu: frame too large, closing", (unsigned long long) s->id);
                        if (s->state == SESSION_REQUEST)
                                session_close(s);
                        else
                                session_mark_dead(s, -EMSGSIZE);
                        return;
                }
                if (r == 0)
                        continue;
                if (!session_frame_ready(s))
                        return;
        }
        if (len > 0 && !s->dead && (s->state == SESSION_REQUEST || s->state == SESSION_ACTIVE)) {
                if (buf_append(&s->in, data, len) < 0)
                        session_mark_dead(s, -ENOMEM);
                return;
        }
        if (s->in_eof && !s->eof_delivered && buf_empty(&s->in) && !s->in_paused) {
                s->eof_delivered = true;
                if (s->state == SESSION_REQUEST) {
                        if (vsock_decoder_partial(s->dec))
                                log_warn("session %llu: truncated request", (unsigned long long) s->id);
                        session_close(s);
                } else if (s->state == SESSION_ACTIVE && s->ops && s->ops->input_eof)
                        s->ops->input_eof(s->op);
        }
}

/* Where to read a large payload's remaining bytes directly (one copy
 * fewer than through read_buf): only when a whole chunk or more is
 * missing, so small frames still arrive many to a read. */
static uint8_t *direct_tail(struct session *s, size_t *ret_room) {
        if (s->raw || !s->dec || !buf_empty(&s->in) ||
            (s->state != SESSION_REQUEST && s->state != SESSION_ACTIVE))
                return NULL;
        uint8_t *t = vsock_decoder_payload_tail(s->dec, ret_room);
        return t && *ret_room >= AGENT_READ_CHUNK ? t : NULL;
}

static void session_read(struct session *s) {
        size_t room = 0;
        uint8_t *tail = direct_tail(s, &room);
        ssize_t n = tail ? io_read_once(s->fd, tail, room) : io_read_once(s->fd, read_buf, sizeof read_buf);
        if (n == -EAGAIN)
                return;
        if (n < 0) {
                session_mark_dead(s, (int) n);
                return;
        }
        if (s->state == SESSION_LINGER) {
                if (n == 0)
                        session_close(s);
                return; /* late input after the result is discarded */
        }
        if (n == 0)
                s->in_eof = true;
        if (tail && n > 0) {
                /* At most the room was read: nothing of a next frame. */
                if (vsock_decoder_payload_commit(s->dec, (size_t) n) == 1)
                        (void) session_frame_ready(s);
        } else if (!buf_empty(&s->in)) {
                if (buf_append(&s->in, read_buf, (size_t) n) < 0) {
                        session_mark_dead(s, -ENOMEM);
                        return;
                }
                struct buf old = s->in;
                s->in = BUF_INIT(0);
                session_process(s, buf_head(&old), buf_size(&old));
                buf_wipe_free(&old);
        } else
                session_process(s, read_buf, (size_t) n);
        session_update_events(s);
}

static void on_conn(struct watcher *w, uint32_t revents) {
        struct session *s = container_of(w, struct session, w);
        bool was_blocked = s->out_blocked;
        if (revents & EPOLLOUT)
                session_flush(s);
        if (s->state == SESSION_CLOSED)
                return;
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                if ((revents & EPOLLIN) || (revents & EPOLLHUP)) {
                        if (!s->in_eof && !s->in_paused)
                                session_read(s);
                }
                if (s->state == SESSION_CLOSED || s->dead)
                        return;
                if (revents & EPOLLERR) {
                        int err = 0;
                        socklen_t sl = sizeof err;
                        (void) getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &sl);
                        session_mark_dead(s, -(err ? err : EPIPE));
                        return;
                }
                if ((revents & EPOLLHUP) && s->in_paused && !s->out_blocked) {
                        /* With our write side shut, a hang-up may only be
                         * the host's EOF, still behind the unread input:
                         * stop watching until the input resumes. Otherwise
                         * the host is gone. */
                        if (s->shut_wr_done) {
                                s->hup_ignored = true;
                                session_update_events(s);
                        } else
                                session_mark_dead(s, -EPIPE);
                        return;
                }
                if ((revents & EPOLLHUP) && s->out_blocked) {
                        /* Hung up with output pending: it cannot be sent.
                         * (Without pending output the interest mask drops
                         * to input only, and a read sees the EOF.) */
                        session_mark_dead(s, -EPIPE);
                        return;
                }
        }
        if (s->dead)
                return;
        /* Tell the op when the queue fell below the low mark, or emptied
         * after having been blocked (port forwarding waits for that). */
        bool low = s->out_high && buf_size(&s->out) < AGENT_QUEUE_LOW;
        bool emptied = was_blocked && buf_empty(&s->out);
        if (low || emptied) {
                s->out_high = false;
                if (s->state == SESSION_ACTIVE && s->ops && s->ops->drained)
                        s->ops->drained(s->op);
        }
}

int session_new(struct agent *a, int fd, const struct vsock_peer *peer, struct session **ret) {
        struct session *s = calloc(1, sizeof *s);
        if (!s) {
                safe_close(fd);
                return -ENOMEM;
        }
        s->agent = a;
        s->fd = fd;
        s->id = ++a->next_session_id;
        s->out = BUF_INIT(0);
        s->in = BUF_INIT(0);
        int r = vsock_decoder_new(SESSION_MAX_PAYLOAD, &s->dec);
        if (r < 0) {
                safe_close(fd);
                free(s);
                return r;
        }
        watcher_init(&s->w, a->loop, fd, on_conn);
        timer_init(&s->timer, a->loop, on_timer);
        s->next = a->sessions;
        if (a->sessions)
                a->sessions->prev = s;
        a->sessions = s;
        a->n_sessions++;
        r = timer_arm_in_ms(&s->timer, a->idle_timeout_ms);
        if (r >= 0)
                r = watcher_set(&s->w, EPOLLIN);
        if (r < 0) {
                session_free(s);
                return r;
        }
        if (peer)
                log_debug("session %llu: accepted (cid %u uid %d pid %d)", (unsigned long long) s->id, peer->cid,
                          peer->has_cred ? (int) peer->uid : -1, peer->has_cred ? (int) peer->pid : -1);
        *ret = s;
        return 0;
}

void session_shutdown_all(struct agent *a) {
        for (struct session *s = a->sessions; s; s = s->next) {
                switch (s->state) {
                case SESSION_REQUEST:
                case SESSION_LINGER:
                        session_close(s);
                        break;
                case SESSION_ACTIVE:
                        if (s->ops && s->ops->shutdown)
                                s->ops->shutdown(s->op);
                        break;
                case SESSION_FLUSH:
                case SESSION_CLOSED:
                        break;
                }
        }
}

void session_destroy_all(struct agent *a) {
        while (a->sessions)
                session_free(a->sessions);
}
