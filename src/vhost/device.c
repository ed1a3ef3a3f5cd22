/* The device: the connection table, the tx ring (guest packets in), the rx
 * ring (packets out) and whose turn it is to fill an rx buffer.
 *
 * Rx buffers are shared by all connections, so they take turns: a FIFO of
 * connections that have something to say, each writing one packet per turn
 * (control packets first, then data read from its host socket straight into
 * the guest's buffer). Resets for packets that match no connection wait in
 * a small ring of their own. When the guest posts no buffers, everything
 * waits (bounded: flags per connection, a fixed ring, data left in the host
 * sockets) until its next rx kick. Interrupts are raised once per loop pass. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"
#include "common/macro.h"
#include "vhost/device-internal.h"
#include "vhost/hybrid.h"

/* Guest packets handled per pass before other events get a turn. */
#define TX_BUDGET 256

void vsockdev_config_default(struct vsockdev_config *cfg) {
        *cfg = (struct vsockdev_config) {
                .guest_cid = 3,
                .buf_alloc = 256 * 1024,
                .max_conns = 1024,
                .connect_timeout_ms = 10000,
                .close_timeout_ms = 10000,
        };
}

static void on_tx_more(struct timer *t);
static void on_flush(struct defer *df);

int vsockdev_new(struct loop *l, const struct vsockdev_config *cfg, struct vsockdev **ret) {
        struct vsockdev *d = calloc(1, sizeof *d);
        if (!d)
                return -ENOMEM;
        d->loop = l;
        d->cfg = *cfg;
        dlist_init(&d->rxq);
        timer_init(&d->tx_more, l, on_tx_more);
        defer_init(&d->flush, l, on_flush);
        d->last_port = HYBRID_PORT_FIRST - 1;
        *ret = d;
        return 0;
}

static void drop_all(struct vsockdev *d) {
        for (size_t i = 0; i < VSOCKDEV_HASH; i++)
                while (d->hash[i])
                        vconn_drop(d->hash[i]);
        d->rst_len = 0;
}

void vsockdev_close_all(struct vsockdev *d) {
        /* Outside the loop's dispatch: nothing may wait for a deferred free
         * that will never run. */
        d->freeing = true;
        drop_all(d);
}

void vsockdev_free(struct vsockdev *d) {
        if (!d)
                return;
        vsockdev_close_all(d);
        timer_disarm(&d->tx_more);
        defer_cancel(&d->flush);
        free(d);
}

void vsockdev_attach(struct vsockdev *d, const struct guestmem *mem, struct vring *rx, struct vring *tx) {
        d->mem = mem;
        d->rx = rx;
        d->tx = tx;
        d->broken_logged = false;
}

void vsockdev_reset(struct vsockdev *d) {
        if (d->n_conns)
                log_info("device reset: dropping %u connections", d->n_conns);
        drop_all(d);
        d->broken_logged = false;
}

void vsockdev_detach(struct vsockdev *d) {
        vsockdev_reset(d);
        d->mem = NULL;
        d->rx = d->tx = NULL;
}

bool vsockdev_running(const struct vsockdev *d) {
        return d->mem && d->rx && d->tx && vring_live(d->rx) && vring_live(d->tx);
}

uint64_t vsockdev_guest_cid(const struct vsockdev *d) { return d->cfg.guest_cid; }
unsigned vsockdev_conn_count(const struct vsockdev *d) { return d->n_conns; }

/* ---- the table ---------------------------------------------------------- */

static size_t bucket(uint32_t local, uint32_t peer) {
        uint32_t h = local * 0x9e3779b1u ^ peer * 0x85ebca6bu;
        return (h ^ (h >> 16)) % VSOCKDEV_HASH;
}

static struct vconn *lookup(struct vsockdev *d, uint32_t local, uint32_t peer) {
        for (struct vconn *c = d->hash[bucket(local, peer)]; c; c = c->hnext)
                if (c->local_port == local && c->peer_port == peer)
                        return c;
        return NULL;
}

