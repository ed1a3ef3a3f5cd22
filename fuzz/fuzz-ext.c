/* Every extension decoder (src/lib/ext_msg.h). The first byte selects the
 * message type (64..127; types without a JSON shape go to the binary
 * decoders). Whatever decodes must encode, the encoding must decode, and
 * encoding that again must give the same bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "lib/ext_codec.h"
#include "lib/ext_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_json(const struct ext_shape *sh, const uint8_t *data, size_t size) {
        void *a = malloc(sh->size), *b = malloc(sh->size);
        struct buf e1 = BUF_INIT(0), e2 = BUF_INIT(0);
        if (!a || !b)
                abort();
        if (ext_decode(sh, data, size, a, NULL) < 0)
                goto out_free;
        if (ext_encode(sh, a, &e1) < 0)
                abort();
        if (ext_decode(sh, buf_head(&e1), buf_size(&e1), b, NULL) < 0)
                abort();
        if (ext_encode(sh, b, &e2) < 0)
                abort();
        if (buf_size(&e1) != buf_size(&e2) || memcmp(buf_head(&e1), buf_head(&e2), buf_size(&e1)) != 0)
                abort();
        ext_clear(sh, a);
        ext_clear(sh, b);
out_free:
        buf_free(&e1);
        buf_free(&e2);
        free(a);
        free(b);
}

static void check_binary(uint8_t type, const uint8_t *data, size_t size) {
        switch (type) {
        case EXT_MSG_CREDIT: {
                uint32_t n;
                uint8_t p[EXT_CREDIT_SIZE];
                if (ext_credit_decode(data, size, &n, NULL) < 0)
                        return;
                ext_credit_encode(n, p);
                if (n == 0 || memcmp(p, data, sizeof p) != 0)
                        abort();
                return;
        }
        case EXT_MSG_PROC_OUTPUT: {
                uint8_t stream, h[EXT_PROC_OUTPUT_HEADER_SIZE];
                uint64_t off;
                const uint8_t *bytes;
                size_t n;
                if (ext_proc_output_decode(data, size, &stream, &off, &bytes, &n, NULL) < 0)
                        return;
                ext_proc_output_header(stream, off, h);
                if (n == 0 || bytes != data + sizeof h || sizeof h + n != size || memcmp(h, data, sizeof h) != 0 ||
                    off + n < off)
                        abort();
                return;
        }
        case EXT_MSG_PROC_GAP: {
                uint64_t from, to;
                uint8_t p[EXT_PROC_GAP_SIZE];
                if (ext_proc_gap_decode(data, size, &from, &to, NULL) < 0)
                        return;
                ext_proc_gap_encode(from, to, p);
                if (from >= to || memcmp(p, data, sizeof p) != 0)
                        abort();
                return;
        }
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        uint8_t type = (uint8_t) (EXT_MSG_FIRST + data[0] % (EXT_MSG_LAST - EXT_MSG_FIRST + 1));
        data++, size--;
        const struct ext_shape *sh = ext_msg_shape(type);
        if (sh)
                check_json(sh, data, size);
        /* Two unassigned types stand for the shapes that are no message
         * of their own. */
        else if (type == EXT_MSG_LAST)
                check_json(&ext_stat_shape, data, size);
        else if (type == EXT_MSG_LAST - 1)
                check_json(&ext_limits_shape, data, size);
        else
                check_binary(type, data, size);
        return 0;
}
