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

/* ---- extensions: negotiation (PROTOCOL.md 2.2) ---------------------------- */

/* Our agent serves extensions beyond the base protocol; the Go reference
 * agent does not. Which ones, is negotiated: the host sends Hello as the
 * first frame of a connection, our agent answers HelloReply, a base agent
 * closes the connection. Extension calls (vsock_stat(), vsock_list_dir(),
 * ...) send Hello themselves, back to back with their request (no extra
 * round trip), unless the connection negotiated already; against an agent
 * without the feature they fail with VSOCK_E_UNSUPPORTED and "agent does
 * not support FEATURE" in call->remote_error. The base calls above never
 * send Hello: their bytes are the seed's.
 *
 * Every negotiation's outcome is cached per agent address (the canonical
 * form of vsock_addr_format(), taken from the connection's remote
 * address): the agent's HelloReply, or "base only" for 10 minutes. The
 * cache is process-wide, thread-safe and bounded (least recently used
 * entries go first); vsock_caps_lookup() lets a caller that can do a job
 * either way (ListDir or ListFiles) choose without a round trip. */

enum vsock_feature {
        VSOCK_FEATURE_REUSE = 1u << 0,          /* "reuse": sequential requests on one connection */
        VSOCK_FEATURE_FS = 1u << 1,             /* "fs": stat, mkdir, remove, rename, chmod, ... */
        VSOCK_FEATURE_LIST = 1u << 2,           /* "list": paged listing with owners and targets */
        VSOCK_FEATURE_FILE_GET = 1u << 3,       /* "file-get": streaming download */
        VSOCK_FEATURE_FILE_PUT = 1u << 4,       /* "file-put": streaming upload */
        VSOCK_FEATURE_TAR_GET = 1u << 5,        /* "tar-get" */
        VSOCK_FEATURE_TAR_PUT = 1u << 6,        /* "tar-put" */
        VSOCK_FEATURE_PROC = 1u << 7,           /* "proc": processes that outlive a connection */
        VSOCK_FEATURE_FWD_CONNECT = 1u << 8,    /* "fwd-connect" */
        VSOCK_FEATURE_FWD_LISTEN = 1u << 9,     /* "fwd-listen" */
        VSOCK_FEATURE_CHECKSUM_CRC32C = 1u << 10, /* "checksum-crc32c": streams checked with CRC-32C */
};

/* The protocol name of one feature bit ("file-get"); NULL for anything
 * but exactly one known bit. */
const char *vsock_feature_name(unsigned feature);
/* The bit of a feature name, 0 for a name this library does not know. */
unsigned vsock_feature_from_name(const char *name);

/* The agent's limits (PROTOCOL.md 2.9). */
struct vsock_limits {
        uint32_t max_payload;           /* frames after a request */
        uint32_t data_max;              /* one Data frame's payload */
        uint32_t window_max;            /* credit window a host may grant */
        int32_t list_page_max;          /* entries per ListReply */
        uint32_t list_reply_max;        /* bytes per ListReply */
        int32_t procs_max;
        uint32_t ring_default, ring_max;
        uint64_t ring_total_max;
        uint32_t proc_keep_s;
        uint32_t partial_keep_s;
        int32_t fwd_listeners_max, fwd_pending_max;
        uint32_t fwd_attach_s;
};

/* What a HelloReply said. Size-checked: set @size to the size of the
 * struct the caller was compiled with (VSOCK_CAPS_INIT does); a library
 * with a bigger struct fills only that much. */
struct vsock_caps {
        size_t size;                    /* in: sizeof(struct vsock_caps) */
        int version;                    /* extension version agreed (>= 1) */
        unsigned features;              /* VSOCK_FEATURE_* the agent serves */
        char features_text[256];        /* the agent's list as sent, comma-separated
                                         * (unknown names too; truncated to fit) */
        char agent[64];                 /* "vsock-agent 0.1.0" (truncated to fit) */
        char boot_id[64];               /* changes when the guest reboots */
        struct vsock_limits limits;
};
#define VSOCK_CAPS_INIT { .size = sizeof(struct vsock_caps) }

