/* wfparse: the streamed WriteFile request gives the verdict, path, mode and
 * content bytes of the buffered decoder (vsock_write_file_request_decode)
 * on Go-shaped requests and on hundreds of thousands of mutations of them
 * (escapes, newlines, padding, junk, truncation), fed in random pieces; and
 * every other shape is handed back before any content byte. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <vsock/msg.h>

#include "agent/files/wfparse.h"
#include "common/buf.h"
#include "lib/base64.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return rng;
}

static size_t below(size_t n) { return n ? (size_t) (rnd() % n) : 0; }

struct result {
        int verdict;            /* 0 ok, 1 refused, 2 not streamable */
        char *path;
        uint32_t mode;
        struct buf content;
        const char *why;
};

static void result_clear(struct result *r) {
        free(r->path);
        buf_free(&r->content);
        memset(r, 0, sizeof *r);
}

static void reference(const uint8_t *text, size_t len, struct result *r) {
        struct vsock_write_file_request req = {};
        memset(r, 0, sizeof *r);
        r->content = BUF_INIT(0);
        if (vsock_write_file_request_decode(text, len, &req, &r->why) < 0) {
                r->verdict = 1;
                return;
        }
        r->path = req.path ? strdup(req.path) : NULL;
        r->mode = req.mode;
        assert_int_equal(buf_append(&r->content, req.content.data ? req.content.data : (const uint8_t *) "",
                                    req.content.len),
                         0);
        vsock_write_file_request_clear(&req);
}

/* Feed @text in random pieces (or all at once with @max_piece 0). */
static void streamed(const uint8_t *text, size_t len, size_t max_piece, struct result *r) {
        struct wfparse p;
        wfparse_init(&p);
        memset(r, 0, sizeof *r);
        r->content = BUF_INIT(0);
        size_t off = 0;
        bool head_checked = false;
        while (off < len) {
                size_t n = max_piece ? 1 + below(max_piece) : len - off;
                if (n > len - off)
                        n = len - off;
                uint8_t *t;
                assert_int_equal(buf_reserve(&r->content, n / 4 * 3 + 3, &t), 0);
                size_t nout = 0;
                ssize_t used = wfparse_feed(&p, text + off, n, t, &nout);
                assert_true(used >= 0);
                assert_int_equal(buf_commit(&r->content, nout), 0);
                off += (size_t) used;
                if (p.state == WFPARSE_NOT_STREAMABLE) {
                        assert_int_equal(buf_size(&r->content), 0);
                        /* What it consumed is in the head, unchanged. */
                        assert_int_equal(buf_size(&p.head), off);
                        assert_memory_equal(buf_head(&p.head), text, off);
                        r->verdict = 2;
                        wfparse_clear(&p);
                        return;
                }
                assert_int_equal((size_t) used, n);
                if (!head_checked && p.state != WFPARSE_HEAD) {
                        /* The path is known before the content is
                         * written anywhere. */
                        head_checked = true;
                        struct vsock_write_file_request h = {};
                        const char *why = NULL;
                        if (wfparse_head(&p, &h, &why) != 0) {
                                r->verdict = 1;
                                r->why = why;
                                wfparse_clear(&p);
                                return;
                        }
                        vsock_write_file_request_clear(&h);
                }
        }
        if (p.state == WFPARSE_HEAD) {
                /* Cut short inside the head: not streamed. */
                r->verdict = 2;
                wfparse_clear(&p);
                return;
        }
        struct vsock_write_file_request req = {};
        int f = wfparse_finish(&p, &req, &r->why);
        assert_true(f >= 0);
        if (f > 0) {
                r->verdict = 1;
        } else {
                r->path = req.path ? strdup(req.path) : NULL;
                r->mode = req.mode;
                assert_int_equal(req.content.len, 0);
                vsock_write_file_request_clear(&req);
        }
        wfparse_clear(&p);
}

/* Same verdict, and on success the same request. Returns the streamed
 * verdict. */
