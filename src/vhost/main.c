/* vsock-vhost: a vhost-user-vsock device back-end for QEMU that offers
 * Firecracker's hybrid-vsock socket on the host. Option parsing, sockets
 * and signals; the device is in device.c, the vhost-user session in vu.c. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vsock/addr.h>
#include <vsock/conn.h>
#include <vsock/error.h>
#include <vsock/version.h>

#include "agent/serve/loop.h"
#include "common/io.h"
#include "common/log.h"
#include "common/macro.h"
#include "vhost/device.h"
#include "vhost/hostlisten.h"
#include "vhost/notify.h"
#include "vhost/vu.h"


#define EXIT_USAGE 2

struct main_state {
        struct loop *loop;
        struct vsockdev *dev;
        struct hostlisten *hybrid;
        vsock_listener *vl;             /* --socket-path */
        struct watcher lw;              /* the vhost-user listening socket */
        int fd_arg;                     /* --fd, or -1 */
        bool fd_connected;              /* --fd was a connected socket: one session */
        struct vu *session;
        struct watcher sigw;
        int sigfd;
};

static void usage(FILE *f) {
        fputs("Usage: vsock-vhost --socket-path PATH --uds-path PATH [OPTIONS]\n"
              "\n"
              "vhost-user-vsock device back-end for QEMU, with Firecracker's hybrid vsock\n"
              "interface on the host: AF_VSOCK in the guest without host kernel modules\n"
              "or privileges.\n"
              "\n"
              "  --socket-path PATH    vhost-user socket QEMU connects to (also --socket)\n"
              "  --fd FD               use FD (listening or connected) as the vhost-user\n"
              "                        socket instead of --socket-path\n"
              "  --uds-path PATH       hybrid vsock socket, as Firecracker's uds_path: a host\n"
              "                        process connects and writes \"CONNECT <port>\\n\" to reach\n"
              "                        a guest port; a guest connection to host port P goes to\n"
              "                        the socket PATH_P\n"
              "  --guest-cid CID       the guest's context id (default 3)\n"
              "  --log-level LEVEL     error, warn, info (default) or debug\n"
              "  --print-capabilities  print the vhost-user back-end capabilities and exit\n"
              "  --help                show this help\n"
              "  --version             show the version\n"
              "\n"
              "QEMU (guest memory must be shared):\n"
              "  -object memory-backend-memfd,id=mem,size=512M,share=on -numa node,memdev=mem\n"
              "  -chardev socket,id=vsock0,path=PATH -device vhost-user-vsock-pci,chardev=vsock0\n",
              f);
}

static int parse_u64(const char *s, uint64_t *ret) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || end == s || *end || s[0] == '-' || s[0] == '+')
                return -EINVAL;
        *ret = v;
        return 0;
}

/* ---- the vhost-user socket ------------------------------------------------ */

static void on_session_closed(struct vu *v, void *userdata) {
        struct main_state *m = userdata;
        m->session = NULL;
        vu_free_later(v);
        if (m->fd_connected)
                loop_quit(m->loop);
        else
                log_info("waiting for a front-end to connect");
}

static void start_session(struct main_state *m, int fd) {
        if (m->session) {
                log_warn("a second front-end connected: refused (one device per back-end)");
                safe_close(fd);
                return;
        }
        int r = vu_new(m->loop, m->dev, fd, on_session_closed, m, &m->session);
        if (r < 0)
                log_error("cannot start a vhost-user session: %s", strerror(-r));
        else
                log_info("front-end connected");
}

static void on_frontend(struct watcher *w, uint32_t revents) {
        struct main_state *m = container_of(w, struct main_state, lw);
        for (;;) {
                int fd = io_accept(w->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd == -EAGAIN)
                        return;
                if (fd < 0) {
                        log_warn("vhost-user socket: accept: %s", strerror(-fd));
                        return;
                }
                start_session(m, fd);
        }
}

/* --fd: a listening socket is served like --socket-path; a connected one is
 * the only session (the back-end ends with it). */
