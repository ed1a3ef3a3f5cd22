/* Figures 3, 5 and 6: write_file/read_file, port-forward throughput, and
 * the agent's footprint (binary size, RSS, start-to-ready time). */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vsock/client.h>
#include <vsock/error.h>

#include "bench.h"

#define CALL_TIMEOUT_MS 60000
#define CHUNK (256u * 1024)

static struct vsock_call call_with_timeout(int ms) {
        struct vsock_call c = VSOCK_CALL_INIT;
        c.deadline_ns = vsock_deadline_in(ms);
        return c;
}

static int write_all(int fd, const void *p, size_t n) {
        const uint8_t *s = p;
        while (n > 0) {
                ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
                if (k < 0 && errno == ENOTSOCK)
                        k = write(fd, s, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                s += k;
                n -= (size_t) k;
        }
        return 0;
}

/* ---- 3: files ------------------------------------------------------------------ */

/* What the agent's write_file does to the disk, done locally: temporary
 * file, write, fsync, rename, fsync of the directory. */
static int64_t local_write(const char *dir, const char *path, const void *data, size_t len) {
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        int64_t t0 = mono_ns();
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        int r = write_all(fd, data, len);
        if (r == 0 && (fchmod(fd, 0644) < 0 || fsync(fd) < 0))
                r = -errno;
        close(fd);
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
                (void) fsync(dfd);
                close(dfd);
        }
        return r < 0 ? r : mono_ns() - t0;
}

static int64_t local_read(const char *path, size_t want) {
        int64_t t0 = mono_ns();
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        struct stat st;
        uint8_t *buf = NULL;
        size_t got = 0;
        if (fstat(fd, &st) == 0 && (buf = malloc((size_t) st.st_size + 1))) {
                ssize_t n;
                while ((n = read(fd, buf + got, (size_t) st.st_size + 1 - got)) > 0)
                        got += (size_t) n;
        }
        close(fd);
        free(buf);
        return got == want ? mono_ns() - t0 : -EIO;
}

static uint8_t *random_bytes(size_t n) {
        uint8_t *p = malloc(n);
        uint64_t x = 0x9e3779b97f4a7c15ull;
        for (size_t i = 0; p && i < n; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                p[i] = (uint8_t) x;
        }
        return p;
}

