/* One accepted connection on the exec service: frame decoding, the send
 * queue, and the connection's lifecycle. A request selects an operation
 * (exec, port forward, file op), which then owns the session's input and
 * output through struct session_ops.
 *
 * Each direction has its own state machine (as OpenSSH's nchan.c has for
 * a channel), with one transition function each:
 *
 *   input  (host -> agent)  OPEN -> EOF -> DONE, and any -> CLOSED
 *   output (agent -> host)  OPEN -> DRAIN -> SHUT, any -> LOST -> CLOSED,
 *                           and any -> CLOSED
 *
 * Between operations the session reads requests (its idle bound armed).
 * A request/response operation (batch and stream exec, file ops) that
 * finishes returns the connection to reading the next request; any other
 * (pipe, TTY, port forward), or one whose connection is no longer whole,
 * closes it: the queue drains, the write side shuts, and the host's EOF is
 * awaited (bounded). A host's half-close is EOF on input, never a reason
 * to stop sending; only a failed or hung-up connection (output LOST) is.
 * What to read and watch for is derived from these states, the operation's
 * pause and the queue's fill in one place (session.c, input_wanted and
 * update_interest). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vsock/conn.h>

#include "agent/agent.h"
#include "common/buf.h"

enum session_in {
        SESSION_IN_OPEN,        /* the host may send more */
        SESSION_IN_EOF,         /* the host sent EOF: its reader gets it after the bytes before it */
        SESSION_IN_DONE,        /* the reader had everything, EOF included */
        SESSION_IN_CLOSED,      /* reading stopped for good: connection lost or closed */
};

enum session_out {
        SESSION_OUT_OPEN,       /* frames are written at once, or queued after EAGAIN */
        SESSION_OUT_DRAIN,      /* nothing more is queued: the write side shuts once the queue drains */
        SESSION_OUT_SHUT,       /* our write side is shut */
        SESSION_OUT_LOST,       /* the connection failed: the operation is told after the current call */
        SESSION_OUT_CLOSED,     /* nothing can be sent, and nobody is left to tell */
};

/* Callbacks from the session to its operation. None of them runs inside a
 * session_* call made by the operation itself. */
struct session_ops {
        const char *name;
        /* A frame after the request. Returns 0, or < 0 to log a protocol
         * error and treat the connection as lost. */
        int (*frame)(void *op, uint8_t type, const uint8_t *data, uint32_t len);
        /* Optional: a frame after the request is announced (@len payload
         * bytes), before any of it is collected. Returns 0 to collect it
         * for frame(), or < 0 as frame() does. A stream refuses an
         * oversized Data here, so a hostile length costs no memory; the op
         * may also finish itself here (the frame is then dropped). */
        int (*header)(void *op, uint8_t type, uint32_t len);
        /* Raw input (a request taken over at its header, or after
         * session_set_raw): bytes from the host. Returns how many were
         * taken; on a short count the rest is kept and the op must pause
         * input. */
        size_t (*raw)(void *op, const uint8_t *data, size_t len);
        /* The host will send nothing more (it half-closed), but still
         * reads: not a reason to stop. */
        void (*input_eof)(void *op);
        /* The connection is gone: nothing can be sent any more. An
         * operation without this callback is dropped with the connection. */
        void (*conn_lost)(void *op);
        /* The send queue fell below the low-water mark after being high. */
        void (*drained)(void *op);
        /* The agent is shutting down. */
        void (*shutdown)(void *op);
        /* Release everything; called once, after the session let go of it
         * (after the loop pass in which it finished). */
        void (*free)(void *op);
};

struct session;

/* What a request type starts. The agent's table (session.c) unless
 * agent->handlers points at another (tests drive fake operations). */
