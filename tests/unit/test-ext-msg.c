/* The extension message codecs (src/lib/ext_msg.h):
 *   - every JSON shape of PROTOCOL.md Part 2 encodes to the bytes its Go
 *     declaration gives (goldens written from the declarations, so a
 *     table that drifts from the document fails here), and decodes back;
 *   - every shape, filled with random values through its own table,
 *     survives encode -> decode -> encode with every field equal;
 *   - defaults and sentinels (uid 0 vs absent, follow default true);
 *   - every refusal, naming the field (nested ones with their path);
 *   - encoders are all-or-nothing; decoders leave *ret alone on failure;
 *   - the binary payloads (Credit, ProcOutput, ProcGap). */
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
#include "lib/ext_codec.h"
#include "lib/ext_msg.h"
#include "vsock/error.h"

#define DECODE_ERR VSOCK_ERR(VSOCK_E_DECODE, EINVAL)

static char *encode(const struct ext_shape *sh, const void *m) {
        struct buf b = BUF_INIT(0);
        assert_int_equal(ext_encode(sh, m, &b), 0);
        uint8_t *d;
        size_t n;
        assert_int_equal(buf_steal(&b, &d, &n), 0);
        return (char *) d;
}

/* @m encodes to exactly @want, and @want decodes to something that
 * encodes to @want again. */
static void golden(const struct ext_shape *sh, const void *m, const char *want) {
        char *got = encode(sh, m);
        assert_string_equal(got, want);
        void *back = malloc(sh->size);
        assert_non_null(back);
        const char *why = NULL;
        int r = ext_decode(sh, want, strlen(want), back, &why);
        if (r < 0)
                fail_msg("%s: %s", sh->name, why);
        char *again = encode(sh, back);
        assert_string_equal(again, want);
        ext_clear(sh, back);
        free(back);
        free(again);
        free(got);
}

static char *features[] = { "reuse", "fs", "proc" };

static void test_golden_negotiation(void **state) {
        struct ext_hello h = { .version = 1, .client = "vsockctl/0.1", .features = features, .n_features = 2 };
        golden(&ext_hello_shape, &h, "{\"version\":1,\"client\":\"vsockctl/0.1\",\"features\":[\"reuse\",\"fs\"]}");
        struct ext_hello h0 = { .version = 1 };
        golden(&ext_hello_shape, &h0, "{\"version\":1}");

        struct ext_hello_reply hr = {
                .version = 1, .agent = "vsock-agent 0.1.0", .boot_id = "b0", .features = features, .n_features = 3,
                .limits = { .max_payload = 16777216, .data_max = 262144, .window_max = 2097152,
                            .list_page_max = 4096, .list_reply_max = 4194304, .procs_max = 64,
                            .ring_default = 1048576, .ring_max = 16777216, .ring_total_max = 67108864,
                            .proc_keep_s = 600, .partial_keep_s = 3600, .fwd_listeners_max = 16,
                            .fwd_pending_max = 64, .fwd_attach_s = 10 },
        };
        golden(&ext_hello_reply_shape, &hr,
               "{\"version\":1,\"agent\":\"vsock-agent 0.1.0\",\"boot_id\":\"b0\",\"features\":[\"reuse\",\"fs\",\"proc\"],"
               "\"limits\":{\"max_payload\":16777216,\"data_max\":262144,\"window_max\":2097152,\"list_page_max\":4096,"
               "\"list_reply_max\":4194304,\"procs_max\":64,\"ring_default\":1048576,\"ring_max\":16777216,"
               "\"ring_total_max\":67108864,\"proc_keep_s\":600,\"partial_keep_s\":3600,\"fwd_listeners_max\":16,"
               "\"fwd_pending_max\":64,\"fwd_attach_s\":10}}");
        /* Not omitempty: an empty reply still has every field. */
        struct ext_hello_reply hr0 = { 0 };
        golden(&ext_hello_reply_shape, &hr0,
               "{\"version\":0,\"agent\":\"\",\"boot_id\":\"\",\"features\":[],\"limits\":{\"max_payload\":0,"
               "\"data_max\":0,\"window_max\":0,\"list_page_max\":0,\"list_reply_max\":0,\"procs_max\":0,"
               "\"ring_default\":0,\"ring_max\":0,\"ring_total_max\":0,\"proc_keep_s\":0,\"partial_keep_s\":0,"
               "\"fwd_listeners_max\":0,\"fwd_pending_max\":0,\"fwd_attach_s\":0}}");
}

static void test_golden_common(void **state) {
        struct ext_error e = { .code = "ENOENT", .err = 2, .message = "stat /x: No such file or directory",
                               .op = "stat" };
        golden(&ext_error_shape, &e,
               "{\"code\":\"ENOENT\",\"errno\":2,\"message\":\"stat /x: No such file or directory\",\"op\":\"stat\"}");
        struct ext_error e0 = { .code = "EPROTO", .message = "<bad> & \"worse\"" };
        golden(&ext_error_shape, &e0,
               "{\"code\":\"EPROTO\",\"message\":\"\\u003cbad\\u003e \\u0026 \\\"worse\\\"\"}");
        struct ext_done d = { .size = 5, .sha256 = "ab", .entries = 3, .skipped = 1 };
        golden(&ext_done_shape, &d, "{\"size\":5,\"sha256\":\"ab\",\"entries\":3,\"skipped\":1}");
        /* One checksum field, the stream's algorithm's (2.3). */
        struct ext_done dc = { .size = 9, .crc32c = "e3069283" };
        golden(&ext_done_shape, &dc, "{\"size\":9,\"crc32c\":\"e3069283\"}");
        struct ext_done d0 = { 0 };
        golden(&ext_done_shape, &d0, "{\"size\":0}");
}

static const char *stat_full_json =
        "{\"name\":\"l\",\"size\":7,\"mode\":41471,\"uid\":1000,\"gid\":100,\"user\":\"u\",\"group\":\"g\","
        "\"nlink\":1,\"ino\":42,\"dev\":2049,\"rdev\":5,\"mtime_ns\":1700000000123456789,\"atime_ns\":-1,"
        "\"ctime_ns\":3,\"target\":\"/etc/passwd\"}";