static void insert(struct vsockdev *d, struct vconn *c) {
        size_t b = bucket(c->local_port, c->peer_port);
        c->hnext = d->hash[b];
        d->hash[b] = c;
        d->n_conns++;
}

void dev_unlink(struct vsockdev *d, struct vconn *c) {
        for (struct vconn **p = &d->hash[bucket(c->local_port, c->peer_port)]; *p; p = &(*p)->hnext)
                if (*p == c) {
                        *p = c->hnext;
                        d->n_conns--;
                        break;
                }
        dlist_remove(&c->rx_link);
}

void dev_header(const struct vsockdev *d, struct vconn *c, uint16_t op, struct vsock_hdr *h) {
        *h = (struct vsock_hdr) {
                .src_cid = VSOCK_HOST_CID,
                .dst_cid = d->cfg.guest_cid,
                .src_port = c->local_port,
                .dst_port = c->peer_port,
                .type = VSOCK_TYPE_STREAM,
                .op = op,
                .buf_alloc = c->cr.buf_alloc,
                .fwd_cnt = c->cr.fwd_cnt,
        };
        /* Every header tells the guest how much we passed on. */
        c->cr.fwd_sent = c->cr.fwd_cnt;
        c->pending &= ~(unsigned) PEND_CREDIT_UPDATE;
}

/* ---- rx: packets to the guest ---------------------------------------------- */

static void pump_rx(struct vsockdev *d);
static void process_tx(struct vsockdev *d);

/* Interrupts and rx turns, once per loop pass. */
static void on_flush(struct defer *df) {
        struct vsockdev *d = container_of(df, struct vsockdev, flush);
        pump_rx(d);
        if (d->rx)
                vring_flush_call(d->rx);
        if (d->tx)
                vring_flush_call(d->tx);
}

static void flush_soon(struct vsockdev *d) {
        loop_defer(&d->flush);
}

void dev_want_rx(struct vsockdev *d, struct vconn *c) {
        if (!dlist_linked(&c->rx_link))
                dlist_append(&d->rxq, &c->rx_link);
        flush_soon(d);
}

static void orphan_rst(struct vsockdev *d, uint32_t local, uint32_t peer) {
        if (d->rst_len == VSOCKDEV_RST_SLOTS) {
                log_debug("vsock %u:%u: reset dropped (too many pending)", local, peer);
                return;
        }
        d->rst[(d->rst_head + d->rst_len++) % VSOCKDEV_RST_SLOTS] = (struct rst_slot) { local, peer };
        flush_soon(d);
}

static uint32_t put_orphan_rst(struct vsockdev *d, const struct vq_chain *ch) {
        struct rst_slot s = d->rst[d->rst_head];
        d->rst_head = (d->rst_head + 1) % VSOCKDEV_RST_SLOTS;
        d->rst_len--;
        struct vsock_hdr h = {
                .src_cid = VSOCK_HOST_CID,
                .dst_cid = d->cfg.guest_cid,
                .src_port = s.local,
                .dst_port = s.peer,
                .type = VSOCK_TYPE_STREAM,
                .op = VSOCK_OP_RST,
        };
        uint8_t b[VSOCK_HDR_SIZE];
        vsock_hdr_encode(&h, b);
        iov_scatter(ch->in, ch->n_in, 0, b, sizeof b);
        return VSOCK_HDR_SIZE;
}

/* A ring that makes no sense: stop using it until the front-end sets it up
 * again, and drop the connections, which can no longer move. */
static void ring_broken(struct vsockdev *d, struct vring *r) {
        if (!d->broken_logged)
                log_error("guest broke the %s queue: %s; device stopped until it is reset",
                          r == d->rx ? "rx" : "tx", r->q.why ? r->q.why : "?");
        d->broken_logged = true;
        vring_signal_err(r);
        drop_all(d);
}

