#include "agent/init/pidns.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
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

static int parse_fd(const char *s, int *ret) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno || *end || end == s || v < -1 || v > 1 << 30)
                return -EINVAL;
        *ret = (int) v;
        return 0;
}

/* Reap what has ended; exit with @cmd's status once it is among it. */
static void reap_all(pid_t cmd) {
        for (;;) {
                int st;
                pid_t w = waitpid(-1, &st, WNOHANG | __WALL);
                if (w == cmd)
                        _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
                if (w < 0 && errno == ECHILD)
                        _exit(127); /* cannot happen while @cmd lives */
                if (w <= 0)
                        return;
        }
}

int pidns_init_main(int argc, char **argv) {
        int go, alive, cmd;
        if (argc != 5 || strcmp(argv[1], PIDNS_INIT_ARG) != 0)
                return -1;
        if (parse_fd(argv[2], &go) < 0 || parse_fd(argv[3], &alive) < 0 || parse_fd(argv[4], &cmd) < 0 ||
            getpid() != 1) {
                fprintf(stderr, "%s: started by the agent only, as a PID namespace's init\n", argv[0]);
                _exit(2);
        }
        /* The name the command sees as /proc/1/comm: set before the
         * command runs. */
        (void) prctl(PR_SET_NAME, "vsock-init");
        /* Every signal is still blocked (spawn.c), SIGCHLD included: it
         * arrives through a signalfd. */
        sigset_t chld;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
        if (go >= 0) {
                (void) !write(go, "", 1);
                (void) close(go);
        }
        if (cmd <= 0)
                _exit(0);
        for (;;) {
                reap_all(cmd);
                struct pollfd pfd[2] = { { .fd = alive, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
                /* Without a signalfd (no fds left), wake up now and then. */
                int n = poll(pfd, sfd >= 0 ? 2 : 1, sfd >= 0 ? -1 : 100);
                if (n > 0 && pfd[0].revents)
                        _exit(128 + SIGKILL); /* the agent is gone */
                if (sfd >= 0 && n > 0 && pfd[1].revents) {
                        struct signalfd_siginfo si;
                        while (read(sfd, &si, sizeof si) > 0)
                                ;
                }
        }
}
