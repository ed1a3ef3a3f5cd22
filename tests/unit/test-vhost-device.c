/* vsock-vhost's device (src/vhost/device.c, conn.c, hostlisten.c) in one
 * process: a fake guest driver on rings in plain memory, host processes on
 * real unix sockets. Firecracker's interface both ways, credit in both
 * directions, half-closes, timeouts, limits, and a guest that lies in its
 * packets or its rings while other connections keep working. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/serve/loop.h"
#include "common/io.h"
#include "common/macro.h"
#include "fake-driver.h"
#include "vhost/device.h"
#include "vhost/hostlisten.h"
#include "vhost/hybrid.h"
#include "vhost/virtio.h"

#define GPA 0x40000000ull
#define UVA 0x7e0000000000ull
#define MEM (64u << 20)
#define NUM 128 /* descriptors: 64 rx buffers of two */
#define CID 3
#define BOUND_MS 20000
#define CMD_TIMEOUT_MS 300

struct env {
        struct loop *l;
        struct vsockdev *d;
        struct hostlisten *hl;
        uint8_t *ram;
        struct guestmem mem;
        struct fdrv_mem fm;
        struct fdrv_vsock g;
        struct vring rx, tx;
        struct timer deadline;
        bool timed_out;
        bool (*pred)(struct env *e, void *arg);
        void *arg;
        char dir[64];
        char uds[80];
        struct vsockdev_config cfg;
};

static uint64_t uva_of(uint64_t gpa) { return gpa - GPA + UVA; }

static void ring_setup(struct env *e, struct vring *r, unsigned idx, const struct fdrv_q *q) {
        vring_init(r, e->l, idx, NULL, NULL);
        assert_int_equal(virtq_set_num(&r->q, q->num), 0);
        virtq_set_addr(&r->q, uva_of(q->desc), uva_of(q->avail), uva_of(q->used));
        assert_int_equal(virtq_map(&r->q, &e->mem), 0);
        r->q.indirect = true;
        r->started = r->enabled = true;
}

static void on_deadline(struct timer *t) {
        struct env *e = container_of(t, struct env, deadline);
        e->timed_out = true;
        loop_quit(e->l);
}

static void post_pass(void *userdata) {
        struct env *e = userdata;
        if (e->pred && e->pred(e, e->arg))
                loop_quit(e->l);
}

/* Run the device until @pred holds (checked after every loop pass), at
 * most BOUND_MS. */
static bool run_until(struct env *e, bool (*pred)(struct env *, void *), void *arg) {
        e->pred = pred;
        e->arg = arg;
        e->timed_out = false;
        assert_int_equal(timer_arm_in_ms(&e->deadline, BOUND_MS), 0);
        if (!pred(e, arg))
                assert_int_equal(loop_run(e->l), 0);
        timer_disarm(&e->deadline);
        e->pred = NULL;
        return !e->timed_out && pred(e, arg);
}

static bool never(struct env *e, void *arg) { return false; }

/* Let everything already pending happen (the device acts on events in the
 * pass they arrive), to check that something did not. */
static void settle(struct env *e) {
        e->pred = never;
        assert_int_equal(timer_arm_in_ms(&e->deadline, 50), 0);
        assert_int_equal(loop_run(e->l), 0);
        e->pred = NULL;
}

static bool rx_ready(struct env *e, void *arg) { return fdrv_used_pending(&e->g.rx) > 0; }

static bool fd_readable(struct env *e, void *arg) {
        struct pollfd p = { .fd = *(int *) arg, .events = POLLIN };
        return poll(&p, 1, 0) == 1;
}

static bool no_conns(struct env *e, void *arg) { return vsockdev_conn_count(e->d) == 0; }

