/* The file operations of the exec service (WriteFile, ReadFile, ListFiles).
 *
 * files_serve() is a pure, blocking, thread-safe function: it decodes the
 * request payload, performs the operation and appends the FileResult JSON
 * (a FileResponse) to @out. Every failure, including a malformed request,
 * becomes the response's "error" field, so the function itself fails only
 * on allocation errors (-ENOMEM, -ENOBUFS from @out's cap). The agent may
 * run it on a worker thread so a slow disk never stalls the event loop. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define FILES_READ_MAX (16u * 1024 * 1024)

/* @type is VSOCK_MSG_WRITE_FILE, VSOCK_MSG_READ_FILE or VSOCK_MSG_LIST_FILES.
 * @payload is the request frame's, and is consumed: WriteFile decodes the
 * file's base64 in place over it, so the caller must not use it again. */
int files_serve(uint8_t type, void *payload, size_t len, struct buf *out);
