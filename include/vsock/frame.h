/* Framing: 1-byte type, 4-byte big-endian payload length, payload.
 *
 * Writers send header and payload in one writev(2), so concurrent writers
 * of whole frames never interleave. Readers check the announced length
 * against a limit before allocating anything. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <vsock/conn.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VSOCK_FRAME_HEADER_SIZE 5
#define VSOCK_MAX_PAYLOAD_DEFAULT (64u * 1024 * 1024)

/* Encode a frame header into @hdr. */
void vsock_frame_header(uint8_t hdr[VSOCK_FRAME_HEADER_SIZE], uint8_t type, uint32_t len);

/* Decode the header in @hdr: its type and payload length. The length
 * comes from the peer: it is checked against @max_payload here, the one
 * place every reader of this library parses a header. Returns 0, or
 * VSOCK_E_FRAME_TOO_LARGE (errno EMSGSIZE; nothing set) when it is above
 * @max_payload or cannot be held in memory with a NUL after it. */
int vsock_frame_header_parse(const uint8_t hdr[VSOCK_FRAME_HEADER_SIZE], uint32_t max_payload, uint8_t *ret_type,
                             uint32_t *ret_len);

/* Write one frame of type @type with @len payload bytes (Go's
 * WriteMessage / SendMessage), honouring the conn's write deadline and
 * cancel fd. Errors: VSOCK_E_WRITE_HEADER if
 * not even the header went out, VSOCK_E_WRITE_REQUEST if the payload was
 * cut short, -EMSGSIZE (VSOCK_E_FRAME_TOO_LARGE) for len > UINT32_MAX. */
int vsock_write_message(vsock_conn *c, uint8_t type, const void *data, size_t len);

/* Same, with the payload gathered from @iov (still one writev). */
int vsock_write_messagev(vsock_conn *c, uint8_t type, const struct iovec *iov, int iovcnt);

/* Read one frame (Go's ReadMessage). Allocates the payload (NUL-terminated for
 * convenience, not counted in *ret_len; NULL when the length is 0) after
 * checking the length against vsock_conn_max_payload(). Errors:
 * VSOCK_E_READ_RESPONSE_HEADER (EOF or error in the header; errno EPIPE
 * for a clean EOF before any byte, so callers can tell "closed"),
 * VSOCK_E_FRAME_TOO_LARGE (errno EMSGSIZE; nothing allocated, the stream
 * is then out of sync and must be closed), VSOCK_E_READ_RESPONSE_DATA. */
int vsock_read_message(vsock_conn *c, uint8_t *ret_type, uint8_t **ret_data, uint32_t *ret_len);

/* Like vsock_read_message but reads the payload into @buf of @size bytes
 * (no allocation); a payload larger than @size is VSOCK_E_FRAME_TOO_LARGE. */
int vsock_read_message_into(vsock_conn *c, uint8_t *ret_type, void *buf, size_t size, uint32_t *ret_len);

/* ---- incremental decoder for event loops ------------------------------
 *
 * Feed bytes as they arrive; frames come out whole. The decoder buffers at
 * most one frame's payload and never allocates more than the announced
 * length, which is checked against @max_payload first.
 *
 * Pass-through: a caller that would rather take a payload in pieces as
 * they arrive (output streamed on, a big upload written to disk) asks for
 * headers to be reported (vsock_decoder_report_headers). After each
 * complete header, vsock_decoder_feed() then returns
 * VSOCK_DECODER_HEADER before anything of the payload is allocated or
 * taken; the caller looks at it (vsock_decoder_header) and either lets the
 * decoder collect the payload (just feed on) or calls vsock_decoder_pass().
 * While a payload passes through, feed returns VSOCK_DECODER_PASS and
 * consumes nothing: the caller takes up to vsock_decoder_pass_left() of
 * its next bytes itself and reports them with vsock_decoder_passed(). In
 * raw mode (vsock_decoder_set_raw) there is no framing any more: every
 * byte passes through, for good (a forwarded byte stream). */

typedef struct vsock_decoder vsock_decoder;

