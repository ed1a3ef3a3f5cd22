/* The decoders' fast path for big strings (src/lib/json_bigstr.c and its
 * use in msg_decode.c): the scanner on its own, then the one property that
 * matters, that every decoder gives exactly the same result (return code,
 * error message, every decoded value) with the fast path as without it:
 * on the golden vectors with fields made large, on hand-picked corner
 * cases (duplicate keys, escapes, nesting, bad base64, big non-[]byte
 * fields) and on random mutations of big messages. Ends with a timing
 * printout of 16 MiB messages (printed, never asserted). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/buf.h"
#include "lib/base64.h"
#include "lib/json_bigstr.h"
#include "lib/msg-internal.h"
#include "vsock/error.h"
#include "vsock/msg.h"

#define DECODE_ERR VSOCK_ERR(VSOCK_E_DECODE, EINVAL)
#define DEFAULT_MIN 4096
_Static_assert(DEFAULT_MIN == MSG_BIGSTR_MIN_DEFAULT, "the decoders' default");

/* ---- helpers -------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rnd(void) {
        uint64_t x = rng_state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return rng_state = x;
}

static size_t rnd_below(size_t n) {
        return n ? (size_t) (rnd() % n) : 0;
}

static uint64_t fnv(const void *p, size_t n) {
        const uint8_t *s = p;
        uint64_t h = 0xcbf29ce484222325u;
        for (size_t i = 0; i < n; i++)
                h = (h ^ s[i]) * 0x100000001b3u;
        return h;
}

/* base64 of @n pseudo-random bytes, malloc'd and NUL-terminated. */
static char *rand_b64(size_t n, uint8_t **ret_raw) {
        uint8_t *raw = malloc(n + 1);
        assert_non_null(raw);
        for (size_t i = 0; i < n; i++)
                raw[i] = (uint8_t) rnd();
        struct buf b = BUF_INIT(0);
        assert_int_equal(base64_encode_append(&b, raw, n), 0);
        assert_int_equal(buf_append_byte(&b, 0), 0);
        char *s = strdup((const char *) buf_head(&b));
        assert_non_null(s);
        buf_free(&b);
        if (ret_raw)
                *ret_raw = raw;
        else
                free(raw);
        return s;
}

/* A printf into a malloc'd string. */
_Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wformat-nonliteral\"")
static char *fmt(const char *f, ...) {
        va_list ap;
        char *s = NULL;
        va_start(ap, f);
        assert_true(vasprintf(&s, f, ap) >= 0);
        va_end(ap);
        return s;
}
_Pragma("GCC diagnostic pop")

static void dump_str(FILE *f, const char *name, const char *s) {
        if (!s)
                fprintf(f, "%s=(null) ", name);
        else
                fprintf(f, "%s=%zu:%.24s:%016llx ", name, strlen(s), s, (unsigned long long) fnv(s, strlen(s)));
}

static void dump_bytes(FILE *f, const char *name, const struct vsock_bytes *b) {
        fprintf(f, "%s=%d:%zu:%016llx ", name, b->present, b->len, (unsigned long long) fnv(b->data, b->len));
}

static void dump_exec(FILE *f, const struct vsock_exec_request *r) {
        dump_str(f, "command", r->command);
        for (size_t i = 0; i < r->n_args; i++)
                dump_str(f, "arg", r->args[i]);
        dump_str(f, "wd", r->working_dir);
        for (size_t i = 0; i < r->n_env; i++) {
                dump_str(f, "envk", r->env[i].key);
                dump_str(f, "envv", r->env[i].value);
        }
        dump_bytes(f, "stdin", &r->stdin_data);
        dump_str(f, "user", r->user);
        fprintf(f, "rows=%u cols=%u ", r->rows, r->cols);
}

static void dump_fi(FILE *f, const struct vsock_file_info *fi) {
        dump_str(f, "name", fi->name);
        fprintf(f, "size=%lld mode=%u dir=%d ", (long long) fi->size, fi->mode, fi->is_dir);
}

#define RUN(f, label, call, T, dump, clear)                                             \
        do {                                                                            \
                T r_ = {};                                                              \
                const char *why_ = NULL;                                                \
                int rc_ = call;                                                         \
                fprintf(f, "\n" label " %d %s ", rc_, rc_ < 0 ? why_ : "-");            \
                if (rc_ == 0)                                                           \
                        dump;                                                           \
                clear;                                                                  \
        } while (0)

