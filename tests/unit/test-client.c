/* Host-side operations against a scripted fake agent: exact request bytes
 * (from the golden vectors), every reply shape both agents produce, and
 * the failure paths (truncation, wrong types, oversize frames, deadlines,
 * cancellation, a closed peer). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake-agent.h"
#include "lib/msg-internal.h"
#include "vsock/vsock.h"

/* Generous bound for "returns promptly": only catches hangs. */
#define HANG_BOUND_NS (8LL * 1000000000)

/* ---- vectors --------------------------------------------------------------- */

static json_t *vectors;

static int load_vectors(void **state) {
        const char *path = getenv("VECTORS");
        if (!path)
                path = "tests/data/wire-vectors.jsonl";
        FILE *f = fopen(path, "re");
        if (!f) {
                fprintf(stderr, "cannot open vectors %s: %s\n", path, strerror(errno));
                return -1;
        }
        vectors = json_array();
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0) {
                json_error_t err;
                json_t *v = json_loads(line, 0, &err);
                if (v)
                        json_array_append_new(vectors, v);
        }
        free(line);
        fclose(f);
        return 0;
}

static int free_vectors(void **state) {
        json_decref(vectors);
        return 0;
}

static const char *vhex(const char *name) {
        size_t i;
        json_t *v;
        json_array_foreach(vectors, i, v) {
                if (strcmp(json_string_value(json_object_get(v, "name")), name) == 0)
                        return json_string_value(json_object_get(v, "frame_hex"));
        }
        fail_msg("no vector %s", name);
        return NULL;
}

/* The payload (frame minus header) of a vector; malloc'd. */
static uint8_t *vpayload(const char *name, size_t *ret_len) {
        uint8_t *d;
        ssize_t n = hex_decode(vhex(name), &d);
        assert_true(n >= 5);
        memmove(d, d + 5, (size_t) n - 5);
        *ret_len = (size_t) n - 5;
        return d;
}

/* ---- helpers --------------------------------------------------------------- */

#define AGENT_OK(fa)                                          \
        do {                                                  \
                const char *_f = fake_agent_join(fa);         \
                if (_f)                                       \
                        fail_msg("%s", _f);                   \
        } while (0)

