/* The extension protocol (PROTOCOL.md Part 2) against the real agent
 * ($AGENT) on temporary unix sockets: negotiation and its order rules,
 * the Error frame, and the library's side (vsock_hello, the caps cache,
 * pipelined extension requests). Raw frames where the order of bytes on
 * the wire is the point. */
#include <errno.h>
#include <fcntl.h>
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
#include <unistd.h>

#include <cmocka.h>

#include <vsock/vsock.h>

#include "agent-harness.h"
#include "common/macro.h"
#include "lib/client-internal.h"
#include "lib/ext_msg.h"

#define BOUND_MS 20000 /* hang catcher for one exchange */

#include "agent-group.h"

static int test_teardown(void **state) {
        (void) state;
        int fds, kids;
        if (!agent_wait_clean(A, 10000, &fds, &kids))
                fail_msg("agent: %d fds (baseline %d), %d children", fds, A->baseline_fds, kids);
        vsock_caps_forget(NULL);
        return 0;
}

/* ---- raw frames ------------------------------------------------------------------- */

static void send_hello(vsock_conn *c, int32_t version) {
        struct ext_hello h = { .version = version, .client = "test-ext-agent" };
        struct buf b = BUF_INIT(0);
        assert_int_equal(ext_hello_encode(&h, &b), 0);
        assert_int_equal(vsock_write_message(c, EXT_MSG_HELLO, buf_head(&b), buf_size(&b)), 0);
        buf_free(&b);
}

/* The next frame, which must be of @type; its payload (malloc'd). */
static uint8_t *expect_frame(vsock_conn *c, uint8_t type, uint32_t *ret_len) {
        uint8_t t;
        uint8_t *d = NULL;
        uint32_t n;
        int r = vsock_read_message(c, &t, &d, &n);
        if (r < 0)
                fail_msg("waiting for type %u: %s", type, vsock_strerror(r));
        if (t != type)
                fail_msg("type %u (%.*s) instead of %u", t, (int) n, d ? (const char *) d : "", type);
        *ret_len = n;
        return d;
}

static void expect_hello_reply(vsock_conn *c, struct ext_hello_reply *ret) {
        uint32_t n;
        uint8_t *d = expect_frame(c, EXT_MSG_HELLO_REPLY, &n);
        const char *why = NULL;
        if (ext_hello_reply_decode(d, n, ret, &why) < 0)
                fail_msg("HelloReply: %s", why);
        free(d);
}

static void expect_error(vsock_conn *c, const char *code) {
        uint32_t n;
        uint8_t *d = expect_frame(c, EXT_MSG_ERROR, &n);
        struct ext_error e;
        const char *why = NULL;
        if (ext_error_decode(d, n, &e, &why) < 0)
                fail_msg("Error: %s", why);
        free(d);
        if (strcmp(e.code, code) != 0)
                fail_msg("Error %s (%s) instead of %s", e.code, e.message, code);
        assert_true(e.message[0] != '\0');
        ext_error_clear(&e);
}

/* The agent closed: EOF (or a reset) before any frame. */
static void expect_closed(vsock_conn *c) {
        uint8_t t;
        uint8_t *d = NULL;
        uint32_t n;
        int r = vsock_read_message(c, &t, &d, &n);
        if (r >= 0)
                fail_msg("frame type %u instead of the agent closing", t);
        int e = vsock_err_errno(r);
        if (vsock_err_kind(r) != VSOCK_E_CLOSED && e != EPIPE && e != ECONNRESET)
                fail_msg("%s instead of the agent closing", vsock_strerror(r));
}

static bool has_feature(const struct ext_hello_reply *r, const char *name) {
        for (size_t i = 0; i < r->n_features; i++)
                if (strcmp(r->features[i], name) == 0)
                        return true;
        return false;
}

/* A batch `true` on a connection: proves it still serves. */
static void exec_true_on(vsock_conn *c) {
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_now_ns() + (int64_t) BOUND_MS * 1000000;
        struct vsock_exec_request req = { .command = "true" };
        struct vsock_exec_result res = {};
        int r = vsock_exec(c, &req, &call, &res);
        if (r < 0)
                fail_msg("exec: %s (%s)", vsock_strerror(r), call.remote_error);
        assert_int_equal(res.exit_code, 0);
        vsock_exec_result_clear(&res);
}

/* ---- negotiation ----------------------------------------------------------------- */

static void test_hello_reply(void **state) {
        (void) state;
        vsock_conn *c = dial();
        send_hello(c, 7); /* a newer host: the agent answers its own version */
        struct ext_hello_reply rep;
        expect_hello_reply(c, &rep);
        assert_int_equal(rep.version, EXT_VERSION);
        assert_true(strncmp(rep.agent, "vsock-agent ", 12) == 0);
        char boot[64] = "";
        int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_true(read(fd, boot, sizeof boot - 1) > 0);
        close(fd);
        boot[strcspn(boot, "\n")] = '\0';
        assert_string_equal(rep.boot_id, boot);
        assert_true(has_feature(&rep, "reuse"));
        assert_int_equal(rep.limits.max_payload, 16u << 20);
        assert_int_equal(rep.limits.list_page_max, 4096);
        assert_int_equal(rep.limits.procs_max, 64);
        assert_int_equal(rep.limits.ring_total_max, 64u << 20);
        ext_hello_reply_clear(&rep);
        /* A base request after Hello, twice: "reuse". */
        exec_true_on(c);
        exec_true_on(c);
        vsock_conn_close(c);
}

static void test_hello_order(void **state) {
        (void) state;
        /* A second Hello: closed. */
        vsock_conn *c = dial();
        send_hello(c, 1);
        struct ext_hello_reply rep;
        expect_hello_reply(c, &rep);
        ext_hello_reply_clear(&rep);
        send_hello(c, 1);
        expect_closed(c);
        vsock_conn_close(c);

        /* An extension request without Hello: closed, as a base agent would. */
        c = dial();
        static const char fs[] = "{\"op\":\"stat\",\"path\":\"/\"}";
        assert_int_equal(vsock_write_message(c, EXT_MSG_FS_REQUEST, fs, sizeof fs - 1), 0);
        expect_closed(c);
        vsock_conn_close(c);

        /* Hello after a base request on the same connection: closed. */
        c = dial();
        exec_true_on(c);
        send_hello(c, 1);
        expect_closed(c);
        vsock_conn_close(c);
}