/* Every JSON decoder's verdict on @data, as one string. */
static char *summarize(struct msg_decode_opts *o, const void *data, size_t len) {
        char *out = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&out, &n);
        assert_non_null(f);

        RUN(f, "exec", msg_decode(MSG_SHAPE_EXEC_REQUEST, o, data, len, &r_, &why_), struct vsock_exec_request,
            dump_exec(f, &r_), vsock_exec_request_clear(&r_, true));
        RUN(f, "batch", msg_decode(MSG_SHAPE_EXEC_BATCH, o, data, len, &r_, &why_), struct vsock_exec_request,
            dump_exec(f, &r_), vsock_exec_request_clear(&r_, true));
        RUN(f, "tty", msg_decode(MSG_SHAPE_EXEC_TTY, o, data, len, &r_, &why_), struct vsock_exec_request,
            dump_exec(f, &r_), vsock_exec_request_clear(&r_, true));
        RUN(f, "resp", msg_decode(MSG_SHAPE_EXEC_RESPONSE, o, data, len, &r_, &why_), struct vsock_exec_response,
            (fprintf(f, "exit=%lld ", (long long) r_.exit_code), dump_bytes(f, "stdout", &r_.stdout_data),
             dump_bytes(f, "stderr", &r_.stderr_data), dump_str(f, "error", r_.error)),
            vsock_exec_response_clear(&r_));
        RUN(f, "pf", msg_decode(MSG_SHAPE_PORT_FORWARD_REQUEST, o, data, len, &r_, &why_), struct vsock_port_forward_request,
            (dump_str(f, "host", r_.host), fprintf(f, "port=%u", r_.port)),
            vsock_port_forward_request_clear(&r_));
        RUN(f, "ws", msg_decode(MSG_SHAPE_WINDOW_SIZE, o, data, len, &r_, &why_), struct vsock_window_size,
            fprintf(f, "rows=%u cols=%u", r_.rows, r_.cols), (void) 0);
        RUN(f, "wf", msg_decode(MSG_SHAPE_WRITE_FILE_REQUEST, o, data, len, &r_, &why_), struct vsock_write_file_request,
            (dump_str(f, "path", r_.path), dump_bytes(f, "content", &r_.content), fprintf(f, "mode=%u", r_.mode)),
            vsock_write_file_request_clear(&r_));
        /* The agent's in-place variant, on a copy (it overwrites): the same
         * verdict and fields; the content reported through the view. */
        uint8_t *copy = malloc(len ? len : 1);
        assert_non_null(copy);
        memcpy(copy, data, len);
        const uint8_t *content = NULL;
        size_t content_len = 0;
        RUN(f, "wf-inplace", msg_decode_write_file_inplace_opts(o, copy, len, &r_, &content, &content_len, &why_),
            struct vsock_write_file_request,
            (dump_str(f, "path", r_.path),
             dump_bytes(f, "content",
                        &(struct vsock_bytes) { (uint8_t *) content, content_len, r_.content.present }),
             fprintf(f, "mode=%u", r_.mode)),
            vsock_write_file_request_clear(&r_));
        free(copy);
        RUN(f, "path", msg_decode(MSG_SHAPE_PATH_REQUEST, o, data, len, &r_, &why_), struct vsock_path_request,
            dump_str(f, "path", r_.path), vsock_path_request_clear(&r_));
        RUN(f, "fi", msg_decode(MSG_SHAPE_FILE_INFO, o, data, len, &r_, &why_), struct vsock_file_info, dump_fi(f, &r_),
            vsock_file_info_clear(&r_));
        RUN(f, "fr", msg_decode(MSG_SHAPE_FILE_RESPONSE, o, data, len, &r_, &why_), struct vsock_file_response,
            (dump_bytes(f, "content", &r_.content), dump_str(f, "error", r_.error),
             ({
                     for (size_t i = 0; i < r_.n_files; i++)
                             dump_fi(f, &r_.files[i]);
             })),
            vsock_file_response_clear(&r_));
        assert_int_equal(fclose(f), 0);
        return out;
}

/* Decode @data with the fast path (values of >= @min bytes cut out) and
 * without; the summaries must be identical. Returns the number of decoders
 * that took the fast path; counts the decoders that accepted it in
 * *accepted, if given. */
static unsigned check_same_count(const void *data, size_t len, size_t min, unsigned *accepted) {
        struct msg_decode_opts slow_opts = { .bigstr_min = SIZE_MAX };
        char *slow = summarize(&slow_opts, data, len);
        assert_int_equal(slow_opts.cut_hits, 0);

        struct msg_decode_opts fast_opts = { .bigstr_min = min };
        char *fast = summarize(&fast_opts, data, len);
        unsigned hits = fast_opts.cut_hits;

        if (strcmp(slow, fast) != 0) {
                print_error("fast and slow decodes differ on input (%zu bytes): %.*s\nslow:%s\nfast:%s\n", len,
                            (int) (len < 400 ? len : 400), (const char *) data, slow, fast);
                fail();
        }
        for (const char *p = fast; accepted && (p = strstr(p, " 0 - ")); p++)
                (*accepted)++;
        free(slow);
        free(fast);
        return hits;
}

static unsigned check_same(const void *data, size_t len, size_t min) {
        return check_same_count(data, len, min, NULL);
}

static unsigned check_same_str(const char *s, size_t min) {
        return check_same(s, strlen(s), min);
}

/* The whole summary of the slow path, to assert on it. */
static char *slow_summary(const char *s) {
        struct msg_decode_opts o = { .bigstr_min = SIZE_MAX };
        return summarize(&o, s, strlen(s));
}

