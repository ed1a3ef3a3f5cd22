/* The exec operations (Exec, ExecStream, ExecPipe, ExecTTY): one state
 * machine, with the differences between the modes in a table.
 *
 * An exec is done when its process was reaped AND its output sources are
 * closed: at EOF, or after a short linger once the process exited (a
 * background descendant may hold the pipes open forever). Then the result
 * is queued and the session finishes. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <vsock/msg.h>

#include "agent/child.h"
#include "agent/ops.h"
#include "agent/pty.h"
#include "agent/session.h"
#include "agent/spawn.h"
#include "agent/user.h"
#include "common/buf.h"
#include "common/io.h"
#include "common/log.h"
#include "common/macro.h"
#include "lib/msg-internal.h"
#include "lib/shquote.h"

/* Batch mode keeps each stream's output for the reply; beyond this it is
 * dropped and the reply says so. */
#define BATCH_OUTPUT_MAX (16u * 1024 * 1024)
/* The final drain after the linger reads at most this per source. */
#define FINAL_DRAIN_MAX (1u * 1024 * 1024)

enum exec_mode { MODE_BATCH, MODE_STREAM, MODE_PIPE, MODE_TTY };

struct mode_info {
        const char *name;
        bool collect;           /* output kept for one ExecResult */
        bool stdin_frames;      /* accepts Stdin frames */
        bool signals;           /* accepts Signal frames */
        bool exit_frame;        /* ends with Exit (else ExecResult) */
};

static const struct mode_info modes[] = {
        [MODE_BATCH] = { "exec", true, false, false, false },
        [MODE_STREAM] = { "exec-stream", false, false, false, false },
        [MODE_PIPE] = { "exec-pipe", false, true, true, true },
        [MODE_TTY] = { "exec-tty", false, true, true, true },
};

struct exec;

struct exec_src {
        struct watcher w;
        struct exec *e;
        uint8_t type;           /* VSOCK_MSG_STDOUT / VSOCK_MSG_STDERR */
        bool open;
        struct buf collect;     /* batch */
        bool truncated;
};

struct exec_sink {
        struct watcher w;
        struct exec *e;
        bool open;
        bool eof_wanted;        /* close once the queue is written */
        struct buf q;
};

struct exec {
        struct session *s;
        struct agent *a;
        enum exec_mode mode;
        const struct mode_info *info;
        struct child *child;
        struct exec_src out[2];
        struct exec_sink in;
        int master;             /* TTY: for resize and the foreground group */
        struct timer linger;
        bool reaped;
        int exit_code;
        bool done;
        bool cancelled;
        bool input_held;        /* we paused the host because stdin is full */
};

static void exec_check_done(struct exec *e);
static void src_update(struct exec_src *src);

/* ---- replies ------------------------------------------------------------ */

static void send_exec_result(struct exec *e, int code, struct exec_src *out, struct exec_src *err,
                             const char *error) {
        struct vsock_exec_response resp = { .exit_code = code, .error = (char *) error };
        if (out) {
                resp.stdout_data = (struct vsock_bytes) { buf_head(&out->collect), buf_size(&out->collect), true };
                resp.stderr_data = (struct vsock_bytes) { buf_head(&err->collect), buf_size(&err->collect), true };
        }
        struct buf *q = session_encode_begin(e->s, VSOCK_MSG_EXEC_RESULT);
        if (!q)
                return;
        int r = msg_encode_exec_response_agent(&resp, q);
        session_encode_end(e->s, r);
        if (r < 0)
                log_error("session %llu: encode result: %s", (unsigned long long) session_id(e->s), strerror(-r));
}

static void send_exit(struct exec *e, int code) {
        uint8_t b[4];
        vsock_exit_encode(code, b);
        (void) session_send(e->s, VSOCK_MSG_EXIT, b, sizeof b);
}

/* Report a failure before (or instead of) running the command and end the
 * session. */
