/* vsockctl port-forward: ssh -L for the guest.
 *
 * The main thread accepts TCP connections; each gets its own detached
 * thread that opens a forward through the agent (one vsock connection per
 * TCP connection, as the protocol has no multiplexing) and proxies both
 * ways with a small non-blocking poll loop over the two fds. A thread per
 * connection keeps every connection's state on its own stack, and a slow
 * peer only ever stalls its own copy loop. Half-close is passed on: EOF
 * from one side becomes shutdown(SHUT_WR) on the other, and the
 * connection ends when both directions are finished (or on any error). */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "cancel.h"
#include "cli.h"
#include "common/io.h"
#include "common/macro.h"
#include "lib/tcp_resolve.h"

#define PF_MAX_CONNECTIONS 1024
#define PF_BUF_SIZE (64 * 1024)

struct pf_spec {
        char bind[256];        /* without brackets */
        uint16_t local_port;
        char host[256];        /* guest host without brackets; "" = agent default */
        uint16_t guest_port;
        char guest_unix[108];  /* a guest unix socket instead (FwdConnect); "" = none */
};

static void pf_usage(FILE *f) {
        fputs("Usage: vsockctl [-a ADDR] port-forward [BIND_ADDR:]LOCAL_PORT:[GUEST_HOST:]GUEST_PORT\n"
              "       vsockctl [-a ADDR] port-forward [BIND_ADDR:]LOCAL_PORT:unix:/GUEST/PATH\n"
              "       vsockctl [-a ADDR] port-forward -R [GUEST_ADDR:]GUEST_PORT:HOST:HOST_PORT\n"
              "       vsockctl [-a ADDR] port-forward -R unix:/GUEST/PATH:HOST:HOST_PORT\n"
              "\n"
              "Listen on TCP LOCAL_PORT here (like ssh -L) and forward every connection to\n"
              "GUEST_HOST:GUEST_PORT as seen from inside the guest. BIND_ADDR defaults to\n"
              "127.0.0.1 ('*' binds all IPv4 interfaces; IPv6 addresses go in brackets:\n"
              "[::1]:8080:80), GUEST_HOST to the guest's 127.0.0.1. With three fields, a\n"
              "numeric first field is LOCAL_PORT (8080:db:5432), anything else BIND_ADDR\n"
              "(0.0.0.0:8080:80). LOCAL_PORT 0 picks a free port; the line printed on\n"
              "stderr shows which:\n"
              "\n"
              "  Forwarding 127.0.0.1:8080 -> guest 127.0.0.1:80\n"
              "\n"
              "Each connection is a separate forward through the agent; half-closes are\n"
              "passed on. Runs until SIGINT or SIGTERM, then exits 0.\n"
              "\n"
              "With unix:/GUEST/PATH the target is a unix stream socket in the guest (an\n"
              "agent with the fwd-connect extension: ours).\n"
              "\n"
              "-R, --remote: the other way, like ssh -R: the agent listens in the guest on\n"
              "GUEST_ADDR:GUEST_PORT (default 127.0.0.1; port 0: any free one) or on the\n"
              "unix socket /GUEST/PATH, and every connection made there is forwarded to\n"
              "HOST:HOST_PORT as seen from here (an agent with fwd-listen: ours). The line\n"
              "on stderr shows what the guest listens on:\n"
              "\n"
              "  Forwarding guest tcp:127.0.0.1:8080 -> 127.0.0.1:3000\n"
              "\n"
              "Before it listens it checks that an agent answers at the address.\n"
              "\n"
              "Exit status: 0 when stopped by a signal, 255 for usage errors, if no agent\n"
              "answers or if the local port cannot be opened.\n",
              f);
}

