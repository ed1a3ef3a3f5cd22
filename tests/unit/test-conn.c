/* Connections and listeners: unix, abstract unix, TCP on loopback, wrapped
 * fds, and AF_VSOCK listening only (never connecting: this machine's vsock
 * peer is infrastructure). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/io.h"
#include "vsock/conn.h"
#include "vsock/error.h"
#include "vsock/frame.h"

/* Unusual high ports for AF_VSOCK listen tests (5000-5002, 2024 are taken),
 * spread by pid so that test runs in parallel build trees do not collide. */
static unsigned test_vsock_port(void) { return 47600u + 2u * ((unsigned) getpid() % 4000u); }
#define TEST_VSOCK_PORT test_vsock_port()

struct tmp {
        char dir[64];
};

static int tmp_setup(void **state) {
        struct tmp *t = calloc(1, sizeof *t);
        strcpy(t->dir, "/tmp/vsock-conn-XXXXXX");
        if (!mkdtemp(t->dir))
                return -1;
        *state = t;
        return 0;
}

static int tmp_teardown(void **state) {
        struct tmp *t = *state;
        DIR *d = opendir(t->dir);
        if (d) {
                struct dirent *e;
                while ((e = readdir(d)))
                        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                                (void) unlinkat(dirfd(d), e->d_name, 0);
                closedir(d);
        }
        rmdir(t->dir);
        free(t);
        return 0;
}

static struct vsock_addr unix_addr(const struct tmp *t, const char *name) {
        struct vsock_addr a = { .transport = VSOCK_TRANSPORT_UNIX };
        snprintf(a.path, sizeof a.path, "%s/%s", t->dir, name);
        return a;
}

static int count_entries(const char *dir) {
        DIR *d = opendir(dir);
        assert_non_null(d);
        int n = 0;
        struct dirent *e;
        while ((e = readdir(d)))
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                        n++;
        closedir(d);
        return n;
}

static void assert_fd_flags(int fd) {
        int fl = fcntl(fd, F_GETFL);
        assert_true(fl >= 0);
        assert_true(fl & O_NONBLOCK);
        int fdfl = fcntl(fd, F_GETFD);
        assert_true(fdfl >= 0);
        assert_true(fdfl & FD_CLOEXEC);
}

/* Both directions carry data. */
static void exchange(vsock_conn *a, vsock_conn *b) {
        char buf[16];
        vsock_conn_set_deadline(a, vsock_deadline_in(30000));
        vsock_conn_set_deadline(b, vsock_deadline_in(30000));
        assert_int_equal(vsock_conn_write(a, "ping", 4), 0);
        assert_int_equal(vsock_conn_read_full(b, buf, 4, NULL), 0);
        assert_memory_equal(buf, "ping", 4);
        assert_int_equal(vsock_write_message(b, 2, "pong", 4), 0);
        uint8_t type, *data;
        uint32_t len;
        assert_int_equal(vsock_read_message(a, &type, &data, &len), 0);
        assert_int_equal(type, 2);
        assert_memory_equal(data, "pong", 4);
        free(data);
}

/* ---- unix -------------------------------------------------------------- */

