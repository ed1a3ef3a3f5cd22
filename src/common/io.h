/* The one place where EINTR and short reads/writes on blocking fds are
 * handled. Event-loop code must not use these: EAGAIN goes back to the loop. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Monotonic clock in nanoseconds. */
int64_t now_ns(void);

/* Deadline helpers: a deadline is an absolute CLOCK_MONOTONIC time in ns,
 * 0 meaning "none". Returns the poll(2) timeout in ms left until it, -1 for
 * none, 0 when already past. */
int deadline_to_poll_ms(int64_t deadline_ns);
int64_t deadline_from_ms(int timeout_ms);

/* Wait until @fd is ready for @events (POLLIN/POLLOUT), the deadline passes
 * (-ETIMEDOUT) or @cancel_fd (if >= 0) becomes readable (-ECANCELED).
 * EINTR is retried with the remaining time. */
int io_wait(int fd, short events, int64_t deadline_ns, int cancel_fd);

/* Read exactly @n bytes unless EOF comes first. Returns the number of bytes
 * read (< n only at EOF) or a negative errno. Works on blocking and
 * non-blocking fds (waits with io_wait on EAGAIN). */
ssize_t io_read_full(int fd, void *buf, size_t n, int64_t deadline_ns, int cancel_fd);

/* Write all of @iov (modified in place). Uses sendmsg(MSG_NOSIGNAL) on
 * sockets so SIGPIPE is never raised, and writev otherwise. Returns 0 or a
 * negative errno. */
int io_writev_all(int fd, struct iovec *iov, int iovcnt, int64_t deadline_ns, int cancel_fd);
int io_write_all(int fd, const void *buf, size_t n, int64_t deadline_ns, int cancel_fd);
/* Same as io_writev_all, but also reports how many bytes went out before
 * success or failure (@ret_done may be NULL), so a caller can tell "nothing
 * sent" from "cut short". */
int io_writev_all_n(int fd, struct iovec *iov, int iovcnt, int64_t deadline_ns, int cancel_fd, size_t *ret_done);

/* One non-blocking write attempt that never raises SIGPIPE. Returns bytes
 * written, or a negative errno (-EAGAIN included). EINTR is retried. */
ssize_t io_writev_once(int fd, const struct iovec *iov, int iovcnt);
ssize_t io_read_once(int fd, void *buf, size_t n);
/* One scattered read attempt. Returns bytes read (0 at EOF) or a negative
 * errno (-EAGAIN included). EINTR is retried. */
ssize_t io_readv_once(int fd, const struct iovec *iov, int iovcnt);

/* Whether the peer of the connected socket @fd closed both directions (or
 * reset), as opposed to a half-close, without sending or reading a byte: a
 * zero-length send fails with EPIPE/ENOTCONN/ECONNRESET on AF_VSOCK and
 * unix stream sockets once the peer can no longer receive, and succeeds
 * after its shutdown(SHUT_WR). TCP cannot tell until data is sent (a FIN
 * is a FIN): false there. Only meaningful while our write side is open. */
bool io_peer_gone(int fd);

/* accept4(2) with EINTR retried. Returns the new fd or a negative errno
 * (-EAGAIN when nothing is pending on a non-blocking listener). */
int io_accept(int fd, struct sockaddr *sa, socklen_t *salen, int flags);

int fd_set_nonblock(int fd, int on);