static const struct ext_stat stat_full = {
        .name = "l", .size = 7, .mode = 0120777, .uid = 1000, .gid = 100, .user = "u", .group = "g",
        .nlink = 1, .ino = 42, .dev = 2049, .rdev = 5, .mtime_ns = 1700000000123456789, .atime_ns = -1,
        .ctime_ns = 3, .target = "/etc/passwd",
};

static void test_golden_fs(void **state) {
        golden(&ext_stat_shape, &stat_full, stat_full_json);
        struct ext_stat s0 = { 0 };
        golden(&ext_stat_shape, &s0,
               "{\"name\":\"\",\"size\":0,\"mode\":0,\"uid\":0,\"gid\":0,\"nlink\":0,\"ino\":0,\"dev\":0,"
               "\"mtime_ns\":0,\"atime_ns\":0,\"ctime_ns\":0}");

        struct ext_fs_request q;
        ext_fs_request_init(&q);
        q.op = "stat";
        q.path = "/x";
        golden(&ext_fs_request_shape, &q, "{\"op\":\"stat\",\"path\":\"/x\"}");
        q = (struct ext_fs_request) { .op = "chown", .path = "/x", .target = "t", .mode = 0, .uid = 0, .gid = 0,
                                      .atime_ns = 0, .mtime_ns = 0, .parents = true, .recursive = true,
                                      .force = true };
        golden(&ext_fs_request_shape, &q,
               "{\"op\":\"chown\",\"path\":\"/x\",\"target\":\"t\",\"mode\":0,\"uid\":0,\"gid\":0,\"atime_ns\":0,"
               "\"mtime_ns\":0,\"parents\":true,\"recursive\":true,\"force\":true}");

        struct ext_fs_reply r = { .has_stat = true, .stat = stat_full, .target = "x" };
        char want[1024];
        snprintf(want, sizeof want, "{\"stat\":%s,\"target\":\"x\"}", stat_full_json);
        golden(&ext_fs_reply_shape, &r, want);
        struct ext_fs_reply r0 = { 0 };
        golden(&ext_fs_reply_shape, &r0, "{}");

        struct ext_list_dir ld = { .path = "/", .cursor = "c1", .limit = 10 };
        golden(&ext_list_dir_shape, &ld, "{\"path\":\"/\",\"cursor\":\"c1\",\"limit\":10}");
        struct ext_stat two[2] = { stat_full, { .name = "b" } };
        struct ext_list_reply lr = { .entries = two, .n_entries = 2, .next = "n" };
        snprintf(want, sizeof want,
                 "{\"entries\":[%s,{\"name\":\"b\",\"size\":0,\"mode\":0,\"uid\":0,\"gid\":0,\"nlink\":0,\"ino\":0,"
                 "\"dev\":0,\"mtime_ns\":0,\"atime_ns\":0,\"ctime_ns\":0}],\"next\":\"n\"}",
                 stat_full_json);
        golden(&ext_list_reply_shape, &lr, want);
        struct ext_list_reply lr0 = { 0 };
        golden(&ext_list_reply_shape, &lr0, "{\"entries\":[]}");
}

static void test_golden_streams(void **state) {
        struct ext_file_get g = { .path = "/f", .offset = 10, .length = 20, .window = 65536 };
        golden(&ext_file_get_shape, &g, "{\"path\":\"/f\",\"offset\":10,\"length\":20,\"window\":65536}");
        struct ext_file_get g0 = { .path = "/f" };
        golden(&ext_file_get_shape, &g0, "{\"path\":\"/f\",\"window\":0}");
        struct ext_file_get gc = { .path = "/f", .window = 1, .checksum = "crc32c" };
        golden(&ext_file_get_shape, &gc, "{\"path\":\"/f\",\"window\":1,\"checksum\":\"crc32c\"}");

        struct ext_file_put p;
        ext_file_put_init(&p);
        p.path = "/f";
        golden(&ext_file_put_shape, &p, "{\"path\":\"/f\"}");
        p = (struct ext_file_put) { .path = "/f", .mode = 0644, .uid = 0, .gid = 5, .mtime_ns = 0, .size = 0,
                                    .upload_id = "0123456789abcdef", .resume = true, .checksum = "crc32c" };
        golden(&ext_file_put_shape, &p,
               "{\"path\":\"/f\",\"mode\":420,\"uid\":0,\"gid\":5,\"mtime_ns\":0,\"size\":0,"
               "\"upload_id\":\"0123456789abcdef\",\"resume\":true,\"checksum\":\"crc32c\"}");

        struct ext_stream_start s = { .has_stat = true, .stat = { .name = "f", .size = 1 }, .offset = 4,
                                      .window = 1048576, .upload_id = "u" };
        golden(&ext_stream_start_shape, &s,
               "{\"stat\":{\"name\":\"f\",\"size\":1,\"mode\":0,\"uid\":0,\"gid\":0,\"nlink\":0,\"ino\":0,\"dev\":0,"
               "\"mtime_ns\":0,\"atime_ns\":0,\"ctime_ns\":0},\"offset\":4,\"window\":1048576,\"upload_id\":\"u\"}");
        struct ext_stream_start s0 = { 0 };
        golden(&ext_stream_start_shape, &s0, "{}");

        struct ext_tar_get tg = { .path = "/d", .window = 7 };
        golden(&ext_tar_get_shape, &tg, "{\"path\":\"/d\",\"window\":7}");
        tg.checksum = "sha256";
        golden(&ext_tar_get_shape, &tg, "{\"path\":\"/d\",\"window\":7,\"checksum\":\"sha256\"}");
        struct ext_tar_put tp = { .path = "/d", .preserve_owner = true };
        golden(&ext_tar_put_shape, &tp, "{\"path\":\"/d\",\"preserve_owner\":true}");
        tp.preserve_owner = false;
        golden(&ext_tar_put_shape, &tp, "{\"path\":\"/d\"}");
}

