#define BUF_IMPLEMENTATION
#include "buf.h"

#include "budget.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Budget charges go in steps of this (fewer atomic operations), never
 * past the allocation. */
#define CHARGE_STEP (64u * 1024)

/* The charge that covers the first @end bytes of an allocation of @cap. */
static size_t charge_for(size_t end, size_t cap) {
        size_t c = end > SIZE_MAX - CHARGE_STEP ? end : (end + CHARGE_STEP - 1) / CHARGE_STEP * CHARGE_STEP;
        return c < cap ? c : cap;
}

/* Count up to @end bytes of an allocation of @cap (strictly: the budget
 * may refuse). */
static int charge_to(struct buf *b, size_t end, size_t cap, bool strict) {
        if (!b->budget) {
                b->charged = cap;
                return 0;
        }
        if (end <= b->charged)
                return 0;
        size_t want = charge_for(end, cap);
        if (strict) {
                int r = budget_reserve(b->budget, want - b->charged);
                if (r < 0)
                        return r;
        } else
                budget_charge(b->budget, want - b->charged);
        b->charged = want;
        return 0;
}

static void uncharge(struct buf *b) {
        if (b->budget)
                (void) budget_release(b->budget, b->charged);
        b->charged = 0;
}

void buf_set_budget(struct buf *b, struct budget *budget, bool strict) {
        uncharge(b);
        b->budget = budget;
        b->strict = strict;
        if (budget)
                budget_charge(budget, b->cap);
        b->charged = b->cap;
}

int buf_precharge(struct buf *b, size_t extra) {
        size_t used = b->len - b->off;
        if (!b->budget)
                return 0;
        if (extra > SIZE_MAX - used - CHARGE_STEP)
                return -ENOBUFS;
        size_t end = used + extra;
        if (end <= b->charged)
                return 0;
        /* Not bounded by the allocation: it has not grown yet. */
        int r = budget_reserve(b->budget, end - b->charged);
        if (r < 0)
                return r;
        b->charged = end;
        return 0;
}

size_t buf_charged(const struct buf *b) { return b->budget ? b->charged : 0; }

int buf_reserve(struct buf *b, size_t extra, uint8_t **ret_tail) {
        size_t used = b->len - b->off;
        size_t max = b->max ? b->max : SIZE_MAX;
        b->room = 0;
        if (extra > max || used > max - extra)
                return -ENOBUFS;
        if (b->cap - b->len < extra && b->off > 0) {
                /* Reclaim consumed space first; it is cheaper than growing. */
                memmove(b->data, b->data + b->off, used);
                b->len = used;
                b->off = 0;
        }
        size_t ncap = b->cap;
        if (b->cap - b->len < extra) {
                size_t want = used + extra;
                ncap = b->cap ? b->cap : 256;
                while (ncap < want)
                        ncap = ncap > SIZE_MAX / 2 ? want : ncap * 2;
                if (ncap > max)
                        ncap = max < want ? want : max;
        }
        /* Counted before it is allocated: a refusal allocates nothing. A
         * charge made past an allocation that then fails is kept until
         * the buffer is freed (harmless: it only over-counts). */
        int r = charge_to(b, b->len + extra, ncap, b->strict);
        if (r < 0)
                return r;
        if (ncap != b->cap) {
                uint8_t *n = realloc(b->data, ncap + 1);
                if (!n) {
                        if (!b->budget)
                                b->charged = b->cap;
                        return -ENOMEM;
                }
                b->data = n;
                b->cap = ncap;
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
        /* Within the charge (the whole allocation without a budget). */
        if (b->len < b->cap && b->len < b->charged && (!b->max || b->len - b->off < b->max)) {
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
        buf_free(dst);
        struct buf keep = *dst;
        struct budget *src_budget = src->budget;
        bool src_strict = src->strict;
        /* What the storage counts for: its charge, or all of it when it
         * had no budget. */
        size_t charged = src_budget ? src->charged : src->cap;
        if (src_budget != keep.budget) {
                (void) budget_release(src_budget, charged);
                budget_charge(keep.budget, charged);
        }
        *dst = *src;
        dst->max = keep.max;
        dst->budget = keep.budget;
        dst->strict = keep.strict;
        dst->charged = keep.budget ? charged : dst->cap;
        dst->room = 0;
        *src = buf_init(src->max);
        src->budget = src_budget;
        src->strict = src_strict;
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
        uncharge(b);
        b->data = NULL;
        b->off = b->len = b->cap = b->room = 0;
        return 0;
}

void buf_free(struct buf *b) {
        uncharge(b);
        free(b->data);
        b->data = NULL;
        b->off = b->len = b->cap = b->room = 0;
}

void buf_wipe_free(struct buf *b) {
        if (b->data)
                explicit_bzero(b->data, b->cap + 1);
        buf_free(b);
}