/* Negotiate on @c, which must be fresh (no request sent yet): send Hello,
 * wait for HelloReply, fill @ret (may be NULL) and update the cache. @c
 * then takes extension calls without another Hello, and, when the agent
 * has VSOCK_FEATURE_REUSE, base calls too (one after another). A base
 * agent: VSOCK_E_UNSUPPORTED ("agent does not support extensions"), @c is
 * spent, and "base only" is cached. Calling it again on a negotiated @c
 * returns the caps without I/O. */
int vsock_hello(vsock_conn *c, struct vsock_call *call, struct vsock_caps *ret);
/* Dial @addr (default port 5000), negotiate, close. Always asks the agent
 * (and refreshes the cache); vsock_caps_lookup() asks only the cache. */
int vsock_hello_at(const char *addr, struct vsock_call *call, struct vsock_caps *ret);

/* The cache's word on @addr: 0 and @ret filled (may be NULL) for a cached
 * HelloReply; VSOCK_E_UNSUPPORTED for "base only" cached less than 10
 * minutes ago; -ENOENT when nothing (fresh) is known; VSOCK_E_BAD_ADDRESS.
 * Never does I/O. */
int vsock_caps_lookup(const char *addr, struct vsock_caps *ret);
/* Drop @addr's entry (NULL: every entry), e.g. after replacing the VM. */
void vsock_caps_forget(const char *addr);

/* ---- extensions: file-system operations (PROTOCOL.md 2.4) ------------------ */

/* What the agent's lstat/stat says about one file. Strings are malloc'd;
 * user/group are NULL when the guest's /etc/passwd or /etc/group has no
 * name for the id, target is a symlink's target (lstat only) or NULL. */
struct vsock_stat {
        char *name;                     /* the last path element */
        int64_t size;
        mode_t mode;                    /* st_mode: type and permission bits */
        uint32_t uid, gid;
        char *user, *group;
        uint64_t nlink, ino, dev, rdev;
        int64_t mtime_ns, atime_ns, ctime_ns;   /* ns since the epoch */
        char *target;
        uint64_t reserved[2];   /* zero today: room to grow (library-filled) */
};
/* Free the strings and zero @st. NULL is fine. */
void vsock_stat_clear(struct vsock_stat *st);

enum vsock_fs_op {
        VSOCK_FS_STAT,          /* reply: stat (follows a final symlink) */
        VSOCK_FS_LSTAT,         /* reply: stat (does not; has the target) */
        VSOCK_FS_MKDIR,         /* mode (default 0755), parents (mkdir -p); reply: stat */
        VSOCK_FS_REMOVE,        /* a file, symlink or empty directory; recursive: a tree, never
                                 * following symlinks nor crossing into another file system
                                 * (`/` is refused); force: a missing path is success */
        VSOCK_FS_RENAME,        /* path -> target (same file system) */
        VSOCK_FS_CHMOD,         /* mode (required); reply: stat */
        VSOCK_FS_CHOWN,         /* uid and/or gid (-1: unchanged), never following a final
                                 * symlink; reply: stat of the object changed */
        VSOCK_FS_SYMLINK,       /* create symlink path -> target; reply: its lstat */
        VSOCK_FS_READLINK,      /* reply: target */
        VSOCK_FS_UTIMES,        /* atime_ns/mtime_ns (VSOCK_TIME_OMIT: unchanged); reply: stat */
};

#define VSOCK_TIME_OMIT INT64_MIN

struct vsock_fs_request {
        size_t size;            /* sizeof(struct vsock_fs_request), or 0 (vsock_call) */
        enum vsock_fs_op op;
        const char *path;               /* absolute guest path */
        const char *target;             /* rename: the new path; symlink: the link's contents */
        int32_t mode;                   /* permission bits incl. setuid/setgid/sticky; -1: default */
        int64_t uid, gid;               /* -1: unchanged */
        int64_t atime_ns, mtime_ns;     /* VSOCK_TIME_OMIT: unchanged */
        bool parents, recursive, force;
};
#define VSOCK_FS_REQUEST_INIT(op_, path_)                                                                  \
        { .size = sizeof(struct vsock_fs_request), .op = (op_), .path = (path_), .mode = -1, .uid = -1,   \
          .gid = -1, .atime_ns = VSOCK_TIME_OMIT, .mtime_ns = VSOCK_TIME_OMIT }

