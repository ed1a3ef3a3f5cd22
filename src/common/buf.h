/* One growable byte buffer with a hard cap. Data lives in [off, len):
 * bytes consumed from the front only advance @off, so a send queue drains
 * without memmove on every partial write.
 *
 * The fields are private to buf.c: everything else goes through the
 * functions below (the deprecated attribute makes any other use a build
 * error under -Werror). Mutators return 0 or -errno: -ENOBUFS when the
 * cap would be exceeded (nothing is allocated then), -ENOMEM, and -EINVAL
 * for misuse (consuming or truncating past the contents, committing more
 * than was reserved), which leaves the buffer as it was. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct budget;

#ifdef BUF_IMPLEMENTATION
#define BUF_PRIVATE_
#else
#define BUF_PRIVATE_ __attribute__((deprecated("private to buf.c: use the buf_*() functions")))
#endif

struct buf {
        uint8_t *data BUF_PRIVATE_;
        size_t off BUF_PRIVATE_;        /* first unconsumed byte */
        size_t len BUF_PRIVATE_;        /* end of data */
        size_t cap BUF_PRIVATE_;        /* allocated (plus one byte for a NUL) */
        size_t max BUF_PRIVATE_;        /* hard cap on the contents; 0 = none */
        size_t room BUF_PRIVATE_;       /* reserved and not yet committed */
        /* With a budget: the first @charged bytes of the allocation are
         * counted in it (those ever written, in 64 KiB steps: what is
         * resident). Without one, @charged is just @cap. */
        struct budget *budget BUF_PRIVATE_;
        size_t charged BUF_PRIVATE_;
        bool strict BUF_PRIVATE_;       /* refuse growth the budget refuses */
};

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

/* An empty buffer whose contents may never exceed @max bytes (0: no cap). */
static inline struct buf buf_init(size_t max) { return (struct buf) { .max = max }; }
#define BUF_INIT(m) buf_init(m)

/* Bytes held. */
static inline size_t buf_size(const struct buf *b) { return b->len - b->off; }
/* The first byte held (NULL or anything when empty: read buf_size bytes). */
static inline uint8_t *buf_head(const struct buf *b) { return b->data + b->off; }
static inline bool buf_empty(const struct buf *b) { return b->len == b->off; }
/* Bytes allocated, to decide whether a drained buffer is worth keeping. */
static inline size_t buf_capacity(const struct buf *b) { return b->cap; }
/* How many more bytes the cap allows (SIZE_MAX - size without a cap). */
static inline size_t buf_limit_left(const struct buf *b) {
        return b->max ? (b->max > buf_size(b) ? b->max - buf_size(b) : 0) : SIZE_MAX - buf_size(b);
}

#pragma GCC diagnostic pop

/* Count this buffer's memory in @budget from now on (NULL: stop
 * counting). @strict: growth the budget refuses fails with -ENOBUFS
 * (nothing allocated, contents unchanged); otherwise it is charged
 * whatever the limit. Memory already allocated is charged as it is. The
 * budget must outlive the buffer's storage. */
void buf_set_budget(struct buf *b, struct budget *budget, bool strict);
/* Take from the budget now, strictly even for a non-strict buffer, what
 * @extra more bytes will need, so that they can then be written without
 * counting again. 0, or -ENOBUFS (nothing taken, nothing changed). */
int buf_precharge(struct buf *b, size_t extra);
/* Bytes this buffer holds in its budget. */
size_t buf_charged(const struct buf *b);

/* Make room for @extra more bytes; *ret_tail (may be NULL) is where they
 * go. Then buf_commit() up to @extra of them, in one or more calls; any
 * other mutation ends the reservation. */
int buf_reserve(struct buf *b, size_t extra, uint8_t **ret_tail);
/* Commit @n bytes written into the space returned by buf_reserve.
 * -EINVAL (nothing committed) past what is still reserved. */
int buf_commit(struct buf *b, size_t n);
int buf_append(struct buf *b, const void *data, size_t n);
int buf_append_byte(struct buf *b, uint8_t c);
int buf_append_str(struct buf *b, const char *s);
/* Drop @n bytes from the front; -EINVAL (nothing dropped) if fewer are
 * held. */
int buf_consume(struct buf *b, size_t n);
/* Keep only the first @size bytes held: back to a mark taken with
 * buf_size(). -EINVAL (nothing changed) if fewer are held. */
int buf_truncate(struct buf *b, size_t size);
/* Forget the contents but keep the allocation. */
void buf_reset(struct buf *b);
/* Make @dst hold what @src holds, taking @src's storage (no copy); @dst's
 * old storage is freed and its cap and budget stay; the storage's charge
 * moves along (into @dst's budget, whatever its strictness). @src is left empty with its own
 * cap. -ENOBUFS (nothing changed) if the contents exceed @dst's cap. */
int buf_move(struct buf *dst, struct buf *src);
/* Hand the data out as a malloc'd block (NUL-terminated for convenience;
 * the NUL is not counted in *ret_len). The buffer is left empty; the
 * block is no longer counted in its budget. */
int buf_steal(struct buf *b, uint8_t **ret_data, size_t *ret_len);
/* Free the storage (and give its charge back). Safe on a zeroed or
 * already-freed buffer. */
void buf_free(struct buf *b);
/* Like buf_free, but wipes the whole allocation first (secrets). */
void buf_wipe_free(struct buf *b);
