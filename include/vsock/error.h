/* libvsock error model.
 *
 * Every function returns >= 0 on success and a negative code on failure. A
 * code carries two things at once: the *kind* of failure (the Go package's
 * named errors, plus a few of our own) and the errno that caused it, if any:
 *
 *     rc = -((kind << 16) | errnum)
 *
 * A plain negative errno (kind 0) is also a valid code. vsock_err_kind() and
 * vsock_err_errno() split a code; vsock_strerror() renders it the way the Go
 * package would wrap it, e.g. "connect to vsock: Connection refused". */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

enum vsock_errkind {
        VSOCK_E_ERRNO = 0,              /* plain errno, no extra context */
        /* Socket lifecycle (Go: ErrCreateSocket ... ErrConnect) */
        VSOCK_E_CREATE_SOCKET = 1,
        VSOCK_E_BIND,
        VSOCK_E_LISTEN,
        VSOCK_E_ACCEPT,
        VSOCK_E_CONNECT,
        /* Device / CID (Go: ErrOpenDevice, ErrGetLocalCID) */
        VSOCK_E_OPEN_DEVICE,
        VSOCK_E_GET_LOCAL_CID,
        /* Wire protocol (Go's named errors) */
        VSOCK_E_ENCODE_EXEC_REQUEST,
        VSOCK_E_WRITE_HEADER,
        VSOCK_E_WRITE_REQUEST,
        VSOCK_E_READ_RESPONSE_HEADER,
        VSOCK_E_READ_RESPONSE_DATA,
        VSOCK_E_ENCODE_PORT_FORWARD_REQUEST,
        VSOCK_E_READ_PORT_FORWARD_RESPONSE,
        VSOCK_E_PORT_FORWARD_REJECTED,
        VSOCK_E_UNEXPECTED_PORT_FORWARD_MSG,
        VSOCK_E_ENCODE_FILE_REQUEST,
        VSOCK_E_FILE_REMOTE,
        /* Ours */
        VSOCK_E_FRAME_TOO_LARGE,        /* header announced more than the limit */
        VSOCK_E_TIMEOUT,                /* a deadline passed */
        VSOCK_E_CANCELLED,              /* the cancel fd fired */
        VSOCK_E_BAD_ADDRESS,            /* address string could not be parsed */
        VSOCK_E_PROTOCOL,               /* peer violated the protocol */
        VSOCK_E_DECODE,                 /* malformed JSON or binary payload */
        VSOCK_E_CLOSED,                 /* peer closed the connection */
        VSOCK_E_MUX_HANDSHAKE,          /* hybrid vsock CONNECT got a bad reply */
        VSOCK_E_NOT_LISTENING,          /* hybrid vsock: guest port not listening */
        VSOCK_E_REMOTE,                 /* the agent reported an error */
        VSOCK_E_RESOLVE,                /* a TCP host name did not resolve (ENXIO: no
                                         * such host; ENOSYS: names unsupported in
                                         * this statically linked program) */
        /* Extensions (PROTOCOL.md Part 2) */
        VSOCK_E_UNSUPPORTED,            /* the agent does not serve the feature (a base
                                         * agent, or one without it): errno ENOTSUP, or
                                         * ENOSYS when the agent answered so */
        VSOCK_E_LIMIT,                  /* an agent limit was reached (Error ELIMIT) */
        VSOCK_E_CHECKSUM,               /* a stream's size or SHA-256 did not match */
        _VSOCK_E_MAX
};

#define VSOCK_ERR(kind, errnum) (-(int) ((((unsigned) (kind)) << 16) | ((unsigned) (errnum) & 0xffffu)))

/* The kind of a negative code (VSOCK_E_ERRNO for a plain -errno, or 0 for
 * rc >= 0). */
enum vsock_errkind vsock_err_kind(int rc);

/* The errno carried by a negative code, or 0 if none. */
int vsock_err_errno(int rc);

/* Build a code: wrap a negative errno (or another code, whose errno is kept)
 * with a kind. Returns rc unchanged if rc >= 0. */
int vsock_err_wrap(enum vsock_errkind kind, int rc);

/* Static text for a kind, matching the Go package's error strings
 * ("connect to vsock", "write header", ...). */
const char *vsock_errkind_str(enum vsock_errkind kind);

/* Human-readable message for a code: "<kind>: <strerror(errno)>" or the
 * part that applies. Thread-safe (uses a thread-local buffer). */
const char *vsock_strerror(int rc);

#ifdef __cplusplus
}
#endif
