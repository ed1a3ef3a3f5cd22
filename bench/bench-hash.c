/* Stream checksum throughput of each implementation, as streams use it:
 * 1 MiB updates of a buffer that was just written (cache-warm, like a
 * chunk just read from a file or a socket). Best of several runs: the
 * figure is the CPU's, not the neighbours'. SHA-256 and CRC-32C are the
 * two algorithms a stream may be checked with (PROTOCOL.md 2.3). */
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "common/crc32c.h"
#include "common/sha256.h"

/* One implementation: start a context (< 0: this CPU has none), add @n. */
struct hasher {
        int (*init)(void *ctx, int impl);
        void (*update)(void *ctx, const void *p, size_t n);
        void (*final)(void *ctx);
};

static int sha_init(void *ctx, int impl) { return sha256_init_impl(ctx, (enum sha256_impl) impl); }
static void sha_update(void *ctx, const void *p, size_t n) { sha256_update(ctx, p, n); }
static void sha_final(void *ctx) {
        uint8_t d[SHA256_DIGEST_SIZE];
        sha256_final(ctx, d);
}
static int crc_init(void *ctx, int impl) { return crc32c_init_impl(ctx, (enum crc32c_impl) impl); }
static void crc_update(void *ctx, const void *p, size_t n) { crc32c_update(ctx, p, n); }
static void crc_final(void *ctx) { (void) crc32c_value(ctx); }

static const struct hasher sha_hasher = { sha_init, sha_update, sha_final };
static const struct hasher crc_hasher = { crc_init, crc_update, crc_final };

static double hash_mib_s(const struct hasher *h, int impl, const uint8_t *buf, size_t chunk, uint64_t total, int reps) {
        double best = 0;
        for (int r = 0; r < reps; r++) {
                union {
                        struct sha256 sha;
                        struct crc32c crc;
                } ctx;
                if (h->init(&ctx, impl) < 0)
                        return -1;
                int64_t t0 = mono_ns();
                for (uint64_t done = 0; done < total; done += chunk)
                        h->update(&ctx, buf, chunk);
                h->final(&ctx);
                double secs = (double) (mono_ns() - t0) / 1e9;
                double v = (double) total / MIB / secs;
                if (v > best)
                        best = v;
        }
        return best;
}

void fig_hash(struct bench *b) {
        const size_t chunk = 1 << 20;
        /* Many short runs: the best of them is the one a neighbour did
         * not interrupt. */
        uint64_t total = b->quick ? 32ull << 20 : 128ull << 20;
        int reps = b->quick ? 3 : 15;
        uint8_t *buf = malloc(chunk);
        if (!buf) {
                bench_fail(b, "out of memory");
                return;
        }
        for (size_t i = 0; i < chunk; i++)
                buf[i] = (uint8_t) (i * 131 + (i >> 9));

        double portable = hash_mib_s(&sha_hasher, SHA256_IMPL_PORTABLE, buf, chunk, total / 4, reps);
        bench_row(b, "sha256 portable", portable, 0, "MiB/s", T_NONE, 0, "1 MiB updates");
        if (sha256_impl_supported(SHA256_IMPL_SHANI)) {
                double shani = hash_mib_s(&sha_hasher, SHA256_IMPL_SHANI, buf, chunk, total, reps);
                /* 1.5 GB/s, in the table's unit. */
                bench_row(b, "sha256 sha-ni", shani, 0, "MiB/s", T_ABS_MIN, 1.5e9 / MIB, "1 MiB updates");
        } else {
                printf("  sha256 sha-ni: not supported by this CPU\n");
        }
        portable = hash_mib_s(&crc_hasher, CRC32C_IMPL_PORTABLE, buf, chunk, total, reps);
        bench_row(b, "crc32c portable", portable, 0, "MiB/s", T_NONE, 0, "1 MiB updates, slicing-by-8");
        if (crc32c_impl_supported(CRC32C_IMPL_SSE42)) {
                double hw = hash_mib_s(&crc_hasher, CRC32C_IMPL_SSE42, buf, chunk, total * 4, reps);
                /* 10 GB/s: well past the copies of a transfer. */
                bench_row(b, "crc32c sse4.2", hw, 0, "MiB/s", T_ABS_MIN, 10e9 / MIB, "1 MiB updates, 3-way crc32");
        } else {
                printf("  crc32c sse4.2: not supported by this CPU\n");
        }
        free(buf);
}