static void test_golden_proc(void **state) {
        char *args[] = { "sh", "-c", "echo <hi>" };
        struct vsock_env env[] = { { "Z", "1" }, { "A", "x&y" } };
        struct ext_proc_start ps = { .command = "c", .args = args, .n_args = 3, .working_dir = "/w", .env = env,
                                     .n_env = 2, .user = "1000", .tag = "job-1", .tty = true, .rows = 24,
                                     .cols = 80, .stdin_pipe = true, .ring = 4096, .keep_s = 60 };
        /* Map keys sorted, as Go writes them. */
        golden(&ext_proc_start_shape, &ps,
               "{\"command\":\"c\",\"args\":[\"sh\",\"-c\",\"echo \\u003chi\\u003e\"],\"working_dir\":\"/w\","
               "\"env\":{\"A\":\"x\\u0026y\",\"Z\":\"1\"},\"user\":\"1000\",\"tag\":\"job-1\",\"tty\":true,"
               "\"rows\":24,\"cols\":80,\"stdin\":true,\"ring\":4096,\"keep_s\":60}");
        struct ext_proc_start ps0 = { 0 };
        golden(&ext_proc_start_shape, &ps0, "{\"command\":\"\"}");

        struct ext_proc_info pi = { .id = 9, .tag = "t", .pid = 123, .command = "c", .args = args, .n_args = 1,
                                    .tty = true, .state = "exited", .started_ns = 1, .ended_ns = 2,
                                    .exit_code = 137, .signal = 9, .oom_killed = true, .ring_start = 3,
                                    .out_end = 4, .stdin_open = true, .attached = 2 };
        const char *pi_json =
                "{\"id\":9,\"tag\":\"t\",\"pid\":123,\"command\":\"c\",\"args\":[\"sh\"],\"tty\":true,"
                "\"state\":\"exited\",\"started_ns\":1,\"ended_ns\":2,\"exit_code\":137,\"signal\":9,"
                "\"oom_killed\":true,\"ring_start\":3,\"out_end\":4,\"stdin_open\":true,\"attached\":2}";
        golden(&ext_proc_info_shape, &pi, pi_json);
        const char *pi0_json = "{\"id\":0,\"pid\":0,\"command\":\"\",\"tty\":false,\"state\":\"\",\"started_ns\":0,"
                               "\"ring_start\":0,\"out_end\":0,\"stdin_open\":false,\"attached\":0}";
        struct ext_proc_info pi0 = { 0 };
        golden(&ext_proc_info_shape, &pi0, pi0_json);

        struct ext_proc_list pl = { .tag = "t" };
        golden(&ext_proc_list_shape, &pl, "{\"tag\":\"t\"}");
        struct ext_proc_list pl0 = { 0 };
        golden(&ext_proc_list_shape, &pl0, "{}");
        struct ext_proc_info two[2] = { pi, pi0 };
        struct ext_proc_list_reply plr = { .procs = two, .n_procs = 2 };
        char want[2048];
        snprintf(want, sizeof want, "{\"procs\":[%s,%s]}", pi_json, pi0_json);
        golden(&ext_proc_list_reply_shape, &plr, want);
        struct ext_proc_list_reply plr0 = { 0 };
        golden(&ext_proc_list_reply_shape, &plr0, "{\"procs\":[]}");

        struct ext_proc_attach pa;
        ext_proc_attach_init(&pa);
        assert_true(pa.follow);
        golden(&ext_proc_attach_shape, &pa, "{}");
        pa = (struct ext_proc_attach) { .id = 5, .tag = "t", .offset = -1, .follow = false, .input = true };
        golden(&ext_proc_attach_shape, &pa, "{\"id\":5,\"tag\":\"t\",\"offset\":-1,\"follow\":false,\"input\":true}");

        struct ext_proc_end pe = { .reason = "exit", .offset = 100, .exit_code = 1, .signal = 2, .oom_killed = true,
                                   .ended_ns = 3 };
        golden(&ext_proc_end_shape, &pe,
               "{\"reason\":\"exit\",\"offset\":100,\"exit_code\":1,\"signal\":2,\"oom_killed\":true,\"ended_ns\":3}");
        struct ext_proc_end pe0 = { .reason = "end" };
        golden(&ext_proc_end_shape, &pe0, "{\"reason\":\"end\",\"offset\":0}");

        struct ext_proc_control pc = { .id = 1, .tag = "t", .op = "stdin",
                                       .data = { .present = true, .data = (uint8_t *) "hi\n", .len = 3 },
                                       .signal = 15, .rows = 1, .cols = 2 };
        golden(&ext_proc_control_shape, &pc,
               "{\"id\":1,\"tag\":\"t\",\"op\":\"stdin\",\"data\":\"aGkK\",\"signal\":15,\"rows\":1,\"cols\":2}");
        struct ext_proc_control pc0 = { .op = "close-stdin" };
        golden(&ext_proc_control_shape, &pc0, "{\"op\":\"close-stdin\"}");

        struct ext_proc_wait pw = { .id = 1, .tag = "t", .timeout_ms = 5000 };
        golden(&ext_proc_wait_shape, &pw, "{\"id\":1,\"tag\":\"t\",\"timeout_ms\":5000}");
        struct ext_proc_wait pw0 = { 0 };
        golden(&ext_proc_wait_shape, &pw0, "{}");
}

static void test_golden_fwd(void **state) {
        struct ext_fwd_connect c = { .host = "::1", .port = 80, .unix_path = "/run/s" };
        golden(&ext_fwd_connect_shape, &c, "{\"host\":\"::1\",\"port\":80,\"unix\":\"/run/s\"}");
        struct ext_fwd_connect c0 = { 0 };
        golden(&ext_fwd_connect_shape, &c0, "{}");
        struct ext_fwd_listen l = { .listen = "tcp:127.0.0.1:0", .backlog = 8 };
        golden(&ext_fwd_listen_shape, &l, "{\"listen\":\"tcp:127.0.0.1:0\",\"backlog\":8}");
        struct ext_fwd_listen l0 = { 0 };
        golden(&ext_fwd_listen_shape, &l0, "{\"listen\":\"\"}");
        struct ext_fwd_event e = { .event = "accepted", .address = "a", .id = 3, .peer = "127.0.0.1:5555" };
        golden(&ext_fwd_event_shape, &e,
               "{\"event\":\"accepted\",\"address\":\"a\",\"id\":3,\"peer\":\"127.0.0.1:5555\"}");
        struct ext_fwd_event e0 = { .event = "expired" };
        golden(&ext_fwd_event_shape, &e0, "{\"event\":\"expired\"}");
        struct ext_fwd_attach a = { .id = 0 };
        golden(&ext_fwd_attach_shape, &a, "{\"id\":0}");
}

