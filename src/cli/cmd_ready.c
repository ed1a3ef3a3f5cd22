/* vsockctl wait-ready: block until the guest's ready port accepts. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cancel.h"
#include "cli.h"
#include "common/macro.h"

#define READY_DEFAULT_TIMEOUT "60s"

static void ready_usage(FILE *f) {
        fputs("Usage: vsockctl [-a ADDR] wait-ready [--timeout DUR] [--ready-addr ADDR]\n"
              "\n"
              "Wait until the guest's ready service accepts a connection (it is retried\n"
              "at short, growing intervals).\n"
              "\n"
              "  --timeout DUR      give up after DUR (500ms, 2s, 1m, 1h or plain seconds;\n"
              "                     default " READY_DEFAULT_TIMEOUT ")\n"
              "  --ready-addr ADDR  the ready service's address; default $VSOCK_READY_ADDR,\n"
              "                     else the agent address (-a or $VSOCK_ADDR) with port\n"
              "                     5002 when it names none (vsock:3 -> vsock:3:5002). A\n"
              "                     unix: address has no port, so with one the ready\n"
              "                     address must be given separately.\n"
              "  -h, --help         show this help\n"
              "\n"
              "Exit status: 0 once the guest is ready, 1 on timeout, 130/143 when\n"
              "interrupted, 255 for usage errors and unusable addresses.\n",
              f);
}

enum { OPT_TIMEOUT = 0x100, OPT_READY_ADDR };

static int ready_addr(const char *arg, const char **ret) {
        const char *a = arg && *arg ? arg : getenv(CLI_ENV_READY_ADDR);
        const char *why = NULL;
        struct vsock_addr parsed;

        if (a && *a) {
                if (vsock_addr_parse(a, VSOCK_PORT_READY, &parsed, &why) < 0) {
                        cli_error("wait-ready: invalid ready address '%s': %s", a, why ? why : "unrecognised form");
                        return -EINVAL;
                }
                *ret = a;
                return 0;
        }
        if (cli_exec_addr(&a) < 0)
                return -EINVAL;
        if (vsock_addr_parse(a, VSOCK_PORT_READY, &parsed, &why) < 0) {
                cli_error("wait-ready: invalid address '%s': %s", a, why ? why : "unrecognised form");
                return -EINVAL;
        }
        if (parsed.transport == VSOCK_TRANSPORT_UNIX) {
                cli_error("wait-ready: %s is a unix socket and has no ready port; "
                          "give the ready socket with --ready-addr or %s",
                          a, CLI_ENV_READY_ADDR);
                return -EINVAL;
        }
        *ret = a;
        return 0;
}

int cmd_wait_ready(int argc, char **argv) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "timeout", required_argument, NULL, OPT_TIMEOUT },
                { "ready-addr", required_argument, NULL, OPT_READY_ADDR },
                {}
        };
        const char *timeout_arg = READY_DEFAULT_TIMEOUT, *raddr_arg = NULL;
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "+h", options, NULL)) != -1) {
                switch (c) {
                case 'h':
                        ready_usage(stdout);
                        return CLI_EXIT_OK;
                case OPT_TIMEOUT:
                        timeout_arg = optarg;
                        break;
                case OPT_READY_ADDR:
                        raddr_arg = optarg;
                        break;
                default:
                        return cli_usage_hint("wait-ready");
                }
        }
        if (optind < argc)
                return cli_usage_error("wait-ready", "unexpected argument '%s'", argv[optind]);
        int64_t timeout_ns;
        if (cli_parse_duration(timeout_arg, &timeout_ns) < 0)
                return cli_usage_error("wait-ready", "invalid duration '%s' (e.g. 500ms, 2s, 1m)", timeout_arg);

        const char *addr;
        if (ready_addr(raddr_arg, &addr) < 0)
                return CLI_EXIT_ERROR;

        int r = cancel_setup(NULL);
        if (r < 0) {
                cli_error("wait-ready: cannot set up signal handling: %s", strerror(-r));
                return CLI_EXIT_ERROR;
        }

        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_now_ns() + timeout_ns;
        call.cancel_fd = cancel_fd();
        r = vsock_wait_ready(addr, &call);
        if (r >= 0)
                return CLI_EXIT_OK;
        switch (vsock_err_kind(r)) {
        case VSOCK_E_TIMEOUT:
                cli_error("wait-ready: %s: guest not ready after %s", addr, timeout_arg);
                return CLI_EXIT_FAILURE;
        case VSOCK_E_CANCELLED:
                if (cancel_signo() != 0)
                        return 128 + cancel_signo();
                __attribute__((fallthrough));
        default:
                cli_error_rc(r, &call, "wait-ready: %s", addr);
                return CLI_EXIT_ERROR;
        }
}
