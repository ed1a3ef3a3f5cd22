/* Shared bits of vsockctl: exit codes, address resolution, durations,
 * error reporting and the cancel self-pipe used by the subcommands. */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vsock/vsock.h>

/* Exit codes. Like ssh, 255 means "vsockctl itself failed" (usage,
 * connection, protocol), so a remote command's own status passes through
 * unchanged in every other case. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAILURE 1      /* the operation failed (file ops, wait-ready timeout) */
#define CLI_EXIT_TIMEOUT 124    /* exec --timeout expired (as timeout(1)) */
#define CLI_EXIT_ERROR 255      /* usage, connection or protocol error */

#define CLI_ENV_ADDR "VSOCK_ADDR"
#define CLI_ENV_READY_ADDR "VSOCK_READY_ADDR"

/* Set by main() from -a/--addr; NULL when not given. */
extern const char *cli_arg_addr;

/* The agent's exec-service address: -a, else $VSOCK_ADDR. Prints an error
 * and returns -EINVAL when neither is set or the address does not parse
 * (with port 5000 as the default). *ret points into argv/environ. */
int cli_exec_addr(const char **ret);

/* "500ms", "2s", "1.5m", "1h", "10" (seconds). Returns 0 and the length in
 * ns, or -EINVAL (zero and negative durations are rejected too). */
int cli_parse_duration(const char *s, int64_t *ret_ns);

/* "vsockctl: " + message on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "vsockctl: <context>: <vsock_strerror(rc)>[: <remote_error>]". @call may
 * be NULL. */
void cli_error_rc(int rc, const struct vsock_call *call, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Exit code for a library failure: CLI_EXIT_FAILURE for a guest-side file
 * error, CLI_EXIT_ERROR for everything else. */
int cli_exit_code_for(int rc);

/* Map a remote exit code to a process exit status: 0..255 pass through,
 * anything else is reduced modulo 256 like a shell's `exit N` (so -1 gives
 * 255), except that a nonzero code never becomes 0 (it gives 1 then). */
int cli_map_exit_code(int64_t code);

/* Usage errors: "vsockctl: <cmd>: <msg>" plus a hint to use --help;
 * cli_usage_hint() prints only the hint (after getopt's own message).
 * Both return CLI_EXIT_ERROR. @cmd may be NULL for the global options. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_usage_hint(const char *cmd);

/* Cancel self-pipe: cli_cancel_install() creates the pipe (CLOEXEC,
 * non-blocking) and installs a handler for @signals that writes the
 * signal's number to it the first time; a second such signal exits the
 * process at once with 128 + signo. Returns 0 or -errno. */
int cli_cancel_install(const int *signals, size_t n);
/* Readable once a signal came in; -1 before cli_cancel_install(). */
int cli_cancel_fd(void);
/* The first signal received, 0 if none. */
int cli_cancel_signo(void);

/* Human-readable size: "512 B", "1.5 KiB", "15.0 MiB". */
void cli_format_size(uint64_t n, char *buf, size_t size);

/* Subcommands: argv[0] is the subcommand's name. Each returns an exit
 * status. */
int cmd_exec(int argc, char **argv);
int cmd_cp(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_port_forward(int argc, char **argv);
int cmd_wait_ready(int argc, char **argv);
