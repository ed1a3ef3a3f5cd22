/* One growable byte buffer with a hard cap. Data lives in [off, len): bytes
 * consumed from the front only advance @off, so a send queue drains without
 * memmove on every partial write. All mutators return 0 or -errno
 * (-ENOBUFS when the cap would be exceeded; nothing is allocated then). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
        uint8_t *data;
        size_t off;  /* first unconsumed byte */
        size_t len;  /* end of data */
        size_t cap;  /* allocated */
        size_t max;  /* hard cap on len - off + reserve; 0 = SIZE_MAX */
};

#define BUF_INIT(m) ((struct buf) { .max = (m) })

static inline size_t buf_size(const struct buf *b) { return b->len - b->off; }
static inline uint8_t *buf_head(const struct buf *b) { return b->data + b->off; }
static inline bool buf_empty(const struct buf *b) { return b->len == b->off; }

/* Make room for @extra more bytes; returns a pointer to the free space. */
int buf_reserve(struct buf *b, size_t extra, uint8_t **ret_tail);
/* Commit @n bytes written into the space returned by buf_reserve. */
void buf_commit(struct buf *b, size_t n);
int buf_append(struct buf *b, const void *data, size_t n);
int buf_append_byte(struct buf *b, uint8_t c);
int buf_append_str(struct buf *b, const char *s);
/* Drop @n bytes from the front. */
void buf_consume(struct buf *b, size_t n);
/* Forget the contents but keep the allocation. */
void buf_reset(struct buf *b);
/* Hand the data out as a malloc'd block (NUL-terminated for convenience;
 * the NUL is not counted in *ret_len). The buffer is left empty. */
int buf_steal(struct buf *b, uint8_t **ret_data, size_t *ret_len);
/* Free the storage. Safe on a zeroed or already-freed buffer. */
void buf_free(struct buf *b);
/* Like buf_free, but wipes the whole allocation first (secrets). */
void buf_wipe_free(struct buf *b);
