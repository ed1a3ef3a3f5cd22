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

/* Pids whose environment holds the string @marker (e.g. "HOSTILE=42"),
 * zombies excluded; up to @max into @pids. Returns the count found. */
size_t marker_find(const char *marker, pid_t *pids, size_t max);
/* Wait (bounded) until no process carries @marker. */
bool marker_wait_gone(const char *marker, int bound_ms);
/* SIGKILL whatever still carries @marker, or with @prefix any entry that
 * starts with it (cleanup after a failed test). */
void marker_kill(const char *marker, bool prefix);

/* ---- the agent --------------------------------------------------------------- */

/* Start $AGENT on fresh unix sockets with @extra options (NULL-terminated,
 * may be NULL); @nofile > 0 sets its RLIMIT_NOFILE. Waits (bounded) until
 * the ready port accepts and its fd count settles. NULL on failure, with
 * the reason on stderr. */
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

/* ---- a loopback TCP target for port forwarding ---------------------------- */

enum tcp_server_mode {
        TCP_ECHO,       /* echo every byte back; close on EOF */
        TCP_SINK,       /* accept, never read; close when the peer hangs up */
        TCP_FLOOD,      /* write zeros as fast as the peer takes them */
};

struct tcp_server;

/* Listen on 127.0.0.1 (a free port) and serve from a thread. */
int tcp_server_start(enum tcp_server_mode mode, struct tcp_server **ret);
uint16_t tcp_server_port(const struct tcp_server *s);
/* Connections accepted so far, and those still open on the server side. */
unsigned tcp_server_accepted(const struct tcp_server *s);
unsigned tcp_server_open(const struct tcp_server *s);
/* Wait (bounded) until the server has no open connection. */
bool tcp_server_wait_idle(const struct tcp_server *s, int bound_ms);
void tcp_server_stop(struct tcp_server *s);
