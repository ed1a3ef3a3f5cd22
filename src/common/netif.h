/* Network interface names for IPv6 scope ids ("fe80::1%eth0"), one ioctl
 * instead of if_nametoindex's netlink walk; the agent's resolver and the
 * library's TCP addresses share it. */
#pragma once

#include <stdint.h>

/* The index of interface @name, or 0 when there is none (as
 * if_nametoindex; errno is not meaningful). */
uint32_t netif_index(const char *name);
