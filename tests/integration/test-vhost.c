/* The real vsock-vhost ($VHOST) driven as QEMU would drive it: a fake
 * front-end over the vhost-user socket (features, owner, config space,
 * memory table of a memfd, vrings with eventfds, REPLY_ACK) and a fake
 * guest driver in that memory, with host processes on the hybrid socket.
 * Also: readiness through $NOTIFY_SOCKET, refused requests, a second
 * front-end, a front-end that breaks the framing or disappears, a guest
 * that breaks its ring, and SIGTERM. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake-driver.h"
#include "proc-util.h"
#include "vhost/virtio.h"
#include "vhost/vumsg.h"

#define MEM (16u << 20)
#define NUM 128
#define CID 7
#define BOUND_MS 20000

struct env {
        pid_t pid;
        char dir[64];
        char vhost[96], uds[96], notify[96];
        int fe;                 /* the front-end's socket */
        int memfd;
        uint8_t *ram;
        struct fdrv_mem fm;
        struct fdrv_vsock g;
        int kick[2], call[2];
};

/* ---- the process ------------------------------------------------------------ */

static bool wait_readable(int fd, int ms) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int64_t end = mono_ms() + ms;
        for (;;) {
                int left = (int) (end - mono_ms());
                if (left < 0)
                        return false;
                int r = poll(&p, 1, left);
                if (r > 0)
                        return true;
                if (r == 0)
                        return false;
                if (errno != EINTR)
                        return false;
        }
}

/* Start $VHOST on the test's sockets, or with @fd (>= 0) as its vhost-user
 * socket (--fd 3), and wait until it says READY=1. */
