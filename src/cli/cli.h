/* Shared bits of vsockctl: exit codes, global options, durations, sizes
 * and error reporting. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <vsock/vsock.h>

/* Exit codes. Like ssh, 255 means "vsockctl itself failed" (usage,
 * connection, protocol), so a remote command's own status passes through
 * unchanged in every other case. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAILURE 1      /* the operation failed (file ops, wait-ready timeout) */
#define CLI_EXIT_TIMEOUT 124    /* exec --timeout expired (as timeout(1)) */
#define CLI_EXIT_CANNOT_RUN 126 /* the guest found the command but could not run it */
#define CLI_EXIT_NOT_FOUND 127  /* the guest could not start the command */
#define CLI_EXIT_ERROR 255      /* usage, connection or protocol error */

#define CLI_ENV_ADDR "VSOCK_ADDR"
#define CLI_ENV_READY_ADDR "VSOCK_READY_ADDR"

#define NS_PER_SEC ((int64_t) 1000000000)

/* The global options (main.c). */
struct cli_options {
        const char *addr;               /* -a; NULL when not given */
        int64_t connect_timeout_ns;     /* --connect-timeout; 0 = none */
        int64_t reply_timeout_ns;       /* --reply-timeout; 0 = none */
        const char *connect_timeout_arg;
        const char *reply_timeout_arg;
};
extern struct cli_options cli_opts;

#define CLI_CONNECT_TIMEOUT_DEFAULT "10s"
#define CLI_REPLY_TIMEOUT_DEFAULT "30s"

/* The agent's exec-service address: -a, else $VSOCK_ADDR. Prints an error
 * and returns -EINVAL when neither is set or the address does not parse
 * (with port 5000 as the default). *ret points into argv/environ. */
int cli_exec_addr(const char **ret);

/* "500ms", "2s", "1.5m", "1h", "10" (seconds). Returns 0 and the length in
 * ns, or -EINVAL (zero and negative durations are rejected too). */
int cli_parse_duration(const char *s, int64_t *ret_ns);

/* "vsockctl: " + message on stderr, in one write(2) (several threads may
 * report at once). */
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

/* A subcommand's options besides -h/--help: on/off (@set), or with a
 * value (@value, the argument as given; @set too when not NULL). A
 * @letter of 0 makes it long-only. */
struct cli_flag {
        char letter;
        const char *name;
        bool *set;
        const char **value;
};
/* Parse -h/--help (prints @usage on stdout) and @flags[0..n) (n <= 8).
 * Returns -1 with optind at the first operand, or an exit status. */
int cli_parse_flags(const char *cmd, int argc, char **argv, const struct cli_flag *flags, size_t n,
                    void (*usage)(FILE *f));

/* ls -l's ten-character mode string of @m ("drwxr-xr-x", with s/S and t/T
 * for setuid, setgid and sticky); a mode without type bits is a directory
 * when @is_dir. */
void cli_mode_string(mode_t m, bool is_dir, char out[11]);

/* Human-readable size: "512 B", "1.5 KiB", "15.0 MiB". */
void cli_format_size(uint64_t n, char *buf, size_t size);

/* Shared by exec and run (cmd_exec.c). */
struct env_list {
        struct vsock_env *v;
        size_t n;
};
/* Add "K=V", or "K" with its local value (skipped when unset); errors are
 * reported as @cmd's. */
int env_list_add(struct env_list *l, const char *spec, const char *cmd);
void env_list_free(struct env_list *l);
/* Whether stdin holds input meant for the command (a pipe or file, not a
 * terminal or /dev/null). */
bool stdin_has_input(void);
/* Set @req's command (and args) from the words: joined into a shell
 * command line, or with @use_argv run as given; none: /bin/sh -i.
 * *ret_owned holds what was allocated (free it after the call). */
int exec_command(char **words, int nwords, bool use_argv, struct vsock_exec_request *req, char **ret_owned);

/* Subcommands: argv[0] is the subcommand's name. Each returns an exit
 * status. */
int cmd_exec(int argc, char **argv);
int cmd_cp(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_port_forward(int argc, char **argv);
int cmd_wait_ready(int argc, char **argv);
/* cmd_fs.c: the "fs" extension. */
int cmd_stat(int argc, char **argv);
int cmd_mkdir(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_mv(int argc, char **argv);
int cmd_chmod(int argc, char **argv);
/* Port forwarding (cmd_portfwd.c; -R in cmd_rfwd.c). */
/* Copy between two connected sockets both ways, half-closes passed on,
 * until both directions ended. Returns 0 or -errno. */
int cli_proxy(int a_fd, int b_fd);
/* Run @fn(@arg) on a detached thread that takes no signals. 0 or -errno. */
int cli_spawn_detached(void *(*fn)(void *arg), void *arg);
/* Both directions: the agent address, signal handling, SIGPIPE ignored.
 * Returns 0, or an exit status (reported). */
int port_forward_prepare(const char **ret_addr);
/* port-forward -R SPEC. Returns an exit status. */
int port_forward_remote(const char *spec);
/* Detached processes (cmd_proc.c). */
int cmd_run(int argc, char **argv);
int cmd_ps(int argc, char **argv);
int cmd_attach(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_kill(int argc, char **argv);
int cmd_wait(int argc, char **argv);
