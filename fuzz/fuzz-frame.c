/* Frame decoder: arbitrary bytes, fed in chunks whose sizes come from the
 * input itself, must never crash, never allocate past the limit, and must
 * agree with a one-shot feed. With headers reported, payloads of odd types
 * pass through (in pieces the caller takes partly, as a paused operation
 * does), exactly as many bytes as announced; a frame of type 0xFF switches
 * to raw mode, after which every byte passes through. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vsock/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        /* First byte picks the chunk size (1..128), a small limit so the
         * oversize path is reached often, and whether headers are reported. */
        size_t chunk = (size_t) (data[0] >> 1) + 1;
        uint32_t max = (data[0] & 1) ? 64 : 4096;
        bool headers = (data[0] & 0x80) != 0;
        data++, size--;

        vsock_decoder *d = NULL;
        if (vsock_decoder_new(max, &d) < 0)
                abort();
        vsock_decoder_report_headers(d, headers);
        size_t off = 0, frames = 0;
        size_t pass_len = 0, passed = 0; /* the payload passing through */
        while (off < size) {
                size_t n = size - off < chunk ? size - off : chunk;
                size_t used = 0;
                int r = vsock_decoder_feed(d, data + off, n, &used);
                if (used > n)
                        abort();
                off += used;
                if (r < 0)
                        break;
                if (r == VSOCK_DECODER_HEADER) {
                        uint8_t type;
                        uint32_t len;
                        if (!headers || used < 1 || vsock_decoder_header(d, &type, &len) < 0 || len == 0 ||
                            len > max)
                                abort();
                        if (type & 1) {
                                if (vsock_decoder_pass(d) < 0 || vsock_decoder_pass_left(d) != len)
                                        abort();
                                pass_len = len;
                                passed = 0;
                        }
                        continue;
                }
                if (r == VSOCK_DECODER_PASS) {
                        size_t left = vsock_decoder_pass_left(d);
                        if (left == 0)
                                abort();
                        /* Take at most half the chunk: the rest comes again. */
                        size_t k = n - used;
                        k = k > 1 ? k / 2 : k;
                        if (k > left)
                                k = left;
                        int pr = vsock_decoder_passed(d, k);
                        if (pr < 0 || (left != SIZE_MAX && (pr == 1) != (k == left)))
                                abort();
                        off += k;
                        passed += k;
                        if (pr == 1) {
                                uint8_t type;
                                if (passed != pass_len || vsock_decoder_header(d, &type, NULL) == 0 ||
                                    vsock_decoder_partial(d))
                                        abort(); /* back between frames, all of it passed */
                                frames++;
                        }
                        continue;
                }
                if (r == VSOCK_DECODER_FRAME) {
                        uint8_t type;
                        const uint8_t *p;
                        uint32_t len;
                        vsock_decoder_frame(d, &type, &p, &len);
                        if (len > max || (len > 0 && !p))
                                abort();
                        if (len > 0 && memcmp(p, data + off - len, len) != 0)
                                abort();
                        frames++;
                        if (frames % 2) {
                                uint8_t *own = vsock_decoder_take_payload(d);
                                free(own);
                        }
                        if (headers && type == 0xFF) {
                                vsock_decoder_reset(d);
                                if (vsock_decoder_set_raw(d) < 0 || vsock_decoder_pass_left(d) != SIZE_MAX)
                                        abort();
                        }
                } else if (used == 0 && n > 0) {
                        abort(); /* no progress without a frame or an error */
                }
        }
        vsock_decoder_free(d);
        return 0;
}
