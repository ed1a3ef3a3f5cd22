/* Streaming files (PROTOCOL.md 2.5) against the real agent ($AGENT) on
 * unix sockets: FileGet and FilePut through the library, resume after a
 * broken connection, atomic replace, checksum mismatch, errors, hostile
 * streams (credit, oversize Data, bad Done), and the agent's memory during
 * a large transfer. After every test the agent has its baseline fds. */
#include <dirent.h>
#include <limits.h>
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
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cmocka.h>

#include <vsock/vsock.h>

#include "agent-harness.h"
#include "common/checksum.h"
#include "common/sha256.h"
#include "lib/ext_msg.h"

#define BOUND_MS 60000

/* An ASan agent keeps freed memory in quarantine and shadow pages: its RSS
 * says nothing about the transfer's buffers, so the bound is only checked
 * in normal builds. */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_BOUND_KIB LONG_MAX
#else
#define RSS_BOUND_KIB 2048
#endif

static struct agent *A;
static char Dir[64]; /* a scratch directory per run */

static int group_setup(void **state) {
        (void) state;
        signal(SIGPIPE, SIG_IGN);
        umask(022);
        snprintf(Dir, sizeof Dir, "/tmp/test-xfer-%d", (int) getpid());
        if (mkdir(Dir, 0755) < 0)
                return -1;
        A = agent_start(NULL, 0);
        return A ? 0 : -1;
}

static int group_teardown(void **state) {
        (void) state;
        int r = agent_stop(A, BOUND_MS, NULL);
        char cmd[200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", Dir);
        if (system(cmd) != 0)
                r = -1;
        return r;
}

static int test_teardown(void **state) {
        (void) state;
        int fds, kids;
        if (!agent_wait_clean(A, 10000, &fds, &kids))
                fail_msg("agent: %d fds (baseline %d), %d children", fds, A->baseline_fds, kids);
        return 0;
}

/* ---- helpers ------------------------------------------------------------------ */

static const char *path_in(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static const char *path_in(char *buf, size_t size, const char *fmt, ...) {
        char name[80];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(name, sizeof name, fmt, ap);
        va_end(ap);
        snprintf(buf, size, "%s/%s", Dir, name);
        return buf;
}

/* A connection ready for extension requests. */
static vsock_conn *xdial(void) {
        vsock_conn *c = NULL;
        assert_int_equal(agent_dial(A, BOUND_MS, &c), 0);
        struct vsock_caps caps = VSOCK_CAPS_INIT;
        assert_int_equal(vsock_hello(c, NULL, &caps), 0);
        assert_true(caps.features & VSOCK_FEATURE_FILE_GET);
        assert_true(caps.features & VSOCK_FEATURE_FILE_PUT);
        assert_true(caps.features & VSOCK_FEATURE_CHECKSUM_CRC32C);
        assert_int_equal(caps.limits.data_max, 256 * 1024);
        return c;
}

/* Deterministic bytes: file @seed's byte i. */
static void fill(uint8_t *p, size_t n, uint64_t start, unsigned seed) {
        for (size_t i = 0; i < n; i++) {
                uint64_t x = (start + i) * 2654435761u + seed;
                p[i] = (uint8_t) (x >> 13);
        }
}

static void make_file(const char *path, size_t size, unsigned seed) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        uint8_t *p = malloc(size ? size : 1);
        assert_non_null(p);
        fill(p, size, 0, seed);
        assert_int_equal(write(fd, p, size), (ssize_t) size);
        free(p);
        close(fd);
}

static void file_sha(int fd, char hex[SHA256_HEX_SIZE]) {
        struct sha256 s;
        sha256_init(&s);
        uint8_t buf[65536];
        for (off_t off = 0;;) {
                ssize_t k = pread(fd, buf, sizeof buf, off);
                assert_true(k >= 0);
                if (k == 0)
                        break;
                sha256_update(&s, buf, (size_t) k);
                off += k;
        }
        uint8_t d[SHA256_DIGEST_SIZE];
        sha256_final(&s, d);
        sha256_to_hex(d, hex);
}

static void path_sha(const char *path, char hex[SHA256_HEX_SIZE]) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        file_sha(fd, hex);
        close(fd);
}

/* The algorithm a stream asking for @want uses with our agent. */
static enum vsock_checksum used_alg(enum vsock_checksum want) {
        return want == VSOCK_CHECKSUM_SHA256 ? VSOCK_CHECKSUM_SHA256 : VSOCK_CHECKSUM_CRC32C;
}

/* @fd's checksum by @alg (a used one: SHA256 or CRC32C), independently of
 * the library's stream code. */
static void file_sum(int fd, enum vsock_checksum alg, char hex[CHECKSUM_HEX_MAX]) {
        if (alg == VSOCK_CHECKSUM_SHA256) {
                file_sha(fd, hex);
                return;
        }
        struct crc32c c;
        assert_int_equal(crc32c_init_impl(&c, CRC32C_IMPL_PORTABLE), 0);
        uint8_t buf[65536];
        for (off_t off = 0;;) {
                ssize_t k = pread(fd, buf, sizeof buf, off);
                assert_true(k >= 0);
                if (k == 0)
                        break;
                crc32c_update(&c, buf, (size_t) k);
                off += k;
        }
        crc32c_to_hex(crc32c_value(&c), hex);
}

static void path_sum(const char *path, enum vsock_checksum alg, char hex[CHECKSUM_HEX_MAX]) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        file_sum(fd, alg, hex);
        close(fd);
}

/* A result's checksum fields for a stream of @want over a file whose
 * checksum by the algorithm used is @sum. */
static void check_result_sum(enum vsock_checksum want, enum vsock_checksum got_alg, const char *digest,
                             const char *sha256, const char *sum) {
        assert_int_equal(got_alg, used_alg(want));
        assert_string_equal(digest, sum);
        assert_string_equal(sha256, used_alg(want) == VSOCK_CHECKSUM_SHA256 ? sum : "");
        assert_int_equal(strlen(digest), used_alg(want) == VSOCK_CHECKSUM_SHA256 ? 64 : 8);
}

static const enum vsock_checksum all_algs[] = { VSOCK_CHECKSUM_AUTO, VSOCK_CHECKSUM_SHA256, VSOCK_CHECKSUM_CRC32C };

static int tmpfd(void) {
        char p[160];
        snprintf(p, sizeof p, "%s/.local-XXXXXX", Dir);
        int fd = mkostemp(p, O_CLOEXEC);
        assert_true(fd >= 0);
        unlink(p);
        return fd;
}

/* Entries of @dir whose name contains @part. */
static int count_names(const char *dir, const char *part) {
        DIR *d = opendir(dir);
        if (!d)
                return -1;
        int n = 0;
        struct dirent *e;
        while ((e = readdir(d)))
                n += strstr(e->d_name, part) != NULL;
        closedir(d);
        return n;
}

/* ---- raw frames ------------------------------------------------------------------ */

static void send_json(vsock_conn *c, uint8_t type, const struct ext_shape *shape, const void *m) {
        struct buf out = BUF_INIT(0);
        assert_int_equal(ext_encode(shape, m, &out), 0);
        assert_int_equal(vsock_write_message(c, type, buf_head(&out), buf_size(&out)), 0);
        buf_free(&out);
}

