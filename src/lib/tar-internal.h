/* What the tar writer and parser share: the ustar header layout and its
 * numeric fields (tar_fields.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Offsets and widths of the ustar header fields. */
enum {
        H_NAME = 0, W_NAME = 100,
        H_MODE = 100, W_MODE = 8,
        H_UID = 108, W_UID = 8,
        H_GID = 116, W_GID = 8,
        H_SIZE = 124, W_SIZE = 12,
        H_MTIME = 136, W_MTIME = 12,
        H_CHKSUM = 148, W_CHKSUM = 8,
        H_TYPE = 156,
        H_LINK = 157, W_LINK = 100,
        H_MAGIC = 257, /* "ustar\0" "00" (POSIX) or "ustar " " \0" (GNU) */
        H_UNAME = 265, W_UNAME = 32,
        H_GNAME = 297, W_GNAME = 32,
        H_DEVMAJOR = 329, W_DEVMAJOR = 8,
        H_DEVMINOR = 337, W_DEVMINOR = 8,
        H_PREFIX = 345, W_PREFIX = 155,
};

/* Largest value an octal field of width @w holds (w - 1 digits and a NUL). */
static inline uint64_t tar_octal_max(size_t w) {
        return (UINT64_C(1) << (3 * (w - 1))) - 1;
}

/* Write @v into the numeric field @f of width @w: octal when it fits,
 * else base-256 (GNU). Returns true when it was written in octal. */
bool tar_num_put(uint8_t *f, size_t w, uint64_t v);

/* Read a numeric field: octal (leading spaces, digits, then NUL or space
 * to the end; all NUL reads as 0) or base-256 (first byte 0x80 positive,
 * 0xff negative). Returns 0 or -EBADMSG (bad digit, over int64). */
int tar_num_get(const uint8_t *f, size_t w, int64_t *ret);

/* The header's checksum with the checksum field taken as spaces: the
 * unsigned byte sum (POSIX) and the signed one (some old writers). */
void tar_checksum(const uint8_t h[512], uint32_t *ret_unsigned, int32_t *ret_signed);
