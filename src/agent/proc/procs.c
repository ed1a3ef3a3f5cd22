#include "agent/proc/procs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/proc/procrun.h"
#include "common/macro.h"
#include "lib/ext_msg.h"

#define TAG_MAX 64

struct proc {
        struct procs *m;
        uint64_t id;
        char *tag;
        char *command;
        char **args;
        size_t n_args;
        bool tty;
        enum proc_state state;
        pid_t pid;
        int64_t started_ns, ended_ns;
        int exit_code, signo, oom;
        bool stdin_open;
        struct outring *ring;
        uint64_t reserved;              /* outring_footprint() of the ring */
        int64_t keep_ms;
        struct timer keep;              /* removal after exit */
        struct proc_run *run;
        struct proc_watch *watches;
        struct proc *prev, *next;       /* oldest first */
};

struct procs {
        struct loop *loop;
        struct procs_limits limits;
        uint64_t next_id;
        struct proc *head, *tail;
        size_t n;
        uint64_t reserved;
};

static int64_t wall_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int procs_new(struct loop *l, const struct procs_limits *limits, struct procs **ret) {
        struct procs *m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        m->loop = l;
        m->limits = *limits;
        *ret = m;
        return 0;
}

const struct procs_limits *procs_get_limits(const struct procs *m) { return &m->limits; }
size_t procs_count(const struct procs *m) { return m->n; }
uint64_t procs_ring_reserved(const struct procs *m) { return m->reserved; }
struct proc *procs_first(struct procs *m) { return m->head; }
struct proc *proc_next(struct proc *p) { return p->next; }
uint64_t proc_id(const struct proc *p) { return p->id; }
enum proc_state proc_state(const struct proc *p) { return p->state; }
bool proc_tty(const struct proc *p) { return p->tty; }
const struct outring *proc_ring(const struct proc *p) { return p->ring; }
void proc_set_run(struct proc *p, struct proc_run *run) { p->run = run; }
struct proc_run *proc_get_run(struct proc *p) { return p->run; }

bool procs_tag_valid(const char *tag) {
        size_t n = tag ? strlen(tag) : 0;
        if (n == 0 || n > TAG_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = tag[i];
                bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
                          c == '_' || c == '-';
                if (!ok)
                        return false;
        }
        return true;
}

void proc_notify(struct proc *p) {
        for (struct proc_watch *w = p->watches; w; w = w->next)
                loop_defer(&w->defer);
}

static void proc_free(struct proc *p) {
        timer_disarm(&p->keep);
        /* Followers learn of the removal from proc == NULL. */
        while (p->watches) {
                struct proc_watch *w = p->watches;
                p->watches = w->next;
                w->prev = w->next = NULL;
                w->proc = NULL;
                loop_defer(&w->defer);
        }
        procrun_free(p->run);
        outring_free(p->ring);
        free(p->tag);
        free(p->command);
        for (size_t i = 0; i < p->n_args; i++)
                free(p->args[i]);
        free(p->args);
        free(p);
}

static void proc_unlink(struct proc *p) {
        struct procs *m = p->m;
        if (p->prev)
                p->prev->next = p->next;
        else
                m->head = p->next;
        if (p->next)
                p->next->prev = p->prev;
        else
                m->tail = p->prev;
        m->n--;
        m->reserved -= p->reserved;
}

int proc_remove(struct proc *p) {
        if (p->state != PROC_EXITED)
                return -EBUSY;
        proc_unlink(p);
        proc_free(p);
        return 0;
}

void procs_free(struct procs *m) {
        if (!m)
                return;
        while (m->head) {
                struct proc *p = m->head;
                proc_unlink(p);
                proc_free(p);
        }
        free(m);
}

static void on_keep(struct timer *t) {
        struct proc *p = container_of(t, struct proc, keep);
        (void) proc_remove(p);
}

/* Remove the oldest exited record; false when none is exited. */
static bool evict_one(struct procs *m) {
        for (struct proc *p = m->head; p; p = p->next)
                if (p->state == PROC_EXITED) {
                        (void) proc_remove(p);
                        return true;
                }
        return false;
}

struct proc *procs_find(struct procs *m, uint64_t id, const char *tag) {
        for (struct proc *p = m->head; p; p = p->next) {
                if (id != 0 ? p->id == id : (tag && p->tag && strcmp(p->tag, tag) == 0))
                        return p;
        }
        return NULL;
}

/* The command as ProcInfo shows it: at most PROCS_COMMAND_MAX bytes of
 * command and args together (cut, later args dropped), so that a
 * ProcListReply of procs_max records stays small whatever was started. */
static int copy_spec(struct proc *p, const struct proc_spec *spec) {
        const char *cmd = spec->command ? spec->command : "";
        size_t budget = PROCS_COMMAND_MAX;
        p->command = strndup(cmd, budget);
        p->tag = spec->tag ? strdup(spec->tag) : NULL;
        if (!p->command || (spec->tag && !p->tag))
                return -ENOMEM;
        budget -= strlen(p->command);
        if (spec->n_args > 0) {
                p->args = calloc(spec->n_args, sizeof *p->args);
                if (!p->args)
                        return -ENOMEM;
                for (size_t i = 0; i < spec->n_args && budget > 0; i++) {
                        p->args[i] = strndup(spec->args[i], budget);
                        if (!p->args[i])
                                return -ENOMEM;
                        budget -= strlen(p->args[i]);
                        p->n_args = i + 1;
                }
        }
        return 0;
}

