/* The library's attach against a scripted agent: output delivered with
 * its offsets, gaps reported, and an agent that breaks the offsets is
 * refused (the real agent never does, so only a fake can). */
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
#include "fake-agent.h"
#include "lib/ext_msg.h"
#include "vsock/vsock.h"

/* What the script sends after ProcInfo. */
struct frame_spec {
        uint8_t type;
        uint64_t a, b;     /* ProcOutput: offset; ProcGap: from, to */
        const char *bytes; /* ProcOutput */
};

struct script {
        const struct frame_spec *frames;
        size_t n;
};

static bool send_json(struct fake_agent *fa, uint8_t type, const struct ext_shape *shape, const void *msg) {
        struct buf b = BUF_INIT(0);
        bool ok = ext_encode(shape, msg, &b) >= 0 && fa_send(fa, type, buf_head(&b), buf_size(&b));
        buf_free(&b);
        return ok;
}

static void attach_script(struct fake_agent *fa) {
        const struct script *sc = fa->arg;
        uint8_t type;
        uint8_t *p = NULL;
        uint32_t len;
        if (!fa_read_frame(fa, &type, &p, &len) || type != EXT_MSG_HELLO) {
                fa_fail(fa, "expected Hello, got %u", type);
                free(p);
                return;
        }
        free(p);
        char *features[] = { "proc" };
        struct ext_hello_reply hr = { .version = 1, .agent = "fake", .boot_id = "b", .features = features,
                                      .n_features = 1 };
        if (!send_json(fa, EXT_MSG_HELLO_REPLY, &ext_hello_reply_shape, &hr))
                return;
        if (!fa_read_frame(fa, &type, &p, &len) || type != EXT_MSG_PROC_ATTACH) {
                fa_fail(fa, "expected ProcAttach, got %u", type);
                free(p);
                return;
        }
        free(p);
        struct ext_proc_info info;
        ext_proc_info_init(&info);
        info.id = 7;
        info.command = "x";
        info.state = "running";
        if (!send_json(fa, EXT_MSG_PROC_INFO, &ext_proc_info_shape, &info))
                return;
        for (size_t i = 0; i < sc->n; i++) {
                const struct frame_spec *f = &sc->frames[i];
                uint8_t buf[256];
                if (f->type == EXT_MSG_PROC_OUTPUT) {
                        size_t n = strlen(f->bytes);
                        ext_proc_output_header(EXT_STREAM_STDOUT, f->a, buf);
                        memcpy(buf + EXT_PROC_OUTPUT_HEADER_SIZE, f->bytes, n);
                        if (!fa_send(fa, f->type, buf, EXT_PROC_OUTPUT_HEADER_SIZE + n))
                                return;
                } else if (f->type == EXT_MSG_PROC_GAP) {
                        ext_proc_gap_encode(f->a, f->b, buf);
                        if (!fa_send(fa, f->type, buf, EXT_PROC_GAP_SIZE))
                                return;
                } else {
                        struct ext_proc_end end;
                        ext_proc_end_init(&end);
                        end.reason = "exit";
                        end.offset = f->a;
                        end.exit_code = 3;
                        if (!send_json(fa, EXT_MSG_PROC_END, &ext_proc_end_shape, &end))
                                return;
                }
        }
        fa_expect_eof(fa);
}

struct got {
        struct buf out;
        uint64_t gap_from, gap_to;
        int gaps;
};

static int on_output(void *userdata, enum vsock_stream_id stream, const uint8_t *data, size_t len) {
        struct got *g = userdata;
        return buf_append(&g->out, data, len);
}

static int on_gap(void *userdata, uint64_t from, uint64_t to) {
        struct got *g = userdata;
        g->gaps++;
        g->gap_from = from;
        g->gap_to = to;
        return 0;
}

static int run(const struct frame_spec *frames, size_t n, int64_t offset, struct got *g, struct vsock_proc_end *end,
               char *diag, size_t size) {
        struct script sc = { frames, n };
        struct fake_agent fa;
        vsock_conn *c;
        assert_int_equal(fake_agent_start_pair(&fa, attach_script, &sc, &c), 0);
        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        io.on_output = on_output;
        io.userdata = g;
        struct vsock_proc_attach_opts opts = { .offset = offset, .on_gap = on_gap };
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_deadline_in(FA_TIMEOUT_MS);
        int r = vsock_proc_attach(c, 7, NULL, &opts, &io, &call, NULL, end);
        snprintf(diag, size, "%s", call.remote_error);
        vsock_conn_close(c);
        const char *failure = fake_agent_join(&fa);
        if (failure)
                fail_msg("fake agent: %s", failure);
        return r;
}

static void test_output_gap_end(void **state) {
        static const struct frame_spec f[] = {
                { EXT_MSG_PROC_GAP, 0, 10, NULL },
                { EXT_MSG_PROC_OUTPUT, 10, 0, "abc" },
                { EXT_MSG_PROC_OUTPUT, 13, 0, "de" },
                { EXT_MSG_PROC_END, 15, 0, NULL },
        };
        struct got g = { .out = BUF_INIT(0) };
        struct vsock_proc_end end;
        char diag[512];
        assert_int_equal(run(f, 4, 0, &g, &end, diag, sizeof diag), 0);
        assert_int_equal(g.gaps, 1);
        assert_int_equal(g.gap_to, 10);
        assert_int_equal(buf_size(&g.out), 5);
        assert_memory_equal(buf_head(&g.out), "abcde", 5);
        assert_string_equal(end.reason, "exit");
        assert_int_equal(end.exit_code, 3);
        assert_int_equal(end.offset, 15);
        buf_free(&g.out);
}

static void test_offsets_must_be_contiguous(void **state) {
        static const struct frame_spec skip[] = {
                { EXT_MSG_PROC_OUTPUT, 0, 0, "abc" },
                { EXT_MSG_PROC_OUTPUT, 5, 0, "x" },
        };
        struct got g = { .out = BUF_INIT(0) };
        struct vsock_proc_end end;
        char diag[512];
        int r = run(skip, 2, 0, &g, &end, diag, sizeof diag);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_DECODE);
        assert_non_null(strstr(diag, "ProcOutput"));
        assert_int_equal(buf_size(&g.out), 3);
        buf_free(&g.out);

        /* A gap that does not start where the output stopped. */
        static const struct frame_spec gap[] = {
                { EXT_MSG_PROC_OUTPUT, 0, 0, "abc" },
                { EXT_MSG_PROC_GAP, 1, 9, NULL },
        };
        g = (struct got) { .out = BUF_INIT(0) };
        r = run(gap, 2, 0, &g, &end, diag, sizeof diag);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_DECODE);
        assert_non_null(strstr(diag, "ProcGap"));
        buf_free(&g.out);

        /* Output before the offset asked for. */
        static const struct frame_spec early[] = {
                { EXT_MSG_PROC_OUTPUT, 0, 0, "abc" },
        };
        g = (struct got) { .out = BUF_INIT(0) };
        r = run(early, 1, 2, &g, &end, diag, sizeof diag);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_DECODE);
        assert_int_equal(buf_size(&g.out), 0);
        buf_free(&g.out);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_output_gap_end),
                cmocka_unit_test(test_offsets_must_be_contiguous),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
