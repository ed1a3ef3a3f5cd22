/* Address parser: any string either fails with a reason or parses to an
 * address whose canonical form parses back to the same address. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vsock/addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > 1024)
                return 0;
        char *s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = 0;
        struct vsock_addr a, b;
        const char *why = NULL;
        if (vsock_addr_parse(s, 5000, &a, &why) == 0) {
                char out[512];
                int n = vsock_addr_format(&a, out, sizeof out);
                if (n < 0 || (size_t) n >= sizeof out)
                        abort();
                if (vsock_addr_parse(out, 0, &b, NULL) != 0)
                        abort();
                char again[512];
                if (vsock_addr_format(&b, again, sizeof again) != n || strcmp(out, again) != 0)
                        abort();
        } else if (!why) {
                abort();
        }
        free(s);
        return 0;
}
