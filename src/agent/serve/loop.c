#include "agent/serve/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "common/io.h"
#include "common/macro.h"

#define MAX_EVENTS 64

struct loop {
        int epfd;
        bool quit;
        struct timer **heap;
        size_t n_heap, cap_heap;
        struct defer *defer_head, *defer_tail;     /* FIFO of queued calls */
        void (*post_pass)(void *userdata);
        void *post_pass_userdata;
        /* The batch being dispatched, so watcher_stop() can drop events
         * that were already fetched for a stopped watcher. */
        struct epoll_event *batch;
        int n_batch;
};

int loop_new(struct loop **ret) {
        struct loop *l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (l->epfd < 0) {
                int r = -errno;
                free(l);
                return r;
        }
        *ret = l;
        return 0;
}

void loop_free(struct loop *l) {
        if (!l)
                return;
        safe_close(l->epfd);
        free(l->heap);
        free(l);
}

void watcher_init(struct watcher *w, struct loop *l, int fd, watcher_fn cb) {
        *w = (struct watcher) { .fd = fd, .cb = cb, .loop = l };
}

static void drop_fetched(struct watcher *w) {
        for (int i = 0; i < w->loop->n_batch; i++)
                if (w->loop->batch[i].data.ptr == w)
                        w->loop->batch[i].data.ptr = NULL;
}

int watcher_set_keep(struct watcher *w, uint32_t events) {
        if (!w->loop || w->fd < 0 || (w->in_set && events == w->events))
                return 0;
        struct epoll_event ev = { .events = events, .data.ptr = w };
        if (epoll_ctl(w->loop->epfd, w->in_set ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, w->fd, &ev) < 0)
                return -errno;
        w->in_set = true;
        w->events = events;
        return 0;
}

