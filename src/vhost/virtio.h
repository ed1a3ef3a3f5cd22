/* Wire constants of virtio 1.x split virtqueues and of the virtio-vsock
 * device (virtio spec 1.2, sections 2.7 and 5.10). Everything the guest
 * writes is little-endian; the structs here are only ever read through
 * the accessors in virtq.c and pkt.c, never trusted as laid out. */
#pragma once

#include <stdint.h>

/* Feature bits (virtio 1.x and vhost-user). */
#define VIRTIO_F_VERSION_1 32
#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX 29
#define VHOST_USER_F_PROTOCOL_FEATURES 30
#define VHOST_F_LOG_ALL 26

/* Split virtqueue layout. */
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1
#define VIRTQ_MAX_SIZE 32768

struct virtq_desc {
        uint64_t addr;
        uint32_t len;
        uint16_t flags;
        uint16_t next;
};

struct virtq_used_elem {
        uint32_t id;
        uint32_t len;
};

/* Byte sizes of the three parts for a queue of @num entries (with room for
 * the event-index fields, which cost nothing to check). */
#define VIRTQ_DESC_BYTES(num) ((uint64_t) (num) * 16)
#define VIRTQ_AVAIL_BYTES(num) (6 + (uint64_t) (num) * 2)
#define VIRTQ_USED_BYTES(num) (6 + (uint64_t) (num) * 8)

/* virtio-vsock. Queue 0 carries packets to the guest (rx), queue 1 from
 * it (tx); queue 2 (events) is QEMU's own business. */
#define VSOCK_VQ_RX 0
#define VSOCK_VQ_TX 1
#define VSOCK_VQ_EVENT 2

#define VSOCK_HOST_CID 2
#define VSOCK_TYPE_STREAM 1
#define VSOCK_TYPE_SEQPACKET 2

enum vsock_op {
        VSOCK_OP_INVALID = 0,
        VSOCK_OP_REQUEST = 1,
        VSOCK_OP_RESPONSE = 2,
        VSOCK_OP_RST = 3,
        VSOCK_OP_SHUTDOWN = 4,
        VSOCK_OP_RW = 5,
        VSOCK_OP_CREDIT_UPDATE = 6,
        VSOCK_OP_CREDIT_REQUEST = 7,
};

#define VSOCK_SHUTDOWN_RCV 1
#define VSOCK_SHUTDOWN_SEND 2

/* The packet header: 44 bytes, little-endian, no padding. */
#define VSOCK_HDR_SIZE 44

/* Largest payload one packet may carry (the Linux drivers' limit, 64 KiB):
 * anything bigger from the guest is refused before it is looked at. */
#define VSOCK_MAX_PKT_PAYLOAD (64 * 1024)
