/* The message layer against the golden Go vectors (tests/data/
 * wire-vectors.jsonl, via $VECTORS):
 *   (a) every host-side vector: the C struct mirroring its Go `input` is
 *       encoded and compared byte for byte with payload_b64;
 *   (b) every JSON vector (host and agent, and the Go 1.22 variant) is
 *       decoded and its fields checked;
 *   (c) every frame: header = type + big-endian length, and the binary
 *       payloads (Exit, Resize, Signal) encode/decode to frame_hex.
 * A final test asserts that each of the 66 vectors was checked. Then the
 * edge cases: rejections, nesting, many env keys, binary data, Go's key
 * folding, null handling, wiping. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/buf.h"
#include "lib/base64.h"
#include "lib/json_enc.h"
#include "lib/msg-internal.h"
#include "vsock/error.h"
#include "vsock/frame.h"
#include "vsock/msg.h"

#define DECODE_ERR VSOCK_ERR(VSOCK_E_DECODE, EINVAL)

/* ---- the vectors file --------------------------------------------------- */

enum { DONE_ENC = 1, DONE_DEC = 2, DONE_FRAME = 4 };

struct vector {
        char *name;
        char *shape;
        int msg_type; /* -1 for null */
        uint8_t *payload;
        size_t payload_len;
        uint8_t *payload122; /* payload_b64_go1_22plus, or NULL */
        size_t payload122_len;
        uint8_t *frame; /* NULL when frame_hex is null */
        size_t frame_len;
        unsigned done;
};

static struct vector vecs[128];
static size_t n_vecs;

static uint8_t *b64_to_bytes(const char *s, size_t *ret_len) {
        size_t len = strlen(s);
        uint8_t *d = malloc(base64_decoded_max(len) + 1);
        assert_non_null(d);
        assert_int_equal(base64_decode(s, len, d, ret_len), 0);
        return d;
}

static uint8_t *hex_to_bytes(const char *s, size_t *ret_len) {
        size_t len = strlen(s);
        assert_int_equal(len % 2, 0);
        uint8_t *d = malloc(len / 2 + 1);
        assert_non_null(d);
        for (size_t i = 0; i < len / 2; i++) {
                unsigned x;
                assert_int_equal(sscanf(s + 2 * i, "%2x", &x), 1);
                d[i] = (uint8_t) x;
        }
        *ret_len = len / 2;
        return d;
}

static int load_vectors(void **state) {
        const char *path = getenv("VECTORS");
        if (!path)
                path = "tests/data/wire-vectors.jsonl";
        FILE *f = fopen(path, "re");
        if (!f) {
                fprintf(stderr, "cannot open vectors %s\n", path);
                return -1;
        }
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while ((n = getline(&line, &cap, f)) > 0) {
                json_error_t e;
                json_t *o = json_loadb(line, (size_t) n, 0, &e);
                if (!o || n_vecs >= sizeof vecs / sizeof vecs[0])
                        return -1;
                struct vector *v = &vecs[n_vecs++];
                v->name = strdup(json_string_value(json_object_get(o, "name")));
                v->shape = strdup(json_string_value(json_object_get(o, "struct")));
                json_t *t = json_object_get(o, "msg_type");
                v->msg_type = json_is_integer(t) ? (int) json_integer_value(t) : -1;
                v->payload = b64_to_bytes(json_string_value(json_object_get(o, "payload_b64")), &v->payload_len);
                json_t *p122 = json_object_get(o, "payload_b64_go1_22plus");
                if (p122)
                        v->payload122 = b64_to_bytes(json_string_value(p122), &v->payload122_len);
                json_t *fh = json_object_get(o, "frame_hex");
                if (json_is_string(fh))
                        v->frame = hex_to_bytes(json_string_value(fh), &v->frame_len);
                json_decref(o);
        }
        free(line);
        fclose(f);
        return n_vecs == 66 ? 0 : -1;
}

static int free_vectors(void **state) {
        for (size_t i = 0; i < n_vecs; i++) {
                free(vecs[i].name);
                free(vecs[i].shape);
                free(vecs[i].payload);
                free(vecs[i].payload122);
                free(vecs[i].frame);
        }
        return 0;
}

static struct vector *vec(const char *name) {
        for (size_t i = 0; i < n_vecs; i++)
                if (strcmp(vecs[i].name, name) == 0)
                        return &vecs[i];
        print_error("no vector named %s\n", name);
        fail();
        return NULL;
}