/* Hello and a request in one write: both answered, in order. An extension
 * type the agent does not serve gets Error ENOSYS, and the connection
 * goes on. */
static void test_hello_pipelined(void **state) {
        (void) state;
        vsock_conn *c = dial();
        struct ext_hello h = { .version = 1 };
        struct buf b = BUF_INIT(0);
        uint8_t hdr[VSOCK_FRAME_HEADER_SIZE];
        struct buf json = BUF_INIT(0);
        assert_int_equal(ext_hello_encode(&h, &json), 0);
        vsock_frame_header(hdr, EXT_MSG_HELLO, (uint32_t) buf_size(&json));
        assert_int_equal(buf_append(&b, hdr, sizeof hdr), 0);
        assert_int_equal(buf_append(&b, buf_head(&json), buf_size(&json)), 0);
        vsock_frame_header(hdr, 127, 2); /* an extension type nobody defines */
        assert_int_equal(buf_append(&b, hdr, sizeof hdr), 0);
        assert_int_equal(buf_append(&b, "{}", 2), 0);
        assert_int_equal(vsock_conn_write(c, buf_head(&b), buf_size(&b)), 0);
        buf_free(&b);
        buf_free(&json);
        struct ext_hello_reply rep;
        expect_hello_reply(c, &rep);
        ext_hello_reply_clear(&rep);
        expect_error(c, "ENOSYS");
        exec_true_on(c);
        vsock_conn_close(c);
}

static void test_hello_hostile(void **state) {
        (void) state;
        /* Garbage, a wrong JSON type, version 0: closed without a reply. */
        static const char *const bad[] = { "{", "[]", "{\"version\":\"1\"}", "{\"version\":0}", "{\"version\":-3}",
                                           "{\"version\":1,\"features\":[1]}" };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                vsock_conn *c = dial();
                assert_int_equal(vsock_write_message(c, EXT_MSG_HELLO, bad[i], strlen(bad[i])), 0);
                expect_closed(c);
                vsock_conn_close(c);
        }
        /* An oversized Hello is refused at its header: 1 MiB announced,
         * nothing more sent, and the agent closes at once. */
        vsock_conn *c = dial();
        uint8_t hdr[VSOCK_FRAME_HEADER_SIZE];
        vsock_frame_header(hdr, EXT_MSG_HELLO, 1u << 20);
        assert_int_equal(vsock_conn_write(c, hdr, sizeof hdr), 0);
        expect_closed(c);
        vsock_conn_close(c);

        /* After Hello, an extension request over its limit: Error ELIMIT,
         * then the agent closes (the payload is never read). */
        c = dial();
        send_hello(c, 1);
        struct ext_hello_reply rep;
        expect_hello_reply(c, &rep);
        ext_hello_reply_clear(&rep);
        vsock_frame_header(hdr, EXT_MSG_FS_REQUEST, 8u << 20);
        assert_int_equal(vsock_conn_write(c, hdr, sizeof hdr), 0);
        expect_error(c, "ELIMIT");
        expect_closed(c);
        vsock_conn_close(c);

        /* The agent still serves. */
        assert_int_equal(agent_exec_true(A, BOUND_MS), 0);
}

/* ---- the library -------------------------------------------------------------------- */

static void test_lib_hello(void **state) {
        (void) state;
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_now_ns() + (int64_t) BOUND_MS * 1000000;
        struct vsock_caps caps = VSOCK_CAPS_INIT;
        assert_int_equal(vsock_caps_lookup(A->exec_addr, &caps), -ENOENT);
        int r = vsock_hello_at(A->exec_addr, &call, &caps);
        if (r < 0)
                fail_msg("hello: %s (%s)", vsock_strerror(r), call.remote_error);
        assert_int_equal(caps.version, 1);
        assert_true(caps.features & VSOCK_FEATURE_REUSE);
        assert_true(strncmp(caps.features_text, "reuse", 5) == 0);
        assert_int_equal(strlen(caps.boot_id), 36);
        assert_int_equal(caps.limits.data_max, 256u * 1024);
        /* Cached now, whole; and a caller with a smaller (older) struct
         * gets only what it has room for. */
        struct vsock_caps cached = VSOCK_CAPS_INIT;
        assert_int_equal(vsock_caps_lookup(A->exec_addr, &cached), 0);
        assert_memory_equal(&cached, &caps, sizeof caps);
        struct vsock_caps small;
        memset(&small, 0x5a, sizeof small);
        small.size = offsetof(struct vsock_caps, features_text);
        assert_int_equal(vsock_caps_lookup(A->exec_addr, &small), 0);
        assert_int_equal(small.version, 1);
        assert_int_equal((uint8_t) small.features_text[0], 0x5a);

        /* On one connection: Hello, then base requests. */
        vsock_conn *c = dial();
        assert_int_equal(vsock_hello(c, &call, &caps), 0);
        assert_int_equal(vsock_hello(c, &call, &caps), 0); /* no I/O the second time */
        exec_true_on(c);
        exec_true_on(c);
        vsock_conn_close(c);
}

/* An extension request through client_ext_send: pipelined with Hello on a
 * fresh connection; a feature the agent lacks is VSOCK_E_UNSUPPORTED. */