static int check(const uint8_t *text, size_t len) {
        struct result a, b;
        reference(text, len, &a);
        size_t pieces[] = { 0, 1, 7, 4096 };
        int verdict = -1;
        for (size_t i = 0; i < sizeof pieces / sizeof *pieces; i++) {
                streamed(text, len, pieces[i], &b);
                if (b.verdict != 2) {
                        if (a.verdict != b.verdict)
                                fail_msg("verdicts differ (buffered %d: %s, streamed %d: %s) on %zu bytes: %.*s",
                                         a.verdict, a.why ? a.why : "-", b.verdict, b.why ? b.why : "-", len,
                                         (int) (len < 300 ? len : 300), (const char *) text);
                        if (a.verdict == 0) {
                                assert_string_equal(a.path, b.path);
                                assert_int_equal(a.mode, b.mode);
                                assert_int_equal(buf_size(&a.content), buf_size(&b.content));
                                assert_memory_equal(buf_head(&a.content), buf_head(&b.content),
                                                    buf_size(&a.content));
                        }
                }
                if (verdict >= 0 && (verdict == 2) != (b.verdict == 2))
                        fail_msg("streamable in some pieces and not in others");
                verdict = b.verdict;
                result_clear(&b);
        }
        result_clear(&a);
        return verdict;
}

static int check_str(const char *s) { return check((const uint8_t *) s, strlen(s)); }

/* A request as Go writes it. */
static char *go_request(const char *path_json, const uint8_t *data, size_t n, const char *tail) {
        struct buf b = BUF_INIT(0);
        assert_int_equal(buf_append_str(&b, "{\"path\":"), 0);
        assert_int_equal(buf_append_str(&b, path_json), 0);
        assert_int_equal(buf_append_str(&b, ",\"content\":\""), 0);
        assert_int_equal(base64_encode_append(&b, data, n), 0);
        assert_int_equal(buf_append_str(&b, "\""), 0);
        assert_int_equal(buf_append_str(&b, tail), 0);
        assert_int_equal(buf_append_byte(&b, 0), 0);
        uint8_t *out;
        size_t len;
        assert_int_equal(buf_steal(&b, &out, &len), 0);
        return (char *) out;
}

static void test_go_shaped(void **state) {
        (void) state;
        static const char *const paths[] = { "\"/tmp/x\"", "\"/a \\\"b\\\" \\\\ c\\n\"", "\"/\\u00e9t\\u00e9/\\ud83d\\ude00\"",
                                             "\"/p\\u0000x\"", "\"relative\"", "\"/tmp/\\u002fx\"" };
        static const char *const tails[] = { ",\"mode\":420}", "}", " , \"mode\" : 2147484141 } ", ",\"mode\":0}",
                                             ",\"mode\":\"x\"}", ",\"mode\":1.5}", ",\"x\":[1,{\"y\":null}]}",
                                             ",\"mode\":420} x", ",\"mode\":420", ",\"mode\":4294967296}" };
        uint8_t data[3000];
        for (size_t i = 0; i < sizeof data; i++)
                data[i] = (uint8_t) rnd();
        for (size_t pi = 0; pi < sizeof paths / sizeof *paths; pi++)
                for (size_t ti = 0; ti < sizeof tails / sizeof *tails; ti++)
                        for (size_t n = 0; n < 40; n += 1 + n / 4) {
                                char *req = go_request(paths[pi], data, n * 37 % sizeof data, tails[ti]);
                                int v = check_str(req);
                                assert_int_not_equal(v, 2); /* the Go shape streams */
                                free(req);
                        }
        /* Whitespace anywhere in the head still streams. */
        assert_int_equal(check_str(" \n{ \"path\" :\t\"/x\" ,\r\n \"content\" : \"QUJD\" , \"mode\" : 384 }"), 0);
}

