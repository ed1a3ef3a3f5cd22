/* The detached-process output ring: offsets, streams, gaps, wrap-around,
 * lazy memory, and a randomized comparison with a reference model that
 * keeps the whole history. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/exec/outring.h"

/* Read everything from @offset to the end into @out/@streams; returns the
 * number of DATA chunks it took, fails on anything but data. */
static size_t drain(const struct outring *r, uint64_t offset, size_t max, uint8_t *out, uint8_t *streams) {
        size_t chunks = 0, k = 0;
        for (;;) {
                struct outring_chunk c;
                assert_int_equal(outring_read(r, offset, max, &c), 0);
                if (c.kind == OUTRING_NONE) {
                        assert_int_equal(c.offset, outring_end(r));
                        return chunks;
                }
                assert_int_equal(c.kind, OUTRING_DATA);
                assert_int_equal(c.offset, offset);
                assert_true(c.len >= 1 && c.len <= max);
                memcpy(out + k, c.data, c.len);
                memset(streams + k, c.stream, c.len);
                k += c.len;
                offset += c.len;
                chunks++;
        }
}

/* outring_read(@offset, @max) gives data of @stream: @len bytes of @want. */
static void expect_data(const struct outring *r, uint64_t offset, size_t max, uint8_t stream, const char *want,
                        size_t len) {
        struct outring_chunk c;
        assert_int_equal(outring_read(r, offset, max, &c), 0);
        assert_int_equal(c.kind, OUTRING_DATA);
        assert_int_equal(c.offset, offset);
        assert_int_equal(c.stream, stream);
        assert_int_equal(c.len, len);
        assert_memory_equal(c.data, want, len);
}

static void test_streams_and_runs(void **state) {
        struct outring *r;
        assert_int_equal(outring_new(100, &r), 0);
        assert_int_equal(outring_end(r), 0);
        struct outring_chunk c;
        assert_int_equal(outring_read(r, 0, 10, &c), 0);
        assert_int_equal(c.kind, OUTRING_NONE);

        assert_int_equal(outring_append(r, OUTRING_STDOUT, "hello ", 6), 0);
        assert_int_equal(outring_append(r, OUTRING_STDOUT, "world", 5), 0);
        assert_int_equal(outring_append(r, OUTRING_STDERR, "oops", 4), 0);
        assert_int_equal(outring_append(r, OUTRING_STDOUT, "!", 1), 0);
        assert_int_equal(outring_append(r, OUTRING_STDOUT, "", 0), 0);
        assert_int_equal(outring_append(r, 3, "x", 1), -EINVAL);
        assert_int_equal(outring_append(r, 0, "x", 1), -EINVAL);
        assert_int_equal(outring_start(r), 0);
        assert_int_equal(outring_end(r), 16);

        /* Same-stream appends read as one run; a stream change ends it. */
        expect_data(r, 0, 1000, OUTRING_STDOUT, "hello world", 11);
        expect_data(r, 3, 1000, OUTRING_STDOUT, "lo world", 8);
        expect_data(r, 11, 1000, OUTRING_STDERR, "oops", 4);
        expect_data(r, 15, 1000, OUTRING_STDOUT, "!", 1);
        /* @max bounds a chunk. */
        expect_data(r, 0, 4, OUTRING_STDOUT, "hell", 4);
        assert_int_equal(outring_read(r, 16, 4, &c), 0);
        assert_int_equal(c.kind, OUTRING_NONE);
        assert_int_equal(outring_read(r, 17, 4, &c), -ERANGE);
        assert_int_equal(outring_read(r, 0, 0, &c), -EINVAL);
        outring_free(r);
        outring_free(NULL);
}

static void test_wrap_and_gap(void **state) {
        struct outring *r;
        assert_int_equal(outring_new(10, &r), 0);
        assert_int_equal(outring_append(r, OUTRING_STDOUT, "0123456", 7), 0);
        assert_int_equal(outring_append(r, OUTRING_STDERR, "789ab", 5), 0);
        /* 12 written, 10 kept: [2, 12). */
        assert_int_equal(outring_start(r), 2);
        assert_int_equal(outring_end(r), 12);

        struct outring_chunk c;
        assert_int_equal(outring_read(r, 0, 100, &c), 0);
        assert_int_equal(c.kind, OUTRING_GAP);
        assert_int_equal(c.offset, 0);
        assert_int_equal(c.to, 2);
        assert_int_equal(outring_read(r, 1, 100, &c), 0);
        assert_int_equal(c.kind, OUTRING_GAP);
        assert_int_equal(c.to, 2);

        expect_data(r, 2, 100, OUTRING_STDOUT, "23456", 5);
        /* The stderr run crosses the end of the allocation: two chunks. */
        expect_data(r, 7, 100, OUTRING_STDERR, "789", 3);
        expect_data(r, 10, 100, OUTRING_STDERR, "ab", 2);

        /* A write larger than the ring keeps its tail; offsets count all. */
        assert_int_equal(outring_append(r, OUTRING_STDOUT, "ABCDEFGHIJKLMNOPQRSTUVWXYZ", 26), 0);
        assert_int_equal(outring_end(r), 38);
        assert_int_equal(outring_start(r), 28);
        uint8_t out[16], st[16];
        assert_int_equal(drain(r, 28, 100, out, st), 2); /* wraps once */
        assert_memory_equal(out, "QRSTUVWXYZ", 10);
        assert_int_equal(outring_read(r, 27, 100, &c), 0);
        assert_int_equal(c.kind, OUTRING_GAP);
        assert_int_equal(c.to, 28);
        outring_free(r);
}

