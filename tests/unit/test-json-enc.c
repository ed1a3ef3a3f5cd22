/* The Go-compatible JSON writer: hand-derived expectations for every
 * escaping rule (from Go 1.19's encodeState.string and utf8.DecodeRune),
 * plus a differential test against a slow byte-by-byte reference. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "lib/json_enc.h"

static void check_str(const char *in, size_t len, const char *want) {
        struct buf b = BUF_INIT(0);
        assert_int_equal(json_enc_string(&b, in, len), 0);
        if (buf_size(&b) != strlen(want) || memcmp(buf_head(&b), want, strlen(want)) != 0) {
                print_error("got  %.*s\nwant %s\n", (int) buf_size(&b), (const char *) buf_head(&b), want);
                fail();
        }
        buf_free(&b);
}
#define CHECK(lit, want) check_str(lit, sizeof(lit) - 1, want)

static void test_ascii_escapes(void **state) {
        CHECK("", "\"\"");
        CHECK("plain text", "\"plain text\"");
        CHECK("\"q\" \\", "\"\\\"q\\\" \\\\\"");
        CHECK("\t\n\r", "\"\\t\\n\\r\"");
        CHECK("\b\f", "\"\\u0008\\u000c\""); /* Go 1.19, not \b \f */
        CHECK("\x00\x01\x1f", "\"\\u0000\\u0001\\u001f\"");
        CHECK("<a>&amp;", "\"\\u003ca\\u003e\\u0026amp;\"");
        CHECK("\x7f/'", "\"\x7f/'\"");
        /* Every byte below 0x20. */
        for (int c = 0; c < 0x20; c++) {
                char in[1] = { (char) c }, want[16];
                if (c == '\t')
                        strcpy(want, "\"\\t\"");
                else if (c == '\n')
                        strcpy(want, "\"\\n\"");
                else if (c == '\r')
                        strcpy(want, "\"\\r\"");
                else
                        snprintf(want, sizeof want, "\"\\u00%02x\"", c);
                check_str(in, 1, want);
        }
        /* Every other ASCII byte is raw except " \ < > &. */
        for (int c = 0x20; c < 0x80; c++) {
                if (strchr("\"\\<>&", c))
                        continue;
                char in[1] = { (char) c }, want[4] = { '"', (char) c, '"', 0 };
                check_str(in, 1, want);
        }
}

