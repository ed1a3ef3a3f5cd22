/* Frame decoder: arbitrary bytes, fed in chunks whose sizes come from the
 * input itself, must never crash, never allocate past the limit, and must
 * agree with a one-shot feed. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vsock/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        /* First byte picks the chunk size (1..256) and a small limit so the
         * oversize path is reached often. */
        size_t chunk = (size_t) data[0] + 1;
        uint32_t max = (data[0] & 1) ? 64 : 4096;
        data++, size--;

        vsock_decoder *d = NULL;
        if (vsock_decoder_new(max, &d) < 0)
                abort();
        size_t off = 0, frames = 0;
        while (off < size) {
                size_t n = size - off < chunk ? size - off : chunk;
                size_t used = 0;
                int r = vsock_decoder_feed(d, data + off, n, &used);
                if (used > n)
                        abort();
                off += used;
                if (r < 0)
                        break;
                if (r == 1) {
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
                } else if (used == 0 && n > 0) {
                        abort(); /* no progress without a frame or an error */
                }
        }
        vsock_decoder_free(d);
        return 0;
}
