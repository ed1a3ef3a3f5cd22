/* Agent start/stop, markers and test servers for the integration suites;
 * process inspection lives in proc-util.c. */
#include "agent-harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/io.h"

static bool env_has_entry(const char *env, size_t len, const char *marker, bool prefix) {
        size_t ml = strlen(marker);
        for (size_t off = 0; off < len;) {
                const char *e = env + off;
                size_t el = strnlen(e, len - off);
                if ((el == ml || (prefix && el > ml)) && memcmp(e, marker, ml) == 0)
                        return true;
                off += el + 1;
        }
        return false;
}

static size_t marker_scan(const char *marker, bool prefix, pid_t *pids, size_t max) {
        DIR *d = opendir("/proc");
        if (!d)
                return 0;
        size_t found = 0;
        size_t cap = 1 << 20;
        char *env = malloc(cap);
        struct dirent *de;
        while (env && (de = readdir(d))) {
                char *end;
                long pid = strtol(de->d_name, &end, 10);
                if (*end || pid <= 0 || pid == getpid())
                        continue;
                char p[64];
                snprintf(p, sizeof p, "/proc/%ld/environ", pid);
                int fd = open(p, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                size_t len = 0;
                ssize_t n;
                while (len < cap && (n = read(fd, env + len, cap - len)) > 0)
                        len += (size_t) n;
                close(fd);
                if (env_has_entry(env, len, marker, prefix) && proc_state((pid_t) pid) != 'Z') {
                        if (found < max)
                                pids[found] = (pid_t) pid;
                        found++;
                }
        }
        free(env);
        closedir(d);
        return found;
}

size_t marker_find(const char *marker, pid_t *pids, size_t max) { return marker_scan(marker, false, pids, max); }

bool marker_wait_gone(const char *marker, int bound_ms) {
        int64_t end = mono_ms() + bound_ms;
        pid_t pid;
        while (marker_find(marker, &pid, 1) > 0) {
                if (mono_ms() > end)
                        return false;
                pause_ms(10);
        }
        return true;
}

void marker_kill(const char *marker, bool prefix) {
        /* Again until several scans in a row find none: a process forked
         * while /proc was being read can be missed by one scan. */
        pid_t pids[256];
        int64_t end = mono_ms() + 5000;
        for (int empty = 0; empty < 3 && mono_ms() < end;) {
                size_t n = marker_scan(marker, prefix, pids, 256);
                empty = n == 0 ? empty + 1 : 0;
                for (size_t i = 0; i < n && i < 256; i++)
                        (void) kill(pids[i], SIGKILL);
                pause_ms(5);
        }
}

static unsigned marker_seq;

void marker_new(struct marker *m, const char *key) {
        snprintf(m->key, sizeof m->key, "%s", key);
        snprintf(m->value, sizeof m->value, "%d-%u", (int) getpid(), ++marker_seq);
        snprintf(m->entry, sizeof m->entry, "%s=%s", m->key, m->value);
        m->env = (struct vsock_env) { m->key, m->value };
}

size_t marker_count(const struct marker *m) {
        pid_t pids[64];
        return marker_find(m->entry, pids, 64);
}

bool marker_wait_count(const struct marker *m, size_t n, int bound_ms) {
        int64_t end = mono_ms() + bound_ms;
        while (marker_count(m) < n) {
                if (mono_ms() > end)
                        return false;
                pause_ms(5);
        }
        return true;
}

bool marker_end(const struct marker *m, int bound_ms, size_t *ret_left) {
        if (marker_wait_gone(m->entry, bound_ms))
                return true;
        size_t left = marker_count(m);
        marker_kill(m->entry, false);
        if (ret_left)
                *ret_left = left;
        return false;
}

void marker_kill_all(const char *key) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "%s=%d-", key, (int) getpid());
        marker_kill(prefix, true);
}

void nofile_raise(unsigned long want) {
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
                rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }
}

static int settled_fds(pid_t pid) {
        int prev = -1, cur;
        while ((cur = count_fds(pid)) != prev) {
                prev = cur;
                pause_ms(20);
        }
        return cur;
}

/* Start the agent; with @tty_master, on a new pseudo-terminal that is its
 * controlling terminal. */
