#include "vhost/pkt.h"

#include <endian.h>
#include <string.h>

static uint64_t get64(const uint8_t *p) {
        uint64_t v;
        memcpy(&v, p, 8);
        return le64toh(v);
}
static uint32_t get32(const uint8_t *p) {
        uint32_t v;
        memcpy(&v, p, 4);
        return le32toh(v);
}
static uint16_t get16(const uint8_t *p) {
        uint16_t v;
        memcpy(&v, p, 2);
        return le16toh(v);
}
static void put64(uint8_t *p, uint64_t v) {
        v = htole64(v);
        memcpy(p, &v, 8);
}
static void put32(uint8_t *p, uint32_t v) {
        v = htole32(v);
        memcpy(p, &v, 4);
}
static void put16(uint8_t *p, uint16_t v) {
        v = htole16(v);
        memcpy(p, &v, 2);
}

void vsock_hdr_decode(const uint8_t *b, struct vsock_hdr *h) {
        h->src_cid = get64(b);
        h->dst_cid = get64(b + 8);
        h->src_port = get32(b + 16);
        h->dst_port = get32(b + 20);
        h->len = get32(b + 24);
        h->type = get16(b + 28);
        h->op = get16(b + 30);
        h->flags = get32(b + 32);
        h->buf_alloc = get32(b + 36);
        h->fwd_cnt = get32(b + 40);
}

void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t *b) {
        put64(b, h->src_cid);
        put64(b + 8, h->dst_cid);
        put32(b + 16, h->src_port);
        put32(b + 20, h->dst_port);
        put32(b + 24, h->len);
        put16(b + 28, h->type);
        put16(b + 30, h->op);
        put32(b + 32, h->flags);
        put32(b + 36, h->buf_alloc);
        put32(b + 40, h->fwd_cnt);
}

enum pkt_verdict vsock_pkt_check(const struct vsock_hdr *h, uint64_t guest_cid, uint64_t body,
                                 const char **ret_why) {
        const char *why;
        enum pkt_verdict v = PKT_RST;
        if (h->src_cid != guest_cid)
                why = "source CID is not the guest's", v = PKT_DROP;
        else if (h->dst_cid != VSOCK_HOST_CID)
                why = "destination CID is not the host", v = PKT_DROP;
        else if (h->type != VSOCK_TYPE_STREAM)
                why = "not a stream packet";
        else if (h->op == VSOCK_OP_INVALID || h->op > VSOCK_OP_CREDIT_REQUEST)
                why = "unknown operation";
        else if (h->len > VSOCK_MAX_PKT_PAYLOAD)
                why = "payload larger than 64 KiB";
        else if (h->len > body)
                why = "payload longer than its buffer";
        else if (h->len > 0 && h->op != VSOCK_OP_RW)
                why = "control packet with a payload";
        else
                return PKT_OK;
        /* Resetting a reset would let two peers bounce packets forever. */
        if (v == PKT_RST && h->op == VSOCK_OP_RST)
                v = PKT_DROP;
        *ret_why = why;
        return v;
}

size_t iov_total(const struct iovec *iov, unsigned n) {
        size_t t = 0;
        for (unsigned i = 0; i < n; i++)
                t += iov[i].iov_len;
        return t;
}

/* Walk to byte @off: the piece it is in and the offset within it. */
static unsigned seek(const struct iovec *iov, unsigned n, size_t *off) {
        unsigned i = 0;
        while (i < n && *off >= iov[i].iov_len)
                *off -= iov[i++].iov_len;
        return i;
}

size_t iov_gather(const struct iovec *iov, unsigned n, size_t off, void *dst, size_t len) {
        size_t done = 0;
        for (unsigned i = seek(iov, n, &off); i < n && done < len; i++, off = 0) {
                size_t k = iov[i].iov_len - off;
                if (k > len - done)
                        k = len - done;
                memcpy((uint8_t *) dst + done, (const uint8_t *) iov[i].iov_base + off, k);
                done += k;
        }
        return done;
}

size_t iov_scatter(const struct iovec *iov, unsigned n, size_t off, const void *src, size_t len) {
        size_t done = 0;
        for (unsigned i = seek(iov, n, &off); i < n && done < len; i++, off = 0) {
                size_t k = iov[i].iov_len - off;
                if (k > len - done)
                        k = len - done;
                memcpy((uint8_t *) iov[i].iov_base + off, (const uint8_t *) src + done, k);
                done += k;
        }
        return done;
}

unsigned iov_slice(const struct iovec *iov, unsigned n, size_t off, size_t len, struct iovec *out, unsigned max) {
        unsigned k = 0;
        for (unsigned i = seek(iov, n, &off); i < n && len > 0 && k < max; i++, off = 0) {
                size_t piece = iov[i].iov_len - off;
                if (piece > len)
                        piece = len;
                if (piece == 0)
                        continue;
                out[k++] = (struct iovec) { .iov_base = (uint8_t *) iov[i].iov_base + off, .iov_len = piece };
                len -= piece;
        }
        return k;
}