static void exec_fail(struct exec *e, int code, const char *msg) {
        log_info("session %llu: %s: %s", (unsigned long long) session_id(e->s), e->info->name, msg);
        if (e->info->exit_frame) {
                size_t n = strlen(msg);
                char line[n + 2];
                memcpy(line, msg, n);
                line[n] = '\n';
                (void) session_send(e->s, VSOCK_MSG_STDERR, line, n + 1);
                send_exit(e, code);
        } else
                send_exec_result(e, code, NULL, NULL, msg);
        e->done = true;
        session_finish(e->s);
}

/* ---- output sources ----------------------------------------------------- */

static void src_close(struct exec_src *src) {
        if (!src->open)
                return;
        src->open = false;
        int fd = src->w.fd;
        watcher_stop(&src->w);
        safe_close(fd);
}

/* One read into the reply buffer (batch) or one frame (other modes).
 * Returns > 0 bytes read, 0 at EOF (source closed), -EAGAIN, or another
 * negative errno (source closed). */
static ssize_t src_read_once(struct exec_src *src) {
        struct exec *e = src->e;
        uint8_t *p;
        ssize_t n;
        if (e->info->collect) {
                if (buf_size(&src->collect) < BATCH_OUTPUT_MAX) {
                        size_t room = MIN((size_t) AGENT_READ_CHUNK, BATCH_OUTPUT_MAX - buf_size(&src->collect));
                        int r = buf_reserve(&src->collect, room, &p);
                        if (r < 0)
                                return r;
                        n = io_read_once(src->w.fd, p, room);
                        if (n > 0)
                                buf_commit(&src->collect, (size_t) n);
                } else {
                        static uint8_t sink[AGENT_READ_CHUNK];
                        n = io_read_once(src->w.fd, sink, sizeof sink);
                        if (n > 0)
                                src->truncated = true;
                }
        } else {
                int r = session_frame_begin(e->s, src->type, AGENT_READ_CHUNK, &p);
                if (r < 0)
                        return r;
                n = io_read_once(src->w.fd, p, AGENT_READ_CHUNK);
                session_frame_end(e->s, n > 0 ? (size_t) n : 0);
        }
        /* A pty master reports EIO once every slave fd is closed. */
        if (n == -EIO && e->mode == MODE_TTY)
                n = 0;
        if (n == 0 || (n < 0 && n != -EAGAIN))
                src_close(src);
        return n;
}

static void on_src(struct watcher *w, uint32_t revents) {
        struct exec_src *src = container_of(w, struct exec_src, w);
        struct exec *e = src->e;
        ssize_t n = src_read_once(src);
        if (n < 0 && n != -EAGAIN && n != -EIO)
                log_debug("session %llu: read output: %s", (unsigned long long) session_id(e->s),
                          strerror((int) -n));
        if (!src->open) {
                exec_check_done(e);
                return;
        }
        if (!e->info->collect && session_queue_high(e->s)) {
                src_update(&e->out[0]);
                src_update(&e->out[1]);
        }
}

/* Interest: readable unless the host is not keeping up. */
static void src_update(struct exec_src *src) {
        if (!src->open)
                return;
        bool paused = !src->e->info->collect && session_queue_high(src->e->s);
        if (watcher_set(&src->w, paused ? 0 : EPOLLIN) < 0)
                src_close(src);
}

/* After the linger: take what is already buffered (bounded), then stop. */
static void src_final_drain(struct exec_src *src) {
        size_t got = 0;
        while (src->open && got < FINAL_DRAIN_MAX) {
                ssize_t n = src_read_once(src);
                if (n <= 0)
                        break;
                got += (size_t) n;
        }
        src_close(src);
}

static void on_linger(struct timer *t) {
        struct exec *e = container_of(t, struct exec, linger);
        if (e->out[0].open || e->out[1].open)
                log_debug("session %llu: output still open %d ms after exit (background process?), "
                          "finishing", (unsigned long long) session_id(e->s), e->a->linger_ms);
        src_final_drain(&e->out[0]);
        src_final_drain(&e->out[1]);
        exec_check_done(e);
}