#define assert_kind(rc, kind)                                                                              \
        do {                                                                                               \
                int _rc = (rc);                                                                            \
                if (vsock_err_kind(_rc) != (kind) || _rc >= 0)                                             \
                        fail_msg("rc %d (%s), expected kind %s", _rc, vsock_strerror(_rc), #kind);         \
        } while (0)

static char *cat_hex(const char *first, ...) {
        static __thread char buf[8192];
        buf[0] = 0;
        va_list ap;
        va_start(ap, first);
        for (const char *s = first; s; s = va_arg(ap, const char *))
                strncat(buf, s, sizeof buf - strlen(buf) - 1);
        va_end(ap);
        return buf;
}

/* A generic exchange: expect one request (exact bytes, or any), optionally
 * the immediate stdin EOF of pipe/tty mode, send canned bytes, optionally
 * wait for the client's disconnect. */
struct plan {
        const char *expect_hex;
        bool expect_stdin_eof;
        const char *reply_hex;
        bool wait_eof;
};

static void script_plan(struct fake_agent *fa) {
        const struct plan *p = fa->arg;
        if (p->expect_hex) {
                if (!fa_expect_frame_hex(fa, p->expect_hex))
                        return;
        } else {
                uint8_t t;
                uint32_t n;
                if (!fa_read_frame(fa, &t, NULL, &n))
                        return;
        }
        if (p->expect_stdin_eof && !fa_expect_frame(fa, VSOCK_MSG_STDIN, NULL, 0))
                return;
        if (p->reply_hex && !fa_send_hex(fa, p->reply_hex))
                return;
        if (p->wait_eof)
                fa_expect_eof(fa);
}

struct capture {
        char seq[256]; /* "1a2b": stream id then bytes */
        size_t n;
};

static int capture_output(void *userdata, enum vsock_stream_id stream, const uint8_t *data, size_t len) {
        struct capture *c = userdata;
        for (size_t i = 0; i < len && c->n + 2 < sizeof c->seq; i++) {
                c->seq[c->n++] = (char) ('0' + stream);
                c->seq[c->n++] = (char) data[i];
        }
        c->seq[c->n] = 0;
        return 0;
}

static void decode_request(const char *vector, struct vsock_exec_request *req) {
        size_t len;
        uint8_t *p = vpayload(vector, &len);
        const char *why = NULL;
        int r = vsock_exec_request_decode(p, len, req, &why);
        if (r < 0)
                fail_msg("decode %s: %s", vector, why ? why : "?");
        free(p);
}

/* The frame the library sends for a vector's request: the vector itself,
 * unless it has args in the older form (program in command), which go out
 * as the whole vector in args and its shell quoting in command (client.h,
 * "Exec requests"); test_exec_args_for_both_agents pins those bytes. */
static const char *request_hex(const char *vector) {
        static __thread char hex[8192];
        struct vsock_exec_request req = {};
        decode_request(vector, &req);
        if (req.n_args == 0) {
                vsock_exec_request_clear(&req, false);
                return vhex(vector);
        }
        uint8_t *frame;
        ssize_t fn = hex_decode(vhex(vector), &frame);
        assert_true(fn >= 5);
        char **argv = calloc(req.n_args + 1, sizeof *argv);
        assert_non_null(argv);
        argv[0] = (char *) req.command;
        memcpy(argv + 1, req.args, req.n_args * sizeof *argv);
        char *line = NULL;
        assert_int_equal(vsock_shell_quote(argv, req.n_args + 1, &line), 0);
        struct vsock_exec_request wire = req;
        wire.command = line;
        wire.args = argv;
        wire.n_args = req.n_args + 1;
        uint8_t *payload;
        size_t len;
        assert_int_equal(frame[0] == VSOCK_MSG_EXEC_TTY ? vsock_exec_tty_request_encode(&wire, &payload, &len)
                                                        : vsock_exec_request_encode(&wire, &payload, &len),
                         0);
        assert_true(2 * (len + 5) < sizeof hex);
        snprintf(hex, sizeof hex, "%02x%08zx", frame[0], len);
        for (size_t i = 0; i < len; i++)
                snprintf(hex + 10 + 2 * i, 3, "%02x", payload[i]);
        free(payload);
        free(line);
        free(argv);
        free(frame);
        vsock_exec_request_clear(&req, false);
        return hex;
}

/* ---- exact request bytes ----------------------------------------------------- */

static void test_requests_match_vectors(void **state) {
        static const char *const skip[] = {
                /* decode+encode does not round-trip invalid UTF-8 (see README) */
                "exec_host_invalid_utf8",
                /* holds a NUL, which no C string (or command) can */
                "exec_host_backslash_controls",
        };
        size_t i, checked = 0;
        json_t *v;
        json_array_foreach(vectors, i, v) {
                const char *name = json_string_value(json_object_get(v, "name"));
                const char *st = json_string_value(json_object_get(v, "struct"));
                if (strcmp(st, "ExecRequest(host)") != 0 && strcmp(st, "ExecTTYRequest(host)") != 0)
                        continue;
                bool skipped = false;
                for (size_t k = 0; k < sizeof skip / sizeof *skip; k++)
                        skipped |= strcmp(skip[k], name) == 0;
                if (skipped)
                        continue;
                int type = (int) json_integer_value(json_object_get(v, "msg_type"));
                struct vsock_exec_request req = {};
                decode_request(name, &req);

                bool interactive = type == VSOCK_MSG_EXEC_PIPE || type == VSOCK_MSG_EXEC_TTY;
                struct plan p = {
                        .expect_hex = request_hex(name),
                        .expect_stdin_eof = interactive,
                        .reply_hex = interactive ? vhex("frame_exit_1") : vhex("execresp_host_zero"),
                };
                struct fake_agent fa;
                vsock_conn *c;
                assert_int_equal(fake_agent_start_pair(&fa, script_plan, &p, &c), 0);
                struct vsock_call call = VSOCK_CALL_INIT;
                struct vsock_exec_result res = {};
                int r;
                switch (type) {
                case VSOCK_MSG_EXEC:
                        r = vsock_exec(c, &req, &call, &res);
                        break;
                case VSOCK_MSG_EXEC_STREAM:
                        r = vsock_exec_stream(c, &req, NULL, &call, &res);
                        break;
                case VSOCK_MSG_EXEC_PIPE:
                        r = vsock_exec_pipe(c, &req, NULL, &call, &res);
                        break;
                default:
                        r = vsock_exec_tty(c, &req, NULL, &call, &res);
                        break;
                }
                vsock_conn_close(c);
                const char *f = fake_agent_join(&fa);
                if (f)
                        fail_msg("%s: %s", name, f);
                if (r < 0)
                        fail_msg("%s: %s (%s)", name, vsock_strerror(r), call.remote_error);
                assert_int_equal(res.exit_code, interactive ? 1 : 0);
                vsock_exec_result_clear(&res);
                vsock_exec_request_clear(&req, false);
                checked++;
        }
        assert_true(checked >= 15);
}

/* ---- batch ------------------------------------------------------------------- */

static void test_exec_batch_full(void **state) {
        struct vsock_exec_request req = {};
        decode_request("exec_host_all_fields", &req);
        struct plan p = { .expect_hex = request_hex("exec_host_all_fields"), .reply_hex = vhex("execresp_host_all") };
        struct fake_agent fa;
        vsock_conn *c;
        assert_int_equal(fake_agent_start_pair(&fa, script_plan, &p, &c), 0);
        struct vsock_exec_result res = {};
        assert_int_equal(vsock_exec(c, &req, NULL, &res), 0);
        vsock_conn_close(c);
        AGENT_OK(&fa);
        assert_int_equal(res.exit_code, 2);
        assert_int_equal(res.stdout_len, 3);
        assert_memory_equal(res.stdout_data, "out", 3);
        assert_int_equal(res.stderr_len, 4);
        assert_memory_equal(res.stderr_data, "err\n", 4);
        assert_string_equal(res.error, "exec: \"x\": not found");
        assert_true(res.duration_ns >= 0);
        vsock_exec_result_clear(&res);
        vsock_exec_result_clear(&res);
        vsock_exec_request_clear(&req, true);
}

/* ---- structs that grow ---------------------------------------------------- */

/* A conn over a socketpair whose other end only watches: nothing must
 * reach it when a call is refused up front. */
static vsock_conn *watched_conn(int *ret_peer) {
        int sv[2];
        vsock_conn *c;
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
        assert_int_equal(vsock_conn_from_fd(sv[0], &c), 0);
        *ret_peer = sv[1];
        return c;
}

static void assert_nothing_sent(int peer) {
        char b;
        assert_int_equal(recv(peer, &b, 1, MSG_DONTWAIT), -1);
        assert_int_equal(errno, EAGAIN);
}

/* A size the library does not know (a program built against newer
 * headers) is refused before anything is sent or written back; 0 (a
 * zero-initialiser) and the INIT macros' sizeof are the known layout. */
static void test_unknown_struct_sizes(void **state) {
        struct vsock_exec_request req = { .command = "true" };
        struct vsock_exec_result res = {};
        int peer;
        vsock_conn *c = watched_conn(&peer);

        /* Bounded, so that a library that took these calls fails the
         * test at once instead of waiting for a reply. */
        struct vsock_call bounded = VSOCK_CALL_INIT;
        bounded.deadline_ns = vsock_deadline_in(2000);
        struct vsock_call call = bounded;
        assert_int_equal(call.size, sizeof(struct vsock_call));
        call.size = sizeof call + 8;
        strcpy(call.remote_error, "untouched");
        assert_int_equal(vsock_exec(c, &req, &call, &res), -EINVAL);
        assert_int_equal(vsock_exec_stream(c, &req, NULL, &call, &res), -EINVAL);
        assert_int_equal(vsock_write_file(c, "/x", "", 0, 0, &call), -EINVAL);
        assert_int_equal(vsock_open_port_forward(c, NULL, 80, &call), -EINVAL);
        assert_int_equal(vsock_wait_ready("unix:/nonexistent/vsock-test", &call), -EINVAL);
        assert_int_equal(vsock_exec_at("unix:/nonexistent/vsock-test", &req, &call, &res), -EINVAL);
        assert_string_equal(call.remote_error, "untouched");
        call.size = sizeof call - 1;
        assert_int_equal(vsock_exec(c, &req, &call, &res), -EINVAL);

        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        assert_int_equal(io.size, sizeof(struct vsock_exec_io));
        io.size = sizeof io + 8;
        assert_int_equal(vsock_exec_pipe(c, &req, &io, &bounded, &res), -EINVAL);
        assert_int_equal(vsock_exec_tty(c, &req, &io, &bounded, &res), -EINVAL);

        req.size = sizeof req + 8;
        assert_int_equal(vsock_exec(c, &req, &bounded, &res), -EINVAL);
        assert_int_equal(vsock_exec_stream(c, &req, NULL, &bounded, &res), -EINVAL);

        /* The extensions' option structs, likewise (each INIT sets sizeof). */
        struct vsock_fs_request fr = VSOCK_FS_REQUEST_INIT(VSOCK_FS_STAT, "/");
        struct vsock_fs_result frs;
        assert_int_equal(fr.size, sizeof fr);
        fr.size = sizeof fr + 8;
        assert_int_equal(vsock_fs(c, &fr, &bounded, &frs), -EINVAL);
        struct vsock_file_get_opts go = VSOCK_FILE_GET_OPTS_INIT;
        struct vsock_file_get_result gr;
        go.fd = 1;
        go.size = sizeof go + 8;
        assert_int_equal(vsock_file_get(c, "/f", &go, &bounded, &gr), -EINVAL);
        struct vsock_file_put_opts po = VSOCK_FILE_PUT_OPTS_INIT;
        struct vsock_file_put_result pr;
        assert_int_equal(po.file_size, -1);
        po.fd = 0;
        po.size = sizeof po + 8;
        assert_int_equal(vsock_file_put(c, "/f", &po, &bounded, &pr), -EINVAL);
        struct vsock_tar_opts to = VSOCK_TAR_OPTS_INIT;
        struct vsock_tar_result tr;
        to.fd = 1;
        to.size = sizeof to + 8;
        assert_int_equal(vsock_tar_get(c, "/d", &to, &bounded, &tr), -EINVAL);
        assert_int_equal(vsock_tar_put(c, "/d", &to, &bounded, &tr), -EINVAL);
        struct vsock_proc_spec ps = VSOCK_PROC_SPEC_INIT;
        struct vsock_proc_info pi;
        ps.req.command = "true";
        ps.size = sizeof ps + 8;
        assert_int_equal(vsock_proc_start(c, &ps, &bounded, &pi), -EINVAL);
        struct vsock_proc_attach_opts pa = VSOCK_PROC_ATTACH_OPTS_INIT;
        struct vsock_proc_end pe;
        pa.size = sizeof pa + 8;
        assert_int_equal(vsock_proc_attach(c, 1, NULL, &pa, NULL, &bounded, &pi, &pe), -EINVAL);
        struct vsock_proc_control pc = VSOCK_PROC_CONTROL_INIT;
        pc.op = VSOCK_PROC_SIGNAL;
        pc.signal = 15;
        pc.size = sizeof pc + 8;
        assert_int_equal(vsock_proc_control(c, 1, NULL, &pc, &bounded, &pi), -EINVAL);

        assert_nothing_sent(peer);
        vsock_conn_close(c);
        close(peer);

        /* Zero-initialised structs (size 0) are the first layout: served. */
        struct plan p = { .reply_hex = vhex("execresp_host_all") };
        struct fake_agent fa;
        assert_int_equal(fake_agent_start_pair(&fa, script_plan, &p, &c), 0);
        struct vsock_call zeroed = {};
        zeroed.cancel_fd = -1;
        req.size = 0;
        assert_int_equal(vsock_exec(c, &req, &zeroed, &res), 0);
        vsock_conn_close(c);
        AGENT_OK(&fa);
        assert_int_equal(res.exit_code, 2);
        vsock_exec_result_clear(&res);

        p = (struct plan) { .expect_stdin_eof = true, .reply_hex = vhex("frame_exit_0") };
        assert_int_equal(fake_agent_start_pair(&fa, script_plan, &p, &c), 0);
        struct vsock_exec_io zio = {};
        zio.stdout_fd = zio.stderr_fd = zio.stdin_fd = -1;
        req.size = sizeof req;
        assert_int_equal(vsock_exec_pipe(c, &req, &zio, &zeroed, &res), 0);
        vsock_conn_close(c);
        AGENT_OK(&fa);
        assert_int_equal(res.exit_code, 0);
        vsock_exec_result_clear(&res);
}

/* Requests that run the same program on an agent that honours args (ours)
 * and on one that ignores them (Go's, which runs `sh -c command`). */
struct wire_case {
        uint8_t type;
        const char *want; /* the request's JSON */
};

static void script_expect_json(struct fake_agent *fa) {
        const struct wire_case *w = fa->arg;
        if (!fa_expect_frame(fa, w->type, w->want, strlen(w->want)))
                return;
        if (w->type == VSOCK_MSG_EXEC_PIPE || w->type == VSOCK_MSG_EXEC_TTY) {
                if (!fa_expect_frame(fa, VSOCK_MSG_STDIN, NULL, 0))
                        return;
                fa_send_hex(fa, vhex("frame_exit_0"));
        } else
                fa_send_hex(fa, vhex("execresp_host_zero"));
}

static void test_exec_args_for_both_agents(void **state) {
        char *args[] = { "[%s]", "it's", "" };
        char *lone[] = { "ls" };
        static const char older[] =
                "{\"command\":\"'printf' '[%s]' 'it'\\\\''s' ''\",\"args\":[\"printf\",\"[%s]\",\"it's\",\"\"]}";
        static const char older_tty[] =
                "{\"command\":\"'printf' '[%s]' 'it'\\\\''s' ''\",\"args\":[\"printf\",\"[%s]\",\"it's\",\"\"],"
                "\"rows\":24,\"cols\":80}";
        const struct {
                struct vsock_exec_request req;
                struct wire_case wire[4];
        } cases[] = {
                /* Program and arguments: the whole vector in args, its
                 * quoting in command. */
                { { .command = "printf", .args = args, .n_args = 3, .rows = 24, .cols = 80 },
                  { { VSOCK_MSG_EXEC, older }, { VSOCK_MSG_EXEC_STREAM, older }, { VSOCK_MSG_EXEC_PIPE, older },
                    { VSOCK_MSG_EXEC_TTY, older_tty } } },
                /* Already in that form: as it is (a program without
                 * arguments, and no shell where args are honoured). */
                { { .command = "'ls'", .args = lone, .n_args = 1 },
                  { { VSOCK_MSG_EXEC, "{\"command\":\"'ls'\",\"args\":[\"ls\"]}" } } },
                /* A shell command line: command alone. */
                { { .command = "echo $HOME" }, { { VSOCK_MSG_EXEC_STREAM, "{\"command\":\"echo $HOME\"}" } } },
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
                for (size_t k = 0; k < 4 && cases[i].wire[k].want; k++) {
                        const struct wire_case *w = &cases[i].wire[k];
                        struct fake_agent fa;
                        vsock_conn *c;
                        assert_int_equal(fake_agent_start_pair(&fa, script_expect_json, (void *) w, &c), 0);
                        struct vsock_exec_result res = {};
                        int r;
                        switch (w->type) {
                        case VSOCK_MSG_EXEC:
                                r = vsock_exec(c, &cases[i].req, NULL, &res);
                                break;
                        case VSOCK_MSG_EXEC_STREAM:
                                r = vsock_exec_stream(c, &cases[i].req, NULL, NULL, &res);
                                break;
                        case VSOCK_MSG_EXEC_PIPE:
                                r = vsock_exec_pipe(c, &cases[i].req, NULL, NULL, &res);
                                break;
                        default:
                                r = vsock_exec_tty(c, &cases[i].req, NULL, NULL, &res);
                                break;
                        }
                        vsock_conn_close(c);
                        AGENT_OK(&fa);
                        assert_int_equal(r, 0);
                        vsock_exec_result_clear(&res);
                }
}

/* Both agents' ExecResponse shapes: null or "" output, "" error. */
static void test_exec_batch_response_shapes(void **state) {
        static const struct {
                const char *vector;
                int64_t exit_code;
                const char *out;
                const char *error;
        } cases[] = {
                { "execresp_agent_start_error", 1, NULL, "fork/exec /proc/self/exe: no such file or directory" },
                { "execresp_agent_ran_no_output", 0, NULL, NULL },
                { "execresp_agent_output", 0, "hi\n", NULL },
                { "execresp_agent_decode_error", 0, NULL, "unexpected end of JSON input" },
                { "execresp_host_zero", 0, NULL, NULL },
                { "execresp_host_negative_exit", -1, NULL, "signal: killed" },
                { "execresp_host_large_exit", 4294967295LL, NULL, NULL },
                { "execresp_host_min_int32_exit", -2147483648LL, NULL, NULL },
        };
        struct vsock_exec_request req = { .command = (char *) "true" };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                struct plan p = { .expect_hex = vhex("exec_host_minimal"), .reply_hex = vhex(cases[i].vector) };
                struct fake_agent fa;
                vsock_conn *c;
                assert_int_equal(fake_agent_start_pair(&fa, script_plan, &p, &c), 0);
                struct vsock_call call = VSOCK_CALL_INIT;
                struct vsock_exec_result res = {};
                int r = vsock_exec(c, &req, &call, &res);
                vsock_conn_close(c);
                AGENT_OK(&fa);
                if (r < 0)
                        fail_msg("%s: %s", cases[i].vector, vsock_strerror(r));
                assert_int_equal(res.exit_code, cases[i].exit_code);
                if (cases[i].out) {
                        assert_int_equal(res.stdout_len, strlen(cases[i].out));
                        assert_memory_equal(res.stdout_data, cases[i].out, res.stdout_len);
                } else {
                        assert_int_equal(res.stdout_len, 0);
                        assert_null(res.stdout_data);
                }
                assert_int_equal(res.stderr_len, 0);
                if (cases[i].error)
                        assert_string_equal(res.error, cases[i].error);
                else
                        assert_null(res.error);
                vsock_exec_result_clear(&res);
        }
}

/* One bad reply per case, for batch and every streaming mode. */
struct bad_case {
        const char *what;
        const char *reply_hex; /* then the agent closes */
        enum vsock_errkind kind;
};

static const struct bad_case bad_cases[] = {
        { "closed before the result", "", VSOCK_E_CLOSED },
        { "truncated header", "0200", VSOCK_E_READ_RESPONSE_HEADER },
        { "header then close", "0200000064", VSOCK_E_READ_RESPONSE_DATA },
        { "truncated payload", "02000000647b22657869745f636f6465", VSOCK_E_READ_RESPONSE_DATA },
        { "unknown type", "6300000000", VSOCK_E_PROTOCOL },
        { "request type echoed", "0100000000", VSOCK_E_PROTOCOL },
        { "oversize", "02ffffffff", VSOCK_E_FRAME_TOO_LARGE },
        { "oversize stdout", "03ffffffff", VSOCK_E_FRAME_TOO_LARGE },
        { "bad json", "02000000017b", VSOCK_E_DECODE },
};

static bool closed_kind_ok(const struct bad_case *bc, int r, bool streaming) {
        enum vsock_errkind k = vsock_err_kind(r);
        if (k == bc->kind)
                return true;
        /* The incremental decoder cannot tell a cut header from a cut
         * payload: both are "in the middle of a frame". */
        return streaming && bc->kind == VSOCK_E_READ_RESPONSE_HEADER && k == VSOCK_E_READ_RESPONSE_DATA;
}

static void test_bad_replies(void **state) {
        struct vsock_exec_request req = { .command = (char *) "true" };
        for (int mode = 0; mode < 4; mode++) {
                for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
                        const struct bad_case *bc = &bad_cases[i];
                        /* For stream mode an oversize stdout is the same
                         * test; for batch it is a wrong type caught by
                         * size first. */
                        struct plan p = { .reply_hex = bc->reply_hex, .expect_stdin_eof = mode >= 2 };
                        struct fake_agent fa;
                        vsock_conn *c;
                        assert_int_equal(fake_agent_start_pair(&fa, script_plan, &p, &c), 0);
                        struct vsock_call call = VSOCK_CALL_INIT;
                        struct vsock_exec_result res = {};
                        int64_t t0 = vsock_now_ns();
                        int r = mode == 0   ? vsock_exec(c, &req, &call, &res)
                                : mode == 1 ? vsock_exec_stream(c, &req, NULL, &call, &res)
                                : mode == 2 ? vsock_exec_pipe(c, &req, NULL, &call, &res)
                                            : vsock_exec_tty(c, &req, NULL, &call, &res);
                        assert_true(vsock_now_ns() - t0 < HANG_BOUND_NS);
                        vsock_conn_close(c);
                        AGENT_OK(&fa);
                        if (r >= 0 || !closed_kind_ok(bc, r, mode > 0))
                                fail_msg("mode %d, %s: rc %d (%s)", mode, bc->what, r, vsock_strerror(r));
                        assert_int_equal(res.exit_code, 0);
                        assert_null(res.error);
                        if (vsock_err_kind(r) == VSOCK_E_CLOSED)
                                assert_string_equal(call.remote_error,
                                                    "agent closed the connection before the result");
                        if (vsock_err_kind(r) == VSOCK_E_PROTOCOL)
                                assert_true(call.remote_error[0] != 0);
                }
        }
}

