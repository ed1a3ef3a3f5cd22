#include "agent/serve/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <vsock/addr.h>
#include <vsock/conn.h>
#include <vsock/error.h>

#include "agent/fwd/resolve.h"
#include "agent/serve/session.h"
#include "common/log.h"
#include "common/macro.h"
#include "lib/conn-internal.h"

/* Out of fds: stop polling the listener this long instead of spinning. */
#define ACCEPT_BACKOFF_MS 100
/* Accepts per wakeup, so one busy listener cannot starve the sessions. */
#define ACCEPT_BATCH 32

struct listener {
        struct watcher w;
        struct timer backoff;
        struct agent *a;
        vsock_listener *vl;
        bool ready;
        char name[160];
};

static bool peer_allowed(const struct listener *l, const struct vsock_peer *p, char *why, size_t size) {
        struct agent *a = l->a;
        switch (p->transport) {
        case VSOCK_TRANSPORT_VSOCK:
                for (size_t i = 0; i < a->n_allow_cids; i++)
                        if (a->allow_cids[i] == p->cid)
                                return true;
                snprintf(why, size, "vsock peer CID %u not allowed", p->cid);
                return false;
        case VSOCK_TRANSPORT_UNIX:
                if (!p->has_cred) {
                        snprintf(why, size, "unix peer without credentials");
                        return false;
                }
                if (p->uid == 0 || p->uid == geteuid())
                        return true;
                for (size_t i = 0; i < a->n_allow_uids; i++)
                        if (a->allow_uids[i] == p->uid)
                                return true;
                snprintf(why, size, "unix peer uid %u (pid %d) not allowed", (unsigned) p->uid, (int) p->pid);
                return false;
        case VSOCK_TRANSPORT_TCP:
                /* Loopback only (checked at listen time) or --insecure-tcp. */
                return true;
        default:
                snprintf(why, size, "unsupported transport");
                return false;
        }
}

static void on_backoff(struct timer *t) {
        struct listener *l = container_of(t, struct listener, backoff);
        if (!l->a->shutting_down)
                (void) watcher_set(&l->w, EPOLLIN);
}

static void on_accept(struct watcher *w, uint32_t revents) {
        struct listener *l = container_of(w, struct listener, w);
        for (int i = 0; i < ACCEPT_BATCH; i++) {
                struct vsock_peer peer = { 0 };
                int fd = vsock_accept_fd(l->vl, &peer);
                if (fd < 0) {
                        int e = vsock_err_errno(fd);
                        if (e == EAGAIN)
                                return;
                        if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
                                log_warn("%s: accept: %s; pausing %d ms", l->name, strerror(e), ACCEPT_BACKOFF_MS);
                                (void) watcher_set(&l->w, 0);
                                if (timer_arm_in_ms(&l->backoff, ACCEPT_BACKOFF_MS) < 0)
                                        (void) watcher_set(&l->w, EPOLLIN);
                                return;
                        }
                        log_warn("%s: accept: %s", l->name, strerror(e));
                        continue;
                }
                if (l->ready) {
                        safe_close(fd);
                        continue;
                }
                char why[128];
                if (!peer_allowed(l, &peer, why, sizeof why)) {
                        log_warn("%s: refused connection: %s", l->name, why);
                        safe_close(fd);
                        continue;
                }
                struct session *s;
                int r = session_new(l->a, fd, &peer, &s);
                if (r < 0)
                        log_error("%s: cannot start session: %s", l->name, strerror(-r));
        }
}

static bool is_loopback(const struct resolve_addr *ra) {
        if (ra->sa.ss_family == AF_INET)
                return (ntohl(((const struct sockaddr_in *) &ra->sa)->sin_addr.s_addr) >> 24) == 127;
        return ra->sa.ss_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *) &ra->sa)->sin6_addr);
}

/* TCP without getaddrinfo (see conn_listen_tcp_sockaddr): the host is a
 * literal, localhost or in /etc/hosts; empty means every address (one
 * dual-stack IPv6 socket, else IPv4). Serving anything but loopback needs
 * --insecure-tcp. */
