#include "agent/exec/pty.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "common/macro.h"

int pty_open(uint16_t rows, uint16_t cols, int *ret_master, int *ret_slave) {
        _cleanup_close_ int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
        if (master < 0)
                return -errno;
        if (grantpt(master) < 0 || unlockpt(master) < 0)
                return -errno;
        /* TIOCGPTPEER opens the slave through the master, immune to a
         * /dev/pts path race; ptsname is the fallback for old kernels. */
        int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (slave < 0) {
                char name[128];
                if (ptsname_r(master, name, sizeof name) != 0)
                        return -errno;
                slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
                if (slave < 0)
                        return -errno;
        }
        if (rows || cols) {
                int r = pty_resize(master, rows, cols);
                if (r < 0) {
                        safe_close(slave);
                        return r;
                }
        }
        *ret_master = TAKE_FD(master);
        *ret_slave = slave;
        return 0;
}

int pty_resize(int master, uint16_t rows, uint16_t cols) {
        struct winsize ws = { 0 };
        if (ioctl(master, TIOCGWINSZ, &ws) < 0)
                return -errno;
        if (rows)
                ws.ws_row = rows;
        if (cols)
                ws.ws_col = cols;
        if (ioctl(master, TIOCSWINSZ, &ws) < 0)
                return -errno;
        return 0;
}

pid_t pty_foreground(int master) {
        pid_t p = tcgetpgrp(master);
        return p < 0 ? -errno : p;
}
