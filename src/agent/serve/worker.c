#include "agent/serve/worker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"

/* An idle thread ends after this long without work. */
#define IDLE_EXIT_MS 10000
#define THREAD_STACK (256u * 1024)

enum job_state { JOB_QUEUED = 1, JOB_LANE_WAIT, JOB_RUNNING, JOB_FINISHED };

struct worker {
        struct watcher w;
        int efd;
        struct worker_limits limits;
        pthread_mutex_t lock;
        pthread_cond_t cond;            /* work or stop, for idle threads */
        pthread_cond_t gone;            /* a thread ended (worker_free) */
        unsigned n_threads, n_idle, n_stuck, n_queued;
        bool stop;
        struct worker_job *todo, **todo_tail;
        struct worker_job *done, **done_tail;
};

static void list_push(struct worker_job ***tail, struct worker_job *j) {
        j->next = NULL;
        **tail = j;
        *tail = &j->next;
}

/* Unlink @j from the list at @head; returns whether it was there. */
static bool list_remove(struct worker_job **head, struct worker_job ***tail, struct worker_job *j) {
        for (struct worker_job **p = head; *p; p = &(*p)->next)
                if (*p == j) {
                        *p = j->next;
                        if (!*p)
                                *tail = p;
                        j->next = NULL;
                        return true;
                }
        return false;
}

/* ---- threads ---------------------------------------------------------------- */

static void *thread_main(void *p);
static void lane_advance_locked(struct worker *w, struct worker_lane *lane);

/* Lock held. Threads that can take a job: neither stuck nor over the cap. */
static bool may_add_thread(const struct worker *w) {
        return w->n_threads - w->n_stuck < w->limits.max_running && w->n_threads < w->limits.max_threads;
}

/* Lock held. Wake an idle thread for waiting work, or start one. */
static int kick_locked(struct worker *w) {
        if (!w->todo || w->stop)
                return 0;
        if (w->n_idle > 0) {
                pthread_cond_signal(&w->cond);
                return 0;
        }
        if (!may_add_thread(w))
                return 0; /* waits for a running job to finish */
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, THREAD_STACK);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        /* The threads never take signals: the loop owns them. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_t t;
        int r = pthread_create(&t, &attr, thread_main, w);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
        if (r != 0)
                return -r;
        w->n_threads++;
        return 0;
}

/* Lock held: the lane's job left the queue (ran, or was taken back):
 * queue its next one, or free the lane. */
static void lane_advance_locked(struct worker *w, struct worker_lane *lane) {
        struct worker_job *next = lane->head;
        if (!next) {
                lane->busy = false;
                return;
        }
        lane->head = next->next;
        if (!lane->head)
                lane->tail = &lane->head;
        next->state = JOB_QUEUED;
        list_push(&w->todo_tail, next);
        w->n_queued++;
        (void) kick_locked(w);
}

/* Lock held: @j ran; hand it to the loop. */
static void finish_locked(struct worker *w, struct worker_job *j) {
        j->state = JOB_FINISHED;
        list_push(&w->done_tail, j);
        if (j->lane)
                lane_advance_locked(w, j->lane);
        uint64_t one = 1;
        (void) !write(w->efd, &one, sizeof one);
}

