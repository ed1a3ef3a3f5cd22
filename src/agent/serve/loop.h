/* The agent's event loop: one epoll fd, watchers embedded in the objects
 * that own them (reached through epoll_event.data.ptr), timers kept in a
 * min-heap and served through epoll_wait's timeout, and deferred calls run
 * after each dispatch pass so that nothing is freed while an event for it
 * may still be pending in the current batch. Single-threaded.
 *
 * Watchers, timers and deferred calls are all embedded in their owners:
 * arming a watcher or deferring a call never allocates, so neither can
 * fail for want of memory (timers grow one heap array). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct watcher;
struct timer;
struct defer;

typedef void (*watcher_fn)(struct watcher *w, uint32_t revents);
typedef void (*timer_fn)(struct timer *t);
typedef void (*defer_fn)(struct defer *d);

/* Embed in the owning object; recover it with container_of. */
struct watcher {
        int fd;
        uint32_t events;        /* current interest */
        bool in_set;            /* in the epoll set (possibly with no interest) */
        watcher_fn cb;
        struct loop *loop;
};

struct timer {
        int64_t deadline_ns;    /* CLOCK_MONOTONIC */
        timer_fn cb;
        size_t heap_idx;        /* SIZE_MAX while not armed */
        struct loop *loop;
};

/* A call to run after the current dispatch pass: embed one per kind of
 * deferred work in the object it concerns (an intrusive list node, so that
 * deferring needs no memory and cannot fail). */
struct defer {
        defer_fn cb;
        struct defer *prev, *next;      /* in the loop's queue while queued */
        bool queued;
        struct loop *loop;
};

#define container_of(ptr, type, member) ((type *) ((char *) (ptr) - offsetof(type, member)))

int loop_new(struct loop **ret);
void loop_free(struct loop *l);

/* Bind @w to @fd (not consumed) with no interest yet. */
void watcher_init(struct watcher *w, struct loop *l, int fd, watcher_fn cb);
/* Set the interest mask. 0 removes the fd from the epoll set, because
 * EPOLLHUP/EPOLLERR are reported even for an empty mask: a paused source
 * that hung up would otherwise wake the loop forever. */
int watcher_set(struct watcher *w, uint32_t events);
/* Like watcher_set(), but the fd stays in the epoll set even with an
 * empty mask, so that EPOLLHUP/EPOLLERR are still reported (a paused
 * connection must notice its peer leaving). The callback must then stop
 * the watcher or drop it to watcher_set(w, 0) on a hang-up: it is level
 * triggered. Returns 0 or -errno. */
int watcher_set_keep(struct watcher *w, uint32_t events);
/* Remove from the epoll set and forget the fd (call before close()).
 * Idempotent; events already fetched for it in this pass are dropped. */
void watcher_stop(struct watcher *w);

void timer_init(struct timer *t, struct loop *l, timer_fn cb);
int timer_arm(struct timer *t, int64_t deadline_ns);
int timer_arm_in_ms(struct timer *t, int64_t ms);
void timer_disarm(struct timer *t);
static inline bool timer_armed(const struct timer *t) { return t->heap_idx != (size_t) -1; }

/* Bind @d to @l and @cb, not queued. */
void defer_init(struct defer *d, struct loop *l, defer_fn cb);
/* Run d->cb(d) after the current dispatch pass (in the order queued; a
 * call queued by a deferred call runs in the same drain). Queueing an
 * already queued @d does nothing: the one run serves both. Cannot fail. */
void loop_defer(struct defer *d);
/* Unqueue @d if queued (call before freeing its owner). Idempotent. */
void defer_cancel(struct defer *d);
static inline bool defer_queued(const struct defer *d) { return d->queued; }

/* Called after every pass (after deferred calls): init mode reaps orphans
 * there. */
void loop_set_post_pass(struct loop *l, void (*fn)(void *userdata), void *userdata);

/* Dispatch until loop_quit() (which only ends the current run). Returns 0
 * or a negative errno from epoll. */
int loop_run(struct loop *l);
void loop_quit(struct loop *l);
