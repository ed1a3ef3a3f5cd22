#include "agent/exec/oomkill.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/io.h"
#include "common/macro.h"

/* Both files are a few lines; larger means something else. */
#define SMALL_FILE_MAX 4096

static int read_small(const char *path, char *buf, size_t size, size_t *ret_len) {
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        ssize_t n = io_read_full(fd, buf, size - 1, 0, -1);
        safe_close(fd);
        if (n < 0)
                return (int) n;
        buf[n] = '\0';
        *ret_len = (size_t) n;
        return 0;
}

int oomkill_parse_events(const char *text, size_t len, uint64_t *ret) {
        static const char key[] = "oom_kill ";
        size_t i = 0;
        while (i < len) {
                const char *line = text + i;
                const char *nl = memchr(line, '\n', len - i);
                size_t ll = nl ? (size_t) (nl - line) : len - i;
                if (ll >= sizeof key - 1 && memcmp(line, key, sizeof key - 1) == 0) {
                        uint64_t v = 0;
                        size_t j = sizeof key - 1;
                        if (j == ll)
                                return -EINVAL;
                        for (; j < ll; j++) {
                                char c = line[j];
                                if (c < '0' || c > '9' || v > (UINT64_MAX - 9) / 10)
                                        return -EINVAL;
                                v = v * 10 + (uint64_t) (c - '0');
                        }
                        *ret = v;
                        return 0;
                }
                i += ll + 1;
        }
        return -ENOENT;
}

int oomkill_count(const char *events_path, uint64_t *ret) {
        char buf[SMALL_FILE_MAX];
        char path[SMALL_FILE_MAX + 64];
        size_t len;
        int r;
        if (!events_path) {
                /* cgroup v2: one line "0::/the/path". */
                r = read_small("/proc/self/cgroup", buf, sizeof buf, &len);
                if (r < 0)
                        return r;
                const char *v2 = strstr(buf, "0::/");
                if (!v2 || (v2 != buf && v2[-1] != '\n'))
                        return -ENOENT;
                v2 += 3;
                size_t plen = strcspn(v2, "\n");
                if (snprintf(path, sizeof path, "/sys/fs/cgroup%.*s/memory.events", (int) plen, v2) >=
                    (int) sizeof path)
                        return -ENAMETOOLONG;
                events_path = path;
        }
        r = read_small(events_path, buf, sizeof buf, &len);
        if (r < 0)
                return r;
        return oomkill_parse_events(buf, len, ret);
}
