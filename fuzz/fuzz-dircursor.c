/* ListDir's cursor parser (src/agent/files/dircursor.c), fed what a host may
 * send: whatever parses must format to a cursor that parses to the same. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/files/dircursor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0'; /* the decoder hands over NUL-free strings */
        struct dir_cursor a, b;
        if (dir_cursor_parse(s, &a) == 0) {
                char buf[DIR_CURSOR_MAX];
                dir_cursor_format(&a, buf);
                if (dir_cursor_parse(buf, &b) != 0 || memcmp(&a, &b, sizeof a) != 0)
                        abort();
        }
        free(s);
        return 0;
}
