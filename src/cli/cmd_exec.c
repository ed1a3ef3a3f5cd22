/* vsockctl exec: run a command in the guest, in four steps:
 *
 *   parse  options and words into struct exec_opts, and pick the mode:
 *            stream  ExecStream: stdout/stderr arrive live and apart; our
 *                    stdin is not read. A signal cancels the call (the
 *                    library shuts the connection down, so the agent kills
 *                    the command).
 *            pipe    ExecPipe (-i, or stdin is a pipe or a file, as ssh
 *                    forwards it): our stdin goes to the command, EOF
 *                    included; signals are forwarded as Signal frames.
 *            tty     ExecTTY (-t): a remote terminal; ours is put in raw
 *                    mode and restored on every way out. Window size
 *                    changes are forwarded; ^C is just a byte.
 *   build  the request: a shell command line, or with --argv a vector
 *          that every agent runs alike (client.h, "Exec requests").
 *   run    dial, watch for a silent peer that is no agent, call.
 *   map    the outcome to one exit status and at most one message. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent.h"
#include "bgthread.h"
#include "cancel.h"
#include "cli.h"
#include "common/io.h"
#include "common/macro.h"
#include "tty.h"

enum exec_mode { MODE_STREAM, MODE_PIPE, MODE_TTY };

/* How the Go agent reports, in pipe mode, a command it could not start:
 * this line on stderr, then Exit 1. */
#define GO_PIPE_START_FAILURE "failed to start command: "

struct exec_opts {
        enum exec_mode mode;
        bool have_tty;          /* tty mode on our own terminal (not -tt) */
        bool use_argv;
        struct env_list env;
        const char *workdir, *user;
        const char *timeout_arg;
        int64_t timeout_ns;
        char **words;
        int nwords;
        const char *addr;
};

/* What came back, and what the output handler saw on the way. */
struct exec_outcome {
        int rc;
        struct vsock_exec_result res;
        struct vsock_call call;
        bool output_broken;     /* our stdout reader went away */
        bool no_agent;          /* the watchdog found no agent */
        char no_agent_why[256];
        /* Go's pipe-mode start failure, held back until Exit shows it is
         * one (then reported in our words) or more output shows it is not. */
        char held[1024];
        size_t held_len;
        bool any_output;
        char last_err_line[512]; /* the end of stderr, to avoid repeating it */
        size_t last_err_len;
        atomic_bool heard;      /* the agent sent something */
};

/* ---- parse --------------------------------------------------------------------- */

static void exec_usage(FILE *f) {
        fputs("Usage: vsockctl [-a ADDR] exec [OPTIONS] [--] COMMAND [ARG...]\n"
              "\n"
              "Run COMMAND in the guest. The arguments are joined with single spaces into\n"
              "one shell command line (as ssh does; no quoting is added) and run by\n"
              "/bin/sh -c, unless --argv is given.\n"
              "\n"
              "Options:\n"
              "  -i, --interactive   send our stdin to the command (pipe mode; EOF is\n"
              "                      passed on; SIGINT/SIGTERM/SIGHUP/SIGQUIT are forwarded).\n"
              "                      This is the default when stdin is a pipe or a file\n"
              "  -n, --no-stdin      do not read stdin (stream mode: stdout and stderr stay\n"
              "                      apart and a signal cancels the command)\n"
              "  -t, --tty           run the command on a remote terminal; the local\n"
              "                      terminal is put in raw mode. Give -t twice to force\n"
              "                      it when stdin is not a terminal. Without a COMMAND,\n"
              "                      -t starts /bin/sh -i.\n"
              "  -e, --env K=V       set an environment variable (repeatable); -e K\n"
              "                      passes K's local value if it is set\n"
              "  -w, --workdir DIR   working directory in the guest\n"
              "  -u, --user USER     run as USER (\"uid\", \"uid:gid\" or a name)\n"
              "      --timeout DUR   stop the command after DUR (500ms, 2s, 1m, 1h or\n"
              "                      plain seconds) and exit with status 124\n"
              "      --argv          run COMMAND with exactly the ARGs given, no shell\n"
              "                      word splitting or expansion (an agent that runs every\n"
              "                      command through its shell gets them quoted)\n"
              "  -h, --help          show this help\n"
              "\n"
              "Without -i or -t, and with stdin a terminal or /dev/null, stdin is not read\n"
              "and SIGINT/SIGTERM cancel the command (a second one exits at once). When\n"
              "stdin is a pipe or a file it is forwarded, as ssh does; -n stops that (for\n"
              "loops that read their own stdin).\n"
              "\n"
              "Exit status: the command's own status; codes outside 0..255 are reduced\n"
              "modulo 256 as a shell does (-1 gives 255; a nonzero code never gives 0);\n"
              "127 when the guest could not start the command (unknown user, missing\n"
              "working directory, no such program), 126 when it found it but could not\n"
              "run it, with one line saying why; 124 when --timeout expired; 128+N when\n"
              "signal N cancelled the command; 255 for usage, connection and protocol\n"
              "errors.\n",
              f);
}

