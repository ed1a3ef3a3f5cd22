/* Exec over one connection: batch (type 1) and the three streaming modes
 * (stream 11, pipe 12, tty 9), which share one poll loop driven by a mode
 * table, as does the output phase of an attach to a detached process
 * (client_proc.c). Also the helpers every host-side operation shares. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "client-internal.h"
#include "common/buf.h"
#include "common/io.h"
#include "common/macro.h"
#include "ext_msg.h"
#include "vsock/error.h"
#include "vsock/frame.h"

/* ---- shared by the client modules -------------------------------------- */

struct vsock_call *client_call_resolve(struct vsock_call *call, struct vsock_call *fallback) {
        if (!call) {
                *fallback = (struct vsock_call) VSOCK_CALL_INIT;
                call = fallback;
        }
        if (!CLIENT_SIZE_KNOWN(call))
                return NULL; /* not even remote_error is where we think */
        call->remote_error[0] = '\0';
        return call;
}

void client_call_apply(vsock_conn *c, const struct vsock_call *call) {
        vsock_conn_set_deadline(c, call->deadline_ns);
        vsock_conn_set_cancel_fd(c, call->cancel_fd);
}

void client_diag(struct vsock_call *call, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        (void) vsnprintf(call->remote_error, sizeof call->remote_error, fmt, ap);
        va_end(ap);
}

void client_diag_text(struct vsock_call *call, const void *text, size_t len) {
        size_t n = MIN(len, sizeof call->remote_error - 1);
        if (n > 0)
                memcpy(call->remote_error, text, n);
        call->remote_error[n] = '\0';
}

int client_read_reply(vsock_conn *c, struct vsock_call *call, uint8_t *ret_type, uint8_t **ret_data,
                      uint32_t *ret_len) {
        int r = vsock_read_message(c, ret_type, ret_data, ret_len);
        if (r >= 0)
                return 0;
        enum vsock_errkind k = vsock_err_kind(r);
        int e = vsock_err_errno(r);
        if (k == VSOCK_E_READ_RESPONSE_HEADER && e == EPIPE) {
                client_diag(call, "agent closed the connection before the result");
                return VSOCK_ERR(VSOCK_E_CLOSED, EPIPE);
        }
        if (k == VSOCK_E_CLOSED)
                client_diag(call, "agent closed the connection before the result");
        else if ((k == VSOCK_E_READ_RESPONSE_HEADER || k == VSOCK_E_READ_RESPONSE_DATA) &&
                 (e == EPROTO || e == ECONNRESET))
                client_diag(call, "agent closed the connection in the middle of a frame");
        return r;
}

int client_unexpected_frame(struct vsock_call *call, uint8_t type, const char *waiting_for) {
        const char *name = vsock_msg_type_name(type);
        if (name)
                client_diag(call, "unexpected %s frame (type %u) while waiting for %s", name, type, waiting_for);
        else
                client_diag(call, "unknown frame type %u while waiting for %s", type, waiting_for);
        return VSOCK_ERR(VSOCK_E_PROTOCOL, EPROTO);
}

int client_fail(vsock_conn *c, int rc) {
        if (rc < 0 && c)
                (void) shutdown(vsock_conn_fd(c), SHUT_RDWR);
        return rc;
}

int client_dial(const char *addr, uint32_t default_port, const struct vsock_call *call, vsock_conn **ret) {
        if (!addr)
                return VSOCK_ERR(VSOCK_E_BAD_ADDRESS, EINVAL);
        return vsock_dial_str(addr, default_port, deadline_to_poll_ms(call->deadline_ns), call->cancel_fd, ret);
}

static int decode_response(struct vsock_call *call, const uint8_t *data, size_t len,
                           struct vsock_exec_response *ret) {
        const char *why = NULL;
        int r = vsock_exec_response_decode(data, len, ret, &why);
        if (r < 0)
                client_diag(call, "ExecResult: %s", why ? why : "malformed");
        return r;
}

