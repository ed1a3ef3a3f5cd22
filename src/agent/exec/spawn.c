#include "agent/exec/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "agent/init/pidns.h"
#include "agent/exec/sandbox.h"
#include "agent/exec/user.h"
#include "common/errtext.h"
#include "common/io.h"
#include "common/macro.h"

#if defined(__SANITIZE_ADDRESS__)
#define SPAWN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPAWN_ASAN 1
#endif
#endif
#ifdef SPAWN_ASAN
#include <sanitizer/asan_interface.h>
/* The child runs on a stack ASan does not know; its frames must not
 * leave poisoned shadow behind, and its no-return calls must not make
 * ASan complain about the stack switch. */
#define CHILD_FN __attribute__((no_sanitize_address))
#else
#define CHILD_FN
#endif

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1U << 1)
#endif

/* The deepest path in the child is the ENOEXEC fallback, which copies argv
 * (at most 4096 pointers, 32 KiB) next to a PATH_MAX buffer. */
#define CHILD_STACK_SIZE (256u * 1024)

/* What the child reports when it fails before or at exec. */
enum stage { STAGE_SETUP = 1, STAGE_TTY, STAGE_FDS, STAGE_SANDBOX, STAGE_USER, STAGE_CHDIR, STAGE_EXEC,
             STAGE_PIDNS_MOUNTS, STAGE_PIDNS_PROC, STAGE_PIDNS_INIT };

struct report {
        int stage;              /* 0: the child exec'd (or died without a word) */
        int err;
};

/* What one spawn uses: the child's stack (and, with pid_ns, the
 * command's, next to its init's) and the fd slots its stdio waits in. */
struct spawn_ctx {
        void *stack;
        void *stack2;           /* lazily, for pid_ns */
        int slots[3];
        bool persistent;        /* reserved early at low numbers, reused */
        struct spawn_ctx *next; /* the free list */
};

/* Shared with the child: it runs in our memory while we are suspended. */
struct child_args {
        const struct spawn_params *p;
        const struct spawn_ctx *ctx;
        unsigned lo;            /* fds from here up are not copied to the child */
        struct report rep;      /* written by the child on failure */
        /* pid_ns: the init's pipe that releases the command, and the
         * command's tid, cleared by the kernel at its exec or exit. */
        int go[2];
        pid_t cmd_tid;
        bool cmd_started;
};

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

CHILD_FN _Noreturn static void child_fail(struct child_args *c, int stage, int err) {
        c->rep.err = err;
        c->rep.stage = stage;
        _exit(127);
}

static const char *env_lookup(char *const *envp, const char *name) {
        size_t n = strlen(name);
        for (; envp && *envp; envp++)
                if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
                        return *envp + n + 1;
        return NULL;
}

/* execve, falling back to /bin/sh for a script without #! as execvp does. */
static int try_exec(const char *path, char *const *argv, char *const *envp) {
        execve(path, argv, envp);
        if (errno == ENOEXEC) {
                /* Build [sh, path, argv[1..]] on the stack (argv is bounded
                 * by ARG_MAX; the count is small in practice). */
                size_t n = 0;
                while (argv[n])
                        n++;
                if (n < 4096) {
                        const char *nargv[n + 2];
                        nargv[0] = "/bin/sh";
                        nargv[1] = path;
                        for (size_t i = 1; i <= n; i++)
                                nargv[i + 1] = argv[i];
                        execve("/bin/sh", (char *const *) nargv, envp);
                }
                errno = ENOEXEC;
        }
        return -errno;
}

/* PATH search with the *child's* PATH (execvpe would use the agent's). */
static int exec_search(const char *file, char *const *argv, char *const *envp) {
        const char *path = env_lookup(envp, "PATH");
        if (!path)
                path = DEFAULT_PATH;
        size_t flen = strlen(file);
        if (flen == 0)
                return -ENOENT;
        if (flen >= PATH_MAX)
                return -ENAMETOOLONG;
        bool eacces = false;
        int last = -ENOENT;
        for (const char *p = path;; p++) {
                const char *end = strchrnul(p, ':');
                size_t dlen = (size_t) (end - p);
                char buf[PATH_MAX + 1];
                if (dlen + 1 + flen < sizeof buf) {
                        if (dlen == 0) {
                                memcpy(buf, file, flen + 1); /* empty entry: cwd */
                        } else {
                                memcpy(buf, p, dlen);
                                buf[dlen] = '/';
                                memcpy(buf + dlen + 1, file, flen + 1);
                        }
                        int r = try_exec(buf, argv, envp);
                        if (r == -EACCES)
                                eacces = true;
                        else if (r != -ENOENT && r != -ENOTDIR && r != -ESTALE && r != -ENODEV &&
                                 r != -ETIMEDOUT)
                                return r; /* found but not runnable: stop, as execvp does */
                        last = r;
                }
                if (*end == '\0')
                        break;
                p = end;
        }
        return eacces ? -EACCES : last;
}