static void send_credit(vsock_conn *c, uint32_t n) {
        uint8_t p[EXT_CREDIT_SIZE];
        ext_credit_encode(n, p);
        assert_int_equal(vsock_write_message(c, EXT_MSG_CREDIT, p, sizeof p), 0);
}

/* Read frames until one of @type (others of @skip are dropped). */
static uint8_t *read_until(vsock_conn *c, uint8_t type, uint8_t skip, uint32_t *ret_len) {
        for (;;) {
                uint8_t t;
                uint8_t *data = NULL;
                uint32_t len;
                int r = vsock_read_message(c, &t, &data, &len);
                if (r < 0)
                        fail_msg("reading for type %u: %s", type, vsock_strerror(r));
                if (t == type) {
                        *ret_len = len;
                        return data;
                }
                if (t != skip)
                        fail_msg("frame type %u while waiting for %u: %.*s", t, type, (int) len, data ? (char *) data : "");
                free(data);
        }
}

/* The next frame is an Error with @code; returns its message's copy. */
static void expect_error(vsock_conn *c, const char *code, uint8_t skip) {
        uint32_t len;
        uint8_t *data = read_until(c, EXT_MSG_ERROR, skip, &len);
        struct ext_error e;
        const char *why = NULL;
        assert_int_equal(ext_error_decode(data, len, &e, &why), 0);
        if (strcmp(e.code, code) != 0)
                fail_msg("Error %s (%s), expected %s", e.code, e.message, code);
        ext_error_clear(&e);
        free(data);
}

/* After a fatal Error the agent closes: EOF, nothing more. */
static void expect_closed(vsock_conn *c) {
        uint8_t t;
        uint8_t *data = NULL;
        uint32_t len;
        for (;;) {
                int r = vsock_read_message(c, &t, &data, &len);
                free(data);
                data = NULL;
                if (r < 0)
                        return;
                if (t != EXT_MSG_CREDIT && t != EXT_MSG_DATA)
                        fail_msg("frame type %u after a fatal error", t);
        }
}

/* ---- FileGet --------------------------------------------------------------------- */

static void get_and_compare(vsock_conn *c, const char *path, size_t size, enum vsock_checksum alg) {
        int fd = tmpfd();
        struct vsock_file_get_opts o = VSOCK_FILE_GET_OPTS_INIT;
        o.fd = fd;
        o.checksum = alg;
        struct vsock_file_get_result res;
        struct vsock_call call = VSOCK_CALL_INIT;
        int r = vsock_file_get(c, path, &o, &call, &res);
        if (r < 0)
                fail_msg("file_get %s: %s (%s)", path, vsock_strerror(r), call.remote_error);
        assert_int_equal(res.received, size);
        assert_int_equal(res.stat.size, size);
        assert_true(S_ISREG(res.stat.mode));
        char want[SHA256_HEX_SIZE], got[SHA256_HEX_SIZE], sum[CHECKSUM_HEX_MAX];
        path_sha(path, want);
        file_sha(fd, got);
        assert_string_equal(got, want);
        path_sum(path, used_alg(alg), sum);
        check_result_sum(alg, res.checksum, res.digest, res.sha256, sum);
        close(fd);
}

static void test_get(void **state) {
        (void) state;
        char p[160];
        static const size_t sizes[] = { 0, 1, 256 * 1024, 256 * 1024 + 1, 5 * 1024 * 1024 + 12345 };
        vsock_conn *c = xdial();
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
                path_in(p, sizeof p, "get-%zu", i);
                make_file(p, sizes[i], (unsigned) i);
                /* Sequential requests on one connection, with every checksum. */
                for (size_t a = 0; a < sizeof all_algs / sizeof all_algs[0]; a++)
                        get_and_compare(c, p, sizes[i], all_algs[a]);
        }
        vsock_conn_close(c);
}

static void test_get_resume(void **state) {
        (void) state;
        char p[160];
        size_t size = 3 * 1024 * 1024 + 777, have = 1234567;
        path_in(p, sizeof p, "get-resume");
        make_file(p, size, 7);
        int fd = tmpfd();
        uint8_t *head = malloc(have);
        fill(head, have, 0, 7);
        assert_int_equal(write(fd, head, have), (ssize_t) have);
        free(head);
        char want[SHA256_HEX_SIZE], got[SHA256_HEX_SIZE], sum[CHECKSUM_HEX_MAX];
        path_sha(p, want);
        for (size_t a = 0; a < sizeof all_algs / sizeof all_algs[0]; a++) {
                assert_int_equal(ftruncate(fd, (off_t) have), 0);
                vsock_conn *c = xdial();
                struct vsock_file_get_opts o = VSOCK_FILE_GET_OPTS_INIT;
                o.fd = fd;
                o.offset = have;
                o.checksum = all_algs[a];
                struct vsock_file_get_result res;
                assert_int_equal(vsock_file_get(c, p, &o, NULL, &res), 0);
                assert_int_equal(res.received, size - have);
                file_sha(fd, got);
                assert_string_equal(got, want);
                /* The checksum covers the prefix kept here too. */
                path_sum(p, used_alg(all_algs[a]), sum);
                check_result_sum(all_algs[a], res.checksum, res.digest, res.sha256, sum);

                /* A local prefix that differs from the file: the checksum says so. */
                assert_int_equal(pwrite(fd, "X", 1, 10), 1);
                assert_int_equal(ftruncate(fd, (off_t) have), 0);
                vsock_conn_close(c);
                c = xdial();
                struct vsock_call call = VSOCK_CALL_INIT;
                int r = vsock_file_get(c, p, &o, &call, &res);
                assert_int_equal(vsock_err_kind(r), VSOCK_E_CHECKSUM);
                vsock_conn_close(c);
                /* The good prefix back for the next algorithm. */
                uint8_t *good = malloc(have);
                fill(good, have, 0, 7);
                assert_int_equal(pwrite(fd, good, have, 0), (ssize_t) have);
                free(good);
        }
        close(fd);
}

/* A file partly out of the page cache: the agent reads cached chunks on
 * its loop and the rest on its worker, in any mix; the bytes and the
 * checksum must come out in file order whatever the mix. */
static void test_get_partly_cached(void **state) {
        (void) state;
        char p[160];
        path_in(p, sizeof p, "get-cold");
        size_t size = 24u * 1024 * 1024 + 4321;
        for (size_t a = 0; a < sizeof all_algs / sizeof all_algs[0]; a++) {
                make_file(p, size, 13);
                int fd = open(p, O_RDONLY | O_CLOEXEC);
                assert_true(fd >= 0);
                assert_int_equal(fsync(fd), 0);
                /* Every other 768 KiB out of the cache (on tmpfs a no-op). */
                for (off_t off = 0; off < (off_t) size; off += 2 * 768 * 1024)
                        (void) posix_fadvise(fd, off, 768 * 1024, POSIX_FADV_DONTNEED);
                close(fd);
                vsock_conn *c = xdial();
                get_and_compare(c, p, size, all_algs[a]);
                vsock_conn_close(c);
        }
        /* Cold from the start, through a small window granted a frame at
         * a time: the agent stalls on credit with chunks read by the
         * worker while the loop could read the next ones itself. */
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        (void) posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        uint8_t *want = malloc(size), *got = malloc(size);
        assert_int_equal(pread(fd, want, size, 0), (ssize_t) size);
        (void) posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
        vsock_conn *c = xdial();
        struct ext_file_get g = { .path = p, .window = 96 * 1024, .checksum = (char *) "crc32c" };
        send_json(c, EXT_MSG_FILE_GET, &ext_file_get_shape, &g);
        uint32_t len;
        free(read_until(c, EXT_MSG_STREAM_START, 0, &len));
        size_t have = 0;
        for (len = 1; len > 0;) {
                uint8_t *data = read_until(c, EXT_MSG_DATA, 0, &len);
                assert_true(len <= size - have);
                if (len > 0) {
                        memcpy(got + have, data, len);
                        send_credit(c, len);
                }
                have += len;
                free(data);
        }
        assert_int_equal(have, size);
        assert_memory_equal(got, want, size);
        uint8_t *data = read_until(c, EXT_MSG_DONE, 0, &len);
        struct ext_done d;
        assert_int_equal(ext_done_decode(data, len, &d, NULL), 0);
        free(data);
        char hex[CRC32C_HEX_SIZE];
        crc32c_to_hex(crc32c(want, size), hex);
        assert_string_equal(d.crc32c, hex);
        ext_done_clear(&d);
        vsock_conn_close(c);
        free(want);
        free(got);
}

