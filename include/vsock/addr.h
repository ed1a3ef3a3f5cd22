/* Addresses: one parser and formatter for every transport.
 *
 *   vsock:CID:PORT        CID is a number or any|host|local|hypervisor
 *   vsock::PORT           same as vsock:any:PORT (listening)
 *   vsock-mux:/path:PORT  Firecracker / Cloud Hypervisor hybrid vsock
 *   unix:/path            plain unix stream socket
 *   tcp:HOST:PORT         IPv4, [IPv6] or a name
 *
 * A form may omit its port (vsock:3, vsock-mux:/run/v.sock, tcp:host) when
 * the caller passes a default port. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VSOCK_CID_HYPERVISOR 0u
#define VSOCK_CID_LOCAL 1u
#define VSOCK_CID_HOST 2u
#define VSOCK_CID_ANY 0xFFFFFFFFu
#define VSOCK_PORT_ANY 0xFFFFFFFFu

/* The agent's service ports (Go's ServicePortExec, ...). */
#define VSOCK_PORT_EXEC 5000u
#define VSOCK_PORT_VFS 5001u
#define VSOCK_PORT_READY 5002u

enum vsock_transport {
        VSOCK_TRANSPORT_VSOCK = 1,
        VSOCK_TRANSPORT_MUX,   /* hybrid vsock over a unix socket */
        VSOCK_TRANSPORT_UNIX,
        VSOCK_TRANSPORT_TCP,
};

#define VSOCK_ADDR_PATH_MAX 108 /* sizeof(sockaddr_un.sun_path) */
#define VSOCK_ADDR_HOST_MAX 256

/* An address of any transport. Room to grow: @reserved must be zero (the
 * library zeroes it in every address it fills; build yours with a
 * designated initialiser or vsock_addr_vsock()), so that a later version
 * can give it meaning without changing the struct's size. An address with
 * reserved bytes set is refused with -EINVAL. */
struct vsock_addr {
        enum vsock_transport transport;
        uint32_t cid;                        /* VSOCK */
        uint32_t port;                       /* VSOCK, MUX, TCP */
        char path[VSOCK_ADDR_PATH_MAX];      /* MUX, UNIX (NUL-terminated) */
        char host[VSOCK_ADDR_HOST_MAX];      /* TCP, without brackets */
        uint64_t reserved[8];                /* zero */
};

/* Parse @s. @default_port is used when the form has no port (0: a port is
 * required). On failure returns VSOCK_ERR(VSOCK_E_BAD_ADDRESS, EINVAL) and,
 * if @ret_why is not NULL, points it at a static message saying what is
 * wrong. @ret is written only on success. */
int vsock_addr_parse(const char *s, uint32_t default_port, struct vsock_addr *ret, const char **ret_why);

/* Format @a in the canonical form accepted by vsock_addr_parse (vsock CIDs
 * as numbers, "any" for VSOCK_CID_ANY) into @buf of @size bytes (always
 * NUL-terminated when @size > 0). Returns the length that the full string
 * needs (like snprintf), VSOCK_ERR(VSOCK_E_BAD_ADDRESS, EINVAL) for an
 * unknown transport, or -EINVAL (no @a, no @buf with a @size, reserved
 * bytes set). */
int vsock_addr_format(const struct vsock_addr *a, char *buf, size_t size);

/* Build a vsock address (Go's vsock.Addr{CID, Port}). */
struct vsock_addr vsock_addr_vsock(uint32_t cid, uint32_t port);

#ifdef __cplusplus
}
#endif
