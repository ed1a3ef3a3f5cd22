/* The incremental decoder. Linked with -Wl,--wrap=malloc,calloc,realloc
 * (see tests/meson.build) to count what the decoder allocates. */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alloc-count.h"
#include "common/macro.h"
#include "vsock/error.h"
#include "vsock/frame.h"

static size_t put_frame(uint8_t *out, uint8_t type, const void *data, uint32_t len) {
        vsock_frame_header(out, type, len);
        if (len)
                memcpy(out + 5, data, len);
        return 5 + (size_t) len;
}

static void test_byte_by_byte(void **state) {
        vsock_decoder *d;
        assert_int_equal(vsock_decoder_new(1024, &d), 0);
        assert_false(vsock_decoder_partial(d));

        uint8_t stream[64];
        size_t n = put_frame(stream, 3, "hello", 5);
        n += put_frame(stream + n, 6, NULL, 0);
        n += put_frame(stream + n, 4, "x", 1);

        static const struct {
                uint8_t type;
                const char *data;
                uint32_t len;
        } want[] = { { 3, "hello", 5 }, { 6, NULL, 0 }, { 4, "x", 1 } };

        size_t i = 0, frames = 0;
        for (; i < n; i++) {
                size_t used = 99;
                int r = vsock_decoder_feed(d, stream + i, 1, &used);
                assert_true(r == 0 || r == 1);
                assert_int_equal(used, 1);
                if (r == 0) {
                        assert_true(vsock_decoder_partial(d));
                        continue;
                }
                assert_false(vsock_decoder_partial(d));
                uint8_t type;
                const uint8_t *data;
                uint32_t len;
                vsock_decoder_frame(d, &type, &data, &len);
                assert_int_equal(type, want[frames].type);
                assert_int_equal(len, want[frames].len);
                if (len) {
                        assert_memory_equal(data, want[frames].data, len);
                        assert_int_equal(data[len], 0);
                } else
                        assert_null(data);
                frames++;
        }
        assert_int_equal(frames, 3);
        assert_false(vsock_decoder_partial(d));
        vsock_decoder_free(d);
}

static void test_many_in_one_buffer(void **state) {
        vsock_decoder *d;
        assert_int_equal(vsock_decoder_new(1 << 20, &d), 0);

        uint8_t *stream = malloc(200 * (5 + 300));
        size_t n = 0;
        for (int k = 0; k < 200; k++) {
                uint8_t payload[300];
                memset(payload, k, sizeof payload);
                n += put_frame(stream + n, (uint8_t) k, payload, (uint32_t) (k % 7) * 40);
        }

        size_t off = 0;
        int k = 0;
        while (off < n) {
                size_t used;
                int r = vsock_decoder_feed(d, stream + off, n - off, &used);
                off += used;
                if (r == 0)
                        break;
                assert_int_equal(r, 1);
                uint8_t type;
                const uint8_t *data;
                uint32_t len;
                vsock_decoder_frame(d, &type, &data, &len);
                assert_int_equal(type, k);
                assert_int_equal(len, (k % 7) * 40);
                for (uint32_t j = 0; j < len; j++)
                        assert_int_equal(data[j], k);
                /* A completed frame stops consumption right at its end. */
                k++;
        }
        assert_int_equal(k, 200);
        assert_int_equal(off, n);
        assert_false(vsock_decoder_partial(d));
        free(stream);
        vsock_decoder_free(d);
}