int watcher_set(struct watcher *w, uint32_t events) {
        if (!w->loop || w->fd < 0)
                return 0;
        if (events == 0) {
                if (w->in_set)
                        (void) epoll_ctl(w->loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
                w->in_set = false;
                w->events = 0;
                /* The owner asked for silence: drop events already fetched. */
                drop_fetched(w);
                return 0;
        }
        return watcher_set_keep(w, events);
}

void watcher_stop(struct watcher *w) {
        if (!w->loop)
                return;
        (void) watcher_set(w, 0);
        w->fd = -1;
}

/* ---- timers: binary min-heap on deadline ---- */

static void heap_swap(struct loop *l, size_t a, size_t b) {
        struct timer *t = l->heap[a];
        l->heap[a] = l->heap[b];
        l->heap[b] = t;
        l->heap[a]->heap_idx = a;
        l->heap[b]->heap_idx = b;
}

static void heap_up(struct loop *l, size_t i) {
        while (i > 0) {
                size_t p = (i - 1) / 2;
                if (l->heap[p]->deadline_ns <= l->heap[i]->deadline_ns)
                        break;
                heap_swap(l, p, i);
                i = p;
        }
}

static void heap_down(struct loop *l, size_t i) {
        for (;;) {
                size_t a = 2 * i + 1, b = a + 1, m = i;
                if (a < l->n_heap && l->heap[a]->deadline_ns < l->heap[m]->deadline_ns)
                        m = a;
                if (b < l->n_heap && l->heap[b]->deadline_ns < l->heap[m]->deadline_ns)
                        m = b;
                if (m == i)
                        return;
                heap_swap(l, i, m);
                i = m;
        }
}

void timer_init(struct timer *t, struct loop *l, timer_fn cb) {
        *t = (struct timer) { .cb = cb, .heap_idx = (size_t) -1, .loop = l };
}

void timer_disarm(struct timer *t) {
        struct loop *l = t->loop;
        if (!l || !timer_armed(t))
                return;
        size_t i = t->heap_idx;
        t->heap_idx = (size_t) -1;
        l->n_heap--;
        if (i == l->n_heap)
                return;
        l->heap[i] = l->heap[l->n_heap];
        l->heap[i]->heap_idx = i;
        heap_up(l, i);
        heap_down(l, l->heap[i]->heap_idx);
}

int timer_arm(struct timer *t, int64_t deadline_ns) {
        struct loop *l = t->loop;
        timer_disarm(t);
        if (l->n_heap == l->cap_heap) {
                size_t ncap = l->cap_heap ? l->cap_heap * 2 : 64;
                struct timer **n = realloc(l->heap, ncap * sizeof *n);
                if (!n)
                        return -ENOMEM;
                l->heap = n;
                l->cap_heap = ncap;
        }
        t->deadline_ns = deadline_ns;
        t->heap_idx = l->n_heap;
        l->heap[l->n_heap++] = t;
        heap_up(l, t->heap_idx);
        return 0;
}

int timer_arm_in_ms(struct timer *t, int64_t ms) { return timer_arm(t, now_ns() + ms * 1000000); }

void defer_init(struct defer *d, struct loop *l, defer_fn cb) {
        *d = (struct defer) { .cb = cb, .loop = l };
}

void loop_defer(struct defer *d) {
        struct loop *l = d->loop;
        if (d->queued)
                return;
        d->queued = true;
        d->next = NULL;
        d->prev = l->defer_tail;
        if (l->defer_tail)
                l->defer_tail->next = d;
        else
                l->defer_head = d;
        l->defer_tail = d;
}

void defer_cancel(struct defer *d) {
        struct loop *l = d->loop;
        if (!d->queued)
                return;
        if (d->prev)
                d->prev->next = d->next;
        else
                l->defer_head = d->next;
        if (d->next)
                d->next->prev = d->prev;
        else
                l->defer_tail = d->prev;
        d->prev = d->next = NULL;
        d->queued = false;
}

void loop_set_post_pass(struct loop *l, void (*fn)(void *userdata), void *userdata) {
        l->post_pass = fn;
        l->post_pass_userdata = userdata;
}

void loop_quit(struct loop *l) { l->quit = true; }

static int next_timeout_ms(struct loop *l) {
        if (l->defer_head)
                return 0;
        if (l->n_heap == 0)
                return -1;
        int64_t d = l->heap[0]->deadline_ns - now_ns();
        if (d <= 0)
                return 0;
        /* Round up: waking early would just spin until the deadline. */
        int64_t ms = (d + 999999) / 1000000;
        return ms > 86400000 ? 86400000 : (int) ms;
}

static void run_timers(struct loop *l) {
        int64_t now = now_ns();
        /* Only timers due now; ones re-armed by callbacks wait for the next
         * pass, so a zero-delay timer cannot starve the loop. */
        while (l->n_heap > 0 && l->heap[0]->deadline_ns <= now) {
                struct timer *t = l->heap[0];
                timer_disarm(t);
                t->cb(t);
        }
}

static void run_deferred(struct loop *l) {
        /* Deferred calls may defer more (themselves included: a call is
         * unqueued before it runs); those run in this same drain. */
        struct defer *d;
        while ((d = l->defer_head)) {
                defer_cancel(d);
                d->cb(d);
        }
}

int loop_run(struct loop *l) {
        struct epoll_event evs[MAX_EVENTS];
        l->quit = false;
        while (!l->quit) {
                int n = epoll_wait(l->epfd, evs, MAX_EVENTS, next_timeout_ms(l));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                l->batch = evs;
                l->n_batch = n;
                for (int i = 0; i < n; i++) {
                        struct watcher *w = evs[i].data.ptr;
                        if (!w || w->fd < 0 || !w->in_set)
                                continue;
                        /* Interest may have shrunk earlier in this pass. */
                        uint32_t re = evs[i].events & (w->events | EPOLLHUP | EPOLLERR);
                        if (re)
                                w->cb(w, re);
                }
                l->batch = NULL;
                l->n_batch = 0;
                run_timers(l);
                run_deferred(l);
                if (l->post_pass)
                        l->post_pass(l->post_pass_userdata);
        }
        return 0;
}
