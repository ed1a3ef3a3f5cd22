#include "agent/exec/child.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent.h"
#include "common/log.h"
#include "common/macro.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

struct child {
        struct watcher w;
        struct timer kill_timer;
        struct defer free_later;        /* reaped after its owner let go */
        pid_t pid;
        int pidfd;
        bool tty_session;
        bool reaped;
        int signo;                      /* killed by this signal (0: exited) */
        bool terminating;
        bool released;
        int grace_ms;
        child_exit_fn cb;
        void *userdata;
        struct child_list *list;        /* the agent's, until reaped */
        struct child *prev, *next;
};

static int pidfd_send(int pidfd, int signo) {
        if (syscall(SYS_pidfd_send_signal, pidfd, signo, NULL, 0) < 0)
                return -errno;
        return 0;
}

static void child_unlink(struct child *c) {
        struct child_list *list = c->list;
        if (c->prev)
                c->prev->next = c->next;
        else if (list->head == c)
                list->head = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->prev = c->next = NULL;
        list->n--;
}

static void child_destroy(struct child *c) {
        defer_cancel(&c->free_later);
        timer_disarm(&c->kill_timer);
        watcher_stop(&c->w);
        c->pidfd = safe_close(c->pidfd);
        free(c);
}

static void child_deferred_free(struct defer *d) { child_destroy(container_of(d, struct child, free_later)); }

static void on_pidfd(struct watcher *w, uint32_t revents) {
        struct child *c = container_of(w, struct child, w);
        siginfo_t si = { 0 };
        if (waitid((idtype_t) P_PIDFD, (id_t) c->pidfd, &si, WEXITED | WNOHANG) < 0) {
                if (errno == EINTR || errno == EAGAIN)
                        return;
                log_error("waitid(pid %d): %m", (int) c->pid);
                /* ECHILD: someone else reaped it; treat as gone. */
                si.si_pid = c->pid;
                si.si_code = CLD_KILLED;
                si.si_status = SIGKILL;
        }
        if (si.si_pid == 0)
                return; /* not yet */
        c->reaped = true;
        watcher_stop(&c->w);
        timer_disarm(&c->kill_timer);
        child_unlink(c);
        int code = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
        c->signo = si.si_code == CLD_EXITED ? 0 : si.si_status;
        log_debug("child %d exited: %d", (int) c->pid, code);
        if (c->released) {
                loop_defer(&c->free_later);
                return;
        }
        if (c->cb)
                c->cb(c, code, c->userdata);
}

static void on_kill_timer(struct timer *t) {
        struct child *c = container_of(t, struct child, kill_timer);
        if (c->reaped)
                return;
        log_warn("child %d did not exit within %d ms of SIGTERM: SIGKILL", (int) c->pid, c->grace_ms);
        (void) kill(-c->pid, SIGKILL);
        (void) pidfd_send(c->pidfd, SIGKILL);
}

int child_new(struct agent *a, pid_t pid, int pidfd, bool tty_session, int grace_ms, child_exit_fn cb,
              void *userdata, struct child **ret) {
        struct child_list *list = &a->children;
        struct child *c = calloc(1, sizeof *c);
        if (!c) {
                safe_close(pidfd);
                return -ENOMEM;
        }
        c->pid = pid;
        c->pidfd = pidfd;
        c->tty_session = tty_session;
        c->grace_ms = grace_ms;
        c->cb = cb;
        c->userdata = userdata;
        watcher_init(&c->w, a->loop, pidfd, on_pidfd);
        timer_init(&c->kill_timer, a->loop, on_kill_timer);
        defer_init(&c->free_later, a->loop, child_deferred_free);
        c->list = list;
        c->next = list->head;
        if (list->head)
                list->head->prev = c;
        list->head = c;
        list->n++;
        int r = watcher_set(&c->w, EPOLLIN);
        if (r < 0) {
                /* Without a watch we could never reap it: kill it now. */
                (void) kill(-pid, SIGKILL);
                (void) pidfd_send(pidfd, SIGKILL);
                (void) waitid((idtype_t) P_PIDFD, (id_t) pidfd, &(siginfo_t) { 0 }, WEXITED);
                child_unlink(c);
                child_destroy(c);
                return r;
        }
        *ret = c;
        return 0;
}

pid_t child_pid(const struct child *c) { return c->pid; }
bool child_reaped(const struct child *c) { return c->reaped; }
int child_exit_signal(const struct child *c) { return c->signo; }

int child_signal_group(struct child *c, int signo) {
        if (c->reaped)
                return -ESRCH;
        if (kill(-c->pid, signo) < 0) {
                /* The group may be gone while the leader is a zombie. */
                return pidfd_send(c->pidfd, signo);
        }
        return 0;
}

int child_signal_pgrp(struct child *c, pid_t pgrp, int signo) {
        if (c->reaped)
                return -ESRCH;
        if (pgrp <= 0 || pgrp == c->pid)
                return child_signal_group(c, signo);
        /* The session leader is alive, so @pgrp (read from its terminal) is
         * one of its session's groups and was not recycled. */
        if (kill(-pgrp, signo) < 0)
                return -errno;
        return 0;
}

void child_terminate(struct child *c) {
        if (!c || c->reaped || c->terminating)
                return;
        c->terminating = true;
        log_debug("terminating child %d", (int) c->pid);
        if (c->tty_session)
                (void) child_signal_group(c, SIGHUP);
        (void) child_signal_group(c, SIGTERM);
        /* A stopped group would never act on SIGTERM. */
        (void) child_signal_group(c, SIGCONT);
        if (timer_arm_in_ms(&c->kill_timer, c->grace_ms) < 0)
                on_kill_timer(&c->kill_timer);
}

void child_release(struct child *c) {
        if (!c)
                return;
        c->cb = NULL;
        c->userdata = NULL;
        if (c->reaped) {
                child_destroy(c);
                return;
        }
        c->released = true;
        child_terminate(c);
}

void child_abandon(struct agent *a, pid_t pid, int pidfd, int grace_ms) {
        struct child *c;
        if (child_new(a, pid, pidfd, false, grace_ms, NULL, NULL, &c) >= 0)
                child_release(c); /* terminated; freed once reaped */
}

void child_terminate_all(struct agent *a) {
        for (struct child *c = a->children.head; c; c = c->next)
                child_terminate(c);
}

size_t child_count(const struct agent *a) { return a->children.n; }

bool agent_owns_pid(const struct agent *a, pid_t pid) {
        for (const struct child *c = a->children.head; c; c = c->next)
                if (c->pid == pid)
                        return true;
        return false;
}