struct vsock_fs_result {
        bool has_stat;
        struct vsock_stat stat;
        char *target;                   /* readlink */
        uint64_t reserved[4];   /* zero today: room to grow (library-filled) */
};
void vsock_fs_result_clear(struct vsock_fs_result *r);

/* One FsRequest on @c (feature "fs"; Hello is pipelined on a fresh @c).
 * The agent's failures are VSOCK_E_REMOTE with the guest's errno (ENOENT,
 * EACCES, ENOTEMPTY, EXDEV, ...) and its message ("stat /x: No such file
 * or directory") in call->remote_error; @c then takes the next request.
 * A base agent: VSOCK_E_UNSUPPORTED, "agent does not support fs". @ret
 * (may be NULL) is set only on success. */
int vsock_fs(vsock_conn *c, const struct vsock_fs_request *req, struct vsock_call *call, struct vsock_fs_result *ret);
int vsock_fs_at(const char *addr, const struct vsock_fs_request *req, struct vsock_call *call,
                struct vsock_fs_result *ret);

/* Shorthands: stat (@follow) or lstat of @path into @ret. */
int vsock_stat(vsock_conn *c, const char *path, bool follow, struct vsock_call *call, struct vsock_stat *ret);
int vsock_stat_at(const char *addr, const char *path, bool follow, struct vsock_call *call, struct vsock_stat *ret);

/* A directory page by page (feature "list"; several ListDir requests on
 * one connection). @page_size: entries per page, 0 for the agent's
 * maximum. @on_page gets each page's entries (lstat'ed, with owner names
 * and symlink targets, in the directory's order; valid during the call
 * only) and returns 0 to go on or a negative code to stop with it. A path
 * that is not a directory lists as one page with its own entry. A
 * directory replaced between pages: VSOCK_E_REMOTE with ESTALE. */
typedef int (*vsock_list_fn)(void *userdata, const struct vsock_stat *entries, size_t n);
int vsock_list_dir(vsock_conn *c, const char *path, int page_size, vsock_list_fn on_page, void *userdata,
                   struct vsock_call *call);
int vsock_list_dir_at(const char *addr, const char *path, int page_size, vsock_list_fn on_page, void *userdata,
                      struct vsock_call *call);

/* ---- streaming files (extensions file-get, file-put: PROTOCOL.md 2.5) ------
 *
 * Files of any size in Data frames with flow control, a checksum over
 * the whole file checked at the end on both sides (CRC-32C when the agent
 * has it, else SHA-256; see enum vsock_checksum), resumable after a
 * broken connection. @c must be a connection to an agent that serves the
 * feature, after Hello (the *_at() variants negotiate, and fall back to
 * ReadFile/WriteFile for files the base protocol can carry). The
 * connection is reusable after success; after a failure it is spent.
 *
 * Failures: an Error from the agent is VSOCK_E_REMOTE with the agent's
 * errno (ECHECKSUM: EBADMSG, ELIMIT: E2BIG, EPROTO: EPROTO) and its message
 * in call->remote_error; a digest or size that does not match what
 * arrived is VSOCK_E_PROTOCOL with EBADMSG; a callback's negative errno
 * is returned as is. */

/* Largest Data payload of our agent (limits.data_max). */
#define VSOCK_XFER_DATA_MAX (256u * 1024)

/* The checksum a stream is verified with (PROTOCOL.md 2.3). Both cover
 * the whole file from byte 0, resumed or not. */
enum vsock_checksum {
        /* CRC-32C when the agent has it (feature checksum-crc32c), else
         * SHA-256: the fastest check the agent offers. */
        VSOCK_CHECKSUM_AUTO = 0,
        /* SHA-256: a digest to compare with sha256sum(1) (~1.5 GB/s). */
        VSOCK_CHECKSUM_SHA256,
        /* CRC-32C (transport integrity at memory speed); an agent without
         * it: VSOCK_E_UNSUPPORTED, "agent does not support checksum-crc32c". */
        VSOCK_CHECKSUM_CRC32C,
};