static void test_stream_wrong_final(void **state) {
        /* Exit belongs to pipe/tty; a stream agent never sends it. */
        struct vsock_exec_request req = { .command = (char *) "true" };
        struct plan p = { .reply_hex = vhex("frame_exit_0") };
        struct fake_agent fa;
        vsock_conn *c;
        assert_int_equal(fake_agent_start_pair(&fa, script_plan, &p, &c), 0);
        struct vsock_call call = VSOCK_CALL_INIT;
        struct vsock_exec_result res = {};
        assert_kind(vsock_exec_stream(c, &req, NULL, &call, &res), VSOCK_E_PROTOCOL);
        assert_non_null(strstr(call.remote_error, "Exit"));
        vsock_conn_close(c);
        AGENT_OK(&fa);
}

/* ---- streaming output ----------------------------------------------------------- */

static void test_stream_interleaving(void **state) {
        struct vsock_exec_request req = { .command = (char *) "echo hi", .working_dir = (char *) "/tmp" };
        struct plan p = {
                .expect_hex = vhex("exec_host_stream_same_body"),
                .reply_hex = cat_hex("030000000161", "040000000162", "0300000000", "03000000026364", "040000000165",
                                     vhex("execresp_agent_stream_final"), NULL),
                .wait_eof = true, /* the agent does not close first */
        };
        struct fake_agent fa;
        vsock_conn *c;
        assert_int_equal(fake_agent_start_pair(&fa, script_plan, &p, &c), 0);
        struct capture cap = {};
        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        io.on_output = capture_output;
        io.userdata = &cap;
        struct vsock_exec_result res = {};
        assert_int_equal(vsock_exec_stream(c, &req, &io, NULL, &res), 0);
        vsock_conn_close(c);
        AGENT_OK(&fa);
        assert_string_equal(cap.seq, "1a2b1c1d2e");
        assert_int_equal(res.exit_code, 143);
        assert_null(res.error);
        assert_null(res.stdout_data);
        vsock_exec_result_clear(&res);
}

static ssize_t read_all_fd(int fd, char *buf, size_t size) {
        size_t n = 0;
        for (;;) {
                ssize_t r = read(fd, buf + n, size - n - 1);
                if (r <= 0)
                        break;
                n += (size_t) r;
        }
        buf[n] = 0;
        return (ssize_t) n;
}

static void test_stream_to_fds(void **state) {
        struct vsock_exec_request req = { .command = (char *) "x" };
        struct plan p = {
                .reply_hex = cat_hex("03000000036f7574", "040000000465727221", "03000000010a",
                                     vhex("execresp_agent_start_error"), NULL),
        };
        int out[2], err[2];
        assert_int_equal(pipe2(out, O_CLOEXEC), 0);
        assert_int_equal(pipe2(err, O_CLOEXEC), 0);
        struct fake_agent fa;
        vsock_conn *c;
        assert_int_equal(fake_agent_start_pair(&fa, script_plan, &p, &c), 0);
        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        io.stdout_fd = out[1];
        io.stderr_fd = err[1];
        struct vsock_exec_result res = {};
        assert_int_equal(vsock_exec_stream(c, &req, &io, NULL, &res), 0);
        vsock_conn_close(c);
        AGENT_OK(&fa);
        close(out[1]);
        close(err[1]);
        char buf[64];
        read_all_fd(out[0], buf, sizeof buf);
        assert_string_equal(buf, "out\n");
        read_all_fd(err[0], buf, sizeof buf);
        assert_string_equal(buf, "err!");
        close(out[0]);
        close(err[0]);
        /* A start error in a stream is an ExecResult, not a failure. */
        assert_int_equal(res.exit_code, 1);
        assert_string_equal(res.error, "fork/exec /proc/self/exe: no such file or directory");
        vsock_exec_result_clear(&res);
}

static void test_stream_stdout_epipe(void **state) {
        struct vsock_exec_request req = { .command = (char *) "yes" };
        struct plan p = { .reply_hex = "03000000037965730a", .wait_eof = true };
        int out[2];
        assert_int_equal(pipe2(out, O_CLOEXEC), 0);
        close(out[0]);
        struct fake_agent fa;
        vsock_conn *c;
        assert_int_equal(fake_agent_start_pair(&fa, script_plan, &p, &c), 0);
        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        io.stdout_fd = out[1];
        struct vsock_exec_result res = {};
        assert_int_equal(vsock_exec_stream(c, &req, &io, NULL, &res), -EPIPE);
        /* The agent sees the disconnect before we close our conn. */
        AGENT_OK(&fa);
        assert_true(fa.saw_eof);
        vsock_conn_close(c);
        close(out[1]);
}

static int abort_output(void *userdata, enum vsock_stream_id stream, const uint8_t *data, size_t len) {
        return -ENOSPC;
}

static void test_stream_callback_abort(void **state) {
        struct vsock_exec_request req = { .command = (char *) "x" };
        struct plan p = { .reply_hex = "030000000161", .wait_eof = true };
        struct fake_agent fa;
        vsock_conn *c;
        assert_int_equal(fake_agent_start_pair(&fa, script_plan, &p, &c), 0);
        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        io.on_output = abort_output;
        struct vsock_exec_result res = {};
        assert_int_equal(vsock_exec_stream(c, &req, &io, NULL, &res), -ENOSPC);
        AGENT_OK(&fa);
        vsock_conn_close(c);
}

/* ---- pipe: stdin, signals ---------------------------------------------------------- */

#define STDIN_TOTAL (1024 * 1024 + 123)

static uint8_t pattern_byte(size_t i) {
        return (uint8_t) (i * 7 + i / 251);
}

static void script_stdin_echo(struct fake_agent *fa) {
        uint8_t t;
        uint32_t n;
        if (!fa_read_frame(fa, &t, NULL, &n))
                return;
        if (t != VSOCK_MSG_EXEC_PIPE)
                return fa_fail(fa, "request type %u", t);
        size_t total = 0;
        for (;;) {
                uint8_t *p;
                if (!fa_read_frame(fa, &t, &p, &n))
                        return;
                if (t != VSOCK_MSG_STDIN) {
                        free(p);
                        return fa_fail(fa, "expected Stdin, got type %u", t);
                }
                if (n > 32 * 1024) {
                        free(p);
                        return fa_fail(fa, "Stdin frame of %u bytes", n);
                }
                for (uint32_t i = 0; i < n; i++)
                        if (p[i] != pattern_byte(total + i)) {
                                free(p);
                                return fa_fail(fa, "stdin byte %zu differs", total + i);
                        }
                free(p);
                total += n;
                if (n == 0)
                        break;
        }
        if (total != STDIN_TOTAL)
                return fa_fail(fa, "got %zu stdin bytes", total);
        if (!fa_send(fa, VSOCK_MSG_STDOUT, "ok", 2) || !fa_send_hex(fa, vhex("frame_exit_minus1")))
                return;
        fa_expect_eof(fa);
}

static void *stdin_writer(void *arg) {
        int fd = *(int *) arg;
        uint8_t buf[4096];
        size_t off = 0;
        while (off < STDIN_TOTAL) {
                size_t n = STDIN_TOTAL - off < sizeof buf ? STDIN_TOTAL - off : sizeof buf;
                for (size_t i = 0; i < n; i++)
                        buf[i] = pattern_byte(off + i);
                ssize_t w = write(fd, buf, n);
                if (w <= 0)
                        break;
                off += (size_t) w;
        }
        close(fd);
        return NULL;
}