static void test_random_splits(void **state) {
        vsock_decoder *d;
        assert_int_equal(vsock_decoder_new(5000, &d), 0);
        unsigned seed = 12345;
        uint8_t *stream = malloc(100 * (5 + 5000));
        uint32_t lens[100];
        size_t n = 0;
        for (int k = 0; k < 100; k++) {
                lens[k] = (uint32_t) (rand_r(&seed) % 5001);
                uint8_t *p = stream + n + 5;
                for (uint32_t j = 0; j < lens[k]; j++)
                        p[j] = (uint8_t) (k + j);
                vsock_frame_header(stream + n, (uint8_t) k, lens[k]);
                n += 5 + lens[k];
        }
        size_t off = 0;
        int k = 0;
        while (off < n) {
                size_t chunk = 1 + (size_t) (rand_r(&seed) % 700);
                if (chunk > n - off)
                        chunk = n - off;
                size_t used;
                int r = vsock_decoder_feed(d, stream + off, chunk, &used);
                assert_true(used <= chunk);
                off += used;
                if (r == 1) {
                        uint8_t type;
                        const uint8_t *data;
                        uint32_t len;
                        vsock_decoder_frame(d, &type, &data, &len);
                        assert_int_equal(type, k);
                        assert_int_equal(len, lens[k]);
                        for (uint32_t j = 0; j < len; j++)
                                if (data[j] != (uint8_t) (k + j))
                                        fail_msg("frame %d byte %u", k, j);
                        k++;
                } else {
                        assert_int_equal(r, 0);
                        assert_int_equal(used, chunk);
                }
        }
        assert_int_equal(k, 100);
        free(stream);
        vsock_decoder_free(d);
}

static void test_oversize_before_alloc(void **state) {
        vsock_decoder *d;
        assert_int_equal(vsock_decoder_new(100, &d), 0);

        uint8_t h[5 + 100];
        vsock_frame_header(h, 1, 0xFFFFFFFF);
        size_t used;
        atomic_store(&alloc_calls, 0);
        int r = vsock_decoder_feed(d, h, 5, &used);
        assert_int_equal(r, VSOCK_ERR(VSOCK_E_FRAME_TOO_LARGE, EMSGSIZE));
        assert_int_equal(used, 5);
        assert_int_equal(atomic_load(&alloc_calls), 0);
        /* The stream is out of sync: it stays refused until reset. */
        r = vsock_decoder_feed(d, "abc", 3, &used);
        assert_int_equal(r, VSOCK_ERR(VSOCK_E_FRAME_TOO_LARGE, EMSGSIZE));
        assert_int_equal(used, 0);

        /* max + 1, with the header in pieces. */
        vsock_decoder_reset(d);
        vsock_frame_header(h, 1, 101);
        atomic_store(&alloc_calls, 0);
        assert_int_equal(vsock_decoder_feed(d, h, 2, &used), 0);
        assert_int_equal(vsock_decoder_feed(d, h + 2, 3, &used), VSOCK_ERR(VSOCK_E_FRAME_TOO_LARGE, EMSGSIZE));
        assert_int_equal(atomic_load(&alloc_calls), 0);

        /* Exactly max: one allocation of max + 1 (the NUL). */
        vsock_decoder_reset(d);
        vsock_frame_header(h, 1, 100);
        memset(h + 5, 'z', 100);
        atomic_store(&alloc_calls, 0);
        assert_int_equal(vsock_decoder_feed(d, h, sizeof h, &used), 1);
        assert_int_equal(used, sizeof h);
        assert_int_equal(atomic_load(&alloc_calls), 1);
        assert_int_equal(atomic_load(&alloc_last), 101);
        vsock_decoder_free(d);
}

static void test_single_allocation(void **state) {
        vsock_decoder *d;
        assert_int_equal(vsock_decoder_new(1 << 20, &d), 0);
        uint32_t len = 100000;
        uint8_t h[5];
        vsock_frame_header(h, 2, len);
        uint8_t *payload = malloc(len);
        memset(payload, 'q', len);

        size_t used;
        atomic_store(&alloc_calls, 0);
        for (int i = 0; i < 5; i++)
                assert_int_equal(vsock_decoder_feed(d, h + i, 1, &used), 0);
        /* Payload one byte at a time: the buffer is never regrown. */
        for (uint32_t i = 0; i < len; i++) {
                int r = vsock_decoder_feed(d, payload + i, 1, &used);
                assert_int_equal(r, i + 1 == len ? 1 : 0);
        }
        assert_int_equal(atomic_load(&alloc_calls), 1);
        assert_int_equal(atomic_load(&alloc_last), (size_t) len + 1);
        free(payload);
        vsock_decoder_free(d);
}