static void test_lib_pipelined_unsupported(void **state) {
        (void) state;
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_now_ns() + (int64_t) BOUND_MS * 1000000;
        vsock_conn *c = dial();
        static const char req[] = "{\"listen\":\"tcp:127.0.0.1:1\"}";
        /* A feature bit no agent has (beyond those defined). */
        int r = client_ext_send(c, 1u << 30, EXT_MSG_FWD_LISTEN, req, sizeof req - 1, &call);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_UNSUPPORTED);
        assert_string_equal(call.remote_error, "agent does not support extensions");
        vsock_conn_close(c);
        /* Without a feature check, the agent's own answer comes back. */
        c = dial();
        r = client_ext_send(c, 0, 126, "{}", 2, &call);
        assert_int_equal(r, 0);
        uint8_t t;
        uint8_t *d = NULL;
        uint32_t n;
        r = client_ext_read(c, &call, &t, &d, &n);
        assert_int_equal(r, VSOCK_ERR(VSOCK_E_UNSUPPORTED, ENOSYS));
        assert_non_null(strstr(call.remote_error, "not served"));
        /* ... and the connection serves the next request. */
        exec_true_on(c);
        vsock_conn_close(c);
}

/* ---- file-system operations ------------------------------------------------------- */

static struct vsock_call call_bounded(void) {
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_now_ns() + (int64_t) BOUND_MS * 1000000;
        return call;
}

/* vsock_fs on @c that must succeed. */
static void fs_ok(vsock_conn *c, const struct vsock_fs_request *req, struct vsock_fs_result *ret) {
        struct vsock_call call = call_bounded();
        struct vsock_fs_result res = {};
        int r = vsock_fs(c, req, &call, &res);
        if (r < 0)
                fail_msg("fs %d %s: %s (%s)", req->op, req->path, vsock_strerror(r), call.remote_error);
        if (ret)
                *ret = res;
        else
                vsock_fs_result_clear(&res);
}

/* vsock_fs on @c that must fail with the guest's @err, the message naming
 * @word (if not NULL). The connection goes on serving. */
static void fs_err(vsock_conn *c, const struct vsock_fs_request *req, int err, const char *word) {
        struct vsock_call call = call_bounded();
        struct vsock_fs_result res = {};
        int r = vsock_fs(c, req, &call, &res);
        if (r != VSOCK_ERR(VSOCK_E_REMOTE, err))
                fail_msg("fs %d %s: %s (%s) instead of %s", req->op, req->path, r < 0 ? vsock_strerror(r) : "success",
                         call.remote_error, strerror(err));
        if (word && !strstr(call.remote_error, word))
                fail_msg("message \"%s\" without \"%s\"", call.remote_error, word);
}

static struct vsock_stat stat_ok(vsock_conn *c, const char *path, bool follow) {
        struct vsock_call call = call_bounded();
        struct vsock_stat st = {};
        int r = vsock_stat(c, path, follow, &call, &st);
        if (r < 0)
                fail_msg("stat %s: %s (%s)", path, vsock_strerror(r), call.remote_error);
        return st;
}

static void make_tmpdir(char *buf, size_t size) {
        snprintf(buf, size, "/tmp/ext-fs-XXXXXX");
        assert_non_null(mkdtemp(buf));
}

static void put_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        fputs(text, f);
        assert_int_equal(fclose(f), 0);
}

static void rm_rf(const char *dir) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
}

static bool exists(const char *path) {
        struct stat st;
        return lstat(path, &st) == 0;
}

static void test_fs_mkdir_stat_chmod(void **state) {
        (void) state;
        char d[64], p[256];
        make_tmpdir(d, sizeof d);
        vsock_conn *c = dial(); /* every request on this one connection */

        /* mkdir -p with a mode, exactly (no umask); without -p an existing
         * directory is EEXIST, with -p success. */
        snprintf(p, sizeof p, "%s/a/b/c", d);
        struct vsock_fs_request req = VSOCK_FS_REQUEST_INIT(VSOCK_FS_MKDIR, p);
        req.mode = 0750;
        req.parents = true;
        struct vsock_fs_result res;
        fs_ok(c, &req, &res);
        assert_true(res.has_stat);
        assert_int_equal(res.stat.mode, S_IFDIR | 0750);
        assert_string_equal(res.stat.name, "c");
        vsock_fs_result_clear(&res);
        fs_ok(c, &req, NULL);
        req.parents = false;
        fs_err(c, &req, EEXIST, "mkdir");
        snprintf(p, sizeof p, "%s/x/y", d);
        fs_err(c, &req, ENOENT, p);
        /* A trailing slash: the mode still goes to the last directory. */
        snprintf(p, sizeof p, "%s/s/t//", d);
        req = (struct vsock_fs_request) VSOCK_FS_REQUEST_INIT(VSOCK_FS_MKDIR, p);
        req.mode = 0701;
        req.parents = true;
        fs_ok(c, &req, &res);
        assert_int_equal(res.stat.mode, S_IFDIR | 0701);
        assert_string_equal(res.stat.name, "t");
        vsock_fs_result_clear(&res);
        /* Default mode 0755. */
        snprintf(p, sizeof p, "%s/m", d);
        req = (struct vsock_fs_request) VSOCK_FS_REQUEST_INIT(VSOCK_FS_MKDIR, p);
        fs_ok(c, &req, &res);
        assert_int_equal(res.stat.mode, S_IFDIR | 0755);
        vsock_fs_result_clear(&res);

        /* stat: size, type, owner and its name from /etc/passwd. */
        snprintf(p, sizeof p, "%s/f", d);
        put_file(p, "hello\n");
        struct vsock_stat st = stat_ok(c, p, true);
        assert_int_equal(st.size, 6);
        assert_true(S_ISREG(st.mode));
        assert_int_equal(st.uid, getuid());
        if (getuid() == 0) {
                assert_string_equal(st.user, "root");
                assert_string_equal(st.group, "root");
        }
        assert_int_equal(st.nlink, 1);
        assert_string_equal(st.name, "f");
        assert_true(st.mtime_ns > INT64_C(1600000000) * 1000000000);
        vsock_stat_clear(&st);
        /* A trailing slash and the root. */
        st = stat_ok(c, "/", true);
        assert_string_equal(st.name, "/");
        assert_true(S_ISDIR(st.mode));
        vsock_stat_clear(&st);

        /* chmod with the special bits; a mode is required. */
        req = (struct vsock_fs_request) VSOCK_FS_REQUEST_INIT(VSOCK_FS_CHMOD, p);
        req.mode = 04751;
        fs_ok(c, &req, &res);
        assert_int_equal(res.stat.mode, S_IFREG | 04751);
        vsock_fs_result_clear(&res);
        req.mode = -1;
        fs_err(c, &req, EINVAL, "mode");

        /* utimes: mtime set (before 1970 too), atime left alone. */
        struct stat before;
        assert_int_equal(stat(p, &before), 0);
        req = (struct vsock_fs_request) VSOCK_FS_REQUEST_INIT(VSOCK_FS_UTIMES, p);
        req.mtime_ns = INT64_C(1234567890) * 1000000000 + 5;
        fs_ok(c, &req, &res);
        assert_int_equal(res.stat.mtime_ns, req.mtime_ns);
        assert_int_equal(res.stat.atime_ns, (int64_t) before.st_atim.tv_sec * 1000000000 + before.st_atim.tv_nsec);
        vsock_fs_result_clear(&res);
        req.mtime_ns = -1500000000; /* 1969-12-31T23:59:58.5 */
        fs_ok(c, &req, &res);
        assert_int_equal(res.stat.mtime_ns, -1500000000);
        vsock_fs_result_clear(&res);

        /* Relative paths and unknown ops are refused; missing paths are ENOENT. */
        req = (struct vsock_fs_request) VSOCK_FS_REQUEST_INIT(VSOCK_FS_STAT, "tmp");
        fs_err(c, &req, EINVAL, "absolute");
        snprintf(p, sizeof p, "%s/none", d);
        req.path = p;
        fs_err(c, &req, ENOENT, "stat");
        vsock_conn_close(c);
        rm_rf(d);
}

