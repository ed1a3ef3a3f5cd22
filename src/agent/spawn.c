#include "agent/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "agent/sandbox.h"
#include "agent/user.h"
#include "common/io.h"
#include "common/macro.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* What the child reports when it fails before or at exec. */
enum stage { STAGE_SETUP = 1, STAGE_TTY, STAGE_FDS, STAGE_SANDBOX, STAGE_USER, STAGE_CHDIR, STAGE_EXEC };

struct report {
        int stage;
        int err;
};

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_Noreturn static void child_fail(int errfd, int stage, int err) {
        struct report rep = { stage, err };
        (void) !write(errfd, &rep, sizeof rep);
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

/* Everything here is async-signal-safe: the agent may have other threads. */
_Noreturn static void child_main(const struct spawn_params *p, int errfd) {
        /* Handlers and ignored dispositions survive exec; reset them all. */
        struct sigaction sa = { .sa_handler = SIG_DFL };
        for (int sig = 1; sig < NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        (void) sigaction(sig, &sa, NULL);

        if (p->tty) {
                if (setsid() < 0)
                        child_fail(errfd, STAGE_SETUP, errno);
        } else if (setpgid(0, 0) < 0)
                child_fail(errfd, STAGE_SETUP, errno);

        /* Move the sources out of 0..2 first, so no dup2 clobbers a source
         * that is still needed; dup2 also clears CLOEXEC on the targets. */
        int src[3] = { p->fd_in, p->fd_out, p->fd_err };
        for (int i = 0; i < 3; i++) {
                int fd = fcntl(src[i], F_DUPFD_CLOEXEC, 3);
                if (fd < 0)
                        child_fail(errfd, STAGE_FDS, errno);
                src[i] = fd;
        }
        for (int i = 0; i < 3; i++)
                if (dup2(src[i], i) < 0)
                        child_fail(errfd, STAGE_FDS, errno);

        if (p->tty) {
                if (ioctl(0, TIOCSCTTY, 0) < 0)
                        child_fail(errfd, STAGE_TTY, errno);
                /* Make sure the terminal really is ours now. */
                if (tcgetpgrp(0) != getpid())
                        (void) tcsetpgrp(0, getpid());
        }

        /* Every other fd goes at exec, including any the agent inherited
         * without O_CLOEXEC. */
        if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
                for (int fd = 3; fd < 1024; fd++)
                        if (fd != errfd)
                                (void) fcntl(fd, F_SETFD, FD_CLOEXEC);
        }

        if (p->sandbox) {
                int r = sandbox_apply_child(p->sandbox);
                if (r < 0)
                        child_fail(errfd, STAGE_SANDBOX, -r);
        }
        if (p->user) {
                int r = user_switch_child(p->user);
                if (r < 0)
                        child_fail(errfd, STAGE_USER, -r);
        }
        if (p->cwd && p->cwd[0] && chdir(p->cwd) < 0)
                child_fail(errfd, STAGE_CHDIR, errno);

        /* Last: the agent blocks SIGTERM/SIGINT for its signalfd; the
         * command starts with nothing blocked. */
        sigset_t none;
        sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);

        int r;
        if (p->search_path && !strchr(p->file, '/'))
                r = exec_search(p->file, p->argv, p->envp);
        else
                r = try_exec(p->file, p->argv, p->envp);
        child_fail(errfd, STAGE_EXEC, -r);
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
        case STAGE_USER:
                r = asprintf(&s, "switch user: %s", es);
                break;
        case STAGE_SANDBOX:
                r = asprintf(&s, "apply sandbox: %s", es);
                break;
        case STAGE_TTY:
                r = asprintf(&s, "set controlling terminal: %s", es);
                break;
        default:
                r = asprintf(&s, "start process: %s", es);
                break;
        }
        return r < 0 ? NULL : s;
}

int spawn_start(const struct spawn_params *p, pid_t *ret_pid, int *ret_pidfd, char **ret_error,
                int *ret_exit_code) {
        int pipefd[2];
        if (pipe2(pipefd, O_CLOEXEC) < 0) {
                int r = -errno;
                *ret_error = strdup("start process: cannot create pipe");
                *ret_exit_code = 1;
                return r;
        }
        _cleanup_close_ int rd = pipefd[0];
        _cleanup_close_ int wr = pipefd[1];

        /* Blocked across fork: no agent handler may run in the child. */
        sigset_t all, old;
        sigfillset(&all);
        (void) sigprocmask(SIG_SETMASK, &all, &old);
        pid_t pid = fork();
        if (pid == 0)
                child_main(p, wr);
        int fork_errno = errno;
        (void) sigprocmask(SIG_SETMASK, &old, NULL);
        if (pid < 0) {
                if (asprintf(ret_error, "fork: %s", strerror(fork_errno)) < 0)
                        *ret_error = NULL;
                *ret_exit_code = 1;
                return -fork_errno;
        }
        wr = safe_close(wr);

        int pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        int pidfd_errno = errno;

        /* Blocks only until the child execs or fails: a few syscalls. */
        struct report rep = { 0 };
        ssize_t n = io_read_full(rd, &rep, sizeof rep, 0, -1);
        if (n == 0 && pidfd >= 0) {
                *ret_pid = pid;
                *ret_pidfd = pidfd;
                return 0;
        }
        /* The child failed (or we cannot watch it): reap it here; it is
         * already exiting. */
        if (pidfd < 0)
                (void) kill(pid, SIGKILL);
        (void) waitpid(pid, NULL, 0);
        if (pidfd >= 0)
                safe_close(pidfd);
        if (n != (ssize_t) sizeof rep) {
                if (asprintf(ret_error, "start process: %s", strerror(pidfd < 0 ? pidfd_errno : EIO)) < 0)
                        *ret_error = NULL;
                *ret_exit_code = 1;
                return pidfd < 0 ? -pidfd_errno : -EIO;
        }
        *ret_error = format_error(p, &rep, ret_exit_code);
        return -rep.err;
}