/* An empty error string means "none" in both agents' encodings. */
static char *take_error(struct vsock_exec_response *resp) {
        if (resp->error && resp->error[0])
                return TAKE_PTR(resp->error);
        return NULL;
}

static uint8_t *take_bytes(struct vsock_bytes *b, size_t *ret_len) {
        *ret_len = b->len;
        if (b->len == 0)
                return NULL; /* the clear below frees an empty allocation */
        return TAKE_PTR(b->data);
}

_public_ void vsock_exec_result_clear(struct vsock_exec_result *r) {
        if (!r)
                return;
        free(r->stdout_data);
        free(r->stderr_data);
        free(r->error);
        *r = (struct vsock_exec_result) {};
}

/* ---- batch --------------------------------------------------------------- */

_public_ int vsock_exec(vsock_conn *c, const struct vsock_exec_request *req, struct vsock_call *call,
                        struct vsock_exec_result *ret) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call || !c || !req || !ret)
                return -EINVAL;
        client_call_apply(c, call);

        _cleanup_free_ uint8_t *payload = NULL;
        size_t len;
        int r = client_encode_exec_request(req, false, &payload, &len);
        if (r < 0)
                return r;

        int64_t t0 = now_ns();
        r = vsock_write_message(c, VSOCK_MSG_EXEC, payload, len);
        if (r < 0)
                return client_fail(c, r);

        uint8_t type;
        _cleanup_free_ uint8_t *data = NULL;
        uint32_t dlen;
        r = client_read_reply(c, call, &type, &data, &dlen);
        if (r < 0)
                return client_fail(c, r);
        int64_t t1 = now_ns();
        if (type != VSOCK_MSG_EXEC_RESULT)
                return client_fail(c, client_unexpected_frame(call, type, "ExecResult"));

        struct vsock_exec_response resp = {};
        r = decode_response(call, data, dlen, &resp);
        if (r < 0)
                return client_fail(c, r);
        *ret = (struct vsock_exec_result) {
                .exit_code = resp.exit_code,
                .error = take_error(&resp),
                .duration_ns = t1 - t0,
        };
        ret->stdout_data = take_bytes(&resp.stdout_data, &ret->stdout_len);
        ret->stderr_data = take_bytes(&resp.stderr_data, &ret->stderr_len);
        vsock_exec_response_clear(&resp);
        return 0;
}

/* ---- streaming modes ------------------------------------------------------ */

#define STDIN_CHUNK (32u * 1024)
/* Several of the agent's 64 KiB frames per read when we fall behind. */
#define READ_CHUNK (256u * 1024)
/* Stdin is read only while the send queue is empty, so the socket's own
 * buffer is the flow control; control frames (a few bytes each) are taken
 * while the queue is below the high-water mark. */
#define OUTQ_HIGH_WATER (64u * 1024)
#define OUTQ_MAX (256u * 1024)

enum exec_kind { EXEC_STREAM, EXEC_PIPE, EXEC_TTY, EXEC_ATTACH, _EXEC_KIND_MAX };

enum frame_action {
        ACT_UNEXPECTED = 0,
        ACT_STDOUT,
        ACT_STDERR,
        ACT_RESULT, /* ExecResult: final (pipe/tty agents send it on start errors) */
        ACT_EXIT,   /* Exit: final */
        ACT_PROC_OUTPUT, /* attach: ProcOutput, collected (a header before the bytes) */
        ACT_PROC_GAP,
        ACT_PROC_END,    /* attach: final */
};

struct exec_mode {
        uint8_t request_type;
        bool tty;         /* ExecTTYRequest (rows/cols) and Resize frames */
        bool interactive; /* Stdin and Signal frames */
        const char *final_name;
        uint8_t actions[EXT_MSG_PROC_END + 1];
};