/* ---- every shape, random values through its own table -------------------------------- */

static uint64_t rng = 0x243f6a8885a308d3ULL;
static uint64_t rnd(uint64_t n) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return n ? rng % n : rng;
}

/* Strings with everything JSON escapes, valid UTF-8, no NUL (the decoder
 * refuses NUL; invalid UTF-8 is written as U+FFFD and cannot round-trip). */
static char *rnd_string(bool nonempty) {
        static const char *const parts[] = { "a", "Z", "<", ">", "&", "\"", "\\", "\n", "\t", "\x01", "\x1f",
                                             "/", "\x7f", "é", "€", "\xe2\x80\xa8", "😀", " " };
        size_t n = rnd(6) + (nonempty ? 1 : 0);
        char *s = calloc(1, n * 4 + 1);
        assert_non_null(s);
        for (size_t i = 0; i < n; i++)
                strcat(s, parts[rnd(sizeof parts / sizeof parts[0])]);
        return s;
}

/* A random value for a scalar member, stored in the member's width (the
 * low-order bytes of a uint64_t, wherever they are on this host). */
static void rnd_scalar(uint8_t kind, void *member) {
        static const size_t width[] = {
                [EK_BOOL] = sizeof(bool), [EK_I32] = 4, [EK_I64] = 8, [EK_U16] = 2, [EK_U32] = 4, [EK_U64] = 8,
        };
        /* Booleans are 0 or 1; U64 stays within int64 (the wire's range). */
        uint64_t v = kind == EK_BOOL ? rnd(2) : kind == EK_U64 ? rnd(0) >> 1 : rnd(0);
        size_t skip = __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__ ? sizeof v - width[kind] : 0;
        memcpy(member, (const uint8_t *) &v + skip, width[kind]);
}

#define AT(st, off, T) ((T *) ((uint8_t *) (st) + (off)))

static void fill(const struct ext_shape *sh, void *st, int depth);

static void fill_field(const struct ext_field *f, void *st, int depth) {
        /* Sometimes leave a field at its default, to exercise omission. */
        if (rnd(4) == 0)
                return;
        switch (f->kind) {
        case EK_STR:
        case EK_OSTR:
                *AT(st, f->off, char *) = rnd_string(f->kind == EK_OSTR);
                return;
        case EK_STRV: {
                size_t n = rnd(4) + 1;
                char **v = calloc(n, sizeof *v);
                assert_non_null(v);
                for (size_t i = 0; i < n; i++)
                        v[i] = rnd_string(false);
                *AT(st, f->off, char **) = v;
                *AT(st, f->aux, size_t) = n;
                return;
        }
        case EK_ENV: {
                size_t n = rnd(4) + 1;
                struct vsock_env *e = calloc(n, sizeof *e);
                assert_non_null(e);
                for (size_t i = 0; i < n; i++) {
                        /* Distinct keys, as a decoded map has them. */
                        char *k = rnd_string(false);
                        e[i].key = malloc(strlen(k) + 8);
                        assert_non_null(e[i].key);
                        sprintf(e[i].key, "%zu%s", i, k);
                        free(k);
                        e[i].value = rnd_string(false);
                }
                *AT(st, f->off, struct vsock_env *) = e;
                *AT(st, f->aux, size_t) = n;
                return;
        }
        case EK_BYTES: {
                struct vsock_bytes *b = AT(st, f->off, struct vsock_bytes);
                b->present = true;
                b->len = rnd(40) + 1;
                b->data = malloc(b->len);
                assert_non_null(b->data);
                for (size_t i = 0; i < b->len; i++)
                        b->data[i] = (uint8_t) rnd(256);
                return;
        }
        case EK_OBJ:
                if (f->aux != EXT_NO_AUX)
                        *AT(st, f->aux, bool) = true;
                fill(f->sub, AT(st, f->off, void), depth + 1);
                return;
        case EK_OBJV: {
                size_t n = rnd(3) + 1;
                uint8_t *v = calloc(n, f->sub->size);
                assert_non_null(v);
                for (size_t i = 0; i < n; i++)
                        fill(f->sub, v + i * f->sub->size, depth + 1);
                *AT(st, f->off, uint8_t *) = v;
                *AT(st, f->aux, size_t) = n;
                return;
        }
        default:
                rnd_scalar(f->kind, AT(st, f->off, void));
        }
}

static void fill(const struct ext_shape *sh, void *st, int depth) {
        ext_init(sh, st);
        for (size_t i = 0; i < sh->n_fields; i++)
                fill_field(&sh->fields[i], st, depth);
        /* Mandatory strings come back as "", never NULL: start from that. */
        for (size_t i = 0; i < sh->n_fields; i++)
                if (sh->fields[i].kind == EK_STR && !*AT(st, sh->fields[i].off, char *))
                        *AT(st, sh->fields[i].off, char *) = strdup("");
}

static void assert_same(const struct ext_shape *sh, const void *a, const void *b);