static void *thread_main(void *p) {
        struct worker *w = p;
        pthread_mutex_lock(&w->lock);
        for (;;) {
                bool timed_out = false;
                while (!w->stop && !w->todo && !timed_out) {
                        struct timespec ts;
                        clock_gettime(CLOCK_REALTIME, &ts);
                        ts.tv_sec += IDLE_EXIT_MS / 1000;
                        w->n_idle++;
                        timed_out = pthread_cond_timedwait(&w->cond, &w->lock, &ts) == ETIMEDOUT;
                        w->n_idle--;
                }
                if (w->stop || !w->todo)
                        break; /* stopping, or idle too long */
                struct worker_job *j = w->todo;
                w->todo = j->next;
                if (!w->todo)
                        w->todo_tail = &w->todo;
                w->n_queued--;
                j->state = JOB_RUNNING;
                /* More waiting work and nobody idle: another thread. */
                (void) kick_locked(w);
                pthread_mutex_unlock(&w->lock);

                j->run(j);

                pthread_mutex_lock(&w->lock);
                bool was_stuck = j->stuck;
                finish_locked(w, j);
                if (was_stuck) {
                        w->n_stuck--;
                        /* Back from the kernel: a replacement may have
                         * taken this thread's place meanwhile. */
                        if (w->n_threads - w->n_stuck > w->limits.max_running)
                                break;
                }
                (void) kick_locked(w);
        }
        w->n_threads--;
        pthread_cond_broadcast(&w->gone);
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

/* ---- the loop side ---------------------------------------------------------- */

static void on_timeout(struct timer *t) {
        struct worker_job *j = container_of(t, struct worker_job, timer);
        struct worker *w = j->pool;
        bool never_ran = false;
        pthread_mutex_lock(&w->lock);
        int state = j->state;
        switch (state) {
        case JOB_QUEUED:
                never_ran = list_remove(&w->todo, &w->todo_tail, j);
                w->n_queued -= never_ran;
                if (never_ran && j->lane)
                        lane_advance_locked(w, j->lane);
                break;
        case JOB_LANE_WAIT:
                never_ran = list_remove(&j->lane->head, &j->lane->tail, j);
                break;
        case JOB_RUNNING:
                /* Its thread is stuck: it no longer counts, a fresh one
                 * may take the waiting work. */
                j->stuck = true;
                w->n_stuck++;
                (void) kick_locked(w);
                break;
        default:
                break; /* finished: done() is on its way */
        }
        pthread_mutex_unlock(&w->lock);
        if (state != JOB_QUEUED && state != JOB_LANE_WAIT && state != JOB_RUNNING)
                return;
        log_warn("worker: a job %s for %d ms: given up", never_ran ? "waited" : "ran", w->limits.timeout_ms);
        j->timed_out = true;
        if (j->timeout)
                j->timeout(j);
        if (never_ran) {
                j->cancelled = true;
                j->state = 0;
                j->done(j);
        }
}

static void on_eventfd(struct watcher *wt, uint32_t revents) {
        struct worker *w = container_of(wt, struct worker, w);
        uint64_t v;
        (void) !read(w->efd, &v, sizeof v);
        pthread_mutex_lock(&w->lock);
        struct worker_job *list = w->done;
        w->done = NULL;
        w->done_tail = &w->done;
        pthread_mutex_unlock(&w->lock);
        while (list) {
                struct worker_job *j = list;
                list = j->next;
                timer_disarm(&j->timer);
                j->state = 0;
                j->done(j);
        }
}

int worker_new(struct loop *l, const struct worker_limits *limits, struct worker **ret) {
        if (limits->max_running == 0 || limits->max_threads < limits->max_running)
                return -EINVAL;
        struct worker *w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->limits = *limits;
        w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->efd < 0) {
                int r = -errno;
                free(w);
                return r;
        }
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        pthread_cond_init(&w->gone, NULL);
        w->todo_tail = &w->todo;
        w->done_tail = &w->done;
        watcher_init(&w->w, l, w->efd, on_eventfd);
        int r = watcher_set(&w->w, EPOLLIN);
        if (r < 0) {
                safe_close(w->efd);
                free(w);
                return r;
        }
        *ret = w;
        return 0;
}