static void test_take_and_reset(void **state) {
        vsock_decoder *d;
        assert_int_equal(vsock_decoder_new(64, &d), 0);
        uint8_t buf[64];
        size_t n = put_frame(buf, 7, "abc", 3);
        size_t used;

        /* Nothing completed yet: no frame, no payload to take. */
        assert_null(vsock_decoder_take_payload(d));
        uint8_t type = 9;
        const uint8_t *data = (const uint8_t *) "junk";
        uint32_t len = 9;
        vsock_decoder_frame(d, &type, &data, &len);
        assert_null(data);
        assert_int_equal(len, 0);

        assert_int_equal(vsock_decoder_feed(d, buf, n, &used), 1);
        uint8_t *p = vsock_decoder_take_payload(d);
        assert_non_null(p);
        assert_string_equal((char *) p, "abc");
        free(p);
        /* Taken: the decoder no longer owns it (a second take is NULL). */
        assert_null(vsock_decoder_take_payload(d));

        /* Feeding after a completed frame starts a new one implicitly. */
        n = put_frame(buf, 8, "de", 2);
        assert_int_equal(vsock_decoder_feed(d, buf, 3, &used), 0);
        assert_true(vsock_decoder_partial(d));
        /* Explicit reset drops the partial frame. */
        vsock_decoder_reset(d);
        assert_false(vsock_decoder_partial(d));
        assert_int_equal(vsock_decoder_feed(d, buf, n, &used), 1);
        vsock_decoder_frame(d, &type, &data, &len);
        assert_int_equal(type, 8);
        assert_memory_equal(data, "de", 2);

        /* Zero-length: NULL payload. */
        n = put_frame(buf, 6, NULL, 0);
        assert_int_equal(vsock_decoder_feed(d, buf, n, &used), 1);
        assert_null(vsock_decoder_take_payload(d));

        /* An empty feed is harmless. */
        vsock_decoder_reset(d);
        assert_int_equal(vsock_decoder_feed(d, NULL, 0, &used), 0);
        assert_int_equal(used, 0);
        assert_false(vsock_decoder_partial(d));

        /* Reset of a completed frame frees the payload (ASan/valgrind check). */
        n = put_frame(buf, 1, "xyz", 3);
        assert_int_equal(vsock_decoder_feed(d, buf, n, &used), 1);
        vsock_decoder_reset(d);
        vsock_decoder_free(d);
        vsock_decoder_free(NULL);
}

static int unhex(const char *s, uint8_t **ret, size_t *ret_n) {
        size_t n = strlen(s);
        uint8_t *b = malloc(n / 2 + 1);
        for (size_t i = 0; i < n / 2; i++) {
                unsigned v;
                if (sscanf(s + 2 * i, "%2x", &v) != 1) {
                        free(b);
                        return -1;
                }
                b[i] = (uint8_t) v;
        }
        *ret = b;
        *ret_n = n / 2;
        return 0;
}

