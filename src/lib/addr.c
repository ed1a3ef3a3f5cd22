/* Address strings <-> struct vsock_addr <-> kernel socket addresses. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "common/macro.h"
#include "conn-internal.h"
#include "vsock/addr.h"
#include "vsock/error.h"

#define BAD_ADDRESS VSOCK_ERR(VSOCK_E_BAD_ADDRESS, EINVAL)

static int fail(const char **ret_why, const char *why) {
        if (ret_why)
                *ret_why = why;
        return BAD_ADDRESS;
}

/* Decimal only: no sign, no spaces, no hex, so "vsock:3:0x10" is rejected
 * instead of silently meaning something else. */
static int parse_u32(const char *s, size_t n, uint64_t max, uint32_t *ret) {
        if (n == 0)
                return -EINVAL;
        uint64_t v = 0;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (uint64_t) (s[i] - '0');
                if (v > max)
                        return -ERANGE;
        }
        *ret = (uint32_t) v;
        return 0;
}

/* @s/@n is the port text, or NULL when the form has none. */
static int parse_port(const char *s, size_t n, uint32_t default_port, uint64_t max, uint32_t *ret,
                      const char **ret_why) {
        if (!s) {
                if (default_port == 0)
                        return fail(ret_why, "missing port");
                if (default_port > max)
                        return fail(ret_why, "port out of range");
                *ret = default_port;
                return 0;
        }
        if (n == 0)
                return fail(ret_why, "empty port");
        int r = parse_u32(s, n, max, ret);
        if (r == -ERANGE)
                return fail(ret_why, "port out of range");
        if (r < 0)
                return fail(ret_why, "port is not a decimal number");
        return 0;
}

static int parse_cid(const char *s, size_t n, uint32_t *ret, const char **ret_why) {
        static const struct {
                const char *name;
                uint32_t cid;
        } names[] = {
                { "any", VSOCK_CID_ANY },
                { "host", VSOCK_CID_HOST },
                { "local", VSOCK_CID_LOCAL },
                { "hypervisor", VSOCK_CID_HYPERVISOR },
        };
        if (n == 0) { /* vsock::PORT */
                *ret = VSOCK_CID_ANY;
                return 0;
        }
        for (size_t i = 0; i < ARRAY_SIZE(names); i++)
                if (strlen(names[i].name) == n && strncasecmp(s, names[i].name, n) == 0) {
                        *ret = names[i].cid;
                        return 0;
                }
        int r = parse_u32(s, n, UINT32_MAX, ret);
        if (r == -ERANGE)
                return fail(ret_why, "CID out of range");
        if (r < 0)
                return fail(ret_why, "bad CID (want a number or any, host, local, hypervisor)");
        return 0;
}

/* Path of a unix or hybrid-vsock socket: must fit sun_path with its NUL
 * (an abstract "@name" takes the same room: '@' stands for the leading NUL
 * and the name needs no terminator). */
static int parse_path(const char *s, size_t n, char ret[VSOCK_ADDR_PATH_MAX], const char **ret_why) {
        if (n == 0)
                return fail(ret_why, "missing socket path");
        if (n >= VSOCK_ADDR_PATH_MAX)
                return fail(ret_why, "socket path too long (max 107 bytes)");
        if (s[0] == '@' && n == 1)
                return fail(ret_why, "empty abstract socket name");
        memcpy(ret, s, n);
        ret[n] = 0;
        return 0;
}

static bool host_char_ok(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
               c == '_';
}

static int parse_tcp(const char *s, uint32_t default_port, struct vsock_addr *a, const char **ret_why) {
        const char *host, *port = NULL;
        size_t hlen, plen = 0;

        if (s[0] == '[') {
                const char *end = strchr(s, ']');
                if (!end)
                        return fail(ret_why, "unterminated [");
                host = s + 1;
                hlen = (size_t) (end - host);
                if (hlen == 0)
                        return fail(ret_why, "empty []");
                if (end[1] == ':') {
                        port = end + 2;
                        plen = strlen(port);
                } else if (end[1] != 0)
                        return fail(ret_why, "junk after ] (want [IPv6]:PORT)");
                if (hlen >= VSOCK_ADDR_HOST_MAX)
                        return fail(ret_why, "host name too long");
                /* Validate the address part; a zone (fe80::1%eth0) is passed on. */
                char tmp[VSOCK_ADDR_HOST_MAX];
                memcpy(tmp, host, hlen);
                tmp[hlen] = 0;
                char *pct = strchr(tmp, '%');
                if (pct) {
                        if (pct[1] == 0)
                                return fail(ret_why, "empty IPv6 zone");
                        *pct = 0;
                }
                struct in6_addr in6;
                if (inet_pton(AF_INET6, tmp, &in6) != 1)
                        return fail(ret_why, "bad IPv6 address in []");
        } else {
                const char *colon = strchr(s, ':');
                if (colon && strchr(colon + 1, ':'))
                        return fail(ret_why, "IPv6 address must be in brackets: tcp:[ADDR]:PORT");
                host = s;
                hlen = colon ? (size_t) (colon - s) : strlen(s);
                if (colon) {
                        port = colon + 1;
                        plen = strlen(port);
                }
                /* An empty host is only meaningful with a port: "tcp::8080"
                 * listens on every address (and dials loopback). */
                if (hlen == 0 && !colon)
                        return fail(ret_why, "missing host");
                if (hlen >= VSOCK_ADDR_HOST_MAX)
                        return fail(ret_why, "host name too long");
                for (size_t i = 0; i < hlen; i++)
                        if (!host_char_ok(host[i]))
                                return fail(ret_why, "bad character in host name");
        }

        int r = parse_port(port, plen, default_port, UINT16_MAX, &a->port, ret_why);
        if (r < 0)
                return r;
        memcpy(a->host, host, hlen);
        a->host[hlen] = 0;
        return 0;
}