/* Progress: @done of @total bytes (total 0: unknown), after each piece. */
typedef void (*vsock_xfer_progress_fn)(void *userdata, uint64_t done, uint64_t total);

/* A file's metadata as the agent's Stat object gives it. */
struct vsock_file_stat {
        uint64_t size;
        mode_t mode;            /* st_mode: type and permission bits */
        uint32_t uid, gid;
        int64_t mtime_ns, atime_ns;
        uint64_t reserved[2];   /* zero today: room to grow (library-filled) */
};

struct vsock_file_get_opts {
        size_t size;            /* sizeof(struct vsock_file_get_opts), or 0 (vsock_call) */
        /* The bytes go to @fd (written at its offset = file offset), or,
         * with fd < 0, to @sink (0 or a negative errno to stop). */
        int fd;
        int (*sink)(void *userdata, const void *data, size_t n);
        void *userdata;
        /* Resume: the first @offset bytes are already in @fd (they are
         * read back to verify the digest); needs fd >= 0. */
        uint64_t offset;
        uint64_t length;        /* 0: to the end of the file */
        vsock_xfer_progress_fn progress;
        /* > 0: whenever a frame arrives or leaves, the call's deadline
         * moves to now + this (a bound on the agent's silence, not on the
         * transfer); the call's own deadline bounds the request. */
        int64_t idle_timeout_ns;
        enum vsock_checksum checksum;   /* 0: VSOCK_CHECKSUM_AUTO */
};
#define VSOCK_FILE_GET_OPTS_INIT { .size = sizeof(struct vsock_file_get_opts), .fd = -1 }

struct vsock_file_get_result {
        struct vsock_file_stat stat;    /* as the agent opened it */
        uint64_t received;              /* bytes this call received */
        char sha256[65];                /* of bytes 0 .. offset + received, hex, when
                                         * checksum is SHA256; else empty */
        enum vsock_checksum checksum;   /* the algorithm used: SHA256 or CRC32C */
        char digest[65];                /* its value over the same bytes, hex (64 or 8 digits) */
        uint64_t reserved[4];   /* zero today: room to grow (library-filled) */
};

/* Download @path. On success the result is filled in; on failure the
 * bytes received so far are in @fd (resume with opts.offset = what is
 * there, after checking that stat.mtime_ns and stat.size are unchanged). */
int vsock_file_get(vsock_conn *c, const char *path, const struct vsock_file_get_opts *o, struct vsock_call *call,
                   struct vsock_file_get_result *ret);

struct vsock_file_put_opts {
        size_t size;            /* sizeof(struct vsock_file_put_opts), or 0 (vsock_call) */
        /* The bytes come from @fd (read with pread from the offset the
         * agent asks for), or, with fd < 0, from @source (bytes read, 0 at
         * the end, or a negative errno). */
        int fd;
        ssize_t (*source)(void *userdata, void *buf, size_t n);
        void *userdata;
        int64_t file_size;      /* -1: unknown (from @fd: its size) */
        int64_t mode;           /* permission bits, -1: 0644 */
        int64_t uid, gid;       /* -1: the agent's */
        int64_t mtime_ns;       /* INT64_MIN: now */
        /* Resumable: 16-64 characters of [0-9A-Za-z_-], unique per upload.
         * With @resume, an upload of that id that broke is continued (a
         * @source is then read from its start, the bytes the agent already
         * has only hashed). */
        const char *upload_id;
        bool resume;
        vsock_xfer_progress_fn progress;
        int64_t idle_timeout_ns;        /* as in vsock_file_get_opts */
        enum vsock_checksum checksum;   /* as in vsock_file_get_opts */
};
#define VSOCK_FILE_PUT_OPTS_INIT                                                                      \
        { .size = sizeof(struct vsock_file_put_opts), .fd = -1, .file_size = -1, .mode = -1, .uid = -1, \
          .gid = -1, .mtime_ns = INT64_MIN }

struct vsock_file_put_result {
        uint64_t offset;        /* where this call started (a resumed upload's bytes kept) */
        uint64_t size;          /* the file's size */
        char sha256[65];        /* as in vsock_file_get_result */
        enum vsock_checksum checksum;
        char digest[65];
        uint64_t reserved[4];   /* zero today: room to grow (library-filled) */
};

