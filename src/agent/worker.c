#include "agent/worker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"

struct worker {
        struct watcher w;
        int efd;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        pthread_t thread;
        bool started, stop;
        struct worker_job *todo, **todo_tail;
        struct worker_job *done, **done_tail;
};

static void *worker_main(void *p) {
        struct worker *w = p;
        pthread_mutex_lock(&w->lock);
        for (;;) {
                while (!w->todo && !w->stop)
                        pthread_cond_wait(&w->cond, &w->lock);
                if (w->stop)
                        break;
                struct worker_job *j = w->todo;
                w->todo = j->next;
                if (!w->todo)
                        w->todo_tail = &w->todo;
                pthread_mutex_unlock(&w->lock);

                j->run(j);

                pthread_mutex_lock(&w->lock);
                j->next = NULL;
                *w->done_tail = j;
                w->done_tail = &j->next;
                uint64_t one = 1;
                (void) !write(w->efd, &one, sizeof one);
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
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
                j->done(j);
        }
}

int worker_new(struct loop *l, struct worker **ret) {
        struct worker *w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->efd < 0) {
                int r = -errno;
                free(w);
                return r;
        }
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
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

void worker_free(struct worker *w) {
        if (!w)
                return;
        watcher_stop(&w->w);
        if (w->started) {
                pthread_mutex_lock(&w->lock);
                w->stop = true;
                pthread_cond_signal(&w->cond);
                pthread_mutex_unlock(&w->lock);
                /* A job stuck in a blocking call must not hold up exit:
                 * then the thread is left behind, and so is @w. */
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 1;
                if (pthread_timedjoin_np(w->thread, NULL, &ts) != 0) {
                        (void) pthread_detach(w->thread);
                        return;
                }
        }
        /* Give owners their jobs back so they can free them. */
        for (struct worker_job **list = &w->done;; list = &w->todo) {
                while (*list) {
                        struct worker_job *j = *list;
                        *list = j->next;
                        j->cancelled = list == &w->todo;
                        j->done(j);
                }
                if (list == &w->todo)
                        break;
        }
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        safe_close(w->efd);
        free(w);
}

int worker_submit(struct worker *w, struct worker_job *j) {
        if (!w->started) {
                /* The thread never needs signals: the loop owns them. */
                pthread_attr_t attr;
                pthread_attr_init(&attr);
                pthread_attr_setstacksize(&attr, 256 * 1024);
                sigset_t all, old;
                sigfillset(&all);
                pthread_sigmask(SIG_SETMASK, &all, &old);
                int r = pthread_create(&w->thread, &attr, worker_main, w);
                pthread_sigmask(SIG_SETMASK, &old, NULL);
                pthread_attr_destroy(&attr);
                if (r != 0)
                        return -r;
                w->started = true;
        }
        pthread_mutex_lock(&w->lock);
        j->next = NULL;
        *w->todo_tail = j;
        w->todo_tail = &j->next;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
        return 0;
}