static void test_pipe_stdin(void **state) {
        struct vsock_exec_request req = { .command = (char *) "cat" };
        int in[2];
        assert_int_equal(pipe2(in, O_CLOEXEC), 0);
        pthread_t writer;
        assert_int_equal(pthread_create(&writer, NULL, stdin_writer, &in[1]), 0);
        struct fake_agent fa;
        vsock_conn *c;
        assert_int_equal(fake_agent_start_pair(&fa, script_stdin_echo, NULL, &c), 0);
        struct capture cap = {};
        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        io.stdin_fd = in[0];
        io.on_output = capture_output;
        io.userdata = &cap;
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_now_ns() + 60LL * 1000000000;
        struct vsock_exec_result res = {};
        int r = vsock_exec_pipe(c, &req, &io, &call, &res);
        vsock_conn_close(c);
        AGENT_OK(&fa);
        pthread_join(writer, NULL);
        close(in[0]);
        if (r < 0)
                fail_msg("%s (%s)", vsock_strerror(r), call.remote_error);
        assert_int_equal(res.exit_code, -1);
        assert_string_equal(cap.seq, "1o1k");
}

/* Flow control: while the agent reads nothing, the client must stop
 * draining stdin once the socket is full instead of queueing it all. A
 * writer thread fills the stdin pipe until it stays full (the client
 * stalled), then the agent reads everything. If the client buffered without
 * bound, the writer would reach BP_CAP instead of stalling. */
#define BP_CAP (16u * 1024 * 1024)
#define BP_TAIL (200u * 1024)

struct backpressure {
        int stdin_w;   /* writer's end */
        int go[2];     /* writer -> agent: "start reading" */
        size_t at_stall; /* bytes written when the pipe stayed full */
        size_t total;    /* all bytes written */
        bool stalled;
};

static void *bp_writer(void *arg) {
        struct backpressure *bp = arg;
        uint8_t buf[8192];
        size_t off = 0;
        fcntl(bp->stdin_w, F_SETFL, O_NONBLOCK);
        while (off < BP_CAP) {
                for (size_t i = 0; i < sizeof buf; i++)
                        buf[i] = pattern_byte(off + i);
                ssize_t w = write(bp->stdin_w, buf, sizeof buf);
                if (w > 0) {
                        off += (size_t) w;
                        continue;
                }
                if (w < 0 && errno != EAGAIN)
                        break;
                /* Full: has the client stopped reading? A correct client
                 * never drains it again before the agent reads, so any
                 * wait proves it; the length only bounds the test's time. */
                struct pollfd p = { .fd = bp->stdin_w, .events = POLLOUT };
                if (poll(&p, 1, 300) == 0) {
                        bp->stalled = true;
                        break;
                }
        }
        bp->at_stall = off;
        if (write(bp->go[1], "g", 1) != 1)
                abort();
        fcntl(bp->stdin_w, F_SETFL, 0);
        size_t end = off + BP_TAIL;
        while (bp->stalled && off < end) {
                for (size_t i = 0; i < sizeof buf; i++)
                        buf[i] = pattern_byte(off + i);
                ssize_t w = write(bp->stdin_w, buf, sizeof buf);
                if (w <= 0)
                        break;
                off += (size_t) w;
        }
        __atomic_store_n(&bp->total, off, __ATOMIC_RELEASE);
        close(bp->stdin_w);
        return NULL;
}

static void script_backpressure(struct fake_agent *fa) {
        struct backpressure *bp = fa->arg;
        uint8_t t;
        uint32_t n;
        if (!fa_read_frame(fa, &t, NULL, &n))
                return;
        struct pollfd p = { .fd = bp->go[0], .events = POLLIN };
        if (poll(&p, 1, FA_TIMEOUT_MS) != 1)
                return fa_fail(fa, "writer never stalled nor finished");
        size_t got = 0;
        for (;;) {
                uint8_t *d;
                if (!fa_read_frame(fa, &t, &d, &n))
                        return;
                bool ok = t == VSOCK_MSG_STDIN;
                for (uint32_t i = 0; ok && i < n; i++)
                        ok = d[i] == pattern_byte(got + i);
                free(d);
                if (!ok)
                        return fa_fail(fa, "bad Stdin frame at %zu", got);
                got += n;
                if (n == 0)
                        break;
        }
        if (got != __atomic_load_n(&bp->total, __ATOMIC_ACQUIRE))
                return fa_fail(fa, "got %zu of %zu stdin bytes", got, bp->total);
        fa_send_hex(fa, vhex("frame_exit_0"));
}

static void test_pipe_stdin_backpressure(void **state) {
        struct vsock_exec_request req = { .command = (char *) "cat" };
        int in[2];
        assert_int_equal(pipe2(in, O_CLOEXEC), 0);
        struct backpressure bp = { .stdin_w = in[1] };
        assert_int_equal(pipe2(bp.go, O_CLOEXEC), 0);
        pthread_t writer;
        assert_int_equal(pthread_create(&writer, NULL, bp_writer, &bp), 0);
        struct fake_agent fa;
        vsock_conn *c;
        assert_int_equal(fake_agent_start_pair(&fa, script_backpressure, &bp, &c), 0);
        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        io.stdin_fd = in[0];
        struct vsock_exec_result res = {};
        int r = vsock_exec_pipe(c, &req, &io, NULL, &res);
        vsock_conn_close(c);
        pthread_join(writer, NULL);
        AGENT_OK(&fa);
        assert_int_equal(r, 0);
        assert_true(bp.stalled);
        /* Pipe (64 KiB) + socket buffers + one 32 KiB chunk, with room. */
        assert_true(bp.at_stall < 4u * 1024 * 1024);
        close(in[0]);
        close(bp.go[0]);
        close(bp.go[1]);
}

static void script_pipe_signals(struct fake_agent *fa) {
        vsock_exec_ctl *ctl = fa->arg;
        uint8_t t;
        uint32_t n;
        if (!fa_read_frame(fa, &t, NULL, &n) || !fa_expect_frame_hex(fa, vhex("frame_stdin_eof")))
                return;
        if (vsock_exec_ctl_signal(ctl, SIGINT) < 0)
                return fa_fail(fa, "ctl signal failed");
        if (!fa_expect_frame_hex(fa, vhex("frame_signal_sigint")))
                return;
        /* No terminal in pipe mode: the resize is dropped. */
        if (vsock_exec_ctl_resize(ctl, 24, 80) < 0 || vsock_exec_ctl_signal(ctl, SIGTERM) < 0)
                return fa_fail(fa, "ctl failed");
        if (!fa_expect_frame_hex(fa, vhex("frame_signal_sigterm")))
                return;
        /* Stderr before Exit is fine. */
        if (!fa_send(fa, VSOCK_MSG_STDERR, "bye", 3) || !fa_send_hex(fa, vhex("frame_exit_143")))
                return;
        fa_expect_eof(fa);
}

static void test_pipe_ctl_signals(void **state) {
        struct vsock_exec_request req = { .command = (char *) "sleep", .n_args = 0 };
        vsock_exec_ctl *ctl;
        assert_int_equal(vsock_exec_ctl_new(&ctl), 0);
        struct fake_agent fa;
        vsock_conn *c;
        assert_int_equal(fake_agent_start_pair(&fa, script_pipe_signals, ctl, &c), 0);
        struct capture cap = {};
        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        io.ctl = ctl;
        io.on_output = capture_output;
        io.userdata = &cap;
        struct vsock_exec_result res = {};
        assert_int_equal(vsock_exec_pipe(c, &req, &io, NULL, &res), 0);
        vsock_conn_close(c);
        AGENT_OK(&fa);
        assert_int_equal(res.exit_code, 143);
        assert_string_equal(cap.seq, "2b2y2e");
        vsock_exec_ctl_free(ctl);
}

static vsock_exec_ctl *handler_ctl;

static void on_sigusr1(int sig) {
        (void) vsock_exec_ctl_signal(handler_ctl, SIGTERM);
}

static void script_signal_from_handler(struct fake_agent *fa) {
        pthread_t *main_thread = fa->arg;
        uint8_t t;
        uint32_t n;
        if (!fa_read_frame(fa, &t, NULL, &n) || !fa_expect_frame_hex(fa, vhex("frame_stdin_eof")))
                return;
        pthread_kill(*main_thread, SIGUSR1);
        if (!fa_expect_frame_hex(fa, vhex("frame_signal_sigterm")))
                return;
        fa_send_hex(fa, vhex("frame_exit_minus1"));
}

static void test_pipe_signal_handler(void **state) {
        struct vsock_exec_request req = { .command = (char *) "sleep" };
        assert_int_equal(vsock_exec_ctl_new(&handler_ctl), 0);
        struct sigaction sa = { .sa_handler = on_sigusr1 }, old;
        sigemptyset(&sa.sa_mask);
        assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
        pthread_t self = pthread_self();
        struct fake_agent fa;
        vsock_conn *c;
        assert_int_equal(fake_agent_start_pair(&fa, script_signal_from_handler, &self, &c), 0);
        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        io.ctl = handler_ctl;
        struct vsock_exec_result res = {};
        assert_int_equal(vsock_exec_pipe(c, &req, &io, NULL, &res), 0);
        vsock_conn_close(c);
        AGENT_OK(&fa);
        assert_int_equal(res.exit_code, -1);
        sigaction(SIGUSR1, &old, NULL);
        vsock_exec_ctl_free(handler_ctl);
        handler_ctl = NULL;
}

static void test_pipe_result_as_end(void **state) {
        /* Some agents answer a pipe request that cannot start with an
         * ExecResult instead of Exit. */
        struct vsock_exec_request req = { .command = (char *) "cat" };
        struct plan p = {
                .expect_hex = vhex("exec_host_pipe_with_env_user"),
                .expect_stdin_eof = true,
                .reply_hex = vhex("execresp_agent_start_error"),
        };
        struct vsock_env env = { .key = (char *) "TERM", .value = (char *) "xterm" };
        req.env = &env;
        req.n_env = 1;
        req.user = (char *) "nobody";
        struct fake_agent fa;
        vsock_conn *c;
        assert_int_equal(fake_agent_start_pair(&fa, script_plan, &p, &c), 0);
        struct vsock_exec_result res = {};
        assert_int_equal(vsock_exec_pipe(c, &req, NULL, NULL, &res), 0);
        vsock_conn_close(c);
        AGENT_OK(&fa);
        assert_int_equal(res.exit_code, 1);
        assert_string_equal(res.error, "fork/exec /proc/self/exe: no such file or directory");
        vsock_exec_result_clear(&res);
}

/* ---- tty ----------------------------------------------------------------------------- */

static ssize_t stdin_once(void *userdata, void *buf, size_t n) {
        int *calls = userdata;
        if ((*calls)++ > 0)
                return 0;
        memcpy(buf, "ls\n", 3);
        return 3;
}

