/* Shared by device.c (the rings, the connection table, whose turn it is to
 * use an rx buffer) and conn.c (one connection's state machine). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "vhost/credit.h"
#include "vhost/device.h"
#include "vhost/dlist.h"
#include "vhost/pkt.h"

/* ---- one connection ------------------------------------------------------ */

enum vconn_state {
        VCONN_CONNECTING,       /* host-initiated: waiting for the guest's RESPONSE */
        VCONN_ESTABLISHED,
        VCONN_CLOSING,          /* host side closed; an RST is owed to the guest */
};

/* Control packets owed to the guest, sent in this order of priority. */
enum {
        PEND_RST = 1u << 0,
        PEND_REQUEST = 1u << 1,
        PEND_RESPONSE = 1u << 2,
        PEND_SHUTDOWN = 1u << 3,
        PEND_CREDIT_UPDATE = 1u << 4,
        PEND_CREDIT_REQUEST = 1u << 5,
};

struct vconn {
        struct vsockdev *dev;
        struct watcher w;               /* the host socket */
        struct timer timer;             /* connect, close or RST delivery bound */
        struct defer free_later;        /* the free after the dispatch pass */
        uint32_t local_port;            /* the host side's vsock port */
        uint32_t peer_port;             /* the guest's */
        enum vconn_state state;
        unsigned pending;               /* PEND_* */
        uint32_t shut_flags;            /* of the owed SHUTDOWN */
        bool readable;                  /* the host socket may have data for the guest */
        bool host_eof;                  /* the host will send nothing more */
        bool wr_shut;                   /* we shut the host socket's write side */
        bool peer_shut_send;            /* the guest will send nothing more */
        bool peer_shut_rcv;             /* the guest will receive nothing more */
        bool dead;                      /* unlinked; freed after this pass */
        struct credit cr;
        struct buf out;                 /* guest bytes the host socket did not take yet */
        struct dlist rx_link;           /* on the device's rx turn list */
        struct vconn *hnext;            /* hash chain */
};

/* A connection for host socket @fd (consumed, even on failure), not yet
 * in the table. Host-initiated ones start CONNECTING with a REQUEST owed;
 * guest-initiated ones start ESTABLISHED with a RESPONSE owed. */
int vconn_new(struct vsockdev *d, int fd, uint32_t local, uint32_t peer, bool host_initiated, struct vconn **ret);
/* A packet from the guest for this connection (already judged by
 * vsock_pkt_check); @payload holds h->len bytes in guest memory. */
void vconn_packet(struct vconn *c, const struct vsock_hdr *h, const struct iovec *payload, unsigned n_payload);
/* Write this connection's next packet into rx buffer @ch (at least a
 * header's worth of writable bytes). Returns the bytes written, or 0 when
 * it had nothing to send after all (its turn is then over). */
uint32_t vconn_fill_rx(struct vconn *c, const struct vq_chain *ch);
/* Whether it wants a turn at an rx buffer. */
bool vconn_wants_rx(const struct vconn *c);
/* Reset: RST owed to the guest, host socket closed now. */
void vconn_reset(struct vconn *c, const char *why);
/* Close and free without a word to the guest (the device is going away,
 * or the guest reset it). */
void vconn_drop(struct vconn *c);

/* ---- the device ---------------------------------------------------------- */

#define VSOCKDEV_HASH 1024
#define VSOCKDEV_RST_SLOTS 256

struct rst_slot {
        uint32_t local, peer;
};

struct vsockdev {
        struct loop *loop;
        struct vsockdev_config cfg;
        const struct guestmem *mem;
        struct vring *rx, *tx;
        struct vconn *hash[VSOCKDEV_HASH];
        unsigned n_conns;
        struct dlist rxq;               /* connections waiting for an rx turn */
        /* Resets for packets that belong to no connection. */
        struct rst_slot rst[VSOCKDEV_RST_SLOTS];
        unsigned rst_head, rst_len;
        uint32_t last_port;             /* last host-side port handed out */
        bool broken_logged;
        bool was_running;               /* for logging the driver's comings and goings */
        struct defer flush;             /* a pump and notify after the pass */
        bool freeing;                   /* vsockdev_free: no more deferring */
        struct timer tx_more;           /* tx work left over from a full budget */
};

/* Services of device.c for conn.c. */
void dev_want_rx(struct vsockdev *d, struct vconn *c);
void dev_unlink(struct vsockdev *d, struct vconn *c);
void dev_header(const struct vsockdev *d, struct vconn *c, uint16_t op, struct vsock_hdr *h);