static void test_fs_links_owner_rename(void **state) {
        (void) state;
        char d[64], p[256], q[256];
        make_tmpdir(d, sizeof d);
        vsock_conn *c = dial();
        snprintf(p, sizeof p, "%s/f", d);
        put_file(p, "x");

        /* symlink, readlink, lstat with the target, stat through it. */
        snprintf(q, sizeof q, "%s/l", d);
        struct vsock_fs_request req = VSOCK_FS_REQUEST_INIT(VSOCK_FS_SYMLINK, q);
        req.target = "f";
        struct vsock_fs_result res;
        fs_ok(c, &req, &res);
        assert_true(S_ISLNK(res.stat.mode));
        assert_string_equal(res.stat.target, "f");
        assert_string_equal(res.stat.name, "l");
        vsock_fs_result_clear(&res);
        fs_err(c, &req, EEXIST, "symlink");
        req = (struct vsock_fs_request) VSOCK_FS_REQUEST_INIT(VSOCK_FS_READLINK, q);
        fs_ok(c, &req, &res);
        assert_string_equal(res.target, "f");
        assert_false(res.has_stat);
        vsock_fs_result_clear(&res);
        req.path = p;
        fs_err(c, &req, EINVAL, "readlink");
        struct vsock_stat st = stat_ok(c, q, true);
        assert_true(S_ISREG(st.mode));
        assert_null(st.target);
        vsock_stat_clear(&st);
        st = stat_ok(c, q, false);
        assert_true(S_ISLNK(st.mode));
        assert_string_equal(st.target, "f");
        vsock_stat_clear(&st);

        /* chown never follows the link: the link changes, the file not. */
        if (getuid() == 0) {
                req = (struct vsock_fs_request) VSOCK_FS_REQUEST_INIT(VSOCK_FS_CHOWN, q);
                req.uid = 4321;
                fs_ok(c, &req, &res);
                assert_int_equal(res.stat.uid, 4321);
                assert_true(S_ISLNK(res.stat.mode));
                assert_null(res.stat.user); /* no name for that id */
                vsock_fs_result_clear(&res);
                struct stat fst, lst;
                assert_int_equal(stat(p, &fst), 0);
                assert_int_equal(lstat(q, &lst), 0);
                assert_int_equal(fst.st_uid, 0);
                assert_int_equal(lst.st_uid, 4321);
                assert_int_equal(lst.st_gid, 0); /* gid absent: unchanged */
                req.path = p;
                req.uid = -1;
                req.gid = 0; /* zero travels */
                fs_ok(c, &req, NULL);
        }
        req = (struct vsock_fs_request) VSOCK_FS_REQUEST_INIT(VSOCK_FS_CHOWN, p);
        req.uid = UINT32_MAX; /* (uid_t) -1 is not an id */
        struct vsock_call call = call_bounded();
        assert_int_equal(vsock_fs(c, &req, &call, NULL), -EINVAL);

        /* rename: done, the target absolute; EXDEV across file systems. */
        snprintf(q, sizeof q, "%s/g", d);
        req = (struct vsock_fs_request) VSOCK_FS_REQUEST_INIT(VSOCK_FS_RENAME, p);
        req.target = q;
        fs_ok(c, &req, &res);
        assert_false(res.has_stat);
        vsock_fs_result_clear(&res);
        assert_false(exists(p));
        assert_true(exists(q));
        fs_err(c, &req, ENOENT, "rename");
        req.path = q;
        req.target = "g2";
        fs_err(c, &req, EINVAL, "absolute");
        struct stat shm, tmp;
        if (stat("/dev/shm", &shm) == 0 && stat(d, &tmp) == 0 && shm.st_dev != tmp.st_dev) {
                req.target = "/dev/shm/ext-fs-rename-test";
                fs_err(c, &req, EXDEV, "rename");
        }
        vsock_conn_close(c);
        rm_rf(d);
}

