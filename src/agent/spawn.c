#include "agent/spawn.h"

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
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "agent/pidns.h"
#include "agent/sandbox.h"
#include "agent/user.h"
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
#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1U << 1)
#endif

/* The deepest path in the child is the ENOEXEC fallback, which copies argv
 * (at most 4096 pointers, 32 KiB) next to a PATH_MAX buffer. */
#define CHILD_STACK_SIZE (256u * 1024)

/* What the child reports when it fails before or at exec. */
enum stage { STAGE_SETUP = 1, STAGE_TTY, STAGE_FDS, STAGE_SANDBOX, STAGE_USER, STAGE_CHDIR, STAGE_EXEC,
             STAGE_PIDNS_MOUNTS, STAGE_PIDNS_PROC };

struct report {
        int stage;              /* 0: the child exec'd (or died without a word) */
        int err;
};

/* Shared with the child: it runs in our memory while we are suspended.
 * (The PID-namespace init gets a copy: it reports through report_fd.) */
struct child_args {
        const struct spawn_params *p;
        unsigned lo;            /* fds from here up are not copied to the child */
        int report_fd;          /* PID-namespace init: the write end of the report pipe */
        struct report rep;      /* written by the child on failure */
};

/* How long the agent waits for a PID-namespace init to report. It mounts
 * /proc and starts the command, well under a millisecond; the bound only
 * keeps a wedged init from wedging the agent. */
#define PIDNS_REPORT_TIMEOUT_MS 10000

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