_public_ int vsock_addr_parse(const char *s, uint32_t default_port, struct vsock_addr *ret, const char **ret_why) {
        static __thread char unknown_msg[96];
        struct vsock_addr a = {};
        int r;

        if (!s || !ret)
                return fail(ret_why, "no address");

        const char *colon = strchr(s, ':');
        if (!colon)
                return fail(ret_why, "missing transport (want vsock:, vsock-mux:, unix: or tcp:)");
        size_t tlen = (size_t) (colon - s);
        const char *rest = colon + 1;

        if (tlen == 5 && strncmp(s, "vsock", 5) == 0) {
                a.transport = VSOCK_TRANSPORT_VSOCK;
                const char *c2 = strchr(rest, ':');
                if (!c2 && *rest == 0)
                        return fail(ret_why, "missing CID");
                r = parse_cid(rest, c2 ? (size_t) (c2 - rest) : strlen(rest), &a.cid, ret_why);
                if (r < 0)
                        return r;
                r = parse_port(c2 ? c2 + 1 : NULL, c2 ? strlen(c2 + 1) : 0, default_port, UINT32_MAX, &a.port,
                               ret_why);
                if (r < 0)
                        return r;
        } else if (tlen == 9 && strncmp(s, "vsock-mux", 9) == 0) {
                a.transport = VSOCK_TRANSPORT_MUX;
                /* Paths may contain ':', so the port is after the last one;
                 * without any ':' the whole rest is the path. */
                const char *c2 = strrchr(rest, ':');
                r = parse_path(rest, c2 ? (size_t) (c2 - rest) : strlen(rest), a.path, ret_why);
                if (r < 0)
                        return r;
                r = parse_port(c2 ? c2 + 1 : NULL, c2 ? strlen(c2 + 1) : 0, default_port, UINT32_MAX, &a.port,
                               ret_why);
                if (r < 0)
                        return r;
        } else if (tlen == 4 && strncmp(s, "unix", 4) == 0) {
                a.transport = VSOCK_TRANSPORT_UNIX;
                r = parse_path(rest, strlen(rest), a.path, ret_why);
                if (r < 0)
                        return r;
        } else if (tlen == 3 && strncmp(s, "tcp", 3) == 0) {
                a.transport = VSOCK_TRANSPORT_TCP;
                r = parse_tcp(rest, default_port, &a, ret_why);
                if (r < 0)
                        return r;
        } else {
                /* The one message that quotes the input, so it lives in a
                 * thread-local buffer rather than in static text. */
                snprintf(unknown_msg, sizeof unknown_msg,
                         "unknown transport \"%.*s\" (want vsock, vsock-mux, unix or tcp)", (int) MIN(tlen, 24),
                         s);
                return fail(ret_why, unknown_msg);
        }

        *ret = a;
        return 0;
}

bool addr_reserved_clear(const struct vsock_addr *a) {
        for (size_t i = 0; i < ARRAY_SIZE(a->reserved); i++)
                if (a->reserved[i] != 0)
                        return false;
        return true;
}

