/* Connections and listeners over AF_VSOCK, unix sockets, TCP, and hybrid
 * vsock (a unix socket plus the CONNECT handshake in mux.c). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/io.h"
#include "common/macro.h"
#include "conn-internal.h"
#include "tcp_resolve.h"
#include "vsock/conn.h"
#include "vsock/error.h"
#include "vsock/frame.h"

#define DEFAULT_BACKLOG 4096

/* A unix connect() to a listener whose backlog is full fails at once with
 * EAGAIN instead of waiting (and poll() cannot wait for room), so we retry
 * on this period until the deadline. */
#define UNIX_BACKLOG_RETRY_MS 10

/* ---- connection objects ---------------------------------------------- */

static void fill_peer(int fd, enum vsock_transport t, const struct vsock_addr *remote, struct vsock_peer *ret) {
        struct vsock_peer p = { .transport = t };

        if (remote && (remote->transport == VSOCK_TRANSPORT_VSOCK || remote->transport == VSOCK_TRANSPORT_TCP)) {
                p.cid = remote->cid;
                p.port = remote->port;
        }
        if (t == VSOCK_TRANSPORT_UNIX || t == VSOCK_TRANSPORT_MUX) {
                struct ucred cred;
                socklen_t len = sizeof cred;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) >= 0 && len == sizeof cred) {
                        p.has_cred = true;
                        p.pid = cred.pid;
                        p.uid = cred.uid;
                        p.gid = cred.gid;
                }
        }
        *ret = p;
}

int conn_new(int fd, const struct vsock_addr *remote, const struct vsock_peer *peer, vsock_conn **ret) {
        vsock_conn *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->fd = fd;
        c->cancel_fd = -1;
        c->max_payload = VSOCK_MAX_PAYLOAD_DEFAULT;
        (void) pthread_mutex_init(&c->write_lock, NULL);
        (void) pthread_mutex_init(&c->read_lock, NULL);

        /* Addresses are informational: a failure to learn them (a pipe or
         * a socketpair) leaves them zeroed rather than failing the wrap. */
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (getsockname(fd, (struct sockaddr *) &ss, &len) >= 0)
                (void) addr_from_sockaddr((struct sockaddr *) &ss, len, &c->local);
        if (remote)
                c->remote = *remote;
        else {
                len = sizeof ss;
                if (getpeername(fd, (struct sockaddr *) &ss, &len) >= 0)
                        (void) addr_from_sockaddr((struct sockaddr *) &ss, len, &c->remote);
        }
        if (peer)
                c->peer = *peer;
        else
                fill_peer(fd, c->remote.transport ? c->remote.transport : c->local.transport, &c->remote,
                          &c->peer);
        *ret = c;
        return 0;
}

static void conn_free(vsock_conn *c) {
        (void) pthread_mutex_destroy(&c->write_lock);
        (void) pthread_mutex_destroy(&c->read_lock);
        free(c->caps);
        free(c);
}

