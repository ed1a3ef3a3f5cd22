#include "fake-driver.h"

#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "vhost/virtio.h"

void fdrv_mem_init(struct fdrv_mem *m, void *base, uint64_t gpa, uint64_t size) {
        *m = (struct fdrv_mem) { .base = base, .gpa = gpa, .size = size };
}

uint64_t fdrv_alloc(struct fdrv_mem *m, uint64_t size, uint64_t align) {
        uint64_t at = (m->brk + align - 1) / align * align;
        if (at + size > m->size) {
                fprintf(stderr, "fake driver: out of guest memory\n");
                abort();
        }
        m->brk = at + size;
        return m->gpa + at;
}

void *fdrv_ptr(const struct fdrv_mem *m, uint64_t gpa) { return m->base + (gpa - m->gpa); }

static void put16(const struct fdrv_mem *m, uint64_t gpa, uint16_t v) {
        v = htole16(v);
        memcpy(fdrv_ptr(m, gpa), &v, 2);
}

static uint16_t get16(const struct fdrv_mem *m, uint64_t gpa) {
        uint16_t v;
        memcpy(&v, fdrv_ptr(m, gpa), 2);
        return le16toh(v);
}

static uint32_t get32(const struct fdrv_mem *m, uint64_t gpa) {
        uint32_t v;
        memcpy(&v, fdrv_ptr(m, gpa), 4);
        return le32toh(v);
}

void fdrv_q_init(struct fdrv_q *q, struct fdrv_mem *m, uint16_t num) {
        *q = (struct fdrv_q) { .mem = m, .num = num };
        q->desc = fdrv_alloc(m, VIRTQ_DESC_BYTES(num), 16);
        q->avail = fdrv_alloc(m, VIRTQ_AVAIL_BYTES(num), 2);
        q->used = fdrv_alloc(m, VIRTQ_USED_BYTES(num), 4);
        memset(fdrv_ptr(m, q->desc), 0, VIRTQ_DESC_BYTES(num));
        memset(fdrv_ptr(m, q->avail), 0, VIRTQ_AVAIL_BYTES(num));
        memset(fdrv_ptr(m, q->used), 0, VIRTQ_USED_BYTES(num));
        /* The free list threads through the descriptors' next fields. */
        for (uint16_t i = 0; i < num; i++)
                fdrv_set_desc(q, i, 0, 0, 0, (uint16_t) (i + 1));
        q->free_head = 0;
        q->n_free = num;
}

void fdrv_q_reserve(struct fdrv_q *q, uint16_t first) {
        for (uint16_t i = 0; i < first; i++)
                fdrv_set_desc(q, i, 0, 0, 0, (uint16_t) (i + 1));
        q->free_head = 0;
        q->n_free = first;
}

void fdrv_set_desc(struct fdrv_q *q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
        struct virtq_desc d = { htole64(addr), htole32(len), htole16(flags), htole16(next) };
        memcpy(fdrv_ptr(q->mem, q->desc + (uint64_t) i * 16), &d, sizeof d);
}

static uint16_t desc_next(const struct fdrv_q *q, uint16_t i) { return get16(q->mem, q->desc + (uint64_t) i * 16 + 14); }

void fdrv_publish(struct fdrv_q *q, uint16_t head) {
        put16(q->mem, q->avail + 4 + 2 * (uint64_t) (q->avail_idx % q->num), head);
        q->avail_idx++;
        __atomic_thread_fence(__ATOMIC_RELEASE);
        put16(q->mem, q->avail + 2, q->avail_idx);
}

void fdrv_set_avail_idx(struct fdrv_q *q, uint16_t idx) {
        q->avail_idx = idx;
        put16(q->mem, q->avail + 2, idx);
}

void fdrv_set_avail_flags(struct fdrv_q *q, uint16_t flags) { put16(q->mem, q->avail, flags); }

int fdrv_add(struct fdrv_q *q, const struct fdrv_buf *bufs, unsigned n_out, unsigned n_in) {
        unsigned n = n_out + n_in;
        if (n == 0 || n > q->n_free)
                return -1;
        uint16_t head = q->free_head, i = head;
        for (unsigned k = 0; k < n; k++) {
                uint16_t next = desc_next(q, i);
                uint16_t flags = (k >= n_out ? VIRTQ_DESC_F_WRITE : 0) | (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0);
                fdrv_set_desc(q, i, bufs[k].gpa, bufs[k].len, flags, k + 1 < n ? next : 0);
                if (k + 1 < n)
                        i = next;
                else
                        q->free_head = next;
        }
        q->n_free = (uint16_t) (q->n_free - n);
        q->chain_len[head] = (uint16_t) n;
        fdrv_publish(q, head);
        return head;
}

unsigned fdrv_used_pending(const struct fdrv_q *q) {
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        return (uint16_t) (get16(q->mem, q->used + 2) - q->used_seen);
}

