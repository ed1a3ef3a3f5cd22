/* TCP host names for dialing and listening (conn.c, and vsockctl's
 * port-forward listener).
 *
 * Addresses (IPv4, IPv6 with an optional %zone) and the empty host are
 * answered here without any library lookup; other names go to
 * getaddrinfo() when the program has it. The reference to getaddrinfo is
 * weak, so a statically linked program that never calls it otherwise (the
 * agent, the VM test's tools) does not carry glibc's NSS, which would load
 * the guest's shared NSS modules into a static binary; there a name is
 * VSOCK_E_RESOLVE with ENOSYS ("use a numeric address"). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct tcp_addr {
        struct sockaddr_storage sa;
        socklen_t len;
};

/* Most addresses tcp_resolve() returns. */
#define TCP_RESOLVE_MAX 16

/* The addresses of @host ("" = the wildcard when @passive, else the
 * loopback) with @port, in the order to try (for the wildcard: IPv6
 * first, which also takes IPv4, as Go listens). Returns how many (> 0), or
 * VSOCK_E_RESOLVE with ENXIO (no such host), EAGAIN (temporary failure),
 * ENOSYS (a name in a program without getaddrinfo) or another errno. */
int tcp_resolve(const char *host, uint16_t port, bool passive, struct tcp_addr *ret, size_t max);
