/* Credit-based flow control of one virtio-vsock connection (virtio spec
 * 5.10.6.3). Each side advertises its receive buffer (buf_alloc) and how
 * many bytes it has passed on from it (fwd_cnt); a sender may have at most
 * buf_alloc - (tx_cnt - fwd_cnt) bytes in flight. Counters are 32-bit and
 * wrap; the arithmetic is modular. The guest's figures are untrusted: a
 * nonsensical pair means no credit for us, never a huge one, and a guest
 * that sends past the credit we gave it is caught. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct credit {
        /* Our receive side: what the guest may send us. */
        uint32_t buf_alloc;     /* our buffer, advertised in every header */
        uint32_t rx_cnt;        /* payload bytes received from the guest */
        uint32_t fwd_cnt;       /* of those, written to the host socket */
        uint32_t fwd_sent;      /* the fwd_cnt the guest last heard from us */
        /* Our send side: what the guest lets us send. */
        uint32_t peer_buf_alloc;
        uint32_t peer_fwd_cnt;
        uint32_t tx_cnt;        /* payload bytes sent to the guest */
};

/* Bytes we may send the guest now. */
static inline uint32_t credit_peer_free(const struct credit *c) {
        uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;
        return in_flight > c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

/* Take the guest's figures from a header it sent. */
static inline void credit_peer_update(struct credit *c, uint32_t buf_alloc, uint32_t fwd_cnt) {
        c->peer_buf_alloc = buf_alloc;
        c->peer_fwd_cnt = fwd_cnt;
}

/* Bytes received and not yet written to the host. */
static inline uint32_t credit_queued(const struct credit *c) { return c->rx_cnt - c->fwd_cnt; }

/* Whether @len more bytes from the guest stay within the buffer we
 * advertised; the guest must never send more. */
static inline bool credit_rx_fits(const struct credit *c, uint32_t len) {
        return (uint64_t) credit_queued(c) + len <= c->buf_alloc;
}

/* Whether the guest should hear about freed space now: once a quarter of
 * the buffer was passed on since it last did. A guest that ran out of
 * credit has buf_alloc in flight; once that is written out, at least a
 * quarter is unreported, so it is never left waiting. */
static inline bool credit_update_due(const struct credit *c) {
        return c->fwd_cnt - c->fwd_sent >= c->buf_alloc / 4 && c->fwd_cnt != c->fwd_sent;
}
