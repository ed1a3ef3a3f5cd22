#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/macro.h"
#include "vsock/error.h"

static const char *const kind_names[_VSOCK_E_MAX] = {
        [VSOCK_E_ERRNO] = NULL,
        [VSOCK_E_CREATE_SOCKET] = "create vsock socket",
        [VSOCK_E_BIND] = "bind vsock",
        [VSOCK_E_LISTEN] = "listen on vsock",
        [VSOCK_E_ACCEPT] = "accept vsock connection",
        [VSOCK_E_CONNECT] = "connect to vsock",
        [VSOCK_E_OPEN_DEVICE] = "open /dev/vsock",
        [VSOCK_E_GET_LOCAL_CID] = "get local CID",
        [VSOCK_E_ENCODE_EXEC_REQUEST] = "encode exec request",
        [VSOCK_E_WRITE_HEADER] = "write header",
        [VSOCK_E_WRITE_REQUEST] = "write request",
        [VSOCK_E_READ_RESPONSE_HEADER] = "read response header",
        [VSOCK_E_READ_RESPONSE_DATA] = "read response data",
        [VSOCK_E_ENCODE_PORT_FORWARD_REQUEST] = "encode port-forward request",
        [VSOCK_E_READ_PORT_FORWARD_RESPONSE] = "read port-forward response",
        [VSOCK_E_PORT_FORWARD_REJECTED] = "port-forward rejected",
        [VSOCK_E_UNEXPECTED_PORT_FORWARD_MSG] = "unexpected port-forward response message",
        [VSOCK_E_ENCODE_FILE_REQUEST] = "encode file request",
        [VSOCK_E_FILE_REMOTE] = "guest file operation",
        [VSOCK_E_FRAME_TOO_LARGE] = "frame too large",
        [VSOCK_E_TIMEOUT] = "timed out",
        [VSOCK_E_CANCELLED] = "cancelled",
        [VSOCK_E_BAD_ADDRESS] = "bad address",
        [VSOCK_E_PROTOCOL] = "protocol violation",
        [VSOCK_E_DECODE] = "decode message",
        [VSOCK_E_CLOSED] = "connection closed by peer",
        [VSOCK_E_MUX_HANDSHAKE] = "hybrid vsock handshake",
        [VSOCK_E_NOT_LISTENING] = "guest not listening",
        [VSOCK_E_REMOTE] = "guest agent error",
        [VSOCK_E_RESOLVE] = "resolve host",
        [VSOCK_E_UNSUPPORTED] = "not supported by the agent",
        [VSOCK_E_LIMIT] = "agent limit reached",
        [VSOCK_E_CHECKSUM] = "checksum mismatch",
};

_public_ enum vsock_errkind vsock_err_kind(int rc) {
        if (rc >= 0)
                return VSOCK_E_ERRNO;
        unsigned k = ((unsigned) -rc) >> 16;
        return k < _VSOCK_E_MAX ? (enum vsock_errkind) k : VSOCK_E_ERRNO;
}

_public_ int vsock_err_errno(int rc) {
        if (rc >= 0)
                return 0;
        return (int) (((unsigned) -rc) & 0xffffu);
}

_public_ int vsock_err_wrap(enum vsock_errkind kind, int rc) {
        if (rc >= 0)
                return rc;
        /* Keep the more specific kind if the code already has one that
         * explains the failure better than a generic wrapper would
         * (timeouts, cancellation, oversize frames, closed peers). */
        enum vsock_errkind have = vsock_err_kind(rc);
        if (have == VSOCK_E_TIMEOUT || have == VSOCK_E_CANCELLED || have == VSOCK_E_FRAME_TOO_LARGE)
                return rc;
        int e = vsock_err_errno(rc);
        if (have == VSOCK_E_ERRNO) {
                if (e == ETIMEDOUT)
                        return VSOCK_ERR(VSOCK_E_TIMEOUT, e);
                if (e == ECANCELED)
                        return VSOCK_ERR(VSOCK_E_CANCELLED, e);
        }
        return VSOCK_ERR(kind, e);
}

_public_ const char *vsock_errkind_str(enum vsock_errkind kind) {
        if ((unsigned) kind >= _VSOCK_E_MAX || !kind_names[kind])
                return "error";
        return kind_names[kind];
}

_public_ const char *vsock_strerror(int rc) {
        static __thread char buf[256];
        if (rc >= 0)
                return "success";
        enum vsock_errkind k = vsock_err_kind(rc);
        int e = vsock_err_errno(rc);
        char ebuf[128];
        const char *es = e ? strerror_r(e, ebuf, sizeof ebuf) : NULL;
        if (k == VSOCK_E_ERRNO)
                snprintf(buf, sizeof buf, "%s", es ? es : "unknown error");
        else if (k == VSOCK_E_RESOLVE && (e == ENXIO || e == ENOSYS))
                /* strerror's words ("No such device or address") would
                 * mislead here. */
                snprintf(buf, sizeof buf, "%s: %s", kind_names[k],
                         e == ENXIO ? "no such host"
                                    : "host names are not supported in this statically linked program "
                                      "(use a numeric address)");
        else if (!es || k == VSOCK_E_TIMEOUT || k == VSOCK_E_CANCELLED || k == VSOCK_E_CLOSED ||
                 k == VSOCK_E_NOT_LISTENING || k == VSOCK_E_FRAME_TOO_LARGE || k == VSOCK_E_BAD_ADDRESS ||
                 k == VSOCK_E_PROTOCOL || k == VSOCK_E_DECODE || k == VSOCK_E_PORT_FORWARD_REJECTED ||
                 k == VSOCK_E_FILE_REMOTE || k == VSOCK_E_REMOTE || k == VSOCK_E_UNEXPECTED_PORT_FORWARD_MSG ||
                 k == VSOCK_E_MUX_HANDSHAKE || k == VSOCK_E_UNSUPPORTED || k == VSOCK_E_LIMIT ||
                 k == VSOCK_E_CHECKSUM)
                /* These kinds say it all; the errno is a classification. */
                snprintf(buf, sizeof buf, "%s", kind_names[k]);
        else
                snprintf(buf, sizeof buf, "%s: %s", kind_names[k], es);
        return buf;
}
