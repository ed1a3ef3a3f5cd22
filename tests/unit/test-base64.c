/* base64: RFC 4648 vectors, a naive reference encoder for every length
 * 0..100, and the exact strictness of Go's base64.StdEncoding.Decode. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "lib/base64.h"

static char *encode_str(const void *d, size_t n) {
        struct buf b = BUF_INIT(0);
        uint8_t *out;
        size_t len;
        assert_int_equal(base64_encode_append(&b, d, n), 0);
        assert_int_equal(buf_steal(&b, &out, &len), 0);
        assert_int_equal(len, base64_encoded_len(n));
        return (char *) out;
}

/* Decode @s; returns the length or -1 on error. */
static ssize_t decode_str(const char *s, uint8_t *out, size_t outsz) {
        size_t len = strlen(s), n = 0;
        size_t max = base64_decoded_max(len);
        assert_true(max <= outsz);
        uint8_t *tmp = malloc(max + 1); /* exact-size: ASan catches overruns */
        assert_non_null(tmp);
        int r = base64_decode(s, len, tmp, &n);
        if (r < 0) {
                assert_int_equal(r, -EINVAL);
                free(tmp);
                return -1;
        }
        assert_true(n <= max);
        memcpy(out, tmp, n);
        free(tmp);
        return (ssize_t) n;
}

static void test_rfc4648(void **state) {
        static const struct {
                const char *plain, *enc;
        } v[] = {
                { "", "" },
                { "f", "Zg==" },
                { "fo", "Zm8=" },
                { "foo", "Zm9v" },
                { "foob", "Zm9vYg==" },
                { "fooba", "Zm9vYmE=" },
                { "foobar", "Zm9vYmFy" },
        };
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
                char *e = encode_str(v[i].plain, strlen(v[i].plain));
                assert_string_equal(e, v[i].enc);
                free(e);
                uint8_t out[16];
                ssize_t n = decode_str(v[i].enc, out, sizeof out);
                assert_int_equal(n, (ssize_t) strlen(v[i].plain));
                assert_memory_equal(out, v[i].plain, (size_t) n);
        }
}

/* A deliberately naive encoder, independent of the table-driven one. */
static void ref_encode(const uint8_t *d, size_t n, char *out) {
        const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        size_t o = 0;
        for (size_t i = 0; i < n * 8; i += 6) {
                unsigned v = 0;
                for (size_t bit = i; bit < i + 6; bit++) {
                        v <<= 1;
                        if (bit < n * 8)
                                v |= (d[bit / 8] >> (7 - bit % 8)) & 1;
                }
                out[o++] = a[v];
        }
        while (o % 4)
                out[o++] = '=';
        out[o] = 0;
}

static void test_lengths_0_to_100(void **state) {
        uint8_t data[100];
        unsigned seed = 12345;
        for (size_t i = 0; i < sizeof data; i++) {
                seed = seed * 1103515245u + 12345u;
                data[i] = (uint8_t) (seed >> 16);
        }
        for (size_t n = 0; n <= 100; n++) {
                char ref[200];
                ref_encode(data, n, ref);
                char *e = encode_str(data, n);
                assert_string_equal(e, ref);
                uint8_t out[102];
                assert_int_equal(decode_str(e, out, sizeof out), (ssize_t) n);
                assert_memory_equal(out, data, n);
                free(e);
        }
}

static void test_all_byte_values(void **state) {
        uint8_t data[256 * 3];
        for (size_t i = 0; i < sizeof data; i++)
                data[i] = (uint8_t) (i * 7 + i / 256);
        char *e = encode_str(data, sizeof data);
        uint8_t *out = malloc(sizeof data);
        assert_int_equal(decode_str(e, out, sizeof data), (ssize_t) sizeof data);
        assert_memory_equal(out, data, sizeof data);
        free(out);
        free(e);
}

