/* Shared by the host-side operations (client_*.c, exec_ctl.c). */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "vsock/client.h"
#include "msg-internal.h"

/* Whether the caller's struct with a leading size (vsock_call,
 * vsock_exec_io, vsock_exec_request) has a layout this library knows: 0
 * (zero-initialised) is the layout of VSOCK_0.1, which today's is. When
 * a field is added, every older size stays known (its missing fields take
 * their defaults) and sizeof grows; a bigger, unknown size is -EINVAL. */
#define CLIENT_SIZE_KNOWN(p) ((p)->size == 0 || (p)->size == sizeof *(p))

/* A NULL call means "no deadline, no cancel fd"; every operation first
 * resolves it into @fallback and clears the diagnostics. Returns NULL
 * when @call's size is unknown (!CLIENT_SIZE_KNOWN): the operation then
 * fails with -EINVAL before anything else. */
struct vsock_call *client_call_resolve(struct vsock_call *call, struct vsock_call *fallback);

/* Point the connection's deadline and cancel fd at the call's, so the
 * blocking frame helpers of conn.c enforce them. */
void client_call_apply(vsock_conn *c, const struct vsock_call *call);

/* Write a diagnostic into call->remote_error (truncated, NUL-terminated). */
void client_diag(struct vsock_call *call, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Copy @len bytes of the agent's text (not NUL-terminated, may hold
 * anything) into call->remote_error. */
void client_diag_text(struct vsock_call *call, const void *text, size_t len);

/* Read one whole frame with the conn's deadline/cancel. A clean EOF before
 * any byte becomes VSOCK_E_CLOSED (errno EPIPE) with "agent closed the
 * connection before the result" in the diagnostics. */
int client_read_reply(vsock_conn *c, struct vsock_call *call, uint8_t *ret_type, uint8_t **ret_data,
                      uint32_t *ret_len);

/* Reject a frame type that has no place here: VSOCK_E_PROTOCOL (EPROTO)
 * with the type named in the diagnostics. */
int client_unexpected_frame(struct vsock_call *call, uint8_t type, const char *waiting_for);

/* Finish a failed operation: the connection is spent, so shut it down in
 * both directions (the agent sees the disconnect and kills what it runs).
 * Returns @rc. */
int client_fail(vsock_conn *c, int rc);

/* Dial @addr for an *_at() variant, bounded by the call's deadline and
 * cancel fd. */
int client_dial(const char *addr, uint32_t default_port, const struct vsock_call *call, vsock_conn **ret);

/* Encode an exec request the way client.h promises ("Exec requests"):
 * a request with args is sent in the form every agent runs alike (the
 * whole vector in args, its shell quoting in command). @tty selects the
 * ExecTTYRequest encoding. Errors are VSOCK_E_ENCODE_EXEC_REQUEST, and
 * -EINVAL for a request of an unknown size. */
int client_encode_exec_request(const struct vsock_exec_request *req, bool tty, uint8_t **ret_data,
                               size_t *ret_len);

/* ---- exec control pipe (exec_ctl.c) ------------------------------------ */

/* Every command is one fixed-size record written with a single write(2),
 * far below PIPE_BUF, so records from concurrent writers never interleave
 * and a read of a multiple of the size returns whole records. */
#define EXEC_CTL_RECORD_SIZE 5
enum exec_ctl_kind {
        EXEC_CTL_SIGNAL = 'S', /* payload: signo (1 byte), 3 bytes zero */
        EXEC_CTL_RESIZE = 'R', /* payload: rows, cols (big-endian uint16) */
};

/* The read end, for poll(2). */
int exec_ctl_fd(const vsock_exec_ctl *ctl);

/* Take the next record: 1 and @rec filled, 0 when none is pending, or a
 * negative errno. */
int exec_ctl_next(vsock_exec_ctl *ctl, uint8_t rec[EXEC_CTL_RECORD_SIZE]);
