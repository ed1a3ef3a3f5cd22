/* One virtio-vsock stream between a guest socket and a host unix socket.
 *
 * States: CONNECTING (host-initiated, REQUEST sent) -> ESTABLISHED ->
 * CLOSING (host socket closed, RST owed) -> freed. Half-closes follow the
 * Linux transport: a guest SHUTDOWN(SEND) becomes shutdown(SHUT_WR) once
 * its data is written, SHUTDOWN(RCV) becomes shutdown(SHUT_RD); EOF from
 * the host becomes SHUTDOWN(SEND), plus RCV when the host closed both
 * ways. Whoever holds both of the other side's shutdowns sends the RST.
 *
 * Flow control is the credit window both ways (credit.h): we read from the
 * host socket only while the guest has room, so a slow guest backs up into
 * the host socket; the guest may have at most buf_alloc bytes queued with
 * us, and sending more is a reset. Per-connection memory is bounded by
 * buf_alloc. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "common/io.h"
#include "common/log.h"
#include "common/macro.h"
#include "vhost/device-internal.h"
#include "vhost/hybrid.h"

static void on_io(struct watcher *w, uint32_t revents);
static void on_timer(struct timer *t);
static void conn_free_deferred(struct defer *d);

int vconn_new(struct vsockdev *d, int fd, uint32_t local, uint32_t peer, bool host_initiated, struct vconn **ret) {
        struct vconn *c = calloc(1, sizeof *c);
        if (!c) {
                safe_close(fd);
                return -ENOMEM;
        }
        c->dev = d;
        defer_init(&c->free_later, d->loop, conn_free_deferred);
        c->local_port = local;
        c->peer_port = peer;
        c->cr.buf_alloc = d->cfg.buf_alloc;
        c->out = BUF_INIT(d->cfg.buf_alloc);
        watcher_init(&c->w, d->loop, fd, on_io);
        timer_init(&c->timer, d->loop, on_timer);
        if (host_initiated) {
                c->state = VCONN_CONNECTING;
                c->pending = PEND_REQUEST;
                if (timer_arm_in_ms(&c->timer, d->cfg.connect_timeout_ms) < 0) {
                        safe_close(fd);
                        free(c);
                        return -ENOMEM;
                }
        } else {
                c->state = VCONN_ESTABLISHED;
                c->pending = PEND_RESPONSE;
        }
        *ret = c;
        return 0;
}

static void conn_free_deferred(struct defer *d) { free(container_of(d, struct vconn, free_later)); }

/* Unlink and close now, free after the dispatch pass (an event for it may
 * still be in the current batch, and callers up the stack check ->dead). */
static void conn_free(struct vconn *c) {
        if (c->dead)
                return;
        c->dead = true;
        dev_unlink(c->dev, c);
        int fd = c->w.fd;
        watcher_stop(&c->w);
        safe_close(fd);
        timer_disarm(&c->timer);
        buf_free(&c->out);
        if (c->dev->freeing)
                free(c);
        else
                loop_defer(&c->free_later);
}

void vconn_drop(struct vconn *c) { conn_free(c); }

static void close_host(struct vconn *c) {
        int fd = c->w.fd;
        watcher_stop(&c->w);
        safe_close(fd);
}

void vconn_reset(struct vconn *c, const char *why) {
        if (c->dead || c->state == VCONN_CLOSING)
                return;
        if (why)
                log_warn("vsock %u:%u: reset: %s", c->local_port, c->peer_port, why);
        else
                log_debug("vsock %u:%u: closed", c->local_port, c->peer_port);
        close_host(c);
        c->state = VCONN_CLOSING;
        c->pending = PEND_RST;
        c->readable = false;
        buf_free(&c->out);
        /* A guest that never posts rx buffers must not keep us forever. */
        if (timer_arm_in_ms(&c->timer, c->dev->cfg.close_timeout_ms) < 0) {
                conn_free(c);
                return;
        }
        dev_want_rx(c->dev, c);
}

static bool can_read(const struct vconn *c) {
        return c->state == VCONN_ESTABLISHED && !c->host_eof && !c->peer_shut_rcv && c->w.fd >= 0 &&
               credit_peer_free(&c->cr) > 0;
}

bool vconn_wants_rx(const struct vconn *c) { return !c->dead && (c->pending || (c->readable && can_read(c))); }

/* Interest follows state: read only with credit and no read pending, write
 * only with bytes queued. Then claim an rx turn if there is something to say. */
static void conn_update(struct vconn *c) {
        if (c->dead)
                return;
        if (c->w.fd >= 0) {
                uint32_t ev = 0;
                if (!c->readable && can_read(c))
                        ev |= EPOLLIN;
                if (!buf_empty(&c->out))
                        ev |= EPOLLOUT;
                int r = watcher_set(&c->w, ev);
                if (r < 0) {
                        vconn_reset(c, "cannot watch the host socket");
                        return;
                }
        }
        if (vconn_wants_rx(c))
                dev_want_rx(c->dev, c);
}

