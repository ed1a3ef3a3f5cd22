/* The virtio-vsock device behind the rings: it turns guest packets into
 * host unix-socket connections and back, Firecracker's way. Host->guest:
 * a process connects to the hybrid socket (uds_path) and writes
 * "CONNECT <port>\n" (hostlisten.c); guest->host: a REQUEST to port P
 * becomes a connection to "<uds_path>_P". One event loop drives it all. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "agent/serve/loop.h"
#include "vhost/guestmem.h"
#include "vhost/vring.h"

struct vsockdev;

struct vsockdev_config {
        uint64_t guest_cid;
        const char *uds_path;           /* not copied: must outlive the device */
        uint32_t buf_alloc;             /* receive buffer per connection */
        unsigned max_conns;
        int connect_timeout_ms;         /* guest's answer to a host CONNECT */
        int close_timeout_ms;           /* guest's RST after a full shutdown */
};

/* Defaults: 256 KiB buffers, 1024 connections, 10 s timeouts. */
void vsockdev_config_default(struct vsockdev_config *cfg);

/* A device with no rings yet. Does not listen (see hostlisten.h). */
int vsockdev_new(struct loop *l, const struct vsockdev_config *cfg, struct vsockdev **ret);
/* Close every connection and free. NULL is fine. Call it outside the
 * loop's dispatch (connections are freed at once, not deferred). */
void vsockdev_free(struct vsockdev *d);
/* The first step of vsockdev_free, for when the loop will not run again
 * but the rings' owner still has to detach: every connection is closed and
 * freed at once. */
void vsockdev_close_all(struct vsockdev *d);

/* The rings and memory to use from now on (the front-end session owns
 * them and keeps the pointers valid until vsockdev_detach). */
void vsockdev_attach(struct vsockdev *d, const struct guestmem *mem, struct vring *rx, struct vring *tx);
/* Drop every connection (the guest was reset or went away) and forget the
 * rings. */
void vsockdev_detach(struct vsockdev *d);
/* Drop every connection but keep the rings: a device reset. */
void vsockdev_reset(struct vsockdev *d);

/* Ring @r (rx or tx) may have new buffers, or changed state: look. */
void vsockdev_kick(struct vsockdev *d, struct vring *r);

/* Whether both rings are usable (a host CONNECT is refused otherwise). */
bool vsockdev_running(const struct vsockdev *d);

/* A host process asked for guest port @port on @fd (consumed). */
void vsockdev_host_connect(struct vsockdev *d, int fd, uint32_t port);

uint64_t vsockdev_guest_cid(const struct vsockdev *d);
/* Live connections (for tests and the log). */
unsigned vsockdev_conn_count(const struct vsockdev *d);
