#include "agent/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <vsock/addr.h>
#include <vsock/conn.h>
#include <vsock/error.h>

#include "agent/session.h"
#include "common/log.h"
#include "common/macro.h"

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

static bool tcp_host_is_loopback(const char *h) {
        struct in_addr a4;
        struct in6_addr a6;
        if (strcmp(h, "localhost") == 0)
                return true;
        if (inet_pton(AF_INET, h, &a4) == 1)
                return (ntohl(a4.s_addr) >> 24) == 127;
        if (inet_pton(AF_INET6, h, &a6) == 1)
                return IN6_IS_ADDR_LOOPBACK(&a6);
        return false;
}

int listener_new(struct agent *a, const char *addr, bool ready, struct listener **ret, const char **ret_why) {
        struct vsock_addr va;
        uint32_t defport = ready ? VSOCK_PORT_READY : VSOCK_PORT_EXEC;
        int r = vsock_addr_parse(addr, defport, &va, ret_why);
        if (r < 0)
                return r;
        if (va.transport == VSOCK_TRANSPORT_TCP && !tcp_host_is_loopback(va.host)) {
                if (!a->insecure_tcp) {
                        *ret_why = "TCP is only allowed on a loopback address (use --insecure-tcp to override)";
                        return -EPERM;
                }
                log_warn("!!! --insecure-tcp: serving %s on %s without any peer authentication: anyone who can "
                         "reach it can run commands as this agent !!!",
                         ready ? "the ready port" : "the exec service", addr);
        }
        struct listener *l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->a = a;
        l->ready = ready;
        snprintf(l->name, sizeof l->name, "%s", addr);
        r = vsock_listen_addr(&va, 0, 0600, &l->vl);
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
