/* Streaming files (PROTOCOL.md 2.5): FileGet and FilePut of a large file
 * (b->xfer_bytes) through the real agent, beside the floor measured in the
 * same run: reading the file from the page cache (`cat file > /dev/null`)
 * plus copying as many bytes through a unix socket, i.e. the two copies
 * no implementation avoids. Target: >= 0.8x the floor's throughput.
 *
 * FileGet's bytes go nowhere on the host (as the floor's); FilePut's go
 * to a file in the guest, synced before the rename (the figure includes
 * that fsync, the floor does not, so it is informational). Each is run
 * with the default checksum (CRC-32C with our agent: the target row) and
 * with SHA-256; figures are medians of the runs, each run next to a floor
 * measured just before it. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vsock/client.h>
#include <vsock/error.h>

#include "bench.h"

#define PIECE (256u * 1024)

struct sock_writer {
        int fd;
        uint64_t bytes;
        const uint8_t *buf;
};

static void *sock_writer_main(void *p) {
        struct sock_writer *w = p;
        for (uint64_t off = 0; off < w->bytes;) {
                size_t n = w->bytes - off < PIECE ? (size_t) (w->bytes - off) : PIECE;
                ssize_t k = write(w->fd, w->buf, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                off += (uint64_t) k;
        }
        close(w->fd);
        return NULL;
}

/* Copy @bytes through a unix stream socket (a writer thread, this thread
 * reading): ns, or < 0. */
static int64_t socket_copy(uint64_t bytes) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        uint8_t *out = calloc(1, PIECE), *in = malloc(PIECE);
        struct sock_writer w = { sv[1], bytes, out };
        pthread_t t;
        int64_t t0 = mono_ns();
        if (!out || !in || pthread_create(&t, NULL, sock_writer_main, &w) != 0) {
                free(out);
                free(in);
                close(sv[0]);
                close(sv[1]);
                return -ENOMEM;
        }
        uint64_t got = 0;
        for (;;) {
                ssize_t k = read(sv[0], in, PIECE);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                got += (uint64_t) k;
        }
        int64_t dt = mono_ns() - t0;
        pthread_join(t, NULL);
        close(sv[0]);
        free(out);
        free(in);
        return got == bytes ? dt : -EIO;
}

static int sink_count(void *userdata, const void *data, size_t n) {
        (void) data;
        *(uint64_t *) userdata += n;
        return 0;
}

static int make_file(const char *path, uint64_t bytes) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        uint8_t *p = malloc(1u << 20);
        uint64_t x = 88172645463325252ull;
        int r = p ? 0 : -ENOMEM;
        for (uint64_t off = 0; r == 0 && off < bytes; off += 1u << 20) {
                for (size_t i = 0; i < 1u << 20; i += 8) {
                        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                        memcpy(p + i, &x, 8);
                }
                size_t n = bytes - off < (1u << 20) ? (size_t) (bytes - off) : 1u << 20;
                if (write(fd, p, n) != (ssize_t) n)
                        r = -EIO;
        }
        free(p);
        close(fd);
        return r;
}

static double mib_s(uint64_t bytes, int64_t ns) { return ns > 0 ? (double) bytes / MIB / ((double) ns / 1e9) : 0; }

/* One download (@alg) of @src on a fresh connection: ns, or < 0 (the
 * failure counted). The algorithm used goes to *ret_used. */
static int64_t one_get(struct bench *b, const struct agent *a, const char *src, uint64_t bytes,
                       enum vsock_checksum alg, enum vsock_checksum *ret_used) {
        vsock_conn *c = NULL;
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_deadline_in(600000);
        uint64_t seen = 0;
        struct vsock_file_get_opts go = VSOCK_FILE_GET_OPTS_INIT;
        go.sink = sink_count;
        go.userdata = &seen;
        go.checksum = alg;
        struct vsock_file_get_result gr;
        int64_t t0 = mono_ns();
        int r = vsock_dial_str(a->exec_addr, 5000, 10000, -1, &c);
        if (r >= 0)
                r = vsock_file_get(c, src, &go, &call, &gr);
        int64_t dt = mono_ns() - t0;
        vsock_conn_close(c);
        if (r < 0 || seen != bytes) {
                bench_fail(b, "file_get: %s %s", r < 0 ? vsock_strerror(r) : "short", call.remote_error);
                return -1;
        }
        *ret_used = gr.checksum;
        return dt;
}

