/* A WriteFile request parsed as it arrives, so that a big file goes to
 * disk while the frame is still coming in: no buffer the size of the
 * request, and the decoding overlaps the transfer.
 *
 * Only the shape every Go host sends is streamed: {"path":STRING,
 * "content":" first (any whitespace, any escapes in the path). The parser
 * then turns the content's JSON string into bytes on the fly: escapes are
 * undone (\/ \n \r \uXXXX and the rest), newlines are skipped and base64
 * is decoded, with exactly the verdicts of Go's json + base64.StdEncoding:
 * the same requests succeed with the same bytes. What follows the content
 * (the mode, unknown members) is kept (bounded) and decoded at the end
 * together with the head, as one small JSON text with an empty content.
 * Where the shape differs, wfparse says so before any content byte, and
 * the caller buffers the request as before.
 *
 * The one deliberate difference: a member repeated after the content,
 * under the same key or one that folds to it ("Content"; Go's encoder
 * never writes either), makes the request fail, where Go's decoder would
 * let the last one win. And when a malformed request has
 * several faults, the one named may differ from the buffered decoder's.
 *
 * Pure: no I/O, no allocation beyond the head and tail buffers. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "lib/msg-internal.h"

/* Bounds on what is kept: the JSON before the content (the path may take
 * six bytes per character when escaped) and after it. */
#define WFPARSE_HEAD_MAX (64u * 1024)
#define WFPARSE_TAIL_MAX (64u * 1024)

enum wfparse_state {
        WFPARSE_HEAD,           /* before the content: nothing decoded yet */
        WFPARSE_CONTENT,        /* in the content string */
        WFPARSE_TAIL,           /* after it */
        WFPARSE_NOT_STREAMABLE, /* another shape: buffer the request instead */
        WFPARSE_FAILED,         /* malformed: why says how */
};

struct wfparse {
        enum wfparse_state state;
        struct buf head;        /* up to and including the content's opening quote */
        struct buf tail;        /* from the content's closing quote on */
        /* The head's grammar: which token is expected, and how much of a
         * key literal matched. */
        uint8_t hstate;
        uint8_t hlit;
        /* The content string. */
        uint8_t esc;            /* 0; 1 after a backslash; 2..5 in \uXXXX */
        uint16_t uval;
        uint8_t quad[4];        /* base64 characters of an unfinished quantum */
        uint8_t nquad;
        bool padded;            /* a '=' was seen: only newlines may follow the quantum */
        const char *why;        /* WFPARSE_FAILED: the decoder's words for it */
};

void wfparse_init(struct wfparse *p);
void wfparse_clear(struct wfparse *p);

/* Consume @data[0..n). Decoded content bytes are appended to @out, which
 * must have room for n / 4 * 3 + 3 more bytes; *ret_out gets their count.
 * Returns the bytes consumed: all of them, except in WFPARSE_HEAD when the
 * shape turns out different (then the consumed ones are in p->head, the
 * state is WFPARSE_NOT_STREAMABLE, and the rest is the caller's). Check
 * p->state afterwards: leaving WFPARSE_HEAD means the path can be had
 * with wfparse_head(). Returns -ENOMEM on allocation failure. */
ssize_t wfparse_feed(struct wfparse *p, const uint8_t *data, size_t n, uint8_t *out, size_t *ret_out);

/* Once past the head: the request's path, from the head decoded as a whole
 * request with an empty content. Returns 0, a negative errno (-ENOMEM), or
 * 1 with *ret_why when the head is not a valid request. */
int wfparse_head(const struct wfparse *p, struct vsock_write_file_request *ret, const char **ret_why);

/* At the end of the frame: the whole request, head and tail, with an empty
 * content (the mode, and the checks of every member). Returns as
 * wfparse_head(); also fails (1) when the content string never ended, or
 * when a member occurs twice. */
int wfparse_finish(const struct wfparse *p, struct vsock_write_file_request *ret, const char **ret_why);
