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

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* The closing quote of the string whose content starts at @p, or NULL
 * when the text ends first; *ret_escaped tells whether the content holds
 * a backslash. Each byte is looked at a bounded number of times (memchr),
 * however many escapes there are. */
static const char *string_end_slow(const char *p, const char *end, bool *ret_escaped) {
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

static bool special(uint8_t c) {
        return c < 0x20 || c > 0x7e || c == '"' || c == '\\';
}

/* The first byte in [p, end) that is a quote, a backslash or not
 * printable ASCII (0x20..0x7e), or @end. Base64 values are megabytes of
 * plain bytes: one pass finds both where they end and that they are
 * plain, 64 bytes per step. */
static const char *find_special(const char *p, const char *end) {
#if defined(__SSE2__)
        /* Signed compare: bytes >= 0x80 are negative, so "< 0x20" also
         * catches them; 0x7f is the one plain-looking byte left. */
        const __m128i space = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7f), quote = _mm_set1_epi8('"'),
                      bslash = _mm_set1_epi8('\\');
#define SPECIAL16(v)                                                                                          \
        _mm_or_si128(_mm_or_si128(_mm_cmplt_epi8(v, space), _mm_cmpeq_epi8(v, del)),                         \
                     _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)))
        while (end - p >= 64) {
                __m128i a = SPECIAL16(_mm_loadu_si128((const __m128i *) p));
                __m128i b = SPECIAL16(_mm_loadu_si128((const __m128i *) (p + 16)));
                __m128i c = SPECIAL16(_mm_loadu_si128((const __m128i *) (p + 32)));
                __m128i d = SPECIAL16(_mm_loadu_si128((const __m128i *) (p + 48)));
                if (_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d))))
                        break; /* the byte loop below finds it */
                p += 64;
        }
        while (end - p >= 16) {
                int m = _mm_movemask_epi8(SPECIAL16(_mm_loadu_si128((const __m128i *) p)));
                if (m)
                        return p + __builtin_ctz((unsigned) m);
                p += 16;
        }
#undef SPECIAL16
#endif
        while (p < end && !special((uint8_t) *p))
                p++;
        return p;
}

/* string_end_slow(), plus *ret_plain: every content byte is printable
 * ASCII and none is a backslash, so jansson's value of the string is
 * exactly these bytes. */
static const char *string_end(const char *p, const char *end, bool *ret_escaped, bool *ret_plain) {
        p = find_special(p, end);
        if (p < end && *p == '"') {
                *ret_escaped = false;
                *ret_plain = true;
                return p;
        }
        /* Not plain: only the end matters now. */
        *ret_plain = false;
        return string_end_slow(p, end, ret_escaped);
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
                        bool escaped, plain;
                        const char *q = string_end(p, end, &escaped, &plain);
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
                                if (state == EXPECT_VALUE && n >= min_len && plain && !key_escaped &&
                                    s.n_big < JSON_BIGSTR_MAX)
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

size_t json_count_values(const char *text, size_t len, size_t limit) {
        const char *p = text, *end = text + len;
        size_t n = 1;

        while (p < end && n <= limit) {
                char c = *p++;
                if (c == '"') {
                        bool escaped;
                        const char *q = string_end_slow(p, end, &escaped);
                        if (!q)
                                break;
                        p = q + 1;
                } else if (c == ',' || c == '[' || c == '{')
                        n++;
        }
        return n;
}
