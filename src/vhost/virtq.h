/* The device side of a split virtqueue in guest memory. The guest owns
 * the memory and may rewrite it at any moment, so every value is read
 * once into our own variables and checked there: indices against the
 * queue size, descriptor chains against loops and their length, buffers
 * against the memory table. What a guest gets wrong costs it that chain
 * (-EBADMSG) or, if the ring itself makes no sense, the queue (broken
 * until the front-end resets it): never our memory. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vhost/guestmem.h"

/* Buffer pieces one chain may have (descriptors, and regions they span).
 * The Linux driver uses two; a longer chain is refused. */
#define VQ_MAX_SEGS 64

struct virtq {
        uint16_t num;                   /* entries; 0 until configured */
        bool addr_set;
        uint64_t desc_uva, avail_uva, used_uva;
        /* Our view of the three parts; NULL until virtq_map() succeeds. */
        uint8_t *desc, *avail, *used;
        uint16_t last_avail;            /* next available entry to take */
        uint16_t used_idx;              /* next used entry to fill */
        bool indirect;                  /* VIRTIO_RING_F_INDIRECT_DESC agreed */
        bool broken;
        const char *why;                /* what broke it, for the log */
};

/* One buffer: what the device reads (out) and then writes (in). */
struct vq_chain {
        uint16_t head;
        unsigned n_out, n_in;
        uint64_t out_len, in_len;
        struct iovec out[VQ_MAX_SEGS];
        struct iovec in[VQ_MAX_SEGS];
};

/* Forget everything (size, addresses, indices, broken state). */
void virtq_reset(struct virtq *vq);
/* A power of two in [1, 32768], else -EINVAL. */
int virtq_set_num(struct virtq *vq, uint32_t num);
/* Front-end virtual addresses of the three parts (mapped by virtq_map). */
void virtq_set_addr(struct virtq *vq, uint64_t desc, uint64_t avail, uint64_t used);
/* Translate the addresses through @mem; the whole of each part must be
 * mapped and aligned as the spec requires. -EINVAL before size and
 * addresses are set, -EFAULT when they do not fit the memory table (the
 * pointers are then cleared, so the queue does nothing). */
int virtq_map(struct virtq *vq, const struct guestmem *mem);
/* Take the used index from the ring itself (when a queue is set up: the
 * front-end may hand over a queue that was used before). */
void virtq_sync_used(struct virtq *vq);
static inline bool virtq_mapped(const struct virtq *vq) { return vq->desc != 0; }

/* Take the next available chain into @c. Returns 1 with a chain, 0 when
 * there is none, -EBADMSG when the chain is invalid (it is taken, and
 * c->head is valid: give it back with virtq_push(vq, c->head, 0)), or
 * -EPROTO when the ring is inconsistent (the queue is marked broken and
 * stays so; nothing was taken). */
int virtq_pop(struct virtq *vq, const struct guestmem *mem, struct vq_chain *c);
/* Put back the chain the last successful virtq_pop() took, unused. */
void virtq_unpop(struct virtq *vq);
/* Whether a chain is available (false on a broken or unmapped queue). */
bool virtq_has_avail(struct virtq *vq);
/* Return chain @head with @len bytes written into it. */
void virtq_push(struct virtq *vq, uint16_t head, uint32_t len);
/* After pushing: whether the driver wants an interrupt now. */
bool virtq_should_notify(struct virtq *vq);