/* After the guest shut a direction, or the queue drained: pass the
 * shutdown on once everything before it is written. */
static void check_shutdown(struct vconn *c) {
        if (!c->peer_shut_send || !buf_empty(&c->out) || c->dead || c->state == VCONN_CLOSING)
                return;
        if (c->peer_shut_rcv) {
                /* Both ways shut by the guest: we answer with the RST. */
                vconn_reset(c, NULL);
                return;
        }
        if (!c->wr_shut) {
                (void) shutdown(c->w.fd, SHUT_WR);
                c->wr_shut = true;
        }
}

static void note_forwarded(struct vconn *c, size_t n) {
        c->cr.fwd_cnt += (uint32_t) n;
        if (credit_update_due(&c->cr))
                c->pending |= PEND_CREDIT_UPDATE;
}

/* Write what is queued for the host. False if the connection was reset. */
static bool flush_out(struct vconn *c) {
        while (!buf_empty(&c->out)) {
                struct iovec iov = { .iov_base = buf_head(&c->out), .iov_len = buf_size(&c->out) };
                ssize_t n = io_writev_once(c->w.fd, &iov, 1);
                if (n == -EAGAIN)
                        return true;
                if (n < 0) {
                        vconn_reset(c, NULL);
                        return false;
                }
                buf_consume(&c->out, (size_t) n);
                note_forwarded(c, (size_t) n);
        }
        /* Idle connections keep no buffer. */
        buf_free(&c->out);
        check_shutdown(c);
        return !c->dead && c->state != VCONN_CLOSING;
}