static void test_unix_listen_accept_dial(void **state) {
        struct tmp *t = *state;
        struct vsock_addr a = unix_addr(t, "s.sock");
        vsock_listener *l;
        assert_int_equal(vsock_listen_addr(&a, 0, 0600, &l), 0);
        assert_fd_flags(vsock_listener_fd(l));
        assert_string_equal(vsock_listener_addr(l)->path, a.path);

        vsock_conn *c, *s;
        assert_int_equal(vsock_dial_addr(&a, 5000, -1, &c), 0);
        assert_int_equal(vsock_accept(l, 5000, &s), 0);
        assert_fd_flags(vsock_conn_fd(c));
        assert_fd_flags(vsock_conn_fd(s));

        /* SO_PEERCRED both ways: we are on both ends. */
        const struct vsock_peer *p = vsock_conn_peer(s);
        assert_int_equal(p->transport, VSOCK_TRANSPORT_UNIX);
        assert_true(p->has_cred);
        assert_int_equal(p->uid, getuid());
        assert_int_equal(p->gid, getgid());
        assert_int_equal(p->pid, getpid());
        p = vsock_conn_peer(c);
        assert_true(p->has_cred);
        assert_int_equal(p->uid, getuid());

        assert_int_equal(vsock_conn_remote_addr(c)->transport, VSOCK_TRANSPORT_UNIX);
        assert_string_equal(vsock_conn_remote_addr(c)->path, a.path);
        assert_string_equal(vsock_conn_local_addr(s)->path, a.path);

        exchange(c, s);

        /* Half-close: the other side sees EOF, then can still answer. */
        assert_int_equal(vsock_conn_shutdown_write(c), 0);
        char buf[4];
        assert_int_equal(vsock_conn_read(s, buf, sizeof buf), 0);
        assert_int_equal(vsock_conn_write(s, "ok", 2), 0);
        assert_int_equal(vsock_conn_read_full(c, buf, 2, NULL), 0);

        /* read_full at EOF reports how much came. */
        assert_int_equal(vsock_conn_write(s, "abc", 3), 0);
        assert_int_equal(vsock_conn_close(s), 0);
        size_t got = 0;
        assert_int_equal(vsock_conn_read_full(c, buf, 4, &got), VSOCK_ERR(VSOCK_E_CLOSED, EPIPE));
        assert_int_equal(got, 3);

        assert_int_equal(vsock_conn_close(c), 0);
        assert_int_equal(vsock_listener_close(l), 0);
        /* The socket file is gone with the listener. */
        struct stat st;
        assert_int_equal(lstat(a.path, &st), -1);
        assert_int_equal(errno, ENOENT);
        assert_int_equal(vsock_listener_close(NULL), 0);
        assert_int_equal(vsock_conn_close(NULL), 0);
}

static void test_unix_mode(void **state) {
        struct tmp *t = *state;
        /* A umask that would give a looser (and a tighter) mode than asked:
         * the result must not depend on it. */
        mode_t old = umask(022);
        static const unsigned modes[] = { 0600, 0660, 0666, 0700 };
        for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
                struct vsock_addr a = unix_addr(t, "m.sock");
                vsock_listener *l;
                assert_int_equal(vsock_listen_addr(&a, 0, modes[i], &l), 0);
                struct stat st;
                assert_int_equal(lstat(a.path, &st), 0);
                assert_true(S_ISSOCK(st.st_mode));
                assert_int_equal(st.st_mode & 07777, modes[i]);
                /* No temporary directory left behind. */
                assert_int_equal(count_entries(t->dir), 1);
                /* And it works after the rename. */
                vsock_conn *c, *s;
                assert_int_equal(vsock_dial_addr(&a, 5000, -1, &c), 0);
                assert_int_equal(vsock_accept(l, 5000, &s), 0);
                exchange(c, s);
                vsock_conn_close(c);
                vsock_conn_close(s);
                assert_int_equal(vsock_listener_close(l), 0);
                assert_int_equal(count_entries(t->dir), 0);
        }
        umask(old);
}

static void test_unix_long_path_mode(void **state) {
        /* A path so long that the private temporary name would not fit
         * sun_path: the /proc/self/fd route must take over. */
        struct tmp *t = *state;
        struct vsock_addr a = { .transport = VSOCK_TRANSPORT_UNIX };
        size_t base = strlen(t->dir) + 1;
        size_t room = sizeof a.path - 1 - base;
        snprintf(a.path, sizeof a.path, "%s/", t->dir);
        memset(a.path + base, 'L', room);
        a.path[base + room] = 0;
        assert_int_equal(strlen(a.path), sizeof a.path - 1);

        vsock_listener *l;
        int r = vsock_listen_addr(&a, 0, 0640, &l);
        if (r < 0 && access("/proc/self/fd", F_OK) < 0) {
                print_message("no /proc: skipping\n");
                skip();
        }
        assert_int_equal(r, 0);
        struct stat st;
        assert_int_equal(lstat(a.path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0640);
        vsock_conn *c, *s;
        assert_int_equal(vsock_dial_addr(&a, 5000, -1, &c), 0);
        assert_int_equal(vsock_accept(l, 5000, &s), 0);
        vsock_conn_close(c);
        vsock_conn_close(s);
        vsock_listener_close(l);
        assert_int_equal(count_entries(t->dir), 0);
}

static void make_stale_socket(const char *path) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un un = { .sun_family = AF_UNIX };
        assert_true(strlen(path) < sizeof un.sun_path);
        memcpy(un.sun_path, path, strlen(path) + 1);
        assert_int_equal(bind(fd, (struct sockaddr *) &un, sizeof un), 0);
        close(fd); /* the file stays, nobody listens */
}

