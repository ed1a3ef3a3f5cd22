/* TCP host names without a hard dependency on NSS (tcp_resolve.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/netif.h"
#include "tcp_resolve.h"
#include "vsock/error.h"

/* Weak: resolved where the program links getaddrinfo anyway (every
 * dynamic link, libvsock.so), NULL in a static program that does not. */
#pragma weak getaddrinfo
#pragma weak freeaddrinfo

static void set_v4(struct tcp_addr *r, in_addr_t a, uint16_t port) {
        struct sockaddr_in *s = (struct sockaddr_in *) &r->sa;
        *r = (struct tcp_addr) { .len = sizeof *s };
        s->sin_family = AF_INET;
        s->sin_port = htons(port);
        s->sin_addr.s_addr = a;
}

static void set_v6(struct tcp_addr *r, const struct in6_addr *a, uint32_t scope, uint16_t port) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *) &r->sa;
        *r = (struct tcp_addr) { .len = sizeof *s };
        s->sin6_family = AF_INET6;
        s->sin6_port = htons(port);
        s->sin6_addr = *a;
        s->sin6_scope_id = scope;
}

/* An address literal: 1 and *ret, 0 when @host is not one. */
static int parse_literal(const char *host, uint16_t port, struct tcp_addr *ret) {
        struct in_addr a4;
        if (inet_pton(AF_INET, host, &a4) == 1) {
                set_v4(ret, a4.s_addr, port);
                return 1;
        }
        char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
        if (strlen(host) >= sizeof buf)
                return 0;
        strcpy(buf, host);
        char *pct = strchr(buf, '%');
        uint32_t scope = 0;
        if (pct) {
                *pct++ = '\0';
                char *end;
                unsigned long v = strtoul(pct, &end, 10);
                if (*pct && !*end)
                        scope = (uint32_t) v;
                else if (!(scope = netif_index(pct)))
                        return 0;
        }
        struct in6_addr a6;
        if (inet_pton(AF_INET6, buf, &a6) != 1)
                return 0;
        set_v6(ret, &a6, scope, port);
        return 1;
}

static int gai_errno(int gai) {
        switch (gai) {
        case EAI_SYSTEM:
                return errno ? errno : EIO;
        case EAI_AGAIN:
                return EAGAIN;
        case EAI_MEMORY:
                return ENOMEM;
        case EAI_FAMILY:
                return EAFNOSUPPORT;
        default:
                return ENXIO; /* EAI_NONAME, EAI_NODATA, EAI_FAIL: no such host */
        }
}

static int from_getaddrinfo(const char *host, uint16_t port, bool passive, struct tcp_addr *ret, size_t max) {
        char service[8];
        snprintf(service, sizeof service, "%u", port);
        struct addrinfo hints = {
                .ai_family = AF_UNSPEC,
                .ai_socktype = SOCK_STREAM,
                .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0),
        };
        struct addrinfo *res = NULL;
        errno = 0;
        int g = getaddrinfo(host, service, &hints, &res);
        if (g != 0)
                return VSOCK_ERR(VSOCK_E_RESOLVE, gai_errno(g));
        size_t n = 0;
        for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
                if (ai->ai_addrlen > sizeof ret[n].sa)
                        continue;
                ret[n] = (struct tcp_addr) { .len = ai->ai_addrlen };
                memcpy(&ret[n].sa, ai->ai_addr, ai->ai_addrlen);
                n++;
        }
        freeaddrinfo(res);
        return n > 0 ? (int) n : VSOCK_ERR(VSOCK_E_RESOLVE, ENXIO);
}

int tcp_resolve(const char *host, uint16_t port, bool passive, struct tcp_addr *ret, size_t max) {
        if (!host || !ret || max < 2)
                return VSOCK_ERR(VSOCK_E_RESOLVE, EINVAL);
        if (!host[0]) {
                if (passive) {
                        set_v6(&ret[0], &in6addr_any, 0, port);
                        set_v4(&ret[1], htonl(INADDR_ANY), port);
                } else {
                        set_v4(&ret[0], htonl(INADDR_LOOPBACK), port);
                        set_v6(&ret[1], &in6addr_loopback, 0, port);
                }
                return 2;
        }
        if (parse_literal(host, port, &ret[0]))
                return 1;
        if (!getaddrinfo)
                return VSOCK_ERR(VSOCK_E_RESOLVE, ENOSYS);
        return from_getaddrinfo(host, port, passive, ret, max);
}
