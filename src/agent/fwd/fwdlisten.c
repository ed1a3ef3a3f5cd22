/* Guest -> host forwarding (PROTOCOL.md 2.8): FwdListen makes the agent
 * listen in the guest for as long as its control connection lasts and
 * announce each accepted connection there (FwdEvent); the host attaches
 * each over a new connection (FwdAttach), which then proxies it
 * (portfwd_proxy_take). An accepted connection waits at most fwd_attach_s
 * for that; a listener stops accepting while fwd_pending_max wait.
 *
 * Binding is done on a worker: a unix path is a file-system access (and
 * an existing socket file is replaced only when nothing answers on it).
 * Accepted connections are kept in one agent-wide table, by id. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <vsock/msg.h>

#include "agent/serve/ext.h"
#include "agent/ops.h"
#include "agent/fwd/resolve.h"
#include "agent/serve/session.h"
#include "agent/serve/worker.h"
#include "common/io.h"
#include "common/log.h"
#include "common/macro.h"
#include "lib/ext_msg.h"

#define FWD_REQUEST_MAX (64u * 1024)
#define FWD_BACKLOG_DEFAULT 16
#define FWD_BACKLOG_MAX 128

struct fwd_listener;

struct fwd_pending {
        uint64_t id;
        int fd;
        struct timer expire;
        struct fwd_listener *l;
        struct fwd_pending *prev, *next;        /* agent-wide */
};

/* Binding on the worker. Owned by the listener while it runs; by itself
 * once the listener is gone. */
struct fwd_bind {
        struct worker_job job;
        struct fwd_listener *l;
        struct sockaddr_storage sa;
        socklen_t len;
        int backlog;
        bool is_unix;
        int fd;                 /* listening, or -errno */
        char address[160];      /* what was bound, as FwdEvent names it */
};

struct fwd_listener {
        struct session *s;
        struct agent *a;
        struct watcher w;
        struct fwd_bind *bind;
        char *unix_path;        /* to remove when done */
        size_t n_pending;
        bool counted;           /* one of the agent's fwd_listeners_max */
        bool listening, done;
        struct fwd_listener *prev, *next;
};

static struct fwd_pending *pending;     /* every accepted, unattached connection */
static uint64_t next_id;
static size_t n_listeners;

/* ---- events -------------------------------------------------------------------- */

static void send_event(struct fwd_listener *l, const char *event, const char *address, uint64_t id, const char *peer) {
        struct ext_fwd_event ev = { .event = (char *) event, .address = (char *) address, .id = id, .peer = (char *) peer };
        struct buf *q = session_encode_begin(l->s, EXT_MSG_FWD_EVENT);
        if (q)
                session_encode_end(l->s, ext_fwd_event_encode(&ev, q));
}

static void listener_update(struct fwd_listener *l) {
        if (!l->listening || l->done)
                return;
        /* Stop accepting while fwd_pending_max wait or the host does not
         * read its events. */
        bool room = l->n_pending < EXT_LIMIT_FWD_PENDING_MAX && !session_queue_high(l->s);
        if (watcher_set(&l->w, room ? EPOLLIN : 0) < 0)
                log_warn("session %llu: forward listener: epoll failed", (unsigned long long) session_id(l->s));
}

/* ---- pending connections ------------------------------------------------------------- */

static void pending_free(struct fwd_pending *p) {
        if (p->prev)
                p->prev->next = p->next;
        else
                pending = p->next;
        if (p->next)
                p->next->prev = p->prev;
        timer_disarm(&p->expire);
        safe_close(p->fd);
        if (p->l)
                p->l->n_pending--;
        free(p);
}

static void on_expire(struct timer *t) {
        struct fwd_pending *p = container_of(t, struct fwd_pending, expire);
        struct fwd_listener *l = p->l;
        uint64_t id = p->id;
        pending_free(p);
        send_event(l, "expired", NULL, id, NULL);
        listener_update(l);
}

static void format_peer(const struct sockaddr_storage *ss, char *buf, size_t size) {
        char host[INET6_ADDRSTRLEN] = "";
        if (ss->ss_family == AF_INET) {
                const struct sockaddr_in *in = (const void *) ss;
                inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
                snprintf(buf, size, "%s:%u", host, ntohs(in->sin_port));
        } else if (ss->ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const void *) ss;
                inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
                snprintf(buf, size, "[%s]:%u", host, ntohs(in6->sin6_port));
        } else
                buf[0] = '\0';
}