static void env_start(struct env *e) {
        assert_int_equal(loop_new(&e->l), 0);
        timer_init(&e->deadline, e->l, on_deadline);
        loop_set_post_pass(e->l, post_pass, e);
        e->cfg.uds_path = e->uds;
        assert_int_equal(vsockdev_new(e->l, &e->cfg, &e->d), 0);
        const char *why = NULL;
        assert_int_equal(hostlisten_new(e->l, e->d, e->uds, CMD_TIMEOUT_MS, &e->hl, &why), 0);
        e->ram = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        assert_true(e->ram != MAP_FAILED);
        assert_int_equal(guestmem_add_ptr(&e->mem, GPA, MEM, UVA, e->ram), 0);
        fdrv_mem_init(&e->fm, e->ram, GPA, MEM);
        fdrv_vsock_init(&e->g, &e->fm, NUM, CID);
        ring_setup(e, &e->rx, 0, &e->g.rx);
        ring_setup(e, &e->tx, 1, &e->g.tx);
        vsockdev_attach(e->d, &e->mem, &e->rx, &e->tx);
        assert_int_equal(fdrv_post_rx(&e->g, NUM / 2), NUM / 2);
        vsockdev_kick(e->d, &e->rx);
        assert_true(vsockdev_running(e->d));
}

static int setup(void **state) {
        struct env *e = calloc(1, sizeof *e);
        snprintf(e->dir, sizeof e->dir, "/tmp/test-vhost-XXXXXX");
        assert_non_null(mkdtemp(e->dir));
        snprintf(e->uds, sizeof e->uds, "%s/v.sock", e->dir);
        vsockdev_config_default(&e->cfg);
        e->cfg.guest_cid = CID;
        *state = e;
        return 0;
}

static int teardown(void **state) {
        struct env *e = *state;
        /* Connections freed outside the loop wait for a pass. */
        settle(e);
        hostlisten_free(e->hl);
        vsockdev_free(e->d);
        vring_close(&e->rx);
        vring_close(&e->tx);
        timer_disarm(&e->deadline);
        loop_free(e->l);
        munmap(e->ram, MEM);
        char cmd[160];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
        (void) !system(cmd);
        free(e);
        return 0;
}

static int setup_started(void **state) {
        setup(state);
        env_start(*state);
        return 0;
}

/* ---- helpers: the host side ------------------------------------------------ */

static int host_dial(struct env *e) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", e->uds);
        assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        return fd;
}

static void host_write(int fd, const void *p, size_t n) { assert_int_equal(write(fd, p, n), (ssize_t) n); }

/* Read what is there (after the loop made it readable). */
static ssize_t host_read(int fd, void *buf, size_t n) {
        ssize_t r = read(fd, buf, n);
        return r < 0 ? -errno : r;
}

/* The next packet to the guest, after running the device for it. */
static struct vsock_hdr guest_recv(struct env *e, void *payload, size_t cap, uint32_t *len) {
        assert_true(run_until(e, rx_ready, NULL));
        struct vsock_hdr h;
        assert_true(fdrv_recv(&e->g, &h, payload, cap, len));
        return h;
}

static void guest_send(struct env *e, struct vsock_hdr h, const void *payload, uint32_t len) {
        h.len = len;
        assert_true(fdrv_send(&e->g, &h, payload, len) >= 0);
        vsockdev_kick(e->d, &e->tx);
        fdrv_reap_tx(&e->g);
}

static void guest_op(struct env *e, uint16_t op, uint32_t gport, uint32_t hport, uint32_t flags) {
        struct vsock_hdr h = fdrv_hdr(&e->g, op, gport, hport);
        h.flags = flags;
        guest_send(e, h, NULL, 0);
}

/* A host process asks for guest port @port: the guest sees the REQUEST
 * (into *@ret_req). Returns the host fd. */
static int host_ask(struct env *e, uint32_t port, struct vsock_hdr *ret_req) {
        int fd = host_dial(e);
        char cmd[32];
        int n = snprintf(cmd, sizeof cmd, "CONNECT %u\n", port);
        host_write(fd, cmd, (size_t) n);
        struct vsock_hdr h = guest_recv(e, NULL, 0, NULL);
        assert_int_equal(h.op, VSOCK_OP_REQUEST);
        assert_int_equal(h.src_cid, VSOCK_HOST_CID);
        assert_int_equal(h.dst_cid, CID);
        assert_int_equal(h.dst_port, port);
        assert_int_equal(h.type, VSOCK_TYPE_STREAM);
        assert_int_equal(h.buf_alloc, e->cfg.buf_alloc);
        assert_true(h.src_port >= HYBRID_PORT_FIRST);
        *ret_req = h;
        return fd;
}