static bool str_ends_with(const char *s, const char *suffix) {
        size_t a = strlen(s), b = strlen(suffix);
        return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* ---- the Go inputs, mirrored as C structs ----------------------------------- */

enum kind { K_EXEC, K_TTY, K_RESP, K_PF, K_WS, K_WF, K_PATH, K_FI, K_FR };

enum {
        ENC_HOST = 1,  /* host-side vector: the host encoder must reproduce it */
        ENC_AGENT = 2, /* agent ExecResponse: msg_encode_exec_response_agent */
        OMIT = 4,      /* decoded value = input with omitempty's losses */
};

struct mcase {
        const char *name;
        enum kind kind;
        unsigned flags;
        const void *in;     /* the Go value */
        const void *expect; /* decoded value when it differs from in */
};

#define BYTES(lit) { .data = (uint8_t *) (lit), .len = sizeof(lit) - 1, .present = true }
#define EMPTY_BYTES { .data = (uint8_t *) "", .len = 0, .present = true }
#define STRV(...) .args = (char *[]) { __VA_ARGS__ }, .n_args = sizeof((char *[]) { __VA_ARGS__ }) / sizeof(char *)
#define ENV(...)                                                     \
        .env = (struct vsock_env[]) { __VA_ARGS__ },                 \
        .n_env = sizeof((struct vsock_env[]) { __VA_ARGS__ }) / sizeof(struct vsock_env)
#define EXEC(...) &(struct vsock_exec_request) { __VA_ARGS__ }
#define RESP(...) &(struct vsock_exec_response) { __VA_ARGS__ }
#define H (ENC_HOST | OMIT)

static const struct mcase cases[] = {
        { "exec_host_minimal", K_EXEC, H, EXEC(.command = "true") },
        { "exec_host_zero", K_EXEC, H, EXEC(.command = "") },
        { "exec_host_all_fields", K_EXEC, H,
          EXEC(.command = "ls -la", STRV("-a", "b c"), .working_dir = "/work",
               /* deliberately unsorted: the encoder sorts an index */
               ENV({ "PATH", "/usr/bin" }, { "B", "2" }, { "A", "1" }), .stdin_data = BYTES("hello\n"),
               .user = "1000:1000") },
        { "exec_host_empty_nonnil", K_EXEC, H,
          EXEC(.command = "x", .args = (char *[]) { NULL }, .n_args = 0, .working_dir = "",
               .env = (struct vsock_env[]) { { NULL, NULL } }, .n_env = 0, .stdin_data = EMPTY_BYTES, .user = "") },
        { "exec_host_stream_same_body", K_EXEC, H, EXEC(.command = "echo hi", .working_dir = "/tmp") },
        { "exec_host_pipe_with_env_user", K_EXEC, H,
          EXEC(.command = "cat", ENV({ "TERM", "xterm" }), .user = "nobody") },
        { "exec_host_env_key_order", K_EXEC, H,
          EXEC(.command = "env",
               ENV({ "a1", "5" }, { "\xc3\x89", "6" }, { "Z9", "4" }, { "a", "1" }, { "_", "3" }, { "B", "2" },
                   { "AA", "7" }, { "A", "8" }, { "", "empty-key" })) },
        { "exec_host_html_chars", K_EXEC, H, EXEC(.command = "echo \"<a href='x'>&amp;</a>\"") },
        /* exec_host_backslash_controls: its command holds a NUL, which a C
         * string cannot; see test_vector_backslash_controls. */
        { "exec_host_unicode", K_EXEC, H,
          EXEC(.command = "echo h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x9a\x80",
               .working_dir = "/tmp/\xc3\xbcn\xc3\xaf") },
        { "exec_host_line_separators", K_EXEC, H, EXEC(.command = "a\xe2\x80\xa8" "b\xe2\x80\xa9" "c") },
        { "exec_host_invalid_utf8", K_EXEC, H,
          EXEC(.command = "bad\xff\xfe end\xc3", ENV({ "K\xff", "v\x80" })),
          /* Go's decoder sees only the \ufffd escapes: U+FFFD comes back. */
          EXEC(.command = "bad\xef\xbf\xbd\xef\xbf\xbd end\xef\xbf\xbd", ENV({ "K\xef\xbf\xbd", "v\xef\xbf\xbd" })) },
        { "exec_host_stdin_pad2", K_EXEC, H, EXEC(.command = "cat", .stdin_data = BYTES("\x00")) },
        { "exec_host_stdin_pad1", K_EXEC, H, EXEC(.command = "cat", .stdin_data = BYTES("\x00\xff")) },
        { "exec_host_stdin_pad0_binary", K_EXEC, H,
          EXEC(.command = "cat", .stdin_data = BYTES("\xfb\xff\xbf\x00\x3e\x3f")) },
        { "exec_host_args_special", K_EXEC, H, EXEC(.command = "printf", STRV("", "\"q\"", "a\\b", "<>")) },
        { "tty_host_minimal", K_TTY, H, EXEC(.command = "sh", .rows = 0, .cols = 0) },
        { "tty_host_all_fields", K_TTY, H,
          EXEC(.command = "bash -l", STRV("-i"), .working_dir = "/root",
               ENV({ "TERM", "xterm-256color" }, { "LANG", "C.UTF-8" }), .rows = 0xffff, .cols = 1, .user = "0") },
        { "execresp_host_zero", K_RESP, H, RESP(.exit_code = 0) },
        { "execresp_host_stdout", K_RESP, H, RESP(.exit_code = 0, .stdout_data = BYTES("hi\n")) },
        { "execresp_host_all", K_RESP, H,
          RESP(.exit_code = 2, .stdout_data = BYTES("out"), .stderr_data = BYTES("err\n"),
               .error = "exec: \"x\": not found") },
        { "execresp_host_negative_exit", K_RESP, H, RESP(.exit_code = -1, .error = "signal: killed") },
        { "execresp_host_large_exit", K_RESP, H, RESP(.exit_code = 4294967295) },
        { "execresp_host_min_int32_exit", K_RESP, H, RESP(.exit_code = -2147483648LL, .stdout_data = EMPTY_BYTES) },
        { "portfwd_port_only", K_PF, H, &(struct vsock_port_forward_request) { .host = "", .port = 8080 } },
        { "portfwd_host_port", K_PF, H, &(struct vsock_port_forward_request) { .host = "::1", .port = 0xffff } },
        { "portfwd_zero", K_PF, H, &(struct vsock_port_forward_request) { .host = NULL, .port = 0 } },
        { "windowsize", K_WS, H, &(struct vsock_window_size) { .rows = 24, .cols = 80 } },
        { "writefile_basic", K_WF, H,
          &(struct vsock_write_file_request) { .path = "/tmp/a.txt", .content = BYTES("hello"), .mode = 0644 } },
        { "writefile_nil_content", K_WF, H, &(struct vsock_write_file_request) { .path = "/tmp/empty", .mode = 0 } },
        { "writefile_empty_content", K_WF, H,
          &(struct vsock_write_file_request) { .path = "/tmp/empty", .content = EMPTY_BYTES, .mode = 0600 } },
        { "writefile_mode_max", K_WF, H,
          &(struct vsock_write_file_request) { .path = "/x", .content = BYTES("\x01\x02\x03"), .mode = 0xffffffff } },
        { "writefile_mode_go_bits", K_WF, H,
          &(struct vsock_write_file_request) { .path = "/x", .content = BYTES("#!/bin/sh\n"), .mode = 0x9001ed } },
        { "readfile", K_PATH, H, &(struct vsock_path_request) { .path = "/etc/hostname" } },
        { "readfile_empty_path", K_PATH, H, &(struct vsock_path_request) { .path = "" } },
        { "listfiles", K_PATH, H, &(struct vsock_path_request) { .path = "/tmp/dir with space/\xc3\xbc&<" } },
        { "fileresp_empty", K_FR, H, &(struct vsock_file_response) {} },
        { "fileresp_content", K_FR, H, &(struct vsock_file_response) { .content = BYTES("line1\nline2\n") } },
        { "fileresp_error", K_FR, H,
          &(struct vsock_file_response) { .error = "open /nope: no such file or directory" } },
        { "fileresp_files", K_FR, H,
          &(struct vsock_file_response) {
                  .files = (struct vsock_file_info[]) {
                          { "a.txt", 5, 0x1a4, false },
                          { "dir", 4096, 0x800001ed, true },
                          { "link", 7, 0x80001ff, false },
                          { "big.img", 1099511627776LL, 0x180, false },
                          { "sticky", 0, 0x801001ff, true },
                  },
                  .n_files = 5 } },
        { "fileresp_files_emptyslice", K_FR, H,
          &(struct vsock_file_response) { .files = (struct vsock_file_info[]) { { 0 } }, .n_files = 0 } },
        { "fileinfo_zero", K_FI, H, &(struct vsock_file_info) { .name = "", .size = 0, .mode = 0, .is_dir = false } },
        /* Same tags as the host FileResponse, so the host encoder applies. */
        { "fileresp_agent_error", K_FR, H,
          &(struct vsock_file_response) { .error = "read_file exceeds 16777216 bytes: /big" } },

        /* Guest agent declarations: decoded exactly (no omitempty losses). */
        { "exec_agent_minimal", K_EXEC, 0, EXEC(.command = "true") },
        { "exec_agent_empty_nonnil", K_EXEC, 0, EXEC(.command = "", .stdin_data = EMPTY_BYTES) },
        { "exec_agent_all_fields", K_EXEC, 0,
          EXEC(.command = "ls", STRV("-l"), .working_dir = "/", ENV({ "A", "1" }, { "B", "2" }),
               .stdin_data = BYTES("in"), .user = "root") },
        { "tty_agent_minimal", K_TTY, 0, EXEC(.command = "sh", .rows = 24, .cols = 80) },
        { "execresp_agent_decode_error", K_RESP, ENC_AGENT,
          RESP(.exit_code = 0, .error = "unexpected end of JSON input") },
        { "execresp_agent_ran_no_output", K_RESP, ENC_AGENT,
          RESP(.exit_code = 0, .stdout_data = EMPTY_BYTES, .stderr_data = EMPTY_BYTES, .error = "") },
        { "execresp_agent_stream_final", K_RESP, ENC_AGENT, RESP(.exit_code = 143) },
        { "execresp_agent_output", K_RESP, ENC_AGENT,
          RESP(.exit_code = 0, .stdout_data = BYTES("hi\n"), .stderr_data = EMPTY_BYTES) },
        { "execresp_agent_start_error", K_RESP, ENC_AGENT,
          RESP(.exit_code = 1, .error = "fork/exec /proc/self/exe: no such file or directory") },
};

/* ---- comparison helpers ------------------------------------------------------- */

static void assert_str0(const char *got, const char *want) {
        /* NULL and "" are the same Go string. */
        assert_string_equal(got ? got : "", want ? want : "");
}

static void assert_bytes(const struct vsock_bytes *got, const struct vsock_bytes *want, bool omit) {
        bool present = want->present && (!omit || want->len > 0);
        assert_int_equal(got->present, present);
        if (!present)
                return;
        assert_int_equal(got->len, want->len);
        if (want->len)
                assert_memory_equal(got->data, want->data, want->len);
}

static int env_ptr_cmp(const void *a, const void *b) {
        return strcmp((*(const struct vsock_env *const *) a)->key, (*(const struct vsock_env *const *) b)->key);
}

static void assert_exec(const struct vsock_exec_request *got, const struct vsock_exec_request *want, bool tty,
                        bool omit) {
        assert_non_null(got->command);
        assert_str0(got->command, want->command);
        assert_int_equal(got->n_args, want->n_args);
        for (size_t i = 0; i < want->n_args; i++)
                assert_str0(got->args[i], want->args[i]);
        assert_str0(got->working_dir, want->working_dir);
        /* The decoder sorts env by key. */
        assert_int_equal(got->n_env, want->n_env);
        const struct vsock_env **idx = calloc(want->n_env + 1, sizeof *idx);
        for (size_t i = 0; i < want->n_env; i++)
                idx[i] = &want->env[i];
        qsort(idx, want->n_env, sizeof *idx, env_ptr_cmp);
        for (size_t i = 0; i < want->n_env; i++) {
                assert_string_equal(got->env[i].key, idx[i]->key);
                assert_string_equal(got->env[i].value, idx[i]->value);
        }
        free(idx);
        if (tty) {
                assert_false(got->stdin_data.present);
                assert_int_equal(got->rows, want->rows);
                assert_int_equal(got->cols, want->cols);
        } else {
                assert_bytes(&got->stdin_data, &want->stdin_data, omit);
                assert_int_equal(got->rows, 0);
                assert_int_equal(got->cols, 0);
        }
        assert_str0(got->user, want->user);
        /* Optional strings come back NULL when absent or "". */
        if (!want->user || !*want->user)
                assert_null(got->user);
        if (!want->working_dir || !*want->working_dir)
                assert_null(got->working_dir);
}

static void assert_resp(const struct vsock_exec_response *got, const struct vsock_exec_response *want, bool omit) {
        assert_int_equal(got->exit_code, want->exit_code);
        assert_bytes(&got->stdout_data, &want->stdout_data, omit);
        assert_bytes(&got->stderr_data, &want->stderr_data, omit);
        assert_str0(got->error, want->error);
        if (!want->error || !*want->error)
                assert_null(got->error);
}

static void assert_file_info(const struct vsock_file_info *got, const struct vsock_file_info *want) {
        assert_non_null(got->name);
        assert_str0(got->name, want->name);
        assert_int_equal(got->size, want->size);
        assert_int_equal(got->mode, want->mode);
        assert_int_equal(got->is_dir, want->is_dir);
}

/* ---- (a) + (b): every JSON vector ---------------------------------------------- */

static int encode_case(const struct mcase *c, bool agent, struct buf *b) {
        switch (c->kind) {
        case K_EXEC:
                return msg_encode_exec_request(c->in, b);
        case K_TTY:
                return msg_encode_exec_tty_request(c->in, b);
        case K_RESP:
                return agent ? msg_encode_exec_response_agent(c->in, b) : msg_encode_exec_response(c->in, b);
        case K_PF:
                return msg_encode_port_forward_request(c->in, b);
        case K_WS:
                return msg_encode_window_size(c->in, b);
        case K_WF:
                return msg_encode_write_file_request(c->in, b);
        case K_PATH:
                return msg_encode_path_request(c->in, b);
        case K_FI:
                return msg_encode_file_info(c->in, b);
        case K_FR:
                return msg_encode_file_response(c->in, b);
        }
        return -EINVAL;
}

/* The public encoder for the same kind (malloc'd result). */
static int encode_case_public(const struct mcase *c, uint8_t **d, size_t *n) {
        switch (c->kind) {
        case K_EXEC:
                return vsock_exec_request_encode(c->in, d, n);
        case K_TTY:
                return vsock_exec_tty_request_encode(c->in, d, n);
        case K_RESP:
                return vsock_exec_response_encode(c->in, d, n);
        case K_PF:
                return vsock_port_forward_request_encode(c->in, d, n);
        case K_WS:
                return vsock_window_size_encode(c->in, d, n);
        case K_WF:
                return vsock_write_file_request_encode(c->in, d, n);
        case K_PATH:
                return vsock_path_request_encode(c->in, d, n);
        case K_FI:
                return vsock_file_info_encode(c->in, d, n);
        case K_FR:
                return vsock_file_response_encode(c->in, d, n);
        }
        return -EINVAL;
}

static void assert_payload(const struct vector *v, const uint8_t *got, size_t n) {
        if (n != v->payload_len || memcmp(got, v->payload, n) != 0) {
                print_error("%s:\n got  %.*s\n want %.*s\n", v->name, (int) n, (const char *) got,
                            (int) v->payload_len, (const char *) v->payload);
                fail();
        }
}

static void test_encode_vectors(void **state) {
        size_t count = 0;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                const struct mcase *c = &cases[i];
                if (!(c->flags & (ENC_HOST | ENC_AGENT)))
                        continue;
                struct vector *v = vec(c->name);
                bool agent = c->flags & ENC_AGENT;
                /* Host shapes, plus the agent's FileResponse (same tags). */
                if (!agent && !str_ends_with(v->shape, "(host)") && strchr(v->shape, '(') &&
                    strcmp(v->shape, "FileResponse(agent)") != 0)
                        fail_msg("%s: host encoder on shape %s", v->name, v->shape);

                /* Appending encoder, after some bytes already in the buffer. */
                struct buf b = BUF_INIT(0);
                assert_int_equal(buf_append_str(&b, "HDR.."), 0);
                assert_int_equal(encode_case(c, agent, &b), 0);
                assert_memory_equal(buf_head(&b), "HDR..", 5);
                assert_payload(v, buf_head(&b) + 5, buf_size(&b) - 5);
                buf_free(&b);

                if (!agent) {
                        uint8_t *d;
                        size_t n;
                        assert_int_equal(encode_case_public(c, &d, &n), 0);
                        assert_payload(v, d, n);
                        assert_int_equal(d[n], 0); /* NUL-terminated, not counted */
                        free(d);
                }
                v->done |= DONE_ENC;
                count++;
        }
        assert_int_equal(count, 42 + 5);
}

