/* Connections and listeners for every transport (the Go package's Conn,
 * Listener, Dial, Listen, ListenCID, Accept, GetLocalCID), plus wrapping
 * of any already-connected stream fd (Go's net.Conn layer).
 *
 * A vsock_conn and a vsock_listener are opaque and owned by whoever got
 * them; vsock_conn_close() and vsock_listener_close() free them. A conn
 * may be used from several threads: whole frames are written and read
 * under its locks (frame.h).
 *
 * All fds are O_CLOEXEC. Connection fds are kept non-blocking internally;
 * every blocking operation waits with poll(2) and honours the connection's
 * deadlines and cancel fd, so nothing blocks forever unless asked to. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <vsock/addr.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vsock_conn vsock_conn;
typedef struct vsock_listener vsock_listener;

/* Who is on the other end of an accepted connection. Filled by the
 * library; @reserved (zero today) is room for what a later version may
 * report, without changing the struct's size. */
struct vsock_peer {
        enum vsock_transport transport;
        uint32_t cid;        /* VSOCK: peer CID */
        uint32_t port;       /* VSOCK/TCP: peer port */
        bool has_cred;       /* UNIX: SO_PEERCRED was available */
        pid_t pid;
        uid_t uid;
        gid_t gid;
        uint64_t reserved[4];
};

/* Default hybrid-vsock handshake deadline (CONNECT ... -> OK n). */
#define VSOCK_MUX_HANDSHAKE_MS 2000

/* ---- dialing ---------------------------------------------------------- */

/* Go's Dial(cid, port): connect over AF_VSOCK. Blocking, no timeout.
 * Errors as vsock_dial_addr(). */
int vsock_dial(uint32_t cid, uint32_t port, vsock_conn **ret);

/* Connect to @addr. @timeout_ms bounds the whole connect, including the
 * hybrid-vsock handshake (-1: no bound, except the handshake's own 2 s).
 * @cancel_fd (or -1): when readable, the attempt is abandoned with
 * VSOCK_E_CANCELLED. Errors: VSOCK_E_CREATE_SOCKET, VSOCK_E_CONNECT (errno
 * kept), VSOCK_E_TIMEOUT, VSOCK_E_NOT_LISTENING (hybrid vsock closed
 * without a reply), VSOCK_E_MUX_HANDSHAKE (any other reply). */
int vsock_dial_addr(const struct vsock_addr *addr, int timeout_ms, int cancel_fd, vsock_conn **ret);

/* Parse @addr (see vsock_addr_parse, with @default_port) and dial it. */
int vsock_dial_str(const char *addr, uint32_t default_port, int timeout_ms, int cancel_fd, vsock_conn **ret);

/* Wrap an already-connected stream fd. Takes ownership of @fd on success
 * (and only then). The fd is switched to non-blocking and CLOEXEC. */
int vsock_conn_from_fd(int fd, vsock_conn **ret);

/* ---- connection ------------------------------------------------------- */

/* Close and free. Accepts NULL. Returns 0 or the close(2) error. */
int vsock_conn_close(vsock_conn *c);

/* The underlying fd, still owned by the connection. */
int vsock_conn_fd(const vsock_conn *c);

/* Give the fd away (for raw proxying or exec into another program): the
 * connection is freed, the caller owns the fd. The fd stays non-blocking. */
int vsock_conn_release_fd(vsock_conn *c);

/* Read up to @n bytes. Returns the count, 0 at EOF, or a negative code
 * (VSOCK_E_TIMEOUT / VSOCK_E_CANCELLED from the deadline / cancel fd). */
ssize_t vsock_conn_read(vsock_conn *c, void *buf, size_t n);

/* Write all @n bytes (short writes and EINTR handled; never SIGPIPE). */
int vsock_conn_write(vsock_conn *c, const void *buf, size_t n);

/* Go's io.ReadFull: exactly @n bytes, or VSOCK_E_CLOSED (errno EPIPE)
 * if EOF comes first (ret_partial, if not NULL, gets the count read). */