void fig_files(struct bench *b) {
        static const size_t sizes_mib[] = { 1, 8, 15 };
        struct agent a;
        if (agent_start(b, &a, "agent") < 0)
                return;
        int reps = b->file_reps;
        size_t max = 15u << 20;
        uint8_t *src = random_bytes(max);
        double *v[4];
        for (int i = 0; i < 4; i++)
                v[i] = calloc((size_t) reps, sizeof **v);
        if (!src || !v[0] || !v[1] || !v[2] || !v[3]) {
                bench_fail(b, "files: out of memory");
                goto out;
        }
        for (size_t s = 0; s < sizeof sizes_mib / sizeof sizes_mib[0]; s++) {
                size_t len = sizes_mib[s] << 20;
                char path[128], fpath[128];
                snprintf(path, sizeof path, "%s/file-%zu", b->dir, sizes_mib[s]);
                snprintf(fpath, sizeof fpath, "%s/floor-%zu", b->dir, sizes_mib[s]);
                size_t got = 0;
                for (int i = 0; i < reps; i++) {
                        /* Interleaved: local write, write_file, local read, read_file. */
                        int64_t fw = local_write(b->dir, fpath, src, len);
                        struct vsock_call call = call_with_timeout(CALL_TIMEOUT_MS);
                        int64_t t0 = mono_ns();
                        int r = vsock_write_file_at(a.exec_addr, path, src, len, 0644, &call);
                        int64_t w = mono_ns() - t0;
                        if (fw < 0 || r < 0) {
                                bench_fail(b, "write %zu MiB: local %s, write_file %s %s", sizes_mib[s],
                                           fw < 0 ? strerror((int) -fw) : "ok", r < 0 ? vsock_strerror(r) : "ok",
                                           call.remote_error);
                                break;
                        }
                        int64_t fr = local_read(fpath, len);
                        uint8_t *data = NULL;
                        size_t dlen = 0;
                        call = call_with_timeout(CALL_TIMEOUT_MS);
                        t0 = mono_ns();
                        r = vsock_read_file_at(a.exec_addr, path, &call, &data, &dlen);
                        int64_t rd = mono_ns() - t0;
                        bool same = r >= 0 && dlen == len && memcmp(data, src, len) == 0;
                        free(data);
                        if (fr < 0 || !same) {
                                bench_fail(b, "read %zu MiB: local %s, read_file %s %s", sizes_mib[s],
                                           fr < 0 ? strerror((int) -fr) : "ok",
                                           r < 0 ? vsock_strerror(r) : same ? "ok" : "content differs",
                                           call.remote_error);
                                break;
                        }
                        v[0][got] = (double) fw / 1e6;
                        v[1][got] = (double) w / 1e6;
                        v[2][got] = (double) fr / 1e6;
                        v[3][got] = (double) rd / 1e6;
                        got++;
                }
                if (got == 0)
                        continue;
                bool target = sizes_mib[s] == 8;
                char name[48];
                snprintf(name, sizeof name, "write_file %zu MiB, median", sizes_mib[s]);
                bench_row(b, name, stat_median(v[1], got), stat_median(v[0], got), "ms", target ? T_ABS_MAX : T_NONE,
                          20, "floor: local write+fsync+rename");
                snprintf(name, sizeof name, "read_file %zu MiB, median", sizes_mib[s]);
                bench_row(b, name, stat_median(v[3], got), stat_median(v[2], got), "ms", target ? T_ABS_MAX : T_NONE,
                          20, "floor: local read");
        }
out:
        for (int i = 0; i < 4; i++)
                free(v[i]);
        free(src);
        agent_stop(b, &a);
}

/* ---- 5: port forwarding ------------------------------------------------------ */

/* A loopback TCP peer on its own thread: the sink reads to EOF and answers
 * with the byte count; the source sends b->xfer_bytes and closes. */
struct tcp_peer {
        int sink, source, stop;
        uint16_t sink_port, source_port;
        uint64_t bytes;
        pthread_t thread;
};

int tcp_listen_loopback(uint16_t *ret_port) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t sl = sizeof sa;
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(fd, 16) < 0 ||
            getsockname(fd, (struct sockaddr *) &sa, &sl) < 0) {
                int e = errno;
                if (fd >= 0)
                        close(fd);
                return -e;
        }
        *ret_port = ntohs(sa.sin_port);
        return fd;
}

static void *tcp_peer_main(void *p) {
        struct tcp_peer *t = p;
        uint8_t *buf = calloc(1, CHUNK);
        for (;;) {
                struct pollfd pf[3] = { { t->sink, POLLIN, 0 }, { t->source, POLLIN, 0 }, { t->stop, POLLIN, 0 } };
                if (poll(pf, 3, -1) < 0 && errno != EINTR)
                        break;
                if (pf[2].revents || !buf)
                        break;
                if (pf[0].revents) {
                        int fd = accept4(t->sink, NULL, NULL, SOCK_CLOEXEC);
                        if (fd < 0)
                                continue;
                        uint64_t n = 0;
                        ssize_t k;
                        while ((k = read(fd, buf, CHUNK)) > 0)
                                n += (uint64_t) k;
                        (void) write_all(fd, &n, sizeof n);
                        close(fd);
                }
                if (pf[1].revents) {
                        int fd = accept4(t->source, NULL, NULL, SOCK_CLOEXEC);
                        if (fd < 0)
                                continue;
                        for (uint64_t left = t->bytes; left > 0;) {
                                size_t k = left < CHUNK ? (size_t) left : CHUNK;
                                if (write_all(fd, buf, k) < 0)
                                        break;
                                left -= k;
                        }
                        close(fd);
                }
        }
        free(buf);
        return NULL;
}