static void test_memory_lazy_and_bounded(void **state) {
        size_t cap = 1 << 20;
        struct outring *r;
        assert_int_equal(outring_new(0, &r), -EINVAL);
        assert_int_equal(outring_new(OUTRING_CAPACITY_MAX + 1, &r), -EINVAL);
        assert_int_equal(outring_footprint(0), 0);
        assert_int_equal(outring_new(cap, &r), 0);
        size_t foot = outring_footprint(cap);
        assert_true(foot >= cap + cap / 8);
        assert_true(foot < cap + cap / 8 + 256);
        assert_true(outring_mem(r) < 256);
        assert_int_equal(outring_append(r, OUTRING_STDOUT, "x", 1), 0);
        /* A quiet process holds a few KiB, not its ring's capacity. */
        assert_true(outring_mem(r) <= 8192);
        uint8_t *big = calloc(1, 3 * cap);
        assert_non_null(big);
        for (int i = 0; i < 3; i++) {
                assert_int_equal(outring_append(r, OUTRING_STDERR, big, cap - 7), 0);
                assert_true(outring_mem(r) <= foot);
        }
        assert_int_equal(outring_mem(r), foot);
        assert_int_equal(outring_end(r) - outring_start(r), cap);
        assert_int_equal(outring_capacity(r), cap);
        free(big);
        outring_free(r);
}

/* ---- randomized model ---------------------------------------------------------- */

static uint64_t rng = 88172645463325252ULL;
static uint64_t rnd(uint64_t n) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return n ? rng % n : 0;
}

/* The model keeps every byte ever written and its stream; the ring must
 * return exactly the newest @cap of them, and gaps for the rest. */
static void model_run(size_t cap, size_t total_max) {
        uint8_t *hist = malloc(total_max), *hstream = malloc(total_max);
        uint8_t *out = malloc(cap + 1), *ostream = malloc(cap + 1), *in = malloc(3 * cap + 1);
        assert_non_null(hist);
        assert_non_null(hstream);
        assert_non_null(out);
        assert_non_null(ostream);
        assert_non_null(in);
        struct outring *r;
        assert_int_equal(outring_new(cap, &r), 0);
        size_t end = 0, runs = 0;
        uint8_t last = 0;

        while (end < total_max - 3 * cap) {
                /* Mostly small writes, sometimes larger than the ring. */
                size_t n = rnd(4) == 0 ? rnd(3 * cap + 1) : rnd(cap / 4 + 2);
                uint8_t s = rnd(3) == 0 ? OUTRING_STDERR : OUTRING_STDOUT;
                for (size_t i = 0; i < n; i++)
                        in[i] = (uint8_t) rnd(256);
                assert_int_equal(outring_append(r, s, in, n), 0);
                memcpy(hist + end, in, n);
                memset(hstream + end, s, n);
                end += n;
                if (n > 0 && s != last)
                        runs++, last = s;

                size_t start = end > cap ? end - cap : 0;
                assert_int_equal(outring_end(r), end);
                assert_int_equal(outring_start(r), start);
                assert_true(outring_mem(r) <= outring_footprint(cap));

                /* Random reads: gaps below start, data matching the model. */
                for (int k = 0; k < 4; k++) {
                        uint64_t off = rnd(end + 3);
                        size_t max = rnd(3) == 0 ? 1 + rnd(cap) : SIZE_MAX;
                        struct outring_chunk c;
                        int e = outring_read(r, off, max, &c);
                        if (off > end) {
                                assert_int_equal(e, -ERANGE);
                                continue;
                        }
                        assert_int_equal(e, 0);
                        if (off < start) {
                                assert_int_equal(c.kind, OUTRING_GAP);
                                assert_int_equal(c.to, start);
                        } else if (off == end) {
                                assert_int_equal(c.kind, OUTRING_NONE);
                        } else {
                                assert_int_equal(c.kind, OUTRING_DATA);
                                assert_true(c.len >= 1 && c.len <= max && off + c.len <= end);
                                assert_memory_equal(c.data, hist + off, c.len);
                                for (size_t i = 0; i < c.len; i++)
                                        assert_int_equal(hstream[off + i], c.stream);
                        }
                }
                /* A full replay from start matches, in at most one chunk per
                 * stream run plus one for the wrap. */
                if (rnd(8) == 0 && end > start) {
                        size_t chunks = drain(r, start, SIZE_MAX, out, ostream);
                        assert_memory_equal(out, hist + start, end - start);
                        assert_memory_equal(ostream, hstream + start, end - start);
                        size_t model_runs = 1;
                        for (size_t i = start + 1; i < end; i++)
                                model_runs += hstream[i] != hstream[i - 1];
                        assert_true(chunks <= model_runs + 1);
                }
        }
        assert_true(runs > 2);
        outring_free(r);
        free(hist);
        free(hstream);
        free(out);
        free(ostream);
        free(in);
}

static void test_model_random(void **state) {
        static const size_t caps[] = { 1, 2, 3, 63, 64, 65, 100, 4095, 4096, 4097, 10000, 70000 };
        for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++)
                model_run(caps[i], caps[i] * 40 + 4096);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_streams_and_runs),
                cmocka_unit_test(test_wrap_and_gap),
                cmocka_unit_test(test_memory_lazy_and_bounded),
                cmocka_unit_test(test_model_random),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