static void test_content_escapes(void **state) {
        (void) state;
        /* Escapes that unescape to base64 or newlines are fine, as in Go. */
        assert_int_equal(check_str("{\"path\":\"/x\",\"content\":\"QU\\u004aD\\/\\/\\/\\/\\n\\r\",\"mode\":1}"), 0);
        assert_int_equal(check_str("{\"path\":\"/x\",\"content\":\"QUJ\\nD\\r\\n\\u000a\"}"), 0);
        assert_int_equal(check_str("{\"path\":\"/x\",\"content\":\"QQ=\\n=\\n\"}"), 0);
        /* Escapes that do not: refused by both. */
        static const char *const bad[] = { "QUJD\\t", "QUJD\\\"", "QUJD\\\\", "QUJD\\b", "QUJD\\f", "QUJD\\u0000",
                                           "QUJD\\u00e9", "QUJD\\ud83d\\ude00", "QUJD\\x", "QUJD\\u12", "QUJD\\u12G4",
                                           "QUJD\n", "QUJD\x01", "QUJD\xc3\xa9", "QUJD\xff", "QUJ", "QU=D", "QQ==QQ==",
                                           "QQ==x", "Q===", "====", "QUJD=", "QUJD-", "QUJD QUJD" };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                char *s;
                assert_true(asprintf(&s, "{\"path\":\"/x\",\"content\":\"%s\"}", bad[i]) > 0);
                assert_int_equal(check_str(s), 1);
                free(s);
        }
        /* Cut short anywhere: refused (or not streamed, inside the head). */
        const char *full = "{\"path\":\"/x\",\"content\":\"QUJDRA==\",\"mode\":420}";
        for (size_t n = 0; n < strlen(full); n++)
                assert_int_not_equal(check((const uint8_t *) full, n), 0);
}

static void test_other_shapes(void **state) {
        (void) state;
        static const char *const shapes[] = {
                "{\"content\":\"QUJD\",\"path\":\"/x\"}",
                "{\"mode\":420,\"path\":\"/x\",\"content\":\"QUJD\"}",
                "{\"p\\u0061th\":\"/x\",\"content\":\"QUJD\"}",
                "{\"path\":\"/x\",\"content\":null}",
                "{\"path\":\"/x\",\"content\":[65]}",
                "{\"path\":\"/x\",\"mode\":1,\"content\":\"QUJD\"}",
                "\xef\xbb\xbf{\"path\":\"/x\",\"content\":\"QUJD\"}",
                "[]",
                "",
                "{\"path\":1,\"content\":\"QUJD\"}",
        };
        for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
                struct result b;
                streamed((const uint8_t *) shapes[i], strlen(shapes[i]), 0, &b);
                if (b.verdict != 2)
                        fail_msg("streamed: %s", shapes[i]);
                result_clear(&b);
        }
        /* A head longer than the bound is not streamed either. */
        size_t n = WFPARSE_HEAD_MAX + 100;
        char *long_path = malloc(n + 64);
        assert_non_null(long_path);
        int k = sprintf(long_path, "{\"path\":\"/");
        memset(long_path + k, 'a', n);
        strcpy(long_path + k + n, "\",\"content\":\"QUJD\"}");
        struct result b;
        streamed((const uint8_t *) long_path, strlen(long_path), 0, &b);
        assert_int_equal(b.verdict, 2);
        result_clear(&b);
        free(long_path);
}

/* A repeated member after the content: the documented difference. */
static void test_duplicates(void **state) {
        (void) state;
        static const char *const dups[] = {
                "{\"path\":\"/x\",\"content\":\"QUJD\",\"content\":\"\"}",
                "{\"path\":\"/x\",\"content\":\"QUJD\",\"path\":\"/y\"}",
                "{\"path\":\"/x\",\"content\":\"QUJD\",\"mode\":1,\"mode\":2}",
                /* Go matches keys case-insensitively: the same field. */
                "{\"path\":\"/x\",\"content\":\"QUJD\",\"Content\":\"\"}",
                "{\"path\":\"/x\",\"content\":\"QUJD\",\"PATH\":\"/y\"}",
        };
        for (size_t i = 0; i < sizeof dups / sizeof *dups; i++) {
                struct result a, b;
                reference((const uint8_t *) dups[i], strlen(dups[i]), &a);
                streamed((const uint8_t *) dups[i], strlen(dups[i]), 3, &b);
                assert_int_equal(a.verdict, 0);
                assert_int_equal(b.verdict, 1);
                assert_string_equal(b.why, "duplicate key in JSON object");
                result_clear(&a);
                result_clear(&b);
        }
}