/* The host end of a connection is closed (after what was written). */
static void expect_host_eof(struct env *e, int fd) {
        assert_true(run_until(e, fd_readable, &fd));
        char buf[8];
        assert_int_equal(host_read(fd, buf, sizeof buf), 0);
}

/* A host process connects to guest port @port and the guest accepts.
 * Returns the host fd; *ret_local is the host-side vsock port. */
static int host_connect(struct env *e, uint32_t port, uint32_t *ret_local) {
        struct vsock_hdr h;
        int fd = host_ask(e, port, &h);
        guest_op(e, VSOCK_OP_RESPONSE, port, h.src_port, 0);
        assert_true(run_until(e, fd_readable, &fd));
        char ok[32] = { 0 };
        char want[32];
        int wn = snprintf(want, sizeof want, "OK %u\n", h.src_port);
        assert_int_equal(host_read(fd, ok, (size_t) wn), wn);
        assert_string_equal(ok, want);
        *ret_local = h.src_port;
        return fd;
}

/* ---- host -> guest ------------------------------------------------------------ */

static void test_host_connect_data(void **state) {
        struct env *e = *state;
        uint32_t local;
        int fd = host_connect(e, 5000, &local);
        assert_int_equal(local, HYBRID_PORT_FIRST); /* Firecracker's first */
        assert_int_equal(vsockdev_conn_count(e->d), 1);

        host_write(fd, "hello", 5);
        char buf[64];
        uint32_t len;
        struct vsock_hdr h = guest_recv(e, buf, sizeof buf, &len);
        assert_int_equal(h.op, VSOCK_OP_RW);
        assert_int_equal(h.src_port, local);
        assert_int_equal(h.dst_port, 5000);
        assert_int_equal(h.len, 5);
        assert_int_equal(len, 5);
        assert_memory_equal(buf, "hello", 5);

        struct vsock_hdr w = fdrv_hdr(&e->g, VSOCK_OP_RW, 5000, local);
        guest_send(e, w, "world", 5);
        assert_true(run_until(e, fd_readable, &fd));
        assert_int_equal(host_read(fd, buf, sizeof buf), 5);
        assert_memory_equal(buf, "world", 5);

        /* The guest shuts its sending side: the host reads EOF and can
         * still send. */
        guest_op(e, VSOCK_OP_SHUTDOWN, 5000, local, VSOCK_SHUTDOWN_SEND);
        expect_host_eof(e, fd);
        host_write(fd, "more", 4);
        h = guest_recv(e, buf, sizeof buf, &len);
        assert_int_equal(h.op, VSOCK_OP_RW);
        assert_memory_equal(buf, "more", 4);

        /* The host closes: both directions are over for the guest, which
         * answers with an RST, and the connection is gone. */
        close(fd);
        h = guest_recv(e, NULL, 0, NULL);
        assert_int_equal(h.op, VSOCK_OP_SHUTDOWN);
        assert_int_equal(h.flags, VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND);
        guest_op(e, VSOCK_OP_RST, 5000, local, 0);
        assert_true(run_until(e, no_conns, NULL));

        /* The next connection gets the next host port. */
        fd = host_connect(e, 5000, &local);
        assert_int_equal(local, HYBRID_PORT_FIRST + 1);
        close(fd);
}

static void test_host_half_close(void **state) {
        struct env *e = *state;
        uint32_t local;
        int fd = host_connect(e, 7, &local);
        /* shutdown(SHUT_WR) on the host: SHUTDOWN(SEND) only; the guest
         * can still send. */
        assert_int_equal(shutdown(fd, SHUT_WR), 0);
        struct vsock_hdr h = guest_recv(e, NULL, 0, NULL);
        assert_int_equal(h.op, VSOCK_OP_SHUTDOWN);
        assert_int_equal(h.flags, VSOCK_SHUTDOWN_SEND);
        guest_send(e, fdrv_hdr(&e->g, VSOCK_OP_RW, 7, local), "late", 4);
        assert_true(run_until(e, fd_readable, &fd));
        char buf[8];
        assert_int_equal(host_read(fd, buf, sizeof buf), 4);
        /* The guest closes both ways: we hold both shutdowns and send RST. */
        guest_op(e, VSOCK_OP_SHUTDOWN, 7, local, VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND);
        h = guest_recv(e, NULL, 0, NULL);
        assert_int_equal(h.op, VSOCK_OP_RST);
        assert_int_equal(vsockdev_conn_count(e->d), 0);
        expect_host_eof(e, fd);
        close(fd);
}

