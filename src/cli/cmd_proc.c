/* vsockctl run -d, ps, attach, logs, kill, wait: processes that outlive
 * their connection (PROTOCOL.md 2.7). A process is named by its id (a
 * number) or its tag (anything else). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "cancel.h"
#include "cli.h"
#include "common/io.h"
#include "common/macro.h"
#include "tty.h"

/* ---- shared ----------------------------------------------------------------------- */

/* ID or TAG: all digits is an id. */
static void parse_ref(const char *arg, uint64_t *ret_id, const char **ret_tag) {
        char *end;
        errno = 0;
        unsigned long long v = arg[0] >= '0' && arg[0] <= '9' ? strtoull(arg, &end, 10) : 0;
        if (v > 0 && errno == 0 && *end == '\0') {
                *ret_id = v;
                *ret_tag = NULL;
        } else {
                *ret_id = 0;
                *ret_tag = arg;
        }
}

/* Set up cancellation (unless @co is NO_CANCEL: done already) and dial;
 * returns 0, or an exit status (reported). */
#define NO_CANCEL ((const struct cancel_opts *) 1)
static int proc_dial(const char *cmd, const struct cancel_opts *co, const char **ret_addr, vsock_conn **ret) {
        if (cli_exec_addr(ret_addr) < 0)
                return CLI_EXIT_ERROR;
        if (co != NO_CANCEL) {
                int r = cancel_setup(co);
                if (r < 0) {
                        cli_error("%s: cannot set up signal handling: %s", cmd, strerror(-r));
                        return CLI_EXIT_ERROR;
                }
        }
        (void) signal(SIGPIPE, SIG_IGN);
        return agent_dial(*ret_addr, VSOCK_PORT_EXEC, cmd, ret) < 0 ? CLI_EXIT_ERROR : 0;
}

/* The one operand ID|TAG of @cmd (after the options), then the dial.
 * Returns 0, or an exit status (reported). */
static int proc_target(const char *cmd, int argc, char **argv, uint64_t *ret_id, const char **ret_tag,
                       const char **ret_addr, vsock_conn **ret) {
        if (argc - optind != 1)
                return cli_usage_error(cmd, "give one ID or TAG");
        parse_ref(argv[optind], ret_id, ret_tag);
        return proc_dial(cmd, NULL, ret_addr, ret);
}

/* A failed call: quiet after a signal, else one line. */
static int proc_failed(int rc, const struct vsock_call *call, const char *cmd, const char *addr) {
        if (vsock_err_kind(rc) == VSOCK_E_CANCELLED && cancel_signo() != 0)
                return 128 + cancel_signo();
        agent_report(rc, call, cmd, addr);
        return CLI_EXIT_ERROR;
}

static struct vsock_call request_call(void) {
        struct vsock_call call = VSOCK_CALL_INIT;
        call.cancel_fd = cancel_fd();
        call.deadline_ns = agent_reply_deadline();
        return call;
}

/* ProcList on a connection of its own: the processes (or the one tagged
 * @tag) in *ret. Returns 0, or an exit status (reported). */
static int proc_list(const char *cmd, const struct cancel_opts *co, const char *tag, struct vsock_proc_info **ret,
                     size_t *ret_n) {
        const char *addr;
        vsock_conn *conn = NULL;
        int status = proc_dial(cmd, co, &addr, &conn);
        if (status != 0)
                return status;
        struct vsock_call call = request_call();
        int r = vsock_proc_list(conn, tag, &call, ret, ret_n);
        (void) vsock_conn_close(conn);
        return r < 0 ? proc_failed(r, &call, cmd, addr) : 0;
}

/* The status a process ended with, as exec reports a command's. */
static int end_status(const struct vsock_proc_end *e, const char *cmd, const char *ref) {
        if (e->oom_killed)
                cli_error("%s: %s: killed by the kernel's OOM killer", cmd, ref);
        return cli_map_exit_code(e->exit_code);
}

/* ---- run -d ------------------------------------------------------------------------- */