/* Module state, guarded by spawn_lock: the idle contexts, the placeholder
 * their slots hold while idle, and for pid_ns the binary each init is
 * started from and the pipe that tells inits the agent is gone.
 *
 * Process-wide by nature, hence not members of the agent: the contexts
 * hold fd slots of the one fd table every worker thread shares (kept at
 * low numbers for all of them), the alive pipe must hang up when the
 * process ends however it ends, and the binary and the inherited signal
 * dispositions are the process's own. */
static pthread_mutex_t spawn_lock = PTHREAD_MUTEX_INITIALIZER;
static int placeholder = -1;
static struct spawn_ctx *idle_ctx;
static unsigned n_persistent;
/* Written once by spawn_check_pid_ns(), single-threaded, before any spawn. */
static int self_exe = -1;
static int alive_r = -1, alive_w = -1;
/* Signals ignored when we started (nohup, a background job of a
 * non-interactive shell): SIG_IGN survives exec, so every child resets
 * these on top of what the caller says it changed. Written once by
 * spawn_init(), before any child exists. */
static uint64_t inherited_ignored; /* bit sig-1 */

/* Contexts kept for reuse, with slots at low numbers: spawns rarely
 * overlap by more (2 cores); more are made and dropped as needed. */
#define PERSISTENT_CTX 2

/* The kernel's struct sigaction (x86-64 and the generic layout). glibc's
 * sigaction() and sigset functions refuse the signals it reserves for
 * itself (32, 33), yet those can arrive ignored too (GNU make ignores
 * them), and SIG_IGN survives exec: query and reset them all raw. */
struct ksigaction {
        void (*handler)(int);
        unsigned long flags;
        void (*restorer)(void);
        uint64_t mask;
};

static int ksigaction(int sig, const struct ksigaction *act, struct ksigaction *old) {
        return (int) syscall(SYS_rt_sigaction, sig, act, old, sizeof(uint64_t));
}

void spawn_init(void) {
        inherited_ignored = 0;
        for (int sig = 1; sig <= 64; sig++) {
                struct ksigaction old;
                if (sig == SIGKILL || sig == SIGSTOP || ksigaction(sig, NULL, &old) < 0)
                        continue;
                if (old.handler == SIG_IGN)
                        inherited_ignored |= UINT64_C(1) << (sig - 1);
        }
}

int spawn_failure_code(int err) { return err == ENOENT || err == ENOTDIR ? 127 : 126; }

/* ---- contexts ------------------------------------------------------------------ */

/* A stack with a guard page below: an overflow faults instead of writing
 * into the agent's memory. NULL on failure (errno set). */
