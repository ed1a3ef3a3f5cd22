/* Host names to socket addresses without NSS.
 *
 * A static agent must not depend on getaddrinfo(): glibc's would load the
 * guest's NSS modules (nsswitch.conf: mdns, myhostname, ...), shared
 * objects built for whatever libc the guest has, into a binary with its
 * own libc. What a guest agent is asked to reach is almost always an
 * address, "localhost" or a name from /etc/hosts, so those are answered
 * here:
 *   1. numeric IPv4 and IPv6 (with an optional %zone, by index or name);
 *   2. built in: localhost, localhost.localdomain (127.0.0.1, then ::1),
 *      ip6-localhost, ip6-loopback (::1);
 *   3. /etc/hosts, parsed here: every entry whose name or alias equals
 *      the host (case-insensitively, one trailing dot ignored), in file
 *      order;
 *   4. only when all of that finds nothing, and only in an agent linked
 *      dynamically (-Dstatic_agent=false, which defines
 *      RESOLVE_WITH_GETADDRINFO): getaddrinfo(), i.e. DNS and
 *      nsswitch.conf through the system's own libc. The static agent has
 *      no getaddrinfo at all: no NSS, and ~120 KiB less; a name it cannot
 *      answer is "no such host".
 * Reaching step 4 is logged at debug level either way. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct resolve_addr {
        struct sockaddr_storage sa;
        socklen_t len;
};

/* Most addresses any resolve_* call returns. */
#define RESOLVE_MAX 16

/* Steps 1 and 2 above (no I/O but a zone name lookup): the addresses of
 * @host with @port (host order), at most @max (>= 2), in @ret. Returns how
 * many (> 0), or 0 when @host is not a literal or a built-in name. */
int resolve_literal(const char *host, uint16_t port, struct resolve_addr *ret, size_t max);

/* Steps 1 to 4. @hosts_path NULL means /etc/hosts (tests pass a fixture);
 * @use_fallback false skips step 4. Blocks (file I/O, maybe DNS through
 * getaddrinfo): call it off the event loop. Returns the number of
 * addresses (> 0) in @ret (at most @max), -ENOENT when the name is unknown,
 * -EAGAIN for a temporary resolver failure, or another -errno. */
int resolve_host(const char *host, uint16_t port, const char *hosts_path, bool use_fallback,
                 struct resolve_addr *ret, size_t max);