/* ---- stdin sink ----------------------------------------------------------- */

static void sink_close(struct exec_sink *k) {
        if (!k->open)
                return;
        k->open = false;
        int fd = k->w.fd;
        watcher_stop(&k->w);
        safe_close(fd);
        buf_wipe_free(&k->q);
}

static void sink_resume_host(struct exec *e) {
        if (e->input_held && buf_size(&e->in.q) < AGENT_QUEUE_LOW) {
                e->input_held = false;
                session_pause_input(e->s, false);
        }
}

/* Write what is queued; EPOLLOUT only after EAGAIN. */
static void sink_flush(struct exec_sink *k) {
        while (k->open && !buf_empty(&k->q)) {
                struct iovec iov = { .iov_base = buf_head(&k->q), .iov_len = buf_size(&k->q) };
                ssize_t n = io_writev_once(k->w.fd, &iov, 1);
                if (n == -EAGAIN) {
                        if (watcher_set(&k->w, EPOLLOUT) < 0)
                                sink_close(k);
                        return;
                }
                if (n < 0) {
                        /* The command closed its stdin: drop the rest. */
                        log_debug("session %llu: stdin: %s", (unsigned long long) session_id(k->e->s),
                                  strerror((int) -n));
                        sink_close(k);
                        /* Nothing to hold the host back for any more
                         * (signals must still get through). */
                        if (k->e->input_held) {
                                k->e->input_held = false;
                                session_pause_input(k->e->s, false);
                        }
                        break;
                }
                buf_consume(&k->q, (size_t) n);
        }
        if (k->open) {
                (void) watcher_set(&k->w, 0);
                if (k->q.cap > 64 * 1024)
                        buf_wipe_free(&k->q);
                if (k->eof_wanted)
                        sink_close(k);
        }
}

static void on_sink(struct watcher *w, uint32_t revents) {
        struct exec_sink *k = container_of(w, struct exec_sink, w);
        sink_flush(k);
        sink_resume_host(k->e);
}

static void sink_push(struct exec *e, const uint8_t *data, size_t len) {
        struct exec_sink *k = &e->in;
        if (!k->open || k->eof_wanted)
                return;
        if (buf_append(&k->q, data, len) < 0) {
                log_warn("session %llu: stdin queue full, dropping input", (unsigned long long) session_id(e->s));
                return;
        }
        if (k->w.events == 0)
                sink_flush(k);
        if (k->open && buf_size(&k->q) >= AGENT_QUEUE_HIGH && !e->input_held) {
                e->input_held = true;
                session_pause_input(e->s, true);
        }
}

/* ---- lifecycle -------------------------------------------------------- */

static void exec_check_done(struct exec *e) {
        if (e->done || !e->reaped)
                return;
        if (e->out[0].open || e->out[1].open) {
                if (!timer_armed(&e->linger) && timer_arm_in_ms(&e->linger, e->a->linger_ms) < 0)
                        on_linger(&e->linger);
                return;
        }
        e->done = true;
        timer_disarm(&e->linger);
        sink_close(&e->in);
        log_debug("session %llu: %s done, exit code %d", (unsigned long long) session_id(e->s), e->info->name,
                  e->exit_code);
        if (e->info->exit_frame)
                send_exit(e, e->exit_code);
        else {
                char msg[128] = "";
                if (e->out[0].truncated || e->out[1].truncated)
                        snprintf(msg, sizeof msg, "output truncated: more than %u bytes on %s", BATCH_OUTPUT_MAX,
                                 e->out[0].truncated ? "stdout" : "stderr");
                if (e->info->collect)
                        send_exec_result(e, e->exit_code, &e->out[0], &e->out[1], msg);
                else
                        send_exec_result(e, e->exit_code, NULL, NULL, msg);
        }
        buf_free(&e->out[0].collect);
        buf_free(&e->out[1].collect);
        session_finish(e->s);
}

