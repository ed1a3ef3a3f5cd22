#include "crc32c.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_SSE42 1
#endif

/* The reflected polynomial: bit 0 is the coefficient of x^31. */
#define POLY 0x82f63b78u

/* Slicing-by-8 tables (portable), and for the interleaved hardware
 * path the operators that move a register over LONG_BLOCK or SHORT_BLOCK
 * zero bytes, as four byte-indexed tables each. Built once. */
#define LONG_BLOCK 8192
#define SHORT_BLOCK 256

static uint32_t slice[8][256];
static uint32_t zeros_long[4][256], zeros_short[4][256];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

/* ---- GF(2) operators on the 32-bit register ------------------------------------ */

/* An operator is 32 columns: the image of each register bit. */
static uint32_t op_apply(const uint32_t op[32], uint32_t v) {
        uint32_t sum = 0;
        for (unsigned i = 0; v; i++, v >>= 1)
                if (v & 1)
                        sum ^= op[i];
        return sum;
}

/* @ret = @a after @b (the two commute when both are powers of one). */
static void op_compose(uint32_t ret[32], const uint32_t a[32], const uint32_t b[32]) {
        uint32_t t[32];
        for (unsigned i = 0; i < 32; i++)
                t[i] = op_apply(a, b[i]);
        memcpy(ret, t, sizeof t);
}

/* The operator that feeds @n zero bytes through the register. */
static void op_zero_bytes(uint32_t ret[32], size_t n) {
        uint32_t cur[32], acc[32];
        /* One zero bit: shift right, fold the polynomial in for bit 0. */
        cur[0] = POLY;
        for (unsigned i = 1; i < 32; i++)
                cur[i] = 1u << (i - 1);
        for (unsigned i = 0; i < 3; i++) /* 2, 4, 8 bits: one byte */
                op_compose(cur, cur, cur);
        for (unsigned i = 0; i < 32; i++)
                acc[i] = 1u << i;
        for (; n; n >>= 1) {
                if (n & 1)
                        op_compose(acc, acc, cur);
                op_compose(cur, cur, cur);
        }
        memcpy(ret, acc, sizeof acc);
}

static void shift_table(uint32_t t[4][256], size_t n) {
        uint32_t op[32];
        op_zero_bytes(op, n);
        for (unsigned k = 0; k < 4; k++)
                for (uint32_t b = 0; b < 256; b++)
                        t[k][b] = op_apply(op, b << (8 * k));
}

static void tables_build(void) {
        for (uint32_t i = 0; i < 256; i++) {
                uint32_t c = i;
                for (unsigned k = 0; k < 8; k++)
                        c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
                slice[0][i] = c;
        }
        for (unsigned k = 1; k < 8; k++)
                for (uint32_t i = 0; i < 256; i++)
                        slice[k][i] = (slice[k - 1][i] >> 8) ^ slice[0][slice[k - 1][i] & 0xff];
        shift_table(zeros_long, LONG_BLOCK);
        shift_table(zeros_short, SHORT_BLOCK);
}

static void tables_init(void) {
        (void) pthread_once(&tables_once, tables_build);
}

/* ---- portable -------------------------------------------------------------------- */

