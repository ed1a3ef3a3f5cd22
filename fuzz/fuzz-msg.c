/* Every JSON decoder. The first byte selects the decoder; whatever decodes
 * must re-encode, and the re-encoding must decode to the same encoding
 * again (encode(decode(encode(x))) == encode(x)). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/msg-internal.h"
#include "vsock/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK_STABLE(T, dec, enc, clear)                                              \
        do {                                                                          \
                struct T a = { 0 }, b = { 0 };                                        \
                if (dec(data, size, &a, NULL) < 0)                                    \
                        break;                                                        \
                uint8_t *e1 = NULL, *e2 = NULL;                                       \
                size_t n1 = 0, n2 = 0;                                                \
                if (enc(&a, &e1, &n1) < 0)                                            \
                        abort();                                                      \
                if (dec(e1, n1, &b, NULL) < 0)                                        \
                        abort();                                                      \
                if (enc(&b, &e2, &n2) < 0)                                            \
                        abort();                                                      \
                if (n1 != n2 || memcmp(e1, e2, n1) != 0)                              \
                        abort();                                                      \
                free(e1);                                                             \
                free(e2);                                                             \
                clear;                                                                \
        } while (0)

/* The agent's in-place WriteFile decode agrees with the public one. */
static void check_write_file_in_place(const uint8_t *data, size_t size) {
        struct vsock_write_file_request a = { 0 }, b = { 0 };
        uint8_t *copy = malloc(size ? size : 1);
        if (!copy)
                return;
        memcpy(copy, data, size);
        const uint8_t *content = NULL;
        size_t len = 0;
        int ra = vsock_write_file_request_decode(data, size, &a, NULL);
        int rb = msg_decode_write_file_inplace(copy, size, &b, &content, &len, NULL);
        if ((ra < 0) != (rb < 0))
                abort();
        if (ra == 0 && (a.mode != b.mode || strcmp(a.path ? a.path : "", b.path ? b.path : "") != 0 ||
                        a.content.len != len || (len && memcmp(a.content.data, content, len) != 0)))
                abort();
        vsock_write_file_request_clear(&a);
        vsock_write_file_request_clear(&b);
        free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        uint8_t sel = data[0];
        data++, size--;
        switch (sel % 9) {
        case 0:
                CHECK_STABLE(vsock_exec_request, vsock_exec_request_decode, vsock_exec_request_encode,
                             (vsock_exec_request_clear(&a, true), vsock_exec_request_clear(&b, false)));
                break;
        case 1:
                CHECK_STABLE(vsock_exec_request, vsock_exec_request_decode, vsock_exec_tty_request_encode,
                             (vsock_exec_request_clear(&a, false), vsock_exec_request_clear(&b, false)));
                break;
        case 2:
                CHECK_STABLE(vsock_exec_response, vsock_exec_response_decode, vsock_exec_response_encode,
                             (vsock_exec_response_clear(&a), vsock_exec_response_clear(&b)));
                break;
        case 3:
                CHECK_STABLE(vsock_port_forward_request, vsock_port_forward_request_decode,
                             vsock_port_forward_request_encode,
                             (vsock_port_forward_request_clear(&a), vsock_port_forward_request_clear(&b)));
                break;
        case 4:
                CHECK_STABLE(vsock_write_file_request, vsock_write_file_request_decode,
                             vsock_write_file_request_encode,
                             (vsock_write_file_request_clear(&a), vsock_write_file_request_clear(&b)));
                check_write_file_in_place(data, size);
                break;
        case 5:
                CHECK_STABLE(vsock_path_request, vsock_path_request_decode, vsock_path_request_encode,
                             (vsock_path_request_clear(&a), vsock_path_request_clear(&b)));
                break;
        case 6:
                CHECK_STABLE(vsock_file_info, vsock_file_info_decode, vsock_file_info_encode,
                             (vsock_file_info_clear(&a), vsock_file_info_clear(&b)));
                break;
        case 7:
                CHECK_STABLE(vsock_file_response, vsock_file_response_decode, vsock_file_response_encode,
                             (vsock_file_response_clear(&a), vsock_file_response_clear(&b)));
                break;
        case 8: {
                struct vsock_window_size w;
                if (vsock_window_size_decode(data, size, &w, NULL) == 0) {
                        uint8_t *e = NULL;
                        size_t n = 0;
                        if (vsock_window_size_encode(&w, &e, &n) < 0)
                                abort();
                        free(e);
                }
                uint16_t r, c;
                int32_t code;
                int sig;
                (void) vsock_resize_decode(data, size, &r, &c);
                (void) vsock_exit_decode(data, size, &code);
                (void) vsock_signal_decode(data, size, &sig);
                break;
        }
        }
        return 0;
}
