/* Firecracker's hybrid-vsock text protocol on the host socket (docs/vsock.md
 * of Firecracker): a host process connects to the unix socket and writes
 * "CONNECT <port>\n"; once the guest accepted, it reads "OK <host port>\n"
 * and the socket carries the stream. Parsing follows what Firecracker
 * accepts: the first word in any case, the port a decimal u32 (an optional
 * '+'), blanks around, at most 32 bytes up to and including the '\n'. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define HYBRID_LINE_MAX 32

/* Host-side ports of host-initiated connections: Firecracker hands them
 * out round-robin from 2^30, so "OK 1073741824" is the first reply. */
#define HYBRID_PORT_FIRST (1u << 30)

struct hybrid_line {
        char buf[HYBRID_LINE_MAX];
        size_t len;
};

/* Feed the next byte of a connection's command. Returns 0 while the line
 * is incomplete, 1 with the port in *@ret_port once the '\n' arrived,
 * -EINVAL for a line that is not a CONNECT command, -EMSGSIZE for one
 * longer than HYBRID_LINE_MAX bytes. */
int hybrid_feed(struct hybrid_line *l, char c, uint32_t *ret_port);

/* Parse a whole line (without its '\n'). Returns 0 or -EINVAL. */
int hybrid_parse_connect(const char *line, size_t n, uint32_t *ret_port);

/* "OK <port>\n" into @buf; returns its length, or -ENOBUFS. */
int hybrid_format_ok(uint32_t port, char *buf, size_t size);

/* The port after @last in [2^30, 2^31), wrapping within the range. */
static inline uint32_t hybrid_next_port(uint32_t last) { return ((last + 1) & ~(1u << 31)) | (1u << 30); }