static void test_fs_remove(void **state) {
        (void) state;
        char d[64], p[256], q[256], out[64];
        make_tmpdir(d, sizeof d);
        make_tmpdir(out, sizeof out);
        vsock_conn *c = dial();
        /* A tree with a symlink to a directory outside it, and one to a file. */
        snprintf(p, sizeof p, "%s/t/a/b", d);
        struct vsock_fs_request req = VSOCK_FS_REQUEST_INIT(VSOCK_FS_MKDIR, p);
        req.parents = true;
        fs_ok(c, &req, NULL);
        snprintf(p, sizeof p, "%s/t/a/b/f", d);
        put_file(p, "1");
        snprintf(p, sizeof p, "%s/keep", out);
        put_file(p, "keep");
        snprintf(q, sizeof q, "%s/t/a/out", d);
        assert_int_equal(symlink(out, q), 0);
        snprintf(q, sizeof q, "%s/t/keep-link", d);
        assert_int_equal(symlink(p, q), 0);

        /* Not recursive: a non-empty directory stays. */
        snprintf(p, sizeof p, "%s/t", d);
        req = (struct vsock_fs_request) VSOCK_FS_REQUEST_INIT(VSOCK_FS_REMOVE, p);
        fs_err(c, &req, ENOTEMPTY, "remove");
        /* Recursive: gone, and nothing behind the links touched. */
        req.recursive = true;
        fs_ok(c, &req, NULL);
        assert_false(exists(p));
        snprintf(q, sizeof q, "%s/keep", out);
        assert_true(exists(q));
        /* Missing: ENOENT, or success with force. */
        fs_err(c, &req, ENOENT, "remove");
        req.force = true;
        fs_ok(c, &req, NULL);
        /* A symlink to a directory is removed as a link. */
        snprintf(p, sizeof p, "%s/dirlink", d);
        assert_int_equal(symlink(out, p), 0);
        req = (struct vsock_fs_request) VSOCK_FS_REQUEST_INIT(VSOCK_FS_REMOVE, p);
        req.recursive = true;
        fs_ok(c, &req, NULL);
        assert_false(exists(p));
        assert_true(exists(q));
        /* "link/" is the link too: the kernel would follow it, we do not. */
        snprintf(p, sizeof p, "%s/dirlink", d);
        assert_int_equal(symlink(out, p), 0);
        strcat(p, "/");
        req = (struct vsock_fs_request) VSOCK_FS_REQUEST_INIT(VSOCK_FS_REMOVE, p);
        req.recursive = true;
        fs_ok(c, &req, NULL);
        p[strlen(p) - 1] = '\0';
        assert_false(exists(p));
        assert_true(exists(q));
        /* A file, an empty directory. */
        req = (struct vsock_fs_request) VSOCK_FS_REQUEST_INIT(VSOCK_FS_REMOVE, q);
        fs_ok(c, &req, NULL);
        req.path = out;
        fs_ok(c, &req, NULL);
        assert_false(exists(out));
        /* The root, however spelt: refused. Without -r first: should the
         * guard ever be missing, the kernel's EBUSY fails the test before
         * a recursive remove could reach the machine's files. */
        static const char *const roots[] = { "/", "//", "/.", "/tmp/.." };
        for (int recursive = 0; recursive <= 1; recursive++)
                for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
                        req = (struct vsock_fs_request) VSOCK_FS_REQUEST_INIT(VSOCK_FS_REMOVE, roots[i]);
                        req.recursive = recursive;
                        req.force = true;
                        fs_err(c, &req, EPERM, "root");
                }
        vsock_conn_close(c);
        rm_rf(d);
}

/* A mount point inside the tree is not entered (needs root for a tmpfs). */
static void test_fs_remove_one_file_system(void **state) {
        (void) state;
        if (getuid() != 0)
                skip();
        char d[64], p[256], cmd[512];
        make_tmpdir(d, sizeof d);
        snprintf(p, sizeof p, "%s/mnt", d);
        assert_int_equal(mkdir(p, 0755), 0);
        snprintf(cmd, sizeof cmd, "mount -t tmpfs none '%s' 2>/dev/null", p);
        if (system(cmd) != 0) {
                rm_rf(d);
                skip();
        }
        snprintf(p, sizeof p, "%s/mnt/precious", d);
        put_file(p, "x");
        vsock_conn *c = dial();
        struct vsock_fs_request req = VSOCK_FS_REQUEST_INIT(VSOCK_FS_REMOVE, d);
        req.recursive = true;
        fs_err(c, &req, EXDEV, "mnt");
        assert_true(exists(p));
        vsock_conn_close(c);
        snprintf(cmd, sizeof cmd, "umount '%s/mnt'", d);
        assert_int_equal(system(cmd), 0);
        rm_rf(d);
}
/* ---- paged listing ---------------------------------------------------------------- */

struct collected {
        size_t pages, n;
        size_t max_page;
        char **names;
        size_t cap;
        bool saw_link_target;
        bool saw_dot;
};

static int collect_page(void *userdata, const struct vsock_stat *e, size_t n) {
        struct collected *c = userdata;
        c->pages++;
        if (n > c->max_page)
                c->max_page = n;
        for (size_t i = 0; i < n; i++) {
                if (c->n == c->cap) {
                        c->cap = c->cap ? c->cap * 2 : 256;
                        c->names = realloc(c->names, c->cap * sizeof *c->names);
                        assert_non_null(c->names);
                }
                c->names[c->n++] = strdup(e[i].name);
                if (strcmp(e[i].name, "link") == 0 && S_ISLNK(e[i].mode) && e[i].target &&
                    strcmp(e[i].target, "file-0") == 0)
                        c->saw_link_target = true;
                if (strcmp(e[i].name, ".") == 0 || strcmp(e[i].name, "..") == 0)
                        c->saw_dot = true;
        }
        return 0;
}

static void collected_free(struct collected *c) {
        for (size_t i = 0; i < c->n; i++)
                free(c->names[i]);
        free(c->names);
        *c = (struct collected) {};
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *) a, *(char *const *) b); }

static void list_ok(const char *path, int page_size, struct collected *ret) {
        struct vsock_call call = call_bounded();
        *ret = (struct collected) {};
        int r = vsock_list_dir_at(A->exec_addr, path, page_size, collect_page, ret, &call);
        if (r < 0)
                fail_msg("list %s: %s (%s)", path, vsock_strerror(r), call.remote_error);
}