/* ---- the scanner ------------------------------------------------------------ */

static size_t scan(const char *s, size_t min, struct json_bigstr_scan *ret) {
        return json_bigstr_scan(s, strlen(s), min, ret);
}

static void assert_big(const char *text, const struct json_bigstr *b, const char *key, const char *val) {
        assert_int_equal(b->key_len, strlen(key));
        assert_memory_equal(text + b->key_off, key, b->key_len);
        assert_int_equal(b->len, strlen(val));
        assert_memory_equal(text + b->off, val, b->len);
}

static void test_scan_basic(void **state) {
        struct json_bigstr_scan s;
        const char *t;

        t = " {\"a\" : \"xyz\", \"b\":1,\"c\":[\"long1\"],\"d\":{\"e\":\"long2\"},\"f\":\"\",\"g\":\"long3\"}";
        assert_int_equal(scan(t, 0, &s), 3);
        assert_int_equal(s.n_members, 6);
        assert_big(t, &s.big[0], "a", "xyz");
        assert_big(t, &s.big[1], "f", "");
        assert_big(t, &s.big[2], "g", "long3");
        assert_int_equal(scan(t, 4, &s), 1);
        assert_big(t, &s.big[0], "g", "long3");
        assert_int_equal(scan(t, 6, &s), 0);
        assert_int_equal(s.n_members, 6);

        /* Escapes: in a value or in its key, the value stays; the scan
         * still finds where each string ends. */
        t = "{\"a\":\"x\\\"y\",\"b\\u0062\":\"plain\",\"c\":\"\\\\\",\"d\":\"ok\",\"e\":\"\\u0041\"}";
        assert_int_equal(scan(t, 0, &s), 1);
        assert_big(t, &s.big[0], "d", "ok");
        assert_int_equal(s.n_members, 5);

        /* Not printable ASCII: left to jansson. */
        assert_int_equal(scan("{\"a\":\"\xc3\xa9\"}", 0, &s), 0);
        assert_int_equal(scan("{\"a\":\"x\ty\"}", 0, &s), 0);
        assert_int_equal(scan("{\"a\":\"x\x7fy\"}", 0, &s), 0);
        assert_int_equal(scan("{\"\xc3\xa9\":\"v\"}", 0, &s), 1); /* a UTF-8 key is fine */

        /* Only member values of a top-level object. */
        assert_int_equal(scan("[\"a\",\"b\"]", 0, &s), 0);
        assert_int_equal(scan("\"abc\"", 0, &s), 0);
        assert_int_equal(scan("", 0, &s), 0);
        assert_int_equal(scan("   ", 0, &s), 0);
        assert_int_equal(scan("{\"a\" \"b\"}", 0, &s), 0);
        assert_int_equal(scan("{\"a\":1 \"b\"}", 0, &s), 0);
        assert_int_equal(scan("{\"a\":\"b\" \"c\"}", 0, &s), 1);
        assert_int_equal(scan("{\"a\":{\"b\":\"c\"}}", 0, &s), 0);
        assert_int_equal(scan("{\"a\":[],\"b\":\"c\"}", 0, &s), 1);
        assert_int_equal(s.n_members, 2);

        /* Cut short, or an unterminated string: nothing. */
        assert_int_equal(scan("{\"a\":\"b\"", 0, &s), 0);
        assert_int_equal(scan("{\"a\":\"b\",\"c", 0, &s), 0);
        assert_int_equal(scan("{\"a\":\"b\\\"}", 0, &s), 0);
        assert_int_equal(scan("{\"a\":\"b\\", 0, &s), 0);
        /* Trailing bytes after the object are not looked at. */
        assert_int_equal(scan("{\"a\":\"b\"} \"", 0, &s), 1);

        /* The cap. */
        char big[512] = "{";
        for (int i = 0; i < JSON_BIGSTR_MAX + 3; i++)
                snprintf(big + strlen(big), sizeof(big) - strlen(big), "%s\"k%d\":\"v%d\"", i ? "," : "", i, i);
        strcat(big, "}");
        assert_int_equal(scan(big, 0, &s), JSON_BIGSTR_MAX);
        assert_int_equal(s.n_members, JSON_BIGSTR_MAX + 3);
}

/* Every byte value at every place of a string long enough for the word
 * loop and its tail: accepted exactly when jansson's value would be the
 * raw bytes. */
static void test_scan_every_byte(void **state) {
        enum { L = 150 };
        char t[L + 16];
        struct json_bigstr_scan s;

        for (unsigned c = 1; c < 256; c++) {
                if (c == '"')
                        continue;
                for (size_t pos = 0; pos < L; pos++) {
                        memcpy(t, "{\"k\":\"", 6);
                        memset(t + 6, 'A', L);
                        t[6 + pos] = (char) c;
                        memcpy(t + 6 + L, "\"}", 3);
                        bool plain = c >= 0x20 && c <= 0x7e && c != '\\';
                        assert_int_equal(json_bigstr_scan(t, 6 + L + 2, 1, &s), plain ? 1 : 0);
                }
        }
}