static const struct exec_mode exec_modes[_EXEC_KIND_MAX] = {
        [EXEC_STREAM] = {
                .request_type = VSOCK_MSG_EXEC_STREAM,
                .final_name = "ExecResult",
                .actions = {
                        [VSOCK_MSG_STDOUT] = ACT_STDOUT,
                        [VSOCK_MSG_STDERR] = ACT_STDERR,
                        [VSOCK_MSG_EXEC_RESULT] = ACT_RESULT,
                },
        },
        [EXEC_PIPE] = {
                .request_type = VSOCK_MSG_EXEC_PIPE,
                .interactive = true,
                .final_name = "Exit",
                .actions = {
                        [VSOCK_MSG_STDOUT] = ACT_STDOUT,
                        [VSOCK_MSG_STDERR] = ACT_STDERR,
                        [VSOCK_MSG_EXEC_RESULT] = ACT_RESULT,
                        [VSOCK_MSG_EXIT] = ACT_EXIT,
                },
        },
        [EXEC_TTY] = {
                .request_type = VSOCK_MSG_EXEC_TTY,
                .tty = true,
                .interactive = true,
                .final_name = "Exit",
                .actions = {
                        [VSOCK_MSG_STDOUT] = ACT_STDOUT,
                        [VSOCK_MSG_STDERR] = ACT_STDERR,
                        [VSOCK_MSG_EXEC_RESULT] = ACT_RESULT,
                        [VSOCK_MSG_EXIT] = ACT_EXIT,
                },
        },
        [EXEC_ATTACH] = {
                .final_name = "ProcEnd",
                .actions = {
                        [EXT_MSG_PROC_OUTPUT] = ACT_PROC_OUTPUT,
                        [EXT_MSG_PROC_GAP] = ACT_PROC_GAP,
                        [EXT_MSG_PROC_END] = ACT_PROC_END,
                },
        },
};

struct exec_loop {
        const struct exec_mode *mode;
        bool interactive, tty;  /* the mode's, or the attach's */
        struct client_attach *attach;
        const struct vsock_exec_io *io;
        struct vsock_call *call;
        int fd;
        uint32_t max_payload;
        struct buf outq;
        bool want_input; /* stdin not at EOF yet */
        bool peer_gone;  /* a write failed: the agent reads no more */
        bool done;       /* the final frame arrived */
        int64_t exit_code;
        char *error;
        /* Output payloads pass through to the caller straight from rbuf,
         * in as many pieces as they arrive in; only the final frame
         * (small) is collected by the decoder. */
        vsock_decoder *dec;
        uint8_t rbuf[READ_CHUNK];
};

static void exec_loop_free(struct exec_loop *l) {
        if (!l)
                return;
        vsock_decoder_free(l->dec);
        buf_wipe_free(&l->outq); /* may hold stdin: secrets */
        free(l->error);
        free(l);
}

static void exec_loop_freep(struct exec_loop **l) {
        exec_loop_free(*l);
}

static int err_timeout(void) {
        return VSOCK_ERR(VSOCK_E_TIMEOUT, ETIMEDOUT);
}

static int err_cancelled(void) {
        return VSOCK_ERR(VSOCK_E_CANCELLED, ECANCELED);
}

static int queue_frame(struct exec_loop *l, uint8_t type, const void *data, size_t len) {
        if (l->peer_gone)
                return 0;
        uint8_t *tail;
        int r = buf_reserve(&l->outq, VSOCK_FRAME_HEADER_SIZE + len, &tail);
        if (r < 0)
                return r;
        vsock_frame_header(tail, type, (uint32_t) len);
        if (len > 0)
                memcpy(tail + VSOCK_FRAME_HEADER_SIZE, data, len);
        return buf_commit(&l->outq, VSOCK_FRAME_HEADER_SIZE + len);
}

