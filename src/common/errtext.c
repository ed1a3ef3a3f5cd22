#include "common/errtext.h"

#include <stdio.h>
#include <string.h>

const char *errno_text(int errnum, char *buf, size_t size) {
        /* GNU strerror_r may return a static string instead of filling buf. */
        const char *s = strerror_r(errnum, buf, size);
        if (s != buf)
                snprintf(buf, size, "%s", s);
        /* "Operation not permitted" -> "operation not permitted", but an
         * acronym such as "EOF" stays as it is. */
        if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z'))
                buf[0] = (char) (buf[0] - 'A' + 'a');
        return buf;
}
