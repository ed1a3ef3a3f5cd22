#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level level = LOG_INFO;

void log_set_level(enum log_level l) { level = l; }
enum log_level log_get_level(void) { return level; }

int log_level_parse(const char *s, enum log_level *ret) {
        static const char *const names[] = { "error", "warn", "info", "debug" };
        for (unsigned i = 0; i < 4; i++)
                if (strcmp(s, names[i]) == 0) {
                        *ret = (enum log_level) i;
                        return 0;
                }
        return -EINVAL;
}

void log_msg(enum log_level l, const char *fmt, ...) {
        static const char *const tags[] = { "error", "warn", "info", "debug" };
        if (l > level)
                return;
        int saved = errno;
        char line[1024];
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        /* UTC time of day by hand: gmtime_r would pull the time zone code
         * (and sscanf with it) into the static agent, ~60 KiB. */
        long sod = (long) (ts.tv_sec % 86400);
        if (sod < 0)
                sod += 86400;
        int n = snprintf(line, sizeof line, "%02ld:%02ld:%02ld.%03ld %s: ", sod / 3600, sod / 60 % 60, sod % 60,
                         ts.tv_nsec / 1000000, tags[l]);
        va_list ap;
        va_start(ap, fmt);
        if (n >= 0 && (size_t) n < sizeof line)
                n += vsnprintf(line + n, sizeof line - (size_t) n, fmt, ap);
        va_end(ap);
        if (n < 0)
                n = 0;
        if ((size_t) n >= sizeof line - 1)
                n = sizeof line - 2;
        line[n++] = '\n';
        /* One write per line so concurrent writers never interleave. */
        (void) !write(STDERR_FILENO, line, (size_t) n);
        errno = saved;
}