static void check_decode_case(const struct mcase *c, const uint8_t *payload, size_t len) {
        const void *want = c->expect ? c->expect : c->in;
        bool omit = c->flags & OMIT;
        const char *why = NULL;

        switch (c->kind) {
        case K_EXEC:
        case K_TTY: {
                bool tty = c->kind == K_TTY;
                struct vsock_exec_request r;
                assert_int_equal(vsock_exec_request_decode(payload, len, &r, &why), 0);
                assert_exec(&r, want, tty, omit);
                vsock_exec_request_clear(&r, true);
                /* And with the exact Go struct of the message type. */
                assert_int_equal(msg_decode_exec_request(payload, len, tty, &r, &why), 0);
                assert_exec(&r, want, tty, omit);
                vsock_exec_request_clear(&r, false);
                vsock_exec_request_clear(&r, false); /* twice is fine */
                break;
        }
        case K_RESP: {
                struct vsock_exec_response r;
                assert_int_equal(vsock_exec_response_decode(payload, len, &r, &why), 0);
                assert_resp(&r, want, omit);
                vsock_exec_response_clear(&r);
                break;
        }
        case K_PF: {
                const struct vsock_port_forward_request *w = want;
                struct vsock_port_forward_request r;
                assert_int_equal(vsock_port_forward_request_decode(payload, len, &r, &why), 0);
                assert_str0(r.host, w->host);
                if (!w->host || !*w->host)
                        assert_null(r.host);
                assert_int_equal(r.port, w->port);
                vsock_port_forward_request_clear(&r);
                break;
        }
        case K_WS: {
                const struct vsock_window_size *w = want;
                struct vsock_window_size r;
                assert_int_equal(vsock_window_size_decode(payload, len, &r, &why), 0);
                assert_int_equal(r.rows, w->rows);
                assert_int_equal(r.cols, w->cols);
                break;
        }
        case K_WF: {
                const struct vsock_write_file_request *w = want;
                struct vsock_write_file_request r;
                assert_int_equal(vsock_write_file_request_decode(payload, len, &r, &why), 0);
                assert_str0(r.path, w->path);
                assert_bytes(&r.content, &w->content, false); /* no omitempty */
                assert_int_equal(r.mode, w->mode);
                vsock_write_file_request_clear(&r);
                break;
        }
        case K_PATH: {
                const struct vsock_path_request *w = want;
                struct vsock_path_request r;
                assert_int_equal(vsock_path_request_decode(payload, len, &r, &why), 0);
                assert_non_null(r.path);
                assert_str0(r.path, w->path);
                vsock_path_request_clear(&r);
                break;
        }
        case K_FI: {
                struct vsock_file_info r;
                assert_int_equal(vsock_file_info_decode(payload, len, &r, &why), 0);
                assert_file_info(&r, want);
                vsock_file_info_clear(&r);
                break;
        }
        case K_FR: {
                const struct vsock_file_response *w = want;
                struct vsock_file_response r;
                assert_int_equal(vsock_file_response_decode(payload, len, &r, &why), 0);
                assert_bytes(&r.content, &w->content, omit);
                assert_int_equal(r.n_files, w->n_files);
                for (size_t i = 0; i < w->n_files; i++)
                        assert_file_info(&r.files[i], &w->files[i]);
                assert_str0(r.error, w->error);
                vsock_file_response_clear(&r);
                break;
        }
        }
}

static void test_decode_vectors(void **state) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                struct vector *v = vec(cases[i].name);
                check_decode_case(&cases[i], v->payload, v->payload_len);
                v->done |= DONE_DEC;
        }
}

