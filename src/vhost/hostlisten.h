/* The host end of Firecracker's hybrid vsock: a unix socket (uds_path)
 * where host processes connect and name a guest port with
 * "CONNECT <port>\n". A command is read with a bound on its length and its
 * time (slow or silent clients are dropped); a complete one goes to the
 * device, a malformed one is closed without a word, as Firecracker does. */
#pragma once

#include "agent/serve/loop.h"
#include "vhost/device.h"

struct hostlisten;

/* Listen on @path (a stale socket file is replaced, a live one is not:
 * -EADDRINUSE) with mode 0600: whoever connects speaks to the guest as
 * its host. A client has @cmd_timeout_ms for its command. @path must fit "<path>_<port>" for guest->host connections
 * (else -ENAMETOOLONG). *@ret_why explains a failure. */
int hostlisten_new(struct loop *l, struct vsockdev *d, const char *path, int cmd_timeout_ms, struct hostlisten **ret,
                   const char **ret_why);
/* Stop listening (the socket file is removed), drop half-read commands. */
void hostlisten_free(struct hostlisten *h);

/* Clients without a complete command yet; more are refused. */
#define HOSTLISTEN_MAX_PENDING 128
/* The time a client has for its command, unless told otherwise. */
#define HOSTLISTEN_CMD_TIMEOUT_MS 10000
