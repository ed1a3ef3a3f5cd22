/* State shared by the agent's modules: one instance, owned by main.c. */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/serve/ext.h"
#include "agent/serve/loop.h"
#include "common/budget.h"

struct procs;
struct session;
struct session_handler;
struct sandbox;
struct worker;

/* Bounds on what one session may hold in memory. */
#define AGENT_QUEUE_HIGH (256u * 1024)  /* stop reading sources above this */
#define AGENT_QUEUE_LOW (64u * 1024)    /* resume below this */
#define AGENT_READ_CHUNK (64u * 1024)   /* one read from a source */
/* --memory-budget's default: what replies and requests held for hosts
 * may take, all sessions together. */
#define AGENT_BUDGET_DEFAULT_MIB 64u
/* Text of the error replies a budget refusal causes. */
#define AGENT_BUDGET_TEXT "agent memory budget exhausted"

struct agent {
        struct loop *loop;
        const struct sandbox *sandbox;  /* NULL: --privileged */
        bool pid_ns;                    /* --pid-ns: a PID namespace per command */
        struct worker *worker;          /* file operations, name lookups */
        struct worker *spawner;         /* starting commands */
        int idle_timeout_ms;            /* no complete request by then: close */
        int io_timeout_ms;              /* a worker job that takes longer is given up */
        int send_timeout_ms;            /* a queue that moves for none of it: lost */
        int grace_ms;                   /* SIGTERM -> SIGKILL */
        int linger_ms;                  /* output drain after the main process exits */
        /* Who may use the exec service. */
        uint32_t *allow_cids;           /* vsock peers (default: the host, 2) */
        size_t n_allow_cids;
        uint32_t *allow_uids;            /* unix peers besides root and our uid */
        size_t n_allow_uids;
        bool insecure_tcp;              /* TCP on a non-loopback address */
        /* Started and not reaped yet (child.c). */
        struct child_list {
                struct child *head;
                size_t n;
        } children;
        /* Every signal whose disposition the agent changed from SIG_DFL
         * (ignored or handled): each command resets exactly these. Add to
         * it wherever a disposition changes. */
        sigset_t changed_signals;
        /* Commands being started on a worker thread: their pids are not
         * known to child.c yet, so init mode's orphan reaper must wait. */
        unsigned spawns_pending;
        bool shutting_down;
        uint64_t next_session_id;
        /* Memory held for hosts: send queues, replies being built,
         * batch output, requests arriving (--memory-budget). */
        struct budget budget;
        struct session *sessions;       /* all live sessions (list) */
        size_t n_sessions;
        /* What each request type starts, indexed by message type (see
         * session.h); NULL: the agent's own table. */
        const struct session_handler *handlers;
        /* The guest kernel's boot id, read once at start (HelloReply). */
        char boot_id[EXT_BOOT_ID_SIZE];
        /* Detached processes (procs.h); NULL: not served. */
        struct procs *procs;
};

/* Whether @pid is a process this agent started and has not reaped yet
 * (init mode's orphan reaper must leave those alone). */
bool agent_owns_pid(const struct agent *a, pid_t pid);