static int adopt_fd(struct main_state *m, int fd) {
        int type = 0, listening = 0;
        socklen_t len = sizeof type;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
                return -errno;
        if (type != SOCK_STREAM)
                return -ENOTSOCK;
        len = sizeof listening;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
                return -errno;
        /* Inherited, so maybe not close-on-exec yet. */
        int fl = fcntl(fd, F_GETFD);
        if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
                return -errno;
        int r = fd_set_nonblock(fd, 1);
        if (r < 0)
                return r;
        if (!listening) {
                m->fd_connected = true;
                start_session(m, fd);
                return m->session ? 0 : -EIO;
        }
        watcher_init(&m->lw, m->loop, fd, on_frontend);
        return watcher_set(&m->lw, EPOLLIN);
}

static int listen_frontend(struct main_state *m, const char *path, const char **ret_why) {
        struct vsock_addr a = { .transport = VSOCK_TRANSPORT_UNIX };
        if (strlen(path) >= sizeof a.path) {
                *ret_why = "path too long";
                return -ENAMETOOLONG;
        }
        snprintf(a.path, sizeof a.path, "%s", path);
        int r = vsock_listen_addr(&a, 0, 0600, &m->vl);
        if (r < 0) {
                *ret_why = vsock_err_errno(r) == EADDRINUSE ? "in use: another process listens on it"
                                                             : "cannot listen";
                return -vsock_err_errno(r);
        }
        watcher_init(&m->lw, m->loop, vsock_listener_fd(m->vl), on_frontend);
        return watcher_set(&m->lw, EPOLLIN);
}

/* ---- signals ------------------------------------------------------------- */

static void on_signal(struct watcher *w, uint32_t revents) {
        struct main_state *m = container_of(w, struct main_state, sigw);
        struct signalfd_siginfo si;
        while (read(m->sigfd, &si, sizeof si) == (ssize_t) sizeof si) {
                log_info("%s: stopping", strsignal((int) si.ssi_signo));
                loop_quit(m->loop);
        }
}

static int setup_signals(struct main_state *m) {
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return -errno;
        m->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (m->sigfd < 0)
                return -errno;
        watcher_init(&m->sigw, m->loop, m->sigfd, on_signal);
        return watcher_set(&m->sigw, EPOLLIN);
}

static void teardown(struct main_state *m) {
        /* The loop has stopped: connections go now, not after a pass. */
        if (m->dev)
                vsockdev_close_all(m->dev);
        vu_free(m->session);
        m->session = NULL;
        hostlisten_free(m->hybrid);
        watcher_stop(&m->lw);
        if (m->vl)
                vsock_listener_close(m->vl);
        else if (m->fd_arg >= 0 && !m->fd_connected)
                safe_close(m->fd_arg);
        vsockdev_free(m->dev);
        watcher_stop(&m->sigw);
        safe_close(m->sigfd);
        loop_free(m->loop);
}