static void test_reduce(void **state) {
        const char *t = "{\"a\":\"xyz\",\"b\":[\"q\"],\"c\":\"long\"} ";
        struct json_bigstr_scan s;
        char *r = NULL;
        size_t n = 0;

        assert_int_equal(scan(t, 3, &s), 2);
        assert_int_equal(json_bigstr_reduce(t, strlen(t), &s, &r, &n), 0);
        assert_string_equal(r, "{\"a\":\"\",\"b\":[\"q\"],\"c\":\"\"} ");
        assert_int_equal(n, strlen(r));
        free(r);
}

/* ---- equivalence on chosen inputs ------------------------------------------ */

static void test_golden_vectors(void **state) {
        const char *path = getenv("VECTORS");
        if (!path)
                path = "tests/data/wire-vectors.jsonl";
        FILE *f = fopen(path, "re");
        assert_non_null(f);
        char *line = NULL;
        size_t cap = 0, n_json = 0, n_variants = 0;
        unsigned hits = 0;
        ssize_t n;

        while ((n = getline(&line, &cap, f)) > 0) {
                json_error_t e;
                json_t *o = json_loadb(line, (size_t) n, 0, &e);
                assert_non_null(o);
                for (int w = 0; w < 2; w++) {
                        json_t *pb = json_object_get(o, w ? "payload_b64_go1_22plus" : "payload_b64");
                        if (!json_is_string(pb))
                                continue;
                        size_t plen = 0;
                        const char *b64 = json_string_value(pb);
                        uint8_t *payload = malloc(base64_decoded_max(strlen(b64)) + 1);
                        assert_non_null(payload);
                        assert_int_equal(base64_decode(b64, strlen(b64), payload, &plen), 0);
                        payload[plen] = 0;

                        /* As it is, with every string cut out. */
                        hits += check_same(payload, plen, 0);
                        check_same(payload, plen, DEFAULT_MIN);

                        json_t *msg = json_loadb((const char *) payload, plen, 0, &e);
                        if (json_is_object(msg)) {
                                n_json++;
                                /* Each member in turn, then all of them, made a big
                                 * base64 string; and a big unknown member in front. */
                                size_t nm = json_object_size(msg);
                                for (size_t m = 0; m <= nm + 1; m++) {
                                        json_t *big = json_object();
                                        char *b = rand_b64(DEFAULT_MIN + rnd_below(3000), NULL);
                                        if (m == nm + 1)
                                                json_object_set_new(big, "zz_unknown", json_string(b));
                                        size_t i = 0;
                                        const char *k;
                                        json_t *v;
                                        json_object_foreach(msg, k, v) {
                                                bool this = m == nm || m == i;
                                                json_object_set_new(big, k, this ? json_string(b) : json_incref(v));
                                                i++;
                                        }
                                        char *text = json_dumps(big, JSON_COMPACT);
                                        assert_non_null(text);
                                        unsigned h = check_same_str(text, DEFAULT_MIN);
                                        if (nm > 0 || m > nm) /* {} has nothing to make big */
                                                assert_true(h > 0);
                                        hits += h;
                                        n_variants++;
                                        free(text);
                                        free(b);
                                        json_decref(big);
                                }
                        }
                        json_decref(msg);
                        free(payload);
                }
                json_decref(o);
        }
        free(line);
        fclose(f);
        print_message("%zu JSON vectors, %zu variants with big fields, %u fast decodes\n", n_json, n_variants,
                      hits);
        assert_true(n_json >= 45);
}

