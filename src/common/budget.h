/* An agent-wide memory budget: bytes reserved against one limit, shared
 * by the event loop and worker threads (atomic, lock-free).
 *
 * Two ways to take from it:
 * - budget_reserve() is strict: it refuses (-ENOBUFS, nothing taken) what
 *   would go past the limit. Whoever is about to allocate memory a peer
 *   asked for uses it before allocating.
 * - budget_charge() always succeeds and may go past the limit: memory that
 *   exists already, or that the agent cannot refuse (a small error reply),
 *   is still counted, so that strict reservations see it.
 * budget_release() gives back what either took. A NULL budget takes
 * nothing and refuses nothing. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct budget {
        size_t limit;           /* 0: no limit */
        size_t used;            /* atomic */
        size_t peak;            /* atomic: the highest @used seen */
};

/* A budget of @limit bytes (0: unlimited, only counted). */
void budget_init(struct budget *b, size_t limit);

/* Take @n bytes if the limit allows. 0, or -ENOBUFS (nothing taken). */
int budget_reserve(struct budget *b, size_t n);
/* Take @n bytes whatever the limit. */
void budget_charge(struct budget *b, size_t n);
/* Give back @n bytes taken earlier (more than is held is a bug: the
 * count is clamped at 0 and the call returns -EINVAL). */
int budget_release(struct budget *b, size_t n);

size_t budget_used(const struct budget *b);
size_t budget_peak(const struct budget *b);
size_t budget_limit(const struct budget *b);
/* Bytes a strict reservation could still take (SIZE_MAX without a limit). */
size_t budget_left(const struct budget *b);