static uint32_t update_portable(uint32_t c, const uint8_t *p, size_t n) {
        for (; n >= 8; n -= 8, p += 8) {
                c ^= (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
                c = slice[7][c & 0xff] ^ slice[6][(c >> 8) & 0xff] ^ slice[5][(c >> 16) & 0xff] ^ slice[4][c >> 24] ^
                    slice[3][p[4]] ^ slice[2][p[5]] ^ slice[1][p[6]] ^ slice[0][p[7]];
        }
        for (; n; n--, p++)
                c = (c >> 8) ^ slice[0][(c ^ *p) & 0xff];
        return c;
}

/* ---- SSE4.2 ---------------------------------------------------------------------- */

#ifdef HAVE_SSE42
#define SSE42_TARGET __attribute__((target("sse4.2")))

static inline uint32_t shift(const uint32_t t[4][256], uint32_t c) {
        return t[0][c & 0xff] ^ t[1][(c >> 8) & 0xff] ^ t[2][(c >> 16) & 0xff] ^ t[3][c >> 24];
}

static inline uint64_t load64(const uint8_t *p) {
        uint64_t v;
        memcpy(&v, p, sizeof v);
        return v;
}

/* Three blocks of @blk bytes at once: crc32's latency is three cycles and
 * its throughput one, so three independent registers keep it busy. The
 * register is linear in (state, data): the second and third blocks start
 * from 0, and the first's register is moved over the following block's
 * length (@t) and folded in. */
SSE42_TARGET static inline uint64_t three_way(uint64_t c0, const uint8_t *p, size_t blk, const uint32_t t[4][256]) {
        uint64_t c1 = 0, c2 = 0;
        for (const uint8_t *end = p + blk; p < end; p += 8) {
                c0 = _mm_crc32_u64(c0, load64(p));
                c1 = _mm_crc32_u64(c1, load64(p + blk));
                c2 = _mm_crc32_u64(c2, load64(p + 2 * blk));
        }
        c0 = shift(t, (uint32_t) c0) ^ (uint32_t) c1;
        return shift(t, (uint32_t) c0) ^ (uint32_t) c2;
}

SSE42_TARGET static uint32_t update_sse42(uint32_t c, const uint8_t *p, size_t n) {
        for (; n && ((uintptr_t) p & 7); n--, p++)
                c = _mm_crc32_u8(c, *p);
        uint64_t c64 = c;
        for (; n >= 3 * LONG_BLOCK; n -= 3 * LONG_BLOCK, p += 3 * LONG_BLOCK)
                c64 = three_way(c64, p, LONG_BLOCK, zeros_long);
        for (; n >= 3 * SHORT_BLOCK; n -= 3 * SHORT_BLOCK, p += 3 * SHORT_BLOCK)
                c64 = three_way(c64, p, SHORT_BLOCK, zeros_short);
        for (; n >= 8; n -= 8, p += 8)
                c64 = _mm_crc32_u64(c64, load64(p));
        c = (uint32_t) c64;
        for (; n; n--, p++)
                c = _mm_crc32_u8(c, *p);
        return c;
}

static bool cpu_has_sse42(void) {
        unsigned a, b, c, d;
        return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_2);
}
#else
static bool cpu_has_sse42(void) {
        return false;
}
#endif

/* ---- selection --------------------------------------------------------------------- */

/* Decided once; racing first callers compute the same answer. */
static crc32c_fn best_fn(void) {
        static crc32c_fn best;
        crc32c_fn f = __atomic_load_n(&best, __ATOMIC_RELAXED);
        if (!f) {
#ifdef HAVE_SSE42
                f = cpu_has_sse42() ? update_sse42 : update_portable;
#else
                f = update_portable;
#endif
                __atomic_store_n(&best, f, __ATOMIC_RELAXED);
        }
        return f;
}

bool crc32c_impl_supported(enum crc32c_impl impl) {
        switch (impl) {
        case CRC32C_IMPL_AUTO:
        case CRC32C_IMPL_PORTABLE:
                return true;
        case CRC32C_IMPL_SSE42:
                return cpu_has_sse42();
        }
        return false;
}

const char *crc32c_impl_name(void) {
        return best_fn() == update_portable ? "portable" : "sse4.2";
}

static void init_with(struct crc32c *c, crc32c_fn f) {
        tables_init();
        c->crc = 0xffffffffu;
        c->fn = f;
}

void crc32c_init(struct crc32c *c) {
        init_with(c, best_fn());
}

int crc32c_init_impl(struct crc32c *c, enum crc32c_impl impl) {
        switch (impl) {
        case CRC32C_IMPL_AUTO:
                init_with(c, best_fn());
                return 0;
        case CRC32C_IMPL_PORTABLE:
                init_with(c, update_portable);
                return 0;
        case CRC32C_IMPL_SSE42:
#ifdef HAVE_SSE42
                if (cpu_has_sse42()) {
                        init_with(c, update_sse42);
                        return 0;
                }
#endif
                return -EOPNOTSUPP;
        }
        return -EINVAL;
}

void crc32c_update(struct crc32c *c, const void *data, size_t n) {
        if (n > 0)
                c->crc = c->fn(c->crc, data, n);
}

uint32_t crc32c_value(const struct crc32c *c) {
        return ~c->crc;
}

uint32_t crc32c(const void *data, size_t n) {
        struct crc32c c;
        crc32c_init(&c);
        crc32c_update(&c, data, n);
        return crc32c_value(&c);
}

void crc32c_to_hex(uint32_t value, char out[CRC32C_HEX_SIZE]) {
        static const char hex[] = "0123456789abcdef";
        for (unsigned i = 0; i < 8; i++)
                out[i] = hex[(value >> (28 - 4 * i)) & 15];
        out[8] = '\0';
}