static int listen_tcp(struct agent *a, const struct vsock_addr *va, bool ready, const char *addr,
                      vsock_listener **ret, const char **ret_why) {
        struct resolve_addr ra[RESOLVE_MAX];
        int n;
        bool loopback = true;
        if (!va->host[0]) {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &ra[0].sa;
                struct sockaddr_in *in4 = (struct sockaddr_in *) &ra[1].sa;
                memset(ra, 0, 2 * sizeof ra[0]);
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons((uint16_t) va->port);
                in6->sin6_addr = in6addr_any;
                ra[0].len = sizeof *in6;
                in4->sin_family = AF_INET;
                in4->sin_port = htons((uint16_t) va->port);
                in4->sin_addr.s_addr = htonl(INADDR_ANY);
                ra[1].len = sizeof *in4;
                n = 2;
                loopback = false;
        } else {
                /* A listen address is local: no DNS. */
                n = resolve_host(va->host, (uint16_t) va->port, NULL, false, ra, RESOLVE_MAX);
                if (n < 0) {
                        *ret_why = "unknown host (use an address, localhost or a name from /etc/hosts)";
                        return VSOCK_ERR(VSOCK_E_BIND, -n);
                }
                for (int i = 0; i < n; i++)
                        loopback = loopback && is_loopback(&ra[i]);
        }
        if (!loopback) {
                if (!a->insecure_tcp) {
                        *ret_why = "TCP is only allowed on a loopback address (use --insecure-tcp to override)";
                        return -EPERM;
                }
                log_warn("!!! --insecure-tcp: serving %s on %s without any peer authentication: anyone who can "
                         "reach it can run commands as this agent !!!",
                         ready ? "the ready port" : "the exec service", addr);
        }
        /* The first address that works, as vsock_listen_addr does. */
        int r = VSOCK_ERR(VSOCK_E_BIND, EADDRNOTAVAIL);
        for (int i = 0; i < n; i++) {
                r = conn_listen_tcp_sockaddr(va, (const struct sockaddr *) &ra[i].sa, ra[i].len, 0, ret);
                if (r >= 0 || r == -ENOMEM)
                        break;
        }
        return r;
}

int listener_new(struct agent *a, const char *addr, bool ready, struct listener **ret, const char **ret_why) {
        struct vsock_addr va;
        uint32_t defport = ready ? VSOCK_PORT_READY : VSOCK_PORT_EXEC;
        int r = vsock_addr_parse(addr, defport, &va, ret_why);
        if (r < 0)
                return r;
        struct listener *l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->a = a;
        l->ready = ready;
        snprintf(l->name, sizeof l->name, "%s", addr);
        /* Per transport, so that getaddrinfo is not linked in (resolve.h). */
        switch (va.transport) {
        case VSOCK_TRANSPORT_VSOCK:
                r = conn_listen_vsock(&va, 0, &l->vl);
                break;
        case VSOCK_TRANSPORT_UNIX:
                r = conn_listen_unix(&va, 0, 0600, &l->vl);
                break;
        case VSOCK_TRANSPORT_TCP:
                r = listen_tcp(a, &va, ready, addr, &l->vl, ret_why);
                break;
        default:
                *ret_why = "the agent listens on vsock:, unix: or tcp: addresses";
                r = VSOCK_ERR(VSOCK_E_BAD_ADDRESS, EINVAL);
                break;
        }
        if (r < 0) {
                free(l);
                return r;
        }
        watcher_init(&l->w, a->loop, vsock_listener_fd(l->vl), on_accept);
        timer_init(&l->backoff, a->loop, on_backoff);
        r = watcher_set(&l->w, EPOLLIN);
        if (r < 0) {
                vsock_listener_close(l->vl);
                free(l);
                return r;
        }
        *ret = l;
        return 0;
}

void listener_free(struct listener *l) {
        if (!l)
                return;
        watcher_stop(&l->w);
        timer_disarm(&l->backoff);
        vsock_listener_close(l->vl);
        free(l);
}