static void test_host_connect_refused(void **state) {
        struct env *e = *state;
        struct vsock_hdr h;
        int fd = host_ask(e, 99, &h);
        /* Nothing listens on 99 in the guest: closed, no reply. */
        guest_op(e, VSOCK_OP_RST, 99, h.src_port, 0);
        expect_host_eof(e, fd);
        assert_int_equal(vsockdev_conn_count(e->d), 0);
        close(fd);
}

static void test_host_connect_no_driver(void **state) {
        struct env *e = *state;
        e->rx.enabled = false;
        vsockdev_kick(e->d, &e->rx);
        assert_false(vsockdev_running(e->d));
        int fd = host_dial(e);
        host_write(fd, "CONNECT 5000\n", 13);
        expect_host_eof(e, fd);
        close(fd);
}

static void expect_closed_silently(struct env *e, const char *cmd, size_t n) {
        int fd = host_dial(e);
        host_write(fd, cmd, n);
        assert_true(run_until(e, fd_readable, &fd));
        char buf[8];
        /* Closed unread bytes make it a reset rather than an EOF. */
        ssize_t r = host_read(fd, buf, sizeof buf);
        assert_true(r == 0 || r == -ECONNRESET);
        assert_int_equal(fdrv_used_pending(&e->g.rx), 0); /* the guest heard nothing */
        close(fd);
}

static void test_connect_command(void **state) {
        struct env *e = *state;
        expect_closed_silently(e, "HELLO 5\n", 8);
        expect_closed_silently(e, "CONNECT\n", 8);
        char junk[40];
        memset(junk, 'x', sizeof junk);
        expect_closed_silently(e, junk, sizeof junk); /* no '\n' within 32 bytes */

        /* In pieces, lower case, and with the stream's first bytes right
         * behind the '\n': all delivered. */
        int fd = host_dial(e);
        host_write(fd, "conn", 4);
        settle(e);
        assert_int_equal(fdrv_used_pending(&e->g.rx), 0);
        host_write(fd, "ect 52\nearly", 12);
        struct vsock_hdr h = guest_recv(e, NULL, 0, NULL);
        assert_int_equal(h.op, VSOCK_OP_REQUEST);
        assert_int_equal(h.dst_port, 52);
        guest_op(e, VSOCK_OP_RESPONSE, 52, h.src_port, 0);
        char buf[64];
        uint32_t len;
        h = guest_recv(e, buf, sizeof buf, &len);
        assert_int_equal(h.op, VSOCK_OP_RW);
        assert_int_equal(len, 5);
        assert_memory_equal(buf, "early", 5);
        close(fd);
}

static void test_command_timeout(void **state) {
        struct env *e = *state;
        /* A client that never sends its command is dropped. */
        int fd = host_dial(e);
        expect_host_eof(e, fd);
        close(fd);
}

/* ---- guest -> host ------------------------------------------------------------ */

static int host_listen(struct env *e, uint32_t port) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s_%u", e->uds, port);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        assert_int_equal(listen(fd, 8), 0);
        return fd;
}

static void test_guest_connect(void **state) {
        struct env *e = *state;
        int lfd = host_listen(e, 52);
        guest_op(e, VSOCK_OP_REQUEST, 1234, 52, 0);
        struct vsock_hdr h = guest_recv(e, NULL, 0, NULL);
        assert_int_equal(h.op, VSOCK_OP_RESPONSE);
        assert_int_equal(h.src_cid, VSOCK_HOST_CID);
        assert_int_equal(h.src_port, 52);
        assert_int_equal(h.dst_port, 1234);
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        assert_true(fd >= 0);

        guest_send(e, fdrv_hdr(&e->g, VSOCK_OP_RW, 1234, 52), "ping", 4);
        assert_true(run_until(e, fd_readable, &fd));
        char buf[16];
        assert_int_equal(host_read(fd, buf, sizeof buf), 4);
        assert_memory_equal(buf, "ping", 4);
        host_write(fd, "pong", 4);
        uint32_t len;
        h = guest_recv(e, buf, sizeof buf, &len);
        assert_int_equal(h.op, VSOCK_OP_RW);
        assert_memory_equal(buf, "pong", 4);

        /* Nothing listens on host port 53: RST. */
        guest_op(e, VSOCK_OP_REQUEST, 1235, 53, 0);
        h = guest_recv(e, NULL, 0, NULL);
        assert_int_equal(h.op, VSOCK_OP_RST);
        assert_int_equal(h.src_port, 53);
        assert_int_equal(h.dst_port, 1235);
        assert_int_equal(vsockdev_conn_count(e->d), 1);
        close(fd);
        close(lfd);
}

