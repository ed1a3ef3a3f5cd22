#include "vhost/vu.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "common/buf.h"
#include "common/io.h"
#include "common/log.h"
#include "common/macro.h"
#include "vhost/guestmem.h"
#include "vhost/virtio.h"
#include "vhost/vring.h"
#include "vhost/vumsg.h"

/* rx, tx and event: QEMU keeps the event queue to itself, but a front-end
 * that configures it anyway is not refused. */
#define VU_NVQ 3
/* Replies are small and the front-end waits for each; a front-end that
 * lets this much pile up is not reading. */
#define VU_OUT_MAX (64 * 1024)
#define VU_MSGS_PER_PASS 64

struct vu {
        struct loop *loop;
        struct vsockdev *dev;
        struct watcher w;
        struct vu_reader rd;
        struct buf out;
        struct guestmem mem;
        struct vring vr[VU_NVQ];
        uint64_t features;              /* acknowledged by SET_FEATURES */
        uint64_t protocol;              /* acknowledged by SET_PROTOCOL_FEATURES */
        bool closed;
        struct defer free_later;        /* vu_free_later() */
        vu_closed_fn on_closed;
        void *userdata;
};

uint64_t vu_features(void) {
        return (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_INDIRECT_DESC) |
               (1ull << VHOST_USER_F_PROTOCOL_FEATURES);
}

uint64_t vu_protocol_features(void) {
        return (1ull << VU_PROTOCOL_F_REPLY_ACK) | (1ull << VU_PROTOCOL_F_CONFIG) |
               (1ull << VU_PROTOCOL_F_RESET_DEVICE);
}