/* Write what the socket takes now; the rest waits for POLLOUT. */
static void flush(struct exec_loop *l) {
        while (!buf_empty(&l->outq)) {
                struct iovec iov = { .iov_base = buf_head(&l->outq), .iov_len = buf_size(&l->outq) };
                ssize_t n = io_writev_once(l->fd, &iov, 1);
                if (n == -EAGAIN)
                        return;
                if (n < 0) {
                        /* The agent stopped reading (the command is done, or
                         * the agent is gone): its final frame or EOF is still
                         * to be read, which decides the outcome. */
                        l->peer_gone = true;
                        l->want_input = false;
                        buf_reset(&l->outq);
                        return;
                }
                (void) buf_consume(&l->outq, (size_t) n);
        }
}

/* Read one chunk of input straight into the queue as a Stdin frame; 0 bytes
 * is EOF, sent as an empty frame. */
static int read_input(struct exec_loop *l) {
        const struct vsock_exec_io *io = l->io;
        uint8_t *tail;
        int r = buf_reserve(&l->outq, VSOCK_FRAME_HEADER_SIZE + STDIN_CHUNK, &tail);
        if (r < 0)
                return r;
        uint8_t *dst = tail + VSOCK_FRAME_HEADER_SIZE;
        ssize_t n = io->read_stdin ? io->read_stdin(io->userdata, dst, STDIN_CHUNK)
                                   : io_read_once(io->stdin_fd, dst, STDIN_CHUNK);
        if (n == -EAGAIN || n == -EINTR)
                return 0;
        if (n < 0)
                return (int) n;
        if ((size_t) n > STDIN_CHUNK)
                return -EINVAL; /* a read_stdin callback overran its buffer size */
        vsock_frame_header(tail, VSOCK_MSG_STDIN, (uint32_t) n);
        r = buf_commit(&l->outq, VSOCK_FRAME_HEADER_SIZE + (size_t) n);
        if (r < 0)
                return r;
        if (n == 0)
                l->want_input = false;
        return 0;
}

static int drain_ctl(struct exec_loop *l) {
        uint8_t rec[EXEC_CTL_RECORD_SIZE];
        while (buf_size(&l->outq) < OUTQ_HIGH_WATER) {
                int r = exec_ctl_next(l->io->ctl, rec);
                if (r <= 0)
                        return r;
                if (rec[0] == EXEC_CTL_SIGNAL)
                        r = queue_frame(l, VSOCK_MSG_SIGNAL, rec + 1, 1);
                else if (rec[0] == EXEC_CTL_RESIZE && l->tty)
                        /* The record already holds rows, cols big-endian. */
                        r = queue_frame(l, VSOCK_MSG_RESIZE, rec + 1, 4);
                /* A resize without a terminal means nothing: dropped. */
                if (r < 0)
                        return r;
        }
        return 0;
}

static int deliver(struct exec_loop *l, enum vsock_stream_id stream, const uint8_t *data, size_t len) {
        const struct vsock_exec_io *io = l->io;
        if (len == 0)
                return 0;
        if (io->on_output) {
                int r = io->on_output(io->userdata, stream, data, len);
                return r < 0 ? r : 0;
        }
        int fd = stream == VSOCK_STREAM_STDOUT ? io->stdout_fd : io->stderr_fd;
        if (fd < 0)
                return 0;
        /* The fd may be a blocking terminal or pipe: waiting on it is our
         * backpressure, still bounded by the call's deadline and cancel. */
        int r = io_write_all(fd, data, len, l->call->deadline_ns, l->call->cancel_fd);
        if (r == -ETIMEDOUT)
                return err_timeout();
        if (r == -ECANCELED)
                return err_cancelled();
        return r;
}

static uint8_t frame_action(const struct exec_loop *l, uint8_t type) {
        return type < ARRAY_SIZE(l->mode->actions) ? l->mode->actions[type] : ACT_UNEXPECTED;
}

