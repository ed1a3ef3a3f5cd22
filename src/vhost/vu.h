/* One vhost-user session with a front-end (QEMU): feature negotiation,
 * ownership, the memory table, the three vrings with their eventfds, the
 * config space (the guest CID) and resets. It owns the guest memory
 * mapping and the rings and lends them to the device. A front-end that
 * breaks the framing is disconnected; a request that makes no sense is
 * refused (with REPLY_ACK) and logged, and the session goes on. */
#pragma once

#include <stdint.h>

#include "agent/serve/loop.h"
#include "vhost/device.h"

struct vu;
typedef void (*vu_closed_fn)(struct vu *v, void *userdata);

/* A session on connected socket @fd (consumed, even on failure). When the
 * front-end leaves or is dropped, the device is detached and @on_closed
 * runs (once, from the loop); free the session after that callback
 * returns, e.g. with loop_defer(). */
int vu_new(struct loop *l, struct vsockdev *dev, int fd, vu_closed_fn on_closed, void *userdata, struct vu **ret);
/* Detach from the device, unmap the guest memory, close every fd. NULL is fine. */
void vu_free(struct vu *v);
/* Free @v after the current dispatch pass (from its own callbacks). */
void vu_free_later(struct vu *v);

/* What we offer (exposed for tests). */
uint64_t vu_features(void);
uint64_t vu_protocol_features(void);