static void test_bytes_fields(void **state) {
        uint8_t *raw = NULL;
        char *b = rand_b64(30000, &raw);
        char *t;

        /* Every []byte field, decoded from the raw text. */
        const char *shapes[] = { "{\"exit_code\":3,\"stdout\":\"%s\",\"stderr\":\"%s\",\"error\":\"e\"}",
                                 "{\"content\":\"%s\",\"files\":null,\"error\":\"%s\"}",
                                 "{\"path\":\"/p\",\"content\":\"%s\",\"mode\":420,\"x\":\"%s\"}",
                                 "{\"command\":\"c\",\"stdin\":\"%s\",\"args\":[\"%s\"]}" };
        for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
                t = fmt(shapes[i], b, b);
                assert_true(check_same_str(t, DEFAULT_MIN) > 0);
                free(t);
        }

        t = fmt("{\"Content\":\"%s\"}", b);
        struct vsock_file_response fr;
        struct msg_decode_opts o = MSG_DECODE_OPTS_INIT;
        assert_int_equal(msg_decode(MSG_SHAPE_FILE_RESPONSE, &o, t, strlen(t), &fr, NULL), 0);
        assert_int_equal(o.cut_hits, 1);
        assert_true(fr.content.present);
        assert_int_equal(fr.content.len, 30000);
        assert_memory_equal(fr.content.data, raw, 30000);
        vsock_file_response_clear(&fr);
        free(t);

        t = fmt("{\"command\":\"c\",\"STDIN\":\"%s\"}", b);
        struct vsock_exec_request er;
        assert_int_equal(msg_decode_exec_request(t, strlen(t), false, &er, NULL), 0);
        assert_int_equal(er.stdin_data.len, 30000);
        assert_memory_equal(er.stdin_data.data, raw, 30000);
        vsock_exec_request_clear(&er, true);
        /* A TTY request has no stdin: the big value is an unknown field. */
        assert_int_equal(msg_decode_exec_request(t, strlen(t), true, &er, NULL), 0);
        assert_false(er.stdin_data.present);
        vsock_exec_request_clear(&er, true);
        free(t);

        /* Invalid base64 in a big field: rejected, on the fast path. */
        char *bad = strdup(b);
        bad[1234] = '!';
        t = fmt("{\"stdout\":\"%s\"}", bad);
        struct vsock_exec_response resp;
        const char *why = NULL;
        o = (struct msg_decode_opts) MSG_DECODE_OPTS_INIT;
        assert_int_equal(msg_decode(MSG_SHAPE_EXEC_RESPONSE, &o, t, strlen(t), &resp, &why), DECODE_ERR);
        assert_int_equal(o.cut_hits, 1);
        assert_string_equal(why, "field \"stdout\": invalid base64");
        check_same_str(t, DEFAULT_MIN);
        free(t);
        bad[1234] = b[1234];
        bad[strlen(bad) - 1] = 0; /* not a multiple of 4 */
        t = fmt("{\"stdout\":\"%s\"}", bad);
        assert_int_equal(vsock_exec_response_decode(t, strlen(t), &resp, &why), DECODE_ERR);
        check_same_str(t, DEFAULT_MIN);
        free(t);
        /* An error in an earlier field wins, as on the slow path. */
        t = fmt("{\"exit_code\":1.5,\"stdout\":\"!%s\"}", b);
        assert_int_equal(vsock_exec_response_decode(t, strlen(t), &resp, &why), DECODE_ERR);
        assert_string_equal(why, "field \"exit_code\": expected integer");
        check_same_str(t, DEFAULT_MIN);
        free(t);

        free(bad);
        free(b);
        free(raw);
}

static void test_duplicates(void **state) {
        char *b = rand_b64(6000, NULL);
        char *t;
        char *s;

        /* The big value first: the later one wins. */
        t = fmt("{\"stdout\":\"%s\",\"stdout\":\"QUJD\"}", b);
        check_same_str(t, DEFAULT_MIN);
        s = slow_summary(t);
        assert_non_null(strstr(s, "stdout=1:3:"));
        free(s);
        free(t);
        /* The big value last. */
        t = fmt("{\"stdout\":\"QUJD\",\"error\":\"x\",\"stdout\":\"%s\"}", b);
        check_same_str(t, DEFAULT_MIN);
        free(t);
        /* Both big, with different data. */
        char *b2 = rand_b64(5000, NULL);
        t = fmt("{\"content\":\"%s\",\"content\":\"%s\"}", b, b2);
        check_same_str(t, DEFAULT_MIN);
        free(t);
        /* A duplicate spelled with an escape. */
        t = fmt("{\"stdout\":\"%s\",\"std\\u006fut\":\"QUJD\"}", b);
        check_same_str(t, DEFAULT_MIN);
        free(t);
        /* Go's folded duplicates: distinct keys for jansson, the later wins. */
        t = fmt("{\"stdout\":\"%s\",\"STDOUT\":null,\"Stdout\":\"QUJD\"}", b);
        assert_true(check_same_str(t, DEFAULT_MIN) > 0);
        free(t);
        t = fmt("{\"STDOUT\":\"QUJD\",\"stdout\":\"%s\"}", b);
        assert_true(check_same_str(t, DEFAULT_MIN) > 0);
        free(t);
        /* A duplicate of another key: not the big one's business, but the
         * decode must still match. */
        t = fmt("{\"exit_code\":1,\"stdout\":\"%s\",\"exit_code\":2}", b);
        check_same_str(t, DEFAULT_MIN);
        free(t);
        free(b);
        free(b2);
}

