/* vsockctl port-forward -R: ssh -R for the guest (PROTOCOL.md 2.8). One
 * control connection keeps the agent listening in the guest and brings
 * an event per guest connection; each is served on a detached thread that
 * connects to the target here, attaches a new agent connection to it and
 * proxies both ways (cli_proxy). The target is ours to choose: the agent
 * never names one. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
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

struct rfwd_spec {
        char listen[200];       /* the agent's form: tcp:HOST:PORT or unix:/path */
        char host[256];         /* the target here */
        uint16_t port;
};

struct rfwd_conn {
        const char *addr;
        const struct rfwd_spec *spec;
        uint64_t id;
        char peer[128];
};

/* [GUEST_ADDR:]GUEST_PORT:HOST:HOST_PORT or unix:/PATH:HOST:HOST_PORT:
 * the target is always the last two fields (HOST may be [IPv6]). */
static int parse_remote(const char *s, struct rfwd_spec *ret) {
        struct rfwd_spec spec = { 0 };
        const char *c2 = strrchr(s, ':');
        if (!c2 || c2 == s)
                return -EINVAL;
        char *end;
        errno = 0;
        unsigned long port = strtoul(c2 + 1, &end, 10);
        if (errno || *end || !c2[1] || port == 0 || port > 65535)
                return -EINVAL;
        /* HOST: back to the previous ':' outside brackets. */
        const char *c1 = c2 - 1;
        if (*c1 == ']') {
                while (c1 > s && *c1 != '[')
                        c1--;
                if (*c1 != '[' || c1 == s)
                        return -EINVAL;
                c1--;
        } else
                while (c1 > s && *c1 != ':')
                        c1--;
        if (*c1 != ':' || c2 - c1 - 1 <= 0 || (size_t) (c2 - c1 - 1) >= sizeof spec.host)
                return -EINVAL;
        const char *h = c1 + 1;
        size_t hl = (size_t) (c2 - h);
        if (h[0] == '[') {
                h++;
                hl -= 2;
        }
        memcpy(spec.host, h, hl);
        spec.port = (uint16_t) port;
        size_t ll = (size_t) (c1 - s);
        if (ll == 0 || ll >= sizeof spec.listen - 16)
                return -EINVAL;
        char left[200];
        memcpy(left, s, ll);
        left[ll] = '\0';
        if (strncmp(left, "unix:", 5) == 0) {
                if (left[5] != '/')
                        return -EINVAL;
                snprintf(spec.listen, sizeof spec.listen, "%s", left);
        } else {
                /* GUEST_PORT, or GUEST_ADDR:GUEST_PORT. */
                const char *pc = strrchr(left, ':');
                const char *gport = pc ? pc + 1 : left;
                errno = 0;
                unsigned long gp = strtoul(gport, &end, 10);
                if (errno || *end || !*gport || gp > 65535)
                        return -EINVAL;
                if (pc)
                        snprintf(spec.listen, sizeof spec.listen, "tcp:%.*s:%lu", (int) (pc - left), left, gp);
                else
                        snprintf(spec.listen, sizeof spec.listen, "tcp:127.0.0.1:%lu", gp);
        }
        *ret = spec;
        return 0;
}

