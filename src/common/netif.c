#include "common/netif.h"

#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "common/macro.h"

uint32_t netif_index(const char *name) {
        struct ifreq ifr = {};
        if (strlen(name) >= sizeof ifr.ifr_name)
                return 0;
        strcpy(ifr.ifr_name, name);
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return 0;
        int r = ioctl(fd, SIOCGIFINDEX, &ifr);
        safe_close(fd);
        return r < 0 || ifr.ifr_ifindex <= 0 ? 0 : (uint32_t) ifr.ifr_ifindex;
}
