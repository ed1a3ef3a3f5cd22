#include "agent/pidns.h"

#include <errno.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

int pidns_private_mounts(void) {
        /* The new mount namespace starts as a copy with the same
         * propagation: on a shared "/" (systemd makes it so) the proc mount
         * below would replace the guest's /proc for everyone. A slave still
         * sees what the guest mounts later. */
        if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
                return -errno;
        return 0;
}

int pidns_mount_proc(void) {
        /* A proc instance belongs to the PID namespace of its mounter:
         * this one shows only the command's processes. */
        if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                return -errno;
        return 0;
}

_Noreturn void pidns_reap(pid_t cmd) {
        for (;;) {
                int st;
                /* Every signal is blocked and none has a handler: nothing
                 * interrupts the wait but a stop and continue, which the
                 * kernel restarts. ECHILD cannot happen while @cmd lives. */
                pid_t w = waitpid(-1, &st, __WALL);
                if (w == cmd)
                        _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
                if (w < 0 && errno == ECHILD)
                        _exit(127);
        }
}