static void on_child_exit(struct child *c, int code, void *userdata) {
        struct exec *e = userdata;
        e->reaped = true;
        e->exit_code = code;
        exec_check_done(e);
}

static void exec_cancel(struct exec *e, bool lost) {
        if (!e->cancelled && e->child && !e->reaped) {
                log_info("session %llu: host went away, terminating pid %d", (unsigned long long) session_id(e->s),
                         (int) child_pid(e->child));
        }
        e->cancelled = true;
        sink_close(&e->in);
        if (e->mode == MODE_TTY) {
                /* Closing every master fd hangs the terminal up: the kernel
                 * sends SIGHUP to its foreground group, which may be a job
                 * other than the leader's group. */
                src_close(&e->out[0]);
                e->master = safe_close(e->master);
        }
        if (lost) {
                /* Nobody to deliver output to. */
                src_close(&e->out[0]);
                src_close(&e->out[1]);
        }
        if (e->child)
                child_terminate(e->child);
        exec_check_done(e);
}

/* ---- session callbacks ------------------------------------------------ */

static int exec_frame(void *op, uint8_t type, const uint8_t *data, uint32_t len) {
        struct exec *e = op;
        switch (type) {
        case VSOCK_MSG_STDIN:
                if (!e->info->stdin_frames)
                        break;
                if (len == 0) {
                        /* EOF: for a pipe, close the child's stdin; a
                         * terminal has no EOF of its own (the host sends ^D). */
                        if (e->mode == MODE_PIPE) {
                                e->in.eof_wanted = true;
                                if (buf_empty(&e->in.q))
                                        sink_close(&e->in);
                        }
                        return 0;
                }
                sink_push(e, data, len);
                return 0;
        case VSOCK_MSG_SIGNAL: {
                int signo;
                if (!e->info->signals)
                        break;
                if (vsock_signal_decode(data, len, &signo) < 0) {
                        log_warn("session %llu: bad signal frame", (unsigned long long) session_id(e->s));
                        return 0;
                }
                if (!e->child || e->reaped)
                        return 0;
                int r;
                if (e->mode == MODE_TTY) {
                        pid_t fg = e->master >= 0 ? pty_foreground(e->master) : -1;
                        r = child_signal_pgrp(e->child, fg, signo);
                } else
                        r = child_signal_group(e->child, signo);
                log_debug("session %llu: signal %d: %s", (unsigned long long) session_id(e->s), signo,
                          r < 0 ? strerror(-r) : "delivered");
                return 0;
        }
        case VSOCK_MSG_RESIZE: {
                uint16_t rows, cols;
                if (e->mode != MODE_TTY)
                        break;
                if (vsock_resize_decode(data, len, &rows, &cols) < 0) {
                        log_warn("session %llu: bad resize frame", (unsigned long long) session_id(e->s));
                        return 0;
                }
                if (e->master >= 0)
                        (void) pty_resize(e->master, rows, cols);
                return 0;
        }
        default:
                break;
        }
        log_debug("session %llu: ignoring message type %u during %s", (unsigned long long) session_id(e->s), type,
                  e->info->name);
        return 0;
}

static void exec_input_eof(void *op) { exec_cancel(op, false); }
static void exec_conn_lost(void *op) { exec_cancel(op, true); }

static void exec_drained(void *op) {
        struct exec *e = op;
        src_update(&e->out[0]);
        src_update(&e->out[1]);
}

static void exec_shutdown(void *op) {
        struct exec *e = op;
        if (e->child)
                child_terminate(e->child);
}

static void exec_free(void *op) {
        struct exec *e = op;
        if (!e)
                return;
        child_release(e->child);
        timer_disarm(&e->linger);
        src_close(&e->out[0]);
        src_close(&e->out[1]);
        sink_close(&e->in);
        buf_free(&e->out[0].collect);
        buf_free(&e->out[1].collect);
        safe_close(e->master);
        free(e);
}

