/* vsockctl exec: run a command in the guest in one of three modes.
 *
 *   stream (default)  ExecStream: stdout/stderr arrive live and apart; no
 *                     stdin. A signal cancels the call (the library shuts
 *                     the connection down, so the agent kills the command).
 *   pipe (-i)         ExecPipe: our stdin goes to the command, EOF
 *                     included; signals are forwarded as Signal frames.
 *   tty (-t)          ExecTTY: a remote terminal; ours is put in raw mode
 *                     and restored on every way out. Window size changes
 *                     are forwarded; ^C is just a byte.
 *
 * Signal handlers only do async-signal-safe things: write to the cancel
 * pipe, call vsock_exec_ctl_signal/_resize, restore the terminal, _exit. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "common/io.h"
#include "common/macro.h"
#include "tty.h"

enum exec_mode { MODE_STREAM, MODE_PIPE, MODE_TTY };

/* State shared with the signal handler. */
static volatile sig_atomic_t sig_mode = MODE_STREAM;
static volatile sig_atomic_t sig_first = 0;
static volatile sig_atomic_t sig_have_tty = 0;
static vsock_exec_ctl *sig_ctl = NULL;
static int sig_cancel[2] = { -1, -1 };

static bool output_broken = false;

static const int exec_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };

static void exec_usage(FILE *f) {
        fputs("Usage: vsockctl [-a ADDR] exec [OPTIONS] [--] COMMAND [ARG...]\n"
              "\n"
              "Run COMMAND in the guest. The arguments are joined with single spaces into\n"
              "one shell command line (as ssh does; no quoting is added) and run by\n"
              "/bin/sh -c, unless --argv is given.\n"
              "\n"
              "Options:\n"
              "  -i, --interactive   send our stdin to the command (pipe mode; EOF is\n"
              "                      passed on; SIGINT/SIGTERM/SIGHUP/SIGQUIT are forwarded)\n"
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
              "      --argv          send COMMAND and ARGs as an argument vector (no\n"
              "                      shell in the guest; a lone COMMAND is sent quoted, as\n"
              "                      the protocol runs an argument-less request through\n"
              "                      the guest's shell)\n"
              "  -h, --help          show this help\n"
              "\n"
              "Without -i or -t, stdout and stderr stay apart and arrive live; stdin is not\n"
              "read, and SIGINT/SIGTERM cancel the command (a second one exits at once).\n"
              "\n"
              "Exit status: the command's own status; codes outside 0..255 are reduced\n"
              "modulo 256 as a shell does (-1 gives 255; a nonzero code never gives 0);\n"
              "124 when --timeout expired; 128+N when signal N cancelled the command;\n"
              "255 for usage, connection and protocol errors.\n",
              f);
}

static void exec_on_signal(int signo) {
        int saved = errno;

        if (signo == SIGWINCH) {
                uint16_t rows, cols;
                if (sig_have_tty && sig_ctl && tty_get_size(STDIN_FILENO, &rows, &cols) >= 0)
                        (void) vsock_exec_ctl_resize(sig_ctl, rows, cols);
                errno = saved;
                return;
        }

        if (sig_first != 0) {
                /* The user insists: leave now; closing the connection on
                 * exit makes the agent kill the command. */
                tty_restore();
                _exit(128 + signo);
        }
        sig_first = signo;

        if (sig_mode == MODE_PIPE && sig_ctl) {
                (void) vsock_exec_ctl_signal(sig_ctl, signo);
        } else {
                tty_restore();
                unsigned char b = (unsigned char) signo;
                (void) !write(sig_cancel[1], &b, 1);
        }
        errno = saved;
}

static int install_signals(enum exec_mode mode, bool have_tty) {
        struct sigaction sa = { .sa_handler = exec_on_signal };

        if (pipe2(sig_cancel, O_CLOEXEC | O_NONBLOCK) < 0)
                return -errno;
        sig_mode = mode;
        sig_have_tty = have_tty;
        /* Block our other signals while one is handled, so the first/second
         * decision and the terminal restore never interleave. */
        sigemptyset(&sa.sa_mask);
        for (size_t i = 0; i < ARRAY_SIZE(exec_signals); i++)
                sigaddset(&sa.sa_mask, exec_signals[i]);
        sigaddset(&sa.sa_mask, SIGWINCH);
        sa.sa_flags = SA_RESTART;
        for (size_t i = 0; i < ARRAY_SIZE(exec_signals); i++)
                if (sigaction(exec_signals[i], &sa, NULL) < 0)
                        return -errno;
        if (mode == MODE_TTY && have_tty && sigaction(SIGWINCH, &sa, NULL) < 0)
                return -errno;
        return 0;
}

