/* The control channel of a running exec: a non-blocking pipe of fixed-size
 * records. Writers may be signal handlers, so the write side uses nothing
 * but write(2) and keeps errno intact. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client-internal.h"
#include "common/macro.h"

struct vsock_exec_ctl {
        int fds[2]; /* [0] read (the exec loop), [1] write (anyone) */
};

_public_ int vsock_exec_ctl_new(vsock_exec_ctl **ret) {
        if (!ret)
                return -EINVAL;
        vsock_exec_ctl *ctl = calloc(1, sizeof *ctl);
        if (!ctl)
                return -ENOMEM;
        if (pipe2(ctl->fds, O_CLOEXEC | O_NONBLOCK) < 0) {
                int r = -errno;
                free(ctl);
                return r;
        }
        *ret = ctl;
        return 0;
}

_public_ void vsock_exec_ctl_free(vsock_exec_ctl *ctl) {
        if (!ctl)
                return;
        safe_close(ctl->fds[0]);
        safe_close(ctl->fds[1]);
        free(ctl);
}

/* Async-signal-safe: one write(2) of a whole record, errno preserved. */
static int ctl_post(vsock_exec_ctl *ctl, const uint8_t rec[EXEC_CTL_RECORD_SIZE]) {
        int saved = errno, r = 0;
        for (;;) {
                ssize_t n = write(ctl->fds[1], rec, EXEC_CTL_RECORD_SIZE);
                if (n == EXEC_CTL_RECORD_SIZE)
                        break;
                if (n < 0 && errno == EINTR)
                        continue;
                /* A full pipe gives EAGAIN: the exec loop is far behind and
                 * the caller may retry; a short write cannot happen below
                 * PIPE_BUF. */
                r = n < 0 ? -errno : -EIO;
                break;
        }
        errno = saved;
        return r;
}

_public_ int vsock_exec_ctl_signal(vsock_exec_ctl *ctl, int signo) {
        if (!ctl || signo < 1 || signo > 64)
                return -EINVAL;
        uint8_t rec[EXEC_CTL_RECORD_SIZE] = { EXEC_CTL_SIGNAL, (uint8_t) signo };
        return ctl_post(ctl, rec);
}

_public_ int vsock_exec_ctl_resize(vsock_exec_ctl *ctl, uint16_t rows, uint16_t cols) {
        if (!ctl)
                return -EINVAL;
        uint8_t rec[EXEC_CTL_RECORD_SIZE] = {
                EXEC_CTL_RESIZE, (uint8_t) (rows >> 8), (uint8_t) rows, (uint8_t) (cols >> 8), (uint8_t) cols,
        };
        return ctl_post(ctl, rec);
}

int exec_ctl_fd(const vsock_exec_ctl *ctl) {
        return ctl ? ctl->fds[0] : -1;
}

int exec_ctl_next(vsock_exec_ctl *ctl, uint8_t rec[EXEC_CTL_RECORD_SIZE]) {
        for (;;) {
                ssize_t n = read(ctl->fds[0], rec, EXEC_CTL_RECORD_SIZE);
                if (n == EXEC_CTL_RECORD_SIZE)
                        return 1;
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return 0;
                /* Records are written whole, so anything else is a bug or
                 * a closed pipe. */
                return n < 0 ? -errno : -EIO;
        }
}
