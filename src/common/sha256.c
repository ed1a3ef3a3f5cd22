#include "sha256.h"

#include <errno.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_X86 1
#endif

static const uint32_t K[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static const uint32_t H0[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

/* ---- portable ---------------------------------------------------------------- */

static inline uint32_t ror(uint32_t x, unsigned n) {
        return x >> n | x << (32 - n);
}

static inline uint32_t load_be32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

/* One round with the working variables passed in rotated order instead of
 * shifted: no moves between rounds. The schedule lives in a 16-word
 * window, extended in place from round 16 on. */
#define ROUND(a, b, c, d, e, f, g, h, i)                                                                \
        do {                                                                                            \
                uint32_t w_;                                                                            \
                if ((i) < 16)                                                                           \
                        w_ = w[i];                                                                      \
                else {                                                                                  \
                        uint32_t x15 = w[((i) - 15) & 15], x2 = w[((i) - 2) & 15];                      \
                        uint32_t s0 = ror(x15, 7) ^ ror(x15, 18) ^ (x15 >> 3);                          \
                        uint32_t s1 = ror(x2, 17) ^ ror(x2, 19) ^ (x2 >> 10);                           \
                        w_ = w[(i) & 15] += s0 + w[((i) - 7) & 15] + s1;                                \
                }                                                                                       \
                uint32_t t1 = h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + (g ^ (e & (f ^ g))) + K[i] + w_; \
                uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) | (c & (a | b)));        \
                d += t1;                                                                                \
                h = t1 + t2;                                                                            \
        } while (0)

#define ROUNDS8(i)                                         \
        do {                                               \
                ROUND(a, b, c, d, e, f, g, h, (i) + 0);    \
                ROUND(h, a, b, c, d, e, f, g, (i) + 1);    \
                ROUND(g, h, a, b, c, d, e, f, (i) + 2);    \
                ROUND(f, g, h, a, b, c, d, e, (i) + 3);    \
                ROUND(e, f, g, h, a, b, c, d, (i) + 4);    \
                ROUND(d, e, f, g, h, a, b, c, (i) + 5);    \
                ROUND(c, d, e, f, g, h, a, b, (i) + 6);    \
                ROUND(b, c, d, e, f, g, h, a, (i) + 7);    \
        } while (0)

static void blocks_portable(uint32_t st[8], const uint8_t *p, size_t nblocks) {
        for (; nblocks > 0; nblocks--, p += SHA256_BLOCK_SIZE) {
                uint32_t w[16];
                for (unsigned i = 0; i < 16; i++)
                        w[i] = load_be32(p + 4 * i);
                uint32_t a = st[0], b = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6], h = st[7];
                ROUNDS8(0);
                ROUNDS8(8);
                ROUNDS8(16);
                ROUNDS8(24);
                ROUNDS8(32);
                ROUNDS8(40);
                ROUNDS8(48);
                ROUNDS8(56);
                st[0] += a, st[1] += b, st[2] += c, st[3] += d;
                st[4] += e, st[5] += f, st[6] += g, st[7] += h;
        }
}

/* ---- SHA-NI ------------------------------------------------------------------- */

#ifdef HAVE_X86
/* The SHA extensions keep the state as two vectors, ABEF and CDGH (A in
 * the top lane); sha256rnds2 does two rounds with the two low lanes of
 * W+K, and msg1/msg2 compute the schedule four words at a time. */
#define SHANI_TARGET __attribute__((target("sha,sse4.1,ssse3")))

SHANI_TARGET static void blocks_shani(uint32_t st[8], const uint8_t *p, size_t nblocks) {
        /* Byte order within each 32-bit word: the message is big-endian. */
        const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
        __m128i dcba = _mm_loadu_si128((const __m128i *) &st[0]);
        __m128i hgfe = _mm_loadu_si128((const __m128i *) &st[4]);
        __m128i cdab = _mm_shuffle_epi32(dcba, 0xb1);
        __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1b);
        __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
        __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xf0);

        for (; nblocks > 0; nblocks--, p += SHA256_BLOCK_SIZE) {
                __m128i abef0 = abef, cdgh0 = cdgh, m[4], wk;
#pragma GCC unroll 4
                for (unsigned i = 0; i < 4; i++)
                        m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *) (p + 16 * i)), bswap);
#pragma GCC unroll 16
                for (unsigned i = 0; i < 16; i++) {
                        if (i >= 4) {
                                /* W[i..i+3] from W[i-16..i-1]: m[i&3] holds W[i-16..i-13]. */
                                __m128i t = _mm_sha256msg1_epu32(m[i & 3], m[(i + 1) & 3]);
                                t = _mm_add_epi32(t, _mm_alignr_epi8(m[(i + 3) & 3], m[(i + 2) & 3], 4));
                                m[i & 3] = _mm_sha256msg2_epu32(t, m[(i + 3) & 3]);
                        }
                        wk = _mm_add_epi32(m[i & 3], _mm_loadu_si128((const __m128i *) &K[4 * i]));
                        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
                        abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0e));
                }
                abef = _mm_add_epi32(abef, abef0);
                cdgh = _mm_add_epi32(cdgh, cdgh0);
        }

        __m128i feba = _mm_shuffle_epi32(abef, 0x1b);
        __m128i dchg = _mm_shuffle_epi32(cdgh, 0xb1);
        _mm_storeu_si128((__m128i *) &st[0], _mm_blend_epi16(feba, dchg, 0xf0));
        _mm_storeu_si128((__m128i *) &st[4], _mm_alignr_epi8(dchg, feba, 8));
}

