/* The extension messages: one field table per Go declaration of
 * PROTOCOL.md Part 2 (field order = declaration order, which is the
 * order on the wire), type names, and the binary payloads. */
#include "ext_msg.h"

#include <errno.h>
#include <string.h>

#include "common/macro.h"
#include "vsock/error.h"

#define DECODE_ERR VSOCK_ERR(VSOCK_E_DECODE, EINVAL)

/* Field declarations: F plain, O omitempty (with its default D when that
 * is a sentinel), V an array with its count member, S a nested struct
 * (SO: optional, with its "has" member). */
#define F(T, nm, m, K) { .name = nm, .kind = K, .off = offsetof(T, m), .aux = EXT_NO_AUX }
#define O(T, nm, m, K) { .name = nm, .kind = K, .omit = true, .off = offsetof(T, m), .aux = EXT_NO_AUX }
#define D(T, nm, m, K, d) \
        { .name = nm, .kind = K, .omit = true, .off = offsetof(T, m), .aux = EXT_NO_AUX, .dflt = (d) }
#define V(T, nm, m, n, K, omitempty) \
        { .name = nm, .kind = K, .omit = omitempty, .off = offsetof(T, m), .aux = offsetof(T, n) }
#define OV(T, nm, m, n, K, sh, omitempty) \
        { .name = nm, .kind = K, .omit = omitempty, .off = offsetof(T, m), .aux = offsetof(T, n), .sub = &(sh) }
#define S(T, nm, m, sh) { .name = nm, .kind = EK_OBJ, .off = offsetof(T, m), .aux = EXT_NO_AUX, .sub = &(sh) }
#define SO(T, nm, m, has, sh) \
        { .name = nm, .kind = EK_OBJ, .omit = true, .off = offsetof(T, m), .aux = offsetof(T, has), .sub = &(sh) }