/* ---- credit -------------------------------------------------------------------- */

static void test_credit_to_guest(void **state) {
        struct env *e = *state;
        struct vsock_hdr h;
        int fd = host_ask(e, 80, &h);
        uint32_t local = h.src_port;
        /* The guest has room for 100 bytes only. */
        struct vsock_hdr r = fdrv_hdr(&e->g, VSOCK_OP_RESPONSE, 80, local);
        r.buf_alloc = 100;
        guest_send(e, r, NULL, 0);
        assert_true(run_until(e, fd_readable, &fd));
        char buf[4096];
        assert_int_equal(host_read(fd, buf, 14), 14); /* OK line */
        memset(buf, 'a', sizeof buf);
        host_write(fd, buf, 1000);
        uint32_t got = 0, len;
        while (got < 100) {
                h = guest_recv(e, buf, sizeof buf, &len);
                assert_int_equal(h.op, VSOCK_OP_RW);
                got += len;
        }
        assert_int_equal(got, 100);
        settle(e);
        assert_int_equal(fdrv_used_pending(&e->g.rx), 0); /* no more than the credit */
        /* It read 60: 60 more may come, and no more. */
        struct vsock_hdr u = fdrv_hdr(&e->g, VSOCK_OP_CREDIT_UPDATE, 80, local);
        u.buf_alloc = 100;
        u.fwd_cnt = 60;
        guest_send(e, u, NULL, 0);
        h = guest_recv(e, buf, sizeof buf, &len);
        assert_int_equal(len, 60);
        settle(e);
        assert_int_equal(fdrv_used_pending(&e->g.rx), 0);
        close(fd);
}

static void test_credit_from_guest(void **state) {
        struct env *e = *state;
        uint32_t local;
        int fd = host_connect(e, 81, &local);
        /* The guest sends within its credit, the host reads: we tell the
         * guest about the space (at least a quarter of the buffer). */
        static char chunk[VSOCK_MAX_PKT_PAYLOAD];
        for (int i = 0; i < 2; i++)
                guest_send(e, fdrv_hdr(&e->g, VSOCK_OP_RW, 81, local), chunk, sizeof chunk);
        assert_true(run_until(e, fd_readable, &fd));
        static char sink[1 << 20];
        size_t total = 0;
        while (total < 2 * sizeof chunk) {
                assert_true(run_until(e, fd_readable, &fd));
                ssize_t n = host_read(fd, sink, sizeof sink);
                assert_true(n > 0);
                total += (size_t) n;
        }
        struct vsock_hdr h = guest_recv(e, NULL, 0, NULL);
        assert_int_equal(h.op, VSOCK_OP_CREDIT_UPDATE);
        assert_int_equal(h.fwd_cnt, 2 * sizeof chunk);
        assert_int_equal(h.buf_alloc, e->cfg.buf_alloc);
        /* Asked, it answers. */
        guest_op(e, VSOCK_OP_CREDIT_REQUEST, 81, local, 0);
        h = guest_recv(e, NULL, 0, NULL);
        assert_int_equal(h.op, VSOCK_OP_CREDIT_UPDATE);
        assert_int_equal(h.fwd_cnt, 2 * sizeof chunk);
        close(fd);
}