/* The one vector whose command holds a NUL (and \b \f, which Go 1.22
 * writes differently). Encoding: the string writer with an explicit
 * length reproduces it. Decoding: both variants are rejected for the NUL,
 * and with the \u0000 escape removed both decode to the same command. */
static void test_vector_backslash_controls(void **state) {
        struct vector *v = vec("exec_host_backslash_controls");
        static const char cmd[] = "a\\b\t\n\r\x00\x01\b\f\x1f\x7f/";

        struct buf b = BUF_INIT(0);
        assert_int_equal(json_enc_raw(&b, "{\"command\":"), 0);
        assert_int_equal(json_enc_string(&b, cmd, sizeof cmd - 1), 0);
        assert_int_equal(buf_append_byte(&b, '}'), 0);
        assert_payload(v, buf_head(&b), buf_size(&b));
        buf_free(&b);
        v->done |= DONE_ENC;

        assert_non_null(v->payload122);
        assert_int_equal(v->payload_len, v->payload122_len + 8);
        const uint8_t *variants[2] = { v->payload, v->payload122 };
        size_t lens[2] = { v->payload_len, v->payload122_len };
        for (int k = 0; k < 2; k++) {
                struct vsock_exec_request r;
                const char *why = NULL;
                memset(&r, 0xa5, sizeof r);
                assert_int_equal(vsock_exec_request_decode(variants[k], lens[k], &r, &why), DECODE_ERR);
                assert_string_equal(why, "field \"command\": string contains NUL");
                assert_null(r.command); /* left zeroed */
                assert_int_equal(r.n_env, 0);

                /* Drop the \u0000 escape (6 bytes) and decode again. */
                char *s = strndup((const char *) variants[k], lens[k]);
                char *p = s ? strstr(s, "\\u0000") : NULL;
                if (!p)
                        abort(); /* (not assert: gcc must see p != NULL) */
                memmove(p, p + 6, strlen(p + 6) + 1);
                assert_int_equal(vsock_exec_request_decode(s, strlen(s), &r, &why), 0);
                assert_string_equal(r.command, "a\\b\t\n\r\x01\b\f\x1f\x7f/");
                vsock_exec_request_clear(&r, false);
                free(s);
        }
        v->done |= DONE_DEC;
}

/* ---- (c) frames ---------------------------------------------------------------- */

static void test_frames(void **state) {
        for (size_t i = 0; i < n_vecs; i++) {
                struct vector *v = &vecs[i];
                if (!v->frame) {
                        assert_int_equal(v->msg_type, -1);
                        continue;
                }
                /* type, big-endian length, payload. */
                assert_int_equal(v->frame_len, 5 + v->payload_len);
                uint8_t type;
                uint32_t len;
                assert_int_equal(vsock_frame_header_parse(v->frame, UINT32_MAX, &type, &len), 0);
                assert_int_equal(type, v->msg_type);
                assert_int_equal(len, v->payload_len);
                if (v->payload_len)
                        assert_memory_equal(v->frame + 5, v->payload, v->payload_len);
                assert_non_null(vsock_msg_type_name((uint8_t) v->msg_type));
                if (strcmp(v->shape, "frame") != 0)
                        continue;

                const uint8_t *p = v->frame + 5;
                uint8_t out[4];
                switch (v->msg_type) {
                case VSOCK_MSG_EXIT: {
                        int32_t code;
                        assert_int_equal(vsock_exit_decode(p, len, &code), 0);
                        vsock_exit_encode(code, out);
                        assert_memory_equal(out, p, 4);
                        int32_t want = strcmp(v->name, "frame_exit_0") == 0     ? 0
                                       : strcmp(v->name, "frame_exit_1") == 0   ? 1
                                       : strcmp(v->name, "frame_exit_143") == 0 ? 143
                                                                                : -1;
                        assert_int_equal(code, want);
                        break;
                }
                case VSOCK_MSG_RESIZE: {
                        uint16_t rows, cols;
                        assert_int_equal(vsock_resize_decode(p, len, &rows, &cols), 0);
                        vsock_resize_encode(rows, cols, out);
                        assert_memory_equal(out, p, 4);
                        if (strcmp(v->name, "frame_resize_24x80") == 0) {
                                assert_int_equal(rows, 24);
                                assert_int_equal(cols, 80);
                        } else {
                                assert_int_equal(rows, 0xffff);
                                assert_int_equal(cols, 1);
                        }
                        break;
                }
                case VSOCK_MSG_SIGNAL: {
                        int sig;
                        assert_int_equal(vsock_signal_decode(p, len, &sig), 0);
                        int want = strstr(v->name, "sigterm") ? 15 : strstr(v->name, "sigint") ? 2 : 9;
                        assert_int_equal(sig, want);
                        break;
                }
                case VSOCK_MSG_STDIN:
                case VSOCK_MSG_READY:
                case VSOCK_MSG_STDOUT:
                case VSOCK_MSG_STDERR:
                        /* Raw payloads: the frame check above is all there is. */
                        break;
                default:
                        fail_msg("unexpected frame vector %s", v->name);
                }
                v->done |= DONE_FRAME;
        }
}

static void test_every_vector_checked(void **state) {
        size_t host = 0;
        for (size_t i = 0; i < n_vecs; i++) {
                const struct vector *v = &vecs[i];
                bool is_frame = strcmp(v->shape, "frame") == 0;
                bool is_host = !is_frame && (!strchr(v->shape, '(') || str_ends_with(v->shape, "(host)"));
                unsigned need = is_frame ? DONE_FRAME : DONE_DEC;
                if (is_host) {
                        need |= DONE_ENC;
                        host++;
                }
                if ((v->done & need) != need)
                        fail_msg("vector %s not fully checked (%u of %u)", v->name, v->done, need);
        }
        assert_int_equal(host, 42);
}

/* ---- rejections ------------------------------------------------------------------ */

struct reject {
        int which; /* 0 exec, 1 resp, 2 pf, 3 ws, 4 wf, 5 path, 6 fi, 7 fr */
        const char *json;
        const char *why; /* expected message, or NULL to only check failure */
};

static int decode_any(int which, const char *json, size_t len, const char **why) {
        union {
                struct vsock_exec_request e;
                struct vsock_exec_response r;
                struct vsock_port_forward_request p;
                struct vsock_window_size w;
                struct vsock_write_file_request f;
                struct vsock_path_request q;
                struct vsock_file_info i;
                struct vsock_file_response s;
        } u;
        memset(&u, 0x5a, sizeof u);
        int r;
        switch (which) {
        case 0:
                r = vsock_exec_request_decode(json, len, &u.e, why);
                if (r == 0)
                        vsock_exec_request_clear(&u.e, true);
                else
                        assert_null(u.e.command), assert_null(u.e.env), assert_int_equal(u.e.n_args, 0);
                return r;
        case 1:
                r = vsock_exec_response_decode(json, len, &u.r, why);
                if (r == 0)
                        vsock_exec_response_clear(&u.r);
                else
                        assert_false(u.r.stdout_data.present), assert_int_equal(u.r.exit_code, 0);
                return r;
        case 2:
                r = vsock_port_forward_request_decode(json, len, &u.p, why);
                if (r == 0)
                        vsock_port_forward_request_clear(&u.p);
                else
                        assert_int_equal(u.p.port, 0);
                return r;
        case 3:
                r = vsock_window_size_decode(json, len, &u.w, why);
                if (r < 0)
                        assert_int_equal(u.w.rows, 0);
                return r;
        case 4:
                r = vsock_write_file_request_decode(json, len, &u.f, why);
                if (r == 0)
                        vsock_write_file_request_clear(&u.f);
                else
                        assert_null(u.f.path), assert_false(u.f.content.present);
                return r;
        case 5:
                r = vsock_path_request_decode(json, len, &u.q, why);
                if (r == 0)
                        vsock_path_request_clear(&u.q);
                else
                        assert_null(u.q.path);
                return r;
        case 6:
                r = vsock_file_info_decode(json, len, &u.i, why);
                if (r == 0)
                        vsock_file_info_clear(&u.i);
                else
                        assert_null(u.i.name);
                return r;
        case 7:
                r = vsock_file_response_decode(json, len, &u.s, why);
                if (r == 0)
                        vsock_file_response_clear(&u.s);
                else
                        assert_null(u.s.files), assert_int_equal(u.s.n_files, 0);
                return r;
        }
        return -EINVAL;
}