static void test_tail_bound(void **state) {
        (void) state;
        struct buf t = BUF_INIT(0);
        assert_int_equal(buf_append_str(&t, "{\"path\":\"/x\",\"content\":\"QUJD\",\"pad\":\""), 0);
        for (size_t i = 0; i < WFPARSE_TAIL_MAX; i++)
                assert_int_equal(buf_append_byte(&t, 'a'), 0);
        assert_int_equal(buf_append_str(&t, "\"}"), 0);
        struct result b;
        streamed(buf_head(&t), buf_size(&t), 5000, &b);
        assert_int_equal(b.verdict, 1);
        assert_string_equal(b.why, "JSON after the content too long");
        result_clear(&b);
        buf_free(&t);
}

/* Random edits of Go-shaped requests, in and around the content. */
static void test_mutations(void **state) {
        (void) state;
        static const char *const inserts[] = { "\\n",    "\\r\\n", "\\/",  "\\u0041", "\\u003d", "=",   "==",
                                               "\\",     "\"",     "\n",    "\\t",     "\\u00",   "\xc3", "-",
                                               "\\u000A", "\\u000d", " ",    "A",       "AB",      "ABC", "\\\\" };
        uint8_t data[600];
        int n_ok = 0, n_bad = 0;
        for (int iter = 0; iter < 40000; iter++) {
                for (size_t i = 0; i < sizeof data; i++)
                        data[i] = (uint8_t) rnd();
                char *req = go_request("\"/tmp/m\"", data, below(sizeof data), ",\"mode\":420}");
                size_t len = strlen(req);
                size_t start = strlen("{\"path\":\"/tmp/m\",\"content\":\"");
                size_t end = len - strlen("\",\"mode\":420}");
                struct buf m = BUF_INIT(0);
                int edits = 1 + (int) below(3);
                assert_int_equal(buf_append(&m, req, len), 0);
                for (int e = 0; e < edits; e++) {
                        size_t cur = buf_size(&m);
                        /* The content's end moves with the edits (it may
                         * even move before its start: deletions). */
                        size_t cend = end + cur - len;
                        size_t at = start + (cend >= start ? below(cend - start + 1) : 0);
                        if (at > cur)
                                at = cur;
                        struct buf next = BUF_INIT(0);
                        assert_int_equal(buf_append(&next, buf_head(&m), at), 0);
                        switch (below(3)) {
                        case 0: /* insert */
                                assert_int_equal(buf_append_str(&next, inserts[below(sizeof inserts / sizeof *inserts)]), 0);
                                assert_int_equal(buf_append(&next, buf_head(&m) + at, cur - at), 0);
                                break;
                        case 1: /* delete one */
                                if (at < cur)
                                        assert_int_equal(buf_append(&next, buf_head(&m) + at + 1, cur - at - 1), 0);
                                break;
                        default: /* replace one with any byte */
                                assert_int_equal(buf_append_byte(&next, (uint8_t) rnd()), 0);
                                if (at < cur)
                                        assert_int_equal(buf_append(&next, buf_head(&m) + at + 1, cur - at - 1), 0);
                                break;
                        }
                        buf_free(&m);
                        m = next;
                }
                int v = check(buf_head(&m), buf_size(&m));
                n_ok += v == 0;
                n_bad += v == 1;
                buf_free(&m);
                free(req);
        }
        print_message("mutations: %d accepted, %d refused (both decoders agreeing)\n", n_ok, n_bad);
        assert_true(n_ok > 1000 && n_bad > 1000);
}

int main(void) {
        const char *seed = getenv("WFPARSE_SEED");
        if (seed)
                rng = strtoull(seed, NULL, 0) | 1;
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_go_shaped),      cmocka_unit_test(test_content_escapes),
                cmocka_unit_test(test_other_shapes),   cmocka_unit_test(test_duplicates),
                cmocka_unit_test(test_tail_bound),     cmocka_unit_test(test_mutations),
        };
        return cmocka_run_group_tests_name("wfparse", tests, NULL, NULL);
}
