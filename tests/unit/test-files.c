#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/files/files.h"
#include "common/buf.h"
#include "lib/msg-internal.h"

static char dir[] = "/tmp/test-files-XXXXXX";

static int setup(void **state) {
        /* The agent's usual umask; modes must come out exact regardless. */
        umask(022);
        return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        return system(cmd) == 0 ? 0 : -1;
}

static char *path_in(const char *name) {
        char *p;
        assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
        return p;
}

/* Serves one raw request; returns the raw reply (NUL-terminated). The
 * request goes in an exact-size copy, as the agent's frame buffer: it is
 * consumed (decoded in place), and ASan sees any overrun. */
static char *serve_raw(uint8_t type, const void *payload, size_t len, size_t *ret_len) {
        struct buf out = BUF_INIT(64u << 20);
        void *copy = malloc(len ? len : 1);
        assert_non_null(copy);
        memcpy(copy, payload, len);
        assert_int_equal(files_serve(type, copy, len, &out), 0);
        free(copy);
        uint8_t *data;
        size_t n;
        assert_int_equal(buf_steal(&out, &data, &n), 0);
        if (ret_len)
                *ret_len = n;
        return (char *) data;
}

static void serve(uint8_t type, const void *payload, size_t len, struct vsock_file_response *resp) {
        size_t n;
        char *raw = serve_raw(type, payload, len, &n);
        const char *why = NULL;
        int r = vsock_file_response_decode(raw, n, resp, &why);
        if (r < 0)
                fail_msg("reply does not decode (%s): %.200s", why ? why : "?", raw);
        free(raw);
}

static void do_write(const char *path, const void *data, size_t len, uint32_t mode, struct vsock_file_response *resp) {
        struct vsock_write_file_request req = {
                .path = (char *) path,
                .content = { .data = (uint8_t *) data, .len = len, .present = true },
                .mode = mode,
        };
        uint8_t *payload;
        size_t n;
        assert_int_equal(vsock_write_file_request_encode(&req, &payload, &n), 0);
        serve(VSOCK_MSG_WRITE_FILE, payload, n, resp);
        free(payload);
}

static void write_ok(const char *path, const void *data, size_t len, uint32_t mode) {
        struct vsock_file_response resp = {};
        do_write(path, data, len, mode, &resp);
        if (resp.error)
                fail_msg("write %s: %s", path, resp.error);
        assert_false(resp.content.present);
        assert_int_equal(resp.n_files, 0);
        vsock_file_response_clear(&resp);
}

static void path_req(uint8_t type, const char *path, struct vsock_file_response *resp) {
        struct vsock_path_request req = { .path = (char *) path };
        uint8_t *payload;
        size_t n;
        assert_int_equal(vsock_path_request_encode(&req, &payload, &n), 0);
        serve(type, payload, n, resp);
        free(payload);
}

static void expect_error(const struct vsock_file_response *resp, const char *want) {
        if (!resp->error || strcmp(resp->error, want) != 0)
                fail_msg("error \"%s\", want \"%s\"", resp->error ? resp->error : "(none)", want);
        assert_false(resp->content.present);
        assert_int_equal(resp->n_files, 0);
}

static void read_back(const char *path, const void *want, size_t len) {
        struct vsock_file_response resp = {};
        path_req(VSOCK_MSG_READ_FILE, path, &resp);
        if (resp.error)
                fail_msg("read %s: %s", path, resp.error);
        assert_int_equal(resp.content.len, len);
        if (len > 0)
                assert_memory_equal(resp.content.data, want, len);
        vsock_file_response_clear(&resp);
}

static void disk_equal(const char *path, const void *want, size_t len) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        assert_int_equal((size_t) st.st_size, len);
        uint8_t *buf = malloc(len + 1);
        assert_non_null(buf);
        size_t done = 0;
        while (done < len) {
                ssize_t k = read(fd, buf + done, len - done);
                assert_true(k > 0);
                done += (size_t) k;
        }
        assert_memory_equal(buf, want, len);
        free(buf);
        close(fd);
}

