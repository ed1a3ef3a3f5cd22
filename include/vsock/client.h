/* Host-side operations on a guest agent: run commands (batch, streamed,
 * piped, on a terminal), forward a port, write, read and list files, wait
 * for the agent to come up. The counterparts of the Go package's
 * ExecPipe, OpenPortForward, WriteFileVsock, ReadFileVsock,
 * ListFilesVsock and exec calls.
 *
 * Each operation takes an already-connected vsock_conn (ownership stays
 * with the caller; the conn is spent after the call: close it) and a
 * struct vsock_call, the counterpart of Go's context.Context: a deadline
 * and a cancel fd. When either fires, the connection is shut down (so the
 * agent kills the command) and the call returns VSOCK_E_TIMEOUT or
 * VSOCK_E_CANCELLED. The *_at() variants dial an address string first
 * (default port 5000, bounded by the call's deadline and cancel fd) and
 * close it afterwards; they fail as vsock_dial_str() does, too.
 *
 * Errors common to every operation: -EINVAL (a required argument is NULL,
 * or a struct's size is unknown), VSOCK_E_TIMEOUT, VSOCK_E_CANCELLED, the
 * framing errors of frame.h (VSOCK_E_WRITE_HEADER, VSOCK_E_WRITE_REQUEST,
 * VSOCK_E_READ_RESPONSE_HEADER, VSOCK_E_READ_RESPONSE_DATA,
 * VSOCK_E_FRAME_TOO_LARGE), VSOCK_E_CLOSED (the agent closed the
 * connection before the result), VSOCK_E_PROTOCOL (a frame that has no
 * place there), VSOCK_E_DECODE (a malformed reply), -ENOMEM. Each call
 * below names its own. On failure, call->remote_error says more when it
 * can; ret_* out-parameters are set only on success.
 *
 * Only the wire format is assumed: these calls work against the Go
 * reference agent as well as ours. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <vsock/conn.h>
#include <vsock/msg.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One call's controls (in) and diagnostics (out). Initialise it with
 * VSOCK_CALL_INIT (or zero it and set cancel_fd = -1). A NULL call means
 * no deadline and no cancel fd.
 *
 * Size-checked, so that fields can be added: @size says which layout the
 * caller was built with (VSOCK_CALL_INIT sets sizeof(struct vsock_call);
 * 0 from a zero-initialiser means the first layout, VSOCK_0.1's). A size
 * the library does not know (a program built against newer headers than
 * the library it runs with) fails the call with -EINVAL before anything
 * is sent. */
struct vsock_call {
        size_t size;            /* sizeof(struct vsock_call), or 0 */
        int64_t deadline_ns;    /* absolute CLOCK_MONOTONIC ns; 0 = none */
        int cancel_fd;          /* readable = cancel; -1 = none */
        /* out: the agent's own words when the call fails with
         * VSOCK_E_FILE_REMOTE, VSOCK_E_PORT_FORWARD_REJECTED or
         * VSOCK_E_REMOTE (truncated to fit, NUL-terminated). For other
         * failures, a short diagnostic of ours when there is one (e.g.
         * "agent closed the connection before the result", the unexpected
         * frame type); "" otherwise. Cleared at the start of every call. */
        char remote_error[512];
};
#define VSOCK_CALL_INIT { .size = sizeof(struct vsock_call), .deadline_ns = 0, .cancel_fd = -1, .remote_error = "" }

/* ---- exec -------------------------------------------------------------- */

/* Exec requests. Every exec call takes a struct vsock_exec_request (msg.h);
 * what its fields mean, and which agents honour them:
 *
 *   command, args   Two forms.
 *     n_args == 0   @command is a shell command line: every agent runs
 *                   `/bin/sh -c command` (so the guest needs a /bin/sh).
 *     n_args > 0    No shell: the program @command with the arguments
 *                   @args (its argv is command, args[0], ...). Our agent
 *                   runs such a vector directly; the Go reference agent
 *                   ignores `args` and runs `sh -c command`, which would
 *                   run the program without its arguments. So the library
 *                   never sends this form as given: it sends the whole
 *                   vector as `args` and its canonical POSIX sh quoting
 *                   (vsock_shell_quote()) as `command`, which our agent
 *                   recognises and runs directly, and which an agent that
 *                   ignores `args` runs through its shell as the very same
 *                   program with the very same arguments. A request that
 *                   is already in that form (command equal to the quoting
 *                   of args) is sent as it is: that is how to run a program
 *                   without arguments and without a shell (args = { prog },
 *                   n_args = 1, command = its quoting).
 *   working_dir     Both agents (a missing directory fails the start).
 *   env             Both agents: added to (and overriding) the agent's own
 *                   environment.
 *   user            Ours and Go agents from v0.1.x on; older Go agents
 *                   ignore it and run the command as themselves.
 *   stdin_data      Batch mode (vsock_exec) on our agent only; the Go agent
 *                   ignores it. Use vsock_exec_pipe() for input.
 *   rows, cols      TTY mode only.
 *
 * Strings travel as JSON: bytes that are not UTF-8 arrive as U+FFFD on
 * every agent (Go's encoding, which ours reproduces).
 *
 * A command that cannot be started (unknown user, missing working
 * directory, program not found) is reported differently by the two
 * agents: ours exits 127 (126: found but not executable) with one line
 * of reason on its stderr; the Go agent sends an error text with exit
 * code 1 (batch and stream: vsock_exec_result.error; pipe: a line on
 * stderr before Exit 1; TTY: just Exit 1). */

