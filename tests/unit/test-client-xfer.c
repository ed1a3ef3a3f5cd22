/* The stream checksum's negotiation in the library, against scripted
 * agents: one without checksum-crc32c (an older agent of ours, which
 * ignores the request's `checksum` and streams SHA-256) and one with it.
 * The real agent is driven by tests/integration/test-xfer.c; only a fake
 * can be the older one. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/checksum.h"
#include "fake-agent.h"
#include "lib/ext_msg.h"
#include "vsock/vsock.h"

#define CONTENT "hello, checksums"

struct plan {
        bool crc_feature;       /* the agent lists checksum-crc32c */
        bool upload;            /* FilePut, else FileGet */
        const char *want_field; /* the request's `checksum` the agent must see (NULL: absent) */
        bool refused;           /* the host gives up after Hello: no request or EOF after it */
        bool request_sent;      /* ... with the request already sent */
        const char *done_alg;   /* the Done's field: "sha256" or "crc32c" (NULL: the honest one) */
};

static bool send_json(struct fake_agent *fa, uint8_t type, const struct ext_shape *shape, const void *msg) {
        struct buf b = BUF_INIT(0);
        bool ok = ext_encode(shape, msg, &b) >= 0 && fa_send(fa, type, buf_head(&b), buf_size(&b));
        buf_free(&b);
        return ok;
}

/* The checksum of CONTENT by @alg, hex. */
static void content_sum(enum checksum_alg alg, char hex[CHECKSUM_HEX_MAX]) {
        struct checksum c;
        checksum_init(&c, alg);
        checksum_update(&c, CONTENT, strlen(CONTENT));
        checksum_final_hex(&c, hex);
}

static bool read_type(struct fake_agent *fa, uint8_t want, uint8_t **ret, uint32_t *ret_len) {
        uint8_t type;
        if (!fa_read_frame(fa, &type, ret, ret_len))
                return false;
        if (type != want) {
                fa_fail(fa, "expected type %u, got %u", want, type);
                free(*ret);
                *ret = NULL;
                return false;
        }
        return true;
}

static void agent_script(struct fake_agent *fa) {
        const struct plan *pl = fa->arg;
        uint8_t *p = NULL;
        uint32_t len;
        if (!read_type(fa, EXT_MSG_HELLO, &p, &len))
                return;
        free(p);
        char *features[] = { "file-get", "file-put", "checksum-crc32c" };
        struct ext_hello_reply hr = { .version = 1, .agent = "fake", .boot_id = "b", .features = features,
                                      .n_features = pl->crc_feature ? 3 : 2 };
        if (!send_json(fa, EXT_MSG_HELLO_REPLY, &ext_hello_reply_shape, &hr))
                return;
        if (pl->refused && !pl->request_sent) {
                fa_expect_eof(fa);
                return;
        }
        if (!read_type(fa, pl->upload ? EXT_MSG_FILE_PUT : EXT_MSG_FILE_GET, &p, &len))
                return;
        char *checksum = NULL;
        if (pl->upload) {
                struct ext_file_put q;
                if (ext_file_put_decode(p, len, &q, NULL) == 0)
                        checksum = q.checksum ? strdup(q.checksum) : NULL;
                ext_file_put_clear(&q);
        } else {
                struct ext_file_get q;
                if (ext_file_get_decode(p, len, &q, NULL) == 0)
                        checksum = q.checksum ? strdup(q.checksum) : NULL;
                ext_file_get_clear(&q);
        }
        free(p);
        bool same = pl->want_field ? checksum && strcmp(checksum, pl->want_field) == 0 : !checksum;
        if (!same) {
                fa_fail(fa, "request's checksum: \"%s\", expected \"%s\"", checksum ? checksum : "(absent)",
                        pl->want_field ? pl->want_field : "(absent)");
                free(checksum);
                return;
        }
        /* What the agent computes: the request's algorithm only if it
         * has the feature (an older agent ignores the field). */
        enum checksum_alg alg = checksum && pl->crc_feature ? CHECKSUM_CRC32C : CHECKSUM_SHA256;
        free(checksum);
        if (pl->refused) {
                fa_expect_eof(fa);
                return;
        }
        char hex[CHECKSUM_HEX_MAX];
        content_sum(alg, hex);
        struct ext_done d = { .size = (int64_t) strlen(CONTENT) };
        const char *field = pl->done_alg ? pl->done_alg : checksum_name(alg);
        if (strcmp(field, "crc32c") == 0)
                d.crc32c = hex;
        else
                d.sha256 = hex;
        if (pl->upload) {
                struct ext_stream_start ss = { .window = 65536 };
                if (!send_json(fa, EXT_MSG_STREAM_START, &ext_stream_start_shape, &ss))
                        return;
                for (len = 1; len > 0;) {
                        if (!read_type(fa, EXT_MSG_DATA, &p, &len))
                                return;
                        free(p);
                }
                if (!read_type(fa, EXT_MSG_DONE, &p, &len))
                        return;
                struct ext_done theirs;
                bool ok = ext_done_decode(p, len, &theirs, NULL) == 0 && ext_done_checksum(&theirs, alg) &&
                          strcmp(ext_done_checksum(&theirs, alg), hex) == 0;
                ext_done_clear(&theirs);
                free(p);
                if (!ok) {
                        fa_fail(fa, "the host's Done lacks %s %s", checksum_name(alg), hex);
                        return;
                }
                if (!send_json(fa, EXT_MSG_DONE, &ext_done_shape, &d))
                        return;
        } else {
                struct ext_stream_start ss = { .has_stat = true,
                                               .stat = { .name = "f", .size = (int64_t) strlen(CONTENT),
                                                         .mode = 0100644 } };
                if (!send_json(fa, EXT_MSG_STREAM_START, &ext_stream_start_shape, &ss) ||
                    !fa_send(fa, EXT_MSG_DATA, CONTENT, strlen(CONTENT)) || !fa_send(fa, EXT_MSG_DATA, NULL, 0) ||
                    !send_json(fa, EXT_MSG_DONE, &ext_done_shape, &d))
                        return;
        }
        fa_expect_eof(fa);
}