static void assert_same_field(const struct ext_field *f, const void *a, const void *b) {
        const void *x = (const uint8_t *) a + f->off, *y = (const uint8_t *) b + f->off;
        switch (f->kind) {
        case EK_STR:
        case EK_OSTR: {
                const char *s = *(char *const *) x, *t = *(char *const *) y;
                /* Optional: "" and absent are the same (NULL after decoding). */
                if (f->kind == EK_OSTR && s && !*s)
                        s = NULL;
                if (!s || !t)
                        assert_ptr_equal(s, t);
                else
                        assert_string_equal(s, t);
                return;
        }
        case EK_STRV: {
                size_t n = *(const size_t *) ((const uint8_t *) a + f->aux);
                assert_int_equal(n, *(const size_t *) ((const uint8_t *) b + f->aux));
                for (size_t i = 0; i < n; i++)
                        assert_string_equal((*(char **const *) x)[i], (*(char **const *) y)[i]);
                return;
        }
        case EK_ENV: {
                size_t n = *(const size_t *) ((const uint8_t *) a + f->aux);
                assert_int_equal(n, *(const size_t *) ((const uint8_t *) b + f->aux));
                const struct vsock_env *e = *(struct vsock_env *const *) x, *g = *(struct vsock_env *const *) y;
                /* Decoded maps come sorted; ours were generated in key order. */
                for (size_t i = 0; i < n; i++) {
                        size_t k = 0;
                        while (k < n && strcmp(e[i].key, g[k].key) != 0)
                                k++;
                        assert_true(k < n);
                        assert_string_equal(e[i].value, g[k].value);
                }
                return;
        }
        case EK_BYTES: {
                const struct vsock_bytes *p = x, *q = y;
                assert_int_equal(p->len, q->len);
                if (p->len)
                        assert_memory_equal(p->data, q->data, p->len);
                return;
        }
        case EK_OBJ:
                if (f->aux != EXT_NO_AUX) {
                        bool ha = *(const bool *) ((const uint8_t *) a + f->aux);
                        assert_int_equal(ha, *(const bool *) ((const uint8_t *) b + f->aux));
                        if (!ha)
                                return;
                }
                assert_same(f->sub, x, y);
                return;
        case EK_OBJV: {
                size_t n = *(const size_t *) ((const uint8_t *) a + f->aux);
                assert_int_equal(n, *(const size_t *) ((const uint8_t *) b + f->aux));
                for (size_t i = 0; i < n; i++)
                        assert_same(f->sub, *(uint8_t *const *) x + i * f->sub->size,
                                    *(uint8_t *const *) y + i * f->sub->size);
                return;
        }
        case EK_BOOL:
                assert_int_equal(*(const bool *) x, *(const bool *) y);
                return;
        case EK_I32:
                assert_int_equal(*(const int32_t *) x, *(const int32_t *) y);
                return;
        case EK_I64:
                assert_true(*(const int64_t *) x == *(const int64_t *) y);
                return;
        case EK_U16:
                assert_int_equal(*(const uint16_t *) x, *(const uint16_t *) y);
                return;
        case EK_U32:
                assert_int_equal(*(const uint32_t *) x, *(const uint32_t *) y);
                return;
        case EK_U64:
                assert_true(*(const uint64_t *) x == *(const uint64_t *) y);
                return;
        }
        fail_msg("unknown kind %d", f->kind);
}

static void assert_same(const struct ext_shape *sh, const void *a, const void *b) {
        for (size_t i = 0; i < sh->n_fields; i++)
                assert_same_field(&sh->fields[i], a, b);
}

static void roundtrip_random(const struct ext_shape *sh) {
        for (int round = 0; round < 300; round++) {
                void *a = malloc(sh->size), *b = malloc(sh->size);
                assert_non_null(a);
                assert_non_null(b);
                fill(sh, a, 0);
                char *e1 = encode(sh, a);
                const char *why = NULL;
                if (ext_decode(sh, e1, strlen(e1), b, &why) < 0)
                        fail_msg("%s: %s: %s", sh->name, e1, why);
                assert_same(sh, a, b);
                char *e2 = encode(sh, b);
                assert_string_equal(e1, e2);
                ext_clear(sh, a);
                ext_clear(sh, a); /* twice is fine */
                ext_clear(sh, b);
                free(e1);
                free(e2);
                free(a);
                free(b);
        }
}

static void test_roundtrip_every_shape(void **state) {
        size_t shapes = 0;
        for (unsigned t = EXT_MSG_FIRST; t <= EXT_MSG_LAST; t++) {
                const struct ext_shape *sh = ext_msg_shape((uint8_t) t);
                if (!sh)
                        continue;
                assert_non_null(ext_msg_type_name((uint8_t) t));
                roundtrip_random(sh);
                shapes++;
        }
        /* Every JSON type of the table in PROTOCOL.md 2.1. */
        assert_int_equal(shapes, 25);
        roundtrip_random(&ext_stat_shape);
        roundtrip_random(&ext_limits_shape);
}

static void test_type_table(void **state) {
        assert_string_equal(ext_msg_type_name(EXT_MSG_HELLO), "Hello");
        assert_string_equal(ext_msg_type_name(EXT_MSG_PROC_OUTPUT), "ProcOutput");
        assert_string_equal(ext_msg_type_name(EXT_MSG_FWD_CONNECT), "FwdConnect");
        assert_null(ext_msg_type_name(79));
        assert_null(ext_msg_type_name(94));
        assert_null(ext_msg_type_name(17));
        assert_null(ext_msg_type_name(200));
        assert_null(ext_msg_shape(EXT_MSG_DATA));
        assert_null(ext_msg_shape(EXT_MSG_CREDIT));
        assert_null(ext_msg_shape(EXT_MSG_PROC_GAP));
        assert_ptr_equal(ext_msg_shape(EXT_MSG_DONE), &ext_done_shape);
        assert_ptr_equal(ext_msg_shape(EXT_MSG_LIST_REPLY), &ext_list_reply_shape);
}

/* ---- defaults, sentinels, Go's decoding rules ---------------------------------------------- */

