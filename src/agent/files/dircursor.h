/* ListDir's cursor (PROTOCOL.md 2.4): opaque to hosts, a directory's
 * identity and a position in it to the agent. Pure: parsed from what a
 * host sends, so fuzzed (fuzz/fuzz-dircursor.c). */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct dir_cursor {
        uint64_t dev, ino;
        uint64_t birth;                 /* ns; 0 where the file system keeps none */
        int64_t off;                    /* getdents64 position, >= 0 */
};

/* Room for the longest cursor and its NUL. */
#define DIR_CURSOR_MAX 80

/* "1.DEV.INO.BIRTH.OFF", lowercase hex. */
void dir_cursor_format(const struct dir_cursor *c, char buf[DIR_CURSOR_MAX]);

/* Exactly that form (1 to 16 hex digits a field, OFF <= INT64_MAX).
 * Returns 0 and fills @ret, or -EINVAL. */
int dir_cursor_parse(const char *s, struct dir_cursor *ret);