static const char *request_name(uint32_t r) {
        static const char *const names[] = {
                [VU_GET_FEATURES] = "GET_FEATURES",
                [VU_SET_FEATURES] = "SET_FEATURES",
                [VU_SET_OWNER] = "SET_OWNER",
                [VU_RESET_OWNER] = "RESET_OWNER",
                [VU_SET_MEM_TABLE] = "SET_MEM_TABLE",
                [VU_SET_LOG_BASE] = "SET_LOG_BASE",
                [VU_SET_LOG_FD] = "SET_LOG_FD",
                [VU_SET_VRING_NUM] = "SET_VRING_NUM",
                [VU_SET_VRING_ADDR] = "SET_VRING_ADDR",
                [VU_SET_VRING_BASE] = "SET_VRING_BASE",
                [VU_GET_VRING_BASE] = "GET_VRING_BASE",
                [VU_SET_VRING_KICK] = "SET_VRING_KICK",
                [VU_SET_VRING_CALL] = "SET_VRING_CALL",
                [VU_SET_VRING_ERR] = "SET_VRING_ERR",
                [VU_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
                [VU_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
                [VU_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
                [VU_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
                [VU_GET_CONFIG] = "GET_CONFIG",
                [VU_SET_CONFIG] = "SET_CONFIG",
                [VU_RESET_DEVICE] = "RESET_DEVICE",
        };
        return r < ARRAY_SIZE(names) && names[r] ? names[r] : "unknown request";
}

/* ---- the session's end --------------------------------------------------- */

static void release(struct vu *v) {
        vsockdev_detach(v->dev);
        for (unsigned i = 0; i < VU_NVQ; i++)
                vring_close(&v->vr[i]);
        guestmem_clear(&v->mem);
        int fd = v->w.fd;
        watcher_stop(&v->w);
        safe_close(fd);
        vu_reader_next(&v->rd);
        buf_free(&v->out);
}

static void close_session(struct vu *v, const char *why) {
        if (v->closed)
                return;
        v->closed = true;
        log_info("front-end %s; device stopped", why);
        release(v);
        if (v->on_closed)
                v->on_closed(v, v->userdata);
}

void vu_free(struct vu *v) {
        if (!v)
                return;
        if (!v->closed)
                release(v);
        defer_cancel(&v->free_later);
        free(v);
}

static void on_free_later(struct defer *d) { vu_free(container_of(d, struct vu, free_later)); }

void vu_free_later(struct vu *v) {
        if (v)
                loop_defer(&v->free_later);
}

/* ---- replies ------------------------------------------------------------- */

static void send_bytes(struct vu *v, const uint8_t *p, size_t len) {
        if (buf_empty(&v->out)) {
                struct iovec iov = { .iov_base = (void *) p, .iov_len = len };
                ssize_t n = io_writev_once(v->w.fd, &iov, 1);
                if (n < 0 && n != -EAGAIN) {
                        close_session(v, "stopped reading replies");
                        return;
                }
                if (n > 0) {
                        p += n;
                        len -= (size_t) n;
                }
        }
        if (len == 0)
                return;
        if (buf_append(&v->out, p, len) < 0 || watcher_set(&v->w, EPOLLIN | EPOLLOUT) < 0)
                close_session(v, "does not read its replies");
}

static void reply(struct vu *v, uint32_t request, const void *payload, uint32_t size) {
        uint8_t frame[VU_HDR_SIZE + VU_PAYLOAD_MAX];
        send_bytes(v, frame, vu_reply_frame(request, payload, size, frame));
}

static void reply_u64(struct vu *v, uint32_t request, uint64_t val) { reply(v, request, &val, sizeof val); }

/* ---- request handlers: 0 done, 1 done and replied, -EPROTO drops the
 * front-end (framing), other negative errnos refuse the request ----------- */

static int expect_size(const struct vu_msg *m, uint32_t size) { return m->size == size ? 0 : -EPROTO; }

static int get_u64(const struct vu_msg *m, uint64_t *ret) {
        if (expect_size(m, sizeof *ret) < 0)
                return -EPROTO;
        memcpy(ret, m->payload, sizeof *ret);
        return 0;
}

static struct vring *ring_at(struct vu *v, uint32_t idx) { return idx < VU_NVQ ? &v->vr[idx] : NULL; }

/* A vring state payload and the ring it names. */
static int get_state(struct vu *v, const struct vu_msg *m, struct vu_vring_state *s, struct vring **ret) {
        if (expect_size(m, sizeof *s) < 0)
                return -EPROTO;
        memcpy(s, m->payload, sizeof *s);
        *ret = ring_at(v, s->index);
        return *ret ? 0 : -ERANGE;
}

/* The rings may have become usable, or stopped being so. */
static void kick_all(struct vu *v) {
        vsockdev_kick(v->dev, &v->vr[VSOCK_VQ_RX]);
        vsockdev_kick(v->dev, &v->vr[VSOCK_VQ_TX]);
}

static int h_set_features(struct vu *v, const struct vu_msg *m) {
        uint64_t f;
        if (get_u64(m, &f) < 0)
                return -EPROTO;
        if (f & ~vu_features())
                return -EINVAL;
        v->features = f;
        for (unsigned i = 0; i < VU_NVQ; i++)
                v->vr[i].q.indirect = f & (1ull << VIRTIO_RING_F_INDIRECT_DESC);
        return 0;
}

static int h_set_protocol_features(struct vu *v, const struct vu_msg *m) {
        uint64_t f;
        if (get_u64(m, &f) < 0)
                return -EPROTO;
        v->protocol = f & vu_protocol_features();
        return 0;
}

static int h_set_mem_table(struct vu *v, struct vu_msg *m) {
        uint32_t n;
        if (m->size < 8)
                return -EPROTO;
        memcpy(&n, m->payload, sizeof n);
        if (n > GUESTMEM_MAX_REGIONS || m->size != 8 + n * sizeof(struct vu_mem_region))
                return -EPROTO;
        if (m->n_fds != n)
                return -EBADF;
        struct guestmem fresh = { 0 };
        for (uint32_t i = 0; i < n; i++) {
                struct vu_mem_region r;
                memcpy(&r, m->payload + 8 + i * sizeof r, sizeof r);
                int e = guestmem_map_fd(&fresh, r.gpa, r.size, r.uva, m->fds[i], r.mmap_offset);
                if (e < 0) {
                        log_warn("memory region %u (guest 0x%llx, %llu bytes) cannot be mapped: %s", i,
                                 (unsigned long long) r.gpa, (unsigned long long) r.size, strerror(-e));
                        guestmem_clear(&fresh);
                        return e;
                }
                log_debug("memory region %u: guest 0x%llx, %llu bytes", i, (unsigned long long) r.gpa,
                          (unsigned long long) r.size);
        }
        /* The rings point into the old mapping: move them over before
         * anything else runs. */
        guestmem_move(&v->mem, &fresh);
        for (unsigned i = 0; i < VU_NVQ; i++)
                if (v->vr[i].q.addr_set)
                        (void) virtq_map(&v->vr[i].q, &v->mem);
        kick_all(v);
        return 0;
}

static int h_set_vring_num(struct vu *v, const struct vu_msg *m) {
        struct vu_vring_state s;
        struct vring *r;
        int e = get_state(v, m, &s, &r);
        return e < 0 ? e : virtq_set_num(&r->q, s.num);
}

static int h_set_vring_addr(struct vu *v, const struct vu_msg *m) {
        struct vu_vring_addr a;
        if (expect_size(m, sizeof a) < 0)
                return -EPROTO;
        memcpy(&a, m->payload, sizeof a);
        struct vring *r = ring_at(v, a.index);
        if (!r)
                return -ERANGE;
        virtq_set_addr(&r->q, a.desc, a.avail, a.used);
        int e = virtq_map(&r->q, &v->mem);
        if (e < 0)
                return e;
        virtq_sync_used(&r->q);
        return 0;
}

static int h_set_vring_base(struct vu *v, const struct vu_msg *m) {
        struct vu_vring_state s;
        struct vring *r;
        int e = get_state(v, m, &s, &r);
        if (e < 0)
                return e;
        if (s.num > UINT16_MAX)
                return -EINVAL;
        r->q.last_avail = (uint16_t) s.num;
        /* A queue set up afresh gets a fresh chance. */
        r->q.broken = false;
        r->q.why = NULL;
        return 0;
}

static int h_get_vring_base(struct vu *v, const struct vu_msg *m) {
        struct vu_vring_state s;
        struct vring *r;
        int e = get_state(v, m, &s, &r);
        if (e < 0)
                return e;
        vring_stop(r);
        s.num = r->q.last_avail;
        reply(v, m->request, &s, sizeof s);
        kick_all(v);
        return 1;
}

static int h_set_vring_fd(struct vu *v, struct vu_msg *m) {
        uint64_t u;
        if (get_u64(m, &u) < 0)
                return -EPROTO;
        struct vring *r = ring_at(v, (uint32_t) (u & VU_VRING_IDX_MASK));
        if (!r)
                return -ERANGE;
        int fd = -1;
        if (!(u & VU_VRING_NOFD)) {
                fd = vu_msg_take_fd(m);
                if (fd < 0)
                        return -EBADF;
        }
        switch (m->request) {
        case VU_SET_VRING_CALL:
                vring_set_call(r, fd);
                return 0;
        case VU_SET_VRING_ERR:
                vring_set_err(r, fd);
                return 0;
        default:
                break;
        }
        /* Polling instead of kicks would cost a core: not offered. */
        if (fd < 0)
                return -ENOTSUP;
        int e = vring_set_kick(r, fd);
        if (e < 0)
                return e;
        if (!(v->features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES)))
                r->enabled = true;
        kick_all(v);
        return 0;
}

static int h_set_vring_enable(struct vu *v, const struct vu_msg *m) {
        struct vu_vring_state s;
        struct vring *r;
        int e = get_state(v, m, &s, &r);
        if (e < 0)
                return e;
        if (s.num > 1)
                return -EINVAL;
        r->enabled = s.num;
        kick_all(v);
        return 0;
}

static int h_get_config(struct vu *v, const struct vu_msg *m) {
        struct vu_config_hdr h;
        if (m->size < sizeof h)
                return -EPROTO;
        memcpy(&h, m->payload, sizeof h);
        if (m->size != sizeof h + (uint64_t) h.size)
                return -EPROTO;
        /* The config space is struct virtio_vsock_config: le64 guest_cid. */
        uint64_t cid = htole64(vsockdev_guest_cid(v->dev));
        if (h.offset > sizeof cid || h.size > sizeof cid - h.offset) {
                reply(v, m->request, NULL, 0); /* the protocol's "error" */
                return 1;
        }
        uint8_t out[sizeof h + sizeof cid];
        memcpy(out, &h, sizeof h);
        memcpy(out + sizeof h, (const uint8_t *) &cid + h.offset, h.size);
        reply(v, m->request, out, (uint32_t) (sizeof h + h.size));
        return 1;
}

static void reset_device(struct vu *v) {
        vsockdev_reset(v->dev);
        for (unsigned i = 0; i < VU_NVQ; i++)
                vring_close(&v->vr[i]);
        v->features = 0;
}

static int dispatch(struct vu *v, struct vu_msg *m) {
        switch (m->request) {
        case VU_GET_FEATURES:
                reply_u64(v, m->request, vu_features());
                return 1;
        case VU_SET_FEATURES:
                return h_set_features(v, m);
        case VU_GET_PROTOCOL_FEATURES:
                reply_u64(v, m->request, vu_protocol_features());
                return 1;
        case VU_SET_PROTOCOL_FEATURES:
                return h_set_protocol_features(v, m);
        case VU_SET_OWNER:
                return 0;
        case VU_RESET_OWNER:
        case VU_RESET_DEVICE:
                reset_device(v);
                return 0;
        case VU_SET_MEM_TABLE:
                return h_set_mem_table(v, m);
        case VU_SET_VRING_NUM:
                return h_set_vring_num(v, m);
        case VU_SET_VRING_ADDR:
                return h_set_vring_addr(v, m);
        case VU_SET_VRING_BASE:
                return h_set_vring_base(v, m);
        case VU_GET_VRING_BASE:
                return h_get_vring_base(v, m);
        case VU_SET_VRING_KICK:
        case VU_SET_VRING_CALL:
        case VU_SET_VRING_ERR:
                return h_set_vring_fd(v, m);
        case VU_SET_VRING_ENABLE:
                return h_set_vring_enable(v, m);
        case VU_GET_CONFIG:
                return h_get_config(v, m);
        case VU_SET_CONFIG:
                return -EPERM; /* the guest CID is read-only */
        default:
                /* Dirty logging, IOTLB, inflight tracking...: not offered. */
                return -ENOTSUP;
        }
}

static void handle(struct vu *v, struct vu_msg *m) {
        log_debug("front-end: %s (%u bytes, %u fds)", request_name(m->request), m->size, m->n_fds);
        int r = dispatch(v, m);
        if (v->closed)
                return;
        if (r == -EPROTO) {
                log_warn("front-end sent a malformed %s (%u bytes)", request_name(m->request), m->size);
                close_session(v, "broke the protocol");
                return;
        }
        if (r < 0)
                log_warn("front-end request %s (%u) refused: %s", request_name(m->request), m->request,
                         strerror(-r));
        if (r != 1 && (v->protocol & (1ull << VU_PROTOCOL_F_REPLY_ACK)) && (m->flags & VU_FLAG_NEED_REPLY))
                reply_u64(v, m->request, r < 0 ? 1 : 0);
}

static void on_io(struct watcher *w, uint32_t revents) {
        struct vu *v = container_of(w, struct vu, w);
        if (!buf_empty(&v->out) && (revents & EPOLLOUT)) {
                struct iovec iov = { .iov_base = buf_head(&v->out), .iov_len = buf_size(&v->out) };
                ssize_t n = io_writev_once(w->fd, &iov, 1);
                if (n < 0 && n != -EAGAIN) {
                        close_session(v, "went away");
                        return;
                }
                if (n > 0)
                        buf_consume(&v->out, (size_t) n);
                if (buf_empty(&v->out) && watcher_set(w, EPOLLIN) < 0) {
                        close_session(v, "cannot be watched");
                        return;
                }
        }
        if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                return;
        for (int i = 0; i < VU_MSGS_PER_PASS && !v->closed; i++) {
                int r = vu_reader_read(&v->rd, w->fd);
                if (r == 0)
                        return;
                if (r < 0) {
                        close_session(v, r == -ECONNRESET ? "disconnected"
                                         : r == -EPROTO   ? "sent a malformed message"
                                                          : "connection failed");
                        return;
                }
                handle(v, &v->rd.msg);
                vu_reader_next(&v->rd);
        }
}

static void on_ring_kick(struct vring *r, void *userdata) {
        struct vu *v = userdata;
        vsockdev_kick(v->dev, r);
}

int vu_new(struct loop *l, struct vsockdev *dev, int fd, vu_closed_fn on_closed, void *userdata, struct vu **ret) {
        struct vu *v = calloc(1, sizeof *v);
        if (!v) {
                safe_close(fd);
                return -ENOMEM;
        }
        v->loop = l;
        v->dev = dev;
        defer_init(&v->free_later, l, on_free_later);
        v->on_closed = on_closed;
        v->userdata = userdata;
        v->out = BUF_INIT(VU_OUT_MAX);
        vu_reader_init(&v->rd);
        for (unsigned i = 0; i < VU_NVQ; i++)
                vring_init(&v->vr[i], l, i, on_ring_kick, v);
        int r = fd_set_nonblock(fd, 1);
        watcher_init(&v->w, l, fd, on_io);
        if (r == 0)
                r = watcher_set(&v->w, EPOLLIN);
        if (r < 0) {
                watcher_stop(&v->w);
                safe_close(fd);
                free(v);
                return r;
        }
        vsockdev_attach(dev, &v->mem, &v->vr[VSOCK_VQ_RX], &v->vr[VSOCK_VQ_TX]);
        *ret = v;
        return 0;
}
