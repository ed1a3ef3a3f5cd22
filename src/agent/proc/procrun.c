#include "agent/proc/procrun.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/exec/child.h"
#include "agent/exec/launch.h"
#include "agent/exec/oomkill.h"
#include "agent/proc/procs.h"
#include "agent/exec/pty.h"
#include "agent/exec/spawn.h"
#include "agent/serve/worker.h"
#include "common/buf.h"
#include "common/io.h"
#include "common/log.h"
#include "common/macro.h"
#include "lib/ext_msg.h"

/* After the linger, at most this much is still taken per source. */
#define FINAL_DRAIN_MAX (1u * 1024 * 1024)

const char *procrun_memory_events;

struct run_src {
        struct watcher w;
        struct proc_run *r;
        uint8_t stream;
        bool open;
};

/* A job of the run: the start (on the starter pool) or the OOM check (on
 * the file pool). Owned by the run while it waits; once the run is gone
 * (agent exit), by itself. */
struct run_job {
        struct worker_job job;
        struct proc_run *r;             /* NULL once the run is gone */
        struct agent *a;
        struct ext_proc_start req;
        struct launch_config cfg;
        struct spawn_cancel cancel;
        int rc;
        struct launch_result res;
        int oom_rc;                     /* reading the counter */
        uint64_t oom_count;
};

struct proc_run {
        struct agent *a;
        struct proc *p;
        struct run_job *start, *oom;    /* while they run */
        struct child *child;
        struct run_src out[2];
        struct watcher in_w;            /* stdin, EPOLLOUT after EAGAIN */
        bool in_open;
        bool in_eof_wanted;
        struct buf in_q;
        int master;
        struct timer linger;
        bool reaped, done;
        int exit_code, signo;
        int oom_before_rc;
        uint64_t oom_before;
};

static void run_check_done(struct proc_run *r);

static unsigned long long pid_of(const struct proc_run *r) { return r->child ? (unsigned long long) child_pid(r->child) : 0; }

/* ---- output --------------------------------------------------------------- */

static void src_close(struct run_src *s) {
        if (!s->open)
                return;
        s->open = false;
        int fd = s->w.fd;
        watcher_stop(&s->w);
        safe_close(fd);
}

/* One read into the ring. > 0, 0 at EOF (closed), -EAGAIN, other -errno
 * (closed). */
static ssize_t src_read_once(struct run_src *s) {
        static uint8_t chunk[AGENT_READ_CHUNK];
        ssize_t n = io_read_once(s->w.fd, chunk, sizeof chunk);
        /* A pty master reports EIO once every slave fd is closed. */
        if (n == -EIO)
                n = 0;
        if (n > 0 && proc_output(s->r->p, s->stream, chunk, (size_t) n) < 0)
                log_warn("process %llu: out of memory for its output: dropped", pid_of(s->r));
        if (n == 0 || (n < 0 && n != -EAGAIN))
                src_close(s);
        return n;
}

static void on_src(struct watcher *w, uint32_t revents) {
        struct run_src *s = container_of(w, struct run_src, w);
        (void) src_read_once(s);
        if (!s->open)
                run_check_done(s->r);
}

static void src_init(struct proc_run *r, struct run_src *s, uint8_t stream, int fd) {
        s->r = r;
        s->stream = stream;
        watcher_init(&s->w, r->a->loop, fd, on_src);
        s->open = fd >= 0;
        if (s->open && watcher_set(&s->w, EPOLLIN) < 0)
                src_close(s);
}

static void on_linger(struct timer *t) {
        struct proc_run *r = container_of(t, struct proc_run, linger);
        for (int i = 0; i < 2; i++) {
                size_t got = 0;
                while (r->out[i].open && got < FINAL_DRAIN_MAX) {
                        ssize_t n = src_read_once(&r->out[i]);
                        if (n <= 0)
                                break;
                        got += (size_t) n;
                }
                src_close(&r->out[i]);
        }
        run_check_done(r);
}

/* ---- stdin ------------------------------------------------------------------ */

