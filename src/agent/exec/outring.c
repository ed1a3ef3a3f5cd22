#include "outring.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Offsets map to positions modulo @alloc. While the ring grows (alloc <
 * cap) nothing has been dropped and every offset is below @alloc, so
 * growing never moves a byte; once alloc == cap the ring wraps. */
struct outring {
        uint8_t *data;
        uint64_t *bits; /* bit p set: the byte at position p is stderr */
        size_t alloc;
        size_t cap;
        uint64_t start;
        uint64_t end;
};

#define GROW_MIN 4096

static size_t words_for(size_t n) {
        return (n + 63) / 64;
}

size_t outring_footprint(size_t capacity) {
        if (capacity == 0 || capacity > OUTRING_CAPACITY_MAX)
                return 0;
        return sizeof(struct outring) + capacity + words_for(capacity) * sizeof(uint64_t);
}

int outring_new(size_t capacity, struct outring **ret) {
        if (capacity == 0 || capacity > OUTRING_CAPACITY_MAX)
                return -EINVAL;
        struct outring *r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        r->cap = capacity;
        *ret = r;
        return 0;
}

void outring_free(struct outring *r) {
        if (!r)
                return;
        free(r->data);
        free(r->bits);
        free(r);
}

uint64_t outring_start(const struct outring *r) {
        return r->start;
}

uint64_t outring_end(const struct outring *r) {
        return r->end;
}

size_t outring_capacity(const struct outring *r) {
        return r->cap;
}

size_t outring_mem(const struct outring *r) {
        return sizeof *r + r->alloc + words_for(r->alloc) * sizeof(uint64_t);
}

static int grow(struct outring *r, size_t need) {
        size_t n = r->alloc * 2;
        if (n < need)
                n = need;
        if (n < GROW_MIN)
                n = GROW_MIN;
        if (n > r->cap)
                n = r->cap;
        /* Bits first: a failure after it leaves a larger bit array, which
         * is harmless; the data block decides the ring's size. */
        size_t ow = words_for(r->alloc), nw = words_for(n);
        if (nw > ow) {
                uint64_t *b = realloc(r->bits, nw * sizeof *b);
                if (!b)
                        return -ENOMEM;
                memset(b + ow, 0, (nw - ow) * sizeof *b);
                r->bits = b;
        }
        uint8_t *d = realloc(r->data, n);
        if (!d)
                return -ENOMEM;
        r->data = d;
        r->alloc = n;
        return 0;
}

/* Set (@err) or clear the stream bits of positions [p, p + n). */
static void mark(uint64_t *bits, size_t p, size_t n, bool err) {
        while (n > 0) {
                size_t bit = p % 64, k = 64 - bit < n ? 64 - bit : n;
                uint64_t m = (k == 64 ? ~UINT64_C(0) : ((UINT64_C(1) << k) - 1)) << bit;
                if (err)
                        bits[p / 64] |= m;
                else
                        bits[p / 64] &= ~m;
                p += k;
                n -= k;
        }
}

int outring_append(struct outring *r, uint8_t stream, const void *data, size_t n) {
        const uint8_t *s = data;

        if (stream != OUTRING_STDOUT && stream != OUTRING_STDERR)
                return -EINVAL;
        if (n == 0)
                return 0;
        if (r->alloc < r->cap && r->end + n > r->alloc) {
                /* Still growing, so end <= alloc < cap: the sum fits. */
                size_t need = n > r->cap - (size_t) r->end ? r->cap : (size_t) r->end + n;
                int e = grow(r, need);
                if (e < 0)
                        return e;
        }
        if (n > r->alloc) {
                /* Only the newest bytes survive; the rest still take offsets. */
                r->end += n - r->alloc;
                s += n - r->alloc;
                n = r->alloc;
        }
        size_t p = (size_t) (r->end % r->alloc);
        size_t first = r->alloc - p < n ? r->alloc - p : n;
        memcpy(r->data + p, s, first);
        mark(r->bits, p, first, stream == OUTRING_STDERR);
        if (first < n) {
                memcpy(r->data, s + first, n - first);
                mark(r->bits, 0, n - first, stream == OUTRING_STDERR);
        }
        r->end += n;
        if (r->end - r->start > r->alloc)
                r->start = r->end - r->alloc;
        return 0;
}

/* How many of positions [p, p + n) carry the stream bit @err, from p on. */
static size_t run_length(const uint64_t *bits, size_t p, size_t n, bool err) {
        size_t done = 0;
        while (done < n) {
                size_t bit = p % 64;
                /* Ones where the stream differs, from bit p on. */
                uint64_t diff = (err ? ~bits[p / 64] : bits[p / 64]) >> bit;
                size_t avail = 64 - bit;
                size_t same = diff ? (size_t) __builtin_ctzll(diff) : avail;
                if (same > avail)
                        same = avail;
                if (same < avail)
                        return done + same < n ? done + same : n;
                done += avail;
                p += avail;
        }
        return n;
}

int outring_read(const struct outring *r, uint64_t offset, size_t max, struct outring_chunk *ret) {
        if (max == 0)
                return -EINVAL;
        if (offset > r->end)
                return -ERANGE;
        if (offset < r->start) {
                *ret = (struct outring_chunk) { .kind = OUTRING_GAP, .offset = offset, .to = r->start };
                return 0;
        }
        if (offset == r->end) {
                *ret = (struct outring_chunk) { .kind = OUTRING_NONE, .offset = offset };
                return 0;
        }
        size_t p = (size_t) (offset % r->alloc);
        uint64_t left = r->end - offset;
        size_t n = r->alloc - p;
        if (left < n)
                n = (size_t) left;
        if (max < n)
                n = max;
        bool err = r->bits[p / 64] >> (p % 64) & 1;
        n = run_length(r->bits, p, n, err);
        *ret = (struct outring_chunk) {
                .kind = OUTRING_DATA,
                .stream = err ? OUTRING_STDERR : OUTRING_STDOUT,
                .offset = offset,
                .data = r->data + p,
                .len = n,
        };
        return 0;
}
