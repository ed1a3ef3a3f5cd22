/* Reaching the agent: every subcommand dials through here, so connection
 * failures read the same everywhere: what failed, on which transport, and
 * what to do about it. Also the check that an address is served by an
 * agent at all. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vsock/vsock.h>

/* Dial @addr (@default_port where it names none), bounded by
 * --connect-timeout (connect and hybrid vsock handshake) and cancelled by
 * the cancel fd (cancel.h). On failure prints "vsockctl: @cmd: cannot
 * connect to ADDR: why (hint)" (nothing when cancelled by a signal) and
 * returns the library's code. */
int agent_dial(const char *addr, uint32_t default_port, const char *cmd, vsock_conn **ret);

/* Whether @rc is agent_dial()'s (already reported) failure to connect;
 * a signal's cancellation is not one. */
bool agent_dial_failed(int rc);

/* Does an agent answer at @addr? Opens a port forward to port 0, which
 * every agent refuses at once without touching anything (ours and Go's
 * say "invalid remote port 0"), within @timeout_ns (0: none). Returns 0
 * if the peer answered in the protocol; otherwise a negative code and
 * why in @why (e.g. "no reply within 5s", "frame too large": an HTTP
 * server). Quiet. */
int agent_check(const char *addr, int64_t timeout_ns, char *why, size_t why_size);

/* The same check on a connection made with agent_dial(), bounded by
 * --reply-timeout, reporting every failure ("vsockctl: @cmd: ADDR does not
 * answer as an agent: why"). For port-forward, which would otherwise
 * start serving an address where nothing can be forwarded. */
int agent_verify(const char *addr, const char *cmd);

/* Report a failed operation after the connection was made: "vsockctl:
 * @cmd: ADDR: <error>[: <agent's words>]", with a hint for timeouts. */
void agent_report(int rc, const struct vsock_call *call, const char *cmd, const char *addr);

/* The absolute deadline for a request that expects its answer within
 * --reply-timeout from now (0: none). */
int64_t agent_reply_deadline(void);