CHILD_FN _Noreturn static void child_fail(struct child_args *c, int stage, int err) {
        c->rep.err = err;
        c->rep.stage = stage;
        /* Every signal is blocked: a pipe write of 8 bytes is all or nothing. */
        if (c->report_fd >= 0)
                (void) !write(c->report_fd, &c->rep, sizeof c->rep);
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

/* Module state, guarded by spawn_lock. The slots are fds kept open at low
 * numbers (dups of the placeholder while idle): the child's stdin, stdout
 * and stderr are parked there so that its unshared table can stay small. */
static pthread_mutex_t spawn_lock = PTHREAD_MUTEX_INITIALIZER;
static int placeholder = -1;
static int slots_for_child[3] = { -1, -1, -1 };
static void *child_stack;
/* Signals ignored when we started (nohup, a background job of a
 * non-interactive shell): SIG_IGN survives exec, so every child resets
 * these on top of what the caller says it changed. Written once by
 * spawn_init(), before any child exists. */
static uint64_t inherited_ignored; /* bit sig-1 */

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

static int reserve_locked(void) {
        if (placeholder < 0) {
                /* Any fd will do; an eventfd needs no file system (init
                 * mode may not have /dev yet). */
                placeholder = eventfd(0, EFD_CLOEXEC);
                if (placeholder < 0)
                        return -errno;
        }
        for (int i = 0; i < 3; i++)
                if (slots_for_child[i] < 0) {
                        slots_for_child[i] = fcntl(placeholder, F_DUPFD_CLOEXEC, 3);
                        if (slots_for_child[i] < 0)
                                return -errno;
                }
        if (!child_stack) {
                /* With a guard page below: an overflow faults instead of
                 * writing into the agent's memory. */
                long page = sysconf(_SC_PAGESIZE);
                size_t guard = page > 0 ? (size_t) page : 4096;
                uint8_t *m = mmap(NULL, CHILD_STACK_SIZE + guard, PROT_NONE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
                if (m == MAP_FAILED)
                        return -errno;
                if (mprotect(m + guard, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE) < 0) {
                        int r = -errno;
                        (void) munmap(m, CHILD_STACK_SIZE + guard);
                        return r;
                }
                child_stack = m + guard;
        }
        return 0;
}

int spawn_reserve(void) {
        pthread_mutex_lock(&spawn_lock);
        int r = reserve_locked();
        pthread_mutex_unlock(&spawn_lock);
        return r;
}

/* Leave the agent's process group for one of our own (a session of our
 * own with the terminal as controlling tty, for a TTY), with the command's
 * stdin, stdout and stderr on 0, 1 and 2. */
CHILD_FN static void child_setup_session(struct child_args *c) {
        const struct spawn_params *p = c->p;
        if (p->tty) {
                if (setsid() < 0)
                        child_fail(c, STAGE_SETUP, errno);
        } else if (setpgid(0, 0) < 0)
                child_fail(c, STAGE_SETUP, errno);

        /* The sources wait in the slots (all >= 3): dup2 cannot clobber
         * one that is still needed, and it clears CLOEXEC on 0..2. */
        for (int i = 0; i < 3; i++)
                if (dup2(slots_for_child[i], i) < 0)
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

/* The child: clone(CLONE_VM | CLONE_VFORK | CLONE_FILES), on its own
 * stack, with every signal blocked. It shares the agent's memory and, until
 * its first call, its fd table: only raw system calls (no allocation, no
 * libc locks), and no fd change before the table is its own. */
CHILD_FN static int child_main(void *arg) {
        struct child_args *c = arg;

        /* Our own fd table, with copies of the fds below c->lo only (the
         * agent's stdio, a few early fds, the slots). Before Linux 5.9:
         * a copy of the whole table. */
        if (syscall(SYS_close_range, c->lo, ~0U, CLOSE_RANGE_UNSHARE) < 0 && unshare(CLONE_FILES) < 0)
                child_fail(c, STAGE_FDS, errno);
        child_setup_session(c);
        child_exec(c);
}

/* ---- PID namespace (pidns.h) ---------------------------------------------- */

/* The command under a PID-namespace init: clone(CLONE_VM | CLONE_VFORK)
 * from the init, so it shares the init's memory (a copy of the agent's)
 * and its (small) fd table is a copy. */
CHILD_FN static int command_main(void *arg) { child_exec(arg); }

/* PID 1 of a new PID and mount namespace: clone() without CLONE_VM, so a
 * copy-on-write copy of the agent with a copy of its fd table and every
 * signal blocked. */
CHILD_FN static int pidns_init_main(void *arg) {
        struct child_args *c = arg;

        /* If the agent dies, the namespace goes with it. */
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        (void) prctl(PR_SET_NAME, "vsock-init");
        int r = pidns_private_mounts();
        if (r < 0)
                child_fail(c, STAGE_PIDNS_MOUNTS, -r);
        r = pidns_mount_proc();
        if (r < 0)
                child_fail(c, STAGE_PIDNS_PROC, -r);

        /* The init leads the group (and session): the agent's signals to
         * the group reach the command without forwarding. */
        child_setup_session(c);
        /* Keep the report pipe (>= 3, see spawn_start) and 0..2; drop the
         * copies of the agent's fds (listeners, other sessions). */
        if (c->report_fd != 3) {
                if (dup2(c->report_fd, 3) < 0)
                        child_fail(c, STAGE_FDS, errno);
                c->report_fd = 3;
        }
        if (syscall(SYS_close_range, 4U, ~0U, 0U) < 0)
                for (int fd = 4; fd < 65536; fd++)
                        (void) close(fd);

        long page = sysconf(_SC_PAGESIZE);
        size_t guard = page > 0 ? (size_t) page : 4096;
        uint8_t *stack = mmap(NULL, CHILD_STACK_SIZE + guard, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
        if (stack == MAP_FAILED)
                child_fail(c, STAGE_SETUP, errno);
        (void) mprotect(stack, guard, PROT_NONE);

        struct child_args cmd_args = { .p = c->p, .report_fd = -1 };
        pid_t cmd = clone(command_main, stack + guard + CHILD_STACK_SIZE, CLONE_VM | CLONE_VFORK | SIGCHLD,
                          &cmd_args);
        if (cmd < 0)
                child_fail(c, STAGE_SETUP, errno);
        if (cmd_args.rep.stage != 0) {
                (void) waitpid(cmd, NULL, __WALL);
                child_fail(c, cmd_args.rep.stage, cmd_args.rep.err);
        }
        /* The command runs. Our copies of its stdio would keep the agent
         * from seeing EOF (and a TTY open); closing the report pipe tells
         * the agent that it started. */
        (void) syscall(SYS_close_range, 0U, ~0U, 0U);
        (void) munmap(stack, CHILD_STACK_SIZE + guard);
        /* The workload cannot ptrace us or signal us (no handlers), but
         * it need not share a namespace with CAP_SYS_ADMIN either. */
        if (c->p->sandbox)
                (void) sandbox_apply_child(c->p->sandbox);
        pidns_reap(cmd);
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
        default:
                return "start process";
        }
}

static char *format_error(const struct spawn_params *p, const struct report *rep, int *ret_code) {
        char *s = NULL;
        const char *es = strerror(rep->err);
        int r = -1;
        *ret_code = 1;
        switch (rep->stage) {
        case STAGE_EXEC:
                if (rep->err == ENOENT && p->search_path && !strchr(p->file, '/'))
                        r = asprintf(&s, "exec: \"%s\": executable file not found in $PATH", p->file);
                else
                        r = asprintf(&s, "exec %s: %s", p->file, es);
                *ret_code = (rep->err == ENOENT || rep->err == ENOTDIR) ? 127 : 126;
                break;
        case STAGE_CHDIR:
                r = asprintf(&s, "chdir %s: %s", p->cwd, es);
                break;
        default:
                r = asprintf(&s, "%s: %s", stage_what(rep->stage), es);
                break;
        }
        return r < 0 ? NULL : s;
}

/* clone() on the module's child stack (spawn_lock held) with every signal
 * blocked across it: no agent handler may run in the child, which
 * unblocks only right before exec. Returns the pid or -errno. */
static pid_t clone_blocked(int (*fn)(void *), int flags, void *arg, int *ret_pidfd) {
        sigset_t all, old;
        sigfillset(&all);
        (void) pthread_sigmask(SIG_SETMASK, &all, &old);
        pid_t pid = clone(fn, (uint8_t *) child_stack + CHILD_STACK_SIZE, flags | SIGCHLD, arg, ret_pidfd);
        int r = pid < 0 ? -errno : pid;
        (void) pthread_sigmask(SIG_SETMASK, &old, NULL);
#ifdef SPAWN_ASAN
        __asan_unpoison_memory_region(child_stack, CHILD_STACK_SIZE);
#endif
        return r;
}

/* The read end non-blocking (the agent waits with a bound), both ends
 * above 2 (the init moves the write end to 3 after filling 0..2). */
static int report_pipe(int fds[2]) {
        if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
        for (int i = 0; i < 2; i++)
                if (fds[i] < 3) {
                        int fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
                        (void) close(fds[i]);
                        fds[i] = fd;
                }
        if (fds[0] < 0 || fds[1] < 0 || fd_set_nonblock(fds[0], 1) < 0) {
                int r = fds[0] < 0 || fds[1] < 0 ? -EMFILE : -errno;
                fds[0] = safe_close(fds[0]);
                fds[1] = safe_close(fds[1]);
                return r;
        }
        return 0;
}

/* What the PID-namespace init says: nothing (EOF) once the command runs,
 * or its report. Returns 0 (then rep->stage says which) or -errno when it
 * said nothing sensible in time. */
static int read_report(int fd, struct report *rep) {
        ssize_t n = io_read_full(fd, rep, sizeof *rep, deadline_from_ms(PIDNS_REPORT_TIMEOUT_MS), -1);
        if (n == 0) {
                rep->stage = 0;
                return 0;
        }
        if (n == (ssize_t) sizeof *rep && rep->stage != 0)
                return 0;
        return n < 0 ? (int) n : -EPROTO;
}

int spawn_start(const struct spawn_params *p, pid_t *ret_pid, int *ret_pidfd, char **ret_error,
                int *ret_exit_code) {
        struct child_args c = { .p = p, .report_fd = -1 };
        const int src[3] = { p->fd_in, p->fd_out, p->fd_err };
        int pidfd = -1, report[2] = { -1, -1 }, r;
        bool clone_failed = false;

        pthread_mutex_lock(&spawn_lock);
        r = reserve_locked();
        for (int i = 0; i < 3 && r >= 0; i++)
                if (dup3(src[i], slots_for_child[i], O_CLOEXEC) < 0)
                        r = -errno;
        if (r >= 0 && p->pid_ns)
                r = report_pipe(report);
        pid_t pid = -1;
        if (r >= 0) {
                for (int i = 0; i < 3; i++)
                        if ((unsigned) slots_for_child[i] >= c.lo)
                                c.lo = (unsigned) slots_for_child[i] + 1;
                if (p->pid_ns) {
                        /* Returns at once; the init reports through the pipe. */
                        c.report_fd = report[1];
                        pid = clone_blocked(pidns_init_main, CLONE_NEWPID | CLONE_NEWNS | CLONE_PIDFD, &c, &pidfd);
                } else {
                        /* Returns once the child has exec'd or exited. */
                        pid = clone_blocked(child_main, CLONE_VM | CLONE_VFORK | CLONE_FILES | CLONE_PIDFD, &c,
                                            &pidfd);
                }
                if (pid < 0) {
                        r = pid;
                        clone_failed = true;
                }
        }
        /* The child has its own copies by now: park the placeholder in the
         * slots again, which drops our extra references to its ends. */
        for (int i = 0; i < 3; i++)
                if (slots_for_child[i] >= 0 && dup3(placeholder, slots_for_child[i], O_CLOEXEC) < 0) {
                        (void) close(slots_for_child[i]);
                        slots_for_child[i] = -1; /* reserved again next time */
                }
        pthread_mutex_unlock(&spawn_lock);
        report[1] = safe_close(report[1]);

        if (r < 0) {
                if (asprintf(ret_error, p->pid_ns && clone_failed ? "create PID namespace: %s" : "start process: %s",
                             strerror(-r)) < 0)
                        *ret_error = NULL;
                *ret_exit_code = 1;
                safe_close(report[0]);
                return r;
        }
        if (p->pid_ns) {
                r = read_report(report[0], &c.rep);
                safe_close(report[0]);
                if (r < 0) {
                        /* Wedged or broken: it and its namespace go. */
                        (void) syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
                        (void) waitpid(pid, NULL, 0);
                        safe_close(pidfd);
                        if (asprintf(ret_error, "PID namespace init: %s", strerror(-r)) < 0)
                                *ret_error = NULL;
                        *ret_exit_code = 1;
                        return r;
                }
        }
        if (c.rep.stage == 0) {
                *ret_pid = pid;
                *ret_pidfd = pidfd;
                return 0;
        }
        /* The child failed and has exited: reap it here. */
        (void) waitpid(pid, NULL, 0);
        safe_close(pidfd);
        *ret_error = format_error(p, &c.rep, ret_exit_code);
        return -c.rep.err;
}

/* The probe: what every init does before the command. */
CHILD_FN static int probe_main(void *arg) {
        (void) arg;
        int r = pidns_private_mounts();
        if (r < 0)
                _exit(-r & 0x7f);
        r = pidns_mount_proc();
        _exit(r < 0 ? 0x80 | (-r & 0x7f) : 0);
}

int spawn_check_pid_ns(const char **ret_what) {
        *ret_what = "create a PID and mount namespace";
        pthread_mutex_lock(&spawn_lock);
        int r = reserve_locked();
        pid_t pid = -1;
        if (r >= 0) {
                pid = clone_blocked(probe_main, CLONE_NEWPID | CLONE_NEWNS, NULL, NULL);
                if (pid < 0)
                        r = pid;
        }
        pthread_mutex_unlock(&spawn_lock);
        if (r < 0)
                return r;
        int st;
        if (waitpid(pid, &st, 0) < 0)
                return -errno;
        if (!WIFEXITED(st))
                return -EIO;
        int code = WEXITSTATUS(st);
        if (code == 0)
                return 0;
        *ret_what = code & 0x80 ? "mount /proc" : "make the mounts private";
        return (code & 0x7f) ? -(code & 0x7f) : -EIO;
}