/* Upload to @path: replaced atomically once the agent verified the
 * digest (nothing is replaced otherwise). */
int vsock_file_put(vsock_conn *c, const char *path, const struct vsock_file_put_opts *o, struct vsock_call *call,
                   struct vsock_file_put_result *ret);

/* ---- directory trees as tar streams (extensions tar-get, tar-put: 2.6) ----
 *
 * A pax/ustar archive in Data frames, with the same flow control and
 * checksum as the file streams; names start with the last element of
 * the guest path (`tar -C dirname -c basename`). Errors as above. */

struct vsock_tar_opts {
        size_t size;            /* sizeof(struct vsock_tar_opts), or 0 (vsock_call) */
        /* Get: the archive goes to @fd, or with fd < 0 to @sink. Put: it is
         * read from @fd (sequentially), or with fd < 0 from @source. */
        int fd;
        int (*sink)(void *userdata, const void *data, size_t n);
        ssize_t (*source)(void *userdata, void *buf, size_t n);
        void *userdata;
        bool preserve_owner;    /* put: apply the archive's uid/gid (else the agent's) */
        vsock_xfer_progress_fn progress;
        int64_t idle_timeout_ns; /* as in vsock_file_get_opts */
        enum vsock_checksum checksum; /* as in vsock_file_get_opts */
};
#define VSOCK_TAR_OPTS_INIT { .size = sizeof(struct vsock_tar_opts), .fd = -1 }

struct vsock_tar_result {
        uint64_t size;          /* archive bytes */
        uint64_t entries;       /* entries archived / extracted */
        uint64_t skipped;       /* sockets, devices, FIFOs (and, get: entries that changed while read) */
        char sha256[65];        /* as in vsock_file_get_result */
        enum vsock_checksum checksum;
        char digest[65];
        uint64_t reserved[4];   /* zero today: room to grow (library-filled) */
};

/* Archive guest @path (recursively, not crossing file systems). */
int vsock_tar_get(vsock_conn *c, const char *path, const struct vsock_tar_opts *o, struct vsock_call *call,
                  struct vsock_tar_result *ret);
/* Extract an archive into guest directory @path (made with its parents):
 * no entry escapes it (relative names without "..", no symlink followed);
 * entries extracted before a failure stay. */
int vsock_tar_put(vsock_conn *c, const char *path, const struct vsock_tar_opts *o, struct vsock_call *call,
                  struct vsock_tar_result *ret);
/* ---- extensions: detached processes (PROTOCOL.md 2.7) ----------------------- */

/* Processes that outlive their connection: started detached, listed,
 * attached to (output replayed from a byte offset out of a bounded ring
 * in the agent, then followed), fed stdin, signalled, resized, waited for;
 * their result is kept for a while after they exit. Every call needs the
 * agent's VSOCK_FEATURE_PROC (VSOCK_E_UNSUPPORTED otherwise) and ends with
 * @c ready for another extension request, except vsock_proc_attach(),
 * after which @c is spent. A process is named by @id (non-zero) or, with
 * @id 0, by @tag. Agent errors come back as VSOCK_E_REMOTE with the errno
 * (ENOENT: no such process; EEXIST: tag in use; EBUSY: still running) or
 * VSOCK_E_LIMIT, the agent's words in call->remote_error. */

/* What to start. */
struct vsock_proc_spec {
        size_t size;            /* sizeof(struct vsock_proc_spec), or 0 (vsock_call) */
        /* command, args, working_dir, env, user, rows, cols, as for exec
         * (args run without a shell; stdin_data is not used). */
        struct vsock_exec_request req;
        const char *tag;        /* NULL: none; else 1-64 of [0-9A-Za-z._-], unique */
        bool tty;               /* on a pseudo-terminal (req.rows x req.cols) */
        bool stdin_pipe;        /* keep stdin open for later writes (else /dev/null) */
        uint32_t ring;          /* output kept, bytes (0: the agent's default) */
        uint32_t keep_s;        /* result kept after exit (0: the agent's default) */
};
#define VSOCK_PROC_SPEC_INIT { .size = sizeof(struct vsock_proc_spec) }