static void test_big_non_bytes(void **state) {
        char *b = rand_b64(6000, NULL);
        const char *shapes[] = {
                "{\"command\":\"%s\",\"args\":[\"a\"]}",
                "{\"command\":\"c\",\"working_dir\":\"%s\",\"user\":\"u\"}",
                "{\"path\":\"%s\"}",
                "{\"error\":\"%s\",\"exit_code\":1}",
                "{\"host\":\"%s\",\"port\":22}",
                "{\"name\":\"%s\",\"size\":1}",
                "{\"args\":\"%s\"}",
                "{\"env\":\"%s\"}",
                "{\"files\":\"%s\"}",
                "{\"exit_code\":\"%s\"}",
                "{\"is_dir\":\"%s\"}",
                "{\"rows\":\"%s\",\"cols\":1}",
                "{\"mode\":\"%s\"}",
                "{\"unknown\":\"%s\",\"command\":\"c\"}",
                /* Nested big strings: left to jansson. */
                "{\"files\":[{\"name\":\"%s\"}]}",
                "{\"env\":{\"K\":\"%s\"}}",
                "{\"args\":[\"%s\"]}",
                "{\"x\":{\"stdout\":\"%s\"}}",
                /* A big key. */
                "{\"%s\":\"v\"}",
        };
        for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
                char *t = fmt(shapes[i], b);
                check_same_str(t, DEFAULT_MIN);
                check_same_str(t, 0);
                free(t);
        }

        /* A big command is decoded as the string it is. */
        char *t = fmt("{\"command\":\"%s\"}", b);
        struct vsock_exec_request er;
        struct msg_decode_opts o = MSG_DECODE_OPTS_INIT;
        assert_int_equal(msg_decode(MSG_SHAPE_EXEC_REQUEST, &o, t, strlen(t), &er, NULL), 0);
        assert_int_equal(o.cut_hits, 1);
        assert_string_equal(er.command, b);
        vsock_exec_request_clear(&er, true);
        free(t);
        free(b);
}

static void test_irregular(void **state) {
        char *b = rand_b64(6000, NULL);
        size_t bl = strlen(b);
        const char *shapes[] = {
                "{\"stdout\":\"%s\"",                 /* cut short */
                "{\"stdout\":\"%s\"}}",               /* trailing garbage */
                "{\"stdout\":\"%s\"} {}",
                "{\"stdout\":\"%s\",}",
                "{\"stdout\" \"%s\"}",
                "{\"stdout\":\"%s\" \"x\"}",
                "{\"stdout\":1 \"%s\"}",
                "[\"%s\"]",
                "{\"a\":[}, \"stdout\":\"%s\"}",
                "{\"a\":\"\xff\", \"stdout\":\"%s\"}",
                "{\"a\":\"\xe2\", \"stdout\":\"%s\"}",
                "{\"a\":\"\\x\", \"stdout\":\"%s\"}",
                "{\"a\":\"\\u12\", \"stdout\":\"%s\"}",
                "{\"a\":tru, \"stdout\":\"%s\"}",
                "{\"a\":1e999999, \"stdout\":\"%s\"}",
                "{\"a\\u0000\":1, \"stdout\":\"%s\"}",
                "{\"stdout\":\"%s\\n\"}",
                "{\"stdout\":\"%s\\/\"}",
                "{\"stdout\":\"\\u0041%s\"}",
        };
        for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
                char *t = fmt(shapes[i], b);
                check_same_str(t, DEFAULT_MIN);
                check_same_str(t, 0);
                free(t);
        }

        /* Raw bytes jansson refuses or base64 skips, inside the big value. */
        const char raws[] = { '\n', '\r', '\t', 0x01, 0x7f, (char) 0x80, (char) 0xc3, '\\' };
        for (size_t i = 0; i < sizeof(raws); i++) {
                char *t = fmt("{\"stdout\":\"%s\"}", b);
                t[12 + bl / 2] = raws[i];
                check_same(t, strlen(t), DEFAULT_MIN);
                free(t);
        }
        /* A NUL byte in the buffer. */
        char *t = fmt("{\"stdout\":\"%s\"}", b);
        size_t tl = strlen(t);
        t[12 + bl / 2] = 0;
        check_same(t, tl, DEFAULT_MIN);
        free(t);
        free(b);
}

/* ---- equivalence on random mutations --------------------------------------- */

static const char *const bases[] = {
        "{\"exit_code\":0,\"stdout\":\"@\",\"stderr\":\"@\",\"error\":\"\"}",
        "{\"exit_code\":-1,\"stdout\":null,\"stderr\":\"@\",\"error\":\"a \\\"b\\\" \\u00e9\"}",
        "{\"content\":\"@\",\"error\":\"\"}",
        "{\"content\":\"@\",\"files\":[{\"name\":\"@\",\"size\":1,\"mode\":420,\"is_dir\":false}]}",
        "{\"path\":\"/tmp/x\",\"content\":\"@\",\"mode\":420}",
        "{\"command\":\"sh\",\"args\":[\"-c\",\"@\"],\"env\":{\"A\":\"@\",\"B\":\"\\n\"},\"stdin\":\"@\"}",
        "{\"command\":\"@\",\"working_dir\":\"/\",\"user\":\"0:0\",\"rows\":24,\"cols\":80}",
        " { \"Stdout\" : \"@\" , \"zz\" : { \"q\" : [ \"@\" , 1 , null ] } , \"STDERR\" : \"@\" } ",
        "{\"host\":\"@\",\"port\":8080,\"name\":\"@\",\"size\":-5,\"is_dir\":true}",
};

static const char alphabet[] = "{}[]:,\"\\ \n\t0123456789-+.eEtrufalsn/=ABCxyz";