static void test_direct_payload(void **state) {
        vsock_decoder *d;
        assert_int_equal(vsock_decoder_new(1 << 24, &d), 0);
        size_t room = 99;

        /* Nothing to read into before the header is complete. */
        assert_null(vsock_decoder_payload_tail(d, &room));
        assert_int_equal(room, 0);
        assert_int_equal(vsock_decoder_payload_commit(d, 0), -EINVAL);

        /* Header plus the first bytes fed; the rest written directly in
         * uneven pieces (a 3 MiB payload also takes the huge-page path). */
        const uint32_t len = 3u << 20;
        uint8_t *src = malloc(len);
        assert_non_null(src);
        for (uint32_t i = 0; i < len; i++)
                src[i] = (uint8_t) (i * 7 + i / 251);
        uint8_t hdr[5 + 10];
        put_frame(hdr, 9, src, 10);
        vsock_frame_header(hdr, 9, len);
        size_t used = 0;
        assert_int_equal(vsock_decoder_feed(d, hdr, 3, &used), 0);
        assert_null(vsock_decoder_payload_tail(d, &room)); /* half a header */
        assert_int_equal(vsock_decoder_feed(d, hdr + 3, sizeof hdr - 3, &used), 0);
        assert_int_equal(used, sizeof hdr - 3);
        uint32_t at = 10;
        while (at < len) {
                uint8_t *t = vsock_decoder_payload_tail(d, &room);
                assert_non_null(t);
                assert_int_equal(room, len - at);
                assert_true(vsock_decoder_partial(d));
                size_t k = room < 100003 ? room : 100003;
                memcpy(t, src + at, k);
                /* More than the room is refused and changes nothing. */
                assert_int_equal(vsock_decoder_payload_commit(d, room + 1), -EINVAL);
                int r = vsock_decoder_payload_commit(d, k);
                at += (uint32_t) k;
                assert_int_equal(r, at == len ? 1 : 0);
        }
        assert_null(vsock_decoder_payload_tail(d, &room));
        assert_int_equal(room, 0);
        uint8_t type;
        const uint8_t *data;
        uint32_t plen;
        vsock_decoder_frame(d, &type, &data, &plen);
        assert_int_equal(type, 9);
        assert_int_equal(plen, len);
        assert_memory_equal(data, src, len);
        assert_int_equal(data[len], 0); /* NUL-terminated as after a feed */

        /* The next frame starts over with the feed, and the decoder is not
         * collecting a payload for an empty frame. */
        uint8_t two[5 + 2];
        size_t n = put_frame(two, 4, "ok", 2);
        assert_int_equal(vsock_decoder_feed(d, two, n, &used), 1);
        vsock_decoder_frame(d, &type, &data, &plen);
        assert_int_equal(plen, 2);
        assert_memory_equal(data, "ok", 2);
        n = put_frame(two, 5, NULL, 0);
        assert_int_equal(vsock_decoder_feed(d, two, n, &used), 1);
        assert_null(vsock_decoder_payload_tail(d, &room));
        assert_int_equal(vsock_decoder_payload_commit(d, 0), -EINVAL);
        vsock_decoder_free(d);
        free(src);
        assert_null(vsock_decoder_payload_tail(NULL, &room));
        assert_int_equal(vsock_decoder_payload_commit(NULL, 0), -EINVAL);
}

static void test_golden_frames(void **state) {
        const char *path = getenv("VECTORS");
        if (!path) {
                print_message("VECTORS not set, skipping\n");
                skip();
        }
        FILE *f = fopen(path, "re");
        assert_non_null(f);
        vsock_decoder *d;
        assert_int_equal(vsock_decoder_new(VSOCK_MAX_PAYLOAD_DEFAULT, &d), 0);
        char *line = NULL;
        size_t cap = 0;
        int seen = 0;
        while (getline(&line, &cap, f) > 0) {
                json_t *v = json_loads(line, 0, NULL);
                assert_non_null(v);
                json_t *hex = json_object_get(v, "frame_hex");
                json_t *mt = json_object_get(v, "msg_type");
                if (json_is_string(hex) && json_is_integer(mt)) {
                        uint8_t *frame = NULL;
                        size_t n = 0, used;
                        assert_int_equal(unhex(json_string_value(hex), &frame, &n), 0);
                        /* Split in two at every third vector's midpoint. */
                        size_t cut = seen % 3 == 0 ? n / 2 : n;
                        int r = vsock_decoder_feed(d, frame, cut, &used);
                        if (cut < n) {
                                assert_int_equal(r, 0);
                                r = vsock_decoder_feed(d, frame + cut, n - cut, &used);
                        }
                        assert_int_equal(r, 1);
                        uint8_t type;
                        const uint8_t *data;
                        uint32_t len;
                        vsock_decoder_frame(d, &type, &data, &len);
                        assert_int_equal(type, json_integer_value(mt));
                        assert_int_equal(len, n - 5);
                        if (len)
                                assert_memory_equal(data, frame + 5, len);
                        free(frame);
                        seen++;
                }
                json_decref(v);
        }
        free(line);
        fclose(f);
        assert_true(seen > 10);
        vsock_decoder_free(d);
}