unsigned worker_free(struct worker *w) {
        if (!w)
                return 0;
        watcher_stop(&w->w);
        pthread_mutex_lock(&w->lock);
        w->stop = true;
        pthread_cond_broadcast(&w->cond);
        /* A job stuck in a blocking call must not hold up exit: then its
         * thread is left behind, and so is @w. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        while (w->n_threads > 0)
                if (pthread_cond_timedwait(&w->gone, &w->lock, &ts) == ETIMEDOUT)
                        break;
        bool abandoned = w->n_threads > 0;
        struct worker_job *todo = w->todo, *done = w->done;
        w->todo = w->done = NULL;
        w->todo_tail = &w->todo;
        w->done_tail = &w->done;
        pthread_mutex_unlock(&w->lock);

        /* Jobs waiting behind a lane go back too: gather them before any
         * done() may free the lane's owner. */
        struct worker_job *waiting = NULL, **waiting_tail = &waiting;
        for (int pass = 0; pass < 2; pass++)
                for (struct worker_job *j = pass ? todo : done; j; j = j->next)
                        if (j->lane && j->lane->head) {
                                *waiting_tail = j->lane->head;
                                waiting_tail = j->lane->tail;
                                j->lane->head = NULL;
                                j->lane->tail = &j->lane->head;
                        }

        /* Give owners their jobs back so they can free them. */
        for (int pass = 0; pass < 3; pass++)
                for (struct worker_job *j = pass == 0 ? done : pass == 1 ? todo : waiting, *next; j; j = next) {
                        next = j->next;
                        timer_disarm(&j->timer);
                        j->cancelled = pass > 0;
                        j->state = 0;
                        j->done(j);
                }
        if (abandoned) {
                unsigned n = w->n_threads;
                log_warn("worker: %u threads still blocked at exit, left behind", n);
                return n;
        }
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        pthread_cond_destroy(&w->gone);
        safe_close(w->efd);
        free(w);
        return 0;
}

int worker_submit(struct worker *w, struct worker_job *j) {
        j->pool = w;
        j->cancelled = j->timed_out = j->stuck = false;
        j->next = NULL;
        timer_init(&j->timer, w->w.loop, on_timeout);
        int r = 0;
        pthread_mutex_lock(&w->lock);
        struct worker_lane *lane = j->lane;
        if (lane && !lane->tail)
                lane->tail = &lane->head;
        if (lane && lane->busy) {
                j->state = JOB_LANE_WAIT;
                list_push(&lane->tail, j);
        } else if (w->n_threads >= w->limits.max_threads && w->n_stuck >= w->n_threads) {
                /* Every thread there may be is stuck in the kernel: say so
                 * now rather than at the timeout. */
                r = -EBUSY;
        } else {
                j->state = JOB_QUEUED;
                list_push(&w->todo_tail, j);
                w->n_queued++;
                r = kick_locked(w);
                if (r < 0 && w->n_threads == 0) {
                        /* Nobody will ever take it. */
                        (void) list_remove(&w->todo, &w->todo_tail, j);
                        w->n_queued--;
                        j->state = 0;
                } else {
                        r = 0;
                        if (lane)
                                lane->busy = true;
                }
        }
        pthread_mutex_unlock(&w->lock);
        if (r < 0)
                return r;
        if (w->limits.timeout_ms > 0 && timer_arm_in_ms(&j->timer, w->limits.timeout_ms) < 0)
                log_warn("worker: cannot arm a job's timeout");
        return 0;
}

bool worker_cancel(struct worker_job *j) {
        struct worker *w = j->pool;
        if (!w)
                return false;
        bool taken = false;
        pthread_mutex_lock(&w->lock);
        if (j->state == JOB_QUEUED) {
                taken = list_remove(&w->todo, &w->todo_tail, j);
                w->n_queued -= taken;
                if (taken && j->lane)
                        lane_advance_locked(w, j->lane);
        } else if (j->state == JOB_LANE_WAIT)
                taken = list_remove(&j->lane->head, &j->lane->tail, j);
        if (taken)
                j->state = 0;
        pthread_mutex_unlock(&w->lock);
        if (taken)
                timer_disarm(&j->timer);
        return taken;
}

void worker_stats(struct worker *w, struct worker_stats *ret) {
        pthread_mutex_lock(&w->lock);
        *ret = (struct worker_stats) { w->n_threads, w->n_idle, w->n_stuck, w->n_queued };
        pthread_mutex_unlock(&w->lock);
}
