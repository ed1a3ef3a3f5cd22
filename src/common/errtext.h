/* errno in words, as Go spells them: the C library's strerror() text with
 * a lower-case first letter ("no such file or directory"). The agent's
 * replies follow Go's error strings, which hosts may parse. */
#pragma once

#include <stddef.h>

/* Write the text for @errnum into @buf (@size bytes, at least 1) and
 * return @buf. Thread-safe. */
const char *errno_text(int errnum, char *buf, size_t size);