static void test_credit_violation(void **state) {
        struct env *e = *state;
        uint32_t local;
        int fd = host_connect(e, 82, &local);
        /* The host reads nothing; the guest ignores the 256 KiB it was
         * given and keeps sending. */
        static char chunk[VSOCK_MAX_PKT_PAYLOAD];
        bool reset = false;
        for (int i = 0; i < 64 && !reset; i++) {
                guest_send(e, fdrv_hdr(&e->g, VSOCK_OP_RW, 82, local), chunk, sizeof chunk);
                settle(e);
                struct vsock_hdr h;
                while (fdrv_recv(&e->g, &h, NULL, 0, NULL))
                        reset |= h.op == VSOCK_OP_RST && h.src_port == local;
        }
        assert_true(reset);
        assert_int_equal(vsockdev_conn_count(e->d), 0);
        /* The host sees its connection end after what was written. */
        static char sink[1 << 20];
        ssize_t n;
        while ((n = host_read(fd, sink, sizeof sink)) > 0)
                ;
        assert_true(n == 0 || n == -ECONNRESET);
        close(fd);
}

static int setup_small_buffer(void **state) {
        setup(state);
        struct env *e = *state;
        e->cfg.buf_alloc = 4096;
        env_start(e);
        return 0;
}

static void test_credit_violation_reading_host(void **state) {
        struct env *e = *state;
        uint32_t local;
        int fd = host_connect(e, 83, &local);
        /* The host reads at once, but one packet is already twice the
         * 4 KiB we offered: a reset, not a pass-through. */
        static char chunk[8192];
        guest_send(e, fdrv_hdr(&e->g, VSOCK_OP_RW, 83, local), chunk, sizeof chunk);
        struct vsock_hdr h = guest_recv(e, NULL, 0, NULL);
        assert_int_equal(h.op, VSOCK_OP_RST);
        assert_int_equal(h.src_port, local);
        expect_host_eof(e, fd); /* nothing got through */
        close(fd);
}

/* ---- a lying guest -------------------------------------------------------------- */

static void test_hostile_packets(void **state) {
        struct env *e = *state;
        uint32_t local;
        int fd = host_connect(e, 90, &local);
        char buf[64];
        uint32_t len;

        /* Claims another source CID: dropped, the connection unharmed. */
        struct vsock_hdr h = fdrv_hdr(&e->g, VSOCK_OP_RW, 90, local);
        h.src_cid = 4;
        guest_send(e, h, "spoof", 5);
        /* To a port we know nothing of: RST for that one. */
        guest_send(e, fdrv_hdr(&e->g, VSOCK_OP_RW, 91, local), "who", 3);
        struct vsock_hdr r = guest_recv(e, NULL, 0, NULL);
        assert_int_equal(r.op, VSOCK_OP_RST);
        assert_int_equal(r.dst_port, 91);
        settle(e);
        assert_int_equal(host_read(fd, buf, sizeof buf), -EAGAIN);
        assert_int_equal(vsockdev_conn_count(e->d), 1);

        /* A payload longer than its buffer resets the connection. */
        h = fdrv_hdr(&e->g, VSOCK_OP_RW, 90, local);
        h.len = 100;
        assert_true(fdrv_send(&e->g, &h, "short", 5) >= 0);
        vsockdev_kick(e->d, &e->tx);
        r = guest_recv(e, buf, sizeof buf, &len);
        assert_int_equal(r.op, VSOCK_OP_RST);
        assert_int_equal(r.src_port, local);
        assert_true(run_until(e, no_conns, NULL));
        expect_host_eof(e, fd);
        close(fd);

        /* An unknown operation, a second REQUEST, a SHUTDOWN while
         * connecting: each resets its connection. */
        static const uint16_t bad_ops[] = { 9, VSOCK_OP_REQUEST };
        for (size_t i = 0; i < ARRAY_SIZE(bad_ops); i++) {
                fd = host_connect(e, 92, &local);
                guest_op(e, bad_ops[i], 92, local, 0);
                r = guest_recv(e, NULL, 0, NULL);
                assert_int_equal(r.op, VSOCK_OP_RST);
                assert_int_equal(vsockdev_conn_count(e->d), 0);
                close(fd);
        }
        fd = host_ask(e, 93, &r);
        guest_op(e, VSOCK_OP_SHUTDOWN, 93, r.src_port, VSOCK_SHUTDOWN_SEND);
        r = guest_recv(e, NULL, 0, NULL);
        assert_int_equal(r.op, VSOCK_OP_RST);
        close(fd);
}

