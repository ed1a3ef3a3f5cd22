/* The protocol's message types and its JSON messages.
 *
 * Encoders produce exactly the bytes Go's encoding/json produces for the
 * host-side declarations in the seed (field order, omitempty, base64 for
 * []byte, sorted map keys, Go's escaping). Decoders accept everything Go
 * produces, for the host-side and the guest agent's own declarations
 * (null for empty slices/maps, missing fields, unknown fields ignored) and
 * reject wrong types and invalid base64 with VSOCK_E_DECODE.
 *
 * Strings are NUL-terminated UTF-8; a decoded string containing a NUL byte
 * is rejected (no valid path, command or env entry can hold one). Byte
 * fields keep an explicit length and a "present" flag, because Go tells
 * nil (omitted / null) from empty ("").
 *
 * Ownership: decoders fill caller-provided structs with malloc'd members;
 * release them with the matching *_clear() function, which also accepts a
 * zeroed struct and may be called twice. Encoders return a malloc'd buffer
 * in *ret_data (NUL-terminated, not counted) that the caller frees. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

enum vsock_msg_type {
        VSOCK_MSG_EXEC = 1,
        VSOCK_MSG_EXEC_RESULT = 2,
        VSOCK_MSG_STDOUT = 3,
        VSOCK_MSG_STDERR = 4,
        VSOCK_MSG_SIGNAL = 5,
        VSOCK_MSG_READY = 6,
        VSOCK_MSG_STDIN = 7,
        VSOCK_MSG_RESIZE = 8,
        VSOCK_MSG_EXEC_TTY = 9,
        VSOCK_MSG_EXIT = 10,
        VSOCK_MSG_EXEC_STREAM = 11,
        VSOCK_MSG_EXEC_PIPE = 12,
        VSOCK_MSG_PORT_FORWARD = 13,
        VSOCK_MSG_WRITE_FILE = 14,
        VSOCK_MSG_READ_FILE = 15,
        VSOCK_MSG_LIST_FILES = 16,
        VSOCK_MSG_FILE_RESULT = 17,
};

/* "Exec", "ExecResult", ... or NULL for an unknown type. */
const char *vsock_msg_type_name(uint8_t type);

/* A []byte field: present == false means nil (omitted or null). */
struct vsock_bytes {
        uint8_t *data;
        size_t len;
        bool present;
};

struct vsock_env {
        char *key;
        char *value;
};

/* ExecRequest (types 1, 11, 12) and ExecTTYRequest (type 9) share one
 * struct; rows/cols are used only by the TTY encoder, stdin only by the
 * other. env is kept sorted by key (byte order) by the decoder; the
 * encoder sorts a copy of the index itself, so callers may fill it in any
 * order. A key that occurs twice in JSON keeps the last value, as in Go. */
struct vsock_exec_request {
        const char *command;
        char **args;
        size_t n_args;
        const char *working_dir; /* NULL or "" = omitted */
        struct vsock_env *env;
        size_t n_env;
        struct vsock_bytes stdin_data;
        const char *user;       /* "uid", "uid:gid" or a name; NULL/"" = omitted */
        uint16_t rows, cols;    /* TTY only */
};

struct vsock_exec_response {
        int64_t exit_code;
        struct vsock_bytes stdout_data;
        struct vsock_bytes stderr_data;
        char *error;            /* NULL or "" = none */
};

struct vsock_port_forward_request {
        const char *host;             /* NULL or "" = omitted (agent uses 127.0.0.1) */
        uint16_t port;
};

struct vsock_window_size {
        uint16_t rows, cols;
};

struct vsock_write_file_request {
        const char *path;
        struct vsock_bytes content;
        uint32_t mode;          /* Go os.FileMode bits */
};

/* ReadFileRequest and ListFilesRequest: {"path": ...} */
struct vsock_path_request {
        const char *path;
};

struct vsock_file_info {
        char *name;
        int64_t size;
        uint32_t mode;          /* Go os.FileMode bits, as on the wire */
        bool is_dir;
};

struct vsock_file_response {
        struct vsock_bytes content;
        struct vsock_file_info *files;
        size_t n_files;
        char *error;            /* NULL or "" = none */
};

