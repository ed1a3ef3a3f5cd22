/* A fake virtio driver for the vsock-vhost tests: the guest's side of
 * split virtqueues in a piece of memory, and virtio-vsock packets on
 * them. It can also write whatever a hostile guest would (raw descriptors,
 * indices). Plus what a fake front-end needs to pass descriptors.
 * Independent of cmocka: functions return values, tests assert. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vhost/pkt.h"

/* Guest memory: @base is our view of guest-physical @gpa; buffers come
 * from a bump allocator. */
struct fdrv_mem {
        uint8_t *base;
        uint64_t gpa;
        uint64_t size;
        uint64_t brk;
};

void fdrv_mem_init(struct fdrv_mem *m, void *base, uint64_t gpa, uint64_t size);
/* @size bytes aligned to @align; aborts when memory runs out (a test bug). */
uint64_t fdrv_alloc(struct fdrv_mem *m, uint64_t size, uint64_t align);
void *fdrv_ptr(const struct fdrv_mem *m, uint64_t gpa);

#define FDRV_MAX_NUM 256

struct fdrv_buf {
        uint64_t gpa;
        uint32_t len;
};

struct fdrv_q {
        struct fdrv_mem *mem;
        uint16_t num;
        uint64_t desc, avail, used;     /* guest-physical */
        uint16_t avail_idx;             /* what we published */
        uint16_t used_seen;             /* used entries consumed */
        uint16_t free_head;             /* free descriptor list */
        uint16_t n_free;
        uint16_t chain_len[FDRV_MAX_NUM];
};

/* A queue of @num (power of two, <= FDRV_MAX_NUM) in @m. */
void fdrv_q_init(struct fdrv_q *q, struct fdrv_mem *m, uint16_t num);
/* Keep descriptors [@first, num) off the free list: tests write hostile
 * descriptors there without corrupting the driver's own. */
void fdrv_q_reserve(struct fdrv_q *q, uint16_t first);
/* A chain of @n_out device-readable then @n_in device-writable buffers,
 * published at once. Returns its head, or -1 without free descriptors. */
int fdrv_add(struct fdrv_q *q, const struct fdrv_buf *bufs, unsigned n_out, unsigned n_in);
/* Hostile helpers: write descriptor @i as given, and publish @head as is. */
void fdrv_set_desc(struct fdrv_q *q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next);
void fdrv_publish(struct fdrv_q *q, uint16_t head);
/* Set the available index to any value (a garbage index). */
void fdrv_set_avail_idx(struct fdrv_q *q, uint16_t idx);
void fdrv_set_avail_flags(struct fdrv_q *q, uint16_t flags);
/* Used entries the device returned that we have not consumed. */
unsigned fdrv_used_pending(const struct fdrv_q *q);
/* Take the next used entry; its descriptors go back to the free list
 * (when @head is one fdrv_add made). */
bool fdrv_used(struct fdrv_q *q, uint32_t *ret_head, uint32_t *ret_len);

/* ---- virtio-vsock on top ---------------------------------------------------- */

#define FDRV_RX_BUF 4096

struct fdrv_vsock {
        struct fdrv_mem *mem;
        struct fdrv_q rx, tx;
        uint64_t rx_hdr[FDRV_MAX_NUM];  /* per head: header buffer */
        uint64_t rx_data[FDRV_MAX_NUM]; /* per head: data buffer */
        uint64_t cid;
};

void fdrv_vsock_init(struct fdrv_vsock *v, struct fdrv_mem *m, uint16_t num, uint64_t cid);
/* Post @n rx buffers (a 44-byte header descriptor and a FDRV_RX_BUF one,
 * as Linux does). Returns how many were posted. */
unsigned fdrv_post_rx(struct fdrv_vsock *v, unsigned n);
/* Send a packet (header and payload in one readable buffer). Returns the
 * chain's head or -1. */
int fdrv_send(struct fdrv_vsock *v, const struct vsock_hdr *h, const void *payload, uint32_t len);
/* A header from the guest (CID, host, stream type) with these fields. */
struct vsock_hdr fdrv_hdr(const struct fdrv_vsock *v, uint16_t op, uint32_t src_port, uint32_t dst_port);
/* The next packet the device put in an rx buffer: header and up to @cap
 * payload bytes (*@ret_len gets the payload length). The buffer is posted
 * again. False when there is none. */
bool fdrv_recv(struct fdrv_vsock *v, struct vsock_hdr *h, void *payload, size_t cap, uint32_t *ret_len);
/* Return the used tx buffers (the device consumed those packets). */
unsigned fdrv_reap_tx(struct fdrv_vsock *v);

/* ---- a fake front-end ----------------------------------------------------------- */

/* sendmsg @len bytes of @data with @nfds descriptors (SCM_RIGHTS) attached.
 * Returns what sendmsg returns. */
ssize_t fdrv_send_fds(int sock, const void *data, size_t len, const int *fds, unsigned nfds);
