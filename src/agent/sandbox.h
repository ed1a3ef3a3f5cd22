/* The workload sandbox applied to every command the agent starts (unless
 * --privileged): no_new_privs, a reduced capability bounding set, and a
 * seccomp filter (built once with libseccomp in the agent, installed in the
 * child with a plain prctl so the child stays async-signal-safe). */
#pragma once

#include <stdbool.h>

struct sandbox;

/* Build the filter and capability list once at start-up. */
int sandbox_new(struct sandbox **ret);
void sandbox_free(struct sandbox *s);

/* In the child, after fork and *before* user_switch_child() (dropping
 * bounding capabilities needs CAP_SETPCAP, which a switch to a non-root
 * user loses; the filter never blocks setuid/setgroups): drops bounding
 * capabilities (skipped quietly when the agent does not hold CAP_SETPCAP),
 * sets no_new_privs, installs the filter. Returns 0 or -errno.
 * Async-signal-safe. */
int sandbox_apply_child(const struct sandbox *s);