/* An attach's frames: output with its offset, gaps, the end. */
static int handle_attach(struct exec_loop *l, uint8_t act, const uint8_t *data, uint32_t len) {
        struct client_attach *a = l->attach;
        const char *why = NULL;
        int r;
        if (act == ACT_PROC_OUTPUT) {
                uint8_t stream;
                uint64_t offset;
                const uint8_t *bytes;
                size_t n;
                r = ext_proc_output_decode(data, len, &stream, &offset, &bytes, &n, &why);
                if (r >= 0 && offset != a->offset) {
                        why = "not contiguous with the output before it";
                        r = VSOCK_ERR(VSOCK_E_DECODE, EINVAL);
                }
                if (r < 0) {
                        client_diag(l->call, "ProcOutput: %s", why ? why : "malformed");
                        return r;
                }
                a->offset = offset + n;
                return deliver(l, stream == EXT_STREAM_STDOUT ? VSOCK_STREAM_STDOUT : VSOCK_STREAM_STDERR, bytes, n);
        }
        if (act == ACT_PROC_GAP) {
                uint64_t from, to;
                r = ext_proc_gap_decode(data, len, &from, &to, &why);
                if (r >= 0 && from != a->offset) {
                        why = "not where the output stopped";
                        r = VSOCK_ERR(VSOCK_E_DECODE, EINVAL);
                }
                if (r < 0) {
                        client_diag(l->call, "ProcGap: %s", why ? why : "malformed");
                        return r;
                }
                a->offset = to;
                r = a->on_gap ? a->on_gap(l->io->userdata, from, to) : 0;
                return r < 0 ? r : 0;
        }
        r = ext_proc_end_decode(data, len, &a->end, &why);
        if (r < 0) {
                client_diag(l->call, "ProcEnd: %s", why ? why : "malformed");
                return r;
        }
        a->has_end = true;
        l->done = true;
        return 0;
}

/* A complete final frame (ExecResult or Exit). */
static int handle_final(struct exec_loop *l, uint8_t act, const uint8_t *data, uint32_t len) {
        if (act >= ACT_PROC_OUTPUT)
                return handle_attach(l, act, data, len);
        if (act == ACT_RESULT) {
                struct vsock_exec_response resp = {};
                int r = decode_response(l->call, data, len, &resp);
                if (r < 0)
                        return r;
                l->exit_code = resp.exit_code;
                l->error = take_error(&resp);
                vsock_exec_response_clear(&resp);
                l->done = true;
                return 0;
        }
        int32_t code;
        int r = vsock_exit_decode(data, len, &code);
        if (r < 0) {
                client_diag(l->call, "Exit frame of %u bytes, expected 4", len);
                return r;
        }
        l->exit_code = code;
        l->done = true;
        return 0;
}

/* A header is complete: check it before anything of its payload. Output
 * passes through; the final frame is collected. */
static int begin_frame(struct exec_loop *l) {
        uint8_t type;
        (void) vsock_decoder_header(l->dec, &type, NULL);
        uint8_t act = frame_action(l, type);
        if (act == ACT_UNEXPECTED)
                return client_unexpected_frame(l->call, type, l->mode->final_name);
        if (act == ACT_STDOUT || act == ACT_STDERR)
                return vsock_decoder_pass(l->dec);
        return 0;
}

/* The next @n bytes at @p belong to an output frame passing through. */
static int pass_output(struct exec_loop *l, const uint8_t *p, size_t n) {
        uint8_t type;
        (void) vsock_decoder_header(l->dec, &type, NULL);
        int r = deliver(l, frame_action(l, type) == ACT_STDOUT ? VSOCK_STREAM_STDOUT : VSOCK_STREAM_STDERR, p, n);
        if (r < 0)
                return r;
        return vsock_decoder_passed(l->dec, n) < 0 ? -EINVAL : 0;
}