/* A process as the agent reports it (ProcInfo). */
struct vsock_proc_info {
        uint64_t id;
        char *tag;              /* NULL when none */
        int pid;
        char *command;
        char **args;
        size_t n_args;
        bool tty;
        bool running;           /* else exited, and the result is set */
        int64_t started_ns, ended_ns;   /* wall clock, ns since the epoch */
        int exit_code;          /* 128+N when killed by signal N */
        int signal;             /* N, or 0 */
        bool oom_killed;        /* the kernel's OOM killer ended it, as far as the agent can tell */
        uint64_t ring_start;    /* the oldest output offset still kept */
        uint64_t out_end;       /* the next output offset */
        bool stdin_open;
        int attached;           /* connections following it now */
        uint64_t reserved[4];   /* zero today: room to grow (library-filled) */
};
void vsock_proc_info_clear(struct vsock_proc_info *info);
void vsock_proc_infos_free(struct vsock_proc_info *infos, size_t n);

/* How an attach or a wait ended (ProcEnd). */
struct vsock_proc_end {
        char reason[16];        /* "exit", "end" (replay done, no follow), "removed" */
        uint64_t offset;        /* the next output offset after what was delivered */
        int exit_code, signal;  /* with "exit" */
        bool oom_killed;
        int64_t ended_ns;
        uint64_t reserved[4];   /* zero today: room to grow (library-filled) */
};

/* Start a detached process. Returns once it runs (or failed to start: it
 * then exited 127 or 126 and its stderr says why), with its info in *ret. */
int vsock_proc_start(vsock_conn *c, const struct vsock_proc_spec *spec, struct vsock_call *call,
                     struct vsock_proc_info *ret);
/* Every process the agent keeps (running and exited, oldest first), or
 * the one tagged @tag (may be NULL). *ret is malloc'd (free with
 * vsock_proc_infos_free()), NULL when there are none. */
int vsock_proc_list(vsock_conn *c, const char *tag, struct vsock_call *call, struct vsock_proc_info **ret,
                    size_t *ret_n);

struct vsock_proc_attach_opts {
        size_t size;            /* sizeof(struct vsock_proc_attach_opts), or 0 (vsock_call) */
        int64_t offset;         /* replay from here (0: the start; -1: only new output) */
        bool no_follow;         /* stop at the current end (logs without -f) */
        bool input;             /* io's stdin and ctl go to the process */
        /* Output the ring no longer had (ProcGap): bytes [from, to) are
         * lost. Optional; a negative return aborts the call. */
        int (*on_gap)(void *userdata, uint64_t from, uint64_t to);
};
#define VSOCK_PROC_ATTACH_OPTS_INIT { .size = sizeof(struct vsock_proc_attach_opts) }

/* Attach: @ret_info (may be NULL) gets the process as it was, then its
 * output from @opts->offset goes to @io (as for exec: on_output or the
 * fds; chunks of one stream at a time), and, with opts->input, io's stdin
 * (EOF closes the process's stdin), signals and resizes go to it. Returns
 * when the process exited and everything was delivered (or, with
 * no_follow, at the current end), with @ret_end filled. Cancelling or a
 * deadline only detaches: the process runs on. @c is spent afterwards. */
int vsock_proc_attach(vsock_conn *c, uint64_t id, const char *tag, const struct vsock_proc_attach_opts *opts,
                      const struct vsock_exec_io *io, struct vsock_call *call, struct vsock_proc_info *ret_info,
                      struct vsock_proc_end *ret_end);

enum vsock_proc_op {
        VSOCK_PROC_STDIN = 1,   /* write @data (at most limits.data_max; EAGAIN: its pipe is full) */
        VSOCK_PROC_CLOSE_STDIN, /* EOF on its stdin */
        VSOCK_PROC_SIGNAL,      /* @signal to its process group */
        VSOCK_PROC_RESIZE,      /* its terminal to @rows x @cols */
        VSOCK_PROC_REMOVE,      /* forget an exited process now (EBUSY while it runs) */
};
struct vsock_proc_control {
        size_t size;            /* sizeof(struct vsock_proc_control), or 0 (vsock_call) */
        enum vsock_proc_op op;
        const void *data;
        size_t len;
        int signal;
        uint16_t rows, cols;
};
#define VSOCK_PROC_CONTROL_INIT { .size = sizeof(struct vsock_proc_control) }
/* One control operation; *ret (may be NULL) gets the process's info
 * after it. */