/* No ".vsock-agent-write-*" temporary file may survive, success or not. */
static void assert_no_temp(const char *d) {
        DIR *dd = opendir(d);
        assert_non_null(dd);
        struct dirent *de;
        while ((de = readdir(dd)))
                if (strncmp(de->d_name, ".vsock-agent-write-", 19) == 0)
                        fail_msg("temporary file left behind: %s/%s", d, de->d_name);
        closedir(dd);
}

static void test_write_read_sizes(void **state) {
        char *p0 = path_in("empty"), *p1 = path_in("one"), *pb = path_in("big");

        write_ok(p0, "", 0, 0644);
        disk_equal(p0, "", 0);
        read_back(p0, "", 0);

        write_ok(p1, "\0", 1, 0644);
        disk_equal(p1, "\0", 1);
        read_back(p1, "\0", 1);

        size_t n = 15u << 20;
        uint8_t *big = malloc(n);
        assert_non_null(big);
        for (size_t off = 0; off < n;) {
                ssize_t k = getrandom(big + off, n - off, 0);
                assert_true(k > 0);
                off += (size_t) k;
        }
        for (size_t i = 0; i < n; i += 4097)
                big[i] = 0; /* NULs for sure */
        write_ok(pb, big, n, 0644);
        disk_equal(pb, big, n);
        read_back(pb, big, n);

        /* Overwrite with something shorter: the file is replaced. */
        write_ok(pb, "short", 5, 0644);
        disk_equal(pb, "short", 5);
        free(big);
        assert_no_temp(dir);
        free(p0);
        free(p1);
        free(pb);
}

/* ReadFile's reply is encoded as the file is read: byte for byte what the
 * encoder makes of the whole file, at sizes around the pieces (3 * 64 KiB,
 * encoded from half of one on) and the base64 quanta. */
static void test_read_reply_bytes(void **state) {
        static const size_t sizes[] = { 0, 1, 2, 3, 4, 98303, 98304, 98305, 98306, 196607, 196608, 196609,
                                        393216, 589825, (1u << 20) + 7 };
        char *p = path_in("reply-bytes");
        uint8_t *data = malloc((1u << 20) + 7);
        assert_non_null(data);
        for (size_t i = 0; i < (1u << 20) + 7; i++)
                data[i] = (uint8_t) (i * 2654435761u >> 11);
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
                FILE *f = fopen(p, "we");
                assert_non_null(f);
                assert_int_equal(fwrite(data, 1, sizes[k], f), sizes[k]);
                fclose(f);
                struct vsock_path_request req = { .path = p };
                uint8_t *payload;
                size_t n, got_len;
                assert_int_equal(vsock_path_request_encode(&req, &payload, &n), 0);
                char *got = serve_raw(VSOCK_MSG_READ_FILE, payload, n, &got_len);
                free(payload);
                struct vsock_file_response want_resp = { .content = { data, sizes[k], true } };
                uint8_t *want;
                size_t want_len;
                assert_int_equal(vsock_file_response_encode(&want_resp, &want, &want_len), 0);
                if (got_len != want_len || memcmp(got, want, want_len) != 0)
                        fail_msg("%zu bytes: reply differs (%zu vs %zu bytes)", sizes[k], got_len, want_len);
                free(want);
                free(got);
        }
        free(data);
        free(p);
}

static void test_write_reply_is_empty_object(void **state) {
        char *p = path_in("reply");
        struct vsock_write_file_request req = { .path = p, .content = { (uint8_t *) "x", 1, true }, .mode = 0600 };
        uint8_t *payload;
        size_t n;
        assert_int_equal(vsock_write_file_request_encode(&req, &payload, &n), 0);
        char *raw = serve_raw(VSOCK_MSG_WRITE_FILE, payload, n, NULL);
        assert_string_equal(raw, "{}");
        free(raw);
        free(payload);
        free(p);
}