static void test_utf8(void **state) {
        CHECK("h\xc3\xa9llo \xe4\xb8\x96 \xf0\x9f\x9a\x80", "\"h\xc3\xa9llo \xe4\xb8\x96 \xf0\x9f\x9a\x80\"");
        CHECK("a\xe2\x80\xa8" "b\xe2\x80\xa9" "c", "\"a\\u2028b\\u2029c\"");
        CHECK("\xe2\x80\xa7\xe2\x80\xaa", "\"\xe2\x80\xa7\xe2\x80\xaa\""); /* neighbours stay raw */
        CHECK("\xef\xbf\xbd", "\"\xef\xbf\xbd\"");                       /* a real U+FFFD is raw */
        CHECK("\xc2\x80\xdf\xbf", "\"\xc2\x80\xdf\xbf\"");
        CHECK("\xe0\xa0\x80\xef\xbf\xbf", "\"\xe0\xa0\x80\xef\xbf\xbf\"");
        CHECK("\xed\x9f\xbf\xee\x80\x80", "\"\xed\x9f\xbf\xee\x80\x80\"");
        CHECK("\xf0\x90\x80\x80\xf4\x8f\xbf\xbf", "\"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"");

        /* Invalid: one \ufffd per byte, as Go consumes them. */
        CHECK("bad\xff\xfe end\xc3", "\"bad\\ufffd\\ufffd end\\ufffd\"");
        CHECK("\x80", "\"\\ufffd\"");
        CHECK("\xc0\x80", "\"\\ufffd\\ufffd\"");                 /* overlong NUL */
        CHECK("\xc1\xbf", "\"\\ufffd\\ufffd\"");                 /* overlong */
        CHECK("\xe0\x80\x80", "\"\\ufffd\\ufffd\\ufffd\"");      /* overlong 3-byte */
        CHECK("\xe0\x9f\xbf", "\"\\ufffd\\ufffd\\ufffd\"");
        CHECK("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");      /* surrogate D800 */
        CHECK("\xed\xbf\xbf", "\"\\ufffd\\ufffd\\ufffd\"");      /* surrogate DFFF */
        CHECK("\xf0\x80\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
        CHECK("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > U+10FFFF */
        CHECK("\xf5\x80\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
        CHECK("\xe4\xb8", "\"\\ufffd\\ufffd\"");                 /* truncated */
        CHECK("\xe4\xb8x", "\"\\ufffd\\ufffdx\"");
        CHECK("\xf0\x9f\x9a", "\"\\ufffd\\ufffd\\ufffd\"");
        CHECK("\xf0\x9f\x9a\xc3\xa9", "\"\\ufffd\\ufffd\\ufffd\xc3\xa9\"");
        CHECK("\xc3\xc3\xa9", "\"\\ufffd\xc3\xa9\"");
        CHECK("\xe2\x80<", "\"\\ufffd\\ufffd\\u003c\"");
}

static void test_embedded_nul_and_length(void **state) {
        check_str("a\0b", 3, "\"a\\u0000b\"");
        check_str("abc", 0, "\"\"");
        check_str("\xe4\xb8\x96", 2, "\"\\ufffd\\ufffd\""); /* length cuts a sequence */
}

/* The vector exec_host_backslash_controls, command string only. */
static void test_vector_backslash_controls(void **state) {
        static const char in[] = "a\\b\t\n\r\x00\x01\b\f\x1f\x7f/";
        check_str(in, sizeof in - 1, "\"a\\\\b\\t\\n\\r\\u0000\\u0001\\u0008\\u000c\\u001f\x7f/\"");
}

static void check_num(int (*f)(struct buf *), const char *want) {
        struct buf b = BUF_INIT(0);
        assert_int_equal(f(&b), 0);
        assert_int_equal(buf_size(&b), strlen(want));
        assert_memory_equal(buf_head(&b), want, strlen(want));
        buf_free(&b);
}
static int i0(struct buf *b) { return json_enc_int64(b, 0); }
static int i1(struct buf *b) { return json_enc_int64(b, -1); }
static int imin(struct buf *b) { return json_enc_int64(b, INT64_MIN); }
static int imax(struct buf *b) { return json_enc_int64(b, INT64_MAX); }
static int u0(struct buf *b) { return json_enc_uint64(b, 0); }
static int umax(struct buf *b) { return json_enc_uint64(b, UINT64_MAX); }
static int u65535(struct buf *b) { return json_enc_uint64(b, 65535); }
static int bt(struct buf *b) { return json_enc_bool(b, true); }
static int bf(struct buf *b) { return json_enc_bool(b, false); }
static int nl(struct buf *b) { return json_enc_null(b); }
static int b64(struct buf *b) { return json_enc_base64(b, "hello\n", 6); }
static int b64e(struct buf *b) { return json_enc_base64(b, NULL, 0); }
static int key(struct buf *b) { return json_enc_key(b, "K<\xff", 3); }
static int cnull(struct buf *b) { return json_enc_cstr(b, NULL); }

static void test_scalars(void **state) {
        check_num(i0, "0");
        check_num(i1, "-1");
        check_num(imin, "-9223372036854775808");
        check_num(imax, "9223372036854775807");
        check_num(u0, "0");
        check_num(umax, "18446744073709551615");
        check_num(u65535, "65535");
        check_num(bt, "true");
        check_num(bf, "false");
        check_num(nl, "null");
        check_num(b64, "\"aGVsbG8K\"");
        check_num(b64e, "\"\"");
        check_num(key, "\"K\\u003c\\ufffd\":");
        check_num(cnull, "\"\"");
}

/* Slow reference: decodes each rune by brute-force range checks (the
 * table of well-formed sequences in Unicode 15, table 3-7). */
static size_t ref_seq(const uint8_t *p, size_t n) {
        static const struct {
                uint8_t lo[4], hi[4];
                size_t len;
        } forms[] = {
                { { 0xc2, 0x80 }, { 0xdf, 0xbf }, 2 },
                { { 0xe0, 0xa0, 0x80 }, { 0xe0, 0xbf, 0xbf }, 3 },
                { { 0xe1, 0x80, 0x80 }, { 0xec, 0xbf, 0xbf }, 3 },
                { { 0xed, 0x80, 0x80 }, { 0xed, 0x9f, 0xbf }, 3 },
                { { 0xee, 0x80, 0x80 }, { 0xef, 0xbf, 0xbf }, 3 },
                { { 0xf0, 0x90, 0x80, 0x80 }, { 0xf0, 0xbf, 0xbf, 0xbf }, 4 },
                { { 0xf1, 0x80, 0x80, 0x80 }, { 0xf3, 0xbf, 0xbf, 0xbf }, 4 },
                { { 0xf4, 0x80, 0x80, 0x80 }, { 0xf4, 0x8f, 0xbf, 0xbf }, 4 },
        };
        for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
                if (n < forms[f].len)
                        continue;
                bool ok = true;
                for (size_t i = 0; i < forms[f].len; i++)
                        ok = ok && p[i] >= forms[f].lo[i] && p[i] <= forms[f].hi[i];
                if (ok)
                        return forms[f].len;
        }
        return 0;
}

static void ref_string(const uint8_t *s, size_t len, struct buf *b) {
        char t[8];
        assert_int_equal(buf_append_byte(b, '"'), 0);
        for (size_t i = 0; i < len;) {
                uint8_t c = s[i];
                if (c == '"' || c == '\\') {
                        t[0] = '\\', t[1] = (char) c;
                        assert_int_equal(buf_append(b, t, 2), 0);
                } else if (c == '\n')
                        assert_int_equal(buf_append_str(b, "\\n"), 0);
                else if (c == '\r')
                        assert_int_equal(buf_append_str(b, "\\r"), 0);
                else if (c == '\t')
                        assert_int_equal(buf_append_str(b, "\\t"), 0);
                else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
                        snprintf(t, sizeof t, "\\u%04x", c);
                        assert_int_equal(buf_append_str(b, t), 0);
                } else if (c < 0x80)
                        assert_int_equal(buf_append_byte(b, c), 0);
                else {
                        size_t n = ref_seq(s + i, len - i);
                        if (n == 0) {
                                assert_int_equal(buf_append_str(b, "\\ufffd"), 0);
                                i++;
                        } else if (n == 3 && c == 0xe2 && s[i + 1] == 0x80 && (s[i + 2] == 0xa8 || s[i + 2] == 0xa9)) {
                                assert_int_equal(buf_append_str(b, s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029"), 0);
                                i += 3;
                        } else {
                                assert_int_equal(buf_append(b, s + i, n), 0);
                                i += n;
                        }
                        continue;
                }
                i++;
        }
        assert_int_equal(buf_append_byte(b, '"'), 0);
}

static void test_differential_random(void **state) {
        /* Bytes biased towards the interesting ones. */
        static const uint8_t pool[] = { 'a', 'Z', ' ', '"', '\\', '<', '>', '&', '\n', '\t', 0, 0x1f, 0x7f,
                                        0x80, 0xbf, 0xc2, 0xc3, 0xa9, 0xe0, 0xa0, 0xe2, 0x80, 0xa8, 0xed,
                                        0x9f, 0xf0, 0x90, 0xf4, 0x8f, 0xf5, 0xff };
        unsigned seed = 42;
        for (int iter = 0; iter < 20000; iter++) {
                uint8_t s[24];
                seed = seed * 1103515245u + 12345u;
                size_t len = (seed >> 16) % sizeof s;
                for (size_t i = 0; i < len; i++) {
                        seed = seed * 1103515245u + 12345u;
                        unsigned x = seed >> 16;
                        s[i] = (x & 0x100) ? (uint8_t) x : pool[x % sizeof pool];
                }
                struct buf got = BUF_INIT(0), want = BUF_INIT(0);
                assert_int_equal(json_enc_string(&got, (const char *) s, len), 0);
                ref_string(s, len, &want);
                assert_int_equal(buf_size(&got), buf_size(&want));
                assert_memory_equal(buf_head(&got), buf_head(&want), buf_size(&want));
                buf_free(&got);
                buf_free(&want);
        }
}

static void test_large_fast_path(void **state) {
        size_t n = 1 << 20;
        char *s = malloc(n);
        assert_non_null(s);
        for (size_t i = 0; i < n; i++)
                s[i] = (char) ('a' + i % 26);
        s[n / 2] = '<';
        struct buf b = BUF_INIT(0);
        assert_int_equal(json_enc_string(&b, s, n), 0);
        assert_int_equal(buf_size(&b), n + 2 + 5);
        assert_memory_equal(buf_head(&b) + 1, s, n / 2);
        assert_memory_equal(buf_head(&b) + 1 + n / 2, "\\u003c", 6);
        buf_free(&b);
        free(s);
}

static void test_cap_errors(void **state) {
        struct buf b = BUF_INIT(4);
        assert_int_equal(json_enc_string(&b, "hello", 5), -ENOBUFS);
        buf_free(&b);
        b = BUF_INIT(4);
        assert_int_equal(json_enc_uint64(&b, 12345), -ENOBUFS);
        assert_int_equal(buf_size(&b), 0);
        buf_free(&b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ascii_escapes),
                cmocka_unit_test(test_utf8),
                cmocka_unit_test(test_embedded_nul_and_length),
                cmocka_unit_test(test_vector_backslash_controls),
                cmocka_unit_test(test_scalars),
                cmocka_unit_test(test_differential_random),
                cmocka_unit_test(test_large_fast_path),
                cmocka_unit_test(test_cap_errors),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