int vsock_proc_control(vsock_conn *c, uint64_t id, const char *tag, const struct vsock_proc_control *ctl,
                       struct vsock_call *call, struct vsock_proc_info *ret);
/* Wait until the process exited and its output is complete, at most
 * @timeout_ms (0: no bound; VSOCK_E_REMOTE with ETIMEDOUT when it
 * passes; the call's own deadline applies too). */
int vsock_proc_wait(vsock_conn *c, uint64_t id, const char *tag, int64_t timeout_ms, struct vsock_call *call,
                    struct vsock_proc_end *ret);

/* ---- extensions: forwarding (PROTOCOL.md 2.8) ------------------------------ */

/* FwdConnect: like vsock_open_port_forward(), to the guest's TCP @host
 * (NULL: 127.0.0.1) and @port, or with @unix_path (then host and port
 * must be NULL and 0) to a guest unix stream socket. On success @c is a
 * raw byte stream to the target. A target that cannot be reached is
 * VSOCK_E_REMOTE with its errno (ECONNREFUSED, ENOENT, ETIMEDOUT, ...) and
 * the agent's words in call->remote_error; VSOCK_E_UNSUPPORTED without
 * VSOCK_FEATURE_FWD_CONNECT. */
int vsock_fwd_connect(vsock_conn *c, const char *host, uint16_t port, const char *unix_path,
                      struct vsock_call *call);

/* Guest -> host forwarding (like ssh -R). vsock_fwd_listen() makes the
 * agent listen on @listen ("tcp:HOST:PORT", PORT 0 for any free one, or
 * "unix:/path") for as long as @c stays open; the bound address goes to
 * @ret_address (may be NULL). Then vsock_fwd_next_event() reports each
 * guest connection the agent accepted ("accepted", with an id and the
 * peer) or gave up on ("expired": not attached within limits.fwd_attach_s);
 * for each accepted one, open a new connection and vsock_fwd_attach() it
 * with the id: it is then a raw byte stream to the guest's client, to be
 * spliced to a target of the caller's choosing. Closing @c stops
 * listening (and drops accepted connections not yet attached). Errors:
 * VSOCK_E_REMOTE with EADDRINUSE, EACCES, ... for the listen; ENOENT for
 * an id that is unknown, used or expired; VSOCK_E_LIMIT (listeners or
 * pending connections); VSOCK_E_UNSUPPORTED without
 * VSOCK_FEATURE_FWD_LISTEN. */
int vsock_fwd_listen(vsock_conn *c, const char *listen, int backlog, struct vsock_call *call, char *ret_address,
                     size_t address_size);

struct vsock_fwd_event {
        char event[16];         /* "accepted" or "expired" */
        uint64_t id;
        char peer[128];         /* the guest client's address, when known */
        uint64_t reserved[4];   /* zero today: room to grow (library-filled) */
};
/* The next event on a listening @c; waits (call's deadline and cancel fd
 * apply). VSOCK_E_CLOSED when the agent closed the control connection. */
int vsock_fwd_next_event(vsock_conn *c, struct vsock_call *call, struct vsock_fwd_event *ret);
/* Attach the fresh connection @c to accepted guest connection @id. */
int vsock_fwd_attach(vsock_conn *c, uint64_t id, struct vsock_call *call);

/* ---- readiness ----------------------------------------------------------- */

/* Connect to @addr (default port 5002) until a connection is accepted or
 * call's deadline passes (VSOCK_E_TIMEOUT), retrying at short, growing
 * intervals (1 ms doubling up to 100 ms). For vsock-mux, a refused CONNECT
 * counts as "not ready yet". */
int vsock_wait_ready(const char *addr, struct vsock_call *call);

#ifdef __cplusplus
}
#endif