static void in_close(struct proc_run *r) {
        if (r->in_open) {
                r->in_open = false;
                int fd = r->in_w.fd;
                watcher_stop(&r->in_w);
                safe_close(fd);
        }
        buf_wipe_free(&r->in_q);
        proc_set_stdin_open(r->p, false);
}

static void in_flush(struct proc_run *r) {
        bool was_full = procrun_stdin_full(r);
        while (r->in_open && !buf_empty(&r->in_q)) {
                struct iovec iov = { .iov_base = buf_head(&r->in_q), .iov_len = buf_size(&r->in_q) };
                ssize_t n = io_writev_once(r->in_w.fd, &iov, 1);
                if (n == -EAGAIN) {
                        if (watcher_set(&r->in_w, EPOLLOUT) < 0)
                                in_close(r);
                        return;
                }
                if (n < 0) {
                        log_debug("process %llu: stdin: %s", pid_of(r), strerror((int) -n));
                        in_close(r);
                        break;
                }
                (void) buf_consume(&r->in_q, (size_t) n);
        }
        if (r->in_open) {
                (void) watcher_set(&r->in_w, 0);
                if (r->in_eof_wanted)
                        in_close(r);
        }
        if (was_full && !procrun_stdin_full(r))
                proc_notify(r->p); /* attached writers may go on */
}

static void on_in(struct watcher *w, uint32_t revents) {
        in_flush(container_of(w, struct proc_run, in_w));
}

bool procrun_stdin_full(const struct proc_run *r) { return buf_size(&r->in_q) >= AGENT_QUEUE_HIGH; }

int procrun_stdin_write(struct proc_run *r, const void *data, size_t n, bool whole) {
        bool starting = r->start != NULL;
        if ((!r->in_open && !starting) || r->in_eof_wanted)
                return -EPIPE;
        if (!whole && buf_size(&r->in_q) + n > AGENT_QUEUE_HIGH)
                return -EAGAIN;
        int rc = buf_append(&r->in_q, data, n);
        if (rc < 0)
                return rc;
        if (r->in_open && r->in_w.events == 0)
                in_flush(r);
        return 0;
}

int procrun_stdin_close(struct proc_run *r) {
        if (proc_tty(r->p))
                return -EINVAL;
        if ((!r->in_open && !r->start) || r->in_eof_wanted)
                return -EPIPE;
        r->in_eof_wanted = true;
        if (r->in_open && buf_empty(&r->in_q))
                in_close(r);
        return 0;
}

/* ---- control ---------------------------------------------------------------- */

int procrun_signal(struct proc_run *r, int signo) {
        if (r->start)
                return -EAGAIN;
        if (!r->child || r->reaped)
                return -ESRCH;
        if (r->master >= 0)
                return child_signal_pgrp(r->child, pty_foreground(r->master), signo);
        return child_signal_group(r->child, signo);
}

int procrun_resize(struct proc_run *r, uint16_t rows, uint16_t cols) {
        if (!proc_tty(r->p))
                return -EINVAL;
        if (r->start)
                return -EAGAIN;
        if (r->master < 0 || r->reaped)
                return -ESRCH;
        return pty_resize(r->master, rows, cols);
}

/* ---- the end ------------------------------------------------------------------ */

static void job_free(struct run_job *j) {
        ext_proc_start_clear(&j->req);
        launch_result_clear(&j->res);
        spawn_cancel_destroy(&j->cancel);
        free(j);
}

static void finish(struct proc_run *r, int oom) {
        log_debug("process %llu: done, exit code %d", pid_of(r), r->exit_code);
        proc_exited(r->p, r->exit_code, r->signo, oom);
}

/* File pool: the counter after a SIGKILL. */
static void oom_run(struct worker_job *wj) {
        struct run_job *j = container_of(wj, struct run_job, job);
        j->oom_rc = oomkill_count(procrun_memory_events, &j->oom_count);
}

static void oom_done(struct worker_job *wj) {
        struct run_job *j = container_of(wj, struct run_job, job);
        struct proc_run *r = j->r;
        if (r) {
                r->oom = NULL;
                bool known = !wj->cancelled && !wj->timed_out && j->oom_rc >= 0;
                finish(r, known ? j->oom_count > r->oom_before : -1);
        }
        job_free(j);
}

