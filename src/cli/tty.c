#include "tty.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

static struct termios saved;
static int raw_fd = -1;
static volatile sig_atomic_t raw_on = 0;

void tty_restore(void) {
        if (!raw_on)
                return;
        int e = errno;
        /* TCSADRAIN: let queued output (the remote's last words) reach the
         * screen before echo comes back on. */
        (void) tcsetattr(raw_fd, TCSADRAIN, &saved);
        raw_on = 0;
        errno = e;
}

int tty_raw_enter(int fd) {
        static bool registered = false;
        struct termios t;

        if (raw_on)
                return 0;
        if (tcgetattr(fd, &t) < 0)
                return -errno;
        if (!registered) {
                if (atexit(tty_restore) != 0)
                        return -ENOMEM;
                registered = true;
        }
        saved = t;
        raw_fd = fd;

        t.c_iflag &= ~(tcflag_t) (IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON | IXANY | IXOFF);
        t.c_oflag &= ~(tcflag_t) OPOST;
        t.c_lflag &= ~(tcflag_t) (ECHO | ECHONL | ICANON | ISIG | IEXTEN);
        t.c_cflag &= ~(tcflag_t) (CSIZE | PARENB);
        t.c_cflag |= CS8;
        t.c_cc[VMIN] = 1;
        t.c_cc[VTIME] = 0;

        /* Mark raw before switching: a signal arriving between the two
         * must restore, and restoring settings that were never changed is
         * harmless. */
        raw_on = 1;
        if (tcsetattr(fd, TCSADRAIN, &t) < 0) {
                int r = -errno;
                raw_on = 0;
                return r;
        }
        return 0;
}

bool tty_is_raw(void) { return raw_on; }

int tty_get_size(int fd, uint16_t *ret_rows, uint16_t *ret_cols) {
        struct winsize ws;
        if (ioctl(fd, TIOCGWINSZ, &ws) < 0)
                return -errno;
        if (ws.ws_row == 0 || ws.ws_col == 0)
                return -ENOTTY;
        *ret_rows = ws.ws_row;
        *ret_cols = ws.ws_col;
        return 0;
}
