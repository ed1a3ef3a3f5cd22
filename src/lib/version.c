/* The library's own version, for programs built against other headers. */
#include "common/macro.h"
#include "vsock/version.h"

_public_ const char *vsock_version(void) {
        return VSOCK_VERSION_STRING;
}
