/* Shared helpers for suites that drive the real agent ($AGENT) on
 * temporary unix sockets: start/stop it, watch its fds, children, memory
 * and CPU through /proc, and find stray processes by an environment
 * marker. Independent of cmocka (the soak program uses it too): every
 * helper returns a value or error code and the caller asserts. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <vsock/vsock.h>

#include "common/buf.h"
#include "lib/msg-internal.h"
#include "proc-util.h"

struct agent {
        pid_t pid;
        char dir[64];
        char exec_addr[128];
        char ready_addr[128];
        char sock_path[128];
        int baseline_fds;
};

/* ---- processes carrying an environment marker ------------------------------ */

/* A unique environment entry for the processes of one case: KEY=<pid>-<seq>. */
struct marker {
        char key[32];
        char entry[64];                 /* KEY=VALUE as in /proc/PID/environ */
        char value[32];
        struct vsock_env env;           /* for a request's env; points into the marker */
};

/* A new marker with @key, unique within this process. */
void marker_new(struct marker *m, const char *key);
/* Live processes carrying @m. */
size_t marker_count(const struct marker *m);
/* Wait (bounded) until at least @n processes carry @m. */
bool marker_wait_count(const struct marker *m, size_t n, int bound_ms);
/* Wait (bounded) until no process carries @m. At the bound, the number
 * still alive goes to *ret_left (if not NULL), they are SIGKILLed and the
 * answer is false. */
bool marker_end(const struct marker *m, int bound_ms, size_t *ret_left);
/* SIGKILL every process carrying a marker this process made with @key
 * (cleanup after a failed test). */
void marker_kill_all(const char *key);

/* Pids whose environment holds the string @marker (e.g. "HOSTILE=42"),
 * zombies excluded; up to @max into @pids. Returns the count found. */
size_t marker_find(const char *marker, pid_t *pids, size_t max);
/* Wait (bounded) until no process carries @marker. */
bool marker_wait_gone(const char *marker, int bound_ms);
/* SIGKILL whatever still carries @marker, or with @prefix any entry that
 * starts with it (cleanup after a failed test). */
void marker_kill(const char *marker, bool prefix);

/* ---- the agent --------------------------------------------------------------- */

/* Raise this process's soft RLIMIT_NOFILE to @want (at most the hard
 * limit): hundreds of sessions need fds on both sides, and an agent
 * started afterwards inherits it. */
void nofile_raise(unsigned long want);

/* Start $AGENT on fresh unix sockets with @extra options (NULL-terminated,
 * may be NULL); @nofile > 0 sets its RLIMIT_NOFILE. Its directory is 0755
 * (the sockets stay 0600), so a command run as another user can use it as
 * its cwd. Waits (bounded) until the ready port accepts and its fd count
 * settles. NULL on failure, with the reason on stderr. */
struct agent *agent_start(const char *const *extra, int nofile);
/* Use every path once (batch exec, file op on the worker thread) and take
 * the fd baseline again: the agent may keep fds open after first use (the
 * worker's, spawn's reserved slots). Returns 0, or < 0 if it failed. */
int agent_warm_up(struct agent *a);
/* SIGTERM it and wait up to @bound_ms. Returns 0 if it exited with status
 * 0, else -1 (killed with SIGKILL at the bound, or another status, which
 * goes to *ret_status if not NULL). Frees @a either way. */
int agent_stop(struct agent *a, int bound_ms, int *ret_status);
/* Wait (bounded) until the agent has its baseline fd count and no
 * children. Returns true when it does; the last figures go to *ret_fds and
 * *ret_kids (if not NULL). */
bool agent_wait_clean(struct agent *a, int bound_ms, int *ret_fds, int *ret_kids);

/* Dial the exec service (bounded); every later read and write on the
 * connection is bounded by @bound_ms too. */
int agent_dial(const struct agent *a, int bound_ms, vsock_conn **ret);
/* A batch `true` through the library: 0 when it ran and exited 0. */
int agent_exec_true(const struct agent *a, int bound_ms);

/* Send one request frame of @type built from @req (TTY types use the TTY
 * encoding). */
int send_exec_request(vsock_conn *c, uint8_t type, const struct vsock_exec_request *req);
/* Raw bytes (a forwarded stream) until EOF or @size of them. Returns the
 * count, or < 0 on a read error. */
ssize_t conn_read_all(vsock_conn *c, void *buf, size_t size);

/* Whether @b holds the bytes of @s anywhere. */
bool buf_contains(const struct buf *b, const char *s);

/* ---- a loopback TCP target for port forwarding ---------------------------- */

enum tcp_server_mode {
        TCP_ECHO,       /* echo every byte back; close on EOF */
        TCP_SINK,       /* accept, never read; close when the peer hangs up */
        TCP_FLOOD,      /* write zeros as fast as the peer takes them */
};

struct tcp_server;

/* Listen on 127.0.0.1 (a free port) and serve from a thread. */
int tcp_server_start(enum tcp_server_mode mode, struct tcp_server **ret);
/* The same on the loopback address of @family (AF_INET or AF_INET6). */
int tcp_server_start_family(enum tcp_server_mode mode, int family, struct tcp_server **ret);
uint16_t tcp_server_port(const struct tcp_server *s);
/* Connections accepted so far, and those still open on the server side. */
unsigned tcp_server_accepted(const struct tcp_server *s);
unsigned tcp_server_open(const struct tcp_server *s);
/* Wait (bounded) until the server has no open connection. */
bool tcp_server_wait_idle(const struct tcp_server *s, int bound_ms);
void tcp_server_stop(struct tcp_server *s);

/* ---- a file system that never answers (fuse-stall.c) --------------------- */

struct stall_fs {
        pid_t pid;
        int release_fd;                 /* its stdin: closing it releases */
        char dir[64];                   /* the mount point */
};

/* Mount $FUSE_STALL on a fresh directory and wait (bounded) until it
 * serves. NULL when that is not possible here, with the reason in @why
 * (no fuse3 at build time, no /dev/fuse, mounting refused). */
struct stall_fs *stall_fs_start(char *why, size_t why_size);
/* Answer everything it holds with EIO, unmount, reap it, remove the
 * directory. Every process stuck in it goes on. Accepts NULL. */
void stall_fs_release(struct stall_fs *f);
/* "@f->dir/@name" into @buf. */
const char *stall_fs_path(const struct stall_fs *f, const char *name, char *buf, size_t size);

/* ---- the agent with a controlling terminal ----------------------------------- */

/* agent_start(), but the agent leads a session whose controlling terminal
 * is a new pseudo-terminal (as when started from a shell); its master goes
 * to *ret_master. */
struct agent *agent_start_tty(const char *const *extra, int *ret_master);