static void script_tty(struct fake_agent *fa) {
        vsock_exec_ctl *ctl = fa->arg;
        if (!fa_expect_frame_hex(fa, request_hex("tty_host_all_fields")) ||
            !fa_expect_frame_hex(fa, vhex("frame_stdin_data")) || !fa_expect_frame_hex(fa, vhex("frame_stdin_eof")))
                return;
        if (vsock_exec_ctl_resize(ctl, 24, 80) < 0 || vsock_exec_ctl_signal(ctl, SIGINT) < 0)
                return fa_fail(fa, "ctl failed");
        if (!fa_expect_frame_hex(fa, vhex("frame_resize_24x80")) ||
            !fa_expect_frame_hex(fa, vhex("frame_signal_sigint")))
                return;
        if (vsock_exec_ctl_resize(ctl, 65535, 1) < 0)
                return fa_fail(fa, "ctl failed");
        if (!fa_expect_frame_hex(fa, vhex("frame_resize_max")))
                return;
        if (!fa_send_hex(fa, vhex("frame_stdout_chunk")) || !fa_send_hex(fa, vhex("frame_exit_0")))
                return;
        fa_expect_eof(fa);
}

static void test_tty(void **state) {
        struct vsock_exec_request req = {};
        decode_request("tty_host_all_fields", &req);
        assert_int_equal(req.rows, 65535);
        vsock_exec_ctl *ctl;
        assert_int_equal(vsock_exec_ctl_new(&ctl), 0);
        struct fake_agent fa;
        vsock_conn *c;
        assert_int_equal(fake_agent_start_pair(&fa, script_tty, ctl, &c), 0);
        int calls = 0;
        int out[2];
        assert_int_equal(pipe2(out, O_CLOEXEC), 0);
        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        io.ctl = ctl;
        io.read_stdin = stdin_once; /* with stdin_fd < 0 */
        io.userdata = &calls;
        io.stdout_fd = out[1];
        struct vsock_exec_result res = {};
        int r = vsock_exec_tty(c, &req, &io, NULL, &res);
        vsock_conn_close(c);
        AGENT_OK(&fa);
        assert_int_equal(r, 0);
        assert_int_equal(res.exit_code, 0);
        assert_int_equal(calls, 2);
        close(out[1]);
        char buf[16];
        read_all_fd(out[0], buf, sizeof buf);
        assert_string_equal(buf, "hi\n");
        close(out[0]);
        vsock_exec_ctl_free(ctl);
        vsock_exec_request_clear(&req, false);
}

/* ---- deadline and cancel ------------------------------------------------------------ */

static void test_deadline_mid_exec(void **state) {
        struct vsock_exec_request req = { .command = (char *) "sleep" };
        int in[2];
        assert_int_equal(pipe2(in, O_CLOEXEC), 0); /* stdin that never ends */
        for (int mode = 0; mode < 4; mode++) {
                /* Some output first (not for batch, where it is a wrong
                 * frame), then silence. */
                struct plan p = { .reply_hex = mode > 0 ? "03000000017a" : NULL, .wait_eof = true };
                struct fake_agent fa;
                vsock_conn *c;
                assert_int_equal(fake_agent_start_pair(&fa, script_plan, &p, &c), 0);
                struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
                io.stdin_fd = in[0];
                struct vsock_call call = VSOCK_CALL_INIT;
                int64_t t0 = vsock_now_ns();
                call.deadline_ns = t0 + 150 * 1000000LL;
                struct vsock_exec_result res = {};
                int r = mode == 0   ? vsock_exec(c, &req, &call, &res)
                        : mode == 1 ? vsock_exec_stream(c, &req, &io, &call, &res)
                        : mode == 2 ? vsock_exec_pipe(c, &req, &io, &call, &res)
                                    : vsock_exec_tty(c, &req, &io, &call, &res);
                assert_kind(r, VSOCK_E_TIMEOUT);
                assert_true(vsock_now_ns() - t0 < HANG_BOUND_NS);
                /* The agent saw the disconnect while our conn is still open. */
                AGENT_OK(&fa);
                assert_true(fa.saw_eof);
                vsock_conn_close(c);
        }
        close(in[0]);
        close(in[1]);
}

static void script_cancel(struct fake_agent *fa) {
        int cancel_w = *(int *) fa->arg;
        uint8_t t;
        uint32_t n;
        if (!fa_read_frame(fa, &t, NULL, &n))
                return;
        if (write(cancel_w, "x", 1) != 1)
                return fa_fail(fa, "cannot fire the cancel fd");
        fa_expect_eof(fa);
}

static void test_cancel_fd(void **state) {
        struct vsock_exec_request req = { .command = (char *) "sleep" };
        for (int mode = 0; mode < 4; mode++) {
                int cancel[2];
                assert_int_equal(pipe2(cancel, O_CLOEXEC), 0);
                struct fake_agent fa;
                vsock_conn *c;
                assert_int_equal(fake_agent_start_pair(&fa, script_cancel, &cancel[1], &c), 0);
                struct vsock_call call = VSOCK_CALL_INIT;
                call.cancel_fd = cancel[0];
                struct vsock_exec_result res = {};
                int r = mode == 0   ? vsock_exec(c, &req, &call, &res)
                        : mode == 1 ? vsock_exec_stream(c, &req, NULL, &call, &res)
                        : mode == 2 ? vsock_exec_pipe(c, &req, NULL, &call, &res)
                                    : vsock_exec_tty(c, &req, NULL, &call, &res);
                assert_kind(r, VSOCK_E_CANCELLED);
                AGENT_OK(&fa);
                assert_true(fa.saw_eof);
                vsock_conn_close(c);
                close(cancel[0]);
                close(cancel[1]);
        }
}

/* ---- port forwarding ------------------------------------------------------------------ */

static void script_portfwd_ok(struct fake_agent *fa) {
        char buf[4];
        /* Raw bytes right behind Ready, in the same write: the client must
         * not swallow them while reading the Ready frame. */
        if (!fa_expect_frame_hex(fa, vhex("portfwd_host_port")) ||
            !fa_send_hex(fa, cat_hex(vhex("frame_ready"), "6561726c79", NULL)) || !fa_read_raw(fa, buf, 4))
                return;
        if (memcmp(buf, "ping", 4) != 0)
                return fa_fail(fa, "raw bytes differ");
        if (!fa_send_raw(fa, "pong", 4))
                return;
        fa_expect_eof(fa);
}

static void test_portfwd_accepted(void **state) {
        struct fake_agent fa;
        vsock_conn *c;
        assert_int_equal(fake_agent_start_pair(&fa, script_portfwd_ok, NULL, &c), 0);
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_now_ns() + 30LL * 1000000000;
        assert_int_equal(vsock_open_port_forward(c, "::1", 65535, &call), 0);
        char buf[8];
        assert_int_equal(vsock_conn_read_full(c, buf, 5, NULL), 0);
        assert_memory_equal(buf, "early", 5);
        assert_int_equal(vsock_conn_write(c, "ping", 4), 0);
        assert_int_equal(vsock_conn_read_full(c, buf, 4, NULL), 0);
        assert_memory_equal(buf, "pong", 4);
        vsock_conn_close(c);
        AGENT_OK(&fa);
}

static void test_portfwd_rejected(void **state) {
        static const struct {
                const char *reply;
                enum vsock_errkind kind;
                const char *text;
        } cases[] = {
                { "frame_stderr_portfwd_reject", VSOCK_E_PORT_FORWARD_REJECTED, "invalid remote port 0" },
                { "frame_stdout_chunk", VSOCK_E_UNEXPECTED_PORT_FORWARD_MSG, NULL },
                { "execresp_host_zero", VSOCK_E_UNEXPECTED_PORT_FORWARD_MSG, NULL },
                { NULL, VSOCK_E_CLOSED, "agent closed the connection before the result" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                struct plan p = {
                        .expect_hex = vhex("portfwd_port_only"),
                        .reply_hex = cases[i].reply ? vhex(cases[i].reply) : NULL,
                };
                struct fake_agent fa;
                vsock_conn *c;
                assert_int_equal(fake_agent_start_pair(&fa, script_plan, &p, &c), 0);
                struct vsock_call call = VSOCK_CALL_INIT;
                assert_kind(vsock_open_port_forward(c, NULL, 8080, &call), cases[i].kind);
                if (cases[i].text)
                        assert_string_equal(call.remote_error, cases[i].text);
                vsock_conn_close(c);
                AGENT_OK(&fa);
        }
}

/* ---- files --------------------------------------------------------------------------------- */

static void test_write_file_vectors(void **state) {
        static const struct {
                const char *vector;
                mode_t mode;
        } cases[] = {
                { "writefile_basic", 0644 },
                { "writefile_mode_go_bits", S_ISUID | S_ISVTX | 0755 },
                { "writefile_nil_content", 0 },
                { "writefile_empty_content", 0600 },
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                size_t len;
                uint8_t *payload = vpayload(cases[i].vector, &len);
                struct vsock_write_file_request wr = {};
                assert_int_equal(vsock_write_file_request_decode(payload, len, &wr, NULL), 0);
                free(payload);
                const void *data = wr.content.present ? (wr.content.data ? (void *) wr.content.data : "") : NULL;

                struct plan p = { .expect_hex = vhex(cases[i].vector), .reply_hex = vhex("fileresp_empty") };
                struct fake_agent fa;
                vsock_conn *c;
                assert_int_equal(fake_agent_start_pair(&fa, script_plan, &p, &c), 0);
                struct vsock_call call = VSOCK_CALL_INIT;
                int r = vsock_write_file(c, wr.path, data, wr.content.len, cases[i].mode, &call);
                vsock_conn_close(c);
                const char *f = fake_agent_join(&fa);
                if (f)
                        fail_msg("%s: %s", cases[i].vector, f);
                assert_int_equal(r, 0);
                vsock_write_file_request_clear(&wr);
        }
}

/* Big files are encoded as they are sent (client_file.c): the frame must
 * be byte for byte the encoder's, at sizes around the threshold and the
 * piece boundaries, with a path that needs escaping and every mode bit. */
struct expect_frame {
        const uint8_t *payload;
        size_t len;
};

static void script_expect_frame(struct fake_agent *fa) {
        const struct expect_frame *e = fa->arg;
        if (fa_expect_frame(fa, VSOCK_MSG_WRITE_FILE, e->payload, e->len))
                (void) fa_send_hex(fa, vhex("fileresp_empty"));
}

static void test_write_file_streamed(void **state) {
        static const size_t sizes[] = { 256u * 1024 - 1, 256u * 1024, 256u * 1024 + 1, 3u * 64 * 1024 * 2,
                                        3u * 64 * 1024 * 2 + 2, 5u * 1024 * 1024 + 7 };
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
                size_t n = sizes[i];
                uint8_t *data = malloc(n);
                assert_non_null(data);
                for (size_t k = 0; k < n; k++)
                        data[k] = (uint8_t) (k * 2654435761u >> 13);
                const char *path = "/tmp/a \"quoted\" \\ path\n<&>";
                mode_t mode = S_ISUID | S_ISGID | S_ISVTX | 0751;
                struct vsock_write_file_request req = {
                        .path = (char *) path,
                        .content = { .data = data, .len = n, .present = true },
                        .mode = vsock_go_mode_from_mode_t(mode),
                };
                struct expect_frame e;
                uint8_t *want;
                assert_int_equal(vsock_write_file_request_encode(&req, &want, &e.len), 0);
                e.payload = want;
                struct fake_agent fa;
                vsock_conn *c;
                assert_int_equal(fake_agent_start_pair(&fa, script_expect_frame, &e, &c), 0);
                struct vsock_call call = VSOCK_CALL_INIT;
                int r = vsock_write_file(c, path, data, n, mode, &call);
                vsock_conn_close(c);
                const char *f = fake_agent_join(&fa);
                if (f)
                        fail_msg("%zu bytes: %s", n, f);
                assert_int_equal(r, 0);
                free(want);
                free(data);
        }
}