static int tcp_connect(uint16_t port) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                int e = errno;
                if (fd >= 0)
                        close(fd);
                return -e;
        }
        return fd;
}

/* How a bench connection reaches the TCP peer: directly (the floor), by
 * the base PortForward, or by the FwdConnect extension. */
enum pf_via { VIA_TCP, VIA_PORT_FORWARD, VIA_FWD_CONNECT };
static const char *const via_names[] = { "tcp", "port-forward", "fwd-connect" };

static int pf_connect(struct bench *b, const struct agent *a, enum pf_via via, uint16_t port) {
        if (via == VIA_TCP) {
                int fd = tcp_connect(port);
                if (fd < 0)
                        bench_fail(b, "tcp connect: %s", strerror(-fd));
                return fd;
        }
        struct vsock_call call = call_with_timeout(CALL_TIMEOUT_MS);
        vsock_conn *c = NULL;
        int r;
        if (via == VIA_PORT_FORWARD)
                r = vsock_open_port_forward_at(a->exec_addr, "127.0.0.1", port, &call, &c);
        else if ((r = vsock_dial_str(a->exec_addr, 0, CALL_TIMEOUT_MS, -1, &c)) >= 0) {
                r = vsock_fwd_connect(c, "127.0.0.1", port, NULL, &call);
                if (r < 0)
                        (void) vsock_conn_close(c);
        }
        if (r < 0) {
                bench_fail(b, "%s to %u: %s %s", via_names[via], port, vsock_strerror(r), call.remote_error);
                return r;
        }
        int fd = vsock_conn_release_fd(c);
        int fl = fcntl(fd, F_GETFL);
        (void) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
        return fd;
}

/* Upload: send everything, half-close, wait for the sink's count. */
static double pf_upload(struct bench *b, const struct agent *a, enum pf_via via, struct tcp_peer *t,
                        const uint8_t *buf) {
        int64_t t0 = mono_ns();
        int fd = pf_connect(b, a, via, t->sink_port);
        if (fd < 0)
                return NAN;
        int r = 0;
        for (uint64_t left = t->bytes; left > 0 && r == 0;) {
                size_t k = left < CHUNK ? (size_t) left : CHUNK;
                r = write_all(fd, buf, k);
                left -= k;
        }
        uint64_t n = 0;
        if (r == 0 && shutdown(fd, SHUT_WR) < 0)
                r = -errno;
        if (r == 0 && read(fd, &n, sizeof n) != (ssize_t) sizeof n)
                r = -EIO;
        int64_t dt = mono_ns() - t0;
        close(fd);
        if (r < 0 || n != t->bytes) {
                bench_fail(b, "%s upload: %s, %llu bytes arrived", via_names[via],
                           r < 0 ? strerror(-r) : "ok", (unsigned long long) n);
                return NAN;
        }
        return (double) n / MIB / ((double) dt / 1e9);
}

static double pf_download(struct bench *b, const struct agent *a, enum pf_via via, struct tcp_peer *t,
                          uint8_t *buf) {
        int64_t t0 = mono_ns();
        int fd = pf_connect(b, a, via, t->source_port);
        if (fd < 0)
                return NAN;
        uint64_t n = 0;
        ssize_t k;
        while ((k = read(fd, buf, CHUNK)) > 0)
                n += (uint64_t) k;
        int64_t dt = mono_ns() - t0;
        close(fd);
        if (k < 0 || n != t->bytes) {
                bench_fail(b, "%s download: %s, %llu bytes", via_names[via], k < 0 ? strerror(errno) : "ok",
                           (unsigned long long) n);
                return NAN;
        }
        return (double) n / MIB / ((double) dt / 1e9);
}