static void test_unix_stale_and_foreign(void **state) {
        struct tmp *t = *state;
        struct vsock_addr a = unix_addr(t, "stale.sock");
        vsock_listener *l, *l2;
        struct stat st;

        /* A stale socket (no listener) is replaced, with or without mode. */
        for (int i = 0; i < 2; i++) {
                make_stale_socket(a.path);
                assert_int_equal(vsock_listen_addr(&a, 0, i ? 0600 : 0, &l), 0);
                vsock_conn *c, *s;
                assert_int_equal(vsock_dial_addr(&a, 5000, -1, &c), 0);
                assert_int_equal(vsock_accept(l, 5000, &s), 0);
                vsock_conn_close(c);
                vsock_conn_close(s);

                /* A live one is not stolen. */
                int r = vsock_listen_addr(&a, 0, i ? 0600 : 0, &l2);
                assert_int_equal(r, VSOCK_ERR(VSOCK_E_BIND, EADDRINUSE));
                assert_int_equal(lstat(a.path, &st), 0);
                assert_int_equal(vsock_dial_addr(&a, 5000, -1, &c), 0);
                assert_int_equal(vsock_accept(l, 5000, &s), 0);
                vsock_conn_close(c);
                vsock_conn_close(s);
                vsock_listener_close(l);
        }

        /* Not a socket: never removed. */
        struct vsock_addr f = unix_addr(t, "regular");
        FILE *fp = fopen(f.path, "we");
        fputs("keep me", fp);
        fclose(fp);
        for (int i = 0; i < 2; i++) {
                int r = vsock_listen_addr(&f, 0, i ? 0600 : 0, &l);
                assert_int_equal(r, VSOCK_ERR(VSOCK_E_BIND, EADDRINUSE));
                assert_int_equal(lstat(f.path, &st), 0);
                assert_true(S_ISREG(st.st_mode));
                assert_int_equal(st.st_size, 7);
        }
        struct vsock_addr dir = unix_addr(t, "adir");
        assert_int_equal(mkdir(dir.path, 0700), 0);
        assert_int_equal(vsock_listen_addr(&dir, 0, 0600, &l), VSOCK_ERR(VSOCK_E_BIND, EADDRINUSE));
        rmdir(dir.path);
        assert_int_equal(count_entries(t->dir), 1); /* only "regular" */
}

static void test_unix_close_spares_successor(void **state) {
        struct tmp *t = *state;
        struct vsock_addr a = unix_addr(t, "succ.sock");
        vsock_listener *l;
        assert_int_equal(vsock_listen_addr(&a, 0, 0600, &l), 0);
        /* Someone replaced the path (e.g. a newer server): closing the old
         * listener must not delete the new file. */
        char other[200];
        snprintf(other, sizeof other, "%s/other", t->dir);
        FILE *fp = fopen(other, "we");
        fclose(fp);
        assert_int_equal(rename(other, a.path), 0);
        assert_int_equal(vsock_listener_close(l), 0);
        struct stat st;
        assert_int_equal(lstat(a.path, &st), 0);
        assert_true(S_ISREG(st.st_mode));
}

