/* A tiny JSON writer that appends to a struct buf and produces exactly the
 * bytes Go 1.19's encoding/json (json.Marshal, HTML escaping on) writes:
 *
 *   - '"' and '\\' as \" and \\; \t \n \r as short escapes; every other
 *     byte below 0x20 as \u00xx in lowercase hex (so 0x08 and 0x0c are
 *     \u0008 and \u000c, the pre-Go-1.22 form);
 *   - '<' '>' '&' as \u003c \u003e \u0026, U+2028/U+2029 as \u2028/\u2029;
 *   - DEL and '/' raw, valid non-ASCII UTF-8 raw;
 *   - each byte that does not start a valid UTF-8 sequence (by Go's
 *     utf8.DecodeRuneInString rules: no overlongs, no surrogates, nothing
 *     above U+10FFFF) as \ufffd, consuming one byte at a time.
 *
 * Every function returns 0 or a negative errno from the buffer (-ENOBUFS,
 * -ENOMEM). On failure some bytes may have been appended: callers that
 * need all-or-nothing output truncate the buffer themselves. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* A JSON string (with quotes) from @len bytes of @s, which may hold any
 * bytes including NUL and invalid UTF-8. */
int json_enc_string(struct buf *b, const char *s, size_t len);

/* A JSON string from a C string; NULL is written as "". */
int json_enc_cstr(struct buf *b, const char *s);

/* An object key: the escaped string followed by ':'. */
int json_enc_key(struct buf *b, const char *s, size_t len);

int json_enc_int64(struct buf *b, int64_t v);
int json_enc_uint64(struct buf *b, uint64_t v);
int json_enc_bool(struct buf *b, bool v);
int json_enc_null(struct buf *b);

/* A []byte value: the standard padded base64 of @data in quotes. */
int json_enc_base64(struct buf *b, const void *data, size_t n);

/* Bytes copied verbatim (punctuation, pre-escaped field names). */
static inline int json_enc_raw(struct buf *b, const char *s) {
        return buf_append_str(b, s);
}

/* The length of the valid UTF-8 sequence at @p (1..4 bytes; 1 for ASCII)
 * by Go's decoding rules, or 0 if the byte at @p does not start one.
 * Stores the code point in *ret_rune when valid. @n must be >= 1. */
size_t json_utf8_seq(const uint8_t *p, size_t n, uint32_t *ret_rune);