static void test_get_length(void **state) {
        (void) state;
        char p[160];
        path_in(p, sizeof p, "get-length");
        make_file(p, 1000000, 3);
        vsock_conn *c = xdial();
        int fd = tmpfd();
        struct vsock_file_get_opts o = VSOCK_FILE_GET_OPTS_INIT;
        o.fd = fd;
        o.length = 300000;
        struct vsock_file_get_result res;
        assert_int_equal(vsock_file_get(c, p, &o, NULL, &res), 0);
        assert_int_equal(res.received, 300000);
        uint8_t *want = malloc(300000), *got = malloc(300000);
        fill(want, 300000, 0, 3);
        assert_int_equal(pread(fd, got, 300000, 0), 300000);
        assert_memory_equal(got, want, 300000);
        free(want);
        free(got);
        close(fd);
        vsock_conn_close(c);
}

static void test_get_errors(void **state) {
        (void) state;
        char p[160];
        vsock_conn *c = xdial();
        int fd = tmpfd();
        struct vsock_file_get_opts o = VSOCK_FILE_GET_OPTS_INIT;
        o.fd = fd;
        struct vsock_file_get_result res;
        struct vsock_call call = VSOCK_CALL_INIT;
        int r = vsock_file_get(c, path_in(p, sizeof p, "missing"), &o, &call, &res);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_REMOTE);
        assert_int_equal(vsock_err_errno(r), ENOENT);
        assert_non_null(strstr(call.remote_error, "missing"));
        /* The connection is still good after an Error before the stream. */
        r = vsock_file_get(c, Dir, &o, &call, &res);
        assert_int_equal(vsock_err_errno(r), EISDIR);
        r = vsock_file_get(c, "/dev/null", &o, &call, &res);
        assert_int_equal(vsock_err_errno(r), EINVAL);
        r = vsock_file_get(c, "relative/path", &o, &call, &res);
        assert_int_equal(vsock_err_errno(r), EINVAL);
        make_file(path_in(p, sizeof p, "short"), 10, 1);
        o.offset = 11; /* past the end */
        assert_int_equal(ftruncate(fd, 11), 0);
        r = vsock_file_get(c, p, &o, &call, &res);
        assert_int_equal(vsock_err_errno(r), EINVAL);
        close(fd);
        vsock_conn_close(c);
}

/* ---- FilePut ------------------------------------------------------------------------- */