static void run_usage(FILE *f) {
        fputs("Usage: vsockctl [-a ADDR] run -d [OPTIONS] [--] COMMAND [ARG...]\n"
              "\n"
              "Start COMMAND in the guest as a detached process: it runs on when vsockctl\n"
              "exits, keeps its output in a ring buffer in the agent, and its result for a\n"
              "while after it exits. Prints the process's id. See ps, attach, logs, kill\n"
              "and wait.\n"
              "\n"
              "Options:\n"
              "  -d, --detach        start detached (required)\n"
              "      --tag TAG       name it TAG (1-64 of [0-9A-Za-z._-], unique)\n"
              "  -t, --tty           run it on a remote terminal (attach with a terminal)\n"
              "  -i, --stdin         keep its stdin open (write with attach -i); else /dev/null\n"
              "  -e, --env K=V       set an environment variable (repeatable)\n"
              "  -w, --workdir DIR   working directory in the guest\n"
              "  -u, --user USER     run as USER (\"uid\", \"uid:gid\" or a name)\n"
              "      --argv          run COMMAND with exactly the ARGs given, no shell\n"
              "      --ring BYTES    output kept (default: the agent's, 1 MiB)\n"
              "      --keep DUR      keep the result this long after exit (default: the\n"
              "                      agent's, 10m)\n"
              "  -h, --help          show this help\n"
              "\n"
              "A command that cannot start exits 127 or 126 with the reason on its stderr\n"
              "(see logs and wait). Exit status: 0 once started, 255 for usage,\n"
              "connection and agent errors (a tag in use, too many processes).\n",
              f);
}

enum { OPT_TAG = 0x100, OPT_ARGV, OPT_RING, OPT_KEEP, OPT_FROM, OPT_TIMEOUT };

int cmd_run(int argc, char **argv) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },     { "detach", no_argument, NULL, 'd' },
                { "tag", required_argument, NULL, OPT_TAG }, { "tty", no_argument, NULL, 't' },
                { "stdin", no_argument, NULL, 'i' },    { "env", required_argument, NULL, 'e' },
                { "workdir", required_argument, NULL, 'w' }, { "user", required_argument, NULL, 'u' },
                { "argv", no_argument, NULL, OPT_ARGV }, { "ring", required_argument, NULL, OPT_RING },
                { "keep", required_argument, NULL, OPT_KEEP }, {}
        };
        struct vsock_proc_spec spec = VSOCK_PROC_SPEC_INIT;
        struct env_list env = { 0 };
        bool detach = false, use_argv = false;
        int status = -1, c;
        optind = 0;
        while (status < 0 && (c = getopt_long(argc, argv, "+hdtie:w:u:", options, NULL)) != -1) {
                switch (c) {
                case 'h':
                        run_usage(stdout);
                        status = CLI_EXIT_OK;
                        break;
                case 'd':
                        detach = true;
                        break;
                case OPT_TAG:
                        spec.tag = optarg;
                        break;
                case 't':
                        spec.tty = true;
                        break;
                case 'i':
                        spec.stdin_pipe = true;
                        break;
                case 'e':
                        if (env_list_add(&env, optarg, "run") < 0)
                                status = CLI_EXIT_ERROR;
                        break;
                case 'w':
                        spec.req.working_dir = optarg;
                        break;
                case 'u':
                        spec.req.user = optarg;
                        break;
                case OPT_ARGV:
                        use_argv = true;
                        break;
                case OPT_RING: {
                        char *end;
                        errno = 0;
                        unsigned long v = strtoul(optarg, &end, 10);
                        if (errno || *end || v == 0 || v > UINT32_MAX)
                                status = cli_usage_error("run", "invalid ring size '%s' (bytes)", optarg);
                        spec.ring = (uint32_t) v;
                        break;
                }
                case OPT_KEEP: {
                        int64_t ns;
                        if (cli_parse_duration(optarg, &ns) < 0 || ns / NS_PER_SEC > UINT32_MAX)
                                status = cli_usage_error("run", "invalid duration '%s'", optarg);
                        else
                                spec.keep_s = (uint32_t) MAX(ns / NS_PER_SEC, 1);
                        break;
                }
                default:
                        status = cli_usage_hint("run");
                }
        }
        if (status < 0 && !detach)
                status = cli_usage_error("run", "only detached processes: give -d (or use exec)");
        if (status < 0 && optind >= argc)
                status = cli_usage_error("run", "missing COMMAND");
        if (status >= 0) {
                env_list_free(&env);
                return status;
        }
        _cleanup_free_ char *owned = NULL;
        spec.req.env = env.v;
        spec.req.n_env = env.n;
        if (exec_command(argv + optind, argc - optind, use_argv, &spec.req, &owned) < 0) {
                env_list_free(&env);
                cli_error("run: out of memory");
                return CLI_EXIT_ERROR;
        }
        if (spec.tty) {
                uint16_t rows = 24, cols = 80;
                (void) tty_get_size(STDIN_FILENO, &rows, &cols);
                spec.req.rows = rows;
                spec.req.cols = cols;
        }
        const char *addr;
        vsock_conn *conn = NULL;
        status = proc_dial("run", NULL, &addr, &conn);
        if (status == 0) {
                struct vsock_call call = request_call();
                struct vsock_proc_info info;
                int r = vsock_proc_start(conn, &spec, &call, &info);
                if (r < 0)
                        status = proc_failed(r, &call, "run", addr);
                else {
                        printf("%" PRIu64 "\n", info.id);
                        if (!info.running)
                                cli_error("run: the command exited at once with status %d (see: vsockctl logs %" PRIu64
                                          ")",
                                          info.exit_code, info.id);
                        vsock_proc_info_clear(&info);
                }
                (void) vsock_conn_close(conn);
        }
        env_list_free(&env);
        return status;
}

