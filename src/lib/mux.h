/* Library-internal: limits of the hybrid-vsock handshake (mux.c, whose
 * entry point is declared in conn-internal.h). */
#pragma once

/* Longest reply line accepted, '\n' included. A caller that wants the
 * reply for its diagnostics passes a buffer of MUX_REPLY_MAX + 1 bytes. */
#define MUX_REPLY_MAX 32