static void test_put(void **state) {
        (void) state;
        char src[160], dst[160];
        path_in(src, sizeof src, "put-src");
        path_in(dst, sizeof dst, "put-new/dir/target");
        make_file(src, 4 * 1024 * 1024 + 99, 11);
        int fd = open(src, O_RDONLY | O_CLOEXEC);
        vsock_conn *c = xdial();
        struct vsock_file_put_opts o = VSOCK_FILE_PUT_OPTS_INIT;
        o.fd = fd;
        o.mode = 04751;
        o.mtime_ns = INT64_C(1234567890123456789);
        struct vsock_file_put_result res;
        struct vsock_call call = VSOCK_CALL_INIT;
        int r = vsock_file_put(c, dst, &o, &call, &res);
        if (r < 0)
                fail_msg("file_put: %s (%s)", vsock_strerror(r), call.remote_error);
        char want[SHA256_HEX_SIZE], got[SHA256_HEX_SIZE], sum[CHECKSUM_HEX_MAX];
        file_sha(fd, want);
        path_sha(dst, got);
        assert_string_equal(got, want);
        file_sum(fd, VSOCK_CHECKSUM_CRC32C, sum);
        check_result_sum(VSOCK_CHECKSUM_AUTO, res.checksum, res.digest, res.sha256, sum);
        assert_int_equal(res.size, 4 * 1024 * 1024 + 99);
        struct stat st;
        assert_int_equal(stat(dst, &st), 0);
        assert_int_equal(st.st_mode & 07777, 04751);
        assert_int_equal(st.st_mtim.tv_sec, 1234567890);
        assert_int_equal(st.st_mtim.tv_nsec, 123456789);

        /* Replacing it: default mode 0644, from a callback source, on the
         * same connection. */
        lseek(fd, 0, SEEK_SET);
        struct vsock_file_put_opts o2 = VSOCK_FILE_PUT_OPTS_INIT;
        o2.source = NULL;
        o2.fd = fd;
        o2.checksum = VSOCK_CHECKSUM_SHA256;
        r = vsock_file_put(c, dst, &o2, &call, &res);
        assert_int_equal(r, 0);
        check_result_sum(VSOCK_CHECKSUM_SHA256, res.checksum, res.digest, res.sha256, want);
        assert_int_equal(stat(dst, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0644);
        assert_int_equal(count_names(dst[0] ? Dir : Dir, ".vsock"), 0);
        close(fd);
        vsock_conn_close(c);
}

struct mem_source {
        const uint8_t *p;
        size_t n, off;
};

static ssize_t mem_read(void *userdata, void *buf, size_t n) {
        struct mem_source *m = userdata;
        size_t k = m->n - m->off < n ? m->n - m->off : n;
        memcpy(buf, m->p + m->off, k);
        m->off += k;
        return (ssize_t) k;
}

static void test_put_source(void **state) {
        (void) state;
        char dst[160];
        path_in(dst, sizeof dst, "put-source");
        size_t n = 777777;
        uint8_t *p = malloc(n);
        fill(p, n, 0, 5);
        struct mem_source m = { p, n, 0 };
        vsock_conn *c = xdial();
        struct vsock_file_put_opts o = VSOCK_FILE_PUT_OPTS_INIT;
        o.source = mem_read;
        o.userdata = &m;
        struct vsock_file_put_result res;
        assert_int_equal(vsock_file_put(c, dst, &o, NULL, &res), 0);
        assert_int_equal(res.size, n);
        int fd = open(dst, O_RDONLY | O_CLOEXEC);
        uint8_t *got = malloc(n);
        assert_int_equal(read(fd, got, n), (ssize_t) n);
        assert_memory_equal(got, p, n);
        close(fd);
        free(got);
        free(p);
        vsock_conn_close(c);
}

/* A raw upload (asking for checksum @alg, NULL: none) up to its empty
 * Data; returns the connection. */
static vsock_conn *raw_put_alg(const char *path, const char *upload_id, bool resume, const uint8_t *p, size_t n,
                               int64_t *ret_offset, const char *alg) {
        vsock_conn *c = xdial();
        struct ext_file_put req;
        ext_file_put_init(&req);
        req.path = (char *) path;
        req.upload_id = (char *) upload_id;
        req.resume = resume;
        req.checksum = (char *) alg;
        send_json(c, EXT_MSG_FILE_PUT, &ext_file_put_shape, &req);
        uint32_t len;
        uint8_t *data = read_until(c, EXT_MSG_STREAM_START, 0, &len);
        struct ext_stream_start ss;
        assert_int_equal(ext_stream_start_decode(data, len, &ss, NULL), 0);
        free(data);
        assert_true(ss.window > 0);
        if (ret_offset)
                *ret_offset = ss.offset;
        uint64_t credit = ss.window;
        for (size_t off = 0; off < n;) {
                size_t k = n - off < 65536 ? n - off : 65536;
                while (credit < k) {
                        data = read_until(c, EXT_MSG_CREDIT, 0, &len);
                        uint32_t g;
                        assert_int_equal(ext_credit_decode(data, len, &g, NULL), 0);
                        credit += g;
                        free(data);
                }
                assert_int_equal(vsock_write_message(c, EXT_MSG_DATA, p + off, k), 0);
                credit -= k;
                off += k;
        }
        ext_stream_start_clear(&ss);
        return c;
}

static vsock_conn *raw_put(const char *path, const char *upload_id, bool resume, const uint8_t *p, size_t n,
                           int64_t *ret_offset) {
        return raw_put_alg(path, upload_id, resume, p, n, ret_offset, NULL);
}

static void test_put_checksum(void **state) {
        (void) state;
        char dst[160];
        path_in(dst, sizeof dst, "put-checksum");
        make_file(dst, 1000, 1); /* the old content must survive */
        char before[SHA256_HEX_SIZE];
        path_sha(dst, before);
        uint8_t p[5000];
        fill(p, sizeof p, 0, 2);
        vsock_conn *c = raw_put(dst, NULL, false, p, sizeof p, NULL);
        assert_int_equal(vsock_write_message(c, EXT_MSG_DATA, NULL, 0), 0);
        struct ext_done d = { .size = sizeof p, .sha256 = (char *) "0000000000000000000000000000000000000000000000000000000000000000" };
        send_json(c, EXT_MSG_DONE, &ext_done_shape, &d);
        expect_error(c, "ECHECKSUM", EXT_MSG_CREDIT);
        char after[SHA256_HEX_SIZE];
        path_sha(dst, after);
        assert_string_equal(after, before);
        /* A wrong size too. */
        vsock_conn_close(c);
        c = raw_put(dst, NULL, false, p, sizeof p, NULL);
        assert_int_equal(vsock_write_message(c, EXT_MSG_DATA, NULL, 0), 0);
        char hex[SHA256_HEX_SIZE];
        uint8_t dg[SHA256_DIGEST_SIZE];
        sha256_digest(p, sizeof p, dg);
        sha256_to_hex(dg, hex);
        d = (struct ext_done) { .size = sizeof p + 1, .sha256 = hex };
        send_json(c, EXT_MSG_DONE, &ext_done_shape, &d);
        expect_error(c, "ECHECKSUM", EXT_MSG_CREDIT);
        path_sha(dst, after);
        assert_string_equal(after, before);
        vsock_conn_close(c);

        /* CRC-32C asked for: a Done with the right SHA-256 but no crc32c
         * field does not match (2.3: the stream's field only). */
        c = raw_put_alg(dst, NULL, false, p, sizeof p, NULL, "crc32c");
        assert_int_equal(vsock_write_message(c, EXT_MSG_DATA, NULL, 0), 0);
        d = (struct ext_done) { .size = sizeof p, .sha256 = hex };
        send_json(c, EXT_MSG_DONE, &ext_done_shape, &d);
        expect_error(c, "ECHECKSUM", EXT_MSG_CREDIT);
        path_sha(dst, after);
        assert_string_equal(after, before);
        vsock_conn_close(c);
        /* A wrong CRC-32C. */
        char crc[CRC32C_HEX_SIZE];
        crc32c_to_hex(crc32c(p, sizeof p) ^ 1, crc);
        c = raw_put_alg(dst, NULL, false, p, sizeof p, NULL, "crc32c");
        assert_int_equal(vsock_write_message(c, EXT_MSG_DATA, NULL, 0), 0);
        d = (struct ext_done) { .size = sizeof p, .crc32c = crc };
        send_json(c, EXT_MSG_DONE, &ext_done_shape, &d);
        expect_error(c, "ECHECKSUM", EXT_MSG_CREDIT);
        path_sha(dst, after);
        assert_string_equal(after, before);
        vsock_conn_close(c);
        /* The right one: replaced, and the agent's Done carries crc32c only. */
        crc32c_to_hex(crc32c(p, sizeof p), crc);
        c = raw_put_alg(dst, NULL, false, p, sizeof p, NULL, "crc32c");
        assert_int_equal(vsock_write_message(c, EXT_MSG_DATA, NULL, 0), 0);
        d = (struct ext_done) { .size = sizeof p, .crc32c = crc };
        send_json(c, EXT_MSG_DONE, &ext_done_shape, &d);
        uint32_t len;
        uint8_t *data = read_until(c, EXT_MSG_DONE, EXT_MSG_CREDIT, &len);
        struct ext_done mine;
        assert_int_equal(ext_done_decode(data, len, &mine, NULL), 0);
        free(data);
        assert_int_equal(mine.size, sizeof p);
        assert_string_equal(mine.crc32c, crc);
        assert_null(mine.sha256);
        ext_done_clear(&mine);
        path_sha(dst, after);
        sha256_digest(p, sizeof p, dg);
        sha256_to_hex(dg, hex);
        assert_string_equal(after, hex);
        vsock_conn_close(c);
        /* No temporary file is left behind (the agent cleans up after its reply). */
        for (int i = 0; i < 100 && count_names(Dir, ".vsock-agent-write") > 0; i++)
                pause_ms(20);
        assert_int_equal(count_names(Dir, ".vsock-agent-write"), 0);
}

static void test_put_resume(void **state) {
        (void) state;
        char src[160], dst[160];
        path_in(src, sizeof src, "resume-src");
        path_in(dst, sizeof dst, "resume-dst");
        size_t size = 3 * 1024 * 1024 + 5;
        make_file(src, size, 21);
        uint8_t *p = malloc(size);
        fill(p, size, 0, 21);
        const char *id = "upload-0123456789abcdef";
        /* 1.5 MiB: more than the window, so at least one chunk was written
         * (credit came back for it). */
        vsock_conn *c = raw_put(dst, id, false, p, 1536 * 1024, NULL);
        vsock_conn_close(c); /* broken */
        free(p);
        /* The partial stays, the target does not exist yet. */
        for (int i = 0; i < 250 && count_names(Dir, ".resume-dst.vsock-put-") == 0; i++)
                pause_ms(20);
        assert_int_equal(count_names(Dir, ".resume-dst.vsock-put-"), 1);
        assert_int_equal(access(dst, F_OK), -1);

        int fd = open(src, O_RDONLY | O_CLOEXEC);
        c = xdial();
        struct vsock_file_put_opts o = VSOCK_FILE_PUT_OPTS_INIT;
        o.fd = fd;
        o.upload_id = id;
        o.resume = true;
        /* The broken upload asked for SHA-256 (no `checksum`); this one
         * is checked with CRC-32C, over the whole file. */
        o.checksum = VSOCK_CHECKSUM_CRC32C;
        struct vsock_file_put_result res;
        struct vsock_call call = VSOCK_CALL_INIT;
        int r = vsock_file_put(c, dst, &o, &call, &res);
        if (r < 0)
                fail_msg("resume: %s (%s)", vsock_strerror(r), call.remote_error);
        assert_true(res.offset >= 512 * 1024);
        assert_true(res.offset <= 1536 * 1024);
        assert_int_equal(res.size, size);
        char want[SHA256_HEX_SIZE], got[SHA256_HEX_SIZE], sum[CHECKSUM_HEX_MAX];
        file_sha(fd, want);
        path_sha(dst, got);
        assert_string_equal(got, want);
        file_sum(fd, VSOCK_CHECKSUM_CRC32C, sum);
        check_result_sum(VSOCK_CHECKSUM_CRC32C, res.checksum, res.digest, res.sha256, sum);
        assert_int_equal(count_names(Dir, ".resume-dst.vsock-put-"), 0);

        /* Without resume, a partial of that id is discarded: offset 0. */
        p = malloc(600 * 1024);
        fill(p, 600 * 1024, 0, 21);
        vsock_conn_close(c);
        c = raw_put(dst, id, false, p, 600 * 1024, NULL);
        vsock_conn_close(c);
        for (int i = 0; i < 250 && count_names(Dir, ".resume-dst.vsock-put-") == 0; i++)
                pause_ms(20);
        int64_t off = -1;
        c = raw_put(dst, id, false, NULL, 0, &off);
        assert_int_equal(off, 0);
        vsock_conn_close(c);
        free(p);
        close(fd);
        /* An Error removes a partial too (here: a protocol error). */
        for (int i = 0; i < 250 && count_names(Dir, ".resume-dst.vsock-put-") == 0; i++)
                pause_ms(20);
}

static void test_put_errors(void **state) {
        (void) state;
        char p[160];
        vsock_conn *c = xdial();
        struct mem_source m = { (const uint8_t *) "x", 1, 0 };
        struct vsock_file_put_opts o = VSOCK_FILE_PUT_OPTS_INIT;
        o.source = mem_read;
        o.userdata = &m;
        struct vsock_file_put_result res;
        struct vsock_call call = VSOCK_CALL_INIT;
        int r = vsock_file_put(c, Dir, &o, &call, &res);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_REMOTE);
        assert_int_equal(vsock_err_errno(r), EISDIR);
        /* Still usable after an Error before the stream. */
        r = vsock_file_put(c, "/dev/null", &o, &call, &res);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_REMOTE);
        make_file(path_in(p, sizeof p, "a-file"), 1, 1);
        char q[200];
        snprintf(q, sizeof q, "%s/under", p);
        r = vsock_file_put(c, q, &o, &call, &res);
        assert_int_equal(vsock_err_errno(r), ENOTDIR);
        o.upload_id = "short";
        r = vsock_file_put(c, path_in(p, sizeof p, "bad-id"), &o, &call, &res);
        assert_int_equal(vsock_err_errno(r), EINVAL);
        vsock_conn_close(c);
}

