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
/* FwdConnect (PROTOCOL.md 2.8): PortForward with unix targets and Error
 * frames. */
int fwdconnect_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len);
/* Reply Ready and proxy the connected socket @fd (taken, also on failure)
 * for the rest of the session (FwdAttach). */
int portfwd_proxy_take(struct session *s, int fd);
/* Decode a forwarding request of @shape (@payload taken) into @ret; on
 * failure answer Error EPROTO (and the connection closes) and return < 0. */
struct ext_shape;
int fwd_request_decode(struct session *s, const struct ext_shape *shape, uint8_t *payload, uint32_t len, void *ret);
/* FwdListen and FwdAttach (fwdlisten.c): guest -> host forwarding. */
int fwdlisten_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len);
int fwdattach_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len);
int fileop_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len);
/* A request that is not served (@why): queue the reply its type gets on
 * failure (exec: exit 126 and "vsock-agent: @why" on stderr; files: a
 * FileResult error), without attaching an operation. */
void exec_refuse(struct session *s, uint8_t type, const char *why);
void fileop_refuse(struct session *s, uint8_t type, const char *why);
/* ProcStart, ProcList, ProcAttach, ProcControl, ProcWait (procop.c). */
int procop_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len);
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

/* Streaming files (PROTOCOL.md 2.5): FileGet (fileget.c), FilePut
 * (fileput.c). Their handlers read frames after the request. */
int fileget_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len);
int fileput_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len);
