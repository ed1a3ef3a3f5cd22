/* Library-internal view of connections and listeners, shared by conn.c,
 * mux.c and frame.c. Nothing outside src/lib/ (and its tests) should need
 * this: the public types stay opaque. */
#pragma once

#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include "vsock/addr.h"
#include "vsock/conn.h"

struct vsock_caps;

struct vsock_conn {
        int fd;
        int cancel_fd;                  /* not owned; -1 = none */
        int64_t read_deadline_ns;       /* 0 = none */
        int64_t write_deadline_ns;
        uint32_t max_payload;
        struct vsock_addr local;
        struct vsock_addr remote;
        struct vsock_peer peer;
        /* A stream socket write of a large frame may go out in several
         * sendmsg() calls (the fd is non-blocking, and the kernel drops the
         * socket lock while waiting for buffer space), so two writers could
         * interleave. The lock makes whole-frame writes atomic per conn, as
         * Go's fd mutex does for net.Conn.Write. Reads get the same so a
         * frame's header and payload are read by one caller. */
        pthread_mutex_t write_lock;
        pthread_mutex_t read_lock;
        /* What Hello negotiated on this connection (client_hello.c);
         * NULL before. Owned. */
        struct vsock_caps *caps;
};

struct vsock_listener {
        int fd;
        struct vsock_addr addr;         /* as bound (real port for port 0 / PORT_ANY) */
        bool unlink_on_close;           /* unix socket file we created */
        dev_t dev;                      /* ... identified by inode, so we never */
        ino_t ino;                      /*     unlink a successor's socket */
};

/* Wrap a connected, non-blocking CLOEXEC fd. Takes ownership on success.
 * @remote may be NULL (then getpeername decides); @peer may be NULL. */
int conn_new(int fd, const struct vsock_addr *remote, const struct vsock_peer *peer, vsock_conn **ret);

/* The per-transport halves of vsock_listen_addr() (same arguments and
 * errors; @backlog <= 0 means the default). The agent resolves TCP listen
 * hosts itself (from /etc/hosts, without NSS) and calls these. */
int conn_listen_vsock(const struct vsock_addr *a, int backlog, vsock_listener **ret);
int conn_listen_unix(const struct vsock_addr *a, int backlog, unsigned mode, vsock_listener **ret);
/* Listen on TCP at @sa, one resolved address of @a (an IPv6 wildcard for
 * an empty a->host also takes IPv4). The listener's address is @a with the
 * bound port. */
int conn_listen_tcp_sockaddr(const struct vsock_addr *a, const struct sockaddr *sa, socklen_t len, int backlog,
                             vsock_listener **ret);

/* Convert between struct vsock_addr and kernel socket addresses.
 * addr_to_sockaddr handles VSOCK and UNIX/MUX paths ('@' = abstract);
 * TCP goes through tcp_resolve() instead. */
int addr_to_sockaddr(const struct vsock_addr *a, struct sockaddr_storage *ret, socklen_t *ret_len);
/* False when a caller's address has reserved bytes set (addr.h): the
 * public entry points refuse it with -EINVAL. */
bool addr_reserved_clear(const struct vsock_addr *a);
int addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct vsock_addr *ret);

/* The hybrid-vsock handshake on a freshly connected unix socket (mux.c):
 * sends "CONNECT <port>\n", waits for "OK <n>\n" until @deadline_ns.
 * Reads the reply one byte at a time so no protocol byte after the '\n' is
 * consumed. @ret_host_port (may be NULL) gets n when it fits 32 bits.
 * @reply (NULL, or MUX_REPLY_MAX + 1 bytes) always gets the reply line as
 * far as it came, without its '\n', non-printable bytes shown as '?', ""
 * if the peer sent nothing: for messages after VSOCK_E_MUX_HANDSHAKE
 * ("guest said: ERR no listener"), so it is written on failure too. */
int mux_handshake(int fd, uint32_t port, int64_t deadline_ns, int cancel_fd, char *reply, uint32_t *ret_host_port);

/* vsock_dial_addr() that also hands out the hybrid-vsock reply line (see
 * mux_handshake; @mux_reply may be NULL, and is left alone for the other
 * transports and for failures before the handshake). */
int conn_dial_addr(const struct vsock_addr *addr, int timeout_ms, int cancel_fd, char *mux_reply, vsock_conn **ret);

/* One frame of @len payload bytes produced in pieces (frame.c): @next
 * returns the next piece's length and sets *ret_piece, 0 after the last
 * piece, or a negative errno. The header goes out with the first piece;
 * the write lock is held for the whole frame. For a payload made on the
 * fly (a big file's base64), so that no buffer holds all of it. Returns
 * 0 or the codes of vsock_write_message(); -EINVAL (before anything is
 * written, or with the frame cut short) if the pieces do not add up to
 * @len. */
int frame_write_pieces(vsock_conn *c, uint8_t type, size_t len, ssize_t (*next)(void *userdata, const void **ret_piece),
                       void *userdata);