static void test_unix_abstract(void **state) {
        struct vsock_addr a = { .transport = VSOCK_TRANSPORT_UNIX };
        snprintf(a.path, sizeof a.path, "@vsock-test-%d", (int) getpid());
        vsock_listener *l;
        assert_int_equal(vsock_listen_addr(&a, 0, 0600, &l), 0);
        char s[200];
        snprintf(s, sizeof s, "unix:%s", a.path);
        vsock_conn *c, *srv;
        assert_int_equal(vsock_dial_str(s, 0, 5000, -1, &c), 0);
        assert_int_equal(vsock_accept(l, 5000, &srv), 0);
        assert_string_equal(vsock_conn_local_addr(srv)->path, a.path);
        exchange(c, srv);
        vsock_conn_close(c);
        vsock_conn_close(srv);
        vsock_listener_close(l);
}

static void test_unix_dial_errors(void **state) {
        struct tmp *t = *state;
        vsock_conn *c = NULL;
        struct vsock_addr a = unix_addr(t, "nothing-here");
        int r = vsock_dial_addr(&a, 1000, -1, &c);
        assert_int_equal(r, VSOCK_ERR(VSOCK_E_CONNECT, ENOENT));
        assert_null(c);

        a = unix_addr(t, "stale");
        make_stale_socket(a.path);
        r = vsock_dial_addr(&a, 1000, -1, &c);
        assert_int_equal(r, VSOCK_ERR(VSOCK_E_CONNECT, ECONNREFUSED));

        /* Bad address strings surface as such. */
        r = vsock_dial_str("bogus", 0, 1000, -1, &c);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_BAD_ADDRESS);
        r = vsock_dial_str("vsock-mux:/x:4294967295", 0, 1000, -1, &c);
        assert_int_equal(r, VSOCK_ERR(VSOCK_E_CONNECT, EINVAL));
}

/* Fills a unix listener's backlog so a further connect gets EAGAIN; the
 * dialer then retries until its deadline or cancel fd. */
static void test_unix_dial_timeout_and_cancel(void **state) {
        struct tmp *t = *state;
        struct vsock_addr a = unix_addr(t, "full.sock");
        vsock_listener *l;
        assert_int_equal(vsock_listen_addr(&a, 1, 0, &l), 0);
        int fillers[64], nf = 0;
        for (; nf < 64; nf++) {
                int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                struct sockaddr_un un = { .sun_family = AF_UNIX };
                strcpy(un.sun_path, a.path);
                if (connect(fd, (struct sockaddr *) &un, sizeof un) < 0) {
                        assert_int_equal(errno, EAGAIN);
                        close(fd);
                        break;
                }
                fillers[nf] = fd;
        }
        assert_true(nf < 64);

        vsock_conn *c = NULL;
        int64_t t0 = vsock_now_ns();
        int r = vsock_dial_addr(&a, 100, -1, &c);
        int64_t el = vsock_now_ns() - t0;
        assert_int_equal(vsock_err_kind(r), VSOCK_E_TIMEOUT);
        assert_true(el >= 95 * 1000000LL);
        assert_true(el < 20 * 1000000000LL);

        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(write(p[1], "x", 1), 1);
        r = vsock_dial_addr(&a, -1, p[0], &c);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_CANCELLED);
        assert_null(c);
        close(p[0]);
        close(p[1]);

        /* Once there is room, a dial goes through. */
        vsock_conn *s;
        assert_int_equal(vsock_accept(l, 5000, &s), 0);
        vsock_conn_close(s);
        assert_int_equal(vsock_dial_addr(&a, 5000, -1, &c), 0);
        vsock_conn_close(c);

        for (int i = 0; i < nf; i++)
                close(fillers[i]);
        vsock_listener_close(l);
}