/* A streamed request cut short by the peer: a write error, no hang. */
static void script_close_early(struct fake_agent *fa) {
        uint8_t hdr[5];
        (void) fa_read_raw(fa, hdr, sizeof hdr);
        close(fa->fd);
        fa->fd = -1;
}

/* vsock_write_file of @n zero bytes against @script; the fake agent must
 * be content. Returns the call's result. */
static int write_zeros_against(fake_script script, size_t n) {
        uint8_t *data = calloc(1, n);
        assert_non_null(data);
        struct fake_agent fa;
        vsock_conn *c;
        assert_int_equal(fake_agent_start_pair(&fa, script, NULL, &c), 0);
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_now_ns() + (int64_t) FA_TIMEOUT_MS * 1000000;
        int r = vsock_write_file(c, "/x", data, n, 0644, &call);
        vsock_conn_close(c);
        AGENT_OK(&fa);
        free(data);
        return r;
}

static void test_write_file_streamed_peer_gone(void **state) {
        assert_kind(write_zeros_against(script_close_early, 8u * 1024 * 1024), VSOCK_E_WRITE_REQUEST);
}

static void script_expect_nothing(struct fake_agent *fa) {
        char b;
        ssize_t r = read(fa->fd, &b, 1);
        if (r != 0)
                fa_fail(fa, "client sent something (%zd)", r);
}

static void test_write_file_too_big(void **state) {
        int r = write_zeros_against(script_expect_nothing, 49u * 1024 * 1024);
        assert_kind(r, VSOCK_E_ENCODE_FILE_REQUEST);
        assert_int_equal(vsock_err_errno(r), EFBIG);
}

static void test_read_file(void **state) {
        struct plan p = { .expect_hex = vhex("readfile"), .reply_hex = vhex("fileresp_content") };
        struct fake_agent fa;
        vsock_conn *c;
        assert_int_equal(fake_agent_start_pair(&fa, script_plan, &p, &c), 0);
        uint8_t *data = NULL;
        size_t len = 0;
        assert_int_equal(vsock_read_file(c, "/etc/hostname", NULL, &data, &len), 0);
        vsock_conn_close(c);
        AGENT_OK(&fa);
        assert_int_equal(len, 12);
        assert_memory_equal(data, "line1\nline2\n", 12);
        free(data);

        /* An empty file: {} */
        p = (struct plan) { .expect_hex = vhex("readfile_empty_path"), .reply_hex = vhex("fileresp_empty") };
        assert_int_equal(fake_agent_start_pair(&fa, script_plan, &p, &c), 0);
        data = (uint8_t *) "sentinel";
        assert_int_equal(vsock_read_file(c, "", NULL, &data, &len), 0);
        vsock_conn_close(c);
        AGENT_OK(&fa);
        assert_null(data);
        assert_int_equal(len, 0);
}

static void test_list_files(void **state) {
        struct plan p = { .expect_hex = vhex("listfiles"), .reply_hex = vhex("fileresp_files") };
        struct fake_agent fa;
        vsock_conn *c;
        assert_int_equal(fake_agent_start_pair(&fa, script_plan, &p, &c), 0);
        struct vsock_file_entry *e = NULL;
        size_t n = 0;
        assert_int_equal(vsock_list_files(c, "/tmp/dir with space/\xc3\xbc&<", NULL, &e, &n), 0);
        vsock_conn_close(c);
        AGENT_OK(&fa);
        assert_int_equal(n, 5);
        assert_string_equal(e[0].name, "a.txt");
        assert_int_equal(e[0].size, 5);
        assert_int_equal(e[0].mode, S_IFREG | 0644);
        assert_false(e[0].is_dir);
        assert_string_equal(e[1].name, "dir");
        assert_int_equal(e[1].go_mode, 0x800001edu);
        assert_int_equal(e[1].mode, S_IFDIR | 0755);
        assert_true(e[1].is_dir);
        assert_int_equal(e[2].mode, S_IFLNK | 0777);
        assert_int_equal(e[3].size, 1099511627776LL);
        assert_int_equal(e[4].mode, S_IFDIR | S_ISVTX | 0777);
        vsock_file_entries_free(e, n);

        /* Empty listing. */
        p = (struct plan) { .reply_hex = vhex("fileresp_files_emptyslice") };
        assert_int_equal(fake_agent_start_pair(&fa, script_plan, &p, &c), 0);
        e = (struct vsock_file_entry *) &p;
        assert_int_equal(vsock_list_files(c, "/empty", NULL, &e, &n), 0);
        vsock_conn_close(c);
        AGENT_OK(&fa);
        assert_null(e);
        assert_int_equal(n, 0);
}

