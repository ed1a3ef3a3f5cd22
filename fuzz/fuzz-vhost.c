/* libFuzzer target for vsock-vhost's guest-facing side: the input is the
 * guest's memory (both rings' descriptor tables, available rings and every
 * buffer they point at), so the fuzzer writes descriptor chains, indices
 * and packets as a hostile guest would. The device walks the tx ring,
 * judges and dispatches each packet (connection requests reach a real
 * listener, so connections exist and get data, shutdowns, credit and
 * resets), then fills rx buffers from the fuzzer-made rx ring. ASan checks
 * that nothing is read or written outside the guest memory. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/serve/loop.h"
#include "common/io.h"
#include "common/log.h"
#include "common/macro.h"
#include "vhost/device-internal.h"
#include "vhost/vring.h"

#define GPA 0x10000ull
#define UVA 0x500000000ull
#define MEM (64 * 1024)
#define NUM 16

/* Ring parts at fixed offsets; everything else is the fuzzer's. */
#define RX_DESC 0x0000
#define RX_AVAIL 0x0100
#define RX_USED 0x0200
#define TX_DESC 0x0400
#define TX_AVAIL 0x0500
#define TX_USED 0x0600

static struct loop *loop;
static int listener = -1;
static char dir[] = "/tmp/fuzz-vhost-XXXXXX";
static char uds[64];

static void quit_now(struct timer *t) { loop_quit(t->loop); }

/* One loop pass: deferred work (rx turns, frees) runs. */
static void one_pass(void) {
        struct timer t;
        timer_init(&t, loop, quit_now);
        (void) timer_arm(&t, 0);
        (void) loop_run(loop);
        timer_disarm(&t);
}

/* Until no deferred work refers to the device (it is freed next). */
static void settle(struct vsockdev *d) {
        for (int i = 0; defer_queued(&d->flush) || timer_armed(&d->tx_more); i++) {
                if (i == 64)
                        abort(); /* work that never ends: a finding */
                one_pass();
        }
}

static void cleanup(void) {
        char path[96];
        snprintf(path, sizeof path, "%s_1", uds);
        (void) unlink(path);
        (void) rmdir(dir);
}

static void init(void) {
        if (loop)
                return;
        if (loop_new(&loop) < 0)
                abort();
        /* The device logs every broken ring; a fuzzer breaks thousands. */
        log_set_level(LOG_ERR);
        /* Guest connections to host port 1 reach this listener. */
        if (!mkdtemp(dir))
                abort();
        atexit(cleanup);
        snprintf(uds, sizeof uds, "%s/v", dir);
        listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s_1", uds);
        if (bind(listener, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(listener, 64) < 0)
                abort();
}

static void ring(struct vring *r, unsigned idx, const struct guestmem *mem, uint64_t desc, uint64_t avail,
                 uint64_t used, bool indirect) {
        vring_init(r, loop, idx, NULL, NULL);
        (void) virtq_set_num(&r->q, NUM);
        virtq_set_addr(&r->q, UVA + desc, UVA + avail, UVA + used);
        (void) virtq_map(&r->q, mem);
        virtq_sync_used(&r->q);
        r->q.indirect = indirect;
        r->started = r->enabled = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        init();
        if (size < 1)
                return 0;
        uint8_t *ram = calloc(1, MEM);
        memcpy(ram, data + 1, MIN(size - 1, (size_t) MEM));
        struct guestmem mem = { 0 };
        (void) guestmem_add_ptr(&mem, GPA, MEM, UVA, ram);

        struct vsockdev_config cfg;
        vsockdev_config_default(&cfg);
        cfg.uds_path = uds;
        cfg.buf_alloc = 4096; /* small, so credit limits are reached */
        struct vsockdev *d;
        if (vsockdev_new(loop, &cfg, &d) < 0)
                abort();
        struct vring rx, tx;
        bool indirect = data[0] & 1;
        ring(&rx, 0, &mem, RX_DESC, RX_AVAIL, RX_USED, indirect);
        ring(&tx, 1, &mem, TX_DESC, TX_AVAIL, TX_USED, indirect);
        vsockdev_attach(d, &mem, &rx, &tx);

        /* The fuzzer's packets, the device's answers, twice over (a second
         * round sees the connections the first one made). */
        for (int round = 0; round < 2; round++) {
                vsockdev_kick(d, &tx);
                vsockdev_kick(d, &rx);
                settle(d);
        }
        /* A host connection too, when the device still runs. */
        if ((data[0] & 2) && vsockdev_running(d)) {
                int sv[2];
                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0) {
                        (void) !write(sv[1], "data", 4);
                        vsockdev_host_connect(d, sv[0], 5000);
                        vsockdev_kick(d, &rx);
                        settle(d);
                        close(sv[1]);
                }
        }
        vsockdev_free(d);
        for (int i = 0; i < 4; i++)
                one_pass();
        /* Connections the device made wait in the backlog: clear it. */
        for (int fd; (fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC)) >= 0;)
                close(fd);
        vring_close(&rx);
        vring_close(&tx);
        guestmem_clear(&mem);
        free(ram);
        return 0;
}
