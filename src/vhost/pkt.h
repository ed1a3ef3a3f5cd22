/* virtio-vsock packets: the 44-byte little-endian header, the verdict on
 * a header the guest sent, and copying between flat memory and the
 * scattered buffers of a descriptor chain. Pure functions. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vhost/virtio.h"

struct vsock_hdr {
        uint64_t src_cid, dst_cid;
        uint32_t src_port, dst_port;
        uint32_t len;
        uint16_t type, op;
        uint32_t flags;
        uint32_t buf_alloc, fwd_cnt;
};

/* @b holds VSOCK_HDR_SIZE bytes. */
void vsock_hdr_decode(const uint8_t *b, struct vsock_hdr *h);
void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t *b);

enum pkt_verdict {
        PKT_OK,
        PKT_DROP,       /* ignore it: not ours to answer */
        PKT_RST,        /* answer with a reset (never for an RST) */
};

/* Judge a header from the guest whose chain carries @body bytes after the
 * header. Packets from another CID than the guest's or to another than
 * the host's are dropped (a guest cannot speak for others); unknown types
 * and operations, payloads larger than the chain holds or than 64 KiB,
 * and control packets with a payload are reset. *@ret_why says why when
 * the verdict is not PKT_OK. */
enum pkt_verdict vsock_pkt_check(const struct vsock_hdr *h, uint64_t guest_cid, uint64_t body,
                                 const char **ret_why);

/* Copy @len bytes starting @off bytes into the scattered buffer out to
 * @dst (gather) or in from @src (scatter). Return how many were copied:
 * fewer when the buffer ends first. */
size_t iov_gather(const struct iovec *iov, unsigned n, size_t off, void *dst, size_t len);
size_t iov_scatter(const struct iovec *iov, unsigned n, size_t off, const void *src, size_t len);
/* The pieces of bytes [@off, @off + @len) of a scattered buffer, into
 * @out (at most @max). Returns how many pieces; they cover less than
 * @len bytes when the buffer (or @max) ends first. */
unsigned iov_slice(const struct iovec *iov, unsigned n, size_t off, size_t len, struct iovec *out, unsigned max);
size_t iov_total(const struct iovec *iov, unsigned n);