static void test_defaults_and_sentinels(void **state) {
        struct ext_fs_request q;
        const char *j = "{\"op\":\"chown\",\"path\":\"/x\"}";
        assert_int_equal(ext_fs_request_decode(j, strlen(j), &q, NULL), 0);
        assert_true(q.uid == EXT_UNSET_ID && q.gid == EXT_UNSET_ID);
        assert_int_equal(q.mode, EXT_UNSET_MODE);
        assert_true(q.atime_ns == EXT_UNSET_TIME && q.mtime_ns == EXT_UNSET_TIME);
        assert_null(q.target);
        ext_fs_request_clear(&q);
        /* chown to root and a mode of 0 are values, not absences. */
        j = "{\"op\":\"chown\",\"path\":\"/x\",\"uid\":0,\"gid\":-1,\"mode\":0,\"mtime_ns\":0}";
        assert_int_equal(ext_fs_request_decode(j, strlen(j), &q, NULL), 0);
        assert_true(q.uid == 0 && q.gid == -1 && q.mode == 0 && q.mtime_ns == 0);
        char *e = encode(&ext_fs_request_shape, &q);
        assert_string_equal(e, "{\"op\":\"chown\",\"path\":\"/x\",\"mode\":0,\"uid\":0,\"mtime_ns\":0}");
        free(e);
        ext_fs_request_clear(&q);

        struct ext_file_put p;
        j = "{\"path\":\"/f\"}";
        assert_int_equal(ext_file_put_decode(j, strlen(j), &p, NULL), 0);
        assert_true(p.size == EXT_UNSET_SIZE && p.mode == EXT_UNSET_MODE && p.uid == EXT_UNSET_ID);
        assert_true(p.mtime_ns == EXT_UNSET_TIME);
        ext_file_put_clear(&p);

        struct ext_proc_attach a;
        j = "{\"tag\":\"t\"}";
        assert_int_equal(ext_proc_attach_decode(j, strlen(j), &a, NULL), 0);
        assert_true(a.follow);
        assert_int_equal(a.offset, 0);
        ext_proc_attach_clear(&a);
        j = "{\"follow\":false,\"offset\":-1}";
        assert_int_equal(ext_proc_attach_decode(j, strlen(j), &a, NULL), 0);
        assert_false(a.follow);
        assert_int_equal(a.offset, -1);
        ext_proc_attach_clear(&a);
        /* null leaves the default, as Go leaves a field alone. */
        j = "{\"follow\":null}";
        assert_int_equal(ext_proc_attach_decode(j, strlen(j), &a, NULL), 0);
        assert_true(a.follow);
        ext_proc_attach_clear(&a);

        /* Mandatory strings are "" when absent, in nested structs too. */
        struct ext_list_reply lr;
        j = "{\"entries\":[{},null,{\"name\":\"x\"}]}";
        assert_int_equal(ext_list_reply_decode(j, strlen(j), &lr, NULL), 0);
        assert_int_equal(lr.n_entries, 3);
        assert_string_equal(lr.entries[0].name, "");
        assert_string_equal(lr.entries[1].name, "");
        assert_string_equal(lr.entries[2].name, "x");
        assert_null(lr.next);
        ext_list_reply_clear(&lr);
        struct ext_hello_reply hr;
        j = "{}";
        assert_int_equal(ext_hello_reply_decode(j, 2, &hr, NULL), 0);
        assert_string_equal(hr.agent, "");
        assert_int_equal(hr.n_features, 0);
        ext_hello_reply_clear(&hr);
        struct ext_fs_reply fr;
        j = "{\"stat\":{\"size\":3}}";
        assert_int_equal(ext_fs_reply_decode(j, strlen(j), &fr, NULL), 0);
        assert_true(fr.has_stat);
        assert_string_equal(fr.stat.name, "");
        assert_int_equal(fr.stat.size, 3);
        ext_fs_reply_clear(&fr);
        j = "{\"stat\":{\"size\":3},\"stat\":null}";
        assert_int_equal(ext_fs_reply_decode(j, strlen(j), &fr, NULL), 0);
        assert_false(fr.has_stat);
        ext_fs_reply_clear(&fr);
}

static void test_go_decoding_rules(void **state) {
        struct ext_proc_start ps;
        /* Unknown fields ignored, keys folded as Go folds them, nulls in
         * arrays and maps are zero values, maps come back sorted. */
        const char *j = "{\"COMMAND\":\"c\",\"Args\":[\"a\",null],\"unknown\":{\"x\":[1,2]},"
                        "\"env\":{\"b\":\"2\",\"a\":null},\"\xc5\xbftdin\":true,\"ring\":null}";
        assert_int_equal(ext_proc_start_decode(j, strlen(j), &ps, NULL), 0);
        assert_string_equal(ps.command, "c");
        assert_int_equal(ps.n_args, 2);
        assert_string_equal(ps.args[1], "");
        assert_int_equal(ps.n_env, 2);
        assert_string_equal(ps.env[0].key, "a");
        assert_string_equal(ps.env[0].value, "");
        assert_string_equal(ps.env[1].key, "b");
        assert_true(ps.stdin_pipe);
        assert_int_equal(ps.ring, 0);
        assert_null(ps.working_dir);
        ext_proc_start_clear(&ps);

        /* The last of duplicate keys wins; "" for an optional string is NULL. */
        j = "{\"command\":\"a\",\"command\":\"b\",\"tag\":\"\",\"args\":[\"x\"],\"args\":null}";
        assert_int_equal(ext_proc_start_decode(j, strlen(j), &ps, NULL), 0);
        assert_string_equal(ps.command, "b");
        assert_null(ps.tag);
        assert_int_equal(ps.n_args, 0);
        assert_null(ps.args);
        ext_proc_start_clear(&ps);

        /* Extremes of every integer kind pass. */
        struct ext_limits l;
        j = "{\"max_payload\":4294967295,\"list_page_max\":-2147483648,\"procs_max\":2147483647,"
            "\"ring_total_max\":9223372036854775807}";
        assert_int_equal(ext_limits_decode(j, strlen(j), &l, NULL), 0);
        assert_int_equal(l.max_payload, UINT32_MAX);
        assert_int_equal(l.list_page_max, INT32_MIN);
        assert_int_equal(l.procs_max, INT32_MAX);
        assert_true(l.ring_total_max == INT64_MAX);
        ext_limits_clear(&l);
        struct ext_proc_control pc;
        j = "{\"op\":\"resize\",\"rows\":65535,\"data\":\"\"}";
        assert_int_equal(ext_proc_control_decode(j, strlen(j), &pc, NULL), 0);
        assert_int_equal(pc.rows, 65535);
        assert_true(pc.data.present);
        assert_int_equal(pc.data.len, 0);
        ext_proc_control_clear(&pc);
        struct ext_done d;
        j = "{\"size\":-9223372036854775808,\"sha256\":\"x\"}";
        assert_int_equal(ext_done_decode(j, strlen(j), &d, NULL), 0);
        assert_true(d.size == INT64_MIN);
        ext_done_clear(&d);
}

/* ---- refusals ---------------------------------------------------------------------------------- */

struct refusal {
        const struct ext_shape *shape;
        const char *json;
        const char *why;
};

