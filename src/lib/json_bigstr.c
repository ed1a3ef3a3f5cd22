/* See json_bigstr.h. The scan has to agree with jansson's lexer on where
 * every string starts and ends: outside strings no JSON token but a string
 * holds a '"', and inside one a backslash always takes the next byte with
 * it (a valid escape never continues with a quote or a backslash, an
 * invalid one is rejected by jansson before it gets further). Whatever
 * else the text holds is left for jansson to judge. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json_bigstr.h"

/* The closing quote of the string whose content starts at @p, or NULL
 * when the text ends first; *ret_escaped tells whether the content holds
 * a backslash. Each byte is looked at a bounded number of times (memchr),
 * however many escapes there are. */
static const char *string_end(const char *p, const char *end, bool *ret_escaped) {
        const char *q = memchr(p, '"', (size_t) (end - p));
        bool escaped = false;

        while (q) {
                const char *b = memchr(p, '\\', (size_t) (q - p));
                if (!b)
                        break;
                escaped = true;
                /* b < q < end, so p <= q + 1 <= end. */
                p = b + 2;
                if (p > q) /* the quote at q was escaped */
                        q = memchr(p, '"', (size_t) (end - p));
        }
        *ret_escaped = escaped;
        return q;
}

/* True when every byte is printable ASCII and none is a backslash: then
 * jansson's value of the string is exactly these bytes. Eight bytes at a
 * time (a plain byte loop costs more than the whole base64 decode). Each
 * test below is exact as a yes/no: a borrow or carry can only run out of
 * a byte that already answers yes. */
#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)
static uint64_t word_flags(uint64_t x) {
        uint64_t below_space = (x - ONES * 0x20) & ~x;
        uint64_t above_tilde = (x + ONES * (0x7f - 0x7e)) | x;
        uint64_t bs = x ^ (ONES * '\\');
        uint64_t backslash = (bs - ONES) & ~bs;
        return (below_space | above_tilde | backslash) & HIGHS;
}

static bool plain_ascii(const char *s, size_t n) {
        size_t i = 0;

        /* 64-byte blocks without a branch inside: the compiler may
         * vectorize them. */
        for (; i + 64 <= n; i += 64) {
                uint64_t w[8], bad = 0;
                memcpy(w, s + i, sizeof(w));
                for (size_t k = 0; k < 8; k++)
                        bad |= word_flags(w[k]);
                if (bad)
                        return false;
        }
        for (; i < n; i++) {
                uint8_t c = (uint8_t) s[i];
                if (c < 0x20 || c > 0x7e || c == '\\')
                        return false;
        }
        return true;
}

static bool is_ws(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

size_t json_bigstr_scan(const char *text, size_t len, size_t min_len, struct json_bigstr_scan *ret) {
        /* Where the top-level object is: only there do members count. */
        enum { EXPECT_KEY, AFTER_KEY, EXPECT_VALUE, OTHER } state = EXPECT_KEY;
        const char *p = text, *end = text + len;
        struct json_bigstr_scan s = {};
        size_t key_off = 0, key_len = 0, depth = 1;
        bool key_escaped = false;

        *ret = s;
        while (p < end && is_ws(*p))
                p++;
        if (p == end || *p != '{')
                return 0;
        p++;

        while (p < end) {
                char c = *p++;

                if (c == '"') {
                        bool escaped;
                        const char *q = string_end(p, end, &escaped);
                        if (!q)
                                return 0;
                        size_t off = (size_t) (p - text), n = (size_t) (q - p);
                        p = q + 1;
                        if (depth != 1) {
                                continue;
                        } else if (state == EXPECT_KEY) {
                                s.n_members++;
                                key_off = off;
                                key_len = n;
                                key_escaped = escaped;
                                state = AFTER_KEY;
                        } else {
                                if (state == EXPECT_VALUE && n >= min_len && !escaped && !key_escaped &&
                                    s.n_big < JSON_BIGSTR_MAX && plain_ascii(text + off, n))
                                        s.big[s.n_big++] = (struct json_bigstr) {
                                                .key_off = key_off,
                                                .key_len = key_len,
                                                .off = off,
                                                .len = n,
                                        };
                                state = OTHER;
                        }
                        continue;
                }
                if (is_ws(c))
                        continue;
                if (c == '{' || c == '[') {
                        depth++;
                } else if (c == '}' || c == ']') {
                        if (--depth == 0) {
                                /* Trailing bytes stay in the copy as they are. */
                                *ret = s;
                                return s.n_big;
                        }
                } else if (depth == 1) {
                        if (c == ',')
                                state = EXPECT_KEY;
                        else if (c == ':' && state == AFTER_KEY)
                                state = EXPECT_VALUE;
                        else
                                state = OTHER;
                        continue;
                }
                if (depth == 1)
                        state = OTHER; /* just after a nested value */
        }
        /* Cut short: jansson rejects it, and would reject the copy too. */
        return 0;
}

int json_bigstr_reduce(const char *text, size_t len, const struct json_bigstr_scan *s, char **ret, size_t *ret_len) {
        size_t n = len;

        for (size_t i = 0; i < s->n_big; i++)
                n -= s->big[i].len;
        char *d = malloc(n + 1);
        if (!d)
                return -ENOMEM;

        /* The values are in text order and do not overlap. */
        size_t at = 0, w = 0;
        for (size_t i = 0; i < s->n_big; i++) {
                memcpy(d + w, text + at, s->big[i].off - at);
                w += s->big[i].off - at;
                at = s->big[i].off + s->big[i].len;
        }
        memcpy(d + w, text + at, len - at);
        w += len - at;
        d[w] = 0;
        *ret = d;
        *ret_len = w;
        return 0;
}
