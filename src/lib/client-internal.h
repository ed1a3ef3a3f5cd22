/* Shared by the host-side operations (client_*.c, exec_ctl.c). */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "ext_msg.h"
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

/* The code of an extension Error frame's payload, as client_ext_read()
 * maps it (client_hello.c), its message in call->remote_error; a payload
 * that does not decode gives the decoder's code. */
int client_ext_error(struct vsock_call *call, const void *data, size_t len);

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

/* ---- extensions (client_hello.c, caps.c) ------------------------------- */

struct ext_shape;

/* Send the request @type (@payload, @len) of an extension operation that
 * needs @feature (a VSOCK_FEATURE_* bit; 0: none) on @c. On a connection
 * that has not negotiated yet, Hello goes first, back to back with the
 * request, and the HelloReply is read here (the agent answers in order):
 * a close before it means a base agent (cached as such). Either way, an
 * agent without @feature gives VSOCK_E_UNSUPPORTED with "agent does not
 * support FEATURE" in call->remote_error, and @c is spent. On success the
 * request's reply is next on @c. The call's deadline and cancel fd are
 * applied to @c. */
int client_ext_send(vsock_conn *c, unsigned feature, uint8_t type, const void *payload, size_t len,
                    struct vsock_call *call);
/* The same with the request encoded from @msg (a struct of @shape). */
int client_ext_send_msg(vsock_conn *c, unsigned feature, uint8_t type, const struct ext_shape *shape, const void *msg,
                        struct vsock_call *call);
/* The next frame of an extension operation (client_read_reply()), with
 * an Error frame turned into its code: VSOCK_E_REMOTE with the errno for
 * errno names, VSOCK_E_LIMIT (ELIMIT), VSOCK_E_CHECKSUM (ECHECKSUM),
 * VSOCK_E_UNSUPPORTED (ENOSYS), VSOCK_E_PROTOCOL (EPROTO), and the
 * agent's message in call->remote_error. Nothing is shut down here. */
int client_ext_read(vsock_conn *c, struct vsock_call *call, uint8_t *ret_type, uint8_t **ret_data, uint32_t *ret_len);
/* Read a terminal reply that must be of @type and decode it with @shape
 * into @ret (ext_decode's contract). On any failure @c is shut down
 * (client_fail) unless the failure was an Error frame, after which the
 * agent reads the next request. */
int client_ext_reply(vsock_conn *c, struct vsock_call *call, uint8_t type, const struct ext_shape *shape, void *ret);
/* client_ext_send_msg() then client_ext_reply(): a request answered by
 * one frame of @reply_type, decoded into @ret (a struct of @reply_shape). */
int client_ext_call(vsock_conn *c, unsigned feature, uint8_t type, const struct ext_shape *shape, const void *msg,
                    uint8_t reply_type, const struct ext_shape *reply_shape, void *ret, struct vsock_call *call);
/* VSOCK_E_UNSUPPORTED, "agent does not support FEATURE" in
 * call->remote_error (@feature: one VSOCK_FEATURE_* bit). */
int client_ext_unsupported(struct vsock_call *call, unsigned feature);
/* The caps negotiated on @c; NULL before Hello. */
const struct vsock_caps *client_ext_caps(const vsock_conn *c);
/* Dial @addr (default port 5000) for an extension operation, resolving
 * *@call first (NULL: @fallback, initialised; a call of an unknown size:
 * -EINVAL), so an *_at() wrapper is a dial, its call and a close. */
int client_ext_dial(const char *addr, struct vsock_call **call, struct vsock_call *fallback, vsock_conn **ret);

/* The process-wide cache (caps.c). Keys are canonical address strings. */
#define CAPS_KEY_MAX 160
#define CAPS_BASE_ONLY_TTL_NS (INT64_C(600) * 1000000000)
/* The key of @c's remote address; -ENAMETOOLONG / -EINVAL when it has none. */
int caps_key_conn(const vsock_conn *c, char key[CAPS_KEY_MAX]);
/* Record a HelloReply (@caps) or, with NULL, "base only" for @key. */
void caps_cache_put(const char *key, const struct vsock_caps *caps);
/* Copy as much of @from as @to->size says the caller's struct holds. */
void caps_copy_out(const struct vsock_caps *from, struct vsock_caps *to);
/* Tests: the clock the cache ages entries by (NULL: CLOCK_MONOTONIC). */
void caps_cache_set_clock(int64_t (*now)(void));

/* ---- attach to a detached process (client_exec.c, client_proc.c) ------ */

/* The output phase of a ProcAttach, after its ProcInfo. */
struct client_attach {
        bool input;                     /* stdin, signals, resizes go to the process */
        bool tty;                       /* ... resizes too */
        int (*on_gap)(void *userdata, uint64_t from, uint64_t to); /* io->userdata */
        uint64_t offset;                /* in: where the replay starts; out: where it stopped */
        struct ext_proc_end end;        /* out, with has_end */
        bool has_end;
};
/* Run the exec loop on @c (ProcOutput to @io, ProcGap to on_gap, stdin
 * and ctl from @io when a->input) until ProcEnd. Nothing is shut down
 * here. */
int client_attach_run(vsock_conn *c, const struct vsock_exec_io *io, struct vsock_call *call,
                      struct client_attach *a);

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