void env_list_free(struct env_list *l) {
        for (size_t i = 0; i < l->n; i++) {
                free(l->v[i].key);
                free(l->v[i].value);
        }
        free(l->v);
        *l = (struct env_list) {};
}

/* Add "K=V", or "K" with its local value (skipped when unset). A key given
 * twice keeps the last value. */
int env_list_add(struct env_list *l, const char *spec, const char *cmd) {
        const char *eq = strchr(spec, '=');
        _cleanup_free_ char *key = eq ? strndup(spec, (size_t) (eq - spec)) : strdup(spec);
        if (!key)
                return -ENOMEM;
        if (!*key) {
                cli_error("%s: invalid environment assignment '%s'", cmd, spec);
                return -EINVAL;
        }
        const char *val = eq ? eq + 1 : getenv(key);
        if (!val)
                return 0;
        _cleanup_free_ char *value = strdup(val);
        if (!value)
                return -ENOMEM;
        for (size_t i = 0; i < l->n; i++)
                if (strcmp(l->v[i].key, key) == 0) {
                        free(l->v[i].value);
                        l->v[i].value = TAKE_PTR(value);
                        return 0;
                }
        struct vsock_env *nv = reallocarray(l->v, l->n + 1, sizeof *nv);
        if (!nv)
                return -ENOMEM;
        l->v = nv;
        l->v[l->n++] = (struct vsock_env) { .key = TAKE_PTR(key), .value = TAKE_PTR(value) };
        return 0;
}

/* Whether stdin holds input someone meant for the command: a pipe, a file,
 * a socket, a device other than /dev/null, but not a terminal (ssh's rule
 * without the terminal: typing into vsockctl is what -i and -t are for). */
bool stdin_has_input(void) {
        struct stat st;
        if (fstat(STDIN_FILENO, &st) < 0)
                return false;
        if (S_ISCHR(st.st_mode))
                return !isatty(STDIN_FILENO) && st.st_rdev != makedev(1, 3);
        return true;
}

enum { OPT_TIMEOUT = 0x100, OPT_ARGV };

/* Returns -1 to go on, or an exit status. */
static int exec_parse(int argc, char **argv, struct exec_opts *o) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "interactive", no_argument, NULL, 'i' },
                { "no-stdin", no_argument, NULL, 'n' },
                { "tty", no_argument, NULL, 't' },
                { "env", required_argument, NULL, 'e' },
                { "workdir", required_argument, NULL, 'w' },
                { "user", required_argument, NULL, 'u' },
                { "timeout", required_argument, NULL, OPT_TIMEOUT },
                { "argv", no_argument, NULL, OPT_ARGV },
                {}
        };
        bool interactive = false, no_stdin = false;
        int tty_count = 0, c;

        optind = 0;
        /* '+': stop at the first non-option so the remote command's own
         * options pass through untouched. */
        while ((c = getopt_long(argc, argv, "+hinte:w:u:", options, NULL)) != -1) {
                switch (c) {
                case 'h':
                        exec_usage(stdout);
                        return CLI_EXIT_OK;
                case 'i':
                        interactive = true;
                        break;
                case 'n':
                        no_stdin = true;
                        break;
                case 't':
                        tty_count++;
                        break;
                case 'e':
                        if (env_list_add(&o->env, optarg, "exec") < 0)
                                return CLI_EXIT_ERROR;
                        break;
                case 'w':
                        o->workdir = optarg;
                        break;
                case 'u':
                        o->user = optarg;
                        break;
                case OPT_TIMEOUT:
                        o->timeout_arg = optarg;
                        if (cli_parse_duration(optarg, &o->timeout_ns) < 0)
                                return cli_usage_error("exec", "invalid duration '%s' (e.g. 500ms, 2s, 1m)", optarg);
                        break;
                case OPT_ARGV:
                        o->use_argv = true;
                        break;
                default:
                        return cli_usage_hint("exec");
                }
        }
        if (no_stdin && (interactive || tty_count > 0))
                return cli_usage_error("exec", "-n cannot be combined with -i or -t");

        if (tty_count > 0)
                o->mode = MODE_TTY;
        else if (interactive || (!no_stdin && stdin_has_input()))
                o->mode = MODE_PIPE;
        else
                o->mode = MODE_STREAM;
        o->nwords = argc - optind;
        o->words = argv + optind;
        if (o->nwords == 0 && o->mode != MODE_TTY)
                return cli_usage_error("exec", "missing COMMAND");
        if (o->mode == MODE_TTY) {
                o->have_tty = isatty(STDIN_FILENO);
                if (!o->have_tty && tty_count < 2) {
                        cli_error("exec: -t needs a terminal on stdin (give -tt to force a remote terminal)");
                        return CLI_EXIT_ERROR;
                }
        }
        if (cli_exec_addr(&o->addr) < 0)
                return CLI_EXIT_ERROR;
        return -1;
}

