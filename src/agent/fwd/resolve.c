#include "agent/fwd/resolve.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#ifdef RESOLVE_WITH_GETADDRINFO
#include <netdb.h>
#endif
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/netif.h"

/* A hosts file bigger than this is not a hosts file. */
#define HOSTS_MAX (1u * 1024 * 1024)

static void set_v4(struct resolve_addr *r, const struct in_addr *a, uint16_t port) {
        struct sockaddr_in *in4 = (struct sockaddr_in *) &r->sa;
        memset(r, 0, sizeof *r);
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        in4->sin_addr = *a;
        r->len = sizeof *in4;
}

static void set_v6(struct resolve_addr *r, const struct in6_addr *a, uint32_t scope, uint16_t port) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &r->sa;
        memset(r, 0, sizeof *r);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        in6->sin6_addr = *a;
        in6->sin6_scope_id = scope;
        r->len = sizeof *in6;
}

/* One numeric address; false when @s is not one. */
static bool parse_numeric(const char *s, uint16_t port, struct resolve_addr *ret) {
        struct in_addr a4;
        struct in6_addr a6;
        if (inet_pton(AF_INET, s, &a4) == 1) {
                set_v4(ret, &a4, port);
                return true;
        }
        const char *pct = strchr(s, '%');
        char buf[INET6_ADDRSTRLEN];
        size_t n = pct ? (size_t) (pct - s) : strlen(s);
        if (n >= sizeof buf)
                return false;
        memcpy(buf, s, n);
        buf[n] = '\0';
        if (inet_pton(AF_INET6, buf, &a6) != 1)
                return false;
        uint32_t scope = 0;
        if (pct) {
                const char *z = pct + 1;
                char *end;
                errno = 0;
                unsigned long v = strtoul(z, &end, 10);
                if (*z && isdigit((unsigned char) *z) && !*end && !errno && v <= UINT32_MAX)
                        scope = (uint32_t) v;
                else if (!*z || !(scope = netif_index(z)))
                        return false;
        }
        set_v6(ret, &a6, scope, port);
        return true;
}

/* @a equals @b ignoring case and one trailing dot on either. */
static bool name_eq(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);
        if (la > 0 && a[la - 1] == '.')
                la--;
        if (lb > 0 && b[lb - 1] == '.')
                lb--;
        return la == lb && la > 0 && strncasecmp(a, b, la) == 0;
}

int resolve_literal(const char *host, uint16_t port, struct resolve_addr *ret, size_t max) {
        if (!host || max < 2)
                return 0;
        if (parse_numeric(host, port, &ret[0]))
                return 1;
        if (name_eq(host, "localhost") || name_eq(host, "localhost.localdomain")) {
                struct in_addr lo4 = { htonl(INADDR_LOOPBACK) };
                set_v4(&ret[0], &lo4, port);
                set_v6(&ret[1], &in6addr_loopback, 0, port);
                return 2;
        }
        if (name_eq(host, "ip6-localhost") || name_eq(host, "ip6-loopback")) {
                set_v6(&ret[0], &in6addr_loopback, 0, port);
                return 1;
        }
        return 0;
}

static bool already(const struct resolve_addr *v, size_t n, const struct resolve_addr *x) {
        for (size_t i = 0; i < n; i++)
                if (v[i].len == x->len && memcmp(&v[i].sa, &x->sa, x->len) == 0)
                        return true;
        return false;
}

/* Reads @path whole (NUL-terminated). */
static int read_small_file(const char *path, char **ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        size_t cap = 4096, n = 0;
        _cleanup_free_ char *buf = malloc(cap + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                if (n == cap) {
                        if (cap >= HOSTS_MAX)
                                return -EFBIG;
                        char *nb = realloc(buf, cap * 2 + 1);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                        cap *= 2;
                }
                ssize_t k = io_read_once(fd, buf + n, cap - n);
                if (k < 0)
                        return (int) k;
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        buf[n] = '\0';
        *ret = TAKE_PTR(buf);
        return 0;
}

/* Step 3: "ADDRESS NAME [ALIAS...]" lines, '#' to the end of a line is a
 * comment. Lines that do not parse are skipped, as libc does. */
static int from_hosts(const char *host, uint16_t port, const char *path, struct resolve_addr *ret, size_t max) {
        _cleanup_free_ char *text = NULL;
        int r = read_small_file(path, &text);
        if (r < 0)
                return r;
        size_t n = 0;
        char *save_line = NULL;
        for (char *line = strtok_r(text, "\n", &save_line); line && n < max;
             line = strtok_r(NULL, "\n", &save_line)) {
                char *hash = strchr(line, '#');
                if (hash)
                        *hash = '\0';
                char *save = NULL;
                const char *addr = strtok_r(line, " \t\r\f\v", &save);
                if (!addr)
                        continue;
                bool match = false;
                for (const char *name = strtok_r(NULL, " \t\r\f\v", &save); name && !match;
                     name = strtok_r(NULL, " \t\r\f\v", &save))
                        match = name_eq(name, host);
                struct resolve_addr a;
                if (match && parse_numeric(addr, port, &a) && !already(ret, n, &a))
                        ret[n++] = a;
        }
        return (int) n;
}

/* Step 4, in a dynamically linked agent only (see resolve.h). */
#ifdef RESOLVE_WITH_GETADDRINFO
static int from_getaddrinfo(const char *host, uint16_t port, struct resolve_addr *ret, size_t max) {
        log_debug("resolve %s: not numeric, not built in, not in the hosts file; trying getaddrinfo (NSS)", host);
        char ports[8];
        snprintf(ports, sizeof ports, "%u", port);
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC, .ai_flags = AI_NUMERICSERV };
        struct addrinfo *res = NULL;
        errno = 0;
        int g = getaddrinfo(host, ports, &hints, &res);
        switch (g) {
        case 0:
                break;
        case EAI_NONAME:
#ifdef EAI_NODATA
        case EAI_NODATA:
#endif
                return -ENOENT;
        case EAI_AGAIN:
                return -EAGAIN;
        case EAI_MEMORY:
                return -ENOMEM;
        case EAI_SYSTEM:
                return errno ? -errno : -EIO;
        default:
                return -EIO;
        }
        size_t n = 0;
        for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
                if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) || ai->ai_addrlen > sizeof ret[n].sa)
                        continue;
                struct resolve_addr a = { .len = ai->ai_addrlen };
                memcpy(&a.sa, ai->ai_addr, ai->ai_addrlen);
                if (!already(ret, n, &a))
                        ret[n++] = a;
        }
        freeaddrinfo(res);
        return n > 0 ? (int) n : -ENOENT;
}
#else
static int from_getaddrinfo(const char *host, uint16_t port, struct resolve_addr *ret, size_t max) {
        log_debug("resolve %s: not numeric, not built in, not in the hosts file; no getaddrinfo in this "
                  "(static) agent, so no DNS",
                  host);
        return -ENOENT;
}
#endif

int resolve_host(const char *host, uint16_t port, const char *hosts_path, bool use_fallback,
                 struct resolve_addr *ret, size_t max) {
        if (!host || !host[0] || max < 2)
                return -EINVAL;
        int n = resolve_literal(host, port, ret, max);
        if (n > 0)
                return n;
        n = from_hosts(host, port, hosts_path ? hosts_path : "/etc/hosts", ret, max);
        if (n > 0)
                return n;
        if (n < 0 && n != -ENOENT)
                log_debug("resolve %s: %s: %s", host, hosts_path ? hosts_path : "/etc/hosts", strerror(-n));
        return use_fallback ? from_getaddrinfo(host, port, ret, max) : -ENOENT;
}