static void run_check_done(struct proc_run *r) {
        if (r->done || !r->reaped)
                return;
        if (r->out[0].open || r->out[1].open) {
                if (!timer_armed(&r->linger) && timer_arm_in_ms(&r->linger, r->a->linger_ms) < 0)
                        on_linger(&r->linger);
                return;
        }
        r->done = true;
        timer_disarm(&r->linger);
        in_close(r);
        r->master = safe_close(r->master);
        if (r->signo != SIGKILL) {
                finish(r, 0); /* the OOM killer sends SIGKILL */
                return;
        }
        struct run_job *j = calloc(1, sizeof *j);
        if (r->oom_before_rc < 0 || !j) {
                free(j);
                finish(r, -1);
                return;
        }
        *j = (struct run_job) { .job = { .run = oom_run, .done = oom_done }, .r = r, .a = r->a,
                                .res = LAUNCH_RESULT_INIT };
        spawn_cancel_init(&j->cancel);
        ext_proc_start_init(&j->req);
        if (worker_submit(r->a->worker, &j->job) < 0) {
                job_free(j);
                finish(r, -1);
                return;
        }
        r->oom = j;
}

static void on_child_exit(struct child *c, int code, void *userdata) {
        struct proc_run *r = userdata;
        r->reaped = true;
        r->exit_code = code;
        r->signo = child_exit_signal(c);
        run_check_done(r);
}

/* ---- the start ---------------------------------------------------------------- */

/* Starter pool. */
static void start_run(struct worker_job *wj) {
        struct run_job *j = container_of(wj, struct run_job, job);
        j->oom_rc = oomkill_count(procrun_memory_events, &j->oom_count);
        struct vsock_exec_request q = {
                .command = j->req.command,
                .args = j->req.args,
                .n_args = j->req.n_args,
                .working_dir = j->req.working_dir,
                .env = j->req.env,
                .n_env = j->req.n_env,
                .user = j->req.user,
                .rows = j->req.rows,
                .cols = j->req.cols,
        };
        struct launch_mode mode = { .tty = j->req.tty, .stdin_frames = j->req.stdin_pipe };
        j->rc = launch_request(&q, mode, &j->cfg, &j->cancel, &j->res);
}

/* It could not start: as exec reports it, a code and one line. */
static void start_failed(struct proc_run *r, int code, const char *reason) {
        log_info("detached process %llu: %s", (unsigned long long) proc_id(r->p), reason);
        char line[512];
        int n = snprintf(line, sizeof line, "vsock-agent: %s\n", reason);
        if (n > 0)
                (void) proc_output(r->p, OUTRING_STDERR, line, MIN((size_t) n, sizeof line - 1));
        r->done = r->reaped = true;
        r->exit_code = code;
        r->in_eof_wanted = true;
        in_close(r);
        proc_exited(r->p, code, 0, 0);
}

static void start_done(struct worker_job *wj) {
        struct run_job *j = container_of(wj, struct run_job, job);
        struct proc_run *r = j->r;
        j->a->spawns_pending--;
        if (!r) {
                /* The agent is exiting: a process that started is ended. */
                if (!wj->cancelled && j->rc >= 0)
                        child_abandon(j->a, j->res.pid, TAKE_FD(j->res.pidfd), j->a->grace_ms);
                job_free(j);
                return;
        }
        r->start = NULL;
        if (wj->cancelled || j->rc < 0) {
                char why[64];
                const char *reason;
                int code = launch_failure(&j->res, j->rc, wj->cancelled, why, sizeof why, &reason);
                start_failed(r, code, reason);
                job_free(j);
                return;
        }
        r->oom_before_rc = j->oom_rc;
        r->oom_before = j->oom_count;
        struct launch_result *res = &j->res;
        int rc = child_new(r->a, res->pid, TAKE_FD(res->pidfd), proc_tty(r->p), r->a->grace_ms, on_child_exit,
                           r, &r->child);
        if (rc < 0) {
                start_failed(r, 126, "cannot watch the process");
                job_free(j);
                return;
        }
        r->master = TAKE_FD(res->master);
        watcher_init(&r->in_w, r->a->loop, TAKE_FD(res->in_fd), on_in);
        r->in_open = r->in_w.fd >= 0;
        src_init(r, &r->out[0], OUTRING_STDOUT, TAKE_FD(res->out_fd));
        src_init(r, &r->out[1], OUTRING_STDERR, TAKE_FD(res->err_fd));
        proc_set_stdin_open(r->p, r->in_open && !r->in_eof_wanted);
        proc_set_running(r->p, res->pid);
        log_debug("detached process %llu: pid %d", (unsigned long long) proc_id(r->p), (int) res->pid);
        if (r->in_open)
                in_flush(r);
        else
                buf_wipe_free(&r->in_q);
        if (r->in_open && r->in_eof_wanted && buf_empty(&r->in_q))
                in_close(r);
        if (r->a->shutting_down)
                child_terminate(r->child);
        job_free(j);
}

