#include "json_enc.h"

#include <string.h>

#include "base64.h"

/* ASCII bytes that Go copies unchanged (htmlSafeSet): everything from 0x20
 * up except '"', '\\', '<', '>' and '&'; DEL included. */
static const bool ascii_raw[128] = {
        [' '] = 1, ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['\''] = 1, ['('] = 1, [')'] = 1,
        ['*'] = 1, ['+'] = 1, [','] = 1, ['-'] = 1, ['.'] = 1, ['/'] = 1, ['0'] = 1, ['1'] = 1,
        ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
        [':'] = 1, [';'] = 1, ['='] = 1, ['?'] = 1, ['@'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1,
        ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1,
        ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1,
        ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['['] = 1,
        [']'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1,
        ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
        ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1,
        ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1, ['{'] = 1, ['|'] = 1,
        ['}'] = 1, ['~'] = 1, [0x7f] = 1,
};

static const char hexdig[] = "0123456789abcdef";

size_t json_utf8_seq(const uint8_t *p, size_t n, uint32_t *ret_rune) {
        uint8_t c = p[0];
        if (c < 0x80) {
                *ret_rune = c;
                return 1;
        }
        /* 0x80..0xc1 are continuation bytes or overlong 2-byte leads;
         * 0xf5.. would encode beyond U+10FFFF. */
        if (c < 0xc2 || c > 0xf4)
                return 0;
        if (n < 2)
                return 0;
        if (c < 0xe0) {
                if ((p[1] & 0xc0) != 0x80)
                        return 0;
                *ret_rune = (uint32_t) (c & 0x1f) << 6 | (p[1] & 0x3f);
                return 2;
        }
        /* The second byte's range excludes overlongs (e0, f0), UTF-16
         * surrogates (ed) and code points above U+10FFFF (f4). */
        uint8_t lo = 0x80, hi = 0xbf;
        if (c == 0xe0)
                lo = 0xa0;
        else if (c == 0xed)
                hi = 0x9f;
        else if (c == 0xf0)
                lo = 0x90;
        else if (c == 0xf4)
                hi = 0x8f;
        if (p[1] < lo || p[1] > hi)
                return 0;
        if (c < 0xf0) {
                if (n < 3 || (p[2] & 0xc0) != 0x80)
                        return 0;
                *ret_rune = (uint32_t) (c & 0x0f) << 12 | (uint32_t) (p[1] & 0x3f) << 6 | (p[2] & 0x3f);
                return 3;
        }
        if (n < 4 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
                return 0;
        *ret_rune = (uint32_t) (c & 0x07) << 18 | (uint32_t) (p[1] & 0x3f) << 12 | (uint32_t) (p[2] & 0x3f) << 6 |
                    (p[3] & 0x3f);
        return 4;
}

static int append_escape(struct buf *b, uint8_t c) {
        char e[6];
        size_t n = 2;
        e[0] = '\\';
        switch (c) {
        case '"':
        case '\\':
                e[1] = (char) c;
                break;
        case '\n':
                e[1] = 'n';
                break;
        case '\r':
                e[1] = 'r';
                break;
        case '\t':
                e[1] = 't';
                break;
        default:
                /* Controls, '<', '>' and '&'. */
                e[1] = 'u';
                e[2] = '0';
                e[3] = '0';
                e[4] = hexdig[c >> 4];
                e[5] = hexdig[c & 0xf];
                n = 6;
        }
        return buf_append(b, e, n);
}

int json_enc_string(struct buf *b, const char *str, size_t len) {
        const uint8_t *s = (const uint8_t *) str;
        size_t start = 0, i = 0;
        int r;

        r = buf_append_byte(b, '"');
        if (r < 0)
                return r;

        while (i < len) {
                uint8_t c = s[i];
                if (c < 0x80) {
                        if (ascii_raw[c]) {
                                i++;
                                continue;
                        }
                        r = buf_append(b, s + start, i - start);
                        if (r < 0)
                                return r;
                        r = append_escape(b, c);
                        if (r < 0)
                                return r;
                        start = ++i;
                        continue;
                }
                uint32_t rune;
                size_t n = json_utf8_seq(s + i, len - i, &rune);
                if (n > 0 && rune != 0x2028 && rune != 0x2029) {
                        i += n;
                        continue;
                }
                r = buf_append(b, s + start, i - start);
                if (r < 0)
                        return r;
                if (n == 0) {
                        r = buf_append(b, "\\ufffd", 6);
                        i++;
                } else {
                        r = buf_append(b, rune == 0x2028 ? "\\u2028" : "\\u2029", 6);
                        i += n;
                }
                if (r < 0)
                        return r;
                start = i;
        }
        r = buf_append(b, s + start, i - start);
        if (r < 0)
                return r;
        return buf_append_byte(b, '"');
}

int json_enc_cstr(struct buf *b, const char *s) {
        return s ? json_enc_string(b, s, strlen(s)) : buf_append(b, "\"\"", 2);
}

int json_enc_key(struct buf *b, const char *s, size_t len) {
        int r = json_enc_string(b, s, len);
        if (r < 0)
                return r;
        return buf_append_byte(b, ':');
}

int json_enc_uint64(struct buf *b, uint64_t v) {
        char t[20];
        size_t i = sizeof t;
        do {
                t[--i] = (char) ('0' + v % 10);
                v /= 10;
        } while (v);
        return buf_append(b, t + i, sizeof t - i);
}

int json_enc_int64(struct buf *b, int64_t v) {
        if (v >= 0)
                return json_enc_uint64(b, (uint64_t) v);
        int r = buf_append_byte(b, '-');
        if (r < 0)
                return r;
        /* Negate in unsigned arithmetic so INT64_MIN does not overflow. */
        return json_enc_uint64(b, -(uint64_t) v);
}

int json_enc_bool(struct buf *b, bool v) {
        return v ? buf_append(b, "true", 4) : buf_append(b, "false", 5);
}

int json_enc_null(struct buf *b) {
        return buf_append(b, "null", 4);
}

int json_enc_base64(struct buf *b, const void *data, size_t n) {
        int r = buf_append_byte(b, '"');
        if (r < 0)
                return r;
        r = base64_encode_append(b, data, n);
        if (r < 0)
                return r;
        return buf_append_byte(b, '"');
}
