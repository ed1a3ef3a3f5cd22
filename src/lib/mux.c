/* Hybrid vsock (Firecracker, Cloud Hypervisor): the host reaches guest port
 * P by connecting to the VMM's unix socket and sending "CONNECT P\n"; the
 * VMM answers "OK <n>\n" once the guest accepted (Firecracker's n is the
 * host-side port it allocated) or closes the connection when nothing listens
 * on P. After the '\n' the socket carries the guest stream unchanged. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "common/io.h"
#include "common/macro.h"
#include "conn-internal.h"
#include "mux.h"
#include "vsock/error.h"

/* The reply line for the caller's diagnostics, printable, in @reply (if
 * not NULL). */
static void remember(char *reply, const char *line, size_t n) {
        if (!reply)
                return;
        n = MIN(n, (size_t) MUX_REPLY_MAX);
        for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char) line[i];
                reply[i] = ch >= 0x20 && ch < 0x7f ? (char) ch : '?';
        }
        reply[n] = 0;
}

/* "OK" SP 1*DIGIT, optionally followed by "\r" (tolerated from VMMs that
 * write CRLF). The number's size is not bounded by the protocol, so any
 * digit string is accepted; it is reported only when it fits 32 bits. */
static bool parse_ok(const char *line, size_t n, uint32_t *ret_port) {
        if (n > 0 && line[n - 1] == '\r')
                n--;
        if (n < 4 || memcmp(line, "OK ", 3) != 0)
                return false;
        uint64_t v = 0;
        bool fits = true;
        for (size_t i = 3; i < n; i++) {
                if (line[i] < '0' || line[i] > '9')
                        return false;
                v = v * 10 + (uint64_t) (line[i] - '0');
                if (v > UINT32_MAX)
                        fits = false, v = UINT32_MAX;
        }
        *ret_port = fits ? (uint32_t) v : 0;
        return true;
}

int mux_handshake(int fd, uint32_t port, int64_t deadline_ns, int cancel_fd, char *reply, uint32_t *ret_host_port) {
        char line[MUX_REPLY_MAX];
        size_t n = 0;
        int r;

        if (reply)
                reply[0] = '\0';

        /* One write: Firecracker parses the first read it gets and drops a
         * command that arrives in pieces. A fresh socket's buffer is empty,
         * so these few bytes always go out in a single sendmsg. */
        char cmd[32];
        int len = snprintf(cmd, sizeof cmd, "CONNECT %u\n", port);
        r = io_write_all(fd, cmd, (size_t) len, deadline_ns, cancel_fd);
        if (r == -EPIPE || r == -ECONNRESET)
                return VSOCK_ERR(VSOCK_E_NOT_LISTENING, ECONNREFUSED);
        if (r < 0)
                return vsock_err_wrap(VSOCK_E_MUX_HANDSHAKE, r);

        /* Byte by byte: whatever follows the '\n' is already the guest's
         * stream and must stay in the socket for the caller. */
        for (;;) {
                char ch;
                ssize_t k = io_read_full(fd, &ch, 1, deadline_ns, cancel_fd);
                if (k == -ECONNRESET && n == 0)
                        k = 0;
                if (k < 0) {
                        remember(reply, line, n);
                        return vsock_err_wrap(VSOCK_E_MUX_HANDSHAKE, (int) k);
                }
                if (k == 0) {
                        remember(reply, line, n);
                        /* A VMM closes without a word when no guest process
                         * listens on the port. */
                        if (n == 0)
                                return VSOCK_ERR(VSOCK_E_NOT_LISTENING, ECONNREFUSED);
                        return VSOCK_ERR(VSOCK_E_MUX_HANDSHAKE, EPROTO);
                }
                if (ch == '\n')
                        break;
                if (n == sizeof line - 1) {
                        /* The '\n' would be byte 33: not a reply we know. */
                        line[n++] = ch;
                        remember(reply, line, n);
                        return VSOCK_ERR(VSOCK_E_MUX_HANDSHAKE, EMSGSIZE);
                }
                line[n++] = ch;
        }

        remember(reply, line, n);
        uint32_t hp;
        if (!parse_ok(line, n, &hp))
                return VSOCK_ERR(VSOCK_E_MUX_HANDSHAKE, EPROTO);
        if (ret_host_port)
                *ret_host_port = hp;
        return 0;
}
