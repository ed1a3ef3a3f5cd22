/* Waiting for the guest agent: connect to the ready port until it accepts. */
#include <errno.h>
#include <poll.h>
#include <time.h>

#include "client-internal.h"
#include "common/io.h"
#include "common/macro.h"
#include "vsock/error.h"

#define RETRY_FIRST_NS (1 * 1000000LL)
#define RETRY_MAX_NS (100 * 1000000LL)

/* Failures that mean "nothing listens there yet" rather than "this will
 * never work": a refused or reset connect, a unix socket not created yet,
 * a hybrid-vsock CONNECT the VMM refused, a vsock transport not up yet. */
static bool not_ready_yet(int rc) {
        enum vsock_errkind k = vsock_err_kind(rc);
        if (k == VSOCK_E_NOT_LISTENING)
                return true;
        if (k != VSOCK_E_CONNECT && k != VSOCK_E_ERRNO)
                return false;
        switch (vsock_err_errno(rc)) {
        case ECONNREFUSED:
        case ENOENT:
        case ECONNRESET:
        case ECONNABORTED:
        case EPIPE:
        case EAGAIN:    /* unix socket backlog full */
        case ENODEV:    /* vsock: the guest's CID is not there yet */
        case EHOSTUNREACH:
                return true;
        default:
                return false;
        }
}

/* Sleep @ns, but never past the deadline, and wake on cancel. */
static int pause_ns(int64_t ns, int64_t deadline, int cancel_fd) {
        int64_t until = now_ns() + ns;
        if (deadline > 0 && until > deadline)
                until = deadline;
        for (;;) {
                int64_t left = until - now_ns();
                if (left <= 0)
                        return 0;
                struct timespec ts = { .tv_sec = left / 1000000000, .tv_nsec = left % 1000000000 };
                struct pollfd p = { .fd = cancel_fd, .events = POLLIN };
                int r = ppoll(&p, cancel_fd >= 0 ? 1 : 0, &ts, NULL);
                if (r < 0 && errno != EINTR)
                        return -errno;
                if (r > 0)
                        return VSOCK_ERR(VSOCK_E_CANCELLED, ECANCELED);
        }
}

_public_ int vsock_wait_ready(const char *addr, struct vsock_call *call) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call)
                return -EINVAL;
        const int64_t deadline = call->deadline_ns;
        int64_t interval = RETRY_FIRST_NS;

        for (;;) {
                vsock_conn *c = NULL;
                int r = client_dial(addr, VSOCK_PORT_READY, call, &c);
                if (r >= 0) {
                        (void) vsock_conn_close(c);
                        return 0;
                }
                if (!not_ready_yet(r))
                        return r;
                if (deadline > 0 && now_ns() >= deadline) {
                        client_diag(call, "not ready; last attempt: %s", vsock_strerror(r));
                        return VSOCK_ERR(VSOCK_E_TIMEOUT, ETIMEDOUT);
                }
                r = pause_ns(interval, deadline, call->cancel_fd);
                if (r < 0)
                        return r;
                interval = MIN(interval * 2, RETRY_MAX_NS);
        }
}
