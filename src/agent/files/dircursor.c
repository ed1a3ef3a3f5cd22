#include "agent/files/dircursor.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

void dir_cursor_format(const struct dir_cursor *c, char buf[DIR_CURSOR_MAX]) {
        snprintf(buf, DIR_CURSOR_MAX, "1.%" PRIx64 ".%" PRIx64 ".%" PRIx64 ".%" PRIx64, c->dev, c->ino, c->birth,
                 (uint64_t) c->off);
}

int dir_cursor_parse(const char *s, struct dir_cursor *ret) {
        uint64_t v[4];
        if (strncmp(s, "1.", 2) != 0)
                return -EINVAL;
        s += 2;
        for (int i = 0; i < 4; i++) {
                if (i > 0 && *s++ != '.')
                        return -EINVAL;
                int n = 0;
                uint64_t x = 0;
                while ((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')) {
                        if (++n > 16)
                                return -EINVAL;
                        x = x << 4 | (uint64_t) (*s <= '9' ? *s - '0' : *s - 'a' + 10);
                        s++;
                }
                if (n == 0)
                        return -EINVAL;
                v[i] = x;
        }
        if (*s || v[3] > INT64_MAX)
                return -EINVAL;
        *ret = (struct dir_cursor) { .dev = v[0], .ino = v[1], .birth = v[2], .off = (int64_t) v[3] };
        return 0;
}