static void test_rejections(void **state) {
        static const struct reject rej[] = {
                /* top level */
                { 0, "", "unexpected end of JSON input" },
                { 0, "{", "unexpected end of JSON input" },
                { 0, "{} x", "invalid character after top-level value" },
                { 0, "[]", "expected JSON object" },
                { 0, "null", "expected JSON object" },
                { 0, "\"x\"", "expected JSON object" },
                { 0, "1", "expected JSON object" },
                { 0, "{\"command\":\"\xff\"}", "invalid UTF-8 in JSON" },
                { 0, "{\"a\\u0000\":1}", "NUL byte in object key" },
                { 0, "{'command':1}", "malformed JSON" },
                /* wrong types */
                { 0, "{\"command\":1}", "field \"command\": expected string" },
                { 0, "{\"command\":[]}", "field \"command\": expected string" },
                { 0, "{\"args\":\"x\"}", "field \"args\": expected array of strings" },
                { 0, "{\"args\":[\"a\",1]}", "field \"args\": expected array of strings" },
                { 0, "{\"args\":{}}", "field \"args\": expected array of strings" },
                { 0, "{\"env\":[]}", "field \"env\": expected object of strings" },
                { 0, "{\"env\":{\"A\":1}}", "field \"env\": expected object of strings" },
                { 0, "{\"env\":{\"A\":\"1\",\"B\":true}}", "field \"env\": expected object of strings" },
                { 0, "{\"stdin\":1}", "field \"stdin\": expected base64 string" },
                { 0, "{\"stdin\":{}}", "field \"stdin\": expected base64 string" },
                { 0, "{\"user\":false}", "field \"user\": expected string" },
                { 0, "{\"working_dir\":0}", "field \"working_dir\": expected string" },
                { 0, "{\"rows\":\"1\"}", "field \"rows\": expected number" },
                { 1, "{\"exit_code\":\"0\"}", "field \"exit_code\": expected number" },
                { 1, "{\"exit_code\":true}", "field \"exit_code\": expected number" },
                { 1, "{\"error\":{}}", "field \"error\": expected string" },
                { 2, "{\"port\":\"80\"}", "field \"port\": expected number" },
                { 2, "{\"host\":1}", "field \"host\": expected string" },
                { 4, "{\"mode\":\"0644\"}", "field \"mode\": expected number" },
                { 4, "{\"path\":null,\"content\":7}", "field \"content\": expected base64 string" },
                { 5, "{\"path\":[]}", "field \"path\": expected string" },
                { 6, "{\"is_dir\":\"true\"}", "field \"is_dir\": expected boolean" },
                { 6, "{\"is_dir\":1}", "field \"is_dir\": expected boolean" },
                { 6, "{\"size\":\"1\"}", "field \"size\": expected number" },
                { 7, "{\"files\":{}}", "field \"files\": expected array of objects" },
                { 7, "{\"files\":[1]}", "field \"files\": expected array of objects" },
                { 7, "{\"files\":[{\"name\":1}]}", "field \"files[].name\": expected string" },
                { 7, "{\"files\":[{\"name\":\"a\"},{\"mode\":-1}]}", "field \"files[].mode\": number out of range for uint32" },
                { 7, "{\"content\":\"!!!!\"}", "field \"content\": invalid base64" },
                /* invalid base64 (Go's StdEncoding) */
                { 0, "{\"stdin\":\"aGk\"}", "field \"stdin\": invalid base64" },
                { 0, "{\"stdin\":\"aG=k\"}", "field \"stdin\": invalid base64" },
                { 0, "{\"stdin\":\"aGk=x\"}", "field \"stdin\": invalid base64" },
                { 0, "{\"stdin\":\"a Gk=\"}", "field \"stdin\": invalid base64" },
                { 0, "{\"stdin\":\"aGk-\"}", "field \"stdin\": invalid base64" },
                { 1, "{\"stdout\":\"aGk_\"}", "field \"stdout\": invalid base64" },
                { 1, "{\"stderr\":\"=\"}", "field \"stderr\": invalid base64" },
                { 4, "{\"content\":\"AAAA====\"}", "field \"content\": invalid base64" },
                /* NUL in strings */
                { 0, "{\"command\":\"a\\u0000\"}", "field \"command\": string contains NUL" },
                { 0, "{\"args\":[\"ok\",\"\\u0000\"]}", "field \"args\": string contains NUL" },
                { 0, "{\"env\":{\"A\":\"x\\u0000y\"}}", "field \"env\": string contains NUL" },
                { 0, "{\"working_dir\":\"/\\u0000\"}", "field \"working_dir\": string contains NUL" },
                { 0, "{\"user\":\"\\u0000\"}", "field \"user\": string contains NUL" },
                { 1, "{\"error\":\"\\u0000\"}", "field \"error\": string contains NUL" },
                { 2, "{\"host\":\"::1\\u0000evil\"}", "field \"host\": string contains NUL" },
                { 4, "{\"path\":\"/etc/passwd\\u0000.txt\"}", "field \"path\": string contains NUL" },
                { 5, "{\"path\":\"\\u0000\"}", "field \"path\": string contains NUL" },
                { 6, "{\"name\":\"a\\u0000\"}", "field \"name\": string contains NUL" },
                { 7, "{\"files\":[{\"name\":\"a\\u0000\"}]}", "field \"files[].name\": string contains NUL" },
                /* numbers out of range for the Go type */
                { 2, "{\"port\":70000}", "field \"port\": number out of range for uint16" },
                { 2, "{\"port\":65536}", "field \"port\": number out of range for uint16" },
                { 2, "{\"port\":-1}", "field \"port\": number out of range for uint16" },
                { 2, "{\"port\":80.0}", "field \"port\": expected integer" },
                { 2, "{\"port\":8e1}", "field \"port\": expected integer" },
                { 3, "{\"rows\":65536}", "field \"rows\": number out of range for uint16" },
                { 3, "{\"cols\":-5}", "field \"cols\": number out of range for uint16" },
                { 0, "{\"cols\":1.5}", "field \"cols\": expected integer" },
                { 4, "{\"mode\":4294967296}", "field \"mode\": number out of range for uint32" },
                { 4, "{\"mode\":-1}", "field \"mode\": number out of range for uint32" },
                { 6, "{\"mode\":4294967296}", "field \"mode\": number out of range for uint32" },
                { 1, "{\"exit_code\":1.5}", "field \"exit_code\": expected integer" },
                { 1, "{\"exit_code\":1e3}", "field \"exit_code\": expected integer" },
                { 1, "{\"exit_code\":9223372036854775808}", "number out of range" },
                { 6, "{\"size\":-9223372036854775809}", "number out of range" },
                { 0, "{\"stdin\":[256]}", "field \"stdin\": invalid byte array" },
                { 0, "{\"stdin\":[-1]}", "field \"stdin\": invalid byte array" },
                { 0, "{\"stdin\":[1.0]}", "field \"stdin\": invalid byte array" },
                { 0, "{\"stdin\":[\"a\"]}", "field \"stdin\": invalid byte array" },
        };
        for (size_t i = 0; i < sizeof rej / sizeof rej[0]; i++) {
                const char *why = NULL;
                int r = decode_any(rej[i].which, rej[i].json, strlen(rej[i].json), &why);
                if (r != DECODE_ERR || !why || (rej[i].why && strcmp(why, rej[i].why) != 0))
                        fail_msg("%s: r=%d why=%s (want %s)", rej[i].json, r, why ? why : "(null)", rej[i].why);
        }
        /* The same with ret_why == NULL, and NULL data. */
        assert_int_equal(decode_any(0, "{\"command\":1}", 13, NULL), DECODE_ERR);
        const char *why = NULL;
        struct vsock_path_request p;
        assert_int_equal(vsock_path_request_decode(NULL, 0, &p, &why), DECODE_ERR);
        assert_non_null(why);
        assert_int_equal(vsock_path_request_decode("{}", 2, NULL, &why), -EINVAL);
}

