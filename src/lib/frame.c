/* Blocking frame I/O on a vsock_conn: 1-byte type, 4-byte big-endian
 * length, payload. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "common/io.h"
#include "common/macro.h"
#include "conn-internal.h"
#include "vsock/error.h"
#include "vsock/frame.h"


/* iovecs kept on the stack; longer gathers are copied to the heap. */
#define IOV_STACK 16

_public_ void vsock_frame_header(uint8_t hdr[VSOCK_FRAME_HEADER_SIZE], uint8_t type, uint32_t len) {
        hdr[0] = type;
        hdr[1] = (uint8_t) (len >> 24);
        hdr[2] = (uint8_t) (len >> 16);
        hdr[3] = (uint8_t) (len >> 8);
        hdr[4] = (uint8_t) len;
}

_public_ int vsock_frame_header_parse(const uint8_t hdr[VSOCK_FRAME_HEADER_SIZE], uint32_t max_payload,
                                     uint8_t *ret_type, uint32_t *ret_len) {
        uint32_t len = (uint32_t) hdr[1] << 24 | (uint32_t) hdr[2] << 16 | (uint32_t) hdr[3] << 8 | (uint32_t) hdr[4];
        /* len + 1 (for the NUL readers add) must not wrap a 32-bit size_t. */
        if (len > max_payload || (SIZE_MAX <= UINT32_MAX && len == UINT32_MAX))
                return VSOCK_ERR(VSOCK_E_FRAME_TOO_LARGE, EMSGSIZE);
        if (ret_type)
                *ret_type = hdr[0];
        if (ret_len)
                *ret_len = len;
        return 0;
}

/* @iov[0] is reserved for the header and filled here. */
static int write_frame(vsock_conn *c, uint8_t type, struct iovec *iov, int iovcnt, size_t len) {
        if (len > UINT32_MAX)
                return VSOCK_ERR(VSOCK_E_FRAME_TOO_LARGE, EMSGSIZE);

        uint8_t hdr[VSOCK_FRAME_HEADER_SIZE];
        vsock_frame_header(hdr, type, (uint32_t) len);
        iov[0] = (struct iovec) { .iov_base = hdr, .iov_len = sizeof hdr };

        /* One gather for header and payload, under the conn's write lock:
         * concurrent writers of whole frames never interleave, and a frame
         * is never split into a header write and a payload write. */
        size_t done = 0;
        pthread_mutex_lock(&c->write_lock);
        int r = io_writev_all_n(c->fd, iov, iovcnt, c->write_deadline_ns, c->cancel_fd, &done);
        pthread_mutex_unlock(&c->write_lock);
        if (r < 0)
                return vsock_err_wrap(done < VSOCK_FRAME_HEADER_SIZE ? VSOCK_E_WRITE_HEADER : VSOCK_E_WRITE_REQUEST, r);
        return 0;
}

int frame_write_pieces(vsock_conn *c, uint8_t type, size_t len, ssize_t (*next)(void *userdata, const void **ret_piece),
                       void *userdata) {
        if (!c || !next)
                return -EINVAL;
        if (len > UINT32_MAX)
                return VSOCK_ERR(VSOCK_E_FRAME_TOO_LARGE, EMSGSIZE);
        uint8_t hdr[VSOCK_FRAME_HEADER_SIZE];
        vsock_frame_header(hdr, type, (uint32_t) len);

        size_t sent = 0, done = 0;
        int r = 0;
        bool first = true, io_failed = false;
        pthread_mutex_lock(&c->write_lock);
        for (;;) {
                const void *piece = NULL;
                ssize_t n = next(userdata, &piece);
                if (n < 0) {
                        r = (int) n;
                        break;
                }
                if ((size_t) n > len - sent) {
                        r = -EINVAL;
                        break;
                }
                if (n == 0 && !first)
                        break;
                struct iovec iov[2] = { { hdr, sizeof hdr }, { (void *) piece, (size_t) n } };
                size_t w = 0;
                r = io_writev_all_n(c->fd, first ? iov : iov + 1, first ? 2 : 1, c->write_deadline_ns, c->cancel_fd,
                                    &w);
                done += w;
                first = false;
                if (r < 0) {
                        io_failed = true;
                        break;
                }
                sent += (size_t) n;
                if (n == 0)
                        break;
        }
        pthread_mutex_unlock(&c->write_lock);
        if (r == 0 && sent != len)
                r = -EINVAL;
        if (io_failed)
                return vsock_err_wrap(done < VSOCK_FRAME_HEADER_SIZE ? VSOCK_E_WRITE_HEADER : VSOCK_E_WRITE_REQUEST, r);
        return r;
}

_public_ int vsock_write_message(vsock_conn *c, uint8_t type, const void *data, size_t len) {
        if (!c || (!data && len > 0))
                return -EINVAL;
        struct iovec iov[2] = {
                [1] = { .iov_base = (void *) data, .iov_len = len },
        };
        return write_frame(c, type, iov, len > 0 ? 2 : 1, len);
}