_public_ int vsock_conn_from_fd(int fd, vsock_conn **ret) {
        if (fd < 0 || !ret)
                return -EBADF;
        int fl = fcntl(fd, F_GETFD);
        if (fl < 0)
                return -errno;
        if (!(fl & FD_CLOEXEC) && fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
                return -errno;
        int r = fd_set_nonblock(fd, 1);
        if (r < 0)
                return r;
        return conn_new(fd, NULL, NULL, ret);
}

_public_ int vsock_conn_close(vsock_conn *c) {
        if (!c)
                return 0;
        int r = 0;
        /* No retry on EINTR: on Linux the fd is gone either way. */
        if (c->fd >= 0 && close(c->fd) < 0 && errno != EINTR)
                r = -errno;
        conn_free(c);
        return r;
}

_public_ int vsock_conn_fd(const vsock_conn *c) {
        return c ? c->fd : -EBADF;
}

_public_ int vsock_conn_release_fd(vsock_conn *c) {
        if (!c)
                return -EBADF;
        int fd = c->fd;
        conn_free(c);
        return fd;
}

/* Unlocked single read honouring the read deadline and cancel fd. */
static ssize_t conn_read_once(vsock_conn *c, void *buf, size_t n) {
        for (;;) {
                if (c->read_deadline_ns > 0 || c->cancel_fd >= 0) {
                        int r = io_wait(c->fd, POLLIN, c->read_deadline_ns, c->cancel_fd);
                        if (r < 0)
                                return vsock_err_wrap(VSOCK_E_ERRNO, r);
                }
                ssize_t r = io_read_once(c->fd, buf, n);
                if (r == -EAGAIN) {
                        int w = io_wait(c->fd, POLLIN, c->read_deadline_ns, c->cancel_fd);
                        if (w < 0)
                                return vsock_err_wrap(VSOCK_E_ERRNO, w);
                        continue;
                }
                return r < 0 ? vsock_err_wrap(VSOCK_E_ERRNO, (int) r) : r;
        }
}

_public_ ssize_t vsock_conn_read(vsock_conn *c, void *buf, size_t n) {
        if (!c)
                return -EBADF;
        pthread_mutex_lock(&c->read_lock);
        ssize_t r = conn_read_once(c, buf, n);
        pthread_mutex_unlock(&c->read_lock);
        return r;
}

_public_ int vsock_conn_write(vsock_conn *c, const void *buf, size_t n) {
        if (!c)
                return -EBADF;
        pthread_mutex_lock(&c->write_lock);
        int r = io_write_all(c->fd, buf, n, c->write_deadline_ns, c->cancel_fd);
        pthread_mutex_unlock(&c->write_lock);
        return vsock_err_wrap(VSOCK_E_ERRNO, r);
}

_public_ int vsock_conn_read_full(vsock_conn *c, void *buf, size_t n, size_t *ret_partial) {
        if (!c)
                return -EBADF;
        pthread_mutex_lock(&c->read_lock);
        ssize_t r = io_read_full(c->fd, buf, n, c->read_deadline_ns, c->cancel_fd);
        pthread_mutex_unlock(&c->read_lock);
        if (r < 0)
                return vsock_err_wrap(VSOCK_E_ERRNO, (int) r);
        if (ret_partial)
                *ret_partial = (size_t) r;
        if ((size_t) r < n)
                return VSOCK_ERR(VSOCK_E_CLOSED, EPIPE);
        return 0;
}

_public_ int vsock_conn_shutdown_write(vsock_conn *c) {
        if (!c)
                return -EBADF;
        if (shutdown(c->fd, SHUT_WR) < 0)
                return -errno;
        return 0;
}

_public_ void vsock_conn_set_deadline(vsock_conn *c, int64_t deadline_ns) {
        c->read_deadline_ns = deadline_ns;
        c->write_deadline_ns = deadline_ns;
}

_public_ void vsock_conn_set_read_deadline(vsock_conn *c, int64_t deadline_ns) {
        c->read_deadline_ns = deadline_ns;
}

_public_ void vsock_conn_set_write_deadline(vsock_conn *c, int64_t deadline_ns) {
        c->write_deadline_ns = deadline_ns;
}

_public_ int64_t vsock_deadline_in(int timeout_ms) {
        return deadline_from_ms(timeout_ms);
}

_public_ int64_t vsock_now_ns(void) {
        return now_ns();
}

_public_ void vsock_conn_set_cancel_fd(vsock_conn *c, int cancel_fd) {
        c->cancel_fd = cancel_fd < 0 ? -1 : cancel_fd;
}

_public_ int vsock_conn_cancel_fd(const vsock_conn *c) {
        return c->cancel_fd;
}

_public_ void vsock_conn_set_max_payload(vsock_conn *c, uint32_t max) {
        c->max_payload = max;
}

_public_ uint32_t vsock_conn_max_payload(const vsock_conn *c) {
        return c->max_payload;
}

_public_ const struct vsock_addr *vsock_conn_local_addr(const vsock_conn *c) {
        return &c->local;
}

_public_ const struct vsock_addr *vsock_conn_remote_addr(const vsock_conn *c) {
        return &c->remote;
}

_public_ const struct vsock_peer *vsock_conn_peer(const vsock_conn *c) {
        return &c->peer;
}

/* ---- dialing ----------------------------------------------------------- */

/* Non-blocking connect bounded by @deadline_ns and @cancel_fd. Returns 0
 * or a negative errno (-ETIMEDOUT / -ECANCELED included). */
static int connect_wait(int fd, const struct sockaddr *sa, socklen_t len, int64_t deadline_ns, int cancel_fd) {
        for (;;) {
                if (connect(fd, sa, len) >= 0)
                        return 0;
                int e = errno;
                /* EINTR on connect does not abort it: the handshake goes on
                 * in the background exactly as with EINPROGRESS. */
                if (e == EINPROGRESS || e == EINTR) {
                        int r = io_wait(fd, POLLOUT, deadline_ns, cancel_fd);
                        if (r < 0)
                                return r;
                        int err = 0;
                        socklen_t elen = sizeof err;
                        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
                                return -errno;
                        return err ? -err : 0;
                }
                if (e == EAGAIN && sa->sa_family == AF_UNIX) {
                        int64_t until = now_ns() + (int64_t) UNIX_BACKLOG_RETRY_MS * 1000000;
                        bool last = deadline_ns > 0 && deadline_ns <= until;
                        /* Sleep on the cancel fd (poll ignores fd -1). */
                        int r = io_wait(cancel_fd, POLLIN, last ? deadline_ns : until, -1);
                        if (r == 0)
                                return -ECANCELED;
                        if (r != -ETIMEDOUT)
                                return r;
                        if (last)
                                return -ETIMEDOUT;
                        continue;
                }
                return -e;
        }
}

static int dial_sockaddr(const struct sockaddr *sa, socklen_t len, int64_t deadline_ns, int cancel_fd, int *ret_fd) {
        _cleanup_close_ int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return VSOCK_ERR(VSOCK_E_CREATE_SOCKET, errno);
        int r = connect_wait(fd, sa, len, deadline_ns, cancel_fd);
        if (r < 0)
                return vsock_err_wrap(VSOCK_E_CONNECT, r);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* Note: name resolution itself (getaddrinfo) cannot be bounded or
 * cancelled; the deadline applies to the connects. Numeric hosts never
 * block there. */
static int dial_tcp(const struct vsock_addr *a, int64_t deadline_ns, int cancel_fd, int *ret_fd) {
        struct tcp_addr addrs[TCP_RESOLVE_MAX];
        int n = tcp_resolve(a->host, (uint16_t) a->port, false, addrs, ARRAY_SIZE(addrs));
        if (n < 0)
                return n;

        int r = VSOCK_ERR(VSOCK_E_CONNECT, ENXIO);
        for (int i = 0; i < n; i++) {
                const struct sockaddr *sa = (const struct sockaddr *) &addrs[i].sa;
                _cleanup_close_ int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                if (fd < 0) {
                        r = VSOCK_ERR(VSOCK_E_CREATE_SOCKET, errno);
                        continue;
                }
                int c = connect_wait(fd, sa, addrs[i].len, deadline_ns, cancel_fd);
                if (c == -ETIMEDOUT || c == -ECANCELED)
                        return vsock_err_wrap(VSOCK_E_CONNECT, c);
                if (c < 0) {
                        r = VSOCK_ERR(VSOCK_E_CONNECT, -c);
                        continue;
                }
                /* Frames are small request/response units: no Nagle delay. */
                int one = 1;
                (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                *ret_fd = TAKE_FD(fd);
                return 0;
        }
        return r;
}

int conn_dial_addr(const struct vsock_addr *addr, int timeout_ms, int cancel_fd, char *mux_reply, vsock_conn **ret) {
        if (!addr || !ret || !addr_reserved_clear(addr))
                return -EINVAL;

        int64_t deadline = deadline_from_ms(timeout_ms);
        _cleanup_close_ int fd = -1;
        struct sockaddr_storage ss;
        socklen_t len;
        int r;

        switch (addr->transport) {
        case VSOCK_TRANSPORT_VSOCK:
        case VSOCK_TRANSPORT_UNIX:
        case VSOCK_TRANSPORT_MUX:
                if (addr->transport != VSOCK_TRANSPORT_UNIX && addr->port == VSOCK_PORT_ANY)
                        return VSOCK_ERR(VSOCK_E_CONNECT, EINVAL);
                r = addr_to_sockaddr(addr, &ss, &len);
                if (r < 0)
                        return VSOCK_ERR(VSOCK_E_CONNECT, -r);
                r = dial_sockaddr((struct sockaddr *) &ss, len, deadline, cancel_fd, &fd);
                if (r < 0)
                        return r;
                break;
        case VSOCK_TRANSPORT_TCP:
                r = dial_tcp(addr, deadline, cancel_fd, &fd);
                if (r < 0)
                        return r;
                break;
        default:
                return VSOCK_ERR(VSOCK_E_BAD_ADDRESS, EINVAL);
        }

        if (addr->transport == VSOCK_TRANSPORT_MUX) {
                /* The handshake has its own bound even for "no timeout" dials:
                 * a VMM that never answers must not hang us. */
                int64_t hs = deadline_from_ms(VSOCK_MUX_HANDSHAKE_MS);
                if (deadline > 0 && deadline < hs)
                        hs = deadline;
                r = mux_handshake(fd, addr->port, hs, cancel_fd, mux_reply, NULL);
                if (r < 0)
                        return r;
        }

        struct vsock_peer peer;
        const struct vsock_addr *remote = addr;
        struct vsock_addr resolved;
        if (addr->transport == VSOCK_TRANSPORT_TCP) {
                /* The numeric address we actually reached is more useful
                 * than the name we were given. */
                len = sizeof ss;
                if (getpeername(fd, (struct sockaddr *) &ss, &len) >= 0 &&
                    addr_from_sockaddr((struct sockaddr *) &ss, len, &resolved) >= 0)
                        remote = &resolved;
        }
        fill_peer(fd, addr->transport, remote, &peer);
        if (addr->transport == VSOCK_TRANSPORT_MUX)
                peer.port = addr->port;

        r = conn_new(fd, remote, &peer, ret);
        if (r < 0)
                return r;
        TAKE_FD(fd);
        return 0;
}

_public_ int vsock_dial_addr(const struct vsock_addr *addr, int timeout_ms, int cancel_fd, vsock_conn **ret) {
        return conn_dial_addr(addr, timeout_ms, cancel_fd, NULL, ret);
}

_public_ int vsock_dial_str(const char *addr, uint32_t default_port, int timeout_ms, int cancel_fd, vsock_conn **ret) {
        struct vsock_addr a;
        int r = vsock_addr_parse(addr, default_port, &a, NULL);
        if (r < 0)
                return r;
        return vsock_dial_addr(&a, timeout_ms, cancel_fd, ret);
}

_public_ int vsock_dial(uint32_t cid, uint32_t port, vsock_conn **ret) {
        struct vsock_addr a = vsock_addr_vsock(cid, port);
        return vsock_dial_addr(&a, -1, -1, ret);
}

/* ---- listening --------------------------------------------------------- */

static int listener_new(int fd, const struct vsock_addr *a, vsock_listener **ret) {
        vsock_listener *l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->fd = fd;
        l->addr = *a;
        *ret = l;
        return 0;
}

/* The bound address as the kernel sees it (real port for port 0 or
 * VSOCK_PORT_ANY), falling back to what was asked for. */
static void bound_addr(int fd, const struct vsock_addr *asked, struct vsock_addr *ret) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        *ret = *asked;
        if (getsockname(fd, (struct sockaddr *) &ss, &len) >= 0)
                (void) addr_from_sockaddr((struct sockaddr *) &ss, len, ret);
}

int conn_listen_vsock(const struct vsock_addr *a, int backlog, vsock_listener **ret) {
        if (backlog <= 0)
                backlog = DEFAULT_BACKLOG;
        struct sockaddr_storage ss;
        socklen_t len;
        int r = addr_to_sockaddr(a, &ss, &len);
        if (r < 0)
                return VSOCK_ERR(VSOCK_E_BIND, -r);
        _cleanup_close_ int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return VSOCK_ERR(VSOCK_E_CREATE_SOCKET, errno);
        if (bind(fd, (struct sockaddr *) &ss, len) < 0)
                return VSOCK_ERR(VSOCK_E_BIND, errno);
        if (listen(fd, backlog) < 0)
                return VSOCK_ERR(VSOCK_E_LISTEN, errno);
        struct vsock_addr b;
        bound_addr(fd, a, &b);
        r = listener_new(fd, &b, ret);
        if (r < 0)
                return r;
        TAKE_FD(fd);
        return 0;
}

/* An existing socket file is removed only if nobody accepts on it any more
 * (connect says ECONNREFUSED): unlinking a live one would silently steal
 * the address from a running server. Anything that is not a socket is
 * never touched. */
static int remove_stale_socket(const char *path, const struct sockaddr *sa, socklen_t len) {
        struct stat st;
        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode))
                return -EADDRINUSE;
        _cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (probe < 0)
                return -errno;
        if (connect(probe, sa, len) >= 0 || errno == EAGAIN || errno == EINPROGRESS)
                return -EADDRINUSE;
        if (errno != ECONNREFUSED)
                return -errno;
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

/* Bind @fd to @path with exactly @mode, without the socket ever being
 * reachable with looser permissions and without touching the process-wide
 * umask (not thread-safe). fchmod() on a socket fd does not change the
 * file, so: bind inside a fresh 0700 directory next to @path (no one else
 * can reach it there), chmod the file, then rename it into place (same
 * filesystem, and a unix socket stays bound to its inode across a rename).
 * RENAME_NOREPLACE keeps us from replacing anything created meanwhile.
 * The socket listens before the rename, so the path is live as soon as it
 * exists. Returns 0 or a VSOCK_E_BIND / VSOCK_E_LISTEN code. */
static int bind_unix_private(int fd, const char *path, unsigned mode, int backlog) {
        const char *slash = strrchr(path, '/');
        _cleanup_free_ char *tmpl = NULL;
        if (!slash)
                tmpl = strdup(".vsock-XXXXXX");
        else if (asprintf(&tmpl, "%.*s/.vsock-XXXXXX", (int) (slash - path), path) < 0)
                tmpl = NULL;
        if (!tmpl)
                return VSOCK_ERR(VSOCK_E_BIND, ENOMEM);
        if (!mkdtemp(tmpl))
                return VSOCK_ERR(VSOCK_E_BIND, errno);

        int r = 0;
        _cleanup_close_ int dfd = open(tmpl, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) {
                r = VSOCK_ERR(VSOCK_E_BIND, errno);
                goto out_rmdir;
        }

        /* Short enough for sun_path? Otherwise go through /proc's link to
         * the directory, which is always short. */
        struct sockaddr_un un = { .sun_family = AF_UNIX };
        int n = snprintf(un.sun_path, sizeof un.sun_path, "%s/s", tmpl);
        if (n < 0 || (size_t) n >= sizeof un.sun_path)
                snprintf(un.sun_path, sizeof un.sun_path, "/proc/self/fd/%d/s", dfd);
        if (bind(fd, (struct sockaddr *) &un, sizeof un) < 0) {
                r = VSOCK_ERR(VSOCK_E_BIND, errno);
                goto out_rmdir;
        }
        if (listen(fd, backlog) < 0) {
                r = VSOCK_ERR(VSOCK_E_LISTEN, errno);
                goto out_unlink;
        }
        if (fchmodat(dfd, "s", mode & 07777, 0) < 0) {
                r = VSOCK_ERR(VSOCK_E_BIND, errno);
                goto out_unlink;
        }
        if (renameat2(dfd, "s", AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
                int e = errno;
                /* Filesystems without RENAME_NOREPLACE: we checked that no
                 * non-socket is there, so a plain rename is the fallback. */
                if ((e == EINVAL || e == ENOSYS) && renameat(dfd, "s", AT_FDCWD, path) >= 0)
                        goto out_rmdir;
                /* EEXIST: something appeared at @path since we looked. */
                r = VSOCK_ERR(VSOCK_E_BIND, e == EEXIST ? EADDRINUSE : e);
                goto out_unlink;
        }
        goto out_rmdir;

out_unlink:
        (void) unlinkat(dfd, "s", 0);
out_rmdir:
        (void) rmdir(tmpl);
        return r;
}

int conn_listen_unix(const struct vsock_addr *a, int backlog, unsigned mode, vsock_listener **ret) {
        if (backlog <= 0)
                backlog = DEFAULT_BACKLOG;
        struct sockaddr_storage ss;
        socklen_t len;
        int r = addr_to_sockaddr(a, &ss, &len);
        if (r < 0)
                return VSOCK_ERR(VSOCK_E_BIND, -r);
        bool abstract = a->path[0] == '@';

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return VSOCK_ERR(VSOCK_E_CREATE_SOCKET, errno);

        if (abstract || mode == 0) {
                if (!abstract) {
                        r = remove_stale_socket(a->path, (struct sockaddr *) &ss, len);
                        if (r < 0)
                                return VSOCK_ERR(VSOCK_E_BIND, -r);
                }
                if (bind(fd, (struct sockaddr *) &ss, len) < 0)
                        return VSOCK_ERR(VSOCK_E_BIND, errno);
                if (listen(fd, backlog) < 0) {
                        if (!abstract)
                                (void) unlink(a->path);
                        return VSOCK_ERR(VSOCK_E_LISTEN, errno);
                }
        } else {
                r = remove_stale_socket(a->path, (struct sockaddr *) &ss, len);
                if (r < 0)
                        return VSOCK_ERR(VSOCK_E_BIND, -r);
                r = bind_unix_private(fd, a->path, mode, backlog);
                if (r < 0)
                        return r;
        }

        vsock_listener *l;
        r = listener_new(fd, a, &l);
        if (r < 0) {
                if (!abstract)
                        (void) unlink(a->path);
                return r;
        }
        struct stat st;
        if (!abstract && lstat(a->path, &st) >= 0) {
                l->unlink_on_close = true;
                l->dev = st.st_dev;
                l->ino = st.st_ino;
        }
        TAKE_FD(fd);
        *ret = l;
        return 0;
}

int conn_listen_tcp_sockaddr(const struct vsock_addr *a, const struct sockaddr *sa, socklen_t len, int backlog,
                             vsock_listener **ret) {
        if (backlog <= 0)
                backlog = DEFAULT_BACKLOG;
        bool v6 = sa->sa_family == AF_INET6;
        _cleanup_close_ int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return VSOCK_ERR(VSOCK_E_CREATE_SOCKET, errno);
        int one = 1, zero = 0;
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (v6 && !a->host[0])
                (void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        if (bind(fd, sa, len) < 0)
                return VSOCK_ERR(VSOCK_E_BIND, errno);
        if (listen(fd, backlog) < 0)
                return VSOCK_ERR(VSOCK_E_LISTEN, errno);
        struct vsock_addr b;
        bound_addr(fd, a, &b);
        int r = listener_new(fd, &b, ret);
        if (r < 0)
                return r;
        TAKE_FD(fd);
        return 0;
}

static int listen_tcp(const struct vsock_addr *a, int backlog, vsock_listener **ret) {
        struct tcp_addr addrs[TCP_RESOLVE_MAX];
        int n = tcp_resolve(a->host, (uint16_t) a->port, true, addrs, ARRAY_SIZE(addrs));
        if (n < 0)
                return n;
        /* In order: for the wildcard, one dual-stack IPv6 socket (as Go
         * listens), else IPv4. */
        int r = VSOCK_ERR(VSOCK_E_BIND, EADDRNOTAVAIL);
        for (int i = 0; i < n; i++) {
                r = conn_listen_tcp_sockaddr(a, (const struct sockaddr *) &addrs[i].sa, addrs[i].len, backlog, ret);
                if (r >= 0 || r == -ENOMEM)
                        return r;
        }
        return r;
}

_public_ int vsock_listen_addr(const struct vsock_addr *addr, int backlog, unsigned unix_mode, vsock_listener **ret) {
        if (!addr || !ret || !addr_reserved_clear(addr))
                return -EINVAL;
        if (backlog <= 0)
                backlog = DEFAULT_BACKLOG;
        switch (addr->transport) {
        case VSOCK_TRANSPORT_VSOCK:
                return conn_listen_vsock(addr, backlog, ret);
        case VSOCK_TRANSPORT_UNIX:
                return conn_listen_unix(addr, backlog, unix_mode, ret);
        case VSOCK_TRANSPORT_TCP:
                return listen_tcp(addr, backlog, ret);
        case VSOCK_TRANSPORT_MUX:
                /* The VMM owns the hybrid-vsock socket; guests listen on
                 * plain vsock. */
        default:
                return VSOCK_ERR(VSOCK_E_BAD_ADDRESS, EINVAL);
        }
}

_public_ int vsock_listen_cid(uint32_t cid, uint32_t port, vsock_listener **ret) {
        struct vsock_addr a = vsock_addr_vsock(cid, port);
        return vsock_listen_addr(&a, 0, 0, ret);
}

_public_ int vsock_listen(uint32_t port, vsock_listener **ret) {
        return vsock_listen_cid(VSOCK_CID_ANY, port, ret);
}

/* ---- accepting --------------------------------------------------------- */

static int accept_raw(const vsock_listener *l, struct vsock_peer *ret_peer, struct vsock_addr *ret_remote) {
        struct sockaddr_storage ss;
        socklen_t len;
        int fd;

        for (;;) {
                len = sizeof ss;
                fd = io_accept(l->fd, (struct sockaddr *) &ss, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
                /* The client gave up between SYN and accept: not our error. */
                if (fd == -ECONNABORTED)
                        continue;
                break;
        }
        if (fd < 0) {
                /* Event loops back off on these instead of failing. */
                if (fd == -EAGAIN || fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM)
                        return fd;
                return VSOCK_ERR(VSOCK_E_ACCEPT, -fd);
        }

        struct vsock_addr remote = {};
        if (addr_from_sockaddr((struct sockaddr *) &ss, len, &remote) < 0)
                remote.transport = l->addr.transport;
        if (l->addr.transport == VSOCK_TRANSPORT_TCP) {
                int one = 1;
                (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        if (ret_peer)
                fill_peer(fd, l->addr.transport, &remote, ret_peer);
        if (ret_remote)
                *ret_remote = remote;
        return fd;
}

_public_ int vsock_accept_fd(const vsock_listener *l, struct vsock_peer *ret_peer) {
        if (!l)
                return -EBADF;
        return accept_raw(l, ret_peer, NULL);
}

_public_ int vsock_accept(vsock_listener *l, int timeout_ms, vsock_conn **ret) {
        if (!l || !ret)
                return -EINVAL;
        int64_t deadline = deadline_from_ms(timeout_ms);
        struct vsock_peer peer;
        struct vsock_addr remote;

        for (;;) {
                int fd = accept_raw(l, &peer, &remote);
                if (fd == -EAGAIN) {
                        int r = io_wait(l->fd, POLLIN, deadline, -1);
                        if (r < 0)
                                return vsock_err_wrap(VSOCK_E_ACCEPT, r);
                        continue;
                }
                if (fd < 0)
                        return vsock_err_wrap(VSOCK_E_ACCEPT, fd);
                vsock_conn *c;
                int r = conn_new(fd, &remote, &peer, &c);
                if (r < 0) {
                        (void) safe_close(fd);
                        return r;
                }
                /* A unix socket bound through a private directory reports
                 * that temporary name; the path it lives at is ours. */
                if (l->addr.transport == VSOCK_TRANSPORT_UNIX)
                        c->local = l->addr;
                *ret = c;
                return 0;
        }
}

_public_ int vsock_listener_fd(const vsock_listener *l) {
        return l ? l->fd : -EBADF;
}

_public_ const struct vsock_addr *vsock_listener_addr(const vsock_listener *l) {
        return &l->addr;
}

_public_ int vsock_listener_close(vsock_listener *l) {
        if (!l)
                return 0;
        if (l->unlink_on_close) {
                /* Only if the path is still our socket: a newer server may
                 * have replaced it since. */
                struct stat st;
                if (lstat(l->addr.path, &st) >= 0 && st.st_dev == l->dev && st.st_ino == l->ino)
                        (void) unlink(l->addr.path);
        }
        int r = 0;
        if (l->fd >= 0 && close(l->fd) < 0 && errno != EINTR)
                r = -errno;
        free(l);
        return r;
}

/* ---- local CID --------------------------------------------------------- */

_public_ int vsock_get_local_cid(uint32_t *ret_cid) {
        if (!ret_cid)
                return -EINVAL;
        _cleanup_close_ int fd = open("/dev/vsock", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return VSOCK_ERR(VSOCK_E_OPEN_DEVICE, errno);
        unsigned int cid = 0;
        if (ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) < 0)
                return VSOCK_ERR(VSOCK_E_GET_LOCAL_CID, errno);
        *ret_cid = cid;
        return 0;
}