static void test_deep_nesting(void **state) {
        size_t n = 100000;
        char *s = malloc(n + 32);
        assert_non_null(s);
        memset(s, '[', n);
        const char *why = NULL;
        for (int w = 0; w < 8; w++) {
                why = NULL;
                assert_int_equal(decode_any(w, s, n, &why), DECODE_ERR);
                assert_string_equal(why, "JSON nested too deeply");
        }
        /* Inside a known field and inside an unknown one. */
        memcpy(s, "{\"args\":", 8);
        assert_int_equal(decode_any(0, s, n, &why), DECODE_ERR);
        assert_string_equal(why, "JSON nested too deeply");
        memcpy(s, "{\"zzzz\":", 8);
        assert_int_equal(decode_any(7, s, n, &why), DECODE_ERR);
        assert_string_equal(why, "JSON nested too deeply");
        /* Balanced and closed: still too deep. */
        size_t d = 5000;
        char *t = malloc(2 * d + 32);
        if (!t)
                abort();
        memcpy(t, "{\"x\":", 5);
        memset(t + 5, '[', d);
        memset(t + 5 + d, ']', d);
        strcpy(t + 5 + 2 * d, "}");
        assert_int_equal(decode_any(0, t, strlen(t), &why), DECODE_ERR);
        /* Moderate nesting in an unknown field is fine. */
        strcpy(t, "{\"x\":[[[[[[[[[[{}]]]]]]]]]],\"command\":\"ok\"}");
        assert_int_equal(decode_any(0, t, strlen(t), &why), 0);
        free(t);
        free(s);
}

/* ---- Go decoding semantics ----------------------------------------------------- */

static void test_key_folding(void **state) {
        assert_true(msg_key_matches("command", "command", 7));
        assert_true(msg_key_matches("command", "Command", 7));
        assert_true(msg_key_matches("command", "COMMAND", 7));
        assert_true(msg_key_matches("working_dir", "WORKING_DIR", 11));
        assert_true(msg_key_matches("working_dir", "wor\xe2\x84\xaaing_dir", 13)); /* Kelvin sign */
        assert_true(msg_key_matches("user", "u\xc5\xbf" "er", 5));                 /* long s */
        assert_true(msg_key_matches("is_dir", "I\xc5\xbf_DIR", 7));
        assert_false(msg_key_matches("command", "comman", 6));
        assert_false(msg_key_matches("command", "commands", 8));
        assert_false(msg_key_matches("command", "c\xc5\xbfmmand", 8)); /* long s only folds to s */
        assert_false(msg_key_matches("working_dir", "working-dir", 11));
        assert_false(msg_key_matches("working_dir", "working\x7f" "dir", 11));
        assert_false(msg_key_matches("exit_code", "exit\x7f" "code", 9)); /* '_' ^ 0x20 is DEL */
        assert_false(msg_key_matches("mode", "mod\xc3\xa9", 5));
        assert_false(msg_key_matches("rows", "row\xc5", 4));

        struct vsock_exec_request r;
        const char *j = "{\"COMMAND\":\"ls\",\"Args\":[\"-l\"],\"wor\xe2\x84\xaaing_dir\":\"/w\","
                        "\"ENV\":{\"k\":\"v\"},\"StDiN\":\"aGk=\",\"u\xc5\xbf" "er\":\"me\",\"ROWS\":3,\"cOlS\":4}";
        assert_int_equal(vsock_exec_request_decode(j, strlen(j), &r, NULL), 0);
        assert_string_equal(r.command, "ls");
        assert_int_equal(r.n_args, 1);
        assert_string_equal(r.working_dir, "/w");
        assert_int_equal(r.n_env, 1);
        assert_string_equal(r.env[0].key, "k"); /* map keys never fold */
        assert_int_equal(r.stdin_data.len, 2);
        assert_string_equal(r.user, "me");
        assert_int_equal(r.rows, 3);
        assert_int_equal(r.cols, 4);
        vsock_exec_request_clear(&r, false);

        /* Duplicate keys: the last one wins, whether exact or folded. */
        j = "{\"command\":\"a\",\"COMMAND\":\"b\"}";
        assert_int_equal(vsock_exec_request_decode(j, strlen(j), &r, NULL), 0);
        assert_string_equal(r.command, "b");
        vsock_exec_request_clear(&r, false);
        j = "{\"Command\":\"b\",\"command\":\"a\",\"command\":\"c\"}";
        assert_int_equal(vsock_exec_request_decode(j, strlen(j), &r, NULL), 0);
        assert_string_equal(r.command, "c");
        vsock_exec_request_clear(&r, false);
        j = "{\"command\":\"x\",\"env\":{\"A\":\"1\",\"B\":\"2\",\"A\":\"3\"},\"args\":[\"1\"],\"ARGS\":[\"2\",\"3\"]}";
        assert_int_equal(vsock_exec_request_decode(j, strlen(j), &r, NULL), 0);
        assert_int_equal(r.n_env, 2);
        assert_string_equal(r.env[0].key, "A");
        assert_string_equal(r.env[0].value, "3");
        assert_int_equal(r.n_args, 2);
        assert_string_equal(r.args[0], "2");
        vsock_exec_request_clear(&r, false);

        struct vsock_exec_response e;
        j = "{\"EXIT_CODE\":7,\"Stdout\":\"aGk=\",\"exit_code\":8}";
        assert_int_equal(vsock_exec_response_decode(j, strlen(j), &e, NULL), 0);
        assert_int_equal(e.exit_code, 8);
        assert_int_equal(e.stdout_data.len, 2);
        vsock_exec_response_clear(&e);
}

static void test_null_and_unknown(void **state) {
        struct vsock_exec_request r;
        const char *j = "{\"command\":null,\"args\":[null,\"x\"],\"working_dir\":null,\"env\":{\"A\":null},"
                        "\"stdin\":null,\"user\":null,\"rows\":null,\"bogus\":{\"a\":[1,2,{\"b\":null}]},\"n\":1e300}";
        assert_int_equal(vsock_exec_request_decode(j, strlen(j), &r, NULL), 0);
        assert_string_equal(r.command, "");
        assert_int_equal(r.n_args, 2);
        assert_string_equal(r.args[0], "");
        assert_string_equal(r.args[1], "x");
        assert_null(r.working_dir);
        assert_int_equal(r.n_env, 1);
        assert_string_equal(r.env[0].value, "");
        assert_false(r.stdin_data.present);
        assert_null(r.user);
        vsock_exec_request_clear(&r, false);

        /* null after a value: slices/[]byte become nil, strings keep theirs. */
        j = "{\"command\":\"keep\",\"Command\":null,\"stdin\":\"aGk=\",\"STDIN\":null,\"args\":[\"a\"],\"Args\":null}";
        assert_int_equal(vsock_exec_request_decode(j, strlen(j), &r, NULL), 0);
        assert_string_equal(r.command, "keep");
        assert_false(r.stdin_data.present);
        assert_int_equal(r.n_args, 0);
        assert_null(r.args);
        vsock_exec_request_clear(&r, false);

        /* []byte from an array of numbers, as Go accepts. */
        j = "{\"stdin\":[104,105,null,255]}";
        assert_int_equal(vsock_exec_request_decode(j, strlen(j), &r, NULL), 0);
        assert_true(r.stdin_data.present);
        assert_int_equal(r.stdin_data.len, 4);
        assert_memory_equal(r.stdin_data.data, "hi\0\xff", 4);
        vsock_exec_request_clear(&r, true);
        j = "{\"stdin\":[]}";
        assert_int_equal(vsock_exec_request_decode(j, strlen(j), &r, NULL), 0);
        assert_true(r.stdin_data.present);
        assert_int_equal(r.stdin_data.len, 0);
        vsock_exec_request_clear(&r, true);

        struct vsock_file_response f;
        j = "{\"files\":[null,{\"name\":\"a\",\"size\":null,\"extra\":[1]},{}],\"content\":\"\",\"error\":\"\"}";
        assert_int_equal(vsock_file_response_decode(j, strlen(j), &f, NULL), 0);
        assert_int_equal(f.n_files, 3);
        assert_string_equal(f.files[0].name, "");
        assert_string_equal(f.files[1].name, "a");
        assert_string_equal(f.files[2].name, "");
        assert_true(f.content.present);
        assert_int_equal(f.content.len, 0);
        assert_null(f.error);
        vsock_file_response_clear(&f);

        struct vsock_port_forward_request p;
        j = " \r\n\t{\"port\":null , \"host\":\"\"}\n";
        assert_int_equal(vsock_port_forward_request_decode(j, strlen(j), &p, NULL), 0);
        assert_int_equal(p.port, 0);
        assert_null(p.host);
        vsock_port_forward_request_clear(&p);

        /* Typed decoding ignores the other shape's fields, as Go does. */
        j = "{\"command\":\"sh\",\"rows\":\"x\",\"cols\":-1}";
        assert_int_equal(msg_decode_exec_request(j, strlen(j), false, &r, NULL), 0);
        assert_int_equal(r.rows, 0);
        vsock_exec_request_clear(&r, false);
        assert_int_equal(vsock_exec_request_decode(j, strlen(j), &r, NULL), DECODE_ERR);
        j = "{\"command\":\"sh\",\"stdin\":\"!!\",\"rows\":2}";
        assert_int_equal(msg_decode_exec_request(j, strlen(j), true, &r, NULL), 0);
        assert_false(r.stdin_data.present);
        assert_int_equal(r.rows, 2);
        vsock_exec_request_clear(&r, false);
        assert_int_equal(msg_decode_exec_request(j, strlen(j), false, &r, NULL), DECODE_ERR);
}

