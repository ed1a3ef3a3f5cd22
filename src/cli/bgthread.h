/* A background thread that works in ticks until told to stop: cp's
 * spinner, exec's silence watchdog. It takes no signals (those belong to
 * the main thread, cancel.h). */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct bgthread {
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool stop;
        bool running;
};

/* Start @fn(@arg) on a new thread. Returns 0 or -errno (nothing runs then). */
int bgthread_start(struct bgthread *t, void *(*fn)(void *arg), void *arg);

/* From the thread: sleep up to @ns (on the monotonic clock); true once
 * bgthread_stop() has been called. */
bool bgthread_sleep(struct bgthread *t, int64_t ns);

/* Tell the thread to stop and wait for it. Does nothing if it did not
 * start; may be called twice. */
void bgthread_stop(struct bgthread *t);