static void *stack_new(void) {
        long page = sysconf(_SC_PAGESIZE);
        size_t guard = page > 0 ? (size_t) page : 4096;
        uint8_t *m = mmap(NULL, CHILD_STACK_SIZE + guard, PROT_NONE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
        if (m == MAP_FAILED)
                return NULL;
        if (mprotect(m + guard, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE) < 0) {
                int e = errno;
                (void) munmap(m, CHILD_STACK_SIZE + guard);
                errno = e;
                return NULL;
        }
        return m + guard;
}

static void stack_free(void *stack) {
        if (!stack)
                return;
        long page = sysconf(_SC_PAGESIZE);
        size_t guard = page > 0 ? (size_t) page : 4096;
        (void) munmap((uint8_t *) stack - guard, CHILD_STACK_SIZE + guard);
}

static void ctx_free(struct spawn_ctx *x) {
        if (!x)
                return;
        for (int i = 0; i < 3; i++)
                safe_close(x->slots[i]);
        stack_free(x->stack);
        stack_free(x->stack2);
        free(x);
}

/* spawn_lock held (the placeholder). */
static int ctx_new_locked(bool persistent, struct spawn_ctx **ret) {
        if (placeholder < 0) {
                /* Any fd will do; an eventfd needs no file system (init
                 * mode may not have /dev yet). */
                placeholder = eventfd(0, EFD_CLOEXEC);
                if (placeholder < 0)
                        return -errno;
        }
        struct spawn_ctx *x = calloc(1, sizeof *x);
        if (!x)
                return -ENOMEM;
        x->persistent = persistent;
        for (int i = 0; i < 3; i++) {
                x->slots[i] = fcntl(placeholder, F_DUPFD_CLOEXEC, 3);
                if (x->slots[i] < 0) {
                        int r = -errno;
                        for (int k = i; k < 3; k++)
                                x->slots[k] = -1;
                        ctx_free(x);
                        return r;
                }
        }
        x->stack = stack_new();
        if (!x->stack) {
                int r = -errno;
                ctx_free(x);
                return r;
        }
        *ret = x;
        return 0;
}

static int reserve_locked(void) {
        while (n_persistent < PERSISTENT_CTX) {
                struct spawn_ctx *x;
                int r = ctx_new_locked(true, &x);
                if (r < 0)
                        return r;
                x->next = idle_ctx;
                idle_ctx = x;
                n_persistent++;
        }
        return 0;
}

int spawn_reserve(void) {
        pthread_mutex_lock(&spawn_lock);
        int r = reserve_locked();
        pthread_mutex_unlock(&spawn_lock);
        return r;
}

static int ctx_get(struct spawn_ctx **ret) {
        pthread_mutex_lock(&spawn_lock);
        (void) reserve_locked(); /* retried at every spawn */
        struct spawn_ctx *x = idle_ctx;
        int r = 0;
        if (x)
                idle_ctx = x->next;
        else
                r = ctx_new_locked(false, &x);
        pthread_mutex_unlock(&spawn_lock);
        if (r < 0)
                return r;
        x->next = NULL;
        *ret = x;
        return 0;
}

/* The child has its own copies by now: park the placeholder in the slots
 * again, which drops our extra references to its ends. */
static void ctx_put(struct spawn_ctx *x) {
        if (!x->persistent) {
                ctx_free(x);
                return;
        }
        pthread_mutex_lock(&spawn_lock);
        bool broken = false;
        for (int i = 0; i < 3; i++)
                broken |= dup3(placeholder, x->slots[i], O_CLOEXEC) < 0;
        if (broken) {
                /* Made again at the next spawn. */
                n_persistent--;
                pthread_mutex_unlock(&spawn_lock);
                ctx_free(x);
                return;
        }
        x->next = idle_ctx;
        idle_ctx = x;
        pthread_mutex_unlock(&spawn_lock);
}

/* ---- cancellation ---------------------------------------------------------------- */

void spawn_cancel_init(struct spawn_cancel *c) {
        *c = (struct spawn_cancel) { .pidfd = -1 };
        pthread_mutex_init(&c->lock, NULL);
}

void spawn_cancel_destroy(struct spawn_cancel *c) { pthread_mutex_destroy(&c->lock); }

void spawn_cancel(struct spawn_cancel *c) {
        pthread_mutex_lock(&c->lock);
        c->cancelled = true;
        /* The kernel wrote the pidfd before the child first ran; it stays
         * open until the spawning thread clears active under the lock. */
        int pidfd = __atomic_load_n(&c->pidfd, __ATOMIC_RELAXED);
        if (c->active && pidfd >= 0)
                (void) syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        pthread_mutex_unlock(&c->lock);
}

/* ---- the child ---------------------------------------------------------------- */

/* Leave the agent's session for one of our own (with the terminal as
 * controlling tty, for a TTY), with the command's stdin, stdout and stderr
 * on 0, 1 and 2. */
CHILD_FN static void child_setup_session(struct child_args *c) {
        const struct spawn_params *p = c->p;
        /* A session, not just a process group: the agent's controlling
         * terminal (if it has one) stays out of reach (/dev/tty, TIOCSTI),
         * and SIGCONT no longer crosses between commands of other users. */
        if (setsid() < 0)
                child_fail(c, STAGE_SETUP, errno);

        /* The sources wait in the slots (all >= 3): dup2 cannot clobber
         * one that is still needed, and it clears CLOEXEC on 0..2. */
        for (int i = 0; i < 3; i++)
                if (dup2(c->ctx->slots[i], i) < 0)
                        child_fail(c, STAGE_FDS, errno);

        if (p->tty) {
                if (ioctl(0, TIOCSCTTY, 0) < 0)
                        child_fail(c, STAGE_TTY, errno);
                /* Make sure the terminal really is ours now. */
                if (tcgetpgrp(0) != getpid())
                        (void) tcsetpgrp(0, getpid());
        }
}

/* From a set-up session to exec: signals, fds, sandbox, user, directory. */
CHILD_FN _Noreturn static void child_exec(struct child_args *c) {
        const struct spawn_params *p = c->p;

        /* Ignored dispositions survive exec, and a handler must not run in
         * our shared memory once signals are unblocked: reset the ones the
         * agent changed or inherited ignored (all of them when it did not
         * say). */
        const struct ksigaction dfl = { .handler = SIG_DFL };
        for (int sig = 1; sig <= 64; sig++) {
                if (sig == SIGKILL || sig == SIGSTOP)
                        continue;
                if (p->reset_signals && sigismember(p->reset_signals, sig) != 1 &&
                    !(inherited_ignored & (UINT64_C(1) << (sig - 1))))
                        continue;
                (void) ksigaction(sig, &dfl, NULL);
        }

        /* Nothing else crosses exec, including any fd the agent inherited
         * without O_CLOEXEC. With close_range, this is a handful of fds. */
        if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0) {
                for (int fd = 3; fd < 1024; fd++)
                        (void) fcntl(fd, F_SETFD, FD_CLOEXEC);
        }

        if (p->sandbox) {
                int r = sandbox_apply_child(p->sandbox);
                if (r < 0)
                        child_fail(c, STAGE_SANDBOX, -r);
        }
        if (p->user) {
                int r = user_switch_child(p->user);
                if (r < 0)
                        child_fail(c, STAGE_USER, -r);
        }
        if (p->cwd && p->cwd[0] && chdir(p->cwd) < 0)
                child_fail(c, STAGE_CHDIR, errno);

        /* Last: the agent blocks signals for its signalfd (and all of them
         * across the clone); the command starts with nothing blocked. */
        sigset_t none;
        sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);

        int r;
        if (p->search_path && !strchr(p->file, '/'))
                r = exec_search(p->file, p->argv, p->envp);
        else
                r = try_exec(p->file, p->argv, p->envp);
        child_fail(c, STAGE_EXEC, -r);
}

