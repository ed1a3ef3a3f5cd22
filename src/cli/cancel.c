/* Signals and cancellation for every subcommand (cancel.h). */
#include "cancel.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>

#include "common/macro.h"
#include "tty.h"

static const int stop_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };

static int pipe_fds[2] = { -1, -1 };
static vsock_exec_ctl *forward_ctl, *resize_ctl;
static volatile sig_atomic_t first_signo;
static volatile sig_atomic_t cancelled;

static void wake(void) {
        cancelled = 1;
        uint8_t b = 1;
        (void) !write(pipe_fds[1], &b, 1);
}

static void on_signal(int signo) {
        int saved = errno;

        if (signo == SIGWINCH) {
                uint16_t rows, cols;
                if (resize_ctl && tty_get_size(STDIN_FILENO, &rows, &cols) >= 0)
                        (void) vsock_exec_ctl_resize(resize_ctl, rows, cols);
                errno = saved;
                return;
        }
        if (first_signo != 0) {
                /* The user insists: leave now. */
                tty_restore();
                _exit(128 + signo);
        }
        first_signo = signo;
        if (forward_ctl) {
                (void) vsock_exec_ctl_signal(forward_ctl, signo);
        } else {
                tty_restore();
                wake();
        }
        errno = saved;
}

int cancel_setup(const struct cancel_opts *o) {
        if (pipe_fds[0] >= 0)
                return -EALREADY;
        if (pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) < 0)
                return -errno;
        forward_ctl = o ? o->forward : NULL;
        resize_ctl = o ? o->resize : NULL;

        struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
        /* Our signals are blocked while one is handled, so the first/second
         * decision and the terminal restore never interleave. */
        sigemptyset(&sa.sa_mask);
        for (size_t i = 0; i < ARRAY_SIZE(stop_signals); i++)
                sigaddset(&sa.sa_mask, stop_signals[i]);
        sigaddset(&sa.sa_mask, SIGWINCH);
        for (size_t i = 0; i < ARRAY_SIZE(stop_signals); i++)
                if (sigaction(stop_signals[i], &sa, NULL) < 0)
                        return -errno;
        if (resize_ctl && sigaction(SIGWINCH, &sa, NULL) < 0)
                return -errno;
        return 0;
}

int cancel_fd(void) {
        return pipe_fds[0];
}

int cancel_signo(void) {
        return first_signo;
}

void cancel_now(void) {
        if (pipe_fds[1] >= 0)
                wake();
}

bool cancel_requested(void) {
        return cancelled;
}
