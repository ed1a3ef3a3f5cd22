/* SHA-256 (FIPS 180-4), incremental. Streams hash their bytes as they pass
 * (Done frames carry the digest), so the update path is the hot one: on
 * x86-64 CPUs with the SHA extensions (SHA-NI) the compression function
 * runs on them, chosen once at run time; elsewhere a portable one runs.
 * A context holds no pointers to outside memory and no resources: it may
 * be copied, moved between threads, or dropped without cleanup. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_SIZE 32
#define SHA256_BLOCK_SIZE 64
#define SHA256_HEX_SIZE 65 /* 64 lowercase hex digits and a NUL */

/* Compresses @nblocks consecutive 64-byte blocks into @h. */
typedef void (*sha256_blocks_fn)(uint32_t h[8], const uint8_t *p, size_t nblocks);

struct sha256 {
        uint32_t h[8];
        uint64_t total; /* bytes hashed so far */
        sha256_blocks_fn blocks;
        size_t fill; /* bytes waiting in @block */
        uint8_t block[SHA256_BLOCK_SIZE];
};

enum sha256_impl {
        SHA256_IMPL_AUTO,     /* the fastest this CPU runs */
        SHA256_IMPL_PORTABLE, /* plain C, any CPU */
        SHA256_IMPL_SHANI,    /* x86 SHA extensions */
};

/* Start a hash with the fastest implementation for this CPU. */
void sha256_init(struct sha256 *s);

/* Start a hash with a given implementation (tests, bench). Returns 0, or
 * -EOPNOTSUPP when this CPU (or build) cannot run it; @s is untouched then. */
int sha256_init_impl(struct sha256 *s, enum sha256_impl impl);

/* Whether this CPU runs @impl (AUTO: always). */
bool sha256_impl_supported(enum sha256_impl impl);

/* The implementation sha256_init() picks: "sha-ni" or "portable". */
const char *sha256_impl_name(void);

/* Hash @n more bytes. @data may be NULL when @n is 0. */
void sha256_update(struct sha256 *s, const void *data, size_t n);

/* Finish: write the digest to @out. @s must be initialised again before
 * further use. */
void sha256_final(struct sha256 *s, uint8_t out[SHA256_DIGEST_SIZE]);

/* One-shot digest of @n bytes. */
void sha256_digest(const void *data, size_t n, uint8_t out[SHA256_DIGEST_SIZE]);

/* Lowercase hex of a digest, NUL-terminated (the protocol's form). */
void sha256_to_hex(const uint8_t digest[SHA256_DIGEST_SIZE], char out[SHA256_HEX_SIZE]);
