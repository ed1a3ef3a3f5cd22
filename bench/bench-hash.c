/* SHA-256 throughput of each implementation, as streams use it: 1 MiB
 * updates of a buffer that was just written (cache-warm, like a chunk just
 * read from a file or a socket). Best of several runs: the figure is the
 * CPU's, not the neighbours'. */
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "common/sha256.h"

static double hash_mib_s(enum sha256_impl impl, const uint8_t *buf, size_t chunk, uint64_t total, int reps) {
        double best = 0;
        for (int r = 0; r < reps; r++) {
                struct sha256 s;
                uint8_t d[SHA256_DIGEST_SIZE];
                if (sha256_init_impl(&s, impl) < 0)
                        return -1;
                int64_t t0 = mono_ns();
                for (uint64_t done = 0; done < total; done += chunk)
                        sha256_update(&s, buf, chunk);
                sha256_final(&s, d);
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

        double portable = hash_mib_s(SHA256_IMPL_PORTABLE, buf, chunk, total / 4, reps);
        bench_row(b, "sha256 portable", portable, 0, "MiB/s", T_NONE, 0, "1 MiB updates");
        if (sha256_impl_supported(SHA256_IMPL_SHANI)) {
                double shani = hash_mib_s(SHA256_IMPL_SHANI, buf, chunk, total, reps);
                /* 1.5 GB/s, in the table's unit. */
                bench_row(b, "sha256 sha-ni", shani, 0, "MiB/s", T_ABS_MIN, 1.5e9 / MIB, "1 MiB updates");
        } else {
                printf("  sha256 sha-ni: not supported by this CPU\n");
        }
        free(buf);
}