static void test_list_dir_pages(void **state) {
        (void) state;
        char d[64], p[256];
        make_tmpdir(d, sizeof d);
        for (int i = 0; i < 1000; i++) {
                snprintf(p, sizeof p, "%s/file-%d", d, i);
                put_file(p, "");
        }
        snprintf(p, sizeof p, "%s/link", d);
        assert_int_equal(symlink("file-0", p), 0);
        snprintf(p, sizeof p, "%s/sub", d);
        assert_int_equal(mkdir(p, 0700), 0);

        /* 1002 entries, 100 a page: 11 pages, every entry exactly once. */
        struct collected col;
        list_ok(d, 100, &col);
        assert_int_equal(col.n, 1002);
        assert_int_equal(col.pages, 11);
        assert_int_equal(col.max_page, 100);
        assert_true(col.saw_link_target);
        assert_false(col.saw_dot);
        qsort(col.names, col.n, sizeof *col.names, cmp_str);
        for (size_t i = 1; i < col.n; i++)
                assert_true(strcmp(col.names[i - 1], col.names[i]) != 0);
        collected_free(&col);
        /* Default page: all at once. */
        list_ok(d, 0, &col);
        assert_int_equal(col.n, 1002);
        assert_int_equal(col.pages, 1);
        collected_free(&col);
        /* A file lists as itself. */
        snprintf(p, sizeof p, "%s/file-7", d);
        list_ok(p, 0, &col);
        assert_int_equal(col.n, 1);
        assert_string_equal(col.names[0], "file-7");
        collected_free(&col);
        /* An empty directory: one empty page. */
        snprintf(p, sizeof p, "%s/sub", d);
        list_ok(p, 0, &col);
        assert_int_equal(col.n, 0);
        assert_int_equal(col.pages, 1);
        collected_free(&col);
        /* Missing: ENOENT. */
        struct vsock_call call = call_bounded();
        snprintf(p, sizeof p, "%s/none", d);
        int r = vsock_list_dir_at(A->exec_addr, p, 0, collect_page, &col, &call);
        assert_int_equal(r, VSOCK_ERR(VSOCK_E_REMOTE, ENOENT));
        rm_rf(d);
}

/* The _at forms dial, say Hello and close; the connection forms take
 * several requests on one connection (the list's pages, then more). */
static int stop_after_one_page(void *userdata, const struct vsock_stat *e, size_t n) {
        size_t *pages = userdata;
        (*pages)++;
        return -ECANCELED;
}

static void test_lib_at_and_conn_forms(void **state) {
        (void) state;
        char d[64], p[256];
        make_tmpdir(d, sizeof d);
        struct vsock_call call = call_bounded();

        /* vsock_fs_at: mkdir -p with a mode, reported back. */
        snprintf(p, sizeof p, "%s/a/b", d);
        struct vsock_fs_request req = VSOCK_FS_REQUEST_INIT(VSOCK_FS_MKDIR, p);
        req.parents = true;
        req.mode = 0710;
        struct vsock_fs_result res = {};
        int r = vsock_fs_at(A->exec_addr, &req, &call, &res);
        if (r < 0)
                fail_msg("fs_at mkdir: %s (%s)", vsock_strerror(r), call.remote_error);
        assert_true(S_ISDIR(res.stat.mode));
        assert_int_equal(res.stat.mode & 07777, 0710);
        vsock_fs_result_clear(&res);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0710);
        /* ... and its failure: the guest's errno and words. */
        snprintf(p, sizeof p, "%s/none/x", d);
        req = (struct vsock_fs_request) VSOCK_FS_REQUEST_INIT(VSOCK_FS_MKDIR, p);
        r = vsock_fs_at(A->exec_addr, &req, &call, &res);
        assert_int_equal(r, VSOCK_ERR(VSOCK_E_REMOTE, ENOENT));
        assert_non_null(strstr(call.remote_error, p));

        /* vsock_stat_at, following a symlink or not. */
        snprintf(p, sizeof p, "%s/f", d);
        put_file(p, "12345");
        char l[256];
        snprintf(l, sizeof l, "%s/l", d);
        assert_int_equal(symlink("f", l), 0);
        struct vsock_stat vs = {};
        assert_int_equal(vsock_stat_at(A->exec_addr, l, true, &call, &vs), 0);
        assert_true(S_ISREG(vs.mode));
        assert_int_equal(vs.size, 5);
        vsock_stat_clear(&vs);
        assert_int_equal(vsock_stat_at(A->exec_addr, l, false, &call, &vs), 0);
        assert_true(S_ISLNK(vs.mode));
        assert_string_equal(vs.target, "f");
        assert_string_equal(vs.name, "l");
        vsock_stat_clear(&vs);
        snprintf(p, sizeof p, "%s/none", d);
        assert_int_equal(vsock_stat_at(A->exec_addr, p, true, &call, &vs), VSOCK_ERR(VSOCK_E_REMOTE, ENOENT));

        /* vsock_list_dir on one connection: 5 pages of 1 (a, f, l and two
         * more), then a stat on the same connection. */
        for (int i = 0; i < 2; i++) {
                snprintf(p, sizeof p, "%s/g%d", d, i);
                put_file(p, "");
        }
        vsock_conn *c = dial();
        struct collected col = {};
        r = vsock_list_dir(c, d, 1, collect_page, &col, &call);
        if (r < 0)
                fail_msg("list_dir: %s (%s)", vsock_strerror(r), call.remote_error);
        assert_int_equal(col.n, 5);
        assert_int_equal(col.pages, 5);
        collected_free(&col);
        vs = stat_ok(c, d, true);
        assert_true(S_ISDIR(vs.mode));
        vsock_stat_clear(&vs);
        /* A callback that stops: its code, after one page. */
        size_t pages = 0;
        r = vsock_list_dir(c, d, 1, stop_after_one_page, &pages, &call);
        assert_int_equal(r, -ECANCELED);
        assert_int_equal(pages, 1);
        vsock_conn_close(c);
        rm_rf(d);
}

