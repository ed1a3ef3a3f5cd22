/* How vsockctl stops: the one place that handles SIGINT, SIGTERM, SIGHUP
 * and SIGQUIT (and SIGWINCH for a remote terminal).
 *
 * The first such signal either cancels the running call (a self-pipe the
 * call polls as its cancel fd) or, with a forward target, is sent to the
 * remote command as a Signal frame. A second one leaves at once with
 * 128 + signo (closing the connection then makes the agent stop the
 * command). Either way the local terminal is restored first. Code may
 * cancel too (cancel_now()), e.g. a watchdog thread.
 *
 * Handlers do only async-signal-safe work: write(2) to a pipe,
 * vsock_exec_ctl_signal/_resize, tcsetattr, _exit. Installed once per
 * process; the handlers stay until exit, so nothing they use is freed. */
#pragma once

#include <stdbool.h>

#include <vsock/client.h>

struct cancel_opts {
        /* Forward the first signal to the command instead of cancelling. */
        vsock_exec_ctl *forward;
        /* Send the terminal's size on SIGWINCH (remote terminal mode). */
        vsock_exec_ctl *resize;
};

/* Create the pipe and install the handlers. Returns 0 or -errno. */
int cancel_setup(const struct cancel_opts *o);

/* Readable once cancelled (-1 before cancel_setup()): the cancel fd for
 * struct vsock_call. */
int cancel_fd(void);

/* The signal that cancelled or was forwarded first; 0 if none (or the
 * cancellation came from cancel_now()). */
int cancel_signo(void);

/* Cancel from code (any thread). */
void cancel_now(void);

/* Whether anything cancelled (a signal in cancel mode, or cancel_now()). */
bool cancel_requested(void);