/* The canonical POSIX sh quoting of @words[0..n) (n may be 0: ""): every
 * word in single quotes, a single quote inside one written as '\'', words
 * joined by one space. `/bin/sh -c` on the result runs words[0] with
 * exactly the other words as its arguments, whatever bytes they hold.
 * *ret is malloc'd. Returns 0, -EINVAL (a NULL word), -ENOMEM. */
int vsock_shell_quote(char *const *words, size_t n, char **ret);

/* What an exec call returns (set only on success; the caller's struct
 * needs no initialisation). @reserved (zero today) is room for what a
 * later version may report, without changing the struct's size. */
struct vsock_exec_result {
        int64_t exit_code;      /* as sent: batch/stream ExecResult, pipe/tty Exit */
        uint8_t *stdout_data;   /* batch only (malloc'd; may be NULL) */
        size_t stdout_len;
        uint8_t *stderr_data;   /* batch only */
        size_t stderr_len;
        char *error;            /* the response's error text, NULL if none */
        int64_t duration_ns;    /* request sent -> result received */
        uint64_t reserved[4];
};
/* Free what @r owns (output, error text) and zero it. Accepts NULL and a
 * zeroed struct; safe twice. */
void vsock_exec_result_clear(struct vsock_exec_result *r);

/* Control channel for a running exec: signals and resizes from any thread
 * or from a signal handler (both calls are async-signal-safe: they write a
 * few bytes to an internal pipe that the exec call polls). */
typedef struct vsock_exec_ctl vsock_exec_ctl;
int vsock_exec_ctl_new(vsock_exec_ctl **ret);
void vsock_exec_ctl_free(vsock_exec_ctl *ctl);
int vsock_exec_ctl_signal(vsock_exec_ctl *ctl, int signo);
int vsock_exec_ctl_resize(vsock_exec_ctl *ctl, uint16_t rows, uint16_t cols);

enum vsock_stream_id { VSOCK_STREAM_STDOUT = 1, VSOCK_STREAM_STDERR = 2 };

/* Where a streaming exec's input comes from and its output goes (NULL:
 * output discarded, no input). Initialise it with VSOCK_EXEC_IO_INIT;
 * size-checked like struct vsock_call (0 from a zero-initialiser is the
 * first layout; an unknown size is -EINVAL). */
struct vsock_exec_io {
        size_t size;            /* sizeof(struct vsock_exec_io), or 0 */
        /* Output: on_output, if set, gets every chunk as it arrives; a
         * negative return aborts the call with that code. Otherwise chunks
         * are written to stdout_fd / stderr_fd (-1 = discard). */
        int (*on_output)(void *userdata, enum vsock_stream_id stream, const uint8_t *data, size_t len);
        int stdout_fd;
        int stderr_fd;
        /* Input (pipe and tty only): read_stdin, if set, is called when
         * stdin_fd is readable (or, with stdin_fd < 0, whenever the
         * connection can take more) and returns bytes, 0 for EOF, or a
         * negative code. Otherwise stdin_fd is read directly. stdin_fd < 0
         * and no callback: EOF is sent at once. */
        ssize_t (*read_stdin)(void *userdata, void *buf, size_t n);
        int stdin_fd;
        /* Optional control channel for signals and resizes. */
        vsock_exec_ctl *ctl;
        void *userdata;
};
#define VSOCK_EXEC_IO_INIT { .size = sizeof(struct vsock_exec_io), .stdout_fd = -1, .stderr_fd = -1, .stdin_fd = -1 }

/* Batch exec (type 1): waits for the ExecResult and returns everything in
 * @ret (set only on success). */
int vsock_exec(vsock_conn *c, const struct vsock_exec_request *req, struct vsock_call *call,
               struct vsock_exec_result *ret);

/* Streaming exec (type 11): output delivered as it arrives; @ret gets the
 * exit code and error of the final ExecResult. Stdin and ctl are not used.
 * For all streaming modes: stdin is read only while the connection takes
 * more (nothing is buffered without bound); writing to a closed
 * stdout_fd/stderr_fd pipe returns -EPIPE (if SIGPIPE is ignored); any
 * failure shuts the connection down, so the agent kills the command. */
int vsock_exec_stream(vsock_conn *c, const struct vsock_exec_request *req, const struct vsock_exec_io *io,
                      struct vsock_call *call, struct vsock_exec_result *ret);

/* Pipe exec (type 12, Go's ExecPipe): like stream, plus stdin (sent
 * as Stdin frames, EOF as an empty one) and signals; ends with Exit (an
 * ExecResult, which some agents send when the command cannot start, also
 * ends it, with its error text in @ret->error). Resizes are dropped. */