static void on_accept(struct watcher *w, uint32_t revents) {
        struct fwd_listener *l = container_of(w, struct fwd_listener, w);
        struct sockaddr_storage ss = { 0 };
        socklen_t sl = sizeof ss;
        int fd = io_accept(w->fd, (struct sockaddr *) &ss, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
                if (fd != -EAGAIN && fd != -ECONNABORTED)
                        log_warn("session %llu: forward accept: %s", (unsigned long long) session_id(l->s),
                                 strerror(-fd));
                return;
        }
        struct fwd_pending *p = calloc(1, sizeof *p);
        if (!p) {
                safe_close(fd);
                return;
        }
        p->id = ++next_id;
        p->fd = fd;
        p->l = l;
        timer_init(&p->expire, l->a->loop, on_expire);
        p->next = pending;
        if (pending)
                pending->prev = p;
        pending = p;
        l->n_pending++;
        if (timer_arm_in_ms(&p->expire, (int64_t) EXT_LIMIT_FWD_ATTACH_S * 1000) < 0) {
                pending_free(p);
                return;
        }
        char peer[128];
        format_peer(&ss, peer, sizeof peer);
        send_event(l, "accepted", NULL, p->id, peer[0] ? peer : NULL);
        listener_update(l);
}

/* ---- the listener's lifetime ------------------------------------------------------------ */

static void unlink_run(struct worker_job *j) {
        struct fwd_bind *b = container_of(j, struct fwd_bind, job);
        const struct sockaddr_un *un = (const void *) &b->sa;
        (void) unlink(un->sun_path);
}

static void bind_job_free(struct worker_job *j) { free(container_of(j, struct fwd_bind, job)); }

/* Close the socket, drop what waits, give back the listener's count. */
static void listener_close(struct fwd_listener *l) {
        l->done = true;
        int fd = l->w.fd;
        watcher_stop(&l->w);
        safe_close(fd);
        for (struct fwd_pending *p = pending, *next; p; p = next) {
                next = p->next;
                if (p->l == l)
                        pending_free(p);
        }
        l->listening = false;
        if (l->counted) {
                n_listeners--;
                l->counted = false;
        }
}

/* Stop listening: close, remove a unix socket file (on the worker),
 * finish the control connection. */
static void listener_end(struct fwd_listener *l) {
        if (l->done)
                return;
        listener_close(l);
        if (l->unix_path) {
                struct fwd_bind *u = calloc(1, sizeof *u);
                struct sockaddr_un *un = (void *) &u->sa;
                if (u && strlen(l->unix_path) < sizeof un->sun_path) {
                        memcpy(un->sun_path, l->unix_path, strlen(l->unix_path) + 1);
                        u->job = (struct worker_job) { .run = unlink_run, .done = bind_job_free };
                        if (worker_submit(l->a->worker, &u->job) < 0)
                                free(u);
                } else
                        free(u);
        }
        session_finish(l->s);
}