/* ---- binary data, many keys, round trips -------------------------------------------- */

static void test_binary_round_trips(void **state) {
        uint8_t all[256 * 2 + 1];
        for (size_t i = 0; i < sizeof all; i++)
                all[i] = (uint8_t) (i * 131);
        all[0] = 0;
        for (size_t n = 0; n <= sizeof all; n += (n < 8 ? 1 : 97)) {
                struct vsock_bytes b = { .data = all, .len = n, .present = true };
                struct vsock_exec_response in = { .exit_code = -(int64_t) n, .stdout_data = b, .stderr_data = b };
                uint8_t *d;
                size_t len;
                assert_int_equal(vsock_exec_response_encode(&in, &d, &len), 0);
                struct vsock_exec_response out;
                assert_int_equal(vsock_exec_response_decode(d, len, &out, NULL), 0);
                assert_bytes(&out.stdout_data, &b, true);
                assert_bytes(&out.stderr_data, &b, true);
                assert_int_equal(out.exit_code, -(int64_t) n);
                vsock_exec_response_clear(&out);
                free(d);

                struct vsock_write_file_request w = { .path = "/bin", .content = b, .mode = 0755 };
                assert_int_equal(vsock_write_file_request_encode(&w, &d, &len), 0);
                struct vsock_write_file_request w2;
                assert_int_equal(vsock_write_file_request_decode(d, len, &w2, NULL), 0);
                assert_bytes(&w2.content, &b, false);
                vsock_write_file_request_clear(&w2);
                free(d);

                struct vsock_exec_request q = { .command = "cat", .stdin_data = b };
                assert_int_equal(vsock_exec_request_encode(&q, &d, &len), 0);
                struct vsock_exec_request q2;
                assert_int_equal(vsock_exec_request_decode(d, len, &q2, NULL), 0);
                assert_bytes(&q2.stdin_data, &b, true);
                vsock_exec_request_clear(&q2, true);
                free(d);

                struct vsock_file_response f = { .content = b };
                assert_int_equal(vsock_file_response_encode(&f, &d, &len), 0);
                struct vsock_file_response f2;
                assert_int_equal(vsock_file_response_decode(d, len, &f2, NULL), 0);
                assert_bytes(&f2.content, &b, true);
                vsock_file_response_clear(&f2);
                free(d);
        }
}

static void test_many_env_keys(void **state) {
        size_t n = 5000;
        struct vsock_env *env = calloc(n + 1, sizeof *env);
        char **keys = calloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
                /* Descending order in the array. */
                assert_true(asprintf(&keys[i], "K%06zu", n - i) > 0);
                env[i].key = keys[i];
                env[i].value = (i % 2) ? "odd" : "even<&>";
        }
        /* A duplicate at the end: it wins. */
        env[n].key = keys[0];
        env[n].value = "last";
        struct vsock_exec_request q = { .command = "env", .env = env, .n_env = n + 1 };
        uint8_t *d;
        size_t len;
        assert_int_equal(vsock_exec_request_encode(&q, &d, &len), 0);
        /* The caller's array is untouched. */
        for (size_t i = 0; i < n; i++)
                assert_ptr_equal(env[i].key, keys[i]);

        struct vsock_exec_request r;
        assert_int_equal(vsock_exec_request_decode(d, len, &r, NULL), 0);
        assert_int_equal(r.n_env, n);
        for (size_t i = 0; i < n; i++) {
                char want[16];
                snprintf(want, sizeof want, "K%06zu", i + 1);
                assert_string_equal(r.env[i].key, want);
                if (i + 1 == n)
                        assert_string_equal(r.env[i].value, "last");
        }
        /* Keys appear sorted in the JSON text too. */
        char *a = strstr((char *) d, "\"K000001\""), *b = strstr((char *) d, "\"K000002\"");
        assert_true(a && b && a < b);

        /* Re-encoding the decoded request gives the same bytes. */
        uint8_t *d2;
        size_t len2;
        assert_int_equal(vsock_exec_request_encode(&r, &d2, &len2), 0);
        assert_int_equal(len2, len);
        assert_memory_equal(d2, d, len);
        free(d2);
        vsock_exec_request_clear(&r, true);
        free(d);
        for (size_t i = 0; i < n; i++)
                free(keys[i]);
        free(keys);
        free(env);
}

static void test_encoder_errors(void **state) {
        struct buf b = BUF_INIT(0);
        struct vsock_exec_request q = { .command = "x", .n_args = 2 };
        assert_int_equal(msg_encode_exec_request(&q, &b), -EINVAL);
        q = (struct vsock_exec_request) { .command = "x", .n_env = 1 };
        assert_int_equal(msg_encode_exec_request(&q, &b), -EINVAL);
        struct vsock_file_response f = { .n_files = 1 };
        assert_int_equal(msg_encode_file_response(&f, &b), -EINVAL);
        assert_int_equal(msg_encode_exec_request(NULL, &b), -EINVAL);
        struct vsock_exec_response e = { .stdout_data = { .data = NULL, .len = 3, .present = true } };
        assert_int_equal(msg_encode_exec_response(&e, &b), -EINVAL);
        uint8_t *d;
        size_t n;
        assert_int_equal(vsock_exec_response_encode(&e, &d, &n), -EINVAL);
        assert_true(buf_empty(&b));

        /* NULL strings are Go's "". */
        q = (struct vsock_exec_request) { .command = NULL, .args = (char *[]) { NULL }, .n_args = 1,
                                          .env = (struct vsock_env[]) { { NULL, NULL } }, .n_env = 1 };
        assert_int_equal(msg_encode_exec_request(&q, &b), 0);
        assert_int_equal(buf_size(&b), strlen("{\"command\":\"\",\"args\":[\"\"],\"env\":{\"\":\"\"}}"));
        assert_memory_equal(buf_head(&b), "{\"command\":\"\",\"args\":[\"\"],\"env\":{\"\":\"\"}}", buf_size(&b));
        buf_free(&b);

        /* Hitting the cap rolls back to the previous content. */
        uint8_t big[4096] = { 0 };
        struct vsock_file_info fi[3] = { { "a", 1, 2, false }, { "b", 3, 4, true }, { "c", 5, 6, false } };
        f = (struct vsock_file_response) { .content = { big, sizeof big, true }, .files = fi, .n_files = 3,
                                           .error = "e" };
        for (size_t cap = 8; cap < 5700; cap += 61) {
                b = BUF_INIT(cap);
                assert_int_equal(buf_append_str(&b, "prefix"), 0);
                int r = msg_encode_file_response(&f, &b);
                if (r == 0) {
                        assert_true(buf_size(&b) > 5000);
                } else {
                        assert_int_equal(r, -ENOBUFS);
                        assert_int_equal(buf_size(&b), 6);
                        assert_memory_equal(buf_head(&b), "prefix", 6);
                }
                buf_free(&b);
        }
}

static void test_wipe(void **state) {
        const char *j = "{\"command\":\"x\",\"env\":{\"SECRET\":\"hunter2\",\"B\":\"\"},\"stdin\":\"c2VjcmV0\"}";
        struct vsock_exec_request r;
        assert_int_equal(vsock_exec_request_decode(j, strlen(j), &r, NULL), 0);
        char *v = r.env[1].value;
        size_t vl = strlen(v);
        assert_string_equal(v, "hunter2");
        uint8_t *s = r.stdin_data.data;
        assert_int_equal(r.stdin_data.len, 6);
        msg_exec_request_wipe(&r);
        for (size_t i = 0; i < vl; i++)
                assert_int_equal(v[i], 0);
        for (size_t i = 0; i < 6; i++)
                assert_int_equal(s[i], 0);
        assert_string_equal(r.command, "x"); /* the rest is untouched */
        assert_string_equal(r.env[1].key, "SECRET");
        vsock_exec_request_clear(&r, true);
        assert_null(r.command);
        vsock_exec_request_clear(&r, true);
        vsock_exec_request_clear(NULL, true);
        msg_exec_request_wipe(NULL);

        struct vsock_exec_request z = {};
        vsock_exec_request_clear(&z, true);
        vsock_exec_response_clear(NULL);
        vsock_file_response_clear(NULL);
}

