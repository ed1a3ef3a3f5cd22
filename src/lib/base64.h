/* Standard base64 (RFC 4648 section 4: '+' '/' alphabet, '=' padding), the
 * encoding Go's encoding/json uses for []byte fields.
 *
 * The decoder is exactly as strict as Go's base64.StdEncoding.Decode:
 * padding is required, '\r' and '\n' are skipped anywhere, every other
 * byte outside the alphabet is an error, and non-zero trailing bits in the
 * last quantum are accepted (StdEncoding is not Strict()). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Length of the padded encoding of @n bytes, or SIZE_MAX if it would not
 * fit in a size_t. */
size_t base64_encoded_len(size_t n);

/* Append the encoding of @data[0..n) to @out. The output space is reserved
 * once and filled in place. Returns 0, -ENOBUFS (cap) or -ENOMEM; @out is
 * unchanged on failure. */
int base64_encode_append(struct buf *out, const void *data, size_t n);

/* An upper bound of the decoded size of @len input characters (padded
 * quanta of 4 -> 3 bytes; skipped newlines only make it smaller). */
static inline size_t base64_decoded_max(size_t len) {
        return len / 4 * 3;
}

/* Whether @c is one of the 64 characters (not padding, not a newline). */
bool base64_in_alphabet(uint8_t c);

/* Decode the longest prefix of @src[0..len) made of whole quanta of
 * alphabet characters only (no padding, no newline) into @dst (room for
 * base64_decoded_max(len) bytes; may be @src). Returns the characters
 * consumed (a multiple of 4) and the bytes made in *ret_len. For a
 * streaming decoder: what stops it is for the caller to look at. */
size_t base64_decode_prefix(const void *src, size_t len, uint8_t *dst, size_t *ret_len);

/* Decode @src[0..len) into @dst, which must have room for
 * base64_decoded_max(len) bytes. Returns 0 and the decoded size in
 * *ret_len, or -EINVAL for malformed input (*ret_len untouched; @dst may
 * hold garbage). @dst may be @src: every quantum is read before its 3
 * bytes are stored, and they land before it, so decoding in place is safe
 * (a big []byte field needs no second buffer). */
int base64_decode(const void *src, size_t len, uint8_t *dst, size_t *ret_len);
