#include "agent/files/wfparse.h"

#include <errno.h>
#include <string.h>

#include "lib/base64.h"
#include "lib/msg-internal.h"

/* The decoder's words for what goes wrong in the content (msg_decode.c). */
#define WHY_BASE64 "field \"content\": invalid base64"
#define WHY_JSON "malformed JSON"
#define WHY_TAIL "JSON after the content too long"
#define WHY_UNFINISHED "unexpected end of JSON input"

/* The head's grammar, one state per expected token. */
enum {
        H_OBJ,          /* ws, then '{' */
        H_KEY1,         /* ws, then "path" */
        H_COLON1,       /* ws, then ':' */
        H_VAL1,         /* ws, then the path string */
        H_STR,          /* inside it */
        H_STR_ESC,      /* after a backslash in it */
        H_COMMA,        /* ws, then ',' */
        H_KEY2,         /* ws, then "content" */
        H_COLON2,       /* ws, then ':' */
        H_VAL2,         /* ws, then the content's opening quote */
};

static const char key_path[] = "\"path\"", key_content[] = "\"content\"";

static bool is_ws(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

void wfparse_init(struct wfparse *p) {
        *p = (struct wfparse) {
                .state = WFPARSE_HEAD,
                .head = BUF_INIT(WFPARSE_HEAD_MAX),
                .tail = BUF_INIT(WFPARSE_TAIL_MAX),
        };
}

void wfparse_clear(struct wfparse *p) {
        buf_free(&p->head);
        buf_free(&p->tail);
        wfparse_init(p);
}

static void fail(struct wfparse *p, const char *why) {
        p->state = WFPARSE_FAILED;
        p->why = why;
}

/* A key literal, one byte at a time. Returns 1 when complete, 0 to go on,
 * -1 on a mismatch. */
static int match_literal(struct wfparse *p, const char *lit, uint8_t c) {
        if ((uint8_t) lit[p->hlit] != c)
                return -1;
        p->hlit++;
        return lit[p->hlit] == '\0' ? 1 : 0;
}

/* One byte of the head. Returns 1 when it completed the head, 0 to go on,
 * -1 when the shape is not the streamed one. */
static int head_step(struct wfparse *p, uint8_t c) {
        int m;
        switch (p->hstate) {
        case H_OBJ:
                if (is_ws(c))
                        return 0;
                if (c != '{')
                        return -1;
                p->hstate = H_KEY1;
                return 0;
        case H_KEY1:
        case H_KEY2: {
                const char *lit = p->hstate == H_KEY1 ? key_path : key_content;
                if (p->hlit == 0 && is_ws(c))
                        return 0;
                m = match_literal(p, lit, c);
                if (m < 0)
                        return -1;
                if (m > 0) {
                        p->hlit = 0;
                        p->hstate = p->hstate == H_KEY1 ? H_COLON1 : H_COLON2;
                }
                return 0;
        }
        case H_COLON1:
        case H_COLON2:
                if (is_ws(c))
                        return 0;
                if (c != ':')
                        return -1;
                p->hstate = p->hstate == H_COLON1 ? H_VAL1 : H_VAL2;
                return 0;
        case H_VAL1:
                if (is_ws(c))
                        return 0;
                if (c != '"')
                        return -1;
                p->hstate = H_STR;
                return 0;
        case H_STR:
                /* The path's validity is for the decoder (wfparse_head). */
                if (c == '\\')
                        p->hstate = H_STR_ESC;
                else if (c == '"')
                        p->hstate = H_COMMA;
                return 0;
        case H_STR_ESC:
                p->hstate = H_STR;
                return 0;
        case H_COMMA:
                if (is_ws(c))
                        return 0;
                if (c != ',')
                        return -1;
                p->hstate = H_KEY2;
                return 0;
        case H_VAL2:
                if (is_ws(c))
                        return 0;
                return c == '"' ? 1 : -1;
        default:
                return -1;
        }
}

/* One character of the content after JSON unescaping. */
static void put_char(struct wfparse *p, uint32_t c, uint8_t *out, size_t *nout) {
        /* Go's base64 decoder skips newlines anywhere. */
        if (c == '\n' || c == '\r')
                return;
        /* After a padded quantum, only newlines may follow. */
        if (p->padded && p->nquad == 0) {
                fail(p, WHY_BASE64);
                return;
        }
        if (c > 0x7f || (!base64_in_alphabet((uint8_t) c) && c != '=')) {
                fail(p, WHY_BASE64);
                return;
        }
        p->quad[p->nquad++] = (uint8_t) c;
        if (c == '=')
                p->padded = true;
        if (p->nquad < 4)
                return;
        size_t k = 0;
        if (base64_decode(p->quad, 4, out + *nout, &k) < 0) {
                fail(p, WHY_BASE64);
                return;
        }
        *nout += k;
        p->nquad = 0;
}

/* The content string from @data; returns the bytes consumed (up to and
 * including its closing quote). */
static size_t content_feed(struct wfparse *p, const uint8_t *data, size_t n, uint8_t *out, size_t *nout) {
        size_t i = 0;
        while (i < n && p->state == WFPARSE_CONTENT) {
                if (p->esc == 0 && p->nquad == 0 && !p->padded) {
                        /* The common case: whole quanta of plain base64,
                         * decoded in bulk (SIMD) straight from the input,
                         * up to whatever needs a look. */
                        size_t k = 0;
                        i += base64_decode_prefix(data + i, n - i, out + *nout, &k);
                        *nout += k;
                        if (i == n)
                                break;
                }
                uint8_t c = data[i++];
                if (p->esc == 1) {
                        p->esc = 0;
                        switch (c) {
                        case '"':
                        case '\\':
                        case '/':
                                put_char(p, c, out, nout);
                                break;
                        case 'b':
                                put_char(p, '\b', out, nout);
                                break;
                        case 'f':
                                put_char(p, '\f', out, nout);
                                break;
                        case 'n':
                                put_char(p, '\n', out, nout);
                                break;
                        case 'r':
                                put_char(p, '\r', out, nout);
                                break;
                        case 't':
                                put_char(p, '\t', out, nout);
                                break;
                        case 'u':
                                p->esc = 2;
                                p->uval = 0;
                                break;
                        default:
                                fail(p, WHY_JSON);
                        }
                        continue;
                }
                if (p->esc >= 2) {
                        int v = c >= '0' && c <= '9'   ? c - '0'
                                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                       : -1;
                        if (v < 0) {
                                fail(p, WHY_JSON);
                                break;
                        }
                        p->uval = (uint16_t) (p->uval << 4 | (unsigned) v);
                        if (++p->esc == 6) {
                                p->esc = 0;
                                /* Not ASCII (a surrogate included): not
                                 * base64 either way. */
                                put_char(p, p->uval, out, nout);
                        }
                        continue;
                }
                if (c == '"') {
                        /* The end: padding is mandatory, so no partial
                         * quantum may be left. */
                        if (p->nquad != 0) {
                                fail(p, WHY_BASE64);
                                break;
                        }
                        p->state = WFPARSE_TAIL;
                        if (buf_append_byte(&p->tail, c) < 0)
                                fail(p, WHY_TAIL);
                        break;
                }
                if (c == '\\') {
                        p->esc = 1;
                        continue;
                }
                if (c < 0x20) {
                        fail(p, WHY_JSON); /* a raw control character */
                        break;
                }
                put_char(p, c, out, nout);
        }
        return p->state == WFPARSE_FAILED ? n : i;
}

ssize_t wfparse_feed(struct wfparse *p, const uint8_t *data, size_t n, uint8_t *out, size_t *ret_out) {
        size_t i = 0, nout = 0;
        while (i < n) {
                switch (p->state) {
                case WFPARSE_HEAD: {
                        uint8_t c = data[i++];
                        int r = buf_append_byte(&p->head, c);
                        if (r == -ENOBUFS) {
                                p->state = WFPARSE_NOT_STREAMABLE;
                                i--; /* not in the head: the caller's */
                                *ret_out = nout;
                                return (ssize_t) i;
                        }
                        if (r < 0)
                                return r;
                        r = head_step(p, c);
                        if (r < 0) {
                                p->state = WFPARSE_NOT_STREAMABLE;
                                *ret_out = nout;
                                return (ssize_t) i;
                        }
                        if (r > 0)
                                p->state = WFPARSE_CONTENT;
                        break;
                }
                case WFPARSE_CONTENT:
                        i += content_feed(p, data + i, n - i, out, &nout);
                        break;
                case WFPARSE_TAIL:
                        if (buf_append(&p->tail, data + i, n - i) < 0)
                                fail(p, WHY_TAIL);
                        i = n;
                        break;
                case WFPARSE_NOT_STREAMABLE:
                        *ret_out = nout;
                        return (ssize_t) i;
                case WFPARSE_FAILED:
                        i = n;
                        break;
                }
        }
        *ret_out = nout;
        return (ssize_t) i;
}

/* Decode @a then @b as one request text. */
static int decode_joined(const struct buf *a, const void *b, size_t blen, bool strict,
                         struct vsock_write_file_request *ret, const char **ret_why) {
        struct buf t = BUF_INIT(0);
        int r = buf_append(&t, buf_head(a), buf_size(a));
        if (r >= 0)
                r = buf_append(&t, b, blen);
        if (r < 0) {
                buf_free(&t);
                return r;
        }
        r = strict ? msg_decode_write_file_strict(buf_head(&t), buf_size(&t), ret, ret_why)
                   : vsock_write_file_request_decode(buf_head(&t), buf_size(&t), ret, ret_why);
        buf_free(&t);
        if (r == -ENOMEM)
                return r;
        return r < 0 ? 1 : 0;
}

int wfparse_head(const struct wfparse *p, struct vsock_write_file_request *ret, const char **ret_why) {
        if (p->state == WFPARSE_HEAD || p->state == WFPARSE_NOT_STREAMABLE) {
                *ret_why = WHY_UNFINISHED;
                return 1;
        }
        /* The head ends with the content's opening quote. */
        return decode_joined(&p->head, "\"}", 2, false, ret, ret_why);
}

int wfparse_finish(const struct wfparse *p, struct vsock_write_file_request *ret, const char **ret_why) {
        if (p->state == WFPARSE_FAILED) {
                *ret_why = p->why;
                return 1;
        }
        if (p->state != WFPARSE_TAIL) {
                *ret_why = WHY_UNFINISHED;
                return 1;
        }
        /* The tail starts with the content's closing quote. */
        return decode_joined(&p->head, buf_head(&p->tail), buf_size(&p->tail), true, ret, ret_why);
}
