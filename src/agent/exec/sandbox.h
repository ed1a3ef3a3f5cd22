/* The workload sandbox applied to every command the agent starts (unless
 * --privileged): no_new_privs, a reduced capability set, and a seccomp
 * filter (built once with libseccomp in the agent, installed with a plain
 * prctl/seccomp call so the child stays async-signal-safe).
 *
 * Two ways to use it:
 *  - sandbox_apply_self() once in the agent, then sandbox_apply_child() in
 *    each child: the filter (whose install JIT-compiles it, ~90 us) and the
 *    bounding-set drop are done once and inherited; the child only lowers
 *    its own effective and permitted capabilities. This is what the agent
 *    does.
 *  - sandbox_apply_child() alone: everything is done in the child. */
#pragma once

#include <stdbool.h>

struct sandbox;

/* Build the filter and capability list once at start-up. */
int sandbox_new(struct sandbox **ret);
void sandbox_free(struct sandbox *s);

/* In the agent itself, once, after everything the filter refuses has been
 * done (the filter blocks creating AF_VSOCK sockets: the vsock listeners
 * must exist by then). Drops the dropped capabilities from the bounding set
 * (skipped quietly without CAP_SETPCAP), the inheritable and the ambient
 * sets, sets no_new_privs and installs the filter on every thread of the
 * process (SECCOMP_FILTER_FLAG_TSYNC). The agent's own effective and
 * permitted capabilities stay (init mode still mounts and reboots; neither
 * is blocked by the filter). From then on the agent itself cannot ptrace,
 * load modules or BPF, use keyrings, perf events, userfaultfd, io_uring,
 * open_by_handle_at or kexec, and cannot open AF_VSOCK sockets. Returns 0
 * or -errno (then nothing may have been applied: treat it as fatal). In a
 * build with LeakSanitizer (which ptraces the process at exit) it does
 * nothing and returns 0: sandbox_apply_child() then does everything. */
int sandbox_apply_self(struct sandbox *s);

/* In the child, after fork/clone and *before* user_switch_child()
 * (dropping bounding capabilities needs CAP_SETPCAP, which a switch to a
 * non-root user loses; the filter never blocks setuid/setgroups). After
 * sandbox_apply_self(): lowers the dropped capabilities in the effective and
 * permitted sets (one capget, one capset). Otherwise also drops the
 * bounding (when the caller holds CAP_SETPCAP), inheritable and ambient
 * sets, sets no_new_privs and installs the filter. Returns 0 or -errno.
 * Async-signal-safe; only raw system calls, so it is also safe in a
 * CLONE_VM child. */
int sandbox_apply_child(const struct sandbox *s);