/* One raw ListDir on @c: the reply (or the Error's code). */
static int list_raw(vsock_conn *c, const char *path, const char *cursor, int limit, struct ext_list_reply *ret) {
        struct vsock_call call = call_bounded();
        struct ext_list_dir req = { .path = (char *) path, .cursor = (char *) cursor, .limit = limit };
        int r = client_ext_send_msg(c, VSOCK_FEATURE_LIST, EXT_MSG_LIST_DIR, &ext_list_dir_shape, &req, &call);
        if (r < 0)
                return r;
        return client_ext_reply(c, &call, EXT_MSG_LIST_REPLY, &ext_list_reply_shape, ret);
}

static void test_list_dir_cursor(void **state) {
        (void) state;
        char d[64], p[256];
        make_tmpdir(d, sizeof d);
        for (int i = 0; i < 10; i++) {
                snprintf(p, sizeof p, "%s/f%d", d, i);
                put_file(p, "");
        }
        vsock_conn *c = dial();
        struct ext_list_reply rep;
        assert_int_equal(list_raw(c, d, NULL, 3, &rep), 0);
        assert_int_equal(rep.n_entries, 3);
        assert_non_null(rep.next);
        char *cursor = strdup(rep.next);
        ext_list_reply_clear(&rep);
        /* Page two with the cursor. */
        assert_int_equal(list_raw(c, d, cursor, 3, &rep), 0);
        assert_int_equal(rep.n_entries, 3);
        ext_list_reply_clear(&rep);
        /* Forged or mangled cursors: EINVAL; the limit is capped, not refused;
         * negative limits are. */
        static const char *const bad[] = { "", "x", "1.", "1.1.1", "1.g.1.1.1", "2.1.1.1.1", "1.1.1.1.-1",
                                           "1.1.1.1", "1.1.1.1.1.1", "1.11111111111111111.1.1.1", "1.1.1.1.8000000000000000" };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                assert_int_equal(list_raw(c, d, bad[i], 3, &rep), bad[i][0] ? VSOCK_ERR(VSOCK_E_REMOTE, EINVAL) : 0);
        ext_list_reply_clear(&rep); /* "" is no cursor: a first page */
        assert_int_equal(list_raw(c, d, NULL, -1, &rep), VSOCK_ERR(VSOCK_E_REMOTE, EINVAL));
        assert_int_equal(list_raw(c, d, NULL, 1 << 30, &rep), 0);
        assert_int_equal(rep.n_entries, 10);
        assert_null(rep.next);
        ext_list_reply_clear(&rep);
        /* The directory replaced: the cursor is stale. */
        rm_rf(d);
        assert_int_equal(mkdir(d, 0700), 0);
        assert_int_equal(list_raw(c, d, cursor, 3, &rep), VSOCK_ERR(VSOCK_E_REMOTE, ESTALE));
        /* A cursor for another directory is stale too. */
        assert_int_equal(list_raw(c, "/", cursor, 3, &rep), VSOCK_ERR(VSOCK_E_REMOTE, ESTALE));
        free(cursor);
        vsock_conn_close(c);
        rm_rf(d);
}

/* Long symlink targets make a page hit the byte bound before the count:
 * the page ends early, within limits.list_reply_max, and the next page
 * carries on where it ended. */
static void test_list_dir_byte_bound(void **state) {
        (void) state;
        char d[64], p[256];
        make_tmpdir(d, sizeof d);
        static char target[4001];
        memset(target, 't', sizeof target - 1);
        for (int i = 0; i < 1200; i++) {
                snprintf(p, sizeof p, "%s/l%d", d, i);
                assert_int_equal(symlink(target, p), 0);
        }
        vsock_conn *c = dial();
        struct ext_list_reply rep;
        assert_int_equal(list_raw(c, d, NULL, 0, &rep), 0);
        size_t first = rep.n_entries;
        assert_true(first > 100 && first < 1200);
        assert_non_null(rep.next);
        struct buf b = BUF_INIT(0);
        assert_int_equal(ext_list_reply_encode(&rep, &b), 0);
        assert_true(buf_size(&b) <= 4u << 20);
        buf_free(&b);
        char *cursor = strdup(rep.next);
        ext_list_reply_clear(&rep);
        assert_int_equal(list_raw(c, d, cursor, 0, &rep), 0);
        assert_int_equal(first + rep.n_entries, 1200);
        assert_null(rep.next);
        ext_list_reply_clear(&rep);
        free(cursor);
        vsock_conn_close(c);
        rm_rf(d);
}
/* ---- hostile requests and a stalled file system ------------------------------------ */

/* FsRequest and ListDir payloads that do not decode get Error EPROTO and
 * the connection closes (PROTOCOL.md 2.10); ones that decode but make no
 * sense get EINVAL (or ENOSYS for an unknown op) and the connection goes
 * on serving. */