static struct vconn *rxq_pop(struct vsockdev *d) {
        if (dlist_empty(&d->rxq))
                return NULL;
        struct dlist *n = d->rxq.next;
        dlist_remove(n);
        return container_of(n, struct vconn, rx_link);
}

static void pump_rx(struct vsockdev *d) {
        if (!vsockdev_running(d))
                return;
        struct vring *rx = d->rx;
        struct vq_chain ch;
        while (d->rst_len > 0 || !dlist_empty(&d->rxq)) {
                int r = virtq_pop(&rx->q, d->mem, &ch);
                if (r == 0)
                        break;  /* no buffers: the next rx kick resumes */
                if (r == -EPROTO) {
                        ring_broken(d, rx);
                        return;
                }
                /* A buffer we cannot write a header into is returned unused
                 * (the guest's driver drops a zero-length packet). */
                if (r < 0 || ch.in_len < VSOCK_HDR_SIZE || ch.n_out > 0) {
                        virtq_push(&rx->q, ch.head, 0);
                        rx->call_owed = true;
                        continue;
                }
                uint32_t len;
                if (d->rst_len > 0) {
                        len = put_orphan_rst(d, &ch);
                } else {
                        struct vconn *c = rxq_pop(d);
                        len = vconn_fill_rx(c, &ch);
                        if (vconn_wants_rx(c) && !dlist_linked(&c->rx_link))
                                dlist_append(&d->rxq, &c->rx_link);
                }
                if (len == 0) {
                        virtq_unpop(&rx->q);
                        continue;
                }
                virtq_push(&rx->q, ch.head, len);
                rx->call_owed = true;
        }
}

/* ---- tx: packets from the guest ------------------------------------------- */

/* "<uds_path>_<port>", where a host process listens for guest port @port. */
static int port_path(const struct vsockdev *d, uint32_t port, struct sockaddr_un *sa) {
        *sa = (struct sockaddr_un) { .sun_family = AF_UNIX };
        int n = snprintf(sa->sun_path, sizeof sa->sun_path, "%s_%u", d->cfg.uds_path, port);
        return n < 0 || (size_t) n >= sizeof sa->sun_path ? -ENAMETOOLONG : 0;
}