static char *random_doc(size_t *ret_len) {
        const char *base = bases[rnd_below(sizeof(bases) / sizeof(bases[0]))];
        char *out = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&out, &n);
        assert_non_null(f);
        for (const char *p = base; *p; p++) {
                if (*p != '@') {
                        fputc(*p, f);
                        continue;
                }
                /* Short and long base64, sometimes with padding issues. */
                char *b = rand_b64(rnd_below(4) ? 60 + rnd_below(200) : rnd_below(8), NULL);
                fputs(b, f);
                free(b);
        }
        assert_int_equal(fclose(f), 0);

        /* A few edits: bytes from a JSON-ish alphabet, deletions, copies of
         * a span elsewhere (duplicate members, nesting). */
        size_t edits = 1 + rnd_below(4);
        for (size_t e = 0; e < edits; e++) {
                size_t len = strlen(out), at = rnd_below(len + 1);
                switch (rnd_below(6)) {
                case 0:
                case 1: { /* replace a byte */
                        if (at == len)
                                break;
                        out[at] = rnd_below(8) ? alphabet[rnd_below(sizeof(alphabet) - 1)] : (char) (1 + rnd_below(255));
                        break;
                }
                case 2: { /* insert a byte */
                        char *o = malloc(len + 2);
                        assert_non_null(o);
                        memcpy(o, out, at);
                        o[at] = alphabet[rnd_below(sizeof(alphabet) - 1)];
                        memcpy(o + at + 1, out + at, len - at + 1);
                        free(out);
                        out = o;
                        break;
                }
                case 3: { /* delete a span */
                        size_t k = rnd_below(8);
                        if (at + k > len)
                                k = len - at;
                        memmove(out + at, out + at + k, len - at - k + 1);
                        break;
                }
                case 4: { /* copy a span to another place */
                        size_t from = rnd_below(len + 1), k = rnd_below(len - from + 1);
                        char *o = malloc(len + k + 1);
                        assert_non_null(o);
                        memcpy(o, out, at);
                        memcpy(o + at, out + from, k);
                        memcpy(o + at + k, out + at, len - at + 1);
                        free(out);
                        out = o;
                        break;
                }
                default: /* no edit: keep some valid documents */
                        break;
                }
        }
        *ret_len = strlen(out);
        return out;
}

static void test_random_mutations(void **state) {
        const char *it = getenv("BIGSTR_ITERATIONS");
        size_t iterations = it ? strtoul(it, NULL, 10) : 6000;
        unsigned hits = 0, accepted = 0;

        rng_state = 0x243f6a8885a308d3u;
        for (size_t i = 0; i < iterations; i++) {
                size_t len;
                char *d = random_doc(&len);
                hits += check_same_count(d, len, 64, &accepted);
                free(d);
        }
        print_message("%zu random documents, %u fast decodes, %u decodes accepted\n", iterations, hits,
                      accepted);
        /* The mutations must leave plenty of documents to the fast path,
         * and plenty that decode. */
        assert_true(hits > iterations);
        assert_true(accepted > iterations);
}

/* ---- timing (printed, never asserted) -------------------------------------- */

static double now_ms(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double) t.tv_sec * 1e3 + (double) t.tv_nsec / 1e6;
}

static void test_timing_16mib(void **state) {
        const size_t n = 16u << 20;
        uint8_t *d = malloc(n);
        assert_non_null(d);
        for (size_t i = 0; i < n; i++)
                d[i] = (uint8_t) rnd();
        struct vsock_exec_response er = { .stdout_data = { d, n, true } };
        struct vsock_file_response fr = { .content = { d, n, true } };
        uint8_t *e1 = NULL, *e2 = NULL;
        size_t l1 = 0, l2 = 0;
        assert_int_equal(vsock_exec_response_encode(&er, &e1, &l1), 0);
        assert_int_equal(vsock_file_response_encode(&fr, &e2, &l2), 0);

        for (int fast = 0; fast < 2; fast++) {
                struct msg_decode_opts o = { .bigstr_min = fast ? DEFAULT_MIN : SIZE_MAX };
                double best1 = 1e9, best2 = 1e9;
                for (int k = 0; k < 2; k++) {
                        struct vsock_exec_response a;
                        struct vsock_file_response b;
                        double t0 = now_ms();
                        assert_int_equal(msg_decode(MSG_SHAPE_EXEC_RESPONSE, &o, e1, l1, &a, NULL), 0);
                        double t1 = now_ms();
                        assert_int_equal(msg_decode(MSG_SHAPE_FILE_RESPONSE, &o, e2, l2, &b, NULL), 0);
                        double t2 = now_ms();
                        assert_int_equal(a.stdout_data.len, n);
                        assert_memory_equal(a.stdout_data.data, d, n);
                        assert_int_equal(b.content.len, n);
                        assert_memory_equal(b.content.data, d, n);
                        vsock_exec_response_clear(&a);
                        vsock_file_response_clear(&b);
                        best1 = t1 - t0 < best1 ? t1 - t0 : best1;
                        best2 = t2 - t1 < best2 ? t2 - t1 : best2;
                }
                print_message("decode 16 MiB %s: ExecResponse %.1f ms, FileResponse %.1f ms\n",
                              fast ? "fast path" : "jansson only", best1, best2);
        }
        free(e1);
        free(e2);
        free(d);
}