static void test_hostile_chains(void **state) {
        struct env *e = *state;
        uint32_t local;
        int fd = host_connect(e, 95, &local);
        /* A tx chain that loops, then a good packet: the good one arrives. */
        struct fdrv_q *tx = &e->g.tx;
        fdrv_q_reserve(tx, NUM - 4);
        fdrv_set_desc(tx, NUM - 2, GPA, 8, VIRTQ_DESC_F_NEXT, NUM - 1);
        fdrv_set_desc(tx, NUM - 1, GPA, 8, VIRTQ_DESC_F_NEXT, NUM - 2);
        fdrv_publish(tx, NUM - 2);
        /* A chain pointing outside guest memory. */
        fdrv_set_desc(tx, NUM - 3, GPA + MEM, 64, 0, 0);
        fdrv_publish(tx, NUM - 3);
        guest_send(e, fdrv_hdr(&e->g, VSOCK_OP_RW, 95, local), "fine", 4);
        assert_true(run_until(e, fd_readable, &fd));
        char buf[8];
        assert_int_equal(host_read(fd, buf, sizeof buf), 4);
        assert_memory_equal(buf, "fine", 4);
        assert_false(e->rx.q.broken);
        assert_false(e->tx.q.broken);
        close(fd);
}

static void test_small_rx_buffer(void **state) {
        struct env *e = *state;
        /* Replace the posted buffers with one 16-byte buffer first, then a
         * normal one. */
        fdrv_vsock_init(&e->g, &e->fm, NUM, CID);
        ring_setup(e, &e->rx, 0, &e->g.rx);
        ring_setup(e, &e->tx, 1, &e->g.tx);
        struct fdrv_buf small = { fdrv_alloc(&e->fm, 16, 8), 16 };
        int head = fdrv_add(&e->g.rx, &small, 0, 1);
        assert_true(head >= 0);
        assert_int_equal(fdrv_post_rx(&e->g, 1), 1);
        vsockdev_kick(e->d, &e->rx);
        int fd = host_dial(e);
        host_write(fd, "CONNECT 96\n", 11);
        assert_true(run_until(e, rx_ready, NULL));
        uint32_t id, len;
        assert_true(fdrv_used(&e->g.rx, &id, &len));
        assert_int_equal(id, head);
        assert_int_equal(len, 0);
        struct vsock_hdr h = guest_recv(e, NULL, 0, NULL);
        assert_int_equal(h.op, VSOCK_OP_REQUEST);
        close(fd);
}

static void test_broken_ring(void **state) {
        struct env *e = *state;
        uint32_t local;
        int fd = host_connect(e, 97, &local);
        /* The tx index jumps beyond the ring: the device stops, the host
         * connection ends, new ones are refused. */
        fdrv_set_avail_idx(&e->g.tx, (uint16_t) (e->g.tx.avail_idx + NUM + 5));
        vsockdev_kick(e->d, &e->tx);
        assert_true(e->tx.q.broken);
        assert_false(vsockdev_running(e->d));
        assert_int_equal(vsockdev_conn_count(e->d), 0);
        expect_host_eof(e, fd);
        close(fd);
        fd = host_dial(e);
        host_write(fd, "CONNECT 97\n", 11);
        expect_host_eof(e, fd);
        close(fd);

        /* The front-end sets the rings up again (a guest reboot): back to work. */
        fdrv_vsock_init(&e->g, &e->fm, NUM, CID);
        vring_close(&e->rx);
        vring_close(&e->tx);
        ring_setup(e, &e->rx, 0, &e->g.rx);
        ring_setup(e, &e->tx, 1, &e->g.tx);
        assert_int_equal(fdrv_post_rx(&e->g, NUM / 2), NUM / 2);
        vsockdev_kick(e->d, &e->rx);
        assert_true(vsockdev_running(e->d));
        fd = host_connect(e, 97, &local);
        close(fd);
}

