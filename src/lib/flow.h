/* Credit accounting of a Data stream (PROTOCOL.md 2.3), both sides, pure:
 * no I/O, no allocation. The agent (fileget.c, fileput.c, tarop.c) and the
 * client (client_xfer.c) keep one of these per stream, so the rules
 * (never send past credit, no payload above data_max, over-sending is a
 * protocol error, windows bounded) live in one place.
 *
 * Sender: flow_send_room() says how many bytes the next Data frame may
 * carry, flow_send_sent() records it, flow_send_credit() adds a Credit the
 * receiver granted. Receiver: flow_recv_data() checks an arriving Data
 * frame, flow_recv_consumed() says when the bytes are out of its hands and
 * returns the Credit to send (0: not yet; credit goes back in half-window
 * steps, so a window needs two Credit frames, not one per Data). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct flow_send {
        uint64_t credit;        /* bytes the receiver still accepts */
        uint64_t credit_max;    /* more than this outstanding is a protocol error */
        uint32_t data_max;      /* largest Data payload */
        uint64_t sent;          /* payload bytes sent */
        bool ended;             /* the empty Data frame went out */
};

/* @window: the initial credit; @credit_max: how much credit may be
 * outstanding at once (>= @window); @data_max > 0. -EINVAL otherwise. */
int flow_send_init(struct flow_send *f, uint32_t window, uint64_t credit_max, uint32_t data_max);
/* A Credit of @n: -EPROTO for n = 0, after the end, or past credit_max. */
int flow_send_credit(struct flow_send *f, uint32_t n);
/* Bytes the next Data frame may carry (0: wait for credit). */
size_t flow_send_room(const struct flow_send *f);
/* @n bytes went out in one Data frame (0: the end). -EINVAL past room. */
int flow_send_sent(struct flow_send *f, size_t n);

struct flow_recv {
        uint32_t window;        /* most bytes outstanding at once */
        uint32_t data_max;
        uint64_t outstanding;   /* granted, not yet received */
        uint64_t unacked;       /* consumed, not yet granted back */
        uint64_t received;      /* payload bytes received */
        bool ended;             /* the empty Data frame came */
};

/* @window: the initial credit the receiver announced, > 0. */
int flow_recv_init(struct flow_recv *f, uint32_t window, uint32_t data_max);
/* A Data frame of @n bytes arrived. -EPROTO: after the end, above
 * data_max, or past the credit. n = 0 ends the stream. */
int flow_recv_data(struct flow_recv *f, size_t n);
/* @n received bytes left the receiver's memory: returns the Credit to
 * send now (0: none yet). Never more than what was received. */
uint32_t flow_recv_consumed(struct flow_recv *f, size_t n);