/* A whole frame: a final one, or an empty one (never reported as a header). */
static int end_frame(struct exec_loop *l) {
        uint8_t type;
        const uint8_t *data;
        uint32_t len;
        vsock_decoder_frame(l->dec, &type, &data, &len);
        uint8_t act = frame_action(l, type);
        if (act == ACT_UNEXPECTED)
                return client_unexpected_frame(l->call, type, l->mode->final_name);
        if (act == ACT_STDOUT || act == ACT_STDERR)
                return 0;
        return handle_final(l, act, data, len);
}

/* One read per wakeup, parsed in place: a slow or partial frame never
 * blocks the loop, and output is never copied on its way to the caller. */
static int read_conn(struct exec_loop *l) {
        ssize_t n = io_read_once(l->fd, l->rbuf, sizeof l->rbuf);
        if (n == -EAGAIN)
                return 0;
        if (n == -ECONNRESET || n == -EPIPE) {
                client_diag(l->call, "agent reset the connection before the result");
                return VSOCK_ERR(VSOCK_E_CLOSED, (int) -n);
        }
        if (n < 0)
                return vsock_err_wrap(VSOCK_E_READ_RESPONSE_HEADER, (int) n);
        if (n == 0) {
                if (vsock_decoder_partial(l->dec)) {
                        /* EPROTO, as frame.c reports a truncated frame. */
                        client_diag(l->call, "agent closed the connection in the middle of a frame");
                        return VSOCK_ERR(VSOCK_E_READ_RESPONSE_DATA, EPROTO);
                }
                client_diag(l->call, "agent closed the connection before the result");
                return VSOCK_ERR(VSOCK_E_CLOSED, EPIPE);
        }

        const uint8_t *p = l->rbuf;
        size_t left = (size_t) n;
        while (!l->done && left > 0) {
                size_t used = 0;
                int r = vsock_decoder_feed(l->dec, p, left, &used);
                p += used;
                left -= used;
                if (r == VSOCK_DECODER_HEADER)
                        r = begin_frame(l);
                else if (r == VSOCK_DECODER_PASS) {
                        size_t k = MIN(left, vsock_decoder_pass_left(l->dec));
                        r = pass_output(l, p, k);
                        p += k;
                        left -= k;
                } else if (r == VSOCK_DECODER_FRAME)
                        r = end_frame(l);
                else if (vsock_err_kind(r) == VSOCK_E_FRAME_TOO_LARGE)
                        client_diag(l->call, "agent announced a frame above the %u-byte limit",
                                    VSOCK_MAX_PAYLOAD_DEFAULT);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int exec_loop_run(struct exec_loop *l) {
        const struct vsock_exec_io *io = l->io;
        const int64_t deadline = l->call->deadline_ns;
        const int cancel_fd = l->call->cancel_fd;
        const int ctl_fd = l->interactive ? exec_ctl_fd(io->ctl) : -1;
        /* A read_stdin callback without an fd is asked whenever the
         * connection can take more. */
        const bool input_on_pollout = io->read_stdin && io->stdin_fd < 0;

        while (!l->done) {
                if (deadline > 0 && now_ns() >= deadline)
                        return err_timeout();

                bool input = l->want_input && !l->peer_gone && buf_empty(&l->outq);
                struct pollfd p[4];
                int n = 0, i_in = -1, i_ctl = -1, i_cancel = -1;
                const int i_conn = n++;
                p[i_conn] = (struct pollfd) {
                        .fd = l->fd,
                        .events = POLLIN | (!buf_empty(&l->outq) || (input && input_on_pollout) ? POLLOUT : 0),
                };
                if (input && !input_on_pollout) {
                        i_in = n++;
                        p[i_in] = (struct pollfd) { .fd = io->stdin_fd, .events = POLLIN };
                }
                if (ctl_fd >= 0 && !l->peer_gone && buf_size(&l->outq) < OUTQ_HIGH_WATER) {
                        i_ctl = n++;
                        p[i_ctl] = (struct pollfd) { .fd = ctl_fd, .events = POLLIN };
                }
                if (cancel_fd >= 0) {
                        i_cancel = n++;
                        p[i_cancel] = (struct pollfd) { .fd = cancel_fd, .events = POLLIN };
                }

                int r = poll(p, (nfds_t) n, deadline_to_poll_ms(deadline));
                if (r < 0) {
                        if (errno == EINTR)
                                continue; /* e.g. the handler that just wrote to the ctl pipe */
                        return -errno;
                }
                if (i_cancel >= 0 && p[i_cancel].revents)
                        return err_cancelled();
                if (r == 0)
                        continue;

                if (p[i_conn].revents & (POLLIN | POLLHUP | POLLERR)) {
                        r = read_conn(l);
                        if (r < 0)
                                return r;
                        if (l->done)
                                break;
                }
                if (p[i_conn].revents & POLLNVAL)
                        return -EBADF;
                if (i_ctl >= 0 && p[i_ctl].revents) {
                        r = drain_ctl(l);
                        if (r < 0)
                                return r;
                }
                if (i_in >= 0 && (p[i_in].revents & POLLNVAL))
                        return -EBADF;
                bool readable_in = i_in >= 0 && p[i_in].revents;
                bool pollout_in = input && input_on_pollout && (p[i_conn].revents & POLLOUT);
                if ((readable_in || pollout_in) && buf_empty(&l->outq) && l->want_input && !l->peer_gone) {
                        r = read_input(l);
                        if (r < 0)
                                return r;
                }
                flush(l);
        }
        return 0;
}

static int exec_loop_new(const struct exec_mode *mode, bool interactive, bool tty, vsock_conn *c,
                         const struct vsock_exec_io *io, struct vsock_call *call, struct exec_loop **ret) {
        struct exec_loop *l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        /* Field by field: a compound literal would zero (and fault in)
         * the whole read buffer on every call. */
        l->mode = mode;
        l->interactive = interactive;
        l->tty = tty;
        l->io = io;
        l->call = call;
        l->fd = vsock_conn_fd(c);
        l->outq = BUF_INIT(OUTQ_MAX);
        l->want_input = interactive && (io->stdin_fd >= 0 || io->read_stdin);
        l->max_payload = vsock_conn_max_payload(c);
        int r = vsock_decoder_new(l->max_payload, &l->dec);
        if (r < 0) {
                exec_loop_free(l);
                return r;
        }
        vsock_decoder_report_headers(l->dec, true);
        *ret = l;
        return 0;
}

int client_attach_run(vsock_conn *c, const struct vsock_exec_io *io, struct vsock_call *call,
                      struct client_attach *a) {
        static const struct vsock_exec_io no_io = VSOCK_EXEC_IO_INIT;
        if (!io)
                io = &no_io;
        _cleanup_(exec_loop_freep) struct exec_loop *l = NULL;
        int r = exec_loop_new(&exec_modes[EXEC_ATTACH], a->input, a->tty, c, io, call, &l);
        if (r < 0)
                return r;
        l->attach = a;
        return exec_loop_run(l);
}

static int exec_streaming(enum exec_kind kind, vsock_conn *c, const struct vsock_exec_request *req,
                          const struct vsock_exec_io *io, struct vsock_call *call, struct vsock_exec_result *ret) {
        static const struct vsock_exec_io no_io = VSOCK_EXEC_IO_INIT;
        const struct exec_mode *mode = &exec_modes[kind];
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call || !c || !req || !ret)
                return -EINVAL;
        if (!io)
                io = &no_io;
        if (!CLIENT_SIZE_KNOWN(io))
                return -EINVAL;
        client_call_apply(c, call);

        _cleanup_free_ uint8_t *payload = NULL;
        size_t len;
        int r = client_encode_exec_request(req, mode->tty, &payload, &len);
        if (r < 0)
                return r;

        _cleanup_(exec_loop_freep) struct exec_loop *l = NULL;
        r = exec_loop_new(mode, mode->interactive, mode->tty, c, io, call, &l);
        if (r < 0)
                return r;

        int64_t t0 = now_ns();
        r = vsock_write_message(c, mode->request_type, payload, len);
        if (r < 0)
                return client_fail(c, r);
        if (mode->interactive && !l->want_input) {
                /* No input at all: the command sees EOF at once. */
                r = queue_frame(l, VSOCK_MSG_STDIN, NULL, 0);
                if (r < 0)
                        return client_fail(c, r);
                flush(l);
        }

        r = exec_loop_run(l);
        if (r < 0)
                return client_fail(c, r);
        *ret = (struct vsock_exec_result) {
                .exit_code = l->exit_code,
                .error = TAKE_PTR(l->error),
                .duration_ns = now_ns() - t0,
        };
        return 0;
}

_public_ int vsock_exec_stream(vsock_conn *c, const struct vsock_exec_request *req, const struct vsock_exec_io *io,
                               struct vsock_call *call, struct vsock_exec_result *ret) {
        return exec_streaming(EXEC_STREAM, c, req, io, call, ret);
}

_public_ int vsock_exec_pipe(vsock_conn *c, const struct vsock_exec_request *req, const struct vsock_exec_io *io,
                             struct vsock_call *call, struct vsock_exec_result *ret) {
        return exec_streaming(EXEC_PIPE, c, req, io, call, ret);
}

_public_ int vsock_exec_tty(vsock_conn *c, const struct vsock_exec_request *req, const struct vsock_exec_io *io,
                            struct vsock_call *call, struct vsock_exec_result *ret) {
        return exec_streaming(EXEC_TTY, c, req, io, call, ret);
}

/* ---- dialing variants ------------------------------------------------------ */

typedef int (*exec_fn)(vsock_conn *c, const struct vsock_exec_request *req, const struct vsock_exec_io *io,
                       struct vsock_call *call, struct vsock_exec_result *ret);

static int exec_batch_io(vsock_conn *c, const struct vsock_exec_request *req, const struct vsock_exec_io *io,
                         struct vsock_call *call, struct vsock_exec_result *ret) {
        return vsock_exec(c, req, call, ret);
}

static int exec_at(exec_fn fn, const char *addr, const struct vsock_exec_request *req,
                   const struct vsock_exec_io *io, struct vsock_call *call, struct vsock_exec_result *ret) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call)
                return -EINVAL;
        vsock_conn *c = NULL;
        int r = client_dial(addr, VSOCK_PORT_EXEC, call, &c);
        if (r < 0)
                return r;
        r = fn(c, req, io, call, ret);
        (void) vsock_conn_close(c);
        return r;
}

_public_ int vsock_exec_at(const char *addr, const struct vsock_exec_request *req, struct vsock_call *call,
                           struct vsock_exec_result *ret) {
        return exec_at(exec_batch_io, addr, req, NULL, call, ret);
}

_public_ int vsock_exec_stream_at(const char *addr, const struct vsock_exec_request *req,
                                  const struct vsock_exec_io *io, struct vsock_call *call,
                                  struct vsock_exec_result *ret) {
        return exec_at(vsock_exec_stream, addr, req, io, call, ret);
}

_public_ int vsock_exec_pipe_at(const char *addr, const struct vsock_exec_request *req,
                                const struct vsock_exec_io *io, struct vsock_call *call,
                                struct vsock_exec_result *ret) {
        return exec_at(vsock_exec_pipe, addr, req, io, call, ret);
}

_public_ int vsock_exec_tty_at(const char *addr, const struct vsock_exec_request *req,
                               const struct vsock_exec_io *io, struct vsock_call *call,
                               struct vsock_exec_result *ret) {
        return exec_at(vsock_exec_tty, addr, req, io, call, ret);
}
