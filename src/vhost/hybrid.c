#include "vhost/hybrid.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <strings.h>

/* The ASCII characters Rust's split_whitespace splits on. */
static bool blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

/* The next word of [*p, end): its start and length, or 0 at the end. */
static size_t next_word(const char **p, const char *end, const char **ret_word) {
        while (*p < end && blank(**p))
                (*p)++;
        *ret_word = *p;
        while (*p < end && !blank(**p))
                (*p)++;
        return (size_t) (*p - *ret_word);
}

int hybrid_parse_connect(const char *line, size_t n, uint32_t *ret_port) {
        const char *p = line, *end = line + n, *w;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) line[i] >= 0x80 || line[i] == '\0')
                        return -EINVAL;
        size_t len = next_word(&p, end, &w);
        if (len != 7 || strncasecmp(w, "connect", 7) != 0)
                return -EINVAL;
        len = next_word(&p, end, &w);
        if (len > 0 && *w == '+')
                w++, len--;
        if (len == 0)
                return -EINVAL;
        uint64_t v = 0;
        for (size_t i = 0; i < len; i++) {
                if (w[i] < '0' || w[i] > '9')
                        return -EINVAL;
                v = v * 10 + (uint64_t) (w[i] - '0');
                if (v > UINT32_MAX)
                        return -EINVAL;
        }
        /* Words after the port are ignored, as Firecracker does. */
        *ret_port = (uint32_t) v;
        return 0;
}

int hybrid_feed(struct hybrid_line *l, char c, uint32_t *ret_port) {
        if (c == '\n')
                return hybrid_parse_connect(l->buf, l->len, ret_port) < 0 ? -EINVAL : 1;
        /* Room for the '\n' must remain within the 32 bytes. */
        if (l->len == HYBRID_LINE_MAX - 1)
                return -EMSGSIZE;
        l->buf[l->len++] = c;
        return 0;
}

int hybrid_format_ok(uint32_t port, char *buf, size_t size) {
        int n = snprintf(buf, size, "OK %u\n", port);
        return n < 0 || (size_t) n >= size ? -ENOBUFS : n;
}
