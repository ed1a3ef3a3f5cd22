/* PortForward: connect to host:port inside the guest, reply Ready, then
 * proxy raw bytes both ways. FwdConnect (PROTOCOL.md 2.8) is the same
 * with unix-socket targets and failures as Error frames with an errno;
 * FwdAttach (fwdlisten.c) proxies a connection accepted in the guest. Each direction has one bounded queue and
 * propagates EOF as a half-close (shutdown(SHUT_WR) on the other side);
 * the forward ends when both directions have ended. Names are resolved
 * without NSS (resolve.h): literals and localhost at once, anything else
 * (/etc/hosts, maybe getaddrinfo) on the worker thread. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <vsock/msg.h>

#include "agent/serve/ext.h"
#include "agent/ops.h"
#include "agent/fwd/resolve.h"
#include "agent/serve/session.h"
#include "agent/serve/worker.h"
#include "common/buf.h"
#include "common/errtext.h"
#include "common/io.h"
#include "common/log.h"
#include "common/macro.h"
#include "lib/ext_msg.h"

#define CONNECT_TIMEOUT_MS 15000
#define PF_REQUEST_MAX (64u * 1024)

enum pf_state { PF_RESOLVING, PF_CONNECTING, PF_PROXY, PF_DONE };

struct pf_resolve;
struct pf_unix;

struct pf {
        struct session *s;
        struct agent *a;
        enum pf_state state;
        struct watcher w;               /* the target socket */
        struct timer timer;             /* connect timeout */
        char *host;
        uint16_t port;
        struct resolve_addr addrs[RESOLVE_MAX]; /* candidates, tried in order */
        size_t n_addrs, next_addr;
        int last_err;
        struct pf_resolve *job;
        struct buf to_target;
        bool target_blocked;            /* waiting for EPOLLOUT */
        bool host_eof;                  /* host -> target direction ended */
        bool target_shut;               /* ... and was propagated */
        bool target_eof;                /* target -> host direction ended */
        bool input_held;
        bool ext;                       /* FwdConnect/FwdAttach: Error frames */
        char *unix_path;                /* FwdConnect to a unix socket */
        struct pf_unix *ujob;
};

/* Connecting to a unix socket resolves its path: a file-system access,
 * so on the worker. */
struct pf_unix {
        struct worker_job job;
        struct pf *pf;                  /* NULL once the forward is gone */
        char *path;
        int fd;                         /* connected, or -errno */
};

struct pf_resolve {
        struct worker_job job;
        struct pf *pf;                  /* NULL once the forward is gone */
        char *host;
        uint16_t port;
        struct resolve_addr addrs[RESOLVE_MAX];
        int n;                          /* count, or -errno */
};

static void pf_update(struct pf *pf);

static void pf_close_target(struct pf *pf) {
        int fd = pf->w.fd;
        watcher_stop(&pf->w);
        safe_close(fd);
}

static void pf_end(struct pf *pf) {
        if (pf->state == PF_DONE)
                return;
        pf->state = PF_DONE;
        timer_disarm(&pf->timer);
        pf_close_target(pf);
        buf_free(&pf->to_target);
        session_finish(pf->s);
}

/* The request fails with @err: PortForward's Stderr text, or FwdConnect's
 * Error frame. */
static void pf_reject(struct pf *pf, int err, const char *msg) {
        log_info("session %llu: port-forward rejected: %s", (unsigned long long) session_id(pf->s), msg);
        if (pf->ext)
                (void) ext_error_send(pf->s, NULL, err, "FwdConnect", "%s", msg);
        else
                (void) session_send(pf->s, VSOCK_MSG_STDERR, msg, strlen(msg));
        pf_end(pf);
}

/* A target that cannot be reached, in the Go agent's words, which hosts
 * may parse: "connect HOST:PORT failed: " and Go's dial error. */
static void pf_fail(struct pf *pf, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pf_fail(struct pf *pf, int err, const char *fmt, ...) {
        char why[384], msg[640];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, sizeof why, fmt, ap);
        va_end(ap);
        if (pf->unix_path)
                snprintf(msg, sizeof msg, "connect %s failed: %s", pf->unix_path, why);
        else
                snprintf(msg, sizeof msg, "connect %s:%u failed: %s", pf->host, pf->port, why);
        pf_reject(pf, err, msg);
}