static const struct session_ops exec_ops = {
        .name = "exec",
        .frame = exec_frame,
        .input_eof = exec_input_eof,
        .conn_lost = exec_conn_lost,
        .drained = exec_drained,
        .shutdown = exec_shutdown,
        .free = exec_free,
};

/* ---- starting ----------------------------------------------------------- */

struct strv {
        char **v;
        size_t n;
};

static void strv_wipe_free(struct strv *s) {
        for (size_t i = 0; i < s->n; i++) {
                explicit_bzero(s->v[i], strlen(s->v[i]));
                free(s->v[i]);
        }
        free(s->v);
        s->v = NULL;
        s->n = 0;
}

/* execve() fails with E2BIG past ARG_MAX (a quarter of the stack limit,
 * 2 MiB by default): refuse earlier, with a clear reply, before building
 * anything that large. */
#define EXEC_ARGS_MAX (2u << 20)

/* One KEY=VALUE candidate; the key is not NUL-terminated (environ). */
struct env_item {
        const char *key;
        size_t klen;
        const char *value;
        size_t seq;             /* later wins among equal keys */
};

static int key_cmp(const char *a, size_t alen, const char *b, size_t blen) {
        int c = memcmp(a, b, alen < blen ? alen : blen);
        if (c != 0)
                return c;
        return alen < blen ? -1 : alen > blen;
}

