/* vsock-agent: the guest side of the protocol. Option parsing and wiring;
 * the work happens in the loop (loop.c) and the sessions (session.c). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <vsock/addr.h>
#include <vsock/error.h>
#include <vsock/version.h>

#include "agent/agent.h"
#include "agent/exec/child.h"
#include "agent/init/init.h"
#include "agent/serve/listener.h"
#include "agent/serve/loop.h"
#include "agent/init/pidns.h"
#include "agent/proc/procs.h"
#include "agent/exec/sandbox.h"
#include "agent/serve/session.h"
#include "agent/exec/spawn.h"
#include "agent/serve/worker.h"
#include "common/log.h"
#include "common/macro.h"

struct options {
        const char *listen;
        const char *ready;
        bool privileged;
        bool pid_ns;
};

struct main_state {
        struct agent agent;
        struct listener *exec_listener;
        struct listener *ready_listener;
        struct watcher sigw;
        int sigfd;
        struct timer deadline;  /* hard bound on shutdown */
        int exit_code;
        bool init_mode;         /* --init: PID 1 duties */
        bool reboot;            /* init mode: reboot rather than power off */
        size_t prev_sessions;   /* at the end of the last pass */
};

static void usage(FILE *f) {
        fprintf(f,
                "Usage: vsock-agent [OPTIONS]\n"
                "\n"
                "Guest agent: runs commands, forwards ports and serves files for the host.\n"
                "\n"
                "  --listen ADDR        exec service address (default vsock:any:5000)\n"
                "  --ready ADDR         ready-check address (default vsock:any:5002)\n"
                "  --allow-cid CID      also serve this vsock peer CID (default only 2, the host)\n"
                "  --allow-uid UID      also serve this unix-socket peer uid (root and the agent's\n"
                "                       own uid are always allowed; the socket file is 0600, so\n"
                "                       that user also needs access to it)\n"
                "  --insecure-tcp       allow a TCP listen address that is not loopback (DANGEROUS)\n"
                "  --privileged         run commands without the sandbox\n"
                "                       (also: vsock.privileged=1 on the kernel command line)\n"
                "  --pid-ns             run each command in its own PID namespace with its own\n"
                "                       /proc, under a small init (also: vsock.pid_ns=1)\n"
                "  --init               be the guest's init (PID 1): mount /proc, /sys, /dev,\n"
                "                       reap orphans, power off when stopped; options also from\n"
                "                       vsock.* words on the kernel command line\n"
                "  --idle-timeout SEC   close connections without a request after SEC seconds (30)\n"
                "  --io-timeout SEC     answer with an error a file operation, name lookup or\n"
                "                       command start that takes longer than SEC seconds (30)\n"
                "  --memory-budget MIB  memory for replies and requests held for hosts, all\n"
                "                       sessions together (64); past it: an error reply\n"
                "  --send-timeout SEC   drop a connection whose host read nothing of what is\n"
                "                       waiting for it for SEC seconds (30)\n"
                "  --log-level LEVEL    error, warn, info (default) or debug\n"
                "  -h, --help           show this help\n"
                "  --version            show the version\n"
                "\n"
                "Addresses: vsock:CID:PORT, vsock::PORT, unix:/path, tcp:HOST:PORT.\n"
                "See vsock-agent(8).\n");
}

static int parse_u32(const char *s, uint32_t *ret) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 0);
        if (errno || end == s || *end || v > UINT32_MAX || s[0] == '-')
                return -EINVAL;
        *ret = (uint32_t) v;
        return 0;
}

/* A timeout option: 1..86400 seconds into *ret_ms; says what is wrong. */
static int parse_seconds(const char *s, const char *what, int *ret_ms) {
        uint32_t v;
        if (parse_u32(s, &v) < 0 || v == 0 || v > 86400) {
                fprintf(stderr, "vsock-agent: invalid %s '%s' (seconds, 1..86400)\n", what, s);
                return -EINVAL;
        }
        *ret_ms = (int) v * 1000;
        return 0;
}

static int push_u32(uint32_t **v, size_t *n, uint32_t x) {
        uint32_t *nv = realloc(*v, (*n + 1) * sizeof *nv);
        if (!nv)
                return -ENOMEM;
        nv[(*n)++] = x;
        *v = nv;
        return 0;
}