static void test_appends_in_place(void **state) {
        struct buf b = BUF_INIT(0);
        assert_int_equal(buf_append_str(&b, "x="), 0);
        assert_int_equal(base64_encode_append(&b, "\xfb\xff\xbf\x00\x3e\x3f", 6), 0);
        assert_int_equal(buf_size(&b), 10);
        assert_memory_equal(buf_head(&b), "x=+/+/AD4/", 10);
        buf_free(&b);

        /* A cap too small: nothing appended. */
        b = BUF_INIT(8);
        assert_int_equal(buf_append_str(&b, "abc"), 0);
        assert_int_equal(base64_encode_append(&b, "hello", 5), -ENOBUFS);
        assert_int_equal(buf_size(&b), 3);
        assert_int_equal(base64_encode_append(&b, "", 0), 0);
        assert_int_equal(buf_size(&b), 3);
        buf_free(&b);
}

static void test_decode_go_strictness(void **state) {
        uint8_t out[64];
        /* Accepted by Go's StdEncoding. */
        assert_int_equal(decode_str("QQ==", out, sizeof out), 1);
        assert_int_equal(out[0], 'A');
        assert_int_equal(decode_str("QR==", out, sizeof out), 1); /* non-zero trailing bits: not Strict() */
        assert_int_equal(out[0], 'A');
        assert_int_equal(decode_str("QUI=", out, sizeof out), 2);
        assert_int_equal(decode_str("QUJD", out, sizeof out), 3);
        assert_int_equal(decode_str("QU\nJD\r\n", out, sizeof out), 3);
        assert_int_equal(decode_str("\r\nQUJD", out, sizeof out), 3);
        assert_int_equal(decode_str("QQ=\n=", out, sizeof out), 1);
        assert_int_equal(decode_str("QQ==\n\r\n", out, sizeof out), 1);
        assert_int_equal(decode_str("Q\nQ\n=\n=\n", out, sizeof out), 1);
        assert_int_equal(decode_str("\n\n", out, sizeof out), 0);
        assert_int_equal(decode_str("QUJDRA==", out, sizeof out), 4);
        assert_memory_equal(out, "ABCD", 4);

        /* Rejected. */
        static const char *bad[] = {
                "Q",         "QQ",        "QQ=",      "QUJ",  "Q===", "====", "=QQQ", "QQ=A",
                "QQ==QQ==", "QUI=QUJD", "QQ== ",    " QQ==", "QQ\t==", "QU JD", "QUJD=", "QUJD==",
                "QQ-_",     "QQ==x",    "QU\x80\x44", "QU\0D", "QUJD\n=", "QQ=\n",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                size_t n;
                size_t len = strlen(bad[i]);
                if (i == 19)
                        len = 4; /* the embedded NUL */
                uint8_t *tmp = malloc(base64_decoded_max(len) + 1);
                assert_int_equal(base64_decode(bad[i], len, tmp, &n), -EINVAL);
                free(tmp);
        }
}

static void test_decoded_max_bounds(void **state) {
        assert_int_equal(base64_decoded_max(0), 0);
        assert_int_equal(base64_decoded_max(3), 0);
        assert_int_equal(base64_decoded_max(4), 3);
        assert_int_equal(base64_decoded_max(8), 6);
        assert_int_equal(base64_encoded_len(0), 0);
        assert_int_equal(base64_encoded_len(1), 4);
        assert_int_equal(base64_encoded_len(3), 4);
        assert_int_equal(base64_encoded_len(4), 8);
        assert_int_equal(base64_encoded_len(SIZE_MAX), SIZE_MAX);

        /* Newlines everywhere: the bound on the raw length still holds and
         * nothing is written past it (malloc'd exactly, ASan checks). */
        const char *s = "\nQ\nU\nJ\nD\nQ\nQ\n=\n=\n";
        size_t n;
        size_t max = base64_decoded_max(strlen(s));
        uint8_t *tmp = malloc(max);
        assert_int_equal(base64_decode(s, strlen(s), tmp, &n), 0);
        assert_int_equal(n, 4);
        assert_memory_equal(tmp, "ABCA", 4);
        free(tmp);
}

