/* What the agent's streaming operations (fileget.c, fileput.c, tarop.c)
 * share: their limits, the Error frame that ends a failed stream, the
 * Stat object of an open file, and the Done frame.
 *
 * Errors after a stream started end the connection, not just the
 * operation: frames of the stream still in flight from the host (Credit,
 * Data) could not be told apart from a next request (PROTOCOL.md 2.3). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "agent/serve/ext.h"
#include "lib/ext_msg.h"
#include "common/checksum.h"

struct session;

/* PROTOCOL.md 2.9 (ext.h announces them). */
#define XFER_DATA_MAX EXT_LIMIT_DATA_MAX                /* largest Data payload, both ways */
#define XFER_WINDOW_MAX EXT_LIMIT_WINDOW_MAX            /* largest window a host may grant */
#define XFER_PUT_WINDOW (1u * 1024 * 1024)              /* the agent's own upload window */
#define XFER_PARTIAL_KEEP_S EXT_LIMIT_PARTIAL_KEEP_S    /* a resumable upload's partial file */

/* Queue an Error frame (ext_error_send(): @code, or the errno name of
 * @err) and finish the operation. With @fatal, or code EPROTO, the
 * connection ends after it (session_finish_close); else it reads the next
 * request. */
void xfer_fail(struct session *s, bool fatal, const char *code, int err, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));

/* Fill @ret from @st, @name being the path's last element (copied).
 * Returns 0 or -ENOMEM; @ret is untouched on failure. */
int xfer_stat_fill(const struct stat *st, const char *path, struct ext_stat *ret);

/* The algorithm a stream request's `checksum` names (NULL: SHA-256),
 * into *ret. Refused (PROTOCOL.md 2.3): a name past CHECKSUM_NAME_MAX
 * bytes (-EINVAL), an unknown one (-ENOSYS); @msg then says why, for the
 * Error, prefixed with @op. */
int xfer_checksum_pick(const char *op, const char *name, enum checksum_alg *ret, char *msg, size_t size);

/* Queue Done{size, the checksum of @sum (finished here) in its
 * algorithm's field, entries, skipped} (entries/skipped: 0 = absent).
 * Returns 0 or -ENOMEM. */
int xfer_send_done(struct session *s, uint64_t size, struct checksum *sum, int64_t entries, int64_t skipped);

/* Queue a JSON extension frame of @type encoded by @encode from @msg. */
int xfer_send_json(struct session *s, uint8_t type, int (*encode)(const void *msg, struct buf *out), const void *msg);

/* Data or Done where a request belongs (no stream is open): Error EPROTO,
 * and the connection closes. A session handler (.start). */
int xfer_stray_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len);
