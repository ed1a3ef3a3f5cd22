/* SHA-256: FIPS 180-4 vectors through every implementation this CPU runs,
 * block-boundary lengths, and the implementations against each other on
 * random data cut into random pieces. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/sha256.h"

static const enum sha256_impl impls[] = { SHA256_IMPL_AUTO, SHA256_IMPL_PORTABLE, SHA256_IMPL_SHANI };

static void hex_of(enum sha256_impl impl, const void *data, size_t n, size_t step, char out[SHA256_HEX_SIZE]) {
        struct sha256 s;
        uint8_t d[SHA256_DIGEST_SIZE];
        assert_int_equal(sha256_init_impl(&s, impl), 0);
        const uint8_t *p = data;
        for (size_t off = 0; off < n; off += step)
                sha256_update(&s, p + off, n - off < step ? n - off : step);
        sha256_final(&s, d);
        sha256_to_hex(d, out);
}

/* Every supported implementation, whole and byte by byte, gives @want. */
static void check_all(const void *data, size_t n, const char *want) {
        char got[SHA256_HEX_SIZE];
        for (size_t i = 0; i < sizeof impls / sizeof impls[0]; i++) {
                if (!sha256_impl_supported(impls[i]))
                        continue;
                hex_of(impls[i], data, n, n ? n : 1, got);
                assert_string_equal(got, want);
                hex_of(impls[i], data, n, 1, got);
                assert_string_equal(got, want);
                hex_of(impls[i], data, n, 63, got);
                assert_string_equal(got, want);
        }
}

static void test_fips_vectors(void **state) {
        check_all("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        check_all("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        /* 448 bits: the padding needs a second block. */
        const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        check_all(m448, strlen(m448), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
        const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
                           "mnopqrstnopqrstu";
        check_all(m896, strlen(m896), "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void test_million_a(void **state) {
        size_t n = 1000000;
        char *a = malloc(n);
        assert_non_null(a);
        memset(a, 'a', n);
        char got[SHA256_HEX_SIZE];
        const char *want = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
        for (size_t i = 0; i < sizeof impls / sizeof impls[0]; i++) {
                if (!sha256_impl_supported(impls[i]))
                        continue;
                hex_of(impls[i], a, n, n, got);
                assert_string_equal(got, want);
                hex_of(impls[i], a, n, 1000, got); /* FIPS: 1000 updates of 1000 */
                assert_string_equal(got, want);
                hex_of(impls[i], a, n, 4097, got);
                assert_string_equal(got, want);
        }
        uint8_t d[SHA256_DIGEST_SIZE];
        sha256_digest(a, n, d);
        sha256_to_hex(d, got);
        assert_string_equal(got, want);
        free(a);
}

/* Lengths around the padding boundaries (55/56 bytes left in the last
 * block) and multi-block messages; digests from Python's hashlib. */
static void test_block_boundaries(void **state) {
        static const struct {
                size_t n;
                const char *hex;
        } v[] = {
                { 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318" },
                { 56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a" },
                { 57, "f13b2d724659eb3bf47f2dd6af1accc87b81f09f59f2b75e5c0bed6589dfe8c6" },
                { 63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34" },
                { 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb" },
                { 65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0" },
                { 119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb" },
                { 120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c" },
                { 127, "c57e9278af78fa3cab38667bef4ce29d783787a2f731d4e12200270f0c32320a" },
                { 128, "6836cf13bac400e9105071cd6af47084dfacad4e5e302c94bfed24e013afb73e" },
                { 1000, "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3" },
        };
        char a[1000];
        memset(a, 'a', sizeof a);
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
                check_all(a, v[i].n, v[i].hex);
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next_rand(void) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return rng;
}

/* A 1 MB pattern with a known digest, then random data in random pieces:
 * the portable and SHA-NI paths and the one-shot digest agree. */
static void test_differential_random_splits(void **state) {
        size_t n = 1000003;
        uint8_t *d = malloc(n);
        assert_non_null(d);
        for (size_t i = 0; i < n; i++)
                d[i] = (uint8_t) (i * 7 + (i >> 8));
        check_all(d, n, "08d14a1d67ea1ca028fa245ce8fba33a3cf5a7007aa997581e7e13fc854f5c7c");

        for (size_t i = 0; i < n; i++)
                d[i] = (uint8_t) next_rand();
        bool shani = sha256_impl_supported(SHA256_IMPL_SHANI);
        if (!shani)
                print_message("no SHA-NI on this CPU: portable against the one-shot digest only\n");
        for (int round = 0; round < 200; round++) {
                size_t len = next_rand() % (round < 100 ? 300 : n);
                struct sha256 a, b;
                assert_int_equal(sha256_init_impl(&a, SHA256_IMPL_PORTABLE), 0);
                if (shani)
                        assert_int_equal(sha256_init_impl(&b, SHA256_IMPL_SHANI), 0);
                size_t off = 0;
                while (off < len) {
                        size_t k = next_rand() % (next_rand() % 2 ? 70 : 5000);
                        if (k > len - off)
                                k = len - off;
                        sha256_update(&a, d + off, k); /* k == 0 included */
                        if (shani)
                                sha256_update(&b, d + off, k);
                        off += k;
                }
                uint8_t da[SHA256_DIGEST_SIZE], db[SHA256_DIGEST_SIZE], dc[SHA256_DIGEST_SIZE];
                sha256_final(&a, da);
                sha256_digest(d, len, dc);
                assert_memory_equal(da, dc, sizeof da);
                if (shani) {
                        sha256_final(&b, db);
                        assert_memory_equal(da, db, sizeof da);
                }
        }
        free(d);
}

static void test_impl_selection(void **state) {
        struct sha256 s;
        const char *name = sha256_impl_name();
        if (sha256_impl_supported(SHA256_IMPL_SHANI))
                assert_string_equal(name, "sha-ni");
        else {
                assert_string_equal(name, "portable");
                assert_int_equal(sha256_init_impl(&s, SHA256_IMPL_SHANI), -EOPNOTSUPP);
        }
        assert_int_equal(sha256_init_impl(&s, (enum sha256_impl) 42), -EINVAL);
        /* No bytes, no pointer needed, mid-block included. */
        uint8_t d0[SHA256_DIGEST_SIZE], d3[SHA256_DIGEST_SIZE];
        sha256_init(&s);
        sha256_update(&s, NULL, 0);
        sha256_update(&s, "abc", 3);
        sha256_update(&s, NULL, 0);
        sha256_final(&s, d0);
        sha256_digest("abc", 3, d3);
        assert_memory_equal(d0, d3, sizeof d0);
        /* A context can be copied mid-stream (it owns nothing). */
        uint8_t d1[SHA256_DIGEST_SIZE], d2[SHA256_DIGEST_SIZE];
        sha256_init(&s);
        sha256_update(&s, "ab", 2);
        struct sha256 t = s;
        sha256_update(&s, "c", 1);
        sha256_update(&t, "c", 1);
        sha256_final(&s, d1);
        sha256_final(&t, d2);
        assert_memory_equal(d1, d2, sizeof d1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fips_vectors),
                cmocka_unit_test(test_million_a),
                cmocka_unit_test(test_block_boundaries),
                cmocka_unit_test(test_differential_random_splits),
                cmocka_unit_test(test_impl_selection),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