/* ---- ps ------------------------------------------------------------------------------ */

static void ps_usage(FILE *f) {
        fputs("Usage: vsockctl [-a ADDR] ps [TAG]\n"
              "\n"
              "List the guest's detached processes (running, and exited ones whose result\n"
              "is still kept), oldest first: id, tag, pid, state (running, or the exit\n"
              "status: exit N, signal NAME, oom), start time, output bytes, command.\n",
              f);
}

static void format_state(const struct vsock_proc_info *p, char *buf, size_t size) {
        if (p->running)
                snprintf(buf, size, "running");
        else if (p->oom_killed)
                snprintf(buf, size, "oom-killed");
        else if (p->signal)
                snprintf(buf, size, "signal %s", sigabbrev_np(p->signal) ? sigabbrev_np(p->signal) : "?");
        else
                snprintf(buf, size, "exit %d", p->exit_code);
}

int cmd_ps(int argc, char **argv) {
        int status = cli_parse_flags("ps", argc, argv, NULL, 0, ps_usage);
        if (status >= 0)
                return status;
        if (argc - optind > 1)
                return cli_usage_error("ps", "unexpected argument '%s'", argv[optind + 1]);
        const char *tag = optind < argc ? argv[optind] : NULL;
        struct vsock_proc_info *v = NULL;
        size_t n = 0;
        status = proc_list("ps", NULL, tag, &v, &n);
        if (status != 0)
                return status;
        printf("%-6s %-16s %-8s %-12s %-19s %10s  %s\n", "ID", "TAG", "PID", "STATE", "STARTED", "OUTPUT",
               "COMMAND");
        for (size_t i = 0; i < n; i++) {
                const struct vsock_proc_info *p = &v[i];
                char state[32], started[32] = "-", out[32];
                format_state(p, state, sizeof state);
                time_t t = (time_t) (p->started_ns / NS_PER_SEC);
                struct tm tm;
                if (p->started_ns > 0 && localtime_r(&t, &tm))
                        strftime(started, sizeof started, "%Y-%m-%d %H:%M:%S", &tm);
                cli_format_size(p->out_end, out, sizeof out);
                /* The command line as sent (with --argv: the words' sh quoting). */
                printf("%-6" PRIu64 " %-16s %-8d %-12s %-19s %10s  %s\n", p->id, p->tag ? p->tag : "-", p->pid,
                       state, started, out, p->command ? p->command : "");
        }
        vsock_proc_infos_free(v, n);
        return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}

/* ---- attach and logs -------------------------------------------------------------------- */

struct follow {
        const char *cmd;
        bool broken; /* our reader went away */
};

static int on_output(void *userdata, enum vsock_stream_id stream, const uint8_t *data, size_t len) {
        struct follow *f = userdata;
        int r = io_write_all(stream == VSOCK_STREAM_STDERR ? STDERR_FILENO : STDOUT_FILENO, data, len, 0, -1);
        if (r == -EPIPE)
                f->broken = true;
        return r;
}

