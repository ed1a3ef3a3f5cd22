#include "fake-agent.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <vsock/frame.h>

void fa_fail(struct fake_agent *fa, const char *fmt, ...) {
        if (fa->failure[0])
                return; /* keep the first: later ones are consequences */
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(fa->failure, sizeof fa->failure, fmt, ap);
        va_end(ap);
}

static bool wait_fd(struct fake_agent *fa, short events, const char *what) {
        struct pollfd p = { .fd = fa->fd, .events = events };
        for (;;) {
                int r = poll(&p, 1, FA_TIMEOUT_MS);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0) {
                        fa_fail(fa, "agent: timed out waiting to %s", what);
                        return false;
                }
                return true;
        }
}

/* 1 = all read, 0 = EOF first (*ret_got says how much), false on errors. */
static int read_exact(struct fake_agent *fa, void *buf, size_t n, size_t *ret_got) {
        size_t got = 0;
        while (got < n) {
                if (!wait_fd(fa, POLLIN, "read"))
                        return -1;
                ssize_t r = read(fa->fd, (char *) buf + got, n - got);
                if (r < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (r < 0) {
                        if (errno == ECONNRESET)
                                break;
                        fa_fail(fa, "agent: read: %s", strerror(errno));
                        return -1;
                }
                if (r == 0)
                        break;
                got += (size_t) r;
        }
        if (ret_got)
                *ret_got = got;
        return got == n ? 1 : 0;
}

bool fa_read_raw(struct fake_agent *fa, void *buf, size_t n) {
        size_t got;
        int r = read_exact(fa, buf, n, &got);
        if (r == 0)
                fa_fail(fa, "agent: EOF after %zu of %zu raw bytes", got, n);
        return r == 1;
}

bool fa_read_frame(struct fake_agent *fa, uint8_t *ret_type, uint8_t **ret_payload, uint32_t *ret_len) {
        uint8_t hdr[5];
        size_t got;
        int r = read_exact(fa, hdr, sizeof hdr, &got);
        if (r < 0)
                return false;
        if (r == 0) {
                fa_fail(fa, "agent: EOF (%zu header bytes) while expecting a frame", got);
                return false;
        }
        uint32_t len;
        if (vsock_frame_header_parse(hdr, 64u * 1024 * 1024, NULL, &len) < 0) {
                fa_fail(fa, "agent: client sent a frame above 64 MiB");
                return false;
        }
        uint8_t *p = malloc(len + 1u);
        if (!p) {
                fa_fail(fa, "agent: out of memory");
                return false;
        }
        if (!fa_read_raw(fa, p, len)) {
                free(p);
                return false;
        }
        p[len] = 0;
        *ret_type = hdr[0];
        *ret_len = len;
        if (ret_payload)
                *ret_payload = p;
        else
                free(p);
        return true;
}

static void hex_dump(char *out, size_t size, const uint8_t *d, size_t n) {
        size_t o = 0;
        for (size_t i = 0; i < n && o + 3 < size; i++)
                o += (size_t) snprintf(out + o, size - o, "%02x", d[i]);
        if (o < size)
                out[o] = 0;
}

bool fa_expect_frame(struct fake_agent *fa, uint8_t type, const void *payload, size_t len) {
        uint8_t t;
        uint8_t *p = NULL;
        uint32_t n;
        if (!fa_read_frame(fa, &t, &p, &n))
                return false;
        bool ok = t == type && n == len && (len == 0 || memcmp(p, payload, len) == 0);
        if (!ok) {
                char got[200], want[200];
                hex_dump(got, sizeof got, p, n);
                hex_dump(want, sizeof want, payload, len);
                fa_fail(fa, "agent: got frame type %u len %u [%s], expected type %u len %zu [%s]", t, n, got, type,
                        len, want);
        }
        free(p);
        return ok;
}

ssize_t hex_decode(const char *hex, uint8_t **ret) {
        size_t n = strlen(hex);
        if (n % 2)
                return -1;
        uint8_t *d = malloc(n / 2 + 1);
        if (!d)
                return -1;
        for (size_t i = 0; i < n / 2; i++) {
                unsigned v;
                if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
                        free(d);
                        return -1;
                }
                d[i] = (uint8_t) v;
        }
        *ret = d;
        return (ssize_t) (n / 2);
}

bool fa_expect_frame_hex(struct fake_agent *fa, const char *hex) {
        uint8_t *d;
        ssize_t n = hex_decode(hex, &d);
        if (n < 5) {
                fa_fail(fa, "agent: bad hex in test");
                return false;
        }
        bool ok = fa_expect_frame(fa, d[0], d + 5, (size_t) n - 5);
        free(d);
        return ok;
}

