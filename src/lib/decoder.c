/* Incremental frame decoder for event loops: bytes in, whole frames out,
 * or payloads passed through to the caller as they arrive. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "huge.h"
#include "vsock/error.h"
#include "vsock/frame.h"

enum decoder_state {
        DEC_HEADER,     /* collecting the 5 header bytes */
        DEC_CHOOSE,     /* header reported: collect unless passed through */
        DEC_PAYLOAD,    /* collecting @len payload bytes into @payload */
        DEC_PASS,       /* @len - @got payload bytes still pass through */
        DEC_DONE,       /* a frame is complete; the next feed starts over */
        DEC_RAW,        /* no framing: every byte passes through */
        DEC_BROKEN,     /* oversize header seen: the stream is out of sync */
};

struct vsock_decoder {
        enum decoder_state state;
        uint32_t max_payload;
        bool report_headers;
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
        *d = (struct vsock_decoder) {
                .state = d->state == DEC_RAW ? DEC_RAW : DEC_HEADER,
                .max_payload = d->max_payload,
                .report_headers = d->report_headers,
        };
}

_public_ void vsock_decoder_free(vsock_decoder *d) {
        if (!d)
                return;
        free(d->payload);
        free(d);
}

_public_ void vsock_decoder_report_headers(vsock_decoder *d, bool on) {
        if (d)
                d->report_headers = on;
}

/* The header is complete and checked: allocate the payload, exactly once
 * and at the announced size (no regrowth). */
static int begin_collect(vsock_decoder *d) {
        if (d->len == 0) {
                d->state = DEC_DONE;
                return VSOCK_DECODER_FRAME;
        }
        d->payload = malloc((size_t) d->len + 1);
        if (!d->payload)
                return -ENOMEM; /* the caller may retry the same feed */
        huge_advise(d->payload, (size_t) d->len + 1);
        d->state = DEC_PAYLOAD;
        return 0;
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
        switch (d->state) {
        case DEC_BROKEN:
                r = VSOCK_ERR(VSOCK_E_FRAME_TOO_LARGE, EMSGSIZE);
                goto out;
        case DEC_RAW:
                r = VSOCK_DECODER_PASS;
                goto out;
        case DEC_PASS:
                r = VSOCK_DECODER_PASS;
                goto out;
        default:
                break;
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
                /* Peer-controlled: checked before allocating anything. */
                r = vsock_frame_header_parse(d->hdr, d->max_payload, &d->type, &d->len);
                if (r < 0) {
                        d->state = DEC_BROKEN;
                        goto out;
                }
                /* An empty payload has nothing to pass through: such a
                 * frame comes out whole at once, never as a header. */
                if (d->report_headers && d->len > 0) {
                        d->state = DEC_CHOOSE;
                        r = VSOCK_DECODER_HEADER;
                        goto out;
                }
                d->state = DEC_CHOOSE;
        }

        if (d->state == DEC_CHOOSE) {
                /* Not passed through: collected. On ENOMEM nothing of the
                 * payload was consumed, so the caller may retry the rest. */
                r = begin_collect(d);
                if (r != 0)
                        goto out;
        }

        if (d->state == DEC_PAYLOAD) {
                size_t k = MIN(n - used, (size_t) (d->len - d->got));
                memcpy(d->payload + d->got, p + used, k);
                d->got += (uint32_t) k;
                used += k;
                if (d->got == d->len) {
                        d->payload[d->len] = 0;
                        d->state = DEC_DONE;
                        r = VSOCK_DECODER_FRAME;
                }
        }

out:
        if (ret_used)
                *ret_used = used;
        return r;
}

_public_ int vsock_decoder_header(const vsock_decoder *d, uint8_t *ret_type, uint32_t *ret_len) {
        if (!d || (d->state != DEC_CHOOSE && d->state != DEC_PAYLOAD && d->state != DEC_PASS &&
                   d->state != DEC_DONE))
                return -EINVAL;
        if (ret_type)
                *ret_type = d->type;
        if (ret_len)
                *ret_len = d->len;
        return 0;
}

_public_ int vsock_decoder_pass(vsock_decoder *d) {
        if (!d || d->state != DEC_CHOOSE)
                return -EINVAL;
        d->state = DEC_PASS; /* len > 0: empty payloads are never reported */
        return 0;
}

_public_ int vsock_decoder_set_raw(vsock_decoder *d) {
        if (!d || (d->state != DEC_HEADER && d->state != DEC_DONE && d->state != DEC_RAW) ||
            (d->state == DEC_HEADER && d->hdr_got > 0))
                return -EINVAL;
        vsock_decoder_reset(d);
        d->state = DEC_RAW;
        return 0;
}

_public_ size_t vsock_decoder_pass_left(const vsock_decoder *d) {
        if (d && d->state == DEC_RAW)
                return SIZE_MAX;
        return d && d->state == DEC_PASS ? (size_t) (d->len - d->got) : 0;
}

_public_ int vsock_decoder_passed(vsock_decoder *d, size_t n) {
        if (d && d->state == DEC_RAW)
                return 0;
        if (!d || d->state != DEC_PASS || n > (size_t) (d->len - d->got))
                return -EINVAL;
        d->got += (uint32_t) n;
        if (d->got < d->len)
                return 0;
        vsock_decoder_reset(d);
        return 1;
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
        switch (d->state) {
        case DEC_HEADER:
                return d->hdr_got > 0;
        case DEC_CHOOSE:
        case DEC_PAYLOAD:
        case DEC_PASS:
                return true;
        default:
                return false;
        }
}
