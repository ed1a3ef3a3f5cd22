/* Whether the kernel's OOM killer ended a process, as far as the agent can
 * tell: the oom_kill counter of the agent's cgroup (cgroup v2
 * memory.events, which counts the whole subtree, so the processes the
 * agent starts) is read when a detached process starts and again when it
 * died of SIGKILL; a counter that rose means an OOM kill in the meantime.
 * Other processes of the same cgroup killed in the same window would be
 * counted too: the answer is "the OOM killer was active and this process
 * died of SIGKILL", never a false "no". Without cgroup v2 or a memory
 * controller there is no answer (-ENOENT).
 *
 * The reads touch a file system: worker threads only. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The oom_kill counter of @events_path, or of the agent's own cgroup's
 * memory.events (from /proc/self/cgroup) when NULL. -ENOENT when there is
 * none, -EINVAL when it does not parse, other -errno from reading. */
int oomkill_count(const char *events_path, uint64_t *ret);

/* The "oom_kill N" line of a memory.events text (@len bytes, not
 * NUL-terminated). -ENOENT without one, -EINVAL for a bad number. */
int oomkill_parse_events(const char *text, size_t len, uint64_t *ret);