static int on_gap(void *userdata, uint64_t from, uint64_t to) {
        struct follow *f = userdata;
        char size[32];
        cli_format_size(to - from, size, sizeof size);
        cli_error("%s: [%s of output dropped here: the ring no longer held bytes %" PRIu64 "..%" PRIu64 "]",
                  f->cmd, size, from, to);
        return 0;
}

static void attach_usage(FILE *f) {
        fputs("Usage: vsockctl [-a ADDR] attach [OPTIONS] ID|TAG\n"
              "\n"
              "Attach to a detached process: its output kept so far, then as it comes,\n"
              "until it exits (exit status: its own). Our stdin goes to it as exec sends\n"
              "it: a terminal process gets our terminal in raw mode (window size changes\n"
              "follow); otherwise a pipe or file on our stdin is forwarded (EOF closes its\n"
              "stdin), a terminal only with -i. Signals are forwarded with input; without,\n"
              "SIGINT/SIGTERM detach (the process runs on).\n"
              "\n"
              "  -i, --stdin       forward our stdin even from a terminal\n"
              "  -n, --no-stdin    do not forward stdin or signals (a signal detaches)\n"
              "      --from OFFSET replay from this output offset (default 0; -1: only new)\n"
              "  -h, --help        show this help\n",
              f);
}

static void logs_usage(FILE *f) {
        fputs("Usage: vsockctl [-a ADDR] logs [-f] [--from OFFSET] ID|TAG\n"
              "\n"
              "Write a detached process's output kept in the agent (its stdout to ours, its\n"
              "stderr to ours). Bytes the ring dropped are reported as a marker on stderr.\n"
              "\n"
              "  -f, --follow      go on with new output until the process exits (exit\n"
              "                    status: its own); SIGINT stops following\n"
              "      --from OFFSET start at this output offset (default 0; -1: only new)\n"
              "  -h, --help        show this help\n",
              f);
}

static int parse_offset(const char *cmd, const char *arg, int64_t *ret) {
        char *end;
        errno = 0;
        long long v = strtoll(arg, &end, 10);
        if (errno || *end || v < -1)
                return cli_usage_error(cmd, "invalid offset '%s'", arg);
        *ret = v;
        return -1;
}

/* attach and logs: one attach with the options each gives. */
static int follow_run(const char *cmd, const char *ref, struct vsock_proc_attach_opts *opts, int in_mode) {
        uint64_t id;
        const char *tag;
        parse_ref(ref, &id, &tag);
        /* With input, signals go to the process; the ctl channel also
         * carries window sizes (the handlers keep it: never freed). */
        vsock_exec_ctl *ctl = NULL;
        if (opts->input && vsock_exec_ctl_new(&ctl) < 0) {
                cli_error("%s: out of memory", cmd);
                return CLI_EXIT_ERROR;
        }
        bool raw = in_mode == 2;
        struct cancel_opts co = { .forward = opts->input && !raw ? ctl : NULL, .resize = raw ? ctl : NULL };
        const char *addr;
        vsock_conn *conn = NULL;
        int status = proc_dial(cmd, &co, &addr, &conn);
        if (status != 0)
                return status;
        struct follow f = { .cmd = cmd };
        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        io.on_output = on_output;
        io.userdata = &f;
        io.ctl = ctl;
        if (opts->input)
                io.stdin_fd = STDIN_FILENO;
        opts->on_gap = on_gap;
        struct vsock_call call = VSOCK_CALL_INIT;
        call.cancel_fd = cancel_fd();
        if (raw) {
                int r = tty_raw_enter(STDIN_FILENO);
                if (r < 0) {
                        cli_error("%s: cannot put the terminal in raw mode: %s", cmd, strerror(-r));
                        (void) vsock_conn_close(conn);
                        return CLI_EXIT_ERROR;
                }
                uint16_t rows, cols;
                if (tty_get_size(STDIN_FILENO, &rows, &cols) >= 0)
                        (void) vsock_exec_ctl_resize(ctl, rows, cols);
        }
        struct vsock_proc_end end;
        int r = vsock_proc_attach(conn, id, tag, opts, &io, &call, NULL, &end);
        tty_restore();
        (void) vsock_conn_close(conn);
        if (r < 0) {
                if (f.broken)
                        return 128 + SIGPIPE;
                return proc_failed(r, &call, cmd, addr);
        }
        if (strcmp(end.reason, "exit") == 0)
                return end_status(&end, cmd, ref);
        if (strcmp(end.reason, "removed") == 0) {
                cli_error("%s: %s: the process's record was removed", cmd, ref);
                return CLI_EXIT_FAILURE;
        }
        return CLI_EXIT_OK;
}