/* Split at ':' outside brackets; brackets are removed from the fields. */
static int split_fields(const char *s, char fields[4][256], int *ret_n) {
        int n = 0;
        size_t len = 0;
        bool bracket = false, had_bracket = false;
        for (const char *p = s;; p++) {
                if (*p == '\0' || (*p == ':' && !bracket)) {
                        if (n >= 4)
                                return -EINVAL;
                        fields[n][len] = '\0';
                        n++;
                        len = 0;
                        had_bracket = false;
                        if (*p == '\0')
                                break;
                        continue;
                }
                if (*p == '[' && len == 0 && !had_bracket) {
                        bracket = had_bracket = true;
                        continue;
                }
                if (*p == ']' && bracket) {
                        bracket = false;
                        if (p[1] != ':' && p[1] != '\0')
                                return -EINVAL;
                        continue;
                }
                if (len + 1 >= 256 || n >= 4)
                        return -EINVAL;
                fields[n][len++] = *p;
        }
        if (bracket)
                return -EINVAL;
        *ret_n = n;
        return 0;
}

static bool all_digits(const char *s) {
        if (!*s)
                return false;
        for (; *s; s++)
                if (*s < '0' || *s > '9')
                        return false;
        return true;
}

static int parse_port(const char *s, bool allow_zero, uint16_t *ret) {
        if (!all_digits(s) || strlen(s) > 5)
                return -EINVAL;
        unsigned long v = strtoul(s, NULL, 10);
        if (v > 65535 || (v == 0 && !allow_zero))
                return -EINVAL;
        *ret = (uint16_t) v;
        return 0;
}

static int parse_spec(const char *s, struct pf_spec *ret) {
        char f[4][256];
        int n;
        struct pf_spec spec = { .bind = "127.0.0.1" };
        const char *bind = NULL, *lport, *host = NULL, *gport;

        /* [BIND_ADDR:]LOCAL_PORT:unix:/PATH (the path may hold ':'). */
        const char *u = strstr(s, ":unix:/");
        if (u) {
                char left[300];
                const char *path = u + 6;
                if ((size_t) (u - s) >= sizeof left || strlen(path) >= sizeof spec.guest_unix)
                        return -EINVAL;
                memcpy(left, s, (size_t) (u - s));
                left[u - s] = '\0';
                if (split_fields(left, f, &n) < 0 || n > 2 || parse_port(f[n - 1], true, &spec.local_port) < 0)
                        return -EINVAL;
                if (n == 2)
                        snprintf(spec.bind, sizeof spec.bind, "%s",
                                 (!*f[0] || strcmp(f[0], "*") == 0) ? "0.0.0.0" : f[0]);
                snprintf(spec.guest_unix, sizeof spec.guest_unix, "%s", path);
                *ret = spec;
                return 0;
        }
        if (split_fields(s, f, &n) < 0)
                return -EINVAL;
        switch (n) {
        case 2:
                lport = f[0], gport = f[1];
                break;
        case 3:
                if (all_digits(f[0]))
                        lport = f[0], host = f[1], gport = f[2];
                else
                        bind = f[0], lport = f[1], gport = f[2];
                break;
        case 4:
                bind = f[0], lport = f[1], host = f[2], gport = f[3];
                break;
        default:
                return -EINVAL;
        }
        if (parse_port(lport, true, &spec.local_port) < 0 || parse_port(gport, false, &spec.guest_port) < 0)
                return -EINVAL;
        if (bind)
                snprintf(spec.bind, sizeof spec.bind, "%s", (!*bind || strcmp(bind, "*") == 0) ? "0.0.0.0" : bind);
        if (host)
                snprintf(spec.host, sizeof spec.host, "%s", host);
        *ret = spec;
        return 0;
}

static void format_hostport(const char *host, unsigned port, char *buf, size_t size) {
        if (strchr(host, ':'))
                snprintf(buf, size, "[%s]:%u", host, port);
        else
                snprintf(buf, size, "%s:%u", host, port);
}

static void format_sockaddr(const struct sockaddr_storage *ss, char *buf, size_t size) {
        char host[INET6_ADDRSTRLEN] = "?";
        unsigned port = 0;
        if (ss->ss_family == AF_INET) {
                const struct sockaddr_in *a = (const struct sockaddr_in *) ss;
                inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
                port = ntohs(a->sin_port);
        } else if (ss->ss_family == AF_INET6) {
                const struct sockaddr_in6 *a = (const struct sockaddr_in6 *) ss;
                inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
                port = ntohs(a->sin6_port);
        }
        format_hostport(host, port, buf, size);
}