/* The one header parser: type and length, the limit checked there. */
static void test_header_parse(void **state) {
        uint8_t h[VSOCK_FRAME_HEADER_SIZE];
        uint8_t type = 0;
        uint32_t len = 0;
        vsock_frame_header(h, 11, 0x01020304);
        assert_int_equal(vsock_frame_header_parse(h, 0x01020304, &type, &len), 0);
        assert_int_equal(type, 11);
        assert_int_equal(len, 0x01020304);
        type = 0;
        len = 7;
        int r = vsock_frame_header_parse(h, 0x01020303, &type, &len);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_FRAME_TOO_LARGE);
        assert_int_equal(vsock_err_errno(r), EMSGSIZE);
        assert_int_equal(type, 0); /* nothing set on failure */
        assert_int_equal(len, 7);
        vsock_frame_header(h, 255, 0);
        assert_int_equal(vsock_frame_header_parse(h, 0, &type, &len), 0);
        assert_int_equal(type, 255);
        assert_int_equal(len, 0);
#if SIZE_MAX > UINT32_MAX
        /* (With a 32-bit size_t, len + 1 would wrap: refused there.) */
        vsock_frame_header(h, 1, UINT32_MAX);
        assert_int_equal(vsock_frame_header_parse(h, UINT32_MAX, NULL, &len), 0);
        assert_int_equal(len, UINT32_MAX);
#endif
}

/* Headers reported: a collected frame, then one passed through in pieces
 * (nothing allocated for it), an empty one (never reported as a header),
 * and the misuses refused. */
static void test_pass_through(void **state) {
        vsock_decoder *d;
        assert_int_equal(vsock_decoder_new(1 << 24, &d), 0);
        vsock_decoder_report_headers(d, true);
        uint8_t *stream = malloc(3 * 5 + 100 + (1 << 20));
        assert_non_null(stream);
        size_t n = put_frame(stream, 14, "collected", 9);
        uint8_t *big = malloc(1 << 20);
        assert_non_null(big);
        for (size_t i = 0; i < (1 << 20); i++)
                big[i] = (uint8_t) (i * 13);
        n += put_frame(stream + n, 3, big, 1 << 20);
        n += put_frame(stream + n, 7, NULL, 0);

        uint8_t type;
        uint32_t len;
        size_t used, off = 0;
        assert_int_equal(vsock_decoder_header(d, &type, &len), -EINVAL); /* between frames */
        assert_int_equal(vsock_decoder_pass(d), -EINVAL);
        assert_int_equal(vsock_decoder_passed(d, 0), -EINVAL);
        assert_int_equal(vsock_decoder_pass_left(d), 0);

        /* Collected: the header first, then the frame. */
        size_t allocs = alloc_calls;
        assert_int_equal(vsock_decoder_feed(d, stream, n, &used), VSOCK_DECODER_HEADER);
        assert_int_equal(used, 5);
        assert_int_equal(alloc_calls, allocs); /* nothing allocated at the header */
        assert_true(vsock_decoder_partial(d));
        assert_int_equal(vsock_decoder_header(d, &type, &len), 0);
        assert_int_equal(type, 14);
        assert_int_equal(len, 9);
        off += used;
        assert_int_equal(vsock_decoder_feed(d, stream + off, n - off, &used), VSOCK_DECODER_FRAME);
        off += used;
        const uint8_t *p;
        vsock_decoder_frame(d, &type, &p, &len);
        assert_int_equal(len, 9);
        assert_memory_equal(p, "collected", 9);
        assert_int_equal(vsock_decoder_pass(d), -EINVAL); /* too late */

        /* Passed through: 1 MiB in uneven pieces, no allocation. */
        assert_int_equal(vsock_decoder_feed(d, stream + off, n - off, &used), VSOCK_DECODER_HEADER);
        off += used;
        allocs = alloc_calls;
        assert_int_equal(vsock_decoder_pass(d), 0);
        assert_int_equal(vsock_decoder_set_raw(d), -EINVAL); /* inside a frame */
        size_t got = 0;
        while (vsock_decoder_pass_left(d) > 0) {
                assert_int_equal(vsock_decoder_feed(d, stream + off, n - off, &used), VSOCK_DECODER_PASS);
                assert_int_equal(used, 0);
                assert_true(vsock_decoder_partial(d));
                size_t left = vsock_decoder_pass_left(d);
                assert_int_equal(left, (1u << 20) - got);
                assert_int_equal(vsock_decoder_passed(d, left + 1), -EINVAL);
                size_t k = MIN(left, 4093 + got % 7);
                assert_memory_equal(stream + off, big + got, k);
                int r = vsock_decoder_passed(d, k);
                assert_int_equal(r, k == left ? 1 : 0);
                off += k;
                got += k;
        }
        assert_int_equal(got, 1u << 20);
        assert_int_equal(alloc_calls, allocs);
        assert_false(vsock_decoder_partial(d));
        assert_int_equal(vsock_decoder_header(d, &type, &len), -EINVAL);
        assert_int_equal(vsock_decoder_passed(d, 0), -EINVAL);

        /* Empty: whole at once, never a header to choose about. */
        assert_int_equal(vsock_decoder_feed(d, stream + off, n - off, &used), VSOCK_DECODER_FRAME);
        vsock_decoder_frame(d, &type, &p, &len);
        assert_int_equal(type, 7);
        assert_int_equal(len, 0);
        off += used;
        assert_int_equal(off, n);
        free(big);
        free(stream);
        vsock_decoder_free(d);
}

