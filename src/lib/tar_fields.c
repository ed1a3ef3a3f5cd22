/* ustar numeric fields, checksums and entry names: the rules the writer
 * and the parser must agree on. */
#include <errno.h>
#include <string.h>

#include "tar-internal.h"
#include "tar.h"

bool tar_num_put(uint8_t *f, size_t w, uint64_t v) {
        if (v <= tar_octal_max(w)) {
                f[w - 1] = '\0';
                for (size_t i = w - 1; i-- > 0; v >>= 3)
                        f[i] = (uint8_t) ('0' + (v & 7));
                return true;
        }
        /* Base-256: a 0x80 flag byte, then the value big-endian. */
        f[0] = 0x80;
        for (size_t i = w; i-- > 1; v >>= 8)
                f[i] = (uint8_t) v;
        return false;
}

static int get_base256(const uint8_t *f, size_t w, int64_t *ret) {
        bool neg = f[0] & 0x40;
        /* Two's complement over the field, the flag bit cleared. */
        uint64_t v = (uint64_t) (f[0] & 0x3f);
        if (neg)
                v = (uint64_t) (f[0] & 0x7f) ^ 0x7f;
        for (size_t i = 1; i < w; i++) {
                if (v >> 55)
                        return -EBADMSG;
                v = v << 8 | (uint8_t) (neg ? ~f[i] : f[i]);
        }
        if (v > INT64_MAX)
                return -EBADMSG;
        /* ~x for a negative number is -x - 1. */
        *ret = neg ? -(int64_t) v - 1 : (int64_t) v;
        return 0;
}

int tar_num_get(const uint8_t *f, size_t w, int64_t *ret) {
        if (f[0] & 0x80)
                return get_base256(f, w, ret);
        size_t i = 0;
        while (i < w && f[i] == ' ')
                i++;
        uint64_t v = 0;
        size_t digits = 0;
        for (; i < w && f[i] >= '0' && f[i] <= '7'; i++, digits++) {
                if (v >> 60)
                        return -EBADMSG;
                v = v << 3 | (uint64_t) (f[i] - '0');
        }
        /* The rest is terminators only; an all-NUL field reads as 0. */
        for (; i < w; i++)
                if (f[i] != '\0' && f[i] != ' ')
                        return -EBADMSG;
        if (digits == 0 && f[0] != '\0' && f[0] != ' ')
                return -EBADMSG;
        *ret = (int64_t) v;
        return 0;
}

void tar_checksum(const uint8_t h[512], uint32_t *ret_unsigned, int32_t *ret_signed) {
        uint32_t u = 0;
        int32_t s = 0;
        for (size_t i = 0; i < 512; i++) {
                uint8_t c = i >= H_CHKSUM && i < H_CHKSUM + W_CHKSUM ? ' ' : h[i];
                u += c;
                s += (int8_t) c;
        }
        *ret_unsigned = u;
        *ret_signed = s;
}

int tar_name_clean(const char *name, size_t len, char *out) {
        size_t o = 0;

        if (len == 0 || memchr(name, '\0', len))
                return -EINVAL;
        if (name[0] == '/')
                return -EINVAL;
        for (size_t i = 0; i < len;) {
                if (name[i] == '/') {
                        i++;
                        continue;
                }
                size_t j = i;
                while (j < len && name[j] != '/')
                        j++;
                size_t n = j - i;
                const char *c = name + i;
                i = j;
                if (n == 1 && c[0] == '.')
                        continue;
                if (n == 2 && c[0] == '.' && c[1] == '.')
                        return -EINVAL;
                if (n > TAR_COMPONENT_MAX)
                        return -ENAMETOOLONG;
                if (o > 0)
                        out[o++] = '/';
                memcpy(out + o, c, n);
                o += n;
        }
        if (o == 0)
                out[o++] = '.';
        if (o > TAR_NAME_MAX)
                return -ENAMETOOLONG;
        out[o] = '\0';
        return (int) o;
}
