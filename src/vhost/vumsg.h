/* vhost-user messages on the front-end's unix socket (QEMU
 * docs/interop/vhost-user.rst): a 12-byte header (request, flags, size;
 * native byte order) and a payload, with file descriptors riding along as
 * SCM_RIGHTS. The reader takes exactly one message at a time, header then
 * payload, so the descriptors of the next message are never picked up
 * early; sizes are checked before anything is read into the payload. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VU_HDR_SIZE 12
/* Our largest payload is a memory table (8 + 8 * 32 bytes) or a config
 * space access; anything announced larger is a broken front-end. */
#define VU_PAYLOAD_MAX 4096
#define VU_MAX_FDS 8

#define VU_VERSION 0x1
#define VU_VERSION_MASK 0x3
#define VU_FLAG_REPLY (1u << 2)
#define VU_FLAG_NEED_REPLY (1u << 3)

enum vu_request {
        VU_GET_FEATURES = 1,
        VU_SET_FEATURES = 2,
        VU_SET_OWNER = 3,
        VU_RESET_OWNER = 4,
        VU_SET_MEM_TABLE = 5,
        VU_SET_LOG_BASE = 6,
        VU_SET_LOG_FD = 7,
        VU_SET_VRING_NUM = 8,
        VU_SET_VRING_ADDR = 9,
        VU_SET_VRING_BASE = 10,
        VU_GET_VRING_BASE = 11,
        VU_SET_VRING_KICK = 12,
        VU_SET_VRING_CALL = 13,
        VU_SET_VRING_ERR = 14,
        VU_GET_PROTOCOL_FEATURES = 15,
        VU_SET_PROTOCOL_FEATURES = 16,
        VU_GET_QUEUE_NUM = 17,
        VU_SET_VRING_ENABLE = 18,
        VU_GET_CONFIG = 24,
        VU_SET_CONFIG = 25,
        VU_RESET_DEVICE = 34,
};

#define VU_PROTOCOL_F_MQ 0
#define VU_PROTOCOL_F_REPLY_ACK 3
#define VU_PROTOCOL_F_CONFIG 9
#define VU_PROTOCOL_F_RESET_DEVICE 13

/* Payload shapes. */
struct vu_vring_state {
        uint32_t index;
        uint32_t num;
};

struct vu_vring_addr {
        uint32_t index;
        uint32_t flags;
        uint64_t desc;
        uint64_t used;
        uint64_t avail;
        uint64_t log;
};

struct vu_mem_region {
        uint64_t gpa;
        uint64_t size;
        uint64_t uva;
        uint64_t mmap_offset;
};

struct vu_config_hdr {
        uint32_t offset;
        uint32_t size;
        uint32_t flags;
};

/* SET_VRING_KICK/CALL/ERR: the ring in bits 0-7, "no fd" in bit 8. */
#define VU_VRING_IDX_MASK 0xffu
#define VU_VRING_NOFD (1u << 8)

struct vu_msg {
        uint32_t request, flags, size;
        uint8_t payload[VU_PAYLOAD_MAX] __attribute__((aligned(8)));
        int fds[VU_MAX_FDS];
        unsigned n_fds;
};

struct vu_reader {
        struct vu_msg msg;
        size_t have;            /* header + payload bytes read so far */
};

void vu_reader_init(struct vu_reader *r);
/* Read from non-blocking @fd. Returns 1 with a whole message in r->msg,
 * 0 when more bytes are needed, -ECONNRESET at EOF, -EPROTO for a bad
 * header (version, size) or more descriptors than VU_MAX_FDS, or another
 * negative errno. */
int vu_reader_read(struct vu_reader *r, int fd);
/* Done with the message: close the descriptors no handler took (set to
 * -1 to take one) and start the next. */
void vu_reader_next(struct vu_reader *r);

/* Take the message's only descriptor: -1 unless exactly one came. */
int vu_msg_take_fd(struct vu_msg *m);

/* A reply to @request carrying @size payload bytes, framed into @out
 * (VU_HDR_SIZE + @size bytes). Returns the frame's length. */
size_t vu_reply_frame(uint32_t request, const void *payload, uint32_t size, uint8_t *out);
