#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"

bool io_peer_gone(int fd) {
        ssize_t r;
        do
                r = send(fd, "", 0, MSG_DONTWAIT | MSG_NOSIGNAL);
        while (r < 0 && errno == EINTR);
        return r < 0 && (errno == EPIPE || errno == ENOTCONN || errno == ECONNRESET);
}

int64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t deadline_from_ms(int timeout_ms) {
        if (timeout_ms < 0)
                return 0;
        return now_ns() + (int64_t) timeout_ms * 1000000;
}

int deadline_to_poll_ms(int64_t deadline_ns) {
        if (deadline_ns <= 0)
                return -1;
        int64_t left = deadline_ns - now_ns();
        if (left <= 0)
                return 0;
        /* Round up so we never wake just before the deadline and spin. */
        int64_t ms = (left + 999999) / 1000000;
        return ms > 1000000000 ? 1000000000 : (int) ms;
}

int io_wait(int fd, short events, int64_t deadline_ns, int cancel_fd) {
        for (;;) {
                struct pollfd p[2] = {
                        { .fd = fd, .events = events },
                        { .fd = cancel_fd, .events = POLLIN },
                };
                int timeout = deadline_to_poll_ms(deadline_ns);
                int r = poll(p, cancel_fd >= 0 ? 2 : 1, timeout);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (cancel_fd >= 0 && p[1].revents)
                        return -ECANCELED;
                if (r == 0)
                        return -ETIMEDOUT;
                if (p[0].revents & POLLNVAL)
                        return -EBADF;
                return 0;
        }
}

ssize_t io_read_once(int fd, void *buf, size_t n) {
        for (;;) {
                ssize_t r = read(fd, buf, n);
                if (r >= 0)
                        return r;
                if (errno != EINTR)
                        return -errno;
        }
}

ssize_t io_readv_once(int fd, const struct iovec *iov, int iovcnt) {
        for (;;) {
                ssize_t r = readv(fd, iov, iovcnt);
                if (r >= 0)
                        return r;
                if (errno != EINTR)
                        return -errno;
        }
}

ssize_t io_writev_once(int fd, const struct iovec *iov, int iovcnt) {
        for (;;) {
                struct msghdr mh = { .msg_iov = (struct iovec *) iov, .msg_iovlen = (size_t) iovcnt };
                ssize_t r = sendmsg(fd, &mh, MSG_NOSIGNAL);
                if (r < 0 && errno == ENOTSOCK)
                        r = writev(fd, iov, iovcnt);
                if (r >= 0)
                        return r;
                if (errno != EINTR)
                        return -errno;
        }
}

ssize_t io_read_full(int fd, void *buf, size_t n, int64_t deadline_ns, int cancel_fd) {
        size_t done = 0;
        while (done < n) {
                if (deadline_ns > 0 || cancel_fd >= 0) {
                        int r = io_wait(fd, POLLIN, deadline_ns, cancel_fd);
                        if (r < 0)
                                return r;
                }
                ssize_t r = io_read_once(fd, (char *) buf + done, n - done);
                if (r == -EAGAIN) {
                        int w = io_wait(fd, POLLIN, deadline_ns, cancel_fd);
                        if (w < 0)
                                return w;
                        continue;
                }
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                done += (size_t) r;
        }
        return (ssize_t) done;
}

int io_writev_all_n(int fd, struct iovec *iov, int iovcnt, int64_t deadline_ns, int cancel_fd, size_t *ret_done) {
        size_t done = 0;
        int r = 0;
        while (iovcnt > 0) {
                if (iov->iov_len == 0) {
                        iov++, iovcnt--;
                        continue;
                }
                if (deadline_ns > 0 || cancel_fd >= 0) {
                        r = io_wait(fd, POLLOUT, deadline_ns, cancel_fd);
                        if (r < 0)
                                break;
                }
                ssize_t n = io_writev_once(fd, iov, iovcnt);
                if (n == -EAGAIN) {
                        r = io_wait(fd, POLLOUT, deadline_ns, cancel_fd);
                        if (r < 0)
                                break;
                        continue;
                }
                if (n < 0) {
                        r = (int) n;
                        break;
                }
                done += (size_t) n;
                size_t left = (size_t) n;
                while (iovcnt > 0 && left >= iov->iov_len) {
                        left -= iov->iov_len;
                        iov++, iovcnt--;
                }
                if (iovcnt > 0) {
                        iov->iov_base = (char *) iov->iov_base + left;
                        iov->iov_len -= left;
                }
        }
        if (ret_done)
                *ret_done = done;
        return r < 0 ? r : 0;
}

int io_writev_all(int fd, struct iovec *iov, int iovcnt, int64_t deadline_ns, int cancel_fd) {
        return io_writev_all_n(fd, iov, iovcnt, deadline_ns, cancel_fd, NULL);
}

int io_write_all(int fd, const void *buf, size_t n, int64_t deadline_ns, int cancel_fd) {
        struct iovec iov = { .iov_base = (void *) buf, .iov_len = n };
        return io_writev_all(fd, &iov, 1, deadline_ns, cancel_fd);
}

int io_accept(int fd, struct sockaddr *sa, socklen_t *salen, int flags) {
        for (;;) {
                int r = accept4(fd, sa, salen, flags);
                if (r >= 0)
                        return r;
                if (errno != EINTR)
                        return -errno;
        }
}

int fd_set_nonblock(int fd, int on) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0)
                return -errno;
        int nfl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
        if (nfl != fl && fcntl(fd, F_SETFL, nfl) < 0)
                return -errno;
        return 0;
}