/* ---- binary payloads, names, modes ------------------------------------------------- */

static void test_binary_payloads(void **state) {
        uint8_t b[4];
        int32_t code;
        vsock_exit_encode(-1, b);
        assert_memory_equal(b, "\xff\xff\xff\xff", 4);
        vsock_exit_encode(INT32_MIN, b);
        assert_memory_equal(b, "\x80\x00\x00\x00", 4);
        assert_int_equal(vsock_exit_decode(b, 4, &code), 0);
        assert_int_equal(code, INT32_MIN);
        assert_int_equal(vsock_exit_decode(b, 3, &code), DECODE_ERR);
        assert_int_equal(vsock_exit_decode(b, 5, &code), DECODE_ERR);
        assert_int_equal(vsock_exit_decode(NULL, 4, &code), DECODE_ERR);

        uint16_t rows, cols;
        vsock_resize_encode(0x1234, 0xfedc, b);
        assert_memory_equal(b, "\x12\x34\xfe\xdc", 4);
        assert_int_equal(vsock_resize_decode(b, 4, &rows, &cols), 0);
        assert_int_equal(rows, 0x1234);
        assert_int_equal(cols, 0xfedc);
        assert_int_equal(vsock_resize_decode(b, 2, &rows, &cols), DECODE_ERR);
        assert_int_equal(vsock_resize_decode(b, 0, &rows, &cols), DECODE_ERR);

        int sig = 77;
        assert_int_equal(vsock_signal_decode("\x01", 1, &sig), 0);
        assert_int_equal(sig, 1);
        assert_int_equal(vsock_signal_decode("\x40", 1, &sig), 0);
        assert_int_equal(sig, 64);
        sig = 77;
        assert_int_equal(vsock_signal_decode("\x00", 1, &sig), DECODE_ERR);
        assert_int_equal(vsock_signal_decode("\x41", 1, &sig), DECODE_ERR);
        assert_int_equal(vsock_signal_decode("\xff", 1, &sig), DECODE_ERR);
        assert_int_equal(vsock_signal_decode("\x0f\x00", 2, &sig), DECODE_ERR);
        assert_int_equal(vsock_signal_decode("", 0, &sig), DECODE_ERR);
        assert_int_equal(sig, 77);
}

static void test_type_names(void **state) {
        static const char *names[] = { NULL,        "Exec",      "ExecResult", "Stdout",     "Stderr",   "Signal",
                                       "Ready",     "Stdin",     "Resize",     "ExecTTY",    "Exit",     "ExecStream",
                                       "ExecPipe",  "PortForward", "WriteFile", "ReadFile",  "ListFiles", "FileResult" };
        for (unsigned t = 0; t < 256; t++) {
                const char *n = vsock_msg_type_name((uint8_t) t);
                if (t < sizeof names / sizeof names[0] && names[t])
                        assert_string_equal(n, names[t]);
                else
                        assert_null(n);
        }
}

static void test_go_modes(void **state) {
        static const struct {
                mode_t m;
                uint32_t g;
        } both[] = {
                { S_IFREG | 0644, 0644 },
                { S_IFDIR | 0755, 2147484141u },
                { S_IFLNK | 0777, 0x80001ff },
                { S_IFDIR | S_ISVTX | 0777, 0x801001ff },
                { S_IFREG | S_ISUID | S_ISVTX | 0755, 0x9001ed },
                { S_IFREG | S_ISGID | 0750, VSOCK_GO_MODE_SETGID | 0750 },
                { S_IFBLK | 0660, VSOCK_GO_MODE_DEVICE | 0660 },
                { S_IFCHR | 0620, VSOCK_GO_MODE_DEVICE | VSOCK_GO_MODE_CHAR_DEVICE | 0620 },
                { S_IFIFO | 0600, VSOCK_GO_MODE_NAMED_PIPE | 0600 },
                { S_IFSOCK | 0777, VSOCK_GO_MODE_SOCKET | 0777 },
                { S_IFREG, 0 },
        };
        for (size_t i = 0; i < sizeof both / sizeof both[0]; i++) {
                assert_int_equal(vsock_go_mode_from_mode_t(both[i].m), both[i].g);
                assert_int_equal(vsock_go_mode_to_mode_t(both[i].g), both[i].m);
        }
        /* A bare permission value (what vsock_write_file gets). */
        assert_int_equal(vsock_go_mode_from_mode_t(0644), 420);
        assert_int_equal(vsock_go_mode_from_mode_t(0), 0);
        assert_int_equal(vsock_go_mode_from_mode_t(04755), VSOCK_GO_MODE_SETUID | 0755);
        /* Go-only bits have no mode_t counterpart. */
        assert_int_equal(vsock_go_mode_to_mode_t(VSOCK_GO_MODE_APPEND | VSOCK_GO_MODE_TEMPORARY | 0600),
                         S_IFREG | 0600);
        assert_int_equal(vsock_go_mode_to_mode_t(VSOCK_GO_MODE_IRREGULAR | 0600), 0600);
        assert_int_equal(vsock_go_mode_to_mode_t(VSOCK_GO_MODE_CHAR_DEVICE | 0600), S_IFCHR | 0600);
        assert_int_equal(vsock_go_mode_to_mode_t(0xffffffff) & 07777, 07777);
        assert_true(S_ISDIR(vsock_go_mode_to_mode_t(0xffffffff)));
}

static size_t count_structural(const char *s) {
        size_t n = 0;
        for (; *s; s++)
                n += *s == ',' || *s == '[' || *s == '{';
        return n;
}

static void test_too_many_values(void **state) {
        /* Tiny values by the million would cost jansson ~30x the text:
         * refused before it builds the tree; at the limit it is fine. */
        static const struct {
                const char *pre, *elem;
        } shapes[] = {
                { "{\"command\":\"true\",\"args\":[\"\"", ",\"\"" },
                { "{\"command\":\"true\",\"x\":[0", ",0" },
                { "{\"command\":\"true\",\"args\":[{}", ",{}" },
        };
        const size_t limit = 1u << 20;
        for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
                for (int over = 0; over <= 1; over++) {
                        const char *pre = shapes[k].pre, *el = shapes[k].elem;
                        size_t base = 1 + count_structural(pre), inc = count_structural(el);
                        size_t n_el = (limit - base) / inc + (size_t) over;
                        size_t plen = strlen(pre), elen = strlen(el), len = plen + n_el * elen + 2;
                        char *j = malloc(len + 1);
                        assert_non_null(j);
                        memcpy(j, pre, plen);
                        for (size_t i = 0; i < n_el; i++)
                                memcpy(j + plen + i * elen, el, elen);
                        memcpy(j + len - 2, "]}", 3);
                        struct vsock_exec_request r;
                        const char *why = NULL;
                        int rc = vsock_exec_request_decode(j, len, &r, &why);
                        if (over) {
                                assert_int_equal(rc, DECODE_ERR);
                                assert_string_equal(why, "too many JSON values");
                        } else if (k == 2)
                                assert_int_equal(rc, DECODE_ERR); /* objects are no strings */
                        else {
                                assert_int_equal(rc, 0);
                                vsock_exec_request_clear(&r, false);
                        }
                        free(j);
                }
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_encode_vectors),
                cmocka_unit_test(test_decode_vectors),
                cmocka_unit_test(test_vector_backslash_controls),
                cmocka_unit_test(test_frames),
                cmocka_unit_test(test_every_vector_checked),
                cmocka_unit_test(test_rejections),
                cmocka_unit_test(test_deep_nesting),
                cmocka_unit_test(test_key_folding),
                cmocka_unit_test(test_null_and_unknown),
                cmocka_unit_test(test_binary_round_trips),
                cmocka_unit_test(test_many_env_keys),
                cmocka_unit_test(test_encoder_errors),
                cmocka_unit_test(test_wipe),
                cmocka_unit_test(test_binary_payloads),
                cmocka_unit_test(test_type_names),
                cmocka_unit_test(test_go_modes),
                cmocka_unit_test(test_too_many_values),
        };
        return cmocka_run_group_tests(tests, load_vectors, free_vectors);
}
