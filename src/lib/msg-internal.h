/* Internal side of the message layer (include/vsock/msg.h): the JSON
 * structs of every message, their encoders and decoders, and the binary
 * payloads. Hidden from libvsock.so (the calls of client.h use them), so
 * the encoding can change with the protocol without touching the ABI.
 *
 * Encoders produce exactly the bytes Go's encoding/json produces for the
 * host-side declarations of the Go package (field order, omitempty,
 * base64 for []byte, sorted map keys, Go's escaping). Decoders accept
 * everything Go produces, for the host-side and the guest agent's own
 * declarations (null for empty slices/maps, missing fields, unknown
 * fields ignored) and reject wrong types and invalid base64 with
 * VSOCK_E_DECODE.
 *
 * A decoded string containing a NUL byte is rejected (no valid path,
 * command or env entry can hold one). Byte fields keep an explicit length
 * and a "present" flag, because Go tells nil (omitted / null) from empty
 * ("").
 *
 * Ownership: decoders fill caller-provided structs with malloc'd members;
 * release them with the matching *_clear() function, which also accepts a
 * zeroed struct and may be called twice. The vsock_*_encode() functions
 * return a malloc'd buffer in *ret_data (NUL-terminated, not counted) that
 * the caller frees.
 *
 * The msg_encode_* functions APPEND one JSON message to @out, so the agent
 * and the client can encode a large ExecResponse or FileResponse straight
 * into a send buffer (after a reserved frame header) without a copy. They
 * write exactly what Go's json.Marshal writes for the host-side
 * declarations. On failure (-EINVAL for an inconsistent struct, -ENOBUFS
 * when @out's cap is hit, -ENOMEM) @out is restored to its previous
 * contents.
 *
 * Conventions shared by all encoders: a NULL string is written as "" (Go's
 * zero value), a vsock_bytes with present == false as nil, and an array
 * pointer may be NULL only when its count is 0. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "vsock/msg.h"

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

/* ---- appending encoders ---------------------------------------------------- */
int msg_encode_exec_request(const struct vsock_exec_request *r, struct buf *out);
int msg_encode_exec_tty_request(const struct vsock_exec_request *r, struct buf *out);
int msg_encode_exec_response(const struct vsock_exec_response *r, struct buf *out);
int msg_encode_port_forward_request(const struct vsock_port_forward_request *r, struct buf *out);
int msg_encode_window_size(const struct vsock_window_size *r, struct buf *out);
int msg_encode_write_file_request(const struct vsock_write_file_request *r, struct buf *out);
int msg_encode_path_request(const struct vsock_path_request *r, struct buf *out);
int msg_encode_file_info(const struct vsock_file_info *r, struct buf *out);
int msg_encode_file_response(const struct vsock_file_response *r, struct buf *out);

/* The ExecResponse exactly as the Go guest agent declares it (no
 * omitempty): stdout/stderr are null when not present and "" when present
 * but empty, and "error" is always written. A Go host decodes both forms
 * the same way; this one reproduces the agent's bytes on the wire. */
int msg_encode_exec_response_agent(const struct vsock_exec_response *r, struct buf *out);

/* Decode an ExecRequest (@tty false: types 1, 11, 12) or an ExecTTYRequest
 * (@tty true: type 9) with exactly the fields of that Go struct: fields
 * of the other shape ("stdin" for TTY, "rows"/"cols" otherwise) are
 * unknown and ignored, as Go ignores them. vsock_exec_request_decode()
 * accepts the union of both. Same contract as the public decoders. */
int msg_decode_exec_request(const void *data, size_t len, bool tty, struct vsock_exec_request *ret,
                            const char **ret_why);

/* vsock_write_file_request_decode() for the agent, which owns the frame
 * and needs the file's bytes only once: a big base64 content is decoded
 * in place, over its own text in @data (which is modified), so a 15 MiB
 * file costs no second 15 MiB of memory. On success the content is
 * *ret_content[0..*ret_content_len): inside @data (valid as long as it
 * is), or ret->content.data when it was decoded the ordinary way; in the
 * first case ret->content has no data (present, len 0). Clear @ret as
 * usual. Same errors as the public decoder. */
int msg_decode_write_file_inplace(void *data, size_t len, struct vsock_write_file_request *ret,
                                  const uint8_t **ret_content, size_t *ret_content_len, const char **ret_why);

/* vsock_write_file_request_decode() that also refuses a repeated member,
 * whether the keys are the same or only fold to the same field ("content"
 * and "Content"; Go would take the last one): msg_decode() with strict
 * set. For texts whose content was taken apart (wfparse.h), where "the
 * last one" is no longer at hand. */