/* The kernel command line, or NULL. */
static char *read_cmdline(void) {
        char *cmdline = NULL;
        size_t cap = 0;
        FILE *f = fopen("/proc/cmdline", "re");
        if (f) {
                if (getline(&cmdline, &cap, f) < 0) {
                        free(cmdline);
                        cmdline = NULL;
                }
                fclose(f);
        }
        return cmdline;
}

/* Whether the kernel command line turns on @opt (e.g. "--privileged" for
 * vsock.privileged=1), in any mode: a guest image may start the agent
 * from its own init and still be configured per VM. */
static bool cmdline_flag(const char *opt) {
        char *cmdline = read_cmdline();
        char **v = NULL;
        int n = 0;
        bool on = false;
        if (cmdline && init_cmdline_options(cmdline, &v, &n) >= 0)
                for (int i = 0; i < n; i++)
                        on |= strcmp(v[i], opt) == 0;
        init_strv_free(v);
        free(cmdline);
        return on;
}

static void begin_shutdown(struct main_state *m, const char *why) {
        struct agent *a = &m->agent;
        if (a->shutting_down)
                return;
        log_info("%s: stopping (%zu sessions, %zu processes)", why, a->n_sessions, child_count(a));
        a->shutting_down = true;
        listener_free(m->exec_listener);
        listener_free(m->ready_listener);
        m->exec_listener = m->ready_listener = NULL;
        session_shutdown_all(a);
        child_terminate_all(a);
        /* SIGKILL goes out after the grace; allow a moment past it. */
        if (timer_arm_in_ms(&m->deadline, a->grace_ms + 1000) < 0)
                loop_quit(a->loop);
}

static void on_deadline(struct timer *t) {
        struct main_state *m = container_of(t, struct main_state, deadline);
        log_warn("shutdown: %zu sessions and %zu processes left at the deadline", m->agent.n_sessions,
                 child_count(&m->agent));
        loop_quit(m->agent.loop);
}

