/* The operations a session's first frame can select. Each takes @payload
 * (malloc'd or NULL, wiped and freed by the callee) and either attaches
 * itself with session_set_op() or replies and calls session_finish().
 * A negative return means neither happened: the session just closes. */
#pragma once

#include <stdint.h>

/* Operations decode and encode the protocol's messages. */
#include "lib/msg-internal.h"

struct buf;
struct session;

int exec_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len);
int portfwd_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len);
int fileop_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len);
/* A FileResult in the making: room for the frame header at the start of
 * @out (session_send_take fills it), the JSON after it. */
int fileop_reply_begin(struct buf *out);
/* Send it and finish the session; on @rc < 0 an "agent out of memory"
 * error reply instead (the host must not wait for nothing). */
void fileop_reply(struct session *s, struct buf *out, int rc);

/* WriteFile, taken over right after a frame header announcing @len payload
 * bytes: the payload arrives as raw input and goes to disk as it comes
 * (wfstream.c). The session calls it in REQUEST state. */
int wfstream_start(struct session *s, uint32_t len);