/* Our own fd table, with copies of the fds below c->lo only (the agent's
 * stdio, a few early fds, the slots). Before Linux 5.9: a copy of the
 * whole table. */
CHILD_FN static void child_unshare_fds(struct child_args *c) {
        if (syscall(SYS_close_range, c->lo, ~0U, CLOSE_RANGE_UNSHARE) < 0 && unshare(CLONE_FILES) < 0)
                child_fail(c, STAGE_FDS, errno);
}

/* The child: clone(CLONE_VM | CLONE_VFORK | CLONE_FILES), on its own
 * stack, with every signal blocked. It shares the agent's memory and, until
 * its first call, its fd table: only raw system calls (no allocation, no
 * libc locks), and no fd change before the table is its own. */
CHILD_FN static int child_main(void *arg) {
        struct child_args *c = arg;
        child_unshare_fds(c);
        child_setup_session(c);
        child_exec(c);
}

/* ---- PID namespace (pidns.h) ---------------------------------------------- */

/* @v in decimal into @buf (at least 12 bytes); async-signal-safe. */
CHILD_FN static char *fmt_int(char *buf, int v) {
        char tmp[12];
        unsigned u = v < 0 ? 0u - (unsigned) v : (unsigned) v;
        int n = 0;
        do
                tmp[n++] = (char) ('0' + u % 10);
        while ((u /= 10) != 0);
        char *o = buf;
        if (v < 0)
                *o++ = '-';
        while (n > 0)
                *o++ = tmp[--n];
        *o = '\0';
        return buf;
}

/* Replace this process (PID 1 of the namespace) with the agent's binary in
 * init mode, keeping only @go (may be -1) and the alive pipe. Returns only
 * on failure, with errno set. */
