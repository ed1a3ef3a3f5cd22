/* CRC-32C (Castagnoli, the iSCSI/ext4/SCTP polynomial 0x1EDC6F41, bits
 * reflected, initial value and final XOR 0xFFFFFFFF; RFC 3720 B.4),
 * incremental. Streams may check their bytes with it instead of SHA-256
 * (PROTOCOL.md 2.3): it detects transport and storage corruption at a
 * speed the copies of a transfer do not notice. On x86-64 CPUs with SSE4.2
 * the crc32 instruction runs three interleaved streams, combined with
 * table-driven shifts; elsewhere a portable slicing-by-8 runs. Chosen once
 * at run time, as sha256.h does. A context holds no pointers to outside
 * memory beyond its function and no resources: it may be copied, moved
 * between threads, or dropped without cleanup. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRC32C_HEX_SIZE 9 /* 8 lowercase hex digits and a NUL */

/* Advances the raw CRC register @crc over @n bytes at @p (no inversion). */
typedef uint32_t (*crc32c_fn)(uint32_t crc, const uint8_t *p, size_t n);

struct crc32c {
        uint32_t crc;   /* the raw register, inverted at the ends */
        crc32c_fn fn;
};

enum crc32c_impl {
        CRC32C_IMPL_AUTO,     /* the fastest this CPU runs */
        CRC32C_IMPL_PORTABLE, /* plain C, any CPU */
        CRC32C_IMPL_SSE42,    /* the x86 crc32 instruction */
};

/* Start a checksum with the fastest implementation for this CPU. */
void crc32c_init(struct crc32c *c);

/* Start with a given implementation (tests, bench). Returns 0, or
 * -EOPNOTSUPP when this CPU (or build) cannot run it; @c is untouched then. */
int crc32c_init_impl(struct crc32c *c, enum crc32c_impl impl);

/* Whether this CPU runs @impl (AUTO: always). */
bool crc32c_impl_supported(enum crc32c_impl impl);

/* The implementation crc32c_init() picks: "sse4.2" or "portable". */
const char *crc32c_impl_name(void);

/* Add @n more bytes. @data may be NULL when @n is 0. */
void crc32c_update(struct crc32c *c, const void *data, size_t n);

/* The CRC of everything added so far; @c goes on unchanged. */
uint32_t crc32c_value(const struct crc32c *c);

/* One-shot CRC of @n bytes. */
uint32_t crc32c(const void *data, size_t n);

/* The protocol's text form: the value as 8 lowercase hex digits, most
 * significant first ("123456789" gives "e3069283"). */
void crc32c_to_hex(uint32_t value, char out[CRC32C_HEX_SIZE]);