/* ---- build --------------------------------------------------------------------- */

/* ssh's rule: the words joined with single spaces, no quoting. */
static char *join_words(char **words, int n) {
        size_t len = 1;
        for (int i = 0; i < n; i++)
                len += strlen(words[i]) + 1;
        char *s = malloc(len), *p = s;
        if (!s)
                return NULL;
        for (int i = 0; i < n; i++) {
                if (i > 0)
                        *p++ = ' ';
                p = stpcpy(p, words[i]);
        }
        *p = '\0';
        return s;
}

int exec_command(char **words, int nwords, bool use_argv, struct vsock_exec_request *req, char **ret_owned) {
        static char *shell[] = { "-i" };
        char *owned = NULL;
        if (nwords == 0) {
                /* -t alone: an interactive shell. */
                req->command = "/bin/sh";
                req->args = shell;
                req->n_args = 1;
        } else if (use_argv && nwords == 1) {
                /* A program without arguments and no shell: the form with
                 * the vector in args and its quoting in command. */
                if (vsock_shell_quote(words, 1, &owned) < 0)
                        return -ENOMEM;
                req->command = owned;
                req->args = words;
                req->n_args = 1;
        } else if (use_argv) {
                /* The library sends this in the form every agent runs alike. */
                req->command = words[0];
                req->args = words + 1;
                req->n_args = (size_t) nwords - 1;
        } else {
                owned = join_words(words, nwords);
                if (!owned)
                        return -ENOMEM;
                req->command = owned;
        }
        *ret_owned = owned;
        return 0;
}

/* The request for @o; *ret_owned holds what it points to that we made. */
static int exec_build(const struct exec_opts *o, struct vsock_exec_request *ret, char **ret_owned) {
        struct vsock_exec_request req = {
                .working_dir = o->workdir,
                .user = o->user,
                .env = o->env.v,
                .n_env = o->env.n,
        };
        char *owned = NULL;
        if (exec_command(o->words, o->nwords, o->use_argv, &req, &owned) < 0)
                return -ENOMEM;
        if (o->mode == MODE_TTY) {
                uint16_t rows = 24, cols = 80;
                if (tty_get_size(STDIN_FILENO, &rows, &cols) < 0)
                        (void) tty_get_size(STDOUT_FILENO, &rows, &cols);
                req.rows = rows;
                req.cols = cols;
        }
        *ret = req;
        *ret_owned = owned;
        return 0;
}

/* ---- run ----------------------------------------------------------------------- */

static void remember_stderr(struct exec_outcome *out, const uint8_t *data, size_t len) {
        /* Keep the last line (up to its newline) in a bounded buffer. */
        for (size_t i = 0; i < len; i++) {
                if (out->last_err_len > 0 && out->last_err_line[out->last_err_len - 1] == '\n')
                        out->last_err_len = 0;
                if (out->last_err_len < sizeof out->last_err_line - 1)
                        out->last_err_line[out->last_err_len++] = (char) data[i];
        }
        out->last_err_line[out->last_err_len] = '\0';
}

static int write_stream(struct exec_outcome *out, enum vsock_stream_id stream, const void *data, size_t len) {
        int fd = stream == VSOCK_STREAM_STDERR ? STDERR_FILENO : STDOUT_FILENO;
        int r = io_write_all(fd, data, len, 0, -1);
        if (r == -EPIPE)
                out->output_broken = true;
        if (r >= 0 && stream == VSOCK_STREAM_STDERR)
                remember_stderr(out, data, len);
        return r;
}