static int sink(void *userdata, const void *data, size_t n) {
        return buf_append(userdata, data, n);
}

static ssize_t source(void *userdata, void *b, size_t n) {
        size_t *off = userdata, len = strlen(CONTENT);
        size_t k = len - *off < n ? len - *off : n;
        memcpy(b, &CONTENT[*off], k);
        *off += k;
        return (ssize_t) k;
}

/* Run @pl with the host asking for @want (after an explicit Hello when
 * @negotiate): the call's result, its algorithm and value, its message. */
static int run(const struct plan *pl, enum vsock_checksum want, bool negotiate, enum vsock_checksum *ret_alg,
               char digest[65], char *diag, size_t size) {
        struct fake_agent fa;
        vsock_conn *c;
        assert_int_equal(fake_agent_start_pair(&fa, agent_script, (void *) pl, &c), 0);
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_deadline_in(FA_TIMEOUT_MS);
        if (negotiate)
                assert_int_equal(vsock_hello(c, &call, NULL), 0);
        int r;
        if (pl->upload) {
                size_t off = 0;
                struct vsock_file_put_opts o = VSOCK_FILE_PUT_OPTS_INIT;
                o.source = source;
                o.userdata = &off;
                o.checksum = want;
                struct vsock_file_put_result res = {};
                r = vsock_file_put(c, "/f", &o, &call, &res);
                *ret_alg = res.checksum;
                memcpy(digest, res.digest, 65);
        } else {
                struct buf got = BUF_INIT(0);
                struct vsock_file_get_opts o = VSOCK_FILE_GET_OPTS_INIT;
                o.sink = sink;
                o.userdata = &got;
                o.checksum = want;
                struct vsock_file_get_result res = {};
                r = vsock_file_get(c, "/f", &o, &call, &res);
                if (r >= 0) {
                        assert_int_equal(buf_size(&got), strlen(CONTENT));
                        assert_memory_equal(buf_head(&got), CONTENT, strlen(CONTENT));
                }
                buf_free(&got);
                *ret_alg = res.checksum;
                memcpy(digest, res.digest, 65);
        }
        memcpy(diag, call.remote_error, size < sizeof call.remote_error ? size : sizeof call.remote_error);
        diag[size - 1] = 0;
        vsock_conn_close(c);
        const char *failure = fake_agent_join(&fa);
        if (failure)
                fail_msg("fake agent: %s", failure);
        return r;
}

/* An older agent, Hello pipelined with the request: the host asked for
 * crc32c before it knew, the agent ignored it, the host checks SHA-256. */