bool fdrv_used(struct fdrv_q *q, uint32_t *ret_head, uint32_t *ret_len) {
        if (fdrv_used_pending(q) == 0)
                return false;
        uint64_t e = q->used + 4 + 8 * (uint64_t) (q->used_seen % q->num);
        uint32_t head = get32(q->mem, e), len = get32(q->mem, e + 4);
        q->used_seen++;
        if (head < q->num && q->chain_len[head]) {
                /* Back to the free list: the chain's last next points at the
                 * old free head. */
                uint16_t last = (uint16_t) head;
                for (unsigned k = 1; k < q->chain_len[head]; k++)
                        last = desc_next(q, last);
                fdrv_set_desc(q, last, 0, 0, 0, q->free_head);
                q->free_head = (uint16_t) head;
                q->n_free = (uint16_t) (q->n_free + q->chain_len[head]);
                q->chain_len[head] = 0;
        }
        *ret_head = head;
        *ret_len = len;
        return true;
}

/* ---- vsock ------------------------------------------------------------------- */

void fdrv_vsock_init(struct fdrv_vsock *v, struct fdrv_mem *m, uint16_t num, uint64_t cid) {
        memset(v, 0, sizeof *v);
        v->mem = m;
        v->cid = cid;
        fdrv_q_init(&v->rx, m, num);
        fdrv_q_init(&v->tx, m, num);
}

static bool post_one(struct fdrv_vsock *v) {
        struct fdrv_buf b[2] = {
                { fdrv_alloc(v->mem, VSOCK_HDR_SIZE, 8), VSOCK_HDR_SIZE },
                { fdrv_alloc(v->mem, FDRV_RX_BUF, 8), FDRV_RX_BUF },
        };
        int head = fdrv_add(&v->rx, b, 0, 2);
        if (head < 0)
                return false;
        v->rx_hdr[head] = b[0].gpa;
        v->rx_data[head] = b[1].gpa;
        return true;
}

unsigned fdrv_post_rx(struct fdrv_vsock *v, unsigned n) {
        unsigned k = 0;
        while (k < n && post_one(v))
                k++;
        return k;
}

int fdrv_send(struct fdrv_vsock *v, const struct vsock_hdr *h, const void *payload, uint32_t len) {
        uint64_t gpa = fdrv_alloc(v->mem, VSOCK_HDR_SIZE + (uint64_t) len, 8);
        uint8_t *p = fdrv_ptr(v->mem, gpa);
        vsock_hdr_encode(h, p);
        if (len)
                memcpy(p + VSOCK_HDR_SIZE, payload, len);
        struct fdrv_buf b = { gpa, VSOCK_HDR_SIZE + len };
        return fdrv_add(&v->tx, &b, 1, 0);
}

struct vsock_hdr fdrv_hdr(const struct fdrv_vsock *v, uint16_t op, uint32_t src_port, uint32_t dst_port) {
        return (struct vsock_hdr) {
                .src_cid = v->cid,
                .dst_cid = VSOCK_HOST_CID,
                .src_port = src_port,
                .dst_port = dst_port,
                .type = VSOCK_TYPE_STREAM,
                .op = op,
                .buf_alloc = 256 * 1024,
        };
}

bool fdrv_recv(struct fdrv_vsock *v, struct vsock_hdr *h, void *payload, size_t cap, uint32_t *ret_len) {
        uint32_t head, len;
        if (!fdrv_used(&v->rx, &head, &len))
                return false;
        *h = (struct vsock_hdr) { 0 };
        uint32_t plen = 0;
        if (head < FDRV_MAX_NUM && len >= VSOCK_HDR_SIZE && v->rx_hdr[head]) {
                vsock_hdr_decode(fdrv_ptr(v->mem, v->rx_hdr[head]), h);
                plen = len - VSOCK_HDR_SIZE;
                if (payload && cap)
                        memcpy(payload, fdrv_ptr(v->mem, v->rx_data[head]), plen < cap ? plen : cap);
        }
        if (ret_len)
                *ret_len = plen;
        post_one(v);
        return true;
}

unsigned fdrv_reap_tx(struct fdrv_vsock *v) {
        unsigned n = 0;
        uint32_t head, len;
        while (fdrv_used(&v->tx, &head, &len))
                n++;
        return n;
}

ssize_t fdrv_send_fds(int sock, const void *data, size_t len, const int *fds, unsigned nfds) {
        union {
                char buf[CMSG_SPACE(sizeof(int) * 32)];
                struct cmsghdr align;
        } control;
        if (nfds > 32)
                return -1;
        struct iovec iov = { .iov_base = (void *) data, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (nfds) {
                mh.msg_control = control.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
        }
        return sendmsg(sock, &mh, MSG_NOSIGNAL);
}
