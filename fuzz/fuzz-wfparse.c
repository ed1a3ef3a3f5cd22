/* The streamed WriteFile parser (src/agent/files/wfparse.c) against the buffered
 * decoder: on any input both agree on the verdict and, when accepted, on
 * path, mode and content, whatever the pieces the input arrives in (the
 * first byte seeds the piece sizes). Inputs with a repeated member are the
 * one documented difference and are skipped. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/files/wfparse.h"
#include "common/buf.h"
#include "lib/msg-internal.h"
#include "vsock/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        unsigned piece = data[0] % 64 + 1;
        data++, size--;

        struct wfparse p;
        wfparse_init(&p);
        uint8_t *out = malloc(size / 4 * 3 + 8);
        if (!out)
                return 0;
        size_t nout = 0, off = 0;
        while (off < size && p.state != WFPARSE_NOT_STREAMABLE) {
                size_t n = size - off < piece ? size - off : piece;
                size_t k = 0;
                ssize_t used = wfparse_feed(&p, data + off, n, out + nout, &k);
                if (used < 0)
                        abort();
                nout += k;
                off += (size_t) used;
                if (p.state != WFPARSE_NOT_STREAMABLE && (size_t) used != n)
                        abort();
        }
        if (p.state == WFPARSE_NOT_STREAMABLE || p.state == WFPARSE_HEAD) {
                if (nout != 0)
                        abort(); /* nothing may come out before the head */
                goto out;
        }

        struct vsock_write_file_request a = { 0 }, b = { 0 };
        const char *why = NULL;
        int ra = vsock_write_file_request_decode(data, size, &a, NULL);
        int rb = wfparse_finish(&p, &b, &why);
        if (rb < 0)
                abort();
        /* A repeated member: Go takes the last, the stream refuses. */
        struct vsock_write_file_request s = { 0 };
        const char *swhy = NULL;
        bool dup = msg_decode_write_file_strict(data, size, &s, &swhy) < 0 && swhy &&
                   strcmp(swhy, "duplicate key in JSON object") == 0;
        vsock_write_file_request_clear(&s);
        if (!dup) {
                if ((ra == 0) != (rb == 0))
                        abort();
                if (ra == 0 && (a.mode != b.mode || strcmp(a.path ? a.path : "", b.path ? b.path : "") != 0 ||
                                a.content.len != nout || (nout && memcmp(a.content.data, out, nout) != 0)))
                        abort();
        }
        vsock_write_file_request_clear(&a);
        vsock_write_file_request_clear(&b);
out:
        wfparse_clear(&p);
        free(out);
        return 0;
}