static void test_refusals(void **state) {
        static const struct refusal cases[] = {
                /* Not an object, not JSON. */
                { &ext_hello_shape, "[]", "expected JSON object" },
                { &ext_hello_shape, "null", "expected JSON object" },
                { &ext_hello_shape, "", "unexpected end of JSON input" },
                { &ext_hello_shape, "{\"version\":1", "unexpected end of JSON input" },
                { &ext_hello_shape, "{} x", "invalid character after top-level value" },
                { &ext_hello_shape, "{\"version\":\"\xff\"}", "invalid UTF-8 in JSON" },
                { &ext_hello_shape, "{\"version\":99999999999999999999}", "number out of range" },
                /* Wrong types, per kind. */
                { &ext_hello_shape, "{\"version\":\"1\"}", "field \"version\": expected number" },
                { &ext_hello_shape, "{\"version\":1.0}", "field \"version\": expected integer" },
                { &ext_hello_shape, "{\"version\":1e3}", "field \"version\": expected integer" },
                { &ext_hello_shape, "{\"client\":1}", "field \"client\": expected string" },
                { &ext_hello_shape, "{\"features\":\"fs\"}", "field \"features\": expected array of strings" },
                { &ext_hello_shape, "{\"features\":[1]}", "field \"features\": expected array of strings" },
                { &ext_proc_start_shape, "{\"env\":[]}", "field \"env\": expected object of strings" },
                { &ext_proc_start_shape, "{\"env\":{\"a\":1}}", "field \"env\": expected object of strings" },
                { &ext_proc_start_shape, "{\"tty\":1}", "field \"tty\": expected boolean" },
                { &ext_proc_control_shape, "{\"data\":[1,2]}", "field \"data\": expected base64 string" },
                { &ext_proc_control_shape, "{\"data\":\"a\"}", "field \"data\": invalid base64" },
                { &ext_proc_control_shape, "{\"data\":\"aGk\"}", "field \"data\": invalid base64" },
                { &ext_fs_reply_shape, "{\"stat\":[]}", "field \"stat\": expected object" },
                { &ext_hello_reply_shape, "{\"limits\":1}", "field \"limits\": expected object" },
                { &ext_list_reply_shape, "{\"entries\":{}}", "field \"entries\": expected array of objects" },
                { &ext_list_reply_shape, "{\"entries\":[1]}", "field \"entries\": expected array of objects" },
                /* NUL in every kind of string. */
                { &ext_fs_request_shape, "{\"path\":\"/a\\u0000b\"}", "field \"path\": string contains NUL" },
                { &ext_fs_request_shape, "{\"target\":\"\\u0000\"}", "field \"target\": string contains NUL" },
                { &ext_proc_start_shape, "{\"args\":[\"a\\u0000\"]}", "field \"args\": string contains NUL" },
                { &ext_proc_start_shape, "{\"env\":{\"a\":\"\\u0000\"}}", "field \"env\": string contains NUL" },
                /* Ranges, per integer kind. */
                { &ext_hello_shape, "{\"version\":2147483648}", "field \"version\": number out of range for int32" },
                { &ext_hello_shape, "{\"version\":-2147483649}", "field \"version\": number out of range for int32" },
                { &ext_proc_start_shape, "{\"rows\":65536}", "field \"rows\": number out of range for uint16" },
                { &ext_proc_start_shape, "{\"rows\":-1}", "field \"rows\": number out of range for uint16" },
                { &ext_file_get_shape, "{\"window\":4294967296}", "field \"window\": number out of range for uint32" },
                { &ext_file_get_shape, "{\"window\":-1}", "field \"window\": number out of range for uint32" },
                { &ext_fwd_attach_shape, "{\"id\":-1}", "field \"id\": number out of range for uint64" },
                /* Nested fields name their path. */
                { &ext_fs_reply_shape, "{\"stat\":{\"mode\":-1}}", "field \"stat.mode\": number out of range for uint32" },
                { &ext_stream_start_shape, "{\"stat\":{\"name\":\"\\u0000\"}}", "field \"stat.name\": string contains NUL" },
                { &ext_list_reply_shape, "{\"entries\":[{},{\"uid\":\"0\"}]}", "field \"entries[].uid\": expected number" },
                { &ext_hello_reply_shape, "{\"limits\":{\"procs_max\":true}}", "field \"limits.procs_max\": expected number" },
                { &ext_proc_list_reply_shape, "{\"procs\":[{\"args\":[null,3]}]}", "field \"procs[].args\": expected array of strings" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                const struct refusal *c = &cases[i];
                uint8_t ret[512];
                memset(ret, 0xa5, sizeof ret);
                assert_true(c->shape->size <= sizeof ret);
                const char *why = NULL;
                int r = ext_decode(c->shape, c->json, strlen(c->json), ret, &why);
                if (r != DECODE_ERR || !why || strcmp(why, c->why) != 0)
                        fail_msg("%s %s: got %d \"%s\", want \"%s\"", c->shape->name, c->json, r, why ? why : "(null)",
                                 c->why);
                /* *ret untouched on failure. */
                for (size_t k = 0; k < c->shape->size; k++)
                        assert_int_equal(ret[k], 0xa5);
                /* NULL why is fine. */
                assert_int_equal(ext_decode(c->shape, c->json, strlen(c->json), ret, NULL), DECODE_ERR);
        }
        uint8_t ret[64];
        assert_int_equal(ext_decode(&ext_hello_shape, NULL, 1, ret, NULL), -EINVAL);
        assert_int_equal(ext_decode(&ext_hello_shape, "{}", 2, NULL, NULL), -EINVAL);
}

/* A hostile frame of tiny values is refused before jansson builds it. */
static void test_refuses_too_many_values(void **state) {
        size_t n = (1u << 20) + 10;
        char *j = malloc(2 * n + 32);
        assert_non_null(j);
        size_t k = (size_t) sprintf(j, "{\"features\":[");
        for (size_t i = 0; i < n; i++) {
                j[k++] = '0';
                j[k++] = ',';
        }
        k--;
        k += (size_t) sprintf(j + k, "]}");
        struct ext_hello h;
        const char *why = NULL;
        assert_int_equal(ext_hello_decode(j, k, &h, &why), DECODE_ERR);
        assert_string_equal(why, "too many JSON values");
        free(j);
}

static void test_encoder_failures(void **state) {
        /* U64 beyond int64: the peer could not decode it. */
        struct ext_fwd_attach a = { .id = (uint64_t) INT64_MAX + 1 };
        struct buf b = BUF_INIT(0);
        assert_int_equal(buf_append(&b, "keep", 4), 0);
        assert_int_equal(ext_fwd_attach_encode(&a, &b), -EINVAL);
        assert_int_equal(buf_size(&b), 4);
        /* A count without its array. */
        struct ext_hello h = { .version = 1, .n_features = 2 };
        assert_int_equal(ext_hello_encode(&h, &b), -EINVAL);
        struct ext_proc_control pc = { .op = "stdin", .data = { .present = true, .len = 3 } };
        assert_int_equal(ext_proc_control_encode(&pc, &b), -EINVAL);
        assert_int_equal(buf_size(&b), 4);
        assert_memory_equal(buf_head(&b), "keep", 4);
        buf_free(&b);

        /* The buffer's cap hit midway: nothing of the message stays. */
        struct ext_error e = { .code = "EIO", .message = "a long message that does not fit" };
        for (size_t cap = 5; cap < 60; cap++) {
                b = BUF_INIT(cap);
                assert_int_equal(buf_append(&b, "keep", 4), 0);
                assert_int_equal(ext_error_encode(&e, &b), -ENOBUFS);
                assert_int_equal(buf_size(&b), 4);
                buf_free(&b);
        }
        assert_int_equal(ext_encode(NULL, &e, &b), -EINVAL);
}

/* ---- binary payloads -------------------------------------------------------------------------------- */

static void test_credit(void **state) {
        uint8_t p[EXT_CREDIT_SIZE];
        ext_credit_encode(0x01020304, p);
        assert_memory_equal(p, "\x01\x02\x03\x04", 4);
        uint32_t n = 0;
        const char *why = NULL;
        assert_int_equal(ext_credit_decode(p, 4, &n, &why), 0);
        assert_int_equal(n, 0x01020304);
        ext_credit_encode(UINT32_MAX, p);
        assert_int_equal(ext_credit_decode(p, 4, &n, NULL), 0);
        assert_int_equal(n, UINT32_MAX);

        n = 7;
        assert_int_equal(ext_credit_decode("\0\0\0\0", 4, &n, &why), DECODE_ERR);
        assert_string_equal(why, "Credit: zero credit");
        assert_int_equal(n, 7);
        assert_int_equal(ext_credit_decode(p, 3, &n, &why), DECODE_ERR);
        assert_string_equal(why, "Credit: expected 4 bytes");
        assert_int_equal(ext_credit_decode(p, 5, &n, NULL), DECODE_ERR);
        assert_int_equal(ext_credit_decode(NULL, 4, &n, NULL), DECODE_ERR);
}

static void test_proc_output(void **state) {
        uint8_t p[EXT_PROC_OUTPUT_HEADER_SIZE + 3];
        ext_proc_output_header(EXT_STREAM_STDERR, 0x0102030405060708ULL, p);
        assert_memory_equal(p, "\x02\x01\x02\x03\x04\x05\x06\x07\x08", 9);
        memcpy(p + 9, "abc", 3);
        uint8_t stream = 0;
        uint64_t off = 0;
        const uint8_t *bytes = NULL;
        size_t len = 0;
        const char *why = NULL;
        assert_int_equal(ext_proc_output_decode(p, sizeof p, &stream, &off, &bytes, &len, &why), 0);
        assert_int_equal(stream, 2);
        assert_true(off == 0x0102030405060708ULL);
        assert_ptr_equal(bytes, p + 9);
        assert_int_equal(len, 3);

        assert_int_equal(ext_proc_output_decode(p, 9, &stream, &off, &bytes, &len, &why), DECODE_ERR);
        assert_string_equal(why, "ProcOutput: expected a stream, an offset and at least one byte");
        p[0] = 3;
        assert_int_equal(ext_proc_output_decode(p, sizeof p, &stream, &off, &bytes, &len, &why), DECODE_ERR);
        assert_string_equal(why, "ProcOutput: stream is neither 1 (stdout) nor 2 (stderr)");
        p[0] = 0;
        assert_int_equal(ext_proc_output_decode(p, sizeof p, NULL, NULL, NULL, NULL, NULL), DECODE_ERR);
        ext_proc_output_header(EXT_STREAM_STDOUT, UINT64_MAX - 3, p);
        assert_int_equal(ext_proc_output_decode(p, sizeof p, &stream, &off, &bytes, &len, &why), 0);
        ext_proc_output_header(EXT_STREAM_STDOUT, UINT64_MAX - 2, p);
        assert_int_equal(ext_proc_output_decode(p, sizeof p, &stream, &off, &bytes, &len, &why), DECODE_ERR);
        assert_string_equal(why, "ProcOutput: offset + length beyond 2^64");
}

static void test_proc_gap(void **state) {
        uint8_t p[EXT_PROC_GAP_SIZE];
        ext_proc_gap_encode(5, 0x1000000000ULL, p);
        assert_memory_equal(p, "\0\0\0\0\0\0\0\x05\0\0\0\x10\0\0\0\0", 16);
        uint64_t from = 0, to = 0;
        const char *why = NULL;
        assert_int_equal(ext_proc_gap_decode(p, 16, &from, &to, &why), 0);
        assert_true(from == 5 && to == 0x1000000000ULL);
        ext_proc_gap_encode(5, 5, p);
        assert_int_equal(ext_proc_gap_decode(p, 16, &from, &to, &why), DECODE_ERR);
        assert_string_equal(why, "ProcGap: from is not below to");
        ext_proc_gap_encode(6, 5, p);
        assert_int_equal(ext_proc_gap_decode(p, 16, &from, &to, NULL), DECODE_ERR);
        assert_int_equal(ext_proc_gap_decode(p, 15, &from, &to, &why), DECODE_ERR);
        assert_string_equal(why, "ProcGap: expected 16 bytes");
        assert_true(from == 5);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_golden_negotiation),
                cmocka_unit_test(test_golden_common),
                cmocka_unit_test(test_golden_fs),
                cmocka_unit_test(test_golden_streams),
                cmocka_unit_test(test_golden_proc),
                cmocka_unit_test(test_golden_fwd),
                cmocka_unit_test(test_roundtrip_every_shape),
                cmocka_unit_test(test_type_table),
                cmocka_unit_test(test_defaults_and_sentinels),
                cmocka_unit_test(test_go_decoding_rules),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_refuses_too_many_values),
                cmocka_unit_test(test_encoder_failures),
                cmocka_unit_test(test_credit),
                cmocka_unit_test(test_proc_output),
                cmocka_unit_test(test_proc_gap),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