static bool cpu_has_shani(void) {
        unsigned a, b, c, d;
        if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSSE3) || !(c & bit_SSE4_1))
                return false;
        if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
                return false;
        return b & bit_SHA;
}
#else
static bool cpu_has_shani(void) {
        return false;
}
#endif

/* ---- selection ----------------------------------------------------------------- */

/* Decided once; racing first callers compute the same answer. */
static sha256_blocks_fn best_blocks(void) {
        static sha256_blocks_fn best;
        sha256_blocks_fn f = __atomic_load_n(&best, __ATOMIC_RELAXED);
        if (!f) {
#ifdef HAVE_X86
                f = cpu_has_shani() ? blocks_shani : blocks_portable;
#else
                f = blocks_portable;
#endif
                __atomic_store_n(&best, f, __ATOMIC_RELAXED);
        }
        return f;
}

bool sha256_impl_supported(enum sha256_impl impl) {
        switch (impl) {
        case SHA256_IMPL_AUTO:
        case SHA256_IMPL_PORTABLE:
                return true;
        case SHA256_IMPL_SHANI:
                return cpu_has_shani();
        }
        return false;
}

const char *sha256_impl_name(void) {
        return best_blocks() == blocks_portable ? "portable" : "sha-ni";
}

static void init_with(struct sha256 *s, sha256_blocks_fn f) {
        memcpy(s->h, H0, sizeof H0);
        s->total = 0;
        s->fill = 0;
        s->blocks = f;
}

void sha256_init(struct sha256 *s) {
        init_with(s, best_blocks());
}

int sha256_init_impl(struct sha256 *s, enum sha256_impl impl) {
        switch (impl) {
        case SHA256_IMPL_AUTO:
                init_with(s, best_blocks());
                return 0;
        case SHA256_IMPL_PORTABLE:
                init_with(s, blocks_portable);
                return 0;
        case SHA256_IMPL_SHANI:
#ifdef HAVE_X86
                if (cpu_has_shani()) {
                        init_with(s, blocks_shani);
                        return 0;
                }
#endif
                return -EOPNOTSUPP;
        }
        return -EINVAL;
}

/* ---- the incremental API ---------------------------------------------------------- */

void sha256_update(struct sha256 *s, const void *data, size_t n) {
        const uint8_t *p = data;

        if (n == 0)
                return; /* @data may be NULL: not even a memcpy of nothing */
        s->total += n;
        if (s->fill > 0) {
                size_t take = SHA256_BLOCK_SIZE - s->fill;
                if (take > n)
                        take = n;
                memcpy(s->block + s->fill, p, take);
                s->fill += take;
                p += take;
                n -= take;
                if (s->fill < SHA256_BLOCK_SIZE)
                        return;
                s->blocks(s->h, s->block, 1);
                s->fill = 0;
        }
        /* Whole blocks straight from the caller's memory, in one call. */
        size_t whole = n / SHA256_BLOCK_SIZE;
        if (whole > 0) {
                s->blocks(s->h, p, whole);
                p += whole * SHA256_BLOCK_SIZE;
                n -= whole * SHA256_BLOCK_SIZE;
        }
        if (n > 0) {
                memcpy(s->block, p, n);
                s->fill = n;
        }
}

void sha256_final(struct sha256 *s, uint8_t out[SHA256_DIGEST_SIZE]) {
        uint64_t bits = s->total * 8;

        /* 0x80, zeros up to 56 mod 64, then the bit length big-endian. */
        s->block[s->fill++] = 0x80;
        if (s->fill > SHA256_BLOCK_SIZE - 8) {
                memset(s->block + s->fill, 0, SHA256_BLOCK_SIZE - s->fill);
                s->blocks(s->h, s->block, 1);
                s->fill = 0;
        }
        memset(s->block + s->fill, 0, SHA256_BLOCK_SIZE - 8 - s->fill);
        for (unsigned i = 0; i < 8; i++)
                s->block[SHA256_BLOCK_SIZE - 1 - i] = (uint8_t) (bits >> (8 * i));
        s->blocks(s->h, s->block, 1);
        for (unsigned i = 0; i < 8; i++) {
                out[4 * i] = (uint8_t) (s->h[i] >> 24);
                out[4 * i + 1] = (uint8_t) (s->h[i] >> 16);
                out[4 * i + 2] = (uint8_t) (s->h[i] >> 8);
                out[4 * i + 3] = (uint8_t) s->h[i];
        }
}

void sha256_digest(const void *data, size_t n, uint8_t out[SHA256_DIGEST_SIZE]) {
        struct sha256 s;
        sha256_init(&s);
        sha256_update(&s, data, n);
        sha256_final(&s, out);
}

void sha256_to_hex(const uint8_t digest[SHA256_DIGEST_SIZE], char out[SHA256_HEX_SIZE]) {
        static const char hex[] = "0123456789abcdef";
        for (unsigned i = 0; i < SHA256_DIGEST_SIZE; i++) {
                out[2 * i] = hex[digest[i] >> 4];
                out[2 * i + 1] = hex[digest[i] & 15];
        }
        out[2 * SHA256_DIGEST_SIZE] = '\0';
}