void fig_port_forward(struct bench *b) {
        struct tcp_peer t = { .sink = -1, .source = -1, .stop = -1, .bytes = b->xfer_bytes };
        struct agent a;
        uint8_t *buf = calloc(1, CHUNK);
        t.sink = tcp_listen_loopback(&t.sink_port);
        t.source = tcp_listen_loopback(&t.source_port);
        t.stop = eventfd(0, EFD_CLOEXEC);
        if (!buf || t.sink < 0 || t.source < 0 || t.stop < 0 ||
            pthread_create(&t.thread, NULL, tcp_peer_main, &t) != 0) {
                bench_fail(b, "port forward: cannot set up the TCP peer");
                goto out;
        }
        if (agent_start(b, &a, "agent") == 0) {
                /* [via][0]: upload, [via][1]: download; interleaved. */
                double best[3][2] = { { NAN, NAN }, { NAN, NAN }, { NAN, NAN } };
                for (int rep = 0; rep < b->xfer_reps && b->errors == 0; rep++)
                        for (int via = VIA_TCP; via <= VIA_FWD_CONNECT; via++) {
                                keep_best(&best[via][0], pf_upload(b, &a, (enum pf_via) via, &t, buf));
                                keep_best(&best[via][1], pf_download(b, &a, (enum pf_via) via, &t, buf));
                        }
                bench_row(b, "port-forward upload vs direct TCP", best[VIA_PORT_FORWARD][0], best[VIA_TCP][0], "MiB/s",
                          T_RATIO_MIN, 0.5, NULL);
                bench_row(b, "port-forward download vs direct TCP", best[VIA_PORT_FORWARD][1], best[VIA_TCP][1],
                          "MiB/s", T_RATIO_MIN, 0.5, NULL);
                /* The extension's forward beside the base one it extends. */
                bench_row(b, "fwd-connect upload", best[VIA_FWD_CONNECT][0], best[VIA_PORT_FORWARD][0], "MiB/s",
                          T_NONE, 0, "floor: port-forward upload");
                bench_row(b, "fwd-connect download", best[VIA_FWD_CONNECT][1], best[VIA_PORT_FORWARD][1], "MiB/s",
                          T_NONE, 0, "floor: port-forward download");
                agent_stop(b, &a);
        }
        uint64_t one = 1;
        (void) !write(t.stop, &one, sizeof one);
        pthread_join(t.thread, NULL);
out:
        if (t.sink >= 0)
                close(t.sink);
        if (t.source >= 0)
                close(t.source);
        if (t.stop >= 0)
                close(t.stop);
        free(buf);
}

/* ---- 6: the agent itself ------------------------------------------------------- */

static int copy_file(const char *from, const char *to) {
        int in = open(from, O_RDONLY | O_CLOEXEC);
        if (in < 0)
                return -errno;
        int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
        if (out < 0) {
                int e = errno;
                close(in);
                return -e;
        }
        uint8_t buf[65536];
        ssize_t n;
        int r = 0;
        while (r == 0 && (n = read(in, buf, sizeof buf)) != 0)
                r = n < 0 ? -errno : write_all(out, buf, (size_t) n);
        close(in);
        if (close(out) < 0 && r == 0)
                r = -errno;
        return r;
}

/* A dynamically linked binary has a PT_INTERP program header. */
static bool elf_is_static(const char *path) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        Elf64_Ehdr eh;
        bool is_static = false;
        if (fd >= 0 && pread(fd, &eh, sizeof eh, 0) == (ssize_t) sizeof eh &&
            memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 && eh.e_ident[EI_CLASS] == ELFCLASS64) {
                is_static = true;
                for (int i = 0; i < eh.e_phnum; i++) {
                        Elf64_Phdr ph;
                        if (pread(fd, &ph, sizeof ph, (off_t) (eh.e_phoff + (size_t) i * eh.e_phentsize)) !=
                            (ssize_t) sizeof ph)
                                break;
                        if (ph.p_type == PT_INTERP)
                                is_static = false;
                }
        }
        if (fd >= 0)
                close(fd);
        return is_static;
}