static void pf_fail_connect(struct pf *pf) {
        char e[128];
        int err = pf->last_err ? pf->last_err : ECONNREFUSED;
        errno_text(err, e, sizeof e);
        if (pf->unix_path) {
                pf_fail(pf, err, "dial unix %s: connect: %s", pf->unix_path, e);
                return;
        }
        bool v6 = strchr(pf->host, ':') != NULL;
        pf_fail(pf, err, "dial tcp %s%s%s:%u: connect: %s", v6 ? "[" : "", pf->host, v6 ? "]" : "", pf->port, e);
}

/* Go's words ("no such host", "i/o timeout") for a name that cannot be
 * resolved. */
static void pf_fail_lookup(struct pf *pf, int err, const char *why) {
        pf_fail(pf, err, "dial tcp: lookup %s: %s", pf->host, why);
}

/* ---- proxying ----------------------------------------------------------- */

static void pf_maybe_done(struct pf *pf) {
        if (pf->state == PF_PROXY && pf->target_shut && pf->target_eof && session_queue_empty(pf->s))
                pf_end(pf);
}

static void pf_flush_target(struct pf *pf) {
        while (!buf_empty(&pf->to_target)) {
                struct iovec iov = { .iov_base = buf_head(&pf->to_target), .iov_len = buf_size(&pf->to_target) };
                ssize_t n = io_writev_once(pf->w.fd, &iov, 1);
                if (n == -EAGAIN) {
                        pf->target_blocked = true;
                        return;
                }
                if (n < 0) {
                        log_debug("session %llu: forward write: %s", (unsigned long long) session_id(pf->s),
                                  strerror((int) -n));
                        pf_end(pf);
                        return;
                }
                (void) buf_consume(&pf->to_target, (size_t) n);
        }
        pf->target_blocked = false;
        if (buf_capacity(&pf->to_target) > 64 * 1024)
                buf_free(&pf->to_target);
        if (pf->host_eof && !pf->target_shut) {
                pf->target_shut = true;
                (void) shutdown(pf->w.fd, SHUT_WR);
        }
}

static void pf_read_target(struct pf *pf) {
        uint8_t *p;
        if (session_raw_begin(pf->s, AGENT_READ_CHUNK, &p) < 0) {
                pf_end(pf);
                return;
        }
        ssize_t n = io_read_once(pf->w.fd, p, AGENT_READ_CHUNK);
        session_raw_end(pf->s, n > 0 ? (size_t) n : 0);
        if (n == -EAGAIN)
                return;
        if (n < 0) {
                log_debug("session %llu: forward read: %s", (unsigned long long) session_id(pf->s),
                          strerror((int) -n));
                pf_end(pf);
                return;
        }
        if (n == 0) {
                pf->target_eof = true;
                session_shutdown_write(pf->s);
        }
}