static int flush_held(struct exec_outcome *out) {
        if (out->held_len == 0)
                return 0;
        size_t n = out->held_len;
        out->held_len = 0;
        return write_stream(out, VSOCK_STREAM_STDERR, out->held, n);
}

static int on_output(void *userdata, enum vsock_stream_id stream, const uint8_t *data, size_t len) {
        struct exec_outcome *out = userdata;
        atomic_store(&out->heard, true);
        if (!out->any_output && stream == VSOCK_STREAM_STDERR && len < sizeof out->held &&
            len >= sizeof GO_PIPE_START_FAILURE - 1 &&
            memcmp(data, GO_PIPE_START_FAILURE, sizeof GO_PIPE_START_FAILURE - 1) == 0) {
                memcpy(out->held, data, len);
                out->held_len = len;
                out->any_output = true;
                return 0;
        }
        out->any_output = true;
        int r = flush_held(out);
        if (r < 0)
                return r;
        return write_stream(out, stream, data, len);
}

/* A quiet command is fine; a quiet peer that is no agent (an HTTP server
 * at the address) is not. After --reply-timeout without a word from the
 * agent, ask it on a second connection whether it is one; if it is not,
 * the call is cancelled. */
struct watchdog {
        struct bgthread bg;
        const char *addr;
        struct exec_outcome *out;
};

static void *watchdog_main(void *arg) {
        struct watchdog *w = arg;
        if (bgthread_sleep(&w->bg, cli_opts.reply_timeout_ns) || atomic_load(&w->out->heard))
                return NULL;
        char why[sizeof w->out->no_agent_why];
        if (agent_check(w->addr, cli_opts.reply_timeout_ns, why, sizeof why) >= 0)
                return NULL;
        /* The call may have ended meanwhile: then its result stands. */
        pthread_mutex_lock(&w->bg.lock);
        if (!w->bg.stop && !atomic_load(&w->out->heard)) {
                snprintf(w->out->no_agent_why, sizeof w->out->no_agent_why, "%s", why);
                w->out->no_agent = true;
                cancel_now();
        }
        pthread_mutex_unlock(&w->bg.lock);
        return NULL;
}

static void watchdog_start(struct watchdog *w, const char *addr, struct exec_outcome *out) {
        *w = (struct watchdog) { .addr = addr, .out = out };
        if (cli_opts.reply_timeout_ns > 0)
                (void) bgthread_start(&w->bg, watchdog_main, w);
}

static void watchdog_stop(struct watchdog *w) {
        bgthread_stop(&w->bg);
}

static void exec_run(const struct exec_opts *o, const struct vsock_exec_request *req, struct exec_outcome *out) {
        /* A control channel only where a signal handler posts to it:
         * signals in pipe mode, window sizes on our own terminal. The
         * handlers keep it for good (cancel.h), so it is never freed. */
        vsock_exec_ctl *ctl = NULL;
        out->call = (struct vsock_call) VSOCK_CALL_INIT;
        if (o->mode == MODE_PIPE || (o->mode == MODE_TTY && o->have_tty)) {
                out->rc = vsock_exec_ctl_new(&ctl);
                if (out->rc < 0)
                        return;
        }
        struct cancel_opts co = {
                .forward = o->mode == MODE_PIPE ? ctl : NULL,
                .resize = o->mode == MODE_TTY ? ctl : NULL,
        };
        out->rc = cancel_setup(&co);
        if (out->rc < 0)
                return;
        /* A reader that goes away (`| head`) must not kill us with the
         * terminal still raw: write errors end the call instead. */
        (void) signal(SIGPIPE, SIG_IGN);

        out->call.cancel_fd = cancel_fd();
        if (o->timeout_ns > 0)
                out->call.deadline_ns = vsock_now_ns() + o->timeout_ns;

        vsock_conn *c = NULL;
        out->rc = agent_dial(o->addr, VSOCK_PORT_EXEC, "exec", &c);
        if (out->rc < 0)
                return;

        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        io.on_output = on_output;
        io.userdata = out;
        io.ctl = ctl;
        if (o->mode != MODE_STREAM)
                io.stdin_fd = STDIN_FILENO;

        struct watchdog w;
        watchdog_start(&w, o->addr, out);
        switch (o->mode) {
        case MODE_STREAM:
                out->rc = vsock_exec_stream(c, req, &io, &out->call, &out->res);
                break;
        case MODE_PIPE:
                out->rc = vsock_exec_pipe(c, req, &io, &out->call, &out->res);
                break;
        case MODE_TTY:
                if (o->have_tty && (out->rc = tty_raw_enter(STDIN_FILENO)) < 0) {
                        cli_error("exec: cannot put the terminal in raw mode: %s", strerror(-out->rc));
                        break;
                }
                out->rc = vsock_exec_tty(c, req, &io, &out->call, &out->res);
                tty_restore();
                break;
        }
        watchdog_stop(&w);
        (void) vsock_conn_close(c);
}

