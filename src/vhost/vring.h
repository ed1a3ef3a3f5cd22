/* One virtqueue as vhost-user hands it over: the ring in guest memory plus
 * the front-end's eventfds (kick: the guest added buffers; call: we used
 * some; err: the ring went bad) and the two vhost-user states, started
 * (a kick fd arrived, until GET_VRING_BASE) and enabled
 * (SET_VRING_ENABLE, or always without protocol features). */
#pragma once

#include <stdbool.h>

#include "agent/serve/loop.h"
#include "vhost/virtq.h"

struct vring;
typedef void (*vring_kick_fn)(struct vring *r, void *userdata);

struct vring {
        struct virtq q;
        unsigned index;
        struct watcher kick;    /* fd -1 while there is none */
        int call_fd;
        int err_fd;
        bool started;
        bool enabled;
        bool call_owed;         /* used buffers not yet signalled */
        vring_kick_fn on_kick;
        void *userdata;
};

/* No fds, stopped, disabled; @on_kick runs for each kick once started. */
void vring_init(struct vring *r, struct loop *l, unsigned index, vring_kick_fn on_kick, void *userdata);
/* Take @fd (consumed, even on failure) as the kick eventfd and start the
 * ring. Returns 0 or -errno. */
int vring_set_kick(struct vring *r, int fd);
/* Take @fd (consumed; -1 for none) as the call or error eventfd. */
void vring_set_call(struct vring *r, int fd);
void vring_set_err(struct vring *r, int fd);
/* Stop the ring (GET_VRING_BASE): no more kicks are read; the call and
 * error fds are closed too, the front-end sends them again on restart. */
void vring_stop(struct vring *r);
/* Stop, close every fd and forget the queue (the ring is as new). */
void vring_close(struct vring *r);
/* Started, enabled, mapped and not broken: the device may use it. */
static inline bool vring_live(const struct vring *r) {
        return r->started && r->enabled && virtq_mapped(&r->q) && !r->q.broken;
}
/* Interrupt the guest if buffers were used since the last time and the
 * driver has not suppressed interrupts. */
void vring_flush_call(struct vring *r);
/* Tell the front-end the ring is broken (its error eventfd), if it gave one. */
void vring_signal_err(struct vring *r);
