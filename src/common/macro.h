/* Small shared macros: cleanup attributes and ownership hand-off. */
#pragma once

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

/* The version comes from <vsock/version.h> (VSOCK_VERSION_STRING), made
 * from meson's; a private -DVSOCK_VERSION is gone, and a leftover
 * "#ifndef VSOCK_VERSION" fallback would silently say "unknown". */
#pragma GCC poison VSOCK_VERSION

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _hidden_ __attribute__((visibility("hidden")))
#define _public_ __attribute__((visibility("default")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Hand ownership out of a cleanup-managed variable. */
#define TAKE_PTR(p) ({ __typeof__(p) _t = (p); (p) = NULL; _t; })
#define TAKE_FD(fd) ({ int _t = (fd); (fd) = -1; _t; })

/* Close an fd if valid; always returns -1 so it can reset the variable. */
static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                (void) close(fd);
                errno = saved;
        }
        return -1;
}

static inline void closep(int *fd) { *fd = safe_close(*fd); }
static inline void freep(void *p) { free(*(void **) p); }

#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_free_ _cleanup_(freep)
