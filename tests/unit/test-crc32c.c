/* CRC-32C: RFC 3720 B.4 vectors through every implementation this CPU
 * runs, a long pattern whose value came from a bitwise reference (Python),
 * and the implementations against each other on random data cut into
 * random pieces at random alignments (the interleaved path's block
 * boundaries included); the checksum.h front end over both algorithms. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/checksum.h"
#include "common/crc32c.h"

static const enum crc32c_impl impls[] = { CRC32C_IMPL_AUTO, CRC32C_IMPL_PORTABLE, CRC32C_IMPL_SSE42 };

static uint32_t crc_of(enum crc32c_impl impl, const void *data, size_t n, size_t step) {
        struct crc32c c;
        assert_int_equal(crc32c_init_impl(&c, impl), 0);
        const uint8_t *p = data;
        for (size_t off = 0; off < n; off += step)
                crc32c_update(&c, p + off, n - off < step ? n - off : step);
        return crc32c_value(&c);
}

/* Every supported implementation, whole and in pieces, gives @want. */
static void check_all(const void *data, size_t n, uint32_t want) {
        for (size_t i = 0; i < sizeof impls / sizeof impls[0]; i++) {
                if (!crc32c_impl_supported(impls[i]))
                        continue;
                assert_int_equal(crc_of(impls[i], data, n, n ? n : 1), want);
                assert_int_equal(crc_of(impls[i], data, n, 1), want);
                assert_int_equal(crc_of(impls[i], data, n, 13), want);
        }
        assert_int_equal(crc32c(data, n), want);
}

static void test_rfc3720_vectors(void **state) {
        uint8_t b[48];
        memset(b, 0, 32);
        check_all(b, 32, 0x8a9136aa);
        memset(b, 0xff, 32);
        check_all(b, 32, 0x62a8ab43);
        for (unsigned i = 0; i < 32; i++)
                b[i] = (uint8_t) i;
        check_all(b, 32, 0x46dd794e);
        for (unsigned i = 0; i < 32; i++)
                b[i] = (uint8_t) (31 - i);
        check_all(b, 32, 0x113fdb5c);
        /* An iSCSI Read (10) command PDU. */
        static const uint8_t pdu[48] = {
                0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
                0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        };
        check_all(pdu, sizeof pdu, 0xd9963a56);
        check_all("123456789", 9, 0xe3069283);
        check_all("", 0, 0);
}

static void test_hex(void **state) {
        char hex[CRC32C_HEX_SIZE];
        crc32c_to_hex(0xe3069283, hex);
        assert_string_equal(hex, "e3069283");
        crc32c_to_hex(0x0000000a, hex);
        assert_string_equal(hex, "0000000a");
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next_rand(void) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return rng;
}

/* A 1 MB pattern (long enough for many 3 x 8 KiB rounds) with a known
 * value, then random data in random pieces: every implementation and the
 * one-shot agree. */
static void test_differential_random_splits(void **state) {
        size_t n = 1000003;
        uint8_t *d = malloc(n + 8);
        assert_non_null(d);
        for (size_t i = 0; i < n; i++)
                d[i] = (uint8_t) (i * 7 + (i >> 8));
        check_all(d, n, 0xab948df3);

        for (size_t i = 0; i < n + 8; i++)
                d[i] = (uint8_t) next_rand();
        bool hw = crc32c_impl_supported(CRC32C_IMPL_SSE42);
        if (!hw)
                print_message("no SSE4.2 on this CPU: portable against the one-shot only\n");
        /* Lengths right at the interleaved blocks' edges, then random ones. */
        static const size_t edges[] = { 767, 768, 769, 775, 776, 24575, 24576, 24577, 24576 + 768, 49152 + 7 };
        for (int round = 0; round < 300; round++) {
                size_t ne = sizeof edges / sizeof edges[0];
                size_t len = round < (int) ne ? edges[round] : next_rand() % (round < 150 ? 3000 : n);
                size_t start = next_rand() % 8; /* alignment */
                struct crc32c a, b;
                assert_int_equal(crc32c_init_impl(&a, CRC32C_IMPL_PORTABLE), 0);
                if (hw)
                        assert_int_equal(crc32c_init_impl(&b, CRC32C_IMPL_SSE42), 0);
                size_t off = 0;
                while (off < len) {
                        size_t k = round < (int) ne ? len : next_rand() % (next_rand() % 2 ? 70 : 80000);
                        if (k > len - off)
                                k = len - off;
                        crc32c_update(&a, d + start + off, k); /* k == 0 included */
                        if (hw)
                                crc32c_update(&b, d + start + off, k);
                        off += k;
                }
                uint32_t one = crc32c(d + start, len);
                assert_int_equal(crc32c_value(&a), one);
                if (hw)
                        assert_int_equal(crc32c_value(&b), one);
        }
        free(d);
}

static void test_impl_selection(void **state) {
        struct crc32c c;
        const char *name = crc32c_impl_name();
        if (crc32c_impl_supported(CRC32C_IMPL_SSE42))
                assert_string_equal(name, "sse4.2");
        else {
                assert_string_equal(name, "portable");
                assert_int_equal(crc32c_init_impl(&c, CRC32C_IMPL_SSE42), -EOPNOTSUPP);
        }
        assert_int_equal(crc32c_init_impl(&c, (enum crc32c_impl) 42), -EINVAL);
        crc32c_init(&c);
        crc32c_update(&c, NULL, 0);
        crc32c_update(&c, "1234", 4);
        /* A value mid-stream leaves the context going on; a copy too. */
        assert_int_equal(crc32c_value(&c), crc32c("1234", 4));
        struct crc32c t = c;
        crc32c_update(&c, "56789", 5);
        crc32c_update(&t, "56789", 5);
        assert_int_equal(crc32c_value(&c), 0xe3069283);
        assert_int_equal(crc32c_value(&t), 0xe3069283);
}

static void test_checksum_front_end(void **state) {
        struct checksum c;
        char hex[CHECKSUM_HEX_MAX];
        checksum_init(&c, CHECKSUM_CRC32C);
        checksum_update(&c, "1234", 4);
        checksum_update(&c, NULL, 0);
        checksum_update(&c, "56789", 5);
        checksum_final_hex(&c, hex);
        assert_string_equal(hex, "e3069283");
        checksum_init(&c, CHECKSUM_SHA256);
        checksum_update(&c, "abc", 3);
        checksum_final_hex(&c, hex);
        assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

        enum checksum_alg alg = CHECKSUM_SHA256;
        assert_int_equal(checksum_from_name("crc32c", &alg), 0);
        assert_int_equal(alg, CHECKSUM_CRC32C);
        assert_string_equal(checksum_name(alg), "crc32c");
        assert_int_equal(checksum_from_name("sha256", &alg), 0);
        assert_int_equal(alg, CHECKSUM_SHA256);
        assert_string_equal(checksum_name(alg), "sha256");
        /* Unknown names leave the answer alone. */
        assert_int_equal(checksum_from_name("CRC32C", &alg), -ENOENT);
        assert_int_equal(checksum_from_name("crc32", &alg), -ENOENT);
        assert_int_equal(checksum_from_name("", &alg), -ENOENT);
        assert_int_equal(checksum_from_name(NULL, &alg), -ENOENT);
        assert_int_equal(alg, CHECKSUM_SHA256);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rfc3720_vectors),
                cmocka_unit_test(test_hex),
                cmocka_unit_test(test_differential_random_splits),
                cmocka_unit_test(test_impl_selection),
                cmocka_unit_test(test_checksum_front_end),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