static void guest_connect(struct vsockdev *d, const struct vsock_hdr *h) {
        if (d->n_conns >= d->cfg.max_conns) {
                log_warn("vsock %u:%u: refused: %u connections already", h->dst_port, h->src_port, d->n_conns);
                orphan_rst(d, h->dst_port, h->src_port);
                return;
        }
        struct sockaddr_un sa;
        int fd = -1, r = port_path(d, h->dst_port, &sa);
        if (r == 0) {
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                r = fd < 0 ? -errno : 0;
        }
        /* A listener with a full backlog answers EAGAIN: refused as well,
         * since waiting here would stall every other connection. */
        if (r == 0 && connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                r = -errno;
        if (r < 0) {
                log_debug("vsock %u:%u: guest connection to %s refused: %s", h->dst_port, h->src_port,
                          sa.sun_path, strerror(-r));
                safe_close(fd);
                orphan_rst(d, h->dst_port, h->src_port);
                return;
        }
        struct vconn *c;
        if (vconn_new(d, fd, h->dst_port, h->src_port, false, &c) < 0) {
                orphan_rst(d, h->dst_port, h->src_port);
                return;
        }
        credit_peer_update(&c->cr, h->buf_alloc, h->fwd_cnt);
        insert(d, c);
        log_debug("vsock %u:%u: guest connected to %s", c->local_port, c->peer_port, sa.sun_path);
        dev_want_rx(d, c);
}

static void handle_packet(struct vsockdev *d, const struct vq_chain *ch) {
        if (ch->out_len < VSOCK_HDR_SIZE) {
                log_debug("guest packet shorter than a header (%llu bytes): dropped",
                          (unsigned long long) ch->out_len);
                return;
        }
        uint8_t b[VSOCK_HDR_SIZE];
        struct vsock_hdr h;
        iov_gather(ch->out, ch->n_out, 0, b, sizeof b);
        vsock_hdr_decode(b, &h);
        const char *why = NULL;
        enum pkt_verdict v = vsock_pkt_check(&h, d->cfg.guest_cid, ch->out_len - VSOCK_HDR_SIZE, &why);
        struct vconn *c = lookup(d, h.dst_port, h.src_port);
        if (v == PKT_DROP) {
                log_debug("guest packet %u:%u op %u dropped: %s", h.dst_port, h.src_port, h.op, why);
                return;
        }
        if (v == PKT_RST) {
                if (c)
                        vconn_reset(c, why);
                else
                        orphan_rst(d, h.dst_port, h.src_port);
                return;
        }
        if (!c) {
                if (h.op == VSOCK_OP_REQUEST)
                        guest_connect(d, &h);
                else if (h.op != VSOCK_OP_RST)
                        orphan_rst(d, h.dst_port, h.src_port);
                return;
        }
        struct iovec payload[VQ_MAX_SEGS];
        unsigned n = iov_slice(ch->out, ch->n_out, VSOCK_HDR_SIZE, h.len, payload, VQ_MAX_SEGS);
        vconn_packet(c, &h, payload, n);
}

static void process_tx(struct vsockdev *d) {
        if (!vsockdev_running(d))
                return;
        struct vring *tx = d->tx;
        struct vq_chain ch;
        for (int i = 0; i < TX_BUDGET; i++) {
                int r = virtq_pop(&tx->q, d->mem, &ch);
                if (r == 0)
                        return;
                if (r == -EPROTO) {
                        ring_broken(d, tx);
                        return;
                }
                if (r > 0)
                        handle_packet(d, &ch);
                else
                        log_debug("guest posted an invalid tx descriptor chain (head %u): skipped", ch.head);
                virtq_push(&tx->q, ch.head, 0);
                tx->call_owed = true;
                if (!vsockdev_running(d))
                        return;
        }
        /* More than a budget's worth: the rest after the other events of
         * this pass (a timer due now; re-armed from its own callback, it
         * waits for the next pass). */
        if (timer_arm(&d->tx_more, now_ns()) < 0)
                log_warn("out of memory: tx processing resumes at the next kick");
}

static void on_tx_more(struct timer *t) {
        struct vsockdev *d = container_of(t, struct vsockdev, tx_more);
        process_tx(d);
        flush_soon(d);
}

void vsockdev_kick(struct vsockdev *d, struct vring *r) {
        bool running = vsockdev_running(d);
        if (running != d->was_running) {
                d->was_running = running;
                if (running)
                        log_info("guest driver ready (guest CID %llu)", (unsigned long long) d->cfg.guest_cid);
                else
                        log_info("guest driver stopped");
        }
        if (!running)
                return;
        if (r == d->tx)
                process_tx(d);
        flush_soon(d);
}

/* ---- host-initiated connections ------------------------------------------- */

void vsockdev_host_connect(struct vsockdev *d, int fd, uint32_t port) {
        if (!vsockdev_running(d) || d->n_conns >= d->cfg.max_conns) {
                /* Like a guest with nothing listening: the host sees EOF. */
                log_debug("host connection to guest port %u refused: %s", port,
                          vsockdev_running(d) ? "too many connections" : "the guest's driver is not running");
                safe_close(fd);
                return;
        }
        uint32_t local = d->last_port;
        do
                local = hybrid_next_port(local);
        while (lookup(d, local, port));
        d->last_port = local;
        struct vconn *c;
        if (vconn_new(d, fd, local, port, true, &c) < 0)
                return;
        insert(d, c);
        log_debug("vsock %u:%u: host connecting to guest port %u", local, port, port);
        dev_want_rx(d, c);
}
