/* One default agent shared by a cmocka group of tests: the fixture that
 * test-ext-agent, test-proc and test-fwd would otherwise each spell out.
 * Include after <cmocka.h> and agent-harness.h, with BOUND_MS defined
 * (the hang catcher for one exchange). */
#pragma once

#include <signal.h>
#include <sys/stat.h>

static struct agent *A;

/* A default agent with the usual umask (WriteFile modes must not follow
 * it); SIGPIPE ignored, as in every host. */
static inline int group_setup(void **state) {
        (void) state;
        signal(SIGPIPE, SIG_IGN);
        umask(022);
        A = agent_start(NULL, 0);
        return A ? 0 : -1;
}

static inline int group_teardown(void **state) {
        (void) state;
        int r = agent_stop(A, BOUND_MS, NULL);
        A = NULL;
        return r;
}

/* A connection to the exec port, reads and writes bounded; fails the test
 * if the agent does not answer. */
static inline vsock_conn *dial(void) {
        vsock_conn *c = NULL;
        assert_int_equal(agent_dial(A, BOUND_MS, &c), 0);
        return c;
}

static inline struct vsock_call bounded_call(void) {
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_deadline_in(BOUND_MS);
        return call;
}