static void agent_size(struct bench *b) {
        char copy[128];
        snprintf(copy, sizeof copy, "%s/vsock-agent.stripped", b->dir);
        int r = copy_file(b->agent_path, copy);
        char *argv[] = { "strip", copy, NULL };
        int64_t s = r < 0 ? r : spawn_wait(argv, -1);
        struct stat st;
        if (s < 0 || stat(copy, &st) < 0) {
                bench_fail(b, "strip a copy of %s: %s", b->agent_path, strerror(s < 0 ? (int) -s : errno));
                return;
        }
        bench_row(b, "agent binary, stripped", (double) st.st_size / KIB, NAN, "KiB", T_ABS_MAX, 1024,
                  elf_is_static(copy) ? "static" : "dynamic (size excludes shared libraries)");
}

void fig_agent(struct bench *b) {
        agent_size(b);

        /* Start-to-ready against the bare start of the same binary. */
        int n = b->ready_starts;
        double *ready = calloc((size_t) n, sizeof *ready), *floor = calloc((size_t) n, sizeof *floor);
        size_t got = 0;
        char *version[] = { (char *) b->agent_path, "--version", NULL };
        for (int i = 0; ready && floor && i < n; i++) {
                int64_t f = spawn_wait(version, -1);
                struct agent a;
                if (f < 0 || agent_start(b, &a, "agent") < 0)
                        break;
                floor[got] = (double) f / 1e6;
                ready[got++] = a.ready_ms;
                agent_stop(b, &a);
        }
        if (got > 0)
                bench_row(b, "agent start to ready, median", stat_median(ready, got), stat_median(floor, got), "ms",
                          T_ABS_MAX, 5, "floor: agent --version");
        free(ready);
        free(floor);

        /* Idle RSS of a fresh agent, then again after large reads. */
        struct agent a;
        if (agent_start(b, &a, "agent") < 0)
                return;
        sleep_ms(100);
        long idle = agent_status_kib(&a, "VmRSS");
        size_t len = 15u << 20;
        uint8_t *src = random_bytes(len);
        char path[128], dir[128];
        snprintf(path, sizeof path, "%s/big", b->dir);
        snprintf(dir, sizeof dir, "%s", b->dir);
        int64_t w = src ? local_write(dir, path, src, len) : -ENOMEM;
        free(src);
        if (w < 0)
                bench_fail(b, "write %s: %s", path, strerror((int) -w));
        for (int i = 0; w >= 0 && i < b->big_reads; i++) {
                struct vsock_call call = call_with_timeout(CALL_TIMEOUT_MS);
                uint8_t *data = NULL;
                size_t dlen = 0;
                int r = vsock_read_file_at(a.exec_addr, path, &call, &data, &dlen);
                free(data);
                if (r < 0 || dlen != len) {
                        bench_fail(b, "read_file 15 MiB: %s %s (%zu bytes)", vsock_strerror(r), call.remote_error, dlen);
                        break;
                }
        }
        /* The last reply may still be in flight inside the agent. */
        sleep_ms(200);
        long after = agent_status_kib(&a, "VmRSS");
        long hwm = agent_status_kib(&a, "VmHWM");
        bench_row(b, "agent idle RSS", (double) idle, NAN, "KiB", T_ABS_MAX, 1024, NULL);
        char name[48];
        snprintf(name, sizeof name, "agent RSS after %d x 15 MiB reads", b->big_reads);
        bench_row(b, name, (double) after, (double) idle, "KiB", T_RATIO_MAX, 1.10, "floor: idle");
        bench_row(b, "agent peak RSS (VmHWM)", (double) hwm, NAN, "KiB", T_NONE, 0, NULL);
        agent_stop(b, &a);
}