/* ---- hostile streams --------------------------------------------------------------------- */

/* The Error @c gets, which must name @what; the connection goes on. */
static void expect_error_naming(vsock_conn *c, const char *code, const char *what) {
        uint32_t len;
        uint8_t *data = read_until(c, EXT_MSG_ERROR, 0, &len);
        struct ext_error e;
        assert_int_equal(ext_error_decode(data, len, &e, NULL), 0);
        if (strcmp(e.code, code) != 0 || !strstr(e.message, what))
                fail_msg("Error %s (%s), expected %s naming %s", e.code, e.message, code, what);
        ext_error_clear(&e);
        free(data);
}

/* Checksum names a stream request may not carry: an unknown one (ENOSYS,
 * naming it) and one past 32 bytes (EINVAL), for every stream request,
 * before any stream: the connection serves the next request. */
static void test_checksum_names(void **state) {
        (void) state;
        char p[160], dir[160];
        path_in(p, sizeof p, "names-src");
        make_file(p, 300000, 4);
        path_in(dir, sizeof dir, "names-dir");
        char huge[5000];
        memset(huge, 'c', sizeof huge - 1);
        huge[sizeof huge - 1] = '\0';
        const char *bad[] = { "md5", "CRC32C", "crc32c ", huge, "ccccccccccccccccccccccccccccccccc" /* 33 */ };
        const char *code[] = { "ENOSYS", "ENOSYS", "ENOSYS", "EINVAL", "EINVAL" };
        const char *named[] = { "\"md5\"", "\"CRC32C\"", "\"crc32c \"", "4999 bytes", "33 bytes" };
        vsock_conn *c = xdial();
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                struct ext_file_get g = { .path = p, .window = 65536, .checksum = (char *) bad[i] };
                send_json(c, EXT_MSG_FILE_GET, &ext_file_get_shape, &g);
                expect_error_naming(c, code[i], named[i]);
                struct ext_file_put fp;
                ext_file_put_init(&fp);
                fp.path = p;
                fp.checksum = (char *) bad[i];
                send_json(c, EXT_MSG_FILE_PUT, &ext_file_put_shape, &fp);
                expect_error_naming(c, code[i], named[i]);
                struct ext_tar_get tg = { .path = dir, .window = 65536, .checksum = (char *) bad[i] };
                send_json(c, EXT_MSG_TAR_GET, &ext_tar_get_shape, &tg);
                expect_error_naming(c, code[i], named[i]);
                struct ext_tar_put tp = { .path = dir, .checksum = (char *) bad[i] };
                send_json(c, EXT_MSG_TAR_PUT, &ext_tar_put_shape, &tp);
                expect_error_naming(c, code[i], named[i]);
        }
        /* Nothing was written; the connection still serves a download,
         * and a name the agent knows ("sha256" spelt out) is honoured. */
        assert_int_equal(access(dir, F_OK), -1);
        struct ext_file_get g = { .path = p, .window = 2 * 1024 * 1024, .checksum = (char *) "sha256" };
        send_json(c, EXT_MSG_FILE_GET, &ext_file_get_shape, &g);
        uint32_t len;
        free(read_until(c, EXT_MSG_STREAM_START, 0, &len));
        for (len = 1; len > 0;)
                free(read_until(c, EXT_MSG_DATA, 0, &len));
        uint8_t *data = read_until(c, EXT_MSG_DONE, 0, &len);
        struct ext_done d;
        assert_int_equal(ext_done_decode(data, len, &d, NULL), 0);
        free(data);
        char want[SHA256_HEX_SIZE];
        path_sha(p, want);
        assert_int_equal(d.size, 300000);
        assert_non_null(d.sha256);
        assert_string_equal(d.sha256, want);
        assert_null(d.crc32c);
        ext_done_clear(&d);
        get_and_compare(c, p, 300000, VSOCK_CHECKSUM_CRC32C);
        vsock_conn_close(c);
}

