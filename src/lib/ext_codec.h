/* The table-driven JSON codec behind the extension messages (ext_msg.h).
 * One table per Go struct of PROTOCOL.md Part 2 drives the encoder, the
 * decoder and the release function, so the three can never disagree on a
 * field's name, order, type or default.
 *
 * Encoding follows json.Marshal for the declaration (fields in table
 * order, omitempty, escaping of json_enc.h). Decoding follows
 * json.Unmarshal as msg_decode.c does (Go's key folding, unknown keys
 * ignored, null leaves scalars alone and clears slices), with the same
 * refusals: a wrong JSON type, a string holding NUL, a number that is not
 * an integer or out of the field's range, bad base64. Every refusal names
 * the field: `field "stat.mode": number out of range for uint32`. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

enum ext_kind {
        EK_STR,   /* char *: always written; never NULL after decoding */
        EK_OSTR,  /* char *, omitempty: NULL when absent or "" */
        EK_STRV,  /* char ** + size_t count at @aux */
        EK_ENV,   /* struct vsock_env * + size_t count at @aux, a JSON object */
        EK_BYTES, /* struct vsock_bytes, base64 */
        EK_BOOL,  /* bool */
        EK_I32,   /* int32_t (Go int, bounded to int32) */
        EK_I64,   /* int64_t */
        EK_U16,   /* uint16_t */
        EK_U32,   /* uint32_t */
        EK_U64,   /* uint64_t, at most INT64_MAX (the protocol's numbers fit int64) */
        EK_OBJ,   /* nested struct @sub; optional when @aux names a bool "has" flag */
        EK_OBJV,  /* array of @sub structs + size_t count at @aux */
};

#define EXT_NO_AUX SIZE_MAX

struct ext_shape;

struct ext_field {
        const char *name;
        uint8_t kind;
        bool omit;    /* omitempty: skipped when equal to @dflt (or empty) */
        size_t off;   /* the member */
        size_t aux;   /* count or "has" flag member, or EXT_NO_AUX */
        int64_t dflt; /* scalars: the value before decoding, omitted when equal */
        const struct ext_shape *sub;
};

struct ext_shape {
        const char *name; /* Go struct name, for messages and tests */
        size_t size;      /* sizeof the C struct */
        const struct ext_field *fields;
        size_t n_fields;
};

/* Append the JSON of @msg (a struct of @shape) to @out. On failure
 * (-EINVAL: a count without its array, a U64 above INT64_MAX; -ENOBUFS,
 * -ENOMEM from the buffer) @out is as it was. */
int ext_encode(const struct ext_shape *shape, const void *msg, struct buf *out);

/* Decode @len bytes of JSON into @ret (a struct of @shape; its previous
 * contents are ignored and not freed). On success *ret owns everything it
 * points to (release with ext_clear). On failure *ret is zeroed and, when
 * @ret_why is not NULL, *ret_why says why: a static string, or text in a
 * thread-local buffer valid until this thread's next decode. Errors:
 * VSOCK_ERR(VSOCK_E_DECODE, EINVAL), -ENOMEM. */
int ext_decode(const struct ext_shape *shape, const void *data, size_t len, void *ret, const char **ret_why);

/* Free everything @msg owns and zero it. NULL is fine; safe twice. */
void ext_clear(const struct ext_shape *shape, void *msg);

/* Set every field of @msg to its default, as the decoder does before it
 * reads the JSON (scalars to their @dflt, the rest empty). Owns nothing
 * afterwards; use it to start building a message to encode. */
void ext_init(const struct ext_shape *shape, void *msg);
