#include "checksum.h"

#include <errno.h>
#include <string.h>

void checksum_init(struct checksum *c, enum checksum_alg alg) {
        c->alg = alg;
        if (alg == CHECKSUM_CRC32C)
                crc32c_init(&c->u.crc);
        else
                sha256_init(&c->u.sha);
}

void checksum_update(struct checksum *c, const void *data, size_t n) {
        if (c->alg == CHECKSUM_CRC32C)
                crc32c_update(&c->u.crc, data, n);
        else
                sha256_update(&c->u.sha, data, n);
}

void checksum_final_hex(struct checksum *c, char out[CHECKSUM_HEX_MAX]) {
        if (c->alg == CHECKSUM_CRC32C) {
                crc32c_to_hex(crc32c_value(&c->u.crc), out);
                return;
        }
        uint8_t digest[SHA256_DIGEST_SIZE];
        sha256_final(&c->u.sha, digest);
        sha256_to_hex(digest, out);
}

const char *checksum_name(enum checksum_alg alg) {
        return alg == CHECKSUM_CRC32C ? "crc32c" : "sha256";
}

int checksum_from_name(const char *name, enum checksum_alg *ret) {
        if (!name)
                return -ENOENT;
        if (strcmp(name, "sha256") == 0)
                *ret = CHECKSUM_SHA256;
        else if (strcmp(name, "crc32c") == 0)
                *ret = CHECKSUM_CRC32C;
        else
                return -ENOENT;
        return 0;
}