struct session_handler {
        /* Takes @payload (malloc'd or NULL, wiped and freed by the callee)
         * and either attaches an operation with session_set_op() or replies
         * and calls session_finish(). < 0: neither happened, the
         * connection just closes. */
        int (*start)(struct session *s, uint8_t type, uint8_t *payload, uint32_t len);
        /* Requests from @streamed_min bytes on are taken over at their
         * header instead: the payload then arrives as raw input, and
         * session_request_done() marks its last byte. */
        int (*start_streamed)(struct session *s, uint32_t len);
        uint32_t streamed_min;
        /* A request of this type is not served (the memory budget has no
         * room for it; @why says so): queue an error reply the host
         * understands, attach nothing. The session then closes. NULL:
         * it just closes. */
        void (*refuse)(struct session *s, uint8_t type, const char *why);
        /* Request/response: no input after the request; once finished,
         * the connection reads the next request. */
        bool reply;
        /* With @reply: the operation still reads frames after its request
         * (a stream's Data and Credit), and once finished the connection
         * reads the next request. */
        bool frames;
        /* Not a request: a frame that may still be in flight from an
         * operation that ended (a stream's last Credit). Dropped between
         * requests, without extending the idle bound. */
        bool drop;
        /* Extension types (64..127): the feature HelloReply advertises for
         * it (ext.h); one name may serve several types. */
        const char *feature;
        /* Largest request payload; 0: the session's default (64 MiB for
         * base types, EXT_REQUEST_MAX for extension types). A bigger one
         * is refused at its header, before anything is allocated. */
        uint32_t max_len;
};

/* agent->handlers is indexed by message type, below this: the base types
 * and the extension types 64..127 (PROTOCOL.md 2.1). */
#define SESSION_HANDLER_TYPES 128

/* The handler table in force (the agent's, or agent->handlers). */
const struct session_handler *session_handlers(const struct agent *a);

/* Take @fd (also on failure) and start serving it. */
int session_new(struct agent *a, int fd, const struct vsock_peer *peer, struct session **ret);

/* Attach the operation that handles the rest of the request. */
void session_set_op(struct session *s, const struct session_ops *ops, void *op);

uint64_t session_id(const struct session *s);
/* Whether the connection began with Hello: extension requests (and Error
 * frames) are allowed on it. */
bool session_ext(const struct session *s);
/* The Hello handler's: extensions on for the rest of the connection. */
void session_set_ext(struct session *s);
struct agent *session_agent(const struct session *s);
enum session_in session_input_state(const struct session *s);
enum session_out session_output_state(const struct session *s);

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
 * *ret_payload; session_frame_end(s, n) commits n bytes (0: nothing).
 * -EPIPE when nothing can be sent any more. */
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
/* A bulk stream starts: let the kernel hold up to @bytes of it in flight
 * on the connection (SO_SNDBUF), so the writer blocks less often. Best
 * effort: the kernel caps it (net.core.wmem_max) or ignores it. */
void session_stream_sndbuf(struct session *s, int bytes);

/* Stop / resume reading the host (backpressure towards it). Input left
 * over is handed to the operation after the call that resumes it. */
void session_pause_input(struct session *s, bool pause);
/* From now on, host bytes go to ops->raw, unframed. */
void session_set_raw(struct session *s);
/* Half-close towards the host once the queue has drained. */
void session_shutdown_write(struct session *s);

/* The operation is done (its last frame queued); it is freed after the
 * pass. A request/response operation leaves the connection reading the
 * next request; otherwise the queue drains, the write side shuts, and the
 * connection closes at the host's EOF. */
void session_finish(struct session *s);
/* session_finish(), but the connection never reads another request: it
 * closes once the queue is written (after a protocol error). Also from a
 * handler's start() that answered without attaching an operation. */
void session_finish_close(struct session *s);
/* A request taken over at its header is complete: stop its idle bound. */
void session_request_done(struct session *s);
/* From a start function: take over what the request's payload holds in
 * the agent's memory budget (budget_release() it when the payload is
 * freed); otherwise the session releases it when the start returns.
 * Returns the bytes (0 for a request taken over at its header). */
size_t session_request_charge_take(struct session *s);

/* Agent shutdown: close idle sessions, tell operations to wind down. */
void session_shutdown_all(struct agent *a);
/* At exit, after the loop stopped: free whatever is left. */
void session_destroy_all(struct agent *a);