static struct agent *agent_start_ex(const char *const *extra, int nofile, int *tty_master) {
        struct agent *a = calloc(1, sizeof *a);
        if (!a)
                return NULL;
        snprintf(a->dir, sizeof a->dir, "/tmp/vsock-agent-test-XXXXXX");
        if (!mkdtemp(a->dir) || chmod(a->dir, 0755) < 0) {
                perror(a->dir);
                rmdir(a->dir);
                free(a);
                return NULL;
        }
        snprintf(a->sock_path, sizeof a->sock_path, "%s/exec.sock", a->dir);
        snprintf(a->exec_addr, sizeof a->exec_addr, "unix:%s/exec.sock", a->dir);
        snprintf(a->ready_addr, sizeof a->ready_addr, "unix:%s/ready.sock", a->dir);
        const char *agent = getenv("AGENT");
        if (!agent) {
                fprintf(stderr, "AGENT is not set\n");
                free(a);
                return NULL;
        }
        const char *argv[40] = { agent, "--listen", a->exec_addr, "--ready", a->ready_addr };
        int n = 5;
        argv[n++] = getenv("AGENT_DEBUG") ? "--log-level=debug" : "--log-level=error";
        for (; extra && *extra && n < 38; extra++)
                argv[n++] = *extra;
        argv[n] = NULL;
        int master = -1;
        char slave_name[64] = "";
        if (tty_master) {
                master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
                if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 ||
                    ptsname_r(master, slave_name, sizeof slave_name) != 0) {
                        perror("pty");
                        if (master >= 0)
                                close(master);
                        free(a);
                        return NULL;
                }
        }
        a->pid = fork();
        if (a->pid < 0) {
                perror("fork");
                free(a);
                return NULL;
        }
        if (a->pid == 0) {
                if (nofile > 0) {
                        struct rlimit rl = { (rlim_t) nofile, (rlim_t) nofile };
                        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                                _exit(126);
                }
                if (tty_master) {
                        /* A session of its own whose terminal is the pty,
                         * as a login shell would give it. */
                        int fd = -1;
                        if (setsid() < 0 || (fd = open(slave_name, O_RDWR)) < 0 || ioctl(fd, TIOCSCTTY, 0) < 0 ||
                            dup2(fd, 0) < 0)
                                _exit(126);
                        close(fd);
                }
                execv(agent, (char *const *) argv);
                _exit(127);
        }
        /* Ready when the ready port accepts (the exec port is bound first). */
        int64_t end = mono_ms() + 20000;
        for (;;) {
                vsock_conn *c;
                if (vsock_dial_str(a->ready_addr, 0, 1000, -1, &c) >= 0) {
                        vsock_conn_close(c);
                        break;
                }
                int st;
                if (waitpid(a->pid, &st, WNOHANG) != 0 || mono_ms() > end) {
                        fprintf(stderr, "agent did not start\n");
                        kill(a->pid, SIGKILL);
                        waitpid(a->pid, &st, 0);
                        if (master >= 0)
                                close(master);
                        free(a);
                        return NULL;
                }
                pause_ms(2);
        }
        /* The ready connection is closed by the agent right away; let the
         * count settle before taking the baseline. */
        a->baseline_fds = settled_fds(a->pid);
        if (tty_master)
                *tty_master = master;
        return a;
}

struct agent *agent_start(const char *const *extra, int nofile) { return agent_start_ex(extra, nofile, NULL); }

struct agent *agent_start_tty(const char *const *extra, int *ret_master) {
        return agent_start_ex(extra, 0, ret_master);
}

int agent_warm_up(struct agent *a) {
        int r = 0;
        for (int i = 0; i < 2 && r >= 0; i++)
                r = agent_exec_true(a, 20000);
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_deadline_in(20000);
        struct vsock_file_entry *e = NULL;
        size_t n = 0;
        if (r >= 0)
                r = vsock_list_files_at(a->exec_addr, a->dir, &call, &e, &n);
        vsock_file_entries_free(e, n);
        if (r < 0)
                return r;
        int64_t end = mono_ms() + 10000;
        while (count_children(a->pid) != 0) {
                if (mono_ms() > end)
                        return -ETIMEDOUT;
                pause_ms(5);
        }
        a->baseline_fds = settled_fds(a->pid);
        return 0;
}

