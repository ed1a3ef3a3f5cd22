/* Forwarding (PROTOCOL.md 2.8), host side: FwdConnect, and FwdListen,
 * FwdEvent, FwdAttach for guest -> host forwards. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client-internal.h"
#include "common/macro.h"
#include "ext_msg.h"
#include "vsock/error.h"

/* After a request: Ready, or the Error it failed with. */
static int read_ready(vsock_conn *c, struct vsock_call *call, const char *what) {
        uint8_t type;
        _cleanup_free_ uint8_t *data = NULL;
        uint32_t len;
        int r = client_ext_read(c, call, &type, &data, &len);
        if (r < 0)
                return client_fail(c, r); /* a forward's connection is never reused */
        if (type != VSOCK_MSG_READY)
                return client_fail(c, client_unexpected_frame(call, type, what));
        return 0;
}

_public_ int vsock_fwd_connect(vsock_conn *c, const char *host, uint16_t port, const char *unix_path,
                               struct vsock_call *call) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call || !c || (unix_path ? (host || port || !unix_path[0]) : port == 0))
                return -EINVAL;
        struct ext_fwd_connect m = {
                .host = (char *) (host && host[0] ? host : NULL),
                .port = port,
                .unix_path = (char *) unix_path,
        };
        int r = client_ext_send_msg(c, VSOCK_FEATURE_FWD_CONNECT, EXT_MSG_FWD_CONNECT, &ext_fwd_connect_shape, &m,
                                    call);
        return r < 0 ? r : read_ready(c, call, "Ready");
}

_public_ int vsock_fwd_listen(vsock_conn *c, const char *listen, int backlog, struct vsock_call *call,
                              char *ret_address, size_t address_size) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call || !c || !listen || backlog < 0)
                return -EINVAL;
        struct ext_fwd_listen m = { .listen = (char *) listen, .backlog = backlog };
        int r = client_ext_send_msg(c, VSOCK_FEATURE_FWD_LISTEN, EXT_MSG_FWD_LISTEN, &ext_fwd_listen_shape, &m, call);
        if (r < 0)
                return r;
        struct ext_fwd_event ev;
        r = client_ext_reply(c, call, EXT_MSG_FWD_EVENT, &ext_fwd_event_shape, &ev);
        if (r < 0)
                return client_fail(c, r);
        if (strcmp(ev.event, "listening") != 0) {
                client_diag(call, "FwdEvent \"%s\" before \"listening\"", ev.event);
                ext_fwd_event_clear(&ev);
                return client_fail(c, VSOCK_ERR(VSOCK_E_PROTOCOL, EPROTO));
        }
        if (ret_address && address_size > 0)
                snprintf(ret_address, address_size, "%s", ev.address ? ev.address : "");
        ext_fwd_event_clear(&ev);
        return 0;
}

_public_ int vsock_fwd_next_event(vsock_conn *c, struct vsock_call *call, struct vsock_fwd_event *ret) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call || !c || !ret)
                return -EINVAL;
        client_call_apply(c, call);
        struct ext_fwd_event ev;
        int r = client_ext_reply(c, call, EXT_MSG_FWD_EVENT, &ext_fwd_event_shape, &ev);
        if (r < 0)
                return client_fail(c, r);
        *ret = (struct vsock_fwd_event) { .id = ev.id };
        snprintf(ret->event, sizeof ret->event, "%s", ev.event);
        snprintf(ret->peer, sizeof ret->peer, "%s", ev.peer ? ev.peer : "");
        ext_fwd_event_clear(&ev);
        return 0;
}

_public_ int vsock_fwd_attach(vsock_conn *c, uint64_t id, struct vsock_call *call) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call || !c || id == 0)
                return -EINVAL;
        struct ext_fwd_attach m = { .id = id };
        int r = client_ext_send_msg(c, VSOCK_FEATURE_FWD_LISTEN, EXT_MSG_FWD_ATTACH, &ext_fwd_attach_shape, &m, call);
        return r < 0 ? r : read_ready(c, call, "Ready");
}