static void test_accept_timeout_and_fd(void **state) {
        struct tmp *t = *state;
        struct vsock_addr a = unix_addr(t, "acc.sock");
        vsock_listener *l;
        assert_int_equal(vsock_listen_addr(&a, 0, 0600, &l), 0);

        vsock_conn *s = NULL;
        int r = vsock_accept(l, 50, &s);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_TIMEOUT);
        assert_null(s);

        struct vsock_peer peer;
        assert_int_equal(vsock_accept_fd(l, &peer), -EAGAIN);

        vsock_conn *c;
        assert_int_equal(vsock_dial_addr(&a, 5000, -1, &c), 0);
        memset(&peer, 0xAA, sizeof peer);
        int fd = vsock_accept_fd(l, &peer);
        assert_true(fd >= 0);
        assert_fd_flags(fd);
        assert_int_equal(peer.transport, VSOCK_TRANSPORT_UNIX);
        assert_true(peer.has_cred);
        assert_int_equal(peer.uid, getuid());
        assert_int_equal(peer.pid, getpid());
        close(fd);
        vsock_conn_close(c);

        /* Out of fds: EMFILE comes through as a plain errno so an event
         * loop can back off. */
        assert_int_equal(vsock_dial_addr(&a, 5000, -1, &c), 0);
        struct rlimit old, low;
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
        /* The lowest free fd: every fd below it is taken, so with the
         * limit set to it no new fd can be created. */
        int lowest = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(lowest >= 0);
        close(lowest);
        low = old;
        low.rlim_cur = (rlim_t) lowest;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
        r = vsock_accept_fd(l, &peer);
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
        assert_int_equal(r, -EMFILE);
        /* The connection is still pending and can be taken now. */
        fd = vsock_accept_fd(l, &peer);
        assert_true(fd >= 0);
        close(fd);
        vsock_conn_close(c);
        vsock_listener_close(l);
}

static void test_conn_read_deadline(void **state) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        vsock_conn *c;
        assert_int_equal(vsock_conn_from_fd(sv[0], &c), 0);
        char buf[4];
        vsock_conn_set_read_deadline(c, vsock_deadline_in(50));
        ssize_t r = vsock_conn_read(c, buf, sizeof buf);
        assert_int_equal(vsock_err_kind((int) r), VSOCK_E_TIMEOUT);
        r = vsock_conn_read_full(c, buf, sizeof buf, NULL);
        assert_int_equal(vsock_err_kind((int) r), VSOCK_E_TIMEOUT);
        /* Data that is there is read even with a short deadline. */
        assert_int_equal(write(sv[1], "ab", 2), 2);
        vsock_conn_set_read_deadline(c, vsock_deadline_in(1000));
        assert_int_equal(vsock_conn_read(c, buf, sizeof buf), 2);
        vsock_conn_close(c);
        close(sv[1]);
}

/* ---- wrapped fds ------------------------------------------------------- */

static void test_conn_from_fd(void **state) {
        int sv[2];
        /* Blocking and without CLOEXEC: the wrap fixes both. */
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        vsock_conn *a, *b;
        assert_int_equal(vsock_conn_from_fd(sv[0], &a), 0);
        assert_int_equal(vsock_conn_from_fd(sv[1], &b), 0);
        assert_fd_flags(sv[0]);
        assert_fd_flags(sv[1]);
        assert_int_equal(vsock_conn_fd(a), sv[0]);
        assert_int_equal(vsock_conn_max_payload(a), VSOCK_MAX_PAYLOAD_DEFAULT);
        assert_int_equal(vsock_conn_cancel_fd(a), -1);
        /* socketpair peers are ourselves. */
        assert_true(vsock_conn_peer(a)->has_cred);
        assert_int_equal(vsock_conn_peer(a)->pid, getpid());
        exchange(a, b);

        int fd = vsock_conn_release_fd(a);
        assert_int_equal(fd, sv[0]);
        assert_fd_flags(fd); /* stays non-blocking */
        assert_int_equal(write(fd, "z", 1), 1);
        char ch;
        assert_int_equal(vsock_conn_read(b, &ch, 1), 1);
        assert_int_equal(ch, 'z');
        close(fd);
        vsock_conn_close(b);

        /* Bad fd: error, and nothing is taken. */
        assert_true(vsock_conn_from_fd(-1, &a) < 0);
        int nfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        close(nfd);
        assert_int_equal(vsock_conn_from_fd(nfd, &a), -EBADF);
}

/* ---- TCP --------------------------------------------------------------- */