int vsock_conn_read_full(vsock_conn *c, void *buf, size_t n, size_t *ret_partial);

/* Half-close: no more writes (shutdown(SHUT_WR)). */
int vsock_conn_shutdown_write(vsock_conn *c);

/* Deadlines are absolute CLOCK_MONOTONIC nanoseconds; 0 clears. Unlike the
 * Go package's no-op SetDeadline, these are enforced by every read and
 * write (VSOCK_E_TIMEOUT). */
void vsock_conn_set_deadline(vsock_conn *c, int64_t deadline_ns);
void vsock_conn_set_read_deadline(vsock_conn *c, int64_t deadline_ns);
void vsock_conn_set_write_deadline(vsock_conn *c, int64_t deadline_ns);
/* A deadline @timeout_ms from now (-1: none), for the setters above. */
int64_t vsock_deadline_in(int timeout_ms);
/* Current CLOCK_MONOTONIC time in nanoseconds. */
int64_t vsock_now_ns(void);

/* Cancel fd (not owned): once readable, blocking calls return
 * VSOCK_E_CANCELLED. -1 clears. */
void vsock_conn_set_cancel_fd(vsock_conn *c, int cancel_fd);
int vsock_conn_cancel_fd(const vsock_conn *c);

/* Largest frame payload this connection accepts when reading (default
 * VSOCK_MAX_PAYLOAD_DEFAULT, see frame.h). */
void vsock_conn_set_max_payload(vsock_conn *c, uint32_t max);
uint32_t vsock_conn_max_payload(const vsock_conn *c);

/* Local and remote addresses as far as the transport knows them. */
const struct vsock_addr *vsock_conn_local_addr(const vsock_conn *c);
const struct vsock_addr *vsock_conn_remote_addr(const vsock_conn *c);

/* Peer identity (filled for accepted connections and for unix/vsock dials). */
const struct vsock_peer *vsock_conn_peer(const vsock_conn *c);

/* ---- listening -------------------------------------------------------- */

/* Go's Listen(port) == ListenCID(VSOCK_CID_ANY, port): listen on AF_VSOCK.
 * Errors: VSOCK_E_CREATE_SOCKET, VSOCK_E_BIND, VSOCK_E_LISTEN (errno
 * kept). */
int vsock_listen(uint32_t port, vsock_listener **ret);
int vsock_listen_cid(uint32_t cid, uint32_t port, vsock_listener **ret);

/* Listen on @addr (not VSOCK_TRANSPORT_MUX: the host side owns that socket).
 * For unix sockets a stale socket file is removed first and the new one
 * gets mode @unix_mode (e.g. 0600). @backlog <= 0 means 4096. */
int vsock_listen_addr(const struct vsock_addr *addr, int backlog, unsigned unix_mode, vsock_listener **ret);

/* Accept one connection. @timeout_ms: -1 blocks. The new fd is CLOEXEC and
 * non-blocking; its peer identity is filled in. */
int vsock_accept(vsock_listener *l, int timeout_ms, vsock_conn **ret);

/* The listening fd (non-blocking, CLOEXEC), for event loops. */
int vsock_listener_fd(const vsock_listener *l);
const struct vsock_addr *vsock_listener_addr(const vsock_listener *l);

/* Accept on a raw listening fd without wrapping: returns a new
 * CLOEXEC|NONBLOCK fd and fills @ret_peer, or a negative code (-EAGAIN
 * when nothing is pending). For event loops that manage fds themselves. */
int vsock_accept_fd(const vsock_listener *l, struct vsock_peer *ret_peer);

/* Close (and for unix sockets unlink the path it created). Accepts NULL. */
int vsock_listener_close(vsock_listener *l);

/* Go's GetLocalCID: ioctl(IOCTL_VM_SOCKETS_GET_LOCAL_CID) on
 * /dev/vsock. Errors: VSOCK_E_OPEN_DEVICE, VSOCK_E_GET_LOCAL_CID. */
int vsock_get_local_cid(uint32_t *ret_cid);

#ifdef __cplusplus
}
#endif
