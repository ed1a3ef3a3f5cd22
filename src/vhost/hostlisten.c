#include "vhost/hostlisten.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <vsock/addr.h>
#include <vsock/conn.h>
#include <vsock/error.h>

#include "common/io.h"
#include "common/log.h"
#include "common/macro.h"
#include "vhost/dlist.h"
#include "vhost/hybrid.h"

/* Out of fds: stop accepting this long rather than spin. */
#define ACCEPT_BACKOFF_MS 100
#define ACCEPT_BATCH 32

struct pending {
        struct hostlisten *h;
        struct watcher w;
        struct timer t;
        struct hybrid_line line;
        struct dlist link;
};

struct hostlisten {
        struct loop *loop;
        struct vsockdev *dev;
        vsock_listener *vl;
        struct watcher w;
        struct timer backoff;
        struct dlist pending;
        unsigned n_pending;
        int cmd_timeout_ms;
};

/* Close it, or with @keep_fd hand its fd back. */
static int pending_free(struct pending *p, bool keep_fd) {
        int fd = p->w.fd;
        watcher_stop(&p->w);
        timer_disarm(&p->t);
        dlist_remove(&p->link);
        p->h->n_pending--;
        free(p);
        if (keep_fd)
                return fd;
        return safe_close(fd);
}

static void on_cmd_timeout(struct timer *t) {
        struct pending *p = container_of(t, struct pending, t);
        log_debug("hybrid socket: no CONNECT command within %d ms; closing", p->h->cmd_timeout_ms);
        (void) pending_free(p, false);
}

/* Byte by byte: what follows the '\n' is the stream to the guest and must
 * stay in the socket. A command is at most 32 bytes, read once. */
static void on_cmd_bytes(struct watcher *w, uint32_t revents) {
        struct pending *p = container_of(w, struct pending, w);
        for (;;) {
                char ch;
                ssize_t n = io_read_once(w->fd, &ch, 1);
                if (n == -EAGAIN)
                        return;
                if (n <= 0) {
                        (void) pending_free(p, false);
                        return;
                }
                uint32_t port;
                int r = hybrid_feed(&p->line, ch, &port);
                if (r == 0)
                        continue;
                if (r < 0) {
                        log_debug("hybrid socket: not a CONNECT command (%s); closing",
                                  r == -EMSGSIZE ? "too long" : "malformed");
                        (void) pending_free(p, false);
                        return;
                }
                struct vsockdev *d = p->h->dev;
                vsockdev_host_connect(d, pending_free(p, true), port);
                return;
        }
}

static void on_backoff(struct timer *t) {
        struct hostlisten *h = container_of(t, struct hostlisten, backoff);
        (void) watcher_set(&h->w, EPOLLIN);
}

static void on_accept(struct watcher *w, uint32_t revents) {
        struct hostlisten *h = container_of(w, struct hostlisten, w);
        for (int i = 0; i < ACCEPT_BATCH; i++) {
                struct vsock_peer peer;
                int fd = vsock_accept_fd(h->vl, &peer);
                if (fd < 0) {
                        int e = vsock_err_errno(fd);
                        if (e == EAGAIN)
                                return;
                        if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
                                log_warn("hybrid socket: accept: %s; pausing %d ms", strerror(e), ACCEPT_BACKOFF_MS);
                                (void) watcher_set(&h->w, 0);
                                if (timer_arm_in_ms(&h->backoff, ACCEPT_BACKOFF_MS) < 0)
                                        (void) watcher_set(&h->w, EPOLLIN);
                                return;
                        }
                        continue;
                }
                if (h->n_pending >= HOSTLISTEN_MAX_PENDING) {
                        log_warn("hybrid socket: %u connections without a command yet; refusing another",
                                 h->n_pending);
                        safe_close(fd);
                        continue;
                }
                struct pending *p = calloc(1, sizeof *p);
                if (!p) {
                        safe_close(fd);
                        continue;
                }
                p->h = h;
                watcher_init(&p->w, h->loop, fd, on_cmd_bytes);
                timer_init(&p->t, h->loop, on_cmd_timeout);
                dlist_append(&h->pending, &p->link);
                h->n_pending++;
                if (watcher_set(&p->w, EPOLLIN) < 0 || timer_arm_in_ms(&p->t, h->cmd_timeout_ms) < 0)
                        (void) pending_free(p, false);
        }
}

int hostlisten_new(struct loop *l, struct vsockdev *d, const char *path, int cmd_timeout_ms, struct hostlisten **ret,
                   const char **ret_why) {
        struct vsock_addr a = { .transport = VSOCK_TRANSPORT_UNIX };
        /* Room for "_4294967295" after the path, for guest->host sockets. */
        if (strlen(path) + 11 >= sizeof a.path) {
                *ret_why = "path too long (it needs room for \"_<port>\" within 107 bytes)";
                return -ENAMETOOLONG;
        }
        snprintf(a.path, sizeof a.path, "%s", path);
        struct hostlisten *h = calloc(1, sizeof *h);
        if (!h)
                return -ENOMEM;
        int r = vsock_listen_addr(&a, 0, 0600, &h->vl);
        if (r < 0) {
                *ret_why = vsock_err_errno(r) == EADDRINUSE ? "in use: another process listens on it"
                                                             : "cannot listen";
                free(h);
                return -vsock_err_errno(r);
        }
        h->loop = l;
        h->dev = d;
        h->cmd_timeout_ms = cmd_timeout_ms;
        dlist_init(&h->pending);
        watcher_init(&h->w, l, vsock_listener_fd(h->vl), on_accept);
        timer_init(&h->backoff, l, on_backoff);
        r = watcher_set(&h->w, EPOLLIN);
        if (r < 0) {
                *ret_why = "cannot watch the socket";
                hostlisten_free(h);
                return r;
        }
        *ret = h;
        return 0;
}

void hostlisten_free(struct hostlisten *h) {
        if (!h)
                return;
        while (!dlist_empty(&h->pending))
                (void) pending_free(container_of(h->pending.next, struct pending, link), false);
        watcher_stop(&h->w);
        timer_disarm(&h->backoff);
        vsock_listener_close(h->vl);
        free(h);
}
