/* The extension protocol's common ground in the agent (PROTOCOL.md Part 2):
 * the limits HelloReply announces, the Hello handler, and the Error frame
 * every extension handler ends a failed request with.
 *
 * An extension handler registers with one line in session.c's handler
 * table: `[EXT_MSG_FOO] = { .start = foo_start, .reply = true, .feature =
 * "foo" }`. The session admits extension types only on a connection that
 * began with Hello, and HelloReply advertises exactly the features of the
 * table's extension entries (plus "reuse"), so a feature is announced
 * when, and only when, its handler is linked in. */
#pragma once

#include <stdint.h>

#include "common/buf.h"

struct agent;
struct session;

/* PROTOCOL.md 2.9, as HelloReply announces them. Each module enforces
 * its own with Error ELIMIT. */
#define EXT_LIMIT_MAX_PAYLOAD (16u * 1024 * 1024)
#define EXT_LIMIT_DATA_MAX (256u * 1024)
#define EXT_LIMIT_WINDOW_MAX (2u * 1024 * 1024)
#define EXT_LIMIT_LIST_PAGE_MAX 4096
#define EXT_LIMIT_LIST_REPLY_MAX (4u * 1024 * 1024)
#define EXT_LIMIT_PROCS_MAX 64
#define EXT_LIMIT_RING_DEFAULT (1u * 1024 * 1024)
#define EXT_LIMIT_RING_MAX (16u * 1024 * 1024)
#define EXT_LIMIT_RING_TOTAL_MAX (UINT64_C(64) * 1024 * 1024)
#define EXT_LIMIT_PROC_KEEP_S 600
#define EXT_LIMIT_PARTIAL_KEEP_S 3600
#define EXT_LIMIT_FWD_LISTENERS_MAX 16
#define EXT_LIMIT_FWD_PENDING_MAX 64
#define EXT_LIMIT_FWD_ATTACH_S 10

/* Request frames (the first frame of an operation): Hello is small, every
 * other extension request at most EXT_REQUEST_MAX unless its handler
 * says otherwise (session_handler.max_len). Checked at the frame header,
 * before anything is allocated. */
#define EXT_HELLO_MAX (64u * 1024)
#define EXT_REQUEST_MAX (1u * 1024 * 1024)

/* Room for a boot id ("8-4-4-4-12" hex plus NUL, with some slack). */
#define EXT_BOOT_ID_SIZE 64

/* The guest kernel's boot id, read once at agent start into @buf (what
 * HelloReply sends). When /proc does not have it, a random id of the same
 * form: it then changes with every agent start, which makes hosts
 * refresh their caches too often, never too rarely. */
void ext_boot_id_load(char buf[EXT_BOOT_ID_SIZE]);

/* Hello (64): answers HelloReply and turns extensions on for the
 * connection; synchronous (it touches no file system). */
int hello_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len);

/* Queue an Error frame (2.3). @code is the symbolic code ("ELIMIT"); NULL
 * takes the errno name of @err. @err is an errno (either sign; 0: none,
 * not sent). @op may be NULL. The message is printf-formatted. Returns 0
 * (also when the connection is gone) or -ENOMEM. */
int ext_error_send(struct session *s, const char *code, int err, const char *op, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));

/* ext_error_send(), then end the request: the connection reads the next
 * one, except after code "EPROTO" (the host broke the protocol), after
 * which it closes once the Error is written. For a handler's start() and
 * for operations alike. */
void ext_error_finish(struct session *s, const char *code, int err, const char *op, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));

/* The errno name of @err ("ENOENT"), "EIO" for one without a name. */
const char *ext_errno_name(int err);

/* ---- one request, one reply, the work on a worker thread (extjob.c) -------
 * For extension requests answered by a single frame after blocking work
 * (every file-system operation): the payload is handed to @work on a
 * worker job, which fills a struct ext_reply; back on the loop the reply
 * (or its Error) is sent and the request finished. A job still running at
 * the agent's --io-timeout is answered with Error ETIMEDOUT (the file
 * system does not answer) and left to the kernel. */

struct ext_reply {
        /* Success: the frame's type and its payload, which @work appends
         * after the room for the frame header already in it. */
        uint8_t type;
        struct buf frame;
        /* Failure (ext_reply_fail): type 0 and these. */
        const char *code;       /* NULL: the errno name of @err */
        int err;
        char message[512];
};

/* Record a failure: @err an errno (either sign), @code as for
 * ext_error_send (NULL: errno name). Any reply built so far is dropped. */
void ext_reply_fail(struct ext_reply *r, const char *code, int err, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Blocking work on a pool thread: decode @payload (@len bytes, not NUL
 * terminated; owned by the job) and fill @ret. */
typedef void (*ext_work_fn)(const uint8_t *payload, uint32_t len, struct ext_reply *ret);

/* The start() of such a request: takes @payload, submits the job, and
 * attaches it to @s. @name names the operation in logs and messages. */
int ext_job_start(struct session *s, const char *name, uint8_t *payload, uint32_t len, ext_work_fn work);