/* ---- map ----------------------------------------------------------------------- */

/* 126 when the guest found the program but could not run it, else 127. */
static int start_failure_status(int64_t code, const char *why) {
        if (code == CLI_EXIT_CANNOT_RUN || code == CLI_EXIT_NOT_FOUND)
                return (int) code;
        return strcasestr(why, "permission denied") ? CLI_EXIT_CANNOT_RUN : CLI_EXIT_NOT_FOUND;
}

static void report_start_failure(const struct exec_outcome *out, const char *why, size_t len) {
        while (len > 0 && (why[len - 1] == '\n' || why[len - 1] == '\r'))
                len--;
        /* The agent may have said it on stderr already. */
        if (len > 0 && out->last_err_len >= len && memmem(out->last_err_line, out->last_err_len, why, len))
                return;
        cli_error("exec: cannot start the command in the guest: %.*s", (int) len, why);
}

static int exec_map(const struct exec_opts *o, struct exec_outcome *out) {
        int r = out->rc;
        if (r < 0) {
                enum vsock_errkind k = vsock_err_kind(r);
                (void) flush_held(out);
                if (out->output_broken)
                        /* Our reader went away (e.g. `| head`): quiet, as
                         * a shell pipeline member killed by SIGPIPE. */
                        return 128 + SIGPIPE;
                if (k == VSOCK_E_CANCELLED && cancel_signo() != 0)
                        return 128 + cancel_signo();
                if (agent_dial_failed(r))
                        return CLI_EXIT_ERROR; /* agent_dial() said why */
                if (k == VSOCK_E_TIMEOUT && o->timeout_ns > 0) {
                        cli_error("exec: timed out after %s; the command was stopped", o->timeout_arg);
                        return CLI_EXIT_TIMEOUT;
                }
                if (k == VSOCK_E_CANCELLED && out->no_agent) {
                        cli_error("exec: %s: no reply within %s, and it does not answer as an agent: %s", o->addr,
                                  cli_opts.reply_timeout_arg, out->no_agent_why);
                        return CLI_EXIT_ERROR;
                }
                if (k == VSOCK_E_ERRNO)
                        cli_error("exec: %s", strerror(-r));
                else
                        agent_report(r, &out->call, "exec", o->addr);
                return CLI_EXIT_ERROR;
        }

        const struct vsock_exec_result *res = &out->res;
        if (res->error && *res->error) {
                /* Both agents put the reason a command did not start here
                 * (Go's with exit code 1). */
                report_start_failure(out, res->error, strlen(res->error));
                return start_failure_status(res->exit_code, res->error);
        }
        if (out->held_len > 0) {
                if (res->exit_code == 1) {
                        size_t skip = sizeof GO_PIPE_START_FAILURE - 1;
                        out->held[out->held_len] = '\0';
                        report_start_failure(out, out->held + skip, out->held_len - skip);
                        return start_failure_status(res->exit_code, out->held + skip);
                }
                (void) flush_held(out);
        }
        return cli_map_exit_code(res->exit_code);
}

int cmd_exec(int argc, char **argv) {
        struct exec_opts o = {};
        int status = exec_parse(argc, argv, &o);
        if (status >= 0) {
                env_list_free(&o.env);
                return status;
        }
        struct vsock_exec_request req;
        _cleanup_free_ char *owned = NULL;
        if (exec_build(&o, &req, &owned) < 0) {
                cli_error("exec: out of memory");
                env_list_free(&o.env);
                return CLI_EXIT_ERROR;
        }
        struct exec_outcome *out = calloc(1, sizeof *out);
        if (!out) {
                cli_error("exec: out of memory");
                env_list_free(&o.env);
                return CLI_EXIT_ERROR;
        }
        exec_run(&o, &req, out);
        status = exec_map(&o, out);
        tty_restore();
        vsock_exec_result_clear(&out->res);
        free(out);
        env_list_free(&o.env);
        return status;
}