int vsock_exec_pipe(vsock_conn *c, const struct vsock_exec_request *req, const struct vsock_exec_io *io,
                    struct vsock_call *call, struct vsock_exec_result *ret);

/* TTY exec (type 9): req->rows/cols give the initial size; stdin, resizes
 * and signals while it runs; output arrives as stdout; ends with Exit. */
int vsock_exec_tty(vsock_conn *c, const struct vsock_exec_request *req, const struct vsock_exec_io *io,
                   struct vsock_call *call, struct vsock_exec_result *ret);

int vsock_exec_at(const char *addr, const struct vsock_exec_request *req, struct vsock_call *call,
                  struct vsock_exec_result *ret);
int vsock_exec_stream_at(const char *addr, const struct vsock_exec_request *req, const struct vsock_exec_io *io,
                         struct vsock_call *call, struct vsock_exec_result *ret);
int vsock_exec_pipe_at(const char *addr, const struct vsock_exec_request *req, const struct vsock_exec_io *io,
                       struct vsock_call *call, struct vsock_exec_result *ret);
int vsock_exec_tty_at(const char *addr, const struct vsock_exec_request *req, const struct vsock_exec_io *io,
                      struct vsock_call *call, struct vsock_exec_result *ret);

/* ---- port forwarding ---------------------------------------------------- */

/* Go's OpenPortForward: sends the request (host NULL = guest's
 * 127.0.0.1), waits for Ready. On success @c is a raw byte stream to the
 * guest's host:port. On rejection returns VSOCK_E_PORT_FORWARD_REJECTED
 * with the guest's text in call->remote_error; any other frame is
 * VSOCK_E_UNEXPECTED_PORT_FORWARD_MSG. */
int vsock_open_port_forward(vsock_conn *c, const char *host, uint16_t port, struct vsock_call *call);

/* Dial @addr and open a forward; *ret is the raw stream on success. */
int vsock_open_port_forward_at(const char *addr, const char *host, uint16_t port, struct vsock_call *call,
                               vsock_conn **ret);

/* ---- files --------------------------------------------------------------- */

/* Largest file the protocol's agents serve with read_file. */
#define VSOCK_READ_FILE_MAX (16u * 1024 * 1024)

/* One entry of a listing, in an array the library allocates. @reserved
 * (zero today) is room for what a later version may report, without
 * changing the array's stride. */
struct vsock_file_entry {
        char *name;
        int64_t size;
        uint32_t go_mode;       /* raw os.FileMode bits from the wire */
        mode_t mode;            /* converted: S_IFDIR|0755 etc. */
        bool is_dir;
        uint64_t reserved[2];
};
/* Free the @n entries of @e and the array. Accepts NULL. */
void vsock_file_entries_free(struct vsock_file_entry *e, size_t n);

/* Write @len bytes of @data (may be NULL when @len is 0) to @path in the
 * guest, creating or replacing the file (Go's WriteFileVsock). @mode is a
 * permission/mode_t value (0 = the agent's default 0644); it is converted
 * to os.FileMode bits. The agent's refusal is VSOCK_E_FILE_REMOTE with its
 * text in call->remote_error; VSOCK_E_ENCODE_FILE_REQUEST when the request
 * cannot be encoded. */
int vsock_write_file(vsock_conn *c, const char *path, const void *data, size_t len, mode_t mode,
                     struct vsock_call *call);
/* Read the guest's file @path whole (Go's ReadFileVsock; agents serve at
 * most VSOCK_READ_FILE_MAX bytes). *ret_data is malloc'd, the caller
 * frees it (NULL when empty). Errors as vsock_write_file(). */
int vsock_read_file(vsock_conn *c, const char *path, struct vsock_call *call, uint8_t **ret_data,
                    size_t *ret_len);
/* List the guest's directory @path (Go's ListFilesVsock): *ret is an
 * array of *ret_n entries in the agent's order, freed with
 * vsock_file_entries_free(). Errors as vsock_write_file(). */
int vsock_list_files(vsock_conn *c, const char *path, struct vsock_call *call, struct vsock_file_entry **ret,
                     size_t *ret_n);

int vsock_write_file_at(const char *addr, const char *path, const void *data, size_t len, mode_t mode,
                        struct vsock_call *call);
int vsock_read_file_at(const char *addr, const char *path, struct vsock_call *call, uint8_t **ret_data,
                       size_t *ret_len);
int vsock_list_files_at(const char *addr, const char *path, struct vsock_call *call,
                        struct vsock_file_entry **ret, size_t *ret_n);

/* ---- readiness ----------------------------------------------------------- */

/* Connect to @addr (default port 5002) until a connection is accepted or
 * call's deadline passes (VSOCK_E_TIMEOUT), retrying at short, growing
 * intervals (1 ms doubling up to 100 ms). For vsock-mux, a refused CONNECT
 * counts as "not ready yet". */
int vsock_wait_ready(const char *addr, struct vsock_call *call);

#ifdef __cplusplus
}
#endif