static void tcp_round(const char *host) {
        struct vsock_addr a = { .transport = VSOCK_TRANSPORT_TCP, .port = 0 };
        strcpy(a.host, host);
        vsock_listener *l;
        int r = vsock_listen_addr(&a, 0, 0, &l);
        if (r < 0 && strchr(host, ':')) {
                print_message("no IPv6 loopback (%s): skipping\n", vsock_strerror(r));
                skip();
        }
        assert_int_equal(r, 0);
        const struct vsock_addr *la = vsock_listener_addr(l);
        assert_int_equal(la->transport, VSOCK_TRANSPORT_TCP);
        assert_string_equal(la->host, host);
        assert_true(la->port > 0);

        char s[128];
        assert_true(vsock_addr_format(la, s, sizeof s) > 0);
        vsock_conn *c, *srv;
        assert_int_equal(vsock_dial_str(s, 0, 5000, -1, &c), 0);
        assert_int_equal(vsock_accept(l, 5000, &srv), 0);

        int nd = 0;
        socklen_t nl = sizeof nd;
        assert_int_equal(getsockopt(vsock_conn_fd(c), IPPROTO_TCP, TCP_NODELAY, &nd, &nl), 0);
        assert_true(nd);

        /* The peer's port is the dialer's local port. */
        assert_int_equal(vsock_conn_peer(srv)->transport, VSOCK_TRANSPORT_TCP);
        assert_int_equal(vsock_conn_peer(srv)->port, vsock_conn_local_addr(c)->port);
        assert_int_equal(vsock_conn_remote_addr(c)->port, la->port);
        assert_string_equal(vsock_conn_remote_addr(c)->host, host);
        exchange(c, srv);
        vsock_conn_close(c);
        vsock_conn_close(srv);

        /* Refused once the listener is gone. */
        uint32_t port = la->port;
        vsock_listener_close(l);
        a.port = port;
        r = vsock_dial_addr(&a, 5000, -1, &c);
        assert_int_equal(r, VSOCK_ERR(VSOCK_E_CONNECT, ECONNREFUSED));
}

static void test_tcp_ipv4(void **state) {
        tcp_round("127.0.0.1");
}

static void test_tcp_ipv6(void **state) {
        tcp_round("::1");
}

static void test_tcp_localhost_name(void **state) {
        struct vsock_addr a = { .transport = VSOCK_TRANSPORT_TCP };
        strcpy(a.host, "127.0.0.1");
        vsock_listener *l;
        assert_int_equal(vsock_listen_addr(&a, 0, 0, &l), 0);
        char s[64];
        snprintf(s, sizeof s, "tcp:localhost:%u", vsock_listener_addr(l)->port);
        /* "localhost" may resolve to ::1 first: the dialer tries each. */
        vsock_conn *c, *srv;
        assert_int_equal(vsock_dial_str(s, 0, 5000, -1, &c), 0);
        assert_int_equal(vsock_accept(l, 5000, &srv), 0);
        vsock_conn_close(c);
        vsock_conn_close(srv);
        vsock_listener_close(l);
}

/* ---- a half-close told from a full close ------------------------------- */

static void test_peer_gone_unix(void **state) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_false(io_peer_gone(sv[0]));
        assert_int_equal(shutdown(sv[1], SHUT_WR), 0);
        assert_false(io_peer_gone(sv[0])); /* a half-close: still a reader */
        close(sv[1]);
        assert_true(io_peer_gone(sv[0]));
        close(sv[0]);
}

static void test_peer_gone_tcp(void **state) {
        struct vsock_addr a = { .transport = VSOCK_TRANSPORT_TCP };
        strcpy(a.host, "127.0.0.1");
        vsock_listener *l;
        assert_int_equal(vsock_listen_addr(&a, 0, 0, &l), 0);
        a.port = vsock_listener_addr(l)->port;
        vsock_conn *c, *srv;
        assert_int_equal(vsock_dial_addr(&a, 5000, -1, &c), 0);
        assert_int_equal(vsock_accept(l, 5000, &srv), 0);
        assert_int_equal(vsock_conn_shutdown_write(c), 0);
        assert_false(io_peer_gone(vsock_conn_fd(srv)));
        /* TCP's close is a FIN like a half-close: documented as unknowable
         * without sending data. */
        vsock_conn_close(c);
        assert_false(io_peer_gone(vsock_conn_fd(srv)));
        vsock_conn_close(srv);
        vsock_listener_close(l);
}

