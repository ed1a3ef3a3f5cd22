#define BUF_IMPLEMENTATION
#include "buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int buf_reserve(struct buf *b, size_t extra, uint8_t **ret_tail) {
        size_t used = b->len - b->off;
        size_t max = b->max ? b->max : SIZE_MAX;
        b->room = 0;
        if (extra > max || used > max - extra)
                return -ENOBUFS;
        if (b->cap - b->len < extra) {
                /* Reclaim consumed space first; it is cheaper than growing. */
                if (b->off > 0) {
                        memmove(b->data, b->data + b->off, used);
                        b->len = used;
                        b->off = 0;
                }
                if (b->cap - b->len < extra) {
                        size_t want = used + extra;
                        size_t ncap = b->cap ? b->cap : 256;
                        while (ncap < want)
                                ncap = ncap > SIZE_MAX / 2 ? want : ncap * 2;
                        if (ncap > max)
                                ncap = max < want ? want : max;
                        uint8_t *n = realloc(b->data, ncap + 1);
                        if (!n)
                                return -ENOMEM;
                        b->data = n;
                        b->cap = ncap;
                }
        }
        b->room = extra;
        if (ret_tail)
                *ret_tail = b->data + b->len;
        return 0;
}

int buf_commit(struct buf *b, size_t n) {
        if (n > b->room)
                return -EINVAL;
        b->room -= n;
        b->len += n;
        return 0;
}

int buf_append(struct buf *b, const void *data, size_t n) {
        uint8_t *t;
        b->room = 0;
        if (n == 0)
                return 0;
        int r = buf_reserve(b, n, &t);
        if (r < 0)
                return r;
        memcpy(t, data, n);
        b->len += n;
        b->room = 0;
        return 0;
}

int buf_append_byte(struct buf *b, uint8_t c) {
        if (b->len < b->cap && (!b->max || b->len - b->off < b->max)) {
                b->room = 0;
                b->data[b->len++] = c;
                return 0;
        }
        return buf_append(b, &c, 1);
}

int buf_append_str(struct buf *b, const char *s) { return buf_append(b, s, strlen(s)); }

int buf_consume(struct buf *b, size_t n) {
        if (n > b->len - b->off)
                return -EINVAL;
        b->room = 0;
        if (n == b->len - b->off) {
                b->off = b->len = 0;
                return 0;
        }
        b->off += n;
        return 0;
}

int buf_truncate(struct buf *b, size_t size) {
        if (size > b->len - b->off)
                return -EINVAL;
        b->room = 0;
        b->len = b->off + size;
        return 0;
}

void buf_reset(struct buf *b) { b->off = b->len = b->room = 0; }

int buf_move(struct buf *dst, struct buf *src) {
        if (dst == src)
                return 0;
        if (dst->max && src->len - src->off > dst->max)
                return -ENOBUFS;
        size_t max = dst->max;
        free(dst->data);
        *dst = *src;
        dst->max = max;
        dst->room = 0;
        *src = buf_init(src->max);
        return 0;
}

int buf_steal(struct buf *b, uint8_t **ret_data, size_t *ret_len) {
        size_t n = buf_size(b);
        if (!b->data) {
                uint8_t *p = malloc(1);
                if (!p)
                        return -ENOMEM;
                *p = 0;
                *ret_data = p;
                *ret_len = 0;
                return 0;
        }
        if (b->off)
                memmove(b->data, b->data + b->off, n);
        b->data[n] = 0; /* cap + 1 bytes are always allocated */
        *ret_data = b->data;
        *ret_len = n;
        b->data = NULL;
        b->off = b->len = b->cap = b->room = 0;
        return 0;
}

void buf_free(struct buf *b) {
        free(b->data);
        b->data = NULL;
        b->off = b->len = b->cap = b->room = 0;
}

void buf_wipe_free(struct buf *b) {
        if (b->data)
                explicit_bzero(b->data, b->cap + 1);
        buf_free(b);
}
