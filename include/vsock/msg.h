/* The protocol's message types, the exec request every exec call takes
 * (client.h), and Go's os.FileMode bits.
 *
 * Each frame (frame.h) carries one message: its type is the frame's type
 * byte, its payload JSON written as Go's encoding/json writes it, or a few
 * binary bytes (Exit, Resize, Signal). The library encodes and decodes
 * them itself for the calls of client.h; a program that only uses those
 * never touches a payload.
 *
 * Strings are NUL-terminated UTF-8. Bytes that are not UTF-8 travel as
 * U+FFFD (Go's encoding). */
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
 * struct, which every exec call of client.h takes (what each field means
 * there: client.h, "Exec requests"); rows/cols are used only by a TTY
 * exec, stdin_data only by the others. env may be in any order (the
 * encoder sorts a copy of its index); a key given twice keeps the last
 * value, as in Go.
 *
 * Size-checked, so that fields can be added: fill it with a designated
 * initialiser ({ .command = "ls" }), which leaves @size 0, the first
 * layout (VSOCK_0.1's), or set @size = sizeof(struct vsock_exec_request).
 * A size the library does not know fails the call with -EINVAL. */
struct vsock_exec_request {
        size_t size;            /* sizeof(struct vsock_exec_request), or 0 (see above) */
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