/* ---- listen_addr contract ---------------------------------------------- */

static void test_listen_mux_refused(void **state) {
        struct vsock_addr a = { .transport = VSOCK_TRANSPORT_MUX, .port = 5000 };
        strcpy(a.path, "/tmp/whatever.sock");
        vsock_listener *l = NULL;
        int r = vsock_listen_addr(&a, 0, 0600, &l);
        assert_int_equal(r, VSOCK_ERR(VSOCK_E_BAD_ADDRESS, EINVAL));
        assert_int_equal(vsock_err_errno(r), EINVAL);
        assert_null(l);
}

/* ---- AF_VSOCK (listen only) -------------------------------------------- */

static void test_vsock_local_cid(void **state) {
        if (access("/dev/vsock", F_OK) < 0) {
                print_message("/dev/vsock missing: skipping\n");
                skip();
        }
        uint32_t cid = 0;
        int r = vsock_get_local_cid(&cid);
        if (r < 0)
                fail_msg("vsock_get_local_cid: %s", vsock_strerror(r));
        print_message("local CID: %u\n", cid);
        assert_true(cid != VSOCK_CID_ANY);
}

static void test_vsock_listen(void **state) {
        vsock_listener *l;
        int r = vsock_listen(TEST_VSOCK_PORT, &l);
        if (r < 0 && vsock_err_kind(r) == VSOCK_E_CREATE_SOCKET) {
                print_message("AF_VSOCK unavailable (%s): skipping\n", vsock_strerror(r));
                skip();
        }
        if (r < 0)
                fail_msg("vsock_listen: %s", vsock_strerror(r));
        assert_fd_flags(vsock_listener_fd(l));
        const struct vsock_addr *a = vsock_listener_addr(l);
        assert_int_equal(a->transport, VSOCK_TRANSPORT_VSOCK);
        assert_int_equal(a->port, TEST_VSOCK_PORT);
        struct vsock_peer peer;
        assert_int_equal(vsock_accept_fd(l, &peer), -EAGAIN);
        vsock_conn *c = NULL;
        assert_int_equal(vsock_err_kind(vsock_accept(l, 20, &c)), VSOCK_E_TIMEOUT);

        /* The same port twice: a bind error with its errno. */
        vsock_listener *l2;
        r = vsock_listen_cid(VSOCK_CID_ANY, TEST_VSOCK_PORT, &l2);
        assert_int_equal(r, VSOCK_ERR(VSOCK_E_BIND, EADDRINUSE));
        assert_int_equal(vsock_listener_close(l), 0);

        /* Through the address string. */
        struct vsock_addr sa;
        char s[64];
        snprintf(s, sizeof s, "vsock::%u", TEST_VSOCK_PORT + 1);
        assert_int_equal(vsock_addr_parse(s, 0, &sa, NULL), 0);
        assert_int_equal(vsock_listen_addr(&sa, 16, 0, &l), 0);
        assert_int_equal(vsock_listener_addr(l)->port, TEST_VSOCK_PORT + 1);
        vsock_listener_close(l);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, tmp_setup, tmp_teardown)
        const struct CMUnitTest tests[] = {
                T(test_unix_listen_accept_dial),
                T(test_unix_mode),
                T(test_unix_long_path_mode),
                T(test_unix_stale_and_foreign),
                T(test_unix_close_spares_successor),
                cmocka_unit_test(test_unix_abstract),
                T(test_unix_dial_errors),
                T(test_unix_dial_timeout_and_cancel),
                T(test_accept_timeout_and_fd),
                cmocka_unit_test(test_conn_read_deadline),
                cmocka_unit_test(test_conn_from_fd),
                cmocka_unit_test(test_tcp_ipv4),
                cmocka_unit_test(test_tcp_ipv6),
                cmocka_unit_test(test_tcp_localhost_name),
                cmocka_unit_test(test_peer_gone_unix),
                cmocka_unit_test(test_peer_gone_tcp),
                cmocka_unit_test(test_listen_mux_refused),
                cmocka_unit_test(test_vsock_local_cid),
                cmocka_unit_test(test_vsock_listen),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
