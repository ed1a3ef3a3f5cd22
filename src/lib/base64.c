#include "base64.h"

#include <errno.h>

static const char enc_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Decoding table: 0..63 for alphabet bytes, markers >= 64 otherwise, so
 * the fast path can validate four lookups with a single OR. */
#define B64_INV 0xff
#define B64_PAD 0xfe
#define B64_NL 0xfd

#define IV B64_INV
#define PD B64_PAD
#define NL B64_NL
static const uint8_t dec_table[256] = {
        IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, NL, IV, IV, NL, IV, IV,
        IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV,
        IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, 62, IV, IV, IV, 63,
        52, 53, 54, 55, 56, 57, 58, 59, 60, 61, IV, IV, IV, PD, IV, IV,
        IV,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14,
        15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, IV, IV, IV, IV, IV,
        IV, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
        41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, IV, IV, IV, IV, IV,
        IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV,
        IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV,
        IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV,
        IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV,
        IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV,
        IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV,
        IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV,
        IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV,
};
#undef IV
#undef PD
#undef NL

size_t base64_encoded_len(size_t n) {
        size_t q = n / 3 + (n % 3 != 0);
        if (q > SIZE_MAX / 4)
                return SIZE_MAX;
        return q * 4;
}

int base64_encode_append(struct buf *out, const void *data, size_t n) {
        const uint8_t *s = data;
        uint8_t *t;
        size_t olen = base64_encoded_len(n);
        if (olen == 0)
                return 0;
        if (olen == SIZE_MAX)
                return -ENOBUFS;
        int r = buf_reserve(out, olen, &t);
        if (r < 0)
                return r;

        uint8_t *p = t;
        size_t i = 0;
        for (; n - i >= 3; i += 3) {
                uint32_t v = (uint32_t) s[i] << 16 | (uint32_t) s[i + 1] << 8 | s[i + 2];
                p[0] = enc_alphabet[v >> 18];
                p[1] = enc_alphabet[(v >> 12) & 63];
                p[2] = enc_alphabet[(v >> 6) & 63];
                p[3] = enc_alphabet[v & 63];
                p += 4;
        }
        if (n - i == 1) {
                uint32_t v = (uint32_t) s[i] << 16;
                p[0] = enc_alphabet[v >> 18];
                p[1] = enc_alphabet[(v >> 12) & 63];
                p[2] = '=';
                p[3] = '=';
                p += 4;
        } else if (n - i == 2) {
                uint32_t v = (uint32_t) s[i] << 16 | (uint32_t) s[i + 1] << 8;
                p[0] = enc_alphabet[v >> 18];
                p[1] = enc_alphabet[(v >> 12) & 63];
                p[2] = enc_alphabet[(v >> 6) & 63];
                p[3] = '=';
                p += 4;
        }
        buf_commit(out, (size_t) (p - t));
        return 0;
}

static size_t skip_newlines(const uint8_t *s, size_t i, size_t len) {
        while (i < len && dec_table[s[i]] == B64_NL)
                i++;
        return i;
}

int base64_decode(const void *src, size_t len, uint8_t *dst, size_t *ret_len) {
        const uint8_t *s = src;
        size_t si = 0, n = 0;

        while (si < len) {
                if (len - si >= 4) {
                        uint32_t a = dec_table[s[si]], b = dec_table[s[si + 1]], c = dec_table[s[si + 2]],
                                 d = dec_table[s[si + 3]];
                        if ((a | b | c | d) < 64) {
                                uint32_t v = a << 18 | b << 12 | c << 6 | d;
                                dst[n] = (uint8_t) (v >> 16);
                                dst[n + 1] = (uint8_t) (v >> 8);
                                dst[n + 2] = (uint8_t) v;
                                n += 3;
                                si += 4;
                                continue;
                        }
                }

                /* Slow path: one quantum the way Go's decodeQuantum reads it
                 * (newlines skipped, padding only at positions 2 and 3,
                 * nothing but newlines after it). */
                uint32_t q[4];
                size_t j = 0;
                while (j < 4) {
                        if (si == len) {
                                if (j == 0)
                                        goto done;
                                return -EINVAL; /* padding is mandatory */
                        }
                        uint8_t v = dec_table[s[si++]];
                        if (v == B64_NL)
                                continue;
                        if (v < 64) {
                                q[j++] = v;
                                continue;
                        }
                        if (v != B64_PAD || j < 2)
                                return -EINVAL;
                        if (j == 2) {
                                si = skip_newlines(s, si, len);
                                if (si == len || s[si] != '=')
                                        return -EINVAL;
                                si++;
                        }
                        si = skip_newlines(s, si, len);
                        if (si < len)
                                return -EINVAL; /* data after padding */
                        uint32_t w = q[0] << 18 | q[1] << 12 | (j == 3 ? q[2] << 6 : 0);
                        dst[n++] = (uint8_t) (w >> 16);
                        if (j == 3)
                                dst[n++] = (uint8_t) (w >> 8);
                        goto done;
                }
                uint32_t v = q[0] << 18 | q[1] << 12 | q[2] << 6 | q[3];
                dst[n] = (uint8_t) (v >> 16);
                dst[n + 1] = (uint8_t) (v >> 8);
                dst[n + 2] = (uint8_t) v;
                n += 3;
        }
done:
        *ret_len = n;
        return 0;
}
