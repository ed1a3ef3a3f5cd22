/* Readiness for service managers: systemd's notification protocol (a
 * "READY=1" datagram to the unix socket named by $NOTIFY_SOCKET; a leading
 * '@' means the abstract namespace), without libsystemd. */
#pragma once

/* Send READY=1 if $NOTIFY_SOCKET is set. Returns 1 if sent, 0 when there
 * is nobody to tell, or a negative errno. */
int notify_ready(void);