static void on_io(struct watcher *w, uint32_t revents) {
        struct vconn *c = container_of(w, struct vconn, w);
        if (!buf_empty(&c->out) && (revents & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && !flush_out(c))
                return;
        if ((w->events & EPOLLIN) && (revents & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                c->readable = true;
        conn_update(c);
}

static void on_timer(struct timer *t) {
        struct vconn *c = container_of(t, struct vconn, timer);
        switch (c->state) {
        case VCONN_CONNECTING:
                vconn_reset(c, "the guest did not answer the connection request in time");
                break;
        case VCONN_ESTABLISHED:
                vconn_reset(c, "the guest did not finish closing in time");
                break;
        case VCONN_CLOSING:
                /* The RST could not be delivered (no rx buffers): give up. */
                conn_free(c);
                break;
        }
}

/* Guest bytes for the host: straight from guest memory when nothing is
 * queued, the rest copied into the queue (within the credit we gave). */
static void forward(struct vconn *c, const struct iovec *payload, unsigned n, uint32_t len) {
        c->cr.rx_cnt += len;
        size_t done = 0;
        if (len == 0)
                return;
        if (buf_empty(&c->out)) {
                ssize_t w = io_writev_once(c->w.fd, payload, (int) n);
                if (w < 0 && w != -EAGAIN) {
                        vconn_reset(c, NULL);
                        return;
                }
                done = w > 0 ? (size_t) w : 0;
                note_forwarded(c, done);
        }
        if (done < len) {
                uint8_t *tail;
                if (buf_reserve(&c->out, len - done, &tail) < 0) {
                        vconn_reset(c, "out of memory for queued data");
                        return;
                }
                buf_commit(&c->out, iov_gather(payload, n, done, tail, len - done));
        }
}

static void established(struct vconn *c) {
        c->state = VCONN_ESTABLISHED;
        timer_disarm(&c->timer);
        /* The acknowledgement goes straight out: nothing was ever written to
         * this socket, so a dozen bytes fit (Firecracker does the same). */
        char ok[HYBRID_LINE_MAX];
        int n = hybrid_format_ok(c->local_port, ok, sizeof ok);
        struct iovec iov = { .iov_base = ok, .iov_len = (size_t) n };
        if (io_writev_once(c->w.fd, &iov, 1) != n)
                vconn_reset(c, NULL);
}

void vconn_packet(struct vconn *c, const struct vsock_hdr *h, const struct iovec *payload, unsigned n_payload) {
        if (c->dead || c->state == VCONN_CLOSING)
                return;
        credit_peer_update(&c->cr, h->buf_alloc, h->fwd_cnt);
        switch (h->op) {
        case VSOCK_OP_REQUEST:
                vconn_reset(c, "connection request for a connection that exists");
                return;
        case VSOCK_OP_RESPONSE:
                if (c->state != VCONN_CONNECTING) {
                        vconn_reset(c, "unexpected connection response");
                        return;
                }
                established(c);
                break;
        case VSOCK_OP_RST:
                /* For a CONNECTING one: nothing listens on that guest port,
                 * and the host sees its connection closed, as documented. */
                log_debug("vsock %u:%u: reset by the guest", c->local_port, c->peer_port);
                conn_free(c);
                return;
        case VSOCK_OP_SHUTDOWN:
                if (c->state != VCONN_ESTABLISHED) {
                        vconn_reset(c, "shutdown before the connection was established");
                        return;
                }
                if ((h->flags & VSOCK_SHUTDOWN_RCV) && !c->peer_shut_rcv) {
                        c->peer_shut_rcv = true;
                        /* The host's further writes then fail with EPIPE. */
                        (void) shutdown(c->w.fd, SHUT_RD);
                }
                if (h->flags & VSOCK_SHUTDOWN_SEND)
                        c->peer_shut_send = true;
                check_shutdown(c);
                break;
        case VSOCK_OP_RW:
                if (c->state != VCONN_ESTABLISHED) {
                        vconn_reset(c, "data before the connection was established");
                        return;
                }
                if (c->peer_shut_send) {
                        vconn_reset(c, "data after the guest shut down sending");
                        return;
                }
                if (!credit_rx_fits(&c->cr, h->len)) {
                        vconn_reset(c, "the guest sent more than its credit");
                        return;
                }
                forward(c, payload, n_payload, h->len);
                break;
        case VSOCK_OP_CREDIT_UPDATE:
                break;
        case VSOCK_OP_CREDIT_REQUEST:
                c->pending |= PEND_CREDIT_UPDATE;
                break;
        default:
                vconn_reset(c, "unknown operation");
                return;
        }
        conn_update(c);
}

/* A control packet into @ch. */
static uint32_t put_control(struct vconn *c, const struct vq_chain *ch, uint16_t op, uint32_t flags) {
        struct vsock_hdr h;
        dev_header(c->dev, c, op, &h);
        h.flags = flags;
        uint8_t b[VSOCK_HDR_SIZE];
        vsock_hdr_encode(&h, b);
        iov_scatter(ch->in, ch->n_in, 0, b, sizeof b);
        return VSOCK_HDR_SIZE;
}

static uint32_t send_pending(struct vconn *c, const struct vq_chain *ch) {
        static const struct {
                unsigned bit;
                uint16_t op;
        } order[] = {
                { PEND_RST, VSOCK_OP_RST },
                { PEND_REQUEST, VSOCK_OP_REQUEST },
                { PEND_RESPONSE, VSOCK_OP_RESPONSE },
                { PEND_SHUTDOWN, VSOCK_OP_SHUTDOWN },
                { PEND_CREDIT_UPDATE, VSOCK_OP_CREDIT_UPDATE },
                { PEND_CREDIT_REQUEST, VSOCK_OP_CREDIT_REQUEST },
        };
        for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
                if (!(c->pending & order[i].bit))
                        continue;
                c->pending &= ~order[i].bit;
                uint32_t flags = order[i].op == VSOCK_OP_SHUTDOWN ? c->shut_flags : 0;
                uint32_t len = put_control(c, ch, order[i].op, flags);
                if (order[i].op == VSOCK_OP_RST)
                        conn_free(c);
                else if (flags == (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND) &&
                         timer_arm_in_ms(&c->timer, c->dev->cfg.close_timeout_ms) < 0)
                        vconn_reset(c, "out of memory");
                return len;
        }
        return 0;
}

/* The host closed its end both ways (not just shut its write side)? */
static bool host_hung_up(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        return poll(&p, 1, 0) == 1 && (p.revents & POLLHUP);
}

uint32_t vconn_fill_rx(struct vconn *c, const struct vq_chain *ch) {
        if (c->dead)
                return 0;
        if (c->pending)
                return send_pending(c, ch);
        if (!c->readable || !can_read(c))
                return 0;
        uint64_t room = ch->in_len - VSOCK_HDR_SIZE;
        uint32_t want = credit_peer_free(&c->cr);
        if (want > VSOCK_MAX_PKT_PAYLOAD)
                want = VSOCK_MAX_PKT_PAYLOAD;
        if (want > room)
                want = (uint32_t) room;
        struct iovec iov[VQ_MAX_SEGS];
        unsigned n = iov_slice(ch->in, ch->n_in, VSOCK_HDR_SIZE, want, iov, VQ_MAX_SEGS);
        ssize_t k = n > 0 ? io_readv_once(c->w.fd, iov, (int) n) : -EAGAIN;
        if (k == -EAGAIN) {
                c->readable = false;
                conn_update(c);
                return 0;
        }
        if (k < 0) {
                vconn_reset(c, NULL);
                return 0;
        }
        if (k == 0) {
                c->host_eof = true;
                c->readable = false;
                c->shut_flags = VSOCK_SHUTDOWN_SEND | (host_hung_up(c->w.fd) ? VSOCK_SHUTDOWN_RCV : 0);
                c->pending |= PEND_SHUTDOWN;
                return send_pending(c, ch);
        }
        struct vsock_hdr h;
        dev_header(c->dev, c, VSOCK_OP_RW, &h);
        h.len = (uint32_t) k;
        uint8_t b[VSOCK_HDR_SIZE];
        vsock_hdr_encode(&h, b);
        iov_scatter(ch->in, ch->n_in, 0, b, sizeof b);
        c->cr.tx_cnt += (uint32_t) k;
        return VSOCK_HDR_SIZE + (uint32_t) k;
}