static void on_signal(struct watcher *w, uint32_t revents) {
        struct main_state *m = container_of(w, struct main_state, sigw);
        struct signalfd_siginfo si;
        while (read(m->sigfd, &si, sizeof si) == (ssize_t) sizeof si) {
                if (m->init_mode) {
                        /* SIGCHLD only wakes the loop: post_pass reaps. */
                        enum init_action act = init_signal_action((int) si.ssi_signo);
                        if (act == INIT_ACTION_NONE)
                                continue;
                        m->reboot = act == INIT_ACTION_REBOOT;
                        begin_shutdown(m, strsignal((int) si.ssi_signo));
                } else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
                        begin_shutdown(m, si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
        }
}

static bool own_pid(pid_t pid, void *userdata) {
        const struct main_state *m = userdata;
        /* A command that exits right after its exec, before its start
         * comes back from the worker, must not be taken for an orphan:
         * reap none until then. */
        return agent_owns_pid(&m->agent, pid) || m->agent.spawns_pending > 0;
}

static void post_pass(void *userdata) {
        struct main_state *m = userdata;
        if (m->init_mode)
                init_reap_orphans(own_pid, m);
        /* After a burst, hand the freed heap back: glibc keeps it (and its
         * arenas' tops) otherwise. Once per burst, not on every pass. */
        if (m->prev_sessions > 0 && m->agent.n_sessions == 0)
                (void) malloc_trim(0);
        m->prev_sessions = m->agent.n_sessions;
        if (m->agent.shutting_down && m->agent.n_sessions == 0 && child_count(&m->agent) == 0)
                loop_quit(m->agent.loop);
}

/* Run the agent until it is told to stop. @init_mode: PID 1 duties;
 * *reboot (init mode) then says whether to reboot rather than power off. */
static int agent_main(int argc, char **argv, bool init_mode, bool *reboot) {
        enum { OPT_LISTEN = 256, OPT_READY, OPT_ALLOW_CID, OPT_ALLOW_UID, OPT_INSECURE_TCP, OPT_PRIVILEGED,
               OPT_PID_NS, OPT_IDLE_TIMEOUT, OPT_IO_TIMEOUT, OPT_MEMORY_BUDGET, OPT_SEND_TIMEOUT, OPT_LOG_LEVEL, OPT_HELP, OPT_VERSION, OPT_INIT };
        static const struct option longopts[] = {
                { "listen", required_argument, NULL, OPT_LISTEN },
                { "ready", required_argument, NULL, OPT_READY },
                { "allow-cid", required_argument, NULL, OPT_ALLOW_CID },
                { "allow-uid", required_argument, NULL, OPT_ALLOW_UID },
                { "insecure-tcp", no_argument, NULL, OPT_INSECURE_TCP },
                { "privileged", no_argument, NULL, OPT_PRIVILEGED },
                { "pid-ns", no_argument, NULL, OPT_PID_NS },
                { "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
                { "io-timeout", required_argument, NULL, OPT_IO_TIMEOUT },
                { "memory-budget", required_argument, NULL, OPT_MEMORY_BUDGET },
                { "send-timeout", required_argument, NULL, OPT_SEND_TIMEOUT },
                { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
                { "help", no_argument, NULL, OPT_HELP },
                { "version", no_argument, NULL, OPT_VERSION },
                { "init", no_argument, NULL, OPT_INIT },
                {},
        };
        static struct main_state m = { .sigfd = -1 };
        m.init_mode = init_mode;
        struct agent *a = &m.agent;
        struct options o = { .listen = "vsock:any:5000", .ready = "vsock:any:5002" };
        a->idle_timeout_ms = 30000;
        a->io_timeout_ms = 30000;
        a->send_timeout_ms = 30000;
        budget_init(&a->budget, (size_t) AGENT_BUDGET_DEFAULT_MIB << 20);
        a->grace_ms = 5000;
        a->linger_ms = 100;
        if (push_u32(&a->allow_cids, &a->n_allow_cids, VSOCK_CID_HOST) < 0)
                return 1;

        int c;
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
                uint32_t v;
                enum log_level lvl;
                switch (c) {
                case OPT_LISTEN:
                        o.listen = optarg;
                        break;
                case OPT_READY:
                        o.ready = optarg;
                        break;
                case OPT_ALLOW_CID:
                        if (parse_u32(optarg, &v) < 0) {
                                fprintf(stderr, "vsock-agent: invalid CID '%s'\n", optarg);
                                return 2;
                        }
                        if (push_u32(&a->allow_cids, &a->n_allow_cids, v) < 0)
                                return 1;
                        break;
                case OPT_ALLOW_UID:
                        if (parse_u32(optarg, &v) < 0 || v == (uint32_t) -1) {
                                fprintf(stderr, "vsock-agent: invalid uid '%s'\n", optarg);
                                return 2;
                        }
                        if (push_u32(&a->allow_uids, &a->n_allow_uids, v) < 0)
                                return 1;
                        break;
                case OPT_INSECURE_TCP:
                        a->insecure_tcp = true;
                        break;
                case OPT_PRIVILEGED:
                        o.privileged = true;
                        break;
                case OPT_PID_NS:
                        o.pid_ns = true;
                        break;
                case OPT_IDLE_TIMEOUT:
                        if (parse_seconds(optarg, "idle timeout", &a->idle_timeout_ms) < 0)
                                return 2;
                        break;
                case OPT_IO_TIMEOUT:
                        if (parse_seconds(optarg, "I/O timeout", &a->io_timeout_ms) < 0)
                                return 2;
                        break;
                case OPT_MEMORY_BUDGET:
                        /* Below 4 MiB hardly a reply fits; past 1 TiB is a typo. */
                        if (parse_u32(optarg, &v) < 0 || v < 4 || v > (1u << 20)) {
                                fprintf(stderr, "vsock-agent: invalid memory budget '%s' (MiB, 4..1048576)\n",
                                        optarg);
                                return 2;
                        }
                        budget_init(&a->budget, (size_t) v << 20);
                        break;
                case OPT_SEND_TIMEOUT:
                        if (parse_seconds(optarg, "send timeout", &a->send_timeout_ms) < 0)
                                return 2;
                        break;
                case OPT_LOG_LEVEL:
                        if (log_level_parse(optarg, &lvl) < 0) {
                                fprintf(stderr, "vsock-agent: invalid log level '%s'\n", optarg);
                                return 2;
                        }
                        log_set_level(lvl);
                        break;
                case 'h':
                case OPT_HELP:
                        usage(stdout);
                        return 0;
                case OPT_VERSION:
                        printf("vsock-agent %s\n", VSOCK_VERSION_STRING);
                        return 0;
                case OPT_INIT:
                        break; /* handled by main() */
                default:
                        usage(stderr);
                        return 2;
                }
        }
        /* As PID 1 the kernel hands init the command line's words it does
         * not understand: they are not ours to reject. */
        if (optind < argc && !m.init_mode) {
                fprintf(stderr, "vsock-agent: unexpected argument '%s'\n", argv[optind]);
                usage(stderr);
                return 2;
        }

        /* Init mode hook: with --init, mount the basics here, before
         * anything else touches /proc or /dev. */

        /* Before we ignore anything ourselves: what we inherited ignored. */
        spawn_init();

        /* Writes to a vanished peer must fail with EPIPE, not kill us. */
        signal(SIGPIPE, SIG_IGN);
        sigaddset(&a->changed_signals, SIGPIPE);
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (m.init_mode)
                init_signal_mask_add(&mask);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
                log_error("sigprocmask: %m");
                return 1;
        }
        m.sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (m.sigfd < 0) {
                log_error("signalfd: %m");
                return 1;
        }

        ext_boot_id_load(a->boot_id);

        int r = loop_new(&a->loop);
        if (r < 0) {
                log_error("epoll: %s", strerror(-r));
                return 1;
        }
        struct sandbox *sandbox = NULL;
        if (o.privileged || cmdline_flag("--privileged"))
                log_info("privileged: commands run without the sandbox");
        else {
                r = sandbox_new(&sandbox);
                if (r < 0) {
                        log_error("cannot build the sandbox: %s (use --privileged to run without it)",
                                  strerror(-r));
                        return 1;
                }
                a->sandbox = sandbox;
        }
        if (o.pid_ns || cmdline_flag("--pid-ns")) {
                /* Refuse now rather than fail every command later. */
                const char *what;
                r = spawn_check_pid_ns(&what);
                if (r < 0) {
                        log_error("--pid-ns: cannot %s: %s", what, strerror(-r));
                        return 1;
                }
                a->pid_ns = true;
                log_info("pid-ns: each command runs in its own PID namespace");
        }
        /* File operations and name lookups; command starts apart, so that
         * neither kind waits for the other. */
        const struct worker_limits file_limits = { 8, 32, a->io_timeout_ms };
        const struct worker_limits spawn_limits = { 16, 32, a->io_timeout_ms };
        r = worker_new(a->loop, &file_limits, &a->worker);
        if (r >= 0)
                r = worker_new(a->loop, &spawn_limits, &a->spawner);
        if (r < 0) {
                log_error("worker: %s", strerror(-r));
                return 1;
        }
        r = procs_new(a->loop, &PROCS_LIMITS_DEFAULT, &a->procs);
        if (r < 0) {
                log_error("detached processes: %s", strerror(-r));
                return 1;
        }

        /* The exec port listens before the ready port: a host that sees
         * "ready" connects to exec at once (upstream's newer hosts do). */
        const char *why = NULL;
        r = listener_new(a, o.listen, false, &m.exec_listener, &why);
        if (r < 0) {
                log_error("cannot listen on %s: %s", o.listen, why ? why : vsock_strerror(r));
                return 1;
        }
        why = NULL;
        r = listener_new(a, o.ready, true, &m.ready_listener, &why);
        if (r < 0) {
                log_error("cannot listen on %s: %s", o.ready, why ? why : vsock_strerror(r));
                return 1;
        }
        /* The filter refuses new AF_VSOCK sockets, so only now; children
         * inherit it instead of each compiling its own. */
        if (sandbox) {
                r = sandbox_apply_self(sandbox);
                if (r < 0) {
                        log_error("cannot apply the sandbox: %s (use --privileged to run without it)",
                                  strerror(-r));
                        return 1;
                }
        }
        /* Low fd slots for commands' stdio, taken while they are low (and
         * before any baseline a test takes). Retried at each spawn. */
        r = spawn_reserve();
        if (r < 0)
                log_warn("spawn: cannot reserve fds: %s", strerror(-r));

        watcher_init(&m.sigw, a->loop, m.sigfd, on_signal);
        (void) watcher_set(&m.sigw, EPOLLIN);
        timer_init(&m.deadline, a->loop, on_deadline);
        loop_set_post_pass(a->loop, post_pass, &m);
        log_info("vsock-agent %s: exec on %s, ready on %s", VSOCK_VERSION_STRING, o.listen, o.ready);

        r = loop_run(a->loop);
        if (r < 0) {
                log_error("event loop: %s", strerror(-r));
                m.exit_code = 1;
        }

        listener_free(m.exec_listener);
        listener_free(m.ready_listener);
        session_destroy_all(a);
        timer_disarm(&m.deadline);
        watcher_stop(&m.sigw);
        safe_close(m.sigfd);
        unsigned stuck = worker_free(a->worker) + worker_free(a->spawner);
        /* After the workers: their last done() calls may still reach a
         * record. */
        procs_free(a->procs);
        sandbox_free(sandbox);
        loop_free(a->loop);
        free(a->allow_cids);
        free(a->allow_uids);
        log_info("exiting");
        *reboot = m.reboot;
        if (stuck && !m.init_mode) {
                /* Threads stuck in the kernel (a file system that does not
                 * answer) are still running: no exit handlers beside them
                 * (a leak checker would try to stop them, and cannot). */
                fflush(stderr);
                _exit(m.exit_code);
        }
        return m.exit_code;
}

int main(int argc, char **argv) {
        /* A PID namespace's init (spawn.c): a fresh copy of this binary
         * that must do nothing else. */
        if (pidns_init_main(argc, argv) >= 0)
                return 0;
        /* Fixed thresholds: glibc would raise them to the largest block
         * freed (a 15 MiB file read), after which big replies come from the
         * heap and stay resident. Blocks from 1 MiB (file data, big
         * frames) go back to the kernel when freed; send queues (<= 512
         * KiB, freed whenever they drain) stay on the heap, and the heap
         * keeps up to 2 MiB free at its top so that streaming does not
         * shrink and regrow it (brk + page faults) on every drain. */
        (void) mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
        (void) mallopt(M_TRIM_THRESHOLD, 2 * 1024 * 1024);
        /* One arena for the worker threads too: a thread's own arena keeps
         * the top of its heap resident after a burst (malloc_trim() returns
         * only the main arena's top), and each would add its own. The
         * threads allocate little and briefly; big buffers are mmap'd. */
        (void) mallopt(M_ARENA_MAX, 1);
        /* Started as PID 1 (init=/sbin/vsock-agent) means init mode. */
        bool init = getpid() == 1;
        for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
                if (strcmp(argv[i], "--init") == 0)
                        init = true;
        bool reboot = false;
        if (!init)
                return agent_main(argc, argv, false, &reboot);

        /* PID 1: mounts first (the command line is read from /proc), then
         * the kernel command line's options go before our own, so ours win. */
        (void) init_mount_basics();
        init_set_hostname_from_cmdline();
        if (init_is_pid1())
                init_disable_cad();
        char *cmdline = read_cmdline();
        char **extra = NULL;
        int n_extra = 0;
        int r = init_cmdline_options(cmdline, &extra, &n_extra);
        free(cmdline);
        if (r < 0) {
                log_warn("kernel command line: %s; ignoring its vsock.* options", strerror(-r));
                n_extra = 0;
        }
        char **nargv = calloc((size_t) argc + (size_t) n_extra + 1, sizeof(char *));
        if (nargv) {
                nargv[0] = argv[0];
                for (int i = 0; i < n_extra; i++)
                        nargv[1 + i] = extra[i];
                for (int i = 1; i < argc; i++)
                        nargv[n_extra + i] = argv[i];
                r = agent_main(argc + n_extra, nargv, true, &reboot);
        } else
                r = agent_main(argc, argv, true, &reboot);
        log_info("init: agent ended (status %d)", r);
        init_shutdown(reboot);
}