/* One upload of @src to @dst (replaced, then removed): ns, or < 0. */
static int64_t one_put(struct bench *b, const struct agent *a, const char *src, const char *dst,
                       enum vsock_checksum alg, enum vsock_checksum *ret_used) {
        vsock_conn *c = NULL;
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_deadline_in(600000);
        int fd = open(src, O_RDONLY | O_CLOEXEC);
        struct vsock_file_put_opts po = VSOCK_FILE_PUT_OPTS_INIT;
        po.fd = fd;
        po.checksum = alg;
        struct vsock_file_put_result pr;
        int64_t t0 = mono_ns();
        int r = fd < 0 ? -errno : vsock_dial_str(a->exec_addr, 5000, 10000, -1, &c);
        if (r >= 0)
                r = vsock_file_put(c, dst, &po, &call, &pr);
        int64_t dt = mono_ns() - t0;
        if (fd >= 0)
                close(fd);
        vsock_conn_close(c);
        unlink(dst);
        if (r < 0) {
                bench_fail(b, "file_put: %s %s", vsock_strerror(r), call.remote_error);
                return -1;
        }
        *ret_used = pr.checksum;
        return dt;
}

enum { X_GET_DEFAULT, X_GET_SHA256, X_PUT_DEFAULT, X_PUT_SHA256, X_N };

void fig_xfer(struct bench *b) {
        uint64_t bytes = b->xfer_bytes;
        char src[128], dst[128];
        snprintf(src, sizeof src, "%s/xfer-src", b->dir);
        snprintf(dst, sizeof dst, "%s/xfer-dst", b->dir);
        int r = make_file(src, bytes);
        if (r < 0) {
                bench_fail(b, "xfer: cannot make %s: %s", src, strerror(-r));
                return;
        }
        struct agent a;
        if (agent_start(b, &a, "agent") < 0)
                return;
        int reps = b->xfer_reps;
        printf("  %llu MiB, median of %d\n", (unsigned long long) (bytes >> 20), reps);
        double *floor = calloc((size_t) reps, sizeof *floor), *fig[X_N];
        for (int k = 0; k < X_N; k++)
                fig[k] = calloc((size_t) reps, sizeof *fig[k]);
        /* What each figure asks for, and what the default must turn out to
         * be with our agent (it has checksum-crc32c). */
        static const enum vsock_checksum ask[X_N] = { VSOCK_CHECKSUM_AUTO, VSOCK_CHECKSUM_SHA256, VSOCK_CHECKSUM_AUTO,
                                                      VSOCK_CHECKSUM_SHA256 };
        static const enum vsock_checksum want[X_N] = { VSOCK_CHECKSUM_CRC32C, VSOCK_CHECKSUM_SHA256,
                                                       VSOCK_CHECKSUM_CRC32C, VSOCK_CHECKSUM_SHA256 };
        int done = 0;
        for (int rep = 0; rep < reps && b->errors == 0 && floor && fig[X_N - 1]; rep++) {
                /* The floor, interleaved with the figures. */
                char *cat[] = { "cat", src, NULL };
                int64_t tc = spawn_wait(cat, -1), ts = socket_copy(bytes);
                if (tc < 0 || ts < 0) {
                        bench_fail(b, "xfer floor: cat %s, socket copy %s", tc < 0 ? strerror((int) -tc) : "ok",
                                   ts < 0 ? strerror((int) -ts) : "ok");
                        break;
                }
                floor[rep] = mib_s(bytes, tc + ts);
                for (int k = 0; k < X_N && b->errors == 0; k++) {
                        enum vsock_checksum used = VSOCK_CHECKSUM_AUTO;
                        int64_t t = k < X_PUT_DEFAULT ? one_get(b, &a, src, bytes, ask[k], &used)
                                                      : one_put(b, &a, src, dst, ask[k], &used);
                        if (t >= 0 && used != want[k])
                                bench_fail(b, "xfer: checksum %d used where %d was expected", (int) used, (int) want[k]);
                        fig[k][rep] = mib_s(bytes, t);
                }
                if (b->errors == 0)
                        done++;
        }
        if (done > 0) {
                double fl = stat_median(floor, (size_t) done);
                bench_row(b, "xfer floor", fl, 0, "MiB/s", T_NONE, 0, "cat file >/dev/null + unix socket copy");
                bench_row(b, "file_get (default: crc32c)", stat_median(fig[X_GET_DEFAULT], (size_t) done), fl, "MiB/s",
                          T_RATIO_MIN, 0.8, "vsockctl cp's default; floor as above");
                bench_row(b, "file_get --checksum=sha256", stat_median(fig[X_GET_SHA256], (size_t) done), fl, "MiB/s",
                          T_NONE, 0, NULL);
                bench_row(b, "file_put (default: crc32c)", stat_median(fig[X_PUT_DEFAULT], (size_t) done), fl, "MiB/s",
                          T_NONE, 0, "includes the agent's fsync");
                bench_row(b, "file_put --checksum=sha256", stat_median(fig[X_PUT_SHA256], (size_t) done), fl, "MiB/s",
                          T_NONE, 0, "includes the agent's fsync");
        }
        free(floor);
        for (int k = 0; k < X_N; k++)
                free(fig[k]);
        long hwm = agent_status_kib(&a, "VmHWM");
        bench_row(b, "agent peak RSS after the transfers", (double) hwm, 0, "KiB", T_NONE, 0, NULL);
        agent_stop(b, &a);
        unlink(src);
}