static int write_output(void *userdata, enum vsock_stream_id stream, const uint8_t *data, size_t len) {
        int fd = stream == VSOCK_STREAM_STDERR ? STDERR_FILENO : STDOUT_FILENO;
        int r = io_write_all(fd, data, len, 0, -1);
        if (r == -EPIPE)
                output_broken = true;
        return r;
}

struct env_list {
        struct vsock_env *v;
        size_t n;
};

static void env_list_free(struct env_list *l) {
        for (size_t i = 0; i < l->n; i++) {
                free(l->v[i].key);
                free(l->v[i].value);
        }
        free(l->v);
        *l = (struct env_list) {};
}

/* Add "K=V", or "K" with its local value (skipped when unset). A key given
 * twice keeps the last value. */
static int env_list_add(struct env_list *l, const char *spec) {
        const char *eq = strchr(spec, '=');
        _cleanup_free_ char *key = eq ? strndup(spec, (size_t) (eq - spec)) : strdup(spec);
        if (!key)
                return -ENOMEM;
        if (!*key) {
                cli_error("exec: invalid environment assignment '%s'", spec);
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

/* 'word' with each ' written as '\'' (POSIX sh). */
static char *shell_quote(const char *w) {
        size_t n = 3;
        for (const char *p = w; *p; p++)
                n += *p == '\'' ? 4 : 1;
        char *s = malloc(n), *q = s;
        if (!s)
                return NULL;
        *q++ = '\'';
        for (const char *p = w; *p; p++) {
                if (*p == '\'') {
                        memcpy(q, "'\\''", 4);
                        q += 4;
                } else
                        *q++ = *p;
        }
        *q++ = '\'';
        *q = '\0';
        return s;
}

enum { OPT_TIMEOUT = 0x100, OPT_ARGV };

int cmd_exec(int argc, char **argv) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "interactive", no_argument, NULL, 'i' },
                { "tty", no_argument, NULL, 't' },
                { "env", required_argument, NULL, 'e' },
                { "workdir", required_argument, NULL, 'w' },
                { "user", required_argument, NULL, 'u' },
                { "timeout", required_argument, NULL, OPT_TIMEOUT },
                { "argv", no_argument, NULL, OPT_ARGV },
                {}
        };
        _cleanup_(env_list_free) struct env_list env = {};
        const char *workdir = NULL, *user = NULL, *timeout_arg = NULL;
        int64_t timeout_ns = 0;
        bool interactive = false, use_argv = false;
        int tty_count = 0, c;

        optind = 0;
        /* '+': stop at the first non-option so the remote command's own
         * options pass through untouched. */
        while ((c = getopt_long(argc, argv, "+hite:w:u:", options, NULL)) != -1) {
                switch (c) {
                case 'h':
                        exec_usage(stdout);
                        return CLI_EXIT_OK;
                case 'i':
                        interactive = true;
                        break;
                case 't':
                        tty_count++;
                        break;
                case 'e':
                        if (env_list_add(&env, optarg) < 0)
                                return CLI_EXIT_ERROR;
                        break;
                case 'w':
                        workdir = optarg;
                        break;
                case 'u':
                        user = optarg;
                        break;
                case OPT_TIMEOUT:
                        timeout_arg = optarg;
                        if (cli_parse_duration(optarg, &timeout_ns) < 0)
                                return cli_usage_error("exec", "invalid duration '%s' (e.g. 500ms, 2s, 1m)", optarg);
                        break;
                case OPT_ARGV:
                        use_argv = true;
                        break;
                default:
                        return cli_usage_hint("exec");
                }
        }

        enum exec_mode mode = tty_count > 0 ? MODE_TTY : interactive ? MODE_PIPE : MODE_STREAM;
        int nwords = argc - optind;
        char **words = argv + optind;
        if (nwords == 0 && mode != MODE_TTY)
                return cli_usage_error("exec", "missing COMMAND");

        bool have_tty = false;
        if (mode == MODE_TTY) {
                have_tty = isatty(STDIN_FILENO);
                if (!have_tty && tty_count < 2) {
                        cli_error("exec: -t needs a terminal on stdin (give -tt to force a remote terminal)");
                        return CLI_EXIT_ERROR;
                }
        }

        const char *addr;
        if (cli_exec_addr(&addr) < 0)
                return CLI_EXIT_ERROR;

        _cleanup_free_ char *joined = NULL;
        char *sh_args[2] = { (char *) "-c", NULL };
        struct vsock_exec_request req = {
                .working_dir = (char *) workdir,
                .user = (char *) user,
                .env = env.v,
                .n_env = env.n,
        };
        char *interactive_args[] = { (char *) "-i" };
        if (nwords == 0) {
                req.command = (char *) "/bin/sh";
                req.args = interactive_args;
                req.n_args = 1;
        } else if (use_argv && nwords == 1) {
                /* A request without args is a shell command line to the
                 * agent, so quote the lone word: the shell then runs
                 * exactly that program, unsplit and unglobbed. */
                joined = shell_quote(words[0]);
                if (!joined) {
                        cli_error("exec: out of memory");
                        return CLI_EXIT_ERROR;
                }
                req.command = joined;
        } else if (use_argv) {
                req.command = words[0];
                req.args = words + 1;
                req.n_args = (size_t) nwords - 1;
        } else {
                joined = join_words(words, nwords);
                if (!joined) {
                        cli_error("exec: out of memory");
                        return CLI_EXIT_ERROR;
                }
                sh_args[1] = joined;
                req.command = (char *) "/bin/sh";
                req.args = sh_args;
                req.n_args = 2;
        }

        if (mode == MODE_TTY) {
                uint16_t rows = 24, cols = 80;
                if (tty_get_size(STDIN_FILENO, &rows, &cols) < 0)
                        (void) tty_get_size(STDOUT_FILENO, &rows, &cols);
                req.rows = rows;
                req.cols = cols;
        }

        vsock_exec_ctl *ctl = NULL;
        int r;
        if (mode != MODE_STREAM) {
                r = vsock_exec_ctl_new(&ctl);
                if (r < 0) {
                        cli_error_rc(r, NULL, "exec");
                        return CLI_EXIT_ERROR;
                }
                sig_ctl = ctl;
        }
        /* A reader that goes away (`| head`) must not kill us with the
         * terminal still raw: write errors end the call instead. */
        (void) signal(SIGPIPE, SIG_IGN);
        r = install_signals(mode, have_tty);
        if (r < 0) {
                cli_error("exec: cannot set up signal handling: %s", strerror(-r));
                return CLI_EXIT_ERROR;
        }

        struct vsock_call call = VSOCK_CALL_INIT;
        call.cancel_fd = sig_cancel[0];
        if (timeout_ns > 0)
                call.deadline_ns = vsock_now_ns() + timeout_ns;

        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        io.on_output = write_output;
        io.ctl = ctl;
        if (mode != MODE_STREAM)
                io.stdin_fd = STDIN_FILENO;

        struct vsock_exec_result res = {};
        switch (mode) {
        case MODE_STREAM:
                r = vsock_exec_stream_at(addr, &req, &io, &call, &res);
                break;
        case MODE_PIPE:
                r = vsock_exec_pipe_at(addr, &req, &io, &call, &res);
                break;
        case MODE_TTY:
                if (have_tty) {
                        r = tty_raw_enter(STDIN_FILENO);
                        if (r < 0) {
                                cli_error("exec: cannot put the terminal in raw mode: %s", strerror(-r));
                                r = CLI_EXIT_ERROR;
                                goto out;
                        }
                }
                r = vsock_exec_tty_at(addr, &req, &io, &call, &res);
                tty_restore();
                break;
        }

        int sig = sig_first;
        if (r < 0) {
                enum vsock_errkind k = vsock_err_kind(r);
                if (output_broken)
                        /* Our reader went away (e.g. `| head`): quiet, as
                         * a shell pipeline member killed by SIGPIPE. */
                        r = 128 + SIGPIPE;
                else if (k == VSOCK_E_TIMEOUT && timeout_ns > 0) {
                        cli_error("exec: timed out after %s; the command was stopped", timeout_arg);
                        r = CLI_EXIT_TIMEOUT;
                } else if (k == VSOCK_E_CANCELLED && sig != 0) {
                        r = 128 + sig;
                } else {
                        cli_error_rc(r, &call, "exec: %s", addr);
                        r = CLI_EXIT_ERROR;
                }
                goto out;
        }

        if (res.error && *res.error) {
                cli_error("exec: guest: %s", res.error);
                r = res.exit_code == 0 ? CLI_EXIT_ERROR : cli_map_exit_code(res.exit_code);
        } else {
                r = cli_map_exit_code(res.exit_code);
        }

out:
        tty_restore();
        vsock_exec_result_clear(&res);
        /* Signals stay handled until exit: the ctl is not freed, so a late
         * handler never touches freed memory. */
        return r;
}