/* Raw mode: no framing any more, for good (a reset keeps it, and the
 * header reporting too). */
static void test_raw(void **state) {
        vsock_decoder *d;
        assert_int_equal(vsock_decoder_new(64, &d), 0);
        vsock_decoder_report_headers(d, true);
        uint8_t stream[32];
        size_t n = put_frame(stream, 13, "{}", 2);
        size_t used;
        assert_int_equal(vsock_decoder_feed(d, stream, 3, &used), 0);
        assert_int_equal(vsock_decoder_set_raw(d), -EINVAL); /* half a header */
        assert_int_equal(vsock_decoder_feed(d, stream + 3, n - 3, &used), VSOCK_DECODER_HEADER);
        assert_int_equal(vsock_decoder_feed(d, stream + n - 2, 2, &used), VSOCK_DECODER_FRAME);
        assert_int_equal(vsock_decoder_set_raw(d), 0);
        /* An oversize header is just bytes now. */
        vsock_frame_header(stream, 3, UINT32_MAX);
        for (int i = 0; i < 3; i++) {
                assert_int_equal(vsock_decoder_feed(d, stream, 5, &used), VSOCK_DECODER_PASS);
                assert_int_equal(used, 0);
                assert_int_equal(vsock_decoder_pass_left(d), SIZE_MAX);
                assert_int_equal(vsock_decoder_passed(d, 5), 0);
                assert_false(vsock_decoder_partial(d));
                assert_int_equal(vsock_decoder_header(d, NULL, NULL), -EINVAL);
                vsock_decoder_reset(d);
        }
        assert_int_equal(vsock_decoder_set_raw(d), 0); /* idempotent */
        vsock_decoder_free(d);

        /* Reset keeps the header reporting. */
        assert_int_equal(vsock_decoder_new(64, &d), 0);
        vsock_decoder_report_headers(d, true);
        vsock_decoder_reset(d);
        n = put_frame(stream, 4, "ab", 2);
        assert_int_equal(vsock_decoder_feed(d, stream, n, &used), VSOCK_DECODER_HEADER);
        /* A header above the limit is refused before it is reported. */
        vsock_decoder_free(d);
        assert_int_equal(vsock_decoder_new(1, &d), 0);
        vsock_decoder_report_headers(d, true);
        int r = vsock_decoder_feed(d, stream, n, &used);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_FRAME_TOO_LARGE);
        vsock_decoder_free(d);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_byte_by_byte),
                cmocka_unit_test(test_many_in_one_buffer),
                cmocka_unit_test(test_random_splits),
                cmocka_unit_test(test_oversize_before_alloc),
                cmocka_unit_test(test_single_allocation),
                cmocka_unit_test(test_take_and_reset),
                cmocka_unit_test(test_golden_frames),
                cmocka_unit_test(test_direct_payload),
                cmocka_unit_test(test_header_parse),
                cmocka_unit_test(test_pass_through),
                cmocka_unit_test(test_raw),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