int main(int argc, char **argv) {
        enum { OPT_SOCKET = 256, OPT_FD, OPT_UDS, OPT_CID, OPT_LOG, OPT_CAPS, OPT_HELP, OPT_VERSION };
        static const struct option longopts[] = {
                { "socket-path", required_argument, NULL, OPT_SOCKET },
                { "socket", required_argument, NULL, OPT_SOCKET },
                { "fd", required_argument, NULL, OPT_FD },
                { "uds-path", required_argument, NULL, OPT_UDS },
                { "guest-cid", required_argument, NULL, OPT_CID },
                { "log-level", required_argument, NULL, OPT_LOG },
                { "print-capabilities", no_argument, NULL, OPT_CAPS },
                { "help", no_argument, NULL, OPT_HELP },
                { "version", no_argument, NULL, OPT_VERSION },
                {}
        };
        const char *socket_path = NULL, *uds_path = NULL;
        struct vsockdev_config cfg;
        vsockdev_config_default(&cfg);
        struct main_state m = { .fd_arg = -1, .sigfd = -1 };
        uint64_t v;
        enum log_level lvl;
        int c;

        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
                switch (c) {
                case OPT_SOCKET:
                        socket_path = optarg;
                        break;
                case OPT_FD:
                        if (parse_u64(optarg, &v) < 0 || v < 3 || v > INT32_MAX) {
                                fprintf(stderr, "vsock-vhost: --fd: '%s' is not a file descriptor number (>= 3)\n",
                                        optarg);
                                return EXIT_USAGE;
                        }
                        m.fd_arg = (int) v;
                        break;
                case OPT_UDS:
                        uds_path = optarg;
                        break;
                case OPT_CID:
                        /* 0-2 are the hypervisor, loopback and host; -1U is "any". */
                        if (parse_u64(optarg, &v) < 0 || v < 3 || v >= UINT32_MAX) {
                                fprintf(stderr, "vsock-vhost: --guest-cid: '%s' is not a guest CID (3 to %u)\n",
                                        optarg, UINT32_MAX - 1);
                                return EXIT_USAGE;
                        }
                        cfg.guest_cid = v;
                        break;
                case OPT_LOG:
                        if (log_level_parse(optarg, &lvl) < 0) {
                                fprintf(stderr, "vsock-vhost: --log-level: error, warn, info or debug\n");
                                return EXIT_USAGE;
                        }
                        log_set_level(lvl);
                        break;
                case OPT_CAPS:
                        /* vhost-user.json's VHostUserBackendCapabilities. */
                        puts("{\n  \"type\": \"vsock\"\n}");
                        return 0;
                case 'h':
                case OPT_HELP:
                        usage(stdout);
                        return 0;
                case OPT_VERSION:
                        puts("vsock-vhost " VSOCK_VERSION_STRING);
                        return 0;
                default:
                        usage(stderr);
                        return EXIT_USAGE;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "vsock-vhost: unexpected argument '%s'\n", argv[optind]);
                return EXIT_USAGE;
        }
        if (!socket_path == (m.fd_arg < 0)) {
                fprintf(stderr, "vsock-vhost: give exactly one of --socket-path and --fd\n");
                return EXIT_USAGE;
        }
        if (!uds_path) {
                fprintf(stderr, "vsock-vhost: --uds-path is required (the host's hybrid vsock socket)\n");
                return EXIT_USAGE;
        }
        cfg.uds_path = uds_path;
        signal(SIGPIPE, SIG_IGN);

        const char *why = NULL;
        int r = loop_new(&m.loop);
        if (r >= 0)
                r = setup_signals(&m);
        if (r >= 0)
                r = vsockdev_new(m.loop, &cfg, &m.dev);
        if (r < 0) {
                log_error("cannot start: %s", strerror(-r));
                return 1;
        }
        r = hostlisten_new(m.loop, m.dev, uds_path, HOSTLISTEN_CMD_TIMEOUT_MS, &m.hybrid, &why);
        if (r < 0) {
                log_error("--uds-path %s: %s (%s)", uds_path, why ? why : "cannot listen", strerror(-r));
                teardown(&m);
                return 1;
        }
        if (socket_path)
                r = listen_frontend(&m, socket_path, &why);
        else
                r = adopt_fd(&m, m.fd_arg);
        if (r < 0) {
                if (socket_path)
                        log_error("--socket-path %s: %s (%s)", socket_path, why ? why : "cannot listen", strerror(-r));
                else
                        log_error("--fd %d: not a usable vhost-user socket (%s)", m.fd_arg, strerror(-r));
                teardown(&m);
                return 1;
        }
        log_info("vhost-user socket %s, hybrid vsock socket %s, guest CID %llu", socket_path ? socket_path : "(fd)",
                 uds_path, (unsigned long long) cfg.guest_cid);
        r = notify_ready();
        if (r < 0)
                log_warn("NOTIFY_SOCKET: %s", strerror(-r));

        r = loop_run(m.loop);
        if (r < 0)
                log_error("event loop: %s", strerror(-r));
        teardown(&m);
        return r < 0 ? 1 : 0;
}
