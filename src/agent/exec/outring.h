/* The output ring of a detached process (PROTOCOL.md 2.7): its stdout and
 * stderr as one sequence of bytes, each tagged with its stream and
 * numbered by a global offset from the first byte the process wrote (0).
 * The ring keeps the newest @capacity bytes; older ones are dropped and
 * show up to readers as a gap. Readers are positions, not objects: any
 * number of attached hosts each ask "what is at offset X" and get a run of
 * contiguous bytes of one stream, a gap, or nothing yet.
 *
 * Memory: one byte per byte kept plus one bit for its stream, allocated
 * as output arrives (doubling, up to what @capacity needs), so a quiet
 * process costs little. outring_footprint() is the most a ring can ever
 * hold: what a caller reserves against a global cap (ring_total_max).
 *
 * Pure memory, no fds, no locks: the agent's loop owns its rings. */
#pragma once

#include <stddef.h>
#include <stdint.h>

enum {
        OUTRING_STDOUT = 1,
        OUTRING_STDERR = 2,
};

/* Largest ring: offsets into the allocation stay well within size_t. */
#define OUTRING_CAPACITY_MAX ((size_t) 1 << 30)

struct outring;

enum outring_kind {
        OUTRING_NONE, /* nothing at this offset yet (offset == end) */
        OUTRING_DATA, /* data[0..len) are the bytes at offset.. of stream */
        OUTRING_GAP,  /* bytes [offset, to) were dropped; to is the ring's start */
};

struct outring_chunk {
        enum outring_kind kind;
        uint8_t stream;      /* DATA: OUTRING_STDOUT or OUTRING_STDERR */
        uint64_t offset;     /* the offset asked for */
        uint64_t to;         /* GAP: where the retained bytes begin */
        const uint8_t *data; /* DATA: inside the ring, valid until the next append */
        size_t len;          /* DATA: >= 1 */
};

/* The most memory (bytes) a ring of @capacity ever allocates, the ring
 * object included. 0 when @capacity is out of range. */
size_t outring_footprint(size_t capacity);

/* A new, empty ring keeping at most @capacity (1..OUTRING_CAPACITY_MAX)
 * bytes. Nothing but the object is allocated yet. -EINVAL, -ENOMEM. */
int outring_new(size_t capacity, struct outring **ret);

/* Free @r and its memory. NULL is fine. */
void outring_free(struct outring *r);

/* Append @n bytes of @stream. When the ring is full the oldest bytes are
 * dropped (the ring's start moves); a write larger than the capacity keeps
 * only its last @capacity bytes, though every byte counts for the offsets.
 * Returns 0, -EINVAL (bad stream) or -ENOMEM (growing failed: nothing was
 * appended and the ring is as before). */
int outring_append(struct outring *r, uint8_t stream, const void *data, size_t n);

/* What is at @offset, at most @max (>= 1) bytes of it: a run of one stream
 * that does not cross the end of the allocation (ask again at offset +
 * len for the rest), a gap when @offset is older than the ring's start,
 * or nothing when @offset is the end. Returns 0 (with *ret set), -ERANGE
 * when @offset lies beyond the end, -EINVAL for @max == 0. */
int outring_read(const struct outring *r, uint64_t offset, size_t max, struct outring_chunk *ret);

/* The oldest retained offset (ProcInfo ring_start). */
uint64_t outring_start(const struct outring *r);
/* The next offset to be written (ProcInfo out_end). */
uint64_t outring_end(const struct outring *r);
size_t outring_capacity(const struct outring *r);
/* Bytes allocated now, the ring object included (<= outring_footprint()). */
size_t outring_mem(const struct outring *r);