/* ---- encoders (host-side Go declarations) ------------------------------ */
int vsock_exec_request_encode(const struct vsock_exec_request *r, uint8_t **ret_data, size_t *ret_len);
int vsock_exec_tty_request_encode(const struct vsock_exec_request *r, uint8_t **ret_data, size_t *ret_len);
int vsock_exec_response_encode(const struct vsock_exec_response *r, uint8_t **ret_data, size_t *ret_len);
int vsock_port_forward_request_encode(const struct vsock_port_forward_request *r, uint8_t **ret_data, size_t *ret_len);
int vsock_window_size_encode(const struct vsock_window_size *r, uint8_t **ret_data, size_t *ret_len);
int vsock_write_file_request_encode(const struct vsock_write_file_request *r, uint8_t **ret_data, size_t *ret_len);
int vsock_path_request_encode(const struct vsock_path_request *r, uint8_t **ret_data, size_t *ret_len);
int vsock_file_info_encode(const struct vsock_file_info *r, uint8_t **ret_data, size_t *ret_len);
int vsock_file_response_encode(const struct vsock_file_response *r, uint8_t **ret_data, size_t *ret_len);

/* ---- decoders ----------------------------------------------------------
 * On failure the struct is left zeroed and, if @ret_why is not NULL, it
 * points at a static message (e.g. "field \"args\": expected array"). */
int vsock_exec_request_decode(const void *data, size_t len, struct vsock_exec_request *ret, const char **ret_why);
int vsock_exec_response_decode(const void *data, size_t len, struct vsock_exec_response *ret, const char **ret_why);
int vsock_port_forward_request_decode(const void *data, size_t len, struct vsock_port_forward_request *ret, const char **ret_why);
int vsock_window_size_decode(const void *data, size_t len, struct vsock_window_size *ret, const char **ret_why);
int vsock_write_file_request_decode(const void *data, size_t len, struct vsock_write_file_request *ret, const char **ret_why);
int vsock_path_request_decode(const void *data, size_t len, struct vsock_path_request *ret, const char **ret_why);
int vsock_file_info_decode(const void *data, size_t len, struct vsock_file_info *ret, const char **ret_why);
int vsock_file_response_decode(const void *data, size_t len, struct vsock_file_response *ret, const char **ret_why);

/* ---- release ------------------------------------------------------------ */
/* vsock_exec_request_clear(r, true) wipes env values and stdin with
 * explicit_bzero before freeing them (secrets). */
void vsock_exec_request_clear(struct vsock_exec_request *r, bool wipe);
void vsock_exec_response_clear(struct vsock_exec_response *r);
void vsock_port_forward_request_clear(struct vsock_port_forward_request *r);
void vsock_write_file_request_clear(struct vsock_write_file_request *r);
void vsock_path_request_clear(struct vsock_path_request *r);
void vsock_file_info_clear(struct vsock_file_info *r);
void vsock_file_response_clear(struct vsock_file_response *r);

/* ---- binary payloads ---------------------------------------------------- */
/* Exit (type 10): big-endian uint32 of the exit code; -1 is ff ff ff ff. */
void vsock_exit_encode(int32_t code, uint8_t out[4]);
int vsock_exit_decode(const void *data, size_t len, int32_t *ret_code);
/* Resize (type 8): rows, cols as big-endian uint16. */
void vsock_resize_encode(uint16_t rows, uint16_t cols, uint8_t out[4]);
int vsock_resize_decode(const void *data, size_t len, uint16_t *ret_rows, uint16_t *ret_cols);
/* Signal (type 5): one byte, the Linux signal number (1..64). */
int vsock_signal_decode(const void *data, size_t len, int *ret_signo);

/* ---- Go os.FileMode <-> mode_t ----------------------------------------- */
#define VSOCK_GO_MODE_DIR (1u << 31)
#define VSOCK_GO_MODE_APPEND (1u << 30)
#define VSOCK_GO_MODE_EXCLUSIVE (1u << 29)
#define VSOCK_GO_MODE_TEMPORARY (1u << 28)
#define VSOCK_GO_MODE_SYMLINK (1u << 27)
#define VSOCK_GO_MODE_DEVICE (1u << 26)
#define VSOCK_GO_MODE_NAMED_PIPE (1u << 25)
#define VSOCK_GO_MODE_SOCKET (1u << 24)
#define VSOCK_GO_MODE_SETUID (1u << 23)
#define VSOCK_GO_MODE_SETGID (1u << 22)
#define VSOCK_GO_MODE_CHAR_DEVICE (1u << 21)
#define VSOCK_GO_MODE_STICKY (1u << 20)
#define VSOCK_GO_MODE_IRREGULAR (1u << 19)

uint32_t vsock_go_mode_from_mode_t(mode_t m);
mode_t vsock_go_mode_to_mode_t(uint32_t go_mode);

#ifdef __cplusplus
}
#endif