_public_ int vsock_addr_format(const struct vsock_addr *a, char *buf, size_t size) {
        int n;

        if (!a || (!buf && size > 0) || !addr_reserved_clear(a))
                return -EINVAL;

        switch (a->transport) {
        case VSOCK_TRANSPORT_VSOCK:
                if (a->cid == VSOCK_CID_ANY)
                        n = snprintf(buf, size, "vsock:any:%u", a->port);
                else
                        n = snprintf(buf, size, "vsock:%u:%u", a->cid, a->port);
                break;
        case VSOCK_TRANSPORT_MUX:
                n = snprintf(buf, size, "vsock-mux:%.*s:%u", VSOCK_ADDR_PATH_MAX, a->path, a->port);
                break;
        case VSOCK_TRANSPORT_UNIX:
                n = snprintf(buf, size, "unix:%.*s", VSOCK_ADDR_PATH_MAX, a->path);
                break;
        case VSOCK_TRANSPORT_TCP:
                if (memchr(a->host, ':', strnlen(a->host, VSOCK_ADDR_HOST_MAX)))
                        n = snprintf(buf, size, "tcp:[%.*s]:%u", VSOCK_ADDR_HOST_MAX, a->host, a->port);
                else
                        n = snprintf(buf, size, "tcp:%.*s:%u", VSOCK_ADDR_HOST_MAX, a->host, a->port);
                break;
        default:
                return -EINVAL;
        }
        return n < 0 ? -EINVAL : n;
}

_public_ struct vsock_addr vsock_addr_vsock(uint32_t cid, uint32_t port) {
        return (struct vsock_addr) {
                .transport = VSOCK_TRANSPORT_VSOCK,
                .cid = cid,
                .port = port,
        };
}

int addr_to_sockaddr(const struct vsock_addr *a, struct sockaddr_storage *ret, socklen_t *ret_len) {
        struct sockaddr_storage ss = {};
        socklen_t len;

        switch (a->transport) {
        case VSOCK_TRANSPORT_VSOCK: {
                struct sockaddr_vm *vm = (struct sockaddr_vm *) &ss;
                vm->svm_family = AF_VSOCK;
                vm->svm_cid = a->cid;
                vm->svm_port = a->port;
                len = sizeof *vm;
                break;
        }
        case VSOCK_TRANSPORT_MUX:
        case VSOCK_TRANSPORT_UNIX: {
                struct sockaddr_un *un = (struct sockaddr_un *) &ss;
                size_t n = strnlen(a->path, sizeof a->path);
                if (n == 0 || n >= sizeof un->sun_path)
                        return -EINVAL;
                un->sun_family = AF_UNIX;
                memcpy(un->sun_path, a->path, n);
                if (a->path[0] == '@') {
                        /* Abstract: leading NUL, length counts the name only. */
                        un->sun_path[0] = 0;
                        len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n);
                } else
                        len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n + 1);
                break;
        }
        default:
                return -EAFNOSUPPORT;
        }
        *ret = ss;
        *ret_len = len;
        return 0;
}

int addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct vsock_addr *ret) {
        struct vsock_addr a = {};

        if (len < (socklen_t) sizeof(sa_family_t))
                return -EINVAL;
        switch (sa->sa_family) {
        case AF_VSOCK: {
                if (len < (socklen_t) sizeof(struct sockaddr_vm))
                        return -EINVAL;
                const struct sockaddr_vm *vm = (const struct sockaddr_vm *) sa;
                a.transport = VSOCK_TRANSPORT_VSOCK;
                a.cid = vm->svm_cid;
                a.port = vm->svm_port;
                break;
        }
        case AF_UNIX: {
                const struct sockaddr_un *un = (const struct sockaddr_un *) sa;
                size_t off = offsetof(struct sockaddr_un, sun_path);
                size_t n = len > off ? MIN((size_t) len - off, sizeof un->sun_path) : 0;
                a.transport = VSOCK_TRANSPORT_UNIX;
                if (n > 0 && un->sun_path[0] == 0) {
                        /* Abstract; the name may contain NULs in theory,
                         * we keep what fits up to the first one. */
                        a.path[0] = '@';
                        size_t m = strnlen(un->sun_path + 1, n - 1);
                        memcpy(a.path + 1, un->sun_path + 1, MIN(m, sizeof a.path - 2));
                } else if (n > 0) {
                        size_t m = strnlen(un->sun_path, n);
                        memcpy(a.path, un->sun_path, MIN(m, sizeof a.path - 1));
                }
                /* n == 0: unnamed (the usual client end); path stays "". */
                break;
        }
        case AF_INET: {
                if (len < (socklen_t) sizeof(struct sockaddr_in))
                        return -EINVAL;
                const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
                a.transport = VSOCK_TRANSPORT_TCP;
                a.port = ntohs(in->sin_port);
                if (!inet_ntop(AF_INET, &in->sin_addr, a.host, sizeof a.host))
                        return -errno;
                break;
        }
        case AF_INET6: {
                if (len < (socklen_t) sizeof(struct sockaddr_in6))
                        return -EINVAL;
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
                a.transport = VSOCK_TRANSPORT_TCP;
                a.port = ntohs(in6->sin6_port);
                if (!inet_ntop(AF_INET6, &in6->sin6_addr, a.host, sizeof a.host))
                        return -errno;
                break;
        }
        default:
                return -EAFNOSUPPORT;
        }
        *ret = a;
        return 0;
}