int procs_add(struct procs *m, const struct proc_spec *spec, struct proc **ret, const char **ret_why) {
        if (spec->tag && !procs_tag_valid(spec->tag)) {
                *ret_why = "tag: 1-64 characters of [0-9A-Za-z._-]";
                return -EINVAL;
        }
        uint32_t ring = spec->ring ? spec->ring : m->limits.ring_default;
        if (ring > m->limits.ring_max) {
                *ret_why = "ring larger than limits.ring_max";
                return -EINVAL;
        }
        size_t footprint = outring_footprint(ring);
        if (footprint == 0) {
                *ret_why = "ring size out of range";
                return -EINVAL;
        }
        if (spec->tag && procs_find(m, 0, spec->tag)) {
                *ret_why = "tag in use";
                return -EEXIST;
        }
        if (footprint > m->limits.ring_total_max) {
                *ret_why = "ring larger than limits.ring_total_max";
                return -PROCS_ELIMIT;
        }
        /* Room first: finished results give way to new processes. */
        while (m->n >= (size_t) MAX(m->limits.procs_max, 0) && evict_one(m))
                ;
        if (m->n >= (size_t) MAX(m->limits.procs_max, 0)) {
                *ret_why = "too many processes (limits.procs_max)";
                return -PROCS_ELIMIT;
        }
        while (m->reserved + footprint > m->limits.ring_total_max && evict_one(m))
                ;
        if (m->reserved + footprint > m->limits.ring_total_max) {
                *ret_why = "too much ring memory (limits.ring_total_max)";
                return -PROCS_ELIMIT;
        }

        struct proc *p = calloc(1, sizeof *p);
        if (!p) {
                *ret_why = "out of memory";
                return -ENOMEM;
        }
        p->m = m;
        p->state = PROC_STARTING;
        p->tty = spec->tty;
        p->oom = -1;
        timer_init(&p->keep, m->loop, on_keep);
        int64_t keep_max = (int64_t) m->limits.keep_s * 1000;
        p->keep_ms = spec->keep_ms > 0 ? MIN(spec->keep_ms, keep_max) : keep_max;
        int r = copy_spec(p, spec);
        if (r >= 0)
                r = outring_new(ring, &p->ring);
        if (r < 0) {
                proc_free(p);
                *ret_why = "out of memory";
                return r;
        }
        p->id = ++m->next_id;
        p->reserved = footprint;
        p->started_ns = wall_ns();
        p->prev = m->tail;
        if (m->tail)
                m->tail->next = p;
        else
                m->head = p;
        m->tail = p;
        m->n++;
        m->reserved += footprint;
        *ret = p;
        return 0;
}

void proc_set_running(struct proc *p, pid_t pid) {
        p->pid = pid;
        p->state = PROC_RUNNING;
        proc_notify(p);
}

void proc_set_stdin_open(struct proc *p, bool open) {
        if (p->stdin_open == open)
                return;
        p->stdin_open = open;
        proc_notify(p);
}

int proc_output(struct proc *p, uint8_t stream, const void *data, size_t n) {
        if (n == 0)
                return 0;
        int r = outring_append(p->ring, stream, data, n);
        if (r >= 0)
                proc_notify(p);
        return r;
}

void proc_exited(struct proc *p, int exit_code, int signo, int oom) {
        if (p->state == PROC_EXITED)
                return;
        p->state = PROC_EXITED;
        p->exit_code = exit_code;
        p->signo = signo;
        p->oom = oom;
        p->stdin_open = false;
        p->ended_ns = wall_ns();
        /* Without a timer (no memory) the record stays until a new one
         * needs its room (procs_add evicts exited records). */
        (void) timer_arm_in_ms(&p->keep, p->keep_ms);
        proc_notify(p);
}

void proc_result(const struct proc *p, int *ret_exit_code, int *ret_signo, int *ret_oom, int64_t *ret_ended_ns) {
        *ret_exit_code = p->exit_code;
        *ret_signo = p->signo;
        *ret_oom = p->oom;
        *ret_ended_ns = p->ended_ns;
}

static int32_t attached_count(const struct proc *p) {
        int32_t n = 0;
        for (const struct proc_watch *w = p->watches; w; w = w->next)
                n += w->counted;
        return n;
}

void proc_info(const struct proc *p, struct ext_proc_info *ret) {
        ext_proc_info_init(ret);
        ret->id = p->id;
        ret->tag = p->tag;
        ret->pid = (int32_t) p->pid;
        ret->command = p->command;
        ret->args = p->args;
        ret->n_args = p->n_args;
        ret->tty = p->tty;
        ret->state = p->state == PROC_EXITED ? "exited" : "running";
        ret->started_ns = p->started_ns;
        if (p->state == PROC_EXITED) {
                ret->ended_ns = p->ended_ns;
                ret->exit_code = p->exit_code;
                ret->signal = p->signo;
                ret->oom_killed = p->oom > 0;
        }
        ret->ring_start = outring_start(p->ring);
        ret->out_end = outring_end(p->ring);
        ret->stdin_open = p->stdin_open;
        ret->attached = attached_count(p);
}

void proc_watch_init(struct proc_watch *w, struct loop *l, defer_fn cb) {
        *w = (struct proc_watch) { 0 };
        defer_init(&w->defer, l, cb);
}

void proc_watch_add(struct proc *p, struct proc_watch *w, bool counted) {
        proc_watch_remove(w);
        w->proc = p;
        w->counted = counted;
        w->prev = NULL;
        w->next = p->watches;
        if (p->watches)
                p->watches->prev = w;
        p->watches = w;
        proc_notify(p); /* "attached" changed */
}

void proc_watch_remove(struct proc_watch *w) {
        defer_cancel(&w->defer);
        struct proc *p = w->proc;
        if (!p)
                return;
        if (w->prev)
                w->prev->next = w->next;
        else
                p->watches = w->next;
        if (w->next)
                w->next->prev = w->prev;
        w->prev = w->next = NULL;
        w->proc = NULL;
}