static void test_hostile_get_credit(void **state) {
        (void) state;
        char p[160];
        path_in(p, sizeof p, "hostile-get");
        make_file(p, 8 * 1024 * 1024, 9);
        vsock_conn *c = xdial();
        struct ext_file_get g = { .path = p, .window = 4096 };
        send_json(c, EXT_MSG_FILE_GET, &ext_file_get_shape, &g);
        uint32_t len;
        free(read_until(c, EXT_MSG_STREAM_START, 0, &len));
        /* Never more than the credit: exactly 4096 bytes come. */
        uint8_t *d = read_until(c, EXT_MSG_DATA, 0, &len);
        assert_int_equal(len, 4096);
        free(d);
        /* Credit beyond window_max. */
        send_credit(c, 3u * 1024 * 1024);
        expect_error(c, "EPROTO", EXT_MSG_DATA);
        expect_closed(c);
        vsock_conn_close(c);

        /* A zero credit is a protocol error too. */
        c = xdial();
        send_json(c, EXT_MSG_FILE_GET, &ext_file_get_shape, &g);
        free(read_until(c, EXT_MSG_STREAM_START, 0, &len));
        send_credit(c, 0);
        expect_error(c, "EPROTO", EXT_MSG_DATA);
        expect_closed(c);
        vsock_conn_close(c);

        /* A window above window_max is refused before anything is read. */
        c = xdial();
        g.window = 64u * 1024 * 1024;
        send_json(c, EXT_MSG_FILE_GET, &ext_file_get_shape, &g);
        expect_error(c, "ELIMIT", 0);
        vsock_conn_close(c);

        /* Data during a download. */
        c = xdial();
        g.window = 4096;
        send_json(c, EXT_MSG_FILE_GET, &ext_file_get_shape, &g);
        free(read_until(c, EXT_MSG_STREAM_START, 0, &len));
        assert_int_equal(vsock_write_message(c, EXT_MSG_DATA, "x", 1), 0);
        expect_error(c, "EPROTO", EXT_MSG_DATA);
        expect_closed(c);
        vsock_conn_close(c);
}

static void test_hostile_put(void **state) {
        (void) state;
        char dst[160];
        path_in(dst, sizeof dst, "hostile-put");
        uint8_t *p = calloc(1, 2u * 1024 * 1024);

        /* Data beyond the credit: before StreamStart there is none. Both
         * frames go in one write, so the agent reads the Data before its
         * open can have finished. */
        vsock_conn *c = xdial();
        struct ext_file_put req;
        ext_file_put_init(&req);
        req.path = dst;
        struct buf two = BUF_INIT(0);
        uint8_t h[VSOCK_FRAME_HEADER_SIZE];
        struct buf json = BUF_INIT(0);
        assert_int_equal(ext_file_put_encode(&req, &json), 0);
        vsock_frame_header(h, EXT_MSG_FILE_PUT, (uint32_t) buf_size(&json));
        assert_int_equal(buf_append(&two, h, sizeof h), 0);
        assert_int_equal(buf_append(&two, buf_head(&json), buf_size(&json)), 0);
        vsock_frame_header(h, EXT_MSG_DATA, 100);
        assert_int_equal(buf_append(&two, h, sizeof h), 0);
        assert_int_equal(buf_append(&two, p, 100), 0);
        assert_int_equal(vsock_conn_write(c, buf_head(&two), buf_size(&two)), 0);
        buf_free(&two);
        buf_free(&json);
        expect_error(c, "EPROTO", 0);
        expect_closed(c);
        vsock_conn_close(c);

        /* Oversized Data: refused at its header (no 16 MiB collected). */
        c = raw_put(dst, NULL, false, NULL, 0, NULL);
        uint8_t hdr[VSOCK_FRAME_HEADER_SIZE];
        vsock_frame_header(hdr, EXT_MSG_DATA, 16u * 1024 * 1024);
        assert_int_equal(vsock_conn_write(c, hdr, sizeof hdr), 0);
        expect_error(c, "EPROTO", 0);
        expect_closed(c);
        vsock_conn_close(c);

        /* Bad Done JSON. */
        c = raw_put(dst, NULL, false, p, 100, NULL);
        assert_int_equal(vsock_write_message(c, EXT_MSG_DATA, NULL, 0), 0);
        assert_int_equal(vsock_write_message(c, EXT_MSG_DONE, "{\"size\":\"x\"}", 12), 0);
        expect_error(c, "EPROTO", EXT_MSG_CREDIT);
        expect_closed(c);
        vsock_conn_close(c);

        /* Done before the end of the stream. */
        c = raw_put(dst, NULL, false, p, 100, NULL);
        assert_int_equal(vsock_write_message(c, EXT_MSG_DONE, "{}", 2), 0);
        expect_error(c, "EPROTO", EXT_MSG_CREDIT);
        expect_closed(c);
        vsock_conn_close(c);

        /* Credit from the host during an upload. */
        c = raw_put(dst, NULL, false, p, 100, NULL);
        send_credit(c, 100);
        expect_error(c, "EPROTO", EXT_MSG_CREDIT);
        expect_closed(c);
        vsock_conn_close(c);

        /* Data or Done without a stream: not a request. */
        c = xdial();
        assert_int_equal(vsock_write_message(c, EXT_MSG_DATA, "x", 1), 0);
        expect_error(c, "EPROTO", 0);
        expect_closed(c);
        vsock_conn_close(c);
        c = xdial();
        assert_int_equal(vsock_write_message(c, EXT_MSG_DONE, "{}", 2), 0);
        expect_error(c, "EPROTO", 0);
        expect_closed(c);
        vsock_conn_close(c);
        /* A stray Credit between requests (one in flight when a download
         * ended) is dropped: the connection serves the next request. */
        c = xdial();
        send_credit(c, 4096);
        int fd = tmpfd();
        struct vsock_file_get_opts go = VSOCK_FILE_GET_OPTS_INIT;
        go.fd = fd;
        struct vsock_file_get_result gr;
        char small[160];
        make_file(path_in(small, sizeof small, "after-credit"), 10, 1);
        assert_int_equal(vsock_file_get(c, small, &go, NULL, &gr), 0);
        assert_int_equal(gr.received, 10);
        close(fd);
        vsock_conn_close(c);

        /* Bad FilePut JSON. */
        c = xdial();
        assert_int_equal(vsock_write_message(c, EXT_MSG_FILE_PUT, "{\"path\":7}", 10), 0);
        expect_error(c, "EPROTO", 0);
        expect_closed(c);
        vsock_conn_close(c);
        free(p);

        /* None of these replaced or left anything. */
        for (int i = 0; i < 250 && count_names(Dir, ".vsock-agent-write") > 0; i++)
                pause_ms(20);
        assert_int_equal(count_names(Dir, ".vsock-agent-write"), 0);
        assert_int_equal(access(dst, F_OK), -1);
}

/* ---- trees --------------------------------------------------------------------------------- */

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...) {
        char cmd[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cmd, sizeof cmd, fmt, ap);
        va_end(ap);
        if (system(cmd) != 0)
                fail_msg("failed: %s", cmd);
}

