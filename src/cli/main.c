/* vsockctl: the host's command-line client of the guest agent. Global
 * options, then a subcommand from the table below. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vsock/version.h>

#include "cli.h"
#include "common/macro.h"

struct subcommand {
        const char *name;
        int (*run)(int argc, char **argv);
        const char *summary;
};

static const struct subcommand subcommands[] = {
        { "exec", cmd_exec, "run a command in the guest (streamed, piped stdin, or on a terminal)" },
        { "cp", cmd_cp, "copy a file to or from the guest (:/path)" },
        { "cat", cmd_cat, "write guest files to stdout" },
        { "ls", cmd_ls, "list a guest directory" },
        { "stat", cmd_stat, "show the status of guest files" },
        { "mkdir", cmd_mkdir, "create guest directories" },
        { "rm", cmd_rm, "remove guest files and directories" },
        { "mv", cmd_mv, "rename a guest file or directory" },
        { "chmod", cmd_chmod, "set the permission bits of guest files" },
        { "port-forward", cmd_port_forward, "forward a local TCP port to the guest (like ssh -L; -R: the other way)" },
        { "wait-ready", cmd_wait_ready, "wait until the guest reports ready" },
        { "run", cmd_run, "start a detached command in the guest (-d): it outlives vsockctl" },
        { "ps", cmd_ps, "list the guest's detached processes" },
        { "attach", cmd_attach, "follow a detached process's output, with stdin and terminal" },
        { "logs", cmd_logs, "write a detached process's kept output (-f: follow)" },
        { "kill", cmd_kill, "signal a detached process" },
        { "wait", cmd_wait, "wait for a detached process and exit with its status" },
};

static void usage(FILE *f) {
        fputs("Usage: vsockctl [-a ADDR] [--connect-timeout DUR] [--reply-timeout DUR] COMMAND [ARGS...]\n"
              "\n"
              "Talk to the vsock guest agent.\n"
              "\n"
              "Options:\n"
              "  -a, --addr ADDR          the agent's address (default: $VSOCK_ADDR):\n"
              "                             vsock:CID[:PORT]        AF_VSOCK (port 5000)\n"
              "                             vsock-mux:/path[:PORT]  Firecracker/Cloud Hypervisor\n"
              "                             unix:/path              unix socket\n"
              "                             tcp:HOST[:PORT]         TCP\n"
              "      --connect-timeout DUR  give up connecting after DUR (default "
              CLI_CONNECT_TIMEOUT_DEFAULT "; 0: never)\n"
              "      --reply-timeout DUR    how long a request may wait for the agent's answer\n"
              "                           (default " CLI_REPLY_TIMEOUT_DEFAULT
              "; 0: forever); exec checks after that long\n"
              "                           without output that an agent answers at all\n"
              "  -h, --help               show this help\n"
              "  -V, --version            show the version\n"
              "\n"
              "Commands:\n",
              f);
        for (size_t i = 0; i < ARRAY_SIZE(subcommands); i++)
                fprintf(f, "  %-13s %s\n", subcommands[i].name, subcommands[i].summary);
        fputs("\nRun 'vsockctl COMMAND --help' for a command's options; see vsockctl(1).\n", f);
}

static const struct subcommand *find_subcommand(const char *name) {
        for (size_t i = 0; i < ARRAY_SIZE(subcommands); i++)
                if (strcmp(subcommands[i].name, name) == 0)
                        return &subcommands[i];
        return NULL;
}

/* A duration option; "0" turns the bound off. */
static int parse_timeout(const char *opt, const char *arg, const char **ret_arg, int64_t *ret_ns) {
        int64_t ns = 0;
        if (strcmp(arg, "0") != 0 && cli_parse_duration(arg, &ns) < 0)
                return cli_usage_error(NULL, "%s: invalid duration '%s' (e.g. 500ms, 2s, 1m; 0 for none)", opt, arg);
        *ret_arg = arg;
        *ret_ns = ns;
        return 0;
}

enum { OPT_CONNECT_TIMEOUT = 0x100, OPT_REPLY_TIMEOUT };

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "addr", required_argument, NULL, 'a' },
                { "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
                { "reply-timeout", required_argument, NULL, OPT_REPLY_TIMEOUT },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {}
        };
        int c;

        if (parse_timeout("--connect-timeout", CLI_CONNECT_TIMEOUT_DEFAULT, &cli_opts.connect_timeout_arg,
                          &cli_opts.connect_timeout_ns) != 0 ||
            parse_timeout("--reply-timeout", CLI_REPLY_TIMEOUT_DEFAULT, &cli_opts.reply_timeout_arg,
                          &cli_opts.reply_timeout_ns) != 0)
                return CLI_EXIT_ERROR;

        /* '+': the first non-option is the subcommand; everything after it
         * belongs to the subcommand. */
        while ((c = getopt_long(argc, argv, "+a:hV", options, NULL)) != -1) {
                switch (c) {
                case 'a':
                        cli_opts.addr = optarg;
                        break;
                case OPT_CONNECT_TIMEOUT:
                        if (parse_timeout("--connect-timeout", optarg, &cli_opts.connect_timeout_arg,
                                          &cli_opts.connect_timeout_ns) != 0)
                                return CLI_EXIT_ERROR;
                        break;
                case OPT_REPLY_TIMEOUT:
                        if (parse_timeout("--reply-timeout", optarg, &cli_opts.reply_timeout_arg,
                                          &cli_opts.reply_timeout_ns) != 0)
                                return CLI_EXIT_ERROR;
                        break;
                case 'h':
                        usage(stdout);
                        return CLI_EXIT_OK;
                case 'V':
                        printf("vsockctl %s\n", VSOCK_VERSION_STRING);
                        return CLI_EXIT_OK;
                default:
                        return cli_usage_hint(NULL);
                }
        }
        if (optind >= argc) {
                usage(stderr);
                return CLI_EXIT_ERROR;
        }

        const char *name = argv[optind];
        if (strcmp(name, "help") == 0) {
                if (optind + 1 >= argc) {
                        usage(stdout);
                        return CLI_EXIT_OK;
                }
                const struct subcommand *sc = find_subcommand(argv[optind + 1]);
                if (!sc)
                        return cli_usage_error(NULL, "unknown command '%s'", argv[optind + 1]);
                char *help_argv[] = { (char *) "vsockctl", (char *) "--help", NULL };
                return sc->run(2, help_argv);
        }
        const struct subcommand *sc = find_subcommand(name);
        if (!sc)
                return cli_usage_error(NULL, "unknown command '%s'", name);

        /* getopt names the program by argv[0] in its messages. */
        char label[64];
        snprintf(label, sizeof label, "vsockctl %s", sc->name);
        char **sub_argv = argv + optind;
        sub_argv[0] = label;
        int r = sc->run(argc - optind, sub_argv);
        if (fflush(stdout) != 0 && r == CLI_EXIT_OK)
                r = CLI_EXIT_FAILURE;
        return r;
}