CHILD_FN static void exec_init(int go, pid_t cmd) {
        /* close_range(CLOEXEC) marks everything at once (5.11+). */
        if (syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */) < 0)
                for (int fd = 3; fd < 1024; fd++)
                        (void) fcntl(fd, F_SETFD, FD_CLOEXEC);
        if ((go >= 0 && fcntl(go, F_SETFD, 0) < 0) || fcntl(alive_r, F_SETFD, 0) < 0)
                return;
        char go_s[12], alive_s[12], cmd_s[12];
        char *const argv[] = { "vsock-init", PIDNS_INIT_ARG, fmt_int(go_s, go), fmt_int(alive_s, alive_r),
                               fmt_int(cmd_s, cmd), NULL };
        char *const envp[] = { NULL };
        (void) syscall(SYS_execveat, self_exe, "", argv, envp, AT_EMPTY_PATH);
}

/* The command under a PID-namespace init: clone(CLONE_VM) from the init,
 * without CLONE_VFORK (the init must exec before the command may run), so
 * it still shares the agent's memory while the init no longer does; the
 * agent waits for its exec through its cleared tid. Its fd table is a copy
 * of the init's. */
CHILD_FN static int command_main(void *arg) {
        struct child_args *c = arg;
        (void) close(c->go[1]);
        /* Parked until the init is ready: all signals are blocked, so only
         * SIGKILL ends the wait early. EOF: the init died first. */
        char b;
        ssize_t n;
        while ((n = read(c->go[0], &b, 1)) < 0 && errno == EINTR)
                ;
        (void) close(c->go[0]);
        if (n != 1)
                child_fail(c, STAGE_PIDNS_INIT, n < 0 ? errno : EPIPE);
        child_exec(c);
}

/* PID 1 of new PID and mount namespaces, first as a CLONE_VM | CLONE_VFORK
 * child of the agent: it makes the mounts, leads the session the command
 * will share (signals to the group reach the command), starts the command
 * parked, and then becomes a fresh process image (the agent's binary in
 * init mode), which releases the command and reaps. */
CHILD_FN static int pidns_child_main(void *arg) {
        struct child_args *c = arg;
        const struct spawn_params *p = c->p;

        child_unshare_fds(c);
        int r = pidns_private_mounts();
        if (r < 0)
                child_fail(c, STAGE_PIDNS_MOUNTS, -r);
        r = pidns_mount_proc();
        if (r < 0)
                child_fail(c, STAGE_PIDNS_PROC, -r);
        child_setup_session(c);
        if (pipe2(c->go, O_CLOEXEC) < 0)
                child_fail(c, STAGE_SETUP, errno);

        uint8_t *top = (uint8_t *) c->ctx->stack2 + CHILD_STACK_SIZE;
        pid_t cmd = clone(command_main, top, CLONE_VM | CLONE_CHILD_CLEARTID | SIGCHLD, c, NULL, NULL, &c->cmd_tid);
        if (cmd < 0)
                child_fail(c, STAGE_SETUP, errno);
        c->cmd_started = true;

        /* The command has its copies: ours of its stdio would keep the
         * agent from seeing EOF (and a TTY open). */
        (void) close(c->go[0]);
        for (int fd = 0; fd < 3; fd++)
                (void) close(fd);
        /* The init need not keep CAP_SYS_ADMIN either. */
        if (p->sandbox && (r = sandbox_apply_child(p->sandbox)) < 0) {
                (void) kill(cmd, SIGKILL);
                child_fail(c, STAGE_SANDBOX, -r);
        }
        exec_init(c->go[1], cmd);
        int e = errno;
        (void) kill(cmd, SIGKILL);
        child_fail(c, STAGE_PIDNS_INIT, e);
}

/* What the child was doing at @stage, for the error text. */
static const char *stage_what(int stage) {
        switch (stage) {
        case STAGE_USER:
                return "switch user";
        case STAGE_SANDBOX:
                return "apply sandbox";
        case STAGE_TTY:
                return "set controlling terminal";
        case STAGE_PIDNS_MOUNTS:
                return "PID namespace: make the mounts private";
        case STAGE_PIDNS_PROC:
                return "PID namespace: mount /proc";
        case STAGE_PIDNS_INIT:
                return "PID namespace: start its init";
        default:
                return "start process";
        }
}

static char *format_error(const struct spawn_params *p, const struct report *rep, int *ret_code) {
        char *s = NULL, es[128];
        int r = -1;
        errno_text(rep->err, es, sizeof es);
        *ret_code = spawn_failure_code(rep->err);
        switch (rep->stage) {
        case STAGE_EXEC:
                if (rep->err == ENOENT && p->search_path && !strchr(p->file, '/'))
                        r = asprintf(&s, "exec: \"%s\": executable file not found in $PATH", p->file);
                else
                        r = asprintf(&s, "exec %s: %s", p->file, es);
                break;
        case STAGE_CHDIR:
                r = asprintf(&s, "chdir %s: %s", p->cwd, es);
                break;
        default:
                /* Not the command's fault: never "not found". */
                *ret_code = 126;
                r = asprintf(&s, "%s: %s", stage_what(rep->stage), es);
                break;
        }
        return r < 0 ? NULL : s;
}

