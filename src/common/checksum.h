/* The checksum of a stream (PROTOCOL.md 2.3): SHA-256 or CRC-32C, chosen
 * per request, behind one incremental interface so the stream engines of
 * the agent and the library carry one context whatever the algorithm. */
#pragma once

#include <stddef.h>

#include "common/crc32c.h"
#include "common/sha256.h"

enum checksum_alg {
        CHECKSUM_SHA256, /* the protocol's default: a digest users compare with sha256sum */
        CHECKSUM_CRC32C, /* transport integrity at memory speed */
};

/* The longest name a request may carry (longer ones are refused). */
#define CHECKSUM_NAME_MAX 32
/* Room for the text form of any algorithm's value (hex and a NUL). */
#define CHECKSUM_HEX_MAX SHA256_HEX_SIZE

struct checksum {
        enum checksum_alg alg;
        union {
                struct sha256 sha;
                struct crc32c crc;
        } u;
};

/* Start a checksum of @alg with the fastest implementation. */
void checksum_init(struct checksum *c, enum checksum_alg alg);

/* Add @n more bytes. @data may be NULL when @n is 0. */
void checksum_update(struct checksum *c, const void *data, size_t n);

/* Finish: the value's text form (lowercase hex: 64 digits for SHA-256, 8
 * for CRC-32C). @c must be initialised again before further use. */
void checksum_final_hex(struct checksum *c, char out[CHECKSUM_HEX_MAX]);

/* The protocol name of @alg ("sha256", "crc32c"). */
const char *checksum_name(enum checksum_alg alg);

/* The algorithm named @name: 0 and *ret set, or -ENOENT for a name this
 * code does not know (NULL included). */
int checksum_from_name(const char *name, enum checksum_alg *ret);