/* Options are per decode: decoders with different settings interleave in
 * one thread, each keeping its own verdicts and counts. */
static void test_options_per_decode(void **state) {
        (void) state;
        static const char folded[] = "{\"path\":\"/a\",\"Path\":\"/b\"}";
        struct msg_decode_opts strict = MSG_DECODE_OPTS_INIT, lax = MSG_DECODE_OPTS_INIT;
        struct vsock_write_file_request wf;
        const char *why = NULL;
        strict.strict = true;

        for (int round = 0; round < 2; round++) {
                assert_int_equal(msg_decode(MSG_SHAPE_WRITE_FILE_REQUEST, &strict, folded, strlen(folded), &wf, &why),
                                 DECODE_ERR);
                assert_string_equal(why, "duplicate key in JSON object");
                assert_null(wf.path);
                /* Go's verdict: the last one wins. */
                assert_int_equal(msg_decode(MSG_SHAPE_WRITE_FILE_REQUEST, &lax, folded, strlen(folded), &wf, &why), 0);
                assert_string_equal(wf.path, "/b");
                vsock_write_file_request_clear(&wf);
                assert_int_equal(vsock_write_file_request_decode(folded, strlen(folded), &wf, NULL), 0);
                vsock_write_file_request_clear(&wf);
        }

        char *b = rand_b64(6000, NULL);
        char *t = fmt("{\"path\":\"/p\",\"content\":\"%s\"}", b);
        struct msg_decode_opts cut_all = { .bigstr_min = 0 }, cut_none = { .bigstr_min = SIZE_MAX };
        for (int round = 0; round < 3; round++) {
                assert_int_equal(msg_decode(MSG_SHAPE_WRITE_FILE_REQUEST, &cut_none, t, strlen(t), &wf, NULL), 0);
                vsock_write_file_request_clear(&wf);
                assert_int_equal(msg_decode(MSG_SHAPE_WRITE_FILE_REQUEST, &cut_all, t, strlen(t), &wf, NULL), 0);
                vsock_write_file_request_clear(&wf);
                assert_int_equal(msg_decode(MSG_SHAPE_WRITE_FILE_REQUEST, NULL, t, strlen(t), &wf, NULL), 0);
                vsock_write_file_request_clear(&wf);
        }
        assert_int_equal(cut_none.cut_hits, 0);
        assert_int_equal(cut_all.cut_hits, 3);
        free(t);
        free(b);

        assert_int_equal(msg_decode((enum msg_shape) 99, NULL, "{}", 2, &wf, NULL), -EINVAL);
        assert_int_equal(msg_decode(MSG_SHAPE_PATH_REQUEST, NULL, "{}", 2, NULL, NULL), -EINVAL);
}

/* The in-place decode uses no buffer of its own for a big content: the
 * bytes are in the request's own memory, and right. */
static void test_write_file_in_place(void **state) {
        (void) state;
        for (size_t n = 3000; n <= 3u << 20; n *= 7) {
                uint8_t *raw;
                char *b64 = rand_b64(n, &raw);
                char *json = fmt("{\"path\":\"/tmp/x\",\"content\":\"%s\",\"mode\":420}", b64);
                size_t len = strlen(json);
                struct vsock_write_file_request req = {};
                const uint8_t *content;
                size_t clen;
                const char *why = NULL;
                struct msg_decode_opts o = MSG_DECODE_OPTS_INIT;
                assert_int_equal(msg_decode_write_file_inplace_opts(&o, json, len, &req, &content, &clen, &why), 0);
                assert_int_equal(clen, n);
                assert_memory_equal(content, raw, n);
                assert_string_equal(req.path, "/tmp/x");
                assert_int_equal(req.mode, 420);
                if (strlen(b64) >= DEFAULT_MIN) {
                        assert_int_equal(o.cut_hits, 1);
                        assert_true(content > (const uint8_t *) json && content < (const uint8_t *) json + len);
                        assert_null(req.content.data);
                } else {
                        assert_ptr_equal(content, req.content.data);
                }
                vsock_write_file_request_clear(&req);
                free(json);
                free(b64);
                free(raw);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_scan_basic),
                cmocka_unit_test(test_scan_every_byte),
                cmocka_unit_test(test_reduce),
                cmocka_unit_test(test_golden_vectors),
                cmocka_unit_test(test_bytes_fields),
                cmocka_unit_test(test_duplicates),
                cmocka_unit_test(test_big_non_bytes),
                cmocka_unit_test(test_irregular),
                cmocka_unit_test(test_random_mutations),
                cmocka_unit_test(test_timing_16mib),
                cmocka_unit_test(test_write_file_in_place),
                cmocka_unit_test(test_options_per_decode),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