static void test_tar_roundtrip(void **state) {
        (void) state;
        sh("set -e; cd %s; mkdir -p tree/sub/deep; printf abc > tree/a; head -c 1000000 /dev/urandom > tree/sub/big; "
           "ln -s ../a tree/sub/link; chmod 0751 tree/sub; touch -d @1000000000 tree/a; mkfifo tree/fifo; "
           "ln tree/a tree/hard", Dir);
        char src[160], arc[160];
        path_in(src, sizeof src, "tree");
        int fd = tmpfd();
        vsock_conn *c = xdial();
        struct vsock_tar_opts o = VSOCK_TAR_OPTS_INIT;
        o.fd = fd;
        struct vsock_tar_result res;
        struct vsock_call call = VSOCK_CALL_INIT;
        int r = vsock_tar_get(c, src, &o, &call, &res);
        if (r < 0)
                fail_msg("tar_get: %s (%s)", vsock_strerror(r), call.remote_error);
        assert_int_equal(res.entries, 7); /* tree, a, sub, deep, big, link, hard */
        assert_int_equal(res.skipped, 1); /* the FIFO */
        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        assert_int_equal(res.size, st.st_size);
        char hex[CHECKSUM_HEX_MAX];
        file_sum(fd, VSOCK_CHECKSUM_CRC32C, hex);
        check_result_sum(VSOCK_CHECKSUM_AUTO, res.checksum, res.digest, res.sha256, hex);

        /* And back into another directory, on the same connection, with
         * SHA-256. */
        lseek(fd, 0, SEEK_SET);
        path_in(arc, sizeof arc, "tree-copy/inner");
        o.checksum = VSOCK_CHECKSUM_SHA256;
        r = vsock_tar_put(c, arc, &o, &call, &res);
        if (r < 0)
                fail_msg("tar_put: %s (%s)", vsock_strerror(r), call.remote_error);
        assert_int_equal(res.entries, 7);
        file_sum(fd, VSOCK_CHECKSUM_SHA256, hex);
        check_result_sum(VSOCK_CHECKSUM_SHA256, res.checksum, res.digest, res.sha256, hex);
        sh("cd %s && rm tree/fifo && diff -r --no-dereference tree tree-copy/inner/tree", Dir);
        path_in(arc, sizeof arc, "tree-copy/inner/tree/sub");
        assert_int_equal(lstat(arc, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0751);
        path_in(arc, sizeof arc, "tree-copy/inner/tree/a");
        assert_int_equal(lstat(arc, &st), 0);
        assert_int_equal(st.st_mtim.tv_sec, 1000000000);
        assert_int_equal(st.st_nlink, 2);
        close(fd);
        vsock_conn_close(c);
}

/* One ustar header block for @name (a regular file of @size bytes, or a
 * symlink to @link), with its checksum. */
static void ustar(uint8_t h[512], const char *name, char type, size_t size, const char *link) {
        memset(h, 0, 512);
        snprintf((char *) h, 100, "%s", name);
        memcpy(h + 100, "0000644", 8);
        memcpy(h + 108, "0000000", 8);
        memcpy(h + 116, "0000000", 8);
        snprintf((char *) h + 124, 12, "%011zo", size);
        memcpy(h + 136, "00000000000", 12);
        h[156] = (uint8_t) type;
        if (link)
                snprintf((char *) h + 157, 100, "%s", link);
        memcpy(h + 257, "ustar", 6);
        memcpy(h + 263, "00", 2);
        memset(h + 148, ' ', 8);
        unsigned sum = 0;
        for (int i = 0; i < 512; i++)
                sum += h[i];
        snprintf((char *) h + 148, 8, "%06o", sum);
}

static int put_archive(const char *dir, const uint8_t *a, size_t n, struct vsock_call *call) {
        struct mem_source m = { a, n, 0 };
        vsock_conn *c = xdial();
        struct vsock_tar_opts o = VSOCK_TAR_OPTS_INIT;
        o.source = mem_read;
        o.userdata = &m;
        struct vsock_tar_result res;
        int r = vsock_tar_put(c, dir, &o, call, &res);
        vsock_conn_close(c);
        return r;
}

static void test_tar_put_escapes(void **state) {
        (void) state;
        char dir[160], p[200];
        path_in(dir, sizeof dir, "jail");
        uint8_t a[512 * 5] = {};
        struct vsock_call call = VSOCK_CALL_INIT;

        /* "../escaped": refused, nothing outside. */
        ustar(a, "../escaped", '0', 3, NULL);
        memcpy(a + 512, "bad", 3);
        int r = put_archive(dir, a, sizeof a, &call);
        assert_true(r < 0);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_REMOTE);
        path_in(p, sizeof p, "escaped");
        assert_int_equal(access(p, F_OK), -1);

        /* An absolute name: refused. */
        ustar(a, "/tmp/abs-escape", '0', 3, NULL);
        r = put_archive(dir, a, sizeof a, &call);
        assert_true(r < 0);

        /* A symlink pointing out, then a file through it: ELOOP, nothing
         * written outside. */
        memset(a, 0, sizeof a);
        ustar(a, "out", '2', 0, Dir);
        ustar(a + 512, "out/through", '0', 3, NULL);
        memcpy(a + 1024, "bad", 3);
        r = put_archive(dir, a, sizeof a, &call);
        assert_true(r < 0);
        assert_int_equal(vsock_err_errno(r), ELOOP);
        path_in(p, sizeof p, "through");
        assert_int_equal(access(p, F_OK), -1);

        /* A hard link to a file outside the tree. */
        memset(a, 0, sizeof a);
        ustar(a, "hl", '1', 0, "../get-0");
        r = put_archive(dir, a, sizeof a, &call);
        assert_true(r < 0);

        /* A truncated archive. */
        memset(a, 0, sizeof a);
        ustar(a, "trunc", '0', 5000, NULL);
        r = put_archive(dir, a, 1024, &call);
        assert_true(r < 0);
        /* Paths must be absolute. */
        r = put_archive("relative", a, 1024, &call);
        assert_int_equal(vsock_err_errno(r), EINVAL);
}

static void test_tar_get_errors(void **state) {
        (void) state;
        char p[160];
        vsock_conn *c = xdial();
        int fd = tmpfd();
        struct vsock_tar_opts o = VSOCK_TAR_OPTS_INIT;
        o.fd = fd;
        struct vsock_tar_result res;
        struct vsock_call call = VSOCK_CALL_INIT;
        int r = vsock_tar_get(c, path_in(p, sizeof p, "no-such-tree"), &o, &call, &res);
        assert_int_equal(vsock_err_errno(r), ENOENT);
        /* A single file is an archive of one entry. */
        make_file(path_in(p, sizeof p, "lonely"), 100, 1);
        assert_int_equal(vsock_tar_get(c, p, &o, &call, &res), 0);
        assert_int_equal(res.entries, 1);
        close(fd);
        vsock_conn_close(c);
}

/* ---- memory ------------------------------------------------------------------------------- */

/* The agent's memory per transfer stays bounded whatever the size: its
 * peak RSS grows by less than 2 MiB per transfer over a 256 MiB upload
 * and download running at the same time. */