static void fail(struct fwd_listener *l, const char *code, int err, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void fail(struct fwd_listener *l, const char *code, int err, const char *fmt, ...) {
        char msg[400];
        va_list ap;
        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        (void) ext_error_send(l->s, code, err, "FwdListen", "%s", msg);
        listener_end(l);
}

/* Worker: bind and listen; a unix socket file in the way is replaced only
 * when nothing answers on it. */
static void bind_run(struct worker_job *j) {
        struct fwd_bind *b = container_of(j, struct fwd_bind, job);
        int fd = socket(b->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
                b->fd = -errno;
                return;
        }
        if (!b->is_unix) {
                int one = 1;
                (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        }
        int r = bind(fd, (struct sockaddr *) &b->sa, b->len);
        if (r < 0 && errno == EADDRINUSE && b->is_unix) {
                const struct sockaddr_un *un = (const void *) &b->sa;
                int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                struct stat st;
                bool stale = probe >= 0 && lstat(un->sun_path, &st) == 0 && S_ISSOCK(st.st_mode) &&
                             connect(probe, (struct sockaddr *) &b->sa, b->len) < 0 && errno == ECONNREFUSED;
                safe_close(probe);
                errno = EADDRINUSE;
                if (stale && unlink(un->sun_path) == 0)
                        r = bind(fd, (struct sockaddr *) &b->sa, b->len);
                else
                        r = -1;
        }
        if (r == 0 && b->is_unix)
                r = chmod(((const struct sockaddr_un *) &b->sa)->sun_path, 0600);
        if (r == 0)
                r = listen(fd, b->backlog);
        if (r < 0) {
                b->fd = -errno;
                safe_close(fd);
                return;
        }
        if (!b->is_unix) {
                struct sockaddr_storage ss;
                socklen_t sl = sizeof ss;
                if (getsockname(fd, (struct sockaddr *) &ss, &sl) == 0) {
                        char host[INET6_ADDRSTRLEN + 2 + 8];
                        format_peer(&ss, host, sizeof host);
                        snprintf(b->address, sizeof b->address, "tcp:%s", host);
                }
        }
        b->fd = fd;
}

static void bind_done(struct worker_job *j) {
        struct fwd_bind *b = container_of(j, struct fwd_bind, job);
        struct fwd_listener *l = b->l;
        if (!l) {
                safe_close(b->fd >= 0 ? b->fd : -1);
                free(b);
                return;
        }
        l->bind = NULL;
        if (j->cancelled || j->timed_out || b->fd < 0) {
                int err = j->cancelled ? EAGAIN : j->timed_out ? ETIMEDOUT : -b->fd;
                char e[128];
                fail(l, NULL, err, "listen %s: %s", b->address, strerror_r(err, e, sizeof e));
                if (b->fd >= 0)
                        safe_close(b->fd);
                free(b);
                return;
        }
        if (b->is_unix)
                l->unix_path = strdup(((const struct sockaddr_un *) &b->sa)->sun_path);
        watcher_init(&l->w, l->a->loop, b->fd, on_accept);
        l->listening = true;
        log_info("session %llu: forwarding from guest %s", (unsigned long long) session_id(l->s), b->address);
        send_event(l, "listening", b->address, 0, NULL);
        free(b);
        listener_update(l);
}

/* ---- session callbacks -------------------------------------------------------------------- */

static int listener_frame(void *op, uint8_t type, const uint8_t *data, uint32_t len) {
        return -EPROTO; /* the host only closes */
}

static void listener_stop(void *op) { listener_end(op); }

static void listener_drained(void *op) { listener_update(op); }

static void listener_free(void *op) {
        struct fwd_listener *l = op;
        if (!l)
                return;
        if (l->bind) {
                l->bind->l = NULL;
                if (worker_cancel(&l->bind->job))
                        free(l->bind);
        }
        if (!l->done)
                listener_close(l); /* dropped with its connection: told to nobody */
        free(l->unix_path);
        free(l);
}

static void listener_conn_lost(void *op) {
        struct fwd_listener *l = op;
        listener_end(l);
}

static const struct session_ops listener_ops = {
        .name = "fwd-listen",
        .frame = listener_frame,
        .input_eof = listener_stop,
        .conn_lost = listener_conn_lost,
        .drained = listener_drained,
        .shutdown = listener_stop,
        .free = listener_free,
};

/* "tcp:HOST:PORT" (a literal, IPv6 in brackets) or "unix:/path". */
static int parse_listen(const char *spec, struct fwd_bind *b, const char **ret_why) {
        if (strncmp(spec, "unix:", 5) == 0) {
                struct sockaddr_un *un = (void *) &b->sa;
                const char *path = spec + 5;
                if (path[0] != '/' || strlen(path) >= sizeof un->sun_path) {
                        *ret_why = "unix: needs an absolute path of at most 107 bytes";
                        return -EINVAL;
                }
                un->sun_family = AF_UNIX;
                memcpy(un->sun_path, path, strlen(path) + 1);
                b->len = sizeof *un;
                b->is_unix = true;
                snprintf(b->address, sizeof b->address, "%s", spec);
                return 0;
        }
        if (strncmp(spec, "tcp:", 4) != 0) {
                *ret_why = "listen: tcp:HOST:PORT or unix:/path";
                return -EINVAL;
        }
        const char *colon = strrchr(spec + 4, ':');
        char host[64];
        size_t hl = colon ? (size_t) (colon - (spec + 4)) : 0;
        char *end;
        unsigned long port = colon ? strtoul(colon + 1, &end, 10) : 0;
        if (!colon || hl == 0 || hl >= sizeof host || !colon[1] || *end || port > 65535) {
                *ret_why = "listen: tcp:HOST:PORT with a numeric PORT";
                return -EINVAL;
        }
        const char *h = spec + 4;
        if (h[0] == '[' && h[hl - 1] == ']') {
                h++;
                hl -= 2;
        }
        memcpy(host, h, hl);
        host[hl] = '\0';
        struct resolve_addr ra[RESOLVE_MAX];
        if (resolve_literal(host, (uint16_t) port, ra, RESOLVE_MAX) < 1) {
                *ret_why = "listen: HOST must be an address literal";
                return -EINVAL;
        }
        memcpy(&b->sa, &ra[0].sa, ra[0].len);
        b->len = ra[0].len;
        snprintf(b->address, sizeof b->address, "%s", spec);
        return 0;
}

int fwd_request_decode(struct session *s, const struct ext_shape *shape, uint8_t *payload, uint32_t len, void *ret) {
        const char *why = "request too large";
        int rc = -EMSGSIZE;
        if (len <= FWD_REQUEST_MAX)
                rc = ext_decode(shape, payload ? payload : (const uint8_t *) "", len, ret, &why);
        free(payload);
        if (rc < 0)
                ext_error_finish(s, "EPROTO", EPROTO, shape->name, "invalid %s: %s", shape->name,
                                 why ? why : "malformed");
        return rc;
}

int fwdlisten_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len) {
        struct ext_fwd_listen req;
        if (fwd_request_decode(s, &ext_fwd_listen_shape, payload, len, &req) < 0)
                return 0;
        struct fwd_listener *l = calloc(1, sizeof *l);
        struct fwd_bind *b = calloc(1, sizeof *b);
        if (!l || !b) {
                free(l);
                free(b);
                ext_fwd_listen_clear(&req);
                return -ENOMEM;
        }
        l->s = s;
        l->a = session_agent(s);
        watcher_init(&l->w, l->a->loop, -1, on_accept);
        session_set_op(s, &listener_ops, l);
        const char *why = NULL;
        int rc = parse_listen(req.listen, b, &why);
        b->backlog = req.backlog > 0 ? MIN(req.backlog, FWD_BACKLOG_MAX) : FWD_BACKLOG_DEFAULT;
        ext_fwd_listen_clear(&req);
        if (rc < 0) {
                free(b);
                fail(l, NULL, EINVAL, "%s", why);
                return 0;
        }
        if (n_listeners >= EXT_LIMIT_FWD_LISTENERS_MAX) {
                free(b);
                fail(l, "ELIMIT", 0, "too many listeners (limits.fwd_listeners_max)");
                return 0;
        }
        /* Counted from now on: binds under way count too. */
        n_listeners++;
        l->counted = true;
        b->l = l;
        b->fd = -EAGAIN;
        b->job = (struct worker_job) { .run = bind_run, .done = bind_done };
        rc = worker_submit(l->a->worker, &b->job);
        if (rc < 0) {
                free(b);
                fail(l, NULL, EAGAIN, "%s", rc == -EBUSY ? WORKER_BUSY_TEXT : "agent out of resources");
                return 0;
        }
        l->bind = b;
        return 0;
}

int fwdattach_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len) {
        struct ext_fwd_attach req;
        if (fwd_request_decode(s, &ext_fwd_attach_shape, payload, len, &req) < 0)
                return 0;
        struct fwd_pending *p = pending;
        while (p && (req.id == 0 || p->id != req.id))
                p = p->next;
        if (!p) {
                ext_error_finish(s, NULL, ENOENT, "FwdAttach", "no connection %llu waits to be attached",
                                 (unsigned long long) req.id);
                return 0;
        }
        struct fwd_listener *l = p->l;
        int fd = TAKE_FD(p->fd);
        pending_free(p);
        listener_update(l);
        return portfwd_proxy_take(s, fd);
}