/* The target here, by its first address that answers. */
static int connect_target(const struct rfwd_spec *spec, int *ret_fd) {
        struct tcp_addr addrs[TCP_RESOLVE_MAX];
        int n = tcp_resolve(spec->host, spec->port, false, addrs, ARRAY_SIZE(addrs));
        if (n < 0)
                return n;
        int err = -ECONNREFUSED;
        for (int i = 0; i < n; i++) {
                int fd = socket(addrs[i].sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        return -errno;
                if (connect(fd, (struct sockaddr *) &addrs[i].sa, addrs[i].len) == 0) {
                        *ret_fd = fd;
                        return 0;
                }
                err = -errno;
                safe_close(fd);
        }
        return err;
}

static void *rfwd_conn_thread(void *arg) {
        struct rfwd_conn *rc = arg;
        int tfd = -1;
        int r = connect_target(rc->spec, &tfd);
        if (r < 0)
                cli_error_rc(r, NULL, "port-forward: guest connection from %s: cannot reach %s:%u", rc->peer,
                             rc->spec->host, rc->spec->port);
        /* Attached even when the target failed: the guest's client then
         * sees its connection end at once, not after the agent's expiry. */
        vsock_conn *c = NULL;
        if (agent_dial(rc->addr, VSOCK_PORT_EXEC, "port-forward", &c) >= 0) {
                struct vsock_call call = VSOCK_CALL_INIT;
                call.deadline_ns = agent_reply_deadline();
                int a = vsock_fwd_attach(c, rc->id, &call);
                if (a < 0)
                        cli_error_rc(a, &call, "port-forward: guest connection %" PRIu64, rc->id);
                else if (tfd >= 0) {
                        _cleanup_close_ int vfd = vsock_conn_release_fd(TAKE_PTR(c));
                        if (vfd < 0 || fd_set_nonblock(tfd, 1) < 0 || fd_set_nonblock(vfd, 1) < 0)
                                cli_error("port-forward: guest connection from %s: cannot set up the proxy", rc->peer);
                        else if ((r = cli_proxy(tfd, vfd)) < 0 && r != -EPIPE && r != -ECONNRESET)
                                cli_error("port-forward: guest connection from %s: %s", rc->peer, strerror(-r));
                }
                (void) vsock_conn_close(c);
        }
        safe_close(tfd);
        free(rc);
        return NULL;
}

int port_forward_remote(const char *arg) {
        /* Static: detached threads still read it while the process exits. */
        static struct rfwd_spec spec;
        if (parse_remote(arg, &spec) < 0)
                return cli_usage_error("port-forward",
                                       "invalid spec '%s' for -R (expected [GUEST_ADDR:]GUEST_PORT:HOST:HOST_PORT "
                                       "or unix:/GUEST/PATH:HOST:HOST_PORT)",
                                       arg);
        const char *addr;
        int r = port_forward_prepare(&addr);
        if (r != 0)
                return r;
        vsock_conn *c = NULL;
        if (agent_dial(addr, VSOCK_PORT_EXEC, "port-forward", &c) < 0)
                return cancel_signo() ? 128 + cancel_signo() : CLI_EXIT_ERROR;
        struct vsock_call call = VSOCK_CALL_INIT;
        call.cancel_fd = cancel_fd();
        call.deadline_ns = agent_reply_deadline();
        char bound[160];
        r = vsock_fwd_listen(c, spec.listen, 0, &call, bound, sizeof bound);
        if (r < 0) {
                (void) vsock_conn_close(c);
                if (vsock_err_kind(r) == VSOCK_E_CANCELLED && cancel_signo())
                        return 128 + cancel_signo();
                agent_report(r, &call, "port-forward", addr);
                return CLI_EXIT_ERROR;
        }
        fprintf(stderr, "Forwarding guest %s -> %s%s%s:%u\n", bound, strchr(spec.host, ':') ? "[" : "", spec.host,
                strchr(spec.host, ':') ? "]" : "", spec.port);
        fflush(stderr);
        int status = CLI_EXIT_OK;
        for (;;) {
                struct vsock_fwd_event ev;
                call = (struct vsock_call) VSOCK_CALL_INIT;
                call.cancel_fd = cancel_fd();
                r = vsock_fwd_next_event(c, &call, &ev);
                if (r < 0) {
                        if (vsock_err_kind(r) != VSOCK_E_CANCELLED) {
                                agent_report(r, &call, "port-forward", addr);
                                status = CLI_EXIT_ERROR;
                        }
                        break;
                }
                if (strcmp(ev.event, "expired") == 0) {
                        cli_error("port-forward: guest connection %" PRIu64 " was not attached in time", ev.id);
                        continue;
                }
                if (strcmp(ev.event, "accepted") != 0)
                        continue;
                struct rfwd_conn *rc = malloc(sizeof *rc);
                if (!rc) {
                        cli_error("port-forward: out of memory");
                        continue;
                }
                *rc = (struct rfwd_conn) { .addr = addr, .spec = &spec, .id = ev.id };
                snprintf(rc->peer, sizeof rc->peer, "%s", ev.peer[0] ? ev.peer : "the guest");
                r = cli_spawn_detached(rfwd_conn_thread, rc);
                if (r < 0) {
                        cli_error("port-forward: cannot start a connection thread: %s", strerror(-r));
                        free(rc);
                }
        }
        /* Closing the control connection stops the guest's listener. */
        (void) vsock_conn_close(c);
        return status;
}