_public_ int vsock_write_messagev(vsock_conn *c, uint8_t type, const struct iovec *iov, int iovcnt) {
        if (!c || iovcnt < 0 || (iovcnt > 0 && !iov) || iovcnt >= IOV_MAX)
                return -EINVAL;

        size_t len = 0;
        for (int i = 0; i < iovcnt; i++) {
                if (iov[i].iov_len > SIZE_MAX - len)
                        return VSOCK_ERR(VSOCK_E_FRAME_TOO_LARGE, EMSGSIZE);
                len += iov[i].iov_len;
        }
        if (len > UINT32_MAX)
                return VSOCK_ERR(VSOCK_E_FRAME_TOO_LARGE, EMSGSIZE);

        /* io_writev_all consumes the array it is given, and the caller's is
         * const: work on a copy with the header in front. */
        struct iovec stack[IOV_STACK];
        _cleanup_free_ struct iovec *heap = NULL;
        struct iovec *v = stack;
        if (iovcnt + 1 > IOV_STACK) {
                heap = malloc(sizeof(struct iovec) * (size_t) (iovcnt + 1));
                if (!heap)
                        return -ENOMEM;
                v = heap;
        }
        if (iovcnt > 0)
                memcpy(v + 1, iov, sizeof(struct iovec) * (size_t) iovcnt);
        return write_frame(c, type, v, iovcnt + 1, len);
}

/* Reads and checks a header against @max. Truncation errnos: EPIPE when
 * the peer closed cleanly before the first byte (the "connection closed"
 * case callers look for), EPROTO when it closed inside the header (a
 * truncated frame). */
static int read_header(vsock_conn *c, uint32_t max, uint8_t *ret_type, uint32_t *ret_len) {
        uint8_t hdr[VSOCK_FRAME_HEADER_SIZE];
        ssize_t r = io_read_full(c->fd, hdr, sizeof hdr, c->read_deadline_ns, c->cancel_fd);
        if (r < 0)
                return vsock_err_wrap(VSOCK_E_READ_RESPONSE_HEADER, (int) r);
        if (r == 0)
                return VSOCK_ERR(VSOCK_E_READ_RESPONSE_HEADER, EPIPE);
        if (r < (ssize_t) sizeof hdr)
                return VSOCK_ERR(VSOCK_E_READ_RESPONSE_HEADER, EPROTO);
        return vsock_frame_header_parse(hdr, max, ret_type, ret_len);
}

/* EOF inside the payload is a truncated frame: EPROTO, as in the header. */
static int read_payload(vsock_conn *c, void *buf, uint32_t len) {
        ssize_t r = io_read_full(c->fd, buf, len, c->read_deadline_ns, c->cancel_fd);
        if (r < 0)
                return vsock_err_wrap(VSOCK_E_READ_RESPONSE_DATA, (int) r);
        if ((size_t) r < len)
                return VSOCK_ERR(VSOCK_E_READ_RESPONSE_DATA, EPROTO);
        return 0;
}

static int read_message_locked(vsock_conn *c, uint8_t *ret_type, uint8_t **ret_data, uint32_t *ret_len) {
        uint8_t type = 0;
        uint32_t len = 0;
        /* The length comes from the peer: checked before allocating. */
        int r = read_header(c, c->max_payload, &type, &len);
        if (r < 0)
                return r;

        _cleanup_free_ uint8_t *data = NULL;
        if (len > 0) {
                data = malloc((size_t) len + 1);
                if (!data)
                        return VSOCK_ERR(VSOCK_E_READ_RESPONSE_DATA, ENOMEM);
                r = read_payload(c, data, len);
                if (r < 0)
                        return r;
                data[len] = 0;
        }
        *ret_type = type;
        *ret_data = TAKE_PTR(data);
        *ret_len = len;
        return 0;
}

_public_ int vsock_read_message(vsock_conn *c, uint8_t *ret_type, uint8_t **ret_data, uint32_t *ret_len) {
        if (!c || !ret_type || !ret_data || !ret_len)
                return -EINVAL;
        pthread_mutex_lock(&c->read_lock);
        int r = read_message_locked(c, ret_type, ret_data, ret_len);
        pthread_mutex_unlock(&c->read_lock);
        return r;
}

static int read_message_into_locked(vsock_conn *c, uint8_t *ret_type, void *buf, size_t size, uint32_t *ret_len) {
        uint8_t type = 0;
        uint32_t len = 0;
        int r = read_header(c, size > UINT32_MAX ? UINT32_MAX : (uint32_t) size, &type, &len);
        if (r < 0)
                return r;
        if (len > 0) {
                r = read_payload(c, buf, len);
                if (r < 0)
                        return r;
        }
        *ret_type = type;
        *ret_len = len;
        return 0;
}

_public_ int vsock_read_message_into(vsock_conn *c, uint8_t *ret_type, void *buf, size_t size, uint32_t *ret_len) {
        if (!c || !ret_type || !ret_len || (!buf && size > 0))
                return -EINVAL;
        pthread_mutex_lock(&c->read_lock);
        int r = read_message_into_locked(c, ret_type, buf, size, ret_len);
        pthread_mutex_unlock(&c->read_lock);
        return r;
}