static int env_item_cmp(const void *x, const void *y) {
        const struct env_item *a = x, *b = y;
        int c = key_cmp(a->key, a->klen, b->key, b->klen);
        if (c != 0)
                return c;
        return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static int strv_push(struct strv *env, size_t *cap, const char *key, size_t klen, const char *value) {
        if (env->n + 2 > *cap) {
                size_t nc = *cap ? *cap * 2 : 64;
                char **nv = realloc(env->v, nc * sizeof *nv);
                if (!nv)
                        return -ENOMEM;
                env->v = nv;
                *cap = nc;
        }
        size_t vlen = strlen(value);
        char *entry = malloc(klen + vlen + 2);
        if (!entry)
                return -ENOMEM;
        memcpy(entry, key, klen);
        entry[klen] = '=';
        memcpy(entry + klen + 1, value, vlen + 1);
        env->v[env->n++] = entry;
        env->v[env->n] = NULL;
        return 0;
}

/* Sort @items (stable by seq) and keep the last of each key, in place.
 * Returns the new count. */
static size_t env_items_unique(struct env_item *items, size_t n) {
        qsort(items, n, sizeof *items, env_item_cmp);
        size_t out = 0;
        for (size_t i = 0; i < n; i++) {
                if (out > 0 && key_cmp(items[out - 1].key, items[out - 1].klen, items[i].key, items[i].klen) == 0)
                        items[out - 1] = items[i];
                else
                        items[out++] = items[i];
        }
        return out;
}

extern char **environ;

/* The agent's environment, then the user's identity, then the request's
 * variables (which win), then defaults for what is still missing. Built
 * by merging two sorted lists: requests may carry 100k variables. */
static int build_env(const struct vsock_exec_request *r, const struct user_spec *u, bool tty, struct strv *ret,
                     const char **ret_why) {
        _cleanup_free_ struct env_item *base = NULL, *req = NULL;
        struct strv env = { 0 };
        size_t cap = 0, n_base = 0, n_environ = 0, total = 0;
        int rc = 0;

        /* Size first: refuse what execve() would refuse anyway. */
        total += strlen(r->command ? r->command : "") + 64; /* and "/bin/sh", "-c" */
        for (size_t i = 0; i < r->n_args && total <= EXEC_ARGS_MAX; i++)
                total += strlen(r->args[i]) + 1 + sizeof(char *);
        for (size_t i = 0; i < r->n_env && total <= EXEC_ARGS_MAX; i++)
                total += strlen(r->env[i].key) + (r->env[i].value ? strlen(r->env[i].value) : 0) + 2 +
                         sizeof(char *);
        for (char **p = environ; p && *p; p++)
                n_environ++;
        if (total > EXEC_ARGS_MAX) {
                *ret_why = "request too large: arguments and environment exceed 2 MiB";
                return -E2BIG;
        }

        base = calloc(n_environ + 4, sizeof *base);
        if (!base) {
                *ret_why = "out of memory";
                return -ENOMEM;
        }
        for (char **p = environ; p && *p; p++) {
                const char *eq = strchr(*p, '=');
                if (!eq || eq == *p || (size_t) (eq - *p) >= 256)
                        continue;
                base[n_base] = (struct env_item) { *p, (size_t) (eq - *p), eq + 1, n_base };
                n_base++;
        }
        if (u) {
                base[n_base] = (struct env_item) { "HOME", 4, u->home ? u->home : "/", n_base };
                n_base++;
                base[n_base] = (struct env_item) { "USER", 4, u->name, n_base };
                n_base++;
                base[n_base] = (struct env_item) { "LOGNAME", 7, u->name, n_base };
                n_base++;
        }
        bool has_term = false;
        for (size_t k_i = 0; k_i < r->n_env; k_i++) {
                const char *k = r->env[k_i].key;
                if (!k[0] || strchr(k, '=')) {
                        *ret_why = "invalid environment variable name";
                        return -EINVAL;
                }
                if (strcmp(k, "TERM") == 0)
                        has_term = true;
        }
        if (tty && !has_term) {
                base[n_base] = (struct env_item) { "TERM", 4, "xterm-256color", n_base };
                n_base++;
        }
        n_base = env_items_unique(base, n_base);

        /* The decoder hands the request's variables sorted and unique;
         * sort a copy only if some other caller did not. */
        size_t n_req = r->n_env;
        if (n_req > 0) {
                req = calloc(n_req, sizeof *req);
                if (!req) {
                        *ret_why = "out of memory";
                        return -ENOMEM;
                }
        }
        bool sorted = true;
        for (size_t i = 0; i < n_req; i++) {
                const struct vsock_env *v = &r->env[i];
                req[i] = (struct env_item) { v->key, strlen(v->key), v->value ? v->value : "", i };
                if (i > 0 && key_cmp(req[i - 1].key, req[i - 1].klen, req[i].key, req[i].klen) >= 0)
                        sorted = false;
        }
        if (!sorted)
                n_req = env_items_unique(req, n_req);

        bool has_path = false;
        size_t i = 0, j = 0;
        while (rc >= 0 && (i < n_base || j < n_req)) {
                const struct env_item *pick;
                if (j >= n_req)
                        pick = &base[i++];
                else if (i >= n_base)
                        pick = &req[j++];
                else {
                        int c = key_cmp(base[i].key, base[i].klen, req[j].key, req[j].klen);
                        if (c < 0)
                                pick = &base[i++];
                        else {
                                if (c == 0)
                                        i++; /* the request wins */
                                pick = &req[j++];
                        }
                }
                if (pick->klen == 4 && memcmp(pick->key, "PATH", 4) == 0)
                        has_path = true;
                rc = strv_push(&env, &cap, pick->key, pick->klen, pick->value);
        }
        if (rc >= 0 && !has_path)
                rc = strv_push(&env, &cap, "PATH", 4, "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        if (rc < 0) {
                strv_wipe_free(&env);
                *ret_why = "out of memory";
                return rc;
        }
        *ret = env;
        return 0;
}

static int make_pipe(int child_end_is_read, int *ret_parent, int *ret_child) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        int parent = child_end_is_read ? p[1] : p[0];
        int child = child_end_is_read ? p[0] : p[1];
        int r = fd_set_nonblock(parent, 1);
        if (r < 0) {
                safe_close(p[0]);
                safe_close(p[1]);
                return r;
        }
        *ret_parent = parent;
        *ret_child = child;
        return 0;
}

