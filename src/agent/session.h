/* One accepted connection on the exec service: frame decoding, the send
 * queue, and the connection's lifecycle. The first frame selects an
 * operation (exec, port forward, file op), which then owns the session's
 * input and output through struct session_ops.
 *
 * Lifecycle: REQUEST (idle timer armed) -> ACTIVE (an operation runs) ->
 * FLUSH (the operation finished; the queue drains) -> LINGER (write side
 * shut; read to EOF, bounded) -> CLOSED (freed after the loop pass). A big
 * WriteFile takes over in REQUEST, at its header, and takes the rest of
 * the request as raw input (session_request_done() at its last byte). A
 * connection that fails or hangs up while ACTIVE stays ACTIVE until its
 * operation finishes (e.g. the child was reaped), with nothing sent. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vsock/conn.h>

#include "agent/agent.h"
#include "common/buf.h"

/* Callbacks from the session to its operation. None of them runs inside a
 * session_* call made by the operation itself. */
struct session_ops {
        const char *name;
        /* A frame after the request. Returns 0, or < 0 to log a protocol
         * error and treat the connection as lost. */
        int (*frame)(void *op, uint8_t type, const uint8_t *data, uint32_t len);
        /* Raw mode: bytes from the host. Returns how many were taken; on a
         * short count the rest is kept and the op must pause input. */
        size_t (*raw)(void *op, const uint8_t *data, size_t len);
        /* The host will send nothing more (EOF), but may still read. */
        void (*input_eof)(void *op);
        /* The connection is gone: nothing can be sent any more. */
        void (*conn_lost)(void *op);
        /* The send queue fell below the low-water mark after being high. */
        void (*drained)(void *op);
        /* The agent is shutting down. */
        void (*shutdown)(void *op);
        /* Release everything; called once, after the session finished. */
        void (*free)(void *op);
};

struct session;

/* Take @fd (also on failure) and start serving it. */
int session_new(struct agent *a, int fd, const struct vsock_peer *peer, struct session **ret);

/* Attach the operation that handles the rest of the connection. */
void session_set_op(struct session *s, const struct session_ops *ops, void *op);

uint64_t session_id(const struct session *s);
struct agent *session_agent(const struct session *s);

/* Queue one whole frame; frames never interleave. Written at once when the
 * queue is empty, EPOLLOUT is used only after EAGAIN. Returns 0 (also when
 * the connection is gone and the frame was dropped) or -ENOMEM. */
int session_send(struct session *s, uint8_t type, const void *data, size_t len);
/* Queue one whole frame built in @frame: its first VSOCK_FRAME_HEADER_SIZE
 * bytes are room for the header (filled here), the rest is the payload.
 * Takes the buffer in every case (*frame is left empty): when the queue is
 * empty it becomes the queue as it is, so a large reply is never copied.
 * Returns 0 (also when the connection is gone and the frame was dropped),
 * -EINVAL (no room for the header), -EMSGSIZE or -ENOMEM. */
int session_send_take(struct session *s, uint8_t type, struct buf *frame);
/* Build a frame in place: room for up to @max payload bytes at
 * *ret_payload; session_frame_end(s, n) commits n bytes (0: nothing). */
int session_frame_begin(struct session *s, uint8_t type, size_t max, uint8_t **ret_payload);
void session_frame_end(struct session *s, size_t n);
/* Encode a frame's payload straight into the queue: session_encode_begin
 * returns the queue to append the payload to (NULL when the connection is
 * gone: skip encoding), session_encode_end(s, r) frames what was appended,
 * or with r < 0 drops it. */
struct buf *session_encode_begin(struct session *s, uint8_t type);
void session_encode_end(struct session *s, int r);
/* Same for raw bytes (port-forward proxy mode). */
int session_raw_begin(struct session *s, size_t max, uint8_t **ret_data);
void session_raw_end(struct session *s, size_t n);

/* True while the queue is at or above the high-water mark: stop reading
 * sources until the drained callback. */
bool session_queue_high(struct session *s);
bool session_queue_empty(const struct session *s);
/* False once the connection failed or hung up. */
bool session_can_send(const struct session *s);

/* Stop / resume reading the host (backpressure towards it). */
void session_pause_input(struct session *s, bool pause);
/* From now on, host bytes go to ops->raw instead of being decoded. */
void session_set_raw(struct session *s);
/* Half-close towards the host once the queue has drained. */
void session_shutdown_write(struct session *s);

/* The operation is done (its last frame queued): flush, shut down the
 * write side, close. The op is freed after the pass. */
void session_finish(struct session *s);
/* The request is complete: stop its idle timer, the session is ACTIVE
 * (for an operation that took over before the request's last byte). */
void session_request_done(struct session *s);

/* Agent shutdown: close idle sessions, tell operations to wind down. */
void session_shutdown_all(struct agent *a);
/* At exit, after the loop stopped: free whatever is left. */
void session_destroy_all(struct agent *a);
