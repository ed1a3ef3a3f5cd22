/* The seed's OpenPortForward: request, then Ready (raw stream from here
 * on) or Stderr with the guest's reason. */
#include <errno.h>
#include <stdlib.h>

#include "client-internal.h"
#include "common/macro.h"
#include "vsock/error.h"
#include "vsock/frame.h"

_public_ int vsock_open_port_forward(vsock_conn *c, const char *host, uint16_t port, struct vsock_call *call) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call || !c)
                return -EINVAL;
        int saved_cancel = vsock_conn_cancel_fd(c);
        client_call_apply(c, call);

        struct vsock_port_forward_request req = { .host = (char *) host, .port = port };
        _cleanup_free_ uint8_t *payload = NULL;
        size_t len;
        int r = vsock_port_forward_request_encode(&req, &payload, &len);
        if (r < 0)
                return vsock_err_wrap(VSOCK_E_ENCODE_PORT_FORWARD_REQUEST, r);
        r = vsock_write_message(c, VSOCK_MSG_PORT_FORWARD, payload, len);
        if (r < 0)
                return client_fail(c, r);

        uint8_t type;
        _cleanup_free_ uint8_t *data = NULL;
        uint32_t dlen;
        r = client_read_reply(c, call, &type, &data, &dlen);
        if (r < 0) {
                enum vsock_errkind k = vsock_err_kind(r);
                if (k == VSOCK_E_READ_RESPONSE_HEADER || k == VSOCK_E_READ_RESPONSE_DATA)
                        r = vsock_err_wrap(VSOCK_E_READ_PORT_FORWARD_RESPONSE, r);
                return client_fail(c, r);
        }
        switch (type) {
        case VSOCK_MSG_READY:
                /* The call's deadline bounded the opening; the raw stream
                 * that follows belongs to the caller, unbounded. */
                vsock_conn_set_deadline(c, 0);
                vsock_conn_set_cancel_fd(c, saved_cancel);
                return 0;
        case VSOCK_MSG_STDERR:
                client_diag_text(call, data, dlen);
                return client_fail(c, VSOCK_ERR(VSOCK_E_PORT_FORWARD_REJECTED, ECONNREFUSED));
        default: {
                const char *name = vsock_msg_type_name(type);
                client_diag(call, "unexpected %s frame (type %u) while waiting for Ready", name ? name : "unknown",
                            type);
                return client_fail(c, VSOCK_ERR(VSOCK_E_UNEXPECTED_PORT_FORWARD_MSG, EPROTO));
        }
        }
}

_public_ int vsock_open_port_forward_at(const char *addr, const char *host, uint16_t port, struct vsock_call *call,
                                        vsock_conn **ret) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call || !ret)
                return -EINVAL;
        vsock_conn *c = NULL;
        int r = client_dial(addr, VSOCK_PORT_EXEC, call, &c);
        if (r < 0)
                return r;
        r = vsock_open_port_forward(c, host, port, call);
        if (r < 0) {
                (void) vsock_conn_close(c);
                return r;
        }
        *ret = c;
        return 0;
}