/* In place (dst == src) gives what a separate buffer gives, for every
 * length around the SIMD block size, with and without newlines, and
 * fails where the separate decode fails. */
static void test_decode_in_place(void **state) {
        (void) state;
        uint8_t data[700];
        for (size_t i = 0; i < sizeof data; i++)
                data[i] = (uint8_t) (i * 131 + 7);
        for (size_t n = 0; n <= sizeof data; n += n < 100 ? 1 : 37) {
                char *enc = encode_str(data, n);
                size_t elen = strlen(enc);
                for (int nl = 0; nl < 3; nl++) {
                        /* nl 1: "\r\n" every 76 characters; 2: a newline
                         * after every character of the first 40. */
                        char *text = malloc(elen * 3 + 1);
                        assert_non_null(text);
                        size_t t = 0;
                        for (size_t i = 0; i < elen; i++) {
                                text[t++] = enc[i];
                                if (nl == 1 && i % 76 == 75) {
                                        text[t++] = '\r';
                                        text[t++] = '\n';
                                } else if (nl == 2 && i < 40)
                                        text[t++] = '\n';
                        }
                        uint8_t *sep = malloc(base64_decoded_max(t) + 1);
                        size_t n_sep = 0, n_in = 0;
                        assert_int_equal(base64_decode(text, t, sep, &n_sep), 0);
                        assert_int_equal(base64_decode(text, t, (uint8_t *) text, &n_in), 0);
                        assert_int_equal(n_in, n);
                        assert_int_equal(n_sep, n);
                        assert_memory_equal(text, data, n);
                        free(sep);
                        free(text);
                }
                free(enc);
        }
        char bad[] = "QUJDRE,GSElKS0xNTk9QUVJTVFVWV1hZWg==";
        size_t n;
        assert_int_equal(base64_decode(bad, strlen(bad), (uint8_t *) bad, &n), -EINVAL);
}

/* The prefix decoder stops at the first quantum holding anything but the
 * alphabet, wherever it is relative to the SIMD blocks. */
static void test_decode_prefix(void **state) {
        (void) state;
        uint8_t data[300];
        for (size_t i = 0; i < sizeof data; i++)
                data[i] = (uint8_t) (i * 7 + 3);
        char *enc = encode_str(data, sizeof data); /* 400 characters, no padding */
        static const char stops[] = { '=', '\n', '\\', '"', '-', '\0', (char) 0xc3 };
        for (size_t pos = 0; pos <= 100; pos++)
                for (size_t k = 0; k < sizeof stops; k++) {
                        char t[401];
                        memcpy(t, enc, 400);
                        t[pos] = stops[k];
                        uint8_t out[300];
                        size_t n = 0;
                        size_t used = base64_decode_prefix(t, 400, out, &n);
                        assert_int_equal(used, pos / 4 * 4);
                        assert_int_equal(n, used / 4 * 3);
                        assert_memory_equal(out, data, n);
                }
        uint8_t out[300];
        size_t n = 0;
        assert_int_equal(base64_decode_prefix(enc, 400, out, &n), 400);
        assert_int_equal(n, 300);
        assert_memory_equal(out, data, 300);
        assert_int_equal(base64_decode_prefix(enc, 7, out, &n), 4);
        free(enc);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rfc4648),
                cmocka_unit_test(test_lengths_0_to_100),
                cmocka_unit_test(test_all_byte_values),
                cmocka_unit_test(test_appends_in_place),
                cmocka_unit_test(test_decode_go_strictness),
                cmocka_unit_test(test_decoded_max_bounds),
                cmocka_unit_test(test_decode_in_place),
                cmocka_unit_test(test_decode_prefix),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