int cmd_attach(int argc, char **argv) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' }, { "stdin", no_argument, NULL, 'i' },
                { "no-stdin", no_argument, NULL, 'n' }, { "from", required_argument, NULL, OPT_FROM }, {}
        };
        struct vsock_proc_attach_opts opts = VSOCK_PROC_ATTACH_OPTS_INIT;
        bool want_in = false, no_in = false;
        int status = -1, c;
        optind = 0;
        while (status < 0 && (c = getopt_long(argc, argv, "+hin", options, NULL)) != -1) {
                switch (c) {
                case 'h':
                        attach_usage(stdout);
                        return CLI_EXIT_OK;
                case 'i':
                        want_in = true;
                        break;
                case 'n':
                        no_in = true;
                        break;
                case OPT_FROM:
                        status = parse_offset("attach", optarg, &opts.offset);
                        break;
                default:
                        status = cli_usage_hint("attach");
                }
        }
        if (status >= 0)
                return status;
        if (argc - optind != 1)
                return cli_usage_error("attach", "give one ID or TAG");
        if (want_in && no_in)
                return cli_usage_error("attach", "-i and -n exclude each other");
        /* What the process is decides how our terminal is used: ask. */
        int in_mode = 0; /* 0: none, 1: forwarded, 2: our terminal in raw mode */
        if (!no_in) {
                uint64_t id;
                const char *tag;
                parse_ref(argv[optind], &id, &tag);
                struct vsock_proc_info *v = NULL;
                size_t n = 0;
                /* Before cancel_setup, which follow_run() makes for the mode. */
                status = proc_list("attach", NO_CANCEL, tag, &v, &n);
                if (status != 0)
                        return status;
                bool tty = false;
                for (size_t i = 0; i < n; i++)
                        if ((id && v[i].id == id) || (!id && v[i].tag && strcmp(v[i].tag, tag) == 0))
                                tty = v[i].tty;
                vsock_proc_infos_free(v, n);
                if (tty && isatty(STDIN_FILENO))
                        in_mode = 2;
                else if (want_in || stdin_has_input())
                        in_mode = 1;
        }
        opts.input = in_mode > 0;
        return follow_run("attach", argv[optind], &opts, in_mode);
}

int cmd_logs(int argc, char **argv) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' }, { "follow", no_argument, NULL, 'f' },
                { "from", required_argument, NULL, OPT_FROM }, {}
        };
        struct vsock_proc_attach_opts opts = VSOCK_PROC_ATTACH_OPTS_INIT;
        opts.no_follow = true;
        int status = -1, c;
        optind = 0;
        while (status < 0 && (c = getopt_long(argc, argv, "+hf", options, NULL)) != -1) {
                switch (c) {
                case 'h':
                        logs_usage(stdout);
                        return CLI_EXIT_OK;
                case 'f':
                        opts.no_follow = false;
                        break;
                case OPT_FROM:
                        status = parse_offset("logs", optarg, &opts.offset);
                        break;
                default:
                        status = cli_usage_hint("logs");
                }
        }
        if (status >= 0)
                return status;
        if (argc - optind != 1)
                return cli_usage_error("logs", "give one ID or TAG");
        status = follow_run("logs", argv[optind], &opts, 0);
        /* logs without -f: the output was the point, not the status. */
        return opts.no_follow && status < CLI_EXIT_ERROR ? CLI_EXIT_OK : status;
}

/* ---- kill and wait ------------------------------------------------------------------------ */

static void kill_usage(FILE *f) {
        fputs("Usage: vsockctl [-a ADDR] kill [-s SIGNAL] ID|TAG\n"
              "\n"
              "Send SIGNAL (default TERM; a name like KILL or SIGKILL, or a number) to a\n"
              "detached process's process group (a terminal's foreground group).\n",
              f);
}