/* vsock_decoder_feed() results besides 0 and errors. */
#define VSOCK_DECODER_FRAME 1   /* a collected frame is complete */
#define VSOCK_DECODER_HEADER 2  /* a header is complete (headers reported) */
#define VSOCK_DECODER_PASS 3    /* the next bytes pass through to the caller */

int vsock_decoder_new(uint32_t max_payload, vsock_decoder **ret);
void vsock_decoder_free(vsock_decoder *d);

/* Consume bytes from @data. Returns VSOCK_DECODER_FRAME (1) when a frame
 * is complete (stop feeding, take it with vsock_decoder_frame), 0 when all
 * @n bytes were consumed without completing one, VSOCK_DECODER_HEADER or
 * VSOCK_DECODER_PASS as above (only after vsock_decoder_report_headers or
 * vsock_decoder_set_raw), or VSOCK_E_FRAME_TOO_LARGE. *ret_used says how
 * many bytes were consumed in every case. */
int vsock_decoder_feed(vsock_decoder *d, const void *data, size_t n, size_t *ret_used);

/* Stop after each complete header (VSOCK_DECODER_HEADER), so that the
 * caller may pass its payload through. A frame with an empty payload has
 * nothing to pass: it comes out whole (VSOCK_DECODER_FRAME) without a
 * header report. Off by default. */
void vsock_decoder_report_headers(vsock_decoder *d, bool on);

/* The current frame's type and payload length: valid from its header on
 * (while it is collected, passed through, or complete). -EINVAL (nothing
 * set) between frames and in raw mode. */
int vsock_decoder_header(const vsock_decoder *d, uint8_t *ret_type, uint32_t *ret_len);

/* Right after VSOCK_DECODER_HEADER: the payload passes through instead of
 * being collected. -EINVAL at any other time. */
int vsock_decoder_pass(vsock_decoder *d);

/* Everything from now on passes through unframed (and pass_left is
 * SIZE_MAX). Only between frames: -EINVAL inside one. */
int vsock_decoder_set_raw(vsock_decoder *d);

/* How many of the next bytes pass through (0 when none do). */
size_t vsock_decoder_pass_left(const vsock_decoder *d);

/* Account for @n bytes the caller took while passing through. Returns 1
 * when they ended the payload (the decoder then waits for the next
 * header), 0 when more of it is to come (always in raw mode), -EINVAL
 * when nothing passes through or @n exceeds pass_left. */
int vsock_decoder_passed(vsock_decoder *d, size_t n);

/* Direct reads into the payload, saving a copy: once the header has been
 * fed and the decoder is collecting a payload, the rest of that payload
 * may be read straight into the decoder's buffer. Returns where the next
 * payload byte goes and sets *ret_room (may be NULL) to how many bytes are
 * still missing; returns NULL with *ret_room = 0 when no payload is being
 * collected (no header yet, a frame complete, or an empty payload): then
 * feed bytes as usual. Reading at most *ret_room bytes there never takes
 * a byte of the next frame. */
uint8_t *vsock_decoder_payload_tail(vsock_decoder *d, size_t *ret_room);

/* Account for @n bytes written at vsock_decoder_payload_tail()'s pointer
 * (n <= its room). Returns 1 when they completed the frame (take it with
 * vsock_decoder_frame as after a feed), 0 when more is missing, -EINVAL when
 * no payload is being collected or @n exceeds the room. */
int vsock_decoder_payload_commit(vsock_decoder *d, size_t n);

/* The completed frame. The payload stays owned by the decoder and is valid
 * until the next feed or reset. */
void vsock_decoder_frame(const vsock_decoder *d, uint8_t *ret_type, const uint8_t **ret_data, uint32_t *ret_len);

/* Take ownership of the completed frame's payload (malloc'd,
 * NUL-terminated; NULL for length 0). */
uint8_t *vsock_decoder_take_payload(vsock_decoder *d);

/* True between a header byte arriving and its frame completing (a payload
 * passing through included): tells a clean EOF (false) from a truncated
 * frame (true). False in raw mode. */
bool vsock_decoder_partial(const vsock_decoder *d);

/* Ready for the next frame; drops any completed payload. Keeps the limit,
 * the header reporting and raw mode. */
void vsock_decoder_reset(vsock_decoder *d);

#ifdef __cplusplus
}
#endif