static pid_t start_vhost(struct env *e, int fd) {
        int ns = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", e->notify);
        unlink(e->notify);
        assert_int_equal(bind(ns, (struct sockaddr *) &sa, sizeof sa), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                /* A test that dies must not leave it holding the test's
                 * output pipe open (meson would wait for it). */
                (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
                setenv("NOTIFY_SOCKET", e->notify, 1);
                char cid[16];
                snprintf(cid, sizeof cid, "%d", CID);
                if (fd >= 0) {
                        if (dup2(fd, 3) < 0)
                                _exit(127);
                        execl(getenv("VHOST"), "vsock-vhost", "--fd", "3", "--uds-path", e->uds, "--guest-cid", cid,
                              (char *) NULL);
                } else
                        execl(getenv("VHOST"), "vsock-vhost", "--socket-path", e->vhost, "--uds-path", e->uds,
                              "--guest-cid", cid, (char *) NULL);
                _exit(127);
        }
        /* READY=1 once both sockets listen: no polling for the files. */
        assert_true(wait_readable(ns, BOUND_MS));
        char msg[32] = { 0 };
        assert_true(recv(ns, msg, sizeof msg - 1, 0) > 0);
        assert_string_equal(msg, "READY=1");
        close(ns);
        return pid;
}

/* Run $VHOST with @args to its end: its exit status and output. */
static int run_vhost(const char *const *args, char *out, size_t size) {
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
                dup2(p[1], 1);
                dup2(p[1], 2);
                const char *argv[16] = { "vsock-vhost" };
                for (int i = 0; args[i] && i < 14; i++)
                        argv[i + 1] = args[i];
                execv(getenv("VHOST"), (char **) argv);
                _exit(127);
        }
        close(p[1]);
        size_t n = 0;
        for (ssize_t k; wait_readable(p[0], BOUND_MS) && (k = read(p[0], out + n, size - 1 - n)) > 0;)
                n += (size_t) k;
        out[n] = 0;
        close(p[0]);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int stop_vhost(pid_t pid) {
        kill(pid, SIGTERM);
        int st;
        int64_t end = mono_ms() + BOUND_MS;
        while (waitpid(pid, &st, WNOHANG) == 0) {
                if (mono_ms() > end) {
                        kill(pid, SIGKILL);
                        waitpid(pid, &st, 0);
                        return -1;
                }
                pause_ms(10);
        }
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* @fd (consumed) ends with EOF, within the bound. */
static void expect_eof(int fd) {
        assert_true(wait_readable(fd, BOUND_MS));
        char c;
        assert_int_equal(recv(fd, &c, 1, 0), 0);
        close(fd);
}

static int dial(const char *path) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        return fd;
}

/* ---- the front-end ------------------------------------------------------------- */

static void fe_send(int fe, uint32_t req, uint32_t flags, const void *payload, uint32_t size, const int *fds,
                    unsigned nfds) {
        uint8_t buf[VU_HDR_SIZE + 512];
        uint32_t h[3] = { req, VU_VERSION | flags, size };
        memcpy(buf, h, 12);
        if (size)
                memcpy(buf + 12, payload, size);
        assert_int_equal(fdrv_send_fds(fe, buf, 12 + size, fds, nfds), (ssize_t) (12 + size));
}

/* The reply to @req: its payload size, or -1 if the back-end hung up. */
static int fe_reply(int fe, uint32_t req, void *payload, uint32_t cap) {
        assert_true(wait_readable(fe, BOUND_MS));
        uint32_t h[3];
        ssize_t n = recv(fe, h, sizeof h, MSG_WAITALL);
        if (n == 0)
                return -1;
        assert_int_equal(n, 12);
        assert_int_equal(h[0], req);
        assert_int_equal(h[1], VU_VERSION | VU_FLAG_REPLY);
        assert_true(h[2] <= cap);
        if (h[2])
                assert_int_equal(recv(fe, payload, h[2], MSG_WAITALL), (ssize_t) h[2]);
        return (int) h[2];
}

static uint64_t fe_get_u64(int fe, uint32_t req) {
        fe_send(fe, req, 0, NULL, 0, NULL, 0);
        uint64_t v = 0;
        assert_int_equal(fe_reply(fe, req, &v, sizeof v), 8);
        return v;
}

/* Send with NEED_REPLY and return the ack (0 = done). */
static uint64_t fe_ack(int fe, uint32_t req, const void *payload, uint32_t size, const int *fds, unsigned nfds) {
        fe_send(fe, req, VU_FLAG_NEED_REPLY, payload, size, fds, nfds);
        uint64_t v = 99;
        assert_int_equal(fe_reply(fe, req, &v, sizeof v), 8);
        return v;
}

static uint64_t fe_ack_u64(int fe, uint32_t req, uint64_t v) { return fe_ack(fe, req, &v, 8, NULL, 0); }

static uint64_t fe_ack_state(int fe, uint32_t req, uint32_t idx, uint32_t num) {
        struct vu_vring_state s = { idx, num };
        return fe_ack(fe, req, &s, sizeof s, NULL, 0);
}

static uint64_t uva(const struct env *e, uint64_t gpa) { return (uint64_t) (uintptr_t) e->ram + gpa; }

static void setup_ring(struct env *e, uint32_t idx, const struct fdrv_q *q) {
        assert_int_equal(fe_ack_state(e->fe, VU_SET_VRING_NUM, idx, q->num), 0);
        assert_int_equal(fe_ack_state(e->fe, VU_SET_VRING_BASE, idx, 0), 0);
        struct vu_vring_addr a = { .index = idx, .desc = uva(e, q->desc), .used = uva(e, q->used),
                                   .avail = uva(e, q->avail) };
        assert_int_equal(fe_ack(e->fe, VU_SET_VRING_ADDR, &a, sizeof a, NULL, 0), 0);
        uint64_t u = idx;
        assert_int_equal(fe_ack(e->fe, VU_SET_VRING_KICK, &u, 8, &e->kick[idx], 1), 0);
        assert_int_equal(fe_ack(e->fe, VU_SET_VRING_CALL, &u, 8, &e->call[idx], 1), 0);
        assert_int_equal(fe_ack_state(e->fe, VU_SET_VRING_ENABLE, idx, 1), 0);
}

/* What QEMU does when the guest's driver starts: features, memory table,
 * rings with fresh eventfds, in a fresh guest. */
static void frontend_rings(struct env *e) {
        memset(e->ram, 0, MEM);
        assert_int_equal(fe_ack_u64(e->fe, VU_SET_FEATURES, fe_get_u64(e->fe, VU_GET_FEATURES)), 0);

        struct {
                uint32_t n, pad;
                struct vu_mem_region r;
        } mt = { 1, 0, { 0, MEM, (uint64_t) (uintptr_t) e->ram, 0 } };
        assert_int_equal(fe_ack(e->fe, VU_SET_MEM_TABLE, &mt, sizeof mt, &e->memfd, 1), 0);

        fdrv_mem_init(&e->fm, e->ram, 0, MEM);
        e->fm.brk = 4096; /* keep guest-physical 0 unused */
        fdrv_vsock_init(&e->g, &e->fm, NUM, CID);
        for (int i = 0; i < 2; i++) {
                e->kick[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                e->call[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        }
        assert_int_equal(fdrv_post_rx(&e->g, NUM / 2), NUM / 2);
        setup_ring(e, VSOCK_VQ_RX, &e->g.rx);
        setup_ring(e, VSOCK_VQ_TX, &e->g.tx);
}

static void close_eventfds(struct env *e) {
        for (int i = 0; i < 2; i++) {
                close(e->kick[i]);
                close(e->call[i]);
        }
}

/* Connect and negotiate as QEMU does at start-up, then start the rings:
 * the device is live afterwards. */
static void frontend_start(struct env *e) {
        e->fe = dial(e->vhost);
        uint64_t f = fe_get_u64(e->fe, VU_GET_FEATURES);
        assert_true(f & (1ull << VIRTIO_F_VERSION_1));
        assert_true(f & (1ull << VHOST_USER_F_PROTOCOL_FEATURES));
        uint64_t pf = fe_get_u64(e->fe, VU_GET_PROTOCOL_FEATURES);
        assert_true(pf & (1ull << VU_PROTOCOL_F_REPLY_ACK));
        assert_true(pf & (1ull << VU_PROTOCOL_F_CONFIG));
        uint64_t want = (1ull << VU_PROTOCOL_F_REPLY_ACK) | (1ull << VU_PROTOCOL_F_CONFIG) |
                        (1ull << VU_PROTOCOL_F_RESET_DEVICE);
        fe_send(e->fe, VU_SET_PROTOCOL_FEATURES, 0, &want, 8, NULL, 0);
        assert_int_equal(fe_ack(e->fe, VU_SET_OWNER, NULL, 0, NULL, 0), 0);
        frontend_rings(e);
}

static void frontend_stop(struct env *e) {
        close(e->fe);
        close_eventfds(e);
}

static void guest_kick(struct env *e, int q) {
        uint64_t one = 1;
        assert_int_equal(write(e->kick[q], &one, 8), 8);
}

/* The next packet to the guest: wait for the rx interrupt if needed. */
static struct vsock_hdr guest_recv(struct env *e, void *payload, size_t cap, uint32_t *len) {
        int64_t end = mono_ms() + BOUND_MS;
        struct vsock_hdr h;
        while (!fdrv_recv(&e->g, &h, payload, cap, len)) {
                assert_true(mono_ms() < end);
                assert_true(wait_readable(e->call[VSOCK_VQ_RX], (int) (end - mono_ms())));
                uint64_t v;
                (void) !read(e->call[VSOCK_VQ_RX], &v, 8);
        }
        /* The buffer fdrv_recv posted again. */
        guest_kick(e, VSOCK_VQ_RX);
        return h;
}

static void guest_send(struct env *e, struct vsock_hdr h, const void *p, uint32_t len) {
        fdrv_reap_tx(&e->g);
        h.len = len;
        assert_true(fdrv_send(&e->g, &h, p, len) >= 0);
        guest_kick(e, VSOCK_VQ_TX);
}

static int setup(void **state) {
        struct env *e = calloc(1, sizeof *e);
        snprintf(e->dir, sizeof e->dir, "/tmp/test-vhost-XXXXXX");
        assert_non_null(mkdtemp(e->dir));
        snprintf(e->vhost, sizeof e->vhost, "%s/vhost.sock", e->dir);
        snprintf(e->uds, sizeof e->uds, "%s/v.sock", e->dir);
        snprintf(e->notify, sizeof e->notify, "%s/notify", e->dir);
        e->memfd = memfd_create("guest-ram", MFD_CLOEXEC);
        assert_true(e->memfd >= 0);
        assert_int_equal(ftruncate(e->memfd, MEM), 0);
        e->ram = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_SHARED, e->memfd, 0);
        assert_true(e->ram != MAP_FAILED);
        e->pid = start_vhost(e, -1);
        *state = e;
        return 0;
}

static int teardown(void **state) {
        struct env *e = *state;
        if (e->pid > 0)
                assert_int_equal(stop_vhost(e->pid), 0);
        munmap(e->ram, MEM);
        close(e->memfd);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
        (void) !system(cmd);
        free(e);
        return 0;
}

/* A host process connects to guest port @port; the guest accepts. */
static int host_connect(struct env *e, uint32_t port, uint32_t *ret_local) {
        int fd = dial(e->uds);
        char cmd[32];
        int n = snprintf(cmd, sizeof cmd, "CONNECT %u\n", port);
        assert_int_equal(write(fd, cmd, (size_t) n), n);
        struct vsock_hdr h = guest_recv(e, NULL, 0, NULL);
        assert_int_equal(h.op, VSOCK_OP_REQUEST);
        assert_int_equal(h.dst_cid, CID);
        assert_int_equal(h.dst_port, port);
        struct vsock_hdr r = fdrv_hdr(&e->g, VSOCK_OP_RESPONSE, port, h.src_port);
        guest_send(e, r, NULL, 0);
        char ok[32] = { 0 }, want[32];
        int wn = snprintf(want, sizeof want, "OK %u\n", h.src_port);
        assert_true(wait_readable(fd, BOUND_MS));
        assert_int_equal(recv(fd, ok, (size_t) wn, MSG_WAITALL), wn);
        assert_string_equal(ok, want);
        *ret_local = h.src_port;
        return fd;
}

/* ---- the cases ------------------------------------------------------------------ */

static void test_protocol(void **state) {
        struct env *e = *state;
        e->fe = dial(e->vhost);
        uint64_t f = fe_get_u64(e->fe, VU_GET_FEATURES);
        assert_int_equal(f, (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_INDIRECT_DESC) |
                                    (1ull << VHOST_USER_F_PROTOCOL_FEATURES));
        uint64_t want = (1ull << VU_PROTOCOL_F_REPLY_ACK) | (1ull << VU_PROTOCOL_F_CONFIG);
        fe_send(e->fe, VU_SET_PROTOCOL_FEATURES, 0, &want, 8, NULL, 0);

        /* The config space is the guest CID, le64, in whole or in part. */
        struct {
                struct vu_config_hdr h;
                uint8_t data[8];
        } cfg = { { 0, 8, 0 }, { 0 } }, back;
        fe_send(e->fe, VU_GET_CONFIG, 0, &cfg, sizeof cfg, NULL, 0);
        assert_int_equal(fe_reply(e->fe, VU_GET_CONFIG, &back, sizeof back), 20);
        assert_int_equal(back.h.size, 8);
        const uint8_t cid_le[8] = { CID, 0, 0, 0, 0, 0, 0, 0 };
        assert_memory_equal(back.data, cid_le, 8);
        struct {
                struct vu_config_hdr h;
                uint8_t data[4];
        } part = { { 4, 4, 0 }, { 0 } };
        fe_send(e->fe, VU_GET_CONFIG, 0, &part, sizeof part, NULL, 0);
        assert_int_equal(fe_reply(e->fe, VU_GET_CONFIG, &back, sizeof back), 16);
        /* Past the end: an empty reply, the protocol's error. */
        struct {
                struct vu_config_hdr h;
                uint8_t data[8];
        } past = { { 4, 8, 0 }, { 0 } };
        fe_send(e->fe, VU_GET_CONFIG, 0, &past, sizeof past, NULL, 0);
        assert_int_equal(fe_reply(e->fe, VU_GET_CONFIG, &back, sizeof back), 0);

        /* Refused, the session goes on: read-only config, features we did
         * not offer, a memory table without its fd, a ring out of range,
         * polling instead of a kick fd. */
        assert_int_not_equal(fe_ack(e->fe, VU_SET_CONFIG, &cfg, sizeof cfg, NULL, 0), 0);
        assert_int_not_equal(fe_ack_u64(e->fe, VU_SET_FEATURES, f | (1ull << VIRTIO_RING_F_EVENT_IDX)), 0);
        struct {
                uint32_t n, pad;
                struct vu_mem_region r;
        } mt = { 1, 0, { 0, MEM, (uint64_t) (uintptr_t) e->ram, 0 } };
        assert_int_not_equal(fe_ack(e->fe, VU_SET_MEM_TABLE, &mt, sizeof mt, NULL, 0), 0);
        mt.r.size = 2ull * MEM; /* longer than the file: would SIGBUS */
        assert_int_not_equal(fe_ack(e->fe, VU_SET_MEM_TABLE, &mt, sizeof mt, &e->memfd, 1), 0);
        assert_int_not_equal(fe_ack_state(e->fe, VU_SET_VRING_NUM, 5, 64), 0);
        assert_int_not_equal(fe_ack_state(e->fe, VU_SET_VRING_NUM, 0, 100), 0);
        uint64_t nofd = VU_VRING_NOFD | 0;
        assert_int_not_equal(fe_ack(e->fe, VU_SET_VRING_KICK, &nofd, 8, NULL, 0), 0);
        assert_int_not_equal(fe_ack(e->fe, 200, NULL, 0, NULL, 0), 0);
        assert_int_equal(fe_ack(e->fe, VU_SET_OWNER, NULL, 0, NULL, 0), 0);
        close(e->fe);

        /* A malformed message (a u64 request with 4 bytes) drops the
         * front-end; the back-end waits for the next. */
        e->fe = dial(e->vhost);
        uint32_t four = 1;
        fe_send(e->fe, VU_SET_FEATURES, 0, &four, 4, NULL, 0);
        expect_eof(e->fe);
        e->fe = dial(e->vhost);
        assert_true(fe_get_u64(e->fe, VU_GET_FEATURES) != 0);
        close(e->fe);
}

static void test_data_both_ways(void **state) {
        struct env *e = *state;
        frontend_start(e);
        uint32_t local;
        int fd = host_connect(e, 5000, &local);
        assert_int_equal(local, 1u << 30);

        /* 1 MiB host -> guest in 4 KiB rx buffers, the guest crediting as
         * it reads, and an echo of a digest back. */
        static uint8_t data[1 << 20];
        for (size_t i = 0; i < sizeof data; i++)
                data[i] = (uint8_t) (i * 7 + (i >> 12));
        assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
        size_t sent = 0, got = 0;
        uint32_t fwd = 0;
        static uint8_t rcv[sizeof data];
        int64_t end = mono_ms() + BOUND_MS;
        while (got < sizeof data) {
                assert_true(mono_ms() < end);
                if (sent < sizeof data) {
                        ssize_t n = write(fd, data + sent, sizeof data - sent);
                        if (n > 0)
                                sent += (size_t) n;
                }
                uint32_t len;
                struct vsock_hdr h = guest_recv(e, rcv + got, sizeof rcv - got, &len);
                assert_int_equal(h.op, VSOCK_OP_RW);
                got += len;
                fwd += len;
                /* Tell the device about the space, as the Linux driver does. */
                if (fwd >= 64 * 1024) {
                        struct vsock_hdr u = fdrv_hdr(&e->g, VSOCK_OP_CREDIT_UPDATE, 5000, local);
                        u.fwd_cnt = (uint32_t) got;
                        guest_send(e, u, NULL, 0);
                        fwd = 0;
                }
        }
        assert_memory_equal(rcv, data, sizeof data);

        struct vsock_hdr w = fdrv_hdr(&e->g, VSOCK_OP_RW, 5000, local);
        w.fwd_cnt = (uint32_t) got;
        guest_send(e, w, "digest-ok", 9);
        assert_int_equal(fcntl(fd, F_SETFL, 0), 0);
        char buf[16];
        assert_true(wait_readable(fd, BOUND_MS));
        assert_int_equal(recv(fd, buf, 9, MSG_WAITALL), 9);
        assert_memory_equal(buf, "digest-ok", 9);
        /* The host closes: SHUTDOWN both ways, and the guest's RST ends it. */
        close(fd);
        struct vsock_hdr h = guest_recv(e, NULL, 0, NULL);
        assert_int_equal(h.op, VSOCK_OP_SHUTDOWN);
        assert_int_equal(h.flags, VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND);
        guest_send(e, fdrv_hdr(&e->g, VSOCK_OP_RST, 5000, local), NULL, 0);

        /* Guest -> host: a listener on <uds>_9000. */
        int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%.80s_9000", e->uds);
        assert_int_equal(bind(lfd, (struct sockaddr *) &sa, sizeof sa), 0);
        assert_int_equal(listen(lfd, 4), 0);
        guest_send(e, fdrv_hdr(&e->g, VSOCK_OP_REQUEST, 3333, 9000), NULL, 0);
        h = guest_recv(e, NULL, 0, NULL);
        assert_int_equal(h.op, VSOCK_OP_RESPONSE);
        int afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        assert_true(afd >= 0);
        guest_send(e, fdrv_hdr(&e->g, VSOCK_OP_RW, 3333, 9000), "from-guest", 10);
        assert_true(wait_readable(afd, BOUND_MS));
        assert_int_equal(recv(afd, buf, 10, MSG_WAITALL), 10);
        assert_memory_equal(buf, "from-guest", 10);
        close(afd);
        close(lfd);
        frontend_stop(e);
}

static void test_frontends(void **state) {
        struct env *e = *state;
        frontend_start(e);
        uint32_t local;
        int fd = host_connect(e, 22, &local);

        /* A second front-end while one is connected: turned away. */
        expect_eof(dial(e->vhost));

        /* GET_VRING_BASE stops a ring and says where it was. */
        fe_send(e->fe, VU_GET_VRING_BASE, 0, &(struct vu_vring_state) { VSOCK_VQ_TX, 0 }, 8, NULL, 0);
        struct vu_vring_state s;
        assert_int_equal(fe_reply(e->fe, VU_GET_VRING_BASE, &s, sizeof s), 8);
        assert_int_equal(s.index, VSOCK_VQ_TX);
        assert_int_equal(s.num, e->g.tx.avail_idx);

        /* The front-end goes away: host connections end, and the next
         * front-end gets a fresh device. */
        frontend_stop(e);
        expect_eof(fd);
        frontend_start(e);
        fd = host_connect(e, 22, &local);
        close(fd);
        frontend_stop(e);
}

static void test_broken_guest(void **state) {
        struct env *e = *state;
        frontend_start(e);
        uint32_t local;
        int fd = host_connect(e, 33, &local);
        /* The guest writes garbage into its available index: the device
         * stops (its error eventfd would tell QEMU), the host sees EOF, and
         * the back-end itself is fine. */
        fdrv_set_avail_idx(&e->g.tx, 0x8000);
        guest_kick(e, VSOCK_VQ_TX);
        expect_eof(fd);
        /* A new connection is refused while the device is stopped. */
        fd = dial(e->uds);
        assert_int_equal(write(fd, "CONNECT 33\n", 11), 11);
        expect_eof(fd);
        /* A device reset and the rings set up again, as on a guest reboot:
         * working again. */
        assert_int_equal(fe_ack(e->fe, VU_RESET_DEVICE, NULL, 0, NULL, 0), 0);
        close_eventfds(e);
        frontend_rings(e);
        fd = host_connect(e, 33, &local);
        close(fd);
        frontend_stop(e);
}

static void test_sigterm(void **state) {
        struct env *e = *state;
        frontend_start(e);
        uint32_t local;
        int fd = host_connect(e, 44, &local);
        assert_int_equal(stop_vhost(e->pid), 0);
        e->pid = 0;
        /* Its sockets are gone with it. */
        struct stat st;
        assert_int_equal(stat(e->uds, &st), -1);
        assert_int_equal(stat(e->vhost, &st), -1);
        expect_eof(fd);
        frontend_stop(e);
}

static void test_options(void **state) {
        struct env *e = *state;
        char out[4096];
        assert_int_equal(run_vhost((const char *[]) { "--print-capabilities", NULL }, out, sizeof out), 0);
        assert_non_null(strstr(out, "\"type\": \"vsock\""));
        /* Usage errors: 2, with a word on what is wrong. */
        assert_int_equal(run_vhost((const char *[]) { "--socket-path", e->vhost, NULL }, out, sizeof out), 2);
        assert_non_null(strstr(out, "--uds-path"));
        assert_int_equal(run_vhost((const char *[]) { "--uds-path", e->uds, NULL }, out, sizeof out), 2);
        assert_int_equal(run_vhost((const char *[]) { "--socket-path", e->vhost, "--fd", "3", "--uds-path", e->uds,
                                                      NULL },
                                   out, sizeof out),
                         2);
        static const char *const bad_cids[] = { "2", "0", "-3", "4294967295", "3x", "" };
        for (size_t i = 0; i < sizeof bad_cids / sizeof bad_cids[0]; i++) {
                const char *args[] = { "--socket-path", "/tmp/x", "--uds-path", "/tmp/y", "--guest-cid", bad_cids[i],
                                       NULL };
                assert_int_equal(run_vhost(args, out, sizeof out), 2);
                assert_non_null(strstr(out, "guest CID"));
        }
        /* The sockets of a running back-end are not stolen: 1. */
        assert_int_equal(run_vhost((const char *[]) { "--socket-path", "/tmp/unused-vhost.sock", "--uds-path",
                                                      e->uds, NULL },
                                   out, sizeof out),
                         1);
        assert_non_null(strstr(out, "in use"));
}

/* --fd with a connected socket: that session only, and the back-end ends
 * with it; with a listening one, front-ends come and go. */
static void test_fd(void **state) {
        struct env *e = *state;
        assert_int_equal(stop_vhost(e->pid), 0);
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        e->pid = start_vhost(e, sv[1]);
        close(sv[1]);
        assert_true(fe_get_u64(sv[0], VU_GET_FEATURES) & (1ull << VIRTIO_F_VERSION_1));
        close(sv[0]);
        int st;
        int64_t end = mono_ms() + BOUND_MS;
        while (waitpid(e->pid, &st, WNOHANG) == 0) {
                assert_true(mono_ms() < end);
                pause_ms(10);
        }
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);

        int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", e->vhost);
        assert_int_equal(bind(ls, (struct sockaddr *) &sa, sizeof sa), 0);
        assert_int_equal(listen(ls, 4), 0);
        e->pid = start_vhost(e, ls);
        close(ls);
        for (int i = 0; i < 2; i++) {
                int fe = dial(e->vhost);
                assert_true(fe_get_u64(fe, VU_GET_FEATURES) != 0);
                close(fe);
        }
}

int main(void) {
        signal(SIGPIPE, SIG_IGN);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_protocol, setup, teardown),
                cmocka_unit_test_setup_teardown(test_data_both_ways, setup, teardown),
                cmocka_unit_test_setup_teardown(test_frontends, setup, teardown),
                cmocka_unit_test_setup_teardown(test_broken_guest, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sigterm, setup, teardown),
                cmocka_unit_test_setup_teardown(test_options, setup, teardown),
                cmocka_unit_test_setup_teardown(test_fd, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