static void on_target_proxy(struct pf *pf, uint32_t revents) {
        if (revents & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                if (pf->target_blocked || (revents & EPOLLERR))
                        pf_flush_target(pf);
        if (pf->state != PF_PROXY)
                return;
        if ((revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !pf->target_eof && !session_queue_high(pf->s))
                pf_read_target(pf);
        if (pf->state != PF_PROXY)
                return;
        if (pf->input_held && buf_size(&pf->to_target) < AGENT_QUEUE_LOW) {
                pf->input_held = false;
                session_pause_input(pf->s, false);
        }
        pf_update(pf);
        pf_maybe_done(pf);
}

static void pf_update(struct pf *pf) {
        if (pf->state != PF_PROXY)
                return;
        uint32_t ev = 0;
        if (!pf->target_eof && !session_queue_high(pf->s))
                ev |= EPOLLIN;
        if (pf->target_blocked)
                ev |= EPOLLOUT;
        if (watcher_set(&pf->w, ev) < 0)
                pf_end(pf);
}

static size_t pf_raw(void *op, const uint8_t *data, size_t len) {
        struct pf *pf = op;
        if (pf->state != PF_PROXY || pf->host_eof)
                return len;
        if (buf_append(&pf->to_target, data, len) < 0) {
                pf_end(pf);
                return len;
        }
        if (!pf->target_blocked)
                pf_flush_target(pf);
        if (pf->state != PF_PROXY)
                return len;
        if (buf_size(&pf->to_target) >= AGENT_QUEUE_HIGH && !pf->input_held) {
                pf->input_held = true;
                session_pause_input(pf->s, true);
        }
        pf_update(pf);
        return len;
}

static void pf_input_eof(void *op) {
        struct pf *pf = op;
        if (pf->state != PF_PROXY) {
                pf_end(pf);
                return;
        }
        pf->host_eof = true;
        if (!pf->target_blocked)
                pf_flush_target(pf);
        pf_maybe_done(pf);
}

static void pf_conn_lost(void *op) {
        struct pf *pf = op;
        /* The host is gone: bytes still queued toward the target cannot
         * matter any more, and behind them a FIN would wait forever on a
         * target that never reads. Reset instead. */
        if (pf->w.fd >= 0) {
                struct linger l = { .l_onoff = 1, .l_linger = 0 };
                (void) setsockopt(pf->w.fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        pf_end(pf);
}

static void pf_drained(void *op) {
        struct pf *pf = op;
        pf_update(pf);
        pf_maybe_done(pf);
}

/* ---- connecting --------------------------------------------------------- */

static void pf_connected(struct pf *pf) {
        timer_disarm(&pf->timer);
        log_debug("session %llu: forwarding to %s:%u", (unsigned long long) session_id(pf->s),
                  pf->host ? pf->host : pf->unix_path, pf->port);
        int one = 1;
        (void) setsockopt(pf->w.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pf->state = PF_PROXY;
        (void) session_send(pf->s, VSOCK_MSG_READY, NULL, 0);
        session_set_raw(pf->s);
        session_pause_input(pf->s, false);
        pf_update(pf);
}

static void pf_try_next(struct pf *pf);

static void on_target(struct watcher *w, uint32_t revents) {
        struct pf *pf = container_of(w, struct pf, w);
        if (pf->state == PF_PROXY) {
                on_target_proxy(pf, revents);
                return;
        }
        if (pf->state != PF_CONNECTING)
                return;
        int err = 0;
        socklen_t sl = sizeof err;
        if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
                err = errno;
        if (err == 0) {
                pf_connected(pf);
                return;
        }
        pf->last_err = err;
        pf_close_target(pf);
        pf_try_next(pf);
}

static int pf_connect_one(struct pf *pf, const struct sockaddr *sa, socklen_t len) {
        int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        watcher_init(&pf->w, pf->a->loop, fd, on_target);
        if (connect(fd, sa, len) == 0) {
                pf_connected(pf);
                return 0;
        }
        if (errno != EINPROGRESS) {
                int r = -errno;
                pf_close_target(pf);
                return r;
        }
        int r = watcher_set(&pf->w, EPOLLOUT);
        if (r < 0) {
                pf_close_target(pf);
                return r;
        }
        return 0;
}

/* Try candidates in order until one is connecting; reject when none is. */
static void pf_try_next(struct pf *pf) {
        pf->state = PF_CONNECTING;
        while (pf->next_addr < pf->n_addrs) {
                const struct resolve_addr *ra = &pf->addrs[pf->next_addr++];
                int r = pf_connect_one(pf, (const struct sockaddr *) &ra->sa, ra->len);
                if (r >= 0)
                        return;
                pf->last_err = -r;
        }
        pf_fail_connect(pf);
}

static void on_connect_timeout(struct timer *t) {
        struct pf *pf = container_of(t, struct pf, timer);
        if (pf->state == PF_RESOLVING)
                pf_fail_lookup(pf, ETIMEDOUT, "i/o timeout");
        else if (pf->state == PF_CONNECTING) {
                pf->last_err = ETIMEDOUT;
                pf_fail_connect(pf);
        }
}

static void resolve_run(struct worker_job *j) {
        struct pf_resolve *res = container_of(j, struct pf_resolve, job);
        res->n = resolve_host(res->host, res->port, NULL, true, res->addrs, RESOLVE_MAX);
}

/* The lookup hangs (a hosts file on a file system that does not answer):
 * answer the host now; the job frees itself when it returns. */
static void resolve_timeout(struct worker_job *j) {
        struct pf_resolve *res = container_of(j, struct pf_resolve, job);
        struct pf *pf = res->pf;
        if (!pf)
                return;
        res->pf = NULL;
        pf->job = NULL;
        pf_fail_lookup(pf, ETIMEDOUT, "i/o timeout");
}

static void resolve_done(struct worker_job *j) {
        struct pf_resolve *res = container_of(j, struct pf_resolve, job);
        struct pf *pf = res->pf;
        if (!pf || j->cancelled) {
                if (pf)
                        pf->job = NULL;
                free(res->host);
                free(res);
                return;
        }
        pf->job = NULL;
        if (res->n <= 0) {
                int e = res->n < 0 ? -res->n : ENOENT;
                char es[128];
                free(res->host);
                free(res);
                pf_fail_lookup(pf, e == ENOENT ? EHOSTUNREACH : e,
                               e == ENOENT   ? "no such host"
                               : e == EAGAIN ? "temporary failure in name resolution"
                                             : errno_text(e, es, sizeof es));
                return;
        }
        memcpy(pf->addrs, res->addrs, (size_t) res->n * sizeof res->addrs[0]);
        pf->n_addrs = (size_t) res->n;
        pf->next_addr = 0;
        free(res->host);
        free(res);
        pf_try_next(pf);
}

static void pf_shutdown(void *op) { pf_end(op); }

static void pf_free(void *op) {
        struct pf *pf = op;
        if (!pf)
                return;
        if (pf->job)
                pf->job->pf = NULL; /* the worker still owns it */
        if (pf->ujob)
                pf->ujob->pf = NULL;
        timer_disarm(&pf->timer);
        pf_close_target(pf);
        buf_free(&pf->to_target);
        free(pf->host);
        free(pf->unix_path);
        free(pf);
}

static const struct session_ops pf_ops = {
        .name = "port-forward",
        .raw = pf_raw,
        .input_eof = pf_input_eof,
        .conn_lost = pf_conn_lost,
        .drained = pf_drained,
        .shutdown = pf_shutdown,
        .free = pf_free,
};

static struct pf *pf_new(struct session *s, bool ext) {
        struct pf *pf = calloc(1, sizeof *pf);
        if (!pf)
                return NULL;
        pf->s = s;
        pf->a = session_agent(s);
        pf->ext = ext;
        pf->to_target = BUF_INIT(0);
        watcher_init(&pf->w, pf->a->loop, -1, on_target);
        timer_init(&pf->timer, pf->a->loop, on_connect_timeout);
        session_set_op(s, &pf_ops, pf);
        /* Bytes the host sends before Ready belong to the raw stream. */
        session_pause_input(s, true);
        return pf;
}

/* Connect to pf->host:pf->port: literals at once, names on the worker. */
static int pf_begin_tcp(struct pf *pf) {
        if (pf->port == 0) {
                pf_reject(pf, EINVAL, "invalid remote port 0");
                return 0;
        }
        (void) timer_arm_in_ms(&pf->timer, CONNECT_TIMEOUT_MS);
        int n = resolve_literal(pf->host, pf->port, pf->addrs, RESOLVE_MAX);
        if (n > 0) {
                pf->n_addrs = (size_t) n;
                pf_try_next(pf);
                return 0;
        }
        /* The hosts file (and maybe DNS) can block: on the worker. */
        struct pf_resolve *res = calloc(1, sizeof *res);
        if (!res || !(res->host = strdup(pf->host))) {
                free(res);
                return -ENOMEM;
        }
        res->pf = pf;
        res->port = pf->port;
        res->job.run = resolve_run;
        res->job.done = resolve_done;
        res->job.timeout = resolve_timeout;
        pf->state = PF_RESOLVING;
        int rc = worker_submit(pf->a->worker, &res->job);
        if (rc < 0) {
                free(res->host);
                free(res);
                pf_fail_lookup(pf, EAGAIN, rc == -EBUSY ? WORKER_BUSY_TEXT : "cannot start name resolution");
                return 0;
        }
        pf->job = res;
        return 0;
}

/* Host names are bracketed IPv6 literals too. */
static char *host_dup(const char *host) {
        size_t hl = strlen(host);
        if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']')
                return strndup(host + 1, hl - 2);
        return strdup(host);
}

int portfwd_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len) {
        struct vsock_port_forward_request req = { 0 };
        const char *why = "request too large";
        /* A host name has at most 253 bytes, six each when escaped: larger
         * requests are refused unread rather than decoded on the loop (64
         * MiB of escapes would hold it for a second). */
        int rc = -EMSGSIZE;
        if (len <= PF_REQUEST_MAX) {
                why = NULL;
                rc = vsock_port_forward_request_decode(payload ? payload : (const uint8_t *) "", len, &req, &why);
        }
        free(payload);

        struct pf *pf = pf_new(s, false);
        if (!pf) {
                vsock_port_forward_request_clear(&req);
                return -ENOMEM;
        }
        if (rc < 0) {
                char msg[256];
                snprintf(msg, sizeof msg, "invalid port-forward request: %s", why ? why : "malformed");
                vsock_port_forward_request_clear(&req);
                pf_reject(pf, EINVAL, msg);
                return 0;
        }
        pf->host = host_dup(req.host && req.host[0] ? req.host : "127.0.0.1");
        pf->port = req.port;
        vsock_port_forward_request_clear(&req);
        if (!pf->host)
                return -ENOMEM;
        return pf_begin_tcp(pf);
}

/* ---- FwdConnect to a unix socket ------------------------------------------------ */

static void unix_run(struct worker_job *j) {
        struct pf_unix *u = container_of(j, struct pf_unix, job);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        memcpy(sa.sun_path, u->path, strlen(u->path)); /* length checked by the caller */
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                u->fd = -errno;
                return;
        }
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                u->fd = -errno;
                safe_close(fd);
                return;
        }
        int r = fd_set_nonblock(fd, 1);
        if (r < 0) {
                safe_close(fd);
                u->fd = r;
                return;
        }
        u->fd = fd;
}

static void unix_free(struct pf_unix *u) {
        if (u->fd >= 0)
                safe_close(u->fd);
        free(u->path);
        free(u);
}

static void unix_done(struct worker_job *j) {
        struct pf_unix *u = container_of(j, struct pf_unix, job);
        struct pf *pf = u->pf;
        if (!pf || j->cancelled) {
                if (pf) {
                        pf->ujob = NULL;
                        pf->last_err = EAGAIN;
                        pf_fail_connect(pf);
                }
                unix_free(u);
                return;
        }
        pf->ujob = NULL;
        if (u->fd < 0) {
                pf->last_err = -u->fd;
                unix_free(u);
                pf_fail_connect(pf);
                return;
        }
        watcher_init(&pf->w, pf->a->loop, TAKE_FD(u->fd), on_target);
        unix_free(u);
        pf_connected(pf);
}

static void unix_timeout(struct worker_job *j) {
        struct pf_unix *u = container_of(j, struct pf_unix, job);
        struct pf *pf = u->pf;
        if (!pf)
                return;
        u->pf = NULL;
        pf->ujob = NULL;
        pf->last_err = ETIMEDOUT;
        pf_fail_connect(pf);
}

static int pf_begin_unix(struct pf *pf) {
        struct sockaddr_un sa;
        if (pf->unix_path[0] != '/' || strlen(pf->unix_path) >= sizeof sa.sun_path) {
                pf_fail(pf, EINVAL, "not an absolute path of at most %zu bytes", sizeof sa.sun_path - 1);
                return 0;
        }
        struct pf_unix *u = calloc(1, sizeof *u);
        if (!u || !(u->path = strdup(pf->unix_path))) {
                free(u);
                return -ENOMEM;
        }
        u->pf = pf;
        u->fd = -EAGAIN;
        u->job = (struct worker_job) { .run = unix_run, .done = unix_done, .timeout = unix_timeout };
        pf->state = PF_CONNECTING;
        int rc = worker_submit(pf->a->worker, &u->job);
        if (rc < 0) {
                unix_free(u);
                pf->last_err = EAGAIN;
                pf_fail_connect(pf);
                return 0;
        }
        pf->ujob = u;
        return 0;
}

int fwdconnect_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len) {
        struct ext_fwd_connect req;
        if (fwd_request_decode(s, &ext_fwd_connect_shape, payload, len, &req) < 0)
                return 0;
        struct pf *pf = pf_new(s, true);
        if (!pf) {
                ext_fwd_connect_clear(&req);
                return -ENOMEM;
        }
        if ((req.port != 0) == (req.unix_path != NULL) || (req.unix_path && req.host)) {
                ext_fwd_connect_clear(&req);
                pf_reject(pf, EINVAL, "FwdConnect: give either port (and host) or unix");
                return 0;
        }
        if (req.unix_path) {
                pf->unix_path = TAKE_PTR(req.unix_path);
                ext_fwd_connect_clear(&req);
                return pf_begin_unix(pf);
        }
        pf->host = host_dup(req.host ? req.host : "127.0.0.1");
        pf->port = req.port;
        ext_fwd_connect_clear(&req);
        if (!pf->host)
                return -ENOMEM;
        return pf_begin_tcp(pf);
}

int portfwd_proxy_take(struct session *s, int fd) {
        struct pf *pf = pf_new(s, true);
        if (!pf) {
                safe_close(fd);
                return -ENOMEM;
        }
        pf->host = strdup("guest");
        watcher_init(&pf->w, pf->a->loop, fd, on_target);
        pf_connected(pf);
        return 0;
}