static void test_rx_starvation(void **state) {
        struct env *e = *state;
        fdrv_vsock_init(&e->g, &e->fm, NUM, CID);
        ring_setup(e, &e->rx, 0, &e->g.rx);
        ring_setup(e, &e->tx, 1, &e->g.tx);
        vsockdev_kick(e->d, &e->rx);
        int fd = host_dial(e);
        host_write(fd, "CONNECT 98\n", 11);
        /* Orphan resets pile up too, within their bound. */
        for (uint32_t p = 0; p < 300; p++)
                guest_send(e, fdrv_hdr(&e->g, VSOCK_OP_RW, 2000 + p, 1), "z", 1);
        settle(e);
        assert_int_equal(fdrv_used_pending(&e->g.rx), 0);
        /* Buffers arrive: everything owed is delivered, in order. */
        unsigned rst = 0, req = 0;
        for (int round = 0; round < 10 && req == 0; round++) {
                fdrv_post_rx(&e->g, NUM / 2);
                vsockdev_kick(e->d, &e->rx);
                settle(e);
                struct vsock_hdr h;
                while (fdrv_recv(&e->g, &h, NULL, 0, NULL)) {
                        rst += h.op == VSOCK_OP_RST;
                        req += h.op == VSOCK_OP_REQUEST;
                }
        }
        assert_int_equal(req, 1);
        assert_int_equal(rst, 256); /* VSOCKDEV_RST_SLOTS; the rest dropped */
        close(fd);
}

/* ---- limits and timeouts -------------------------------------------------------- */

static int setup_limits(void **state) {
        setup(state);
        struct env *e = *state;
        e->cfg.max_conns = 2;
        e->cfg.connect_timeout_ms = 100;
        env_start(e);
        return 0;
}

static void test_limits(void **state) {
        struct env *e = *state;
        uint32_t l1, l2;
        int a = host_connect(e, 10, &l1), b = host_connect(e, 11, &l2);
        int c = host_dial(e);
        host_write(c, "CONNECT 12\n", 11);
        assert_true(run_until(e, fd_readable, &c));
        char buf[8];
        assert_int_equal(host_read(c, buf, sizeof buf), 0);
        close(c);
        guest_op(e, VSOCK_OP_REQUEST, 4000, 52, 0);
        struct vsock_hdr h = guest_recv(e, NULL, 0, NULL);
        assert_int_equal(h.op, VSOCK_OP_RST);
        close(a);
        close(b);
}

static void test_connect_timeout(void **state) {
        struct env *e = *state;
        struct vsock_hdr h;
        int fd = host_ask(e, 13, &h);
        /* The guest never answers: the host is closed, the guest told. */
        expect_host_eof(e, fd);
        h = guest_recv(e, NULL, 0, NULL);
        assert_int_equal(h.op, VSOCK_OP_RST);
        assert_int_equal(vsockdev_conn_count(e->d), 0);
        close(fd);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_host_connect_data, setup_started, teardown),
                cmocka_unit_test_setup_teardown(test_host_half_close, setup_started, teardown),
                cmocka_unit_test_setup_teardown(test_host_connect_refused, setup_started, teardown),
                cmocka_unit_test_setup_teardown(test_host_connect_no_driver, setup_started, teardown),
                cmocka_unit_test_setup_teardown(test_connect_command, setup_started, teardown),
                cmocka_unit_test_setup_teardown(test_command_timeout, setup_started, teardown),
                cmocka_unit_test_setup_teardown(test_guest_connect, setup_started, teardown),
                cmocka_unit_test_setup_teardown(test_credit_to_guest, setup_started, teardown),
                cmocka_unit_test_setup_teardown(test_credit_from_guest, setup_started, teardown),
                cmocka_unit_test_setup_teardown(test_credit_violation, setup_started, teardown),
                cmocka_unit_test_setup_teardown(test_credit_violation_reading_host, setup_small_buffer, teardown),
                cmocka_unit_test_setup_teardown(test_hostile_packets, setup_started, teardown),
                cmocka_unit_test_setup_teardown(test_hostile_chains, setup_started, teardown),
                cmocka_unit_test_setup_teardown(test_small_rx_buffer, setup_started, teardown),
                cmocka_unit_test_setup_teardown(test_broken_ring, setup_started, teardown),
                cmocka_unit_test_setup_teardown(test_rx_starvation, setup_started, teardown),
                cmocka_unit_test_setup_teardown(test_limits, setup_limits, teardown),
                cmocka_unit_test_setup_teardown(test_connect_timeout, setup_limits, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