bool fa_send_raw(struct fake_agent *fa, const void *data, size_t len) {
        size_t done = 0;
        while (done < len) {
                if (!wait_fd(fa, POLLOUT, "write"))
                        return false;
                ssize_t r = send(fa->fd, (const char *) data + done, len - done, MSG_NOSIGNAL);
                if (r < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (r < 0) {
                        fa_fail(fa, "agent: send: %s", strerror(errno));
                        return false;
                }
                done += (size_t) r;
        }
        return true;
}

bool fa_send(struct fake_agent *fa, uint8_t type, const void *payload, size_t len) {
        uint8_t *f = malloc(len + 5);
        if (!f) {
                fa_fail(fa, "agent: out of memory");
                return false;
        }
        f[0] = type;
        f[1] = (uint8_t) (len >> 24);
        f[2] = (uint8_t) (len >> 16);
        f[3] = (uint8_t) (len >> 8);
        f[4] = (uint8_t) len;
        if (len)
                memcpy(f + 5, payload, len);
        bool ok = fa_send_raw(fa, f, len + 5);
        free(f);
        return ok;
}

bool fa_send_hex(struct fake_agent *fa, const char *hex) {
        uint8_t *d;
        ssize_t n = hex_decode(hex, &d);
        if (n < 0) {
                fa_fail(fa, "agent: bad hex in test");
                return false;
        }
        bool ok = fa_send_raw(fa, d, (size_t) n);
        free(d);
        return ok;
}

bool fa_expect_eof(struct fake_agent *fa) {
        char buf[4096];
        for (;;) {
                if (!wait_fd(fa, POLLIN, "see EOF"))
                        return false;
                ssize_t r = read(fa->fd, buf, sizeof buf);
                if (r < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (r == 0 || (r < 0 && errno == ECONNRESET)) {
                        fa->saw_eof = true;
                        return true;
                }
                if (r < 0) {
                        fa_fail(fa, "agent: read: %s", strerror(errno));
                        return false;
                }
        }
}

static void *agent_main(void *p) {
        struct fake_agent *fa = p;
        if (fa->listen_fd < 0 && fa->path[0]) {
                struct timespec ts = { .tv_sec = fa->accept_delay_ms / 1000,
                                       .tv_nsec = (long) (fa->accept_delay_ms % 1000) * 1000000L };
                nanosleep(&ts, NULL);
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                strcpy(sa.sun_path, fa->path);
                int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (l < 0 || bind(l, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(l, 8) < 0) {
                        fa_fail(fa, "agent: listen on %s: %s", fa->path, strerror(errno));
                        if (l >= 0)
                                close(l);
                        return NULL;
                }
                fa->listen_fd = l;
        }
        if (fa->listen_fd >= 0) {
                struct pollfd pl = { .fd = fa->listen_fd, .events = POLLIN };
                if (poll(&pl, 1, FA_TIMEOUT_MS) <= 0) {
                        fa_fail(fa, "agent: nobody connected");
                        return NULL;
                }
                fa->fd = accept4(fa->listen_fd, NULL, NULL, SOCK_CLOEXEC);
                if (fa->fd < 0) {
                        fa_fail(fa, "agent: accept: %s", strerror(errno));
                        return NULL;
                }
        }
        if (fa->script)
                fa->script(fa);
        close(fa->fd);
        fa->fd = -1;
        return NULL;
}

int fake_agent_start_pair(struct fake_agent *fa, fake_script script, void *arg, vsock_conn **ret_client) {
        int sv[2];
        *fa = (struct fake_agent) { .fd = -1, .listen_fd = -1, .script = script, .arg = arg };
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        int r = vsock_conn_from_fd(sv[1], ret_client);
        if (r < 0) {
                close(sv[0]);
                close(sv[1]);
                return r;
        }
        fa->fd = sv[0];
        r = pthread_create(&fa->thread, NULL, agent_main, fa);
        if (r) {
                close(sv[0]);
                vsock_conn_close(*ret_client);
                *ret_client = NULL;
                return -r;
        }
        return 0;
}

int fake_agent_start_unix(struct fake_agent *fa, const char *path, int accept_delay_ms, fake_script script,
                          void *arg) {
        *fa = (struct fake_agent) {
                .fd = -1, .listen_fd = -1, .accept_delay_ms = accept_delay_ms, .script = script, .arg = arg,
        };
        if (strlen(path) >= sizeof fa->path)
                return -ENAMETOOLONG;
        strcpy(fa->path, path);
        if (accept_delay_ms == 0) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                strcpy(sa.sun_path, path);
                int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (l < 0)
                        return -errno;
                if (bind(l, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(l, 8) < 0) {
                        int r = -errno;
                        close(l);
                        return r;
                }
                fa->listen_fd = l;
        }
        int r = pthread_create(&fa->thread, NULL, agent_main, fa);
        return -r;
}

const char *fake_agent_join(struct fake_agent *fa) {
        pthread_join(fa->thread, NULL);
        if (fa->fd >= 0)
                close(fa->fd);
        fa->fd = -1;
        if (fa->listen_fd >= 0) {
                close(fa->listen_fd);
                unlink(fa->path);
        }
        fa->listen_fd = -1;
        return fa->failure[0] ? fa->failure : NULL;
}