static int listen_tcp(const struct pf_spec *spec, int *ret_fd, char *shown, size_t shown_size) {
        struct tcp_addr addrs[TCP_RESOLVE_MAX];
        char hp[300];
        format_hostport(spec->bind, spec->local_port, hp, sizeof hp);
        int n = tcp_resolve(spec->bind, spec->local_port, true, addrs, ARRAY_SIZE(addrs));
        if (n < 0) {
                cli_error_rc(n, NULL, "port-forward: %s", spec->bind);
                return -EINVAL;
        }
        /* The first address, as ssh -L binds a name's first address. */
        const struct sockaddr *sa = (const struct sockaddr *) &addrs[0].sa;
        _cleanup_close_ int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                int r = -errno;
                cli_error("port-forward: socket: %s", strerror(-r));
                return r;
        }
        int one = 1;
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, sa, addrs[0].len) < 0 || listen(fd, 128) < 0) {
                int r = -errno;
                cli_error("port-forward: cannot listen on %s: %s", hp, strerror(-r));
                return r;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (getsockname(fd, (struct sockaddr *) &ss, &sl) < 0)
                return -errno;
        format_sockaddr(&ss, shown, shown_size);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* ---- one connection ---------------------------------------------------------- */

struct pf_conn {
        const char *addr;
        const struct pf_spec *spec;
        int tcp_fd;
        char peer[64];
};

static atomic_int pf_active = 0;

/* One direction of the copy. */
struct pipe_dir {
        int from, to;
        uint8_t *buf;
        size_t off, len;
        bool eof;       /* read side saw EOF; "to" has been shut for writing */
};

static bool dir_finished(const struct pipe_dir *d) { return d->eof && d->len == d->off; }

/* Move what we can in one direction. Returns 0, or -errno to end the
 * connection. */
static int dir_step(struct pipe_dir *d, short from_revents, short to_revents) {
        if (d->off == d->len && !d->eof && (from_revents & (POLLIN | POLLHUP | POLLERR))) {
                ssize_t n = io_read_once(d->from, d->buf, PF_BUF_SIZE);
                if (n == -EAGAIN)
                        return 0;
                if (n < 0)
                        return (int) n;
                if (n == 0) {
                        d->eof = true;
                        (void) shutdown(d->to, SHUT_WR);
                        return 0;
                }
                d->off = 0;
                d->len = (size_t) n;
                /* Try the write at once: the usual case needs no extra poll. */
                to_revents |= POLLOUT;
        }
        if (d->off < d->len && (to_revents & (POLLOUT | POLLERR | POLLHUP))) {
                struct iovec iov = { .iov_base = d->buf + d->off, .iov_len = d->len - d->off };
                ssize_t n = io_writev_once(d->to, &iov, 1);
                if (n == -EAGAIN)
                        return 0;
                if (n < 0)
                        return (int) n;
                d->off += (size_t) n;
                if (d->off == d->len && d->eof)
                        (void) shutdown(d->to, SHUT_WR);
        }
        return 0;
}

int cli_proxy(int tcp_fd, int vsock_fd) {
        _cleanup_free_ uint8_t *mem = malloc(2 * PF_BUF_SIZE);
        if (!mem)
                return -ENOMEM;
        struct pipe_dir up = { .from = tcp_fd, .to = vsock_fd, .buf = mem };
        struct pipe_dir down = { .from = vsock_fd, .to = tcp_fd, .buf = mem + PF_BUF_SIZE };

        while (!dir_finished(&up) || !dir_finished(&down)) {
                /* Interest follows state: read a side only while its
                 * buffer is empty (the socket itself is our backpressure),
                 * wait for POLLOUT only while data is pending. */
                struct pollfd p[2] = { { .fd = tcp_fd }, { .fd = vsock_fd } };
                if (up.off == up.len && !up.eof)
                        p[0].events |= POLLIN;
                if (down.off < down.len)
                        p[0].events |= POLLOUT;
                if (down.off == down.len && !down.eof)
                        p[1].events |= POLLIN;
                if (up.off < up.len)
                        p[1].events |= POLLOUT;
                /* A side we want nothing from is left out: a hung-up
                 * socket would otherwise report POLLHUP on every pass. */
                for (int i = 0; i < 2; i++)
                        if (p[i].events == 0)
                                p[i].fd = -1;
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                int r = dir_step(&up, p[0].revents, p[1].revents);
                if (r >= 0)
                        r = dir_step(&down, p[1].revents, p[0].revents);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void format_target(const struct pf_spec *spec, char *buf, size_t size) {
        if (spec->guest_unix[0])
                snprintf(buf, size, "unix:%s", spec->guest_unix);
        else
                format_hostport(*spec->host ? spec->host : "127.0.0.1", spec->guest_port, buf, size);
}

static void *pf_conn_thread(void *arg) {
        struct pf_conn *pc = arg;
        struct vsock_call call = VSOCK_CALL_INIT;
        vsock_conn *c = NULL;
        char target[300];

        format_target(pc->spec, target, sizeof target);
        int r = agent_dial(pc->addr, VSOCK_PORT_EXEC, "port-forward", &c);
        if (r >= 0) {
                call.deadline_ns = agent_reply_deadline();
                if (pc->spec->guest_unix[0])
                        r = vsock_fwd_connect(c, NULL, 0, pc->spec->guest_unix, &call);
                else
                        r = vsock_open_port_forward(c, *pc->spec->host ? pc->spec->host : NULL,
                                                    pc->spec->guest_port, &call);
                if (r < 0) {
                        cli_error_rc(r, &call, "port-forward: connection from %s to guest %s", pc->peer, target);
                        (void) vsock_conn_close(TAKE_PTR(c));
                }
        }
        if (c) {
                _cleanup_close_ int vfd = vsock_conn_release_fd(c);
                if (vfd < 0 || fd_set_nonblock(pc->tcp_fd, 1) < 0 || fd_set_nonblock(vfd, 1) < 0)
                        cli_error("port-forward: connection from %s: cannot set up the proxy", pc->peer);
                else if ((r = cli_proxy(pc->tcp_fd, vfd)) < 0 && r != -EPIPE && r != -ECONNRESET)
                        cli_error("port-forward: connection from %s: %s", pc->peer, strerror(-r));
        }
        safe_close(pc->tcp_fd);
        free(pc);
        atomic_fetch_sub(&pf_active, 1);
        return NULL;
}

int cli_spawn_detached(void *(*fn)(void *arg), void *arg) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        /* Workers never take signals: they all land in the main thread,
         * whose handler writes the cancel pipe. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        pthread_t t;
        int r = pthread_create(&t, &attr, fn, arg);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
        return -r;
}

static int spawn_conn(const char *addr, const struct pf_spec *spec, int fd, const struct sockaddr_storage *ss) {
        struct pf_conn *pc = malloc(sizeof *pc);
        if (!pc)
                return -ENOMEM;
        *pc = (struct pf_conn) { .addr = addr, .spec = spec, .tcp_fd = fd };
        format_sockaddr(ss, pc->peer, sizeof pc->peer);
        atomic_fetch_add(&pf_active, 1);
        int r = cli_spawn_detached(pf_conn_thread, pc);
        if (r < 0) {
                atomic_fetch_sub(&pf_active, 1);
                free(pc);
        }
        return r;
}

int port_forward_prepare(const char **ret_addr) {
        if (cli_exec_addr(ret_addr) < 0)
                return CLI_EXIT_ERROR;
        int r = cancel_setup(NULL);
        if (r < 0) {
                cli_error("port-forward: cannot set up signal handling: %s", strerror(-r));
                return CLI_EXIT_ERROR;
        }
        (void) signal(SIGPIPE, SIG_IGN);
        return 0;
}

/* A guest unix socket is reached only through FwdConnect: an agent without
 * it is told now, once, not at every connection vsockctl would accept. */
static int require_fwd_connect(const char *addr) {
        vsock_conn *c = NULL;
        int r = agent_dial(addr, VSOCK_PORT_EXEC, "port-forward", &c);
        if (r < 0)
                return r;
        struct vsock_call call = VSOCK_CALL_INIT;
        call.cancel_fd = cancel_fd();
        call.deadline_ns = agent_reply_deadline();
        struct vsock_caps caps = VSOCK_CAPS_INIT;
        r = vsock_hello(c, &call, &caps);
        (void) vsock_conn_close(c);
        if (r >= 0 && !(caps.features & VSOCK_FEATURE_FWD_CONNECT))
                r = VSOCK_ERR(VSOCK_E_UNSUPPORTED, ENOTSUP);
        if (vsock_err_kind(r) == VSOCK_E_UNSUPPORTED)
                snprintf(call.remote_error, sizeof call.remote_error, "agent does not support %s",
                         vsock_feature_name(VSOCK_FEATURE_FWD_CONNECT));
        if (r < 0 && !(vsock_err_kind(r) == VSOCK_E_CANCELLED && cancel_signo()))
                agent_report(r, &call, "port-forward", addr);
        return r < 0 ? r : 0;
}

int cmd_port_forward(int argc, char **argv) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "remote", no_argument, NULL, 'R' },
                {}
        };
        int c;
        bool remote = false;
        optind = 0;
        while ((c = getopt_long(argc, argv, "+hR", options, NULL)) != -1) {
                if (c == 'h') {
                        pf_usage(stdout);
                        return CLI_EXIT_OK;
                }
                if (c == 'R') {
                        remote = true;
                        continue;
                }
                return cli_usage_hint("port-forward");
        }
        if (argc - optind != 1)
                return cli_usage_error("port-forward", argc - optind < 1 ? "missing forwarding spec" : "too many arguments");
        if (remote)
                return port_forward_remote(argv[optind]);

        /* Static: detached workers still read it while the process exits. */
        static struct pf_spec spec;
        if (parse_spec(argv[optind], &spec) < 0)
                return cli_usage_error("port-forward",
                                       "invalid spec '%s' (expected [BIND_ADDR:]LOCAL_PORT:[GUEST_HOST:]GUEST_PORT)",
                                       argv[optind]);
        const char *addr;
        int r = port_forward_prepare(&addr);
        if (r != 0)
                return r;

        /* Serve nothing where nothing can be forwarded: every connection
         * would be reset. */
        if (agent_verify(addr, "port-forward") < 0 || (spec.guest_unix[0] && require_fwd_connect(addr) < 0))
                return cancel_signo() ? 128 + cancel_signo() : CLI_EXIT_ERROR;

        _cleanup_close_ int lfd = -1;
        char shown[300], target[300];
        if (listen_tcp(&spec, &lfd, shown, sizeof shown) < 0)
                return CLI_EXIT_ERROR;
        format_target(&spec, target, sizeof target);
        fprintf(stderr, "Forwarding %s -> guest %s\n", shown, target);
        fflush(stderr);

        for (;;) {
                struct pollfd p[2] = {
                        { .fd = lfd, .events = POLLIN },
                        { .fd = cancel_fd(), .events = POLLIN },
                };
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        cli_error("port-forward: poll: %m");
                        return CLI_EXIT_ERROR;
                }
                if (p[1].revents)
                        break;
                if (!(p[0].revents & POLLIN))
                        continue;
                struct sockaddr_storage ss;
                socklen_t sl = sizeof ss;
                int fd = accept4(lfd, (struct sockaddr *) &ss, &sl, SOCK_CLOEXEC);
                if (fd < 0) {
                        /* Out of fds or a connection that died before we
                         * got it: report and keep serving the others. */
                        if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
                                cli_error("port-forward: accept: %m");
                        if (errno == EMFILE || errno == ENFILE)
                                (void) poll(NULL, 0, 100);
                        continue;
                }
                if (atomic_load(&pf_active) >= PF_MAX_CONNECTIONS) {
                        cli_error("port-forward: too many connections (%d), refusing one", PF_MAX_CONNECTIONS);
                        safe_close(fd);
                        continue;
                }
                r = spawn_conn(addr, &spec, fd, &ss);
                if (r < 0) {
                        cli_error("port-forward: cannot start a connection thread: %s", strerror(-r));
                        safe_close(fd);
                }
        }
        /* Open connections die with the process: their TCP peers see a
         * reset or EOF and the agent sees its vsock connections close. */
        return CLI_EXIT_OK;
}
