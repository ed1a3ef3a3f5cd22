#include "base64.h"

#include <errno.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define B64_SSSE3 1
#endif

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

#ifdef B64_SSSE3
/* SSSE3 paths for 12 bytes <-> 16 characters at a time, chosen at run time
 * (x86-64 only guarantees SSE2). Large file transfers are base64 inside
 * JSON, so this is on the hot path of read_file/write_file. The scalar
 * code below handles everything the vector loops leave: tails, padding,
 * newlines and errors, so the semantics are the scalar ones. */
static bool have_ssse3(void) {
        static int cached = -1;
        int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
        if (v < 0) {
                __builtin_cpu_init();
                v = __builtin_cpu_supports("ssse3") ? 1 : 0;
                __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
        }
        return v;
}

/* Encodes whole 12-byte blocks while 16 input bytes are readable; returns
 * the number of input bytes consumed (4 output characters per 3). */
__attribute__((target("ssse3"))) static size_t encode_ssse3(const uint8_t *s, size_t n, uint8_t *p) {
        /* Each 32-bit lane gets input bytes [b a c b] of its group [a b c]:
         * then a is the high byte of the low word and c the low byte of the
         * high word, and each sextet sits at a fixed bit offset. */
        const __m128i spread = _mm_setr_epi8(1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10);
        /* Offsets from sextet value to ASCII, indexed by the class computed
         * below: 0 lower case, 1..10 digits, 11 '+', 12 '/', 13 upper case. */
        const __m128i offsets = _mm_setr_epi8(71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 65, 0, 0);
        size_t i = 0;
        for (; n - i >= 16; i += 12, p += 16) {
                __m128i in = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *) (s + i)), spread);
                /* Sextets 0 and 2 (mask, then shift right by 10 and 6 via a
                 * high multiply), sextets 1 and 3 (shift left by 4 and 8). */
                __m128i t0 = _mm_mulhi_epu16(_mm_and_si128(in, _mm_set1_epi32(0x0fc0fc00)),
                                             _mm_set1_epi32(0x04000040));
                __m128i t1 = _mm_mullo_epi16(_mm_and_si128(in, _mm_set1_epi32(0x003f03f0)),
                                             _mm_set1_epi32(0x01000010));
                __m128i idx = _mm_or_si128(t0, t1);
                __m128i cls = _mm_subs_epu8(idx, _mm_set1_epi8(51));
                __m128i upper = _mm_cmpgt_epi8(_mm_set1_epi8(26), idx);
                cls = _mm_or_si128(cls, _mm_and_si128(upper, _mm_set1_epi8(13)));
                __m128i out = _mm_add_epi8(idx, _mm_shuffle_epi8(offsets, cls));
                _mm_storeu_si128((__m128i *) p, out);
        }
        return i;
}

/* Decodes 16-character blocks of alphabet bytes only (no padding, no
 * newlines) while 16 are available; stops at the first block holding
 * anything else. Returns the characters consumed; 12 bytes out per 16. */
__attribute__((target("ssse3"))) static size_t decode_ssse3(const uint8_t *s, size_t len, uint8_t *dst) {
        const __m128i pack = _mm_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1);
        size_t i = 0;
        for (; len - i >= 16; i += 16, dst += 12) {
                __m128i c = _mm_loadu_si128((const __m128i *) (s + i));
                /* Signed compares: bytes >= 0x80 are negative, so invalid. */
                __m128i upper = _mm_and_si128(_mm_cmpgt_epi8(c, _mm_set1_epi8(0x40)),
                                              _mm_cmpgt_epi8(_mm_set1_epi8(0x5b), c));
                __m128i lower = _mm_and_si128(_mm_cmpgt_epi8(c, _mm_set1_epi8(0x60)),
                                              _mm_cmpgt_epi8(_mm_set1_epi8(0x7b), c));
                __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(c, _mm_set1_epi8(0x2f)),
                                              _mm_cmpgt_epi8(_mm_set1_epi8(0x3a), c));
                __m128i plus = _mm_cmpeq_epi8(c, _mm_set1_epi8(0x2b));
                __m128i slash = _mm_cmpeq_epi8(c, _mm_set1_epi8(0x2f));
                __m128i valid = _mm_or_si128(_mm_or_si128(upper, lower), _mm_or_si128(digit, _mm_or_si128(plus, slash)));
                if (_mm_movemask_epi8(valid) != 0xffff)
                        break;
                __m128i shift = _mm_or_si128(
                        _mm_or_si128(_mm_and_si128(upper, _mm_set1_epi8(-65)), _mm_and_si128(lower, _mm_set1_epi8(-71))),
                        _mm_or_si128(_mm_and_si128(digit, _mm_set1_epi8(4)),
                                     _mm_or_si128(_mm_and_si128(plus, _mm_set1_epi8(19)),
                                                  _mm_and_si128(slash, _mm_set1_epi8(16)))));
                __m128i v = _mm_add_epi8(c, shift);
                /* [v0 v1 v2 v3] -> v0<<18 | v1<<12 | v2<<6 | v3 per lane. */
                __m128i w = _mm_maddubs_epi16(v, _mm_set1_epi32(0x01400140));
                __m128i d = _mm_madd_epi16(w, _mm_set1_epi32(0x00011000));
                d = _mm_shuffle_epi8(d, pack);
                _mm_storel_epi64((__m128i *) dst, d);
                uint32_t tail = (uint32_t) _mm_cvtsi128_si32(_mm_srli_si128(d, 8));
                memcpy(dst + 8, &tail, 4);
        }
        return i;
}
#endif

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
#ifdef B64_SSSE3
        if (n >= 16 && have_ssse3()) {
                i = encode_ssse3(s, n, p);
                p += i / 3 * 4;
        }
#endif
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
        return buf_commit(out, (size_t) (p - t));
}

static size_t skip_newlines(const uint8_t *s, size_t i, size_t len) {
        while (i < len && dec_table[s[i]] == B64_NL)
                i++;
        return i;
}

bool base64_in_alphabet(uint8_t c) { return dec_table[c] < 64; }

size_t base64_decode_prefix(const void *src, size_t len, uint8_t *dst, size_t *ret_len) {
        const uint8_t *s = src;
        size_t si = 0, n = 0;
#ifdef B64_SSSE3
        if (len >= 16 && have_ssse3()) {
                si = decode_ssse3(s, len, dst);
                n = si / 4 * 3;
        }
#endif
        for (; len - si >= 4; si += 4, n += 3) {
                uint32_t a = dec_table[s[si]], b = dec_table[s[si + 1]], c = dec_table[s[si + 2]],
                         d = dec_table[s[si + 3]];
                if ((a | b | c | d) >= 64)
                        break;
                uint32_t v = a << 18 | b << 12 | c << 6 | d;
                dst[n] = (uint8_t) (v >> 16);
                dst[n + 1] = (uint8_t) (v >> 8);
                dst[n + 2] = (uint8_t) v;
        }
        *ret_len = n;
        return si;
}

int base64_decode(const void *src, size_t len, uint8_t *dst, size_t *ret_len) {
        const uint8_t *s = src;
        size_t si = 0, n = 0;
#ifdef B64_SSSE3
        bool simd = len >= 16 && have_ssse3();
#endif

        while (si < len) {
#ifdef B64_SSSE3
                if (simd && len - si >= 16) {
                        size_t k = decode_ssse3(s + si, len - si, dst + n);
                        si += k;
                        n += k / 4 * 3;
                        if (si == len)
                                break;
                }
#endif
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

