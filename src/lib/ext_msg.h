/* The extension messages of PROTOCOL.md Part 2: type numbers, one C struct
 * per JSON shape with its codec, and the binary payloads (Credit,
 * ProcOutput, ProcGap). Internal to libvsock and the agent: the public API
 * (include/vsock/) gets only what the client operations built on these
 * need.
 *
 * For every JSON shape FOO below:
 *
 *   int  ext_FOO_encode(const struct ext_FOO *m, struct buf *out);
 *   int  ext_FOO_decode(const void *data, size_t len, struct ext_FOO *ret, const char **ret_why);
 *   void ext_FOO_clear(struct ext_FOO *m);
 *   void ext_FOO_init(struct ext_FOO *m);
 *
 * with the contracts of ext_encode(), ext_decode(), ext_clear() and
 * ext_init() (ext_codec.h): encode appends all or nothing, decode fills
 * *ret only on success and names the offending field otherwise, clear
 * frees, init sets the documented defaults.
 *
 * Conventions of the structs: strings are malloc'd and NUL-free; a
 * mandatory string is never NULL after decoding, an optional one
 * (`string,o`) is NULL when absent or empty. Arrays come with a count; a
 * non-omitempty array (`[]Stat`, `[]ProcInfo`, HelloReply features) is
 * written as [] when empty. Integer members have the C type of their Go
 * type (Go `int` as int32_t). Where PROTOCOL.md gives an absent field a
 * meaning different from zero, the member's default is a sentinel that is
 * not written: EXT_UNSET_ID (-1) for uid/gid, EXT_UNSET_TIME for
 * timestamps, EXT_UNSET_MODE for modes, EXT_UNSET_SIZE for FilePut size,
 * and ProcAttach `follow` defaults to true (written only when false). So
 * chown to 0, a mode of 0 and an mtime of 0 all travel. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/checksum.h"
#include "ext_codec.h"
#include "vsock/msg.h"

/* The extension protocol version this code speaks (Hello, HelloReply). */
#define EXT_VERSION 1

enum ext_msg_type {
        EXT_MSG_HELLO = 64,
        EXT_MSG_HELLO_REPLY = 65,
        EXT_MSG_ERROR = 66,
        EXT_MSG_DATA = 67,
        EXT_MSG_CREDIT = 68,
        EXT_MSG_DONE = 69,
        EXT_MSG_FS_REQUEST = 70,
        EXT_MSG_FS_REPLY = 71,
        EXT_MSG_LIST_DIR = 72,
        EXT_MSG_LIST_REPLY = 73,
        EXT_MSG_FILE_GET = 74,
        EXT_MSG_FILE_PUT = 75,
        EXT_MSG_STREAM_START = 76,
        EXT_MSG_TAR_GET = 77,
        EXT_MSG_TAR_PUT = 78,
        EXT_MSG_PROC_START = 80,
        EXT_MSG_PROC_INFO = 81,
        EXT_MSG_PROC_LIST = 82,
        EXT_MSG_PROC_LIST_REPLY = 83,
        EXT_MSG_PROC_ATTACH = 84,
        EXT_MSG_PROC_OUTPUT = 85,
        EXT_MSG_PROC_GAP = 86,
        EXT_MSG_PROC_END = 87,
        EXT_MSG_PROC_CONTROL = 88,
        EXT_MSG_PROC_WAIT = 89,
        EXT_MSG_FWD_LISTEN = 90,
        EXT_MSG_FWD_EVENT = 91,
        EXT_MSG_FWD_ATTACH = 92,
        EXT_MSG_FWD_CONNECT = 93,
};

/* Types 64..127 are extension frames; 18..63 belong to the reference. */
#define EXT_MSG_FIRST 64
#define EXT_MSG_LAST 127

/* The name of an extension type ("Hello", "ProcOutput"), NULL for a type
 * this version does not define. */
const char *ext_msg_type_name(uint8_t type);

/* The JSON shape a type carries, NULL for binary/raw types (Data, Credit,
 * ProcOutput, ProcGap) and unknown ones. Lets generic code (fuzzing,
 * logging) decode any extension frame. */
const struct ext_shape *ext_msg_shape(uint8_t type);

#define EXT_UNSET_ID INT64_C(-1)
#define EXT_UNSET_TIME INT64_MIN
#define EXT_UNSET_MODE UINT32_MAX
#define EXT_UNSET_SIZE INT64_C(-1)