static void src_init(struct exec *e, struct exec_src *src, uint8_t type, int fd) {
        src->e = e;
        src->type = type;
        src->collect = BUF_INIT(0);
        watcher_init(&src->w, e->a->loop, fd, on_src);
        src->open = fd >= 0;
}

/* Run the decoded request. Returns 0 (running or already answered). */
static int exec_run(struct exec *e, struct vsock_exec_request *r) {
        _cleanup_(user_spec_clear) struct user_spec user = { 0 };
        struct strv env = { 0 };
        char **argv = NULL;
        int child_fds[3] = { -1, -1, -1 };
        int parent_fds[3] = { -1, -1, -1 }; /* stdin (write), stdout, stderr (read) */
        int slave = -1;
        char *err = NULL;
        const char *why = NULL;
        int rc = 0;

        bool has_user = r->user && r->user[0];
        if (has_user) {
                rc = user_resolve(r->user, NULL, NULL, &user, &err);
                if (rc < 0) {
                        exec_fail(e, 1, err ? err : "unknown user");
                        goto out;
                }
        }
        rc = build_env(r, has_user ? &user : NULL, e->mode == MODE_TTY, &env, &why);
        if (rc < 0) {
                exec_fail(e, 1, why ? why : strerror(-rc));
                goto out;
        }

        /* With args, command is either the program (args are its
         * arguments) or, from hosts that also serve agents ignoring args,
         * the shell quoting of args, which are then the whole vector. */
        bool whole = r->n_args > 0 && shquote_matches(r->command, r->args, r->n_args);
        size_t argc = whole ? r->n_args : r->n_args > 0 ? r->n_args + 1 : 3;
        argv = calloc(argc + 1, sizeof *argv);
        if (!argv) {
                exec_fail(e, 1, "out of memory");
                goto out;
        }
        if (whole) {
                memcpy(argv, r->args, r->n_args * sizeof *argv);
        } else if (r->n_args > 0) {
                argv[0] = (char *) (r->command ? r->command : "");
                for (size_t i = 0; i < r->n_args; i++)
                        argv[i + 1] = r->args[i];
        } else {
                argv[0] = "/bin/sh";
                argv[1] = "-c";
                argv[2] = (char *) (r->command ? r->command : "");
        }

        if (e->mode == MODE_TTY) {
                int master;
                rc = pty_open(r->rows ? r->rows : 24, r->cols ? r->cols : 80, &master, &slave);
                if (rc < 0) {
                        exec_fail(e, 1, "cannot allocate a pseudo-terminal");
                        goto out;
                }
                e->master = master;
                parent_fds[0] = fcntl(master, F_DUPFD_CLOEXEC, 3);
                parent_fds[1] = fcntl(master, F_DUPFD_CLOEXEC, 3);
                if (parent_fds[0] < 0 || parent_fds[1] < 0) {
                        exec_fail(e, 1, "cannot duplicate the terminal");
                        goto out;
                }
                child_fds[0] = child_fds[1] = child_fds[2] = slave;
        } else {
                if (e->mode == MODE_PIPE || r->stdin_data.present)
                        rc = make_pipe(1, &parent_fds[0], &child_fds[0]);
                else {
                        child_fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC | O_NOCTTY);
                        rc = child_fds[0] < 0 ? -errno : 0;
                }
                if (rc >= 0)
                        rc = make_pipe(0, &parent_fds[1], &child_fds[1]);
                if (rc >= 0)
                        rc = make_pipe(0, &parent_fds[2], &child_fds[2]);
                if (rc < 0) {
                        exec_fail(e, 1, "cannot create pipes");
                        goto out;
                }
        }

        struct spawn_params p = {
                .file = argv[0],
                .argv = argv,
                .envp = env.v,
                .search_path = r->n_args > 0,
                .cwd = r->working_dir && r->working_dir[0] ? r->working_dir : NULL,
                .user = has_user ? &user : NULL,
                .sandbox = e->a->sandbox,
                .fd_in = child_fds[0],
                .fd_out = child_fds[1],
                .fd_err = child_fds[2],
                .tty = e->mode == MODE_TTY,
                .pid_ns = e->a->pid_ns,
                .reset_signals = &e->a->changed_signals,
        };
        pid_t pid;
        int pidfd, code;
        rc = spawn_start(&p, &pid, &pidfd, &err, &code);
        /* The child has its copies; ours would keep the pipes from EOF. */
        for (int i = 0; i < 3; i++)
                if (child_fds[i] != slave)
                        safe_close(child_fds[i]);
        slave = safe_close(slave);
        child_fds[0] = child_fds[1] = child_fds[2] = -1;
        if (rc < 0) {
                exec_fail(e, code, err ? err : "cannot start the command");
                goto out;
        }
        rc = child_new(e->a->loop, pid, pidfd, e->mode == MODE_TTY, e->a->grace_ms, on_child_exit, e, &e->child);
        if (rc < 0) {
                exec_fail(e, 1, "cannot watch the process");
                goto out;
        }
        log_debug("session %llu: %s started pid %d", (unsigned long long) session_id(e->s), e->info->name, (int) pid);

        /* Input: the request's stdin (batch/stream) or Stdin frames. */
        watcher_init(&e->in.w, e->a->loop, parent_fds[0], on_sink);
        e->in.e = e;
        e->in.open = parent_fds[0] >= 0;
        parent_fds[0] = -1;
        if (e->in.open && !e->info->stdin_frames) {
                if (r->stdin_data.len > 0 && buf_append(&e->in.q, r->stdin_data.data, r->stdin_data.len) < 0)
                        log_warn("session %llu: out of memory for stdin", (unsigned long long) session_id(e->s));
                e->in.eof_wanted = true;
                sink_flush(&e->in);
        }

        src_init(e, &e->out[0], VSOCK_MSG_STDOUT, parent_fds[1]);
        src_init(e, &e->out[1], VSOCK_MSG_STDERR, parent_fds[2]);
        parent_fds[1] = parent_fds[2] = -1;
        src_update(&e->out[0]);
        src_update(&e->out[1]);
        rc = 0;