static int parse_signal(const char *s) {
        if (strncasecmp(s, "SIG", 3) == 0)
                s += 3;
        char *end;
        long v = strtol(s, &end, 10);
        if (*s && *end == '\0')
                return v >= 1 && v <= 64 ? (int) v : -1;
        for (int i = 1; i < 65; i++) {
                const char *n = sigabbrev_np(i);
                if (n && strcasecmp(n, s) == 0)
                        return i;
        }
        return -1;
}

int cmd_kill(int argc, char **argv) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' }, { "signal", required_argument, NULL, 's' }, {}
        };
        int signo = SIGTERM, c;
        optind = 0;
        while ((c = getopt_long(argc, argv, "+hs:", options, NULL)) != -1) {
                switch (c) {
                case 'h':
                        kill_usage(stdout);
                        return CLI_EXIT_OK;
                case 's':
                        signo = parse_signal(optarg);
                        if (signo < 0)
                                return cli_usage_error("kill", "unknown signal '%s'", optarg);
                        break;
                default:
                        return cli_usage_hint("kill");
                }
        }
        uint64_t id;
        const char *tag, *addr;
        vsock_conn *conn = NULL;
        int status = proc_target("kill", argc, argv, &id, &tag, &addr, &conn);
        if (status != 0)
                return status;
        struct vsock_call call = request_call();
        struct vsock_proc_control ctl = VSOCK_PROC_CONTROL_INIT;
        ctl.op = VSOCK_PROC_SIGNAL;
        ctl.signal = signo;
        int r = vsock_proc_control(conn, id, tag, &ctl, &call, NULL);
        (void) vsock_conn_close(conn);
        return r < 0 ? proc_failed(r, &call, "kill", addr) : CLI_EXIT_OK;
}

static void wait_usage(FILE *f) {
        fputs("Usage: vsockctl [-a ADDR] wait [--timeout DUR] ID|TAG\n"
              "\n"
              "Wait until a detached process has exited and exit with its status (128+N\n"
              "when signal N killed it; a line on stderr when the kernel's OOM killer\n"
              "did). A process that exited already answers at once.\n"
              "\n"
              "  --timeout DUR  give up after DUR (exit 124; the process runs on)\n"
              "  -h, --help     show this help\n",
              f);
}

int cmd_wait(int argc, char **argv) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' }, { "timeout", required_argument, NULL, OPT_TIMEOUT }, {}
        };
        int64_t timeout_ns = 0;
        const char *timeout_arg = NULL;
        int c;
        optind = 0;
        while ((c = getopt_long(argc, argv, "+h", options, NULL)) != -1) {
                switch (c) {
                case 'h':
                        wait_usage(stdout);
                        return CLI_EXIT_OK;
                case OPT_TIMEOUT:
                        timeout_arg = optarg;
                        if (cli_parse_duration(optarg, &timeout_ns) < 0)
                                return cli_usage_error("wait", "invalid duration '%s'", optarg);
                        break;
                default:
                        return cli_usage_hint("wait");
                }
        }
        uint64_t id;
        const char *tag, *addr;
        vsock_conn *conn = NULL;
        int status = proc_target("wait", argc, argv, &id, &tag, &addr, &conn);
        if (status != 0)
                return status;
        struct vsock_call call = VSOCK_CALL_INIT;
        call.cancel_fd = cancel_fd();
        struct vsock_proc_end end;
        int64_t timeout_ms = timeout_ns > 0 ? MAX(timeout_ns / 1000000, 1) : 0;
        int r = vsock_proc_wait(conn, id, tag, timeout_ms, &call, &end);
        (void) vsock_conn_close(conn);
        if (r < 0 && vsock_err_errno(r) == ETIMEDOUT && vsock_err_kind(r) == VSOCK_E_REMOTE) {
                cli_error("wait: %s still running after %s", argv[optind], timeout_arg);
                return CLI_EXIT_TIMEOUT;
        }
        if (r < 0)
                return proc_failed(r, &call, "wait", addr);
        if (strcmp(end.reason, "removed") == 0) {
                cli_error("wait: %s: the process's record was removed", argv[optind]);
                return CLI_EXIT_FAILURE;
        }
        return end_status(&end, "wait", argv[optind]);
}