#define SHAPE(NAME, goname)                                                                      \
        const struct ext_shape ext_##NAME##_shape = {                                            \
                .name = goname,                                                                  \
                .size = sizeof(struct ext_##NAME),                                               \
                .fields = NAME##_fields,                                                         \
                .n_fields = ARRAY_SIZE(NAME##_fields),                                           \
        }

/* ---- 2.2 / 2.9 ---------------------------------------------------------------------- */

#define T struct ext_limits
static const struct ext_field limits_fields[] = {
        F(T, "max_payload", max_payload, EK_U32),
        F(T, "data_max", data_max, EK_U32),
        F(T, "window_max", window_max, EK_U32),
        F(T, "list_page_max", list_page_max, EK_I32),
        F(T, "list_reply_max", list_reply_max, EK_U32),
        F(T, "procs_max", procs_max, EK_I32),
        F(T, "ring_default", ring_default, EK_U32),
        F(T, "ring_max", ring_max, EK_U32),
        F(T, "ring_total_max", ring_total_max, EK_U64),
        F(T, "proc_keep_s", proc_keep_s, EK_U32),
        F(T, "partial_keep_s", partial_keep_s, EK_U32),
        F(T, "fwd_listeners_max", fwd_listeners_max, EK_I32),
        F(T, "fwd_pending_max", fwd_pending_max, EK_I32),
        F(T, "fwd_attach_s", fwd_attach_s, EK_U32),
};
#undef T
SHAPE(limits, "Limits");

#define T struct ext_hello
static const struct ext_field hello_fields[] = {
        F(T, "version", version, EK_I32),
        O(T, "client", client, EK_OSTR),
        V(T, "features", features, n_features, EK_STRV, true),
};
#undef T
SHAPE(hello, "Hello");

#define T struct ext_hello_reply
static const struct ext_field hello_reply_fields[] = {
        F(T, "version", version, EK_I32),
        F(T, "agent", agent, EK_STR),
        F(T, "boot_id", boot_id, EK_STR),
        V(T, "features", features, n_features, EK_STRV, false),
        S(T, "limits", limits, ext_limits_shape),
};
#undef T
SHAPE(hello_reply, "HelloReply");

/* ---- 2.3 ----------------------------------------------------------------------------- */

#define T struct ext_error
static const struct ext_field error_fields[] = {
        F(T, "code", code, EK_STR),
        O(T, "errno", err, EK_I32),
        F(T, "message", message, EK_STR),
        O(T, "op", op, EK_OSTR),
};
#undef T
SHAPE(error, "Error");

#define T struct ext_done
static const struct ext_field done_fields[] = {
        F(T, "size", size, EK_I64),
        O(T, "sha256", sha256, EK_OSTR),
        O(T, "crc32c", crc32c, EK_OSTR),
        O(T, "entries", entries, EK_I64),
        O(T, "skipped", skipped, EK_I64),
};
#undef T
SHAPE(done, "Done");

const char *ext_done_checksum(const struct ext_done *d, enum checksum_alg alg) {
        return alg == CHECKSUM_CRC32C ? d->crc32c : d->sha256;
}

/* ---- 2.4 ------------------------------------------------------------------------------ */

#define T struct ext_stat
static const struct ext_field stat_fields[] = {
        F(T, "name", name, EK_STR),
        F(T, "size", size, EK_I64),
        F(T, "mode", mode, EK_U32),
        F(T, "uid", uid, EK_U32),
        F(T, "gid", gid, EK_U32),
        O(T, "user", user, EK_OSTR),
        O(T, "group", group, EK_OSTR),
        F(T, "nlink", nlink, EK_U64),
        F(T, "ino", ino, EK_U64),
        F(T, "dev", dev, EK_U64),
        O(T, "rdev", rdev, EK_U64),
        F(T, "mtime_ns", mtime_ns, EK_I64),
        F(T, "atime_ns", atime_ns, EK_I64),
        F(T, "ctime_ns", ctime_ns, EK_I64),
        O(T, "target", target, EK_OSTR),
};
#undef T
SHAPE(stat, "Stat");

#define T struct ext_fs_request
static const struct ext_field fs_request_fields[] = {
        F(T, "op", op, EK_STR),
        F(T, "path", path, EK_STR),
        O(T, "target", target, EK_OSTR),
        D(T, "mode", mode, EK_U32, EXT_UNSET_MODE),
        D(T, "uid", uid, EK_I64, EXT_UNSET_ID),
        D(T, "gid", gid, EK_I64, EXT_UNSET_ID),
        D(T, "atime_ns", atime_ns, EK_I64, EXT_UNSET_TIME),
        D(T, "mtime_ns", mtime_ns, EK_I64, EXT_UNSET_TIME),
        O(T, "parents", parents, EK_BOOL),
        O(T, "recursive", recursive, EK_BOOL),
        O(T, "force", force, EK_BOOL),
};
#undef T
SHAPE(fs_request, "FsRequest");

#define T struct ext_fs_reply
static const struct ext_field fs_reply_fields[] = {
        SO(T, "stat", stat, has_stat, ext_stat_shape),
        O(T, "target", target, EK_OSTR),
};
#undef T
SHAPE(fs_reply, "FsReply");

#define T struct ext_list_dir
static const struct ext_field list_dir_fields[] = {
        F(T, "path", path, EK_STR),
        O(T, "cursor", cursor, EK_OSTR),
        O(T, "limit", limit, EK_I32),
};
#undef T
SHAPE(list_dir, "ListDir");

#define T struct ext_list_reply
static const struct ext_field list_reply_fields[] = {
        OV(T, "entries", entries, n_entries, EK_OBJV, ext_stat_shape, false),
        O(T, "next", next, EK_OSTR),
};
#undef T
SHAPE(list_reply, "ListReply");

/* ---- 2.5 / 2.6 --------------------------------------------------------------------------- */

#define T struct ext_file_get
static const struct ext_field file_get_fields[] = {
        F(T, "path", path, EK_STR),
        O(T, "offset", offset, EK_I64),
        O(T, "length", length, EK_I64),
        F(T, "window", window, EK_U32),
        O(T, "checksum", checksum, EK_OSTR),
};
#undef T
SHAPE(file_get, "FileGet");

#define T struct ext_file_put
static const struct ext_field file_put_fields[] = {
        F(T, "path", path, EK_STR),
        D(T, "mode", mode, EK_U32, EXT_UNSET_MODE),
        D(T, "uid", uid, EK_I64, EXT_UNSET_ID),
        D(T, "gid", gid, EK_I64, EXT_UNSET_ID),
        D(T, "mtime_ns", mtime_ns, EK_I64, EXT_UNSET_TIME),
        D(T, "size", size, EK_I64, EXT_UNSET_SIZE),
        O(T, "upload_id", upload_id, EK_OSTR),
        O(T, "resume", resume, EK_BOOL),
        O(T, "checksum", checksum, EK_OSTR),
};
#undef T
SHAPE(file_put, "FilePut");

#define T struct ext_stream_start
static const struct ext_field stream_start_fields[] = {
        SO(T, "stat", stat, has_stat, ext_stat_shape),
        O(T, "offset", offset, EK_I64),
        O(T, "window", window, EK_U32),
        O(T, "upload_id", upload_id, EK_OSTR),
};
#undef T
SHAPE(stream_start, "StreamStart");

#define T struct ext_tar_get
static const struct ext_field tar_get_fields[] = {
        F(T, "path", path, EK_STR),
        F(T, "window", window, EK_U32),
        O(T, "checksum", checksum, EK_OSTR),
};
#undef T
SHAPE(tar_get, "TarGet");

#define T struct ext_tar_put
static const struct ext_field tar_put_fields[] = {
        F(T, "path", path, EK_STR),
        O(T, "preserve_owner", preserve_owner, EK_BOOL),
        O(T, "checksum", checksum, EK_OSTR),
};
#undef T
SHAPE(tar_put, "TarPut");

/* ---- 2.7 ------------------------------------------------------------------------------------ */

#define T struct ext_proc_start
static const struct ext_field proc_start_fields[] = {
        F(T, "command", command, EK_STR),
        V(T, "args", args, n_args, EK_STRV, true),
        O(T, "working_dir", working_dir, EK_OSTR),
        V(T, "env", env, n_env, EK_ENV, true),
        O(T, "user", user, EK_OSTR),
        O(T, "tag", tag, EK_OSTR),
        O(T, "tty", tty, EK_BOOL),
        O(T, "rows", rows, EK_U16),
        O(T, "cols", cols, EK_U16),
        O(T, "stdin", stdin_pipe, EK_BOOL),
        O(T, "ring", ring, EK_U32),
        O(T, "keep_s", keep_s, EK_U32),
};
#undef T
SHAPE(proc_start, "ProcStart");

#define T struct ext_proc_info
static const struct ext_field proc_info_fields[] = {
        F(T, "id", id, EK_U64),
        O(T, "tag", tag, EK_OSTR),
        F(T, "pid", pid, EK_I32),
        F(T, "command", command, EK_STR),
        V(T, "args", args, n_args, EK_STRV, true),
        F(T, "tty", tty, EK_BOOL),
        F(T, "state", state, EK_STR),
        F(T, "started_ns", started_ns, EK_I64),
        O(T, "ended_ns", ended_ns, EK_I64),
        O(T, "exit_code", exit_code, EK_I32),
        O(T, "signal", signal, EK_I32),
        O(T, "oom_killed", oom_killed, EK_BOOL),
        F(T, "ring_start", ring_start, EK_U64),
        F(T, "out_end", out_end, EK_U64),
        F(T, "stdin_open", stdin_open, EK_BOOL),
        F(T, "attached", attached, EK_I32),
};
#undef T
SHAPE(proc_info, "ProcInfo");

#define T struct ext_proc_list
static const struct ext_field proc_list_fields[] = {
        O(T, "tag", tag, EK_OSTR),
};
#undef T
SHAPE(proc_list, "ProcList");

#define T struct ext_proc_list_reply
static const struct ext_field proc_list_reply_fields[] = {
        OV(T, "procs", procs, n_procs, EK_OBJV, ext_proc_info_shape, false),
};
#undef T
SHAPE(proc_list_reply, "ProcListReply");

#define T struct ext_proc_attach
static const struct ext_field proc_attach_fields[] = {
        O(T, "id", id, EK_U64),
        O(T, "tag", tag, EK_OSTR),
        O(T, "offset", offset, EK_I64),
        /* Default true: only false needs saying. */
        D(T, "follow", follow, EK_BOOL, 1),
        O(T, "input", input, EK_BOOL),
};
#undef T
SHAPE(proc_attach, "ProcAttach");

#define T struct ext_proc_end
static const struct ext_field proc_end_fields[] = {
        F(T, "reason", reason, EK_STR),
        F(T, "offset", offset, EK_U64),
        O(T, "exit_code", exit_code, EK_I32),
        O(T, "signal", signal, EK_I32),
        O(T, "oom_killed", oom_killed, EK_BOOL),
        O(T, "ended_ns", ended_ns, EK_I64),
};
#undef T
SHAPE(proc_end, "ProcEnd");

#define T struct ext_proc_control
static const struct ext_field proc_control_fields[] = {
        O(T, "id", id, EK_U64),
        O(T, "tag", tag, EK_OSTR),
        F(T, "op", op, EK_STR),
        O(T, "data", data, EK_BYTES),
        O(T, "signal", signal, EK_I32),
        O(T, "rows", rows, EK_U16),
        O(T, "cols", cols, EK_U16),
};
#undef T
SHAPE(proc_control, "ProcControl");

#define T struct ext_proc_wait
static const struct ext_field proc_wait_fields[] = {
        O(T, "id", id, EK_U64),
        O(T, "tag", tag, EK_OSTR),
        O(T, "timeout_ms", timeout_ms, EK_I64),
};
#undef T
SHAPE(proc_wait, "ProcWait");

/* ---- 2.8 -------------------------------------------------------------------------------------- */

#define T struct ext_fwd_connect
static const struct ext_field fwd_connect_fields[] = {
        O(T, "host", host, EK_OSTR),
        O(T, "port", port, EK_U16),
        O(T, "unix", unix_path, EK_OSTR),
};
#undef T
SHAPE(fwd_connect, "FwdConnect");

#define T struct ext_fwd_listen
static const struct ext_field fwd_listen_fields[] = {
        F(T, "listen", listen, EK_STR),
        O(T, "backlog", backlog, EK_I32),
};
#undef T
SHAPE(fwd_listen, "FwdListen");

#define T struct ext_fwd_event
static const struct ext_field fwd_event_fields[] = {
        F(T, "event", event, EK_STR),
        O(T, "address", address, EK_OSTR),
        O(T, "id", id, EK_U64),
        O(T, "peer", peer, EK_OSTR),
};
#undef T
SHAPE(fwd_event, "FwdEvent");

#define T struct ext_fwd_attach
static const struct ext_field fwd_attach_fields[] = {
        F(T, "id", id, EK_U64),
};
#undef T
SHAPE(fwd_attach, "FwdAttach");

/* ---- types ---------------------------------------------------------------------------------------- */

static const struct {
        const char *name;
        const struct ext_shape *shape; /* NULL: raw or binary payload */
} types[EXT_MSG_LAST - EXT_MSG_FIRST + 1] = {
#define TYPE(t, nm, sh) [(t) - EXT_MSG_FIRST] = { nm, sh }
        TYPE(EXT_MSG_HELLO, "Hello", &ext_hello_shape),
        TYPE(EXT_MSG_HELLO_REPLY, "HelloReply", &ext_hello_reply_shape),
        TYPE(EXT_MSG_ERROR, "Error", &ext_error_shape),
        TYPE(EXT_MSG_DATA, "Data", NULL),
        TYPE(EXT_MSG_CREDIT, "Credit", NULL),
        TYPE(EXT_MSG_DONE, "Done", &ext_done_shape),
        TYPE(EXT_MSG_FS_REQUEST, "FsRequest", &ext_fs_request_shape),
        TYPE(EXT_MSG_FS_REPLY, "FsReply", &ext_fs_reply_shape),
        TYPE(EXT_MSG_LIST_DIR, "ListDir", &ext_list_dir_shape),
        TYPE(EXT_MSG_LIST_REPLY, "ListReply", &ext_list_reply_shape),
        TYPE(EXT_MSG_FILE_GET, "FileGet", &ext_file_get_shape),
        TYPE(EXT_MSG_FILE_PUT, "FilePut", &ext_file_put_shape),
        TYPE(EXT_MSG_STREAM_START, "StreamStart", &ext_stream_start_shape),
        TYPE(EXT_MSG_TAR_GET, "TarGet", &ext_tar_get_shape),
        TYPE(EXT_MSG_TAR_PUT, "TarPut", &ext_tar_put_shape),
        TYPE(EXT_MSG_PROC_START, "ProcStart", &ext_proc_start_shape),
        TYPE(EXT_MSG_PROC_INFO, "ProcInfo", &ext_proc_info_shape),
        TYPE(EXT_MSG_PROC_LIST, "ProcList", &ext_proc_list_shape),
        TYPE(EXT_MSG_PROC_LIST_REPLY, "ProcListReply", &ext_proc_list_reply_shape),
        TYPE(EXT_MSG_PROC_ATTACH, "ProcAttach", &ext_proc_attach_shape),
        TYPE(EXT_MSG_PROC_OUTPUT, "ProcOutput", NULL),
        TYPE(EXT_MSG_PROC_GAP, "ProcGap", NULL),
        TYPE(EXT_MSG_PROC_END, "ProcEnd", &ext_proc_end_shape),
        TYPE(EXT_MSG_PROC_CONTROL, "ProcControl", &ext_proc_control_shape),
        TYPE(EXT_MSG_PROC_WAIT, "ProcWait", &ext_proc_wait_shape),
        TYPE(EXT_MSG_FWD_LISTEN, "FwdListen", &ext_fwd_listen_shape),
        TYPE(EXT_MSG_FWD_EVENT, "FwdEvent", &ext_fwd_event_shape),
        TYPE(EXT_MSG_FWD_ATTACH, "FwdAttach", &ext_fwd_attach_shape),
        TYPE(EXT_MSG_FWD_CONNECT, "FwdConnect", &ext_fwd_connect_shape),
#undef TYPE
};

const char *ext_msg_type_name(uint8_t type) {
        return type >= EXT_MSG_FIRST && type <= EXT_MSG_LAST ? types[type - EXT_MSG_FIRST].name : NULL;
}

const struct ext_shape *ext_msg_shape(uint8_t type) {
        return type >= EXT_MSG_FIRST && type <= EXT_MSG_LAST ? types[type - EXT_MSG_FIRST].shape : NULL;
}

/* ---- binary payloads --------------------------------------------------------------------------------- */

static void put_be(uint8_t *p, uint64_t v, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                p[i] = (uint8_t) (v >> (8 * (n - 1 - i)));
}

static uint64_t get_be(const uint8_t *p, unsigned n) {
        uint64_t v = 0;
        for (unsigned i = 0; i < n; i++)
                v = v << 8 | p[i];
        return v;
}

static int refuse(const char **ret_why, const char *why) {
        if (ret_why)
                *ret_why = why;
        return DECODE_ERR;
}

void ext_credit_encode(uint32_t n, uint8_t out[EXT_CREDIT_SIZE]) {
        put_be(out, n, 4);
}

int ext_credit_decode(const void *data, size_t len, uint32_t *ret_n, const char **ret_why) {
        if (!data || len != EXT_CREDIT_SIZE)
                return refuse(ret_why, "Credit: expected 4 bytes");
        uint32_t n = (uint32_t) get_be(data, 4);
        if (n == 0)
                return refuse(ret_why, "Credit: zero credit");
        if (ret_n)
                *ret_n = n;
        return 0;
}

void ext_proc_output_header(uint8_t stream, uint64_t offset, uint8_t out[EXT_PROC_OUTPUT_HEADER_SIZE]) {
        out[0] = stream;
        put_be(out + 1, offset, 8);
}

int ext_proc_output_decode(const void *data, size_t len, uint8_t *ret_stream, uint64_t *ret_offset,
                           const uint8_t **ret_bytes, size_t *ret_len, const char **ret_why) {
        const uint8_t *p = data;
        if (!p || len <= EXT_PROC_OUTPUT_HEADER_SIZE)
                return refuse(ret_why, "ProcOutput: expected a stream, an offset and at least one byte");
        if (p[0] != EXT_STREAM_STDOUT && p[0] != EXT_STREAM_STDERR)
                return refuse(ret_why, "ProcOutput: stream is neither 1 (stdout) nor 2 (stderr)");
        uint64_t offset = get_be(p + 1, 8);
        size_t n = len - EXT_PROC_OUTPUT_HEADER_SIZE;
        if (offset > UINT64_MAX - n)
                return refuse(ret_why, "ProcOutput: offset + length beyond 2^64");
        if (ret_stream)
                *ret_stream = p[0];
        if (ret_offset)
                *ret_offset = offset;
        if (ret_bytes)
                *ret_bytes = p + EXT_PROC_OUTPUT_HEADER_SIZE;
        if (ret_len)
                *ret_len = n;
        return 0;
}

void ext_proc_gap_encode(uint64_t from, uint64_t to, uint8_t out[EXT_PROC_GAP_SIZE]) {
        put_be(out, from, 8);
        put_be(out + 8, to, 8);
}

int ext_proc_gap_decode(const void *data, size_t len, uint64_t *ret_from, uint64_t *ret_to, const char **ret_why) {
        if (!data || len != EXT_PROC_GAP_SIZE)
                return refuse(ret_why, "ProcGap: expected 16 bytes");
        uint64_t from = get_be(data, 8), to = get_be((const uint8_t *) data + 8, 8);
        if (from >= to)
                return refuse(ret_why, "ProcGap: from is not below to");
        if (ret_from)
                *ret_from = from;
        if (ret_to)
                *ret_to = to;
        return 0;
}
