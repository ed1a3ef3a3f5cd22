/* Library-internal (hidden, but linkable from the CLI through the internal
 * archive): diagnostics of the hybrid-vsock handshake. */
#pragma once

/* The reply line of the most recent hybrid-vsock handshake made by the
 * calling thread, without its '\n', with non-printable bytes shown as '?'
 * and cut at 32 bytes; "" if the peer sent nothing. Meant for messages after
 * VSOCK_E_MUX_HANDSHAKE ("guest said: ERR no listener"). Thread-local, so it
 * is valid until this thread dials the next hybrid-vsock address. */
const char *mux_last_reply(void);

/* Longest reply line accepted, '\n' included. */
#define MUX_REPLY_MAX 32
