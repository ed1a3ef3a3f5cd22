/* Background threads with a stop signal (bgthread.h). */
#include "bgthread.h"

#include <errno.h>
#include <signal.h>
#include <time.h>

int bgthread_start(struct bgthread *t, void *(*fn)(void *arg), void *arg) {
        *t = (struct bgthread) { .stop = false };
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&t->cond, &ca);
        pthread_condattr_destroy(&ca);
        pthread_mutex_init(&t->lock, NULL);
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        int r = pthread_create(&t->thread, NULL, fn, arg);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r != 0) {
                pthread_cond_destroy(&t->cond);
                pthread_mutex_destroy(&t->lock);
                return -r;
        }
        t->running = true;
        return 0;
}

bool bgthread_sleep(struct bgthread *t, int64_t ns) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        int64_t nsec = until.tv_nsec + ns % 1000000000;
        until.tv_sec += (time_t) (ns / 1000000000 + nsec / 1000000000);
        until.tv_nsec = (long) (nsec % 1000000000);
        pthread_mutex_lock(&t->lock);
        while (!t->stop && pthread_cond_timedwait(&t->cond, &t->lock, &until) != ETIMEDOUT)
                ;
        bool stop = t->stop;
        pthread_mutex_unlock(&t->lock);
        return stop;
}

void bgthread_stop(struct bgthread *t) {
        if (!t->running)
                return;
        pthread_mutex_lock(&t->lock);
        t->stop = true;
        pthread_cond_signal(&t->cond);
        pthread_mutex_unlock(&t->lock);
        pthread_join(t->thread, NULL);
        pthread_cond_destroy(&t->cond);
        pthread_mutex_destroy(&t->lock);
        t->running = false;
}