static void test_file_errors(void **state) {
        static const struct {
                const char *reply;
                enum vsock_errkind kind;
                int errnum;
                const char *text;
        } cases[] = {
                { "fileresp_error", VSOCK_E_FILE_REMOTE, ENOENT, "open /nope: no such file or directory" },
                { "fileresp_agent_error", VSOCK_E_FILE_REMOTE, EIO, "read_file exceeds 16777216 bytes: /big" },
                { "execresp_host_zero", VSOCK_E_PROTOCOL, EPROTO, NULL },
                { NULL, VSOCK_E_CLOSED, EPIPE, "agent closed the connection before the result" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                for (int op = 0; op < 3; op++) {
                        struct plan p = { .reply_hex = cases[i].reply ? vhex(cases[i].reply) : NULL };
                        struct fake_agent fa;
                        vsock_conn *c;
                        assert_int_equal(fake_agent_start_pair(&fa, script_plan, &p, &c), 0);
                        struct vsock_call call = VSOCK_CALL_INIT;
                        uint8_t *data = NULL;
                        size_t len = 0;
                        struct vsock_file_entry *e = NULL;
                        int r = op == 0   ? vsock_read_file(c, "/nope", &call, &data, &len)
                                : op == 1 ? vsock_list_files(c, "/nope", &call, &e, &len)
                                          : vsock_write_file(c, "/nope", "x", 1, 0, &call);
                        vsock_conn_close(c);
                        AGENT_OK(&fa);
                        assert_kind(r, cases[i].kind);
                        assert_int_equal(vsock_err_errno(r), cases[i].errnum);
                        if (cases[i].text)
                                assert_string_equal(call.remote_error, cases[i].text);
                        assert_null(data);
                        assert_null(e);
                }
        }
}

/* ---- dialing variants and readiness ------------------------------------------------------ */

static char tmpdir[64];

static int make_tmpdir(void **state) {
        strcpy(tmpdir, "/tmp/test-client.XXXXXX");
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state) {
        return rmdir(tmpdir);
}

static void sock_path(char *buf, size_t size, const char *name, char *addr, size_t asize) {
        snprintf(buf, size, "%s/%s", tmpdir, name);
        snprintf(addr, asize, "unix:%s", buf);
}

static void test_at_variants(void **state) {
        char path[128], addr[140];
        sock_path(path, sizeof path, "exec.sock", addr, sizeof addr);
        struct fake_agent fa;

        struct plan p = { .expect_hex = vhex("exec_host_minimal"), .reply_hex = vhex("execresp_host_stdout") };
        assert_int_equal(fake_agent_start_unix(&fa, path, 0, script_plan, &p), 0);
        struct vsock_exec_request req = { .command = (char *) "true" };
        struct vsock_exec_result res = {};
        assert_int_equal(vsock_exec_at(addr, &req, NULL, &res), 0);
        AGENT_OK(&fa);
        assert_int_equal(res.stdout_len, 3);
        vsock_exec_result_clear(&res);

        p = (struct plan) { .expect_stdin_eof = true, .reply_hex = vhex("frame_exit_1") };
        assert_int_equal(fake_agent_start_unix(&fa, path, 0, script_plan, &p), 0);
        assert_int_equal(vsock_exec_pipe_at(addr, &req, NULL, NULL, &res), 0);
        AGENT_OK(&fa);
        assert_int_equal(res.exit_code, 1);

        p = (struct plan) { .reply_hex = vhex("execresp_agent_stream_final") };
        assert_int_equal(fake_agent_start_unix(&fa, path, 0, script_plan, &p), 0);
        assert_int_equal(vsock_exec_stream_at(addr, &req, NULL, NULL, &res), 0);
        AGENT_OK(&fa);
        assert_int_equal(res.exit_code, 143);

        p = (struct plan) { .expect_stdin_eof = true, .reply_hex = vhex("frame_exit_0") };
        assert_int_equal(fake_agent_start_unix(&fa, path, 0, script_plan, &p), 0);
        assert_int_equal(vsock_exec_tty_at(addr, &req, NULL, NULL, &res), 0);
        AGENT_OK(&fa);

        p = (struct plan) { .expect_hex = vhex("readfile"), .reply_hex = vhex("fileresp_content") };
        assert_int_equal(fake_agent_start_unix(&fa, path, 0, script_plan, &p), 0);
        uint8_t *data;
        size_t len;
        assert_int_equal(vsock_read_file_at(addr, "/etc/hostname", NULL, &data, &len), 0);
        AGENT_OK(&fa);
        assert_int_equal(len, 12);
        free(data);

        p = (struct plan) { .reply_hex = vhex("fileresp_empty") };
        assert_int_equal(fake_agent_start_unix(&fa, path, 0, script_plan, &p), 0);
        assert_int_equal(vsock_write_file_at(addr, "/x", "y", 1, 0, NULL), 0);
        AGENT_OK(&fa);

        p = (struct plan) { .reply_hex = vhex("fileresp_files") };
        assert_int_equal(fake_agent_start_unix(&fa, path, 0, script_plan, &p), 0);
        struct vsock_file_entry *e;
        assert_int_equal(vsock_list_files_at(addr, "/", NULL, &e, &len), 0);
        AGENT_OK(&fa);
        vsock_file_entries_free(e, len);

        assert_int_equal(fake_agent_start_unix(&fa, path, 0, script_portfwd_ok, NULL), 0);
        vsock_conn *c = NULL;
        assert_int_equal(vsock_open_port_forward_at(addr, "::1", 65535, NULL, &c), 0);
        char buf[8];
        assert_int_equal(vsock_conn_read_full(c, buf, 5, NULL), 0);
        assert_int_equal(vsock_conn_write(c, "ping", 4), 0);
        assert_int_equal(vsock_conn_read_full(c, buf, 4, NULL), 0);
        assert_memory_equal(buf, "pong", 4);
        vsock_conn_close(c);
        AGENT_OK(&fa);

        /* Nobody listening: the dial error comes back as is. */
        struct vsock_call call = VSOCK_CALL_INIT;
        assert_kind(vsock_exec_at(addr, &req, &call, &res), VSOCK_E_CONNECT);
        assert_kind(vsock_exec_at("nonsense", &req, &call, &res), VSOCK_E_BAD_ADDRESS);
}

static void test_wait_ready_appears(void **state) {
        char path[128], addr[140];
        sock_path(path, sizeof path, "ready.sock", addr, sizeof addr);
        struct fake_agent fa;
        /* The listener appears only after a while: the first attempts find
         * no socket file at all. */
        assert_int_equal(fake_agent_start_unix(&fa, path, 30, NULL, NULL), 0);
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_now_ns() + 20LL * 1000000000;
        int r = vsock_wait_ready(addr, &call);
        if (r < 0)
                fail_msg("%s (%s)", vsock_strerror(r), call.remote_error);
        AGENT_OK(&fa);
}

static void test_wait_ready_timeout(void **state) {
        char path[128], addr[140];
        sock_path(path, sizeof path, "never.sock", addr, sizeof addr);
        struct vsock_call call = VSOCK_CALL_INIT;
        int64_t t0 = vsock_now_ns();
        call.deadline_ns = t0 + 120 * 1000000LL;
        assert_kind(vsock_wait_ready(addr, &call), VSOCK_E_TIMEOUT);
        int64_t t1 = vsock_now_ns();
        assert_true(t1 - t0 < HANG_BOUND_NS);
        /* Never sleeps past the deadline by more than one attempt's slack. */
        assert_true(t1 >= call.deadline_ns);
        assert_non_null(strstr(call.remote_error, "not ready"));

        /* Already past. */
        call.deadline_ns = vsock_now_ns() - 1;
        assert_kind(vsock_wait_ready(addr, &call), VSOCK_E_TIMEOUT);

        /* Cancelled. */
        int cancel[2];
        assert_int_equal(pipe2(cancel, O_CLOEXEC), 0);
        assert_int_equal(write(cancel[1], "x", 1), 1);
        call = (struct vsock_call) VSOCK_CALL_INIT;
        call.cancel_fd = cancel[0];
        assert_kind(vsock_wait_ready(addr, &call), VSOCK_E_CANCELLED);
        close(cancel[0]);
        close(cancel[1]);

        /* A bad address fails at once. */
        call = (struct vsock_call) VSOCK_CALL_INIT;
        call.deadline_ns = vsock_now_ns() + 60LL * 1000000000;
        t0 = vsock_now_ns();
        assert_kind(vsock_wait_ready("bogus:thing", &call), VSOCK_E_BAD_ADDRESS);
        assert_true(vsock_now_ns() - t0 < HANG_BOUND_NS);
}

/* ---- control pipe ---------------------------------------------------------------------------- */

static void test_ctl_args(void **state) {
        vsock_exec_ctl *ctl;
        assert_int_equal(vsock_exec_ctl_new(&ctl), 0);
        assert_int_equal(vsock_exec_ctl_signal(ctl, 0), -EINVAL);
        assert_int_equal(vsock_exec_ctl_signal(ctl, 65), -EINVAL);
        assert_int_equal(vsock_exec_ctl_signal(NULL, SIGINT), -EINVAL);
        assert_int_equal(vsock_exec_ctl_resize(NULL, 1, 1), -EINVAL);
        /* A full pipe reports EAGAIN instead of blocking the signal
         * handler that calls it. */
        int r;
        size_t n = 0;
        while ((r = vsock_exec_ctl_signal(ctl, SIGWINCH)) == 0)
                n++;
        assert_int_equal(r, -EAGAIN);
        assert_true(n > 100);
        vsock_exec_ctl_free(ctl);
        vsock_exec_ctl_free(NULL);
}


/* ---- against the Go reference agent's behaviour (go-agent-fake) ------------------ */

static pid_t go_pid = -1;
static char go_addr[160];

static int go_start(void **state) {
        const char *exe = getenv("GO_AGENT_FAKE");
        if (!exe)
                return 0; /* the tests skip */
        char path[128];
        snprintf(path, sizeof path, "%s/go-exec.sock", tmpdir);
        snprintf(go_addr, sizeof go_addr, "unix:%s", path);
        go_pid = fork();
        if (go_pid < 0)
                return -1;
        if (go_pid == 0) {
                execl(exe, exe, "--listen", go_addr, (char *) NULL);
                _exit(127);
        }
        /* Until it accepts (bounded). */
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_now_ns() + HANG_BOUND_NS;
        char ready[170];
        snprintf(ready, sizeof ready, "%s", go_addr);
        return vsock_wait_ready(ready, &call) < 0 ? -1 : 0;
}

static int go_stop(void **state) {
        if (go_pid > 0) {
                kill(go_pid, SIGTERM);
                waitpid(go_pid, NULL, 0);
        }
        return 0;
}

#define GO_REQUIRED()                          \
        do {                                   \
                if (go_pid <= 0)               \
                        skip();                \
        } while (0)

struct collect_out {
        char out[4096];
        size_t n;
};

static int collect_stdout(void *userdata, enum vsock_stream_id stream, const uint8_t *data, size_t len) {
        struct collect_out *c = userdata;
        if (stream == VSOCK_STREAM_STDOUT && c->n + len < sizeof c->out) {
                memcpy(c->out + c->n, data, len);
                c->n += len;
                c->out[c->n] = '\0';
        }
        return 0;
}

/* A program and its arguments run as such on an agent that ignores args,
 * in every mode: the whole point of the request's form. */
static void test_go_agent_runs_argv(void **state) {
        GO_REQUIRED();
        char *args[] = { "[%s]", "a b", "$HOME", "*", "it's", "" };
        struct vsock_exec_request req = { .command = "printf", .args = args, .n_args = 6 };
        static const char want[] = "[a b][$HOME][*][it's][]";
        for (int mode = 0; mode < 4; mode++) {
                struct collect_out col = {};
                struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
                io.on_output = collect_stdout;
                io.userdata = &col;
                struct vsock_call call = VSOCK_CALL_INIT;
                call.deadline_ns = vsock_now_ns() + HANG_BOUND_NS;
                struct vsock_exec_result res = {};
                int r;
                switch (mode) {
                case 0:
                        r = vsock_exec_at(go_addr, &req, &call, &res);
                        if (r >= 0 && res.stdout_len < sizeof col.out) {
                                memcpy(col.out, res.stdout_data, res.stdout_len);
                                col.out[res.stdout_len] = '\0';
                        }
                        break;
                case 1:
                        r = vsock_exec_stream_at(go_addr, &req, &io, &call, &res);
                        break;
                case 2:
                        r = vsock_exec_pipe_at(go_addr, &req, &io, &call, &res);
                        break;
                default:
                        r = vsock_exec_tty_at(go_addr, &req, &io, &call, &res);
                        break;
                }
                if (r < 0)
                        fail_msg("mode %d: %s (%s)", mode, vsock_strerror(r), call.remote_error);
                assert_int_equal(res.exit_code, 0);
                assert_string_equal(col.out, want);
                vsock_exec_result_clear(&res);
        }
}

/* Start failures as the Go agent reports them: the error text with exit
 * code 1 in batch and stream mode. */
static void test_go_agent_start_failure(void **state) {
        GO_REQUIRED();
        struct vsock_exec_request req = { .command = "true", .working_dir = "/nonexistent-dir-xyz" };
        struct vsock_exec_result res = {};
        assert_int_equal(vsock_exec_at(go_addr, &req, NULL, &res), 0);
        assert_int_equal(res.exit_code, 1);
        /* Go names what it failed to start: its launcher, not the directory. */
        assert_string_equal(res.error, "fork/exec /proc/self/exe: no such file or directory");
        vsock_exec_result_clear(&res);
        assert_int_equal(vsock_exec_stream_at(go_addr, &req, NULL, NULL, &res), 0);
        assert_int_equal(res.exit_code, 1);
        assert_non_null(res.error);
        vsock_exec_result_clear(&res);
}

static void test_go_agent_files(void **state) {
        GO_REQUIRED();
        char dir[160], path[200];
        snprintf(dir, sizeof dir, "%s/go-files", tmpdir);
        snprintf(path, sizeof path, "%s/sub/f.bin", dir);
        static const uint8_t data[] = { 0, 1, 2, 0xff, '<', '&', '\n' };
        assert_int_equal(vsock_write_file_at(go_addr, path, data, sizeof data, 0640, NULL), 0);
        uint8_t *got = NULL;
        size_t n = 0;
        assert_int_equal(vsock_read_file_at(go_addr, path, NULL, &got, &n), 0);
        assert_int_equal(n, sizeof data);
        assert_memory_equal(got, data, n);
        free(got);
        /* Empty content is omitted from Go's FileResponse. */
        snprintf(path, sizeof path, "%s/sub/empty", dir);
        assert_int_equal(vsock_write_file_at(go_addr, path, "", 0, 0, NULL), 0);
        assert_int_equal(vsock_read_file_at(go_addr, path, NULL, &got, &n), 0);
        assert_int_equal(n, 0);
        assert_null(got);

        char sub[180];
        snprintf(sub, sizeof sub, "%s/sub", dir);
        struct vsock_file_entry *e = NULL;
        assert_int_equal(vsock_list_files_at(go_addr, sub, NULL, &e, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(e[0].name, "empty");
        assert_string_equal(e[1].name, "f.bin");
        assert_int_equal(e[1].mode, S_IFREG | 0640);
        assert_int_equal(e[1].size, sizeof data);
        vsock_file_entries_free(e, n);
        assert_int_equal(vsock_list_files_at(go_addr, dir, NULL, &e, &n), 0);
        assert_int_equal(n, 1);
        assert_true(e[0].is_dir);
        assert_int_equal(e[0].mode & S_IFMT, S_IFDIR);
        vsock_file_entries_free(e, n);

        /* Go's error texts keep their errno for the caller. */
        struct vsock_call call = VSOCK_CALL_INIT;
        snprintf(path, sizeof path, "%s/absent", dir);
        int r = vsock_read_file_at(go_addr, path, &call, &got, &n);
        assert_kind(r, VSOCK_E_FILE_REMOTE);
        assert_int_equal(vsock_err_errno(r), ENOENT);
        r = vsock_list_files_at(go_addr, path, &call, &e, &n);
        assert_int_equal(vsock_err_errno(r), ENOENT);
        snprintf(path, sizeof path, "%s/sub/empty", dir);
        r = vsock_list_files_at(go_addr, path, &call, &e, &n);
        assert_int_equal(vsock_err_errno(r), ENOTDIR);
        r = vsock_write_file_at(go_addr, sub, "x", 1, 0, &call);
        assert_int_equal(vsock_err_errno(r), EISDIR);
}

/* Negotiation against a base agent: it closes at Hello, which the library
 * reports as "no extensions" and caches as "base only"; base requests
 * carry on as before. */
static void test_go_agent_no_extensions(void **state) {
        GO_REQUIRED();
        vsock_caps_forget(NULL);
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_now_ns() + HANG_BOUND_NS;
        struct vsock_caps caps = VSOCK_CAPS_INIT;
        int r = vsock_hello_at(go_addr, &call, &caps);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_UNSUPPORTED);
        assert_string_equal(call.remote_error, "agent does not support extensions");
        assert_int_equal(vsock_err_kind(vsock_caps_lookup(go_addr, NULL)), VSOCK_E_UNSUPPORTED);
        /* An extension call: Hello pipelined with the request, the close,
         * and the feature named; nothing ran. */
        vsock_caps_forget(NULL);
        struct vsock_stat st = {};
        r = vsock_stat_at(go_addr, "/", true, &call, &st);
        assert_int_equal(r, VSOCK_ERR(VSOCK_E_UNSUPPORTED, ENOTSUP));
        assert_string_equal(call.remote_error, "agent does not support fs");
        assert_int_equal(vsock_err_kind(vsock_caps_lookup(go_addr, NULL)), VSOCK_E_UNSUPPORTED);
        r = vsock_list_dir_at(go_addr, "/", 0, NULL, NULL, &call);
        assert_int_equal(r, -EINVAL); /* no callback */
        struct vsock_exec_request req = { .command = "true" };
        struct vsock_exec_result res = {};
        assert_int_equal(vsock_exec_at(go_addr, &req, &call, &res), 0);
        assert_int_equal(res.exit_code, 0);
        vsock_exec_result_clear(&res);
        vsock_caps_forget(NULL);
}

/* Every extension call against a base agent: VSOCK_E_UNSUPPORTED with the
 * feature it needed named, and nothing done in the guest (the Go agent
 * closes at the pipelined Hello, before it reads the request). Twice:
 * probing (nothing cached) and with "base only" cached. */
static int no_list_page(void *userdata, const struct vsock_stat *entries, size_t n) { return 0; }
static int no_sink(void *userdata, const void *data, size_t n) { return 0; }
static ssize_t one_byte_source(void *userdata, void *buf, size_t n) {
        int *left = userdata;
        if (*left == 0 || n == 0)
                return 0;
        (*left)--;
        *(char *) buf = 'x';
        return 1;
}

static void test_go_agent_every_extension_unsupported(void **state) {
        GO_REQUIRED();
        char dir[160], file[200], made[200], started[200], cmd[260];
        snprintf(dir, sizeof dir, "%s/go-ext", tmpdir);
        assert_int_equal(mkdir(dir, 0755), 0);
        snprintf(file, sizeof file, "%s/f", dir);
        assert_int_equal(vsock_write_file_at(go_addr, file, "abc", 3, 0644, NULL), 0);
        snprintf(made, sizeof made, "%s/made", dir);
        snprintf(started, sizeof started, "%s/started", dir);
        snprintf(cmd, sizeof cmd, "touch %s", started);
        enum { FS, STAT, LIST, GET, PUT, TGET, TPUT, PSTART, PLIST, PATTACH, PCONTROL, PWAIT, FCONNECT, FLISTEN,
               FATTACH, N_CALLS };
        static const char *const feature[N_CALLS] = {
                [FS] = "fs",          [STAT] = "fs",         [LIST] = "list",        [GET] = "file-get",
                [PUT] = "file-put",   [TGET] = "tar-get",    [TPUT] = "tar-put",     [PSTART] = "proc",
                [PLIST] = "proc",     [PATTACH] = "proc",    [PCONTROL] = "proc",    [PWAIT] = "proc",
                [FCONNECT] = "fwd-connect", [FLISTEN] = "fwd-listen", [FATTACH] = "fwd-listen",
        };
        for (int round = 0; round < 2; round++) {
                if (round == 0)
                        vsock_caps_forget(NULL);
                for (int k = 0; k < N_CALLS; k++) {
                        struct vsock_call call = VSOCK_CALL_INIT;
                        call.deadline_ns = vsock_now_ns() + HANG_BOUND_NS;
                        vsock_conn *c = NULL;
                        assert_int_equal(vsock_dial_str(go_addr, 0, 10000, -1, &c), 0);
                        int r = -1;
                        int left = 1;
                        switch (k) {
                        case FS: {
                                struct vsock_fs_request req = VSOCK_FS_REQUEST_INIT(VSOCK_FS_MKDIR, made);
                                struct vsock_fs_result res;
                                r = vsock_fs(c, &req, &call, &res);
                                break;
                        }
                        case STAT: {
                                struct vsock_stat st;
                                r = vsock_stat(c, file, false, &call, &st);
                                break;
                        }
                        case LIST:
                                r = vsock_list_dir(c, dir, 0, no_list_page, NULL, &call);
                                break;
                        case GET: {
                                struct vsock_file_get_opts o = VSOCK_FILE_GET_OPTS_INIT;
                                o.sink = no_sink;
                                struct vsock_file_get_result res;
                                r = vsock_file_get(c, file, &o, &call, &res);
                                break;
                        }
                        case PUT: {
                                struct vsock_file_put_opts o = VSOCK_FILE_PUT_OPTS_INIT;
                                o.source = one_byte_source;
                                o.userdata = &left;
                                struct vsock_file_put_result res;
                                r = vsock_file_put(c, made, &o, &call, &res);
                                break;
                        }
                        case TGET: {
                                struct vsock_tar_opts o = VSOCK_TAR_OPTS_INIT;
                                o.sink = no_sink;
                                struct vsock_tar_result res;
                                r = vsock_tar_get(c, dir, &o, &call, &res);
                                break;
                        }
                        case TPUT: {
                                struct vsock_tar_opts o = VSOCK_TAR_OPTS_INIT;
                                o.source = one_byte_source;
                                o.userdata = &left;
                                struct vsock_tar_result res;
                                r = vsock_tar_put(c, made, &o, &call, &res);
                                break;
                        }
                        case PSTART: {
                                struct vsock_proc_spec spec = { .req = { .command = cmd } };
                                struct vsock_proc_info info;
                                r = vsock_proc_start(c, &spec, &call, &info);
                                break;
                        }
                        case PLIST: {
                                struct vsock_proc_info *infos = NULL;
                                size_t n = 0;
                                r = vsock_proc_list(c, NULL, &call, &infos, &n);
                                break;
                        }
                        case PATTACH: {
                                struct vsock_proc_attach_opts o = { 0 };
                                struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
                                struct vsock_proc_end end;
                                r = vsock_proc_attach(c, 1, NULL, &o, &io, &call, NULL, &end);
                                break;
                        }
                        case PCONTROL: {
                                struct vsock_proc_control ctl = { .op = VSOCK_PROC_SIGNAL, .signal = SIGTERM };
                                r = vsock_proc_control(c, 1, NULL, &ctl, &call, NULL);
                                break;
                        }
                        case PWAIT: {
                                struct vsock_proc_end end;
                                r = vsock_proc_wait(c, 0, "t", 0, &call, &end);
                                break;
                        }
                        case FCONNECT:
                                r = vsock_fwd_connect(c, NULL, 0, file, &call);
                                break;
                        case FLISTEN:
                                r = vsock_fwd_listen(c, "tcp:127.0.0.1:0", 0, &call, NULL, 0);
                                break;
                        case FATTACH:
                                r = vsock_fwd_attach(c, 1, &call);
                                break;
                        }
                        char want[64];
                        snprintf(want, sizeof want, "agent does not support %s", feature[k]);
                        if (r != VSOCK_ERR(VSOCK_E_UNSUPPORTED, ENOTSUP) || strcmp(call.remote_error, want) != 0)
                                fail_msg("call %d, round %d: %s (\"%s\") instead of \"%s\"", k, round,
                                         vsock_strerror(r), call.remote_error, want);
                        vsock_conn_close(c);
                }
        }
        /* Nothing reached the guest. */
        struct stat st;
        assert_int_equal(stat(made, &st), -1);
        assert_int_equal(stat(started, &st), -1);
        /* The agent still serves base requests. */
        struct vsock_exec_request req = { .command = "true" };
        struct vsock_exec_result res = {};
        assert_int_equal(vsock_exec_at(go_addr, &req, NULL, &res), 0);
        assert_int_equal(res.exit_code, 0);
        vsock_exec_result_clear(&res);
        vsock_caps_forget(NULL);
}

static void test_go_agent_port_forward(void **state) {
        GO_REQUIRED();
        struct vsock_call call = VSOCK_CALL_INIT;
        vsock_conn *c = NULL;
        int r = vsock_open_port_forward_at(go_addr, NULL, 0, &call, &c);
        assert_kind(r, VSOCK_E_PORT_FORWARD_REJECTED);
        assert_string_equal(call.remote_error, "invalid remote port 0");
        r = vsock_open_port_forward_at(go_addr, "127.0.0.1", 1, &call, &c);
        assert_kind(r, VSOCK_E_PORT_FORWARD_REJECTED);
        assert_string_equal(call.remote_error,
                            "connect 127.0.0.1:1 failed: dial tcp 127.0.0.1:1: connect: connection refused");
}

int main(void) {
        signal(SIGPIPE, SIG_IGN);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_requests_match_vectors),
                cmocka_unit_test(test_exec_batch_full),
                cmocka_unit_test(test_unknown_struct_sizes),
                cmocka_unit_test(test_exec_args_for_both_agents),
                cmocka_unit_test(test_exec_batch_response_shapes),
                cmocka_unit_test(test_bad_replies),
                cmocka_unit_test(test_stream_wrong_final),
                cmocka_unit_test(test_stream_interleaving),
                cmocka_unit_test(test_stream_to_fds),
                cmocka_unit_test(test_stream_stdout_epipe),
                cmocka_unit_test(test_stream_callback_abort),
                cmocka_unit_test(test_pipe_stdin),
                cmocka_unit_test(test_pipe_stdin_backpressure),
                cmocka_unit_test(test_pipe_ctl_signals),
                cmocka_unit_test(test_pipe_signal_handler),
                cmocka_unit_test(test_pipe_result_as_end),
                cmocka_unit_test(test_tty),
                cmocka_unit_test(test_deadline_mid_exec),
                cmocka_unit_test(test_cancel_fd),
                cmocka_unit_test(test_portfwd_accepted),
                cmocka_unit_test(test_portfwd_rejected),
                cmocka_unit_test(test_write_file_vectors),
                cmocka_unit_test(test_write_file_too_big),
                cmocka_unit_test(test_write_file_streamed),
                cmocka_unit_test(test_write_file_streamed_peer_gone),
                cmocka_unit_test(test_read_file),
                cmocka_unit_test(test_list_files),
                cmocka_unit_test(test_file_errors),
                cmocka_unit_test(test_at_variants),
                cmocka_unit_test(test_wait_ready_appears),
                cmocka_unit_test(test_wait_ready_timeout),
                cmocka_unit_test(test_ctl_args),
        };
        int r = load_vectors(NULL);
        if (r < 0)
                return 1;
        r = make_tmpdir(NULL);
        if (r < 0)
                return 1;
        const struct CMUnitTest go_tests[] = {
                cmocka_unit_test(test_go_agent_runs_argv),
                cmocka_unit_test(test_go_agent_start_failure),
                cmocka_unit_test(test_go_agent_files),
                cmocka_unit_test(test_go_agent_port_forward),
                cmocka_unit_test(test_go_agent_no_extensions),
                cmocka_unit_test(test_go_agent_every_extension_unsupported),
        };
        int failed = cmocka_run_group_tests(tests, NULL, NULL);
        failed += cmocka_run_group_tests_name("go_agent", go_tests, go_start, go_stop);
        remove_tmpdir(NULL);
        free_vectors(NULL);
        return failed;
}
