/* The canonical POSIX sh quoting of an argument vector (shquote.h). One
 * walk over the words feeds an emitter: a buffer for vsock_shell_quote(),
 * a comparison for shquote_matches(), so the two cannot disagree. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "shquote.h"
#include "vsock/client.h"

struct emitter {
        /* Append or compare @n bytes; false stops the walk. */
        bool (*put)(struct emitter *e, const char *s, size_t n);
        char *out;      /* buffer mode: where the next byte goes (NULL: count only) */
        size_t len;     /* bytes emitted so far */
        const char *cmp; /* compare mode: the rest of the line */
};

static bool walk(struct emitter *e, char *const *words, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (i > 0 && !e->put(e, " ", 1))
                        return false;
                if (!e->put(e, "'", 1))
                        return false;
                const char *w = words[i];
                for (;;) {
                        size_t run = strcspn(w, "'");
                        if (run > 0 && !e->put(e, w, run))
                                return false;
                        w += run;
                        if (*w == '\0')
                                break;
                        /* Close the quotes, a backslash-escaped quote, reopen. */
                        if (!e->put(e, "'\\''", 4))
                                return false;
                        w++;
                }
                if (!e->put(e, "'", 1))
                        return false;
        }
        return true;
}

static bool put_buffer(struct emitter *e, const char *s, size_t n) {
        if (e->len > SIZE_MAX - n)
                return false;
        if (e->out) {
                memcpy(e->out, s, n);
                e->out += n;
        }
        e->len += n;
        return true;
}

static bool put_compare(struct emitter *e, const char *s, size_t n) {
        /* strncmp stops at the line's NUL, which no word byte matches. */
        if (strncmp(e->cmp, s, n) != 0)
                return false;
        e->cmp += n;
        return true;
}

bool shquote_matches(const char *line, char *const *words, size_t n) {
        if (!line || !words || n == 0)
                return false;
        struct emitter e = { .put = put_compare, .cmp = line };
        return walk(&e, words, n) && *e.cmp == '\0';
}

_public_ int vsock_shell_quote(char *const *words, size_t n, char **ret) {
        if (!ret || (n > 0 && !words))
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!words[i])
                        return -EINVAL;
        /* Measure, then write: one allocation of the exact size. */
        struct emitter e = { .put = put_buffer };
        if (!walk(&e, words, n) || e.len == SIZE_MAX)
                return -E2BIG;
        char *s = malloc(e.len + 1);
        if (!s)
                return -ENOMEM;
        e = (struct emitter) { .put = put_buffer, .out = s };
        (void) walk(&e, words, n);
        s[e.len] = '\0';
        *ret = s;
        return 0;
}
