/* Listening sockets: accept, check the peer, hand the connection to a new
 * session (exec service) or close it at once (ready port). */
#pragma once

#include <stdbool.h>

#include "agent/agent.h"

struct listener;

/* Listen on @addr ("vsock:any:5000", "unix:/path", "tcp:127.0.0.1:5000").
 * @ready: the ready port (accept and close, no peer checks). TCP is
 * refused on a non-loopback address unless a->insecure_tcp. On failure
 * *ret_why may point at a static explanation. */
int listener_new(struct agent *a, const char *addr, bool ready, struct listener **ret, const char **ret_why);

/* Stop accepting and close (unix socket files are removed). NULL is fine. */
void listener_free(struct listener *l);