static int fail_with(int err, const char *what, char **ret_error, int *ret_exit_code) {
        char es[128];
        if (asprintf(ret_error, "%s: %s", what, errno_text(err, es, sizeof es)) < 0)
                *ret_error = NULL;
        *ret_exit_code = 126;
        return -err;
}

/* clone() on @stack with every signal blocked across it: no agent handler
 * may run in the child, which unblocks only right before exec. Returns the
 * pid or -errno. */
static pid_t clone_blocked(int (*fn)(void *), void *stack, int flags, void *arg, int *ret_pidfd) {
        sigset_t all, old;
        sigfillset(&all);
        (void) pthread_sigmask(SIG_SETMASK, &all, &old);
        pid_t pid = clone(fn, (uint8_t *) stack + CHILD_STACK_SIZE, flags | SIGCHLD, arg, ret_pidfd);
        int r = pid < 0 ? -errno : pid;
        (void) pthread_sigmask(SIG_SETMASK, &old, NULL);
#ifdef SPAWN_ASAN
        __asan_unpoison_memory_region(stack, CHILD_STACK_SIZE);
#endif
        return r;
}

/* With pid_ns, the command runs on after its init exec'd: wait until it
 * has exec'd or exited too (the kernel clears its tid then), before its
 * stack and report are looked at or reused. */
static void wait_command(struct child_args *c) {
        for (;;) {
                pid_t v = __atomic_load_n(&c->cmd_tid, __ATOMIC_ACQUIRE);
                if (v == 0)
                        break;
                (void) syscall(SYS_futex, &c->cmd_tid, FUTEX_WAIT, v, NULL, NULL, 0);
        }
#ifdef SPAWN_ASAN
        __asan_unpoison_memory_region(c->ctx->stack2, CHILD_STACK_SIZE);
#endif
}

/* Reap a child that failed or was cancelled (it exited, or was killed). */
static void reap(int pidfd) {
        siginfo_t si;
        while (waitid((idtype_t) P_PIDFD, (id_t) pidfd, &si, WEXITED) < 0 && errno == EINTR)
                ;
}

int spawn_start(const struct spawn_params *p, struct spawn_cancel *cancel, pid_t *ret_pid, int *ret_pidfd,
                char **ret_error, int *ret_exit_code) {
        struct spawn_ctx *ctx = NULL;
        struct child_args c = { .p = p, .go = { -1, -1 } };
        const int src[3] = { p->fd_in, p->fd_out, p->fd_err };
        int pidfd = -1, r;

        if (p->pid_ns && self_exe < 0)
                return fail_with(EINVAL, "PID namespace: not prepared", ret_error, ret_exit_code);
        r = ctx_get(&ctx);
        for (int i = 0; i < 3 && r >= 0; i++)
                if (dup3(src[i], ctx->slots[i], O_CLOEXEC) < 0)
                        r = -errno;
        if (r >= 0 && p->pid_ns && !ctx->stack2 && !(ctx->stack2 = stack_new()))
                r = -errno;
        if (r < 0) {
                if (ctx)
                        ctx_put(ctx);
                return fail_with(-r, "start process", ret_error, ret_exit_code);
        }
        c.ctx = ctx;
        for (int i = 0; i < 3; i++)
                c.lo = MAX(c.lo, (unsigned) ctx->slots[i] + 1);
        if (p->pid_ns) {
                c.lo = MAX(c.lo, (unsigned) self_exe + 1);
                c.lo = MAX(c.lo, (unsigned) alive_r + 1);
                c.cmd_tid = -1;
        }

        int *pidfd_at = &pidfd;
        if (cancel) {
                pthread_mutex_lock(&cancel->lock);
                bool go = !cancel->cancelled;
                cancel->active = go;
                cancel->pidfd = -1;
                pthread_mutex_unlock(&cancel->lock);
                if (!go) {
                        ctx_put(ctx);
                        return fail_with(ECANCELED, "start process", ret_error, ret_exit_code);
                }
                pidfd_at = &cancel->pidfd;
        }
        /* Returns once the child has exec'd or exited. */
        pid_t pid = p->pid_ns ? clone_blocked(pidns_child_main, ctx->stack,
                                              CLONE_VM | CLONE_VFORK | CLONE_FILES | CLONE_PIDFD | CLONE_NEWPID |
                                                      CLONE_NEWNS,
                                              &c, pidfd_at)
                              : clone_blocked(child_main, ctx->stack, CLONE_VM | CLONE_VFORK | CLONE_FILES | CLONE_PIDFD,
                                              &c, pidfd_at);
        bool cancelled = false;
        if (cancel) {
                pthread_mutex_lock(&cancel->lock);
                cancel->active = false;
                pidfd = cancel->pidfd;
                cancel->pidfd = -1;
                cancelled = cancel->cancelled;
                pthread_mutex_unlock(&cancel->lock);
        }
        if (pid >= 0 && c.cmd_started)
                wait_command(&c);
        ctx_put(ctx);

        if (pid < 0) {
                /* Out of fds or memory is not the namespace's fault. */
                bool ns = p->pid_ns && pid != -EMFILE && pid != -ENFILE && pid != -ENOMEM && pid != -EAGAIN;
                return fail_with((int) -pid, ns ? "create PID namespace" : "start process", ret_error, ret_exit_code);
        }
        if (cancelled || c.rep.stage != 0) {
                /* Failed (it exits), or not wanted any more (it is killed,
                 * whatever it started). */
                if (cancelled)
                        (void) syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
                reap(pidfd);
                safe_close(pidfd);
                if (cancelled)
                        return fail_with(ECANCELED, "start process", ret_error, ret_exit_code);
                *ret_error = format_error(p, &c.rep, ret_exit_code);
                return -c.rep.err;
        }
        *ret_pid = pid;
        *ret_pidfd = pidfd;
        return 0;
}

