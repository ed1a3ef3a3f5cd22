/* libvsock: the host side of a host<->guest agent protocol for microVM
 * sandboxes, wire-compatible with the Go package vsock of
 * github.com/jingkaihe/matchlock, over AF_VSOCK, hybrid vsock (Firecracker,
 * Cloud Hypervisor), unix sockets and TCP. Include this one header for
 * everything:
 *
 *   version.h  VSOCK_VERSION_STRING (these headers), vsock_version() (the
 *              library running)
 *   error.h    every function returns >= 0 or a negative code that carries
 *              a kind and an errno; vsock_strerror()
 *   addr.h     "vsock:3:5000", "vsock-mux:/run/v.sock:5000", "unix:/path",
 *              "tcp:host:port": parse and format
 *   conn.h     dial, listen, accept, wrap an fd; deadlines, cancel fd, peer
 *   frame.h    the framing: one frame per message, blocking and incremental
 *   msg.h      message types, the exec request, Go's FileMode bits
 *   client.h   the operations: exec (batch, stream, pipe, TTY), port
 *              forwarding, files, readiness
 *
 * Conventions: functions return >= 0 on success and a negative code
 * (error.h) on failure; ret_* out-parameters are written only on success;
 * every fd the library makes is O_CLOEXEC and SIGPIPE never fires; the
 * library never logs. Structs that may grow either carry a leading size
 * (set by their INIT macro or left 0 by a zero-initialiser) or reserved
 * bytes; see each header. The shared library exports exactly these
 * headers' functions, versioned VSOCK_0.1. */
#pragma once

#include <vsock/version.h>
#include <vsock/error.h>
#include <vsock/addr.h>
#include <vsock/conn.h>
#include <vsock/frame.h>
#include <vsock/msg.h>
#include <vsock/client.h>
