/* Init mode (`vsock-agent --init`): the duties of PID 1 in a minimal guest.
 * Without --init the agent calls none of this, so it also runs under another
 * init (see vsock-agent.service). The pure helpers (cmdline and mountinfo
 * parsing, signal mapping) are exposed for the unit tests. */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

/* True when the calling process is PID 1. */
bool init_is_pid1(void);

/* Mount /proc, /sys, /dev (devtmpfs), /dev/pts, /dev/shm, /tmp and /run,
 * each only if nothing is mounted there yet (/proc first, then the rest is
 * checked against /proc/self/mountinfo), and add the /dev/fd, /dev/stdin,
 * /dev/stdout, /dev/stderr links when missing. Idempotent and best effort:
 * every mount is attempted; returns 0 or the first negative errno. Logs
 * each failure. */
int init_mount_basics(void);

/* Set the hostname from `hostname=` on /proc/cmdline, if present. Logs a
 * failure; never fatal. */
void init_set_hostname_from_cmdline(void);

/* Map the agent options found on a kernel command line to long options, in
 * command-line order:
 *   vsock.listen=V      -> "--listen" V
 *   vsock.ready=V       -> "--ready" V
 *   vsock.allow_cid=A,B -> "--allow-cid" A "--allow-cid" B (repeatable)
 *   vsock.privileged=1  -> "--privileged" (0/no/false/off: nothing)
 *   vsock.pid_ns=1      -> "--pid-ns" (likewise)
 * Values may be double-quoted as the kernel allows; other words (and words
 * after a bare "--", which belong to init) are ignored. On success
 * *ret_argv is a NULL-terminated array owned by the caller (free it with
 * init_strv_free()) and *ret_argc its length (possibly 0). Returns 0,
 * -EINVAL for an empty value or an unknown boolean value, or
 * -ENOMEM; the out-parameters are untouched on failure. */
int init_cmdline_options(const char *cmdline, char ***ret_argv, int *ret_argc);

/* Free a NULL-terminated string array; NULL is fine. */
void init_strv_free(char **v);

/* Find the value of the last `key=value` word of a kernel command line
 * (the kernel's own rule: later words win). Returns 1 and sets *ret_value
 * (caller frees; quotes removed), 0 if absent (*ret_value untouched), or
 * -ENOMEM. */
int init_cmdline_get(const char *cmdline, const char *key, char **ret_value);

/* Whether @mountinfo (the text of /proc/self/mountinfo) has a mount whose
 * mount point is @path (octal escapes such as \040 are decoded). */
bool init_mountinfo_has(const char *mountinfo, const char *path);

/* Reap every exited child that is not one of the agent's own: peek with
 * waitid(WNOWAIT); stop at the first zombie for which @is_own returns true
 * (the agent reaps it through its pidfd in the same loop pass and calls this
 * again afterwards), reap anything else by its exact pid. Call after every
 * loop pass in init mode, with SIGCHLD in the agent's signalfd mask so the
 * loop wakes up when an orphan exits. @is_own may be NULL (reap all). */
void init_reap_orphans(bool (*is_own)(pid_t pid, void *userdata), void *userdata);

/* What PID 1 does on a signal. */
enum init_action {
        INIT_ACTION_NONE,
        INIT_ACTION_POWEROFF,
        INIT_ACTION_REBOOT,
};

/* Add to @mask the signals init mode must receive through the signalfd:
 * SIGCHLD, plus every shutdown request in init_signal_action(). */
void init_signal_mask_add(sigset_t *mask);

/* The action for @signo in init mode: SIGTERM, SIGUSR1/SIGUSR2 (busybox
 * halt/poweroff) and SIGRTMIN+3/+4 (systemd halt/poweroff) power off;
 * SIGINT (ctrl-alt-del, see init_disable_cad()) and SIGRTMIN+5 (systemd
 * reboot) reboot; anything else: none. */
enum init_action init_signal_action(int signo);

/* Make ctrl-alt-del send SIGINT to PID 1 instead of rebooting at once. */
void init_disable_cad(void);

/* Shut the machine down: sync, SIGTERM every other process and reap them
 * for up to about two seconds, SIGKILL the rest, sync again, then
 * reboot(RB_POWER_OFF) or reboot(RB_AUTOBOOT). Call it after the agent has
 * ended its own sessions. If reboot() fails it pauses forever: PID 1 must
 * never exit (that panics the kernel). */
_Noreturn void init_shutdown(bool reboot);