static void test_fs_hostile(void **state) {
        (void) state;
        struct vsock_call call = call_bounded();
        static const struct {
                uint8_t type;
                const char *json;
                int want;
        } cases[] = {
                { EXT_MSG_FS_REQUEST, "", EPROTO },
                { EXT_MSG_FS_REQUEST, "{", EPROTO },
                { EXT_MSG_FS_REQUEST, "[]", EPROTO },
                { EXT_MSG_FS_REQUEST, "{\"op\":1,\"path\":\"/\"}", EPROTO },
                { EXT_MSG_FS_REQUEST, "{\"op\":\"stat\",\"path\":\"/\\u0000x\"}", EPROTO },
                { EXT_MSG_FS_REQUEST, "{\"op\":\"chmod\",\"path\":\"/\",\"mode\":-1}", EPROTO },
                { EXT_MSG_FS_REQUEST, "{\"op\":\"stat\"}", EINVAL },
                { EXT_MSG_FS_REQUEST, "{\"op\":\"stat\",\"path\":\"\"}", EINVAL },
                { EXT_MSG_FS_REQUEST, "{\"op\":\"chown\",\"path\":\"/nonexistent-x\",\"uid\":4294967295}", EINVAL },
                { EXT_MSG_FS_REQUEST, "{\"op\":\"format\",\"path\":\"/\"}", ENOSYS },
                { EXT_MSG_LIST_DIR, "{\"path\":7}", EPROTO },
                { EXT_MSG_LIST_DIR, "{\"path\":\"/\",\"limit\":99999999999}", EPROTO },
                { EXT_MSG_LIST_DIR, "{\"path\":\"rel\"}", EINVAL },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                vsock_conn *c = dial();
                int r = client_ext_send(c, 0, cases[i].type, cases[i].json, strlen(cases[i].json), &call);
                assert_int_equal(r, 0);
                uint8_t t;
                uint8_t *d = NULL;
                uint32_t n;
                r = client_ext_read(c, &call, &t, &d, &n);
                int want = cases[i].want == ENOSYS   ? VSOCK_ERR(VSOCK_E_UNSUPPORTED, ENOSYS)
                           : cases[i].want == EPROTO ? VSOCK_ERR(VSOCK_E_PROTOCOL, EPROTO)
                                                     : VSOCK_ERR(VSOCK_E_REMOTE, cases[i].want);
                if (r != want)
                        fail_msg("%s: %s (%s)", cases[i].json, r < 0 ? vsock_strerror(r) : "a reply",
                                 call.remote_error);
                free(d);
                if (cases[i].want == EPROTO)
                        expect_closed(c);
                else
                        exec_true_on(c);
                vsock_conn_close(c);
        }
        vsock_conn *c = dial();
        /* A path longer than the kernel takes: ENAMETOOLONG, not a crash. */
        size_t len = 200000;
        char *p = malloc(len + 1);
        assert_non_null(p);
        memset(p, 'a', len);
        p[0] = '/';
        p[len] = '\0';
        struct vsock_fs_request req = VSOCK_FS_REQUEST_INIT(VSOCK_FS_MKDIR, p);
        req.parents = true;
        fs_err(c, &req, ENAMETOOLONG, NULL);
        free(p);
        exec_true_on(c);
        vsock_conn_close(c);
}

/* The stalled file system and its agent, released in the teardown even
 * when the test fails half-way. */
static struct stall_fs *F;
static struct agent *B;

static int stalled_teardown(void **state) {
        stall_fs_release(TAKE_PTR(F));
        int r = 0;
        if (B)
                r = agent_stop(TAKE_PTR(B), BOUND_MS, NULL);
        return r < 0 ? r : test_teardown(state);
}

/* A stat in a file system that never answers is given up at --io-timeout
 * with Error ETIMEDOUT; meanwhile the agent answers others at once. */
static void test_fs_stalled(void **state) {
        (void) state;
        char why[256];
        F = stall_fs_start(why, sizeof why);
        if (!F) {
                print_message("skip: no stalled file system here: %s\n", why);
                skip();
        }
        static const char *const opts[] = { "--io-timeout", "2", NULL };
        B = agent_start(opts, 0);
        assert_non_null(B);
        char p[256];
        stall_fs_path(F, "stall-x", p, sizeof p);
        vsock_conn *c = NULL;
        assert_int_equal(agent_dial(B, BOUND_MS, &c), 0);
        struct vsock_call call = call_bounded();
        /* Sent, not awaited yet. */
        struct ext_fs_request wire = { .op = "stat", .path = p, .mode = EXT_UNSET_MODE, .uid = EXT_UNSET_ID,
                                       .gid = EXT_UNSET_ID, .atime_ns = EXT_UNSET_TIME, .mtime_ns = EXT_UNSET_TIME };
        assert_int_equal(client_ext_send_msg(c, VSOCK_FEATURE_FS, EXT_MSG_FS_REQUEST, &ext_fs_request_shape, &wire,
                                             &call),
                         0);
        /* The loop is free: a Hello on another connection is answered. */
        struct vsock_caps caps = VSOCK_CAPS_INIT;
        int64_t t0 = vsock_now_ns();
        assert_int_equal(vsock_hello_at(B->exec_addr, &call, &caps), 0);
        assert_true(vsock_now_ns() - t0 < INT64_C(1000) * 1000000);
        struct ext_fs_reply rep;
        int r = client_ext_reply(c, &call, EXT_MSG_FS_REPLY, &ext_fs_reply_shape, &rep);
        if (r != VSOCK_ERR(VSOCK_E_REMOTE, ETIMEDOUT))
                fail_msg("%s (%s) instead of ETIMEDOUT", vsock_strerror(r), call.remote_error);
        assert_non_null(strstr(call.remote_error, "does not answer"));
        /* Still serving on that connection too. */
        exec_true_on(c);
        vsock_conn_close(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_hello_reply, test_teardown),
                cmocka_unit_test_teardown(test_hello_order, test_teardown),
                cmocka_unit_test_teardown(test_hello_pipelined, test_teardown),
                cmocka_unit_test_teardown(test_hello_hostile, test_teardown),
                cmocka_unit_test_teardown(test_lib_hello, test_teardown),
                cmocka_unit_test_teardown(test_lib_pipelined_unsupported, test_teardown),
                cmocka_unit_test_teardown(test_fs_mkdir_stat_chmod, test_teardown),
                cmocka_unit_test_teardown(test_fs_links_owner_rename, test_teardown),
                cmocka_unit_test_teardown(test_fs_remove, test_teardown),
                cmocka_unit_test_teardown(test_fs_remove_one_file_system, test_teardown),
                cmocka_unit_test_teardown(test_list_dir_pages, test_teardown),
                cmocka_unit_test_teardown(test_list_dir_cursor, test_teardown),
                cmocka_unit_test_teardown(test_list_dir_byte_bound, test_teardown),
                cmocka_unit_test_teardown(test_lib_at_and_conn_forms, test_teardown),
                cmocka_unit_test_teardown(test_fs_hostile, test_teardown),
                cmocka_unit_test_teardown(test_fs_stalled, stalled_teardown),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