static void test_memory(void **state) {
        (void) state;
        char src[160], dst[160];
        path_in(src, sizeof src, "mem-src");
        path_in(dst, sizeof dst, "mem-dst");
        size_t size = 256u * 1024 * 1024;
        int fd = open(src, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        uint8_t *p = malloc(1 << 20);
        for (size_t off = 0; off < size; off += 1 << 20) {
                fill(p, 1 << 20, off, 4);
                assert_int_equal(write(fd, p, 1 << 20), 1 << 20);
        }
        free(p);
        close(fd);
        /* Warm up both paths once so their first-use allocations count
         * as baseline. */
        char small[160];
        make_file(path_in(small, sizeof small, "mem-small"), 600 * 1024, 1);
        vsock_conn *c = xdial();
        get_and_compare(c, small, 600 * 1024, VSOCK_CHECKSUM_AUTO);
        vsock_conn_close(c);

        long base = proc_hwm_kb(A->pid);
        assert_true(base > 0);
        c = xdial();
        get_and_compare(c, src, size, VSOCK_CHECKSUM_AUTO);
        fd = open(src, O_RDONLY | O_CLOEXEC);
        struct vsock_file_put_opts o = VSOCK_FILE_PUT_OPTS_INIT;
        o.fd = fd;
        struct vsock_file_put_result res;
        struct vsock_call call = VSOCK_CALL_INIT;
        int r = vsock_file_put(c, dst, &o, &call, &res);
        if (r < 0)
                fail_msg("file_put: %s (%s)", vsock_strerror(r), call.remote_error);
        close(fd);
        vsock_conn_close(c);
        long peak = proc_hwm_kb(A->pid);
        print_message("agent peak RSS %ld KiB before, %ld KiB after a 256 MiB FileGet and FilePut\n", base, peak);
        assert_true(peak - base < RSS_BOUND_KIB);
        unlink(src);
        unlink(dst);
}


/* ---- large files (the xfer-big suite: XFER_BIG=1) ------------------------------------------ */

static int sink_none(void *userdata, const void *data, size_t n) {
        (void) data;
        *(uint64_t *) userdata += n;
        return 0;
}

/* Room for @need bytes in Dir, or the test is skipped with the reason. */
static bool room_for(uint64_t need) {
        struct statvfs v;
        if (statvfs(Dir, &v) < 0)
                return false;
        uint64_t free_b = (uint64_t) v.f_bavail * v.f_frsize;
        if (free_b < need) {
                print_message("skipped: %s has %llu MiB free, the test needs %llu MiB\n", Dir,
                              (unsigned long long) (free_b >> 20), (unsigned long long) (need >> 20));
                return false;
        }
        return true;
}

/* Download @path to nowhere and upload it to @dst, checking digests and
 * the agent's peak memory (< 2 MiB over the transfer). */
/* Both ways with the default checksum (CRC-32C with our agent). */
static void big_roundtrip(const char *path, const char *dst, uint64_t size) {
        char want[CHECKSUM_HEX_MAX], got[CHECKSUM_HEX_MAX];
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        file_sum(fd, VSOCK_CHECKSUM_CRC32C, want);
        long base = proc_hwm_kb(A->pid);
        int64_t t0 = mono_ms();
        vsock_conn *c = xdial();
        uint64_t seen = 0;
        struct vsock_file_get_opts go = VSOCK_FILE_GET_OPTS_INIT;
        go.sink = sink_none;
        go.userdata = &seen;
        struct vsock_file_get_result gr;
        struct vsock_call call = VSOCK_CALL_INIT;
        int r = vsock_file_get(c, path, &go, &call, &gr);
        if (r < 0)
                fail_msg("file_get: %s (%s)", vsock_strerror(r), call.remote_error);
        assert_int_equal(seen, size);
        check_result_sum(VSOCK_CHECKSUM_AUTO, gr.checksum, gr.digest, gr.sha256, want);
        int64_t t1 = mono_ms();
        struct vsock_file_put_opts po = VSOCK_FILE_PUT_OPTS_INIT;
        po.fd = fd;
        struct vsock_file_put_result pr;
        r = vsock_file_put(c, dst, &po, &call, &pr);
        if (r < 0)
                fail_msg("file_put: %s (%s)", vsock_strerror(r), call.remote_error);
        int64_t t2 = mono_ms();
        vsock_conn_close(c);
        assert_int_equal(pr.size, size);
        check_result_sum(VSOCK_CHECKSUM_AUTO, pr.checksum, pr.digest, pr.sha256, want);
        path_sum(dst, VSOCK_CHECKSUM_CRC32C, got);
        assert_string_equal(got, want);
        long peak = proc_hwm_kb(A->pid);
        print_message("%llu MiB: get %lld ms, put %lld ms; agent peak RSS %ld -> %ld KiB\n",
                      (unsigned long long) (size >> 20), (long long) (t1 - t0), (long long) (t2 - t1), base, peak);
        assert_true(peak - base < RSS_BOUND_KIB);
        close(fd);
        unlink(dst);
}

static void test_big_sparse(void **state) {
        (void) state;
        uint64_t size = UINT64_C(4608) << 20; /* 4.5 GiB: past every 32-bit boundary */
        if (!room_for(size + (UINT64_C(512) << 20)))
                skip();
        char p[160], d[160];
        path_in(p, sizeof p, "sparse");
        path_in(d, sizeof d, "sparse-copy");
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        /* Some bytes at the far end and around 4 GiB, holes elsewhere. */
        assert_int_equal(pwrite(fd, "4GiB", 4, (off_t) (UINT64_C(1) << 32) - 2), 4);
        assert_int_equal(pwrite(fd, "end", 3, (off_t) size - 3), 3);
        close(fd);
        big_roundtrip(p, d, size);
        unlink(p);
}

static void test_big_real(void **state) {
        (void) state;
        uint64_t size = UINT64_C(1) << 30;
        if (!room_for(2 * size + (UINT64_C(512) << 20)))
                skip();
        char p[160], d[160];
        path_in(p, sizeof p, "real");
        path_in(d, sizeof d, "real-copy");
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        uint8_t *buf = malloc(1 << 20);
        for (uint64_t off = 0; off < size; off += 1 << 20) {
                fill(buf, 1 << 20, off, 77);
                assert_int_equal(write(fd, buf, 1 << 20), 1 << 20);
        }
        free(buf);
        close(fd);
        big_roundtrip(p, d, size);
        unlink(p);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_get, test_teardown),
                cmocka_unit_test_teardown(test_get_resume, test_teardown),
                cmocka_unit_test_teardown(test_get_partly_cached, test_teardown),
                cmocka_unit_test_teardown(test_get_length, test_teardown),
                cmocka_unit_test_teardown(test_get_errors, test_teardown),
                cmocka_unit_test_teardown(test_put, test_teardown),
                cmocka_unit_test_teardown(test_put_source, test_teardown),
                cmocka_unit_test_teardown(test_put_checksum, test_teardown),
                cmocka_unit_test_teardown(test_put_resume, test_teardown),
                cmocka_unit_test_teardown(test_put_errors, test_teardown),
                cmocka_unit_test_teardown(test_checksum_names, test_teardown),
                cmocka_unit_test_teardown(test_hostile_get_credit, test_teardown),
                cmocka_unit_test_teardown(test_hostile_put, test_teardown),
                cmocka_unit_test_teardown(test_tar_roundtrip, test_teardown),
                cmocka_unit_test_teardown(test_tar_put_escapes, test_teardown),
                cmocka_unit_test_teardown(test_tar_get_errors, test_teardown),
                cmocka_unit_test_teardown(test_memory, test_teardown),
        };
        const struct CMUnitTest big_tests[] = {
                cmocka_unit_test_teardown(test_big_sparse, test_teardown),
                cmocka_unit_test_teardown(test_big_real, test_teardown),
        };
        if (getenv("XFER_BIG"))
                return cmocka_run_group_tests(big_tests, group_setup, group_teardown);
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