static void test_old_agent_auto_falls_back(void **state) {
        char hex[CHECKSUM_HEX_MAX], digest[65], diag[512];
        enum vsock_checksum alg;
        content_sum(CHECKSUM_SHA256, hex);
        for (int upload = 0; upload < 2; upload++) {
                struct plan pl = { .upload = upload, .want_field = "crc32c" };
                assert_int_equal(run(&pl, VSOCK_CHECKSUM_AUTO, false, &alg, digest, diag, sizeof diag), 0);
                assert_int_equal(alg, VSOCK_CHECKSUM_SHA256);
                assert_string_equal(digest, hex);
                /* Negotiated first: the field is not even sent. */
                pl.want_field = NULL;
                assert_int_equal(run(&pl, VSOCK_CHECKSUM_AUTO, true, &alg, digest, diag, sizeof diag), 0);
                assert_int_equal(alg, VSOCK_CHECKSUM_SHA256);
                assert_string_equal(digest, hex);
        }
}

/* An explicit crc32c against an older agent: said clearly, never
 * silently replaced by SHA-256. */
static void test_old_agent_explicit_crc32c(void **state) {
        char digest[65], diag[512];
        enum vsock_checksum alg;
        for (int upload = 0; upload < 2; upload++) {
                /* Pipelined: the request went out; the connection is spent. */
                struct plan pl = { .upload = upload, .want_field = "crc32c", .refused = true, .request_sent = true };
                int r = run(&pl, VSOCK_CHECKSUM_CRC32C, false, &alg, digest, diag, sizeof diag);
                assert_int_equal(vsock_err_kind(r), VSOCK_E_UNSUPPORTED);
                assert_string_equal(diag, "agent does not support checksum-crc32c");
                /* Negotiated: nothing is sent. */
                pl = (struct plan) { .upload = upload, .refused = true };
                r = run(&pl, VSOCK_CHECKSUM_CRC32C, true, &alg, digest, diag, sizeof diag);
                assert_int_equal(vsock_err_kind(r), VSOCK_E_UNSUPPORTED);
                assert_string_equal(diag, "agent does not support checksum-crc32c");
        }
}

static void test_new_agent(void **state) {
        char crc[CHECKSUM_HEX_MAX], sha[CHECKSUM_HEX_MAX], digest[65], diag[512];
        enum vsock_checksum alg;
        content_sum(CHECKSUM_CRC32C, crc);
        content_sum(CHECKSUM_SHA256, sha);
        for (int upload = 0; upload < 2; upload++) {
                for (int negotiate = 0; negotiate < 2; negotiate++) {
                        struct plan pl = { .crc_feature = true, .upload = upload, .want_field = "crc32c" };
                        assert_int_equal(run(&pl, VSOCK_CHECKSUM_AUTO, negotiate, &alg, digest, diag, sizeof diag), 0);
                        assert_int_equal(alg, VSOCK_CHECKSUM_CRC32C);
                        assert_string_equal(digest, crc);
                        assert_int_equal(run(&pl, VSOCK_CHECKSUM_CRC32C, negotiate, &alg, digest, diag, sizeof diag),
                                         0);
                        assert_int_equal(alg, VSOCK_CHECKSUM_CRC32C);
                        pl.want_field = NULL;
                        assert_int_equal(run(&pl, VSOCK_CHECKSUM_SHA256, negotiate, &alg, digest, diag, sizeof diag),
                                         0);
                        assert_int_equal(alg, VSOCK_CHECKSUM_SHA256);
                        assert_string_equal(digest, sha);
                }
        }
        /* A Done with the other algorithm's field: a mismatch, not a pass. */
        struct plan pl = { .crc_feature = true, .want_field = "crc32c", .done_alg = "sha256" };
        int r = run(&pl, VSOCK_CHECKSUM_AUTO, false, &alg, digest, diag, sizeof diag);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_CHECKSUM);
        assert_non_null(strstr(diag, "crc32c"));
}

static void test_bad_choice(void **state) {
        vsock_conn *c = NULL;
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(vsock_conn_from_fd(sv[0], &c), 0);
        struct vsock_file_get_opts o = VSOCK_FILE_GET_OPTS_INIT;
        o.sink = sink;
        o.checksum = (enum vsock_checksum) 7;
        struct vsock_file_get_result res;
        assert_int_equal(vsock_file_get(c, "/f", &o, NULL, &res), -EINVAL);
        vsock_conn_close(c);
        close(sv[1]);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_old_agent_auto_falls_back),
                cmocka_unit_test(test_old_agent_explicit_crc32c),
                cmocka_unit_test(test_new_agent),
                cmocka_unit_test(test_bad_choice),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