int msg_decode_write_file_strict(const void *data, size_t len, struct vsock_write_file_request *ret,
                                 const char **ret_why);

/* The JSON shapes the decoders know: one per public decoder, and the
 * exact Go structs of msg_decode_exec_request(). */
enum msg_shape {
        MSG_SHAPE_EXEC_REQUEST,         /* vsock_exec_request_decode(): both exec shapes' union */
        MSG_SHAPE_EXEC_BATCH,           /* ExecRequest (types 1, 11, 12) */
        MSG_SHAPE_EXEC_TTY,             /* ExecTTYRequest (type 9) */
        MSG_SHAPE_EXEC_RESPONSE,
        MSG_SHAPE_PORT_FORWARD_REQUEST,
        MSG_SHAPE_WINDOW_SIZE,
        MSG_SHAPE_WRITE_FILE_REQUEST,
        MSG_SHAPE_PATH_REQUEST,
        MSG_SHAPE_FILE_INFO,
        MSG_SHAPE_FILE_RESPONSE,
};

/* String values at least this long in the top-level object are cut out
 * before jansson parses (json_bigstr.h): shorter ones would not pay for
 * the scan and the copy. */
#define MSG_BIGSTR_MIN_DEFAULT 4096

/* How a decode runs, and what it did. Each caller owns its own, so
 * decoders with different settings run side by side in any thread. */
struct msg_decode_opts {
        /* Cut out strings of at least this many bytes (0: every string;
         * SIZE_MAX: none, jansson parses everything). */
        size_t bigstr_min;
        /* Refuse a repeated member, whether the keys are the same or only
         * fold to the same field. */
        bool strict;
        /* Out: incremented by each decode that took the fast path. */
        unsigned cut_hits;
};
#define MSG_DECODE_OPTS_INIT { .bigstr_min = MSG_BIGSTR_MIN_DEFAULT }

/* Decode @len bytes of JSON of @shape into @ret (the shape's struct) with
 * the options @o (NULL: MSG_DECODE_OPTS_INIT). The public decoders and
 * msg_decode_exec_request() are this with their shape and no options;
 * same contract. -EINVAL for an unknown shape. */
int msg_decode(enum msg_shape shape, struct msg_decode_opts *o, const void *data, size_t len, void *ret,
               const char **ret_why);

/* msg_decode_write_file_inplace() with options (@o may be NULL). */
int msg_decode_write_file_inplace_opts(struct msg_decode_opts *o, void *data, size_t len,
                                       struct vsock_write_file_request *ret, const uint8_t **ret_content,
                                       size_t *ret_content_len, const char **ret_why);

/* Overwrite the secrets of a request (env values, stdin) with zeros in
 * place, without freeing anything. vsock_exec_request_clear(r, true) calls
 * this before freeing. */
void msg_exec_request_wipe(struct vsock_exec_request *r);

/* Go's encoding/json field-name matching: true when the JSON object key
 * @key (UTF-8, @len bytes) selects the field named @name (ASCII) under
 * Go's case folding, which also maps U+017F (long s) to 's' and U+212A
 * (Kelvin sign) to 'k'. */
bool msg_key_matches(const char *name, const char *key, size_t len);

/* A Go map[string]string: a JSON object with the keys sorted by their
 * bytes (a later duplicate key wins), appended to @out. The extension
 * codec (ext_codec.c) writes its maps with it too. */
int msg_encode_env(struct buf *out, const struct vsock_env *env, size_t n);

/* The members of the JSON object @obj (values strings or null, null
 * read as "") into a vsock_env array sorted by key, for a Go
 * map[string]string. @pe and @pn must point to an empty array; they own
 * what is filled even when this fails midway (free with msg_env_free).
 * Returns 0, -ENOMEM, or -EINVAL with @ret_nul set false for a value that
 * is not a string, true for one that holds NUL. */
struct json_t;
int msg_env_from_json(struct json_t *obj, struct vsock_env **pe, size_t *pn, bool *ret_nul);

/* The reason, as decoders report it ("unexpected end of JSON input",
 * "JSON nested too deeply", ...), for a jansson parse error. */
struct json_error_t;
const char *msg_json_error_why(const struct json_error_t *e);

/* Release helpers shared by the decoders and the *_clear functions. All
 * accept NULL. @wipe zeroes env values / byte contents before freeing. */
void msg_strv_free(char **v, size_t n);
void msg_env_free(struct vsock_env *e, size_t n, bool wipe);
void msg_bytes_free(struct vsock_bytes *b, bool wipe);
void msg_files_free(struct vsock_file_info *f, size_t n);