int agent_stop(struct agent *a, int bound_ms, int *ret_status) {
        if (!a)
                return 0;
        (void) kill(a->pid, SIGTERM);
        int64_t end = mono_ms() + bound_ms;
        int st = 0, rc = 0;
        while (waitpid(a->pid, &st, WNOHANG) == 0) {
                if (mono_ms() > end) {
                        fprintf(stderr, "agent %d did not exit within %d ms of SIGTERM\n", (int) a->pid, bound_ms);
                        kill(a->pid, SIGKILL);
                        waitpid(a->pid, &st, 0);
                        rc = -1;
                        break;
                }
                pause_ms(5);
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                rc = -1;
        if (ret_status)
                *ret_status = st;
        char p[160];
        snprintf(p, sizeof p, "%s/exec.sock", a->dir);
        unlink(p);
        snprintf(p, sizeof p, "%s/ready.sock", a->dir);
        unlink(p);
        rmdir(a->dir);
        free(a);
        return rc;
}

bool agent_wait_clean(struct agent *a, int bound_ms, int *ret_fds, int *ret_kids) {
        int64_t end = mono_ms() + bound_ms;
        int fds, kids;
        for (;;) {
                fds = count_fds(a->pid);
                kids = count_children(a->pid);
                if ((fds == a->baseline_fds && kids == 0) || mono_ms() > end)
                        break;
                pause_ms(5);
        }
        if (ret_fds)
                *ret_fds = fds;
        if (ret_kids)
                *ret_kids = kids;
        return fds == a->baseline_fds && kids == 0;
}

int agent_dial(const struct agent *a, int bound_ms, vsock_conn **ret) {
        vsock_conn *c = NULL;
        int r = vsock_dial_str(a->exec_addr, 0, bound_ms, -1, &c);
        if (r < 0)
                return r;
        vsock_conn_set_deadline(c, vsock_deadline_in(bound_ms));
        *ret = c;
        return 0;
}

int agent_exec_true(const struct agent *a, int bound_ms) {
        struct vsock_exec_request req = { .command = "true" };
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_deadline_in(bound_ms);
        struct vsock_exec_result res = { 0 };
        int r = vsock_exec_at(a->exec_addr, &req, &call, &res);
        if (r < 0)
                return r;
        r = res.exit_code == 0 ? 0 : -1;
        vsock_exec_result_clear(&res);
        return r;
}

int send_exec_request(vsock_conn *c, uint8_t type, const struct vsock_exec_request *req) {
        uint8_t *p;
        size_t n;
        int r = type == VSOCK_MSG_EXEC_TTY ? vsock_exec_tty_request_encode(req, &p, &n)
                                           : vsock_exec_request_encode(req, &p, &n);
        if (r < 0)
                return r;
        r = vsock_write_message(c, type, p, n);
        free(p);
        return r;
}

ssize_t conn_read_all(vsock_conn *c, void *buf, size_t size) {
        size_t have = 0;
        while (have < size) {
                ssize_t n = vsock_conn_read(c, (uint8_t *) buf + have, size - have);
                if (n < 0)
                        return n;
                if (n == 0)
                        break;
                have += (size_t) n;
        }
        return (ssize_t) have;
}

bool buf_contains(const struct buf *b, const char *s) {
        return buf_size(b) >= strlen(s) && memmem(buf_head(b), buf_size(b), s, strlen(s)) != NULL;
}

/* ---- loopback TCP target ------------------------------------------------------ */

#define TCP_MAX_CONNS 4096
#define TCP_CHUNK 65536

struct tcp_conn {
        int fd;
        size_t pending;         /* echo: bytes read but not yet written back */
        size_t off;
        uint8_t *buf;
};

struct tcp_server {
        enum tcp_server_mode mode;
        int lfd;
        int stop[2];
        uint16_t port;
        pthread_t th;
        atomic_uint accepted;
        atomic_uint open;
        struct tcp_conn *conns;
        size_t n;
};

static void tcp_conn_close(struct tcp_server *s, size_t i) {
        close(s->conns[i].fd);
        free(s->conns[i].buf);
        s->conns[i] = s->conns[--s->n];
        atomic_fetch_sub(&s->open, 1);
}

/* One event on connection @i; false when it was closed. */
static bool tcp_conn_event(struct tcp_server *s, size_t i, short rev) {
        struct tcp_conn *c = &s->conns[i];
        static const uint8_t zeros[TCP_CHUNK];
        switch (s->mode) {
        case TCP_SINK:
                if (rev & (POLLRDHUP | POLLHUP | POLLERR)) {
                        tcp_conn_close(s, i);
                        return false;
                }
                return true;
        case TCP_FLOOD:
                if (rev & (POLLRDHUP | POLLHUP | POLLERR)) {
                        tcp_conn_close(s, i);
                        return false;
                }
                if ((rev & POLLOUT) && send(c->fd, zeros, sizeof zeros, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 &&
                    errno != EAGAIN) {
                        tcp_conn_close(s, i);
                        return false;
                }
                return true;
        case TCP_ECHO:
                if (c->pending > 0) {
                        if (!(rev & (POLLOUT | POLLHUP | POLLERR)))
                                return true;
                        ssize_t n = send(c->fd, c->buf + c->off, c->pending, MSG_NOSIGNAL | MSG_DONTWAIT);
                        if (n < 0 && errno != EAGAIN) {
                                tcp_conn_close(s, i);
                                return false;
                        }
                        if (n > 0) {
                                c->off += (size_t) n;
                                c->pending -= (size_t) n;
                        }
                        return true;
                }
                if (!(rev & (POLLIN | POLLHUP | POLLERR)))
                        return true;
                ssize_t n = recv(c->fd, c->buf, TCP_CHUNK, MSG_DONTWAIT);
                if (n < 0 && errno == EAGAIN)
                        return true;
                if (n <= 0) {
                        tcp_conn_close(s, i);
                        return false;
                }
                c->pending = (size_t) n;
                c->off = 0;
                return true;
        }
        return true;
}

static void *tcp_server_main(void *p) {
        struct tcp_server *s = p;
        struct pollfd *pf = calloc(TCP_MAX_CONNS + 2, sizeof *pf);
        if (!pf)
                return NULL;
        for (;;) {
                pf[0] = (struct pollfd) { .fd = s->stop[0], .events = POLLIN };
                pf[1] = (struct pollfd) { .fd = s->lfd, .events = s->n < TCP_MAX_CONNS ? POLLIN : 0 };
                for (size_t i = 0; i < s->n; i++) {
                        short ev = POLLRDHUP;
                        if (s->mode == TCP_FLOOD)
                                ev |= POLLOUT;
                        else if (s->mode == TCP_ECHO)
                                ev = s->conns[i].pending ? POLLOUT : POLLIN;
                        pf[i + 2] = (struct pollfd) { .fd = s->conns[i].fd, .events = ev };
                }
                size_t n = s->n;
                if (poll(pf, n + 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (pf[0].revents)
                        break;
                /* Walk backwards: closing swaps the last connection in. */
                for (size_t i = n; i-- > 0;)
                        if (pf[i + 2].revents)
                                (void) tcp_conn_event(s, i, pf[i + 2].revents);
                if (pf[1].revents & POLLIN) {
                        int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                        if (fd >= 0) {
                                uint8_t *b = s->mode == TCP_ECHO ? malloc(TCP_CHUNK) : NULL;
                                if (s->mode == TCP_ECHO && !b) {
                                        close(fd);
                                        continue;
                                }
                                s->conns[s->n++] = (struct tcp_conn) { .fd = fd, .buf = b };
                                atomic_fetch_add(&s->accepted, 1);
                                atomic_fetch_add(&s->open, 1);
                        }
                }
        }
        while (s->n > 0)
                tcp_conn_close(s, s->n - 1);
        free(pf);
        return NULL;
}

int tcp_server_start(enum tcp_server_mode mode, struct tcp_server **ret) {
        return tcp_server_start_family(mode, AF_INET, ret);
}

int tcp_server_start_family(enum tcp_server_mode mode, int family, struct tcp_server **ret) {
        if (family != AF_INET && family != AF_INET6)
                return -EAFNOSUPPORT;
        struct tcp_server *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->mode = mode;
        s->stop[0] = s->stop[1] = -1;
        s->conns = calloc(TCP_MAX_CONNS, sizeof *s->conns);
        s->lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (!s->conns || s->lfd < 0 || pipe2(s->stop, O_CLOEXEC) < 0)
                goto fail;
        union {
                struct sockaddr sa;
                struct sockaddr_in in;
                struct sockaddr_in6 in6;
        } sa = { 0 };
        socklen_t sl;
        if (family == AF_INET) {
                sa.in = (struct sockaddr_in) { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                sl = sizeof sa.in;
        } else {
                sa.in6 = (struct sockaddr_in6) { .sin6_family = AF_INET6, .sin6_addr = in6addr_loopback };
                sl = sizeof sa.in6;
        }
        if (bind(s->lfd, &sa.sa, sl) < 0 || listen(s->lfd, 1024) < 0 || getsockname(s->lfd, &sa.sa, &sl) < 0)
                goto fail;
        s->port = ntohs(family == AF_INET ? sa.in.sin_port : sa.in6.sin6_port);
        if (pthread_create(&s->th, NULL, tcp_server_main, s) != 0)
                goto fail;
        *ret = s;
        return 0;
fail:
        for (int i = 0; i < 2; i++)
                if (s->stop[i] >= 0)
                        close(s->stop[i]);
        if (s->lfd >= 0)
                close(s->lfd);
        free(s->conns);
        free(s);
        return -EIO;
}

uint16_t tcp_server_port(const struct tcp_server *s) { return s->port; }
unsigned tcp_server_accepted(const struct tcp_server *s) { return atomic_load(&s->accepted); }
unsigned tcp_server_open(const struct tcp_server *s) { return atomic_load(&s->open); }

bool tcp_server_wait_idle(const struct tcp_server *s, int bound_ms) {
        int64_t end = mono_ms() + bound_ms;
        while (atomic_load(&s->open) > 0) {
                if (mono_ms() > end)
                        return false;
                pause_ms(5);
        }
        return true;
}

void tcp_server_stop(struct tcp_server *s) {
        if (!s)
                return;
        (void) !write(s->stop[1], "x", 1);
        pthread_join(s->th, NULL);
        close(s->stop[0]);
        close(s->stop[1]);
        close(s->lfd);
        free(s->conns);
        free(s);
}

/* ---- a file system that never answers ---------------------------------------- */

struct stall_fs *stall_fs_start(char *why, size_t why_size) {
        const char *helper = getenv("FUSE_STALL");
        if (!helper) {
                snprintf(why, why_size, "built without libfuse3 (no fuse-stall helper)");
                return NULL;
        }
        if (access("/dev/fuse", R_OK | W_OK) < 0) {
                snprintf(why, why_size, "/dev/fuse: %s", strerror(errno));
                return NULL;
        }
        struct stall_fs *f = calloc(1, sizeof *f);
        if (!f)
                return NULL;
        snprintf(f->dir, sizeof f->dir, "/tmp/vsock-stall-XXXXXX");
        int in[2] = { -1, -1 }, out[2] = { -1, -1 };
        if (!mkdtemp(f->dir) || pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
                snprintf(why, why_size, "set-up: %s", strerror(errno));
                goto fail;
        }
        f->pid = fork();
        if (f->pid < 0)
                goto fail;
        if (f->pid == 0) {
                if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
                        _exit(126);
                execl(helper, "fuse-stall", f->dir, (char *) NULL);
                _exit(127);
        }
        close(in[0]);
        close(out[1]);
        in[0] = out[1] = -1;
        f->release_fd = in[1];
        char line[16] = "";
        ssize_t n = io_read_full(out[0], line, 6, deadline_from_ms(20000), -1);
        close(out[0]);
        if (n != 6 || memcmp(line, "ready\n", 6) != 0) {
                snprintf(why, why_size, "fuse-stall could not mount on %s (its reason is on stderr)", f->dir);
                close(f->release_fd);
                kill(f->pid, SIGKILL);
                waitpid(f->pid, NULL, 0);
                rmdir(f->dir);
                free(f);
                return NULL;
        }
        return f;
fail:
        for (int i = 0; i < 2; i++) {
                if (in[i] >= 0)
                        close(in[i]);
                if (out[i] >= 0)
                        close(out[i]);
        }
        rmdir(f->dir);
        free(f);
        return NULL;
}

void stall_fs_release(struct stall_fs *f) {
        if (!f)
                return;
        close(f->release_fd);
        int64_t end = mono_ms() + 20000;
        while (waitpid(f->pid, NULL, WNOHANG) == 0) {
                if (mono_ms() > end) {
                        /* Its death aborts the connection: that releases too. */
                        kill(f->pid, SIGKILL);
                        waitpid(f->pid, NULL, 0);
                        break;
                }
                pause_ms(5);
        }
        (void) umount2(f->dir, MNT_DETACH);
        rmdir(f->dir);
        free(f);
}

const char *stall_fs_path(const struct stall_fs *f, const char *name, char *buf, size_t size) {
        snprintf(buf, size, "%s/%s", f->dir, name);
        return buf;
}