out:
        for (int i = 0; i < 3; i++) {
                if (child_fds[i] != slave)
                        safe_close(child_fds[i]);
                safe_close(parent_fds[i]);
        }
        safe_close(slave);
        free(argv);
        free(err);
        strv_wipe_free(&env);
        return 0;
}

int exec_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len) {
        struct exec *e = calloc(1, sizeof *e);
        if (!e) {
                if (payload)
                        explicit_bzero(payload, len);
                free(payload);
                return -ENOMEM;
        }
        e->s = s;
        e->a = session_agent(s);
        e->master = -1;
        e->mode = type == VSOCK_MSG_EXEC          ? MODE_BATCH
                  : type == VSOCK_MSG_EXEC_STREAM ? MODE_STREAM
                  : type == VSOCK_MSG_EXEC_PIPE   ? MODE_PIPE
                                                  : MODE_TTY;
        e->info = &modes[e->mode];
        e->in.q = BUF_INIT(0);
        e->in.e = e;
        watcher_init(&e->in.w, e->a->loop, -1, on_sink);
        src_init(e, &e->out[0], VSOCK_MSG_STDOUT, -1);
        src_init(e, &e->out[1], VSOCK_MSG_STDERR, -1);
        timer_init(&e->linger, e->a->loop, on_linger);
        session_set_op(s, &exec_ops, e);

        struct vsock_exec_request r = { 0 };
        const char *why = NULL;
        int rc = msg_decode_exec_request(payload ? payload : (const uint8_t *) "", len, e->mode == MODE_TTY, &r,
                                         &why);
        if (payload)
                explicit_bzero(payload, len);
        free(payload);
        if (rc < 0) {
                exec_fail(e, 1, why ? why : "invalid request");
                return 0;
        }
        rc = exec_run(e, &r);
        vsock_exec_request_clear(&r, true);
        return rc;
}