static void start_timeout(struct worker_job *wj) {
        struct run_job *j = container_of(wj, struct run_job, job);
        struct proc_run *r = j->r;
        if (!r)
                return;
        spawn_cancel(&j->cancel);
        j->r = NULL;
        r->start = NULL;
        char why[160];
        launch_timeout_reason(r->a->io_timeout_ms, why, sizeof why);
        start_failed(r, 126, why);
}

extern char **environ;

int procrun_start(struct agent *a, struct proc *p, struct ext_proc_start *req) {
        struct proc_run *r = calloc(1, sizeof *r);
        struct run_job *j = calloc(1, sizeof *j);
        if (!r || !j) {
                free(r);
                free(j);
                ext_proc_start_clear(req);
                proc_output(p, OUTRING_STDERR, "vsock-agent: out of memory\n", 27);
                proc_exited(p, 126, 0, 0);
                return -ENOMEM;
        }
        r->a = a;
        r->p = p;
        r->master = -1;
        r->in_q = BUF_INIT(0);
        r->oom_before_rc = -ENOENT;
        watcher_init(&r->in_w, a->loop, -1, on_in);
        src_init(r, &r->out[0], OUTRING_STDOUT, -1);
        src_init(r, &r->out[1], OUTRING_STDERR, -1);
        timer_init(&r->linger, a->loop, on_linger);
        proc_set_run(p, r);

        *j = (struct run_job) {
                .job = { .run = start_run, .done = start_done, .timeout = start_timeout },
                .r = r,
                .a = a,
                .req = *req,
                .cfg = { .sandbox = a->sandbox, .pid_ns = a->pid_ns, .reset_signals = &a->changed_signals,
                         .base_env = environ },
                .rc = -ECANCELED,
                .res = LAUNCH_RESULT_INIT,
        };
        *req = (struct ext_proc_start) { 0 };
        spawn_cancel_init(&j->cancel);
        /* Stdin written before the start is over waits in the queue. */
        r->start = j;
        int rc = worker_submit(a->spawner, &j->job);
        if (rc < 0) {
                r->start = NULL;
                job_free(j);
                start_failed(r, 126, rc == -EBUSY ? WORKER_BUSY_TEXT : "agent out of resources: cannot start a thread");
                return 0;
        }
        a->spawns_pending++;
        return 0;
}

void procrun_free(struct proc_run *r) {
        if (!r)
                return;
        if (r->start) {
                struct run_job *j = TAKE_PTR(r->start);
                j->r = NULL;
                spawn_cancel(&j->cancel);
                if (worker_cancel(&j->job)) {
                        j->a->spawns_pending--;
                        job_free(j);
                }
        }
        if (r->oom) {
                struct run_job *j = TAKE_PTR(r->oom);
                j->r = NULL;
                if (worker_cancel(&j->job))
                        job_free(j);
        }
        child_release(r->child);
        timer_disarm(&r->linger);
        src_close(&r->out[0]);
        src_close(&r->out[1]);
        if (r->in_open) {
                int fd = r->in_w.fd;
                watcher_stop(&r->in_w);
                safe_close(fd);
        }
        buf_wipe_free(&r->in_q);
        safe_close(r->master);
        free(r);
}
