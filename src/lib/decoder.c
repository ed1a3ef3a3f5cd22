/* Incremental frame decoder for event loops: bytes in, whole frames out. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "huge.h"
#include "vsock/error.h"
#include "vsock/frame.h"

/* len + 1 (for the NUL) must not wrap on 32-bit size_t. */
static inline bool fits_size(uint32_t len) {
#if SIZE_MAX > UINT32_MAX
        (void) len;
        return true;
#else
        return len < SIZE_MAX;
#endif
}

enum decoder_state {
        DEC_HEADER,     /* collecting the 5 header bytes */
        DEC_PAYLOAD,    /* collecting @len payload bytes into @payload */
        DEC_DONE,       /* a frame is complete; the next feed starts over */
        DEC_BROKEN,     /* oversize header seen: the stream is out of sync */
};

struct vsock_decoder {
        enum decoder_state state;
        uint32_t max_payload;
        uint8_t hdr[VSOCK_FRAME_HEADER_SIZE];
        size_t hdr_got;
        uint8_t type;
        uint32_t len;
        uint32_t got;
        uint8_t *payload;       /* len + 1 bytes (NUL-terminated), NULL if len == 0 */
};

_public_ int vsock_decoder_new(uint32_t max_payload, vsock_decoder **ret) {
        if (!ret)
                return -EINVAL;
        vsock_decoder *d = calloc(1, sizeof *d);
        if (!d)
                return -ENOMEM;
        d->max_payload = max_payload;
        *ret = d;
        return 0;
}

_public_ void vsock_decoder_reset(vsock_decoder *d) {
        if (!d)
                return;
        free(d->payload);
        uint32_t max = d->max_payload;
        *d = (struct vsock_decoder) { .max_payload = max };
}

_public_ void vsock_decoder_free(vsock_decoder *d) {
        if (!d)
                return;
        free(d->payload);
        free(d);
}

_public_ int vsock_decoder_feed(vsock_decoder *d, const void *data, size_t n, size_t *ret_used) {
        const uint8_t *p = data;
        size_t used = 0;
        int r = 0;

        if (!d || (!data && n > 0)) {
                if (ret_used)
                        *ret_used = 0;
                return -EINVAL;
        }
        if (d->state == DEC_DONE)
                vsock_decoder_reset(d);
        if (d->state == DEC_BROKEN) {
                r = VSOCK_ERR(VSOCK_E_FRAME_TOO_LARGE, EMSGSIZE);
                goto out;
        }
        if (n == 0)
                goto out;

        if (d->state == DEC_HEADER) {
                size_t k = MIN(n - used, sizeof d->hdr - d->hdr_got);
                memcpy(d->hdr + d->hdr_got, p + used, k);
                d->hdr_got += k;
                used += k;
                if (d->hdr_got < sizeof d->hdr)
                        goto out;

                d->type = d->hdr[0];
                d->len = (uint32_t) d->hdr[1] << 24 | (uint32_t) d->hdr[2] << 16 | (uint32_t) d->hdr[3] << 8 |
                         (uint32_t) d->hdr[4];
                /* Peer-controlled: check before allocating anything. */
                if (d->len > d->max_payload || !fits_size(d->len)) {
                        d->state = DEC_BROKEN;
                        r = VSOCK_ERR(VSOCK_E_FRAME_TOO_LARGE, EMSGSIZE);
                        goto out;
                }
                if (d->len == 0) {
                        d->state = DEC_DONE;
                        r = 1;
                        goto out;
                }
                /* Exactly once, at the announced size: no regrowth. */
                d->payload = malloc((size_t) d->len + 1);
                if (!d->payload) {
                        /* Nothing consumed into a frame we cannot hold; the
                         * header stays, so the caller may retry the rest. */
                        r = -ENOMEM;
                        goto out;
                }
                huge_advise(d->payload, (size_t) d->len + 1);
                d->state = DEC_PAYLOAD;
        }

        if (d->state == DEC_PAYLOAD) {
                size_t k = MIN(n - used, (size_t) (d->len - d->got));
                memcpy(d->payload + d->got, p + used, k);
                d->got += (uint32_t) k;
                used += k;
                if (d->got == d->len) {
                        d->payload[d->len] = 0;
                        d->state = DEC_DONE;
                        r = 1;
                }
        }

out:
        if (ret_used)
                *ret_used = used;
        return r;
}

_public_ uint8_t *vsock_decoder_payload_tail(vsock_decoder *d, size_t *ret_room) {
        bool collecting = d && d->state == DEC_PAYLOAD;
        if (ret_room)
                *ret_room = collecting ? (size_t) (d->len - d->got) : 0;
        return collecting ? d->payload + d->got : NULL;
}

_public_ int vsock_decoder_payload_commit(vsock_decoder *d, size_t n) {
        if (!d || d->state != DEC_PAYLOAD || n > (size_t) (d->len - d->got))
                return -EINVAL;
        d->got += (uint32_t) n;
        if (d->got < d->len)
                return 0;
        d->payload[d->len] = 0;
        d->state = DEC_DONE;
        return 1;
}

_public_ void vsock_decoder_frame(const vsock_decoder *d, uint8_t *ret_type, const uint8_t **ret_data,
                                  uint32_t *ret_len) {
        bool done = d && d->state == DEC_DONE;
        if (ret_type)
                *ret_type = done ? d->type : 0;
        if (ret_data)
                *ret_data = done ? d->payload : NULL;
        if (ret_len)
                *ret_len = done ? d->len : 0;
}

_public_ uint8_t *vsock_decoder_take_payload(vsock_decoder *d) {
        if (!d || d->state != DEC_DONE)
                return NULL;
        return TAKE_PTR(d->payload);
}

_public_ bool vsock_decoder_partial(const vsock_decoder *d) {
        if (!d)
                return false;
        return (d->state == DEC_HEADER && d->hdr_got > 0) || d->state == DEC_PAYLOAD;
}