/* Declares the shape and the typed wrappers of struct ext_NAME. */
#define EXT_CODEC(NAME)                                                                                      \
        extern const struct ext_shape ext_##NAME##_shape;                                                    \
        static inline int ext_##NAME##_encode(const struct ext_##NAME *m, struct buf *out) {                 \
                return ext_encode(&ext_##NAME##_shape, m, out);                                              \
        }                                                                                                    \
        static inline int ext_##NAME##_decode(const void *data, size_t len, struct ext_##NAME *ret,          \
                                              const char **ret_why) {                                        \
                return ext_decode(&ext_##NAME##_shape, data, len, ret, ret_why);                             \
        }                                                                                                    \
        static inline void ext_##NAME##_clear(struct ext_##NAME *m) { ext_clear(&ext_##NAME##_shape, m); }   \
        static inline void ext_##NAME##_init(struct ext_##NAME *m) { ext_init(&ext_##NAME##_shape, m); }

/* ---- 2.2 negotiation ---------------------------------------------------------- */

struct ext_limits {
        uint32_t max_payload;
        uint32_t data_max;
        uint32_t window_max;
        int32_t list_page_max;
        uint32_t list_reply_max;
        int32_t procs_max;
        uint32_t ring_default;
        uint32_t ring_max;
        uint64_t ring_total_max;
        uint32_t proc_keep_s;
        uint32_t partial_keep_s;
        int32_t fwd_listeners_max;
        int32_t fwd_pending_max;
        uint32_t fwd_attach_s;
};
EXT_CODEC(limits)

struct ext_hello {
        int32_t version;
        char *client; /* optional */
        char **features;
        size_t n_features;
};
EXT_CODEC(hello)

struct ext_hello_reply {
        int32_t version;
        char *agent;
        char *boot_id;
        char **features; /* written as [] when empty */
        size_t n_features;
        struct ext_limits limits;
};
EXT_CODEC(hello_reply)

/* ---- 2.3 common frames ---------------------------------------------------------- */

struct ext_error {
        char *code;    /* "ENOENT", "EPROTO", ... (2.10) */
        int32_t err;   /* "errno", optional: 0 = none */
        char *message;
        char *op;      /* optional */
};
EXT_CODEC(error)

struct ext_done {
        int64_t size;
        char *sha256; /* optional: lowercase hex, when the stream's checksum is SHA-256 */
        char *crc32c; /* optional: 8 lowercase hex digits, when it is CRC-32C */
        int64_t entries; /* optional (tar) */
        int64_t skipped; /* optional (tar) */
};
EXT_CODEC(done)

/* Done's checksum field for @alg: crc32c or sha256, NULL when absent. */
const char *ext_done_checksum(const struct ext_done *d, enum checksum_alg alg);

/* Credit (68): 4 bytes, big-endian, n > 0. */
#define EXT_CREDIT_SIZE 4
void ext_credit_encode(uint32_t n, uint8_t out[EXT_CREDIT_SIZE]);
int ext_credit_decode(const void *data, size_t len, uint32_t *ret_n, const char **ret_why);

/* ---- 2.4 file-system operations ---------------------------------------------------- */

struct ext_stat {
        char *name;
        int64_t size;
        uint32_t mode; /* POSIX st_mode */
        uint32_t uid;
        uint32_t gid;
        char *user;  /* optional */
        char *group; /* optional */
        uint64_t nlink;
        uint64_t ino;
        uint64_t dev;
        uint64_t rdev; /* optional */
        int64_t mtime_ns;
        int64_t atime_ns;
        int64_t ctime_ns;
        char *target; /* optional: a symlink's target */
};
EXT_CODEC(stat)

struct ext_fs_request {
        char *op;
        char *path;
        char *target;     /* optional */
        uint32_t mode;    /* EXT_UNSET_MODE when absent */
        int64_t uid, gid; /* EXT_UNSET_ID when absent */
        int64_t atime_ns; /* EXT_UNSET_TIME when absent */
        int64_t mtime_ns; /* EXT_UNSET_TIME when absent */
        bool parents;
        bool recursive;
        bool force;
};
EXT_CODEC(fs_request)

struct ext_fs_reply {
        bool has_stat;
        struct ext_stat stat;
        char *target; /* optional */
};
EXT_CODEC(fs_reply)

struct ext_list_dir {
        char *path;
        char *cursor;  /* optional */
        int32_t limit; /* optional: 0 = the agent's page size */
};
EXT_CODEC(list_dir)

struct ext_list_reply {
        struct ext_stat *entries; /* written as [] when empty */
        size_t n_entries;
        char *next; /* optional: absent on the last page */
};
EXT_CODEC(list_reply)

/* ---- 2.5 / 2.6 streams ------------------------------------------------------------- */

struct ext_file_get {
        char *path;
        int64_t offset; /* optional */
        int64_t length; /* optional: 0 = to the end */
        uint32_t window;
        char *checksum; /* optional: the Done's algorithm (absent: sha256) */
};
EXT_CODEC(file_get)

struct ext_file_put {
        char *path;
        uint32_t mode;     /* EXT_UNSET_MODE when absent (0644) */
        int64_t uid, gid;  /* EXT_UNSET_ID when absent */
        int64_t mtime_ns;  /* EXT_UNSET_TIME when absent (now) */
        int64_t size;      /* EXT_UNSET_SIZE when absent */
        char *upload_id;   /* optional */
        bool resume;
        char *checksum;    /* optional, as in FileGet */
};
EXT_CODEC(file_put)

struct ext_stream_start {
        bool has_stat;
        struct ext_stat stat;
        int64_t offset;
        uint32_t window;
        char *upload_id; /* optional */
};
EXT_CODEC(stream_start)

struct ext_tar_get {
        char *path;
        uint32_t window;
        char *checksum; /* optional, as in FileGet */
};
EXT_CODEC(tar_get)

struct ext_tar_put {
        char *path;
        bool preserve_owner;
        char *checksum; /* optional, as in FileGet */
};
EXT_CODEC(tar_put)

/* ---- 2.7 detached processes ------------------------------------------------------------ */

struct ext_proc_start {
        char *command;
        char **args;
        size_t n_args;
        char *working_dir; /* optional */
        struct vsock_env *env; /* sorted by key when decoded */
        size_t n_env;
        char *user; /* optional */
        char *tag;  /* optional */
        bool tty;
        uint16_t rows, cols;
        bool stdin_pipe; /* "stdin" */
        uint32_t ring;   /* optional: 0 = the agent's default */
        uint32_t keep_s; /* optional: 0 = the agent's default */
};
EXT_CODEC(proc_start)

struct ext_proc_info {
        uint64_t id;
        char *tag; /* optional */
        int32_t pid;
        char *command;
        char **args;
        size_t n_args;
        bool tty;
        char *state; /* "running" or "exited" */
        int64_t started_ns;
        int64_t ended_ns;  /* optional */
        int32_t exit_code; /* optional */
        int32_t signal;    /* optional */
        bool oom_killed;
        uint64_t ring_start;
        uint64_t out_end;
        bool stdin_open;
        int32_t attached;
};
EXT_CODEC(proc_info)

struct ext_proc_list {
        char *tag; /* optional */
};
EXT_CODEC(proc_list)

struct ext_proc_list_reply {
        struct ext_proc_info *procs; /* written as [] when empty */
        size_t n_procs;
};
EXT_CODEC(proc_list_reply)

struct ext_proc_attach {
        uint64_t id;
        char *tag;      /* optional */
        int64_t offset; /* -1: from out_end */
        bool follow;    /* default true */
        bool input;
};
EXT_CODEC(proc_attach)

struct ext_proc_end {
        char *reason; /* "exit", "end", "removed" */
        uint64_t offset;
        int32_t exit_code;
        int32_t signal;
        bool oom_killed;
        int64_t ended_ns;
};
EXT_CODEC(proc_end)

struct ext_proc_control {
        uint64_t id;
        char *tag; /* optional */
        char *op;  /* "stdin", "close-stdin", "signal", "resize", "remove" */
        struct vsock_bytes data;
        int32_t signal;
        uint16_t rows, cols;
};
EXT_CODEC(proc_control)

struct ext_proc_wait {
        uint64_t id;
        char *tag; /* optional */
        int64_t timeout_ms; /* optional: 0 = no bound */
};
EXT_CODEC(proc_wait)

enum {
        EXT_STREAM_STDOUT = 1,
        EXT_STREAM_STDERR = 2,
};

/* ProcOutput (85): stream (1 byte), offset (uint64), then at least one
 * byte of output. The 9-byte header is encoded alone so that the bytes can
 * be gathered from wherever they are (the ring). */
#define EXT_PROC_OUTPUT_HEADER_SIZE 9
void ext_proc_output_header(uint8_t stream, uint64_t offset, uint8_t out[EXT_PROC_OUTPUT_HEADER_SIZE]);
/* On success *ret_bytes points into @data. Refused: a payload without
 * bytes, a stream other than 1 or 2, offset + length beyond 2^64. */
int ext_proc_output_decode(const void *data, size_t len, uint8_t *ret_stream, uint64_t *ret_offset,
                           const uint8_t **ret_bytes, size_t *ret_len, const char **ret_why);

/* ProcGap (86): from, to (uint64 each); from < to. */
#define EXT_PROC_GAP_SIZE 16
void ext_proc_gap_encode(uint64_t from, uint64_t to, uint8_t out[EXT_PROC_GAP_SIZE]);
int ext_proc_gap_decode(const void *data, size_t len, uint64_t *ret_from, uint64_t *ret_to, const char **ret_why);

/* ---- 2.8 forwarding ----------------------------------------------------------------------- */

struct ext_fwd_connect {
        char *host; /* optional */
        uint16_t port;
        char *unix_path; /* "unix", optional */
};
EXT_CODEC(fwd_connect)

struct ext_fwd_listen {
        char *listen;
        int32_t backlog; /* optional */
};
EXT_CODEC(fwd_listen)

struct ext_fwd_event {
        char *event; /* "listening", "accepted", "expired" */
        char *address; /* optional */
        uint64_t id;   /* optional */
        char *peer;    /* optional */
};
EXT_CODEC(fwd_event)

struct ext_fwd_attach {
        uint64_t id;
};
EXT_CODEC(fwd_attach)