static void check_mode(const char *name, uint32_t go_mode, mode_t want) {
        char *p = path_in(name);
        write_ok(p, "data", 4, go_mode);
        struct stat st;
        assert_int_equal(lstat(p, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        if ((st.st_mode & 07777) != want)
                fail_msg("%s: mode %o, want %o", name, st.st_mode & 07777, want);
        free(p);
}

static void test_modes(void **state) {
        check_mode("m600", 0600, 0600);
        check_mode("m755", 0755, 0755);
        check_mode("m777", 0777, 0777); /* the umask (022) does not apply */
        check_mode("m000", VSOCK_GO_MODE_SETUID, 04000);
        check_mode("mdefault", 0, 0644);
        check_mode("msuid", VSOCK_GO_MODE_SETUID | 0755, 04755);
        check_mode("msgid", VSOCK_GO_MODE_SETGID | 0750, 02750);
        check_mode("msticky", VSOCK_GO_MODE_STICKY | 0777, 01777);
        /* Rewriting applies the new mode exactly, also removing bits. */
        check_mode("msuid", 0640, 0640);
        /* Without a mode, a file that exists keeps its own. */
        check_mode("mkept", 0750, 0750);
        check_mode("mkept", 0, 0750);
        check_mode("mkept", VSOCK_GO_MODE_SETUID | 0750, 04750);
        check_mode("mkept", 0, 04750);
}

static void test_nested_dirs(void **state) {
        char *p = path_in("n1/n2/n3/file");
        write_ok(p, "nested", 6, 0600);
        disk_equal(p, "nested", 6);
        const char *dirs[] = { "n1", "n1/n2", "n1/n2/n3" };
        for (size_t i = 0; i < 3; i++) {
                char *d = path_in(dirs[i]);
                struct stat st;
                assert_int_equal(stat(d, &st), 0);
                assert_true(S_ISDIR(st.st_mode));
                assert_int_equal(st.st_mode & 07777, 0755);
                free(d);
        }
        free(p);
        /* Through a doubled slash too. */
        char *q;
        assert_true(asprintf(&q, "%s//n1//x/y", dir) > 0);
        write_ok(q, "y", 1, 0);
        disk_equal(q, "y", 1);
        free(q);
}

static void test_write_errors(void **state) {
        struct vsock_file_response resp = {};

        do_write("relative/file", "x", 1, 0644, &resp);
        expect_error(&resp, "write_file: path must be absolute: \"relative/file\"");
        vsock_file_response_clear(&resp);

        do_write("", "x", 1, 0644, &resp);
        expect_error(&resp, "write_file: path must be absolute: \"\"");
        vsock_file_response_clear(&resp);

        /* A parent that is a regular file. */
        char *f = path_in("plain"), *under = path_in("plain/sub/file"), *want;
        write_ok(f, "p", 1, 0644);
        do_write(under, "x", 1, 0644, &resp);
        assert_true(asprintf(&want, "mkdir %s/plain: not a directory", dir) > 0);
        expect_error(&resp, want);
        vsock_file_response_clear(&resp);
        free(want);

        /* The target is a directory: nothing changes, no temp file. */
        char *d = path_in("adir");
        assert_int_equal(mkdir(d, 0755), 0);
        do_write(d, "x", 1, 0644, &resp);
        assert_true(asprintf(&want, "open %s: is a directory", d) > 0);
        expect_error(&resp, want);
        vsock_file_response_clear(&resp);
        free(want);
        assert_no_temp(dir);

        /* Trailing slash. */
        char *ds;
        assert_true(asprintf(&ds, "%s/", d) > 0);
        do_write(ds, "x", 1, 0644, &resp);
        assert_true(asprintf(&want, "open %s: is a directory", ds) > 0);
        expect_error(&resp, want);
        vsock_file_response_clear(&resp);
        free(want);
        free(ds);
        free(d);
        free(f);
        free(under);
}

static void test_write_symlink_replaces_link(void **state) {
        char *target = path_in("link-target"), *link = path_in("link");
        write_ok(target, "target", 6, 0644);
        assert_int_equal(symlink(target, link), 0);
        write_ok(link, "new", 3, 0644);
        struct stat st;
        assert_int_equal(lstat(link, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        disk_equal(link, "new", 3);
        disk_equal(target, "target", 6);
        free(target);
        free(link);
}

static void test_read_errors(void **state) {
        struct vsock_file_response resp = {};
        char *want;

        path_req(VSOCK_MSG_READ_FILE, dir, &resp);
        assert_true(asprintf(&want, "read %s: is a directory", dir) > 0);
        expect_error(&resp, want);
        vsock_file_response_clear(&resp);
        free(want);

        char *missing = path_in("nope");
        path_req(VSOCK_MSG_READ_FILE, missing, &resp);
        assert_true(asprintf(&want, "open %s: no such file or directory", missing) > 0);
        expect_error(&resp, want);
        vsock_file_response_clear(&resp);
        free(want);
        free(missing);

        path_req(VSOCK_MSG_READ_FILE, "/dev/null", &resp);
        expect_error(&resp, "read_file /dev/null: not a regular file");
        vsock_file_response_clear(&resp);

        /* A FIFO without writer: refused, not waited on. */
        char *fifo = path_in("rfifo");
        assert_int_equal(mkfifo(fifo, 0644), 0);
        path_req(VSOCK_MSG_READ_FILE, fifo, &resp);
        assert_true(asprintf(&want, "read_file %s: not a regular file", fifo) > 0);
        expect_error(&resp, want);
        vsock_file_response_clear(&resp);
        free(want);
        free(fifo);

        /* The size limit: exactly 16 MiB is fine, one byte more is not. */
        char *big = path_in("big16");
        int fd = open(big, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, FILES_READ_MAX), 0);
        path_req(VSOCK_MSG_READ_FILE, big, &resp);
        assert_null(resp.error);
        assert_int_equal(resp.content.len, FILES_READ_MAX);
        vsock_file_response_clear(&resp);
        assert_int_equal(ftruncate(fd, FILES_READ_MAX + 1), 0);
        close(fd);
        path_req(VSOCK_MSG_READ_FILE, big, &resp);
        assert_true(asprintf(&want, "read_file exceeds 16777216 bytes: %s", big) > 0);
        expect_error(&resp, want);
        vsock_file_response_clear(&resp);
        free(want);
        unlink(big);
        free(big);

        /* The exact raw reply, as the reference agent sends it. */
        static const char nx[] = "{\"path\":\"/nonexistent-vsock-test\"}";
        char *raw = serve_raw(VSOCK_MSG_READ_FILE, nx, sizeof(nx) - 1, NULL);
        assert_string_equal(raw, "{\"error\":\"open /nonexistent-vsock-test: no such file or directory\"}");
        free(raw);
}

static void test_read_follows_symlink_and_proc(void **state) {
        char *target = path_in("rt"), *link = path_in("rl");
        write_ok(target, "via link", 8, 0644);
        assert_int_equal(symlink(target, link), 0);
        read_back(link, "via link", 8);
        free(target);
        free(link);

        /* /proc files report size 0 but have content. */
        struct vsock_file_response resp = {};
        path_req(VSOCK_MSG_READ_FILE, "/proc/self/status", &resp);
        assert_null(resp.error);
        assert_true(resp.content.len > 20);
        assert_memory_equal(resp.content.data, "Name:", 5);
        vsock_file_response_clear(&resp);
}

static void test_list(void **state) {
        char *d = path_in("ls");
        assert_int_equal(mkdir(d, 0755), 0);
        char *sub = path_in("ls/sub"), *file = path_in("ls/file"), *link = path_in("ls/link"),
             *fifo = path_in("ls/pipe"), *upper = path_in("ls/Zeta");
        assert_int_equal(mkdir(sub, 0750), 0);
        write_ok(file, "12345", 5, 0640);
        write_ok(upper, "", 0, 0600);
        assert_int_equal(symlink("file", link), 0);
        assert_int_equal(mkfifo(fifo, 0644), 0);

        struct vsock_file_response resp = {};
        path_req(VSOCK_MSG_LIST_FILES, d, &resp);
        assert_null(resp.error);
        assert_false(resp.content.present);
        assert_int_equal(resp.n_files, 5);
        /* Byte order: upper case first. */
        const char *names[] = { "Zeta", "file", "link", "pipe", "sub" };
        for (size_t i = 0; i < 5; i++)
                assert_string_equal(resp.files[i].name, names[i]);

        assert_int_equal(resp.files[0].mode, 0600);
        assert_int_equal(resp.files[0].size, 0);
        assert_false(resp.files[0].is_dir);
        assert_int_equal(resp.files[1].mode, 0640);
        assert_int_equal(resp.files[1].size, 5);
        assert_int_equal(resp.files[2].mode, VSOCK_GO_MODE_SYMLINK | 0777); /* lstat, not the target */
        assert_int_equal(resp.files[2].size, 4);
        assert_false(resp.files[2].is_dir);
        assert_int_equal(resp.files[3].mode, VSOCK_GO_MODE_NAMED_PIPE | 0644);
        assert_int_equal(resp.files[4].mode, VSOCK_GO_MODE_DIR | 0750);
        assert_true(resp.files[4].is_dir);
        vsock_file_response_clear(&resp);

        /* A symlink to a directory as the path itself is followed. */
        char *dlink = path_in("ls-link");
        assert_int_equal(symlink(d, dlink), 0);
        path_req(VSOCK_MSG_LIST_FILES, dlink, &resp);
        assert_null(resp.error);
        assert_int_equal(resp.n_files, 5);
        vsock_file_response_clear(&resp);

        free(dlink);
        free(d);
        free(sub);
        free(file);
        free(link);
        free(fifo);
        free(upper);
}

static void test_list_empty_and_errors(void **state) {
        char *d = path_in("emptydir");
        assert_int_equal(mkdir(d, 0755), 0);
        struct vsock_path_request req = { .path = d };
        uint8_t *payload;
        size_t n;
        assert_int_equal(vsock_path_request_encode(&req, &payload, &n), 0);
        char *raw = serve_raw(VSOCK_MSG_LIST_FILES, payload, n, NULL);
        assert_string_equal(raw, "{}");
        free(raw);
        free(payload);

        struct vsock_file_response resp = {};
        char *file = path_in("notadir"), *want;
        write_ok(file, "x", 1, 0644);
        path_req(VSOCK_MSG_LIST_FILES, file, &resp);
        assert_true(asprintf(&want, "readdirent %s: not a directory", file) > 0);
        expect_error(&resp, want);
        vsock_file_response_clear(&resp);
        free(want);

        char *missing = path_in("missingdir");
        path_req(VSOCK_MSG_LIST_FILES, missing, &resp);
        assert_true(asprintf(&want, "open %s: no such file or directory", missing) > 0);
        expect_error(&resp, want);
        vsock_file_response_clear(&resp);
        free(want);

        char *under = path_in("notadir/x");
        path_req(VSOCK_MSG_LIST_FILES, under, &resp);
        assert_true(asprintf(&want, "open %s: not a directory", under) > 0);
        expect_error(&resp, want);
        vsock_file_response_clear(&resp);
        free(want);

        free(under);
        free(missing);
        free(file);
        free(d);
}

static void expect_some_error(uint8_t type, const char *payload) {
        struct vsock_file_response resp = {};
        serve(type, payload, strlen(payload), &resp);
        if (!resp.error || !*resp.error)
                fail_msg("type %u payload %s: no error", type, payload);
        assert_false(resp.content.present);
        vsock_file_response_clear(&resp);
}

static void test_malformed(void **state) {
        const char *bad[] = {
                "", "not json", "[]", "{\"path\": 5}", "{\"path\": \"/x\", \"content\": \"!!!\"}",
                "{\"path\": \"/x\", \"mode\": \"644\"}", "{\"path\": \"/x\\u0000y\"}", "{\"path\":",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                expect_some_error(VSOCK_MSG_WRITE_FILE, bad[i]);
                if (i != 4 && i != 5)
                        expect_some_error(VSOCK_MSG_READ_FILE, bad[i]);
                if (i != 4 && i != 5)
                        expect_some_error(VSOCK_MSG_LIST_FILES, bad[i]);
        }
        /* Binary garbage. */
        uint8_t junk[64];
        for (size_t i = 0; i < sizeof(junk); i++)
                junk[i] = (uint8_t) (i * 37 + 1);
        struct vsock_file_response resp = {};
        serve(VSOCK_MSG_READ_FILE, junk, sizeof(junk), &resp);
        assert_non_null(resp.error);
        vsock_file_response_clear(&resp);
        /* Not a file operation. */
        expect_some_error(VSOCK_MSG_EXEC, "{}");
}

static void test_output_cap(void **state) {
        /* The reply does not fit the caller's cap: an error, nothing else. */
        char *p = path_in("capped");
        write_ok(p, "0123456789", 10, 0644);
        struct vsock_path_request req = { .path = p };
        uint8_t *payload;
        size_t n;
        assert_int_equal(vsock_path_request_encode(&req, &payload, &n), 0);
        struct buf out = BUF_INIT(8);
        assert_int_equal(files_serve(VSOCK_MSG_READ_FILE, payload, n, &out), -ENOBUFS);
        buf_free(&out);
        free(payload);
        free(p);

        /* A listing too big for the cap fails early, whole. */
        char *d = path_in("many");
        assert_int_equal(mkdir(d, 0755), 0);
        for (int i = 0; i < 100; i++) {
                char *f;
                assert_true(asprintf(&f, "%s/entry-%03d", d, i) > 0);
                int fd = open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                assert_true(fd >= 0);
                close(fd);
                free(f);
        }
        req.path = d;
        assert_int_equal(vsock_path_request_encode(&req, &payload, &n), 0);
        out = BUF_INIT(1000);
        assert_int_equal(files_serve(VSOCK_MSG_LIST_FILES, payload, n, &out), 0);
        struct vsock_file_response resp = {};
        assert_int_equal(vsock_file_response_decode(buf_head(&out), buf_size(&out), &resp, NULL), 0);
        char *want;
        assert_true(asprintf(&want,
                             "list_files %s: too many entries: the listing exceeds the reply limit of 1000 bytes",
                             d) > 0);
        expect_error(&resp, want);
        free(want);
        vsock_file_response_clear(&resp);
        buf_free(&out);
        out = BUF_INIT(1u << 20);
        assert_int_equal(files_serve(VSOCK_MSG_LIST_FILES, payload, n, &out), 0);
        assert_true(buf_size(&out) > 100 * 45);
        buf_free(&out);
        free(payload);
        free(d);
}

/* Whatever is in the way that is not a regular file (or a link) stays as
 * it is: the write is refused. */
static void test_special_targets(void **state) {
        char *fifo = path_in("fifo"), *sock = path_in("sock"), *dev = path_in("null-device");
        assert_int_equal(mkfifo(fifo, 0600), 0);
        assert_int_equal(mknod(sock, S_IFSOCK | 0600, 0), 0);
        bool have_dev = mknod(dev, S_IFCHR | 0666, makedev(1, 3)) == 0; /* root only */
        struct {
                const char *path, *kind;
                mode_t type;
        } cases[] = {
                { fifo, "named pipe", S_IFIFO },
                { sock, "socket", S_IFSOCK },
                { dev, "character device", S_IFCHR },
        };
        for (size_t i = 0; i < 3; i++) {
                if (cases[i].type == S_IFCHR && !have_dev) {
                        print_message("no character device case: mknod needs root\n");
                        continue;
                }
                struct vsock_file_response resp = {};
                do_write(cases[i].path, "x", 1, 0644, &resp);
                char *want;
                assert_true(asprintf(&want, "open %s: not a regular file (%s): not replaced", cases[i].path,
                                     cases[i].kind) > 0);
                expect_error(&resp, want);
                free(want);
                vsock_file_response_clear(&resp);
                struct stat st;
                assert_int_equal(lstat(cases[i].path, &st), 0);
                assert_int_equal(st.st_mode & S_IFMT, cases[i].type);
        }
        assert_no_temp(dir);
        free(fifo);
        free(sock);
        free(dev);
}

/* A kernel file is written in place (no temporary file can exist there):
 * this process's own name. */
static void test_kernel_file_in_place(void **state) {
        char comm[32] = "", now[32] = "";
        int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_true(read(fd, comm, sizeof comm - 1) > 0);
        close(fd);
        write_ok("/proc/self/comm", "files-in-place", 14, 0644);
        fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
        assert_true(read(fd, now, sizeof now - 1) > 0);
        close(fd);
        assert_string_equal(now, "files-in-place\n");
        write_ok("/proc/self/comm", comm, strlen(comm) - 1, 0); /* put it back */
        /* And the kernel's refusal is the error. */
        struct vsock_file_response resp = {};
        do_write("/proc/self/oom_score_adj", "not a number", 12, 0, &resp);
        expect_error(&resp, "write /proc/self/oom_score_adj: invalid argument");
        vsock_file_response_clear(&resp);
}

/* A write that fails leaves none of the directories it made, however
 * many. */
static void test_deep_dirs_removed(void **state) {
        struct buf p = BUF_INIT(0);
        assert_int_equal(buf_append_str(&p, dir), 0);
        assert_int_equal(buf_append_str(&p, "/deep"), 0);
        for (int i = 0; i < 100; i++)
                assert_int_equal(buf_append_str(&p, "/d"), 0);
        assert_int_equal(buf_append_str(&p, "/file"), 0);
        assert_int_equal(buf_append_byte(&p, 0), 0);
        struct files_writer w;
        files_writer_init(&w);
        char *err = NULL;
        assert_int_equal(files_write_begin(&w, (const char *) buf_head(&p), &err), 0);
        assert_null(err);
        assert_int_equal(files_write_data(&w, "x", 1, &err), 0);
        files_write_abort(&w);
        char *top = path_in("deep");
        assert_int_equal(access(top, F_OK), -1);
        assert_int_equal(errno, ENOENT);
        free(top);

        /* One that gained an entry meanwhile stays, with those around it. */
        files_writer_init(&w);
        assert_int_equal(files_write_begin(&w, (const char *) buf_head(&p), &err), 0);
        char *keep = path_in("deep/d/d/keep");
        int fd = open(keep, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        close(fd);
        files_write_abort(&w);
        assert_int_equal(access(keep, F_OK), 0);
        char *inner = path_in("deep/d/d/d");
        assert_int_equal(access(inner, F_OK), -1);
        free(inner);
        free(keep);
        buf_free(&p);
}

static void test_full_disk(void **state) {
        if (geteuid() != 0)
                skip();
        /* A private mount namespace: the tmpfs disappears with the test
         * process whatever happens. */
        if (unshare(CLONE_NEWNS) < 0)
                skip();
        assert_int_equal(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
        char *m = path_in("small");
        assert_int_equal(mkdir(m, 0755), 0);
        assert_int_equal(mount("tmpfs", m, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755"), 0);

        char *old;
        assert_true(asprintf(&old, "%s/config", m) > 0);
        write_ok(old, "old content", 11, 0644);

        size_t n = 1u << 20;
        uint8_t *big = malloc(n);
        assert_non_null(big);
        memset(big, 'z', n);
        struct vsock_file_response resp = {};
        do_write(old, big, n, 0644, &resp);
        assert_non_null(resp.error);
        if (!strstr(resp.error, "no space left on device"))
                fail_msg("error: %s", resp.error);
        vsock_file_response_clear(&resp);
        disk_equal(old, "old content", 11);
        assert_no_temp(m);

        /* Same for a new file. */
        char *fresh;
        assert_true(asprintf(&fresh, "%s/fresh", m) > 0);
        do_write(fresh, big, n, 0644, &resp);
        assert_non_null(resp.error);
        assert_non_null(strstr(resp.error, "no space left on device"));
        vsock_file_response_clear(&resp);
        assert_int_equal(access(fresh, F_OK), -1);
        assert_no_temp(m);

        /* And in directories made for it: they go too. */
        char *deep, *top;
        assert_true(asprintf(&top, "%s/made", m) > 0);
        assert_true(asprintf(&deep, "%s/for/it/file", top) > 0);
        do_write(deep, big, n, 0644, &resp);
        assert_non_null(resp.error);
        assert_non_null(strstr(resp.error, "no space left on device"));
        vsock_file_response_clear(&resp);
        assert_int_equal(access(top, F_OK), -1);
        free(deep);
        free(top);

        free(big);
        free(fresh);
        free(old);
        assert_int_equal(umount2(m, MNT_DETACH), 0);
        free(m);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_write_read_sizes),
                cmocka_unit_test(test_read_reply_bytes),
                cmocka_unit_test(test_write_reply_is_empty_object),
                cmocka_unit_test(test_modes),
                cmocka_unit_test(test_nested_dirs),
                cmocka_unit_test(test_write_errors),
                cmocka_unit_test(test_write_symlink_replaces_link),
                cmocka_unit_test(test_read_errors),
                cmocka_unit_test(test_read_follows_symlink_and_proc),
                cmocka_unit_test(test_list),
                cmocka_unit_test(test_list_empty_and_errors),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_output_cap),
                cmocka_unit_test(test_special_targets),
                cmocka_unit_test(test_kernel_file_in_place),
                cmocka_unit_test(test_deep_dirs_removed),
                cmocka_unit_test(test_full_disk),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