/* The probe: what every init does before the command, then the init
 * itself, told there is no command (it exits 0 at once). */
CHILD_FN static int probe_main(void *arg) {
        struct child_args *c = arg;
        int r = pidns_private_mounts();
        if (r < 0)
                child_fail(c, STAGE_PIDNS_MOUNTS, -r);
        r = pidns_mount_proc();
        if (r < 0)
                child_fail(c, STAGE_PIDNS_PROC, -r);
        if (setsid() < 0)
                child_fail(c, STAGE_SETUP, errno);
        exec_init(-1, 0);
        child_fail(c, STAGE_PIDNS_INIT, errno);
}

int spawn_check_pid_ns(const char **ret_what) {
        *ret_what = "open the agent's own binary (/proc/self/exe)";
        if (self_exe < 0) {
                /* O_PATH: exec needs no read access; the binary may be
                 * replaced on disk meanwhile, the fd keeps this one. */
                int fd = open("/proc/self/exe", O_PATH | O_CLOEXEC);
                if (fd < 0)
                        return -errno;
                int alive[2];
                if (pipe2(alive, O_CLOEXEC) < 0) {
                        int r = -errno;
                        safe_close(fd);
                        *ret_what = "create a pipe";
                        return r;
                }
                self_exe = fd;
                /* Each init keeps the read end and ends when it hangs up,
                 * that is, when the agent is gone however it ended. */
                alive_r = alive[0];
                alive_w = alive[1];
        }
        *ret_what = "create a PID and mount namespace";
        struct spawn_ctx *ctx;
        int r = ctx_get(&ctx);
        if (r < 0)
                return r;
        struct child_args c = { .ctx = ctx };
        /* Without CLONE_FILES: exec_init() marks the probe's copy of the
         * fd table, not ours. */
        pid_t pid = clone_blocked(probe_main, ctx->stack, CLONE_VM | CLONE_VFORK | CLONE_NEWPID | CLONE_NEWNS, &c,
                                  NULL);
        ctx_put(ctx);
        if (pid < 0)
                return pid;
        int st;
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        switch (c.rep.stage) {
        case 0:
                if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
                        return 0;
                *ret_what = "run the namespace's init";
                return -EIO;
        case STAGE_PIDNS_MOUNTS:
                *ret_what = "make the mounts private";
                return -c.rep.err;
        case STAGE_PIDNS_PROC:
                *ret_what = "mount /proc";
                return -c.rep.err;
        default:
                *ret_what = "start the namespace's init";
                return -c.rep.err;
        }
}
